#include "store/pack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/blake2b.h"
#include "store/codec.h"
#include "store/error.h"
#include "store/fs.h"
#include "store/util.h"

static const uint8_t header_magic[BK_PACK_HEADER_LEN] = { 'B', 'K', 'P', 'A', 'C', 'K', 0, 1 };
static const char footer_magic[8] = { 'B', 'K', 'P', 'K', 'E', 'N', 'D', '1' };
#define TRAILER_VERSION 1
#define BUF_SIZE (256u << 10) /* a write each; each page of it a fault in a new process */

struct BkPackWriter {
	char *tmp_dir, *tmp_path;
	int fd;
	uint64_t size;
	uint8_t *buf; /* bytes not yet written */
	size_t buffered;
	BkPackEntry *entries;
	size_t count, cap;
	int finished;
	int failed; /* a write failed: the file no longer matches size and entries */
	bool hashing; /* the id is hashed as the bytes are written */
	crypto_generichash_state hash;
};

int bk_pack_writer_new(const char *tmp_dir, bool hash_as_written, BkPackWriter **ret)
{
	BkPackWriter *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->hashing = hash_as_written;
	crypto_generichash_init(&w->hash, NULL, 0, 32);
	w->tmp_dir = strdup(tmp_dir);
	if (!w->tmp_dir) {
		free(w);
		return -ENOMEM;
	}
	*ret = w;
	return 0;
}

void bk_pack_writer_free(BkPackWriter *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_path && !w->finished)
		unlink(w->tmp_path);
	free(w->tmp_path);
	free(w->tmp_dir);
	free(w->entries);
	free(w->buf);
	free(w);
}

/* Writes out what is buffered, then starts writing it back, so that the fsync
 * before the pack's commit finds little left to do. */
