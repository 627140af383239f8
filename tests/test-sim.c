/* SIM profiles: the ICCID/IMSI rules and examples of FORMATS.md, the EF
 * encodings, pySim-prog CSV import, the profiles.csv codec and export. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinds-util.h"
#include "peerback.h"
#include "peerback/nfc.h"
#include "agent/kinds/internal.h"

static void test_luhn_examples(void **state)
{
	(void)state;
	assert_true(pb_sim_iccid_ok("8988211000000430010"));
	assert_true(pb_sim_iccid_ok("8949440000001155314"));
	assert_true(pb_sim_iccid_ok("89445310150011013678"));
	assert_false(pb_sim_iccid_ok("2222334455667788990"));
	assert_int_equal(pb_sim_luhn_digit("222233445566778899", 18), 7);
	assert_true(pb_sim_iccid_ok("2222334455667788997"));
	/* Length and digits. */
	assert_false(pb_sim_iccid_ok("898821100000043001"));    /* 18 digits */
	assert_false(pb_sim_iccid_ok("898821100000043001000")); /* 21 digits */
	assert_false(pb_sim_iccid_ok("89882110000004300 0"));
	assert_false(pb_sim_iccid_ok(""));
	assert_false(pb_sim_iccid_ok(NULL));
	assert_true(pb_sim_luhn_ok("79927398713"));
	assert_false(pb_sim_luhn_ok("79927398710"));
}

static void test_imsi_rules(void **state)
{
	(void)state;
	assert_true(pb_sim_imsi_ok("228062800000208", NULL, NULL));
	assert_true(pb_sim_imsi_ok("228062800000208", "228", "06"));
	assert_true(pb_sim_imsi_ok("310260123456789", "310", "260"));
	assert_false(pb_sim_imsi_ok("228062800000208", "228", "07"));
	assert_false(pb_sim_imsi_ok("228062800000208", "262", ""));
	assert_false(pb_sim_imsi_ok("22806280000020A", NULL, NULL));
	assert_false(pb_sim_imsi_ok("2280628000002081", NULL, NULL)); /* 16 digits */
	assert_false(pb_sim_imsi_ok("22806", NULL, NULL));
}

static void test_ef_encodings(void **state)
{
	uint8_t ef[10], want_iccid[10], want_imsi[9];
	char out[32];

	(void)state;
	assert_int_equal(sodium_hex2bin(want_iccid, 10, "988812010000400310f0", 20, NULL, NULL, NULL), 0);
	assert_int_equal(pb_sim_ef_iccid_encode("8988211000000430010", ef), 0);
	assert_memory_equal(ef, want_iccid, 10);
	assert_int_equal(pb_sim_ef_iccid_decode(want_iccid, 10, out, sizeof(out)), 0);
	assert_string_equal(out, "8988211000000430010");
	assert_int_equal(pb_sim_ef_iccid_encode("89445310150011013678", ef), 0);
	assert_int_equal(pb_sim_ef_iccid_decode(ef, 10, out, sizeof(out)), 0);
	assert_string_equal(out, "89445310150011013678");
	assert_int_equal(pb_sim_ef_iccid_encode("89A", ef), PB_EDATA_FIELD);
	ef[3] = 0xfa; /* padding in the middle */
	assert_int_equal(pb_sim_ef_iccid_decode(ef, 10, out, sizeof(out)), PB_EDATA_FIELD);

	assert_int_equal(sodium_hex2bin(want_imsi, 9, "082982608200002080", 18, NULL, NULL, NULL), 0);
	assert_int_equal(pb_sim_ef_imsi_encode("228062800000208", ef), 0);
	assert_memory_equal(ef, want_imsi, 9);
	assert_int_equal(pb_sim_ef_imsi_decode(want_imsi, 9, out, sizeof(out)), 0);
	assert_string_equal(out, "228062800000208");
	/* An even number of digits: parity nibble 1 and an F pad. */
	assert_int_equal(pb_sim_ef_imsi_encode("22806280000020", ef), 0);
	assert_int_equal(ef[0], 8);
	assert_int_equal(ef[1] & 15, 1);
	assert_int_equal(ef[8] >> 4, 15);
	assert_int_equal(pb_sim_ef_imsi_decode(ef, 9, out, sizeof(out)), 0);
	assert_string_equal(out, "22806280000020");
	want_imsi[1] = 0x25; /* a parity nibble that is neither 9 nor 1 */
	assert_int_equal(pb_sim_ef_imsi_decode(want_imsi, 9, out, sizeof(out)), PB_EDATA_FIELD);
	assert_int_equal(pb_sim_ef_imsi_encode("2280628X0000208", ef), PB_EDATA_FIELD);
}

