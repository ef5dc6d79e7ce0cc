#include "store/crypto.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "store/blake2b.h"
#include "store/error.h"
#include "store/util.h"

#define KDF_CONTEXT "bunker01"
enum { KDF_ID = 1, KDF_DATA = 2, KDF_CHUNKER = 3 };
#define FLAG_ZSTD 0x01
#define NONCE_POOL 170 /* nonces per draw from the system's generator (~4 KiB) */

struct BkSealer {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	int level;
	uint8_t *scratch;
	size_t scratch_cap;
	/* random nonces, NONCE_POOL per draw from the system's generator, so that
	 * sealing a blob mostly costs no system call */
	uint8_t nonces[NONCE_POOL * BK_NONCE_LEN];
	size_t nonces_left;
	unsigned forks; /* fork_count when the pool was drawn */
};

/* A child of fork() holds a copy of every sealer: it must not use the nonces its
 * parent will use, so a sealer drops its pool after a fork. */
static volatile unsigned fork_count;
static void after_fork(void) { fork_count++; }
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_error;
static void register_atfork(void) { atfork_error = pthread_atfork(NULL, NULL, after_fork); }

/* The next unused random nonce of the sealer's pool. */
static const uint8_t *next_nonce(BkSealer *s)
{
	if (s->nonces_left == 0 || s->forks != fork_count) {
		/* one 32-byte draw from the system (libsodium reads at most 256 bytes
		 * per getrandom call), expanded with ChaCha20 */
		uint8_t seed[randombytes_SEEDBYTES];
		randombytes_buf(seed, sizeof(seed));
		randombytes_buf_deterministic(s->nonces, sizeof(s->nonces), seed);
		sodium_memzero(seed, sizeof(seed));
		s->nonces_left = NONCE_POOL;
		s->forks = fork_count;
	}
	return s->nonces + (NONCE_POOL - s->nonces_left--) * BK_NONCE_LEN;
}

int bk_crypto_init(void)
{
	if (sodium_init() < 0)
		return bk_errorf(-EIO, "libsodium failed to initialise");
	return 0;
}

int bk_keys_new(const uint8_t master[BK_KEY_LEN], const uint8_t repo_id[BK_REPO_ID_LEN],
		BkKeys **ret)
{
	BkKeys *k = sodium_malloc(sizeof(*k));
	if (!k)
		return bk_errorf(-ENOMEM, "cannot allocate secure memory for keys");
	if (master)
		memcpy(k->master, master, BK_KEY_LEN);
	else
		randombytes_buf(k->master, BK_KEY_LEN);
	memcpy(k->repo_id, repo_id, BK_REPO_ID_LEN);
	crypto_kdf_derive_from_key(k->id_key, BK_KEY_LEN, KDF_ID, KDF_CONTEXT, k->master);
	crypto_kdf_derive_from_key(k->data_key, BK_KEY_LEN, KDF_DATA, KDF_CONTEXT, k->master);
	crypto_kdf_derive_from_key(k->chunker_seed, BK_KEY_LEN, KDF_CHUNKER, KDF_CONTEXT, k->master);
	sodium_mprotect_readonly(k);
	*ret = k;
	return 0;
}

void bk_keys_free(BkKeys *k)
{
	if (k)
		sodium_free(k); /* wipes before freeing */
}

void bk_blob_id(const BkKeys *k, const void *data, size_t len, uint8_t ret_id[32])
{
	const uint8_t *msg = data;
	bk_blob_ids(k, 1, &msg, &len, (uint8_t(*)[32])ret_id);
}

void bk_blob_ids(const BkKeys *k, size_t n, const uint8_t *const *data, const size_t *len,
		 uint8_t (*ret_ids)[32])
{
	bk_blake2b_many(k->id_key, BK_KEY_LEN, n, data, len, ret_ids);
}

