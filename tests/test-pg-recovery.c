/* Unit tests for bk_pg_auto_conf_clear (pg/datadir.h): the settings an earlier
 * restore left in postgresql.auto.conf (a backup of a server that was itself
 * restored carries them) are commented out before pg restore appends its own, so a
 * restore never gets two recovery targets or an old one; every other line stays as
 * it was, and archive_mode only goes when --archive-mode off writes a new one.
 * And bk_wal_archive_load (pg/walchain.h): a cluster record written with segment
 * size 0 takes the size of an archived segment (here a synthetic 1 MiB one).
 * And the segment ends wal-push records (WAL record version 2): a pushed segment's
 * record holds what bk_wal_last_record walks from its bytes; bk_pg_wal_last_xact
 * finds a commit behind 260 idle segments (the old rule gave up after 256) and
 * takes the ends from the records (records whose end differs from their bytes give
 * the recorded one), unless another walker revision wrote them; for a target
 * between commits stamped out of order across a segment's end, it goes on to the
 * later stamp in the earlier segment (all pushed after the target), names the
 * segment of the latest, stops at a cut and after the first segment pushed before
 * the target; under version 1
 * records it fetches and walks each segment, finding a commit 256 segments back
 * and answering "not known" at 257. Golden bytes of both versions, encoded and
 * decoded, and the decoder's refusals. WAL bytes are cut in BK_WAL_BLOCK blocks
 * from each file's start. And bk_pg_restore's --tablespace-mapping check: a NEW
 * in the data directory is refused however it is spelled (".." after a directory
 * not made yet or after a symbolic link, a link on the way). And the boundaries a
 * mutation audit of pg/recovery.c found untested: a backup's stop at a timeline's
 * switch point, stops and targets at a segment's boundary, targets at a backup's
 * stop or start, at the last record or the last commit archived, what recovery
 * reads for pg info, a commit whose rest runs through two segments, and the
 * --tablespace-mapping refusals. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg/crc32c.h"
#include "pg/datadir.h"
#include "pg/recovery.h"
#include "pg/walarchive.h"
#include "store/codec.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/index.h"
#include "store/keyslot.h"
#include "store/pack.h"
#include "store/restorer.h"
#include "store/tree.h"
#include "store/writer.h"
#include "store/util.h"
#include "tests/golden/walrecord.h"
#include "tests/tap.h"
#include "tests/test-repo.h"

#define MIB (1024u * 1024u)

static void test_seg_size_of_zero_record(void)
{
	TestRepo t;
	int e = test_repo_open(&t, "pg-recovery");
	BkRepo *r = t.r;
	const uint64_t sysid = UINT64_C(7310000000000000002);
	is_int(e, 0, "repository created");
	uint32_t seg = 0;
	BkWalArchive a;
	if (e == 0) {
		is_int(bk_cluster_claim(r, "c", sysid, 0, NULL), 0, "cluster recorded with segment size 0");
		is_int(bk_wal_archive_load(r, "c", &a), 0, "its segment size is read");
		seg = a.seg_size;
		bk_wal_archive_release(&a);
		is_int(seg, 16 * MIB, "16 MiB while no segment is archived");
		/* segment 3 of a 1 MiB layout: a long page header, then zeros */
		uint8_t *b = calloc(1, MIB);
		bk_put_le16(b, 0xD110);
		bk_put_le16(b + 2, 0x0002);
		bk_put_le32(b + 4, 1);
		bk_put_le64(b + 8, UINT64_C(3) * MIB);
		bk_put_le64(b + 24, sysid);
		bk_put_le32(b + 32, MIB);
		bk_put_le32(b + 36, 8192);
		char *f = bk_path_join(t.root, "000000010000000000000003");
		int fd = open(f, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
		ok(fd >= 0 && write(fd, b, MIB) == (ssize_t)MIB && close(fd) == 0, "segment written");
		bool stored = false;
		is_int(bk_wal_push(r, "c", f, &stored, NULL), 0, "a 1 MiB segment pushed (%s)",
		       bk_error_detail());
		is_int(bk_wal_archive_load(r, "c", &a), 0, "its segment size is read again");
		seg = a.seg_size;
		bk_wal_archive_release(&a);
		is_int(seg, MIB, "1 MiB, the archived segment's");
		free(f);
		free(b);
	}
	test_repo_close(&t);
}

/* ---- segment ends recorded at push ---- */

#define IDLE 260 /* > BK_WAL_XACT_SCAN_MAX */
#define PG_EPOCH_US INT64_C(946684800000000)

/* Segment segno of a 1 MiB layout: a long page header, then (commit_pg != 0) one
 * commit record stamped commit_pg (PostgreSQL's epoch), then zeros. */
static uint8_t *make_segment(uint64_t segno, uint64_t sysid, int64_t commit_pg)
{
	uint8_t *b = calloc(1, MIB);
	if (!b)
		return NULL;
	bk_put_le16(b, 0xD110);
	bk_put_le16(b + 2, 0x0002);
	bk_put_le32(b + 4, 1);
	bk_put_le64(b + 8, segno * MIB);
	bk_put_le64(b + 24, sysid);
	bk_put_le32(b + 32, MIB);
	bk_put_le32(b + 36, 8192);
	if (commit_pg) { /* header, origin, then main data: the commit's time */
		uint8_t *rec = b + 40;
		bk_put_le32(rec, 24 + 5 + 16);
		bk_put_le64(rec + 8, segno * MIB - 4096);
		rec[16] = 0x00; /* XLOG_XACT_COMMIT */
		rec[17] = 1;    /* RM_XACT_ID */
		static const uint8_t body[5] = { 253, 0x01, 0x00, 255, 16 };
		memcpy(rec + 24, body, sizeof(body));
		bk_put_le64(rec + 29, (uint64_t)commit_pg);
		bk_put_le32(rec + 20, bk_crc32c(bk_crc32c(0, rec + 24, 5 + 16), rec, 20));
	}
	return b;
}

/* Pushes a file of the given bytes under its name into cluster "a". */
static int push_file(BkRepo *r, const char *dir, const char *name, const void *b, size_t len)
{
	char *f = bk_path_join(dir, name);
	int e = -ENOMEM;
	if (f) {
		int fd = open(f, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
		e = fd >= 0 && write(fd, b, len) == (ssize_t)len && close(fd) == 0 ? 0 : -EIO;
		bool stored;
		if (e == 0)
			e = bk_wal_push(r, "a", f, &stored, NULL);
		unlink(f);
	}
	free(f);
	return e;
}

/* Segment segno of timeline tli, make_segment's (commit_pg: its one commit, or 0). */
static int push_tli_segment(BkRepo *r, const char *dir, uint32_t tli, uint64_t segno,
			    uint64_t sysid, int64_t commit_pg)
{
	char name[BK_WAL_NAME_MAX];
	bk_wal_segment_name(name, sizeof(name), tli, segno, MIB);
	uint8_t *b = make_segment(segno, sysid, commit_pg);
	if (!b)
		return -ENOMEM;
	bk_put_le32(b + 4, tli);
	int e = push_file(r, dir, name, b, MIB);
	free(b);
	return e;
}

static int push_segment(BkRepo *r, const char *dir, uint64_t segno, uint64_t sysid,
			int64_t commit_pg)
{
	return push_tli_segment(r, dir, 1, segno, sysid, commit_pg);
}

/* Writes cluster a's record of a segment under cluster `to` as a pusher of another
 * build would have: version 1 (no end), or version 2 with end_rev and end, pushed
 * at pushed_us (0: when a's was). The content is a's, so `to`'s segments fetch a's
 * bytes. */
static int copy_record(BkRepo *r, uint64_t segno, const char *to, uint8_t version,
		       uint8_t end_rev, const BkWalEnd *end, int64_t pushed_us)
{
	char name[BK_WAL_NAME_MAX], obj[160];
	bk_wal_segment_name(name, sizeof(name), 1, segno, MIB);
	BkWalRecord w;
	int e = bk_wal_record_get(r, "a", name, &w);
	if (e < 0)
		return e;
	BkEnc enc;
	bk_enc_init(&enc, BK_RECORD_MAX);
	bk_enc_u8(&enc, version);
	bk_enc_cstr(&enc, w.name);
	bk_enc_varint(&enc, w.size);
	bk_enc_u64(&enc, w.sysid);
	bk_enc_u32(&enc, w.tli);
	bk_enc_svarint(&enc, pushed_us ? pushed_us : w.pushed_us);
	if (version >= 2)
		bk_enc_u8(&enc, end_rev);
	if (version >= 2 && end_rev) {
		bk_enc_varint(&enc, end->lsn);
		bk_enc_svarint(&enc, end->xact_us);
		bk_enc_svarint(&enc, end->cut_xact_us);
		bk_enc_u8(&enc, (uint8_t)(end->cut_xact | (version >= 3 ? end->stopped << 1 : 0)));
	}
	e = bk_content_node_encode(&w.content, &enc);
	if (e == 0)
		e = bk_enc_finish(&enc);
	snprintf(obj, sizeof(obj), "wal/%s/%s", to, name);
	if (e == 0 && (e = bk_cluster_claim(r, to, w.sysid, MIB, NULL)) == 0)
		e = bk_repo_put_named(r, obj, BK_BLOB_WAL, enc.buf, enc.len);
	bk_enc_release(&enc);
	bk_wal_record_release(&w);
	return e;
}

/* A segment's record as written for a test: its end and push time (0: a's). */
typedef struct {
	BkWalEnd end;
	int64_t pushed_us;
} Seg;

/* Writes segments 3, 4, ... of cluster `to` (copy_record, version 3: with stopped). */
static int write_layout(BkRepo *r, const char *to, const Seg *segs, size_t n)
{
	int e = 0;
	for (size_t i = 0; e == 0 && i < n; i++)
		e = copy_record(r, 3 + i, to, 3, BK_WAL_END_REV, &segs[i].end, segs[i].pushed_us);
	return e;
}

/* Copies segments 3 .. 3 + idle to cluster `to` (copy_record); segment 3's end, when
 * there is one, is `end3`, the idle segments' an idle one's. */
static int copy_records(BkRepo *r, const char *to, unsigned idle, uint8_t version,
			uint8_t end_rev, const BkWalEnd *end3)
{
	static const BkWalEnd none = { 0 };
	int e = 0;
	for (uint64_t s = 3; e == 0 && s <= 3 + idle; s++)
		e = copy_record(r, s, to, version, end_rev, s == 3 ? end3 : &none, 0);
	return e;
}

/* bk_pg_wal_last_xact on the cluster's chain from segment 3 on, for a target time
 * after_us (0: none). */
static int last_xact(BkRepo *r, const char *cluster, int64_t after_us, BkWalLastXact *ret)
{
	BkWalArchive a;
	BkWalChain c;
	int e = bk_wal_archive_load(r, cluster, &a);
	if (e == 0)
		e = bk_pg_wal_chain(&a, 1, 3 * MIB, 3 * MIB + 100, 1, &c);
	BkWalRecord newest;
	BkWalEnd end;
	if (e == 0 && (e = bk_wal_record_get(r, cluster, c.last, &newest)) == 0) {
		e = bk_pg_wal_last_record(r, &newest, &end);
		bk_wal_record_release(&newest);
	}
	if (e == 0)
		e = bk_pg_wal_last_xact(r, cluster, &c, 3 * MIB, &end, after_us, ret);
	bk_wal_archive_release(&a);
	return e;
}

/* A segment's bytes are cut in BK_WAL_BLOCK blocks from its start, whatever they
 * hold (here pseudo-random bytes after the first pages, where content-defined
 * cuts would fall anywhere). */
static void test_wal_blocks(void)
{
	TestRepo t;
	int e = test_repo_open(&t, "pg-recovery");
	uint8_t *b = e == 0 ? make_segment(3, UINT64_C(7310000000000000009), 0) : NULL;
	if (!b) {
		ok(false, "set-up");
		test_repo_close(&t);
		return;
	}
	uint32_t x = 12345;
	for (size_t i = 16384; i < MIB; i++) {
		x = x * 1103515245u + 12345u;
		b[i] = (uint8_t)(x >> 16);
	}
	e = push_file(t.r, t.root, "000000010000000000000003", b, MIB);
	is_int(e, 0, "a segment of pseudo-random bytes pushed (%s)", e ? bk_error_detail() : "");
	BkWalRecord w;
	if (e == 0 && bk_wal_record_get(t.r, "a", "000000010000000000000003", &w) == 0) {
		bool blocks = w.size == MIB && w.content.level == 0 &&
			      w.content.count == MIB / BK_WAL_BLOCK;
		for (uint32_t i = 0; blocks && i < w.content.count; i++)
			blocks = w.content.refs[i].size == BK_WAL_BLOCK;
		ok(blocks, "its bytes are cut in %u KiB blocks from its start (%u chunks)",
		   BK_WAL_BLOCK >> 10, w.content.count);
		bk_wal_record_release(&w);
	} else {
		ok(false, "its record (%s)", bk_error_detail());
	}
	free(b);
	test_repo_close(&t);
}

static void test_segment_ends(void)
{
	TestRepo t;
	int e = test_repo_open(&t, "pg-recovery");
	BkRepo *r = t.r;
	const uint64_t sysid = UINT64_C(7310000000000000003);
	const int64_t t_pg = INT64_C(817000000000000), t_us = t_pg + PG_EPOCH_US;
	if (e == 0)
		e = push_segment(r, t.root, 3, sysid, t_pg);
	for (uint64_t s = 4; e == 0 && s < 4 + IDLE; s++)
		e = push_segment(r, t.root, s, sysid, 0);
	is_int(e, 0, "a segment with a commit and %d idle ones pushed (%s)", IDLE,
	       e ? bk_error_detail() : "");
	if (e < 0)
		goto out;

	BkWalRecord w;
	if (bk_wal_record_get(r, "a", "000000010000000000000003", &w) == 0) {
		ok(w.has_end && w.end.xact_us == t_us && w.end.lsn == 3 * MIB + 40 &&
			   !w.end.cut_xact && !w.end.cut_xact_us,
		   "its record holds the commit's time and LSN, as bk_wal_last_record walks them");

		bk_wal_record_release(&w);
	} else {
		ok(false, "its record (%s)", bk_error_detail());
	}
	if (bk_wal_record_get(r, "a", "000000010000000000000004", &w) == 0) {
		ok(w.has_end && w.end.xact_us == 0 && w.end.lsn == 0, "an idle one's, no transaction");
		bk_wal_record_release(&w);
	} else {
		ok(false, "an idle one's record (%s)", bk_error_detail());
	}

	BkWalLastXact x = { 0 };
	is_int(last_xact(r, "a", 0, &x), 0, "the walk back from the newest segment (%s)",
	       bk_error_detail());
	ok(x.known && x.xact_us == t_us && x.segno == 3 &&
		   strcmp(x.segment, "000000010000000000000003") == 0,
	   "finds the commit behind %d idle segments", IDLE);

	/* the ends in the records are what the walk reads: records whose end says
	 * another time than the segment's bytes */
	BkWalEnd other = { .lsn = 3 * MIB + 40, .xact_us = t_us + 5000000 };
	is_int(copy_records(r, "c", 5, 2, BK_WAL_END_REV, &other), 0, "records with another end");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "c", 0, &x), 0, "their walk (%s)", bk_error_detail());
	ok(x.known && x.xact_us == other.xact_us, "gives the end recorded, not the segment's");
	/* ... and an end of another walker revision is walked again */
	is_int(copy_records(r, "d", 5, 2, BK_WAL_END_REV + 1, &other), 0,
	       "the same with walker revision %d", BK_WAL_END_REV + 1);
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "d", 0, &x), 0, "their walk (%s)", bk_error_detail());
	ok(x.known && x.xact_us == t_us, "fetches the segments and gives their end");

	/* Time targets (all after the backup's stop, in segment 3, and before every
	 * push unless said): commits stamped out of WAL order across a segment's end,
	 * the later stamp in the earlier segment; PostgreSQL stops before it, so a
	 * target between the two is reachable */
	const int64_t t5 = t_us + 5000000;
	const Seg idle = { .pushed_us = 0 }; /* no transaction, pushed when a's was */
	const Seg swapped[] = { idle, idle, { .end.xact_us = t5 }, { .end.xact_us = t_us }, idle,
			   idle };
	is_int(write_layout(r, "e", swapped, BK_ARRAY_SIZE(swapped)), 0,
	       "commits stamped out of order in segments 5 and 6, idle ones around");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "e", t_us + 2000000, &x), 0, "their walk for a time between (%s)",
	       bk_error_detail());
	ok(x.known && x.xact_us == t5 && x.segno == 5,
	   "goes on past the newest commit to the later stamp before it");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "e", t_us + 6000000, &x), 0, "... for a time after both (%s)",
	       bk_error_detail());
	ok(x.known && x.xact_us == t5 && x.segno == 5, "the latest of both, to refuse it");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "e", 0, &x), 0, "... and with no target (pg info)");
	ok(x.known && x.xact_us == t_us && x.segno == 6, "stops at the newest commit");
	/* in order: the newer segment holds the latest */
	const Seg f[] = { idle, idle, { .end.xact_us = t_us }, { .end.xact_us = t5 }, idle };
	is_int(write_layout(r, "f", f, BK_ARRAY_SIZE(f)), 0, "commits in order in segments 5 and 6");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "f", t_us + 6000000, &x), 0, "their walk for a time after both");
	ok(x.known && x.xact_us == t5 && x.segno == 6, "names the later one's segment, 6");
	/* a segment's end that cuts what may be a commit, met on the way */
	const Seg g[] = { idle, { .end.cut_xact = true }, { .end.xact_us = t_us }, idle };
	is_int(write_layout(r, "g", g, BK_ARRAY_SIZE(g)), 0,
	       "a cut commit at segment 4's end, an earlier one in segment 5");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "g", t_us + 2000000, &x), 0, "the walk for a time after the commit");
	ok(!x.known && x.cut && x.segno == 4, "not known, at the cutting segment");
	/* a commit cut at segment 4's end, stamped after the target, that runs on
	 * through the newest segment (no record whole there): its end is not archived,
	 * recovery cannot replay it, and the target is not reachable through it (found
	 * by review: its time counted); with a record whole in the newest, it ends there */
	const Seg k[] = { { .end = { .lsn = 3 * MIB + 40, .xact_us = t_us } },
			  { .end = { .lsn = 4 * MIB + 40, .cut_xact_us = t5 } }, idle };
	is_int(write_layout(r, "k", k, BK_ARRAY_SIZE(k)), 0,
	       "a commit cut at segment 4's end, segment 5 inside it, the newest");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "k", t_us + 2000000, &x), 0, "the walk for a time before its stamp");
	ok(x.known && x.xact_us == t_us && x.segno == 3,
	   "does not count it: the last transaction archived whole is segment 3's");
	Seg l[BK_ARRAY_SIZE(k)];
	memcpy(l, k, sizeof(k));
	l[2].end.lsn = 5 * MIB + 40;
	is_int(write_layout(r, "l", l, BK_ARRAY_SIZE(l)), 0, "... with a record whole in segment 5");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "l", t_us + 2000000, &x), 0, "the walk for the same time");
	ok(x.known && x.xact_us == t5 && x.segno == 4, "counts it: it ends in segment 5");
	/* ... also when two segments lie inside it, the newest and the one before */
	const Seg k2[] = { k[0], k[1], idle, idle };
	is_int(write_layout(r, "k2", k2, BK_ARRAY_SIZE(k2)), 0,
	       "the same commit, segments 5 and 6 inside it, 6 the newest");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "k2", t_us + 2000000, &x), 0, "the walk for the same time");
	ok(x.known && x.xact_us == t_us && x.segno == 3,
	   "does not count it: its end is not archived either");
	/* ... and with segment 5, the newest, stopped at once on it (its rest failed
	 * across: damaged), it does not count (found by a second review) */
	Seg m[BK_ARRAY_SIZE(k)];
	memcpy(m, k, sizeof(k));
	m[2].end.stopped = true;
	is_int(write_layout(r, "m", m, BK_ARRAY_SIZE(m)), 0, "... its rest failing in segment 5");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "m", t_us + 2000000, &x), 0, "the walk for the same time");
	ok(x.known && x.xact_us == t_us && x.segno == 3,
	   "does not count it: the last transaction archived whole is segment 3's");
	/* a segment pushed before the target ends the walk: the ones before it cannot
	 * hold a later commit (their clocks agree), here one does and is not read */
	const Seg h[] = { { .end.xact_us = t5 }, { .pushed_us = t_us + 1000000 }, idle,
			  idle };
	is_int(write_layout(r, "h", h, BK_ARRAY_SIZE(h)), 0,
	       "segment 4 pushed before the target, 3 with a later commit before it");
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "h", t_us + 2000000, &x), 0, "the walk for a time after the push");
	ok(x.known && x.xact_us == 0 && x.segno == 4, "stops after segment 4: none after the target");

	/* version 1 records: each segment fetched and walked, 256 at most */
	is_int(copy_records(r, "b1", BK_WAL_XACT_SCAN_MAX, 1, 0, NULL), 0,
	       "%d idle segments after the commit under version 1 records (%s)",
	       BK_WAL_XACT_SCAN_MAX, bk_error_detail());
	if (bk_wal_record_get(r, "b1", "000000010000000000000003", &w) == 0) {
		ok(!w.has_end && w.sysid == sysid && w.size == MIB,
		   "a version 1 record decodes with no end, the rest as written");
		bk_wal_record_release(&w);
	} else {
		ok(false, "a version 1 record (%s)", bk_error_detail());
	}
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "b1", 0, &x), 0, "their walk (%s)", bk_error_detail());
	ok(x.known && x.xact_us == t_us && x.segno == 3,
	   "finds the commit %d segments fetched back", BK_WAL_XACT_SCAN_MAX);
	is_int(copy_records(r, "b2", BK_WAL_XACT_SCAN_MAX + 1, 1, 0, NULL), 0,
	       "one idle segment more (%s)", bk_error_detail());
	memset(&x, 0, sizeof(x));
	is_int(last_xact(r, "b2", 0, &x), 0, "their walk (%s)", bk_error_detail());
	ok(!x.known && !x.cut && x.xact_us == 0,
	   "not known: %d segments fetched without finding one", BK_WAL_XACT_SCAN_MAX);
	is_int(copy_record(r, 3, "b1", 1, 0, NULL, 0), -EEXIST, "records are written once");
