/* Fuzz target: bk_open over arbitrary bytes taken as a sealed blob (see fuzz.h).
 * Keys are fixed (master 00..1f, repository id a0..af), and the input is opened
 * as each of three known blobs: the empty DATA blob, a short DATA blob (stored
 * raw) and a 4 KiB compressible DATA blob (stored as zstd). Opening must never
 * crash, must fail with BK_E_CORRUPT or BK_E_VERSION and return nothing, and may
 * succeed only with exactly the known plaintext -- which, short of forging
 * XChaCha20-Poly1305, happens only for the valid seals in the corpus. Every
 * success is re-checked: the same bytes opened under the wrong type, with a
 * max_len one short, or as another blob must fail.
 *
 * The seed corpus (corpus/open/) is written by this file built with
 * -DFUZZ_GEN_CORPUS (it then has a main() instead of being a fuzz target):
 *   cc -std=gnu11 -DFUZZ_GEN_CORPUS -I. tests/fuzz/fuzz-open.c \
 *     build/store/libbkstore.a build/store/libbkbase.a -lsodium -lzstd -llmdb \
 *     -o /tmp/gen-open && /tmp/gen-open tests/fuzz/corpus/open */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/crypto.h"
#include "store/error.h"
#include "store/util.h"
#include "tests/fuzz/fuzz.h"

#define N_KNOWN 3
#define BIG_LEN 4096
#define MAX_LEN (1u << 20) /* the caller's cap */

typedef struct {
	const uint8_t *plain;
	size_t len;
	uint8_t id[32];
} Known;

static BkKeys *keys;
static BkSealer *sealer;
static Known known[N_KNOWN];
static uint8_t big[BIG_LEN];
static const char small[] = "bunker fuzz-open: a short blob";

/* Set up once per process; kept until exit (libFuzzer has no teardown). */
static void setup(void)
{
	if (keys)
		return;
	uint8_t master[BK_KEY_LEN], repo[BK_REPO_ID_LEN];
	for (size_t i = 0; i < sizeof(master); i++)
		master[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(repo); i++)
		repo[i] = (uint8_t)(0xa0 + i);
	FUZZ_CHECK(bk_crypto_init() == 0);
	FUZZ_CHECK(bk_keys_new(master, repo, &keys) == 0);
	FUZZ_CHECK(bk_sealer_new(3, &sealer) == 0);
	for (size_t i = 0; i < BIG_LEN; i++)
		big[i] = (uint8_t)("select 1;\n"[i % 10] + (i / 1024));
	known[0] = (Known){ (const uint8_t *)"", 0, { 0 } };
	known[1] = (Known){ (const uint8_t *)small, sizeof(small) - 1, { 0 } };
	known[2] = (Known){ big, BIG_LEN, { 0 } };
	for (size_t i = 0; i < N_KNOWN; i++)
		bk_blob_id(keys, known[i].plain, known[i].len, known[i].id);
}

#ifndef FUZZ_GEN_CORPUS
/* Opens; returns 1 on success with the expected plaintext, 0 on a clean
 * failure, and crashes on anything else. */
static int try_open(const uint8_t *data, size_t size, BkBlobType type, const Known *k,
		    size_t max_len)
{
	uint8_t *plain = NULL;
	size_t plen = 0;
	int r = bk_open(sealer, keys, type, k->id, data, size, max_len, &plain, &plen);
	if (r < 0) {
		FUZZ_CHECK(r == BK_E_CORRUPT || r == BK_E_VERSION || r == -ENOMEM);
		FUZZ_CHECK(plain == NULL);
		return 0;
	}
	FUZZ_CHECK(r == 0 && plain != NULL);
	FUZZ_CHECK(plen == k->len && plen <= max_len);
	FUZZ_CHECK(plen == 0 || memcmp(plain, k->plain, plen) == 0);
	free(plain);
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	int opened = 0;
	for (size_t i = 0; i < N_KNOWN; i++) {
		if (!try_open(data, size, BK_BLOB_DATA, &known[i], MAX_LEN))
			continue;
		opened++;
		/* bound to its type, and the cap holds */
		FUZZ_CHECK(!try_open(data, size, BK_BLOB_TREE, &known[i], MAX_LEN));
		if (known[i].len > 0)
			FUZZ_CHECK(!try_open(data, size, BK_BLOB_DATA, &known[i], known[i].len - 1));
	}
	FUZZ_CHECK(opened <= 1); /* bound to its id: one seal opens as one blob */
	return 0;
}

