/* Failed attempts are limited per address and per identity, and only real
 * failures count: a socket that connects and says nothing (a handshake
 * timeout) is not an attempt, so 1,100 of them from the phone's own address
 * do not lock the phone out; the failures of others at its address do not
 * either, once the phone proves its key. Failures against one device from
 * many addresses are limited for that device. The host runs with the
 * default limit (5 failures a minute). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "hostile.h"
#include "agent/util/fsutil.h"

#define IDLE_SOCKETS 1100

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone[4096];
static uint8_t host_pk[32];

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	const char *host_args[] = { "--auth-timeout", "2", NULL };
	struct rlimit rl;

	(void)state;
	assert_true(sodium_init() >= 0);
	/* Room for the idle sockets, here and in the host started below. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 4096)
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(rl.rlim_cur > IDLE_SOCKETS + 64);
	dir = pb_test_tmpdir("ratelimit");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	if (pb_test_paired_phone_with(&imd, &host, dir, host_home, phone, host_args) != 0)
		return -1;
	pb_test_host_key(&host, host_pk);
	pb_test_host_drain_start(&host);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_host_drain_stop();
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

static void ping_ok(const char *why)
{
	char *args[] = { "--json", "ping", NULL };
	char *out = NULL, *err = NULL;
	int rc = pb_test_peerback(phone, args, &out, &err);

	if (rc != 0)
		print_error("%s: the phone's ping failed: %s%s\n", why, out ? out : "", err ? err : "");
	free(out);
	free(err);
	assert_int_equal(rc, 0);
}

/* The host's answer to what the peer sent last: its Error code, or 0. */
static int host_answer(pb_client_t *c)
{
	pb_envelope_t *in = NULL;
	int code = 0, rc;

	c->timeout_ms = 5000;
	rc = pb__client_recv(c, &in, &code);
	pb__envelope_free(in);
	return rc == PB_EPEER_ERROR ? code : rc;
}

static void test_idle_sockets_are_not_failures(void **state)
{
	static int fd[IDLE_SOCKETS];
	int64_t until;

	(void)state;
	for (int i = 0; i < IDLE_SOCKETS; i++)
		assert_true((fd[i] = pb_test_tcp_connect(host.listen, "127.0.0.1")) >= 0);
	/* Each is closed by the host: made room for, or timed out. */
	until = pb_test_now_ms() + 15000;
	for (int i = 0; i < IDLE_SOCKETS; i++) {
		long left = (long)(until - pb_test_now_ms());

		assert_true(pb_test_wait_closed(fd[i], left > 0 ? (int)left : 1) >= 0);
		close(fd[i]);
	}
	ping_ok("after 1100 idle sockets from its address");
}

/* Six broken handshakes from the phone's address block the address for
 * strangers; the phone, proving its paired key, still gets in. */
static void test_others_failures_at_the_address(void **state)
{
	pb_client_t stranger;
	int code;

	(void)state;
	for (int i = 0; i < 6; i++) {
		uint8_t frame[2 + 48] = { 0, 48 };
		int fd = pb_test_tcp_connect(host.listen, "127.0.0.1");

		assert_true(fd >= 0);
		randombytes_buf(frame + 2, 48);
		assert_int_equal(write(fd, frame, sizeof(frame)), sizeof(frame));
		assert_true(pb_test_wait_closed(fd, 5000) >= 0);
		close(fd);
	}
	assert_int_equal(pb_test_noise_connect_from(&stranger, host.listen, "127.0.0.1", host_pk, 5000), 0);
	code = host_answer(&stranger);
	if (code != PB_EACCT_RATE)
		print_error("a stranger at the blocked address got %s, not PB_EACCT_RATE\n", pb_err_name(code));
	assert_int_equal(code, PB_EACCT_RATE);
	pb__client_close(&stranger);
	ping_ok("at an address blocked by others' failures");
}

/* The phone's certificate (anyone it ever connected to has seen it) with
 * forged signatures, one attempt from each of six addresses: no address
 * reaches its limit, the device does, and the sixth is refused as rate
 * limited. The phone itself, proving its key, is not. */
static void test_failures_per_identity(void **state)
{
	(void)state;
	for (int i = 0; i < 6; i++) {
		char from[32];
		pb_client_t c;
		int code;

		snprintf(from, sizeof(from), "127.0.0.%d", 20 + i);
		assert_int_equal(pb_test_noise_connect_from(&c, host.listen, from, host_pk, 5000), 0);
		assert_int_equal(pb_test_answer_challenge(&c, phone, true), 0);
		code = host_answer(&c);
		pb__client_close(&c);
		if (code != (i < 5 ? PB_EACCT_SIG : PB_EACCT_RATE))
			print_error("attempt %d against the phone's identity from %s got %s, not %s\n", i + 1, from,
				    pb_err_name(code), i < 5 ? "PB_EACCT_SIG" : "PB_EACCT_RATE");
		assert_int_equal(code, i < 5 ? PB_EACCT_SIG : PB_EACCT_RATE);
	}
	ping_ok("after failures against its identity");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_sockets_are_not_failures),
		cmocka_unit_test(test_others_failures_at_the_address),
		cmocka_unit_test(test_failures_per_identity),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
