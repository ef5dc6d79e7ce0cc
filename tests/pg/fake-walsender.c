/* tests/pg/fake-walsender.c: see fake-walsender.h. */
#include "tests/pg/fake-walsender.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void add_u8(TapBuf *b, uint8_t v) { tap_buf_add(b, &v, 1); }

static void add_be16(TapBuf *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	tap_buf_add(b, p, 2);
}

static void add_be32(TapBuf *b, uint32_t v)
{
	uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	tap_buf_add(b, p, 4);
}

static void add_str(TapBuf *b, const char *s) { tap_buf_add(b, s, strlen(s) + 1); }

/* One backend message: type, length (itself included), body. */
static void add_msg(TapBuf *b, char type, const TapBuf *body)
{
	add_u8(b, (uint8_t)type);
	add_be32(b, (uint32_t)(body->len + 4));
	tap_buf_add(b, body->p, body->len);
}

void fw_command_complete(TapBuf *b, const char *tag)
{
	TapBuf m = { 0 };
	add_str(&m, tag);
	add_msg(b, 'C', &m);
	tap_buf_free(&m);
}

void fw_result(TapBuf *b, int ncols, int nrows, const char *const *cells, const char *tag)
{
	TapBuf m = { 0 };
	add_be16(&m, (uint16_t)ncols);
	for (int i = 0; i < ncols; i++) {
		char name[16];
		snprintf(name, sizeof(name), "col%d", i);
		add_str(&m, name);
		add_be32(&m, 0);      /* table oid */
		add_be16(&m, 0);      /* column number */
		add_be32(&m, 25);     /* text */
		add_be16(&m, 0xffff); /* variable length */
		add_be32(&m, 0xffffffff);
		add_be16(&m, 0); /* text format */
	}
	add_msg(b, 'T', &m);
	for (int r = 0; r < nrows; r++) {
		m.len = 0;
		add_be16(&m, (uint16_t)ncols);
		for (int i = 0; i < ncols; i++) {
			const char *v = cells[r * ncols + i];
			add_be32(&m, v ? (uint32_t)strlen(v) : 0xffffffff);
			if (v)
				tap_buf_add(&m, v, strlen(v));
		}
		add_msg(b, 'D', &m);
	}
	tap_buf_free(&m);
	fw_command_complete(b, tag);
}

void fw_lsn_result(TapBuf *b, const char *lsn, const char *tli)
{
	const char *cells[] = { lsn, tli };
	fw_result(b, 2, 1, cells, "SELECT");
}

void fw_copy_out(TapBuf *b)
{
	TapBuf m = { 0 };
	add_u8(&m, 0);
	add_be16(&m, 0);
	add_msg(b, 'H', &m);
	tap_buf_free(&m);
}

void fw_copy_data(TapBuf *b, const void *p, size_t n)
{
	add_u8(b, 'd');
	add_be32(b, (uint32_t)(n + 4));
	tap_buf_add(b, p, n);
}

void fw_copy_done(TapBuf *b)
{
	add_u8(b, 'c');
	add_be32(b, 4);
}

void fw_error(TapBuf *b, const char *msg)
{
	TapBuf m = { 0 };
	add_u8(&m, 'S');
	add_str(&m, "ERROR");
	add_u8(&m, 'V');
	add_str(&m, "ERROR");
	add_u8(&m, 'C');
	add_str(&m, "XX000");
	add_u8(&m, 'M');
	add_str(&m, msg);
	add_u8(&m, 0);
	add_msg(b, 'E', &m);
	tap_buf_free(&m);
}

void fw_new_archive(TapBuf *b, const char *name, const char *location)
{
	TapBuf m = { 0 };
	add_u8(&m, 'n');
	add_str(&m, name);
	add_str(&m, location);
	fw_copy_data(b, m.p, m.len);
	tap_buf_free(&m);
}

void fw_archive_data(TapBuf *b, const void *p, size_t n)
{
	add_u8(b, 'd');
	add_be32(b, (uint32_t)(n + 5));
	add_u8(b, 'd');
	tap_buf_add(b, p, n);
}

void fw_progress(TapBuf *b, uint64_t done)
{
	uint8_t m[9] = { 'p' };
	for (int i = 0; i < 8; i++)
		m[1 + i] = (uint8_t)(done >> (56 - 8 * i));
	fw_copy_data(b, m, sizeof(m));
}

