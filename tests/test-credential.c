/* Secure-element credentials: the canonical JSON, the checksum rule, the
 * checks the NFC fallback relies on, import from JSON and from pySim
 * card-key CSV, export. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinds-util.h"
#include "peerback.h"
#include "peerback/nfc.h"
#include "agent/kinds/internal.h"

/* SHA-256("\x01\x02\x03\x04") starts 9f64a747. */
static const char canonical[] = "{\n"
				"  \"aid\": \"A0000000041010\",\n"
				"  \"checksum\": \"9F64A747\",\n"
				"  \"created\": 1700000000,\n"
				"  \"data\": \"01020304\",\n"
				"  \"expires\": 1900000000,\n"
				"  \"id\": \"card-1\",\n"
				"  \"issuer\": \"Test Bank\",\n"
				"  \"type\": \"payment\"\n"
				"}\n";

static void test_checksum_rule(void **state)
{
	uint8_t sum[4], want[4] = { 0x9f, 0x64, 0xa7, 0x47 };

	(void)state;
	pb_credential_checksum((const uint8_t *)"\x01\x02\x03\x04", 4, sum);
	assert_memory_equal(sum, want, 4);
}

static void test_parse_format(void **state)
{
	const char loose[] = "{\"type\":\"payment\",\"id\":\"card-1\",\"data\":\"01020304\",\"checksum\":\"9f64a747\","
			     "\"aid\":\"a0000000041010\",\"issuer\":\"Test Bank\",\"created\":1700000000,\"expires\":1900000000}";
	pb_credential_t *c;
	pb_buf_t out = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(pb_credential_parse((const uint8_t *)loose, strlen(loose), &c, err, sizeof(err)), 0);
	assert_string_equal(c->id, "card-1");
	assert_string_equal(c->aid, "A0000000041010");
	assert_int_equal(c->data_len, 4);
	assert_int_equal(c->expires, 1900000000);
	assert_int_equal(pb_credential_verify(c, 1800000000), 0);
	assert_int_equal(pb_credential_verify(c, 1900000000), PB_EDATA_EXPIRED);
	assert_int_equal(pb_credential_format(c, &out), 0);
	assert_int_equal(out.len, strlen(canonical));
	assert_memory_equal(out.data, canonical, out.len);
	pb_credential_free(c);
	/* The canonical form parses and formats to itself. */
	assert_int_equal(pb_credential_parse(out.data, out.len, &c, err, sizeof(err)), 0);
	out.len = 0;
	assert_int_equal(pb_credential_format(c, &out), 0);
	assert_memory_equal(out.data, canonical, strlen(canonical));
	c->data[0] ^= 1;
	assert_int_equal(pb_credential_verify(c, 0), PB_EDATA_CHECKSUM);
	pb_credential_free(c);
	pb_credential_free(NULL);
	pb_buf_free(&out);
}

