#include "pg/dump.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg/conninfo.h"
#include "pg/libpq.h"
#include "pg/walarchive.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/restorer.h"
#include "store/util.h"

#define CONNINFO_MAX 8192

/* The environment for a dump program: ours, with PGPASSWORD set to password if
 * given. The strings are borrowed but for the one malloc'd into *ret_pw. */
static char **child_env(const char *password, char **ret_pw)
{
	extern char **environ;
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof(*env));
	*ret_pw = NULL;
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!password || strncmp(environ[i], "PGPASSWORD=", 11) != 0)
			env[k++] = environ[i];
	if (password) {
		if (asprintf(ret_pw, "PGPASSWORD=%s", password) < 0) {
			free(env);
			return NULL;
		}
		env[k++] = *ret_pw;
	}
	return env;
}

/* Connects to list the databases: to the one conninfo names, else, as pg_dumpall
 * does, to postgres or, failing that, template1 (libpq's default, a database named
 * as the user, rarely exists). Returns NULL with the error set. */
static PGconn *connect_to_list(const char *conninfo)
{
	const char *keys[3] = { "dbname", "dbname" }, *vals[3] = { conninfo };
	bool named = bk_pg_conninfo_sets(conninfo, "dbname");
	if (!named)
		vals[1] = "postgres"; /* a later dbname replaces the string's (libpq) */
	PGconn *c = PQconnectdbParams(keys, vals, 1); /* a bare name too, as basebackup */
	if (PQstatus(c) == CONNECTION_OK)
		return c;
	bk_errorf(BK_E_REMOTE, "connect: %s", PQerrorMessage(c));
	PQfinish(c);
	if (named)
		return NULL;
	vals[1] = "template1";
	c = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c) == CONNECTION_OK) {
		bk_error_clear();
		return c;
	}
	PQfinish(c); /* postgres's error is the one to tell */
	return NULL;
}

/* The names in column 0 of res whose column 1 is allowconn ("t" or "f"), into a
 * malloc'd string: each name ends with a NUL (a name may hold any other byte, a
 * newline too), then an empty one ends it. */
static char *names_where(const PGresult *res, const char *allowconn)
{
	size_t len = 0;
	for (int i = 0; i < PQntuples(res); i++)
		if (!strcmp(PQgetvalue(res, i, 1), allowconn))
			len += strlen(PQgetvalue(res, i, 0)) + 1;
	char *s = malloc(len + 1), *p = s;
	for (int i = 0; s && i < PQntuples(res); i++)
		if (!strcmp(PQgetvalue(res, i, 1), allowconn))
			p += sprintf(p, "%s", PQgetvalue(res, i, 0)) + 1;
	if (s)
		*p = '\0';
	return s;
}

/* The databases to dump, as pg_dumpall picks them (every one that accepts
 * connections and is not invalid, a DROP DATABASE interrupted, but template0; user
 * templates and template1 too), into *ret, and those it leaves out because they do
 * not accept connections (but template0), which a backup should not skip without
 * a word, into *ret_closed: malloc'd lists as names_where makes them. Each query
 * gives up once the server has sent nothing for o->stall_timeout_s (0: never). A
 * system identifier that cannot be read is 0 in *ret_sysid, and warned of. */
