/* store/content.h: a file's or stream's content as a tree of content lists.
 *
 * A content node is a list of refs (blob id, plain size). At level 0 the refs are
 * data chunks in stream order; at level n > 0 they are content-list blobs
 * (BK_BLOB_CLIST) whose nodes are at level n-1, and a ref's size is the total plain
 * size below it. A file's root node is kept inline in its tree entry; it has at
 * most BK_CONTENT_ROOT_MAX refs. Node boundaries are content-defined (a node ends
 * after a ref whose id's first two bytes, read little-endian, are 0 mod
 * BK_CONTENT_AVG_REFS, provided the node already holds at least
 * BK_CONTENT_MIN_REFS refs; or at BK_CONTENT_MAX_REFS), so an insertion rewrites
 * only a few nodes. The minimum guarantees a fan-out of at least
 * BK_CONTENT_MIN_REFS even when every id is a boundary (a long run of one
 * repeated chunk, such as zero pages, has one id), so the depth stays within
 * BK_CONTENT_MAX_LEVEL. Reading at any offset costs one blob fetch per level:
 * O(log n). Boundaries are the builder's policy only: decoders do not check them.
 *
 * Content-list blob format (version 1):
 *   u8 version=1, u8 level, varint count (1..BK_CONTENT_MAX_REFS),
 *   count x { id[32], varint size (> 0) }
 * The same encoding holds a root inline in a tree entry, where count 0 (at level
 * 0 only) stands for an empty stream; such a node is never stored as a blob.
 * Decoders reject: unknown version (BK_E_VERSION), level > BK_CONTENT_MAX_LEVEL,
 * count out of range, zero size, sum overflowing 2^63, trailing bytes (BK_E_CORRUPT).
 * bk_content_node_decode() does not see the end of its input (it may be inline in
 * a tree): callers decoding a whole blob check bk_dec_done() for trailing bytes.
 *
 * Memory: the builder holds at most BK_CONTENT_MAX_REFS refs per level, so it is
 * bounded whatever the stream size. Thread-safety: objects are single-threaded.
 */
#ifndef BK_STORE_CONTENT_H
#define BK_STORE_CONTENT_H

#include <stdint.h>

#include "store/codec.h"
#include "store/types.h"

#define BK_CONTENT_MAX_REFS 1024u
#define BK_CONTENT_AVG_REFS 256u
#define BK_CONTENT_MIN_REFS 64u
#define BK_CONTENT_MAX_LEVEL 8u
/* The root, kept inline in a tree entry, holds at most this many refs; a longer
 * top level is stored as one more content list. This keeps what a tree builder
 * holds per file small (bounded memory for base backups of many large files). */
#define BK_CONTENT_ROOT_MAX 32u

typedef struct {
	uint8_t id[32];
	uint64_t size;
} BkContentRef;

typedef struct {
	uint8_t level;
	uint32_t count;
	BkContentRef *refs; /* owned (malloc) by whoever holds the node */
} BkContentNode;

void bk_content_node_release(BkContentNode *n); /* frees refs; accepts zeroed */
uint64_t bk_content_node_size(const BkContentNode *n); /* sum of ref sizes */

/* Encodes a node in the blob format above (also used inline in tree entries). */
int bk_content_node_encode(const BkContentNode *n, BkEnc *e);
/* Decodes a node from d (advancing it); on success *ret owns a refs array. */
int bk_content_node_decode(BkDec *d, BkContentNode *ret);

typedef struct BkContentBuilder BkContentBuilder;

/* put stores the content-list blobs as they fill. Returns 0 or -ENOMEM. */
int bk_content_builder_new(BkPutBlobFn put, void *ud, BkContentBuilder **ret);
void bk_content_builder_free(BkContentBuilder *b); /* accepts NULL */
/* Appends one data chunk (size > 0). */
int bk_content_builder_add(BkContentBuilder *b, const uint8_t id[32], uint64_t size);
/* Flushes all levels and hands out the root node (owned by the caller; an empty
 * stream gives level 0, count 0). The builder may then only be freed. */
int bk_content_builder_finish(BkContentBuilder *b, BkContentNode *ret_root);

/* Calls cb for every data chunk under root, in order. Stops at the first
 * negative return of cb or get, and returns it. Verifies that each content
 * list's level and total size match its parent's ref (BK_E_CORRUPT if not). */
typedef int (*BkChunkFn)(void *ud, const uint8_t id[32], uint64_t size, uint64_t offset);
int bk_content_walk(const BkContentNode *root, BkGetBlobFn get, void *get_ud, BkChunkFn cb,
		    void *cb_ud);

/* Finds the data chunk holding byte `offset` (< total size): its id, its start
 * offset within the stream and its size. -ERANGE if offset >= total size. */
int bk_content_seek(const BkContentNode *root, BkGetBlobFn get, void *get_ud, uint64_t offset,
		    uint8_t ret_id[32], uint64_t *ret_start, uint64_t *ret_size);

#endif
