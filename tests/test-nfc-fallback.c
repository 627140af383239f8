/* The NFC fallback end to end: the account service, two hosts and the
 * phone run as the real programs on loopback. The phone backs up to one
 * host, loses or damages a credential, and `peerback nfc use` gets it back
 * from the host during an NFC transaction, and only then; it finds it also
 * when the most recently paired host holds no backup; and a stopped or
 * silent host is reported as unreachable within the timeout. */
#include <dirent.h>
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
static pb_test_imd_t imd;
static pb_test_host_t host, host2;
static char host_home[4096], host2_home[4096], phone[4096], device[4200];
static char lost[80], damaged[80];         /* two usable credentials' ids */
static uint8_t *lost_file, *damaged_file;  /* their files as backed up */
static size_t lost_len, damaged_len;

static void path(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

static void cred_path(const char *id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/credentials/%s.json", device, id);
}

static int run(char *const args[], char **out, char **err)
{
	return pb_test_peerback(phone, args, out, err);
}

static void pair_with(pb_test_host_t *h)
{
	char *args[] = { "pair", h->uri, NULL };
	char line[4096];

	assert_int_equal(run(args, NULL, NULL), 0);
	assert_true(pb_test_host_wait(h, "paired", line, sizeof(line), 10000) > 0);
}

/* Reads the host's pending events so that later waits see only new ones. */
static void drain(pb_test_host_t *h)
{
	char line[4096];

	while (pb_test_readline(&h->proc, line, sizeof(line), 200) >= 0)
		;
}

/* Picks two credentials that are usable now. */
static void pick_credentials(void)
{
	char cdir[4400];
	DIR *d;
	struct dirent *e;

	snprintf(cdir, sizeof(cdir), "%s/credentials", device);
	d = opendir(cdir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL && damaged[0] == 0) {
		char id[80];
		size_t n = strlen(e->d_name);

		if (n < 6 || n - 5 >= sizeof(id) || strcmp(e->d_name + n - 5, ".json") != 0)
			continue;
		memcpy(id, e->d_name, n - 5);
		id[n - 5] = 0;
		if (pb_credential_check(device, id, pb__now() + 3600) != 0)
			continue;
		memcpy(lost[0] == 0 ? lost : damaged, id, sizeof(id));
	}
	closedir(d);
	assert_true(lost[0] != 0 && damaged[0] != 0);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	const char *host_args[] = { "--no-qr", NULL };
	char *gen[] = { "gen", "--out", device, "--seed", "11", "--size", "small", NULL };
	char *backup[] = { "--json", "backup", NULL };
	char p[4400], *out = NULL;

	(void)state;
	dir = pb_test_tmpdir("nfc-fallback");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	path(host_home, "desk");
	path(host2_home, "spare");
	path(phone, "phone");
	snprintf(device, sizeof(device), "%s/device", phone);
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, host2_home, "alice", "spare"), 0);
	assert_int_equal(pb_test_login(&imd, phone, "alice", "phone"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", host_args);
	pb_test_host_start(&host2, host2_home, "127.0.0.1:0", host_args);
	pair_with(&host);
	assert_int_equal(run(gen, NULL, NULL), 0);
	pick_credentials();
	assert_int_equal(run(backup, &out, NULL), 0);
	assert_non_null(strstr(out, "\"event\":\"backup-done\""));
	free(out);
	cred_path(lost, p, sizeof(p));
	lost_file = pb_test_read_file(p, &lost_len);
	cred_path(damaged, p, sizeof(p));
	damaged_file = pb_test_read_file(p, &damaged_len);
	assert_non_null(lost_file);
	assert_non_null(damaged_file);
	/* The phone loses one credential and another's data is damaged. */
	cred_path(lost, p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	{
		uint8_t *bad = malloc(damaged_len);
		char *d;

		assert_non_null(bad);
		memcpy(bad, damaged_file, damaged_len);
		d = strstr((char *)bad, "\"data\": \"");
		assert_non_null(d);
		d[9] = d[9] == '0' ? '1' : '0';
		cred_path(damaged, p, sizeof(p));
		assert_int_equal(pb_test_write_file(p, bad, damaged_len), 0);
		free(bad);
	}
	assert_int_equal(pb_credential_check(device, lost, pb__now()), PB_ENOTFOUND);
	assert_int_equal(pb_credential_check(device, damaged, pb__now()), PB_EDATA_CHECKSUM);
	drain(&host);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	/* A failed check may have left a host paused. */
	if (host.proc.pid > 0)
		kill(host.proc.pid, SIGCONT);
	if (host2.proc.pid > 0)
		kill(host2.proc.pid, SIGCONT);
	pb_test_host_stop(&host);
	pb_test_cleanup(&host2, &imd, dir);
	free(lost_file);
	free(damaged_file);
	return 0;
}

static void test_refused_outside_transaction(void **state)
{
	char *args[] = { "--json", "nfc", "use", lost, NULL };
	char *out = NULL, *err = NULL, line[4096];

	(void)state;
	assert_int_equal(run(args, &out, &err), 1);
	assert_non_null(strstr(out, "\"error\":\"PB_ENFC_NO_TXN\""));
	assert_non_null(strstr(out, "\"local\":\"PB_ENOTFOUND\""));
	assert_non_null(strstr(err, "the paired host was not asked"));
	free(out);
	free(err);
	/* The host saw no session. */
	assert_int_equal(pb_test_host_wait(&host, "connected", line, sizeof(line), 500), -1);
}

static void test_fallback_in_transaction(void **state)
{
	char used[4400];
	char *begin[] = { "nfc", "begin", "--ttl", "60", NULL };
	char *use[] = { "--json", "nfc", "use", lost, "--out", used, NULL };
	char *end[] = { "nfc", "end", NULL };
	char *out = NULL, line[4096];
	pb_credential_t *orig;
	uint8_t *data;
	size_t len;

	(void)state;
	snprintf(used, sizeof(used), "%s/used.bin", dir);
	assert_int_equal(pb_credential_parse(lost_file, lost_len, &orig, NULL, 0), 0);
	assert_int_equal(run(begin, NULL, NULL), 0);
	assert_int_equal(run(use, &out, NULL), 0);
	assert_non_null(strstr(out, "\"source\":\"host\""));
	assert_non_null(strstr(out, "\"host\":\"desk\""));
	assert_non_null(strstr(out, "\"local\":\"PB_ENOTFOUND\""));
	assert_non_null(strstr(out, "\"reinstalled\":false"));
	free(out);
	assert_true(pb_test_host_wait(&host, "connected", line, sizeof(line), 5000) > 0);
	/* What was used is the credential's data as backed up. */
	data = pb_test_read_file(used, &len);
	assert_non_null(data);
	assert_int_equal(len, orig->data_len);
	assert_memory_equal(data, orig->data, len);
	free(data);
	pb_credential_free(orig);
	/* Without --reinstall the phone keeps what it had. */
	assert_int_equal(pb_credential_check(device, lost, pb__now()), PB_ENOTFOUND);
	assert_int_equal(run(end, NULL, NULL), 0);
}

static void test_reinstall_damaged(void **state)
{
	char *use[] = { "--json", "nfc", "use", damaged, "--transaction", "--reinstall", NULL };
	char *out = NULL, p[4400];
	uint8_t *now;
	size_t len;

	(void)state;
	assert_int_equal(run(use, &out, NULL), 0);
	assert_non_null(strstr(out, "\"local\":\"PB_EDATA_CHECKSUM\""));
	assert_non_null(strstr(out, "\"source\":\"host\""));
	assert_non_null(strstr(out, "\"reinstalled\":true"));
	free(out);
	cred_path(damaged, p, sizeof(p));
	now = pb_test_read_file(p, &len);
	assert_non_null(now);
	assert_int_equal(len, damaged_len);
	assert_memory_equal(now, damaged_file, len);
	free(now);
	/* Reinstalled, it is read locally from now on. */
	{
		char *again[] = { "--json", "nfc", "use", damaged, NULL };

		assert_int_equal(run(again, &out, NULL), 0);
		assert_non_null(strstr(out, "\"source\":\"local\""));
		free(out);
	}
}

/* The phone pairs with a second host that holds no backup of it; the most
 * recently paired host is asked first, and the first one still answers. */
static void test_other_host_holds_it(void **state)
{
	char *use[] = { "--json", "nfc", "use", lost, "--transaction", NULL };
	char *out = NULL;

	(void)state;
	pair_with(&host2);
	assert_int_equal(run(use, &out, NULL), 0);
	assert_non_null(strstr(out, "\"source\":\"host\""));
	assert_non_null(strstr(out, "\"host\":\"desk\""));
	free(out);
	/* A credential no host holds: both answer, neither has it. */
	{
		char *none[] = { "--json", "nfc", "use", "never-backed-up", "--transaction", NULL };
		char *err = NULL;

		assert_int_equal(run(none, &out, &err), 1);
		if (strstr(out, "\"error\":\"PB_ENOTFOUND\"") == NULL || strstr(err, "no paired host holds") == NULL)
			fail_msg("want not found; got %s / %s", out, err);
		free(out);
		free(err);
	}
}

static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void expect_unreachable(double max_ms)
{
	char *use[] = { "--json", "nfc", "use", lost, "--transaction", "--timeout", "700", NULL };
	char *out = NULL, *err = NULL;
	struct timespec t0;
	double ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(run(use, &out, &err), 1);
	ms = elapsed_ms(&t0);
	if (strstr(out, "\"error\":\"PB_ENFC_UNREACHABLE\"") == NULL || strstr(err, "no paired host answered within "
										    "700 ms") == NULL)
		fail_msg("want unreachable; got %s / %s", out, err);
	if (ms > max_ms)
		fail_msg("unreachable reported after %.0f ms (at most %.0f)", ms, max_ms);
	free(out);
	free(err);
}

static void test_unreachable_host(void **state)
{
	(void)state;
	/* Both hosts silent: they accept connections but never answer. */
	kill(host.proc.pid, SIGSTOP);
	kill(host2.proc.pid, SIGSTOP);
	expect_unreachable(700 + 2500);
	kill(host.proc.pid, SIGCONT);
	kill(host2.proc.pid, SIGCONT);
	/* Both hosts stopped. */
	pb_test_host_stop(&host);
	pb_test_host_stop(&host2);
	host.proc.pid = host2.proc.pid = 0;
	expect_unreachable(2500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_outside_transaction),
		cmocka_unit_test(test_fallback_in_transaction),
		cmocka_unit_test(test_reinstall_damaged),
		cmocka_unit_test(test_other_host_holds_it),
		cmocka_unit_test(test_unreachable_host),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
