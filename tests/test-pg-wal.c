/* tests/test-pg-wal.c: WAL names, LSNs, page headers and timeline history files.
 *
 * Without arguments: synthetic cases only. With
 *   --segment FILE --name NAME --sysid N
 * it also checks the first page of a real segment captured from a running
 * PostgreSQL 15 (tests/pg/pg-live.sh passes these). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg/crc32c.h"
#include "pg/wal.h"
#include "store/error.h"
#include "store/util.h"
#include "tests/pg/walgen.h"
#include "tests/tap.h"

#define MB (1024u * 1024u)

static void test_names(void)
{
	BkWalName n;

	is_int(bk_wal_name_parse("000000010000000200000003", &n), 0, "segment name parses");
	ok(n.kind == BK_WAL_SEGMENT && n.tli == 1 && n.log == 2 && n.seg == 3 && n.offset == 0,
	   "segment fields");
	is_int(bk_wal_name_parse("0000000A00000002000000FF.partial", &n), 0, "partial parses");
	ok(n.kind == BK_WAL_PARTIAL && n.tli == 10 && n.log == 2 && n.seg == 0xFF, "partial fields");
	is_int(bk_wal_name_parse("0000001F.history", &n), 0, "history parses");
	ok(n.kind == BK_WAL_HISTORY && n.tli == 31 && n.log == 0 && n.seg == 0, "history fields");
	is_int(bk_wal_name_parse("000000010000000000000002.00000028.backup", &n), 0,
	       "backup history parses");
	ok(n.kind == BK_WAL_BACKUP_HISTORY && n.tli == 1 && n.seg == 2 && n.offset == 0x28,
	   "backup history fields");

	static const char *bad[] = {
		"",
		"0000000100000002000000",           /* short */
		"0000000100000002000000031",        /* 25 digits */
		"00000001000000020000000a",         /* lower case */
		"000000000000000200000003",         /* timeline 0 */
		"00000000.history",
		"0000001f.history",
		"00000001.History",
		"1.history",
		"000000010000000200000003.partia",
		"000000010000000200000003.partial.x",
		"000000010000000200000003.backup",
		"000000010000000200000003.0000028.backup",
		"000000010000000200000003.000000280.backup",
		"000000010000000200000003.00000028.backupx",
		"000000010000000200000003.0000002g.backup",
		"00000001000000020000000G",
		"RECOVERYHISTORY",
		"RECOVERYXLOG",
		"archive_status",
		" 000000010000000200000003",
		"000000010000000200000003 ",
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(bad); i++) {
		BkWalName untouched = {.kind = (BkWalKind)99};
		int r = bk_wal_name_parse(bad[i], &untouched);
		ok(r == BK_E_USAGE && untouched.kind == (BkWalKind)99, "rejects \"%s\"", bad[i]);
	}
	ok(strstr(bk_error_detail(), "not a wal file name") != NULL, "detail names the problem: %s",
	   bk_error_detail());
}

static void test_segno(void)
{
	char out[BK_WAL_NAME_MAX];
	BkWalName n;
	uint64_t segno;

	ok(bk_wal_seg_size_valid(16 * MB) && bk_wal_seg_size_valid(MB) &&
	       bk_wal_seg_size_valid(1024 * MB),
	   "1 MiB, 16 MiB, 1 GiB segment sizes valid");
	ok(!bk_wal_seg_size_valid(0) && !bk_wal_seg_size_valid(MB / 2) &&
	       !bk_wal_seg_size_valid(3 * MB) && !bk_wal_seg_size_valid(2048u * MB),
	   "0, 512 KiB, 3 MiB, 2 GiB segment sizes invalid");

	is_int(bk_wal_segment_name(out, sizeof(out), 1, 0x1FF, 16 * MB), 0, "name of segno 0x1ff");
	ok(strcmp(out, "0000000100000001000000FF") == 0, "16 MiB: segno 0x1ff -> %s", out);
	is_int(bk_wal_segment_name(out, sizeof(out), 1, 0x1FF, 1024 * MB), 0, "1 GiB name");
	ok(strcmp(out, "000000010000007F00000003") == 0, "1 GiB: segno 0x1ff -> %s", out);
	is_int(bk_wal_segment_name(out, sizeof(out), 1, 0x1FF, MB), 0, "1 MiB name");
	ok(strcmp(out, "0000000100000000000001FF") == 0, "1 MiB: segno 0x1ff -> %s", out);
	is_int(bk_wal_partial_name(out, sizeof(out), 2, 0x1FF, 16 * MB), 0, "partial name");
	ok(strcmp(out, "0000000200000001000000FF.partial") == 0, "partial: segno 0x1ff -> %s", out);
	is_int(bk_wal_partial_name(out, 33, 2, 0x1FF, 16 * MB), 0, "a partial name fits 33 bytes");
	is_int(bk_wal_partial_name(out, 32, 2, 0x1FF, 16 * MB), -ENOSPC, "... not 32");

	/* round trips at every size */
	static const uint64_t segnos[] = {0, 1, 255, 256, 4095, 4096, 123456789, 0xFFFFFFFFull};
	for (uint32_t sz = MB; sz <= 1024 * MB && sz != 0; sz *= 2) {
		bool all = true;
		for (size_t i = 0; i < BK_ARRAY_SIZE(segnos); i++) {
			if (bk_wal_segment_name(out, sizeof(out), 7, segnos[i], sz) < 0 ||
			    bk_wal_name_parse(out, &n) < 0 || bk_wal_name_segno(&n, sz, &segno) < 0 ||
			    segno != segnos[i] || n.tli != 7)
				all = false;
		}
		ok(all, "segno -> name -> segno round trips at %u-byte segments", sz);
	}

	is_int(bk_wal_name_parse("000000010000000100000100", &n), 0, "parses");
	is_int(bk_wal_name_segno(&n, 16 * MB, &segno), BK_E_USAGE,
	       "segment field 0x100 out of range for 16 MiB");
	is_int(bk_wal_name_segno(&n, MB, &segno), 0, "but fine for 1 MiB");
	is_int(bk_wal_name_segno(&n, 3 * MB, &segno), BK_E_USAGE, "invalid size refused");
	bk_wal_name_parse("00000001.history", &n);
	is_int(bk_wal_name_segno(&n, 16 * MB, &segno), BK_E_USAGE, "history has no segno");
	bk_wal_name_parse("000000010000000000000001.01000000.backup", &n);
	is_int(bk_wal_name_segno(&n, 16 * MB, &segno), BK_E_USAGE,
	       "backup offset beyond the segment refused");

	is_int(bk_wal_segment_next(out, sizeof(out), "0000000100000001000000FF", 16 * MB), 0, "next");
	ok(strcmp(out, "000000010000000200000000") == 0, "next wraps the low field: %s", out);
	is_int(bk_wal_segment_next(out, sizeof(out), "000000030000000100000003", 1024 * MB), 0,
	       "next 1 GiB");
	ok(strcmp(out, "000000030000000200000000") == 0, "1 GiB next wraps at 4: %s", out);
	is_int(bk_wal_segment_next(out, sizeof(out), "0000000100000000000000FE.partial", 16 * MB), 0,
	       "next of a partial");
	ok(strcmp(out, "0000000100000000000000FF") == 0, "next of partial is a segment: %s", out);
	is_int(bk_wal_segment_next(out, sizeof(out), "00000001FFFFFFFF000000FF", 16 * MB), BK_E_USAGE,
	       "no segment after the last one");
	is_int(bk_wal_segment_next(out, sizeof(out), "00000001.history", 16 * MB), BK_E_USAGE,
	       "history has no next");
	is_int(bk_wal_segment_next(out, 24, "000000010000000000000001", 16 * MB), -ENOSPC,
	       "buffer one byte short: -ENOSPC");

	is_int(bk_wal_segment_name(out, sizeof(out), 0, 1, 16 * MB), BK_E_USAGE, "timeline 0");
	is_int(bk_wal_segment_name(out, sizeof(out), 1, UINT64_MAX, 16 * MB), BK_E_USAGE,
	       "segno beyond the lsn space");
	is_int(bk_wal_segment_name(out, sizeof(out), 1, UINT64_MAX / (16 * MB), 16 * MB), 0,
	       "the last segno of the lsn space");
	ok(strcmp(out, "00000001FFFFFFFF000000FF") == 0, "is named %s", out);
	is_int(bk_wal_lsn_segment_name(out, sizeof(out), 1, UINT64_C(0x16B374D848), 16 * MB), 0,
	       "lsn -> segment");
	ok(strcmp(out, "0000000100000016000000B3") == 0, "16/B374D848 is in %s", out);
	is_int(bk_wal_lsn_segment_name(out, sizeof(out), 2, UINT64_C(0x1000000), 16 * MB), 0,
	       "segment boundary");
	ok(strcmp(out, "000000020000000000000001") == 0, "0/1000000 starts %s", out);

	is_int(bk_wal_history_name(out, sizeof(out), 0x1F), 0, "history name");
	ok(strcmp(out, "0000001F.history") == 0, "history name %s", out);
	is_int(bk_wal_history_name(out, sizeof(out), 0), BK_E_USAGE, "history of timeline 0");
}

