#include "store/keyslot.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/error.h"
#include "store/fs.h"
#include "store/util.h"

#define SLOT_VERSION 1
#define OFF_KIND 1
#define OFF_CREATED 2
#define OFF_SALT 10
#define OFF_OPS 26
#define OFF_MEM 34
#define OFF_ALG 42
#define OFF_NONCE 46
#define OFF_WRAPPED 70
#define OFF_SUM 118
#define HEADER_LEN OFF_NONCE

int bk_secret_new(BkSecretKind kind, const void *bytes, size_t len, BkSecret **ret)
{
	BkSecret *s = sodium_malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->kind = kind;
	s->len = len;
	s->bytes = sodium_malloc(len ? len : 1);
	if (!s->bytes) {
		sodium_free(s);
		return -ENOMEM;
	}
	memcpy(s->bytes, bytes, len);
	*ret = s;
	return 0;
}

void bk_secret_free(BkSecret *s)
{
	if (!s)
		return;
	sodium_free(s->bytes);
	sodium_free(s);
}

int bk_secret_file_open(const char *path, const char *what, int *ret_fd)
{
	/* one open: the mode checked is the mode of the file read (O_NONBLOCK: the
	 * open of a FIFO must not wait for a writer, found by review: it hung) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 && errno == ELOOP)
		return bk_errorf(-ELOOP, "%s %s is a symbolic link (not followed)", what, path);
	if (fd < 0)
		return errno == ENOENT ? bk_errorf(-ENOENT, "%s %s does not exist", what, path)
				       : bk_errorf_code(-errno, "%s %s", what, path);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return bk_errorf(-EINVAL, "%s %s is not a regular file", what, path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return bk_errorf(-EPERM, "%s %s is readable by other users (mode %04o): chmod 600 it",
				 what, path, (unsigned)(st.st_mode & 07777));
	}
	*ret_fd = fd;
	return 0;
}

int bk_secret_from_keyfile(const char *path, BkSecret **ret)
{
	int fd;
	int r = bk_secret_file_open(path, "key file", &fd);
	if (r < 0)
		return r;
	uint8_t buf[257];
	size_t len;
	r = bk_read_full(fd, buf, sizeof(buf) - 1, &len);
	close(fd);
	if (r < 0)
		return bk_errorf_code(r, "read key file %s", path);
	buf[len] = '\0';
	/* a key file is 64 hex digits and a line break: one that fills buf is not
	 * one, whatever its first bytes (the rest of it is never read) */
	if (len == sizeof(buf) - 1)
		len = 0;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	uint8_t key[BK_KEYFILE_LEN];
	r = len == 2 * BK_KEYFILE_LEN ? bk_unhex(key, sizeof(key), (char *)buf) : -EINVAL;
	sodium_memzero(buf, sizeof(buf));
	if (r < 0)
		return bk_errorf(BK_E_BADKEY, "key file %s: not a bunker key file (64 hex digits)", path);
	r = bk_secret_new(BK_SECRET_KEYFILE, key, sizeof(key), ret);
	sodium_memzero(key, sizeof(key));
	return r;
}

int bk_keyfile_create(const char *path, BkSecret **ret)
{
	uint8_t key[BK_KEYFILE_LEN];
	char hex[2 * BK_KEYFILE_LEN + 2];
	randombytes_buf(key, sizeof(key));
	bk_hex(hex, key, sizeof(key));
	hex[2 * BK_KEYFILE_LEN] = '\n';
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int r = 0;
	if (fd < 0) {
		r = errno == EEXIST ? bk_errorf(-EEXIST, "key file %s already exists", path)
				    : bk_errorf_code(-errno, "create key file %s", path);
	} else {
		r = bk_write_all(fd, hex, 2 * BK_KEYFILE_LEN + 1);
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		close(fd);
		if (r == 0)
			r = bk_fsync_parent(path);
		if (r < 0) {
			unlink(path);
			bk_errorf_code(r, "write key file %s", path);
		}
	}
	if (r == 0)
		r = bk_secret_new(BK_SECRET_KEYFILE, key, sizeof(key), ret);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(hex, sizeof(hex));
	return r;
}

static int wrapping_key(const uint8_t *slot, const BkSecret *secret, uint8_t out[32])
{
	const uint8_t *salt = slot + OFF_SALT;
	if (secret->kind == BK_SECRET_KEYFILE) {
		crypto_generichash(out, 32, secret->bytes, secret->len, salt, 16);
		return 0;
	}
	uint64_t ops = bk_get_le64(slot + OFF_OPS), mem = bk_get_le64(slot + OFF_MEM);
	uint32_t alg = bk_get_le32(slot + OFF_ALG);
	if (alg != crypto_pwhash_ALG_ARGON2ID13 || ops < crypto_pwhash_OPSLIMIT_MIN ||
	    ops > 64 || mem < crypto_pwhash_MEMLIMIT_MIN || mem > (4ull << 30))
		return bk_errorf(BK_E_CORRUPT, "key slot has unusable Argon2id parameters");
	if (crypto_pwhash(out, 32, (const char *)secret->bytes, secret->len, salt, ops, (size_t)mem,
			  (int)alg) != 0)
		return bk_errorf(-ENOMEM, "argon2id needs %llu MiB of memory",
				 (unsigned long long)(mem >> 20));
	return 0;
}

