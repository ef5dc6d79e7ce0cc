/* Unit tests for chunker/fastcdc: parameter checks, the documented gear and mask
 * derivation, agreement with a byte-at-a-time reference of the paper's algorithm,
 * determinism, seed dependence, independence from read sizes, min/max bounds,
 * mean chunk size, locality of an insertion, and end-of-stream behaviour.
 *
 * All data comes from a seeded SplitMix64 stream, so every run sees the same
 * bytes; the sizes keep the run to a few seconds at -O2. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunker/fastcdc.h"
#include "tests/tap.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define BIG (100 * MiB) /* random data shared by the tests */
#define STREAM (20 * MiB) /* prefix fed through the streaming driver */

typedef struct {
	size_t min, avg, max;
} Sizes;

/* The project's sizes, then odd ones that put min, avg and max on either parity
 * of the two-bytes-per-step loop, and the extremes of avg. */
static const Sizes project_sizes[] = {
	{ 4 * KiB, 16 * KiB, 64 * KiB },
	{ 8 * KiB, 32 * KiB, 128 * KiB },
	{ 16 * KiB, 64 * KiB, 256 * KiB },
};
static const Sizes odd_sizes[] = {
	{ 1001, 2048, 7777 }, { 0, 1024, 1025 }, { 1, 1024, 4097 }, { 1023, 1024, 1026 },
	{ 333, 4096, 9999 },  { 1 * MiB, 4 * MiB, 5 * MiB + 1 },
};
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(99);
	}
	return p;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_random(uint8_t *buf, size_t n, uint64_t state)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v = splitmix64(&state);
		memcpy(buf + i, &v, 8);
	}
	for (; i < n; i++)
		buf[i] = (uint8_t)splitmix64(&state);
}

static void make_seed(uint8_t seed[32], uint64_t state)
{
	fill_random(seed, 32, state);
}

/* A growing list of chunk lengths. */
typedef struct {
	size_t *v;
	size_t n, cap;
} Cuts;

static void cuts_push(Cuts *c, size_t len)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		size_t *v = realloc(c->v, c->cap * sizeof(*v));
		if (!v) {
			fprintf(stderr, "out of memory\n");
			exit(99);
		}
		c->v = v;
	}
	c->v[c->n++] = len;
}

static bool cuts_equal(const Cuts *a, const Cuts *b)
{
	return a->n == b->n && memcmp(a->v, b->v, a->n * sizeof(*a->v)) == 0;
}

static void cuts_free(Cuts *c)
{
	free(c->v);
	*c = (Cuts){ 0 };
}

/* Chunks all of buf, handing the chunker the whole rest each time. Returns false
 * if the chunker ever answers 0 or more than it was given. */
static bool chunk_all(const BkFastCdc *c, const uint8_t *buf, size_t n, Cuts *out)
{
	size_t off = 0;
	while (off < n) {
		size_t cut = bk_fastcdc_next(c, buf + off, n - off, true);
		if (cut == 0 || cut > n - off)
			return false;
		cuts_push(out, cut);
		off += cut;
	}
	return true;
}

/* The paper's algorithm one byte at a time, as plainly as possible, on the
 * chunker's own gear table and masks. */
static size_t ref_next(const BkFastCdc *c, const uint8_t *buf, size_t len)
{
	if (len <= c->min)
		return len;
	size_t end = len < c->max ? len : c->max;
	uint64_t h = 0;
	for (size_t i = c->min; i < end; i++) {
		h = (h << 1) + c->gear[buf[i]];
		if ((h & (i < c->normal ? c->mask_s : c->mask_l)) == 0)
			return i + 1;
	}
	return end;
}

static bool ref_chunk_all(const BkFastCdc *c, const uint8_t *buf, size_t n, Cuts *out)
{
	for (size_t off = 0; off < n;) {
		size_t cut = ref_next(c, buf + off, n - off);
		cuts_push(out, cut);
		off += cut;
	}
	return true;
}

static unsigned popcount64(uint64_t x)
{
	unsigned n = 0;
	for (; x; x &= x - 1)
		n++;
	return n;
}

static unsigned log2_exact(size_t x)
{
	unsigned b = 0;
	while (((size_t)1 << b) < x)
		b++;
	return b;
}