static void test_lsn(void)
{
	uint64_t lsn = 0;
	char out[BK_WAL_LSN_MAX];

	is_int(bk_wal_lsn_parse("16/B374D848", &lsn), 0, "parse 16/B374D848");
	ok(lsn == UINT64_C(0x16B374D848), "value");
	is_int(bk_wal_lsn_format(out, sizeof(out), lsn), 0, "format");
	ok(strcmp(out, "16/B374D848") == 0, "formats back: %s", out);
	is_int(bk_wal_lsn_parse("0/0", &lsn), 0, "0/0");
	ok(lsn == 0, "zero");
	bk_wal_lsn_format(out, sizeof(out), 0);
	ok(strcmp(out, "0/0") == 0, "formats 0/0");
	is_int(bk_wal_lsn_parse("FFFFFFFF/FFFFFFFF", &lsn), 0, "max");
	ok(lsn == UINT64_MAX, "max value");
	is_int(bk_wal_lsn_format(out, sizeof(out), lsn), 0, "format max into BK_WAL_LSN_MAX");
	ok(strcmp(out, "FFFFFFFF/FFFFFFFF") == 0, "max formats: %s", out);
	is_int(bk_wal_lsn_format(out, 17, lsn), -ENOSPC, "one byte short");
	is_int(bk_wal_lsn_parse("abc/def0", &lsn), 0, "lower case accepted");
	ok(lsn == UINT64_C(0xABC0000DEF0), "lower case value");
	is_int(bk_wal_lsn_parse("00000001/00000002", &lsn), 0, "leading zeros accepted");
	ok(lsn == UINT64_C(0x100000002), "leading zeros value");

	static const char *bad[] = {"", "/", "1/", "/1", "123456789/0", "0/123456789", "1/2/3",
	                            " 1/2", "1/2 ", "g/1", "1-2", "12", "+1/2", "1/-2", "0x1/2"};
	for (size_t i = 0; i < BK_ARRAY_SIZE(bad); i++) {
		uint64_t untouched = 42;
		ok(bk_wal_lsn_parse(bad[i], &untouched) == BK_E_USAGE && untouched == 42,
		   "rejects lsn \"%s\"", bad[i]);
	}
}

static void test_header_synthetic(void)
{
	uint8_t b[64];
	BkWalHeader h;
	const uint64_t sysid = UINT64_C(7310000000000000001);
	const uint64_t seg3 = UINT64_C(3) * 16 * MB;

	walgen_header(b, 0xD110, 0x0002, 1, seg3, sysid, 16 * MB, 8192);
	is_int(bk_wal_header_parse(b, 40, NULL, &h), 0, "valid header without a name");
	ok(h.magic == 0xD110 && h.pg_major == 15 && h.tli == 1 && h.pageaddr == seg3 &&
	       h.sysid == sysid && h.seg_size == 16 * MB && h.blcksz == 8192,
	   "fields read back");
	is_int(bk_wal_header_parse(b, 40, "000000010000000000000003", &h), 0, "matches its name");
	is_int(bk_wal_header_parse(b, 40, "000000010000000000000003.partial", &h), 0,
	       "matches its partial name");
	is_int(bk_wal_header_parse(b, 40, "000000020000000000000003", &h), 0,
	       "lower page timeline than name (first segment of a new timeline)");

	BkWalHeader untouched = {.sysid = 99};
	is_int(bk_wal_header_parse(b, 40, "000000010000000000000004", &untouched), BK_E_CORRUPT,
	       "header of segment 3 under the name of segment 4 (recycled file)");
	ok(untouched.sysid == 99, "output untouched on failure");
	ok(strstr(bk_error_detail(), "000000010000000000000004") != NULL, "detail: %s",
	   bk_error_detail());
	is_int(bk_wal_header_parse(b, 39, NULL, &h), BK_E_CORRUPT, "39 bytes too short");
	is_int(bk_wal_header_parse(b, 0, NULL, &h), BK_E_CORRUPT, "empty");
	is_int(bk_wal_header_parse(b, 40, "00000001.history", &h), BK_E_USAGE, "history name");
	is_int(bk_wal_header_parse(b, 40, "garbage", &h), BK_E_USAGE, "garbage name");

	walgen_header(b, 0xD110, 0x0002, 2, seg3, sysid, 16 * MB, 8192);
	is_int(bk_wal_header_parse(b, 40, "000000010000000000000003", &h), BK_E_CORRUPT,
	       "page timeline above the name's");

	/* 1 GiB segments: segment 3 of the 1 GiB layout is named ...00000003 too, but
	 * the address differs; the check must use the header's segment size. */
	walgen_header(b, 0xD110, 0x0002, 1, UINT64_C(5) * 1024 * MB, sysid, 1024 * MB, 8192);
	is_int(bk_wal_header_parse(b, 40, "000000010000000100000001", &h), 0,
	       "1 GiB segment 5 is 00000001/00000001");
	is_int(bk_wal_header_parse(b, 40, "000000010000000000000005", &h), BK_E_CORRUPT,
	       "and not 00000000/00000005");

	struct {
		uint16_t magic, info;
		uint32_t tli;
		uint64_t addr;
		uint32_t seg, blck;
		const char *what;
	} bad[] = {
		{0xD10F, 2, 1, seg3, 16 * MB, 8192, "unknown magic"},
		{0x10D1, 2, 1, seg3, 16 * MB, 8192, "byte-swapped magic"},
		{0xD110, 0, 1, seg3, 16 * MB, 8192, "short header flag"},
		{0xD110, 1, 1, seg3, 16 * MB, 8192, "contrecord without long header"},
		{0xD110, 0x12, 1, seg3, 16 * MB, 8192, "unknown flag bit"},
		{0xD110, 2, 0, seg3, 16 * MB, 8192, "timeline 0"},
		{0xD110, 2, 1, seg3 + 8192, 16 * MB, 8192, "page address inside a segment"},
		{0xD110, 2, 1, seg3, 3 * MB, 8192, "3 MiB segments"},
		{0xD110, 2, 1, 0, 0, 8192, "zero segment size"},
		{0xD110, 2, 1, seg3, 16 * MB, 1000, "block size 1000"},
		{0xD110, 2, 1, seg3, 16 * MB, 0, "block size 0"},
		{0xD110, 2, 1, seg3, 16 * MB, 512, "block size 512"},
		{0xD110, 2, 1, seg3, 16 * MB, 128 * 1024, "block size 128 KiB"},
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(bad); i++) {
		walgen_header(b, bad[i].magic, bad[i].info, bad[i].tli, bad[i].addr, sysid, bad[i].seg,
		            bad[i].blck);
		is_int(bk_wal_header_parse(b, 40, NULL, &h), BK_E_CORRUPT, "rejects %s", bad[i].what);
	}

	/* other majors and flags that are legal */
	walgen_header(b, 0xD116, 0x0007, 1, seg3, sysid, 16 * MB, 8192);
	is_int(bk_wal_header_parse(b, 40, NULL, &h), 0, "PG17 magic with all old flags");
	is_int(h.pg_major, 17, "pg 17");
	walgen_header(b, 0xD110, 0x0002, 1, seg3, sysid, 16 * MB, 65536);
	is_int(bk_wal_header_parse(b, 40, NULL, &h), 0, "64 KiB wal blocks, the largest");
	walgen_header(b, 0xD110, 0x000A, 1, seg3, sysid, 16 * MB, 8192);
	is_int(bk_wal_header_parse(b, 40, NULL, &h), 0, "overwrite-contrecord flag accepted");
	is_int(bk_wal_magic_version(0xD10D), 14, "0xD10D is 14");
	is_int(bk_wal_magic_version(0xD113), 16, "0xD113 is 16");
	is_int(bk_wal_magic_version(0), 0, "0 is unknown");
}

