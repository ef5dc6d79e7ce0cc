#include "pg/walspool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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
#define POLL_MS 20    /* the filler looks for a new want this often */
#define MISS_MS 250   /* and for a segment not archived yet this often */

/* The spool's own name in its directory. */
static void spool_base(const BkRepo *r, const char *cluster, char out[128])
{
	char id[2 * 8 + 1];
	bk_hex(id, r->keys->repo_id, 8);
	snprintf(out, 128, "bunker-read-ahead.%s.%s", id, cluster);
}

int bk_wal_spool_path(const BkRepo *r, const char *cluster, const char *dest, char out[PATH_MAX])
{
	const char *slash = strrchr(dest, '/'), *base = slash ? slash + 1 : dest;
	if (strcmp(base, BK_WAL_SPOOL_DEST) != 0)
		return -ENOENT;
	char own[128];
	spool_base(r, cluster, own);
	int n = snprintf(out, PATH_MAX, "%.*s%s", (int)(base - dest), dest, own);
	return n < 0 || n >= PATH_MAX ? bk_errorf(BK_E_USAGE, "%s: path too long", dest) : 0;
}

int bk_wal_spool_take(const char *spool, const char *name, const char *dest)
{
	char path[PATH_MAX];
	struct stat st;
	if (snprintf(path, sizeof(path), "%s/%s", spool, name) >= (int)sizeof(path))
		return -ENOENT;
	/* dest is replaced only when it is a file, as bk_wal_fetch replaces it (found
	 * by review: a FIFO there was replaced) */
	if (lstat(dest, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
		return -ENOENT;
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return -ENOENT;
	return rename(path, dest) < 0 ? bk_errorf_code(-errno, "rename %s", path) : 0;
}

/* Removes the spool's segments but those in (first, first + n] on timeline tli
 * (seg_size: theirs; 0 keeps none); with all, the filler's own files too (want,
 * the lock, their temporary files), never anything else the directory holds. */
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
		const char *name = de->d_name;
		BkWalName wn;
		uint64_t segno;
		bool seg = bk_wal_name_parse(name, &wn) == 0 && wn.kind == BK_WAL_SEGMENT;
		bool keep = seg && seg_size && bk_wal_name_segno(&wn, seg_size, &segno) == 0 &&
			    wn.tli == tli && segno > first && segno <= first + n;
		bool own = !strcmp(name, WANT_FILE) || !strcmp(name, LOCK_FILE) ||
			   !strncmp(name, ".want.", 6) || strstr(name, ".bunker-tmp.");
		if ((seg && !keep) || (all && own))
			unlinkat(dirfd, name, 0);
	}
	closedir(d);
}

int bk_wal_spool_clear(const char *spool)
{
	int dirfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dirfd < 0)
		return errno == ENOENT ? 0 : bk_errorf_code(-errno, "open %s", spool);
	prune(dirfd, 0, 0, 0, 0, false);
	close(dirfd);
	return 0;
}

/* Whether the working directory is a data directory in recovery: PostgreSQL's
 * startup process runs restore_command there (pg_rewind --restore-target-wal,
 * whose fetches read WAL backwards, runs it from anywhere: found by review). */
static bool in_recovery(void)
{
	return access("PG_VERSION", F_OK) == 0 && access("postmaster.pid", F_OK) == 0 &&
	       (access("recovery.signal", F_OK) == 0 || access("standby.signal", F_OK) == 0);
}

/* Takes the spool's lock: -EBUSY when another process holds it; on success held
 * in *ret_fd with hold, else let go at once (a look whether a filler runs). */
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

/* Removes the spool whose lock the caller holds: its segments, its own files and
 * the directory (when nothing else is left in it). */
static void remove_spool(int dirfd, const char *spool)
{
	prune(dirfd, 0, 0, 0, 0, true);
	rmdir(spool);
}

void bk_wal_spool_sweep(const char *spool)
{
	int dirfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dirfd < 0)
		return;
	int lock = -1;
	if (lock_spool(spool, true, &lock) == 0) {
		remove_spool(dirfd, spool);
		close(lock);
	}
	bk_error_clear();
	close(dirfd);
}

int bk_wal_spool_want(const char *spool, const char *name, bool *ret_start)
{
	*ret_start = false;
	if (!in_recovery())
		return 0;
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
 * file, or no postmaster.pid (the server stopped). Run from elsewhere, only the
 * idle timeout ends the filler. */
static bool recovery_ended(void)
{
	return access("PG_VERSION", F_OK) == 0 &&
	       ((access("recovery.signal", F_OK) < 0 && access("standby.signal", F_OK) < 0) ||
		access("postmaster.pid", F_OK) < 0); /* (found by review: the filler
						      * outlived the server by a minute) */
}

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };
	nanosleep(&ts, NULL);
}

/* Whether the spool's file system has room for four segments more: the one to
 * fetch, and the rest for the server (found by review: a full pg_wal stops
 * recovery). */
static bool room(int dirfd, uint32_t seg_size)
{
	struct statvfs v;
	return fstatvfs(dirfd, &v) < 0 || (uint64_t)v.f_bavail * v.f_frsize >= 4ull * seg_size;
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
	/* only a spool, never another directory whose files it would remove (found
	 * by review) */
	char own[128];
	const char *slash = strrchr(spool, '/');
	spool_base(r, cluster, own);
	if (strcmp(slash ? slash + 1 : spool, own) != 0)
		return bk_errorf(BK_E_USAGE, "%s is not a read-ahead spool of this repository and "
				 "cluster (%s)", spool, own);
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
			nap(POLL_MS);
			continue;
		}
		bool fetched = false, missed = false;
		for (uint64_t k = 1; e == 0 && !*stop && k <= window && !recovery_ended() &&
				     room(dirfd, seg_size);
		     k++) {
			char name[BK_WAL_NAME_MAX], path[PATH_MAX];
			struct stat st;
			bk_wal_segment_name(name, sizeof(name), wn.tli, segno + k, seg_size);
			if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", spool, name);
			e = bk_wal_fetch(r, cluster, name, path, true);
			if (e == -ENOENT) { /* not archived (yet): asked again after a nap */
				e = 0;
				missed = true;
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
			nap(missed ? MISS_MS : POLL_MS);
	}
	/* recovery over, idle, or a failure: what is spooled goes, and the spool */
	remove_spool(dirfd, spool);
	close(lock);
	close(dirfd);
	return e;
}
