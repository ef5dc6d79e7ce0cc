/* Unit tests for store/keyslot: passphrase and key-file slots round trip; a
 * wrong passphrase, a wrong key file, a secret of the other kind and a wrong
 * repository id are BK_E_BADKEY; flipping any byte of a slot is BK_E_CORRUPT
 * (the checksum), never BK_E_BADKEY and never success; header fields re-checksummed
 * by an attacker still fail (the AEAD binds them, or they are refused as
 * unusable); unknown version/kind are BK_E_VERSION; key files are created 0600
 * and exclusively, read back equal, refused when other users can read them and
 * refused when their contents are not 64 hex digits; failures leave their own
 * error detail. Argon2id runs 5
 * times. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/crypto.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/keyslot.h"
#include "store/util.h"
#include "tests/tap.h"

/* Bugs once found in store/ are pinned by regression() checks. */

/* A regression check for a bug found in store/ (why: what it was). */
static void regression(bool cond, const char *why, const char *what)
{
	(void)why;
	ok(cond, "%s", what);
}

/* Offsets from the slot format in store/keyslot.h. */
#define OFF_CREATED 2
#define OFF_OPS 26
#define OFF_MEM 34
#define OFF_ALG 42
#define OFF_SUM 118

static char tmp_root[] = "/tmp/bk-test-keyslot.XXXXXX";
static uint8_t repo_id[BK_REPO_ID_LEN], other_repo[BK_REPO_ID_LEN], master[BK_KEY_LEN];

static BkSecret *secret(BkSecretKind kind, const char *s)
{
	BkSecret *x = NULL;
	if (bk_secret_new(kind, s, strlen(s), &x) < 0)
		abort();
	return x;
}

static void resum(uint8_t slot[BK_KEYSLOT_LEN])
{
	crypto_generichash(slot + OFF_SUM, 32, slot, OFF_SUM, NULL, 0);
}

/* Opens slot with sec; checks that a failure leaves no master key behind that
 * equals the real one. */
static int open_slot(const uint8_t *slot, size_t len, const BkSecret *sec,
		     const uint8_t repo[BK_REPO_ID_LEN], bool *ret_right_key)
{
	uint8_t got[BK_KEY_LEN];
	memset(got, 0xee, sizeof(got));
	int r = bk_keyslot_open(slot, len, sec, repo, got);
	if (ret_right_key)
		*ret_right_key = memcmp(got, master, BK_KEY_LEN) == 0;
	return r;
}

/* Flips every byte of slot in turn: each must fail with BK_E_CORRUPT. */
static size_t flip_every_byte(const uint8_t slot[BK_KEYSLOT_LEN], const BkSecret *sec)
{
	uint8_t copy[BK_KEYSLOT_LEN];
	size_t bad = 0;
	for (size_t i = 0; i < BK_KEYSLOT_LEN; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			memcpy(copy, slot, BK_KEYSLOT_LEN);
			copy[i] ^= (uint8_t)(1u << bit);
			bool right = false;
			int v = bk_keyslot_verify(copy, sizeof(copy)), r = v;
			/* only once verify refused: a passing verify would cost an Argon2id run */
			if (v == BK_E_CORRUPT)
				r = open_slot(copy, sizeof(copy), sec, repo_id, &right);
			if (r != BK_E_CORRUPT || v != BK_E_CORRUPT || right) {
				if (bad++ < 5)
					diag("byte %zu bit %u: open %d, verify %d", i, bit, r, v);
			}
		}
	}
	return bad;
}

