/* Fuzz target: bk_snapshot_decode over arbitrary bytes (see fuzz.h). */
#include <string.h>

#include "store/snapshot.h"
#include "tests/fuzz/fuzz.h"

static void encode_or_die(const BkSnapshot *s, BkEnc *e)
{
	bk_enc_init(e, 64u << 20);
	FUZZ_CHECK(bk_snapshot_encode(s, e) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	BkSnapshot *s = NULL;
	if (bk_snapshot_decode(data, size, &s) < 0) {
		FUZZ_CHECK(s == NULL);
		return 0;
	}
	for (size_t i = 0; i < s->nmeta; i++)
		FUZZ_CHECK(bk_snapshot_meta(s, s->meta[i].key) != NULL);

	BkEnc e1, e2;
	encode_or_die(s, &e1);
	BkSnapshot *u = NULL;
	FUZZ_CHECK(bk_snapshot_decode(e1.buf, e1.len, &u) == 0);
	FUZZ_CHECK(u->ntags == s->ntags && u->nmeta == s->nmeta && u->time_us == s->time_us &&
		   strcmp(u->name, s->name) == 0);
	encode_or_die(u, &e2);
	FUZZ_CHECK(e1.len == e2.len && memcmp(e1.buf, e2.buf, e1.len) == 0);
	FUZZ_CHECK(e1.len <= size);
	bk_enc_release(&e1);
	bk_enc_release(&e2);
	bk_snapshot_free(u);
	bk_snapshot_free(s);
	return 0;
}
