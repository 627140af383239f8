/* The blocking secure-session client. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "protocol/client.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int tx_write(pb_client_t *c, const uint8_t *data, size_t len);

/* After a write that failed with err: 0 to write again (interrupted, or
 * the socket has room again within the timeout), else the error. */
static int write_again(const pb_client_t *c, int err)
{
	struct pollfd p = { c->fd, POLLOUT, 0 };

	if (err == EINTR)
		return 0;
	if (err != EAGAIN)
		return -err;
	return poll(&p, 1, c->timeout_ms) > 0 ? 0 : PB_ETIMEOUT;
}

static int write_all(void *arg, const uint8_t *data, size_t len)
{
	pb_client_t *c = arg;
	int rc;

	if (c->tx != NULL)
		return tx_write(c, data, len);
	while (len > 0) {
		ssize_t w = send(c->fd, data, len, MSG_NOSIGNAL | (c->more ? MSG_MORE : 0));

		if (w < 0) {
			if ((rc = write_again(c, errno)) == 0)
				continue;
			if (rc != PB_ETIMEOUT)
				c->write_err = rc;
			return rc;
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

/* ---- the sending thread (pb__client_tx_start) ------------------------------ */

/* Frames of up to TX_SLOT bytes in TX_SLOTS slots (1 MiB): a put batch's
 * frames are encrypted into them while the thread writes the ones before
 * to the socket, up to all of them in one write. */
#define TX_SLOTS 16
#define TX_SLOT (PB_FRAME_HDR + PB_FRAME_MAX)

struct pb_client_tx_s {
	pb_client_t *c;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t more; /* the thread's: a frame queued, stop */
	pthread_cond_t room; /* the caller's: a slot written */
	uint8_t *buf;        /* TX_SLOTS slots of TX_SLOT bytes */
	size_t len[TX_SLOTS]; /* each queued slot's bytes (0: given back unused) */
	/* Slots by seq, buf + (seq % TX_SLOTS) * TX_SLOT: written before
	 * head, queued before tail, the caller's own at tail while alloc is
	 * past it. */
	uint64_t head, tail;
	bool alloc;
	bool stop;
	int err; /* the first write error; from then on frames are dropped */
};

/* Writes iov[0..n) whole to the socket, waiting for room as write_all does. */
static int tx_writev(pb_client_t *c, struct iovec *iov, int n)
{
	uint64_t out = 0;

	while (n > 0) {
		struct msghdr m;
		ssize_t w;

		memset(&m, 0, sizeof(m));
		m.msg_iov = iov;
		m.msg_iovlen = (size_t)n;
		w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		if (w < 0) {
			int rc = write_again(c, errno);

			if (rc != 0)
				return rc;
			continue;
		}
		out += (uint64_t)w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	__atomic_add_fetch(&c->bytes_out, out, __ATOMIC_RELAXED);
	return 0;
}

static void *tx_run(void *arg)
{
	pb_client_tx_t *t = arg;

	pthread_mutex_lock(&t->mu);
	for (;;) {
		struct iovec iov[TX_SLOTS];
		uint64_t upto;
		int n = 0, rc = 0;

		while (!t->stop && t->head == t->tail)
			pthread_cond_wait(&t->more, &t->mu);
		if (t->head == t->tail)
			break; /* stopped, all written */
		upto = t->tail;
		for (uint64_t q = t->head; q < upto; q++) {
			size_t k = (size_t)(q % TX_SLOTS);

			if (t->len[k] == 0)
				continue;
			iov[n].iov_base = t->buf + k * TX_SLOT;
			iov[n++].iov_len = t->len[k];
		}
		pthread_mutex_unlock(&t->mu);
		if (n > 0 && t->err == 0)
			rc = tx_writev(t->c, iov, n);
		pthread_mutex_lock(&t->mu);
		if (rc != 0 && t->err == 0)
			t->err = rc;
		t->head = upto;
		pthread_cond_broadcast(&t->room);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* The next slot, once one is free (the caller's alone until tx_send).
 * After a write error the thread no longer reads the slots: one is given
 * at once, and tx_send returns the error. */
static uint8_t *tx_alloc(void *arg, size_t len)
{
	pb_client_t *c = arg;
	pb_client_tx_t *t = c->tx;
	uint8_t *slot = NULL;

	if (len > TX_SLOT)
		return NULL;
	pthread_mutex_lock(&t->mu);
	while (t->tail - t->head == TX_SLOTS && t->err == 0)
		pthread_cond_wait(&t->room, &t->mu);
	if (!t->alloc) {
		t->alloc = true;
		slot = t->buf + (size_t)(t->tail % TX_SLOTS) * TX_SLOT;
	}
	pthread_mutex_unlock(&t->mu);
	return slot;
}

/* Queues the slot tx_alloc gave (len 0: given back unused). */
static int tx_send(void *arg, uint8_t *frame, size_t len)
{
	pb_client_t *c = arg;
	pb_client_tx_t *t = c->tx;
	int err;

	(void)frame;
	pthread_mutex_lock(&t->mu);
	t->len[t->tail % TX_SLOTS] = len;
	t->tail++;
	t->alloc = false;
	err = t->err;
	pthread_cond_signal(&t->more);
	pthread_mutex_unlock(&t->mu);
	return err;
}

/* Bytes the session writes itself (not through tx_alloc), in order
 * behind the frames before them. */
static int tx_write(pb_client_t *c, const uint8_t *data, size_t len)
{
	while (len > 0) {
		size_t n = len < TX_SLOT ? len : TX_SLOT;
		uint8_t *slot = tx_alloc(c, n);
		int rc;

		if (slot == NULL)
			return PB_ESTATE;
		memcpy(slot, data, n);
		if ((rc = tx_send(c, slot, n)) != 0)
			return rc;
		data += n;
		len -= n;
	}
	return 0;
}

static int tx_err(const pb_client_t *c)
{
	int err = 0;

	if (c->tx != NULL) {
		pthread_mutex_lock(&c->tx->mu);
		err = c->tx->err;
		pthread_mutex_unlock(&c->tx->mu);
	}
	return err;
}

int pb__client_tx_start(pb_client_t *c)
{
	pb_client_tx_t *t;

	if (c->tx != NULL || c->fd < 0 || !c->sess.established)
		return 0;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return 0;
	if ((t->buf = malloc((size_t)TX_SLOTS * TX_SLOT)) == NULL) {
		free(t);
		return 0;
	}
	t->c = c;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->more, NULL);
	pthread_cond_init(&t->room, NULL);
	if (pthread_create(&t->thread, NULL, tx_run, t) != 0) {
		pthread_cond_destroy(&t->more);
		pthread_cond_destroy(&t->room);
		pthread_mutex_destroy(&t->mu);
		free(t->buf);
		free(t);
		return 0;
	}
	/* What the kernel holds for a pending MSG_MORE goes out first. */
	c->held = true;
	push_held(c);
	c->tx = t;
	pb__session_set_frame_out(&c->sess, tx_alloc, tx_send);
	return 0;
}

int pb__client_flush(pb_client_t *c)
{
	pb_client_tx_t *t = c->tx;
	int err;

	if (t == NULL)
		return 0;
	pthread_mutex_lock(&t->mu);
	while (t->head != t->tail && t->err == 0)
		pthread_cond_wait(&t->room, &t->mu);
	err = t->err;
	pthread_mutex_unlock(&t->mu);
	return err;
}

/* Writes what is queued (each write within the timeout), then ends the
 * thread. */
static void tx_stop(pb_client_t *c)
{
	pb_client_tx_t *t = c->tx;

	if (t == NULL)
		return;
	pthread_mutex_lock(&t->mu);
	t->stop = true;
	pthread_cond_signal(&t->more);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->thread, NULL);
	pb__session_set_frame_out(&c->sess, NULL, NULL);
	pthread_cond_destroy(&t->more);
	pthread_cond_destroy(&t->room);
	pthread_mutex_destroy(&t->mu);
	free(t->buf); /* frames as sent: ciphertext, nothing to wipe */
	free(t);
	c->tx = NULL;
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
	if (rc == 0)
		rc = tx_err(c);
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
	int rc;

	if (c->fd < 0)
		return PB_ESTATE;
	if ((rc = tx_err(c)) != 0)
		return rc;
	return pb__session_send(&c->sess, env);
}

int pb__client_send_more(pb_client_t *c, pb_envelope_t *env)
{
	int rc;

	if (c->fd < 0)
		return PB_ESTATE;
	if (c->tx != NULL) /* the thread writes what is queued together */
		return pb__client_send(c, env);
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
	tx_stop(c);
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
