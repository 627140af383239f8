/* Keyed BLAKE2b (RFC 7693) whose state after the key block is made once
 * and copied for each message, so a message pays only its own blocks.
 * Same output as libsodium's crypto_generichash with the same key, length
 * and personalization; the backup's per-message hashes (a chat message's
 * content hash and its id's key) are small, and the key block was a
 * third of their compressions. */
#ifndef PB_UTIL_BLAKE2B_H
#define PB_UTIL_BLAKE2B_H

#include <stddef.h>
#include <stdint.h>

typedef struct pb__b2k_s {
	uint64_t h0[8]; /* the parameter block's state */
	uint64_t h[8];  /* and after the key block (h0 without a key) */
	uint8_t key[128]; /* the key block, for an empty message */
	size_t outlen;
	int keyed;
	int avx2; /* the compression in 256-bit registers */
	int avx512; /* pb__b2k_hash_many in eight 64-bit lanes */
	size_t keylen;
	int personal; /* a personalization was given */
} pb__b2k_t;

/* key: 0..64 bytes (keylen 0: unkeyed); outlen 1..64; personal: NULL or
 * 16 bytes. */
void pb__b2k_init(pb__b2k_t *k, const uint8_t *key, size_t keylen, size_t outlen, const uint8_t *personal);
/* BLAKE2b of data under k's key, k->outlen bytes to out (a long message
 * without personalization through libsodium, whose one stream is faster). */
void pb__b2k_hash(const pb__b2k_t *k, const uint8_t *data, size_t len, uint8_t *out);

/* BLAKE2b of n independent messages under k, as pb__b2k_hash of each:
 * data[j] (len[j] bytes) to out[j]. Several messages are compressed at
 * once in the lanes of vector registers (AVX-512: eight, AVX2: four),
 * about twice the speed of one stream; the output is the same. */
void pb__b2k_hash_many(const pb__b2k_t *k, const uint8_t *const *data, const size_t *len, uint8_t *const *out,
		       size_t n);

#endif
