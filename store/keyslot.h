/* store/keyslot.h: key slots, the master key wrapped under a user secret.
 *
 * A repository has one or more slots at keys/<slot-id> (slot id: 16 hex digits).
 * Each wraps the same master key with XChaCha20-Poly1305 under a wrapping key
 * derived from the secret:
 *   passphrase: Argon2id (crypto_pwhash) with the salt, ops and memory limits
 *               stored in the slot, so libsodium's changing defaults never matter;
 *   key file:   BLAKE2b-256 of the key file's 32 bytes keyed with the salt (fast,
 *               for archive_command and the daemon).
 *
 * Slot format (version 1), fixed BK_KEYSLOT_LEN bytes:
 *   u8 version=1 | u8 kind | u64 created_us | salt[16] | u64 opslimit |
 *   u64 memlimit | u32 alg | nonce[24] | wrapped master key[32+16] | checksum[32]
 * The checksum is unkeyed BLAKE2b-256 of everything before it, so a damaged slot
 * (BK_E_CORRUPT) is told apart from a wrong secret (BK_E_BADKEY). The AEAD's
 * associated data is the repository id followed by every header field, so the
 * stored parameters cannot be altered.
 *
 * Secrets are held in sodium_malloc'd memory (BkSecret) and never logged.
 */
#ifndef BK_STORE_KEYSLOT_H
#define BK_STORE_KEYSLOT_H

#include <stddef.h>
#include <stdint.h>

#include "store/crypto.h"

#define BK_KEYSLOT_LEN (1 + 1 + 8 + 16 + 8 + 8 + 4 + 24 + 48 + 32)
#define BK_KEYFILE_LEN 32

typedef enum { BK_SECRET_PASSPHRASE = 1, BK_SECRET_KEYFILE = 2 } BkSecretKind;

typedef struct {
	BkSecretKind kind;
	size_t len;
	uint8_t *bytes; /* sodium_malloc'd */
} BkSecret;

/* Makes a secret from bytes (copied). Trailing newlines of a passphrase are the
 * caller's to strip. *ret freed with bk_secret_free(). */
int bk_secret_new(BkSecretKind kind, const void *bytes, size_t len, BkSecret **ret);
void bk_secret_free(BkSecret *s); /* wipes; accepts NULL */

/* Opens a file holding a secret (what: "key file", "password file", for the
 * messages) for reading, refusing what could let another user read the secret:
 * a symbolic link (-ELOOP: never followed, the file checked is the one named),
 * anything but a regular file (-EINVAL: a FIFO's mode says nothing of who
 * writes into it), a mode with any group or other bit (-EPERM naming the mode);
 * -ENOENT if absent. Never waits (a FIFO's open neither). *ret_fd (O_CLOEXEC)
 * is the caller's to close, untouched on failure. */
int bk_secret_file_open(const char *path, const char *what, int *ret_fd);

/* Reads a key file (64 hex digits and an optional newline), opened by
 * bk_secret_file_open. */
int bk_secret_from_keyfile(const char *path, BkSecret **ret);

/* Writes a fresh random key file (mode 0600, created exclusively: -EEXIST if it
 * exists) and returns it as a secret. */
int bk_keyfile_create(const char *path, BkSecret **ret);

/* Wraps master under secret into out[BK_KEYSLOT_LEN]. */
int bk_keyslot_create(const BkSecret *secret, const uint8_t master[BK_KEY_LEN],
		      const uint8_t repo_id[BK_REPO_ID_LEN], uint8_t out[BK_KEYSLOT_LEN]);

/* Checks a slot's checksum and version: 0, BK_E_CORRUPT or BK_E_VERSION. */
int bk_keyslot_verify(const uint8_t *slot, size_t len);

/* Unwraps: 0 with master filled, BK_E_BADKEY if the secret does not open it (or
 * is of the other kind), BK_E_CORRUPT/BK_E_VERSION for a damaged slot. */
int bk_keyslot_open(const uint8_t *slot, size_t len, const BkSecret *secret,
		    const uint8_t repo_id[BK_REPO_ID_LEN], uint8_t master[BK_KEY_LEN]);

/* Reads kind and creation time of a verified slot. */
void bk_keyslot_info(const uint8_t slot[BK_KEYSLOT_LEN], BkSecretKind *ret_kind,
		     int64_t *ret_created_us);

#endif
