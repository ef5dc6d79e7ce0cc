/* store/error.h: error codes and the thread-local detail message.
 *
 * Contract: every fallible function in libbunker returns int, >= 0 on success and
 * < 0 on failure: either -errno or one of the BK_E_* domain codes below. Where the
 * failure is found, the code is returned through bk_errorf(), which also records a
 * one-line, lowercase detail naming the object ("pack 3fa1...: bad magic"). The
 * detail lives in thread-local storage until the next bk_errorf() on that thread;
 * only programs print it (once). Library code never prints, logs or exits.
 *
 * Thread-safety: all functions are safe to call from any thread.
 */
#ifndef BK_STORE_ERROR_H
#define BK_STORE_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

enum {
	BK_E_BASE = -10000,
	BK_E_CORRUPT = -10001,  /* bytes from disk or network fail a check */
	BK_E_BADKEY = -10002,   /* wrong passphrase or key file for every slot */
	BK_E_VERSION = -10003,  /* a format version this build does not know */
	BK_E_REMOTE = -10004,   /* a remote server refused or failed */
	BK_E_MISMATCH = -10005, /* same name already stored with different bytes */
	BK_E_USAGE = -10006,    /* caller passed something invalid (bad name, option) */
};

/* Records the detail message (printf-style) and returns code unchanged, so that
 * report-and-return is one line: return bk_errorf(-EIO, "write %s", path); */
int bk_errorf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same, but appends ": <strerror(code)>" to the message. */
int bk_errorf_code(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current detail with more context: "<fmt...>: <old detail>"
 * (or just the prefix if there was none). Returns code. */
int bk_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last detail recorded on this thread, or "" if none. Borrowed: valid until
 * the next bk_errorf*() or bk_error_clear() on this thread. */
const char *bk_error_detail(void);

void bk_error_clear(void);

/* A short, static, human name for any code (a -errno or BK_E_*). */
const char *bk_strerror(int code);

#endif
