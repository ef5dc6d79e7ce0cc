#include "tests/test-repo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/crypto.h"
#include "store/fs.h"
#include "tests/tap.h"

int test_repo_open(TestRepo *t, const char *name)
{
	static const uint8_t key[32] = { 7 };
	BkRepoParams params;
	bk_repo_params_default(&params);
	*t = (TestRepo){ 0 };
	snprintf(t->root, sizeof(t->root), "/tmp/bunker-test-%.30s.XXXXXX", name);
	if (bk_crypto_init() < 0 || !mkdtemp(t->root)) {
		t->root[0] = '\0';
		return -EIO;
	}
	char *path = bk_path_join(t->root, "repo");
	int e = path ? bk_secret_new(BK_SECRET_KEYFILE, key, sizeof(key), &t->secret) : -ENOMEM;
	if (e == 0)
		e = bk_repo_create(path, t->secret, &params, &t->r);
	free(path);
	return e;
}

void test_repo_close(TestRepo *t)
{
	bk_repo_close(t->r);
	bk_secret_free(t->secret);
	if (t->root[0])
		tap_remove_tree(t->root);
}
