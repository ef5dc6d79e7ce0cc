#include "store/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

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

/* Gives the directory just made, open as fd (at path), mode exactly, keeping a
 * setgid bit it inherited (bk_mkdir). */
static int exact_mode(int fd, const char *path, mode_t mode)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return bk_errorf_code(-errno, "stat %s", path);
	mode_t want = mode | (st.st_mode & S_ISGID);
	if ((st.st_mode & 07777) != want && fchmod(fd, want) < 0)
		return bk_errorf_code(-errno, "chmod %s", path);
	return 0;
}

int bk_mkdir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0)
		return errno == EEXIST ? -EEXIST : bk_errorf_code(-errno, "mkdir %s", path);
	/* by descriptor, not following a link: in a group-writable repository another
	 * member could swap the new directory for a symlink to a file of ours */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return bk_errorf_code(-errno, "open %s", path);
	int e = exact_mode(fd, path, mode);
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

bool bk_proc_fd_available(void)
{
	return access("/proc/self/fd", F_OK) == 0;
}

int bk_create_temp(int dirfd, const char *base, char *name, size_t cap)
{
	for (int i = 0; i < 100; i++) {
		uint8_t rnd[6];
		char hex[2 * sizeof(rnd) + 1];
		randombytes_buf(rnd, sizeof(rnd));
		bk_hex(hex, rnd, sizeof(rnd));
		snprintf(name, cap, "%.40s.tmp.%s", base, hex);
		int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			(void)flock(fd, LOCK_EX | LOCK_NB); /* ours while open: bk_tmp_sweep */
			return fd;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

void bk_tmp_sweep(const char *tmp_dir)
{
	/* (not through a link at tmp/: another user who may write the repository could
	 * have sent root's sweep to remove files elsewhere) */
	int dfd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
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

/* Removes entry name of directory dirfd (a directory with its contents). */
static int remove_entry(int dirfd, const char *name, const char *label)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR)
		return bk_errorf_code(-errno, "remove %s/%s", label, name);
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return bk_errorf_code(-errno, "open %s/%s", label, name);
	char sub[PATH_MAX];
	snprintf(sub, sizeof(sub), "%s/%s", label, name);
	int e = bk_remove_contents(fd, sub, NULL);
	close(fd);
	if (e == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		e = bk_errorf_code(-errno, "remove %s", sub);
	return e;
}

int bk_remove_contents(int dirfd, const char *label, const char *last)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		int e = bk_errorf_code(-errno, "open %s", label);
		if (fd >= 0)
			close(fd);
		return e;
	}
	int e = 0;
	bool last_seen = false;
	for (struct dirent *de; e == 0 && (errno = 0, de = readdir(d));) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if (last && !strcmp(n, last))
			last_seen = true;
		else
			e = remove_entry(dirfd, n, label);
	}
	if (e == 0 && errno)
		e = bk_errorf_code(-errno, "read %s", label);
	closedir(d);
	return e == 0 && last_seen ? remove_entry(dirfd, last, label) : e;
}

/* Whether bk_open_dir's step from directory `from` to `to` (a directory, or the
 * link that leads on) is one another user could have set up for it. A link, with
 * safe or in a sticky directory anyone can write (/tmp): one neither ours nor the
 * directory's owner's (the kernel's protected_symlinks, which a walk by hand
 * would pass by). A directory on the way (not the last, which its caller takes
 * as it finds it), with safe: from one not root's into another owner's. */
static bool unsafe_step(const struct stat *from, const struct stat *to, bool safe, bool last)
{
	if (S_ISLNK(to->st_mode))
		return (safe || (from->st_mode & (S_ISVTX | S_IWOTH)) == (S_ISVTX | S_IWOTH)) &&
		       to->st_uid != geteuid() && to->st_uid != from->st_uid;
	return safe && !last && from->st_uid != 0 && from->st_uid != to->st_uid;
}

/* The refusal of an unsafe step to `to` at where (to: NULL for an absolute link
 * there, which leads on from /). */
static int refuse_step(const char *where, const struct stat *from, const struct stat *to)
{
	char what[64] = "an absolute symbolic link (on from /, root's)";
	if (to)
		snprintf(what, sizeof(what), "%s of uid %u's",
			 S_ISLNK(to->st_mode) ? "a symbolic link" : "a directory", (unsigned)to->st_uid);
	return bk_errorf(-EPERM, "%s is %s in a directory of uid %u's: not gone through, as "
			 "another user could have put it there to send this elsewhere (run as the "
			 "user who owns the path, or give a path through directories of root's)",
			 where[0] ? where : "/", what, (unsigned)from->st_uid);
}

