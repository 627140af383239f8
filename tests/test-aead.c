/* protocol/aead.c: libcrypto's ChaCha20-Poly1305 and the XChaCha20-Poly1305
 * built on it give libsodium's bytes, for the published vectors and for
 * random keys, nonces, associated data and lengths on both sides of the
 * size at which the library changes hands; a changed byte anywhere fails
 * and leaves no plaintext behind. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "testutil.h"
#include "protocol/aead.h"

static const char sunscreen[] = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
				"the future, sunscreen would be it.";

static void unhex(uint8_t *out, size_t len, const char *hex)
{
	size_t n = 0;

	assert_int_equal(sodium_hex2bin(out, len, hex, strlen(hex), NULL, &n, NULL), 0);
	assert_int_equal(n, len);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* RFC 8439, section 2.8.2. */
static void test_rfc8439_vector(void **state)
{
	uint8_t key[32], nonce[12], ad[12], expect[114 + 16], c[114 + 16], m[114];
	const size_t len = sizeof(sunscreen) - 1;

	(void)state;
	assert_int_equal(len, 114);
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x80 + i);
	unhex(nonce, sizeof(nonce), "070000004041424344454647");
	unhex(ad, sizeof(ad), "50515253c0c1c2c3c4c5c6c7");
	unhex(expect, sizeof(expect),
	      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
	      "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
	      "3ff4def08e4b7a9de576d26586cec64b6116"
	      "1ae10b594f09e26a7e902ecbd0600691");
	assert_int_equal(pb__aead_encrypt_libcrypto(c, (const uint8_t *)sunscreen, len, ad, sizeof(ad), nonce, key), 0);
	assert_memory_equal(c, expect, sizeof(expect));
	pb__aead_encrypt_sodium(c, (const uint8_t *)sunscreen, len, ad, sizeof(ad), nonce, key);
	assert_memory_equal(c, expect, sizeof(expect));
	pb__aead_encrypt(c, (const uint8_t *)sunscreen, len, ad, sizeof(ad), nonce, key);
	assert_memory_equal(c, expect, sizeof(expect));
	assert_int_equal(pb__aead_decrypt_libcrypto(m, expect, sizeof(expect), ad, sizeof(ad), nonce, key), 0);
	assert_memory_equal(m, sunscreen, len);
	assert_int_equal(pb__aead_decrypt(m, expect, sizeof(expect), ad, sizeof(ad), nonce, key), 0);
	assert_memory_equal(m, sunscreen, len);
}

/* draft-irtf-cfrg-xchacha-03, appendix A.3.1. */
static void test_xchacha_draft_vector(void **state)
{
	uint8_t key[32], nonce[24], ad[12], expect[114 + 16], c[114 + 16], m[114];
	const size_t len = sizeof(sunscreen) - 1;

	(void)state;
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x80 + i);
	unhex(nonce, sizeof(nonce), "404142434445464748494a4b4c4d4e4f5051525354555657");
	unhex(ad, sizeof(ad), "50515253c0c1c2c3c4c5c6c7");
	unhex(expect, sizeof(expect),
	      "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39"
	      "ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
	      "21f9664c97637da9768812f615c68b13b52e"
	      "c0875924c1c7987947deafd8780acf49");
	pb__aead_xencrypt(c, (const uint8_t *)sunscreen, len, ad, sizeof(ad), nonce, key);
	assert_memory_equal(c, expect, sizeof(expect));
	assert_int_equal(pb__aead_xdecrypt(m, expect, sizeof(expect), ad, sizeof(ad), nonce, key), 0);
	assert_memory_equal(m, sunscreen, len);
	{
		uint8_t sub[32], n12[12];

		pb__aead_xderive(sub, n12, nonce, key);
		assert_int_equal(pb__aead_encrypt_libcrypto(c, (const uint8_t *)sunscreen, len, ad, sizeof(ad), n12, sub),
				 0);
		assert_memory_equal(c, expect, sizeof(expect));
	}
}

#define MAXLEN (200 * 1024 + 17)

/* The dispatching functions go to libcrypto once a process has put
 * PB_AEAD_LIBCRYPTO_AFTER bytes through them: these tests want both. */
static void warm_libcrypto(void)
{
	uint8_t *buf = calloc(1, (1u << 20) + 16);
	uint8_t key[32] = { 0 }, nonce[12] = { 0 };

	assert_non_null(buf);
	for (unsigned i = 0; i <= PB_AEAD_LIBCRYPTO_AFTER >> 20; i++)
		pb__aead_encrypt(buf, buf, 1u << 20, NULL, 0, nonce, key);
	free(buf);
}

