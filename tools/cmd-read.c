/* bunker's commands that read a repository: snapshots, ls, cat, restore, check,
 * repair, stats. */
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "pg/walarchive.h"
#include "store/check.h"
#include "store/error.h"
#include "store/restorer.h"
#include "store/util.h"
#include "tools/cli.h"

/* ---- snapshots ---- */

/* Damaged records are reported and skipped: the others stay reachable. */
static void warn_damaged(const uint8_t id[32])
{
	cli_warn("snapshot %.16s is damaged: %s", bk_id_hex(id).s, bk_error_detail());
}

typedef struct {
	CliSnaps *l;
	bool (*keep)(void *ud, const BkSnapshot *s);
	void *ud;
} Collect;

static int collect(void *ud, const uint8_t id[32], BkSnapshot *s)
{
	Collect *c = ud;
	if (!s) {
		warn_damaged(id);
		c->l->damaged++;
		return 0;
	}
	if (c->keep && !c->keep(c->ud, s)) {
		bk_snapshot_free(s);
		return 0;
	}
	if (bk_grow(&c->l->items, &c->l->cap, c->l->n, sizeof(*c->l->items), 64) < 0) {
		bk_snapshot_free(s);
		return -ENOMEM;
	}
	memcpy(c->l->items[c->l->n].id, id, 32);
	c->l->items[c->l->n++].s = s;
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const CliSnap *x = a, *y = b;
	return x->s->time_us < y->s->time_us ? -1 : x->s->time_us > y->s->time_us;
}

int cli_snapshots_load(BkRepo *r, bool (*keep)(void *ud, const BkSnapshot *s), void *ud,
		       CliSnaps *ret)
{
	*ret = (CliSnaps){ 0 };
	Collect c = { .l = ret, .keep = keep, .ud = ud };
	int e = bk_snapshot_foreach(r, collect, &c);
	if (e < 0) {
		cli_snapshots_release(ret);
		return e;
	}
	if (ret->n) /* qsort wants an array, even of none */
		qsort(ret->items, ret->n, sizeof(*ret->items), by_time);
	return 0;
}

void cli_snapshots_release(CliSnaps *l)
{
	for (size_t i = 0; i < l->n; i++)
		bk_snapshot_free(l->items[i].s);
	free(l->items);
	l->items = NULL;
	l->n = l->cap = 0;
}

void cli_format_time(int64_t us, char out[32])
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The length of the UTF-8 character at p when it is valid and not a control (a C1
 * control, U+0080-U+009F, starts an escape sequence on some terminals too), else 0. */
static size_t printable_at(const unsigned char *p)
{
	unsigned char c = p[0];
	if (c < 0x80)
		return c >= 0x20 && c != 0x7f;
	size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	for (size_t i = 1; i < n; i++) /* (stops at the NUL: not a continuation byte) */
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xc2 && p[1] < 0xa0) || (c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0) ||
	    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
		return 0; /* C1, overlong, a surrogate, beyond U+10FFFF */
	return n;
}

const char *cli_text(const char *s, char *buf, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t k; *p && (k = printable_at(p)) > 0;)
		p += k;
	if (!*p)
		return s;
	size_t n = 0;
	for (p = (const unsigned char *)s; *p;) {
		size_t k = printable_at(p), len = k ? k : 4;
		if (n + len + 4 > cap) { /* room for "..." and the NUL */
			memcpy(buf + n, "...", 4);
			return buf;
		}
		if (k)
			memcpy(buf + n, p, k);
		else
			snprintf(buf + n, 5, "\\x%02x", *p);
		n += len;
		p += k ? k : 1;
	}
	buf[n] = '\0';
	return buf;
}

/* The columns a terminal gives the code point u: glibc's wcwidth under C.UTF-8
 * (built into glibc from 2.35; the process's own locale may not be UTF-8), whose
 * tables follow Unicode (combining marks, variation selectors and joiners 0, wide
 * and emoji 2). 1 when that locale cannot be had or u is not printable there. */
static int columns_of(uint32_t u)
{
	static locale_t utf8;
	static bool tried;
	if (!tried) {
		tried = true;
		utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	}
	if (!utf8)
		return 1;
	locale_t old = uselocale(utf8);
	int w = wcwidth((wchar_t)u);
	uselocale(old);
	return w < 0 ? 1 : w;
}

void cli_print_padded(const char *s, int width)
{
	const unsigned char *p = (const unsigned char *)s;
	int cols = 0;
	while (*p) {
		size_t n = printable_at(p);
		if (n == 0) { /* (not from cli_text) a byte alone */
			cols++;
			p++;
			continue;
		}
		uint32_t u = n == 1 ? *p : *p & (0x7f >> n);
		for (size_t i = 1; i < n; i++)
			u = u << 6 | (p[i] & 0x3f);
		cols += columns_of(u);
		p += n;
	}
	fputs(s, stdout);
	for (; cols < width; cols++)
		putchar(' ');
}

