/* The WAL chain over a cluster's archive: see pg/walchain.h. */
#include "pg/walchain.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/error.h"
#include "store/fs.h"
#include "store/util.h"

/* ---- the archive, listed once ---- */

static int add_name(void *ud, const char *name)
{
	BkWalArchive *a = ud;
	if (strlen(name) >= BK_WAL_NAME_MAX)
		return 0;
	if (bk_grow(&a->names, &a->cap, a->n, sizeof(*a->names), 1024) < 0)
		return -ENOMEM;
	snprintf(a->names[a->n++], BK_WAL_NAME_MAX, "%s", name);
	return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

static bool has_name(const BkWalArchive *a, const char *name)
{
	return a->n && bsearch(name, a->names, a->n, BK_WAL_NAME_MAX, cmp_name) != NULL;
}

/* Whether the archive holds any file of timeline tli (a segment, its history...). */
bool bk_wal_archive_has_timeline(const BkWalArchive *a, uint32_t tli)
{
	for (size_t i = 0; i < a->n; i++) {
		BkWalName wn;
		if (bk_wal_name_parse(a->names[i], &wn) == 0 && wn.tli == tli)
			return true;
	}
	return false;
}

/* The size of the first archived segment, or 0 if there is none. */
static int archived_seg_size(const BkWalArchive *a, uint32_t *ret)
{
	*ret = 0;
	for (size_t i = 0; i < a->n; i++) {
		BkWalName wn;
		if (bk_wal_name_parse(a->names[i], &wn) < 0 || wn.kind != BK_WAL_SEGMENT)
			continue;
		BkWalRecord w;
		int e = bk_wal_record_get(a->r, a->cluster, a->names[i], &w);
		if (e < 0)
			return e;
		if (w.size <= UINT32_MAX)
			*ret = (uint32_t)w.size;
		bk_wal_record_release(&w);
		return 0;
	}
	return 0;
}

/* The clusters a repository has records of (a base backup or a dump makes one too, not
 * only WAL), for the error naming one it has not: "a, b". */
typedef struct {
	char list[256];
	size_t n;
} Clusters;

static int add_cluster(void *ud, const char *name, uint64_t size)
{
	(void)size;
	Clusters *c = ud;
	const char *cl = bk_path_base(name);
	size_t len = strlen(c->list);
	if (!bk_cluster_name_valid(cl) || (len >= 3 && !strcmp(c->list + len - 3, "...")))
		return 0; /* (the list is full: found by review, a shorter name came after) */
	if (len + strlen(cl) + 8 < sizeof(c->list))
		snprintf(c->list + len, sizeof(c->list) - len, "%s%s", c->n++ ? ", " : "", cl);
	else
		snprintf(c->list + len, sizeof(c->list) - len, ", ...");
	return 0;
}

/* A history file read (bk_wal_history_get's entries). */
typedef struct {
	uint32_t tli;
	size_t n;
	BkWalTliSwitch *sw;
} History;

struct BkWalHistories {
	History *h;
	size_t n, cap;
};

/* bk_wal_history_get through the archive's cache: each history file is read once
 * (found by a helper's measurement: pg info read about 30 for each of 201 backups,
 * each through a temporary file and the restore pipeline's threads, 1.8 s of
 * system time). Failures are not kept. */
static int history_get(const BkWalArchive *a, uint32_t tli, BkWalTliSwitch *ret, size_t max,
		       size_t *ret_n)
{
	struct BkWalHistories *c = a->hist;
	for (size_t i = 0; c && i < c->n; i++) {
		if (c->h[i].tli == tli && c->h[i].n <= max) {
			if (c->h[i].n)
				memcpy(ret, c->h[i].sw, c->h[i].n * sizeof(*ret));
			*ret_n = c->h[i].n;
			return 0;
		}
	}
	int e = bk_wal_history_get(a->r, a->cluster, tli, ret, max, ret_n);
	if (e < 0 || !c || bk_grow(&c->h, &c->cap, c->n, sizeof(*c->h), 8) < 0)
		return e;
	History h = { .tli = tli, .n = *ret_n, .sw = malloc((*ret_n ? *ret_n : 1) * sizeof(*ret)) };
	if (!h.sw)
		return e; /* (not kept: read again next time) */
	if (h.n)
		memcpy(h.sw, ret, h.n * sizeof(*ret));
	c->h[c->n++] = h;
	return e;
}

int bk_wal_archive_load(BkRepo *r, const char *cluster, BkWalArchive *ret)
{
	BkWalArchive a = { .r = r, .cluster = cluster, .hist = calloc(1, sizeof(*a.hist)) };
	int e = a.hist ? bk_cluster_get(r, cluster, &a.sysid, &a.seg_size) : -ENOMEM;
	if (e == -ENOENT) { /* a typo, most likely: say what there is */
		Clusters c = { .n = 0 };
		bk_backend_list(r->be, "clusters", add_cluster, &c);
		e = c.n ? bk_errorf(-ENOENT, "no cluster '%s' in this repository (its clusters: %s)",
				    cluster, c.list)
			: bk_errorf(-ENOENT, "no cluster '%s' in this repository (it has no cluster "
					  "yet)", cluster);
	}
	if (e == 0)
		e = bk_wal_foreach(r, cluster, add_name, &a);
	if (e == 0 && a.n) /* qsort wants an array, even of none */
		qsort(a.names, a.n, BK_WAL_NAME_MAX, cmp_name);
	if (e == 0 && !bk_wal_seg_size_valid(a.seg_size))
		e = archived_seg_size(&a, &a.seg_size);
	if (e == 0 && !bk_wal_seg_size_valid(a.seg_size))
		a.seg_size = BK_WAL_SEG_SIZE_DEFAULT;
	if (e < 0)
		bk_wal_archive_release(&a);
	*ret = a; /* empty on failure: releasing it is harmless */
	return e;
}

void bk_wal_archive_release(BkWalArchive *a)
{
	free(a->names);
	a->names = NULL;
	a->n = a->cap = 0;
	for (size_t i = 0; a->hist && i < a->hist->n; i++)
		free(a->hist->h[i].sw);
	if (a->hist)
		free(a->hist->h);
	free(a->hist);
	a->hist = NULL;
}

/* Segment segno on the chain's path: of the timeline the path follows there. */
int bk_pg_wal_path_segment(const BkWalChain *c, uint64_t segno, char name[BK_WAL_NAME_MAX])
{
	size_t t = bk_wal_path_index(c->begin, c->ntl, segno, c->seg_size);
	return bk_wal_segment_name(name, BK_WAL_NAME_MAX, c->tli[t], segno, c->seg_size);
}

/* Fills c's path (tli[], begin[], ntl) from the history file of c->target_tli, or
 * names it in c->missing_history when it is not archived. */
static int read_path(const BkWalArchive *a, BkWalChain *c)
{
	char hname[BK_WAL_NAME_MAX];
	bk_wal_history_name(hname, sizeof(hname), c->target_tli);
	BkWalTliSwitch sw[BK_MAX_TIMELINES - 1];
	size_t n;
	int e = has_name(a, hname) ? history_get(a, c->target_tli, sw,
							 BK_ARRAY_SIZE(sw), &n)
				   : -ENOENT;
	if (e == -ENOENT) {
		snprintf(c->missing_history, sizeof(c->missing_history), "%s", hname);
		return 0;
	}
	for (size_t i = 0; e == 0 && i < n; i++) {
		c->tli[i] = sw[i].tli;
		c->begin[i + 1] = sw[i].end_lsn;
	}
	if (e == 0) {
		c->ntl = n + 1;
		c->tli[n] = c->target_tli;
	}
	/* a timeline's span ends where any later one begins: after a recovery along
	 * a timeline to a point before it began, its child's line has the earlier
	 * switch point (PostgreSQL's tliOfPointInHistory never picks the timeline
	 * between), and the old timeline's segments past it are not on the path */
	for (size_t i = c->ntl - 1; e == 0 && i-- > 1;)
		c->begin[i] = BK_MIN(c->begin[i], c->begin[i + 1]);
	return e;
}

/* Reads the archived history file of timeline t, if t has one (t > 1) archived;
 * *ret_had whether it had. */
static int read_history(const BkWalArchive *a, uint32_t t, bool *ret_had)
{
	char hname[BK_WAL_NAME_MAX];
	bk_wal_history_name(hname, sizeof(hname), t);
	BkWalTliSwitch sw[BK_MAX_TIMELINES - 1];
	size_t n;
	*ret_had = t > 1 && has_name(a, hname);
	return *ret_had ? history_get(a, t, sw, BK_ARRAY_SIZE(sw), &n) : 0;
}

/* Reads the history files PostgreSQL probes for from timeline `from` up: the next
 * while archived. */
static int read_probed_histories(const BkWalArchive *a, uint32_t from)
{
	bool had = true;
	int e = 0;
	for (uint32_t t = from + 1; e == 0 && had && t > from; t++)
		e = read_history(a, t, &had);
	return e;
}

/* Reads every history file recovery from a backup on timeline tli along target_tli
 * fetches through restore_command, each once: the target's (read_path reads it
 * when it is past the backup's), those between, and those PostgreSQL probes for
 * from the target's up (for `latest`, and at promotion). One that wal-fetch cannot
 * give (exit 128) aborts recovery, after the restore was written (found by review:
 * a damaged 00000002.history was read only for backups on timeline 1). */
static int read_fetched_histories(const BkWalArchive *a, uint32_t tli, uint32_t target_tli)
{
	bool had;
	int e = target_tli == tli ? read_history(a, tli, &had) : 0;
	for (uint32_t t = tli + 1; e == 0 && t < target_tli; t++)
		e = read_history(a, t, &had);
	return e < 0 ? e : read_probed_histories(a, target_tli);
}

int bk_pg_wal_chain(const BkWalArchive *a, uint32_t tli, uint64_t start_lsn, uint64_t stop_lsn,
		    uint32_t want_tli, BkWalChain *ret)
{
	BkWalChain c = { .seg_size = a->seg_size };
	int e = 0;
	uint32_t highest = tli; /* of any archived file */
	for (size_t i = 0; i < a->n; i++) {
		BkWalName wn;
		if (bk_wal_name_parse(a->names[i], &wn) == 0 && wn.tli > highest)
			highest = wn.tli;
	}
	char hname[BK_WAL_NAME_MAX];
	if (want_tli == BK_TLI_CURRENT) {
		c.target_tli = tli;
	} else if (want_tli != BK_TLI_LATEST) {
		c.target_tli = want_tli; /* one older than the backup's leaves it off the path */
	} else {
		/* as PostgreSQL finds the newest timeline: the next while its history is
		 * archived; WAL of a timeline past that means a history file is missing */
		c.target_tli = tli;
		for (;;) {
			bk_wal_history_name(hname, sizeof(hname), c.target_tli + 1);
			if (c.target_tli >= highest || !has_name(a, hname))
				break;
			c.target_tli++;
		}
		if (c.target_tli < highest)
			snprintf(c.missing_history, sizeof(c.missing_history), "%s", hname);
	}
	c.ntl = 1;
	c.tli[0] = c.target_tli;
	if (e == 0 && !c.missing_history[0] && c.target_tli > tli)
		e = read_path(a, &c);
	if (e == 0)
		e = read_fetched_histories(a, tli, c.target_tli);
	/* the backup's timeline must be on the path, and the backup inside its span:
	 * recovery can reach consistency only before the path leaves it */
	c.on_path = !!c.missing_history[0];
	for (size_t i = 0; e == 0 && i < c.ntl; i++)
		if (c.tli[i] == tli)
			c.on_path = start_lsn >= c.begin[i] &&
				    (i + 1 == c.ntl || (start_lsn < c.begin[i + 1] &&
							stop_lsn <= c.begin[i + 1]));

	/* the newest archived segment on the path */
	uint64_t newest = 0;
	bool any = false;
	for (size_t i = 0; e == 0 && i < a->n; i++) {
		BkWalName wn;
		uint64_t segno;
		if (bk_wal_name_parse(a->names[i], &wn) < 0 || wn.kind != BK_WAL_SEGMENT ||
		    bk_wal_name_segno(&wn, c.seg_size, &segno) < 0)
			continue;
		for (size_t t = 0; t < c.ntl; t++) {
			/* a timeline's segments from the one holding its switch point on are
			 * not on the path (path_segment_name: that one is the next
			 * timeline's): the old timeline going on is no gap in the new one */
			bool in_span = t + 1 == c.ntl || segno < c.begin[t + 1] / c.seg_size;
			if (c.tli[t] == wn.tli && in_span && (!any || segno > newest)) {
				newest = segno;
				any = true;
			}
		}
	}
	uint64_t s = start_lsn / c.seg_size;
	c.contiguous_end = s * c.seg_size;
	for (; e == 0; s++) {
		char name[BK_WAL_NAME_MAX];
		if (bk_pg_wal_path_segment(&c, s, name) < 0)
			break;
		if (!has_name(a, name)) {
			snprintf(c.next_needed, sizeof(c.next_needed), "%s", name);
			break;
		}
		c.contiguous_end = (s + 1) * c.seg_size;
		memcpy(c.last, name, sizeof(c.last));
	}
	/* a missing segment past the newest archived one is not a gap, just the future */
	c.gap = c.next_needed[0] && any && c.contiguous_end < (newest + 1) * c.seg_size;
	/* PostgreSQL's XLogFileReadAnyTLI takes an older timeline's file of a
	 * timeline's first segment when the timeline's own is missing: the newest
	 * archived of those that had begun by it, down to the one it read the segment
	 * before from (it stops below that file's timeline). Only the parent's was
	 * looked at: with two timelines begun in one segment, the grandparent's file
	 * was read and no restore refused (found by review). */
	size_t t = c.ntl - 1;
	uint64_t first = c.contiguous_end / c.seg_size; /* next_needed's number */
	while (t > 0 && c.begin[t] / c.seg_size > first)
		t--;
	bool fork = e == 0 && c.next_needed[0] && t > 0 && c.begin[t] / c.seg_size == first;
	for (size_t p = t; fork && p-- > 0;) {
		char older[BK_WAL_NAME_MAX];
		if (bk_wal_segment_name(older, sizeof(older), c.tli[p], first, c.seg_size) == 0 &&
		    has_name(a, older)) {
			c.fork_unread = t;
			c.fork_read = p;
			break;
		}
		if (c.begin[p] / c.seg_size < first) /* the segment before's timeline */
			break;
	}
	/* the WAL from contiguous_end on is the timeline's that had begun by then
	 * (tliOfPointInHistory): a .partial of it for that segment holds it, up to
	 * where the next timeline began (or, off any newer history, to its end) */
	size_t q = c.ntl - 1;
	while (q > 0 && c.begin[q] > c.contiguous_end)
		q--;
	char seg[BK_WAL_NAME_MAX], part[BK_WAL_NAME_MAX];
	if (e == 0 && c.next_needed[0] && !c.gap && !c.fork_unread && !c.missing_history[0] &&
	    bk_wal_segment_name(seg, sizeof(seg), c.tli[q], first, c.seg_size) == 0 &&
	    bk_wal_partial_name(part, sizeof(part), c.tli[q], first, c.seg_size) == 0 &&
	    has_name(a, part) && !has_name(a, seg)) {
		memcpy(c.partial.partial, part, BK_WAL_NAME_MAX);
		if (strcmp(c.next_needed, seg) != 0)
			memcpy(c.partial.awaited, c.next_needed, BK_WAL_NAME_MAX);
		c.partial.tli = c.tli[q];
		c.partial.end = c.contiguous_end;
	}
	if (e == 0)
		*ret = c;
	return e;
}

void bk_pg_wal_partial_note(const BkWalPartial *p, char out[BK_WAL_PARTIAL_NOTE_MAX])
{
	out[0] = '\0';
	if (!p->partial[0])
		return;
	char end[BK_WAL_LSN_MAX];
	bk_wal_lsn_format(end, sizeof(end), p->end);
	if (p->awaited[0])
		snprintf(out, BK_WAL_PARTIAL_NOTE_MAX, "WAL past %s on timeline %u is archived only "
			 "in %s, which recovery does not read: until %s is archived, the restore "
			 "ends at %s", end, p->tli, p->partial, p->awaited, end);
	else
		snprintf(out, BK_WAL_PARTIAL_NOTE_MAX, "WAL past %s on timeline %u is archived only "
			 "in %s, which recovery does not read: the restore ends at %s (that WAL is "
			 "read along the timeline promoted there, once its segment of that number "
			 "is archived)", end, p->tli, p->partial, end);
}

bool bk_pg_wal_chain_reads(const BkWalChain *c, uint64_t start_lsn, const char *name)
{
	BkWalName wn;
	uint64_t segno;
	char on_path[BK_WAL_NAME_MAX];
	return bk_wal_name_parse(name, &wn) == 0 && wn.kind == BK_WAL_SEGMENT &&
	       bk_wal_name_segno(&wn, c->seg_size, &segno) == 0 &&
	       segno >= start_lsn / c->seg_size && segno < c->contiguous_end / c->seg_size &&
	       bk_pg_wal_path_segment(c, segno, on_path) == 0 && strcmp(on_path, name) == 0;
}

int bk_pg_wal_last_record(BkRepo *r, const BkWalRecord *w, BkWalEnd *ret)
{
	if (w->has_end) {
		*ret = w->end;
		return 0;
	}
	int fd = -1;
	int e = bk_wal_record_to_fd(r, w, &fd);
	if (e == 0) {
		e = bk_wal_last_record(fd, w->name, NULL, ret);
		close(fd);
	}
	return e;
}

int bk_pg_wal_last_xact(BkRepo *r, const char *cluster, const BkWalChain *c, uint64_t start_lsn,
			const BkWalEnd *newest, int64_t after_us, BkWalLastXact *ret)
{
	BkWalLastXact x = { .known = true, .xact_us = newest->xact_us };
	memcpy(x.segment, c->last, sizeof(x.segment));
	BkWalName last;
	int e = bk_wal_name_parse(c->last, &last);
	if (e == 0)
		e = bk_wal_name_segno(&last, c->seg_size, &x.segno);
	/* back while what was read does not show the target reachable (no transaction
	 * found that ended after after_us; with after_us 0, none found) */
	uint64_t at = x.segno;
	/* whether the record the segment being read cuts at its end does not end
	 * readable in the archive: it runs on through every segment read after it
	 * (bk_wal_end_inside), or the newest stopped at once on it (it failed across;
	 * the damage of a segment before the newest ends the chain there before this
	 * is called). Recovery cannot replay it (found by review: the time of a commit
	 * of 540,000 subtransactions, longer than a segment and not archived whole,
	 * made a target before it look reachable; a second review: its rest damaged
	 * in the newest) */
	bool runs_on = bk_wal_end_inside(newest) || (newest->stopped && !newest->lsn);
	for (unsigned fetched = 0; e == 0 && x.xact_us <= after_us && at > start_lsn / c->seg_size;) {
		uint64_t segno = at - 1;
		char name[BK_WAL_NAME_MAX];
		BkWalRecord w;
		if ((e = bk_pg_wal_path_segment(c, segno, name)) < 0 ||
		    (e = bk_wal_record_get(r, cluster, name, &w)) < 0)
			break;
		if (!w.has_end && fetched++ == BK_WAL_XACT_SCAN_MAX) {
			bk_wal_record_release(&w);
			x.known = false;
			break;
		}
		/* (read even when archived before after_us: its pusher's clock may be
		 * behind the server's) */
		bool older = w.pushed_us <= after_us;
		BkWalEnd end;
		e = bk_pg_wal_last_record(r, &w, &end);
		bk_wal_record_release(&w);
		if (e < 0)
			break;
		at = segno;
		/* (one cut here is replayed when it ends in the archive) */
		bool cut_ends = !runs_on;
		runs_on = runs_on && bk_wal_end_inside(&end);
		int64_t t = BK_MAX(end.xact_us, cut_ends ? end.cut_xact_us : 0);
		if ((end.cut_xact && cut_ends) || !x.xact_us || t > x.xact_us) {
			memcpy(x.segment, name, sizeof(name));
			x.segno = segno;
		}
		if (end.cut_xact && cut_ends) { /* it ends after every whole record here: when? */
			x.known = false;
			x.cut = true;
			break;
		}
		x.xact_us = BK_MAX(x.xact_us, t);
		/* a segment's commits are stamped before its push: none before it ended
		 * after after_us (backends stamp commits slightly out of WAL order, also
		 * across a segment's end: the latest of all segments read counts) */
		if (older)
			break;
	}
	if (e == 0)
		*ret = x;
	return e;
}

BkWalChainLack bk_pg_wal_chain_lacks(const BkWalChain *c, uint64_t stop, uint64_t target,
				     const char **name)
{
	*name = NULL;
	if (c->missing_history[0]) {
		*name = c->missing_history;
		return BK_WAL_CHAIN_NO_HISTORY;
	}
	if (c->contiguous_end >= stop && (!target || c->contiguous_end > target))
		return BK_WAL_CHAIN_COMPLETE;
	*name = c->next_needed;
	return c->gap ? BK_WAL_CHAIN_GAP : BK_WAL_CHAIN_NOT_YET;
}

int bk_pg_wal_reach(BkRepo *r, const char *cluster, const BkWalChain *c, uint64_t segno,
		    const BkWalEnd *end, uint64_t *ret)
{
	*ret = end->lsn;
	for (unsigned n = 0; !*ret && segno > 0 && n < BK_WAL_XACT_SCAN_MAX; n++) {
		char seg[BK_WAL_NAME_MAX];
		BkWalRecord w;
		int e = bk_pg_wal_path_segment(c, --segno, seg);
		if (e == 0)
			e = bk_wal_record_get(r, cluster, seg, &w);
		if (e == -ENOENT || e == BK_E_USAGE) /* before the chain: not known */
			return 0;
		if (e < 0)
			return e;
		bool inside = bk_wal_record_inside(&w);
		*ret = w.has_end ? w.end.lsn : 0;
		bk_wal_record_release(&w);
		if (!inside)
			break;
	}
	return 0;
}

int bk_pg_wal_first_stopped(BkRepo *r, const char *cluster, const BkWalChain *c,
			    uint64_t start_lsn, uint64_t upto, char name[BK_WAL_NAME_MAX],
			    uint64_t *ret_reach)
{
	name[0] = '\0';
	uint64_t last = c->contiguous_end / c->seg_size - 1; /* c->last's */
	uint64_t prev_lsn = 0; /* the last record whole in the segments before, if known */
	bool inside = false;   /* the segment before is inside one record */
	for (uint64_t segno = start_lsn / c->seg_size; segno < last; segno++) {
		if (upto && segno > upto / c->seg_size + 1 && !inside)
			break;
		char seg[BK_WAL_NAME_MAX];
		BkWalRecord w;
		int e = bk_pg_wal_path_segment(c, segno, seg);
		if (e == 0)
			e = bk_wal_record_get(r, cluster, seg, &w);
		if (e < 0)
			return e;
		bool stopped = w.has_end && w.end.stopped;
		if (stopped) {
			memcpy(name, seg, BK_WAL_NAME_MAX);
			*ret_reach = w.end.lsn ? w.end.lsn : prev_lsn;
		}
		inside = bk_wal_record_inside(&w);
		if (!inside)
			prev_lsn = w.has_end ? w.end.lsn : 0;
		bk_wal_record_release(&w);
		if (stopped)
			break;
	}
	return 0;
}

/* Whether archived file `name` was pushed after history file hname. */
static int pushed_after(const BkWalArchive *a, const char *name, const char *hname, bool *ret)
{
	BkWalRecord h, w;
	int e = bk_wal_record_get(a->r, a->cluster, hname, &h);
	if (e < 0)
		return e;
	e = bk_wal_record_get(a->r, a->cluster, name, &w);
	*ret = e == 0 && w.pushed_us > h.pushed_us;
	if (e == 0)
		bk_wal_record_release(&w);
	bk_wal_record_release(&h);
	return e;
}

/* Visits the parent's records: one of a transaction's (RM_XACT: a commit, an
 * abort, a prepare) at or past the fork is what a restore along the child drops. */
typedef struct {
	uint64_t fork;
	bool found;
} Past;

static int xact_past(void *ud, const BkWalRec *rec)
{
	Past *p = ud;
	p->found |= rec->lsn >= p->fork && rec->rmid == BK_WAL_RM_XACT;
	return 0;
}

/* Whether the parent's segment `name`, the one holding the fork, holds nothing a
 * restore along the child would drop: no record of a transaction's at or past the
 * fork, and its WAL ends there (it stopped nowhere, and no record goes on into the
 * next segment). A primary stopped cleanly after its standby was promoted archives
 * such a segment, its XLOG_SWITCH at the fork, after the child's history (found by
 * a helper's exploration: every restore without --target-timeline was then
 * refused, as if the old primary had gone on). Reads the segment. */
static bool nothing_past(const BkWalArchive *a, const char *name, uint64_t fork)
{
	BkWalRecord w;
	int fd = -1, e = bk_wal_record_get(a->r, a->cluster, name, &w);
	if (e == 0) {
		e = bk_wal_record_to_fd(a->r, &w, &fd);
		bk_wal_record_release(&w);
	}
	BkWalEnd end;
	Past past = { fork, false };
	if (e == 0) {
		e = bk_wal_walk(fd, name, NULL, xact_past, &past, &end);
		close(fd);
	}
	if (e < 0)
		bk_error_clear(); /* (not known: it went on, as before) */
	return e == 0 && !past.found && !end.stopped && !end.carry.head;
}

/* The newest archived segment of timeline tli from segment number from on, or NULL.
 * The names are sorted, a timeline's files together (they begin with its number,
 * in capitals, and nothing else does) and its segments in their order: the end of
 * its range is searched for, then back past its other files (found by a helper's
 * measurement: a scan of every name, for each backup and each timeline on its
 * path, was half of pg info's CPU). */
static const char *newest_segment(const BkWalArchive *a, uint32_t tli, uint64_t from)
{
	char prefix[16];
	snprintf(prefix, sizeof(prefix), "%08X", tli);
	size_t lo = 0, hi = a->n; /* to the first name past the timeline's */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strncmp(a->names[mid], prefix, 8) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i-- > 0 && !strncmp(a->names[i], prefix, 8);) {
		BkWalName wn;
		uint64_t segno;
		if (bk_wal_name_parse(a->names[i], &wn) == 0 && wn.kind == BK_WAL_SEGMENT &&
		    wn.tli == tli && bk_wal_name_segno(&wn, a->seg_size, &segno) == 0)
			return segno >= from ? a->names[i] : NULL;
	}
	return NULL;
}

