/* Unit tests for store/tree: round trip of every entry type with non-ASCII and
 * 1024-byte names, bytewise sort order, find, duplicate and bad names refused,
 * golden bytes both ways, every truncation and many hand-made corruptions
 * rejected, and unknown versions refused with BK_E_VERSION. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/error.h"
#include "store/tree.h"
#include "store/treebuild.h"
#include "store/util.h"
#include "tests/golden/tree-v1.h"
#include "tests/tap.h"

static BkTreeEntry entry(const char *name, uint8_t type)
{
	return (BkTreeEntry){ .name = strdup(name), .type = type, .mode = 0644 };
}

static BkContentNode one_ref(uint8_t fill, uint64_t size)
{
	BkContentNode n = { .level = 0, .count = 1, .refs = calloc(1, sizeof(BkContentRef)) };
	memset(n.refs[0].id, fill, 32);
	n.refs[0].size = size;
	return n;
}

/* The golden tree: one entry of every type, a non-ASCII name, a file with one
 * chunk and an empty file. Added out of order on purpose. */
static BkTree *golden_tree(void)
{
	BkTree *t = bk_tree_new();
	BkTreeEntry e;

	e = entry("\xc3\xa9", BK_NODE_FILE); /* "é", sorts last (0xc3 > ASCII) */
	e.mtime_sec = 0;
	bk_tree_add(t, &e);

	e = entry("sock", BK_NODE_SOCK);
	e.mode = 0755;
	bk_tree_add(t, &e);

	e = entry("bin", BK_NODE_DIR);
	e.mode = 0755;
	e.mtime_sec = 1700000000;
	e.mtime_nsec = 5;
	memset(e.subtree, 0x11, 32);
	bk_tree_add(t, &e);

	e = entry("data.txt", BK_NODE_FILE);
	e.uid = 1000;
	e.gid = 1000;
	e.mtime_sec = 1700000001;
	e.size = 300;
	e.content = one_ref(0x22, 300);
	bk_tree_add(t, &e);

	e = entry("link", BK_NODE_SYMLINK);
	e.mode = 0777;
	e.size = 8;
	e.link = strdup("data.txt");
	bk_tree_add(t, &e);

	e = entry("fifo", BK_NODE_FIFO);
	e.mode = 0600;
	e.mtime_sec = -1; /* before the epoch */
	e.mtime_nsec = 999999999;
	bk_tree_add(t, &e);

	e = entry("null", BK_NODE_CHR);
	e.mode = 0666;
	e.rdev = 259; /* makedev(1, 3) */
	bk_tree_add(t, &e);

	e = entry("sda", BK_NODE_BLK);
	e.mode = 0660;
	e.gid = 6;
	e.rdev = 2048; /* makedev(8, 0) */
	bk_tree_add(t, &e);
	return t;
}

static bool entries_equal(const BkTreeEntry *a, const BkTreeEntry *b)
{
	if (strcmp(a->name, b->name) || a->type != b->type || a->mode != b->mode ||
	    a->uid != b->uid || a->gid != b->gid || a->mtime_sec != b->mtime_sec ||
	    a->mtime_nsec != b->mtime_nsec || a->size != b->size)
		return false;
	switch (a->type) {
	case BK_NODE_DIR:
		return memcmp(a->subtree, b->subtree, 32) == 0;
	case BK_NODE_SYMLINK:
		return strcmp(a->link, b->link) == 0;
	case BK_NODE_CHR:
	case BK_NODE_BLK:
		return a->rdev == b->rdev;
	case BK_NODE_FILE:
		return a->content.level == b->content.level && a->content.count == b->content.count &&
		       (a->content.count == 0 ||
			memcmp(a->content.refs, b->content.refs,
			       a->content.count * sizeof(BkContentRef)) == 0);
	default:
		return true;
	}
}

static bool trees_equal(const BkTree *a, const BkTree *b)
{
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++)
		if (!entries_equal(&a->entries[i], &b->entries[i]))
			return false;
	return true;
}

