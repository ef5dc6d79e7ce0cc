#include "store/check.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/content.h"
#include "store/error.h"
#include "store/idset.h"
#include "store/pack.h"
#include "store/restorer.h"
#include "store/util.h"

/* What check knows of one pack (on disk, or listed by the index): the index
 * entries that place a blob in it, and how many of them its trailer accounts for.
 * More placed than accounted for: entries that name the pack for a blob it does
 * not hold (reading that blob fails; a backup deduplicating against it stores
 * nothing). */
typedef struct {
	uint8_t id[32];
	uint32_t placed, accounted;
	/* unreadable or missing (said already), or not indexed when its trailer was
	 * read (a writer may index it since: its entries come with its row) */
	bool skip;
	/* the trailer's ids, sorted, read again for a second count (recount_blobs) */
	uint8_t (*held)[32];
	size_t nheld;
} PackTally;

typedef struct {
	BkRepo *r;
	bool read_data;
	BkReportFn cb;
	void *ud;
	int problems;
	uint64_t packs, blobs;
	PackTally *tally;
	size_t ntally, tally_cap;
	uint64_t stray;      /* index entries naming a pack that is nowhere */
	uint8_t new_pack[32]; /* the last pack written since check listed them */
	bool has_new;
	BkIndexFill *fill; /* repair's transaction */
} Check;

__attribute__((format(printf, 3, 0))) static void vsay(Check *c, bool problem, const char *fmt,
							   va_list ap)
{
	char line[1400];
	vsnprintf(line, sizeof(line), fmt, ap);
	if (problem)
		c->problems++;
	if (c->cb)
		c->cb(c->ud, problem, line);
}

