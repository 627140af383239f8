/* A device id belongs to the keys it first logged in with. Another device of
 * the same account (it knows the password) that reuses a victim's id is
 * refused by the account service, a host never lets a pairing replace a
 * device with other keys, and a phone whose wrapped master key the host
 * swapped stops its backup before sending anything. The account service also
 * refuses names a terminal or a JSON reader would misread. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "harness.h"
#include "peerback.h"
#include "peerback/store.h"
#include "agent/account/account.h"
#include "agent/imd/imd.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], victim[4096];
static uint8_t victim_id[PB_DEVICE_ID_LEN];
static char victim_hex[2 * PB_DEVICE_ID_LEN + 1];

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

static int pair(const char *home, char **err)
{
	char *args[] = { "pair", host.uri, NULL };

	return pb_test_peerback(home, args, NULL, err);
}

static void read_identity(const char *home, uint8_t id[PB_DEVICE_ID_LEN], uint8_t static_pk[32])
{
	char path[4200];
	uint8_t *buf;
	size_t len;

	snprintf(path, sizeof(path), "%s/identity.key", home);
	buf = pb_test_read_file(path, &len);
	assert_non_null(buf);
	assert_int_equal(len, PB_DEVICE_ID_LEN + 64 + 32);
	memcpy(id, buf, PB_DEVICE_ID_LEN);
	if (static_pk != NULL)
		crypto_scalarmult_base(static_pk, buf + PB_DEVICE_ID_LEN + 64);
	sodium_memzero(buf, len);
	free(buf);
}

/* A device home whose identity reuses id with keys of its own. */
static void thief_identity(const char *home, const uint8_t id[PB_DEVICE_ID_LEN], uint8_t sign_pk[32],
			   uint8_t static_pk[32])
{
	char path[4200];
	uint8_t buf[PB_DEVICE_ID_LEN + 64 + 32];

	memcpy(buf, id, PB_DEVICE_ID_LEN);
	crypto_sign_keypair(sign_pk, buf + PB_DEVICE_ID_LEN);
	randombytes_buf(buf + PB_DEVICE_ID_LEN + 64, 32);
	crypto_scalarmult_base(static_pk, buf + PB_DEVICE_ID_LEN + 64);
	snprintf(path, sizeof(path), "%s/identity.key", home);
	assert_int_equal(pb_test_write_file(path, buf, sizeof(buf)), 0);
	chmod(path, 0600);
	sodium_memzero(buf, sizeof(buf));
}

static void backup(const char *home)
{
	char *args[] = { "backup", NULL }, *err = NULL;

	if (pb_test_peerback(home, args, NULL, &err) != 0)
		fail_msg("backup: %s", err);
	free(err);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	const char *host_args[] = { "--max-failures", "1000", NULL };
	char d[4200], line[4096], *err = NULL;
	char *gen[] = { "gen", "--out", d, "--seed", "5", "--size", "small", NULL };

	(void)state;
	dir = pb_test_tmpdir("device-binding");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	mk(victim, "victim");
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, victim, "alice", "victim-phone"), 0);
	read_identity(victim, victim_id, NULL);
	pb__hex(victim_id, PB_DEVICE_ID_LEN, victim_hex);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", host_args);
	if (pair(victim, &err) != 0)
		fail_msg("pair: %s", err);
	free(err);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	assert_true(pb_test_host_wait(&host, "advertise", line, sizeof(line), 10000) > 0);
	snprintf(d, sizeof(d), "%s/device", victim);
	assert_int_equal(pb_test_peerback(victim, gen, NULL, NULL), 0);
	backup(victim);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

static char *host_devices(void)
{
	char *args[] = { "--json", "host", "devices", NULL }, *out = NULL;

	assert_int_equal(pb_test_peerback(host_home, args, &out, NULL), 0);
	return out;
}

static void ping_ok(const char *home)
{
	char *args[] = { "ping", NULL }, *err = NULL;

	if (pb_test_peerback(home, args, NULL, &err) != 0)
		fail_msg("the victim cannot reach its host any more: %s", err);
	free(err);
}

/* A login to the service with the victim's device id and chosen keys, as an
 * adversarial client sends it (the password is the account's). */