void cli_json_str(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	putchar('"');
	while (*p) {
		size_t k = printable_at(p);
		if (!k && p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0)
			k = 2; /* a C1 control: UTF-8, which JSON takes as it is */
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (k)
			fwrite(p, 1, k, stdout);
		else if (*p < 0x80)
			printf("\\u%04x", *p);
		else /* not UTF-8 (a SQL_ASCII database's name, say): JSON holds Unicode only */
			fputs("\\ufffd", stdout);
		p += k ? k : 1;
	}
	putchar('"');
}

static bool named(void *ud, const BkSnapshot *s) { return !ud || !strcmp(ud, s->name); }

int cmd_snapshots(void)
{
	if (cli.nargs)
		return usage_error("snapshots takes no arguments");
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0)
		return cli_fail(e, NULL);
	CliSnaps l;
	e = cli_snapshots_load(r, named, (void *)cli.name, &l);
	bk_repo_close(r);
	if (e < 0)
		return cli_fail(e, "snapshots");
	if (cli.json)
		printf("[");
	for (size_t i = 0; i < l.n; i++) {
		const BkSnapshot *s = l.items[i].s;
		char when[32];
		cli_format_time(s->time_us, when);
		if (cli.json) {
			printf("%s{\"id\":\"%s\",\"time\":\"%s\",\"time_us\":%" PRId64 ",\"name\":", i ? "," : "",
			       bk_id_hex(l.items[i].id).s, when, s->time_us);
			cli_json_str(s->name);
			printf(",\"kind\":");
			cli_json_str(s->kind);
			printf(",\"host\":");
			cli_json_str(s->host);
			printf(",\"tags\":[");
			for (size_t t = 0; t < s->ntags; t++) {
				printf(t ? "," : "");
				cli_json_str(s->tags[t]);
			}
			printf("],\"logical_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64
			       ",\"files\":%" PRIu64 ",\"duration_us\":%" PRIu64 ",\"meta\":{",
			       s->logical_bytes, s->new_bytes, s->files, s->duration_us);
			for (size_t m = 0; m < s->nmeta; m++) {
				printf(m ? "," : "");
				cli_json_str(s->meta[m].key);
				putchar(':');
				cli_json_str(s->meta[m].value);
			}
			printf("}}");
		} else {
			char text[CLI_TEXT_MAX];
			printf("%.16s  %s  ", bk_id_hex(l.items[i].id).s, when);
			cli_print_padded(cli_text(s->name, text, sizeof(text)), 24);
			printf(" %10.1f MB  %8.1f MB new", (double)s->logical_bytes / 1e6,
			       (double)s->new_bytes / 1e6);
			for (size_t t = 0; t < s->ntags; t++)
				printf("%s%s", t ? "," : "  tags: ", cli_text(s->tags[t], text, sizeof(text)));
			putchar('\n');
		}
	}
	if (cli.json)
		printf("]\n");
	unsigned damaged = l.damaged;
	cli_snapshots_release(&l);
	return damaged ? 5 : 0;
}

/* Opens the repository and resolves args[0] as a snapshot. */
static int open_snapshot(BkRepo **ret_repo, BkSnapshot **ret_snap, uint8_t *ret_id)
{
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0)
		return cli_fail(e, NULL);
	uint8_t id[32];
	unsigned damaged;
	e = bk_snapshot_resolve_ex(r, cli.args[0], cli.name, id, &damaged);
	if (e == 0 && damaged && strcmp(cli.args[0], "latest") == 0)
		cli_warn("%u damaged snapshot record%s skipped: 'latest' is the newest of the others, "
			 "the damaged one may have been newer (see 'bunker snapshots')",
			 damaged, damaged == 1 ? "" : "s");
	if (e == 0)
		e = bk_snapshot_load(r, id, ret_snap);
	if (e < 0) {
		bk_repo_close(r);
		return cli_fail(e, "snapshot %s", cli.args[0]);
	}
	*ret_repo = r;
	if (ret_id)
		memcpy(ret_id, id, sizeof(id));
	return 0;
}

/* ---- ls ---- */

static const char type_char[] = "?-dlpcbs";

