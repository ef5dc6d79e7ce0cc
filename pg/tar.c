#include "pg/tar.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/error.h"
#include "store/util.h"

/* ustar header field offsets and lengths. */
#define H_NAME 0
#define H_NAME_LEN 100
#define H_MODE 100
#define H_UID 108
#define H_GID 116
#define H_SIZE 124
#define H_MTIME 136
#define H_CHKSUM 148
#define H_TYPE 156
#define H_LINK 157
#define H_LINK_LEN 100
#define H_MAGIC 257
#define H_PREFIX 345
#define H_PREFIX_LEN 155

typedef enum {
	ST_HEADER, /* collecting a 512-byte header block */
	ST_DATA,   /* passing a regular file's bytes through */
	ST_META,   /* collecting an extended header's data ('L', 'K', 'x', 'g') */
	ST_PAD,    /* skipping zero padding up to the next block boundary */
	ST_END,    /* after the end marker: only zero bytes allowed */
	ST_DONE,   /* finish() succeeded */
} State;

struct BkTarParser {
	BkTarCallbacks cb;
	void *ctx;
	unsigned flags;
	int err;
	State state;

	uint64_t offset;  /* bytes consumed */
	uint64_t entries; /* entries completed */

	uint8_t block[BK_TAR_BLOCK];
	size_t block_len;
	uint64_t block_start; /* archive offset of the block being collected */
	unsigned zero_blocks; /* consecutive zero blocks seen */

	uint64_t remaining; /* ST_DATA: file bytes still to pass; ST_PAD: padding bytes */
	bool in_entry;      /* entry_start ran; entry_end is due after the padding */
	uint64_t ext_start; /* archive offset of the first extended header of this entry */

	/* ST_META */
	char meta_type;
	uint8_t *meta; /* BK_TAR_META_MAX bytes, allocated on first use */
	size_t meta_len, meta_need;

	/* Values from extended headers, applied to the next real entry. */
	bool pending;
	bool x_path, x_link, x_size, x_mtime, x_uid, x_gid;
	uint64_t x_size_v, x_uid_v, x_gid_v;
	int64_t x_mtime_v;
	char x_path_v[BK_TAR_PATH_MAX];
	char x_link_v[BK_TAR_PATH_MAX];

	/* The current entry; its strings point at path/link below. */
	BkTarEntry entry;
	char path[BK_TAR_PATH_MAX];
	char link[BK_TAR_PATH_MAX];
};

static int fail(BkTarParser *p, int code)
{
	p->err = code;
	return code;
}

static int corrupt(BkTarParser *p, uint64_t off, const char *msg)
{
	return fail(p, bk_errorf(BK_E_CORRUPT, "tar at offset %llu: %s", (unsigned long long)off, msg));
}

int bk_tar_parser_new(const BkTarCallbacks *cb, void *ctx, unsigned flags, BkTarParser **ret)
{
	BkTarParser *p = calloc(1, sizeof(*p));
	if (!p)
		return bk_errorf(-ENOMEM, "tar parser: out of memory");
	if (cb)
		p->cb = *cb;
	p->ctx = ctx;
	p->flags = flags;
	p->state = ST_HEADER;
	*ret = p;
	return 0;
}

void bk_tar_parser_free(BkTarParser *p)
{
	if (!p)
		return;
	free(p->meta);
	free(p);
}

uint64_t bk_tar_parser_offset(const BkTarParser *p) { return p->offset; }
uint64_t bk_tar_parser_entries(const BkTarParser *p) { return p->entries; }

/* Numeric header fields: octal digits with optional leading spaces and trailing
 * spaces/NULs, or GNU base-256 (first byte 0x80 positive, 0xff negative). A
 * signed field (mtime) marked 0x80 may also hold a negative number in its last 8
 * bytes, as PostgreSQL writes a time before 1970: its print_tar_number takes the
 * time_t as a uint64 (found by a helper's exploration: a file dated 1969 failed
 * the whole base backup, "bad numeric field", exit 5). */
