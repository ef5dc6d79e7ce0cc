/* Unit tests for store/blake2b: every lane count this CPU runs (1, 4, 8) gives
 * crypto_generichash's bytes for batches of 1 to 100 messages of lengths around
 * every block boundary (0 as a NULL pointer, 1, 127, 128, 129, ..., 70 KiB, each
 * in an allocation of its own size), unkeyed and with
 * 16-, 32- and 64-byte keys, messages of one batch in any order of length and
 * overlapping in memory; bk_blake2b_init agrees with the CPU's best (its
 * self-check passed) and bk_blob_ids gives bk_blob_id's ids. A lane that mixed up
 * counters, final flags, padding or the key block of one message with another's
 * fails here. Streams (pack ids): every lane count gives crypto_generichash's
 * bytes for 1 to 8 messages of lengths around the block and piece edges, fed in
 * pieces of 128 bytes to 4 KiB, with messages ending in different pieces (a
 * stream that kept hashing after its end, lost its state between pieces, or
 * mixed up lanes across the two groups of 4 fails here). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/blake2b.h"
#include "store/crypto.h"
#include "store/util.h"
#include "tests/tap.h"

#define MAXN 100
#define POOL (200u << 10)

static uint8_t *pool;

/* Hashes n messages of the given lengths (copies of pseudo-random places in the
 * pool, each in an allocation of exactly its size, so that ASan sees a read past
 * a message's end; NULL for an empty one) with lanes and compares each with
 * libsodium; returns the mismatches. */
static int compare(unsigned lanes, const uint8_t *key, size_t keylen, size_t n,
		   const size_t *len, uint32_t seed)
{
	const uint8_t *msg[MAXN];
	uint8_t got[MAXN][32], want[32];
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		uint8_t *m = len[i] ? malloc(len[i]) : NULL;
		if (m)
			memcpy(m, pool + seed % (POOL - len[i]), len[i]);
		msg[i] = m;
	}
	memset(got, 0xee, sizeof(got));
	bk_blake2b_many_lanes(lanes, key, keylen, n, msg, len, got);
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		crypto_generichash(want, 32, msg[i], len[i], keylen ? key : NULL, keylen);
		if (memcmp(want, got[i], 32) != 0) {
			if (bad++ == 0)
				diag("lanes %u, key %zu bytes, message %zu of %zu (%zu bytes) differs", lanes,
				     keylen, i, n, len[i]);
		}
	}
	for (size_t i = 0; i < n; i++)
		free((void *)msg[i]);
	return bad;
}

static void test_lanes(unsigned lanes)
{
	static const size_t edge[] = { 0,   1,   63,  64,  65,  127, 128, 129,  255,  256,
				       257, 383, 384, 385, 1000, 4096, 16383, 16384, 16385, 65536 + 129 };
	const size_t nedge = sizeof(edge) / sizeof(edge[0]);
	uint8_t key[64];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(0xa5 ^ i * 7);
	static const size_t keylens[] = { 0, 16, 32, 64 };
	for (size_t k = 0; k < 4; k++) {
		size_t len[MAXN];
		/* each edge length alone, and all of them in one batch */
		int bad = 0;
		for (size_t i = 0; i < nedge; i++)
			bad += compare(lanes, key, keylens[k], 1, &edge[i], (uint32_t)i);
		memcpy(len, edge, sizeof(edge));
		bad += compare(lanes, key, keylens[k], nedge, len, 7);
		ok(bad == 0, "lanes %u, key of %zu bytes: every block-edge length, alone and together",
		   lanes, keylens[k]);

		/* batches of every size from 1 to MAXN with random lengths */
		bad = 0;
		uint32_t seed = 99 + (uint32_t)k;
		for (size_t n = 1; n <= MAXN; n += n < 20 ? 1 : 9) {
			for (size_t i = 0; i < n; i++) {
				seed = seed * 1664525u + 1013904223u;
				len[i] = (seed >> 8) % (i % 5 == 0 ? 70000 : 700);
			}
			bad += compare(lanes, key, keylens[k], n, len, seed);
		}
		ok(bad == 0, "lanes %u, key of %zu bytes: batches of 1 to %d random lengths", lanes,
		   keylens[k], MAXN);
	}
	/* the same bytes in several messages of one batch, and a batch of equal lengths */
	size_t len[MAXN];
	for (size_t i = 0; i < 9; i++)
		len[i] = 300;
	const uint8_t *msg[9];
	uint8_t got[9][32];
	for (size_t i = 0; i < 9; i++)
		msg[i] = pool + (i % 2) * 10;
	bk_blake2b_many_lanes(lanes, key, 32, 9, msg, len, got);
	int same = 0; /* each aliased message against libsodium */
	for (size_t i = 0; i < 9; i++) {
		uint8_t want[32];
		crypto_generichash(want, 32, msg[i], len[i], key, 32);
		same += memcmp(got[i], want, 32) == 0;
	}
	ok(same == 9 && compare(lanes, key, 32, 9, len, 3) == 0,
	   "lanes %u: equal messages give equal ids, equal lengths in one batch", lanes);
}