static uint8_t *unhex(const char *hex, size_t *ret_len)
{
	size_t len = strlen(hex) / 2;
	uint8_t *b = malloc(len ? len : 1);
	if (bk_unhex(b, len, hex) < 0) {
		free(b);
		return NULL;
	}
	*ret_len = len;
	return b;
}

static void test_golden(void)
{
	BkTree *t = golden_tree();
	BkEnc e;
	bk_enc_init(&e, BK_TREE_MAX_BYTES);
	is_int(bk_tree_encode(t, &e), 0, "golden tree encodes");
	char *hex = malloc(2 * e.len + 1);
	bk_hex(hex, e.buf, e.len);
	ok(strcmp(hex, golden_tree_v1) == 0, "golden tree encodes to the golden bytes");
	if (strcmp(hex, golden_tree_v1) != 0)
		diag("got %s", hex);
	free(hex);

	size_t len;
	uint8_t *bytes = unhex(golden_tree_v1, &len);
	BkTree *d = NULL;
	ok(bytes && bk_tree_decode(bytes, len, &d) == 0 && trees_equal(t, d),
	   "golden bytes decode to the golden tree");
	ok(d && d->count == 8 && strcmp(d->entries[7].name, "\xc3\xa9") == 0 &&
		   d->entries[7].content.count == 0 && d->entries[0].type == BK_NODE_DIR,
	   "golden tree is sorted bytewise");
	bk_tree_free(d);

	/* every truncation fails cleanly */
	bool all = true;
	for (size_t cut = 0; cut < len; cut++) {
		d = NULL;
		int r = bk_tree_decode(bytes, cut, &d);
		if (r != BK_E_CORRUPT || d) {
			diag("cut at %zu: %d", cut, r);
			all = false;
			bk_tree_free(d);
		}
	}
	ok(all, "all %zu truncations fail with BK_E_CORRUPT", len);

	/* every single-byte change decodes or fails, and whatever decodes re-encodes */
	bool clean = true;
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			bytes[i] ^= (uint8_t)(1u << bit);
			d = NULL;
			int r = bk_tree_decode(bytes, len, &d);
			if (r == 0) {
				BkEnc e2;
				bk_enc_init(&e2, BK_TREE_MAX_BYTES);
				if (bk_tree_encode(d, &e2) != 0)
					clean = false;
				bk_enc_release(&e2);
				bk_tree_free(d);
			} else if (r != BK_E_CORRUPT && r != BK_E_VERSION) {
				clean = false;
			}
			bytes[i] ^= (uint8_t)(1u << bit);
		}
	}
	ok(clean, "every bit flip is rejected or round trips");

	/* version */
	bytes[0] = 2;
	d = NULL;
	bk_error_clear();
	is_int(bk_tree_decode(bytes, len, &d), BK_E_VERSION, "version 2 refused: %s",
	       bk_error_detail());
	bytes[0] = 0;
	is_int(bk_tree_decode(bytes, len, &d), BK_E_VERSION, "version 0 refused");
	free(bytes);
	bk_enc_release(&e);
	bk_tree_free(t);
}

