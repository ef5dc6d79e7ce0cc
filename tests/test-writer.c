/* Unit tests for store/writer: several threads put blobs through one writer
 * while another thread flushes it over and over (as the archiver's workers and a
 * PENDING_MAX flush do during a large backup). A flush must never commit a pack
 * that a putting thread is still appending to: every put must succeed, and every
 * blob must read back from the repository afterwards, authenticated and with its
 * own bytes. Also: the same blob put twice is stored once, and the same bytes
 * put as a tree and as data are stored once and read back as either; a blob over the limit
 * is refused as too large, storing nothing; and when writing a pack
 * fails midway (a file size limit makes write() fail after a partial write), the
 * failure sticks, the pack is abandoned, and no id is indexed at a wrong place:
 * every blob the index knows reads back with its own bytes. Batch reads
 * (bk_repo_read_blobs_into): a batch reads back byte-exact; a batch holding an
 * authentic blob stored under another blob's id (bk_writer_put_id with a wrong id,
 * as a buggy writer could) fails naming the pack and offset, with nothing of the
 * batch left in the output, also when the bad blob is not the first; a size
 * other than the index's and too large a batch are refused; check --read-data
 * (which recomputes ids in groups too) reports that blob and nothing else. A
 * block-cut chunk stream (bk_chunk_stream_new_blocks, base backups) cuts every file
 * into 32 KiB blocks from the file's own start, whatever the sizes of the pushes and
 * wherever the file before it ended. Full packs are finished and committed in
 * batches as many as the BLAKE2b lanes, by the putting threads, without a flush;
 * every blob reads back and check --read-data finds every pack's contents match
 * its name, the statistics count every blob and pack, and no page of a committed
 * pack is left in the page cache (mincore; not told on tmpfs). When a batch's commit fails (its packs cannot be placed), the failure
 * sticks and no temp file of the batch is left behind. check --read-data reports
 * every blob under a wrong id wherever it falls in its pack's groups; plain check
 * reports a blob the index lost and a pack the index miscounts, and a file whose
 * content list is damaged. A `repair index` committing while check runs, which
 * moves a blob stored in two packs to the other one, is no finding. A chunk stream whose stores fail returns the failure
 * from a push, and freeing it keeps that error's detail. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <linux/magic.h>
#include <lmdb.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/archiver.h"
#include "store/blake2b.h"
#include "store/check.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/index.h"
#include "store/keyslot.h"
#include "store/pack.h"
#include "store/repo.h"
#include "store/restorer.h"
#include "store/util.h"
#include "store/writer.h"
#include "tests/tap.h"

#define PUTTERS 3
#define BLOBS 3000
#define BLOB_MAX 3000

static char tmp_root[] = "/tmp/bunker-test-writer.XXXXXX";

typedef struct {
	BkWriter *w;
	unsigned seed;
	uint8_t (*ids)[32];
	size_t failed;
	char first_error[512];
} Putter;

static atomic_int putting;

/* Blob i of putter p: deterministic bytes, different for every (p, i). */
static size_t make_blob(unsigned p, unsigned i, uint8_t *buf)
{
	size_t len = 1 + (i * 7919u + p * 104729u) % BLOB_MAX;
	uint32_t x = (p + 1) * 2654435761u ^ (i + 1) * 40503u;
	for (size_t k = 0; k < len; k++) {
		x = x * 1103515245u + 12345u;
		buf[k] = (uint8_t)(x >> 16);
	}
	memcpy(buf, &i, sizeof(i) < len ? sizeof(i) : len);
	return len;
}

static void *put_all(void *arg)
{
	Putter *pt = arg;
	uint8_t buf[BLOB_MAX];
	for (unsigned i = 0; i < BLOBS; i++) {
		size_t len = make_blob(pt->seed, i, buf);
		int e = bk_writer_put(pt->w, BK_BLOB_DATA, buf, len, pt->ids[i]);
		if (e < 0 && pt->failed++ == 0)
			snprintf(pt->first_error, sizeof(pt->first_error), "%s", bk_error_detail());
	}
	return NULL;
}

static void *flush_loop(void *arg)
{
	BkWriter *w = arg;
	while (putting)
		bk_writer_flush(w);
	return NULL;
}

static void test_flush_while_putting(BkRepo *r)
{
	BkWriter *w = NULL;
	is_int(bk_writer_new(r, &w), 0, "writer");
	Putter pt[PUTTERS];
	pthread_t th[PUTTERS], flusher;
	putting = 1;
	pthread_create(&flusher, NULL, flush_loop, w);
	for (unsigned p = 0; p < PUTTERS; p++) {
		pt[p] = (Putter){ .w = w, .seed = p, .ids = calloc(BLOBS, 32) };
		pthread_create(&th[p], NULL, put_all, &pt[p]);
	}
	for (unsigned p = 0; p < PUTTERS; p++)
		pthread_join(th[p], NULL);
	putting = 0;
	pthread_join(flusher, NULL);
	is_int(bk_writer_flush(w), 0, "final flush");

	size_t failed = 0;
	for (unsigned p = 0; p < PUTTERS; p++) {
		failed += pt[p].failed;
		if (pt[p].failed)
			diag("putter %u: %s", p, pt[p].first_error);
	}
	is_int(failed, 0, "%d threads x %d puts while flushing: none failed", PUTTERS, BLOBS);

	size_t unreadable = 0, wrong = 0;
	uint8_t want[BLOB_MAX];
	for (unsigned p = 0; p < PUTTERS; p++) {
		for (unsigned i = 0; i < BLOBS; i++) {
			size_t len = make_blob(p, i, want), got_len;
			uint8_t *got;
			if (bk_repo_read_blob(r, BK_BLOB_DATA, pt[p].ids[i], &got, &got_len) < 0) {
				if (unreadable++ == 0)
					diag("blob %u/%u: %s", p, i, bk_error_detail());
				continue;
			}
			wrong += got_len != len || memcmp(got, want, len) != 0;
			free(got);
		}
		free(pt[p].ids);
	}
	is_int(unreadable, 0, "every blob reads back");
	is_int(wrong, 0, "every blob has its own bytes");
	const BkWriterStats *st = bk_writer_stats(w);
	ok(st->packs > 10, "many packs committed by the flushes (%llu)",
	   (unsigned long long)st->packs);
	bk_writer_free(w);
}

static void test_same_blob_twice(BkRepo *r)
{
	BkWriter *w = NULL;
	bk_writer_new(r, &w);
	uint8_t a[32], b[32];
	static const char data[] = "the same bytes, put twice";
	ok(bk_writer_put(w, BK_BLOB_DATA, data, sizeof(data), a) == 0 &&
		   bk_writer_put(w, BK_BLOB_DATA, data, sizeof(data), b) == 0 && !memcmp(a, b, 32),
	   "same blob twice: same id");
	is_int(bk_writer_flush(w), 0, "flush");
	const BkWriterStats *st = bk_writer_stats(w);
	ok(st->blobs == 2 && st->new_blobs == 1, "stored once (%llu puts, %llu new)",
	   (unsigned long long)st->blobs, (unsigned long long)st->new_blobs);
	bk_writer_free(w);
}

