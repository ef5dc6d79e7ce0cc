#include "store/index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

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

/* LMDB opens data.mdb and lock.mdb by name, following links, and the first
 * process to open writes its lock header into lock.mdb. Another user who may
 * write the index directory (a group sharing the repository; the server's user,
 * in its repository that root's commands also use) could put a link there to any
 * file, which root's next command, `snapshots` too, then overwrote (found by
 * review: a link index/lock.mdb -> a file of root's). So LMDB is never given the
 * index's own names: it opens a directory of this process's alone (PRIV_PREFIX,
 * made in the index, mode 0700, reached through /proc/self/fd, removed once LMDB
 * has its descriptors) holding hard links to the two files as found here, each
 * opened without following a link and checked to be a regular file. A link at
 * index/ itself is refused, and so is any other kind of file in its place. */
#define PRIV_PREFIX ".bunker-open."

typedef struct {
	int dir;  /* the index directory, opened without following a link */
	int priv; /* the private directory, -1 when none could be made (read-only) */
	char priv_name[64];
	bool data, lock; /* linked into priv */
	int data_fd; /* data.mdb, checked, kept open for a read-only open (-1: none) */
} Pinned;

static int refuse_link(const BkIndex *x, const char *name)
{
	return bk_errorf(-ELOOP, "index %s%s%s is a symbolic link or not a regular file: not "
			 "followed (another user may have put it there; remove it)",
			 x->dir, name[0] ? "/" : "", name);
}

/* Opens the index directory x->dir without following a link at its last name. */
static int pin_dir(const BkIndex *x, int *ret_fd)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", x->dir);
	char *slash = strrchr(parent, '/');
	const char *base = x->dir;
	if (slash) {
		base = x->dir + (slash - parent) + 1;
		*slash = '\0';
		if (slash == parent)
			snprintf(parent, sizeof(parent), "/");
	} else {
		snprintf(parent, sizeof(parent), ".");
	}
	int p = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (p < 0)
		return bk_errorf_code(-errno, "index %s: open %s", x->dir, parent);
	int fd = openat(p, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int err = errno;
	close(p);
	if (fd < 0)
		return err == ELOOP || err == ENOTDIR ? refuse_link(x, "")
						      : bk_errorf_code(-err, "index %s: open", x->dir);
	*ret_fd = fd;
	return 0;
}

