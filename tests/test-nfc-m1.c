/* M1 sector access end to end: the peerback program shows and writes
 * sectors of a MIFARE card in a device directory. A write must pass the
 * permission check (the operation key from the card's two stored keys
 * equals the sector's reference key) and the access check (the sector's
 * access bits allow the write with the key); each wrong key, access bits
 * or reference key refuses it, names the check, and leaves both the card
 * store and the cache copy as they were. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "agent/nfc/nfc.h"
#include "agent/util/fsutil.h"

static const uint8_t K1[6] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5 };
static const uint8_t K2[6] = { 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5 };
static const uint8_t KEY_A[6] = { 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f };
static const uint8_t KEY_B[6] = { 0x6f, 0x5e, 0x4d, 0x3c, 0x2b, 0x1a };
#define CARD "11223344-"

static char *dir;
static char home[4096], card_id[80], mfd[4200], keys[4200];
static char part_id[80]; /* a card read in part: it keeps a .mct sidecar */

static void set_sector(pb_mifare_card_t *c, unsigned s, const uint8_t cond[4], bool good_ref)
{
	unsigned t = pb_mifare_sector_trailer(s), ref = pb_m1_reference_block(s);
	uint8_t *tr = c->data + 16 * t;

	memcpy(tr, KEY_A, 6);
	pb_mifare_access_encode(cond, tr + 6);
	tr[9] = 0x69;
	memcpy(tr + 10, KEY_B, 6);
	for (unsigned b = pb_mifare_sector_first_block(s); b < ref; b++)
		if (b != 0)
			memset(c->data + 16 * b, (int)(0x10 * s + b), 16);
	memset(c->data + 16 * ref, 0, 16);
	if (good_ref)
		pb_m1_op_key(K1, K2, s, c->data + 16 * ref);
	else
		memcpy(c->data + 16 * ref, "\x01\x02\x03\x04\x05\x06", 6);
}

static void write_keys(const uint8_t k1[6], const uint8_t k2[6])
{
	char text[64], h1[13], h2[13];

	sodium_bin2hex(h1, sizeof(h1), k1, 6);
	sodium_bin2hex(h2, sizeof(h2), k2, 6);
	snprintf(text, sizeof(text), "# operation keys\n%s\n%s\n", h1, h2);
	assert_int_equal(pb_test_write_file(keys, text, strlen(text)), 0);
}

static int setup(void **state)
{
	pb_mifare_card_t *c = calloc(1, sizeof(*c));
	pb_buf_t b = { 0 };
	char bin[4200], mkdir_keys[4200];
	char *args[] = { "import", "mifare", bin, NULL };
	uint8_t *b0;

	(void)state;
	dir = pb_test_tmpdir("nfc-m1");
	snprintf(home, sizeof(home), "%s/phone", dir);
	assert_int_equal(pb__mkdirs(home, 0700), 0);
	assert_non_null(c);
	pb_mifare_init(c, 16);
	b0 = c->data;
	memcpy(b0, "\x11\x22\x33\x44", 4);
	b0[4] = 0x11 ^ 0x22 ^ 0x33 ^ 0x44;
	b0[5] = 0x08;
	b0[6] = 0x04;
	for (unsigned s = 0; s < 16; s++)
		set_sector(c, s, (const uint8_t[4]){ 0, 0, 0, 1 }, false);
	set_sector(c, 0, (const uint8_t[4]){ 0, 0, 0, 1 }, true);
	set_sector(c, 1, (const uint8_t[4]){ 4, 4, 4, 3 }, true); /* key B writes data */
	set_sector(c, 2, (const uint8_t[4]){ 2, 2, 2, 3 }, true); /* read only */
	set_sector(c, 3, (const uint8_t[4]){ 0, 0, 0, 1 }, true); /* transport: key A writes */
	set_sector(c, 4, (const uint8_t[4]){ 0, 0, 0, 1 }, false); /* reference of other keys */
	assert_int_equal(pb_mifare_validate(c, NULL, 0), 0);
	assert_int_equal(pb_mifare_card_id(c, card_id, sizeof(card_id)), 0);
	assert_int_equal(pb_mifare_format_bin(c, &b), 0);
	snprintf(bin, sizeof(bin), "%s/card.bin", dir);
	assert_int_equal(pb_test_write_file(bin, b.data, b.len), 0);
	pb_buf_free(&b);
	free(c);
	assert_int_equal(pb_test_peerback(home, args, NULL, NULL), 0);

	/* The card read in part: sector 5 missing from the dump. */
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	pb_mifare_init(c, 16);
	memcpy(c->data, "\x55\x66\x77\x88", 4);
	c->data[4] = 0x55 ^ 0x66 ^ 0x77 ^ 0x88;
	c->data[5] = 0x08;
	c->data[6] = 0x04;
	for (unsigned s = 0; s < 16; s++)
		set_sector(c, s, (const uint8_t[4]){ 0, 0, 0, 1 }, true);
	c->state[5] = PB_MIFARE_SECTOR_MISSING;
	memset(c->data + 16 * 20, 0, 64);
	memset(c->known + 16 * 20, 0, 64);
	assert_int_equal(pb_mifare_card_id(c, part_id, sizeof(part_id)), 0);
	assert_int_equal(pb_mifare_format_mct(c, &b), 0);
	snprintf(bin, sizeof(bin), "%s/part.mct", dir);
	assert_int_equal(pb_test_write_file(bin, b.data, b.len), 0);
	pb_buf_free(&b);
	free(c);
	assert_int_equal(pb_test_peerback(home, args, NULL, NULL), 0);

	snprintf(mfd, sizeof(mfd), "%s/device/mifare/%s.mfd", home, card_id);
	assert_int_equal(access(mfd, F_OK), 0);
	snprintf(mkdir_keys, sizeof(mkdir_keys), "%s/m1-keys", home);
	assert_int_equal(pb__mkdirs(mkdir_keys, 0700), 0);
	snprintf(keys, sizeof(keys), "%s/%s.keys", mkdir_keys, card_id);
	write_keys(K1, K2);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_rmtree(dir);
	free(dir);
	return 0;
}