static void test_history(void)
{
	BkWalTliSwitch sw[8];
	size_t n = 99;
	const char *good = "1\t0/3000000\tno recovery target specified\n"
	                   "\n"
	                   "# a comment\n"
	                   "  2\t0/5000000\tbefore 2000-01-01 00:00:00+00\n"
	                   "5 16/B374D848 at restore point \"x\"";
	is_int(bk_wal_history_parse(good, strlen(good), 6, sw, 8, &n), 0, "history parses");
	is_int(n, 3, "three entries");
	ok(sw[0].tli == 1 && sw[0].end_lsn == 0x3000000 && sw[1].tli == 2 &&
	       sw[1].end_lsn == 0x5000000 && sw[2].tli == 5 && sw[2].end_lsn == UINT64_C(0x16B374D848),
	   "entries read back");
	is_int(bk_wal_history_parse("", 0, 2, sw, 8, &n), 0, "empty file");
	is_int(n, 0, "no entries");
	const char crlf[] = "1\t0/3000000\tx\r\n";
	is_int(bk_wal_history_parse(crlf, strlen(crlf), 0, sw, 8, &n), 0, "crlf line");
	const char same[] = "1\t0/3000000\tx\n2\t0/3000000\ty\n";
	is_int(bk_wal_history_parse(same, strlen(same), 0, sw, 8, &n), 0,
	       "two switches at one point");
	/* what PostgreSQL writes after a point-in-time recovery along timeline 2 to a
	 * target before 2 began: 2's history, a blank line (writeTimeLineHistory's),
	 * then the line of 2 (recoveryTargetTLI) with the earlier end of recovery */
	const char back[] = "1\t0/5000000\tno recovery target specified\n"
			    "\n2\t0/4000000\tbefore 2026-11-20 10:00:00+00\n";
	n = 77;
	is_int(bk_wal_history_parse(back, strlen(back), 3, sw, 8, &n), 0,
	       "a switch point before the one above (a recovery to before a fork) (%s)",
	       bk_error_detail());
	ok(n == 2 && sw[1].tli == 2 && sw[1].end_lsn == 0x4000000, "... read back");

	struct {
		const char *text;
		uint32_t file_tli;
		size_t max;
		int want;
		const char *what;
	} bad[] = {
		{"2\t0/3000000\n1\t0/4000000\n", 0, 8, BK_E_CORRUPT, "decreasing timelines"},
		{"1\t0/3000000\n1\t0/4000000\n", 0, 8, BK_E_CORRUPT, "repeated timeline"},
		{"x\t0/3000000\n", 0, 8, BK_E_CORRUPT, "non-numeric timeline"},
		{"1\n", 0, 8, BK_E_CORRUPT, "missing switch point"},
		{"1\t\n", 0, 8, BK_E_CORRUPT, "empty switch point"},
		{"1\t03000000\n", 0, 8, BK_E_CORRUPT, "switch point without slash"},
		{"1\t0/3000000x\n", 0, 8, BK_E_CORRUPT, "junk after switch point"},
		{"1x\t0/3000000\n", 0, 8, BK_E_CORRUPT, "junk after timeline"},
		{"0\t0/3000000\n", 0, 8, BK_E_CORRUPT, "timeline 0"},
		{"99999999999\t0/3000000\n", 0, 8, BK_E_CORRUPT, "timeline overflow"},
		{"1\t0/3000000\n2\t0/4000000\n", 2, 8, BK_E_CORRUPT, "entry not below file's timeline"},
		{"1\t0/3000000\n2\t0/4000000\n", 0, 1, -E2BIG, "more entries than room"},
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(bad); i++) {
		n = 77;
		int r = bk_wal_history_parse(bad[i].text, strlen(bad[i].text), bad[i].file_tli, sw,
		                             bad[i].max, &n);
		ok(r == bad[i].want && n == 77, "history: rejects %s (%d: %s)", bad[i].what, r,
		   bk_error_detail());
	}
	/* not NUL-terminated: the parser must stay inside len */
	char *heap = malloc(11);
	memcpy(heap, "1\t0/300000", 10);
	heap[10] = '0';
	is_int(bk_wal_history_parse(heap, 10, 0, sw, 8, &n), 0, "unterminated buffer, 10 bytes");
	ok(n == 1 && sw[0].end_lsn == 0x300000, "stops at len, not at a NUL");
	free(heap);
}

