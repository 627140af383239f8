/* ChaCha20-Poly1305 and XChaCha20-Poly1305 through libcrypto or libsodium,
 * the same bytes either way (protocol/aead.h).
 *
 * libcrypto's code is the faster one on long messages (AVX2/AVX-512), but a
 * call through its EVP layer costs more than libsodium's: each thread keeps
 * one cipher context a direction, made on its first long message and keyed
 * again for every message (no allocation a call), and short messages stay
 * on libsodium.
 *
 * libcrypto is opened with dlopen, and started (its default provider and
 * method store), once a process has put PB_AEAD_LIBCRYPTO_AFTER bytes
 * through libsodium: about 2.5 ms, which a backup, a full restore or a host
 * soon earns back, and which a short command (one message restored by id)
 * never pays. Linked, even statically, its relocations alone cost every
 * command 0.3 ms of CPU at start. Without libcrypto (not installed)
 * everything stays on libsodium. */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "protocol/aead.h"

#ifndef PB_LIBCRYPTO_SONAME
#define PB_LIBCRYPTO_SONAME "libcrypto.so.3"
#endif

/* The functions used, from the library opened; their declarations are
 * libcrypto's own headers'. */
static struct {
	__typeof__(OPENSSL_init_crypto) *init_crypto;
	__typeof__(EVP_CIPHER_CTX_new) *ctx_new;
	__typeof__(EVP_CIPHER_CTX_free) *ctx_free;
	__typeof__(EVP_CIPHER_CTX_ctrl) *ctx_ctrl;
	__typeof__(EVP_chacha20_poly1305) *chacha20_poly1305;
	__typeof__(EVP_CipherInit_ex) *init;
	__typeof__(EVP_CipherUpdate) *update;
	__typeof__(EVP_CipherFinal_ex) *final;
	__typeof__(ERR_clear_error) *clear_error;
} lc;

_Static_assert(PB_AEAD_TAGLEN == crypto_aead_chacha20poly1305_ietf_ABYTES, "tag");
_Static_assert(PB_AEAD_NONCELEN == crypto_aead_chacha20poly1305_ietf_NPUBBYTES, "nonce");
_Static_assert(PB_AEAD_XNONCELEN == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "xnonce");

/* This thread's contexts, [0] decrypting and [1] encrypting; freed when the
 * thread ends (the key's destructor), so threads that come and go leak
 * nothing. */
static _Thread_local EVP_CIPHER_CTX *tls_ctx[2];
static _Thread_local bool tls_broken;
static pthread_once_t lc_once_ctl = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;
static bool lc_ok;

/* Bytes of long messages through libsodium so far, and whether that has
 * reached PB_AEAD_LIBCRYPTO_AFTER: then every thread goes to libcrypto
 * (or, told so, stays on libsodium: sodium_only). */
static atomic_uint_fast64_t sodium_bytes;
static atomic_bool libcrypto_on;
static atomic_bool sodium_only;

static void thread_end(void *p)
{
	EVP_CIPHER_CTX **ctx = p;

	for (int i = 0; i < 2; i++) {
		lc.ctx_free(ctx[i]);
		ctx[i] = NULL;
	}
}

static bool lc_load(void)
{
	void *h = dlopen(PB_LIBCRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (h == NULL)
		return false;
	*(void **)&lc.init_crypto = dlsym(h, "OPENSSL_init_crypto");
	*(void **)&lc.ctx_new = dlsym(h, "EVP_CIPHER_CTX_new");
	*(void **)&lc.ctx_free = dlsym(h, "EVP_CIPHER_CTX_free");
	*(void **)&lc.ctx_ctrl = dlsym(h, "EVP_CIPHER_CTX_ctrl");
	*(void **)&lc.chacha20_poly1305 = dlsym(h, "EVP_chacha20_poly1305");
	*(void **)&lc.init = dlsym(h, "EVP_CipherInit_ex");
	*(void **)&lc.update = dlsym(h, "EVP_CipherUpdate");
	*(void **)&lc.final = dlsym(h, "EVP_CipherFinal_ex");
	*(void **)&lc.clear_error = dlsym(h, "ERR_clear_error");
	if (lc.init_crypto == NULL || lc.ctx_new == NULL || lc.ctx_free == NULL || lc.ctx_ctrl == NULL ||
	    lc.chacha20_poly1305 == NULL || lc.init == NULL || lc.update == NULL || lc.final == NULL ||
	    lc.clear_error == NULL)
		return false; /* the handle stays open: harmless */
	/* No configuration file (what it could set is not wanted here, and
	 * reading it is a third of the start) and no clean-up at exit, when
	 * other threads may still be sealing. */
	return lc.init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT, NULL) == 1;
}

static void lc_once(void)
{
	lc_ok = lc_load() && pthread_key_create(&ctx_key, thread_end) == 0;
}

