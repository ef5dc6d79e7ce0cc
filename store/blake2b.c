#include "store/blake2b.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#include "store/util.h"

static const uint64_t IV[8] = {
	0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
	0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t SIGMA[10][16] = {
	{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
	{ 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3 },
	{ 11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4 },
	{ 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8 },
	{ 9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13 },
	{ 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9 },
	{ 12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11 },
	{ 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10 },
	{ 6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5 },
	{ 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0 },
};

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline void store64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

#define ROTR(x, c) (((x) >> (c)) | ((x) << (64 - (c))))
#define G(a, b, c, d, x, y)              \
	do {                             \
		a = a + b + (x);         \
		d = ROTR(d ^ a, 32);     \
		c = c + d;               \
		b = ROTR(b ^ c, 24);     \
		a = a + b + (y);         \
		d = ROTR(d ^ a, 16);     \
		c = c + d;               \
		b = ROTR(b ^ c, 63);     \
	} while (0)

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_LANES 1
#define LANES 4
#define VEC Vec4
#define FN blake2b_lanes4
#define TARGET "avx2"
#include "store/blake2b-lanes.inc"
#undef LANES
#undef VEC
#undef FN
#undef TARGET
#define LANES 8
#define VEC Vec8
#define FN blake2b_lanes8
#define TARGET "avx512f"
#include "store/blake2b-lanes.inc"
#undef LANES
#undef VEC
#undef FN
#undef TARGET
#endif

/* ---- one stream ---- */

/* RFC 7693's F on one block, each round written out so that SIGMA's indices are
 * constants and the sixteen words stay in registers. */
#define ROUND1(r)                                                                   \
	do {                                                                        \
		G(v0, v4, v8, v12, m[SIGMA[r][0]], m[SIGMA[r][1]]);                 \
		G(v1, v5, v9, v13, m[SIGMA[r][2]], m[SIGMA[r][3]]);                 \
		G(v2, v6, v10, v14, m[SIGMA[r][4]], m[SIGMA[r][5]]);                \
		G(v3, v7, v11, v15, m[SIGMA[r][6]], m[SIGMA[r][7]]);                \
		G(v0, v5, v10, v15, m[SIGMA[r][8]], m[SIGMA[r][9]]);                \
		G(v1, v6, v11, v12, m[SIGMA[r][10]], m[SIGMA[r][11]]);              \
		G(v2, v7, v8, v13, m[SIGMA[r][12]], m[SIGMA[r][13]]);               \
		G(v3, v4, v9, v14, m[SIGMA[r][14]], m[SIGMA[r][15]]);               \
	} while (0)

static void compress1(uint64_t h[8], const uint8_t block[128], uint64_t t, uint64_t f)
{
	uint64_t m[16];
	for (int i = 0; i < 16; i++)
		m[i] = load64(block + 8 * i);
	uint64_t v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6],
		 v7 = h[7], v8 = IV[0], v9 = IV[1], v10 = IV[2], v11 = IV[3], v12 = IV[4] ^ t,
		 v13 = IV[5], v14 = IV[6] ^ f, v15 = IV[7];
	ROUND1(0);
	ROUND1(1);
	ROUND1(2);
	ROUND1(3);
	ROUND1(4);
	ROUND1(5);
	ROUND1(6);
	ROUND1(7);
	ROUND1(8);
	ROUND1(9);
	ROUND1(0);
	ROUND1(1);
	h[0] ^= v0 ^ v8;
	h[1] ^= v1 ^ v9;
	h[2] ^= v2 ^ v10;
	h[3] ^= v3 ^ v11;
	h[4] ^= v4 ^ v12;
	h[5] ^= v5 ^ v13;
	h[6] ^= v6 ^ v14;
	h[7] ^= v7 ^ v15;
}

void bk_blake2b_start(BkBlake2b *s)
{
	memcpy(s->h, IV, sizeof(s->h));
	s->h[0] ^= 0x01010000ULL | 32;
	s->t = 0;
	s->buflen = 0;
}

void bk_blake2b_update(BkBlake2b *s, const void *data, size_t n)
{
	const uint8_t *p = data;
	if (n == 0) /* (data may be NULL) */
		return;
	/* the last block is compressed by bk_blake2b_final, with the final flag: a
	 * full buffer is compressed only once more bytes follow it */
	if (s->buflen > 0) {
		size_t take = BK_MIN(n, sizeof(s->buf) - s->buflen);
		memcpy(s->buf + s->buflen, p, take);
		s->buflen += take;
		p += take;
		n -= take;
		if (n == 0)
			return;
		s->t += sizeof(s->buf);
		compress1(s->h, s->buf, s->t, 0);
		s->buflen = 0;
	}
	for (; n > sizeof(s->buf); p += sizeof(s->buf), n -= sizeof(s->buf)) {
		s->t += sizeof(s->buf);
		compress1(s->h, p, s->t, 0);
	}
	memcpy(s->buf, p, n);
	s->buflen = n;
}

void bk_blake2b_final(BkBlake2b *s, uint8_t out[32])
{
	memset(s->buf + s->buflen, 0, sizeof(s->buf) - s->buflen);
	s->t += s->buflen;
	compress1(s->h, s->buf, s->t, ~(uint64_t)0);
	for (int i = 0; i < 4; i++)
		store64(out + 8 * i, s->h[i]);
}

/* ---- many messages ---- */

static _Atomic unsigned chosen = 1;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

unsigned bk_blake2b_lanes_supported(void)
{
#ifdef HAVE_LANES
	__builtin_cpu_init();
	/* libgcc reports a feature only if the OS saves its registers (xgetbv); the
	 * 8-lane code is compiled for avx512f and uses AVX2 instructions too */
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2"))
		return 8;
	if (__builtin_cpu_supports("avx2"))
		return 4;
#endif
	return 1;
}

/* The messages in decreasing length, so that the lanes end close together. */
static void longest_first(size_t n, const size_t *len, size_t *order)
{
	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		for (; j > 0 && len[order[j - 1]] < len[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
}

#define CHUNK 64 /* messages ordered at a time */

void bk_blake2b_many_lanes(unsigned lanes, const uint8_t *key, size_t keylen, size_t n,
			   const uint8_t *const *msg, const size_t *len, uint8_t (*out)[32])
{
#ifdef HAVE_LANES
	assert(keylen <= BK_BLAKE2B_KEY_MAX);
	if (lanes == 4 || lanes == 8) {
		_Alignas(64) uint8_t keyblock[128] = { 0 };
		if (keylen)
			memcpy(keyblock, key, keylen);
		uint64_t param0 = 0x01010000ULL | (uint64_t)keylen << 8 | 32;
		size_t order[CHUNK];
		for (size_t at = 0; at < n; at += CHUNK) {
			size_t k = n - at < CHUNK ? n - at : CHUNK;
			longest_first(k, len + at, order);
			(lanes == 8 ? blake2b_lanes8 : blake2b_lanes4)(keylen ? keyblock : NULL, param0,
									 k, msg + at, len + at, order,
									 out + at);
		}
		sodium_memzero(keyblock, sizeof(keyblock));
		return;
	}
#endif
	(void)lanes;
	for (size_t i = 0; i < n; i++)
		crypto_generichash(out[i], 32, msg[i], len[i], key, keylen);
}

void bk_blake2b_many(const uint8_t *key, size_t keylen, size_t n, const uint8_t *const *msg,
		     const size_t *len, uint8_t (*out)[32])
{
	/* the self-check runs at the first batch, not at every process start */
	bk_blake2b_many_lanes(n > 1 ? bk_blake2b_init() : 1, key, keylen, n, msg, len, out);
}

/* Runs lanes on messages of every length around the block and lane boundaries,
 * keyed and not, against libsodium. */
static bool lanes_agree(unsigned lanes)
{
	enum { N = 40 };
	static uint8_t data[N * 67 + 300];
	const uint8_t *msg[N];
	size_t len[N];
	uint8_t key[BK_BLAKE2B_KEY_MAX], got[N][32], want[32];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 131 + 7);
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 29 + 1);
	for (size_t i = 0; i < N; i++) {
		msg[i] = data + i;
		len[i] = (i * 67) % 300 + (i % 3 == 0 ? 128 - i % 2 : 0);
	}
	len[0] = 0;
	len[1] = 128;
	len[2] = 256;
	for (size_t keylen = 0; keylen <= 64; keylen += 32) {
		bk_blake2b_many_lanes(lanes, key, keylen, N, msg, len, got);
		for (size_t i = 0; i < N; i++) {
			crypto_generichash(want, 32, msg[i], len[i], keylen ? key : NULL, keylen);
			if (memcmp(want, got[i], 32) != 0)
				return false;
		}
	}
	return true;
}

static void choose(void)
{
	unsigned lanes = bk_blake2b_lanes_supported();
	if (lanes == 8 && !lanes_agree(8))
		lanes = 4;
	if (lanes == 4 && !lanes_agree(4))
		lanes = 1;
	atomic_store_explicit(&chosen, lanes, memory_order_relaxed);
}

unsigned bk_blake2b_init(void)
{
	pthread_once(&init_once, choose);
	return atomic_load_explicit(&chosen, memory_order_relaxed);
}