static void check_one(size_t len, size_t adlen, uint8_t *m, uint8_t *c1, uint8_t *c2, uint8_t *out)
{
	uint8_t key[32], nonce[12], xnonce[24], ad[64];
	unsigned long long n;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(nonce, sizeof(nonce));
	randombytes_buf(xnonce, sizeof(xnonce));
	randombytes_buf(ad, adlen);
	randombytes_buf(m, len);
	/* ChaCha20-Poly1305: libcrypto against libsodium, and back. */
	crypto_aead_chacha20poly1305_ietf_encrypt(c1, &n, m, len, adlen ? ad : NULL, adlen, NULL, nonce, key);
	assert_int_equal(pb__aead_encrypt_libcrypto(c2, m, len, adlen ? ad : NULL, adlen, nonce, key), 0);
	assert_memory_equal(c1, c2, len + 16);
	pb__aead_encrypt(c2, m, len, adlen ? ad : NULL, adlen, nonce, key);
	assert_memory_equal(c1, c2, len + 16);
	assert_int_equal(pb__aead_decrypt_libcrypto(out, c1, len + 16, adlen ? ad : NULL, adlen, nonce, key), 0);
	assert_memory_equal(out, m, len);
	assert_int_equal(pb__aead_decrypt(out, c1, len + 16, adlen ? ad : NULL, adlen, nonce, key), 0);
	assert_memory_equal(out, m, len);
	/* XChaCha20-Poly1305 against libsodium's, both ways, and in place. */
	crypto_aead_xchacha20poly1305_ietf_encrypt(c1, &n, m, len, adlen ? ad : NULL, adlen, NULL, xnonce, key);
	pb__aead_xencrypt(c2, m, len, adlen ? ad : NULL, adlen, xnonce, key);
	assert_memory_equal(c1, c2, len + 16);
	memcpy(c2, m, len);
	pb__aead_xencrypt(c2, c2, len, adlen ? ad : NULL, adlen, xnonce, key);
	assert_memory_equal(c1, c2, len + 16);
	assert_int_equal(pb__aead_xdecrypt(out, c1, len + 16, adlen ? ad : NULL, adlen, xnonce, key), 0);
	assert_memory_equal(out, m, len);
	assert_int_equal(pb__aead_xdecrypt(c2, c2, len + 16, adlen ? ad : NULL, adlen, xnonce, key), 0);
	assert_memory_equal(c2, m, len);
}

static void test_random_against_libsodium(void **state)
{
	static const size_t edges[] = { 0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 511, 512, 513,
					PB_AEAD_LIBCRYPTO_MIN - 1, PB_AEAD_LIBCRYPTO_MIN, PB_AEAD_LIBCRYPTO_MIN + 1,
					4095, 4096, 4097, 16383, 16384, 65519, 65535, 65536, 65537, 131072,
					200 * 1024, MAXLEN };
	uint8_t *m = malloc(MAXLEN), *c1 = malloc(MAXLEN + 16), *c2 = malloc(MAXLEN + 16), *out = malloc(MAXLEN);

	(void)state;
	assert_true(m && c1 && c2 && out);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
			check_one(edges[i], i % 3 == 0 ? 0 : randombytes_uniform(65), m, c1, c2, out);
		for (int i = 0; i < 150; i++)
			check_one(randombytes_uniform(i % 2 ? 4096 : MAXLEN + 1), randombytes_uniform(65), m, c1, c2, out);
		warm_libcrypto(); /* the second pass through libcrypto's side */
	}
	free(m);
	free(c1);
	free(c2);
	free(out);
}

/* A message sealed from parts (a head, data, a tail, cut anywhere, empty
 * parts included, or one part) is the message sealed whole, through libcrypto and
 * through the dispatch (libsodium for short messages). */
static void test_parts_against_whole(void **state)
{
	uint8_t *m = malloc(MAXLEN), *c1 = malloc(MAXLEN + 16), *c2 = malloc(MAXLEN + 16);
	uint8_t key[32], nonce[12];
	unsigned long long n;

	(void)state;
	assert_true(m && c1 && c2);
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < 200; i++) {
			size_t len = i < 20 ? (size_t)i : randombytes_uniform(i % 2 ? 4096 : MAXLEN + 1);
			size_t a = randombytes_uniform((uint32_t)len + 1);
			size_t b = a + randombytes_uniform((uint32_t)(len - a) + 1);
			pb_aead_part_t v[4] = { { m, a }, { m + a, 0 }, { m + a, b - a }, { m + b, len - b } };
			size_t nv = 4;

			if (i % 3 == 0) { /* one part: the message whole */
				v[0] = (pb_aead_part_t){ m, len };
				nv = 1;
			}

			randombytes_buf(key, sizeof(key));
			randombytes_buf(nonce, sizeof(nonce));
			randombytes_buf(m, len);
			crypto_aead_chacha20poly1305_ietf_encrypt(c1, &n, m, len, NULL, 0, NULL, nonce, key);
			memset(c2, 0, len + 16);
			assert_int_equal(pb__aead_encrypt_parts_libcrypto(c2, v, nv, len, nonce, key), 0);
			assert_memory_equal(c1, c2, len + 16);
			memset(c2, 0, len + 16);
			pb__aead_encrypt_parts(c2, v, nv, len, nonce, key);
			assert_memory_equal(c1, c2, len + 16);
		}
		warm_libcrypto();
	}
	free(m);
	free(c1);
	free(c2);
}