static int raw_login(const uint8_t id[PB_DEVICE_ID_LEN], const uint8_t sign_pk[32], const uint8_t static_pk[32],
		     const char *name)
{
	Peerback__ImdRequest req;
	Peerback__Login login;
	Peerback__ImdReply *reply;
	pb_envelope_t *env;
	uint8_t key[32];
	int rc;

	assert_int_equal(pb__b64url_decode(imd.key, key, 32), 0);
	pb_test_login_request(&req, &login, "alice", PB_TEST_PASSWORD, id, sign_pk, static_pk, name);
	rc = pb__imd_call(imd.addr, key, &req, &reply, &env);
	if (rc == 0)
		pb__envelope_free(env);
	return rc;
}

static void test_login_with_taken_id_refused(void **state)
{
	char thief[4096], *args[] = { "account", "login", "--imd", imd.addr, "--imd-key", imd.key, "--account",
				      "alice", "--name", "thief", NULL };
	char *err = NULL;
	uint8_t sign_pk[32], static_pk[32], victim_sign[32], victim_static[32], id[PB_DEVICE_ID_LEN];
	int rc;

	(void)state;
	mk(thief, "thief-login");
	thief_identity(thief, victim_id, sign_pk, static_pk);
	rc = pb_test_peerback(thief, args, NULL, &err);
	if (rc == 0)
		fail_msg("the account service certified other keys for the victim's device id %s", victim_hex);
	if (strstr(err, "device id") == NULL)
		fail_msg("the refusal does not say why: %s", err);
	free(err);
	/* Nor the victim's signing key with another static key: a
	 * certificate for it would let copies be sealed to the thief. */
	{
		Peerback__SignedBlob *blob;
		Peerback__Certificate *c;
		char path[4200];
		uint8_t *cert;
		size_t len;

		snprintf(path, sizeof(path), "%s/cert.bin", victim);
		cert = pb_test_read_file(path, &len);
		assert_non_null(cert);
		blob = peerback__signed_blob__unpack(NULL, len, cert);
		assert_non_null(blob);
		c = peerback__certificate__unpack(NULL, blob->body.len, blob->body.data);
		assert_non_null(c);
		memcpy(victim_sign, c->sign_pk.data, 32);
		memcpy(victim_static, c->static_pk.data, 32);
		peerback__certificate__free_unpacked(c, NULL);
		peerback__signed_blob__free_unpacked(blob, NULL);
		free(cert);
	}
	rc = raw_login(victim_id, victim_sign, static_pk, "thief");
	if (rc == 0)
		fail_msg("the account service certified a static key of the thief's for the victim's device id");
	/* A fresh device id with the victim's static key is refused too. */
	randombytes_buf(id, sizeof(id));
	rc = raw_login(id, sign_pk, victim_static, "thief");
	if (rc == 0)
		fail_msg("the account service certified the victim's static key for another device id");
	/* The victim itself logs in again as before. */
	assert_int_equal(pb_test_login(&imd, victim, "alice", "victim-phone"), 0);
	ping_ok(victim);
}

/* A certificate the service issued for the victim's id with other keys (a
 * service that did not bind ids yet): the host still refuses to let it
 * replace the victim's pairing. */
