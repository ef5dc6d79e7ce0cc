/* tools/cli.h: what the bunker CLI's command files share: parsed options, the
 * repository opener, progress output and error reporting. Program code only. */
#ifndef BK_TOOLS_CLI_H
#define BK_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/repo.h"
#include "store/snapshot.h"

typedef struct {
	const char *repo, *key_file, *password_file, *password_command;
	const char *new_key_file, *new_password_file;
	const char *name, *stdin_name, *target, *chunk_size, *cluster, *dbname, *archive_timeout,
		   *max_rate, *stall_timeout;
	const char *target_time, *target_lsn, *target_xid, *target_name, *target_action, *archive_mode,
		   *target_timeline, *owner;
	char *dbname_argv; /* --dbname's argument itself, in argv: cmd-pg.c hides a password */
	const char **tags, **includes, **ts_mapping;
	size_t ntags, nincludes, nts_mapping;
	bool json, quiet, use_stdin, read_data, fast_checkpoint, no_reuse, read_ahead,
	     no_verify_checksums;
	const char *const *args; /* positional arguments after the command */
	size_t nargs;
} Cli;

extern Cli cli;

/* PostgreSQL takes a restore_command's exit status 1-125 for "not in the archive"
 * and ends recovery there (a new timeline, all later WAL left behind); above 125
 * it aborts recovery. So pg wal-fetch exits 3 only for a file the archive lacks,
 * and this for every other failure, its options' too (bunker.c). */
#define CLI_EXIT_FETCH_FAILED 128

/* Prints "bunker: <what>: <detail>" on stderr and returns the exit code for e. */
int cli_fail(int e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "bunker: warning: <message>" on stderr, one line (as cli_fail). */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a usage error and returns exit code 2. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_open_repo(BkRepo **ret);
int cli_open_repo_ex(unsigned flags, BkRepo **ret); /* flags: bk_repo_open_ex's */
/* Prints the one-line (or --json) summary of a snapshot just written, its speed
 * over the time since started_us (bk_mono_us; 0: over the time its record says
 * writing it took). */
int print_snapshot_summary(BkRepo *r, const uint8_t id[32], uint64_t started_us);
/* Whether a progress line is due (on a terminal, without --quiet, 200 ms after
 * *last, which it then sets): the one throttle of every "\r" line. */
bool cli_progress_due(uint64_t *last);
/* A BkProgressFn: ud NULL, or a name (a string, printed escaped, cut to 64 bytes)
 * that begins the line. */
void cli_progress(void *ud, uint64_t done, uint64_t total);
void cli_progress_end(void);

/* The repository's snapshots that keep(ud, s) accepts (all when keep is NULL),
 * loaded and sorted oldest first; a damaged record is warned about on stderr and
 * counted. Release with cli_snapshots_release (also after a failure). */
typedef struct {
	uint8_t id[32];
	BkSnapshot *s;
} CliSnap;
typedef struct {
	CliSnap *items;
	size_t n, cap;
	unsigned damaged;
} CliSnaps;
int cli_snapshots_load(BkRepo *r, bool (*keep)(void *ud, const BkSnapshot *s), void *ud,
		       CliSnaps *ret);
void cli_snapshots_release(CliSnaps *l);
/* "2026-11-22T03:04:05Z" */
void cli_format_time(int64_t us, char out[32]);
/* Prints s as a JSON string, quoted and escaped. */
void cli_json_str(const char *s);
/* s as a person reads it: a control character (a byte below 0x20 or 0x7f, a C1
 * control U+0080-U+009F) and a byte that is not part of valid UTF-8 become \xNN
 * (each byte), so that a name from a backed-up file system or a database server
 * cannot move the cursor, retitle the terminal or forge an output line. Backslashes
 * stay as they are, so that a path in a message is the path (a name with the text
 * "\x1b" reads like an escaped one). Returns s itself when it has nothing to
 * escape, else buf (cut with "..." if cap is too small: CLI_TEXT_MAX holds any
 * path). */
#define CLI_TEXT_MAX (4 * 8192 + 1)
const char *cli_text(const char *s, char *buf, size_t cap);
/* Prints s (UTF-8, as cli_text returns it) and spaces after it up to `width`
 * terminal columns, counting a wide character as two and a combining mark as none
 * (printf's %-24s counts bytes: "données" took a column too few). */
void cli_print_padded(const char *s, int width);

int cmd_snapshots(void);
int cmd_ls(void);
int cmd_cat(void);
int cmd_restore(void);
int cmd_check(void);
int cmd_repair(void);
int cmd_stats(void);
int cmd_pg(void);

#endif
