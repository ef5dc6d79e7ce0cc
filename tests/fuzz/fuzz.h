/* tests/fuzz/fuzz.h: the libFuzzer entry point every fuzz-<name>.c defines.
 *
 * A target feeds the bytes to one decoder of untrusted input. It must never
 * crash, leak or read out of bounds whatever the bytes; where the decoder
 * accepts them, the target also checks that re-encoding is a fixed point
 * (encode(decode(x)) decodes to an equal value and encodes to the same bytes)
 * and calls abort() if not, so that logic bugs show up as crashes too.
 *
 * Built twice: with libFuzzer (-Dfuzz=true, clang), which supplies main(); and
 * always with tests/fuzz/replay.c, which runs the target over a corpus. */
#ifndef BK_TESTS_FUZZ_H
#define BK_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test failed: report and crash. */
#define FUZZ_CHECK(cond)                                                              \
	do {                                                                              \
		if (!(cond)) {                                                                \
			fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                               \
			abort();                                                                  \
		}                                                                             \
	} while (0)

#ifdef FUZZ_GEN_CORPUS
/* For a target built with -DFUZZ_GEN_CORPUS, whose main() writes the seeds: each
 * goes to fuzz_out_dir/name; one that cannot be written is said on stderr and
 * counted in fuzz_failures. */
#include <errno.h>
#include <string.h>

static const char *fuzz_out_dir;
static int fuzz_failures;

static void fuzz_put(const char *name, const uint8_t *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", fuzz_out_dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		fuzz_failures++;
	}
}
#endif

#endif
