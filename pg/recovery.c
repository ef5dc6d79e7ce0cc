#include "pg/recovery.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pg/basebackup.h"
#include "pg/walarchive.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/restorer.h"
#include "store/util.h"

/* ---- time ---- */

int bk_pg_parse_time(const char *s, int64_t *ret_us)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	if (p && (*p == ' ' || *p == 'T'))
		p = strptime(p + 1, "%H:%M:%S", &tm);
	else if (p && *p == '\0')
		; /* a date alone: midnight */
	else
		p = NULL;
	if (!p)
		return bk_errorf(BK_E_USAGE, "'%s' is not a time (want YYYY-MM-DD HH:MM:SS[+ZZ])", s);
	int64_t us = 0;
	if (*p == '.') {
		int digits = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 6)
				us = us * 10 + (*p - '0');
		for (; digits < 6; digits++)
			us *= 10;
	}
	while (*p == ' ')
		p++;
	int64_t offset = 0;
	if (*p == 'Z' || !strcmp(p, "UTC")) {
		p += *p == 'Z' ? 1 : 3;
	} else if (*p == '+' || *p == '-') {
		/* +HH, +HHMM or +HH:MM, as PostgreSQL writes them; at most 15:59 */
		int sign = *p == '-' ? -1 : 1, hh = 0, mm = 0, n = 0;
		if (sscanf(p + 1, "%2d%n", &hh, &n) != 1 || n != 2)
			return bk_errorf(BK_E_USAGE, "'%s': bad time zone (want +HH[:MM])", s);
		p += 1 + n;
		bool colon = *p == ':';
		if (colon)
			p++;
		if (colon || *p) {
			if (sscanf(p, "%2d%n", &mm, &n) != 1 || n != 2)
				return bk_errorf(BK_E_USAGE, "'%s': bad time zone (want +HH[:MM])", s);
			p += n;
		}
		if (hh > 15 || mm > 59)
			return bk_errorf(BK_E_USAGE, "'%s': time zone offset out of range", s);
		offset = sign * (hh * 3600 + mm * 60);
	}
	if (*p)
		return bk_errorf(BK_E_USAGE, "'%s' is not a time (want YYYY-MM-DD HH:MM:SS[+ZZ])", s);
	/* timegm would move 2026-02-30 to March 2: a date that does not exist is refused */
	struct tm given = tm;
	time_t t = timegm(&tm);
	if (tm.tm_mday != given.tm_mday || tm.tm_mon != given.tm_mon || tm.tm_hour != given.tm_hour ||
	    tm.tm_min != given.tm_min || tm.tm_sec != given.tm_sec)
		return bk_errorf(BK_E_USAGE, "'%s': no such date or time", s);
	*ret_us = ((int64_t)t - offset) * 1000000 + us;
	return 0;
}

/* ---- restore ---- */

/* The base backups of a cluster, to choose from. */
typedef struct {
	uint8_t id[32];
	int64_t time_us;
	uint64_t start, stop;
	uint32_t tli;
} Candidate;

typedef struct {
	const char *name;
	Candidate *c;
	size_t n, cap;
} Candidates;

static int collect(void *ud, const uint8_t id[32], BkSnapshot *s)
{
	Candidates *l = ud;
	if (!s)
		return 0; /* a damaged record cannot be restored from anyway */
	const char *start = bk_snapshot_meta(s, "start_lsn"), *stop = bk_snapshot_meta(s, "stop_lsn"),
		   *tli = bk_snapshot_meta(s, "timeline");
	Candidate c = { .time_us = s->time_us };
	bool base = !strcmp(s->name, l->name) && !strcmp(s->kind, "pg-base") && start && stop && tli &&
		    bk_wal_lsn_parse(start, &c.start) == 0 && bk_wal_lsn_parse(stop, &c.stop) == 0;
	if (base)
		c.tli = (uint32_t)strtoul(tli, NULL, 10);
	bk_snapshot_free(s);
	if (!base)
		return 0;
	if (bk_grow(&l->c, &l->cap, l->n, sizeof(*l->c), 16) < 0)
		return -ENOMEM;
	memcpy(c.id, id, 32);
	l->c[l->n++] = c;
	return 0;
}

/* target_us as PostgreSQL reads it whatever the server's TimeZone: in UTC, with
 * the zone written out (bunker reads a time without a zone as UTC). */
static void format_utc(char out[48], int64_t target_us)
{
	int64_t secs = target_us / 1000000, us = target_us % 1000000;
	if (us < 0) {
		secs--;
		us += 1000000;
	}
	time_t t = (time_t)secs;
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, 48, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out + n, 48 - n, ".%06d+00", (int)us);
}

static int newest_first(const void *a, const void *b)
{
	const Candidate *x = a, *y = b;
	return x->time_us > y->time_us ? -1 : x->time_us < y->time_us;
}

/* Whether a backup (its record's time, its stop LSN) ended before a time or LSN
 * target: recovery cannot stop inside a backup. The one rule for a backup chosen
 * and a SNAPSHOT given. */
static bool ends_before(int64_t time_us, uint64_t stop, int64_t before_us, uint64_t before_lsn)
{
	return !(before_us && time_us >= before_us) && !(before_lsn && stop > before_lsn);
}

/* A target that only the WAL places: a restore point's name, or a transaction id
 * (its low 32 bits, which PostgreSQL compares), where recovery stops at the first
 * matching record after the backup's start: a restore point of that name, or the
 * commit or abort of that transaction; or (after_us) a time, where it stops before
 * the first commit or abort that ended later (found only where the records pushers
 * keep per segment cannot tell, below). The archived segments are fetched and walked
 * (bk_wal_walk), a range at a time; hits holds the LSNs of the matching records
 * found so far, and of records that may match but cannot be read (a prepared
 * transaction's end whose body, which holds its xid, was not read; a restore point
 * whose start lies in a segment walked without the one before), which make the
 * target unplaceable. */
typedef struct {
	uint64_t lsn;
	bool unsure;
} Hit;

typedef struct {
	const char *name; /* NULL: xid or time */
	uint32_t xid;
	int64_t after_us; /* a time target (name NULL, xid 0) */
	Hit *hits;
	size_t n, cap;
	uint64_t walked_from, walked_to; /* the segments walked so far (from > to: none) */
	/* a walk ended before the end of the WAL recovery could read: at a segment
	 * missing (a gap, or a new timeline's first not archived yet) or damaged; a
	 * target not found is then not known to be absent */
	bool cut_short;
	char first_seg[BK_WAL_NAME_MAX], last_seg[BK_WAL_NAME_MAX]; /* their names */
	const volatile sig_atomic_t *stop; /* BkPgRestoreOpts.stop: ends a long walk */
	const BkPgRestoreOpts *o; /* its wal_read, told of the bytes read (`read`) */
	uint64_t read;
} WalTarget;

static int target_hit(WalTarget *t, uint64_t lsn, bool unsure)
{
	for (size_t i = 0; i < t->n; i++) /* ranges overlap by a segment */
		if (t->hits[i].lsn == lsn)
			return 0;
	if (bk_grow(&t->hits, &t->cap, t->n, sizeof(*t->hits), 16) < 0)
		return -ENOMEM;
	t->hits[t->n++] = (Hit){ lsn, unsure };
	return 0;
}

static int on_target_record(void *ud, const BkWalRec *rec)
{
	WalTarget *t = ud;
	bool end = rec->xact_end || rec->prepared_end;
	if (t->after_us) { /* a time: the first end after it, unsure when its time is unread */
		if (end && (!rec->xact_us || rec->xact_us > t->after_us))
			return target_hit(t, rec->lsn, !rec->xact_us);
	} else if (t->name) {
		if (rec->unnamed)
			return target_hit(t, rec->lsn, true);
		if (rec->restore_point && !strcmp(rec->restore_point, t->name))
			return target_hit(t, rec->lsn, false);
	} else if (rec->prepared_end) { /* an xid: a prepared one's, from its body */
		if (!rec->prepared_xid || rec->prepared_xid == t->xid)
			return target_hit(t, rec->lsn, !rec->prepared_xid);
	} else if (rec->xact_end && rec->xid == t->xid) {
		return target_hit(t, rec->lsn, false);
	}
	return 0;
}

/* The first hit at or after lsn; NULL when none. */
static const Hit *target_first(const WalTarget *t, uint64_t lsn)
{
	const Hit *best = NULL;
	for (size_t i = 0; i < t->n; i++)
		if (t->hits[i].lsn >= lsn && (!best || t->hits[i].lsn < best->lsn))
			best = &t->hits[i];
	return best;
}

/* Walks c's path from the segment holding from_lsn up to segment `last` (at most
 * the chain's last contiguous one), in order, each segment walked with the carry of
 * the one before, until a segment holds a new hit at or after from_lsn (the hits
 * of earlier walks lie after this range), or one is missing, or its walk stopped
 * (damaged WAL: recovery stops there too). */