/* One line of ls: the entry ent at path. */
static void print_entry(const BkTreeEntry *ent, const char *path)
{
	char when[32];
	static char text[CLI_TEXT_MAX], link[CLI_TEXT_MAX]; /* not on ls_tree's stack */
	cli_format_time(ent->mtime_sec * 1000000, when);
	bool is_link = ent->type == BK_NODE_SYMLINK;
	printf("%c%04o %6u %6u %12" PRIu64 " %s %s%s%s\n", type_char[ent->type <= 7 ? ent->type : 0],
	       ent->mode, ent->uid, ent->gid, ent->size, when, cli_text(path, text, sizeof(text)),
	       is_link ? " -> " : "", is_link ? cli_text(ent->link, link, sizeof(link)) : "");
}

static int ls_tree(BkRepo *r, const uint8_t id[32], char *path, size_t cap)
{
	BkTree *t;
	int e = bk_tree_load(r, id, &t);
	if (e < 0)
		return e;
	size_t plen = strlen(path);
	for (size_t i = 0; e == 0 && i < t->count; i++) {
		const BkTreeEntry *ent = &t->entries[i];
		snprintf(path + plen, cap - plen, "%s%s", plen ? "/" : "", ent->name);
		print_entry(ent, path);
		if (ent->type == BK_NODE_DIR)
			e = ls_tree(r, ent->subtree, path, cap);
		path[plen] = '\0';
	}
	bk_tree_free(t);
	return e;
}

int cmd_ls(void)
{
	if (cli.nargs < 1 || cli.nargs > 2)
		return usage_error("ls needs SNAPSHOT [PATH]");
	BkRepo *r;
	BkSnapshot *s;
	int x = open_snapshot(&r, &s, NULL);
	if (x)
		return x;
	const char *sub = cli.nargs == 2 ? cli.args[1] : "";
	BkTree *t;
	const BkTreeEntry *ent;
	int e = bk_tree_lookup(r, s->root, sub, &t, &ent);
	char path[8192];
	snprintf(path, sizeof(path), "%s", sub);
	while (strlen(path) > 0 && path[strlen(path) - 1] == '/')
		path[strlen(path) - 1] = '\0';
	if (e == 0) {
		if (!ent)
			e = ls_tree(r, s->root, path, sizeof(path));
		else if (ent->type == BK_NODE_DIR)
			e = ls_tree(r, ent->subtree, path, sizeof(path));
		else /* the same line as in a listing (it lacked the time and a link's target) */
			print_entry(ent, path);
		bk_tree_free(t);
	}
	bk_snapshot_free(s);
	bk_repo_close(r);
	return e < 0 ? cli_fail(e, "ls") : 0;
}

/* ---- cat ---- */

int cmd_cat(void)
{
	if (cli.nargs < 1 || cli.nargs > 2)
		return usage_error("cat needs SNAPSHOT [PATH]");
	BkRepo *r;
	BkSnapshot *s;
	uint8_t id[32];
	int x = open_snapshot(&r, &s, id);
	if (x)
		return x;
	/* without a PATH, name the snapshot that was resolved ('latest' may be
	 * one that is not a stream: a base backup, a directory) */
	char snap[CLI_TEXT_MAX + 32], text[CLI_TEXT_MAX];
	snprintf(snap, sizeof(snap), "snapshot %.16s (%s)", bk_id_hex(id).s,
		 cli_text(s->name, text, sizeof(text)));
	BkTree *t = NULL;
	const BkTreeEntry *ent = NULL;
	int e;
	if (cli.nargs == 2) {
		e = bk_tree_lookup(r, s->root, cli.args[1], &t, &ent);
	} else {
		e = bk_tree_load(r, s->root, &t);
		if (e == 0 && t->count == 1)
			ent = &t->entries[0];
		else if (e == 0)
			e = bk_errorf(BK_E_USAGE, "%s holds %zu entries: name the file to cat "
				      "('bunker ls' lists them)", snap, t->count);
	}
	if (e == 0 && (!ent || ent->type != BK_NODE_FILE) && cli.nargs == 2)
		e = bk_errorf(BK_E_USAGE, "%s is not a file", cli.args[1]);
	else if (e == 0 && (!ent || ent->type != BK_NODE_FILE))
		e = bk_errorf(BK_E_USAGE, "%s is not a file: name the file to cat "
			      "('bunker ls' lists them)", snap);
	if (e == 0)
		e = bk_content_write(r, &ent->content, STDOUT_FILENO);
	bk_tree_free(t);
	bk_snapshot_free(s);
	bk_repo_close(r);
	/* a reader that stopped early (| head, pg_restore -l): quietly, with the
	 * status of a program SIGPIPE ended (bunker ignores the signal) */
	if (e == -EPIPE)
		return 128 + SIGPIPE;
	return e < 0 ? cli_fail(e, "cat") : 0;
}

/* ---- restore ---- */