static int flush_buf(BkPackWriter *w)
{
	if (w->buffered == 0)
		return 0;
	int r = bk_write_all(w->fd, w->buf, w->buffered);
	if (r < 0) {
		w->failed = 1;
		return bk_errorf_code(r, "write pack %s", w->tmp_path);
	}
	w->buffered = 0;
	sync_file_range(w->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	return 0;
}

/* Appends to the pack through a buffer: one write per BUF_SIZE, not per blob. */
static int emit(BkPackWriter *w, const void *p, size_t n)
{
	if (w->hashing)
		crypto_generichash_update(&w->hash, p, n);
	w->size += n;
	if (w->buffered + n > BUF_SIZE) {
		int r = flush_buf(w);
		if (r < 0)
			return r;
	}
	if (n > BUF_SIZE) {
		int r = bk_write_all(w->fd, p, n);
		if (r < 0)
			w->failed = 1;
		return r < 0 ? bk_errorf_code(r, "write pack %s", w->tmp_path) : 0;
	}
	memcpy(w->buf + w->buffered, p, n);
	w->buffered += n;
	return 0;
}

static int start(BkPackWriter *w)
{
	/* in tmp/ itself, not where a link put there by another user who may write
	 * the repository leads (found by review: root's packs were made there) */
	int dir = open(w->tmp_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0)
		return errno == ELOOP || errno == ENOTDIR
			       ? bk_errorf(-ELOOP, "%s is a symbolic link or not a directory: not "
					   "followed (another user may have put it there)", w->tmp_dir)
			       : bk_errorf_code(-errno, "create %s/pack.tmp.XXXXXX", w->tmp_dir);
	char name[64];
	w->fd = bk_create_temp(dir, "pack", name, sizeof(name));
	close(dir);
	if (w->fd < 0)
		return bk_errorf_code(w->fd, "create %s/pack.tmp.*", w->tmp_dir);
	if (asprintf(&w->tmp_path, "%s/%s", w->tmp_dir, name) < 0) {
		w->tmp_path = NULL;
		w->failed = 1;
		return -ENOMEM;
	}
	if (fchmod(w->fd, 0660) < 0) {
		w->failed = 1;
		return bk_errorf_code(-errno, "chmod %s", w->tmp_path);
	}
	if (!w->buf && !(w->buf = malloc(BUF_SIZE))) {
		w->failed = 1;
		return -ENOMEM;
	}
	return emit(w, header_magic, sizeof(header_magic));
}

int bk_pack_writer_add(BkPackWriter *w, BkBlobType type, const uint8_t id[32],
		       const uint8_t *sealed, size_t sealed_len, size_t plain_len)
{
	int r;
	if (w->failed)
		return bk_errorf(-EIO, "pack writer: an earlier write to %s failed", w->tmp_path);
	if (w->finished || type < BK_BLOB_DATA || type > BK_BLOB_WAL || type == BK_BLOB_TRAILER ||
	    plain_len > BK_PACK_MAX_BLOB || sealed_len < BK_SEAL_OVERHEAD)
		return bk_errorf(-EINVAL,
				 "pack writer: invalid blob (type %d, %zu bytes sealed, %zu plain%s)",
				 (int)type, sealed_len, plain_len, w->finished ? ", pack finished" : "");
	if (w->size + sealed_len > BK_PACK_MAX_SIZE / 2 || w->count >= BK_PACK_MAX_ENTRIES)
		return bk_errorf(-EFBIG, "pack writer: pack full");
	if (w->fd < 0 && (r = start(w)) < 0)
		return r;
	if ((r = bk_grow(&w->entries, &w->cap, w->count, sizeof(*w->entries), 256)) < 0)
		return r;
	BkPackEntry *e = &w->entries[w->count];
	e->type = (uint8_t)type;
	memcpy(e->id, id, 32);
	e->offset = (uint32_t)w->size;
	e->sealed_len = (uint32_t)sealed_len;
	e->plain_len = (uint32_t)plain_len;
	if ((r = emit(w, sealed, sealed_len)) < 0)
		return r;
	w->count++;
	return 0;
}

uint64_t bk_pack_writer_size(const BkPackWriter *w) { return w->size; }
size_t bk_pack_writer_count(const BkPackWriter *w) { return w->count; }
const BkPackEntry *bk_pack_writer_entries(const BkPackWriter *w) { return w->entries; }

/* Writes the trailer and footer of a pack with blobs; the file stays open for
 * the id. */
static int write_trailer(BkPackWriter *w, BkSealer *s, const BkKeys *k)
{
	BkEnc e;
	bk_enc_init(&e, (size_t)BK_PACK_MAX_ENTRIES * 64);
	bk_enc_u8(&e, TRAILER_VERSION);
	bk_enc_varint(&e, w->count);
	for (size_t i = 0; i < w->count; i++) {
		bk_enc_u8(&e, w->entries[i].type);
		bk_enc_bytes(&e, w->entries[i].id, 32);
		bk_enc_varint(&e, w->entries[i].offset);
		bk_enc_varint(&e, w->entries[i].sealed_len);
		bk_enc_varint(&e, w->entries[i].plain_len);
	}
	int r = bk_enc_finish(&e);
	uint8_t *sealed = NULL;
	if (r == 0 && !(sealed = malloc(bk_seal_bound(e.len))))
		r = -ENOMEM;
	if (r == 0) {
		uint8_t tid[32], footer[BK_PACK_FOOTER_LEN];
		size_t slen;
		bk_blob_id(k, e.buf, e.len, tid);
		bk_seal(s, k, BK_BLOB_TRAILER, tid, e.buf, e.len, sealed, &slen);
		bk_put_le32(footer, (uint32_t)slen);
		memcpy(footer + 4, tid, 32);
		memcpy(footer + 36, footer_magic, 8);
		if ((r = emit(w, sealed, slen)) == 0)
			r = emit(w, footer, sizeof(footer));
		if (r == 0)
			r = flush_buf(w);
	}
	free(sealed);
	bk_enc_release(&e);
	return r;
}

/* The ids of n (<= BK_BLAKE2B_STREAMS_MAX) written packs, hashed side by side
 * from their files as written, a piece of each at a time (the page cache they
 * were just written to: a copy, not a disk read). */
#define HASH_PIECE (256u << 10)
static int hash_packs(BkPackWriter *const *w, size_t n, uint8_t (*ret_ids)[32])
{
	uint8_t *buf = malloc(n * HASH_PIECE);
	if (!buf)
		return -ENOMEM;
	BkBlake2bStreams st;
	uint64_t len[BK_BLAKE2B_STREAMS_MAX], longest = 0;
	for (size_t i = 0; i < n; i++) {
		len[i] = w[i]->size; /* never 0: a pack has its header and footer */
		longest = BK_MAX(longest, len[i]);
	}
	bk_blake2b_streams_start(&st, n, len);
	int r = 0;
	for (uint64_t off = 0; r == 0 && off < longest; off += HASH_PIECE) {
		const uint8_t *piece[BK_BLAKE2B_STREAMS_MAX] = { 0 };
		for (size_t i = 0; r == 0 && i < n; i++) {
			if (off >= len[i])
				continue; /* hashed whole */
			size_t want = (size_t)BK_MIN((uint64_t)HASH_PIECE, len[i] - off);
			uint8_t *p = buf + i * HASH_PIECE;
			size_t got;
			r = bk_pread_all(w[i]->fd, p, want, off, &got);
			if (r == 0 && got != want)
				r = -EIO;
			if (r < 0)
				r = bk_errorf_code(r, "read back pack %s", w[i]->tmp_path);
			piece[i] = p;
		}
		if (r == 0)
			bk_blake2b_streams_update(&st, piece, HASH_PIECE);
	}
	free(buf);
	if (r == 0)
		memcpy(ret_ids, st.out, n * 32);
	return r;
}

int bk_pack_writers_finish(BkPackWriter *const *w, size_t n, BkSealer *s, const BkKeys *k,
			   uint8_t (*ret_ids)[32], char **ret_tmp_paths)
{
	if (n == 0 || n > BK_PACK_FINISH_MAX)
		return -EINVAL;
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		if (w[i]->failed)
			return bk_errorf(-EIO, "pack writer: an earlier write to %s failed",
					 w[i]->tmp_path);
		if (w[i]->count == 0 || w[i]->finished)
			return -EINVAL;
	}
	for (size_t i = 0; r == 0 && i < n; i++)
		r = write_trailer(w[i], s, k);
	/* the ids not hashed as written: side by side, from the files */
	BkPackWriter *rest[BK_PACK_FINISH_MAX];
	size_t where[BK_PACK_FINISH_MAX], nrest = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (w[i]->hashing) {
			crypto_generichash_final(&w[i]->hash, ret_ids[i], 32);
		} else {
			where[nrest] = i;
			rest[nrest++] = w[i];
		}
	}
	for (size_t at = 0; r == 0 && at < nrest; at += BK_BLAKE2B_STREAMS_MAX) {
		uint8_t ids[BK_BLAKE2B_STREAMS_MAX][32];
		size_t m = BK_MIN(nrest - at, (size_t)BK_BLAKE2B_STREAMS_MAX);
		r = hash_packs(rest + at, m, ids);
		for (size_t j = 0; r == 0 && j < m; j++)
			memcpy(ret_ids[where[at + j]], ids[j], 32);
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		int fd = w[i]->fd;
		w[i]->fd = -1;
		if (close(fd) < 0) {
			w[i]->failed = 1;
			r = bk_errorf_code(-errno, "close %s", w[i]->tmp_path);
		}
	}
	for (size_t i = 0; r == 0 && i < n; i++)
		if (!(ret_tmp_paths[i] = strdup(w[i]->tmp_path))) {
			while (i > 0)
				free(ret_tmp_paths[--i]);
			r = -ENOMEM;
		}
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			w[i]->failed = 1; /* no longer what finish needs: only free is left */
		return r;
	}
	for (size_t i = 0; i < n; i++)
		w[i]->finished = 1;
	return 0;
}

