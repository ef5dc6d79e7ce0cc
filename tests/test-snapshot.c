/* Unit tests for store/snapshot: round trip with and without parent, tags and
 * meta, limits at and past their caps, golden bytes both ways, every truncation
 * and hand-made corruptions rejected, unknown versions refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/error.h"
#include "store/snapshot.h"
#include "store/util.h"
#include "tests/golden/snapshot-v1.h"
#include "tests/tap.h"

static char *tags3[] = { "daily", "pre-upgrade", "" };
static BkKv meta3[] = {
	{ "system_identifier", "7301234567890123456" },
	{ "timeline", "1" },
	{ "start_lsn", "0/2000028" },
};

/* The golden record (borrowed strings: never freed). */
static BkSnapshot golden(void)
{
	BkSnapshot s = {
		.time_us = 1700000000123456,
		.host = "db1",
		.name = "pg/main/base",
		.kind = "pg-base",
		.ntags = 2,
		.tags = tags3,
		.logical_bytes = 1ull << 30,
		.new_bytes = 12345,
		.files = 1200,
		.duration_us = 5000000,
		.has_parent = true,
		.nmeta = 3,
		.meta = meta3,
	};
	memset(s.root, 0xab, 32);
	memset(s.parent, 0xcd, 32);
	return s;
}

static bool snaps_equal(const BkSnapshot *a, const BkSnapshot *b)
{
	if (a->time_us != b->time_us || strcmp(a->host, b->host) || strcmp(a->name, b->name) ||
	    strcmp(a->kind, b->kind) || a->ntags != b->ntags || memcmp(a->root, b->root, 32) ||
	    a->logical_bytes != b->logical_bytes || a->new_bytes != b->new_bytes ||
	    a->files != b->files || a->duration_us != b->duration_us ||
	    a->has_parent != b->has_parent || (a->has_parent && memcmp(a->parent, b->parent, 32)) ||
	    a->nmeta != b->nmeta)
		return false;
	for (size_t i = 0; i < a->ntags; i++)
		if (strcmp(a->tags[i], b->tags[i]))
			return false;
	for (size_t i = 0; i < a->nmeta; i++)
		if (strcmp(a->meta[i].key, b->meta[i].key) || strcmp(a->meta[i].value, b->meta[i].value))
			return false;
	return true;
}

static uint8_t *unhex(const char *hex, size_t *ret_len)
{
	size_t len = strlen(hex) / 2;
	uint8_t *b = malloc(len ? len : 1);
	if (bk_unhex(b, len, hex) < 0) {
		free(b);
		return NULL;
	}
	*ret_len = len;
	return b;
}

static void test_golden(void)
{
	BkSnapshot s = golden();
	BkEnc e;
	bk_enc_init(&e, 1 << 20);
	is_int(bk_snapshot_encode(&s, &e), 0, "golden record encodes");
	char *hex = malloc(2 * e.len + 1);
	bk_hex(hex, e.buf, e.len);
	ok(strcmp(hex, golden_snapshot_v1) == 0, "golden record encodes to the golden bytes");
	if (strcmp(hex, golden_snapshot_v1) != 0)
		diag("got %s", hex);
	free(hex);
	bk_enc_release(&e);

	size_t len;
	uint8_t *bytes = unhex(golden_snapshot_v1, &len);
	BkSnapshot *d = NULL;
	ok(bytes && bk_snapshot_decode(bytes, len, &d) == 0 && snaps_equal(&s, d),
	   "golden bytes decode to the golden record");
	ok(d && strcmp(bk_snapshot_meta(d, "timeline"), "1") == 0 &&
		   bk_snapshot_meta(d, "stop_lsn") == NULL,
	   "meta lookup");
	bk_snapshot_free(d);

	bool all = true;
	for (size_t cut = 0; cut < len; cut++) {
		d = NULL;
		int r = bk_snapshot_decode(bytes, cut, &d);
		if (r != BK_E_CORRUPT || d) {
			diag("cut at %zu: %d", cut, r);
			all = false;
			bk_snapshot_free(d);
		}
	}
	ok(all, "all %zu truncations fail with BK_E_CORRUPT", len);

	bool clean = true;
	for (size_t i = 0; i < len; i++)
		for (int bit = 0; bit < 8; bit++) {
			bytes[i] ^= (uint8_t)(1u << bit);
			d = NULL;
			int r = bk_snapshot_decode(bytes, len, &d);
			if (r == 0) {
				BkEnc e2;
				bk_enc_init(&e2, 1 << 20);
				if (bk_snapshot_encode(d, &e2) != 0)
					clean = false;
				bk_enc_release(&e2);
				bk_snapshot_free(d);
			} else if (r != BK_E_CORRUPT && r != BK_E_VERSION) {
				clean = false;
			}
			bytes[i] ^= (uint8_t)(1u << bit);
		}
	ok(clean, "every bit flip is rejected or round trips");

	bytes[0] = 2;
	d = NULL;
	bk_error_clear();
	is_int(bk_snapshot_decode(bytes, len, &d), BK_E_VERSION, "version 2 refused: %s",
	       bk_error_detail());
	bytes[0] = 0;
	is_int(bk_snapshot_decode(bytes, len, &d), BK_E_VERSION, "version 0 refused");
	ok(d == NULL, "nothing handed out on failure");
	free(bytes);
}

