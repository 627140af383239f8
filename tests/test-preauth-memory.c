/* Peers that never authenticate: anyone who saw the host's public key (it is
 * in every pairing code and LAN announcement) can complete the Noise
 * handshake. Such a peer must not make the host hold more than a few KiB,
 * must be closed within the authentication deadline, and many of them must
 * not keep an honest phone out. Idle authenticated connections time out
 * too. The account service, host and phone are the real programs. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "hostile.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

#define MAX_CONNS 48
#define MAX_PER_ADDR 16

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone[4096];
static uint8_t host_pk[32];
/* test_late_handshake_refused's held command: killed in teardown if a
 * failed assertion left it stopped (it shares the runner's stderr). */
static pb_test_proc_t late;

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	const char *host_args[] = { "--max-failures", "1000", "--auth-timeout", "2", "--idle-timeout", "3",
				    "--max-connections", "48", "--max-per-address", "16", NULL };

	(void)state;
	assert_true(sodium_init() >= 0);
	dir = pb_test_tmpdir("preauth");
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
	(void)pb_test_stop(&late, SIGKILL);
	pb_test_host_drain_stop();
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

static void ping_ok(void)
{
	char *args[] = { "--json", "ping", NULL };
	char *out = NULL, *err = NULL;
	int rc = pb_test_peerback(phone, args, &out, &err);

	if (rc != 0)
		print_error("honest ping failed (%d): %s%s\n", rc, out ? out : "", err ? err : "");
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "\"event\":\"pong\""));
	free(out);
	free(err);
}

/* Sends one Fragment of a sequence announcing total bytes. */
static int send_fragment(pb_client_t *c, uint64_t total, const uint8_t *data, size_t len)
{
	pb_envelope_t env;
	Peerback__Fragment f;

	pb__envelope_init(&env);
	peerback__fragment__init(&f);
	f.total = total;
	f.data.data = (uint8_t *)data;
	f.data.len = len;
	env.body_case = PEERBACK__ENVELOPE__BODY_FRAGMENT;
	env.fragment = &f;
	return pb__client_send(c, &env);
}

/* Three connections, Noise done, no account: each starts a 120 MiB
 * sequence and sends 40 MiB of it, all three at once. */
static void test_fragments_before_auth(void **state)
{
	enum { NCONN = 3 };
	const size_t piece = 60000, per_conn = 40u << 20;
	pb_client_t c[NCONN];
	bool alive[NCONN];
	size_t sent[NCONN] = { 0 };
	uint8_t *data = calloc(1, piece);
	long base, hwm;
	int live = NCONN;

	(void)state;
	assert_non_null(data);
	base = pb_test_proc_kib(host.proc.pid, "VmRSS");
	assert_true(base > 0);
	for (int i = 0; i < NCONN; i++) {
		assert_int_equal(pb_test_noise_connect(&c[i], host.listen, host_pk, 5000), 0);
		alive[i] = true;
	}
	while (live > 0) {
		for (int i = 0; i < NCONN; i++) {
			if (!alive[i])
				continue;
			if (send_fragment(&c[i], sent[i] == 0 ? 120u << 20 : 0, data, piece) != 0 ||
			    (sent[i] += piece) >= per_conn) {
				alive[i] = false;
				live--;
			}
		}
	}
	usleep(300 * 1000);
	hwm = pb_test_proc_kib(host.proc.pid, "VmHWM");
	for (int i = 0; i < NCONN; i++)
		pb__client_close(&c[i]);
	free(data);
	if (hwm - base > 16 * 1024)
		print_error("host VmHWM %ld KiB after 3 unauthenticated connections sent fragments, from VmRSS %ld KiB "
			    "before (grew %ld KiB, bound 16384)\n", hwm, base, hwm - base);
	assert_true(hwm - base <= 16 * 1024);
	ping_ok();
}

/* Idle TCP sockets and Noise sessions that never answer the challenge are
 * all closed by the authentication deadline (2 s here). */
