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
 * The server's system identifier is checked against (or recorded as) the
 * cluster's (pg/walarchive.h), so a base backup and the WAL archive always belong
 * to the same system.
 */
#ifndef BK_PG_BASEBACKUP_H
#define BK_PG_BASEBACKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "store/archiver.h"
#include "store/repo.h"

#define BK_TABLESPACE_DIR ".bunker-tablespaces"
#define BK_BASEBACKUP_CHUNK_DIVISOR 4 /* chunk sizes: the repository's / 4 */

typedef struct {
	const char *conninfo;
	const char *cluster;
	const char *host;
	bool fast_checkpoint;
	BkProgressFn progress;
	void *progress_ud;
} BkBaseBackupOpts;

int bk_pg_basebackup(BkRepo *r, const BkBaseBackupOpts *o, uint8_t ret_snap[32]);

#endif
