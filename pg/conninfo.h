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
 * (cap bytes) is too small, or the loader's error. With BK_CONNINFO_KEEPALIVES the
 * keepalive settings below are added for those conninfo does not set (a string for
 * pg_dump).
 *
 * TCP keepalives: bunker asks libpq for them unless the connection string sets its
 * own, so that a server gone without a word (a network cut, a host powered off) is
 * seen after about two minutes (60 s idle, then 6 probes 10 s apart) rather than the
 * system's two hours and more. Unix sockets ignore them. bk_pg_keepalives() puts
 * them in PQconnectdbParams' arrays, before "dbname", whose expanded string
 * overrides them.
 */
#ifndef BK_PG_CONNINFO_H
#define BK_PG_CONNINFO_H

#include <stddef.h>

#define BK_CONNINFO_KEEPALIVES 0x1
#define BK_PG_KEEPALIVES_N 3

int bk_pg_conninfo_split(const char *conninfo, const char *db, unsigned flags, char *out,
			 size_t cap, char **ret_password);
/* Writes the keepalive settings to keys[0..BK_PG_KEEPALIVES_N) and vals. */
void bk_pg_keepalives(const char **keys, const char **vals);

#endif
