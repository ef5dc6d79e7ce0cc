#include "store/writer.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/blake2b.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/idset.h"
#include "store/pack.h"
#include "store/util.h"

#define MAX_SLOTS 16
/* Ids of blobs not yet known to be indexed. Past this many, everything is
 * flushed and the set starts over, which bounds its memory (~8 MiB). */
#define PENDING_MAX (64u << 10)
/* Full packs waiting for their ids: fewer than a batch (the hash's lanes, at
 * most 8), plus every slot's pack at a flush. */
#define MAX_FULL (MAX_SLOTS + 8)
_Static_assert(MAX_FULL <= BK_PACK_FINISH_MAX, "a flush finishes every full pack at once");

/* An open pack with its sealing buffer, used by one thread at a time. */
typedef struct {
	BkPackWriter *pack;
	uint8_t *sealed;
	size_t cap;
	bool busy;
} Slot;

struct BkWriter {
	BkRepo *repo;
	pthread_mutex_t lock;
	pthread_cond_t slot_free;
	BkIdSet pending; /* ids in open or committed packs of this writer */
	Slot slots[MAX_SLOTS];
	BkPackWriter *full[MAX_FULL]; /* complete, not yet finished and committed */
	size_t nfull;
	/* A pack has filled up (and the CPU has hash lanes): this writer writes in
	 * bulk, and packs opened from now on are hashed in batches. Before, a pack
	 * is hashed as it is written, so that one finished alone (wal-push's) costs
	 * nothing at the end. */
	atomic_bool bulk;
	unsigned flushing; /* flushes waiting for the slots to be free */
	int level;       /* zstd level */
	int error;       /* sticky: a failed commit fails every later flush */
	char error_detail[512];
	BkWriterStats stats;
};

int bk_writer_new(BkRepo *r, BkWriter **ret)
{
	BkWriter *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->repo = r;
	w->level = r->params.zstd_level;
	/* (found by review: the temp packs of killed backups piled up, unseen) */
	bk_tmp_sweep(r->tmp_dir);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->slot_free, NULL);
	*ret = w;
	return 0;
}

void bk_writer_free(BkWriter *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < MAX_SLOTS; i++) {
		bk_pack_writer_free(w->slots[i].pack);
		free(w->slots[i].sealed);
	}
	for (size_t i = 0; i < w->nfull; i++)
		bk_pack_writer_free(w->full[i]);
	bk_idset_release(&w->pending);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->slot_free);
	free(w);
}

const BkWriterStats *bk_writer_stats(const BkWriter *w) { return &w->stats; }

void bk_writer_set_level(BkWriter *w, int zstd_level) { w->level = zstd_level; }

/* Abandons a slot's open pack (its temporary file is removed); what it held is
 * not indexed, and the failure that led here is the writer's sticky error. */
static void drop_pack(Slot *s)
{
	bk_pack_writer_free(s->pack);
	s->pack = NULL;
}

/* Places a finished pack and indexes its blobs: pack durable first, then the
 * index (invariant 1). tmp is removed if the pack is not placed. */
static int commit_pack(BkWriter *w, BkPackWriter *p, const uint8_t pack_id[32], const char *tmp)
{
	BkRepo *r = w->repo;
	char name[80];
	bk_pack_name(pack_id, name);
	int e = bk_backend_put_file(r->be, name, tmp, true);
	bool placed = e == 0;
	if (e == -EEXIST) { /* identical bytes can only come from an identical pack */
		unlink(tmp);
		e = 0;
	}
	if (e == 0)
		e = bk_index_add_pack(r->index, pack_id, bk_pack_writer_size(p),
				      bk_pack_writer_entries(p), bk_pack_writer_count(p));
	if (e < 0 && placed) {
		/* nothing references it: take it back rather than leave garbage */
		char why[512];
		snprintf(why, sizeof(why), "%s", bk_error_detail());
		bk_backend_remove(r->be, name);
		bk_errorf(e, "%s", why);
	}
	if (e < 0)
		unlink(tmp);
	return e;
}