static void test_passphrase(void)
{
	BkSecret *pw = secret(BK_SECRET_PASSPHRASE, "correct horse battery staple");
	BkSecret *wrong = secret(BK_SECRET_PASSPHRASE, "correct horse battery stapler");
	BkSecret *as_keyfile = secret(BK_SECRET_KEYFILE, "correct horse battery staple");
	uint8_t slot[BK_KEYSLOT_LEN];
	bool right = false;

	int64_t before = bk_now_us();
	uint64_t t0 = bk_mono_us();
	is_int(bk_keyslot_create(pw, master, repo_id, slot), 0, "passphrase slot created");
	diag("argon2id (interactive limits) took %.3f s", (double)(bk_mono_us() - t0) / 1e6);
	is_int(bk_keyslot_verify(slot, sizeof(slot)), 0, "slot verifies");
	BkSecretKind kind;
	int64_t created;
	bk_keyslot_info(slot, &kind, &created);
	ok(kind == BK_SECRET_PASSPHRASE && created >= before && created <= bk_now_us(),
	   "slot info: passphrase kind, creation time now");
	ok(bk_get_le64(slot + OFF_OPS) == crypto_pwhash_OPSLIMIT_INTERACTIVE &&
		   bk_get_le64(slot + OFF_MEM) == crypto_pwhash_MEMLIMIT_INTERACTIVE &&
		   bk_get_le32(slot + OFF_ALG) == crypto_pwhash_ALG_ARGON2ID13,
	   "Argon2id parameters stored in the slot");
	ok(memmem(slot, sizeof(slot), master, BK_KEY_LEN) == NULL &&
		   memmem(slot, sizeof(slot), pw->bytes, pw->len) == NULL,
	   "neither the master key nor the passphrase appears in the slot");

	is_int(open_slot(slot, sizeof(slot), pw, repo_id, &right), 0, "right passphrase opens");
	ok(right, "... and yields the master key");
	is_int(open_slot(slot, sizeof(slot), wrong, repo_id, &right), BK_E_BADKEY,
	       "wrong passphrase: BK_E_BADKEY");
	ok(!right, "... and no master key");
	is_int(open_slot(slot, sizeof(slot), pw, other_repo, &right), BK_E_BADKEY,
	       "right passphrase, other repository id: BK_E_BADKEY");
	is_int(open_slot(slot, sizeof(slot), as_keyfile, repo_id, &right), BK_E_BADKEY,
	       "key-file secret on a passphrase slot: BK_E_BADKEY");

	/* damage never costs an Argon2id run: the checksum catches it first */
	uint64_t t1 = bk_mono_us();
	is_int(flip_every_byte(slot, pw), 0,
	       "every bit flip of a passphrase slot: BK_E_CORRUPT, never BADKEY or success");
	diag("%d flips took %.3f s", BK_KEYSLOT_LEN * 8, (double)(bk_mono_us() - t1) / 1e6);

	/* Argon2id limits rewritten by someone who also fixes the checksum */
	uint8_t copy[BK_KEYSLOT_LEN];
	memcpy(copy, slot, sizeof(copy));
	bk_put_le64(copy + OFF_MEM, 1ull << 40);
	resum(copy);
	is_int(open_slot(copy, sizeof(copy), pw, repo_id, NULL), BK_E_CORRUPT,
	       "absurd memory limit (1 TiB) refused before running Argon2id");
	memcpy(copy, slot, sizeof(copy));
	bk_put_le64(copy + OFF_OPS, 1000000);
	resum(copy);
	is_int(open_slot(copy, sizeof(copy), pw, repo_id, NULL), BK_E_CORRUPT,
	       "absurd ops limit refused");
	memcpy(copy, slot, sizeof(copy));
	bk_put_le32(copy + OFF_ALG, crypto_pwhash_ALG_ARGON2I13);
	resum(copy);
	is_int(open_slot(copy, sizeof(copy), pw, repo_id, NULL), BK_E_CORRUPT,
	       "another algorithm refused");
	memcpy(copy, slot, sizeof(copy));
	bk_put_le64(copy + OFF_OPS, crypto_pwhash_OPSLIMIT_INTERACTIVE + 1);
	resum(copy);
	is_int(open_slot(copy, sizeof(copy), pw, repo_id, &right), BK_E_BADKEY,
	       "weaker/stronger limits rewritten with a fixed checksum do not open (AD binds them)");

	bk_secret_free(pw);
	bk_secret_free(wrong);
	bk_secret_free(as_keyfile);
}