static int list_databases(const BkDumpOpts *o, char **ret, char **ret_closed, char *version,
			  size_t vcap, uint64_t *ret_sysid, uint32_t *ret_seg_size,
			  unsigned *ret_keepalives)
{
	unsigned stall_s = o->stall_timeout_s;
	PGconn *c = connect_to_list(o->conninfo);
	if (!c)
		return BK_E_REMOTE;
	*ret_keepalives = bk_pg_keepalives_set(c); /* and the programs' (pg/conninfo.h) */
	snprintf(version, vcap, "%d", PQserverVersion(c));
	*ret_sysid = 0;
	/* no search_path, as pg_dump and pg_dumpall set it (CVE-2018-1058): the
	 * owner of the database listed from could set one that puts its own schema
	 * first, and with it a pg_database that hides databases from the dump, or a
	 * function run in this session (found by review: such a view left every
	 * other database undumped, and the command said nothing) */
	bool stalled;
	PGresult *res = bk_pq_exec(c, "SELECT pg_catalog.set_config('search_path', '', false)",
				   stall_s, &stalled);
	bool secured = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	if (!secured) {
		int e = stalled ? bk_pq_stall_error("list databases", stall_s)
				: bk_errorf(BK_E_REMOTE, "clear search_path: %s", PQerrorMessage(c));
		PQfinish(c);
		return e;
	}
	res = bk_pq_exec(c, "SELECT system_identifier, (SELECT setting FROM pg_settings "
			    "WHERE name = 'wal_segment_size') FROM pg_control_system()", stall_s,
			 &stalled);
	if (stalled) {
		PQfinish(c);
		return bk_pq_stall_error("list databases", stall_s);
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		*ret_sysid = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		if (bk_wal_seg_size_parse(PQgetvalue(res, 0, 1), ret_seg_size) < 0)
			*ret_seg_size = 0; /* unknown: WAL pushed later tells (bk_wal_archive_load) */
	} else if (o->warn) {
		/* the dumps go on without the check that the cluster name is this
		 * server's: said (found by a helper's exploration: with EXECUTE revoked,
		 * another server's dumps went in under main, without a word) */
		char msg[1024];
		snprintf(msg, sizeof(msg), "the dumps are saved under cluster '%s' without "
			 "checking that it is this server: its system identifier cannot be read: "
			 "%s", o->cluster, PQresultStatus(res) == PGRES_TUPLES_OK ?
			 "pg_control_system() returned no row" : PQerrorMessage(c));
		o->warn(o->warn_ud, msg);
	}
	PQclear(res);
	/* the names as the server holds them, which is what pg_dump's connection asks
	 * for: not converted to a client_encoding set by PGCLIENTENCODING or --dbname
	 * (found by review: with GB18030, "café db" came back in other bytes, and
	 * pg_dump found no such database; with LATIN1, a name it cannot hold failed
	 * the listing, and no database was dumped). PQexec returns the last result. */
	res = bk_pq_exec(c, "SELECT set_config('client_encoding', current_setting('server_encoding'), "
			    "false); SELECT datname, datallowconn FROM pg_database WHERE datconnlimit "
			    "<> -2 AND datname <> 'template0' ORDER BY datname", stall_s, &stalled);
	int e = 0;
	if (stalled) {
		e = bk_pq_stall_error("list databases", stall_s);
	} else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		e = bk_errorf(BK_E_REMOTE, "list databases: %s", PQerrorMessage(c));
	} else {
		char *dbs = names_where(res, "t"), *closed = names_where(res, "f");
		if (dbs && closed) {
			*ret = dbs;
			*ret_closed = closed;
		} else {
			free(dbs);
			free(closed);
			e = -ENOMEM;
		}
	}
	PQclear(res);
	PQfinish(c);
	return e;
}

/* A file in memory for a program's standard error: what it writes is passed on
 * once it has exited (pass_messages), never straight to the terminal, where a
 * database or table name in a message (the server allows any byte but NUL) could
 * move the cursor or forge a line (found by a helper's exploration: a database
 * named with escapes, its CONNECT revoked, made pg_dump print a forged "all dumps
 * saved" and hide bunker's own line). Returns the descriptor, or -errno. */
static int messages_file(void)
{
	int fd = memfd_create("bunker-pg-messages", MFD_CLOEXEC);
	if (fd >= 0 && fd <= STDERR_FILENO) { /* (bunker started with one closed: above
					       * them, or the child's dup2s would mix them) */
		int high = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
		close(fd);
		fd = high;
	}
	return fd < 0 ? -errno : fd;
}

