#include "pg/replication.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pg/conninfo.h"
#include "pg/libpq.h"
#include "pg/wal.h"
#include "store/error.h"
#include "store/util.h"

#define LABEL_MAX 1000
#define SLOT_NAME_MAX 63
#define DETAIL_MAX 700

struct BkPgRepl {
	PGconn *conn;
	bool broken;    /* a command failed midway: the protocol state is unknown */
	bool streaming; /* inside START_REPLICATION's COPY BOTH */
	char *copybuf;  /* the last message handed out by stream_recv (PQfreemem) */
	void (*warn)(void *ud, const char *msg);
	void *warn_ud;
	struct Watchdog *watch; /* set while a base backup streams with a stall timeout */
	unsigned stall_s;       /* bk_pgrepl_set_stall: bounds identify and show */
};

static void pqclearp(PGresult **res)
{
	if (*res)
		PQclear(*res);
}
#define _cleanup_pqclear_ _cleanup_(pqclearp)

static void pqfreep(char **p)
{
	if (*p)
		PQfreemem(*p);
}
#define _cleanup_pqfree_ _cleanup_(pqfreep)

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* The one place where libpq's and the server's errors become bunker errors: the
 * server's primary message when there is one, else libpq's, on one line. */
static int remote_error(BkPgRepl *c, const PGresult *res, const char *what)
{
	const char *msg = NULL;
	char buf[DETAIL_MAX];

	if (c)
		c->broken = true;
	if (res)
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if ((!msg || !*msg) && res)
		msg = PQresultErrorMessage(res);
	if ((!msg || !*msg) && c && c->conn)
		msg = PQerrorMessage(c->conn);
	if (!msg || !*msg) {
		if (res)
			msg = PQresStatus(PQresultStatus(res));
		else
			msg = "connection lost";
	}
	bk_one_line(buf, sizeof(buf), msg);
	return bk_errorf(BK_E_REMOTE, "%s: %s", what, buf);
}

/* Library code never prints: libpq's default would write NOTICEs to stderr. The
 * server's WARNINGs (a file BASE_BACKUP skips, say) go to the caller's callback;
 * the rest is dropped. */
static void watch_heard(struct Watchdog *w);

static void on_notice(void *arg, const PGresult *res)
{
	BkPgRepl *c = arg; /* notices arrive only while the connection is in use */
	if (c->watch) /* the server spoke */
		watch_heard(c->watch);
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (!sev || !msg || strcmp(sev, "WARNING") != 0)
		return;
	if (c->warn)
		c->warn(c->warn_ud, msg);
}

void bk_pgrepl_on_warning(BkPgRepl *c, void (*fn)(void *ud, const char *msg), void *ud)
{
	c->warn = fn;
	c->warn_ud = ud;
}

static int protocol_error(BkPgRepl *c, const char *what, const char *msg)
{
	c->broken = true;
	return bk_errorf(BK_E_CORRUPT, "%s: %s", what, msg);
}

/* A result other than the one the protocol puts here (want): the server's error
 * when it is one (or the connection's), else BK_E_CORRUPT saying in words what
 * came (found by review: libpq's status name, "base backup: PGRES_COPY_OUT", was
 * the whole message). */
static int unexpected_result(BkPgRepl *c, const PGresult *res, const char *what,
			     const char *want)
{
	const char *got = NULL;
	switch (res ? PQresultStatus(res) : PGRES_FATAL_ERROR) {
	case PGRES_TUPLES_OK: got = "rows"; break;
	case PGRES_COMMAND_OK: got = "a command completion"; break;
	case PGRES_EMPTY_QUERY: got = "an empty query response"; break;
	case PGRES_COPY_OUT:
	case PGRES_COPY_IN:
	case PGRES_COPY_BOTH: got = "a copy stream"; break;
	default: return remote_error(c, res, what);
	}
	char msg[128];
	snprintf(msg, sizeof(msg), "expected %s, got %s", want, got);
	return protocol_error(c, what, msg);
}

/* Whether the connection can take a command (streaming false) or a streaming call
 * (streaming true). */
