/* ChaCha20-Poly1305 (RFC 8439) and XChaCha20-Poly1305, the two AEADs of the
 * wire and of the store: the Noise transport uses the first, sealed chunks
 * the second. The output is libsodium's crypto_aead_chacha20poly1305_ietf_*
 * and crypto_aead_xchacha20poly1305_ietf_* byte for byte; messages from
 * PB_AEAD_LIBCRYPTO_MIN bytes on go through OpenSSL's libcrypto, whose
 * vectorised code is about 2.5 times faster, smaller ones through libsodium,
 * which costs less a call (and all of them until the process has put
 * PB_AEAD_LIBCRYPTO_AFTER bytes through the AEAD: opening and starting
 * libcrypto costs about 2.5 ms). Private to the library and its tests. */
#ifndef PB_PROTOCOL_AEAD_H
#define PB_PROTOCOL_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define PB_AEAD_KEYLEN 32
#define PB_AEAD_TAGLEN 16
#define PB_AEAD_NONCELEN 12  /* ChaCha20-Poly1305 */
#define PB_AEAD_XNONCELEN 24 /* XChaCha20-Poly1305 */

/* Below this many bytes of message a call goes to libsodium: measured with
 * bench-limits' per-size rows (docs/BENCH.md, "Physical limits"). */
#define PB_AEAD_LIBCRYPTO_MIN 1024
/* Opening and starting libcrypto (about 2.5 ms) is what libsodium takes for
 * 3.5 MB, and libcrypto saves 0.4 ms a MB after: it is opened after the
 * first 8 MiB. */
#define PB_AEAD_LIBCRYPTO_AFTER (8u << 20)

/* c (len + PB_AEAD_TAGLEN bytes) = ciphertext || tag of m (len bytes);
 * c == m (in place) is allowed, other overlaps are not. Never fails. */
void pb__aead_encrypt(uint8_t *c, const uint8_t *m, size_t len, const uint8_t *ad, size_t adlen,
		      const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);
void pb__aead_xencrypt(uint8_t *c, const uint8_t *m, size_t len, const uint8_t *ad, size_t adlen,
		       const uint8_t nonce[PB_AEAD_XNONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);

/* A message in parts, their bytes one after the other. */
typedef struct pb_aead_part_s {
	const uint8_t *p;
	size_t n;
} pb_aead_part_t;

/* pb__aead_encrypt of the message made of nparts parts (len bytes in all),
 * read where they are: a message made of a small head, a large piece of
 * data and a small tail (a fragment of a chunk's message) is not copied
 * into one buffer first. c must not overlap a part. Through libsodium
 * (short messages), the parts are gathered into c and sealed in place. */
void pb__aead_encrypt_parts(uint8_t *c, const pb_aead_part_t *parts, size_t nparts, size_t len,
			    const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);

/* m (clen - PB_AEAD_TAGLEN bytes) = the plaintext of c (clen bytes, tag
 * last), m == c allowed: 0, or -1 when clen is shorter than a tag or the tag
 * does not verify (compared in constant time), and then m holds zeros, no
 * unauthenticated plaintext. */
int pb__aead_decrypt(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
		     const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);
int pb__aead_xdecrypt(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
		      const uint8_t nonce[PB_AEAD_XNONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);

/* The same through one implementation only, whatever the size: for the
 * tests, which compare them, and bench-limits. The libcrypto ones return -2
 * when libcrypto cannot be used (not installed, no memory, a message over
 * INT_MAX bytes) before they have written anything, m and c intact; a
 * failure after that is -1 (decrypt, m wiped) or, encrypting in place, an
 * abort: neither happens with a keyed context. */
void pb__aead_encrypt_sodium(uint8_t *c, const uint8_t *m, size_t len, const uint8_t *ad, size_t adlen,
			     const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);
int pb__aead_decrypt_sodium(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
			    const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);
int pb__aead_encrypt_libcrypto(uint8_t *c, const uint8_t *m, size_t len, const uint8_t *ad, size_t adlen,
			       const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);
int pb__aead_decrypt_libcrypto(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
			       const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);
int pb__aead_encrypt_parts_libcrypto(uint8_t *c, const pb_aead_part_t *parts, size_t nparts, size_t len,
				     const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);

/* XChaCha20-Poly1305's nonce and key for ChaCha20-Poly1305, as libsodium
 * derives them: subkey = HChaCha20(key, xnonce[0..16]), nonce = 4 zero
 * bytes || xnonce[16..24]. */
void pb__aead_xderive(uint8_t subkey[PB_AEAD_KEYLEN], uint8_t nonce[PB_AEAD_NONCELEN],
		      const uint8_t xnonce[PB_AEAD_XNONCELEN], const uint8_t key[PB_AEAD_KEYLEN]);

#endif
