/* tests/test-pg-basebackup.c: bk_pg_basebackup (pg/basebackup.h) against BASE_BACKUP
 * streams a real server does not send, from tests/pg/fake-walsender.h.
 *
 * A real PostgreSQL 15 always ends its archives with the two zero blocks, names
 * them base.tar and <oid>.tar and sends no hard links, so the checks for those are
 * reached only here: an archive cut between two entries (the data directory's or
 * a tablespace's) fails the backup and writes no snapshot; so does an archive name
 * that is not <digits>.tar (it becomes a path in the snapshot), a hard link, and
 * a base.tar without backup_label or whose label starts elsewhere; a damaged
 * header fails it naming the archive, and a path sent twice is BK_E_CORRUPT.
 * First the same stream unbroken, which must be a snapshot: its metadata as the
 * stream says (start and stop LSN and timeline, backup_label, tablespace_map,
 * file count and bytes) and each file's bytes as sent, the tablespace's under
 * .bunker-tablespaces/<oid>/. And pg dump's listing, never answered, bounded by
 * its stall timeout. The backups of a real server are in
 * tests/integration/pg-basebackup.sh, pg-tablespace.sh and pg-standby.sh. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pg/basebackup.h"
#include "pg/dump.h"
#include "pg/walarchive.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/keyslot.h"
#include "store/restorer.h"
#include "store/util.h"
#include "tests/pg/fake-walsender.h"
#include "tests/tap.h"
#include "tests/test-repo.h"

/* ---- the stream ---- */

#define LABEL                                                                                  \
	"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"                      \
	"CHECKPOINT LOCATION: 0/2000060\n"                                                     \
	"BACKUP METHOD: streamed\n"                                                            \
	"BACKUP FROM: primary\n"                                                               \
	"START TIME: 2026-11-22 06:12:41 UTC\n"                                                \
	"LABEL: bunker\n"                                                                      \
	"START TIMELINE: 1\n"
#define LABEL_ELSE                                                                             \
	"START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\n"                      \
	"START TIMELINE: 1\n"
#define LABEL_TLI                                                                              \
	"START WAL LOCATION: 0/2000028 (file 000000020000000000000002)\n"                      \
	"START TIMELINE: 2\n"
#define TSMAP "16384 /srv/ts\n"
#define MTIME 1700000000

typedef enum {
	S_OK,
	S_BASE_CUT,      /* base.tar without its two zero blocks (cut between entries) */
	S_BASE_CUT_DATA, /* base.tar cut inside a file's data */
	S_TS_CUT,        /* the tablespace's archive without its two zero blocks */
	S_HARD_LINK,     /* a hard link in base.tar */
	S_DOT_FIRST,     /* a regular file named "." before backup_label */
	S_DOT_FILE,      /* a regular file named "." after backup_label */
	S_NO_LABEL,      /* base.tar without backup_label */
	S_LABEL_ELSE,    /* a backup_label that starts elsewhere than the server said */
	S_LABEL_TLI,     /* ... on another timeline */
	S_LINK_CONF,     /* a symbolic link postgresql.auto.conf in base.tar */
	S_LINK_DEEP,     /* a symbolic link below a tablespace's in pg_tblspc */
	S_LINK_TS,       /* a symbolic link in the tablespace's archive */
	S_BAD_HEADER,    /* a header in base.tar whose checksum does not match */
	S_TS_BAD_HEADER, /* ... in the tablespace's archive */
	S_DUP_FILE,      /* PG_VERSION twice in base.tar */
	S_DUP_DIR,       /* base/1 a file after it was a directory */
	S_LABEL_MTIME,   /* backup_label stamped 2^62 s after 1970 (GNU base-256) */
	S_OWN_TS_DIR,    /* a directory .bunker-tablespaces in base.tar */
} Stream;

/* Breaks the checksum of the header that starts at h (one bit of its name). */
static void break_header(uint8_t *h) { h[10] ^= 1; }

/* A file's bytes: a pattern that differs by seed and along the file. */
static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n ? n : 1);
	if (!p)
		abort();
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 13 + seed + (i >> 10));
	return p;
}

