#include "store/restorer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "store/content.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/pack.h"
#include "store/pipeline.h"
#include "store/util.h"

int bk_snapshot_load(BkRepo *r, const uint8_t id[32], BkSnapshot **ret)
{
	uint8_t *plain;
	size_t len;
	int e = bk_repo_get_record(r, "snapshots", BK_BLOB_SNAPSHOT, id, &plain, &len);
	if (e == -ENOENT)
		return bk_errorf(-ENOENT, "no snapshot %s", bk_id_hex(id).s);
	if (e < 0)
		return e;
	e = bk_snapshot_decode(plain, len, ret);
	free(plain);
	if (e < 0)
		bk_error_wrap(e, "snapshot %s", bk_id_hex(id).s);
	return e;
}

typedef struct {
	BkRepo *r;
	BkSnapshotFn cb;
	void *ud;
} ForEach;

static int each_record(void *ud, const char *name, uint64_t size)
{
	(void)size;
	ForEach *f = ud;
	uint8_t id[32];
	const char *slash = strrchr(name, '/');
	if (!slash || bk_unhex(id, 32, slash + 1) < 0)
		return 0; /* not a record name: ignore */
	BkSnapshot *s;
	int e = bk_snapshot_load(f->r, id, &s);
	if (e == BK_E_CORRUPT || e == BK_E_VERSION)
		return f->cb(f->ud, id, NULL);
	if (e < 0)
		return e;
	return f->cb(f->ud, id, s);
}

int bk_snapshot_foreach(BkRepo *r, BkSnapshotFn cb, void *ud)
{
	ForEach f = { r, cb, ud };
	return bk_backend_list(r->be, "snapshots", each_record, &f);
}

/* A snapshot "latest" may name: its id, time and parent. */
typedef struct {
	uint8_t id[32], parent[32];
	bool has_parent;
	int64_t time_us;
} Named;

typedef struct {
	const char *spec, *name;
	bool latest;
	unsigned damaged;
	int matches;
	uint8_t id[32];
	Named *named; /* latest: the snapshots it may name */
	size_t nnamed, cap;
} Resolve;