/* A blob id covers the plaintext only: bytes stored as one type and put again as
 * another are stored once, and read back as either (an empty directory's tree,
 * "\x01\x00", and a file holding those two bytes: the file did not restore). */
static void test_same_bytes_other_type(BkRepo *r)
{
	BkWriter *w = NULL;
	bk_writer_new(r, &w);
	static const uint8_t bytes[] = { 1, 0 };
	uint8_t a[32], b[32];
	ok(bk_writer_put(w, BK_BLOB_TREE, bytes, sizeof(bytes), a) == 0 &&
		   bk_writer_put(w, BK_BLOB_DATA, bytes, sizeof(bytes), b) == 0 && !memcmp(a, b, 32),
	   "the same bytes as a tree and as data: one id");
	is_int(bk_writer_flush(w), 0, "flush");
	uint8_t out[sizeof(bytes)] = { 0 }, *plain = NULL;
	uint64_t size = sizeof(bytes);
	size_t len = 0;
	int e = bk_repo_read_blobs_into(r, BK_BLOB_DATA, 1, (const uint8_t(*)[32])b, &size, out);
	ok(e == 0 && !memcmp(out, bytes, sizeof(bytes)), "read back as data (%s)",
	   e ? bk_error_detail() : "ok");
	e = bk_repo_read_blob(r, BK_BLOB_TREE, a, &plain, &len);
	ok(e == 0 && len == sizeof(bytes) && !memcmp(plain, bytes, len), "read back as a tree (%s)",
	   e ? bk_error_detail() : "ok");
	free(plain);
	bk_writer_free(w);
}

/* A blob over the limit is refused before it is hashed or sealed, as too large
 * (not as an invalid entry of the pack), and stores nothing. */
static void test_blob_too_large(BkRepo *r)
{
	BkWriter *w = NULL;
	bk_writer_new(r, &w);
	uint8_t *big = calloc(1, BK_PACK_MAX_BLOB + 1u), id[32];
	is_int(big ? bk_writer_put(w, BK_BLOB_DATA, big, BK_PACK_MAX_BLOB + 1u, id) : -ENOMEM, -EFBIG,
	       "a blob of BK_PACK_MAX_BLOB + 1 bytes: -EFBIG");
	is_int(bk_writer_flush(w), 0, "... and the writer goes on");
	is_int(bk_writer_stats(w)->new_blobs, 0, "... with nothing stored");
	free(big);
	bk_writer_free(w);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

typedef struct {
	int problems;
	char first[1400], last[1400];
} Findings;

static void collect(void *ud, bool problem, const char *line)
{
	Findings *f = ud;
	if (problem && f->problems++ == 0)
		snprintf(f->first, sizeof(f->first), "%s", line);
	if (problem)
		snprintf(f->last, sizeof(f->last), "%s", line);
}

static void test_batch_read(BkRepo *r)
{
	enum { N = 12, LEN = 5000 };
	BkWriter *w;
	if (bk_writer_new(r, &w) < 0) {
		ok(false, "writer");
		return;
	}
	uint8_t *data = malloc(N * LEN), *out = malloc((N + 1) * LEN);
	uint8_t ids[N + 1][32];
	uint64_t sizes[N + 1];
	int e = 0;
	for (unsigned i = 0; i < N; i++) {
		sizes[i] = LEN;
		for (size_t k = 0; k < LEN; k++)
			data[i * LEN + k] = (uint8_t)(i * 31 + k * 7 + (k >> 8));
		if (e == 0)
			e = bk_writer_put(w, BK_BLOB_DATA, data + i * LEN, LEN, ids[i]);
	}
	/* blob N: the bytes of blob 0 with one changed, stored under the id of a
	 * blob nobody wrote */
	uint8_t bad[LEN], bad_id[32];
	memcpy(bad, data, LEN);
	bad[100] ^= 1;
	bk_blob_id(r->keys, "never written", 13, bad_id);
	if (e == 0)
		e = bk_writer_put_id(w, BK_BLOB_DATA, bad, LEN, bad_id);
	if (e == 0)
		e = bk_writer_flush(w);
	is_int(e, 0, "%d blobs and one under a wrong id stored", N);
	memcpy(ids[N], bad_id, 32);
	sizes[N] = LEN;

	e = bk_repo_read_blobs_into(r, BK_BLOB_DATA, N, (const uint8_t(*)[32])ids, sizes, out);
	ok(e == 0 && memcmp(out, data, N * LEN) == 0, "a batch of %d reads back byte-exact", N);

	/* good, good, bad, good: the bad one is caught after the others were read */
	uint8_t bids[4][32];
	uint64_t bsizes[4] = { LEN, LEN, LEN, LEN };
	memcpy(bids[0], ids[0], 32);
	memcpy(bids[1], ids[1], 32);
	memcpy(bids[2], bad_id, 32);
	memcpy(bids[3], ids[2], 32);
	memset(out, 0x55, 4 * LEN);
	e = bk_repo_read_blobs_into(r, BK_BLOB_DATA, 4, (const uint8_t(*)[32])bids, bsizes, out);
	const char *d = bk_error_detail();
	ok(e == BK_E_CORRUPT && strstr(d, "does not match its id") && strstr(d, "pack ") &&
		   strstr(d, "offset "),
	   "a blob whose bytes are not its id's is refused, naming pack and offset (%s)", d);
	ok(all_zero(out, 4 * LEN), "nothing of the failed batch is left in the output");

	bsizes[1] = LEN - 1;
	e = bk_repo_read_blobs_into(r, BK_BLOB_DATA, 2, (const uint8_t(*)[32])ids, bsizes, out);
	ok(e == BK_E_CORRUPT && strstr(bk_error_detail(), "expected"),
	   "a size other than the index's is refused (%s)", bk_error_detail());
	is_int(bk_repo_read_blobs_into(r, BK_BLOB_DATA, BK_REPO_BATCH_MAX + 1,
				       (const uint8_t(*)[32])ids, sizes, out),
	       -EINVAL, "a batch larger than BK_REPO_BATCH_MAX is refused");

	/* check --read-data reads the packs by their own trailers: the same blob is
	 * the one problem it finds */
	Findings f = { 0 };
	e = bk_check(r, true, collect, &f);
	ok(e == 1 && f.problems == 1 && strstr(f.first, bk_id_hex(bad_id).s) &&
		   strstr(f.first, "does not match its id") && strstr(f.first, "offset "),
	   "check --read-data reports the blob under a wrong id, and only it (%d: %s)", f.problems,
	   f.first);
	free(data);
	free(out);
	bk_writer_free(w);
}

/* Pages of a file in the page cache (mincore), or -1 when that cannot be told. */
static long resident_pages(const char *path)
{
	long n = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
		if (fd >= 0)
			close(fd);
		return n;
	}
	size_t len = (size_t)st.st_size, page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char *vec = malloc((len + page - 1) / page);
	void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (vec && m != MAP_FAILED && mincore(m, len, vec) == 0) {
		n = 0;
		for (size_t i = 0; i < (len + page - 1) / page; i++)
			n += vec[i] & 1;
	}
	if (m != MAP_FAILED)
		munmap(m, len);
	free(vec);
	close(fd);
	return n;
}

