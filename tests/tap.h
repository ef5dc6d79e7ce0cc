/* tests/tap.h: a minimal TAP producer for the unit tests.
 * ok(cond, fmt...) prints "ok N - msg" or "not ok N - msg"; tap_done() prints the
 * plan and returns the exit status (non-zero if any test failed). */
#ifndef BK_TESTS_TAP_H
#define BK_TESTS_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define is_int(got, want, ...) ok_int((long long)(got), (long long)(want), __VA_ARGS__)
bool ok_int(long long got, long long want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tap_done(void);
/* Writes a file of len bytes anew (replacing any), mode set exactly; a test that
 * cannot is bailed out. */
void tap_write_file(const char *path, const void *data, size_t len, unsigned mode);
/* Removes a test's temporary directory tree (a diag line if it cannot). */
void tap_remove_tree(const char *path);

/* A growable byte buffer for building a test's input (aborts when out of memory). */
typedef struct {
	uint8_t *p;
	size_t len, cap;
} TapBuf;
void tap_buf_add(TapBuf *b, const void *p, size_t n);
void tap_buf_free(TapBuf *b);

#endif
