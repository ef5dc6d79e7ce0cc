/* Fuzz target: walsender CopyData messages ('w', 'k'; see tests/fuzz/fuzz.h). */
#include "pg/replication.h"
#include "store/error.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	BkPgReplMsg m;
	if (bk_pgrepl_msg_parse(data, size, &m) == 0) {
		FUZZ_CHECK(m.kind == BK_PGREPL_MSG_XLOG || m.kind == BK_PGREPL_MSG_KEEPALIVE);
		if (m.kind == BK_PGREPL_MSG_XLOG)
			FUZZ_CHECK(m.data == data + 25 && m.len == size - 25);
		else
			FUZZ_CHECK(size == 18 && m.len == 0);
	}
	return 0;
}
