#include "pg/basebackup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg/walchain.h"
#include "pg/replication.h"
#include "pg/tar.h"
#include "pg/wal.h"
#include "pg/walarchive.h"
#include "store/error.h"
#include "store/restorer.h"
#include "store/treebuild.h"
#include "store/util.h"

#define SMALL_FILE_MAX (1u << 20) /* backup_label and tablespace_map are captured */
/* backup_label's tar mtime, in seconds either side of 1970 (73,000 years): the
 * server's clock, in microseconds, stays far from overflowing int64 */
#define LABEL_MTIME_MAX (INT64_MAX / 4000000)

typedef struct {
	BkRepo *repo;
	BkWriter *writer;
	BkChunkStream *stream;
	BkTreeBuilder *tree;
	BkTarParser *tar;
	const BkBaseBackupOpts *o;
	char prefix[64]; /* "" for base.tar, ".bunker-tablespaces/<oid>/" otherwise */
	char archive[32]; /* the archive being received ("base.tar", "<oid>.tar"), for errors */
	char path[BK_TAR_PATH_MAX + 64];
	BkTreeEntry cur; /* the file being received */
	char *capture;   /* bytes of backup_label / tablespace_map */
	/* backup_label's tar mtime (the server's clock when it sent it, first of all)
	 * and this host's clock when its header arrived: their difference is how far
	 * this host's clock is ahead of the server's, within a second */
	int64_t label_mtime, label_seen_us;
	size_t capture_len;
	bool capturing;
	char *backup_label, *tablespace_map;
	uint64_t files, bytes;
	/* the cluster's newest earlier base backup, whose unchanged files are reused */
	bool has_parent;
	bool reuse_ok; /* this backup follows the parent (bk_basebackup_label_follows) */
	uint8_t parent_id[32], parent_root[32];
	BkParentBackup parent;
	BkTree *pdir;         /* the parent's tree for directory pdir_path, or NULL */
	char pdir_path[BK_TAR_PATH_MAX];
	bool pdir_loaded;
	const BkTreeEntry *reuse; /* the parent's entry for the file being received */
	uint64_t reused_files, reused_bytes;
} Ctx;

/* ---- unchanged files ----
 *
 * A file of base.tar is taken from the parent base backup without chunking or
 * hashing its bytes (they are still received: the server sends everything) when
 * bk_basebackup_unchanged() says so. The server's clock is the only one
 * involved: tar mtimes and the parent's start (the mtime the server gave its
 * backup_label, which it sends before any other file of base.tar). */

bool bk_basebackup_unchanged(const BkTreeEntry *parent, int64_t parent_start, uint64_t size,
			     int64_t mtime)
{
	return parent && parent->type == BK_NODE_FILE && parent->size == size &&
	       parent->mtime_sec == mtime && mtime < parent_start;
}

/* The parent's entry at path (base.tar), or NULL. Directories arrive together in
 * the tar stream, so one directory's tree at a time is enough. */
static const BkTreeEntry *parent_entry(Ctx *c, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	if (dlen >= sizeof(c->pdir_path))
		return NULL;
	if (!c->pdir_loaded || strlen(c->pdir_path) != dlen || strncmp(c->pdir_path, path, dlen)) {
		bk_tree_free(c->pdir);
		c->pdir = NULL;
		memcpy(c->pdir_path, path, dlen);
		c->pdir_path[dlen] = '\0';
		c->pdir_loaded = true;
		BkTree *t;
		const BkTreeEntry *ent;
		if (bk_tree_lookup(c->repo, c->parent_root, c->pdir_path, &t, &ent) == 0) {
			if (!ent)
				c->pdir = t;
			else if (ent->type != BK_NODE_DIR || bk_tree_load(c->repo, ent->subtree, &c->pdir) < 0)
				c->pdir = NULL;
			if (ent)
				bk_tree_free(t);
		}
		bk_error_clear(); /* not in the parent (or unreadable): the file is read */
	}
	return c->pdir ? bk_tree_find(c->pdir, slash ? slash + 1 : path) : NULL;
}

