/* Hostile network peers for the end-to-end tests. */
#include "hostile.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback/noise.h"
#include "peerback/qr.h"
#include "agent/account/account.h"

int64_t pb_test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pb_test_tcp_connect(const char *addr, const char *from)
{
	struct sockaddr_storage ss;
	int fd;

	if (pb__sockaddr_parse(addr, &ss) != 0 || ss.ss_family != AF_INET)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (from != NULL) {
		struct sockaddr_in src;

		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		if (inet_pton(AF_INET, from, &src.sin_addr) != 1 ||
		    bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			close(fd);
			return -1;
		}
	}
	if (connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void pb_test_host_key(const pb_test_host_t *host, uint8_t pk[32])
{
	pb_pair_uri_t u;

	assert_int_equal(pb_uri_parse(host->uri, strlen(host->uri), 0, &u), 0);
	memcpy(pk, u.host_pk, 32);
	sodium_memzero(&u, sizeof(u));
}

int pb_test_noise_connect(pb_client_t *c, const char *addr, const uint8_t host_pk[32], int timeout_ms)
{
	return pb_test_noise_connect_from(c, addr, NULL, host_pk, timeout_ms);
}

int pb_test_noise_connect_from(pb_client_t *c, const char *addr, const char *from, const uint8_t host_pk[32],
			       int timeout_ms)
{
	pb_session_candidate_t cand;
	uint8_t sk[32];
	int rc, fd;

	if (sodium_init() < 0 || (fd = pb_test_tcp_connect(addr, from)) < 0)
		return PB_EINVAL;
	randombytes_buf(sk, sizeof(sk));
	memset(&cand, 0, sizeof(cand));
	cand.protocol = PB_NOISE_REMEMBERED;
	cand.cfg.s_priv = sk;
	cand.cfg.rs = host_pk;
	cand.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	cand.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	rc = pb__client_start(c, fd, timeout_ms, &cand);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

long pb_test_proc_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

int pb_test_proc_sockets(pid_t pid)
{
	char path[64], link[64], target[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		ssize_t r;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%.20s", path, e->d_name);
		r = readlink(link, target, sizeof(target) - 1);
		if (r > 0 && strncmp(target, "socket:", 7) == 0)
			n++;
	}
	closedir(d);
	return n;
}

long pb_test_wait_closed(int fd, int timeout_ms)
{
	int64_t start = pb_test_now_ms(), left;
	char buf[4096];

	while ((left = start + timeout_ms - pb_test_now_ms()) > 0) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t r;

		if (poll(&p, 1, (int)left) <= 0)
			continue;
		r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return (long)(pb_test_now_ms() - start);
	}
	return -1;
}

static pthread_t drain_thread;
static volatile int drain_stop;
static pb_test_host_t *drain_host;

static void *drain(void *arg)
{
	char line[4096];

	(void)arg;
	while (!drain_stop)
		(void)pb_test_readline(&drain_host->proc, line, sizeof(line), 100);
	return NULL;
}

void pb_test_host_drain_start(pb_test_host_t *host)
{
	drain_host = host;
	drain_stop = 0;
	assert_int_equal(pthread_create(&drain_thread, NULL, drain, NULL), 0);
}

void pb_test_host_drain_stop(void)
{
	drain_stop = 1;
	pthread_join(drain_thread, NULL);
}

int pb_test_answer_challenge(pb_client_t *c, const char *home, bool forge)
{
	pb_identity_t id;
	pb_account_t acct;
	Peerback__SignedBlob *cert;
	Peerback__AuthResponse resp;
	pb_envelope_t *in = NULL, env;
	uint8_t challenge[PB_CHALLENGE_LEN], sig[64];
	int rc;

	rc = pb__client_recv(c, &in, NULL);
	if (rc != 0)
		return rc;
	if (in->body_case != PEERBACK__ENVELOPE__BODY_AUTH_CHALLENGE ||
	    in->auth_challenge->challenge.len != PB_CHALLENGE_LEN) {
		pb__envelope_free(in);
		return PB_EENV_UNEXPECTED;
	}
	assert_int_equal(pb__identity_load(home, &id), 0);
	assert_int_equal(pb__account_load(home, &acct), 0);
	cert = peerback__signed_blob__unpack(NULL, acct.cert_len, acct.cert);
	assert_non_null(cert);
	if (forge)
		randombytes_buf(sig, sizeof(sig));
	else
		pb__auth_sign(PB_AUTH_PHONE, c->sess.h, in->auth_challenge->challenge.data, id.sign_sk, sig);
	pb__envelope_free(in);
	randombytes_buf(challenge, sizeof(challenge));
	peerback__auth_response__init(&resp);
	resp.certificate = cert;
	resp.signature.data = sig;
	resp.signature.len = sizeof(sig);
	resp.challenge.data = challenge;
	resp.challenge.len = sizeof(challenge);
	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_AUTH_RESPONSE;
	env.auth_response = &resp;
	rc = pb__client_send(c, &env);
	peerback__signed_blob__free_unpacked(cert, NULL);
	pb__identity_wipe(&id);
	return rc;
}
