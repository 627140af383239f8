/* The secure channel between two processes over real TCP on loopback: an
 * NKpsk0 and an IK handshake, messages both ways (fragmented when large),
 * every kind of malformed input ending the session with its own error, and
 * the client's sending thread (pb__client_tx_start): requests queued
 * several at a time arrive whole and in order, and a peer that went away
 * fails a later send instead of leaving it waiting. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "testutil.h"
#include "protocol/channel.h"
#include "protocol/client.h"

static uint8_t host_pub[32], host_priv[32], phone_pub[32], phone_priv[32], psk[32];
static pid_t server_pid;
static FILE *events;     /* server -> test: one line per event */
static int server_port;

/* --- The server process ---------------------------------------------------- */

static int report_fd;

__attribute__((format(printf, 1, 2))) static void report(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(report_fd, line, (size_t)n) < 0)
		_exit(3);
}

static void srv_send_ping(pb_channel_t *ch, bool reply, uint64_t id, const uint8_t *data, size_t len)
{
	pb_envelope_t env;
	Peerback__Request req;
	Peerback__Reply rep;
	Peerback__Ping ping;

	pb__envelope_init(&env);
	peerback__ping__init(&ping);
	ping.data.data = (uint8_t *)data;
	ping.data.len = len;
	if (reply) {
		peerback__reply__init(&rep);
		rep.id = id;
		rep.op_case = PEERBACK__REPLY__OP_PONG;
		rep.pong = &ping;
		env.body_case = PEERBACK__ENVELOPE__BODY_REPLY;
		env.reply = &rep;
	} else {
		peerback__request__init(&req);
		req.id = id;
		req.op_case = PEERBACK__REQUEST__OP_PING;
		req.ping = &ping;
		env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
		env.request = &req;
	}
	(void)pb__channel_send(ch, &env);
}

static void srv_open(pb_channel_t *ch)
{
	report("open %s %d\n", "tag", pb__session_matched(&ch->sess));
	/* The host speaks first. */
	srv_send_ping(ch, false, 1, (const uint8_t *)"hello from host", 15);
}

static void srv_envelope(pb_channel_t *ch, pb_envelope_t *env)
{
	if (env->body_case == PEERBACK__ENVELOPE__BODY_REQUEST && env->request->op_case == PEERBACK__REQUEST__OP_PING)
		srv_send_ping(ch, true, env->request->id, env->request->ping->data.data, env->request->ping->data.len);
	pb__envelope_free(env);
}

static void srv_close(pb_channel_t *ch, int status)
{
	report("close %s %d\n", pb_err_name(status), status);
	free(ch);
}

static void srv_connection(uv_stream_t *server, int status)
{
	pb_session_candidate_t c[2];
	pb_channel_callbacks_t cb = { srv_open, srv_envelope, srv_close };
	pb_channel_t *ch;

	if (status < 0)
		return;
	memset(c, 0, sizeof(c));
	c[0].protocol = PB_NOISE_PAIRING;
	c[0].cfg.s_priv = host_priv;
	c[0].cfg.psks[0] = psk;
	c[0].cfg.npsks = 1;
	c[0].cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	c[0].cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	c[0].tag = 1;
	c[1].protocol = PB_NOISE_REMEMBERED;
	c[1].cfg.s_priv = host_priv;
	c[1].cfg.prologue = c[0].cfg.prologue;
	c[1].cfg.prologue_len = c[0].cfg.prologue_len;
	c[1].tag = 2;
	ch = malloc(sizeof(*ch));
	if (ch == NULL || pb__channel_accept(server, ch, c, 2, 0, &cb, NULL) != 0)
		_exit(4);
}

static void run_server(int fd)
{
	uv_loop_t loop;
	uv_tcp_t server;
	struct sockaddr_in addr;
	int len = sizeof(addr);

	report_fd = fd;
	uv_loop_init(&loop);
	uv_tcp_init(&loop, &server);
	uv_ip4_addr("127.0.0.1", 0, &addr);
	if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) != 0 ||
	    uv_listen((uv_stream_t *)&server, 16, srv_connection) != 0)
		_exit(5);
	uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
	report("port %s %d\n", "tcp", ntohs(addr.sin_port));
	uv_run(&loop, UV_RUN_DEFAULT);
	_exit(0);
}

/* --- The test process ------------------------------------------------------ */