static void round_trip(const BkSnapshot *s, const char *what)
{
	BkEnc e;
	bk_enc_init(&e, 64u << 20);
	int r = bk_snapshot_encode(s, &e);
	BkSnapshot *d = NULL;
	if (r == 0)
		r = bk_snapshot_decode(e.buf, e.len, &d);
	ok(r == 0 && snaps_equal(s, d), "%s round trips (%zu bytes): %s", what, e.len,
	   r ? bk_error_detail() : "");
	bk_snapshot_free(d);
	bk_enc_release(&e);
}

static void refuse(const BkSnapshot *s, const char *what)
{
	BkEnc e;
	bk_enc_init(&e, 64u << 20);
	bk_error_clear();
	int r = bk_snapshot_encode(s, &e);
	ok(r == BK_E_USAGE && bk_error_detail()[0], "encode refuses %s: %s", what,
	   bk_error_detail());
	bk_enc_release(&e);
}

static void test_round_trips(void)
{
	BkSnapshot s = golden();
	round_trip(&s, "golden record");
	s.has_parent = false;
	s.ntags = 3; /* includes an empty tag */
	round_trip(&s, "record without parent, with an empty tag");
	s.ntags = 0;
	s.nmeta = 0;
	s.time_us = INT64_MIN;
	s.logical_bytes = s.new_bytes = s.files = s.duration_us = UINT64_MAX;
	s.host = "h\xc3\xb4te";
	s.name = "";
	s.kind = "";
	round_trip(&s, "record without tags or meta, extreme values, UTF-8 host");

	/* at the caps */
	char *big = malloc(BK_SNAPSHOT_META_MAX + 2);
	memset(big, 'v', BK_SNAPSHOT_META_MAX + 1);
	big[BK_SNAPSHOT_META_MAX + 1] = '\0';
	char *str = malloc(BK_SNAPSHOT_STR_MAX + 2);
	memset(str, 's', BK_SNAPSHOT_STR_MAX + 1);
	str[BK_SNAPSHOT_STR_MAX + 1] = '\0';
	char **tags = calloc(BK_SNAPSHOT_MAX_ITEMS + 1, sizeof(char *));
	BkKv *meta = calloc(BK_SNAPSHOT_MAX_ITEMS + 1, sizeof(BkKv));
	for (size_t i = 0; i <= BK_SNAPSHOT_MAX_ITEMS; i++) {
		tags[i] = "t";
		meta[i] = (BkKv){ "k", "v" };
	}
	s = golden();
	big[BK_SNAPSHOT_META_MAX] = '\0';
	str[BK_SNAPSHOT_STR_MAX] = '\0';
	s.host = str;
	s.tags = tags;
	s.ntags = BK_SNAPSHOT_MAX_ITEMS;
	s.meta = meta;
	s.nmeta = BK_SNAPSHOT_MAX_ITEMS;
	meta[0].value = big;
	meta[1].key = str;
	round_trip(&s, "record with every field at its cap");

	str[BK_SNAPSHOT_STR_MAX] = 's';
	refuse(&s, "a 4097-byte host");
	s.host = "db1";
	refuse(&s, "a 4097-byte meta key");
	meta[1].key = "k";
	big[BK_SNAPSHOT_META_MAX] = 'v';
	refuse(&s, "a meta value over 1 MiB");
	big[BK_SNAPSHOT_META_MAX] = '\0';
	s.ntags = BK_SNAPSHOT_MAX_ITEMS + 1;
	refuse(&s, "1025 tags");
	s.ntags = 1;
	s.nmeta = BK_SNAPSHOT_MAX_ITEMS + 1;
	refuse(&s, "1025 meta pairs");
	s.nmeta = 1;
	s.kind = NULL;
	refuse(&s, "a NULL kind");
	s.kind = "x";
	tags[0] = NULL;
	refuse(&s, "a NULL tag");
	free(big);
	free(str);
	free(tags);
	free(meta);

	s = golden();
	BkEnc e;
	bk_enc_init(&e, 16);
	is_int(bk_snapshot_encode(&s, &e), -E2BIG, "encoder cap gives -E2BIG");
	bk_enc_release(&e);
}

