/* store/crypto.h: repository keys, blob ids and sealed blobs (libsodium + zstd).
 *
 * Keys: a random 32-byte master key; subkeys derived with crypto_kdf_derive_from_key
 * under context "bunker01": 1 = id key, 2 = data key, 3 = chunker seed. BkKeys lives
 * in sodium_malloc'd (guarded, locked) memory and is wiped when freed.
 *
 * Blob id = BLAKE2b-256 keyed with the id key over the plaintext.
 *
 * Sealed blob format (version 1), BK_SEAL_OVERHEAD bytes more than its payload:
 *   u8 version=1 | nonce[24] | XChaCha20-Poly1305( u8 flags | payload ) incl. tag[16]
 * flags bit 0: payload is a zstd frame (with content size); otherwise raw.
 * Nonce: 24 random bytes for every blob (never a counter: a pattern in nonces
 * would show where each blob starts in a pack). A sealer expands one 32-byte
 * draw from the system's generator into 170 of them (randombytes_buf_deterministic)
 * and drops what is left after a fork.
 * Associated data: repository id[16] | u8 blob type | blob id[32], so a blob moved
 * to another repository, id or type fails to open.
 *
 * Opening authenticates, decompresses (bounded by a caller cap) and recomputes the
 * blob id; any failure is BK_E_CORRUPT (BK_E_VERSION for an unknown version byte).
 *
 * Thread-safety: BkKeys is read-only after creation and may be shared. A BkSealer
 * holds zstd contexts: one per thread.
 */
#ifndef BK_STORE_CRYPTO_H
#define BK_STORE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "store/types.h"

#define BK_KEY_LEN 32
#define BK_REPO_ID_LEN 16
#define BK_NONCE_LEN 24
#define BK_SEAL_VERSION 1
#define BK_SEAL_OVERHEAD (1 + BK_NONCE_LEN + 1 + 16)

typedef struct {
	uint8_t master[BK_KEY_LEN];
	uint8_t id_key[BK_KEY_LEN];
	uint8_t data_key[BK_KEY_LEN];
	uint8_t chunker_seed[BK_KEY_LEN];
	uint8_t repo_id[BK_REPO_ID_LEN];
} BkKeys;

/* Initialises libsodium; call once per process before anything else here. */
int bk_crypto_init(void);

/* Derives all subkeys from master (or from fresh random bytes when master is
 * NULL). *ret is sodium_malloc'd, freed by bk_keys_free(). */
int bk_keys_new(const uint8_t master[BK_KEY_LEN], const uint8_t repo_id[BK_REPO_ID_LEN],
		BkKeys **ret);
void bk_keys_free(BkKeys *k); /* wipes and frees; accepts NULL */

void bk_blob_id(const BkKeys *k, const void *data, size_t len, uint8_t ret_id[32]);
/* The ids of n blobs at once (ret_ids[i] = bk_blob_id of data[i], len[i]), several
 * side by side in vector registers (store/blake2b.h): for batches of chunks. */
void bk_blob_ids(const BkKeys *k, size_t n, const uint8_t *const *data, const size_t *len,
		 uint8_t (*ret_ids)[32]);

/* Per-thread zstd state plus scratch space. */
typedef struct BkSealer BkSealer;
int bk_sealer_new(int zstd_level, BkSealer **ret);
void bk_sealer_free(BkSealer *s); /* accepts NULL */
/* The zstd level the next bk_seal() uses (0: store raw). */
void bk_sealer_set_level(BkSealer *s, int zstd_level);
/* A buffer of at least n bytes for sealed bytes being read, valid until the next
 * call or bk_sealer_free(); NULL when out of memory. */
uint8_t *bk_sealer_scratch(BkSealer *s, size_t n);

/* Upper bound of a sealed blob's size for len plaintext bytes. */
size_t bk_seal_bound(size_t len);

/* Seals plain (whose id the caller computed) into out (capacity >= bk_seal_bound
 * (len)); compresses unless that does not help. *ret_len gets the sealed size. */
int bk_seal(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
	    const void *plain, size_t len, uint8_t *out, size_t *ret_len);

/* Opens a sealed blob. The plaintext (at most max_len bytes, else BK_E_CORRUPT) is
 * returned in *ret_plain, owned by the caller (free()). The id is checked. */
int bk_open(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
	    const uint8_t *sealed, size_t sealed_len, size_t max_len, uint8_t **ret_plain,
	    size_t *ret_len);

/* Like bk_open, into out (at most out_cap bytes, not overlapping sealed) without
 * allocating, and without recomputing the id: the caller must compare
 * bk_blob_ids() of the plaintext with id before using a byte of it (invariant 4),
 * which it can do for a batch of blobs at once. sealed is decrypted in place, so
 * its bytes are spent. On failure out holds no plaintext (it is wiped). For the
 * read paths that move a stream of chunks through reused buffers
 * (bk_repo_read_blobs_into). */
int bk_open_into_unverified(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
			    uint8_t *sealed, size_t sealed_len, uint8_t *out, size_t out_cap,
			    size_t *ret_len);

/* Like bk_open, but for records named by something other than their content
 * (the id is then the keyed hash of the object's name, bound as associated data):
 * authenticates without recomputing the id from the plaintext. */
int bk_open_named(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
		  const uint8_t *sealed, size_t sealed_len, size_t max_len, uint8_t **ret_plain,
		  size_t *ret_len);

#endif
