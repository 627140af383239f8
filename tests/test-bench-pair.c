/* The pairing-latency benchmark program (tools/bench-pair) against the real
 * account service and host: it must time real sessions, report consistent
 * percentiles, and fail, not report figures, when sessions are refused. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "harness.h"
#include "agent/util/fsutil.h"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone[4096], stranger[4096];

static void path(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

static double json_num(const char *out, const char *key)
{
	char pat[64];
	const char *p;
	char *end;
	double v;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(out, pat);
	assert_non_null(p);
	v = strtod(p + strlen(pat), &end);
	assert_true(end != p + strlen(pat));
	return v;
}

static int bench_pair(const char *mode, const char *home, const char *n, char **out, char **err)
{
	char *tool = pb_test_tool("bench-pair");
	char *argv[] = { tool, (char *)mode, (char *)home, (char *)n, NULL };
	int rc = pb_test_run(argv, NULL, 120, out, err);

	free(tool);
	return rc;
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	const char *host_args[] = { "--qr-ttl", "120", NULL };
	char *args[3] = { "pair", NULL, NULL };

	(void)state;
	dir = pb_test_tmpdir("bench-pair");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	path(host_home, "host");
	path(phone, "phone");
	path(stranger, "stranger");
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, phone, "alice", "phone"), 0);
	assert_int_equal(pb_test_login(&imd, stranger, "alice", "stranger"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", host_args);
	args[1] = host.uri;
	assert_int_equal(pb_test_peerback(phone, args, NULL, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

/* Twenty sessions give one latency line whose figures are ordered. */
static void test_connect_latency(void **state)
{
	char *out = NULL, *err = NULL;
	double mn, p50, p99, mx;

	(void)state;
	assert_int_equal(bench_pair("connect", phone, "20", &out, &err), 0);
	assert_non_null(strstr(out, "\"event\":\"latency\""));
	assert_non_null(strstr(out, "\"mode\":\"connect\""));
	assert_int_equal((int)json_num(out, "n"), 20);
	mn = json_num(out, "min_ms");
	p50 = json_num(out, "p50_ms");
	p99 = json_num(out, "p99_ms");
	mx = json_num(out, "max_ms");
	assert_true(mn > 0);
	assert_true(mn <= p50 && p50 <= p99 && p99 <= mx);
	/* Every session finished well inside the connect timeout. */
	assert_true(mx < 5000);
	free(out);
	free(err);
}

/* A phone that never paired gets no figures and a failing exit status. */
static void test_unpaired_phone_fails(void **state)
{
	char *out = NULL, *err = NULL;

	(void)state;
	assert_int_equal(bench_pair("connect", stranger, "3", &out, &err), 1);
	assert_null(strstr(out, "latency"));
	assert_non_null(strstr(err, "failed"));
	free(out);
	free(err);
}

/* First pairings read their codes from stdin; none there is a failure. */
static void test_pair_without_codes_fails(void **state)
{
	char *out = NULL, *err = NULL;

	(void)state;
	assert_int_equal(bench_pair("pair", stranger, "2", &out, &err), 1);
	assert_null(strstr(out, "latency"));
	free(out);
	free(err);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	assert_int_equal(bench_pair("connect", phone, "0", NULL, NULL), 2);
	assert_int_equal(bench_pair("connect", phone, "12x", NULL, NULL), 2);
	assert_int_equal(bench_pair("listen", phone, "3", NULL, NULL), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_latency),
		cmocka_unit_test(test_unpaired_phone_fails),
		cmocka_unit_test(test_pair_without_codes_fails),
		cmocka_unit_test(test_bad_arguments),
	};

	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