#define TS_FILE "PG_15_202209061/1/16385"
#define TS_FILE_SIZE 20000
#define BIG_FILE "base/1/1259"
#define BIG_FILE_SIZE 200000

/* The archives as PostgreSQL 15 sends them: the tablespace's first, then base.tar
 * with backup_label and tablespace_map before any other file. */
static void tablespace_tar(TapBuf *t, Stream s)
{
	uint8_t *d = pattern(TS_FILE_SIZE, 1);
	fw_tar_entry(t, '5', "PG_15_202209061", NULL, 0, MTIME);
	fw_tar_entry(t, '5', "PG_15_202209061/1", NULL, 0, MTIME);
	size_t before = t->len;
	fw_tar_entry(t, '0', TS_FILE, d, TS_FILE_SIZE, MTIME);
	if (s == S_TS_BAD_HEADER)
		break_header(t->p + before);
	if (s == S_LINK_TS)
		fw_tar_entry(t, '2', "PG_15_202209061/1/16386", "/etc/shadow", 0, MTIME);
	if (s != S_TS_CUT)
		fw_tar_end(t);
	free(d);
}

static void base_tar(TapBuf *t, Stream s)
{
	uint8_t *big = pattern(BIG_FILE_SIZE, 2), *control = pattern(8192, 3);
	uint8_t *dot = pattern(100000, 4);
	if (s == S_DOT_FIRST)
		fw_tar_entry(t, '0', ".", dot, 100000, MTIME);
	const char *label = s == S_LABEL_ELSE ? LABEL_ELSE : s == S_LABEL_TLI ? LABEL_TLI : LABEL;
	size_t before_label = t->len;
	if (s != S_NO_LABEL)
		fw_tar_entry(t, '0', "backup_label", label, strlen(label), MTIME + 100);
	if (s == S_LABEL_MTIME) {
		uint8_t *h = t->p + before_label;
		memset(h + 136, 0, 12);
		h[136] = 0x80; /* base-256, then the value big-endian in the other 11 bytes */
		h[140] = 0x40;
		fw_tar_checksum(h);
	}
	if (s == S_DOT_FILE)
		fw_tar_entry(t, '0', ".", dot, 100000, MTIME);
	free(dot);
	fw_tar_entry(t, '0', "tablespace_map", TSMAP, strlen(TSMAP), MTIME + 100);
	size_t before_version = t->len;
	fw_tar_entry(t, '0', "PG_VERSION", "15\n", 3, MTIME);
	if (s == S_BAD_HEADER)
		break_header(t->p + before_version);
	if (s == S_DUP_FILE)
		fw_tar_entry(t, '0', "PG_VERSION", "15\n", 3, MTIME);
	fw_tar_entry(t, '5', "global", NULL, 0, MTIME);
	fw_tar_entry(t, '0', "global/pg_control", control, 8192, MTIME);
	fw_tar_entry(t, '5', "base", NULL, 0, MTIME);
	fw_tar_entry(t, '5', "base/1", NULL, 0, MTIME);
	size_t before_big = t->len;
	fw_tar_entry(t, '0', BIG_FILE, big, BIG_FILE_SIZE, MTIME);
	if (s == S_DUP_DIR)
		fw_tar_entry(t, '0', "base/1", "x", 1, MTIME);
	if (s == S_BASE_CUT_DATA)
		t->len = before_big + 512 + BIG_FILE_SIZE / 2;
	if (s == S_HARD_LINK)
		fw_tar_entry(t, '1', "base/1/1259_copy", BIG_FILE, 0, MTIME);
	if (s == S_LINK_CONF)
		fw_tar_entry(t, '2', "postgresql.auto.conf", "/etc/shadow", 0, MTIME);
	if (s == S_OWN_TS_DIR) {
		fw_tar_entry(t, '5', ".bunker-tablespaces", NULL, 0, MTIME);
		fw_tar_entry(t, '0', ".bunker-tablespaces/notes", "x", 1, MTIME);
	}
	fw_tar_entry(t, '5', "pg_tblspc", NULL, 0, MTIME);
	fw_tar_entry(t, '2', s == S_LINK_DEEP ? "pg_tblspc/16384/x" : "pg_tblspc/16384", "/srv/ts", 0,
		     MTIME);
	if (s != S_BASE_CUT && s != S_BASE_CUT_DATA)
		fw_tar_end(t);
	free(big);
	free(control);
}

