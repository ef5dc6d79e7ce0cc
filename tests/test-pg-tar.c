/* tests/test-pg-tar.c: the incremental tar parser.
 *
 * Archives made by GNU tar (gnu, posix/pax and ustar formats) from trees built
 * here are parsed at every split size and checked against the files themselves;
 * hand-made headers cover pax, base-256 numbers, PostgreSQL's style and every
 * refusal; truncated, garbage and bit-flipped input must fail cleanly (run this
 * under -Db_sanitize=address,undefined). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg/tar.h"
#include "store/error.h"
#include "store/util.h"
#include "tests/tap.h"

/* ---- small helpers ------------------------------------------------------------ */

static void buf_printf(TapBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(TapBuf *b, const char *fmt, ...)
{
	char tmp[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		tap_buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

/* ---- the callback sink: an event log plus invariant checks -------------------- */

typedef struct {
	char *path, *link;
	BkTarType type;
	uint32_t mode;
	uint64_t uid, gid, size, hash;
	int64_t mtime;
} Rec;

typedef struct {
	TapBuf log;
	BkTarParser *p;
	uint64_t hash, got, size;
	bool in_entry;
	int violations;
	/* entries and the archive offsets at which each ended (for truncation checks) */
	Rec *recs;
	size_t n_recs;
	bool keep_recs;
	uint64_t *ends;
	size_t n_ends, cap_ends;
	/* error injection */
	long fail_at_data; /* return -EIO on this data call (0-based), -1 never */
	long data_calls;
	uint64_t max_start_size;
} Sink;

static int on_start(void *ctx, const BkTarEntry *e)
{
	Sink *s = ctx;
	if (s->in_entry || !e->path || !e->path[0] || e->path[0] == '/' || strstr(e->path, "//") ||
	    (e->type != BK_TAR_FILE && e->size != 0) || !e->link)
		s->violations++;
	s->in_entry = true;
	s->hash = FNV_INIT;
	s->got = 0;
	s->size = e->size;
	if (e->size > s->max_start_size)
		s->max_start_size = e->size;
	return 0;
}

static int on_data(void *ctx, const void *buf, size_t len)
{
	Sink *s = ctx;
	if (s->fail_at_data >= 0 && s->data_calls++ == s->fail_at_data)
		return -EIO;
	if (!s->in_entry || len == 0 || s->got + len > s->size)
		s->violations++;
	s->hash = fnv(s->hash, buf, len);
	s->got += len;
	return 0;
}

static int on_end(void *ctx, const BkTarEntry *e)
{
	Sink *s = ctx;
	if (!s->in_entry || s->got != e->size)
		s->violations++;
	s->in_entry = false;
	buf_printf(&s->log, "%d %s %o %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64 " [%s] %016" PRIx64 "\n",
	           (int)e->type, e->path, e->mode, e->size, e->uid, e->gid, e->mtime, e->link, s->hash);
	if (s->keep_recs) {
		s->recs = realloc(s->recs, (s->n_recs + 1) * sizeof(Rec));
		if (!s->recs)
			abort();
		s->recs[s->n_recs++] = (Rec){strdup(e->path), strdup(e->link), e->type, e->mode, e->uid,
		                             e->gid, e->size, s->hash, e->mtime};
	}
	if (s->n_ends == s->cap_ends) {
		s->cap_ends = s->cap_ends ? s->cap_ends * 2 : 64;
		s->ends = realloc(s->ends, s->cap_ends * sizeof(uint64_t));
		if (!s->ends)
			abort();
	}
	s->ends[s->n_ends++] = bk_tar_parser_offset(s->p);
	return 0;
}

static const BkTarCallbacks callbacks = {on_start, on_data, on_end};

static void sink_release(Sink *s)
{
	free(s->log.p);
	for (size_t i = 0; i < s->n_recs; i++) {
		free(s->recs[i].path);
		free(s->recs[i].link);
	}
	free(s->recs);
	free(s->ends);
	memset(s, 0, sizeof(*s));
}

/* Parses a[0..n) pushed in pieces from sizes() (chunk 0 = random pieces). Returns
 * the push error, else finish's result. */
static int parse(const uint8_t *a, size_t n, size_t chunk, unsigned flags, Sink *s)
{
	BkTarParser *p;
	s->fail_at_data = s->fail_at_data ? s->fail_at_data : -1;
	int r = bk_tar_parser_new(&callbacks, s, flags, &p);
	if (r < 0)
		return r;
	s->p = p;
	size_t off = 0;
	while (off < n && r == 0) {
		size_t c = chunk ? chunk : 1 + (size_t)(rnd() % (rnd() % 3 == 0 ? 7 : 2000));
		c = BK_MIN(c, n - off);
		r = bk_tar_parser_push(p, a + off, c);
		off += c;
	}
	if (r == 0)
		r = bk_tar_parser_finish(p);
	bk_tar_parser_free(p);
	s->p = NULL;
	return r;
}

static int parse_simple(const uint8_t *a, size_t n, unsigned flags, Sink *s)
{
	memset(s, 0, sizeof(*s));
	return parse(a, n, n ? n : 1, flags, s);
}

/* ---- GNU tar archives of real trees -------------------------------------------- */

static char tmpdir[256];

static void mkdir_or_die(const char *path)
{
	if (mkdir(path, 0755) != 0) {
		printf("Bail out! mkdir %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static char *join(const char *a, const char *b)
{
	size_t n = strlen(a) + 1 + strlen(b) + 1;
	char *s = malloc(n);
	if (!s)
		abort();
	snprintf(s, n, "%s/%s", a, b);
	return s;
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		abort();
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Tree 1: every entry kind, names past every ustar limit, a 300 KB file. */
static void make_tree1(const char *root)
{
	mkdir_or_die(root);
	uint8_t *data = malloc(300000);
	if (!data)
		abort();
	for (size_t i = 0; i < 300000; i++)
		data[i] = (uint8_t)rnd();
	static const size_t sizes[] = {0, 1, 511, 512, 513, 10000};
	static const char *names[] = {"a.txt", "b", "c", "d", "e", "f"};
	for (size_t i = 0; i < BK_ARRAY_SIZE(sizes); i++) {
		char *p = join(root, names[i]);
		tap_write_file(p, data, sizes[i], 0644);
		free(p);
	}
	char *p = join(root, "big.bin");
	tap_write_file(p, data, 300000, 0600);
	free(p);
	p = join(root, "setuid-tool");
	tap_write_file(p, "#!/bin/sh\n", 10, 04755);
	free(p);
	p = join(root, "h\xc3\xa9llo w\xc3\xb6rld.txt");
	tap_write_file(p, "unicode\n", 8, 0640);
	free(p);
	p = join(root, "emptydir");
	mkdir_or_die(p);
	free(p);
	p = join(root, "sub");
	mkdir_or_die(p);
	char *q = join(p, "inner.txt");
	tap_write_file(q, "inner\n", 6, 0644);
	free(q);
	free(p);

	/* a 150-char directory holding a 180-char file: GNU 'L' / pax path */
	char *d150 = repeat('d', 150), *n180 = repeat('n', 180);
	p = join(root, d150);
	mkdir_or_die(p);
	q = join(p, n180);
	tap_write_file(q, data, 777, 0644);
	free(q);
	/* six more levels of 200 chars: a 1365-byte path */
	char *lvl = repeat('z', 200);
	for (int i = 0; i < 6; i++) {
		q = join(p, lvl);
		mkdir_or_die(q);
		free(p);
		p = q;
	}
	q = join(p, "deep.txt");
	tap_write_file(q, "deep\n", 5, 0644);
	free(q);
	free(p);
	free(lvl);
	free(d150);
	free(n180);

	p = join(root, "sl");
	if (symlink("b", p) != 0)
		abort();
	free(p);
	char *target = repeat('x', 200);
	target[0] = '/';
	p = join(root, "longlink");
	if (symlink(target, p) != 0)
		abort();
	free(p);
	free(target);
	char *b = join(root, "b");
	p = join(root, "hl");
	if (link(b, p) != 0)
		abort();
	free(p);
	free(b);
	free(data);
}

/* Tree 2: small and ustar-clean (one path needs the 155-byte prefix field). */
static void make_tree2(const char *root)
{
	mkdir_or_die(root);
	char *p = join(root, "PG_VERSION");
	tap_write_file(p, "15\n", 3, 0600);
	free(p);
	p = join(root, "global");
	mkdir_or_die(p);
	char *q = join(p, "pg_control");
	uint8_t ctl[8192];
	for (size_t i = 0; i < sizeof(ctl); i++)
		ctl[i] = (uint8_t)(i * 7);
	tap_write_file(q, ctl, sizeof(ctl), 0600);
	free(q);
	free(p);
	char *u = repeat('u', 80), *v = repeat('v', 80);
	p = join(root, u);
	mkdir_or_die(p);
	q = join(p, v);
	mkdir_or_die(q);
	free(p);
	p = join(q, "w.txt");
	tap_write_file(p, "prefix split\n", 13, 0644);
	free(p);
	free(q);
	free(u);
	free(v);
	p = join(root, "link");
	if (symlink("global/pg_control", p) != 0)
		abort();
	free(p);
	p = join(root, "odd");
	tap_write_file(p, ctl, 1000, 0644);
	free(p);
}

static bool run_tar(const char *format, const char *out, const char *dir)
{
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		char fmt[64];
		snprintf(fmt, sizeof(fmt), "--format=%s", format);
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execlp("tar", "tar", fmt, "--sort=name", "-cf", out, "-C", dir, ".", (char *)NULL);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static bool read_all(const char *path, TapBuf *b)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	uint8_t tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		tap_buf_add(b, tmp, n);
	fclose(f);
	return true;
}

static size_t fs_count;
static int count_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path, (void)st, (void)flag, (void)ftw;
	fs_count++;
	return 0;
}

static uint64_t hash_file(const char *path)
{
	TapBuf b = {0};
	uint64_t h = FNV_INIT;
	if (read_all(path, &b))
		h = fnv(h, b.p, b.len);
	free(b.p);
	return h;
}

/* Every entry matches the file it came from; every file has an entry. */
static void check_against_fs(const char *root, const Sink *s, const char *what)
{
	int bad = 0;
	for (size_t i = 0; i < s->n_recs; i++) {
		const Rec *r = &s->recs[i];
		char *path = join(root, r->path);
		struct stat st;
		if (lstat(path, &st) != 0) {
			diag("%s: %s: missing on disk", what, r->path);
			bad++;
			free(path);
			continue;
		}
		bool same = (st.st_mode & 07777) == r->mode && (uint64_t)st.st_uid == r->uid &&
		            (uint64_t)st.st_gid == r->gid;
		if (r->type != BK_TAR_SYMLINK && r->type != BK_TAR_DIR)
			same = same && (int64_t)st.st_mtime == r->mtime;
		switch (r->type) {
		case BK_TAR_FILE:
			same = same && S_ISREG(st.st_mode) && (uint64_t)st.st_size == r->size &&
			       hash_file(path) == r->hash;
			break;
		case BK_TAR_DIR: same = same && S_ISDIR(st.st_mode); break;
		case BK_TAR_SYMLINK: {
			char target[4096];
			ssize_t n = readlink(path, target, sizeof(target) - 1);
			same = S_ISLNK(st.st_mode) && n >= 0 && (target[n] = '\0', strcmp(target, r->link) == 0);
			break;
		}
		case BK_TAR_HARDLINK: {
			char *other = join(root, r->link);
			struct stat st2;
			same = same && S_ISREG(st.st_mode) && lstat(other, &st2) == 0 &&
			       st2.st_ino == st.st_ino;
			free(other);
			break;
		}
		}
		if (!same) {
			diag("%s: %s: differs from disk", what, r->path);
			bad++;
		}
		free(path);
	}
	ok(bad == 0, "%s: %zu entries match the files on disk", what, s->n_recs);
	fs_count = 0;
	nftw(root, count_cb, 16, FTW_PHYS);
	ok(fs_count == s->n_recs, "%s: one entry per file system object (%zu on disk)", what,
	   fs_count);
}

static void check_splits(const TapBuf *a, const char *what, bool exhaustive)
{
	Sink ref;
	int r = parse_simple(a->p, a->len, BK_TAR_REQUIRE_END, &ref);
	is_int(r, 0, "%s: whole archive parses", what);
	int bad = 0;
	size_t tried = 0;
	size_t max_chunk = exhaustive ? a->len : 1100;
	for (size_t c = 1; c <= max_chunk; c++) {
		if (!exhaustive && c > 40 && c % 97 != 0 && c != 511 && c != 512 && c != 513 &&
		    c != 1024 && c != 1025)
			continue;
		Sink s = {0};
		r = parse(a->p, a->len, c, BK_TAR_REQUIRE_END, &s);
		if (r != 0 || s.violations || s.log.len != ref.log.len ||
		    memcmp(s.log.p, ref.log.p, ref.log.len) != 0) {
			if (bad++ < 3)
				diag("%s: split size %zu differs (%d: %s)", what, c, r, bk_error_detail());
		}
		tried++;
		sink_release(&s);
	}
	for (size_t c = 4096; c <= 262144; c *= 4) {
		Sink s = {0};
		r = parse(a->p, a->len, c, BK_TAR_REQUIRE_END, &s);
		if (r != 0 || s.log.len != ref.log.len || memcmp(s.log.p, ref.log.p, ref.log.len) != 0)
			bad++;
		tried++;
		sink_release(&s);
	}
	ok(bad == 0, "%s: same entries and data at %zu split sizes (1 byte up%s)", what, tried,
	   exhaustive ? ", every size" : "");
	bad = 0;
	for (int i = 0; i < 20; i++) {
		Sink s = {0};
		r = parse(a->p, a->len, 0, BK_TAR_REQUIRE_END, &s);
		if (r != 0 || s.log.len != ref.log.len || memcmp(s.log.p, ref.log.p, ref.log.len) != 0)
			bad++;
		sink_release(&s);
	}
	ok(bad == 0, "%s: same result at 20 random split schedules", what);
	sink_release(&ref);
}

/* Every two-piece split of a small archive. */
static void check_two_piece(const TapBuf *a, const char *what)
{
	Sink ref;
	parse_simple(a->p, a->len, BK_TAR_REQUIRE_END, &ref);
	int bad = 0;
	for (size_t cut = 0; cut <= a->len; cut++) {
		Sink s = {0};
		BkTarParser *p;
		s.fail_at_data = -1;
		bk_tar_parser_new(&callbacks, &s, BK_TAR_REQUIRE_END, &p);
		s.p = p;
		int r = bk_tar_parser_push(p, a->p, cut);
		if (r == 0)
			r = bk_tar_parser_push(p, a->p + cut, a->len - cut);
		if (r == 0)
			r = bk_tar_parser_finish(p);
		bk_tar_parser_free(p);
		if (r != 0 || s.log.len != ref.log.len || memcmp(s.log.p, ref.log.p, ref.log.len) != 0)
			bad++;
		sink_release(&s);
	}
	ok(bad == 0, "%s: every one of %zu two-piece splits gives the same result", what, a->len + 1);
	sink_release(&ref);
}

/* Every truncation: fails unless it ends exactly between entries (PostgreSQL's
 * style, without the flag) or after the end marker. */
static void check_truncations(const TapBuf *a, const char *what)
{
	Sink ref;
	parse_simple(a->p, a->len, BK_TAR_REQUIRE_END, &ref);
	uint64_t last_end = ref.n_ends ? ref.ends[ref.n_ends - 1] : 0;
	uint64_t marker_end = last_end + 1024;
	int bad_strict = 0, bad_loose = 0, accepted_loose = 0;
	for (size_t len = 0; len < a->len; len++) {
		bool boundary = len == 0;
		for (size_t i = 0; i < ref.n_ends && !boundary; i++)
			boundary = ref.ends[i] == len;
		Sink s = {0};
		int r = parse(a->p, len, len ? len : 1, BK_TAR_REQUIRE_END, &s);
		bool want_ok = len >= marker_end;
		if ((r == 0) != want_ok || s.violations || (r != 0 && r != BK_E_CORRUPT))
			if (bad_strict++ < 3)
				diag("%s: strict truncation at %zu: %d (%s)", what, len, r, bk_error_detail());
		sink_release(&s);

		memset(&s, 0, sizeof(s));
		r = parse(a->p, len, len ? len : 1, 0, &s);
		want_ok = boundary || len >= marker_end;
		accepted_loose += r == 0;
		if ((r == 0) != want_ok || s.violations)
			if (bad_loose++ < 3)
				diag("%s: loose truncation at %zu: %d (%s)", what, len, r, bk_error_detail());
		sink_release(&s);
	}
	ok(bad_strict == 0, "%s: with BK_TAR_REQUIRE_END, all %zu truncations before the marker's "
	                    "end fail",
	   what, (size_t)BK_MIN(marker_end, a->len));
	ok(bad_loose == 0, "%s: without it, only the %zu cuts between entries or after the marker "
	                   "succeed",
	   what, (size_t)accepted_loose);
	sink_release(&ref);
}

static void test_gnu_tar(void)
{
	char *t1 = join(tmpdir, "t1"), *t2 = join(tmpdir, "t2");
	make_tree1(t1);
	make_tree2(t2);

	static const char *fmt1[] = {"gnu", "posix"};
	for (size_t i = 0; i < BK_ARRAY_SIZE(fmt1); i++) {
		char name[64], what[64];
		snprintf(name, sizeof(name), "t1-%s.tar", fmt1[i]);
		snprintf(what, sizeof(what), "gnu tar --format=%s, long names", fmt1[i]);
		char *out = join(tmpdir, name);
		if (!ok(run_tar(fmt1[i], out, t1), "%s: tar ran", what)) {
			free(out);
			continue;
		}
		TapBuf a = {0};
		read_all(out, &a);
		Sink s;
		memset(&s, 0, sizeof(s));
		s.keep_recs = true;
		s.fail_at_data = -1;
		int r = parse(a.p, a.len, a.len, BK_TAR_REQUIRE_END, &s);
		is_int(r, 0, "%s: parses (%s)", what, r ? bk_error_detail() : "");
		ok(s.violations == 0, "%s: callback invariants hold", what);
		check_against_fs(t1, &s, what);
		bool has_deep = false, has_hl = false, has_root = false;
		for (size_t k = 0; k < s.n_recs; k++) {
			has_deep |= strlen(s.recs[k].path) > 1300 && strstr(s.recs[k].path, "deep.txt");
			has_hl |= s.recs[k].type == BK_TAR_HARDLINK && strcmp(s.recs[k].link, "b") == 0;
			has_root |= strcmp(s.recs[k].path, ".") == 0 && s.recs[k].type == BK_TAR_DIR;
		}
		ok(has_deep, "%s: 1365-byte path came through", what);
		ok(has_hl, "%s: hard link to \"b\" (normalised from ./b)", what);
		ok(has_root, "%s: \"./\" reported as \".\"", what);
		sink_release(&s);
		check_splits(&a, what, false);
		free(a.p);
		free(out);
	}

	static const char *fmt2[] = {"ustar", "gnu", "posix"};
	for (size_t i = 0; i < BK_ARRAY_SIZE(fmt2); i++) {
		char name[64], what[64];
		snprintf(name, sizeof(name), "t2-%s.tar", fmt2[i]);
		snprintf(what, sizeof(what), "gnu tar --format=%s, small", fmt2[i]);
		char *out = join(tmpdir, name);
		if (!ok(run_tar(fmt2[i], out, t2), "%s: tar ran", what)) {
			free(out);
			continue;
		}
		TapBuf a = {0};
		read_all(out, &a);
		Sink s;
		memset(&s, 0, sizeof(s));
		s.keep_recs = true;
		s.fail_at_data = -1;
		int r = parse(a.p, a.len, a.len, BK_TAR_REQUIRE_END, &s);
		is_int(r, 0, "%s: parses (%s)", what, r ? bk_error_detail() : "");
		check_against_fs(t2, &s, what);
		sink_release(&s);
		if (i == 0) {
			check_splits(&a, what, true);
			check_two_piece(&a, what);
			check_truncations(&a, what);
		} else
			check_splits(&a, what, false);

		/* PostgreSQL sends archives without the end marker. */
		Sink ref;
		parse_simple(a.p, a.len, 0, &ref);
		size_t cut = ref.n_ends ? (size_t)ref.ends[ref.n_ends - 1] : 0;
		Sink s2;
		is_int(parse_simple(a.p, cut, 0, &s2), 0, "%s: without the end marker: accepted", what);
		ok(s2.log.len == ref.log.len && memcmp(s2.log.p, ref.log.p, ref.log.len) == 0,
		   "%s: same entries without the marker", what);
		sink_release(&s2);
		is_int(parse_simple(a.p, cut, BK_TAR_REQUIRE_END, &s2), BK_E_CORRUPT,
		       "%s: without the marker under BK_TAR_REQUIRE_END: refused", what);
		sink_release(&s2);
		sink_release(&ref);
		free(a.p);
		free(out);
	}
	free(t1);
	free(t2);
}

/* ---- hand-made archives -------------------------------------------------------- */

typedef struct {
	const char *name;
	char type;
	uint64_t size;
	const char *link;
	bool gnu;
	const char *prefix;
	int64_t mtime;
	bool b256_size, b256_mtime;
	uint32_t mode;
} Hdr;

static void put_octal(uint8_t *f, size_t n, uint64_t v)
{
	char tmp[32];
	snprintf(tmp, sizeof(tmp), "%0*" PRIo64, (int)n - 1, v);
	memcpy(f, tmp, n - 1);
	f[n - 1] = '\0';
}

static void put_b256(uint8_t *f, size_t n, int64_t v)
{
	uint64_t u = (uint64_t)v;
	memset(f, v < 0 ? 0xff : 0, n);
	for (size_t i = 0; i < 8; i++)
		f[n - 1 - i] = (uint8_t)(u >> (8 * i));
	f[0] = v < 0 ? 0xff : 0x80;
}

/* The header checksum as tar writes it ("%06o\0 "), or in the spellings other
 * tars use: the sum of signed bytes (old Sun tar), seven digits and a NUL. */
static void set_checksum_as(uint8_t *b, bool signed_sum, bool seven_digits)
{
	memset(b + 148, ' ', 8);
	long sum = 0;
	for (int i = 0; i < 512; i++)
		sum += signed_sum ? (int8_t)b[i] : b[i];
	char tmp[16];
	snprintf(tmp, sizeof(tmp), seven_digits ? "%07lo" : "%06lo", sum);
	memcpy(b + 148, tmp, seven_digits ? 7 : 6);
	b[seven_digits ? 155 : 154] = '\0';
}

static void set_checksum(uint8_t *b)
{
	set_checksum_as(b, false, false);
}

static void add_header(TapBuf *a, const Hdr *h)
{
	uint8_t b[512] = {0};
	memcpy(b, h->name, BK_MIN(strlen(h->name), (size_t)100));
	put_octal(b + 100, 8, h->mode ? h->mode : 0644);
	put_octal(b + 108, 8, 1000);
	put_octal(b + 116, 8, 1001);
	if (h->b256_size)
		put_b256(b + 124, 12, (int64_t)h->size);
	else
		put_octal(b + 124, 12, h->size);
	if (h->b256_mtime)
		put_b256(b + 136, 12, h->mtime);
	else
		put_octal(b + 136, 12, (uint64_t)(h->mtime ? h->mtime : 1700000000));
	b[156] = (uint8_t)h->type;
	if (h->link)
		memcpy(b + 157, h->link, BK_MIN(strlen(h->link), (size_t)100));
	if (h->gnu)
		memcpy(b + 257, "ustar  \0", 8);
	else
		memcpy(b + 257, "ustar\0" "00", 8);
	if (h->prefix)
		memcpy(b + 345, h->prefix, BK_MIN(strlen(h->prefix), (size_t)155));
	set_checksum(b);
	tap_buf_add(a, b, 512);
}

static void add_data(TapBuf *a, const void *p, size_t n)
{
	static const uint8_t zero[512];
	tap_buf_add(a, p, n);
	if (n % 512)
		tap_buf_add(a, zero, 512 - n % 512);
}

static void add_end(TapBuf *a)
{
	static const uint8_t zero[1024];
	tap_buf_add(a, zero, 1024);
}

static void add_file(TapBuf *a, const char *name, const char *content)
{
	add_header(a, &(Hdr){.name = name, .type = '0', .size = strlen(content)});
	add_data(a, content, strlen(content));
}

/* A pax record with its self-inclusive length prefix. */
static void pax_record(TapBuf *b, const char *key, const char *val, size_t vlen)
{
	size_t body = 1 + strlen(key) + 1 + vlen + 1; /* " key=val\n" */
	size_t len = body + 1;
	for (;;) {
		char tmp[32];
		size_t d = (size_t)snprintf(tmp, sizeof(tmp), "%zu", len);
		if (d + body == len)
			break;
		len = d + body;
	}
	buf_printf(b, "%zu %s=", len, key);
	tap_buf_add(b, val, vlen);
	tap_buf_add(b, "\n", 1);
}

static void add_pax(TapBuf *a, char type, const TapBuf *recs)
{
	add_header(a, &(Hdr){.name = "./PaxHeaders/x", .type = type, .size = recs->len});
	add_data(a, recs->p, recs->len);
}

static int parse_buf(const TapBuf *a, unsigned flags, Sink *s)
{
	memset(s, 0, sizeof(*s));
	s->keep_recs = true;
	s->fail_at_data = -1;
	/* both whole and byte by byte must agree */
	Sink t = {0};
	t.fail_at_data = -1;
	int r1 = parse(a->p, a->len, 1, flags, &t);
	int r = parse(a->p, a->len, a->len ? a->len : 1, flags, s);
	if (r1 != r || t.log.len != s->log.len || (t.log.len && memcmp(t.log.p, s->log.p, t.log.len)))
		s->violations += 1000;
	sink_release(&t);
	return r;
}

static void test_crafted(void)
{
	TapBuf a = {0};
	Sink s;
	int r;

	/* PostgreSQL's style: directories and tablespace links end in '/', no marker. */
	add_header(&a, &(Hdr){.name = "base/", .type = '5', .mode = 0700});
	add_header(&a, &(Hdr){.name = "pg_tblspc/16385/", .type = '2', .link = "/srv/ts1",
	                      .mode = 0777});
	add_file(&a, "PG_VERSION", "15\n");
	is_int(parse_buf(&a, 0, &s), 0, "postgresql-style archive without marker");
	ok(s.n_recs == 3 && strcmp(s.recs[0].path, "base") == 0 && s.recs[0].type == BK_TAR_DIR &&
	       s.recs[0].mode == 0700 && strcmp(s.recs[1].path, "pg_tblspc/16385") == 0 &&
	       s.recs[1].type == BK_TAR_SYMLINK && strcmp(s.recs[1].link, "/srv/ts1") == 0 &&
	       strcmp(s.recs[2].path, "PG_VERSION") == 0 && s.recs[2].size == 3 &&
	       s.recs[2].uid == 1000 && s.recs[2].gid == 1001 && s.recs[2].mtime == 1700000000,
	   "trailing slashes dropped, fields read");
	ok(s.violations == 0, "byte-by-byte agrees");
	sink_release(&s);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), BK_E_CORRUPT, "same, marker required: refused");
	sink_release(&s);
	add_end(&a);
	static const uint8_t pad[9216];
	tap_buf_add(&a, pad, sizeof(pad));
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), 0, "with marker and record padding");
	sink_release(&s);
	tap_buf_add(&a, "x", 1);
	is_int(parse_buf(&a, 0, &s), BK_E_CORRUPT, "a non-zero byte after the marker: refused");
	sink_release(&s);

	/* ustar prefix and normalisation */
	a.len = 0;
	add_header(&a, &(Hdr){.name = "file.txt", .prefix = "./some//dir/", .type = '0'});
	add_header(&a, &(Hdr){.name = "./", .type = '5'});
	add_header(&a, &(Hdr){.name = "gnu-ignores-prefix", .prefix = "junk", .gnu = true,
	                      .type = '0'});
	add_header(&a, &(Hdr){.name = "h", .type = '1', .link = "./some/dir/file.txt"});
	add_header(&a, &(Hdr){.name = "old-style", .type = '\0'});
	add_header(&a, &(Hdr){.name = "contig", .type = '7'});
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), 0, "prefix and normalisation archive");
	ok(s.n_recs == 6 && strcmp(s.recs[0].path, "some/dir/file.txt") == 0 &&
	       strcmp(s.recs[1].path, ".") == 0 && strcmp(s.recs[2].path, "gnu-ignores-prefix") == 0 &&
	       s.recs[3].type == BK_TAR_HARDLINK && strcmp(s.recs[3].link, "some/dir/file.txt") == 0 &&
	       s.recs[4].type == BK_TAR_FILE && s.recs[5].type == BK_TAR_FILE,
	   "prefix joined, ./ and // dropped, gnu prefix area ignored, '\\0' and '7' are files");
	sink_release(&s);

	/* pax: path, linkpath, size, mtime with fraction, uid, gid; and a global header */
	a.len = 0;
	TapBuf recs = {0};
	pax_record(&recs, "comment", "ignored", 7);
	add_pax(&a, 'g', &recs);
	recs.len = 0;
	char *longp = repeat('p', 3000);
	pax_record(&recs, "path", longp, strlen(longp));
	pax_record(&recs, "size", "5", 1);
	pax_record(&recs, "mtime", "1700000123.987654321", 20);
	pax_record(&recs, "uid", "4000000000", 10);
	pax_record(&recs, "gid", "77", 2);
	pax_record(&recs, "atime", "1.5", 3);
	pax_record(&recs, "SCHILY.xattr.user.x", "a\0b", 3);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "short", .type = '0', .size = 999});
	add_data(&a, "hello", 5);
	recs.len = 0;
	pax_record(&recs, "linkpath", "target/of/link", 14);
	pax_record(&recs, "mtime", "-5", 2);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "lnk", .type = '2', .link = "ignored"});
	add_end(&a);
	r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
	is_int(r, 0, "pax archive (%s)", r ? bk_error_detail() : "ok");
	ok(s.n_recs == 2 && strcmp(s.recs[0].path, longp) == 0 && s.recs[0].size == 5 &&
	       s.recs[0].mtime == 1700000123 && s.recs[0].uid == 4000000000u && s.recs[0].gid == 77 &&
	       strcmp(s.recs[1].link, "target/of/link") == 0 && s.recs[1].mtime == -5,
	   "pax values override the header, global header ignored");
	ok(s.n_recs == 2 && s.recs[0].hash == fnv(FNV_INIT, (const uint8_t *)"hello", 5),
	   "pax size governs the data");
	sink_release(&s);
	free(longp);

	/* GNU long names */
	a.len = 0;
	char *ln = repeat('L', 4095);
	add_header(&a, &(Hdr){.name = "././@LongLink", .type = 'L', .size = 4096, .gnu = true});
	add_data(&a, ln, 4096); /* includes the NUL: repeat() terminates */
	char *lk = repeat('K', 300);
	add_header(&a, &(Hdr){.name = "././@LongLink", .type = 'K', .size = 301, .gnu = true});
	add_data(&a, lk, 301);
	add_header(&a, &(Hdr){.name = "truncated-name", .type = '2', .link = "truncated-link",
	                      .gnu = true});
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), 0, "gnu long name (4095 bytes) and link");
	ok(s.n_recs == 1 && strlen(s.recs[0].path) == 4095 && strcmp(s.recs[0].link, lk) == 0,
	   "long name and link replace the header's");
	sink_release(&s);
	free(lk);
	free(ln);

	/* base-256 numbers */
	a.len = 0;
	add_header(&a, &(Hdr){.name = "huge", .type = '0', .size = UINT64_C(9) << 30, .b256_size = true,
	                      .mtime = -1, .b256_mtime = true});
	uint8_t chunk[4096] = {0};
	tap_buf_add(&a, chunk, sizeof(chunk));
	memset(&s, 0, sizeof(s));
	s.fail_at_data = -1;
	r = parse(a.p, a.len, 1000, 0, &s);
	ok(r == BK_E_CORRUPT && s.max_start_size == UINT64_C(9) << 30,
	   "base-256 size of 9 GiB read; input ends inside its data: %d", r);
	sink_release(&s);
	a.len = 0;
	add_header(&a, &(Hdr){.name = "neg", .type = '5', .mtime = -1, .b256_mtime = true});
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), 0, "negative base-256 mtime");
	ok(s.n_recs == 1 && s.recs[0].mtime == -1, "mtime -1");
	sink_release(&s);
	/* PostgreSQL's spelling of a time before 1970: 0x80, then the time_t as a
	 * uint64 in the last 8 bytes (print_tar_number); it failed the backup */
	a.len = 0;
	add_header(&a, &(Hdr){.name = "moon", .type = '5'});
	uint8_t *m = a.p + 136;
	uint64_t moon = (uint64_t)INT64_C(-14182940); /* 1969-07-20 */
	memset(m, 0, 12);
	m[0] = 0x80;
	for (size_t i = 0; i < 8; i++)
		m[11 - i] = (uint8_t)(moon >> (8 * i));
	set_checksum(a.p);
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), 0, "PostgreSQL's base-256 mtime of 1969");
	ok(s.n_recs == 1 && s.recs[0].mtime == INT64_C(-14182940), "read as 1969-07-20");
	sink_release(&s);

	/* refusals */
	struct {
		Hdr h;
		int want;
		const char *what;
	} bad[] = {
		{{.name = "../etc/passwd", .type = '0'}, BK_E_CORRUPT, "\"..\" path"},
		{{.name = "a/../../b", .type = '0'}, BK_E_CORRUPT, "\"..\" inside a path"},
		{{.name = "/etc/passwd", .type = '0'}, BK_E_CORRUPT, "absolute path"},
		{{.name = "x", .prefix = "/abs", .type = '0'}, BK_E_CORRUPT, "absolute prefix"},
		{{.name = "", .type = '0'}, BK_E_CORRUPT, "empty name"},
		{{.name = "h", .type = '1', .link = "../x"}, BK_E_CORRUPT, "hard link leaving the tree"},
		{{.name = "h", .type = '1'}, BK_E_CORRUPT, "hard link without a target"},
		{{.name = "s", .type = '2'}, BK_E_CORRUPT, "symlink without a target"},
		{{.name = "dev", .type = '3'}, -EOPNOTSUPP, "character device"},
		{{.name = "fifo", .type = '6'}, -EOPNOTSUPP, "fifo"},
		{{.name = "sparse", .type = 'S', .gnu = true}, -EOPNOTSUPP, "gnu sparse"},
		{{.name = "vol", .type = 'V', .gnu = true}, -EOPNOTSUPP, "volume label"},
		{{.name = "dir", .type = '5', .size = 1}, BK_E_CORRUPT, "directory with data"},
		{{.name = "L", .type = 'L', .size = BK_TAR_META_MAX + 1, .gnu = true}, -ENAMETOOLONG,
		 "'L' over the header cap"},
		{{.name = "x", .type = 'x', .size = BK_TAR_META_MAX + 1}, -E2BIG, "'x' over the cap"},
		{{.name = "g", .type = 'g', .size = 1u << 30}, -E2BIG, "'g' of 1 GiB"},
		{{.name = "big", .type = '0', .size = UINT64_C(1) << 63, .b256_size = true},
		 BK_E_CORRUPT, "size of 2^63"},
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(bad); i++) {
		a.len = 0;
		add_header(&a, &bad[i].h);
		add_end(&a);
		r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
		ok(r == bad[i].want && s.n_recs == 0 && s.violations == 0, "refuses %s (%d: %s)", bad[i].what, r,
		   bk_error_detail());
		sink_release(&s);
	}

	/* name of 4096 bytes (no room for the NUL) */
	a.len = 0;
	char *l4096 = repeat('M', 4096);
	add_header(&a, &(Hdr){.name = "././@LongLink", .type = 'L', .size = 4096, .gnu = true});
	add_data(&a, l4096, 4096);
	add_header(&a, &(Hdr){.name = "x", .type = '0'});
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), -ENAMETOOLONG, "gnu long name of 4096 bytes");
	sink_release(&s);
	a.len = 0;
	recs.len = 0;
	pax_record(&recs, "path", l4096, 4096);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "x", .type = '0'});
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), -ENAMETOOLONG, "pax path of 4096 bytes");
	sink_release(&s);
	free(l4096);

	struct {
		const char *rec;
		int want;
		const char *what;
	} badpax[] = {
		{"5 a=\n", 0, "minimal record accepted"},
		{"6 a=b", BK_E_CORRUPT, "record without newline"},
		{"99 path=x\n", BK_E_CORRUPT, "length beyond the data"},
		{"3 =\n", BK_E_CORRUPT, "length too small"},
		{"x path=a\n", BK_E_CORRUPT, "non-numeric length"},
		{"7 =abc\n", BK_E_CORRUPT, "empty key"},
		{"8 pathx\n", BK_E_CORRUPT, "no '='"},
		{"11 size=-1\n", BK_E_CORRUPT, "negative size"},
		{"15 size=1e3456\n", BK_E_CORRUPT, "bad size"},
		{"29 size=99999999999999999999\n", BK_E_CORRUPT, "size overflow"},
		{"13 mtime=1.x\n", BK_E_CORRUPT, "bad mtime fraction"},
		{"11 uid=abc\n", BK_E_CORRUPT, "bad uid"},
		{"22 GNU.sparse.major=1\n", -EOPNOTSUPP, "pax sparse"},
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(badpax); i++) {
		a.len = 0;
		recs.len = 0;
		tap_buf_add(&recs, badpax[i].rec, strlen(badpax[i].rec));
		add_pax(&a, 'x', &recs);
		add_header(&a, &(Hdr){.name = "x", .type = '0'});
		add_end(&a);
		r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
		ok(r == badpax[i].want && s.violations == 0, "pax: %s (%d: %s)", badpax[i].what, r, bk_error_detail());
		sink_release(&s);
	}
	/* A one-digit length larger than what is left ("9 path=y", 8 bytes) must not
	 * read on into the bytes an earlier pax header left in the buffer ("\n"). */
	a.len = 0;
	recs.len = 0;
	tap_buf_add(&recs, "9 path=x\n", 9);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "f1", .type = '0'});
	recs.len = 0;
	tap_buf_add(&recs, "9 path=y", 8);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "f2", .type = '0'});
	add_end(&a);
	r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
	is_int(r, BK_E_CORRUPT, "pax: a one-digit length past the data is refused (%s)",
	       r ? bk_error_detail() : "accepted");
	sink_release(&s);
	a.len = 0;
	recs.len = 0;
	pax_record(&recs, "path", "a\0b", 3);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "x", .type = '0'});
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), BK_E_CORRUPT, "pax path with a NUL byte");
	sink_release(&s);

	/* structure errors */
	a.len = 0;
	add_file(&a, "one", "1");
	size_t first = a.len;
	add_file(&a, "two", "22");
	a.p[first + 148] ^= 1; /* checksum of the second header */
	is_int(parse_buf(&a, 0, &s), BK_E_CORRUPT, "bad checksum refused");
	ok(s.n_recs == 1, "entries before the bad header were delivered");
	ok(strstr(bk_error_detail(), "1024") != NULL, "detail gives the offset: %s", bk_error_detail());
	sink_release(&s);
	a.p[first + 148] ^= 1;
	a.p[first + 257] = 'X';
	set_checksum(a.p + first);
	is_int(parse_buf(&a, 0, &s), BK_E_CORRUPT, "bad magic refused");
	sink_release(&s);

	a.len = 0;
	add_file(&a, "one", "1");
	static const uint8_t zero[512];
	tap_buf_add(&a, zero, 512);
	add_file(&a, "two", "2");
	is_int(parse_buf(&a, 0, &s), BK_E_CORRUPT, "header after a lone zero block refused");
	sink_release(&s);

	a.len = 0;
	recs.len = 0;
	pax_record(&recs, "path", "p", 1);
	add_pax(&a, 'x', &recs);
	is_int(parse_buf(&a, 0, &s), BK_E_CORRUPT, "input ending after an extended header refused");
	sink_release(&s);
	add_end(&a);
	is_int(parse_buf(&a, 0, &s), BK_E_CORRUPT, "end marker right after an extended header refused");
	sink_release(&s);

	a.len = 0;
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), 0, "empty archive (just the marker)");
	ok(s.n_recs == 0, "no entries");
	sink_release(&s);
	is_int(parse_buf(&a, 0, &s), 0, "zero bytes without the flag: an empty stream");
	sink_release(&s);
	a.len = 0;
	tap_buf_add(&a, zero, 512);
	is_int(parse_buf(&a, 0, &s), BK_E_CORRUPT, "a single zero block is a truncated marker");
	sink_release(&s);

	/* callback errors stop the parser and stick */
	a.len = 0;
	add_file(&a, "one", "1");
	add_file(&a, "two", "22");
	add_end(&a);
	memset(&s, 0, sizeof(s));
	s.fail_at_data = 1;
	BkTarParser *p;
	bk_tar_parser_new(&callbacks, &s, 0, &p);
	s.p = p;
	r = bk_tar_parser_push(p, a.p, a.len);
	is_int(r, -EIO, "callback error returned by push");
	is_int(bk_tar_parser_push(p, a.p, 1), -EIO, "and by the next push (sticky)");
	is_int(bk_tar_parser_finish(p), -EIO, "and by finish");
	is_int(bk_tar_parser_entries(p), 1, "one entry completed before the error");
	bk_tar_parser_free(p);
	sink_release(&s);

	bk_tar_parser_new(NULL, NULL, BK_TAR_REQUIRE_END, &p);
	is_int(bk_tar_parser_push(p, a.p, a.len), 0, "no callbacks at all");
	is_int(bk_tar_parser_finish(p), 0, "finish");
	ok(bk_tar_parser_offset(p) == a.len, "offset counts every byte");
	is_int(bk_tar_parser_push(p, a.p, 1), -EINVAL, "push after finish refused");
	bk_tar_parser_free(p);
	bk_tar_parser_free(NULL);

	free(recs.p);
	free(a.p);
}

