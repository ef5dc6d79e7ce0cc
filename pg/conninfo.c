#include "pg/conninfo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/libpq.h"
#include "store/error.h"

int bk_pg_conninfo_split(const char *conninfo, const char *db, char *out, size_t cap,
			 char **ret_password)
{
	*ret_password = NULL;
	int e = bk_libpq_load();
	if (e < 0)
		return e;
	/* a bare database name, as libpq takes one (expand_dbname): no '=', no URI */
	char *named = NULL;
	if (!strchr(conninfo, '=') && strncmp(conninfo, "postgresql://", 13) != 0 &&
	    strncmp(conninfo, "postgres://", 11) != 0) {
		if (!(named = malloc(2 * strlen(conninfo) + 16)))
			return -ENOMEM;
		char *o = named + sprintf(named, "dbname='");
		for (const char *c = conninfo; *c; c++) {
			if (*c == '\'' || *c == '\\')
				*o++ = '\\';
			*o++ = *c;
		}
		strcpy(o, "'");
		conninfo = named;
	}
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	free(named);
	if (!opts) {
		e = bk_errorf(BK_E_USAGE, "bad connection string: %s", err ? err : "out of memory");
		PQfreemem(err);
		return e;
	}
	size_t n = 0;
	for (PQconninfoOption *o = opts; o->keyword && e == 0; o++) {
		const char *v = db && !strcmp(o->keyword, "dbname") ? db : o->val;
		if (!v)
			continue;
		if (!strcmp(o->keyword, "password")) {
			free(*ret_password);
			if (!(*ret_password = strdup(v)))
				e = -ENOMEM;
			continue;
		}
		n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s='", n ? " " : "", o->keyword);
		for (const char *c = v; *c && n < cap; c++) {
			if (*c == '\'' || *c == '\\')
				out[n++] = '\\';
			if (n < cap)
				out[n++] = *c;
		}
		if (n + 1 < cap)
			out[n++] = '\'';
		else
			e = bk_errorf(-E2BIG, "connection string too long");
	}
	if (e == 0) {
		if (n >= cap)
			e = bk_errorf(-E2BIG, "connection string too long");
		else
			out[n] = '\0';
	}
	PQconninfoFree(opts);
	if (e < 0) {
		free(*ret_password);
		*ret_password = NULL;
	}
	return e;
}