int bk_sealer_new(int zstd_level, BkSealer **ret)
{
	BkSealer *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cctx = ZSTD_createCCtx();
	s->dctx = ZSTD_createDCtx();
	s->level = zstd_level;
	pthread_once(&atfork_once, register_atfork);
	if (atfork_error) {
		bk_sealer_free(s);
		return bk_errorf(-atfork_error, "cannot register a fork handler");
	}
	if (!s->cctx || !s->dctx) {
		bk_sealer_free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

void bk_sealer_free(BkSealer *s)
{
	if (!s)
		return;
	ZSTD_freeCCtx(s->cctx);
	ZSTD_freeDCtx(s->dctx);
	if (s->scratch)
		sodium_memzero(s->scratch, s->scratch_cap);
	free(s->scratch);
	free(s);
}

uint8_t *bk_sealer_scratch(BkSealer *s, size_t n)
{
	if (n > s->scratch_cap) {
		size_t cap = n < (256u << 10) ? 256u << 10 : n;
		uint8_t *p = malloc(cap);
		if (!p)
			return NULL;
		if (s->scratch) /* it held plaintext: wipe it rather than let realloc drop it */
			sodium_memzero(s->scratch, s->scratch_cap);
		free(s->scratch);
		s->scratch = p;
		s->scratch_cap = cap;
	}
	return s->scratch;
}

void bk_sealer_set_level(BkSealer *s, int zstd_level) { s->level = zstd_level; }

size_t bk_seal_bound(size_t len) { return BK_SEAL_OVERHEAD + ZSTD_compressBound(len); }

static void make_ad(uint8_t ad[BK_REPO_ID_LEN + 1 + 32], const BkKeys *k, BkBlobType type,
		    const uint8_t id[32])
{
	memcpy(ad, k->repo_id, BK_REPO_ID_LEN);
	ad[BK_REPO_ID_LEN] = (uint8_t)type;
	memcpy(ad + BK_REPO_ID_LEN + 1, id, 32);
}

int bk_seal(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
	    const void *plain, size_t len, uint8_t *out, size_t *ret_len)
{
	uint8_t *msg = out + 1 + BK_NONCE_LEN; /* flags, then payload */
	size_t payload = 0;
	uint8_t flags = 0;

	if (s->level > 0 && len >= 64) {
		size_t z = ZSTD_compressCCtx(s->cctx, msg + 1, ZSTD_compressBound(len), plain, len,
					     s->level);
		if (!ZSTD_isError(z) && z < len) {
			payload = z;
			flags = FLAG_ZSTD;
		} else {
			/* stored raw: the attempt's frame (raw blocks hold plaintext) may
			 * reach past the sealed bytes; none of it stays in out */
			size_t written = ZSTD_isError(z) ? ZSTD_compressBound(len) : z;
			if (written > len)
				sodium_memzero(msg + 1 + len, written - len);
		}
	}
	if (!flags) {
		memcpy(msg + 1, plain, len);
		payload = len;
	}
	msg[0] = flags;
	out[0] = BK_SEAL_VERSION;
	memcpy(out + 1, next_nonce(s), BK_NONCE_LEN);

	uint8_t ad[BK_REPO_ID_LEN + 1 + 32];
	make_ad(ad, k, type, id);
	unsigned long long clen;
	crypto_aead_xchacha20poly1305_ietf_encrypt(msg, &clen, msg, 1 + payload, ad, sizeof(ad),
						   NULL, out + 1, k->data_key);
	*ret_len = 1 + BK_NONCE_LEN + (size_t)clen;
	return 0;
}

/* Authenticates sealed and decrypts its message into msg (clen bytes; may be
 * sealed + 1 + BK_NONCE_LEN itself, in place), then decompresses or copies the
 * payload into out (out_cap bytes) or, when out is NULL, into a buffer of exactly
 * the plaintext's size (at most out_cap) that *ret_alloc receives. */
static int open_core(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
		     bool check_id, const uint8_t *sealed, size_t sealed_len, uint8_t *msg,
		     uint8_t *out, size_t out_cap, uint8_t **ret_alloc, size_t *ret_len)
{
	if (sealed_len < BK_SEAL_OVERHEAD)
		return bk_errorf(BK_E_CORRUPT, "sealed blob too short (%zu bytes)", sealed_len);
	if (sealed[0] != BK_SEAL_VERSION)
		return bk_errorf(BK_E_VERSION, "sealed blob version %u unknown", sealed[0]);
	size_t clen = sealed_len - 1 - BK_NONCE_LEN;
	uint8_t ad[BK_REPO_ID_LEN + 1 + 32];
	make_ad(ad, k, type, id);
	unsigned long long mlen;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(msg, &mlen, NULL, sealed + 1 + BK_NONCE_LEN,
						       clen, ad, sizeof(ad), sealed + 1,
						       k->data_key) != 0)
		return bk_errorf(BK_E_CORRUPT, "blob %s: authentication failed", bk_id_hex(id).s);
	uint8_t flags = msg[0];
	const uint8_t *payload = msg + 1;
	size_t payload_len = (size_t)mlen - 1, plain_len = payload_len;
	if (flags & ~FLAG_ZSTD)
		return bk_errorf(BK_E_VERSION, "blob %s: unknown flags 0x%02x", bk_id_hex(id).s, flags);
	if (flags & FLAG_ZSTD) {
		/* exactly one zstd frame: not a skippable one, nothing after it (a frame
		 * that adds no bytes would still fit the first one's size) */
		if (payload_len < 4 || bk_get_le32(payload) != ZSTD_MAGICNUMBER ||
		    ZSTD_findFrameCompressedSize(payload, payload_len) != payload_len)
			return bk_errorf(BK_E_CORRUPT, "blob %s: payload is not one zstd frame",
					 bk_id_hex(id).s);
		unsigned long long fsz = ZSTD_getFrameContentSize(payload, payload_len);
		if (fsz == ZSTD_CONTENTSIZE_ERROR || fsz == ZSTD_CONTENTSIZE_UNKNOWN || fsz > out_cap)
			return bk_errorf(BK_E_CORRUPT, "blob %s: bad compressed size", bk_id_hex(id).s);
		plain_len = (size_t)fsz;
	} else if (payload_len > out_cap) {
		return bk_errorf(BK_E_CORRUPT, "blob %s: larger than expected", bk_id_hex(id).s);
	}
	uint8_t *plain = out ? out : malloc(plain_len ? plain_len : 1);
	if (!plain)
		return -ENOMEM;
	int e = 0;
	if (flags & FLAG_ZSTD) {
		size_t d = ZSTD_decompressDCtx(s->dctx, plain, plain_len, payload, payload_len);
		if (ZSTD_isError(d) || d != plain_len)
			e = bk_errorf(BK_E_CORRUPT, "blob %s: decompression failed", bk_id_hex(id).s);
	} else {
		memcpy(plain, payload, plain_len);
	}
	uint8_t check[32];
	if (e == 0 && check_id) {
		bk_blob_id(k, plain, plain_len, check);
		if (sodium_memcmp(check, id, 32) != 0)
			e = bk_errorf(BK_E_CORRUPT, "blob %s: content does not match its id",
				      bk_id_hex(id).s);
	}
	if (e < 0) { /* nothing of a blob that failed is left readable */
		sodium_memzero(plain, plain_len);
		if (!out)
			free(plain);
		return e;
	}
	if (!out)
		*ret_alloc = plain;
	*ret_len = plain_len;
	return 0;
}

static int open_alloc(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
		      bool check_id, const uint8_t *sealed, size_t sealed_len, size_t max_len,
		      uint8_t **ret_plain, size_t *ret_len)
{
	size_t cap = sealed_len ? sealed_len : 1;
	uint8_t *msg = malloc(cap);
	if (!msg)
		return -ENOMEM;
	int e = open_core(s, k, type, id, check_id, sealed, sealed_len, msg, NULL, max_len,
			  ret_plain, ret_len);
	sodium_memzero(msg, cap);
	free(msg);
	return e;
}

int bk_open(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
	    const uint8_t *sealed, size_t sealed_len, size_t max_len, uint8_t **ret_plain,
	    size_t *ret_len)
{
	return open_alloc(s, k, type, id, true, sealed, sealed_len, max_len, ret_plain, ret_len);
}

int bk_open_named(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
		  const uint8_t *sealed, size_t sealed_len, size_t max_len, uint8_t **ret_plain,
		  size_t *ret_len)
{
	return open_alloc(s, k, type, id, false, sealed, sealed_len, max_len, ret_plain, ret_len);
}

int bk_open_into_unverified(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
			    uint8_t *sealed, size_t sealed_len, uint8_t *out, size_t out_cap,
			    size_t *ret_len)
{
	uint8_t *msg = sealed_len >= BK_SEAL_OVERHEAD ? sealed + 1 + BK_NONCE_LEN : sealed;
	return open_core(s, k, type, id, false, sealed, sealed_len, msg, out, out_cap, NULL, ret_len);
}
