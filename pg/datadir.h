/* pg/datadir.h: the data directory pg restore writes from a base backup, once
 * pg/recovery.c has chosen the backup and proved the WAL chain: the files of the
 * data directory and of each tablespace (at its location, or where
 * --tablespace-mapping moves it), tablespace_map, recovery.signal and the
 * recovery settings in postgresql.auto.conf, whose restore_command calls
 * `bunker pg wal-fetch`.
 */
#ifndef BK_PG_DATADIR_H
#define BK_PG_DATADIR_H

#include <stdbool.h>
#include <stdint.h>

#include "pg/recovery.h"
#include "store/repo.h"
#include "store/snapshot.h"

/* Writes base backup s into o->target_dir and its tablespaces' locations, with
 * the recovery settings for a target time target_us (0: none; o has the others)
 * along timeline want_tli (BK_TLI_*, or an id). Before writing anything it refuses:
 * with -EEXIST a data directory or location that is not empty (naming the marker a
 * killed restore left, BK_RESTORE_MARKER), with BK_E_USAGE a bad or overlapping
 * --tablespace-mapping, a data directory or location in r's repository and, with o->restore_owner, o->server_needs that the owner
 * of the backup's PG_VERSION cannot reach. Missing directories above the target
 * and the locations are made 0755. A failure after writing began (o->stop set
 * included) empties what it wrote, and removes the data directory and locations
 * it made (not those above them), saying so in the error's detail. With
 * no_prefetch, recovery_prefetch is set off (WAL past what the target needs lacks
 * its data: recovery must not read ahead into it). */
int bk_pg_datadir_write(BkRepo *r, const BkSnapshot *s, const BkPgRestoreOpts *o,
			int64_t target_us, uint32_t want_tli, bool no_prefetch);

/* Checks the form of o's --tablespace-mapping: each OLD=NEW two absolute paths, and
 * no OLD mapped twice. BK_E_USAGE otherwise. bk_pg_restore checks it before it
 * reads the archive, bk_pg_datadir_write again. */
int bk_pg_ts_mapping_check(const BkPgRestoreOpts *o);

/* The postgresql.auto.conf a restore starts from (and its postgresql.conf): conf
 * with every line that sets restore_command, a recovery_target* setting,
 * archive_cleanup_command, recovery_end_command or (when archive_off) archive_mode
 * commented out ("#bunker# " in front), so that the block an earlier restore left
 * (in a backup of a server that was itself restored) neither adds a second target
 * nor keeps an old one. Names compare as PostgreSQL's do (any case). Returns a
 * malloc'd string, or NULL when out of memory. Pure. */
char *bk_pg_auto_conf_clear(const char *conf, bool archive_off);

#endif
