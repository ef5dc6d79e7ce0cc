/* Unit tests for store/content: node codec (golden bytes, rejections, every
 * truncation), the streaming builder against an in-memory blob store (streams
 * of 0 to 300000 chunks), walk and seek round trips, bounded depth even when
 * every id is a boundary, the few blobs an insertion rewrites, and corruption
 * of a child's size (larger or smaller) or level detected by walk and seek; a
 * root breaking the node invariants refused by walk. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/content.h"
#include "store/error.h"
#include "store/util.h"
#include "tests/golden/content-v1.h"
#include "tests/tap.h"

/* ---- in-memory blob store: open addressing keyed by id ---- */

typedef struct {
	uint8_t id[32];
	uint8_t *data; /* NULL: empty slot */
	size_t len;
} Slot;

typedef struct {
	Slot *slots;
	size_t cap, n;
	size_t puts, news, gets;
	long fail_put_after; /* < 0: never */
} Store;

static Slot *slot_of(Store *s, const uint8_t id[32])
{
	size_t i = (size_t)bk_get_le64(id) & (s->cap - 1);
	while (s->slots[i].data && memcmp(s->slots[i].id, id, 32) != 0)
		i = (i + 1) & (s->cap - 1);
	return &s->slots[i];
}

static void store_init(Store *s)
{
	*s = (Store){ .cap = 1024, .fail_put_after = -1 };
	s->slots = calloc(s->cap, sizeof(Slot));
}

static void store_release(Store *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slots[i].data);
	free(s->slots);
	*s = (Store){ 0 };
}

static void store_set(Store *s, const uint8_t id[32], const void *data, size_t len)
{
	if (2 * (s->n + 1) > s->cap) {
		Store big = *s;
		big.cap = s->cap * 2;
		big.slots = calloc(big.cap, sizeof(Slot));
		big.n = 0;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i].data) {
				*slot_of(&big, s->slots[i].id) = s->slots[i];
				big.n++;
			}
		free(s->slots);
		*s = big;
	}
	Slot *sl = slot_of(s, id);
	if (!sl->data)
		s->n++;
	free(sl->data);
	memcpy(sl->id, id, 32);
	sl->data = malloc(len ? len : 1);
	memcpy(sl->data, data, len);
	sl->len = len;
}

static int put_cb(void *ud, BkBlobType type, const void *data, size_t len, uint8_t ret_id[32])
{
	Store *s = ud;
	if (type != BK_BLOB_CLIST)
		return -EINVAL;
	if (s->fail_put_after >= 0 && (long)s->puts >= s->fail_put_after)
		return -EIO;
	s->puts++;
	crypto_generichash(ret_id, 32, data, len, NULL, 0);
	if (!slot_of(s, ret_id)->data) {
		s->news++;
		store_set(s, ret_id, data, len);
	}
	return 0;
}

static int get_cb(void *ud, BkBlobType type, const uint8_t id[32], uint8_t **ret, size_t *ret_len)
{
	Store *s = ud;
	s->gets++;
	if (type != BK_BLOB_CLIST)
		return -EINVAL;
	Slot *sl = slot_of(s, id);
	if (!sl->data)
		return -ENOENT;
	*ret = malloc(sl->len ? sl->len : 1);
	memcpy(*ret, sl->data, sl->len);
	*ret_len = sl->len;
	return 0;
}

/* ---- streams ---- */

typedef struct {
	size_t n;
	uint8_t (*ids)[32];
	uint64_t *sizes, *starts;
	uint64_t total;
} Stream;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	/* xorshift64*: deterministic, good enough for sizes and offsets */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* Chunk i of stream `tag` gets id BLAKE2b(tag, i): distinct and random-looking. */
static void chunk_id(uint8_t out[32], uint32_t tag, uint64_t i)
{
	uint8_t in[12];
	bk_put_le32(in, tag);
	bk_put_le64(in + 4, i);
	crypto_generichash(out, 32, in, sizeof(in), NULL, 0);
}

