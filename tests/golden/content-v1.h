/* tests/golden/content-v1.h: golden vector for the content-list node format,
 * version 1 (store/content.h). Frozen: if an encoder change breaks this test,
 * the format changed and needs a new version, not a new vector.
 *
 * Node: level 1, refs { id 00 01 .. 1f, size 1 }, { id ff x 32, size 300 }. */
#ifndef BK_TESTS_GOLDEN_CONTENT_V1_H
#define BK_TESTS_GOLDEN_CONTENT_V1_H

static const char golden_content_node_v1[] =
	"01"   /* version 1 */
	"01"   /* level 1 */
	"02"   /* varint count 2 */
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" /* id */
	"01"   /* varint size 1 */
	"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff" /* id */
	"ac02" /* varint size 300 = 0x2c | 0x80, 0x02 */
	;

#endif
