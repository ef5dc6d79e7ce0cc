/* tests/test-fs.c: store/fs.c's walk to a directory to write through
 * (bk_open_dir) and its removal of a directory's contents by descriptor
 * (bk_remove_contents). The refusals of safe walks need root (to give files to
 * another uid); they are skipped otherwise. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/error.h"
#include "store/fs.h"
#include "tests/tap.h"

#define OTHER 54321 /* a uid that is no one's */

static char dir[64];

static char *at(const char *rel)
{
	static char buf[4][256];
	static int i;
	char *b = buf[i++ % 4];
	snprintf(b, 256, "%s/%s", dir, rel);
	return b;
}

/* Whether fd is the directory at path (the same inode). */
static bool same(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
	       a.st_dev == b.st_dev;
}

/* bk_open_dir on path (rel to dir when not absolute): its code, and with ret the
 * descriptor (else closed). */
static int walk(int base, const char *path, mode_t mode, bool safe, int *ret)
{
	int fd = -1;
	int e = bk_open_dir(base, path, mode, 0755, safe, &fd, NULL);
	if (e == 0 && ret)
		*ret = fd;
	else if (e == 0)
		close(fd);
	return e;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_mode & 07777 : 0;
}

static void test_walk(void)
{
	int fd = -1, base = open(dir, O_RDONLY | O_DIRECTORY);
	umask(077);
	is_int(walk(AT_FDCWD, at("a/b/c"), 0700, false, &fd), 0, "missing directories are made");
	ok(same(fd, at("a/b/c")), "... and the last one is what it opened");
	ok(mode_of(at("a")) == 0755 && mode_of(at("a/b")) == 0755 && mode_of(at("a/b/c")) == 0700,
	   "... the ones above it with parent_mode, the last with mode, the umask aside");
	close(fd);
	is_int(walk(base, "x/../y//./", 0700, false, &fd), 0, "relative to a directory, with .. and .");
	ok(same(fd, at("y")) && mode_of(at("x")) == 0755, "... opened y, made x on the way");
	close(fd);
	is_int(walk(base, "nope", 0, false, NULL), -ENOENT, "without mode, a missing one is -ENOENT");
	ok(symlink("a", at("L")) == 0 && symlink(at("a/b"), at("abs")) == 0, "links L -> a, abs -> a/b");
	is_int(walk(AT_FDCWD, at("L/b/c"), 0700, false, &fd), 0, "through a relative link");
	ok(same(fd, at("a/b/c")), "... where it leads");
	close(fd);
	is_int(walk(base, "abs/c", 0700, false, &fd), 0, "through an absolute link");
	ok(same(fd, at("a/b/c")), "... where it leads");
	close(fd);
	is_int(walk(base, "L", 0700, false, &fd), 0, "a link as the last component");
	ok(same(fd, at("a")), "... where it leads");
	close(fd);
	int f = open(at("file"), O_WRONLY | O_CREAT, 0600);
	close(f);
	is_int(walk(base, "file/sub", 0700, false, NULL), -ENOTDIR, "a file on the way: -ENOTDIR");
	ok(symlink("loop2", at("loop1")) == 0 && symlink("loop1", at("loop2")) == 0, "links in a loop");
	is_int(walk(base, "loop1/x", 0700, false, NULL), -ELOOP, "... -ELOOP");
	close(base);
}

/* As root: what another user could have set up is not gone through with safe;
 * and a link of another user's in a sticky directory anyone can write is not
 * followed even without. */
