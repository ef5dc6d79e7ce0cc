/* Unit tests for store/crypto: subkey derivation and blob ids pinned by golden
 * vectors; blob ids keyed; seal/open round trips (empty, small, 64 KiB
 * compressible and incompressible, uncompressed sealer); compression happens
 * when it helps and never grows a blob; fresh nonces (within a sealer, between
 * sealers, and in a forked child holding a copy of its parent's sealer); every single-bit flip of a
 * small sealed blob and a sample of a 64 KiB one refused (BK_E_VERSION for the
 * version byte, BK_E_CORRUPT elsewhere) without returning data; every truncation
 * and an extension refused; wrong type, id, repository id or key refused; the
 * max_len cap on both the raw and the zstd path; and hand-made seals (built with
 * libsodium from the documented format) with unknown flags, bad zstd frames and
 * content that does not match its id refused; bk_open_named opens a record under
 * its name's id and still refuses another name, type, repository, a short cap and
 * every bit flip. bk_open_into_unverified (in place, into a caller's buffer),
 * followed by the id check its callers make with bk_blob_ids, is held to the same
 * results as bk_open on every one of these inputs. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "store/crypto.h"
#include "store/error.h"
#include "store/util.h"
#include "tests/tap.h"

/* Golden vectors, frozen: if one changes, the KDF context, a subkey id or the
 * blob id function changed, and every existing repository became unreadable.
 * Master key 00 01 .. 1f, repository id a0 a1 .. af. The ids and subkeys were
 * cross-checked with Python's hashlib.blake2b (crypto_kdf_derive_from_key is
 * BLAKE2b keyed with the master, salt = le64 subkey id, person = "bunker01"). */
#define GOLDEN_INPUT "bunker golden blob id v1"
static const char golden_blob_id[] =
	"968accfb2474eac6ebf8a1adb7686d2257629832551503162d5dc5e30def991d";
static const char golden_blob_id_empty[] =
	"ca97fe5ded59794e5051d40d67cef693294e273fb48b867c6662fd5cb5872e38";
static const char golden_data_key[] =
	"b579b4a30215c4b167ee457dc4a6ba45da8e304f5152e10ad3325d61d086b070";
static const char golden_chunker_seed[] =
	"a575b83a1293a2a4424c50002b4af320a0f062a86d80d088f2b36e9ff6fb8c10";
/* A sealed DATA blob of "hello, bunker" (raw payload, flags 0) and one of 200
 * bytes of "ab" (zstd payload, flags 1), made once by bk_seal under the golden
 * keys: pins the seal layout and associated data. */
static const char golden_sealed_raw[] =
	"01f5d4059c91c743e0d49db417a69feea23b99ccd1c6502af8cc1e6f3405f139"
	"7c488ee78f8f58dfa3a26df77e84e08739307bae8021df";
static const char golden_sealed_zstd[] =
	"01b5db58d7b56c9cb812f0b5b32b2631fbfd9a680d8f83f27c468f96276ed478"
	"cb687278ac8321b72db51aea187250b8381d559a6a788f6868f71b7e";

static BkKeys *fixed_keys(uint8_t master_base, uint8_t repo_base)
{
	uint8_t master[BK_KEY_LEN], repo[BK_REPO_ID_LEN];
	for (size_t i = 0; i < sizeof(master); i++)
		master[i] = (uint8_t)(master_base + i);
	for (size_t i = 0; i < sizeof(repo); i++)
		repo[i] = (uint8_t)(repo_base + i);
	BkKeys *k = NULL;
	if (bk_keys_new(master, repo, &k) < 0)
		abort();
	return k;
}

static uint8_t *unhex_alloc(const char *hex, size_t *ret_len)
{
	size_t n = strlen(hex) / 2;
	uint8_t *p = malloc(n ? n : 1);
	if (!p || bk_unhex(p, n, hex) < 0)
		abort();
	*ret_len = n;
	return p;
}

static bool hex_is(const uint8_t *p, size_t n, const char *want)
{
	char got[2 * 64 + 1];
	if (n > 64)
		abort();
	bk_hex(got, p, n);
	if (strcmp(got, want) != 0) {
		diag("got  %s", got);
		diag("want %s", want);
		return false;
	}
	return true;
}

