#include "store/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/error.h"
#include "store/util.h"

int bk_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return bk_errorf_code(-errno, "open directory %s", path);
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return bk_errorf_code(r, "fsync directory %s", path);
	return 0;
}

int bk_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash)
		return bk_fsync_dir(".");
	size_t n = (size_t)(slash - path);
	if (n == 0)
		return bk_fsync_dir("/");
	if (n >= sizeof(dir))
		return bk_errorf(-ENAMETOOLONG, "path too long: %s", path);
	memcpy(dir, path, n);
	dir[n] = '\0';
	return bk_fsync_dir(dir);
}

int bk_mkdir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0)
		return errno == EEXIST ? -EEXIST : bk_errorf_code(-errno, "mkdir %s", path);
	/* by descriptor, not following a link: in a group-writable repository another
	 * member could swap the new directory for a symlink to a file of ours */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	int e = fd < 0 || fstat(fd, &st) < 0 ? bk_errorf_code(-errno, "open %s", path) : 0;
	mode_t want = e == 0 ? mode | (st.st_mode & S_ISGID) : 0;
	if (e == 0 && (st.st_mode & 07777) != want && fchmod(fd, want) < 0)
		e = bk_errorf_code(-errno, "chmod %s", path);
	if (fd >= 0)
		close(fd);
	return e;
}

int bk_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return bk_errorf(-ENAMETOOLONG, "bad directory path %s", path);
	memcpy(buf, path, n + 1);
	int e = 0;
	for (char *p = buf + 1; *p && (e == 0 || e == -EEXIST); p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		e = bk_mkdir(buf, mode);
		*p = '/';
	}
	if (e == 0 || e == -EEXIST)
		e = bk_mkdir(buf, mode);
	return e == -EEXIST ? 0 : e;
}

int bk_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads until len bytes or end of file, retrying EINTR and short reads; with
 * off < 0 from the file position (read), else at off (pread). */
static int read_loop(int fd, void *buf, size_t len, int64_t off, size_t *ret_n)
{
	size_t done = 0;
	while (done < len) {
		uint8_t *p = (uint8_t *)buf + done;
		ssize_t n = off < 0 ? read(fd, p, len - done)
				    : pread(fd, p, len - done, (off_t)((uint64_t)off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*ret_n = done;
	return 0;
}

int bk_pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *ret_n)
{
	return read_loop(fd, buf, len, (int64_t)off, ret_n);
}

int bk_read_full(int fd, void *buf, size_t len, size_t *ret_n)
{
	return read_loop(fd, buf, len, -1, ret_n);
}

int bk_commit_file(const char *tmp, const char *path, bool create_only)
{
	int fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bk_errorf_code(-errno, "open %s", tmp);
	int r = fsync(fd) < 0 ? -errno : 0;
	if (r == 0)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* advice: may do nothing */
	close(fd);
	if (r < 0)
		return bk_errorf_code(r, "fsync %s", tmp);
	if (create_only) {
		/* link() fails with EEXIST instead of replacing: no-replace rename */
		if (link(tmp, path) < 0)
			return errno == EEXIST ? -EEXIST : bk_errorf_code(-errno, "link %s", path);
		unlink(tmp);
	} else if (rename(tmp, path) < 0) {
		return bk_errorf_code(-errno, "rename %s to %s", tmp, path);
	}
	return bk_fsync_parent(path);
}

int bk_write_atomic(const char *path, const char *tmp_dir, const void *data, size_t len,
		    mode_t mode, bool create_only)
{
	char tmp[PATH_MAX];
	const char *base = strrchr(path, '/');
	int fd = -1;
	if (tmp_dir && base &&
	    snprintf(tmp, sizeof(tmp), "%s%s.tmp.XXXXXX", tmp_dir, base) < (int)sizeof(tmp) &&
	    (fd = mkostemp(tmp, O_CLOEXEC)) < 0 && errno != ENOENT)
		return bk_errorf_code(-errno, "create %s", tmp);
	if (fd < 0) {
		if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
			return bk_errorf(-ENAMETOOLONG, "path too long: %s", path);
		if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
			return bk_errorf_code(-errno, "create %s", tmp);
	}
	(void)flock(fd, LOCK_EX | LOCK_NB); /* ours while open: bk_tmp_sweep */
	int r = fchmod(fd, mode) < 0 ? -errno : 0;
	if (r == 0)
		r = bk_write_all(fd, data, len);
	if (r < 0) {
		bk_errorf_code(r, "write %s", tmp);
	}
	if (close(fd) < 0 && r == 0)
		r = bk_errorf_code(-errno, "close %s", tmp);
	if (r == 0)
		r = bk_commit_file(tmp, path, create_only);
	if (r < 0)
		unlink(tmp);
	return r;
}

void bk_tmp_sweep(const char *tmp_dir)
{
	DIR *d = opendir(tmp_dir);
	if (!d)
		return;
	time_t old = time(NULL) - BK_TMP_STALE_S;
	for (struct dirent *de; (de = readdir(d));) {
		if (!strstr(de->d_name, ".tmp."))
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		struct stat st;
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime < old &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0)
			(void)unlinkat(dirfd(d), de->d_name, 0);
		close(fd);
	}
	closedir(d);
}

static _Thread_local int remove_err;

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	if (f->level == 0)
		return 0; /* the directory itself stays */
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0) {
		remove_err = bk_errorf_code(-errno, "remove %s", path);
		return 1; /* stops the walk */
	}
	return 0;
}

int bk_remove_contents(const char *path)
{
	char top[PATH_MAX];
	/* "/." : a link at the top is followed (what wrote there wrote through it) */
	if (snprintf(top, sizeof(top), "%s/.", path) >= (int)sizeof(top))
		return bk_errorf(-ENAMETOOLONG, "path too long: %s", path);
	remove_err = 0;
	int r = nftw(top, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	if (r == 1)
		return remove_err;
	if (r < 0)
		return errno == ENOENT ? 0 : bk_errorf_code(-errno, "remove %s", path);
	return 0;
}

int bk_read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_len)
{
	/* (O_NONBLOCK: the open of a FIFO must not wait for a writer, found by review:
	 * a password file that was one hung for ever; a regular file ignores it) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : bk_errorf_code(-errno, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		close(fd);
		return bk_errorf_code(r, "stat %s", path);
	}
	if (!S_ISREG(st.st_mode)) { /* a pipe's size says nothing of what it holds */
		close(fd);
		return bk_errorf(-EINVAL, "%s is not a regular file", path);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return bk_errorf(-EFBIG, "%s: larger than %zu bytes", path, max);
	}
	size_t want = (size_t)st.st_size;
	uint8_t *buf = malloc(want + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t n;
	int r = bk_read_full(fd, buf, want, &n);
	close(fd);
	if (r < 0) {
		free(buf);
		return bk_errorf_code(r, "read %s", path);
	}
	buf[n] = '\0';
	*ret = buf;
	*ret_len = n;
	return 0;
}

char *bk_path_join(const char *a, const char *b)
{
	char *r;
	if (asprintf(&r, "%s/%s", a, b) < 0)
		return NULL;
	return r;
}