static int check_state(BkPgRepl *c, const char *what, bool streaming)
{
	if (c->broken)
		return bk_errorf(-EPIPE, "%s: connection unusable after an earlier failure", what);
	if (c->streaming && !streaming)
		return bk_errorf(BK_E_USAGE, "%s: connection is streaming wal", what);
	if (!c->streaming && streaming)
		return bk_errorf(BK_E_USAGE, "%s: not streaming", what);
	return 0;
}

static int check_ready(BkPgRepl *c, const char *what) { return check_state(c, what, false); }

/* Frees the message the last bk_pgrepl_stream_recv handed out. */
static void drop_copybuf(BkPgRepl *c)
{
	if (c->copybuf) {
		PQfreemem(c->copybuf);
		c->copybuf = NULL;
	}
}

int bk_pgrepl_open(const char *conninfo, BkPgRepl **ret)
{
	const char *keys[] = { "dbname", "replication", "fallback_application_name", NULL };
	const char *vals[] = { conninfo, "true", "bunker", NULL };
	int e = bk_libpq_load();
	if (e < 0)
		return e;

	BkPgRepl *c = calloc(1, sizeof(*c));
	if (!c)
		return bk_errorf(-ENOMEM, "connect: out of memory");
	c->conn = PQconnectdbParams(keys, vals, 1);
	if (!c->conn) {
		free(c);
		return bk_errorf(-ENOMEM, "connect: out of memory");
	}
	if (PQstatus(c->conn) != CONNECTION_OK) {
		int r = remote_error(c, NULL, "connect");
		bk_pgrepl_close(c);
		return r;
	}
	(void)bk_pg_keepalives_set(c->conn);
	PQsetNoticeReceiver(c->conn, on_notice, c);
	*ret = c;
	return 0;
}

void bk_pgrepl_close(BkPgRepl *c)
{
	if (!c)
		return;
	drop_copybuf(c);
	PQfinish(c->conn);
	free(c);
}

int bk_pgrepl_server_version(const BkPgRepl *c) { return PQserverVersion(c->conn); }

static bool parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return true;
}

static bool parse_tli(const char *s, uint32_t *ret)
{
	uint64_t v;
	if (!parse_u64(s, &v) || v == 0 || v > UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

/* Checks a result's shape; NULL cells are rejected unless nulls_ok. */
static int check_tuples(BkPgRepl *c, const PGresult *res, const char *what, int min_rows,
                        int max_rows, int min_fields)
{
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
		return unexpected_result(c, res, what, "rows");
	int rows = PQntuples(res);
	if (rows < min_rows || (max_rows >= 0 && rows > max_rows) || PQnfields(res) < min_fields) {
		c->broken = true;
		return bk_errorf(BK_E_CORRUPT, "%s: unexpected reply of %d rows and %d fields", what,
		                 rows, PQnfields(res));
	}
	return 0;
}

void bk_pgrepl_set_stall(BkPgRepl *c, unsigned stall_s) { c->stall_s = stall_s; }

static int stall_error(BkPgRepl *c, const char *what, unsigned stall_s)
{
	c->broken = true;
	return bk_pq_stall_error(what, stall_s);
}

/* A query of the connection's own (not a base backup's), bounded by its stall
 * timeout: *ret its result, or an error. */
static int exec(BkPgRepl *c, const char *what, const char *sql, PGresult **ret)
{
	bool stalled;
	*ret = bk_pq_exec(c->conn, sql, c->stall_s, &stalled);
	return stalled ? stall_error(c, what, c->stall_s) : 0;
}

int bk_pgrepl_identify_system(BkPgRepl *c, BkPgReplSystem *ret)
{
	const char *what = "identify system";
	int r = check_ready(c, what);
	if (r < 0)
		return r;
	_cleanup_pqclear_ PGresult *res = NULL;
	r = exec(c, what, "IDENTIFY_SYSTEM", &res);
	if (r == 0)
		r = check_tuples(c, res, what, 1, 1, 3);
	if (r < 0)
		return r;
	BkPgReplSystem s;
	if (PQgetisnull(res, 0, 0) || !parse_u64(PQgetvalue(res, 0, 0), &s.sysid) ||
	    PQgetisnull(res, 0, 1) || !parse_tli(PQgetvalue(res, 0, 1), &s.tli) ||
	    PQgetisnull(res, 0, 2) || bk_wal_lsn_parse(PQgetvalue(res, 0, 2), &s.xlogpos) < 0)
		return protocol_error(c, what, "malformed reply");
	*ret = s;
	return 0;
}

int bk_pgrepl_show(BkPgRepl *c, const char *name, char *buf, size_t cap)
{
	const char *what = "show";
	if (!name[0] || strspn(name, "abcdefghijklmnopqrstuvwxyz_.") != strlen(name) || strlen(name) > 64)
		return bk_errorf(BK_E_USAGE, "show: bad setting name '%s'", name);
	int r = check_ready(c, what);
	if (r < 0)
		return r;
	char cmd[80];
	snprintf(cmd, sizeof(cmd), "SHOW %s", name);
	_cleanup_pqclear_ PGresult *res = NULL;
	r = exec(c, what, cmd, &res);
	if (r == 0)
		r = check_tuples(c, res, what, 1, 1, 1);
	if (r < 0)
		return r;
	const char *v = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
	size_t n = strlen(v);
	if (n >= cap)
		return bk_errorf(BK_E_CORRUPT, "show %s: value of %zu bytes", name, n);
	memcpy(buf, v, n + 1);
	return 0;
}

/* Reads a (recptr, tli) result as BASE_BACKUP sends it at its start and end. */
static int read_lsn_result(BkPgRepl *c, const PGresult *res, const char *what, uint64_t *lsn,
                           uint32_t *tli)
{
	int r = check_tuples(c, res, what, 1, 1, 2);
	if (r < 0)
		return r;
	if (PQgetisnull(res, 0, 0) || bk_wal_lsn_parse(PQgetvalue(res, 0, 0), lsn) < 0 ||
	    PQgetisnull(res, 0, 1) || !parse_tli(PQgetvalue(res, 0, 1), tli))
		return protocol_error(c, what, "malformed wal location");
	return 0;
}

static bool label_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > LABEL_MAX)
		return false;
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '\\')
			return false;
	return true;
}

