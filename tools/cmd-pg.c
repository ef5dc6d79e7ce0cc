/* bunker pg ...: the PostgreSQL commands. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "pg/basebackup.h"
#include "pg/conninfo.h"
#include "pg/dump.h"
#include "pg/recovery.h"
#include "pg/wal.h"
#include "pg/walarchive.h"
#include "pg/walspool.h"
#include "store/error.h"
#include "store/restorer.h"
#include "store/util.h"
#include "tools/cli.h"

static int wal_push(void)
{
	if (cli.nargs != 2)
		return usage_error("pg wal-push needs one PATH");
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0)
		return cli_fail(e, NULL);
	bool stored;
	char warning[BK_CLUSTER_WARNING_MAX];
	e = bk_wal_push(r, cli.cluster, cli.args[1], &stored, warning);
	/* a read-ahead spool beside it that no recovery fills any more goes (found by
	 * review: one a SIGKILL left stayed in a primary's pg_wal) */
	char dest[PATH_MAX], spool[PATH_MAX];
	const char *slash = strrchr(cli.args[1], '/');
	if (e == 0 && snprintf(dest, sizeof(dest), "%.*s%s", slash ? (int)(slash - cli.args[1]) + 1 : 0,
			       cli.args[1], BK_WAL_SPOOL_DEST) < (int)sizeof(dest) &&
	    bk_wal_spool_path(r, cli.cluster, dest, spool) == 0)
		bk_wal_spool_sweep(spool);
	bk_repo_close(r);
	if (e == 0 && warning[0]) /* into the server's log */
		cli_warn("%s", warning);
	if (e < 0)
		return cli_fail(e, "wal-push");
	return 0;
}

/* Starts `bunker pg wal-read-ahead SPOOL` with this command's repository, secret
 * and cluster, detached (its own session, no terminal, standard streams on
 * /dev/null), so that the server's wait for restore_command is not its. */
static void start_read_ahead(const char *spool)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return;
	exe[n] = '\0';
	const char *argv[16];
	size_t k = 0;
	argv[k++] = exe;
	argv[k++] = "-q";
	argv[k++] = "--repo";
	argv[k++] = cli.repo;
	if (cli.key_file) {
		argv[k++] = "--key-file";
		argv[k++] = cli.key_file;
	} else if (cli.password_file) {
		argv[k++] = "--password-file";
		argv[k++] = cli.password_file;
	} else if (cli.password_command) {
		argv[k++] = "--password-command";
		argv[k++] = cli.password_command;
	}
	argv[k++] = "--cluster";
	argv[k++] = cli.cluster;
	argv[k++] = "pg";
	argv[k++] = "wal-read-ahead";
	argv[k++] = spool;
	argv[k] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		if (setsid() < 0 || fork() != 0)
			_exit(0);
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		/* nothing else of the server's (found by review: its postmaster-death
		 * pipe, and any file it left open across exec) */
		if (close_range(3, ~0u, 0) < 0)
			for (int fd = 3; fd < 1024; fd++)
				close(fd);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

/* Set by SIGTERM, SIGINT or SIGHUP: the read-ahead removes its spool and ends. */
static volatile sig_atomic_t read_ahead_stop;

static void on_read_ahead_signal(int sig)
{
	(void)sig;
	read_ahead_stop = 1;
}

/* pg wal-read-ahead SPOOL: the filler of pg/walspool.h, started by wal-fetch
 * --read-ahead (quiet: nobody reads its output). */
static int wal_read_ahead(void)
{
	if (cli.nargs != 2)
		return usage_error("pg wal-read-ahead needs SPOOL");
	static const int stops[] = { SIGINT, SIGTERM, SIGHUP };
	for (size_t i = 0; i < BK_ARRAY_SIZE(stops); i++) {
		struct sigaction sa = { .sa_handler = on_read_ahead_signal };
		sigemptyset(&sa.sa_mask);
		sigaction(stops[i], &sa, NULL);
	}
	BkRepo *r = NULL;
	int e = cli_open_repo(&r);
	if (e == 0)
		e = bk_wal_spool_fill(r, cli.cluster, cli.args[1], &read_ahead_stop);
	bk_repo_close(r);
	return e < 0 ? cli_fail(e, "wal-read-ahead") : 0;
}

static int wal_fetch(void)
{
	if (cli.nargs != 3) {
		usage_error("pg wal-fetch needs NAME DEST");
		return CLI_EXIT_FETCH_FAILED;
	}
	/* an empty DEST made a temporary file in the working directory, then failed
	 * to rename it to "" (found by review) */
	if (!cli.args[1][0] || !cli.args[2][0]) {
		usage_error("pg wal-fetch: %s is empty", cli.args[1][0] ? "DEST" : "NAME");
		return CLI_EXIT_FETCH_FAILED;
	}
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0) {
		cli_fail(e, NULL);
		return CLI_EXIT_FETCH_FAILED;
	}
	/* PostgreSQL stops a restore_command with SIGTERM (a shutdown during
	 * recovery): held for the fetch, it can no longer leave the temporary file
	 * beside DEST (which nothing would remove); it ends us once DEST is whole */
	sigset_t stop, old;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGQUIT);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop, &old);
	BkWalName wn;
	char spool[PATH_MAX];
	bool ahead = cli.read_ahead && bk_wal_name_parse(cli.args[1], &wn) == 0 &&
		     wn.kind == BK_WAL_SEGMENT &&
		     bk_wal_spool_path(r, cli.cluster, cli.args[2], spool) == 0;
	e = ahead ? bk_wal_spool_take(spool, cli.args[1], cli.args[2]) : -ENOENT;
	if (e < 0) { /* (not spooled: from the archive, whose answer "not archived" is) */
		bk_error_clear();
		e = bk_wal_fetch(r, cli.cluster, cli.args[1], cli.args[2], false);
	}
	/* no room: what is read ahead goes first (found by review: a spool that filled
	 * pg_wal stopped recovery) */
	if ((e == -ENOSPC || e == -EDQUOT) && ahead && bk_wal_spool_clear(spool) == 0) {
		bk_error_clear();
		e = bk_wal_fetch(r, cli.cluster, cli.args[1], cli.args[2], false);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	bool start = false;
	if (e == 0 && ahead) { /* (read-ahead is a help, never a failure) */
		if (bk_wal_spool_want(spool, cli.args[1], &start) == 0 && start)
			start_read_ahead(spool);
		bk_error_clear();
	}
	bk_repo_close(r);
	if (e == -ENOENT) /* PostgreSQL probes for files that do not exist: stay quiet */
		return 3;
	if (e < 0) {
		cli_fail(e, "wal-fetch %s", cli.args[1]);
		return CLI_EXIT_FETCH_FAILED;
	}
	return 0;
}

/* A password or sslpassword in --dbname would stay visible to every local user
 * (ps, /proc/PID/cmdline) for as long as the command runs: bunker works on a copy
 * and overwrites its argument in place with the connection string without them
 * (cut to the argument's length, padded with spaces). */
