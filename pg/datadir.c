/* pg restore's data directory, written from a base backup: see pg/datadir.h. */
#include "pg/datadir.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg/basebackup.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/restorer.h"
#include "store/util.h"

/* Appends a setting to postgresql.auto.conf, quoted as PostgreSQL wants. */
static int conf_line(FILE *f, const char *key, const char *value)
{
	fprintf(f, "%s = '", key);
	/* PostgreSQL's configuration strings take no raw line break: \n and \r are
	 * escaped as its parser reads them back (found by review: a repository path with
	 * a newline made postgresql.auto.conf unreadable; bk_pg_restore refuses one in
	 * restore_command, which ALTER SYSTEM would write back raw) */
	for (const char *c = value; *c; c++) {
		switch (*c) {
		case '\'': fputs("''", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		default: fputc(*c, f);
		}
	}
	fprintf(f, "'\n");
	return ferror(f) ? -EIO : 0;
}

/* Whether a configuration line sets a parameter bunker pg restore writes. */
static bool managed_line(const char *line, size_t len, bool archive_off)
{
	size_t i = strspn(line, " \t"), k = i;
	while (k < len && (isalnum((unsigned char)line[k]) || line[k] == '_' || line[k] == '.'))
		k++;
	size_t n = k - i;
	const char *key = line + i;
	if (n == 0 || (k < len && !strchr(" \t=", line[k])))
		return false;
	return (n == 15 && !strncasecmp(key, "restore_command", n)) ||
	       (n >= 15 && !strncasecmp(key, "recovery_target", 15)) ||
	       (n == 23 && !strncasecmp(key, "archive_cleanup_command", n)) ||
	       (n == 20 && !strncasecmp(key, "recovery_end_command", n)) ||
	       (archive_off && n == 12 && !strncasecmp(key, "archive_mode", n));
}

char *bk_pg_auto_conf_clear(const char *conf, bool archive_off)
{
	static const char mark[] = "#bunker# ";
	size_t lines = 1;
	for (const char *p = conf; *p; p++)
		lines += *p == '\n';
	char *out = malloc(strlen(conf) + lines * (sizeof(mark) - 1) + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = conf; *p;) {
		size_t len = strcspn(p, "\n");
		if (managed_line(p, len, archive_off)) {
			memcpy(o, mark, sizeof(mark) - 1);
			o += sizeof(mark) - 1;
		}
		memcpy(o, p, len);
		o += len;
		p += len;
		if (*p == '\n')
			*o++ = *p++;
	}
	*o = '\0';
	return out;
}

/* Where a restore writes: the data directory or a tablespace location, open once
 * (bk_open_dir) and written through from then on, so that a path changed
 * meanwhile (the target swapped for a link by a user who can write the directory
 * above: found by review) sends nothing elsewhere; as it was before, if it was
 * there (empty). */
typedef struct {
	char path[PATH_MAX]; /* as given, for messages */
	int fd;              /* -1: not open */
	bool existed;
	struct stat st;      /* as it was, when it existed */
} Dir;

/* Writes text as file name of d, replacing what is there (a link, too, is
 * replaced, never followed: the backup's files are the server's, and a
 * postgresql.auto.conf that is a link to /etc/shadow must not send root's
 * writes there), durably: a temporary file, fsync'd, renamed into place, the
 * directory fsync'd. It takes like's mode, and with owned its owner; else 0600. */
static int put_file(const Dir *d, const char *name, const char *text, const struct stat *like,
		    bool owned)
{
	char tmp[NAME_MAX + 1];
	snprintf(tmp, sizeof(tmp), ".%s.bunker-tmp", name);
	(void)unlinkat(d->fd, tmp, 0); /* one a killed restore left */
	int fd = openat(d->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return bk_errorf_code(-errno, "create %s/%s", d->path, tmp);
	int e = bk_write_all(fd, text, strlen(text));
	if (e == 0 && like && owned && fchown(fd, like->st_uid, like->st_gid) < 0)
		e = -errno;
	if (e == 0 && like && fchmod(fd, like->st_mode & 07777) < 0)
		e = -errno;
	if (e == 0 && fsync(fd) < 0)
		e = -errno;
	if (close(fd) < 0 && e == 0)
		e = -errno;
	if (e == 0 && renameat(d->fd, tmp, d->fd, name) < 0)
		e = -errno;
	if (e == 0 && fsync(d->fd) < 0)
		e = -errno;
	if (e < 0) {
		(void)unlinkat(d->fd, tmp, 0);
		return bk_errorf_code(e, "write %s/%s", d->path, name);
	}
	return 0;
}

/* File name of d's text (of at most max bytes; "" when it is missing or a
 * symbolic link, which is not followed: put_file) with the settings bunker pg
 * restore writes commented out (bk_pg_auto_conf_clear), into *ret (malloc'd),
 * whether that changed it, and its status in *ret_st (st_mode 0: missing). */
static int read_cleared(const Dir *d, const char *name, size_t max, bool archive_off,
			char **ret, bool *ret_changed, struct stat *ret_st)
{
	uint8_t *old = NULL;
	size_t len;
	memset(ret_st, 0, sizeof(*ret_st));
	int r = bk_read_file_at(d->fd, name, O_NOFOLLOW, max, &old, &len);
	if (r == 0 && fstatat(d->fd, name, ret_st, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	if (r < 0 && r != -ENOENT && r != -ELOOP) {
		free(old); /* (read, then its fstatat failed: found by review) */
		return bk_error_wrap(r, "read %s/%s", d->path, name);
	}
	*ret = bk_pg_auto_conf_clear(old ? (const char *)old : "", archive_off);
	*ret_changed = *ret && old && strcmp(*ret, (const char *)old);
	free(old);
	return *ret ? 0 : -ENOMEM;
}

/* Comments out, in the restored postgresql.conf (if the backup has one), the
 * settings bunker pg restore writes: PostgreSQL takes the last of two settings of
 * one name only when they are spelled alike, case included, so a stale
 * RECOVERY_TARGET_NAME there outlived bunker's recovery_target_name = '' and the
 * server refused two targets (found by review). Replaced, with its owner and
 * mode, only when it holds one. Files it includes are not read. */
static int clear_postgresql_conf(const Dir *d, const BkPgRestoreOpts *o, bool archive_off)
{
	char *kept = NULL;
	bool changed;
	struct stat st;
	int e = read_cleared(d, "postgresql.conf", 16 << 20, archive_off, &kept, &changed, &st);
	if (e == 0 && changed)
		e = put_file(d, "postgresql.conf", kept, &st, o->restore_owner);
	free(kept);
	return e;
}

static int write_recovery_config(const Dir *d, const BkPgRestoreOpts *o, int64_t target_us,
				 uint32_t want_tli, bool no_prefetch)
{
	bool archive_off = o->archive_mode && strcmp(o->archive_mode, "off") == 0;
	char *kept = NULL, *text = NULL;
	size_t text_len;
	bool changed;
	struct stat st;
	int r = clear_postgresql_conf(d, o, archive_off);
	if (r == 0)
		r = read_cleared(d, "postgresql.auto.conf", 1 << 20, archive_off, &kept, &changed, &st);
	if (r < 0)
		return r;
	FILE *f = open_memstream(&text, &text_len);
	if (!f) {
		free(kept);
		return -ENOMEM;
	}
	fputs(kept, f);
	free(kept);
	char cmd[8192];
	snprintf(cmd, sizeof(cmd), "%s %%f %%p", o->restore_command);
	fprintf(f, "\n# added by bunker pg restore\n");
	int e = conf_line(f, "restore_command", cmd);
	char tl[16]; /* as bunker read it: PostgreSQL would take "010" for octal */
	snprintf(tl, sizeof(tl), "%u", want_tli);
	if (e == 0)
		e = conf_line(f, "recovery_target_timeline", want_tli == BK_TLI_LATEST    ? "latest"
							     : want_tli == BK_TLI_CURRENT ? "current"
											  : tl);
	/* The recovery settings a restored server's postgresql.conf (or a file it
	 * includes) may still carry from an earlier recovery, which PostgreSQL ignores
	 * outside recovery: a stale recovery_target = 'immediate' would end this one at
	 * consistency, a second target fails it ("multiple recovery targets"), a
	 * stale delay holds it back. Each is set here, where the last setting of a name
	 * wins: the targets not wanted first to '' (an empty one after the one set
	 * would fail too), then the one wanted. */
	char utc[BK_PG_TIME_MAX];
	bk_pg_format_time(utc, target_us);
	const char *targets[][2] = {
		{ "recovery_target", NULL },
		{ "recovery_target_time", o->target_time ? utc : NULL },
		{ "recovery_target_lsn", o->target_lsn },
		{ "recovery_target_xid", o->target_xid },
		{ "recovery_target_name", o->target_name },
	};
	for (size_t i = 0; e == 0 && i < BK_ARRAY_SIZE(targets); i++)
		if (!targets[i][1])
			e = conf_line(f, targets[i][0], "");
	for (size_t i = 0; e == 0 && i < BK_ARRAY_SIZE(targets); i++)
		if (targets[i][1])
			e = conf_line(f, targets[i][0], targets[i][1]);
	if (e == 0)
		e = conf_line(f, "recovery_target_inclusive", "on");
	if (e == 0)
		e = conf_line(f, "recovery_min_apply_delay", "0");
	/* the prefetcher reads WAL ahead of replay, past the target, and a fetch that
	 * fails there fails the recovery (recovery.c, wal_stored) */
	if (e == 0 && no_prefetch)
		e = conf_line(f, "recovery_prefetch", "off");
	/* the original's commands for its own archive (a standby's pg_archivecleanup
	 * of a shared one) must not run in a restored copy (found by review) */
	if (e == 0)
		e = conf_line(f, "archive_cleanup_command", "");
	if (e == 0)
		e = conf_line(f, "recovery_end_command", "");
	if (e == 0 && (o->target_time || o->target_lsn || o->target_xid || o->target_name))
		e = conf_line(f, "recovery_target_action", o->target_action ? o->target_action : "promote");
	/* a trial restore beside the original must not archive into its repository */
	if (e == 0 && archive_off)
		e = conf_line(f, "archive_mode", "off");
	if (fclose(f) != 0 && e == 0)
		e = -ENOMEM;
	/* it keeps the owner and mode the restore gave it (when the backup had none,
	 * give_all gives it to the owner) */
	if (e == 0)
		e = put_file(d, "postgresql.auto.conf", text, st.st_mode ? &st : NULL,
			     o->restore_owner);
	free(text);
	if (e < 0)
		return e;
	/* A standby's backup carries its standby.signal: left there, it would outrank
	 * recovery.signal: without a target the server would never promote, and its
	 * walreceiver would follow the live old primary (docs/design.md). */
	if (unlinkat(d->fd, "standby.signal", 0) < 0 && errno != ENOENT)
		return bk_errorf_code(-errno, "remove %s/standby.signal", d->path);
	return put_file(d, "recovery.signal", "", NULL, false);
}

/* The length of path's first n bytes without trailing slashes ("/" stays). */
static size_t trimmed(const char *path, size_t n)
{
	while (n > 1 && path[n - 1] == '/')
		n--;
	return n;
}

/* Whether a[0..na) and b[0..nb) name the same path, trailing slashes aside. */
static bool same_path(const char *a, size_t na, const char *b, size_t nb)
{
	na = trimmed(a, na);
	return na == trimmed(b, nb) && !strncmp(a, b, na);
}

/* The location given for a tablespace the backup has at loc: o's
 * --tablespace-mapping NEW for OLD = loc (trailing slashes aside), else loc. */
static const char *mapped(const BkPgRestoreOpts *o, const char *loc)
{
	for (size_t i = 0; o && i < o->nts_mapping; i++) {
		const char *m = o->ts_mapping[i], *eq = strchr(m, '=');
		if (eq && same_path(m, (size_t)(eq - m), loc, strlen(loc)))
			return eq + 1;
	}
	return loc;
}

/* Whether a and b (absolute) are the same directory or one holds the other,
 * compared as written (trailing slashes aside). */
static bool nested(const char *a, const char *b)
{
	size_t na = trimmed(a, strlen(a)), nb = trimmed(b, strlen(b)), n = BK_MIN(na, nb);
	if (strncmp(a, b, n))
		return false;
	const char *longer = na > nb ? a : b;
	return na == nb || longer[n] == '/' || (n == 1 && a[0] == '/');
}

/* Cuts path to its parent in place ("/x" -> "/", "x" -> "."); returns where the
 * cut component began (its slash), 0 for none. */
static size_t up_one(char *path)
{
	char *slash = strrchr(path, '/');
	if (!slash) {
		strcpy(path, ".");
		return 0;
	}
	slash[slash == path] = '\0';
	return (size_t)(slash - path);
}

/* path (absolute) as the kernel resolves it, in ret: realpath() of its deepest
 * existing ancestor, then the components below that with "." and ".." folded as
 * written (they do not exist yet, so none is a symbolic link). Where a restore
 * writes is compared in this form: as written, a "..", a "." or a symbolic link
 * hid a location in or equal to the data directory (found by review). A dangling
 * symbolic link on the way is refused (-EEXIST, as by check_unused): where it
 * leads is not known yet. */
static int canonical(const char *path, char ret[PATH_MAX])
{
	char head[PATH_MAX];
	if (snprintf(head, sizeof(head), "%s", path) >= (int)sizeof(head))
		return bk_errorf(BK_E_USAGE, "%s: path too long", path);
	size_t cut = strlen(head); /* path[cut..] lies below head */
	struct stat st;
	while (!realpath(head, ret)) {
		if (errno != ENOENT)
			return bk_errorf_code(-errno, "%s", head);
		bool below = strcmp(head, path); /* path lies below the link */
		if (lstat(head, &st) == 0)
			return bk_errorf(-EEXIST, "%s%s%s is a dangling symbolic link", path,
					 below ? ": " : "", below ? head : "");
		cut = up_one(head);
	}
	size_t n = strlen(ret);
	for (const char *c = path + cut; *c;) {
		c += strspn(c, "/");
		size_t len = strcspn(c, "/");
		if (len == 2 && !strncmp(c, "..", 2)) {
			while (n > 1 && ret[n - 1] != '/')
				n--;
			n -= n > 1; /* "/a/b" -> "/a", "/a" -> "/" */
		} else if (len && !(len == 1 && c[0] == '.')) {
			if (n + 1 + len >= PATH_MAX)
				return bk_errorf(BK_E_USAGE, "%s: path too long", path);
			if (n > 1)
				ret[n++] = '/';
			memcpy(ret + n, c, len);
			n += len;
		}
		ret[n] = '\0';
		c += len;
	}
	return 0;
}

/* Calls fn for each tablespace in the backup's tablespace_map: lines "OID PATH",
 * where PostgreSQL escapes a newline, carriage return or backslash in PATH with a
 * backslash; PATH as o maps it (o NULL: as the backup has it). */
static int each_tablespace(const BkSnapshot *s, const BkPgRestoreOpts *o,
			   int (*fn)(void *ud, const char *oid, const char *loc), void *ud)
{
	const char *p = bk_snapshot_meta(s, "tablespace_map");
	int e = 0;
	while (e == 0 && p && *p) {
		char oid[32], loc[PATH_MAX];
		size_t n = strspn(p, "0123456789"), k = 0;
		bool ok = n > 0 && n < sizeof(oid) && p[n] == ' ';
		if (ok) {
			memcpy(oid, p, n);
			oid[n] = '\0';
			p += n + 1;
		}
		for (; *p && *p != '\n'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (k + 1 < sizeof(loc))
				loc[k++] = *p;
			else
				ok = false;
		}
		if (*p == '\n')
			p++;
		loc[k] = '\0';
		if (!ok || k == 0 || loc[0] != '/')
			e = bk_errorf(BK_E_CORRUPT, "tablespace_map: a line is not OID /PATH");
		else
			e = fn(ud, oid, mapped(o, loc));
	}
	return e;
}

typedef struct {
	const char *old;
	size_t len;
	bool found;
	char list[512]; /* the backup's locations, for the error */
} MapCheck;

static int find_old(void *ud, const char *oid, const char *loc)
{
	(void)oid;
	MapCheck *m = ud;
	m->found |= same_path(loc, strlen(loc), m->old, m->len);
	size_t n = strlen(m->list);
	snprintf(m->list + n, sizeof(m->list) - n, "%s%s", n ? ", " : "", loc);
	return 0;
}

/* The data directory (absolute), then each location placed so far, all compared
 * with each other (found by review: past the 8th they shared one slot, and two of
 * them were never compared). */
typedef struct {
	char path[PATH_MAX];
	char canon[PATH_MAX]; /* as canonical() resolves it, compared */
	char what[48];        /* named, for the error */
} Place;

typedef struct {
	Place *v;
	size_t n, cap;
} Places;

/* " (resolved: CANON)" in buf when path, as written, differs from canon; else "". */
static const char *resolved(char buf[PATH_MAX + 16], const char *path, const char *canon)
{
	buf[0] = '\0';
	if (!same_path(path, strlen(path), canon, strlen(canon)))
		snprintf(buf, PATH_MAX + 16, " (resolved: %s)", canon);
	return buf;
}

/* Whether tablespace oid's location loc coincides or nests with a location placed
 * before (BK_E_USAGE naming it), compared as canonical() resolves them. */
static int add_place(void *ud, const char *oid, const char *loc)
{
	Places *p = ud;
	if (bk_grow(&p->v, &p->cap, p->n, sizeof(*p->v), 8) < 0)
		return -ENOMEM;
	Place *k = &p->v[p->n];
	snprintf(k->path, sizeof(k->path), "%s", loc);
	int e = canonical(loc, k->canon);
	if (e < 0)
		return bk_error_wrap(e, "tablespace %s", oid);
	for (const Place *i = p->v; i < k; i++)
		if (nested(i->canon, k->canon)) {
			char a[PATH_MAX + 16], b[PATH_MAX + 16];
			return bk_errorf(BK_E_USAGE, "tablespace %s would be restored to %s%s, which "
					 "is, holds or lies in %s, %s%s (--tablespace-mapping)", oid,
					 loc, resolved(a, loc, k->canon), i->what, i->path,
					 resolved(b, i->path, i->canon));
		}
	snprintf(k->what, sizeof(k->what), "tablespace %s's location", oid);
	p->n++;
	return 0;
}

int bk_pg_ts_mapping_check(const BkPgRestoreOpts *o)
{
	for (size_t i = 0; i < o->nts_mapping; i++) {
		const char *m = o->ts_mapping[i], *eq = strchr(m, '=');
		if (!eq || m[0] != '/' || eq[1] != '/')
			return bk_errorf(BK_E_USAGE, "--tablespace-mapping '%s' is not OLD=NEW, two "
					 "absolute paths", m);
		size_t len = (size_t)(eq - m);
		for (size_t j = 0; j < i; j++) /* (earlier ones passed: each has its '=') */
			if (same_path(o->ts_mapping[j], (size_t)(strchr(o->ts_mapping[j], '=') -
								 o->ts_mapping[j]), m, len))
				return bk_errorf(BK_E_USAGE, "--tablespace-mapping: %.*s is mapped twice",
						 (int)len, m);
	}
	return 0;
}

/* Checks o's --tablespace-mapping against the backup's tablespaces before anything
 * is written: its form (bk_pg_ts_mapping_check), OLD one of the backup's locations
 * (a typo would restore to the original's); and the locations, mapped, apart from
 * each other and from the data directory (found by review: a NEW in the target's
 * pg_tblspc was deleted by the server at its start), and all of them apart from
 * repository r (found by review: a data directory restored in it was taken by
 * check for hundreds of damaged objects, and the server would write there).
 * BK_E_USAGE otherwise. */
static int check_mapping(BkRepo *r, const BkSnapshot *s, const BkPgRestoreOpts *o)
{
	int e = bk_pg_ts_mapping_check(o);
	if (e < 0)
		return e;
	for (size_t i = 0; i < o->nts_mapping; i++) {
		const char *m = o->ts_mapping[i];
		size_t len = (size_t)(strchr(m, '=') - m);
		MapCheck c = { .old = m, .len = len };
		if ((e = each_tablespace(s, NULL, find_old, &c)) < 0)
			return e;
		if (!c.found)
			return bk_errorf(BK_E_USAGE, "--tablespace-mapping: the backup has no tablespace "
					 "at %.*s (%s%s)", (int)len, m, c.list[0] ? "it has " : "it has none",
					 c.list);
	}
	/* the locations, mapped, apart from each other and the data directory */
	Places p = { 0 };
	if (bk_grow(&p.v, &p.cap, 0, sizeof(*p.v), 8) < 0)
		return -ENOMEM;
	Place *d = &p.v[p.n++];
	char cwd[PATH_MAX] = "";
	if (o->target_dir[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		e = bk_errorf_code(-errno, "getcwd");
	else if (snprintf(d->path, sizeof(d->path), "%s%s%s", cwd, cwd[0] ? "/" : "",
			  o->target_dir) >= (int)sizeof(d->path))
		e = bk_errorf(BK_E_USAGE, "--target: path too long");
	else if ((e = canonical(d->path, d->canon)) < 0)
		bk_error_wrap(e, "--target");
	snprintf(d->what, sizeof(d->what), "the data directory");
	if (e == 0 && r && r->path) {
		if (bk_grow(&p.v, &p.cap, p.n, sizeof(*p.v), 8) < 0) {
			free(p.v);
			return -ENOMEM;
		}
		d = &p.v[0];
		Place *q = &p.v[p.n++];
		snprintf(q->path, sizeof(q->path), "%s", r->path);
		snprintf(q->what, sizeof(q->what), "the repository");
		char a[PATH_MAX + 16], b[PATH_MAX + 16];
		if (!realpath(r->path, q->canon))
			e = bk_errorf_code(-errno, "repository %s", r->path);
		else if (nested(d->canon, q->canon))
			e = bk_errorf(BK_E_USAGE, "--target %s%s is, holds or lies in the repository, "
				      "%s%s", o->target_dir, resolved(a, d->path, d->canon), r->path,
				      resolved(b, r->path, q->canon));
	}
	if (e == 0)
		e = each_tablespace(s, o, add_place, &p);
	free(p.v);
	return e;
}

static int write_map_line(void *ud, const char *oid, const char *loc)
{
	FILE *f = ud;
	fprintf(f, "%s ", oid);
	for (const char *c = loc; *c; c++) { /* escaped as PostgreSQL writes it */
		if (*c == '\n' || *c == '\r' || *c == '\\')
			fputc('\\', f);
		fputc(*c, f);
	}
	fputc('\n', f);
	return ferror(f) ? -EIO : 0;
}

/* With --tablespace-mapping: the restored tablespace_map, from which PostgreSQL
 * makes pg_tblspc's links, names the new locations. Each NEW as written, not as
 * canonical() resolves it: the server follows its link pg_tblspc/OID -> NEW, which
 * leads where the restore wrote (check_mapping compared the resolved forms, so a
 * ".." in it is harmless), and a symbolic link on the way stays the user's (one
 * chosen to move the storage later, say); pg_tablespace_location gives NEW as
 * written. Replaced, with the owner and mode the restore gave it. */
static int write_tablespace_map(const Dir *d, const BkSnapshot *s, const BkPgRestoreOpts *o)
{
	if (!o->nts_mapping)
		return 0;
	struct stat st;
	bool had = fstatat(d->fd, "tablespace_map", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		   S_ISREG(st.st_mode);
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	int e = each_tablespace(s, o, write_map_line, f);
	if (fclose(f) != 0 && e == 0)
		e = -ENOMEM;
	if (e == 0)
		e = put_file(d, "tablespace_map", text, had ? &st : NULL, o->restore_owner);
	free(text);
	return e;
}

/* Whether the directory open as fd (path, named what in the error) is empty:
 * -EEXIST otherwise, naming the marker a killed restore left if it is there. */
static int check_empty(const char *what, const char *path, int fd)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		int e = bk_errorf_code(-errno, "%s%s", what, path);
		if (dfd >= 0)
			close(dfd);
		return e;
	}
	bool empty = true;
	for (struct dirent *de; empty && (de = readdir(d));)
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	bool marked = !empty && faccessat(fd, BK_RESTORE_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	/* a restore writing there now holds the directory's lock (mark), one killed
	 * held it no longer (found by an adversarial test: a second restore into the
	 * target of one still running said the first was killed, and to empty it) */
	bool live = marked && flock(dfd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	closedir(d);
	if (live)
		return bk_errorf(-EEXIST, "%s%s: another restore is writing there now (its %s is "
				 "there)", what, path, BK_RESTORE_MARKER);
	if (marked) /* (found by review: "not empty" alone) */
		return bk_errorf(-EEXIST, "%s%s holds what a restore that was killed wrote (%s is "
				 "there): empty it, then run again", what, path, BK_RESTORE_MARKER);
	return empty ? 0 : bk_errorf(-EEXIST, "%s%s is not empty", what, path);
}

/* Where a restore writes (the data directory, a tablespace's location) must be
 * missing or an empty directory, as for pg_basebackup: checked before anything is
 * made (and again once it is open: take). what names it in the error. */
static int check_unused(const char *what, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && lstat(path, &st) == 0)
		return bk_errorf(-EEXIST, "%s%s is a dangling symbolic link", what, path);
	if (fd < 0)
		return errno == ENOENT ? 0 : bk_errorf_code(-errno, "%s%s", what, path);
	int e = check_empty(what, path, fd);
	close(fd);
	return e;
}

static int check_location(void *ud, const char *oid, const char *loc)
{
	(void)ud;
	char what[64];
	snprintf(what, sizeof(what), "tablespace %s: ", oid);
	return check_unused(what, loc);
}

/* Gives a directory that was there before the restore back its owner and mode,
 * if they changed (as root the restore takes it, then gives it to the server's
 * user, 0700: found by review); only what changed, as another user's chown back
 * to the owner would fail. One the restore made is removed, once empty (found by
 * a helper's exploration: as root it stayed root's, 0700, and the same restore run
 * as the server's user then failed on it); what it made above it stays. */
static int put_back(const Dir *d)
{
	struct stat now, there;
	if (!d->existed) { /* (best effort: the one at its path, still empty) */
		if (fstat(d->fd, &now) == 0 && lstat(d->path, &there) == 0 &&
		    now.st_dev == there.st_dev && now.st_ino == there.st_ino)
			(void)rmdir(d->path);
		return 0;
	}
	if (fstat(d->fd, &now) < 0)
		return 0;
	if (((now.st_uid != d->st.st_uid || now.st_gid != d->st.st_gid) &&
	     fchown(d->fd, d->st.st_uid, d->st.st_gid) < 0) ||
	    ((now.st_mode & 07777) != (d->st.st_mode & 07777) &&
	     fchmod(d->fd, d->st.st_mode & 07777) < 0))
		return bk_errorf_code(-errno, "put back %s's owner and mode", d->path);
	return 0;
}

/* Opens d->path for the restore to write through (bk_open_dir: made 0700 if
 * missing, with the directories above it 0755, as the server must get through
 * them), noting how it was. As root it is root's alone (0700) until give_all: the
 * server's user must not put anything in it while root writes there (found by
 * review: recovery.signal's chown, postgresql.auto.conf's rewrite and the
 * take-back followed links that user could plant in a target it owned), nor
 * send root elsewhere on the way (bk_open_dir's safe walk). Then it must be empty
 * again (it was checked before anything was made, open to others meanwhile). A
 * failure leaves it as it was. */
static int take(Dir *d, const char *what, bool root)
{
	bool made = false;
	int e = bk_open_dir(AT_FDCWD, d->path, 0700, 0755, root, &d->fd, &made);
	d->existed = !made; /* (a path through a component made on the way to one there
			     * is one there: found by review, it was removed) */
	if (e < 0) {
		d->fd = -1;
		return bk_error_wrap(e == -EPERM ? BK_E_USAGE : e, "%s%s", what, d->path);
	}
	if (d->existed && fstat(d->fd, &d->st) < 0)
		e = bk_errorf_code(-errno, "stat %s", d->path);
	if (e == 0 && root && (fchown(d->fd, geteuid(), getegid()) < 0 || fchmod(d->fd, 0700) < 0))
		e = bk_errorf_code(-errno, "take %s for the restore", d->path);
	if (e == 0)
		e = check_empty(what, d->path, d->fd);
	if (e < 0) {
		char why[1024];
		snprintf(why, sizeof(why), "%s", bk_error_detail());
		(void)put_back(d);
		close(d->fd);
		d->fd = -1;
		return bk_errorf(e, "%s", why);
	}
	return 0;
}

/* Marks d while the restore writes it (unmark at the end): a restore killed
 * (SIGKILL, a crash) cannot take back what it wrote, and the next one says so
 * rather than "not empty". -EEXIST when another restore marked it since take
 * checked it empty: that one's, it is neither written nor taken back (found by
 * review: two restores begun together wrote into one directory, and the take-back
 * of one that failed emptied the other's, which had reported success). */
static int mark(const Dir *d)
{
	int fd = openat(d->fd, BK_RESTORE_MARKER,
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return bk_errorf(-EEXIST, "%s: another restore began writing there meanwhile (%s "
				 "appeared)", d->path, BK_RESTORE_MARKER);
	if (fd < 0)
		return bk_errorf_code(-errno, "create %s/%s", d->path, BK_RESTORE_MARKER);
	close(fd);
	/* held until d->fd is closed, by the restore's end or its death: check_empty
	 * tells a restore running there from one killed (a check's shared lock is
	 * held only for a moment, so waiting for it is short). Taken after the marker
	 * is made, never before: a directory another restore marked would hold this
	 * one here until that one ended. Not a condition of the restore: NFS takes
	 * flock as a byte-range lock, which a directory open for reading cannot
	 * hold exclusively; without it a restore running is named as killed. */
	(void)flock(d->fd, LOCK_EX);
	return 0;
}

/* Removes d's marker durably (the directory fsync'd). */
static int unmark(const Dir *d)
{
	if (unlinkat(d->fd, BK_RESTORE_MARKER, 0) < 0)
		return bk_errorf_code(-errno, "remove %s/%s", d->path, BK_RESTORE_MARKER);
	return fsync(d->fd) < 0 ? bk_errorf_code(-errno, "fsync %s", d->path) : 0;
}

/* Makes what the restore changed in d since its files' sync durable: the chmod of
 * a location, give_all's chowns (found by review: the last steps were never
 * synced, and a power cut after success could give back a data directory of
 * root's, or a marker). */
static int sync_dir(const Dir *d)
{
	return syncfs(d->fd) < 0 ? bk_errorf_code(-errno, "sync %s", d->path) : 0;
}

typedef struct {
	BkRepo *r;
	const BkPgRestoreOpts *o;
	const BkSnapshot *s;
	struct stat owner; /* of the restored files, with restore_owner */
	uint64_t *done;    /* bytes restored so far, for progress */
	Dir *locs;         /* the locations this restore took, in map order */
	size_t n, cap;
} Tablespaces;

/* The mode PostgreSQL gave the data directory and the tablespace locations: 0750
 * in a cluster with group access (initdb -g), whose directories the server makes
 * 0750, else 0700. The backup does not hold the data directory's own entry: its
 * global/ tells (found by a helper's exploration: a group-access cluster came
 * back 0700 at its top, and the server ran without group access). */
static mode_t dir_mode(BkRepo *r, const BkSnapshot *s)
{
	BkTree *t = NULL;
	const BkTreeEntry *global = NULL;
	mode_t mode = 0700;
	if (bk_tree_lookup(r, s->root, "global", &t, &global) == 0 && global &&
	    global->type == BK_NODE_DIR && (global->mode & 0777) == 0750)
		mode = 0750;
	bk_error_clear(); /* (no global/: 0700, as the server wants then) */
	bk_tree_free(t);
	return mode;
}

/* After a failed or interrupted restore: empties the tablespace locations it took
 * and the data directory, each missing or empty when it began (take), so that
 * nothing half-restored is taken for a data directory and the same command can
 * run again; each marker goes last, once all else went. A directory that was
 * there stays, with the owner and mode it had; one the restore made goes
 * (put_back). Returns e, its detail kept and saying whether all went. */
static int take_back(const Tablespaces *ts, const Dir *target, int e)
{
	char why[1024];
	snprintf(why, sizeof(why), "%s", bk_error_detail());
	int err = 0;
	for (size_t i = 0; i <= ts->n; i++) {
		const Dir *d = i < ts->n ? &ts->locs[i] : target;
		int r = bk_remove_contents(d->fd, d->path, BK_RESTORE_MARKER);
		if (r == 0)
			r = put_back(d);
		if (r < 0 && !err)
			err = r;
	}
	if (err < 0) { /* (the detail copied first: found by review, it was printed into) */
		char how[512];
		snprintf(how, sizeof(how), "%s", bk_error_detail());
		return bk_errorf(e, "%s (what it wrote could not all be removed: %s)", why, how);
	}
	return bk_errorf(e, "%s (what it wrote is removed)", why);
}

/* Whether user uid (group gid and the user's other groups) can reach every path
 * of needs, asked with access() in a child that takes that identity (root only).
 * BK_E_USAGE names the first it cannot. */
static int server_can_reach(uid_t uid, gid_t gid, const BkPathAccess *needs, size_t n)
{
	if (n == 0 || n > 100) /* the child's exit status names the path: 1..n */
		return 0;
	struct passwd *pw = getpwuid(uid);
	if (pw)
		gid = pw->pw_gid; /* the server runs with its user's groups */
	int ngroups = 64;
	gid_t *groups = malloc(sizeof(*groups) * (size_t)ngroups);
	if (pw && groups && getgrouplist(pw->pw_name, gid, groups, &ngroups) < 0) {
		gid_t *more = realloc(groups, sizeof(*groups) * (size_t)ngroups);
		if (more)
			groups = more;
		if (!more || getgrouplist(pw->pw_name, gid, groups, &ngroups) < 0)
			ngroups = 0;
	}
	if (!pw || !groups)
		ngroups = 0; /* an unknown user: its uid and gid alone */
	char user[64];
	snprintf(user, sizeof(user), "%s%s(uid %u)", pw ? pw->pw_name : "", pw ? " " : "",
		 (unsigned)uid);
	pid_t pid = fork();
	if (pid < 0) {
		free(groups);
		return bk_errorf_code(-errno, "fork");
	}
	if (pid == 0) {
		if (setgroups((size_t)ngroups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(127);
		for (size_t i = 0; i < n; i++)
			if (access(needs[i].path, needs[i].mode) < 0)
				_exit((int)i + 1);
		_exit(0);
	}
	free(groups);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return bk_errorf_code(-errno, "waitpid");
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 127;
	if (code == 0 || code > (int)n)
		return 0; /* reachable, or no identity to check with (no CAP_SETGID): PostgreSQL tells */
	const BkPathAccess *a = &needs[code - 1];
	if (a->dir)
		return bk_errorf(BK_E_USAGE, "the server would run as the data directory's owner, "
				 "user %s, who cannot get through %s to %s: make it reachable for "
				 "that user (or restore elsewhere)", user, a->path, a->dir);
	return bk_errorf(BK_E_USAGE, "restore_command would run as the data directory's owner, "
			 "user %s, who cannot %s %s: make it reachable for that user (or restore "
			 "as that user)", user, a->mode == X_OK ? "run" : "read", a->path);
}

/* What the server needs besides restore_command's: to get through the directories
 * above the data directory and each tablespace location to them (the restore gives
 * it the locations themselves; the parents it makes are 0755). Each is checked at
 * the deepest one that exists (found by trying: a data directory under a 0700
 * directory of root's restored, and the server could not start). */
#define MAX_NEEDS 64
typedef struct {
	BkPathAccess needs[MAX_NEEDS];
	char paths[MAX_NEEDS][PATH_MAX];
	size_t n;
} Needs;

static int add_parent(void *ud, const char *oid, const char *loc)
{
	(void)oid;
	Needs *nd = ud;
	if (nd->n == MAX_NEEDS)
		return 0;
	char *p = nd->paths[nd->n], cwd[PATH_MAX] = "";
	/* a relative path from the working directory, whose parents the kernel does not
	 * check again for a child that starts there (found by review: "." passed) */
	if (loc[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return bk_errorf_code(-errno, "getcwd");
	snprintf(p, PATH_MAX, "%s%s%.*s", cwd, cwd[0] && strcmp(cwd, "/") ? "/" : "",
		 (int)trimmed(loc, strlen(loc)), loc);
	struct stat st;
	do
		(void)up_one(p);
	while (stat(p, &st) < 0 && strcmp(p, ".") && strcmp(p, "/"));
	nd->needs[nd->n++] = (BkPathAccess){ p, X_OK, loc };
	return 0;
}

/* As root, whose the restored files are: --owner's, else the owner of the backup's
 * PG_VERSION (the server's user), which must have an account here: on another host
 * that uid may be no one's, or another user's (found by review). */
static int resolve_owner(BkRepo *r, const BkSnapshot *s, const BkPgRestoreOpts *o, uid_t *ret_uid,
			 gid_t *ret_gid)
{
	if (o->owner) {
		struct passwd *pw = getpwnam(o->owner);
		if (!pw)
			return bk_errorf(BK_E_USAGE, "--owner: no user '%s' here", o->owner);
		*ret_uid = pw->pw_uid;
		*ret_gid = pw->pw_gid;
		return 0;
	}
	BkTree *t = NULL;
	const BkTreeEntry *ent = NULL;
	int e = bk_tree_lookup(r, s->root, "PG_VERSION", &t, &ent);
	if (e == 0 && !ent)
		e = bk_errorf(BK_E_CORRUPT, "the backup holds no PG_VERSION");
	if (e == 0) {
		*ret_uid = ent->uid;
		*ret_gid = ent->gid;
		if (!getpwuid(ent->uid))
			e = bk_errorf(BK_E_USAGE, "the backup's files are uid %u's, and no user here has "
				      "that uid (a restore on another host?): pass --owner USER, the "
				      "user the server will run as, or restore as that user",
				      (unsigned)ent->uid);
	}
	bk_tree_free(t);
	return e;
}

/* What the server's user (uid, gid), who runs restore_command, must reach. */
static int check_server_needs(const BkSnapshot *s, const BkPgRestoreOpts *o, uid_t uid, gid_t gid)
{
	if (o->nserver_needs == 0)
		return 0;
	Needs *nd = malloc(sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	nd->n = 0;
	for (size_t i = 0; i < o->nserver_needs && nd->n < MAX_NEEDS; i++)
		nd->needs[nd->n++] = o->server_needs[i];
	int e = add_parent(nd, NULL, o->target_dir);
	if (e == 0)
		e = each_tablespace(s, o, add_parent, nd);
	if (e == 0)
		e = server_can_reach(uid, gid, nd->needs, nd->n);
	free(nd);
	return e;
}

/* Whether the snapshot holds tablespace oid's files (*ret). A tablespace dropped
 * while the backup ran, after the server listed it and before it sent it, comes
 * as an archive without a single entry: tablespace_map names it, the snapshot
 * holds nothing of it, and its location is left empty, as pg_basebackup leaves
 * it (recovery replays the drop). Absent is read from the trees themselves, not
 * from bk_tree_lookup's -ENOENT, which a tree blob lost from the repository
 * gives too. */
static int tablespace_sent(BkRepo *r, const BkSnapshot *s, const char *oid, bool *ret)
{
	BkTree *top, *all = NULL;
	*ret = false;
	int e = bk_tree_load(r, s->root, &top);
	if (e < 0)
		return e;
	const BkTreeEntry *ent = bk_tree_find(top, BK_TABLESPACE_DIR);
	if (ent && ent->type == BK_NODE_DIR)
		e = bk_tree_load(r, ent->subtree, &all);
	if (e == 0 && ent) /* (not a directory: the restore names it) */
		*ret = !all || bk_tree_find(all, oid);
	bk_tree_free(all);
	bk_tree_free(top);
	return e;
}

/* Restores a tablespace's files straight into its location, which is often on
 * another file system than the data directory. */
static int restore_tablespace(void *ud, const char *oid, const char *loc)
{
	Tablespaces *t = ud;
	char from[64], what[64];
	snprintf(from, sizeof(from), "%s/%s", BK_TABLESPACE_DIR, oid);
	snprintf(what, sizeof(what), "tablespace %s: ", oid);
	BkRestoreOpts ro = { .restore_owner = t->o->restore_owner, .one_owner = !!t->o->owner,
			     .owner_uid = t->owner.st_uid, .owner_gid = t->owner.st_gid,
			     .from = from, .total = t->s->logical_bytes, .done = t->done,
			     .progress = t->o->progress, .progress_ud = t->o->progress_ud,
			     .stop = t->o->stop };
	/* checked again: the data directory was written since the first check */
	bool sent = false;
	int e = check_unused(what, loc);
	if (e == 0)
		e = tablespace_sent(t->r, t->s, oid, &sent);
	if (e == 0 && bk_grow(&t->locs, &t->cap, t->n, sizeof(*t->locs), 8) < 0)
		e = -ENOMEM;
	if (e < 0)
		return e;
	Dir *d = &t->locs[t->n];
	*d = (Dir){ .fd = -1 };
	if (snprintf(d->path, sizeof(d->path), "%s", loc) >= (int)sizeof(d->path))
		return bk_errorf(BK_E_USAGE, "%s%s: path too long", what, loc);
	if ((e = take(d, what, t->o->restore_owner)) < 0)
		return e;
	if ((e = mark(d)) < 0) { /* (nothing written here: not taken back) */
		(void)put_back(d);
		close(d->fd);
		return bk_error_wrap(e, "tablespace %s", oid);
	}
	t->n++; /* from here on take_back empties it */
	if (sent)
		e = bk_restore_at(t->r, t->s, d->fd, d->path, &ro);
	if (e == 0 && fchmod(d->fd, 0700) < 0) /* (group access, if any, at the end) */
		e = bk_errorf_code(-errno, "chmod %s", d->path);
	return e < 0 ? bk_error_wrap(e, "tablespace %s", oid) : 0;
}

/* As root, the restore's last writing step: the files written here (postgresql.auto.conf
 * is root's when the backup had none: found by review), each location and the data
 * directory to the owner (take). */
static int give_all(const Dir *target, const BkPgRestoreOpts *o, const Tablespaces *ts)
{
	static const char *const written[] = { "recovery.signal", "postgresql.auto.conf",
					       "tablespace_map" };
	size_t n = o->nts_mapping ? 3 : 2; /* (tablespace_map: rewritten only with a mapping) */
	uid_t uid = ts->owner.st_uid;
	gid_t gid = ts->owner.st_gid;
	for (size_t i = 0; i < n; i++)
		if (fchownat(target->fd, written[i], uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			return bk_errorf_code(-errno, "chown %s/%s", target->path, written[i]);
	for (size_t i = 0; i <= ts->n; i++) {
		const Dir *d = i < ts->n ? &ts->locs[i] : target;
		if (fchown(d->fd, uid, gid) < 0)
			return bk_errorf_code(-errno, "chown %s", d->path);
	}
	return 0;
}

int bk_pg_datadir_write(BkRepo *r, const BkSnapshot *s, const BkPgRestoreOpts *o,
			int64_t target_us, uint32_t want_tli, bool no_prefetch)
{
	Tablespaces ts = { .r = r, .o = o, .s = s };
	Dir target = { .fd = -1 };
	int e = 0;
	if (snprintf(target.path, sizeof(target.path), "%s", o->target_dir) >= (int)sizeof(target.path))
		e = bk_errorf(BK_E_USAGE, "--target: path too long");
	if (e == 0)
		e = check_unused("", o->target_dir);
	if (e == 0 && o->restore_owner)
		e = resolve_owner(r, s, o, &ts.owner.st_uid, &ts.owner.st_gid);
	if (e == 0 && o->restore_owner)
		e = check_server_needs(s, o, ts.owner.st_uid, ts.owner.st_gid);
	uint64_t done = 0; /* bytes restored, data directory and tablespaces */
	if (e == 0)
		e = check_mapping(r, s, o);
	if (e == 0)
		e = each_tablespace(s, o, check_location, NULL);
	/* (a target that cannot be made or taken is no restore to take back: found by
	 * review) */
	if (e == 0)
		e = take(&target, "--target ", o->restore_owner);
	if (e == 0 && (e = mark(&target)) < 0) /* (nothing written: not taken back) */
		(void)put_back(&target);
	bool writing = e == 0; /* from here on a failure takes back what was written */
	if (e == 0) {
		static const char *const skip[] = { BK_TABLESPACE_DIR };
		BkRestoreOpts ro = { .restore_owner = o->restore_owner, .one_owner = !!o->owner,
				     .owner_uid = ts.owner.st_uid, .owner_gid = ts.owner.st_gid,
				     .total = s->logical_bytes, .done = &done,
				     .progress = o->progress, .progress_ud = o->progress_ud,
				     .excludes = skip, .nexcludes = 1, .stop = o->stop };
		e = bk_restore_at(r, s, target.fd, target.path, &ro);
	}
	if (e == 0 && fchmod(target.fd, 0700) < 0)
		e = bk_errorf_code(-errno, "chmod %s", target.path);
	ts.done = &done;
	if (e == 0)
		e = each_tablespace(s, o, restore_tablespace, &ts);
	if (e == 0)
		e = write_tablespace_map(&target, s, o);
	if (e == 0)
		e = write_recovery_config(&target, o, target_us, want_tli, no_prefetch);
	/* as root: the files written here, the locations and the data directory go to
	 * the owner (resolve_owner) last */
	if (e == 0 && o->restore_owner)
		e = give_all(&target, o, &ts);
	/* a cluster with group access: 0750, once they are the owner's */
	mode_t mode = e == 0 ? dir_mode(r, s) : 0700;
	for (size_t i = 0; e == 0 && mode != 0700 && i <= ts.n; i++) {
		const Dir *d = i < ts.n ? &ts.locs[i] : &target;
		if (fchmod(d->fd, mode) < 0)
			e = bk_errorf_code(-errno, "chmod %s", d->path);
	}
	for (size_t i = 0; e == 0 && i <= ts.n; i++)
		e = sync_dir(i < ts.n ? &ts.locs[i] : &target);
	/* the data directory's last: the restore is whole once it is gone */
	for (size_t i = 0; e == 0 && i < ts.n; i++)
		e = unmark(&ts.locs[i]);
	if (e == 0)
		e = unmark(&target);
	if (e < 0 && writing)
		e = take_back(&ts, &target, e);
	for (size_t i = 0; i < ts.n; i++)
		close(ts.locs[i].fd);
	if (target.fd >= 0)
		close(target.fd);
	free(ts.locs);
	return e;
}