static void test_keyfile_slot(void)
{
	uint8_t kbytes[BK_KEYFILE_LEN];
	randombytes_buf(kbytes, sizeof(kbytes));
	BkSecret *kf = NULL, *kf2 = NULL, *other = NULL, *pw = secret(BK_SECRET_PASSPHRASE, "pw");
	bk_secret_new(BK_SECRET_KEYFILE, kbytes, sizeof(kbytes), &kf);
	bk_secret_new(BK_SECRET_KEYFILE, kbytes, sizeof(kbytes), &kf2);
	kbytes[0] ^= 1;
	bk_secret_new(BK_SECRET_KEYFILE, kbytes, sizeof(kbytes), &other);
	uint8_t slot[BK_KEYSLOT_LEN], slot2[BK_KEYSLOT_LEN];
	bool right = false;

	uint64_t t0 = bk_mono_us();
	is_int(bk_keyslot_create(kf, master, repo_id, slot), 0, "key-file slot created");
	ok(bk_mono_us() - t0 < 100000, "key-file slot is fast (no Argon2id)");
	BkSecretKind kind;
	int64_t created;
	bk_keyslot_info(slot, &kind, &created);
	is_int(kind, BK_SECRET_KEYFILE, "slot info: key-file kind");
	is_int(open_slot(slot, sizeof(slot), kf2, repo_id, &right), 0,
	       "same key-file bytes open the slot");
	ok(right, "... and yield the master key");
	is_int(open_slot(slot, sizeof(slot), other, repo_id, &right), BK_E_BADKEY,
	       "key file differing in one bit: BK_E_BADKEY");
	ok(!right, "... and no master key");
	is_int(open_slot(slot, sizeof(slot), kf, other_repo, &right), BK_E_BADKEY,
	       "other repository id: BK_E_BADKEY");
	is_int(open_slot(slot, sizeof(slot), pw, repo_id, &right), BK_E_BADKEY,
	       "passphrase secret on a key-file slot: BK_E_BADKEY");

	/* the program prints bk_error_detail() for a failure: it must describe this
	 * one, not whatever an earlier call left behind */
	bk_errorf(-EIO, "stale detail");
	open_slot(slot, sizeof(slot), other, repo_id, NULL);
	regression(strcmp(bk_error_detail(), "stale detail") != 0,
	     "store/keyslot.c bk_keyslot_open returns BK_E_BADKEY without bk_errorf (wrong "
	     "secret and wrong kind)",
	     "BK_E_BADKEY (wrong key file) sets its own error detail");
	bk_errorf(-EIO, "stale detail");
	open_slot(slot, sizeof(slot), pw, repo_id, NULL);
	regression(strcmp(bk_error_detail(), "stale detail") != 0,
	     "store/keyslot.c bk_keyslot_open returns BK_E_BADKEY without bk_errorf (wrong "
	     "secret and wrong kind)",
	     "BK_E_BADKEY (secret of the other kind) sets its own error detail");
	bk_errorf(-EIO, "stale detail");
	uint8_t damaged[BK_KEYSLOT_LEN];
	memcpy(damaged, slot, sizeof(damaged));
	damaged[50] ^= 1;
	open_slot(damaged, sizeof(damaged), kf, repo_id, NULL);
	ok(strstr(bk_error_detail(), "checksum") != NULL, "BK_E_CORRUPT names the checksum");

	/* a second slot with the same key file wraps differently (fresh salt, nonce) */
	is_int(bk_keyslot_create(kf, master, repo_id, slot2), 0, "second key-file slot created");
	ok(memcmp(slot + 10, slot2 + 10, BK_KEYSLOT_LEN - 10) != 0, "fresh salt and nonce");
	is_int(open_slot(slot2, sizeof(slot2), kf, repo_id, &right), 0, "second slot opens");
	ok(right, "... to the same master key");

	is_int(flip_every_byte(slot, kf), 0,
	       "every bit flip of a key-file slot: BK_E_CORRUPT, never BADKEY or success");
	size_t bad = 0;
	for (size_t len = 0; len < BK_KEYSLOT_LEN + 2; len++) {
		uint8_t big[BK_KEYSLOT_LEN + 2] = { 0 };
		memcpy(big, slot, BK_MIN(len, (size_t)BK_KEYSLOT_LEN));
		if (len != BK_KEYSLOT_LEN && open_slot(big, len, kf, repo_id, NULL) != BK_E_CORRUPT)
			bad++;
	}
	is_int(bad, 0, "every wrong slot length: BK_E_CORRUPT");

	/* re-checksummed header changes */
	uint8_t copy[BK_KEYSLOT_LEN];
	memcpy(copy, slot, sizeof(copy));
	bk_put_le64(copy + OFF_CREATED, 1);
	resum(copy);
	is_int(open_slot(copy, sizeof(copy), kf, repo_id, &right), BK_E_BADKEY,
	       "creation time rewritten with a fixed checksum does not open (AD binds it)");
	ok(!right, "... and yields no master key");
	memcpy(copy, slot, sizeof(copy));
	copy[0] = 2;
	resum(copy);
	is_int(bk_keyslot_verify(copy, sizeof(copy)), BK_E_VERSION, "version 2: BK_E_VERSION");
	is_int(open_slot(copy, sizeof(copy), kf, repo_id, NULL), BK_E_VERSION,
	       "version 2 does not open");
	memcpy(copy, slot, sizeof(copy));
	copy[1] = 3;
	resum(copy);
	is_int(open_slot(copy, sizeof(copy), kf, repo_id, NULL), BK_E_VERSION,
	       "unknown kind 3: BK_E_VERSION");
	memcpy(copy, slot, sizeof(copy));
	copy[1] = BK_SECRET_PASSPHRASE;
	resum(copy);
	is_int(open_slot(copy, sizeof(copy), kf, repo_id, NULL), BK_E_BADKEY,
	       "kind switched to passphrase: a key file no longer opens it");

	bk_secret_free(kf);
	bk_secret_free(kf2);
	bk_secret_free(other);
	bk_secret_free(pw);
}