/* ------------------------------------------------------------------------- */

static void test_params(void)
{
	uint8_t seed[32];
	make_seed(seed, 1);
	BkFastCdc c;

	const Sizes bad[] = {
		{ 16 * KiB, 16 * KiB, 64 * KiB }, /* min == avg */
		{ 32 * KiB, 16 * KiB, 64 * KiB }, /* min > avg */
		{ 4 * KiB, 16 * KiB, 16 * KiB },  /* avg == max */
		{ 4 * KiB, 16 * KiB, 8 * KiB },	  /* avg > max */
		{ 1000, 3000, 9000 },		  /* avg not a power of two */
		{ 4 * KiB, 16 * KiB + 1, 64 * KiB },
		{ 100, 512, 4096 },		  /* avg below BK_FASTCDC_MIN_AVG */
		{ 1 * MiB, 8 * MiB, 32 * MiB },	  /* avg above BK_FASTCDC_MAX_AVG */
		{ 0, 0, 1 },
		{ 0, 0, 0 },
	};
	bool all_einval = true, untouched = true;
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		memset(&c, 0xa5, sizeof(c));
		int r = bk_fastcdc_init(&c, seed, bad[i].min, bad[i].avg, bad[i].max);
		if (r != -EINVAL) {
			all_einval = false;
			diag("%zu/%zu/%zu gave %d", bad[i].min, bad[i].avg, bad[i].max, r);
		}
		const uint8_t *p = (const uint8_t *)&c;
		for (size_t k = 0; k < sizeof(c); k++)
			if (p[k] != 0xa5)
				untouched = false;
	}
	ok(all_einval, "invalid sizes give -EINVAL");
	ok(untouched, "a failed init leaves the struct untouched");

	bool all_ok = true, masks_ok = true;
	const Sizes good[] = {
		{ 4 * KiB, 16 * KiB, 64 * KiB },	 { 8 * KiB, 32 * KiB, 128 * KiB },
		{ 16 * KiB, 64 * KiB, 256 * KiB },	 { 0, BK_FASTCDC_MIN_AVG, BK_FASTCDC_MIN_AVG + 1 },
		{ BK_FASTCDC_MAX_AVG - 1, BK_FASTCDC_MAX_AVG, BK_FASTCDC_MAX_AVG + 1 },
	};
	for (size_t i = 0; i < N_ELEMS(good); i++) {
		int r = bk_fastcdc_init(&c, seed, good[i].min, good[i].avg, good[i].max);
		if (r != 0) {
			all_ok = false;
			diag("%zu/%zu/%zu gave %d", good[i].min, good[i].avg, good[i].max, r);
			continue;
		}
		unsigned b = log2_exact(good[i].avg);
		if (popcount64(c.mask_s) != b + 2 || popcount64(c.mask_l) != b - 2 ||
		    (c.mask_s | c.mask_l) >> 63 || c.min != good[i].min || c.avg != good[i].avg ||
		    c.max != good[i].max)
			masks_ok = false;
	}
	ok(all_ok, "valid sizes accepted, avg from BK_FASTCDC_MIN_AVG to BK_FASTCDC_MAX_AVG");
	ok(masks_ok, "mask_s has log2(avg)+2 bits, mask_l log2(avg)-2, neither bit 63");

	/* The spreading documented in fastcdc.c: n bits at 16 + floor(j*31/(n-1)). */
	bool doc = true;
	for (size_t avg = BK_FASTCDC_MIN_AVG; avg <= BK_FASTCDC_MAX_AVG; avg *= 2) {
		bk_fastcdc_init(&c, seed, avg / 4, avg, avg * 4);
		unsigned b = log2_exact(avg);
		uint64_t ms = 0, ml = 0;
		for (unsigned j = 0; j < b + 2; j++)
			ms |= 1ull << (16 + j * 31 / (b + 1));
		for (unsigned j = 0; j < b - 2; j++)
			ml |= 1ull << (16 + j * 31 / (b - 3));
		if (c.mask_s != ms || c.mask_l != ml)
			doc = false;
	}
	ok(doc, "masks follow the documented spreading over bits 16..47");
}

