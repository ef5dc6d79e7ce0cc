/* Fuzz target: bk_tree_decode over arbitrary bytes (see fuzz.h). */
#include <string.h>

#include "store/tree.h"
#include "tests/fuzz/fuzz.h"

static void encode_or_die(BkTree *t, BkEnc *e)
{
	bk_enc_init(e, BK_TREE_MAX_BYTES);
	FUZZ_CHECK(bk_tree_encode(t, e) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	BkTree *t = NULL;
	if (bk_tree_decode(data, size, &t) < 0) {
		FUZZ_CHECK(t == NULL);
		return 0;
	}
	for (size_t i = 0; i < t->count; i++)
		FUZZ_CHECK(bk_tree_find(t, t->entries[i].name) == &t->entries[i]);

	/* decode(encode(t)) encodes to the same bytes */
	BkEnc e1, e2;
	encode_or_die(t, &e1);
	BkTree *u = NULL;
	FUZZ_CHECK(bk_tree_decode(e1.buf, e1.len, &u) == 0);
	FUZZ_CHECK(u->count == t->count);
	encode_or_die(u, &e2);
	FUZZ_CHECK(e1.len == e2.len && memcmp(e1.buf, e2.buf, e1.len) == 0);
	FUZZ_CHECK(e1.len <= size); /* re-encoding never grows: varints become minimal */
	bk_enc_release(&e1);
	bk_enc_release(&e2);
	bk_tree_free(u);
	bk_tree_free(t);
	return 0;
}
