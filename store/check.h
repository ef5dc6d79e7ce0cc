/* store/check.h: verifying a repository, and rebuilding its index.
 *
 * bk_check() reports every problem it finds through cb (one line each, naming
 * the object: pack and offset, snapshot, key slot) and returns how many it found
 * (>= 0), or < 0 if it could not run at all. It checks: key slots' checksums;
 * every pack's footer and authenticated trailer against the index, and the index
 * against the packs on disk: each pack it lists is there, and each blob entry names
 * a pack whose trailer holds that blob at that place; every snapshot record; every tree, content list and
 * data blob a snapshot references is indexed. With read_data it also hashes every
 * pack (its name is its BLAKE2b-256) and opens every blob (authentication and id).
 *
 * bk_repair_index() rebuilds the index from the packs' trailers (invariant 3) in
 * one write transaction (bk_index_replace): until it commits, readers see the old
 * index, and a repair that fails or is killed leaves it as it was. Unreadable
 * packs are reported through cb and skipped.
 */
#ifndef BK_STORE_CHECK_H
#define BK_STORE_CHECK_H

#include <stdbool.h>

#include "store/repo.h"

/* problem: true for a problem (counted), false for a note, such as a pack an
 * interrupted backup left outside the index (harmless garbage, invariant 1). */
typedef void (*BkReportFn)(void *ud, bool problem, const char *line);

int bk_check(BkRepo *r, bool read_data, BkReportFn cb, void *ud);
int bk_repair_index(BkRepo *r, BkReportFn cb, void *ud, uint64_t *ret_packs, uint64_t *ret_blobs);

#endif
