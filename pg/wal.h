/* pg/wal.h: PostgreSQL WAL file names, LSNs, segment page headers and timeline
 * history files.
 *
 * Place in the data flow: `bunker pg wal-push` and the WAL streaming loop name,
 * classify and check every WAL file before it is stored; wal-fetch and PITR map
 * LSNs and timelines back to file names. Nothing here does I/O: every function
 * works on caller-owned buffers, allocates nothing and is thread-safe.
 *
 * Names (as written by PostgreSQL, upper-case hex only, nothing else accepted):
 *   segment          TTTTTTTTXXXXXXXXYYYYYYYY              (24 hex digits)
 *   partial segment  TTTTTTTTXXXXXXXXYYYYYYYY.partial
 *   timeline history TTTTTTTT.history
 *   backup history   TTTTTTTTXXXXXXXXYYYYYYYY.OOOOOOOO.backup (OOOOOOOO: offset of the
 *                    backup's start LSN inside the segment)
 * TTTTTTTT is the timeline (never 0). XXXXXXXX/YYYYYYYY are the high and low parts
 * of the segment number: segno = X * (2^32 / wal_segment_size) + Y, so the same
 * name means a different segment number under a different wal_segment_size; that is
 * why every segno conversion takes the segment size.
 *
 * LSNs are the 64-bit WAL positions written "%X/%X" ("16/B374D848").
 *
 * Page header: the first XLOG_BLCKSZ page of every segment starts with
 * XLogLongPageHeaderData (layout stable since 9.x; the magic changes with each
 * major version). Fields are in the server's byte order; bunker's supported
 * platforms (x86-64, arm64) and PostgreSQL's on them are little-endian, and a
 * big-endian file fails the magic check rather than being misread.
 *   off  0 u16 xlp_magic     (0xD10D PG14, 0xD110 PG15, 0xD113 PG16, 0xD116 PG17)
 *   off  2 u16 xlp_info      (XLP_LONG_HEADER 0x0002 must be set; bits outside 0x000F refused)
 *   off  4 u32 xlp_tli       timeline of the first record on the page
 *   off  8 u64 xlp_pageaddr  LSN of the page: segno * seg_size for a segment's first page
 *   off 16 u32 xlp_rem_len
 *   off 24 u64 xlp_sysid     pg_control's system identifier
 *   off 32 u32 xlp_seg_size
 *   off 36 u32 xlp_xlog_blcksz
 *
 * Errors: BK_E_USAGE for a name, LSN or size argument that is not valid (this
 * includes "not a WAL file name"), BK_E_CORRUPT for bytes that fail a check (page
 * header, history file), -ENOSPC when a caller's buffer is too small. Output
 * parameters are left untouched on failure.
 */
#ifndef BK_PG_WAL_H
#define BK_PG_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Buffer sizes (including the NUL) for names and LSNs written by this module. */
#define BK_WAL_NAME_MAX 48  /* longest: backup history, 40 chars */
#define BK_WAL_LSN_MAX 18   /* "FFFFFFFF/FFFFFFFF" */

#define BK_WAL_SEG_SIZE_DEFAULT (16u * 1024 * 1024)
#define BK_WAL_LONG_HEADER_SIZE 40

typedef enum {
	BK_WAL_SEGMENT = 1,    /* a complete segment */
	BK_WAL_PARTIAL,        /* a segment's .partial (end of an old timeline, or a receiver's) */
	BK_WAL_HISTORY,        /* a timeline's .history file */
	BK_WAL_BACKUP_HISTORY, /* a .backup file written by pg_backup_stop */
} BkWalKind;

typedef struct {
	BkWalKind kind;
	uint32_t tli;
	uint32_t log; /* XXXXXXXX (segment kinds only, else 0) */
	uint32_t seg; /* YYYYYYYY (segment kinds only, else 0) */
	uint32_t offset; /* OOOOOOOO (backup history only, else 0) */
} BkWalName;