static void stream_init(Stream *st, size_t n)
{
	*st = (Stream){ .n = n };
	st->ids = malloc((n ? n : 1) * 32);
	st->sizes = malloc((n ? n : 1) * sizeof(uint64_t));
	st->starts = malloc((n ? n : 1) * sizeof(uint64_t));
}

static void stream_seal(Stream *st)
{
	st->total = 0;
	for (size_t i = 0; i < st->n; i++) {
		st->starts[i] = st->total;
		st->total += st->sizes[i];
	}
}

static void stream_random(Stream *st, size_t n, uint32_t tag)
{
	stream_init(st, n);
	for (size_t i = 0; i < n; i++) {
		chunk_id(st->ids[i], tag, i);
		st->sizes[i] = 1 + rnd() % 65536;
	}
	stream_seal(st);
}

static void stream_release(Stream *st)
{
	free(st->ids);
	free(st->sizes);
	free(st->starts);
}

static int build(Store *s, const Stream *st, BkContentNode *root)
{
	BkContentBuilder *b;
	int r = bk_content_builder_new(put_cb, s, &b);
	for (size_t i = 0; r >= 0 && i < st->n; i++)
		r = bk_content_builder_add(b, st->ids[i], st->sizes[i]);
	if (r >= 0)
		r = bk_content_builder_finish(b, root);
	bk_content_builder_free(b);
	return r;
}

typedef struct {
	const Stream *st;
	size_t next;
	bool good;
	long stop_at; /* return -EINTR at this chunk; < 0: never */
} WalkCheck;

static int walk_cb(void *ud, const uint8_t id[32], uint64_t size, uint64_t offset)
{
	WalkCheck *w = ud;
	if ((long)w->next == w->stop_at)
		return -EINTR;
	if (w->next >= w->st->n || memcmp(id, w->st->ids[w->next], 32) != 0 ||
	    size != w->st->sizes[w->next] || offset != w->st->starts[w->next])
		w->good = false;
	w->next++;
	return 0;
}

