/* The prepared-key BLAKE2b (agent/util/blake2b.c) gives what libsodium's
 * crypto_generichash gives, for random keys, lengths, digest lengths and
 * personalizations, and the RFC 7693 test vector, with the compression in
 * AVX2 registers (where the processor has them) and the portable one; and
 * pb__b2k_hash_many gives the same for batches of 0 to 40 messages of
 * mixed lengths, in each of its paths (eight AVX-512 lanes narrowing to
 * four, four AVX2 lanes, one message at a time). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
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

/* Message lengths for the batches: the edges of a block, short ones and
 * long ones up to 300 KiB, mixed; at most one long one in a batch given
 * *budget, for the time of the sanitizer build. */
static size_t pick_len(size_t *budget)
{
	static const size_t edges[] = { 0, 1, 127, 128, 129, 255, 256, 257, 1024 };

	switch (randombytes_uniform(4)) {
	case 0:
		return edges[randombytes_uniform(sizeof(edges) / sizeof(edges[0]))];
	case 1:
		return randombytes_uniform(2000);
	case 2:
		return 128 * (1 + randombytes_uniform(64)); /* multiples of a block */
	default:
		if (*budget < 300 * 1024)
			return randombytes_uniform(9000);
		*budget -= 300 * 1024;
		return randombytes_uniform(300 * 1024 + 1);
	}
}

static void want_of(const uint8_t *key, size_t keylen, size_t outlen, const uint8_t *personal, const uint8_t *data,
		    size_t len, uint8_t *want)
{
	static const uint8_t zero16[16];
	crypto_generichash_blake2b_state st;

	assert_int_equal(crypto_generichash_blake2b_init_salt_personal(&st, keylen > 0 ? key : NULL, keylen, outlen,
								       zero16, personal),
			 0);
	assert_int_equal(crypto_generichash_blake2b_update(&st, data, len), 0);
	assert_int_equal(crypto_generichash_blake2b_final(&st, want, outlen), 0);
}

enum path { PATH_AVX512, PATH_AVX2, PATH_PORTABLE };

/* The batch's digests in one path, each against libsodium's (want). The
 * output slots not asked for stay untouched. */
static void check_many(const pb__b2k_t *k0, enum path path, const uint8_t *const *data, const size_t *len, size_t n,
		       uint8_t (*want)[64])
{
	uint8_t got[40][65];
	uint8_t *out[40];
	pb__b2k_t k = *k0;

	if (path == PATH_AVX2)
		k.avx512 = 0;
	if (path == PATH_PORTABLE)
		k.avx512 = k.avx2 = 0;
	memset(got, 0xa5, sizeof(got));
	for (size_t j = 0; j < n; j++)
		out[j] = got[j];
	pb__b2k_hash_many(&k, data, len, out, n);
	for (size_t j = 0; j < n; j++) {
		assert_memory_equal(got[j], want[j], k.outlen);
		assert_int_equal(got[j][k.outlen], 0xa5);
	}
}

static void test_many_against_libsodium(void **state)
{
	static const size_t outlens[] = { 16, 32, 64 };
	const size_t span = 2 * 300 * 1024;
	uint8_t *buf = malloc(span);
	uint8_t key[64], personal[16];
	uint8_t want[40][64];
	const uint8_t *data[40];
	size_t len[40];
	pb__b2k_t k;
	int paths = 0;

	(void)state;
	assert_true(sodium_init() >= 0);
	assert_non_null(buf);
	randombytes_buf(buf, span);
	for (int round = 0; round < 2; round++)
		for (size_t n = 0; n <= 40; n++) {
			size_t budget = n % 6 == 1 ? 300 * 1024 : 0;
			size_t keylen = (n + round) % 3 == 0 ? 0 : 1 + randombytes_uniform(64);
			size_t outlen = outlens[(n + round) % 3];
			const uint8_t *pers = (n + round) % 2 ? personal : NULL;

			randombytes_buf(key, sizeof(key));
			randombytes_buf(personal, sizeof(personal));
			for (size_t j = 0; j < n; j++) {
				len[j] = pick_len(&budget);
				/* Anywhere in the buffer, at any alignment. */
				data[j] = buf + randombytes_uniform((uint32_t)(span - len[j] + 1));
				want_of(key, keylen, outlen, pers, data[j], len[j], want[j]);
			}
			pb__b2k_init(&k, key, keylen, outlen, pers);
			if (k.avx512) {
				check_many(&k, PATH_AVX512, data, len, n, want);
				paths |= 1;
			}
			if (k.avx2) {
				check_many(&k, PATH_AVX2, data, len, n, want);
				paths |= 2;
			}
			check_many(&k, PATH_PORTABLE, data, len, n, want);
		}
	print_message("hash_many paths run: AVX-512 %s, AVX2 %s, portable yes\n", paths & 1 ? "yes" : "no",
		      paths & 2 ? "yes" : "no");
	free(buf);
}