/* Finishes full packs together (their ids hashed side by side) and commits
 * them, stopping at the first failure; frees them all. Called by the thread
 * that took them from w->full. *ret_packs and *ret_bytes count those committed. */
static int commit_full(BkWriter *w, BkPackWriter **packs, size_t n, uint64_t *ret_packs,
		       uint64_t *ret_bytes)
{
	BkRepo *r = w->repo;
	BkSealer *sealer = bk_repo_sealer(r);
	uint8_t ids[MAX_FULL][32];
	char *tmp[MAX_FULL];
	int e = sealer ? bk_pack_writers_finish(packs, n, sealer, r->keys, ids, tmp) : -ENOMEM;
	bool finished = e == 0; /* never index a pack that could not be written whole */
	*ret_packs = *ret_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (finished) {
			if (e < 0) {
				unlink(tmp[i]); /* after a failure: left out */
			} else if ((e = commit_pack(w, packs[i], ids[i], tmp[i])) == 0) {
				(*ret_packs)++; /* (a failed commit removes tmp itself) */
				*ret_bytes += bk_pack_writer_size(packs[i]);
			}
			free(tmp[i]);
		}
		bk_pack_writer_free(packs[i]);
	}
	return e;
}

/* With the lock held: remembers the first failure and its detail (which is
 * thread-local, and flush may run on another thread). */
static void set_error(BkWriter *w, int e)
{
	if (e < 0 && !w->error) {
		w->error = e;
		snprintf(w->error_detail, sizeof(w->error_detail), "%s", bk_error_detail());
	}
}

static void account_commit(BkWriter *w, int e, uint64_t packs, uint64_t bytes)
{
	set_error(w, e);
	w->stats.packs += packs;
	w->stats.stored_bytes += bytes;
}

static bool any_busy(const BkWriter *w)
{
	for (size_t i = 0; i < MAX_SLOTS; i++)
		if (w->slots[i].busy)
			return true;
	return false;
}

/* With the lock held: waits until no slot is in use, commits them all, and
 * forgets the pending ids (they are all indexed now). No slot is handed out
 * while a flush waits: a slot taken meanwhile would be committed under the
 * thread appending to it. */
static int flush_locked(BkWriter *w)
{
	w->flushing++;
	while (any_busy(w))
		pthread_cond_wait(&w->slot_free, &w->lock);
	for (size_t i = 0; i < MAX_SLOTS; i++) {
		Slot *s = &w->slots[i];
		if (s->pack && bk_pack_writer_count(s->pack) > 0) {
			w->full[w->nfull++] = s->pack;
			s->pack = NULL;
		}
	}
	if (w->nfull > 0) {
		uint64_t packs, bytes;
		int e = commit_full(w, w->full, w->nfull, &packs, &bytes);
		w->nfull = 0;
		account_commit(w, e, packs, bytes);
	}
	if (!w->error)
		bk_idset_clear(&w->pending);
	w->flushing--;
	pthread_cond_broadcast(&w->slot_free);
	return w->error ? bk_errorf(w->error, "%s", w->error_detail) : 0;
}

int bk_writer_flush(BkWriter *w)
{
	pthread_mutex_lock(&w->lock);
	int e = flush_locked(w);
	pthread_mutex_unlock(&w->lock);
	return e;
}

/* With the lock held: a free slot, waiting for one if all are busy or a flush
 * is waiting for them. */
static Slot *take_slot(BkWriter *w)
{
	for (;;) {
		for (size_t i = 0; !w->flushing && i < MAX_SLOTS; i++)
			if (!w->slots[i].busy) {
				w->slots[i].busy = true;
				return &w->slots[i];
			}
		pthread_cond_wait(&w->slot_free, &w->lock);
	}
}

/* Moves a slot's full pack to those waiting for their ids; once there are as
 * many as the hash has lanes, this thread commits them all. The slot stays
 * busy meanwhile, so a flush waits for the commit. */