/* Entries of a directory; with resident, adds their pages in the page cache
 * (-1 once one cannot be told). */
static size_t count_dir(const char *path, long *resident)
{
	DIR *d = opendir(path);
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		if (resident && *resident >= 0) {
			char *f = bk_path_join(path, de->d_name);
			long p = resident_pages(f);
			*resident = p < 0 ? -1 : *resident + p;
			free(f);
		}
	}
	if (d)
		closedir(d);
	return n;
}

typedef struct {
	BkWriter *w;
	unsigned first, n; /* blobs first..first+n-1 */
	uint8_t (*ids)[32];
	int failed;
} BatchPutter;

enum { BATCH_BLOB = 1 << 20 };

static void batch_blob(unsigned i, uint8_t *buf)
{
	memset(buf, (int)(i * 37u), BATCH_BLOB);
	memcpy(buf, &i, sizeof(i));
}

static void *put_batch_blobs(void *arg)
{
	BatchPutter *bp = arg;
	uint8_t *buf = malloc(BATCH_BLOB);
	for (unsigned i = bp->first; buf && i < bp->first + bp->n; i++) {
		batch_blob(i, buf);
		bp->failed |= bk_writer_put(bp->w, BK_BLOB_DATA, buf, BATCH_BLOB, bp->ids[i]) < 0;
	}
	bp->failed |= !buf;
	free(buf);
	return NULL;
}

static int sum_pack(void *ud, const uint8_t pack[32], uint64_t size, uint32_t count)
{
	(void)pack;
	(void)count;
	*(uint64_t *)ud += size;
	return 0;
}

/* Two threads fill more full packs than a batch holds: the putting threads
 * commit a batch themselves, before any flush. The statistics (a snapshot's
 * "new" bytes) count every blob and every pack committed, by either. */
static void test_full_batches(const char *path, const BkSecret *secret)
{
	BkRepoParams params;
	bk_repo_params_default(&params);
	params.zstd_level = 0; /* stored as they are: a pack holds ~15 blobs */
	BkRepo *r = NULL;
	BkWriter *w = NULL;
	if (bk_repo_create(path, secret, &params, &r) < 0 || bk_writer_new(r, &w) < 0) {
		ok(false, "repository for full batches");
		return;
	}
	unsigned lanes = bk_blake2b_init();
	unsigned n = (lanes + 2) * 16; /* lanes + 2 packs' worth */
	uint8_t(*ids)[32] = calloc(n, 32);
	BatchPutter bp[2] = { { w, 0, n / 2, ids, 0 }, { w, n / 2, n - n / 2, ids, 0 } };
	pthread_t th[2];
	for (int t = 0; t < 2; t++)
		pthread_create(&th[t], NULL, put_batch_blobs, &bp[t]);
	for (int t = 0; t < 2; t++)
		pthread_join(th[t], NULL);
	uint64_t before = bk_writer_stats(w)->packs;
	ok(!bp[0].failed && !bp[1].failed, "%u puts of 1 MiB from two threads", n);
	ok(before >= lanes, "full packs committed in a batch before any flush (%llu, %u lanes)",
	   (unsigned long long)before, lanes);
	is_int(bk_writer_flush(w), 0, "the flush commits the rest");
	uint64_t packs = bk_writer_stats(w)->packs;
	char *data = bk_path_join(path, "data");
	size_t files = 0;
	long resident = 0;
	DIR *d = opendir(data);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *sub = bk_path_join(data, de->d_name);
		files += count_dir(sub, &resident);
		free(sub);
	}
	if (d)
		closedir(d);
	free(data);
	ok(packs > before && files == packs, "%llu packs committed, %zu in the repository",
	   (unsigned long long)packs, files);
	const BkWriterStats *st = bk_writer_stats(w);
	uint64_t indexed = 0;
	bk_index_foreach_pack(r->index, sum_pack, &indexed);
	ok(st->blobs == n && st->new_blobs == n && st->bytes == (uint64_t)n * BATCH_BLOB &&
		   st->new_bytes == st->bytes,
	   "stats: %llu blobs put, %llu new, %llu bytes, %llu new", (unsigned long long)st->blobs,
	   (unsigned long long)st->new_blobs, (unsigned long long)st->bytes,
	   (unsigned long long)st->new_bytes);
	is_int(st->stored_bytes, indexed, "stats: the bytes stored are the packs' sizes");
	/* tmpfs keeps its pages whatever the advice: nothing to tell there */
	struct statfs fs;
	if (statfs(path, &fs) == 0 && fs.f_type == TMPFS_MAGIC)
		ok(true, "# SKIP committed packs' pages: the repository is on tmpfs");
	else
		is_int(resident, 0, "committed packs left the page cache (pages still in it)");
	size_t wrong = 0;
	uint8_t *want = malloc(BATCH_BLOB);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *got;
		size_t len;
		batch_blob(i, want);
		if (bk_repo_read_blob(r, BK_BLOB_DATA, ids[i], &got, &len) < 0) {
			wrong++;
			continue;
		}
		wrong += len != BATCH_BLOB || memcmp(got, want, len) != 0;
		free(got);
	}
	is_int(wrong, 0, "every blob reads back with its own bytes");
	Findings f = { 0 };
	is_int(bk_check(r, true, collect, &f), 0, "check --read-data: every pack matches its name (%s)",
	       f.problems ? f.first : "no problem");
	free(want);
	free(ids);
	bk_writer_free(w);
	bk_repo_close(r);
}

typedef struct {
	uint8_t id[32];
	uint64_t size;
	size_t packs;
} OnePack;

static int one_pack(void *ud, const uint8_t pack[32], uint64_t size, uint32_t count)
{
	(void)count;
	OnePack *o = ud;
	memcpy(o->id, pack, 32);
	o->size = size;
	o->packs++;
	return 0;
}

/* check --read-data recomputes ids in groups of up to BK_REPO_BATCH_MAX blobs: a
 * blob under a wrong id is reported wherever it falls in its pack (first or last
 * of a group, first or second of the next). Plain check compares the index, a
 * cache, with each pack's own trailer: a blob of the pack the index lost, a
 * pack the index miscounts, and blobs it places at each other's offsets are each
 * reported. */
