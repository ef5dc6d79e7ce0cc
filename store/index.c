#include "store/index.h"

#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "store/error.h"
#include "store/fs.h"
#include "store/util.h"

#define LOC_LEN 45
#define PACKROW_LEN 12
#define MAP_SIZE (256ull << 30)

struct BkIndex {
	MDB_env *env;
	MDB_dbi blobs, packs;
	char *dir;
	bool readonly;
};

/* The one place LMDB's error codes are translated. */
static int lmdb_error(int rc, const BkIndex *x, const char *what)
{
	int code = rc == ENOMEM ? -ENOMEM : rc == MDB_MAP_FULL ? -ENOSPC : rc > 0 ? -rc : -EIO;
	/* LMDB reports a short write (a full disk) as EIO: say what it was */
	struct statvfs vfs;
	if (rc == EIO && statvfs(x->dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < (16u << 20))
		return bk_errorf(-ENOSPC, "index %s: %s: no space left on device", x->dir, what);
	if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID)
		code = BK_E_CORRUPT;
	/* read-only, LMDB may read without locks: a writer elsewhere can then move
	 * pages under a reader, which looks like damage but is not */
	const char *hint = x->readonly ? code == BK_E_CORRUPT
				       ? " (read-only here, without locks: if something writes to the "
					 "repository elsewhere, retry)"
				       : " (the repository is read-only here)"
			   : code == BK_E_CORRUPT ? " (run 'bunker repair index')"
						  : "";
	return bk_errorf(code, "index %s: %s: %s%s", x->dir, what, mdb_strerror(rc), hint);
}

static bool cannot_write(int err) { return err == EACCES || err == EROFS || err == EPERM; }

/* Opens the environment: read-write; where that is not allowed (a read-only mount,
 * a repository of another user), read-only, with LMDB's reader locks if lock.mdb
 * can be written, else without (nothing can write through this mount, and every
 * blob read is authenticated and its id checked anyway). */
static int env_open(BkIndex *x)
{
	static const unsigned modes[] = { 0, MDB_RDONLY, MDB_RDONLY | MDB_NOLOCK };
	int rc = 0;
	for (size_t i = 0; i < BK_ARRAY_SIZE(modes); i++) {
		if (x->env)
			mdb_env_close(x->env); /* LMDB: an env whose open failed is discarded */
		x->env = NULL;
		rc = mdb_env_create(&x->env);
		if (rc == 0)
			rc = mdb_env_set_mapsize(x->env, MAP_SIZE);
		if (rc == 0)
			rc = mdb_env_set_maxdbs(x->env, 4);
		if (rc == 0)
			rc = mdb_env_set_maxreaders(x->env, 1024);
		if (rc == 0)
			rc = mdb_env_open(x->env, x->dir, MDB_NOTLS | modes[i], 0660);
		x->readonly = modes[i] != 0;
		if (!cannot_write(rc))
			break;
	}
	return rc == 0 ? 0 : lmdb_error(rc, x, "open");
}

/* LMDB maps data.mdb and reads the pages its meta page names through the map:
 * a file cut short (a copy interrupted, a full disk under a copy) was a SIGBUS
 * at the first lookup, in every command, `repair index` too (found by review).
 * Every page up to the meta's last one has been written before that meta
 * (LMDB leaves only loose pages unwritten, which deletes in user databases
 * make, and the index never deletes: it is cleared whole), so a shorter file
 * is damage. */
static int check_size(BkIndex *x)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_filehandle_t fd;
	struct stat fst;
	int rc = mdb_env_info(x->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(x->env, &st);
	if (rc == 0)
		rc = mdb_env_get_fd(x->env, &fd);
	if (rc != 0)
		return lmdb_error(rc, x, "open");
	if (fstat(fd, &fst) < 0)
		return bk_errorf_code(-errno, "index %s: stat", x->dir);
	uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if ((uint64_t)fst.st_size < need)
		return bk_errorf(BK_E_CORRUPT, "index %s: data.mdb is %llu bytes, its pages need %llu: "
				 "cut short (run 'bunker repair index')", x->dir,
				 (unsigned long long)fst.st_size, (unsigned long long)need);
	return 0;
}

