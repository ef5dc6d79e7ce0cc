/* Fuzz target: the tar stream parser (see tests/fuzz/fuzz.h).
 *
 * Input: byte 0 picks the push sizes (0: one byte at a time; else it seeds a
 * sequence of sizes that vary from push to push: a few bytes, around a block,
 * up to a few blocks, up to 64 KiB, as a network stream arrives), byte 1 bit 0
 * sets BK_TAR_REQUIRE_END, bit 1 sets the checksum of every block that holds
 * the ustar magic (so that mutated headers get past their checksum), the rest is
 * the archive. The archive is parsed twice,
 * in one push and in pieces; both runs must agree on the outcome and on every
 * callback, and the callbacks must always see a well-formed sequence. */
#include <stdio.h>
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

/* The next push size: 1 for seed 0, else from a xorshift sequence seeded by it. */
static size_t next_piece(uint32_t *s)
{
	if (*s == 0)
		return 1;
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	uint32_t v = *s >> 4;
	switch (*s & 3) {
	case 0: return 1 + v % 8;
	case 1: return BK_TAR_BLOCK - 2 + v % 5; /* 510..514 */
	case 2: return 1 + v % (4 * BK_TAR_BLOCK);
	default: return 1 + v % 65536;
	}
}

/* whole: everything in one push; else pieces of next_piece(&seed) bytes */
static int run(const uint8_t *p, size_t n, bool whole, uint32_t seed, unsigned flags, Run *out)
{
	BkTarParser *tp;
	memset(out, 0, sizeof(*out));
	if (bk_tar_parser_new(&cb, out, flags, &tp) < 0)
		return -1;
	int r = 0;
	for (size_t off = 0, piece; off < n && r == 0; off += piece) {
		piece = whole ? n : next_piece(&seed);
		piece = n - off < piece ? n - off : piece;
		r = bk_tar_parser_push(tp, p + off, piece);
	}
	if (whole && n == 0) /* an empty push changes nothing */
		r = bk_tar_parser_push(tp, p, 0);
	FUZZ_CHECK(r != 0 || bk_tar_parser_offset(tp) == n);
	if (r == 0)
		r = bk_tar_parser_finish(tp);
	FUZZ_CHECK(r != 0 || !out->in_entry);
	FUZZ_CHECK(bk_tar_parser_entries(tp) == out->entries);
	bk_tar_parser_free(tp);
	return r;
}

/* Writes the checksum of each block with the ustar magic as tar does ("%06o\0 "). */
static void set_checksums(uint8_t *p, size_t n)
{
	for (size_t at = 0; at + BK_TAR_BLOCK <= n; at += BK_TAR_BLOCK) {
		uint8_t *b = p + at;
		if (memcmp(b + 257, "ustar", 5) != 0)
			continue;
		memset(b + 148, ' ', 8);
		unsigned sum = 0;
		for (size_t i = 0; i < BK_TAR_BLOCK; i++)
			sum += b[i];
		char f[8];
		snprintf(f, sizeof(f), "%06o", sum & 0777777);
		memcpy(b + 148, f, 7); /* the digits and their NUL, then the space */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint32_t seed = data[0] ? 0x9e3779b9u * data[0] : 0;
	unsigned flags = (data[1] & 1) ? BK_TAR_REQUIRE_END : 0;
	size_t n = size - 2;
	uint8_t *copy = NULL;
	const uint8_t *p = data + 2;
	if (data[1] & 2) {
		FUZZ_CHECK((copy = malloc(n ? n : 1)) != NULL);
		memcpy(copy, data + 2, n);
		set_checksums(copy, n);
		p = copy;
	}
	Run whole, pieces;
	int r1 = run(p, n, true, 0, flags, &whole);
	int r2 = run(p, n, false, seed, flags, &pieces);
	FUZZ_CHECK(r1 == r2);
	FUZZ_CHECK(whole.entries == pieces.entries);
	if (r1 == 0)
		FUZZ_CHECK(whole.digest == pieces.digest);
	free(copy);
	return 0;
}
