/* tests/test-pg-replication.c: the replication client against a real PostgreSQL 15.
 *
 *   test-pg-replication --conninfo STR --datadir DIR --sysid N [--tablespace OID:DIR]
 *
 * tests/pg/pg-live.sh starts the server (tests/integration/lib-pg.sh), creates a
 * tablespace and some tables, and runs this. Checked here: connection errors carry
 * the server's message; IDENTIFY_SYSTEM; a BASE_BACKUP streamed through the tar
 * parser has PG_VERSION, global/pg_control, backup_label and tablespace_map, every
 * file's size matches the data directory and tablespace, and every file of the data
 * directory that PostgreSQL does not exclude is there; a callback failure aborts
 * the backup cleanly; MAX_RATE reaches the server; a server gone silent fails
 * the backup after its stall timeout, a slow callback does not; START_REPLICATION streams the
 * backup's WAL, whose first page header carries the cluster's system identifier,
 * and status updates reach pg_stat_replication with the write and flush positions
 * given.
 *
 * Without arguments (and before the live tests): the wire messages, and BASE_BACKUP
 * streams no real server sends, from tests/pg/fake-walsender.h: a partial or
 * malformed stream (an archive missing, the end location missing, before the start
 * or malformed, a message of the wrong length or type) is refused, never returned
 * as a backup. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg/replication.h"
#include "pg/tar.h"
#include "pg/wal.h"
#include "store/error.h"
#include "store/util.h"
#include "tests/pg/fake-walsender.h"
#include "tests/tap.h"

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

typedef struct {
	char *archive, *path, *link;
	BkTarType type;
	uint64_t size, hash;
} Ent;

#define CAPTURE_MAX 65536

typedef struct {
	BkTarParser *tar;
	char archive[256];
	char archives[8][256];
	char locations[8][1024];
	int n_archives;
	bool nested_archive;
	Ent *ents;
	size_t n_ents;
	/* current entry */
	Ent cur;
	char *capture; /* backup_label or tablespace_map being captured */
	size_t capture_len;
	char label[CAPTURE_MAX], tsmap[CAPTURE_MAX];
	size_t label_len, tsmap_len;
	bool have_label, have_tsmap;
	/* progress */
	int progress_calls;
	uint64_t last_done, total;
	bool progress_backwards;
	/* failure injection */
	long fail_at_data, data_calls;
} Backup;

static int t_start(void *ctx, const BkTarEntry *e)
{
	Backup *b = ctx;
	b->cur = (Ent){strdup(b->archive), strdup(e->path), strdup(e->link), e->type, e->size,
	               FNV_INIT};
	b->capture = NULL;
	b->capture_len = 0;
	if (strcmp(b->archive, "base.tar") == 0) {
		if (strcmp(e->path, "backup_label") == 0)
			b->capture = b->label;
		else if (strcmp(e->path, "tablespace_map") == 0)
			b->capture = b->tsmap;
	}
	return 0;
}

static int t_data(void *ctx, const void *buf, size_t len)
{
	Backup *b = ctx;
	b->cur.hash = fnv(b->cur.hash, buf, len);
	if (b->capture) {
		size_t n = BK_MIN(len, CAPTURE_MAX - 1 - b->capture_len);
		memcpy(b->capture + b->capture_len, buf, n);
		b->capture_len += n;
	}
	return 0;
}

static int t_end(void *ctx, const BkTarEntry *e)
{
	Backup *b = ctx;
	(void)e;
	if (b->capture == b->label) {
		b->label_len = b->capture_len;
		b->label[b->label_len] = '\0';
		b->have_label = true;
	} else if (b->capture == b->tsmap) {
		b->tsmap_len = b->capture_len;
		b->tsmap[b->tsmap_len] = '\0';
		b->have_tsmap = true;
	}
	b->capture = NULL;
	b->ents = realloc(b->ents, (b->n_ents + 1) * sizeof(Ent));
	if (!b->ents)
		abort();
	b->ents[b->n_ents++] = b->cur;
	memset(&b->cur, 0, sizeof(b->cur));
	return 0;
}

static const BkTarCallbacks tar_cb = {t_start, t_data, t_end};

static int a_start(void *ctx, const char *name, const char *loc)
{
	Backup *b = ctx;
	if (b->tar)
		b->nested_archive = true;
	snprintf(b->archive, sizeof(b->archive), "%s", name);
	if (b->n_archives < 8) {
		snprintf(b->archives[b->n_archives], sizeof(b->archives[0]), "%s", name);
		snprintf(b->locations[b->n_archives], sizeof(b->locations[0]), "%s", loc);
		b->n_archives++;
	}
	return bk_tar_parser_new(&tar_cb, b, 0, &b->tar);
}

static int a_data(void *ctx, const void *buf, size_t len)
{
	Backup *b = ctx;
	if (b->fail_at_data >= 0 && b->data_calls++ == b->fail_at_data)
		return bk_errorf(-EIO, "injected failure");
	return bk_tar_parser_push(b->tar, buf, len);
}

static int a_end(void *ctx, const char *name)
{
	Backup *b = ctx;
	int r = strcmp(name, b->archive) == 0 ? bk_tar_parser_finish(b->tar) : -EINVAL;
	bk_tar_parser_free(b->tar);
	b->tar = NULL;
	return r;
}

static int a_progress(void *ctx, uint64_t done, uint64_t total)
{
	Backup *b = ctx;
	if (done < b->last_done)
		b->progress_backwards = true;
	b->last_done = done;
	b->total = total;
	b->progress_calls++;
	return 0;
}

static const BkPgReplBackupCallbacks backup_cb = {a_start, a_data, a_end, a_progress};

static void backup_release(Backup *b)
{
	bk_tar_parser_free(b->tar);
	for (size_t i = 0; i < b->n_ents; i++) {
		free(b->ents[i].archive);
		free(b->ents[i].path);
		free(b->ents[i].link);
	}
	free(b->ents);
	free(b->cur.archive);
	free(b->cur.path);
	free(b->cur.link);
}

static const Ent *find(const Backup *b, const char *archive, const char *path)
{
	for (size_t i = 0; i < b->n_ents; i++)
		if (strcmp(b->ents[i].archive, archive) == 0 && strcmp(b->ents[i].path, path) == 0)
			return &b->ents[i];
	return NULL;
}

static uint64_t hash_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint64_t h = FNV_INIT;
	uint8_t buf[65536];
	size_t n;
	if (!f)
		return 0;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		h = fnv(h, buf, n);
	fclose(f);
	return h;
}

/* ---- the data directory as PostgreSQL 15's BASE_BACKUP sees it ----------------- */

static const char *walk_root;
static size_t walk_root_len;
static char **disk_files;
static size_t n_disk_files;

