#include "pg/walspool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pg/wal.h"
#include "pg/walarchive.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/util.h"

#define WANT_FILE "want"
#define LOCK_FILE ".lock"
#define WINDOW_MIN 2
#define WINDOW_MAX 64
#define POLL_MS 20

int bk_wal_spool_path(const BkRepo *r, const char *cluster, const char *dest, char out[PATH_MAX])
{
	const char *slash = strrchr(dest, '/');
	char id[2 * 8 + 1];
	bk_hex(id, r->keys->repo_id, 8);
	int n = snprintf(out, PATH_MAX, "%.*sbunker-read-ahead.%s.%s", slash ? (int)(slash - dest) + 1 : 0,
			 dest, id, cluster);
	return n < 0 || n >= PATH_MAX ? bk_errorf(BK_E_USAGE, "%s: path too long", dest) : 0;
}

int bk_wal_spool_take(const char *spool, const char *name, const char *dest)
{
	char path[PATH_MAX];
	struct stat st;
	if (snprintf(path, sizeof(path), "%s/%s", spool, name) >= (int)sizeof(path))
		return -ENOENT;
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return -ENOENT;
	return rename(path, dest) < 0 ? bk_errorf_code(-errno, "rename %s", path) : 0;
}

/* Whether another process holds the spool's lock (fd: the lock file, held on
 * success when hold). */
static int lock_spool(const char *spool, bool hold, int *ret_fd)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", spool, LOCK_FILE);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return bk_errorf_code(-errno, "open %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno == EWOULDBLOCK ? -EBUSY : bk_errorf_code(-errno, "lock %s", path);
		close(fd);
		return e;
	}
	if (!hold) {
		close(fd);
		fd = -1;
	}
	*ret_fd = fd;
	return 0;
}

int bk_wal_spool_want(const char *spool, const char *name, bool *ret_start)
{
	*ret_start = false;
	if (mkdir(spool, 0700) < 0 && errno != EEXIST)
		return bk_errorf_code(-errno, "mkdir %s", spool);
	char tmp[PATH_MAX], path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", spool, WANT_FILE);
	snprintf(tmp, sizeof(tmp), "%s/.%s.%ld", spool, WANT_FILE, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return bk_errorf_code(-errno, "create %s", tmp);
	int e = bk_write_all(fd, name, strlen(name));
	close(fd);
	if (e == 0 && rename(tmp, path) < 0)
		e = bk_errorf_code(-errno, "rename %s", tmp);
	if (e < 0) {
		unlink(tmp);
		return e;
	}
	int lock;
	e = lock_spool(spool, false, &lock);
	*ret_start = e == 0;
	return e == -EBUSY ? 0 : e;
}

/* The segment asked for last: its name (BK_WAL_NAME_MAX), timeline and number;
 * -ENOENT when there is none that reads. */
static int read_want(int dirfd, uint32_t seg_size, char name[BK_WAL_NAME_MAX], BkWalName *wn,
		     uint64_t *segno)
{
	int fd = openat(dirfd, WANT_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -ENOENT;
	size_t n = 0;
	int e = bk_read_full(fd, name, BK_WAL_NAME_MAX - 1, &n);
	close(fd);
	name[e == 0 ? n : 0] = '\0';
	if (e < 0 || bk_wal_name_parse(name, wn) < 0 || wn->kind != BK_WAL_SEGMENT ||
	    bk_wal_name_segno(wn, seg_size, segno) < 0)
		return -ENOENT;
	return 0;
}

/* Whether recovery has ended: the working directory is PostgreSQL's data
 * directory (the server runs restore_command there) and holds neither signal
 * file. Run from elsewhere, only the idle timeout ends the filler. */
static bool recovery_ended(void)
{
	return access("PG_VERSION", F_OK) == 0 && access("recovery.signal", F_OK) < 0 &&
	       access("standby.signal", F_OK) < 0;
}

/* Removes the spool's segments outside (first, first + n) on timeline tli; all of
 * them and its other files with all set. */
static void prune(int dirfd, uint32_t tli, uint64_t first, uint64_t n, uint32_t seg_size, bool all)
{
	/* (a descriptor of its own: a dup would share the offset the last listing
	 * left at the end) */
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		BkWalName wn;
		uint64_t segno;
		bool seg = bk_wal_name_parse(de->d_name, &wn) == 0 && wn.kind == BK_WAL_SEGMENT &&
			   bk_wal_name_segno(&wn, seg_size, &segno) == 0;
		bool keep = seg && !all && wn.tli == tli && segno > first && segno <= first + n;
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && !keep && (seg || all))
			unlinkat(dirfd, de->d_name, 0);
	}
	closedir(d);
}