static int by_id(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

/* "latest": the newest of those no other names as its parent. A snapshot is made
 * after its parent (the latest of its name when it was made), so a newer one
 * stamped earlier by a clock behind is still the latest (found by a helper's
 * exploration: a dump taken on a host 10 min behind was passed over for the one
 * before it). Sorts rs->named by id. */
static void pick_latest(Resolve *rs)
{
	qsort(rs->named, rs->nnamed, sizeof(*rs->named), by_id);
	bool *parent = calloc(rs->nnamed, sizeof(*parent)); /* (nnamed >= 1) */
	for (size_t i = 0; parent && i < rs->nnamed; i++) {
		Named *p = rs->named[i].has_parent ? bsearch(rs->named[i].parent, rs->named, rs->nnamed,
							     sizeof(*rs->named), by_id) : NULL;
		if (p && p != &rs->named[i])
			parent[p - rs->named] = true;
	}
	/* (by time alone without memory for the marks, or without a leaf: forged) */
	const Named *best = NULL, *newest = &rs->named[0];
	for (size_t i = 0; i < rs->nnamed; i++) {
		const Named *n = &rs->named[i];
		if (!(parent && parent[i]) && (!best || n->time_us > best->time_us))
			best = n;
		if (n->time_us > newest->time_us)
			newest = n;
	}
	free(parent);
	memcpy(rs->id, best ? best->id : newest->id, 32);
}

static int resolve_one(void *ud, const uint8_t id[32], BkSnapshot *s)
{
	Resolve *rs = ud;
	if (!s) {
		rs->damaged++;
		/* a damaged record an id prefix names is a match (its name unknown):
		 * reading it then says it is damaged, not that there is no such
		 * snapshot, and it makes another match ambiguous */
		if (!rs->latest && strncmp(bk_id_hex(id).s, rs->spec, strlen(rs->spec)) == 0) {
			rs->matches++;
			memcpy(rs->id, id, 32);
		}
		return 0;
	}
	bool named = !rs->name || strcmp(s->name, rs->name) == 0;
	if (named && rs->latest) {
		if (bk_grow(&rs->named, &rs->cap, rs->nnamed, sizeof(*rs->named), 64) < 0) {
			bk_snapshot_free(s);
			return -ENOMEM;
		}
		Named *n = &rs->named[rs->nnamed++];
		memcpy(n->id, id, 32);
		memcpy(n->parent, s->parent, 32);
		n->has_parent = s->has_parent;
		n->time_us = s->time_us;
		rs->matches = 1;
	} else if (named && strncmp(bk_id_hex(id).s, rs->spec, strlen(rs->spec)) == 0) {
		rs->matches++;
		memcpy(rs->id, id, 32);
	}
	bk_snapshot_free(s);
	return 0;
}

int bk_snapshot_resolve(BkRepo *r, const char *spec, const char *name, uint8_t ret_id[32])
{
	return bk_snapshot_resolve_ex(r, spec, name, ret_id, NULL);
}

int bk_snapshot_resolve_ex(BkRepo *r, const char *spec, const char *name, uint8_t ret_id[32],
			   unsigned *ret_damaged)
{
	Resolve rs = { .spec = spec, .name = name, .latest = strcmp(spec, "latest") == 0 };
	if (ret_damaged)
		*ret_damaged = 0;
	if (!rs.latest) {
		size_t n = strlen(spec);
		if (n < 4 || n > BK_ID_HEX_LEN || strspn(spec, "0123456789abcdef") != n)
			return bk_errorf(BK_E_USAGE, "'%s' is not a snapshot id, id prefix or 'latest'", spec);
		if (n == BK_ID_HEX_LEN && !name) { /* a full id: no need to read the others */
			uint64_t size;
			char obj[128];
			snprintf(obj, sizeof(obj), "snapshots/%s", spec);
			int e = bk_backend_size(r->be, obj, &size);
			if (e == -ENOENT)
				return bk_errorf(-ENOENT, "no snapshot %s", spec);
			if (e == 0)
				bk_unhex(ret_id, 32, spec);
			return e;
		}
	}
	int e = bk_snapshot_foreach(r, resolve_one, &rs);
	if (ret_damaged)
		*ret_damaged = rs.damaged;
	if (e == 0 && rs.nnamed)
		pick_latest(&rs);
	free(rs.named);
	if (e < 0)
		return e;
	if (rs.matches == 0 && rs.latest && rs.damaged)
		return bk_errorf(BK_E_CORRUPT, "no intact snapshot matches 'latest'%s%s: %u damaged "
				 "record%s skipped", name ? " named " : "", name ? name : "", rs.damaged,
				 rs.damaged == 1 ? "" : "s");
	if (rs.matches == 0)
		return bk_errorf(-ENOENT, "no snapshot matches '%s'%s%s", spec, name ? " named " : "",
				 name ? name : "");
	if (rs.matches > 1)
		return bk_errorf(BK_E_USAGE, "snapshot prefix '%s' is ambiguous", spec);
	memcpy(ret_id, rs.id, 32);
	return 0;
}

int bk_tree_load(BkRepo *r, const uint8_t id[32], BkTree **ret)
{
	uint8_t *plain;
	size_t len;
	int e = bk_repo_read_blob(r, BK_BLOB_TREE, id, &plain, &len);
	if (e < 0)
		return e;
	e = bk_tree_decode(plain, len, ret);
	free(plain);
	if (e < 0)
		bk_error_wrap(e, "tree %s", bk_id_hex(id).s);
	return e;
}

int bk_tree_lookup(BkRepo *r, const uint8_t root[32], const char *path, BkTree **ret_tree,
		   const BkTreeEntry **ret_entry)
{
	BkTree *t;
	int e = bk_tree_load(r, root, &t);
	if (e < 0)
		return e;
	const BkTreeEntry *ent = NULL;
	char part[BK_TREE_NAME_MAX + 1];
	const char *p = path;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, "/");
		if (n > BK_TREE_NAME_MAX) {
			bk_tree_free(t);
			return bk_errorf(-ENOENT, "%s: no such path in snapshot", path);
		}
		memcpy(part, p, n);
		part[n] = '\0';
		p += n;
		if (ent) { /* descend into the previous component */
			if (ent->type != BK_NODE_DIR) {
				/* (not found: exit 3, as for any path the snapshot lacks) */
				e = bk_errorf(-ENOENT, "%s: no such path in snapshot (%s is not a "
					      "directory)", path, ent->name);
				bk_tree_free(t);
				return e;
			}
			BkTree *sub;
			e = bk_tree_load(r, ent->subtree, &sub);
			bk_tree_free(t);
			if (e < 0)
				return e;
			t = sub;
		}
		ent = bk_tree_find(t, part);
		if (!ent) {
			bk_tree_free(t);
			return bk_errorf(-ENOENT, "%s: no such path in snapshot", path);
		}
	}
	*ret_tree = t;
	*ret_entry = ent;
	return 0;
}

