/* Hostile peers for the soak test (tools/bench/soak.sh), one mode a run:
 *
 *   soak-peer unauth URI N SECONDS
 *       holds N connections to the host of the pairing URI that never
 *       authenticate: half stay silent, half run the Noise handshake with a
 *       key nobody knows and send a large fragment sequence; each one the
 *       host closes is opened again, for SECONDS.
 *   soak-peer noread HOME SECONDS
 *       connects as the paired phone at HOME and sends pings of 60,000
 *       bytes, which the host echoes, without ever reading a reply; sends
 *       again every second once the host stops reading, for SECONDS.
 *
 * Prints one line of counts at the end (at SIGTERM too). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "peerback/noise.h"
#include "peerback/qr.h"
#include "agent/phone/phone.h"
#include "protocol/client.h"

#define PIECE 60000

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int tcp_to(const struct sockaddr_storage *ss)
{
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (const struct sockaddr *)ss, len) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The Noise handshake with a fresh key, then the start of a 100 MiB
 * sequence. Returns the fd, or -1. */
static int noisy(const struct sockaddr_storage *ss, const uint8_t host_pk[32], pb_client_t *c)
{
	pb_session_candidate_t cand;
	Peerback__Fragment f;
	pb_envelope_t env;
	static uint8_t data[PIECE];
	uint8_t sk[32];
	int fd = tcp_to(ss), rc;

	if (fd < 0)
		return -1;
	randombytes_buf(sk, sizeof(sk));
	memset(&cand, 0, sizeof(cand));
	cand.protocol = PB_NOISE_REMEMBERED;
	cand.cfg.s_priv = sk;
	cand.cfg.rs = host_pk;
	cand.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	cand.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	rc = pb__client_start(c, fd, 2000, &cand);
	sodium_memzero(sk, sizeof(sk));
	if (rc != 0)
		return -1;
	pb__envelope_init(&env);
	peerback__fragment__init(&f);
	f.total = 100u << 20;
	f.data.data = data;
	f.data.len = sizeof(data);
	env.body_case = PEERBACK__ENVELOPE__BODY_FRAGMENT;
	env.fragment = &f;
	(void)pb__client_send(c, &env);
	return c->fd;
}

static int run_unauth(const char *uri, int n, int seconds)
{
	pb_pair_uri_t u;
	pb_client_t *c = calloc((size_t)n, sizeof(*c));
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	int64_t end = now_ms() + (int64_t)seconds * 1000;
	unsigned long opened = 0, closed = 0;

	if (c == NULL || p == NULL || pb_uri_parse(uri, strlen(uri), 0, &u) != 0) {
		fprintf(stderr, "soak-peer: bad URI or out of memory\n");
		return 1;
	}
	for (int i = 0; i < n; i++)
		p[i].fd = -1;
	while (now_ms() < end && !stop) {
		for (int i = 0; i < n; i++) {
			if (p[i].fd >= 0)
				continue;
			p[i].fd = i % 2 ? tcp_to(&u.addrs[0]) : noisy(&u.addrs[0], u.host_pk, &c[i]);
			p[i].events = POLLIN;
			if (p[i].fd >= 0)
				opened++;
		}
		if (poll(p, (nfds_t)n, 200) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			char buf[4096];

			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (recv(p[i].fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
				continue;
			if (i % 2)
				close(p[i].fd);
			else
				pb__client_close(&c[i]);
			p[i].fd = -1;
			closed++;
		}
	}
	printf("unauth: %d slots, %lu connections opened, %lu closed by the host\n", n, opened, closed);
	return 0;
}

static int run_noread(const char *home, int seconds)
{
	static uint8_t data[PIECE];
	int64_t end = now_ms() + (int64_t)seconds * 1000;
	unsigned long sent = 0, stalls = 0, reconnects = 0;
	pb_client_t c;
	bool up = false;
	uint64_t id = 0;

	while (now_ms() < end && !stop) {
		Peerback__Request req;
		Peerback__Ping ping;
		pb_envelope_t env;

		if (!up) {
			if (pb__phone_connect(home, NULL, 10000, &c, NULL) != 0) {
				sleep(1);
				continue;
			}
			c.timeout_ms = 1000;
			up = true;
			reconnects++;
		}
		peerback__request__init(&req);
		peerback__ping__init(&ping);
		ping.data.data = data;
		ping.data.len = sizeof(data);
		req.id = ++id;
		req.op_case = PEERBACK__REQUEST__OP_PING;
		req.ping = &ping;
		pb__envelope_init(&env);
		env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
		env.request = &req;
		switch (pb__client_send(&c, &env)) {
		case 0:
			sent++;
			break;
		case PB_ETIMEOUT:
			stalls++; /* the host stopped reading: as it should */
			break;
		default:
			pb__client_close(&c);
			up = false;
		}
	}
	if (up)
		pb__client_close(&c);
	printf("noread: %lu pings sent, %lu sends stalled, %lu connections\n", sent, stalls, reconnects);
	return 0;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 1;
	signal(SIGTERM, on_term);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && strcmp(argv[1], "unauth") == 0)
		return run_unauth(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && strcmp(argv[1], "noread") == 0)
		return run_noread(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: soak-peer unauth URI N SECONDS | soak-peer noread HOME SECONDS\n");
	return 2;
}