/* Opens the two databases in one transaction: a write one that creates them when
 * create, else a read one (they exist: MDB_NOTFOUND when not). */
static int open_dbs(BkIndex *x, bool create)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(x->env, NULL, create ? 0 : MDB_RDONLY, &txn);
	if (rc != 0)
		return rc;
	unsigned flags = create ? MDB_CREATE : 0;
	rc = mdb_dbi_open(txn, "blobs", flags, &x->blobs);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "packs", flags, &x->packs);
	if (rc == 0)
		return mdb_txn_commit(txn);
	mdb_txn_abort(txn);
	return rc;
}

int bk_index_open(const char *dir, BkIndex **ret)
{
	BkIndex *x = calloc(1, sizeof(*x));
	if (!x || !(x->dir = strdup(dir))) {
		free(x);
		return -ENOMEM;
	}
	int r = bk_mkdir_p(dir, 0770); /* (an existing directory, read-only or not, is fine) */
	if (r == 0)
		r = env_open(x);
	if (r == 0)
		r = check_size(x);
	if (r < 0)
		goto fail;
	int dead, rc;
	mdb_reader_check(x->env, &dead); /* clear slots of crashed processes */
	/* The databases opened in a read transaction once they exist: a write one
	 * waits for any writer, and one stopped in its commit (SIGSTOP, a debugger)
	 * held every other command at its open, readers and restore_command too
	 * (found by review). Only the first open of a new index creates them. */
	rc = open_dbs(x, false);
	if (rc == MDB_NOTFOUND && !x->readonly)
		rc = open_dbs(x, true);
	if (rc != 0) {
		r = lmdb_error(rc, x, "open databases");
		goto fail;
	}
	*ret = x;
	return 0;
fail:
	bk_index_close(x);
	return r;
}

bool bk_index_readonly(const BkIndex *x) { return x->readonly; }

void bk_index_close(BkIndex *x)
{
	if (!x)
		return;
	if (x->env)
		mdb_env_close(x->env);
	free(x->dir);
	free(x);
}

static void decode_loc(const uint8_t *v, BkBlobLoc *loc)
{
	memcpy(loc->pack, v, 32);
	loc->offset = bk_get_le32(v + 32);
	loc->sealed_len = bk_get_le32(v + 36);
	loc->plain_len = bk_get_le32(v + 40);
	loc->type = v[44];
}

int bk_index_get(BkIndex *x, const uint8_t id[32], BkBlobLoc *ret)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(rc, x, "begin read");
	MDB_val k = { 32, (void *)id }, v;
	rc = mdb_get(txn, x->blobs, &k, &v);
	int r = 0;
	if (rc == MDB_NOTFOUND)
		r = -ENOENT;
	else if (rc != 0)
		r = lmdb_error(rc, x, "get");
	else if (v.mv_size != LOC_LEN)
		r = bk_errorf(BK_E_CORRUPT, "index %s: bad entry for blob %s", x->dir, bk_id_hex(id).s);
	else
		decode_loc(v.mv_data, ret);
	mdb_txn_abort(txn);
	return r;
}

int bk_index_has_many(BkIndex *x, const uint8_t (*ids)[32], size_t n, bool *found)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(rc, x, "begin read");
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		MDB_val k = { 32, (void *)ids[i] }, v;
		rc = mdb_get(txn, x->blobs, &k, &v);
		if (rc != 0 && rc != MDB_NOTFOUND) {
			r = lmdb_error(rc, x, "get");
			break;
		}
		found[i] = rc == 0;
	}
	mdb_txn_abort(txn);
	return r;
}

int bk_index_add_pack(BkIndex *x, const uint8_t pack[32], uint64_t size, const BkPackEntry *e,
		      size_t n)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
	if (rc != 0)
		return lmdb_error(rc, x, "begin write");
	uint8_t row[PACKROW_LEN];
	bk_put_le64(row, size);
	bk_put_le32(row + 8, (uint32_t)n);
	MDB_val pk = { 32, (void *)pack }, pv = { sizeof(row), row };
	rc = mdb_put(txn, x->packs, &pk, &pv, 0);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		uint8_t loc[LOC_LEN];
		memcpy(loc, pack, 32);
		bk_put_le32(loc + 32, e[i].offset);
		bk_put_le32(loc + 36, e[i].sealed_len);
		bk_put_le32(loc + 40, e[i].plain_len);
		loc[44] = e[i].type;
		MDB_val k = { 32, (void *)e[i].id }, v = { sizeof(loc), loc };
		rc = mdb_put(txn, x->blobs, &k, &v, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST)
			rc = 0;
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return lmdb_error(rc, x, "add pack");
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return lmdb_error(rc, x, "commit");
	return 0;
}

