/* store/restorer.h: reading snapshots back: listing and resolving them, walking
 * their trees, streaming a file's bytes, and restoring to a directory.
 *
 * Every byte is authenticated and id-checked before it is written (invariant 4):
 * trees and content lists through bk_repo_read_blob(), file data in batches of
 * chunks through bk_repo_read_blobs_into(), which checks a batch's ids at once.
 * A restored file is written unnamed (O_TMPFILE; under a temporary name where the
 * file system makes no unnamed file), and linked under a temporary name and renamed
 * into place only when all of its bytes were verified, so a corrupt repository
 * never leaves a wrong file under the real name, and a restore killed meanwhile
 * leaves no part of a file behind; its owner, mode and times are set through its
 * descriptor (a directory's too), never by a name another user could have made
 * a link. Restored files are written with O_DIRECT in
 * whole 4 KiB blocks where the file system takes it (through the page cache where
 * it does not), whole zero blocks become holes (sparse files stay sparse), and one
 * syncfs at the end makes the restore durable. bk_content_write() writes a plain
 * stream (pipes, stdout).
 *
 * Thread-safety: functions may run concurrently on one BkRepo.
 */
#ifndef BK_STORE_RESTORER_H
#define BK_STORE_RESTORER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/repo.h"
#include "store/snapshot.h"
#include "store/tree.h"

int bk_snapshot_load(BkRepo *r, const uint8_t id[32], BkSnapshot **ret);

/* Calls cb for every snapshot (unordered); cb takes ownership of s. A record that
 * is damaged (BK_E_CORRUPT, BK_E_VERSION) does not stop the listing: cb gets
 * s == NULL for it, with the reason in bk_error_detail(). Other errors stop it. */
typedef int (*BkSnapshotFn)(void *ud, const uint8_t id[32], BkSnapshot *s);
int bk_snapshot_foreach(BkRepo *r, BkSnapshotFn cb, void *ud);

/* Resolves "latest", a full id or a unique id prefix (at least 4 hex digits),
 * optionally narrowed to snapshots named name. "latest" is the newest by time of
 * those that are no other's parent (a newer snapshot stamped by a clock behind
 * still counts as the newer). -ENOENT if none matches,
 * BK_E_USAGE if a prefix is ambiguous. A full id is checked directly. A damaged
 * record whose id starts with the prefix is a match (loading it then fails with
 * BK_E_CORRUPT); "latest" skips damaged records, one of which may have been the
 * newest (*ret_damaged, if not NULL, counts the damaged records met), and is
 * BK_E_CORRUPT, not -ENOENT, when only damaged records could have matched. */
int bk_snapshot_resolve(BkRepo *r, const char *spec, const char *name, uint8_t ret_id[32]);
int bk_snapshot_resolve_ex(BkRepo *r, const char *spec, const char *name, uint8_t ret_id[32],
			   unsigned *ret_damaged);

/* Finds path ("a/b/c", "" or "/" for the root) below tree root. On success
 * *ret_tree owns the tree holding the entry and *ret_entry points into it;
 * for the root itself *ret_entry is NULL and *ret_tree is the root tree.
 * -ENOENT (with detail) if absent. */
int bk_tree_lookup(BkRepo *r, const uint8_t root[32], const char *path, BkTree **ret_tree,
		   const BkTreeEntry **ret_entry);

/* Loads tree blob id. */
int bk_tree_load(BkRepo *r, const uint8_t id[32], BkTree **ret);

/* Writes a file's content to fd (a pipe or file), verified chunk by chunk. */
int bk_content_write(BkRepo *r, const BkContentNode *root, int fd);

typedef struct {
	const char *const *includes; /* paths inside the snapshot; none = everything */
	size_t nincludes;
	const char *from;            /* a directory of the snapshot whose contents go
				      * into target instead (NULL: the root) */
	const char *const *excludes; /* names at the top left out (not with includes) */
	size_t nexcludes;
	bool restore_owner;          /* chown (needs root) */
	bool one_owner;              /* with restore_owner: every entry to owner_uid:owner_gid */
	uid_t owner_uid;
	gid_t owner_gid;
	uint64_t total;              /* bytes expected, for progress (0 = unknown) */
	uint64_t *done;              /* bytes written, counted on from its value, so that
				      * several restores report as one (NULL: from 0) */
	void (*progress)(void *ud, uint64_t done, uint64_t total);
	void *progress_ud;
	/* Once set (by a signal handler, say), the restore stops before its next
	 * entry, or before making target: -EINTR, "interrupted". NULL: never. */
	const volatile sig_atomic_t *stop;
} BkRestoreOpts;

/* Restores snapshot s into target (created if missing). bk_restore_at: into the
 * directory open as dirfd (named target in errors), which the caller opened once
 * (bk_open_dir), so that what it writes cannot be sent elsewhere by a path
 * changed meanwhile. */
int bk_restore(BkRepo *r, const BkSnapshot *s, const char *target, const BkRestoreOpts *o);
int bk_restore_at(BkRepo *r, const BkSnapshot *s, int dirfd, const char *target,
		  const BkRestoreOpts *o);

#endif
