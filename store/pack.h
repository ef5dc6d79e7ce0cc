/* store/pack.h: packs, the immutable files that hold sealed blobs.
 *
 * Pack format (version 1):
 *   header  "BKPACK" 0x00 0x01                      (8 bytes; last byte = version)
 *   blobs   sealed blobs back to back (store/crypto.h)
 *   trailer one sealed BK_BLOB_TRAILER blob listing every blob
 *   footer  u32 trailer sealed length | trailer id[32] | "BKPKEND1"   (44 bytes)
 * Trailer plaintext: u8 version=1 | varint count | count x { u8 type | id[32] |
 *   varint offset | varint sealed_len | varint plain_len }, offsets ascending,
 *   non-overlapping, inside the blob area.
 * Pack id = unkeyed BLAKE2b-256 of the whole file, stored as data/<xx>/<hex id>,
 * so any copy is checked without a key. A pack is self-describing: the index can be
 * rebuilt from packs alone. Blob sizes live only inside the encrypted trailer.
 *
 * A BkPackWriter appends to a temp file it owns under tmp_dir. Its id is hashed
 * one of two ways: as the bytes are written (libsodium's stream), which costs
 * nothing at the end, for a pack finished alone when latency counts (wal-push);
 * or at the end, with other packs: bk_pack_writers_finish() writes each one's
 * trailer and footer and hashes those not hashed as written side by side, one
 * BLAKE2b lane per pack, reading them back in pieces (store/blake2b.h; on these
 * machines 8 packs hash in less than the time of three alone). It then hands
 * out the temp paths, which the caller commits (fsync, rename, directory fsync)
 * through the backend.
 * Freed unfinished, a writer unlinks its temp file.
 * Memory: the entry list, bounded by the pack size; finishing, 256 KiB a pack
 * hashed at once. One thread per writer.
 */
#ifndef BK_STORE_PACK_H
#define BK_STORE_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/backend.h"
#include "store/crypto.h"
#include "store/types.h"

#define BK_PACK_HEADER_LEN 8
#define BK_PACK_FOOTER_LEN 44
#define BK_PACK_TARGET (16u << 20)
#define BK_PACK_MAX_BLOB (64u << 20)    /* largest plaintext blob */
#define BK_PACK_MAX_SIZE (1u << 31)     /* refuse packs larger than this */
#define BK_PACK_MAX_ENTRIES (1u << 20)

typedef struct {
	uint8_t type;
	uint8_t id[32];
	uint32_t offset, sealed_len, plain_len;
} BkPackEntry;

typedef struct BkPackWriter BkPackWriter;

/* hash_as_written: see above (true: the id costs ~1 s a GB as bytes are added;
 * false: a third of that, at finish, in a batch of packs). */
int bk_pack_writer_new(const char *tmp_dir, bool hash_as_written, BkPackWriter **ret);
void bk_pack_writer_free(BkPackWriter *w); /* unlinks an unfinished temp file */
int bk_pack_writer_add(BkPackWriter *w, BkBlobType type, const uint8_t id[32],
		       const uint8_t *sealed, size_t sealed_len, size_t plain_len);
uint64_t bk_pack_writer_size(const BkPackWriter *w);
size_t bk_pack_writer_count(const BkPackWriter *w);
/* Entries so far, borrowed until the next add or free. */
const BkPackEntry *bk_pack_writer_entries(const BkPackWriter *w);
/* Completes n packs (1..BK_PACK_FINISH_MAX), hashing them together. On success
 * ret_ids[i] is pack i's id and ret_tmp_paths[i] its closed temp file (owned by
 * the caller, free()); each writer keeps its entries (bk_pack_writer_entries)
 * until freed. On failure no path is handed out and the writers may only be
 * freed (which removes their temp files). */
#define BK_PACK_FINISH_MAX 32
int bk_pack_writers_finish(BkPackWriter *const *w, size_t n, BkSealer *s, const BkKeys *k,
			   uint8_t (*ret_ids)[32], char **ret_tmp_paths);

/* Object name for a pack id: "data/xx/<hex>" into out[80]. */
void bk_pack_name(const uint8_t pack_id[32], char out[80]);
/* Parses a pack object name back into its id: -EINVAL if it is not one. */
int bk_pack_name_parse(const char *name, uint8_t ret_id[32]);

/* Parses a trailer's plaintext (pure; the fuzz target). pack_size bounds the
 * offsets. *ret is malloc'd (owned by the caller). */
int bk_pack_trailer_decode(const uint8_t *p, size_t len, uint64_t pack_size, BkPackEntry **ret,
			   size_t *ret_n);

/* Reads and authenticates the footer and trailer of pack `name` (size bytes). */
int bk_pack_read_trailer(BkBackend *be, const char *name, uint64_t size, BkSealer *s,
			 const BkKeys *k, BkPackEntry **ret, size_t *ret_n);

#endif