static int hide_secrets(void)
{
	size_t len = strlen(cli.dbname_argv), cap = 2 * len + 1024;
	char *shown = malloc(cap), *password = NULL;
	if (!shown)
		return -ENOMEM;
	int e = bk_pg_conninfo_split(cli.dbname, NULL, 0, shown, cap, &password);
	if (password)
		sodium_memzero(password, strlen(password));
	if (e == 0 && (password || bk_pg_conninfo_sets(cli.dbname, "sslpassword"))) {
		char *copy = strdup(cli.dbname);
		if (copy) {
			cli.dbname = copy; /* kept for the process's life */
			size_t n = strlen(shown);
			memset(cli.dbname_argv, ' ', len);
			memcpy(cli.dbname_argv, shown, n < len ? n : len);
		} else {
			e = -ENOMEM;
		}
	}
	free(password);
	free(shown);
	return e;
}

/* What basebackup and dump share: no arguments, --dbname (its password and sslpassword hidden),
 * the stall timeout bounding the connection's start too, the repository, and this
 * host's name for the snapshot records. Returns an exit code if not 0. */
static int pull_begin(const char *what, unsigned stall, BkRepo **r, char host[256])
{
	if (cli.nargs != 1)
		return usage_error("pg %s takes no arguments", what);
	if (!cli.dbname)
		return usage_error("pg %s needs --dbname CONNINFO", what);
	/* libpq's connect_timeout, unless the connection string or the environment
	 * sets one: without it a host that takes the connection and never answers
	 * held the command for ever (found by review; pg_dump inherits it) */
	char secs[16];
	snprintf(secs, sizeof(secs), "%u", stall);
	if (stall && setenv("PGCONNECT_TIMEOUT", secs, 0) < 0)
		return cli_fail(-errno, "PGCONNECT_TIMEOUT");
	int e = hide_secrets();
	if (e < 0)
		return cli_fail(e, "--dbname");
	e = cli_open_repo(r);
	if (e < 0)
		return cli_fail(e, NULL);
	host[0] = '\0';
	gethostname(host, 255);
	host[255] = '\0';
	return 0;
}

static void warn(void *ud, const char *msg)
{
	(void)ud;
	cli_warn("%s", msg);
}

/* A number of seconds from 0 to a day, for the option `name` (s NULL: def).
 * Returns 0, or the exit code of a usage error. */
static int parse_seconds(const char *name, const char *s, unsigned def, unsigned *ret)
{
	*ret = def;
	if (!s)
		return 0;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || !isdigit((unsigned char)s[0]) || v > 86400)
		return usage_error("%s: '%s' is not a number of seconds (0..86400)", name, s);
	*ret = (unsigned)v;
	return 0;
}

static int basebackup(void)
{
	BkRepo *r;
	char host[256];
	unsigned timeout, stall;
	int x = parse_seconds("--archive-timeout", cli.archive_timeout, 60, &timeout);
	if (!x)
		x = parse_seconds("--stall-timeout", cli.stall_timeout, 300, &stall);
	if (x)
		return x;
	unsigned long rate_kb = 0;
	if (cli.max_rate) {
		char *end;
		errno = 0;
		rate_kb = strtoul(cli.max_rate, &end, 10);
		unsigned long scale = *end == 'M' ? 1024 : 1;
		if (*end == 'k' || *end == 'M')
			end++;
		if (errno || end == cli.max_rate || *end || !isdigit((unsigned char)cli.max_rate[0]) ||
		    rate_kb > 1048576 / scale || rate_kb * scale < 32)
			return usage_error("--max-rate: '%s' is not a rate from 32 kB/s to 1 GB/s "
					   "(kB/s, or with a suffix k or M)", cli.max_rate);
		rate_kb *= scale;
	}
	/* the server sends 32 kB messages, paced at that rate: a read waits 32 kB's
	 * time for each, and half the stall timeout is the margin (found by review:
	 * --max-rate 32k --stall-timeout 1 failed every backup as stalled) */
	if (rate_kb && stall && (uint64_t)stall * rate_kb < 64)
		return usage_error("--stall-timeout %u s is too short for --max-rate %s: the server "
				   "sends 32 kB at a time, so at least %lu s", stall, cli.max_rate,
				   (64 + rate_kb - 1) / rate_kb);
	x = pull_begin("basebackup", stall, &r, host);
	if (x)
		return x;
	BkBaseBackupOpts o = {
		.conninfo = cli.dbname,
		.cluster = cli.cluster,
		.host = host,
		.fast_checkpoint = cli.fast_checkpoint,
		.no_reuse = cli.no_reuse,
		.no_verify_checksums = cli.no_verify_checksums,
		.archive_timeout_s = timeout,
		.stall_timeout_s = stall,
		.max_rate_kb = (uint32_t)rate_kb,
		.progress = cli_progress,
		.warn = warn,
	};
	/* a spread checkpoint may take minutes, with nothing to show (found by a
	 * user's walk through the README) */
	if (!cli.fast_checkpoint && !cli.quiet && isatty(STDERR_FILENO))
		fprintf(stderr, "waiting for the server's next checkpoint (--fast-checkpoint asks "
				"for one at once)\n");
	uint8_t id[32];
	uint64_t t0 = bk_mono_us();
	int e = bk_pg_basebackup(r, &o, id);
	cli_progress_end();
	e = e < 0 ? cli_fail(e, "basebackup") : print_snapshot_summary(r, id, t0);
	bk_repo_close(r);
	return e;
}

/* A dump's summary, its speed over its own pg_dump's time (a failed dump's
 * before it, or the listing, not counted: found by a helper's exploration) */
static void dump_done(void *ud, const char *name, const uint8_t id[32])
{
	(void)name;
	print_snapshot_summary(ud, id, 0);
}

/* A line pg_dump or pg_dumpall wrote on its standard error, escaped as bunker's
 * own lines are (cli_text) */
static void program_line(void *ud, const char *line)
{
	(void)ud;
	char text[CLI_TEXT_MAX];
	cli_progress_end();
	fprintf(stderr, "%s\n", cli_text(line, text, sizeof(text)));
}

/* The progress line's name: the dump running (BkDumpOpts.begin). */
static char dump_label[512];
static void dump_begin(void *ud, const char *name)
{
	cli_progress_end(); /* (its rate is the new dump's) */
	snprintf(ud, sizeof(dump_label), "%s", name);
}

static int dump(void)
{
	BkRepo *r;
	char host[256];
	unsigned stall;
	/* an hour: pg_dump's custom format writes nothing until it has read the whole
	 * catalog and locked every table, which takes longer the more tables there are
	 * (found by review: 300 s, as a base backup's, might stop a dump that worked) */
	int x = parse_seconds("--stall-timeout", cli.stall_timeout, 3600, &stall);
	if (!x)
		x = pull_begin("dump", stall, &r, host);
	if (x)
		return x;
	/* set but empty is unset (found by review: "" named the root, "/pg_dump") */
	const char *bin_dir = getenv("BUNKER_PG_BIN");
	BkDumpOpts o = {
		.conninfo = cli.dbname,
		.cluster = cli.cluster,
		.host = host,
		.bin_dir = bin_dir && *bin_dir ? bin_dir : NULL,
		.stall_timeout_s = stall,
		.warn = warn,
		.program_line = program_line,
		.done = dump_done,
		.done_ud = r,
		.begin = dump_begin,
		.progress = cli_progress,
		.progress_ud = dump_label,
	};
	int e = bk_pg_dump(r, &o);
	cli_progress_end();
	bk_repo_close(r);
	return e < 0 ? cli_fail(e, "dump") : 0;
}