static int target_walk(BkRepo *r, const char *cluster, const BkWalChain *c, uint64_t from_lsn,
		       uint64_t last, WalTarget *t)
{
	if (!c->contiguous_end) {
		t->cut_short = true;
		return 0;
	}
	uint64_t end_seg = c->contiguous_end / c->seg_size - 1;
	if (last >= end_seg && (c->gap || c->fork_unread || c->missing_history[0]))
		t->cut_short = true; /* (the WAL goes on past what is contiguous) */
	if (from_lsn / c->seg_size > end_seg) { /* not archived yet: nothing to walk (found
						   * by review: the target was called missing) */
		t->cut_short = true;
		return 0;
	}
	last = BK_MIN(last, end_seg);
	size_t known = t->n;
	BkWalCarry carry = { 0 };
	for (uint64_t segno = from_lsn / c->seg_size; segno <= last; segno++) {
		if (t->stop && *t->stop)
			return bk_errorf(-EINTR, "interrupted");
		char seg[BK_WAL_NAME_MAX];
		BkWalRecord w;
		int fd = -1, e = bk_pg_wal_path_segment(c, segno, seg);
		if (e == 0)
			e = bk_wal_record_get(r, cluster, seg, &w);
		if (e == -ENOENT) {
			t->cut_short = true;
			break;
		}
		if (e < 0)
			return e;
		e = bk_wal_record_to_fd(r, &w, &fd);
		bk_wal_record_release(&w);
		BkWalEnd end;
		if (e == 0) {
			e = bk_wal_walk(fd, seg, &carry, on_target_record, t, &end);
			close(fd);
		}
		if (e < 0)
			return e;
		t->read += c->seg_size;
		if (t->o && t->o->wal_read)
			t->o->wal_read(t->o->progress_ud, t->read);
		if (t->walked_from > t->walked_to || segno < t->walked_from) {
			t->walked_from = segno;
			memcpy(t->first_seg, seg, sizeof(seg));
		}
		if (segno >= t->walked_to) {
			t->walked_to = segno;
			memcpy(t->last_seg, seg, sizeof(seg));
		}
		if (end.stopped) {
			t->cut_short = true;
			break;
		}
		bool hit = false;
		for (size_t i = known; i < t->n; i++)
			hit |= t->hits[i].lsn >= from_lsn;
		if (hit)
			break;
		carry = end.carry;
	}
	return 0;
}

/* What the target is, for messages. */
static void target_what(const WalTarget *t, char out[128])
{
	if (t->name)
		snprintf(out, 128, "restore point '%s'", t->name);
	else
		snprintf(out, 128, "end of transaction %u", t->xid);
}

/* The error for a target whose first match after the backup (id, start to stop)
 * lies inside it: recovery cannot stop before a backup's end. given: a SNAPSHOT
 * given, else the oldest backup latest could take. */
static int target_inside(const WalTarget *t, const char *cluster, const uint8_t *id,
			 uint64_t start, uint64_t stop, bool given)
{
	char what[128], at[BK_WAL_LSN_MAX], s1[BK_WAL_LSN_MAX], s2[BK_WAL_LSN_MAX];
	target_what(t, what);
	const Hit *h = target_first(t, start);
	bk_wal_lsn_format(at, sizeof(at), h ? h->lsn : 0);
	bk_wal_lsn_format(s1, sizeof(s1), start);
	bk_wal_lsn_format(s2, sizeof(s2), stop);
	if (given)
		return bk_errorf(BK_E_USAGE, "the %s at %s lies inside snapshot %.16s's backup (%s to "
				 "%s): recovery cannot stop before its end (latest picks a backup "
				 "before it)", what, at, bk_id_hex(id).s, s1, s2);
	return bk_errorf(BK_E_USAGE, "the %s at %s lies inside base backup %.16s (%s to %s), and no "
			 "older base backup of cluster '%s' is on the history: recovery cannot "
			 "stop before a backup's end", what, at, bk_id_hex(id).s, s1, s2, cluster);
}

/* The error for a target the WAL walked along timeline tli does not hold. */
static int target_missing(const WalTarget *t, uint32_t tli)
{
	char what[128];
	target_what(t, what);
	return bk_errorf(-ENOENT, "no %s in the WAL archived after the base backup along timeline "
			 "%u (%s to %s, walked): recovery would replay it all and fail", what, tli,
			 t->first_seg, t->last_seg);
}

/* Forgets what walks on another path found (the hits, the range walked). */
static void target_forget(WalTarget *t)
{
	t->n = 0;
	t->walked_from = UINT64_MAX;
	t->walked_to = 0;
	t->cut_short = false;
	t->first_seg[0] = t->last_seg[0] = '\0';
}

static int latest_start_first(const void *a, const void *b)
{
	const Candidate *x = *(const Candidate *const *)a, *y = *(const Candidate *const *)b;
	return x->start > y->start ? -1 : x->start < y->start;
}

/* For a target the WAL places: walks back from the backup that started last (of
 * cands[0..n), those on the path), each range ending at the segment where the
 * range walked before began (so backups that overlap are walked right too), and
 * picks the latest-starting one whose first match after its start lies at or
 * after its stop (*ret_at: that match); backups whose paths differ (with
 * --target-timeline current) are walked apart. Else *ret_inside: one whose backup holds
 * its first match; *ret_unsure: the walk cannot decide (a record that may match
 * cannot be read, or nothing found where the walk was cut short). */