/* True if size is a valid wal_segment_size: a power of two from 1 MiB to 1 GiB. */
bool bk_wal_seg_size_valid(uint32_t seg_size);
/* Reads wal_segment_size as PostgreSQL shows it ("16MB", "1GB", "1024kB") or as
 * pg_settings gives it (bytes); BK_E_CORRUPT unless it is a valid size. */
int bk_wal_seg_size_parse(const char *s, uint32_t *ret);

/* Parses and classifies a bare file name (no directory). BK_E_USAGE if it is none
 * of the four kinds, for example "RECOVERYHISTORY" or lower-case hex. */
int bk_wal_name_parse(const char *name, BkWalName *ret);

/* The segment number of a segment-kind name (segment, partial, backup history);
 * BK_E_USAGE for a history file, an invalid seg_size, or a YYYYYYYY field that is
 * out of range for seg_size. */
int bk_wal_name_segno(const BkWalName *name, uint32_t seg_size, uint64_t *ret_segno);

/* Writes the 24-character segment name of (tli, segno) into out (size >= 25).
 * BK_E_USAGE for tli 0, an invalid seg_size or a segno beyond the 64-bit LSN space. */
int bk_wal_segment_name(char *out, size_t size, uint32_t tli, uint64_t segno, uint32_t seg_size);

/* The same segment's .partial name (a promoted server's last segment of its old
 * timeline): "<segment name>.partial" (size >= 33). */
int bk_wal_partial_name(char *out, size_t size, uint32_t tli, uint64_t segno, uint32_t seg_size);

/* The segment name that follows name (a segment or partial name) on the same
 * timeline. BK_E_USAGE past the last segment. */
int bk_wal_segment_next(char *out, size_t size, const char *name, uint32_t seg_size);

/* The segment that contains lsn on timeline tli. */
int bk_wal_lsn_segment_name(char *out, size_t size, uint32_t tli, uint64_t lsn, uint32_t seg_size);

/* "TTTTTTTT.history". BK_E_USAGE for tli 0. */
int bk_wal_history_name(char *out, size_t size, uint32_t tli);

/* Parses "X/Y" (1 to 8 hex digits each side, either case, nothing else). */
int bk_wal_lsn_parse(const char *s, uint64_t *ret_lsn);

/* Writes "%X/%X" as PostgreSQL does (upper case, no leading zeros). */
int bk_wal_lsn_format(char *out, size_t size, uint64_t lsn);

/* The PostgreSQL major version (14..17) whose WAL carries this page magic, or 0. */
int bk_wal_magic_version(uint16_t magic);

typedef struct {
	uint16_t magic;
	int pg_major;       /* from the magic */
	uint16_t info;
	uint32_t tli;       /* xlp_tli: may be lower than the name's timeline on the first
	                       segment of a new timeline, which starts as a copy */
	uint64_t pageaddr;
	uint32_t rem_len;
	uint64_t sysid;
	uint32_t seg_size;
	uint32_t blcksz;
} BkWalHeader;

/* Parses and checks the long page header at the start of a segment: buf holds at
 * least the first BK_WAL_LONG_HEADER_SIZE bytes of the file. Checks: known magic,
 * XLP_LONG_HEADER set and no unknown flag bits, valid segment and block sizes,
 * timeline non-zero, pageaddr on a segment boundary. If name is not NULL it must be
 * a segment or partial name, and the header must belong to it: pageaddr equals the
 * name's segment under the header's segment size, and xlp_tli is not above the
 * name's timeline. A recycled segment renamed into place, a file from another
 * position or a truncated file fails with BK_E_CORRUPT. The caller compares sysid
 * with the repository's (two clusters must never share an archive). */
int bk_wal_header_parse(const void *buf, size_t len, const char *name, BkWalHeader *ret);

