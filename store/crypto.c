#include "store/crypto.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "store/error.h"
#include "store/util.h"

#define KDF_CONTEXT "bunker01"
enum { KDF_ID = 1, KDF_DATA = 2, KDF_CHUNKER = 3 };
#define FLAG_ZSTD 0x01

struct BkSealer {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	int level;
};

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
	crypto_generichash(ret_id, 32, data, len, k->id_key, BK_KEY_LEN);
}

int bk_sealer_new(int zstd_level, BkSealer **ret)
{
	BkSealer *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cctx = ZSTD_createCCtx();
	s->dctx = ZSTD_createDCtx();
	s->level = zstd_level;
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
	free(s);
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
		}
	}
	if (!flags) {
		memcpy(msg + 1, plain, len);
		payload = len;
	}
	msg[0] = flags;
	out[0] = BK_SEAL_VERSION;
	randombytes_buf(out + 1, BK_NONCE_LEN);

	uint8_t ad[BK_REPO_ID_LEN + 1 + 32];
	make_ad(ad, k, type, id);
	unsigned long long clen;
	crypto_aead_xchacha20poly1305_ietf_encrypt(msg, &clen, msg, 1 + payload, ad, sizeof(ad),
						   NULL, out + 1, k->data_key);
	*ret_len = 1 + BK_NONCE_LEN + (size_t)clen;
	return 0;
}

static int open_sealed(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
		       const uint8_t *sealed, size_t sealed_len, size_t max_len, bool check_id,
		       uint8_t **ret_plain, size_t *ret_len)
{
	if (sealed_len < BK_SEAL_OVERHEAD)
		return bk_errorf(BK_E_CORRUPT, "sealed blob too short (%zu bytes)", sealed_len);
	if (sealed[0] != BK_SEAL_VERSION)
		return bk_errorf(BK_E_VERSION, "sealed blob version %u unknown", sealed[0]);
	size_t clen = sealed_len - 1 - BK_NONCE_LEN;
	uint8_t *msg = malloc(clen);
	if (!msg)
		return -ENOMEM;
	uint8_t ad[BK_REPO_ID_LEN + 1 + 32];
	make_ad(ad, k, type, id);
	unsigned long long mlen;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(msg, &mlen, NULL, sealed + 1 + BK_NONCE_LEN,
						       clen, ad, sizeof(ad), sealed + 1,
						       k->data_key) != 0) {
		free(msg);
		return bk_errorf(BK_E_CORRUPT, "blob %s: authentication failed", bk_id_hex(id).s);
	}
	uint8_t flags = msg[0];
	size_t payload = (size_t)mlen - 1;
	uint8_t *plain;
	size_t plain_len;
	if (flags & ~FLAG_ZSTD) {
		free(msg);
		return bk_errorf(BK_E_VERSION, "blob %s: unknown flags 0x%02x", bk_id_hex(id).s, flags);
	}
	if (flags & FLAG_ZSTD) {
		unsigned long long fsz = ZSTD_getFrameContentSize(msg + 1, payload);
		if (fsz == ZSTD_CONTENTSIZE_ERROR || fsz == ZSTD_CONTENTSIZE_UNKNOWN || fsz > max_len) {
			free(msg);
			return bk_errorf(BK_E_CORRUPT, "blob %s: bad compressed size", bk_id_hex(id).s);
		}
		plain = malloc(fsz ? (size_t)fsz : 1);
		if (!plain) {
			free(msg);
			return -ENOMEM;
		}
		size_t d = ZSTD_decompressDCtx(s->dctx, plain, (size_t)fsz, msg + 1, payload);
		sodium_memzero(msg, clen);
		free(msg);
		if (ZSTD_isError(d) || d != fsz) {
			free(plain);
			return bk_errorf(BK_E_CORRUPT, "blob %s: decompression failed", bk_id_hex(id).s);
		}
		plain_len = d;
	} else {
		if (payload > max_len) {
			free(msg);
			return bk_errorf(BK_E_CORRUPT, "blob %s: larger than expected", bk_id_hex(id).s);
		}
		memmove(msg, msg + 1, payload);
		plain = msg;
		plain_len = payload;
	}
	uint8_t check[32];
	if (check_id)
		bk_blob_id(k, plain, plain_len, check);
	if (check_id && sodium_memcmp(check, id, 32) != 0) {
		sodium_memzero(plain, plain_len);
		free(plain);
		return bk_errorf(BK_E_CORRUPT, "blob %s: content does not match its id", bk_id_hex(id).s);
	}
	*ret_plain = plain;
	*ret_len = plain_len;
	return 0;
}

int bk_open(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
	    const uint8_t *sealed, size_t sealed_len, size_t max_len, uint8_t **ret_plain,
	    size_t *ret_len)
{
	return open_sealed(s, k, type, id, sealed, sealed_len, max_len, true, ret_plain, ret_len);
}

int bk_open_named(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
		  const uint8_t *sealed, size_t sealed_len, size_t max_len, uint8_t **ret_plain,
		  size_t *ret_len)
{
	return open_sealed(s, k, type, id, sealed, sealed_len, max_len, false, ret_plain, ret_len);
}