static int read_prefix(const char *path, uint8_t *buf, size_t len, size_t *ret_n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = 0;
	while (n < len) {
		ssize_t r = read(fd, buf + n, len - n);
		if (r < 0) {
			close(fd);
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*ret_n = n;
	return 0;
}

static void test_real_segment(const char *path, const char *name, uint64_t sysid)
{
	static uint8_t page[8192];
	size_t n = 0;
	BkWalHeader h;
	char next[BK_WAL_NAME_MAX];

	diag("real segment %s (%s), system identifier %" PRIu64, path, name, sysid);
	if (!ok(read_prefix(path, page, sizeof(page), &n) == 0 && n == sizeof(page),
	        "read the first page of the real segment"))
		return;
	int r = bk_wal_header_parse(page, n, name, &h);
	is_int(r, 0, "real header parses under its name (%s)", r ? bk_error_detail() : "ok");
	ok(h.magic == 0xD110 && h.pg_major == 15, "postgresql 15 magic 0x%04X", h.magic);
	ok(h.sysid == sysid, "system identifier matches pg_controldata (%" PRIu64 ")", h.sysid);
	is_int(h.seg_size, 16 * MB, "16 MiB segments");
	is_int(h.blcksz, 8192, "8 KiB wal blocks");
	is_int(h.tli, 1, "timeline 1");
	ok(h.info & 0x0002, "long header flag");

	uint64_t segno;
	BkWalName wn;
	bk_wal_name_parse(name, &wn);
	bk_wal_name_segno(&wn, h.seg_size, &segno);
	ok(h.pageaddr == segno * h.seg_size, "page address is the segment's start");

	is_int(bk_wal_segment_next(next, sizeof(next), name, 16 * MB), 0, "next name");
	is_int(bk_wal_header_parse(page, n, next, &h), BK_E_CORRUPT,
	       "real header refused under the next segment's name");
	page[0] ^= 0x01;
	is_int(bk_wal_header_parse(page, n, name, &h), BK_E_CORRUPT, "flipped magic bit refused");
	page[0] ^= 0x01;
	page[2] &= (uint8_t)~0x02;
	is_int(bk_wal_header_parse(page, n, name, &h), BK_E_CORRUPT, "cleared long flag refused");
	page[2] |= 0x02;
	page[33] ^= 0x10;
	is_int(bk_wal_header_parse(page, n, name, &h), BK_E_CORRUPT, "changed segment size refused");
	page[33] ^= 0x10;
	is_int(bk_wal_header_parse(page, n, name, &h), 0, "restored header parses again");

	/* the walk checks each record's CRC as PostgreSQL wrote it: it reaches the
	 * switch that ended the segment, and stops before bytes damaged on the way */
	uint8_t *seg = malloc(16 * MB);
	FILE *f = tmpfile();
	BkWalEnd whole, damaged;
	if (!ok(seg && f && read_prefix(path, seg, 16 * MB, &n) == 0 && n == 16 * MB,
		"read the whole real segment"))
		goto out;
	const uint64_t at = 5 * 8192 + 100; /* 16 bytes there: some of a record's */
	if (fwrite(seg, 1, n, f) != n || fflush(f) != 0 ||
	    bk_wal_last_record(fileno(f), name, NULL, &whole) != 0)
		whole.lsn = 0;
	ok(whole.lsn > h.pageaddr + at && whole.lsn < h.pageaddr + 16 * MB && !whole.stopped,
	   "the real segment's last record is %" PRIx64 ", past page 5, the switch", whole.lsn);
	for (int i = 0; i < 16; i++)
		seg[at + i] ^= 0xFF;
	if (fseek(f, 0, SEEK_SET) != 0 || fwrite(seg, 1, n, f) != n || fflush(f) != 0 ||
	    bk_wal_last_record(fileno(f), name, NULL, &damaged) != 0)
		damaged.lsn = UINT64_MAX;
	ok(damaged.lsn < h.pageaddr + at && damaged.stopped,
	   "damaged on page 5, its last record is before, stopped: %" PRIx64, damaged.lsn);
out:
	if (f)
		fclose(f);
	free(seg);
}

/* ---- the last record of a segment: synthetic 1 MiB segments, 8 KiB pages ---- */

/* Segments 3 and 4 of a 1 MiB-segment WAL (tests/pg/walgen.h). */
typedef WalGen Gen;

/* Appends one record that ends at offset `to` of the same page. */
static void gen_fill_to(Gen *g, uint64_t to)
{
	uint64_t at = (g->pos + 7) & ~(uint64_t)7;
	walgen_record(g, (uint32_t)(to - at), 10, 0);
}

/* Walks segment 3 (next: segment 4, with prev the carry from segment 3), with the
 * visitor fn when not NULL. */
static int walk_gen_fn(Gen *g, bool next, const BkWalCarry *prev, BkWalRecFn fn, void *ud,
		       BkWalEnd *end)
{
	FILE *f = tmpfile();
	if (!f || fwrite(g->seg + (next ? MB : 0), 1, MB, f) != MB || fflush(f) != 0)
		return -EIO;
	const char *name = next ? "000000010000000000000004" : "000000010000000000000003";
	int e = fn ? bk_wal_walk(fileno(f), name, prev, fn, ud, end)
		   : bk_wal_last_record(fileno(f), name, prev, end);
	fclose(f);
	return e;
}

static int walk_gen(Gen *g, bool next, const BkWalCarry *prev, BkWalEnd *end)
{
	return walk_gen_fn(g, next, prev, NULL, NULL, end);
}

static int last_of(Gen *g, uint64_t *ret)
{
	BkWalEnd end;
	int e = walk_gen(g, false, NULL, &end);
	*ret = end.lsn;
	g->xact_us = end.xact_us;
	g->cut_xact = end.cut_xact;
	g->cut_xact_us = end.cut_xact_us;
	g->stopped = end.stopped;
	return e;
}

static void test_last_record(void)
{
	static Gen g;
	uint64_t got = 1;

	/* a continuation, a record whose header is split by a page header, one over
	 * several pages, then a switch: the rest of the segment is zeros */
	walgen_start(&g, 42, 100);
	walgen_record(&g, 50, 10, 0);
	gen_fill_to(&g, 8192 - 8); /* 8 bytes left on page 0 */
	walgen_record(&g, 200, 10, 0);
	walgen_record(&g, 20000, 10, 0);
	uint64_t sw = walgen_record(&g, 32, 0, 0x40);
	is_int(last_of(&g, &got), 0, "a segment that ends with a switch");
	ok(got == sw, "the last record is the switch (%" PRIx64 ", want %" PRIx64 ")", got, sw);
	ok(!g.stopped, "the walk ends there as a whole segment's does");

	/* a switch-like info on another resource manager does not end the walk */
	walgen_start(&g, 42, 0);
	walgen_record(&g, 32, 1, 0x40);
	uint64_t after = walgen_record(&g, 60, 10, 0);
	is_int(last_of(&g, &got), 0, "a segment with no continuation, ending in zeros");
	ok(got == after, "the last record is the one before the zeros");
	ok(g.stopped, "the walk stopped short of the segment's end (no switch before the zeros)");

	/* a record that goes on into the next segment cannot be read without it: the
	 * last one is the one before */
	walgen_start(&g, 42, 0);
	uint64_t lsn = 0, prev = 0;
	while (g.pos < MB - 300) {
		prev = lsn;
		lsn = walgen_record(&g, 1000, 10, 0);
	}
	is_int(last_of(&g, &got), 0, "a segment full to its end");
	ok(got == prev && prev && g.pos > MB - 300, "the last record is the one before the one that "
	   "runs past the end (%" PRIx64 ", want %" PRIx64 ")", got, prev);
	ok(!g.stopped, "the walk did not stop short");
	/* likewise when even the header of the last one is cut by the end */
	walgen_start(&g, 42, 0);
	while (g.pos < MB - 8192)
		walgen_record(&g, 2000, 10, 0);
	ok(g.pos <= MB - 16 - 24, "(room for a record before the last 16 bytes)");
	uint64_t at = (g.pos + 7) & ~(uint64_t)7;
	gen_fill_to(&g, MB - 16);
	prev = g.base + at;
	walgen_record(&g, 100, 10, 0);
	is_int(last_of(&g, &got), 0, "a segment whose last record header is cut");
	ok(got == prev && !g.stopped, "the last record is the one before it, not stopped short");

	/* a record cut by a crash: the next page does not continue it (PostgreSQL 14+
	 * marks it XLP_FIRST_IS_OVERWRITE_CONTRECORD) and starts afresh */
	walgen_start(&g, 42, 0);
	walgen_record(&g, 40, 10, 0);
	gen_fill_to(&g, 8192 - 104);
	uint64_t prev_of_torn = g.prev;
	uint8_t hdr[24] = { 0 };
	bk_put_le32(hdr, 3000);
	bk_put_le64(hdr + 8, g.prev);
	hdr[17] = 10;
	walgen_put(&g, hdr, sizeof(hdr), 3000);
	walgen_put(&g, NULL, 80, 2976); /* to the page's end, no further */
	uint8_t *h = g.seg + 8192;
	bk_put_le16(h, 0xD110);
	bk_put_le16(h + 2, 0x0008);
	bk_put_le32(h + 4, 1);
	bk_put_le64(h + 8, g.base + 8192);
	g.pos = 8192 + 24;
	walgen_record(&g, 100, 0, 0x00);
	lsn = walgen_record(&g, 60, 10, 0);
	is_int(last_of(&g, &got), 0, "a segment with a record cut by a crash");
	ok(got == lsn, "the walk goes on after it, as recovery does (%" PRIx64 ", want %" PRIx64 ")",
	   got, lsn);

	/* the same cut without PostgreSQL's mark: the next page neither continues the
	 * record nor says it was cut, and recovery stops there */
	bk_put_le16(h + 2, 0x0000);
	is_int(last_of(&g, &got), 0, "a segment with a cut record, the next page unmarked");
	ok(got == prev_of_torn, "ends the walk before it");

	/* a record that does not name the one before it (xl_prev) is not WAL after it */
	walgen_start(&g, 42, 0);
	walgen_record(&g, 40, 10, 0);
	prev = walgen_record(&g, 40, 10, 0);
	uint64_t bad = walgen_record(&g, 40, 10, 0);
	walgen_record(&g, 40, 10, 0);
	bk_put_le64(g.seg + (bad - g.base) + 8, prev - 8);
	walgen_seal(&g, bad);
	is_int(last_of(&g, &got), 0, "a segment with a record whose xl_prev is wrong");
	ok(got == prev && g.stopped, "ends the walk before that record, stopped");

	/* a damaged record (its bytes do not give its xl_crc) ends the walk before it,
	 * as it ends recovery: in its body, in its part on a later page, in its header,
	 * in xl_crc itself */
	static const struct {
		uint64_t at; /* from the damaged record's start; page 2 of the long one */
		const char *what;
	} damage[] = { { 24 + 3, "its body" }, { 2 * 8192 + 100, "its part on a later page" },
		       { 16, "its header" }, { 21, "its xl_crc" } };
	for (size_t i = 0; i < BK_ARRAY_SIZE(damage); i++) {
		walgen_start(&g, 42, 0);
		walgen_record(&g, 40, 10, 0);
		prev = walgen_record(&g, 40, 10, 0);
		bad = walgen_record(&g, 20000, 10, 0);
		lsn = walgen_record(&g, 40, 10, 0);
		gen_fill_to(&g, 8192 * (g.pos / 8192 + 1)); /* to a page's end, then ... */
		while (g.pos < MB - 8192)
			walgen_record(&g, 8000, 10, 0);
		gen_fill_to(&g, MB); /* ... records to the segment's very end */
		is_int(last_of(&g, &got), 0, "(the segment, undamaged)");
		ok(got > lsn && !g.stopped, "(is walked to its end)");
		uint64_t where = bad - g.base + damage[i].at;
		if (damage[i].at > 8192)
			where = 2 * 8192 + 100;
		g.seg[where] ^= 0x04;
		is_int(last_of(&g, &got), 0, "a record damaged in %s", damage[i].what);
		ok(got == prev && g.stopped, "ends the walk before it, stopped (%" PRIx64 ", want %"
		   PRIx64 ")", got, prev);
	}
	/* a damaged commit's time does not count */
	walgen_start(&g, 42, 0);
	prev = walgen_record(&g, 40, 10, 0);
	uint8_t stamped[2 + 1 + 2 + 8] = { 253, 0x01, 0x00, 255, 16 };
	bk_put_le64(stamped + 5, (uint64_t)INT64_C(848620800000000));
	bad = walgen_record_body(&g, 24 + 5 + 16, 1, 0x00, stamped, sizeof(stamped));
	is_int(last_of(&g, &got), 0, "(a segment with a commit)");
	ok(got == bad && g.xact_us != 0, "(has the commit's time)");
	g.seg[bad - g.base + 24 + 5 + 7] ^= 0x01; /* the time's high byte */
	is_int(last_of(&g, &got), 0, "a segment whose one commit is damaged");
	ok(got == prev && g.xact_us == 0, "has no transaction time");

	/* a continuation page whose xlp_rem_len is not what the record has left */
	walgen_start(&g, 42, 0);
	prev = walgen_record(&g, 40, 10, 0);
	walgen_record(&g, 20000, 10, 0);
	bk_put_le32(g.seg + 8192 + 16, 7);
	is_int(last_of(&g, &got), 0, "a segment with a wrong xlp_rem_len");
	ok(got == prev && g.stopped, "ends the walk before that record, stopped");

	/* a page the record goes on into, its header right but for the magic (another
	 * major's) or xlp_pageaddr (another position's): not this segment's, though its
	 * bytes, which xl_crc covers, are the record's */
	for (int k = 0; k < 2; k++) {
		walgen_start(&g, 42, 0);
		prev = walgen_record(&g, 40, 10, 0);
		walgen_record(&g, 20000, 10, 0);
		walgen_record(&g, 40, 10, 0);
		if (k == 0)
			bk_put_le16(g.seg + 8192, 0xD113);
		else
			bk_put_le64(g.seg + 8192 + 8, g.base + MB + 8192);
		is_int(last_of(&g, &got), 0, "a record's second page with %s",
		       k == 0 ? "another magic" : "another page address");
		ok(got == prev && g.stopped, "ends the walk before that record, stopped");
	}

	/* a page that says it goes on with a record where one starts (the one before
	 * ended at its start) is not WAL written after it: PostgreSQL's reader stops */
	walgen_start(&g, 42, 0);
	walgen_record(&g, 40, 10, 0);
	gen_fill_to(&g, 8192);
	prev = g.prev;
	walgen_record(&g, 40, 10, 0);
	walgen_record(&g, 40, 10, 0);
	g.seg[8192 + 2] |= 0x01;
	is_int(last_of(&g, &got), 0, "a page with the contrecord flag where a record starts");
	ok(got == prev && g.stopped, "ends the walk at that page, stopped");

	/* a length below a record header's is not a record, also on the segment's last
	 * page, where it could seem to go on into the next segment (its xl_prev right) */
	walgen_start(&g, 42, 0);
	while (g.pos < MB - 8192)
		walgen_record(&g, 2000, 10, 0);
	gen_fill_to(&g, MB - 200);
	prev = g.prev;
	bk_put_le32(g.seg + MB - 200, 16);
	bk_put_le64(g.seg + MB - 200 + 8, prev);
	{
		BkWalEnd e3;
		is_int(walk_gen(&g, false, NULL, &e3), 0, "a length of 16 on the last page");
		ok(e3.lsn == prev && e3.stopped && !e3.carry.head && !e3.cut_xact,
		   "ends the walk there, stopped, nothing carried");
	}

	/* a page that is not this segment's (stale bytes of a recycled file) ends it */
	walgen_start(&g, 42, 0);
	walgen_record(&g, 40, 10, 0);
	gen_fill_to(&g, 8192 - 64);
	walgen_record(&g, 8192, 10, 0);
	lsn = walgen_record(&g, 40, 10, 0);
	ok(g.pos == 2 * 8192, "(the record before the stale page ends at its start)");
	bk_put_le64(g.seg + 2 * 8192 + 8, UINT64_C(99) * MB);
	memset(g.seg + 2 * 8192 + 24, 0x33, 100);
	is_int(last_of(&g, &got), 0, "a segment whose third page is stale");
	ok(got == lsn && g.stopped, "the last record is the one that ends before it, stopped");

	/* a switch record cut by the previous segment's end after 8 or 16 of its 24
	 * bytes: its tail (xl_info, xl_rmid, the CRC) begins this segment, and uses it
	 * up as a whole switch would; zeros follow, and that is no damage (found by
	 * review: a real server switched at a segment's end minus 8 or 16) */
	for (uint32_t rem = 8; rem <= 16; rem += 8) {
		walgen_start(&g, 42, rem);
		g.seg[40 + rem - 8] = 0x40; /* XLOG_SWITCH */
		g.seg[40 + rem - 7] = 0;    /* RM_XLOG_ID */
		is_int(last_of(&g, &got), 0, "a segment that a switch's last %u bytes begin", rem);
		ok(got == 0 && !g.stopped && !g.cut_xact, "has no record, and is whole");
		g.seg[40 + rem - 7] = 10; /* another resource manager's */
		is_int(last_of(&g, &got), 0, "the same with another record's last %u bytes", rem);
		ok(got == 0 && g.stopped, "stops short at the zeros after them");
	}

	/* nothing begins in a segment that one record covers */
	walgen_start(&g, 42, MB);
	is_int(last_of(&g, &got), 0, "a segment inside one record");
	ok(got == 0 && !g.stopped, "has no last record, and is whole");

	/* transactions: the end time of the last commit or abort that lies whole in the
	 * segment (TimestampTz, microseconds since 2000-01-01), after the record's
	 * block headers: here a replication origin, then the main data's short header */
	walgen_start(&g, 42, 0);
	walgen_record(&g, 40, 10, 0);
	uint8_t commit[2 + 1 + 2 + 8] = { 253, 0x01, 0x00, 255, 16 };
	int64_t t_pg = INT64_C(848620800000000); /* 2026-11-22 00:00:00 UTC */
	bk_put_le64(commit + 5, (uint64_t)t_pg);
	walgen_record_body(&g, 24 + 5 + 16, 1, 0x00, commit, sizeof(commit)); /* a commit */
	walgen_record_body(&g, 24 + 5 + 16, 1, 0x10, commit, sizeof(commit)); /* a prepare: not an end */
	uint8_t earlier[sizeof(commit)];
	memcpy(earlier, commit, sizeof(commit));
	bk_put_le64(earlier + 5, (uint64_t)(t_pg - 500)); /* stamped before, written after */
	walgen_record_body(&g, 24 + 5 + 16, 1, 0x00, earlier, sizeof(earlier));
	walgen_record(&g, 60, 10, 0);
	is_int(last_of(&g, &got), 0, "a segment with a commit");
	ok(g.xact_us == t_pg + INT64_C(946684800000000), "the latest end is the commit's, though "
	   "one written after it was stamped earlier (%" PRId64 ")", g.xact_us);
	walgen_start(&g, 42, 0);
	walgen_record(&g, 40, 10, 0);
	uint8_t abort_long[1 + 4 + 8] = { 254, 16, 0, 0, 0 }; /* the long header: u32 length */
	bk_put_le64(abort_long + 5, (uint64_t)(t_pg + 1000000));
	walgen_record_body(&g, 24 + 5 + 16, 1, 0x20, abort_long, sizeof(abort_long));
	is_int(last_of(&g, &got), 0, "a segment with an abort");
	ok(g.xact_us == t_pg + 1000000 + INT64_C(946684800000000), "counts it too");
	walgen_start(&g, 42, 0);
	walgen_record(&g, 40, 10, 0);
	is_int(last_of(&g, &got), 0, "a segment without a transaction");
	ok(g.xact_us == 0 && !g.cut_xact, "has no transaction time");
	/* after a top-level xid (XLR_BLOCK_ID_TOPLEVEL_XID and 4 bytes) */
	walgen_start(&g, 42, 0);
	uint8_t toplevel[1 + 4 + 2 + 8] = { 252, 0x04, 0x03, 0x02, 0x01, 255, 8 };
	bk_put_le64(toplevel + 7, (uint64_t)t_pg);
	walgen_record_body(&g, 24 + 7 + 8, 1, 0x00, toplevel, sizeof(toplevel));
	is_int(last_of(&g, &got), 0, "a segment with a commit after a top-level xid");
	ok(g.xact_us == t_pg + INT64_C(946684800000000), "counts it");

	/* a commit that the segment's end cuts is the segment's last transaction (a
	 * walk back must not take the one before it for the last): its time is read
	 * when the part here holds it, else it is said to be unknown */
	walgen_start(&g, 42, 0);
	walgen_record_body(&g, 24 + 5 + 16, 1, 0x00, commit, sizeof(commit));
	while (g.pos < MB - 8192)
		walgen_record(&g, 2000, 10, 0);
	gen_fill_to(&g, MB - 40);
	walgen_record_body(&g, 24 + 5 + 16, 1, 0x00, earlier, sizeof(earlier));
	is_int(last_of(&g, &got), 0, "a segment whose end cuts a commit after its time");
	ok(!g.cut_xact && g.cut_xact_us == t_pg - 500 + INT64_C(946684800000000) &&
	   g.xact_us == t_pg + INT64_C(946684800000000),
	   "gives its time apart from the whole one's before it");
	walgen_start(&g, 42, 0);
	while (g.pos < MB - 8192)
		walgen_record(&g, 2000, 10, 0);
	gen_fill_to(&g, MB - 32);
	walgen_record_body(&g, 24 + 5 + 16, 1, 0x00, earlier, sizeof(earlier));
	is_int(last_of(&g, &got), 0, "a segment whose end cuts a commit before its time");
	ok(g.cut_xact && !g.cut_xact_us, "says that its time is not known");
	/* another record cut there says nothing of the kind, nor does a prepare */
	g.seg[MB - 32 + 17] = 10;
	is_int(last_of(&g, &got), 0, "a segment whose end cuts another record");
	ok(!g.cut_xact && !g.cut_xact_us, "is not cut in a transaction");
	g.seg[MB - 32 + 17] = 1;
	g.seg[MB - 32 + 16] = 0x10;
	is_int(last_of(&g, &got), 0, "a segment whose end cuts a prepare");
	ok(!g.cut_xact && !g.cut_xact_us, "is not cut in a transaction's end");
	/* cut right after its time: an origin, the main data's long header, the time */
	walgen_start(&g, 42, 0);
	while (g.pos < MB - 8192)
		walgen_record(&g, 2000, 10, 0);
	gen_fill_to(&g, MB - 40);
	uint8_t to_end[3 + 5 + 8] = { 253, 0x01, 0x00, 254, 16 };
	bk_put_le64(to_end + 8, (uint64_t)t_pg);
	walgen_record_body(&g, 24 + 8 + 16, 1, 0x00, to_end, sizeof(to_end));
	is_int(last_of(&g, &got), 0, "a segment whose end cuts a commit right after its time");
	ok(!g.cut_xact && g.cut_xact_us == t_pg + INT64_C(946684800000000), "gives its time");
	/* a record whose header the end cuts may be one */
	walgen_start(&g, 42, 0);
	while (g.pos < MB - 8192)
		walgen_record(&g, 2000, 10, 0);
	gen_fill_to(&g, MB - 16);
	walgen_record(&g, 100, 10, 0);
	is_int(last_of(&g, &got), 0, "a segment whose end cuts a record's header");
	ok(g.cut_xact, "may be cut in a transaction");

	/* A record that segment 3's end cuts is checked across the two when segment
	 * 4 is walked with segment 3's carry: its CRC over both parts (damage in the
	 * part segment 4 holds was not found before), its length against xlp_rem_len,
	 * the contrecord flag, and the next record's xl_prev. Cut in its body, and in
	 * its header after 16 and 8 bytes. */
	for (uint32_t cut = 0; cut <= 16; cut += 8) {
		const char *where = cut == 0 ? "body" : cut == 8 ? "header after 16 bytes" :
					       "header after 8 bytes";
		uint64_t head_at = cut == 0 ? MB - 2000 : MB - 24 + cut; /* the cut record's */
		walgen_start(&g, 42, 0);
		while (g.pos < MB - 8192)
			walgen_record(&g, 2000, 10, 0);
		gen_fill_to(&g, head_at);
		prev = g.prev;
		uint64_t cut_lsn = walgen_record(&g, 6000, 10, 0);
		uint64_t next = walgen_record(&g, 40, 10, 0);
		uint64_t last4 = walgen_record(&g, 32, 0, 0x40); /* a switch: segment 4 is whole */
		BkWalEnd e3, e4;
		is_int(walk_gen(&g, false, NULL, &e3), 0, "segment 3, whose end cuts a record's %s",
		       where);
		ok(e3.lsn == prev && !e3.stopped && e3.carry.lsn == cut_lsn &&
		   e3.carry.head == (cut ? 24 - cut : 24) && bk_get_le32(e3.carry.hdr) == 6000 &&
		   (cut == 0 || e3.carry.crc == 0),
		   "carries that record on: its LSN, %u bytes of its header", e3.carry.head);
		is_int(walk_gen(&g, true, &e3.carry, &e4), 0, "segment 4 with segment 3's carry");
		ok(e4.lsn == last4 && !e4.stopped && e4.carry.head == 0,
		   "is whole: the record checks out across the two (%" PRIx64 ")", e4.lsn);
		uint64_t in4 = MB + 40 + (cut ? 3 : 100); /* in its header's rest, or its data */
		g.seg[in4] ^= 0x10;
		is_int(walk_gen(&g, true, NULL, &e4), 0, "damaged in segment 4's part, without a carry");
		ok(e4.lsn == last4 && !e4.stopped, "(is not found: the part there is not checked)");
		is_int(walk_gen(&g, true, &e3.carry, &e4), 0, "... with segment 3's carry");
		ok(e4.lsn == 0 && e4.stopped, "stops at once: recovery ends at the record before");
		g.seg[in4] ^= 0x10;
		if (cut == 0) { /* damaged in segment 3's part: the carry's CRC differs */
			g.seg[MB - 2000 + 100] ^= 0x01;
			BkWalEnd d3;
			is_int(walk_gen(&g, false, NULL, &d3), 0, "damaged in segment 3's part");
			is_int(walk_gen(&g, true, &d3.carry, &e4), 0, "... segment 4 with that carry");
			ok(e4.lsn == 0 && e4.stopped, "stops at once");
			g.seg[MB - 2000 + 100] ^= 0x01;
		}
		/* the length segment 4's first page gives must be what the record has left
		 * (here: as if it went on past segment 4 too) */
		bk_put_le32(g.seg + MB + 16, bk_get_le32(g.seg + MB + 16) + MB);
		is_int(walk_gen(&g, true, &e3.carry, &e4), 0, "a wrong xlp_rem_len with the carry");
		ok(e4.lsn == 0 && e4.stopped && !e4.carry.head, "stops at once");
		bk_put_le32(g.seg + MB + 16, bk_get_le32(g.seg + MB + 16) - MB);
		if (cut) { /* shorter than the header's rest */
			uint32_t rem = bk_get_le32(g.seg + MB + 16);
			bk_put_le32(g.seg + MB + 16, 4);
			is_int(walk_gen(&g, true, &e3.carry, &e4), 0, "an xlp_rem_len of 4 with the carry");
			ok(e4.lsn == 0 && e4.stopped, "stops at once");
			bk_put_le32(g.seg + MB + 16, rem);
		}
		/* a segment 4 with the record's rest only, then zeros: recovery reads that
		 * record (the segment's lsn), no further */
		{
			uint8_t save[64];
			uint64_t nat = next - g.base;
			memcpy(save, g.seg + nat, sizeof(save));
			memset(g.seg + nat, 0, sizeof(save));
			is_int(walk_gen(&g, true, &e3.carry, &e4), 0, "segment 4, the record's rest, zeros");
			ok(e4.stopped && e4.lsn == cut_lsn, "reaches that record, stopped after it");
			memcpy(g.seg + nat, save, sizeof(save));
		}
		/* the next record must name the record carried over (xl_prev) */
		uint64_t nx = next - g.base;
		bk_put_le64(g.seg + nx + 8, cut_lsn - 8);
		walgen_seal(&g, next);
		is_int(walk_gen(&g, true, NULL, &e4), 0, "the next record's xl_prev wrong, no carry");
		ok(e4.lsn == last4, "(is not found)");
		is_int(walk_gen(&g, true, &e3.carry, &e4), 0, "... with the carry");
		ok(e4.lsn == cut_lsn && e4.stopped, "stops before it, after the record carried over");
		bk_put_le64(g.seg + nx + 8, cut_lsn);
		walgen_seal(&g, next);
		/* a segment 4 that starts afresh, not going on with the record: recovery
		 * stops, unless its first page says the record was cut by a crash
		 * (XLP_FIRST_IS_OVERWRITE_CONTRECORD) */
		memset(g.seg + MB, 0, MB);
		g.pos = MB;
		walgen_record(&g, 40, 10, 0);
		last4 = walgen_record(&g, 32, 0, 0x40);
		is_int(walk_gen(&g, true, NULL, &e4), 0, "a segment 4 that starts afresh, no carry");
		ok(!e4.stopped && e4.lsn == last4, "(is whole)");
		is_int(walk_gen(&g, true, &e3.carry, &e4), 0, "... with segment 3's carry");
		ok(e4.stopped && e4.lsn == 0, "stops at once: the record cut there is not continued");
		bk_put_le16(g.seg + MB + 2, 0x000A);
		is_int(walk_gen(&g, true, &e3.carry, &e4), 0, "... marked as after a crash's cut");
		ok(!e4.stopped && e4.lsn == last4, "is whole, as recovery goes on there");
	}
	/* a record that goes on past segment 4 too is carried on */
	walgen_start(&g, 42, 0);
	while (g.pos < MB - 8192)
		walgen_record(&g, 2000, 10, 0);
	gen_fill_to(&g, MB - 4000);
	uint64_t huge = g.base + ((g.pos + 7) & ~(uint64_t)7);
	uint8_t big_hdr[24] = { 0 };
	bk_put_le32(big_hdr, 3 * MB);
	bk_put_le64(big_hdr + 8, g.prev);
	big_hdr[17] = 10;
	g.pos = (g.pos + 7) & ~(uint64_t)7;
	walgen_put(&g, big_hdr, 24, 3 * MB);
	walgen_put(&g, NULL, 2 * MB, 3 * MB - 24);
	{
		BkWalEnd e3, e4;
		is_int(walk_gen(&g, false, NULL, &e3), 0, "segment 3, whose end starts a 3 MiB record");
		is_int(walk_gen(&g, true, &e3.carry, &e4), 0, "segment 4, inside it");
		ok(!e4.stopped && e4.lsn == 0 && e4.carry.lsn == huge && e4.carry.head == 24 &&
		   e4.carry.crc != e3.carry.crc, "is whole, no record read whole, and carries it on");
		BkWalCarry bogus = e3.carry;
		bogus.head = 25;
		is_int(walk_gen(&g, true, &bogus, &e4), 0, "... with a carry of 25 header bytes");
		ok(!e4.stopped && e4.carry.head == 0, "which is taken for none");
	}
	/* the same, segment 3's end cutting its header after 16 bytes: segment 4
	 * completes the header, and carries all of it on */
	walgen_start(&g, 42, 0);
	while (g.pos < MB - 8192)
		walgen_record(&g, 2000, 10, 0);
	gen_fill_to(&g, MB - 16);
	huge = g.base + g.pos;
	bk_put_le64(big_hdr + 8, g.prev);
	walgen_put(&g, big_hdr, 24, 3 * MB);
	walgen_put(&g, NULL, 2 * MB, 3 * MB - 24);
	{
		BkWalEnd e3, e4;
		is_int(walk_gen(&g, false, NULL, &e3), 0, "segment 3, whose end cuts a 3 MiB record's header");
		is_int(walk_gen(&g, true, &e3.carry, &e4), 0, "segment 4, inside it");
		ok(!e4.stopped && e4.lsn == 0 && e4.carry.lsn == huge && e4.carry.head == 24 &&
		   !memcmp(e4.carry.hdr, big_hdr, 24), "carries it on, its header whole (%u)",
		   e4.carry.head);
	}

	/* the first page must be this segment's */
	walgen_start(&g, 42, 0);
	bk_put_le64(g.seg + 8, 4 * MB);
	is_int(last_of(&g, &got), BK_E_CORRUPT, "a first page of another segment is refused");
}

/* ---- the records of a walk: restore points ---- */

typedef struct {
	int n, rps, unknown; /* records visited; restore points named; unnamed */
	int xact_ends, prepared_ends;
	int64_t xact_us; /* the last transaction end's time */
	char names[8][64];
	uint64_t lsns[8];
	uint64_t last_lsn;
	uint32_t last_xid; /* the last visited's xl_xid, xl_info, xl_rmid */
	uint8_t last_info, last_rmid;
	int stop_after; /* fail the walk at this record (0: never) */
	int nprep;
	uint32_t prepared_xids[8]; /* each prepared end's prepared_xid, in order */
} Visits;

static int on_rec(void *ud, const BkWalRec *r)
{
	Visits *v = ud;
	v->n++;
	v->last_lsn = r->lsn;
	v->last_xid = r->xid;
	v->last_info = r->info;
	v->last_rmid = r->rmid;
	v->xact_ends += r->xact_end;
	v->prepared_ends += r->prepared_end;
	if (r->xact_end || r->prepared_end)
		v->xact_us = r->xact_us;
	if (r->prepared_end && v->nprep < 8)
		v->prepared_xids[v->nprep++] = r->prepared_xid;
	if (r->restore_point && v->rps < 8) {
		snprintf(v->names[v->rps], sizeof(v->names[0]), "%s", r->restore_point);
		v->lsns[v->rps++] = r->lsn;
	} else if (r->unnamed) {
		v->unknown++;
	}
	return v->stop_after && v->n == v->stop_after ? -ECANCELED : 0;
}

/* A restore point's body: short main data of 72 bytes, its time, its name. */
static uint64_t gen_restore_point(Gen *g, const char *name)
{
	uint8_t body[74] = { 255, 72 };
	bk_put_le64(body + 2, 12345);
	snprintf((char *)body + 10, 64, "%s", name);
	return walgen_record_body(g, 24 + sizeof(body), 0, 0x70, body, sizeof(body));
}

/* A commit record whose main data starts with its time (PostgreSQL's epoch, µs). */
#define PG_EPOCH_UNIX_US INT64_C(946684800000000)
static uint64_t gen_commit(Gen *g, int64_t pg_us)
{
	uint8_t body[34] = { 255, 32 };
	bk_put_le64(body + 2, (uint64_t)pg_us);
	return walgen_record_body(g, 24 + sizeof(body), 1, 0x00, body, sizeof(body));
}

/* Fills segment 3 up to a record that starts `before_end` bytes before its end. */
static void gen_fill_to_end(Gen *g, uint64_t before_end)
{
	while (g->pos < MB - 8192)
		walgen_record(g, 2000, 10, 0);
	gen_fill_to(g, MB - before_end);
}

static void test_walk_visits(void)
{
	static Gen g;
	BkWalEnd e3, e4;

	/* whole restore points are named; other records too are visited in order;
	 * a walk without a visitor ends where the visited one does */
	walgen_start(&g, 42, 0);
	walgen_record(&g, 50, 10, 0);
	uint64_t first = gen_restore_point(&g, "before_migration");
	walgen_record(&g, 60, 1, 0x00);  /* a commit */
	walgen_record(&g, 60, 1, 0x10);  /* a prepare: no end */
	walgen_record(&g, 60, 1, 0x40);  /* an abort prepared */
	uint64_t second = gen_restore_point(&g, "daily");
	uint64_t last = walgen_record(&g, 60, 10, 0);
	Visits v = { 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "a walk with a visitor");
	is_int(v.n, 7, "visits each of the 7 records");
	ok(v.xact_ends == 1 && v.prepared_ends == 1, "one transaction's end, one prepared one's");
	ok(v.rps == 2 && !strcmp(v.names[0], "before_migration") && v.lsns[0] == first &&
	   !strcmp(v.names[1], "daily") && v.lsns[1] == second,
	   "names both restore points at their LSNs (%d: %s, %s)", v.rps, v.names[0], v.names[1]);
	ok(v.last_lsn == last && e3.lsn == last, "the last visited is the walk's last record");
	walgen_start(&g, 42, 0);
	gen_commit(&g, 777000000);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "a segment with a commit");
	ok(v.xact_ends == 1 && v.xact_us == 777000000 + PG_EPOCH_UNIX_US,
	   "its end time is given (%" PRId64 ")", v.xact_us);
	/* one that the segment's end cuts after its header and 8 bytes: given in the
	 * next segment's walk, from the carry and the rest */
	walgen_start(&g, 42, 0);
	gen_fill_to_end(&g, 32);
	gen_commit(&g, 888000000);
	walgen_record(&g, 60, 10, 0);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "segment 3, whose end cuts a commit");
	ok(v.xact_ends == 0 && e3.carry.nbody == 8, "not visited there; 8 bytes carried (%u)",
	   e3.carry.nbody);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, true, &e3.carry, on_rec, &v, &e4), 0, "segment 4 with that carry");
	ok(v.xact_ends == 1 && v.xact_us == 888000000 + PG_EPOCH_UNIX_US,
	   "its end time is given (%" PRId64 ")", v.xact_us);
	/* that walk of segment 3 again, now for the visitors that follow */
	walgen_start(&g, 42, 0);
	walgen_record(&g, 50, 10, 0);
	first = gen_restore_point(&g, "before_migration");
	walgen_record(&g, 60, 1, 0x00);
	walgen_record(&g, 60, 1, 0x10);
	walgen_record(&g, 60, 1, 0x40);
	gen_restore_point(&g, "daily");
	walgen_record(&g, 60, 10, 0);
	v = (Visits){ .stop_after = 2 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), -ECANCELED,
	       "a visitor's failure ends the walk with its code");
	is_int(v.n, 2, "... at once");

	/* a restore point that the segment's end cuts after its header: named in the
	 * next segment's walk, from the carry's bytes and the rest there */
	walgen_start(&g, 42, 0);
	gen_fill_to_end(&g, 40);
	uint64_t cut = gen_restore_point(&g, "cut_after_header");
	uint64_t after = walgen_record(&g, 60, 10, 0);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "segment 3, whose end cuts one");
	ok(v.rps == 0 && !v.unknown && e3.carry.head == 24 && e3.carry.nbody == 16,
	   "not visited there; its header and 16 bytes carried (%u, %u)", e3.carry.head,
	   e3.carry.nbody);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, true, &e3.carry, on_rec, &v, &e4), 0, "segment 4 with that carry");
	ok(v.rps == 1 && !strcmp(v.names[0], "cut_after_header") && v.lsns[0] == cut &&
	   v.last_lsn == after, "names it at its LSN (%d, %s)", v.rps, v.names[0]);
	BkWalCarry bare = e3.carry; /* as a WAL record keeps it: no bytes after the header */
	bare.nbody = 0;
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, true, &bare, on_rec, &v, &e4), 0, "... with a carry of no body");
	ok(v.rps == 0 && v.unknown == 1, "a restore point whose name is not known, said so");
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, true, NULL, on_rec, &v, &e4), 0, "... with no carry");
	ok(v.rps == 0 && !v.unknown && v.last_lsn == after, "not visited: not checked");

	/* a restore point whose header the segment's end cuts */
	walgen_start(&g, 42, 0);
	gen_fill_to_end(&g, 16);
	cut = gen_restore_point(&g, "cut_in_header");
	walgen_record(&g, 60, 10, 0);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "segment 3, whose end cuts a header");
	is_int(e3.carry.head, 16, "16 header bytes carried");
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, true, &e3.carry, on_rec, &v, &e4), 0, "segment 4 with that carry");
	ok(v.rps == 1 && !strcmp(v.names[0], "cut_in_header") && v.lsns[0] == cut,
	   "names it at its LSN (%d, %s)", v.rps, v.names[0]);

	/* a damaged restore point (its CRC) is not visited */
	walgen_start(&g, 42, 0);
	first = gen_restore_point(&g, "damaged");
	g.seg[40 + 24 + 12] ^= 1;
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "a segment with a damaged one");
	ok(v.n == 0 && e3.stopped, "not visited, and the walk stops there");
	/* one whose name fills its 64 bytes, with no NUL: not named */
	walgen_start(&g, 42, 0);
	uint8_t unterminated[74] = { 255, 72 };
	memset(unterminated + 10, 'x', 64);
	walgen_record_body(&g, 24 + sizeof(unterminated), 0, 0x70, unterminated, sizeof(unterminated));
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "a restore point without a NUL");
	ok(v.rps == 0 && v.unknown == 1, "its name is not known, said so");

	/* an abort ends a transaction too; a record's xl_xid, xl_info and xl_rmid are
	 * given as written (a target xid is matched against xl_xid) */
	walgen_start(&g, 42, 0);
	uint64_t ab = walgen_record(&g, 60, 1, 0x20);
	bk_put_le32(g.seg + (ab - g.base) + 4, 0xA1B2C3D4);
	walgen_seal(&g, ab);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "a segment with an abort");
	ok(v.xact_ends == 1 && v.last_xid == 0xA1B2C3D4 && v.last_info == 0x20 && v.last_rmid == 1,
	   "an end of transaction %X, info 0x%02X, rmid %u", v.last_xid, v.last_info, v.last_rmid);

	/* a segment whose first 8 or 16 bytes end another record, and hold what a
	 * switch's tail would (its length 64 to 79, say), then records: not a switch,
	 * the segment is walked on (found by review: it was taken for used up, and
	 * targets in it were never seen) */
	for (uint32_t rem = 8; rem <= 16; rem += 8) {
		walgen_start(&g, 42, rem);
		g.seg[40 + rem - 8] = 0x40;
		g.seg[40 + rem - 7] = 0;
		walgen_record(&g, 60, 10, 0);
		uint64_t c = gen_commit(&g, 777000000);
		v = (Visits){ 0 };
		is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0,
		       "a segment that begins with %u body bytes like a switch's, then records", rem);
		ok(v.xact_ends == 1 && e3.lsn == c && e3.xact_us != 0,
		   "... is walked: its commit is visited and is its last record (%" PRIx64 ")", e3.lsn);
	}
}

