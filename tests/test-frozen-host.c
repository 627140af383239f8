/* The account service slow or stopped must not freeze the host: a peer that
 * presents another account's certificate, with a forged signature or with a
 * real one, may make the host wait for the service on its own connection,
 * never on anyone else's. The service is stopped with SIGSTOP, so that its
 * socket accepts and then says nothing, as a hung service does. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "hostile.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone[4096], other[4096];
static uint8_t host_pk[32];

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", "bob", NULL };
	const char *host_args[] = { "--max-failures", "1000", NULL };
	char *pair[] = { "pair", NULL, NULL };
	char line[4096];

	(void)state;
	assert_true(sodium_init() >= 0);
	dir = pb_test_tmpdir("frozen");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	mk(phone, "phone");
	mk(other, "other");
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, phone, "alice", "phone"), 0);
	assert_int_equal(pb_test_login(&imd, other, "bob", "bobs-phone"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", host_args);
	pair[1] = host.uri;
	assert_int_equal(pb_test_peerback(phone, pair, NULL, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	pb_test_host_key(&host, host_pk);
	pb_test_host_drain_start(&host);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kill(imd.proc.pid, SIGCONT);
	pb_test_host_drain_stop();
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

/* The honest phone connects, authenticates and pings within limit_ms. */
static void ping_within(int limit_ms)
{
	pb_client_t c;
	int64_t start = pb_test_now_ms();
	int rc = pb__phone_connect(phone, NULL, limit_ms, &c, NULL);
	long ms;

	if (rc == 0) {
		rc = pb__phone_ping(&c, 1);
		pb__client_close(&c);
	}
	ms = (long)(pb_test_now_ms() - start);
	if (rc != 0 || ms > limit_ms)
		print_error("the honest phone's ping: %s after %ld ms (limit %d ms)\n", rc ? pb_strerror(rc) : "ok", ms,
			    limit_ms);
	assert_int_equal(rc, 0);
	assert_true(ms <= limit_ms);
}

/* Waits for the host's answer to an AuthResponse: its Error code, or 0 when
 * it went on with the handshake. */
static int host_answer(pb_client_t *c, int timeout_ms)
{
	pb_envelope_t *in = NULL;
	int code = 0, rc;

	c->timeout_ms = timeout_ms;
	rc = pb__client_recv(c, &in, &code);
	pb__envelope_free(in);
	return rc == PB_EPEER_ERROR ? code : rc;
}

/* Another account's certificate with a forged signature: refused at once,
 * with the service stopped, and the honest phone is served meanwhile. */
static void test_forged_signature_service_stopped(void **state)
{
	pb_client_t bad;
	int code;

	(void)state;
	ping_within(8000);
	assert_int_equal(kill(imd.proc.pid, SIGSTOP), 0);
	assert_int_equal(pb_test_noise_connect(&bad, host.listen, host_pk, 5000), 0);
	assert_int_equal(pb_test_answer_challenge(&bad, other, true), 0);
	ping_within(8000);
	code = host_answer(&bad, 3000);
	if (code != PB_EACCT_SIG)
		print_error("the forged signature got %s, not %s\n", pb_err_name(code), pb_err_name(PB_EACCT_SIG));
	assert_int_equal(code, PB_EACCT_SIG);
	pb__client_close(&bad);
	assert_int_equal(kill(imd.proc.pid, SIGCONT), 0);
}

/* Another account's certificate, correctly signed: only the service can say
 * whether the accounts are linked. The host asks without blocking: the
 * honest phone is served while the service is stopped, and the stranger is
 * refused once the service answers. */
static void test_real_signature_service_stopped(void **state)
{
	pb_client_t stranger;
	int code;

	(void)state;
	assert_int_equal(kill(imd.proc.pid, SIGSTOP), 0);
	assert_int_equal(pb_test_noise_connect(&stranger, host.listen, host_pk, 5000), 0);
	assert_int_equal(pb_test_answer_challenge(&stranger, other, false), 0);
	ping_within(8000);
	ping_within(8000);
	assert_int_equal(kill(imd.proc.pid, SIGCONT), 0);
	code = host_answer(&stranger, 10000);
	if (code != PB_EACCT_WRONG)
		print_error("the stranger got %s, not %s\n", pb_err_name(code), pb_err_name(PB_EACCT_WRONG));
	assert_int_equal(code, PB_EACCT_WRONG);
	pb__client_close(&stranger);
	ping_within(8000);
}

/* A new pairing code (SIGUSR1, as after a pairing or on expiry) is
 * registered with the service off the event loop too. */
static void test_new_code_service_stopped(void **state)
{
	(void)state;
	assert_int_equal(kill(imd.proc.pid, SIGSTOP), 0);
	assert_int_equal(kill(host.proc.pid, SIGUSR1), 0);
	usleep(200 * 1000);
	ping_within(8000);
	ping_within(8000);
	assert_int_equal(kill(imd.proc.pid, SIGCONT), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forged_signature_service_stopped),
		cmocka_unit_test(test_real_signature_service_stopped),
		cmocka_unit_test(test_new_code_service_stopped),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