/* ---- content ---- */

/* Chunks are read, authenticated and decompressed on the pipeline's worker
 * threads; this thread writes them in order. A job is a batch of consecutive
 * chunks, so that small chunks do not pay a thread hand-off each.
 *
 * A restored regular file is written with O_DIRECT where the file system takes
 * it: the page cache copy is the largest cost of a restore on a virtual machine,
 * and the restored cluster is read by the server later, not by us. O_DIRECT
 * needs buffers, lengths and file offsets aligned to the block size, so a batch
 * is laid out in its buffer at the same offset modulo ALIGN as it has in the
 * file: the bytes of the file's last partial block (the carry) go in front of
 * it, and every write covers whole blocks; the final partial block is padded
 * with zeros and the file truncated to its size. Runs of whole zero blocks
 * become holes. */
#define READ_AHEAD 8
#define BATCH_CHUNKS 64
#define BATCH_BYTES (2u << 20)
#define ALIGN 4096u
_Static_assert(BATCH_CHUNKS <= BK_REPO_BATCH_MAX, "a batch is read in one bk_repo_read_blobs_into");

typedef struct {
	size_t n;
	uint64_t bytes;
	size_t lead; /* where the chunks start in buf: room for the carry */
	uint8_t id[BATCH_CHUNKS][32];
	uint64_t size[BATCH_CHUNKS];
	uint8_t *buf; /* ALIGN-aligned; kept for the slot's next batch */
	size_t cap;
} ReadJob;

static int read_chunks(void *repo, void *job)
{
	ReadJob *j = job;
	size_t need = (j->lead + j->bytes + ALIGN - 1) / ALIGN * ALIGN;
	if (need > j->cap) {
		free(j->buf);
		j->cap = 0;
		if (posix_memalign((void **)&j->buf, ALIGN, need) != 0) {
			j->buf = NULL;
			return -ENOMEM;
		}
		j->cap = need;
	}
	return bk_repo_read_blobs_into(repo, BK_BLOB_DATA, j->n, (const uint8_t(*)[32])j->id, j->size,
				       j->buf + j->lead);
}

static void job_release(ReadJob *j)
{
	j->n = 0;
	j->bytes = 0;
	j->lead = 0;
}

typedef struct {
	BkRepo *r;
	BkPipeline *pipe;
	ReadJob *filling; /* the batch being filled, not yet submitted */
	int fd;
	bool blocks;        /* fd is a regular file: whole blocks at their offsets */
	uint64_t fill_pos;  /* file offset of the next batch submitted */
	uint64_t write_pos; /* file offset of the next byte written */
	uint8_t *carry;     /* ALIGN bytes: the file's last partial block */
	size_t ncarry;      /* = write_pos % ALIGN when blocks */
	const BkRestoreOpts *o;
	uint64_t *progress_done;
} Sink;

