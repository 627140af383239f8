/* The prepared-key BLAKE2b (agent/util/blake2b.c) gives what libsodium's
 * crypto_generichash gives, for random keys, lengths, digest lengths and
 * personalizations, and the RFC 7693 test vector, with the compression in
 * AVX2 registers (where the processor has them) and the portable one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "agent/util/blake2b.h"

static void test_rfc_vector(void **state)
{
	/* RFC 7693 Appendix A: BLAKE2b-512("abc"). */
	static const uint8_t want[64] = {
		0xBA, 0x80, 0xA5, 0x3F, 0x98, 0x1C, 0x4D, 0x0D, 0x6A, 0x27, 0x97, 0xB6, 0x9F, 0x12, 0xF6, 0xE9,
		0x4C, 0x21, 0x2F, 0x14, 0x68, 0x5A, 0xC4, 0xB7, 0x4B, 0x12, 0xBB, 0x6F, 0xDB, 0xFF, 0xA2, 0xD1,
		0x7D, 0x87, 0xC5, 0x39, 0x2A, 0xAB, 0x79, 0x2D, 0xC2, 0x52, 0xD5, 0xDE, 0x45, 0x33, 0xCC, 0x95,
		0x18, 0xD3, 0x8A, 0xA8, 0xDB, 0xF1, 0x92, 0x5A, 0xB9, 0x23, 0x86, 0xED, 0xD4, 0x00, 0x99, 0x23,
	};
	pb__b2k_t k;
	uint8_t out[64];

	(void)state;
	pb__b2k_init(&k, NULL, 0, 64, NULL);
	pb__b2k_hash(&k, (const uint8_t *)"abc", 3, out);
	assert_memory_equal(out, want, 64);
	pb__b2k_init(&k, NULL, 0, 64, NULL);
	k.avx2 = 0; /* unkeyed: nothing compressed yet */
	pb__b2k_hash(&k, (const uint8_t *)"abc", 3, out);
	assert_memory_equal(out, want, 64);
}

static void check_one(const uint8_t *key, size_t keylen, size_t outlen, const uint8_t *personal, const uint8_t *data,
		      size_t len)
{
	static const uint8_t zero16[16];
	uint8_t want[64], got[64];
	pb__b2k_t k;

	if (personal != NULL) {
		crypto_generichash_blake2b_state st;

		assert_int_equal(crypto_generichash_blake2b_init_salt_personal(&st, key, keylen, outlen, zero16, personal), 0);
		assert_int_equal(crypto_generichash_blake2b_update(&st, data, len), 0);
		assert_int_equal(crypto_generichash_blake2b_final(&st, want, outlen), 0);
	} else {
		assert_int_equal(crypto_generichash(want, outlen, data, len, key, keylen), 0);
	}
	pb__b2k_init(&k, key, keylen, outlen, personal);
	pb__b2k_hash(&k, data, len, got);
	assert_memory_equal(got, want, outlen);
	/* The prepared state serves again, unchanged. */
	pb__b2k_hash(&k, data, len, got);
	assert_memory_equal(got, want, outlen);
	/* And the portable compression gives the same where AVX2's ran. */
	k.avx2 = 0;
	memset(got, 0, sizeof(got));
	pb__b2k_hash(&k, data, len, got);
	assert_memory_equal(got, want, outlen);
}

static void test_against_libsodium(void **state)
{
	static uint8_t data[1200];
	uint8_t key[64], personal[16];
	size_t lens[] = {0, 1, 3, 63, 64, 127, 128, 129, 255, 256, 257, 383, 384, 385, 1024, 1200};

	(void)state;
	assert_true(sodium_init() >= 0);
	randombytes_buf(data, sizeof(data));
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (size_t keylen = 0; keylen <= 64; keylen += 16)
			for (size_t outlen = 8; outlen <= 64; outlen += 24) {
				randombytes_buf(key, sizeof(key));
				randombytes_buf(personal, sizeof(personal));
				check_one(key, keylen, outlen, NULL, data, lens[i]);
				check_one(key, keylen, outlen, personal, data, lens[i]);
			}
	for (int r = 0; r < 2000; r++) {
		size_t len = randombytes_uniform(sizeof(data) + 1);
		size_t keylen = randombytes_uniform(65);
		size_t outlen = 1 + randombytes_uniform(64);

		randombytes_buf(key, sizeof(key));
		randombytes_buf(personal, sizeof(personal));
		randombytes_buf(data, len);
		check_one(key, keylen, outlen, r % 2 ? personal : NULL, data, len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_vector),
		cmocka_unit_test(test_against_libsodium),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