static int setup(void **state)
{
	int p[2];
	char line[256], word[32];

	(void)state;
	pb_noise_keypair(host_pub, host_priv);
	pb_noise_keypair(phone_pub, phone_priv);
	randombytes_buf(psk, sizeof(psk));
	if (pipe(p) != 0)
		return -1;
	server_pid = fork();
	if (server_pid == 0) {
		close(p[0]);
		run_server(p[1]);
	}
	close(p[1]);
	events = fdopen(p[0], "r");
	if (fgets(line, sizeof(line), events) == NULL || sscanf(line, "port %31s %d", word, &server_port) != 2)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kill(server_pid, SIGKILL);
	waitpid(server_pid, NULL, 0);
	fclose(events);
	return 0;
}

/* The server's next event line, e.g. "close PB_EPEER_CLOSED -1111". */
static void expect_event(const char *prefix)
{
	char line[256];

	assert_non_null(fgets(line, sizeof(line), events));
	if (strncmp(line, prefix, strlen(prefix)) != 0)
		fail_msg("server said '%s', expected '%s'", line, prefix);
}

static void server_addr(struct sockaddr_storage *ss)
{
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)server_port);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static pb_session_candidate_t pairing_candidate(const uint8_t *key)
{
	pb_session_candidate_t c;

	memset(&c, 0, sizeof(c));
	c.protocol = PB_NOISE_PAIRING;
	c.cfg.rs = host_pub;
	c.cfg.psks[0] = key;
	c.cfg.npsks = 1;
	c.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	c.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	return c;
}

static pb_session_candidate_t remembered_candidate(void)
{
	pb_session_candidate_t c;

	memset(&c, 0, sizeof(c));
	c.protocol = PB_NOISE_REMEMBERED;
	c.cfg.s_priv = phone_priv;
	c.cfg.rs = host_pub;
	c.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	c.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	return c;
}

static void exchange(pb_client_t *c)
{
	static uint8_t big[200000];
	pb_envelope_t *in = NULL, env;
	Peerback__Request req;
	Peerback__Ping ping;

	/* The host's first message. */
	assert_int_equal(pb__client_recv(c, &in, NULL), 0);
	assert_int_equal(in->body_case, PEERBACK__ENVELOPE__BODY_REQUEST);
	assert_int_equal(in->request->ping->data.len, 15);
	assert_memory_equal(in->request->ping->data.data, "hello from host", 15);
	pb__envelope_free(in);
	/* A message larger than one Noise message goes and comes back whole. */
	randombytes_buf(big, sizeof(big));
	pb__envelope_init(&env);
	peerback__request__init(&req);
	peerback__ping__init(&ping);
	ping.data.data = big;
	ping.data.len = sizeof(big);
	req.id = 42;
	req.op_case = PEERBACK__REQUEST__OP_PING;
	req.ping = &ping;
	env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
	env.request = &req;
	assert_int_equal(pb__client_send(c, &env), 0);
	assert_int_equal(pb__client_recv(c, &in, NULL), 0);
	assert_int_equal(in->body_case, PEERBACK__ENVELOPE__BODY_REPLY);
	assert_int_equal(in->reply->id, 42);
	assert_int_equal(in->reply->pong->data.len, sizeof(big));
	assert_memory_equal(in->reply->pong->data.data, big, sizeof(big));
	pb__envelope_free(in);
}

static void test_nkpsk0_over_tcp(void **state)
{
	struct sockaddr_storage ss;
	pb_session_candidate_t cand = pairing_candidate(psk);
	pb_client_t c;

	(void)state;
	server_addr(&ss);
	assert_int_equal(pb__client_connect(&c, &ss, 1, 2000, &cand, NULL), 0);
	expect_event("open tag 1");
	exchange(&c);
	pb__client_close(&c);
	expect_event("close PB_EPEER_CLOSED");
}

static void test_ik_over_tcp(void **state)
{
	struct sockaddr_storage ss;
	pb_session_candidate_t cand = remembered_candidate();
	pb_client_t c;

	(void)state;
	server_addr(&ss);
	assert_int_equal(pb__client_connect(&c, &ss, 1, 2000, &cand, NULL), 0);
	expect_event("open tag 2");
	exchange(&c);
	pb__client_close(&c);
	expect_event("close PB_EPEER_CLOSED");
}