static int place_in_wal(const BkWalArchive *a, const Candidate *cands, size_t n, uint32_t want_tli,
			WalTarget *wt, const Candidate **ret_pick, const Candidate **ret_inside,
			bool *ret_unsure, uint64_t *ret_at)
{
	const Candidate **order = malloc((n ? n : 1) * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (size_t k = 0; k < n; k++)
		order[k] = &cands[k];
	qsort(order, n, sizeof(*order), latest_start_first);
	uint64_t upto = UINT64_MAX;
	uint32_t path = 0; /* the timeline whose history the hits in wt lie on */
	bool cut = false;  /* a walk of a path forgotten since was cut short */
	int e = 0;
	for (size_t k = 0; e == 0 && k < n && !*ret_pick && !*ret_unsure; k++) {
		const Candidate *c = order[k];
		BkWalChain chain;
		e = bk_pg_wal_chain(a, c->tli, c->start, c->stop, want_tli, &chain);
		if (e < 0 || !chain.on_path)
			continue;
		/* --target-timeline current: each backup follows its own timeline, and the
		 * same xid or name on another's is another record (found by review: the
		 * hits of one path were taken for another's) */
		if (path && chain.target_tli != path) {
			cut |= wt->cut_short;
			target_forget(wt);
			upto = UINT64_MAX;
		}
		path = chain.target_tli;
		e = target_walk(a->r, a->cluster, &chain, c->start, upto, wt);
		upto = c->start / chain.seg_size;
		const Hit *h = e == 0 ? target_first(wt, c->start) : NULL;
		if (h && h->unsure) {
			*ret_unsure = true;
		} else if (h && h->lsn >= c->stop) {
			*ret_pick = c;
			*ret_at = h->lsn;
		} else if (h) {
			*ret_inside = c;
		}
	}
	if (e == 0 && !*ret_pick && !*ret_inside && (wt->cut_short || cut))
		*ret_unsure = true;
	free(order);
	return e;
}

/* Chooses the base backup for a target: the newest one on the history of the
 * timeline recovery follows that ended before a time or LSN target. For a target
 * the WAL places (wt: a restore point or an xid), place_in_wal's (*ret_at: the
 * matching record's LSN); when it cannot decide, the oldest backup on the history
 * (it reaches any later point; *ret_at 0), and so too when no match is found
 * (*ret_missing: the caller refuses, once it has checked the history followed
 * did not leave out a timeline that went on). When the
 * timeline was not given and the newest backup is off the newest timeline's
 * history (a restored copy promoted and archived here, or production went on from
 * a restore), which history is wanted is not known: refuses, naming the
 * --target-timeline that restores each. */
static int choose_backup(const BkWalArchive *a, const char *name, int64_t before_us,
			 uint64_t before_lsn, WalTarget *wt, uint64_t *ret_at, bool *ret_missing,
			 uint32_t want_tli, bool tli_given, uint8_t ret_id[32])
{
	Candidates l = { .name = name };
	int e = bk_snapshot_foreach(a->r, collect, &l);
	if (e == 0 && l.n)
		qsort(l.c, l.n, sizeof(*l.c), newest_first);
	size_t n = 0; /* those that ended before the target, newest first */
	for (size_t k = 0; e == 0 && k < l.n; k++)
		if (ends_before(l.c[k].time_us, l.c[k].stop, before_us, before_lsn))
			l.c[n++] = l.c[k];
	/* the newest first: whether it is on the path decides the refusal below */
	BkWalChain chain;
	bool newest_on = false;
	uint32_t target = 0;
	if (e == 0 && n) {
		e = bk_pg_wal_chain(a, l.c[0].tli, l.c[0].start, l.c[0].stop, want_tli, &chain);
		newest_on = e == 0 && chain.on_path;
		target = chain.target_tli;
	}
	const Candidate *pick = NULL, *inside = NULL;
	bool unsure = false, refused = !tli_given && !newest_on; /* (refused below) */
	if (e == 0 && wt && !refused)
		e = place_in_wal(a, l.c, n, want_tli, wt, &pick, &inside, &unsure, ret_at);
	*ret_missing = e == 0 && wt && !refused && !pick && !inside && !unsure;
	/* otherwise the newest on the path, or the oldest for a target the WAL did not
	 * place; when refused, the newest, to name it */
	bool oldest = wt && !refused;
	for (size_t k = 0; e == 0 && (!wt || unsure || *ret_missing || refused) && k < n && !pick;
	     k++) {
		const Candidate *c = &l.c[oldest ? n - 1 - k : k];
		if (c != &l.c[0])
			e = bk_pg_wal_chain(a, c->tli, c->start, c->stop, want_tli, &chain);
		if (e == 0 && (c == &l.c[0] ? newest_on : chain.on_path))
			pick = c;
	}
	if (e == 0 && n && !tli_given && !newest_on) {
		char other[160] = ", nor is any other";
		if (pick)
			snprintf(other, sizeof(other), ", --target-timeline latest restores %.16s along "
				 "timeline %u", bk_id_hex(pick->id).s, target);
		e = bk_errorf(BK_E_USAGE,
			      "the newest base backup, %.16s, is on timeline %u but not on the history "
			      "of timeline %u, the newest archived: --target-timeline %u restores it%s",
			      bk_id_hex(l.c[0].id).s, l.c[0].tli, target, l.c[0].tli, other);
	} else if (e == 0 && pick) {
		memcpy(ret_id, pick->id, 32);
	} else if (e == 0 && inside) {
		e = target_inside(wt, a->cluster, inside->id, inside->start, inside->stop, false);
	} else if (e == 0 && n == 0 && l.n && (before_us || before_lsn)) {
		/* the target as read, against the oldest backup (l.c is whole: n == 0) */
		const Candidate *old = &l.c[l.n - 1];
		char t[48], b[48];
		if (before_us) {
			format_utc(t, before_us);
			format_utc(b, old->time_us);
		} else {
			bk_wal_lsn_format(t, sizeof(t), before_lsn);
			bk_wal_lsn_format(b, sizeof(b), old->stop);
		}
		e = bk_errorf(-ENOENT, "no base backup of cluster '%s' ends before the target %s %s%s: "
			      "the oldest, %.16s, ended at %s", a->cluster, before_us ? "time" : "LSN",
			      t, before_us ? " (read as UTC when no zone is given)" : "",
			      bk_id_hex(old->id).s, b);
	} else if (e == 0) {
		e = bk_errorf(-ENOENT, "no base backup of cluster '%s' %s", a->cluster,
			      before_us || before_lsn ? "ends before the target"
						    : "is on the history of the timeline to follow");
	}
	free(l.c);
	return e;
}

/* PostgreSQL's recovery_target_timeline: latest, current or a timeline id. */
static int parse_timeline(const char *s, uint32_t *ret)
{
	if (!s || !strcmp(s, "latest")) {
		*ret = BK_TLI_LATEST;
		return 0;
	}
	if (!strcmp(s, "current")) {
		*ret = BK_TLI_CURRENT;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || *end || errno || v == 0 || v >= BK_TLI_CURRENT)
		return bk_errorf(BK_E_USAGE, "--target-timeline: '%s' is not latest, current or a "
				 "timeline id", s);
	*ret = (uint32_t)v;
	return 0;
}

/* Appends a setting to postgresql.auto.conf, quoted as PostgreSQL wants. */
static int conf_line(FILE *f, const char *key, const char *value)
{
	fprintf(f, "%s = '", key);
	/* PostgreSQL's configuration strings take no raw line break: \n and \r are
	 * escaped as its parser reads them back (found by review: a repository path with
	 * a newline made postgresql.auto.conf unreadable) */
	for (const char *c = value; *c; c++) {
		switch (*c) {
		case '\'': fputs("''", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		default: fputc(*c, f);
		}
	}
	fprintf(f, "'\n");
	return ferror(f) ? -EIO : 0;
}

/* Whether a configuration line sets a parameter bunker pg restore writes. */
static bool managed_line(const char *line, size_t len, bool archive_off)
{
	size_t i = strspn(line, " \t"), k = i;
	while (k < len && (isalnum((unsigned char)line[k]) || line[k] == '_' || line[k] == '.'))
		k++;
	size_t n = k - i;
	const char *key = line + i;
	if (n == 0 || (k < len && !strchr(" \t=", line[k])))
		return false;
	return (n == 15 && !strncasecmp(key, "restore_command", n)) ||
	       (n >= 15 && !strncasecmp(key, "recovery_target", 15)) ||
	       (archive_off && n == 12 && !strncasecmp(key, "archive_mode", n));
}

char *bk_pg_auto_conf_clear(const char *conf, bool archive_off)
{
	static const char mark[] = "#bunker# ";
	size_t lines = 1;
	for (const char *p = conf; *p; p++)
		lines += *p == '\n';
	char *out = malloc(strlen(conf) + lines * (sizeof(mark) - 1) + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = conf; *p;) {
		size_t len = strcspn(p, "\n");
		if (managed_line(p, len, archive_off)) {
			memcpy(o, mark, sizeof(mark) - 1);
			o += sizeof(mark) - 1;
		}
		memcpy(o, p, len);
		o += len;
		p += len;
		if (*p == '\n')
			*o++ = *p++;
	}
	*o = '\0';
	return out;
}

static int write_recovery_config(const BkPgRestoreOpts *o, int64_t target_us, uint32_t want_tli)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/postgresql.auto.conf", o->target_dir);
	bool archive_off = o->archive_mode && strcmp(o->archive_mode, "off") == 0;
	uint8_t *old = NULL;
	size_t old_len;
	int r = bk_read_file(path, 1 << 20, &old, &old_len);
	if (r < 0 && r != -ENOENT)
		return bk_errorf_code(r, "read %s", path);
	char *kept = bk_pg_auto_conf_clear(old ? (const char *)old : "", archive_off);
	free(old);
	if (!kept)
		return -ENOMEM;
	/* rewritten in place: the file keeps the owner and mode the restore gave it */
	FILE *f = fopen(path, "w");
	if (!f) {
		free(kept);
		return bk_errorf_code(-errno, "open %s", path);
	}
	fputs(kept, f);
	free(kept);
	char cmd[8192];
	snprintf(cmd, sizeof(cmd), "%s %%f %%p", o->restore_command);
	fprintf(f, "\n# added by bunker pg restore\n");
	int e = conf_line(f, "restore_command", cmd);
	char tl[16]; /* as bunker read it: PostgreSQL would take "010" for octal */
	snprintf(tl, sizeof(tl), "%u", want_tli);
	if (e == 0)
		e = conf_line(f, "recovery_target_timeline", want_tli == BK_TLI_LATEST    ? "latest"
							     : want_tli == BK_TLI_CURRENT ? "current"
											  : tl);
	/* The recovery settings a restored server's postgresql.conf (or a file it
	 * includes) may still carry from an earlier recovery, which PostgreSQL ignores
	 * outside recovery: a stale recovery_target = 'immediate' would end this one at
	 * consistency, a second target fails it ("multiple recovery targets"), a
	 * stale delay holds it back. Each is set here, where the last setting of a name
	 * wins: the targets not wanted first to '' (an empty one after the one set
	 * would fail too), then the one wanted. */
	char utc[48];
	format_utc(utc, target_us);
	const char *targets[][2] = {
		{ "recovery_target", NULL },
		{ "recovery_target_time", o->target_time ? utc : NULL },
		{ "recovery_target_lsn", o->target_lsn },
		{ "recovery_target_xid", o->target_xid },
		{ "recovery_target_name", o->target_name },
	};
	for (size_t i = 0; e == 0 && i < BK_ARRAY_SIZE(targets); i++)
		if (!targets[i][1])
			e = conf_line(f, targets[i][0], "");
	for (size_t i = 0; e == 0 && i < BK_ARRAY_SIZE(targets); i++)
		if (targets[i][1])
			e = conf_line(f, targets[i][0], targets[i][1]);
	if (e == 0)
		e = conf_line(f, "recovery_target_inclusive", "on");
	if (e == 0)
		e = conf_line(f, "recovery_min_apply_delay", "0");
	if (e == 0 && (o->target_time || o->target_lsn || o->target_xid || o->target_name))
		e = conf_line(f, "recovery_target_action", o->target_action ? o->target_action : "promote");
	/* a trial restore beside the original must not archive into its repository */
	if (e == 0 && archive_off)
		e = conf_line(f, "archive_mode", "off");
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		e = -errno;
	if (fclose(f) != 0 && e == 0)
		e = -errno;
	if (e < 0)
		return bk_errorf_code(e, "write %s", path);
	/* A standby's backup carries its standby.signal: left there, it would outrank
	 * recovery.signal: without a target the server would never promote, and its
	 * walreceiver would follow the live old primary (docs/design.md). */
	snprintf(path, sizeof(path), "%s/standby.signal", o->target_dir);
	if (unlink(path) < 0 && errno != ENOENT)
		return bk_errorf_code(-errno, "remove %s", path);
	snprintf(path, sizeof(path), "%s/recovery.signal", o->target_dir);
	return bk_write_atomic(path, NULL, "", 0, 0600, false);
}

/* The length of path's first n bytes without trailing slashes ("/" stays). */
static size_t trimmed(const char *path, size_t n)
{
	while (n > 1 && path[n - 1] == '/')
		n--;
	return n;
}

/* Whether a[0..na) and b[0..nb) name the same path, trailing slashes aside. */
static bool same_path(const char *a, size_t na, const char *b, size_t nb)
{
	na = trimmed(a, na);
	return na == trimmed(b, nb) && !strncmp(a, b, na);
}

/* The location given for a tablespace the backup has at loc: o's
 * --tablespace-mapping NEW for OLD = loc (trailing slashes aside), else loc. */
static const char *mapped(const BkPgRestoreOpts *o, const char *loc)
{
	for (size_t i = 0; o && i < o->nts_mapping; i++) {
		const char *m = o->ts_mapping[i], *eq = strchr(m, '=');
		if (eq && same_path(m, (size_t)(eq - m), loc, strlen(loc)))
			return eq + 1;
	}
	return loc;
}

/* Whether a and b (absolute) are the same directory or one holds the other,
 * compared as written (trailing slashes aside). */
static bool nested(const char *a, const char *b)
{
	size_t na = trimmed(a, strlen(a)), nb = trimmed(b, strlen(b)), n = BK_MIN(na, nb);
	if (strncmp(a, b, n))
		return false;
	const char *longer = na > nb ? a : b;
	return na == nb || longer[n] == '/' || (n == 1 && a[0] == '/');
}

/* Cuts path to its parent in place ("/x" -> "/", "x" -> "."); returns where the
 * cut component began (its slash), 0 for none. */
static size_t up_one(char *path)
{
	char *slash = strrchr(path, '/');
	if (!slash) {
		strcpy(path, ".");
		return 0;
	}
	slash[slash == path] = '\0';
	return (size_t)(slash - path);
}

/* path (absolute) as the kernel resolves it, in ret: realpath() of its deepest
 * existing ancestor, then the components below that with "." and ".." folded as
 * written (they do not exist yet, so none is a symbolic link). Where a restore
 * writes is compared in this form: as written, a "..", a "." or a symbolic link
 * hid a location in or equal to the data directory (found by review). A dangling
 * symbolic link on the way is refused (-EEXIST, as by check_unused): where it
 * leads is not known yet. */
static int canonical(const char *path, char ret[PATH_MAX])
{
	char head[PATH_MAX];
	if (snprintf(head, sizeof(head), "%s", path) >= (int)sizeof(head))
		return bk_errorf(BK_E_USAGE, "%s: path too long", path);
	size_t cut = strlen(head); /* path[cut..] lies below head */
	struct stat st;
	while (!realpath(head, ret)) {
		if (errno != ENOENT)
			return bk_errorf_code(-errno, "%s", head);
		bool below = strcmp(head, path); /* path lies below the link */
		if (lstat(head, &st) == 0)
			return bk_errorf(-EEXIST, "%s%s%s is a dangling symbolic link", path,
					 below ? ": " : "", below ? head : "");
		cut = up_one(head);
	}
	size_t n = strlen(ret);
	for (const char *c = path + cut; *c;) {
		c += strspn(c, "/");
		size_t len = strcspn(c, "/");
		if (len == 2 && !strncmp(c, "..", 2)) {
			while (n > 1 && ret[n - 1] != '/')
				n--;
			n -= n > 1; /* "/a/b" -> "/a", "/a" -> "/" */
		} else if (len && !(len == 1 && c[0] == '.')) {
			if (n + 1 + len >= PATH_MAX)
				return bk_errorf(BK_E_USAGE, "%s: path too long", path);
			if (n > 1)
				ret[n++] = '/';
			memcpy(ret + n, c, len);
			n += len;
		}
		ret[n] = '\0';
		c += len;
	}
	return 0;
}

/* Calls fn for each tablespace in the backup's tablespace_map: lines "OID PATH",
 * where PostgreSQL escapes a newline, carriage return or backslash in PATH with a
 * backslash; PATH as o maps it (o NULL: as the backup has it). */
static int each_tablespace(const BkSnapshot *s, const BkPgRestoreOpts *o,
			   int (*fn)(void *ud, const char *oid, const char *loc), void *ud)
{
	const char *p = bk_snapshot_meta(s, "tablespace_map");
	int e = 0;
	while (e == 0 && p && *p) {
		char oid[32], loc[PATH_MAX];
		size_t n = strspn(p, "0123456789"), k = 0;
		bool ok = n > 0 && n < sizeof(oid) && p[n] == ' ';
		if (ok) {
			memcpy(oid, p, n);
			oid[n] = '\0';
			p += n + 1;
		}
		for (; *p && *p != '\n'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (k + 1 < sizeof(loc))
				loc[k++] = *p;
			else
				ok = false;
		}
		if (*p == '\n')
			p++;
		loc[k] = '\0';
		if (!ok || k == 0 || loc[0] != '/')
			e = bk_errorf(BK_E_CORRUPT, "tablespace_map: a line is not OID /PATH");
		else
			e = fn(ud, oid, mapped(o, loc));
	}
	return e;
}

typedef struct {
	const char *old;
	size_t len;
	bool found;
	char list[512]; /* the backup's locations, for the error */
} MapCheck;

static int find_old(void *ud, const char *oid, const char *loc)
{
	(void)oid;
	MapCheck *m = ud;
	m->found |= same_path(loc, strlen(loc), m->old, m->len);
	size_t n = strlen(m->list);
	snprintf(m->list + n, sizeof(m->list) - n, "%s%s", n ? ", " : "", loc);
	return 0;
}

#define PLACES_MAX 8 /* locations compared (beyond, each against the first) */
typedef struct {
	/* the data directory (absolute), then locations; [n]: the one being placed */
	char path[PLACES_MAX + 1][PATH_MAX];
	char canon[PLACES_MAX + 1][PATH_MAX]; /* each as canonical() resolves it, compared */
	char what[PLACES_MAX][48];            /* each named, for the error */
	size_t n;
} Places;

/* " (resolved: CANON)" in buf when path, as written, differs from canon; else "". */
static const char *resolved(char buf[PATH_MAX + 16], const char *path, const char *canon)
{
	buf[0] = '\0';
	if (!same_path(path, strlen(path), canon, strlen(canon)))
		snprintf(buf, PATH_MAX + 16, " (resolved: %s)", canon);
	return buf;
}

/* Whether tablespace oid's location loc coincides or nests with a location placed
 * before (BK_E_USAGE naming it), compared as canonical() resolves them. */
static int add_place(void *ud, const char *oid, const char *loc)
{
	Places *p = ud;
	size_t k = p->n;
	snprintf(p->path[k], sizeof(p->path[0]), "%s", loc);
	int e = canonical(loc, p->canon[k]);
	if (e < 0)
		return bk_error_wrap(e, "tablespace %s", oid);
	for (size_t i = 0; i < k; i++)
		if (nested(p->canon[i], p->canon[k])) {
			char a[PATH_MAX + 16], b[PATH_MAX + 16];
			return bk_errorf(BK_E_USAGE, "tablespace %s would be restored to %s%s, which "
					 "is, holds or lies in %s, %s%s (--tablespace-mapping)", oid,
					 loc, resolved(a, loc, p->canon[k]), p->what[i], p->path[i],
					 resolved(b, p->path[i], p->canon[i]));
		}
	if (p->n < PLACES_MAX)
		snprintf(p->what[p->n++], sizeof(p->what[0]), "tablespace %s's location", oid);
	return 0;
}

/* Checks o's --tablespace-mapping against the backup's tablespaces before anything
 * is written: each OLD=NEW two absolute paths, OLD one of the backup's locations
 * (a typo would restore to the original's), mapped once; and the locations, mapped,
 * apart from each other and from the data directory (found by review: a NEW in
 * the target's pg_tblspc was deleted by the server at its start). BK_E_USAGE
 * otherwise. */
static int check_mapping(const BkSnapshot *s, const BkPgRestoreOpts *o)
{
	for (size_t i = 0; i < o->nts_mapping; i++) {
		const char *m = o->ts_mapping[i], *eq = strchr(m, '=');
		if (!eq || m[0] != '/' || eq[1] != '/')
			return bk_errorf(BK_E_USAGE, "--tablespace-mapping '%s' is not OLD=NEW, two "
					 "absolute paths", m);
		size_t len = (size_t)(eq - m);
		for (size_t j = 0; j < i; j++) /* (earlier ones passed: each has its '=') */
			if (same_path(o->ts_mapping[j], (size_t)(strchr(o->ts_mapping[j], '=') -
								 o->ts_mapping[j]), m, len))
				return bk_errorf(BK_E_USAGE, "--tablespace-mapping: %.*s is mapped twice",
						 (int)len, m);
		MapCheck c = { .old = m, .len = len };
		int e = each_tablespace(s, NULL, find_old, &c);
		if (e < 0)
			return e;
		if (!c.found)
			return bk_errorf(BK_E_USAGE, "--tablespace-mapping: the backup has no tablespace "
					 "at %.*s (%s%s)", (int)len, m, c.list[0] ? "it has " : "it has none",
					 c.list);
	}
	/* the locations, mapped, apart from each other and the data directory */
	Places *p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->n = 1;
	char cwd[PATH_MAX] = "";
	int e = 0;
	if (o->target_dir[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		e = bk_errorf_code(-errno, "getcwd");
	else if (snprintf(p->path[0], sizeof(p->path[0]), "%s%s%s", cwd, cwd[0] ? "/" : "",
			  o->target_dir) >= (int)sizeof(p->path[0]))
		e = bk_errorf(BK_E_USAGE, "--target: path too long");
	else if ((e = canonical(p->path[0], p->canon[0])) < 0)
		bk_error_wrap(e, "--target");
	snprintf(p->what[0], sizeof(p->what[0]), "the data directory");
	if (e == 0)
		e = each_tablespace(s, o, add_place, p);
	free(p);
	return e;
}

static int write_map_line(void *ud, const char *oid, const char *loc)
{
	FILE *f = ud;
	fprintf(f, "%s ", oid);
	for (const char *c = loc; *c; c++) { /* escaped as PostgreSQL writes it */
		if (*c == '\n' || *c == '\r' || *c == '\\')
			fputc('\\', f);
		fputc(*c, f);
	}
	fputc('\n', f);
	return ferror(f) ? -EIO : 0;
}

/* With --tablespace-mapping: the restored tablespace_map, from which PostgreSQL
 * makes pg_tblspc's links, names the new locations. Each NEW as written, not as
 * canonical() resolves it: the server follows its link pg_tblspc/OID -> NEW, which
 * leads where the restore wrote (check_mapping compared the resolved forms, so a
 * ".." in it is harmless), and a symbolic link on the way stays the user's (one
 * chosen to move the storage later, say); pg_tablespace_location gives NEW as
 * written. Rewritten in place: it keeps the owner and mode the restore gave it. */
static int write_tablespace_map(const BkSnapshot *s, const BkPgRestoreOpts *o)
{
	if (!o->nts_mapping)
		return 0;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/tablespace_map", o->target_dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return bk_errorf_code(-errno, "open %s", path);
	int e = each_tablespace(s, o, write_map_line, f);
	if ((fflush(f) != 0 || fsync(fileno(f)) < 0) && e == 0)
		e = -errno;
	if (fclose(f) != 0 && e == 0)
		e = -errno;
	return e < 0 ? bk_errorf_code(e, "write %s", path) : 0;
}

/* Where a restore writes (the data directory, a tablespace's location) must be
 * missing or an empty directory, as for pg_basebackup: checked before anything is
 * written. what names it in the error. */
static int check_unused(const char *what, const char *path)
{
	struct stat st;
	DIR *d = opendir(path);
	if (!d && errno == ENOENT && lstat(path, &st) == 0)
		return bk_errorf(-EEXIST, "%s%s is a dangling symbolic link", what, path);
	if (!d)
		return errno == ENOENT ? 0 : bk_errorf_code(-errno, "%s%s", what, path);
	bool empty = true;
	for (struct dirent *de; empty && (de = readdir(d));)
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	bool marked = !empty && faccessat(dirfd(d), BK_RESTORE_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	closedir(d);
	if (marked) /* (found by review: "not empty" alone) */
		return bk_errorf(-EEXIST, "%s%s holds what a restore that was killed wrote (%s is "
				 "there): empty it, then run again", what, path, BK_RESTORE_MARKER);
	return empty ? 0 : bk_errorf(-EEXIST, "%s%s is not empty", what, path);
}

/* Marks dir while the restore writes it (unmark at the end): a restore killed
 * (SIGKILL, a crash) cannot take back what it wrote, and the next one says so
 * rather than "not empty". */
static int mark(const char *dir)
{
	char marker[PATH_MAX];
	snprintf(marker, sizeof(marker), "%s/" BK_RESTORE_MARKER, dir);
	int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return bk_errorf_code(-errno, "create %s", marker);
	close(fd);
	return 0;
}

static int unmark(const char *dir)
{
	char marker[PATH_MAX];
	snprintf(marker, sizeof(marker), "%s/" BK_RESTORE_MARKER, dir);
	return unlink(marker) < 0 ? bk_errorf_code(-errno, "remove %s", marker) : 0;
}

static int unmark_location(void *ud, const char *oid, const char *loc)
{
	(void)ud;
	(void)oid;
	return unmark(loc);
}

static int check_location(void *ud, const char *oid, const char *loc)
{
	(void)ud;
	char what[64];
	snprintf(what, sizeof(what), "tablespace %s: ", oid);
	return check_unused(what, loc);
}

typedef struct {
	size_t left; /* locations still to empty (those the restore began) */
	int err;     /* the first removal that failed */
} Emptying;

static int empty_location(void *ud, const char *oid, const char *loc)
{
	(void)oid;
	Emptying *em = ud;
	if (em->left == 0)
		return 0;
	em->left--;
	int e = bk_remove_contents(loc);
	if (e < 0 && !em->err)
		em->err = e;
	return 0;
}

/* After a failed or interrupted restore: empties the data directory and the
 * tablespace locations the restore began to write (`begun`, in map order), each
 * missing or empty when it began (check_unused), so that nothing half-restored is
 * taken for a data directory and the same command can run again. The directories
 * themselves stay; a data directory that was there before (`before`, else NULL)
 * gets back the owner and mode it had, as the restore changed them (as root, to
 * the server's user and 0700: found by review). Returns e, its detail kept and
 * saying whether all went. */
static int take_back(const BkSnapshot *s, const BkPgRestoreOpts *o, size_t begun,
		     const struct stat *before, int e)
{
	char why[1024];
	snprintf(why, sizeof(why), "%s", bk_error_detail());
	Emptying em = { .left = begun };
	(void)each_tablespace(s, o, empty_location, &em);
	int d = bk_remove_contents(o->target_dir);
	struct stat now;
	/* (only what changed: as another user, a chown back to the owner would fail) */
	if (d == 0 && before && stat(o->target_dir, &now) == 0 &&
	    (((now.st_uid != before->st_uid || now.st_gid != before->st_gid) &&
	      chown(o->target_dir, before->st_uid, before->st_gid) < 0) ||
	     ((now.st_mode & 07777) != (before->st_mode & 07777) &&
	      chmod(o->target_dir, before->st_mode & 07777) < 0)))
		d = bk_errorf_code(-errno, "put back %s's owner and mode", o->target_dir);
	if (!em.err)
		em.err = d;
	if (em.err < 0)
		return bk_errorf(e, "%s (what it wrote could not all be removed: %s)", why,
				 bk_error_detail());
	return bk_errorf(e, "%s (what it wrote is removed)", why);
}

/* Whether user uid (group gid and the user's other groups) can reach every path
 * of needs, asked with access() in a child that takes that identity (root only).
 * BK_E_USAGE names the first it cannot. */
static int server_can_reach(uid_t uid, gid_t gid, const BkPathAccess *needs, size_t n)
{
	if (n == 0 || n > 100) /* the child's exit status names the path: 1..n */
		return 0;
	struct passwd *pw = getpwuid(uid);
	if (pw)
		gid = pw->pw_gid; /* the server runs with its user's groups */
	int ngroups = 64;
	gid_t *groups = malloc(sizeof(*groups) * (size_t)ngroups);
	if (pw && groups && getgrouplist(pw->pw_name, gid, groups, &ngroups) < 0) {
		gid_t *more = realloc(groups, sizeof(*groups) * (size_t)ngroups);
		if (more)
			groups = more;
		if (!more || getgrouplist(pw->pw_name, gid, groups, &ngroups) < 0)
			ngroups = 0;
	}
	if (!pw || !groups)
		ngroups = 0; /* an unknown user: its uid and gid alone */
	char user[64];
	snprintf(user, sizeof(user), "%s%s(uid %u)", pw ? pw->pw_name : "", pw ? " " : "",
		 (unsigned)uid);
	pid_t pid = fork();
	if (pid < 0) {
		free(groups);
		return bk_errorf_code(-errno, "fork");
	}
	if (pid == 0) {
		if (setgroups((size_t)ngroups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(127);
		for (size_t i = 0; i < n; i++)
			if (access(needs[i].path, needs[i].mode) < 0)
				_exit((int)i + 1);
		_exit(0);
	}
	free(groups);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return bk_errorf_code(-errno, "waitpid");
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 127;
	if (code == 0 || code > (int)n)
		return 0; /* reachable, or no identity to check with (no CAP_SETGID): PostgreSQL tells */
	const BkPathAccess *a = &needs[code - 1];
	if (a->dir)
		return bk_errorf(BK_E_USAGE, "the server would run as the data directory's owner, "
				 "user %s, who cannot get through %s to %s: make it reachable for "
				 "that user (or restore elsewhere)", user, a->path, a->dir);
	return bk_errorf(BK_E_USAGE, "restore_command would run as the data directory's owner, "
			 "user %s, who cannot %s %s: make it reachable for that user (or restore "
			 "as that user)", user, a->mode == X_OK ? "run" : "read", a->path);
}

/* What the server needs besides restore_command's: to get through the directories
 * above the data directory and each tablespace location to them (the restore gives
 * it the locations themselves; the parents it makes are 0755). Each is checked at
 * the deepest one that exists (found by trying: a data directory under a 0700
 * directory of root's restored, and the server could not start). */
#define MAX_NEEDS 64
typedef struct {
	BkPathAccess needs[MAX_NEEDS];
	char paths[MAX_NEEDS][PATH_MAX];
	size_t n;
} Needs;

static int add_parent(void *ud, const char *oid, const char *loc)
{
	(void)oid;
	Needs *nd = ud;
	if (nd->n == MAX_NEEDS)
		return 0;
	char *p = nd->paths[nd->n];
	snprintf(p, PATH_MAX, "%.*s", (int)trimmed(loc, strlen(loc)), loc);
	struct stat st;
	do
		(void)up_one(p);
	while (stat(p, &st) < 0 && strcmp(p, ".") && strcmp(p, "/"));
	nd->needs[nd->n++] = (BkPathAccess){ p, X_OK, loc };
	return 0;
}

/* The owner of the backup's PG_VERSION: the server's user, who runs restore_command. */
static int check_server_needs(BkRepo *r, const BkSnapshot *s, const BkPgRestoreOpts *o)
{
	if (!o->restore_owner || o->nserver_needs == 0)
		return 0;
	Needs *nd = malloc(sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	nd->n = 0;
	for (size_t i = 0; i < o->nserver_needs && nd->n < MAX_NEEDS; i++)
		nd->needs[nd->n++] = o->server_needs[i];
	(void)add_parent(nd, NULL, o->target_dir);
	BkTree *t = NULL;
	const BkTreeEntry *ent = NULL;
	int e = each_tablespace(s, o, add_parent, nd);
	if (e == 0)
		e = bk_tree_lookup(r, s->root, "PG_VERSION", &t, &ent);
	if (e == 0 && ent)
		e = server_can_reach(ent->uid, ent->gid, nd->needs, nd->n);
	bk_tree_free(t);
	free(nd);
	return e;
}

/* Makes the missing directories above a data directory or tablespace location
 * traversable (0755), as the server must get through them (the restore makes the
 * directory itself 0700); existing ones are left as they are. */
static int make_parents(const char *path)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", path);
	return up_one(parent) == 0 ? 0 : bk_mkdir_p(parent, 0755); /* (0: "/" or ".") */
}

typedef struct {
	BkRepo *r;
	const BkPgRestoreOpts *o;
	const BkSnapshot *s;
	struct stat owner; /* of the restored files, with restore_owner */
	uint64_t *done;    /* bytes restored so far, for progress */
	size_t begun;      /* locations this restore began to write, in map order */
} Tablespaces;

/* Restores a tablespace's files straight into its location, which is often on
 * another file system than the data directory. */
static int restore_tablespace(void *ud, const char *oid, const char *loc)
{
	Tablespaces *t = ud;
	char from[64];
	snprintf(from, sizeof(from), "%s/%s", BK_TABLESPACE_DIR, oid);
	BkRestoreOpts ro = { .restore_owner = t->o->restore_owner, .from = from,
			     .total = t->s->logical_bytes, .done = t->done, .progress = t->o->progress,
			     .progress_ud = t->o->progress_ud, .stop = t->o->stop };
	/* checked again: the data directory was written since the first check */
	int e = check_location(NULL, oid, loc);
	if (e < 0)
		return e;
	t->begun++; /* from here on take_back empties it */
	e = make_parents(loc);
	if (e == 0 && (e = bk_mkdir_p(loc, 0700)) < 0)
		bk_error_wrap(e, "%s", loc);
	if (e == 0)
		e = mark(loc);
	if (e == 0)
		e = bk_restore(t->r, t->s, loc, &ro);
	if (e < 0)
		return bk_error_wrap(e, "tablespace %s", oid);
	if (chmod(loc, 0700) < 0)
		return bk_errorf_code(-errno, "chmod %s", loc);
	if (t->o->restore_owner && chown(loc, t->owner.st_uid, t->owner.st_gid) < 0)
		return bk_errorf_code(-errno, "chown %s", loc);
	return 0;
}

/* A transaction id as PostgreSQL's recovery_target_xid reads it in decimal: no
 * sign, no leading zero (strtoul base 0 would take it for octal), within 64 bits,
 * its low 32 bits (what PostgreSQL keeps) not one of the special ids 0-2. */
static bool xid_valid(const char *s)
{
	if (!*s || *s == '0' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 20)
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, NULL, 10);
	/* an epoch-qualified one (txid_current(), 64 bits): PostgreSQL takes its low 32
	 * bits (found by review: refused past the first wraparound) */
	return errno == 0 && (v & UINT32_MAX) >= 3;
}

/* A restore point name: what pg_create_restore_point takes (below NAMEDATALEN),
 * with no control character to break the line written to postgresql.auto.conf. */
static bool name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int bk_pg_restore(BkRepo *r, const BkPgRestoreOpts *o, BkSnapshot **ret_snap)
{
	int ntargets = !!o->target_time + !!o->target_lsn + !!o->target_xid + !!o->target_name;
	if (ntargets > 1)
		return bk_errorf(BK_E_USAGE, "give at most one recovery target");
	if (o->target_action && strcmp(o->target_action, "promote") &&
	    strcmp(o->target_action, "pause") && strcmp(o->target_action, "shutdown"))
		return bk_errorf(BK_E_USAGE, "--target-action must be promote, pause or shutdown");
	if (o->archive_mode && strcmp(o->archive_mode, "preserve") && strcmp(o->archive_mode, "off"))
		return bk_errorf(BK_E_USAGE, "--archive-mode must be preserve or off");
	if (!bk_cluster_name_valid(o->cluster))
		return bk_errorf(BK_E_USAGE, "invalid cluster name '%s'", o->cluster);
	char name[128];
	snprintf(name, sizeof(name), "pg/%s/base", o->cluster);
	int64_t before_us = 0;
	uint64_t before_lsn = 0;
	int e = 0;
	if (o->target_time && (e = bk_pg_parse_time(o->target_time, &before_us)) < 0)
		return e;
	/* (0 stands for no target below) */
	if (o->target_time && before_us <= 0)
		return bk_errorf(BK_E_USAGE, "'%s': no base backup ends before 1970", o->target_time);
	if (o->target_lsn && (bk_wal_lsn_parse(o->target_lsn, &before_lsn) < 0 || !before_lsn))
		return bk_errorf(BK_E_USAGE, "'%s' is not an LSN (want X/Y, not 0/0)", o->target_lsn);
	if (o->target_xid && !xid_valid(o->target_xid))
		return bk_errorf(BK_E_USAGE, "'%s' is not a transaction id (want a decimal number, "
			      "as txid_current() gives it, whose low 32 bits are 3 or more)",
			      o->target_xid);
	if (o->target_name && !name_valid(o->target_name))
		return bk_errorf(BK_E_USAGE, "restore point name must be 1 to 63 bytes without "
			      "control characters");

	uint32_t want_tli = BK_TLI_LATEST;
	if ((e = parse_timeline(o->target_timeline, &want_tli)) < 0)
		return e;

	BkWalArchive wa;
	if ((e = bk_wal_archive_load(r, o->cluster, &wa)) < 0)
		return e;
	/* a restore point or an xid: placed by walking the WAL (at: where; 0: not) */
	WalTarget wt = { .name = o->target_name, .walked_from = UINT64_MAX, .stop = o->stop, .o = o };
	if (o->target_xid)
		wt.xid = (uint32_t)strtoull(o->target_xid, NULL, 10);
	WalTarget *place = o->target_name || o->target_xid ? &wt : NULL;
	uint64_t placed_at = 0;
	bool missing = false; /* refused once the history followed is known right */
	uint8_t id[32];
	bool chosen = !o->snapshot || !strcmp(o->snapshot, "latest");
	if (!chosen)
		e = bk_snapshot_resolve(r, o->snapshot, NULL, id);
	else
		e = choose_backup(&wa, name, before_us, before_lsn, place, &placed_at,
				  &missing, want_tli, o->target_timeline, id);
	BkSnapshot *s = NULL;
	if (e == 0)
		e = bk_snapshot_load(r, id, &s);
	if (e < 0) {
		bk_wal_archive_release(&wa);
		free(wt.hits);
		return e;
	}
	const char *start_s = bk_snapshot_meta(s, "start_lsn"), *stop_s = bk_snapshot_meta(s, "stop_lsn"),
		   *tli_s = bk_snapshot_meta(s, "timeline");
	uint64_t start, stop;
	if (strcmp(s->kind, "pg-base") || !start_s || !stop_s || !tli_s ||
	    bk_wal_lsn_parse(start_s, &start) < 0 || bk_wal_lsn_parse(stop_s, &stop) < 0)
		e = bk_errorf(BK_E_USAGE, "snapshot %.16s is not a base backup", bk_id_hex(id).s);
	else if (strcmp(s->name, name) != 0) /* its WAL is another cluster's */
		e = bk_errorf(BK_E_USAGE, "snapshot %.16s is %s, not a base backup of cluster '%s'",
			      bk_id_hex(id).s, s->name, o->cluster);
	/* the rule choose_backup applies; a SNAPSHOT given is checked the same way */
	char when[48];
	bool late = e == 0 && !chosen && !ends_before(s->time_us, stop, before_us, before_lsn);
	if (late && before_us && s->time_us >= before_us) {
		format_utc(when, s->time_us);
		e = bk_errorf(BK_E_USAGE, "snapshot %.16s ended at %s, after the target time: recovery "
			      "cannot stop inside its backup (latest picks one that ended before)",
			      bk_id_hex(id).s, when);
	} else if (late) {
		e = bk_errorf(BK_E_USAGE, "snapshot %.16s stopped at %s, after the target LSN: recovery "
			      "cannot stop inside its backup (latest picks one that ended before)",
			      bk_id_hex(id).s, stop_s);
	}

	BkWalChain c;
	uint32_t tli = tli_s ? (uint32_t)strtoul(tli_s, NULL, 10) : 0;
	/* a timeline given that the archive has no file of: a wrong number, not a
	 * history file lost (found by review: exit 5, "history file ... is missing") */
	if (e == 0 && want_tli != BK_TLI_LATEST && want_tli != BK_TLI_CURRENT && want_tli > tli &&
	    !bk_wal_archive_has_timeline(&wa, want_tli))
		e = bk_errorf(BK_E_USAGE, "--target-timeline %u: the archive holds no WAL of timeline "
			      "%u", want_tli, want_tli);
	if (e == 0)
		e = bk_pg_wal_chain(&wa, tli, start, stop, want_tli, &c);
	if (e == 0 && !c.on_path)
		e = bk_errorf(BK_E_USAGE, "snapshot %.16s (timeline %u) is not on the history of "
			      "timeline %u%s", bk_id_hex(id).s, tli, c.target_tli,
			      o->target_timeline ? "" : ", the newest archived (--target-timeline)");
	if (e == 0 && place && !chosen) { /* the SNAPSHOT given: its first match after it */
		e = target_walk(r, o->cluster, &c, start, UINT64_MAX, &wt);
		const Hit *h = e == 0 ? target_first(&wt, start) : NULL;
		if (h && !h->unsure && h->lsn >= stop)
			placed_at = h->lsn;
		else if (h && !h->unsure)
			e = target_inside(&wt, o->cluster, id, start, stop, true);
		else if (e == 0 && !h && !wt.cut_short)
			missing = true;
	}
	/* from here on, a placed target is checked as an LSN target (what recovery
	 * reads to reach it) */
	if (placed_at)
		before_lsn = placed_at;
	BkWalWentOn went = { 0 };
	if (e == 0 && !o->target_timeline)
		e = bk_pg_wal_went_on(&wa, &c, chosen ? 0 : tli, &went);
	/* (an LSN target before the fork is on both histories, and so is a time target
	 * whose stop, the first transaction that ended after it, lies before the fork:
	 * found by walking the WAL from the backup's start to the fork) */
	bool before_fork = went.parent && before_lsn && before_lsn < went.fork;
	if (e == 0 && went.parent && before_us && !before_lsn) {
		WalTarget tt = { .after_us = before_us, .walked_from = UINT64_MAX, .stop = o->stop,
				 .o = o };
		e = target_walk(r, o->cluster, &c, start, went.fork / c.seg_size, &tt);
		const Hit *h = e == 0 ? target_first(&tt, start) : NULL;
		before_fork = h && !h->unsure && h->lsn < went.fork;
		free(tt.hits);
	}
	if (e == 0 && went.parent && !before_fork) {
		char fork[BK_WAL_LSN_MAX];
		bk_wal_lsn_format(fork, sizeof(fork), went.fork);
		e = bk_errorf(BK_E_USAGE, "timeline %u went on after timeline %u forked from it at %s "
			      "(%s was archived after %08X.history): --target-timeline %u restores along "
			      "timeline %u, --target-timeline latest along timeline %u", went.parent,
			      went.child, fork, went.seg, went.child, went.parent, went.parent,
			      c.target_tli);
	}
	if (e == 0 && missing)
		e = target_missing(&wt, c.target_tli);
	const char *lack = NULL;
	BkWalChainLack k = e == 0 ? bk_pg_wal_chain_lacks(&c, stop, before_lsn, &lack)
				  : BK_WAL_CHAIN_COMPLETE;
	/* without an LSN target, recovery runs to the end of the archive (or to an xid
	 * or name that may lie past a gap): a gap anywhere stops it short. A time
	 * target before the gap is reached first: the checks below see the chain end
	 * at the gap, and a target they find past it is refused as the gap (found by
	 * review: a later segment lost refused a target before it) */
	bool gap_after = false;
	if (e == 0 && k == BK_WAL_CHAIN_COMPLETE && c.gap && !before_lsn) {
		gap_after = before_us != 0;
		if (!gap_after) {
			k = BK_WAL_CHAIN_GAP;
			lack = c.next_needed;
		}
	}
	if (k == BK_WAL_CHAIN_NO_HISTORY)
		e = bk_errorf(BK_E_CORRUPT, "WAL chain broken: history file %s is missing", lack);
	else if (k == BK_WAL_CHAIN_GAP)
		e = bk_errorf(BK_E_CORRUPT, "WAL chain broken: segment %s is missing", lack);
	else if (e == 0 && c.fork_unread && !(before_lsn && before_lsn < c.contiguous_end)) {
		/* (also when complete up to the backup's end: any recovery past it reads on) */
		size_t t = c.fork_unread;
		char began[BK_WAL_LSN_MAX];
		bk_wal_lsn_format(began, sizeof(began), c.begin[t]);
		e = bk_errorf(-ENOENT, "WAL chain incomplete: segment %s is not archived yet (timeline "
			      "%u began at %s in it: without it, recovery would read timeline %u's "
			      "segment and go on along timeline %u; --target-timeline %u restores "
			      "along that)", c.next_needed, c.tli[t], began, c.tli[t - 1],
			      c.tli[t - 1], c.tli[t - 1]);
	} else if (k == BK_WAL_CHAIN_NOT_YET && before_lsn > stop && c.last[0]) {
		char at[BK_WAL_LSN_MAX], end[BK_WAL_LSN_MAX];
		bk_wal_lsn_format(at, sizeof(at), before_lsn);
		bk_wal_lsn_format(end, sizeof(end), c.contiguous_end);
		e = bk_errorf(-ENOENT, "the target LSN %s is past the WAL archived, which goes on "
			      "unbroken to %s (%s): segment %s is not archived yet", at, end, c.last,
			      lack);
	} else if (k == BK_WAL_CHAIN_NOT_YET)
		e = bk_errorf(-ENOENT, "WAL chain incomplete: segment %s is not archived yet", lack);
	/* A segment on the way whose walk stopped short (damaged WAL, or bytes that are
	 * not WAL after some record) ends recovery there, whatever is archived after
	 * it: without a target PostgreSQL would promote there, silently older. The
	 * chain ends at its last readable record; below, a target must lie before. */
	char damaged[BK_WAL_NAME_MAX] = "", d_at[BK_WAL_LSN_MAX] = "";
	uint64_t reach = 0; /* the last record recovery reads before the damage; 0: unknown */
	if (e == 0 && c.last[0])
		e = bk_pg_wal_first_stopped(r, o->cluster, &c, start, before_lsn, damaged, &reach);
	if (e == 0 && damaged[0]) {
		bool hint = reach >= stop; /* an LSN target that restores */
		bk_wal_lsn_format(d_at, sizeof(d_at), reach);
		const char *why = !reach ? "before the target" :
				  reach < stop ? "before the backup's end (an older backup may "
						 "restore)" :
				  before_lsn && before_lsn > reach ? "before the target LSN" :
				  o->target_xid || o->target_name ? "perhaps before the target" :
				  !before_us && !before_lsn ? "before the WAL archived after it" : NULL;
		if (why)
			e = bk_errorf(BK_E_CORRUPT, "WAL damaged: recovery can read no WAL of %s past "
				      "the record at %s, and would end there, %s%s%s%s", damaged,
				      reach ? d_at : "(not known)", why, hint ? " (--target-lsn " : "",
				      hint ? d_at : "", hint ? " restores up to it)" : "");
		else { /* a time target: the checks below see the chain end at the damage */
			uint64_t end_seg = reach / c.seg_size; /* the segment holding reach */
			if (bk_pg_wal_path_segment(&c, end_seg, c.last) < 0)
				c.last[0] = '\0';
			c.contiguous_end = (end_seg + 1) * c.seg_size;
		}
	}
	/* an LSN target needs a record at or after it that recovery reads: past the
	 * last one (after a pg_switch_wal(), say) PostgreSQL replays to the end of the
	 * archive and fails. When the newest segment holds none (it stopped at once, or
	 * one record covers it), that is the last record whole in the segments before,
	 * however far back: a record that begins segments before the newest may not
	 * end in the archive (found by review: a target two segments back was taken
	 * inside a 3.5 MB message whose end was not archived). */
	BkWalRecord newest = { 0 }; /* the newest segment on the way, read once */
	BkWalEnd end = { 0 };
	bool read_newest = e == 0 && c.last[0] && (before_lsn || before_us);
	if (read_newest && (e = bk_wal_record_get(r, o->cluster, c.last, &newest)) == 0)
		e = bk_pg_wal_last_record(r, &newest, &end);
	uint64_t last_read = 0;
	if (e == 0 && before_lsn && read_newest)
		e = bk_pg_wal_reach(r, o->cluster, &c, c.contiguous_end / c.seg_size - 1, &end,
				    &last_read);
	if (e == 0 && before_lsn && last_read && before_lsn > last_read) {
		char at[BK_WAL_LSN_MAX], seg[BK_WAL_NAME_MAX];
		bk_wal_lsn_format(at, sizeof(at), last_read);
		if (bk_pg_wal_path_segment(&c, last_read / c.seg_size, seg) < 0)
			memcpy(seg, c.last, sizeof(seg));
		e = bk_errorf(-ENOENT, "the target LSN is after the last record archived, at %s in "
			      "%s: recovery would end before reaching it", at, seg);
	}
	/* WAL past a time target must be archived too: a segment's records are older
	 * than its push, and PostgreSQL fails a recovery that ends before its target */
	if (e == 0 && before_us && read_newest && before_us > newest.pushed_us) {
		format_utc(when, newest.pushed_us);
		e = bk_errorf(-ENOENT, "the target time is after the newest WAL archived on the "
			      "way, %s (archived at %s): recovery would end before reaching it",
			      c.last, when);
	}
	/* PostgreSQL stops a time target at the first transaction that ended after it:
	 * with none archived, it replays to the end and fails */
	BkWalLastXact lx = { 0 };
	if (e == 0 && before_us && read_newest)
		e = bk_pg_wal_last_xact(r, o->cluster, &c, start, &end, before_us, &lx);
	if (e == 0 && lx.known && lx.xact_us && lx.xact_us <= before_us) { /* (known: read) */
		format_utc(when, lx.xact_us);
		e = bk_errorf(-ENOENT, "the target time is after the last transaction archived, which "
			      "ended at %s (in %s): recovery would end before reaching it; without a "
			      "target it restores that state", when, lx.segment);
	} else if (e == 0 && lx.known && !lx.xact_us) {
		e = bk_errorf(-ENOENT, "the target time is after the last transaction archived: the WAL "
			      "from %s to %s holds none, so recovery would end before reaching it; "
			      "without a target it restores that state", lx.segment, c.last);
	}
	if (e == -ENOENT && damaged[0]) /* a time target after what the damaged WAL reaches */
		e = bk_errorf(BK_E_CORRUPT, "WAL damaged: recovery can read no WAL of %s past the "
			      "record at %s, and no transaction before it ended after the target "
			      "time: recovery would end there, before the target (--target-lsn %s "
			      "restores up to it)", damaged, d_at, d_at);
	else if (e == -ENOENT && gap_after && !c.fork_unread) /* a time target past the gap */
		e = bk_errorf(BK_E_CORRUPT, "WAL chain broken: segment %s is missing, and no "
			      "transaction before it ended after the target time: recovery would "
			      "end there, before the target", c.next_needed);
	if (read_newest)
		bk_wal_record_release(&newest);
	bk_wal_archive_release(&wa);
	free(wt.hits);
	if (e == 0 && o->ret_target_at)
		*o->ret_target_at = placed_at;

	if (e == 0)
		e = check_unused("", o->target_dir);
	if (e == 0)
		e = check_server_needs(r, s, o);
	uint64_t done = 0; /* bytes restored, data directory and tablespaces */
	if (e == 0)
		e = check_mapping(s, o);
	if (e == 0)
		e = each_tablespace(s, o, check_location, NULL);
	/* (before writing: a parent that cannot be made is no restore to take back,
	 * found by review) */
	if (e == 0 && (e = make_parents(o->target_dir)) < 0)
		bk_error_wrap(e, "--target %s", o->target_dir);
	bool writing = e == 0; /* from here on a failure takes back what was written */
	struct stat before; /* the target as it was, if it was there (empty) */
	bool existed = writing && stat(o->target_dir, &before) == 0;
	if (e == 0 && (e = bk_mkdir_p(o->target_dir, 0700)) < 0)
		bk_error_wrap(e, "--target %s", o->target_dir);
	if (e == 0)
		e = mark(o->target_dir);
	if (e == 0) {
		static const char *const skip[] = { BK_TABLESPACE_DIR };
		BkRestoreOpts ro = { .restore_owner = o->restore_owner, .total = s->logical_bytes,
				     .done = &done, .progress = o->progress,
				     .progress_ud = o->progress_ud, .excludes = skip, .nexcludes = 1,
				     .stop = o->stop };
		e = bk_restore(r, s, o->target_dir, &ro);
	}
	if (e == 0 && chmod(o->target_dir, 0700) < 0)
		e = bk_errorf_code(-errno, "chmod %s", o->target_dir);
	/* as root: the data directory, its tablespaces and recovery.signal go to the
	 * owner of the restored files (PG_VERSION's) */
	Tablespaces ts = { .r = r, .o = o, .s = s, .done = &done };
	if (e == 0 && o->restore_owner) {
		char pv[PATH_MAX];
		snprintf(pv, sizeof(pv), "%s/PG_VERSION", o->target_dir);
		if (stat(pv, &ts.owner) < 0)
			e = bk_errorf_code(-errno, "stat %s", pv);
		else if (chown(o->target_dir, ts.owner.st_uid, ts.owner.st_gid) < 0)
			e = bk_errorf_code(-errno, "chown %s", o->target_dir);
	}
	if (e == 0)
		e = each_tablespace(s, o, restore_tablespace, &ts);
	if (e == 0)
		e = write_tablespace_map(s, o);
	if (e == 0)
		e = write_recovery_config(o, before_us, want_tli);
	if (e == 0 && o->restore_owner) {
		char f[PATH_MAX];
		snprintf(f, sizeof(f), "%s/recovery.signal", o->target_dir);
		if (chown(f, ts.owner.st_uid, ts.owner.st_gid) < 0)
			e = bk_errorf_code(-errno, "chown %s", f);
	}
	/* the data directory's last: the restore is whole once it is gone */
	if (e == 0)
		e = each_tablespace(s, o, unmark_location, NULL);
	if (e == 0)
		e = unmark(o->target_dir);
	if (e < 0 && writing)
		e = take_back(s, o, ts.begun, existed ? &before : NULL, e);
	if (e < 0) {
		bk_snapshot_free(s);
		return e;
	}
	*ret_snap = s;
	return 0;
}
