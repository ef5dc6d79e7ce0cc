/* Unit test for bk_basebackup_unchanged (pg/basebackup.h): which files a base
 * backup takes from its parent instead of reading them. Each condition alone
 * makes a file be read again, including the boundary: a file last written in
 * the very second the parent started is read again. */
#include "pg/basebackup.h"
#include "tests/tap.h"

int main(void)
{
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