static void test_wrong_psk_fails_handshake(void **state)
{
	struct sockaddr_storage ss;
	uint8_t other[32];
	pb_session_candidate_t cand;
	pb_client_t c;

	(void)state;
	randombytes_buf(other, sizeof(other));
	cand = pairing_candidate(other);
	server_addr(&ss);
	assert_int_equal(pb__client_connect(&c, &ss, 1, 2000, &cand, NULL), PB_ENOISE_HANDSHAKE);
	expect_event("close PB_ENOISE_HANDSHAKE");
}

static int raw_connect(void)
{
	struct sockaddr_storage ss;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	server_addr(&ss);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
	return fd;
}

static void test_truncated_frame(void **state)
{
	uint8_t part[12] = { 0x00, 0x30 };
	int fd = raw_connect();

	(void)state;
	assert_int_equal(write(fd, part, sizeof(part)), sizeof(part));
	close(fd);
	expect_event("close PB_EFRAME_TRUNCATED");
}

static void test_garbage_handshake(void **state)
{
	uint8_t frame[2 + 48] = { 0x00, 48 };
	int fd = raw_connect();

	(void)state;
	randombytes_buf(frame + 2, 48);
	assert_int_equal(write(fd, frame, sizeof(frame)), sizeof(frame));
	expect_event("close PB_ENOISE_HANDSHAKE");
	close(fd);
}

/* Connects properly, reads the host's greeting, then sends raw bytes. */
static void connected(pb_client_t *c)
{
	struct sockaddr_storage ss;
	pb_session_candidate_t cand = pairing_candidate(psk);
	pb_envelope_t *in;

	server_addr(&ss);
	c->timeout_ms = 5000;
	assert_int_equal(pb__client_connect(c, &ss, 1, 2000, &cand, NULL), 0);
	expect_event("open tag 1");
	assert_int_equal(pb__client_recv(c, &in, NULL), 0);
	pb__envelope_free(in);
}

static void send_sealed(pb_client_t *c, const uint8_t *plain, size_t len)
{
	uint8_t frame[2 + 65535];
	size_t n;

	assert_int_equal(pb_noise_encrypt(&c->sess.send, NULL, 0, plain, len, frame + 2, sizeof(frame) - 2, &n), 0);
	assert_int_equal(pb_frame_header(n, frame), 0);
	assert_int_equal(write(c->fd, frame, n + 2), (ssize_t)(n + 2));
}

static void expect_peer_error(pb_client_t *c, int code)
{
	pb_envelope_t *in = NULL;
	int peer = 0;

	assert_int_equal(pb__client_recv(c, &in, &peer), PB_EPEER_ERROR);
	assert_int_equal(peer, code);
}

static void test_unauthenticated_frame(void **state)
{
	pb_client_t c;
	uint8_t frame[2 + 64] = { 0x00, 64 };

	(void)state;
	connected(&c);
	randombytes_buf(frame + 2, 64);
	assert_int_equal(write(c.fd, frame, sizeof(frame)), sizeof(frame));
	expect_event("close PB_ENOISE_DECRYPT");
	pb__client_close(&c);
}

static void test_unknown_version(void **state)
{
	pb_client_t c;
	pb_envelope_t env;
	Peerback__Request req;
	Peerback__Ping ping;
	uint8_t buf[128];

	(void)state;
	connected(&c);
	pb__envelope_init(&env);
	peerback__request__init(&req);
	peerback__ping__init(&ping);
	req.op_case = PEERBACK__REQUEST__OP_PING;
	req.ping = &ping;
	env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
	env.request = &req;
	env.version = 2;
	send_sealed(&c, buf, peerback__envelope__pack(&env, buf));
	expect_peer_error(&c, PB_EENV_VERSION);
	expect_event("close PB_EENV_VERSION");
	pb__client_close(&c);
}

static void test_missing_fields(void **state)
{
	pb_client_t c;
	pb_envelope_t env;
	uint8_t buf[128];

	(void)state;
	connected(&c);
	pb__envelope_init(&env); /* version only, no body */
	send_sealed(&c, buf, peerback__envelope__pack(&env, buf));
	expect_peer_error(&c, PB_EENV_MALFORMED);
	expect_event("close PB_EENV_MALFORMED");
	pb__client_close(&c);
}

static void test_sequence_over_cap(void **state)
{
	pb_client_t c;
	pb_envelope_t env;
	Peerback__Fragment f;
	uint8_t buf[70000], data[65000];

	(void)state;
	connected(&c);
	memset(data, 0, sizeof(data));
	pb__envelope_init(&env);
	peerback__fragment__init(&f);
	f.total = 1ull << 32; /* 4 GiB announced */
	f.data.data = data;
	f.data.len = 65000;
	env.body_case = PEERBACK__ENVELOPE__BODY_FRAGMENT;
	env.fragment = &f;
	send_sealed(&c, buf, peerback__envelope__pack(&env, buf));
	expect_peer_error(&c, PB_ESEQ_TOOBIG);
	expect_event("close PB_ESEQ_TOOBIG");
	pb__client_close(&c);
}