static bool excluded(const char *rel)
{
	static const char *dirs[] = {"pg_wal/", "pg_tblspc/", "pg_stat_tmp/", "pg_replslot/", "pg_dynshmem/",
	                             "pg_notify/", "pg_serial/", "pg_snapshots/", "pg_subtrans/"};
	static const char *files[] = {"postmaster.pid", "postmaster.opts", "current_logfiles",
	                              "postgresql.auto.conf.tmp", "backup_label", "tablespace_map",
	                              "backup_manifest"};
	for (size_t i = 0; i < BK_ARRAY_SIZE(dirs); i++)
		if (strncmp(rel, dirs[i], strlen(dirs[i])) == 0)
			return true;
	const char *base = strrchr(rel, '/');
	base = base ? base + 1 : rel;
	for (size_t i = 0; i < BK_ARRAY_SIZE(files); i++)
		if (strcmp(base, files[i]) == 0)
			return true;
	return strncmp(base, "pg_internal.init", 16) == 0 || strncmp(base, "pgsql_tmp", 9) == 0 ||
	       strstr(rel, "/pgsql_tmp") != NULL;
}

static int walk_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag, (void)ftw;
	if (!S_ISREG(st->st_mode) || strlen(path) <= walk_root_len)
		return 0;
	const char *rel = path + walk_root_len + 1;
	if (excluded(rel))
		return 0;
	disk_files = realloc(disk_files, (n_disk_files + 1) * sizeof(char *));
	if (!disk_files)
		abort();
	disk_files[n_disk_files++] = strdup(rel);
	return 0;
}

/* Every tar file of archive has the size of root/path; every regular file under
 * root (that the server does not exclude) is in the archive. */
static void compare_with_disk(const Backup *b, const char *archive, const char *root)
{
	int bad = 0, checked = 0;
	for (size_t i = 0; i < b->n_ents; i++) {
		const Ent *e = &b->ents[i];
		if (strcmp(e->archive, archive) != 0 || e->type != BK_TAR_FILE)
			continue;
		if (strcmp(archive, "base.tar") == 0 &&
		    (strcmp(e->path, "backup_label") == 0 || strcmp(e->path, "tablespace_map") == 0))
			continue;
		char path[8192];
		snprintf(path, sizeof(path), "%s/%s", root, e->path);
		struct stat st;
		if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size) {
			if (bad++ < 5)
				diag("%s: %s: %" PRIu64 " bytes in the backup, %lld on disk", archive, e->path,
				     e->size, lstat(path, &st) == 0 ? (long long)st.st_size : -1LL);
		}
		checked++;
	}
	ok(bad == 0 && checked > 0, "%s: all %d files have the size they have in %s", archive, checked,
	   root);

	walk_root = root;
	walk_root_len = strlen(root);
	n_disk_files = 0;
	nftw(root, walk_cb, 32, FTW_PHYS);
	int missing = 0;
	for (size_t i = 0; i < n_disk_files; i++) {
		const Ent *e = find(b, archive, disk_files[i]);
		if (!e || e->type != BK_TAR_FILE) {
			if (missing++ < 5)
				diag("%s: %s is on disk but not in the backup", archive, disk_files[i]);
		}
		free(disk_files[i]);
	}
	ok(missing == 0 && n_disk_files > 0, "%s: all %zu files on disk are in the backup", archive,
	   n_disk_files);
	free(disk_files);
	disk_files = NULL;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_connect_errors(const char *conninfo)
{
	BkPgRepl *c = NULL;
	int r = bk_pgrepl_open("host=127.0.0.1 port=1 connect_timeout=5", &c);
	ok(r == BK_E_REMOTE && c == NULL, "closed port: BK_E_REMOTE (%s)", bk_error_detail());
	ok(strncmp(bk_error_detail(), "connect: ", 9) == 0 && strchr(bk_error_detail(), '\n') == NULL,
	   "detail is one line naming the step");

	char bad[1024];
	snprintf(bad, sizeof(bad), "%s user=no_such_role_here", conninfo);
	r = bk_pgrepl_open(bad, &c);
	ok(r == BK_E_REMOTE && strstr(bk_error_detail(), "no_such_role_here") != NULL,
	   "unknown role: the server's message comes through (%s)", bk_error_detail());

	r = bk_pgrepl_open("postgresql://", &c);
	diag("uri with libpq defaults: %d %s", r, r ? bk_error_detail() : "");
	bk_pgrepl_close(c);
	c = NULL;
	bk_pgrepl_close(NULL);
}

static void test_identify(BkPgRepl *c, uint64_t sysid)
{
	BkPgReplSystem s = {0};
	int v = bk_pgrepl_server_version(c);
	ok(v >= 150000 && v < 160000, "server version %d is 15", v);
	is_int(bk_pgrepl_identify_system(c, &s), 0, "identify system");
	ok(s.sysid == sysid, "system identifier %" PRIu64 " matches pg_controldata", s.sysid);
	is_int(s.tli, 1, "timeline 1");
	ok(s.xlogpos > 0, "xlogpos %" PRIX64, s.xlogpos);
}

static void test_aborted_backup(const char *conninfo)
{
	BkPgRepl *c;
	if (!ok(bk_pgrepl_open(conninfo, &c) == 0, "connect for the aborted backup"))
		return;
	Backup b = {0};
	b.fail_at_data = 3;
	BkPgReplBackupResult res = {.archives = 99};
	BkPgReplBackupOptions opt = {.fast_checkpoint = true, .no_wait = true};
	int r = bk_pgrepl_base_backup(c, &opt, &backup_cb, &b, &res);
	ok(r == -EIO && res.archives == 99, "callback failure aborts the backup with its code");
	BkPgReplSystem s;
	is_int(bk_pgrepl_identify_system(c, &s), -EPIPE, "the connection is then unusable");
	backup_release(&b);
	bk_pgrepl_close(c);

	/* Bad arguments are refused before anything is sent. */
	ok(bk_pgrepl_open(conninfo, &c) == 0, "connect again");
	opt.label = "two\nlines";
	is_int(bk_pgrepl_base_backup(c, &opt, &backup_cb, &b, &res), BK_E_USAGE, "label with newline");
	opt.label = "back\\slash";
	is_int(bk_pgrepl_base_backup(c, &opt, &backup_cb, &b, &res), BK_E_USAGE, "label with backslash");
	opt.label = NULL;
	opt.max_rate_kb = 5;
	is_int(bk_pgrepl_base_backup(c, &opt, &backup_cb, &b, &res), BK_E_USAGE, "max rate below 32");
	is_int(bk_pgrepl_identify_system(c, &s), 0, "connection still usable after refused arguments");
	bk_pgrepl_close(c);
}

/* MAX_RATE reaches the server: capped at 32 kB/s, the first half second of
 * archive data is a few dozen kB, where the uncapped server sends megabytes (the
 * whole backup) in that time. */
typedef struct {
	uint64_t first_us, bytes;
} Rate;

