/* fsync, as the store calls it (the store is linked into each test statically):
 * between fsync_log_start() and fsync_log_stop() what each call synced is noted
 * (the descriptor's path, by /proc; the first 64 calls), and every call goes on
 * to the kernel. fsync_logged(path): whether path was synced while noting. */
#ifndef BK_TESTS_FSYNC_LOG_H
#define BK_TESTS_FSYNC_LOG_H

#include <stdbool.h>

void fsync_log_start(void);
void fsync_log_stop(void);
bool fsync_logged(const char *path);

#endif