static int sink_open(Sink *s, BkRepo *r)
{
	*s = (Sink){ .r = r, .fd = -1 };
	if (posix_memalign((void **)&s->carry, ALIGN, ALIGN) != 0)
		return -ENOMEM;
	int e = bk_pipeline_new(READ_AHEAD, sizeof(ReadJob), read_chunks, r, &s->pipe);
	if (e < 0)
		free(s->carry);
	return e;
}

static void sink_close(Sink *s)
{
	for (size_t i = 0; i < READ_AHEAD; i++)
		free(((ReadJob *)bk_pipeline_job(s->pipe, i))->buf);
	bk_pipeline_free(s->pipe); /* sink_content left nothing in flight */
	free(s->carry);
}

/* Starts a new output: a regular file (written in whole blocks, holes for zero
 * blocks) or a stream. */
static void sink_start(Sink *s, int fd, bool regular)
{
	s->fd = fd;
	s->blocks = regular;
	s->fill_pos = s->write_pos = 0;
	s->ncarry = 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	if (n == 0 || p[0] != 0)
		return n == 0;
	return memcmp(p, p + 1, n - 1) == 0;
}

/* Writes n bytes (whole blocks) at file offset off; a file system that refuses
 * O_DIRECT for this write gets the rest of the file through the page cache. */
static int pwrite_blocks(Sink *s, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(s->fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EINVAL && (fcntl(s->fd, F_GETFL) & O_DIRECT)) {
			if (fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) & ~O_DIRECT) < 0)
				return -errno;
			continue;
		}
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Writes the whole blocks of len bytes at buf (file offset off, both aligned),
 * skipping runs of zero blocks. */
static int write_blocks(Sink *s, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t run = 0;
	for (size_t b = 0; b < len; b += ALIGN) {
		if (!all_zero(buf + b, ALIGN))
			continue;
		if (b > run) {
			int e = pwrite_blocks(s, buf + run, b - run, off + run);
			if (e < 0)
				return e;
		}
		run = b + ALIGN;
	}
	return len > run ? pwrite_blocks(s, buf + run, len - run, off + run) : 0;
}

/* Writes a batch of a regular file: the carry in front of it, whole blocks out,
 * the new partial block kept as the carry. */
static int write_batch_blocks(Sink *s, ReadJob *j)
{
	uint8_t *base = j->buf + j->lead - s->ncarry; /* aligned: lead == ncarry */
	memcpy(base, s->carry, s->ncarry);
	size_t total = s->ncarry + j->bytes, whole = total / ALIGN * ALIGN;
	int e = write_blocks(s, base, whole, s->write_pos - s->ncarry);
	if (e < 0)
		return e;
	memcpy(s->carry, base + whole, total - whole);
	s->ncarry = total - whole;
	s->write_pos += j->bytes;
	return 0;
}

/* Writes the file's last partial block, padded with zeros (the caller
 * truncates the file to its size). */
static int sink_finish(Sink *s)
{
	if (!s->blocks || s->ncarry == 0)
		return 0;
	memset(s->carry + s->ncarry, 0, ALIGN - s->ncarry);
	return write_blocks(s, s->carry, ALIGN, s->write_pos - s->ncarry);
}

/* Takes the oldest batch read and writes it out. */
static int write_one(Sink *s)
{
	int e;
	ReadJob *j = bk_pipeline_take(s->pipe, &e);
	if (e == 0) {
		int w = s->blocks ? write_batch_blocks(s, j) : bk_write_all(s->fd, j->buf + j->lead, j->bytes);
		if (w < 0)
			e = bk_errorf_code(w, "write");
	}
	if (e == 0 && s->progress_done) {
		*s->progress_done += j->bytes;
		if (s->o->progress)
			s->o->progress(s->o->progress_ud, *s->progress_done, s->o->total);
	}
	job_release(j);
	return e;
}