/* Digests of what a refusal must leave alone. */
struct copies {
	char store[65], sidecar[65], cache[65], pending[65];
};

static void capture(unsigned sector, struct copies *c)
{
	char p[4200];

	pb_test_file_digest(mfd, c->store);
	snprintf(p, sizeof(p), "%s/device/mifare/%s.mct", home, card_id);
	pb_test_file_digest(p, c->sidecar);
	assert_int_equal(pb__m1_cache_path(home, card_id, sector, false, p, sizeof(p)), 0);
	pb_test_file_digest(p, c->cache);
	assert_int_equal(pb__m1_cache_path(home, card_id, sector, true, p, sizeof(p)), 0);
	pb_test_file_digest(p, c->pending);
}

static int m1_set(const char *block, const char *data, const char *key, char **out, char **err)
{
	char *args[] = { "--json", "nfc", "mifare", "set", CARD, "--block", (char *)block, "--data", (char *)data,
			 key != NULL ? "--key" : NULL, (char *)key, NULL };

	return pb_test_peerback(home, args, out, err);
}

/* A write that must be refused by check, with error, changing nothing. */
static void expect_refused(unsigned sector, const char *block, const char *key, const char *check, const char *error,
			   const char *words)
{
	struct copies before, after;
	char *out = NULL, *err = NULL, want[64];

	capture(sector, &before);
	assert_int_equal(m1_set(block, "DEADBEEFDEADBEEFDEADBEEFDEADBEEF", key, &out, &err), 1);
	snprintf(want, sizeof(want), "\"check\":\"%s\"", check);
	if (strstr(out, want) == NULL || strstr(out, error) == NULL || strstr(err, words) == NULL)
		fail_msg("block %s: want %s %s '%s'; got %s / %s", block, check, error, words, out, err);
	assert_non_null(strstr(err, "nothing was changed"));
	capture(sector, &after);
	assert_string_equal(before.store, after.store);
	assert_string_equal(before.sidecar, after.sidecar);
	assert_string_equal(before.cache, after.cache);
	assert_string_equal(after.pending, "absent");
	free(out);
	free(err);
}

static void test_show(void **state)
{
	char *args[] = { "--json", "nfc", "mifare", "show", CARD, "--sector", "1", NULL };
	char *text_args[] = { "nfc", "mifare", "show", CARD, NULL };
	char *out = NULL;

	(void)state;
	assert_int_equal(pb_test_peerback(home, args, &out, NULL), 0);
	assert_non_null(strstr(out, "\"sector\":1,"));
	assert_non_null(strstr(out, "\"access\":\"787788\""));
	assert_non_null(strstr(out, "\"cache\":\"none\""));
	assert_non_null(strstr(out, "\"14141414141414141414141414141414\""));
	assert_null(strstr(out, "\"sector\":2,"));
	free(out);
	assert_int_equal(pb_test_peerback(home, text_args, &out, NULL), 0);
	assert_non_null(strstr(out, "16 sectors"));
	assert_non_null(strstr(out, "sector 15:"));
	free(out);
}