/* The record a segment's end cuts, as much of it as the segment holds, for the
 * next segment's walk to check its CRC across the two: its start LSN, the first
 * `head` bytes of its 24-byte header (8, 16 or 24; 0: no record is cut, or the
 * walk ended before), and the CRC-32C (bk_crc32c's running value) of its bytes
 * after the header that lie here (0 when head < 24: none do). */
#define BK_WAL_RP_BODY 96 /* a restore point's bytes after XLogRecord: 82 at most */
typedef struct {
	uint64_t lsn;
	uint8_t hdr[24];
	uint8_t head;
	uint32_t crc;
	/* In memory only (not in WAL records, pg/walarchive.h): when head is 24 and the
	 * record is a restore point or a transaction's end, its first nbody bytes after
	 * the header, for bk_wal_walk's visitor in the next segment. */
	uint8_t nbody;
	uint8_t body[BK_WAL_RP_BODY];
} BkWalCarry;

/* What a segment's WAL reaches: the LSN of the last record recovery reads whole
 * by the segment's end (the last that lies whole in it; when none does, the one
 * that began in the segment before, if it was checked across the two, see
 * bk_wal_last_record), and the latest time a transaction whose record lies whole
 * in it ended (a commit or abort record, as PostgreSQL stops a time target; unix
 * microseconds), each 0 if none. The record the segment's end cuts (it goes on
 * into the next segment), when it ends a transaction: its time if the part here
 * holds it (cut_xact_us), else cut_xact, also when its header is cut too and its
 * type unknown; and what the segment holds of it (carry). */
typedef struct {
	uint64_t lsn;
	int64_t xact_us;
	int64_t cut_xact_us;
	bool cut_xact;
	BkWalCarry carry;
	/* The walk ended before the segment's end, where recovery ends too: zeros, a
	 * page or record that is not this segment's WAL after the last one, a damaged
	 * record (its CRC), or a record from the segment before that fails its check
	 * across the two. An archived segment, which PostgreSQL archives
	 * complete, never does unless damaged: its WAL ends at an XLOG_SWITCH, at its
	 * end, or in a record that goes on into the next segment. */
	bool stopped;
} BkWalEnd;

/* Whether a segment's end says one record covers the segment: not stopped, and no
 * record read whole in it (nor a transaction's end, which is one). */
static inline bool bk_wal_end_inside(const BkWalEnd *end)
{
	return !end->lsn && !end->stopped && !end->xact_us;
}

/* The revision of bk_wal_last_record's answers, kept with each end wal-push records
 * (pg/walarchive.h): bump it with any change to what the walk answers for some
 * segment, so that the ends walked before are walked again. */
#define BK_WAL_END_REV 4 /* 1: before records' CRCs were checked; 2: before a segment
			   * that a switch record's tail begins was known to be whole; 3:
			   * before such a tail was told from another record's by the
			   * zeros after it */

/* The BkWalEnd of a segment (the file at fd, as archived; its name is `name`;
 * prev: the segment before's carry, or NULL when not known):
 * the last WAL record that lies whole in it, walking the records from its first
 * page, by
 * their lengths across page headers (a record cut by a crash, whose next page
 * does not continue it, is skipped as PostgreSQL does), up to a zero length, a
 * page whose header is not this segment's, a segment that the cut tail of an
 * XLOG_SWITCH begins (it uses the segment up), a record that does not name the one
 * before it (xl_prev) or fails its CRC-32C (xl_crc: damaged bytes, where recovery
 * stops too), an XLOG_SWITCH record (after which the segment holds no more) or the
 * segment's end. Recovery to an LSN needs a
 * record that begins at or after it and can be read: in the newest segment of an
 * archive, whose successor is missing, no target past this one is reachable, and
 * no time target at or after its last transaction's end. With prev (its head 8,
 * 16 or 24; any other is taken for none), the record that the segment before's end
 * cut is checked too: its CRC over both parts, the first page's contrecord flag
 * (unless PostgreSQL marked a crash's cut) and the next record's xl_prev. If that
 * fails, recovery stops before it, and the walk stops at once (stopped, lsn 0); if
 * it passes, it is the segment's lsn until a record lies whole here.
 * BK_E_CORRUPT if the first page is not the segment's (bk_wal_header_parse). */