/* A free batch to fill, writing out the oldest if all are in flight. */
static int next_batch(Sink *s, ReadJob **ret)
{
	ReadJob *j;
	while (!(j = bk_pipeline_next(s->pipe))) {
		int e = write_one(s);
		if (e < 0)
			return e;
	}
	*ret = j;
	return 0;
}

static void submit_batch(Sink *s)
{
	if (s->filling && s->filling->n) {
		s->fill_pos += s->filling->bytes;
		bk_pipeline_submit(s->pipe, true);
		s->filling = NULL;
	}
}

static int sink_chunk(void *ud, const uint8_t id[32], uint64_t size, uint64_t offset)
{
	(void)offset;
	Sink *s = ud;
	if (size > BK_PACK_MAX_BLOB) /* no blob is larger: do not allocate for it */
		return bk_errorf(BK_E_CORRUPT, "chunk %s: content list says %llu bytes", bk_id_hex(id).s,
				 (unsigned long long)size);
	if (!s->filling) {
		int e = next_batch(s, &s->filling);
		if (e < 0)
			return e;
		s->filling->lead = s->blocks ? s->fill_pos % ALIGN : 0;
	}
	ReadJob *j = s->filling;
	memcpy(j->id[j->n], id, 32);
	j->size[j->n] = size;
	j->bytes += size;
	if (++j->n == BATCH_CHUNKS || j->bytes >= BATCH_BYTES)
		submit_batch(s);
	return 0;
}

/* Writes a whole content to s->fd: every chunk verified, in order. */
static int sink_content(Sink *s, const BkContentNode *root)
{
	int e = bk_content_walk(root, bk_repo_read_blob, s->r, sink_chunk, s);
	if (e == 0)
		submit_batch(s);
	else if (s->filling) { /* never submitted: forget it */
		job_release(s->filling);
		s->filling = NULL;
	}
	while (e == 0 && bk_pipeline_in_flight(s->pipe))
		e = write_one(s);
	if (e == 0 && (e = sink_finish(s)) < 0)
		e = bk_errorf_code(e, "write");
	/* after a failure nothing more is written: a gap would be wrong bytes */
	char why[1024];
	snprintf(why, sizeof(why), "%s", bk_error_detail());
	int x;
	ReadJob *j;
	while ((j = bk_pipeline_take(s->pipe, &x)))
		job_release(j);
	return e < 0 ? bk_errorf(e, "%s", why) : 0;
}

int bk_content_write(BkRepo *r, const BkContentNode *root, int fd)
{
	Sink s;
	int e = sink_open(&s, r);
	if (e < 0)
		return e;
	sink_start(&s, fd, false);
	e = sink_content(&s, root);
	sink_close(&s);
	return e;
}

/* ---- restore ---- */

typedef struct {
	BkRepo *r;
	const BkRestoreOpts *o;
	uint64_t *done;
	bool proc; /* /proc/self/fd is there (not in every chroot): see open_new */
	Sink sink;
	char path[PATH_MAX];
} Restore;

/* Gives e's owner, mode and times to what fd is open on (a file, a directory),
 * or, with fd < 0, to entry name of dirfd (a link, a FIFO, a device), never
 * through a link: as root in a directory another user can write, that user must
 * not turn root's chmod or chown to a file elsewhere by swapping the entry for a
 * link (found by review: a file's were set by name, and chmod followed links). */