#define MESSAGES_MAX (64 * 1024) /* bytes of them passed on; the rest is counted */
#define MESSAGES_KEPT (1024 * 1024) /* bytes a program may write there (RLIMIT_FSIZE) */

/* Reads up to cap - 1 bytes of what fd (messages_file) holds into buf, ended by a
 * NUL; returns how many, and the whole size in *ret_size. */
static size_t read_messages(int fd, char *buf, size_t cap, uint64_t *ret_size)
{
	struct stat st;
	size_t n = 0;
	*ret_size = 0;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		*ret_size = (uint64_t)st.st_size;
		if (bk_pread_all(fd, buf, BK_MIN(*ret_size, cap - 1), 0, &n) < 0)
			n = 0;
	}
	buf[n] = '\0';
	return n;
}

/* Passes what a program wrote into fd (messages_file) to o->program_line, a line
 * at a time. */
static void pass_messages(const BkDumpOpts *o, const char *what, int fd)
{
	char *buf = o->program_line ? malloc(MESSAGES_MAX + 1) : NULL;
	if (!buf)
		return;
	uint64_t size;
	size_t n = read_messages(fd, buf, MESSAGES_MAX + 1, &size);
	char *save;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		o->program_line(o->program_line_ud, line);
	if (size > n) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s wrote %llu more bytes of messages, not shown", what,
			 (unsigned long long)(size - n));
		o->program_line(o->program_line_ud, msg);
	}
	free(buf);
}

/* Starts argv (looked up in PATH unless it names a directory) with environment
 * env, its standard output the write end of a pipe whose read end is *ret_fd, its
 * standard error a messages_file, returned in *ret_msgs, and SIGPIPE at its
 * default (ignored here: a program that writes on ends by it); with own_group, in
 * a process group of its own (kill(-pid) then stops what it started too). The
 * program gets SIGTERM when this thread ends (PR_SET_PDEATHSIG), bunker
 * stopped or killed included: a pg_dump left behind went on waiting for a lock,
 * holding the locks it had, with no stall timeout left to stop it (found by
 * review). Returns 0, or the error (a positive errno: ENOENT when the program is
 * not found, EACCES when it is not executable). */
static int spawn_reading(char *const argv[], char **env, bool own_group, pid_t *ret_pid,
			 int *ret_fd, int *ret_msgs)
{
	int pipefd[2], errfd[2], err_to = messages_file();
	if (err_to < 0)
		return -err_to;
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		int r = errno;
		close(err_to);
		return r;
	}
	if (pipe2(errfd, O_CLOEXEC) < 0) {
		int r = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		close(err_to);
		return r;
	}
	/* no handler of ours may run in the child before exec */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pid_t parent = getpid(), pid = fork();
	if (pid == 0) { /* async-signal-safe calls only, up to exec */
		int r = 0;
		if (own_group && setpgid(0, 0) < 0)
			r = errno;
		if (!r && prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
			r = errno;
		if (!r && getppid() != parent) /* gone already: nothing to read it */
			_exit(127);
		if (!r && dup2(pipefd[1], STDOUT_FILENO) < 0)
			r = errno;
		if (!r && pipefd[1] == STDOUT_FILENO) /* (dup2 onto itself keeps CLOEXEC) */
			fcntl(STDOUT_FILENO, F_SETFD, 0);
		if (!r && dup2(err_to, STDERR_FILENO) < 0)
			r = errno;
		/* what it may keep of them: past the limit its writes fail (EFBIG, with
		 * SIGXFSZ ignored) and the rest is lost, as a full disk would lose it */
		struct rlimit cap = { MESSAGES_KEPT, MESSAGES_KEPT };
		if (!r && setrlimit(RLIMIT_FSIZE, &cap) < 0)
			r = errno;
		signal(SIGXFSZ, SIG_IGN);
		/* SIGTERM too, which bunker may have been started with blocked or ignored
		 * (exec keeps both): it is how the program is stopped */
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		sigdelset(&old, SIGTERM);
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (!r) {
			execvpe(argv[0], argv, env);
			r = errno;
		}
		while (write(errfd[1], &r, sizeof(r)) < 0 && errno == EINTR)
			;
		_exit(127);
	}
	int r = pid < 0 ? errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(pipefd[1]);
	close(errfd[1]);
	if (pid > 0) { /* the exec's error, or EOF once it succeeded */
		int err;
		ssize_t n;
		while ((n = read(errfd[0], &err, sizeof(err))) < 0 && errno == EINTR)
			;
		if (n == sizeof(err)) {
			r = err;
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
	}
	close(errfd[0]);
	if (r != 0) {
		close(pipefd[0]);
		close(err_to);
	} else {
		*ret_pid = pid;
		*ret_fd = pipefd[0];
		*ret_msgs = err_to;
	}
	return r;
}

typedef struct {
	pid_t pid;
	const char *what;
	uint32_t stall_s;
} Child;

#define STOP_GRACE_MS 5000 /* what a program stopped with SIGTERM has to exit */

/* Reaps pid if it exits by deadline (bk_mono_us), its wait status into *status
 * (NULL: not wanted; -1 when the wait failed); false if it has not. */
static bool reap_by(pid_t pid, uint64_t deadline, int *status)
{
	if (status)
		*status = -1;
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			return true;
		if (bk_mono_us() >= deadline)
			return false;
		usleep(10000);
	}
}