/* The context of this thread for enc (1) or dec (0), or NULL when libcrypto
 * cannot be used: the caller goes to libsodium. */
static EVP_CIPHER_CTX *ctx_for(int enc)
{
	EVP_CIPHER_CTX *ctx = tls_ctx[enc];

	if (ctx != NULL)
		return ctx;
	if (tls_broken)
		return NULL;
	pthread_once(&lc_once_ctl, lc_once);
	if (!lc_ok)
		goto broken;
	if ((ctx = lc.ctx_new()) == NULL)
		goto broken_err;
	/* The cipher once; each message then keys it only. */
	if (lc.init(ctx, lc.chacha20_poly1305(), NULL, NULL, NULL, enc) != 1 ||
	    pthread_setspecific(ctx_key, tls_ctx) != 0) {
		lc.ctx_free(ctx);
		goto broken_err;
	}
	tls_ctx[enc] = ctx;
	return ctx;
broken_err:
	lc.clear_error();
broken:
	tls_broken = true;
	return NULL;
}

void pb__aead_xderive(uint8_t subkey[PB_AEAD_KEYLEN], uint8_t nonce[PB_AEAD_NONCELEN],
		      const uint8_t xnonce[PB_AEAD_XNONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	crypto_core_hchacha20(subkey, xnonce, key, NULL);
	memset(nonce, 0, 4);
	memcpy(nonce + 4, xnonce + 16, 8);
}

void pb__aead_encrypt_sodium(uint8_t *c, const uint8_t *m, size_t len, const uint8_t *ad, size_t adlen,
			     const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	crypto_aead_chacha20poly1305_ietf_encrypt(c, NULL, m, len, ad, adlen, NULL, nonce, key);
}

int pb__aead_decrypt_sodium(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
			    const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	/* libsodium checks the tag first and, when it fails, zeroes m. */
	return crypto_aead_chacha20poly1305_ietf_decrypt(m, NULL, NULL, c, clen, ad, adlen, nonce, key) == 0 ? 0
														 : -1;
}

int pb__aead_encrypt_libcrypto(uint8_t *c, const uint8_t *m, size_t len, const uint8_t *ad, size_t adlen,
			       const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	EVP_CIPHER_CTX *ctx;
	int n;

	if (len > INT_MAX || adlen > INT_MAX || (ctx = ctx_for(1)) == NULL)
		return -2;
	/* Nothing written yet: libsodium can take over. */
	if (lc.init(ctx, NULL, NULL, key, nonce, 1) != 1 ||
	    (adlen > 0 && lc.update(ctx, NULL, &n, ad, (int)adlen) != 1)) {
		lc.clear_error();
		return -2;
	}
	if ((len > 0 && lc.update(ctx, c, &n, m, (int)len) != 1) || lc.final(ctx, c + len, &n) != 1 ||
	    lc.ctx_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, PB_AEAD_TAGLEN, c + len) != 1) {
		/* Keyed, a ChaCha20-Poly1305 context does not fail; if it
		 * did in place, m is gone and sealing it again would seal
		 * other bytes: stop rather than store them. */
		if (c == m)
			abort();
		lc.clear_error();
		return -2;
	}
	return 0;
}

int pb__aead_encrypt_parts_libcrypto(uint8_t *c, const pb_aead_part_t *parts, size_t nparts, size_t len,
				     const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	EVP_CIPHER_CTX *ctx;
	size_t off = 0;
	int n;

	if (len > INT_MAX || (ctx = ctx_for(1)) == NULL)
		return -2;
	if (lc.init(ctx, NULL, NULL, key, nonce, 1) != 1) {
		lc.clear_error();
		return -2;
	}
	/* One update a part: the cipher carries a part's last partial block
	 * over to the next. The parts are not c, so a failure leaves them
	 * intact for libsodium. */
	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].n == 0)
			continue;
		if (parts[i].n > len - off || lc.update(ctx, c + off, &n, parts[i].p, (int)parts[i].n) != 1) {
			lc.clear_error();
			return -2;
		}
		off += parts[i].n;
	}
	if (off != len || lc.final(ctx, c + len, &n) != 1 ||
	    lc.ctx_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, PB_AEAD_TAGLEN, c + len) != 1) {
		lc.clear_error();
		return -2;
	}
	return 0;
}