static int set_meta(Restore *rs, int fd, int dirfd, const char *name, const BkTreeEntry *e)
{
	const BkRestoreOpts *o = rs->o;
	uid_t uid = o->one_owner ? o->owner_uid : e->uid;
	gid_t gid = o->one_owner ? o->owner_gid : e->gid;
	mode_t mode = e->mode & 07777;
	if (o->restore_owner && (fd >= 0 ? fchown(fd, uid, gid)
					 : fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW)) < 0)
		return bk_errorf_code(-errno, "chown %s", rs->path);
	if (e->type != BK_NODE_SYMLINK &&
	    (fd >= 0 ? fchmod(fd, mode) : fchmodat(dirfd, name, mode, AT_SYMLINK_NOFOLLOW)) < 0)
		return bk_errorf_code(-errno, "chmod %s", rs->path);
	struct timespec ts[2] = { { .tv_sec = e->mtime_sec, .tv_nsec = e->mtime_nsec },
				  { .tv_sec = e->mtime_sec, .tv_nsec = e->mtime_nsec } };
	if ((fd >= 0 ? futimens(fd, ts) : utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW)) < 0)
		return bk_errorf_code(-errno, "set times of %s", rs->path);
	return 0;
}

/* Whether entry name of dirfd is the file open as fd (not one swapped in). */
static bool is_same_file(int dirfd, const char *name, int fd)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	       a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* Opens a new file in dirfd to write: unnamed (O_TMPFILE) where the file system
 * makes one and /proc (proc) can name it later, so that a restore killed meanwhile leaves
 * nothing behind, else named tmp (*named true); with O_DIRECT where the file
 * system takes it. */
static int open_new(int dirfd, const char *tmp, bool proc, bool *named)
{
	for (int direct = O_DIRECT;; direct = 0) {
		int fd = proc ? openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC | direct, 0600) : -1;
		*named = !proc || (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR));
		if (*named)
			fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | direct,
				    0600);
		if (fd >= 0 || errno != EINVAL || !direct) /* EINVAL: no O_DIRECT here */
			return fd < 0 ? -errno : fd;
	}
}

static int restore_file(Restore *rs, int dirfd, const BkTreeEntry *e)
{
	char tmp[BK_TREE_NAME_MAX + 32];
	snprintf(tmp, sizeof(tmp), ".%.200s.bunker-restore.%d", e->name, (int)getpid());
	bool named;
	int fd = open_new(dirfd, tmp, rs->proc, &named);
	if (fd < 0)
		return bk_errorf_code(fd, "create %s", rs->path);
	sink_start(&rs->sink, fd, true);
	rs->sink.o = rs->o;
	rs->sink.progress_done = rs->done;
	int r = sink_content(&rs->sink, &e->content);
	if (r < 0)
		bk_error_wrap(r, "%s", rs->path);
	if (r == 0 && ftruncate(fd, (off_t)e->size) < 0)
		r = bk_errorf_code(-errno, "truncate %s", rs->path);
	if (r == 0)
		r = set_meta(rs, fd, dirfd, tmp, e);
	/* An unnamed file is linked under tmp only now, whole (link cannot replace a
	 * file under e's name; rename can), through its /proc link, which needs no
	 * capability as AT_EMPTY_PATH would. */
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (r == 0 && !named) {
		int k = linkat(AT_FDCWD, proc, dirfd, tmp, AT_SYMLINK_FOLLOW);
		if (k < 0 && errno == EEXIST && unlinkat(dirfd, tmp, 0) == 0) /* one killed before */
			k = linkat(AT_FDCWD, proc, dirfd, tmp, AT_SYMLINK_FOLLOW);
		if (k < 0)
			r = bk_errorf_code(-errno, "link %s", rs->path);
		named = k == 0;
	}
	if (r == 0 && !is_same_file(dirfd, tmp, fd))
		r = bk_errorf(-EAGAIN, "%s: its temporary file was replaced while it was written",
			      rs->path);
	if (r == 0 && renameat(dirfd, tmp, dirfd, e->name) < 0)
		r = bk_errorf_code(-errno, "rename into %s", rs->path);
	if (r < 0 && named && is_same_file(dirfd, tmp, fd))
		unlinkat(dirfd, tmp, 0);
	close(fd);
	return r;
}

