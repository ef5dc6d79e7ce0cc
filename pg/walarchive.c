#include "pg/walarchive.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/archiver.h"
#include "store/codec.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/restorer.h"
#include "store/util.h"

#define WAL_RECORD_VERSION 4
#define END_CUT_XACT 0x01 /* end.flags (version 3; version 2: cut_xact alone) */
#define END_STOPPED 0x02
#define END_CARRY 0x04 /* version 4 */
#define CLUSTER_RECORD_VERSION 1
#define REFUSAL_RECORD_VERSION 1
#define WAL_FILE_MAX (1ull << 32) /* segments are at most 1 GiB; history files small */
#define HISTORY_MAX (1u << 20)    /* a .history or .backup file (a few lines each) */

void bk_wal_record_release(BkWalRecord *w) { bk_content_node_release(&w->content); }

bool bk_cluster_name_valid(const char *name)
{
	size_t n = strlen(name);
	return n >= 1 && n <= BK_CLUSTER_NAME_MAX && name[0] != '.' &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int check_cluster(const char *cluster)
{
	if (!bk_cluster_name_valid(cluster))
		return bk_errorf(BK_E_USAGE, "invalid cluster name '%s' (1-64 of A-Z a-z 0-9 _ . -)",
				 cluster);
	return 0;
}

/* ---- cluster records ---- */

int bk_cluster_get(BkRepo *r, const char *cluster, uint64_t *ret_sysid, uint32_t *ret_seg_size)
{
	int e = check_cluster(cluster);
	if (e < 0)
		return e;
	char name[128];
	snprintf(name, sizeof(name), "clusters/%s", cluster);
	uint8_t *p;
	size_t len;
	e = bk_repo_get_named(r, name, BK_BLOB_CLUSTER, &p, &len);
	if (e < 0)
		return e;
	BkDec d;
	bk_dec_init(&d, p, len);
	uint8_t v = bk_dec_u8(&d);
	size_t n;
	const uint8_t *cl = bk_dec_str(&d, BK_CLUSTER_NAME_MAX, &n);
	uint64_t sysid = bk_dec_u64(&d);
	uint32_t seg = bk_dec_u32(&d);
	if (!bk_dec_error(&d) && v != CLUSTER_RECORD_VERSION)
		e = bk_errorf(BK_E_VERSION, "%s: version %u unknown", name, v);
	else if (!bk_dec_done(&d) || n != strlen(cluster) || memcmp(cl, cluster, n) != 0)
		e = bk_errorf(BK_E_CORRUPT, "%s: malformed", name);
	free(p);
	if (e == 0) {
		*ret_sysid = sysid;
		*ret_seg_size = seg;
	}
	return e;
}

typedef struct {
	BkRepo *r;
	const char *cluster, *wal;
	uint64_t sysid;
	char *ret;
} SameSystem;

static int same_system(void *ud, const char *name, uint64_t size)
{
	(void)size;
	SameSystem *s = ud;
	const char *cl = bk_path_base(name);
	uint64_t sysid;
	uint32_t seg;
	bool has;
	/* another system, or a record that does not read (or of no cluster name): not
	 * a match (this only informs a warning) */
	if (strcmp(cl, s->cluster) == 0 || bk_cluster_get(s->r, cl, &sysid, &seg) < 0 ||
	    sysid != s->sysid)
		return 0;
	if (s->wal && (bk_wal_has(s->r, cl, s->wal, &has) < 0 || !has))
		return 0;
	snprintf(s->ret, BK_CLUSTER_NAME_MAX + 1, "%s", cl);
	return -ECANCELED; /* stops the listing */
}

int bk_cluster_same_system(BkRepo *r, const char *cluster, uint64_t sysid, const char *wal,
			   char ret[BK_CLUSTER_NAME_MAX + 1])
{
	ret[0] = '\0';
	SameSystem s = { .r = r, .cluster = cluster, .wal = wal, .sysid = sysid, .ret = ret };
	int e = bk_backend_list(r->be, "clusters", same_system, &s);
	return e == -ECANCELED && ret[0] ? 0 : e;
}

/* A record just created: the warning if another cluster has its system. */
static void warn_same_system(BkRepo *r, const char *cluster, uint64_t sysid,
			     char warning[BK_CLUSTER_WARNING_MAX])
{
	char other[BK_CLUSTER_NAME_MAX + 1];
	if (bk_cluster_same_system(r, cluster, sysid, NULL, other) == 0 && other[0])
		snprintf(warning, BK_CLUSTER_WARNING_MAX,
			 "system %llu is also archived here as cluster '%s' (--cluster %s?)",
			 (unsigned long long)sysid, other, other);
}

int bk_cluster_claim(BkRepo *r, const char *cluster, uint64_t sysid, uint32_t seg_size,
		     char ret_warning[BK_CLUSTER_WARNING_MAX])
{
	if (ret_warning)
		ret_warning[0] = '\0';
	uint64_t have;
	uint32_t have_seg;
	int e = bk_cluster_get(r, cluster, &have, &have_seg);
	if (e == -ENOENT) {
		BkEnc enc;
		bk_enc_init(&enc, 256);
		bk_enc_u8(&enc, CLUSTER_RECORD_VERSION);
		bk_enc_cstr(&enc, cluster);
		bk_enc_u64(&enc, sysid);
		bk_enc_u32(&enc, seg_size);
		char name[128];
		snprintf(name, sizeof(name), "clusters/%s", cluster);
		e = bk_enc_finish(&enc);
		if (e == 0)
			e = bk_repo_put_named(r, name, BK_BLOB_CLUSTER, enc.buf, enc.len);
		bk_enc_release(&enc);
		if (e == 0 && ret_warning) /* only here: a push that finds the record looks no further */
			warn_same_system(r, cluster, sysid, ret_warning);
		if (e != -EEXIST)
			return e;
		/* another process claimed it first: compare with theirs */
		e = bk_cluster_get(r, cluster, &have, &have_seg);
	}
	if (e < 0)
		return e;
	if (have != sysid)
		return bk_errorf(BK_E_MISMATCH,
				 "cluster '%s' belongs to system %llu, and this server is system "
				 "%llu (use another --cluster name for another server)",
				 cluster, (unsigned long long)have, (unsigned long long)sysid);
	return 0;
}

/* ---- WAL records ---- */

int bk_wal_record_encode(const BkWalRecord *w, BkEnc *enc)
{
	bk_enc_u8(enc, WAL_RECORD_VERSION);
	bk_enc_cstr(enc, w->name);
	bk_enc_varint(enc, w->size);
	bk_enc_u64(enc, w->sysid);
	bk_enc_u32(enc, w->tli);
	bk_enc_svarint(enc, w->pushed_us);
	bk_enc_u8(enc, w->has_end ? BK_WAL_END_REV : 0);
	if (w->has_end) {
		bk_enc_varint(enc, w->end.lsn);
		bk_enc_svarint(enc, w->end.xact_us);
		bk_enc_svarint(enc, w->end.cut_xact_us);
		const BkWalCarry *c = &w->end.carry;
		bk_enc_u8(enc, (w->end.cut_xact ? END_CUT_XACT : 0) | (w->end.stopped ? END_STOPPED : 0) |
				       (c->head ? END_CARRY : 0));
		if (c->head) {
			bk_enc_varint(enc, c->lsn);
			bk_enc_u8(enc, c->head);
			bk_enc_bytes(enc, c->hdr, c->head);
			bk_enc_u32(enc, c->crc);
		}
	}
	int e = bk_content_node_encode(&w->content, enc);
	return e < 0 ? e : bk_enc_finish(enc);
}

int bk_wal_record_decode(const uint8_t *p, size_t len, BkWalRecord *ret)
{
	BkDec d;
	bk_dec_init(&d, p, len);
	BkWalRecord w = { 0 };
	uint8_t v = bk_dec_u8(&d);
	if (!bk_dec_error(&d) && (v < 1 || v > WAL_RECORD_VERSION))
		return bk_errorf(BK_E_VERSION, "WAL record version %u unknown", v);
	size_t n;
	const uint8_t *name = bk_dec_str(&d, BK_WAL_NAME_MAX - 1, &n);
	if (name)
		memcpy(w.name, name, n);
	w.size = bk_dec_varint(&d);
	w.sysid = bk_dec_u64(&d);
	w.tli = bk_dec_u32(&d);
	w.pushed_us = bk_dec_svarint(&d);
	uint8_t end_rev = v >= 2 ? bk_dec_u8(&d) : 0, flags = 0;
	if (end_rev) {
		w.end.lsn = bk_dec_varint(&d);
		w.end.xact_us = bk_dec_svarint(&d);
		w.end.cut_xact_us = bk_dec_svarint(&d);
		flags = bk_dec_u8(&d); /* version 2: cut_xact, 0 or 1 */
	}
	w.end.cut_xact = flags & END_CUT_XACT;
	w.end.stopped = flags & END_STOPPED;
	BkWalCarry *c = &w.end.carry;
	bool carry_ok = true;
	if (flags & END_CARRY) {
		c->lsn = bk_dec_varint(&d);
		c->head = bk_dec_u8(&d);
		carry_ok = c->head == 8 || c->head == 16 || c->head == 24;
		const uint8_t *hdr = carry_ok ? bk_dec_bytes(&d, c->head) : NULL;
		if (hdr)
			memcpy(c->hdr, hdr, c->head);
		c->crc = bk_dec_u32(&d);
		carry_ok &= c->head == 24 || c->crc == 0; /* a cut header: no data summed yet */
	}
	uint8_t known = v >= 4 ? END_CUT_XACT | END_STOPPED | END_CARRY :
			v >= 3 ? END_CUT_XACT | END_STOPPED : END_CUT_XACT;
	BkWalName wn;
	if (bk_dec_error(&d) || (flags & ~known) || !carry_ok ||
	    (end_rev && (bk_wal_name_parse(w.name, &wn) < 0 || wn.kind != BK_WAL_SEGMENT || !w.sysid)))
		return bk_errorf(BK_E_CORRUPT, "WAL record: malformed");
	w.has_end = end_rev == BK_WAL_END_REV; /* another walker's: walk it again */
	if (!w.has_end)
		w.end = (BkWalEnd){ 0 };
	int e = bk_content_node_decode(&d, &w.content);
	if (e < 0)
		return e;
	if (!bk_dec_done(&d) || bk_content_node_size(&w.content) != w.size || memchr(w.name, 0, n)) {
		bk_content_node_release(&w.content);
		return bk_errorf(BK_E_CORRUPT, "WAL record: malformed");
	}
	*ret = w;
	return 0;
}

static void record_name(char out[160], const char *cluster, const char *file)
{
	snprintf(out, 160, "wal/%s/%s", cluster, file);
}

int bk_wal_record_get(BkRepo *r, const char *cluster, const char *name, BkWalRecord *ret)
{
	int e = check_cluster(cluster);
	if (e < 0)
		return e;
	BkWalName wn;
	if (bk_wal_name_parse(name, &wn) < 0)
		return -ENOENT; /* never archived: not a WAL file name */
	char obj[160];
	record_name(obj, cluster, name);
	uint8_t *p;
	size_t len;
	if ((e = bk_repo_get_named(r, obj, BK_BLOB_WAL, &p, &len)) < 0)
		return e;
	e = bk_wal_record_decode(p, len, ret);
	free(p);
	if (e < 0)
		return bk_error_wrap(e, "%s", obj);
	if (strcmp(ret->name, name) != 0) {
		bk_wal_record_release(ret);
		return bk_errorf(BK_E_CORRUPT, "%s: holds the record of %s", obj, ret->name);
	}
	return 0;
}

/* Stores a file's bytes; fills w->content and w->size. */
static int store_fd(BkRepo *r, int fd, BkWalRecord *w)
{
	BkWriter *writer = NULL;
	BkChunkStream *stream = NULL;
	int e = bk_writer_new(r, &writer);
	if (e == 0) /* archive_command latency matters more than a few percent of size */
		bk_writer_set_level(writer, BK_WAL_ZSTD_LEVEL);
	if (e == 0)
		e = bk_chunk_stream_new_blocks(r, writer, BK_WAL_BLOCK, &stream);
	if (e == 0)
		e = bk_chunk_stream_read_fd(stream, fd, NULL, NULL, 0, 0);
	if (e == 0)
		e = bk_chunk_stream_finish(stream, &w->content, &w->size);
	bk_chunk_stream_free(stream);
	if (e == 0)
		e = bk_writer_flush(writer); /* packs durable and indexed before the record */
	bk_writer_free(writer);
	return e;
}

/* Compares the file with the archived copy, chunk by chunk (authenticated reads). */
typedef struct {
	BkRepo *r;
	int fd;
	uint8_t *buf; /* cap bytes, grown to the largest chunk */
	size_t cap;
	bool differs;
	uint64_t first_diff; /* the offset of the first byte that differs */
} Compare;

static int compare_chunk(void *ud, const uint8_t id[32], uint64_t size, uint64_t offset)
{
	Compare *c = ud;
	uint8_t *data;
	size_t len, n;
	int e = bk_repo_read_blob(c->r, BK_BLOB_DATA, id, &data, &len);
	if (e < 0)
		return e;
	if (len != size) {
		free(data);
		return bk_errorf(BK_E_CORRUPT, "chunk %s: wrong length", bk_id_hex(id).s);
	}
	/* (WAL is stored in BK_WAL_BLOCK blocks, larger than a repository's chunks may
	 * be: found by review, a re-push into a repository of 4 KiB chunks overflowed) */
	if (len > c->cap) {
		uint8_t *p = realloc(c->buf, len);
		if (!p) {
			free(data);
			return -ENOMEM;
		}
		c->buf = p;
		c->cap = len;
	}
	e = bk_pread_all(c->fd, c->buf, len, offset, &n);
	if (e == 0 && (n != len || memcmp(data, c->buf, len) != 0)) {
		size_t i = 0;
		while (i < n && data[i] == c->buf[i])
			i++;
		c->differs = true;
		c->first_diff = offset + i;
	}
	free(data);
	return e < 0 ? bk_errorf_code(e, "read") : c->differs ? -ECANCELED : 0;
}

/* ---- refused pushes ---- */

static void refusal_name(char out[160], const char *cluster, const char *file)
{
	snprintf(out, 160, "refused/%s/%s", cluster, file);
}

/* Leaves the refusal record of file (its name's first; best effort, before the
 * caller records the refusal's own detail: a failure here changes nothing of it). */
static void note_refusal(BkRepo *r, const char *cluster, const char *file, bool cut)
{
	char obj[160];
	uint64_t size;
	refusal_name(obj, cluster, file);
	if (bk_backend_size(r->be, obj, &size) == 0) /* (the server's retries: one stat) */
		return;
	BkEnc enc;
	bk_enc_init(&enc, 256);
	bk_enc_u8(&enc, REFUSAL_RECORD_VERSION);
	bk_enc_cstr(&enc, file);
	bk_enc_svarint(&enc, bk_now_us());
	bk_enc_u8(&enc, cut);
	if (bk_enc_finish(&enc) == 0)
		bk_repo_put_named(r, obj, BK_BLOB_WAL_REFUSAL, enc.buf, enc.len);
	bk_enc_release(&enc);
	bk_error_clear();
}

static int refusal_get(BkRepo *r, const char *cluster, const char *file, BkWalRefusal *ret)
{
	char obj[160];
	refusal_name(obj, cluster, file);
	uint8_t *p;
	size_t len;
	int e = bk_repo_get_named(r, obj, BK_BLOB_WAL_REFUSAL, &p, &len);
	if (e < 0)
		return e;
	BkDec d;
	bk_dec_init(&d, p, len);
	uint8_t v = bk_dec_u8(&d);
	size_t n;
	const uint8_t *name = bk_dec_str(&d, BK_WAL_NAME_MAX - 1, &n);
	int64_t at = bk_dec_svarint(&d);
	uint8_t cut = bk_dec_u8(&d);
	if (!bk_dec_error(&d) && v != REFUSAL_RECORD_VERSION)
		e = bk_errorf(BK_E_VERSION, "%s: version %u unknown", obj, v);
	else if (!bk_dec_done(&d) || cut > 1 || n != strlen(file) || memcmp(name, file, n) != 0)
		e = bk_errorf(BK_E_CORRUPT, "%s: malformed", obj);
	free(p);
	if (e == 0)
		*ret = (BkWalRefusal){ .refused_us = at, .cut = cut };
	if (e == 0)
		memcpy(ret->name, file, n + 1);
	return e;
}

typedef struct {
	BkRepo *r;
	const char *cluster;
	BkWalRefusal *f;
	size_t n, cap;
} Refusals;

static int add_refusal(void *ud, const char *name, uint64_t size)
{
	(void)size;
	Refusals *l = ud;
	const char *file = bk_path_base(name);
	if (strlen(file) >= BK_WAL_NAME_MAX)
		return bk_errorf(BK_E_CORRUPT, "%s: not a refusal record name", name);
	if (bk_grow(&l->f, &l->cap, l->n, sizeof(*l->f), 4) < 0)
		return -ENOMEM;
	int e = refusal_get(l->r, l->cluster, file, &l->f[l->n]);
	if (e == 0)
		l->n++;
	return e;
}

static int refusal_cmp(const void *a, const void *b)
{
	return strcmp(((const BkWalRefusal *)a)->name, ((const BkWalRefusal *)b)->name);
}

int bk_wal_refusals(BkRepo *r, const char *cluster, BkWalRefusal **ret, size_t *ret_n)
{
	*ret = NULL;
	*ret_n = 0;
	int e = check_cluster(cluster);
	char dir[128];
	snprintf(dir, sizeof(dir), "refused/%s", cluster);
	Refusals l = { .r = r, .cluster = cluster };
	if (e == 0)
		e = bk_backend_list(r->be, dir, add_refusal, &l);
	if (e < 0) {
		free(l.f);
		return e;
	}
	if (l.n)
		qsort(l.f, l.n, sizeof(*l.f), refusal_cmp);
	*ret = l.f;
	*ret_n = l.n;
	return 0;
}

static int compare_with_archive(BkRepo *r, const char *cluster, const char *name,
				const BkWalName *wn, int fd)
{
	BkWalRecord have;
	int e = bk_wal_record_get(r, cluster, name, &have);
	if (e < 0)
		return e;
	struct stat st;
	Compare c = { .r = r, .fd = fd };
	if (fstat(fd, &st) < 0)
		e = bk_errorf_code(-errno, "stat %s", name);
	else if ((uint64_t)st.st_size != have.size)
		c.differs = true;
	else
		e = bk_content_walk(&have.content, bk_repo_read_blob, r, compare_chunk, &c);
	/* the archived copy's WAL stops short where this file's goes on: it was taken
	 * before the server had finished the segment (pushed by hand from pg_wal, found
	 * by review; or a standby's last one before it failed over). Archived files
	 * are immutable (DESIGN.md): say what to do rather than only that they differ. */
	uint64_t segno;
	bool in_it = have.has_end && have.end.stopped && have.end.lsn && wn->kind == BK_WAL_SEGMENT &&
		     bk_wal_name_segno(wn, (uint32_t)have.size, &segno) == 0 &&
		     have.end.lsn / have.size == segno; /* (not one the segment before began) */
	bool cut = c.differs && in_it && c.first_diff > have.end.lsn % have.size;
	if (c.differs)
		note_refusal(r, cluster, name, cut);
	if (cut) {
		char at[BK_WAL_LSN_MAX];
		bk_wal_lsn_format(at, sizeof(at), have.end.lsn);
		e = bk_errorf(BK_E_MISMATCH,
			      "%s is already archived for cluster '%s' cut short: its WAL stops after "
			      "the record at %s, where this file's goes on (the archived copy was taken "
			      "before the server had finished it, or is damaged); an archived file is "
			      "never replaced: archive under a new --cluster from here on and take a "
			      "base backup there",
			      name, cluster, at);
	} else if (c.differs) {
		e = bk_errorf(BK_E_MISMATCH,
			      "%s is already archived for cluster '%s' with different contents (a "
			      "second server archiving into it, as a copy of this one started as a "
			      "primary? an archived file is never replaced; pg info lists the "
			      "refusals)",
			      name, cluster);
	}
	free(c.buf);
	bk_wal_record_release(&have);
	return e;
}

/* A segment's walk (bk_wal_last_record) on a thread of its own: error details are
 * per thread, so its detail is kept here. The record the segment before cut at
 * its end is checked across the two when that one is archived already, as
 * PostgreSQL archives them, in order (carry_before); and the record this one's end
 * cuts against the segments after it archived already, pushed out of order
 * (check_after). */
typedef struct {
	BkRepo *r;
	const char *cluster;
	int fd;
	const char *name;
	uint32_t seg_size;
	BkWalEnd end;
	int e;
	char detail[256];
} Walk;

/* The timeline whose file recovery reads for segment segno along timeline tli's
 * history (the newest one on it that had begun by the segment's start, as
 * PostgreSQL picks it): tli itself, or one before when tli began after it. 0 when
 * tli's history is not archived. */
static int path_tli(BkRepo *r, const char *cluster, uint32_t tli, uint64_t segno,
		    uint32_t seg_size, uint32_t *ret)
{
	BkWalTliSwitch sw[BK_MAX_TIMELINES - 1];
	size_t n;
	*ret = 0;
	int e = bk_wal_history_get(r, cluster, tli, sw, BK_MAX_TIMELINES - 1, &n);
	if (e == -ENOENT) {
		bk_error_clear();
		return 0;
	}
	if (e < 0)
		return e;
	uint32_t tlis[BK_MAX_TIMELINES];
	uint64_t begin[BK_MAX_TIMELINES] = { 0 };
	for (size_t i = 0; i < n; i++) { /* sw[i].tli ends where the next begins */
		tlis[i] = sw[i].tli;
		begin[i + 1] = sw[i].end_lsn;
	}
	tlis[n] = tli;
	*ret = tlis[bk_wal_path_index(begin, n + 1, segno, seg_size)];
	return 0;
}

/* The carry of the segment before `name` into *ret (head 0: none): that of its
 * timeline, or, when that is not archived and the timeline began after it (a new
 * timeline's first segment, which every promote left unchecked before), the one
 * recovery reads before it on the timeline's history. When one record covers
 * that segment and its walk had no carry (pushed before its own segment before),
 * it is walked again with the carry before it, and so on back. Not archived
 * (yet), or by a later bunker, is none; a record that cannot be read fails the
 * push, which PostgreSQL retries, rather than leave the segment unchecked for good
 * (its end is recorded as walked). */
static int carry_before(BkRepo *r, const char *cluster, const char *name, uint32_t seg_size,
			BkWalCarry *ret)
{
	BkWalName wn;
	uint64_t segno;
	char before[BK_WAL_NAME_MAX];
	BkWalRecord w;
	*ret = (BkWalCarry){ 0 };
	if (bk_wal_name_parse(name, &wn) < 0 || bk_wal_name_segno(&wn, seg_size, &segno) < 0 ||
	    segno == 0 || bk_wal_segment_name(before, sizeof(before), wn.tli, segno - 1, seg_size) < 0)
		return 0;
	int e = bk_wal_record_get(r, cluster, before, &w);
	if (e == -ENOENT && wn.tli > 1) { /* a timeline's first segment? */
		uint32_t tli;
		e = path_tli(r, cluster, wn.tli, segno - 1, seg_size, &tli);
		if (e < 0)
			return bk_error_wrap(e, "the history of timeline %u", wn.tli);
		e = -ENOENT;
		if (tli && tli != wn.tli &&
		    bk_wal_segment_name(before, sizeof(before), tli, segno - 1, seg_size) == 0)
			e = bk_wal_record_get(r, cluster, before, &w);
	}
	if (e == -ENOENT || e == BK_E_VERSION) {
		bk_error_clear();
		return 0;
	}
	if (e < 0)
		return bk_error_wrap(e, "the record of the segment before, %s", before);
	*ret = w.end.carry;
	/* One record covers the segment before, and its walk had no carry: it was
	 * archived before the one before it, and what it holds of the record is not
	 * known. It is walked again with the carry of its own segment before, and so
	 * on back (found by a helper's exploration: a 60 MB record over segments 3 to
	 * 6, 5 pushed first, then in order: 6 was walked without a carry, and the
	 * damage in 5 passed every check, while recovery stopped before it, silently) */
	if (!w.end.carry.head && bk_wal_end_inside(&w.end)) {
		BkWalCarry prev;
		int fd = -1;
		BkWalEnd again;
		e = carry_before(r, cluster, before, seg_size, &prev);
		if (e == 0 && prev.head && (e = bk_wal_record_to_fd(r, &w, &fd)) == 0)
			e = bk_wal_last_record(fd, before, &prev, &again);
		if (fd >= 0)
			close(fd);
		if (e == 0 && prev.head && !again.stopped)
			*ret = again.carry;
		if (e == -ENOENT || e == BK_E_CORRUPT) { /* its bytes lost: unchecked, as in
							   * check_after */
			bk_error_clear();
			e = 0;
		}
	}
	bk_wal_record_release(&w);
	return e < 0 ? bk_error_wrap(e, "the segment before, %s", before) : 0;
}

/* The segments after `name` on its timeline archived before it (pushed out of
 * order: their walks had no carry from it) are walked again with its carry, on
 * through those the record covers whole: when the record its end cuts fails
 * across, recovery stops at the last record whole in it, and its end says so
 * (stopped; the record cut is no transaction's end). The verdict is this
 * segment's, where in order it is the one where the record ends: both end the
 * WAL recovery reads at the same record. */
static int check_after(BkRepo *r, const char *cluster, const char *name, uint32_t seg_size,
		       BkWalEnd *end)
{
	BkWalName wn;
	uint64_t segno;
	if (!end->carry.head || end->stopped || bk_wal_name_parse(name, &wn) < 0 ||
	    bk_wal_name_segno(&wn, seg_size, &segno) < 0)
		return 0;
	BkWalCarry carry = end->carry;
	for (uint64_t s = segno + 1; carry.head; s++) {
		char next[BK_WAL_NAME_MAX];
		BkWalRecord w;
		if (bk_wal_segment_name(next, sizeof(next), wn.tli, s, seg_size) < 0)
			return 0;
		int e = bk_wal_record_get(r, cluster, next, &w);
		if (e == -ENOENT || e == BK_E_VERSION) { /* in order, or by a later bunker */
			bk_error_clear();
			return 0;
		}
		int fd = -1;
		BkWalEnd after;
		if (e == 0) {
			e = bk_wal_record_to_fd(r, &w, &fd);
			if (e == 0)
				e = bk_wal_last_record(fd, next, &carry, &after);
			if (fd >= 0)
				close(fd);
			bk_wal_record_release(&w);
		}
		if (e == -ENOENT || e == BK_E_CORRUPT) {
			/* its bytes lost or damaged in the store (check reports them): left
			 * unchecked, as failing would stop archiving for good, PostgreSQL
			 * retrying this segment while pg_wal fills up (found by review) */
			bk_error_clear();
			return 0;
		}
		if (e < 0)
			return bk_error_wrap(e, "the segment after, %s", next);
		if (after.stopped && !after.lsn) {
			end->stopped = true;
			end->cut_xact = false;
			end->cut_xact_us = 0;
			return 0;
		}
		if (!bk_wal_end_inside(&after))
			return 0; /* it ends there, whole */
		carry = after.carry;
	}
	return 0;
}

static void *walk_segment(void *ud)
{
	Walk *w = ud;
	BkWalCarry carry;
	w->e = carry_before(w->r, w->cluster, w->name, w->seg_size, &carry);
	if (w->e == 0)
		w->e = bk_wal_last_record(w->fd, w->name, &carry, &w->end);
	if (w->e == 0)
		w->e = check_after(w->r, w->cluster, w->name, w->seg_size, &w->end);
	if (w->e < 0)
		snprintf(w->detail, sizeof(w->detail), "%s", bk_error_detail());
	return NULL;
}

/* Whether fd (at most HISTORY_MAX bytes) holds timeline tli's history as
 * bk_wal_history_get reads it back: at least one line (the parent's), every
 * timeline below tli. BK_E_CORRUPT otherwise. */
static int check_history(int fd, uint32_t tli)
{
	char *buf = malloc(HISTORY_MAX);
	BkWalTliSwitch *sw = malloc((BK_MAX_TIMELINES - 1) * sizeof(*sw));
	size_t len, n = 0;
	int e = buf && sw ? bk_pread_all(fd, buf, HISTORY_MAX, 0, &len) : -ENOMEM;
	if (e == 0)
		e = bk_wal_history_parse(buf, len, tli, sw, BK_MAX_TIMELINES - 1, &n);
	if (e == 0 && n == 0)
		e = bk_errorf(BK_E_CORRUPT, "not a history file: no line names a parent timeline");
	free(buf);
	free(sw);
	return e;
}

int bk_wal_push(BkRepo *r, const char *cluster, const char *path, bool *ret_stored,
		char ret_warning[BK_CLUSTER_WARNING_MAX])
{
	*ret_stored = false;
	if (ret_warning)
		ret_warning[0] = '\0';
	int e = check_cluster(cluster);
	if (e < 0)
		return e;
	const char *base = bk_path_base(path);
	BkWalName wn;
	if (bk_wal_name_parse(base, &wn) < 0)
		return bk_errorf(BK_E_USAGE, "%s: not a WAL file name", path);
	/* (O_NONBLOCK: a FIFO must not block the open; a regular file ignores it) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? bk_errorf(-ENOENT, "%s does not exist", path)
				       : bk_errorf_code(-errno, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return bk_errorf(BK_E_USAGE, "%s: not a regular file", path);
	}
	bool small = wn.kind == BK_WAL_HISTORY || wn.kind == BK_WAL_BACKUP_HISTORY;
	if ((uint64_t)st.st_size > (small ? HISTORY_MAX : WAL_FILE_MAX)) {
		close(fd);
		return bk_errorf(BK_E_CORRUPT, "%s: %llu bytes is too large for a %s", path,
				 (unsigned long long)st.st_size,
				 small ? "history file" : "WAL segment");
	}
	/* a history file every restore reads must be one (found by review: any bytes
	 * were stored, and then every restore of the cluster failed on them) */
	if (wn.kind == BK_WAL_HISTORY && (e = check_history(fd, wn.tli)) < 0) {
		close(fd);
		return bk_error_wrap(e, "%s", path);
	}

	char obj[160];
	record_name(obj, cluster, base);
	uint64_t exists;
	if (bk_backend_size(r->be, obj, &exists) == 0) { /* a retry, or a conflict */
		e = compare_with_archive(r, cluster, base, &wn, fd);
		close(fd);
		/* a push killed before its record was durable may have left it visible */
		return e < 0 ? e : bk_backend_sync(r->be, obj);
	}

	BkWalRecord w = { .pushed_us = bk_now_us(), .tli = wn.tli };
	snprintf(w.name, sizeof(w.name), "%s", base);
	uint32_t seg_size = 0;
	if (wn.kind == BK_WAL_SEGMENT || wn.kind == BK_WAL_PARTIAL) {
		uint8_t head[BK_WAL_LONG_HEADER_SIZE];
		size_t n;
		BkWalHeader h;
		e = bk_pread_all(fd, head, sizeof(head), 0, &n);
		if (e < 0)
			e = bk_errorf_code(e, "read %s", path);
		else if ((e = bk_wal_header_parse(head, n, base, &h)) < 0)
			e = bk_error_wrap(e, "%s", path);
		else if ((uint64_t)st.st_size != h.seg_size) /* (a .partial is whole too) */
			e = bk_errorf(BK_E_CORRUPT, "%s: %llu bytes, the segment size is %u", path,
				      (unsigned long long)st.st_size, h.seg_size);
		else
			e = bk_cluster_claim(r, cluster, h.sysid, h.seg_size, ret_warning);
		w.sysid = h.sysid;
		seg_size = h.seg_size;
	}
	/* the walk (~3.5 ms for a busy 16 MiB segment, CRCs included) beside the store,
	 * on its own reads of the file: it does not wait for the other */
	Walk walk = { .r = r, .cluster = cluster, .fd = fd, .name = base, .seg_size = seg_size };
	pthread_t walker;
	bool walking = false;
	if (e == 0 && wn.kind == BK_WAL_SEGMENT) {
		walking = pthread_create(&walker, NULL, walk_segment, &walk) == 0;
		if (!walking)
			walk_segment(&walk);
	}
	if (e == 0)
		e = store_fd(r, fd, &w);
	if (e == 0 && w.size != (uint64_t)st.st_size) /* (cut while read: never stored short) */
		e = bk_errorf(BK_E_CORRUPT, "%s: %llu bytes read of its %llu: it changed while read",
			      path, (unsigned long long)w.size, (unsigned long long)st.st_size);
	if (walking)
		pthread_join(walker, NULL);
	if (e == 0 && wn.kind == BK_WAL_SEGMENT && walk.e < 0)
		e = bk_errorf(walk.e, "%s: %s", path, walk.detail);
	if (e == 0 && wn.kind == BK_WAL_SEGMENT) {
		w.end = walk.end;
		w.has_end = true;
	}
	BkEnc enc;
	bk_enc_init(&enc, BK_RECORD_MAX);
	if (e == 0)
		e = bk_wal_record_encode(&w, &enc);
	if (e == 0)
		e = bk_repo_put_named(r, obj, BK_BLOB_WAL, enc.buf, enc.len);
	bk_enc_release(&enc);
	if (e == -EEXIST) /* a concurrent push of the same name won: same bytes? */
		e = compare_with_archive(r, cluster, base, &wn, fd);
	else if (e == 0)
		*ret_stored = true;
	bk_wal_record_release(&w);
	close(fd);
	return e;
}

/* ---- reading archived files back ---- */

int bk_wal_record_to_fd(BkRepo *r, const BkWalRecord *w, int *ret_fd)
{
	int fd = open(r->tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		fd = memfd_create("bunker-wal", MFD_CLOEXEC);
	if (fd < 0)
		return bk_errorf_code(-errno, "temporary file for %s", w->name);
	int e = bk_content_write(r, &w->content, fd);
	if (e < 0)
		close(fd);
	else
		*ret_fd = fd;
	return e;
}

typedef struct {
	BkRepo *r;
	BkIdSet *packs;
} Stored;

static int blob_stored(void *ud, const uint8_t id[32], uint64_t size, uint64_t offset)
{
	(void)size;
	Stored *st = ud;
	BkBlobLoc loc;
	int e = bk_index_get(st->r->index, id, &loc);
	if (e == -ENOENT)
		return bk_errorf(BK_E_CORRUPT, "its data at offset %llu (blob %s) is not in the index",
				 (unsigned long long)offset, bk_id_hex(id).s);
	if (e < 0 || bk_idset_has(st->packs, loc.pack))
		return e;
	char name[80];
	uint64_t bytes;
	bk_pack_name(loc.pack, name);
	e = bk_backend_size(st->r->be, name, &bytes);
	if (e == -ENOENT)
		return bk_errorf(BK_E_CORRUPT, "its data at offset %llu is in pack %s, which is missing",
				 (unsigned long long)offset, name);
	return e < 0 ? e : bk_idset_add(st->packs, loc.pack) < 0 ? -ENOMEM : 0;
}

int bk_wal_record_stored(BkRepo *r, const BkWalRecord *w, BkIdSet *packs)
{
	Stored st = { r, packs };
	int e = bk_content_walk(&w->content, bk_repo_read_blob, r, blob_stored, &st);
	if (e < 0 && e != -ENOMEM) /* (a content list whose pack is missing: not "not found") */
		e = bk_error_wrap(e == -ENOENT ? BK_E_CORRUPT : e, "%s", w->name);
	return e;
}

int bk_wal_history_get(BkRepo *r, const char *cluster, uint32_t tli, BkWalTliSwitch *ret,
		       size_t max, size_t *ret_n)
{
	char name[BK_WAL_NAME_MAX];
	int e = bk_wal_history_name(name, sizeof(name), tli);
	BkWalRecord w;
	if (e == 0)
		e = bk_wal_record_get(r, cluster, name, &w);
	if (e < 0)
		return e;
	if (w.size > HISTORY_MAX) {
		bk_wal_record_release(&w);
		return bk_errorf(BK_E_CORRUPT, "%s: %llu bytes is too large for a history file", name,
				 (unsigned long long)w.size);
	}
	int fd = -1;
	e = bk_wal_record_to_fd(r, &w, &fd);
	char *buf = NULL;
	size_t n = 0;
	if (e == 0 && !(buf = malloc(w.size + 1)))
		e = -ENOMEM;
	if (e == 0)
		e = bk_pread_all(fd, buf, w.size, 0, &n);
	if (fd >= 0)
		close(fd);
	bk_wal_record_release(&w);
	if (e == 0 && (e = bk_wal_history_parse(buf, n, tli, ret, max, ret_n)) < 0)
		bk_error_wrap(e, "%s", name);
	free(buf);
	return e;
}

/* An error at the destination: never -ENOENT, which means "not archived" (and
 * would end recovery early), also when the destination's directory is missing. */
static int dest_error(const char *op, const char *path)
{
	if (errno == ENOENT)
		return bk_errorf(BK_E_USAGE, "%s %s: no such directory", op, path);
	return bk_errorf_code(-errno, "%s %s", op, path);
}

int bk_wal_fetch(BkRepo *r, const char *cluster, const char *name, const char *dest,
		 bool durable)
{
	BkWalRecord w;
	int e = bk_wal_record_get(r, cluster, name, &w);
	if (e == -ENOENT) {
		/* not archived, unless the cluster has no WAL here at all where it should
		 * have some: no record of the cluster (a wrong restore_command), or none
		 * of its WAL while a base backup of it is here (its wal/<cluster> gone: a
		 * partial copy, a bind mount not mounted; found by a helper's exploration,
		 * recovery took it for the end of the archive and promoted early). A
		 * cluster not archived yet (a standby set up before the first push) has
		 * none to fetch (found by review). Unless too its record does not read
		 * (for a segment: PostgreSQL's probes for history files cost a listing's
		 * first entry, and a snapshot listing only when none is there) */
		BkWalName wn;
		uint64_t sysid;
		uint32_t seg_size;
		bool history = bk_wal_name_parse(name, &wn) == 0 && wn.kind == BK_WAL_HISTORY,
		     any = false;
		int c = history ? 0 : bk_cluster_get(r, cluster, &sysid, &seg_size);
		if (c == 0)
			c = bk_wal_any(r, cluster, &any);
		if (c < 0 && c != -ENOENT)
			return c;
		if (c == -ENOENT) /* (no cluster record) */
			return bk_errorf(BK_E_USAGE, "cluster '%s' has no WAL in this repository",
					 cluster);
		char base[128];
		uint8_t id[32];
		snprintf(base, sizeof(base), "pg/%s/base", cluster);
		if (any || (c = bk_snapshot_resolve(r, "latest", base, id)) == -ENOENT) {
			bk_error_clear();
			return -ENOENT;
		}
		return c < 0 ? c
			     : bk_errorf(BK_E_USAGE, "cluster '%s' has no WAL in this repository, "
					 "though it has base backups (wal/%s is missing or empty)",
					 cluster, cluster);
	}
	if (e < 0)
		return e;
	/* the rename below replaces what is at dest: only ever a file (found by review:
	 * run as root, a fetch to /dev/null put a regular file in its place) */
	struct stat st;
	if (lstat(dest, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
		bk_wal_record_release(&w);
		return bk_errorf(BK_E_USAGE, "%s exists and is not a regular file", dest);
	}
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *slash = strrchr(dest, '/');
	if (snprintf(tmp, sizeof(tmp), "%s.bunker-tmp.XXXXXX", dest) >= (int)sizeof(tmp)) {
		bk_wal_record_release(&w);
		return bk_errorf(-ENAMETOOLONG, "%s: path too long", dest);
	}
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - dest) + 1 : 1, slash ? dest : ".");
	/* the bytes go to an unnamed file, named beside dest only to be renamed onto
	 * it: a fetch killed while it writes (SIGKILL, the OOM killer) leaves nothing
	 * (found by a helper's exploration: up to a segment in pg_wal, for ever). A file
	 * system without O_TMPFILE, or no /proc to name the file by (a chroot: found by
	 * re-reading, every fetch failed there), gets a named one from the start, as
	 * the restorer's files do (store/restorer.c open_new). */
	int fd = bk_proc_fd_available() ? openat(AT_FDCWD, dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600)
					 : -1;
	bool named = fd < 0;
	if (named)
		fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		bk_wal_record_release(&w);
		return dest_error("create", tmp);
	}
	if (named)
		fchmod(fd, 0600);
	e = bk_content_write(r, &w.content, fd);
	if (e == -ENOENT) /* a blob the record names is gone: not "not archived" */
		e = BK_E_CORRUPT;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (e == 0 && !named) { /* a name of its own, mkostemp's way, for the rename */
		for (int tries = 0; tries < 100; tries++) {
			snprintf(tmp + strlen(tmp) - 6, 7, "%06x", randombytes_uniform(1u << 24));
			if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) {
				named = true;
				break;
			}
			if (errno != EEXIST)
				break;
		}
		if (!named)
			e = dest_error("create", tmp);
	}
	if (e == 0 && durable && fsync(fd) < 0)
		e = bk_errorf_code(-errno, "fsync %s", tmp);
	if (close(fd) < 0 && e == 0)
		e = bk_errorf_code(-errno, "close %s", tmp);
	if (e == 0 && rename(tmp, dest) < 0)
		e = dest_error("rename to", dest);
	if (e < 0 && named)
		unlink(tmp);
	if (e == 0 && durable)
		e = bk_fsync_parent(dest);
	bk_wal_record_release(&w);
	return e;
}

