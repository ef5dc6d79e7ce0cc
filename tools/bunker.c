/* bunker: the command-line interface. Parses options, calls libbunker, prints,
 * and chooses the exit code (see usage()). Secrets never come from argv. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "store/archiver.h"
#include "store/check.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/keyslot.h"
#include "store/repo.h"
#include "store/restorer.h"
#include "store/util.h"
#include "tools/cli.h"

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2, EXIT_NOTFOUND = 3, EXIT_BADKEY = 4, EXIT_CORRUPT = 5 };

static const char usage_text[] =
	"usage: bunker [options] COMMAND [args]\n"
	"\n"
	"commands:\n"
	"  init [--chunk-size AVG]            create a repository (AVG: 16K, 32K, 64K...)\n"
	"  key add [--new-key-file F | --new-password-file F]\n"
	"  key list | key remove SLOT\n"
	"  backup [--name N] [--tag T]... PATH...\n"
	"  backup --stdin --name N [--stdin-filename F]\n"
	"  snapshots [--name N] [--json]\n"
	"  ls SNAPSHOT [PATH]                 list a snapshot's files\n"
	"  cat SNAPSHOT [PATH]                write a stream or one file to stdout\n"
	"  restore SNAPSHOT --target DIR [--include PATH]...\n"
	"  check [--read-data]                verify the repository\n"
	"  repair index                       rebuild the index from the packs\n"
	"  stats [--json]\n"
	"\n"
	"PostgreSQL (--cluster NAME, default main):\n"
	"  pg wal-push PATH                   archive_command: store one WAL file\n"
	"  pg wal-fetch [--read-ahead] NAME DEST\n"
	"                                     restore_command: fetch one WAL file\n"
	"                                     (--read-ahead: the next segments are fetched\n"
	"                                     into a spool beside DEST while the server\n"
	"                                     replays, by a pg wal-read-ahead SPOOL of its own)\n"
	"  pg basebackup --dbname CONNINFO [--fast-checkpoint] [--no-reuse] [--archive-timeout SECS]\n"
	"             [--max-rate RATE] [--stall-timeout SECS] [--no-verify-checksums]\n"
	"                                     (--archive-timeout: how long to wait, default\n"
	"                                     60 s, for the backup's WAL when the cluster\n"
	"                                     archives into the repository, 0: the server\n"
	"                                     waits; RATE caps what the server sends, in kB/s\n"
	"                                     or with a suffix k or M; --stall-timeout: fail\n"
	"                                     when the server sends nothing that long, or\n"
	"                                     to connect, default 300 s, 0: never;\n"
	"                                     --no-verify-checksums:\n"
	"                                     a page failing its checksum does not fail\n"
	"                                     the backup)\n"
	"  pg dump --dbname CONNINFO [--stall-timeout SECS]\n"
	"                                     pg_dump of every database, and the globals\n"
	"                                     (pg_dump from BUNKER_PG_BIN if not empty, else PATH;\n"
	"                                     --stall-timeout: stop a pg_dump that writes\n"
	"                                     nothing that long, and bound the time to\n"
	"                                     connect, default 3600 s, 0: never)\n"
	"  pg restore [SNAPSHOT|latest] --target DIR [--target-time T | --target-lsn L |\n"
	"             --target-xid X | --target-name N] [--target-action promote|pause|shutdown]\n"
	"             [--target-timeline latest|current|ID]\n"
	"             [--archive-mode preserve|off]  (off: for a trial restore beside the original)\n"
	"             [--tablespace-mapping OLD=NEW]...  (a tablespace restored elsewhere)\n"
	"             [--owner USER]  (as root: whose the files are; default: the backup's)\n"
	"                                     point-in-time restore of a base backup\n"
	"  pg info [--json]                   backups, WAL per timeline, gaps, RPO\n"
	"\n"
	"SNAPSHOT is an id, a unique id prefix (4+ hex digits) or 'latest' (narrowed by --name).\n"
	"\n"
	"options:\n"
	"  --repo PATH             repository (or BUNKER_REPO)\n"
	"  --key-file F            key file (or BUNKER_KEY_FILE)\n"
	"  --password-file F       passphrase in a file (or BUNKER_PASSWORD_FILE)\n"
	"  --password-command CMD  passphrase printed by a command (or BUNKER_PASSWORD_COMMAND)\n"
	"                          (one of these three; an option replaces the variables)\n"
	"  --new-key-file F        with init or key add: create a random key file F (mode 0600)\n"
	"  --json                  machine-readable output: snapshots, stats, pg info, and the\n"
	"                          summary of backup, pg basebackup and pg dump\n"
	"  -q, --quiet             no progress line\n"
	"Without any of these secrets, the passphrase is asked on the terminal.\n"
	"Every command takes --repo, a secret and -q; any other option it does not take\n"
	"is refused, as is an option with a value given twice (but for the lists --tag,\n"
	"--include and --tablespace-mapping).\n"
	"\n"
	"exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 wrong passphrase or key,\n"
	"            5 corruption found; 141 cat into a reader that stopped early;\n"
	"            pg wal-fetch: 3 not in the archive, 128 any other failure\n";

/* ---- errors and exit codes ---- */