static void test_round_trip(void)
{
	BkTree *t = bk_tree_new();
	char longname[BK_TREE_NAME_MAX + 1];
	memset(longname, 'x', BK_TREE_NAME_MAX);
	longname[BK_TREE_NAME_MAX] = '\0';
	char longlink[BK_TREE_LINK_MAX + 1];
	memset(longlink, 'l', BK_TREE_LINK_MAX);
	longlink[BK_TREE_LINK_MAX] = '\0';
	const char *names[] = { "b", "B", "a", "aa", "a b", "\xc3\xa9t\xc3\xa9", "\xe6\x97\xa5",
				"\x7f", "\x01", "-", longname, ".hidden", "...", "a.." };
	for (size_t i = 0; i < BK_ARRAY_SIZE(names); i++) {
		uint8_t type = (uint8_t)(1 + i % 7);
		BkTreeEntry e = entry(names[i], type);
		e.uid = UINT32_MAX;
		e.gid = (uint32_t)i;
		e.mode = 07777;
		e.mtime_sec = i % 2 ? INT64_MIN : INT64_MAX;
		e.mtime_nsec = (uint32_t)i;
		if (type == BK_NODE_FILE) {
			BkContentNode n = { .level = 3, .count = 3,
					    .refs = calloc(3, sizeof(BkContentRef)) };
			for (int k = 0; k < 3; k++) {
				memset(n.refs[k].id, k + (int)i, 32);
				n.refs[k].size = (uint64_t)INT64_MAX / 3;
			}
			e.content = n;
			e.size = bk_content_node_size(&n);
		} else if (type == BK_NODE_SYMLINK) {
			e.link = strdup(i % 2 ? longlink : "\xc3\xa9/../x");
		} else if (type == BK_NODE_DIR) {
			memset(e.subtree, (int)i, 32);
		} else if (type == BK_NODE_CHR || type == BK_NODE_BLK) {
			e.rdev = UINT64_MAX - i;
		}
		if (type != BK_NODE_FILE)
			e.size = (uint64_t)INT64_MAX - i;
		is_int(bk_tree_add(t, &e), 0, "add entry %zu (type %u)", i, type);
		ok(e.name == NULL && e.link == NULL && e.content.refs == NULL,
		   "add takes ownership of entry %zu", i);
	}
	BkEnc e;
	bk_enc_init(&e, BK_TREE_MAX_BYTES);
	is_int(bk_tree_encode(t, &e), 0, "tree with every type encodes");
	bool sorted = true;
	for (size_t i = 1; i < t->count; i++)
		if (memcmp(t->entries[i - 1].name, t->entries[i].name,
			   BK_MIN(strlen(t->entries[i - 1].name), strlen(t->entries[i].name)) + 1) >= 0)
			sorted = false;
	ok(sorted, "encode sorts entries bytewise (unsigned)");
	ok(strcmp(t->entries[0].name, "\x01") == 0 &&
		   strcmp(t->entries[t->count - 1].name, "\xe6\x97\xa5") == 0,
	   "control characters first, multibyte UTF-8 last");
	BkTree *d = NULL;
	is_int(bk_tree_decode(e.buf, e.len, &d), 0, "it decodes");
	ok(d && trees_equal(t, d), "decoded tree equals the original");
	bool found = true;
	for (size_t i = 0; d && i < BK_ARRAY_SIZE(names); i++) {
		const BkTreeEntry *x = bk_tree_find(d, names[i]);
		if (!x || strcmp(x->name, names[i]) != 0)
			found = false;
	}
	ok(found, "find locates every name");
	ok(d && !bk_tree_find(d, "c") && !bk_tree_find(d, "") && !bk_tree_find(d, "\xff"),
	   "find misses absent names");
	const BkTreeEntry *x = d ? bk_tree_find(d, longname) : NULL;
	ok(x && strlen(x->name) == BK_TREE_NAME_MAX, "1024-byte name survives");

	/* re-encoding the decoded tree gives the same bytes */
	BkEnc e2;
	bk_enc_init(&e2, BK_TREE_MAX_BYTES);
	ok(d && bk_tree_encode(d, &e2) == 0 && e2.len == e.len && memcmp(e.buf, e2.buf, e.len) == 0,
	   "encoding is deterministic");
	bk_enc_release(&e2);

	/* an encoder too small is -E2BIG, not a partial success */
	bk_enc_init(&e2, 64);
	is_int(bk_tree_encode(d, &e2), -E2BIG, "encoder cap gives -E2BIG");
	bk_enc_release(&e2);
	bk_tree_free(d);
	bk_enc_release(&e);
	bk_tree_free(t);

	/* the empty tree */
	t = bk_tree_new();
	bk_enc_init(&e, 64);
	ok(bk_tree_encode(t, &e) == 0 && e.len == 2 && e.buf[0] == 1 && e.buf[1] == 0,
	   "empty tree encodes to 01 00");
	d = NULL;
	ok(bk_tree_decode(e.buf, e.len, &d) == 0 && d->count == 0 && !bk_tree_find(d, "a"),
	   "empty tree decodes");
	bk_tree_free(d);
	bk_enc_release(&e);
	bk_tree_free(t);
}

