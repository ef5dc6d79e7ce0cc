/* pg/walspool.h: reading WAL ahead of recovery (`pg wal-fetch --read-ahead`, the
 * restore_command that pg restore writes).
 *
 * PostgreSQL's recovery runs restore_command once per segment, one after another,
 * and replays each before it asks for the next: with every fetch on the way, about
 * two thirds of a recovery's time was bunker's (a helper's measurement, 2026-11-25:
 * 10 ms of 15 per 1 MB segment, 145 of 222 per 16 MB one). A spool directory beside
 * DEST holds the segments after the one asked for last, fetched by one process of
 * its own (the filler) while the server replays; the next fetch takes its segment
 * from there, by a rename.
 *
 * Contracts:
 * - The spool is "<DEST's directory>/bunker-read-ahead.<the repository's id, 16 hex
 *   digits>.<cluster>": another repository's or cluster's files are never taken.
 * - Only segments are spooled, each whole and durable under its name (written
 *   unnamed, synced, then named, the directory synced: bk_wal_fetch durable), so a
 *   crash leaves whole files or none. Archived files never change (create-only),
 *   so a spooled copy is the archive's bytes for as long as it lies there.
 * - A file the spool lacks is fetched from the archive as before: "not archived"
 *   (exit 3) is always the archive's own answer.
 * - Only the DEST recovery uses (BK_WAL_SPOOL_DEST) has a spool, and only a
 *   fetch run in a data directory in recovery starts a filler.
 * - The filler keeps the BK_WAL_SPOOL_BYTES after the segment asked for last (at
 *   least 2 segments, at most 64), while its file system has room for 4 segments
 *   more, removes what lies outside them, and removes the spool and exits once
 *   recovery has ended or the server stopped (its working directory, the data
 *   directory, without recovery.signal and standby.signal, or without
 *   postmaster.pid), no fetch has asked for BK_WAL_SPOOL_IDLE_S seconds, or the
 *   spool was removed. One filler per spool (a lock). It removes only segments and
 *   its own files, and works only in a directory named as a spool. wal-push
 *   sweeps away a spool of its repository and cluster that no filler holds.
 *
 * Ownership: paths are the caller's buffers. Thread-safety: none needed (one
 * thread per process).
 */
#ifndef BK_PG_WALSPOOL_H
#define BK_PG_WALSPOOL_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>

#include "store/repo.h"

#define BK_WAL_SPOOL_BYTES (128u << 20)
#define BK_WAL_SPOOL_IDLE_S 60
#define BK_WAL_SPOOL_DEST "RECOVERYXLOG" /* the DEST of PostgreSQL's recovery */

/* The spool's path for dest: -ENOENT (no read-ahead) unless dest is named
 * BK_WAL_SPOOL_DEST, BK_E_USAGE when it would not fit in PATH_MAX. */
int bk_wal_spool_path(const BkRepo *r, const char *cluster, const char *dest, char out[PATH_MAX]);

/* Moves the spool's copy of segment name onto dest: 0, or -ENOENT when the spool
 * (or the spool itself) has none or dest is there and not a file, or another
 * error (the caller fetches then). */
int bk_wal_spool_take(const char *spool, const char *name, const char *dest);

/* Removes the spool's segments (a fetch that found no room, ENOSPC: the server's
 * file comes first). */
int bk_wal_spool_clear(const char *spool);

/* Removes a spool no filler holds, as a filler that ended would have (wal-push,
 * which runs in pg_wal: a spool a SIGKILL or a power cut left behind on a server
 * that recovers no more). Best effort. */
void bk_wal_spool_sweep(const char *spool);

/* Records name as the segment asked for last (the spool made, 0700, if missing),
 * when the working directory is a data directory in recovery (PG_VERSION,
 * postmaster.pid and recovery.signal or standby.signal); *ret_start is true when
 * no filler holds the spool: the caller starts one. */
int bk_wal_spool_want(const char *spool, const char *name, bool *ret_start);

/* The filler (above), until recovery ends, it idles or *stop is set (a signal:
 * it removes the spool too); 0 at once when another filler holds the spool. A
 * repository error ends it (the fetches go on without). */
int bk_wal_spool_fill(BkRepo *r, const char *cluster, const char *spool,
		      const volatile sig_atomic_t *stop);

#endif
