/* bunker pg ...: the PostgreSQL commands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg/basebackup.h"
#include "pg/dump.h"
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
	return usage_error("unknown pg command '%s'", sub);
}