/* The dump program has written nothing for stall_s (waiting for a lock, say, or on
 * a connection gone quiet): it is stopped, and its snapshot not written. SIGTERM
 * first: pg_dump then cancels its query on the server, and says "terminated by
 * user" (SIGKILL alone left the server's session waiting for its lock, holding
 * the locks it had and its snapshot: found by review); SIGKILL if it has not
 * exited STOP_GRACE_MS later. */
static int stalled(void *ud)
{
	Child *c = ud;
	kill(c->pid, SIGTERM);
	if (!reap_by(c->pid, bk_mono_us() + STOP_GRACE_MS * UINT64_C(1000), NULL)) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	c->pid = 0;
	bool dump = !strcmp(c->what, "pg_dump"); /* (pg_dumpall writes as it goes) */
	return bk_errorf(BK_E_REMOTE, "%s wrote nothing for %u s (stall timeout): it was stopped "
			 "(%s--stall-timeout sets the limit)", c->what, c->stall_s,
			 dump ? "it writes nothing until it holds every table's lock: another "
				"session's lock, or a catalog that slow; " : "");
}

/* 0 for a program that exited 0, else BK_E_REMOTE saying how what ended, and
 * with what it said (said: "" for nothing). */
static int status_error(int status, const char *what, const char *said)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	const char *sep = said[0] ? ": " : "";
	if (WIFSIGNALED(status))
		return bk_errorf(BK_E_REMOTE, "%s was killed by signal %d%s%s", what,
				 WTERMSIG(status), sep, said);
	return bk_errorf(BK_E_REMOTE, "%s failed with exit code %d%s%s", what,
			 WEXITSTATUS(status), sep, said);
}

/* Reaps the dump program: its failure aborts the snapshot before it is written. */
static int reap(void *ud)
{
	Child *c = ud;
	int status;
	while (waitpid(c->pid, &status, 0) < 0)
		if (errno != EINTR)
			return bk_errorf_code(-errno, "wait for %s", c->what);
	c->pid = 0;
	return status_error(status, c->what, "");
}

/* Runs argv with environment env (spawn_reading) and stores its output as
 * snapshot `name`. */
