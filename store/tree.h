/* store/tree.h: directory trees (BK_BLOB_TREE blobs).
 *
 * A tree is one directory: entries sorted by name (bytewise, unique, no '/' or
 * NUL, 1..255 bytes... names up to BK_TREE_NAME_MAX). A directory entry points at
 * its subtree blob; a file entry carries its content root node inline
 * (store/content.h); a symlink carries its target.
 *
 * Tree blob format (version 1):
 *   u8 version=1, varint count,
 *   count x {
 *     str name, u8 type (BkNodeType), varint mode (07777 bits), varint uid,
 *     varint gid, svarint mtime_sec, varint mtime_nsec (< 1e9), varint size,
 *     type-specific: DIR: id[32] subtree; SYMLINK: str target (<= BK_TREE_LINK_MAX);
 *                    FILE: content node (content.h format); CHR/BLK: varint rdev;
 *                    FIFO/SOCK: nothing
 *   }
 * Decoders reject unknown versions (BK_E_VERSION), unsorted or duplicate names,
 * bad names, unknown types, a file whose content size differs from its size, and
 * trailing bytes (BK_E_CORRUPT); also mode bits beyond 07777, uid/gid beyond 32
 * bits, size >= 2^63 (an off_t), and an empty symlink target or one holding NUL.
 * A tree blob is at most BK_TREE_MAX_BYTES. Fields that do not belong to an
 * entry's type (rdev, link, subtree, content) are neither encoded nor decoded.
 *
 * Ownership: a decoded BkTree is one owned object (names, targets and content refs
 * included), freed by bk_tree_free(). Thread-safety: none needed (pure).
 */
#ifndef BK_STORE_TREE_H
#define BK_STORE_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "store/codec.h"
#include "store/content.h"

#define BK_TREE_NAME_MAX 1024u
#define BK_TREE_LINK_MAX 4096u
#define BK_TREE_MAX_BYTES (64u << 20)

typedef enum {
	BK_NODE_FILE = 1,
	BK_NODE_DIR = 2,
	BK_NODE_SYMLINK = 3,
	BK_NODE_FIFO = 4,
	BK_NODE_CHR = 5,
	BK_NODE_BLK = 6,
	BK_NODE_SOCK = 7,
} BkNodeType;

typedef struct {
	char *name; /* NUL-terminated, owned */
	uint8_t type;
	uint32_t mode, uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size;
	uint64_t rdev;          /* CHR/BLK */
	char *link;             /* SYMLINK target, owned; NULL otherwise */
	uint8_t subtree[32];    /* DIR */
	BkContentNode content;  /* FILE */
} BkTreeEntry;

typedef struct {
	size_t count, cap;
	BkTreeEntry *entries;
} BkTree;

BkTree *bk_tree_new(void); /* empty tree, or NULL on ENOMEM */
void bk_tree_free(BkTree *t); /* frees everything; accepts NULL */
/* Appends an entry, taking ownership of e->name, e->link and e->content.refs
 * (even on failure; those fields of *e are cleared). Order does not matter:
 * bk_tree_encode sorts. */
int bk_tree_add(BkTree *t, BkTreeEntry *e);
/* Sorts entries, rejects duplicates/bad names (BK_E_USAGE naming the entry), and
 * encodes into e. */
int bk_tree_encode(BkTree *t, BkEnc *e);
int bk_tree_decode(const uint8_t *p, size_t n, BkTree **ret);
/* Binary search by name; NULL if absent. Borrowed from t. t must be sorted: a
 * decoded tree, or one encoded since its last bk_tree_add. */
const BkTreeEntry *bk_tree_find(const BkTree *t, const char *name);

#endif
