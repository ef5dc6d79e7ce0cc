#include "store/snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/error.h"
#include "store/util.h"

#define SNAPSHOT_VERSION 1u
#define NO_INDEX SIZE_MAX /* a single field, not an item of a list */

void bk_snapshot_free(BkSnapshot *s)
{
	if (!s)
		return;
	free(s->host);
	free(s->name);
	free(s->kind);
	if (s->tags)
		for (size_t i = 0; i < s->ntags; i++)
			free(s->tags[i]);
	free(s->tags);
	if (s->meta)
		for (size_t i = 0; i < s->nmeta; i++) {
			free(s->meta[i].key);
			free(s->meta[i].value);
		}
	free(s->meta);
	free(s);
}

static int check_str(const char *s, size_t max, const char *what, size_t idx)
{
	char at[32] = "";
	if (idx != NO_INDEX)
		snprintf(at, sizeof(at), " %zu", idx);
	if (!s)
		return bk_errorf(BK_E_USAGE, "snapshot: %s%s is NULL", what, at);
	size_t n = strlen(s);
	if (n > max)
		return bk_errorf(BK_E_USAGE, "snapshot: %s%s is %zu bytes > %zu", what, at, n, max);
	return 0;
}

int bk_snapshot_encode(const BkSnapshot *s, BkEnc *e)
{
	int r;
	if ((r = check_str(s->host, BK_SNAPSHOT_STR_MAX, "host", NO_INDEX)) < 0 ||
	    (r = check_str(s->name, BK_SNAPSHOT_STR_MAX, "name", NO_INDEX)) < 0 ||
	    (r = check_str(s->kind, BK_SNAPSHOT_STR_MAX, "kind", NO_INDEX)) < 0)
		return r;
	if (s->ntags > BK_SNAPSHOT_MAX_ITEMS || s->nmeta > BK_SNAPSHOT_MAX_ITEMS)
		return bk_errorf(BK_E_USAGE, "snapshot: %zu tags and %zu meta pairs (max %u each)",
				 s->ntags, s->nmeta, BK_SNAPSHOT_MAX_ITEMS);
	for (size_t i = 0; i < s->ntags; i++)
		if ((r = check_str(s->tags[i], BK_SNAPSHOT_STR_MAX, "tag", i)) < 0)
			return r;
	for (size_t i = 0; i < s->nmeta; i++)
		if ((r = check_str(s->meta[i].key, BK_SNAPSHOT_STR_MAX, "meta key", i)) < 0 ||
		    (r = check_str(s->meta[i].value, BK_SNAPSHOT_META_MAX, "meta value", i)) < 0)
			return r;

	bk_enc_u8(e, SNAPSHOT_VERSION);
	bk_enc_svarint(e, s->time_us);
	bk_enc_cstr(e, s->host);
	bk_enc_cstr(e, s->name);
	bk_enc_cstr(e, s->kind);
	bk_enc_varint(e, s->ntags);
	for (size_t i = 0; i < s->ntags; i++)
		bk_enc_cstr(e, s->tags[i]);
	bk_enc_bytes(e, s->root, BK_ID_LEN);
	bk_enc_varint(e, s->logical_bytes);
	bk_enc_varint(e, s->new_bytes);
	bk_enc_varint(e, s->files);
	bk_enc_varint(e, s->duration_us);
	bk_enc_u8(e, s->has_parent ? 1 : 0);
	if (s->has_parent)
		bk_enc_bytes(e, s->parent, BK_ID_LEN);
	bk_enc_varint(e, s->nmeta);
	for (size_t i = 0; i < s->nmeta; i++) {
		bk_enc_cstr(e, s->meta[i].key);
		bk_enc_cstr(e, s->meta[i].value);
	}
	r = bk_enc_finish(e);
	if (r < 0)
		return bk_errorf(r, "snapshot \"%.64s\": encoding failed", s->name);
	return 0;
}

#define CORRUPT(...) bk_errorf(BK_E_CORRUPT, __VA_ARGS__)

/* Decodes a string of at most max bytes without NUL into an owned C string. */
static int dec_str(BkDec *d, size_t max, const char *what, size_t idx, char **ret)
{
	char at[32] = "";
	if (idx != NO_INDEX)
		snprintf(at, sizeof(at), " %zu", idx);
	size_t n;
	const uint8_t *p = bk_dec_str(d, max, &n);
	if (!p)
		return CORRUPT("snapshot: %s%s truncated or longer than %zu bytes", what, at, max);
	if (memchr(p, '\0', n))
		return CORRUPT("snapshot: %s%s contains NUL", what, at);
	char *s = malloc(n + 1);
	if (!s)
		return bk_errorf(-ENOMEM, "snapshot: %s of %zu bytes", what, n);
	memcpy(s, p, n);
	s[n] = '\0';
	*ret = s;
	return 0;
}

