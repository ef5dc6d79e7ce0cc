#include "pg/crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "store/util.h"

#define POLY 0x82F63B78u /* Castagnoli, reflected */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void make_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (POLY & (0u - (c & 1)));
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
}

uint32_t bk_crc32c_portable(uint32_t crc, const void *data, size_t n)
{
	pthread_once(&table_once, make_table);
	const uint8_t *p = data;
	crc = ~crc;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w = bk_get_le64(p) ^ crc; /* the low bytes are the first ones */
		crc = table[7][w & 0xFF] ^ table[6][(w >> 8) & 0xFF] ^ table[5][(w >> 16) & 0xFF] ^
		      table[4][(w >> 24) & 0xFF] ^ table[3][(w >> 32) & 0xFF] ^
		      table[2][(w >> 40) & 0xFF] ^ table[1][(w >> 48) & 0xFF] ^ table[0][w >> 56];
	}
	while (n--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xFF];
	return ~crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data,
                                                                size_t n)
{
	const uint8_t *p = data;
	uint64_t c = ~crc;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
	}
	uint32_t c32 = (uint32_t)c;
	while (n--)
		c32 = _mm_crc32_u8(c32, *p++);
	return ~c32;
}

uint32_t bk_crc32c(uint32_t crc, const void *data, size_t n)
{
	static atomic_int have; /* 0 not known yet, 1 no, 2 yes */
	int h = atomic_load_explicit(&have, memory_order_relaxed);
	if (h == 0) {
		__builtin_cpu_init();
		h = __builtin_cpu_supports("sse4.2") ? 2 : 1;
		atomic_store_explicit(&have, h, memory_order_relaxed);
	}
	return h == 2 ? crc32c_sse42(crc, data, n) : bk_crc32c_portable(crc, data, n);
}
#else
uint32_t bk_crc32c(uint32_t crc, const void *data, size_t n)
{
	return bk_crc32c_portable(crc, data, n);
}
#endif