/* ---- tar ---- */

void fw_tar_checksum(uint8_t *h)
{
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
}

void fw_tar_entry(TapBuf *t, char type, const char *path, const void *data, size_t n,
                  int64_t mtime)
{
	uint8_t h[512] = { 0 };
	snprintf((char *)h, 100, "%s", path);
	snprintf((char *)h + 100, 8, "%07o", type == '5' ? 0700 : 0600);
	snprintf((char *)h + 108, 8, "%07o", 26);
	snprintf((char *)h + 116, 8, "%07o", 26);
	snprintf((char *)h + 124, 12, "%011zo", type == '0' ? n : 0);
	snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)mtime);
	h[156] = (uint8_t)type;
	if (type == '1' || type == '2')
		snprintf((char *)h + 157, 100, "%s", (const char *)data);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	fw_tar_checksum(h);
	tap_buf_add(t, h, sizeof(h));
	if (type != '0')
		return;
	tap_buf_add(t, data, n);
	static const uint8_t zero[512];
	tap_buf_add(t, zero, (512 - n % 512) % 512);
}

void fw_tar_end(TapBuf *t)
{
	static const uint8_t zero[1024];
	tap_buf_add(t, zero, sizeof(zero));
}

/* ---- the server ---- */

struct FakeWalsender {
	int lfd;
	pthread_t thread;
	pthread_mutex_t lock;
	char conninfo[128];
	TapBuf reply;
	bool hangup;
	char last_command[2048];
	char version[16];
	char mute[64]; /* fw_set_mute */
};

static bool write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		b += w;
		n -= (size_t)w;
	}
	return true;
}

static bool read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		b += r;
		n -= (size_t)r;
	}
	return true;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void add_ready(TapBuf *b)
{
	TapBuf m = { 0 };
	add_u8(&m, 'I');
	add_msg(b, 'Z', &m);
	tap_buf_free(&m);
}

static void add_parameter(TapBuf *b, const char *key, const char *value)
{
	TapBuf m = { 0 };
	add_str(&m, key);
	add_str(&m, value);
	add_msg(b, 'S', &m);
	tap_buf_free(&m);
}

/* Startup: refuses SSL and GSS encryption, trusts, says it is `version`. */
static bool startup(int fd, const char *version)
{
	for (;;) {
		uint8_t hdr[8];
		if (!read_all(fd, hdr, 8))
			return false;
		uint32_t len = be32(hdr), code = be32(hdr + 4);
		if (len < 8 || len > 10000)
			return false;
		uint8_t body[10000];
		if (!read_all(fd, body, len - 8))
			return false;
		if (code == 80877103 || code == 80877104) { /* SSLRequest, GSSENCRequest */
			if (!write_all(fd, "N", 1))
				return false;
			continue;
		}
		if (code != 196608)
			return false;
		break;
	}
	TapBuf b = { 0 };
	TapBuf m = { 0 };
	add_be32(&m, 0);
	add_msg(&b, 'R', &m); /* AuthenticationOk */
	add_parameter(&b, "server_version", version);
	add_parameter(&b, "server_encoding", "UTF8");
	add_parameter(&b, "client_encoding", "UTF8");
	add_parameter(&b, "DateStyle", "ISO, MDY");
	add_parameter(&b, "integer_datetimes", "on");
	add_parameter(&b, "standard_conforming_strings", "on");
	m.len = 0;
	add_be32(&m, 4242);
	add_be32(&m, 1);
	add_msg(&b, 'K', &m);
	add_ready(&b);
	bool ok = write_all(fd, b.p, b.len);
	tap_buf_free(&m);
	tap_buf_free(&b);
	return ok;
}