out:
	test_repo_close(&t);
}

/* Right after a promote, the new timeline's history is archived and its first
 * segment not yet, while the old timeline goes on archiving (a restored server
 * promoted, archiving into the same cluster as the one it was restored from): the
 * chain along the new timeline is not archived yet there, not broken (the old
 * timeline's segments from the one holding the switch point on are not on the new
 * one's path), wherever in that segment the switch is. And recovery, not finding
 * it, would read the old timeline's file of that number and go on along the old
 * timeline: fork_unread says so when that file is archived. */
static void test_chain_after_promote(void)
{
	static const struct {
		uint64_t sw;          /* the switch point */
		uint64_t tl1_last;    /* timeline 1's segments archived: 3 to this */
		const char *first;    /* the new timeline's first segment */
		BkWalChainLack lacks; /* for the backup (3 MiB .. 3 MiB + 100), no target */
		bool fork_unread;     /* timeline 1's file of that number is archived */
	} cases[] = {
		{ 4 * MIB, 6, "000000020000000000000004", BK_WAL_CHAIN_COMPLETE, true },
		{ 3 * MIB + 0x80000, 6, "000000020000000000000003", BK_WAL_CHAIN_NOT_YET, true },
		{ 4 * MIB + 0x80000, 3, "000000020000000000000004", BK_WAL_CHAIN_COMPLETE, false },
	};
	const uint64_t sysid = UINT64_C(7310000000000000004);
	for (size_t i = 0; i < BK_ARRAY_SIZE(cases); i++) {
		TestRepo t;
		int e = test_repo_open(&t, "pg-recovery");
		char hist[64];
		snprintf(hist, sizeof(hist), "1\t%X/%X\tno recovery target specified\n",
			 (unsigned)(cases[i].sw >> 32), (unsigned)cases[i].sw);
		for (uint64_t s = 3; e == 0 && s <= cases[i].tl1_last; s++)
			e = push_tli_segment(t.r, t.root, 1, s, sysid, 0);
		if (e == 0)
			e = push_file(t.r, t.root, "00000002.history", hist, strlen(hist));
		is_int(e, 0, "switch at %" PRIx64 ": timeline 1's segments 3-%" PRIu64 " and "
		       "00000002.history archived (%s)", cases[i].sw, cases[i].tl1_last,
		       e ? bk_error_detail() : "ok");
		BkWalArchive a;
		BkWalChain c;
		const char *lack = NULL;
		if (e == 0 && (e = bk_wal_archive_load(t.r, "a", &a)) == 0) {
			e = bk_pg_wal_chain(&a, 1, 3 * MIB, 3 * MIB + 100, BK_TLI_LATEST, &c);
			bk_wal_archive_release(&a);
		}
		is_int(e, 0, "the chain along the newest timeline");
		if (e < 0)
			goto next;
		ok(c.target_tli == 2 && c.on_path, "follows timeline 2, the backup on its history");
		ok(strcmp(c.next_needed, cases[i].first) == 0 && !c.gap,
		   "%s, its first segment, is needed: not archived yet, not a gap (next %s, gap %d)",
		   cases[i].first, c.next_needed, c.gap);
		is_int(bk_pg_wal_chain_lacks(&c, 3 * MIB + 100, 0, &lack), cases[i].lacks,
		       "the backup's own WAL: %s", cases[i].lacks ? "not archived yet" : "complete");
		is_int(c.fork_unread, cases[i].fork_unread ? 1 : 0,
		       "recovery would %sread timeline 1's file there", cases[i].fork_unread ? "" : "not ");
		/* a segment of timeline 2 after its first: the first one is a gap now */
		e = push_tli_segment(t.r, t.root, 2, 5, sysid, 0);
		if (e == 0 && (e = bk_wal_archive_load(t.r, "a", &a)) == 0) {
			e = bk_pg_wal_chain(&a, 1, 3 * MIB, 3 * MIB + 100, BK_TLI_LATEST, &c);
			bk_wal_archive_release(&a);
		}
		ok(e == 0 && c.gap && strcmp(c.next_needed, cases[i].first) == 0,
		   "with timeline 2's segment 5 archived, %s is a gap", cases[i].first);
		/* the first segment archived too: recovery reads timeline 2 up to segment
		 * 6, which is not archived yet; timeline 1's 6 is no fork unread */
		for (uint64_t s = cases[i].sw / MIB; e == 0 && s <= 4; s++)
			e = push_tli_segment(t.r, t.root, 2, s, sysid, 0);
		if (e == 0 && (e = bk_wal_archive_load(t.r, "a", &a)) == 0) {
			e = bk_pg_wal_chain(&a, 1, 3 * MIB, 3 * MIB + 100, BK_TLI_LATEST, &c);
			bk_wal_archive_release(&a);
		}
		ok(e == 0 && !c.gap && !c.fork_unread &&
			   strcmp(c.next_needed, "000000020000000000000006") == 0,
		   "with %s archived, 000000020000000000000006 is needed, no fork unread (%zu)",
		   cases[i].first, e == 0 ? c.fork_unread : 0);
	next:
		test_repo_close(&t);
	}
}

/* chain of cluster a from a backup on timeline 1 (3 MiB .. 3 MiB + 100) along want */
static int chain_of(TestRepo *t, uint32_t want, BkWalChain *c)
{
	BkWalArchive a;
	int e = bk_wal_archive_load(t->r, "a", &a);
	if (e == 0) {
		e = bk_pg_wal_chain(&a, 1, 3 * MIB, 3 * MIB + 100, want, c);
		bk_wal_archive_release(&a);
	}
	return e;
}

/* A standby promoted inside segment 4 archives timeline 1's segment 4 as
 * 000000010000000000000004.partial and timeline 2's segment 4 only once it is
 * finished: until then recovery along timeline 2 (or along 1) ends at 4 MiB, short
 * of WAL that is archived, and the chain says so (found by review against a real
 * PostgreSQL: pg restore and pg info were silent). Not once timeline 2's segment 4
 * is archived (the .partial then lies on an older stretch), nor for a .partial off
 * the path (a timeline 3 forked from 1 at 4 MiB, whose path leaves 1 there). */
