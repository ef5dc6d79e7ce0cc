#include "store/archiver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "store/error.h"
#include "store/fs.h"
#include "store/pipeline.h"
#include "store/tree.h"
#include "store/util.h"

/* Chunks are hashed, deduplicated, compressed and sealed on the pipeline's worker
 * threads while this thread reads and cuts; results come back in stream order,
 * so the content list is the same whatever the timing. */
#define RING 8 /* jobs in flight */
#define BATCH_CHUNKS 16       /* a job is a batch of consecutive chunks, so that */
#define BATCH_BYTES (512u << 10) /* small chunks do not pay a thread hand-off each */

typedef struct {
	uint8_t *data; /* the batch's chunks back to back */
	size_t bytes, cap, n;
	size_t len[BATCH_CHUNKS];
	uint8_t id[BATCH_CHUNKS][32];
	/* an end-of-file marker instead of a chunk: done is called with the file's
	 * content root once every chunk before it was consumed */
	BkFileDoneFn done;
	void *done_ud;
	uint64_t file_size;
} Job;

struct BkChunkStream {
	BkRepo *repo;
	BkFastCdc cdc; /* the repository's, or one with other sizes for this stream */
	BkWriter *writer;
	BkContentBuilder *builder;
	uint8_t *buf;
	size_t cap, start, end; /* window buf[start..end) begins at a chunk boundary */
	uint64_t size;
	BkPipeline *pipe;
	Job *filling; /* the batch being filled, not yet submitted */
	int err;      /* a failed chunk of the file being consumed */
	const BkArchiveOpts *idle; /* with idle->idle_s: reads wait at most that long */
};

static int store_chunks(void *stream, void *job)
{
	BkChunkStream *s = stream;
	Job *j = job;
	const uint8_t *data[BATCH_CHUNKS];
	size_t off = 0;
	for (size_t i = 0; i < j->n; i++) {
		data[i] = j->data + off;
		off += j->len[i];
	}
	bk_blob_ids(s->repo->keys, j->n, data, j->len, j->id); /* side by side */
	for (size_t i = 0; i < j->n; i++) {
		int e = bk_writer_put_id(s->writer, BK_BLOB_DATA, data[i], j->len[i], j->id[i]);
		if (e < 0)
			return e;
	}
	return 0;
}

/* Ends the current file's content list and hands its root to the marker's
 * callback (with NULL if one of its chunks failed). */
static int end_file(BkChunkStream *s, Job *j)
{
	BkContentNode root = { 0 };
	int e = s->err;
	if (e == 0)
		e = bk_content_builder_finish(s->builder, &root);
	bk_content_builder_free(s->builder);
	s->builder = NULL;
	int d = j->done(j->done_ud, e == 0 ? &root : NULL, j->file_size);
	if (e == 0)
		e = d;
	bk_content_node_release(&root);
	int n = bk_content_builder_new(bk_writer_put, s->writer, &s->builder);
	s->err = 0;
	return e < 0 ? e : n;
}

/* Waits for the oldest job and adds its chunk to the content list. */
static int consume_one(BkChunkStream *s)
{
	int e;
	Job *j = bk_pipeline_take(s->pipe, &e);
	if (j->done) {
		e = end_file(s, j);
		j->done = NULL;
		return e;
	}
	for (size_t i = 0; e == 0 && s->err == 0 && i < j->n; i++)
		e = bk_content_builder_add(s->builder, j->id[i], j->len[i]);
	if (e < 0 && s->err == 0)
		s->err = e; /* the file is lost; its end marker reports it */
	return e;
}

static void submit_batch(BkChunkStream *s)
{
	if (s->filling) {
		bk_pipeline_submit(s->pipe, true);
		s->filling = NULL;
	}
}

static int drain(BkChunkStream *s)
{
	int first = 0;
	char why[1024] = ""; /* the first failure's: the batches after it may fail too */
	submit_batch(s);
	while (bk_pipeline_in_flight(s->pipe)) {
		int e = consume_one(s);
		if (e < 0 && !first) {
			first = e;
			snprintf(why, sizeof(why), "%s", bk_error_detail());
		}
	}
	return first < 0 ? bk_errorf(first, "%s", why) : 0;
}

