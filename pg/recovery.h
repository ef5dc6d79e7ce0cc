/* pg/recovery.h: point-in-time restore: choosing a base backup, proving that the
 * WAL chain from it to the target exists, and writing a data directory that
 * PostgreSQL recovers from by calling `bunker pg wal-fetch`.
 *
 * The WAL chain follows one timeline's history (by default the newest, found as
 * PostgreSQL finds it): for each segment after the backup's start, the file
 * expected is the one of the newest timeline on that history that had begun by the
 * segment's start (as PostgreSQL's recovery picks it). A chain is complete up to a
 * point when every such segment is archived, and the history files of every
 * timeline after the first. Chains are computed on a BkWalArchive, the cluster's
 * archive listed once for any number of them.
 */
#ifndef BK_PG_RECOVERY_H
#define BK_PG_RECOVERY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "pg/wal.h"
#include "pg/walarchive.h"
#include "store/repo.h"
#include "store/snapshot.h"

/* Which timeline recovery follows (PostgreSQL's recovery_target_timeline). */
#define BK_TLI_LATEST 0u           /* the newest: the next while its history is archived */
#define BK_TLI_CURRENT UINT32_MAX  /* the backup's own */

/* The archive of one cluster: every file name (sorted) and the segment size
 * (the cluster record's; where that says 0, written so by basebackup or dump
 * before they asked the server, an archived segment's; else 16 MiB). */
typedef struct {
	BkRepo *r;
	const char *cluster;
	uint64_t sysid; /* the cluster record's */
	uint32_t seg_size;
	char (*names)[BK_WAL_NAME_MAX];
	size_t n, cap;
} BkWalArchive;

/* -ENOENT naming the cluster if the repository has no record of it. On failure
 * *ret is empty (releasing it is harmless). */
int bk_wal_archive_load(BkRepo *r, const char *cluster, BkWalArchive *ret);
void bk_wal_archive_release(BkWalArchive *a);

typedef struct {
	uint32_t seg_size;
	uint32_t target_tli;           /* the timeline recovery follows */
	bool on_path;                  /* the backup, start to stop, is on its history
					* (true too when a history file is missing) */
	size_t ntl;                    /* timelines on its history, oldest first */
	uint32_t tli[BK_MAX_TIMELINES];
	uint64_t begin[BK_MAX_TIMELINES]; /* LSN at which each began */
	char missing_history[BK_WAL_NAME_MAX]; /* a history file the chain needs, or "" */
	/* From the start segment on: the first segment missing, the end of contiguous
	 * WAL (LSN just past the last contiguous segment), and whether that segment is
	 * a gap (newer segments on the path are archived) or just not written yet. */
	char next_needed[BK_WAL_NAME_MAX];
	char last[BK_WAL_NAME_MAX]; /* the segment that ends at contiguous_end, or "" */
	uint64_t contiguous_end;
	bool gap;
	/* next_needed is the first segment of a timeline after the first (the one
	 * holding its switch point: a promoted server had not archived it yet), and
	 * the parent timeline's file of that number is archived: recovery, not
	 * finding the one, reads the other and replays the parent's records past the
	 * switch point, going on along the parent's history. Its index in tli[], or 0. */
	size_t fork_unread;
} BkWalChain;

/* Examines the archive for the base backup (tli, start_lsn, stop_lsn) along
 * timeline want_tli (a number, BK_TLI_LATEST or BK_TLI_CURRENT; one older than the
 * backup's leaves it off the path). */
int bk_pg_wal_chain(const BkWalArchive *a, uint32_t tli, uint64_t start_lsn, uint64_t stop_lsn,
		    uint32_t want_tli, BkWalChain *ret);

/* A timeline on c's path before its last that went on archiving after a child
 * forked off it: a segment of it, from the one holding the switch point on, pushed
 * after the child's history file (a restored copy promoted and archived here while
 * the original went on, or two primaries at once). Then which history a restore
 * without --target-timeline should follow is not known: PostgreSQL follows the
 * newest timeline, and would drop silently what the parent archived after the fork
 * (found by review: with no base backup taken since, a trial copy's timeline was
 * restored in place of production's). The segment a failing-over standby archives
 * as its old timeline's last, before it promotes, does not count. Only parents
 * from from_tli on count (0: all): a SNAPSHOT given on a timeline after a fork can
 * only follow it, while which backup is latest depends on the history followed.
 * The path is c's, or when c is a backup's own timeline alone, its history's. */
