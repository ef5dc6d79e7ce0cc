/* chunker/fastcdc.h: content-defined chunking (FastCDC with normalised chunking).
 *
 * Place in the data flow: the archiver feeds every input stream through
 * bk_fastcdc_next() and turns each cut into one data blob.
 *
 * Contract: pure functions over caller buffers; no allocation, no I/O, no global
 * state; safe from any number of threads. The gear table is the caller's: the
 * store derives it from the repository's secret chunker seed (bk_fastcdc_init
 * expands 32 seed bytes into the table) so cut points differ per repository.
 * The expansion and the mask layout (documented in fastcdc.c) fix every cut
 * point, so they are part of the repository format.
 *
 * Cut points depend only on the bytes of the stream, never on how it was split
 * into reads: the caller keeps a window starting at the current chunk start and
 * calls bk_fastcdc_next() on it; the answer is either a cut length or "need more
 * data". A content-defined cut depends only on the bytes before it, so it is
 * returned as soon as they are in the window; the forced cut at max needs max
 * bytes, and a short last chunk needs end of stream.
 *
 * Fixed-size cutting (bk_fastcdc_init_fixed) is the degenerate case min = avg =
 * max: every chunk is max bytes but the last. It is for files that are only ever
 * written in place in fixed pages (PostgreSQL's relation files): nothing shifts
 * there, so content-defined cuts buy no dedup, and blocks aligned to the file's
 * pages change exactly when one of their pages does.
 *
 * Sizes: the first min bytes of a chunk are skipped, a stricter mask applies up to
 * the normalisation point and a looser one after. The point is 13/16 of avg (not
 * avg, as in the paper) so that with min = avg/4 and max = 4*avg the mean on
 * random data is about 0.99 * avg. The gear expansion, the masks and this point are
 * part of the repository format: changing them moves every cut point.
 */
#ifndef BK_CHUNKER_FASTCDC_H
#define BK_CHUNKER_FASTCDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BK_FASTCDC_MIN_AVG 1024u
#define BK_FASTCDC_MAX_AVG (4u << 20)

typedef struct {
	uint64_t gear[256];
	uint64_t mask_s; /* stricter mask, used before avg */
	uint64_t mask_l; /* looser mask, used after avg */
	size_t min, avg, max;
	size_t normal; /* where the stricter mask gives way to the looser one */
} BkFastCdc;

/* Fills c for the given sizes (min < avg < max, avg a power of two within
 * [BK_FASTCDC_MIN_AVG, BK_FASTCDC_MAX_AVG]); the gear table is derived from seed
 * deterministically. Returns 0 or -EINVAL for invalid sizes. */
int bk_fastcdc_init(BkFastCdc *c, const uint8_t seed[32], size_t min, size_t avg, size_t max);

/* Fills c to cut every size bytes (min = avg = max = size, a power of two within
 * [BK_FASTCDC_MIN_AVG, BK_FASTCDC_MAX_AVG]; no gear table). Returns 0 or -EINVAL. */
int bk_fastcdc_init_fixed(BkFastCdc *c, size_t size);

/* Looks for the next cut in buf[0..len), where buf starts at a chunk boundary.
 * Returns the length of the chunk (1..max) if a cut is found, or if eof is true
 * and len > 0 (the rest, capped at max). Returns 0 when more input is needed
 * (len < max and no cut found and !eof), or when len == 0. */
size_t bk_fastcdc_next(const BkFastCdc *c, const uint8_t *buf, size_t len, bool eof);

#endif
