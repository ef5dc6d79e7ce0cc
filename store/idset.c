#include "store/idset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/util.h"

static size_t slot_of(const BkIdSet *s, const uint8_t id[32])
{
	uint64_t h;
	memcpy(&h, id, 8);
	size_t i = h & (s->cap - 1);
	while (!bk_id_is_zero(s->ids[i]) && memcmp(s->ids[i], id, 32) != 0)
		i = (i + 1) & (s->cap - 1);
	return i;
}

bool bk_idset_has(const BkIdSet *s, const uint8_t id[32])
{
	return s->cap && !bk_id_is_zero(s->ids[slot_of(s, id)]);
}

int bk_idset_add(BkIdSet *s, const uint8_t id[32])
{
	if (2 * (s->count + 1) > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1024;
		BkIdSet n = { .ids = calloc(cap, 32), .cap = cap };
		if (!n.ids)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++)
			if (!bk_id_is_zero(s->ids[i]))
				memcpy(n.ids[slot_of(&n, s->ids[i])], s->ids[i], 32);
		n.count = s->count;
		free(s->ids);
		*s = n;
	}
	size_t i = slot_of(s, id);
	if (!bk_id_is_zero(s->ids[i]))
		return 0;
	memcpy(s->ids[i], id, 32);
	s->count++;
	return 1;
}

void bk_idset_clear(BkIdSet *s)
{
	if (s->ids)
		memset(s->ids, 0, s->cap * 32);
	s->count = 0;
}

void bk_idset_release(BkIdSet *s)
{
	free(s->ids);
	*s = (BkIdSet){ 0 };
}