void bk_pack_name(const uint8_t pack_id[32], char out[80])
{
	BkIdHex h = bk_id_hex(pack_id);
	snprintf(out, 80, "data/%.2s/%s", h.s, h.s);
}

int bk_pack_name_parse(const char *name, uint8_t ret_id[32])
{
	if (strncmp(name, "data/", 5) != 0 || strlen(name) != 5 + 3 + BK_ID_HEX_LEN ||
	    name[7] != '/' || strncmp(name + 5, name + 8, 2) != 0 ||
	    strspn(name + 8, "0123456789abcdef") != BK_ID_HEX_LEN)
		return -EINVAL;
	return bk_unhex(ret_id, 32, name + 8);
}

int bk_pack_trailer_decode(const uint8_t *p, size_t len, uint64_t pack_size, BkPackEntry **ret,
			   size_t *ret_n)
{
	BkDec d;
	bk_dec_init(&d, p, len);
	uint8_t version = bk_dec_u8(&d);
	if (!bk_dec_error(&d) && version != TRAILER_VERSION)
		return bk_errorf(BK_E_VERSION, "pack trailer version %u unknown", version);
	uint64_t n = bk_dec_varint(&d);
	/* each entry takes at least 36 bytes: bound the allocation by the input */
	if (bk_dec_error(&d) || n == 0 || n > BK_PACK_MAX_ENTRIES || n > len / 36)
		return bk_errorf(BK_E_CORRUPT, "pack trailer: bad entry count");
	BkPackEntry *e = calloc((size_t)n, sizeof(*e));
	if (!e)
		return -ENOMEM;
	uint64_t end = BK_PACK_HEADER_LEN;
	uint64_t limit = pack_size >= BK_PACK_FOOTER_LEN ? pack_size - BK_PACK_FOOTER_LEN : 0;
	for (size_t i = 0; i < n; i++) {
		e[i].type = bk_dec_u8(&d);
		const uint8_t *id = bk_dec_bytes(&d, 32);
		uint64_t off = bk_dec_varint(&d), sl = bk_dec_varint(&d), pl = bk_dec_varint(&d);
		if (bk_dec_error(&d))
			break;
		if (e[i].type < BK_BLOB_DATA || e[i].type > BK_BLOB_WAL || e[i].type == BK_BLOB_TRAILER ||
		    off > UINT32_MAX || sl > UINT32_MAX || off < end || sl < BK_SEAL_OVERHEAD || sl > limit || off > limit - sl ||
		    pl > BK_PACK_MAX_BLOB) {
			free(e);
			return bk_errorf(BK_E_CORRUPT, "pack trailer: entry %zu out of bounds", i);
		}
		memcpy(e[i].id, id, 32);
		e[i].offset = (uint32_t)off;
		e[i].sealed_len = (uint32_t)sl;
		e[i].plain_len = (uint32_t)pl;
		end = off + sl;
	}
	if (!bk_dec_done(&d)) {
		free(e);
		return bk_errorf(BK_E_CORRUPT, "pack trailer: malformed");
	}
	*ret = e;
	*ret_n = (size_t)n;
	return 0;
}

