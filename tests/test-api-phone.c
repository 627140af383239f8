/* The phone's account, pairing, hosts, NFC, kinds and agent calls through
 * the public header only, against a real account service and a real host
 * (separate processes on loopback). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include <peerback.h>

#include "harness.h"

#define OLD_PASS "recovery passphrase for tests" /* what the harness gives peerback */
#define NEW_PASS "another recovery passphrase"

static int stop_after_first(void *arg)
{
	return *(int *)arg > 0;
}

static void count_event(void *arg, const char *json)
{
	int *n = arg;

	if (strstr(json, "\"event\"") != NULL)
		(*n)++;
}

static pb_net_type_t cellular(void *arg)
{
	(void)arg;
	return PB_NET_CELLULAR;
}

/* The app's own transport for the NFC fallback: the bytes of one file. */
struct app_copy {
	const char *path;
	char asked[128];
};

static int app_fetch(void *arg, const char *item_id, int timeout_ms, uint8_t **data, size_t *len, char *host)
{
	struct app_copy *c = arg;

	(void)timeout_ms;
	snprintf(c->asked, sizeof(c->asked), "%s", item_id);
	*data = pb_test_read_file(c->path, len);
	snprintf(host, 65, "app transport");
	return *data != NULL ? 0 : PB_ENFC_UNREACHABLE;
}

/* A usable credential of dir (its id into id). */
static void usable_credential(const char *dir, char *id, size_t cap)
{
	char creds[4200];
	struct dirent *e;
	DIR *d;

	snprintf(creds, sizeof(creds), "%s/credentials", dir);
	assert_non_null(d = opendir(creds));
	id[0] = 0;
	while (id[0] == 0 && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);

		if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0 || n - 5 >= cap)
			continue;
		memcpy(id, e->d_name, n - 5);
		id[n - 5] = 0;
		if (pb_credential_check(dir, id, (uint64_t)time(NULL)) != 0)
			id[0] = 0;
	}
	closedir(d);
	assert_true(id[0] != 0);
}

