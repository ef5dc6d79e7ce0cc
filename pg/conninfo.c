#include "pg/conninfo.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pg/libpq.h"
#include "store/error.h"

/* Appends key='value' to out (n bytes used of cap), quoted as libpq reads it. */
static int append_kv(char *out, size_t cap, size_t *n, const char *key, const char *v)
{
	*n += (size_t)snprintf(out + *n, *n < cap ? cap - *n : 0, "%s%s='", *n ? " " : "", key);
	for (const char *c = v; *c && *n < cap; c++) {
		if (*c == '\'' || *c == '\\')
			out[(*n)++] = '\\';
		if (*n < cap)
			out[(*n)++] = *c;
	}
	if (*n + 1 >= cap)
		return bk_errorf(-E2BIG, "connection string too long");
	out[(*n)++] = '\'';
	out[*n] = '\0';
	return 0;
}

static const char *const keepalive_keys[BK_PG_KEEPALIVES_N] = { "keepalives_idle",
								  "keepalives_interval",
								  "keepalives_count" };
static const char *const keepalive_vals[BK_PG_KEEPALIVES_N] = { "60", "10", "6" };
static const int keepalive_opts[BK_PG_KEEPALIVES_N] = { TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT };

unsigned bk_pg_keepalives_set(PGconn *conn)
{
	bool set[BK_PG_KEEPALIVES_N] = { false }, off = false;
	PQconninfoOption *opts = PQconninfo(conn);
	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (!o->val || !*o->val)
			continue;
		char *end;
		if (!strcmp(o->keyword, "keepalives"))
			off = strtol(o->val, &end, 10) == 0 && end != o->val;
		for (size_t i = 0; i < BK_PG_KEEPALIVES_N; i++)
			set[i] |= !strcmp(o->keyword, keepalive_keys[i]);
	}
	PQconninfoFree(opts);
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	int fd = PQsocket(conn);
	bool tcp = fd >= 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0 &&
		   (sa.ss_family == AF_INET || sa.ss_family == AF_INET6);
	unsigned missing = 0;
	for (size_t i = 0; i < BK_PG_KEEPALIVES_N; i++) {
		if (set[i])
			continue;
		missing |= 1u << i;
		int v = atoi(keepalive_vals[i]);
		if (tcp && !off) /* (libpq turned SO_KEEPALIVE on: "keepalives" is 1 by default) */
			(void)setsockopt(fd, IPPROTO_TCP, keepalive_opts[i], &v, sizeof(v));
	}
	return missing;
}

/* Whether conninfo is a bare database name, as libpq's expand_dbname takes one:
 * no '=', no URI. */
static bool bare_name(const char *conninfo)
{
	return !strchr(conninfo, '=') && strncmp(conninfo, "postgresql://", 13) != 0 &&
	       strncmp(conninfo, "postgres://", 11) != 0;
}

int bk_pg_conninfo_get(const char *conninfo, const char *key, char **ret_value)
{
	const char *v = NULL;
	PQconninfoOption *opts = NULL;
	if (bare_name(conninfo)) {
		v = *conninfo && !strcmp(key, "dbname") ? conninfo : NULL;
	} else if (bk_libpq_load() == 0) {
		opts = PQconninfoParse(conninfo, NULL);
		for (PQconninfoOption *o = opts; o && o->keyword && !v; o++)
			if (!strcmp(o->keyword, key) && o->val && *o->val)
				v = o->val;
	}
	int e = v ? 1 : 0;
	if (ret_value)
		*ret_value = NULL;
	if (v && ret_value && !(*ret_value = strdup(v)))
		e = -ENOMEM;
	if (opts) /* (libpq may not be loaded for a bare name) */
		PQconninfoFree(opts);
	return e;
}

int bk_pg_conninfo_pair(const char *key, const char *value, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	return append_kv(out, cap, &n, key, value);
}

bool bk_pg_conninfo_sets(const char *conninfo, const char *key)
{
	return bk_pg_conninfo_get(conninfo, key, NULL) != 0;
}

/* The pairs of a connection string libpq parses. */
static int split_parsed(const char *conninfo, const char *db, char *out, size_t cap, size_t *n,
			char **ret_password)
{
	int e = bk_libpq_load();
	if (e < 0)
		return e;
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	if (!opts) {
		e = bk_errorf(BK_E_USAGE, "bad connection string: %s", err ? err : "out of memory");
		PQfreemem(err);
		return e;
	}
	for (PQconninfoOption *o = opts; o->keyword && e == 0; o++) {
		const char *v = db && !strcmp(o->keyword, "dbname") ? db : o->val;
		if (!v)
			continue;
		if (!strcmp(o->keyword, "password")) {
			if (ret_password && !*ret_password && !(*ret_password = strdup(v)))
				e = -ENOMEM;
			continue;
		}
		if (!strcmp(o->keyword, "sslpassword"))
			continue;
		e = append_kv(out, cap, n, o->keyword, v);
	}
	PQconninfoFree(opts);
	return e;
}

int bk_pg_conninfo_split(const char *conninfo, const char *db, unsigned keepalives, char *out,
			 size_t cap, char **ret_password)
{
	if (ret_password)
		*ret_password = NULL;
	size_t n = 0;
	int e;
	out[0] = '\0';
	if (bare_name(conninfo))
		e = append_kv(out, cap, &n, "dbname", db ? db : conninfo);
	else
		e = split_parsed(conninfo, db, out, cap, &n, ret_password);
	for (size_t i = 0; e == 0 && i < BK_PG_KEEPALIVES_N; i++)
		if (keepalives & (1u << i))
			e = append_kv(out, cap, &n, keepalive_keys[i], keepalive_vals[i]);
	if (e < 0 && ret_password) {
		free(*ret_password);
		*ret_password = NULL;
	}
	return e;
}