static void test_chain_partial(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000093);
	int e = test_repo_open(&t, "pg-recovery");
	if (e == 0)
		e = push_tli_segment(t.r, t.root, 1, 3, sysid, 0);
	uint8_t *b = e == 0 ? make_segment(4, sysid, 0) : NULL;
	if (e == 0)
		e = b ? push_file(t.r, t.root, "000000010000000000000004.partial", b, MIB) : -ENOMEM;
	free(b);
	static const char hist2[] = "1\t0/480000\tno recovery target specified\n";
	if (e == 0)
		e = push_file(t.r, t.root, "00000002.history", hist2, strlen(hist2));
	is_int(e, 0, "timeline 1's segment 3 and 4.partial, 00000002.history (switch at "
	       "0/480000) archived (%s)", e ? bk_error_detail() : "ok");
	BkWalChain c;
	char note[BK_WAL_PARTIAL_NOTE_MAX] = "";
	const char *lack;
	if (e == 0 && (e = chain_of(&t, BK_TLI_LATEST, &c)) == 0)
		bk_pg_wal_partial_note(&c.partial, note);
	ok(e == 0 && c.target_tli == 2 && c.contiguous_end == 4 * MIB &&
		   bk_pg_wal_chain_lacks(&c, 3 * MIB + 100, 0, &lack) == BK_WAL_CHAIN_COMPLETE &&
		   !strcmp(c.partial.partial, "000000010000000000000004.partial") &&
		   !strcmp(c.partial.awaited, "000000020000000000000004") && c.partial.tli == 1 &&
		   c.partial.end == 4 * MIB,
	   "along timeline 2: complete for the backup, ending at 0/400000 before %s, awaiting "
	   "%s", e == 0 ? c.partial.partial : bk_error_detail(), e == 0 ? c.partial.awaited : "");
	static const char want[] = "WAL past 0/400000 on timeline 1 is archived only in "
				   "000000010000000000000004.partial, which recovery does not "
				   "read: until 000000020000000000000004 is archived, the "
				   "restore ends at 0/400000";
	ok(!strcmp(note, want), "... said in one line (%s)", note);
	if (e == 0)
		e = chain_of(&t, 1, &c);
	ok(e == 0 && c.target_tli == 1 &&
		   !strcmp(c.partial.partial, "000000010000000000000004.partial") &&
		   !c.partial.awaited[0],
	   "along timeline 1 (--target-timeline 1): the same .partial, no segment to await");
	/* a sibling timeline 3, forked from 1 at 4 MiB: followed as the newest, its
	 * path leaves timeline 1 at the .partial's start */
	static const char hist3[] = "1\t0/400000\tno recovery target specified\n";
	e = push_file(t.r, t.root, "00000003.history", hist3, strlen(hist3));
	if (e == 0)
		e = chain_of(&t, BK_TLI_LATEST, &c);
	ok(e == 0 && c.target_tli == 3 && c.contiguous_end == 4 * MIB &&
		   !strcmp(c.next_needed, "000000030000000000000004") && !c.partial.partial[0],
	   "along timeline 3, forked from 1 at 0/400000: timeline 1's .partial is off the path "
	   "(%s)", e == 0 ? c.partial.partial : bk_error_detail());
	if (e == 0)
		e = chain_of(&t, 2, &c);
	ok(e == 0 && !strcmp(c.partial.partial, "000000010000000000000004.partial"),
	   "along timeline 2 (--target-timeline 2): the .partial again");
	/* timeline 2's segment 4 archived: the WAL is read from it */
	if (e == 0)
		e = push_tli_segment(t.r, t.root, 2, 4, sysid, 0);
	if (e == 0)
		e = chain_of(&t, 2, &c);
	if (e == 0)
		bk_pg_wal_partial_note(&c.partial, note);
	ok(e == 0 && c.contiguous_end == 5 * MIB && !c.partial.partial[0] && !note[0],
	   "with 000000020000000000000004 archived: none (the chain ends at %s)",
	   e == 0 ? c.next_needed : bk_error_detail());
	test_repo_close(&t);
}

/* A cluster on timeline 300 (a switchover a day for most of a year): its history
 * file of 299 lines is archived and followed (found by review: past 255 lines
 * wal-push refused the history file, and archive_command failed for good). */
static void test_many_timelines(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000092);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 4; s++)
		e = push_tli_segment(t.r, t.root, 1, s, sysid, 0);
	TapBuf h = { 0 };
	for (unsigned k = 1; e == 0 && k < 300; k++) { /* each timeline's history file */
		char line[64], name[32];
		int n = snprintf(line, sizeof(line), "%u\t0/%X\tno recovery target specified\n", k,
				 (unsigned)(4 * MIB + k * 0x100));
		tap_buf_add(&h, line, (size_t)n);
		snprintf(name, sizeof(name), "%08X.history", k + 1);
		e = push_file(t.r, t.root, name, h.p, h.len);
	}
	tap_buf_free(&h);
	is_int(e, 0, "the history files up to 0000012C.history, 299 switches, archived (%s)",
	       e ? bk_error_detail() : "ok");
	if (e == 0)
		e = push_tli_segment(t.r, t.root, 300, 4, sysid, 0);
	BkWalArchive a;
	BkWalChain c;
	if (e == 0 && (e = bk_wal_archive_load(t.r, "a", &a)) == 0) {
		e = bk_pg_wal_chain(&a, 1, 3 * MIB, 3 * MIB + 100, BK_TLI_LATEST, &c);
		bk_wal_archive_release(&a);
	}
	ok(e == 0 && c.target_tli == 300 && c.on_path && !c.gap && !c.fork_unread &&
		   strcmp(c.next_needed, "0000012C0000000000000005") == 0,
	   "a backup on timeline 1 follows to timeline 300, whose segment 5 is next (%s; "
	   "timeline %u, on path %d, gap %d, fork unread %d)",
	   e == 0 ? c.next_needed : bk_error_detail(), c.target_tli, c.on_path, c.gap,
	   (int)c.fork_unread);
	test_repo_close(&t);
}

/* A point-in-time recovery along timeline 2 to before 2 began (bunker's default
 * 'latest', a target before a failover) promotes to timeline 3, whose history
 * PostgreSQL writes as 2's, then "2 <its end of recovery>": a switch point before
 * the one above. Its push (the restored server's first archive_command) is
 * stored, and the chain along it reads timeline 1, then 3. */
static void test_history_switch_back(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000012);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 5; s++)
		e = push_tli_segment(t.r, t.root, 1, s, sysid, 0);
	const char h2[] = "1\t0/500100\tno recovery target specified\n";
	const char h3[] = "1\t0/500100\tno recovery target specified\n"
			  "\n2\t0/400100\tbefore 2026-11-20 10:00:00+00\n";
	if (e == 0)
		e = push_file(t.r, t.root, "00000002.history", h2, strlen(h2));
	is_int(e, 0, "timeline 1's segments 3-5, 00000002.history (%s)", e ? bk_error_detail() : "ok");
	is_int(push_file(t.r, t.root, "00000003.history", h3, strlen(h3)), 0,
	       "00000003.history, its switch point before 2's, is stored (%s)", bk_error_detail());
	BkWalArchive a;
	BkWalChain c;
	if (e == 0 && (e = bk_wal_archive_load(t.r, "a", &a)) == 0) {
		e = bk_pg_wal_chain(&a, 1, 3 * MIB + 40, 3 * MIB + 100, BK_TLI_LATEST, &c);
		bk_wal_archive_release(&a);
	}
	ok(e == 0 && c.target_tli == 3 && c.on_path &&
		   strcmp(c.next_needed, "000000030000000000000004") == 0 && !c.gap,
	   "the chain follows timeline 3, from segment 4 on, not yet archived: no gap (%s, "
	   "gap %d)", e ? bk_error_detail() : c.next_needed, e ? 0 : c.gap);
	test_repo_close(&t);
}

/* A backup is on a timeline's history when it started and stopped by the switch
 * point of the timeline it ran on: one that stops exactly there is, one a byte
 * past is not. What its chain lacks for a stop or a target LSN at a segment's
 * boundary (bk_pg_wal_chain_lacks), and a history file missing. And the
 * files recovery reads from such a backup (bk_pg_wal_chain_reads, what pg info
 * counts damage in): its start segment on, each of the timeline the path takes
 * there, not the old timeline's file of the same number after the fork. */
static void test_chain_on_path(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000006), sw = 5 * MIB + 0x100;
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 6; s++)
		e = push_tli_segment(t.r, t.root, 1, s, sysid, 0);
	const char hist[] = "1\t0/500100\tno recovery target specified\n";
	if (e == 0)
		e = push_file(t.r, t.root, "00000002.history", hist, strlen(hist));
	for (uint64_t s = 5; e == 0 && s <= 6; s++)
		e = push_tli_segment(t.r, t.root, 2, s, sysid, 0);
	BkWalArchive a;
	if (e == 0)
		e = bk_wal_archive_load(t.r, "a", &a);
	is_int(e, 0, "timeline 1's segments 3-6, timeline 2 from 0/500100, its 5-6 (%s)",
	       e ? bk_error_detail() : "ok");
	if (e < 0)
		goto out;
	static const struct {
		uint32_t tli;
		uint64_t start, stop;
		bool on;
		const char *what;
	} cases[] = {
		{ 1, 3 * MIB + 40, sw, true, "timeline 1's, stopped at the switch point" },
		{ 1, 3 * MIB + 40, sw + 1, false, "timeline 1's, stopped a byte past it" },
	};
	BkWalChain c;
	for (size_t i = 0; i < BK_ARRAY_SIZE(cases); i++) {
		e = bk_pg_wal_chain(&a, cases[i].tli, cases[i].start, cases[i].stop, BK_TLI_LATEST,
				    &c);
		ok(e == 0 && c.target_tli == 2 && c.on_path == cases[i].on, "%s: %son the history",
		   cases[i].what, cases[i].on ? "" : "not ");
	}
	e = bk_pg_wal_chain(&a, 1, 3 * MIB + 40, sw, BK_TLI_LATEST, &c);
	ok(e == 0 && c.contiguous_end == 7 * MIB, "its chain runs to 0/700000");
	/* (a record that ends at 0/700000 is in segment 6; one that starts there, in 7) */
	const char *lack;
	ok(e == 0 && bk_pg_wal_chain_lacks(&c, 7 * MIB, 0, &lack) == BK_WAL_CHAIN_COMPLETE &&
		   bk_pg_wal_chain_lacks(&c, 7 * MIB + 1, 0, &lack) == BK_WAL_CHAIN_NOT_YET,
	   "it holds a stop at 0/700000, not one a byte after");
	ok(e == 0 && bk_pg_wal_chain_lacks(&c, sw, 7 * MIB - 1, &lack) == BK_WAL_CHAIN_COMPLETE &&
		   bk_pg_wal_chain_lacks(&c, sw, 7 * MIB, &lack) == BK_WAL_CHAIN_NOT_YET &&
		   strcmp(lack, "000000020000000000000007") == 0,
	   "... a target LSN a byte before it, not one at it (%s needed)", e == 0 ? lack : "");
	ok(e == 0 && bk_pg_wal_chain_reads(&c, 3 * MIB + 40, "000000010000000000000003") &&
		   bk_pg_wal_chain_reads(&c, 3 * MIB + 40, "000000020000000000000005"),
	   "recovery reads its start segment and timeline 2's segment 5");
	ok(e == 0 && !bk_pg_wal_chain_reads(&c, 3 * MIB + 40, "000000010000000000000005") &&
		   !bk_pg_wal_chain_reads(&c, 4 * MIB, "000000010000000000000003"),
	   "... not timeline 1's segment 5, nor a segment before the start");
	bk_wal_archive_release(&a);
	/* a segment of timeline 3 without its history file: that file is missing */
	e = push_tli_segment(t.r, t.root, 3, 7, sysid, 0);
	if (e == 0 && (e = bk_wal_archive_load(t.r, "a", &a)) == 0) {
		e = bk_pg_wal_chain(&a, 1, 3 * MIB + 40, sw, BK_TLI_LATEST, &c);
		bk_wal_archive_release(&a);
	}
	ok(e == 0 && bk_pg_wal_chain_lacks(&c, sw, 0, &lack) == BK_WAL_CHAIN_NO_HISTORY &&
		   strcmp(lack, "00000003.history") == 0,
	   "with timeline 3's segment 7 archived, 00000003.history is missing (%s)",
	   e == 0 ? c.missing_history : "");
out:
	test_repo_close(&t);
}

/* The push of a segment reads the record of the segment before for its carry: one
 * that cannot be read fails the push (PostgreSQL retries it), rather than record the
 * segment as walked without the check across the two; one not archived is none. */
static void test_carry_before_unreadable(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000005);
	int e = test_repo_open(&t, "pg-recovery");
	if (e == 0)
		e = push_segment(t.r, t.root, 4, sysid, 0);
	is_int(e, 0, "segment 4 pushed with segment 3 not archived (no carry)");
	if (e == 0)
		e = push_segment(t.r, t.root, 5, sysid, 0);
	is_int(e, 0, "segment 5 pushed after it");
	char *rec = bk_path_join(t.root, "repo/wal/a/000000010000000000000005");
	int fd = rec ? open(rec, O_WRONLY | O_CLOEXEC) : -1;
	ok(fd >= 0 && pwrite(fd, "garbage!", 8, 40) == 8 && close(fd) == 0,
	   "segment 5's record damaged on disk");
	e = push_segment(t.r, t.root, 6, sysid, 0);
	ok(e == BK_E_CORRUPT && strstr(bk_error_detail(), "000000010000000000000005"),
	   "segment 6's push fails, naming segment 5's record (%d: %s)", e, bk_error_detail());
	BkWalRecord w;
	is_int(bk_wal_record_get(t.r, "a", "000000010000000000000006", &w), -ENOENT,
	       "and stores no record of segment 6");
	free(rec);
	test_repo_close(&t);
}

/* Times as pg restore reads --target-time: PostgreSQL's spellings, and a refusal
 * (exit 2) for what PostgreSQL refuses, where timegm would have moved the time
 * (found by an adversarial test: 2026-02-30 became March 2, +053 05:03). */