static void test_write_with_right_keys(void **state)
{
	char *show[] = { "--json", "nfc", "mifare", "show", card_id, "--sector", "1", NULL };
	char *out = NULL, p[4200];
	uint8_t *cache, *store;
	size_t clen, slen;

	(void)state;
	assert_int_equal(m1_set("5", "00112233445566778899AABBCCDDEEFF", NULL, &out, NULL), 0);
	assert_non_null(strstr(out, "\"event\":\"m1-written\""));
	assert_non_null(strstr(out, "\"key\":\"B\"")); /* key A may only read here */
	free(out);
	/* The card store holds the new block; the cache copy the new sector. */
	store = pb_test_read_file(mfd, &slen);
	assert_int_equal(slen, 1024);
	assert_int_equal(pb__m1_cache_path(home, card_id, 1, false, p, sizeof(p)), 0);
	cache = pb_test_read_file(p, &clen);
	assert_non_null(cache);
	assert_int_equal(clen, 64);
	assert_memory_equal(store + 16 * 5, "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 16);
	assert_memory_equal(cache, store + 64, 64);
	free(store);
	free(cache);
	assert_int_equal(pb_test_peerback(home, show, &out, NULL), 0);
	assert_non_null(strstr(out, "\"00112233445566778899AABBCCDDEEFF\""));
	assert_non_null(strstr(out, "\"cache\":\"same\""));
	free(out);
	/* Key A writes a transport sector. */
	assert_int_equal(m1_set("12", "0102030405060708090A0B0C0D0E0F10", "A", &out, NULL), 0);
	assert_non_null(strstr(out, "\"key\":\"A\""));
	free(out);
}

static void test_wrong_keys_refused(void **state)
{
	static const uint8_t other[6] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa6 };

	(void)state;
	write_keys(other, K2); /* first key wrong */
	expect_refused(1, "5", NULL, "permission", "PB_EM1_PERMISSION", "permission check");
	write_keys(K1, other); /* second key wrong */
	expect_refused(1, "5", NULL, "permission", "PB_EM1_PERMISSION", "reference key in block 6");
	write_keys(K2, K1); /* both right, in the wrong order */
	expect_refused(1, "5", NULL, "permission", "PB_EM1_PERMISSION", "permission check");
	assert_int_equal(unlink(keys), 0); /* no keys at all */
	expect_refused(1, "5", NULL, "keys", "PB_ENOKEY", "are missing");
	assert_int_equal(pb_test_write_file(keys, "A0A1A2A3A4A5\n", 13), 0); /* one key only */
	expect_refused(1, "5", NULL, "keys", "PB_EDATA_FORMAT", "exactly two");
	write_keys(K1, K2);
	/* A sector whose reference key belongs to other keys. */
	expect_refused(4, "17", NULL, "permission", "PB_EM1_PERMISSION", "reference key in block 18");
}

static void test_wrong_access_bits_refused(void **state)
{
	(void)state;
	/* 100: key A may only read the data blocks. */
	expect_refused(1, "4", "A", "access", "PB_EM1_ACCESS", "with key A");
	/* 010: nobody writes. */
	expect_refused(2, "8", NULL, "access", "PB_EM1_ACCESS", "access check");
	expect_refused(2, "9", "B", "access", "PB_EM1_ACCESS", "with key B");
	/* Trailer 001 keeps key B readable, so it cannot authenticate. */
	expect_refused(3, "13", "B", "access", "PB_EM1_ACCESS", "with key B");
	/* The manufacturer block is never writable. */
	expect_refused(0, "0", NULL, "access", "PB_EM1_ACCESS", "access check");
	/* A trailer with inconsistent access bits would lock the sector. */
	expect_refused(3, "15", "A", "data", "PB_EDATA_ACCESS_BITS", "no longer be valid");
}

/* A card read in part keeps its .mct sidecar, which is what the phone
 * trusts: a write updates it with the dump, a refusal touches neither. */
