/* chunker/fastcdc.c: FastCDC cut-point search (Xia et al., USENIX ATC 2016 and
 * IEEE TPDS 2020) with normalised chunking at level 2 and the 2020 paper's
 * "rolling two bytes each time" loop. See fastcdc.h for the contract.
 *
 * The gear table and the masks decide every cut point of every repository, so
 * they are part of the repository format: changing gear_entry() or spread_mask()
 * changes all cut points and breaks deduplication against existing data. */
#include "chunker/fastcdc.h"

#include <assert.h>
#include <errno.h>

/* The SplitMix64 increment (2^64 / golden ratio) and finaliser (Stafford's
 * variant 13, as in SplitMix64). */
#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ull

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Entry i starts from the SplitMix64 counter (i + 1) * gamma; each of the four
 * little-endian seed words w0..w3 is XOR-ed in turn and followed by the SplitMix64
 * finaliser. Every entry depends on all 256 seed bits, and since each step is a
 * bijection of the running value the 256 entries are distinct for any seed (the
 * all-zero seed included). This is a fixed expansion, not a PRF: the seed's
 * secrecy is what keeps cut points unpredictable. */
static uint64_t gear_entry(const uint64_t w[4], unsigned i)
{
	uint64_t z = (uint64_t)(i + 1) * GOLDEN_GAMMA;
	for (int k = 0; k < 4; k++)
		z = mix64(z ^ w[k]);
	return z;
}

/* n one-bits spread evenly over bit positions 16..47 (bit 16 + floor(j*31/(n-1))
 * for j = 0..n-1, so both 16 and 47 are always set). As in the paper's masks the
 * zero padding widens the window: bit k of the gear hash depends on the last k+1
 * bytes, so the cut condition looks at the last 48 bytes. Bit 63 must stay clear
 * for the two-bytes-per-step loop (it tests mask << 1). Needs 2 <= n <= 32. */
static uint64_t spread_mask(unsigned n)
{
	uint64_t m = 0;
	for (unsigned j = 0; j < n; j++)
		m |= 1ull << (16 + j * 31 / (n - 1));
	return m;
}

int bk_fastcdc_init(BkFastCdc *c, const uint8_t seed[32], size_t min, size_t avg, size_t max)
{
	assert(c);
	assert(seed);
	if (!(min < avg && avg < max) || avg < BK_FASTCDC_MIN_AVG || avg > BK_FASTCDC_MAX_AVG ||
	    (avg & (avg - 1)) != 0)
		return -EINVAL;

	unsigned bits = 0;
	while ((1ull << bits) < avg)
		bits++;

	uint64_t w[4];
	for (int k = 0; k < 4; k++)
		w[k] = load_le64(seed + 8 * k);
	for (unsigned i = 0; i < 256; i++)
		c->gear[i] = gear_entry(w, i);
	c->mask_s = spread_mask(bits + 2);
	c->mask_l = spread_mask(bits - 2);
	c->min = min;
	c->avg = avg;
	/* Normalisation switches masks at 13/16 of avg rather than at avg: with the
	 * first min bytes skipped, switching at avg gives a mean chunk of ~1.14 x avg
	 * (min = avg/4); at 13/16 the mean is ~0.99 x avg, what the user asked for. */
	c->normal = avg - avg / 8 - avg / 16;
	if (c->normal <= min)
		c->normal = min + 1;
	c->max = max;
	return 0;
}

int bk_fastcdc_init_fixed(BkFastCdc *c, size_t size)
{
	assert(c);
	if (size < BK_FASTCDC_MIN_AVG || size > BK_FASTCDC_MAX_AVG || (size & (size - 1)) != 0)
		return -EINVAL;
	*c = (BkFastCdc){ .min = size, .avg = size, .max = size, .normal = size };
	return 0;
}

/* Gear hash over buf[i..end), continuing from *hp, with cut condition
 * (h & m) == 0; returns the chunk length (position of the cutting byte + 1) or 0
 * with *hp updated. Two bytes per step (Xia et al. 2020): for bytes a, b,
 *   t  = h << 2
 *   h1 = t + (G[a] << 1)           the one-byte hash after a, shifted left by one
 *   h  = t + ((G[a] << 1) + G[b])  the hash after b
 * so h1 is tested against m << 1 (equivalent since m has no bit 63), and the
 * loop-carried dependency is one shift and one add per two bytes. The empty asm
 * stops the compiler from reassociating h = (t + G[b]) + (G[a] << 1), which puts
 * a second add on that dependency chain (measured: 3.1 instead of 3.6 GB/s). */
static inline __attribute__((always_inline)) size_t scan(const uint64_t *restrict gear,
							  uint64_t m, const uint8_t *restrict buf,
							  size_t i, size_t end, uint64_t *restrict hp)
{
	const uint64_t m1 = m << 1;
	uint64_t h = *hp;

	for (; i + 2 <= end; i += 2) {
		uint64_t ga = gear[buf[i]] << 1;
		uint64_t t = h << 2;
		uint64_t h1 = t + ga;
		uint64_t s = ga + gear[buf[i + 1]];
		__asm__("" : "+r"(s));
		h = t + s;
		if (!(h1 & m1))
			return i + 1;
		if (!(h & m))
			return i + 2;
	}
	if (i < end) {
		h = (h << 1) + gear[buf[i]];
		if (!(h & m))
			return i + 1;
	}
	*hp = h;
	return 0;
}

size_t bk_fastcdc_next(const BkFastCdc *c, const uint8_t *buf, size_t len, bool eof)
{
	assert(c);
	assert(buf || len == 0);

	if (c->min == c->max) /* fixed size */
		return len >= c->max ? c->max : eof ? len : 0;
	/* No cut can lie in the first min bytes: they are not even hashed. */
	if (len <= c->min)
		return eof ? len : 0;

	size_t end = len < c->max ? len : c->max;
	size_t normal = end < c->normal ? end : c->normal;
	uint64_t h = 0;
	size_t cut = scan(c->gear, c->mask_s, buf, c->min, normal, &h);
	if (!cut)
		cut = scan(c->gear, c->mask_l, buf, normal, end, &h);
	if (cut)
		return cut;
	/* No content-defined cut in buf[0..end): cut at max if that much is here,
	 * or the rest at end of stream; otherwise more input may still hold a cut. */
	return eof || len >= c->max ? end : 0;
}
