/* Unit tests for pg/crc32c: the published check values (RFC 3720's iSCSI vectors
 * and "123456789"), the same CRC from the instruction and the portable loop for
 * every length to 300 at every alignment to 8 and for random lengths to 70 KiB,
 * and chaining (a stream in pieces gives the CRC of the whole). A wrong
 * polynomial, a missing inversion, a tail loop that drops or repeats bytes or an
 * instruction path that disagrees with the loop fails here. */
#include <stdlib.h>
#include <string.h>

#include "pg/crc32c.h"
#include "tests/tap.h"

typedef uint32_t (*CrcFn)(uint32_t, const void *, size_t);

static void check_values(CrcFn f, const char *which)
{
	uint8_t b[32];
	ok(f(0, "123456789", 9) == 0xE3069283, "%s: \"123456789\" is E3069283", which);
	memset(b, 0, sizeof(b));
	ok(f(0, b, 32) == 0x8A9136AA, "%s: 32 zeros are 8A9136AA", which);
	memset(b, 0xFF, sizeof(b));
	ok(f(0, b, 32) == 0x62A8AB43, "%s: 32 0xFF bytes are 62A8AB43", which);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	ok(f(0, b, 32) == 0x46DD794E, "%s: 0..31 are 46DD794E", which);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	ok(f(0, b, 32) == 0x113FDB5C, "%s: 31..0 are 113FDB5C", which);
	ok(f(0, b, 0) == 0 && f(0x12345678, NULL, 0) == 0x12345678, "%s: no bytes change nothing",
	   which);
}

int main(void)
{
	check_values(bk_crc32c, "bk_crc32c");
	check_values(bk_crc32c_portable, "portable");

	enum { MAX = 70 << 10 };
	uint8_t *buf = malloc(MAX + 8);
	if (!buf)
		return tap_done();
	srand(7);
	for (size_t i = 0; i < MAX + 8; i++)
		buf[i] = (uint8_t)rand();
	bool same = true;
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n <= 300; n++)
			same &= bk_crc32c(0, buf + off, n) == bk_crc32c_portable(0, buf + off, n);
	for (int k = 0; k < 200; k++) {
		size_t n = (size_t)rand() % MAX, off = (size_t)rand() % 8;
		same &= bk_crc32c(0, buf + off, n) == bk_crc32c_portable(0, buf + off, n);
	}
	ok(same, "the instruction and the loop agree at every length and alignment");

	uint32_t whole = bk_crc32c(0, buf, MAX), pieces = 0, pieces_portable = 0;
	for (size_t at = 0; at < MAX;) {
		size_t n = (size_t)rand() % 3000;
		if (n > MAX - at)
			n = MAX - at;
		pieces = bk_crc32c(pieces, buf + at, n);
		pieces_portable = bk_crc32c_portable(pieces_portable, buf + at, n);
		at += n;
	}
	ok(pieces == whole && pieces_portable == whole, "a stream in random pieces gives the whole's");
	free(buf);
	return tap_done();
}