static void test_safe(void)
{
	if (geteuid() != 0) {
		ok(true, "# SKIP safe walks: not root");
		return;
	}
	int base = open(dir, O_RDONLY | O_DIRECTORY);
	ok(mkdir(at("u"), 0755) == 0 && chown(at("u"), OTHER, OTHER) == 0 &&
		   symlink("../a", at("u/up")) == 0 && lchown(at("u/up"), OTHER, OTHER) == 0 &&
		   symlink(at("a"), at("u/abs")) == 0 && lchown(at("u/abs"), OTHER, OTHER) == 0 &&
		   mkdir(at("u/own"), 0755) == 0 && chown(at("u/own"), OTHER, OTHER) == 0 &&
		   symlink("own", at("u/toown")) == 0 && lchown(at("u/toown"), OTHER, OTHER) == 0 &&
		   mkdir(at("u/rootdir"), 0755) == 0,
	   "a directory u of another user's with its links up (../a), abs, toown (own) and a "
	   "directory of root's");
	is_int(walk(base, "u/up/b", 0700, true, NULL), -EPERM,
	       "safe: a link of that user's back into root's directories is refused (%s)",
	       bk_error_detail());
	ok(strstr(bk_error_detail(), "u/.. is a directory of uid 0's in a directory of uid 54321's"),
	   "... naming the step");
	is_int(walk(base, "u/up/b", 0700, false, NULL), 0, "... but gone through without safe");
	is_int(walk(base, "u/abs/b", 0700, true, NULL), -EPERM, "safe: an absolute link of its is refused");
	int fd = -1;
	is_int(walk(base, "u/toown/new", 0700, true, &fd), 0,
	       "safe: a link of its to a directory of its own is followed, a directory made there");
	ok(same(fd, at("u/own/new")), "... where it leads");
	close(fd);
	is_int(walk(base, "u/rootdir/x", 0700, true, NULL), -EPERM,
	       "safe: a directory of root's in that user's, on the way: refused");
	is_int(walk(base, "u/rootdir", 0700, true, NULL), 0, "... as the last one: taken as it is");
	ok(mkdir(at("tmp"), 01777) == 0 && chmod(at("tmp"), 01777) == 0 &&
		   symlink(at("a"), at("tmp/theirs")) == 0 && lchown(at("tmp/theirs"), OTHER, OTHER) == 0 &&
		   symlink(at("a"), at("tmp/ours")) == 0,
	   "a sticky directory anyone can write, with a link of another user's and one of ours");
	is_int(walk(base, "tmp/theirs", 0700, false, NULL), -EPERM,
	       "the other user's link there is not followed, even without safe");
	is_int(walk(base, "tmp/ours", 0700, false, NULL), 0, "ours is");
	close(base);
}

static void test_remove(void)
{
	ok(mkdir(at("r"), 0700) == 0 && mkdir(at("r/d"), 0700) == 0 && mkdir(at("r/d/e"), 0700) == 0 &&
		   mkdir(at("outside"), 0700) == 0 && close(open(at("outside/keep"), O_WRONLY | O_CREAT, 0600)) == 0 &&
		   close(open(at("r/d/e/f"), O_WRONLY | O_CREAT, 0600)) == 0 &&
		   close(open(at("r/marker"), O_WRONLY | O_CREAT, 0600)) == 0 &&
		   symlink(at("outside"), at("r/d/link")) == 0,
	   "a tree with a link to a directory outside it and a marker");
	int fd = open(at("r"), O_RDONLY | O_DIRECTORY);
	is_int(bk_remove_contents(fd, at("r"), "marker"), 0, "bk_remove_contents");
	close(fd);
	ok(access(at("r"), F_OK) == 0 && rmdir(at("r")) == 0, "... leaves the directory, empty");
	ok(access(at("outside/keep"), F_OK) == 0, "... and what the link led to");
}

/* An entry that cannot be removed (immutable, as root on a file system that has
 * the flag): the removal fails naming it, and the marker, removed last, stays. On
 * tmpfs (/dev/shm), which lists a directory newest first, the marker is made last,
 * so it comes first: removed in the order listed, it would go. */
static void test_remove_fails(void)
{
	int flag = FS_IMMUTABLE_FL, none = 0;
	int f = -1;
	char m[64], path[96];
	snprintf(m, sizeof(m), "/dev/shm/bunker-test-fs.XXXXXX");
	bool set = geteuid() == 0 && mkdtemp(m);
	snprintf(path, sizeof(path), "%s/stuck", m);
	set = set && (f = open(path, O_RDONLY | O_CREAT, 0600)) >= 0 &&
	      ioctl(f, FS_IOC_SETFLAGS, &flag) == 0;
	snprintf(path, sizeof(path), "%s/a", m);
	set = set && close(open(path, O_WRONLY | O_CREAT, 0600)) == 0;
	snprintf(path, sizeof(path), "%s/marker", m);
	set = set && close(open(path, O_WRONLY | O_CREAT, 0600)) == 0;
	if (!set) {
		ok(true, "# SKIP an entry that cannot be removed: not root, or no immutable flag here");
	} else {
		int fd = open(m, O_RDONLY | O_DIRECTORY);
		int e = bk_remove_contents(fd, m, "marker");
		close(fd);
		ok(e == -EPERM && strstr(bk_error_detail(), "/stuck"),
		   "a removal that fails is its error, naming the entry (%d: %s)", e, bk_error_detail());
		ok(access(path, F_OK) == 0, "... and the marker stays");
	}
	if (f >= 0) {
		ioctl(f, FS_IOC_SETFLAGS, &none);
		close(f);
	}
	if (m[strlen(m) - 1] != 'X')
		tap_remove_tree(m);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/bunker-test-fs.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	test_walk();
	test_safe();
	test_remove();
	test_remove_fails();
	tap_remove_tree(dir);
	return tap_done();
}
