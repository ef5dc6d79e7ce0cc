/* Fuzz target: WAL page headers (and, behind a header that parses, the walk to
 * the segment's last record), timeline history files, WAL names and LSNs (see
 * tests/fuzz/fuzz.h). Byte 0 picks the decoder, the rest is its input. Accepted
 * names and LSNs must format back to the same text; a last record lies inside the
 * input's segment. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pg/wal.h"
#include "store/error.h"
#include "tests/fuzz/fuzz.h"

static const char *names[] = {NULL, "000000010000000000000001", "000000020000000000000003",
                              "0000000100000001000000FF.partial", "00000001.history"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 4) {
	case 0: {
		BkWalHeader h;
		const char *name = names[(data[0] / 4) % 5];
		if (bk_wal_header_parse(p, n, name, &h) == 0) {
			FUZZ_CHECK(n >= BK_WAL_LONG_HEADER_SIZE && h.pg_major != 0);
			FUZZ_CHECK(bk_wal_seg_size_valid(h.seg_size) && h.pageaddr % h.seg_size == 0);
			/* the input as a (short) segment file: pages past its end are missing */
			int fd = memfd_create("fuzz-wal", 0);
			FUZZ_CHECK(fd >= 0 && write(fd, p, n) == (ssize_t)n);
			BkWalEnd end;
			FUZZ_CHECK(bk_wal_last_record(fd, name, NULL, &end) == 0);
			FUZZ_CHECK(end.lsn == 0 || (end.lsn > h.pageaddr && end.lsn < h.pageaddr + n));
			FUZZ_CHECK(end.xact_us == 0 || end.lsn != 0);
			FUZZ_CHECK(end.carry.head <= 24);
			/* again with a carry made of the input's own bytes: the record the
			 * segment before cut, checked across */
			BkWalCarry c = { .head = (uint8_t)(8 + 8 * (data[0] / 4 % 3)), .crc = p[39] };
			memcpy(c.hdr, p + 16, c.head);
			FUZZ_CHECK(bk_wal_last_record(fd, name, &c, &end) == 0);
			FUZZ_CHECK(end.lsn == 0 || (end.lsn > h.pageaddr && end.lsn < h.pageaddr + n));
			FUZZ_CHECK(end.carry.head <= 24);
			close(fd);
		}
		break;
	}
	case 1: {
		BkWalTliSwitch sw[16];
		size_t k = 0;
		uint32_t file_tli = data[0] / 4;
		if (bk_wal_history_parse(p, n, file_tli, sw, 16, &k) == 0) {
			FUZZ_CHECK(k <= 16);
			/* switch points may decrease (pg/wal.h: a recovery along a timeline
			 * to a point before it began) */
			for (size_t i = 1; i < k; i++)
				FUZZ_CHECK(sw[i].tli > sw[i - 1].tli);
			for (size_t i = 0; i < k; i++)
				FUZZ_CHECK(sw[i].tli != 0 && (file_tli == 0 || sw[i].tli < file_tli));
		}
		break;
	}
	case 2: {
		char s[128];
		size_t len = n < sizeof(s) - 1 ? n : sizeof(s) - 1;
		memcpy(s, p, len);
		s[len] = '\0';
		BkWalName w;
		if (bk_wal_name_parse(s, &w) == 0) {
			char out[BK_WAL_NAME_MAX];
			uint64_t segno;
			FUZZ_CHECK(w.tli != 0);
			if (w.kind == BK_WAL_SEGMENT && bk_wal_name_segno(&w, BK_WAL_SEG_SIZE_DEFAULT, &segno) == 0) {
				FUZZ_CHECK(bk_wal_segment_name(out, sizeof(out), w.tli, segno,
				                               BK_WAL_SEG_SIZE_DEFAULT) == 0);
				FUZZ_CHECK(strcmp(out, s) == 0);
			}
			if (w.kind == BK_WAL_HISTORY) {
				FUZZ_CHECK(bk_wal_history_name(out, sizeof(out), w.tli) == 0);
				FUZZ_CHECK(strcmp(out, s) == 0);
			}
		}
		break;
	}
	case 3: {
		char s[64];
		size_t len = n < sizeof(s) - 1 ? n : sizeof(s) - 1;
		memcpy(s, p, len);
		s[len] = '\0';
		uint64_t lsn, again;
		if (bk_wal_lsn_parse(s, &lsn) == 0) {
			char out[BK_WAL_LSN_MAX];
			FUZZ_CHECK(bk_wal_lsn_format(out, sizeof(out), lsn) == 0);
			FUZZ_CHECK(bk_wal_lsn_parse(out, &again) == 0 && again == lsn);
		}
		break;
	}
	}
	return 0;
}
