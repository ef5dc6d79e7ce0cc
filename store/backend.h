/* store/backend.h: where repository objects live. Local disk and S3 sit behind
 * this one interface, so restore, check and mount work the same on either.
 *
 * Object names are repository-relative paths from DESIGN.md's layout ("config",
 * "keys/<id>", "data/<xx>/<pack-id>", "snapshots/<id>", "wal/..."), made of
 * [A-Za-z0-9._/-] only.
 *
 * Contract for every implementation:
 * - put is atomic and durable when it returns 0: readers see either nothing or
 *   every byte. With create_only, an existing object is left alone: -EEXIST, and
 *   that object is durable too (its writer may have died between the two).
 * - sync makes an object seen to exist durable, for the same reason.
 * - put_file moves a complete local temp file (a pack) in under name, same rules.
 * - get reads a byte range; a range past the end is short (*ret_n < len).
 * - list calls cb for every object under prefix; a failed or truncated listing
 *   returns an error and is never reported as "fewer objects".
 * - Absent objects are -ENOENT (no detail set); other failures set a detail.
 * Thread-safety: implementations must allow concurrent calls from many threads.
 */
#ifndef BK_STORE_BACKEND_H
#define BK_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct BkBackend BkBackend;
typedef int (*BkListFn)(void *ud, const char *name, uint64_t size);

typedef struct {
	const char *kind; /* "local", "s3" */
	int (*put)(BkBackend *b, const char *name, const void *data, size_t len, bool create_only);
	int (*put_file)(BkBackend *b, const char *name, const char *tmp_path, bool create_only);
	int (*get)(BkBackend *b, const char *name, uint64_t off, size_t len, void *buf,
		   size_t *ret_n);
	int (*size)(BkBackend *b, const char *name, uint64_t *ret_size);
	int (*sync)(BkBackend *b, const char *name);
	int (*list)(BkBackend *b, const char *prefix, BkListFn cb, void *ud);
	int (*remove)(BkBackend *b, const char *name);
	void (*free)(BkBackend *b);
} BkBackendOps;

struct BkBackend {
	const BkBackendOps *ops;
};

int bk_backend_put(BkBackend *b, const char *name, const void *data, size_t len, bool create_only);
int bk_backend_put_file(BkBackend *b, const char *name, const char *tmp_path, bool create_only);
int bk_backend_get(BkBackend *b, const char *name, uint64_t off, size_t len, void *buf,
		   size_t *ret_n);
/* Reads a whole object of at most max bytes; *ret owned by the caller (free()). */
int bk_backend_get_all(BkBackend *b, const char *name, size_t max, uint8_t **ret, size_t *ret_len);
int bk_backend_size(BkBackend *b, const char *name, uint64_t *ret_size);
int bk_backend_sync(BkBackend *b, const char *name);
int bk_backend_list(BkBackend *b, const char *prefix, BkListFn cb, void *ud);
int bk_backend_remove(BkBackend *b, const char *name);
void bk_backend_free(BkBackend *b); /* accepts NULL */

/* A backend over a local directory (the repository root). Files are created with
 * mode 0660 and directories 0770 (less the umask). When root writes into a
 * repository whose root directory belongs to another user (postgres), new files
 * and directories are given to that user, so archive_command and restore_command
 * keep working on everything root wrote. A put makes its temp file in the
 * repository's tmp/, in the object's directory before tmp/ exists. Writes and
 * reads reach the repository's objects by descriptor, never through a symbolic
 * link below the root (refused, naming it), and read regular files only: another
 * user who may write the repository must not be able to send them elsewhere (a
 * device, a FIFO that hangs the read). list neither lists nor enters a link. */
int bk_backend_local_new(const char *root, BkBackend **ret);

#endif
