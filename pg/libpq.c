#define BK_LIBPQ_LOADER
#include "pg/libpq.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>

#include "store/error.h"

#define LIBPQ_SONAME "libpq.so.5"

struct BkLibpq bk_libpq;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];

static void load(void)
{
	void *h = dlopen(LIBPQ_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(load_error, sizeof(load_error), "%s", dlerror());
		return;
	}
	/* dlsym returns void *; POSIX guarantees it converts to a function pointer */
#define BK_LIBPQ_SYM(f)                                                                        \
	if (!load_error[0] && !(*(void **)&bk_libpq.f = dlsym(h, #f)))                           \
		snprintf(load_error, sizeof(load_error), "%s has no %s", LIBPQ_SONAME, #f);
	BK_LIBPQ_FUNCS(BK_LIBPQ_SYM)
#undef BK_LIBPQ_SYM
}

int bk_libpq_load(void)
{
	pthread_once(&once, load);
	if (load_error[0])
		return bk_errorf(BK_E_REMOTE, "cannot load libpq (%s): %s", LIBPQ_SONAME, load_error);
	return 0;
}

int bk_pq_stall_error(const char *what, unsigned stall_s)
{
	return bk_errorf(BK_E_REMOTE, "%s: the server sent nothing for %u s (stall timeout)", what,
			 stall_s);
}

/* (defined here, where the PQ* names are the loaded functions' fields) */
PGresult *bk_pq_exec(PGconn *c, const char *sql, unsigned stall_s, bool *ret_stalled)
{
	*ret_stalled = false;
	if (!stall_s)
		return bk_libpq.PQexec(c, sql);
	if (!bk_libpq.PQsendQuery(c, sql))
		return NULL;
	/* as PQexec: the last result, up to a copy's start (found by an adversarial
	 * test: a server that took a query and never answered held the command for
	 * ever, whatever --stall-timeout said) */
	PGresult *last = NULL;
	for (;;) {
		while (bk_libpq.PQisBusy(c)) {
			struct pollfd p = { .fd = bk_libpq.PQsocket(c), .events = POLLIN };
			int n = poll(&p, 1, (int)(stall_s > 86400 ? 86400 : stall_s) * 1000);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0) {
				if (last)
					bk_libpq.PQclear(last);
				*ret_stalled = true;
				return NULL;
			}
			if (n < 0 || !bk_libpq.PQconsumeInput(c))
				break; /* PQgetResult reports the connection's failure */
		}
		PGresult *res = bk_libpq.PQgetResult(c);
		if (!res)
			return last;
		if (last)
			bk_libpq.PQclear(last);
		last = res;
		ExecStatusType st = bk_libpq.PQresultStatus(res);
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH ||
		    bk_libpq.PQstatus(c) == CONNECTION_BAD)
			return last;
	}
}
