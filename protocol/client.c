/* The blocking secure-session client. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "protocol/client.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(void *arg, const uint8_t *data, size_t len)
{
	pb_client_t *c = arg;

	while (len > 0) {
		ssize_t w = send(c->fd, data, len, MSG_NOSIGNAL | (c->more ? MSG_MORE : 0));

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = { c->fd, POLLOUT, 0 };
				if (poll(&p, 1, c->timeout_ms) <= 0)
					return PB_ETIMEOUT;
				continue;
			}
			c->write_err = -errno;
			return -errno;
		}
		data += w;
		len -= (size_t)w;
		c->bytes_out += (uint64_t)w;
	}
	c->held = c->more;
	return 0;
}

/* Pushes what pb__client_send_more left held: setting TCP_NODELAY (which
 * the client always runs with) sends the pending segments at once. A
 * socket that is no TCP socket holds nothing. */
static void push_held(pb_client_t *c)
{
	int one = 1;

	if (!c->held)
		return;
	c->held = false;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int connect_one(const struct sockaddr_storage *ss, int timeout_ms)
{
	socklen_t slen = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct pollfd p;
	int err = 0, one = 1;
	socklen_t elen = sizeof(err);

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)ss, slen) != 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	p.fd = fd;
	p.events = POLLOUT;
	p.revents = 0;
	if (poll(&p, 1, timeout_ms) <= 0) {
		close(fd);
		return PB_ETIMEOUT;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
		close(fd);
		return err != 0 ? -err : PB_EIO;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void enqueue(void *arg, pb_envelope_t *env)
{
	pb_client_t *c = arg;

	if (c->qlen == PB_CLIENT_MAX_QUEUE) {
		/* The peer sent more than we asked for; the caller sees an error. */
		pb__envelope_free(env);
		c->write_err = PB_EENV_UNEXPECTED;
		return;
	}
	c->queue[(c->qhead + c->qlen) % PB_CLIENT_MAX_QUEUE] = env;
	c->qlen++;
}

/* What one read takes in: several frames of up to 64 KiB, so that most of
 * them lie whole in it and are decrypted where they lie; a frame cut by
 * the end of a read is copied into the session's reader. */
#define READ_BUF (256u * 1024)

/* Reads once from the socket (waiting up to deadline) and feeds the session.
 * What is there already is read without a poll first. */
static int pump(pb_client_t *c, int64_t deadline, bool *established)
{
	struct pollfd p = { c->fd, POLLIN, 0 };
	int64_t left = deadline - now_ms();
	ssize_t r;
	int rc;

	if (left <= 0)
		return PB_ETIMEOUT;
	if (c->rbuf == NULL && (c->rbuf = malloc(READ_BUF)) == NULL)
		return PB_ENOMEM;
	push_held(c);
	r = recv(c->fd, c->rbuf, READ_BUF, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		rc = poll(&p, 1, (int)left);
		if (rc == 0)
			return PB_ETIMEOUT;
		if (rc < 0)
			return errno == EINTR ? 0 : -errno;
		r = recv(c->fd, c->rbuf, READ_BUF, MSG_DONTWAIT);
	}
	if (r == 0)
		return pb__session_eof(&c->sess);
	if (r < 0)
		return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	c->bytes_in += (uint64_t)r;
	rc = pb__session_feed(&c->sess, c->rbuf, (size_t)r, enqueue, c, established);
	if (rc == 0 && c->write_err != 0)
		rc = c->write_err;
	return rc;
}

int pb__client_connect(pb_client_t *c, const struct sockaddr_storage *addrs, size_t naddrs, int connect_timeout_ms,
		       const pb_session_candidate_t *cand, size_t *which)
{
	return pb__client_connect_within(c, addrs, naddrs, connect_timeout_ms, 30000, cand, which);
}

int pb__client_connect_within(pb_client_t *c, const struct sockaddr_storage *addrs, size_t naddrs,
			      int connect_timeout_ms, int timeout_ms, const pb_session_candidate_t *cand, size_t *which)
{
	int rc = PB_ENOTFOUND, fd = -1;
	size_t i;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	for (i = 0; i < naddrs; i++) {
		fd = connect_one(&addrs[i], connect_timeout_ms);
		if (fd >= 0)
			break;
		rc = fd;
	}
	if (fd < 0)
		return rc;
	if (which != NULL)
		*which = i;
	return pb__client_start(c, fd, timeout_ms, cand);
}

int pb__client_start(pb_client_t *c, int fd, int timeout_ms, const pb_session_candidate_t *cand)
{
	int64_t deadline;
	int rc;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	rc = pb__session_init(&c->sess, true, cand, 1, write_all, c, 0);
	if (rc != 0)
		goto out_close;
	rc = pb__session_start(&c->sess);
	if (rc != 0)
		goto out_close;
	deadline = now_ms() + c->timeout_ms;
	while (!c->sess.established) {
		rc = pump(c, deadline, NULL);
		if (rc != 0) {
			if (rc == PB_EPEER_CLOSED || rc == PB_EFRAME_TRUNCATED)
				rc = PB_ENOISE_HANDSHAKE;
			goto out_close;
		}
	}
	return 0;
out_close:
	pb__client_close(c);
	return rc;
}

int pb__client_send(pb_client_t *c, pb_envelope_t *env)
{
	if (c->fd < 0)
		return PB_ESTATE;
	return pb__session_send(&c->sess, env);
}

int pb__client_send_more(pb_client_t *c, pb_envelope_t *env)
{
	int rc;

	if (c->fd < 0)
		return PB_ESTATE;
	c->more = true;
	rc = pb__session_send(&c->sess, env);
	c->more = false;
	return rc;
}

int pb__client_recv(pb_client_t *c, pb_envelope_t **out, int *peer_code)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	pb_envelope_t *env;
	int rc;

	*out = NULL;
	if (c->fd < 0)
		return PB_ESTATE;
	/* Also when an answer is queued already: what the caller does with
	 * it must not leave the peer waiting for the held requests. */
	push_held(c);
	while (c->qlen == 0) {
		rc = pump(c, deadline, NULL);
		if (rc != 0)
			return rc;
	}
	env = c->queue[c->qhead];
	c->qhead = (c->qhead + 1) % PB_CLIENT_MAX_QUEUE;
	c->qlen--;
	if (env->body_case == PEERBACK__ENVELOPE__BODY_ERROR) {
		if (peer_code != NULL)
			*peer_code = env->error->code;
		pb__envelope_free(env);
		return PB_EPEER_ERROR;
	}
	*out = env;
	return 0;
}