typedef struct {
	BkPgRepl *c;
	const BkPgReplBackupCallbacks *cb;
	void *ctx;
	char name[256];
	bool in_archive;
	uint64_t total, bytes;
	unsigned archives;
	const PGresult *tablespaces; /* the rows the server listed: oid, location, size */
	bool *seen;                  /* each row's archive received */
} Backup;

/* The row of the archive `name` sent at `loc`: base.tar is the data directory's
 * (oid NULL), <oid>.tar a tablespace's, at the location listed. -1 if none is. */
static int archive_row(const Backup *b, const char *name, const char *loc)
{
	int n = PQntuples(b->tablespaces);
	for (int i = 0; i < n; i++) {
		char want[32] = "base.tar";
		if (!PQgetisnull(b->tablespaces, i, 0))
			snprintf(want, sizeof(want), "%.20s.tar", PQgetvalue(b->tablespaces, i, 0));
		const char *at = PQgetisnull(b->tablespaces, i, 1) ? "" : PQgetvalue(b->tablespaces, i, 1);
		if (!strcmp(name, want) && !strcmp(loc, at))
			return i;
	}
	return -1;
}

static int end_archive(Backup *b)
{
	if (!b->in_archive)
		return 0;
	b->in_archive = false;
	if (b->cb->archive_end) {
		int r = b->cb->archive_end(b->ctx, b->name);
		if (r < 0)
			return r;
	}
	return 0;
}

