/* Unit tests for store/index: add a pack's entries and get each back with every
 * field; a missing blob or pack is -ENOENT with the output untouched; has_many
 * over present and absent ids; get_pack; foreach_pack/foreach_blob visit every
 * row once and stop on a negative callback return; first writer wins for a blob
 * in two packs; re-adding a pack changes nothing; stat; a 10000-blob pack in one
 * transaction; clear; data kept across close and reopen; a file where the
 * directory should be is an error; a new index's directory and its parent
 * synced at its open; a data.mdb cut short is BK_E_CORRUPT at open
 * (not a SIGBUS at the first lookup); and two forked processes adding 150 packs
 * each in separate transactions while this one reads: every entry present
 * afterwards, and no pack ever visible without all of its blobs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/error.h"
#include "store/fs.h"
#include "store/index.h"
#include "store/util.h"
#include "tests/fsync-log.h"
#include "tests/tap.h"

static char tmp_root[] = "/tmp/bk-test-index.XXXXXX";

/* Deterministic ids: kind (1 pack, 2 blob, 3 absent), owner, serial, slot. */
static void make_id(uint8_t id[32], uint8_t kind, uint8_t owner, uint16_t serial, uint8_t slot)
{
	for (size_t i = 0; i < 32; i++)
		id[i] = (uint8_t)(0xa5 ^ (i * 29));
	id[0] = kind;
	id[1] = owner;
	id[2] = (uint8_t)(serial >> 8);
	id[3] = (uint8_t)serial;
	id[4] = slot;
}

static BkPackEntry entry(uint8_t owner, uint16_t serial, uint8_t slot, uint8_t type, uint32_t off)
{
	BkPackEntry e = { .type = type, .offset = off, .sealed_len = 100 + slot,
			  .plain_len = 1000u * slot + serial };
	make_id(e.id, 2, owner, serial, slot);
	return e;
}

static bool loc_is(const BkBlobLoc *l, const uint8_t pack[32], const BkPackEntry *e)
{
	return memcmp(l->pack, pack, 32) == 0 && l->offset == e->offset &&
	       l->sealed_len == e->sealed_len && l->plain_len == e->plain_len && l->type == e->type;
}

typedef struct {
	size_t n;
	uint64_t size_sum;
	size_t stop_after;
	const uint8_t *want_pack_a, *want_pack_b;
	size_t in_a, in_b;
} Counter;

static int count_pack(void *ud, const uint8_t pack[32], uint64_t size, uint32_t count)
{
	Counter *c = ud;
	(void)pack;
	(void)count;
	c->n++;
	c->size_sum += size;
	return c->stop_after && c->n >= c->stop_after ? -42 : 0;
}

static int count_blob(void *ud, const uint8_t id[32], const BkBlobLoc *loc)
{
	Counter *c = ud;
	(void)id;
	c->n++;
	if (c->want_pack_a && memcmp(loc->pack, c->want_pack_a, 32) == 0)
		c->in_a++;
	if (c->want_pack_b && memcmp(loc->pack, c->want_pack_b, 32) == 0)
		c->in_b++;
	return c->stop_after && c->n >= c->stop_after ? -42 : 0;
}

