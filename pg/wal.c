#include "pg/wal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg/crc32c.h"
#include "store/error.h"
#include "store/util.h"

#define XLP_FIRST_IS_CONTRECORD 0x0001
#define XLP_LONG_HEADER 0x0002
#define XLP_BKP_REMOVABLE 0x0004
#define XLP_FIRST_IS_OVERWRITE_CONTRECORD 0x0008
#define XLP_ALL_FLAGS 0x000F

#define SHORT_PAGE_HEADER 24 /* SizeOfXLogShortPHD (MAXALIGNed) */
#define RECORD_HEADER 24     /* SizeOfXLogRecord */
#define RECORD_CRC_AT 20     /* offsetof(XLogRecord, xl_crc) */
#define RM_XLOG_ID 0
#define XLOG_SWITCH 0x40
#define XLOG_RESTORE_POINT 0x70
#define RP_NAME_LEN 64 /* MAXFNAMELEN: xl_restore_point's rp_name, after its TimestampTz */
#define XLOG_XACT_OPMASK 0x70 /* commit 0x00, abort 0x20, commit/abort prepared 0x30/0x40 */
#define PG_EPOCH_UNIX_US INT64_C(946684800000000) /* 2000-01-01, TimestampTz's zero */
#define MAXALIGN8(x) (((x) + 7) & ~(uint64_t)7)

bool bk_wal_seg_size_valid(uint32_t seg_size)
{
	return seg_size >= (1u << 20) && seg_size <= (1u << 30) && (seg_size & (seg_size - 1)) == 0;
}

int bk_wal_seg_size_parse(const char *s, uint32_t *ret)
{
	static const struct {
		const char *unit;
		uint32_t shift;
	} units[] = { { "", 0 }, { "B", 0 }, { "kB", 10 }, { "MB", 20 }, { "GB", 30 } };
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	bool num = isdigit((unsigned char)s[0]) && !errno && v <= (1u << 30);
	for (size_t i = 0; num && i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0 || v > ((1ull << 30) >> units[i].shift))
			continue;
		uint32_t size = (uint32_t)(v << units[i].shift);
		if (!bk_wal_seg_size_valid(size))
			break;
		*ret = size;
		return 0;
	}
	return bk_errorf(BK_E_CORRUPT, "wal_segment_size '%.32s' is not a power of two from 1 MB "
			 "to 1 GB", s);
}

static uint64_t segs_per_xlogid(uint32_t seg_size) { return UINT64_C(0x100000000) / seg_size; }

/* Parses exactly n upper-case hex digits (PostgreSQL never writes lower case). */
static bool parse_hex_upper(const char *s, size_t n, uint32_t *ret)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		uint32_t d;
		if (c >= '0' && c <= '9')
			d = (uint32_t)(c - '0');
		else if (c >= 'A' && c <= 'F')
			d = (uint32_t)(c - 'A' + 10);
		else
			return false;
		v = (v << 4) | d;
	}
	*ret = v;
	return true;
}

static int not_wal_name(const char *name)
{
	return bk_errorf(BK_E_USAGE, "%.64s: not a wal file name", name);
}

int bk_wal_name_parse(const char *name, BkWalName *ret)
{
	BkWalName n = {0};
	size_t len = strlen(name);

	if (len == 8 + 8 && strcmp(name + 8, ".history") == 0) {
		if (!parse_hex_upper(name, 8, &n.tli))
			return not_wal_name(name);
		n.kind = BK_WAL_HISTORY;
	} else if (len >= 24) {
		if (!parse_hex_upper(name, 8, &n.tli) || !parse_hex_upper(name + 8, 8, &n.log) ||
		    !parse_hex_upper(name + 16, 8, &n.seg))
			return not_wal_name(name);
		const char *rest = name + 24;
		if (*rest == '\0')
			n.kind = BK_WAL_SEGMENT;
		else if (strcmp(rest, ".partial") == 0)
			n.kind = BK_WAL_PARTIAL;
		else if (strlen(rest) == 1 + 8 + 7 && rest[0] == '.' && strcmp(rest + 9, ".backup") == 0 &&
		         parse_hex_upper(rest + 1, 8, &n.offset))
			n.kind = BK_WAL_BACKUP_HISTORY;
		else
			return not_wal_name(name);
	} else
		return not_wal_name(name);

	if (n.tli == 0)
		return bk_errorf(BK_E_USAGE, "%s: timeline 0 is not valid", name);
	*ret = n;
	return 0;
}

int bk_wal_name_segno(const BkWalName *name, uint32_t seg_size, uint64_t *ret_segno)
{
	if (!bk_wal_seg_size_valid(seg_size))
		return bk_errorf(BK_E_USAGE, "wal segment size %u is not valid", seg_size);
	if (name->kind == BK_WAL_HISTORY)
		return bk_errorf(BK_E_USAGE, "a timeline history file has no segment number");
	uint64_t per = segs_per_xlogid(seg_size);
	if (name->seg >= per)
		return bk_errorf(BK_E_USAGE, "segment field %08X out of range for %u-byte segments",
		                 name->seg, seg_size);
	if (name->kind == BK_WAL_BACKUP_HISTORY && name->offset >= seg_size)
		return bk_errorf(BK_E_USAGE, "backup offset %08X beyond a %u-byte segment", name->offset,
		                 seg_size);
	*ret_segno = (uint64_t)name->log * per + name->seg;
	return 0;
}

