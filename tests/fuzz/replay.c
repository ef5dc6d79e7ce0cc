/* tests/fuzz/replay.c: runs a fuzz target without libFuzzer, over every
 * regular file in the directories (or files) given as arguments, in name order,
 * printing one TAP line per input. A crash or sanitizer report fails the test;
 * so does an argument that cannot be read or a directory with no inputs.
 * Usage: replay-<name> corpus-dir-or-file... */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"
#include "tests/tap.h"

/* Inputs larger than this are not corpus material (and would hide a runaway). */
#define REPLAY_MAX_INPUT (64u << 20)

static int read_file(const char *path, uint8_t **ret, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	int r = 0;
	while (buf) {
		if (len == cap) {
			if (cap > REPLAY_MAX_INPUT) {
				r = -EFBIG;
				break;
			}
			uint8_t *b = realloc(buf, cap * 2);
			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f))
				r = -EIO;
			break;
		}
	}
	fclose(f);
	if (!buf)
		return -ENOMEM;
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

static void run_one(const char *path, const char *label)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r = read_file(path, &data, &len);
	if (r < 0) {
		ok(false, "%s: cannot read: %s", label, strerror(-r));
		return;
	}
	/* An exact-size heap copy, so that ASan catches any over-read. */
	uint8_t *exact = malloc(len ? len : 1);
	if (len)
		memcpy(exact, data, len);
	free(data);
	LLVMFuzzerTestOneInput(len ? exact : NULL, len);
	free(exact);
	ok(true, "%s (%zu bytes)", label, len);
}

static int regular_only(const struct dirent *d) { return d->d_name[0] != '.'; }

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s corpus-dir-or-file...\n", argv[0]);
		return 2;
	}
	for (int a = 1; a < argc; a++) {
		struct stat st;
		if (stat(argv[a], &st) < 0) {
			ok(false, "%s: %s", argv[a], strerror(errno));
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			run_one(argv[a], argv[a]);
			continue;
		}
		struct dirent **names;
		int n = scandir(argv[a], &names, regular_only, alphasort);
		if (n < 0) {
			ok(false, "%s: %s", argv[a], strerror(errno));
			continue;
		}
		ok(n > 0, "%s holds %d inputs", argv[a], n);
		for (int i = 0; i < n; i++) {
			size_t plen = strlen(argv[a]) + strlen(names[i]->d_name) + 2;
			char *path = malloc(plen);
			snprintf(path, plen, "%s/%s", argv[a], names[i]->d_name);
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				run_one(path, names[i]->d_name);
			free(path);
			free(names[i]);
		}
		free(names);
	}
	return tap_done();
}
