/* Account-bound pairing end to end: the account service and the host run as
 * their real programs; phones are the peerback program or, for deliberate
 * misbehaviour, the library's pairing code in this process. Every refusal
 * must name its reason on the refused side and change neither side's state. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "agent/account/account.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"
#include "protocol/client.h"

static char *dir;
static pb_test_imd_t imd, imd2;
static pb_test_host_t host;
static char host_home[4096], p1[4096], p2[4096], p3[4096], p4[4096], p5[4096], p6[4096];
static char imd_port_addr[96];
/* P4's successful pairing: its ticket and signature, for replays. */
static uint8_t t4[PB_CERT_MAX], s4[64];
static size_t t4_len;
/* P5's ticket, taken while its short certificate was valid. */
static uint8_t t5[PB_CERT_MAX];
static size_t t5_len;
static char u5[2048];

static void path(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

/* The state a refusal must leave alone: the phone's remembered hosts and
 * the host's paired devices. */
struct state {
	char phone[65];
	char *devices;
};

static void capture(const char *phone, struct state *s)
{
	char f[4200];
	char *args[] = { "--json", "host", "devices", NULL };

	snprintf(f, sizeof(f), "%s/hosts.json", phone);
	pb_test_file_digest(f, s->phone);
	assert_int_equal(pb_test_peerback(host_home, args, &s->devices, NULL), 0);
}

static void assert_unchanged(const char *phone, struct state *before)
{
	struct state after;

	capture(phone, &after);
	assert_string_equal(before->phone, after.phone);
	assert_string_equal(before->devices, after.devices);
	free(before->devices);
	free(after.devices);
}

/* A fresh QR code from the running host. */
static void new_qr(void)
{
	char line[4096];

	kill(host.proc.pid, SIGUSR1);
	assert_true(pb_test_host_wait(&host, "advertise", line, sizeof(line), 10000) > 0);
}

/* The host's next refusal event must carry this error. */
static void expect_host_refusal(const char *event, const char *err_name)
{
	char line[4096], got[64];

	assert_true(pb_test_host_wait(&host, event, line, sizeof(line), 10000) > 0);
	assert_int_equal(pb_test_json_str(line, "error", got, sizeof(got)), 0);
	assert_string_equal(got, err_name);
}

static int cli_pair(const char *home, const char *uri, char **err)
{
	char *args[] = { "pair", (char *)uri, NULL };

	return pb_test_peerback(home, args, NULL, err);
}

static void restart_imd(const char *validity)
{
	const char *extra_short[] = { "--cert-validity", validity, NULL };
	char *tool = pb_test_tool("peerback-imd");
	char line[1024];
	char *argv[] = { tool, "--home", imd.home, "serve", "--listen", imd_port_addr, "--json",
			 validity != NULL ? (char *)extra_short[0] : NULL, (char *)extra_short[1], NULL };

	pb_test_imd_stop(&imd);
	assert_int_equal(pb_test_spawn(&imd.proc, argv, NULL), 0);
	assert_true(pb_test_readline(&imd.proc, line, sizeof(line), 10000) > 0);
	free(tool);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", "bob", NULL };
	const char *alice[] = { "alice", NULL };
	static char png[4200];
	const char *host_args[] = { "--qr-ttl", "120", "--max-failures", "1000", "--qr-png", png, NULL };
	pb_pair_faults_t f;

	(void)state;
	dir = pb_test_tmpdir("pairing");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	snprintf(imd_port_addr, sizeof(imd_port_addr), "%s", imd.addr);
	{
		char d2[4200];
		snprintf(d2, sizeof(d2), "%s/other", dir);
		assert_int_equal(pb__mkdirs(d2, 0700), 0);
		pb_test_imd_start(&imd2, d2, alice, NULL);
	}
	path(host_home, "host");
	snprintf(png, sizeof(png), "%s/host-qr.png", dir);
	path(p1, "p1");
	path(p2, "p2");
	path(p3, "p3");
	path(p4, "p4");
	path(p5, "p5");
	path(p6, "p6");
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, p1, "alice", "phone-1"), 0);
	assert_int_equal(pb_test_login(&imd, p2, "bob", "bobs-phone"), 0);
	assert_int_equal(pb_test_login(&imd2, p3, "alice", "phone-3"), 0);
	assert_int_equal(pb_test_login(&imd, p4, "alice", "phone-4"), 0);
	assert_int_equal(pb_test_login(&imd, p6, "alice", "phone-6"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", host_args);

	/* P5 gets a certificate valid for 3 seconds, and a ticket while it is. */
	restart_imd("3");
	assert_int_equal(pb_test_login(&imd, p5, "alice", "phone-5"), 0);
	new_qr();
	snprintf(u5, sizeof(u5), "%s", host.uri);
	memset(&f, 0, sizeof(f));
	f.ticket_out = t5;
	f.ticket_out_len = &t5_len;
	f.ticket_only = true;
	assert_int_equal(pb__phone_pair(p5, u5, 5000, &f, NULL), 0);
	restart_imd(NULL);
	new_qr();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_host_stop(&host);
	pb_test_imd_stop(&imd);
	pb_test_imd_stop(&imd2);
	pb_test_rmtree(dir);
	free(dir);
	return 0;
}

static void test_pair_from_png(void **state)
{
	char png[4200], line[4096], decoded[2048];
	char *args[] = { "--json", "pair", "--qr-image", png, NULL };
	char *zbar[] = { "/usr/bin/zbarimg", "--raw", "-q", png, NULL };
	char *out = NULL;

	(void)state;
	/* The PNG the host wrote for its latest advertisement (--qr-png). */
	snprintf(png, sizeof(png), "%s/host-qr.png", dir);
	assert_int_equal(pb_test_run(zbar, NULL, 30, &out, NULL), 0);
	snprintf(decoded, sizeof(decoded), "%.*s", (int)strcspn(out, "\n"), out);
	assert_string_equal(decoded, host.uri);
	free(out);
	assert_int_equal(pb_test_peerback(p1, args, &out, NULL), 0);
	assert_non_null(strstr(out, "\"event\":\"paired\""));
	assert_non_null(strstr(out, "\"name\":\"desk\""));
	free(out);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	/* The host shows a new code after a pairing. */
	assert_true(pb_test_host_wait(&host, "advertise", line, sizeof(line), 10000) > 0);
}

static void test_ik_reconnect_without_qr(void **state)
{
	char *args[] = { "--json", "ping", NULL };
	char *out = NULL, line[4096];

	(void)state;
	assert_int_equal(pb_test_peerback(p1, args, &out, NULL), 0);
	assert_non_null(strstr(out, "\"event\":\"pong\""));
	free(out);
	assert_true(pb_test_host_wait(&host, "connected", line, sizeof(line), 10000) > 0);
}

static void test_other_account_refused(void **state)
{
	struct state before;
	char *err = NULL;

	(void)state;
	capture(p2, &before);
	/* The account service refuses a ticket across accounts. */
	assert_int_equal(cli_pair(p2, host.uri, &err), 1);
	assert_non_null(strstr(err, "different account"));
	free(err);
	assert_unchanged(p2, &before);
}

static void test_other_account_refused_by_host(void **state)
{
	uint8_t t[PB_CERT_MAX];
	size_t tlen;
	pb_pair_faults_t f;
	struct state before;

	(void)state;
	/* Bob's phone presents a ticket that alice's phone obtained: the host
	 * itself refuses the account. */
	memset(&f, 0, sizeof(f));
	f.ticket_out = t;
	f.ticket_out_len = &tlen;
	f.ticket_only = true;
	assert_int_equal(pb__phone_pair(p6, host.uri, 5000, &f, NULL), 0);
	capture(p2, &before);
	memset(&f, 0, sizeof(f));
	f.ticket = t;
	f.ticket_len = tlen;
	f.skip_ticket_request = true;
	assert_int_equal(pb__phone_pair(p2, host.uri, 5000, &f, NULL), PB_EACCT_WRONG);
	expect_host_refusal("refused", "PB_EACCT_WRONG");
	assert_unchanged(p2, &before);
	new_qr();
}

static void test_certificate_from_another_service(void **state)
{
	uint8_t *cert3;
	size_t cert3_len;
	char f3[4200];
	pb_pair_faults_t f;
	struct state before;
	char *err = NULL;

	(void)state;
	/* Phone 3 is "alice" at another account service: its service knows
	 * nothing of this host's pairing session. */
	capture(p3, &before);
	assert_int_equal(cli_pair(p3, host.uri, &err), 1);
	assert_non_null(strstr(err, pb_strerror(PB_EACCT_TICKET)));
	free(err);
	assert_unchanged(p3, &before);
	/* Presented to the host, a certificate signed by another key is
	 * refused. */
	snprintf(f3, sizeof(f3), "%s/cert.bin", p3);
	cert3 = pb_test_read_file(f3, &cert3_len);
	assert_non_null(cert3);
	capture(p4, &before);
	memset(&f, 0, sizeof(f));
	f.cert = cert3;
	f.cert_len = cert3_len;
	assert_int_equal(pb__phone_pair(p4, host.uri, 5000, &f, NULL), PB_EACCT_CERT);
	expect_host_refusal("refused", "PB_EACCT_CERT");
	assert_unchanged(p4, &before);
	free(cert3);
	new_qr();
}

static void test_expired_certificate(void **state)
{
	pb_pair_faults_t f;
	struct state before;
	char *err = NULL;

	(void)state;
	sleep(4); /* P5's certificate lived 3 seconds */
	capture(p5, &before);
	assert_int_equal(cli_pair(p5, host.uri, &err), 1);
	assert_non_null(strstr(err, "certificate has expired"));
	free(err);
	/* With the ticket it obtained in time, the host refuses it too. */
	memset(&f, 0, sizeof(f));
	f.ticket = t5;
	f.ticket_len = t5_len;
	f.skip_ticket_request = true;
	assert_int_equal(pb__phone_pair(p5, u5, 5000, &f, NULL), PB_EACCT_CERT_EXPIRED);
	expect_host_refusal("refused", "PB_EACCT_CERT_EXPIRED");
	assert_unchanged(p5, &before);
	new_qr();
}

static void test_successful_library_pairing(void **state)
{
	pb_pair_faults_t f;
	char line[4096];

	(void)state;
	memset(&f, 0, sizeof(f));
	f.ticket_out = t4;
	f.ticket_out_len = &t4_len;
	f.signature_out = s4;
	assert_int_equal(pb__phone_pair(p4, host.uri, 5000, &f, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	assert_true(pb_test_host_wait(&host, "advertise", line, sizeof(line), 10000) > 0);
}

static void test_replayed_ticket(void **state)
{
	pb_pair_faults_t f;
	struct state before;

	(void)state;
	capture(p4, &before);
	memset(&f, 0, sizeof(f));
	f.ticket = t4;
	f.ticket_len = t4_len;
	f.skip_ticket_request = true;
	assert_int_equal(pb__phone_pair(p4, host.uri, 5000, &f, NULL), PB_EACCT_TICKET_REPLAY);
	expect_host_refusal("refused", "PB_EACCT_TICKET_REPLAY");
	assert_unchanged(p4, &before);
}

static void test_second_use_of_qr(void **state)
{
	char used[2048];
	char *err = NULL;
	pb_pair_faults_t f;
	struct state before;
	char line[4096];

	(void)state;
	/* Pair phone 6 on the current code, then try the code again. */
	snprintf(used, sizeof(used), "%s", host.uri);
	assert_int_equal(cli_pair(p6, used, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	capture(p1, &before);
	assert_int_equal(cli_pair(p1, used, &err), 1);
	assert_non_null(strstr(err, "already used"));
	free(err);
	assert_unchanged(p1, &before);
	/* Past the service, the host itself refuses the spent secret. */
	capture(p4, &before);
	memset(&f, 0, sizeof(f));
	f.ticket = t4;
	f.ticket_len = t4_len;
	f.skip_ticket_request = true;
	assert_int_equal(pb__phone_pair(p4, used, 5000, &f, NULL), PB_EACCT_SECRET_USED);
	expect_host_refusal("refused", "PB_EACCT_SECRET_USED");
	assert_unchanged(p4, &before);
}

static void test_lifted_signature(void **state)
{
	pb_pair_faults_t f;
	struct state before;

	(void)state;
	/* Phone 4's own valid signature, but from its earlier session. */
	capture(p4, &before);
	memset(&f, 0, sizeof(f));
	f.signature = s4;
	assert_int_equal(pb__phone_pair(p4, host.uri, 5000, &f, NULL), PB_EACCT_SIG);
	expect_host_refusal("refused", "PB_EACCT_SIG");
	assert_unchanged(p4, &before);
	new_qr();
}

/* --- Men in the middle ------------------------------------------------------- */

struct mitm {
	pid_t pid;
	int port;
};

static int sock_write(void *arg, const uint8_t *data, size_t len)
{
	int fd = *(int *)arg;

	return write(fd, data, len) == (ssize_t)len ? 0 : -1;
}

static void keep(void *arg, pb_envelope_t *env)
{
	*(pb_envelope_t **)arg = env;
}

/* Serves one phone as a fake host: with its own static key A and the given
 * psk (the real one when it rewrote the QR code, a guess otherwise). It
 * replies to the account challenge with the real host's certificate. */
static void mitm_serve(int lfd, const uint8_t a_priv[32], const uint8_t psk[32], const char *host_cert_path)
{
	pb_session_candidate_t c;
	pb_session_t s;
	uint8_t buf[65536], ch[32], sig[64];
	pb_envelope_t *in = NULL, env;
	int fd = accept(lfd, NULL, NULL);
	bool est = false;
	ssize_t r;

	memset(&c, 0, sizeof(c));
	c.protocol = PB_NOISE_PAIRING;
	c.cfg.s_priv = a_priv;
	c.cfg.psks[0] = psk;
	c.cfg.npsks = 1;
	c.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	c.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	if (pb__session_init(&s, false, &c, 1, sock_write, &fd, 0) != 0)
		_exit(1);
	while (!est && (r = read(fd, buf, sizeof(buf))) > 0)
		if (pb__session_feed(&s, buf, (size_t)r, keep, &in, &est) != 0)
			_exit(0); /* the handshake failed: nothing more to try */
	if (!est)
		_exit(0);
	{
		Peerback__AuthChallenge ac;
		peerback__auth_challenge__init(&ac);
		randombytes_buf(ch, sizeof(ch));
		ac.challenge.data = ch;
		ac.challenge.len = 32;
		ac.min_version = ac.max_version = 1;
		pb__envelope_init(&env);
		env.body_case = PEERBACK__ENVELOPE__BODY_AUTH_CHALLENGE;
		env.auth_challenge = &ac;
		(void)pb__session_send(&s, &env);
	}
	while (in == NULL && (r = read(fd, buf, sizeof(buf))) > 0)
		if (pb__session_feed(&s, buf, (size_t)r, keep, &in, NULL) != 0)
			_exit(0);
	{
		size_t clen;
		uint8_t *cert = pb_test_read_file(host_cert_path, &clen);
		Peerback__SignedBlob *blob = peerback__signed_blob__unpack(NULL, clen, cert);
		Peerback__AuthHost ah;

		peerback__auth_host__init(&ah);
		ah.certificate = blob;
		randombytes_buf(sig, sizeof(sig));
		ah.signature.data = sig;
		ah.signature.len = 64;
		pb__envelope_init(&env);
		env.body_case = PEERBACK__ENVELOPE__BODY_AUTH_HOST;
		env.auth_host = &ah;
		(void)pb__session_send(&s, &env);
	}
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	_exit(0);
}

static void mitm_start(struct mitm *m, const uint8_t a_priv[32], const uint8_t psk[32])
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	char cert[4200];
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	getsockname(lfd, (struct sockaddr *)&a, &alen);
	m->port = ntohs(a.sin_port);
	snprintf(cert, sizeof(cert), "%s/cert.bin", host_home);
	m->pid = fork();
	if (m->pid == 0) {
		alarm(30); /* never outlive a failed test */
		mitm_serve(lfd, a_priv, psk, cert);
	}
	close(lfd);
}

/* The current URI with its address (and, given, its key) replaced. */
static void rewrite_uri(const char *uri, int port, const uint8_t *key, char *out, size_t cap)
{
	pb_pair_uri_t u;
	struct sockaddr_in *a = (struct sockaddr_in *)&u.addrs[0];

	assert_int_equal(pb_uri_parse(uri, strlen(uri), 0, &u), 0);
	memset(&u.addrs[0], 0, sizeof(u.addrs[0]));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	u.naddrs = 1;
	if (key != NULL)
		memcpy(u.host_pk, key, 32);
	assert_true(pb_uri_format(&u, out, cap) > 0);
}

static void test_mitm_without_psk(void **state)
{
	uint8_t a_pub[32], a_priv[32], guess[32];
	char uri[2048];
	struct mitm m;
	struct state before;
	char *err = NULL;

	(void)state;
	/* The attacker answers at the address but knows neither the host's
	 * private key nor the secret. */
	pb_noise_keypair(a_pub, a_priv);
	randombytes_buf(guess, sizeof(guess));
	mitm_start(&m, a_priv, guess);
	rewrite_uri(host.uri, m.port, NULL, uri, sizeof(uri));
	capture(p6, &before);
	assert_int_equal(cli_pair(p6, uri, &err), 1);
	assert_non_null(strstr(err, "refused the secure handshake"));
	free(err);
	waitpid(m.pid, NULL, 0);
	assert_unchanged(p6, &before);
	new_qr();
}

static void test_mitm_substituting_host_key(void **state)
{
	uint8_t a_pub[32], a_priv[32];
	pb_pair_uri_t u;
	char uri[2048];
	struct mitm m;
	struct state before;

	(void)state;
	/* The attacker rewrote the QR code with its own key: the handshake
	 * completes with it, but it holds no certificate for that key. */
	pb_noise_keypair(a_pub, a_priv);
	assert_int_equal(pb_uri_parse(host.uri, strlen(host.uri), 0, &u), 0);
	mitm_start(&m, a_priv, u.secret);
	rewrite_uri(host.uri, m.port, a_pub, uri, sizeof(uri));
	capture(p6, &before);
	assert_int_equal(pb__phone_pair(p6, uri, 5000, NULL, NULL), PB_EACCT_CERT);
	kill(m.pid, SIGKILL);
	waitpid(m.pid, NULL, 0);
	assert_unchanged(p6, &before);
	sodium_memzero(&u, sizeof(u));
	new_qr();
}

static void test_standard_noise_client(void **state)
{
	char script[4200], *out = NULL, *err = NULL;
	char *py[] = { "/usr/bin/python3", script, "--uri", host.uri, NULL };
	char line[4096];

	(void)state;
	/* An independent NKpsk0 implementation completes the handshake with
	 * the URI alone and reads the host's first message: the challenge. */
	snprintf(script, sizeof(script), "%s/tests/interop/noise_nkpsk0.py", getenv("PB_SOURCE_DIR"));
	assert_int_equal(pb_test_run(py, NULL, 60, &out, &err), 0);
	printf("python: %s", out);
	assert_non_null(strstr(out, "\"version\": 1"));
	assert_non_null(strstr(out, "\"challenge_len\": 32"));
	free(out);
	free(err);
	/* It then hangs up without answering: the host notes the end. */
	(void)line;
}

static void test_expired_qr(void **state)
{
	const char *args[] = { "--qr-ttl", "2", "--max-failures", "3", NULL };
	pb_test_host_t h2;
	char h2home[4096], uri[2048], line[4096];
	uint8_t t[PB_CERT_MAX];
	size_t tlen;
	pb_pair_faults_t f;
	char *err = NULL;
	struct state before;

	(void)state;
	path(h2home, "host2");
	assert_int_equal(pb_test_login(&imd, h2home, "alice", "laptop"), 0);
	pb_test_host_start(&h2, h2home, "127.0.0.1:0", args);
	snprintf(uri, sizeof(uri), "%s", h2.uri);
	memset(&f, 0, sizeof(f));
	f.ticket_out = t;
	f.ticket_out_len = &tlen;
	f.ticket_only = true;
	assert_int_equal(pb__phone_pair(p4, uri, 5000, &f, NULL), 0);
	sleep(3);
	/* The phone refuses an expired code before going anywhere. */
	assert_int_equal(cli_pair(p1, uri, &err), 1);
	assert_non_null(strstr(err, "expired"));
	free(err);
	/* A phone that ignores the expiry is refused by the host. */
	memset(&f, 0, sizeof(f));
	f.ticket = t;
	f.ticket_len = tlen;
	f.skip_ticket_request = true;
	f.ignore_expiry = true;
	assert_int_equal(pb__phone_pair(p4, uri, 5000, &f, NULL), PB_EACCT_SECRET_EXPIRED);
	assert_true(pb_test_host_wait(&h2, "refused", line, sizeof(line), 10000) > 0);
	assert_non_null(strstr(line, "PB_EACCT_SECRET_EXPIRED"));

	/* Rate limit: after 3 failures from this address even a valid phone is
	 * turned away for a while. */
	for (int i = 0; i < 3; i++) {
		struct sockaddr_storage ss;
		uint8_t frame[2 + 48] = { 0, 48 };
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		assert_int_equal(pb__sockaddr_parse(h2.listen, &ss), 0);
		assert_int_equal(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
		randombytes_buf(frame + 2, 48);
		assert_int_equal(write(fd, frame, sizeof(frame)), sizeof(frame));
		assert_true(pb_test_host_wait(&h2, "handshake failed", line, sizeof(line), 10000) > 0);
		close(fd);
	}
	capture(p4, &before);
	assert_true(pb_test_host_wait(&h2, "advertise", line, sizeof(line), 10000) > 0);
	assert_int_equal(pb__phone_pair(p4, h2.uri, 5000, NULL, NULL), PB_EACCT_RATE);
	assert_unchanged(p4, &before);
	pb_test_host_stop(&h2);
}

static void test_revoked_device(void **state)
{
	char *list = NULL, dev[64], *err = NULL, line[4096];
	char *args_list[] = { "--json", "host", "devices", NULL };
	char *args_ping[] = { "ping", NULL };

	(void)state;
	assert_int_equal(pb_test_peerback(host_home, args_list, &list, NULL), 0);
	{
		/* Phone 1's device id: the line naming phone-1. */
		char *l = strstr(list, "\"name\":\"phone-1\"");
		assert_non_null(l);
		while (l > list && *l != '{')
			l--;
		assert_int_equal(pb_test_json_str(l, "device", dev, sizeof(dev)), 0);
	}
	free(list);
	{
		char *args_revoke[] = { "host", "revoke", dev, NULL };
		assert_int_equal(pb_test_peerback(host_home, args_revoke, NULL, NULL), 0);
	}
	assert_int_equal(pb_test_peerback(p1, args_ping, NULL, &err), 1);
	assert_non_null(strstr(err, pb_strerror(PB_EACCT_REVOKED)));
	free(err);
	expect_host_refusal("refused", "PB_EACCT_REVOKED");
	(void)line;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pair_from_png),
		cmocka_unit_test(test_ik_reconnect_without_qr),
		cmocka_unit_test(test_other_account_refused),
		cmocka_unit_test(test_other_account_refused_by_host),
		cmocka_unit_test(test_certificate_from_another_service),
		cmocka_unit_test(test_expired_certificate),
		cmocka_unit_test(test_successful_library_pairing),
		cmocka_unit_test(test_replayed_ticket),
		cmocka_unit_test(test_second_use_of_qr),
		cmocka_unit_test(test_lifted_signature),
		cmocka_unit_test(test_mitm_without_psk),
		cmocka_unit_test(test_mitm_substituting_host_key),
		cmocka_unit_test(test_standard_noise_client),
		cmocka_unit_test(test_expired_qr),
		cmocka_unit_test(test_revoked_device),
	};
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
