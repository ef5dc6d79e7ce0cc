#include "store/repo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/error.h"
#include "store/fs.h"
#include "store/util.h"

#define CONFIG_MAX 4096

void bk_repo_params_default(BkRepoParams *p)
{
	*p = (BkRepoParams){ .chunk_min = 16 << 10, .chunk_avg = 64 << 10, .chunk_max = 256 << 10,
			     .zstd_level = 3 };
}

/* ---- config ---- */

static int config_encode(const uint8_t id[BK_REPO_ID_LEN], const BkRepoParams *p, char *out,
			 size_t cap)
{
	char idhex[2 * BK_REPO_ID_LEN + 1];
	bk_hex(idhex, id, BK_REPO_ID_LEN);
	int n = snprintf(out, cap,
			 "bunker-repository %d\nid %s\nchunk-min %" PRIu32 "\nchunk-avg %" PRIu32
			 "\nchunk-max %" PRIu32 "\ncompression zstd:%d\n",
			 BK_REPO_VERSION, idhex, p->chunk_min, p->chunk_avg, p->chunk_max,
			 p->zstd_level);
	uint8_t sum[32];
	crypto_generichash(sum, 32, (const uint8_t *)out, (size_t)n, NULL, 0);
	return n + snprintf(out + n, cap - (size_t)n, "checksum %s\n", bk_id_hex(sum).s);
}

static int config_decode(const char *text, size_t len, uint8_t id[BK_REPO_ID_LEN], BkRepoParams *p)
{
	const char *sumline = strstr(text, "checksum ");
	if (!sumline || strlen(text) != len)
		return bk_errorf(BK_E_CORRUPT, "config: no checksum line");
	uint8_t sum[32], want[32];
	crypto_generichash(sum, 32, (const uint8_t *)text, (size_t)(sumline - text), NULL, 0);
	char hex[65];
	if (sscanf(sumline, "checksum %64s", hex) != 1 || bk_unhex(want, 32, hex) < 0 ||
	    sodium_memcmp(sum, want, 32) != 0)
		return bk_errorf(BK_E_CORRUPT, "config: checksum mismatch");
	int version;
	char idhex[64];
	int level;
	if (sscanf(text, "bunker-repository %d\n", &version) != 1)
		return bk_errorf(BK_E_CORRUPT, "config: not a bunker repository");
	if (version != BK_REPO_VERSION)
		return bk_errorf(BK_E_VERSION, "config: repository format %d unknown (this build knows %d)",
				 version, BK_REPO_VERSION);
	if (sscanf(text,
		   "bunker-repository %*d\nid %33s\nchunk-min %" SCNu32 "\nchunk-avg %" SCNu32
		   "\nchunk-max %" SCNu32 "\ncompression zstd:%d\n",
		   idhex, &p->chunk_min, &p->chunk_avg, &p->chunk_max, &level) != 5 ||
	    bk_unhex(id, BK_REPO_ID_LEN, idhex) < 0 || level < 0 || level > 19)
		return bk_errorf(BK_E_CORRUPT, "config: malformed");
	p->zstd_level = level;
	return 0;
}

/* ---- thread-local sealer ---- */

static pthread_key_t sealer_key;
static pthread_once_t sealer_once = PTHREAD_ONCE_INIT;

static void sealer_destroy(void *p) { bk_sealer_free(p); }
static void sealer_key_init(void) { pthread_key_create(&sealer_key, sealer_destroy); }

BkSealer *bk_repo_sealer(BkRepo *r)
{
	pthread_once(&sealer_once, sealer_key_init);
	BkSealer *s = pthread_getspecific(sealer_key);
	if (!s && bk_sealer_new(r->params.zstd_level, &s) == 0)
		pthread_setspecific(sealer_key, s);
	return s;
}

/* ---- open / create ---- */