/* The value of a "KEY: value" line of a backup_label, into out; false if absent. */
static bool label_field(const char *label, const char *key, char *out, size_t cap)
{
	size_t n = strlen(key);
	for (const char *l = label; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, key, n) || l[n] != ':' || l[n + 1] != ' ')
			continue;
		size_t len = strcspn(l + n + 2, "\n");
		if (len >= cap)
			return false;
		memcpy(out, l + n + 2, len);
		out[len] = '\0';
		return true;
	}
	return false;
}

/* A backup_label's start: its START WAL LOCATION and START TIMELINE; false if
 * either is absent or does not parse. */
static bool label_start(const char *label, uint64_t *ret_lsn, uint32_t *ret_tli)
{
	char tli[32], lsn[64], *end;
	if (!label_field(label, "START TIMELINE", tli, sizeof(tli)) ||
	    !label_field(label, "START WAL LOCATION", lsn, sizeof(lsn)))
		return false;
	unsigned long t = strtoul(tli, &end, 10);
	lsn[strcspn(lsn, " ")] = '\0'; /* "0/2000028 (file 000000010000000000000002)" */
	*ret_tli = (uint32_t)t;
	return tli[0] >= '1' && tli[0] <= '9' && !*end && t <= UINT32_MAX &&
	       bk_wal_lsn_parse(lsn, ret_lsn) == 0;
}

bool bk_basebackup_label_follows(const BkParentBackup *p, const char *label, int64_t mtime)
{
	char from[32], pfrom[32];
	uint64_t start;
	uint32_t tli;
	return label_field(label, "BACKUP FROM", from, sizeof(from)) &&
	       label_field(p->label, "BACKUP FROM", pfrom, sizeof(pfrom)) && !strcmp(from, pfrom) &&
	       label_start(label, &start, &tli) && tli == p->stop_tli && start >= p->stop_lsn &&
	       mtime > p->start;
}

/* The backup_label base.tar brought must be there, with the start the server
 * reported: restore writes it, and without it recovery would start from the
 * checkpoint in pg_control, copied last, and never reach a consistent state that
 * it knows of (found by review: a base.tar without it was saved as complete). */
static int check_label(const char *label, const BkPgReplBackupResult *res)
{
	uint64_t lsn;
	uint32_t tli;
	char want[BK_WAL_LSN_MAX];
	bk_wal_lsn_format(want, sizeof(want), res->start_lsn);
	if (!label)
		return bk_errorf(BK_E_CORRUPT, "base backup: base.tar holds no backup_label");
	if (!label_start(label, &lsn, &tli) || lsn != res->start_lsn || tli != res->start_tli)
		return bk_errorf(BK_E_CORRUPT, "base backup: backup_label does not start at %s on "
				 "timeline %u, where the server said the backup starts", want,
				 res->start_tli);
	return 0;
}

/* Chunk ids looked up in the index a batch at a time (one read transaction). */
typedef struct {
	BkIndex *index;
	size_t n;
	uint8_t ids[256][32];
} IdBatch;

static int lookup_batch(IdBatch *b)
{
	bool found[256];
	int e = bk_index_has_many(b->index, (const uint8_t(*)[32])b->ids, b->n, found);
	for (size_t i = 0; e == 0 && i < b->n; i++)
		if (!found[i])
			e = -ENOENT;
	b->n = 0;
	return e;
}

static int chunk_indexed(void *ud, const uint8_t id[32], uint64_t size, uint64_t offset)
{
	(void)size;
	(void)offset;
	IdBatch *b = ud;
	memcpy(b->ids[b->n++], id, 32);
	return b->n == 256 ? lookup_batch(b) : 0;
}

/* Whether every chunk of a parent's file (and every content list above them) is
 * still in the index: a parent whose blobs went missing (which check reports) is
 * not copied forward; the file is read and its chunks stored again. */
static bool chunks_indexed(Ctx *c, const BkContentNode *n)
{
	IdBatch *b = malloc(sizeof(*b));
	if (!b)
		return false;
	b->index = c->repo->index;
	b->n = 0;
	int e = bk_content_walk(n, bk_repo_read_blob, c->repo, chunk_indexed, b);
	if (e == 0 && b->n)
		e = lookup_batch(b);
	free(b);
	bk_error_clear();
	return e == 0;
}