static int restore_entry(Restore *rs, int dirfd, const BkTreeEntry *e);

/* Whether a name at the top of the restore is left out. */
static bool excluded(const BkRestoreOpts *o, const char *name)
{
	for (size_t i = 0; i < o->nexcludes; i++)
		if (strcmp(o->excludes[i], name) == 0)
			return true;
	return false;
}

static int restore_tree(Restore *rs, int dirfd, const uint8_t tree_id[32], bool top)
{
	BkTree *t;
	int r = bk_tree_load(rs->r, tree_id, &t);
	if (r < 0)
		return r;
	size_t plen = strlen(rs->path);
	for (size_t i = 0; r == 0 && i < t->count; i++) {
		if (top && excluded(rs->o, t->entries[i].name))
			continue;
		if (rs->o->stop && *rs->o->stop) {
			r = bk_errorf(-EINTR, "interrupted");
			break;
		}
		snprintf(rs->path + plen, sizeof(rs->path) - plen, "/%s", t->entries[i].name);
		r = restore_entry(rs, dirfd, &t->entries[i]);
		rs->path[plen] = '\0';
	}
	bk_tree_free(t);
	return r;
}

/* Directory name in dirfd (label in errors), made (0700) if missing, opened
 * without following a link: one put at a directory's name by another user who can
 * write the target would lead the restore where it points (restore-direct.sh). */
static int open_subdir(int dirfd, const char *name, const char *label, int *ret_fd)
{
	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return bk_errorf_code(-errno, "mkdir %s", label);
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		struct stat st;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			return bk_errorf(-ELOOP, "%s is a symbolic link where the snapshot has a "
					 "directory: not followed (remove it to restore there)", label);
		return bk_errorf_code(e, "open directory %s", label);
	}
	*ret_fd = fd;
	return 0;
}

static int restore_entry(Restore *rs, int dirfd, const BkTreeEntry *e)
{
	switch (e->type) {
	case BK_NODE_FILE:
		return restore_file(rs, dirfd, e);
	case BK_NODE_DIR: {
		int fd;
		int r = open_subdir(dirfd, e->name, rs->path, &fd);
		if (r < 0)
			return r;
		r = restore_tree(rs, fd, e->subtree, false);
		if (r == 0) /* (its times once its entries are in) */
			r = set_meta(rs, fd, -1, NULL, e);
		close(fd);
		return r;
	}
	case BK_NODE_SYMLINK:
		unlinkat(dirfd, e->name, 0);
		if (symlinkat(e->link, dirfd, e->name) < 0)
			return bk_errorf_code(-errno, "symlink %s", rs->path);
		break;
	case BK_NODE_FIFO:
		unlinkat(dirfd, e->name, 0);
		if (mkfifoat(dirfd, e->name, e->mode & 07777) < 0)
			return bk_errorf_code(-errno, "mkfifo %s", rs->path);
		break;
	default: /* devices and sockets: recreated only by root, skipped otherwise */
		if (!rs->o->restore_owner)
			return 0;
		unlinkat(dirfd, e->name, 0);
		mode_t type = e->type == BK_NODE_CHR ? S_IFCHR : e->type == BK_NODE_BLK ? S_IFBLK : S_IFSOCK;
		if (mknodat(dirfd, e->name, type | (e->mode & 07777), (dev_t)e->rdev) < 0)
			return bk_errorf_code(-errno, "mknod %s", rs->path);
		break;
	}
	return set_meta(rs, -1, dirfd, e->name, e);
}

/* Restores one included entry at its own path below the directory dirfd (named
 * target), creating the directories above it as a whole restore would, following
 * no link there (found by a helper's exploration: with --include, a link at
 * src/ in the target was followed, where a whole restore refuses it). */
