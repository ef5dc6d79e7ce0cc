/* store/blake2b.h: BLAKE2b-256 (RFC 7693) of many messages at once.
 *
 * Blob ids are keyed BLAKE2b-256 (DESIGN.md), and computing them is the largest
 * single cost of a backup or a restore after compression: libsodium hashes one
 * message at a time, at ~4 cycles a byte, because each BLAKE2b block depends on
 * the previous one. The messages of a batch of chunks are independent, so this
 * module hashes them side by side in the lanes of the CPU's vector registers
 * (4 with AVX2, 8 with AVX-512): the same function, the same ids, a fraction of
 * the time. Where neither is available it calls libsodium for each message.
 *
 * bk_blake2b_init() runs the lanes on known inputs against libsodium once and
 * keeps to libsodium if they ever differ, so a miscompiled or unsupported vector
 * path cannot produce ids that differ from crypto_generichash's. It runs at the
 * first batch (processes that hash none, like wal-fetch, never pay for it).
 *
 * Pack ids (unkeyed BLAKE2b-256 of a whole pack, 16 MiB) are hashed side by
 * side too, one pack per lane (store/pack.h), since one long message cannot be
 * split across lanes: BkBlake2bStreams takes the packs a piece at a time, so
 * that they need not be in memory whole.
 *
 * Pure functions over caller buffers; thread-safe; sodium_init() first.
 */
#ifndef BK_STORE_BLAKE2B_H
#define BK_STORE_BLAKE2B_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BK_BLAKE2B_KEY_MAX 64

/* Chooses the vector implementation (checked against libsodium) the first time;
 * later calls return the choice. Returns the lanes in use (1 = libsodium only). */
unsigned bk_blake2b_init(void);

/* out[i] = crypto_generichash(32, msg[i], len[i], key, keylen) for i < n.
 * keylen <= BK_BLAKE2B_KEY_MAX. With the lanes bk_blake2b_init chose, but
 * libsodium for one message and 4 lanes for up to four where the CPU has 8. */
void bk_blake2b_many(const uint8_t *key, size_t keylen, size_t n, const uint8_t *const *msg,
		     const size_t *len, uint8_t (*out)[32]);

/* For tests and benchmarks: the same with the given lanes (1, 4 or 8; a number
 * the CPU cannot run is the caller's error). */
void bk_blake2b_many_lanes(unsigned lanes, const uint8_t *key, size_t keylen, size_t n,
			   const uint8_t *const *msg, const size_t *len, uint8_t (*out)[32]);

/* Unkeyed BLAKE2b-256 of up to BK_BLAKE2B_STREAMS_MAX messages of known
 * lengths, side by side in the lanes, fed a piece of each at a time: after
 * start, each update gives every message its next `step` bytes (all of them if
 * fewer are left; a message already complete gets nothing and may be NULL),
 * step the same positive multiple of 128 in every call, at least one call;
 * once every byte was given, out[i] is what crypto_generichash(out[i], 32, msg,
 * len[i], NULL, 0) gives. */
#define BK_BLAKE2B_STREAMS_MAX 8
typedef struct {
	unsigned n, lanes;
	uint64_t len[BK_BLAKE2B_STREAMS_MAX], off; /* off: bytes given of each so far */
	uint64_t h[BK_BLAKE2B_STREAMS_MAX][8], t[BK_BLAKE2B_STREAMS_MAX];
	bool done[BK_BLAKE2B_STREAMS_MAX];
	crypto_generichash_state sodium[BK_BLAKE2B_STREAMS_MAX]; /* lanes 1 */
	uint8_t out[BK_BLAKE2B_STREAMS_MAX][32];
} BkBlake2bStreams;

/* Starts n messages (1..BK_BLAKE2B_STREAMS_MAX) with the lanes bk_blake2b_many
 * would take for n; _lanes: with the given ones (1, 4 or 8, for tests). */
void bk_blake2b_streams_start(BkBlake2bStreams *s, size_t n, const uint64_t *len);
void bk_blake2b_streams_start_lanes(BkBlake2bStreams *s, unsigned lanes, size_t n,
				    const uint64_t *len);
void bk_blake2b_streams_update(BkBlake2bStreams *s, const uint8_t *const *piece, size_t step);

/* The lanes this CPU could run (1, 4 or 8), whatever bk_blake2b_init chose. */
unsigned bk_blake2b_lanes_supported(void);

#endif