/* One CopyData message of the PostgreSQL 15 base backup stream. */
static int backup_message(Backup *b, const uint8_t *m, size_t len)
{
	const char *what = "base backup";
	int r;
	switch (m[0]) {
	case 'n': {
		/* new archive: archive name, tablespace location (both NUL-terminated) */
		const char *name = (const char *)m + 1;
		const char *nul1 = memchr(name, '\0', len - 1);
		if (!nul1)
			return protocol_error(b->c, what, "malformed new-archive message");
		const char *loc = nul1 + 1;
		size_t rest = len - (size_t)(loc - (const char *)m);
		const char *nul2 = rest ? memchr(loc, '\0', rest) : NULL;
		if (!nul2 || nul2 != (const char *)m + len - 1 || nul1 == name ||
		    (size_t)(nul1 - name) >= sizeof(b->name))
			return protocol_error(b->c, what, "malformed new-archive message");
		/* one archive for each tablespace listed, under its name and location
		 * (found by a mutation run: any name passed, as long as the count did) */
		int row = archive_row(b, name, loc);
		if (row < 0 || b->seen[row]) {
			char msg[320];
			snprintf(msg, sizeof(msg), "archive '%.100s' at '%.100s' %s", name, loc,
				 row < 0 ? "is not a tablespace the server listed" : "received twice");
			return protocol_error(b->c, what, msg);
		}
		b->seen[row] = true;
		r = end_archive(b);
		if (r < 0)
			return r;
		memcpy(b->name, name, (size_t)(nul1 - name) + 1);
		b->in_archive = true;
		b->archives++;
		if (b->cb->archive_start)
			return b->cb->archive_start(b->ctx, b->name, loc);
		return 0;
	}
	case 'd':
		if (!b->in_archive)
			return protocol_error(b->c, what, "archive data before any archive");
		b->bytes += len - 1;
		if (b->cb->archive_data && len > 1)
			return b->cb->archive_data(b->ctx, m + 1, len - 1);
		return 0;
	case 'p':
		if (len != 9)
			return protocol_error(b->c, what, "malformed progress message");
		if (b->cb->progress)
			return b->cb->progress(b->ctx, get_be64(m + 1), b->total);
		return 0;
	case 'm': return protocol_error(b->c, what, "server sent a manifest that was not requested");
	default: {
		char msg[64];
		snprintf(msg, sizeof(msg), "unknown copy message type 0x%02x", m[0]);
		return protocol_error(b->c, what, msg);
	}
	}
}

/* ---- stall watchdog ------------------------------------------------------------ */

/* While a base backup streams, reads are blocking libpq calls (its asynchronous
 * reads were slower, bench/results/HISTORY.md). A second thread watches them: once
 * one has waited stall_us since it began or since the server last spoke (a notice
 * counts), it shuts the socket down, and the blocked read fails at once. The time
 * the caller's callbacks take is not counted: that is bunker's own pace, not the
 * server's. It shuts down a duplicate of the socket's descriptor, its own until it
 * is joined: libpq closes the socket itself when the server hangs up, and the
 * number may be another file's by then (found by review). */
typedef struct Watchdog {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop; /* under mu */
	int fd; /* the duplicate */
	uint64_t stall_us;
	/* bk_mono_us() when the wait began; 0: not reading; WATCH_FIRED once the
	 * watchdog took that wait for a stall. The watchdog fires only by swapping the
	 * value it read for WATCH_FIRED: a read that ended (or a notice) meanwhile
	 * changed it, and the swap fails (found by review: loaded, then compared with
	 * the clock read after, it could fire for a read that had ended in time). */
	_Atomic uint64_t since;
	atomic_bool fired;
	pthread_t thread;
} Watchdog;

#define WATCH_FIRED UINT64_MAX

static void watch_heard(Watchdog *w)
{
	uint64_t since = atomic_load(&w->since);
	if (since && since != WATCH_FIRED)
		atomic_compare_exchange_strong(&w->since, &since, bk_mono_us());
}

