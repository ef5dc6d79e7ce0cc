/* store/snapshot.h: snapshot records.
 *
 * A snapshot record names one backup: its time, host, name (for example
 * "files/etc", "pg/main/base", "pg/main/dump/app"), kind ("files", "stdin",
 * "pg-base", "pg-dump"...), tags, the root tree, statistics, the parent it was
 * compared with, and free-form source metadata (for PostgreSQL: system
 * identifier, timeline, LSNs, server version, backup label).
 *
 * Record format (version 1), sealed as a BK_BLOB_SNAPSHOT blob whose id is the
 * snapshot id and stored at snapshots/<id hex>:
 *   u8 version=1, svarint time_us, str host, str name, str kind,
 *   varint ntags, ntags x str tag,
 *   id[32] root,
 *   varint logical_bytes, varint new_bytes, varint files, varint duration_us,
 *   u8 has_parent, [id[32] parent],
 *   varint nmeta, nmeta x { str key, str value }
 * Strings are at most BK_SNAPSHOT_STR_MAX bytes (meta values BK_SNAPSHOT_META_MAX),
 * at most BK_SNAPSHOT_MAX_ITEMS tags and meta pairs; no NUL bytes inside.
 * Decoders reject unknown versions (BK_E_VERSION) and anything malformed or
 * trailing (BK_E_CORRUPT).
 *
 * Ownership: a decoded BkSnapshot is owned, freed with bk_snapshot_free().
 */
#ifndef BK_STORE_SNAPSHOT_H
#define BK_STORE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/codec.h"

#define BK_SNAPSHOT_STR_MAX 4096u
#define BK_SNAPSHOT_META_MAX (1u << 20)
#define BK_SNAPSHOT_MAX_ITEMS 1024u

typedef struct {
	char *key, *value;
} BkKv;

typedef struct {
	int64_t time_us;
	char *host, *name, *kind;
	size_t ntags;
	char **tags;
	uint8_t root[32];
	uint64_t logical_bytes, new_bytes, files, duration_us;
	bool has_parent;
	uint8_t parent[32];
	size_t nmeta;
	BkKv *meta;
} BkSnapshot;

void bk_snapshot_free(BkSnapshot *s); /* frees all strings and arrays; accepts NULL */
int bk_snapshot_encode(const BkSnapshot *s, BkEnc *e);
int bk_snapshot_decode(const uint8_t *p, size_t n, BkSnapshot **ret);
/* The value for key, or NULL. Borrowed from s. */
const char *bk_snapshot_meta(const BkSnapshot *s, const char *key);

#endif