static void test_card_with_sidecar(void **state)
{
	char mct[4200], part_keys[4200], part_mfd[4200], before_mct[65], before_mfd[65], now[65];
	char *set[] = { "--json", "nfc", "mifare", "set", "55667788", "--block", "4", "--data",
			"CAFEBABECAFEBABECAFEBABECAFEBABE", NULL };
	char *missing[] = { "nfc", "mifare", "set", "55667788", "--block", "21", "--data",
			    "CAFEBABECAFEBABECAFEBABECAFEBABE", NULL };
	char *show[] = { "--json", "nfc", "mifare", "show", "55667788", "--sector", "5", NULL };
	char *out = NULL, *err = NULL;
	uint8_t *text;
	size_t len;

	(void)state;
	snprintf(mct, sizeof(mct), "%s/device/mifare/%s.mct", home, part_id);
	snprintf(part_mfd, sizeof(part_mfd), "%s/device/mifare/%s.mfd", home, part_id);
	snprintf(part_keys, sizeof(part_keys), "%s/m1-keys/%s.keys", home, part_id);
	pb_test_file_digest(mct, before_mct);
	pb_test_file_digest(part_mfd, before_mfd);
	assert_string_not_equal(before_mct, "absent");
	/* No keys for this card yet: refused, nothing changes. */
	assert_int_equal(pb_test_peerback(home, set, &out, &err), 1);
	assert_non_null(strstr(out, "\"check\":\"keys\""));
	free(out);
	free(err);
	pb_test_file_digest(mct, now);
	assert_string_equal(before_mct, now);
	pb_test_file_digest(part_mfd, now);
	assert_string_equal(before_mfd, now);
	/* With its keys the write reaches both files. */
	{
		char text_keys[64], h1[13], h2[13];

		sodium_bin2hex(h1, sizeof(h1), K1, 6);
		sodium_bin2hex(h2, sizeof(h2), K2, 6);
		snprintf(text_keys, sizeof(text_keys), "%s\n%s\n", h1, h2);
		assert_int_equal(pb_test_write_file(part_keys, text_keys, strlen(text_keys)), 0);
	}
	assert_int_equal(pb_test_peerback(home, set, &out, NULL), 0);
	assert_non_null(strstr(out, "\"event\":\"m1-written\""));
	free(out);
	text = pb_test_read_file(mct, &len);
	assert_non_null(text);
	assert_non_null(strstr((char *)text, "CAFEBABECAFEBABECAFEBABECAFEBABE"));
	assert_null(strstr((char *)text, "+Sector: 5"));
	free(text);
	text = pb_test_read_file(part_mfd, &len);
	assert_int_equal(len, 1024);
	assert_memory_equal(text + 64, "\xca\xfe\xba\xbe", 4);
	free(text);
	/* The sector that was never read cannot be written. */
	assert_int_equal(pb_test_peerback(home, missing, NULL, &err), 1);
	assert_non_null(strstr(err, "was not read"));
	free(err);
	assert_int_equal(pb_test_peerback(home, show, &out, NULL), 0);
	assert_non_null(strstr(out, "\"state\":\"missing\""));
	free(out);
}

static void test_bad_arguments(void **state)
{
	char *unknown[] = { "nfc", "mifare", "set", "99999999", "--block", "4", "--data",
			    "00112233445566778899AABBCCDDEEFF", NULL };
	char *short_data[] = { "nfc", "mifare", "set", CARD, "--block", "4", "--data", "0011", NULL };
	char *far_block[] = { "nfc", "mifare", "set", CARD, "--block", "64", "--data",
			      "00112233445566778899AABBCCDDEEFF", NULL };
	char *err = NULL;

	(void)state;
	assert_int_equal(pb_test_peerback(home, unknown, NULL, &err), 1);
	assert_non_null(strstr(err, "no MIFARE card '99999999'"));
	free(err);
	assert_int_equal(pb_test_peerback(home, short_data, NULL, &err), 1);
	assert_non_null(strstr(err, "32 hex digits"));
	free(err);
	assert_int_equal(pb_test_peerback(home, far_block, NULL, &err), 1);
	assert_non_null(strstr(err, "has no block 64"));
	free(err);
}

static void test_op_key(void **state)
{
	char *args[] = { "nfc", "mifare", "opkey", CARD, "--sector", "1", NULL };
	uint8_t a[6], b[6], c[6], d[6];
	char *out = NULL, hex[13];

	(void)state;
	pb_m1_op_key(K1, K2, 1, a);
	pb_m1_op_key(K1, K2, 2, b);
	pb_m1_op_key(K2, K1, 1, c);
	pb_m1_op_key(K1, K2, 1, d);
	assert_memory_equal(a, d, 6);
	assert_memory_not_equal(a, b, 6);
	assert_memory_not_equal(a, c, 6);
	assert_int_equal(pb_m1_reference_block(0), 2);
	assert_int_equal(pb_m1_reference_block(32), 142);
	assert_int_equal(pb_test_peerback(home, args, &out, NULL), 0);
	sodium_bin2hex(hex, sizeof(hex), a, 6);
	for (int i = 0; i < 12; i++)
		if (hex[i] >= 'a')
			hex[i] = (char)(hex[i] - 32);
	assert_non_null(strstr(out, hex));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_show),
		cmocka_unit_test(test_write_with_right_keys),
		cmocka_unit_test(test_wrong_keys_refused),
		cmocka_unit_test(test_wrong_access_bits_refused),
		cmocka_unit_test(test_card_with_sidecar),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_op_key),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