int bk_index_get_pack(BkIndex *x, const uint8_t pack[32], uint64_t *ret_size, uint32_t *ret_count)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(rc, x, "begin read");
	MDB_val k = { 32, (void *)pack }, v;
	rc = mdb_get(txn, x->packs, &k, &v);
	int r = 0;
	if (rc == MDB_NOTFOUND)
		r = -ENOENT;
	else if (rc != 0)
		r = lmdb_error(rc, x, "get pack");
	else if (v.mv_size != PACKROW_LEN)
		r = bk_errorf(BK_E_CORRUPT, "index %s: bad pack row", x->dir);
	else {
		*ret_size = bk_get_le64(v.mv_data);
		*ret_count = bk_get_le32((uint8_t *)v.mv_data + 8);
	}
	mdb_txn_abort(txn);
	return r;
}

int bk_index_clear(BkIndex *x)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
	if (rc != 0)
		return lmdb_error(rc, x, "begin write");
	rc = mdb_drop(txn, x->blobs, 0);
	if (rc == 0)
		rc = mdb_drop(txn, x->packs, 0);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return lmdb_error(rc, x, "clear");
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return lmdb_error(rc, x, "commit");
	return 0;
}

static int foreach(BkIndex *x, MDB_dbi dbi, size_t vlen,
		   int (*each)(void *ud, const MDB_val *k, const MDB_val *v), void *ud)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(rc, x, "begin read");
	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		return lmdb_error(rc, x, "cursor");
	}
	MDB_val k, v;
	int r = 0;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		if (k.mv_size != 32 || v.mv_size != vlen) {
			r = bk_errorf(BK_E_CORRUPT, "index %s: malformed row", x->dir);
			break;
		}
		if ((r = each(ud, &k, &v)) < 0)
			break;
	}
	if (r == 0 && rc != MDB_NOTFOUND)
		r = lmdb_error(rc, x, "iterate");
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return r;
}

typedef struct {
	BkIndexPackFn pack_cb;
	BkIndexBlobFn blob_cb;
	void *ud;
} Each;

static int each_pack(void *ud, const MDB_val *k, const MDB_val *v)
{
	Each *e = ud;
	return e->pack_cb(e->ud, k->mv_data, bk_get_le64(v->mv_data),
			  bk_get_le32((uint8_t *)v->mv_data + 8));
}

static int each_blob(void *ud, const MDB_val *k, const MDB_val *v)
{
	Each *e = ud;
	BkBlobLoc loc;
	decode_loc(v->mv_data, &loc);
	return e->blob_cb(e->ud, k->mv_data, &loc);
}

int bk_index_foreach_pack(BkIndex *x, BkIndexPackFn cb, void *ud)
{
	Each e = { .pack_cb = cb, .ud = ud };
	return foreach(x, x->packs, PACKROW_LEN, each_pack, &e);
}

int bk_index_foreach_blob(BkIndex *x, BkIndexBlobFn cb, void *ud)
{
	Each e = { .blob_cb = cb, .ud = ud };
	return foreach(x, x->blobs, LOC_LEN, each_blob, &e);
}

int bk_index_stat(BkIndex *x, uint64_t *ret_packs, uint64_t *ret_blobs)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return lmdb_error(rc, x, "begin read");
	MDB_stat a, b;
	rc = mdb_stat(txn, x->packs, &a);
	if (rc == 0)
		rc = mdb_stat(txn, x->blobs, &b);
	mdb_txn_abort(txn);
	if (rc != 0)
		return lmdb_error(rc, x, "stat");
	*ret_packs = a.ms_entries;
	*ret_blobs = b.ms_entries;
	return 0;
}