/* ---- garbage and mutations ------------------------------------------------------- */

/* Edges a mutation audit found untested: name, prefix and link fields filled to
 * their width (no NUL), the checksum's other spellings, junk after an octal
 * number, pax values that hold for one entry only, empty pax values, global
 * headers, base-256 sizes near the limits, a pax record that overruns its header's
 * data, and a pax header of the largest size. Each check fails under the mutation
 * named. */
static void test_field_edges(void)
{
	TapBuf a = {0}, recs = {0};
	Sink s;
	int r;
	char *n100 = repeat('a', 100), *p155 = repeat('p', 155);

	add_header(&a, &(Hdr){.name = n100, .type = '0'}); /* (name read 99 bytes) */
	add_end(&a);
	r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
	ok(r == 0 && s.n_recs == 1 && strcmp(s.recs[0].path, n100) == 0,
	   "a 100-byte name filling its field is kept whole");
	sink_release(&s);
	a.len = 0;
	add_header(&a, &(Hdr){.name = "f", .type = '0', .prefix = p155}); /* (prefix 154) */
	add_end(&a);
	r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
	ok(r == 0 && s.n_recs == 1 && strlen(s.recs[0].path) == 157 &&
	   strncmp(s.recs[0].path, p155, 155) == 0, "a 155-byte prefix filling its field is kept whole");
	sink_release(&s);
	a.len = 0;
	add_header(&a, &(Hdr){.name = "sl", .type = '2', .link = n100}); /* (link 99) */
	add_end(&a);
	r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
	ok(r == 0 && s.n_recs == 1 && strcmp(s.recs[0].link, n100) == 0,
	   "a 100-byte symlink target filling its field is kept whole");
	sink_release(&s);

	/* checksums: signed (a name with bytes >= 0x80), seven digits and a NUL */
	for (int v = 0; v < 2; v++) {
		a.len = 0;
		add_header(&a, &(Hdr){.name = "h\xc3\xa9llo", .type = '0'});
		set_checksum_as(a.p, v == 0, v == 1);
		add_end(&a);
		r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
		ok(r == 0 && s.n_recs == 1, "a checksum %s is accepted",
		   v == 0 ? "summed over signed bytes" : "of seven digits and a NUL");
		sink_release(&s);
	}
	a.len = 0;
	add_header(&a, &(Hdr){.name = "x", .type = '0', .size = 1});
	memcpy(a.p + 124, "0000000001x", 11); /* (junk after the digits allowed) */
	set_checksum(a.p);
	add_data(&a, "y", 1);
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), BK_E_CORRUPT, "a size '0000000001x' is refused");
	sink_release(&s);

	/* pax uid, gid and mtime hold for the next entry only (leaking to the next) */
	a.len = 0;
	recs.len = 0;
	pax_record(&recs, "uid", "4000000", 7);
	pax_record(&recs, "gid", "777", 3);
	pax_record(&recs, "mtime", "1234567890", 10);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "A", .type = '0'});
	add_header(&a, &(Hdr){.name = "B", .type = '0'});
	add_end(&a);
	r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
	ok(r == 0 && s.n_recs == 2 && s.recs[0].uid == 4000000 && s.recs[0].gid == 777 &&
	   s.recs[0].mtime == 1234567890 && s.recs[1].uid == 1000 && s.recs[1].gid == 1001 &&
	   s.recs[1].mtime == 1700000000, "pax uid, gid and mtime apply to one entry only");
	sink_release(&s);
	/* empty pax path and linkpath: the header's names (taken as values, refused) */
	a.len = 0;
	recs.len = 0;
	pax_record(&recs, "path", "", 0);
	pax_record(&recs, "linkpath", "", 0);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "real", .type = '2', .link = "tgt"});
	add_end(&a);
	r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
	ok(r == 0 && s.n_recs == 1 && strcmp(s.recs[0].path, "real") == 0 &&
	   strcmp(s.recs[0].link, "tgt") == 0, "empty pax path and linkpath leave the header's");
	sink_release(&s);
	/* a global header's values are not applied (renaming entries), and a global
	 * header alone is no entry left open before the end marker */
	a.len = 0;
	recs.len = 0;
	pax_record(&recs, "path", "evil", 4);
	pax_record(&recs, "uid", "0", 1);
	add_pax(&a, 'g', &recs);
	add_header(&a, &(Hdr){.name = "a", .type = '0'});
	add_end(&a);
	r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
	ok(r == 0 && s.n_recs == 1 && strcmp(s.recs[0].path, "a") == 0 && s.recs[0].uid == 1000,
	   "a global pax header's path and uid are ignored");
	sink_release(&s);
	a.len = 0;
	recs.len = 0;
	pax_record(&recs, "comment", "", 0);
	add_pax(&a, 'g', &recs);
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), 0, "a global header, then the end marker");
	sink_release(&s);
	/* an empty GNU long link ('K') is refused */
	a.len = 0;
	add_header(&a, &(Hdr){.name = "././@LongLink", .type = 'K', .size = 1, .gnu = true});
	add_data(&a, "", 1);
	add_header(&a, &(Hdr){.name = "f", .type = '0'});
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), BK_E_CORRUPT, "an empty GNU long link is refused");
	sink_release(&s);

	/* base-256 sizes: 2^62 + 1 (past the largest file) and 2^64 (read as 0 if the
	 * overflow check is a byte short) are refused before any entry starts */
	static const struct { size_t at; uint8_t v; const char *what; } big[] = {
		{ 128, 0x40, "2^62 + 1" }, { 127, 0x01, "2^64" },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(big); i++) {
		a.len = 0;
		add_header(&a, &(Hdr){.name = "big", .type = '0'});
		memset(a.p + 124, 0, 12);
		a.p[124] = 0x80;
		a.p[big[i].at] = big[i].v;
		if (i == 0)
			a.p[135] = 1;
		set_checksum(a.p);
		add_end(&a);
		r = parse_buf(&a, 0, &s);
		ok(r == BK_E_CORRUPT && s.n_recs == 0 && s.max_start_size == 0,
		   "a base-256 size of %s is refused", big[i].what);
		sink_release(&s);
	}

	/* a pax record whose length runs past its header's data, with a newline left
	 * beyond it by an earlier header (bounded by the buffer, not the data) */
	a.len = 0;
	recs.len = 0;
	pax_record(&recs, "path", "aaaaaaaaaaaaa", 13);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "f1", .type = '0'});
	recs.len = 0;
	tap_buf_add(&recs, "10 path=x\n12 path=y", 19);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "f2", .type = '0'});
	add_end(&a);
	is_int(parse_buf(&a, BK_TAR_REQUIRE_END, &s), BK_E_CORRUPT,
	       "a pax record running past its header's data is refused");
	sink_release(&s);

	/* a pax header of exactly BK_TAR_META_MAX bytes is accepted */
	a.len = 0;
	recs.len = 0;
	char *m = repeat('c', BK_TAR_META_MAX);
	int hl = snprintf(m, BK_TAR_META_MAX, "%d comment=", BK_TAR_META_MAX);
	m[hl] = 'c';
	m[BK_TAR_META_MAX - 1] = '\n';
	tap_buf_add(&recs, m, BK_TAR_META_MAX);
	add_pax(&a, 'x', &recs);
	add_header(&a, &(Hdr){.name = "f", .type = '0'});
	add_end(&a);
	r = parse_buf(&a, BK_TAR_REQUIRE_END, &s);
	ok(r == 0 && s.n_recs == 1, "a pax header of exactly %d bytes is accepted", BK_TAR_META_MAX);
	sink_release(&s);
	free(m);

	free(n100);
	free(p155);
	free(recs.p);
	free(a.p);
}

