/* A hostile host and virtual SIM copies: the host stores only profiles
 * sealed to a device the account service vouches for, never to a key of its
 * own choosing. The host here is the real program; its hostility is what it
 * writes into its own host.db (a device row with its own key, a forged
 * certificate, an install instruction it sealed itself) before the phone's
 * next connection. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "harness.h"
#include "agent/host/hostdb.h"
#include "agent/util/fsutil.h"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], a1[4096], a2[4096];
static char a1_dev[64], a2_dev[64];
static uint8_t evil_pk[32], evil_sk[32];

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	const char *host_args[] = { "--max-failures", "1000", NULL };
	char d[4200];
	char *gen[] = { "gen", "--out", d, "--seed", "8", "--size", "small", NULL };

	(void)state;
	dir = pb_test_tmpdir("vsim-seal");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	mk(a1, "a1");
	mk(a2, "a2");
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, a1, "alice", "alice-phone"), 0);
	assert_int_equal(pb_test_login(&imd, a2, "alice", "alice-tablet"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", host_args);
	pb_test_pair(&host, a1);
	pb_test_pair(&host, a2);
	pb_test_device_id(a1, a1_dev);
	pb_test_device_id(a2, a2_dev);
	snprintf(d, sizeof(d), "%s/device", a1);
	assert_int_equal(pb_test_peerback(a1, gen, NULL, NULL), 0);
	/* The key pair the hostile host would like profiles sealed to. */
	crypto_box_keypair(evil_pk, evil_sk);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

/* Column c (0-based) of the n-th profile row of a phone's SIM file. */
static void sim_field(const char *home, int n, int c, char *out, size_t cap)
{
	char path[4200], *data, *line, *save = NULL;
	int i = 0;

	out[0] = 0;
	snprintf(path, sizeof(path), "%s/device/sim/profiles.csv", home);
	data = (char *)pb_test_read_file(path, NULL);
	assert_non_null(data);
	for (line = strtok_r(data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), i++) {
		if (i != n)
			continue;
		for (int k = 0; k < c && line != NULL; k++) {
			line = strchr(line, ',');
			if (line != NULL)
				line++;
		}
		assert_non_null(line);
		snprintf(out, cap, "%.*s", (int)strcspn(line, ",\r"), line);
	}
	free(data);
	assert_true(out[0] != 0);
}

static bool file_has(const char *home, const char *needle)
{
	char path[4200], *data;
	bool found;

	snprintf(path, sizeof(path), "%s/device/sim/profiles.csv", home);
	data = (char *)pb_test_read_file(path, NULL);
	if (data == NULL)
		return false;
	found = strstr(data, needle) != NULL;
	free(data);
	return found;
}

static void hostdb(pb_hostdb_t *db)
{
	assert_int_equal(pb__hostdb_open(host_home, db), 0);
}

