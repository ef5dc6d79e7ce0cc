/* pg/conninfo.h: a libpq connection string, taken apart.
 *
 * bk_pg_conninfo_split() writes conninfo (key=value pairs, a postgresql:// URI,
 * or a bare database name, as libpq's expand_dbname takes them) to out as quoted
 * key='value' pairs without the password, with dbname replaced by db unless db is
 * NULL; the password goes to *ret_password (malloc'd; NULL if none; ret_password
 * NULL drops it), since a
 * command line is visible to every local user (ps,
 * /proc/PID/cmdline): a child program gets it in PGPASSWORD, and bunker hides it
 * from its own arguments. Loads libpq (pg/libpq.h). Returns 0, BK_E_USAGE for a
 * connection string libpq rejects (its reason in the message), -E2BIG when out
 * (cap bytes) is too small, or the loader's error.
 */
#ifndef BK_PG_CONNINFO_H
#define BK_PG_CONNINFO_H

#include <stddef.h>

int bk_pg_conninfo_split(const char *conninfo, const char *db, char *out, size_t cap,
			 char **ret_password);

#endif