/* Removes the private directories that processes killed while opening left. */
static void sweep_priv(int dir)
{
	int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	time_t old = time(NULL) - 60;
	for (struct dirent *de; (de = readdir(d));) {
		struct stat st;
		if (strncmp(de->d_name, PRIV_PREFIX, strlen(PRIV_PREFIX)) != 0 ||
		    fstatat(dir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
		    st.st_mtime >= old)
			continue;
		int sub = openat(dir, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* (one a live process holds: it may wait in its open that long) */
		if (sub >= 0 && flock(sub, LOCK_EX | LOCK_NB) == 0 &&
		    bk_remove_contents(sub, de->d_name, NULL) == 0)
			(void)unlinkat(dir, de->d_name, AT_REMOVEDIR);
		if (sub >= 0)
			close(sub);
		bk_error_clear();
	}
	closedir(d);
}

/* Opens name in the index without following a link (creating it when it may),
 * checks it is a regular file and links that very file into p->priv. With
 * ret_fd, the descriptor is kept there (-1 when the file is not there). */
static int pin_file(const BkIndex *x, Pinned *p, const char *name, bool *ret_linked, int *ret_fd)
{
	*ret_linked = false;
	int fd = openat(p->dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0660);
	if (fd < 0 && cannot_write(errno))
		fd = openat(p->dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : errno == ELOOP ? refuse_link(x, name)
			: bk_errorf_code(-errno, "index %s: open %s", x->dir, name);
	struct stat st;
	int e = fstat(fd, &st) < 0 ? bk_errorf_code(-errno, "index %s: stat %s", x->dir, name) : 0;
	if (e == 0 && !S_ISREG(st.st_mode))
		e = refuse_link(x, name);
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	/* A file that cannot be linked (under fs.protected_hardlinks one neither ours
	 * nor writable; any file where there are no hard links) is left unlinked: the
	 * index then opens read-only, as it did before these links (found by review:
	 * a user who could write index/ but only read LMDB's files, a group's member,
	 * had every command fail) */
	if (e == 0 && p->priv >= 0) {
		if (linkat(AT_FDCWD, proc, p->priv, name, AT_SYMLINK_FOLLOW) == 0)
			*ret_linked = true;
		else if (errno != EPERM && errno != EOPNOTSUPP)
			e = bk_errorf_code(-errno, "index %s: link %s", x->dir, name);
	}
	if (e == 0 && ret_fd)
		*ret_fd = fd;
	else
		close(fd);
	return e;
}

static void unpin(Pinned *p)
{
	if (p->priv >= 0) {
		unlinkat(p->priv, "data.mdb", 0);
		unlinkat(p->priv, "lock.mdb", 0);
		close(p->priv);
		unlinkat(p->dir, p->priv_name, AT_REMOVEDIR);
	}
	if (p->data_fd >= 0)
		close(p->data_fd);
	if (p->dir >= 0)
		close(p->dir);
}

/* Fills p: the index directory and, where this process may write it, the private
 * directory with the two files linked in. */
static int pin(const BkIndex *x, Pinned *p)
{
	*p = (Pinned){ .dir = -1, .priv = -1, .data_fd = -1 };
	int e = pin_dir(x, &p->dir);
	if (e < 0)
		return e;
	sweep_priv(p->dir);
	uint8_t rnd[8];
	char hex[2 * sizeof(rnd) + 1];
	randombytes_buf(rnd, sizeof(rnd));
	bk_hex(hex, rnd, sizeof(rnd));
	snprintf(p->priv_name, sizeof(p->priv_name), PRIV_PREFIX "%s", hex);
	if (mkdirat(p->dir, p->priv_name, 0700) == 0) {
		/* ours: not one another user put at that name meanwhile; flocked until
		 * unpin closes it, so that sweep_priv leaves it however long LMDB's open
		 * waits for the lock (found by review: a command waiting behind one
		 * stopped in its open had its directory swept after a minute, and failed) */
		struct stat st;
		p->priv = openat(p->dir, p->priv_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (p->priv >= 0)
			(void)flock(p->priv, LOCK_EX | LOCK_NB);
		if (p->priv < 0 || fstat(p->priv, &st) < 0 || st.st_uid != geteuid() ||
		    (st.st_mode & 0077)) {
			e = bk_errorf(-EPERM, "index %s: %s changed while opening the index", x->dir,
				      p->priv_name);
			if (p->priv >= 0)
				close(p->priv);
			p->priv = -1;
		}
	} else if (!cannot_write(errno)) {
		e = bk_errorf_code(-errno, "index %s: mkdir %s", x->dir, p->priv_name);
	}
	if (e == 0)
		e = pin_file(x, p, "data.mdb", &p->data, &p->data_fd);
	if (e == 0)
		e = pin_file(x, p, "lock.mdb", &p->lock, NULL);
	if (e < 0)
		unpin(p);
	return e;
}

/* Opens the environment: read-write; where that is not allowed (a read-only mount,
 * a repository of another user), read-only, with LMDB's reader locks if lock.mdb
 * can be written, else without (nothing can write through this mount, and every
 * blob read is authenticated and its id checked anyway). */
static int env_open(BkIndex *x)
{
	static const unsigned modes[] = { 0, MDB_RDONLY, MDB_RDONLY | MDB_NOLOCK };
	/* without /proc (a chroot) nothing can be reached by descriptor: LMDB opens
	 * the index's own names, as it would */
	bool proc = bk_proc_fd_available();
	Pinned p;
	int rc = proc ? pin(x, &p) : 0;
	if (rc < 0)
		return rc;
	/* without the private directory, or a file not linked into it (the index
	 * cannot be written here), LMDB opens data.mdb read-only and without locks:
	 * the very file checked, through its descriptor (MDB_NOSUBDIR: the path is the
	 * data file's), never by its name, which another user who may write the index
	 * could have made a link or a FIFO meanwhile */
	bool linked = proc && p.priv >= 0 && p.data && p.lock;
	unsigned sub = 0;
	char path[PATH_MAX];
	if (proc && !linked && p.data_fd >= 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", p.data_fd);
		sub = MDB_NOSUBDIR;
	} else if (proc) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", linked ? p.priv : p.dir);
	} else {
		snprintf(path, sizeof(path), "%s", x->dir);
	}
	size_t first = !proc || linked ? 0 : BK_ARRAY_SIZE(modes) - 1;
	for (size_t i = first; i < BK_ARRAY_SIZE(modes); i++) {
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
			rc = mdb_env_open(x->env, path, MDB_NOTLS | sub | modes[i], 0660);
		x->readonly = modes[i] != 0;
		if (!cannot_write(rc))
			break;
	}
	if (proc)
		unpin(&p);
	/* the map reserves MAP_SIZE of address space (found by a helper's exploration:
	 * under ulimit -v, any limit up to 16 GB tried, every command failed here with
	 * "Cannot allocate memory" alone) */
	if (rc == ENOMEM)
		return bk_errorf(-ENOMEM, "index %s: open: cannot map %llu GiB of address space "
				 "(the index reserves that much, and uses what it needs): raise the "
				 "process's address-space limit (ulimit -v, systemd's LimitAS=)",
				 x->dir, MAP_SIZE >> 30);
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
	bool created = rc == MDB_NOTFOUND && !x->readonly;
	if (created)
		rc = open_dbs(x, true);
	if (rc != 0) {
		r = lmdb_error(rc, x, "open databases");
		goto fail;
	}
	/* a new index: LMDB syncs data.mdb, never the directory that names it, nor
	 * that directory's name in its parent (which bk_mkdir_p may just have made) */
	if (created && (r = bk_fsync_dir(dir)) == 0)
		r = bk_fsync_parent(dir);
	if (r < 0)
		goto fail;
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

/* Puts a pack's row and its blobs' in txn. */
static int put_pack(MDB_txn *txn, BkIndex *x, const uint8_t pack[32], uint64_t size,
		    const BkPackEntry *e, size_t n)
{
	uint8_t row[PACKROW_LEN];
	bk_put_le64(row, size);
	bk_put_le32(row + 8, (uint32_t)n);
	MDB_val pk = { 32, (void *)pack }, pv = { sizeof(row), row };
	int rc = mdb_put(txn, x->packs, &pk, &pv, 0);
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
	return rc == 0 ? 0 : lmdb_error(rc, x, "add pack");
}

int bk_index_add_pack(BkIndex *x, const uint8_t pack[32], uint64_t size, const BkPackEntry *e,
		      size_t n)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
	if (rc != 0)
		return lmdb_error(rc, x, "begin write");
	int r = put_pack(txn, x, pack, size, e, n);
	if (r < 0) {
		mdb_txn_abort(txn);
		return r;
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

struct BkIndexFill {
	BkIndex *x;
	MDB_txn *txn;
};

int bk_index_fill_pack(BkIndexFill *f, const uint8_t pack[32], uint64_t size, const BkPackEntry *e,
		       size_t n)
{
	return put_pack(f->txn, f->x, pack, size, e, n);
}

int bk_index_replace(BkIndex *x, BkIndexFillFn fill, void *ud)
{
	BkIndexFill f = { .x = x };
	int rc = mdb_txn_begin(x->env, NULL, 0, &f.txn);
	if (rc != 0)
		return lmdb_error(rc, x, "begin write");
	rc = mdb_drop(f.txn, x->blobs, 0);
	if (rc == 0)
		rc = mdb_drop(f.txn, x->packs, 0);
	int r = rc == 0 ? 0 : lmdb_error(rc, x, "clear");
	if (r == 0 && fill)
		r = fill(ud, &f);
	if (r < 0) {
		mdb_txn_abort(f.txn);
		return r;
	}
	if ((rc = mdb_txn_commit(f.txn)) != 0)
		return lmdb_error(rc, x, "commit");
	return 0;
}

int bk_index_clear(BkIndex *x)
{
	return bk_index_replace(x, NULL, NULL);
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