typedef struct {
	BkRepo *r;
	BkReportFn cb;
	void *ud;
	int problems;
	BkIdSet packs; /* found there already */
} WalCheck;

/* The failure just found (its detail names the object), after prefix. */
static void check_report(WalCheck *c, const char *prefix)
{
	char line[1024];
	snprintf(line, sizeof(line), "%s%s", prefix, bk_error_detail());
	c->problems++;
	if (c->cb)
		c->cb(c->ud, true, line);
}

static int check_cluster_record(void *ud, const char *name, uint64_t size)
{
	(void)size;
	WalCheck *c = ud;
	uint64_t sysid;
	uint32_t seg_size;
	int e = bk_cluster_get(c->r, name + strlen("clusters/"), &sysid, &seg_size);
	if (e == -ENOMEM)
		return e;
	if (e == -ENOENT) /* removed meanwhile, or a name no cluster has */
		bk_errorf(BK_E_CORRUPT, "%s: not a cluster record", name);
	if (e < 0)
		check_report(c, "");
	return 0;
}

/* wal/<cluster>/<file> */
static int check_wal_record(void *ud, const char *name, uint64_t size)
{
	(void)size;
	WalCheck *c = ud;
	char cluster[BK_CLUSTER_NAME_MAX + 1];
	const char *rest = name + strlen("wal/"), *slash = strchr(rest, '/');
	char prefix[BK_CLUSTER_NAME_MAX + 32] = "";
	BkWalRecord w;
	int e;
	if (!slash || (size_t)(slash - rest) > BK_CLUSTER_NAME_MAX) {
		e = bk_errorf(BK_E_CORRUPT, "%s: not a WAL record name", name);
	} else {
		snprintf(cluster, sizeof(cluster), "%.*s", (int)(slash - rest), rest);
		e = bk_wal_record_get(c->r, cluster, slash + 1, &w);
		if (e == -ENOENT)
			e = bk_errorf(BK_E_CORRUPT, "%s: not a WAL record name", name);
		if (e == 0) { /* (its detail names the file) */
			snprintf(prefix, sizeof(prefix), "WAL of cluster '%s': ", cluster);
			e = bk_wal_record_stored(c->r, &w, &c->packs);
			bk_wal_record_release(&w);
		}
	}
	if (e == -ENOMEM)
		return e;
	if (e < 0)
		check_report(c, prefix);
	return 0;
}