/* The whole reply to BASE_BACKUP: start 0/2000028 on timeline 1, the tablespace
 * archive named ts_name, base.tar, end 0/2000100 on timeline 2 (a standby promoted
 * during the backup). Archive data goes in 60000-byte messages. */
static void stream(TapBuf *b, Stream s, const char *ts_name)
{
	TapBuf ts = { 0 }, base = { 0 };
	tablespace_tar(&ts, s);
	base_tar(&base, s);
	fw_lsn_result(b, "0/2000028", "1");
	/* the tablespace listed under the archive's name less ".tar", so that
	 * bk_pg_basebackup's own check of the name is reached (replication.c refuses
	 * an archive of a tablespace not listed) */
	char oid[64];
	size_t n = strlen(ts_name);
	bool tar = n >= 4 && !strcmp(ts_name + n - 4, ".tar");
	snprintf(oid, sizeof(oid), "%.*s", (int)(tar ? n - 4 : n), ts_name);
	const char *rows[] = { oid, "/srv/ts", "20", NULL, NULL, "300" };
	fw_result(b, 3, 2, rows, "SELECT");
	fw_copy_out(b);
	const TapBuf *tars[] = { &ts, &base };
	const char *names[] = { ts_name, "base.tar" }, *locs[] = { "/srv/ts", "" };
	for (int i = 0; i < 2; i++) {
		fw_new_archive(b, names[i], locs[i]);
		for (size_t off = 0; off < tars[i]->len; off += 60000)
			fw_archive_data(b, tars[i]->p + off, BK_MIN(60000, tars[i]->len - off));
	}
	fw_copy_done(b);
	fw_lsn_result(b, "0/2000100", "2");
	fw_command_complete(b, "BASE_BACKUP");
	tap_buf_free(&ts);
	tap_buf_free(&base);
}

static char detail[1024], warned[1024];
static unsigned archive_timeout; /* BkBaseBackupOpts.archive_timeout_s of backup() */

static void on_warn(void *ud, const char *msg)
{
	(void)ud;
	snprintf(warned, sizeof(warned), "%s", msg);
}

static int backup(FakeWalsender *f, BkRepo *r, Stream s, const char *ts_name, uint8_t snap[32])
{
	TapBuf b = { 0 };
	stream(&b, s, ts_name);
	fw_set_reply(f, &b, false);
	tap_buf_free(&b);
	warned[0] = '\0';
	BkBaseBackupOpts o = { .conninfo = fw_conninfo(f), .cluster = "main", .host = "test",
			       .warn = on_warn, .archive_timeout_s = archive_timeout };
	int e = bk_pg_basebackup(r, &o, snap);
	snprintf(detail, sizeof(detail), "%s", e < 0 ? bk_error_detail() : "");
	return e;
}

/* Whether the file at path in the snapshot holds exactly want[0..n). */
static bool same_bytes(BkRepo *r, const uint8_t root[32], const char *path, const uint8_t *want,
                       size_t n)
{
	BkTree *t = NULL;
	const BkTreeEntry *ent = NULL;
	bool same = false;
	int fd = memfd_create("content", 0);
	if (fd >= 0 && bk_tree_lookup(r, root, path, &t, &ent) == 0 && ent &&
	    ent->type == BK_NODE_FILE && ent->size == n &&
	    bk_content_write(r, &ent->content, fd) == 0 && lseek(fd, 0, SEEK_END) == (off_t)n) {
		uint8_t *got = malloc(n ? n : 1);
		same = got && pread(fd, got, n, 0) == (ssize_t)n && !memcmp(got, want, n);
		free(got);
	}
	if (!same)
		diag("%s: not the bytes sent (%s)", path, bk_error_detail());
	bk_tree_free(t);
	if (fd >= 0)
		close(fd);
	return same;
}

static bool meta_is(const BkSnapshot *s, const char *key, const char *want)
{
	const char *v = bk_snapshot_meta(s, key);
	if (v && !strcmp(v, want))
		return true;
	diag("%s: '%s', want '%s'", key, v ? v : "(none)", want);
	return false;
}