static void test_check_groups(const char *path, const BkSecret *secret)
{
	enum { N = 70, LEN = 100 };
	static const unsigned bad_at[] = { 0, 63, 64, 65, N - 1 };
	const size_t nbad_want = sizeof(bad_at) / sizeof(bad_at[0]);
	BkRepoParams params;
	bk_repo_params_default(&params);
	BkRepo *r = NULL;
	BkWriter *w = NULL;
	if (bk_repo_create(path, secret, &params, &r) < 0 || bk_writer_new(r, &w) < 0) {
		ok(false, "repository for check's groups");
		bk_repo_close(r);
		return;
	}
	int e = 0;
	size_t nbad = 0;
	for (unsigned i = 0; e == 0 && i < N; i++) {
		uint8_t buf[LEN], id[32];
		memset(buf, (int)i, LEN);
		if (nbad < nbad_want && bad_at[nbad] == i) {
			char name[32];
			snprintf(name, sizeof(name), "never written %u", i);
			bk_blob_id(r->keys, name, strlen(name), id);
			nbad++;
		} else {
			bk_blob_id(r->keys, buf, LEN, id);
		}
		e = bk_writer_put_id(w, BK_BLOB_DATA, buf, LEN, id);
	}
	if (e == 0)
		e = bk_writer_flush(w);
	OnePack op = { 0 };
	if (e == 0)
		e = bk_index_foreach_pack(r->index, one_pack, &op);
	ok(e == 0 && op.packs == 1, "%d blobs in one pack, %zu of them under a wrong id", N, nbad);
	Findings f = { 0 };
	is_int(bk_check(r, true, collect, &f), (int)nbad_want,
	       "check --read-data reports each blob under a wrong id (first: %s)", f.first);

	char name[80];
	bk_pack_name(op.id, name);
	BkPackEntry *ents = NULL;
	size_t n = 0;
	BkSealer *s = bk_repo_sealer(r);
	e = s ? bk_pack_read_trailer(r->be, name, op.size, s, r->keys, &ents, &n) : -ENOMEM;
	ok(e == 0 && n == N, "the pack's trailer reads, %zu entries (%d)", n, e);
	if (e == 0 && n == N) {
		ents[1].id[0] ^= 1; /* the index lost blob 1, and has an id nobody wrote */
		e = bk_index_clear(r->index);
		if (e == 0)
			e = bk_index_add_pack(r->index, op.id, op.size, ents, n);
		ents[1].id[0] ^= 1;
		f = (Findings){ 0 };
		ok(e == 0 && bk_check(r, false, collect, &f) == 2 && strstr(f.first, "not in the index") &&
			   strstr(f.first, bk_id_hex(ents[1].id).s) && strstr(f.last, "does not hold"),
		   "check reports the blob the index lost, and the one it places in a pack that "
		   "does not hold it (%s; %s)", f.first, f.last);
		e = bk_index_clear(r->index);
		if (e == 0)
			e = bk_index_add_pack(r->index, op.id, op.size, ents, n);
		if (e == 0) /* every blob indexed, the pack counted one short */
			e = bk_index_add_pack(r->index, op.id, op.size, ents, n - 1);
		f = (Findings){ 0 };
		ok(e == 0 && bk_check(r, false, collect, &f) == 1 && strstr(f.first, "index says"),
		   "check reports a pack the index miscounts (%s)", f.first);
		/* the index places blobs 1 and 2 at each other's offsets: reading them
		 * fails, and check said nothing */
		BkPackEntry *moved = malloc(n * sizeof(*moved));
		e = moved ? bk_index_clear(r->index) : -ENOMEM;
		if (e == 0) {
			memcpy(moved, ents, n * sizeof(*moved));
			moved[1].offset = ents[2].offset;
			moved[2].offset = ents[1].offset;
			e = bk_index_add_pack(r->index, op.id, op.size, moved, n);
		}
		f = (Findings){ 0 };
		int found = e == 0 ? bk_check(r, false, collect, &f) : e;
		ok(found == 2 && strstr(f.first, "index says offset"),
		   "check reports the two blobs the index misplaces (%d: %s)", found, f.first);
		/* the index places a blob nobody wrote in the pack (at blob 0's place):
		 * a backup deduplicating against it stores nothing, and check said
		 * nothing, with or without --read-data */
		e = moved ? bk_index_clear(r->index) : -ENOMEM;
		if (e == 0)
			e = bk_index_add_pack(r->index, op.id, op.size, ents, n);
		if (e == 0) {
			memcpy(moved, ents, n * sizeof(*moved));
			bk_blob_id(r->keys, "placed", 6, moved[0].id);
			e = bk_index_add_pack(r->index, op.id, op.size, moved, n);
		}
		f = (Findings){ 0 };
		found = e == 0 ? bk_check(r, false, collect, &f) : e;
		ok(found == 1 && strstr(f.first, "places 1 blob in it that it does not hold"),
		   "check reports a blob the index places in a pack that does not hold it (%d: %s)",
		   found, f.first);
		if (e == 0 && (e = bk_index_clear(r->index)) == 0)
			e = bk_index_add_pack(r->index, op.id, op.size, ents, n);
		ok(e == 0 && bk_check(r, false, NULL, NULL) == 0, "a rebuilt index checks clean");
		free(moved);
	}
	free(ents);
	bk_writer_free(w);
	bk_repo_close(r);
	if (op.packs != 1)
		return;
	/* an index entry naming a pack that is nowhere (its pack id damaged in the
	 * LMDB file, which has no checksums) */
	char *dir = bk_path_join(path, "index");
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	uint8_t key[32] = { 1, 2, 3 }, val[45] = { 9, 9, 9 };
	MDB_val k = { sizeof(key), key }, v = { sizeof(val), val };
	int rc = dir ? mdb_env_create(&env) : ENOMEM;
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 4);
	if (rc == 0)
		rc = mdb_env_open(env, dir, 0, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "blobs", 0, &dbi);
	if (rc == 0)
		rc = mdb_put(txn, dbi, &k, &v, 0);
	rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
	mdb_env_close(env);
	free(dir);
	f = (Findings){ 0 };
	e = rc == 0 ? bk_repo_open(path, secret, &r) : -rc;
	e = e == 0 ? bk_check(r, false, collect, &f) : e;
	ok(e == 1 && strstr(f.first, "places 1 blob in packs it does not list"),
	   "check reports an index entry naming a pack that is nowhere (%d: %s)", e, f.first);
	/* a backend that cannot say whether that pack is there (an S3 HEAD failing;
	 * here data/09 a link to itself, ELOOP) is no finding that it is not on disk */
	char *loop = e >= 0 ? bk_path_join(path, "data/09") : NULL;
	struct stat lst;
	if (loop && lstat(loop, &lst) == 0) { /* a real pack's directory (1 in 256) */
		ok(1, "# SKIP data/09 holds packs");
	} else if (loop) {
		f = (Findings){ 0 };
		e = symlink("09", loop) == 0 ? bk_check(r, false, collect, &f) : -errno;
		ok(e == -ELOOP && f.problems == 0,
		   "check fails, reporting no pack as missing, when the backend cannot tell "
		   "whether it is there (%d: %s)", e, f.first);
		unlink(loop);
	}
	free(loop);
	bk_repo_close(r);
}