/* Finds the parent base backup and when it started; without one, or if it cannot
 * be read, every file is read. */
static void find_parent(Ctx *c, const char *name, uint64_t sysid, bool no_reuse)
{
	BkSnapshot *s = NULL;
	BkTree *t = NULL;
	const BkTreeEntry *label = NULL;
	char want[32];
	snprintf(want, sizeof(want), "%" PRIu64, sysid);
	if (!no_reuse && bk_snapshot_resolve(c->repo, "latest", name, c->parent_id) == 0 &&
	    bk_snapshot_load(c->repo, c->parent_id, &s) == 0) {
		const char *have = bk_snapshot_meta(s, "system_identifier");
		const char *plabel = bk_snapshot_meta(s, "backup_label");
		const char *stop = bk_snapshot_meta(s, "stop_lsn");
		const char *stli = bk_snapshot_meta(s, "stop_timeline");
		if (have && !strcmp(have, want) && plabel && stop && stli &&
		    bk_wal_lsn_parse(stop, &c->parent.stop_lsn) == 0 &&
		    bk_tree_lookup(c->repo, s->root, "backup_label", &t, &label) == 0 && label &&
		    label->type == BK_NODE_FILE && (c->parent.label = strdup(plabel))) {
			c->has_parent = true;
			c->parent.start = label->mtime_sec;
			c->parent.stop_tli = (uint32_t)strtoul(stli, NULL, 10);
			memcpy(c->parent_root, s->root, 32);
		}
	}
	bk_tree_free(t);
	bk_snapshot_free(s);
	bk_error_clear(); /* no parent is not an error */
}

/* A file whose chunks are in flight: its entry joins the tree once they are all
 * stored, so that small files overlap instead of waiting for each other. */
typedef struct {
	Ctx *c;
	BkTreeEntry entry;
	char path[];
} PendingFile;

/* Adds an entry the server sent. A path sent twice (or a file where a directory
 * is) is the stream's fault, not a caller's: BK_E_CORRUPT, where the builder
 * says BK_E_USAGE, which bunker exits 2 for, "usage" (found by review). */
static int tree_add(Ctx *c, const char *path, BkTreeEntry *e)
{
	int r = bk_tree_builder_add(c->tree, path, e);
	return r == BK_E_USAGE ? BK_E_CORRUPT : r;
}

static int file_done(void *ud, BkContentNode *root, uint64_t size)
{
	PendingFile *pf = ud;
	int e = 0;
	if (root) {
		pf->entry.content = *root;
		*root = (BkContentNode){ 0 };
		pf->entry.size = size;
		e = tree_add(pf->c, pf->path, &pf->entry);
	}
	free(pf);
	return e;
}