/* The unbroken stream is a snapshot, recorded as the stream says. Catches start
 * and stop LSN or timeline taken from the wrong end, backup_label and
 * tablespace_map swapped or left out, files or bytes not counted, a file's
 * bytes not stored as sent. */
static void test_complete(FakeWalsender *f)
{
	TestRepo t;
	if (!ok(test_repo_open(&t, "pg-basebackup") == 0, "a repository (%s)", bk_error_detail()))
		return;
	uint8_t snap[32], latest[32];
	int e = backup(f, t.r, S_OK, "16384.tar", snap);
	is_int(e, 0, "a complete stream is a snapshot (%s)", detail);
	BkSnapshot *s = NULL;
	if (e < 0 || bk_snapshot_resolve(t.r, "latest", "pg/main/base", latest) < 0 ||
	    memcmp(latest, snap, 32) || bk_snapshot_load(t.r, snap, &s) < 0) {
		ok(false, "the snapshot is pg/main/base's latest");
		test_repo_close(&t);
		return;
	}
	ok(meta_is(s, "start_lsn", "0/2000028") && meta_is(s, "timeline", "1"),
	   "start_lsn 0/2000028 and timeline 1: the backup's start");
	ok(meta_is(s, "stop_lsn", "0/2000100") && meta_is(s, "stop_timeline", "2"),
	   "stop_lsn 0/2000100 and stop_timeline 2: its end");
	/* the WAL it needs is looked for along the timeline it ended on (found by
	 * review: along the start's, whose segment at the stop may never be archived) */
	ok(strstr(warned, "needs WAL file 00000002.history"),
	   "the repository holding no WAL, the warning names timeline 2's history (%s)", warned);
	ok(meta_is(s, "system_identifier", FW_SYSID) && meta_is(s, "server_version", "150004"),
	   "the server's system identifier and version");
	ok(meta_is(s, "backup_label", LABEL), "backup_label as sent");
	ok(meta_is(s, "tablespace_map", TSMAP), "tablespace_map as sent");
	uint64_t bytes = strlen(LABEL) + strlen(TSMAP) + 3 + 8192 + BIG_FILE_SIZE + TS_FILE_SIZE;
	ok(s->files == 6 && s->logical_bytes == bytes,
	   "6 files of %" PRIu64 " bytes (%" PRIu64 " of %" PRIu64 ")", bytes, s->files,
	   s->logical_bytes);
	uint8_t *big = pattern(BIG_FILE_SIZE, 2), *ts = pattern(TS_FILE_SIZE, 1);
	ok(same_bytes(t.r, s->root, BIG_FILE, big, BIG_FILE_SIZE) &&
	           same_bytes(t.r, s->root, "PG_VERSION", (const uint8_t *)"15\n", 3) &&
	           same_bytes(t.r, s->root, "backup_label", (const uint8_t *)LABEL, strlen(LABEL)),
	   "base.tar's files hold the bytes sent");
	ok(same_bytes(t.r, s->root, BK_TABLESPACE_DIR "/16384/" TS_FILE, ts, TS_FILE_SIZE),
	   "the tablespace's file is under " BK_TABLESPACE_DIR "/16384/ with the bytes sent");
	free(big);
	free(ts);
	bk_snapshot_free(s);
	test_repo_close(&t);
}

/* A broken stream fails the backup with code and detail, and no snapshot is
 * written. */
static void refused(FakeWalsender *f, Stream s, const char *ts_name, int code, const char *want,
                    const char *what)
{
	TestRepo t;
	if (test_repo_open(&t, "pg-basebackup") < 0) {
		ok(false, "%s: a repository (%s)", what, bk_error_detail());
		return;
	}
	uint8_t snap[32], id[32];
	int e = backup(f, t.r, s, ts_name, snap);
	ok(e == code && strstr(detail, want) &&
	           bk_snapshot_resolve(t.r, "latest", NULL, id) == -ENOENT,
	   "%s: refused, no snapshot (%d %s)", what, e, detail);
	bk_error_clear();
	test_repo_close(&t);
}

