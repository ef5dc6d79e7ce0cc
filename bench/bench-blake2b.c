/* bench-blake2b: pack ids, BLAKE2b-256 of 16 MiB messages (a pack's size), in
 * memory on one core: a batch of 8 hashed side by side by BkBlake2bStreams in
 * pieces of 256 KiB (what store/pack.c does with full packs) against libsodium's
 * crypto_generichash one message at a time (its AVX2 code on CPUs that have
 * AVX2). Prints GB/s of message bytes, best of five, and checks the two agree.
 * Exit 1 if they differ. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/blake2b.h"

#define LEN (16u << 20)
#define N 8
#define ROUNDS 5

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static const uint8_t *msg[N];
static size_t len[N];

#define PIECE (256u << 10)

static void ours(uint8_t (*out)[32])
{
	BkBlake2bStreams st;
	uint64_t l[N];
	for (size_t i = 0; i < N; i++)
		l[i] = len[i];
	bk_blake2b_streams_start(&st, N, l);
	for (size_t off = 0; off < LEN; off += PIECE) {
		const uint8_t *piece[N] = { 0 };
		for (size_t i = 0; i < N; i++)
			if (off < len[i])
				piece[i] = msg[i] + off;
		bk_blake2b_streams_update(&st, piece, PIECE);
	}
	memcpy(out, st.out, N * 32);
}

static void sodium(uint8_t (*out)[32])
{
	for (size_t i = 0; i < N; i++)
		crypto_generichash(out[i], 32, msg[i], len[i], NULL, 0);
}

static double best(void (*fn)(uint8_t (*)[32]), uint8_t (*out)[32])
{
	double b = 1e9;
	for (int r = 0; r < ROUNDS; r++) {
		double t = now();
		fn(out);
		t = now() - t;
		if (t < b)
			b = t;
	}
	return (double)N * LEN / b / 1e9;
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	uint8_t *p = malloc((size_t)N * LEN);
	if (!p)
		return 1;
	randombytes_buf(p, (size_t)N * LEN);
	for (size_t i = 0; i < N; i++) {
		msg[i] = p + i * LEN;
		len[i] = LEN - i * 4096; /* packs end at different sizes */
	}
	unsigned lanes = bk_blake2b_init();
	uint8_t a[N][32], b[N][32];
	double ga = best(ours, a), gb = best(sodium, b);
	printf("blake2b-256 of %d packs of 16 MiB: bunker %.2f GB/s (%u lanes), libsodium %.2f GB/s\n",
	       N, ga, lanes, gb);
	free(p);
	if (memcmp(a, b, sizeof(a)) != 0) {
		fprintf(stderr, "bench-blake2b: the hashes differ\n");
		return 1;
	}
	return 0;
}
