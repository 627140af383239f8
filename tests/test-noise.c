/* The Noise engine: every published vector, and the properties the secure
 * channel relies on (authentication, psk binding, nonce exhaustion). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "testutil.h"
#include "peerback.h"
#include "peerback/noise.h"

static void run_vectors(const char *file, const char *expect)
{
	char *path = pb_test_data(file);
	char *tool = pb_test_tool("noise-vectors");
	char *argv[] = { tool, path, NULL };
	char *out = NULL;
	int rc = pb_test_run(argv, NULL, 120, &out, NULL);

	printf("%s: %s", file, out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, expect));
	free(out);
	free(tool);
	free(path);
}

static void test_cacophony_vectors(void **state)
{
	(void)state;
	/* Every pattern in the file: fundamental, deferred, one-way, psk. */
	run_vectors("vectors/noise/cacophony-25519-ChaChaPoly-BLAKE2b.json", "59 passed, 0 failed");
}

static void test_snow_vectors(void **state)
{
	(void)state;
	run_vectors("vectors/noise/snow-25519-ChaChaPoly-BLAKE2b.json", "51 passed, 0 failed");
}

static void test_vector_runner_reports_failure(void **state)
{
	char *dir = pb_test_tmpdir("vectors");
	char path[4096];
	char *tool = pb_test_tool("noise-vectors");
	char *argv[] = { tool, path, NULL };
	char *out = NULL;
	size_t len;
	char *src = pb_test_data("vectors/noise/cacophony-25519-ChaChaPoly-BLAKE2b.json");
	char *json = (char *)pb_test_read_file(src, &len);
	char *ct;

	(void)state;
	assert_non_null(json);
	/* Corrupt the first ciphertext's first hex digit. */
	ct = strstr(json, "\"ciphertext\": \"");
	assert_non_null(ct);
	ct += strlen("\"ciphertext\": \"");
	*ct = *ct == '0' ? '1' : '0';
	snprintf(path, sizeof(path), "%s/bad.json", dir);
	assert_int_equal(pb_test_write_file(path, json, len), 0);
	assert_int_equal(pb_test_run(argv, NULL, 60, &out, NULL), 1);
	assert_non_null(strstr(out, "58 passed, 1 failed"));
	free(out);
	free(json);
	free(src);
	free(tool);
	pb_test_rmtree(dir);
	free(dir);
}

struct pair {
	pb_noise_hs_t *i, *r;
	pb_noise_cipher_t is, ir, rs, rr;
	uint8_t hi[64], hr[64];
};

static int handshake(struct pair *p)
{
	uint8_t msg[1024], pl[1024];
	size_t len, plen;
	int rc;

	while (pb_noise_hs_action(p->i) != PB_NOISE_SPLIT) {
		pb_noise_hs_t *w = pb_noise_hs_action(p->i) == PB_NOISE_WRITE ? p->i : p->r;
		pb_noise_hs_t *r = w == p->i ? p->r : p->i;

		rc = pb_noise_hs_write(w, (const uint8_t *)"hi", 2, msg, sizeof(msg), &len);
		if (rc != 0)
			return rc;
		rc = pb_noise_hs_read(r, msg, len, pl, sizeof(pl), &plen);
		if (rc != 0)
			return rc;
		if (plen != 2 || memcmp(pl, "hi", 2) != 0)
			return -1;
	}
	assert_int_equal(pb_noise_hs_split(p->i, &p->is, &p->ir, p->hi), 0);
	assert_int_equal(pb_noise_hs_split(p->r, &p->rs, &p->rr, p->hr), 0);
	return 0;
}

static void keys(uint8_t pub[32], uint8_t priv[32])
{
	pb_noise_keypair(pub, priv);
}

