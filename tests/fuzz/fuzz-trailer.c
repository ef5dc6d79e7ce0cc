/* Fuzz target: bk_pack_trailer_decode over arbitrary bytes (see fuzz.h).
 * Input: u64 little-endian pack_size (the first 8 bytes; shorter inputs are
 * zero-padded) | trailer plaintext (the rest). Where the decoder accepts, the
 * entries must obey the format's rules (1..BK_PACK_MAX_ENTRIES entries of a
 * storable type, ascending, non-overlapping, each inside [header, pack_size -
 * footer), plain length capped), and re-encoding them must decode to the same
 * entries and encode to the same bytes.
 *
 * The seed corpus (corpus/trailer/) is written by this file built with
 * -DFUZZ_GEN_CORPUS (it then has a main() instead of being a fuzz target):
 *   cc -std=gnu11 -DFUZZ_GEN_CORPUS -I. tests/fuzz/fuzz-trailer.c \
 *     build/store/libbkstore.a build/store/libbkbase.a -lsodium -lzstd -llmdb \
 *     -o /tmp/gen-trailer && /tmp/gen-trailer tests/fuzz/corpus/trailer */
#include <errno.h>
#include <string.h>

#include "store/codec.h"
#include "store/crypto.h"
#include "store/error.h"
#include "store/pack.h"
#include "store/util.h"
#include "tests/fuzz/fuzz.h"

/* Encodes entries the way bk_pack_writer_finish does. */
static void encode(const BkPackEntry *e, size_t n, BkEnc *enc)
{
	bk_enc_init(enc, (size_t)BK_PACK_MAX_ENTRIES * 64);
	bk_enc_u8(enc, 1);
	bk_enc_varint(enc, n);
	for (size_t i = 0; i < n; i++) {
		bk_enc_u8(enc, e[i].type);
		bk_enc_bytes(enc, e[i].id, 32);
		bk_enc_varint(enc, e[i].offset);
		bk_enc_varint(enc, e[i].sealed_len);
		bk_enc_varint(enc, e[i].plain_len);
	}
	FUZZ_CHECK(bk_enc_finish(enc) == 0);
}

#ifndef FUZZ_GEN_CORPUS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t head[8] = { 0 };
	memcpy(head, data, size < 8 ? size : 8);
	uint64_t pack_size = bk_get_le64(head);
	const uint8_t *p = size > 8 ? data + 8 : NULL;
	size_t len = size > 8 ? size - 8 : 0;

	BkPackEntry *e = NULL;
	size_t n = 0;
	int r = bk_pack_trailer_decode(p, len, pack_size, &e, &n);
	if (r < 0) {
		FUZZ_CHECK(r == BK_E_CORRUPT || r == BK_E_VERSION || r == -ENOMEM);
		FUZZ_CHECK(e == NULL);
		return 0;
	}
	FUZZ_CHECK(e != NULL && n >= 1 && n <= BK_PACK_MAX_ENTRIES && n <= len / 36);
	FUZZ_CHECK(pack_size >= BK_PACK_HEADER_LEN + BK_PACK_FOOTER_LEN + BK_SEAL_OVERHEAD);
	const uint64_t limit = pack_size - BK_PACK_FOOTER_LEN;
	const bool bounds_hold = true; /* offsets past 4 GiB are refused by the decoder */
	uint64_t end = BK_PACK_HEADER_LEN;
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(e[i].type >= BK_BLOB_DATA && e[i].type <= BK_BLOB_WAL &&
			   e[i].type != BK_BLOB_TRAILER);
		FUZZ_CHECK(e[i].plain_len <= BK_PACK_MAX_BLOB);
		if (bounds_hold) {
			FUZZ_CHECK(e[i].sealed_len >= BK_SEAL_OVERHEAD);
			FUZZ_CHECK(e[i].offset >= end);
			FUZZ_CHECK((uint64_t)e[i].offset + e[i].sealed_len <= limit);
		}
		end = (uint64_t)e[i].offset + e[i].sealed_len;
	}

	/* decode(encode(entries)) is the same entries; the encoding is a fixed point
	 * and never longer than the input (varints become minimal) */
	BkEnc e1, e2;
	encode(e, n, &e1);
	if (bounds_hold)
		FUZZ_CHECK(e1.len <= len);
	BkPackEntry *f = NULL;
	size_t m = 0;
	r = bk_pack_trailer_decode(e1.buf, e1.len, pack_size, &f, &m);
	FUZZ_CHECK(r == 0 || !bounds_hold);
	if (r == 0) {
		FUZZ_CHECK(m == n);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(f[i].type == e[i].type && memcmp(f[i].id, e[i].id, 32) == 0 &&
				   f[i].offset == e[i].offset && f[i].sealed_len == e[i].sealed_len &&
				   f[i].plain_len == e[i].plain_len);
		encode(f, m, &e2);
		FUZZ_CHECK(e1.len == e2.len && memcmp(e1.buf, e2.buf, e1.len) == 0);
		bk_enc_release(&e2);
		free(f);
	}
	bk_enc_release(&e1);
	free(e);
	return 0;
}

