/* store/archiver.h: turning input into snapshots (reader -> chunker -> writer).
 *
 * BkChunkStream is the push interface every reader uses (files, stdin, tar
 * streams from BASE_BACKUP, WAL): bytes go in, in reads of any size; chunks go
 * out to the writer; finish() returns the content root. Cut points depend only on
 * the bytes (chunker/fastcdc.h): content-defined, or with
 * bk_chunk_stream_new_blocks() fixed blocks from each file's start. Memory is
 * bounded by one window (a few max-size chunks) plus the content builder.
 *
 * bk_archive_paths() backs up files and directories: each PATH becomes an entry
 * of the snapshot's root tree named by its last component (two PATHs with the
 * same last component are refused). bk_archive_fd() backs up one stream (stdin)
 * as a root tree holding one file. Both write the snapshot record last, after
 * every pack is durable and indexed (invariant 1).
 *
 * Thread-safety: one archive per thread; several processes may archive at once.
 */
#ifndef BK_STORE_ARCHIVER_H
#define BK_STORE_ARCHIVER_H

#include <stddef.h>
#include <stdint.h>

#include "store/content.h"
#include "store/repo.h"
#include "store/snapshot.h"
#include "store/writer.h"

typedef void (*BkProgressFn)(void *ud, uint64_t done, uint64_t total /* 0 = unknown */);

typedef struct {
	const char *name;         /* snapshot name, required */
	const char *kind;         /* "files", "stdin", ... */
	const char *host;
	const char *const *tags;
	size_t ntags;
	const BkKv *meta;
	size_t nmeta;
	const uint8_t *parent;    /* id of the previous snapshot of this name, or NULL */
	BkProgressFn progress;
	void *progress_ud;
	/* Called once the input is read, before the snapshot record is written; a
	 * negative return aborts the backup with no record (for example when the
	 * program that produced a stream failed). NULL: always commit. */
	int (*before_commit)(void *ud);
	void *before_commit_ud;
	/* Added to this host's clock for the snapshot's time: a base backup's end in
	 * the database server's clock, which its commit times are stamped in. */
	int64_t clock_offset_us;
	/* bk_archive_fd on a pipe or socket: with idle_s > 0, once the input has given
	 * nothing for idle_s seconds idle is called (it may stop what feeds the pipe),
	 * and the backup fails, with no record, with what it returns (< 0). */
	uint32_t idle_s;
	int (*idle)(void *ud);
	void *idle_ud;
	/* bk_archive_paths: told (optional) of each file that changed while it was
	 * read (its size or times differ after the read from the stat before it):
	 * the snapshot keeps what was read, which may be no state the file ever had. */
	void (*warn)(void *ud, const char *msg);
	void *warn_ud;
} BkArchiveOpts;

typedef struct BkChunkStream BkChunkStream;

/* The writer is borrowed for the stream's life. */
int bk_chunk_stream_new(BkRepo *r, BkWriter *w, BkChunkStream **ret);
/* The same cutting every file into blocks of `block` bytes from its start (a
 * power of two, 1 KiB..4 MiB; the last block shorter): for files written in place
 * in fixed pages, such as relation files (chunker/fastcdc.h). */
int bk_chunk_stream_new_blocks(BkRepo *r, BkWriter *w, size_t block, BkChunkStream **ret);
void bk_chunk_stream_free(BkChunkStream *s); /* accepts NULL */
int bk_chunk_stream_push(BkChunkStream *s, const void *buf, size_t len);
/* Reads fd to its end through the stream, straight into its window; progress
 * (optional) is called every 4 MiB with base + the bytes read so far, and total. */
int bk_chunk_stream_read_fd(BkChunkStream *s, int fd, BkProgressFn progress, void *ud,
			    uint64_t base, uint64_t total);
/* Cuts the last chunk and returns the content root (owned by the caller) and
 * total size. The stream is then reset for the next file. */
int bk_chunk_stream_finish(BkChunkStream *s, BkContentNode *ret_root, uint64_t *ret_size);

/* The same without waiting: the file's chunks are still in flight, and done is
 * called (on this thread, from a later call into the stream) once they are all
 * stored, with the root (done may take it: set *root to zeros) and size. This
 * lets small files overlap. bk_chunk_stream_drain() waits for everything. done
 * is called exactly once per file, with root NULL if the file failed. */
typedef int (*BkFileDoneFn)(void *ud, BkContentNode *root, uint64_t size);
int bk_chunk_stream_end_file(BkChunkStream *s, BkFileDoneFn done, void *ud);
int bk_chunk_stream_drain(BkChunkStream *s);

/* Writes a snapshot record for root tree `root` after flushing w; fills stats
 * from w. *ret_snap (optional) receives the record, owned by the caller. */
int bk_archive_commit(BkRepo *r, BkWriter *w, const BkArchiveOpts *o, const uint8_t root[32],
		      uint64_t logical_bytes, uint64_t files, uint64_t started_us,
		      uint8_t ret_id[32]);

int bk_archive_paths(BkRepo *r, const char *const *paths, size_t n, const BkArchiveOpts *o,
		     uint8_t ret_id[32]);
int bk_archive_fd(BkRepo *r, int fd, const char *filename, const BkArchiveOpts *o,
		  uint8_t ret_id[32]);

#endif