static int entry_start(void *ud, const BkTarEntry *t)
{
	Ctx *c = ud;
	/* "." is the archive's top directory. A file of that name would be skipped
	 * here while its bytes still reach entry_data: into the next file's chunks,
	 * or past the capture buffer of the file before. */
	if (!strcmp(t->path, ".")) {
		if (t->type != BK_TAR_DIR)
			return bk_errorf(BK_E_CORRUPT, "'.' in the archive is not a directory");
		return 0;
	}
	if (snprintf(c->path, sizeof(c->path), "%s%s", c->prefix, t->path) >= (int)sizeof(c->path))
		return bk_errorf(-ENAMETOOLONG, "%s: path too long", t->path);
	/* the snapshot keeps the tablespaces there: a data directory's own would mix
	 * with them, and a restore leaves it out (found by review) */
	size_t kept = strlen(BK_TABLESPACE_DIR);
	if (!c->prefix[0] && !strncmp(t->path, BK_TABLESPACE_DIR, kept) &&
	    (t->path[kept] == '\0' || t->path[kept] == '/'))
		return bk_errorf(-EEXIST, "the data directory holds %s, a name bunker keeps for "
				 "tablespaces in its snapshots: rename it", BK_TABLESPACE_DIR);
	c->cur = (BkTreeEntry){
		.mode = t->mode,
		.uid = (uint32_t)t->uid,
		.gid = (uint32_t)t->gid,
		.mtime_sec = t->mtime,
	};
	c->capturing = !c->prefix[0] && t->type == BK_TAR_FILE && t->size <= SMALL_FILE_MAX &&
		       (!strcmp(t->path, "backup_label") || !strcmp(t->path, "tablespace_map"));
	if (c->capturing && !strcmp(t->path, "backup_label")) {
		if (t->mtime < -LABEL_MTIME_MAX || t->mtime > LABEL_MTIME_MAX)
			return bk_errorf(BK_E_CORRUPT, "backup_label: modification time %" PRId64
					 " s is out of range", t->mtime);
		c->label_mtime = t->mtime;
		c->label_seen_us = bk_now_us();
	}
	c->capture_len = 0;
	if (c->capturing) {
		char *buf = realloc(c->capture, (size_t)t->size + 1);
		if (!buf)
			return bk_errorf(-ENOMEM, "%s: %" PRIu64 " bytes", t->path, t->size);
		c->capture = buf;
	}
	c->reuse = NULL;
	if (c->reuse_ok && !c->prefix[0] && !c->capturing && t->type == BK_TAR_FILE) {
		const BkTreeEntry *pe = parent_entry(c, t->path);
		if (bk_basebackup_unchanged(pe, c->parent.start, t->size, t->mtime) &&
		    chunks_indexed(c, &pe->content))
			c->reuse = pe;
	}
	switch (t->type) {
	case BK_TAR_FILE:
		c->cur.type = BK_NODE_FILE;
		break;
	case BK_TAR_DIR:
		c->cur.type = BK_NODE_DIR;
		break;
	case BK_TAR_SYMLINK:
		/* PostgreSQL sends a tablespace's link in pg_tblspc and no other (it skips
		 * them as special files): another would be restored as a link, and what the
		 * restore then writes by name could follow it out of the data directory
		 * (found by review) */
		if (c->prefix[0] || strncmp(t->path, "pg_tblspc/", 10) || !t->path[10] ||
		    strspn(t->path + 10, "0123456789") != strlen(t->path + 10))
			return bk_errorf(BK_E_CORRUPT, "%s%s: a symbolic link outside pg_tblspc, "
					 "which PostgreSQL does not send", c->prefix, t->path);
		c->cur.type = BK_NODE_SYMLINK;
		if (!(c->cur.link = strdup(t->link)))
			return -ENOMEM;
		c->cur.size = strlen(t->link);
		break;
	default:
		return bk_errorf(BK_E_CORRUPT, "%s: hard links are not expected in a base backup", t->path);
	}
	return 0;
}

static int entry_data(void *ud, const void *buf, size_t len)
{
	Ctx *c = ud;
	if (c->capturing) {
		memcpy(c->capture + c->capture_len, buf, len);
		c->capture_len += len;
	}
	c->bytes += len;
	return c->reuse ? 0 : bk_chunk_stream_push(c->stream, buf, len);
}

static int entry_end(void *ud, const BkTarEntry *t)
{
	Ctx *c = ud;
	if (!strcmp(t->path, "."))
		return 0;
	int e = 0;
	if (c->cur.type == BK_NODE_FILE) {
		c->files++;
		if (c->capturing) {
			c->capture[c->capture_len] = '\0';
			char **slot = !strcmp(t->path, "backup_label") ? &c->backup_label : &c->tablespace_map;
			free(*slot);
			if (!(*slot = strndup(c->capture, c->capture_len)))
				return -ENOMEM;
			/* the first entry of base.tar: from here on files may be reused */
			if (slot == &c->backup_label && c->has_parent)
				c->reuse_ok = bk_basebackup_label_follows(&c->parent, c->backup_label,
									  c->cur.mtime_sec);
		}
		if (c->reuse) {
			const BkContentNode *from = &c->reuse->content;
			BkContentRef *refs = malloc(from->count ? from->count * sizeof(*refs) : 1);
			if (!refs)
				return -ENOMEM;
			if (from->count) /* an empty file has no refs */
				memcpy(refs, from->refs, from->count * sizeof(*refs));
			c->cur.content = (BkContentNode){ .level = from->level, .count = from->count, .refs = refs };
			c->cur.size = c->reuse->size;
			c->reused_files++;
			c->reused_bytes += c->reuse->size;
			c->reuse = NULL;
		} else {
			size_t n = strlen(c->path) + 1;
			PendingFile *pf = malloc(sizeof(*pf) + n);
			if (!pf)
				return -ENOMEM;
			*pf = (PendingFile){ .c = c, .entry = c->cur };
			memcpy(pf->path, c->path, n);
			c->cur = (BkTreeEntry){ 0 };
			return bk_chunk_stream_end_file(c->stream, file_done, pf);
		}
	}
	e = tree_add(c, c->path, &c->cur);
	c->cur = (BkTreeEntry){ 0 };
	return e;
}

