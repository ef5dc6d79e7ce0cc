/* tests/test-repo.h: a new repository for a unit test, in a new temporary
 * directory /tmp/bunker-test-<name>.XXXXXX (removed by test_repo_close), opened
 * with a key file. */
#ifndef BK_TESTS_TEST_REPO_H
#define BK_TESTS_TEST_REPO_H

#include "store/keyslot.h"
#include "store/repo.h"

typedef struct {
	char root[64];
	BkSecret *secret;
	BkRepo *r;
} TestRepo;

int test_repo_open(TestRepo *t, const char *name);
void test_repo_close(TestRepo *t);

#endif