/* Reads an item count and checks it against the cap and the bytes left, each
 * item needing at least min_bytes. */
static int dec_count(BkDec *d, size_t min_bytes, const char *what, size_t *ret)
{
	uint64_t n = bk_dec_varint(d);
	if (bk_dec_error(d))
		return CORRUPT("snapshot: truncated %s count", what);
	if (n > BK_SNAPSHOT_MAX_ITEMS || n > (d->len - d->pos) / min_bytes)
		return CORRUPT("snapshot: %" PRIu64 " %s (max %u, %zu bytes left)", n, what,
			       BK_SNAPSHOT_MAX_ITEMS, d->len - d->pos);
	*ret = (size_t)n;
	return 0;
}

static int decode(BkDec *d, BkSnapshot *s)
{
	int r;
	uint8_t version = bk_dec_u8(d);
	if (bk_dec_error(d))
		return CORRUPT("snapshot: empty record");
	if (version != SNAPSHOT_VERSION)
		return bk_errorf(BK_E_VERSION, "snapshot: unknown version %u", version);
	s->time_us = bk_dec_svarint(d);
	if (bk_dec_error(d))
		return CORRUPT("snapshot: truncated time");
	if ((r = dec_str(d, BK_SNAPSHOT_STR_MAX, "host", NO_INDEX, &s->host)) < 0 ||
	    (r = dec_str(d, BK_SNAPSHOT_STR_MAX, "name", NO_INDEX, &s->name)) < 0 ||
	    (r = dec_str(d, BK_SNAPSHOT_STR_MAX, "kind", NO_INDEX, &s->kind)) < 0)
		return r;

	size_t ntags = 0;
	if ((r = dec_count(d, 1, "tags", &ntags)) < 0)
		return r;
	if (ntags) {
		s->tags = calloc(ntags, sizeof(*s->tags));
		if (!s->tags)
			return bk_errorf(-ENOMEM, "snapshot: %zu tags", ntags);
		s->ntags = ntags;
		for (size_t i = 0; i < ntags; i++)
			if ((r = dec_str(d, BK_SNAPSHOT_STR_MAX, "tag", i, &s->tags[i])) < 0)
				return r;
	}

	const uint8_t *root = bk_dec_bytes(d, BK_ID_LEN);
	s->logical_bytes = bk_dec_varint(d);
	s->new_bytes = bk_dec_varint(d);
	s->files = bk_dec_varint(d);
	s->duration_us = bk_dec_varint(d);
	uint8_t has_parent = bk_dec_u8(d);
	if (!root || bk_dec_error(d))
		return CORRUPT("snapshot \"%.64s\": truncated root or statistics", s->name);
	memcpy(s->root, root, BK_ID_LEN);
	if (has_parent > 1)
		return CORRUPT("snapshot \"%.64s\": has_parent is %u", s->name, has_parent);
	s->has_parent = has_parent;
	if (has_parent) {
		const uint8_t *parent = bk_dec_bytes(d, BK_ID_LEN);
		if (!parent)
			return CORRUPT("snapshot \"%.64s\": truncated parent", s->name);
		memcpy(s->parent, parent, BK_ID_LEN);
	}

	size_t nmeta = 0;
	if ((r = dec_count(d, 2, "meta pairs", &nmeta)) < 0)
		return r;
	if (nmeta) {
		s->meta = calloc(nmeta, sizeof(*s->meta));
		if (!s->meta)
			return bk_errorf(-ENOMEM, "snapshot: %zu meta pairs", nmeta);
		s->nmeta = nmeta;
		for (size_t i = 0; i < nmeta; i++)
			if ((r = dec_str(d, BK_SNAPSHOT_STR_MAX, "meta key", i, &s->meta[i].key)) < 0 ||
			    (r = dec_str(d, BK_SNAPSHOT_META_MAX, "meta value", i,
					 &s->meta[i].value)) < 0)
				return r;
	}
	if (!bk_dec_done(d))
		return CORRUPT("snapshot \"%.64s\": %zu trailing bytes", s->name, d->len - d->pos);
	return 0;
}

int bk_snapshot_decode(const uint8_t *p, size_t n, BkSnapshot **ret)
{
	BkDec d;
	bk_dec_init(&d, p, n);
	BkSnapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int r = decode(&d, s);
	if (r < 0) {
		bk_snapshot_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

const char *bk_snapshot_meta(const BkSnapshot *s, const char *key)
{
	for (size_t i = 0; i < s->nmeta; i++)
		if (strcmp(s->meta[i].key, key) == 0)
			return s->meta[i].value;
	return NULL;
}