static void test_garbage(void)
{
	int bad = 0;
	for (int i = 0; i < 500; i++) {
		size_t n = (size_t)(rnd() % 5000);
		uint8_t *g = malloc(n + 1);
		for (size_t k = 0; k < n; k++)
			g[k] = (uint8_t)rnd();
		Sink s = {0};
		s.fail_at_data = -1;
		int r = parse(g, n, 0, BK_TAR_REQUIRE_END, &s);
		if (r == 0 || s.violations)
			bad++;
		sink_release(&s);
		free(g);
	}
	ok(bad == 0, "500 random garbage inputs refused without crashing");

	/* bit flips and byte changes in a real archive: never a crash or a broken
	 * invariant, whatever the outcome */
	char *t2 = join(tmpdir, "t2-gnu.tar");
	TapBuf a = {0};
	if (!read_all(t2, &a)) {
		ok(false, "read t2-gnu.tar for mutation");
		free(t2);
		return;
	}
	int violations = 0, failed = 0;
	uint8_t *m = malloc(a.len);
	for (int i = 0; i < 3000; i++) {
		memcpy(m, a.p, a.len);
		int flips = 1 + (int)(rnd() % 4);
		for (int f = 0; f < flips; f++) {
			size_t at = (size_t)(rnd() % BK_MIN(a.len, (size_t)6144));
			if (rnd() % 2)
				m[at] ^= (uint8_t)(1u << (rnd() % 8));
			else
				m[at] = (uint8_t)rnd();
		}
		Sink s = {0};
		s.fail_at_data = -1;
		size_t len = rnd() % 4 ? a.len : (size_t)(rnd() % a.len);
		int r = parse(m, len, 0, rnd() % 2 ? BK_TAR_REQUIRE_END : 0, &s);
		failed += r != 0;
		if (s.violations)
			violations++;
		sink_release(&s);
	}
	ok(violations == 0, "3000 mutated archives: callback invariants always hold (%d refused)",
	   failed);
	free(m);
	free(a.p);
	free(t2);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/test-pg-tar.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	umask(022);

	test_crafted();
	test_field_edges();
	test_gnu_tar();
	test_garbage();

	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