static void test_parse_time(void)
{
	static const struct {
		const char *s;
		int64_t want; /* unix seconds; 0: refused */
	} cases[] = {
		{ "2026-11-22 03:17:00", 1795317420 },
		{ "2026-11-22T03:17:00Z", 1795317420 },
		{ "2026-11-22 03:17:00+00", 1795317420 },
		{ "2026-11-22 08:47:00+05:30", 1795317420 },
		{ "2026-11-22 08:47:00+0530", 1795317420 },
		{ "2026-11-21 22:17:00-05", 1795317420 },
		{ "2026-11-22", 1795305600 },
		{ "2024-02-29 00:00:00", 1709164800 },
		{ "2026-02-30 10:00:00", 0 }, { "2026-11-31", 0 }, { "2026-13-01", 0 },
		{ "2026-11-22 24:00:00", 0 }, { "2026-11-22 10:60:00", 0 },
		{ "2026-11-22 10:00:00+99", 0 }, { "2026-11-22 10:00:00+05:99", 0 },
		{ "2026-11-22 10:00:00-24", 0 }, { "2026-11-22 10:00:00-00:60", 0 },
		{ "2026-11-22 10:00:00+053", 0 }, { "2026-11-22 10:00:00+5", 0 },
		{ "2026-11-22 10:00:00 junk", 0 }, { "yesterday", 0 },
		/* a zone's hours and minutes are two digits, no sign or space of their
		 * own (found by a new user's typos: sscanf's %2d took "+-1" as -01:00,
		 * "+ 1" as +01 and "+01:-5" as +00:55, and the restore went ahead) */
		{ "2026-11-22 10:00:00+-1", 0 }, { "2026-11-22 10:00:00+ 1", 0 },
		{ "2026-11-22 10:00:00+-01", 0 }, { "2026-11-22 10:00:00-+1", 0 },
		{ "2026-11-22 10:00:00+01:-5", 0 }, { "2026-11-22 10:00:00+01: 5", 0 },
		{ "2026-11-22 10:00:00+01-5", 0 },
	};
	/* fractions: to the microsecond, rounded as PostgreSQL reads them (found by a
	 * helper's exploration: cut) */
	static const struct { const char *s; int64_t us; } fracs[] = {
		{ "2026-11-22 03:17:00.5", 500000 }, { "2026-11-22 03:17:00.123456", 123456 },
		{ "2026-11-22 03:17:00.1234564", 123456 }, { "2026-11-22 03:17:00.1234567", 123457 },
		{ "2026-11-22 03:17:00.9999996Z", 1000000 },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(fracs); i++) {
		int64_t us = 0;
		int e = bk_pg_parse_time(fracs[i].s, &us, NULL);
		ok(e == 0 && us == 1795317420 * INT64_C(1000000) + fracs[i].us, "'%s' is %" PRId64 " us past "
		   "the second (%" PRId64 ")", fracs[i].s, fracs[i].us, us - 1795317420 * INT64_C(1000000));
	}
	for (size_t i = 0; i < BK_ARRAY_SIZE(cases); i++) {
		int64_t us = 7;
		int e = bk_pg_parse_time(cases[i].s, &us, NULL);
		if (cases[i].want)
			ok(e == 0 && us == cases[i].want * 1000000, "'%s' is %" PRId64 " s (%" PRId64 ")",
			   cases[i].s, cases[i].want, us / 1000000);
		else
			ok(e == BK_E_USAGE && us == 7, "'%s' is refused", cases[i].s);
	}
	/* whether a zone was named: messages add "read as UTC" for a time without one */
	static const struct { const char *s; bool zone; } zones[] = {
		{ "2026-11-22 03:17:00", false }, { "2026-11-22", false },
		{ "2026-11-22 03:17:00.5", false }, { "2026-11-22T03:17:00Z", true },
		{ "2026-11-22 03:17:00+00", true }, { "2026-11-21 22:17:00-05", true },
		{ "2026-11-22 03:17:00 UTC", true },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(zones); i++) {
		int64_t us;
		bool zone = !zones[i].zone;
		int e = bk_pg_parse_time(zones[i].s, &us, &zone);
		ok(e == 0 && zone == zones[i].zone, "'%s' %s a zone", zones[i].s,
		   zones[i].zone ? "names" : "does not name");
	}
}

/* pg restore of cluster a into t's restore/ to the target in o (cluster, target
 * directory and restore_command filled in): its code. As restore_xid_1000, a
 * restore that passes the checks fails writing ("what it wrote is removed"). */
static int restore_to(TestRepo *t, BkPgRestoreOpts o)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/restore", t->root);
	o.cluster = "a";
	o.target_dir = dir;
	o.restore_command = "true";
	BkSnapshot *s = NULL;
	int e = bk_pg_restore(t->r, &o, &s);
	bk_snapshot_free(s);
	return e;
}

/* Whether a restore passed the checks (it failed writing, after them). */
static bool passed_checks(int e)
{
	return e < 0 && e != BK_E_USAGE && strstr(bk_error_detail(), "what it wrote");
}

#define NAME64 "0123456789012345678901234567890123456789012345678901234567890123"

/* Targets PostgreSQL would misread are refused before anything is read (exit 2):
 * zero (it stood for no target: the newest backup was taken, unchecked), an xid
 * that is not a plain decimal id, an empty or multi-line restore point name; an
 * action without a target. */
static void test_target_refusals(void)
{
	static const struct {
		const char *time, *lsn, *xid, *name, *what;
	} cases[] = {
		{ "1970-01-01 00:00:00", NULL, NULL, NULL, "a time at the epoch (0)" },
		{ "1970-01-01 05:30:00+05:30", NULL, NULL, NULL, "the epoch in another zone" },
		{ NULL, "0/0", NULL, NULL, "LSN 0/0" },
		{ NULL, NULL, "abc", NULL, "xid abc" }, { NULL, NULL, "-5", NULL, "xid -5" },
		{ NULL, NULL, "09669", NULL, "xid 09669 (octal to PostgreSQL)" },
		{ NULL, NULL, "4294967296", NULL, "xid 2^32" }, { NULL, NULL, "", NULL, "an empty xid" },
		{ NULL, NULL, "2", NULL, "xid 2 (special)" }, { NULL, NULL, "0x10", NULL, "xid 0x10" },
		{ NULL, NULL, NULL, "", "an empty name" }, { NULL, NULL, NULL, "a\nb", "a name with a newline" },
		{ NULL, NULL, NULL, NAME64, "a name of 64 bytes (NAMEDATALEN)" },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(cases); i++) {
		BkPgRestoreOpts o = { .cluster = "a", .target_dir = "/nonexistent/bunker-test",
				      .target_time = cases[i].time, .target_lsn = cases[i].lsn,
				      .target_xid = cases[i].xid, .target_name = cases[i].name };
		BkSnapshot *s = NULL;
		is_int(bk_pg_restore(NULL, &o, &s), BK_E_USAGE, "%s is refused", cases[i].what);
	}
	BkPgRestoreOpts tl0 = { .cluster = "a", .target_dir = "/nonexistent/bunker-test",
				.target_timeline = "0" };
	BkSnapshot *s = NULL;
	is_int(bk_pg_restore(NULL, &tl0, &s), BK_E_USAGE, "--target-timeline 0 is refused");
	/* PostgreSQL would promote whatever the action said */
	BkPgRestoreOpts act = { .cluster = "a", .target_dir = "/nonexistent/bunker-test",
				.target_action = "pause" };
	is_int(bk_pg_restore(NULL, &act, &s), BK_E_USAGE, "--target-action without a target is refused");
	/* ... and the edges PostgreSQL takes: read on into a repository without the
	 * cluster */
	static const struct {
		const char *xid, *name, *what;
	} fine[] = {
		{ "3", NULL, "xid 3, the first normal one" },
		{ "4294968296", NULL, "an epoch-qualified xid (2^32 + 1000)" },
		{ NULL, NAME64 + 1, "a name of 63 bytes" },
	};
	TestRepo t;
	int e = test_repo_open(&t, "pg-recovery");
	for (size_t i = 0; e == 0 && i < BK_ARRAY_SIZE(fine); i++)
		is_int(restore_to(&t, (BkPgRestoreOpts){ .target_xid = fine[i].xid,
							 .target_name = fine[i].name }),
		       -ENOENT, "%s is taken (%s)", fine[i].what, bk_error_detail());
	/* a line break in a path of restore_command: escaped, PostgreSQL reads it, but
	 * its ALTER SYSTEM writes it back raw into postgresql.auto.conf, which the
	 * server then cannot read (found by review: it was taken, -ENOENT here) */
	if (e == 0) {
		char dir[128];
		snprintf(dir, sizeof(dir), "%s/restore", t.root);
		BkPgRestoreOpts nl = { .cluster = "a", .target_dir = dir,
				       .restore_command = "'/usr/bin/bunker' --repo '/srv/a\nb' pg wal-fetch" };
		BkSnapshot *snap = NULL;
		is_int(bk_pg_restore(t.r, &nl, &snap), BK_E_USAGE,
		       "a restore_command with a line break is refused (%s)", bk_error_detail());
		bk_snapshot_free(snap);
	}
	test_repo_close(&t);
}

/* Golden WAL records: the version 2 encoder writes the golden bytes; both versions
 * decode; malformed ends are refused, an unknown walker revision's end ignored. */
static void test_golden_records(void)
{
	static const char v1[] = GOLDEN_WAL_V1, v2[] = GOLDEN_WAL_V2_REV("04"),
			  v2_rev1[] = GOLDEN_WAL_V2_REV("01"), v2_rev2[] = GOLDEN_WAL_V2_REV("02"),
			  v2_rev3[] = GOLDEN_WAL_V2_REV("03"),
			  v3[] = GOLDEN_WAL_V3("04", "03"),
			  v4[] = GOLDEN_WAL_V4("04", "07", GOLDEN_WAL_CARRY),
			  v4_none[] = GOLDEN_WAL_V4("04", "03", "");
	is_int(BK_WAL_END_REV, 4, "(the golden bytes are of walker revision 4)");
	BkContentRef ref = { .size = 5 };
	for (int i = 0; i < 32; i++)
		ref.id[i] = (uint8_t)i;
	BkWalRecord g = { .name = "000000010000000000000003", .size = 5, .sysid = 7, .tli = 1,
			  .pushed_us = 1795380000000000, .has_end = true,
			  .end = { .lsn = 0x3000028, .xact_us = 1795380000000001, .cut_xact = true,
				   .stopped = true,
				   .carry = { .lsn = 0x3FFF000, .head = 24, .crc = 0xdeadbeef } },
			  .content = { .level = 0, .count = 1, .refs = &ref } };
	for (int i = 0; i < 24; i++)
		g.end.carry.hdr[i] = (uint8_t)i;
	BkEnc enc;
	bk_enc_init(&enc, 1024);
	char hex[2 * 256 + 1] = "";
	if (bk_wal_record_encode(&g, &enc) == 0 && enc.len <= 256)
		bk_hex(hex, enc.buf, enc.len);
	bk_enc_release(&enc);
	ok(strcmp(hex, v4) == 0, "a record encodes to the golden version 4 bytes");
	BkWalRecord nc = g;
	nc.end.carry = (BkWalCarry){ 0 };
	bk_enc_init(&enc, 1024);
	hex[0] = '\0';
	if (bk_wal_record_encode(&nc, &enc) == 0 && enc.len <= 256)
		bk_hex(hex, enc.buf, enc.len);
	bk_enc_release(&enc);
	ok(strcmp(hex, v4_none) == 0, "... and without a carry to those with no carry bytes");

	uint8_t buf[256];
	BkWalRecord w;
	size_t n = strlen(v1) / 2;
	int e = bk_unhex(buf, n, v1) == 0 ? bk_wal_record_decode(buf, n, &w) : -1;
	ok(e == 0 && !w.has_end && strcmp(w.name, "000000010000000000000003") == 0 &&
		   w.size == 5 && w.sysid == 7 && w.tli == 1 && w.pushed_us == 1795380000000000,
	   "a version 1 record decodes, without an end");
	if (e == 0)
		bk_wal_record_release(&w);
	n = strlen(v2) / 2;
	e = bk_unhex(buf, n, v2) == 0 ? bk_wal_record_decode(buf, n, &w) : -1;
	ok(e == 0 && w.has_end && w.end.lsn == 0x3000028 && w.end.xact_us == 1795380000000001 &&
		   w.end.cut_xact_us == 0 && w.end.cut_xact && !w.end.stopped && w.size == 5,
	   "a version 2 record decodes with its end (not stopped: not recorded then)");
	if (e == 0)
		bk_wal_record_release(&w);
	e = bk_unhex(buf, n, v3) == 0 ? bk_wal_record_decode(buf, n, &w) : -1;
	ok(e == 0 && w.has_end && w.end.lsn == 0x3000028 && w.end.cut_xact && w.end.stopped,
	   "a version 3 record decodes with its end, cut_xact and stopped");
	if (e == 0)
		bk_wal_record_release(&w);
	const size_t flags_at = n - 37; /* before the 36-byte content node */
	bool refused = true;
	for (int bit = 2; bit < 8; bit++) {
		buf[flags_at] = (uint8_t)(0x03 | 1u << bit);
		refused &= bk_wal_record_decode(buf, n, &w) == BK_E_CORRUPT;
	}
	ok(refused, "version 3 flags beyond bits 0 and 1 are refused");
	bk_unhex(buf, n, v2);
	buf[flags_at] = 0x02;
	is_int(bk_wal_record_decode(buf, n, &w), BK_E_CORRUPT, "stopped in version 2 is refused");
	e = bk_unhex(buf, n, v2_rev1) == 0 ? bk_wal_record_decode(buf, n, &w) : -1;
	ok(e == 0 && !w.has_end && w.end.lsn == 0 && w.size == 5,
	   "one walked by revision 1 (records' CRCs not checked) decodes without its end");
	if (e == 0)
		bk_wal_record_release(&w);
	e = bk_unhex(buf, n, v2_rev2) == 0 ? bk_wal_record_decode(buf, n, &w) : -1;
	ok(e == 0 && !w.has_end && w.end.lsn == 0 && w.size == 5,
	   "one walked by revision 2 (a switch's tail taken for damage) decodes without its end");
	if (e == 0)
		bk_wal_record_release(&w);
	e = bk_unhex(buf, n, v2_rev3) == 0 ? bk_wal_record_decode(buf, n, &w) : -1;
	ok(e == 0 && !w.has_end && w.end.lsn == 0 && w.size == 5,
	   "one walked by revision 3 (another record's tail taken for a switch's) decodes "
	   "without its end");
	if (e == 0)
		bk_wal_record_release(&w);
	bk_unhex(buf, n, v2);
	bool all = true;
	for (size_t k = 0; k < n; k++)
		all &= bk_wal_record_decode(buf, k, &w) == BK_E_CORRUPT;
	ok(all, "every truncation of it is BK_E_CORRUPT");

	/* offsets in the golden version 2 bytes */
	const size_t end_rev = 1 + 25 + 1 + 8 + 4 + 8, cut = end_rev + 1 + 4 + 8 + 1;
	buf[cut] = 2;
	is_int(bk_wal_record_decode(buf, n, &w), BK_E_CORRUPT, "cut_xact 2 is refused");
	buf[cut] = 1;
	buf[end_rev] = BK_WAL_END_REV + 1;
	e = bk_wal_record_decode(buf, n, &w);
	ok(e == 0 && !w.has_end && w.end.xact_us == 0 && w.end.lsn == 0,
	   "an end of another walker revision is decoded, not used");
	if (e == 0)
		bk_wal_record_release(&w);
	buf[end_rev] = BK_WAL_END_REV;
	BkWalRecord h = g;
	snprintf(h.name, sizeof(h.name), "00000002.history");
	bk_enc_init(&enc, 1024);
	e = bk_wal_record_encode(&h, &enc);
	is_int(e == 0 ? bk_wal_record_decode(enc.buf, enc.len, &w) : e, BK_E_CORRUPT,
	       "an end on a history file's record is refused");
	bk_enc_release(&enc);
	h = g;
	h.sysid = 0;
	bk_enc_init(&enc, 1024);
	e = bk_wal_record_encode(&h, &enc);
	is_int(e == 0 ? bk_wal_record_decode(enc.buf, enc.len, &w) : e, BK_E_CORRUPT,
	       "... and on a segment's with no system id");
	bk_enc_release(&enc);
	h = g;
	h.size = 6; /* its content holds 5 bytes: a fetch would give 5, a compare expect 6 */
	bk_enc_init(&enc, 1024);
	e = bk_wal_record_encode(&h, &enc);
	is_int(e == 0 ? bk_wal_record_decode(enc.buf, enc.len, &w) : e, BK_E_CORRUPT,
	       "a record whose size is not its content's is refused");
	bk_enc_release(&enc);
	/* version 4: the carry */
	n = strlen(v4) / 2;
	e = bk_unhex(buf, n, v4) == 0 ? bk_wal_record_decode(buf, n, &w) : -1;
	ok(e == 0 && w.has_end && w.end.lsn == 0x3000028 && w.end.cut_xact && w.end.stopped &&
		   w.end.carry.lsn == 0x3FFF000 && w.end.carry.head == 24 &&
		   w.end.carry.hdr[23] == 23 && w.end.carry.crc == 0xdeadbeef && w.size == 5,
	   "a version 4 record decodes with its end and carry");
	if (e == 0)
		bk_wal_record_release(&w);
	const size_t head_at = 1 + 25 + 1 + 8 + 4 + 8 + 1 + 4 + 8 + 1 + 1 + 4;
	bool bad_heads = true;
	for (int head = 0; head <= 25; head++) {
		if (head == 8 || head == 16 || head == 24)
			continue;
		buf[head_at] = (uint8_t)head;
		bad_heads &= bk_wal_record_decode(buf, n, &w) == BK_E_CORRUPT;
	}
	ok(bad_heads, "a carry of other than 8, 16 or 24 header bytes is refused");
	buf[head_at] = 24;
	buf[head_at - 5] = 0x0f;
	is_int(bk_wal_record_decode(buf, n, &w), BK_E_CORRUPT, "version 4 flags bit 3 is refused");
	buf[head_at - 5] = 0x07;
	buf[0] = 3;
	is_int(bk_wal_record_decode(buf, n, &w), BK_E_CORRUPT,
	       "a well-formed carry in version 3 is refused");
	buf[0] = 4;
	/* a carry of a cut header (8 or 16 bytes) has no data summed: its CRC state is 0 */
	{
		BkWalRecord cr = g;
		cr.end.carry.head = 16;
		bk_enc_init(&enc, 1024);
		e = bk_wal_record_encode(&cr, &enc);
		is_int(e == 0 ? bk_wal_record_decode(enc.buf, enc.len, &w) : e, BK_E_CORRUPT,
		       "a carry of 16 header bytes with a CRC state is refused");
		bk_enc_release(&enc);
		cr.end.carry.crc = 0;
		bk_enc_init(&enc, 1024);
		e = bk_wal_record_encode(&cr, &enc);
		e = e == 0 ? bk_wal_record_decode(enc.buf, enc.len, &w) : e;
		ok(e == 0 && w.end.carry.head == 16 && w.end.carry.hdr[15] == 15,
		   "... and without one decodes");
		if (e == 0)
			bk_wal_record_release(&w);
		bk_enc_release(&enc);
	}
	n = strlen(v4_none) / 2;
	e = bk_unhex(buf, n, v4_none) == 0 ? bk_wal_record_decode(buf, n, &w) : -1;
	ok(e == 0 && w.has_end && w.end.stopped && w.end.carry.head == 0,
	   "one without a carry decodes with none");
	if (e == 0)
		bk_wal_record_release(&w);
	bk_unhex(buf, n, v3);
	buf[0] = 5;
	is_int(bk_wal_record_decode(buf, n, &w), BK_E_VERSION, "version 5 is refused");
}