static void test_auth_deadline(void **state)
{
	enum { NRAW = 3, NNOISE = 3 };
	pb_client_t c[NNOISE];
	int raw[NRAW];

	(void)state;
	for (int i = 0; i < NRAW; i++)
		assert_true((raw[i] = pb_test_tcp_connect(host.listen, NULL)) >= 0);
	for (int i = 0; i < NNOISE; i++)
		assert_int_equal(pb_test_noise_connect(&c[i], host.listen, host_pk, 5000), 0);
	for (int i = 0; i < NRAW; i++) {
		long ms = pb_test_wait_closed(raw[i], 5000);

		if (ms < 0)
			print_error("an idle TCP connection was still open 5 s after connecting\n");
		assert_true(ms >= 0);
		close(raw[i]);
	}
	for (int i = 0; i < NNOISE; i++) {
		long ms = pb_test_wait_closed(c[i].fd, 5000);

		if (ms < 0)
			print_error("a Noise session that never authenticated was still open 5 s after its handshake\n");
		assert_true(ms >= 0);
		pb__client_close(&c[i]);
	}
	ping_ok();
}

/* An authenticated phone that goes quiet is closed after the idle timeout
 * (3 s here); one that keeps talking is not. */
static void test_idle_timeout(void **state)
{
	pb_client_t c;
	long ms;

	(void)state;
	assert_int_equal(pb__phone_connect(phone, NULL, 5000, &c, NULL), 0);
	for (int i = 0; i < 4; i++) {
		usleep(1000 * 1000);
		assert_int_equal(pb__phone_ping(&c, (uint64_t)i + 1), 0);
	}
	ms = pb_test_wait_closed(c.fd, 6000);
	if (ms < 0)
		print_error("an idle authenticated connection was still open 6 s later\n");
	assert_true(ms >= 2000 && ms >= 0);
	pb__client_close(&c);
}

/* How many of the n sockets the host has closed (end of stream or reset);
 * anything the host sent first is read and dropped. */
