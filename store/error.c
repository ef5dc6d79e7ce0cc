#include "store/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char detail[1024];

__attribute__((format(printf, 3, 0))) static int vset(int code, bool with_code, const char *fmt,
						       va_list ap)
{
	int n = vsnprintf(detail, sizeof(detail), fmt, ap);
	if (with_code && n >= 0 && (size_t)n < sizeof(detail))
		snprintf(detail + n, sizeof(detail) - (size_t)n, ": %s", bk_strerror(code));
	return code;
}

int bk_errorf(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(code, false, fmt, ap);
	va_end(ap);
	return code;
}

int bk_errorf_code(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(code, true, fmt, ap);
	va_end(ap);
	return code;
}

int bk_error_wrap(int code, const char *fmt, ...)
{
	char old[sizeof(detail)], prefix[512];
	memcpy(old, detail, sizeof(old));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	if (old[0])
		snprintf(detail, sizeof(detail), "%s: %s", prefix, old);
	else
		snprintf(detail, sizeof(detail), "%s: %s", prefix, bk_strerror(code));
	return code;
}

const char *bk_error_detail(void) { return detail; }

void bk_error_clear(void) { detail[0] = '\0'; }

const char *bk_strerror(int code)
{
	switch (code) {
	case BK_E_CORRUPT: return "data corrupt";
	case BK_E_BADKEY: return "wrong passphrase or key";
	case BK_E_VERSION: return "unknown format version";
	case BK_E_REMOTE: return "remote error";
	case BK_E_MISMATCH: return "already stored with different contents";
	case BK_E_USAGE: return "invalid argument";
	default: break;
	}
	if (code < 0 && code > BK_E_BASE)
		return strerror(-code);
	return "unknown error";
}