/* A blob stored in two packs (two writers storing it at once; the index keeps the
 * one committed first) and a `repair index` committing while check runs: the repair
 * moves the blob's entry to the pack it lists first, a pack check had already
 * counted against the index as it was. That is no damage (found by a concurrency
 * stress: check --read-data beside a repair reported a clean repository damaged,
 * exit 5). The repair runs from check's report of a pack the index lists and that
 * is missing: after every trailer is read, before the index is read whole. */
typedef struct {
	BkRepo *r;
	Findings f;
	int repaired; /* 1 failed, 2 done */
} Beside;

static void repair_on_report(void *ud, bool problem, const char *line)
{
	Beside *b = ud;
	collect(&b->f, problem, line);
	if (problem && strstr(line, "which is missing") && !b->repaired) {
		uint64_t packs, blobs;
		b->repaired = bk_repair_index(b->r, NULL, NULL, &packs, &blobs) == 0 ? 2 : 1;
	}
}

typedef struct {
	uint8_t id[2][32];
	uint64_t size[2];
	size_t n;
} TwoPacks;

static int two_packs(void *ud, const uint8_t pack[32], uint64_t size, uint32_t count)
{
	(void)count;
	TwoPacks *p = ud;
	if (p->n < 2) {
		memcpy(p->id[p->n], pack, 32);
		p->size[p->n] = size;
	}
	p->n++;
	return 0;
}

static void test_check_beside_repair(const char *path, const BkSecret *secret)
{
	BkRepoParams params;
	bk_repo_params_default(&params);
	BkRepo *r = NULL;
	if (bk_repo_create(path, secret, &params, &r) < 0) {
		ok(false, "repository for check beside a repair");
		return;
	}
	/* the shared blob in two packs, each with a blob of its own */
	uint8_t shared[32], id[32];
	int e = 0;
	for (int i = 0; e == 0 && i < 2; i++) {
		BkWriter *w = NULL;
		if ((e = bk_writer_new(r, &w)) == 0)
			e = bk_writer_put(w, BK_BLOB_DATA, "stored by both", 14, shared);
		if (e == 0)
			e = bk_writer_put(w, BK_BLOB_DATA, i ? "second" : "first", i ? 6 : 5, id);
		if (e == 0)
			e = bk_writer_flush(w);
		bk_writer_free(w);
		if (e == 0 && i == 0)
			e = bk_index_clear(r->index); /* the second writer does not see it */
	}
	uint64_t np, nb;
	if (e == 0) /* the repair's choice: the pack it lists first */
		e = bk_repair_index(r, NULL, NULL, &np, &nb);
	TwoPacks p = { 0 };
	BkBlobLoc loc;
	if (e == 0)
		e = bk_index_foreach_pack(r->index, two_packs, &p);
	if (e == 0)
		e = p.n == 2 ? bk_index_get(r->index, shared, &loc) : -EINVAL;
	/* the index as the writers left it: the shared blob in the other pack */
	BkPackEntry *ents[2] = { NULL, NULL };
	size_t n[2] = { 0, 0 };
	BkSealer *s = bk_repo_sealer(r);
	int first = e == 0 && memcmp(loc.pack, p.id[0], 32) == 0 ? 0 : 1, other = 1 - first;
	for (int i = 0; e == 0 && i < 2; i++) {
		char name[80];
		bk_pack_name(p.id[i], name);
		e = s ? bk_pack_read_trailer(r->be, name, p.size[i], s, r->keys, &ents[i], &n[i]) : -ENOMEM;
	}
	if (e == 0)
		e = bk_index_clear(r->index);
	if (e == 0)
		e = bk_index_add_pack(r->index, p.id[other], p.size[other], ents[other], n[other]);
	if (e == 0)
		e = bk_index_add_pack(r->index, p.id[first], p.size[first], ents[first], n[first]);
	static const uint8_t gone[32] = { 0xee, 0xee };
	if (e == 0)
		e = bk_index_add_pack(r->index, gone, 100, NULL, 0);
	ok(e == 0 && bk_index_get(r->index, shared, &loc) == 0 &&
		   memcmp(loc.pack, p.id[other], 32) == 0,
	   "a blob in two packs, indexed in the one a repair would not choose (%d)", e);
	Beside b = { .r = r };
	int found = e == 0 ? bk_check(r, false, repair_on_report, &b) : e;
	ok(b.repaired == 2 && bk_index_get(r->index, shared, &loc) == 0 &&
		   memcmp(loc.pack, p.id[first], 32) == 0,
	   "a repair while check runs moves the blob's entry to the other pack");
	ok(found == 1 && b.f.problems == 1 && strstr(b.f.first, "which is missing"),
	   "check beside that repair reports only the missing pack (%d: %s; %s)", found, b.f.first,
	   b.f.last);
	free(ents[0]);
	free(ents[1]);
	bk_repo_close(r);
}

/* Plain check reads every content list (it does not read data): a file whose
 * content list is damaged in its pack, its tree readable, is reported, naming the
 * file (found by a mutation audit: dropping that report passed every test). */
static void test_check_content_list(const char *path, const BkSecret *secret)
{
	enum { LEN = 4 << 20 }; /* ~64 chunks: a root over one content list at least */
	BkRepoParams params;
	bk_repo_params_default(&params);
	BkRepo *r = NULL;
	uint8_t snap[32], *data = malloc(LEN);
	int fd = memfd_create("big.bin", 0), e = data && fd >= 0 ? 0 : -ENOMEM;
	uint64_t x = 88172645463325252u; /* xorshift: bytes that neither compress nor repeat */
	for (size_t i = 0; e == 0 && i < LEN; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (uint8_t)(x >> 32);
	}
	if (e == 0 && write(fd, data, LEN) != LEN)
		e = -EIO;
	if (e == 0 && lseek(fd, 0, SEEK_SET) < 0)
		e = -errno;
	if (e == 0)
		e = bk_repo_create(path, secret, &params, &r);
	if (e == 0)
		e = bk_archive_fd(r, fd, "big.bin", &(BkArchiveOpts){ .name = "big", .kind = "stdin" },
				  snap);
	BkSnapshot *sn = NULL;
	BkTree *t = NULL;
	if (e == 0)
		e = bk_snapshot_load(r, snap, &sn);
	if (e == 0)
		e = bk_tree_load(r, sn->root, &t);
	const BkContentNode *root = e == 0 && t->count == 1 ? &t->entries[0].content : NULL;
	if (!ok(root && root->level >= 1, "a 4 MiB file's content root is over content lists (%s)",
		e ? bk_error_detail() : "ok"))
		goto out;
	BkBlobLoc loc;
	char name[80];
	e = bk_index_get(r->index, root->refs[0].id, &loc);
	bk_pack_name(loc.pack, name);
	char *pack = e == 0 ? bk_path_join(path, name) : NULL;
	int pfd = pack ? open(pack, O_RDWR) : -1;
	uint8_t b;
	off_t at = (off_t)loc.offset + loc.sealed_len / 2;
	if (pfd < 0 || pread(pfd, &b, 1, at) != 1 || (b ^= 1, pwrite(pfd, &b, 1, at)) != 1)
		e = -EIO;
	if (pfd >= 0)
		close(pfd);
	free(pack);
	Findings f = { 0 };
	ok(e == 0 && bk_check(r, false, collect, &f) == 1 && strstr(f.first, "file big.bin"),
	   "plain check reports the file whose content list is damaged (%s)", f.first);
out:
	bk_tree_free(t);
	bk_snapshot_free(sn);
	bk_repo_close(r);
	if (fd >= 0)
		close(fd);
	free(data);
}