/* n messages of the given lengths (places in the pool) through streams with
 * lanes, in pieces of step bytes; the number that differ from libsodium. */
static int compare_streams(unsigned lanes, size_t n, const uint64_t *len, size_t step,
			   uint32_t seed)
{
	const uint8_t *msg[BK_BLAKE2B_STREAMS_MAX];
	for (size_t i = 0; i < n; i++)
		msg[i] = pool + (seed * 7919u + i * 104729u) % (POOL - len[i]);
	BkBlake2bStreams st;
	bk_blake2b_streams_start_lanes(&st, lanes, n, len);
	uint64_t longest = 0;
	for (size_t i = 0; i < n; i++)
		longest = len[i] > longest ? len[i] : longest;
	for (uint64_t off = 0; off == 0 || off < longest; off += step) {
		const uint8_t *piece[BK_BLAKE2B_STREAMS_MAX] = { 0 };
		for (size_t i = 0; i < n; i++)
			if (off < len[i])
				piece[i] = msg[i] + off;
		bk_blake2b_streams_update(&st, piece, step);
	}
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t want[32];
		crypto_generichash(want, 32, msg[i], len[i], NULL, 0);
		bad += memcmp(want, st.out[i], 32) != 0;
	}
	return bad;
}

static void test_streams(unsigned lanes)
{
	static const uint64_t edge[] = { 0,   1,    127,  128,  129,  255,  256,  257,
					 640, 1000, 4095, 4096, 4097, 8192, 20000, 65536 + 129 };
	const size_t nedge = sizeof(edge) / sizeof(edge[0]);
	static const size_t steps[] = { 128, 256, 640, 4096 };
	int bad = 0, runs = 0;
	for (size_t s = 0; s < 4; s++) {
		for (size_t i = 0; i < nedge; i++, runs++)
			bad += compare_streams(lanes, 1, &edge[i], steps[s], (uint32_t)i);
		for (size_t n = 2; n <= BK_BLAKE2B_STREAMS_MAX; n++) {
			uint64_t len[BK_BLAKE2B_STREAMS_MAX];
			for (size_t rot = 0; rot < nedge; rot++, runs++) {
				for (size_t i = 0; i < n; i++)
					len[i] = edge[(rot + i * 5) % nedge];
				bad += compare_streams(lanes, n, len, steps[s], (uint32_t)(rot + n));
			}
		}
	}
	ok(bad == 0, "streams, lanes %u: %d batches of 1-8 edge lengths in pieces of 128 B-4 KiB",
	   lanes, runs);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	pool = malloc(POOL);
	randombytes_buf(pool, POOL);

	unsigned best = bk_blake2b_lanes_supported();
	is_int(bk_blake2b_init(), best, "the self-check chose the CPU's widest lanes (%u)", best);
	is_int(bk_blake2b_init(), best, "a second init changes nothing");
	static const unsigned all[] = { 1, 4, 8 };
	for (size_t i = 0; i < 3; i++) {
		if (all[i] <= best) {
			test_lanes(all[i]);
			test_streams(all[i]);
		} else {
			ok(true, "# SKIP lanes %u: this CPU cannot run them", all[i]);
			ok(true, "# SKIP streams, lanes %u: this CPU cannot run them", all[i]);
		}
	}

	/* bk_blob_ids against bk_blob_id, through the repository keys */
	uint8_t repo_id[BK_REPO_ID_LEN] = { 1 };
	BkKeys *k;
	if (bk_crypto_init() < 0 || bk_keys_new(NULL, repo_id, &k) < 0)
		return 1;
	const uint8_t *msg[20];
	size_t len[20];
	uint8_t got[20][32], want[32];
	int bad = 0;
	for (size_t i = 0; i < 20; i++) {
		msg[i] = pool + i * 1000;
		len[i] = 4096 + i * 3001;
	}
	bk_blob_ids(k, 20, msg, len, got);
	for (size_t i = 0; i < 20; i++) {
		bk_blob_id(k, msg[i], len[i], want);
		bad += memcmp(want, got[i], 32) != 0;
	}
	ok(bad == 0, "bk_blob_ids gives bk_blob_id's ids");
	bk_keys_free(k);
	free(pool);
	return tap_done();
}
