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

/* Writes data to path atomically and durably (temp file, fsync, rename or
 * no-replace link, fsync directory). With create_only, an existing path is left
 * untouched and -EEXIST returned. The temp file is made in tmp_dir (on path's
 * file system), where bk_tmp_sweep finds one a crash left, flocked while it is
 * written; in path's own directory when tmp_dir is NULL or missing. */
int bk_write_atomic(const char *path, const char *tmp_dir, const void *data, size_t len,
		    mode_t mode, bool create_only);

/* Removes the temp files that writers killed before their end left in tmp_dir:
 * regular files named "*.tmp.*" no one holds (each writer flocks its own while
 * it is open) and untouched for BK_TMP_STALE_S (a writer between its close and
 * its rename is seconds old). Best effort: a file it cannot remove stays. */
#define BK_TMP_STALE_S 3600
void bk_tmp_sweep(const char *tmp_dir);

/* Moves a complete, closed temp file into place durably (fsync file, rename,
 * fsync directory). With create_only, -EEXIST if path exists (tmp is kept).
 * Once durable, the file's pages leave the page cache: what a repository stores
 * is rarely read back soon, and the pages freed are the ones its next writes
 * reuse (a backup writing GBs of packs otherwise takes fresh memory for each,
 * and pushes the index and the database's own pages out of the cache). */
int bk_commit_file(const char *tmp, const char *path, bool create_only);

/* Removes everything inside directory path (not path itself; path may be a
 * symbolic link to the directory, links below it are removed as links). A
 * missing path is fine. */
int bk_remove_contents(const char *path);

/* Reads a whole regular file (-EINVAL for anything else, without waiting on a
 * FIFO) of at most max bytes into a malloc'd buffer (owned by the
 * caller; NUL-terminated one past *ret_len for convenience). -EFBIG past max. */
int bk_read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_len);

/* write()/pwrite() every byte, retrying on EINTR and short writes. */
int bk_write_all(int fd, const void *buf, size_t len);
int bk_pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *ret_n);
/* read() until len bytes or end of file; *ret_n < len only at end of file. */
int bk_read_full(int fd, void *buf, size_t len, size_t *ret_n);

/* A path joined from parts with '/', malloc'd (owned by the caller), or NULL. */
char *bk_path_join(const char *a, const char *b);

#endif
