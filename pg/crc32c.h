/* pg/crc32c.h: CRC-32C (Castagnoli), the checksum of PostgreSQL's WAL records.
 *
 * Place in the data flow: the WAL walker (pg/wal.c) checks each record's xl_crc as
 * PostgreSQL's recovery does, so that what wal-push records as a segment's end is
 * where recovery stops too. wal-push walks every segment it stores, 16 MiB at a
 * time, so speed matters: on x86-64 with SSE 4.2 the CPU's crc32 instruction does
 * it (10 GB/s a core here, one stream); elsewhere a table-driven loop (slicing by
 * 8, 2.2 GB/s). Both give the same result, which tests/test-pg-crc32c.c checks
 * against the published check values. No Debian package offers CRC-32C in C.
 *
 * Chaining as zlib's crc32(): bk_crc32c(0, a, n) is the CRC of a, and
 * bk_crc32c(bk_crc32c(0, a, n), b, m) that of a followed by b. PostgreSQL's
 * INIT_CRC32C/COMP_CRC32C/FIN_CRC32C over the same bytes give the same value.
 * Pure; thread-safe.
 */
#ifndef BK_PG_CRC32C_H
#define BK_PG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t bk_crc32c(uint32_t crc, const void *data, size_t n);

/* The portable loop alone, for tests and machines without the instruction. */
uint32_t bk_crc32c_portable(uint32_t crc, const void *data, size_t n);

#endif
