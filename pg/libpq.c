#define BK_LIBPQ_LOADER
#include "pg/libpq.h"

#include <dlfcn.h>
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