/* Timeline u, off p's path, when it went on after p's last timeline began: *ret
 * filled (off_path), else untouched. A history of u that cannot be read is passed
 * over: recovery along p never fetches it. */
static int sibling_went_on(const BkWalArchive *a, const BkWalChain *p, uint32_t u,
			   uint32_t from_tli, uint64_t from_lsn, BkWalWentOn *ret)
{
	BkWalTliSwitch sw[BK_MAX_TIMELINES - 1];
	size_t n;
	int e = history_get(a, u, sw, BK_ARRAY_SIZE(sw), &n);
	if (e == BK_E_CORRUPT || e == -ENOENT)
		return 0;
	if (e < 0)
		return e;
	/* u's history as read_path reads one: its i-th timeline begins at ub[i] */
	uint64_t ub[BK_MAX_TIMELINES] = { 0 };
	for (size_t i = 0; i < n; i++)
		ub[i + 1] = sw[i].end_lsn;
	for (size_t i = n; i-- > 1;)
		ub[i] = BK_MIN(ub[i], ub[i + 1]);
#define U_TLI(i) ((i) < n ? sw[i].tli : u)
	/* the timelines both histories share, from the first */
	size_t k = 0;
	while (k <= n && k < p->ntl && U_TLI(k) == p->tli[k] && (k == 0 || ub[k] == p->begin[k]))
		k++;
	if (k == 0 || k > n || k == p->ntl) /* unrelated, on the path, or after its last */
		return 0;
	uint64_t part = BK_MIN(ub[k], p->begin[k]);
#undef U_TLI
	if (from_tli) {
		size_t f = 0;
		while (f < k && p->tli[f] != from_tli)
			f++;
		if (f == k || from_lsn >= part) /* the backup cannot follow u */
			return 0;
	}
	const char *name = newest_segment(a, u, 0);
	char hname[BK_WAL_NAME_MAX];
	bk_wal_history_name(hname, sizeof(hname), p->target_tli);
	bool later = false;
	if (name && has_name(a, hname) && (e = pushed_after(a, name, hname, &later)) < 0)
		return e;
	if (later) {
		*ret = (BkWalWentOn){ .parent = u, .child = p->target_tli, .fork = part,
				      .off_path = true, .common = p->tli[k - 1] };
		snprintf(ret->seg, sizeof(ret->seg), "%s", name);
	}
	return 0;
}

