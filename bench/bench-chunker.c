/* bench/bench-chunker.c: single-core FastCDC throughput.
 *
 * Usage: bench-chunker [MiB]   (default 1024)
 * Chunks MiB mebibytes of pseudo-random data held in memory with min/avg/max =
 * avg/4, avg, 4*avg for avg = 16, 32 and 64 KiB, and prints the throughput
 * (GB/s, 10^9 bytes per second of thread CPU time, best of three passes) and the
 * mean chunk size. Random data is the worst case: every byte past min is hashed. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunker/fastcdc.h"

#define PASSES 3

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	size_t mib = 1024;
	if (argc > 2) {
		fprintf(stderr, "usage: bench-chunker [MiB]\n");
		return 2;
	}
	if (argc == 2) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(argv[1], &end, 10);
		if (errno || *end || v == 0 || v > (1ull << 20)) {
			fprintf(stderr, "bench-chunker: bad size '%s'\n", argv[1]);
			return 2;
		}
		mib = (size_t)v;
	}

	size_t n = mib << 20;
	uint8_t *data = malloc(n);
	if (!data) {
		fprintf(stderr, "bench-chunker: cannot allocate %zu MiB\n", mib);
		return 1;
	}
	uint64_t s = 42;
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t v = splitmix64(&s);
		memcpy(data + i, &v, 8);
	}

	uint8_t seed[32];
	for (size_t i = 0; i < sizeof(seed); i++)
		seed[i] = (uint8_t)(splitmix64(&s) >> 56);

	printf("%zu MiB of pseudo-random data, best of %d passes, one core\n", mib, PASSES);
	const size_t avgs[] = { 16 << 10, 32 << 10, 64 << 10 };
	for (size_t a = 0; a < sizeof(avgs) / sizeof(avgs[0]); a++) {
		BkFastCdc c;
		if (bk_fastcdc_init(&c, seed, avgs[a] / 4, avgs[a], avgs[a] * 4) < 0) {
			fprintf(stderr, "bench-chunker: init failed\n");
			free(data);
			return 1;
		}
		double best = 0;
		size_t chunks = 0;
		for (int pass = 0; pass < PASSES; pass++) {
			double t0 = cpu_seconds();
			size_t off = 0;
			chunks = 0;
			while (off < n) {
				off += bk_fastcdc_next(&c, data + off, n - off, true);
				chunks++;
			}
			double t = cpu_seconds() - t0;
			if (pass == 0 || t < best)
				best = t;
		}
		printf("min/avg/max %3zu/%3zu/%3zu KiB: %6.2f GB/s, %zu chunks, mean %.0f bytes "
		       "(%.3f x avg)\n",
		       avgs[a] / 4 >> 10, avgs[a] >> 10, avgs[a] * 4 >> 10, (double)n / best / 1e9,
		       chunks, (double)n / (double)chunks,
		       (double)n / (double)chunks / (double)avgs[a]);
	}
	free(data);
	return 0;
}