/* Appends s to out for a restore_command: single-quoted for /bin/sh, and every
 * '%' doubled, as PostgreSQL replaces %f, %p and %r in the command. */
static void sh_quote(char *out, size_t cap, const char *s)
{
	size_t n = strlen(out);
	if (n + 1 < cap)
		out[n++] = '\'';
	for (; *s && n + 5 < cap; s++) {
		if (*s == '\'') {
			memcpy(out + n, "'\\''", 4);
			n += 4;
		} else if (*s == '%') {
			memcpy(out + n, "%%", 2);
			n += 2;
		} else {
			out[n++] = *s;
		}
	}
	if (n + 2 < cap)
		out[n++] = '\'';
	out[n] = '\0';
}

static void append(char *out, size_t cap, const char *s)
{
	size_t n = strlen(out);
	snprintf(out + n, cap - n, "%s", s);
}

/* What restore_command needs to reach: this binary, the key or password file and
 * the repository, by absolute paths (for the server's user to be checked). */
typedef struct {
	char exe[PATH_MAX], repo[PATH_MAX], config[PATH_MAX + 8], secret[PATH_MAX];
	BkPathAccess needs[3];
	size_t n;
} RestoreFiles;

/* The restore_command PostgreSQL will run: this binary, the same repository and
 * the same secret, by absolute paths; f gets what it reaches. */
static int restore_command(char *out, size_t cap, RestoreFiles *f)
{
	ssize_t n = readlink("/proc/self/exe", f->exe, sizeof(f->exe) - 1);
	if (n < 0)
		return bk_errorf_code(-errno, "find the bunker binary");
	f->exe[n] = '\0';
	out[0] = '\0';
	sh_quote(out, cap, f->exe);
	if (!realpath(cli.repo, f->repo))
		return bk_errorf_code(-errno, "repository %s", cli.repo);
	snprintf(f->config, sizeof(f->config), "%s/config", f->repo);
	f->needs[0] = (BkPathAccess){ f->exe, X_OK, NULL };
	f->needs[1] = (BkPathAccess){ f->config, R_OK, NULL };
	f->n = 2;
	append(out, cap, " --repo ");
	sh_quote(out, cap, f->repo);
	const char *opt = cli.key_file ? " --key-file " : cli.password_file ? " --password-file " : NULL;
	const char *file = cli.key_file ? cli.key_file : cli.password_file;
	if (opt) {
		if (!realpath(file, f->secret))
			return bk_errorf_code(-errno, "%s", file);
		f->needs[f->n++] = (BkPathAccess){ f->secret, R_OK, NULL };
		append(out, cap, opt);
		sh_quote(out, cap, f->secret);
	} else if (cli.password_command) {
		append(out, cap, " --password-command ");
		sh_quote(out, cap, cli.password_command);
	} else {
		return bk_errorf(BK_E_USAGE, "pg restore needs --key-file, --password-file or "
					     "--password-command: restore_command runs unattended");
	}
	append(out, cap, " --cluster ");
	sh_quote(out, cap, cli.cluster);
	append(out, cap, " pg wal-fetch --read-ahead");
	return strlen(out) + 16 < cap ? 0 : bk_errorf(-E2BIG, "restore_command too long");
}

/* Set by SIGINT, SIGTERM or SIGHUP during pg restore: it stops, and takes back
 * what it wrote. */
static volatile sig_atomic_t restore_stop;

static void on_restore_signal(int sig)
{
	(void)sig;
	restore_stop = 1;
}

/* Whether the restored data directory has no file `name` (ENOENT: not one that
 * cannot be looked at). */
static bool target_lacks(const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	return snprintf(path, sizeof(path), "%s/%s", cli.target, name) < (int)sizeof(path) &&
	       lstat(path, &st) < 0 && errno == ENOENT;
}

/* On a terminal, how much archived WAL pg restore has read to place a target, in a
 * line shorter than the restore's progress, which then writes over it. */
static bool wal_read_shown;

static void wal_read(void *ud, uint64_t bytes)
{
	(void)ud;
	static uint64_t last;
	if (!cli_progress_due(&last))
		return;
	wal_read_shown = true;
	fprintf(stderr, "\rWAL read: %.0f MB ", (double)bytes / 1e6);
}

/* A refused push's line (pg/walarchive.h: the server whose push it was archives
 * nothing after that file, and the archived copy may be another server's). */
static void refusal_line(const BkWalRefusal *f, char out[400])
{
	char when[32];
	cli_format_time(f->refused_us, when);
	snprintf(out, 400, "a push of %s was refused at %s: %s; the server that pushed it "
		 "archives nothing after it, and the archive's copy may be another server's (a "
		 "copy of it started with its archive_command?)", f->name, when,
		 f->cut ? "the archived copy stops short where it goes on"
			: "other bytes than the archived copy");
}

/* The refusals of files at or after segment from_segno (any timeline), each a
 * warning: recovery may read another server's WAL there. */
static void warn_refusals(BkRepo *r, uint64_t from_segno, uint32_t seg_size)
{
	BkWalRefusal *f;
	size_t n;
	if (bk_wal_refusals(r, cli.cluster, &f, &n) < 0) {
		cli_warn("cannot read the refused pushes: %s", bk_error_detail());
		return;
	}
	for (size_t i = 0; i < n; i++) {
		BkWalName wn;
		uint64_t segno;
		char line[400];
		if (bk_wal_name_parse(f[i].name, &wn) == 0 &&
		    (bk_wal_name_segno(&wn, seg_size, &segno) < 0 || segno >= from_segno)) {
			refusal_line(&f[i], line);
			cli_warn("%s", line);
		}
	}
	free(f);
}