int bk_wal_last_record(int fd, const char *name, const BkWalCarry *prev, BkWalEnd *ret);

/* A record bk_wal_walk read whole, its CRC checked: its LSN, xl_xid, xl_info and
 * xl_rmid; for a restore point (XLOG_RESTORE_POINT, what pg_create_restore_point
 * writes) its name, or NULL with unnamed set when its bytes before this segment
 * were not carried; xact_end for a commit or an abort (xid is then the transaction
 * PostgreSQL's recovery_target_xid compares), prepared_end for those of a prepared
 * transaction, with that transaction's xid (from the record's body) in
 * prepared_xid, 0 when the body could not be read (cut by the segment before's end
 * after more than BK_WAL_RP_BODY bytes, or over 1 MiB) or parsed; for either,
 * xact_us, when it ended (unix microseconds; 0 when its bytes before this segment
 * were not carried). Borrowed for the call. */
#define BK_WAL_RM_XACT 1 /* rmid of a transaction's records (PostgreSQL's RM_XACT_ID) */
typedef struct {
	uint64_t lsn;
	uint32_t xid;
	uint8_t info, rmid;
	const char *restore_point;
	bool unnamed, xact_end, prepared_end;
	uint32_t prepared_xid;
	int64_t xact_us;
} BkWalRec;

/* bk_wal_last_record, calling fn (when not NULL) with each record read whole: the
 * one the segment before's end cut, when prev lets it be checked, then those that
 * begin here and end by the segment's end, in WAL order. A restore point that the
 * segment's end cuts comes in the next segment's walk, given this one's carry. A
 * negative return of fn ends the walk with it. */
typedef int (*BkWalRecFn)(void *ud, const BkWalRec *rec);
int bk_wal_walk(int fd, const char *name, const BkWalCarry *prev, BkWalRecFn fn, void *ud,
		BkWalEnd *ret);

/* Timelines on one history, the newest included: a history file of a timeline
 * past it is refused at wal-push (-E2BIG), so it is far past what a cluster
 * reaches (256 was: a switchover a day for most of a year, found by review).
 * Chains (walchain.h) and pg info's per-timeline counts hold arrays of it. */
#define BK_MAX_TIMELINES 4096

/* One line of a timeline history file: timeline tli ended at end_lsn, where its
 * child timeline forked off. */
typedef struct {
	uint32_t tli;
	uint64_t end_lsn;
} BkWalTliSwitch;

/* Which timeline's file recovery reads for segment segno along a history of n
 * timelines, oldest first, the i-th beginning at LSN begin[i] (begin[0] unused):
 * the index of the newest one that had begun by the segment's start, as
 * PostgreSQL's XLogFileReadAnyTLI picks it. */
size_t bk_wal_path_index(const uint64_t *begin, size_t n, uint64_t segno, uint32_t seg_size);

/* Parses a timeline history file ("tli<TAB>X/Y<TAB>reason" lines; blank lines and
 * '#' comments skipped) held in buf (not NUL-terminated). Entries are stored into
 * ret[0..max) in file order and their count into *ret_n. Timelines must increase
 * strictly; switch points may decrease, as PostgreSQL writes them after a
 * recovery along a timeline to a point before it began (the last line names the
 * recovery target timeline, with the end of recovery). If file_tli is not 0 (the
 * timeline the file is named after), every entry must be below it. BK_E_CORRUPT on syntax or
 * order errors, -E2BIG if there are more than max entries; on failure *ret_n is
 * untouched and ret[] holds unspecified entries. */
int bk_wal_history_parse(const void *buf, size_t len, uint32_t file_tli, BkWalTliSwitch *ret,
                         size_t max, size_t *ret_n);

#endif
