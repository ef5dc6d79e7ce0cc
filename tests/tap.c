#include "tests/tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static int n_run, n_failed;

__attribute__((format(printf, 2, 0))) static bool vok(bool cond, const char *fmt, va_list ap)
{
	n_run++;
	if (!cond)
		n_failed++;
	printf("%sok %d - ", cond ? "" : "not ", n_run);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

bool ok(bool cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool r = vok(cond, fmt, ap);
	va_end(ap);
	return r;
}

bool ok_int(long long got, long long want, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bool r = vok(got == want, fmt, ap);
	va_end(ap);
	if (!r)
		printf("# got %lld, want %lld\n", got, want);
	return r;
}

void diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

int tap_done(void)
{
	printf("1..%d\n", n_run);
	return n_failed ? 1 : 0;
}

void tap_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || fchmod(fd, (mode_t)mode) < 0 ||
	    close(fd) != 0) {
		printf("Bail out! write %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

void tap_remove_tree(const char *path)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		diag("could not remove %s", path);
}

void tap_buf_add(TapBuf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

void tap_buf_free(TapBuf *b)
{
	free(b->p);
	*b = (TapBuf){ 0 };
}