/* Index of the chunk holding offset, by binary search over the expected starts. */
static size_t expected_chunk(const Stream *st, uint64_t off)
{
	size_t lo = 0, hi = st->n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (st->starts[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Every stored content list decodes, has 1..MAX refs and no trailing bytes. */
static bool store_all_valid(const Store *s, unsigned *ret_max_level)
{
	unsigned maxl = 0;
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->slots[i].data)
			continue;
		BkDec d;
		bk_dec_init(&d, s->slots[i].data, s->slots[i].len);
		BkContentNode n;
		if (bk_content_node_decode(&d, &n) < 0)
			return false;
		bool good = bk_dec_done(&d) && n.count >= 1 && n.count <= BK_CONTENT_MAX_REFS;
		maxl = BK_MAX(maxl, n.level);
		bk_content_node_release(&n);
		if (!good)
			return false;
	}
	*ret_max_level = maxl;
	return true;
}

static void check_stream(size_t n, unsigned max_root_level)
{
	Store s;
	store_init(&s);
	Stream st;
	stream_random(&st, n, (uint32_t)n);
	BkContentNode root = { 0 };
	uint64_t t0 = bk_mono_us();
	int r = build(&s, &st, &root);
	uint64_t t1 = bk_mono_us();
	is_int(r, 0, "%zu chunks: builder succeeds", n);
	diag("%zu chunks: root level %u, %" PRIu32 " refs, %zu blobs stored, built in %" PRIu64
	     " ms",
	     n, root.level, root.count, s.n, (t1 - t0) / 1000);
	ok(root.level <= max_root_level && root.count <= BK_CONTENT_MAX_REFS,
	   "%zu chunks: root level %u <= %u, %" PRIu32 " refs", n, root.level, max_root_level,
	   root.count);
	ok(bk_content_node_size(&root) == st.total, "%zu chunks: root size is the stream size", n);
	/* (a caller keeps roots, one per file: each held an array for
	 * BK_CONTENT_MAX_REFS, 41 kB, found by a helper's exploration) */
	ok(!root.refs || malloc_usable_size(root.refs) < BK_CONTENT_ROOT_MAX * sizeof(*root.refs) + 64,
	   "%zu chunks: the root's refs take the room of at most %u (%zu bytes)", n,
	   BK_CONTENT_ROOT_MAX, root.refs ? malloc_usable_size(root.refs) : 0);
	if (n <= 1)
		ok(root.level == 0 && root.count == n && s.n == 0,
		   "%zu chunks: root is the level-0 node, nothing stored", n);
	else
		ok(root.count >= 2, "%zu chunks: root has at least 2 refs", n);
	unsigned maxl = 0;
	ok(store_all_valid(&s, &maxl) && (s.n == 0 || maxl + 1 == root.level),
	   "%zu chunks: every stored node is valid and below the root", n);

	WalkCheck w = { .st = &st, .good = true, .stop_at = -1 };
	r = bk_content_walk(&root, get_cb, &s, walk_cb, &w);
	ok(r == 0 && w.good && w.next == n, "%zu chunks: walk yields every chunk in order", n);

	/* seek: random offsets, both ends of the stream and of some chunks */
	bool good = true;
	size_t worst_gets = 0;
	for (int k = 0; n && k < 2000; k++) {
		uint64_t off;
		if (k == 0)
			off = 0;
		else if (k == 1)
			off = st.total - 1;
		else if (k < 100) {
			size_t c = rnd() % n;
			off = (k & 1) ? st.starts[c] : st.starts[c] + st.sizes[c] - 1;
		} else
			off = rnd() % st.total;
		uint8_t id[32];
		uint64_t start = 0, size = 0;
		size_t g0 = s.gets;
		r = bk_content_seek(&root, get_cb, &s, off, id, &start, &size);
		worst_gets = BK_MAX(worst_gets, s.gets - g0);
		size_t c = expected_chunk(&st, off);
		if (r != 0 || memcmp(id, st.ids[c], 32) != 0 || start != st.starts[c] ||
		    size != st.sizes[c]) {
			good = false;
			diag("seek %" PRIu64 ": r=%d, chunk %zu", off, r, c);
			break;
		}
	}
	ok(good, "%zu chunks: seek finds the right chunk at 2000 offsets", n);
	ok(worst_gets == root.level, "%zu chunks: seek costs %zu fetches (one per level below the root)",
	   n, worst_gets);
	uint8_t id[32];
	uint64_t a, b2;
	is_int(bk_content_seek(&root, get_cb, &s, st.total, id, &a, &b2), -ERANGE,
	       "%zu chunks: seek at the end is -ERANGE", n);
	bk_content_node_release(&root);
	stream_release(&st);
	store_release(&s);
}

static void test_golden(void)
{
	BkContentRef refs[2];
	for (int i = 0; i < 32; i++) {
		refs[0].id[i] = (uint8_t)i;
		refs[1].id[i] = 0xff;
	}
	refs[0].size = 1;
	refs[1].size = 300;
	BkContentNode n = { .level = 1, .count = 2, .refs = refs };
	BkEnc e;
	bk_enc_init(&e, 4096);
	is_int(bk_content_node_encode(&n, &e), 0, "golden node encodes");
	char hex[2 * sizeof(golden_content_node_v1) + 1];
	bk_hex(hex, e.buf, e.len);
	ok(strcmp(hex, golden_content_node_v1) == 0, "golden node encodes to the golden bytes");
	if (strcmp(hex, golden_content_node_v1) != 0)
		diag("got %s", hex);

	size_t len = strlen(golden_content_node_v1) / 2;
	uint8_t *bytes = malloc(len);
	ok(bk_unhex(bytes, len, golden_content_node_v1) == 0, "golden hex parses");
	BkDec d;
	bk_dec_init(&d, bytes, len);
	BkContentNode m = { 0 };
	int r = bk_content_node_decode(&d, &m);
	ok(r == 0 && bk_dec_done(&d) && m.level == 1 && m.count == 2 &&
		   memcmp(m.refs, refs, sizeof(refs)) == 0 && bk_content_node_size(&m) == 301,
	   "golden bytes decode to the golden node");
	bk_content_node_release(&m);

	bool all = true;
	for (size_t cut = 0; cut < len; cut++) {
		bk_dec_init(&d, bytes, cut);
		r = bk_content_node_decode(&d, &m);
		if (r != BK_E_CORRUPT) {
			all = false;
			bk_content_node_release(&m);
		}
	}
	ok(all, "every truncation of the golden node is BK_E_CORRUPT");
	free(bytes);
	bk_enc_release(&e);
}

/* Decodes hex, expecting code; checks a detail message was set. */
static void expect_decode(const char *hex, int code, const char *what)
{
	size_t len = strlen(hex) / 2;
	uint8_t *b = malloc(len ? len : 1);
	bk_unhex(b, len, hex);
	BkDec d;
	bk_dec_init(&d, b, len);
	BkContentNode n = { 0 };
	bk_error_clear();
	int r = bk_content_node_decode(&d, &n);
	if (r == 0 && !bk_dec_done(&d)) /* trailing bytes: the caller's check */
		r = bk_errorf(BK_E_CORRUPT, "%zu trailing bytes", len - d.pos);
	ok(r == code && (r == 0 || bk_error_detail()[0]), "%s: %d (%s)", what, r,
	   bk_error_detail());
	bk_content_node_release(&n);
	free(b);
}

static void test_decode_rejects(void)
{
	const char *id = "0000000000000000000000000000000000000000000000000000000000000000";
	char buf[1024];
	snprintf(buf, sizeof(buf), "010001%s01", id);
	expect_decode(buf, 0, "one ref at level 0 decodes");
	expect_decode("010000", 0, "empty level-0 node (empty stream root) decodes");
	expect_decode("020000", BK_E_VERSION, "version 2 rejected");
	expect_decode("000000", BK_E_VERSION, "version 0 rejected");
	snprintf(buf, sizeof(buf), "010901%s01", id);
	expect_decode(buf, BK_E_CORRUPT, "level 9 rejected");
	snprintf(buf, sizeof(buf), "010800");
	expect_decode(buf, BK_E_CORRUPT, "empty node above level 0 rejected");
	snprintf(buf, sizeof(buf), "010001%s00", id);
	expect_decode(buf, BK_E_CORRUPT, "zero size rejected");
	snprintf(buf, sizeof(buf), "010001%s0100", id);
	expect_decode(buf, BK_E_CORRUPT, "trailing byte rejected");
	expect_decode("0100810801", BK_E_CORRUPT, "count 1025 rejected");
	expect_decode("0100ffffffffffffffffff01", BK_E_CORRUPT, "huge count rejected");
	expect_decode("010002", BK_E_CORRUPT, "count beyond the input rejected");
	/* 2^62 + 2^62 = 2^63 overflows the signed total */
	snprintf(buf, sizeof(buf), "010002%s808080808080808040%s808080808080808040", id, id);
	expect_decode(buf, BK_E_CORRUPT, "total size of 2^63 rejected");
	snprintf(buf, sizeof(buf), "010002%sfeffffffffffffff7f%s01", id, id);
	expect_decode(buf, 0, "total size of 2^63-1 accepted");
	expect_decode("", BK_E_CORRUPT, "empty input rejected");

	/* the encoder refuses what the decoder would */
	BkContentRef refs[2] = { { .size = 0 }, { .size = 1 } };
	BkContentNode n = { .level = 0, .count = 2, .refs = refs };
	BkEnc e;
	bk_enc_init(&e, 1 << 20);
	is_int(bk_content_node_encode(&n, &e), BK_E_USAGE, "encoder refuses a zero size");
	n = (BkContentNode){ .level = 9, .count = 1, .refs = refs + 1 };
	is_int(bk_content_node_encode(&n, &e), BK_E_USAGE, "encoder refuses level 9");
	n = (BkContentNode){ .level = 1, .count = 0 };
	is_int(bk_content_node_encode(&n, &e), BK_E_USAGE, "encoder refuses an empty level-1 node");
	bk_enc_release(&e);
}

/* All ids are boundaries (first two bytes zero): without a minimum node size
 * every node would hold one ref and the depth would grow without bound. */
static void test_all_boundaries(void)
{
	for (int same = 0; same < 2; same++) {
		Store s;
		store_init(&s);
		Stream st;
		stream_init(&st, 200000);
		for (size_t i = 0; i < st.n; i++) {
			chunk_id(st.ids[i], 7, same ? 0 : i);
			st.ids[i][0] = st.ids[i][1] = 0;
			st.sizes[i] = 4096;
		}
		stream_seal(&st);
		BkContentNode root = { 0 };
		int r = build(&s, &st, &root);
		unsigned maxl;
		ok(r == 0 && root.level <= 3 && store_all_valid(&s, &maxl),
		   "%s boundary ids: depth bounded (root level %u, %zu blobs)",
		   same ? "200000 identical" : "200000 distinct", root.level, s.n);
		WalkCheck w = { .st = &st, .good = true, .stop_at = -1 };
		r = bk_content_walk(&root, get_cb, &s, walk_cb, &w);
		ok(r == 0 && w.good && w.next == st.n, "%s boundary ids: walk round trips",
		   same ? "identical" : "distinct");
		bk_content_node_release(&root);
		stream_release(&st);
		store_release(&s);
	}
}

/* Editing the start, the middle or the end rewrites only the nodes on the path
 * to the edit (plus at most a neighbour where a boundary moved). */
static void test_locality(void)
{
	Store s;
	store_init(&s);
	Stream a;
	stream_random(&a, 300000, 42);
	BkContentNode ra = { 0 };
	is_int(build(&s, &a, &ra), 0, "base stream builds");

	for (int kind = 0; kind < 3; kind++) {
		Stream b;
		stream_init(&b, a.n + 1);
		size_t at = kind == 0 ? 0 : kind == 1 ? a.n / 2 : a.n;
		for (size_t i = 0, j = 0; i < b.n; i++) {
			if (i == at) {
				chunk_id(b.ids[i], 43, (uint64_t)kind);
				b.sizes[i] = 1000;
			} else {
				memcpy(b.ids[i], a.ids[j], 32);
				b.sizes[i] = a.sizes[j];
				j++;
			}
		}
		stream_seal(&b);
		size_t before = s.news;
		BkContentNode rb = { 0 };
		int r = build(&s, &b, &rb);
		size_t fresh = s.news - before;
		const char *where = kind == 0 ? "start" : kind == 1 ? "middle" : "end";
		ok(r == 0 && fresh <= 2u * rb.level + 1,
		   "one chunk inserted at the %s: %zu new content lists (root level %u)", where, fresh,
		   rb.level);
		WalkCheck w = { .st = &b, .good = true, .stop_at = -1 };
		ok(bk_content_walk(&rb, get_cb, &s, walk_cb, &w) == 0 && w.good && w.next == b.n,
		   "edited stream walks back");
		bk_content_node_release(&rb);
		stream_release(&b);
	}
	bk_content_node_release(&ra);
	stream_release(&a);
	store_release(&s);
}

/* Re-encodes the first child of root with a tweak and stores it under the same
 * id, as a buggy or malicious writer would. */
static void tamper_first_child(Store *s, const BkContentNode *root, int how)
{
	Slot *sl = slot_of(s, root->refs[0].id);
	BkDec d;
	bk_dec_init(&d, sl->data, sl->len);
	BkContentNode n;
	bk_content_node_decode(&d, &n);
	BkEnc e;
	bk_enc_init(&e, 1 << 20);
	if (how == 0)
		n.refs[0].size += 1; /* size no longer matches the parent's ref */
	else if (how == 1)
		n.level = (uint8_t)(n.level + 1); /* wrong level */
	else if (how == 4) /* fewer bytes than the parent's ref: never padded */
		for (uint32_t i = 0; i < n.count; i++)
			if (n.refs[i].size > 1) {
				n.refs[i].size -= 1;
				break;
			}
	bk_content_node_encode(&n, &e);
	if (how == 2)
		bk_enc_u8(&e, 0); /* trailing byte */
	if (how == 3) {
		e.buf[0] = 2; /* future version */
	}
	store_set(s, root->refs[0].id, e.buf, e.len);
	bk_enc_release(&e);
	bk_content_node_release(&n);
}

static void test_corruption(void)
{
	const char *what[] = { "child size", "child level", "trailing bytes in child",
			       "child version", "smaller child size" };
	const int want[] = { BK_E_CORRUPT, BK_E_CORRUPT, BK_E_CORRUPT, BK_E_VERSION, BK_E_CORRUPT };
	for (int how = 0; how < 5; how++) {
		Store s;
		store_init(&s);
		Stream st;
		stream_random(&st, 5000, 5);
		BkContentNode root = { 0 };
		build(&s, &st, &root);
		tamper_first_child(&s, &root, how);
		WalkCheck w = { .st = &st, .good = true, .stop_at = -1 };
		bk_error_clear();
		int r = bk_content_walk(&root, get_cb, &s, walk_cb, &w);
		ok(r == want[how] && strstr(bk_error_detail(), "content list "),
		   "walk detects a corrupted %s: %s", what[how], bk_error_detail());
		uint8_t id[32];
		uint64_t a, b;
		r = bk_content_seek(&root, get_cb, &s, 0, id, &a, &b);
		is_int(r, want[how], "seek detects a corrupted %s", what[how]);
		bk_content_node_release(&root);
		stream_release(&st);
		store_release(&s);
	}

	/* a missing child and a callback error stop the walk with their code */
	Store s;
	store_init(&s);
	Stream st;
	stream_random(&st, 5000, 6);
	BkContentNode root = { 0 };
	build(&s, &st, &root);
	WalkCheck w = { .st = &st, .good = true, .stop_at = 10 };
	is_int(bk_content_walk(&root, get_cb, &s, walk_cb, &w), -EINTR,
	       "walk stops at the callback's error");
	Slot *sl = slot_of(&s, root.refs[root.count - 1].id);
	free(sl->data);
	sl->data = NULL;
	s.n--;
	w = (WalkCheck){ .st = &st, .good = true, .stop_at = -1 };
	is_int(bk_content_walk(&root, get_cb, &s, walk_cb, &w), -ENOENT,
	       "walk passes on get's -ENOENT");
	ok(w.good, "chunks before the missing list were right");
	bk_content_node_release(&root);

	/* a root that breaks the node invariants (here a ref of size 0) is refused
	 * before any chunk is handed out */
	BkContentRef zref[2] = { { .size = 10 }, { .size = 0 } };
	BkContentNode zroot = { .level = 0, .count = 2, .refs = zref };
	w = (WalkCheck){ .st = &st, .good = true, .stop_at = -1 };
	is_int(bk_content_walk(&zroot, get_cb, &s, walk_cb, &w), BK_E_CORRUPT,
	       "walk refuses a root with a zero-size ref");
	is_int(w.next, 0, "... before any chunk");

	/* a put failure is returned and sticks */
	Store f;
	store_init(&f);
	f.fail_put_after = 2;
	BkContentBuilder *b;
	bk_content_builder_new(put_cb, &f, &b);
	int r = 0;
	size_t i;
	for (i = 0; i < st.n && r >= 0; i++)
		r = bk_content_builder_add(b, st.ids[i], st.sizes[i]);
	is_int(r, -EIO, "builder returns put's error");
	is_int(bk_content_builder_add(b, st.ids[0], 1), -EIO, "the error sticks");
	is_int(bk_content_builder_finish(b, &root), -EIO, "finish returns it too");
	bk_content_builder_free(b);
	bk_content_builder_new(put_cb, &f, &b);
	is_int(bk_content_builder_add(b, st.ids[0], 0), BK_E_USAGE, "a zero-size chunk is refused");
	bk_content_builder_free(b);
	store_release(&f);
	stream_release(&st);
	store_release(&s);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_golden();
	test_decode_rejects();
	check_stream(0, 0);
	check_stream(1, 0);
	check_stream(1000, 1);
	check_stream(5000, 1);
	check_stream(300000, 2);
	test_all_boundaries();
	test_locality();
	test_corruption();
	return tap_done();
}