static void check(const char *in, bool archive_off, const char *want, const char *what)
{
	char *got = bk_pg_auto_conf_clear(in, archive_off);
	ok(got && strcmp(got, want) == 0, "%s", what);
	if (got && strcmp(got, want) != 0)
		diag("got:\n%s\nwant:\n%s", got, want);
	free(got);
}

/* ---- placing an xid target in archived WAL ---- */

/* Segment segno of timeline tli (1 MiB layout): a commit of xid `xid` (0: no
 * commit) stamped at 40, then an XLOG_SWITCH, so the segment is whole. */
static int push_xid_segment(BkRepo *r, const char *dir, uint32_t tli, uint64_t segno,
			    uint64_t sysid, uint32_t xid)
{
	uint8_t *b = make_segment(segno, sysid, 0);
	if (!b)
		return -ENOMEM;
	bk_put_le32(b + 4, tli);
	uint64_t at = 40, prev = 0;
	if (xid) {
		uint8_t *rec = b + at;
		bk_put_le32(rec, 24 + 5 + 16);
		bk_put_le32(rec + 4, xid);
		bk_put_le64(rec + 8, segno * MIB - 4096);
		rec[16] = 0x00;
		rec[17] = 1;
		static const uint8_t body[5] = { 253, 0x01, 0x00, 255, 16 };
		memcpy(rec + 24, body, sizeof(body));
		bk_put_le64(rec + 29, 848620800000000 + segno);
		bk_put_le32(rec + 20, bk_crc32c(bk_crc32c(0, rec + 24, 5 + 16), rec, 20));
		prev = segno * MIB + at;
		at += 48;
	}
	uint8_t *sw = b + at; /* XLOG_SWITCH */
	bk_put_le32(sw, 24);
	bk_put_le64(sw + 8, prev ? prev : segno * MIB - 4096);
	sw[16] = 0x40;
	sw[17] = 0;
	bk_put_le32(sw + 20, bk_crc32c(0, sw, 20));
	char name[BK_WAL_NAME_MAX];
	bk_wal_segment_name(name, sizeof(name), tli, segno, MIB);
	int e = push_file(r, dir, name, b, MIB);
	free(b);
	return e;
}

/* A pg-base snapshot record of cluster a (its root is never read before the
 * target checks), with ts_map as its tablespace_map (NULL: none). */
static int put_base_root(BkRepo *r, int64_t time_us, uint32_t tli, uint64_t start, uint64_t stop,
			 char *ts_map, const uint8_t root[32]);

static int put_base_ts(BkRepo *r, int64_t time_us, uint32_t tli, uint64_t start, uint64_t stop,
		       char *ts_map)
{
	static const uint8_t none[32];
	return put_base_root(r, time_us, tli, start, stop, ts_map, none);
}

/* The same with root as its root tree. */
static int put_base_root(BkRepo *r, int64_t time_us, uint32_t tli, uint64_t start, uint64_t stop,
			 char *ts_map, const uint8_t root[32])
{
	char st[32], sp[32], tl[16];
	bk_wal_lsn_format(st, sizeof(st), start);
	bk_wal_lsn_format(sp, sizeof(sp), stop);
	snprintf(tl, sizeof(tl), "%u", tli);
	BkKv meta[] = { { "start_lsn", st }, { "stop_lsn", sp }, { "timeline", tl },
			{ "tablespace_map", ts_map } };
	BkSnapshot s = { .time_us = time_us, .host = "h", .name = "pg/a/base", .kind = "pg-base",
			 .nmeta = ts_map ? 4 : 3, .meta = meta };
	memcpy(s.root, root, 32);
	BkEnc enc;
	uint8_t id[32];
	bk_enc_init(&enc, BK_RECORD_MAX);
	int e = bk_snapshot_encode(&s, &enc);
	if (e == 0)
		e = bk_enc_finish(&enc);
	if (e == 0)
		e = bk_repo_put_record(r, "snapshots", BK_BLOB_SNAPSHOT, enc.buf, enc.len, id);
	bk_enc_release(&enc);
	return e;
}

static int put_base(BkRepo *r, int64_t time_us, uint32_t tli, uint64_t start, uint64_t stop)
{
	return put_base_ts(r, time_us, tli, start, stop, NULL);
}

/* pg restore of cluster a to xid 1000 (along timeline: NULL or "current"; map: one
 * --tablespace-mapping OLD=NEW, or NULL) into t's restore/: its code; *ret_at the
 * LSN the target was placed at (0: not). These repositories hold no snapshot
 * roots: a restore that gets as far as writing fails there, after the checks. */
static int restore_xid_1000(TestRepo *t, const char *timeline, const char *map,
			    uint64_t *ret_at)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/restore", t->root);
	*ret_at = 0;
	const char *maps[] = { map };
	BkPgRestoreOpts o = { .cluster = "a", .target_dir = dir, .target_xid = "1000",
			      .target_timeline = timeline, .restore_command = "true",
			      .ret_target_at = ret_at, .ts_mapping = maps, .nts_mapping = !!map };
	BkSnapshot *s = NULL;
	int e = bk_pg_restore(t->r, &o, &s);
	bk_snapshot_free(s);
	return e;
}


/* Two timelines that began in one segment, neither's file of it archived, the
 * first timeline's archived: recovery, having read the first timeline's segment
 * before, tries each timeline of the path that began by then, newest first, down
 * to the one it read last (XLogFileReadAnyTLI stops below curFileTLI), so it reads
 * the grandparent's file and goes on along the grandparent: fork_unread, naming
 * it. With the middle timeline begun a segment earlier (and its file read there),
 * the first timeline's file is not taken: no fork unread. */
static void test_chain_fork_unread_grandparent(void)
{
	static const struct {
		const char *hist2, *hist3;
		uint64_t tl2_from;   /* timeline 2's segments archived: from this to 4 */
		size_t fork_unread, fork_read;
		const char *what;
	} cases[] = {
		{ "1\t0/500100\tx\n", "1\t0/500100\tx\n2\t0/500200\tx\n", 5, 2, 0,
		  "timelines 2 and 3 began in segment 5: timeline 1's file is read" },
		{ "1\t0/400100\tx\n", "1\t0/400100\tx\n2\t0/500200\tx\n", 4, 0, 0,
		  "timeline 2 began in segment 4, 3 in 5: timeline 1's 5 is not read" },
	};
	const uint64_t sysid = UINT64_C(7310000000000000011);
	for (size_t i = 0; i < BK_ARRAY_SIZE(cases); i++) {
		TestRepo t;
		int e = test_repo_open(&t, "pg-recovery");
		for (uint64_t s = 3; e == 0 && s <= 6; s++)
			e = push_tli_segment(t.r, t.root, 1, s, sysid, 0);
		for (uint64_t s = cases[i].tl2_from; e == 0 && s <= 4; s++)
			e = push_tli_segment(t.r, t.root, 2, s, sysid, 0);
		if (e == 0)
			e = push_file(t.r, t.root, "00000002.history", cases[i].hist2,
				      strlen(cases[i].hist2));
		if (e == 0)
			e = push_file(t.r, t.root, "00000003.history", cases[i].hist3,
				      strlen(cases[i].hist3));
		BkWalArchive a;
		BkWalChain c;
		if (e == 0 && (e = bk_wal_archive_load(t.r, "a", &a)) == 0) {
			e = bk_pg_wal_chain(&a, 1, 3 * MIB, 3 * MIB + 100, BK_TLI_LATEST, &c);
			bk_wal_archive_release(&a);
		}
		is_int(e, 0, "%s: the chain (%s)", cases[i].what, e ? bk_error_detail() : "ok");
		/* a backup on timeline 1 before it, restored without a target (these
		 * segments end in zeros, damage, which the fork is refused before) */
		if (e == 0 && cases[i].fork_unread) {
			e = put_base(t.r, 1, 1, 3 * MIB + 40, 3 * MIB + 100);
			int r = e == 0 ? restore_to(&t, (BkPgRestoreOpts){ 0 }) : e;
			ok(r == -ENOENT && strstr(bk_error_detail(), "read timeline 1's segment"),
			   "... a restore without a target is refused, naming timeline 1 (%s)",
			   bk_error_detail());
		}
		ok(e == 0 && c.target_tli == 3 && c.ntl == 3 &&
			   strcmp(c.next_needed, "000000030000000000000005") == 0 && !c.gap,
		   "... follows timeline 3, whose segment 5 is not archived yet (%s)",
		   e == 0 ? c.next_needed : "");
		ok(e == 0 && c.fork_unread == cases[i].fork_unread &&
			   (!c.fork_unread || c.fork_read == cases[i].fork_read),
		   "... fork unread %zu (%zu), reading timeline %u's file", e == 0 ? c.fork_unread : 0,
		   cases[i].fork_unread, e == 0 && c.fork_unread ? c.tli[c.fork_read] : 0);
		test_repo_close(&t);
	}
}

/* Pushes segments 5 and 6 (1 MiB layout, timeline 1) with the record rec (len
 * bytes, its xl_prev and CRC filled in here) cut by segment 5's end, `in5` bytes
 * in (8-aligned, at least its 24-byte header, less than a page): one XLOG_NOOP
 * fills segment 5 before it, page after page; its rest begins segment 6 (a byte
 * of it flipped when torn), then an XLOG_SWITCH. */