/* Seals into a fresh buffer of bk_seal_bound(len) bytes. */
static uint8_t *seal_alloc(BkSealer *s, const BkKeys *k, BkBlobType type, const void *p,
			   size_t len, uint8_t id[32], size_t *ret_len)
{
	bk_blob_id(k, p, len, id);
	uint8_t *out = malloc(bk_seal_bound(len));
	if (!out || bk_seal(s, k, type, id, p, len, out, ret_len) < 0)
		abort();
	return out;
}

/* Opens and checks the result; NULL plaintext on failure. bk_open_into_unverified (on a
 * copy, since it decrypts in place, into a buffer of max_len bytes) must agree
 * with bk_open on every input: 3 when it does not. */
static int open_check(BkSealer *s, const BkKeys *k, BkBlobType type, const uint8_t id[32],
		      const uint8_t *sealed, size_t sealed_len, size_t max_len, const void *want,
		      size_t want_len)
{
	uint8_t *copy = malloc(sealed_len ? sealed_len : 1), *out = malloc(max_len ? max_len : 1);
	size_t out_len = 0;
	memcpy(copy, sealed, sealed_len);
	int r_into = bk_open_into_unverified(s, k, type, id, copy, sealed_len, out, max_len,
					     &out_len);
	if (r_into == 0) { /* what its callers do before using the bytes */
		uint8_t got[1][32];
		const uint8_t *ptr[1] = { out };
		bk_blob_ids(k, 1, ptr, &out_len, got);
		if (sodium_memcmp(got[0], id, 32) != 0)
			r_into = BK_E_CORRUPT;
	}
	bool into_same = r_into == 0 && out_len == want_len &&
			 (want_len == 0 || memcmp(out, want, want_len) == 0);
	free(copy);
	free(out);

	uint8_t *plain = NULL;
	size_t plen = 12345;
	int r = bk_open(s, k, type, id, sealed, sealed_len, max_len, &plain, &plen);
	if (r == 0) {
		bool same = plen == want_len && (want_len == 0 || memcmp(plain, want, want_len) == 0);
		free(plain);
		return !same ? 1 : !into_same ? 3 : 0;
	}
	if (plain != NULL || plen != 12345) /* output untouched on failure */
		return 2;
	return r_into != r ? 3 : r;
}

/* Builds a sealed blob by hand from the documented format: u8 version | nonce |
 * AEAD(u8 flags | payload) with AD = repo id | u8 type | id. */
static size_t seal_by_hand(const BkKeys *k, BkBlobType type, const uint8_t id[32], uint8_t flags,
			   const void *payload, size_t len, uint8_t *out)
{
	uint8_t *msg = malloc(len + 1);
	msg[0] = flags;
	memcpy(msg + 1, payload, len);
	uint8_t ad[BK_REPO_ID_LEN + 1 + 32];
	memcpy(ad, k->repo_id, BK_REPO_ID_LEN);
	ad[BK_REPO_ID_LEN] = (uint8_t)type;
	memcpy(ad + BK_REPO_ID_LEN + 1, id, 32);
	out[0] = BK_SEAL_VERSION;
	randombytes_buf(out + 1, BK_NONCE_LEN);
	unsigned long long clen;
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + BK_NONCE_LEN, &clen, msg, len + 1, ad,
						   sizeof(ad), NULL, out + 1, k->data_key);
	free(msg);
	return 1 + BK_NONCE_LEN + (size_t)clen;
}

