/* store/util.h: small helpers shared by every module: cleanup attributes, hex,
 * little-endian integers, bounded allocation.
 *
 * Contract: pure functions and macros; no I/O; thread-safe.
 */
#ifndef BK_STORE_UTIL_H
#define BK_STORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define BK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define BK_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hands ownership out of a _cleanup_ local: the local becomes NULL. */
#define TAKE_PTR(p)                         \
	({                                      \
		__typeof__(p) _take_tmp = (p);      \
		(p) = NULL;                         \
		_take_tmp;                          \
	})
#define TAKE_FD(fd)                         \
	({                                      \
		int _take_fd = (fd);                \
		(fd) = -1;                          \
		_take_fd;                           \
	})

static inline void bk_freep(void *p) { free(*(void **)p); }
static inline void bk_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_free_ _cleanup_(bk_freep)
#define _cleanup_close_ _cleanup_(bk_closep)

/* src as one line into dst (cap >= 1, cut to fit, before a UTF-8 character the
 * cut would split): each run of line breaks and tabs, with the spaces after a
 * break, becomes one space (other spaces stay: a path in a message is the path),
 * leading and trailing ones go, and a line that ends without punctuation gets a
 * period before the next ("failed: Connection refused\n\tIs the server
 * running...?" reads "failed: Connection refused. Is the server running...?"). */
void bk_one_line(char *dst, size_t cap, const char *src);

/* 32-byte identifiers (blob ids, pack ids, snapshot ids) are everywhere. */
#define BK_ID_LEN 32
#define BK_ID_HEX_LEN 64

/* Writes 2*len lowercase hex digits and a NUL into out (size >= 2*len+1). */
void bk_hex(char *out, const uint8_t *in, size_t len);

/* The value of one hex digit (either case), or -1. */
int bk_hex_value(char c);

/* Parses exactly 2*len hex digits from s into out; -EINVAL if s is not that. */
int bk_unhex(uint8_t *out, size_t len, const char *s);

/* Convenience: hex of a BK_ID_LEN id into a static-sized buffer the caller owns. */
typedef struct {
	char s[BK_ID_HEX_LEN + 1];
} BkIdHex;
BkIdHex bk_id_hex(const uint8_t id[BK_ID_LEN]);

static inline bool bk_id_is_zero(const uint8_t id[BK_ID_LEN])
{
	uint8_t acc = 0;
	for (size_t i = 0; i < BK_ID_LEN; i++)
		acc |= id[i];
	return acc == 0;
}

static inline void bk_put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void bk_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void bk_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t bk_get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t bk_get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t bk_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Current wall-clock time in microseconds since the epoch, and a monotonic clock. */
int64_t bk_now_us(void);
uint64_t bk_mono_us(void);

/* Makes room for element n of the array *items (capacity *cap, elements of elem
 * bytes): when n == *cap, doubles it (first: the initial capacity). 0, or -ENOMEM
 * with the array as it was. items is the address of the array pointer. */
int bk_grow(void *items, size_t *cap, size_t n, size_t elem, size_t first);

#endif