static char *path_in_tmp(const char *name)
{
	char *p = bk_path_join(tmp_root, name);
	if (!p)
		abort();
	return p;
}

static void test_keyfiles(void)
{
	char *path = path_in_tmp("key");
	BkSecret *made = NULL, *read_back = NULL, *again = NULL;
	is_int(bk_keyfile_create(path, &made), 0, "key file created");
	struct stat st;
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "key file has mode 0600 (got %04o)",
	   (unsigned)(st.st_mode & 07777));
	size_t len = 0;
	FILE *f = fopen(path, "r");
	char text[200] = { 0 };
	len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	if (f)
		fclose(f);
	uint8_t raw[BK_KEYFILE_LEN];
	text[64] = '\0';
	ok(len == 65 && bk_unhex(raw, sizeof(raw), text) == 0, "key file is 64 hex digits + newline");
	ok(made && made->kind == BK_SECRET_KEYFILE && made->len == BK_KEYFILE_LEN &&
		   memcmp(made->bytes, raw, BK_KEYFILE_LEN) == 0,
	   "returned secret is the file's key");

	is_int(bk_secret_from_keyfile(path, &read_back), 0, "key file reads back");
	ok(read_back && read_back->len == made->len &&
		   memcmp(read_back->bytes, made->bytes, made->len) == 0 &&
		   read_back->kind == BK_SECRET_KEYFILE,
	   "... with the same key");

	is_int(bk_keyfile_create(path, &again), -EEXIST, "existing key file refused: -EEXIST");
	BkSecret *after = NULL;
	ok(bk_secret_from_keyfile(path, &after) == 0 &&
		   memcmp(after->bytes, made->bytes, made->len) == 0,
	   "... and left unchanged");
	bk_secret_free(after);

	/* a slot made with the created key file opens with the read-back one */
	uint8_t slot[BK_KEYSLOT_LEN], got[BK_KEY_LEN];
	bk_keyslot_create(made, master, repo_id, slot);
	ok(bk_keyslot_open(slot, sizeof(slot), read_back, repo_id, got) == 0 &&
		   memcmp(got, master, BK_KEY_LEN) == 0,
	   "slot from the created key file opens with the file read back");

	BkSecret *x = NULL;
	ok(chmod(path, 0644) == 0 && bk_secret_from_keyfile(path, &x) == -EPERM,
	   "mode 0644 refused with -EPERM");
	ok(strstr(bk_error_detail(), path) != NULL && strstr(bk_error_detail(), "0644") != NULL,
	   "detail names the path and the mode");
	ok(chmod(path, 0640) == 0 && bk_secret_from_keyfile(path, &x) == -EPERM,
	   "mode 0640 refused with -EPERM");
	ok(chmod(path, 0604) == 0 && bk_secret_from_keyfile(path, &x) == -EPERM,
	   "mode 0604 refused with -EPERM");
	ok(chmod(path, 0400) == 0 && bk_secret_from_keyfile(path, &x) == 0,
	   "mode 0400 accepted");
	bk_secret_free(x);
	x = NULL;
	char *missing = path_in_tmp("missing");
	is_int(bk_secret_from_keyfile(missing, &x), -ENOENT, "missing key file: -ENOENT");
	char *dir_key = path_in_tmp("nodir/key");
	is_int(bk_keyfile_create(dir_key, &x), -ENOENT, "key file in a missing directory: -ENOENT");

	char hex[80];
	bk_hex(hex, made->bytes, BK_KEYFILE_LEN);
	char *g = path_in_tmp("garbage");
	struct {
		const char *name, *text;
		size_t len;
		int want;
	} cases[] = {
		{ "no newline", hex, 64, 0 },
		{ "CRLF", NULL, 0, 0 },
		{ "empty", "", 0, BK_E_BADKEY },
		{ "63 digits", hex, 63, BK_E_BADKEY },
		{ "65 digits", NULL, 0, BK_E_BADKEY },
		{ "a non-hex digit", NULL, 0, BK_E_BADKEY },
		{ "a NUL inside", NULL, 0, BK_E_BADKEY },
		{ "binary key", (const char *)made->bytes, BK_KEYFILE_LEN, BK_E_BADKEY },
		{ "leading space", NULL, 0, BK_E_BADKEY },
		{ "text", "this is not a key file at all, it is a sentence long enough\n", 61,
		  BK_E_BADKEY },
	};
	char crlf[160], d65[160], nonhex[160], nul[160], lead[160];
	snprintf(crlf, sizeof(crlf), "%s\r\n", hex);
	cases[1].text = crlf;
	cases[1].len = 66;
	snprintf(d65, sizeof(d65), "%s0\n", hex);
	cases[4].text = d65;
	cases[4].len = 66;
	snprintf(nonhex, sizeof(nonhex), "%s\n", hex);
	nonhex[10] = 'g';
	cases[5].text = nonhex;
	cases[5].len = 65;
	snprintf(nul, sizeof(nul), "%s\n", hex);
	nul[20] = '\0';
	cases[6].text = nul;
	cases[6].len = 65;
	snprintf(lead, sizeof(lead), " %s", hex);
	cases[8].text = lead;
	cases[8].len = 65;
	for (size_t i = 0; i < BK_ARRAY_SIZE(cases); i++) {
		tap_write_file(g, cases[i].text, cases[i].len, 0600);
		x = NULL;
		int r = bk_secret_from_keyfile(g, &x);
		is_int(r, cases[i].want, "key file with %s: %s", cases[i].name,
		       cases[i].want ? "BK_E_BADKEY" : "accepted");
		if (r == 0)
			ok(memcmp(x->bytes, made->bytes, BK_KEYFILE_LEN) == 0, "... same key");
		bk_secret_free(x);
	}
	/* a big file is refused without reading it all */
	char big[4096];
	memset(big, 'a', sizeof(big));
	tap_write_file(g, big, sizeof(big), 0600);
	x = NULL;
	ok(bk_secret_from_keyfile(g, &x) < 0 && x == NULL, "4 KiB key file refused");
	/* the key and enough line breaks to fill what is read, then anything: the
	 * rest was never looked at (found by review: accepted) */
	memset(big, '\n', sizeof(big));
	memcpy(big, hex, 64);
	memcpy(big + 300, "not a key file", 14);
	tap_write_file(g, big, 314, 0600);
	x = NULL;
	is_int(bk_secret_from_keyfile(g, &x), BK_E_BADKEY,
	       "key file with text after 236 line breaks: BK_E_BADKEY");
	bk_secret_free(x);

	unlink(g);
	unlink(path);
	free(g);
	free(missing);
	free(dir_key);
	free(path);
	bk_secret_free(made);
	bk_secret_free(read_back);
	bk_secret_free(NULL);
}

int main(void)
{
	if (bk_crypto_init() < 0 || !mkdtemp(tmp_root)) {
		ok(false, "setup");
		tap_done();
		return 1;
	}
	umask(022);
	randombytes_buf(master, sizeof(master));
	randombytes_buf(repo_id, sizeof(repo_id));
	memcpy(other_repo, repo_id, sizeof(repo_id));
	other_repo[15] ^= 0x80;

	test_passphrase();
	test_keyfile_slot();
	test_keyfiles();
	tap_remove_tree(tmp_root);
	return tap_done();
}