static void make_ad(uint8_t ad[BK_REPO_ID_LEN + HEADER_LEN], const uint8_t *slot,
		    const uint8_t repo_id[BK_REPO_ID_LEN])
{
	memcpy(ad, repo_id, BK_REPO_ID_LEN);
	memcpy(ad + BK_REPO_ID_LEN, slot, HEADER_LEN);
}

int bk_keyslot_create(const BkSecret *secret, const uint8_t master[BK_KEY_LEN],
		      const uint8_t repo_id[BK_REPO_ID_LEN], uint8_t out[BK_KEYSLOT_LEN])
{
	memset(out, 0, BK_KEYSLOT_LEN);
	out[0] = SLOT_VERSION;
	out[OFF_KIND] = (uint8_t)secret->kind;
	bk_put_le64(out + OFF_CREATED, (uint64_t)bk_now_us());
	randombytes_buf(out + OFF_SALT, 16);
	bk_put_le64(out + OFF_OPS, crypto_pwhash_OPSLIMIT_INTERACTIVE);
	bk_put_le64(out + OFF_MEM, crypto_pwhash_MEMLIMIT_INTERACTIVE);
	bk_put_le32(out + OFF_ALG, crypto_pwhash_ALG_ARGON2ID13);
	randombytes_buf(out + OFF_NONCE, BK_NONCE_LEN);

	uint8_t *wk = sodium_malloc(32);
	if (!wk)
		return -ENOMEM;
	int r = wrapping_key(out, secret, wk);
	if (r == 0) {
		uint8_t ad[BK_REPO_ID_LEN + HEADER_LEN];
		make_ad(ad, out, repo_id);
		crypto_aead_xchacha20poly1305_ietf_encrypt(out + OFF_WRAPPED, NULL, master, BK_KEY_LEN,
							   ad, sizeof(ad), NULL, out + OFF_NONCE, wk);
		crypto_generichash(out + OFF_SUM, 32, out, OFF_SUM, NULL, 0);
	}
	sodium_free(wk);
	return r;
}

int bk_keyslot_verify(const uint8_t *slot, size_t len)
{
	if (len != BK_KEYSLOT_LEN)
		return bk_errorf(BK_E_CORRUPT, "key slot is %zu bytes, expected %d", len, BK_KEYSLOT_LEN);
	uint8_t sum[32];
	crypto_generichash(sum, 32, slot, OFF_SUM, NULL, 0);
	if (sodium_memcmp(sum, slot + OFF_SUM, 32) != 0)
		return bk_errorf(BK_E_CORRUPT, "key slot checksum mismatch");
	if (slot[0] != SLOT_VERSION)
		return bk_errorf(BK_E_VERSION, "key slot version %u unknown", slot[0]);
	if (slot[OFF_KIND] != BK_SECRET_PASSPHRASE && slot[OFF_KIND] != BK_SECRET_KEYFILE)
		return bk_errorf(BK_E_VERSION, "key slot kind %u unknown", slot[OFF_KIND]);
	return 0;
}

int bk_keyslot_open(const uint8_t *slot, size_t len, const BkSecret *secret,
		    const uint8_t repo_id[BK_REPO_ID_LEN], uint8_t master[BK_KEY_LEN])
{
	int r = bk_keyslot_verify(slot, len);
	if (r < 0)
		return r;
	if (slot[OFF_KIND] != (uint8_t)secret->kind)
		return bk_errorf(BK_E_BADKEY, "key slot is for a %s",
				 slot[OFF_KIND] == BK_SECRET_KEYFILE ? "key file" : "passphrase");
	uint8_t *wk = sodium_malloc(32);
	if (!wk)
		return -ENOMEM;
	r = wrapping_key(slot, secret, wk);
	if (r == 0) {
		uint8_t ad[BK_REPO_ID_LEN + HEADER_LEN];
		make_ad(ad, slot, repo_id);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(master, NULL, NULL, slot + OFF_WRAPPED, 48,
							       ad, sizeof(ad), slot + OFF_NONCE, wk) != 0)
			r = bk_errorf(BK_E_BADKEY, "key slot: wrong passphrase or key file");
	}
	sodium_free(wk);
	return r;
}

void bk_keyslot_info(const uint8_t slot[BK_KEYSLOT_LEN], BkSecretKind *ret_kind,
		     int64_t *ret_created_us)
{
	*ret_kind = (BkSecretKind)slot[OFF_KIND];
	*ret_created_us = (int64_t)bk_get_le64(slot + OFF_CREATED);
}
