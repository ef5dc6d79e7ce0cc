#include "store/content.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/error.h"
#include "store/util.h"

#define CONTENT_VERSION 1u
/* Smallest encoding of one ref: 32-byte id and a one-byte varint. */
#define REF_MIN_BYTES (BK_ID_LEN + 1u)
/* Largest encoding of a node: version, level, count varint, refs with 10-byte varints. */
#define NODE_MAX_BYTES (2u + 10u + BK_CONTENT_MAX_REFS * (BK_ID_LEN + 10u))
#define LEVELS (BK_CONTENT_MAX_LEVEL + 1u)

void bk_content_node_release(BkContentNode *n)
{
	if (!n)
		return;
	free(n->refs);
	*n = (BkContentNode){ 0 };
}

uint64_t bk_content_node_size(const BkContentNode *n)
{
	uint64_t sum = 0;
	for (uint32_t i = 0; i < n->count; i++)
		sum += n->refs[i].size;
	return sum;
}

/* Checks the invariants every node (inline or stored) must hold; on success
 * *ret_sum is the total size (< 2^63). Returns 0 or code with a detail. */
static int node_check(const BkContentNode *n, int code, uint64_t *ret_sum)
{
	if (n->level > BK_CONTENT_MAX_LEVEL)
		return bk_errorf(code, "content node: level %u > %u", n->level, BK_CONTENT_MAX_LEVEL);
	if (n->count > BK_CONTENT_MAX_REFS)
		return bk_errorf(code, "content node: %" PRIu32 " refs > %u", n->count,
				 BK_CONTENT_MAX_REFS);
	if (n->count == 0 && n->level > 0)
		return bk_errorf(code, "content node: empty node at level %u", n->level);
	if (n->count > 0 && !n->refs)
		return bk_errorf(code, "content node: %" PRIu32 " refs but no array", n->count);
	uint64_t sum = 0;
	for (uint32_t i = 0; i < n->count; i++) {
		uint64_t sz = n->refs[i].size;
		if (sz == 0)
			return bk_errorf(code, "content node: ref %" PRIu32 " has size 0", i);
		if (sz > (uint64_t)INT64_MAX - sum)
			return bk_errorf(code, "content node: total size overflows 2^63 at ref %" PRIu32,
					 i);
		sum += sz;
	}
	*ret_sum = sum;
	return 0;
}

int bk_content_node_encode(const BkContentNode *n, BkEnc *e)
{
	uint64_t sum;
	int r = node_check(n, BK_E_USAGE, &sum);
	if (r < 0)
		return r;
	bk_enc_u8(e, CONTENT_VERSION);
	bk_enc_u8(e, n->level);
	bk_enc_varint(e, n->count);
	for (uint32_t i = 0; i < n->count; i++) {
		bk_enc_bytes(e, n->refs[i].id, BK_ID_LEN);
		bk_enc_varint(e, n->refs[i].size);
	}
	return bk_enc_finish(e);
}

int bk_content_node_decode(BkDec *d, BkContentNode *ret)
{
	uint8_t version = bk_dec_u8(d);
	if (bk_dec_error(d))
		return bk_errorf(BK_E_CORRUPT, "content node: truncated header");
	if (version != CONTENT_VERSION)
		return bk_errorf(BK_E_VERSION, "content node: unknown version %u", version);
	uint8_t level = bk_dec_u8(d);
	uint64_t count = bk_dec_varint(d);
	if (bk_dec_error(d))
		return bk_errorf(BK_E_CORRUPT, "content node: truncated header");
	if (level > BK_CONTENT_MAX_LEVEL)
		return bk_errorf(BK_E_CORRUPT, "content node: level %u > %u", level,
				 BK_CONTENT_MAX_LEVEL);
	if (count > BK_CONTENT_MAX_REFS || (count == 0 && level > 0))
		return bk_errorf(BK_E_CORRUPT, "content node: bad ref count %" PRIu64 " at level %u",
				 count, level);
	/* Bound the allocation by what the input can actually hold. */
	if (count > (d->len - d->pos) / REF_MIN_BYTES)
		return bk_errorf(BK_E_CORRUPT, "content node: %" PRIu64 " refs in %zu bytes", count,
				 d->len - d->pos);

	BkContentNode n = { .level = level, .count = (uint32_t)count };
	if (count) {
		n.refs = malloc((size_t)count * sizeof(*n.refs));
		if (!n.refs)
			return bk_errorf(-ENOMEM, "content node: %" PRIu64 " refs", count);
	}
	for (uint32_t i = 0; i < n.count; i++) {
		const uint8_t *id = bk_dec_bytes(d, BK_ID_LEN);
		uint64_t size = bk_dec_varint(d);
		if (!id || bk_dec_error(d)) {
			free(n.refs);
			return bk_errorf(BK_E_CORRUPT, "content node: truncated at ref %" PRIu32, i);
		}
		memcpy(n.refs[i].id, id, BK_ID_LEN);
		n.refs[i].size = size;
	}
	uint64_t sum;
	int r = node_check(&n, BK_E_CORRUPT, &sum);
	if (r < 0) {
		free(n.refs);
		return r;
	}
	*ret = n;
	return 0;
}

