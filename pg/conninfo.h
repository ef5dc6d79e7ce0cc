/* pg/conninfo.h: a libpq connection string, taken apart.
 *
 * bk_pg_conninfo_split() writes conninfo (key=value pairs, a postgresql:// URI,
 * or a bare database name, as libpq's expand_dbname takes them) to out as quoted
 * key='value' pairs without the password or sslpassword, with dbname replaced by
 * db unless db is NULL; the password goes to *ret_password (malloc'd; NULL if none;
 * ret_password NULL drops it), since a command line is visible to every local user
 * (ps, /proc/PID/cmdline): a child program gets it in PGPASSWORD, and bunker hides
 * it from its own arguments. sslpassword has no environment variable to pass it
 * in: a string for a child program must not need it (pg dump refuses it). Loads
 * libpq (pg/libpq.h). Returns 0, BK_E_USAGE for a
 * connection string libpq rejects (its reason in the message), -E2BIG when out
 * (cap bytes) is too small, or the loader's error. keepalives: which of the
 * keepalive settings below to add (a mask as bk_pg_keepalives_set returns; 0 for
 * none), for a string given to pg_dump.
 *
 * TCP keepalives: bunker gives a connection its own unless the connection's options
 * (the string's, or a pg_service.conf service's) set them, so that a server gone
 * without a word (a network cut, a host powered off) is seen after about two
 * minutes (60 s idle, then 6 probes 10 s apart) rather than the system's two hours
 * and more. bk_pg_keepalives_set() sets them on a connection made (libpq applies
 * its options, a service's included, only at connect, and an option passed to it
 * would override the service's), unless "keepalives" is 0 or the socket is not TCP
 * (a Unix socket), and returns the mask of those the options leave unset. The
 * connection's start-up, before that, is bounded by its connect_timeout instead.
 */
#ifndef BK_PG_CONNINFO_H
#define BK_PG_CONNINFO_H

#include <stdbool.h>
#include <stddef.h>

#include "pg/libpq.h"

#define BK_PG_KEEPALIVES_N 3

int bk_pg_conninfo_split(const char *conninfo, const char *db, unsigned keepalives, char *out,
			 size_t cap, char **ret_password);
unsigned bk_pg_keepalives_set(PGconn *conn);
/* Whether conninfo sets key to a value that is not empty (a bare name sets dbname;
 * a string libpq cannot parse sets nothing). Loads libpq. */
bool bk_pg_conninfo_sets(const char *conninfo, const char *key);
/* The value conninfo sets key to, as bk_pg_conninfo_sets tells it (dbname: a
 * key/value string's, a URI's path, or a bare name), into *ret_value (malloc'd, or
 * NULL when ret_value is NULL). Returns 1 when set, 0 when not (*ret_value NULL),
 * -ENOMEM. */
int bk_pg_conninfo_get(const char *conninfo, const char *key, char **ret_value);
/* The one pair key='value' (value quoted as libpq reads it) into out: for a
 * program that reads a value with '=' or a URI's prefix as a connection string
 * (pg_dumpall's -l). -E2BIG when out (cap bytes) is too small. */
int bk_pg_conninfo_pair(const char *key, const char *value, char *out, size_t cap);

#endif