static void serve(FakeWalsender *f, int fd)
{
	char version[sizeof(f->version)];
	pthread_mutex_lock(&f->lock);
	memcpy(version, f->version, sizeof(version));
	pthread_mutex_unlock(&f->lock);
	if (!startup(fd, version))
		return;
	for (;;) {
		uint8_t hdr[5];
		if (!read_all(fd, hdr, 5))
			return;
		uint32_t len = be32(hdr + 1);
		if (hdr[0] != 'Q' || len < 5 || len > 65536)
			return; /* Terminate, or anything unexpected */
		char *q = malloc(len - 4 + 1);
		if (!q || !read_all(fd, q, len - 4)) {
			free(q);
			return;
		}
		q[len - 4] = '\0';
		pthread_mutex_lock(&f->lock);
		bool mute = f->mute[0] && !strncmp(q, f->mute, strlen(f->mute));
		pthread_mutex_unlock(&f->lock);
		if (mute) { /* no answer: the client gives up and closes */
			free(q);
			char c;
			for (ssize_t n = 1; n > 0 || (n < 0 && errno == EINTR);)
				n = read(fd, &c, 1);
			return;
		}
		TapBuf b = { 0 };
		bool hangup = false;
		if (!strcmp(q, "IDENTIFY_SYSTEM")) {
			const char *cells[] = { FW_SYSID, "1", "0/3000000", NULL };
			fw_result(&b, 4, 1, cells, "IDENTIFY_SYSTEM");
		} else if (!strcmp(q, "SHOW wal_segment_size")) {
			const char *cells[] = { "16MB" };
			fw_result(&b, 1, 1, cells, "SHOW");
		} else if (!strcmp(q, "SHOW in_hot_standby") && atoi(version) < 14) {
			fw_error(&b, "unrecognized configuration parameter \"in_hot_standby\"");
		} else if (!strcmp(q, "SHOW in_hot_standby")) {
			const char *cells[] = { "off" };
			fw_result(&b, 1, 1, cells, "SHOW");
		} else if (!strncmp(q, "BASE_BACKUP", 11)) {
			pthread_mutex_lock(&f->lock);
			snprintf(f->last_command, sizeof(f->last_command), "%s", q);
			tap_buf_add(&b, f->reply.p, f->reply.len);
			hangup = f->hangup;
			pthread_mutex_unlock(&f->lock);
		} else {
			fw_error(&b, "fake walsender: unknown command");
		}
		free(q);
		if (!hangup)
			add_ready(&b);
		bool ok = write_all(fd, b.p, b.len);
		tap_buf_free(&b);
		if (!ok || hangup)
			return;
	}
}

static void *run(void *arg)
{
	FakeWalsender *f = arg;
	for (;;) {
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL; /* fw_stop shut the socket down */
		}
		serve(f, fd);
		close(fd);
	}
}

FakeWalsender *fw_start(void)
{
	FakeWalsender *f = calloc(1, sizeof(*f));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	if (!f || (f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(f->lfd, 4) < 0 ||
	    getsockname(f->lfd, (struct sockaddr *)&a, &alen) < 0) {
		perror("fake walsender");
		abort();
	}
	snprintf(f->conninfo, sizeof(f->conninfo),
	         "host=127.0.0.1 port=%u user=fake sslmode=disable gssencmode=disable "
	         "connect_timeout=10",
	         ntohs(a.sin_port));
	pthread_mutex_init(&f->lock, NULL);
	snprintf(f->version, sizeof(f->version), "15.4");
	if (pthread_create(&f->thread, NULL, run, f) != 0)
		abort();
	return f;
}

const char *fw_conninfo(const FakeWalsender *f) { return f->conninfo; }

void fw_set_reply(FakeWalsender *f, const TapBuf *reply, bool hangup)
{
	pthread_mutex_lock(&f->lock);
	f->reply.len = 0;
	tap_buf_add(&f->reply, reply->p, reply->len);
	f->hangup = hangup;
	pthread_mutex_unlock(&f->lock);
}

void fw_set_mute(FakeWalsender *f, const char *prefix)
{
	pthread_mutex_lock(&f->lock);
	snprintf(f->mute, sizeof(f->mute), "%s", prefix ? prefix : "");
	pthread_mutex_unlock(&f->lock);
}

void fw_set_version(FakeWalsender *f, const char *version)
{
	pthread_mutex_lock(&f->lock);
	snprintf(f->version, sizeof(f->version), "%s", version);
	pthread_mutex_unlock(&f->lock);
}

const char *fw_last_backup_command(FakeWalsender *f)
{
	pthread_mutex_lock(&f->lock);
	const char *s = f->last_command;
	pthread_mutex_unlock(&f->lock);
	return s;
}

void fw_stop(FakeWalsender *f)
{
	if (!f)
		return;
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->lfd);
	pthread_mutex_destroy(&f->lock);
	tap_buf_free(&f->reply);
	free(f);
}