static void test_pairing_replacement_refused(void **state)
{
	char thief[4096], path[4200], *err = NULL;
	uint8_t sign_pk[32], static_pk[32], sk[64 + 32], *buf;
	char *devs_before, *devs_after;
	size_t len;
	Peerback__Certificate cert;
	Peerback__SignedBlob blob;
	uint64_t now = (uint64_t)time(NULL);
	int rc;

	(void)state;
	mk(thief, "thief-pair");
	thief_identity(thief, victim_id, sign_pk, static_pk);
	snprintf(path, sizeof(path), "%s/imd.key", imd.home);
	buf = pb_test_read_file(path, &len);
	assert_non_null(buf);
	assert_true(len >= 64);
	memcpy(sk, buf, 64);
	free(buf);
	peerback__certificate__init(&cert);
	cert.account = "alice";
	cert.device_id.data = victim_id;
	cert.device_id.len = PB_DEVICE_ID_LEN;
	cert.sign_pk.data = sign_pk;
	cert.sign_pk.len = 32;
	cert.static_pk.data = static_pk;
	cert.static_pk.len = 32;
	cert.not_before = now - 60;
	cert.not_after = now + 3600;
	cert.device_name = "victim-phone";
	assert_int_equal(pb__sign_cert(sk, &cert, &blob), 0);
	sodium_memzero(sk, sizeof(sk));
	len = peerback__signed_blob__get_packed_size(&blob);
	buf = malloc(len);
	assert_non_null(buf);
	peerback__signed_blob__pack(&blob, buf);
	pb__signed_blob_clear(&blob);
	snprintf(path, sizeof(path), "%s/cert.bin", thief);
	assert_int_equal(pb_test_write_file(path, buf, len), 0);
	free(buf);
	{
		char src[4200], dst[4200];
		uint8_t *a;
		size_t alen;

		snprintf(src, sizeof(src), "%s/account.json", victim);
		snprintf(dst, sizeof(dst), "%s/account.json", thief);
		a = pb_test_read_file(src, &alen);
		assert_non_null(a);
		assert_int_equal(pb_test_write_file(dst, a, alen), 0);
		free(a);
	}
	devs_before = host_devices();

	rc = pair(thief, &err);
	if (rc == 0) {
		char *args[] = { "ping", NULL }, *perr = NULL;

		rc = pb_test_peerback(victim, args, NULL, &perr);
		fail_msg("the host let a pairing take the victim's device id %s; the victim's ping now %s%s",
			 victim_hex, rc == 0 ? "works" : "fails: ", rc == 0 ? "" : perr);
	}
	if (strstr(err, "device id") == NULL)
		fail_msg("the thief's refusal does not say why: %s", err);
	free(err);
	/* The host's record of the victim is as it was. */
	devs_after = host_devices();
	assert_string_equal(devs_before, devs_after);
	free(devs_before);
	free(devs_after);
	ping_ok(victim);
}

