/* See fsync-log.h. */
#include "tests/fsync-log.h"

#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static bool logging;
static char synced[64][4096];
static size_t nsynced;

int fsync(int fd)
{
	if (logging && nsynced < sizeof(synced) / sizeof(synced[0])) {
		char link[64];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, synced[nsynced], sizeof(synced[0]) - 1);
		synced[nsynced++][n > 0 ? n : 0] = '\0';
	}
	return (int)syscall(SYS_fsync, fd);
}

void fsync_log_start(void)
{
	nsynced = 0;
	logging = true;
}

void fsync_log_stop(void) { logging = false; }

bool fsync_logged(const char *path)
{
	for (size_t i = 0; i < nsynced; i++)
		if (strcmp(synced[i], path) == 0)
			return true;
	return false;
}
