/* Fuzz target: bk_wal_record_decode, the WAL archive's record of one archived
 * file (pg/walarchive.h), over arbitrary bytes (see tests/fuzz/fuzz.h). It reads
 * what any writer of the repository stored; no repository is needed to decode.
 * Where the decoder accepts, the record must obey the format's rules (a
 * NUL-terminated name, the content's size, an end only on a segment's record of a
 * known system and only of this walker's revision, a carry of 8, 16 or 24 header
 * bytes whose CRC state is 0 unless 24), and re-encoding it (version 4) must
 * decode to the same record and encode to the same bytes.
 *
 * The seed corpus (corpus/pg-walrecord/) is written by this file built with
 * -DFUZZ_GEN_CORPUS (it then has a main() instead of being a fuzz target):
 *   cc -std=gnu11 -DFUZZ_GEN_CORPUS -I. tests/pg/fuzz-pg-walrecord.c \
 *     build/pg/libbkpgstore.a build/pg/libbkpg.a build/store/libbkstore.a \
 *     build/chunker/libbkchunker.a build/store/libbkbase.a -lsodium -lzstd -llmdb \
 *     -o /tmp/gen-walrecord && /tmp/gen-walrecord tests/pg/corpus/pg-walrecord */
#include <errno.h>
#include <string.h>

#include "pg/walarchive.h"
#include "store/error.h"
#include "store/util.h"
#include "tests/fuzz/fuzz.h"

static void encode(const BkWalRecord *w, BkEnc *enc)
{
	bk_enc_init(enc, 1 << 20);
	FUZZ_CHECK(bk_wal_record_encode(w, enc) == 0);
}

#ifndef FUZZ_GEN_CORPUS
static bool same(const BkWalRecord *a, const BkWalRecord *b)
{
	const BkWalEnd *x = &a->end, *y = &b->end;
	bool content = a->content.level == b->content.level && a->content.count == b->content.count;
	for (uint32_t i = 0; content && i < a->content.count; i++)
		content = a->content.refs[i].size == b->content.refs[i].size &&
			  memcmp(a->content.refs[i].id, b->content.refs[i].id, 32) == 0;
	return content && strcmp(a->name, b->name) == 0 && a->size == b->size &&
	       a->sysid == b->sysid && a->tli == b->tli && a->pushed_us == b->pushed_us &&
	       a->has_end == b->has_end && x->lsn == y->lsn && x->xact_us == y->xact_us &&
	       x->cut_xact_us == y->cut_xact_us && x->cut_xact == y->cut_xact &&
	       x->stopped == y->stopped && x->carry.lsn == y->carry.lsn &&
	       x->carry.head == y->carry.head && x->carry.crc == y->carry.crc &&
	       memcmp(x->carry.hdr, y->carry.hdr, x->carry.head) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	BkWalRecord w;
	memset(&w, 0x5a, sizeof(w));
	int r = bk_wal_record_decode(data, size, &w);
	if (r < 0) {
		FUZZ_CHECK(r == BK_E_CORRUPT || r == BK_E_VERSION || r == -ENOMEM);
		return 0;
	}
	FUZZ_CHECK(size >= 1 && data[0] >= 1 && data[0] <= 4);
	FUZZ_CHECK(memchr(w.name, '\0', sizeof(w.name)) != NULL);
	FUZZ_CHECK(bk_content_node_size(&w.content) == w.size);
	const BkWalCarry *c = &w.end.carry;
	BkWalName wn;
	if (w.has_end) {
		FUZZ_CHECK(data[0] >= 2 && w.sysid != 0);
		FUZZ_CHECK(bk_wal_name_parse(w.name, &wn) == 0 && wn.kind == BK_WAL_SEGMENT);
		FUZZ_CHECK(c->head == 0 || c->head == 8 || c->head == 16 || c->head == 24);
		FUZZ_CHECK(c->head == 24 || c->crc == 0);
		FUZZ_CHECK(c->head == 0 || data[0] >= 4);
		FUZZ_CHECK(!w.end.stopped || data[0] >= 3);
		FUZZ_CHECK(c->nbody == 0);
	} else {
		static const BkWalEnd none;
		FUZZ_CHECK(memcmp(&w.end, &none, sizeof(none)) == 0);
	}

	/* decode(encode(record)) is the same record; the encoding is a fixed point */
	BkEnc e1, e2;
	encode(&w, &e1);
	BkWalRecord v;
	FUZZ_CHECK(bk_wal_record_decode(e1.buf, e1.len, &v) == 0);
	FUZZ_CHECK(same(&w, &v));
	encode(&v, &e2);
	FUZZ_CHECK(e1.len == e2.len && memcmp(e1.buf, e2.buf, e1.len) == 0);
	if (data[0] >= 2) /* version 1 has no end_rev byte; varints become minimal */
		FUZZ_CHECK(e1.len <= size);
	bk_enc_release(&e2);
	bk_enc_release(&e1);
	bk_wal_record_release(&v);
	bk_wal_record_release(&w);
	return 0;
}