static int run_into_snapshot(BkRepo *r, const BkDumpOpts *o, char *const argv[], char **env,
			     const char *name, const char *what, BkKv *meta, size_t nmeta,
			     uint8_t ret_id[32])
{
	if (o->begin)
		o->begin(o->progress_ud, name);
	pid_t pid;
	int fd, msgs, se = spawn_reading(argv, env, false, &pid, &fd, &msgs);
	if (se != 0)
		return bk_errorf(BK_E_REMOTE, "cannot run %s: %s", argv[0], strerror(se));
	Child child = { pid, what, o->stall_timeout_s };
	uint8_t parent[32];
	bool has_parent = bk_snapshot_resolve(r, "latest", name, parent) == 0;
	bk_error_clear(); /* no parent is not an error */
	BkArchiveOpts ao = {
		.name = name,
		.kind = "pg-dump",
		.host = o->host,
		.meta = meta,
		.nmeta = nmeta,
		.parent = has_parent ? parent : NULL,
		.progress = o->progress,
		.progress_ud = o->progress_ud,
		.before_commit = reap,
		.before_commit_ud = &child,
		.idle_s = o->stall_timeout_s,
		.idle = stalled,
		.idle_ud = &child,
	};
	int e = bk_archive_fd(r, fd, "dump", &ao, ret_id);
	close(fd);
	if (child.pid) { /* failed before reaping: stop the program (SIGKILL: on SIGTERM
			  * pg_dump says "terminated by user", which it was not) */
		kill(child.pid, SIGKILL);
		waitpid(child.pid, NULL, 0);
	}
	pass_messages(o, what, msgs);
	close(msgs);
	return e;
}

static void program(char *out, size_t cap, const char *bin_dir, const char *name)
{
	if (bin_dir)
		snprintf(out, cap, "%s/%s", bin_dir, name);
	else
		snprintf(out, cap, "%s", name);
}

/* A PostgreSQL version as one number to compare majors by: 150000 for 15.x
 * (PQserverVersion's 150014, or "15.14"), 90600 for 9.6.x. The parts come from a
 * program's output too: clamped, a huge major (strtol's LONG_MAX) counts as newer
 * than any server instead of overflowing (found by review: 99999999999999999999.1
 * read as older), a negative one as older. */
static long major_of(long major, long minor)
{
	major = BK_MIN(BK_MAX(major, 0), 100000);
	minor = BK_MIN(BK_MAX(minor, 0), 99);
	return major >= 10 ? major * 10000 : major * 10000 + minor * 100;
}

/* Checks, once before the first dump, that program (pg_dump or pg_dumpall, named
 * by bin_dir) runs, and that it is not older than the server (server_version as
 * PQserverVersion gives it), which it would refuse to dump ("aborting because of
 * server version mismatch"): else every database's dump fails alike, with the
 * same message each time. Output that is not understood passes (the dumps tell).
 * It has VERSION_TIMEOUT_MS to answer and exit (a wrapper that hangs would hang
 * the dump), else it is killed with what it started (its own process group).
 * Returns 0, or BK_E_REMOTE naming the program and what to do. */