/* Encoding a one-entry tree with the given entry must fail with BK_E_USAGE. */
static void refuse(BkTreeEntry e, const char *what)
{
	BkTree *t = bk_tree_new();
	bk_tree_add(t, &e);
	BkEnc enc;
	bk_enc_init(&enc, 1 << 20);
	bk_error_clear();
	int r = bk_tree_encode(t, &enc);
	ok(r == BK_E_USAGE && bk_error_detail()[0], "encode refuses %s: %s", what,
	   bk_error_detail());
	bk_enc_release(&enc);
	bk_tree_free(t);
}

static void test_encode_refuses(void)
{
	char toolong[BK_TREE_NAME_MAX + 2];
	memset(toolong, 'x', BK_TREE_NAME_MAX + 1);
	toolong[BK_TREE_NAME_MAX + 1] = '\0';
	const char *bad[] = { "", ".", "..", "a/b", "/", "a/", toolong };
	for (size_t i = 0; i < BK_ARRAY_SIZE(bad); i++) {
		char what[64];
		snprintf(what, sizeof(what), "name \"%.20s\" (%zu bytes)", bad[i], strlen(bad[i]));
		refuse(entry(bad[i], BK_NODE_FIFO), what);
	}
	BkTreeEntry e = entry("x", 0);
	refuse(e, "type 0");
	e = entry("x", 8);
	refuse(e, "type 8");
	e = entry("x", BK_NODE_FIFO);
	e.mode = 010000;
	refuse(e, "mode with file-type bits");
	e = entry("x", BK_NODE_FIFO);
	e.mtime_nsec = 1000000000;
	refuse(e, "mtime_nsec of 1e9");
	e = entry("x", BK_NODE_SYMLINK);
	refuse(e, "a symlink without target");
	char longlink[BK_TREE_LINK_MAX + 2];
	memset(longlink, 'l', BK_TREE_LINK_MAX + 1);
	longlink[BK_TREE_LINK_MAX + 1] = '\0';
	e = entry("x", BK_NODE_SYMLINK);
	e.link = strdup(longlink);
	refuse(e, "a 4097-byte symlink target");
	e = entry("x", BK_NODE_FILE);
	e.size = 10;
	e.content = one_ref(1, 9);
	refuse(e, "a file whose content size differs");
	e = entry("x", BK_NODE_FILE);
	e.size = 0;
	e.content = (BkContentNode){ .level = 1 };
	refuse(e, "a file with an empty level-1 root");

	/* duplicates */
	BkTree *t = bk_tree_new();
	BkTreeEntry a = entry("same", BK_NODE_FIFO), b = entry("other", BK_NODE_FIFO),
		    c = entry("same", BK_NODE_DIR);
	bk_tree_add(t, &a);
	bk_tree_add(t, &b);
	bk_tree_add(t, &c);
	BkEnc enc;
	bk_enc_init(&enc, 1 << 20);
	bk_error_clear();
	ok(bk_tree_encode(t, &enc) == BK_E_USAGE && strstr(bk_error_detail(), "same"),
	   "duplicate names refused: %s", bk_error_detail());
	bk_enc_release(&enc);
	bk_tree_free(t);
}

