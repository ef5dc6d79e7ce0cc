/* bunker pg ...: the PostgreSQL commands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pg/walarchive.h"
#include "store/error.h"
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

int cmd_pg(void)
{
	if (cli.nargs < 1)
		return usage_error("pg needs a command");
	const char *sub = cli.args[0];
	if (!strcmp(sub, "wal-push"))
		return wal_push();
	if (!strcmp(sub, "wal-fetch"))
		return wal_fetch();
	return usage_error("unknown pg command '%s'", sub);
}
