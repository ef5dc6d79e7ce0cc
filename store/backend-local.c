/* The local-directory backend: see store/backend.h. */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/util.h"

/* Recently read objects stay open (packs are read blob by blob): a small cache
 * of descriptors, each pinned while a read uses it. Objects are immutable, so
 * a cached descriptor never shows stale bytes. */
#define FD_CACHE 16

typedef struct {
	char name[96];
	int fd, pins;
	uint64_t used;
} CachedFd;

typedef struct {
	BkBackend base;
	char *root, *tmp; /* tmp: the repository's tmp/, where puts make their temp files */
	pthread_mutex_t lock;
	CachedFd fds[FD_CACHE];
	uint64_t clock;
	/* Files and directories are given to the owner of the repository's root
	 * when a privileged process writes (root backing up a repository that
	 * postgres's archive_command also writes): one owner for everything. */
	bool chown_new;
	uid_t uid;
	gid_t gid;
	/* the directories whose parent ensure_parent synced (under lock) */
	char synced[4][PATH_MAX];
	size_t nsynced;
} Local;

static int full_path(Local *l, const char *name, char out[PATH_MAX])
{
	if (snprintf(out, PATH_MAX, "%s/%s", l->root, name) >= PATH_MAX)
		return bk_errorf(-ENAMETOOLONG, "object name too long: %s", name);
	return 0;
}

/* The directories of the repository are reached by descriptor, one name at a
 * time, never through a link: another user who may write the repository (the
 * server's user in its repository, where root's commands write too; a group's
 * member) could put a link at snapshots/, data/xx/, wal/CLUSTER/ or tmp/, and
 * root's command then made its files, given to that user, in the directory it
 * led to (found by review: a link snapshots -> a directory of root's got a
 * snapshot record of nobody's there; one in /etc/cron.daily is a file root runs).
 * rel: a directory's path below the root ("" for the root). With create, makes
 * what is missing (mode 0770 exactly, given to the owner, its parent synced).
 * Returns the directory open (O_RDONLY) in *ret_fd. */
