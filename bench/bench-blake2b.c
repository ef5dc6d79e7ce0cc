/* bench-blake2b: BLAKE2b-256 of one 16 MiB stream (a pack's size) in 64 KiB
 * pieces, in memory on one core: store/blake2b.c's bk_blake2b_update against
 * libsodium's crypto_generichash_update after sodium_init() (its AVX2 code on
 * CPUs that have AVX2). Prints GB/s, best of five, and checks the two agree.
 * Exit 1 if they differ. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/blake2b.h"

#define LEN (16u << 20)
#define PIECE (64u << 10)
#define ROUNDS 5

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void ours(const uint8_t *p, uint8_t out[32])
{
	BkBlake2b s;
	bk_blake2b_start(&s);
	for (size_t o = 0; o < LEN; o += PIECE)
		bk_blake2b_update(&s, p + o, PIECE);
	bk_blake2b_final(&s, out);
}

static void sodium(const uint8_t *p, uint8_t out[32])
{
	crypto_generichash_state s;
	crypto_generichash_init(&s, NULL, 0, 32);
	for (size_t o = 0; o < LEN; o += PIECE)
		crypto_generichash_update(&s, p + o, PIECE);
	crypto_generichash_final(&s, out, 32);
}

static double best(void (*fn)(const uint8_t *, uint8_t *), const uint8_t *p, uint8_t out[32])
{
	double b = 1e9;
	for (int r = 0; r < ROUNDS; r++) {
		double t = now();
		fn(p, out);
		t = now() - t;
		if (t < b)
			b = t;
	}
	return LEN / b / 1e9;
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	uint8_t *p = malloc(LEN);
	if (!p)
		return 1;
	randombytes_buf(p, LEN);
	uint8_t a[32], b[32];
	double ga = best(ours, p, a), gb = best(sodium, p, b);
	printf("blake2b-256 stream, 16 MiB in 64 KiB pieces: bunker %.2f GB/s, libsodium %.2f GB/s\n",
	       ga, gb);
	free(p);
	if (memcmp(a, b, 32) != 0) {
		fprintf(stderr, "bench-blake2b: the hashes differ\n");
		return 1;
	}
	return 0;
}
