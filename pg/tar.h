/* pg/tar.h: an incremental tar stream parser.
 *
 * Place in the data flow: BASE_BACKUP sends each tablespace as a tar stream; the
 * archiver pushes the stream through this parser as it arrives and turns the
 * callbacks into snapshot tree entries and file contents, without temporary files.
 * It also reads any tar a user pipes in.
 *
 * Input: bytes pushed in pieces of any size (1 byte up). Formats: POSIX ustar
 * (prefix + name), GNU ('L' long name, 'K' long link target, base-256 numbers),
 * pax ('x' extended headers: path, linkpath, size, mtime, uid, gid; 'g' global
 * headers are checked and ignored). Entry types: regular file ('0', '\0', '7'),
 * hard link ('1'), symlink ('2'), directory ('5'). Anything else (devices, fifos,
 * GNU sparse or multi-volume entries, pax sparse keys) is refused with
 * -EOPNOTSUPP, never skipped.
 * Header checksums are verified. The archive ends at two zero blocks; zero padding
 * after them (tar's record blocking) is accepted, anything else is refused.
 * The end marker is required when BK_TAR_REQUIRE_END is set: PostgreSQL 15's
 * BASE_BACKUP sends it (before 15 the server omitted it and pg_basebackup added
 * it), so pg/basebackup.c sets it and an archive cut between two entries fails.
 *
 * Paths are normalised before they reach the caller: "./" and empty components and
 * trailing slashes removed (PostgreSQL writes directories and tablespace symlinks
 * as "name/"). The archive's top directory itself ("./") is reported as ".".
 * Absolute paths, ".." components and NUL bytes are refused: an archive can never
 * name a file outside its own tree.
 *
 * Memory is bounded and does not depend on file sizes: file data is passed through
 * from the caller's buffer, never copied. Only headers are buffered, with hard caps:
 * a path or link target of at most BK_TAR_PATH_MAX - 1 bytes, an extended header
 * of at most BK_TAR_META_MAX bytes.
 *
 * Callbacks: entry_start once per entry (the BkTarEntry and its strings are
 * borrowed until entry_end returns), entry_data zero or more times with the file's
 * bytes in order (exactly size bytes in total; never for non-regular entries),
 * entry_end once the entry's data and padding are consumed. A callback that
 * returns < 0 stops the parser; that code is returned by push (and every later
 * call). Any callback pointer may be NULL.
 *
 * Errors: BK_E_CORRUPT for malformed input (with the archive offset in the detail),
 * -EOPNOTSUPP for a valid but unsupported entry, -ENAMETOOLONG for a name over
 * its cap, -E2BIG for an extended header over its cap, -ENOMEM; a callback's code
 * as it returned it. Errors are sticky: every later push and finish returns it.
 *
 * Thread-safety: a parser is used by one thread at a time.
 */
#ifndef BK_PG_TAR_H
#define BK_PG_TAR_H

#include <stddef.h>
#include <stdint.h>

#define BK_TAR_BLOCK 512
#define BK_TAR_PATH_MAX 4096        /* including the NUL */
#define BK_TAR_META_MAX (64 * 1024) /* one 'x', 'g', 'L' or 'K' header's data */
#define BK_TAR_SIZE_MAX (UINT64_C(1) << 62)

typedef enum {
	BK_TAR_FILE = 1,
	BK_TAR_DIR,
	BK_TAR_SYMLINK,
	BK_TAR_HARDLINK, /* link holds the normalised path of the entry it links to */
} BkTarType;

typedef struct {
	const char *path; /* normalised, NUL-terminated, never empty ("." for the root) */
	const char *link; /* symlink target as stored (not normalised), hard link path; "" else */
	BkTarType type;
	uint32_t mode;    /* permission bits only (07777) */
	uint64_t uid, gid;
	int64_t mtime;    /* seconds since the epoch; pax fractions are truncated */
	uint64_t size;    /* bytes of data that follow: 0 unless BK_TAR_FILE */
	uint64_t offset;  /* archive offset of the entry's first header (for messages) */
} BkTarEntry;

typedef struct {
	int (*entry_start)(void *ctx, const BkTarEntry *entry);
	int (*entry_data)(void *ctx, const void *buf, size_t len);
	int (*entry_end)(void *ctx, const BkTarEntry *entry);
} BkTarCallbacks;

enum {
	BK_TAR_REQUIRE_END = 1 << 0, /* bk_tar_parser_finish fails without two zero blocks */
};

typedef struct BkTarParser BkTarParser;

/* New parser. cb is copied; ctx is passed to every callback. *ret is owned by the
 * caller and freed with bk_tar_parser_free. */
int bk_tar_parser_new(const BkTarCallbacks *cb, void *ctx, unsigned flags, BkTarParser **ret);

/* Frees a parser (NULL accepted). */
void bk_tar_parser_free(BkTarParser *p);

/* Feeds len bytes. Returns 0 once they are all consumed (callbacks ran for whatever
 * they completed), or the sticky error. */
int bk_tar_parser_push(BkTarParser *p, const void *buf, size_t len);

/* Declares the end of input. 0 if the archive ended cleanly: after the end marker,
 * or (without BK_TAR_REQUIRE_END) exactly between two entries. BK_E_CORRUPT if the
 * input stopped inside a header, an entry's data or its padding, or right after an
 * extended header. */
int bk_tar_parser_finish(BkTarParser *p);

/* Bytes consumed so far, and entries completed so far. */
uint64_t bk_tar_parser_offset(const BkTarParser *p);
uint64_t bk_tar_parser_entries(const BkTarParser *p);

#endif
