#include "store/tree.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/error.h"
#include "store/util.h"

#define TREE_VERSION 1u
/* Smallest encoding of an entry (a FIFO with a one-byte name and all-zero
 * fields): name length + 1 name byte, type, mode, uid, gid, mtime, nsec, size. */
#define ENTRY_MIN_BYTES 9u
#define NSEC_PER_SEC 1000000000u

BkTree *bk_tree_new(void) { return calloc(1, sizeof(BkTree)); }

static void entry_release(BkTreeEntry *e)
{
	free(e->name);
	free(e->link);
	bk_content_node_release(&e->content);
	e->name = NULL;
	e->link = NULL;
}

void bk_tree_free(BkTree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->count; i++)
		entry_release(&t->entries[i]);
	free(t->entries);
	free(t);
}

int bk_tree_add(BkTree *t, BkTreeEntry *e)
{
	int r = bk_grow(&t->entries, &t->cap, t->count, sizeof(*t->entries), 16);
	if (r < 0) {
		entry_release(e);
		return bk_errorf(r, "tree: no memory for entry %zu", t->count);
	}
	t->entries[t->count++] = *e;
	/* Ownership moved: the caller's copy must not free it again. */
	e->name = NULL;
	e->link = NULL;
	e->content = (BkContentNode){ 0 };
	return 0;
}

/* Name rule shared by encoder and decoder; returns a reason or NULL. */
static const char *name_problem(const uint8_t *p, size_t n)
{
	if (n == 0)
		return "empty name";
	if (n > BK_TREE_NAME_MAX)
		return "name too long";
	if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
		return "name is . or ..";
	if (memchr(p, '/', n))
		return "name contains '/'";
	if (memchr(p, '\0', n))
		return "name contains NUL";
	return NULL;
}

static int name_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int c = memcmp(a, b, BK_MIN(an, bn));
	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

static int entry_cmp(const void *a, const void *b)
{
	const BkTreeEntry *x = a, *y = b;
	return strcmp(x->name, y->name); /* compares as unsigned char: bytewise */
}

static bool type_known(uint8_t type) { return type >= BK_NODE_FILE && type <= BK_NODE_SOCK; }

/* Validates everything but order; idx names the entry in messages. */
static int entry_check(const BkTreeEntry *x, size_t idx)
{
	if (!x->name)
		return bk_errorf(BK_E_USAGE, "tree entry %zu: no name", idx);
	const char *why = name_problem((const uint8_t *)x->name, strlen(x->name));
	if (why)
		return bk_errorf(BK_E_USAGE, "tree entry %zu \"%.64s\": %s", idx, x->name, why);
	if (!type_known(x->type))
		return bk_errorf(BK_E_USAGE, "tree entry \"%.64s\": unknown type %u", x->name,
				 x->type);
	if (x->mode & ~07777u)
		return bk_errorf(BK_E_USAGE, "tree entry \"%.64s\": mode %#o has bits beyond 07777",
				 x->name, x->mode);
	if (x->mtime_nsec >= NSEC_PER_SEC)
		return bk_errorf(BK_E_USAGE, "tree entry \"%.64s\": mtime_nsec %" PRIu32 " >= 1e9",
				 x->name, x->mtime_nsec);
	if (x->size > (uint64_t)INT64_MAX)
		return bk_errorf(BK_E_USAGE, "tree entry \"%.64s\": size %" PRIu64 " >= 2^63",
				 x->name, x->size);
	if (x->type == BK_NODE_SYMLINK) {
		size_t n = x->link ? strlen(x->link) : 0;
		if (n == 0 || n > BK_TREE_LINK_MAX)
			return bk_errorf(BK_E_USAGE, "tree entry \"%.64s\": symlink target of %zu bytes",
					 x->name, n);
	}
	if (x->type == BK_NODE_FILE) {
		/* bk_content_node_encode checks the node itself. */
		uint64_t sz = bk_content_node_size(&x->content);
		if (x->content.count <= BK_CONTENT_MAX_REFS && sz != x->size)
			return bk_errorf(BK_E_USAGE,
					 "tree entry \"%.64s\": content holds %" PRIu64
					 " bytes, size says %" PRIu64,
					 x->name, sz, x->size);
	}
	return 0;
}