static void *watch_run(void *arg)
{
	Watchdog *w = arg;
	uint64_t period = w->stall_us / 4;
	period = period < 10000 ? 10000 : period > 1000000 ? 1000000 : period;
	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		uint64_t since = atomic_load(&w->since);
		if (since && since != WATCH_FIRED && bk_mono_us() - since >= w->stall_us &&
		    atomic_compare_exchange_strong(&w->since, &since, WATCH_FIRED)) {
			atomic_store(&w->fired, true);
			shutdown(w->fd, SHUT_RDWR);
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + period * 1000;
		ts.tv_sec += (time_t)(ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Starts watching c's reads. Returns 0, or < 0 with nothing started. */
static int watch_start(Watchdog *w, BkPgRepl *c, uint32_t stall_s)
{
	*w = (Watchdog){ .fd = fcntl(PQsocket(c->conn), F_DUPFD_CLOEXEC, 0),
			 .stall_us = (uint64_t)stall_s * 1000000 };
	if (w->fd < 0)
		return bk_errorf_code(-errno, "base backup: stall watchdog");
	atomic_init(&w->since, 0);
	atomic_init(&w->fired, false);
	pthread_condattr_t attr;
	int e = pthread_condattr_init(&attr);
	if (e == 0) {
		e = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		if (e == 0)
			e = pthread_cond_init(&w->cv, &attr);
		pthread_condattr_destroy(&attr);
	}
	if (e) {
		close(w->fd);
		return bk_errorf_code(-e, "base backup: stall watchdog");
	}
	pthread_mutex_init(&w->mu, NULL);
	e = pthread_create(&w->thread, NULL, watch_run, w);
	if (e) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		close(w->fd);
		return bk_errorf_code(-e, "base backup: stall watchdog");
	}
	c->watch = w;
	return 0;
}

/* Stops the thread; returns whether it shut the connection down. */
static bool watch_stop(Watchdog *w, BkPgRepl *c)
{
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	close(w->fd);
	c->watch = NULL;
	return atomic_load(&w->fired);
}

/* Around each blocking read while streaming (no-ops without a watchdog). */
static void watch_arm(BkPgRepl *c)
{
	if (c->watch)
		atomic_store(&c->watch->since, bk_mono_us());
}

static void watch_disarm(BkPgRepl *c)
{
	if (c->watch)
		atomic_store(&c->watch->since, 0);
}

/* The COPY of a base backup and what follows it: every archive through the
 * callbacks, then the end location and the command's completion. */
static int backup_stream(Backup *b, BkPgReplBackupResult *out)
{
	const char *what = "base backup";
	BkPgRepl *c = b->c;
	int r;
	for (;;) {
		_cleanup_pqfree_ char *buf = NULL;
		watch_arm(c);
		int n = PQgetCopyData(c->conn, &buf, 0);
		watch_disarm(c);
		if (n == -1)
			break;
		if (n == -2 || n == 0 || !buf)
			return remote_error(c, NULL, what);
		r = backup_message(b, (const uint8_t *)buf, (size_t)n);
		if (r < 0) {
			c->broken = true;
			return r;
		}
	}
	/* The COPY ends the same way whether the server finished or failed: only the
	 * end location proves the last archive complete. */
	{
		watch_arm(c);
		_cleanup_pqclear_ PGresult *res = PQgetResult(c->conn);
		watch_disarm(c);
		r = read_lsn_result(c, res, what, &out->end_lsn, &out->end_tli);
		if (r < 0)
			return r;
	}
	r = end_archive(b);
	if (r < 0) {
		c->broken = true;
		return r;
	}
	for (;;) {
		watch_arm(c);
		_cleanup_pqclear_ PGresult *res = PQgetResult(c->conn);
		watch_disarm(c);
		if (!res)
			break;
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return unexpected_result(c, res, what, "a command completion");
	}
	return 0;
}

int bk_pgrepl_base_backup(BkPgRepl *c, const BkPgReplBackupOptions *opt,
                          const BkPgReplBackupCallbacks *cb, void *ctx,
                          BkPgReplBackupResult *ret)
{
	static const BkPgReplBackupOptions defaults = {0};
	static const BkPgReplBackupCallbacks no_callbacks = {0};
	const char *what = "base backup";
	int r = check_ready(c, what);
	if (r < 0)
		return r;
	if (!opt)
		opt = &defaults;
	if (!cb)
		cb = &no_callbacks;

	int version = PQserverVersion(c->conn);
	if (version < 150000)
		return bk_errorf(BK_E_VERSION, "%s: server version %d is older than postgresql 15", what,
		                 version);
	const char *label = opt->label ? opt->label : "bunker";
	if (!label_ok(label))
		return bk_errorf(BK_E_USAGE, "%s: label must be 1 to %d printable ascii characters", what,
		                 LABEL_MAX);
	if (opt->max_rate_kb != 0 && (opt->max_rate_kb < 32 || opt->max_rate_kb > 1048576))
		return bk_errorf(BK_E_USAGE, "%s: max rate %u kB/s outside 32..1048576", what,
		                 opt->max_rate_kb);

	/* The replication grammar's strings know only '' as an escape. */
	char quoted[2 * LABEL_MAX + 1];
	size_t q = 0;
	for (const char *s = label; *s; s++) {
		if (*s == '\'')
			quoted[q++] = '\'';
		quoted[q++] = *s;
	}
	quoted[q] = '\0';
	char rate[48] = "";
	if (opt->max_rate_kb)
		snprintf(rate, sizeof(rate), ", MAX_RATE %u", opt->max_rate_kb);
	char cmd[sizeof(quoted) + 256];
	snprintf(cmd, sizeof(cmd),
	         "BASE_BACKUP ( LABEL '%s', PROGRESS, CHECKPOINT '%s', WAIT %s, MANIFEST 'no', "
	         "TABLESPACE_MAP%s%s )",
	         quoted, opt->fast_checkpoint ? "fast" : "spread", opt->no_wait ? "false" : "true",
	         rate, opt->no_verify_checksums ? ", VERIFY_CHECKSUMS false" : "");

	if (!PQsendQuery(c->conn, cmd))
		return remote_error(c, NULL, what);

	BkPgReplBackupResult out = {0};
	Backup b = {.c = c, .cb = cb, .ctx = ctx};
	{
		_cleanup_pqclear_ PGresult *res = PQgetResult(c->conn);
		r = read_lsn_result(c, res, what, &out.start_lsn, &out.start_tli);
		if (r < 0)
			return r;
	}
	int n_tablespaces;
	_cleanup_pqclear_ PGresult *tablespaces = PQgetResult(c->conn);
	_cleanup_free_ bool *seen = NULL;
	{
		PGresult *res = tablespaces;
		r = check_tuples(c, res, what, 1, -1, 3);
		if (r < 0)
			return r;
		n_tablespaces = PQntuples(res);
		if (!(seen = calloc((size_t)n_tablespaces, sizeof(*seen)))) {
			c->broken = true; /* (BASE_BACKUP goes on without us) */
			return bk_errorf_code(-ENOMEM, "%s", what);
		}
		b.tablespaces = res;
		b.seen = seen;
		for (int i = 0; i < n_tablespaces; i++) {
			uint64_t kb;
			if (PQgetisnull(res, i, 2))
				continue;
			if (!parse_u64(PQgetvalue(res, i, 2), &kb) || kb > (UINT64_MAX >> 11) - b.total / 1024)
				return protocol_error(c, what, "malformed tablespace size");
			b.total += kb * 1024;
		}
	}
	{
		_cleanup_pqclear_ PGresult *res = PQgetResult(c->conn);
		if (!res || PQresultStatus(res) != PGRES_COPY_OUT)
			return unexpected_result(c, res, what, "a copy stream");
	}
	if (opt->stall_timeout_s) {
		Watchdog w;
		r = watch_start(&w, c, opt->stall_timeout_s);
		if (r < 0) {
			c->broken = true;
			return r;
		}
		r = backup_stream(&b, &out);
		bool fired = watch_stop(&w, c);
		if (fired)
			c->broken = true;
		if (r < 0 && fired)
			return stall_error(c, what, opt->stall_timeout_s);
	} else {
		r = backup_stream(&b, &out);
	}
	if (r < 0)
		return r;
	if (b.archives != (unsigned)n_tablespaces) {
		c->broken = true;
		return bk_errorf(BK_E_CORRUPT, "%s: %u archives received for %d tablespaces", what,
		                 b.archives, n_tablespaces);
	}
	if (out.end_lsn < out.start_lsn)
		return protocol_error(c, what, "end location before start location");
	out.total_estimate = b.total;
	out.bytes = b.bytes;
	out.archives = b.archives;
	*ret = out;
	return 0;
}

/* ---- streaming ---------------------------------------------------------------- */

int bk_pgrepl_msg_parse(const void *buf, size_t len, BkPgReplMsg *ret)
{
	const uint8_t *m = buf;
	BkPgReplMsg msg = {0};
	if (len == 0)
		return bk_errorf(BK_E_CORRUPT, "replication message: empty");
	switch (m[0]) {
	case 'w':
		if (len < 25)
			return bk_errorf(BK_E_CORRUPT, "replication message: xlogdata of %zu bytes", len);
		msg.kind = BK_PGREPL_MSG_XLOG;
		msg.data_start = get_be64(m + 1);
		msg.wal_end = get_be64(m + 9);
		msg.send_time = (int64_t)get_be64(m + 17);
		msg.data = m + 25;
		msg.len = len - 25;
		if (msg.len > UINT64_MAX - msg.data_start)
			return bk_errorf(BK_E_CORRUPT, "replication message: xlogdata beyond the wal space");
		break;
	case 'k':
		if (len != 18)
			return bk_errorf(BK_E_CORRUPT, "replication message: keepalive of %zu bytes", len);
		msg.kind = BK_PGREPL_MSG_KEEPALIVE;
		msg.wal_end = get_be64(m + 1);
		msg.send_time = (int64_t)get_be64(m + 9);
		if (m[17] > 1)
			return bk_errorf(BK_E_CORRUPT, "replication message: bad keepalive reply flag");
		msg.reply_requested = m[17] == 1;
		break;
	default:
		return bk_errorf(BK_E_CORRUPT, "replication message: unknown type 0x%02x", m[0]);
	}
	*ret = msg;
	return 0;
}

void bk_pgrepl_status_encode(uint8_t out[BK_PGREPL_STATUS_LEN], uint64_t write, uint64_t flush,
                             uint64_t apply, int64_t now_pg_us, bool reply_requested)
{
	out[0] = 'r';
	put_be64(out + 1, write);
	put_be64(out + 9, flush);
	put_be64(out + 17, apply);
	put_be64(out + 25, (uint64_t)now_pg_us);
	out[33] = reply_requested ? 1 : 0;
}

static bool slot_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > SLOT_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

int bk_pgrepl_stream_start(BkPgRepl *c, const char *slot, uint32_t tli, uint64_t start_lsn)
{
	const char *what = "start replication";
	int r = check_ready(c, what);
	if (r < 0)
		return r;
	if (slot && !slot_ok(slot))
		return bk_errorf(BK_E_USAGE, "%s: invalid slot name", what);
	if (tli == 0)
		return bk_errorf(BK_E_USAGE, "%s: timeline 0 is not valid", what);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "START_REPLICATION %s%s%sPHYSICAL %X/%X TIMELINE %u",
	         slot ? "SLOT " : "", slot ? slot : "", slot ? " " : "", (uint32_t)(start_lsn >> 32),
	         (uint32_t)start_lsn, tli);
	_cleanup_pqclear_ PGresult *res = PQexec(c->conn, cmd);
	if (!res || PQresultStatus(res) != PGRES_COPY_BOTH)
		return remote_error(c, res, what);
	c->streaming = true;
	return 0;
}

/* Checks one result after the end of the COPY BOTH stream: an optional
 * (next_tli, next_tli_startpos) row, then START_REPLICATION's completion. */
static int stream_result(BkPgRepl *c, const PGresult *res, const char *what, uint32_t *next_tli,
                         uint64_t *next_lsn)
{
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK) {
		if (PQntuples(res) != 1 || PQnfields(res) < 2 || PQgetisnull(res, 0, 0) ||
		    PQgetisnull(res, 0, 1) || !parse_tli(PQgetvalue(res, 0, 0), next_tli) ||
		    bk_wal_lsn_parse(PQgetvalue(res, 0, 1), next_lsn) < 0)
			return protocol_error(c, what, "malformed end-of-timeline reply");
		return 0;
	}
	if (st != PGRES_COMMAND_OK)
		return remote_error(c, res, what);
	return 0;
}

