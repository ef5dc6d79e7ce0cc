/* store/codec.h: the byte-level encoder and decoder that every record format
 * (trees, content lists, snapshots, pack trailers, key slots) is written with.
 *
 * Encoding primitives: u8; fixed little-endian u32/u64; unsigned LEB128 varints
 * (at most 10 bytes); signed varints zigzag-encoded; byte strings as varint length
 * then bytes; 32-byte ids raw.
 *
 * BkEnc grows a heap buffer up to a hard cap fixed at init; exceeding it makes
 * every later call a no-op and bk_enc_finish() return -E2BIG. Errors are sticky so
 * that encoders are straight-line code checked once at the end.
 *
 * BkDec reads a caller-owned buffer; any read past the end, an over-long varint or
 * a string longer than its stated cap makes the decoder fail (sticky) with
 * BK_E_CORRUPT, and readers return zeros/NULL from then on. It never allocates:
 * strings are returned as borrowed pointers into the buffer (not NUL-terminated).
 *
 * Thread-safety: an encoder/decoder is owned by one thread.
 */
#ifndef BK_STORE_CODEC_H
#define BK_STORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint8_t *buf;
	size_t len, cap, max;
	int err;
} BkEnc;

void bk_enc_init(BkEnc *e, size_t max);
void bk_enc_release(BkEnc *e); /* frees the buffer; accepts a zeroed struct */
void bk_enc_u8(BkEnc *e, uint8_t v);
void bk_enc_u32(BkEnc *e, uint32_t v);
void bk_enc_u64(BkEnc *e, uint64_t v);
void bk_enc_varint(BkEnc *e, uint64_t v);
void bk_enc_svarint(BkEnc *e, int64_t v);
void bk_enc_bytes(BkEnc *e, const void *p, size_t n); /* raw, no length */
void bk_enc_str(BkEnc *e, const void *p, size_t n);   /* varint length + bytes */
void bk_enc_cstr(BkEnc *e, const char *s);            /* bk_enc_str of strlen */
/* Returns 0, or the sticky error (-E2BIG past max, -ENOMEM). */
int bk_enc_finish(const BkEnc *e);

typedef struct {
	const uint8_t *p;
	size_t len, pos;
	int err;
} BkDec;

void bk_dec_init(BkDec *d, const void *p, size_t len);
uint8_t bk_dec_u8(BkDec *d);
uint32_t bk_dec_u32(BkDec *d);
uint64_t bk_dec_u64(BkDec *d);
uint64_t bk_dec_varint(BkDec *d);
int64_t bk_dec_svarint(BkDec *d);
/* Borrowed pointer to n raw bytes, or NULL on failure. */
const uint8_t *bk_dec_bytes(BkDec *d, size_t n);
/* Borrowed pointer to a length-prefixed string of at most max bytes; *ret_n gets
 * its length. NULL (and *ret_n = 0) on failure. */
const uint8_t *bk_dec_str(BkDec *d, size_t max, size_t *ret_n);
bool bk_dec_done(const BkDec *d); /* true when no error and every byte was consumed */
/* 0 if no error, else BK_E_CORRUPT (the caller adds context with bk_errorf). */
int bk_dec_error(const BkDec *d);

#endif