static int retire(BkWriter *w, Slot *s)
{
	BkPackWriter *batch[MAX_FULL];
	size_t n = 0;
	unsigned lanes = bk_blake2b_init();
	atomic_store(&w->bulk, lanes > 1); /* libsodium alone: as written is cheaper */
	pthread_mutex_lock(&w->lock);
	w->full[w->nfull++] = s->pack;
	s->pack = NULL;
	if (w->nfull >= lanes) {
		n = w->nfull;
		memcpy(batch, w->full, n * sizeof(*batch));
		w->nfull = 0;
	}
	pthread_mutex_unlock(&w->lock);
	if (n == 0)
		return 0;
	uint64_t packs, bytes;
	int e = commit_full(w, batch, n, &packs, &bytes);
	pthread_mutex_lock(&w->lock);
	account_commit(w, e, packs, bytes);
	pthread_mutex_unlock(&w->lock);
	return e;
}

static int seal_into(BkWriter *w, Slot *s, BkBlobType type, const uint8_t id[32],
		     const void *data, size_t len)
{
	BkRepo *r = w->repo;
	size_t bound = bk_seal_bound(len);
	if (bound > s->cap) {
		uint8_t *b = realloc(s->sealed, bound);
		if (!b)
			return -ENOMEM;
		s->sealed = b;
		s->cap = bound;
	}
	BkSealer *sealer = bk_repo_sealer(r);
	if (!sealer)
		return -ENOMEM;
	size_t slen;
	bk_sealer_set_level(sealer, w->level); /* the sealer is the thread's, shared by writers */
	bk_seal(sealer, r->keys, type, id, data, len, s->sealed, &slen);
	int e = 0;
	if (s->pack && bk_pack_writer_size(s->pack) + slen > BK_PACK_TARGET &&
	    (e = retire(w, s)) < 0)
		return e;
	if (!s->pack && (e = bk_pack_writer_new(r->tmp_dir, !atomic_load(&w->bulk), &s->pack)) < 0)
		return e;
	if ((e = bk_pack_writer_add(s->pack, type, id, s->sealed, slen, len)) < 0)
		drop_pack(s); /* now, so the add's own error (no space) is the one reported */
	return e;
}

int bk_writer_put(void *writer, BkBlobType type, const void *data, size_t len, uint8_t ret_id[32])
{
	BkWriter *w = writer;
	bk_blob_id(w->repo->keys, data, len, ret_id);
	return bk_writer_put_id(w, type, data, len, ret_id);
}

int bk_writer_put_id(BkWriter *w, BkBlobType type, const void *data, size_t len,
		     const uint8_t id[32])
{
	BkRepo *r = w->repo;
	if (len > BK_PACK_MAX_BLOB)
		return bk_errorf(-EFBIG, "blob of %zu bytes is larger than the %u allowed", len,
				 BK_PACK_MAX_BLOB);

	pthread_mutex_lock(&w->lock);
	w->stats.blobs++;
	w->stats.bytes += len;
	bool known = bk_idset_has(&w->pending, id);
	pthread_mutex_unlock(&w->lock);
	if (known)
		return 0;
	BkBlobLoc loc;
	int e = bk_index_get(r->index, id, &loc);
	if (e != -ENOENT)
		return e; /* 0: already stored */

	pthread_mutex_lock(&w->lock);
	if (w->pending.count >= PENDING_MAX && (e = flush_locked(w)) < 0) {
		pthread_mutex_unlock(&w->lock);
		return e;
	}
	e = bk_idset_add(&w->pending, id);
	if (e <= 0) { /* another thread is storing it, or out of memory */
		pthread_mutex_unlock(&w->lock);
		return e;
	}
	Slot *s = take_slot(w);
	w->stats.new_blobs++;
	w->stats.new_bytes += len;
	pthread_mutex_unlock(&w->lock);

	e = seal_into(w, s, type, id, data, len);

	pthread_mutex_lock(&w->lock);
	set_error(w, e);
	s->busy = false;
	pthread_cond_broadcast(&w->slot_free);
	pthread_mutex_unlock(&w->lock);
	return e;
}