/* The expansion documented in fastcdc.c, written out again. */
static uint64_t doc_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_gear(void)
{
	uint8_t seed[32];
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	BkFastCdc c, d;
	bk_fastcdc_init(&c, seed, 4 * KiB, 16 * KiB, 64 * KiB);

	bool doc = true;
	for (unsigned i = 0; i < 256; i++) {
		uint64_t z = (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull;
		for (int k = 0; k < 4; k++) {
			uint64_t w = 0;
			for (int j = 7; j >= 0; j--)
				w = (w << 8) | seed[8 * k + j];
			z = doc_mix(z ^ w);
		}
		if (c.gear[i] != z)
			doc = false;
	}
	ok(doc, "gear table follows the documented SplitMix64 expansion");

	/* Pinned values: cut points are part of the repository format. */
	ok(c.gear[0] == 0x67563d8aac144f44ull && c.gear[255] == 0x297697c83398897bull,
	   "gear table known answer (%016" PRIx64 " %016" PRIx64 ")", c.gear[0], c.gear[255]);
	ok(c.mask_s == 0x0000955555550000ull && c.mask_l == 0x0000924949250000ull,
	   "masks known answer (%016" PRIx64 " %016" PRIx64 ")", c.mask_s, c.mask_l);

	bool every_word = true;
	for (int byte = 0; byte < 32; byte += 7) {
		uint8_t s2[32];
		memcpy(s2, seed, 32);
		s2[byte] ^= 0x10;
		bk_fastcdc_init(&d, s2, 4 * KiB, 16 * KiB, 64 * KiB);
		for (int i = 0; i < 256; i++)
			if (c.gear[i] == d.gear[i])
				every_word = false;
	}
	ok(every_word, "flipping one seed bit changes every gear entry");

	uint8_t zero[32] = { 0 };
	bk_fastcdc_init(&d, zero, 4 * KiB, 16 * KiB, 64 * KiB);
	uint64_t sorted[256];
	memcpy(sorted, d.gear, sizeof(sorted));
	qsort(sorted, 256, sizeof(sorted[0]), cmp_u64);
	bool distinct = true;
	for (int i = 1; i < 256; i++)
		if (sorted[i] == sorted[i - 1])
			distinct = false;
	ok(distinct && sorted[0] != 0, "all-zero seed still gives 256 distinct non-zero entries");
}

/* Cut list of a fixed MiB pinned, so an accidental change to the algorithm is
 * caught even if it stays self-consistent. */
static void test_known_answer(const uint8_t *data)
{
	uint8_t seed[32];
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	BkFastCdc c;
	bk_fastcdc_init(&c, seed, 4 * KiB, 16 * KiB, 64 * KiB);
	Cuts cuts = { 0 };
	chunk_all(&c, data, 1 * MiB, &cuts);
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < cuts.n; i++)
		h = (h ^ cuts.v[i]) * 0x100000001b3ull;
	ok(cuts.n == 67 && cuts.v[0] == 18646 && h == 0xed9cfbc9dc6a1519ull,
	   "known answer: %zu chunks, first %zu, digest %016" PRIx64, cuts.n,
	   cuts.n ? cuts.v[0] : 0, h);
	cuts_free(&cuts);
}

static void test_reference(const uint8_t *data)
{
	uint8_t seed[32];
	make_seed(seed, 2);
	size_t n = 8 * MiB;
	/* Low-entropy data too: cuts fall more often and on both parities. */
	uint8_t *low = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		low[i] = data[i] & 0x03;

	for (int pass = 0; pass < 2; pass++) {
		const Sizes *set = pass ? odd_sizes : project_sizes;
		size_t count = pass ? N_ELEMS(odd_sizes) : N_ELEMS(project_sizes);
		for (size_t s = 0; s < count; s++) {
			BkFastCdc c;
			bk_fastcdc_init(&c, seed, set[s].min, set[s].avg, set[s].max);
			bool same = true;
			size_t chunks = 0;
			for (int which = 0; which < 2; which++) {
				const uint8_t *buf = which ? low : data;
				Cuts a = { 0 }, b = { 0 };
				bool r = chunk_all(&c, buf, n, &a);
				ref_chunk_all(&c, buf, n, &b);
				if (!r || !cuts_equal(&a, &b))
					same = false;
				chunks += a.n;
				cuts_free(&a);
				cuts_free(&b);
			}
			ok(same, "%zu/%zu/%zu: same %zu cuts as the byte-at-a-time reference",
			   set[s].min, set[s].avg, set[s].max, chunks);
		}
	}
	free(low);
}