/* The hostile host adds a device row of its own making. */
static void add_row(const uint8_t id[PB_DEVICE_ID_LEN], const uint8_t static_pk[32], const char *name)
{
	pb_hostdb_t db;
	sqlite3_stmt *st;
	uint8_t sign_pk[32];

	randombytes_buf(sign_pk, sizeof(sign_pk));
	hostdb(&db);
	assert_int_equal(sqlite3_prepare_v2(db.db,
					    "INSERT OR REPLACE INTO devices(device_id, account, name, static_pk, sign_pk,"
					    " paired_at, last_seen) VALUES(?, 'alice', ?, ?, ?, 1, 1)",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(st, 1, id, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, static_pk, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, sign_pk, 32, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	pb__hostdb_close(&db);
}

/* ... and files a certificate for it: the host's own, the only one signed
 * by the service it holds. Hosts that keep no certificates have nowhere to
 * put it. */
static void forge_cert(const uint8_t id[PB_DEVICE_ID_LEN])
{
	char path[4200];
	pb_hostdb_t db;
	sqlite3_stmt *st;
	uint8_t *cert;
	size_t len;

	snprintf(path, sizeof(path), "%s/cert.bin", host_home);
	cert = pb_test_read_file(path, &len);
	assert_non_null(cert);
	hostdb(&db);
	if (sqlite3_prepare_v2(db.db, "INSERT OR REPLACE INTO certificates(device_id, cert, updated) VALUES(?, ?, 1)",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, id, PB_DEVICE_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, cert, (int)len, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
	}
	pb__hostdb_close(&db);
	free(cert);
}

static void host_identity(uint8_t id[PB_DEVICE_ID_LEN], uint8_t static_pk[32], uint8_t static_sk[32])
{
	char path[4200];
	uint8_t *buf;
	size_t len;

	snprintf(path, sizeof(path), "%s/identity.key", host_home);
	buf = pb_test_read_file(path, &len);
	assert_non_null(buf);
	assert_int_equal(len, PB_DEVICE_ID_LEN + 64 + 32);
	memcpy(id, buf, PB_DEVICE_ID_LEN);
	memcpy(static_sk, buf + PB_DEVICE_ID_LEN + 64, 32);
	crypto_scalarmult_base(static_pk, static_sk);
	sodium_memzero(buf, len);
	free(buf);
}

static long long queue(char *const args[])
{
	char *out = NULL, *err = NULL;
	long long id;

	if (pb_test_peerback(host_home, args, &out, &err) != 0)
		fail_msg("instruct: %s", err);
	id = pb_test_json_num(out, "id");
	free(out);
	free(err);
	assert_true(id > 0);
	return id;
}

static char *ping(const char *home)
{
	char *args[] = { "--json", "ping", NULL }, *out = NULL, *err = NULL;

	if (pb_test_peerback(home, args, &out, &err) != 0)
		fail_msg("ping: %s", err);
	free(err);
	return out;
}

struct seen {
	int64_t id;
	char state[16], result[256];
	size_t installs_for_row;
	const uint8_t *row;
	size_t opened;       /* payloads the host (or its key) could open */
	uint8_t keys[2][2][32]; /* (pk, sk) pairs the host holds */
	size_t nkeys;
};

static int look(void *arg, const pb_instruction_t *in)
{
	struct seen *s = arg;

	if (in->id == s->id) {
		snprintf(s->state, sizeof(s->state), "%s", in->state);
		snprintf(s->result, sizeof(s->result), "%s", in->result);
	}
	if (strcmp(in->op, "install-vsim") == 0 && s->row != NULL &&
	    memcmp(in->device, s->row, PB_DEVICE_ID_LEN) == 0)
		s->installs_for_row++;
	/* Whatever the host received or stored: can any key it holds open it? */
	for (size_t k = 0; k < s->nkeys && in->payload_len > crypto_box_SEALBYTES; k++) {
		uint8_t *plain = malloc(in->payload_len);

		assert_non_null(plain);
		if (crypto_box_seal_open(plain, in->payload, in->payload_len, s->keys[k][0], s->keys[k][1]) == 0)
			s->opened++;
		free(plain);
	}
	return 0;
}

/* Queues copy-vsim of a1's first profile to the forged row, lets a1 connect,
 * and checks that a1 refused, said so, and that nothing the host holds
 * opens with any key the host has. */
static void expect_refused_copy(const uint8_t row[PB_DEVICE_ID_LEN], const char *why)
{
	char row_hex[2 * PB_DEVICE_ID_LEN + 1], iccid[32], imsi[32], ki[64], opc[64], adm[32], *out;
	char *args[] = { "--json", "host", "instruct", a1_dev, "copy-vsim", iccid, "--to", row_hex, NULL };
	uint8_t hid[PB_DEVICE_ID_LEN];
	struct seen s;
	pb_hostdb_t db;

	pb__hex(row, PB_DEVICE_ID_LEN, row_hex);
	sim_field(a1, 1, 0, iccid, sizeof(iccid));
	sim_field(a1, 1, 1, imsi, sizeof(imsi));
	sim_field(a1, 1, 6, ki, sizeof(ki));
	sim_field(a1, 1, 7, opc, sizeof(opc));
	sim_field(a1, 1, 9, adm, sizeof(adm));
	memset(&s, 0, sizeof(s));
	s.id = queue(args);
	s.row = row;
	memcpy(s.keys[0][0], evil_pk, 32);
	memcpy(s.keys[0][1], evil_sk, 32);
	host_identity(hid, s.keys[1][0], s.keys[1][1]);
	s.nkeys = 2;

	out = ping(a1);
	hostdb(&db);
	assert_int_equal(pb__hostdb_instructions(&db, NULL, false, look, &s), 0);
	pb__hostdb_close(&db);
	if (s.opened != 0)
		fail_msg("%s: the host opened %zu sealed profile(s) with its own keys", why, s.opened);
	if (strstr(out, "\"op\":\"export-vsim\",\"ok\":false") == NULL)
		fail_msg("%s: the phone did not refuse the export: %s", why, out);
	if (strstr(out, "account service") == NULL)
		fail_msg("%s: the phone's refusal does not say why: %s", why, out);
	free(out);
	if (strcmp(s.state, "refused") != 0)
		fail_msg("%s: instruction %lld is '%s' (%s), not refused", why, (long long)s.id, s.state, s.result);
	assert_int_equal(s.installs_for_row, 0);
	/* None of the profile's secrets is anywhere in the host's state. */
	assert_int_equal(pb_test_grep_tree(host_home, imsi, strlen(imsi)), 0);
	assert_int_equal(pb_test_grep_tree(host_home, ki, strlen(ki)), 0);
	assert_int_equal(pb_test_grep_tree(host_home, opc, strlen(opc)), 0);
	assert_int_equal(pb_test_grep_tree(host_home, adm, strlen(adm)), 0);
	/* The profile is still on the phone. */
	assert_true(file_has(a1, iccid));
}

/* A device row holding the host's own key, no certificate at all. */
static void test_forged_destination_refused(void **state)
{
	uint8_t row[PB_DEVICE_ID_LEN];

	(void)state;
	randombytes_buf(row, sizeof(row));
	add_row(row, evil_pk, "evil-twin");
	expect_refused_copy(row, "row with the host's key");
}

/* The same row, with the host's own (genuine) certificate filed for it: it
 * names the host, not the row. */
static void test_borrowed_certificate_refused(void **state)
{
	uint8_t row[PB_DEVICE_ID_LEN];

	(void)state;
	randombytes_buf(row, sizeof(row));
	add_row(row, evil_pk, "evil-twin-2");
	forge_cert(row);
	expect_refused_copy(row, "row with the host's certificate");
}

/* The host itself as the destination: its certificate is genuine and names
 * it, but the host never gets a profile it could open. */
static void test_host_as_destination_refused(void **state)
{
	uint8_t hid[PB_DEVICE_ID_LEN], hpk[32], hsk[32];

	(void)state;
	host_identity(hid, hpk, hsk);
	add_row(hid, hpk, "desk-as-phone");
	forge_cert(hid);
	expect_refused_copy(hid, "the host as destination");
	sodium_memzero(hsk, sizeof(hsk));
}

/* The destination checks the source the same way: a profile the host
 * sealed to the phone itself (it knows the phone's key) is not installed. */
static void test_forged_install_refused(void **state)
{
	static const char profile[] =
		"iccid,imsi,mcc,mnc,msisdn,smsp,ki,opc,acc,pin_adm\n"
		"8949012000000000014,262019999999999,262,01,+491700000000,"
		"e1ffffffffffffffffffffffff0581005155f5ffffffffffff000000,"
		"00112233445566778899AABBCCDDEEFF,FFEEDDCCBBAA99887766554433221100,0001,12345678\n";
	uint8_t a1_id[PB_DEVICE_ID_LEN], a2_id[PB_DEVICE_ID_LEN], sealed[sizeof(profile) - 1 + crypto_box_SEALBYTES];
	pb_paired_device_t d;
	pb_hostdb_t db;
	struct seen s;
	size_t n;
	char *out;

	(void)state;
	assert_int_equal(sodium_hex2bin(a1_id, sizeof(a1_id), a1_dev, strlen(a1_dev), NULL, &n, NULL), 0);
	assert_int_equal(sodium_hex2bin(a2_id, sizeof(a2_id), a2_dev, strlen(a2_dev), NULL, &n, NULL), 0);
	hostdb(&db);
	assert_int_equal(pb__hostdb_device_by_id(&db, a1_id, &d), 0);
	crypto_box_seal(sealed, (const uint8_t *)profile, sizeof(profile) - 1, d.static_pk);
	memset(&s, 0, sizeof(s));
	/* Presented as a copy from the other phone of the account. */
	assert_int_equal(pb__hostdb_instruct(&db, a1_id, "install-vsim", "8949012000000000014", a2_id, sealed,
					     sizeof(sealed), &s.id),
			 0);
	pb__hostdb_close(&db);

	out = ping(a1);
	if (strstr(out, "\"op\":\"install-vsim\",\"ok\":false") == NULL)
		fail_msg("the phone did not refuse a profile sealed by the host: %s", out);
	if (strstr(out, "no source certificate") == NULL)
		fail_msg("the refusal does not say why: %s", out);
	free(out);
	assert_false(file_has(a1, "8949012000000000014"));
	hostdb(&db);
	assert_int_equal(pb__hostdb_instructions(&db, NULL, false, look, &s), 0);
	pb__hostdb_close(&db);
	if (strcmp(s.state, "refused") != 0)
		fail_msg("instruction %lld is '%s' (%s), not refused", (long long)s.id, s.state, s.result);
}

/* The host signs a profile with its own genuine certificate and key, as a
 * source would: the phone still refuses a profile from the host itself. */
static void test_install_from_host_refused(void **state)
{
	static const char profile[] =
		"iccid,imsi,mcc,mnc,msisdn,smsp,ki,opc,acc,pin_adm\n"
		"8949012000000000022,262019999999998,262,01,+491700000001,"
		"e1ffffffffffffffffffffffff0581005155f5ffffffffffff000000,"
		"00112233445566778899AABBCCDDEEF0,FFEEDDCCBBAA99887766554433221101,0001,12345679\n";
	static const char iccid[] = "8949012000000000022";
	uint8_t a1_id[PB_DEVICE_ID_LEN], hid[PB_DEVICE_ID_LEN], *cert, *ident, *msg, *plain, *sealed;
	size_t n, cert_len, ident_len, mlen, plen;
	char path[4200], *out;
	pb_paired_device_t d;
	pb_hostdb_t db;
	struct seen s;

	(void)state;
	assert_int_equal(sodium_hex2bin(a1_id, sizeof(a1_id), a1_dev, strlen(a1_dev), NULL, &n, NULL), 0);
	snprintf(path, sizeof(path), "%s/cert.bin", host_home);
	cert = pb_test_read_file(path, &cert_len);
	snprintf(path, sizeof(path), "%s/identity.key", host_home);
	ident = pb_test_read_file(path, &ident_len);
	assert_non_null(cert);
	assert_non_null(ident);
	memcpy(hid, ident, PB_DEVICE_ID_LEN);
	hostdb(&db);
	assert_int_equal(pb__hostdb_device_by_id(&db, a1_id, &d), 0);
	/* "peerback/vsim" 0 | destination id | destination key | ICCID 0 | rows */
	mlen = 14 + PB_DEVICE_ID_LEN + 32 + sizeof(iccid) + sizeof(profile) - 1;
	msg = malloc(mlen);
	assert_non_null(msg);
	memcpy(msg, "peerback/vsim", 14);
	memcpy(msg + 14, a1_id, PB_DEVICE_ID_LEN);
	memcpy(msg + 14 + PB_DEVICE_ID_LEN, d.static_pk, 32);
	memcpy(msg + 14 + PB_DEVICE_ID_LEN + 32, iccid, sizeof(iccid));
	memcpy(msg + 14 + PB_DEVICE_ID_LEN + 32 + sizeof(iccid), profile, sizeof(profile) - 1);
	plen = 6 + cert_len + 64 + sizeof(profile) - 1;
	plain = malloc(plen);
	sealed = malloc(plen + crypto_box_SEALBYTES);
	assert_non_null(plain);
	assert_non_null(sealed);
	memcpy(plain, "PBV1", 4);
	plain[4] = (uint8_t)(cert_len >> 8);
	plain[5] = (uint8_t)cert_len;
	memcpy(plain + 6, cert, cert_len);
	crypto_sign_detached(plain + 6 + cert_len, NULL, msg, mlen, ident + PB_DEVICE_ID_LEN);
	memcpy(plain + 6 + cert_len + 64, profile, sizeof(profile) - 1);
	crypto_box_seal(sealed, plain, plen, d.static_pk);
	memset(&s, 0, sizeof(s));
	assert_int_equal(pb__hostdb_instruct(&db, a1_id, "install-vsim", iccid, hid, sealed, plen + crypto_box_SEALBYTES,
					     &s.id),
			 0);
	pb__hostdb_close(&db);
	sodium_memzero(ident, ident_len);
	free(ident);
	free(cert);
	free(msg);
	free(plain);
	free(sealed);

	out = ping(a1);
	if (strstr(out, "\"op\":\"install-vsim\",\"ok\":false") == NULL)
		fail_msg("the phone installed a profile the host signed itself: %s", out);
	if (strstr(out, "not vouched for by the account service") == NULL)
		fail_msg("the refusal does not say why: %s", out);
	free(out);
	assert_false(file_has(a1, iccid));
	hostdb(&db);
	assert_int_equal(pb__hostdb_instructions(&db, NULL, false, look, &s), 0);
	pb__hostdb_close(&db);
	assert_string_equal(s.state, "refused");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forged_destination_refused),
		cmocka_unit_test(test_borrowed_certificate_refused),
		cmocka_unit_test(test_host_as_destination_refused),
		cmocka_unit_test(test_forged_install_refused),
		cmocka_unit_test(test_install_from_host_refused),
	};
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
