/* pg/walarchive.h: the WAL archive: PostgreSQL's archive_command and
 * restore_command on top of the store.
 *
 * Each archived file (segment, .partial, .history, .backup) is chunked into the
 * store like any stream and described by one WAL record, a named record at
 * "wal/<cluster>/<file name>" (store/repo.h), written create-only after its packs
 * are durable and indexed. A cluster record at "clusters/<cluster>" holds the
 * system identifier seen in the first segment pushed; segments of any other
 * system are refused, so two clusters never share an archive by accident.
 * Two cluster names of one system are allowed (a restored copy promoted to a new
 * production keeps its system identifier), but whoever creates a cluster record
 * is told of another cluster of the same system (a wrong --cluster splits an
 * archive): only then, so a push that finds the record reads no other.
 *
 * WAL record format (version 4):
 *   u8 version=4 | str file name | varint size | u64 system id (0: not a segment)
 *   | u32 timeline | svarint pushed_us | u8 end_rev
 *   | [if end_rev != 0: varint end.lsn | svarint end.xact_us | svarint end.cut_xact_us
 *      | u8 end.flags (bit 0 cut_xact, bit 1 stopped, bit 2 carry; others refused)
 *      | [if carry: varint carry.lsn | u8 carry.head (8, 16 or 24) | carry.head bytes
 *         of the cut record's header | u32 carry.crc (0 unless head is 24)]]
 *   | content node (store/content.h)
 * end is the segment's BkWalEnd (pg/wal.h), walked by the pusher from the bytes it
 * stores, so that finding the last transaction before a time target reads records,
 * not segments; only segments have one. end_rev is the revision of the walker that
 * computed it (BK_WAL_END_REV, pg/wal.h; 0: no end): an end of any other revision
 * is decoded but not used (has_end false), so a segment walked by a walker fixed
 * since, or by a later one, is fetched and walked again by this one. The carry
 * (BkWalCarry) is what the segment holds of the record its end cuts: the push of
 * the next segment checks that record's CRC across the two. Version 3 (written
 * from 8ebaa79 until 2026-11-23) is the same without a carry. Version 2 (from
 * commit ac7dc8e until 8ebaa79, 2026-11-22) is the
 * same with a flags byte of cut_xact alone (0 or 1): its ends say nothing of
 * stopped (read as false). Version 1 (before ac7dc8e) is the same without end_rev
 * and end. All are still read. A bunker cannot read versions after its own: it
 * refuses the record (BK_E_VERSION), so hosts that restore are upgraded first.
 * A re-pushed file is compared byte by byte with the archived copy.
 * Cluster record format (version 1): u8 version=1 | str cluster | u64 system id
 *   | u32 wal segment size
 *
 * Contracts (invariant 2, PITFALLS.md):
 * - push returns 0 only once the file is durable. The same name with the same
 *   bytes again returns 0 (*ret_stored false); with different bytes BK_E_MISMATCH.
 * - fetch writes the exact bytes to a temporary file beside dest and renames it
 *   into place; on any failure nothing is left at dest. -ENOENT only for a file
 *   the archive does not have, including .history files PostgreSQL probes; a
 *   cluster with no WAL here at all where it should have some (no cluster record,
 *   or its wal/<cluster> missing or empty while base backups of it are here) is
 *   BK_E_USAGE (a wrong restore_command, or a repository not all there: recovery
 *   must stop, not take it for the archive's end), a blob the record names but
 *   the store lacks BK_E_CORRUPT.
 *
 * Thread-safety: as the repository (any number of processes may push at once).
 */
#ifndef BK_PG_WALARCHIVE_H
#define BK_PG_WALARCHIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "pg/wal.h"
#include "store/check.h"
#include "store/codec.h"
#include "store/content.h"
#include "store/idset.h"
#include "store/repo.h"

#define BK_CLUSTER_NAME_MAX 64
#define BK_CLUSTER_WARNING_MAX 256
#define BK_WAL_ZSTD_LEVEL 1 /* WAL is compressed faster than the repository's default */
/* WAL files are cut into fixed blocks from their start, not content-defined
 * chunks: a segment's bytes repeat only at the same offsets (a re-push, a
 * standby's copy, a new timeline's first segment), where fixed blocks find them
 * too, and FastCDC's scan was 7% of a push's CPU. 128 KiB: zstd level 1
 * compresses pgbench WAL 6% smaller than in ~64 KiB pieces, and four blocks to a
 * batch keep the hash lanes busier than two of 256 KiB (docs/design.md). */
#define BK_WAL_BLOCK (128u << 10)

typedef struct {
	char name[BK_WAL_NAME_MAX];
	uint64_t size, sysid;
	uint32_t tli;
	int64_t pushed_us;
	bool has_end;  /* end was walked by this build's walker (BK_WAL_END_REV) */
	BkWalEnd end;
	BkContentNode content; /* owned */
} BkWalRecord;

void bk_wal_record_release(BkWalRecord *w);
/* Version 3, with end_rev BK_WAL_END_REV when w->has_end. */
int bk_wal_record_encode(const BkWalRecord *w, BkEnc *enc);
int bk_wal_record_decode(const uint8_t *p, size_t len, BkWalRecord *ret);