static int exit_code(int e)
{
	switch (e) {
	case 0: return EXIT_OK;
	case BK_E_BADKEY: return EXIT_BADKEY;
	case BK_E_CORRUPT:
	case BK_E_VERSION: return EXIT_CORRUPT;
	case BK_E_USAGE: return EXIT_USAGE;
	case -ENOENT: return EXIT_NOTFOUND;
	default: return EXIT_ERR;
	}
}

/* Prints "bunker: <prefix><what>: <detail>" on stderr as one line, whatever a
 * server or library put in the detail: runs of newlines and tabs become one
 * space, other control bytes are escaped (cli_text). */
static void print_line(const char *prefix, const char *what, const char *detail)
{
	char line[1200], text[4 * sizeof(line)], wtext[4 * 512];
	bk_one_line(line, sizeof(line), detail);
	fprintf(stderr, "bunker: %s%s%s%s\n", prefix, cli_text(what, wtext, sizeof(wtext)),
		what[0] && line[0] ? ": " : "", cli_text(line, text, sizeof(text)));
}

int cli_fail(int e, const char *fmt, ...)
{
	char what[512] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(what, sizeof(what), fmt, ap);
		va_end(ap);
	}
	const char *d = bk_error_detail();
	print_line("", what, d[0] ? d : bk_strerror(e));
	return exit_code(e);
}

void cli_warn(const char *fmt, ...)
{
	char msg[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cli_progress_end();
	print_line("warning: ", "", msg);
}

int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bunker: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'bunker --help')\n");
	return EXIT_USAGE;
}

/* ---- options ---- */

enum {
	OPT_REPO = 1000, OPT_KEYFILE, OPT_PWFILE, OPT_PWCMD, OPT_NEWKEY, OPT_NEWPW, OPT_JSON,
	OPT_NAME, OPT_TAG, OPT_STDIN, OPT_STDIN_NAME, OPT_TARGET, OPT_INCLUDE, OPT_READ_DATA,
	OPT_CHUNK, OPT_CLUSTER, OPT_DBNAME, OPT_FAST, OPT_NOREUSE, OPT_NOVERIFY, OPT_ARCHIVE_TIMEOUT, OPT_MAX_RATE,
	OPT_STALL_TIMEOUT, OPT_TTIME, OPT_TLSN, OPT_TXID, OPT_TNAME, OPT_TACTION, OPT_TTIMELINE, OPT_ARCHIVE_MODE, OPT_TSMAP, OPT_OWNER, OPT_READ_AHEAD, OPT_HELP,
};

static const struct option long_opts[] = {
	{ "repo", required_argument, NULL, OPT_REPO },
	{ "key-file", required_argument, NULL, OPT_KEYFILE },
	{ "password-file", required_argument, NULL, OPT_PWFILE },
	{ "password-command", required_argument, NULL, OPT_PWCMD },
	{ "new-key-file", required_argument, NULL, OPT_NEWKEY },
	{ "new-password-file", required_argument, NULL, OPT_NEWPW },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "tag", required_argument, NULL, OPT_TAG },
	{ "stdin", no_argument, NULL, OPT_STDIN },
	{ "stdin-filename", required_argument, NULL, OPT_STDIN_NAME },
	{ "target", required_argument, NULL, OPT_TARGET },
	{ "include", required_argument, NULL, OPT_INCLUDE },
	{ "read-data", no_argument, NULL, OPT_READ_DATA },
	{ "chunk-size", required_argument, NULL, OPT_CHUNK },
	{ "cluster", required_argument, NULL, OPT_CLUSTER },
	{ "dbname", required_argument, NULL, OPT_DBNAME },
	{ "fast-checkpoint", no_argument, NULL, OPT_FAST },
	{ "no-reuse", no_argument, NULL, OPT_NOREUSE },
	{ "no-verify-checksums", no_argument, NULL, OPT_NOVERIFY },
	{ "archive-timeout", required_argument, NULL, OPT_ARCHIVE_TIMEOUT },
	{ "max-rate", required_argument, NULL, OPT_MAX_RATE },
	{ "stall-timeout", required_argument, NULL, OPT_STALL_TIMEOUT },
	{ "target-time", required_argument, NULL, OPT_TTIME },
	{ "target-lsn", required_argument, NULL, OPT_TLSN },
	{ "target-xid", required_argument, NULL, OPT_TXID },
	{ "target-name", required_argument, NULL, OPT_TNAME },
	{ "target-action", required_argument, NULL, OPT_TACTION },
	{ "target-timeline", required_argument, NULL, OPT_TTIMELINE },
	{ "archive-mode", required_argument, NULL, OPT_ARCHIVE_MODE },
	{ "owner", required_argument, NULL, OPT_OWNER },
	{ "tablespace-mapping", required_argument, NULL, OPT_TSMAP },
	{ "read-ahead", no_argument, NULL, OPT_READ_AHEAD },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};
/* ':' first: an option missing its argument returns ':', told apart from an
 * unknown one (both returned '?', and the message said "unknown option") */
static const char short_opts[] = ":qh";

/* The long name of option val (getopt_long's optopt), NULL for none: in full, as
 * argv may hold an abbreviation (--clus). */
static const char *opt_name(int val)
{
	for (const struct option *o = long_opts; o->name; o++)
		if (o->val == val)
			return o->name;
	return NULL;
}

