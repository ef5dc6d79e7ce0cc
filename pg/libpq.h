/* pg/libpq.h: libpq, loaded when first needed.
 *
 * Most commands never talk to a server, and the ones PostgreSQL itself runs
 * (archive_command's `pg wal-push`, restore_command's `pg wal-fetch`) run once per
 * WAL file: linking libpq would make every one of them load it and its two dozen
 * dependencies (Kerberos, LDAP, GnuTLS...), about 3 ms per process. So bunker
 * dlopen()s libpq.so.5 at the first connection instead, and code here calls
 * libpq through the usual PQ* names, which this header maps to the loaded
 * functions. Include it instead of <libpq-fe.h>.
 *
 * bk_libpq_load(): 0 once libpq is loaded (it stays loaded), BK_E_REMOTE with a
 * message naming the library when it cannot be. Safe to call again and from
 * several threads.
 */
#ifndef BK_PG_LIBPQ_H
#define BK_PG_LIBPQ_H

#include <libpq-fe.h>
#include <stdbool.h>

int bk_libpq_load(void);

/* PQexec, bounded: with stall_s (0: none), once the server has sent nothing for
 * stall_s seconds the wait ends, NULL is returned and *ret_stalled set (the
 * connection is then of no further use: the query may still run). Otherwise as
 * PQexec (*ret_stalled false): the last result, or NULL when the query could not
 * be sent (PQerrorMessage says why). */
PGresult *bk_pq_exec(PGconn *c, const char *sql, unsigned stall_s, bool *ret_stalled);

/* The error of a server that sent nothing for stall_s seconds while bunker waited
 * for what: BK_E_REMOTE, "WHAT: the server sent nothing for N s (stall timeout)". */
int bk_pq_stall_error(const char *what, unsigned stall_s);

/* Every libpq function bunker uses. */
#define BK_LIBPQ_FUNCS(X)                                                                      \
	X(PQclear) X(PQconnectdbParams) X(PQconninfo) X(PQconninfoFree) X(PQconninfoParse)      \
	X(PQconsumeInput) X(PQerrorMessage) X(PQfinish) X(PQflush) X(PQfreemem)                 \
	X(PQgetCopyData) X(PQgetResult) X(PQgetisnull) X(PQgetvalue) X(PQexec) X(PQisBusy)      \
	X(PQnfields)                                                                            \
	X(PQntuples) X(PQputCopyData) X(PQputCopyEnd) X(PQresStatus) X(PQresultErrorField)      \
	X(PQresultErrorMessage) X(PQresultStatus) X(PQsendQuery) X(PQserverVersion)             \
	X(PQsetNoticeReceiver) X(PQsocket) X(PQstatus)

#define BK_LIBPQ_FIELD(f) __typeof__(f) *f;
struct BkLibpq {
	BK_LIBPQ_FUNCS(BK_LIBPQ_FIELD)
};
#undef BK_LIBPQ_FIELD
extern struct BkLibpq bk_libpq;

#ifndef BK_LIBPQ_LOADER
#define PQclear bk_libpq.PQclear
#define PQconnectdbParams bk_libpq.PQconnectdbParams
#define PQconninfo bk_libpq.PQconninfo
#define PQconninfoFree bk_libpq.PQconninfoFree
#define PQconninfoParse bk_libpq.PQconninfoParse
#define PQconsumeInput bk_libpq.PQconsumeInput
#define PQerrorMessage bk_libpq.PQerrorMessage
#define PQfinish bk_libpq.PQfinish
#define PQflush bk_libpq.PQflush
#define PQfreemem bk_libpq.PQfreemem
#define PQgetCopyData bk_libpq.PQgetCopyData
#define PQgetResult bk_libpq.PQgetResult
#define PQgetisnull bk_libpq.PQgetisnull
#define PQgetvalue bk_libpq.PQgetvalue
#define PQexec bk_libpq.PQexec
#define PQisBusy bk_libpq.PQisBusy
#define PQnfields bk_libpq.PQnfields
#define PQntuples bk_libpq.PQntuples
#define PQputCopyData bk_libpq.PQputCopyData
#define PQputCopyEnd bk_libpq.PQputCopyEnd
#define PQresStatus bk_libpq.PQresStatus
#define PQresultErrorField bk_libpq.PQresultErrorField
#define PQresultErrorMessage bk_libpq.PQresultErrorMessage
#define PQresultStatus bk_libpq.PQresultStatus
#define PQsendQuery bk_libpq.PQsendQuery
#define PQserverVersion bk_libpq.PQserverVersion
#define PQsetNoticeReceiver bk_libpq.PQsetNoticeReceiver
#define PQsocket bk_libpq.PQsocket
#define PQstatus bk_libpq.PQstatus
#endif

#endif
