/* store/repo.h: a repository: its config, keys, backend and index, and reading and
 * writing blobs and records.
 *
 * Layout (DESIGN.md): config, keys/<slot>, data/<xx>/<pack>, snapshots/<id>,
 * wal/..., index/ (LMDB cache), tmp/ (in-progress packs, local only).
 *
 * config is plaintext and never secret, one "key value" per line:
 *   bunker-repository 1 | id <32 hex> | chunk-min N | chunk-avg N | chunk-max N |
 *   compression zstd:L | checksum <BLAKE2b-256 hex of the lines before>
 * An unknown format version is refused (BK_E_VERSION).
 *
 * Records (snapshots, WAL records) are single sealed blobs stored as their own
 * objects, named by their id: "<dir>/<hex id>". Reading one authenticates it
 * and checks that its content matches its name.
 *
 * Ownership: bk_repo_open/create return an owned BkRepo (bk_repo_close). Reads are
 * thread-safe (each thread gets its own zstd state); writing blobs goes through a
 * BkWriter (store/writer.h), one per thread.
 */
#ifndef BK_STORE_REPO_H
#define BK_STORE_REPO_H

#include <stdint.h>

#include "chunker/fastcdc.h"
#include "store/backend.h"
#include "store/crypto.h"
#include "store/index.h"
#include "store/keyslot.h"
#include "store/types.h"

#define BK_REPO_VERSION 1
#define BK_RECORD_MAX (64u << 20)

typedef struct {
	uint32_t chunk_min, chunk_avg, chunk_max;
	int zstd_level;
} BkRepoParams;

typedef struct {
	char *path;     /* local root */
	BkBackend *be;
	BkIndex *index;
	BkKeys *keys;
	BkRepoParams params;
	BkFastCdc cdc;
	char *tmp_dir;
} BkRepo;

/* Default parameters (64 KiB average chunks, zstd level 3). */
void bk_repo_params_default(BkRepoParams *p);

/* Creates a repository at path (which must not exist or be an empty directory)
 * with one key slot for secret. */
int bk_repo_create(const char *path, const BkSecret *secret, const BkRepoParams *p,
		   BkRepo **ret);

/* Opens a repository: BK_E_BADKEY if no slot opens with secret, -ENOENT (with a
 * detail) if path holds no repository. */
int bk_repo_open(const char *path, const BkSecret *secret, BkRepo **ret);

/* BK_REPO_FRESH_INDEX: if the index cannot be opened because its files are
 * damaged, move them aside (index.damaged-<time>) and start an empty index, for
 * `repair index` to fill. */
#define BK_REPO_FRESH_INDEX 1u
int bk_repo_open_ex(const char *path, const BkSecret *secret, unsigned flags, BkRepo **ret);
void bk_repo_close(BkRepo *r); /* accepts NULL */

/* Key slots. */
int bk_repo_key_add(BkRepo *r, const BkSecret *secret, char ret_slot[17]);
typedef int (*BkKeyFn)(void *ud, const char *slot, BkSecretKind kind, int64_t created_us,
		       int status /* 0 or the verify error */);
int bk_repo_key_list(BkRepo *r, BkKeyFn cb, void *ud);
/* Removes a slot; refuses (-EBUSY) to remove the last intact one. */
int bk_repo_key_remove(BkRepo *r, const char *slot);

/* Reads blob id through the index: authenticated, id-checked plaintext, owned by
 * the caller (free()). -ENOENT if not indexed; BK_E_CORRUPT naming pack and
 * offset if the stored bytes are wrong. Matches BkGetBlobFn with ud = repo.
 * type is the caller's: ids cover the plaintext only, so a blob stored as
 * another type holds the same bytes and is returned (opened under its own). */
int bk_repo_read_blob(void *repo, BkBlobType type, const uint8_t id[32], uint8_t **ret,
		      size_t *ret_len);
/* Reads n blobs of sizes[i] bytes each back to back into out (at least the sum
 * of sizes bytes), through a per-thread scratch buffer (no allocation per blob),
 * and checks their ids all at once (bk_blob_ids) before returning. More than
 * BK_REPO_BATCH_MAX blobs: -EINVAL. A blob the index gives another size is
 * BK_E_CORRUPT, a blob whose bytes are not its id's is BK_E_CORRUPT naming its
 * pack and offset; on any failure out holds no plaintext. */
#define BK_REPO_BATCH_MAX 64
int bk_repo_read_blobs_into(BkRepo *r, BkBlobType type, size_t n, const uint8_t (*ids)[32],
			    const uint64_t *sizes, uint8_t *out);
/* The same for blobs whose places the caller knows (loc[i]: pack, offset, sizes,
 * type; from the index or from a pack's own trailer, as check does): out holds at
 * least the sum of loc[i].plain_len bytes. */
int bk_repo_read_locs_into(BkRepo *r, size_t n, const uint8_t (*ids)[32], const BkBlobLoc *loc,
			   uint8_t *out);

/* Writes a record (create-only; an existing identical record is fine). */
int bk_repo_put_record(BkRepo *r, const char *dir, BkBlobType type, const void *plain,
		       size_t len, uint8_t ret_id[32]);
/* Reads record dir/<hex id>. */
int bk_repo_get_record(BkRepo *r, const char *dir, BkBlobType type, const uint8_t id[32],
		       uint8_t **ret, size_t *ret_len);

/* Named records: objects found by name rather than by content (the WAL archive,
 * cluster records). Sealed with id = keyed hash of the name, so a record moved to
 * another name fails to open. put is create-only: -EEXIST if the name is taken.
 * get: -ENOENT if absent. */
int bk_repo_put_named(BkRepo *r, const char *name, BkBlobType type, const void *plain,
		      size_t len);
int bk_repo_get_named(BkRepo *r, const char *name, BkBlobType type, uint8_t **ret,
		      size_t *ret_len);

/* The calling thread's sealer (zstd contexts), created on first use, freed at
 * thread exit. NULL only on out-of-memory. */
BkSealer *bk_repo_sealer(BkRepo *r);

#endif