/* refused/<cluster>/<file> */
static int check_refusal_record(void *ud, const char *name, uint64_t size)
{
	(void)size;
	WalCheck *c = ud;
	const char *rest = name + strlen("refused/"), *slash = strchr(rest, '/');
	char cluster[BK_CLUSTER_NAME_MAX + 1];
	BkWalRefusal f;
	int e;
	if (!slash || (size_t)(slash - rest) > BK_CLUSTER_NAME_MAX ||
	    strlen(slash + 1) >= BK_WAL_NAME_MAX) {
		e = bk_errorf(BK_E_CORRUPT, "%s: not a refusal record name", name);
	} else {
		snprintf(cluster, sizeof(cluster), "%.*s", (int)(slash - rest), rest);
		e = refusal_get(c->r, cluster, slash + 1, &f);
	}
	if (e == -ENOMEM)
		return e;
	if (e < 0)
		check_report(c, "");
	return 0;
}

int bk_wal_check(BkRepo *r, BkReportFn cb, void *ud)
{
	WalCheck c = { .r = r, .cb = cb, .ud = ud };
	int e = bk_backend_list(r->be, "clusters", check_cluster_record, &c);
	if (e == 0)
		e = bk_backend_list(r->be, "wal", check_wal_record, &c);
	if (e == 0)
		e = bk_backend_list(r->be, "refused", check_refusal_record, &c);
	bk_idset_release(&c.packs);
	return e < 0 ? e : c.problems;
}