static void test_determinism_and_seeds(const uint8_t *data)
{
	size_t n = 32 * MiB;
	uint8_t s1[32], s2[32];
	make_seed(s1, 3);
	make_seed(s2, 4);
	BkFastCdc a, b, other;
	bk_fastcdc_init(&a, s1, 16 * KiB, 64 * KiB, 256 * KiB);
	bk_fastcdc_init(&b, s1, 16 * KiB, 64 * KiB, 256 * KiB);
	bk_fastcdc_init(&other, s2, 16 * KiB, 64 * KiB, 256 * KiB);

	Cuts ca = { 0 }, cb = { 0 }, co = { 0 };
	chunk_all(&a, data, n, &ca);
	chunk_all(&b, data, n, &cb);
	chunk_all(&other, data, n, &co);
	ok(ca.n > 100 && cuts_equal(&ca, &cb), "same data and seed give the same %zu cuts", ca.n);

	/* Count cut offsets the two seeds share (both lists are ascending). */
	size_t shared = 0, i = 0, j = 0, oa = 0, oo = 0;
	while (i < ca.n && j < co.n) {
		if (oa + ca.v[i] == oo + co.v[j]) {
			shared++;
			oa += ca.v[i++];
			oo += co.v[j++];
		} else if (oa + ca.v[i] < oo + co.v[j]) {
			oa += ca.v[i++];
		} else {
			oo += co.v[j++];
		}
	}
	ok(!cuts_equal(&ca, &co) && shared * 20 < ca.n,
	   "another seed gives other cuts (%zu of %zu offsets shared)", shared, ca.n);
	cuts_free(&ca);
	cuts_free(&cb);
	cuts_free(&co);
}

/* Streaming driver: reads from data in pieces of read_size bytes (0: random
 * sizes, log-uniform from 1 byte to 1 MiB) into a window that starts at the
 * current chunk start, and asks for a cut after reads. With growth set, after a
 * "need more" answer at length L it waits until the window reaches L + L/4 + 1
 * (keeps byte-sized reads from rescanning the window after every byte). The
 * bytes just past the window are overwritten before each call, so a chunker
 * that reads beyond len gets different cuts. */
static bool stream_chunk(const BkFastCdc *c, const uint8_t *data, size_t n, size_t read_size,
			 bool growth, uint64_t rng, Cuts *out)
{
	const size_t poison = 64, max_read = 1 * MiB;
	size_t cap = c->max + max_read + poison;
	uint8_t *win = xmalloc(cap);
	size_t len = 0, in = 0, next_try = 0;
	bool fine = true;

	for (;;) {
		size_t want = read_size;
		if (!want) {
			uint64_t r = splitmix64(&rng);
			want = (size_t)1 << (r % 21);
			want += (size_t)(r >> 32) % want;
			if (want > max_read)
				want = max_read;
		}
		if (want > n - in)
			want = n - in;
		memcpy(win + len, data + in, want);
		len += want;
		in += want;
		bool eof = in == n;
		if (!eof && len < next_try)
			continue;

		for (;;) {
			memset(win + len, (int)(splitmix64(&rng) | 1), poison);
			size_t cut = bk_fastcdc_next(c, win, len, eof);
			if (cut == 0) {
				if (eof && len > 0)
					fine = false;
				next_try = growth ? len + len / 4 + 1 : 0;
				break;
			}
			if (cut > len || cut > c->max) {
				fine = false;
				break;
			}
			cuts_push(out, cut);
			memmove(win, win + cut, len - cut);
			len -= cut;
			next_try = 0;
		}
		if (eof || !fine)
			break;
	}
	free(win);
	return fine && len == 0;
}