static int archive_start(void *ud, const char *name, const char *spclocation)
{
	(void)spclocation;
	Ctx *c = ud;
	if (!strcmp(name, "base.tar")) {
		c->prefix[0] = '\0';
	} else {
		size_t n = strlen(name);
		if (n < 5 || n > 20 || strcmp(name + n - 4, ".tar") || strspn(name, "0123456789") != n - 4)
			return bk_errorf(BK_E_CORRUPT, "unexpected archive name '%s'", name);
		snprintf(c->prefix, sizeof(c->prefix), "%s/%.*s/", BK_TABLESPACE_DIR, (int)(n - 4), name);
	}
	snprintf(c->archive, sizeof(c->archive), "%s", name);
	static const BkTarCallbacks cb = { entry_start, entry_data, entry_end };
	bk_tar_parser_free(c->tar);
	c->tar = NULL;
	/* PostgreSQL 15's BASE_BACKUP ends each archive with the two zero blocks: an
	 * archive cut between two entries is caught */
	return bk_tar_parser_new(&cb, c, BK_TAR_REQUIRE_END, &c->tar);
}

static int archive_data(void *ud, const void *buf, size_t len)
{
	Ctx *c = ud;
	/* named as archive_end names it: the tar's offsets alone do not say which
	 * archive (found by review: "tar at offset 2048: header checksum mismatch") */
	int e = bk_tar_parser_push(c->tar, buf, len);
	if (e < 0)
		bk_error_wrap(e, "%s", c->archive);
	return e;
}

static int archive_end(void *ud, const char *name)
{
	Ctx *c = ud;
	int e = bk_tar_parser_finish(c->tar);
	if (e < 0)
		bk_error_wrap(e, "%s", name);
	return e;
}

static int progress(void *ud, uint64_t done, uint64_t total)
{
	Ctx *c = ud;
	if (c->o->progress)
		c->o->progress(c->o->progress_ud, done, total);
	return 0;
}

/* Whether bunker, not the server, waits for the backup's WAL: when the cluster
 * already archives into this repository and the server is a primary (a standby
 * switches no segment at the backup's stop: there the server's rules apply). */
static int wait_here(BkPgRepl *conn, BkRepo *r, const char *cluster, bool *ret)
{
	char standby[16];
	*ret = false;
	int e = bk_pgrepl_show(conn, "in_hot_standby", standby, sizeof(standby));
	if (e == 0 && strcmp(standby, "off") == 0)
		e = bk_wal_any(r, cluster, ret);
	return e;
}

/* The first segment the repository lacks from the backup's start to its stop, on
 * the backup's own timeline, the one it ended on (which one a restore follows is
 * pg restore's question: a promoted copy archiving here must not fail a
 * production backup), or NULL if it lacks none; borrowed from *ch. */
static int wal_lacking(BkRepo *r, const char *cluster, const BkPgReplBackupResult *res,
		       BkWalChain *ch, const char **ret)
{
	BkWalArchive a;
	int e = bk_wal_archive_load(r, cluster, &a);
	/* (a standby's backup whose upstream was promoted meanwhile ends on the new
	 * timeline: its stop is on that one's history, not on the start's timeline,
	 * found by review) */
	uint32_t along = res->end_tli != res->start_tli ? res->end_tli : BK_TLI_CURRENT;
	if (e == 0)
		e = bk_pg_wal_chain(&a, res->start_tli, res->start_lsn, res->end_lsn, along, ch);
	bk_wal_archive_release(&a);
	if (e == 0 && bk_pg_wal_chain_lacks(ch, res->end_lsn, 0, ret) == BK_WAL_CHAIN_COMPLETE)
		*ret = NULL;
	return e;
}