static bool parse_number(const uint8_t *f, size_t n, bool is_signed, int64_t *ret)
{
	if (f[0] == 0x80 || f[0] == 0xff) {
		bool neg = f[0] == 0xff;
		if (neg && !is_signed)
			return false;
		/* The value is the whole field as a big-endian two's complement number
		 * (with the marker bit as part of the sign for 0xff); it must fit 63 bits. */
		uint64_t v = 0;
		size_t i = 1;
		for (; i < n && n - i > 8; i++)
			if (f[i] != (neg ? 0xff : 0x00))
				return false;
		for (; i < n; i++)
			v = (v << 8) | f[i];
		if (neg) {
			if (n - 1 < 8) {
				/* sign-extend a short field */
				v |= ~UINT64_C(0) << (8 * (n - 1));
			}
			if (!(v & (UINT64_C(1) << 63)))
				return false;
		} else if ((v & (UINT64_C(1) << 63)) && !(is_signed && n - 1 >= 8)) {
			return false;
		}
		*ret = (int64_t)v;
		return true;
	}
	size_t i = 0;
	while (i < n && f[i] == ' ')
		i++;
	uint64_t v = 0;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return false;
		v = (v << 3) | (uint64_t)(f[i] - '0');
	}
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return false;
	*ret = (int64_t)v;
	return true;
}

static bool parse_unsigned(const uint8_t *f, size_t n, uint64_t *ret)
{
	int64_t v;
	if (!parse_number(f, n, false, &v) || v < 0)
		return false;
	*ret = (uint64_t)v;
	return true;
}