/* Hand-made encodings: one entry (or two) spliced from hex pieces. */
static void expect(const char *hex, int code, const char *what)
{
	size_t len;
	uint8_t *b = unhex(hex, &len);
	BkTree *t = NULL;
	bk_error_clear();
	int r = b ? bk_tree_decode(b, len, &t) : -999;
	ok(r == code && (r == 0 ? t != NULL : t == NULL && bk_error_detail()[0]), "%s: %d (%s)",
	   what, r, bk_error_detail());
	bk_tree_free(t);
	free(b);
}

static void test_decode_rejects(void)
{
	/* FIFO entry body after the name: type 04, mode 00, uid 00, gid 00, mtime 00,
	 * nsec 00, size 00 */
#define FIFO "04000000000000"
	expect("0101" "0161" FIFO, 0, "minimal fifo entry decodes");
	expect("0102" "0161" FIFO "0162" FIFO, 0, "two sorted entries decode");
	expect("0102" "0162" FIFO "0161" FIFO, BK_E_CORRUPT, "unsorted entries");
	expect("0102" "0161" FIFO "0161" FIFO, BK_E_CORRUPT, "duplicate entries");
	expect("0102" "026161" FIFO "0161" FIFO, BK_E_CORRUPT, "prefix after longer name");
	expect("0101" "00" FIFO "00", BK_E_CORRUPT, "empty name");
	expect("0101" "012e" FIFO, BK_E_CORRUPT, "name .");
	expect("0101" "022e2e" FIFO, BK_E_CORRUPT, "name ..");
	expect("0101" "03612f62" FIFO, BK_E_CORRUPT, "name with /");
	expect("0101" "03610062" FIFO, BK_E_CORRUPT, "name with NUL");
	expect("0101" "8108" FIFO, BK_E_CORRUPT, "name of 1025 bytes (length alone)");
	expect("0101" "0161" "00000000000000", BK_E_CORRUPT, "type 0");
	expect("0101" "0161" "08000000000000", BK_E_CORRUPT, "type 8");
	expect("0101" "0161" "0480200000000000", BK_E_CORRUPT, "mode 010000");
	expect("0101" "0161" "0400808080801000000000", BK_E_CORRUPT, "uid 2^32");
	expect("0101" "0161" "0400ffffffff0f00000000", 0, "uid 2^32-1");
	expect("0101" "0161" "04000000008094ebdc0300", BK_E_CORRUPT, "nsec 1e9");
	expect("0101" "0161" "0400000000ff93ebdc0300", 0, "nsec 1e9-1");
	expect("0101" "0161" "040000000000808080808080808080" "01", BK_E_CORRUPT, "size 2^63");
	expect("0101" "0161" FIFO "00", BK_E_CORRUPT, "trailing byte");
	expect("0102" "0161" FIFO, BK_E_CORRUPT, "count beyond the entries");
	expect("01ffffffff0f" "0161" FIFO, BK_E_CORRUPT, "count beyond the input");
	expect("01", BK_E_CORRUPT, "no count");
	expect("", BK_E_CORRUPT, "empty input");
	expect("02", BK_E_VERSION, "version 2 alone");
	/* symlink: type 03 then target */
	expect("0101" "0161" "03000000000000" "00", BK_E_CORRUPT, "empty symlink target");
	expect("0101" "0161" "03000000000000" "026100", BK_E_CORRUPT, "NUL in symlink target");
	expect("0101" "0161" "03000000000000" "8120", BK_E_CORRUPT, "symlink target of 4097");
	expect("0101" "0161" "03000000000000" "0178", 0, "one-byte symlink target");
	/* dir: truncated subtree id */
	expect("0101" "0161" "02000000000000" "0011", BK_E_CORRUPT, "truncated subtree id");
	/* file: size 5 with an empty content node, and with content of 4 */
	expect("0101" "0161" "01000000000005" "010000", BK_E_CORRUPT, "file size vs empty content");
	expect("0101" "0161" "01000000000000" "010000", 0, "empty file");
	expect("0101" "0161" "01000000000000" "020000", BK_E_VERSION,
	       "file with a version-2 content node");
	expect("0101" "0161" "01000000000004" "010001"
	       "0000000000000000000000000000000000000000000000000000000000000000" "05",
	       BK_E_CORRUPT, "file size differs from content size");
	/* chr without rdev */
	expect("0101" "0161" "05000000000000", BK_E_CORRUPT, "device without rdev");
#undef FIFO
}