typedef struct {
	uint32_t parent, child;    /* 0: none went on */
	uint64_t fork;             /* the child's begin */
	char seg[BK_WAL_NAME_MAX]; /* the parent's segment archived after the child's history */
} BkWalWentOn;
int bk_pg_wal_went_on(const BkWalArchive *a, const BkWalChain *c, uint32_t from_tli,
		      BkWalWentOn *ret);

/* Whether the chain's path takes the file `name` for its segment number, from
 * start_lsn's segment up to contiguous_end (the files recovery would read). */
bool bk_pg_wal_chain_reads(const BkWalChain *c, uint64_t start_lsn, const char *name);

/* bk_wal_last_record of an archived segment (w, its WAL record, as
 * bk_wal_record_get gives it): the one its pusher recorded (w->has_end), else the
 * segment fetched into an unnamed temporary file in the repository's tmp/ (in
 * memory when the repository is read-only here) and walked. */
int bk_pg_wal_last_record(BkRepo *r, const BkWalRecord *w, BkWalEnd *ret);

/* Whether a segment's record says one record covers the segment: walked, and its
 * end says so (bk_wal_end_inside). */
static inline bool bk_wal_record_inside(const BkWalRecord *w)
{
	return w->has_end && bk_wal_end_inside(&w->end);
}

/* The LSN of the last record recovery reads by the end of segment segno of c's
 * path, whose end is `end`: end->lsn, or when that is 0 (it stopped at once, or
 * one record covers it) the last record whole in the segments before, as their
 * pushers recorded it (read back past any that one record covers, up to
 * BK_WAL_XACT_SCAN_MAX of them); 0 when not known. */
int bk_pg_wal_reach(BkRepo *r, const char *cluster, const BkWalChain *c, uint64_t segno,
		    const BkWalEnd *end, uint64_t *ret);

/* The last transaction on a chain's path that a time target can stop before
 * (PostgreSQL stops at the first commit or abort that ended after it; with none,
 * it replays to the end and fails): the latest end of the segments read. newest is
 * the BkWalEnd of c->last, read by the caller. While what was read holds no
 * transaction that ended after after_us (with after_us 0: none at all; an idle
 * server's segments, switched by archive_timeout, hold none, and backends stamp
 * commits slightly out of WAL order, also across a segment's end), the segments
 * before it are walked back, down to the one holding start_lsn, stopping after the
 * first archived at or before after_us: the transactions before it ended before
 * that. A transaction's end that a segment's end cuts counts only when its record
 * ends readable in the archive: not when every segment after it lies inside it,
 * the newest included, or the newest stopped at once on it (it failed across). Not
 * known when a segment's end cuts what may be a transaction's end (its time is in
 * the segment after), or after BK_WAL_XACT_SCAN_MAX segments whose records hold no
 * end (each costs a fetch and a walk; those pushed before WAL record version 2).
 * Errors: those of bk_wal_record_get and bk_pg_wal_last_record (a segment of the
 * path missing from the archive: -ENOENT); *ret is untouched then. */
#define BK_WAL_XACT_SCAN_MAX 256
typedef struct {
	bool known;
	int64_t xact_us;               /* when it ended; 0: none (after after_us) */
	char segment[BK_WAL_NAME_MAX]; /* holding it; with none, the oldest one read
					* (also when not known); cut: the cutting one */
	uint64_t segno;                /* segment's number */
	bool cut;                      /* not known: segment's end cuts a possible one */
} BkWalLastXact;
int bk_pg_wal_last_xact(BkRepo *r, const char *cluster, const BkWalChain *c, uint64_t start_lsn,
			const BkWalEnd *newest, int64_t after_us, BkWalLastXact *ret);

/* What a chain lacks to replay from its start through the record that ends at stop
 * (the segment holding stop - 1) and, when target is not 0, to read the record that
 * starts at target (the segment holding target). The one rule for pg restore,
 * pg info and basebackup's WAL wait. *name (borrowed from c) is the file: a history
 * file, a segment missing before newer ones (a gap), or the next one not archived
 * yet. */
typedef enum {
	BK_WAL_CHAIN_COMPLETE,
	BK_WAL_CHAIN_NO_HISTORY,
	BK_WAL_CHAIN_GAP,
	BK_WAL_CHAIN_NOT_YET,
} BkWalChainLack;
BkWalChainLack bk_pg_wal_chain_lacks(const BkWalChain *c, uint64_t stop, uint64_t target,
				     const char **name);