/* The next free job slot, consuming the oldest result if all are in flight. */
static int next_job(BkChunkStream *s, Job **ret)
{
	Job *j;
	while (!(j = bk_pipeline_next(s->pipe))) {
		int e = consume_one(s);
		if (e < 0)
			return e;
	}
	*ret = j;
	return 0;
}

/* Adds a chunk to the batch being filled; a full batch goes to the workers. */
static int submit(BkChunkStream *s, const uint8_t *data, size_t len)
{
	if (s->filling && s->filling->bytes + len > BATCH_BYTES)
		submit_batch(s);
	if (!s->filling) {
		int e = next_job(s, &s->filling);
		if (e < 0)
			return e;
		s->filling->n = s->filling->bytes = 0;
		s->filling->done = NULL;
	}
	Job *j = s->filling;
	if (j->bytes + len > j->cap) {
		size_t cap = BK_MAX((size_t)BATCH_BYTES, j->bytes + len);
		uint8_t *p = realloc(j->data, cap);
		if (!p)
			return -ENOMEM;
		j->data = p;
		j->cap = cap;
	}
	memcpy(j->data + j->bytes, data, len);
	j->len[j->n++] = len;
	j->bytes += len;
	if (j->n == BATCH_CHUNKS)
		submit_batch(s);
	return 0;
}

/* The block size of a stream cut into fixed blocks, else 0. */
static size_t fixed_block(const BkChunkStream *s)
{
	return s->cdc.min == s->cdc.max ? s->cdc.max : 0;
}

static int stream_new(BkRepo *r, BkWriter *w, const BkFastCdc *cdc, BkChunkStream **ret)
{
	BkChunkStream *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->repo = r;
	s->writer = w;
	s->cdc = *cdc;
	/* fixed blocks are cut as soon as they are read: a smaller window is touched
	 * by fewer pages (a wal-push is a new process, each page a fault) */
	size_t least = fixed_block(s) ? (size_t)1 << 20 : (size_t)4 << 20;
	s->cap = BK_MAX(least, 4 * s->cdc.max);
	s->buf = malloc(s->cap);
	int e = s->buf ? bk_content_builder_new(bk_writer_put, w, &s->builder) : -ENOMEM;
	if (e == 0)
		e = bk_pipeline_new(RING, sizeof(Job), store_chunks, s, &s->pipe);
	if (e < 0) {
		bk_chunk_stream_free(s);
		return e;
	}
	*ret = s;
	return 0;
}

int bk_chunk_stream_new(BkRepo *r, BkWriter *w, BkChunkStream **ret)
{
	return stream_new(r, w, &r->cdc, ret);
}

int bk_chunk_stream_new_blocks(BkRepo *r, BkWriter *w, size_t block, BkChunkStream **ret)
{
	BkFastCdc cdc;
	int e = bk_fastcdc_init_fixed(&cdc, block);
	return e < 0 ? bk_errorf(e, "block size %zu", block) : stream_new(r, w, &cdc, ret);
}

void bk_chunk_stream_free(BkChunkStream *s)
{
	if (!s)
		return;
	if (s->pipe) {
		/* on an error path the batches still in flight may fail too: the
		 * caller's error stays the one its detail names */
		char why[1024];
		snprintf(why, sizeof(why), "%s", bk_error_detail());
		drain(s);
		bk_errorf(0, "%s", why);
		for (size_t i = 0; i < RING; i++)
			free(((Job *)bk_pipeline_job(s->pipe, i))->data);
		bk_pipeline_free(s->pipe);
	}
	bk_content_builder_free(s->builder);
	free(s->buf);
	free(s);
}

/* Cuts every chunk the window holds (all of it at eof). */
static int cut(BkChunkStream *s, bool eof)
{
	for (;;) {
		size_t n = bk_fastcdc_next(&s->cdc, s->buf + s->start, s->end - s->start, eof);
		if (n == 0)
			break;
		int e = submit(s, s->buf + s->start, n);
		if (e < 0)
			return e;
		s->start += n;
		s->size += n;
	}
	if (s->start > 0 && (s->start == s->end || s->end == s->cap)) {
		memmove(s->buf, s->buf + s->start, s->end - s->start);
		s->end -= s->start;
		s->start = 0;
	}
	return 0;
}