/* Saves a small stdin snapshot "s" stamped offset_s seconds off this clock, its
 * parent `parent` (NULL: none); 0 or the error. */
static int save_stamped(BkRepo *r, int64_t offset_s, const uint8_t *parent, uint8_t id[32])
{
	int fd = memfd_create("s", 0), e = fd < 0 ? -errno : 0;
	if (e == 0 && write(fd, "x", 1) != 1)
		e = -EIO;
	if (e == 0 && lseek(fd, 0, SEEK_SET) < 0)
		e = -errno;
	BkArchiveOpts o = { .name = "s", .kind = "stdin", .parent = parent,
			    .clock_offset_us = offset_s * 1000000 };
	if (e == 0)
		e = bk_archive_fd(r, fd, "s", &o, id);
	if (fd >= 0)
		close(fd);
	return e;
}

/* "latest" is the newest snapshot that is no other's parent: one made after its
 * parent on a host whose clock is behind still counts as the newer (a dump taken
 * there was passed over for the one before it: found by a helper's exploration);
 * between two that are no one's parent, the newer by time. */
static void test_latest_after_parent(const char *path, const BkSecret *secret)
{
	BkRepoParams params;
	bk_repo_params_default(&params);
	BkRepo *r = NULL;
	uint8_t a[32], b[32], c[32], got[32] = { 0 };
	int e = bk_repo_create(path, secret, &params, &r);
	if (e == 0)
		e = save_stamped(r, 0, NULL, a);
	if (e == 0)
		e = save_stamped(r, -600, a, b); /* made after a, stamped 10 min before it */
	if (e == 0)
		e = bk_snapshot_resolve(r, "latest", "s", got);
	ok(e == 0 && !memcmp(got, b, 32), "latest names the child stamped before its parent (%s)",
	   e ? bk_error_detail() : bk_id_hex(got).s);
	if (e == 0)
		e = save_stamped(r, -1200, NULL, c); /* no parent, stamped before b */
	if (e == 0)
		e = bk_snapshot_resolve(r, "latest", NULL, got);
	ok(e == 0 && !memcmp(got, b, 32), "of two that are no one's parent, the newer (%s)",
	   e ? bk_error_detail() : bk_id_hex(got).s);
	bk_repo_close(r);
}

/* Packs cannot be placed (every data/xx is a file, not a directory): the first
 * pack of a batch fails to commit, the rest of the batch is left out, and no temp
 * file stays in the repository's tmp/. */
static void test_commit_failure(const char *path, const BkSecret *secret)
{
	BkRepoParams params;
	bk_repo_params_default(&params);
	params.zstd_level = 0;
	BkRepo *r = NULL;
	BkWriter *w = NULL;
	if (bk_repo_create(path, secret, &params, &r) < 0 || bk_writer_new(r, &w) < 0) {
		ok(false, "repository for the commit failure");
		return;
	}
	char *data = bk_path_join(path, "data"), *tmp = bk_path_join(path, "tmp");
	bk_mkdir_p(data, 0700);
	for (unsigned x = 0; x < 256; x++) {
		char name[8];
		snprintf(name, sizeof(name), "%02x", x);
		char *f = bk_path_join(data, name);
		FILE *fp = fopen(f, "w");
		if (fp)
			fclose(fp);
		free(f);
	}
	unsigned n = (bk_blake2b_init() + 1) * 16; /* a batch of full packs, and one more */
	uint8_t(*ids)[32] = calloc(n, 32);
	BatchPutter bp = { w, 0, n, ids, 0 };
	put_batch_blobs(&bp);
	int flushed = bk_writer_flush(w);
	ok(bp.failed, "a put fails when its batch cannot be placed");
	ok(flushed < 0, "the failure sticks: flush fails (%s)", bk_error_detail());
	is_int(bk_writer_stats(w)->packs, 0, "no pack committed");
	bk_writer_free(w);
	is_int(count_dir(tmp, NULL), 0, "no temp file left in tmp/");
	free(ids);
	free(data);
	free(tmp);
	bk_repo_close(r);
}

static void test_write_failure(const char *path, const BkSecret *secret)
{
	BkRepoParams params;
	bk_repo_params_default(&params);
	params.zstd_level = 0; /* random bytes: sizes are what was written */
	BkRepo *r = NULL;
	BkWriter *w = NULL;
	if (bk_repo_create(path, secret, &params, &r) < 0 || bk_writer_new(r, &w) < 0) {
		ok(false, "repository for the write failure");
		return;
	}
	enum { N = 101, LEN = 65536 };
	uint8_t(*ids)[32] = calloc(N, 32), *buf = malloc(LEN);
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = (3u << 20) + 1000; /* a pack's third buffer flush fails partway */
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &lim);
	size_t puts = 0;
	int failed = 0;
	while (puts < N - 1 && !failed) {
		for (size_t k = 0; k < LEN; k++)
			buf[k] = (uint8_t)(k * 31 + puts * 7 + (k >> 8) * puts);
		memcpy(buf, &puts, sizeof(puts));
		failed = bk_writer_put(w, BK_BLOB_DATA, buf, LEN, ids[puts]) < 0;
		puts++;
	}
	setrlimit(RLIMIT_FSIZE, &old); /* the disk has room again: nothing else fails */
	int more = 0;
	if (failed) { /* one more blob: it must not land in the damaged pack */
		memset(buf, 0xee, LEN);
		more = bk_writer_put(w, BK_BLOB_DATA, buf, LEN, ids[puts++]);
	}
	int flushed = bk_writer_flush(w);
	ok(failed, "a write past the size limit fails a put (after %zu puts)", puts);
	ok(flushed < 0, "the failure sticks: flush fails (%d; the put after it: %d)", flushed, more);
	size_t indexed = 0, wrong = 0;
	for (size_t i = 0; i < puts; i++) {
		BkBlobLoc loc;
		if (bk_index_get(r->index, ids[i], &loc) != 0)
			continue;
		indexed++;
		uint8_t *got;
		size_t got_len;
		if (bk_repo_read_blob(r, BK_BLOB_DATA, ids[i], &got, &got_len) < 0) {
			if (wrong++ == 0)
				diag("blob %zu: %s", i, bk_error_detail());
			continue;
		}
		free(got);
	}
	is_int(wrong, 0, "every blob the index knows reads back (%zu of %zu indexed)", indexed, puts);
	char *tmp = bk_path_join(path, "tmp");
	is_int(count_dir(tmp, NULL), 0, "the abandoned pack's temporary file is gone");
	free(tmp);
	free(ids);
	free(buf);
	bk_writer_free(w);
	bk_repo_close(r);
}