static int repo_alloc(const char *path, BkRepo **ret)
{
	BkRepo *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->path = strdup(path);
	r->tmp_dir = bk_path_join(path, "tmp");
	if (!r->path || !r->tmp_dir) {
		bk_repo_close(r);
		return -ENOMEM;
	}
	int e = bk_backend_local_new(path, &r->be);
	if (e < 0) {
		bk_repo_close(r);
		return e;
	}
	*ret = r;
	return 0;
}

/* The index and tmp/ that LMDB and mkdir may just have created: when root opens
 * another user's repository they must belong to that user too (see backend.h),
 * and LMDB's files must be group-writable as every repository file is (LMDB
 * creates them 0660 masked by the umask, and PostgreSQL runs archive_command with
 * umask 077). Each change is made durable before the command goes on (found by
 * review: a command that writes nothing else, `snapshots` after the index was
 * removed, left them to a power cut, and archive_command then found an index of
 * root's). All by descriptor, opened without following a link: by path, a link
 * another user swapped in after the check had root chown or chmod the file it
 * leads to (found by review). */
static int give_at(int at, const char *name, const char *label, const struct stat *root,
		   bool give, bool file)
{
	/* O_PATH: closing any other descriptor of lock.mdb would drop this process's
	 * fcntl locks on it, LMDB's shared one among them, and the next process to open
	 * the index would then take itself for the only one and reset the lock table
	 * under the others' transactions (found by a stress test: concurrent backups
	 * lost index entries) */
	int fd = openat(at, name, O_PATH | O_NOFOLLOW | O_CLOEXEC | (file ? 0 : O_DIRECTORY));
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR
			       ? 0 /* (a link is not followed: bk_index_open refuses one) */
			       : bk_errorf_code(-errno, "open %s", label);
	struct stat st;
	bool changed = false;
	int e = fstat(fd, &st) < 0 ? bk_errorf_code(-errno, "stat %s", label) : 0;
	if (e == 0 && file && !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	if (e == 0 && give && (st.st_uid != root->st_uid || st.st_gid != root->st_gid)) {
		if (fchownat(fd, "", root->st_uid, root->st_gid, AT_EMPTY_PATH) < 0)
			e = bk_errorf_code(-errno, "chown %s", label);
		changed = true;
	}
	if (e == 0 && file && (give || st.st_uid == geteuid()) && (st.st_mode & 0660) != 0660) {
		char proc[64]; /* (the file itself, never a link put in its place) */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		mode_t mode = (st.st_mode & 07777) | 0660;
		if (chmod(proc, mode) < 0 && (errno != ENOENT || fchmodat(at, name, mode, 0) < 0))
			e = bk_errorf_code(-errno, "chmod %s", label);
		changed = true;
	}
	/* (an O_PATH descriptor cannot be synced: its file system is) */
	if (e == 0 && changed && syncfs(at) < 0)
		e = bk_errorf_code(-errno, "sync %s", label);
	close(fd);
	return e;
}

static int give_index(BkRepo *r, const char *idx, const char *tmp)
{
	struct stat root;
	int rootfd = open(r->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0 || fstat(rootfd, &root) < 0) {
		int e = bk_errorf_code(-errno, "open %s", r->path);
		if (rootfd >= 0)
			close(rootfd);
		return e;
	}
	bool give = geteuid() == 0 && !(root.st_uid == 0 && root.st_gid == 0);
	int e = give_at(rootfd, "index", idx, &root, give, false);
	if (e == 0)
		e = give_at(rootfd, "tmp", tmp, &root, give, false);
	int idxfd = e < 0 ? -1 : openat(rootfd, "index", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	const char *files[] = { "data.mdb", "lock.mdb" };
	for (size_t i = 0; idxfd >= 0 && e == 0 && i < 2; i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", idx, files[i]);
		e = give_at(idxfd, files[i], p, &root, give, true);
	}
	if (idxfd >= 0)
		close(idxfd);
	close(rootfd);
	return e;
}

static int repo_finish_open(BkRepo *r, const uint8_t master[BK_KEY_LEN], const uint8_t id[16],
			    unsigned flags)
{
	int e = bk_keys_new(master, id, &r->keys);
	if (e < 0)
		return e;
	e = bk_fastcdc_init(&r->cdc, r->keys->chunker_seed, r->params.chunk_min, r->params.chunk_avg,
			    r->params.chunk_max);
	if (e < 0)
		return bk_errorf(BK_E_CORRUPT, "config: invalid chunk sizes");
	char *idx = bk_path_join(r->path, "index");
	if (!idx)
		return -ENOMEM;
	e = bk_index_open(idx, &r->index);
	if (e == BK_E_CORRUPT && (flags & BK_REPO_FRESH_INDEX)) {
		char aside[4096];
		snprintf(aside, sizeof(aside), "%s.damaged-%lld", idx, (long long)(bk_now_us() / 1000000));
		if (rename(idx, aside) < 0)
			e = bk_errorf_code(-errno, "move the damaged index %s aside", idx);
		else
			e = bk_index_open(idx, &r->index);
	}
	/* a repository read-only here is read as it is: nothing to create or give */
	if (e == 0 && !bk_index_readonly(r->index)) {
		e = bk_mkdir_p(r->tmp_dir, 0770);
		if (e == 0)
			e = give_index(r, idx, r->tmp_dir);
	}
	free(idx);
	return e;
}

int bk_repo_create(const char *path, const BkSecret *secret, const BkRepoParams *p, BkRepo **ret)
{
	BkFastCdc probe;
	uint8_t zero[32] = { 0 };
	if (bk_fastcdc_init(&probe, zero, p->chunk_min, p->chunk_avg, p->chunk_max) < 0)
		return bk_errorf(BK_E_USAGE, "invalid chunk sizes %u/%u/%u", p->chunk_min, p->chunk_avg,
				 p->chunk_max);
	struct stat st;
	char *cfg = bk_path_join(path, "config");
	if (!cfg)
		return -ENOMEM;
	int exists = stat(cfg, &st) == 0;
	free(cfg);
	if (exists)
		return bk_errorf(-EEXIST, "%s already holds a repository", path);
	int e = bk_mkdir_p(path, 0770);
	if (e < 0)
		return e;
	/* setgid: what any user writes here takes the repository's group, not that
	 * user's own (found by a helper's exploration: a group member's backup made
	 * data/xx of its own group, and archive_command, postgres's, failed on it from
	 * then on); the directories made below inherit it */
	if (chmod(path, 02770) < 0)
		return bk_errorf_code(-errno, "chmod %s", path);

	BkRepo *r;
	if ((e = repo_alloc(path, &r)) < 0)
		return e;
	r->params = *p;
	uint8_t id[BK_REPO_ID_LEN];
	randombytes_buf(id, sizeof(id));
	uint8_t *master = sodium_malloc(BK_KEY_LEN);
	if (!master) {
		bk_repo_close(r);
		return -ENOMEM;
	}
	randombytes_buf(master, BK_KEY_LEN);
	e = repo_finish_open(r, master, id, 0);
	sodium_free(master);
	char slot[17];
	if (e == 0)
		e = bk_repo_key_add(r, secret, slot);
	char text[CONFIG_MAX];
	/* config last: a directory without it is not a repository yet */
	if (e == 0) {
		int n = config_encode(id, p, text, sizeof(text));
		e = bk_backend_put(r->be, "config", text, (size_t)n, true);
	}
	if (e < 0) {
		bk_repo_close(r);
		return e;
	}
	*ret = r;
	return 0;
}

typedef struct {
	BkRepo *r;
	const BkSecret *secret;
	const uint8_t *id;
	uint8_t *master;
	int found, corrupt, intact;
} SlotTry;

static int try_slot(void *ud, const char *name, uint64_t size)
{
	SlotTry *t = ud;
	if (t->found || size > 4096)
		return 0;
	uint8_t *buf;
	size_t len;
	int e = bk_backend_get_all(t->r->be, name, 4096, &buf, &len);
	if (e < 0)
		return e;
	e = bk_keyslot_open(buf, len, t->secret, t->id, t->master);
	free(buf);
	if (e == 0)
		t->found = 1;
	else if (e == BK_E_CORRUPT || e == BK_E_VERSION)
		t->corrupt++;
	else if (e != BK_E_BADKEY)
		return e;
	return 0;
}

int bk_repo_open(const char *path, const BkSecret *secret, BkRepo **ret)
{
	return bk_repo_open_ex(path, secret, 0, ret);
}

int bk_repo_open_ex(const char *path, const BkSecret *secret, unsigned flags, BkRepo **ret)
{
	BkRepo *r;
	int e = repo_alloc(path, &r);
	if (e < 0)
		return e;
	uint8_t *text;
	size_t len;
	e = bk_backend_get_all(r->be, "config", CONFIG_MAX, &text, &len);
	struct stat st;
	if (e == -ENOENT && stat(path, &st) < 0)
		e = bk_errorf_code(-errno, "repository %s", path);
	else if (e == -ENOENT)
		e = bk_errorf(-ENOENT, "%s is not a bunker repository (no config)", path);
	uint8_t id[BK_REPO_ID_LEN];
	if (e == 0) {
		char copy[CONFIG_MAX + 1]; /* the object is not NUL-terminated */
		memcpy(copy, text, len);
		copy[len] = '\0';
		free(text);
		e = config_decode(copy, len, id, &r->params);
	}
	uint8_t *master = sodium_malloc(BK_KEY_LEN);
	if (e == 0 && !master)
		e = -ENOMEM;
	if (e == 0) {
		SlotTry t = { .r = r, .secret = secret, .id = id, .master = master };
		e = bk_backend_list(r->be, "keys", try_slot, &t);
		if (e == 0 && !t.found)
			e = t.corrupt ? bk_errorf(BK_E_CORRUPT, "%s: %d damaged key slot(s) and no other slot opens with this %s",
						  path, t.corrupt, secret->kind == BK_SECRET_KEYFILE ? "key file" : "passphrase")
				      : bk_errorf(BK_E_BADKEY, "%s: wrong %s", path,
						  secret->kind == BK_SECRET_KEYFILE ? "key file" : "passphrase");
	}
	if (e == 0)
		e = repo_finish_open(r, master, id, flags);
	if (master)
		sodium_free(master);
	if (e < 0) {
		bk_repo_close(r);
		return e;
	}
	*ret = r;
	return 0;
}

void bk_repo_close(BkRepo *r)
{
	if (!r)
		return;
	bk_index_close(r->index);
	bk_backend_free(r->be);
	bk_keys_free(r->keys);
	free(r->tmp_dir);
	free(r->path);
	free(r);
}

/* ---- key slots ---- */

int bk_repo_key_add(BkRepo *r, const BkSecret *secret, char ret_slot[17])
{
	uint8_t slot[BK_KEYSLOT_LEN], sid[8];
	int e = bk_keyslot_create(secret, r->keys->master, r->keys->repo_id, slot);
	if (e < 0)
		return e;
	randombytes_buf(sid, sizeof(sid));
	bk_hex(ret_slot, sid, sizeof(sid));
	char name[32];
	snprintf(name, sizeof(name), "keys/%s", ret_slot);
	return bk_backend_put(r->be, name, slot, sizeof(slot), true);
}

typedef struct {
	BkRepo *r;
	BkKeyFn cb;
	void *ud;
	int intact;
	const char *skip;
} KeyList;

static int list_slot(void *ud, const char *name, uint64_t size)
{
	KeyList *l = ud;
	uint8_t *buf = NULL;
	size_t len = 0;
	int e = size > 4096 ? BK_E_CORRUPT : bk_backend_get_all(l->r->be, name, 4096, &buf, &len);
	if (e < 0 && e != BK_E_CORRUPT)
		return e;
	if (e == 0)
		e = bk_keyslot_verify(buf, len);
	BkSecretKind kind = 0;
	int64_t created = 0;
	if (e == 0) {
		bk_keyslot_info(buf, &kind, &created);
		if (!l->skip || strcmp(name + 5, l->skip) != 0)
			l->intact++;
	}
	free(buf);
	return l->cb ? l->cb(l->ud, name + 5, kind, created, e) : 0;
}

int bk_repo_key_list(BkRepo *r, BkKeyFn cb, void *ud)
{
	KeyList l = { .r = r, .cb = cb, .ud = ud };
	return bk_backend_list(r->be, "keys", list_slot, &l);
}

int bk_repo_key_remove(BkRepo *r, const char *slot)
{
	char name[64];
	if (strlen(slot) != 16 || strspn(slot, "0123456789abcdef") != 16)
		return bk_errorf(-ENOENT, "no key slot %s", slot);
	snprintf(name, sizeof(name), "keys/%s", slot);
	uint64_t size;
	if (bk_backend_size(r->be, name, &size) == -ENOENT)
		return bk_errorf(-ENOENT, "no key slot %s", slot);
	KeyList l = { .r = r, .skip = slot };
	int e = bk_backend_list(r->be, "keys", list_slot, &l);
	if (e < 0)
		return e;
	if (l.intact == 0)
		return bk_errorf(-EBUSY, "key slot %s is the last intact one: add another first", slot);
	return bk_backend_remove(r->be, name);
}

/* ---- blobs and records ---- */

static int locate(BkRepo *r, BkBlobType type, const uint8_t id[32], BkBlobLoc *loc)
{
	int e = bk_index_get(r->index, id, loc);
	if (e == -ENOENT)
		return bk_errorf(-ENOENT, "blob %s is not in the index (if the index was lost or "
				 "damaged, `bunker repair index` rebuilds it from the packs)",
				 bk_id_hex(id).s);
	if (e < 0)
		return e;
	/* A blob id covers the plaintext only, so the same bytes stored as another
	 * type are the same blob (an empty directory's tree and a file holding those
	 * two bytes): the writer keeps one copy, under the type it met first. It is
	 * opened under its stored type (loc->type, bound by the AEAD) and its id
	 * checked, so the bytes returned are still the id's. */
	(void)type;
	/* the index is a cache, not authenticated: no allocation larger than a blob */
	if (loc->plain_len <= BK_PACK_MAX_BLOB && loc->sealed_len <= bk_seal_bound(BK_PACK_MAX_BLOB))
		return 0;
	char pname[80];
	bk_pack_name(loc->pack, pname);
	return bk_errorf(BK_E_CORRUPT, "blob %s in pack %s at offset %u: index says %u bytes",
			 bk_id_hex(id).s, pname, loc->offset, loc->plain_len);
}

/* Reads the sealed bytes at loc into this thread's scratch and opens them into
 * out (loc->plain_len bytes), without checking the id: the callers do. */
static int read_loc(BkRepo *r, const uint8_t id[32], const BkBlobLoc *loc, uint8_t *out)
{
	char pname[80];
	bk_pack_name(loc->pack, pname);
	BkSealer *s = bk_repo_sealer(r);
	uint8_t *sealed = s ? bk_sealer_scratch(s, loc->sealed_len) : NULL;
	if (!sealed)
		return -ENOMEM;
	size_t n, len;
	int e = bk_backend_get(r->be, pname, loc->offset, loc->sealed_len, sealed, &n);
	if (e == -ENOENT)
		return bk_errorf(BK_E_CORRUPT, "pack %s is missing (blob %s)", pname, bk_id_hex(id).s);
	if (e < 0)
		return e;
	if (n != loc->sealed_len)
		return bk_errorf(BK_E_CORRUPT, "pack %s: truncated at offset %u", pname, loc->offset);
	e = bk_open_into_unverified(s, r->keys, loc->type, id, sealed, n, out, loc->plain_len, &len);
	sodium_memzero(sealed, n); /* decrypted in place: plaintext (compressed) */
	if (e < 0)
		return bk_error_wrap(e, "pack %s offset %u", pname, loc->offset);
	if (len != loc->plain_len) {
		sodium_memzero(out, len); /* unverified plaintext */
		return bk_errorf(BK_E_CORRUPT, "pack %s offset %u: blob %s has the wrong length", pname,
				 loc->offset, bk_id_hex(id).s);
	}
	return 0;
}

/* Compares the ids of n blobs read back (plain[i], loc[i].plain_len bytes) with
 * the ids they were read under (invariant 4). */
static int check_ids(BkRepo *r, size_t n, const uint8_t (*ids)[32], const BkBlobLoc *loc,
		     const uint8_t *const *plain)
{
	size_t len[BK_REPO_BATCH_MAX] = { 0 };
	uint8_t got[BK_REPO_BATCH_MAX][32];
	for (size_t i = 0; i < n; i++)
		len[i] = loc[i].plain_len;
	bk_blob_ids(r->keys, n, plain, len, got);
	for (size_t i = 0; i < n; i++) {
		if (sodium_memcmp(got[i], ids[i], 32) != 0) {
			char pname[80];
			bk_pack_name(loc[i].pack, pname);
			return bk_errorf(BK_E_CORRUPT,
					 "pack %s offset %u: blob %s: content does not match its id",
					 pname, loc[i].offset, bk_id_hex(ids[i]).s);
		}
	}
	return 0;
}

int bk_repo_read_blob(void *repo, BkBlobType type, const uint8_t id[32], uint8_t **ret,
		      size_t *ret_len)
{
	BkRepo *r = repo;
	BkBlobLoc loc;
	int e = locate(r, type, id, &loc);
	if (e < 0)
		return e;
	uint8_t *out = malloc(loc.plain_len ? loc.plain_len : 1);
	if (!out)
		return -ENOMEM;
	const uint8_t *plain = out;
	if ((e = read_loc(r, id, &loc, out)) == 0)
		e = check_ids(r, 1, (const uint8_t(*)[32])id, &loc, &plain);
	if (e < 0) {
		sodium_memzero(out, loc.plain_len);
		free(out);
		return e;
	}
	*ret = out;
	*ret_len = loc.plain_len;
	return 0;
}

int bk_repo_read_locs_into(BkRepo *r, size_t n, const uint8_t (*ids)[32], const BkBlobLoc *loc,
			   uint8_t *out)
{
	if (n > BK_REPO_BATCH_MAX)
		return bk_errorf(-EINVAL, "%zu blobs in one read, at most %d", n, BK_REPO_BATCH_MAX);
	const uint8_t *plain[BK_REPO_BATCH_MAX] = { 0 };
	uint8_t *p = out;
	int e = 0;
	for (size_t i = 0; e == 0 && i < n; i++) {
		if ((e = read_loc(r, ids[i], &loc[i], p)) < 0)
			break;
		plain[i] = p;
		p += loc[i].plain_len;
	}
	if (e == 0)
		e = check_ids(r, n, ids, loc, plain);
	if (e < 0) /* nothing unverified is left readable */
		sodium_memzero(out, (size_t)(p - out));
	return e;
}

int bk_repo_read_blobs_into(BkRepo *r, BkBlobType type, size_t n, const uint8_t (*ids)[32],
			    const uint64_t *sizes, uint8_t *out)
{
	if (n > BK_REPO_BATCH_MAX)
		return bk_errorf(-EINVAL, "%zu blobs in one read, at most %d", n, BK_REPO_BATCH_MAX);
	BkBlobLoc loc[BK_REPO_BATCH_MAX];
	for (size_t i = 0; i < n; i++) {
		int e = locate(r, type, ids[i], &loc[i]);
		if (e < 0)
			return e;
		if (loc[i].plain_len != sizes[i]) {
			char pname[80];
			bk_pack_name(loc[i].pack, pname);
			return bk_errorf(BK_E_CORRUPT, "blob %s in pack %s at offset %u: %u bytes, %llu expected",
					 bk_id_hex(ids[i]).s, pname, loc[i].offset, loc[i].plain_len,
					 (unsigned long long)sizes[i]);
		}
	}
	return bk_repo_read_locs_into(r, n, ids, loc, out);
}

/* Seals plain under id and stores it, create-only, as object name. */
static int seal_put(BkRepo *r, const char *name, BkBlobType type, const uint8_t id[32],
		    const void *plain, size_t len)
{
	BkSealer *s = bk_repo_sealer(r);
	if (!s)
		return -ENOMEM;
	uint8_t *sealed = malloc(bk_seal_bound(len));
	if (!sealed)
		return -ENOMEM;
	size_t slen;
	bk_seal(s, r->keys, type, id, plain, len, sealed, &slen);
	int e = bk_backend_put(r->be, name, sealed, slen, true);
	free(sealed);
	return e;
}

/* Reads object name and opens it under id; named: id is the name's hash, so the
 * content is not checked against it. */
static int get_open(BkRepo *r, const char *name, BkBlobType type, const uint8_t id[32],
		    bool named, uint8_t **ret, size_t *ret_len)
{
	uint8_t *sealed;
	size_t slen;
	int e = bk_backend_get_all(r->be, name, bk_seal_bound(BK_RECORD_MAX), &sealed, &slen);
	if (e < 0)
		return e;
	BkSealer *s = bk_repo_sealer(r);
	if (!s)
		e = -ENOMEM;
	else if (named)
		e = bk_open_named(s, r->keys, type, id, sealed, slen, BK_RECORD_MAX, ret, ret_len);
	else
		e = bk_open(s, r->keys, type, id, sealed, slen, BK_RECORD_MAX, ret, ret_len);
	if (e < 0 && e != -ENOMEM)
		bk_error_wrap(e, "record %s", name);
	free(sealed);
	return e;
}

int bk_repo_put_record(BkRepo *r, const char *dir, BkBlobType type, const void *plain,
		       size_t len, uint8_t ret_id[32])
{
	uint8_t id[32];
	bk_blob_id(r->keys, plain, len, id);
	char name[128];
	snprintf(name, sizeof(name), "%s/%s", dir, bk_id_hex(id).s);
	int e = seal_put(r, name, type, id, plain, len);
	if (e == -EEXIST)
		e = 0; /* same id = same plaintext: already stored */
	if (e == 0)
		memcpy(ret_id, id, 32);
	return e;
}

int bk_repo_get_record(BkRepo *r, const char *dir, BkBlobType type, const uint8_t id[32],
		       uint8_t **ret, size_t *ret_len)
{
	char name[128];
	snprintf(name, sizeof(name), "%s/%s", dir, bk_id_hex(id).s);
	return get_open(r, name, type, id, false, ret, ret_len);
}

int bk_repo_put_named(BkRepo *r, const char *name, BkBlobType type, const void *plain,
		      size_t len)
{
	uint8_t id[32];
	bk_blob_id(r->keys, name, strlen(name), id);
	return seal_put(r, name, type, id, plain, len);
}

int bk_repo_get_named(BkRepo *r, const char *name, BkBlobType type, uint8_t **ret,
		      size_t *ret_len)
{
	uint8_t id[32];
	bk_blob_id(r->keys, name, strlen(name), id);
	return get_open(r, name, type, id, true, ret, ret_len);
}