static void test_basics(const char *dir)
{
	BkIndex *x = NULL;
	is_int(bk_index_open(dir, &x), 0, "index opened (created)");
	uint64_t np = 99, nb = 99;
	ok(bk_index_stat(x, &np, &nb) == 0 && np == 0 && nb == 0, "new index is empty");

	uint8_t pa[32], pb[32], absent[32];
	make_id(pa, 1, 0, 1, 0);
	make_id(pb, 1, 0, 2, 0);
	make_id(absent, 3, 0, 0, 0);
	BkPackEntry a[5];
	const uint8_t types[5] = { BK_BLOB_DATA, BK_BLOB_TREE, BK_BLOB_CLIST, BK_BLOB_SNAPSHOT,
				   BK_BLOB_WAL };
	uint32_t off = BK_PACK_HEADER_LEN;
	for (uint8_t i = 0; i < 5; i++) {
		a[i] = entry(0, 1, i, types[i], off);
		off += a[i].sealed_len;
	}
	a[4].offset = 0xfffffff0u; /* full u32 range survives */
	a[4].plain_len = BK_PACK_MAX_BLOB;
	is_int(bk_index_add_pack(x, pa, 4000, a, 5), 0, "pack A (5 blobs) added");

	size_t good = 0;
	for (size_t i = 0; i < 5; i++) {
		BkBlobLoc l;
		memset(&l, 0, sizeof(l));
		if (bk_index_get(x, a[i].id, &l) == 0 && loc_is(&l, pa, &a[i]))
			good++;
	}
	is_int(good, 5, "every blob of A gets back its pack, offset, lengths and type");

	BkBlobLoc l;
	memset(&l, 0x5a, sizeof(l));
	is_int(bk_index_get(x, absent, &l), -ENOENT, "missing blob: -ENOENT");
	uint8_t untouched[sizeof(l)];
	memset(untouched, 0x5a, sizeof(untouched));
	ok(memcmp(&l, untouched, sizeof(l)) == 0, "... output left untouched");

	uint64_t size = 7;
	uint32_t count = 7;
	ok(bk_index_get_pack(x, pa, &size, &count) == 0 && size == 4000 && count == 5,
	   "get_pack: size and count of A");
	size = 7;
	count = 7;
	is_int(bk_index_get_pack(x, pb, &size, &count), -ENOENT, "get_pack of an unknown pack: -ENOENT");
	ok(size == 7 && count == 7, "... outputs untouched");
	is_int(bk_index_get_pack(x, a[0].id, &size, &count), -ENOENT,
	       "a blob id is not a pack id (separate databases)");
	is_int(bk_index_get(x, pa, &l), -ENOENT, "a pack id is not a blob id");

	/* pack B shares a[2] (already in A) and brings two new blobs */
	BkPackEntry b[3] = { entry(0, 2, 0, BK_BLOB_DATA, 8), a[2], entry(0, 2, 1, BK_BLOB_DATA, 0) };
	b[1].offset = 200; /* where B holds its (duplicate) copy */
	b[2].offset = 500;
	is_int(bk_index_add_pack(x, pb, 900, b, 3), 0, "pack B (3 blobs, one also in A) added");
	ok(bk_index_get(x, a[2].id, &l) == 0 && loc_is(&l, pa, &a[2]),
	   "first writer wins: the shared blob still points into A");
	ok(bk_index_get(x, b[0].id, &l) == 0 && loc_is(&l, pb, &b[0]) &&
		   bk_index_get(x, b[2].id, &l) == 0 && loc_is(&l, pb, &b[2]),
	   "B's own blobs point into B");
	ok(bk_index_get_pack(x, pb, &size, &count) == 0 && size == 900 && count == 3,
	   "B's row counts all 3 of its blobs");
	ok(bk_index_stat(x, &np, &nb) == 0 && np == 2 && nb == 7, "stat: 2 packs, 7 blobs");

	/* has_many over present and absent ids, in one call */
	uint8_t ids[6][32];
	memcpy(ids[0], a[0].id, 32);
	memcpy(ids[1], absent, 32);
	memcpy(ids[2], b[2].id, 32);
	memcpy(ids[3], pa, 32);
	memcpy(ids[4], a[4].id, 32);
	make_id(ids[5], 2, 9, 9, 9);
	bool found[6];
	memset(found, 0, sizeof(found));
	is_int(bk_index_has_many(x, (const uint8_t(*)[32])ids, 6, found), 0, "has_many");
	ok(found[0] && !found[1] && found[2] && !found[3] && found[4] && !found[5],
	   "has_many: found exactly the indexed blobs");
	is_int(bk_index_has_many(x, NULL, 0, NULL), 0, "has_many of nothing");

	Counter c = { 0 };
	is_int(bk_index_foreach_pack(x, count_pack, &c), 0, "foreach_pack");
	ok(c.n == 2 && c.size_sum == 4900, "foreach_pack visits both packs once");
	c = (Counter){ .want_pack_a = pa, .want_pack_b = pb };
	is_int(bk_index_foreach_blob(x, count_blob, &c), 0, "foreach_blob");
	ok(c.n == 7 && c.in_a == 5 && c.in_b == 2, "foreach_blob: 7 blobs, 5 in A and 2 in B");
	c = (Counter){ .stop_after = 1 };
	is_int(bk_index_foreach_pack(x, count_pack, &c), -42, "foreach_pack returns the stop code");
	is_int(c.n, 1, "... after the first callback");
	c = (Counter){ .stop_after = 3 };
	is_int(bk_index_foreach_blob(x, count_blob, &c), -42, "foreach_blob returns the stop code");
	is_int(c.n, 3, "... after the third callback");

	/* adding A again (a retried commit) changes nothing */
	is_int(bk_index_add_pack(x, pa, 4000, a, 5), 0, "pack A added again");
	ok(bk_index_stat(x, &np, &nb) == 0 && np == 2 && nb == 7, "stat unchanged");

	/* reopen keeps everything */
	bk_index_close(x);
	bk_index_close(NULL);
	x = NULL;
	is_int(bk_index_open(dir, &x), 0, "index reopened");
	good = 0;
	for (size_t i = 0; i < 5; i++)
		if (bk_index_get(x, a[i].id, &l) == 0 && loc_is(&l, pa, &a[i]))
			good++;
	ok(good == 5 && bk_index_get(x, b[0].id, &l) == 0 && loc_is(&l, pb, &b[0]),
	   "every entry survives close and reopen");
	ok(bk_index_stat(x, &np, &nb) == 0 && np == 2 && nb == 7, "stat survives too");

	/* clear */
	is_int(bk_index_clear(x), 0, "clear");
	ok(bk_index_stat(x, &np, &nb) == 0 && np == 0 && nb == 0, "cleared index is empty");
	is_int(bk_index_get(x, a[0].id, &l), -ENOENT, "cleared blob: -ENOENT");
	is_int(bk_index_get_pack(x, pa, &size, &count), -ENOENT, "cleared pack: -ENOENT");
	c = (Counter){ 0 };
	ok(bk_index_foreach_blob(x, count_blob, &c) == 0 && c.n == 0, "foreach_blob sees nothing");
	/* after a clear, B indexed first now owns the shared blob */
	is_int(bk_index_add_pack(x, pb, 900, b, 3), 0, "B added after clear");
	ok(bk_index_get(x, a[2].id, &l) == 0 && loc_is(&l, pb, &b[1]),
	   "the shared blob now points into B (rebuilt order)");
	bk_index_close(x);
	x = NULL;
	is_int(bk_index_open(dir, &x), 0, "reopened after clear");
	ok(bk_index_stat(x, &np, &nb) == 0 && np == 1 && nb == 3, "clear and re-add were durable");

	/* one big pack in one transaction */
	const size_t big = 10000;
	BkPackEntry *e = calloc(big, sizeof(*e));
	uint8_t(*bids)[32] = calloc(big, 32);
	bool *bf = calloc(big, sizeof(bool));
	uint8_t pc[32];
	make_id(pc, 1, 1, 0, 0);
	for (size_t i = 0; i < big; i++) {
		e[i] = entry(1, (uint16_t)i, 0, BK_BLOB_DATA, (uint32_t)(8 + i * 100));
		memcpy(bids[i], e[i].id, 32);
	}
	uint64_t t0 = bk_mono_us();
	is_int(bk_index_add_pack(x, pc, 1000000, e, big), 0, "a 10000-blob pack added");
	diag("10000-blob commit took %.3f s", (double)(bk_mono_us() - t0) / 1e6);
	size_t nfound = 0;
	ok(bk_index_has_many(x, (const uint8_t(*)[32])bids, big, bf) == 0, "has_many of 10000");
	for (size_t i = 0; i < big; i++)
		nfound += bf[i];
	is_int(nfound, big, "all 10000 found");
	ok(bk_index_get(x, e[big - 1].id, &l) == 0 && loc_is(&l, pc, &e[big - 1]),
	   "the last of them has the right location");
	ok(bk_index_stat(x, &np, &nb) == 0 && np == 2 && nb == 3 + big, "stat: 2 packs, 10003 blobs");
	free(e);
	free(bids);
	free(bf);
	bk_index_close(x);
}

