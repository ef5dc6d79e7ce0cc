/* pg/dump.h: logical dumps. For each database pg_dumpall would dump (every one
 * that accepts connections and is valid, templates too, but template0), pg_dump
 * runs in the custom format without compression (so the store can deduplicate and
 * compress it) and its output streams into a snapshot
 * "pg/<cluster>/dump/<database>" (kind "pg-dump"); `pg_dumpall --globals-only`
 * goes to "pg/<cluster>/globals". Restore with
 *   bunker cat SNAPSHOT | pg_restore -d DB        (databases)
 *   bunker cat SNAPSHOT | psql                    (globals)
 * A pg_dump that fails (non-zero exit, or killed) never writes its snapshot; the
 * other databases and the globals are still dumped, and then the command fails
 * (BK_E_REMOTE) naming the databases not dumped. Any other error stops at once.
 *
 * The pg_dump and pg_dumpall programs are looked up in bin_dir (or PATH when
 * NULL); each runs with --version first, and one that cannot run (its --version
 * fails), or is older than the server, stops the command (BK_E_REMOTE) before
 * any dump. Each gets
 * SIGTERM if the thread that called bk_pg_dump ends first (the program stopped or
 * killed, say: PR_SET_PDEATHSIG), so call it from one that outlives it. The
 * connection string is any libpq conninfo; the database name in it is replaced
 * for each database. The databases are listed from the one it names,
 * else (as pg_dumpall) from postgres, or template1 when postgres fails; the
 * globals are read through the one it names too (pg_dumpall -l). The programs
 * run with --no-password: a server asking for a password that the string, the
 * environment and ~/.pgpass do not give fails that dump at once instead of a
 * prompt on the terminal.
 */
#ifndef BK_PG_DUMP_H
#define BK_PG_DUMP_H

#include "store/archiver.h"
#include "store/repo.h"

typedef struct {
	const char *conninfo;
	const char *cluster;
	const char *host;
	const char *bin_dir;
	/* A program that writes nothing for this many seconds (0: no limit) is stopped
	 * and counts as failed (BK_E_REMOTE, as above). */
	uint32_t stall_timeout_s;
	/* Called (optional) with a warning: for each database left out because it
	 * does not accept connections (datallowconn false; pg_dumpall leaves it out
	 * without a word), with bk_cluster_claim's (pg/walarchive.h): this dump
	 * recorded a cluster name new here whose system another cluster has, and when
	 * the server's system identifier cannot be read (pg_control_system() not
	 * allowed): the dumps are then saved without checking that the cluster name
	 * is this server's. */
	void (*warn)(void *ud, const char *msg);
	void *warn_ud;
	/* Called (optional) with each line pg_dump or pg_dumpall wrote on its
	 * standard error, once it has exited, as it wrote it: whoever prints it
	 * escapes it (a database or table name in it may hold any byte but NUL). */
	void (*program_line)(void *ud, const char *line);
	void *program_line_ud;
	/* Called after each snapshot is written (for printing). */
	void (*done)(void *ud, const char *name, const uint8_t id[32]);
	void *done_ud;
	/* Called (optional) with progress_ud and the snapshot's name before each
	 * program starts (a progress line that names the dump). */
	void (*begin)(void *ud, const char *name);
	BkProgressFn progress;
	void *progress_ud;
} BkDumpOpts;

int bk_pg_dump(BkRepo *r, const BkDumpOpts *o);

#endif
