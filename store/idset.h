/* store/idset.h: a set of 32-byte ids (open addressing on the ids' first 8
 * bytes, which are uniformly random: ids are keyed hashes). The all-zero id marks
 * an empty slot and cannot be stored. Memory: 64 bytes per id at worst.
 * Single-threaded. */
#ifndef BK_STORE_IDSET_H
#define BK_STORE_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint8_t (*ids)[32];
	size_t cap, count;
} BkIdSet;

bool bk_idset_has(const BkIdSet *s, const uint8_t id[32]);
/* Adds id: 1 if added, 0 if already present, -ENOMEM. */
int bk_idset_add(BkIdSet *s, const uint8_t id[32]);
void bk_idset_clear(BkIdSet *s);   /* empties, keeps capacity */
void bk_idset_release(BkIdSet *s); /* frees; accepts a zeroed set */

#endif
