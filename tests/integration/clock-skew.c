/* clock-skew: an LD_PRELOAD library that moves CLOCK_REALTIME by CLOCK_SKEW_S
 * seconds (a host whose clock disagrees with the database server's), for
 * pg-basebackup.sh. Only the wall clock: monotonic time is left alone. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

int clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	if (!real)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	int r = real(id, ts);
	const char *skew = getenv("CLOCK_SKEW_S");
	if (r == 0 && id == CLOCK_REALTIME && skew)
		ts->tv_sec += atol(skew);
	return r;
}