static void test_read_sizes(const uint8_t *data)
{
	uint8_t seed[32];
	make_seed(seed, 5);
	BkFastCdc c;
	bk_fastcdc_init(&c, seed, 16 * KiB, 64 * KiB, 256 * KiB);
	Cuts whole = { 0 };
	chunk_all(&c, data, STREAM, &whole);

	const struct {
		size_t size;
		bool growth;
		const char *name;
	} reads[] = {
		{ 1, true, "1 byte" },		 { 7, true, "7 bytes" },
		{ 0, false, "random" },		 { 4096, false, "4 KiB" },
		{ 16 * KiB + 1, false, "min + 1" }, { 256 * KiB - 1, false, "max - 1" },
		{ 1 * MiB, false, "1 MiB" },
	};
	for (size_t r = 0; r < N_ELEMS(reads); r++) {
		Cuts s = { 0 };
		bool fine = stream_chunk(&c, data, STREAM, reads[r].size, reads[r].growth, 6 + r, &s);
		ok(fine && cuts_equal(&s, &whole), "%s reads: same %zu cuts as one buffer",
		   reads[r].name, s.n);
		cuts_free(&s);
	}

	/* The contract directly: on a window cut short of the next cut (and of max)
	 * the answer is 0, or the whole window at end of stream; at or past the cut it
	 * is the cut. Exact-size copies let the sanitizer see any over-read. */
	bool prefix = true;
	uint64_t rng = 77;
	size_t off = 0;
	for (size_t k = 0; k < whole.n && k < 40; off += whole.v[k++]) {
		size_t cut = whole.v[k];
		for (int t = 0; t < 6; t++) {
			uint64_t r = splitmix64(&rng);
			size_t l = t == 0 ? cut - 1 : t == 1 ? cut : (size_t)(r % (2 * cut));
			if (l > STREAM - off)
				l = STREAM - off;
			uint8_t *p = xmalloc(l);
			memcpy(p, data + off, l);
			size_t want_more = l < cut ? 0 : cut;
			size_t want_eof = l < cut ? l : cut;
			if (bk_fastcdc_next(&c, p, l, false) != want_more ||
			    bk_fastcdc_next(&c, p, l, true) != want_eof) {
				prefix = false;
				diag("chunk %zu (cut %zu), window %zu", k, cut, l);
			}
			free(p);
		}
	}
	ok(prefix, "windows short of the cut need more data; at or past it give the cut");
	cuts_free(&whole);
}

static void test_bounds(const uint8_t *data)
{
	uint8_t seed[32];
	make_seed(seed, 8);
	size_t n = 32 * MiB + 12345;
	uint8_t *zero = xmalloc(n);
	memset(zero, 0, n);

	for (size_t s = 0; s < N_ELEMS(project_sizes); s++) {
		const Sizes *z = &project_sizes[s];
		BkFastCdc c;
		bk_fastcdc_init(&c, seed, z->min, z->avg, z->max);

		Cuts cuts = { 0 };
		bool fine = chunk_all(&c, data, n, &cuts);
		size_t total = 0, lo = SIZE_MAX, hi = 0;
		for (size_t i = 0; i < cuts.n; i++) {
			total += cuts.v[i];
			if (i + 1 < cuts.n && cuts.v[i] < lo)
				lo = cuts.v[i];
			if (cuts.v[i] > hi)
				hi = cuts.v[i];
		}
		ok(fine && total == n && lo > z->min && hi <= z->max,
		   "%zu/%zu/%zu random: %zu chunks from %zu to %zu bytes", z->min, z->avg, z->max,
		   cuts.n, lo, hi);
		cuts_free(&cuts);

		fine = chunk_all(&c, zero, n, &cuts);
		bool all_max = fine && cuts.n == (n + z->max - 1) / z->max;
		for (size_t i = 0; all_max && i + 1 < cuts.n; i++)
			if (cuts.v[i] != z->max)
				all_max = false;
		if (all_max && cuts.v[cuts.n - 1] != n - (cuts.n - 1) * z->max)
			all_max = false;
		ok(all_max, "%zu/%zu/%zu zeros: %zu chunks of max size, then the rest", z->min,
		   z->avg, z->max, cuts.n);
		cuts_free(&cuts);
	}
	free(zero);
}

/* Expected chunk length if each hashed byte cuts independently with probability
 * 2^-bits(mask): P(len > k) is the chance that none of bytes min..k-1 cut. */
