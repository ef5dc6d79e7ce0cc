/* pg/recovery.h: point-in-time restore: choosing a base backup, proving that the
 * WAL chain from it to the target exists (pg/walchain.h), and writing a data
 * directory that PostgreSQL recovers from by calling `bunker pg wal-fetch`.
 */
#ifndef BK_PG_RECOVERY_H
#define BK_PG_RECOVERY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "pg/walchain.h"
#include "store/repo.h"
#include "store/snapshot.h"

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
	/* With restore_owner: the user every restored file goes to (the server's, who
	 * runs restore_command); NULL: the owner of the backup's PG_VERSION, refused
	 * (BK_E_USAGE) when no account here has its uid (a restore on another host). */
	const char *owner;
	/* With restore_owner: what restore_command needs, that the owner (the server's
	 * user, who runs it) must be able to reach (access() modes: the binary X_OK,
	 * the key file and the repository R_OK). */
	const BkPathAccess *server_needs;
	size_t nserver_needs;
	const volatile sig_atomic_t *stop; /* once set, the restore stops (BkRestoreOpts) */
	/* Optional: set to the LSN of the record where recovery stops for an xid or
	 * name target (0: the target could not be placed, or is of another kind). */
	uint64_t *ret_target_at;
	/* Optional: set, without a target, to the WAL archived only in a .partial
	 * where the chain ends (BkWalChain.partial: recovery stops short of it, and
	 * the restore succeeds, as PostgreSQL restores what it can read); zeroed
	 * otherwise. A target past that point is refused, saying so. */
	BkWalPartial *ret_partial;
	void (*progress)(void *ud, uint64_t done, uint64_t total);
	/* Optional: the bytes of archived WAL read so far to place a target, after each
	 * segment (reading may take long: up to the whole archive after the oldest
	 * backup when the target is not there). */
	void (*wal_read)(void *ud, uint64_t bytes);
	void *progress_ud;
} BkPgRestoreOpts;

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
 * UTC if no zone) into microseconds since the epoch; *ret_zone (if not NULL) says
 * whether s named a zone. A message that shows a time read without one adds
 * BK_PG_TIME_NO_ZONE. */
int bk_pg_parse_time(const char *s, int64_t *ret_us, bool *ret_zone);
#define BK_PG_TIME_NO_ZONE " (read as UTC: the time names no zone)"

/* us as PostgreSQL reads it whatever the server's TimeZone: in UTC, with the
 * zone written out ("2026-11-22 03:04:05.000000+00"), as bk_pg_parse_time reads it. */
#define BK_PG_TIME_MAX 48
void bk_pg_format_time(char out[BK_PG_TIME_MAX], int64_t us);

#endif