/* Reads every remaining result after the stream ended. */
static int stream_finish_results(BkPgRepl *c, const char *what, uint32_t *next_tli,
                                 uint64_t *next_lsn)
{
	for (;;) {
		_cleanup_pqclear_ PGresult *res = PQgetResult(c->conn);
		if (!res)
			break;
		int r = stream_result(c, res, what, next_tli, next_lsn);
		if (r < 0)
			return r;
	}
	c->streaming = false;
	return 0;
}

/* PQgetCopyData said the stream ended. Either the server sent CopyDone (libpq is
 * then in COPY IN: answer with ours) or it failed (the error is the next result). */
static int stream_ended(BkPgRepl *c, const char *what, uint32_t *next_tli, uint64_t *next_lsn)
{
	{
		_cleanup_pqclear_ PGresult *res = PQgetResult(c->conn);
		if (!res)
			return remote_error(c, NULL, what);
		if (PQresultStatus(res) == PGRES_COPY_IN) {
			if (PQputCopyEnd(c->conn, NULL) <= 0 || PQflush(c->conn) != 0)
				return remote_error(c, NULL, what);
		} else {
			int r = stream_result(c, res, what, next_tli, next_lsn);
			if (r < 0)
				return r;
		}
	}
	return stream_finish_results(c, what, next_tli, next_lsn);
}