#else /* FUZZ_GEN_CORPUS: writes the seeds */
#include <sodium.h>
#include <stdio.h>
#include <sys/stat.h>
#include <zstd.h>

/* An authentic seal of flags | payload under id (format in store/crypto.h). */
static size_t seal_by_hand(const uint8_t id[32], uint8_t flags, const void *payload, size_t len,
			   uint8_t *out)
{
	uint8_t *msg = malloc(len + 1);
	msg[0] = flags;
	memcpy(msg + 1, payload, len);
	uint8_t ad[BK_REPO_ID_LEN + 1 + 32];
	memcpy(ad, keys->repo_id, BK_REPO_ID_LEN);
	ad[BK_REPO_ID_LEN] = BK_BLOB_DATA;
	memcpy(ad + BK_REPO_ID_LEN + 1, id, 32);
	out[0] = BK_SEAL_VERSION;
	randombytes_buf(out + 1, BK_NONCE_LEN);
	unsigned long long clen;
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + BK_NONCE_LEN, &clen, msg, len + 1, ad,
						   sizeof(ad), NULL, out + 1, keys->data_key);
	free(msg);
	return 1 + BK_NONCE_LEN + (size_t)clen;
}

/* A valid seal, and its variants: version 2, one byte short, one byte more,
 * a flipped nonce bit, a flipped tag bit. */
static void put_family(const char *name, const uint8_t *p, size_t n)
{
	char nm[256];
	uint8_t *q = malloc(n + 1);
	snprintf(nm, sizeof(nm), "valid-%s", name);
	fuzz_put(nm, p, n);
	snprintf(nm, sizeof(nm), "bad-truncated-%s", name);
	fuzz_put(nm, p, n - 1);
	memcpy(q, p, n);
	q[n] = 0;
	snprintf(nm, sizeof(nm), "bad-trailing-%s", name);
	fuzz_put(nm, q, n + 1);
	q[0] = 2;
	snprintf(nm, sizeof(nm), "bad-version-%s", name);
	fuzz_put(nm, q, n);
	q[0] = p[0];
	q[5] ^= 0x20;
	snprintf(nm, sizeof(nm), "bad-nonce-%s", name);
	fuzz_put(nm, q, n);
	q[5] = p[5];
	q[n - 3] ^= 0x01;
	snprintf(nm, sizeof(nm), "bad-tag-%s", name);
	fuzz_put(nm, q, n);
	free(q);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s corpus/open\n", argv[0]);
		return 2;
	}
	fuzz_out_dir = argv[1];
	mkdir(fuzz_out_dir, 0777);
	setup();
	static const char *names[N_KNOWN] = { "empty", "raw", "zstd" };
	uint8_t *out = malloc(bk_seal_bound(BIG_LEN) + 64);
	for (size_t i = 0; i < N_KNOWN; i++) {
		size_t n;
		FUZZ_CHECK(bk_seal(sealer, keys, BK_BLOB_DATA, known[i].id, known[i].plain,
				   known[i].len, out, &n) == 0);
		FUZZ_CHECK(i != 2 || n < BIG_LEN / 4); /* really compressed */
		put_family(names[i], out, n);
	}
	fuzz_put("bad-short", out, BK_SEAL_OVERHEAD - 1);
	fuzz_put("bad-empty", out, 0);

	/* authentic seals whose insides are wrong: only the corpus reaches these */
	size_t n = seal_by_hand(known[1].id, 0x02, known[1].plain, known[1].len, out);
	fuzz_put("authentic-bad-flags", out, n);
	n = seal_by_hand(known[1].id, 0x00, known[1].plain, known[1].len - 1, out);
	fuzz_put("authentic-bad-id", out, n);
	n = seal_by_hand(known[2].id, 0x01, big, 100, out);
	fuzz_put("authentic-bad-zstd", out, n);
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
	uint8_t frame[BIG_LEN];
	size_t z = ZSTD_compress2(c, frame, sizeof(frame), big, BIG_LEN);
	ZSTD_freeCCtx(c);
	FUZZ_CHECK(!ZSTD_isError(z));
	n = seal_by_hand(known[2].id, 0x01, frame, z, out);
	fuzz_put("authentic-zstd-no-size", out, n);
	free(out);
	return fuzz_failures ? 1 : 0;
}
#endif