static void test_keys_and_ids(void)
{
	BkKeys *a = fixed_keys(0x00, 0xa0), *a2 = fixed_keys(0x00, 0xa0);
	BkKeys *b = fixed_keys(0x01, 0xa0), *a_other_repo = fixed_keys(0x00, 0xb0);
	uint8_t id_a[32], id_a2[32], id_b[32], id_r[32], id_plain[32];
	const char *in = GOLDEN_INPUT;

	bk_blob_id(a, in, strlen(in), id_a);
	ok(hex_is(id_a, 32, golden_blob_id), "golden blob id");
	bk_blob_id(a, "", 0, id_r);
	ok(hex_is(id_r, 32, golden_blob_id_empty), "golden blob id of the empty blob");
	ok(hex_is(a->data_key, 32, golden_data_key), "golden data key (KDF subkey 2)");
	ok(hex_is(a->chunker_seed, 32, golden_chunker_seed), "golden chunker seed (KDF subkey 3)");

	bk_blob_id(a2, in, strlen(in), id_a2);
	ok(memcmp(id_a, id_a2, 32) == 0, "same key, same input: same id");
	bk_blob_id(b, in, strlen(in), id_b);
	ok(memcmp(id_a, id_b, 32) != 0, "different master key: different id");
	bk_blob_id(a_other_repo, in, strlen(in), id_r);
	ok(memcmp(id_a, id_r, 32) == 0, "blob id depends on the master key only, not the repo id");
	crypto_generichash(id_plain, 32, (const uint8_t *)in, strlen(in), NULL, 0);
	ok(memcmp(id_a, id_plain, 32) != 0, "blob id is keyed (differs from unkeyed BLAKE2b)");
	bk_blob_id(a, in, strlen(in) - 1, id_r);
	ok(memcmp(id_a, id_r, 32) != 0, "one byte less: different id");

	ok(memcmp(a->id_key, a->data_key, 32) != 0 && memcmp(a->id_key, a->chunker_seed, 32) != 0 &&
		   memcmp(a->data_key, a->chunker_seed, 32) != 0 &&
		   memcmp(a->master, a->id_key, 32) != 0 && memcmp(a->master, a->data_key, 32) != 0,
	   "subkeys are distinct from each other and from the master key");
	uint8_t rnd_repo[BK_REPO_ID_LEN] = { 0 };
	BkKeys *r1 = NULL, *r2 = NULL;
	ok(bk_keys_new(NULL, rnd_repo, &r1) == 0 && bk_keys_new(NULL, rnd_repo, &r2) == 0 &&
		   memcmp(r1->master, r2->master, 32) != 0 && !bk_id_is_zero(r1->master),
	   "bk_keys_new(NULL) draws a fresh random master key");
	bk_keys_free(r1);
	bk_keys_free(r2);
	bk_keys_free(NULL);

	bk_keys_free(a);
	bk_keys_free(a2);
	bk_keys_free(b);
	bk_keys_free(a_other_repo);
}

static void test_golden_seals(BkSealer *s)
{
	BkKeys *k = fixed_keys(0x00, 0xa0);
	uint8_t id[32], ab[200];
	for (size_t i = 0; i < sizeof(ab); i++)
		ab[i] = (uint8_t)"ab"[i % 2];
	size_t n;
	uint8_t *g = unhex_alloc(golden_sealed_raw, &n);
	bk_blob_id(k, "hello, bunker", 13, id);
	is_int(open_check(s, k, BK_BLOB_DATA, id, g, n, 13, "hello, bunker", 13), 0,
	       "golden raw sealed blob opens");
	ok(n == 13 + BK_SEAL_OVERHEAD, "golden raw sealed blob is plaintext + BK_SEAL_OVERHEAD");
	free(g);
	g = unhex_alloc(golden_sealed_zstd, &n);
	bk_blob_id(k, ab, sizeof(ab), id);
	is_int(open_check(s, k, BK_BLOB_DATA, id, g, n, sizeof(ab), ab, sizeof(ab)), 0,
	       "golden zstd sealed blob opens");
	ok(n < sizeof(ab), "golden zstd sealed blob is compressed");
	free(g);
	bk_keys_free(k);
}