#define VERSION_TIMEOUT_MS 5000
static int check_program(const char *bin_dir, const char *name, char **env, int server_version)
{
	char prog[4096];
	program(prog, sizeof(prog), bin_dir, name);
	char *argv[] = { prog, "--version", NULL };
	pid_t pid;
	int fd, msgs, r = spawn_reading(argv, env, true, &pid, &fd, &msgs);
	if (r != 0) {
		if (bin_dir || r != ENOENT) /* (EACCES: on the PATH, not executable) */
			return bk_errorf(BK_E_REMOTE, "cannot run %s%s: %s", prog,
					 bin_dir ? " (in the directory BUNKER_PG_BIN names)" : "",
					 strerror(r));
		return bk_errorf(BK_E_REMOTE, "cannot run %s: %s (not on the PATH: install "
				 "PostgreSQL's client programs, or set BUNKER_PG_BIN to their "
				 "directory)", prog, strerror(r));
	}
	char out[256];
	size_t n = 0;
	uint64_t deadline = bk_mono_us() + VERSION_TIMEOUT_MS * UINT64_C(1000);
	bool late = false;
	for (;;) { /* to its end: past out's room it is dropped (not a closed pipe,
		    * which would kill a wrapper that writes more: SIGPIPE) */
		uint64_t now = bk_mono_us();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int pr = now < deadline ? poll(&p, 1, (int)((deadline - now + 999) / 1000)) : 0;
		if (pr < 0 && errno == EINTR)
			continue;
		late = pr == 0;
		if (pr <= 0)
			break;
		char rest[512];
		bool room = n < sizeof(out) - 1;
		ssize_t k = room ? read(fd, out + n, sizeof(out) - 1 - n) : read(fd, rest, sizeof(rest));
		if (k > 0 && room)
			n += (size_t)k;
		else if (k == 0 || (k < 0 && errno != EINTR))
			break;
	}
	close(fd);
	out[n] = '\0';
	int status = -1;
	if (late || !reap_by(pid, deadline, &status)) { /* its exit, by the same deadline */
		late = true;
		kill(-pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	/* (found by a helper's exploration: a pg_dump that cannot start, a library
	 * missing, exits 127 and passed; every database's dump then failed alike) */
	char said[512];
	uint64_t size;
	read_messages(msgs, said, sizeof(said), &size);
	close(msgs);
	said[strcspn(said, "\n")] = '\0'; /* its first line */
	if (late)
		return bk_errorf(BK_E_REMOTE, "%s --version did not finish within %d s: it was "
				 "stopped (check the program, or BUNKER_PG_BIN)", prog,
				 VERSION_TIMEOUT_MS / 1000);
	char what[sizeof(prog) + 16];
	snprintf(what, sizeof(what), "%s --version", prog);
	if (status != -1 && (r = status_error(status, what, said)) < 0)
		return r;
	const char *v = strstr(out, "(PostgreSQL) ");
	if (!v || server_version <= 0)
		return 0;
	v += strlen("(PostgreSQL) ");
	char *end;
	long major = strtol(v, &end, 10), minor = *end == '.' ? strtol(end + 1, NULL, 10) : 0;
	long server = major_of(server_version / 10000, server_version / 100 % 100);
	if (end == v || major_of(major, minor) >= server)
		return 0;
	int sv = server_version;
	char srv[32], want[16];
	if (sv >= 100000) {
		snprintf(srv, sizeof(srv), "%d.%d", sv / 10000, sv % 10000);
		snprintf(want, sizeof(want), "%d", sv / 10000);
	} else {
		snprintf(srv, sizeof(srv), "%d.%d.%d", sv / 10000, sv / 100 % 100, sv % 100);
		snprintf(want, sizeof(want), "%d.%d", sv / 10000, sv / 100 % 100);
	}
	int vlen = (int)strcspn(v, " \n");
	return bk_errorf(BK_E_REMOTE, "%s is version %.*s, older than the server (%s), and cannot "
			 "dump it: set BUNKER_PG_BIN to the bin directory of PostgreSQL %s or later",
			 prog, vlen < 32 ? vlen : 32, v, srv, want);
}

/* Appends 'db' (NULL: the globals) to a list of dumps, cut with " ..." once full. */
static void list_add(char *list, size_t cap, const char *db)
{
	size_t n = strlen(list);
	if (n >= 4 && !strcmp(list + n - 4, " ...")) /* cut already */
		return;
	int w = db ? snprintf(list + n, cap - n, "%s'%s'", n ? ", " : "", db)
		   : snprintf(list + n, cap - n, "%sthe globals", n ? ", " : "");
	if (w < 0 || (size_t)w >= cap - n) { /* cut, on a character's start: say so */
		size_t at = cap - 5;
		while (at > 0 && ((unsigned char)list[at] & 0xC0) == 0x80)
			at--;
		memcpy(list + at, " ...", 5);
	}
}

/* Notes a dump that failed (db, or the globals when NULL): its name goes to the
 * list, the first failure's message to first. */
static void note_failed(const char *db, char *list, size_t cap, char *first, size_t fcap,
			size_t *nfailed)
{
	if (!(*nfailed)++)
		snprintf(first, fcap, "%s", bk_error_detail());
	list_add(list, cap, db);
}

int bk_pg_dump(BkRepo *r, const BkDumpOpts *o)
{
	if (!bk_cluster_name_valid(o->cluster))
		return bk_errorf(BK_E_USAGE, "invalid cluster name '%s'", o->cluster);
	/* libpq reads it from no file and no environment variable: pg_dump could get it
	 * only on its command line, which every local user sees */
	if (bk_pg_conninfo_sets(o->conninfo, "sslpassword"))
		return bk_errorf(BK_E_USAGE, "sslpassword in the connection string would be on "
				 "each pg_dump's command line, which every local user can read: give "
				 "a client key without a passphrase, readable by this user only");
	char version[16];
	char *dbs = NULL, *closed = NULL;
	uint64_t sysid = 0;
	uint32_t seg_size = 0;
	unsigned keepalives = 0;
	int e = bk_libpq_load();
	if (e == 0)
		e = list_databases(o, &dbs, &closed, version, sizeof(version), &sysid, &seg_size,
				   &keepalives);
	if (e < 0)
		return e;
	for (char *db = closed; o->warn && *db; db += strlen(db) + 1) {
		char msg[512];
		snprintf(msg, sizeof(msg), "database '%s' is not dumped: it does not accept "
			 "connections (ALLOW_CONNECTIONS false)", db);
		o->warn(o->warn_ud, msg);
	}
	free(closed);
	char *ci = malloc(CONNINFO_MAX), prog[4096], name[512], sysid_s[32];
	if (!ci)
		e = -ENOMEM;
	/* the password (if any) reaches the programs in PGPASSWORD, never argv: the
	 * environment is built once for all of them */
	char *password = NULL, *pw_var = NULL, **env = NULL;
	if (e == 0)
		e = bk_pg_conninfo_split(o->conninfo, NULL, 0, ci, CONNINFO_MAX, &password);
	if (e == 0 && !(env = child_env(password, &pw_var)))
		e = -ENOMEM;
	if (password)
		explicit_bzero(password, strlen(password));
	free(password);
	snprintf(sysid_s, sizeof(sysid_s), "%llu", (unsigned long long)sysid);
	if (e == 0)
		e = check_program(o->bin_dir, "pg_dump", env, atoi(version));
	if (e == 0)
		e = check_program(o->bin_dir, "pg_dumpall", env, atoi(version));
	char claimed[BK_CLUSTER_WARNING_MAX] = "";
	if (e == 0 && sysid)
		e = bk_cluster_claim(r, o->cluster, sysid, seg_size, claimed);
	if (e == 0 && claimed[0] && o->warn)
		o->warn(o->warn_ud, claimed);
	/* A database whose pg_dump fails (dropped meanwhile, say) does not cost the
	 * others or the globals: they are dumped, and the failure reported at the end.
	 * Any other error (the repository's) stops at once. */
	size_t ndumps = 0, nfailed = 0;
	char failed[512] = "", first[512] = "";
	const char *left_from = NULL; /* the first database an error left undumped */
	for (char *db = dbs; e == 0 && db && *db; db += strlen(db) + 1) {
		ndumps++;
		if ((e = bk_pg_conninfo_split(o->conninfo, db, keepalives, ci, CONNINFO_MAX, NULL)) < 0) {
			bk_error_wrap(e, "database '%s'", db);
			left_from = db;
			break;
		}
		program(prog, sizeof(prog), o->bin_dir, "pg_dump");
		char *argv[] = { prog, "--format=custom", "--compress=0", "--no-password",
				 "--dbname", ci, NULL };
		snprintf(name, sizeof(name), "pg/%s/dump/%s", o->cluster, db);
		BkKv meta[] = { { "database", db }, { "format", "custom" },
				{ "server_version", version }, { "system_identifier", sysid_s } };
		uint8_t id[32];
		e = run_into_snapshot(r, o, argv, env, name, "pg_dump", meta, BK_ARRAY_SIZE(meta), id);
		if (e == BK_E_REMOTE) { /* this database's pg_dump: the next goes on */
			note_failed(db, failed, sizeof(failed), first, sizeof(first), &nfailed);
			e = 0;
		} else if (e < 0) {
			bk_error_wrap(e, "database '%s'", db);
			left_from = db + strlen(db) + 1;
		} else if (o->done) {
			o->done(o->done_ud, name, id);
		}
	}
	/* what that error leaves undumped, named (found by a helper's exploration: a
	 * full disk stopped it without saying which were not attempted) */
	char left[512] = "";
	for (const char *d = left_from ? left_from : ""; *d; d += strlen(d) + 1)
		list_add(left, sizeof(left), d);
	if (left_from)
		list_add(left, sizeof(left), NULL);
	/* pg_dumpall ignores the string's dbname, and reads the globals through
	 * postgres (or template1) unless -l names another: the one the user named, which
	 * may be the only one its role can connect to. -l is given as dbname='NAME':
	 * pg_dumpall reads a bare one with '=' (or a URI's prefix) as a connection
	 * string (found by review: a database named a=b failed the globals) */
	char *named_db = NULL, named[CONNINFO_MAX] = ""; /* (a dbname ci holds, this holds) */
	if (e == 0 && bk_pg_conninfo_get(o->conninfo, "dbname", &named_db) < 0)
		e = -ENOMEM;
	if (e == 0 && named_db)
		e = bk_pg_conninfo_pair("dbname", named_db, named, sizeof(named));
	if (e == 0 && (e = bk_pg_conninfo_split(o->conninfo, NULL, keepalives, ci, CONNINFO_MAX,
						 NULL)) == 0) {
		program(prog, sizeof(prog), o->bin_dir, "pg_dumpall");
		char *argv[] = { prog, "--globals-only", "--no-password", "--dbname", ci,
				 named_db ? "-l" : NULL, named, NULL };
		snprintf(name, sizeof(name), "pg/%s/globals", o->cluster);
		BkKv meta[] = { { "format", "plain" }, { "server_version", version },
				{ "system_identifier", sysid_s } };
		uint8_t id[32];
		ndumps++;
		e = run_into_snapshot(r, o, argv, env, name, "pg_dumpall", meta, BK_ARRAY_SIZE(meta),
				      id);
		if (e == BK_E_REMOTE) {
			note_failed(NULL, failed, sizeof(failed), first, sizeof(first), &nfailed);
			e = 0;
		} else if (e < 0) { /* named, as a database's is */
			bk_error_wrap(e, "the globals");
		} else if (o->done) {
			o->done(o->done_ud, name, id);
		}
	}
	if (e == 0 && nfailed) {
		e = bk_errorf(BK_E_REMOTE, "%zu of %zu dumps failed (%s)%s: %s", nfailed, ndumps, failed,
			      nfailed < ndumps ? "; the others were saved" : "", first);
	} else if (e < 0 && (nfailed || left[0])) { /* the error that stopped it, those before,
						     * and those it left */
		char why[512], before[600] = "";
		snprintf(why, sizeof(why), "%s", bk_error_detail());
		if (nfailed)
			snprintf(before, sizeof(before), " (and before it %zu dumps failed: %s)", nfailed,
				 failed);
		e = bk_errorf(e, "%s%s%s%s", why, before, left[0] ? "; not attempted: " : "", left);
	}
	free(named_db);
	if (pw_var)
		explicit_bzero(pw_var, strlen(pw_var));
	free(pw_var);
	free(env);
	free(ci);
	free(dbs);
	return e;
}