static void test_nkpsk0_and_ik(void **state)
{
	uint8_t hpub[32], hpriv[32], ppub[32], ppriv[32], psk[32], ct[64], pt[64];
	pb_noise_config_t ic = { 0 }, rc = { 0 };
	struct pair p = { 0 };
	size_t n;

	(void)state;
	keys(hpub, hpriv);
	keys(ppub, ppriv);
	randombytes_buf(psk, sizeof(psk));
	/* First pairing: the phone knows the host key and the QR secret. */
	ic.rs = hpub;
	ic.psks[0] = psk;
	ic.npsks = 1;
	ic.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	ic.prologue_len = strlen(PB_NOISE_PROLOGUE);
	rc.s_priv = hpriv;
	rc.psks[0] = psk;
	rc.npsks = 1;
	rc.prologue = ic.prologue;
	rc.prologue_len = ic.prologue_len;
	assert_int_equal(pb_noise_hs_new(PB_NOISE_PAIRING, true, &ic, &p.i), 0);
	assert_int_equal(pb_noise_hs_new(PB_NOISE_PAIRING, false, &rc, &p.r), 0);
	assert_int_equal(handshake(&p), 0);
	assert_memory_equal(p.hi, p.hr, 64);
	assert_int_equal(pb_noise_encrypt(&p.is, NULL, 0, (const uint8_t *)"ping", 4, ct, sizeof(ct), &n), 0);
	assert_int_equal(pb_noise_decrypt(&p.rr, NULL, 0, ct, n, pt, sizeof(pt), &n), 0);
	assert_memory_equal(pt, "ping", 4);
	pb_noise_hs_free(p.i);
	pb_noise_hs_free(p.r);

	/* Remembered pairing: IK, and the host learns the phone's key. */
	memset(&p, 0, sizeof(p));
	memset(&ic, 0, sizeof(ic));
	memset(&rc, 0, sizeof(rc));
	ic.s_priv = ppriv;
	ic.rs = hpub;
	rc.s_priv = hpriv;
	assert_int_equal(pb_noise_hs_new(PB_NOISE_REMEMBERED, true, &ic, &p.i), 0);
	assert_int_equal(pb_noise_hs_new(PB_NOISE_REMEMBERED, false, &rc, &p.r), 0);
	assert_int_equal(handshake(&p), 0);
	assert_memory_equal(pb_noise_hs_remote_static(p.r), ppub, 32);
	assert_int_equal(pb_noise_encrypt(&p.rs, NULL, 0, (const uint8_t *)"pong", 4, ct, sizeof(ct), &n), 0);
	assert_int_equal(pb_noise_decrypt(&p.ir, NULL, 0, ct, n, pt, sizeof(pt), &n), 0);
	assert_memory_equal(pt, "pong", 4);
	pb_noise_hs_free(p.i);
	pb_noise_hs_free(p.r);
}

static void test_wrong_psk_or_key_fails(void **state)
{
	uint8_t hpub[32], hpriv[32], opub[32], opriv[32], psk[32], psk2[32];
	pb_noise_config_t ic = { 0 }, rc = { 0 };
	struct pair p = { 0 };

	(void)state;
	keys(hpub, hpriv);
	keys(opub, opriv);
	randombytes_buf(psk, 32);
	randombytes_buf(psk2, 32);
	ic.rs = hpub;
	ic.psks[0] = psk;
	ic.npsks = 1;
	rc.s_priv = hpriv;
	rc.psks[0] = psk2;
	rc.npsks = 1;
	assert_int_equal(pb_noise_hs_new(PB_NOISE_PAIRING, true, &ic, &p.i), 0);
	assert_int_equal(pb_noise_hs_new(PB_NOISE_PAIRING, false, &rc, &p.r), 0);
	assert_int_equal(handshake(&p), PB_ENOISE_DECRYPT);
	pb_noise_hs_free(p.i);
	pb_noise_hs_free(p.r);

	/* Right psk, but a responder holding another static key. */
	memset(&p, 0, sizeof(p));
	rc.psks[0] = psk;
	rc.s_priv = opriv;
	assert_int_equal(pb_noise_hs_new(PB_NOISE_PAIRING, true, &ic, &p.i), 0);
	assert_int_equal(pb_noise_hs_new(PB_NOISE_PAIRING, false, &rc, &p.r), 0);
	assert_int_equal(handshake(&p), PB_ENOISE_DECRYPT);
	pb_noise_hs_free(p.i);
	pb_noise_hs_free(p.r);
}