static void test_round_trips(BkSealer *s, BkSealer *s_raw)
{
	BkKeys *k = fixed_keys(0x10, 0x20);
	const size_t big = 64 << 10;
	uint8_t *text = malloc(big), *rnd = malloc(big);
	for (size_t i = 0; i < big; i++)
		text[i] = (uint8_t)"select * from pg_class where relkind = 'r';\n"[i % 45];
	randombytes_buf(rnd, big);
	struct {
		const char *name;
		const uint8_t *p;
		size_t len;
	} cases[] = {
		{ "empty", (const uint8_t *)"", 0 },
		{ "1 byte", (const uint8_t *)"x", 1 },
		{ "63 bytes", text, 63 },
		{ "small text", (const uint8_t *)"hello, bunker", 13 },
		{ "64 KiB compressible", text, big },
		{ "64 KiB incompressible", rnd, big },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(cases); i++) {
		uint8_t id[32];
		size_t slen;
		uint8_t *sealed = seal_alloc(s, k, BK_BLOB_DATA, cases[i].p, cases[i].len, id, &slen);
		ok(slen <= bk_seal_bound(cases[i].len), "%s: within bk_seal_bound", cases[i].name);
		ok(slen <= cases[i].len + BK_SEAL_OVERHEAD, "%s: never larger than raw + overhead",
		   cases[i].name);
		is_int(open_check(s, k, BK_BLOB_DATA, id, sealed, slen, cases[i].len, cases[i].p,
				  cases[i].len),
		       0, "%s: round trip", cases[i].name);
		free(sealed);

		sealed = seal_alloc(s_raw, k, BK_BLOB_TREE, cases[i].p, cases[i].len, id, &slen);
		is_int(slen, cases[i].len + BK_SEAL_OVERHEAD, "%s: level 0 sealer stores raw",
		       cases[i].name);
		is_int(open_check(s, k, BK_BLOB_TREE, id, sealed, slen, cases[i].len, cases[i].p,
				  cases[i].len),
		       0, "%s: raw seal round trip", cases[i].name);
		free(sealed);
	}

	/* compression happens when it helps, and only then */
	uint8_t id[32];
	size_t slen;
	uint8_t *sealed = seal_alloc(s, k, BK_BLOB_DATA, text, big, id, &slen);
	ok(slen < big / 20, "64 KiB of repetitive text seals to %zu bytes (< 1/20)", slen);
	free(sealed);
	sealed = seal_alloc(s, k, BK_BLOB_DATA, rnd, big, id, &slen);
	is_int(slen, big + BK_SEAL_OVERHEAD, "64 KiB of random bytes is stored raw");
	free(sealed);

	/* stored raw after a compression attempt that did not help: the attempt's
	 * frame (raw blocks: plaintext) is longer than the sealed blob, and its tail
	 * must not stay in out after the sealed bytes (found by review: the last
	 * bytes of a 1 MiB blob did) */
	const size_t mib = 1 << 20;
	uint8_t *rnd_mib = malloc(mib);
	randombytes_buf(rnd_mib, mib);
	bk_blob_id(k, rnd_mib, mib, id);
	sealed = calloc(1, bk_seal_bound(mib));
	bk_seal(s, k, BK_BLOB_DATA, id, rnd_mib, mib, sealed, &slen);
	is_int(slen, mib + BK_SEAL_OVERHEAD, "1 MiB of random bytes is stored raw");
	ok(memmem(sealed, bk_seal_bound(mib), rnd_mib + mib - 8, 8) == NULL,
	   "... and no plaintext is left in out after the sealed bytes");
	free(sealed);
	free(rnd_mib);

	/* a fresh nonce per seal: same plaintext, different bytes */
	size_t l1, l2;
	uint8_t *s1 = seal_alloc(s, k, BK_BLOB_DATA, "same", 4, id, &l1);
	uint8_t *s2 = seal_alloc(s, k, BK_BLOB_DATA, "same", 4, id, &l2);
	ok(l1 == l2 && memcmp(s1 + 1, s2 + 1, BK_NONCE_LEN) != 0 && memcmp(s1, s2, l1) != 0,
	   "sealing twice uses fresh nonces");
	ok(s1[0] == BK_SEAL_VERSION, "first byte is the seal version");
	ok(memmem(s1, l1, "same", 4) == NULL, "plaintext does not appear in the sealed blob");
	free(s1);
	free(s2);

	free(text);
	free(rnd);
	bk_keys_free(k);
}

/* Flips bits of sealed[0..slen) (every bit, or every step-th bit); every flip
 * must fail without returning data: the version byte with BK_E_VERSION,
 * everything else with BK_E_CORRUPT. Returns the number of bad results. */
static size_t flip_bits(BkSealer *s, const BkKeys *k, const uint8_t id[32], uint8_t *sealed,
			size_t slen, size_t max_len, size_t step)
{
	size_t bad = 0, tried = 0;
	for (size_t bit = 0; bit < slen * 8; bit += step) {
		sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		uint8_t *plain = NULL;
		size_t plen = 0;
		int r = bk_open(s, k, BK_BLOB_DATA, id, sealed, slen, max_len, &plain, &plen);
		int want = bit < 8 ? BK_E_VERSION : BK_E_CORRUPT;
		if (r != want || plain != NULL) {
			if (bad++ < 5)
				diag("bit %zu: got %d (%s), want %d", bit, r, bk_strerror(r), want);
			free(plain);
		}
		sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		tried++;
	}
	diag("%zu bit flips tried", tried);
	return bad;
}