/* ---- the records of a walk: the xid a prepared transaction's end names ---- */

typedef struct {
	uint8_t op;	   /* 0x30 COMMIT PREPARED, 0x40 ABORT PREPARED */
	bool no_info;	   /* without XLOG_XACT_HAS_INFO (then no xinfo) */
	bool dbinfo, origin;
	uint32_t nsub, nrels, nstats, ninvals; /* with the flag when > 0 */
	uint32_t count_lie; /* when > 0, the subxacts' count written instead of nsub */
	const char *gid;   /* NULL: no XACT_XINFO_HAS_GID */
	uint32_t xid;
	size_t extra;	   /* bytes after the parts, in the main data's length */
} Prep;

/* A prepared transaction's end as PostgreSQL 15 writes it: long main data (an u32
 * length) of the time, xinfo and the parts the flags name. */
static uint64_t gen_prepared(Gen *g, const Prep *p)
{
	static uint8_t body[4096];
	uint8_t *d = body + 5;
	size_t n = 0;
	bk_put_le64(d, 123456789);
	n = 8;
	uint32_t xinfo = (1u << 4) | (p->dbinfo ? 1u : 0) | (p->nsub ? 1u << 1 : 0) |
			 (p->nrels ? 1u << 2 : 0) | (p->ninvals ? 1u << 3 : 0) |
			 (p->origin ? 1u << 5 : 0) | (p->gid ? 1u << 7 : 0) | (p->nstats ? 1u << 8 : 0);
	if (!p->no_info) {
		bk_put_le32(d + n, xinfo);
		n += 4;
	}
	if (p->dbinfo)
		n += 8;
	const uint32_t counts[4] = { p->nsub, p->nrels, p->nstats, p->ninvals };
	const size_t items[4] = { 4, 12, 12, 16 };
	for (int k = 0; k < 4; k++) {
		if (!counts[k])
			continue;
		bk_put_le32(d + n, k == 0 && p->count_lie ? p->count_lie : counts[k]);
		n += 4;
		memset(d + n, 0x5a, counts[k] * items[k]);
		n += counts[k] * items[k];
	}
	bk_put_le32(d + n, p->xid);
	n += 4;
	if (p->gid) {
		memcpy(d + n, p->gid, strlen(p->gid) + 1);
		n += strlen(p->gid) + 1;
	}
	if (p->origin)
		n += 16;
	n += p->extra;
	body[0] = 254;
	bk_put_le32(body + 1, (uint32_t)n);
	uint8_t info = (uint8_t)(p->op | (p->no_info ? 0 : 0x80));
	return walgen_record_body(g, (uint32_t)(24 + 5 + n), 1, info, body, 5 + n);
}