int bk_chunk_stream_push(BkChunkStream *s, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t block = fixed_block(s);
	while (len > 0) {
		if (block && s->start == s->end && len >= block) {
			/* a whole block, nothing before it in the window: straight to its
			 * batch (BASE_BACKUP sends a file's data in pieces of 32 KiB from its
			 * start, each one of our blocks) */
			int e = submit(s, p, block);
			if (e < 0)
				return e;
			s->size += block;
			p += block;
			len -= block;
			continue;
		}
		size_t n = BK_MIN(len, s->cap - s->end);
		if (block) /* complete the window's block only: the rest may go straight */
			n = BK_MIN(n, block - (s->end - s->start));
		memcpy(s->buf + s->end, p, n);
		s->end += n;
		p += n;
		len -= n;
		int e = cut(s, false);
		if (e < 0)
			return e;
	}
	return 0;
}

/* One read(2), retried on EINTR: the bytes read (0 at the file's end) or -errno.
 * With an idle limit (bk_archive_fd's pipes) the wait for bytes is bounded: when
 * nothing comes for idle_s, the read fails with what the idle callback returns. */
static ssize_t read_once(BkChunkStream *s, int fd, void *buf, size_t len)
{
	const BkArchiveOpts *o = s->idle;
	for (;;) {
		if (o) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int pr = poll(&p, 1, (int)BK_MIN(o->idle_s, 86400u) * 1000);
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr < 0)
				return bk_errorf_code(-errno, "poll");
			if (pr == 0) {
				int e = o->idle(o->idle_ud);
				return e < 0 ? e : bk_errorf_code(-ETIMEDOUT, "read");
			}
		}
		ssize_t n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return bk_errorf_code(-errno, "read");
	}
}

/* Fixed blocks, the window empty: a batch of whole blocks read straight into its
 * job, with no copy through the window (the same chunks as cut() would make). A
 * block cut short (by the file's end, or a short read) goes to the window, where
 * the next read, the stream's end or more bytes pushed continue it, as through
 * the window. */
static int read_batch(BkChunkStream *s, int fd, size_t *ret_n)
{
	size_t block = fixed_block(s);
	size_t blocks = BK_MAX((size_t)1, BK_MIN((size_t)BATCH_CHUNKS, BATCH_BYTES / block));
	submit_batch(s);
	Job *j;
	int e = next_job(s, &j);
	if (e < 0)
		return e;
	if (j->cap < blocks * block) {
		uint8_t *p = realloc(j->data, blocks * block);
		if (!p)
			return -ENOMEM;
		j->data = p;
		j->cap = blocks * block;
	}
	ssize_t n = read_once(s, fd, j->data, blocks * block);
	if (n < 0)
		return (int)n;
	size_t got = (size_t)n, whole = got / block * block, rest = got - whole;
	memcpy(s->buf, j->data + whole, rest); /* cap >= 4 blocks */
	s->start = 0;
	s->end = rest;
	j->n = whole / block;
	j->bytes = whole;
	j->done = NULL;
	for (size_t i = 0; i < j->n; i++)
		j->len[i] = block;
	s->size += whole;
	if (j->n > 0) /* else the slot stays free: next_job gives it again */
		bk_pipeline_submit(s->pipe, true);
	*ret_n = got;
	return 0;
}

int bk_chunk_stream_read_fd(BkChunkStream *s, int fd, BkProgressFn progress, void *ud,
			    uint64_t base, uint64_t total)
{
	uint64_t done = 0, last = 0;
	bool fixed = fixed_block(s) != 0;
	for (;;) {
		size_t got = 0;
		int e;
		if (fixed && s->start == s->end) {
			e = read_batch(s, fd, &got);
		} else {
			ssize_t n = read_once(s, fd, s->buf + s->end, s->cap - s->end);
			e = n < 0 ? (int)n : 0;
			got = n > 0 ? (size_t)n : 0;
			s->end += got;
			if (got)
				e = cut(s, false);
		}
		if (e < 0)
			return e;
		if (got == 0)
			return 0;
		done += got;
		if (progress && done - last >= (4u << 20)) {
			progress(ud, base + done, total);
			last = done;
		}
	}
}