/* Nonces are random and never repeat: within a sealer (whose pool of random
 * nonces must not be a counter or share a prefix), between sealers, and between
 * a parent and the child it forks, which holds a copy of the parent's pool. */
static uint8_t *nonce_of(BkSealer *s, const BkKeys *k, uint8_t out[BK_NONCE_LEN])
{
	uint8_t id[32];
	size_t len;
	uint8_t *sealed = seal_alloc(s, k, BK_BLOB_DATA, "x", 1, id, &len);
	memcpy(out, sealed + 1, BK_NONCE_LEN);
	free(sealed);
	return out;
}

static void test_nonces(BkSealer *s)
{
	BkKeys *k = fixed_keys(0x30, 0x40);
	enum { N = 2000 };
	uint8_t(*seen)[BK_NONCE_LEN] = malloc(N * BK_NONCE_LEN);
	for (size_t i = 0; i < N; i++)
		nonce_of(s, k, seen[i]);
	size_t repeats = 0;
	for (size_t i = 0; i < N; i++)
		for (size_t j = i + 1; j < N; j++)
			repeats += memcmp(seen[i], seen[j], BK_NONCE_LEN) == 0;
	is_int(repeats, 0, "%d seals by one sealer: no nonce twice", N);
	size_t shared = 0; /* a counter or a fixed part would show at one end or the other */
	for (size_t i = 0; i < N; i++)
		for (size_t j = i + 1; j < N; j++)
			shared += memcmp(seen[i], seen[j], 4) == 0 ||
				  memcmp(seen[i] + BK_NONCE_LEN - 4, seen[j] + BK_NONCE_LEN - 4, 4) == 0;
	ok(shared < 3, "... and no pattern: %zu pairs share their first or last 4 bytes", shared);

	BkSealer *other = NULL;
	uint8_t a[BK_NONCE_LEN], b[BK_NONCE_LEN];
	bk_sealer_new(3, &other);
	ok(memcmp(nonce_of(s, k, a), nonce_of(other, k, b), BK_NONCE_LEN) != 0,
	   "two sealers: different nonces");
	bk_sealer_free(other);

	int pipefd[2];
	if (pipe(pipefd) < 0)
		abort();
	pid_t pid = fork();
	if (pid == 0) { /* the child seals with its copy of the parent's sealer */
		uint8_t n[BK_NONCE_LEN];
		ssize_t w = write(pipefd[1], nonce_of(s, k, n), BK_NONCE_LEN);
		_exit(w == BK_NONCE_LEN ? 0 : 1);
	}
	uint8_t child[BK_NONCE_LEN] = { 0 };
	ssize_t got = read(pipefd[0], child, BK_NONCE_LEN);
	waitpid(pid, NULL, 0);
	close(pipefd[0]);
	close(pipefd[1]);
	nonce_of(s, k, a); /* the parent's next nonce */
	ok(got == BK_NONCE_LEN && memcmp(a, child, BK_NONCE_LEN) != 0,
	   "after fork the child does not use the nonce its parent uses next");
	free(seen);
	bk_keys_free(k);
}

