/* Fuzz target: bk_content_node_decode over arbitrary bytes (see fuzz.h). The
 * decoder may stop before the end (a node can be inline in a tree entry): the
 * bytes after it are ignored. */
#include <string.h>

#include "store/content.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	BkDec d;
	bk_dec_init(&d, data, size);
	BkContentNode n = { 0 };
	if (bk_content_node_decode(&d, &n) < 0) {
		FUZZ_CHECK(n.refs == NULL && n.count == 0);
		return 0;
	}
	FUZZ_CHECK(n.count <= BK_CONTENT_MAX_REFS && n.level <= BK_CONTENT_MAX_LEVEL);
	FUZZ_CHECK(bk_content_node_size(&n) <= (uint64_t)INT64_MAX);

	BkEnc e1, e2;
	bk_enc_init(&e1, 1u << 20);
	FUZZ_CHECK(bk_content_node_encode(&n, &e1) == 0);
	FUZZ_CHECK(e1.len <= d.pos);
	bk_dec_init(&d, e1.buf, e1.len);
	BkContentNode m = { 0 };
	FUZZ_CHECK(bk_content_node_decode(&d, &m) == 0 && bk_dec_done(&d));
	FUZZ_CHECK(m.level == n.level && m.count == n.count &&
		   (n.count == 0 || memcmp(m.refs, n.refs, n.count * sizeof(*n.refs)) == 0));
	bk_enc_init(&e2, 1u << 20);
	FUZZ_CHECK(bk_content_node_encode(&m, &e2) == 0);
	FUZZ_CHECK(e1.len == e2.len && memcmp(e1.buf, e2.buf, e1.len) == 0);
	bk_enc_release(&e1);
	bk_enc_release(&e2);
	bk_content_node_release(&m);
	bk_content_node_release(&n);
	return 0;
}