#else /* FUZZ_GEN_CORPUS: writes the seeds */
#include <stdio.h>
#include <sys/stat.h>

#include "tests/golden/walrecord.h"

static void put_hex(const char *name, const char *hex)
{
	uint8_t b[1024];
	size_t n = strlen(hex) / 2;
	if (n > sizeof(b) || bk_unhex(b, n, hex) < 0) {
		fprintf(stderr, "bad hex for %s\n", name);
		fuzz_failures++;
		return;
	}
	fuzz_put(name, b, n);
}

/* A valid record and its variants: cut in half, version 5, one trailing byte. */
static void put_family(const char *name, const BkWalRecord *w)
{
	BkEnc e;
	encode(w, &e);
	char nm[256];
	snprintf(nm, sizeof(nm), "valid-%s", name);
	fuzz_put(nm, e.buf, e.len);
	snprintf(nm, sizeof(nm), "bad-truncated-%s", name);
	fuzz_put(nm, e.buf, e.len / 2);
	bk_enc_u8(&e, 0);
	snprintf(nm, sizeof(nm), "bad-trailing-%s", name);
	fuzz_put(nm, e.buf, e.len);
	e.buf[0] = 5;
	snprintf(nm, sizeof(nm), "bad-version-%s", name);
	fuzz_put(nm, e.buf, e.len - 1);
	bk_enc_release(&e);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s corpus/pg-walrecord\n", argv[0]);
		return 2;
	}
	fuzz_out_dir = argv[1];
	mkdir(fuzz_out_dir, 0777);

	put_hex("golden-v1", GOLDEN_WAL_V1);
	put_hex("golden-v2", GOLDEN_WAL_V2_REV("04"));
	put_hex("golden-v2-rev1", GOLDEN_WAL_V2_REV("01"));
	put_hex("golden-v3", GOLDEN_WAL_V3("04", "03"));
	put_hex("golden-v4", GOLDEN_WAL_V4("04", "07", GOLDEN_WAL_CARRY));
	put_hex("golden-v4-no-carry", GOLDEN_WAL_V4("04", "03", ""));
	put_hex("bad-v4-carry-head-9", GOLDEN_WAL_V4("04", "07",
		"80e0ff1f" "09" "000102030405060708" "00000000"));
	put_hex("bad-v4-flags-bit-3", GOLDEN_WAL_V4("04", "0f", GOLDEN_WAL_CARRY));

	/* a 16 MiB segment in 128 KiB blocks, an end with a carry cut after 16 bytes */
	BkContentRef refs[128];
	for (int i = 0; i < 128; i++) {
		memset(refs[i].id, i * 3 + 1, 32);
		refs[i].size = BK_WAL_BLOCK;
	}
	BkWalRecord seg = { .name = "00000002000000A7000000FF", .size = 128ull * BK_WAL_BLOCK,
			    .sysid = 7301234567890123456ull, .tli = 2, .pushed_us = 1795380000000000,
			    .has_end = true,
			    .end = { .lsn = 0xA7FFFFFF28ull, .xact_us = 1795379999000000,
				     .cut_xact = true,
				     .carry = { .lsn = 0xA7FFFFFFE8ull, .head = 16 } },
			    .content = { .level = 0, .count = 128, .refs = refs } };
	for (int i = 0; i < 16; i++)
		seg.end.carry.hdr[i] = (uint8_t)(0xa0 + i);
	put_family("segment-carry-16", &seg);
	seg.end.carry = (BkWalCarry){ .lsn = 0xA7FFFFFFE0ull, .head = 24, .crc = 0x12345678 };
	seg.end.cut_xact = false;
	seg.end.cut_xact_us = -1;
	seg.end.stopped = true;
	put_family("segment-carry-24-stopped", &seg);
	seg.has_end = false;
	seg.end = (BkWalEnd){ 0 };
	put_family("segment-no-end", &seg);
	BkWalRecord hist = { .name = "00000003.history", .size = 100, .tli = 3,
			     .pushed_us = -5, .content = { .level = 0, .count = 1, .refs = refs } };
	refs[0].size = 100;
	put_family("history", &hist);
	BkWalRecord partial = hist;
	snprintf(partial.name, sizeof(partial.name), "000000010000000000000009.partial");
	partial.size = 0;
	partial.content.count = 0;
	put_family("partial-empty", &partial);
	BkWalRecord backup = hist;
	snprintf(backup.name, sizeof(backup.name), "000000010000000000000002.00000028.backup");
	put_family("backup-history", &backup);
	fuzz_put("bad-empty", NULL, 0);
	return fuzz_failures ? 1 : 0;
}
#endif