int bk_chunk_stream_end_file(BkChunkStream *s, BkFileDoneFn done, void *ud)
{
	Job *j = NULL;
	int e = cut(s, true);
	submit_batch(s);
	if (e == 0)
		e = next_job(s, &j);
	if (e < 0) { /* done is called exactly once, even when the file failed */
		done(ud, NULL, 0);
		s->start = s->end = 0;
		s->size = 0;
		return e;
	}
	j->n = j->bytes = 0;
	j->done = done;
	j->done_ud = ud;
	j->file_size = s->size;
	bk_pipeline_submit(s->pipe, false); /* a marker: nothing for the workers to do */
	s->start = s->end = 0;
	s->size = 0;
	return 0;
}

int bk_chunk_stream_drain(BkChunkStream *s) { return drain(s); }

typedef struct {
	BkContentNode *root;
	uint64_t *size;
} SyncDone;

static int take_root(void *ud, BkContentNode *root, uint64_t size)
{
	SyncDone *d = ud;
	if (!root)
		return 0;
	*d->root = *root;
	*root = (BkContentNode){ 0 };
	*d->size = size;
	return 0;
}

int bk_chunk_stream_finish(BkChunkStream *s, BkContentNode *ret_root, uint64_t *ret_size)
{
	SyncDone d = { ret_root, ret_size };
	int e = bk_chunk_stream_end_file(s, take_root, &d);
	int r = drain(s);
	return e < 0 ? e : r;
}

int bk_archive_commit(BkRepo *r, BkWriter *w, const BkArchiveOpts *o, const uint8_t root[32],
		      uint64_t logical_bytes, uint64_t files, uint64_t started_us,
		      uint8_t ret_id[32])
{
	int e = o->before_commit ? o->before_commit(o->before_commit_ud) : 0;
	if (e == 0)
		e = bk_writer_flush(w);
	if (e < 0)
		return e;
	BkSnapshot s = {
		.time_us = bk_now_us() + o->clock_offset_us,
		.host = (char *)(o->host ? o->host : ""),
		.name = (char *)o->name,
		.kind = (char *)(o->kind ? o->kind : "files"),
		.ntags = o->ntags,
		.tags = (char **)o->tags,
		.logical_bytes = logical_bytes,
		.new_bytes = bk_writer_stats(w)->stored_bytes,
		.files = files,
		.duration_us = bk_mono_us() - started_us,
		.has_parent = o->parent != NULL,
		.nmeta = o->nmeta,
		.meta = (BkKv *)o->meta,
	};
	memcpy(s.root, root, 32);
	if (o->parent)
		memcpy(s.parent, o->parent, 32);
	BkEnc enc;
	bk_enc_init(&enc, BK_RECORD_MAX);
	e = bk_snapshot_encode(&s, &enc);
	if (e == 0)
		e = bk_enc_finish(&enc);
	if (e == 0)
		e = bk_repo_put_record(r, "snapshots", BK_BLOB_SNAPSHOT, enc.buf, enc.len, ret_id);
	bk_enc_release(&enc);
	return e;
}

/* ---- files and directories ---- */

typedef struct {
	BkRepo *repo;
	BkWriter *writer;
	BkChunkStream *stream;
	const BkArchiveOpts *o;
	uint64_t bytes, files;
	char path[PATH_MAX];
} Walk;

/* Encodes and stores one directory; what names it in errors. */
static int put_tree(BkWriter *writer, BkTree *t, const char *what, uint8_t ret_id[32])
{
	BkEnc enc;
	bk_enc_init(&enc, BK_TREE_MAX_BYTES);
	int e = bk_tree_encode(t, &enc);
	if (e == 0)
		e = bk_enc_finish(&enc);
	if (e == -E2BIG)
		e = bk_errorf(-E2BIG, "%s: directory too large for one tree", what);
	else if (e < 0)
		e = bk_error_wrap(e, "%s", what);
	if (e == 0)
		e = bk_writer_put(writer, BK_BLOB_TREE, enc.buf, enc.len, ret_id);
	bk_enc_release(&enc);
	return e;
}

static int walk_entry(Walk *w, int dirfd, const char *name, const char *entry_name, BkTree *parent);

/* A file whose chunks are in flight: where its content root goes. The tree is
 * not encoded before the stream is drained, so the pointer stays valid. */
typedef struct {
	Walk *w;
	BkTree *tree;
	size_t index;
} PendingFile;

static int file_done(void *ud, BkContentNode *root, uint64_t size)
{
	PendingFile *pf = ud;
	if (root) {
		BkTreeEntry *e = &pf->tree->entries[pf->index];
		e->content = *root;
		*root = (BkContentNode){ 0 };
		e->size = size;
		pf->w->bytes += size;
	}
	free(pf);
	return 0;
}