/* The options each command reads, beyond those every command takes (--repo, a
 * secret, -q, --help): any other is refused, not ignored (found by review: `pg
 * info --target-time garbage --max-rate abc` exited 0). A command that is not
 * here is refused by its own dispatch, naming it. */
#define OPT_BIT(opt) (UINT64_C(1) << ((opt) - OPT_REPO))
_Static_assert(OPT_HELP - OPT_REPO < 64, "an option's bit fits in a uint64_t");
#define PG_OPTS OPT_BIT(OPT_CLUSTER)
static const struct {
	const char *cmd, *sub; /* sub: the first argument (NULL: any) */
	uint64_t opts;
} cmd_opts[] = {
	{ "init", NULL, OPT_BIT(OPT_CHUNK) | OPT_BIT(OPT_NEWKEY) },
	{ "key", "add", OPT_BIT(OPT_NEWKEY) | OPT_BIT(OPT_NEWPW) },
	{ "key", "list", 0 },
	{ "key", "remove", 0 },
	{ "backup", NULL, OPT_BIT(OPT_NAME) | OPT_BIT(OPT_TAG) | OPT_BIT(OPT_STDIN) |
				  OPT_BIT(OPT_STDIN_NAME) | OPT_BIT(OPT_JSON) },
	{ "snapshots", NULL, OPT_BIT(OPT_NAME) | OPT_BIT(OPT_JSON) },
	{ "ls", NULL, OPT_BIT(OPT_NAME) },
	{ "cat", NULL, OPT_BIT(OPT_NAME) },
	{ "restore", NULL, OPT_BIT(OPT_NAME) | OPT_BIT(OPT_TARGET) | OPT_BIT(OPT_INCLUDE) },
	{ "check", NULL, OPT_BIT(OPT_READ_DATA) },
	{ "repair", NULL, 0 },
	{ "stats", NULL, OPT_BIT(OPT_JSON) },
	{ "pg", "wal-push", PG_OPTS },
	{ "pg", "wal-fetch", PG_OPTS | OPT_BIT(OPT_READ_AHEAD) },
	{ "pg", "wal-read-ahead", PG_OPTS },
	{ "pg", "basebackup", PG_OPTS | OPT_BIT(OPT_DBNAME) | OPT_BIT(OPT_FAST) |
				      OPT_BIT(OPT_NOREUSE) | OPT_BIT(OPT_NOVERIFY) | OPT_BIT(OPT_ARCHIVE_TIMEOUT) |
				      OPT_BIT(OPT_MAX_RATE) | OPT_BIT(OPT_STALL_TIMEOUT) | OPT_BIT(OPT_JSON) },
	{ "pg", "dump", PG_OPTS | OPT_BIT(OPT_DBNAME) | OPT_BIT(OPT_STALL_TIMEOUT) | OPT_BIT(OPT_JSON) },
	{ "pg", "restore", PG_OPTS | OPT_BIT(OPT_TARGET) | OPT_BIT(OPT_TTIME) | OPT_BIT(OPT_TLSN) |
				   OPT_BIT(OPT_TXID) | OPT_BIT(OPT_TNAME) | OPT_BIT(OPT_TACTION) |
				   OPT_BIT(OPT_TTIMELINE) | OPT_BIT(OPT_ARCHIVE_MODE) | OPT_BIT(OPT_TSMAP) |
				   OPT_BIT(OPT_OWNER) },
	{ "pg", "info", PG_OPTS | OPT_BIT(OPT_JSON) },
};
#define EVERY_CMD_OPTS \
	(OPT_BIT(OPT_REPO) | OPT_BIT(OPT_KEYFILE) | OPT_BIT(OPT_PWFILE) | OPT_BIT(OPT_PWCMD) | \
	 OPT_BIT(OPT_HELP))

/* The options that may be given more than once: the lists, and the flags (a
 * second says the same). A second value of any other would silently replace the
 * first (found by review: `pg restore --target A --target B` restored to B; a
 * first --dbname kept its password visible in ps, hide_password hid the last). */
#define LIST_OPTS (OPT_BIT(OPT_TAG) | OPT_BIT(OPT_INCLUDE) | OPT_BIT(OPT_TSMAP))

static bool repeatable(int val)
{
	for (const struct option *o = long_opts; o->name; o++)
		if (o->val == val)
			return o->has_arg == no_argument || (OPT_BIT(val) & LIST_OPTS);
	return true;
}

/* The options given, each once, in the order given (OPT_REPO...). */
typedef struct {
	int opt[OPT_HELP - OPT_REPO + 1];
	size_t n;
	uint64_t bits;
} Given;

/* Refuses the first option in g that command cmd (with cli.args) does not take.
 * Returns 0 or the exit code. */
static int check_options(const char *cmd, const Given *g)
{
	const char *sub = cli.nargs ? cli.args[0] : "";
	for (size_t i = 0; i < BK_ARRAY_SIZE(cmd_opts); i++) {
		if (strcmp(cmd, cmd_opts[i].cmd) || (cmd_opts[i].sub && strcmp(sub, cmd_opts[i].sub)))
			continue;
		for (size_t k = 0; k < g->n; k++)
			if (!(OPT_BIT(g->opt[k]) & (cmd_opts[i].opts | EVERY_CMD_OPTS)))
				return usage_error("%s%s%s does not take --%s", cmd, cmd_opts[i].sub ? " " : "",
						   cmd_opts[i].sub ? sub : "", opt_name(g->opt[k]));
		return 0;
	}
	return 0;
}

