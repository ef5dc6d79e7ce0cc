/* store/fs.h: durable local file operations. Every local write in bunker goes
 * through here, so durability rules live in one place (PITFALLS.md):
 * write a temp file, fsync it, rename it into place, fsync the directory. A failed
 * fsync fails the operation (it is never retried and trusted). Nothing is renamed
 * into place on an error path.
 *
 * Errors: -errno with a detail naming the path. Thread-safety: stateless.
 */
#ifndef BK_STORE_FS_H
#define BK_STORE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* fsyncs the directory at path. */
int bk_fsync_dir(const char *path);

/* fsyncs the directory that contains path. */
int bk_fsync_parent(const char *path);

/* Creates a directory with mode exactly, not masked by the umask (PostgreSQL runs
 * archive_command with umask 077; a repository's directories stay open to the
 * group that shares it, as its files), keeping a setgid bit inherited from the
 * parent. 0, -EEXIST (without a message) or an error. */
int bk_mkdir(const char *path, mode_t mode);

/* Creates dir and missing parents with bk_mkdir; existing directories are fine. */
int bk_mkdir_p(const char *path, mode_t mode);

/* Whether /proc/self/fd is there to name an open file by (not in every chroot):
 * where it is not, what is reached through it falls back to names. */
bool bk_proc_fd_available(void);

/* Creates a temp file in directory dirfd named "BASE.tmp.HEX" (base cut to 40
 * bytes, 12 random hex digits; name: cap >= 64 bytes), exclusively and without
 * following a link, mode 0600, flocked while open (bk_tmp_sweep leaves it).
 * Returns its descriptor, or -errno. */
int bk_create_temp(int dirfd, const char *base, char *name, size_t cap);

/* Removes the temp files that writers killed before their end left in tmp_dir:
 * regular files named "*.tmp.*" no one holds (each writer flocks its own while
 * it is open) and untouched for BK_TMP_STALE_S (a writer between its close and
 * its rename is seconds old). Best effort: a file it cannot remove stays. */
#define BK_TMP_STALE_S 3600
void bk_tmp_sweep(const char *tmp_dir);


/* Opens directory path (absolute, or relative to directory at) as a descriptor
 * to write through (openat and the like): a component of path swapped for a
 * link meanwhile then changes nothing. With mode (not 0), missing components are
 * made (the last with mode, the others with parent_mode, exactly as bk_mkdir).
 * Symbolic links on the way are followed, by hand. With safe (root, writing
 * where another user can), a step that a user other than root could have set up
 * is refused with -EPERM: a link owned by neither root nor its directory's owner
 * (the kernel's protected_symlinks), or out of a directory not root's into a
 * directory on the way (not the last) of another owner, or by an absolute link
 * (on from /, root's) (systemd's CHASE_SAFE): a link of postgres's in its own
 * /var/lib/postgresql that leads to /etc, say. Without safe, a link in a sticky
 * directory anyone can write is followed only as protected_symlinks would.
 * *ret_made (if not NULL): whether the directory opened is one this call made. */
int bk_open_dir(int at, const char *path, mode_t mode, mode_t parent_mode, bool safe,
		int *ret_fd, bool *ret_made);

/* Removes everything inside the directory open as dirfd (not the directory
 * itself; links are removed as links; named label in errors), last (a name, or
 * NULL) only once all else went. */
int bk_remove_contents(int dirfd, const char *label, const char *last);

/* Reads a whole regular file (-EINVAL for anything else, without waiting on a
 * FIFO) of at most max bytes into a malloc'd buffer (owned by the
 * caller; NUL-terminated one past *ret_len for convenience). -EFBIG past max.
 * bk_read_file_at: path relative to directory at, flags added to open's (O_NOFOLLOW). */
int bk_read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_len);
int bk_read_file_at(int at, const char *path, int flags, size_t max, uint8_t **ret,
		    size_t *ret_len);

/* write()/pwrite() every byte, retrying on EINTR and short writes. */
int bk_write_all(int fd, const void *buf, size_t len);
int bk_pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *ret_n);
/* read() until len bytes or end of file; *ret_n < len only at end of file. */
int bk_read_full(int fd, void *buf, size_t len, size_t *ret_n);

/* A path joined from parts with '/', malloc'd (owned by the caller), or NULL. */
char *bk_path_join(const char *a, const char *b);

/* The last component of a path or a listed name ("wal/main/NAME" gives NAME). */
const char *bk_path_base(const char *path);

#endif