/* Waits until the repository holds that chain: looks for the one file it lacks
 * (after 10, 20, 40, 80 ms, then every 100 ms) and computes it again once that is
 * there. */
static int wait_archived(BkRepo *r, const char *cluster, const uint8_t snap[32],
			 const char *snap_name, const BkPgReplBackupResult *res, unsigned timeout_s)
{
	char what[256];
	snprintf(what, sizeof(what), "snapshot %.16s (%s) is saved", bk_id_hex(snap).s, snap_name);
	uint64_t deadline = bk_mono_us() + (uint64_t)timeout_s * 1000000;
	long pause_ms = 10;
	for (;;) {
		BkWalChain ch;
		const char *need;
		int e = wal_lacking(r, cluster, res, &ch, &need);
		if (e < 0)
			return bk_error_wrap(e, "%s, but its WAL cannot be checked", what);
		if (!need)
			return 0;
		if (!need[0]) /* no segment name past the chain's end */
			return bk_errorf(-EINVAL, "%s, but its WAL cannot be checked", what);
		for (bool have = false; !have;) {
			if (bk_mono_us() >= deadline)
				return bk_errorf(-ETIMEDOUT,
						 "%s, but it cannot be restored yet: WAL file %s did not "
						 "reach the repository within %u s (is archive_command pushing "
						 "to it? --archive-timeout 0 leaves the wait to the server)",
						 what, need, timeout_s);
			nanosleep(&(struct timespec){ .tv_nsec = pause_ms * 1000000 }, NULL);
			pause_ms = BK_MIN(pause_ms * 2, 100L);
			e = bk_wal_has(r, cluster, need, &have);
			if (e < 0)
				return bk_error_wrap(e, "%s, but its WAL cannot be checked", what);
		}
	}
}

/* After a backup nobody waited for here: tells o->warn if the repository lacks
 * WAL the backup needs (a backup without its WAL does not restore). */
static void warn_unarchived(BkRepo *r, const BkBaseBackupOpts *o, uint64_t sysid,
			    const uint8_t snap[32], const char *snap_name,
			    const BkPgReplBackupResult *res)
{
	BkWalChain ch;
	const char *lack;
	char msg[1024], other[BK_CLUSTER_NAME_MAX + 1] = "";
	if (!o->warn)
		return;
	if (wal_lacking(r, o->cluster, res, &ch, &lack) < 0) {
		snprintf(msg, sizeof(msg), "snapshot %.16s (%s): its WAL cannot be checked: %s",
			 bk_id_hex(snap).s, snap_name, bk_error_detail());
		o->warn(o->warn_ud, msg);
		return;
	}
	if (!lack)
		return;
	/* archive_command may point here under another name (a wrong --cluster) */
	if (lack[0])
		bk_cluster_same_system(r, o->cluster, sysid, lack, other);
	if (other[0])
		snprintf(msg, sizeof(msg),
			 "snapshot %.16s (%s) needs WAL file %s, which this repository archives "
			 "under cluster '%s', not '%s' (--cluster %s?)",
			 bk_id_hex(snap).s, snap_name, lack, other, o->cluster, other);
	else
		snprintf(msg, sizeof(msg),
			 "snapshot %.16s (%s) needs WAL file %s, which is not in this repository: "
			 "it restores once that is stored here (archive_command pointing here, or "
			 "bunker pg wal-push)",
			 bk_id_hex(snap).s, snap_name, lack);
	o->warn(o->warn_ud, msg);
}

/* The server's WARNINGs, each passed on once: BASE_BACKUP with PROGRESS walks the
 * data directory twice (sizes, then files) and warns of a skipped file each time. */
typedef struct {
	const BkBaseBackupOpts *o;
	uint64_t seen[64]; /* hashes of the messages passed on (the first 64) */
	size_t n;
} ServerWarnings;

