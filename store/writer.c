#include "store/writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/error.h"
#include "store/idset.h"
#include "store/pack.h"
#include "store/util.h"

struct BkWriter {
	BkRepo *repo;
	BkPackWriter *pack;
	BkIdSet pending; /* ids in the open pack */
	uint8_t *sealed;
	size_t sealed_cap;
	BkWriterStats stats;
};

int bk_writer_new(BkRepo *r, BkWriter **ret)
{
	BkWriter *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->repo = r;
	*ret = w;
	return 0;
}

void bk_writer_free(BkWriter *w)
{
	if (!w)
		return;
	bk_pack_writer_free(w->pack);
	bk_idset_release(&w->pending);
	free(w->sealed);
	free(w);
}

const BkWriterStats *bk_writer_stats(const BkWriter *w) { return &w->stats; }

int bk_writer_flush(BkWriter *w)
{
	if (!w->pack || bk_pack_writer_count(w->pack) == 0)
		return 0;
	BkRepo *r = w->repo;
	BkSealer *s = bk_repo_sealer(r);
	if (!s)
		return -ENOMEM;
	uint8_t pack_id[32];
	char *tmp = NULL, name[80];
	int e = bk_pack_writer_finish(w->pack, s, r->keys, pack_id, &tmp);
	if (e < 0)
		return e;
	uint64_t size = bk_pack_writer_size(w->pack);
	bk_pack_name(pack_id, name);
	/* order matters: the pack is durable before the index points at it */
	e = bk_backend_put_file(r->be, name, tmp, true);
	if (e == -EEXIST) /* identical bytes can only come from an identical pack */
		e = 0;
	if (e == 0)
		e = bk_index_add_pack(r->index, pack_id, size, bk_pack_writer_entries(w->pack),
				      bk_pack_writer_count(w->pack));
	if (e < 0)
		unlink(tmp);
	free(tmp);
	if (e == 0) {
		w->stats.packs++;
		w->stats.stored_bytes += size;
	}
	bk_pack_writer_free(w->pack);
	w->pack = NULL;
	bk_idset_clear(&w->pending);
	return e;
}

int bk_writer_put(void *writer, BkBlobType type, const void *data, size_t len, uint8_t ret_id[32])
{
	BkWriter *w = writer;
	BkRepo *r = w->repo;
	if (len > BK_PACK_MAX_BLOB)
		return bk_errorf(-EFBIG, "blob of %zu bytes is larger than the %u allowed", len,
				 BK_PACK_MAX_BLOB);
	uint8_t id[32];
	bk_blob_id(r->keys, data, len, id);
	w->stats.blobs++;
	w->stats.bytes += len;
	if (bk_idset_has(&w->pending, id)) {
		memcpy(ret_id, id, 32);
		return 0;
	}
	BkBlobLoc loc;
	int e = bk_index_get(r->index, id, &loc);
	if (e == 0) {
		memcpy(ret_id, id, 32);
		return 0;
	}
	if (e != -ENOENT)
		return e;

	size_t bound = bk_seal_bound(len);
	if (bound > w->sealed_cap) {
		uint8_t *b = realloc(w->sealed, bound);
		if (!b)
			return -ENOMEM;
		w->sealed = b;
		w->sealed_cap = bound;
	}
	BkSealer *s = bk_repo_sealer(r);
	if (!s)
		return -ENOMEM;
	size_t slen;
	bk_seal(s, r->keys, type, id, data, len, w->sealed, &slen);

	if (w->pack && bk_pack_writer_size(w->pack) + slen > BK_PACK_TARGET &&
	    (e = bk_writer_flush(w)) < 0)
		return e;
	if (!w->pack && (e = bk_pack_writer_new(r->tmp_dir, &w->pack)) < 0)
		return e;
	if ((e = bk_pack_writer_add(w->pack, type, id, w->sealed, slen, len)) < 0)
		return e;
	if ((e = bk_idset_add(&w->pending, id)) < 0)
		return e;
	w->stats.new_blobs++;
	w->stats.new_bytes += len;
	memcpy(ret_id, id, 32);
	return 0;
}