#define MAX_LIST 256

Cli cli;

static int add_list(const char **list, size_t *n, const char *v, const char *what)
{
	if (*n >= MAX_LIST)
		return usage_error("too many %s options", what);
	list[(*n)++] = v;
	return 0;
}

/* ---- secrets ---- */

static int read_tty_passphrase(const char *prompt, char *buf, size_t cap)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -ENXIO;
	struct termios old, raw;
	bool restore = tcgetattr(fd, &old) == 0;
	if (restore) {
		raw = old;
		raw.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &raw);
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		/* nothing to do: the read below still works */
	}
	size_t n = 0;
	char c;
	while (n + 1 < cap && read(fd, &c, 1) == 1 && c != '\n')
		buf[n++] = c;
	buf[n] = '\0';
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* ignore */
	}
	close(fd);
	return (int)n;
}

/* The passphrase: the file's first line, read into sodium_malloc'd memory. The
 * file obeys a key file's rules (bk_secret_file_open): a regular file, not a link,
 * mode 0600 or stricter. */
static int passphrase_from_file(const char *path, BkSecret **ret)
{
	enum { CAP = 4096 };
	int fd;
	int e = bk_secret_file_open(path, "password file", &fd);
	if (e < 0)
		return e;
	char *buf = sodium_malloc(CAP + 1);
	size_t len = 0;
	if (!buf)
		e = -ENOMEM;
	else if ((e = bk_read_full(fd, buf, CAP + 1, &len)) < 0)
		e = bk_errorf_code(e, "read password file %s", path);
	close(fd);
	if (e == 0 && len > CAP)
		e = bk_errorf(-EFBIG, "password file %s: larger than %d bytes", path, CAP);
	if (e == 0) {
		buf[len] = '\0';
		size_t n = strcspn(buf, "\r\n");
		e = n == 0 ? bk_errorf(BK_E_USAGE, "password file %s is empty", path)
			   : bk_secret_new(BK_SECRET_PASSPHRASE, buf, n, ret);
	}
	if (buf)
		sodium_free(buf);
	return e;
}

static int passphrase_from_command(const char *cmd, BkSecret **ret)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return bk_errorf_code(-errno, "password command");
	setvbuf(p, NULL, _IONBF, 0); /* read straight into buf: no copy in stdio's buffer */
	char *buf = sodium_malloc(4096);
	if (!buf) {
		pclose(p);
		return -ENOMEM;
	}
	size_t n = fread(buf, 1, 4095, p);
	int status = pclose(p);
	buf[n] = '\0';
	n = strcspn(buf, "\r\n");
	int e;
	if (status != 0 && WIFEXITED(status))
		e = bk_errorf(BK_E_USAGE, "password command exited with %d", WEXITSTATUS(status));
	else if (status != 0 && WIFSIGNALED(status))
		e = bk_errorf(BK_E_USAGE, "password command killed by signal %d", WTERMSIG(status));
	else if (status != 0) /* (pclose's -1: it could not wait) */
		e = bk_errorf(BK_E_USAGE, "password command failed (status %d)", status);
	else if (n == 0)
		e = bk_errorf(BK_E_USAGE, "password command printed nothing");
	else
		e = bk_secret_new(BK_SECRET_PASSPHRASE, buf, n, ret);
	sodium_free(buf);
	return e;
}

static int secret_from_tty(bool confirm, BkSecret **ret)
{
	char *a = sodium_malloc(1024), *b = sodium_malloc(1024);
	int e = a && b ? 0 : -ENOMEM;
	if (e == 0) {
		int n = read_tty_passphrase("passphrase: ", a, 1024);
		if (n < 0)
			e = bk_errorf(BK_E_USAGE, "no key or passphrase given (use --key-file, --password-file or --password-command)");
		else if (n == 0)
			e = bk_errorf(BK_E_USAGE, "empty passphrase");
		else if (confirm && (read_tty_passphrase("again: ", b, 1024) < 0 || strcmp(a, b) != 0))
			e = bk_errorf(BK_E_USAGE, "passphrases do not match");
		else
			e = bk_secret_new(BK_SECRET_PASSPHRASE, a, (size_t)n, ret);
	}
	if (a)
		sodium_free(a);
	if (b)
		sodium_free(b);
	return e;
}

/* The secret that opens the repository (or, for init, creates its first slot). */
static int get_secret(bool creating, BkSecret **ret)
{
	if (creating && cli.new_key_file)
		return bk_keyfile_create(cli.new_key_file, ret);
	if (cli.key_file)
		return bk_secret_from_keyfile(cli.key_file, ret);
	if (cli.password_file)
		return passphrase_from_file(cli.password_file, ret);
	if (cli.password_command)
		return passphrase_from_command(cli.password_command, ret);
	return secret_from_tty(creating, ret);
}

int cli_open_repo(BkRepo **ret)
{
	return cli_open_repo_ex(0, ret);
}

