#include "store/codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/error.h"

void bk_enc_init(BkEnc *e, size_t max) { *e = (BkEnc){ .max = max }; }

void bk_enc_release(BkEnc *e)
{
	free(e->buf);
	*e = (BkEnc){ 0 };
}

void bk_enc_bytes(BkEnc *e, const void *p, size_t n)
{
	if (e->err)
		return;
	if (n > e->max - e->len) {
		e->err = -E2BIG;
		return;
	}
	if (e->len + n > e->cap) {
		size_t cap = e->cap ? e->cap : 256;
		while (cap < e->len + n)
			cap *= 2;
		if (cap > e->max)
			cap = e->max;
		uint8_t *b = realloc(e->buf, cap);
		if (!b) {
			e->err = -ENOMEM;
			return;
		}
		e->buf = b;
		e->cap = cap;
	}
	if (n)
		memcpy(e->buf + e->len, p, n);
	e->len += n;
}

void bk_enc_u8(BkEnc *e, uint8_t v) { bk_enc_bytes(e, &v, 1); }

void bk_enc_u32(BkEnc *e, uint32_t v)
{
	uint8_t b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	bk_enc_bytes(e, b, 4);
}

void bk_enc_u64(BkEnc *e, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	bk_enc_bytes(e, b, 8);
}

void bk_enc_varint(BkEnc *e, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;
	do {
		b[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			b[n] |= 0x80;
		n++;
	} while (v);
	bk_enc_bytes(e, b, n);
}

void bk_enc_svarint(BkEnc *e, int64_t v)
{
	bk_enc_varint(e, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void bk_enc_str(BkEnc *e, const void *p, size_t n)
{
	bk_enc_varint(e, n);
	bk_enc_bytes(e, p, n);
}

void bk_enc_cstr(BkEnc *e, const char *s) { bk_enc_str(e, s, strlen(s)); }

int bk_enc_finish(const BkEnc *e) { return e->err; }

void bk_dec_init(BkDec *d, const void *p, size_t len) { *d = (BkDec){ .p = p, .len = len }; }

const uint8_t *bk_dec_bytes(BkDec *d, size_t n)
{
	if (d->err)
		return NULL;
	if (n > d->len - d->pos) {
		d->err = BK_E_CORRUPT;
		return NULL;
	}
	const uint8_t *r = d->p + d->pos;
	d->pos += n;
	return r;
}

uint8_t bk_dec_u8(BkDec *d)
{
	const uint8_t *b = bk_dec_bytes(d, 1);
	return b ? b[0] : 0;
}

uint32_t bk_dec_u32(BkDec *d)
{
	const uint8_t *b = bk_dec_bytes(d, 4);
	uint32_t v = 0;
	if (b)
		for (int i = 3; i >= 0; i--)
			v = (v << 8) | b[i];
	return v;
}

uint64_t bk_dec_u64(BkDec *d)
{
	const uint8_t *b = bk_dec_bytes(d, 8);
	uint64_t v = 0;
	if (b)
		for (int i = 7; i >= 0; i--)
			v = (v << 8) | b[i];
	return v;
}

uint64_t bk_dec_varint(BkDec *d)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 70; shift += 7) {
		const uint8_t *b = bk_dec_bytes(d, 1);
		if (!b)
			return 0;
		if (shift == 63 && (*b & 0x7e)) /* would overflow 64 bits */
			break;
		v |= (uint64_t)(*b & 0x7f) << shift;
		if (!(*b & 0x80))
			return v;
	}
	d->err = BK_E_CORRUPT;
	return 0;
}

int64_t bk_dec_svarint(BkDec *d)
{
	uint64_t u = bk_dec_varint(d);
	return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

const uint8_t *bk_dec_str(BkDec *d, size_t max, size_t *ret_n)
{
	*ret_n = 0;
	uint64_t n = bk_dec_varint(d);
	if (d->err)
		return NULL;
	if (n > max) {
		d->err = BK_E_CORRUPT;
		return NULL;
	}
	const uint8_t *p = bk_dec_bytes(d, (size_t)n);
	if (p)
		*ret_n = (size_t)n;
	return p;
}

bool bk_dec_done(const BkDec *d) { return !d->err && d->pos == d->len; }

int bk_dec_error(const BkDec *d) { return d->err; }