/* In a data directory and in each tablespace location while pg restore writes
 * them, removed at its end (the data directory's last): one left says a restore
 * was killed there. */
#define BK_RESTORE_MARKER ".bunker-restore-incomplete"

typedef struct {
	const char *path;
	int mode;        /* R_OK, X_OK */
	const char *dir; /* a directory (X_OK) above this one, NULL: a file */
} BkPathAccess;

typedef struct {
	const char *cluster;
	const char *snapshot;     /* id, prefix, or NULL/"latest": the newest base backup
				   * on the history of the timeline to follow that ended
				   * before a time or LSN target, or before the first
				   * record after its start where an xid or name target
				   * stops recovery (found by walking the archived WAL;
				   * when a record that may be that one cannot be read, the
				   * oldest base backup) */
	const char *target_dir;
	const char *target_time;  /* at most one of these four */
	const char *target_lsn;
	const char *target_xid;
	const char *target_name;
	const char *target_action; /* promote (default), pause, shutdown */
	const char *target_timeline; /* latest, current or an id; NULL: latest, but
				      * "latest" refuses when the newest backup is off
				      * the newest timeline's history */
	const char *archive_mode;  /* preserve (default: the backup's setting) or off */
	/* "OLD=NEW" each: the tablespace the backup has at OLD is restored to NEW, and
	 * the restored tablespace_map says NEW (pg_basebackup's --tablespace-mapping:
	 * a restore beside the original, whose locations are in use) */
	const char *const *ts_mapping;
	size_t nts_mapping;
	const char *restore_command; /* the command PostgreSQL runs, without "%f %p" */
	bool restore_owner;
	/* With restore_owner: what restore_command needs, that the owner of the
	 * backup's PG_VERSION (the server's user, who runs it) must be able to reach
	 * (access() modes: the binary X_OK, the key file and the repository R_OK). */
	const BkPathAccess *server_needs;
	size_t nserver_needs;
	const volatile sig_atomic_t *stop; /* once set, the restore stops (BkRestoreOpts) */
	/* Optional: set to the LSN of the record where recovery stops for an xid or
	 * name target (0: the target could not be placed, or is of another kind). */
	uint64_t *ret_target_at;
	void (*progress)(void *ud, uint64_t done, uint64_t total);
	/* Optional: the bytes of archived WAL read so far to place a target, after each
	 * segment (reading may take long: up to the whole archive after the oldest
	 * backup when the target is not there). */
	void (*wal_read)(void *ud, uint64_t bytes);
	void *progress_ud;
} BkPgRestoreOpts;

/* The postgresql.auto.conf a restore starts from: conf with every line that sets
 * restore_command, a recovery_target* setting or (when archive_off) archive_mode
 * commented out ("#bunker# " in front), so that the block an earlier restore left
 * (in a backup of a server that was itself restored) neither adds a second target
 * nor keeps an old one. Names compare as PostgreSQL's do (any case). Returns a
 * malloc'd string, or NULL when out of memory. Pure. */
char *bk_pg_auto_conf_clear(const char *conf, bool archive_off);

/* Restores into a new or empty directory; on success *ret_snap is the base backup
 * used (owned, free with bk_snapshot_free). Before anything is written it refuses:
 * with BK_E_USAGE bad options (a mapping of a location the backup has no
 * tablespace at), a SNAPSHOT that ended after a time or LSN target
 * (recovery cannot stop inside its backup) and, with restore_owner, server_needs
 * the backup's owner cannot reach; with -ENOENT an unknown cluster, no
 * base backup that fits the target, WAL not archived yet up to the target (or up to
 * the backup's end), and a target time after the newest WAL archived on the way
 * was (PostgreSQL would end recovery before reaching it: its records are older);
 * with BK_E_CORRUPT a broken chain, naming the missing segment or history file;
 * with -EEXIST a directory that is not empty. Missing directories above the target
 * (and above tablespace locations) are made 0755, for the server to get through. */
int bk_pg_restore(BkRepo *r, const BkPgRestoreOpts *o, BkSnapshot **ret_snap);

/* Parses PostgreSQL-style timestamps ("2026-11-22 03:04:05[.ffffff][+00|Z]",
 * UTC if no zone) into microseconds since the epoch. */
int bk_pg_parse_time(const char *s, int64_t *ret_us);

#endif
