/* tests/fuzz/gen-corpus.c: writes the seed corpora for the codec fuzz targets
 * (tree, snapshot, content) into <dir>/<target>/: the golden vectors, a few
 * other valid encodings, and some invalid ones (truncated, unknown version,
 * trailing bytes, unsorted). Deterministic; rerun it after a format change:
 *   ninja -C build tests/fuzz/fuzz-gen-corpus && build/tests/fuzz/fuzz-gen-corpus tests/fuzz/corpus
 * Crash reproducers found by fuzzing are added by hand (named crash-*). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/content.h"
#include "store/snapshot.h"
#include "store/tree.h"
#include "store/util.h"
#include "tests/golden/content-v1.h"
#include "tests/golden/snapshot-v1.h"
#include "tests/golden/tree-v1.h"

static const char *root_dir;
static int failures;

static void put(const char *target, const char *name, const uint8_t *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", root_dir, target);
	mkdir(path, 0777);
	snprintf(path, sizeof(path), "%s/%s/%s", root_dir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		failures++;
	}
}

/* Writes a valid encoding and its variants: cut in half, version 2, one
 * trailing byte. */
static void put_family(const char *target, const char *name, const uint8_t *p, size_t n)
{
	char nm[256];
	snprintf(nm, sizeof(nm), "valid-%s", name);
	put(target, nm, p, n);
	snprintf(nm, sizeof(nm), "bad-truncated-%s", name);
	put(target, nm, p, n / 2);
	uint8_t *q = malloc(n + 1);
	memcpy(q, p, n);
	q[0] = 2;
	snprintf(nm, sizeof(nm), "bad-version-%s", name);
	put(target, nm, q, n);
	q[0] = p[0];
	q[n] = 0;
	snprintf(nm, sizeof(nm), "bad-trailing-%s", name);
	put(target, nm, q, n + 1);
	free(q);
}

static void put_hex(const char *target, const char *name, const char *hex)
{
	size_t n = strlen(hex) / 2;
	uint8_t *b = malloc(n + 1);
	if (bk_unhex(b, n, hex) < 0) {
		fprintf(stderr, "bad hex for %s\n", name);
		failures++;
	} else {
		put_family(target, name, b, n);
	}
	free(b);
}

/* An invalid encoding given as hex, written alone as bad-<name>. */
static void put_bad_hex(const char *target, const char *name, const char *hex)
{
	size_t n = strlen(hex) / 2;
	uint8_t *b = malloc(n + 1);
	char nm[256];
	snprintf(nm, sizeof(nm), "bad-%s", name);
	if (bk_unhex(b, n, hex) < 0) {
		fprintf(stderr, "bad hex for %s\n", name);
		failures++;
	} else {
		put(target, nm, b, n);
	}
	free(b);
}

static BkContentNode node(uint8_t level, uint32_t count, uint64_t size)
{
	BkContentNode n = { .level = level, .count = count };
	if (count)
		n.refs = calloc(count, sizeof(*n.refs));
	for (uint32_t i = 0; i < count; i++) {
		memset(n.refs[i].id, (int)(i * 37 + level), 32);
		n.refs[i].size = size + i;
	}
	return n;
}

static void gen_content(void)
{
	put_hex("content", "golden", golden_content_node_v1);
	struct {
		const char *name;
		uint8_t level;
		uint32_t count;
		uint64_t size;
	} nodes[] = {
		{ "empty-root", 0, 0, 1 },
		{ "one-chunk", 0, 1, 4096 },
		{ "level8", 8, 3, (uint64_t)1 << 61 },
		{ "full", 2, BK_CONTENT_MAX_REFS, 1 << 20 },
	};
	for (size_t i = 0; i < BK_ARRAY_SIZE(nodes); i++) {
		BkContentNode n = node(nodes[i].level, nodes[i].count, nodes[i].size);
		BkEnc e;
		bk_enc_init(&e, 1 << 20);
		if (bk_content_node_encode(&n, &e) < 0)
			failures++;
		else
			put_family("content", nodes[i].name, e.buf, e.len);
		bk_enc_release(&e);
		bk_content_node_release(&n);
	}
	put_bad_hex("content", "zero-size", "01000100000000000000000000000000000000000000000000000000000000000000000000");
	put_bad_hex("content", "level9", "0109010000000000000000000000000000000000000000000000000000000000000000000001");
}

static void gen_tree(void)
{
	put_hex("tree", "golden", golden_tree_v1);
	put_hex("tree", "empty", "0100");
	put_bad_hex("tree", "unsorted", "0102016204000000000000016104000000000000");

	BkTree *t = bk_tree_new();
	char name[BK_TREE_NAME_MAX + 1];
	memset(name, 'n', BK_TREE_NAME_MAX);
	name[BK_TREE_NAME_MAX] = '\0';
	for (int i = 0; i < 12; i++) {
		BkTreeEntry e = { .type = (uint8_t)(1 + i % 7), .mode = 0640, .uid = 70,
				  .gid = 70, .mtime_sec = 1600000000 + i };
		name[0] = (char)('a' + i);
		e.name = strdup(i == 11 ? name : (char[]){ name[0], 'x', 0 });
		if (e.type == BK_NODE_FILE) {
			e.content = node((uint8_t)(i % 3), (uint32_t)(1 + i), 8192);
			e.size = bk_content_node_size(&e.content);
		} else if (e.type == BK_NODE_SYMLINK) {
			e.link = strdup("../target/\xe2\x82\xac");
		} else if (e.type == BK_NODE_CHR || e.type == BK_NODE_BLK) {
			e.rdev = 0x10000u + (unsigned)i;
		} else if (e.type == BK_NODE_DIR) {
			memset(e.subtree, i, 32);
		}
		bk_tree_add(t, &e);
	}
	BkEnc e;
	bk_enc_init(&e, BK_TREE_MAX_BYTES);
	if (bk_tree_encode(t, &e) < 0)
		failures++;
	else
		put_family("tree", "mixed", e.buf, e.len);
	bk_enc_release(&e);
	bk_tree_free(t);
}

static void gen_snapshot(void)
{
	put_hex("snapshot", "golden", golden_snapshot_v1);
	char *tags[] = { "weekly", "" };
	BkKv meta[] = { { "server_version", "150004" }, { "backup_label", "START WAL LOCATION: 0/2000028\nCHECKPOINT LOCATION: 0/2000060\n" } };
	BkSnapshot s = { .time_us = -5, .host = "", .name = "files/etc", .kind = "files",
			 .ntags = 2, .tags = tags, .files = 3, .nmeta = 2, .meta = meta };
	BkEnc e;
	bk_enc_init(&e, 1 << 20);
	if (bk_snapshot_encode(&s, &e) < 0)
		failures++;
	else
		put_family("snapshot", "no-parent", e.buf, e.len);
	bk_enc_release(&e);
	put_hex("snapshot", "minimal",
		"010000000000" "0000000000000000000000000000000000000000000000000000000000000000"
		"00000000" "0000");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s corpus-dir\n", argv[0]);
		return 2;
	}
	root_dir = argv[1];
	mkdir(root_dir, 0777);
	gen_content();
	gen_tree();
	gen_snapshot();
	return failures ? 1 : 0;
}