/* A chunk stream whose stores fail (every pack write past a 4 KiB size limit):
 * the push that meets the first failure returns it, and freeing the stream, which
 * waits for the batches still in flight (failing too, each naming its own pack),
 * leaves that error's detail for the caller to print. */
static void test_stream_failure_detail(const char *path, const BkSecret *secret)
{
	BkRepoParams params;
	bk_repo_params_default(&params);
	BkRepo *r = NULL;
	BkWriter *w = NULL;
	BkChunkStream *st = NULL;
	if (bk_repo_create(path, secret, &params, &r) < 0 || bk_writer_new(r, &w) < 0 ||
	    bk_chunk_stream_new_blocks(r, w, 32768, &st) < 0) {
		ok(false, "repository and stream for the failing stream");
		bk_writer_free(w);
		bk_repo_close(r);
		return;
	}
	enum { PIECE = 32768, MAX_PIECES = 2048 };
	uint8_t *buf = malloc(PIECE);
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 4096;
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &lim);
	int e = 0;
	uint32_t x = 12345;
	for (size_t i = 0; e == 0 && i < MAX_PIECES; i++) {
		for (size_t k = 0; k < PIECE; k++) {
			x = x * 1103515245u + 12345u;
			buf[k] = (uint8_t)(x >> 16);
		}
		e = bk_chunk_stream_push(st, buf, PIECE);
	}
	char first[1024];
	snprintf(first, sizeof(first), "%s", bk_error_detail());
	bk_chunk_stream_free(st);
	setrlimit(RLIMIT_FSIZE, &old);
	ok(e < 0, "a push fails once the stores fail (%d: %s)", e, first);
	ok(strcmp(bk_error_detail(), first) == 0,
	   "freeing the stream leaves that error's detail (now: %s)", bk_error_detail());
	free(buf);
	bk_writer_free(w);
	bk_repo_close(r);
}

/* Pushes n bytes of data in pieces of 1, 2, 4 ... 65536 bytes, over and over. */
static int push_pieces(BkChunkStream *st, const uint8_t *data, size_t n)
{
	size_t piece = 1;
	for (size_t at = 0; at < n; at += piece, piece = piece >= 65536 ? 1 : piece * 2) {
		int e = bk_chunk_stream_push(st, data + at, BK_MIN(piece, n - at));
		if (e < 0)
			return e;
	}
	return 0;
}

static void test_block_stream(BkRepo *r)
{
	enum { BLOCK = 32768, A = 3 * BLOCK + 1696, B = BLOCK };
	static uint8_t data[A + B];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	BkWriter *w = NULL;
	BkChunkStream *st = NULL;
	int e = bk_writer_new(r, &w);
	if (e == 0)
		e = bk_chunk_stream_new_blocks(r, w, BLOCK, &st);
	is_int(e, 0, "blocks: a block-cut chunk stream");
	if (e < 0)
		goto out;
	BkContentNode a = { 0 }, b = { 0 }, z = { 0 };
	uint64_t sa = 0, sb = 0, sz = 1;
	e = push_pieces(st, data, A);
	if (e == 0)
		e = bk_chunk_stream_finish(st, &a, &sa);
	if (e == 0)
		e = push_pieces(st, data + A, B);
	if (e == 0)
		e = bk_chunk_stream_finish(st, &b, &sb);
	if (e == 0)
		e = bk_chunk_stream_finish(st, &z, &sz);
	is_int(e, 0, "blocks: three files pushed in pieces of 1 byte to 64 KiB");
	bool sizes = a.level == 0 && a.count == 4 && b.level == 0 && b.count == 1 && z.count == 0 &&
		     sa == A && sb == B && sz == 0;
	for (size_t i = 0; sizes && i < a.count; i++)
		sizes = a.refs[i].size == (i < 3 ? BLOCK : A - 3 * BLOCK);
	sizes = sizes && b.refs[0].size == B;
	ok(sizes, "blocks: %u refs for %u bytes (3 blocks and 1696 bytes), 1 for a file of one "
		  "block, none for an empty file", (unsigned)a.count, (unsigned)A);
	bool ids = sizes;
	uint8_t want[32];
	for (size_t i = 0; ids && i < a.count; i++) {
		bk_blob_id(r->keys, data + i * BLOCK, a.refs[i].size, want);
		ids = memcmp(want, a.refs[i].id, 32) == 0;
	}
	bk_blob_id(r->keys, data + A, B, want);
	ok(ids && memcmp(want, b.refs[0].id, 32) == 0,
	   "blocks: each ref is the id of its block, the second file's from its own start");
	bk_content_node_release(&a);
	bk_content_node_release(&b);
	bk_content_node_release(&z);
out:
	bk_chunk_stream_free(st);
	bk_writer_free(w);
}

/* Whether the chunks under root are data[0..len) cut into `block`-byte blocks from
 * its start (the writer flushed, for content lists above level 0). */
typedef struct {
	BkRepo *r;
	const uint8_t *data;
	size_t len, block, n;
	bool good;
} Blocks;

static int block_cb(void *ud, const uint8_t id[32], uint64_t size, uint64_t offset)
{
	Blocks *b = ud;
	uint8_t want[32];
	size_t sz = offset < b->len ? BK_MIN(b->block, b->len - offset) : 0;
	if (offset != b->n * b->block || sz == 0 || size != sz) {
		b->good = false;
		return -ECANCELED;
	}
	bk_blob_id(b->r->keys, b->data + offset, sz, want);
	b->good = b->good && memcmp(want, id, 32) == 0;
	b->n++;
	return 0;
}

static bool is_blocks(BkRepo *r, const BkContentNode *root, const uint8_t *data, size_t len,
		      size_t block)
{
	Blocks b = { .r = r, .data = data, .len = len, .block = block, .good = true };
	int e = bk_content_walk(root, bk_repo_read_blob, r, block_cb, &b);
	return e == 0 && b.good && b.n == (len + block - 1) / block;
}

/* Writes data to fd in pieces of 1 byte to 64 KiB (a pipe's reader then gets short
 * reads), from a thread of its own. */
typedef struct {
	int fd;
	const uint8_t *data;
	size_t len;
} Feed;

static void *feed(void *ud)
{
	Feed *f = ud;
	size_t piece = 1;
	for (size_t at = 0; at < f->len; at += piece, piece = piece >= 65536 ? 1 : piece * 2) {
		if (write(f->fd, f->data + at, BK_MIN(piece, f->len - at)) < 0)
			break;
	}
	close(f->fd);
	return NULL;
}