/* ---- builder ---- */

typedef struct {
	BkContentRef *refs; /* BK_CONTENT_MAX_REFS slots, allocated on first use */
	uint32_t count;
	uint64_t total;
	bool cut; /* the last ref was a boundary: close before the next one */
} Level;

struct BkContentBuilder {
	BkPutBlobFn put;
	void *ud;
	Level levels[LEVELS];
	BkEnc enc; /* scratch, reused for every node */
	int err;   /* sticky */
	bool finished;
};

int bk_content_builder_new(BkPutBlobFn put, void *ud, BkContentBuilder **ret)
{
	BkContentBuilder *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->put = put;
	b->ud = ud;
	bk_enc_init(&b->enc, NODE_MAX_BYTES);
	*ret = b;
	return 0;
}

void bk_content_builder_free(BkContentBuilder *b)
{
	if (!b)
		return;
	for (unsigned i = 0; i < LEVELS; i++)
		free(b->levels[i].refs);
	bk_enc_release(&b->enc);
	free(b);
}

static bool is_boundary(const uint8_t id[BK_ID_LEN])
{
	return bk_get_le16(id) % BK_CONTENT_AVG_REFS == 0;
}

static int push(BkContentBuilder *b, unsigned level, const uint8_t id[BK_ID_LEN], uint64_t size,
		bool final);

/* Encodes level's node, stores it and appends its ref to level + 1. */
static int close_level(BkContentBuilder *b, unsigned level, bool final)
{
	Level *l = &b->levels[level];
	if (level + 1 >= LEVELS)
		return bk_errorf(-E2BIG, "content list deeper than %u levels", BK_CONTENT_MAX_LEVEL);
	BkContentNode n = { .level = (uint8_t)level, .count = l->count, .refs = l->refs };
	b->enc.len = 0;
	int r = bk_content_node_encode(&n, &b->enc);
	if (r < 0)
		return r;
	uint8_t id[BK_ID_LEN];
	r = b->put(b->ud, BK_BLOB_CLIST, b->enc.buf, b->enc.len, id);
	if (r < 0)
		return r;
	uint64_t total = l->total;
	l->count = 0;
	l->total = 0;
	l->cut = false;
	return push(b, level + 1, id, total, final);
}

/* Appends a ref to level. A pending boundary (or a full node) is closed first,
 * not right after the boundary ref, so that the stream's last node at each level
 * stays open for finish(): the root then never has a single ref when it could be
 * its child. During finish (final) boundaries are not recorded any more. */
static int push(BkContentBuilder *b, unsigned level, const uint8_t id[BK_ID_LEN], uint64_t size,
		bool final)
{
	if (level >= LEVELS)
		return bk_errorf(-E2BIG, "content list deeper than %u levels", BK_CONTENT_MAX_LEVEL);
	Level *l = &b->levels[level];
	if (l->cut || l->count == BK_CONTENT_MAX_REFS) {
		int r = close_level(b, level, final);
		if (r < 0)
			return r;
	}
	if (!l->refs) {
		l->refs = malloc(BK_CONTENT_MAX_REFS * sizeof(*l->refs));
		if (!l->refs)
			return -ENOMEM;
	}
	memcpy(l->refs[l->count].id, id, BK_ID_LEN);
	l->refs[l->count].size = size;
	l->count++;
	l->total += size; /* < 2^63: checked against the stream total in add() */
	if (!final && l->count >= BK_CONTENT_MIN_REFS && is_boundary(id))
		l->cut = true;
	return 0;
}

int bk_content_builder_add(BkContentBuilder *b, const uint8_t id[32], uint64_t size)
{
	if (b->err)
		return b->err;
	if (b->finished)
		return bk_errorf(BK_E_USAGE, "content builder: add after finish");
	if (size == 0)
		return bk_errorf(BK_E_USAGE, "content builder: chunk of size 0");
	uint64_t total = 0;
	for (unsigned i = 0; i < LEVELS; i++)
		total += b->levels[i].total;
	if (size > (uint64_t)INT64_MAX - total)
		return bk_errorf(-EOVERFLOW, "content builder: stream larger than 2^63 bytes");
	int r = push(b, 0, id, size, false);
	if (r < 0)
		b->err = r;
	return r;
}

int bk_content_builder_finish(BkContentBuilder *b, BkContentNode *ret_root)
{
	if (b->err)
		return b->err;
	if (b->finished)
		return bk_errorf(BK_E_USAGE, "content builder: finish called twice");
	b->finished = true;
	for (unsigned i = 0; i < LEVELS; i++) {
		bool above = false;
		for (unsigned j = i + 1; j < LEVELS; j++)
			if (b->levels[j].count)
				above = true;
		Level *l = &b->levels[i];
		if (!above && (l->count || i == 0) && l->count <= BK_CONTENT_ROOT_MAX) {
			/* The top: hand out its refs as the root (count <= ROOT_MAX), in an
			 * array of their size: a caller keeps roots, a file's each (found by
			 * a helper's exploration: a base backup held 41 kB, MAX_REFS refs,
			 * for each of its files until it ended, 866 MB of heap for 20k) */
			BkContentNode root = { .level = (uint8_t)i, .count = l->count };
			if (l->count) {
				BkContentRef *fit = realloc(l->refs, l->count * sizeof(*l->refs));
				root.refs = fit ? fit : l->refs;
				l->refs = NULL;
				l->count = 0;
			}
			*ret_root = root;
			return 0;
		}
		if (l->count) {
			int r = close_level(b, i, true);
			if (r < 0) {
				b->err = r;
				return r;
			}
		}
	}
	/* Unreachable: close_level never pushes past the last level. */
	return b->err = bk_errorf(-E2BIG, "content list deeper than %u levels",
				  BK_CONTENT_MAX_LEVEL);
}