/* Copies a formatted name of n bytes (snprintf's return) into the caller's buffer. */
static int put_name(char *out, size_t size, const char *what, const char *tmp, int n)
{
	if (n < 0 || (size_t)n >= size)
		return bk_errorf(-ENOSPC, "%s: buffer of %zu bytes too small", what, size);
	memcpy(out, tmp, (size_t)n + 1);
	return 0;
}

int bk_wal_segment_name(char *out, size_t size, uint32_t tli, uint64_t segno, uint32_t seg_size)
{
	if (tli == 0)
		return bk_errorf(BK_E_USAGE, "timeline 0 is not valid");
	if (!bk_wal_seg_size_valid(seg_size))
		return bk_errorf(BK_E_USAGE, "wal segment size %u is not valid", seg_size);
	uint64_t per = segs_per_xlogid(seg_size);
	if (segno / per > UINT32_MAX)
		return bk_errorf(BK_E_USAGE, "segment number %llu out of range",
		                 (unsigned long long)segno);
	char tmp[BK_WAL_NAME_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%08X%08X%08X", tli, (uint32_t)(segno / per),
	                 (uint32_t)(segno % per));
	return put_name(out, size, "wal segment name", tmp, n);
}

int bk_wal_partial_name(char *out, size_t size, uint32_t tli, uint64_t segno, uint32_t seg_size)
{
	char seg[BK_WAL_NAME_MAX], tmp[BK_WAL_NAME_MAX];
	int e = bk_wal_segment_name(seg, sizeof(seg), tli, segno, seg_size);
	if (e < 0)
		return e;
	int n = snprintf(tmp, sizeof(tmp), "%s.partial", seg);
	return put_name(out, size, "wal partial name", tmp, n);
}

/* name parsed into *n: a segment's or a .partial's, anything else BK_E_USAGE. */
static int parse_segment_name(const char *name, BkWalName *n)
{
	int r = bk_wal_name_parse(name, n);
	if (r == 0 && n->kind != BK_WAL_SEGMENT && n->kind != BK_WAL_PARTIAL)
		r = bk_errorf(BK_E_USAGE, "%s: not a wal segment name", name);
	return r;
}

int bk_wal_segment_next(char *out, size_t size, const char *name, uint32_t seg_size)
{
	BkWalName n;
	uint64_t segno;
	int r = parse_segment_name(name, &n);
	if (r < 0)
		return r;
	r = bk_wal_name_segno(&n, seg_size, &segno);
	if (r < 0)
		return r;
	if (segno == UINT64_MAX / seg_size)
		return bk_errorf(BK_E_USAGE, "%s: last segment of the wal address space", name);
	return bk_wal_segment_name(out, size, n.tli, segno + 1, seg_size);
}

int bk_wal_lsn_segment_name(char *out, size_t size, uint32_t tli, uint64_t lsn, uint32_t seg_size)
{
	if (!bk_wal_seg_size_valid(seg_size))
		return bk_errorf(BK_E_USAGE, "wal segment size %u is not valid", seg_size);
	return bk_wal_segment_name(out, size, tli, lsn / seg_size, seg_size);
}