static void report(Check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(Check *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(c, true, fmt, ap);
	va_end(ap);
}

static void note(Check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(Check *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(c, false, fmt, ap);
	va_end(ap);
}

static int tally_add(Check *c, const uint8_t pack[32], uint32_t accounted, bool skip)
{
	if (c->ntally == c->tally_cap) {
		size_t cap = c->tally_cap ? c->tally_cap * 2 : 256;
		PackTally *t = realloc(c->tally, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		c->tally = t;
		c->tally_cap = cap;
	}
	PackTally *t = &c->tally[c->ntally++];
	*t = (PackTally){ .accounted = accounted, .skip = skip };
	memcpy(t->id, pack, 32);
	return 0;
}

static int tally_cmp(const void *a, const void *b) { return memcmp(a, b, 32); }

static int check_slot(void *ud, const char *slot, BkSecretKind kind, int64_t created, int status)
{
	(void)kind;
	(void)created;
	if (status < 0)
		report(ud, "key slot %s: %s", slot, bk_error_detail());
	return 0;
}

/* Hashes a whole pack and compares with its name. */
static int hash_pack(Check *c, const char *name, const uint8_t id[32], uint64_t size)
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	uint8_t *buf = malloc(1 << 20);
	if (!buf)
		return -ENOMEM;
	int e = 0;
	for (uint64_t off = 0; off < size;) {
		size_t n, want = (size_t)BK_MIN((uint64_t)(1 << 20), size - off);
		if ((e = bk_backend_get(c->r->be, name, off, want, buf, &n)) < 0)
			break;
		if (n != want) {
			e = bk_errorf(BK_E_CORRUPT, "short read");
			break;
		}
		crypto_generichash_update(&st, buf, n);
		off += n;
	}
	free(buf);
	if (e < 0)
		return e;
	uint8_t sum[32];
	crypto_generichash_final(&st, sum, 32);
	if (memcmp(sum, id, 32) != 0)
		report(c, "pack %s: contents do not match its name (damaged)", name);
	return 0;
}

/* Reads, authenticates and opens every blob a pack's own trailer lists (not the
 * index's view of it), in groups whose ids are recomputed at once; a group that
 * fails is read again blob by blob, to report each blob that fails. */
#define GROUP_BYTES (4u << 20)
static int verify_blobs(Check *c, const uint8_t pack[32], const BkPackEntry *ents, size_t n)
{
	uint8_t *out = NULL;
	size_t cap = 0;
	for (size_t i = 0; i < n;) {
		BkBlobLoc loc[BK_REPO_BATCH_MAX];
		uint8_t ids[BK_REPO_BATCH_MAX][32];
		size_t k = 0, bytes = 0;
		while (i + k < n && k < BK_REPO_BATCH_MAX &&
		       (k == 0 || bytes + ents[i + k].plain_len <= GROUP_BYTES)) {
			const BkPackEntry *en = &ents[i + k];
			loc[k] = (BkBlobLoc){ .offset = en->offset, .sealed_len = en->sealed_len,
					      .plain_len = en->plain_len, .type = en->type };
			memcpy(loc[k].pack, pack, 32);
			memcpy(ids[k++], en->id, 32);
			bytes += en->plain_len;
		}
		if (bytes > cap) {
			free(out); /* wiped by every failed read; holds verified bytes only */
			cap = BK_MAX(bytes, (size_t)GROUP_BYTES);
			if (!(out = malloc(cap)))
				return -ENOMEM;
		}
		if (bk_repo_read_locs_into(c->r, k, (const uint8_t(*)[32])ids, loc, out) < 0) {
			for (size_t j = 0; j < k; j++) {
				int e = bk_repo_read_locs_into(c->r, 1, (const uint8_t(*)[32])ids[j], &loc[j], out);
				if (e == -ENOMEM) {
					sodium_memzero(out, cap);
					free(out);
					return e;
				}
				if (e < 0)
					report(c, "%s", bk_error_detail());
			}
		}
		i += k;
	}
	if (out)
		sodium_memzero(out, cap);
	free(out);
	return 0;
}

/* A pack's trailer; a failure but -ENOMEM is reported, followed by suffix. */
static int read_trailer(Check *c, const char *name, uint64_t size, const char *suffix,
			BkPackEntry **ret_ents, size_t *ret_n)
{
	BkSealer *s = bk_repo_sealer(c->r);
	int e = s ? bk_pack_read_trailer(c->r->be, name, size, s, c->r->keys, ret_ents, ret_n)
		  : -ENOMEM;
	if (e < 0 && e != -ENOMEM)
		report(c, "%s%s", bk_error_detail(), suffix);
	return e;
}

static int check_pack(void *ud, const char *name, uint64_t size)
{
	Check *c = ud;
	uint8_t id[32];
	if (bk_pack_name_parse(name, id) < 0) {
		report(c, "%s: not a pack name", name);
		return 0;
	}
	c->packs++;
	/* a pack that cannot be read (a bad sector: EIO, or cut short meanwhile) is a
	 * problem of its own, and the check goes on with the others (found by review:
	 * one unreadable pack ended the check, exit 1) */
	if (c->read_data) {
		int e = hash_pack(c, name, id, size);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			report(c, "pack %s: %s", name, bk_error_detail());
	}
	BkPackEntry *ents;
	size_t n;
	int e = read_trailer(c, name, size, "", &ents, &n);
	if (e < 0)
		return e == -ENOMEM ? e : tally_add(c, id, 0, true);
	uint64_t isize;
	uint32_t icount;
	e = bk_index_get_pack(c->r->index, id, &isize, &icount);
	bool indexed = e == 0;
	if (e == -ENOENT) /* a crash between the pack and its index commit: garbage */
		note(c, "pack %s is not in the index: left by an interrupted backup, or one still "
			"writing that has not indexed it yet; nothing references it ('repair index' "
			"would add it)", name);
	else if (e == 0 && (isize != size || icount != n))
		report(c, "pack %s: index says %llu bytes and %u blobs, pack has %llu and %zu", name,
		       (unsigned long long)isize, icount, (unsigned long long)size, n);
	uint32_t accounted = 0;
	for (size_t i = 0; i < n; i++) {
		c->blobs++;
		BkBlobLoc loc;
		const BkPackEntry *en = &ents[i];
		e = bk_index_get(c->r->index, en->id, &loc);
		if (e == -ENOENT && indexed)
			report(c, "pack %s offset %u: blob %s is not in the index", name, en->offset,
			       bk_id_hex(en->id).s);
		if (e != 0 || memcmp(loc.pack, id, 32) != 0)
			continue;
		accounted++;
		/* a copy in another pack is a duplicate, checked with that pack; one
		 * placed elsewhere in this pack cannot be read (LMDB has no checksums) */
		if (loc.offset != en->offset || loc.sealed_len != en->sealed_len ||
		    loc.plain_len != en->plain_len || loc.type != en->type)
			report(c, "pack %s offset %u: blob %s (%u bytes sealed, %u plain, type %u): index "
				  "says offset %u, %u, %u, type %u ('repair index' rebuilds it)",
			       name, en->offset, bk_id_hex(en->id).s, en->sealed_len, en->plain_len,
			       en->type, loc.offset, loc.sealed_len, loc.plain_len, loc.type);
	}
	if (c->read_data && (e = verify_blobs(c, id, ents, n)) < 0) {
		free(ents);
		return e;
	}
	free(ents);
	return tally_add(c, id, accounted, !indexed);
}

static int check_index_pack(void *ud, const uint8_t pack[32], uint64_t size, uint32_t count)
{
	(void)count;
	Check *c = ud;
	char name[80];
	bk_pack_name(pack, name);
	uint64_t real;
	int e = bk_backend_size(c->r->be, name, &real);
	if (e == -ENOENT) {
		report(c, "index lists pack %s, which is missing", name);
		return tally_add(c, pack, 0, true);
	} else if (e < 0)
		return e;
	else if (real != size)
		report(c, "pack %s: %llu bytes, index says %llu", name, (unsigned long long)real,
		       (unsigned long long)size);
	return 0;
}

static int tally_blob(void *ud, const uint8_t id[32], const BkBlobLoc *loc)
{
	(void)id;
	Check *c = ud;
	PackTally *t = bsearch(loc->pack, c->tally, c->ntally, sizeof(*t), tally_cmp);
	if (t) {
		t->placed++;
		return 0;
	}
	if (c->has_new && memcmp(loc->pack, c->new_pack, 32) == 0)
		return 0;
	char name[80];
	uint64_t size;
	bk_pack_name(loc->pack, name);
	int e = bk_backend_size(c->r->be, name, &size);
	if (e == 0) { /* written since check listed them */
		memcpy(c->new_pack, loc->pack, 32);
		c->has_new = true;
	} else if (e == -ENOENT) {
		c->stray++;
	} else { /* the backend could not tell (as check_index_pack's size) */
		return e;
	}
	return 0;
}

static int recount_blob(void *ud, const uint8_t id[32], const BkBlobLoc *loc)
{
	Check *c = ud;
	PackTally *t = bsearch(loc->pack, c->tally, c->ntally, sizeof(*t), tally_cmp);
	if (t && t->held && !bsearch(id, t->held, t->nheld, 32, tally_cmp))
		t->placed++;
	return 0;
}

/* Counts again, in one read of the index, the entries that place a blob in a pack
 * counted with more than its trailer accounts for and that its trailer does not
 * hold. The first count compared the index as each trailer was read with the index
 * as it was read whole, later: a `repair index` committing between the two moves a
 * blob stored in two packs (two writers storing it at once) to the pack it lists
 * first, and that pack was counted with an entry it had not accounted for (found by
 * a concurrency stress: check --read-data beside a repair reported a clean
 * repository damaged, exit 5). A pack whose trailer cannot be read again keeps the
 * first count. */
static int recount_blobs(Check *c)
{
	bool any = false;
	for (size_t i = 0; i < c->ntally; i++) {
		PackTally *t = &c->tally[i];
		if (t->skip || t->placed <= t->accounted)
			continue;
		char name[80];
		uint64_t size;
		BkPackEntry *ents;
		size_t n;
		bk_pack_name(t->id, name);
		int e = bk_backend_size(c->r->be, name, &size);
		if (e == 0)
			e = read_trailer(c, name, size, "", &ents, &n);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			continue;
		t->held = malloc(BK_MAX(n, (size_t)1) * 32);
		if (!t->held) {
			free(ents);
			return -ENOMEM;
		}
		for (size_t j = 0; j < n; j++)
			memcpy(t->held[j], ents[j].id, 32);
		free(ents);
		qsort(t->held, n, 32, tally_cmp);
		t->nheld = n;
		t->placed = t->accounted = 0;
		any = true;
	}
	return any ? bk_index_foreach_blob(c->r->index, recount_blob, c) : 0;
}

/* Every index entry against the pack it names (found by review: an entry naming a
 * pack that does not hold its blob went unreported, with or without --read-data). */
static int check_index_blobs(Check *c)
{
	if (c->ntally)
		qsort(c->tally, c->ntally, sizeof(*c->tally), tally_cmp);
	int e = bk_index_foreach_blob(c->r->index, tally_blob, c);
	if (e == 0)
		e = recount_blobs(c);
	if (e < 0)
		return e;
	for (size_t i = 0; i < c->ntally; i++) {
		const PackTally *t = &c->tally[i];
		char name[80];
		if (t->skip || t->placed <= t->accounted)
			continue;
		bk_pack_name(t->id, name);
		uint32_t n = t->placed - t->accounted;
		report(c, "pack %s: the index places %u blob%s in it that it does not hold there "
			  "('repair index' rebuilds the index)", name, n, n == 1 ? "" : "s");
	}
	if (c->stray)
		report(c, "the index places %llu blob%s in packs it does not list and that are not "
			  "on disk ('repair index' rebuilds the index)",
		       (unsigned long long)c->stray, c->stray == 1 ? "" : "s");
	return 0;
}

/* Trees already verified, so shared subtrees are walked once. */
typedef struct {
	Check *c;
	BkIdSet seen;
	const char *snap;
} Walk;

static int check_chunk(void *ud, const uint8_t id[32], uint64_t size, uint64_t offset)
{
	(void)size;
	Walk *w = ud;
	BkBlobLoc loc;
	int e = bk_index_get(w->c->r->index, id, &loc);
	if (e == -ENOENT)
		report(w->c, "snapshot %s: data blob %s at offset %llu is missing", w->snap,
		       bk_id_hex(id).s, (unsigned long long)offset);
	else if (e < 0)
		return e;
	return 0;
}

static int walk_tree(Walk *w, const uint8_t id[32])
{
	int added = bk_idset_add(&w->seen, id);
	if (added <= 0)
		return added;
	BkTree *t;
	int e = bk_tree_load(w->c->r, id, &t);
	if (e < 0) {
		report(w->c, "snapshot %s: %s", w->snap, bk_error_detail());
		return e == -ENOMEM ? e : 0;
	}
	for (size_t i = 0; e == 0 && i < t->count; i++) {
		const BkTreeEntry *ent = &t->entries[i];
		if (ent->type == BK_NODE_DIR) {
			e = walk_tree(w, ent->subtree);
		} else if (ent->type == BK_NODE_FILE) {
			e = bk_content_walk(&ent->content, bk_repo_read_blob, w->c->r, check_chunk, w);
			if (e < 0 && e != -ENOMEM) {
				report(w->c, "snapshot %s: file %s: %s", w->snap, ent->name, bk_error_detail());
				e = 0;
			}
		}
	}
	bk_tree_free(t);
	return e;
}

static int check_snapshot(void *ud, const char *name, uint64_t size)
{
	(void)size;
	Walk *w = ud;
	uint8_t id[32];
	const char *slash = strrchr(name, '/');
	if (!slash || bk_unhex(id, 32, slash + 1) < 0) {
		report(w->c, "%s: not a snapshot name", name);
		return 0;
	}
	BkSnapshot *s;
	int e = bk_snapshot_load(w->c->r, id, &s);
	if (e < 0) {
		report(w->c, "%s", bk_error_detail());
		return e == -ENOMEM ? e : 0;
	}
	w->snap = name + 10;
	e = walk_tree(w, s->root);
	bk_snapshot_free(s);
	return e;
}

int bk_check(BkRepo *r, bool read_data, BkReportFn cb, void *ud)
{
	Check c = { .r = r, .read_data = read_data, .cb = cb, .ud = ud };
	int e = bk_repo_key_list(r, check_slot, &c);
	if (e == 0)
		e = bk_backend_list(r->be, "data", check_pack, &c);
	if (e == 0)
		e = bk_index_foreach_pack(r->index, check_index_pack, &c);
	if (e == 0)
		e = check_index_blobs(&c);
	for (size_t i = 0; i < c.ntally; i++)
		free(c.tally[i].held);
	free(c.tally);
	Walk w = { .c = &c };
	if (e == 0)
		e = bk_backend_list(r->be, "snapshots", check_snapshot, &w);
	bk_idset_release(&w.seen);
	return e < 0 ? e : c.problems;
}

static int repair_pack(void *ud, const char *name, uint64_t size)
{
	Check *c = ud;
	uint8_t id[32];
	if (bk_pack_name_parse(name, id) < 0)
		return 0;
	BkPackEntry *ents;
	size_t n;
	int e = read_trailer(c, name, size, " (skipped)", &ents, &n);
	if (e < 0)
		return e == -ENOMEM ? e : 0;
	e = bk_index_fill_pack(c->fill, id, size, ents, n);
	free(ents);
	c->packs++;
	c->blobs += n;
	return e;
}

static int repair_fill(void *ud, BkIndexFill *f)
{
	Check *c = ud;
	c->fill = f;
	return bk_backend_list(c->r->be, "data", repair_pack, c);
}

int bk_repair_index(BkRepo *r, BkReportFn cb, void *ud, uint64_t *ret_packs, uint64_t *ret_blobs)
{
	Check c = { .r = r, .cb = cb, .ud = ud };
	int e = bk_index_replace(r->index, repair_fill, &c);
	*ret_packs = c.packs;
	*ret_blobs = c.blobs;
	return e < 0 ? e : c.problems;
}