int cli_open_repo_ex(unsigned flags, BkRepo **ret)
{
	if (!cli.repo)
		return bk_errorf(BK_E_USAGE, "no repository given (use --repo or BUNKER_REPO)");
	BkSecret *s;
	int e = get_secret(false, &s);
	if (e < 0)
		return e;
	e = bk_repo_open_ex(cli.repo, s, flags, ret);
	bk_secret_free(s);
	if (e == BK_E_BADKEY && cli.key_file) /* which one (BUNKER_KEY_FILE may have named it) */
		e = bk_errorf(e, "%s: wrong key file %s", cli.repo, cli.key_file);
	if (e == -EACCES) { /* say who, and what fixes it */
		char why[1024];
		snprintf(why, sizeof(why), "%s", bk_error_detail());
		struct passwd *pw = getpwuid(geteuid());
		e = bk_errorf(e, "user %s (uid %u) cannot open repository %s: %s (the repository "
			      "must be this user's, or shared through its group)",
			      pw ? pw->pw_name : "?", (unsigned)geteuid(), cli.repo, why);
	}
	return e;
}

/* ---- progress ---- */

/* when the first report was shown, and what it said was done */
static uint64_t progress_started, progress_last, progress_first_done;

bool cli_progress_due(uint64_t *last)
{
	if (cli.quiet || !isatty(STDERR_FILENO))
		return false;
	uint64_t now = bk_mono_us();
	if (now - *last < 200000)
		return false;
	*last = now;
	return true;
}

void cli_progress(void *ud, uint64_t done, uint64_t total)
{
	if (!cli_progress_due(&progress_last))
		return;
	char text[CLI_TEXT_MAX], label[72] = ""; /* "NAME: ", NAME cut to 64 bytes */
	if (ud && *(const char *)ud) {
		const char *t = cli_text(ud, text, sizeof(text));
		int n = (int)strlen(t);
		if (n > 64) /* (on a character's start) */
			for (n = 64; n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80; n--)
				;
		snprintf(label, sizeof(label), "%.*s: ", n, t);
	}
	uint64_t now = progress_last;
	if (!progress_started) { /* (the first call is due: progress_last was 0) */
		progress_started = now;
		progress_first_done = done;
	}
	/* the rate since the first report: what came before it took time not counted
	 * here (found by review: a base backup's first report comes after 1 s of data,
	 * and --max-rate 8M showed 16.8, 12.6, 11.1 ... MB/s; and "ETA 0s" while none
	 * was known) */
	double secs = (double)(now - progress_started) / 1e6;
	double rate = secs > 0 && done > progress_first_done
			      ? (double)(done - progress_first_done) / 1e6 / secs
			      : 0;
	/* an estimate the input outgrew (a base backup's files written after the
	 * server sized them): the total is what has come, as pg_basebackup shows it
	 * (found by review: total - done wrapped, "ETA 1836890783043s") */
	if (total && done > total)
		total = done;
	if (total && rate > 0)
		fprintf(stderr, "\r%s%.1f / %.1f MB  %.1f MB/s  ETA %.0fs   ", label, (double)done / 1e6,
			(double)total / 1e6, rate, ((double)(total - done) / 1e6) / rate);
	else if (total)
		fprintf(stderr, "\r%s%.1f / %.1f MB  %.1f MB/s  ETA -   ", label, (double)done / 1e6,
			(double)total / 1e6, rate);
	else
		fprintf(stderr, "\r%s%.1f MB  %.1f MB/s   ", label, (double)done / 1e6, rate);
}

void cli_progress_end(void)
{
	if (progress_last && !cli.quiet && isatty(STDERR_FILENO))
		fprintf(stderr, "\r\033[K");
	progress_started = progress_last = 0;
}

/* ---- commands ---- */

int print_snapshot_summary(BkRepo *r, const uint8_t id[32], uint64_t started_us)
{
	BkSnapshot *s;
	int e = bk_snapshot_load(r, id, &s);
	if (e < 0)
		return cli_fail(e, "snapshot %s", bk_id_hex(id).s);
	double secs = (double)(started_us ? bk_mono_us() - started_us : s->duration_us) / 1e6;
	double saved = s->logical_bytes ? 100.0 * (1.0 - (double)s->new_bytes / (double)s->logical_bytes) : 0;
	char name[CLI_TEXT_MAX];
	if (cli.json) {
		printf("{\"snapshot\":\"%s\",\"name\":", bk_id_hex(id).s);
		cli_json_str(s->name);
		printf(",\"logical_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64 ",\"files\":%" PRIu64
		       ",\"seconds\":%.3f}\n",
		       s->logical_bytes, s->new_bytes, s->files, secs);
	} else if (saved >= 0) {
		printf("snapshot %.16s saved (%s): %.1f MB read, %.1f MB stored, dedup and compression saved %.1f%%, %.1f MB/s\n",
		       bk_id_hex(id).s, cli_text(s->name, name, sizeof(name)),
		       (double)s->logical_bytes / 1e6, (double)s->new_bytes / 1e6, saved,
		       secs > 0 ? (double)s->logical_bytes / 1e6 / secs : 0);
	} else { /* a small input: the snapshot's own blobs outweigh it */
		printf("snapshot %.16s saved (%s): %.1f MB read, %.1f MB stored (tree and record included), %.1f MB/s\n",
		       bk_id_hex(id).s, cli_text(s->name, name, sizeof(name)),
		       (double)s->logical_bytes / 1e6, (double)s->new_bytes / 1e6,
		       secs > 0 ? (double)s->logical_bytes / 1e6 / secs : 0);
	}
	/* (found by trying README's example as root: pg_dump failed, and the pipe
	 * saved an empty snapshot, which latest then names) */
	if (s->logical_bytes == 0 && !strcmp(s->kind, "stdin"))
		cli_warn("snapshot %.16s holds nothing: the input was empty (did the command "
			 "before the pipe fail?)", bk_id_hex(id).s);
	bk_snapshot_free(s);
	return 0;
}