int bk_tree_encode(BkTree *t, BkEnc *e)
{
	for (size_t i = 0; i < t->count; i++) {
		int r = entry_check(&t->entries[i], i);
		if (r < 0)
			return r;
	}
	if (t->count > 1)
		qsort(t->entries, t->count, sizeof(*t->entries), entry_cmp);
	for (size_t i = 1; i < t->count; i++)
		if (strcmp(t->entries[i - 1].name, t->entries[i].name) == 0)
			return bk_errorf(BK_E_USAGE, "tree: duplicate entry \"%.64s\"",
					 t->entries[i].name);

	size_t start = e->len;
	bk_enc_u8(e, TREE_VERSION);
	bk_enc_varint(e, t->count);
	for (size_t i = 0; i < t->count; i++) {
		const BkTreeEntry *x = &t->entries[i];
		bk_enc_cstr(e, x->name);
		bk_enc_u8(e, x->type);
		bk_enc_varint(e, x->mode);
		bk_enc_varint(e, x->uid);
		bk_enc_varint(e, x->gid);
		bk_enc_svarint(e, x->mtime_sec);
		bk_enc_varint(e, x->mtime_nsec);
		bk_enc_varint(e, x->size);
		switch (x->type) {
		case BK_NODE_DIR:
			bk_enc_bytes(e, x->subtree, BK_ID_LEN);
			break;
		case BK_NODE_SYMLINK:
			bk_enc_cstr(e, x->link);
			break;
		case BK_NODE_FILE: {
			int r = bk_content_node_encode(&x->content, e);
			if (r == BK_E_USAGE)
				return bk_errorf(r, "tree entry \"%.64s\": bad content node", x->name);
			break;
		}
		case BK_NODE_CHR:
		case BK_NODE_BLK:
			bk_enc_varint(e, x->rdev);
			break;
		default:
			break;
		}
	}
	int r = bk_enc_finish(e);
	if (r < 0)
		return bk_errorf(r, "tree of %zu entries: encoding failed", t->count);
	if (e->len - start > BK_TREE_MAX_BYTES)
		return bk_errorf(-E2BIG, "tree of %zu entries: %zu bytes > %u", t->count,
				 e->len - start, BK_TREE_MAX_BYTES);
	return 0;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

#define CORRUPT(...) bk_errorf(BK_E_CORRUPT, __VA_ARGS__)

static int decode_entry(BkDec *d, size_t idx, const BkTreeEntry *prev, BkTreeEntry *x)
{
	size_t nlen;
	const uint8_t *name = bk_dec_str(d, BK_TREE_NAME_MAX, &nlen);
	if (!name)
		return CORRUPT("tree entry %zu: truncated or over-long name", idx);
	const char *why = name_problem(name, nlen);
	if (why)
		return CORRUPT("tree entry %zu: %s", idx, why);
	if (prev && name_cmp((const uint8_t *)prev->name, strlen(prev->name), name, nlen) >= 0)
		return CORRUPT("tree entry %zu \"%.*s\": not after \"%.64s\" (unsorted or duplicate)",
			       idx, (int)BK_MIN(nlen, 64), (const char *)name, prev->name);
	x->name = dup_bytes(name, nlen);
	if (!x->name)
		return bk_errorf(-ENOMEM, "tree entry %zu: name", idx);

	x->type = bk_dec_u8(d);
	uint64_t mode = bk_dec_varint(d), uid = bk_dec_varint(d), gid = bk_dec_varint(d);
	x->mtime_sec = bk_dec_svarint(d);
	uint64_t nsec = bk_dec_varint(d);
	x->size = bk_dec_varint(d);
	if (bk_dec_error(d))
		return CORRUPT("tree entry \"%.64s\": truncated attributes", x->name);
	if (!type_known(x->type))
		return CORRUPT("tree entry \"%.64s\": unknown type %u", x->name, x->type);
	if (mode > 07777)
		return CORRUPT("tree entry \"%.64s\": mode %#" PRIo64 " beyond 07777", x->name, mode);
	if (uid > UINT32_MAX || gid > UINT32_MAX)
		return CORRUPT("tree entry \"%.64s\": uid or gid beyond 32 bits", x->name);
	if (nsec >= NSEC_PER_SEC)
		return CORRUPT("tree entry \"%.64s\": mtime_nsec %" PRIu64 " >= 1e9", x->name, nsec);
	if (x->size > (uint64_t)INT64_MAX)
		return CORRUPT("tree entry \"%.64s\": size %" PRIu64 " >= 2^63", x->name, x->size);
	x->mode = (uint32_t)mode;
	x->uid = (uint32_t)uid;
	x->gid = (uint32_t)gid;
	x->mtime_nsec = (uint32_t)nsec;

	switch (x->type) {
	case BK_NODE_DIR: {
		const uint8_t *id = bk_dec_bytes(d, BK_ID_LEN);
		if (!id)
			return CORRUPT("tree entry \"%.64s\": truncated subtree id", x->name);
		memcpy(x->subtree, id, BK_ID_LEN);
		break;
	}
	case BK_NODE_SYMLINK: {
		size_t n;
		const uint8_t *p = bk_dec_str(d, BK_TREE_LINK_MAX, &n);
		if (!p)
			return CORRUPT("tree entry \"%.64s\": truncated or over-long target", x->name);
		if (n == 0 || memchr(p, '\0', n))
			return CORRUPT("tree entry \"%.64s\": empty target or NUL in target", x->name);
		x->link = dup_bytes(p, n);
		if (!x->link)
			return bk_errorf(-ENOMEM, "tree entry \"%.64s\": target", x->name);
		break;
	}
	case BK_NODE_FILE: {
		int r = bk_content_node_decode(d, &x->content);
		if (r < 0) {
			char inner[256];
			snprintf(inner, sizeof(inner), "%s", bk_error_detail());
			return bk_errorf(r, "tree entry \"%.64s\": %s", x->name, inner);
		}
		uint64_t sz = bk_content_node_size(&x->content);
		if (sz != x->size)
			return CORRUPT("tree entry \"%.64s\": content holds %" PRIu64
				       " bytes, size says %" PRIu64,
				       x->name, sz, x->size);
		break;
	}
	case BK_NODE_CHR:
	case BK_NODE_BLK:
		x->rdev = bk_dec_varint(d);
		if (bk_dec_error(d))
			return CORRUPT("tree entry \"%.64s\": truncated rdev", x->name);
		break;
	default:
		break;
	}
	return 0;
}

int bk_tree_decode(const uint8_t *p, size_t n, BkTree **ret)
{
	if (n > BK_TREE_MAX_BYTES)
		return CORRUPT("tree: %zu bytes > %u", n, BK_TREE_MAX_BYTES);
	BkDec d;
	bk_dec_init(&d, p, n);
	uint8_t version = bk_dec_u8(&d);
	if (bk_dec_error(&d))
		return CORRUPT("tree: empty blob");
	if (version != TREE_VERSION)
		return bk_errorf(BK_E_VERSION, "tree: unknown version %u", version);
	uint64_t count = bk_dec_varint(&d);
	if (bk_dec_error(&d))
		return CORRUPT("tree: truncated entry count");
	if (count > (n - d.pos) / ENTRY_MIN_BYTES)
		return CORRUPT("tree: %" PRIu64 " entries cannot fit in %zu bytes", count, n);

	BkTree *t = bk_tree_new();
	if (!t)
		return -ENOMEM;
	int r = 0;
	for (size_t i = 0; i < count; i++) {
		/* Grows with what was actually decoded, not with the claimed count. */
		r = bk_grow(&t->entries, &t->cap, i, sizeof(*t->entries), 16);
		if (r < 0) {
			r = bk_errorf(r, "tree: no memory for %" PRIu64 " entries", count);
			break;
		}
		BkTreeEntry *x = &t->entries[i];
		*x = (BkTreeEntry){ 0 };
		t->count = i + 1; /* so that bk_tree_free releases a partial entry */
		r = decode_entry(&d, i, i ? &t->entries[i - 1] : NULL, x);
		if (r < 0)
			break;
	}
	if (r >= 0 && !bk_dec_done(&d))
		r = CORRUPT("tree: %zu trailing bytes", n - d.pos);
	if (r < 0) {
		bk_tree_free(t);
		return r;
	}
	*ret = t;
	return 0;
}

const BkTreeEntry *bk_tree_find(const BkTree *t, const char *name)
{
	size_t lo = 0, hi = t->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, t->entries[mid].name);
		if (c == 0)
			return &t->entries[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}