static int push_across(TestRepo *t, uint64_t sysid, uint8_t *rec, uint32_t len, uint32_t in5,
		       bool torn)
{
	const uint64_t base = 5 * MIB;
	const uint32_t at = MIB - in5, fill = at - 40 - (MIB / 8192 - 1) * 24;
	uint8_t *b = make_segment(5, sysid, 0);
	if (!b)
		return -ENOMEM;
	bk_put_le32(b + 40, fill);
	bk_put_le64(b + 40 + 8, base - 4096);
	b[40 + 16] = 0x20; /* XLOG_NOOP: its body, zeros, on each page after a short header */
	uint32_t crc = 0, left = fill - 24, done = 0;
	for (uint32_t pg = 0, from = 64; pg < MIB / 8192; pg++, from = pg * 8192 + 24) {
		if (pg) {
			bk_put_le16(b + pg * 8192, 0xD110);
			bk_put_le16(b + pg * 8192 + 2, 0x0001); /* XLP_FIRST_IS_CONTRECORD */
			bk_put_le32(b + pg * 8192 + 4, 1);
			bk_put_le64(b + pg * 8192 + 8, base + pg * 8192);
			bk_put_le32(b + pg * 8192 + 16, left - done);
		}
		uint32_t n = BK_MIN(left - done, (pg + 1) * 8192 - from);
		crc = bk_crc32c(crc, b + from, n);
		done += n;
	}
	bk_put_le32(b + 40 + 20, bk_crc32c(crc, b + 40, 20));
	bk_put_le64(rec + 8, base + 40);
	bk_put_le32(rec + 20, bk_crc32c(bk_crc32c(0, rec + 24, len - 24), rec, 20));
	memcpy(b + at, rec, in5);
	int e = push_file(t->r, t->root, "000000010000000000000005", b, MIB);
	free(b);
	if (e < 0 || !(b = make_segment(6, sysid, 0)))
		return e < 0 ? e : -ENOMEM;
	bk_put_le16(b + 2, 0x0003); /* XLP_LONG_HEADER | XLP_FIRST_IS_CONTRECORD */
	bk_put_le32(b + 16, len - in5);
	memcpy(b + 40, rec + in5, len - in5);
	b[40] ^= torn; /* (its CRC fails across the two) */
	uint8_t *sw = b + 40 + ((len - in5 + 7) & ~7u); /* XLOG_SWITCH */
	bk_put_le32(sw, 24);
	bk_put_le64(sw + 8, base + at);
	sw[16] = 0x40;
	bk_put_le32(sw + 20, bk_crc32c(0, sw, 20));
	e = push_file(t->r, t->root, "000000010000000000000006", b, MIB);
	free(b);
	return e;
}

/* xid 1000's commit cut by segment 5's end, its header there: the walk reads it
 * across the two with segment 5's carry, and places the target there (found by a
 * mutation audit: walking each segment without the carry of the one before
 * passed every test). */
static void test_xid_across_segments(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000085), base = 5 * MIB;
	int e = test_repo_open(&t, "pg-recovery");
	uint8_t commit[45] = { 0 }; /* as push_xid_segment's */
	bk_put_le32(commit, 45);
	bk_put_le32(commit + 4, 1000);
	commit[17] = 1;
	static const uint8_t body[5] = { 253, 0x01, 0x00, 255, 16 };
	memcpy(commit + 24, body, sizeof(body));
	bk_put_le64(commit + 29, 848620800000000);
	if (e == 0)
		e = push_across(&t, sysid, commit, sizeof(commit), 24, false);
	if (e == 0)
		e = put_base(t.r, 1000, 1, base + 40, base + 48);
	is_int(e, 0, "segments 5-6, xid 1000's commit across them, a backup before (%s)",
	       e ? bk_error_detail() : "ok");
	uint64_t got;
	e = restore_xid_1000(&t, NULL, NULL, &got);
	ok(got == MIB * 6 - 24, "xid 1000 placed at 0/5FFFE8 (%d: %s; at %" PRIx64 ")", e,
	   e ? bk_error_detail() : "", got);
	test_repo_close(&t);
}

/* A record that may be the target but cannot be read (rec, len bytes, cut by
 * segment 5's end in5 bytes in) after backups A (segment 3) and B (segment 4):
 * where recovery stops is not known, and latest takes the oldest backup on the
 * history, A, which reaches any later point, not B; told apart by their
 * tablespaces. o is the target (xid or name). */
static void unsure_takes_oldest(uint8_t *rec, uint32_t len, uint32_t in5, BkPgRestoreOpts o,
				const char *what)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000086);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 4; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, 0);
	char ts_a[] = "16384 /old/a\n", ts_b[] = "16384 /old/b\n", map[160];
	if (e == 0)
		e = push_across(&t, sysid, rec, len, in5, false);
	if (e == 0)
		e = put_base_ts(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88, ts_a);
	if (e == 0)
		e = put_base_ts(t.r, 2000, 1, 4 * MIB + 40, 4 * MIB + 88, ts_b);
	is_int(e, 0, "segments 3-6, %s across 5 and 6, backups A and B (%s)", what,
	       e ? bk_error_detail() : "ok");
	snprintf(map, sizeof(map), "/old/a=%s/ts", t.root);
	const char *maps[] = { map };
	uint64_t at = 0;
	o.ret_target_at = &at;
	o.ts_mapping = maps;
	o.nts_mapping = 1;
	e = restore_to(&t, o);
	ok(passed_checks(e) && at == 0, "%s: latest takes A, the target not placed (%d: %s)", what,
	   e, bk_error_detail());
	test_repo_close(&t);
}

/* A prepared transaction's end whose xid the walk cannot read (a COMMIT PREPARED
 * cut 160 bytes in: its body is not carried) may be xid 1000's (found by a
 * mutation audit: taking the newest, taking the record as the target's or as not
 * one, passed every test). A restore point whose name cannot be read (its main
 * data 70 bytes, not xl_restore_point's 72) may be the one named (mutation audit:
 * taking it for another's passed every test). */
static void test_unsure_takes_oldest(void)
{
	uint8_t prepared[200] = { 0 };
	bk_put_le32(prepared, sizeof(prepared));
	prepared[16] = 0x30; /* XLOG_XACT_COMMIT_PREPARED */
	prepared[17] = 1;
	unsure_takes_oldest(prepared, sizeof(prepared), 160, (BkPgRestoreOpts){ .target_xid = "1000" },
			    "a COMMIT PREPARED");
	uint8_t rp[24 + 2 + 70] = { 0 };
	bk_put_le32(rp, sizeof(rp));
	rp[16] = 0x70; /* XLOG_RESTORE_POINT, of RM_XLOG_ID (0) */
	rp[24] = 255;  /* XLR_BLOCK_ID_DATA_SHORT */
	rp[25] = 70;
	memcpy(rp + 24 + 2 + 8, "x", 2);
	unsure_takes_oldest(rp, sizeof(rp), 24, (BkPgRestoreOpts){ .target_name = "x" },
			    "a restore point named in 70 bytes");
}

static int first_id(void *ud, const uint8_t id[32], BkSnapshot *s)
{
	memcpy(ud, id, 32);
	bk_snapshot_free(s);
	return 0;
}

/* A SNAPSHOT given whose stop is xid 1000's commit's LSN (the record right after
 * its backup's end): the target lies after the backup, not inside (found by a
 * mutation audit: ">= stop" to "> stop" survived every test). */
static void test_snapshot_target_at_stop(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000088);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 6; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, s == 5 ? 1000 : 0);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 3 * MIB + 40, 5 * MIB + 40);
	uint8_t id[32] = { 0 };
	if (e == 0)
		e = bk_snapshot_foreach(t.r, first_id, id);
	is_int(e, 0, "segments 3-6, a backup that stops at 0/500028, xid 1000's commit");
	uint64_t at = 0;
	char hex[65];
	snprintf(hex, sizeof(hex), "%s", bk_id_hex(id).s);
	e = restore_to(&t, (BkPgRestoreOpts){ .snapshot = hex, .target_xid = "1000",
					      .ret_target_at = &at });
	ok(passed_checks(e) && at == 5 * MIB + 40, "restoring it to xid 1000 passes (%d: %s)", e,
	   bk_error_detail());
	test_repo_close(&t);
}

static int first_chunk(void *ud, const uint8_t id[32], uint64_t size, uint64_t offset)
{
	(void)size;
	(void)offset;
	memcpy(ud, id, 32);
	return -ECANCELED;
}

/* The pack holding segment 6's first block lost, the backup in segment 3: a
 * restore to the end of the archive is refused (exit 5), naming the segment and
 * the pack (found by review: pg restore went ahead, and recovery's wal-fetch
 * failed after it); one to xid 1000, in segment 4, reads no further than segment
 * 5 and passes. */
static void test_wal_pack_lost(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000099);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 6; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, s == 4 ? 1000 : 0);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 100);
	BkWalRecord w;
	uint8_t id[32] = { 0 };
	BkBlobLoc loc;
	char pack[80];
	if (e == 0 && (e = bk_wal_record_get(t.r, "a", "000000010000000000000006", &w)) == 0) {
		e = bk_content_walk(&w.content, bk_repo_read_blob, t.r, first_chunk, id);
		bk_wal_record_release(&w);
	}
	if (e == -ECANCELED)
		e = bk_index_get(t.r->index, id, &loc);
	if (e == 0) {
		bk_pack_name(loc.pack, pack);
		e = bk_backend_remove(t.r->be, pack);
	}
	is_int(e, 0, "segments 3-6, a backup in 3, the pack of segment 6's first block removed");
	e = restore_to(&t, (BkPgRestoreOpts){ .cluster = NULL });
	ok(e == BK_E_CORRUPT && strstr(bk_error_detail(), "000000010000000000000006: its data at "
							  "offset 0 is in pack ") &&
		   strstr(bk_error_detail(), "which is missing"),
	   "a restore to the end of the archive is refused, naming the segment (%d: %s)", e,
	   bk_error_detail());
	e = restore_to(&t, (BkPgRestoreOpts){ .target_xid = "1000" });
	ok(passed_checks(e), "one to xid 1000, in segment 4, passes (%d: %s)", e, bk_error_detail());
	/* recovery stops at xid 1000's commit (2026-11-22 00:00:00.000004), the first
	 * transaction to end after this time, and fetches no further than segment 5
	 * (found by review: refused, segment 6 was checked) */
	e = restore_to(&t, (BkPgRestoreOpts){ .target_time = "2026-11-21 23:00:00+00" });
	ok(passed_checks(e), "one to a time before xid 1000's commit passes (%d: %s)", e,
	   bk_error_detail());
	e = restore_to(&t, (BkPgRestoreOpts){ .target_time = "2026-11-22 00:00:00.000005+00" });
	ok(e != 0 && !passed_checks(e),
	   "one to a time after the last transaction is not taken (%d: %s)", e, bk_error_detail());
	/* an LSN target: recovery fetches the segment after the target's too (the
	 * record there may end in it), so one in segment 5 is refused for segment 6's
	 * pack, and one in segment 4 passes (found by a mutation audit: with only the
	 * target's own segment checked, every test still passed) */
	e = restore_to(&t, (BkPgRestoreOpts){ .target_lsn = "0/500028" });
	ok(e == BK_E_CORRUPT && strstr(bk_error_detail(), "000000010000000000000006: its data at "
							  "offset 0 is in pack "),
	   "one to an LSN in segment 5 is refused, naming segment 6 (%d: %s)", e,
	   bk_error_detail());
	e = restore_to(&t, (BkPgRestoreOpts){ .target_lsn = "0/400028" });
	ok(passed_checks(e), "one to an LSN in segment 4 passes (%d: %s)", e, bk_error_detail());
	/* the backup ended at 1970-01-01 00:00:00.001 (its record's time): a target at
	 * that very time is not after it (found by a mutation audit: ">" for ">=" in
	 * the rule passed every test) */
	e = restore_to(&t, (BkPgRestoreOpts){ .target_time = "1970-01-01 00:00:00.001+00" });
	ok(e == -ENOENT && strstr(bk_error_detail(), "no base backup of cluster 'a' ends before "
						     "the target time"),
	   "one to the time the backup ended is refused (%d: %s)", e, bk_error_detail());
	test_repo_close(&t);
}

/* Segment 5 damaged (its commit's CRC fails: recovery ends after segment 4's
 * switch, 0/400058), segment 6 archived after it: xid 1000, whose commit the walk
 * finds in segment 4 before the damage, restores (recovery stops after it; found
 * by a mutation audit: it was refused, "perhaps before the target"); xid 1006,
 * past the damage, is refused (exit 5); an LSN target at the last record
 * recovery reads restores. Damage before the backup's end refuses a time target
 * too, and damage in the segment after an LSN target's, where its record ends. A
 * newest segment that ends short is no damage. */
static void test_xid_before_damage(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000087);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 4; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, s == 4 ? 1000 : 0);
	uint8_t *b = make_segment(5, sysid, 1);
	if (e == 0 && b) {
		b[40 + 20] ^= 1;
		e = push_file(t.r, t.root, "000000010000000000000005", b, MIB);
	}
	free(b);
	if (e == 0)
		e = push_xid_segment(t.r, t.root, 1, 6, sysid, 1006);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88);
	is_int(e, 0, "segments 3-6, 5 damaged, xid 1000 before it and 1006 after (%s)",
	       e ? bk_error_detail() : "ok");
	uint64_t at;
	e = restore_xid_1000(&t, NULL, NULL, &at);
	ok(passed_checks(e) && at == 4 * MIB + 40, "xid 1000 restores (%d: %s; at %" PRIx64 ")", e,
	   bk_error_detail(), at);
	e = restore_to(&t, (BkPgRestoreOpts){ .target_xid = "1006" });
	ok(e == BK_E_CORRUPT && strstr(bk_error_detail(), "000000010000000000000005"),
	   "xid 1006 is refused, naming the damaged segment (%d: %s)", e, bk_error_detail());
	e = restore_to(&t, (BkPgRestoreOpts){ .target_lsn = "0/400058" });
	ok(passed_checks(e), "so does --target-lsn 0/400058, the last record read (%d: %s)", e,
	   bk_error_detail());
	test_repo_close(&t);
	/* damage before the backup's end: no consistent state, whatever the target
	 * (a time target before segment 3's commit was taken as the chain's end) */
	e = test_repo_open(&t, "pg-recovery");
	if (e == 0)
		e = push_xid_segment(t.r, t.root, 1, 3, sysid, 1003);
	b = make_segment(4, sysid, 1);
	if (e == 0 && b) {
		b[40 + 20] ^= 1;
		e = push_file(t.r, t.root, "000000010000000000000004", b, MIB);
	}
	free(b);
	if (e == 0)
		e = push_xid_segment(t.r, t.root, 1, 5, sysid, 0);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 3 * MIB + 40, 4 * MIB + 100);
	is_int(e, 0, "segments 3-5, 4 damaged, a backup that stops in 4");
	e = restore_to(&t, (BkPgRestoreOpts){ .target_time = "2026-11-22 00:00:00.000001+00" });
	ok(e == BK_E_CORRUPT && strstr(bk_error_detail(), "before the backup's end"),
	   "a time target is refused: damaged before the backup's end (%d: %s)", e,
	   bk_error_detail());
	test_repo_close(&t);
	/* an LSN target at a record cut by segment 5's end, whose rest in segment 6
	 * fails its CRC: recovery cannot read it (segment 6 is checked too) */
	e = test_repo_open(&t, "pg-recovery");
	uint8_t noop[200] = { 0 };
	bk_put_le32(noop, sizeof(noop));
	noop[16] = 0x20;
	if (e == 0)
		e = push_xid_segment(t.r, t.root, 1, 4, sysid, 0);
	if (e == 0)
		e = push_across(&t, sysid, noop, sizeof(noop), 160, true);
	if (e == 0)
		e = push_xid_segment(t.r, t.root, 1, 7, sysid, 0);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 4 * MIB + 40, 4 * MIB + 88);
	is_int(e, 0, "segments 4-7, a record at 0/5FFF60 torn in 6 (%s)",
	       e ? bk_error_detail() : "ok");
	e = restore_to(&t, (BkPgRestoreOpts){ .target_lsn = "0/5FFF60" });
	ok(e == BK_E_CORRUPT && strstr(bk_error_detail(), "000000010000000000000006"),
	   "--target-lsn 0/5FFF60 is refused, naming segment 6 (%d: %s)", e, bk_error_detail());
	test_repo_close(&t);
	/* the newest segment ending short is no damage (a standby's last segment of its
	 * old timeline, zeros after the switch point): recovery ends there anyway */
	e = test_repo_open(&t, "pg-recovery");
	if (e == 0)
		e = push_xid_segment(t.r, t.root, 1, 3, sysid, 0);
	if (e == 0)
		e = push_segment(t.r, t.root, 4, sysid, 1);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88);
	is_int(e, 0, "segments 3-4, the newest, 4, ending in zeros after a commit");
	e = restore_to(&t, (BkPgRestoreOpts){ 0 });
	ok(passed_checks(e), "a restore without a target passes (%d: %s)", e, bk_error_detail());
	test_repo_close(&t);
}

