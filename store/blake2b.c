#include "store/blake2b.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

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
#define COMPRESS compress4
#define FN blake2b_lanes4
#define STEP streams_step4
#define TARGET "avx2"
#include "store/blake2b-lanes.inc"
#undef LANES
#undef VEC
#undef COMPRESS
#undef FN
#undef STEP
#undef TARGET
#define LANES 8
#define VEC Vec8
#define COMPRESS compress8
#define FN blake2b_lanes8
#define STEP streams_step8
#define TARGET "avx512f"
#include "store/blake2b-lanes.inc"
#undef LANES
#undef VEC
#undef COMPRESS
#undef FN
#undef STEP
#undef TARGET
#endif

/* ---- many messages ---- */

static _Atomic unsigned chosen = 1;
static _Atomic bool four_ok; /* the 4 lanes agreed with libsodium */
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

/* The lanes for n messages side by side: libsodium for one alone (faster than one
 * lane of the vectors); 4 lanes for up to four where the CPU has 8, not 8 with half
 * of them idle (4 messages of 128 KiB, a WAL batch: 2.2 against 1.8 GB/s a core on
 * an AVX-512 EPYC). The self-check runs at the first batch, not at every process
 * start. */
static unsigned lanes_for(size_t n)
{
	unsigned lanes = n > 1 ? bk_blake2b_init() : 1;
	bool four = atomic_load_explicit(&four_ok, memory_order_relaxed);
	return lanes == 8 && n <= 4 && four ? 4 : lanes;
}

void bk_blake2b_many(const uint8_t *key, size_t keylen, size_t n, const uint8_t *const *msg,
		     const size_t *len, uint8_t (*out)[32])
{
	bk_blake2b_many_lanes(lanes_for(n), key, keylen, n, msg, len, out);
}

/* ---- streams ---- */

void bk_blake2b_streams_start_lanes(BkBlake2bStreams *s, unsigned lanes, size_t n,
				    const uint64_t *len)
{
	assert(n >= 1 && n <= BK_BLAKE2B_STREAMS_MAX);
	memset(s, 0, sizeof(*s));
	s->n = (unsigned)n;
	s->lanes = lanes;
	for (size_t i = 0; i < n; i++) {
		s->len[i] = len[i];
		for (int w = 0; w < 8; w++)
			s->h[i][w] = w == 0 ? IV[0] ^ 0x01010020ULL : IV[w]; /* unkeyed, 32 bytes */
		crypto_generichash_init(&s->sodium[i], NULL, 0, 32); /* used by lanes 1 */
	}
}

_Static_assert(BK_BLAKE2B_STREAMS_MAX % 8 == 0, "streams run in whole groups of lanes");

void bk_blake2b_streams_start(BkBlake2bStreams *s, size_t n, const uint64_t *len)
{
	bk_blake2b_streams_start_lanes(s, lanes_for(n), n, len);
}

void bk_blake2b_streams_update(BkBlake2bStreams *s, const uint8_t *const *piece, size_t step)
{
	assert(step > 0 && step % 128 == 0);
#ifdef HAVE_LANES
	if (s->lanes == 4 || s->lanes == 8) {
		for (unsigned base = 0; base < s->n; base += s->lanes)
			(s->lanes == 8 ? streams_step8 : streams_step4)(s, base, piece, step);
		s->off += step;
		return;
	}
#endif
	for (unsigned i = 0; i < s->n; i++) {
		if (s->done[i])
			continue;
		uint64_t left = s->len[i] - s->off;
		crypto_generichash_update(&s->sodium[i], piece[i], left < step ? left : step);
		if (left <= step) {
			crypto_generichash_final(&s->sodium[i], s->out[i], 32);
			s->done[i] = true;
		}
	}
	s->off += step;
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

/* Both vector widths are checked where the CPU has 8 lanes: lanes_for() takes 4
 * for a few messages. */
static void choose(void)
{
	unsigned lanes = bk_blake2b_lanes_supported();
	bool four = lanes >= 4 && lanes_agree(4);
	if (lanes == 8 && !lanes_agree(8))
		lanes = 4;
	if (lanes == 4 && !four)
		lanes = 1;
	atomic_store_explicit(&four_ok, four, memory_order_relaxed);
	atomic_store_explicit(&chosen, lanes, memory_order_relaxed);
}

unsigned bk_blake2b_init(void)
{
	pthread_once(&init_once, choose);
	return atomic_load_explicit(&chosen, memory_order_relaxed);
}
