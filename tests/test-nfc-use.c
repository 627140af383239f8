/* Using an NFC credential: `peerback nfc use` reads the local copy; when it
 * is missing, expired or fails its checksum, the paired host is asked only
 * inside an NFC transaction, and a host that cannot be reached is reported
 * as such. The account service, the host and the phone run as the real
 * programs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "agent/nfc/nfc.h"
#include "agent/util/fsutil.h"

static char *dir;
static char phone[4096], device[4200];

/* Writes credentials/<id>.json; expires 0 = never; a damaged one keeps the
 * checksum of other data. */
static void make_credential(const char *id, uint64_t expires, bool damaged, uint8_t data[32])
{
	pb_credential_t c;
	pb_buf_t b = { 0 };
	char path[4400];

	memset(&c, 0, sizeof(c));
	snprintf(c.id, sizeof(c.id), "%s", id);
	snprintf(c.type, sizeof(c.type), "payment");
	snprintf(c.aid, sizeof(c.aid), "A0000000041010");
	c.created = 1700000000;
	c.expires = expires;
	randombytes_buf(data, 32);
	c.data = data;
	c.data_len = 32;
	pb_credential_checksum(data, 32, c.checksum);
	if (damaged)
		c.checksum[0] ^= 0x55;
	assert_int_equal(pb_credential_format(&c, &b), 0);
	snprintf(path, sizeof(path), "%s/credentials/%s.json", device, id);
	assert_int_equal(pb_test_write_file(path, b.data, b.len), 0);
	pb_buf_free(&b);
}