#else /* FUZZ_GEN_CORPUS: writes the seeds */
#include <stdio.h>
#include <sys/stat.h>

static const char *out_dir;
static int failures;

static void put(const char *name, uint64_t pack_size, const uint8_t *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", out_dir, name);
	uint8_t head[8];
	bk_put_le64(head, pack_size);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(head, 1, 8, f) != 8 || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		failures++;
	}
}

static BkPackEntry ent(uint8_t type, uint32_t off, uint32_t sl, uint32_t pl, uint8_t fill)
{
	BkPackEntry e = { .type = type, .offset = off, .sealed_len = sl, .plain_len = pl };
	memset(e.id, fill, 32);
	return e;
}

static void put_enc(const char *name, uint64_t pack_size, const BkPackEntry *e, size_t n)
{
	BkEnc enc;
	encode(e, n, &enc);
	put(name, pack_size, enc.buf, enc.len);
	bk_enc_release(&enc);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s corpus/trailer\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	mkdir(out_dir, 0777);

	BkPackEntry many[8];
	uint32_t off = BK_PACK_HEADER_LEN;
	const uint8_t types[5] = { BK_BLOB_DATA, BK_BLOB_TREE, BK_BLOB_CLIST, BK_BLOB_SNAPSHOT,
				   BK_BLOB_WAL };
	for (uint8_t i = 0; i < 8; i++) {
		uint32_t sl = BK_SEAL_OVERHEAD + 1000u * i;
		many[i] = ent(types[i % 5], off, sl, 900u * i, (uint8_t)(0x10 * i + 1));
		off += sl + (i == 3 ? 17 : 0); /* one gap */
	}
	const uint64_t many_size = off + 300 + BK_PACK_FOOTER_LEN;
	put_enc("valid-many", many_size, many, 8);
	put_enc("valid-one", 8 + 42 + 100 + 44, many, 1);
	BkPackEntry edge = ent(BK_BLOB_DATA, (uint32_t)(BK_PACK_MAX_SIZE - BK_PACK_FOOTER_LEN - 50),
			       50, BK_PACK_MAX_BLOB, 0x77);
	put_enc("valid-at-limit", BK_PACK_MAX_SIZE, &edge, 1);
	BkPackEntry big_vals[2] = { ent(BK_BLOB_DATA, 8, 4000000, BK_PACK_MAX_BLOB, 1),
				    ent(BK_BLOB_WAL, 4000008, 16u << 20, 16u << 20, 2) };
	put_enc("valid-large-values", 64u << 20, big_vals, 2);

	/* invalid ones */
	BkEnc enc;
	encode(many, 8, &enc);
	put("bad-truncated", many_size, enc.buf, enc.len / 2);
	put("bad-size-too-small", 40, enc.buf, enc.len);
	enc.buf[0] = 2;
	put("bad-version", many_size, enc.buf, enc.len);
	enc.buf[0] = 1;
	bk_enc_u8(&enc, 0);
	put("bad-trailing", many_size, enc.buf, enc.len);
	bk_enc_release(&enc);
	BkPackEntry overlap[2] = { many[0], many[1] };
	overlap[1].offset = overlap[0].offset + overlap[0].sealed_len - 1;
	put_enc("bad-overlap", many_size, overlap, 2);
	BkPackEntry key = ent(BK_BLOB_KEY, 8, 100, 1, 3);
	put_enc("bad-type-key", 1000, &key, 1);
	BkPackEntry tr = ent(BK_BLOB_TRAILER, 8, 100, 1, 3);
	put_enc("bad-type-trailer", 1000, &tr, 1);
	BkPackEntry past = ent(BK_BLOB_DATA, 8, 1000, 1, 3);
	put_enc("bad-past-footer", 1000, &past, 1);
	put_enc("bad-zero-count", 1000, NULL, 0);
	bk_enc_init(&enc, 1 << 20);
	bk_enc_u8(&enc, 1);
	bk_enc_varint(&enc, UINT64_MAX);
	put("bad-count-huge", 1000, enc.buf, enc.len);
	bk_enc_release(&enc);
	put("bad-empty", 1000, NULL, 0);

	/* the known bug: offset 2^32 + 8 in an 8 GiB "pack" comes back as 8 */
	bk_enc_init(&enc, 1 << 20);
	bk_enc_u8(&enc, 1);
	bk_enc_varint(&enc, 1);
	bk_enc_u8(&enc, BK_BLOB_DATA);
	bk_enc_bytes(&enc, many[0].id, 32);
	bk_enc_varint(&enc, (1ull << 32) + 8);
	bk_enc_varint(&enc, 100);
	bk_enc_varint(&enc, 10);
	put("known-bug-offset-over-4g", 1ull << 33, enc.buf, enc.len);
	bk_enc_release(&enc);
	return failures ? 1 : 0;
}
#endif