/* A ping request of len bytes (data) with id. */
static int send_ping(pb_client_t *c, uint64_t id, const uint8_t *data, size_t len)
{
	pb_envelope_t env;
	Peerback__Request req;
	Peerback__Ping ping;

	pb__envelope_init(&env);
	peerback__request__init(&req);
	peerback__ping__init(&ping);
	ping.data.data = (uint8_t *)data;
	ping.data.len = len;
	req.id = id;
	req.op_case = PEERBACK__REQUEST__OP_PING;
	req.ping = &ping;
	env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
	env.request = &req;
	return pb__client_send(c, &env);
}

static void test_sending_thread(void **state)
{
	static uint8_t data[4][150000];
	size_t len[4];
	pb_client_t c;
	pb_envelope_t *in = NULL;
	uint64_t out0;

	(void)state;
	connected(&c);
	assert_int_equal(pb__client_tx_start(&c), 0);
	assert_non_null(c.tx);
	out0 = c.bytes_out;
	/* Four requests queued (one of several frames, some of one frame,
	 * one empty), then their answers, twelve times over. */
	for (uint64_t round = 0; round < 12; round++) {
		for (size_t k = 0; k < 4; k++) {
			len[k] = k == 3 ? 0 : 1 + randombytes_uniform(k == 0 ? sizeof(data[0]) : 60000);
			randombytes_buf(data[k], len[k]);
			assert_int_equal(send_ping(&c, round * 4 + k + 100, data[k], len[k]), 0);
		}
		for (size_t k = 0; k < 4; k++) {
			assert_int_equal(pb__client_recv(&c, &in, NULL), 0);
			assert_int_equal(in->body_case, PEERBACK__ENVELOPE__BODY_REPLY);
			assert_int_equal(in->reply->id, round * 4 + k + 100);
			assert_int_equal(in->reply->pong->data.len, len[k]);
			if (len[k] > 0)
				assert_memory_equal(in->reply->pong->data.data, data[k], len[k]);
			pb__envelope_free(in);
		}
	}
	assert_int_equal(pb__client_flush(&c), 0);
	assert_true(c.bytes_out - out0 > 12 * 150000 / 2);
	pb__client_close(&c);
	assert_null(c.tx);
	expect_event("close PB_EPEER_CLOSED");
}

static void test_sending_thread_peer_gone(void **state)
{
	static uint8_t data[60000];
	pb_client_t c;
	pb_envelope_t env;
	uint8_t buf[128];
	int rc = 0, n;

	(void)state;
	connected(&c);
	assert_int_equal(pb__client_tx_start(&c), 0);
	/* Nothing queued: a malformed envelope written past the thread ends
	 * the session at the host. */
	assert_int_equal(pb__client_flush(&c), 0);
	pb__envelope_init(&env);
	send_sealed(&c, buf, peerback__envelope__pack(&env, buf));
	expect_peer_error(&c, PB_EENV_MALFORMED);
	expect_event("close PB_EENV_MALFORMED");
	/* The socket's buffers take the first sends; a later one (or the
	 * flush) fails with the write's error, within the client's timeout. */
	for (n = 0; n < 400 && rc == 0; n++)
		rc = send_ping(&c, (uint64_t)n, data, sizeof(data));
	if (rc == 0)
		rc = pb__client_flush(&c);
	assert_true(rc == -EPIPE || rc == -ECONNRESET);
	assert_int_equal(pb__client_flush(&c), rc);
	pb__client_close(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nkpsk0_over_tcp),
		cmocka_unit_test(test_ik_over_tcp),
		cmocka_unit_test(test_wrong_psk_fails_handshake),
		cmocka_unit_test(test_truncated_frame),
		cmocka_unit_test(test_garbage_handshake),
		cmocka_unit_test(test_unauthenticated_frame),
		cmocka_unit_test(test_unknown_version),
		cmocka_unit_test(test_missing_fields),
		cmocka_unit_test(test_sequence_over_cap),
		cmocka_unit_test(test_sending_thread),
		cmocka_unit_test(test_sending_thread_peer_gone),
	};
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