static int nfc(char *const args[], char **out, char **err)
{
	char *argv[32] = { "--json", "nfc" };
	size_t n = 2;

	for (size_t i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return pb_test_peerback(phone, argv, out, err);
}

static uint8_t good[32], old[32], bad[32];

static int setup(void **state)
{
	char creds[4400];

	(void)state;
	dir = pb_test_tmpdir("nfc-use");
	snprintf(phone, sizeof(phone), "%s/phone", dir);
	snprintf(device, sizeof(device), "%s/device", phone);
	snprintf(creds, sizeof(creds), "%s/credentials", device);
	assert_int_equal(pb__mkdirs(creds, 0700), 0);
	make_credential("good", 0, false, good);
	make_credential("old", 1000000000, false, old);
	make_credential("bad", 0, true, bad);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_rmtree(dir);
	free(dir);
	return 0;
}

static void test_local_copy_used(void **state)
{
	char out_file[4400];
	char *args[] = { "use", "good", "--out", out_file, NULL };
	char *out = NULL;
	uint8_t *used;
	size_t len;

	(void)state;
	snprintf(out_file, sizeof(out_file), "%s/used.bin", dir);
	assert_int_equal(nfc(args, &out, NULL), 0);
	assert_non_null(strstr(out, "\"event\":\"nfc-used\""));
	assert_non_null(strstr(out, "\"source\":\"local\""));
	assert_non_null(strstr(out, "\"local\":\"ok\""));
	free(out);
	used = pb_test_read_file(out_file, &len);
	assert_non_null(used);
	assert_int_equal(len, 32);
	assert_memory_equal(used, good, 32);
	free(used);
}

/* Outside a transaction a failed read is only reported. */
static void expect_no_txn(const char *id, const char *local, const char *words)
{
	char *args[] = { "use", (char *)id, NULL };
	char *out = NULL, *err = NULL, want[64], path[4400], before[65], after[65];

	snprintf(path, sizeof(path), "%s/credentials/%s.json", device, id);
	pb_test_file_digest(path, before);
	assert_int_equal(nfc(args, &out, &err), 1);
	assert_non_null(strstr(out, "\"error\":\"PB_ENFC_NO_TXN\""));
	snprintf(want, sizeof(want), "\"local\":\"%s\"", local);
	if (strstr(out, want) == NULL || strstr(err, words) == NULL || strstr(err, "no NFC transaction") == NULL)
		fail_msg("%s: want %s, '%s'; got %s / %s", id, local, words, out, err);
	pb_test_file_digest(path, after);
	assert_string_equal(before, after);
	free(out);
	free(err);
}

static void test_failed_read_outside_transaction(void **state)
{
	(void)state;
	expect_no_txn("old", "PB_EDATA_EXPIRED", "credential has expired");
	expect_no_txn("bad", "PB_EDATA_CHECKSUM", "checksum is wrong");
	expect_no_txn("gone", "PB_ENOTFOUND", "it is missing");
}

static void test_transaction_state(void **state)
{
	char *begin[] = { "begin", "--ttl", "60", NULL };
	char *status[] = { "status", NULL };
	char *end[] = { "end", NULL };
	char *bad_ttl[] = { "begin", "--ttl", "601", NULL };
	char path[4400];
	char *out = NULL;

	(void)state;
	assert_int_equal(nfc(status, &out, NULL), 0);
	assert_non_null(strstr(out, "\"active\":false"));
	free(out);
	assert_int_equal(nfc(begin, NULL, NULL), 0);
	assert_int_equal(nfc(status, &out, NULL), 0);
	assert_non_null(strstr(out, "\"active\":true"));
	free(out);
	assert_int_equal(nfc(end, NULL, NULL), 0);
	assert_int_equal(nfc(status, &out, NULL), 0);
	assert_non_null(strstr(out, "\"active\":false"));
	free(out);
	assert_int_equal(nfc(end, NULL, NULL), 0); /* ending none is fine */
	assert_int_equal(nfc(bad_ttl, NULL, NULL), 1);
	/* A transaction that ran out, and a damaged state file, are none. */
	assert_int_equal(pb__nfc_txn_begin(phone, 5, pb__now() - 10), 0);
	assert_int_equal(pb__nfc_txn_get(phone, pb__now(), NULL), PB_ENFC_NO_TXN);
	expect_no_txn("old", "PB_EDATA_EXPIRED", "credential has expired");
	snprintf(path, sizeof(path), "%s/nfc-transaction", phone);
	assert_int_equal(pb_test_write_file(path, "{\"expires\":", 11), 0);
	assert_int_equal(pb__nfc_txn_get(phone, pb__now(), NULL), PB_ENFC_NO_TXN);
	assert_int_equal(pb_test_write_file(path, "{\"expires\":\"99999999999\"}", 26), 0);
	assert_int_equal(pb__nfc_txn_get(phone, pb__now(), NULL), PB_ENFC_NO_TXN);
	assert_int_equal(pb__nfc_txn_end(phone), 0);
}

static void test_transaction_without_paired_host(void **state)
{
	char *args[] = { "use", "old", "--transaction", NULL };
	char *out = NULL, *err = NULL;

	(void)state;
	assert_int_equal(nfc(args, &out, &err), 1);
	assert_non_null(strstr(out, "\"error\":\"PB_EACCT_NOT_PAIRED\""));
	assert_non_null(strstr(out, "\"transaction\":true"));
	assert_non_null(strstr(err, "run peerback pair first"));
	free(out);
	free(err);
}

/* The fetch a phone app may plug in (pb__nfc_fetch_fn): here it serves the
 * files of another directory, standing for the app's own host link. */
struct provider {
	const char *dir;
	int calls;
	int error;
};

static int provider_fetch(void *arg, const char *home, const char *item_id, int timeout_ms, uint8_t **data,
			  size_t *len, char *host)
{
	struct provider *p = arg;
	char path[4400];

	(void)home;
	assert_true(timeout_ms > 0 && timeout_ms <= 1500);
	p->calls++;
	if (p->error != 0)
		return p->error;
	snprintf(path, sizeof(path), "%s/%s", p->dir, item_id);
	*data = pb_test_read_file(path, len);
	if (*data == NULL)
		return PB_ENOTFOUND;
	snprintf(host, 65, "provider");
	return 0;
}

static void test_fallback_through_provider(void **state)
{
	struct provider p = { NULL, 0, 0 };
	char backup[4400], from[4400], to[4400], local[4400], kept[65], now_digest[65];
	pb__nfc_use_opts_t o;
	pb__nfc_use_result_t r;
	uint8_t fresh[32];

	(void)state;
	snprintf(backup, sizeof(backup), "%s/backup", dir);
	snprintf(from, sizeof(from), "%s/credentials", backup);
	assert_int_equal(pb__mkdirs(from, 0700), 0);
	/* The host's copy of "old" is a renewed one; "bad" it holds damaged. */
	snprintf(from, sizeof(from), "%s/credentials/old.json", device);
	snprintf(local, sizeof(local), "%s", from);
	pb_test_file_digest(local, kept);
	{
		char saved_device[sizeof(device)];
		memcpy(saved_device, device, sizeof(device));
		snprintf(device, sizeof(device), "%s", backup);
		make_credential("old", 4000000000u, false, fresh);
		make_credential("bad", 0, true, bad);
		memcpy(device, saved_device, sizeof(device));
	}
	memset(&o, 0, sizeof(o));
	o.home = phone;
	o.device_dir = device;
	o.fetch = provider_fetch;
	o.fetch_arg = &p;
	p.dir = backup;

	/* Outside a transaction the provider is never asked. */
	assert_int_equal(pb__nfc_use(&o, "old", &r), PB_ENFC_NO_TXN);
	assert_int_equal(r.local, PB_EDATA_EXPIRED);
	assert_null(r.cred);
	assert_int_equal(p.calls, 0);
	/* A usable local copy never asks either, in a transaction or not. */
	o.transaction = true;
	assert_int_equal(pb__nfc_use(&o, "good", &r), 0);
	assert_false(r.from_host);
	pb_credential_free(r.cred);
	assert_int_equal(p.calls, 0);
	/* In a transaction: used, not written back without reinstall. */
	assert_int_equal(pb__nfc_use(&o, "old", &r), 0);
	assert_true(r.from_host);
	assert_string_equal(r.host, "provider");
	assert_memory_equal(r.cred->data, fresh, 32);
	assert_false(r.reinstalled);
	pb_credential_free(r.cred);
	pb_test_file_digest(local, now_digest);
	assert_string_equal(kept, now_digest);
	/* With reinstall the local copy becomes the host's. */
	o.reinstall = true;
	assert_int_equal(pb__nfc_use(&o, "old", &r), 0);
	assert_true(r.reinstalled);
	pb_credential_free(r.cred);
	assert_int_equal(pb_credential_check(device, "old", pb__now()), 0);
	snprintf(to, sizeof(to), "%s/credentials/old.json", backup);
	pb_test_file_digest(to, kept);
	pb_test_file_digest(local, now_digest);
	assert_string_equal(kept, now_digest);
	/* A host copy failing its checksum is refused and not installed. */
	pb_test_file_digest(local, kept);
	assert_int_equal(pb__nfc_use(&o, "bad", &r), PB_EDATA_CHECKSUM);
	assert_null(r.cred);
	assert_int_equal(pb_credential_check(device, "bad", pb__now()), PB_EDATA_CHECKSUM);
	/* A copy under another id is refused. */
	snprintf(from, sizeof(from), "%s/credentials/old.json", backup);
	snprintf(to, sizeof(to), "%s/credentials/other.json", backup);
	assert_int_equal(rename(from, to), 0);
	snprintf(from, sizeof(from), "%s/credentials/bad.json", backup);
	assert_int_equal(pb__nfc_use(&o, "other", &r), PB_EDATA_FORMAT);
	/* Errors of the fetch come through. */
	assert_int_equal(pb__nfc_use(&o, "nowhere", &r), PB_ENOTFOUND);
	p.error = PB_ENFC_UNREACHABLE;
	assert_int_equal(pb__nfc_use(&o, "nowhere", &r), PB_ENFC_UNREACHABLE);
	assert_int_equal(pb__nfc_use(&o, "../x", &r), PB_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_copy_used),
		cmocka_unit_test(test_failed_read_outside_transaction),
		cmocka_unit_test(test_transaction_state),
		cmocka_unit_test(test_transaction_without_paired_host),
		cmocka_unit_test(test_fallback_through_provider),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