/* put for the builder: keeps the first 4 trees stored, in order */
typedef struct {
	uint8_t *blob[4];
	size_t len[4];
	size_t trees;
} Stored;

static int keep_tree(void *ud, BkBlobType type, const void *data, size_t len, uint8_t id[32])
{
	Stored *st = ud;
	if (type != BK_BLOB_TREE || st->trees == 4 || !(st->blob[st->trees] = malloc(len)))
		return -ENOMEM;
	memcpy(st->blob[st->trees], data, len);
	st->len[st->trees++] = len;
	memset(id, (int)st->trees, 32);
	return 0;
}

/* The tree builder over a directory of many entries, where it looks names up
 * through an index (from 32 on): each is found again (a second entry refused, a
 * path through a file refused, an implicit directory taking its own entry), and
 * the directory's tree holds each once, sorted. */
static void test_builder_many(void)
{
	enum { N = 5000 };
	BkTreeBuilder *b = NULL;
	int e = bk_tree_builder_new(&b);
	char path[64];
	for (int i = 0; e == 0 && i < N; i++) { /* in an order that is not the sorted one */
		snprintf(path, sizeof(path), "d/f%d", (i * 7919) % N);
		BkTreeEntry en = entry("x", BK_NODE_FILE);
		e = bk_tree_builder_add(b, path, &en);
	}
	is_int(e, 0, "%d files in one directory added", N);
	BkTreeEntry en = entry("x", BK_NODE_FILE);
	is_int(bk_tree_builder_add(b, "d/f1234", &en), BK_E_USAGE, "a second d/f1234 is refused");
	en = entry("x", BK_NODE_FILE);
	is_int(bk_tree_builder_add(b, "d/f4321/x", &en), BK_E_USAGE,
	       "a path through the file d/f4321 is refused");
	en = entry("x", BK_NODE_FILE);
	e = bk_tree_builder_add(b, "d/sub/x", &en);
	en = entry("x", BK_NODE_DIR);
	if (e == 0)
		e = bk_tree_builder_add(b, "d/sub", &en);
	is_int(e, 0, "an implicit directory among them takes its own entry");
	en = entry("x", BK_NODE_DIR);
	is_int(bk_tree_builder_add(b, "d/sub", &en), BK_E_USAGE, "and a second one is refused");
	Stored st = { 0 };
	uint8_t root[32];
	if (e == 0)
		e = bk_tree_builder_finish(b, keep_tree, &st, root);
	bk_tree_builder_free(b);
	is_int(st.trees, 3, "finish stores three directories: sub, d, the root (%s)",
	       e ? bk_error_detail() : "ok");
	BkTree *d = NULL; /* the second stored */
	bool sorted = st.trees == 3 && bk_tree_decode(st.blob[1], st.len[1], &d) == 0 &&
		      d->count == N + 1;
	for (size_t i = 1; sorted && i < d->count; i++)
		sorted = strcmp(d->entries[i - 1].name, d->entries[i].name) < 0;
	ok(sorted && bk_tree_find(d, "f1234") && bk_tree_find(d, "sub") &&
	   bk_tree_find(d, "sub")->type == BK_NODE_DIR && bk_tree_find(d, "sub")->mode == 0644,
	   "d holds its %d files and sub, each once, sorted, sub with its own entry", N);
	bk_tree_free(d);
	for (size_t i = 0; i < st.trees; i++)
		free(st.blob[i]);
}

int main(void)
{
	test_golden();
	test_round_trip();
	test_encode_refuses();
	test_decode_rejects();
	test_builder_many();
	return tap_done();
}