static void expect_parse_error(const char *text, int want, const char *needle)
{
	pb_credential_t *c = NULL;
	char err[256] = "";

	assert_int_equal(pb_credential_parse((const uint8_t *)text, strlen(text), &c, err, sizeof(err)), want);
	assert_null(c);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_parse_errors(void **state)
{
	(void)state;
	expect_parse_error("{\"id\":\"a\",\"type\":\"payment\",\"data\":\"01\"", PB_EDATA_FORMAT, "line 1");
	expect_parse_error("[1,2]", PB_EDATA_FORMAT, "not a JSON object");
	expect_parse_error("{\"id\":\"a\",\"type\":\"payment\",\"data\":\"01\",\"checksum\":\"00000000\",\"x\":1}",
			   PB_EDATA_FIELD, "unknown field \"x\"");
	expect_parse_error("{\"id\":\"../a\",\"type\":\"payment\",\"data\":\"01\",\"checksum\":\"00000000\"}",
			   PB_EDATA_FIELD, "id \"../a\"");
	expect_parse_error("{\"id\":\"a\",\"type\":\"coupon\",\"data\":\"01\",\"checksum\":\"00000000\"}", PB_EDATA_FIELD,
			   "type \"coupon\"");
	expect_parse_error("{\"id\":\"a\",\"type\":\"payment\",\"data\":\"0\",\"checksum\":\"00000000\"}", PB_EDATA_FIELD,
			   "data is not");
	expect_parse_error("{\"id\":\"a\",\"type\":\"payment\",\"data\":\"01\",\"checksum\":\"0000\"}", PB_EDATA_FIELD,
			   "checksum");
	expect_parse_error("{\"id\":\"a\",\"type\":\"payment\",\"data\":\"01\",\"checksum\":\"00000000\",\"expires\":-1}",
			   PB_EDATA_FIELD, "expires");
	expect_parse_error("{\"id\":\"a\",\"id\":\"b\"}", PB_EDATA_FORMAT, "duplicate");
	expect_parse_error("{\"id\":\"a\",\"type\":\"payment\",\"data\":\"01\",\"checksum\":\"00000000\",\"aid\":\"A0\"}",
			   PB_EDATA_FIELD, "aid");
}

static void test_check_states(void **state)
{
	char *dir = pb_test_tmpdir("cred-check"), err[512];
	const char *files[1];

	(void)state;
	kt_write(kt_path(dir, "card-1.json"), canonical);
	files[0] = kt_path(dir, "card-1.json");
	assert_int_equal(pb__import_credentials(kt_path(dir, "dev"), files, 1, err, sizeof(err)), 0);
	kt_assert_file(kt_path(dir, "dev/credentials/card-1.json"), canonical, strlen(canonical));
	assert_int_equal(pb_credential_check(kt_path(dir, "dev"), "card-1", 1800000000), 0);
	assert_int_equal(pb_credential_check(kt_path(dir, "dev"), "card-1", 1900000001), PB_EDATA_EXPIRED);
	assert_int_equal(pb_credential_check(kt_path(dir, "dev"), "card-2", 0), PB_ENOTFOUND);
	assert_int_equal(pb_credential_check(kt_path(dir, "dev"), "../card-1", 0), PB_EINVAL);
	/* Data changed on the device: it fails its checksum. */
	{
		char tampered[sizeof(canonical)];
		memcpy(tampered, canonical, sizeof(canonical));
		memcpy(strstr(tampered, "01020304"), "01020305", 8);
		kt_write(kt_path(dir, "dev/credentials/card-1.json"), tampered);
	}
	assert_int_equal(pb_credential_check(kt_path(dir, "dev"), "card-1", 1800000000), PB_EDATA_CHECKSUM);
	kt_write(kt_path(dir, "dev/credentials/card-1.json"), "{\"id\":");
	assert_int_equal(pb_credential_check(kt_path(dir, "dev"), "card-1", 0), PB_EDATA_FORMAT);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_import_export_round_trip(void **state)
{
	char *dir = pb_test_tmpdir("cred-rt"), err[512];
	uint8_t a[32], b[32];

	(void)state;
	assert_int_equal(pb__gen_credentials(kt_path(dir, "dev"), 9, PB_GEN_STANDARD), 0);
	assert_int_equal(pb__export_credentials(kt_path(dir, "dev"), "json", kt_path(dir, "out"), err, sizeof(err)), 0);
	/* The exported files are the device's files, byte for byte. */
	kt_dir_digest(kt_path(dir, "dev/credentials"), a);
	kt_dir_digest(kt_path(dir, "out"), b);
	assert_memory_equal(a, b, 32);
	/* Every generated credential passes its checksum; some have expired. */
	{
		int expired = 0, ok = 0;
		for (unsigned i = 0; i < 12; i++) {
			static const char *const types[] = { "payment", "transit", "access", "identity", "other" };
			for (size_t t = 0; t < 5; t++) {
				char id[64];
				int rc;
				snprintf(id, sizeof(id), "%s-%03u", types[t], i);
				rc = pb_credential_check(kt_path(dir, "dev"), id, 1790000000);
				if (rc == PB_ENOTFOUND)
					continue;
				assert_true(rc == 0 || rc == PB_EDATA_EXPIRED);
				ok += rc == 0;
				expired += rc == PB_EDATA_EXPIRED;
			}
		}
		assert_int_equal(ok + expired, 12);
		assert_true(expired > 0 && ok > 0);
	}
	/* Importing the exported files gives the same device files. */
	{
		struct dirent **list;
		const char *files[64];
		char paths[64][512];
		int n = scandir(kt_path(dir, "out"), &list, NULL, alphasort), k = 0;

		assert_true(n > 2);
		for (int i = 0; i < n; i++) {
			if (list[i]->d_name[0] != '.' && k < 64) {
				snprintf(paths[k], sizeof(paths[k]), "%s/out/%s", dir, list[i]->d_name);
				files[k] = paths[k];
				k++;
			}
			free(list[i]);
		}
		free(list);
		assert_int_equal(k, 12);
		assert_int_equal(pb__import_credentials(kt_path(dir, "dev2"), files, (size_t)k, err, sizeof(err)), 0);
		kt_dir_digest(kt_path(dir, "dev2/credentials"), b);
		assert_memory_equal(a, b, 32);
	}
	assert_int_equal(pb__export_credentials(kt_path(dir, "dev"), "xml", kt_path(dir, "x"), err, sizeof(err)),
			 PB_EUNSUPPORTED);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_card_key_csv(void **state)
{
	char *dir = pb_test_tmpdir("cred-csv"), *fixture = pb_test_data("fixtures/sim/pysim-card_data.csv");
	char err[512] = "";
	const char *files[1];
	uint8_t before[32], after[32], *data, *nl;
	size_t len;
	pb_credential_t *c;

	(void)state;
	/* The fixture's last row fails its Luhn check: nothing is imported. */
	kt_mkdir(kt_path(dir, "dev"));
	kt_dir_digest(kt_path(dir, "dev"), before);
	files[0] = fixture;
	assert_int_equal(pb__import_credentials(kt_path(dir, "dev"), files, 1, err, sizeof(err)), PB_EDATA_CHECKSUM);
	assert_non_null(strstr(err, "pysim-card_data.csv:4: ICCID 2222334455667788990 fails its Luhn check"));
	kt_dir_digest(kt_path(dir, "dev"), after);
	assert_memory_equal(before, after, 32);

	/* Without that row, each row becomes a credential. */
	data = pb_test_read_file(fixture, &len);
	assert_non_null(data);
	nl = memmem(data, len, "\n0,2222", 6);
	assert_non_null(nl);
	assert_int_equal(pb_test_write_file(kt_path(dir, "good.csv"), data, (size_t)(nl - data) + 1), 0);
	free(data);
	files[0] = kt_path(dir, "good.csv");
	assert_int_equal(pb__import_credentials(kt_path(dir, "dev"), files, 1, err, sizeof(err)), 0);
	/* Exported as card-key CSV, the rows come back as they were. */
	assert_int_equal(pb__export_credentials(kt_path(dir, "dev"), "card-key-csv", kt_path(dir, "out"), err, sizeof(err)), 0);
	data = pb_test_read_file(kt_path(dir, "good.csv"), &len);
	assert_non_null(data);
	kt_assert_file(kt_path(dir, "out/card_data.csv"), data, len);
	free(data);
	assert_int_equal(pb_credential_check(kt_path(dir, "dev"), "iccid-8949440000001155314", 0), 0);
	assert_int_equal(pb_credential_check(kt_path(dir, "dev"), "iccid-8988211000000467343", 0), 0);
	assert_int_equal(pb_credential_load(kt_path(dir, "dev"), "iccid-8949440000001155314", &c), 0);
	assert_string_equal(c->type, "sim-keys");
	assert_non_null(memmem(c->data, c->data_len, "adm1=34173960\n", 14));
	assert_non_null(memmem(c->data, c->data_len, "SCP02_ENC_1=51D4FC44BCBA7C4589DFADA3297720AF\n", 45));
	pb_credential_free(c);
	pb_test_rmtree(dir);
	free(dir);
	free(fixture);
}

static void test_import_errors_leave_device(void **state)
{
	char *dir = pb_test_tmpdir("cred-bad"), err[512];
	const char *files[2];
	uint8_t before[32], after[32];
	static const struct {
		const char *text;
		int rc;
		const char *needle;
	} bad[] = {
		{ "{\"id\":\"x\",\"type\":\"payment\",\"data\":\"01020304\",\"checksum\":\"00000000\"}", PB_EDATA_CHECKSUM,
		  "bad.json: credential x fails its checksum (data gives 9F64A747)" },
		{ "{\"id\":\"x\",\"type\":\"payment\",\"da", PB_EDATA_FORMAT, "bad.json: line 1" },
		{ "", PB_EDATA_FORMAT, "bad.json: line" },
	};

	(void)state;
	kt_write(kt_path(dir, "good.json"), canonical);
	files[0] = kt_path(dir, "good.json");
	assert_int_equal(pb__import_credentials(kt_path(dir, "dev"), files, 1, err, sizeof(err)), 0);
	kt_dir_digest(kt_path(dir, "dev"), before);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kt_write(kt_path(dir, "new.json"), canonical);
		kt_write(kt_path(dir, "bad.json"), bad[i].text);
		files[0] = kt_path(dir, "new.json");
		files[1] = kt_path(dir, "bad.json");
		err[0] = 0;
		assert_int_equal(pb__import_credentials(kt_path(dir, "dev"), files, 2, err, sizeof(err)), bad[i].rc);
		if (strstr(err, bad[i].needle) == NULL)
			fail_msg("error '%s' lacks '%s'", err, bad[i].needle);
		kt_dir_digest(kt_path(dir, "dev"), after);
		assert_memory_equal(before, after, 32);
	}
	pb_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checksum_rule),  cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_parse_errors),   cmocka_unit_test(test_check_states),
		cmocka_unit_test(test_import_export_round_trip), cmocka_unit_test(test_card_key_csv),
		cmocka_unit_test(test_import_errors_leave_device),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