int bk_pack_read_trailer(BkBackend *be, const char *name, uint64_t size, BkSealer *s,
			 const BkKeys *k, BkPackEntry **ret, size_t *ret_n)
{
	uint8_t footer[BK_PACK_FOOTER_LEN], head[BK_PACK_HEADER_LEN];
	size_t n;
	if (size < BK_PACK_HEADER_LEN + BK_PACK_FOOTER_LEN || size > BK_PACK_MAX_SIZE)
		return bk_errorf(BK_E_CORRUPT, "pack %s: impossible size %llu", name,
				 (unsigned long long)size);
	int r = bk_backend_get(be, name, 0, sizeof(head), head, &n);
	if (r < 0)
		return r;
	if (n != sizeof(head) || memcmp(head, header_magic, 7) != 0)
		return bk_errorf(BK_E_CORRUPT, "pack %s: bad header magic", name);
	if (head[7] != 1)
		return bk_errorf(BK_E_VERSION, "pack %s: version %u unknown", name, head[7]);
	r = bk_backend_get(be, name, size - BK_PACK_FOOTER_LEN, sizeof(footer), footer, &n);
	if (r < 0)
		return r;
	if (n != sizeof(footer) || memcmp(footer + 36, footer_magic, 8) != 0)
		return bk_errorf(BK_E_CORRUPT, "pack %s: bad footer at offset %llu", name,
				 (unsigned long long)(size - BK_PACK_FOOTER_LEN));
	uint32_t tlen = bk_get_le32(footer);
	if (tlen < BK_SEAL_OVERHEAD || tlen > size - BK_PACK_HEADER_LEN - BK_PACK_FOOTER_LEN)
		return bk_errorf(BK_E_CORRUPT, "pack %s: bad trailer length", name);
	uint64_t toff = size - BK_PACK_FOOTER_LEN - tlen;
	uint8_t *sealed = malloc(tlen);
	if (!sealed)
		return -ENOMEM;
	r = bk_backend_get(be, name, toff, tlen, sealed, &n);
	if (r == 0 && n != tlen)
		r = bk_errorf(BK_E_CORRUPT, "pack %s: short read of trailer", name);
	uint8_t *plain = NULL;
	size_t plen = 0;
	if (r == 0) {
		r = bk_open(s, k, BK_BLOB_TRAILER, footer + 4, sealed, tlen, (size_t)BK_PACK_MAX_ENTRIES * 64,
			    &plain, &plen);
		if (r < 0)
			r = bk_error_wrap(r, "pack %s: trailer at offset %llu", name,
					  (unsigned long long)toff);
	}
	free(sealed);
	if (r == 0) {
		r = bk_pack_trailer_decode(plain, plen, toff + BK_PACK_FOOTER_LEN, ret, ret_n);
		if (r < 0)
			r = bk_error_wrap(r, "pack %s", name);
	}
	free(plain);
	return r;
}