static void nap(void)
{
	struct timespec ts = { 0, POLL_MS * 1000000L };
	nanosleep(&ts, NULL);
}

int bk_wal_spool_fill(BkRepo *r, const char *cluster, const char *spool,
		      const volatile sig_atomic_t *stop)
{
	uint64_t sysid;
	uint32_t seg_size;
	int e = bk_cluster_get(r, cluster, &sysid, &seg_size);
	if (e < 0)
		return e;
	if (!bk_wal_seg_size_valid(seg_size))
		return bk_errorf(BK_E_CORRUPT, "cluster '%s': segment size %u", cluster, seg_size);
	int dirfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dirfd < 0)
		return bk_errorf_code(-errno, "open %s", spool);
	int lock = -1;
	e = lock_spool(spool, true, &lock);
	if (e < 0) {
		close(dirfd);
		return e == -EBUSY ? 0 : e;
	}
	uint64_t window = BK_WAL_SPOOL_BYTES / seg_size;
	window = window < WINDOW_MIN ? WINDOW_MIN : window > WINDOW_MAX ? WINDOW_MAX : window;
	char want[BK_WAL_NAME_MAX] = "", seen[BK_WAL_NAME_MAX] = "";
	uint64_t asked = bk_mono_us();
	while (e == 0) {
		BkWalName wn;
		uint64_t segno;
		bool known = read_want(dirfd, seg_size, want, &wn, &segno) == 0;
		if (known && strcmp(want, seen) != 0) { /* the window moves: what lies outside goes */
			memcpy(seen, want, sizeof(seen));
			asked = bk_mono_us();
			prune(dirfd, wn.tli, segno, window, seg_size, false);
		}
		struct stat sp;
		if (*stop || recovery_ended() || bk_mono_us() - asked > BK_WAL_SPOOL_IDLE_S * 1000000ull ||
		    fstat(dirfd, &sp) < 0 || sp.st_nlink == 0) /* (the spool removed) */
			break;
		if (!known) {
			nap();
			continue;
		}
		bool fetched = false;
		for (uint64_t k = 1; e == 0 && !*stop && k <= window; k++) {
			char name[BK_WAL_NAME_MAX], path[PATH_MAX];
			struct stat st;
			bk_wal_segment_name(name, sizeof(name), wn.tli, segno + k, seg_size);
			if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", spool, name);
			e = bk_wal_fetch(r, cluster, name, path, true);
			if (e == -ENOENT) { /* not archived (yet): asked again after a nap */
				e = 0;
				break;
			}
			fetched = true;
			char now[BK_WAL_NAME_MAX];
			BkWalName nwn;
			uint64_t nseg;
			if (read_want(dirfd, seg_size, now, &nwn, &nseg) == 0 && strcmp(now, want) != 0)
				break; /* recovery moved on: the window with it */
		}
		if (!fetched)
			nap();
	}
	/* recovery over, idle, or a failure: what is spooled goes, and the spool */
	prune(dirfd, 0, 0, 0, seg_size, true);
	rmdir(spool);
	close(lock);
	close(dirfd);
	return e;
}
