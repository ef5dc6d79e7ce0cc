#include "pg/recovery.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pg/datadir.h"
#include "store/error.h"
#include "store/restorer.h"
#include "store/util.h"

/* ---- time ---- */

/* Two decimal digits at p, no sign or space (sscanf's %2d took "-1" and " 1"). */
static bool two_digits(const char *p, int *ret)
{
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return false;
	*ret = (p[0] - '0') * 10 + (p[1] - '0');
	return true;
}

int bk_pg_parse_time(const char *s, int64_t *ret_us, bool *ret_zone)
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
	if (*p == '.') { /* to the microsecond, rounded as PostgreSQL reads it (found by a
			  * helper's exploration: .1234567 was cut to .123456) */
		int digits = 0, seventh = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 6)
				us = us * 10 + (*p - '0');
			else if (digits == 6)
				seventh = *p - '0';
		for (int d = digits; d < 6; d++)
			us *= 10;
		us += seventh >= 5;
	}
	while (*p == ' ')
		p++;
	int64_t offset = 0;
	bool zone = *p == 'Z' || *p == '+' || *p == '-' || !strcmp(p, "UTC");
	if (*p == 'Z' || !strcmp(p, "UTC")) {
		p += *p == 'Z' ? 1 : 3;
	} else if (*p == '+' || *p == '-') {
		/* +HH, +HHMM or +HH:MM, as PostgreSQL writes them; at most 15:59 */
		int sign = *p == '-' ? -1 : 1, hh = 0, mm = 0;
		if (!two_digits(p + 1, &hh))
			return bk_errorf(BK_E_USAGE, "'%s': bad time zone (want +HH[:MM])", s);
		p += 3;
		bool colon = *p == ':';
		if (colon)
			p++;
		if (colon || *p) {
			if (!two_digits(p, &mm))
				return bk_errorf(BK_E_USAGE, "'%s': bad time zone (want +HH[:MM])", s);
			p += 2;
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
	if (ret_zone)
		*ret_zone = zone;
	return 0;
}

void bk_pg_format_time(char out[BK_PG_TIME_MAX], int64_t target_us)
{
	int64_t secs = target_us / 1000000, us = target_us % 1000000;
	if (us < 0) {
		secs--;
		us += 1000000;
	}
	time_t t = (time_t)secs;
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, BK_PG_TIME_MAX, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out + n, BK_PG_TIME_MAX - n, ".%06d+00", (int)us);
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
	uint64_t at_lsn;  /* an LSN target (name NULL, xid 0, after_us 0): its stop */
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
	if (t->at_lsn) { /* the first record that starts at or after it */
		if (rec->lsn >= t->at_lsn)
			return target_hit(t, rec->lsn, false);
	} else if (t->after_us) { /* a time: the first end after it, unsure when its time unread */
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
static int target_missing(const WalTarget *t, const BkWalChain *c)
{
	char what[128], note[BK_WAL_PARTIAL_NOTE_MAX];
	target_what(t, what);
	bk_pg_wal_partial_note(&c->partial, note); /* (it may be there, in a failover's) */
	return bk_errorf(-ENOENT, "no %s in the WAL archived after the base backup along timeline "
			 "%u (%s to %s, walked): recovery would replay it all and fail%s%s", what,
			 c->target_tli, t->first_seg, t->last_seg, note[0] ? "; " : "", note);
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
			 uint32_t want_tli, const BkPgRestoreOpts *o, uint8_t ret_id[32])
{
	bool tli_given = o->target_timeline != NULL;
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
		char t[BK_PG_TIME_MAX], b[BK_PG_TIME_MAX];
		bool zone = true;
		if (before_us) {
			bk_pg_parse_time(o->target_time, &(int64_t){ 0 }, &zone);
			bk_pg_format_time(t, before_us);
			bk_pg_format_time(b, old->time_us);
		} else {
			bk_wal_lsn_format(t, sizeof(t), before_lsn);
			bk_wal_lsn_format(b, sizeof(b), old->stop);
		}
		e = bk_errorf(-ENOENT, "no base backup of cluster '%s' ends before the target %s %s%s: "
			      "the oldest, %.16s, ended at %s", a->cluster, before_us ? "time" : "LSN",
			      t, zone ? "" : BK_PG_TIME_NO_ZONE,
			      bk_id_hex(old->id).s, b);
	} else if (e == 0) {
		e = bk_errorf(-ENOENT, "no base backup of cluster '%s' %s", a->cluster,
			      before_us || before_lsn ? "ends before the target"
						    : "is on the history of the timeline to follow");
	}
	free(l.c);
	return e;
}

/* For a restore without a target refused because the WAL up to the end of the
 * newest backup, `newest`, is not archived yet: the newest older backup on the
 * path whose WAL to its end is archived without a gap, which restores to the end
 * of the archive (found by review: the refusal named none, and in an emergency
 * that older backup is the most recent state there is). ret: "; the older base
 * backup ... restores ...", or "" when there is none. */
static void older_restorable(const BkWalArchive *a, const char *name, const BkSnapshot *newest,
			     uint32_t want_tli, char *ret, size_t cap)
{
	ret[0] = '\0';
	Candidates l = { .name = name };
	if (bk_snapshot_foreach(a->r, collect, &l) == 0 && l.n)
		qsort(l.c, l.n, sizeof(*l.c), newest_first);
	for (size_t k = 0; k < l.n; k++) {
		const Candidate *o = &l.c[k];
		BkWalChain c;
		const char *lack;
		if (o->time_us >= newest->time_us ||
		    bk_pg_wal_chain(a, o->tli, o->start, o->stop, want_tli, &c) < 0 || !c.on_path ||
		    c.gap || bk_pg_wal_chain_lacks(&c, o->stop, 0, &lack) != BK_WAL_CHAIN_COMPLETE)
			continue;
		char when[BK_PG_TIME_MAX];
		bk_pg_format_time(when, o->time_us);
		snprintf(ret, cap, "; the older base backup %.16s, which ended at %s, restores the "
			 "WAL archived so far (bunker pg restore %.16s)", bk_id_hex(o->id).s, when,
			 bk_id_hex(o->id).s);
		break;
	}
	bk_error_clear();
	free(l.c);
}

/* Where a time or LSN target t (nothing walked yet) stops recovery, looked for from
 * from_lsn up to the fork's segment: *ret the first hit (lsn 0: none found),
 * *ret_cut whether the walk was cut short. */
static int stop_to_fork(BkRepo *r, const BkPgRestoreOpts *o, const BkWalChain *c,
			uint64_t from_lsn, uint64_t fork, WalTarget t, Hit *ret, bool *ret_cut)
{
	t.walked_from = UINT64_MAX;
	t.stop = o->stop;
	t.o = o;
	int e = target_walk(r, o->cluster, c, from_lsn, fork / c->seg_size, &t);
	const Hit *h = e == 0 ? target_first(&t, from_lsn) : NULL;
	*ret = h ? *h : (Hit){ 0 };
	*ret_cut = t.cut_short;
	free(t.hits);
	return e;
}

/* Whether the data of every segment recovery fetches, from the backup's start to
 * the end of the chain (to the segment after an LSN target's, or after the first
 * segment past the backup's end where a transaction ended after a time target:
 * recovery stops at the first such end), is there: indexed, in packs that exist.
 * Not read (check --read-data does that): a pack lost is found before the
 * restore rather than by recovery's wal-fetch after it, which ends recovery there
 * (found by review: pg restore and pg info said nothing). *ret_lost_ahead: whether
 * a segment of the chain past those lacks its data. */
static int wal_stored(BkRepo *r, const BkPgRestoreOpts *o, const BkWalChain *c, uint64_t start,
		      uint64_t stop, uint64_t before_lsn, int64_t before_us, bool *ret_lost_ahead)
{
	*ret_lost_ahead = false;
	uint64_t end = c->contiguous_end / c->seg_size - 1, last = end;
	if (before_lsn)
		last = BK_MIN(last, before_lsn / c->seg_size + 1);
	BkIdSet packs = { 0 };
	int e = 0;
	/* Past last, on to the chain's end: PostgreSQL's WAL prefetching reads ahead of
	 * replay, past the target, through as many segments as hold few records
	 * (switched early), and a fetch that fails there (wal-fetch exit 128) fails the
	 * recovery (found by a helper's exploration: a target before a lost pack, two
	 * segments ahead, was accepted, and recovery failed). A segment lost there is
	 * not an error: it tells the restore to turn prefetching off. */
	for (uint64_t segno = start / c->seg_size; e == 0 && !*ret_lost_ahead && segno <= end;
	     segno++) {
		char seg[BK_WAL_NAME_MAX];
		BkWalRecord w;
		if (o->stop && *o->stop) {
			e = bk_errorf(-EINTR, "interrupted");
			break;
		}
		int le = bk_pg_wal_path_segment(c, segno, seg);
		if (le == 0 && (le = bk_wal_record_get(r, o->cluster, seg, &w)) == 0) {
			le = bk_wal_record_stored(r, &w, &packs);
			/* (found by review: a pack lost in WAL after a time target's stop
			 * refused a restore that recovery completes) */
			if (le == 0 && segno <= last && before_us && !before_lsn &&
			    segno >= stop / c->seg_size && w.has_end && w.end.xact_us > before_us)
				last = BK_MIN(last, segno + 1);
			bk_wal_record_release(&w);
		}
		if (segno <= last || le == -ENOMEM)
			e = le;
		else
			*ret_lost_ahead = le < 0;
	}
	bk_idset_release(&packs);
	if (e < 0 && e != -ENOMEM && e != -EINTR)
		e = bk_error_wrap(e, "WAL recovery needs is damaged ('bunker check' tells what else is)");
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
	/* PostgreSQL reads recovery_target_action only at a target: without one, a
	 * pause asked for would be a promote, without a word (found by a randomized
	 * exploration) */
	if (o->target_action && ntargets == 0)
		return bk_errorf(BK_E_USAGE, "--target-action needs a recovery target (--target-time, "
			      "-lsn, -xid or -name): without one, recovery replays all archived WAL "
			      "and promotes");
	if (o->archive_mode && strcmp(o->archive_mode, "preserve") && strcmp(o->archive_mode, "off"))
		return bk_errorf(BK_E_USAGE, "--archive-mode must be preserve or off");
	if (!bk_cluster_name_valid(o->cluster))
		return bk_errorf(BK_E_USAGE, "invalid cluster name '%s'", o->cluster);
	/* escaped, a line break reads back from postgresql.auto.conf, but PostgreSQL's
	 * ALTER SYSTEM writes the file again with it raw, and the server then cannot
	 * read it at its next start (found by review) */
	if (o->restore_command && strchr(o->restore_command, '\n'))
		return bk_errorf(BK_E_USAGE, "restore_command would hold a line break (one in the "
			      "path of the repository, the key or password file or this binary, or "
			      "in --password-command): PostgreSQL cannot keep it in "
			      "postgresql.auto.conf; use a path without one");
	char name[128];
	snprintf(name, sizeof(name), "pg/%s/base", o->cluster);
	int64_t before_us = 0;
	uint64_t before_lsn = 0;
	int e = 0;
	if (o->target_time && (e = bk_pg_parse_time(o->target_time, &before_us, NULL)) < 0)
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
	if ((e = bk_pg_ts_mapping_check(o)) < 0)
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
				  &missing, want_tli, o, id);
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
	char when[BK_PG_TIME_MAX];
	bool late = e == 0 && !chosen && !ends_before(s->time_us, stop, before_us, before_lsn);
	if (late && before_us && s->time_us >= before_us) {
		bk_pg_format_time(when, s->time_us);
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
		e = bk_pg_wal_went_on(&wa, &c, chosen ? 0 : tli, start, &went);
	/* (an LSN target before the fork is on both histories, and so is a time target
	 * whose stop, the first transaction that ended after it, lies before the fork:
	 * found by walking the WAL from the backup's start to the fork) */
	bool before_fork = went.parent && before_lsn && before_lsn < went.fork;
	/* a --target-lsn stops after the first record that starts at or after it
	 * (recoveryStopsAfter, inclusive), which must lie before the fork too: past the
	 * last record before it, that is the fork's own record, each timeline's (found
	 * by a mutation audit: a target between the two was taken as on both) */
	Hit h;
	bool cut;
	if (e == 0 && before_fork && o->target_lsn) {
		e = stop_to_fork(r, o, &c, before_lsn, went.fork, (WalTarget){ .at_lsn = before_lsn },
				 &h, &cut);
		/* (the walk cut short: the chain's checks below refuse what it could not read) */
		before_fork = e == 0 && (h.lsn ? h.lsn < went.fork : cut);
	}
	if (e == 0 && went.parent && before_us && !before_lsn) {
		e = stop_to_fork(r, o, &c, start, went.fork, (WalTarget){ .after_us = before_us }, &h,
				 &cut);
		before_fork = e == 0 && h.lsn && !h.unsure && h.lsn < went.fork;
	}
	if (e == 0 && went.off_path && !before_fork) {
		char fork[BK_WAL_LSN_MAX];
		bk_wal_lsn_format(fork, sizeof(fork), went.fork);
		e = bk_errorf(BK_E_USAGE, "timeline %u went on after timeline %u began (%s was "
			      "archived after %08X.history; the two histories part at %s, on timeline "
			      "%u): --target-timeline %u restores along timeline %u, --target-timeline "
			      "latest along timeline %u", went.parent, went.child, went.seg, went.child,
			      fork, went.common, went.parent, went.parent, c.target_tli);
	} else if (e == 0 && went.parent && !before_fork) {
		char fork[BK_WAL_LSN_MAX];
		bk_wal_lsn_format(fork, sizeof(fork), went.fork);
		e = bk_errorf(BK_E_USAGE, "timeline %u went on after timeline %u forked from it at %s "
			      "(%s was archived after %08X.history): --target-timeline %u restores along "
			      "timeline %u, --target-timeline latest along timeline %u", went.parent,
			      went.child, fork, went.seg, went.child, went.parent, went.parent,
			      c.target_tli);
	}
	if (e == 0 && missing)
		e = target_missing(&wt, &c);
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
			      "along that)", c.next_needed, c.tli[t], began, c.tli[c.fork_read],
			      c.tli[c.fork_read], c.tli[c.fork_read]);
	} else if (k == BK_WAL_CHAIN_NOT_YET && before_lsn > stop && c.last[0]) {
		char at[BK_WAL_LSN_MAX], end[BK_WAL_LSN_MAX];
		bk_wal_lsn_format(at, sizeof(at), before_lsn);
		bk_wal_lsn_format(end, sizeof(end), c.contiguous_end);
		char note[BK_WAL_PARTIAL_NOTE_MAX];
		bk_pg_wal_partial_note(&c.partial, note);
		e = bk_errorf(-ENOENT, "the target LSN %s is past the WAL archived, which goes on "
			      "unbroken to %s (%s): segment %s is not archived yet%s%s", at, end,
			      c.last, lack, note[0] ? "; " : "", note);
	} else if (k == BK_WAL_CHAIN_NOT_YET) {
		/* archive_command may push it under another name: a wrong --cluster, which
		 * basebackup only warns of (found by a user's walk through the README) */
		char other[BK_CLUSTER_NAME_MAX + 1] = "", hint[3 * BK_CLUSTER_NAME_MAX + 96] = "";
		if (bk_cluster_same_system(r, o->cluster, wa.sysid, lack, other) == 0 && other[0])
			snprintf(hint, sizeof(hint), ", but this repository archives it under cluster "
				 "'%s', not '%s' (--cluster %s?)", other, o->cluster, other);
		if (!hint[0] && chosen && !before_us && !before_lsn && !place)
			older_restorable(&wa, name, s, want_tli, hint, sizeof(hint));
		if (!wa.n && !hint[0]) /* (found by a helper's exploration: "not archived yet"
					* of a repository whose wal/<cluster> had gone) */
			e = bk_errorf(-ENOENT, "WAL chain incomplete: cluster '%s' has no WAL in this "
				      "repository (wal/%s is missing or empty; the backup needs %s on)",
				      o->cluster, o->cluster, lack);
		else
			e = bk_errorf(-ENOENT, "WAL chain incomplete: segment %s is not archived yet%s",
				      lack, hint);
	}
	/* A segment on the way whose walk stopped short (damaged WAL, or bytes that are
	 * not WAL after some record) ends recovery there, whatever is archived after
	 * it: without a target PostgreSQL would promote there, silently older. The
	 * chain ends at its last readable record; below, a target must lie before (a
	 * restore point or xid placed too: recovery stops after its record, which the
	 * walk read whole; found by a mutation audit, it was refused as "perhaps"). */
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
				  !placed_at && (o->target_xid || o->target_name) ?
					  "perhaps before the target" :
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
	/* (a failover's last transactions may be archived only in a .partial after
	 * the chain's end: found by review, a restore without a target silently ended
	 * before them; damage ends the chain before it) */
	char note[BK_WAL_PARTIAL_NOTE_MAX] = "";
	if (e == 0 && !damaged[0])
		bk_pg_wal_partial_note(&c.partial, note);
	const char *sep = note[0] ? "; " : "";
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
			      "%s: recovery would end before reaching it%s%s", at, seg, sep, note);
	}
	/* WAL past a time target must be archived too: a segment's records are older
	 * than its push, and PostgreSQL fails a recovery that ends before its target */
	if (e == 0 && before_us && read_newest && before_us > newest.pushed_us) {
		bk_pg_format_time(when, newest.pushed_us);
		e = bk_errorf(-ENOENT, "the target time is after the newest WAL archived on the "
			      "way, %s (archived at %s): recovery would end before reaching it%s%s",
			      c.last, when, sep, note);
	}
	/* PostgreSQL stops a time target at the first transaction that ended after it:
	 * with none archived, it replays to the end and fails */
	BkWalLastXact lx = { 0 };
	if (e == 0 && before_us && read_newest)
		e = bk_pg_wal_last_xact(r, o->cluster, &c, start, &end, before_us, &lx);
	if (e == 0 && lx.known && lx.xact_us && lx.xact_us <= before_us) { /* (known: read) */
		bk_pg_format_time(when, lx.xact_us);
		e = bk_errorf(-ENOENT, "the target time is at or after the end of the last transaction "
			      "archived, which ended at %s (in %s): recovery would end before "
			      "reaching it; without a target it restores that state%s%s", when,
			      lx.segment, sep, note);
	} else if (e == 0 && lx.known && !lx.xact_us) {
		e = bk_errorf(-ENOENT, "the target time is after the last transaction archived: the WAL "
			      "from %s to %s holds none, so recovery would end before reaching it; "
			      "without a target it restores that state%s%s", lx.segment, c.last, sep,
			      note);
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
	bool lost_ahead = false;
	if (e == 0 && c.last[0])
		e = wal_stored(r, o, &c, start, stop, before_lsn, before_us, &lost_ahead);
	if (read_newest)
		bk_wal_record_release(&newest);
	bk_wal_archive_release(&wa);
	free(wt.hits);
	if (e == 0 && o->ret_target_at)
		*o->ret_target_at = placed_at;
	/* without a target recovery runs to the chain's end: short of WAL archived
	 * only in a .partial there (a target past it was refused above) */
	if (o->ret_partial)
		*o->ret_partial = e == 0 && !before_us && !before_lsn && !place ? c.partial
										 : (BkWalPartial){ 0 };

	if (e == 0)
		e = bk_pg_datadir_write(r, s, o, before_us, want_tli, lost_ahead);
	if (e < 0) {
		bk_snapshot_free(s);
		return e;
	}
	*ret_snap = s;
	return 0;
}
