/* Unit tests for store/codec: varint and string round trips, caps and
 * truncation detection. */
#include <errno.h>
#include <string.h>

#include "store/codec.h"
#include "store/util.h"
#include "store/error.h"
#include "tests/tap.h"

/* bk_grow (store/util.h): grows only when full, doubling from the first
 * capacity, and keeps what the array held. */
static void test_grow(void)
{
	uint32_t *a = NULL;
	size_t cap = 0, grows = 0, bad = 0;
	for (uint32_t n = 0; n < 1000; n++) {
		size_t before = cap;
		if (bk_grow(&a, &cap, n, sizeof(*a), 4) < 0)
			break;
		grows += cap != before;
		a[n] = n * 7;
	}
	for (uint32_t n = 0; n < 1000; n++)
		bad += a[n] != n * 7;
	ok(cap == 1024 && grows == 9 && bad == 0,
	   "bk_grow: 1000 elements in capacity %zu after %zu grows, all kept (%zu wrong)", cap,
	   grows, bad);
	free(a);
}

/* bk_one_line (store/util.h): libpq's two-line messages read as two sentences on
 * one line; punctuation already there gets no period; tabs and runs of breaks
 * are one space; the cut keeps the NUL inside the buffer. */
static void test_one_line(void)
{
	char buf[128];
	bk_one_line(buf, sizeof(buf), "connection to server failed: Connection refused\n"
		    "\tIs the server running on that host?\n");
	ok(!strcmp(buf, "connection to server failed: Connection refused. Is the server running on "
	       "that host?"), "bk_one_line: a line break without punctuation becomes a period");
	bk_one_line(buf, sizeof(buf), "\n\tfailed:\n\n  detail\r\n");
	ok(!strcmp(buf, "failed: detail"), "bk_one_line: after a colon, one space; ends trimmed");
	bk_one_line(buf, sizeof(buf), "cannot open /srv/My  Files/x: denied");
	ok(!strcmp(buf, "cannot open /srv/My  Files/x: denied"),
	   "bk_one_line: spaces inside a line stay as they are (%s)", buf);
	bk_one_line(buf, sizeof(buf), "a\tb");
	ok(!strcmp(buf, "a b"), "bk_one_line: a tab is a space, not a sentence's end");
	char small[6];
	bk_one_line(small, sizeof(small), "abc\ndefgh");
	ok(!strcmp(small, "abc."), "bk_one_line: cut to fit (%s)", small);
	/* a cut inside a character drops its first bytes: "abcdé" cut in "é" read as
	 * "abcd\xc3" (cli_text escapes the stray byte) */
	bk_one_line(small, sizeof(small), "abcdé");
	ok(!strcmp(small, "abcd"), "bk_one_line: cut before a character that does not fit");
	char tiny[4];
	bk_one_line(tiny, sizeof(tiny), "a\xe6\x97\xa5");
	ok(!strcmp(tiny, "a"), "bk_one_line: a three-byte character cut after two bytes goes");
	bk_one_line(tiny, sizeof(tiny), "\xc3\xa9\xc3\xa9");
	ok(!strcmp(tiny, "\xc3\xa9"), "bk_one_line: a character that fits stays");
}

int main(void)
{
	test_grow();
	test_one_line();
	BkEnc e;
	bk_enc_init(&e, 1 << 20);
	const uint64_t vals[] = { 0, 1, 127, 128, 300, 1ull << 35, UINT64_MAX };
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		bk_enc_varint(&e, vals[i]);
	bk_enc_svarint(&e, -5);
	bk_enc_svarint(&e, INT64_MIN);
	bk_enc_cstr(&e, "hello");
	bk_enc_u32(&e, 0xdeadbeef);
	is_int(bk_enc_finish(&e), 0, "encoder ok");

	BkDec d;
	bk_dec_init(&d, e.buf, e.len);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		ok(bk_dec_varint(&d) == vals[i], "varint %zu round trips", i);
	is_int(bk_dec_svarint(&d), -5, "svarint -5");
	ok(bk_dec_svarint(&d) == INT64_MIN, "svarint min");
	size_t n;
	const uint8_t *s = bk_dec_str(&d, 100, &n);
	ok(s && n == 5 && memcmp(s, "hello", 5) == 0, "string round trips");
	ok(bk_dec_u32(&d) == 0xdeadbeef, "u32 round trips");
	ok(bk_dec_done(&d), "all consumed");

	/* every truncation is detected */
	bool all = true;
	for (size_t cut = 0; cut < e.len; cut++) {
		bk_dec_init(&d, e.buf, cut);
		for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
			bk_dec_varint(&d);
		bk_dec_svarint(&d);
		bk_dec_svarint(&d);
		bk_dec_str(&d, 100, &n);
		bk_dec_u32(&d);
		if (bk_dec_error(&d) != BK_E_CORRUPT)
			all = false;
	}
	ok(all, "every truncation fails with BK_E_CORRUPT");

	/* string over its cap */
	bk_dec_init(&d, e.buf, e.len);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]) + 2; i++)
		bk_dec_varint(&d);
	ok(bk_dec_str(&d, 4, &n) == NULL && bk_dec_error(&d) == BK_E_CORRUPT, "string cap enforced");

	/* over-long varint */
	const uint8_t bad[11] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	bk_dec_init(&d, bad, sizeof(bad));
	bk_dec_varint(&d);
	ok(bk_dec_error(&d) == BK_E_CORRUPT, "11-byte varint rejected");

	bk_enc_release(&e);
	bk_enc_init(&e, 8);
	bk_enc_bytes(&e, "123456789", 9);
	is_int(bk_enc_finish(&e), -E2BIG, "encoder cap enforced");
	bk_enc_release(&e);
	return tap_done();
}