/* ---- readers ---- */

/* Fetches the content list that parent ref points at (parent at level plevel),
 * and checks it against the ref: level plevel-1, total size == ref size. */
static int fetch_child(const BkContentRef *ref, unsigned plevel, BkGetBlobFn get, void *get_ud,
		       BkContentNode *ret)
{
	BkIdHex hex = bk_id_hex(ref->id);
	uint8_t *data = NULL;
	size_t len = 0;
	int r = get(get_ud, BK_BLOB_CLIST, ref->id, &data, &len);
	if (r < 0)
		return r;
	BkDec d;
	bk_dec_init(&d, data, len);
	BkContentNode n = { 0 };
	r = bk_content_node_decode(&d, &n);
	if (r >= 0 && !bk_dec_done(&d))
		r = bk_errorf(BK_E_CORRUPT, "%zu trailing bytes", len - d.pos);
	free(data);
	if (r < 0) {
		char why[256];
		snprintf(why, sizeof(why), "%s", bk_error_detail());
		bk_content_node_release(&n);
		return bk_errorf(r, "content list %s: %s", hex.s, why);
	}
	if (n.level + 1u != plevel) {
		unsigned got = n.level;
		bk_content_node_release(&n);
		return bk_errorf(BK_E_CORRUPT, "content list %s: level %u under a level %u node",
				 hex.s, got, plevel);
	}
	uint64_t size = bk_content_node_size(&n); /* no overflow: checked by decode */
	if (size != ref->size) {
		bk_content_node_release(&n);
		return bk_errorf(BK_E_CORRUPT,
				 "content list %s: holds %" PRIu64 " bytes, its parent says %" PRIu64,
				 hex.s, size, ref->size);
	}
	*ret = n;
	return 0;
}

typedef struct {
	BkGetBlobFn get;
	void *get_ud;
	BkChunkFn cb;
	void *cb_ud;
	uint64_t offset;
} Walk;

static int walk_node(Walk *w, const BkContentNode *n)
{
	for (uint32_t i = 0; i < n->count; i++) {
		const BkContentRef *ref = &n->refs[i];
		int r;
		if (n->level == 0) {
			r = w->cb(w->cb_ud, ref->id, ref->size, w->offset);
			w->offset += ref->size;
		} else {
			BkContentNode child;
			r = fetch_child(ref, n->level, w->get, w->get_ud, &child);
			if (r < 0)
				return r;
			r = walk_node(w, &child); /* depth <= BK_CONTENT_MAX_LEVEL */
			bk_content_node_release(&child);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int bk_content_walk(const BkContentNode *root, BkGetBlobFn get, void *get_ud, BkChunkFn cb,
		    void *cb_ud)
{
	uint64_t total;
	int r = node_check(root, BK_E_CORRUPT, &total);
	if (r < 0)
		return r;
	Walk w = { .get = get, .get_ud = get_ud, .cb = cb, .cb_ud = cb_ud };
	return walk_node(&w, root);
}

int bk_content_seek(const BkContentNode *root, BkGetBlobFn get, void *get_ud, uint64_t offset,
		    uint8_t ret_id[32], uint64_t *ret_start, uint64_t *ret_size)
{
	uint64_t total;
	int r = node_check(root, BK_E_CORRUPT, &total);
	if (r < 0)
		return r;
	if (offset >= total)
		return bk_errorf(-ERANGE, "offset %" PRIu64 " beyond end of content (%" PRIu64 " bytes)",
				 offset, total);

	const BkContentNode *n = root;
	BkContentNode cur = { 0 }; /* owned copy once we descend */
	uint64_t base = 0;         /* stream offset of n's first byte */
	for (;;) {
		/* Linear scan: at most BK_CONTENT_MAX_REFS additions, far cheaper than the
		 * blob fetch that follows. offset - base < size of n by invariant. */
		uint32_t i = 0;
		while (offset - base >= n->refs[i].size) {
			base += n->refs[i].size;
			i++;
		}
		const BkContentRef *ref = &n->refs[i];
		if (n->level == 0) {
			memcpy(ret_id, ref->id, BK_ID_LEN);
			*ret_start = base;
			*ret_size = ref->size;
			bk_content_node_release(&cur);
			return 0;
		}
		BkContentNode child;
		r = fetch_child(ref, n->level, get, get_ud, &child);
		bk_content_node_release(&cur);
		if (r < 0)
			return r;
		cur = child;
		n = &cur;
	}
}
