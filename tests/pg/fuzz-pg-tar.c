/* Fuzz target: the tar stream parser (see tests/fuzz/fuzz.h).
 *
 * Input: byte 0 picks the push size (1 + 7 * b), byte 1 bit 0 sets
 * BK_TAR_REQUIRE_END, the rest is the archive. The archive is parsed twice, in
 * one push and in pieces; both runs must agree on the outcome and on every
 * callback, and the callbacks must always see a well-formed sequence. */
#include <string.h>

#include "pg/tar.h"
#include "store/error.h"
#include "tests/fuzz/fuzz.h"

typedef struct {
	uint64_t digest, size, got, entries;
	bool in_entry;
} Run;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static int on_start(void *ctx, const BkTarEntry *e)
{
	Run *r = ctx;
	FUZZ_CHECK(!r->in_entry);
	FUZZ_CHECK(e->path && e->path[0] && e->path[0] != '/' && e->link);
	FUZZ_CHECK(strlen(e->path) < BK_TAR_PATH_MAX && strlen(e->link) < BK_TAR_PATH_MAX);
	FUZZ_CHECK(strstr(e->path, "//") == NULL);
	FUZZ_CHECK(strcmp(e->path, "..") != 0 && strncmp(e->path, "../", 3) != 0 &&
	           strstr(e->path, "/../") == NULL);
	FUZZ_CHECK(e->type == BK_TAR_FILE || e->size == 0);
	FUZZ_CHECK(e->size <= BK_TAR_SIZE_MAX && (e->mode & ~07777u) == 0);
	r->in_entry = true;
	r->size = e->size;
	r->got = 0;
	r->digest = mix(r->digest, e->path, strlen(e->path) + 1);
	r->digest = mix(r->digest, e->link, strlen(e->link) + 1);
	uint64_t v[6] = {(uint64_t)e->type, e->mode, e->uid, e->gid, (uint64_t)e->mtime, e->size};
	r->digest = mix(r->digest, v, sizeof(v));
	return 0;
}

static int on_data(void *ctx, const void *buf, size_t len)
{
	Run *r = ctx;
	FUZZ_CHECK(r->in_entry && len > 0 && r->got + len <= r->size);
	r->got += len;
	r->digest = mix(r->digest, buf, len);
	return 0;
}

static int on_end(void *ctx, const BkTarEntry *e)
{
	Run *r = ctx;
	FUZZ_CHECK(r->in_entry && r->got == e->size);
	r->in_entry = false;
	r->entries++;
	return 0;
}

static const BkTarCallbacks cb = {on_start, on_data, on_end};

static int run(const uint8_t *p, size_t n, size_t piece, unsigned flags, Run *out)
{
	BkTarParser *tp;
	memset(out, 0, sizeof(*out));
	if (bk_tar_parser_new(&cb, out, flags, &tp) < 0)
		return -1;
	int r = 0;
	for (size_t off = 0; off < n && r == 0; off += piece)
		r = bk_tar_parser_push(tp, p + off, n - off < piece ? n - off : piece);
	if (r == 0)
		r = bk_tar_parser_finish(tp);
	FUZZ_CHECK(r != 0 || !out->in_entry);
	FUZZ_CHECK(bk_tar_parser_entries(tp) == out->entries);
	bk_tar_parser_free(tp);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t piece = 1 + 7 * (size_t)data[0];
	unsigned flags = (data[1] & 1) ? BK_TAR_REQUIRE_END : 0;
	const uint8_t *p = data + 2;
	size_t n = size - 2;
	Run whole, pieces;
	int r1 = run(p, n, n ? n : 1, flags, &whole);
	int r2 = run(p, n, piece, flags, &pieces);
	FUZZ_CHECK(r1 == r2);
	FUZZ_CHECK(whole.entries == pieces.entries);
	if (r1 == 0)
		FUZZ_CHECK(whole.digest == pieces.digest);
	return 0;
}