static double expected_mean(const BkFastCdc *c)
{
	double ps = 1.0 / (double)(1ull << popcount64(c->mask_s));
	double pl = 1.0 / (double)(1ull << popcount64(c->mask_l));
	double survive = 1, sum = 0;
	for (size_t k = 0; k < c->max; k++) {
		sum += survive;
		if (k >= c->min)
			survive *= 1 - (k < c->normal ? ps : pl);
	}
	return sum;
}

static void test_mean(const uint8_t *data)
{
	uint8_t seed[32];
	make_seed(seed, 9);
	for (size_t s = 0; s < N_ELEMS(project_sizes); s++) {
		const Sizes *z = &project_sizes[s];
		BkFastCdc c;
		bk_fastcdc_init(&c, seed, z->min, z->avg, z->max);
		Cuts cuts = { 0 };
		chunk_all(&c, data, BIG, &cuts);
		/* The last chunk is the rest, not a sample. */
		double mean = (double)(BIG - cuts.v[cuts.n - 1]) / (double)(cuts.n - 1);
		double want = expected_mean(&c);
		ok(mean > 0.97 * want && mean < 1.03 * want,
		   "%zu/%zu/%zu: mean chunk %.0f bytes = %.3f x avg, model %.3f x avg", z->min,
		   z->avg, z->max, mean, mean / (double)z->avg, want / (double)z->avg);
		ok(mean > 0.9 * (double)z->avg && mean < 1.1 * (double)z->avg,
		   "%zu/%zu/%zu: mean chunk within 10%% of avg (%.3f x)", z->min, z->avg, z->max,
		   mean / (double)z->avg);
		cuts_free(&cuts);
	}
}

/* 64-bit content digest of a chunk, for comparing chunk sets. */
static uint64_t digest(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 29);
}

static uint64_t *chunk_digests(const uint8_t *buf, const Cuts *cuts)
{
	uint64_t *d = xmalloc(cuts->n * sizeof(*d));
	size_t off = 0;
	for (size_t i = 0; i < cuts->n; off += cuts->v[i++])
		d[i] = digest(buf + off, cuts->v[i]);
	return d;
}

static size_t count_missing(const uint64_t *d, size_t n, const uint64_t *sorted, size_t m)
{
	size_t missing = 0;
	for (size_t i = 0; i < n; i++)
		if (!bsearch(&d[i], sorted, m, sizeof(*sorted), cmp_u64))
			missing++;
	return missing;
}

/* One byte inserted near the start of 100 MB of random data: the chunk holding
 * it changes, and perhaps a neighbour (the inserted byte moves the avg switch
 * point and the min skip by one), then cuts fall in step again. Chunk sets over
 * the whole 100 MB are compared by content. */
static void test_insertion(const uint8_t *data)
{
	uint8_t seed[32];
	make_seed(seed, 10);
	BkFastCdc c;
	bk_fastcdc_init(&c, seed, 16 * KiB, 64 * KiB, 256 * KiB);

	Cuts ca = { 0 };
	chunk_all(&c, data, BIG, &ca);
	uint64_t *da = chunk_digests(data, &ca);
	qsort(da, ca.n, sizeof(*da), cmp_u64);

	uint8_t *b = xmalloc(BIG + 1);
	const size_t at[] = { 0, 1000, 16 * KiB + 10, 100 * KiB };
	for (size_t k = 0; k < N_ELEMS(at); k++) {
		memcpy(b, data, at[k]);
		b[at[k]] = (uint8_t)(data[at[k]] ^ 0x5a);
		memcpy(b + at[k] + 1, data + at[k], BIG - at[k]);
		Cuts cb = { 0 };
		chunk_all(&c, b, BIG + 1, &cb);
		uint64_t *db = chunk_digests(b, &cb);
		size_t added = count_missing(db, cb.n, da, ca.n);
		qsort(db, cb.n, sizeof(*db), cmp_u64);
		/* and the other way round: chunks of the original no longer produced */
		uint64_t *dau = chunk_digests(data, &ca);
		size_t lost = count_missing(dau, ca.n, db, cb.n);
		ok(added >= 1 && added <= 3 && lost <= 3,
		   "byte inserted at %zu: %zu of %zu chunks new, %zu of %zu gone", at[k], added, cb.n,
		   lost, ca.n);
		free(dau);
		free(db);
		cuts_free(&cb);
	}
	free(b);
	free(da);
	cuts_free(&ca);
}