static int parse_size(const char *s, uint32_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		v <<= 20, end++;
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end || v == 0 || v > (64u << 20))
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int cmd_init(void)
{
	if (cli.nargs)
		return usage_error("init takes no arguments");
	if (!cli.repo)
		return usage_error("no repository given (use --repo or BUNKER_REPO)");
	BkRepoParams p;
	bk_repo_params_default(&p);
	if (cli.chunk_size) {
		uint32_t avg;
		if (parse_size(cli.chunk_size, &avg) < 0 || (avg & (avg - 1)) || avg < 4096 ||
		    avg > (4u << 20))
			return usage_error("--chunk-size %s: want a power of two from 4K to 4M", cli.chunk_size);
		p.chunk_avg = avg;
		p.chunk_min = avg / 4;
		p.chunk_max = avg * 4;
	}
	BkSecret *s;
	int e = get_secret(true, &s);
	if (e < 0)
		return cli_fail(e, NULL);
	BkRepo *r;
	e = bk_repo_create(cli.repo, s, &p, &r);
	bk_secret_free(s);
	if (e < 0) {
		/* the key file this run made opens nothing (the config, written last and
		 * atomically, is not this run's): a retry must not meet it */
		if (cli.new_key_file)
			unlink(cli.new_key_file);
		return cli_fail(e, "init %s", cli.repo);
	}
	printf("created repository %s (chunks %u/%u/%u bytes, zstd:%d)\n", cli.repo, p.chunk_min,
	       p.chunk_avg, p.chunk_max, p.zstd_level);
	bk_repo_close(r);
	return 0;
}

static int print_slot(void *ud, const char *slot, BkSecretKind kind, int64_t created, int status)
{
	(void)ud;
	char when[64] = "?";
	time_t t = (time_t)(created / 1000000);
	struct tm tm;
	if (status == 0 && gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	char text[CLI_TEXT_MAX];
	printf("%s  %-10s  %s%s\n", cli_text(slot, text, sizeof(text)),
	       status < 0 ? "damaged" : kind == BK_SECRET_KEYFILE ? "key-file" : "passphrase", when,
	       status < 0 ? "  (run 'bunker check')" : "");
	return 0;
}

static int cmd_key(void)
{
	if (cli.nargs < 1)
		return usage_error("key needs add, list or remove");
	const char *sub = cli.args[0];
	BkRepo *r;
	int e;
	if (!strcmp(sub, "add")) {
		if (cli.nargs != 1)
			return usage_error("key add takes no arguments");
		BkSecret *s = NULL;
		if (cli.new_key_file)
			e = 0;
		else if (cli.new_password_file)
			e = passphrase_from_file(cli.new_password_file, &s);
		else
			e = 0;
		if (e < 0)
			return cli_fail(e, NULL);
		if ((e = cli_open_repo(&r)) < 0) {
			bk_secret_free(s);
			return cli_fail(e, NULL);
		}
		if (cli.new_key_file)
			e = bk_keyfile_create(cli.new_key_file, &s);
		else if (!s)
			e = secret_from_tty(true, &s);
		char slot[17];
		bool made = e == 0 && cli.new_key_file;
		if (e == 0)
			e = bk_repo_key_add(r, s, slot);
		bk_secret_free(s);
		bk_repo_close(r);
		if (e < 0 && made)
			unlink(cli.new_key_file); /* it opens nothing */
		if (e < 0)
			return cli_fail(e, "key add");
		printf("added key slot %s\n", slot);
		return 0;
	}
	if (!strcmp(sub, "list")) {
		if ((e = cli_open_repo(&r)) < 0)
			return cli_fail(e, NULL);
		e = bk_repo_key_list(r, print_slot, NULL);
		bk_repo_close(r);
		return e < 0 ? cli_fail(e, "key list") : 0;
	}
	if (!strcmp(sub, "remove")) {
		if (cli.nargs != 2)
			return usage_error("key remove needs one SLOT");
		if ((e = cli_open_repo(&r)) < 0)
			return cli_fail(e, NULL);
		e = bk_repo_key_remove(r, cli.args[1]);
		bk_repo_close(r);
		if (e < 0)
			return cli_fail(e, "key remove");
		printf("removed key slot %s\n", cli.args[1]);
		return 0;
	}
	return usage_error("unknown key command '%s'", sub);
}

static void backup_warn(void *ud, const char *msg)
{
	(void)ud;
	cli_warn("%s", msg);
}

static int cmd_backup(void)
{
	if (cli.use_stdin ? cli.nargs != 0 : cli.nargs == 0)
		return usage_error(cli.use_stdin ? "backup --stdin takes no PATH" : "backup needs a PATH or --stdin");
	if (cli.use_stdin && !cli.name)
		return usage_error("backup --stdin needs --name");
	char defname[PATH_MAX];
	const char *name = cli.name;
	if (!name) {
		const char *p = cli.args[0];
		size_t len = strlen(p);
		while (len > 1 && p[len - 1] == '/')
			len--;
		const char *base = p;
		for (size_t i = 0; i + 1 < len; i++)
			if (p[i] == '/')
				base = p + i + 1;
		snprintf(defname, sizeof(defname), "files/%.*s", (int)(len - (size_t)(base - p)), base);
		name = defname;
	}
	for (size_t i = 0; i < cli.nargs; i++) {
		struct stat st;
		if (lstat(cli.args[i], &st) < 0)
			return cli_fail(bk_errorf_code(-errno, "%s", cli.args[i]), "backup");
	}
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0)
		return cli_fail(e, NULL);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	uint8_t parent[32];
	bool has_parent = bk_snapshot_resolve(r, "latest", name, parent) == 0;
	bk_error_clear(); /* no parent is not an error */
	BkArchiveOpts o = {
		.name = name,
		.kind = cli.use_stdin ? "stdin" : "files",
		.host = host,
		.tags = cli.tags,
		.ntags = cli.ntags,
		.parent = has_parent ? parent : NULL,
		.progress = cli_progress,
		.warn = backup_warn,
	};
	uint8_t id[32];
	uint64_t t0 = bk_mono_us();
	if (cli.use_stdin)
		e = bk_archive_fd(r, STDIN_FILENO, cli.stdin_name ? cli.stdin_name : "stdin", &o, id);
	else
		e = bk_archive_paths(r, cli.args, cli.nargs, &o, id);
	cli_progress_end();
	if (e < 0) {
		bk_repo_close(r);
		return cli_fail(e, "backup");
	}
	e = print_snapshot_summary(r, id, t0);
	bk_repo_close(r);
	return e;
}