static int restore_included(Restore *rs, int dirfd, const char *target, const char *path,
			    const BkTreeEntry *ent)
{
	char parent[PATH_MAX];
	int n = snprintf(parent, sizeof(parent), "%s", path);
	if (n >= (int)sizeof(parent) ||
	    snprintf(rs->path, sizeof(rs->path), "%s", target) >= (int)sizeof(rs->path))
		return bk_errorf(-ENAMETOOLONG, "%s: path too long", path);
	while (n > 0 && parent[n - 1] == '/')
		parent[--n] = '\0';
	char *last = strrchr(parent, '/');
	if (last)
		*last = '\0';
	int pfd = dup(dirfd), e = pfd < 0 ? bk_errorf_code(-errno, "dup %s", target) : 0;
	size_t plen = strlen(rs->path);
	/* the snapshot's names on the way (bk_tree_lookup found them: no "..") */
	for (char *save, *name = last ? strtok_r(parent, "/", &save) : NULL; e == 0 && name;
	     name = strtok_r(NULL, "/", &save)) {
		plen += (size_t)snprintf(rs->path + plen, sizeof(rs->path) - plen, "/%s", name);
		int fd;
		if (plen >= sizeof(rs->path))
			e = bk_errorf(-ENAMETOOLONG, "%s: path too long", path);
		else if ((e = open_subdir(pfd, name, rs->path, &fd)) == 0) {
			close(pfd);
			pfd = fd;
		}
	}
	if (e == 0 && snprintf(rs->path, sizeof(rs->path), "%s/%s", target, path) >=
			      (int)sizeof(rs->path))
		e = bk_errorf(-ENAMETOOLONG, "%s: path too long", path);
	if (e == 0)
		e = restore_entry(rs, pfd, ent);
	if (pfd >= 0)
		close(pfd);
	return e;
}

int bk_restore(BkRepo *r, const BkSnapshot *s, const char *target, const BkRestoreOpts *o)
{
	if (o->stop && *o->stop) /* before anything is made */
		return bk_errorf(-EINTR, "interrupted");
	int dirfd;
	int e = bk_open_dir(AT_FDCWD, target, 0700, 0700, false, &dirfd, NULL);
	if (e < 0)
		return e;
	e = bk_restore_at(r, s, dirfd, target, o);
	close(dirfd);
	return e;
}

int bk_restore_at(BkRepo *r, const BkSnapshot *s, int dirfd, const char *target,
		  const BkRestoreOpts *o)
{
	uint64_t done = 0;
	Restore rs = { .r = r, .o = o, .done = o->done ? o->done : &done,
		       .proc = bk_proc_fd_available() };
	int e = sink_open(&rs.sink, r);
	if (e < 0)
		return e;
	snprintf(rs.path, sizeof(rs.path), "%s", target);
	if (o->from) {
		BkTree *t;
		const BkTreeEntry *ent;
		e = bk_tree_lookup(r, s->root, o->from, &t, &ent);
		if (e == 0) {
			if (ent && ent->type != BK_NODE_DIR)
				e = bk_errorf(-ENOTDIR, "%s is not a directory in the snapshot", o->from);
			else
				e = restore_tree(&rs, dirfd, ent ? ent->subtree : s->root, true);
			bk_tree_free(t);
		}
	} else if (o->nincludes == 0) {
		e = restore_tree(&rs, dirfd, s->root, true);
	} else {
		for (size_t i = 0; e == 0 && i < o->nincludes; i++) {
			BkTree *t;
			const BkTreeEntry *ent;
			e = bk_tree_lookup(r, s->root, o->includes[i], &t, &ent);
			if (e < 0)
				break;
			if (!ent) {
				e = restore_tree(&rs, dirfd, s->root, true);
			} else {
				e = restore_included(&rs, dirfd, target, o->includes[i], ent);
			}
			bk_tree_free(t);
		}
	}
	/* one syncfs for the whole restore instead of an fsync per file */
	if (e == 0 && syncfs(dirfd) < 0)
		e = bk_errorf_code(-errno, "sync %s", target);
	sink_close(&rs.sink);
	return e;
}