/* Logged out, logged in, paired, pinged, forgotten. */
static void test_account_pair_ping(void **state)
{
	const char *accounts[] = { "alice", NULL };
	char *dir = pb_test_tmpdir("api-phone"), home[4096], host_home[4096], addr[128], port[16], byname[64];
	pb_test_imd_t imd;
	pb_test_host_t host;
	pb_phone_t *phone;
	pb_account_info_t acct;
	pb_host_info_t h, *hosts;
	pb_ping_result_t ping;
	pb_passphrase_opts_t po;
	pb_passphrase_result_t pr;
	char dev[4096], *out, *err, *backup[] = { "backup", NULL };
	struct stat st;
	size_t n;

	(void)state;
	snprintf(home, sizeof(home), "%s/phone", dir);
	snprintf(host_home, sizeof(host_home), "%s/host", dir);
	pb_test_imd_start(&imd, dir, accounts, NULL);

	/* The home is made private; nobody is logged in yet. */
	assert_int_equal(pb_phone_open(home, &phone), 0);
	assert_int_equal(stat(home, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_string_equal(pb_phone_home(phone), home);
	assert_int_equal(pb_phone_account(phone, &acct), PB_EACCT_NOT_LOGGED_IN);

	/* A name resolves to an address; a malformed one is refused. */
	snprintf(port, sizeof(port), "%s", strrchr(imd.addr, ':') + 1);
	snprintf(byname, sizeof(byname), "localhost:%s", port);
	assert_int_equal(pb_phone_resolve(byname, addr, sizeof(addr)), 0);
	assert_string_equal(strrchr(addr, ':') + 1, port);
	assert_int_equal(pb_phone_resolve("no-port", addr, sizeof(addr)), PB_EURI_ADDR);

	/* A key that is no key, a wrong password, then the right one. */
	assert_true(pb_phone_login(phone, imd.addr, "not-a-key", "alice", PB_TEST_PASSWORD, "pocket") < 0);
	assert_int_equal(pb_phone_login(phone, imd.addr, imd.key, "alice", "wrong password", "pocket"),
			 PB_EACCT_LOGIN);
	assert_int_equal(pb_phone_account(phone, &acct), PB_EACCT_NOT_LOGGED_IN);
	assert_int_equal(pb_phone_login(phone, imd.addr, imd.key, "alice", PB_TEST_PASSWORD, "pocket"), 0);
	assert_int_equal(pb_phone_account(phone, &acct), 0);
	assert_string_equal(acct.account, "alice");
	assert_string_equal(acct.name, "pocket");
	assert_string_equal(acct.service, imd.addr);
	assert_int_equal(strlen(acct.device), 32);
	assert_int_equal(strlen(acct.key), 43);

	/* No host yet. */
	assert_int_equal(pb_phone_hosts(phone, &hosts, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(pb_phone_ping(phone, NULL, &ping), PB_EACCT_NOT_PAIRED);

	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", NULL);
	assert_int_equal(pb_phone_pair(phone, host.uri, 5000, &h), 0);
	assert_string_equal(h.name, "desk");
	assert_string_equal(h.account, "alice");
	assert_int_equal(strlen(h.key), 43);
	assert_true(h.naddrs >= 1);
	/* A QR code works once; the failed attempt writes nothing. */
	assert_int_equal(pb_phone_pair(phone, host.uri, 5000, NULL), PB_EACCT_SECRET_USED);

	assert_int_equal(pb_phone_hosts(phone, &hosts, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(hosts[0].key, h.key);
	assert_string_equal(hosts[0].name, "desk");
	assert_true(hosts[0].paired_at > 0);
	free(hosts);

	assert_int_equal(pb_phone_ping(phone, NULL, &ping), 0);
	assert_string_equal(ping.host.key, h.key);
	assert_true(ping.connect_ms > 0);
	assert_true(ping.rtt_ms > 0);
	assert_int_equal(ping.instructions, 0);
	assert_int_equal(pb_phone_instructions(phone, NULL), 0);

	/* The recovery passphrase: the first backup sets it, a change needs
	 * the current one and a strong new one, and reaches the host. */
	assert_false(pb_phone_has_master_key(phone));
	assert_int_equal(pb_phone_check_passphrase(phone, OLD_PASS), PB_ENOTFOUND);
	snprintf(dev, sizeof(dev), "%s/device", home);
	assert_int_equal(pb_kind_gen(PB_KIND_CREDENTIAL, dev, 3, PB_GEN_SMALL), 0);
	assert_int_equal(pb_test_peerback(home, backup, &out, &err), 0);
	free(out);
	free(err);
	assert_true(pb_phone_has_master_key(phone));
	assert_int_equal(pb_phone_check_passphrase(phone, OLD_PASS), 0);
	assert_int_equal(pb_phone_check_passphrase(phone, NEW_PASS), PB_ESTORE_PASSPHRASE);
	memset(&po, 0, sizeof(po));
	po.current = NEW_PASS;
	po.next = NEW_PASS;
	po.weak_kdf = true;
	assert_int_equal(pb_phone_change_passphrase(phone, &po, &pr), PB_ESTORE_PASSPHRASE);
	po.current = OLD_PASS;
	po.next = "aaaa";
	assert_int_equal(pb_phone_change_passphrase(phone, &po, &pr), PB_ESTORE_WEAKPASS);
	po.next = NEW_PASS;
	assert_int_equal(pb_phone_change_passphrase(phone, &po, &pr), 0);
	assert_int_equal(pr.hosts, 1);
	assert_int_equal(pb_phone_check_passphrase(phone, NEW_PASS), 0);
	assert_int_equal(pb_phone_check_passphrase(phone, OLD_PASS), PB_ESTORE_PASSPHRASE);

	/* Forgetting needs one host named; then the phone is not paired. */
	assert_int_equal(pb_phone_forget(phone, "nobody"), PB_ENOTFOUND);
	assert_int_equal(pb_phone_forget(phone, "desk"), 0);
	assert_int_equal(pb_phone_hosts(phone, &hosts, &n), 0);
	assert_int_equal(n, 0);
	free(hosts);
	assert_int_equal(pb_phone_ping(phone, NULL, &ping), PB_EACCT_NOT_PAIRED);

	pb_phone_close(phone);
	pb_test_cleanup(&host, &imd, dir);
}

/* The NFC transaction, the fallback's refusal outside one, the kinds and
 * the agent stopped by its caller. */
static void test_nfc_kinds_agent(void **state)
{
	char *dir = pb_test_tmpdir("api-phone-nfc"), home[4096], dev[4096], out[4096], *clean;
	pb_phone_t *phone;
	pb_nfc_result_t r;
	pb_agent_opts_t o;
	uint64_t expires = 0;
	int events = 0;
	time_t t0;

	(void)state;
	snprintf(home, sizeof(home), "%s/phone", dir);
	snprintf(dev, sizeof(dev), "%s/device", dir);
	snprintf(out, sizeof(out), "%s/export", dir);
	assert_int_equal(pb_phone_open(home, &phone), 0);
	assert_int_equal(pb_phone_set_device_dir(phone, dev), 0);

	assert_int_equal(pb_phone_nfc_status(phone, NULL), PB_ENFC_NO_TXN);
	assert_int_equal(pb_phone_nfc_begin(phone, 30), 0);
	assert_int_equal(pb_phone_nfc_status(phone, &expires), 0);
	assert_true(expires >= (uint64_t)time(NULL) + 29);
	assert_int_equal(pb_phone_nfc_end(phone), 0);
	assert_int_equal(pb_phone_nfc_status(phone, NULL), PB_ENFC_NO_TXN);
	/* Missing here and no transaction: the host is not asked. */
	assert_int_equal(pb_phone_nfc_use(phone, "card-1", NULL, &r), PB_ENFC_NO_TXN);
	assert_int_equal(r.local, PB_ENOTFOUND);
	assert_null(r.cred);

	/* Inside a transaction an app's own transport brings the copy, which
	 * is checked and written back. */
	{
		char src[4096], id[80], path[4300];
		struct app_copy c;
		pb_nfc_opts_t no;

		snprintf(src, sizeof(src), "%s/elsewhere", dir);
		assert_int_equal(pb_kind_gen(PB_KIND_CREDENTIAL, src, 11, PB_GEN_SMALL), 0);
		usable_credential(src, id, sizeof(id));
		snprintf(path, sizeof(path), "%s/credentials/%s.json", src, id);
		memset(&c, 0, sizeof(c));
		c.path = path;
		memset(&no, 0, sizeof(no));
		no.transaction = true;
		no.reinstall = true;
		no.fetch = app_fetch;
		no.fetch_arg = &c;
		assert_int_equal(pb_phone_nfc_use(phone, id, &no, &r), 0);
		assert_int_equal(r.local, PB_ENOTFOUND);
		assert_true(r.from_host);
		assert_string_equal(r.host, "app transport");
		assert_true(r.reinstalled);
		assert_non_null(r.cred);
		assert_string_equal(r.cred->id, id);
		assert_non_null(strstr(c.asked, id));
		pb_credential_free(r.cred);
		/* Now the phone has it. */
		assert_int_equal(pb_phone_nfc_use(phone, id, NULL, &r), 0);
		assert_false(r.from_host);
		pb_credential_free(r.cred);
		/* A copy that is another credential is refused and not kept. */
		assert_true(pb_phone_nfc_use(phone, "another-card", &no, &r) < 0);
		assert_null(r.cred);
		assert_false(r.reinstalled);
		snprintf(path, sizeof(path), "%s/credentials/another-card.json", dev);
		assert_int_not_equal(access(path, F_OK), 0);
	}

	/* Generated credentials export in the default format. */
	assert_int_equal(pb_kind_gen(PB_KIND_CREDENTIAL, dev, 7, PB_GEN_SMALL), 0);
	assert_string_equal(pb_kind_formats(PB_KIND_SIM), "csv ef");
	assert_int_equal(pb_kind_export(PB_KIND_CREDENTIAL, dev, NULL, out, NULL, 0), 0);
	assert_int_equal(pb_kind_export((pb_kind_t)99, dev, NULL, out, NULL, 0), PB_EDATA_KIND);

	/* Text from a peer always shows. */
	assert_int_equal(pb_text_utf8("a\xff" "b", &clean), 0);
	assert_string_equal(clean, "a\xef\xbf\xbd" "b");
	free(clean);

	/* The agent runs until its caller says stop, not until a signal. */
	memset(&o, 0, sizeof(o));
	o.interval = 3600;
	o.network = cellular;
	o.event = count_event;
	o.event_arg = &events;
	o.stop = stop_after_first;
	o.stop_arg = &events;
	t0 = time(NULL);
	assert_int_equal(pb_agent_run(phone, &o), 0);
	assert_true(time(NULL) - t0 < 10);
	assert_true(events >= 1);

	pb_phone_close(phone);
	pb_test_cleanup(NULL, NULL, dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_account_pair_ping),
		cmocka_unit_test(test_nfc_kinds_agent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