static int pin_dir(Local *l, const char *rel, bool create, int *ret_fd)
{
	int cur = open(l->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return errno == ENOENT ? -ENOENT : bk_errorf_code(-errno, "open %s", l->root);
	char shown[PATH_MAX];
	size_t w = (size_t)snprintf(shown, sizeof(shown), "%s", l->root);
	bool made = false;
	for (const char *p = rel; *p;) {
		size_t n = strcspn(p, "/");
		char name[NAME_MAX + 1];
		if (n == 0 || n > NAME_MAX || w + 1 + n >= sizeof(shown)) {
			close(cur);
			return bk_errorf(-ENAMETOOLONG, "bad object directory %s", rel);
		}
		memcpy(name, p, n);
		name[n] = '\0';
		p += n + (p[n] == '/');
		size_t pw = w; /* (shown[..pw]: the directory it is in) */
		w += (size_t)snprintf(shown + w, sizeof(shown) - w, "/%s", name);
		made = create && mkdirat(cur, name, 0770) == 0;
		int made_err = errno;
		int fd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = 0;
		if (fd < 0)
			e = errno == ELOOP || errno == ENOTDIR
				    ? bk_errorf(-ELOOP, "%s is a symbolic link or not a directory: not "
					        "followed (another user may have put it there)", shown)
				: errno == ENOENT && !create ? -ENOENT
				: create && !made && made_err != EEXIST
					? bk_errorf_code(-made_err, "mkdir %s", shown)
					: bk_errorf_code(-errno, "open %s", shown);
		struct stat st;
		if (e == 0 && made && fstat(fd, &st) == 0 &&
		    (st.st_mode & 07777) != (0770 | (st.st_mode & S_ISGID)) &&
		    fchmod(fd, 0770 | (st.st_mode & S_ISGID)) < 0)
			e = bk_errorf_code(-errno, "chmod %s", shown);
		if (e == 0 && made && l->chown_new && fchown(fd, l->uid, l->gid) < 0)
			e = bk_errorf_code(-errno, "chown %s", shown);
		/* (one made by another process, which may die before it syncs) */
		if (e == 0 && create && (made || made_err == EEXIST) && fsync(cur) < 0)
			e = bk_errorf_code(-errno, "fsync directory %.*s", (int)pw, shown);
		close(cur);
		if (e < 0) {
			if (fd >= 0)
				close(fd);
			return e;
		}
		cur = fd;
	}
	*ret_fd = cur;
	return 0;
}

/* Splits name into its directory (rel, "" for the root's own) and its last name. */
static const char *split_name(const char *name, char rel[PATH_MAX])
{
	const char *slash = strrchr(name, '/');
	size_t n = slash ? (size_t)(slash - name) : 0;
	snprintf(rel, PATH_MAX, "%.*s", (int)n, name);
	return slash ? slash + 1 : name;
}

/* Opens object name for reading, reached as pin_dir reaches its directory and
 * never through a link: a link or a FIFO another user put in the repository
 * would have root's command open what it leads to (a device whose open does
 * something, a file of root's) or wait for ever (found by review). O_NONBLOCK:
 * a FIFO's open returns at once, and is refused as not a regular file. */
static int open_object(Local *l, const char *name, const char *path, int *ret_fd)
{
	char rel[PATH_MAX];
	const char *base = split_name(name, rel);
	int dir;
	int r = pin_dir(l, rel, false, &dir);
	if (r < 0)
		return r;
	int fd = openat(dir, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int err = errno;
	close(dir);
	if (fd < 0)
		return err == ENOENT ? -ENOENT
		       : err == ELOOP ? bk_errorf(-ELOOP, "%s is a symbolic link: not followed "
						   "(another user may have put it there)", path)
				      : bk_errorf_code(-err, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		r = bk_errorf_code(-errno, "stat %s", path);
	else if (!S_ISREG(st.st_mode))
		r = bk_errorf(-EINVAL, "%s is not a regular file: not read (another user may "
				       "have put it there)", path);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* The object's directory, made when missing. A directory that is there may be
 * one whose maker died before it synced its parent (data/ for a bucket data/xx):
 * its parent is synced once a process (for a few directories), as the objects put
 * in it must outlive a crash (found by a mutation audit). Not for one made over a
 * minute ago, which the file system has long written (ext4 commits every 5 s): a
 * directory's fsync flushes the disk's cache, a few ms that every wal-push would
 * pay. */
static int ensure_parent(Local *l, const char *rel, int *ret_fd)
{
	int fd;
	int r = pin_dir(l, rel, false, &fd);
	if (r == -ENOENT)
		return pin_dir(l, rel, true, ret_fd);
	if (r < 0)
		return r;
	struct statx sx;
	const char *slash = strrchr(rel, '/');
	if (!rel[0] || !slash || statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &sx) < 0 ||
	    ((sx.stx_mask & STATX_BTIME) && sx.stx_btime.tv_sec + 60 < time(NULL))) {
		*ret_fd = fd; /* (the repository's own: made by init, which synced it) */
		return 0;
	}
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - rel), rel);
	pthread_mutex_lock(&l->lock);
	bool known = false;
	for (size_t i = 0; i < l->nsynced && !known; i++)
		known = !strcmp(l->synced[i], parent);
	int pfd = -1;
	if (!known && (r = pin_dir(l, parent, false, &pfd)) == 0 && fsync(pfd) < 0)
		r = bk_errorf_code(-errno, "fsync directory %s/%s", l->root, parent);
	if (pfd >= 0)
		close(pfd);
	if (r == 0 && !known && l->nsynced < BK_ARRAY_SIZE(l->synced))
		memcpy(l->synced[l->nsynced++], parent, sizeof(parent));
	pthread_mutex_unlock(&l->lock);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* Links temp file tname of directory tdir in as base of directory dir (never
 * replacing: -EEXIST), removes the temp name and syncs dir. */
static int place(Local *l, int tdir, const char *tname, int dir, const char *base,
		 const char *shown)
{
	(void)l;
	if (linkat(tdir, tname, dir, base, 0) < 0)
		return errno == EEXIST ? -EEXIST : bk_errorf_code(-errno, "link %s", shown);
	unlinkat(tdir, tname, 0);
	if (fsync(dir) < 0)
		return bk_errorf_code(-errno, "fsync directory of %s", shown);
	return 0;
}
/* Syncs the object and every directory from its own up to the repository's, as
 * its writer may have died before syncing any of them (ensure_parent made them). */
static int local_sync(BkBackend *b, const char *name)
{
	Local *l = (Local *)b;
	char path[PATH_MAX], rel[PATH_MAX];
	int fd;
	int r = full_path(l, name, path);
	if (r == 0)
		r = open_object(l, name, path, &fd);
	if (r < 0)
		return r;
	if (fsync(fd) < 0)
		r = bk_errorf_code(-errno, "fsync %s", path);
	close(fd);
	/* each directory from the object's up to the root: rel, cut at its last '/' */
	snprintf(rel, sizeof(rel), "%s", name);
	for (bool more = true; r == 0 && more;) {
		char *slash = strrchr(rel, '/');
		more = slash != NULL;
		if (slash)
			*slash = '\0';
		else
			rel[0] = '\0';
		int dir;
		if ((r = pin_dir(l, rel, false, &dir)) < 0)
			break;
		if (fsync(dir) < 0)
			r = bk_errorf_code(-errno, "fsync directory %s/%s", l->root, rel);
		close(dir);
	}
	return r;
}

/* A create-only put that found its object: -EEXIST, once the object is durable
 * (the backend's contract: its writer may have died before syncing it). */
static int found_existing(BkBackend *b, const char *name)
{
	int r = local_sync(b, name);
	return r < 0 ? r : -EEXIST;
}

static int local_put(BkBackend *b, const char *name, const void *data, size_t len, bool create_only)
{
	Local *l = (Local *)b;
	(void)create_only; /* (every put is create-only: objects are immutable) */
	char path[PATH_MAX], rel[PATH_MAX], tname[NAME_MAX + 1], tshown[PATH_MAX];
	int r = full_path(l, name, path);
	const char *base = split_name(name, rel);
	int dir = -1, tdir = -1, fd = -1;
	if (r == 0)
		r = ensure_parent(l, rel, &dir);
	/* the temp file in tmp/, or in the object's directory before tmp/ exists */
	if (r == 0 && (r = pin_dir(l, "tmp", false, &tdir)) == -ENOENT)
		r = (tdir = dup(dir)) < 0 ? -errno : 0;
	if (r == 0 && (fd = bk_create_temp(tdir, base, tname, sizeof(tname))) < 0)
		r = bk_errorf_code(fd, "create a temp file for %s in %s", path, l->tmp);
	if (fd >= 0) {
		snprintf(tshown, sizeof(tshown), "%.3800s/%s", l->tmp, tname);
		/* given to the repository's owner before it is synced (found by review: a
		 * chown once in place was undone by a power cut just after success) */
		if (l->chown_new && fchown(fd, l->uid, l->gid) < 0)
			r = bk_errorf_code(-errno, "chown %s", tshown);
		if (r == 0 && fchmod(fd, 0660) < 0)
			r = bk_errorf_code(-errno, "chmod %s", tshown);
		if (r == 0 && (r = bk_write_all(fd, data, len)) < 0)
			bk_errorf_code(r, "write %s", tshown);
		if (r == 0 && fsync(fd) < 0)
			r = bk_errorf_code(-errno, "fsync %s", tshown);
		if (close(fd) < 0 && r == 0)
			r = bk_errorf_code(-errno, "close %s", tshown);
		if (r == 0)
			r = place(l, tdir, tname, dir, base, path);
		if (r < 0)
			unlinkat(tdir, tname, 0);
	}
	if (dir >= 0)
		close(dir);
	if (tdir >= 0)
		close(tdir);
	return r == -EEXIST ? found_existing(b, name) : r;
}

static int local_put_file(BkBackend *b, const char *name, const char *tmp, bool create_only)
{
	Local *l = (Local *)b;
	(void)create_only;
	char path[PATH_MAX], rel[PATH_MAX], trel[PATH_MAX];
	size_t rootlen = strlen(l->root);
	/* a temp file in the repository (tmp/) is reached as its objects are; one
	 * elsewhere (a test's) by its path */
	bool inside = strncmp(tmp, l->root, rootlen) == 0 && tmp[rootlen] == '/';
	int r = full_path(l, name, path);
	const char *base = split_name(name, rel);
	const char *tname = split_name(inside ? tmp + rootlen + 1 : tmp, trel);
	int dir = -1, tdir = -1, fd = -1;
	if (r == 0 && inside)
		r = pin_dir(l, trel, false, &tdir);
	else if (r == 0 && (tdir = open(trel[0] ? trel : "/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = bk_errorf_code(-errno, "open %s", tmp);
	if (r == 0 && (fd = openat(tdir, tname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		r = bk_errorf_code(-errno, "open %s", tmp);
	if (r == 0 && l->chown_new && fchown(fd, l->uid, l->gid) < 0)
		r = bk_errorf_code(-errno, "chown %s", tmp);
	if (r == 0 && fsync(fd) < 0)
		r = bk_errorf_code(-errno, "fsync %s", tmp);
	/* durable, its pages leave the page cache (advice: may do nothing): what a
	 * repository stores is rarely read back soon, and the pages freed are the ones
	 * the next packs are written into (docs/design.md) */
	if (r == 0)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (fd >= 0)
		close(fd);
	if (r == 0)
		r = ensure_parent(l, rel, &dir);
	if (r == 0)
		r = place(l, tdir, tname, dir, base, path);
	if (dir >= 0)
		close(dir);
	if (tdir >= 0)
		close(tdir);
	return r == -EEXIST ? found_existing(b, name) : r;
}

/* A pinned descriptor for name from the cache, or -1 (and a slot to fill). */
static CachedFd *cache_find(Local *l, const char *name)
{
	CachedFd *victim = NULL;
	for (size_t i = 0; i < FD_CACHE; i++) {
		CachedFd *c = &l->fds[i];
		if (c->fd >= 0 && strcmp(c->name, name) == 0) {
			c->pins++;
			c->used = ++l->clock;
			return c;
		}
		if (c->pins == 0 && (!victim || c->used < victim->used))
			victim = c;
	}
	return victim; /* caller checks victim->name */
}

static int local_get(BkBackend *b, const char *name, uint64_t off, size_t len, void *buf,
		     size_t *ret_n)
{
	Local *l = (Local *)b;
	char path[PATH_MAX];
	int r = full_path(l, name, path);
	if (r < 0)
		return r;
	bool cacheable = strlen(name) < sizeof(l->fds[0].name);
	pthread_mutex_lock(&l->lock);
	CachedFd *c = cacheable ? cache_find(l, name) : NULL;
	if (c && c->fd >= 0 && strcmp(c->name, name) == 0) {
		int fd = c->fd;
		pthread_mutex_unlock(&l->lock);
		r = bk_pread_all(fd, buf, len, off, ret_n);
		pthread_mutex_lock(&l->lock);
		c->pins--;
		pthread_mutex_unlock(&l->lock);
		return r < 0 ? bk_errorf_code(r, "read %s", path) : 0;
	}
	pthread_mutex_unlock(&l->lock);
	int fd;
	if ((r = open_object(l, name, path, &fd)) < 0)
		return r;
	r = bk_pread_all(fd, buf, len, off, ret_n);
	if (r < 0) {
		close(fd);
		return bk_errorf_code(r, "read %s", path);
	}
	/* keep it open for the next read, in an unpinned slot */
	pthread_mutex_lock(&l->lock);
	c = cacheable ? cache_find(l, name) : NULL;
	if (c && c->fd >= 0 && strcmp(c->name, name) == 0) {
		c->pins--; /* another thread cached it meanwhile */
	} else if (c && c->pins == 0) {
		if (c->fd >= 0)
			close(c->fd);
		snprintf(c->name, sizeof(c->name), "%s", name);
		c->fd = fd;
		c->used = ++l->clock;
		fd = -1;
	}
	pthread_mutex_unlock(&l->lock);
	if (fd >= 0)
		close(fd);
	return 0;
}

static int local_size(BkBackend *b, const char *name, uint64_t *ret_size)
{
	Local *l = (Local *)b;
	char path[PATH_MAX];
	int r = full_path(l, name, path);
	if (r < 0)
		return r;
	int fd;
	if ((r = open_object(l, name, path, &fd)) < 0)
		return r;
	struct stat st;
	if (fstat(fd, &st) < 0)
		r = bk_errorf_code(-errno, "stat %s", path);
	else
		*ret_size = (uint64_t)st.st_size;
	close(fd);
	return r;
}

/* Recursive listing of directory dfd (rel below the root; closed here); skips
 * in-progress temp files (names containing ".tmp"). Entries are looked at
 * without following links: a link is neither listed nor entered. */
static int list_dir(Local *l, int dfd, const char *rel, BkListFn cb, void *ud)
{
	char path[PATH_MAX];
	int r = full_path(l, rel, path);
	DIR *d = r < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (r == 0) /* (errno read before close) */
			r = bk_errorf_code(-errno, "list %s", path);
		close(dfd);
		return r;
	}
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp"))
			continue;
		char child[PATH_MAX];
		if (snprintf(child, sizeof(child), "%s/%s", rel, de->d_name) >= (int)sizeof(child)) {
			r = bk_errorf(-ENAMETOOLONG, "name too long under %s", rel);
			break;
		}
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* removed meanwhile */
			r = bk_errorf_code(-errno, "stat %s/%s", path, de->d_name);
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			int cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0 && errno != ENOENT) /* (ENOENT: removed meanwhile) */
				r = bk_errorf_code(-errno, "open %s/%s", path, de->d_name);
			else if (cfd >= 0)
				r = list_dir(l, cfd, child, cb, ud);
		} else if (S_ISREG(st.st_mode)) {
			r = cb(ud, child, (uint64_t)st.st_size);
		}
		if (r < 0)
			break;
		errno = 0;
	}
	if (r == 0 && errno != 0)
		r = bk_errorf_code(-errno, "list %s", path);
	closedir(d);
	return r;
}

static int local_list(BkBackend *b, const char *prefix, BkListFn cb, void *ud)
{
	Local *l = (Local *)b;
	int fd;
	int r = pin_dir(l, prefix, false, &fd);
	return r == -ENOENT ? 0 : r < 0 ? r : list_dir(l, fd, prefix, cb, ud);
}

static int local_remove(BkBackend *b, const char *name)
{
	Local *l = (Local *)b;
	char path[PATH_MAX], rel[PATH_MAX];
	int r = full_path(l, name, path);
	const char *base = split_name(name, rel);
	int dir = -1;
	if (r == 0)
		r = pin_dir(l, rel, false, &dir);
	if (r == 0 && unlinkat(dir, base, 0) < 0)
		r = errno == ENOENT ? -ENOENT : bk_errorf_code(-errno, "remove %s", path);
	if (r == 0 && fsync(dir) < 0)
		r = bk_errorf_code(-errno, "fsync directory of %s", path);
	if (dir >= 0)
		close(dir);
	return r;
}

static void local_free(BkBackend *b)
{
	Local *l = (Local *)b;
	for (size_t i = 0; i < FD_CACHE; i++)
		if (l->fds[i].fd >= 0)
			close(l->fds[i].fd);
	pthread_mutex_destroy(&l->lock);
	free(l->root);
	free(l->tmp);
	free(l);
}

static const BkBackendOps local_ops = {
	.kind = "local",
	.put = local_put,
	.put_file = local_put_file,
	.get = local_get,
	.size = local_size,
	.sync = local_sync,
	.list = local_list,
	.remove = local_remove,
	.free = local_free,
};

int bk_backend_local_new(const char *root, BkBackend **ret)
{
	Local *l = calloc(1, sizeof(*l));
	if (!l || !(l->root = strdup(root)) || !(l->tmp = bk_path_join(root, "tmp"))) {
		if (l)
			free(l->root);
		free(l);
		return -ENOMEM;
	}
	l->base.ops = &local_ops;
	pthread_mutex_init(&l->lock, NULL);
	for (size_t i = 0; i < FD_CACHE; i++)
		l->fds[i].fd = -1;
	struct stat st;
	if (stat(root, &st) == 0 && geteuid() == 0 && (st.st_uid != 0 || st.st_gid != 0)) {
		l->chown_new = true;
		l->uid = st.st_uid;
		l->gid = st.st_gid;
	}
	*ret = &l->base;
	return 0;
}