int bk_pg_wal_went_on(const BkWalArchive *a, const BkWalChain *c, uint32_t from_tli,
		      uint64_t from_lsn, BkWalWentOn *ret)
{
	*ret = (BkWalWentOn){ 0 };
	BkWalChain p = *c; /* (a chain from a backup on its own timeline has no history read) */
	if (p.ntl == 1 && p.target_tli > 1 && p.target_tli != from_tli) {
		int e = read_path(a, &p);
		if (e < 0 || p.missing_history[0])
			return e;
	}
	size_t from = 0;
	while (from_tli && from < p.ntl && p.tli[from] != from_tli)
		from++;
	for (size_t t = p.ntl - 1; t-- > from;) {
		const char *name = newest_segment(a, p.tli[t], p.begin[t + 1] / p.seg_size);
		char hname[BK_WAL_NAME_MAX];
		bk_wal_history_name(hname, sizeof(hname), p.tli[t + 1]);
		if (!name || !has_name(a, hname))
			continue;
		bool later;
		int e = pushed_after(a, name, hname, &later);
		if (e < 0)
			return e;
		char fork_seg[BK_WAL_NAME_MAX];
		if (later &&
		    bk_wal_lsn_segment_name(fork_seg, sizeof(fork_seg), p.tli[t], p.begin[t + 1],
					    p.seg_size) == 0 &&
		    !strcmp(name, fork_seg) && nothing_past(a, name, p.begin[t + 1]))
			later = false;
		if (later) {
			*ret = (BkWalWentOn){ .parent = p.tli[t], .child = p.tli[t + 1],
					      .fork = p.begin[t + 1] };
			snprintf(ret->seg, sizeof(ret->seg), "%s", name);
			return 0;
		}
	}
	/* timelines off the path, newest first: one that went on after the path's
	 * last began (found by review: a second restore of timeline 1 promoted while
	 * the first's timeline 2 still archived; pg restore followed the newer,
	 * dropping timeline 2's WAL since, as PostgreSQL's latest does) */
	for (size_t i = a->n; i-- > 0 && p.ntl > 1;) {
		BkWalName wn;
		bool on = false;
		if (bk_wal_name_parse(a->names[i], &wn) < 0 || wn.kind != BK_WAL_HISTORY)
			continue;
		for (size_t t = 0; t < p.ntl; t++)
			on |= p.tli[t] == wn.tli;
		int e = on ? 0 : sibling_went_on(a, &p, wn.tli, from_tli, from_lsn, ret);
		if (e < 0 || ret->parent)
			return e;
	}
	return 0;
}
