/* store/treebuild.h: building snapshot trees from entries that arrive by path in
 * any order (tar streams from BASE_BACKUP), as opposed to the archiver's walk of
 * a file system.
 *
 * Entries are kept in memory (metadata and each file's inline content root, not
 * file data) until finish() encodes every directory bottom-up. Memory grows with
 * the number of entries, not with their sizes. Missing parent directories are
 * created with mode 0700 and later take the metadata of their own entry if it
 * arrives. Single-threaded.
 */
#ifndef BK_STORE_TREEBUILD_H
#define BK_STORE_TREEBUILD_H

#include <stdint.h>

#include "store/tree.h"
#include "store/types.h"

typedef struct BkTreeBuilder BkTreeBuilder;

int bk_tree_builder_new(BkTreeBuilder **ret);
void bk_tree_builder_free(BkTreeBuilder *b); /* accepts NULL */

/* Adds e at path ("a/b/c", no leading or trailing '/', no "." or ".." parts),
 * taking ownership of e's owned fields even on failure (e->name is replaced by the
 * path's last component). A second entry at the same path is BK_E_USAGE, except a
 * directory's own entry after it was created implicitly. */
int bk_tree_builder_add(BkTreeBuilder *b, const char *path, BkTreeEntry *e);

/* Stores every directory through put (BK_BLOB_TREE) and returns the root's id. */
int bk_tree_builder_finish(BkTreeBuilder *b, BkPutBlobFn put, void *ud, uint8_t ret_root[32]);

#endif