static void test_eof(const uint8_t *data)
{
	uint8_t seed[32];
	make_seed(seed, 11);
	BkFastCdc c;
	bk_fastcdc_init(&c, seed, 4 * KiB, 16 * KiB, 64 * KiB);
	size_t big = 3 * c.max;
	uint8_t *zero = xmalloc(big);
	memset(zero, 0, big);

	ok(bk_fastcdc_next(&c, NULL, 0, true) == 0 && bk_fastcdc_next(&c, NULL, 0, false) == 0 &&
		   bk_fastcdc_next(&c, data, 0, true) == 0,
	   "empty input gives 0, at eof or not");
	ok(bk_fastcdc_next(&c, data, 1, true) == 1 && bk_fastcdc_next(&c, data, 1, false) == 0,
	   "one byte: 1 at eof, else need more");
	ok(bk_fastcdc_next(&c, data, c.min, true) == c.min &&
		   bk_fastcdc_next(&c, data, c.min, false) == 0,
	   "min bytes: all of them at eof, else need more");
	ok(bk_fastcdc_next(&c, zero, c.max - 1, true) == c.max - 1 &&
		   bk_fastcdc_next(&c, zero, c.max - 1, false) == 0,
	   "max - 1 bytes without a cut: the rest at eof, else need more");
	ok(bk_fastcdc_next(&c, zero, c.max, false) == c.max &&
		   bk_fastcdc_next(&c, zero, big, false) == c.max &&
		   bk_fastcdc_next(&c, zero, big, true) == c.max,
	   "no cut within max: max, at eof or not");
	size_t cut = bk_fastcdc_next(&c, data, 1 * MiB, true);
	ok(cut > c.min && cut < c.max && bk_fastcdc_next(&c, data, 1 * MiB, false) == cut &&
		   bk_fastcdc_next(&c, data, cut, false) == cut &&
		   bk_fastcdc_next(&c, data, cut, true) == cut,
	   "a content cut (%zu) is the answer at eof or not, from its own length on", cut);
	free(zero);
}

/* Fixed-size cutting: every block full but the last, from any read sizes, and
 * invalid sizes refused. */
static void test_fixed(const uint8_t *data)
{
	BkFastCdc c;
	ok(bk_fastcdc_init_fixed(&c, 3 * KiB) == -EINVAL && bk_fastcdc_init_fixed(&c, 512) == -EINVAL &&
		   bk_fastcdc_init_fixed(&c, 8 * MiB) == -EINVAL,
	   "fixed: a size not a power of two or outside 1 KiB..4 MiB is refused");
	ok(bk_fastcdc_init_fixed(&c, 32 * KiB) == 0, "fixed: 32 KiB blocks");
	ok(bk_fastcdc_next(&c, data, 32 * KiB - 1, false) == 0 &&
		   bk_fastcdc_next(&c, data, 32 * KiB - 1, true) == 32 * KiB - 1 &&
		   bk_fastcdc_next(&c, data, 32 * KiB, false) == 32 * KiB &&
		   bk_fastcdc_next(&c, data, 1 * MiB, true) == 32 * KiB &&
		   bk_fastcdc_next(&c, data, 0, true) == 0,
	   "fixed: need more below a block, the rest at eof, a block from a block on");
	const size_t n = 10 * 32 * KiB + 12345;
	Cuts cuts = { 0 };
	bool fine = stream_chunk(&c, data, n, 0, false, 77, &cuts);
	size_t full = 0;
	for (size_t i = 0; i < cuts.n; i++)
		full += cuts.v[i] == 32 * KiB;
	ok(fine && cuts.n == 11 && full == 10 && cuts.v[10] == 12345,
	   "fixed: a stream read in random sizes cuts at every 32 KiB from its start (%zu cuts)",
	   cuts.n);
	cuts_free(&cuts);
}

int main(void)
{
	uint8_t *data = xmalloc(BIG);
	fill_random(data, BIG, 0x5eed);

	test_params();
	test_gear();
	test_known_answer(data);
	test_reference(data);
	test_determinism_and_seeds(data);
	test_read_sizes(data);
	test_bounds(data);
	test_mean(data);
	test_insertion(data);
	test_eof(data);
	test_fixed(data);

	free(data);
	return tap_done();
}