/* A WARNING from the server (a file BASE_BACKUP skipped: it is not in the backup). */
static void server_warning(void *ud, const char *msg)
{
	ServerWarnings *w = ud;
	uint64_t h = 1469598103934665603u; /* FNV-1a */
	for (const char *p = msg; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211u;
	for (size_t i = 0; i < w->n; i++)
		if (w->seen[i] == h)
			return;
	if (w->n < BK_ARRAY_SIZE(w->seen))
		w->seen[w->n++] = h;
	char line[1024];
	snprintf(line, sizeof(line), "server: %s", msg);
	w->o->warn(w->o->warn_ud, line);
}

/* What to add to this host's clock for the server's, for the backup's end time
 * (restores compare it with commit times, stamped by the server): 0 while the
 * two agree within 2 s, as time targets assume anyway; else the difference seen
 * at backup_label, rounded so that the end is never taken early (its mtime is the
 * whole second it was sent in, and arrived a little later). Found by an
 * adversarial test: with this host 600 s behind, a restore took a backup that
 * ended after its target and PostgreSQL failed. */
static int64_t server_clock_offset(const Ctx *c, const BkBaseBackupOpts *o)
{
	if (!c->label_seen_us)
		return 0;
	int64_t ahead_us = c->label_seen_us - c->label_mtime * 1000000; /* in [skew, skew + 1 s) */
	if (ahead_us > -1500000 && ahead_us < 2500000)
		return 0;
	if (o->warn) {
		char msg[200];
		snprintf(msg, sizeof(msg), "this host's clock is %" PRId64 " s %s the database "
			 "server's: the backup's end time is taken in the server's clock",
			 (ahead_us < 0 ? -ahead_us : ahead_us) / 1000000,
			 ahead_us < 0 ? "behind" : "ahead of");
		o->warn(o->warn_ud, msg);
	}
	return -ahead_us + 1500000; /* (+ the delay before its header arrived: < 0.5 s) */
}

int bk_pg_basebackup(BkRepo *r, const BkBaseBackupOpts *o, uint8_t ret_snap[32])
{
	uint64_t started = bk_mono_us();
	if (!bk_cluster_name_valid(o->cluster))
		return bk_errorf(BK_E_USAGE, "invalid cluster name '%s'", o->cluster);
	Ctx c = { .repo = r, .o = o };
	BkPgRepl *conn = NULL;
	BkPgReplSystem sys;
	int e = bk_pgrepl_open(o->conninfo, &conn);
	ServerWarnings warned = { .o = o };
	/* Before anything is asked or written: before 15 there is no in_hot_standby
	 * (13's SHOW failed, and its error was the message) and BASE_BACKUP speaks an
	 * older protocol. Not BK_E_VERSION, which bunker exits 5 for, "corruption
	 * found" (found by review). */
	int server_version = e == 0 ? bk_pgrepl_server_version(conn) : 0;
	if (e == 0 && server_version < 150000)
		e = bk_errorf(-EPROTONOSUPPORT, "PostgreSQL %d.%d: base backups need PostgreSQL 15 "
			      "or later", server_version / 10000, server_version % 10000);
	if (e == 0 && o->warn)
		bk_pgrepl_on_warning(conn, server_warning, &warned);
	if (e == 0)
		bk_pgrepl_set_stall(conn, o->stall_timeout_s);
	char seg_s[32];
	uint32_t seg_size = 0;
	if (e == 0)
		e = bk_pgrepl_identify_system(conn, &sys);
	if (e == 0)
		e = bk_pgrepl_show(conn, "wal_segment_size", seg_s, sizeof(seg_s));
	if (e == 0)
		e = bk_wal_seg_size_parse(seg_s, &seg_size);
	char claimed[BK_CLUSTER_WARNING_MAX];
	if (e == 0)
		e = bk_cluster_claim(r, o->cluster, sys.sysid, seg_size, claimed);
	if (e == 0 && claimed[0] && o->warn)
		o->warn(o->warn_ud, claimed);
	char name[128];
	snprintf(name, sizeof(name), "pg/%s/base", o->cluster);
	if (e == 0)
		find_parent(&c, name, sys.sysid, o->no_reuse);
	/* The backup's WAL is waited for here when the cluster archives into this
	 * repository (the server's own wait looks once a second); else by the server. */
	bool own_wait = false;
	if (e == 0 && o->archive_timeout_s)
		e = wait_here(conn, r, o->cluster, &own_wait);
	if (e == 0)
		e = bk_writer_new(r, &c.writer);
	/* relation files are written in place in 8 KiB pages: blocks aligned to them
	 * change only when one of their pages does (docs/design.md) */
	if (e == 0)
		e = bk_chunk_stream_new_blocks(r, c.writer, BK_BASEBACKUP_BLOCK, &c.stream);
	if (e == 0)
		e = bk_tree_builder_new(&c.tree);
	BkPgReplBackupResult res;
	if (e == 0) {
		BkPgReplBackupOptions bo = { .label = "bunker", .fast_checkpoint = o->fast_checkpoint,
					     .no_wait = own_wait, .max_rate_kb = o->max_rate_kb,
					     .stall_timeout_s = o->stall_timeout_s,
					     .no_verify_checksums = o->no_verify_checksums };
		static const BkPgReplBackupCallbacks cb = { archive_start, archive_data, archive_end,
							    progress };
		e = bk_pgrepl_base_backup(conn, &bo, &cb, &c, &res);
	}
	if (e == 0)
		e = check_label(c.backup_label, &res);
	if (e == 0) /* every file's chunks stored, every entry in the tree */
		e = bk_chunk_stream_drain(c.stream);
	uint8_t root[32];
	if (e == 0)
		e = bk_tree_builder_finish(c.tree, bk_writer_put, c.writer, root);

	char sysid[32], tli[16], stli[16], start[BK_WAL_LSN_MAX], stop[BK_WAL_LSN_MAX], version[16],
		reused_files[24], reused_bytes[24];
	if (e == 0) {
		snprintf(reused_files, sizeof(reused_files), "%" PRIu64, c.reused_files);
		snprintf(reused_bytes, sizeof(reused_bytes), "%" PRIu64, c.reused_bytes);
		snprintf(sysid, sizeof(sysid), "%" PRIu64, sys.sysid);
		snprintf(tli, sizeof(tli), "%u", res.start_tli);
		snprintf(stli, sizeof(stli), "%u", res.end_tli);
		snprintf(version, sizeof(version), "%d", bk_pgrepl_server_version(conn));
		bk_wal_lsn_format(start, sizeof(start), res.start_lsn);
		bk_wal_lsn_format(stop, sizeof(stop), res.end_lsn);
		BkKv meta[] = {
			{ "system_identifier", sysid }, { "timeline", tli },
			{ "start_lsn", start },         { "stop_lsn", stop },
			{ "stop_timeline", stli },      { "server_version", version },
			{ "backup_label", c.backup_label ? c.backup_label : "" },
			{ "tablespace_map", c.tablespace_map ? c.tablespace_map : "" },
			{ "reused_files", reused_files }, { "reused_bytes", reused_bytes },
		};
		BkArchiveOpts ao = {
			.name = name,
			.kind = "pg-base",
			.host = o->host,
			.meta = meta,
			.nmeta = BK_ARRAY_SIZE(meta),
			.parent = c.has_parent ? c.parent_id : NULL,
			.clock_offset_us = server_clock_offset(&c, o),
		};
		e = bk_archive_commit(r, c.writer, &ao, root, c.bytes, c.files, started, ret_snap);
	}
	bk_pgrepl_close(conn); /* not held open while waiting */
	if (e == 0 && own_wait)
		e = wait_archived(r, o->cluster, ret_snap, name, &res, o->archive_timeout_s);
	else if (e == 0)
		warn_unarchived(r, o, sys.sysid, ret_snap, name, &res);
	bk_tar_parser_free(c.tar);
	bk_chunk_stream_free(c.stream); /* before the tree: pending files go into it */
	bk_tree_builder_free(c.tree);
	bk_tree_free(c.pdir);
	free(c.parent.label);
	bk_writer_free(c.writer);
	free(c.cur.link);
	bk_content_node_release(&c.cur.content);
	free(c.capture);
	free(c.backup_label);
	free(c.tablespace_map);
	return e;
}