/* A server older than PostgreSQL 15 is refused before anything is asked of it or
 * written: exit 1, saying so. A 14 came to BASE_BACKUP's own check, after the
 * cluster was recorded, as BK_E_VERSION (exit 5, "corruption found"); a 13 had
 * no in_hot_standby, and the SHOW's error was all the user saw (found by
 * review). */
static void test_old_server(FakeWalsender *f, const char *version)
{
	TestRepo t;
	if (test_repo_open(&t, "pg-basebackup") < 0) {
		ok(false, "PostgreSQL %s: a repository (%s)", version, bk_error_detail());
		return;
	}
	fw_set_version(f, version);
	archive_timeout = 60; /* bunker pg basebackup's default: it asks in_hot_standby */
	uint8_t snap[32], id[32];
	uint64_t sysid;
	uint32_t seg_size;
	int e = backup(f, t.r, S_OK, "16384.tar", snap);
	char want[64];
	snprintf(want, sizeof(want), "PostgreSQL %s: base backups need PostgreSQL 15", version);
	ok(e == -EPROTONOSUPPORT && strstr(detail, want) &&
		   bk_snapshot_resolve(t.r, "latest", NULL, id) == -ENOENT &&
		   bk_cluster_get(t.r, "main", &sysid, &seg_size) == -ENOENT,
	   "PostgreSQL %s: refused (exit 1), saying so, before the cluster is recorded (%d %s)",
	   version, e, detail);
	fw_set_version(f, "15.4");
	archive_timeout = 0;
	bk_error_clear();
	test_repo_close(&t);
}

/* A server that takes the listing's query and never answers (a stopped backend,
 * a lock): pg dump gives up after its stall timeout, saying so, with nothing
 * dumped (found by an adversarial test: it waited for ever); base backup's
 * queries before the stream are bounded the same way (test-pg-replication.c). */
static void test_silent_listing(FakeWalsender *f)
{
	TestRepo t;
	if (test_repo_open(&t, "pg-dump-silent") < 0) {
		ok(false, "a repository (%s)", bk_error_detail());
		return;
	}
	fw_set_mute(f, "SELECT");
	BkDumpOpts o = { .conninfo = fw_conninfo(f), .cluster = "main", .host = "test",
			 .stall_timeout_s = 1 };
	uint64_t t0 = bk_mono_us();
	int e = bk_pg_dump(t.r, &o);
	uint64_t took = bk_mono_us() - t0;
	snprintf(detail, sizeof(detail), "%s", e < 0 ? bk_error_detail() : "");
	uint8_t id[32];
	ok(e == BK_E_REMOTE && strstr(detail, "list databases: the server sent nothing for 1 s") &&
		   took >= 900000 && took < 10000000 &&
		   bk_snapshot_resolve(t.r, "latest", NULL, id) == -ENOENT,
	   "pg dump: a listing never answered fails after the 1 s stall timeout, nothing "
	   "saved (%d, %.2f s, %s)", e, (double)took / 1e6, detail);
	fw_set_mute(f, NULL);
	bk_error_clear();
	test_repo_close(&t);
}