static int closed_by_host(const int *fds, int n)
{
	int closed = 0;

	for (int i = 0; i < n; i++) {
		char buf[256];
		ssize_t r;

		while ((r = recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			;
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			closed++;
	}
	return closed;
}

/* Waits (at most 1.5 s, before the 2 s authentication deadline closes the
 * rest) until the host has closed at least want of the n sockets: then it
 * has taken every connection from its backlog and closed those over its
 * caps, and the count of its sockets is not caught between a newcomer's
 * accept and the close of the connection it evicted. */
static void wait_closed(const int *fds, int n, int want)
{
	for (int waited = 0; waited < 1500 && closed_by_host(fds, n) < want; waited += 20)
		usleep(20 * 1000);
}

/* Many connections from one address, then from eight: the host holds no
 * more than its caps, and an honest phone still gets in. */
static void test_connection_caps(void **state)
{
	enum { FROM_ONE = 100, PER_OTHER = 16, NOTHER = 8 };
	int one[FROM_ONE], other[NOTHER * PER_OTHER];
	int base, fds;

	(void)state;
	base = pb_test_proc_sockets(host.proc.pid);
	for (int i = 0; i < FROM_ONE; i++)
		assert_true((one[i] = pb_test_tcp_connect(host.listen, "127.0.0.1")) >= 0);
	wait_closed(one, FROM_ONE, FROM_ONE - MAX_PER_ADDR);
	fds = pb_test_proc_sockets(host.proc.pid);
	if (fds - base > MAX_PER_ADDR)
		print_error("the host holds %d connections from one address (cap %d)\n", fds - base, MAX_PER_ADDR);
	assert_true(fds - base <= MAX_PER_ADDR);
	for (int a = 0; a < NOTHER; a++) {
		char from[32];

		snprintf(from, sizeof(from), "127.0.0.%d", a + 2);
		for (int i = 0; i < PER_OTHER; i++)
			assert_true((other[a * PER_OTHER + i] = pb_test_tcp_connect(host.listen, from)) >= 0);
	}
	wait_closed(other, NOTHER * PER_OTHER, NOTHER * PER_OTHER - MAX_CONNS);
	fds = pb_test_proc_sockets(host.proc.pid);
	if (fds - base > MAX_CONNS)
		print_error("the host holds %d connections in all (cap %d)\n", fds - base, MAX_CONNS);
	assert_true(fds - base <= MAX_CONNS);
	ping_ok();
	for (int i = 0; i < FROM_ONE; i++)
		close(one[i]);
	for (int i = 0; i < NOTHER * PER_OTHER; i++)
		close(other[i]);
}

/* One device holds at most 4 authenticated connections: its newest win. */
static void test_per_device_cap(void **state)
{
	enum { N = 6, CAP = 4 };
	pb_client_t c[N];

	(void)state;
	for (int i = 0; i < N; i++)
		assert_int_equal(pb__phone_connect(phone, NULL, 5000, &c[i], NULL), 0);
	for (int i = 0; i < N; i++) {
		long ms = pb_test_wait_closed(c[i].fd, i < N - CAP ? 3000 : 300);

		if (i < N - CAP && ms < 0)
			print_error("connection %d of %d of one device is still open\n", i + 1, N);
		if (i >= N - CAP && ms >= 0)
			print_error("connection %d of %d of one device was closed\n", i + 1, N);
		assert_true(i < N - CAP ? ms >= 0 : ms < 0);
	}
	for (int i = 0; i < N; i++)
		pb__client_close(&c[i]);
}

/* A connection of one device whose handshake ends after four newer ones
 * of the device have authenticated is the one refused: the newest win in
 * the order they arrived, not in the order their handshakes happen to end.
 * The older one is a ping command held at the phone's last handshake
 * message (PEERBACK_TEST_PAUSE, agent/util/testhook.h); the host used to
 * close the oldest of the four newer ones for it. */
static void test_late_handshake_refused(void **state)
{
	enum { NEWER = 4 };
	char pause_file[4200], file_env[4300], line[4096];
	char *tool = pb_test_tool("peerback");
	char *argv[] = { tool, "--home", phone, "--json", "ping", NULL };
	char *env[] = { "PEERBACK_TEST_PAUSE=auth-passed:1", file_env, NULL };
	pb_client_t c[NEWER];
	struct stat st;
	bool refused = false;
	int rc;

	(void)state;
	snprintf(pause_file, sizeof(pause_file), "%s/late.paused", dir);
	snprintf(file_env, sizeof(file_env), "PEERBACK_TEST_PAUSE_FILE=%s", pause_file);
	unlink(pause_file);
	assert_int_equal(pb_test_spawn(&late, argv, env), 0);
	free(tool);
	for (int waited = 0; !(stat(pause_file, &st) == 0 && st.st_size > 0); waited += 10) {
		assert_true(waited < 10000);
		usleep(10 * 1000);
	}
	/* Four newer connections of the device, each known to the host as
	 * authenticated (a ping answered) before the held one goes on. */
	for (int i = 0; i < NEWER; i++) {
		assert_int_equal(pb__phone_connect(phone, NULL, 5000, &c[i], NULL), 0);
		assert_int_equal(pb__phone_ping(&c[i], 2), 0);
	}
	assert_int_equal(kill(late.pid, SIGCONT), 0);
	/* Its output to its end: the host refused it as busy for the newer
	 * ones, not for its authentication deadline (a machine slow enough to
	 * pass that would fail the ping too, and the test would not tell). */
	while (pb_test_readline(&late, line, sizeof(line), 5000) >= 0) {
		if (strstr(line, "\"code\":\"PB_EBUSY\"") != NULL)
			refused = true;
		else
			print_message("the held ping: %s\n", line);
	}
	rc = pb_test_stop(&late, SIGKILL);
	if (rc == 0)
		print_error("the held ping passed: a newer connection was closed for it\n");
	assert_true(rc != 0);
	if (!refused)
		print_error("the held ping failed, but not for the newer connections of its device\n");
	assert_true(refused);
	for (int i = 0; i < NEWER; i++) {
		long ms = pb_test_wait_closed(c[i].fd, 300);

		if (ms >= 0)
			print_error("connection %d of the %d newer ones was closed\n", i + 1, NEWER);
		assert_true(ms < 0);
	}
	for (int i = 0; i < NEWER; i++)
		pb__client_close(&c[i]);
	ping_ok();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fragments_before_auth),
		cmocka_unit_test(test_auth_deadline),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_connection_caps),
		cmocka_unit_test(test_per_device_cap),
		cmocka_unit_test(test_late_handshake_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