static int walk_dir(Walk *w, int fd, uint8_t ret_id[32])
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return bk_errorf_code(-errno, "open directory %s", w->path);
	}
	BkTree *t = bk_tree_new();
	int e = t ? 0 : -ENOMEM;
	struct dirent *de;
	size_t plen = strlen(w->path);
	while (e == 0) {
		errno = 0;
		if (!(de = readdir(d))) {
			if (errno)
				e = bk_errorf_code(-errno, "read directory %s", w->path);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (plen + 1 + strlen(de->d_name) >= sizeof(w->path)) {
			e = bk_errorf(-ENAMETOOLONG, "%s/%s: path too long", w->path, de->d_name);
			break;
		}
		snprintf(w->path + plen, sizeof(w->path) - plen, "/%s", de->d_name);
		e = walk_entry(w, dirfd(d), de->d_name, de->d_name, t);
		w->path[plen] = '\0';
	}
	int d_err = bk_chunk_stream_drain(w->stream); /* every file's content is known */
	if (e == 0)
		e = d_err;
	if (e == 0)
		e = put_tree(w->writer, t, w->path, ret_id);
	bk_tree_free(t);
	closedir(d);
	return e;
}

/* Whether a file's stat after its read differs from the one its entry was made of
 * (size, modification or change time; a change time moves on any write). */
static bool changed_since(const struct stat *a, const struct stat *b)
{
	return a->st_size != b->st_size || a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	       a->st_mtim.tv_nsec != b->st_mtim.tv_nsec || a->st_ctim.tv_sec != b->st_ctim.tv_sec ||
	       a->st_ctim.tv_nsec != b->st_ctim.tv_nsec;
}

static int walk_entry(Walk *w, int dirfd, const char *name, const char *entry_name, BkTree *parent)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return bk_errorf_code(-errno, "stat %s", w->path);
	BkTreeEntry e = {
		.mode = st.st_mode & 07777,
		.uid = st.st_uid,
		.gid = st.st_gid,
		.mtime_sec = st.st_mtim.tv_sec,
		.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec,
	};
	int r = 0;
	if (S_ISREG(st.st_mode)) {
		e.type = BK_NODE_FILE;
		/* (O_NONBLOCK: a file swapped for a FIFO since the stat must not hang the
		 * open; regular files ignore it) */
		int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
		int fd = openat(dirfd, name, flags | O_NOATIME);
		if (fd < 0 && errno == EPERM)
			fd = openat(dirfd, name, flags);
		if (fd < 0)
			return bk_errorf_code(-errno, "open %s", w->path);
		struct stat now;
		if (fstat(fd, &now) < 0 || !S_ISREG(now.st_mode)) {
			close(fd);
			return bk_errorf(-EAGAIN, "%s: no longer a regular file", w->path);
		}
		r = bk_chunk_stream_read_fd(w->stream, fd, w->o->progress, w->o->progress_ud, w->bytes, 0);
		struct stat after;
		if (r == 0 && w->o->warn && fstat(fd, &after) == 0 && changed_since(&st, &after)) {
			/* (found by an adversarial test: a file cut while read was saved,
			 * exit 0, as neither its old nor its new bytes, without a word) */
			char msg[PATH_MAX + 128];
			snprintf(msg, sizeof(msg), "%s changed while it was read (%lld bytes before, "
				 "%lld after): the snapshot holds what was read", w->path,
				 (long long)st.st_size, (long long)after.st_size);
			w->o->warn(w->o->warn_ud, msg);
		}
		close(fd);
		if (r < 0)
			return bk_error_wrap(r, "%s", w->path);
		/* the content arrives later (file_done), so small files overlap */
		if (!(e.name = strdup(entry_name)))
			return -ENOMEM;
		PendingFile *pf = malloc(sizeof(*pf));
		if (!pf) {
			free(e.name);
			return -ENOMEM;
		}
		*pf = (PendingFile){ .w = w, .tree = parent, .index = parent->count };
		if ((r = bk_tree_add(parent, &e)) < 0) {
			free(pf);
			return r;
		}
		w->files++;
		return bk_chunk_stream_end_file(w->stream, file_done, pf);
	} else if (S_ISDIR(st.st_mode)) {
		e.type = BK_NODE_DIR;
		int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return bk_errorf_code(-errno, "open directory %s", w->path);
		if ((r = walk_dir(w, fd, e.subtree)) < 0)
			return r;
	} else if (S_ISLNK(st.st_mode)) {
		e.type = BK_NODE_SYMLINK;
		char target[PATH_MAX];
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return bk_errorf_code(-errno, "readlink %s", w->path);
		target[n] = '\0';
		if (!(e.link = strdup(target)))
			return -ENOMEM;
		e.size = (uint64_t)n;
	} else {
		e.type = S_ISFIFO(st.st_mode)  ? BK_NODE_FIFO
			 : S_ISCHR(st.st_mode) ? BK_NODE_CHR
			 : S_ISBLK(st.st_mode) ? BK_NODE_BLK
					       : BK_NODE_SOCK;
		e.rdev = st.st_rdev;
	}
	if (!(e.name = strdup(entry_name))) {
		free(e.link);
		bk_content_node_release(&e.content);
		return -ENOMEM;
	}
	return bk_tree_add(parent, &e);
}