static void test_walk_prepared_xid(void)
{
	static Gen g;
	BkWalEnd e3, e4;
	static const struct {
		Prep p;
		uint32_t want;
		const char *what;
	} cases[] = {
		{ { 0x30, .dbinfo = true, .nsub = 3, .nrels = 2, .nstats = 1, .ninvals = 20,
		    .gid = "tx-1", .xid = 123456 }, 123456,
		  "a COMMIT PREPARED with every part, 400 bytes of them" },
		{ { 0x40, .origin = true, .xid = 777 }, 777, "an ABORT PREPARED with an origin" },
		{ { 0x30, .gid = "", .xid = 4000000000u }, 4000000000u, "an empty GID" },
		{ { 0x30, .dbinfo = true, .gid = "g", .xid = 5, .extra = 1 }, 0,
		  "parts one byte short of the main data: not read" },
		{ { 0x30, .nsub = 2, .count_lie = 1000000, .xid = 6 }, 0,
		  "a count past the main data: not read" },
		{ { 0x30, .no_info = true, .xid = 7 }, 0, "without xinfo: no xid" },
	};
	walgen_start(&g, 42, 0);
	for (size_t i = 0; i < BK_ARRAY_SIZE(cases); i++)
		gen_prepared(&g, &cases[i].p);
	Visits v = { 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "a segment of prepared ends");
	is_int(v.nprep, (int)BK_ARRAY_SIZE(cases), "each visited as one");
	for (size_t i = 0; i < BK_ARRAY_SIZE(cases); i++)
		ok(v.prepared_xids[i] == cases[i].want, "%s: xid %u (%u)", cases[i].what, cases[i].want,
		   v.prepared_xids[i]);

	/* one that the segment's end cuts after its header and 8 bytes: read in the
	 * next segment's walk, from the carry and the rest */
	Prep cut = { 0x30, .dbinfo = true, .gid = "cut", .xid = 424242 };
	walgen_start(&g, 42, 0);
	gen_fill_to_end(&g, 32);
	gen_prepared(&g, &cut);
	walgen_record(&g, 60, 10, 0);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "segment 3, whose end cuts one");
	ok(v.nprep == 0 && e3.carry.nbody == 8, "not visited there; 8 bytes carried (%u)",
	   e3.carry.nbody);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, true, &e3.carry, on_rec, &v, &e4), 0, "segment 4 with that carry");
	ok(v.nprep == 1 && v.prepared_xids[0] == 424242, "its xid is read (%u)", v.prepared_xids[0]);
	BkWalCarry bare = e3.carry;
	bare.nbody = 0;
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, true, &bare, on_rec, &v, &e4), 0, "... with a carry of no body");
	ok(v.nprep == 1 && v.prepared_xids[0] == 0, "its xid is not known, said so (0)");

	/* cut there too, with parts of 320 bytes before its xid: the segment before
	 * held 8 bytes of them, all carried, so the rest here gives the xid */
	Prep big = { 0x30, .ninvals = 20, .gid = "big", .xid = 515151 };
	walgen_start(&g, 42, 0);
	gen_fill_to_end(&g, 32);
	gen_prepared(&g, &big);
	walgen_record(&g, 60, 10, 0);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "segment 3, whose end cuts a big one");
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, true, &e3.carry, on_rec, &v, &e4), 0, "segment 4 with that carry");
	ok(v.nprep == 1 && v.prepared_xids[0] == 515151 && v.xact_us != 0,
	   "its xid and time are read (%u)", v.prepared_xids[0]);
	/* cut after 96 bytes of them, as many as a carry holds */
	walgen_start(&g, 42, 0);
	gen_fill_to_end(&g, 24 + BK_WAL_RP_BODY);
	gen_prepared(&g, &big);
	walgen_record(&g, 60, 10, 0);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, false, NULL, on_rec, &v, &e3), 0, "segment 3, whose end cuts one later");
	ok(e3.carry.nbody == BK_WAL_RP_BODY, "(%u bytes carried)", e3.carry.nbody);
	v = (Visits){ 0 };
	is_int(walk_gen_fn(&g, true, &e3.carry, on_rec, &v, &e4), 0, "segment 4 with that carry");
	ok(v.nprep == 1 && v.prepared_xids[0] == 515151 && v.xact_us != 0,
	   "its xid and time are read (%u)", v.prepared_xids[0]);
}