int bk_pgrepl_stream_recv(BkPgRepl *c, int timeout_ms, BkPgReplMsg *ret)
{
	const char *what = "receive wal";
	int e = check_state(c, what, true);
	if (e < 0)
		return e;
	drop_copybuf(c);
	uint64_t deadline = timeout_ms >= 0 ? bk_mono_us() + (uint64_t)timeout_ms * 1000 : 0;
	for (;;) {
		char *buf = NULL;
		int n = PQgetCopyData(c->conn, &buf, 1);
		if (n > 0) {
			c->copybuf = buf;
			int r = bk_pgrepl_msg_parse(buf, (size_t)n, ret);
			if (r < 0)
				c->broken = true;
			return r < 0 ? r : 1;
		}
		if (buf)
			PQfreemem(buf);
		if (n == -2)
			return remote_error(c, NULL, what);
		if (n == -1) {
			BkPgReplMsg msg = {.kind = BK_PGREPL_MSG_END};
			int r = stream_ended(c, what, &msg.next_tli, &msg.next_lsn);
			if (r < 0)
				return r;
			*ret = msg;
			return 1;
		}
		/* n == 0: nothing complete buffered; wait for the socket. */
		int wait_ms = -1;
		if (timeout_ms >= 0) { /* past the deadline, still one look (found by review:
					* timeout 0 never read the socket) */
			uint64_t now = bk_mono_us();
			wait_ms = now >= deadline ? 0 : (int)((deadline - now + 999) / 1000);
		}
		struct pollfd pfd = {.fd = PQsocket(c->conn), .events = POLLIN};
		if (pfd.fd < 0)
			return remote_error(c, NULL, what);
		int pr = poll(&pfd, 1, wait_ms);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			c->broken = true;
			return bk_errorf_code(-errno, "%s: poll", what);
		}
		if (pr == 0)
			return 0;
		if (!PQconsumeInput(c->conn))
			return remote_error(c, NULL, what);
	}
}

