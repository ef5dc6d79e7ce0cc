/* store/types.h: the blob types. A blob's type is bound into its seal (associated
 * data), so a blob cannot be read back as another type. Values are on-disk format:
 * never renumber. */
#ifndef BK_STORE_TYPES_H
#define BK_STORE_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	BK_BLOB_DATA = 1,        /* a chunk of file or stream content */
	BK_BLOB_TREE = 2,        /* a directory: store/tree.h */
	BK_BLOB_CLIST = 3,       /* a content list node: store/content.h */
	BK_BLOB_SNAPSHOT = 4,    /* a snapshot record: store/snapshot.h */
	BK_BLOB_TRAILER = 5,     /* a pack trailer: store/pack.h */
	BK_BLOB_WAL = 6,         /* a WAL record (PostgreSQL) */
	BK_BLOB_KEY = 7,         /* a wrapped master key in a key slot */
	BK_BLOB_CLUSTER = 8,     /* a PostgreSQL cluster record (system identifier) */
	BK_BLOB_WAL_REFUSAL = 9, /* a refused WAL push (PostgreSQL, pg/walarchive.h) */
} BkBlobType;

/* Callbacks through which the pure codecs store and fetch blobs without knowing
 * about packs or the index. put: stores (or dedups) len bytes as a blob of type,
 * writes its id. get: returns an owned malloc'd copy of the blob's plaintext
 * (free()), authenticated and id-checked, or < 0 (-ENOENT, BK_E_CORRUPT...). */
typedef int (*BkPutBlobFn)(void *ud, BkBlobType type, const void *data, size_t len,
			   uint8_t ret_id[32]);
typedef int (*BkGetBlobFn)(void *ud, BkBlobType type, const uint8_t id[32], uint8_t **ret_data,
			   size_t *ret_len);

#endif
