/* store/blake2b.h: keyed BLAKE2b-256 (RFC 7693) of many messages at once.
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
 * Pack ids (unkeyed BLAKE2b-256 of a whole pack) go through it too: packs are
 * finished in batches and hashed one per lane (store/pack.h), since one long
 * message cannot be split across lanes.
 *
 * Pure functions over caller buffers; thread-safe; sodium_init() first.
 */
#ifndef BK_STORE_BLAKE2B_H
#define BK_STORE_BLAKE2B_H

#include <stddef.h>
#include <stdint.h>

#define BK_BLAKE2B_KEY_MAX 64

/* Chooses the vector implementation (checked against libsodium) the first time;
 * later calls return the choice. Returns the lanes in use (1 = libsodium only). */
unsigned bk_blake2b_init(void);

/* out[i] = crypto_generichash(32, msg[i], len[i], key, keylen) for i < n.
 * keylen <= BK_BLAKE2B_KEY_MAX. */
void bk_blake2b_many(const uint8_t *key, size_t keylen, size_t n, const uint8_t *const *msg,
		     const size_t *len, uint8_t (*out)[32]);

/* For tests and benchmarks: the same with the given lanes (1, 4 or 8; a number
 * the CPU cannot run is the caller's error). */
void bk_blake2b_many_lanes(unsigned lanes, const uint8_t *key, size_t keylen, size_t n,
			   const uint8_t *const *msg, const size_t *len, uint8_t (*out)[32]);

/* The lanes this CPU could run (1, 4 or 8), whatever bk_blake2b_init chose. */
unsigned bk_blake2b_lanes_supported(void);

#endif
