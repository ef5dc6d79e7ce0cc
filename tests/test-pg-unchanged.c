/* Unit tests for bk_basebackup_unchanged and bk_basebackup_label_follows
 * (pg/basebackup.h): which files a base backup takes from its parent instead of
 * reading them, and whether it may take any. Each condition alone makes a file be
 * read again, including the boundary: a file last written in the very second the
 * parent started is read again. Each label difference alone (role, timeline, WAL
 * position, clock) makes every file be read. */
#include <stdio.h>

#include "pg/basebackup.h"
#include "tests/tap.h"

/* A PostgreSQL 15 backup_label. */
static const char *label(char *buf, size_t cap, const char *lsn, const char *from, int tli)
{
	snprintf(buf, cap,
		 "START WAL LOCATION: %s (file 000000010000000000000002)\n"
		 "CHECKPOINT LOCATION: 0/2000060\n"
		 "BACKUP METHOD: streamed\n"
		 "BACKUP FROM: %s\n"
		 "START TIME: 2026-11-22 06:12:41 UTC\n"
		 "LABEL: bunker\n"
		 "START TIMELINE: %d\n",
		 lsn, from, tli);
	return buf;
}

static void test_label_follows(void)
{
	char pl[512], l[512];
	BkParentBackup p = { .label = (char *)label(pl, sizeof(pl), "0/2000028", "primary", 1),
			     .start = 1700000000,
			     .stop_tli = 1,
			     .stop_lsn = 0x2000100 };
	ok(bk_basebackup_label_follows(&p, label(l, sizeof(l), "0/3000028", "primary", 1), p.start + 60),
	   "the next backup of the same primary follows its parent");
	ok(bk_basebackup_label_follows(&p, label(l, sizeof(l), "0/2000100", "primary", 1), p.start + 1),
	   "... starting where the parent stopped, one second later");
	ok(!bk_basebackup_label_follows(&p, label(l, sizeof(l), "0/3000028", "standby", 1), p.start + 60),
	   "from a standby after a primary: every file read");
	ok(!bk_basebackup_label_follows(&p, label(l, sizeof(l), "0/3000028", "primary", 2), p.start + 60),
	   "on another timeline (after a failover): every file read");
	ok(!bk_basebackup_label_follows(&p, label(l, sizeof(l), "0/20000FF", "primary", 1), p.start + 60),
	   "starting before the parent stopped (another server): every file read");
	ok(!bk_basebackup_label_follows(&p, label(l, sizeof(l), "0/3000028", "primary", 1), p.start),
	   "stamped in the parent's second (the clock did not move on): every file read");
	ok(!bk_basebackup_label_follows(&p, label(l, sizeof(l), "0/3000028", "primary", 1), p.start - 5),
	   "stamped before the parent (the clock went back): every file read");
	ok(!bk_basebackup_label_follows(&p, "LABEL: bunker\n", p.start + 60),
	   "a label without the fields: every file read");
	p.label = (char *)"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n";
	ok(!bk_basebackup_label_follows(&p, label(l, sizeof(l), "0/3000028", "primary", 1), p.start + 60),
	   "a parent label without BACKUP FROM: every file read");
}

int main(void)
{
	test_label_follows();
	const int64_t start = 1700000000; /* the parent's start, server clock */
	BkTreeEntry file = { .type = BK_NODE_FILE, .size = 8192, .mtime_sec = start - 60 };
	BkTreeEntry dir = file;
	dir.type = BK_NODE_DIR;

	ok(bk_basebackup_unchanged(&file, start, 8192, start - 60),
	   "same size, same mtime, before the parent started: reused");
	BkTreeEntry just = file;
	just.mtime_sec = start - 1;
	ok(bk_basebackup_unchanged(&just, start, 8192, start - 1), "... one second before: reused");
	ok(!bk_basebackup_unchanged(NULL, start, 8192, start - 60), "not in the parent: read");
	ok(!bk_basebackup_unchanged(&dir, start, 8192, start - 60), "not a file in the parent: read");
	ok(!bk_basebackup_unchanged(&file, start, 16384, start - 60), "another size: read");
	ok(!bk_basebackup_unchanged(&file, start, 8192, start - 59), "a later mtime: read");
	ok(!bk_basebackup_unchanged(&file, start, 8192, start - 61), "an earlier mtime: read");

	BkTreeEntry fresh = file;
	fresh.mtime_sec = start;
	ok(!bk_basebackup_unchanged(&fresh, start, 8192, start),
	   "written in the second the parent started (a later write in that second "
	   "would keep the mtime): read");
	fresh.mtime_sec = start + 5;
	ok(!bk_basebackup_unchanged(&fresh, start, 8192, start + 5),
	   "written while the parent ran: read");
	return tap_done();
}