/* All messages of one length, so that every lane ends on the same block
 * and all are refilled at once; and one long message among many empty
 * ones, which runs alone at the end. */
static void test_many_shapes(void **state)
{
	static uint8_t buf[64 * 1024];
	static const size_t lens[] = { 0, 1, 127, 128, 129, 256, 1000 };
	uint8_t key[32], want[40][64];
	const uint8_t *data[40];
	size_t len[40];
	pb__b2k_t k;

	(void)state;
	assert_true(sodium_init() >= 0);
	randombytes_buf(buf, sizeof(buf));
	randombytes_buf(key, sizeof(key));
	pb__b2k_init(&k, key, sizeof(key), 32, NULL);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (size_t j = 0; j < 40; j++) {
			len[j] = lens[i];
			data[j] = buf + j;
			if (len[j] + j > sizeof(buf))
				data[j] = buf;
			want_of(key, sizeof(key), 32, NULL, data[j], len[j], want[j]);
		}
		for (size_t n = 1; n <= 40; n += 3) {
			check_many(&k, PATH_AVX512, data, len, n, want);
			check_many(&k, PATH_AVX2, data, len, n, want);
			check_many(&k, PATH_PORTABLE, data, len, n, want);
		}
	}
	/* (Just under the length from which one long message goes alone
	 * through libsodium: this one runs in the lanes, alone at the end.) */
	for (size_t j = 0; j < 40; j++) {
		len[j] = j == 17 ? sizeof(buf) - 1 : j % 5 == 0 ? 100 : 0;
		data[j] = buf;
		want_of(key, sizeof(key), 32, NULL, data[j], len[j], want[j]);
	}
	if (k.avx512)
		check_many(&k, PATH_AVX512, data, len, 40, want);
	if (k.avx2)
		check_many(&k, PATH_AVX2, data, len, 40, want);
	check_many(&k, PATH_PORTABLE, data, len, 40, want);
}

/* Long messages: one alone (libsodium's one stream, or the compression
 * here when a personalization, a short key or a short digest is asked
 * for), and one much longer than the others of its batch (hashed alone,
 * the others in the lanes), each against libsodium's whole-message hash. */
static void test_long_alone(void **state)
{
	const size_t big = 300 * 1024;
	uint8_t *buf = malloc(big + 64);
	uint8_t key[64], personal[16], want[40][64];
	const uint8_t *data[40];
	size_t len[40];
	static const size_t keylens[] = { 0, 8, 16, 32, 64 };
	static const size_t outlens[] = { 8, 16, 32, 64 };
	static const size_t longs[] = { 64 * 1024, 64 * 1024 + 1, 100 * 1024 + 3, 300 * 1024 };
	pb__b2k_t k;

	(void)state;
	assert_true(sodium_init() >= 0);
	assert_non_null(buf);
	randombytes_buf(buf, big + 64);
	randombytes_buf(key, sizeof(key));
	randombytes_buf(personal, sizeof(personal));
	for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++)
		for (size_t kl = 0; kl < sizeof(keylens) / sizeof(keylens[0]); kl++)
			for (size_t ol = 0; ol < sizeof(outlens) / sizeof(outlens[0]); ol++) {
				check_one(key, keylens[kl], outlens[ol], NULL, buf + i, longs[i]);
				if (i == 1)
					check_one(key, keylens[kl], outlens[ol], personal, buf + 1, longs[i]);
			}
	for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++)
		for (size_t n = 2; n <= 40; n += 7)
			for (int pers = 0; pers < 2; pers++) {
				/* The long one anywhere; the others together less than
				 * half of it, or (odd n) just more. */
				size_t at = (i * 7 + n) % n, each = longs[i] / 2 / (n - 1) + (n % 2 ? 1 : 0) * 4096;

				for (size_t j = 0; j < n; j++) {
					len[j] = j == at ? longs[i] : randombytes_uniform((uint32_t)each + 1);
					data[j] = buf + randombytes_uniform(64);
					want_of(key, 32, 32, pers ? personal : NULL, data[j], len[j], want[j]);
				}
				pb__b2k_init(&k, key, 32, 32, pers ? personal : NULL);
				if (k.avx512)
					check_many(&k, PATH_AVX512, data, len, n, want);
				if (k.avx2)
					check_many(&k, PATH_AVX2, data, len, n, want);
				check_many(&k, PATH_PORTABLE, data, len, n, want);
			}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_vector),
		cmocka_unit_test(test_against_libsodium),
		cmocka_unit_test(test_many_against_libsodium),
		cmocka_unit_test(test_many_shapes),
		cmocka_unit_test(test_long_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