/* Cluster names: 1..64 of [A-Za-z0-9_.-], not starting with '.'. */
bool bk_cluster_name_valid(const char *name);

/* The cluster's system identifier and segment size: -ENOENT before the first
 * segment was pushed. */
int bk_cluster_get(BkRepo *r, const char *cluster, uint64_t *ret_sysid, uint32_t *ret_seg_size);
/* Records the cluster's identity, or checks it against the one recorded:
 * BK_E_MISMATCH naming both identifiers if they differ. When this call created
 * the record and another cluster of the repository has system sysid, ret_warning
 * (if not NULL) says so in one line ("system N is also archived here as cluster
 * 'main' (--cluster main?)"); else it is "". */
int bk_cluster_claim(BkRepo *r, const char *cluster, uint64_t sysid, uint32_t seg_size,
		     char ret_warning[BK_CLUSTER_WARNING_MAX]);
/* The name of a cluster other than `cluster` whose record holds system sysid and,
 * when wal is not NULL, whose archive holds the file wal; "" when there is none.
 * Records that do not read are passed over. Lists every cluster record. */
int bk_cluster_same_system(BkRepo *r, const char *cluster, uint64_t sysid, const char *wal,
			   char ret[BK_CLUSTER_NAME_MAX + 1]);

/* ret_warning (optional): bk_cluster_claim's, for a segment that created the
 * cluster's record. */
int bk_wal_push(BkRepo *r, const char *cluster, const char *path, bool *ret_stored,
		char ret_warning[BK_CLUSTER_WARNING_MAX]);
/* durable: dest's bytes, and its name in its directory, are synced before 0 (a
 * read-ahead spool's file, pg/walspool.h); PostgreSQL copies what it reads. */
int bk_wal_fetch(BkRepo *r, const char *cluster, const char *name, const char *dest,
		 bool durable);
int bk_wal_record_get(BkRepo *r, const char *cluster, const char *name, BkWalRecord *ret);

/* An archived file's bytes in an unnamed file: in the repository's tmp/, or in
 * memory when the repository is read-only here. *ret_fd to close. */
int bk_wal_record_to_fd(BkRepo *r, const BkWalRecord *w, int *ret_fd);

/* Refused pushes. A push refused for other bytes under an archived name
 * (BK_E_MISMATCH) leaves a refusal record at "refused/<cluster>/<file name>",
 * create-only: the first refusal of each name (best effort: the push fails the
 * same whatever becomes of it). The server whose push it was retries that file
 * for ever and archives nothing after it, while the archive may go on with
 * another server's WAL under the same names (a copy of the primary started with
 * its archive_command): pg info and pg restore say so from these records.
 * Refusal record format (version 1): u8 version=1 | str file name
 *   | svarint refused_us | u8 cut (1: the archived copy stops short where the
 *   refused file goes on) */
typedef struct {
	char name[BK_WAL_NAME_MAX];
	int64_t refused_us;
	bool cut;
} BkWalRefusal;
/* The cluster's refusal records, in name order (*ret owned, free()); a record that
 * does not read fails the call, naming it. */
int bk_wal_refusals(BkRepo *r, const char *cluster, BkWalRefusal **ret, size_t *ret_n);

/* Whether what wal-fetch would read of an archived file is there, without reading
 * it: each of its blobs indexed, in a pack that exists. 0, or BK_E_CORRUPT naming
 * the file, the blob and the pack. packs: the packs found so far (the caller's,
 * kept across calls, so that each is looked at once). */
int bk_wal_record_stored(BkRepo *r, const BkWalRecord *w, BkIdSet *packs);
/* The history of timeline tli as archived (bk_wal_history_parse's entries, oldest
 * first): -ENOENT when its history file is not archived, BK_E_CORRUPT naming it
 * when it does not parse or is over 1 MiB. */
int bk_wal_history_get(BkRepo *r, const char *cluster, uint32_t tli, BkWalTliSwitch *ret,
		       size_t max, size_t *ret_n);

/* For `bunker check` (store/check.h's bk_check knows no WAL record): every
 * cluster record, every archived file and every refusal record of every cluster,
 * each record read (authenticated, its name checked) and, for a file, each of its
 * blobs indexed in a
 * pack that exists (bk_wal_record_stored). Each problem is reported through cb,
 * one line naming the object; returns how many (>= 0), or < 0 if it could not run. */
int bk_wal_check(BkRepo *r, BkReportFn cb, void *ud);

/* Calls cb with every archived file name of the cluster (unordered). */
typedef int (*BkWalNameFn)(void *ud, const char *name);
int bk_wal_foreach(BkRepo *r, const char *cluster, BkWalNameFn cb, void *ud);
/* Whether the archive holds any file of the cluster (stops at the first). */
int bk_wal_any(BkRepo *r, const char *cluster, bool *ret);
/* Whether the archive holds the file `name` of the cluster (one stat, no read). */
int bk_wal_has(BkRepo *r, const char *cluster, const char *name, bool *ret);

#endif