static void test_bad_dir(void)
{
	char *file = bk_path_join(tmp_root, "a-file");
	int fd = open(file, O_WRONLY | O_CREAT, 0600);
	close(fd);
	BkIndex *x = NULL;
	int r = bk_index_open(file, &x);
	ok(r < 0 && x == NULL, "opening an index where a file is: error %d (%s)", r, bk_strerror(r));
	unlink(file);
	free(file);
}

/* A new index is durable once open: LMDB syncs data.mdb but not the directory
 * naming it, nor that directory's name in its parent (made here by the open). */
static void test_created_synced(void)
{
	char *parent = bk_path_join(tmp_root, "new"), *dir = bk_path_join(parent, "index");
	BkIndex *x = NULL;
	fsync_log_start();
	int r = bk_index_open(dir, &x);
	fsync_log_stop();
	ok(r == 0 && fsync_logged(dir) && fsync_logged(parent),
	   "a new index's directory and its parent are synced at its open");
	bk_index_close(x);
	free(dir);
	free(parent);
}

/* data.mdb cut short (after test_basics filled it): opening is BK_E_CORRUPT, in a
 * child, as it was a SIGBUS at the first lookup. */
static void test_cut_short(const char *dir)
{
	char *file = bk_path_join(dir, "data.mdb");
	struct stat st;
	if (!file || stat(file, &st) < 0 || st.st_size < 4 * 4096 ||
	    truncate(file, st.st_size / 2 / 4096 * 4096) < 0) {
		ok(false, "cut data.mdb short");
		free(file);
		return;
	}
	free(file);
	pid_t pid = fork();
	if (pid == 0) {
		BkIndex *x = NULL;
		int r = bk_index_open(dir, &x);
		if (r == 0) {
			uint8_t id[32];
			BkBlobLoc l;
			make_id(id, 2, 0, 1, 0);
			bk_index_get(x, id, &l);
			bk_index_close(x);
		}
		_exit(r == BK_E_CORRUPT && strstr(bk_error_detail(), "cut short") ? 0 : 1);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "data.mdb cut short: BK_E_CORRUPT at open (child %s %d)",
	   WIFEXITED(status) ? "exited" : "killed by signal",
	   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

#define WRITERS 2
#define PACKS_PER_WRITER 150
#define BLOBS_PER_PACK 4 /* slot 0 is shared by both writers */

static void writer_pack(uint8_t owner, uint16_t i, uint8_t pack[32], BkPackEntry e[BLOBS_PER_PACK])
{
	make_id(pack, 1, (uint8_t)(0x10 + owner), i, 0);
	for (uint8_t j = 0; j < BLOBS_PER_PACK; j++) {
		uint8_t who = j == 0 ? 0xff : (uint8_t)(0x10 + owner);
		e[j] = entry(who, i, j, BK_BLOB_DATA, 8u + 200u * j);
	}
}

static int child(const char *dir, uint8_t owner)
{
	BkIndex *x = NULL;
	if (bk_index_open(dir, &x) < 0)
		return 10;
	for (uint16_t i = 0; i < PACKS_PER_WRITER; i++) {
		uint8_t pack[32];
		BkPackEntry e[BLOBS_PER_PACK];
		writer_pack(owner, i, pack, e);
		if (bk_index_add_pack(x, pack, 5000 + i, e, BLOBS_PER_PACK) < 0) {
			fprintf(stderr, "writer %u: %s\n", owner, bk_error_detail());
			return 11;
		}
	}
	bk_index_close(x);
	return 0;
}

typedef struct {
	BkIndex *x;
	size_t packs, torn;
} Watch;

/* A pack row visible means its blobs are visible: they commit together. */
static int watch_pack(void *ud, const uint8_t pack[32], uint64_t size, uint32_t count)
{
	Watch *w = ud;
	(void)size;
	w->packs++;
	if (pack[1] < 0x10 || count != BLOBS_PER_PACK)
		return 0;
	uint8_t owner = (uint8_t)(pack[1] - 0x10), p[32];
	uint16_t i = (uint16_t)(pack[2] << 8 | pack[3]);
	BkPackEntry e[BLOBS_PER_PACK];
	writer_pack(owner, i, p, e);
	uint8_t ids[BLOBS_PER_PACK][32];
	bool found[BLOBS_PER_PACK];
	for (size_t j = 0; j < BLOBS_PER_PACK; j++)
		memcpy(ids[j], e[j].id, 32);
	if (bk_index_has_many(w->x, (const uint8_t(*)[32])ids, BLOBS_PER_PACK, found) < 0)
		return -1;
	for (size_t j = 0; j < BLOBS_PER_PACK; j++)
		if (!found[j])
			w->torn++;
	return 0;
}

static void test_concurrent(const char *dir)
{
	BkIndex *x = NULL;
	is_int(bk_index_open(dir, &x), 0, "fresh index for the concurrent writers");
	bk_index_close(x); /* no LMDB environment crosses a fork */
	fflush(stdout);

	uint64_t t0 = bk_mono_us();
	pid_t pids[WRITERS];
	for (uint8_t w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		if (pids[w] == 0)
			_exit(child(dir, w));
	}

	/* read while they write */
	x = NULL;
	int r = bk_index_open(dir, &x);
	size_t rounds = 0, torn = 0, read_errors = 0;
	uint64_t last_blobs = 0, shrank = 0;
	int running = WRITERS, status[WRITERS] = { -1, -1 };
	while (r == 0 && running > 0) {
		Watch w = { .x = x };
		if (bk_index_foreach_pack(x, watch_pack, &w) < 0)
			read_errors++;
		torn += w.torn;
		uint64_t np, nb;
		if (bk_index_stat(x, &np, &nb) < 0)
			read_errors++;
		else if (nb < last_blobs)
			shrank++;
		else
			last_blobs = nb;
		rounds++;
		running = 0;
		for (int i = 0; i < WRITERS; i++) {
			if (status[i] == -1) {
				int st;
				pid_t p = waitpid(pids[i], &st, WNOHANG);
				if (p == pids[i])
					status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
				else
					running++;
			}
		}
		usleep(2000);
	}
	for (int i = 0; i < WRITERS; i++)
		if (status[i] == -1) { /* the reader failed to open: still reap */
			int st;
			waitpid(pids[i], &st, 0);
			status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
	diag("%d writers x %d packs took %.2f s; %zu read rounds meanwhile", WRITERS,
	     PACKS_PER_WRITER, (double)(bk_mono_us() - t0) / 1e6, rounds);
	is_int(r, 0, "reader opened the index while writers ran");
	ok(status[0] == 0 && status[1] == 0, "both writers exited 0 (%d, %d)", status[0], status[1]);
	is_int(read_errors, 0, "concurrent reads never failed");
	is_int(torn, 0, "no pack was ever visible without all of its blobs");
	is_int(shrank, 0, "the blob count never went backwards");

	/* afterwards: everything is there */
	uint64_t np = 0, nb = 0;
	const uint64_t shared = PACKS_PER_WRITER;
	const uint64_t own = (uint64_t)WRITERS * PACKS_PER_WRITER * (BLOBS_PER_PACK - 1);
	ok(x && bk_index_stat(x, &np, &nb) == 0 && np == (uint64_t)WRITERS * PACKS_PER_WRITER &&
		   nb == own + shared,
	   "stat: %llu packs, %llu blobs (want %d, %llu)", (unsigned long long)np,
	   (unsigned long long)nb, WRITERS * PACKS_PER_WRITER, (unsigned long long)(own + shared));
	size_t missing = 0, wrong = 0, pack_rows = 0;
	for (uint8_t w = 0; x && w < WRITERS; w++) {
		for (uint16_t i = 0; i < PACKS_PER_WRITER; i++) {
			uint8_t pack[32], other[32];
			BkPackEntry e[BLOBS_PER_PACK], oe[BLOBS_PER_PACK];
			writer_pack(w, i, pack, e);
			writer_pack((uint8_t)(1 - w), i, other, oe);
			uint64_t size;
			uint32_t count;
			if (bk_index_get_pack(x, pack, &size, &count) == 0 && size == 5000u + i &&
			    count == BLOBS_PER_PACK)
				pack_rows++;
			for (size_t j = 0; j < BLOBS_PER_PACK; j++) {
				BkBlobLoc l;
				if (bk_index_get(x, e[j].id, &l) < 0)
					missing++;
				else if (!loc_is(&l, pack, &e[j]) && !(j == 0 && loc_is(&l, other, &oe[j])))
					wrong++;
			}
		}
	}
	is_int(pack_rows, WRITERS * PACKS_PER_WRITER, "every pack row present and right");
	is_int(missing, 0, "no blob missing");
	is_int(wrong, 0, "every blob points into its pack (a shared one into either)");
	bk_index_close(x);
}

int main(void)
{
	if (!mkdtemp(tmp_root)) {
		ok(false, "mkdtemp");
		return tap_done();
	}
	char *dir = bk_path_join(tmp_root, "index"), *cdir = bk_path_join(tmp_root, "concurrent");
	test_basics(dir);
	test_bad_dir();
	test_created_synced();
	test_cut_short(dir);
	test_concurrent(cdir);
	free(dir);
	free(cdir);
	tap_remove_tree(tmp_root);
	return tap_done();
}