static void test_tamper(BkSealer *s)
{
	BkKeys *k = fixed_keys(0x10, 0x20);
	uint8_t id[32];
	size_t slen;
	uint8_t *sealed = seal_alloc(s, k, BK_BLOB_DATA, "hello, bunker", 13, id, &slen);
	is_int(flip_bits(s, k, id, sealed, slen, 1 << 20, 1), 0,
	       "every bit flip of a small sealed blob refused");
	is_int(open_check(s, k, BK_BLOB_DATA, id, sealed, slen, 13, "hello, bunker", 13), 0,
	       "untampered blob still opens");

	size_t bad = 0;
	for (size_t cut = 0; cut < slen; cut++) {
		int r = open_check(s, k, BK_BLOB_DATA, id, sealed, cut, 1 << 20, NULL, 0);
		if (r != BK_E_CORRUPT)
			bad++;
	}
	is_int(bad, 0, "every truncation refused with BK_E_CORRUPT");
	uint8_t *longer = malloc(slen + 1);
	memcpy(longer, sealed, slen);
	longer[slen] = 0;
	is_int(open_check(s, k, BK_BLOB_DATA, id, longer, slen + 1, 1 << 20, NULL, 0), BK_E_CORRUPT,
	       "one appended byte refused");
	free(longer);
	free(sealed);

	/* a larger, compressed blob: sample of bits across it, plus the first and
	 * last 64 bytes in full */
	const size_t big = 64 << 10;
	uint8_t *text = malloc(big);
	for (size_t i = 0; i < big; i++)
		text[i] = (uint8_t)((i * 7) % 251 < 128 ? 'a' + i % 26 : ' ');
	sealed = seal_alloc(s, k, BK_BLOB_DATA, text, big, id, &slen);
	ok(slen > 512, "large sealed blob (%zu bytes) is big enough to sample", slen);
	is_int(flip_bits(s, k, id, sealed, slen, big, 13), 0,
	       "every 13th bit flip of a compressed 64 KiB blob refused");
	is_int(flip_bits(s, k, id, sealed, 64, big, 1), 0, "every bit flip in its first 64 bytes");
	bad = 0;
	for (size_t bit = (slen - 64) * 8; bit < slen * 8; bit++) {
		sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (open_check(s, k, BK_BLOB_DATA, id, sealed, slen, big, NULL, 0) != BK_E_CORRUPT)
			bad++;
		sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	is_int(bad, 0, "every bit flip in its last 64 bytes (the tag) refused");
	free(sealed);

	uint8_t *rnd = malloc(big);
	randombytes_buf(rnd, big);
	sealed = seal_alloc(s, k, BK_BLOB_DATA, rnd, big, id, &slen);
	is_int(flip_bits(s, k, id, sealed, slen, big, 97), 0,
	       "every 97th bit flip of a raw 64 KiB blob refused");
	free(sealed);
	free(rnd);
	free(text);
	bk_keys_free(k);
}

static void test_binding(BkSealer *s)
{
	BkKeys *k = fixed_keys(0x10, 0x20);
	BkKeys *other_repo = fixed_keys(0x10, 0x21), *other_master = fixed_keys(0x11, 0x20);
	const char *p = "a tree, really";
	size_t len = strlen(p), slen;
	uint8_t id[32], id2[32];
	uint8_t *sealed = seal_alloc(s, k, BK_BLOB_TREE, p, len, id, &slen);

	is_int(open_check(s, k, BK_BLOB_TREE, id, sealed, slen, len, p, len), 0, "right type opens");
	is_int(open_check(s, k, BK_BLOB_DATA, id, sealed, slen, len, p, len), BK_E_CORRUPT,
	       "wrong type refused");
	is_int(open_check(s, k, BK_BLOB_CLIST, id, sealed, slen, len, p, len), BK_E_CORRUPT,
	       "another wrong type refused");
	memcpy(id2, id, 32);
	id2[31] ^= 1;
	is_int(open_check(s, k, BK_BLOB_TREE, id2, sealed, slen, len, p, len), BK_E_CORRUPT,
	       "wrong id refused");
	is_int(open_check(s, other_repo, BK_BLOB_TREE, id, sealed, slen, len, p, len), BK_E_CORRUPT,
	       "same master key, other repository id refused");
	is_int(open_check(s, other_master, BK_BLOB_TREE, id, sealed, slen, len, p, len),
	       BK_E_CORRUPT, "other master key refused");
	ok(strstr(bk_error_detail(), bk_id_hex(id).s) != NULL, "error detail names the blob id");

	/* the max_len cap, on the raw path */
	is_int(open_check(s, k, BK_BLOB_TREE, id, sealed, slen, len - 1, p, len), BK_E_CORRUPT,
	       "raw: max_len one less than the plaintext refused");
	is_int(open_check(s, k, BK_BLOB_TREE, id, sealed, slen, 0, p, len), BK_E_CORRUPT,
	       "raw: max_len 0 refused");
	free(sealed);

	/* ... and on the zstd path */
	uint8_t text[4096];
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (uint8_t)('a' + i % 3);
	sealed = seal_alloc(s, k, BK_BLOB_DATA, text, sizeof(text), id, &slen);
	ok(slen < sizeof(text) / 4, "4 KiB of text was compressed");
	is_int(open_check(s, k, BK_BLOB_DATA, id, sealed, slen, sizeof(text), text, sizeof(text)), 0,
	       "zstd: max_len equal to the plaintext opens");
	is_int(open_check(s, k, BK_BLOB_DATA, id, sealed, slen, sizeof(text) - 1, text,
			  sizeof(text)),
	       BK_E_CORRUPT, "zstd: max_len one less than the plaintext refused");
	free(sealed);

	bk_keys_free(k);
	bk_keys_free(other_repo);
	bk_keys_free(other_master);
}

/* Authenticated blobs whose contents are still wrong: only a key holder can make
 * these, but the reader must still refuse them cleanly. */
static void test_hand_made(BkSealer *s)
{
	BkKeys *k = fixed_keys(0x10, 0x20);
	uint8_t out[8192], id[32], text[2048];
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (uint8_t)('0' + i % 10);
	const char *p = "hand made";
	size_t plen = strlen(p);

	bk_blob_id(k, p, plen, id);
	size_t n = seal_by_hand(k, BK_BLOB_DATA, id, 0, p, plen, out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, 100, p, plen), 0,
	       "hand-made raw seal opens (the documented format is the real one)");
	n = seal_by_hand(k, BK_BLOB_DATA, id, 0x02, p, plen, out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, 100, p, plen), BK_E_VERSION,
	       "unknown flag bit refused with BK_E_VERSION");
	n = seal_by_hand(k, BK_BLOB_DATA, id, 0x80 | 0x01, p, plen, out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, 100, p, plen), BK_E_VERSION,
	       "unknown high flag bit refused with BK_E_VERSION");

	/* content that does not hash to the id it is sealed under */
	uint8_t wrong[32];
	bk_blob_id(k, "something else", 14, wrong);
	n = seal_by_hand(k, BK_BLOB_DATA, wrong, 0, p, plen, out);
	is_int(open_check(s, k, BK_BLOB_DATA, wrong, out, n, 100, p, plen), BK_E_CORRUPT,
	       "authentic seal whose content does not match its id refused");

	/* zstd payloads */
	size_t zlen = ZSTD_compress(out + 4096, 4096, text, sizeof(text), 3);
	uint8_t frame[4096];
	memcpy(frame, out + 4096, zlen);
	bk_blob_id(k, text, sizeof(text), id);
	n = seal_by_hand(k, BK_BLOB_DATA, id, 0x01, frame, zlen, out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, sizeof(text), text, sizeof(text)), 0,
	       "hand-made zstd seal opens");
	n = seal_by_hand(k, BK_BLOB_DATA, id, 0x01, frame, zlen - 1, out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, sizeof(text), text, sizeof(text)),
	       BK_E_CORRUPT, "truncated zstd frame refused");
	n = seal_by_hand(k, BK_BLOB_DATA, id, 0x01, "", 0, out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, sizeof(text), text, sizeof(text)),
	       BK_E_CORRUPT, "empty zstd payload refused");
	n = seal_by_hand(k, BK_BLOB_DATA, id, 0x01, text, 100, out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, sizeof(text), text, sizeof(text)),
	       BK_E_CORRUPT, "garbage zstd payload refused");
	uint8_t two[8192], empty_id[32];
	bk_blob_id(k, "", 0, empty_id);
	memcpy(two, frame, zlen);
	memcpy(two + zlen, frame, zlen);
	n = seal_by_hand(k, BK_BLOB_DATA, id, 0x01, two, 2 * zlen, out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, 2 * sizeof(text), text, sizeof(text)),
	       BK_E_CORRUPT, "two concatenated zstd frames refused");
	/* a second frame that adds no bytes fits the first frame's size: refused too
	 * (found by review: the size check alone let it through) */
	size_t elen = ZSTD_compress(two + zlen, sizeof(two) - zlen, "", 0, 3);
	n = seal_by_hand(k, BK_BLOB_DATA, id, 0x01, two, zlen + elen, out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, sizeof(text), text, sizeof(text)),
	       BK_E_CORRUPT, "a zstd frame followed by an empty frame refused");
	static const uint8_t skippable[8] = { 0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0 };
	memcpy(two + zlen, skippable, sizeof(skippable));
	n = seal_by_hand(k, BK_BLOB_DATA, id, 0x01, two, zlen + sizeof(skippable), out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, sizeof(text), text, sizeof(text)),
	       BK_E_CORRUPT, "a zstd frame followed by a skippable frame refused");
	n = seal_by_hand(k, BK_BLOB_DATA, empty_id, 0x01, skippable, sizeof(skippable), out);
	is_int(open_check(s, k, BK_BLOB_DATA, empty_id, out, n, sizeof(text), "", 0), BK_E_CORRUPT,
	       "a lone skippable frame refused (not read as the empty blob)");

	/* a frame without its content size: the reader cannot bound it up front */
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
	zlen = ZSTD_compress2(c, frame, sizeof(frame), text, sizeof(text));
	ZSTD_freeCCtx(c);
	ok(!ZSTD_isError(zlen) &&
		   ZSTD_getFrameContentSize(frame, zlen) == ZSTD_CONTENTSIZE_UNKNOWN,
	   "made a zstd frame without content size");
	n = seal_by_hand(k, BK_BLOB_DATA, id, 0x01, frame, zlen, out);
	is_int(open_check(s, k, BK_BLOB_DATA, id, out, n, sizeof(text), text, sizeof(text)),
	       BK_E_CORRUPT, "zstd frame without content size refused");
	bk_keys_free(k);
}