static int rate_data(void *ctx, const void *buf, size_t len)
{
	Rate *k = ctx;
	(void)buf;
	if (!k->first_us)
		k->first_us = bk_mono_us();
	else if (bk_mono_us() - k->first_us > 500000)
		return bk_errorf(-ECANCELED, "half a second of data");
	k->bytes += len;
	return 0;
}

static void test_max_rate(const char *conninfo)
{
	static const BkPgReplBackupCallbacks cb = { .archive_data = rate_data };
	BkPgRepl *c;
	if (!ok(bk_pgrepl_open(conninfo, &c) == 0, "connect for the capped backup"))
		return;
	Rate k = { 0 };
	BkPgReplBackupOptions opt = { .fast_checkpoint = true, .no_wait = true, .max_rate_kb = 32 };
	BkPgReplBackupResult res;
	int r = bk_pgrepl_base_backup(c, &opt, &cb, &k, &res);
	ok(r == -ECANCELED && k.bytes < 256 * 1024,
	   "max rate 32 kB/s: %" PRIu64 " bytes in the first half second (%d)", k.bytes, r);
	bk_pgrepl_close(c);
}

/* The stall timeout. A walsender stopped (SIGSTOP) in the middle of a capped backup
 * sends nothing more: the backup fails after the timeout with BK_E_REMOTE naming
 * it, instead of waiting for ever. A child resumes the walsender after 20 s and data
 * arriving then fails the callback, so that a watchdog that does not fire fails
 * this test instead of hanging it. A callback slower than the timeout is not the
 * server's silence: that backup completes. */
typedef struct {
	char conninfo[1024];
	pid_t walsender, resumer;
	uint64_t stopped_us;
	bool late_data;
	unsigned slow_ms; /* the first data callback sleeps this long */
	bool slept;
} Stall;

