/* tests/pg/walgen.h: synthetic WAL, written as PostgreSQL 15 writes it, for the
 * tests of pg/wal.c (tests/test-pg-wal.c) and the seeds of its fuzz target
 * (tests/pg/fuzz-pg-walseg.c): segment 3 of a WAL of 1 MiB segments and 8 KiB
 * pages in seg[0..MB), then segment 4 in seg[MB..2 MB), which records written
 * past segment 3's end go on into. Records are appended at 8-byte boundaries with
 * their CRCs, and page headers written on the way (XLP_FIRST_IS_CONTRECORD while a
 * record goes on). */
#ifndef BK_TESTS_PG_WALGEN_H
#define BK_TESTS_PG_WALGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WALGEN_MB (1024u * 1024u)

typedef struct {
	uint8_t seg[2 * WALGEN_MB];
	uint64_t pos, base; /* write offset in seg; LSN of segment 3's start */
	uint64_t prev;      /* the LSN of the last record written (its xl_prev) */
	uint64_t sysid;     /* in the long page headers (walgen_start's) */
	bool vary_xid;      /* each record's xl_xid 700 + its offset % 1000, else 0 */
	/* a test's own: what its last walk of seg found (walgen leaves them be) */
	int64_t xact_us, cut_xact_us;
	bool cut_xact, stopped;
} WalGen;

/* A long page header (XLogLongPageHeaderData, 40 bytes; 64 cleared). */
void walgen_header(uint8_t *b, uint16_t magic, uint16_t info, uint32_t tli, uint64_t pageaddr,
		   uint64_t sysid, uint32_t seg_size, uint32_t blcksz);
/* Empties g and starts segment 3 of system sysid with a record of cont bytes going
 * on from the segment before (none: 0). */
void walgen_start(WalGen *g, uint64_t sysid, uint32_t cont);
/* Writes n bytes of a record (left: its bytes not written yet, these included). */
void walgen_put(WalGen *g, const uint8_t *data, size_t n, size_t left);
/* Sets xl_crc of the record at lsn as PostgreSQL does, its bytes read across page
 * headers; a record that runs past seg's end is left as it is. */
void walgen_seal(WalGen *g, uint64_t lsn);
/* Appends a record of tot_len bytes, its body starting with body[0..nb) (0x5A
 * after), with its CRC; returns its LSN. */
uint64_t walgen_record_body(WalGen *g, uint32_t tot_len, uint8_t rmid, uint8_t info,
			    const uint8_t *body, size_t nb);
uint64_t walgen_record(WalGen *g, uint32_t tot_len, uint8_t rmid, uint8_t info);

#endif