static const char good_csv[] =
	"ICCID,Imsi,MCC,mnc,ki,OPC,acc,adm1,msisdn,smsp\n"
	"8988211000000430010,262011234567890,262,01,000102030405060708090A0B0C0D0E0F,"
	"00112233445566778899AABBCCDDEEFF,0004,12345678,+491701234567,E1FF\n"
	"\"8949440000001155314\",228062800000208,228,06,101112131415161718191A1B1C1D1E1F,,0200,87654321,,\n";

static const char good_canonical[] =
	"iccid,imsi,mcc,mnc,msisdn,smsp,ki,opc,acc,pin_adm\n"
	"8988211000000430010,262011234567890,262,01,+491701234567,E1FF,000102030405060708090A0B0C0D0E0F,"
	"00112233445566778899AABBCCDDEEFF,0004,12345678\n"
	"8949440000001155314,228062800000208,228,06,,,101112131415161718191A1B1C1D1E1F,,0200,87654321\n";

static void test_import_and_export(void **state)
{
	char *dir = pb_test_tmpdir("sim"), err[512];
	const char *files[1];
	size_t len;
	uint8_t *data;

	(void)state;
	kt_write(kt_path(dir, "in.csv"), good_csv);
	files[0] = kt_path(dir, "in.csv");
	assert_int_equal(pb__import_sim(kt_path(dir, "dev"), files, 1, err, sizeof(err)), 0);
	kt_assert_file(kt_path(dir, "dev/sim/profiles.csv"), good_canonical, strlen(good_canonical));
	/* Importing the same profiles again changes nothing. */
	assert_int_equal(pb__import_sim(kt_path(dir, "dev"), files, 1, err, sizeof(err)), 0);
	kt_assert_file(kt_path(dir, "dev/sim/profiles.csv"), good_canonical, strlen(good_canonical));
	/* Export gives the device file back, byte for byte. */
	assert_int_equal(pb__export_sim(kt_path(dir, "dev"), "csv", kt_path(dir, "out"), err, sizeof(err)), 0);
	kt_assert_file(kt_path(dir, "out/profiles.csv"), good_canonical, strlen(good_canonical));
	/* And the exported file imports into the same device file. */
	files[0] = kt_path(dir, "out/profiles.csv");
	assert_int_equal(pb__import_sim(kt_path(dir, "dev2"), files, 1, err, sizeof(err)), 0);
	kt_assert_file(kt_path(dir, "dev2/sim/profiles.csv"), good_canonical, strlen(good_canonical));
	/* The EF form. */
	assert_int_equal(pb__export_sim(kt_path(dir, "dev"), "ef", kt_path(dir, "ef"), err, sizeof(err)), 0);
	data = pb_test_read_file(kt_path(dir, "ef/8988211000000430010.ef"), &len);
	assert_non_null(data);
	assert_string_equal((char *)data, "EF.ICCID: 988812010000400310f0\nEF.IMSI: 082926102143658709\n");
	free(data);
	assert_int_equal(pb__export_sim(kt_path(dir, "dev"), "xml", kt_path(dir, "x"), err, sizeof(err)),
			 PB_EUNSUPPORTED);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_canonical(void **state)
{
	pb_buf_t out = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(pb_sim_csv_canonical((const uint8_t *)good_csv, strlen(good_csv), &out, err, sizeof(err)), 0);
	assert_int_equal(out.len, strlen(good_canonical));
	assert_memory_equal(out.data, good_canonical, out.len);
	pb_buf_free(&out);
}

/* Each bad file gets its error, naming the line, and the device directory
 * stays as it was. */
static void expect_bad(const char *dir, const char *text, int want, const char *needle)
{
	uint8_t before[32], after[32];
	const char *files[2];
	char err[512] = "";

	kt_write(kt_path(dir, "ok.csv"), good_csv);
	kt_write(kt_path(dir, "bad.csv"), text);
	files[0] = kt_path(dir, "ok.csv");
	files[1] = kt_path(dir, "bad.csv");
	kt_dir_digest(kt_path(dir, "dev"), before);
	assert_int_equal(pb__import_sim(kt_path(dir, "dev"), files, 2, err, sizeof(err)), want);
	if (strstr(err, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err, needle);
	assert_non_null(strstr(err, "bad.csv"));
	kt_dir_digest(kt_path(dir, "dev"), after);
	assert_memory_equal(before, after, 32);
}

static void test_bad_input(void **state)
{
	char *dir = pb_test_tmpdir("sim-bad"), err[256];
	const char *files[1];
	char *line;
	int fd;

	(void)state;
	kt_mkdir(kt_path(dir, "dev"));
	kt_mkdir(kt_path(dir, "dev/sim"));
	kt_write(kt_path(dir, "dev/sim/profiles.csv"), good_canonical);
	expect_bad(dir, "iccid,imsi\n8988211000000430010,262011234567890\n2222334455667788990,262011234567891\n",
		   PB_EDATA_CHECKSUM, ":3: ICCID 2222334455667788990 fails its Luhn check (the last digit should be 7)");
	expect_bad(dir, "iccid,imsi\n8988211000000430010,2620112345A7890\n", PB_EDATA_FIELD, ":2: IMSI");
	expect_bad(dir, "iccid,imsi,mcc,mnc\n8988211000000430010,262011234567890,262,02\n", PB_EDATA_FIELD,
		   "does not start with MCC 262 and MNC 02");
	expect_bad(dir, "iccid,imsi,ki\n8988211000000430010,262011234567890,0011\n", PB_EDATA_FIELD,
		   ":2: Ki is not 32 hex digits");
	expect_bad(dir, "iccid,imsi,opc\n8988211000000430010,262011234567890,0011223344556677889900112233445G\n",
		   PB_EDATA_FIELD, "OPc");
	expect_bad(dir, "iccid,imsi,acc\n8988211000000430010,262011234567890,12345\n", PB_EDATA_FIELD, "ACC");
	expect_bad(dir, "iccid,imsi,msisdn\n8988211000000430010,262011234567890,+49-170\n", PB_EDATA_FIELD, "MSISDN");
	expect_bad(dir, "iccid,ki\n8988211000000430010,000102030405060708090A0B0C0D0E0F\n", PB_EDATA_FORMAT,
		   ":1: the header lacks the required column 'imsi'");
	expect_bad(dir, "iccid,imsi\n8988211000000430010\n", PB_EDATA_FORMAT, ":2: the row has 1 fields");
	expect_bad(dir, "iccid,imsi,iccid\n", PB_EDATA_FORMAT, "appears twice");
	expect_bad(dir, "iccid,imsi\n\"8988211000000430010,262011234567890\n", PB_EDATA_FORMAT, ":2: field 1");
	expect_bad(dir, "iccid,imsi\n8988211000000430010,262011234567890\n8988211000000430010,262011234567891\n",
		   PB_EEXISTS, ":3: ICCID 8988211000000430010 appears twice");
	expect_bad(dir, "", PB_EDATA_FORMAT, "no header row");
	/* A line longer than the cap. */
	line = malloc(40000);
	memset(line, '1', 39999);
	memcpy(line, "iccid,imsi\n", 11);
	line[39999] = 0;
	expect_bad(dir, line, PB_ETOOBIG, ":2: line is longer than");
	free(line);
	/* A 100 MB file of a single line is refused before it is read. */
	fd = open(kt_path(dir, "huge.csv"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 100 << 20), 0);
	close(fd);
	files[0] = kt_path(dir, "huge.csv");
	assert_int_equal(pb__import_sim(kt_path(dir, "dev"), files, 1, err, sizeof(err)), PB_ETOOBIG);
	assert_non_null(strstr(err, "huge.csv"));
	kt_assert_file(kt_path(dir, "dev/sim/profiles.csv"), good_canonical, strlen(good_canonical));
	pb_test_rmtree(dir);
	free(dir);
}

static int collect(void *arg, const pb_item_t *item)
{
	pb_buf_t *ids = arg;

	assert_int_equal(pb_buf_append(ids, item->id, strlen(item->id)), 0);
	assert_int_equal(pb_buf_append(ids, ";", 1), 0);
	return 0;
}

static void test_codec_split_join(void **state)
{
	const pb_codec_t *c = pb_codec_for("sim/profiles.csv");
	static const char file[] = "iccid,imsi\n\n8988211000000430010,262011234567890\n\n\n"
				   "8949440000001155314,228062800000208";
	pb_buf_t ids = { 0 }, out = { 0 };
	pb_item_t items[2] = { 0 };

	(void)state;
	assert_non_null(c);
	assert_true(c->matches("sim/profiles.csv"));
	assert_false(c->matches("sim/profiles.csv.bak"));
	assert_int_equal(c->split("sim/profiles.csv", (const uint8_t *)file, strlen(file), collect, &ids), 0);
	assert_int_equal(pb_buf_append(&ids, "", 1), 0);
	assert_string_equal((char *)ids.data, "sim/8988211000000430010;sim/8949440000001155314;");
	/* Join of the items gives the file back. */
	items[0].id = "sim/8988211000000430010";
	items[0].data = (const uint8_t *)"iccid,imsi\n\n8988211000000430010,262011234567890\n\n\n";
	items[0].len = strlen((const char *)items[0].data);
	items[1].id = "sim/8949440000001155314";
	items[1].data = (const uint8_t *)"iccid,imsi\n\n8949440000001155314,228062800000208";
	items[1].len = strlen((const char *)items[1].data);
	assert_int_equal(c->join("sim/profiles.csv", items, 2, &out), 0);
	assert_int_equal(out.len, strlen(file));
	assert_memory_equal(out.data, file, out.len);
	pb_buf_free(&ids);
	pb_buf_free(&out);
}

static void test_generator(void **state)
{
	char *dir = pb_test_tmpdir("sim-gen");
	pb_buf_t ids = { 0 };
	char bad[256];

	(void)state;
	assert_int_equal(pb__gen_sim(dir, 3, PB_GEN_STANDARD), 0);
	/* The scan validates every row (Luhn, IMSI, Ki ...). */
	assert_int_equal(pb_device_scan(dir, 1u << PB_KIND_SIM, collect, &ids, bad, sizeof(bad)), 0);
	assert_int_equal(pb_buf_append(&ids, "", 1), 0);
	{
		size_t n = 0;
		for (const char *p = (char *)ids.data; (p = strchr(p, ';')) != NULL; p++)
			n++;
		assert_int_equal(n, 8);
	}
	pb_buf_free(&ids);
	pb_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_luhn_examples),   cmocka_unit_test(test_imsi_rules),
		cmocka_unit_test(test_ef_encodings),    cmocka_unit_test(test_canonical),
		cmocka_unit_test(test_import_and_export), cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_codec_split_join), cmocka_unit_test(test_generator),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