/* bk_open_named: records named by something other than their content (the id is
 * the keyed hash of the name); everything but the content check still holds. */
static void test_named(BkSealer *s)
{
	BkKeys *k = fixed_keys(0x10, 0x20), *other_repo = fixed_keys(0x10, 0x21);
	const char *name = "wal/000000010000000000000001";
	const char *rec = "a WAL record, not its own name";
	size_t len = strlen(rec), slen;
	uint8_t id[32], other[32];
	bk_blob_id(k, name, strlen(name), id);
	bk_blob_id(k, "wal/000000010000000000000002", 28, other);
	uint8_t *sealed = malloc(bk_seal_bound(len));
	bk_seal(s, k, BK_BLOB_WAL, id, rec, len, sealed, &slen);

	uint8_t *plain = NULL;
	size_t plen = 0;
	ok(bk_open_named(s, k, BK_BLOB_WAL, id, sealed, slen, len, &plain, &plen) == 0 &&
		   plen == len && memcmp(plain, rec, len) == 0,
	   "named record opens under its name's id");
	free(plain);
	is_int(open_check(s, k, BK_BLOB_WAL, id, sealed, slen, len, rec, len), BK_E_CORRUPT,
	       "bk_open refuses it (content does not hash to the id)");
	struct {
		const char *what;
		const BkKeys *k;
		BkBlobType type;
		const uint8_t *id;
		size_t max_len;
	} bad[] = {
		{ "another name", k, BK_BLOB_WAL, other, len },
		{ "another type", k, BK_BLOB_SNAPSHOT, id, len },
		{ "another repository id", other_repo, BK_BLOB_WAL, id, len },
		{ "max_len one short", k, BK_BLOB_WAL, id, len - 1 },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(bad); i++) {
		plain = NULL;
		plen = 7;
		int r = bk_open_named(s, bad[i].k, bad[i].type, bad[i].id, sealed, slen, bad[i].max_len,
				      &plain, &plen);
		ok(r == BK_E_CORRUPT && plain == NULL && plen == 7, "named: %s refused", bad[i].what);
	}
	size_t bad_flips = 0;
	for (size_t bit = 0; bit < slen * 8; bit++) {
		sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		plain = NULL;
		int r = bk_open_named(s, k, BK_BLOB_WAL, id, sealed, slen, len, &plain, &plen);
		if (r != (bit < 8 ? BK_E_VERSION : BK_E_CORRUPT) || plain != NULL)
			bad_flips++;
		sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	is_int(bad_flips, 0, "named: every bit flip refused");
	free(sealed);
	bk_keys_free(k);
	bk_keys_free(other_repo);
}

int main(void)
{
	if (bk_crypto_init() < 0) {
		ok(false, "bk_crypto_init");
		return tap_done();
	}
	BkSealer *s = NULL, *s_raw = NULL;
	is_int(bk_sealer_new(3, &s), 0, "sealer (zstd level 3)");
	is_int(bk_sealer_new(0, &s_raw), 0, "sealer without compression");

	test_keys_and_ids();
	test_golden_seals(s);
	test_round_trips(s, s_raw);
	test_nonces(s);
	test_tamper(s);
	test_binding(s);
	test_hand_made(s);
	test_named(s);

	bk_sealer_free(s);
	bk_sealer_free(s_raw);
	bk_sealer_free(NULL);
	return tap_done();
}
