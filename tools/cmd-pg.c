/* bunker pg ...: the PostgreSQL commands. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg/basebackup.h"
#include "pg/dump.h"
#include "pg/recovery.h"
#include "pg/walarchive.h"
#include "store/error.h"
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
	e = bk_wal_push(r, cli.cluster, cli.args[1], &stored);
	bk_repo_close(r);
	if (e < 0)
		return cli_fail(e, "wal-push");
	return 0;
}

static int wal_fetch(void)
{
	if (cli.nargs != 3)
		return usage_error("pg wal-fetch needs NAME DEST");
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0)
		return cli_fail(e, NULL);
	e = bk_wal_fetch(r, cli.cluster, cli.args[1], cli.args[2]);
	bk_repo_close(r);
	if (e == -ENOENT) /* PostgreSQL probes for files that do not exist: stay quiet */
		return 3;
	if (e < 0)
		return cli_fail(e, "wal-fetch %s", cli.args[1]);
	return 0;
}

static int basebackup(void)
{
	if (cli.nargs != 1)
		return usage_error("pg basebackup takes no arguments");
	if (!cli.dbname)
		return usage_error("pg basebackup needs --dbname CONNINFO");
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0)
		return cli_fail(e, NULL);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	BkBaseBackupOpts o = {
		.conninfo = cli.dbname,
		.cluster = cli.cluster,
		.host = host,
		.fast_checkpoint = cli.fast_checkpoint,
		.progress = cli_progress,
	};
	uint8_t id[32];
	uint64_t t0 = bk_mono_us();
	e = bk_pg_basebackup(r, &o, id);
	cli_progress_end();
	if (e < 0) {
		bk_repo_close(r);
		return cli_fail(e, "basebackup");
	}
	e = print_snapshot_summary(r, id, t0);
	bk_repo_close(r);
	return e;
}

static void dump_done(void *ud, const char *name, const uint8_t id[32])
{
	BkRepo *r = ud;
	(void)name;
	print_snapshot_summary(r, id, bk_mono_us());
}

static int dump(void)
{
	if (cli.nargs != 1)
		return usage_error("pg dump takes no arguments");
	if (!cli.dbname)
		return usage_error("pg dump needs --dbname CONNINFO");
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0)
		return cli_fail(e, NULL);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	BkDumpOpts o = {
		.conninfo = cli.dbname,
		.cluster = cli.cluster,
		.host = host,
		.bin_dir = getenv("BUNKER_PG_BIN"),
		.done = dump_done,
		.done_ud = r,
		.progress = cli_progress,
	};
	e = bk_pg_dump(r, &o);
	cli_progress_end();
	bk_repo_close(r);
	return e < 0 ? cli_fail(e, "dump") : 0;
}

/* Appends s to out, single-quoted for /bin/sh. */
static void sh_quote(char *out, size_t cap, const char *s)
{
	size_t n = strlen(out);
	if (n + 1 < cap)
		out[n++] = '\'';
	for (; *s && n + 5 < cap; s++) {
		if (*s == '\'') {
			memcpy(out + n, "'\\''", 4);
			n += 4;
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

/* The restore_command PostgreSQL will run: this binary, the same repository and
 * the same secret, by absolute paths. */
static int restore_command(char *out, size_t cap)
{
	char exe[PATH_MAX], abs[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return bk_errorf_code(-errno, "find the bunker binary");
	exe[n] = '\0';
	out[0] = '\0';
	sh_quote(out, cap, exe);
	if (!realpath(cli.repo, abs))
		return bk_errorf_code(-errno, "repository %s", cli.repo);
	append(out, cap, " --repo ");
	sh_quote(out, cap, abs);
	const char *opt = cli.key_file ? " --key-file " : cli.password_file ? " --password-file " : NULL;
	const char *file = cli.key_file ? cli.key_file : cli.password_file;
	if (opt) {
		if (!realpath(file, abs))
			return bk_errorf_code(-errno, "%s", file);
		append(out, cap, opt);
		sh_quote(out, cap, abs);
	} else if (cli.password_command) {
		append(out, cap, " --password-command ");
		sh_quote(out, cap, cli.password_command);
	} else {
		return bk_errorf(BK_E_USAGE, "pg restore needs --key-file, --password-file or "
					     "--password-command: restore_command runs unattended");
	}
	append(out, cap, " --cluster ");
	sh_quote(out, cap, cli.cluster);
	append(out, cap, " pg wal-fetch");
	return strlen(out) + 16 < cap ? 0 : bk_errorf(-E2BIG, "restore_command too long");
}

static int restore(void)
{
	if (cli.nargs > 2)
		return usage_error("pg restore takes at most one SNAPSHOT");
	if (!cli.target)
		return usage_error("pg restore needs --target DIR");
	char cmd[8192];
	int e = restore_command(cmd, sizeof(cmd));
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
		.target_action = cli.target_action,
		.restore_command = cmd,
		.restore_owner = geteuid() == 0,
		.progress = cli_progress,
	};
	BkSnapshot *s;
	e = bk_pg_restore(r, &o, &s);
	cli_progress_end();
	bk_repo_close(r);
	if (e < 0)
		return cli_fail(e, "pg restore");
	if (!cli.quiet)
		printf("restored base backup %s (%s .. %s) to %s; start PostgreSQL there to recover\n",
		       s->name, bk_snapshot_meta(s, "start_lsn"), bk_snapshot_meta(s, "stop_lsn"),
		       cli.target);
	bk_snapshot_free(s);
	return 0;
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
	if (!strcmp(sub, "basebackup"))
		return basebackup();
	if (!strcmp(sub, "dump"))
		return dump();
	if (!strcmp(sub, "restore"))
		return restore();
	return usage_error("unknown pg command '%s'", sub);
}