typedef struct {
	BkWalNameFn cb;
	void *ud;
} Each;

static int each_name(void *ud, const char *name, uint64_t size)
{
	(void)size;
	Each *x = ud;
	return x->cb(x->ud, bk_path_base(name));
}

int bk_wal_foreach(BkRepo *r, const char *cluster, BkWalNameFn cb, void *ud)
{
	int e = check_cluster(cluster);
	if (e < 0)
		return e;
	char dir[128];
	snprintf(dir, sizeof(dir), "wal/%s", cluster);
	Each x = { cb, ud };
	return bk_backend_list(r->be, dir, each_name, &x);
}

static int found_one(void *ud, const char *name)
{
	(void)name;
	*(bool *)ud = true;
	return -ECANCELED; /* stops the listing: one is enough */
}

int bk_wal_any(BkRepo *r, const char *cluster, bool *ret)
{
	*ret = false;
	int e = bk_wal_foreach(r, cluster, found_one, ret);
	return e == -ECANCELED && *ret ? 0 : e;
}

int bk_wal_has(BkRepo *r, const char *cluster, const char *name, bool *ret)
{
	int e = check_cluster(cluster);
	if (e < 0)
		return e;
	char obj[160];
	uint64_t size;
	record_name(obj, cluster, name);
	e = bk_backend_size(r->be, obj, &size);
	*ret = e == 0;
	return e == -ENOENT ? 0 : e;
}