int bk_wal_history_name(char *out, size_t size, uint32_t tli)
{
	if (tli == 0)
		return bk_errorf(BK_E_USAGE, "timeline 0 is not valid");
	char tmp[BK_WAL_NAME_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%08X.history", tli);
	return put_name(out, size, "timeline history name", tmp, n);
}

/* Parses 1..8 hex digits at s[*pos..] stopping at the first non-hex byte (or at end
 * when end is given). */
static bool parse_lsn_half(const char *s, size_t len, size_t *pos, uint32_t *ret)
{
	uint32_t v = 0;
	size_t i = *pos, start = *pos;
	while (i < len && bk_hex_value(s[i]) >= 0) {
		if (i - start == 8)
			return false;
		v = (v << 4) | (uint32_t)bk_hex_value(s[i]);
		i++;
	}
	if (i == start)
		return false;
	*pos = i;
	*ret = v;
	return true;
}

/* Parses an LSN at the start of s[0..len); *ret_used gets the bytes consumed. */
static bool parse_lsn_prefix(const char *s, size_t len, uint64_t *ret, size_t *ret_used)
{
	size_t pos = 0;
	uint32_t hi, lo;
	if (!parse_lsn_half(s, len, &pos, &hi))
		return false;
	if (pos >= len || s[pos] != '/')
		return false;
	pos++;
	if (!parse_lsn_half(s, len, &pos, &lo))
		return false;
	*ret = ((uint64_t)hi << 32) | lo;
	*ret_used = pos;
	return true;
}

int bk_wal_lsn_parse(const char *s, uint64_t *ret_lsn)
{
	size_t len = strlen(s), used;
	uint64_t lsn;
	if (!parse_lsn_prefix(s, len, &lsn, &used) || used != len)
		return bk_errorf(BK_E_USAGE, "\"%.40s\": not a wal location", s);
	*ret_lsn = lsn;
	return 0;
}

int bk_wal_lsn_format(char *out, size_t size, uint64_t lsn)
{
	char tmp[BK_WAL_LSN_MAX + 8];
	int n = snprintf(tmp, sizeof(tmp), "%X/%X", (uint32_t)(lsn >> 32), (uint32_t)lsn);
	return put_name(out, size, "wal location", tmp, n);
}

int bk_wal_magic_version(uint16_t magic)
{
	switch (magic) {
	case 0xD10D: return 14;
	case 0xD110: return 15;
	case 0xD113: return 16;
	case 0xD116: return 17;
	default: return 0;
	}
}

int bk_wal_header_parse(const void *buf, size_t len, const char *name, BkWalHeader *ret)
{
	const uint8_t *p = buf;
	const char *what = name ? name : "wal segment";
	BkWalHeader h;

	if (len < BK_WAL_LONG_HEADER_SIZE)
		return bk_errorf(BK_E_CORRUPT, "%s: %zu bytes, too short for a wal page header", what,
		                 len);
	h.magic = bk_get_le16(p);
	h.info = bk_get_le16(p + 2);
	h.tli = bk_get_le32(p + 4);
	h.pageaddr = bk_get_le64(p + 8);
	h.rem_len = bk_get_le32(p + 16);
	h.sysid = bk_get_le64(p + 24);
	h.seg_size = bk_get_le32(p + 32);
	h.blcksz = bk_get_le32(p + 36);
	h.pg_major = bk_wal_magic_version(h.magic);

	if (h.pg_major == 0)
		return bk_errorf(BK_E_CORRUPT, "%s: unknown wal page magic 0x%04X", what, h.magic);
	if (!(h.info & XLP_LONG_HEADER))
		return bk_errorf(BK_E_CORRUPT, "%s: first page lacks the long header flag (info 0x%04X)",
		                 what, h.info);
	if (h.info & ~XLP_ALL_FLAGS)
		return bk_errorf(BK_E_CORRUPT, "%s: unknown wal page flags 0x%04X", what, h.info);
	if (!bk_wal_seg_size_valid(h.seg_size))
		return bk_errorf(BK_E_CORRUPT, "%s: invalid segment size %u in page header", what,
		                 h.seg_size);
	if (h.blcksz < 1024 || h.blcksz > 65536 || (h.blcksz & (h.blcksz - 1)) != 0)
		return bk_errorf(BK_E_CORRUPT, "%s: invalid wal block size %u in page header", what,
		                 h.blcksz);
	if (h.tli == 0)
		return bk_errorf(BK_E_CORRUPT, "%s: timeline 0 in page header", what);
	if (h.pageaddr % h.seg_size != 0)
		return bk_errorf(BK_E_CORRUPT, "%s: page address %X/%X is not a segment start", what,
		                 (uint32_t)(h.pageaddr >> 32), (uint32_t)h.pageaddr);

	if (name) {
		BkWalName n;
		uint64_t segno;
		int r = parse_segment_name(name, &n);
		if (r < 0)
			return r;
		r = bk_wal_name_segno(&n, h.seg_size, &segno);
		if (r < 0)
			return bk_errorf(BK_E_CORRUPT, "%s: name does not fit the header's %u-byte segments",
			                 name, h.seg_size);
		if (h.pageaddr / h.seg_size != segno)
			return bk_errorf(BK_E_CORRUPT,
			                 "%s: page header is for wal location %X/%X, not this segment",
			                 name, (uint32_t)(h.pageaddr >> 32), (uint32_t)h.pageaddr);
		if (h.tli > n.tli)
			return bk_errorf(BK_E_CORRUPT, "%s: page header timeline %u above the name's %u",
			                 name, h.tli, n.tli);
	}
	*ret = h;
	return 0;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

int bk_wal_history_parse(const void *buf, size_t len, uint32_t file_tli, BkWalTliSwitch *ret,
                         size_t max, size_t *ret_n)
{
	const char *s = buf;
	size_t pos = 0, n = 0, lineno = 0;
	uint32_t last_tli = 0;

	while (pos < len) {
		const char *nl = memchr(s + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - s) : len;
		size_t i = pos;
		lineno++;
		pos = nl ? end + 1 : len;

		while (i < end && is_space(s[i]))
			i++;
		if (i == end || s[i] == '#')
			continue;

		uint64_t tli = 0;
		size_t start = i;
		while (i < end && s[i] >= '0' && s[i] <= '9') {
			tli = tli * 10 + (uint64_t)(s[i] - '0');
			if (tli > UINT32_MAX)
				return bk_errorf(BK_E_CORRUPT, "history file line %zu: timeline out of range",
				                 lineno);
			i++;
		}
		if (i == start)
			return bk_errorf(BK_E_CORRUPT, "history file line %zu: expected a timeline id",
			                 lineno);
		if (i == end || !is_space(s[i]))
			return bk_errorf(BK_E_CORRUPT,
			                 "history file line %zu: expected a switch point location", lineno);
		while (i < end && is_space(s[i]))
			i++;
		uint64_t lsn;
		size_t used;
		if (!parse_lsn_prefix(s + i, end - i, &lsn, &used))
			return bk_errorf(BK_E_CORRUPT,
			                 "history file line %zu: expected a switch point location", lineno);
		i += used;
		if (i < end && !is_space(s[i]))
			return bk_errorf(BK_E_CORRUPT, "history file line %zu: junk after switch point",
			                 lineno);

		if (tli == 0 || tli <= last_tli)
			return bk_errorf(BK_E_CORRUPT,
			                 "history file line %zu: timeline ids must be in increasing order",
			                 lineno);
		if (file_tli != 0 && tli >= file_tli)
			return bk_errorf(BK_E_CORRUPT,
			                 "history file line %zu: timeline %u not below the file's %u", lineno,
			                 (uint32_t)tli, file_tli);
		if (n == max)
			return bk_errorf(-E2BIG, "history file: more than %zu timelines", max);
		ret[n].tli = (uint32_t)tli;
		ret[n].end_lsn = lsn;
		n++;
		last_tli = (uint32_t)tli;
	}
	*ret_n = n;
	return 0;
}

/* ---- records ---- */

#define READ_AHEAD (256u << 10) /* pages read at once: 32 reads for a 16 MiB segment, not 2048 */

typedef struct {
	int fd;
	BkWalHeader h;   /* the segment's first page */
	uint8_t *buf;    /* READ_AHEAD bytes: pages first.. of the segment, `pages` of them */
	uint64_t first, pages;
	uint8_t *page;   /* h.blcksz bytes in buf: the page load_page found last */
	int err;         /* a read that failed (the walk ends there) */
	bool past_end;   /* a record went on past the segment's end */
	uint64_t copied; /* the bytes the last consume() took */
	BkWalRecFn fn;   /* bk_wal_walk's visitor, or NULL */
	void *ud;
	int fn_err;      /* fn's failure (the walk ends there) */
} RecWalk;

/* Loads page pno of the segment: false when it is not one of this segment's pages
 * (zeros, or stale bytes of a recycled file) or cannot be read (w->err). */
static bool load_page(RecWalk *w, uint64_t pno)
{
	if (pno < w->first || pno >= w->first + w->pages) {
		ssize_t n = pread(w->fd, w->buf, READ_AHEAD, (off_t)(pno * w->h.blcksz));
		if (n < 0 && !w->err)
			w->err = bk_errorf_code(-errno, "read wal page %" PRIu64, pno);
		w->first = pno;
		w->pages = n > 0 ? (uint64_t)n / w->h.blcksz : 0;
		if (w->pages == 0)
			return false;
	}
	w->page = w->buf + (pno - w->first) * w->h.blcksz;
	return bk_get_le16(w->page) == w->h.magic &&
	       bk_get_le64(w->page + 8) == w->h.pageaddr + pno * w->h.blcksz;
}

typedef enum { STEP_OK, STEP_END, STEP_TORN } Step;

/* Consumes n bytes of a record from *pos (a segment offset), of which `left` bytes
 * (these included) remain, copying them to out if not NULL and stepping over the
 * page headers on the way. Each page the record goes on into must say so
 * (XLP_FIRST_IS_CONTRECORD, xlp_rem_len = the bytes left), as PostgreSQL's reader
 * wants: STEP_TORN, with *pos at that page's start, when the page says the record
 * was cut (a crash, and PostgreSQL 14+ marks the page that starts afresh
 * XLP_FIRST_IS_OVERWRITE_CONTRECORD); STEP_END when it says neither, at a wrong
 * xlp_rem_len, past the segment's end or at a page that is not the segment's.
 * The bytes taken go into *crc when it is not NULL. */
static Step consume(RecWalk *w, uint64_t *pos, uint64_t n, uint64_t left, uint8_t *out,
		    uint32_t *crc)
{
	w->copied = 0;
	while (n > 0) {
		if (*pos % w->h.blcksz == 0) {
			w->past_end = *pos >= w->h.seg_size;
			if (w->past_end || !load_page(w, *pos / w->h.blcksz))
				return STEP_END;
			uint16_t info = bk_get_le16(w->page + 2);
			if (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD)
				return STEP_TORN;
			if (!(info & XLP_FIRST_IS_CONTRECORD) || bk_get_le32(w->page + 16) != left)
				return STEP_END;
			*pos += SHORT_PAGE_HEADER;
		}
		uint64_t in = *pos % w->h.blcksz, take = BK_MIN(n, w->h.blcksz - in);
		if (crc)
			*crc = bk_crc32c(*crc, w->page + in, take);
		if (out) {
			memcpy(out, w->page + in, take); /* the page loaded is *pos's */
			out += take;
		}
		*pos += take;
		n -= take;
		left -= take;
		w->copied += take;
	}
	return STEP_OK;
}

/* Whether a record ends a transaction: a commit, an abort, or either of a
 * prepared one (what PostgreSQL stops a time target at). */
static bool is_xact_end(uint8_t rmid, uint8_t info)
{
	uint8_t op = info & XLOG_XACT_OPMASK;
	return rmid == BK_WAL_RM_XACT && (op == 0x00 || op == 0x20 || op == 0x30 || op == 0x40);
}

static bool is_prepared_end(uint8_t rmid, uint8_t info)
{
	uint8_t op = info & XLOG_XACT_OPMASK;
	return rmid == BK_WAL_RM_XACT && (op == 0x30 || op == 0x40);
}

static bool is_restore_point(const uint8_t *hdr)
{
	return hdr[17] == RM_XLOG_ID && (hdr[16] & 0xF0) == XLOG_RESTORE_POINT;
}

/* Whether a visitor is told more of a record than its header: a restore point's
 * name, a transaction end's time. */
static bool body_wanted(const uint8_t *hdr)
{
	return is_restore_point(hdr) || is_xact_end(hdr[17], hdr[16]);
}

/* Where the main data of a record without block references begins in body (the
 * record's first n bytes after XLogRecord), after the replication origin and
 * top-level xid these records may carry and the main data's own header; *len is
 * the main data's length. 0 when not found there (no record's data begins at 0). */
static size_t main_data_at(const uint8_t *body, size_t n, uint32_t *len)
{
	for (size_t i = 0; i < n;) {
		switch (body[i]) {
		case 255: /* XLR_BLOCK_ID_DATA_SHORT: u8 length, then the data */
			if (i + 2 > n)
				return 0;
			*len = body[i + 1];
			return i + 2;
		case 254: /* XLR_BLOCK_ID_DATA_LONG: u32 length */
			if (i + 5 > n)
				return 0;
			*len = bk_get_le32(body + i + 1);
			return i + 5;
		case 253: /* XLR_BLOCK_ID_ORIGIN: RepOriginId */
			i += 1 + 2;
			break;
		case 252: /* XLR_BLOCK_ID_TOPLEVEL_XID: TransactionId */
			i += 1 + 4;
			break;
		default: /* a block reference: not a record of this shape */
			return 0;
		}
	}
	return 0;
}

/* A transaction end's time is looked for in the first XACT_TIME_IN bytes of its
 * body only, however many were read (a walk with a visitor reads a prepared
 * transaction's end whole, one without does not), so that both answer the same.
 * PostgreSQL writes it within 21 (origin, top-level xid, long data header). */
#define XACT_TIME_IN 32

/* The end time of a transaction's end record: its main data starts with the
 * TimestampTz. 0 when not found in body's n bytes. A time past what unix
 * microseconds hold (PostgreSQL's own END_TIMESTAMP is) is INT64_MAX: later
 * than any target, as PostgreSQL takes it. */
static int64_t xact_end_us(const uint8_t *body, size_t n)
{
	uint32_t len;
	n = BK_MIN(n, XACT_TIME_IN);
	size_t at = main_data_at(body, n, &len);
	if (!at || at + 8 > n)
		return 0;
	int64_t pg_us = (int64_t)bk_get_le64(body + at);
	return pg_us > INT64_MAX - PG_EPOCH_UNIX_US ? INT64_MAX : pg_us + PG_EPOCH_UNIX_US;
}

/* The xl_xact_xinfo flags of PostgreSQL 15 a prepared transaction's end may carry,
 * and the sizes of what each adds to its main data, in this order. */
#define XLOG_XACT_HAS_INFO 0x80
#define XINFO_DBINFO (1u << 0)       /* xl_xact_dbinfo: 2 Oids */
#define XINFO_SUBXACTS (1u << 1)     /* int n, n TransactionIds */
#define XINFO_RELFILENODES (1u << 2) /* int n, n RelFileNodes (3 Oids) */
#define XINFO_INVALS (1u << 3)       /* int n, n SharedInvalidationMessages (16 bytes) */
#define XINFO_TWOPHASE (1u << 4)     /* the prepared transaction's xid */
#define XINFO_ORIGIN (1u << 5)       /* origin LSN and time */
#define XINFO_GID (1u << 7)          /* after the xid: the GID, NUL-terminated */
#define XINFO_DROPPED_STATS (1u << 8) /* int n, n xl_xact_stats_items (3 ints) */
#define PREPARED_BODY_MAX (1u << 20) /* a prepared end's body read whole, up to this */

/* Steps *at (in data[0..n)) over a counted array: an int count, then that many
 * items of `item` bytes. False when it runs past n. */
static bool skip_array(const uint8_t *data, size_t n, size_t *at, size_t item)
{
	if (n - *at < 4)
		return false;
	uint64_t count = bk_get_le32(data + *at);
	*at += 4;
	if (count > (n - *at) / item)
		return false;
	*at += (size_t)count * item;
	return true;
}

/* The xid of the prepared transaction that a COMMIT PREPARED or ABORT PREPARED
 * record (info) ends: in its main data (xl_xact_commit or xl_xact_abort: the time,
 * xinfo, the parts xinfo names, then xl_xact_twophase) in body's n bytes. 0 when
 * they do not hold it, or when the parts do not add up to the main data's length
 * exactly (a layout other than PostgreSQL 15's). */
static uint32_t prepared_xid(uint8_t info, const uint8_t *body, size_t n)
{
	uint32_t len;
	size_t at = main_data_at(body, n, &len), i = 8 + 4;
	if (!at || len > n - at || len < i || !(info & XLOG_XACT_HAS_INFO))
		return 0;
	const uint8_t *d = body + at;
	uint32_t xinfo = bk_get_le32(d + 8);
	if (!(xinfo & XINFO_TWOPHASE))
		return 0;
	if (xinfo & XINFO_DBINFO)
		i += 8;
	if (i > len || ((xinfo & XINFO_SUBXACTS) && !skip_array(d, len, &i, 4)) ||
	    ((xinfo & XINFO_RELFILENODES) && !skip_array(d, len, &i, 12)) ||
	    ((xinfo & XINFO_DROPPED_STATS) && !skip_array(d, len, &i, 12)) ||
	    ((xinfo & XINFO_INVALS) && !skip_array(d, len, &i, 16)) || len - i < 4)
		return 0;
	uint32_t xid = bk_get_le32(d + i);
	i += 4;
	if (xinfo & XINFO_GID) {
		const uint8_t *nul = memchr(d + i, '\0', len - i);
		if (!nul)
			return 0;
		i = (size_t)(nul - d) + 1;
	}
	if (xinfo & XINFO_ORIGIN)
		i += 16;
	return i == len ? xid : 0;
}

/* A restore point's name (xl_restore_point: TimestampTz, then the name in 64 bytes,
 * NUL-terminated) into out; false when body's n bytes do not hold it. */
static bool restore_point_name(const uint8_t *body, size_t n, char out[RP_NAME_LEN])
{
	uint32_t len;
	size_t at = main_data_at(body, n, &len);
	if (!at || len != 8 + RP_NAME_LEN || at + len > n ||
	    !memchr(body + at + 8, '\0', RP_NAME_LEN))
		return false;
	memcpy(out, body + at + 8, RP_NAME_LEN);
	return true;
}

/* Hands a record read whole to the walk's visitor: header hdr, the first n bytes
 * after it in body. False when the visitor ended the walk. */
static bool visit(RecWalk *w, uint64_t lsn, const uint8_t *hdr, const uint8_t *body, size_t n)
{
	if (!w->fn)
		return true;
	char name[RP_NAME_LEN];
	uint8_t op = hdr[16] & XLOG_XACT_OPMASK;
	BkWalRec rec = { .lsn = lsn, .xid = bk_get_le32(hdr + 4), .info = hdr[16], .rmid = hdr[17],
			 .xact_end = hdr[17] == BK_WAL_RM_XACT && (op == 0x00 || op == 0x20),
			 .prepared_end = is_prepared_end(hdr[17], hdr[16]) };
	if (is_restore_point(hdr) && body && restore_point_name(body, n, name))
		rec.restore_point = name;
	if ((rec.xact_end || rec.prepared_end) && body)
		rec.xact_us = xact_end_us(body, n);
	if (rec.prepared_end && body)
		rec.prepared_xid = prepared_xid(hdr[16], body, n);
	rec.unnamed = is_restore_point(hdr) && !rec.restore_point;
	int e = w->fn(w->ud, &rec);
	if (e < 0)
		w->fn_err = e;
	return e >= 0;
}

/* Reads the end of the record the segment before's end cut (its first page says
 * it goes on here, xlp_rem_len bytes) from *pos, and checks it whole when prev
 * holds the part before: its CRC over both parts (a wrong xlp_rem_len fails it,
 * or the next page's), and if it passes its LSN is ret->lsn. Returns the
 * step; *ret_bad when the check fails, *ret_switch when the record is an
 * XLOG_SWITCH whose 24 bytes the segment before's end cut after 8 or 16 (it uses
 * this segment up too). A record that goes on past this segment's end too is
 * carried on into ret->carry. */
static Step continuation(RecWalk *w, uint64_t *pos, const BkWalCarry *prev, BkWalEnd *ret,
			 bool *ret_bad, bool *ret_switch)
{
	uint32_t rem = w->h.rem_len;
	BkWalCarry c = prev ? *prev : (BkWalCarry){ 0 };
	*ret_bad = *ret_switch = false;
	uint32_t hrest = c.head ? RECORD_HEADER - c.head : 0; /* of its header */
	uint8_t tail[16];
	bool short_tail = rem == 8 || rem == 16;
	Step st = consume(w, pos, hrest, rem, c.hdr + c.head, NULL);
	uint64_t took = w->copied;
	/* a restore point's or transaction end's bytes after the header, for the
	 * visitor: those the segment before held (in the carry, when that walk had a
	 * visitor), then these; a prepared transaction's end's all of them, as its xid
	 * lies after parts of any length */
	uint32_t here = rem - hrest, at = UINT32_MAX, copy = 0;
	uint8_t *body = c.body;
	_cleanup_free_ uint8_t *whole = NULL;
	if (w->fn && c.head && st == STEP_OK && body_wanted(c.hdr)) {
		uint32_t tot_len = bk_get_le32(c.hdr);
		if (tot_len >= RECORD_HEADER + here)
			at = tot_len - RECORD_HEADER - here; /* its bytes after the header before */
		/* known only when the segment before's carry holds all of those (a carry
		 * holds BK_WAL_RP_BODY at most) */
		if (at != (hrest ? 0 : c.nbody) || at > BK_WAL_RP_BODY) {
			at = UINT32_MAX;
		} else if (is_prepared_end(c.hdr[17], c.hdr[16]) && here <= PREPARED_BODY_MAX - at &&
			   (whole = malloc(at + here))) { /* (without memory: its xid stays unknown) */
			memcpy(whole, c.body, at);
			body = whole;
			copy = here;
		} else {
			copy = BK_MIN(here, BK_WAL_RP_BODY - at);
		}
	}
	if (st == STEP_OK && copy) {
		st = consume(w, pos, copy, here, body + at, &c.crc);
		here -= copy;
	}
	if (st == STEP_OK)
		st = consume(w, pos, here, here, short_tail && !c.head ? tail : NULL,
			     c.head ? &c.crc : NULL);
	if (c.head && st == STEP_END && w->past_end) { /* on past this segment too */
		ret->carry = c;
		ret->carry.head = (uint8_t)(c.head + took);
		ret->carry.nbody = 0;
		return st;
	}
	if (st != STEP_OK)
		return st;
	if (c.head) {
		*ret_bad = bk_crc32c(c.crc, c.hdr, RECORD_CRC_AT) != bk_get_le32(c.hdr + RECORD_CRC_AT);
		*ret_switch = !*ret_bad && c.hdr[17] == RM_XLOG_ID && (c.hdr[16] & 0xF0) == XLOG_SWITCH;
		if (!*ret_bad) { /* read whole: recovery gets this far */
			ret->lsn = c.lsn;
			bool known = at != UINT32_MAX;
			visit(w, c.lsn, c.hdr, known ? body : NULL, known ? at + copy : 0);
		}
	} else if (short_tail) {
		/* a switch's tail, unless those two bytes are another record's body: a
		 * switch leaves the rest of the page zero (found by review: a record of 64
		 * to 79 bytes' tail passed, and the segment was taken for used up) */
		uint64_t next = MAXALIGN8(*pos) % w->h.blcksz;
		*ret_switch = tail[rem - 7] == RM_XLOG_ID && (tail[rem - 8] & 0xF0) == XLOG_SWITCH &&
			      next != 0 && bk_get_le32(w->page + next) == 0;
	}
	return st;
}

int bk_wal_last_record(int fd, const char *name, const BkWalCarry *prev, BkWalEnd *ret)
{
	return bk_wal_walk(fd, name, prev, NULL, NULL, ret);
}

int bk_wal_walk(int fd, const char *name, const BkWalCarry *prev, BkWalRecFn fn, void *ud,
		BkWalEnd *ret)
{
	RecWalk w = { .fd = fd, .fn = fn, .ud = ud };
	uint8_t first[BK_WAL_LONG_HEADER_SIZE];
	*ret = (BkWalEnd){ 0 };
	uint64_t *ret_lsn = &ret->lsn;
	ssize_t n = pread(fd, first, sizeof(first), 0);
	if (n < 0)
		return bk_errorf_code(-errno, "read %s", name);
	int e = bk_wal_header_parse(first, (size_t)n, name, &w.h);
	if (e < 0)
		return e;
	if (!(w.buf = malloc(READ_AHEAD)))
		return -ENOMEM;
	uint64_t pos = BK_WAL_LONG_HEADER_SIZE;
	Step st = load_page(&w, 0) ? STEP_OK : STEP_END;
	/* the end of a record that began in the previous segment: an XLOG_SWITCH whose
	 * 24 bytes the segment's end cut after 8 or 16 uses this segment up too (its
	 * xl_info and xl_rmid, at header offsets 16 and 17, are here) */
	bool switch_tail = false, bad = false;
	uint64_t prev_lsn = 0; /* the record before the first one here, when known */
	if (prev && prev->head != 8 && prev->head != 16 && prev->head != 24)
		prev = NULL; /* (none, or not a carry bk_wal_last_record wrote) */
	if (st == STEP_OK && (w.h.info & XLP_FIRST_IS_CONTRECORD)) {
		st = continuation(&w, &pos, prev, ret, &bad, &switch_tail);
		if (st == STEP_OK && prev)
			prev_lsn = prev->lsn;
	} else if (st == STEP_OK && prev && !(w.h.info & XLP_FIRST_IS_OVERWRITE_CONTRECORD)) {
		bad = true; /* the record cut there does not go on here, nor was it torn */
	}
	ret->stopped = bad; /* and no record is read past it */
	while (!switch_tail && !bad && !w.fn_err) {
		if (st == STEP_END) { /* past the end, or a page that does not go on with it */
			ret->stopped = !w.past_end;
			break;
		}
		if (st == STEP_TORN) /* the next record starts after this page's header */
			pos += SHORT_PAGE_HEADER;
		pos = MAXALIGN8(pos);
		if (pos % w.h.blcksz == 0) { /* a record starts after the next page header */
			if (pos >= w.h.seg_size)
				break;
			if (!load_page(&w, pos / w.h.blcksz) ||
			    (bk_get_le16(w.page + 2) & XLP_FIRST_IS_CONTRECORD)) {
				ret->stopped = true; /* (a continuation where a record starts: not WAL) */
				break;
			}
			pos += SHORT_PAGE_HEADER;
		}
		/* xl_tot_len is on the record's first page: a record starts 8-aligned */
		uint64_t start = pos;
		uint32_t tot_len = bk_get_le32(w.page + pos % w.h.blcksz);
		if (tot_len < RECORD_HEADER) { /* zeros: the end of the WAL written */
			ret->stopped = true;
			break;
		}
		uint8_t rec[RECORD_HEADER];
		st = consume(&w, &pos, RECORD_HEADER, tot_len, rec, NULL);
		BkWalCarry *carry = &ret->carry;
		if (st == STEP_END && w.past_end) { /* its type is in the next segment */
			ret->cut_xact = true;
			*carry = (BkWalCarry){ .lsn = w.h.pageaddr + start, .head = (uint8_t)w.copied };
			memcpy(carry->hdr, rec, w.copied);
			break;
		}
		/* each record names the one before (xl_prev): past the first, a record
		 * that does not is not WAL written after it, and recovery stops there */
		uint64_t before = *ret_lsn ? *ret_lsn : prev_lsn;
		if (st == STEP_OK && before && bk_get_le64(rec + 8) != before) {
			ret->stopped = true;
			break;
		}
		/* enough of the body for a transaction's end time, or a restore point's name;
		 * a prepared transaction's end whole, for its xid */
		uint8_t small[BK_WAL_RP_BODY], *body = small;
		_cleanup_free_ uint8_t *whole = NULL;
		bool rp = fn && st == STEP_OK && is_restore_point(rec),
		     carried = fn && st == STEP_OK && body_wanted(rec);
		uint32_t left = tot_len - RECORD_HEADER,
			 nb = BK_MIN(left, rp ? BK_WAL_RP_BODY : XACT_TIME_IN);
		if (carried && is_prepared_end(rec[17], rec[16]) && left <= PREPARED_BODY_MAX &&
		    (whole = malloc(left))) { /* (without memory: its xid stays unknown) */
			body = whole;
			nb = left;
		}
		uint64_t got = 0; /* of body */
		uint32_t crc = 0; /* xl_crc: the bytes after the header, then the header to xl_crc */
		if (st == STEP_OK) {
			st = consume(&w, &pos, nb, left, body, &crc);
			got = w.copied;
		}
		if (st == STEP_OK)
			st = consume(&w, &pos, left - nb, left - nb, NULL, &crc);
		if (st == STEP_END && w.past_end) { /* the time may be here already */
			if (is_xact_end(rec[17], rec[16]) && !(ret->cut_xact_us = xact_end_us(body, got)))
				ret->cut_xact = true;
			*carry = (BkWalCarry){ .lsn = w.h.pageaddr + start, .head = RECORD_HEADER,
					       .crc = crc };
			memcpy(carry->hdr, rec, RECORD_HEADER);
			if (carried && got <= BK_WAL_RP_BODY) {
				carry->nbody = (uint8_t)got;
				memcpy(carry->body, body, got);
			}
			break;
		}
		if (st != STEP_OK)
			continue;
		if (bk_crc32c(crc, rec, RECORD_CRC_AT) != bk_get_le32(rec + RECORD_CRC_AT)) {
			ret->stopped = true; /* damaged: recovery stops before it, and so does the walk */
			break;
		}
		*ret_lsn = w.h.pageaddr + start; /* whole in this segment */
		if (!visit(&w, *ret_lsn, rec, body, nb))
			break;
		int64_t t = is_xact_end(rec[17], rec[16]) ? xact_end_us(body, nb) : 0;
		if (t > ret->xact_us) /* the latest: backends stamp their commits out of WAL order */
			ret->xact_us = t;
		if (rec[17] == RM_XLOG_ID && (rec[16] & 0xF0) == XLOG_SWITCH)
			break;
	}
	free(w.buf);
	int e2 = w.err ? w.err : w.fn_err;
	if (e2) {
		*ret = (BkWalEnd){ 0 };
		return e2;
	}
	return 0;
}

size_t bk_wal_path_index(const uint64_t *begin, size_t n, uint64_t segno, uint32_t seg_size)
{
	size_t t = n - 1;
	while (t > 0 && begin[t] / seg_size > segno)
		t--;
	return t;
}