/* Targets at the boundaries PostgreSQL draws, restored from a backup of segment 3
 * (segments 3-6 archived, each a commit stamped 2026-11-22 00:00:00.00000N+00 for
 * segment N at 0/N00028, then a switch at 0/N00058): an LSN target at the
 * backup's stop (recovery reaches consistency there) and at the last record
 * archived (recovery stops after the first record that starts at or after it)
 * restore, one a byte later does not; a time target at the last commit's time is
 * refused (PostgreSQL stops at the first that ended after it: none), a
 * microsecond before it restores. And a commit at the backup's start, where
 * recovery begins replaying, lies inside it; with no commit after the backup, a
 * time target is refused. */
static void test_target_boundaries(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000082);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 6; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, 1000 + (uint32_t)s);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88);
	is_int(e, 0, "segments 3-6, a backup of 0/300028 to 0/300058 (%s)",
	       e ? bk_error_detail() : "ok");
	static const struct {
		const char *time, *lsn, *what;
		int want; /* 0: passes the checks */
	} cases[] = {
		{ NULL, "0/300058", "an LSN target at the backup's stop", 0 },
		{ NULL, "0/600058", "an LSN target at the last record archived", 0 },
		{ NULL, "0/600059", "an LSN target a byte after it", -ENOENT },
		{ "2026-11-22 00:00:00.000006+00", NULL, "a time target at the last commit's",
		  -ENOENT },
		{ "2026-11-22 00:00:00.000005+00", NULL, "a time target a microsecond before", 0 },
	};
	for (size_t i = 0; e == 0 && i < BK_ARRAY_SIZE(cases); i++) {
		int r = restore_to(&t, (BkPgRestoreOpts){ .target_time = cases[i].time,
							  .target_lsn = cases[i].lsn });
		if (cases[i].want) /* (-ENOENT is also what writing fails with) */
			ok(r == cases[i].want && !passed_checks(r), "%s: refused (%d: %s)",
			   cases[i].what, r, bk_error_detail());
		else
			ok(passed_checks(r), "%s: restores (%d: %s)", cases[i].what, r,
			   bk_error_detail());
	}
	test_repo_close(&t);
	e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 5; e == 0 && s <= 6; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, s == 5 ? 1000 : 0);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 5 * MIB + 40, 5 * MIB + 88);
	is_int(e, 0, "segments 5-6, a backup from xid 1000's commit at 0/500028 on");
	uint64_t at;
	e = restore_xid_1000(&t, NULL, NULL, &at);
	ok(e == BK_E_USAGE && strstr(bk_error_detail(), "lies inside"),
	   "xid 1000 lies inside the backup (%d: %s)", e, bk_error_detail());
	test_repo_close(&t);
	/* no transaction at all after the backup: PostgreSQL replays to the end, fails */
	e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 4; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, 0);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88);
	is_int(e, 0, "segments 3-4 without a commit, a backup in 3");
	e = restore_to(&t, (BkPgRestoreOpts){ .target_time = "2026-01-01 00:00:00" });
	ok(e == -ENOENT && strstr(bk_error_detail(), "holds none"),
	   "a time target is refused: the WAL after it holds none (%d: %s)", e, bk_error_detail());
	test_repo_close(&t);
}

/* Timeline 1 went on after timeline 2 forked from it at 0/500000 (its segment 5
 * archived after 00000002.history): an LSN target is on both histories, and
 * restores without --target-timeline, only when the record recovery stops after,
 * the first that starts at or after it, lies before the fork: at the switch
 * record at 0/400058, the last before it, yes; a byte later, that record is the
 * fork's own (0/500028, each timeline's), and so at the fork (found by a mutation
 * audit: every target before the fork was taken as on both histories). A time
 * target stops at the first commit that ended after it: at segment 4's commit's
 * time, that is the fork's. */
static void test_lsn_target_at_fork(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000084);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 4; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, 1000 + (uint32_t)s);
	const char hist[] = "1\t0/500000\tno recovery target specified\n";
	if (e == 0)
		e = push_file(t.r, t.root, "00000002.history", hist, strlen(hist));
	if (e == 0)
		e = push_xid_segment(t.r, t.root, 2, 5, sysid, 2005);
	if (e == 0)
		e = push_xid_segment(t.r, t.root, 1, 5, sysid, 1005);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88);
	is_int(e, 0, "timelines 1 and 2 after the fork at 0/500000, a backup before (%s)",
	       e ? bk_error_detail() : "ok");
	static const struct {
		const char *lsn, *time, *what;
		bool refused;
	} cases[] = {
		{ "0/400058", NULL, "at the last record before the fork", false },
		{ "0/400059", NULL, "a byte later", true },
		{ "0/500000", NULL, "at the fork", true },
		{ NULL, "2026-11-22 00:00:00.000003+00", "before segment 4's commit", false },
		{ NULL, "2026-11-22 00:00:00.000004+00", "at its time (the stop: the fork's)",
		  true },
	};
	for (size_t i = 0; e == 0 && i < BK_ARRAY_SIZE(cases); i++) {
		const char *what = cases[i].lsn ? cases[i].lsn : cases[i].time;
		int r = restore_to(&t, (BkPgRestoreOpts){ .target_lsn = cases[i].lsn,
							  .target_time = cases[i].time });
		if (cases[i].refused)
			ok(r == BK_E_USAGE && strstr(bk_error_detail(), "went on after"),
			   "target %s, %s: refused (%s)", what, cases[i].what, bk_error_detail());
		else
			ok(passed_checks(r), "target %s, %s: restores (%d: %s)", what, cases[i].what,
			   r, bk_error_detail());
	}
	test_repo_close(&t);
}

/* --target-timeline current with base backups on two timelines: each follows its
 * own timeline, and what a walk found on one path is not the other's (found by
 * review: place_in_wal shared the hits, keyed by LSN, and the range walked). Timeline 2 forked from 1 at 0/500000; backup B
 * (timeline 2) holds xid 1000's commit inside it (0/600028); timeline 1 went on
 * and commits another transaction numbered 1000 at 0/700028 (xids are handed out
 * again on each timeline after a fork). Recovery from A along timeline 1 stops at
 * 0/700028, where A's target is placed (it was placed at timeline 2's 0/600028). */
static void test_xid_current_timelines(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000077);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 7; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, s == 7 ? 1000 : 0);
	const char hist[] = "1\t0/500000\tno recovery target specified\n";
	if (e == 0)
		e = push_file(t.r, t.root, "00000002.history", hist, strlen(hist));
	for (uint64_t s = 5; e == 0 && s <= 7; s++)
		e = push_xid_segment(t.r, t.root, 2, s, sysid, s == 6 ? 1000 : 0);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88);
	if (e == 0)
		e = put_base(t.r, 2000, 2, 6 * MIB + 40, 6 * MIB + 200);
	is_int(e, 0, "archive and two base backups (%s)", e ? bk_error_detail() : "ok");
	uint64_t at;
	restore_xid_1000(&t, "current", NULL, &at);
	ok(at == 7 * MIB + 40, "placed at timeline 1's commit, 0/700028 (at %" PRIx64 ")", at);
	test_repo_close(&t);
}

/* --target-timeline current, the newest backup's path (timeline 2) cut short by a
 * gap, an older backup's (timeline 1) walked whole without the xid: where the walk
 * was cut the xid may lie, so it is not refused as missing (found by review: what
 * the forgotten path's walk was cut short was forgotten with it). */
static void test_xid_current_cut_short(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000080);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 5; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, 0);
	const char hist[] = "1\t0/400000\tno recovery target specified\n";
	if (e == 0)
		e = push_file(t.r, t.root, "00000002.history", hist, strlen(hist));
	if (e == 0)
		e = push_xid_segment(t.r, t.root, 2, 4, sysid, 0);
	if (e == 0) /* (5 missing: a gap) */
		e = push_xid_segment(t.r, t.root, 2, 6, sysid, 0);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88);
	if (e == 0)
		e = put_base(t.r, 2000, 2, 4 * MIB + 40, 4 * MIB + 88);
	is_int(e, 0, "archive with a gap on timeline 2, two base backups (%s)",
	       e ? bk_error_detail() : "ok");
	uint64_t at;
	e = restore_xid_1000(&t, "current", NULL, &at);
	ok(e < 0 && !strstr(bk_error_detail(), "no end of transaction"),
	   "not refused as missing (%d: %s)", e, bk_error_detail());
	test_repo_close(&t);
}

/* --tablespace-mapping: a NEW in the data directory (t's restore/, there, empty) is
 * refused before writing however it is spelled, compared as the kernel resolves it
 * (found by review: compared as written, a ".." or a symbolic link hid it): ".."
 * after a directory not made yet, a symbolic link to the data directory on the way,
 * and ".." after a symbolic link, which leads back from where the link points (as
 * written, the path is elsewhere). A NEW beside it whose name begins with its name
 * is not refused (the restore goes on, and fails writing: no snapshot root). */
static void test_mapping_resolved(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000081);
	int e = test_repo_open(&t, "pg-recovery");
	char ts_map[] = "16384 /old/ts\n";
	for (uint64_t s = 3; e == 0 && s <= 5; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, s == 5 ? 1000 : 0);
	if (e == 0)
		e = put_base_ts(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88, ts_map);
	char dir[128], ab[128], ln[128], to_dir[128];
	snprintf(dir, sizeof(dir), "%s/restore", t.root);
	snprintf(ab, sizeof(ab), "%s/a/b", t.root);
	snprintf(ln, sizeof(ln), "%s/ln", t.root);
	snprintf(to_dir, sizeof(to_dir), "%s/to-dir", t.root);
	if (e == 0 && (mkdir(dir, 0700) < 0 || bk_mkdir_p(ab, 0700) < 0 || symlink(ab, ln) < 0 ||
		       symlink(dir, to_dir) < 0))
		e = -errno;
	is_int(e, 0, "archive, a backup with a tablespace, links ln -> a/b and to-dir -> restore");
	static const struct {
		const char *new, *what;
		int want;
	} cases[] = {
		{ "nope/../restore/ts", "\"..\" after a directory not made yet", BK_E_USAGE },
		{ "to-dir/ts", "a symbolic link to the data directory on the way", BK_E_USAGE },
		{ "ln/../../restore", "\"..\" after a symbolic link (a/b/../../restore)", BK_E_USAGE },
		{ "restore-x", "a NEW beside it, its name the data directory's and more", 0 },
	};
	for (size_t i = 0; e == 0 && i < BK_ARRAY_SIZE(cases); i++) {
		char map[300];
		snprintf(map, sizeof(map), "/old/ts=%s/%s", t.root, cases[i].new);
		uint64_t at;
		int r = restore_xid_1000(&t, NULL, map, &at);
		if (cases[i].want)
			is_int(r, cases[i].want, "%s: refused (%s)", cases[i].what, bk_error_detail());
		else
			ok(r < 0 && r != BK_E_USAGE && strstr(bk_error_detail(), "what it wrote"),
			   "%s: not refused, the restore writes (%d: %s)", cases[i].what, r,
			   bk_error_detail());
	}
	test_repo_close(&t);
}

/* --tablespace-mapping refused before anything is written (exit 2): an OLD mapped
 * twice (trailing slashes aside), a NEW not absolute, a NEW of "/" (it holds the
 * data directory), a NEW or a --target in the repository; a NEW not empty (exit 1: it was refused only after the data
 * directory was written, and taken back); and an OLD that begins another
 * location's name maps that one alone (found by a mutation audit: none of these
 * was tested). */
/* Opens t with segments 3 and 4 of system sysid archived and a base backup in
 * segment 3 whose tablespace_map is ts_map: 0, or the first failure. */
static int open_with_backup(TestRepo *t, uint64_t sysid, char *ts_map)
{
	int e = test_repo_open(t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 4; s++)
		e = push_xid_segment(t->r, t->root, 1, s, sysid, 0);
	if (e == 0)
		e = put_base_ts(t->r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88, ts_map);
	return e;
}

/* Ten tablespaces, the ninth mapped to a NEW and the tenth into it: refused, as
 * for any two (found by review: past the eighth, locations shared one slot and
 * were compared only with the first ones, so this restored, nested). */