/* One secret opens the repository: an option naming one replaces what the
 * environment says; two options are an error, not a silent choice. */
static const char **secret_source_given;

static int set_secret_source(const char **slot, const char *value)
{
	if (secret_source_given && secret_source_given != slot)
		return usage_error("give only one of --key-file, --password-file and --password-command");
	secret_source_given = slot;
	cli.key_file = cli.password_file = cli.password_command = NULL;
	*slot = value;
	return 0;
}

/* Makes this process leave no core file and its memory unreadable to other
 * processes of its user (/proc/PID/mem, ptrace), as ssh-agent and gpg-agent do:
 * it holds secrets in ordinary memory too (the --dbname kept, PGPASSWORD). Only
 * the soft core limit is lowered, so that the programs it runs (pg_dump) keep
 * theirs to raise; they get dumpable back at exec. The process itself still uses
 * /proc/self/fd (same thread group). */
static int no_core_dumps(void)
{
	struct rlimit lim;
	if (getrlimit(RLIMIT_CORE, &lim) < 0 ||
	    setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, lim.rlim_max }) < 0)
		return bk_errorf_code(-errno, "disable core dumps");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return bk_errorf_code(-errno, "make the process not dumpable");
	return 0;
}

static int run(int argc, char **argv)
{
	int e0 = no_core_dumps();
	if (e0 < 0)
		return cli_fail(e0, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* SIGCHLD ignored, as exec passes it on from a parent that ignored it (a
	 * supervisor, a script), reaps children unseen: their exit status is how a
	 * failed pg_dump is told from a saved one, and how pg restore learns what the
	 * server's user can reach (found by review: "wait for pg_dump: No child
	 * processes") */
	signal(SIGCHLD, SIG_DFL);
	cli.repo = getenv("BUNKER_REPO");
	cli.cluster = "main";
	cli.key_file = getenv("BUNKER_KEY_FILE");
	cli.password_file = getenv("BUNKER_PASSWORD_FILE");
	cli.password_command = getenv("BUNKER_PASSWORD_COMMAND");
	static const char *tags[MAX_LIST], *includes[MAX_LIST], *ts_mapping[MAX_LIST];
	cli.tags = tags;
	cli.includes = includes;
	cli.ts_mapping = ts_mapping;
	int c;
	Given given = { .n = 0 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
		int e = 0;
		if (c >= OPT_REPO && c <= OPT_HELP && !(given.bits & OPT_BIT(c))) {
			given.bits |= OPT_BIT(c);
			given.opt[given.n++] = c;
		} else if (c >= OPT_REPO && c <= OPT_HELP && !repeatable(c)) {
			return usage_error("option '--%s' given twice", opt_name(c));
		}
		switch (c) {
		case OPT_REPO: cli.repo = optarg; break;
		case OPT_KEYFILE: e = set_secret_source(&cli.key_file, optarg); break;
		case OPT_PWFILE: e = set_secret_source(&cli.password_file, optarg); break;
		case OPT_PWCMD: e = set_secret_source(&cli.password_command, optarg); break;
		case OPT_NEWKEY: cli.new_key_file = optarg; break;
		case OPT_NEWPW: cli.new_password_file = optarg; break;
		case OPT_JSON: cli.json = true; break;
		case 'q': cli.quiet = true; break;
		case OPT_NAME: cli.name = optarg; break;
		case OPT_TAG: e = add_list(tags, &cli.ntags, optarg, "--tag"); break;
		case OPT_STDIN: cli.use_stdin = true; break;
		case OPT_STDIN_NAME: cli.stdin_name = optarg; break;
		case OPT_TARGET: cli.target = optarg; break;
		case OPT_INCLUDE: e = add_list(includes, &cli.nincludes, optarg, "--include"); break;
		case OPT_READ_DATA: cli.read_data = true; break;
		case OPT_CHUNK: cli.chunk_size = optarg; break;
		case OPT_CLUSTER: cli.cluster = optarg; break;
		case OPT_DBNAME: cli.dbname = cli.dbname_argv = optarg; break;
		case OPT_FAST: cli.fast_checkpoint = true; break;
		case OPT_NOREUSE: cli.no_reuse = true; break;
		case OPT_READ_AHEAD: cli.read_ahead = true; break;
		case OPT_NOVERIFY: cli.no_verify_checksums = true; break;
		case OPT_ARCHIVE_TIMEOUT: cli.archive_timeout = optarg; break;
		case OPT_MAX_RATE: cli.max_rate = optarg; break;
		case OPT_STALL_TIMEOUT: cli.stall_timeout = optarg; break;
		case OPT_TTIME: cli.target_time = optarg; break;
		case OPT_TLSN: cli.target_lsn = optarg; break;
		case OPT_TXID: cli.target_xid = optarg; break;
		case OPT_TNAME: cli.target_name = optarg; break;
		case OPT_TACTION: cli.target_action = optarg; break;
		case OPT_TTIMELINE: cli.target_timeline = optarg; break;
		case OPT_ARCHIVE_MODE: cli.archive_mode = optarg; break;
		case OPT_OWNER: cli.owner = optarg; break;
		case OPT_TSMAP:
			e = add_list(ts_mapping, &cli.nts_mapping, optarg, "--tablespace-mapping");
			break;
		case 'h':
		case OPT_HELP: fputs(usage_text, stdout); return EXIT_OK;
		case ':': return usage_error("option '--%s' needs an argument", opt_name(optopt));
		case '?':
			/* optopt: 0 for an unknown long option, else the character of an
			 * unknown short one (argv[optind - 1] is not it when it was inside
			 * "-q=x"), or the value of a known option given an argument */
			if (optopt && opt_name(optopt))
				return usage_error("option '--%s' takes no argument", opt_name(optopt));
			if (optopt)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
		if (e)
			return e;
	}
	if (!secret_source_given && !!cli.key_file + !!cli.password_file + !!cli.password_command > 1)
		return usage_error("more than one of BUNKER_KEY_FILE, BUNKER_PASSWORD_FILE and "
		                   "BUNKER_PASSWORD_COMMAND is set: choose one with an option");
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[optind];
	cli.args = (const char *const *)argv + optind + 1;
	cli.nargs = (size_t)(argc - optind - 1);
	int x = check_options(cmd, &given);
	if (x)
		return x;
	if (bk_crypto_init() < 0)
		return cli_fail(-EIO, NULL);

	static const struct {
		const char *name;
		int (*fn)(void);
	} cmds[] = {
		{ "init", cmd_init },       { "key", cmd_key },         { "backup", cmd_backup },
		{ "snapshots", cmd_snapshots }, { "ls", cmd_ls },         { "cat", cmd_cat },
		{ "restore", cmd_restore }, { "check", cmd_check },     { "repair", cmd_repair },
		{ "stats", cmd_stats },     { "pg", cmd_pg },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(cmds); i++)
		if (!strcmp(cmd, cmds[i].name))
			return cmds[i].fn();
	return usage_error("unknown command '%s'", cmd);
}

/* Whether argv runs pg wal-fetch: its words after a first pass of getopt, which
 * moves the options (wherever they were, valid or not) before them. On a copy:
 * after an error that pass's order differs from the real one's (an option missing
 * its argument at the end would take the command for it: found by CI). The next
 * getopt starts afresh (optind 0, GNU's way). */
static bool runs_wal_fetch(int argc, char **argv)
{
	char **copy = malloc(((size_t)argc + 1) * sizeof(*copy));
	if (!copy)
		return false;
	memcpy(copy, argv, ((size_t)argc + 1) * sizeof(*copy));
	opterr = 0;
	while (getopt_long(argc, copy, short_opts, long_opts, NULL) != -1)
		;
	bool fetch = optind + 1 < argc && !strcmp(copy[optind], "pg") &&
		     !strcmp(copy[optind + 1], "wal-fetch");
	optind = 0;
	free(copy);
	return fetch;
}

int main(int argc, char **argv)
{
	/* as restore_command, a usage error (an unknown option, two secrets) must not
	 * read as "not in the archive" (found by review: it exited 2) */
	bool fetch = runs_wal_fetch(argc, argv);
	int rc = run(argc, argv);
	/* Output that could not be written (`ls > FILE` on a full disk) fails the
	 * command: stdio kept the error to itself and the exit was 0 (found by a
	 * helper's exploration: snapshots, ls, stats, key list and check into
	 * /dev/full all exited 0). A reader that stopped early (EPIPE: `| head`) is
	 * not an error here, as before. */
	errno = 0;
	if ((fflush(stdout) == EOF || ferror(stdout)) && errno != EPIPE && rc == EXIT_OK) {
		print_line("", "write standard output", bk_strerror(errno ? -errno : -EIO));
		rc = EXIT_ERR;
	}
	return fetch && rc != EXIT_OK && rc != EXIT_NOTFOUND ? CLI_EXIT_FETCH_FAILED : rc;
}