int bk_archive_paths(BkRepo *r, const char *const *paths, size_t n, const BkArchiveOpts *o,
		     uint8_t ret_id[32])
{
	uint64_t started = bk_mono_us();
	Walk w = { .repo = r, .o = o };
	BkTree *root = bk_tree_new();
	int e = root ? bk_writer_new(r, &w.writer) : -ENOMEM;
	if (e == 0)
		e = bk_chunk_stream_new(r, w.writer, &w.stream);
	for (size_t i = 0; e == 0 && i < n; i++) {
		size_t len = strlen(paths[i]);
		while (len > 1 && paths[i][len - 1] == '/')
			len--;
		if (len >= sizeof(w.path)) {
			e = bk_errorf(-ENAMETOOLONG, "path too long: %s", paths[i]);
			break;
		}
		memcpy(w.path, paths[i], len);
		w.path[len] = '\0';
		const char *base = strrchr(w.path, '/');
		base = base && base[1] ? base + 1 : w.path;
		if (!strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, ".."))
			base = "root";
		e = walk_entry(&w, AT_FDCWD, w.path, base, root);
	}
	uint8_t root_id[32];
	int d_err = w.stream ? bk_chunk_stream_drain(w.stream) : 0;
	if (e == 0)
		e = d_err;
	if (e == 0)
		e = put_tree(w.writer, root, "the paths given", root_id);
	if (e == 0)
		e = bk_archive_commit(r, w.writer, o, root_id, w.bytes, w.files, started, ret_id);
	bk_tree_free(root);
	bk_chunk_stream_free(w.stream);
	bk_writer_free(w.writer);
	return e;
}

int bk_archive_fd(BkRepo *r, int fd, const char *filename, const BkArchiveOpts *o,
		  uint8_t ret_id[32])
{
	uint64_t started = bk_mono_us();
	BkWriter *writer = NULL;
	BkChunkStream *stream = NULL;
	BkTree *root = bk_tree_new();
	int e = root ? bk_writer_new(r, &writer) : -ENOMEM;
	if (e == 0)
		e = bk_chunk_stream_new(r, writer, &stream);
	if (e == 0 && o->idle_s)
		stream->idle = o;
	struct stat st;
	uint64_t total = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	if (e == 0)
		e = bk_chunk_stream_read_fd(stream, fd, o->progress, o->progress_ud, 0, total);
	BkTreeEntry ent = {
		.type = BK_NODE_FILE,
		.mode = 0600,
		.uid = (uint32_t)getuid(),
		.gid = (uint32_t)getgid(),
		.mtime_sec = bk_now_us() / 1000000,
	};
	if (e == 0)
		e = bk_chunk_stream_finish(stream, &ent.content, &ent.size);
	if (e == 0) {
		ent.name = strdup(filename);
		e = ent.name ? bk_tree_add(root, &ent) : -ENOMEM;
	}
	uint8_t root_id[32];
	if (e == 0)
		e = put_tree(writer, root, filename, root_id);
	if (e == 0)
		e = bk_archive_commit(r, writer, o, root_id, ent.size, 1, started, ret_id);
	bk_tree_free(root);
	bk_chunk_stream_free(stream);
	bk_writer_free(writer);
	return e;
}
