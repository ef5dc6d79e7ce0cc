/* pg/walchain.h: the WAL chain of a cluster's archive, the one reading of it for
 * pg restore, pg info and basebackup's wait for its own WAL.
 *
 * The WAL chain follows one timeline's history (by default the newest, found as
 * PostgreSQL finds it): for each segment after the backup's start, the file
 * expected is the one of the newest timeline on that history that had begun by the
 * segment's start (as PostgreSQL's recovery picks it). A chain is complete up to a
 * point when every such segment is archived, and the history files of every
 * timeline after the first. Chains are computed on a BkWalArchive, the cluster's
 * archive listed once for any number of them; what the segments' WAL records say
 * (their last record, transactions, damage) is read through the repository.
 */
#ifndef BK_PG_WALCHAIN_H
#define BK_PG_WALCHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "pg/wal.h"
#include "pg/walarchive.h"
#include "store/repo.h"

/* Which timeline recovery follows (PostgreSQL's recovery_target_timeline). */
#define BK_TLI_LATEST 0u           /* the newest: the next while its history is archived */
#define BK_TLI_CURRENT UINT32_MAX  /* the backup's own */

/* The archive of one cluster: every file name (sorted) and the segment size
 * (the cluster record's; where that says 0, written so by basebackup or dump
 * before they asked the server, an archived segment's; else 16 MiB). */
struct BkWalHistories;
typedef struct {
	BkRepo *r;
	const char *cluster;
	uint64_t sysid; /* the cluster record's */
	uint32_t seg_size;
	char (*names)[BK_WAL_NAME_MAX];
	size_t n, cap;
	/* the history files read so far, kept while the archive is (owned): pg info
	 * reads a path's histories for each backup. The chain functions fill it
	 * through a const archive: one archive, one thread. */
	struct BkWalHistories *hist;
} BkWalArchive;

/* -ENOENT naming the cluster if the repository has no record of it. On failure
 * *ret is empty (releasing it is harmless). */
int bk_wal_archive_load(BkRepo *r, const char *cluster, BkWalArchive *ret);
void bk_wal_archive_release(BkWalArchive *a);
/* Whether the archive holds any file of timeline tli (a segment, its history...). */
bool bk_wal_archive_has_timeline(const BkWalArchive *a, uint32_t tli);

/* WAL archived only in a .partial where a chain ends: a promoted server archives
 * its old timeline's last segment, cut at the switch point, as NAME.partial, and the
 * new timeline's segment of that number (which holds that WAL too) only once that
 * segment is finished. PostgreSQL's recovery never fetches a .partial: until then,
 * recovery run to the end of the archive stops at the chain's end, short of the last
 * WAL written before the failover, without a word (found by review against a
 * promoted standby). */
typedef struct {
	char partial[BK_WAL_NAME_MAX]; /* the .partial's name; "" when none */
	char awaited[BK_WAL_NAME_MAX]; /* the path's segment that will hold that WAL
					* (next_needed, a newer timeline's); "" when
					* the path has none (it follows partial's
					* timeline: --target-timeline, or no newer
					* history archived) */
	uint32_t tli;                  /* partial's timeline */
	uint64_t end;                  /* where recovery stops: contiguous_end */
} BkWalPartial;

/* p as one line, for pg restore's warning and its refusals of a target past it:
 * "WAL past 0/7000000 on timeline 1 is archived only in ....partial, which
 * recovery does not read: until ... is archived, the restore ends at 0/7000000";
 * "" when p->partial is. */
#define BK_WAL_PARTIAL_NOTE_MAX 320
void bk_pg_wal_partial_note(const BkWalPartial *p, char out[BK_WAL_PARTIAL_NOTE_MAX]);

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
	 * an older timeline's file of that number is archived: recovery, not finding
	 * the one, tries each timeline on the path that had begun by that segment,
	 * newest first, down to the one whose file it read last (XLogFileReadAnyTLI),
	 * reads the first archived and replays its records past the switch point,
	 * going on along that timeline's history. Its index in tli[], or 0; fork_read:
	 * the index of the timeline whose file recovery reads (the parent's, or an
	 * older one's when several began in that segment). */
	size_t fork_unread, fork_read;
	/* next_needed is not archived yet (no gap, no fork), while the WAL after
	 * contiguous_end of the timeline the path follows there is, in that
	 * timeline's .partial of next_needed's number: what recovery without a target
	 * leaves unread. A .partial anywhere else is not (its WAL is in whole segments
	 * archived since, or off the path). */
	BkWalPartial partial;
} BkWalChain;

/* Examines the archive for the base backup (tli, start_lsn, stop_lsn) along
 * timeline want_tli (a number, BK_TLI_LATEST or BK_TLI_CURRENT; one older than the
 * backup's leaves it off the path). Every archived history file recovery would
 * fetch is read: BK_E_CORRUPT naming one that cannot be. */
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
 * as its old timeline's last, before it promotes, does not count, nor the parent's
 * segment holding the fork, its newest, when it holds no transaction's record at
 * or past the fork and no record goes on out of it (a primary stopped cleanly
 * after its standby was promoted archives its XLOG_SWITCH there). Only parents
 * from from_tli on count (0: all): a SNAPSHOT given on a timeline after a fork can
 * only follow it, while which backup is latest depends on the history followed.
 * The path is c's, or when c is a backup's own timeline alone, its history's. */
typedef struct {
	uint32_t parent, child;    /* 0: none went on */
	uint64_t fork;             /* the child's begin */
	char seg[BK_WAL_NAME_MAX]; /* the parent's segment archived after the child's history */
	/* parent is off the path: a timeline that forked, as the path did, from an
	 * older one (common, the last both histories share; fork: where they part) and
	 * archived after child's history, child the path's last (a second restore of
	 * the same backup promoted beside the first, both archiving here: PostgreSQL
	 * follows the newer, and would drop what the other archived as silently) */
	bool off_path;
	uint32_t common;
} BkWalWentOn;
/* from_lsn: with from_tli, the backup's start; a timeline off the path counts only
 * when the backup lies before the two histories part. */
int bk_pg_wal_went_on(const BkWalArchive *a, const BkWalChain *c, uint32_t from_tli,
		      uint64_t from_lsn, BkWalWentOn *ret);

/* Segment segno on c's path: of the timeline the path follows there. */
int bk_pg_wal_path_segment(const BkWalChain *c, uint64_t segno, char name[BK_WAL_NAME_MAX]);

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

/* The first segment on c's path, from start_lsn's up to but not c->last (or,
 * when `upto` is not 0, up to the one where the record that recovery reads at
 * `upto` ends: the segment after upto's, and on while each holds no record whole,
 * as the check of a record cut by a segment's end is recorded with the segment
 * it ends in), whose record says its walk stopped short of its end
 * (BkWalEnd.stopped, recorded at push by WAL record version 3): damage, since WAL
 * is archived after it, and recovery ends there.
 * (The newest segment of a path may end short without damage: a standby archives
 * its old timeline's last segment whole, zeros after the switch point. Recovery
 * ends there anyway, and the checks of the newest segment apply.) name "" when
 * none. *ret_reach: the LSN of the last record recovery reads, in it or (none
 * whole in it) in the segments before; 0 when not known. Records without an end
 * (pushed before, or by another walker revision) are not fetched: their segments
 * count as whole. */
int bk_pg_wal_first_stopped(BkRepo *r, const char *cluster, const BkWalChain *c,
			    uint64_t start_lsn, uint64_t upto, char name[BK_WAL_NAME_MAX],
			    uint64_t *ret_reach);

#endif