static int restore(void)
{
	if (cli.nargs > 2)
		return usage_error("pg restore takes at most one SNAPSHOT");
	if (!cli.target || !*cli.target)
		return usage_error("pg restore needs --target DIR");
	if (cli.owner && geteuid() != 0)
		return usage_error("--owner needs root (as another user, the files are that user's)");
	char cmd[8192];
	static RestoreFiles files;
	int e = restore_command(cmd, sizeof(cmd), &files);
	if (e < 0)
		return cli_fail(e, "restore");
	BkRepo *r;
	if ((e = cli_open_repo(&r)) < 0)
		return cli_fail(e, NULL);
	BkPgRestoreOpts o = {
		.cluster = cli.cluster,
		.snapshot = cli.nargs == 2 ? cli.args[1] : NULL,
		.target_dir = cli.target,
		.target_time = cli.target_time,
		.target_lsn = cli.target_lsn,
		.target_xid = cli.target_xid,
		.target_name = cli.target_name,
		.ts_mapping = cli.ts_mapping,
		.nts_mapping = cli.nts_mapping,
		.target_action = cli.target_action,
		.target_timeline = cli.target_timeline,
		.archive_mode = cli.archive_mode,
		.restore_command = cmd,
		.restore_owner = geteuid() == 0,
		.owner = cli.owner,
		.server_needs = files.needs,
		.nserver_needs = files.n,
		.progress = cli_progress,
		.wal_read = wal_read,
	};
	static const int stops[] = { SIGINT, SIGTERM, SIGHUP };
	for (size_t i = 0; i < BK_ARRAY_SIZE(stops); i++) {
		struct sigaction sa = { .sa_handler = on_restore_signal }, old;
		sigemptyset(&sa.sa_mask);
		/* one ignored stays ignored (nohup, a background job's SIGINT) */
		if (sigaction(stops[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaction(stops[i], &sa, NULL);
	}
	o.stop = &restore_stop;
	uint64_t target_at = 0;
	o.ret_target_at = &target_at;
	BkWalPartial partial;
	o.ret_partial = &partial;
	BkSnapshot *s;
	e = bk_pg_restore(r, &o, &s);
	if (wal_read_shown)
		fprintf(stderr, "\r\033[K");
	cli_progress_end();
	uint64_t start, sysid;
	uint32_t seg_size;
	if (e == 0 && bk_wal_lsn_parse(bk_snapshot_meta(s, "start_lsn"), &start) == 0 &&
	    bk_cluster_get(r, cli.cluster, &sysid, &seg_size) == 0 && bk_wal_seg_size_valid(seg_size))
		warn_refusals(r, start / seg_size, seg_size);
	bk_repo_close(r);
	if (e < 0)
		return cli_fail(e, "pg restore");
	if (!cli.quiet) {
		char text[CLI_TEXT_MAX], when[32];
		cli_format_time(s->time_us, when);
		printf("restored base backup %s of %s (%s .. %s) to %s; start PostgreSQL there to "
		       "recover\n", cli_text(s->name, text, sizeof(text)), when,
		       bk_snapshot_meta(s, "start_lsn"), bk_snapshot_meta(s, "stop_lsn"), cli.target);
		char at[BK_WAL_LSN_MAX];
		bk_wal_lsn_format(at, sizeof(at), target_at);
		if (target_at && cli.target_name)
			printf("recovery stops at the restore point '%s' at %s\n",
			       cli_text(cli.target_name, text, sizeof(text)), at);
		else if (target_at)
			printf("recovery stops at the end of transaction %s at %s\n", cli.target_xid, at);
	}
	int64_t us;
	bool zone;
	if (cli.target_time && bk_pg_parse_time(cli.target_time, &us, &zone) == 0) {
		/* how the time was read: one typed in local time without a zone (found
		 * by a user's walk through the README), a warning even with -q, which
		 * scripts use (found by a helper's exploration) */
		char utc[BK_PG_TIME_MAX];
		bk_pg_format_time(utc, us);
		if (!cli.quiet)
			printf("recovery replays the transactions that ended up to %s\n", utc);
		if (!zone)
			cli_warn("--target-time '%s' names no zone: read as UTC, %s", cli.target_time,
				 utc);
	}
	/* recovery ends before WAL that is archived, in a .partial only: not a failure
	 * (PostgreSQL restores what it reads), but not silent (found by review) */
	char note[BK_WAL_PARTIAL_NOTE_MAX];
	bk_pg_wal_partial_note(&partial, note);
	if (note[0])
		cli_warn("%s", note);
	/* A server configured from outside its data directory (Debian's clusters read
	 * /etc/postgresql/VERSION/NAME/) sent none: it would not start without one. */
	if (target_lacks("postgresql.conf"))
		cli_warn("the backup holds no postgresql.conf (the server read its configuration "
			 "from elsewhere, as Debian's from /etc/postgresql/): copy it, pg_hba.conf, "
			 "pg_ident.conf and any directory it includes (Debian's conf.d) into %s, "
			 "and in the copy remove data_directory, hba_file, ident_file and "
			 "external_pid_file, which point at the original cluster", cli.target);
	/* nor one the server skipped, a symbolic link (found by a helper's
	 * exploration: the restore said nothing, and the server did not start) */
	else if (target_lacks("pg_hba.conf"))
		cli_warn("the backup holds no pg_hba.conf (the server does not send one that is a "
			 "symbolic link): copy it into %s, which does not start without one unless "
			 "its postgresql.conf names another in hba_file", cli.target);
	bk_snapshot_free(s);
	return 0;
}

/* ---- info ---- */

/* A segment whose walk stopped short at push (BkWalEnd.stopped): damage, unless
 * it is its timeline's newest (a standby's copy of its old timeline's last
 * segment may end short whole) and recovery reads no further WAL after it. Or
 * one whose data is not all in the repository (lost): damage wherever it is. */
typedef struct {
	char name[BK_WAL_NAME_MAX];
	uint64_t lsn; /* the last record recovery reads in it or before (0: not known) */
	bool newest;  /* its timeline's newest archived */
	bool lost;    /* a block not indexed, or in a pack that is missing */
} Stopped;

typedef struct {
	char base[128], dump[128], globals[128];
	BkWalArchive wa; /* listed once for every backup's window */
	int first;
	/* the newest segment of the windows (read once for every backup sharing it):
	 * what its records reach, what recovery reads to by its end (bk_pg_wal_reach)
	 * and when it was archived (last_read: whether it could be read) */
	char last[BK_WAL_NAME_MAX];
	BkWalEnd last_end;
	uint64_t last_reach;
	int64_t last_pushed_us;
	bool last_read;
	/* one walk back for the last transaction, shared by the backups it answers:
	 * from xact_last ("" before the first) down to segment walked_to; segments
	 * clear_from.. hold no transaction's end, whole or cut */
	BkWalLastXact xact;
	char xact_last[BK_WAL_NAME_MAX];
	uint64_t walked_to, clear_from;
	/* segments whose walk stopped short, in name order (scan_segments) */
	Stopped *stopped;
	size_t nstopped;
	BkIdSet packs; /* the packs seen there (bk_wal_record_stored) */
	/* the segment archived last (by its push time, whatever its timeline) */
	char newest[BK_WAL_NAME_MAX];
	int64_t newest_pushed_us;
	/* bk_pg_wal_went_on for backups of timeline went_tli starting at went_start
	 * along went_target (0: none asked yet), shared by the backups it answers: it
	 * reads records */
	uint32_t went_tli, went_target;
	uint64_t went_start;
	BkWalWentOn went;
} Info;

/* An age as a person reads it, to the two largest units: "45 s", "20 min 13 s",
 * "5 h 2 min", "3 d 4 h". */
static const char *format_age(int64_t s, char out[48])
{
	if (s < 60)
		snprintf(out, 48, "%lld s", (long long)s);
	else if (s < 3600)
		snprintf(out, 48, "%lld min %lld s", (long long)(s / 60), (long long)(s % 60));
	else if (s < 86400)
		snprintf(out, 48, "%lld h %lld min", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else
		snprintf(out, 48, "%lld d %lld h", (long long)(s / 86400), (long long)(s % 86400 / 3600));
	return out;
}

/* A timeline's archived segments, when the newest was pushed, and the segment
 * number of a .partial past its last (a promotion ended it there). */
typedef struct {
	uint32_t tli;
	uint64_t first, last, count;
	uint64_t partial;
	bool has_partial;
	int64_t pushed_us;
} TlStats;

/* The timelines archived, in timeline order. */
typedef struct {
	TlStats tl[BK_MAX_TIMELINES];
	size_t n;
	uint32_t seg_size;
} WalStats;

/* Seconds since `us` (0 when this clock is behind the pusher's). */
static int64_t age_of(int64_t us)
{
	int64_t s = (bk_now_us() - us) / 1000000;
	return s < 0 ? 0 : s;
}

/* Reads every segment's record: for the segment archived last (the RPO), and for
 * the ones whose walk stopped short at push (Stopped), each with the last record
 * recovery reads, in it or in the segments before, past any that one record
 * covers whole (0: not known). A warning if a record cannot be read. */
static int scan_segments(BkRepo *r, Info *in, WalStats *ws)
{
	size_t cap = 0;
	bool prev_stopped = false; /* the segment before is in->stopped's last */
	BkWalName prev = { 0 };
	uint64_t prev_segno = 0, prev_lsn = 0;
	for (size_t i = 0; i < in->wa.n; i++) { /* names in order: by timeline, then segment */
		BkWalName wn;
		BkWalRecord w;
		uint64_t segno;
		if (bk_wal_name_parse(in->wa.names[i], &wn) < 0 || wn.kind != BK_WAL_SEGMENT ||
		    bk_wal_name_segno(&wn, in->wa.seg_size, &segno) < 0)
			continue;
		if (prev_stopped && prev.tli == wn.tli) /* the one before: not its timeline's newest */
			in->stopped[in->nstopped - 1].newest = false;
		prev_stopped = false;
		bool follows = prev.tli == wn.tli && prev_segno + 1 == segno;
		prev = wn;
		prev_segno = segno;
		int e = bk_wal_record_get(r, cli.cluster, in->wa.names[i], &w);
		if (e < 0) {
			cli_warn("cannot read %s for damaged WAL: %s", in->wa.names[i],
				 bk_error_detail());
			prev_lsn = 0;
			continue;
		}
		uint64_t lsn = w.has_end ? w.end.lsn : 0;
		/* its data is there as pg restore checks it (found by a helper's
		 * exploration: with a pack lost, every window ran past it, and pg restore
		 * refused each) */
		e = bk_wal_record_stored(r, &w, &in->packs);
		if (e == -ENOMEM) {
			bk_wal_record_release(&w);
			return e;
		}
		if (e < 0)
			cli_warn("WAL recovery needs is damaged: %s", bk_error_detail());
		bool lost = e < 0;
		if (((w.has_end && w.end.stopped) || lost) &&
		    bk_grow(&in->stopped, &cap, in->nstopped, sizeof(*in->stopped), 8) == 0) {
			Stopped *st = &in->stopped[in->nstopped++];
			memcpy(st->name, in->wa.names[i], BK_WAL_NAME_MAX);
			/* (lost: found from the segments before, as pg restore reads them) */
			st->lsn = lost ? 0 : lsn ? lsn : follows ? prev_lsn : 0;
			st->newest = true;
			st->lost = lost;
			prev_stopped = true;
		} else if ((w.has_end && w.end.stopped) || lost) {
			bk_wal_record_release(&w);
			return -ENOMEM;
		}
		for (size_t t = 0; t < ws->n; t++)
			if (ws->tl[t].tli == wn.tli)
				ws->tl[t].pushed_us = BK_MAX(ws->tl[t].pushed_us, w.pushed_us);
		if (!in->newest[0] || w.pushed_us >= in->newest_pushed_us) {
			memcpy(in->newest, in->wa.names[i], BK_WAL_NAME_MAX);
			in->newest_pushed_us = w.pushed_us;
		}
		/* (a segment inside one record keeps the last record whole before it) */
		if (!(bk_wal_record_inside(&w) && follows))
			prev_lsn = lsn;
		bk_wal_record_release(&w);
	}
	return 0;
}

static void json_kv(const char *k, const char *v, bool comma)
{
	printf("%s\"%s\":", comma ? "," : "", k);
	cli_json_str(v ? v : "");
}

/* A number kept as text (a snapshot's metadata) as a JSON number; null when it is
 * missing or not a decimal number (a damaged record). */
static void json_num(const char *k, const char *v, bool comma)
{
	printf("%s\"%s\":", comma ? "," : "", k);
	size_t n = v ? strspn(v, "0123456789") : 0;
	if (n && n < 20 && !v[n] && (v[0] != '0' || n == 1))
		printf("%s", v);
	else
		printf("null");
}

static bool is_base(const Info *in, const BkSnapshot *s)
{
	return !strcmp(s->name, in->base) && !strcmp(s->kind, "pg-base");
}

/* The cluster's base backups and dumps. */
static bool of_cluster(void *ud, const BkSnapshot *s)
{
	const Info *in = ud;
	return is_base(in, s) || !strncmp(s->name, in->dump, strlen(in->dump)) ||
	       !strcmp(s->name, in->globals);
}

/* Reads what Info keeps of c's newest segment (a warning if it cannot be read). */
static void read_newest(Info *in, const BkWalChain *c)
{
	memcpy(in->last, c->last, sizeof(in->last));
	in->last_end = (BkWalEnd){ 0 };
	in->last_reach = 0;
	in->last_pushed_us = 0;
	BkWalRecord w;
	int e = bk_wal_record_get(in->wa.r, in->wa.cluster, c->last, &w);
	if (e == 0) {
		in->last_pushed_us = w.pushed_us;
		e = bk_pg_wal_last_record(in->wa.r, &w, &in->last_end);
		bk_wal_record_release(&w);
	}
	if (e == 0)
		e = bk_pg_wal_reach(in->wa.r, in->wa.cluster, c, c->contiguous_end / c->seg_size - 1,
				    &in->last_end, &in->last_reach);
	in->last_read = e == 0;
	if (e < 0)
		cli_warn("cannot read %s for the last record archived: %s", c->last,
			 bk_error_detail());
}

/* What in's walk says of a backup starting in segment `seg`: 1 and *ret_us the
 * last transaction's end (0: none since), or 0 when it does not reach that far. */
static int xact_from_walk(const Info *in, uint64_t seg, int64_t *ret_us)
{
	if (in->xact.known && in->xact.xact_us && in->xact.segno >= seg)
		*ret_us = in->xact.xact_us;
	else if (seg >= in->clear_from)
		*ret_us = 0;
	else
		return 0;
	return 1;
}

/* The last transaction on c's path since start_lsn (the newest segment, c->last,
 * read into in): 1 and *ret_us (0: none), or 0 when not known. Walks back once
 * for all the backups (oldest first, the first goes deepest), again only for one
 * that starts below that walk. A warning if the WAL cannot be read. */
static int last_xact(Info *in, const BkWalChain *c, uint64_t start_lsn, int64_t *ret_us)
{
	uint64_t seg = start_lsn / c->seg_size;
	bool same = !strcmp(in->xact_last, c->last);
	if (same && xact_from_walk(in, seg, ret_us))
		return 1;
	if (same && in->walked_to <= seg)
		return 0; /* that walk stopped before reaching seg: not known */
	BkWalLastXact x;
	memcpy(in->xact_last, c->last, sizeof(in->xact_last));
	if (bk_pg_wal_last_xact(in->wa.r, in->wa.cluster, c, start_lsn, &in->last_end, 0, &x) < 0) {
		cli_warn("cannot read the WAL archived for the last transaction: %s",
			 bk_error_detail());
		/* not known for any backup: no second walk, no second warning */
		in->xact = (BkWalLastXact){ .known = false };
		in->walked_to = 0;
		in->clear_from = UINT64_MAX;
		return 0;
	}
	in->xact = x;
	in->walked_to = seg;
	/* the segment the walk stopped at is clear if it was read without one (the
	 * last read before the cap too), not if it holds one or its end cuts one */
	in->clear_from = x.xact_us || x.cut ? x.segno + 1 : x.segno;
	return xact_from_walk(in, seg, ret_us);
}

/* One line (or JSON object) of pg info: a dump, or a base backup with the window
 * it restores to: LSNs from its stop to the last record of the WAL archived
 * contiguously after it, and in time up to the end of the last transaction
 * archived after it ended (a time target stops before the first transaction that
 * ended after it), else up to when the segment holding that last record was
 * archived (its records are older). */
static void info_snapshot(Info *in, const uint8_t id[32], const BkSnapshot *s)
{
	bool base = is_base(in, s);
	char when[32], until[32] = "", xact[32] = "", window[400] = "";
	bool no_xact = false;
	cli_format_time(s->time_us, when);
	const char *start = bk_snapshot_meta(s, "start_lsn"), *stop = bk_snapshot_meta(s, "stop_lsn"),
		   *tli = bk_snapshot_meta(s, "timeline");
	uint64_t start_lsn, stop_lsn;
	BkWalChain c;
	bool lsns = base && start && stop && tli && bk_wal_lsn_parse(start, &start_lsn) == 0 &&
		    bk_wal_lsn_parse(stop, &stop_lsn) == 0;
	int ce = lsns ? bk_pg_wal_chain(&in->wa, (uint32_t)strtoul(tli, NULL, 10), start_lsn,
					stop_lsn, BK_TLI_LATEST, &c)
		      : 0;
	/* (the window was left blank: found by review, with a history file damaged) */
	if (base && !lsns)
		snprintf(window, sizeof(window), "not known: its record lacks its LSNs");
	else if (base && ce < 0)
		snprintf(window, sizeof(window), "not known: %s", bk_error_detail());
	if (lsns && ce == 0) {
		const char *lack;
		BkWalChainLack k = bk_pg_wal_chain_lacks(&c, stop_lsn, 0, &lack);
		uint64_t end_lsn = c.contiguous_end;
		/* the first damaged segment recovery would read: the window ends there. A
		 * timeline's newest is damage too when the path goes on after it, on a
		 * later timeline, as when that timeline began at the segment's end (found
		 * by review: the window ran past it; pg restore refused) */
		const char *dmg = NULL;
		uint64_t dmg_lsn = 0, dmg_segno = UINT64_MAX; /* (dmg_lsn: as scan_segments) */
		bool dmg_lost = false;
		for (size_t i = 0; i < in->nstopped; i++) {
			const Stopped *st = &in->stopped[i];
			BkWalName dn;
			uint64_t segno;
			if (bk_wal_name_parse(st->name, &dn) == 0 &&
			    (st->lost || !st->newest || dn.tli != c.target_tli) &&
			    bk_pg_wal_chain_reads(&c, start_lsn, st->name) &&
			    bk_wal_name_segno(&dn, c.seg_size, &segno) == 0 && segno < dmg_segno) {
				dmg = st->name;
				dmg_lsn = st->lsn;
				dmg_segno = segno;
				dmg_lost = st->lost;
			}
		}
		/* (scan_segments reads each timeline alone: a timeline's first segment
		 * takes the last record before it from the segments before on the path) */
		if (dmg && !dmg_lsn && c.on_path) {
			/* a lost segment: pg restore checks the segment after an LSN target's
			 * too (recovery may read on to find where to stop), so a target
			 * restores only up to the last record before the segment before it */
			BkWalEnd none = { 0 };
			uint64_t before = dmg_lost ? (dmg_segno ? dmg_segno - 1 : 0) : dmg_segno;
			(void)bk_pg_wal_reach(in->wa.r, cli.cluster, &c, before, &none, &dmg_lsn);
		}
		if (dmg && k == BK_WAL_CHAIN_COMPLETE && c.on_path) {
			/* recovery reads to the record at dmg_lsn (0: not known) */
			char at[BK_WAL_LSN_MAX] = "(not known)";
			if (dmg_lsn)
				bk_wal_lsn_format(at, sizeof(at), dmg_lsn);
			/* (a lost segment right after the stop's: no target reaches past it) */
			if (dmg_lsn ? dmg_lsn < stop_lsn
				    : dmg_lost && stop_lsn / c.seg_size + 1 >= dmg_segno)
				snprintf(window, sizeof(window), "not restorable: WAL damaged in %s, "
					 "readable to %s, before its end", dmg, at);
			else
				snprintf(window, sizeof(window), "%s .. %s, then WAL damaged in %s", stop,
					 at, dmg);
		} else if (k == BK_WAL_CHAIN_COMPLETE && c.on_path && c.last[0]) {
			if (strcmp(in->last, c.last) != 0)
				read_newest(in, &c);
			if (in->last_pushed_us)
				cli_format_time(in->last_pushed_us, until);
			if (in->last_reach)
				end_lsn = in->last_reach;
			/* (one in its start segment may have ended before it did) */
			int64_t xact_us;
			if (in->last_read && last_xact(in, &c, start_lsn, &xact_us)) {
				if (xact_us > s->time_us)
					cli_format_time(xact_us, xact);
				else
					no_xact = true;
			}
		}
		char end[BK_WAL_LSN_MAX];
		bk_wal_lsn_format(end, sizeof(end), end_lsn);
		/* pg restore of it refuses without --target-timeline (walchain.h) */
		uint32_t own = (uint32_t)strtoul(tli, NULL, 10);
		if (c.on_path && (in->went_tli != own || in->went_target != c.target_tli ||
				  in->went_start != start_lsn)) {
			in->went_tli = own;
			in->went_target = c.target_tli;
			in->went_start = start_lsn;
			if (bk_pg_wal_went_on(&in->wa, &c, own, start_lsn, &in->went) < 0)
				cli_warn("cannot tell whether timeline %u went on after a fork (pg restore "
					 "checks it again): %s", own, bk_error_detail());
		}
		const BkWalWentOn went = c.on_path ? in->went : (BkWalWentOn){ 0 };
		if (went.parent) {
			char fork[BK_WAL_LSN_MAX];
			bk_wal_lsn_format(fork, sizeof(fork), went.fork);
			if (went.off_path)
				snprintf(window, sizeof(window), "needs --target-timeline: timeline %u "
					 "went on after timeline %u began (the two histories part at "
					 "%s, on timeline %u)", went.parent, went.child, fork,
					 went.common);
			else
				snprintf(window, sizeof(window), "needs --target-timeline: timeline %u "
					 "went on after timeline %u forked from it at %s", went.parent,
					 went.child, fork);
			xact[0] = until[0] = '\0';
			no_xact = false;
		} else if (dmg && k == BK_WAL_CHAIN_COMPLETE && c.on_path)
			; /* written above */
		else if (!c.on_path)
			snprintf(window, sizeof(window), "off timeline %u's history (--target-timeline "
				 "%u restores it)", c.target_tli, own);
		else if (k == BK_WAL_CHAIN_NO_HISTORY)
			snprintf(window, sizeof(window), "missing %s", lack);
		else if (k == BK_WAL_CHAIN_COMPLETE && c.fork_unread) {
			/* pg restore takes only an LSN target here (walchain.h) */
			snprintf(window, sizeof(window), "%s .. %s, LSN targets only: %s, timeline "
				 "%u's first, not archived yet", stop, end, c.next_needed,
				 c.tli[c.fork_unread]);
			xact[0] = until[0] = '\0';
			no_xact = false;
		} else if (k == BK_WAL_CHAIN_COMPLETE && c.partial.partial[0]) {
			/* recovery stops at the chain's end, short of WAL archived (walchain.h) */
			snprintf(window, sizeof(window), "%s .. %s, then WAL only in %s, which "
				 "recovery does not read%s%s%s", stop, end, c.partial.partial,
				 c.partial.awaited[0] ? ", until " : "", c.partial.awaited,
				 c.partial.awaited[0] ? " is archived" : "");
		} else if (k == BK_WAL_CHAIN_COMPLETE)
			snprintf(window, sizeof(window), "%s .. %s%s%s", stop, end,
				 c.gap ? ", then missing " : "", c.gap ? c.next_needed : "");
		else if (k == BK_WAL_CHAIN_GAP)
			/* a segment lost before WAL archived after it: waiting brings it no
			 * more than pg restore's refusal says (exit 5; found by a helper's
			 * exploration: this said "not restorable yet") */
			snprintf(window, sizeof(window), "not restorable: WAL up to %s needed, "
				 "and %s is missing", stop, lack);
		else
			snprintf(window, sizeof(window), "not restorable yet: WAL up to %s needed", stop);
	}
	if (cli.json) {
		printf("%s{\"id\":\"%s\"", in->first++ ? "," : "", bk_id_hex(id).s);
		json_kv("name", s->name, true);
		json_kv("kind", s->kind, true);
		json_kv("time", when, true);
		printf(",\"logical_bytes\":%llu", (unsigned long long)s->logical_bytes);
		if (base) {
			json_num("timeline", tli, true);
			json_kv("start_lsn", start, true);
			json_kv("stop_lsn", stop, true);
			json_kv("restore_window", window, true);
			json_kv("wal_archived_until", until, true);
			if (xact[0] || no_xact) /* "": none since it ended; null: not known */
				json_kv("last_transaction_end", xact, true);
			else
				printf(",\"last_transaction_end\":null");
		}
		printf("}");
	} else if (base) {
		printf("  base  %.16s  %s  timeline %s  %.1f MB  %s .. %s  restorable to: %s",
		       bk_id_hex(id).s, when, tli ? tli : "?", (double)s->logical_bytes / 1e6,
		       start ? start : "?", stop ? stop : "?", window);
		if (xact[0])
			printf(" (in time: before %s, the end of the last transaction archived)", xact);
		else if (no_xact)
			printf(" (no transaction archived since it ended: no time target)");
		else if (until[0])
			printf(" (in time: to the WAL archived at %s)", until);
		putchar('\n');
	} else {
		char text[CLI_TEXT_MAX];
		printf("  dump  %.16s  %s  ", bk_id_hex(id).s, when);
		cli_print_padded(cli_text(s->name, text, sizeof(text)), 28);
		printf(" %10.1f MB\n", (double)s->logical_bytes / 1e6);
	}
}


/* Timeline tli's entry in w, which is kept in timeline order: a new one, zeroed,
 * where it is missing; NULL when w is full. */
static TlStats *wal_slot(WalStats *w, uint32_t tli)
{
	size_t i = 0;
	while (i < w->n && w->tl[i].tli < tli)
		i++;
	if (i < w->n && w->tl[i].tli == tli)
		return &w->tl[i];
	if (w->n == BK_MAX_TIMELINES)
		return NULL;
	memmove(&w->tl[i + 1], &w->tl[i], (w->n - i) * sizeof(w->tl[0]));
	w->tl[i] = (TlStats){ .tli = tli };
	w->n++;
	return &w->tl[i];
}

/* Counts name into w if it is of kind: a segment, or (once every segment is
 * counted) a .partial past its timeline's last segment, the newest such; a
 * timeline with no segment archived may have a .partial alone (count 0). */
static void wal_stat(WalStats *w, const char *name, BkWalKind kind)
{
	BkWalName wn;
	uint64_t segno;
	if (bk_wal_name_parse(name, &wn) < 0 || wn.kind != kind ||
	    bk_wal_name_segno(&wn, w->seg_size, &segno) < 0)
		return;
	TlStats *t = wal_slot(w, wn.tli);
	if (!t)
		return;
	if (kind == BK_WAL_PARTIAL) {
		if ((!t->count || segno > t->last) && (!t->has_partial || segno > t->partial)) {
			t->partial = segno;
			t->has_partial = true;
		}
		return;
	}
	if (!t->count)
		t->first = t->last = segno;
	t->count++;
	t->first = BK_MIN(t->first, segno);
	t->last = BK_MAX(t->last, segno);
}

/* The newest timeline with a history file archived, when the newest WAL is an
 * older timeline's and was archived after that history file: two servers archive
 * into one cluster name, and the RPO of the newest WAL is not the newest
 * timeline's. 0 otherwise (or when the history's record cannot be read). */
static uint32_t older_went_on(const Info *in, char hist[BK_WAL_NAME_MAX])
{
	BkWalName nw, hn;
	uint32_t top = 0;
	for (size_t i = 0; i < in->wa.n; i++)
		if (bk_wal_name_parse(in->wa.names[i], &hn) == 0 && hn.kind == BK_WAL_HISTORY &&
		    hn.tli > top)
			top = hn.tli;
	if (!in->newest[0] || bk_wal_name_parse(in->newest, &nw) < 0 || nw.tli >= top)
		return 0;
	bk_wal_history_name(hist, BK_WAL_NAME_MAX, top);
	BkWalRecord h;
	if (bk_wal_record_get(in->wa.r, in->wa.cluster, hist, &h) < 0)
		return 0;
	bool after = in->newest_pushed_us > h.pushed_us;
	bk_wal_record_release(&h);
	return after ? top : 0;
}

/* pg info's refused pushes (pg/walarchive.h): a line each, or the JSON array
 * "refused" that ends the object (null, and a warning, when they cannot be read:
 * what they say is advice, the rest of pg info stands). */
static void info_refusals(BkRepo *r)
{
	BkWalRefusal *f;
	size_t n;
	if (bk_wal_refusals(r, cli.cluster, &f, &n) < 0) {
		cli_warn("cannot read the refused pushes: %s", bk_error_detail());
		if (cli.json)
			printf(",\"refused\":null}\n");
		return;
	}
	if (cli.json)
		printf(",\"refused\":[");
	for (size_t i = 0; i < n; i++) {
		char line[400], when[32];
		if (cli.json) {
			cli_format_time(f[i].refused_us, when);
			printf("%s{\"file\":\"%s\",\"refused_at\":\"%s\",\"cut_short\":%s}",
			       i ? "," : "", f[i].name, when, f[i].cut ? "true" : "false");
		} else {
			refusal_line(&f[i], line);
			printf("refused: %s\n", line);
		}
	}
	if (cli.json)
		printf("]}\n");
	free(f);
}

static int info(void)
{
	if (cli.nargs != 1)
		return usage_error("pg info takes no arguments");
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0)
		return cli_fail(e, NULL);
	Info in = { 0 };
	snprintf(in.base, sizeof(in.base), "pg/%s/base", cli.cluster);
	snprintf(in.dump, sizeof(in.dump), "pg/%s/dump/", cli.cluster);
	snprintf(in.globals, sizeof(in.globals), "pg/%s/globals", cli.cluster);
	e = bk_wal_archive_load(r, cli.cluster, &in.wa);
	WalStats w = { .seg_size = in.wa.seg_size };
	for (size_t i = 0; e == 0 && i < in.wa.n; i++)
		wal_stat(&w, in.wa.names[i], BK_WAL_SEGMENT);
	for (size_t i = 0; e == 0 && i < in.wa.n; i++)
		wal_stat(&w, in.wa.names[i], BK_WAL_PARTIAL);
	if (e == 0)
		e = scan_segments(r, &in, &w);
	if (e == 0) {
		if (cli.json)
			printf("{\"cluster\":\"%s\",\"system_identifier\":\"%llu\",\"backups\":[", cli.cluster,
			       (unsigned long long)in.wa.sysid);
		else
			printf("cluster %s (system identifier %llu)\nbackups:\n", cli.cluster,
			       (unsigned long long)in.wa.sysid);
		CliSnaps l;
		e = cli_snapshots_load(r, of_cluster, &in, &l);
		for (size_t i = 0; e == 0 && i < l.n; i++)
			info_snapshot(&in, l.items[i].id, l.items[i].s);
		cli_snapshots_release(&l);
	}
	if (e == 0) {
		printf(cli.json ? "],\"timelines\":[" : "WAL:\n");
		for (size_t i = 0; i < w.n; i++) {
			const TlStats *t = &w.tl[i];
			char a[BK_WAL_NAME_MAX], b[BK_WAL_NAME_MAX], p[BK_WAL_NAME_MAX] = "";
			bk_wal_segment_name(a, sizeof(a), t->tli, t->first, w.seg_size);
			bk_wal_segment_name(b, sizeof(b), t->tli, t->last, w.seg_size);
			if (t->has_partial)
				bk_wal_partial_name(p, sizeof(p), t->tli, t->partial, w.seg_size);
			bool none = !t->count; /* (a .partial alone) */
			uint64_t gaps = none ? 0 : t->last - t->first + 1 - t->count;
			size_t ndmg = 0;
			const char *first_dmg = "";
			for (size_t j = 0; j < in.nstopped; j++) {
				BkWalName dn;
				const Stopped *st = &in.stopped[j];
				if ((st->lost || !st->newest) && bk_wal_name_parse(st->name, &dn) == 0 &&
				    dn.tli == t->tli && !ndmg++)
					first_dmg = st->name;
			}
			int64_t tl_age = t->pushed_us ? age_of(t->pushed_us) : -1;
			if (cli.json) {
				char ja[BK_WAL_NAME_MAX + 2] = "null", jb[BK_WAL_NAME_MAX + 2] = "null";
				if (!none) {
					snprintf(ja, sizeof(ja), "\"%s\"", a);
					snprintf(jb, sizeof(jb), "\"%s\"", b);
				}
				printf("%s{\"timeline\":%u,\"first\":%s,\"last\":%s,\"last_archived_age_seconds\":%lld,\"segments\":%llu,\"missing\":%llu,\"damaged\":%zu,\"partial\":",
				       i ? "," : "", t->tli, ja, jb, (long long)tl_age,
				       (unsigned long long)t->count, (unsigned long long)gaps, ndmg);
				if (p[0])
					cli_json_str(p);
				printf("%s}", p[0] ? "" : "null");
			} else {
				char dmg[96] = "", age[48], last[80] = "", then[BK_WAL_NAME_MAX + 8] = "";
				if (ndmg)
					snprintf(dmg, sizeof(dmg), ", %zu damaged, the first %s", ndmg,
						 first_dmg);
				if (tl_age >= 0)
					snprintf(last, sizeof(last), " (the last archived %s ago)",
						 format_age(tl_age, age));
				if (p[0])
					snprintf(then, sizeof(then), ", then %s", p);
				if (none)
					printf("  timeline %u: only %s, 0 segments, 0 missing\n", t->tli, p);
				else
					printf("  timeline %u: %s .. %s%s%s, %llu segment%s, %llu missing%s\n",
					       t->tli, a, b, then, last, (unsigned long long)t->count,
					       t->count == 1 ? "" : "s", (unsigned long long)gaps, dmg);
			}
		}
		int64_t age_s = in.newest[0] ? age_of(in.newest_pushed_us) : -1;
		char age[48], older[BK_WAL_NAME_MAX];
		uint32_t newer = older_went_on(&in, older);
		if (cli.json)
			printf("],\"newest_wal\":\"%s\",\"newest_wal_age_seconds\":%lld,"
			       "\"newest_wal_after_newer_timeline\":%s", in.newest, (long long)age_s,
			       newer ? "true" : "false");
		else if (in.newest[0])
			printf("newest WAL: %s, archived %s ago (the current RPO)\n", in.newest,
			       format_age(age_s, age));
		else
			printf("newest WAL: none archived\n");
		BkWalName nw;
		bool listed = false; /* timeline newer has a line above */
		for (size_t i = 0; i < w.n; i++)
			listed |= w.tl[i].tli == newer && w.tl[i].count;
		if (newer && !cli.json && bk_wal_name_parse(in.newest, &nw) == 0)
			printf("note: the newest WAL is timeline %u's, archived after timeline %u "
			       "began (%s): does a second server archive into cluster %s (an old "
			       "primary after a failover, a promoted copy)? Timeline %u%s\n", nw.tli,
			       newer, older, cli.cluster, newer,
			       listed ? "'s line above gives its own age" : " has no segment archived yet");
		info_refusals(r);
	}
	bk_wal_archive_release(&in.wa);
	free(in.stopped);
	bk_idset_release(&in.packs);
	bk_repo_close(r);
	return e < 0 ? cli_fail(e, "pg info") : 0;
}

int cmd_pg(void)
{
	if (cli.nargs < 1)
		return usage_error("pg needs a command");
	const char *sub = cli.args[0];
	if (!strcmp(sub, "wal-push"))
		return wal_push();
	if (!strcmp(sub, "wal-fetch"))
		return wal_fetch();
	if (!strcmp(sub, "wal-read-ahead"))
		return wal_read_ahead();
	if (!strcmp(sub, "basebackup"))
		return basebackup();
	if (!strcmp(sub, "dump"))
		return dump();
	if (!strcmp(sub, "restore"))
		return restore();
	if (!strcmp(sub, "info"))
		return info();
	return usage_error("unknown pg command '%s'", sub);
}