int bk_open_dir(int at, const char *path, mode_t mode, mode_t parent_mode, bool safe,
		int *ret_fd, bool *ret_made)
{
	bool made_last = false;
	char todo[PATH_MAX], where[PATH_MAX] = "", link[PATH_MAX];
	if (!*path || snprintf(todo, sizeof(todo), "%s", path) >= (int)sizeof(todo))
		return bk_errorf(-ENAMETOOLONG, "bad directory path '%s'", path);
	bool abs = path[0] == '/'; /* (where: from / once an absolute link was followed) */
	int cur = openat(abs ? AT_FDCWD : at, abs ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat prev, st;
	if (cur < 0 || fstat(cur, &prev) < 0) {
		int e = bk_errorf_code(-errno, "open %s", abs ? "/" : ".");
		if (cur >= 0)
			close(cur);
		return e;
	}
	int e = 0, links = 0;
	for (char *p = todo; e == 0;) {
		p += strspn(p, "/");
		size_t n = strcspn(p, "/"), w = strlen(where);
		if (n == 0)
			break;
		char name[NAME_MAX + 1];
		if (n > NAME_MAX || w + 1 + n >= sizeof(where)) {
			e = bk_errorf(-ENAMETOOLONG, "%s: path too long", path);
			break;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		p += n;
		if (!strcmp(name, "."))
			continue;
		snprintf(where + w, sizeof(where) - w, "%s%s", w || abs ? "/" : "", name);
		bool made = false, last = !p[strspn(p, "/")];
		int fd = openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && mode) {
			made = mkdirat(cur, name, last ? mode : parent_mode) == 0;
			if (!made && errno != EEXIST) {
				e = bk_errorf_code(-errno, "mkdir %s", where);
				break;
			}
			fd = openat(cur, name, (made ? O_RDONLY | O_DIRECTORY : O_PATH) | O_NOFOLLOW |
						       O_CLOEXEC);
		}
		if (fd < 0 || fstat(fd, &st) < 0) {
			e = bk_errorf_code(-errno, "open %s", where);
			if (fd >= 0)
				close(fd);
			break;
		}
		if (!made && unsafe_step(&prev, &st, safe, last)) { /* (what it made is its own) */
			e = refuse_step(where, &prev, &st);
			close(fd);
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			ssize_t k = ++links > 40 ? -1 : readlinkat(fd, "", link, sizeof(link));
			int why = links > 40 ? -ELOOP : k < 0 ? -errno : -ENAMETOOLONG;
			close(fd);
			char rest[PATH_MAX];
			snprintf(rest, sizeof(rest), "%s", p);
			if (k < 0 || (size_t)k >= sizeof(link) ||
			    snprintf(todo, sizeof(todo), "%.*s/%s", (int)k, link, rest) >=
				    (int)sizeof(todo)) {
				e = bk_errorf_code(why, "%s: cannot follow %s", path, where);
				break;
			}
			p = todo;
			if (todo[0] == '/') { /* from the root again */
				int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (root < 0 || fstat(root, &st) < 0 || unsafe_step(&prev, &st, safe, false)) {
					e = root < 0 ? bk_errorf_code(-errno, "open /")
						     : refuse_step(where, &prev, NULL);
					if (root >= 0)
						close(root);
					break;
				}
				close(cur);
				cur = root;
				prev = st;
				w = 0;
				abs = true;
			}
			where[w] = '\0';
			continue;
		}
		if (!S_ISDIR(st.st_mode))
			e = bk_errorf(-ENOTDIR, "%s is not a directory", where);
		else if (made)
			e = exact_mode(fd, where, last ? mode : parent_mode);
		made_last = made && last;
		close(cur);
		cur = fd;
		prev = st;
	}
	if (e == 0 && (*ret_fd = openat(cur, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		e = bk_errorf_code(-errno, "open %s", path);
	if (e == 0 && ret_made)
		*ret_made = made_last;
	close(cur);
	return e;
}

int bk_read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_len)
{
	return bk_read_file_at(AT_FDCWD, path, 0, max, ret, ret_len);
}

int bk_read_file_at(int at, const char *path, int flags, size_t max, uint8_t **ret,
		    size_t *ret_len)
{
	/* (O_NONBLOCK: the open of a FIFO must not wait for a writer, found by review:
	 * a password file that was one hung for ever; a regular file ignores it) */
	int fd = openat(at, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags);
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

const char *bk_path_base(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}