static void test_seg_size_parse(void)
{
	static const struct {
		const char *s;
		uint32_t want; /* 0: refused */
	} cases[] = {
		{ "16MB", 16 * MB }, { "1MB", MB },	      { "1GB", 1024 * MB }, { "1024kB", MB },
		{ "16777216", 16 * MB }, { "16777216B", 16 * MB }, { "2GB", 0 },   { "512kB", 0 },
		{ "3MB", 0 },	 { "16mb", 0 },	      { "", 0 },	    { "MB", 0 },
		{ "-16MB", 0 },	 { " 16MB", 0 },      { "16 MB", 0 },	    { "4294967312", 0 },
		{ "18446744073709551616MB", 0 }, { "1073741824", 1024 * MB },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(cases); i++) {
		uint32_t got = 7;
		int e = bk_wal_seg_size_parse(cases[i].s, &got);
		if (cases[i].want)
			ok(e == 0 && got == cases[i].want, "wal_segment_size '%s' is %u", cases[i].s,
			   cases[i].want);
		else
			ok(e == BK_E_CORRUPT && got == 7, "wal_segment_size '%s' is refused", cases[i].s);
	}
}

int main(int argc, char **argv)
{
	const char *segment = NULL, *name = NULL;
	uint64_t sysid = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--segment") == 0)
			segment = argv[i + 1];
		else if (strcmp(argv[i], "--name") == 0)
			name = argv[i + 1];
		else if (strcmp(argv[i], "--sysid") == 0)
			sysid = strtoull(argv[i + 1], NULL, 10);
	}

	test_names();
	test_seg_size_parse();
	test_segno();
	test_lsn();
	test_header_synthetic();
	test_history();
	test_last_record();
	test_walk_visits();
	test_walk_prepared_xid();
	if (segment && name)
		test_real_segment(segment, name, sysid);
	return tap_done();
}