int main(void)
{
	FakeWalsender *f = fw_start();
	test_silent_listing(f);
	test_complete(f);
	/* BK_TAR_REQUIRE_END and bk_tar_parser_finish at each archive's end. */
	refused(f, S_BASE_CUT, "16384.tar", BK_E_CORRUPT, "base.tar",
	        "base.tar cut between two entries (no end-of-archive blocks)");
	refused(f, S_BASE_CUT_DATA, "16384.tar", BK_E_CORRUPT, "base.tar",
	        "base.tar cut inside a file");
	refused(f, S_TS_CUT, "16384.tar", BK_E_CORRUPT, "16384.tar",
	        "the tablespace's archive cut between two entries");
	/* The name becomes a directory of the snapshot. */
	static const char *bad_names[] = { "../1.tar", "x1.tar", ".tar", "1/2.tar" };
	for (size_t i = 0; i < BK_ARRAY_SIZE(bad_names); i++)
		refused(f, S_OK, bad_names[i], BK_E_CORRUPT, "unexpected archive name", bad_names[i]);
	/* (one that no tablespace row can name is refused by the replication client) */
	refused(f, S_OK, "1.tar.gz", BK_E_CORRUPT, "is not a tablespace the server listed",
		"1.tar.gz");
	refused(f, S_HARD_LINK, "16384.tar", BK_E_CORRUPT, "hard links are not expected",
	        "a hard link in base.tar");
	/* PostgreSQL sends a tablespace's link in pg_tblspc and no other: a link
	 * postgresql.auto.conf -> /etc/shadow would have been restored, and restore
	 * wrote that file by name (found by review) */
	refused(f, S_LINK_CONF, "16384.tar", BK_E_CORRUPT,
		"postgresql.auto.conf: a symbolic link outside pg_tblspc", "a link in base.tar");
	refused(f, S_LINK_DEEP, "16384.tar", BK_E_CORRUPT,
		"pg_tblspc/16384/x: a symbolic link outside pg_tblspc", "a link below pg_tblspc/OID");
	refused(f, S_LINK_TS, "16384.tar", BK_E_CORRUPT,
		"16384/PG_15_202209061/1/16386: a symbolic link outside pg_tblspc",
		"a link in the tablespace's archive");
	/* A file named "." (the top directory's name) had its bytes chunked into the
	 * next file's content, or, after backup_label, copied past the end of the
	 * buffer that captured it. */
	refused(f, S_DOT_FIRST, "16384.tar", BK_E_CORRUPT, "'.' in the archive is not a directory",
	        "a file named '.' first in base.tar");
	refused(f, S_DOT_FILE, "16384.tar", BK_E_CORRUPT, "'.' in the archive is not a directory",
	        "a file named '.' after backup_label");
	/* Restore writes backup_label: without it, or with another start, the copy
	 * would not recover to a consistent state (found by review: saved as complete). */
	refused(f, S_NO_LABEL, "16384.tar", BK_E_CORRUPT, "base.tar holds no backup_label",
		"base.tar without backup_label");
	refused(f, S_LABEL_ELSE, "16384.tar", BK_E_CORRUPT,
		"backup_label does not start at 0/2000028 on timeline 1",
		"a backup_label starting at 0/3000028");
	refused(f, S_LABEL_TLI, "16384.tar", BK_E_CORRUPT,
		"backup_label does not start at 0/2000028 on timeline 1",
		"a backup_label starting on timeline 2");
	/* A header the parser refuses names its archive, as the end of one cut short
	 * does: the offset alone does not say which (found by review) */
	refused(f, S_BAD_HEADER, "16384.tar", BK_E_CORRUPT,
		"base.tar: tar at offset 2048: header checksum mismatch",
		"a damaged header in base.tar, named");
	refused(f, S_TS_BAD_HEADER, "16384.tar", BK_E_CORRUPT,
		"16384.tar: tar at offset 1024: header checksum mismatch",
		"a damaged header in the tablespace's archive, named");
	/* The server's bytes, not bunker's usage: exit 5, not 2 (found by review) */
	refused(f, S_DUP_FILE, "16384.tar", BK_E_CORRUPT, "PG_VERSION: appears twice",
		"a file sent twice in base.tar: BK_E_CORRUPT");
	refused(f, S_DUP_DIR, "16384.tar", BK_E_CORRUPT, "base/1",
		"a file where base.tar sent a directory: BK_E_CORRUPT");
	/* Its stamp dates the snapshot in the server's clock, in microseconds: one
	 * past 2^63 us overflowed (UBSan: signed integer overflow) and the backup was
	 * saved with whatever time came out (found by review) */
	refused(f, S_LABEL_MTIME, "16384.tar", BK_E_CORRUPT,
		"backup_label: modification time 4611686018427387904 s is out of range",
		"a backup_label stamped 2^62 s after 1970");
	/* The snapshot keeps the tablespaces under that name: the data directory's own
	 * would mix with them, and a restore leaves it out (found by review) */
	refused(f, S_OWN_TS_DIR, "16384.tar", -EEXIST,
		"the data directory holds .bunker-tablespaces, a name bunker keeps",
		"a data directory holding .bunker-tablespaces");
	test_old_server(f, "14.10");
	test_old_server(f, "13.2");
	fw_stop(f);
	return tap_done();
}