static void test_tamper_and_nonce_exhaustion(void **state)
{
	pb_noise_cipher_t a = { 0 }, b = { 0 };
	uint8_t ct[64], pt[64];
	size_t n;

	(void)state;
	randombytes_buf(a.k, 32);
	a.has_key = true;
	b = a;
	assert_int_equal(pb_noise_encrypt(&a, NULL, 0, (const uint8_t *)"data", 4, ct, sizeof(ct), &n), 0);
	ct[0] ^= 1;
	assert_int_equal(pb_noise_decrypt(&b, NULL, 0, ct, n, pt, sizeof(pt), &n), PB_ENOISE_DECRYPT);
	assert_int_equal(b.n, 0); /* a failed message does not advance the nonce */
	/* The last usable nonce works; the reserved one is refused, never wrapped. */
	a.n = UINT64_MAX - 1;
	b.n = UINT64_MAX - 1;
	assert_int_equal(pb_noise_encrypt(&a, NULL, 0, (const uint8_t *)"last", 4, ct, sizeof(ct), &n), 0);
	assert_int_equal(pb_noise_decrypt(&b, NULL, 0, ct, n, pt, sizeof(pt), &n), 0);
	assert_int_equal(pb_noise_encrypt(&a, NULL, 0, (const uint8_t *)"more", 4, ct, sizeof(ct), &n), PB_ENOISE_NONCE);
	assert_int_equal(a.n, UINT64_MAX);
	/* Rekey on both sides keeps them in step and changes the key. */
	a.n = b.n = 5;
	{
		uint8_t old[32];
		memcpy(old, a.k, 32);
		pb_noise_rekey(&a);
		pb_noise_rekey(&b);
		assert_memory_not_equal(old, a.k, 32);
	}
	assert_int_equal(pb_noise_encrypt(&a, NULL, 0, (const uint8_t *)"next", 4, ct, sizeof(ct), &n), 0);
	assert_int_equal(pb_noise_decrypt(&b, NULL, 0, ct, n, pt, sizeof(pt), &n), 0);
	assert_memory_equal(pt, "next", 4);
}

static void test_bad_names_and_missing_keys(void **state)
{
	pb_noise_config_t c = { 0 };
	pb_noise_hs_t *hs = NULL;
	uint8_t psk[32] = { 0 };

	(void)state;
	assert_int_equal(pb_noise_hs_new("Noise_ZZ_25519_ChaChaPoly_BLAKE2b", true, &c, &hs), PB_ENOISE_PATTERN);
	assert_int_equal(pb_noise_hs_new("Noise_NN_448_AESGCM_SHA512", true, &c, &hs), PB_ENOISE_PATTERN);
	assert_int_equal(pb_noise_hs_new("Noise_NNpsk9_25519_ChaChaPoly_BLAKE2b", true, &c, &hs), PB_ENOISE_PATTERN);
	assert_int_equal(pb_noise_hs_new("Noise_NNpskx_25519_ChaChaPoly_BLAKE2b", true, &c, &hs), PB_ENOISE_PATTERN);
	/* NK needs the responder's key; NKpsk0 needs a psk. */
	assert_int_equal(pb_noise_hs_new("Noise_NK_25519_ChaChaPoly_BLAKE2b", true, &c, &hs), PB_ENOKEY);
	c.psks[0] = psk;
	c.npsks = 1;
	assert_int_equal(pb_noise_hs_new("Noise_NN_25519_ChaChaPoly_BLAKE2b", true, &c, &hs), PB_ENOKEY);
	assert_null(hs);
}

static void test_truncated_handshake_message(void **state)
{
	uint8_t hpub[32], hpriv[32], psk[32], msg[256], pl[256];
	pb_noise_config_t ic = { 0 }, rc = { 0 };
	pb_noise_hs_t *i, *r;
	size_t len, plen;

	(void)state;
	keys(hpub, hpriv);
	randombytes_buf(psk, 32);
	ic.rs = hpub;
	ic.psks[0] = psk;
	ic.npsks = 1;
	rc.s_priv = hpriv;
	rc.psks[0] = psk;
	rc.npsks = 1;
	assert_int_equal(pb_noise_hs_new(PB_NOISE_PAIRING, true, &ic, &i), 0);
	assert_int_equal(pb_noise_hs_new(PB_NOISE_PAIRING, false, &rc, &r), 0);
	assert_int_equal(pb_noise_hs_write(i, NULL, 0, msg, sizeof(msg), &len), 0);
	assert_int_equal(len, 48); /* e (32) + empty payload's tag (16) */
	assert_int_equal(pb_noise_hs_read(r, msg, 20, pl, sizeof(pl), &plen), PB_ETRUNCATED);
	/* A failed state refuses further use. */
	assert_int_equal(pb_noise_hs_read(r, msg, len, pl, sizeof(pl), &plen), PB_ESTATE);
	pb_noise_hs_free(i);
	pb_noise_hs_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cacophony_vectors),
		cmocka_unit_test(test_snow_vectors),
		cmocka_unit_test(test_vector_runner_reports_failure),
		cmocka_unit_test(test_nkpsk0_and_ik),
		cmocka_unit_test(test_wrong_psk_or_key_fails),
		cmocka_unit_test(test_tamper_and_nonce_exhaustion),
		cmocka_unit_test(test_bad_names_and_missing_keys),
		cmocka_unit_test(test_truncated_handshake_message),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