static pid_t walsender_of(const char *conninfo, const char *app)
{
	PGconn *q = PQconnectdb(conninfo);
	pid_t pid = 0;
	if (PQstatus(q) == CONNECTION_OK) {
		const char *params[] = { app };
		PGresult *res = PQexecParams(q, "select pid from pg_stat_activity "
					     "where application_name = $1 and backend_type = 'walsender'",
					     1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			pid = (pid_t)atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	PQfinish(q);
	return pid;
}

static int stall_data(void *ctx, const void *buf, size_t len)
{
	Stall *k = ctx;
	(void)buf;
	(void)len;
	if (k->slow_ms && !k->slept) {
		k->slept = true;
		usleep(k->slow_ms * 1000);
		return 0;
	}
	if (k->slow_ms)
		return 0;
	if (!k->walsender) {
		k->walsender = walsender_of(k->conninfo, "bunker_stall");
		if (k->walsender <= 0)
			return bk_errorf(-ESRCH, "no walsender named bunker_stall");
		kill(k->walsender, SIGSTOP);
		k->stopped_us = bk_mono_us();
		k->resumer = fork();
		if (k->resumer == 0) {
			sleep(20);
			kill(k->walsender, SIGCONT);
			_exit(0);
		}
	} else if (bk_mono_us() - k->stopped_us > 5000000) {
		k->late_data = true;
		return bk_errorf(-ECANCELED, "data from the resumed walsender");
	}
	return 0;
}

static void test_stall(const char *conninfo)
{
	static const BkPgReplBackupCallbacks cb = { .archive_data = stall_data };
	Stall k = { 0 };
	snprintf(k.conninfo, sizeof(k.conninfo), "%s", conninfo);
	char named[1100];
	snprintf(named, sizeof(named), "%s application_name=bunker_stall", conninfo);
	BkPgRepl *c;
	if (!ok(bk_pgrepl_open(named, &c) == 0, "connect for the stalled backup"))
		return;
	BkPgReplBackupOptions opt = { .fast_checkpoint = true, .no_wait = true, .max_rate_kb = 32,
				      .stall_timeout_s = 1 };
	BkPgReplBackupResult res;
	int r = bk_pgrepl_base_backup(c, &opt, &cb, &k, &res);
	uint64_t waited = k.stopped_us ? bk_mono_us() - k.stopped_us : 0;
	if (k.walsender > 0)
		kill(k.walsender, SIGCONT);
	if (k.resumer > 0) {
		kill(k.resumer, SIGKILL);
		waitpid(k.resumer, NULL, 0);
	}
	ok(k.walsender > 0, "the walsender was stopped in the middle of the backup");
	ok(r == BK_E_REMOTE && strstr(bk_error_detail(), "the server sent nothing for 1 s (stall timeout)"),
	   "a silent server fails the backup: BK_E_REMOTE (%d, %s)", r, bk_error_detail());
	ok(!k.late_data && waited >= 1000000 && waited < 5000000,
	   "... after the 1 s timeout (%.2f s after the stop)", (double)waited / 1e6);
	BkPgReplSystem s;
	is_int(bk_pgrepl_identify_system(c, &s), -EPIPE, "the connection is then unusable");
	bk_pgrepl_close(c);

	if (!ok(bk_pgrepl_open(named, &c) == 0, "connect for the slow callback"))
		return;
	k = (Stall){ .slow_ms = 2500 };
	opt = (BkPgReplBackupOptions){ .fast_checkpoint = true, .no_wait = true, .stall_timeout_s = 1 };
	r = bk_pgrepl_base_backup(c, &opt, &cb, &k, &res);
	ok(r == 0 && k.slept, "a callback that takes 2.5 s is not a stall of 1 s (%d, %s)", r,
	   r ? bk_error_detail() : "ok");
	bk_pgrepl_close(c);
}

static void test_backup_and_stream(const char *conninfo, const char *datadir, uint64_t sysid,
                                   const char *ts_oid, const char *ts_dir)
{
	BkPgRepl *c;
	if (!ok(bk_pgrepl_open(conninfo, &c) == 0, "connect (%s)", bk_error_detail()))
		return;
	test_identify(c, sysid);

	Backup b = {0};
	b.fail_at_data = -1;
	BkPgReplBackupResult res = {0};
	BkPgReplBackupOptions opt = {.label = "bunker's test", .fast_checkpoint = true};
	int r = bk_pgrepl_base_backup(c, &opt, &backup_cb, &b, &res);
	is_int(r, 0, "base backup (%s)", r ? bk_error_detail() : "ok");
	ok(!b.nested_archive, "archives arrive one after another");

	char start[BK_WAL_LSN_MAX], end[BK_WAL_LSN_MAX];
	bk_wal_lsn_format(start, sizeof(start), res.start_lsn);
	bk_wal_lsn_format(end, sizeof(end), res.end_lsn);
	diag("backup %s..%s tli %u, %u archives, %" PRIu64 " bytes (estimate %" PRIu64 ")", start,
	     end, res.start_tli, res.archives, res.bytes, res.total_estimate);
	ok(res.start_lsn > 0 && res.start_lsn <= res.end_lsn, "start %s <= end %s", start, end);
	ok(res.start_tli == 1 && res.end_tli == 1, "timeline 1 at both ends");
	unsigned want_archives = ts_oid ? 2 : 1;
	is_int(res.archives, want_archives, "one archive per tablespace plus base.tar");
	is_int(b.n_archives, (int)want_archives, "archive_start called for each");
	bool base_ok = false, ts_ok = !ts_oid;
	for (int i = 0; i < b.n_archives; i++) {
		if (strcmp(b.archives[i], "base.tar") == 0 && b.locations[i][0] == '\0')
			base_ok = true;
		if (ts_oid) {
			char name[64];
			snprintf(name, sizeof(name), "%s.tar", ts_oid);
			if (strcmp(b.archives[i], name) == 0 && strcmp(b.locations[i], ts_dir) == 0)
				ts_ok = true;
		}
	}
	ok(base_ok, "base.tar with an empty tablespace location");
	ok(ts_ok, "%s.tar with location %s", ts_oid ? ts_oid : "-", ts_dir ? ts_dir : "-");
	ok(res.total_estimate > 0 && res.bytes > 0, "size estimate and bytes received");
	ok(b.progress_calls > 0 && !b.progress_backwards && b.total == res.total_estimate,
	   "progress reported %d times, never backwards, against the estimate", b.progress_calls);

	static const char *must[] = {"PG_VERSION", "global/pg_control", "backup_label", "tablespace_map",
	                             "postgresql.conf", "pg_hba.conf", "base", "global", "pg_wal"};
	for (size_t i = 0; i < BK_ARRAY_SIZE(must); i++)
		ok(find(&b, "base.tar", must[i]) != NULL, "base.tar has %s", must[i]);
	const Ent *e = find(&b, "base.tar", "global/pg_control");
	ok(e && e->type == BK_TAR_FILE && e->size == 8192, "pg_control is 8192 bytes");
	e = find(&b, "base.tar", "pg_wal");
	ok(e && e->type == BK_TAR_DIR, "pg_wal is an (empty) directory");
	size_t in_wal = 0;
	for (size_t i = 0; i < b.n_ents; i++)
		in_wal += strncmp(b.ents[i].path, "pg_wal/", 7) == 0 && b.ents[i].type == BK_TAR_FILE;
	is_int(in_wal, 0, "no wal segment files in base.tar");

	char path[4096];
	static const char *same_bytes[] = {"PG_VERSION", "postgresql.conf", "pg_hba.conf"};
	for (size_t i = 0; i < BK_ARRAY_SIZE(same_bytes); i++) {
		e = find(&b, "base.tar", same_bytes[i]);
		snprintf(path, sizeof(path), "%s/%s", datadir, same_bytes[i]);
		ok(e && e->hash == hash_file(path), "%s: same bytes as on disk", same_bytes[i]);
	}

	ok(b.have_label, "backup_label captured (%zu bytes)", b.label_len);
	char want[256];
	char seg[BK_WAL_NAME_MAX];
	bk_wal_lsn_segment_name(seg, sizeof(seg), res.start_tli, res.start_lsn,
	                        BK_WAL_SEG_SIZE_DEFAULT);
	snprintf(want, sizeof(want), "START WAL LOCATION: %s (file %s)\n", start, seg);
	ok(strstr(b.label, want) != NULL, "backup_label has \"%.*s\"", (int)strlen(want) - 1, want);
	ok(strstr(b.label, "LABEL: bunker's test\n") != NULL, "label with a quote arrived intact");
	ok(strstr(b.label, "BACKUP METHOD: streamed\n") != NULL, "streamed backup method");
	if (ts_oid) {
		ok(b.have_tsmap, "tablespace_map captured");
		snprintf(want, sizeof(want), "%s %s\n", ts_oid, ts_dir);
		ok(strcmp(b.tsmap, want) == 0, "tablespace_map is \"%s %s\"", ts_oid, ts_dir);
		/* With TABLESPACE_MAP the server leaves the links out: tablespace_map has them. */
		e = find(&b, "base.tar", "pg_tblspc");
		ok(e && e->type == BK_TAR_DIR, "pg_tblspc is a directory");
		size_t in_tblspc = 0;
		for (size_t i = 0; i < b.n_ents; i++)
			in_tblspc += strncmp(b.ents[i].path, "pg_tblspc/", 10) == 0;
		is_int(in_tblspc, 0, "pg_tblspc is empty (links are in tablespace_map)");
	}

	compare_with_disk(&b, "base.tar", datadir);
	if (ts_oid) {
		char name[64];
		snprintf(name, sizeof(name), "%s.tar", ts_oid);
		compare_with_disk(&b, name, ts_dir);
	}
	backup_release(&b);

	/* ---- streaming on the same connection ---- */
	uint64_t seg_start = res.start_lsn - res.start_lsn % BK_WAL_SEG_SIZE_DEFAULT;
	r = bk_pgrepl_stream_start(c, NULL, 1, seg_start);
	is_int(r, 0, "start replication at the backup's first segment (%s)", r ? bk_error_detail() : "");
	if (r < 0) {
		bk_pgrepl_close(c);
		return;
	}
	uint8_t header[BK_WAL_LONG_HEADER_SIZE];
	size_t have_header = 0;
	uint64_t next = seg_start;
	int xlog_msgs = 0, keepalives = 0, gaps = 0;
	uint64_t deadline = bk_mono_us() + 30 * 1000000ull;
	while (next < res.end_lsn && bk_mono_us() < deadline) {
		BkPgReplMsg m;
		/* timeout 0, as an event loop polls: each call reads what has arrived
		 * (found by review: it returned only what libpq held already) */
		r = bk_pgrepl_stream_recv(c, 0, &m);
		if (r < 0) {
			diag("recv: %s", bk_error_detail());
			break;
		}
		if (r == 0) {
			usleep(1000);
			continue;
		}
		if (m.kind == BK_PGREPL_MSG_XLOG) {
			xlog_msgs++;
			if (m.data_start != next)
				gaps++;
			size_t n = BK_MIN(m.len, sizeof(header) - have_header);
			if (m.data_start == seg_start + have_header) {
				memcpy(header + have_header, m.data, n);
				have_header += n;
			}
			next = m.data_start + m.len;
		} else if (m.kind == BK_PGREPL_MSG_KEEPALIVE) {
			keepalives++;
			if (m.reply_requested)
				bk_pgrepl_stream_status(c, next, seg_start, 0, false);
		} else
			break;
	}
	ok(next >= res.end_lsn, "streamed wal from %" PRIX64 " past the backup's end (%d messages)",
	   seg_start, xlog_msgs);
	is_int(gaps, 0, "contiguous wal, starting exactly where asked");
	diag("%d keepalives", keepalives);
	BkWalHeader h;
	ok(have_header == sizeof(header) && bk_wal_header_parse(header, sizeof(header), seg, &h) == 0,
	   "first page of streamed segment %s has a valid long header", seg);
	ok(h.sysid == sysid, "its system identifier matches the cluster's");

	/* A status update with write and flush positions reaches pg_stat_replication. */
	is_int(bk_pgrepl_stream_status(c, next, seg_start, 0, false), 0, "send status update");
	char plain[2048];
	snprintf(plain, sizeof(plain), "%s", conninfo);
	PGconn *q = PQconnectdb(plain);
	bool seen = false;
	char wl[64] = "", fl[64] = "";
	for (int i = 0; i < 100 && PQstatus(q) == CONNECTION_OK && !seen; i++) {
		PGresult *pr = PQexec(q, "select write_lsn, flush_lsn from pg_stat_replication "
		                         "where application_name = 'bunker'");
		if (PQresultStatus(pr) == PGRES_TUPLES_OK && PQntuples(pr) == 1) {
			snprintf(wl, sizeof(wl), "%s", PQgetvalue(pr, 0, 0));
			snprintf(fl, sizeof(fl), "%s", PQgetvalue(pr, 0, 1));
			uint64_t w = 0, f = 0;
			seen = bk_wal_lsn_parse(wl, &w) == 0 && bk_wal_lsn_parse(fl, &f) == 0 && w == next &&
			       f == seg_start;
		}
		PQclear(pr);
		if (!seen) {
			bk_pgrepl_stream_status(c, next, seg_start, 0, false);
			usleep(50000);
		}
	}
	PQfinish(q);
	char nexts[BK_WAL_LSN_MAX], segs[BK_WAL_LSN_MAX];
	bk_wal_lsn_format(nexts, sizeof(nexts), next);
	bk_wal_lsn_format(segs, sizeof(segs), seg_start);
	ok(seen, "pg_stat_replication shows write %s flush %s (want %s, %s)", wl, fl, nexts, segs);

	r = bk_pgrepl_stream_stop(c);
	is_int(r, 0, "stop replication (%s)", r ? bk_error_detail() : "ok");
	BkPgReplSystem s;
	is_int(bk_pgrepl_identify_system(c, &s), 0, "connection usable after the stream");
	BkPgReplMsg m;
	is_int(bk_pgrepl_stream_recv(c, 0, &m), BK_E_USAGE, "recv when not streaming refused");

	/* Asking for WAL beyond the server's flush position is the server's error; it
	 * arrives once the stream has started. */
	r = bk_pgrepl_stream_start(c, NULL, 1, s.xlogpos + (UINT64_C(1) << 32));
	if (r == 0)
		r = bk_pgrepl_stream_recv(c, 10000, &m);
	ok(r == BK_E_REMOTE && strstr(bk_error_detail(), "ahead of the WAL flush position") != NULL,
	   "future start position: BK_E_REMOTE (%s)", bk_error_detail());
	is_int(bk_pgrepl_stream_start(c, "Bad-Slot", 1, 0), -EPIPE,
	       "connection broken after the failure");
	bk_pgrepl_close(c);

	ok(bk_pgrepl_open(conninfo, &c) == 0, "reconnect");
	is_int(bk_pgrepl_stream_start(c, "Bad-Slot", 1, seg_start), BK_E_USAGE, "bad slot name");
	r = bk_pgrepl_stream_start(c, "no_such_slot", 1, seg_start);
	ok(r == BK_E_REMOTE && strstr(bk_error_detail(), "no_such_slot") != NULL,
	   "missing slot: the server says so (%s)", bk_error_detail());
	bk_pgrepl_close(c);
}

/* ---- BASE_BACKUP streams a real server does not send -------------------------------
 *
 * Through tests/pg/fake-walsender.h: a well-formed stream first (so that each
 * refusal below is known to come from the one thing broken), then streams broken
 * one way each. A partial backup must never come back as complete: each broken
 * stream fails, leaves *ret untouched and the connection unusable. */

typedef enum {
	S_OK,
	S_MISSING_ARCHIVE,   /* two tablespace rows, only base.tar sent */
	S_NO_TABLESPACES,    /* no tablespace rows and no archive */
	S_END_BEFORE_START,  /* end location before the start */
	S_FAILED_AT_COPY,    /* an ErrorResponse where the COPY belongs */
	S_FAILED_AT_END,     /* an ErrorResponse where the end location belongs */
	S_FAILED_AFTER_END,  /* an ErrorResponse after the end location */
	S_HANGUP,            /* the server goes away inside base.tar */
	S_END_TWO_ROWS,      /* two end locations */
	S_END_TLI_ZERO,      /* end timeline 0 */
	S_END_TLI_BAD,       /* end timeline not a number */
	S_DATA_FIRST,        /* archive data before any new-archive message */
	S_EMPTY_NAME,        /* 'n' with an empty archive name */
	S_NAME_TRAILING,     /* 'n' with a byte after the location's NUL */
	S_NAME_LONG,         /* 'n' with a 256-byte name */
	S_NAME_NO_NUL,       /* 'n' without any NUL */
	S_PROGRESS_LONG,     /* 'p' of 10 bytes */
	S_MANIFEST,          /* 'm' (a manifest was not asked for) */
	S_UNKNOWN,           /* 'x' */
	S_SIZE_OVERFLOW,     /* a tablespace size of 2^64 - 1 kB */
	S_ARCHIVE_UNLISTED,  /* 99999.tar in place of 16384.tar */
	S_ARCHIVE_TWICE,     /* base.tar in place of 16384.tar, then base.tar */
	S_LOCATION_OTHER,    /* 16384.tar at another location than listed */
	S_NO_TABLESPACES_ROWS, /* the COPY where the tablespace list belongs */
	S_ROWS_AT_COPY,      /* a second tablespace list where the COPY belongs */
	S_ROWS_AFTER_END,    /* a result set after the end location */
} Stream;

#define FAKE_TS_KB 100
#define FAKE_BASE_KB 200

/* The tar of one archive: one file of n bytes (a pattern depending on seed). */
static void fake_tar(TapBuf *t, const char *path, size_t n, unsigned seed)
{
	uint8_t *data = malloc(n);
	if (!data)
		abort();
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + seed + (i >> 9));
	fw_tar_entry(t, '0', path, data, n, 1700000000);
	fw_tar_end(t);
	free(data);
}

/* Archive data in two 'd' messages, progress after each. */
static void fake_send_archive(TapBuf *b, const TapBuf *tar, uint64_t *sent)
{
	size_t half = tar->len / 2 + 3;
	fw_archive_data(b, tar->p, half);
	*sent += half;
	fw_progress(b, *sent);
	fw_archive_data(b, tar->p + half, tar->len - half);
	*sent += tar->len - half;
	fw_progress(b, *sent);
}

static void fake_stream(TapBuf *b, Stream s, const TapBuf *ts_tar, const TapBuf *base_tar)
{
	char ts_kb[16], base_kb[16];
	snprintf(ts_kb, sizeof(ts_kb), "%d", FAKE_TS_KB);
	snprintf(base_kb, sizeof(base_kb), "%d", FAKE_BASE_KB);
	fw_lsn_result(b, "0/2000028", "1");
	if (s == S_NO_TABLESPACES) {
		fw_result(b, 3, 0, NULL, "SELECT");
	} else if (s == S_NO_TABLESPACES_ROWS) {
		/* (nothing: the COPY comes next) */
	} else {
		const char *ts_size = s == S_SIZE_OVERFLOW ? "18446744073709551615" : ts_kb;
		const char *rows[] = { "16384", "/srv/ts", ts_size, NULL, NULL, base_kb };
		fw_result(b, 3, 2, rows, "SELECT");
		if (s == S_ROWS_AT_COPY)
			fw_result(b, 3, 2, rows, "SELECT");
	}
	if (s == S_FAILED_AT_COPY) {
		fw_error(b, "could not start the backup: fake failure");
		return;
	}
	fw_copy_out(b);
	uint64_t sent = 0;
	if (s == S_DATA_FIRST)
		fw_archive_data(b, ts_tar->p, 512);
	if (s != S_MISSING_ARCHIVE && s != S_NO_TABLESPACES) {
		fw_new_archive(b, s == S_ARCHIVE_UNLISTED ? "99999.tar" :
				  s == S_ARCHIVE_TWICE    ? "base.tar" : "16384.tar",
			       s == S_ARCHIVE_TWICE ? "" : s == S_LOCATION_OTHER ? "/srv/other" : "/srv/ts");
		fake_send_archive(b, ts_tar, &sent);
	}
	if (s == S_EMPTY_NAME)
		fw_new_archive(b, "", "");
	if (s == S_NAME_TRAILING)
		fw_copy_data(b, "nbase.tar\0\0x", 12);
	if (s == S_NAME_LONG) {
		char name[257];
		memset(name, 'a', 252);
		memcpy(name + 252, ".tar", 5);
		fw_new_archive(b, name, "");
	}
	if (s == S_NAME_NO_NUL)
		fw_copy_data(b, "nbase.tar", 9);
	if (s == S_PROGRESS_LONG)
		fw_copy_data(b, "p\0\0\0\0\0\0\0\1\0", 10);
	if (s == S_MANIFEST)
		fw_copy_data(b, "m{}", 3);
	if (s == S_UNKNOWN)
		fw_copy_data(b, "x", 1);
	if (s != S_NO_TABLESPACES) {
		fw_new_archive(b, "base.tar", "");
		if (s == S_HANGUP) {
			fw_archive_data(b, base_tar->p, base_tar->len / 2);
			return;
		}
		fake_send_archive(b, base_tar, &sent);
	}
	fw_copy_done(b);
	if (s == S_FAILED_AT_END) {
		fw_error(b, "could not finish the backup: fake failure");
		return;
	}
	if (s == S_END_TWO_ROWS) {
		const char *rows[] = { "0/2000100", "1", "0/2000200", "1" };
		fw_result(b, 2, 2, rows, "SELECT");
	} else {
		fw_lsn_result(b, s == S_END_BEFORE_START ? "0/1000000" : "0/2000100",
		              s == S_END_TLI_ZERO ? "0" : s == S_END_TLI_BAD ? "2x" : "2");
	}
	if (s == S_ROWS_AFTER_END)
		fw_lsn_result(b, "0/2000200", "2");
	if (s == S_FAILED_AFTER_END)
		fw_error(b, "fake failure after the end location");
	else
		fw_command_complete(b, "BASE_BACKUP");
}

/* What the callbacks saw: a log of archive starts and ends, the data's hash. */
typedef struct {
	char log[512];
	uint64_t hash, bytes, total;
	int ends;
} FakeSink;

static void sink_log(FakeSink *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sink_log(FakeSink *k, const char *fmt, ...)
{
	size_t n = strlen(k->log);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(k->log + n, sizeof(k->log) - n, fmt, ap);
	va_end(ap);
}

static int f_start(void *ctx, const char *name, const char *loc)
{
	sink_log(ctx, "start %s at '%s'; ", name, loc);
	return 0;
}

static int f_data(void *ctx, const void *buf, size_t len)
{
	FakeSink *k = ctx;
	k->hash = fnv(k->hash, buf, len);
	k->bytes += len;
	return 0;
}

static int f_end(void *ctx, const char *name)
{
	FakeSink *k = ctx;
	k->ends++;
	sink_log(k, "end %s; ", name);
	return 0;
}

static int f_progress(void *ctx, uint64_t done, uint64_t total)
{
	FakeSink *k = ctx;
	(void)done;
	k->total = total;
	return 0;
}

static const BkPgReplBackupCallbacks fake_cb = { f_start, f_data, f_end, f_progress };

static char fake_detail[1024]; /* the error detail of the last fake_backup */

/* Runs BASE_BACKUP against the fake with stream s (*ret starts with archives = 99);
 * *after is what the connection answers next (another BASE_BACKUP after a failure,
 * IDENTIFY_SYSTEM after a success). */
static int fake_backup(FakeWalsender *f, Stream s, FakeSink *k, BkPgReplBackupResult *ret,
                       int *after)
{
	TapBuf ts = { 0 }, base = { 0 }, b = { 0 };
	fake_tar(&ts, "PG_15_202209061/1/16385", 3000, 1);
	fake_tar(&base, "PG_VERSION", 70000, 2);
	fake_stream(&b, s, &ts, &base);
	fw_set_reply(f, &b, s == S_HANGUP);
	*k = (FakeSink){ .hash = FNV_INIT };
	*ret = (BkPgReplBackupResult){ .archives = 99 };
	BkPgRepl *c = NULL;
	int r = bk_pgrepl_open(fw_conninfo(f), &c);
	if (r == 0) {
		BkPgReplBackupOptions opt = { .fast_checkpoint = true, .no_wait = true };
		r = bk_pgrepl_base_backup(c, &opt, &fake_cb, k, ret);
		snprintf(fake_detail, sizeof(fake_detail), "%s", r < 0 ? bk_error_detail() : "");
		/* after a failure the connection refuses every command */
		BkPgReplSystem sys;
		FakeSink again = { 0 };
		BkPgReplBackupResult res2;
		*after = r < 0 ? bk_pgrepl_base_backup(c, &opt, &fake_cb, &again, &res2)
		               : bk_pgrepl_identify_system(c, &sys);
	} else {
		snprintf(fake_detail, sizeof(fake_detail), "%s", bk_error_detail());
		diag("fake walsender: %s", fake_detail);
	}
	bk_pgrepl_close(c);
	tap_buf_free(&ts);
	tap_buf_free(&base);
	tap_buf_free(&b);
	return r;
}

static void test_fake_streams(void)
{
	FakeWalsender *f = fw_start();
	FakeSink k;
	BkPgReplBackupResult res;
	int after;

	/* The well-formed stream: every number of the result and every callback exact.
	 * Catches bytes counted with the message type, a byte of data lost, the size
	 * estimate in the wrong unit, an archive not ended or ended out of order (the
	 * last one only once the end location arrived), a location lost. */
	int r = fake_backup(f, S_OK, &k, &res, &after);
	is_int(r, 0, "fake: a well-formed stream is a backup (%s)", r ? bk_error_detail() : "ok");
	TapBuf ts = { 0 }, base = { 0 };
	fake_tar(&ts, "PG_15_202209061/1/16385", 3000, 1);
	fake_tar(&base, "PG_VERSION", 70000, 2);
	uint64_t want_hash = fnv(fnv(FNV_INIT, ts.p, ts.len), base.p, base.len);
	ok(res.start_lsn == 0x2000028 && res.end_lsn == 0x2000100 && res.start_tli == 1 &&
	           res.end_tli == 2,
	   "fake: start 0/2000028 on 1, end 0/2000100 on 2 (%" PRIX64 " %u, %" PRIX64 " %u)",
	   res.start_lsn, res.start_tli, res.end_lsn, res.end_tli);
	ok(res.archives == 2 && res.bytes == ts.len + base.len && k.bytes == res.bytes &&
	           k.hash == want_hash,
	   "fake: 2 archives, %zu bytes received and passed on as sent (%" PRIu64 ", %" PRIu64 ")",
	   ts.len + base.len, res.bytes, k.bytes);
	ok(res.total_estimate == (FAKE_TS_KB + FAKE_BASE_KB) * 1024 && k.total == res.total_estimate,
	   "fake: the estimate is the tablespaces' kB * 1024 (%" PRIu64 ")", res.total_estimate);
	ok(!strcmp(k.log, "start 16384.tar at '/srv/ts'; end 16384.tar; start base.tar at ''; "
	                  "end base.tar; "),
	   "fake: each archive starts, then ends before the next (%s)", k.log);
	is_int(after, 0, "fake: the connection is usable after a backup");

	static const struct {
		Stream s;
		int code;
		const char *detail;
		const char *what;
	} broken[] = {
		{ S_MISSING_ARCHIVE, BK_E_CORRUPT, "1 archives received for 2 tablespaces",
		  "a tablespace's archive missing (a partial backup)" },
		{ S_NO_TABLESPACES, BK_E_CORRUPT, "unexpected reply of 0 rows",
		  "no tablespace at all (not even the data directory)" },
		{ S_END_BEFORE_START, BK_E_CORRUPT, "end location before start location",
		  "an end location before the start" },
		{ S_FAILED_AT_COPY, BK_E_REMOTE, "could not start the backup: fake failure",
		  "the server failing before the archives (its message comes through)" },
		{ S_FAILED_AT_END, BK_E_REMOTE, "fake failure",
		  "the server failing after its last archive" },
		{ S_FAILED_AFTER_END, BK_E_REMOTE, "fake failure after the end",
		  "the server failing after the end location" },
		{ S_HANGUP, BK_E_REMOTE, "", "the server gone inside base.tar" },
		{ S_END_TWO_ROWS, BK_E_CORRUPT, "unexpected reply of 2 rows", "two end locations" },
		{ S_END_TLI_ZERO, BK_E_CORRUPT, "malformed wal location", "end timeline 0" },
		{ S_END_TLI_BAD, BK_E_CORRUPT, "malformed wal location", "end timeline '2x'" },
		{ S_DATA_FIRST, BK_E_CORRUPT, "archive data before any archive",
		  "data before any archive" },
		{ S_EMPTY_NAME, BK_E_CORRUPT, "malformed new-archive", "an archive without a name" },
		{ S_NAME_TRAILING, BK_E_CORRUPT, "malformed new-archive",
		  "a new-archive message with a byte after the location" },
		{ S_NAME_LONG, BK_E_CORRUPT, "malformed new-archive", "an archive name of 256 bytes" },
		{ S_NAME_NO_NUL, BK_E_CORRUPT, "malformed new-archive",
		  "a new-archive message without a NUL (read past its end under ASan)" },
		{ S_PROGRESS_LONG, BK_E_CORRUPT, "malformed progress",
		  "a progress message of 10 bytes" },
		{ S_MANIFEST, BK_E_CORRUPT, "manifest", "a manifest nobody asked for" },
		{ S_UNKNOWN, BK_E_CORRUPT, "unknown copy message type 0x78",
		  "an unknown message type" },
		{ S_SIZE_OVERFLOW, BK_E_CORRUPT, "malformed tablespace size",
		  "a size estimate past 2^64 bytes" },
		{ S_ARCHIVE_UNLISTED, BK_E_CORRUPT,
		  "archive '99999.tar' at '/srv/ts' is not a tablespace the server listed",
		  "an archive of a tablespace not listed (found by a mutation run)" },
		{ S_ARCHIVE_TWICE, BK_E_CORRUPT, "archive 'base.tar' at '' received twice",
		  "one archive twice, the count right" },
		{ S_LOCATION_OTHER, BK_E_CORRUPT,
		  "archive '16384.tar' at '/srv/other' is not a tablespace the server listed",
		  "a tablespace's archive at another location than listed" },
		/* what came, in words, where libpq's status name was the whole message
		 * ("base backup: PGRES_COPY_OUT", found by review) */
		{ S_NO_TABLESPACES_ROWS, BK_E_CORRUPT,
		  "base backup: expected rows, got a copy stream",
		  "the archives where the tablespace list belongs" },
		{ S_ROWS_AT_COPY, BK_E_CORRUPT, "base backup: expected a copy stream, got rows",
		  "a second tablespace list" },
		{ S_ROWS_AFTER_END, BK_E_CORRUPT,
		  "base backup: expected a command completion, got rows",
		  "rows after the end location" },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(broken); i++) {
		r = fake_backup(f, broken[i].s, &k, &res, &after);
		ok(r == broken[i].code && strstr(fake_detail, broken[i].detail) && res.archives == 99 &&
		           after == -EPIPE,
		   "fake: %s: refused, the connection then unusable (%d %s; then %d)", broken[i].what, r,
		   fake_detail, after);
	}
	/* The server's message, not libpq's complaint about the COPY that did not start. */
	r = fake_backup(f, S_FAILED_AT_COPY, &k, &res, &after);
	ok(r == BK_E_REMOTE &&
	           !strcmp(fake_detail, "base backup: could not start the backup: fake failure"),
	   "fake: the server failing before the archives: its message is the detail (%s)", fake_detail);
	/* archive_end means the archive is complete: not before the end location. */
	r = fake_backup(f, S_FAILED_AT_END, &k, &res, &after);
	ok(r == BK_E_REMOTE && !strcmp(k.log, "start 16384.tar at '/srv/ts'; end 16384.tar; "
	                                       "start base.tar at ''; "),
	   "fake: the server failing after its last archive: that archive gets no archive_end (%s)",
	   k.log);
	r = fake_backup(f, S_HANGUP, &k, &res, &after);
	ok(r == BK_E_REMOTE && k.ends == 1,
	   "fake: the server gone inside base.tar: no archive_end for it");

	/* The label's cap keeps its quoted form (every ' doubled) inside the command's
	 * buffer: 1000 quotes are sent as 2000, 1001 characters are refused. */
	char label[1002];
	memset(label, '\'', 1001);
	label[1000] = '\0';
	BkPgRepl *c = NULL;
	TapBuf b = { 0 };
	fake_stream(&b, S_OK, &ts, &base);
	fw_set_reply(f, &b, false);
	tap_buf_free(&b);
	r = bk_pgrepl_open(fw_conninfo(f), &c);
	BkPgReplBackupOptions opt = { .label = label };
	if (r == 0)
		r = bk_pgrepl_base_backup(c, &opt, NULL, NULL, &res);
	const char *cmd = fw_last_backup_command(f);
	ok(r == 0 && strlen(cmd) > 2000 && strspn(strstr(cmd, "LABEL '") + 7, "'") == 2001,
	   "fake: a label of 1000 quotes is sent doubled (%d)", r);
	label[1000] = '\'';
	label[1001] = '\0';
	is_int(bk_pgrepl_base_backup(c, &opt, NULL, NULL, &res), BK_E_USAGE,
	       "fake: a label of 1001 characters is refused");
	bk_pgrepl_close(c);
	tap_buf_free(&ts);
	tap_buf_free(&base);

	/* A server that takes a query and never answers (a stopped backend, a proxy
	 * in the way): with a stall timeout set, identify and show give up after it,
	 * saying so; without one they would wait for ever (found by an adversarial
	 * test: bunker pg basebackup --stall-timeout 3 waited at IDENTIFY_SYSTEM) */
	static const char *const silent[] = { "IDENTIFY_SYSTEM", "SHOW" };
	for (size_t i = 0; i < BK_ARRAY_SIZE(silent); i++) {
		fw_set_mute(f, silent[i]);
		if (!ok(bk_pgrepl_open(fw_conninfo(f), &c) == 0, "fake: connect for a silent %s",
			silent[i]))
			break;
		bk_pgrepl_set_stall(c, 1);
		uint64_t t0 = bk_mono_us();
		BkPgReplSystem sys;
		char v[32];
		r = i == 0 ? bk_pgrepl_identify_system(c, &sys)
			   : bk_pgrepl_show(c, "wal_segment_size", v, sizeof(v));
		uint64_t took = bk_mono_us() - t0;
		ok(r == BK_E_REMOTE && strstr(bk_error_detail(), "sent nothing for 1 s (stall timeout)") &&
			   took >= 900000 && took < 10000000,
		   "fake: %s never answered fails after the 1 s stall timeout (%d, %.2f s, %s)",
		   silent[i], r, (double)took / 1e6, bk_error_detail());
		bk_pgrepl_close(c);
	}
	fw_set_mute(f, NULL);
	fw_stop(f);
}

static void test_messages(void)
{
	uint8_t w[40] = {'w'};
	for (int i = 0; i < 8; i++) {
		w[1 + i] = (uint8_t)(0x10 + i);
		w[9 + i] = (uint8_t)(0x20 + i);
		w[17 + i] = (uint8_t)(0x30 + i);
	}
	memcpy(w + 25, "walbytes-walbyte", 15);
	BkPgReplMsg m;
	is_int(bk_pgrepl_msg_parse(w, 40, &m), 0, "xlogdata parses");
	ok(m.kind == BK_PGREPL_MSG_XLOG && m.data_start == 0x1011121314151617ull &&
	       m.wal_end == 0x2021222324252627ull && m.send_time == 0x3031323334353637ll &&
	       m.len == 15 && m.data == w + 25,
	   "xlogdata fields are big-endian, data points into the message");
	is_int(bk_pgrepl_msg_parse(w, 25, &m), 0, "empty xlogdata");
	is_int(bk_pgrepl_msg_parse(w, 24, &m), BK_E_CORRUPT, "short xlogdata");
	uint8_t k[18] = {'k', 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9, 1};
	is_int(bk_pgrepl_msg_parse(k, 18, &m), 0, "keepalive parses");
	ok(m.kind == BK_PGREPL_MSG_KEEPALIVE && m.wal_end == 5 && m.send_time == 9 &&
	       m.reply_requested,
	   "keepalive fields");
	is_int(bk_pgrepl_msg_parse(k, 17, &m), BK_E_CORRUPT, "short keepalive");
	k[17] = 2;
	is_int(bk_pgrepl_msg_parse(k, 18, &m), BK_E_CORRUPT, "bad reply flag");
	uint8_t x[2] = {'x', 0};
	is_int(bk_pgrepl_msg_parse(x, 2, &m), BK_E_CORRUPT, "unknown type");
	is_int(bk_pgrepl_msg_parse(x, 0, &m), BK_E_CORRUPT, "empty message");
	uint8_t wr[25] = {'w', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t wbig[26];
	memcpy(wbig, wr, 25);
	wbig[25] = 0;
	is_int(bk_pgrepl_msg_parse(wbig, 26, &m), BK_E_CORRUPT, "data beyond the wal space");

	uint8_t st[BK_PGREPL_STATUS_LEN];
	bk_pgrepl_status_encode(st, 0x0102030405060708ull, 2, 3, 4, true);
	ok(st[0] == 'r' && st[1] == 1 && st[8] == 8 && st[16] == 2 && st[24] == 3 && st[32] == 4 &&
	       st[33] == 1,
	   "status update layout");
}

int main(int argc, char **argv)
{
	const char *conninfo = NULL, *datadir = NULL, *ts = NULL;
	uint64_t sysid = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--conninfo") == 0)
			conninfo = argv[i + 1];
		else if (strcmp(argv[i], "--datadir") == 0)
			datadir = argv[i + 1];
		else if (strcmp(argv[i], "--sysid") == 0)
			sysid = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--tablespace") == 0)
			ts = argv[i + 1];
	}
	test_messages();
	test_fake_streams();
	if (!conninfo || !datadir) {
		diag("no --conninfo/--datadir: live tests skipped");
		return tap_done();
	}
	char ts_oid[32] = "";
	const char *ts_dir = NULL;
	if (ts) {
		const char *colon = strchr(ts, ':');
		if (colon && (size_t)(colon - ts) < sizeof(ts_oid)) {
			memcpy(ts_oid, ts, (size_t)(colon - ts));
			ts_dir = colon + 1;
		}
	}
	test_connect_errors(conninfo);
	test_aborted_backup(conninfo);
	test_max_rate(conninfo);
	test_stall(conninfo);
	test_backup_and_stream(conninfo, datadir, sysid, ts_dir ? ts_oid : NULL, ts_dir);
	return tap_done();
}