int pb__aead_decrypt_libcrypto(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
			       const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	EVP_CIPHER_CTX *ctx;
	uint8_t tag[PB_AEAD_TAGLEN];
	size_t len;
	int n;

	if (clen < PB_AEAD_TAGLEN)
		return -1;
	len = clen - PB_AEAD_TAGLEN;
	if (len > INT_MAX || adlen > INT_MAX || (ctx = ctx_for(0)) == NULL)
		return -2;
	/* A copy: m may be c. The expected tag is set before any plaintext
	 * is written, so that up to here libsodium can take over. */
	memcpy(tag, c + len, PB_AEAD_TAGLEN);
	if (lc.init(ctx, NULL, NULL, key, nonce, 0) != 1 ||
	    lc.ctx_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, PB_AEAD_TAGLEN, tag) != 1 ||
	    (adlen > 0 && lc.update(ctx, NULL, &n, ad, (int)adlen) != 1)) {
		lc.clear_error();
		return -2;
	}
	/* The plaintext is out before the tag is known (one pass): it is
	 * wiped when the tag, compared in constant time, fails (or anything
	 * else does: m may have been c). */
	if ((len > 0 && lc.update(ctx, m, &n, c, (int)len) != 1) || lc.final(ctx, m + len, &n) != 1) {
		sodium_memzero(m, len);
		lc.clear_error();
		return -1;
	}
	return 0;
}

/* Whether a message of len bytes goes to libcrypto. */
static bool use_libcrypto(size_t len)
{
	if (len < PB_AEAD_LIBCRYPTO_MIN)
		return false;
	if (atomic_load_explicit(&libcrypto_on, memory_order_relaxed))
		return true;
	if (atomic_load_explicit(&sodium_only, memory_order_relaxed))
		return false;
	if (atomic_fetch_add_explicit(&sodium_bytes, len, memory_order_relaxed) + len >= PB_AEAD_LIBCRYPTO_AFTER) {
		/* PEERBACK_AEAD_LIBSODIUM=1 keeps everything on libsodium:
		 * under an emulator (the ARM builds' tests under qemu-user)
		 * libcrypto's vector code runs 6 times slower than
		 * libsodium's scalar code. */
		const char *e = getenv("PEERBACK_AEAD_LIBSODIUM");

		atomic_store_explicit(e != NULL && *e == '1' ? &sodium_only : &libcrypto_on, true, memory_order_relaxed);
	}
	return false;
}

void pb__aead_encrypt(uint8_t *c, const uint8_t *m, size_t len, const uint8_t *ad, size_t adlen,
		      const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	if (!use_libcrypto(len) || pb__aead_encrypt_libcrypto(c, m, len, ad, adlen, nonce, key) != 0)
		pb__aead_encrypt_sodium(c, m, len, ad, adlen, nonce, key);
}

void pb__aead_encrypt_parts(uint8_t *c, const pb_aead_part_t *parts, size_t nparts, size_t len,
			    const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	size_t off = 0;

	if (use_libcrypto(len) && pb__aead_encrypt_parts_libcrypto(c, parts, nparts, len, nonce, key) == 0)
		return;
	if (nparts == 1 && parts[0].n == len) {
		pb__aead_encrypt_sodium(c, parts[0].p, len, NULL, 0, nonce, key);
		return;
	}
	for (size_t i = 0; i < nparts && off < len; i++) {
		size_t k = parts[i].n < len - off ? parts[i].n : len - off;

		if (k > 0)
			memcpy(c + off, parts[i].p, k);
		off += k;
	}
	pb__aead_encrypt_sodium(c, c, len, NULL, 0, nonce, key);
}

int pb__aead_decrypt(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
		     const uint8_t nonce[PB_AEAD_NONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	int rc;

	if (clen < PB_AEAD_TAGLEN)
		return -1;
	if (!use_libcrypto(clen - PB_AEAD_TAGLEN))
		return pb__aead_decrypt_sodium(m, c, clen, ad, adlen, nonce, key);
	rc = pb__aead_decrypt_libcrypto(m, c, clen, ad, adlen, nonce, key);
	return rc != -2 ? rc : pb__aead_decrypt_sodium(m, c, clen, ad, adlen, nonce, key);
}

void pb__aead_xencrypt(uint8_t *c, const uint8_t *m, size_t len, const uint8_t *ad, size_t adlen,
		       const uint8_t nonce[PB_AEAD_XNONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	uint8_t subkey[PB_AEAD_KEYLEN], n[PB_AEAD_NONCELEN];

	pb__aead_xderive(subkey, n, nonce, key);
	pb__aead_encrypt(c, m, len, ad, adlen, n, subkey);
	sodium_memzero(subkey, sizeof(subkey));
}

int pb__aead_xdecrypt(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
		      const uint8_t nonce[PB_AEAD_XNONCELEN], const uint8_t key[PB_AEAD_KEYLEN])
{
	uint8_t subkey[PB_AEAD_KEYLEN], n[PB_AEAD_NONCELEN];
	int rc;

	pb__aead_xderive(subkey, n, nonce, key);
	rc = pb__aead_decrypt(m, c, clen, ad, adlen, n, subkey);
	sodium_memzero(subkey, sizeof(subkey));
	return rc;
}
