/* tests/golden/walrecord.h: golden vectors for the WAL record format, versions 1
 * to 4 (pg/walarchive.h). Frozen: if an encoder change breaks a test that uses
 * them, the format changed and needs a new version, not a new vector.
 *
 * Record: file 000000010000000000000003, size 5, system 7, timeline 1, pushed at
 * 1795380000000000 us; content: a level-0 node of one ref { id 00 01 .. 1f, size 5 }.
 * Version 2 adds its end: LSN 0/3000028, last transaction at 1795380000000001 us,
 * no cut transaction's time, cut_xact set, walked by walker revision 1, 2 or 3 (the
 * byte that says which is data, not format: a new revision needs no new vector). */
#ifndef BK_TESTS_GOLDEN_WALRECORD_H
#define BK_TESTS_GOLDEN_WALRECORD_H

#define GOLDEN_WAL_HEAD                                                                  \
	"18" "303030303030303130303030303030303030303030303033" /* str: the name */       \
	"05"                                                    /* varint size 5 */       \
	"0700000000000000"                                      /* u64 system id 7 */     \
	"01000000"                                              /* u32 timeline 1 */      \
	"80a098b2efb8b006"                                      /* svarint pushed_us */
#define GOLDEN_WAL_NODE                                                                  \
	"01" "00" "01" /* content node version 1, level 0, varint count 1 */              \
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" /* id */        \
	"05"                                                               /* size 5 */

#define GOLDEN_WAL_V1 "01" GOLDEN_WAL_HEAD GOLDEN_WAL_NODE
/* rev: the walker revision byte (end_rev), "01" to "03" (pg/wal.h's BK_WAL_END_REV) */
#define GOLDEN_WAL_V2_REV(rev)                                                           \
	"02" GOLDEN_WAL_HEAD rev   /* u8 end_rev */                                        \
	"a8808018"                 /* varint end.lsn 0x3000028 */                          \
	"82a098b2efb8b006"         /* svarint end.xact_us */                               \
	"00"                       /* svarint end.cut_xact_us 0 */                         \
	"01"                       /* u8 end.cut_xact */                                   \
	GOLDEN_WAL_NODE

/* Version 3: the flags byte in place of cut_xact (bit 0 cut_xact, bit 1 stopped). */
#define GOLDEN_WAL_V3(rev, flags)                                                        \
	"03" GOLDEN_WAL_HEAD rev   /* u8 end_rev */                                        \
	"a8808018"                 /* varint end.lsn 0x3000028 */                          \
	"82a098b2efb8b006"         /* svarint end.xact_us */                               \
	"00"                       /* svarint end.cut_xact_us 0 */                         \
	flags                      /* u8 end.flags */                                      \
	GOLDEN_WAL_NODE

/* Version 4: flags bit 2 says a carry follows (the record the segment's end cuts):
 * here LSN 0/3FFF000, its whole 24-byte header 00 01 .. 17, and the CRC-32C state
 * deadbeef of its data in the segment. */
#define GOLDEN_WAL_CARRY                                                                 \
	"80e0ff1f"                 /* varint carry.lsn 0x3FFF000 */                        \
	"18"                       /* u8 carry.head 24 */                                  \
	"000102030405060708090a0b0c0d0e0f1011121314151617" /* its header bytes */          \
	"efbeadde"                 /* u32 carry.crc */
#define GOLDEN_WAL_V4(rev, flags, carry)                                                 \
	"04" GOLDEN_WAL_HEAD rev   /* u8 end_rev */                                        \
	"a8808018"                 /* varint end.lsn 0x3000028 */                          \
	"82a098b2efb8b006"         /* svarint end.xact_us */                               \
	"00"                       /* svarint end.cut_xact_us 0 */                         \
	flags                      /* u8 end.flags */                                      \
	carry                      /* when flags has bit 2 */                              \
	GOLDEN_WAL_NODE

#endif