void pb__client_close(pb_client_t *c)
{
	while (c->qlen > 0) {
		pb__envelope_free(c->queue[c->qhead]);
		c->qhead = (c->qhead + 1) % PB_CLIENT_MAX_QUEUE;
		c->qlen--;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	pb__session_free(&c->sess);
	if (c->rbuf != NULL) {
		/* Frames as they came: ciphertext, nothing to wipe. */
		free(c->rbuf);
		c->rbuf = NULL;
	}
}

int pb__sockaddr_format(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		n = snprintf(out, cap, "%s:%u", host, ntohs(a->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		n = snprintf(out, cap, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		return PB_EINVAL;
	}
	return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
}

int pb__sockaddr_parse(const char *text, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	unsigned long port;
	char *end;
	size_t hlen;

	memset(ss, 0, sizeof(*ss));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':')
			return PB_EURI_ADDR;
		hlen = (size_t)(close - text - 1);
		if (hlen >= sizeof(host))
			return PB_EURI_ADDR;
		memcpy(host, text + 1, hlen);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL)
			return PB_EURI_ADDR;
		hlen = (size_t)(colon - text);
		if (hlen >= sizeof(host))
			return PB_EURI_ADDR;
		memcpy(host, text, hlen);
	}
	host[hlen] = 0;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != 0 || port > 65535)
		return PB_EURI_ADDR;
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		return 0;
	}
	return PB_EURI_ADDR;
}
