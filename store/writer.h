/* store/writer.h: writing blobs into packs, deduplicated.
 *
 * A BkWriter owns its open packs: puts seal blobs (zstd, then XChaCha20-Poly1305)
 * and append them; a blob already in the index or in this writer's packs is
 * skipped (no compression, no sealing). At ~16 MiB a pack is full; full packs
 * are finished and committed in batches, as many as BLAKE2b has lanes (8 with
 * AVX-512), so that their ids are hashed side by side (store/pack.h; until the
 * first pack fills up, packs are hashed as they are written, so a small write
 * such as wal-push's pays nothing for its pack id at the end): each pack
 * fsync'd and renamed into place with its directory fsync'd, then the index
 * commit (invariant 1). bk_writer_flush() does the same for every full and
 * partial pack and must be called before any record that references the blobs
 * is written. Freeing an unflushed writer drops its temp packs: nothing
 * references them yet.
 *
 * Several writers (threads or processes) may write at once; each owns its packs,
 * LMDB serialises index commits. A blob written by two writers concurrently is
 * stored twice; the index keeps the first, the other copy is garbage for prune.
 *
 * Memory: bounded: a few open packs (one per thread putting at once), fewer
 * than a batch of full ones waiting and the batches being committed (one per
 * committing thread), each pack with its entries, a 256 KiB write buffer and a
 * descriptor; the sealing buffers; and a set of recently stored ids that is
 * flushed and cleared when it reaches a fixed size. Disk: those packs as temp
 * files.
 * Thread-safety: bk_writer_put may be called from many threads at once; each
 * seals and appends to a pack of its own. flush and free: one thread.
 */
#ifndef BK_STORE_WRITER_H
#define BK_STORE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "store/repo.h"

typedef struct BkWriter BkWriter;

typedef struct {
	uint64_t blobs, new_blobs;       /* puts, and those actually stored */
	uint64_t bytes, new_bytes;       /* plaintext bytes put / newly stored */
	uint64_t stored_bytes;           /* sealed bytes written to packs */
	uint64_t packs;
} BkWriterStats;

int bk_writer_new(BkRepo *r, BkWriter **ret);
void bk_writer_free(BkWriter *w); /* accepts NULL */
/* Stores a blob (matches BkPutBlobFn with ud = writer). */
int bk_writer_put(void *writer, BkBlobType type, const void *data, size_t len, uint8_t ret_id[32]);
/* Stores a blob whose id the caller computed with bk_blob_id or bk_blob_ids (for
 * batches of chunks hashed together). */
int bk_writer_put_id(BkWriter *w, BkBlobType type, const void *data, size_t len,
		     const uint8_t id[32]);
/* Commits the open pack, if any. */
int bk_writer_flush(BkWriter *w);
const BkWriterStats *bk_writer_stats(const BkWriter *w);
/* The zstd level for this writer's blobs (default: the repository's). */
void bk_writer_set_level(BkWriter *w, int zstd_level);

#endif
