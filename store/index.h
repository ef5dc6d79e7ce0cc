/* store/index.h: the LMDB index, a cache mapping blob id -> where it is stored.
 *
 * It is never the only copy of anything: every entry can be rebuilt from the packs'
 * trailers (store/repair.h), and `check` compares the two. Databases:
 *   "blobs": blob id[32] -> pack id[32] | u32 offset | u32 sealed_len |
 *            u32 plain_len | u8 type        (little-endian, 45 bytes)
 *   "packs": pack id[32] -> u64 size | u32 blob count
 * A pack's entries and its "packs" row are committed in one write transaction,
 * after the pack file is durable (invariant 1). LMDB serialises writers across
 * processes; readers never block. Read transactions are kept short (one lookup
 * or one batch). The environment is opened with MDB_NOTLS so any thread may read,
 * and never with MDB_NOSYNC/MDB_NOMETASYNC.
 *
 * Thread-safety: a BkIndex may be shared by threads.
 */
#ifndef BK_STORE_INDEX_H
#define BK_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/pack.h"

typedef struct BkIndex BkIndex;

typedef struct {
	uint8_t pack[32];
	uint32_t offset, sealed_len, plain_len;
	uint8_t type;
} BkBlobLoc;

/* Opens (creating if missing) the environment in directory dir; read-only when
 * it cannot be written (a read-only mount, another user's repository): then
 * writes fail with an error that says so. An index it creates is durable before
 * it returns: its files, dir and dir's name in its parent synced. */
int bk_index_open(const char *dir, BkIndex **ret);
bool bk_index_readonly(const BkIndex *x);
void bk_index_close(BkIndex *x); /* accepts NULL */

/* -ENOENT if the blob is not indexed. */
int bk_index_get(BkIndex *x, const uint8_t id[32], BkBlobLoc *ret);

/* Looks up n ids in one read transaction; found[i] set true for indexed ones. */
int bk_index_has_many(BkIndex *x, const uint8_t (*ids)[32], size_t n, bool *found);

/* Records a durable pack and its blobs. Blobs already indexed elsewhere keep
 * their existing location (first writer wins; the duplicate is garbage). */
int bk_index_add_pack(BkIndex *x, const uint8_t pack[32], uint64_t size, const BkPackEntry *e,
		      size_t n);

/* -ENOENT if the pack is not indexed. */
int bk_index_get_pack(BkIndex *x, const uint8_t pack[32], uint64_t *ret_size, uint32_t *ret_count);

/* Replaces the whole index in one write transaction: it is emptied, then fill
 * (NULL: none) adds packs through bk_index_fill_pack. Readers see the old index
 * until the commit, and go on seeing it if fill fails (its error is returned) or
 * the process dies: `repair index` never leaves a half index behind. Writers wait
 * meanwhile (LMDB has one writer at a time). */
typedef struct BkIndexFill BkIndexFill;
typedef int (*BkIndexFillFn)(void *ud, BkIndexFill *f);
int bk_index_replace(BkIndex *x, BkIndexFillFn fill, void *ud);
int bk_index_fill_pack(BkIndexFill *f, const uint8_t pack[32], uint64_t size, const BkPackEntry *e,
		       size_t n);

/* Removes everything: bk_index_replace with nothing to fill. */
int bk_index_clear(BkIndex *x);

typedef int (*BkIndexPackFn)(void *ud, const uint8_t pack[32], uint64_t size, uint32_t count);
typedef int (*BkIndexBlobFn)(void *ud, const uint8_t id[32], const BkBlobLoc *loc);
/* Iterates in one read transaction; a negative callback return stops it. */
int bk_index_foreach_pack(BkIndex *x, BkIndexPackFn cb, void *ud);
int bk_index_foreach_blob(BkIndex *x, BkIndexBlobFn cb, void *ud);

/* Counts: packs, blobs. */
int bk_index_stat(BkIndex *x, uint64_t *ret_packs, uint64_t *ret_blobs);

#endif