static void test_mapping_many(void)
{
	TestRepo t;
	char ts_map[512] = "";
	for (int i = 1; i <= 10; i++)
		snprintf(ts_map + strlen(ts_map), sizeof(ts_map) - strlen(ts_map), "%d /old/t%d\n",
			 16383 + i, i);
	int e = open_with_backup(&t, UINT64_C(7310000000000000089), ts_map);
	is_int(e, 0, "archive, a backup with ten tablespaces");
	char ninth[128], tenth[128];
	snprintf(ninth, sizeof(ninth), "/old/t9=%s/same", t.root);
	snprintf(tenth, sizeof(tenth), "/old/t10=%s/same/in", t.root);
	const char *const maps[] = { ninth, tenth };
	int r = restore_to(&t, (BkPgRestoreOpts){ .ts_mapping = maps, .nts_mapping = 2 });
	ok(r == BK_E_USAGE && strstr(bk_error_detail(), "tablespace 16393 would be restored to") &&
		   strstr(bk_error_detail(), "tablespace 16392's location"),
	   "the tenth inside the ninth: refused (%s)", bk_error_detail());
	test_repo_close(&t);
}

static void test_mapping_refusals(void)
{
	TestRepo t;
	char ts_map[] = "16384 /old/ts\n16385 /old/ts2\n";
	int e = open_with_backup(&t, UINT64_C(7310000000000000083), ts_map);
	is_int(e, 0, "archive, a backup with tablespaces at /old/ts and /old/ts2");
	char moved[128], twice[128];
	snprintf(moved, sizeof(moved), "/old/ts=%s/moved", t.root);
	snprintf(twice, sizeof(twice), "/old/ts/=%s/other", t.root);
	static const char *const rel[] = { "/old/ts=moved" }, *const root[] = { "/old/ts=/" };
	const char *const two[] = { moved, twice }, *const one[] = { moved };
	static const struct {
		const char *what, *says;
	} cases[] = {
		{ "an OLD mapped twice", "is mapped twice" },
		{ "a NEW not absolute", "is not OLD=NEW" },
		{ "a NEW of /", "the data directory" },
		{ "a NEW not empty", "is not empty" },
		{ "a NEW in the repository", "lies in the repository" },
		{ "/old/ts moved, /old/ts2 not", NULL },
	};
	char full[160], in_repo[128], busy_dir[128];
	snprintf(busy_dir, sizeof(busy_dir), "%s/busy", t.root);
	snprintf(full, sizeof(full), "/old/ts=%s", busy_dir);
	char busy_file[160];
	snprintf(busy_file, sizeof(busy_file), "%s/file", busy_dir);
	if (e == 0)
		e = bk_mkdir(busy_dir, 0700);
	if (e == 0)
		tap_write_file(busy_file, "x", 1, 0600);
	/* (found by review: the repository itself was taken as a NEW, not empty only) */
	snprintf(in_repo, sizeof(in_repo), "/old/ts=%s/repo/data/ts", t.root);
	const char *const busy[] = { full }, *const repo[] = { in_repo };
	const char *const *maps[] = { two, rel, root, busy, repo, one };
	for (size_t i = 0; e == 0 && i < BK_ARRAY_SIZE(cases); i++) {
		int r = restore_to(&t, (BkPgRestoreOpts){ .ts_mapping = maps[i],
							  .nts_mapping = i ? 1 : 2 });
		if (cases[i].says)
			ok(r == (i == 3 ? -EEXIST : BK_E_USAGE) &&
				   strstr(bk_error_detail(), cases[i].says),
			   "%s: refused (%s)", cases[i].what, bk_error_detail());
		else
			ok(passed_checks(r), "%s: restores (%d: %s)", cases[i].what, r,
			   bk_error_detail());
	}
	/* a --target in the repository (found by review: restored, and check then
	 * counted each of its files as a damaged object) */
	char in[128];
	snprintf(in, sizeof(in), "%s/repo/snapshots/restore", t.root);
	BkPgRestoreOpts o = { .cluster = "a", .target_dir = in, .restore_command = "true" };
	BkSnapshot *snap = NULL;
	if (e == 0) {
		int r = bk_pg_restore(t.r, &o, &snap);
		ok(r == BK_E_USAGE && strstr(bk_error_detail(), "lies in the repository") &&
			   access(in, F_OK) < 0,
		   "a --target in the repository: refused before writing (%s)", bk_error_detail());
	}
	bk_snapshot_free(snap);
	test_repo_close(&t);
}

/* The backup's start segment not archived yet: the chain check says so (found by
 * review: the target was called missing from a walk that walked nothing, "( to ,
 * walked)"). */
static void test_xid_start_not_archived(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000078);
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 4; s++)
		e = push_xid_segment(t.r, t.root, 1, s, sysid, 0);
	if (e == 0)
		e = put_base(t.r, 1000, 1, 5 * MIB + 40, 5 * MIB + 88);
	is_int(e, 0, "segments 3-4, a backup in segment 5");
	uint64_t at;
	e = restore_xid_1000(&t, NULL, NULL, &at);
	ok(e < 0 && strstr(bk_error_detail(), "000000010000000000000005 is not archived yet"),
	   "refused: its start segment is not archived yet (%d: %s)", e, bk_error_detail());
	test_repo_close(&t);
}

/* The backup's start segment begins with the last 16 bytes of a record cut by the
 * segment before's end (not archived: archiving began here), a little-endian 64
 * where a switch's xl_info would be; then the backup's own record, then xid 1000's
 * commit, which is found there (found by review: the tail was taken for a switch's,
 * and the segment skipped). */
static void test_xid_after_tail_like_switch(void)
{
	TestRepo t;
	const uint64_t sysid = UINT64_C(7310000000000000079);
	int e = test_repo_open(&t, "pg-recovery");
	uint8_t *b = make_segment(5, sysid, 0);
	bk_put_le16(b + 2, 0x0003);
	bk_put_le32(b + 16, 16);
	memset(b + 40, 0x11, 16);
	b[40 + 8] = 0x40;
	b[40 + 9] = 0x00;
	uint64_t base = 5 * MIB;
	uint8_t *r1 = b + 56; /* the backup's record (start .. stop) */
	bk_put_le32(r1, 40);
	bk_put_le64(r1 + 8, base - 4096);
	r1[17] = 10;
	bk_put_le32(r1 + 20, bk_crc32c(bk_crc32c(0, r1 + 24, 16), r1, 20));
	uint8_t *rec = b + 96; /* xid 1000's commit */
	bk_put_le32(rec, 24 + 5 + 16);
	bk_put_le32(rec + 4, 1000);
	bk_put_le64(rec + 8, base + 56);
	rec[17] = 1;
	static const uint8_t body[5] = { 253, 0x01, 0x00, 255, 16 };
	memcpy(rec + 24, body, sizeof(body));
	bk_put_le64(rec + 29, 848620800000000);
	bk_put_le32(rec + 20, bk_crc32c(bk_crc32c(0, rec + 24, 5 + 16), rec, 20));
	uint8_t *sw = b + 144;
	bk_put_le32(sw, 24);
	bk_put_le64(sw + 8, base + 96);
	sw[16] = 0x40;
	bk_put_le32(sw + 20, bk_crc32c(0, sw, 20));
	if (e == 0)
		e = push_file(t.r, t.root, "000000010000000000000005", b, MIB);
	free(b);
	if (e == 0)
		e = push_xid_segment(t.r, t.root, 1, 6, sysid, 0);
	if (e == 0)
		e = put_base(t.r, 1000, 1, base + 56, base + 96);
	is_int(e, 0, "segments 5-6, a backup in 5 before xid 1000's commit (%s)",
	       e ? bk_error_detail() : "ok");
	uint64_t at;
	e = restore_xid_1000(&t, NULL, NULL, &at);
	ok(at == base + 96, "xid 1000 placed at 0/500060 (%d: %s; at %" PRIx64 ")", e,
	   e ? bk_error_detail() : "", at);
	test_repo_close(&t);
}

/* A backup whose postgresql.auto.conf and postgresql.conf are symbolic links to
 * files outside it (a real server sends none, but the backup's files are the
 * server's): pg restore neither writes through them nor reads what they lead to
 * into the files it writes (found by review: postgresql.auto.conf was read and
 * rewritten by path, through the link; as root, a link to /etc/shadow would have
 * been rewritten, with its text, in a file given to the server's user). */
static void test_links_not_followed(void)
{
	TestRepo t;
	int e = test_repo_open(&t, "pg-recovery");
	for (uint64_t s = 3; e == 0 && s <= 4; s++)
		e = push_xid_segment(t.r, t.root, 1, s, UINT64_C(7310000000000000091), 0);
	char auto_to[128], conf_to[128];
	snprintf(auto_to, sizeof(auto_to), "%s/victim-auto", t.root);
	snprintf(conf_to, sizeof(conf_to), "%s/victim-conf", t.root);
	static const char secret[] = "secret = 'x'\n", stale[] = "RECOVERY_TARGET_NAME = 'x'\n";
	tap_write_file(auto_to, secret, strlen(secret), 0600);
	tap_write_file(conf_to, stale, strlen(stale), 0600);
	BkTree *tree = bk_tree_new();
	BkTreeEntry ents[] = {
		{ .name = strdup("PG_VERSION"), .type = BK_NODE_FILE, .mode = 0600 },
		{ .name = strdup("postgresql.auto.conf"), .type = BK_NODE_SYMLINK, .mode = 0777,
		  .link = strdup(auto_to) },
		{ .name = strdup("postgresql.conf"), .type = BK_NODE_SYMLINK, .mode = 0777,
		  .link = strdup(conf_to) },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(ents); i++)
		if (e == 0)
			e = bk_tree_add(tree, &ents[i]);
	BkEnc enc;
	uint8_t root[32];
	BkWriter *w = NULL;
	bk_enc_init(&enc, BK_RECORD_MAX);
	if (e == 0)
		e = bk_tree_encode(tree, &enc);
	if (e == 0)
		e = bk_writer_new(t.r, &w);
	if (e == 0)
		e = bk_writer_put(w, BK_BLOB_TREE, enc.buf, enc.len, root);
	if (e == 0)
		e = bk_writer_flush(w);
	bk_writer_free(w);
	bk_enc_release(&enc);
	bk_tree_free(tree);
	if (e == 0)
		e = put_base_root(t.r, 1000, 1, 3 * MIB + 40, 3 * MIB + 88, NULL, root);
	is_int(e, 0, "a backup with postgresql.auto.conf and postgresql.conf links to files outside");
	int r = restore_to(&t, (BkPgRestoreOpts){ 0 });
	is_int(r, 0, "pg restore (%s)", bk_error_detail());
	uint8_t *a = NULL, *c = NULL, *got = NULL;
	size_t n;
	bk_read_file(auto_to, 1024, &a, &n);
	bk_read_file(conf_to, 1024, &c, &n);
	ok(a && !strcmp((char *)a, secret), "the file the postgresql.auto.conf link led to is untouched");
	ok(c && !strcmp((char *)c, stale), "... and the postgresql.conf link's");
	char path[160];
	struct stat st;
	snprintf(path, sizeof(path), "%s/restore/postgresql.auto.conf", t.root);
	bk_read_file_at(AT_FDCWD, path, O_NOFOLLOW, 1 << 20, &got, &n);
	ok(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && got && strstr((char *)got, "restore_command") &&
		   !strstr((char *)got, "secret"),
	   "the restored postgresql.auto.conf is a file of its own, without what the link led to");
	snprintf(path, sizeof(path), "%s/restore/postgresql.conf", t.root);
	ok(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "postgresql.conf stays the link it was");
	free(a);
	free(c);
	free(got);
	test_repo_close(&t);
}

int main(void)
{
	check("# Do not edit this file manually!\n"
	      "primary_conninfo = 'host=db1'\n"
	      "\n"
	      "# added by bunker pg restore\n"
	      "restore_command = 'bunker pg wal-fetch %f %p'\n"
	      "recovery_target_timeline = 'latest'\n"
	      "recovery_target_time = '2026-11-22 03:17:00+00'\n"
	      "recovery_target_action = 'promote'\n",
	      false,
	      "# Do not edit this file manually!\n"
	      "primary_conninfo = 'host=db1'\n"
	      "\n"
	      "# added by bunker pg restore\n"
	      "#bunker# restore_command = 'bunker pg wal-fetch %f %p'\n"
	      "#bunker# recovery_target_timeline = 'latest'\n"
	      "#bunker# recovery_target_time = '2026-11-22 03:17:00+00'\n"
	      "#bunker# recovery_target_action = 'promote'\n",
	      "an earlier restore's block is commented out, other lines kept");
	check("  Recovery_Target_LSN='0/3000000'\n\trecovery_target xid\nRESTORE_COMMAND = 'cp'",
	      false,
	      "#bunker#   Recovery_Target_LSN='0/3000000'\n#bunker# \trecovery_target xid\n"
	      "#bunker# RESTORE_COMMAND = 'cp'",
	      "any case, leading blanks, no blank before '=', 'key value', no final newline");
	check("restore_commands = 1\nrecovery_targetx.y = 2\n# restore_command = 'x'\n"
	      "archive_command = 'a'\nshared_buffers = '1GB'\n",
	      true,
	      "restore_commands = 1\n#bunker# recovery_targetx.y = 2\n# restore_command = 'x'\n"
	      "archive_command = 'a'\nshared_buffers = '1GB'\n",
	      "other names and comments stay (recovery_target* is a prefix, as PostgreSQL's are)");
	check("archive_mode = 'on'\n", false, "archive_mode = 'on'\n",
	      "archive_mode stays unless --archive-mode off");
	check("archive_mode = 'on'\n", true, "#bunker# archive_mode = 'on'\n",
	      "... and goes with it");
	check("Archive_Cleanup_Command = 'pg_archivecleanup /wal %r'\nrecovery_end_command='x'\n", false,
	      "#bunker# Archive_Cleanup_Command = 'pg_archivecleanup /wal %r'\n"
	      "#bunker# recovery_end_command='x'\n",
	      "the original's archive_cleanup_command and recovery_end_command go");
	check("", false, "", "an empty file stays empty");
	test_seg_size_of_zero_record();
	test_wal_blocks();
	test_segment_ends();
	test_chain_after_promote();
	test_chain_partial();
	test_many_timelines();
	test_chain_on_path();
	test_chain_fork_unread_grandparent();
	test_history_switch_back();
	test_carry_before_unreadable();
	test_parse_time();
	test_target_refusals();
	test_golden_records();
	test_xid_current_timelines();
	test_xid_start_not_archived();
	test_xid_current_cut_short();
	test_xid_after_tail_like_switch();
	test_target_boundaries();
	test_xid_across_segments();
	test_unsure_takes_oldest();
	test_xid_before_damage();
	test_wal_pack_lost();
	test_snapshot_target_at_stop();
	test_lsn_target_at_fork();
	test_mapping_resolved();
	test_links_not_followed();
	test_mapping_refusals();
	test_mapping_many();
	return tap_done();
}