static void expect(const char *hex, int code, const char *what)
{
	size_t len;
	uint8_t *b = unhex(hex, &len);
	BkSnapshot *s = NULL;
	bk_error_clear();
	int r = b ? bk_snapshot_decode(b, len, &s) : -999;
	ok(r == code && (r == 0 ? s != NULL : s == NULL && bk_error_detail()[0]), "%s: %d (%s)",
	   what, r, bk_error_detail());
	bk_snapshot_free(s);
	free(b);
}

static void test_decode_rejects(void)
{
#define ID "0000000000000000000000000000000000000000000000000000000000000000"
#define HEAD "01" "00" "00" "00" "00" /* version, time 0, host "", name "", kind "" */
#define STATS ID "00" "00" "00" "00" /* root, 4 statistics */
	expect(HEAD "00" STATS "00" "00", 0, "minimal record decodes");
	expect(HEAD "00" STATS "01" ID "00", 0, "record with parent decodes");
	expect(HEAD "00" STATS "02" ID "00", BK_E_CORRUPT, "has_parent 2");
	expect(HEAD "00" STATS "01" "00", BK_E_CORRUPT, "truncated parent");
	expect(HEAD "00" STATS "00" "00" "00", BK_E_CORRUPT, "trailing byte");
	expect(HEAD "00" STATS "00", BK_E_CORRUPT, "missing meta count");
	expect("01" "00" "03610062" "00" "00" "00" STATS "00" "00", BK_E_CORRUPT, "NUL in host");
	expect("01" "00" "00" "00" "8120", BK_E_CORRUPT, "kind of 4097 bytes (length alone)");
	expect(HEAD "8108" STATS "00" "00", BK_E_CORRUPT, "1025 tags");
	expect(HEAD "02" "00" STATS "00" "00", BK_E_CORRUPT, "fewer tags than counted");
	expect(HEAD "01" "0100" STATS "00" "00", BK_E_CORRUPT, "NUL in a tag");
	expect(HEAD "00" STATS "00" "8108", BK_E_CORRUPT, "1025 meta pairs");
	expect(HEAD "00" STATS "00" "01" "00" "00", 0, "empty meta key and value");
	expect(HEAD "00" STATS "00" "01" "00", BK_E_CORRUPT, "meta key without value");
	expect(HEAD "00" STATS "00" "01" "00" "818040", BK_E_CORRUPT,
	       "meta value over 1 MiB (length alone)");
	expect(HEAD "00" ID "00", BK_E_CORRUPT, "truncated statistics");
	expect("01", BK_E_CORRUPT, "version alone");
	expect("", BK_E_CORRUPT, "empty input");
	expect("ff", BK_E_VERSION, "version 255");
#undef ID
#undef HEAD
#undef STATS
}

int main(void)
{
	test_golden();
	test_round_trips();
	test_decode_rejects();
	return tap_done();
}