static bool checksum_ok(const uint8_t *b)
{
	uint64_t want;
	if (!parse_unsigned(b + H_CHKSUM, 8, &want))
		return false;
	uint64_t usum = 0;
	int64_t ssum = 0;
	for (size_t i = 0; i < BK_TAR_BLOCK; i++) {
		uint8_t c = (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' ' : b[i];
		usum += c;
		ssum += (int8_t)c;
	}
	return want == usum || (int64_t)want == ssum;
}

static bool is_zero(const uint8_t *b, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

/* Copies a NUL-padded fixed field as a C string. */
static size_t field_str(char *out, const uint8_t *f, size_t n)
{
	const uint8_t *z = memchr(f, '\0', n);
	size_t len = z ? (size_t)(z - f) : n;
	memcpy(out, f, len);
	out[len] = '\0';
	return len;
}

/* Normalises an archive path into out (BK_TAR_PATH_MAX): drops empty and "."
 * components, refuses absolute paths and "..". The root becomes ".". */
static int normalize_path(BkTarParser *p, uint64_t off, const char *in, char *out)
{
	size_t o = 0;
	if (in[0] == '\0')
		return corrupt(p, off, "empty path");
	if (in[0] == '/')
		return fail(p, bk_errorf(BK_E_CORRUPT, "tar at offset %llu: absolute path \"%.200s\"",
		                         (unsigned long long)off, in));
	const char *s = in;
	while (*s) {
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		if (n == 0 || (n == 1 && s[0] == '.')) {
			/* skip */
		} else if (n == 2 && s[0] == '.' && s[1] == '.') {
			return fail(p, bk_errorf(BK_E_CORRUPT,
			                         "tar at offset %llu: \"..\" in path \"%.200s\"",
			                         (unsigned long long)off, in));
		} else {
			if (o)
				out[o++] = '/';
			memcpy(out + o, s, n); /* o + n <= strlen(in) < BK_TAR_PATH_MAX */
			o += n;
		}
		s += n;
		if (*s == '/')
			s++;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return 0;
}

static void clear_pending(BkTarParser *p)
{
	p->pending = false;
	p->x_path = p->x_link = p->x_size = p->x_mtime = p->x_uid = p->x_gid = false;
}

static int call_end(BkTarParser *p)
{
	p->in_entry = false;
	p->entries++;
	if (p->cb.entry_end) {
		int r = p->cb.entry_end(p->ctx, &p->entry);
		if (r < 0)
			return fail(p, r);
	}
	return 0;
}

/* Called when a data or meta section (and its padding) is fully consumed. */
static int section_done(BkTarParser *p)
{
	p->state = ST_HEADER;
	p->block_len = 0;
	if (p->in_entry)
		return call_end(p);
	return 0;
}

static void start_pad(BkTarParser *p, uint64_t size)
{
	p->remaining = (BK_TAR_BLOCK - size % BK_TAR_BLOCK) % BK_TAR_BLOCK;
	p->state = ST_PAD;
}

static bool parse_decimal(const char *s, size_t n, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (d > max || v > (max - d) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*ret = v;
	return true;
}

/* pax mtime: optional '-', digits, optional '.' and fraction digits (truncated). */
static bool parse_pax_time(const char *s, size_t n, int64_t *ret)
{
	bool neg = n > 0 && s[0] == '-';
	size_t i = neg ? 1 : 0;
	const char *dot = memchr(s + i, '.', n - i);
	size_t int_end = dot ? (size_t)(dot - s) : n;
	uint64_t v;
	if (!parse_decimal(s + i, int_end - i, (uint64_t)INT64_MAX, &v))
		return false;
	if (dot) {
		for (size_t j = int_end + 1; j < n; j++)
			if (s[j] < '0' || s[j] > '9')
				return false;
	}
	*ret = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

static int set_pax_string(BkTarParser *p, uint64_t off, char *dst, bool *flag, const char *v,
                          size_t n)
{
	if (memchr(v, '\0', n))
		return corrupt(p, off, "NUL byte in a pax path");
	if (n >= BK_TAR_PATH_MAX)
		return fail(p, bk_errorf(-ENAMETOOLONG, "tar at offset %llu: pax path of %zu bytes",
		                         (unsigned long long)off, n));
	memcpy(dst, v, n);
	dst[n] = '\0';
	*flag = n > 0; /* an empty value removes the override */
	return 0;
}

/* Parses pax records "LEN KEY=VALUE\n". Global headers are checked and ignored. */
static int parse_pax(BkTarParser *p, uint64_t off, bool global)
{
	const char *s = (const char *)p->meta;
	size_t len = p->meta_len, pos = 0;
	while (pos < len) {
		if (s[pos] == '\0' && is_zero(p->meta + pos, len - pos))
			break; /* some writers pad the data with NULs */
		size_t i = pos;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		uint64_t rlen;
		if (i == len || s[i] != ' ' || !parse_decimal(s + pos, i - pos, len - pos, &rlen) ||
		    rlen < i - pos + 4)
			return corrupt(p, off, "malformed pax record length");
		size_t end = pos + (size_t)rlen; /* one past the '\n' */
		if (s[end - 1] != '\n')
			return corrupt(p, off, "pax record not ended by a newline");
		const char *key = s + i + 1;
		const char *eq = memchr(key, '=', (size_t)(s + end - 1 - key));
		if (!eq || eq == key)
			return corrupt(p, off, "pax record without a key");
		size_t klen = (size_t)(eq - key);
		const char *v = eq + 1;
		size_t vlen = (size_t)(s + end - 1 - v);
		pos = end;
		if (memchr(key, '\0', klen))
			return corrupt(p, off, "NUL byte in a pax key");

#define KEY_IS(lit) (klen == sizeof(lit) - 1 && memcmp(key, lit, klen) == 0)
		if (klen >= 10 && memcmp(key, "GNU.sparse", 10) == 0)
			return fail(p, bk_errorf(-EOPNOTSUPP, "tar at offset %llu: sparse files are not supported",
			                         (unsigned long long)off));
		if (global)
			continue;
		int r = 0;
		if (KEY_IS("path")) {
			r = set_pax_string(p, off, p->x_path_v, &p->x_path, v, vlen);
		} else if (KEY_IS("linkpath")) {
			r = set_pax_string(p, off, p->x_link_v, &p->x_link, v, vlen);
		} else if (KEY_IS("size")) {
			if (!parse_decimal(v, vlen, BK_TAR_SIZE_MAX, &p->x_size_v))
				return corrupt(p, off, "bad pax size");
			p->x_size = true;
		} else if (KEY_IS("mtime")) {
			if (!parse_pax_time(v, vlen, &p->x_mtime_v))
				return corrupt(p, off, "bad pax mtime");
			p->x_mtime = true;
		} else if (KEY_IS("uid")) {
			if (!parse_decimal(v, vlen, UINT64_MAX, &p->x_uid_v))
				return corrupt(p, off, "bad pax uid");
			p->x_uid = true;
		} else if (KEY_IS("gid")) {
			if (!parse_decimal(v, vlen, UINT64_MAX, &p->x_gid_v))
				return corrupt(p, off, "bad pax gid");
			p->x_gid = true;
		}
#undef KEY_IS
		if (r < 0)
			return r;
	}
	return 0;
}

/* An extended header's data is complete. */
static int meta_done(BkTarParser *p)
{
	uint64_t off = p->block_start;
	int r = 0;
	switch (p->meta_type) {
	case 'L':
	case 'K': {
		char *dst = p->meta_type == 'L' ? p->x_path_v : p->x_link_v;
		const uint8_t *z = memchr(p->meta, '\0', p->meta_len);
		size_t n = z ? (size_t)(z - p->meta) : p->meta_len;
		if (n == 0)
			return corrupt(p, off, "empty gnu long name");
		if (n >= BK_TAR_PATH_MAX)
			return fail(p, bk_errorf(-ENAMETOOLONG, "tar at offset %llu: name of %zu bytes",
			                         (unsigned long long)off, n));
		memcpy(dst, p->meta, n);
		dst[n] = '\0';
		if (p->meta_type == 'L')
			p->x_path = true;
		else
			p->x_link = true;
		break;
	}
	case 'x': r = parse_pax(p, off, false); break;
	case 'g': r = parse_pax(p, off, true); break;
	default: break;
	}
	if (r < 0)
		return r;
	start_pad(p, p->meta_len);
	if (p->remaining == 0)
		return section_done(p);
	return 0;
}

static int process_header(BkTarParser *p)
{
	const uint8_t *b = p->block;
	uint64_t off = p->block_start;

	if (is_zero(b, BK_TAR_BLOCK)) {
		if (p->pending)
			return corrupt(p, off, "end of archive right after an extended header");
		p->zero_blocks++;
		p->block_len = 0;
		if (p->zero_blocks == 2)
			p->state = ST_END;
		return 0;
	}
	if (p->zero_blocks)
		return corrupt(p, off, "header after a lone zero block");

	bool posix = memcmp(b + H_MAGIC, "ustar\0" "00", 8) == 0;
	bool gnu = memcmp(b + H_MAGIC, "ustar  \0", 8) == 0;
	if (!posix && !gnu)
		return corrupt(p, off, "not a ustar header");
	if (!checksum_ok(b))
		return corrupt(p, off, "header checksum mismatch");

	int64_t mode_v, mtime_v;
	uint64_t uid, gid, size;
	if (!parse_number(b + H_MODE, 8, false, &mode_v) || !parse_unsigned(b + H_UID, 8, &uid) ||
	    !parse_unsigned(b + H_GID, 8, &gid) || !parse_unsigned(b + H_SIZE, 12, &size) ||
	    !parse_number(b + H_MTIME, 12, true, &mtime_v))
		return corrupt(p, off, "bad numeric field in header");

	char type = (char)b[H_TYPE];
	if (!p->pending)
		p->ext_start = off;
	p->block_len = 0;

	switch (type) {
	case 'L':
	case 'K':
	case 'x':
	case 'g':
		if (size > BK_TAR_META_MAX)
			return fail(p, bk_errorf(type == 'L' || type == 'K' ? -ENAMETOOLONG : -E2BIG,
			                         "tar at offset %llu: '%c' header of %llu bytes (cap %u)",
			                         (unsigned long long)off, type,
			                         (unsigned long long)size, BK_TAR_META_MAX));
		if (!p->meta) {
			p->meta = malloc(BK_TAR_META_MAX);
			if (!p->meta)
				return fail(p, bk_errorf(-ENOMEM, "tar parser: out of memory"));
		}
		if (type != 'g')
			p->pending = true;
		p->meta_type = type;
		p->meta_len = 0;
		p->meta_need = (size_t)size;
		p->state = ST_META;
		if (size == 0)
			return meta_done(p);
		return 0;
	case '0':
	case '\0':
	case '7':
	case '1':
	case '2':
	case '5': break;
	default:
		return fail(p, bk_errorf(-EOPNOTSUPP, "tar at offset %llu: unsupported entry type '%c'",
		                         (unsigned long long)off, type >= 0x20 && type < 0x7f ? type : '?'));
	}

	/* A real entry: header fields, then overrides from extended headers. */
	char raw[BK_TAR_PATH_MAX];
	BkTarEntry *e = &p->entry;
	memset(e, 0, sizeof(*e));
	e->offset = p->ext_start;
	if (p->x_path) {
		memcpy(raw, p->x_path_v, strlen(p->x_path_v) + 1);
	} else {
		size_t n = 0;
		if (posix && b[H_PREFIX] != '\0') {
			n = field_str(raw, b + H_PREFIX, H_PREFIX_LEN);
			raw[n++] = '/';
		}
		field_str(raw + n, b + H_NAME, H_NAME_LEN);
	}
	int r = normalize_path(p, off, raw, p->path);
	if (r < 0)
		return r;
	if (p->x_link)
		memcpy(p->link, p->x_link_v, strlen(p->x_link_v) + 1);
	else
		field_str(p->link, b + H_LINK, H_LINK_LEN);

	if (p->x_size)
		size = p->x_size_v;
	if (p->x_mtime)
		mtime_v = p->x_mtime_v;
	if (p->x_uid)
		uid = p->x_uid_v;
	if (p->x_gid)
		gid = p->x_gid_v;
	if (size > BK_TAR_SIZE_MAX)
		return corrupt(p, off, "entry size out of range");

	switch (type) {
	case '1': e->type = BK_TAR_HARDLINK; break;
	case '2': e->type = BK_TAR_SYMLINK; break;
	case '5': e->type = BK_TAR_DIR; break;
	default: e->type = BK_TAR_FILE; break;
	}
	if (e->type != BK_TAR_FILE && size != 0)
		return corrupt(p, off, "data on a directory or link entry");
	if (e->type == BK_TAR_SYMLINK || e->type == BK_TAR_HARDLINK) {
		if (p->link[0] == '\0')
			return corrupt(p, off, "link without a target");
	} else
		p->link[0] = '\0';
	if (e->type == BK_TAR_HARDLINK) {
		char tmp[BK_TAR_PATH_MAX];
		memcpy(tmp, p->link, strlen(p->link) + 1);
		r = normalize_path(p, off, tmp, p->link);
		if (r < 0)
			return r;
	}
	e->path = p->path;
	e->link = p->link;
	e->mode = (uint32_t)mode_v & 07777;
	e->uid = uid;
	e->gid = gid;
	e->mtime = mtime_v;
	e->size = size;
	clear_pending(p);

	p->in_entry = true;
	if (p->cb.entry_start) {
		r = p->cb.entry_start(p->ctx, e);
		if (r < 0)
			return fail(p, r);
	}
	if (size > 0) {
		p->remaining = size;
		p->state = ST_DATA;
		return 0;
	}
	return section_done(p);
}

int bk_tar_parser_push(BkTarParser *p, const void *buf, size_t len)
{
	const uint8_t *in = buf;
	if (p->err)
		return p->err;
	if (p->state == ST_DONE)
		return fail(p, bk_errorf(-EINVAL, "tar parser: push after finish"));

	while (len > 0) {
		size_t n;
		int r = 0;
		switch (p->state) {
		case ST_HEADER:
			if (p->block_len == 0)
				p->block_start = p->offset;
			n = BK_MIN(BK_TAR_BLOCK - p->block_len, len);
			memcpy(p->block + p->block_len, in, n);
			p->block_len += n;
			p->offset += n;
			in += n;
			len -= n;
			if (p->block_len == BK_TAR_BLOCK)
				r = process_header(p);
			break;
		case ST_DATA:
			n = (size_t)BK_MIN((uint64_t)len, p->remaining);
			p->offset += n;
			p->remaining -= n;
			if (p->cb.entry_data) {
				r = p->cb.entry_data(p->ctx, in, n);
				if (r < 0)
					return fail(p, r);
			}
			in += n;
			len -= n;
			if (p->remaining == 0) {
				start_pad(p, p->entry.size);
				if (p->remaining == 0)
					r = section_done(p);
			}
			break;
		case ST_META:
			n = BK_MIN(p->meta_need - p->meta_len, len);
			memcpy(p->meta + p->meta_len, in, n);
			p->meta_len += n;
			p->offset += n;
			in += n;
			len -= n;
			if (p->meta_len == p->meta_need)
				r = meta_done(p);
			break;
		case ST_PAD:
			n = (size_t)BK_MIN((uint64_t)len, p->remaining);
			/* Padding is zero in every tar writer we know; tolerate garbage as GNU
			 * tar does, since it is covered by no checksum either way. */
			p->offset += n;
			p->remaining -= n;
			in += n;
			len -= n;
			if (p->remaining == 0)
				r = section_done(p);
			break;
		case ST_END:
			if (!is_zero(in, len))
				return corrupt(p, p->offset, "data after the end-of-archive marker");
			p->offset += len;
			len = 0;
			break;
		case ST_DONE: break;
		}
		if (r < 0)
			return r;
		if (p->err)
			return p->err;
	}
	return 0;
}

int bk_tar_parser_finish(BkTarParser *p)
{
	if (p->err)
		return p->err;
	switch (p->state) {
	case ST_END: break;
	case ST_HEADER:
		if (p->block_len != 0)
			return corrupt(p, p->offset, "archive truncated inside a header");
		if (p->pending)
			return corrupt(p, p->offset, "archive truncated after an extended header");
		if (p->zero_blocks == 1)
			return corrupt(p, p->offset, "archive truncated inside the end-of-archive marker");
		if (p->flags & BK_TAR_REQUIRE_END)
			return corrupt(p, p->offset, "archive truncated: no end-of-archive marker");
		break;
	case ST_DATA: return corrupt(p, p->offset, "archive truncated inside a file's data");
	case ST_META: return corrupt(p, p->offset, "archive truncated inside an extended header");
	case ST_PAD: return corrupt(p, p->offset, "archive truncated inside padding");
	case ST_DONE: return 0;
	}
	p->state = ST_DONE;
	return 0;
}