int bk_pgrepl_stream_status(BkPgRepl *c, uint64_t write, uint64_t flush, uint64_t apply,
                            bool reply_requested)
{
	const char *what = "send wal status";
	int e = check_state(c, what, true);
	if (e < 0)
		return e;
	uint8_t msg[BK_PGREPL_STATUS_LEN];
	bk_pgrepl_status_encode(msg, write, flush, apply, bk_now_us() - BK_PGREPL_EPOCH_OFFSET_US,
	                        reply_requested);
	if (PQputCopyData(c->conn, (const char *)msg, (int)sizeof(msg)) <= 0 || PQflush(c->conn) != 0)
		return remote_error(c, NULL, what);
	return 0;
}

int bk_pgrepl_stream_stop(BkPgRepl *c)
{
	const char *what = "stop replication";
	int e = check_state(c, what, true);
	if (e < 0)
		return e;
	drop_copybuf(c);
	if (PQputCopyEnd(c->conn, NULL) <= 0 || PQflush(c->conn) != 0)
		return remote_error(c, NULL, what);
	/* WAL already in flight is discarded until the server's CopyDone. */
	for (;;) {
		_cleanup_pqfree_ char *buf = NULL;
		int n = PQgetCopyData(c->conn, &buf, 0);
		if (n == -1)
			break;
		if (n < 0)
			return remote_error(c, NULL, what);
	}
	uint32_t tli;
	uint64_t lsn;
	return stream_ended(c, what, &tli, &lsn);
}