/* A block-cut stream reads a file straight into its batches (bk_chunk_stream_read_fd):
 * the same blocks as pushed through the window, for files of no, one and many
 * batches, ending in and on a block's edge, from a regular file and from a pipe (short
 * reads), after bytes pushed before and with bytes pushed after (the cut tail goes on). */
static void test_block_read_fd(BkRepo *r)
{
	enum { BLOCK = 32768, MAX = 40 * BLOCK + 123 };
	static uint8_t data[MAX];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 2654435761u >> 11);
	char path[4096];
	snprintf(path, sizeof(path), "%s/read-fd", tmp_root);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool wrote = fd >= 0 && write(fd, data, MAX) == MAX;
	BkWriter *w = NULL;
	BkChunkStream *st = NULL;
	int e = wrote ? bk_writer_new(r, &w) : -EIO;
	if (e == 0)
		e = bk_chunk_stream_new_blocks(r, w, BLOCK, &st);
	is_int(e, 0, "read_fd: a block-cut chunk stream and a file");
	static const size_t sizes[] = { 0, 1, BLOCK - 1, BLOCK, 16 * BLOCK, 16 * BLOCK + 1,
					17 * BLOCK + 5, 40 * BLOCK, MAX };
	int bad = 0;
	for (size_t i = 0; e == 0 && i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int pipe_mode = 0; e == 0 && pipe_mode < 2; pipe_mode++) {
			BkContentNode root = { 0 };
			uint64_t size = 0;
			pthread_t t;
			int in = -1, p[2] = { -1, -1 };
			Feed f = { .data = data, .len = sizes[i] };
			if (pipe_mode && pipe(p) == 0) {
				f.fd = p[1];
				in = p[0];
				if (pthread_create(&t, NULL, feed, &f) != 0) {
					close(p[1]);
					p[1] = -1;
				}
			} else if (!pipe_mode && ftruncate(fd, (off_t)sizes[i]) == 0) {
				in = fd;
				lseek(fd, 0, SEEK_SET);
			}
			e = in >= 0 ? bk_chunk_stream_read_fd(st, in, NULL, NULL, 0, 0) : -EIO;
			if (e == 0)
				e = bk_chunk_stream_finish(st, &root, &size);
			if (e == 0)
				e = bk_writer_flush(w);
			if (pipe_mode && p[1] >= 0)
				pthread_join(t, NULL);
			if (pipe_mode && in >= 0)
				close(in);
			if (e == 0 && !(size == sizes[i] && is_blocks(r, &root, data, sizes[i], BLOCK)) &&
			    bad++ == 0)
				diag("%zu bytes from a %s: %u refs", sizes[i], pipe_mode ? "pipe" : "file",
				     (unsigned)root.count);
			bk_content_node_release(&root);
			if (!pipe_mode && write(fd, data + sizes[i], MAX - sizes[i]) < 0)
				e = -EIO; /* the file whole again for the next size */
		}
	}
	is_int(e, 0, "read_fd: every size read from the file and from a pipe");
	ok(e == 0 && bad == 0, "read_fd: each its blocks from its start, the last one short");

	/* pushed, read, pushed: 1000 bytes, the file (the window not empty: read
	 * through it), then after a file of 5 blocks + 7 bytes read alone, 100 more */
	BkContentNode a = { 0 }, b = { 0 };
	uint64_t sa = 0, sb = 0;
	enum { HEAD = 1000, FILE_B = 5 * BLOCK + 7, TAIL = 100 };
	if (e == 0 && ftruncate(fd, MAX - HEAD - TAIL) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
		/* the file holds data[0..); pushed before it: the same bytes shifted */
		e = bk_chunk_stream_push(st, data + MAX - HEAD, HEAD);
	} else if (e == 0) {
		e = -EIO;
	}
	if (e == 0)
		e = bk_chunk_stream_read_fd(st, fd, NULL, NULL, 0, 0);
	if (e == 0)
		e = bk_chunk_stream_finish(st, &a, &sa);
	if (e == 0)
		e = bk_writer_flush(w);
	static uint8_t joined[MAX];
	memcpy(joined, data + MAX - HEAD, HEAD);
	memcpy(joined + HEAD, data, MAX - HEAD - TAIL);
	ok(e == 0 && sa == MAX - TAIL && is_blocks(r, &a, joined, MAX - TAIL, BLOCK),
	   "read_fd: bytes pushed before the file and the file are one run of blocks");
	if (e == 0 && (ftruncate(fd, FILE_B) < 0 || lseek(fd, 0, SEEK_SET) < 0))
		e = -EIO;
	if (e == 0)
		e = bk_chunk_stream_read_fd(st, fd, NULL, NULL, 0, 0);
	if (e == 0)
		e = bk_chunk_stream_push(st, data + FILE_B, TAIL);
	if (e == 0)
		e = bk_chunk_stream_finish(st, &b, &sb);
	if (e == 0)
		e = bk_writer_flush(w);
	ok(e == 0 && sb == FILE_B + TAIL && is_blocks(r, &b, data, FILE_B + TAIL, BLOCK),
	   "read_fd: bytes pushed after the file continue its short last block");
	bk_content_node_release(&a);
	bk_content_node_release(&b);
	if (fd >= 0)
		close(fd);
	bk_chunk_stream_free(st);
	bk_writer_free(w);
}

int main(void)
{
	if (bk_crypto_init() < 0 || !mkdtemp(tmp_root)) {
		ok(false, "set-up");
		return tap_done();
	}
	char *path = bk_path_join(tmp_root, "repo");
	static const uint8_t key[32] = { 1, 2, 3 };
	BkSecret *secret = NULL;
	BkRepoParams params;
	bk_repo_params_default(&params);
	BkRepo *r = NULL;
	int e = bk_secret_new(BK_SECRET_KEYFILE, key, sizeof(key), &secret);
	if (e == 0)
		e = bk_repo_create(path, secret, &params, &r);
	is_int(e, 0, "repository created");
	if (e == 0) {
		test_flush_while_putting(r);
		test_same_blob_twice(r);
		test_same_bytes_other_type(r);
		test_blob_too_large(r);
		test_batch_read(r);
		test_block_stream(r);
		test_block_read_fd(r);
		/* the tests that make a repository of their own */
		static const struct {
			const char *dir;
			void (*fn)(const char *path, const BkSecret *secret);
		} own[] = {
			{ "repo-write-failure", test_write_failure },
			{ "repo-full-batches", test_full_batches },
			{ "repo-commit-failure", test_commit_failure },
			{ "repo-check-groups", test_check_groups },
			{ "repo-check-content-list", test_check_content_list },
			{ "repo-check-beside-repair", test_check_beside_repair },
			{ "repo-stream-failure", test_stream_failure_detail },
			{ "repo-latest-after-parent", test_latest_after_parent },
		};
		for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
			char *path2 = bk_path_join(tmp_root, own[i].dir);
			own[i].fn(path2, secret);
			free(path2);
		}
	}
	bk_repo_close(r);
	bk_secret_free(secret);
	free(path);
	tap_remove_tree(tmp_root);
	return tap_done();
}