static uint64_t pack_bytes(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *e;
	uint64_t n = 0;

	if (dp == NULL)
		return 0;
	while ((e = readdir(dp)) != NULL) {
		char p[4200];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
		if (lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			n += pack_bytes(p);
		else if (S_ISREG(st.st_mode))
			n += (uint64_t)st.st_size;
	}
	closedir(dp);
	return n;
}

static size_t snapshots(void)
{
	char d[4200];
	pb_store_t *s;
	pb_store_ns_t *ns;
	pb_store_snapinfo_t *snaps = NULL;
	size_t n = 0;

	snprintf(d, sizeof(d), "%s/store", host_home);
	assert_int_equal(pb_store_open(d, &s), 0);
	assert_int_equal(pb_store_ns_open(s, "alice", victim_hex, &ns), 0);
	assert_int_equal(pb_store_snapshot_list(ns, &snaps, &n), 0);
	free(snaps);
	pb_store_ns_close(ns);
	pb_store_close(s);
	return n;
}

/* The host (or whoever wrote to its store) swapped the victim's wrapped
 * master key for one of its own, wrapped with the same passphrase: a new
 * phone restoring with that passphrase would get the wrong key. */
static void test_swapped_master_key_stops_backup(void **state)
{
	const char *host_args[] = { "--max-failures", "1000", NULL };
	char d[4200], packs[4200], path[4200], *args[] = { "backup", NULL }, *err = NULL;
	uint8_t mk[PB_MASTERKEY_LEN], wrapped[PB_MASTERKEY_WRAPPED_LEN];
	pb_pwhash_params_t params = pb_pwhash_params_interactive();
	pb_store_t *s;
	pb_store_ns_t *ns;
	uint64_t bytes_before, bytes_after;
	size_t snaps_before, snaps_after;
	int rc;

	(void)state;
	pb_test_host_stop(&host);
	snprintf(d, sizeof(d), "%s/store", host_home);
	snprintf(packs, sizeof(packs), "%s/store/packs", host_home);
	pb_masterkey_generate(mk);
	assert_int_equal(pb_masterkey_wrap(mk, "recovery passphrase for tests", &params, wrapped), 0);
	assert_int_equal(pb_store_open(d, &s), 0);
	assert_int_equal(pb_store_ns_open(s, "alice", victim_hex, &ns), 0);
	assert_int_equal(pb_store_blob_put(ns, "masterkey", wrapped, sizeof(wrapped)), 0);
	pb_store_ns_close(ns);
	pb_store_close(s);
	snaps_before = snapshots();
	bytes_before = pack_bytes(packs);
	pb_test_host_restart(&host, host_args);
	/* Something new to back up, so that a backup would send chunks. */
	snprintf(path, sizeof(path), "%s/device/sim/profiles.csv", victim);
	{
		static const char row[] = "8949012000000000014,262019999999999,262,01,+491700000000,"
					  "e1ffffffffffffffffffffffff0581005155f5ffffffffffff000000,"
					  "00112233445566778899AABBCCDDEEFF,FFEEDDCCBBAA99887766554433221100,0001,12345678\n";
		size_t len;
		char *data = (char *)pb_test_read_file(path, &len), *grown;

		assert_non_null(data);
		grown = malloc(len + sizeof(row));
		assert_non_null(grown);
		memcpy(grown, data, len);
		memcpy(grown + len, row, sizeof(row) - 1);
		assert_int_equal(pb_test_write_file(path, grown, len + sizeof(row) - 1), 0);
		free(grown);
		free(data);
	}

	rc = pb_test_peerback(victim, args, NULL, &err);
	pb_test_host_stop(&host);
	snaps_after = snapshots();
	bytes_after = pack_bytes(packs);
	pb_test_host_restart(&host, host_args);
	if (rc == 0)
		fail_msg("the backup went ahead although the host holds another wrapped master key (%zu -> %zu "
			 "snapshots, %llu -> %llu pack bytes)",
			 snaps_before, snaps_after, (unsigned long long)bytes_before, (unsigned long long)bytes_after);
	if (strstr(err, "master key") == NULL)
		fail_msg("the refusal does not say why: %s", err);
	free(err);
	assert_int_equal(snaps_after, snaps_before);
	assert_int_equal(bytes_after, bytes_before);
	sodium_memzero(mk, sizeof(mk));
}

/* Device and account names reach terminals, logs and JSON: the service
 * refuses control characters, invalid UTF-8 and overlong names. */
static void test_names_validated(void **state)
{
	static const char *bad[] = {
		"evil\n{\"event\":\"paired\",\"device\":\"00\"}",
		"tab\there",
		"bell\a",
		"esc\x1b[2J",
		"invalid \xff utf-8",
		"overlong \xc0\xaf slash",
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		"",
		NULL,
	};
	char home[4096];
	uint8_t id[PB_DEVICE_ID_LEN], sign_pk[32], static_pk[32];
	int rc;

	(void)state;
	mk(home, "names");
	for (size_t i = 0; bad[i] != NULL; i++) {
		randombytes_buf(id, sizeof(id));
		thief_identity(home, id, sign_pk, static_pk);
		rc = pb__phone_login(home, imd.addr, imd.key, "alice", PB_TEST_PASSWORD, bad[i]);
		if (rc == 0)
			fail_msg("the account service certified device name \"%s\"", bad[i]);
		if (strstr(pb_strerror(rc), "name") == NULL)
			fail_msg("device name \"%s\": refused, but not for its name: %s", bad[i], pb_strerror(rc));
	}
	/* An account name with a control character is a bad name, not a wrong
	 * password. */
	rc = pb__phone_login(home, imd.addr, imd.key, "alice\n", PB_TEST_PASSWORD, "phone");
	if (rc == 0 || strstr(pb_strerror(rc), "name") == NULL)
		fail_msg("account \"alice\\n\": %s", rc == 0 ? "accepted" : pb_strerror(rc));
	/* Names in any script are welcome. */
	randombytes_buf(id, sizeof(id));
	thief_identity(home, id, sign_pk, static_pk);
	assert_int_equal(pb__phone_login(home, imd.addr, imd.key, "alice", PB_TEST_PASSWORD, "Zoë’s 手机"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_validated),
		cmocka_unit_test(test_login_with_taken_id_refused),
		cmocka_unit_test(test_swapped_master_key_stops_backup),
		cmocka_unit_test(test_pairing_replacement_refused),
	};
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