typedef int (*dec_fn)(uint8_t *, const uint8_t *, size_t, const uint8_t *, size_t, const uint8_t *, const uint8_t *);

/* A changed byte of ciphertext, tag or associated data fails, and the
 * output holds zeros, not the plaintext. */
static void tamper(dec_fn dec, size_t len)
{
	uint8_t key[32], nonce[12], ad[20];
	uint8_t *m = malloc(len + 1), *c = malloc(len + 16), *out = malloc(len + 1);
	size_t spots[] = { 0, len / 2, len > 0 ? len - 1 : 0, len, len + 15 };

	assert_true(m && c && out);
	randombytes_buf(key, sizeof(key));
	randombytes_buf(nonce, sizeof(nonce));
	randombytes_buf(ad, sizeof(ad));
	randombytes_buf(m, len);
	pb__aead_encrypt_sodium(c, m, len, ad, sizeof(ad), nonce, key);
	for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
		if (spots[i] >= len + 16)
			continue;
		c[spots[i]] ^= 0x20;
		memset(out, 0xa5, len + 1);
		assert_int_equal(dec(out, c, len + 16, ad, sizeof(ad), nonce, key), -1);
		assert_true(all_zero(out, len));
		c[spots[i]] ^= 0x20;
	}
	ad[3] ^= 1;
	memset(out, 0xa5, len + 1);
	assert_int_equal(dec(out, c, len + 16, ad, sizeof(ad), nonce, key), -1);
	assert_true(all_zero(out, len));
	ad[3] ^= 1;
	nonce[11] ^= 1;
	assert_int_equal(dec(out, c, len + 16, ad, sizeof(ad), nonce, key), -1);
	nonce[11] ^= 1;
	/* Shorter than a tag. */
	assert_int_equal(dec(out, c, 15, ad, sizeof(ad), nonce, key), -1);
	/* In place: the ciphertext is wiped too. */
	c[0] ^= 1;
	assert_int_equal(dec(c, c, len + 16, ad, sizeof(ad), nonce, key), -1);
	assert_true(all_zero(c, len));
	free(m);
	free(c);
	free(out);
}

static void test_tamper_rejected(void **state)
{
	static const size_t lens[] = { 0, 1, 100, PB_AEAD_LIBCRYPTO_MIN, 65536, 200 * 1024 };

	(void)state;
	warm_libcrypto();
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		tamper(pb__aead_decrypt_libcrypto, lens[i]);
		tamper(pb__aead_decrypt_sodium, lens[i]);
		tamper(pb__aead_decrypt, lens[i]);
	}
}

/* Threads each keep their own contexts, freed when they end (the leak
 * checker of the sanitizer build sees any that is not). */
static void *thread_main(void *arg)
{
	uint8_t *buf = malloc(70000 + 16), *out = malloc(70000);
	uint8_t key[32], nonce[24];
	int ok = 1;

	(void)arg;
	if (buf == NULL || out == NULL)
		abort();
	randombytes_buf(key, sizeof(key));
	randombytes_buf(nonce, sizeof(nonce));
	for (int i = 0; i < 50 && ok; i++) {
		randombytes_buf(buf, 70000);
		memcpy(out, buf, 70000);
		pb__aead_xencrypt(buf, buf, 70000, NULL, 0, nonce, key);
		ok = pb__aead_xdecrypt(buf, buf, 70000 + 16, NULL, 0, nonce, key) == 0 && memcmp(buf, out, 70000) == 0;
	}
	free(buf);
	free(out);
	return ok ? arg : NULL;
}

static void test_threads(void **state)
{
	pthread_t t[4];
	void *ret;

	(void)state;
	warm_libcrypto();
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, thread_main, state), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_ptr_equal(ret, state);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8439_vector),
		cmocka_unit_test(test_xchacha_draft_vector),
		cmocka_unit_test(test_random_against_libsodium),
		cmocka_unit_test(test_parts_against_whole),
		cmocka_unit_test(test_tamper_rejected),
		cmocka_unit_test(test_threads),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