int cmd_restore(void)
{
	if (cli.nargs != 1)
		return usage_error("restore needs one SNAPSHOT");
	if (!cli.target)
		return usage_error("restore needs --target DIR");
	BkRepo *r;
	BkSnapshot *s;
	int x = open_snapshot(&r, &s, NULL);
	if (x)
		return x;
	BkRestoreOpts o = {
		.includes = cli.includes,
		.nincludes = cli.nincludes,
		.restore_owner = geteuid() == 0,
		.total = cli.nincludes ? 0 : s->logical_bytes,
		.progress = cli_progress,
	};
	int e = bk_restore(r, s, cli.target, &o);
	cli_progress_end();
	if (e == 0 && !cli.quiet) {
		char text[CLI_TEXT_MAX];
		fprintf(stderr, "restored %s to %s\n", cli_text(s->name, text, sizeof(text)), cli.target);
	}
	bk_snapshot_free(s);
	bk_repo_close(r);
	return e < 0 ? cli_fail(e, "restore") : 0;
}

/* ---- check, repair ---- */

static void print_problem(void *ud, bool problem, const char *line)
{
	(void)ud;
	char text[CLI_TEXT_MAX];
	printf("%s: %s\n", problem ? "error" : "note", cli_text(line, text, sizeof(text)));
	fflush(stdout);
}

int cmd_check(void)
{
	if (cli.nargs)
		return usage_error("check takes no arguments");
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0)
		return cli_fail(e, NULL);
	e = bk_check(r, cli.read_data, print_problem, NULL);
	if (e >= 0) { /* the WAL archive's records too (their blobs: with the packs above) */
		int w = bk_wal_check(r, print_problem, NULL);
		e = w < 0 ? w : e + w;
	}
	bk_repo_close(r);
	if (e < 0)
		return cli_fail(e, "check");
	if (e > 0) {
		fprintf(stderr, "bunker: check found %d problem%s\n", e, e == 1 ? "" : "s");
		return 5;
	}
	printf("no problems found%s\n", cli.read_data ? " (all data read and verified)" : "");
	return 0;
}

int cmd_repair(void)
{
	if (cli.nargs != 1 || strcmp(cli.args[0], "index") != 0)
		return usage_error("repair needs 'index'");
	BkRepo *r;
	int e = cli_open_repo_ex(BK_REPO_FRESH_INDEX, &r);
	if (e < 0)
		return cli_fail(e, NULL);
	uint64_t packs, blobs;
	e = bk_repair_index(r, print_problem, NULL, &packs, &blobs);
	bk_repo_close(r);
	if (e < 0)
		return cli_fail(e, "repair index");
	printf("index rebuilt: %" PRIu64 " packs, %" PRIu64 " blobs%s\n", packs, blobs,
	       e ? " (some packs were unreadable: see above)" : "");
	return e ? 5 : 0;
}

/* ---- stats ---- */

typedef struct {
	uint64_t snapshots, logical;
} Totals;

static int add_totals(void *ud, const uint8_t id[32], BkSnapshot *s)
{
	Totals *t = ud;
	if (!s) {
		warn_damaged(id);
		return 0;
	}
	t->snapshots++;
	t->logical += s->logical_bytes;
	bk_snapshot_free(s);
	return 0;
}

static int add_pack(void *ud, const uint8_t pack[32], uint64_t size, uint32_t count)
{
	(void)pack;
	(void)count;
	*(uint64_t *)ud += size;
	return 0;
}

int cmd_stats(void)
{
	if (cli.nargs)
		return usage_error("stats takes no arguments");
	BkRepo *r;
	int e = cli_open_repo(&r);
	if (e < 0)
		return cli_fail(e, NULL);
	Totals t = { 0 };
	uint64_t stored = 0, packs = 0, blobs = 0;
	e = bk_snapshot_foreach(r, add_totals, &t);
	if (e == 0)
		e = bk_index_foreach_pack(r->index, add_pack, &stored);
	if (e == 0)
		e = bk_index_stat(r->index, &packs, &blobs);
	bk_repo_close(r);
	if (e < 0)
		return cli_fail(e, "stats");
	double ratio = stored ? (double)t.logical / (double)stored : 0;
	if (cli.json)
		printf("{\"snapshots\":%" PRIu64 ",\"logical_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64
		       ",\"packs\":%" PRIu64 ",\"blobs\":%" PRIu64 ",\"ratio\":%.3f}\n",
		       t.snapshots, t.logical, stored, packs, blobs, ratio);
	else
		printf("snapshots:     %" PRIu64 "\nlogical bytes: %.1f MB\nstored bytes:  %.1f MB in %" PRIu64
		       " packs, %" PRIu64 " blobs\nreduction:     %.2fx\n",
		       t.snapshots, (double)t.logical / 1e6, (double)stored / 1e6, packs, blobs, ratio);
	return 0;
}
