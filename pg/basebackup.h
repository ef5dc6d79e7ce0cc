/* pg/basebackup.h: a base backup pulled over a replication connection into a
 * snapshot, with no temporary copy on disk and no access to the server's files.
 *
 * BASE_BACKUP's tar streams go through the tar parser (pg/tar.h); each file's
 * bytes go straight into a chunk stream (store/archiver.h); the entries build the
 * snapshot tree (store/treebuild.h). The data directory (base.tar) is the root of
 * the tree; each tablespace archive <oid>.tar is stored under
 * ".bunker-tablespaces/<oid>/" (its location is in tablespace_map). The snapshot
 * "pg/<cluster>/base", kind "pg-base", is written only after the server reported
 * the backup's end; its metadata holds: system_identifier, timeline, start_lsn,
 * stop_lsn, stop_timeline, server_version, backup_label, tablespace_map.
 *
 * A server older than PostgreSQL 15 is refused (-EPROTONOSUPPORT) before anything
 * is asked of it or written.
 *
 * The server's system identifier is checked against (or recorded as) the
 * cluster's (pg/walarchive.h), so a base backup and the WAL archive always belong
 * to the same system; o->warn is told when that records a cluster name new here
 * whose system another cluster of the repository has (bk_cluster_claim).
 *
 * A backup restores only with its WAL. When the repository already holds WAL of
 * the cluster, the server is a primary and archive_timeout_s is not 0, the server
 * is not asked to wait for the archiving (it looks only once a second): once the
 * snapshot is written and the connection closed, bk_pg_basebackup() waits up to
 * archive_timeout_s for the chain from the backup's start to its stop to be in the
 * repository (pg/walchain.h). If it is not, it fails (-ETIMEDOUT naming the file
 * missing, or the error that kept it from checking) with *ret_snap already set: the
 * snapshot stays, and restores once the WAL arrives. Otherwise the server waits
 * for its archive_command as PostgreSQL's rules say (on a standby, only with
 * archive_mode = always), and if the repository then lacks WAL the backup needs,
 * o->warn is told which file (the backup restores once that is stored), and when
 * the repository holds it under another cluster of the same system, that one's
 * name (a wrong --cluster: archive_command pushes under the other).
 *
 * Unchanged files: the server sends every byte of every file, but a file of the
 * data directory that bk_basebackup_unchanged() finds unchanged since the
 * cluster's previous base backup (the parent) is not chunked or hashed: its
 * content is the parent's. The metadata then also holds reused_files and
 * reused_bytes. Files of tablespaces are always read (their archives come before
 * base.tar, whose backup_label dates the backup). Nothing is reused when the
 * labels show another server or history (bk_basebackup_label_follows(): another
 * BACKUP FROM, a START TIMELINE other than the one the parent stopped on, a START
 * WAL LOCATION before the parent's stop, a clock that did not move forward), when a
 * parent file's chunks are not all in the index, or with no_reuse.
 */
#ifndef BK_PG_BASEBACKUP_H
#define BK_PG_BASEBACKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "store/archiver.h"
#include "store/repo.h"
#include "store/tree.h"

#define BK_TABLESPACE_DIR ".bunker-tablespaces"
/* Files are cut into blocks of 4 pages from their start (docs/design.md). */
#define BK_BASEBACKUP_BLOCK (32u << 10)

typedef struct {
	const char *conninfo;
	const char *cluster;
	const char *host;
	bool fast_checkpoint;
	bool no_reuse; /* read every file, take none from the previous base backup */
	bool no_verify_checksums; /* BkPgReplBackupOptions.no_verify_checksums */
	/* With WAL of the cluster in the repository: how long to wait, once the
	 * snapshot is written, for the WAL it needs to arrive (0: the server waits). */
	unsigned archive_timeout_s;
	uint32_t max_rate_kb; /* the server sends at most this many kB/s (32..1048576; 0: no cap) */
	/* Fail once the server, after it began to send the files, sends nothing for this
	 * many seconds (0: wait for ever); BkPgReplBackupOptions.stall_timeout_s. */
	unsigned stall_timeout_s;
	BkProgressFn progress;
	void *progress_ud;
	/* Called (optional) with the server's WARNINGs ("server: skipping special file
	 * ...": a file BASE_BACKUP leaves out), bk_cluster_claim's warning of another
	 * cluster of the same system, and when the snapshot is saved but the
	 * repository lacks WAL it needs, or it cannot be checked, and nothing waited
	 * for it here (msg names the first file missing). msg is valid during the call
	 * only. */
	void (*warn)(void *ud, const char *msg);
	void *warn_ud;
} BkBaseBackupOpts;

int bk_pg_basebackup(BkRepo *r, const BkBaseBackupOpts *o, uint8_t ret_snap[32]);

/* Whether a file of size bytes with tar mtime `mtime` (the server's clock, whole
 * seconds) is the file the parent base backup holds as `parent` (NULL: none):
 * same size, same mtime, and that mtime earlier than parent_start, the second
 * in which the server started sending the parent's files (its backup_label's
 * mtime). Any write since the parent read the file happened at parent_start or
 * later, so it moved the mtime; a write within the second the parent read the
 * file can therefore not go unseen. Assumes the server's clock does not go
 * backwards. Pure. */
bool bk_basebackup_unchanged(const BkTreeEntry *parent, int64_t parent_start, uint64_t size,
			     int64_t mtime);

/* What of the parent base backup decides whether files may be taken from it. */
typedef struct {
	char *label;       /* its backup_label (owned by whoever fills this) */
	int64_t start;     /* its backup_label's tar mtime */
	uint32_t stop_tli; /* the timeline it stopped on */
	uint64_t stop_lsn;
} BkParentBackup;

/* Whether a base backup whose backup_label is `label`, stamped `mtime` by the
 * server, follows the parent on the same server and history: the same BACKUP
 * FROM, a START TIMELINE equal to the parent's stop timeline, a START WAL LOCATION
 * at or after the parent's stop LSN, and an mtime later than the parent's start
 * (the clock moved forward). After a failover (a new timeline), from another
 * server of another role, or from one whose WAL positions are behind, no file is
 * reused. Pure. */
bool bk_basebackup_label_follows(const BkParentBackup *parent, const char *label, int64_t mtime);

#endif
