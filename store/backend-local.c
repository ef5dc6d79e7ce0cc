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

static int give(Local *l, const char *path)
{
	if (l->chown_new && lchown(path, l->uid, l->gid) < 0)
		return bk_errorf_code(-errno, "chown %s", path);
	return 0;
}

static int full_path(Local *l, const char *name, char out[PATH_MAX])
{
	if (snprintf(out, PATH_MAX, "%s/%s", l->root, name) >= PATH_MAX)
		return bk_errorf(-ENAMETOOLONG, "object name too long: %s", name);
	return 0;
}

/* Creates the missing directories between the root and path's parent. */
static int ensure_parent(Local *l, const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = (size_t)(slash - path), rootlen = strlen(l->root);
	memcpy(dir, path, n);
	dir[n] = '\0';
	/* A directory that is there may be one whose maker died before it synced its
	 * parent (data/ for a bucket data/xx): its parent is synced once a process
	 * (for a few directories), as the objects put in it must outlive a crash
	 * (found by a mutation audit). Not for one made over a minute ago, which the
	 * file system has long written (ext4 commits every 5 s): a directory's fsync
	 * flushes the disk's cache, a few ms that every wal-push would pay. */
	struct statx sx;
	if (statx(AT_FDCWD, dir, 0, STATX_BTIME, &sx) == 0) {
		if (n <= rootlen) /* the repository's own: made by init, which synced it */
			return 0;
		if ((sx.stx_mask & STATX_BTIME) && sx.stx_btime.tv_sec + 60 < time(NULL))
			return 0;
		char parent[PATH_MAX];
		snprintf(parent, sizeof(parent), "%s", dir);
		*strrchr(parent, '/') = '\0';
		pthread_mutex_lock(&l->lock);
		bool known = false;
		for (size_t i = 0; i < l->nsynced && !known; i++)
			known = !strcmp(l->synced[i], parent);
		int r = known ? 0 : bk_fsync_parent(dir);
		if (r == 0 && !known && l->nsynced < BK_ARRAY_SIZE(l->synced))
			memcpy(l->synced[l->nsynced++], parent, sizeof(parent));
		pthread_mutex_unlock(&l->lock);
		return r;
	}
	for (size_t i = rootlen + 1; i <= n; i++) {
		if (dir[i] != '/' && dir[i] != '\0')
			continue;
		char c = dir[i];
		dir[i] = '\0';
		int r = bk_mkdir(dir, 0770);
		if (r == 0)
			r = give(l, dir);
		if (r == 0 || r == -EEXIST) /* (made by another process, which may die) */
			r = bk_fsync_parent(dir);
		if (r < 0)
			return r;
		dir[i] = c;
	}
	return 0;
}

/* Syncs the object and every directory from its own up to the repository's, as
 * its writer may have died before syncing any of them (ensure_parent made them). */
static int local_sync(BkBackend *b, const char *name)
{
	Local *l = (Local *)b;
	char path[PATH_MAX];
	int r = full_path(l, name, path);
	int fd = r < 0 ? -1 : open(path, O_RDONLY | O_CLOEXEC);
	if (r == 0 && fd < 0)
		r = errno == ENOENT ? -ENOENT : bk_errorf_code(-errno, "open %s", path);
	if (fd >= 0 && fsync(fd) < 0)
		r = bk_errorf_code(-errno, "fsync %s", path);
	if (fd >= 0)
		close(fd);
	size_t root = strlen(l->root);
	for (char *slash; r == 0 && (slash = strrchr(path, '/')) && (size_t)(slash - path) >= root;) {
		r = bk_fsync_parent(path);
		*slash = '\0';
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
	char path[PATH_MAX];
	int r = full_path(l, name, path);
	if (r == 0)
		r = ensure_parent(l, path);
	/* given to the repository's owner before it is synced (found by review: a chown
	 * once in place was undone by a power cut just after success) */
	if (r == 0)
		r = bk_write_atomic_owned(path, l->tmp, data, len, 0660, create_only,
					  l->chown_new ? l->uid : (uid_t)-1,
					  l->chown_new ? l->gid : (gid_t)-1);
	return r == -EEXIST ? found_existing(b, name) : r;
}

static int local_put_file(BkBackend *b, const char *name, const char *tmp, bool create_only)
{
	Local *l = (Local *)b;
	char path[PATH_MAX];
	int r = full_path(l, name, path);
	if (r == 0)
		r = ensure_parent(l, path);
	if (r == 0)
		r = give(l, tmp);
	if (r == 0)
		r = bk_commit_file(tmp, path, create_only);
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
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : bk_errorf_code(-errno, "open %s", path);
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
	struct stat st;
	if (stat(path, &st) < 0)
		return errno == ENOENT ? -ENOENT : bk_errorf_code(-errno, "stat %s", path);
	*ret_size = (uint64_t)st.st_size;
	return 0;
}

/* Recursive listing; skips in-progress temp files (names containing ".tmp"). */
static int list_dir(Local *l, const char *rel, BkListFn cb, void *ud)
{
	char path[PATH_MAX];
	int r = full_path(l, rel, path);
	if (r < 0)
		return r;
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : bk_errorf_code(-errno, "list %s", path);
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
		char cpath[PATH_MAX];
		if ((r = full_path(l, child, cpath)) < 0)
			break;
		struct stat st;
		if (lstat(cpath, &st) < 0) {
			if (errno == ENOENT)
				continue; /* removed meanwhile */
			r = bk_errorf_code(-errno, "stat %s", cpath);
			break;
		}
		if (S_ISDIR(st.st_mode))
			r = list_dir(l, child, cb, ud);
		else if (S_ISREG(st.st_mode))
			r = cb(ud, child, (uint64_t)st.st_size);
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
	return list_dir((Local *)b, prefix, cb, ud);
}

static int local_remove(BkBackend *b, const char *name)
{
	Local *l = (Local *)b;
	char path[PATH_MAX];
	int r = full_path(l, name, path);
	if (r < 0)
		return r;
	if (unlink(path) < 0)
		return errno == ENOENT ? -ENOENT : bk_errorf_code(-errno, "remove %s", path);
	return bk_fsync_parent(path);
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
