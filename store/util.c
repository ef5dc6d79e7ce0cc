#include "store/util.h"

#include <errno.h>
#include <time.h>

void bk_hex(char *out, const uint8_t *in, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int bk_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int bk_unhex(uint8_t *out, size_t len, const char *s)
{
	if (strlen(s) != 2 * len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int hi = bk_hex_value(s[2 * i]), lo = bk_hex_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

BkIdHex bk_id_hex(const uint8_t id[BK_ID_LEN])
{
	BkIdHex h;
	bk_hex(h.s, id, BK_ID_LEN);
	return h;
}

int64_t bk_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t bk_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int bk_grow(void *items, size_t *cap, size_t n, size_t elem, size_t first)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? 2 * *cap : first;
	if (ncap > SIZE_MAX / elem)
		return -ENOMEM;
	void *old;
	memcpy(&old, items, sizeof(old));
	void *p = realloc(old, ncap * elem);
	if (!p)
		return -ENOMEM;
	memcpy(items, &p, sizeof(p));
	*cap = ncap;
	return 0;
}

void bk_one_line(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	bool broke = false; /* a line break since the last character written */
	const char *p = src;
	for (; *p && n + 1 < cap; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t' || (*p == ' ' && (broke || n == 0))) {
			broke |= *p == '\n' || *p == '\r';
			if (n > 0 && dst[n - 1] != ' ')
				dst[n++] = ' ';
			continue;
		}
		if (broke && n >= 2 && dst[n - 1] == ' ' && !strchr(".:;,!?", dst[n - 2])) {
			dst[n - 1] = '.';
			if (n + 2 >= cap)
				break;
			dst[n++] = ' ';
		}
		broke = false;
		dst[n++] = *p;
	}
	if (*p) { /* cut: not inside a UTF-8 character */
		size_t k = n;
		while (k > 0 && ((unsigned char)dst[k - 1] & 0xc0) == 0x80)
			k--;
		unsigned char lead = k > 0 ? (unsigned char)dst[k - 1] : 0;
		size_t len = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
		if (lead >= 0xc0 && n - (k - 1) < len)
			n = k - 1;
	}
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
}
