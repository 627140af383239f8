/* pb-lan-relay: the LAN scenarios' impairment relay, and a probe to measure
 * what it does.
 *
 *   pb-lan-relay relay --listen A:P --to A:P [--delay-ms D] [--jitter-ms J]
 *                [--cut-after-up BYTES] [--cut-after-down BYTES] [--cut-for-ms MS]
 *   pb-lan-relay echo --listen A:P
 *   pb-lan-relay probe --to A:P [--count N] [--bulk BYTES]
 *
 * relay forwards TCP connections from --listen to --to. Each direction is a
 * delay line: a byte read at time t is written at t + D + u, u uniform in
 * [-J, J], never before a byte read earlier (a TCP stream keeps its order,
 * so jitter shows as uneven gaps). SIGUSR1 cuts the link: every connection
 * is reset and new ones are reset until SIGUSR2 restores it. --cut-after-up
 * (phone to host bytes read, all connections together) and --cut-after-down
 * (host to phone bytes the phone's side has acknowledged: written, less what
 * still waits in the relay's socket, so that what the phone got before the
 * cut does not depend on how full the buffers between them were) cut once
 * by themselves, for --cut-for-ms (default: until SIGUSR2). It prints one
 * JSON line per event on stdout.
 *
 * echo serves the probe: a connection starting with 'E' is echoed, one
 * starting with 'S' is drained and answered with its byte count.
 *
 * probe measures round trips of 64-byte messages through whatever is between
 * it and an echo server (min/avg/max/mdev in ms), then with --bulk the rate
 * of a one-way transfer. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define CHUNK 16384
#define MAX_QUEUED (4u << 20) /* bytes in one direction's delay line */

typedef struct seg_s {
	struct seg_s *next;
	int64_t due;
	size_t len, off;
	uint8_t data[];
} seg_t;

typedef struct dir_s {
	int from, to;
	seg_t *head, *tail;
	size_t queued;
	int64_t last_due;
	bool eof, shut;
	uint64_t bytes;   /* read */
	uint64_t written; /* written to the other side's socket */
} dir_t;

typedef struct conn_s {
	bool used;
	int id;
	dir_t up, down; /* up: client to server */
} conn_t;

static volatile sig_atomic_t want_cut, want_restore, want_stop;
static conn_t conns[MAX_CONNS];
static int64_t delay_ms, jitter_ms, cut_for_ms = -1;
static uint64_t cut_after_up, cut_after_down, total_up, total_down;
static uint64_t acked_down_closed; /* delivered down on connections since closed */
static bool cut, auto_cut_done;
static int64_t restore_at;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_addr(const char *text, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	char *end;
	long port;

	if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
		return -1;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != 0 || port < 1 || port > 65535)
		return -1;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		want_cut = 1;
	else if (sig == SIGUSR2)
		want_restore = 1;
	else
		want_stop = 1;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void reset_close(int fd)
{
	struct linger l = { 1, 0 };

	if (fd < 0)
		return;
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static void dir_free(dir_t *d)
{
	while (d->head != NULL) {
		seg_t *s = d->head;
		d->head = s->next;
		free(s);
	}
	d->tail = NULL;
	d->queued = 0;
}

static uint64_t dir_acked(const dir_t *d);
static uint64_t acked_down(void);

static void conn_end(conn_t *c, bool reset, const char *why)
{
	acked_down_closed += dir_acked(&c->down);
	printf("{\"event\":\"closed\",\"conn\":%d,\"up\":%llu,\"down\":%llu,\"why\":\"%s\"}\n", c->id,
	       (unsigned long long)c->up.bytes, (unsigned long long)c->down.bytes, why);
	fflush(stdout);
	if (reset) {
		reset_close(c->up.from);
		reset_close(c->up.to);
	} else {
		close(c->up.from);
		close(c->up.to);
	}
	dir_free(&c->up);
	dir_free(&c->down);
	c->used = false;
}

static void do_cut(const char *why)
{
	cut = true;
	printf("{\"event\":\"cut\",\"why\":\"%s\",\"up\":%llu,\"down\":%llu,\"down_acked\":%llu}\n", why,
	       (unsigned long long)total_up, (unsigned long long)total_down, (unsigned long long)acked_down());
	fflush(stdout);
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i].used)
			conn_end(&conns[i], true, "cut");
}

static void do_restore(void)
{
	cut = false;
	restore_at = 0;
	printf("{\"event\":\"restored\",\"up\":%llu,\"down\":%llu}\n", (unsigned long long)total_up,
	       (unsigned long long)total_down);
	fflush(stdout);
}

static int64_t jitter(void)
{
	if (jitter_ms <= 0)
		return 0;
	return (int64_t)(random() % (2 * jitter_ms + 1)) - jitter_ms;
}

/* Reads what the source has into the delay line; -1 when the connection is
 * broken. */
static int dir_read(dir_t *d, uint64_t *total)
{
	seg_t *s = malloc(sizeof(*s) + CHUNK);
	ssize_t r;
	int64_t due;

	if (s == NULL)
		return -1;
	r = recv(d->from, s->data, CHUNK, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
		free(s);
		return 0;
	}
	if (r <= 0) {
		free(s);
		if (r < 0)
			return -1;
		d->eof = true;
		return 0;
	}
	due = now_ms() + delay_ms + jitter();
	if (due < d->last_due)
		due = d->last_due;
	d->last_due = due;
	s->due = due;
	s->len = (size_t)r;
	s->off = 0;
	s->next = NULL;
	if (d->tail != NULL)
		d->tail->next = s;
	else
		d->head = s;
	d->tail = s;
	d->queued += (size_t)r;
	d->bytes += (uint64_t)r;
	*total += (uint64_t)r;
	return 0;
}

/* Writes what is due; -1 when the connection is broken. */
static int dir_write(dir_t *d)
{
	int64_t t = now_ms();

	while (d->head != NULL && d->head->due <= t) {
		seg_t *s = d->head;
		ssize_t w = send(d->to, s->data + s->off, s->len - s->off, MSG_NOSIGNAL);

		if (w < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		s->off += (size_t)w;
		d->queued -= (size_t)w;
		d->written += (uint64_t)w;
		if (s->off < s->len)
			return 0;
		d->head = s->next;
		if (d->head == NULL)
			d->tail = NULL;
		free(s);
	}
	if (d->head == NULL && d->eof && !d->shut) {
		(void)shutdown(d->to, SHUT_WR);
		d->shut = true;
	}
	return 0;
}

/* Bytes of a direction its receiver has acknowledged: written, less what
 * the socket still holds (not sent, or sent and not acknowledged). */
static uint64_t dir_acked(const dir_t *d)
{
	int outq = 0;

	if (d->to < 0 || ioctl(d->to, SIOCOUTQ, &outq) != 0 || outq < 0)
		outq = 0;
	return d->written > (uint64_t)outq ? d->written - (uint64_t)outq : 0;
}

static uint64_t acked_down(void)
{
	uint64_t n = acked_down_closed;

	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i].used)
			n += dir_acked(&conns[i].down);
	return n;
}

static int connect_to(const struct sockaddr_in *to)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) != 0) {
		close(fd);
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_nonblock(fd);
	return fd;
}

static int listen_on(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)a, sizeof(*a)) != 0 || listen(fd, 64) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void accept_one(int lfd, const struct sockaddr_in *to)
{
	static int next_id = 1;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), sfd, one = 1, i;

	if (fd < 0)
		return;
	if (cut) {
		printf("{\"event\":\"refused\",\"why\":\"cut\"}\n");
		fflush(stdout);
		reset_close(fd);
		return;
	}
	for (i = 0; i < MAX_CONNS && conns[i].used; i++)
		;
	sfd = i < MAX_CONNS ? connect_to(to) : -1;
	if (sfd < 0) {
		reset_close(fd);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_nonblock(fd);
	memset(&conns[i], 0, sizeof(conns[i]));
	conns[i].used = true;
	conns[i].id = next_id++;
	conns[i].up.from = fd;
	conns[i].up.to = sfd;
	conns[i].down.from = sfd;
	conns[i].down.to = fd;
	printf("{\"event\":\"open\",\"conn\":%d}\n", conns[i].id);
	fflush(stdout);
}

static int64_t next_due(const dir_t *d)
{
	return d->head != NULL ? d->head->due : INT64_MAX;
}

static int run_relay(const struct sockaddr_in *listen_a, const struct sockaddr_in *to)
{
	int lfd = listen_on(listen_a);

	if (lfd < 0) {
		perror("pb-lan-relay: listen");
		return 1;
	}
	printf("{\"event\":\"listening\",\"delay_ms\":%lld,\"jitter_ms\":%lld}\n", (long long)delay_ms,
	       (long long)jitter_ms);
	fflush(stdout);
	while (!want_stop) {
		struct pollfd p[1 + 2 * MAX_CONNS];
		int map[1 + 2 * MAX_CONNS], np = 0;
		int64_t wake = INT64_MAX, t = now_ms();

		if (want_cut) {
			want_cut = 0;
			do_cut("signal");
		}
		if (want_restore) {
			want_restore = 0;
			do_restore();
		}
		if (cut && restore_at != 0 && t >= restore_at)
			do_restore();
		if (!auto_cut_done && ((cut_after_up > 0 && total_up >= cut_after_up) ||
				       (cut_after_down > 0 && acked_down() >= cut_after_down))) {
			auto_cut_done = true;
			do_cut("bytes");
			if (cut_for_ms >= 0)
				restore_at = now_ms() + cut_for_ms;
		}
		p[np].fd = lfd;
		p[np].events = POLLIN;
		map[np++] = -1;
		for (int i = 0; i < MAX_CONNS; i++) {
			conn_t *c = &conns[i];
			int64_t d1, d2;

			if (!c->used)
				continue;
			if (dir_write(&c->up) != 0 || dir_write(&c->down) != 0) {
				conn_end(c, true, "write");
				continue;
			}
			if (c->up.shut && c->down.shut) {
				conn_end(c, false, "done");
				continue;
			}
			/* Each socket: readable while its line has room, writable
			 * while its peer's line has something due. */
			p[np].fd = c->up.from;
			p[np].events = (!c->up.eof && c->up.queued < MAX_QUEUED ? POLLIN : 0) |
				       (c->down.head != NULL && c->down.head->due <= t ? POLLOUT : 0);
			map[np++] = i;
			p[np].fd = c->down.from;
			p[np].events = (!c->down.eof && c->down.queued < MAX_QUEUED ? POLLIN : 0) |
				       (c->up.head != NULL && c->up.head->due <= t ? POLLOUT : 0);
			map[np++] = i;
			d1 = next_due(&c->up);
			d2 = next_due(&c->down);
			if (d1 < wake)
				wake = d1;
			if (d2 < wake)
				wake = d2;
		}
		if (cut && restore_at != 0 && restore_at < wake)
			wake = restore_at;
		{
			int64_t left = wake == INT64_MAX ? 200 : wake - now_ms();
			int timeout = left < 0 ? 0 : left > 200 ? 200 : (int)left;

			/* Acknowledgements raise no event here: looked at each
			 * millisecond until the cut they wait for. */
			if (!auto_cut_done && cut_after_down > 0 && timeout > 1)
				timeout = 1;

			if (poll(p, (nfds_t)np, timeout) < 0 && errno != EINTR)
				break;
		}
		if (p[0].revents & POLLIN)
			accept_one(lfd, to);
		for (int k = 1; k < np; k++) {
			conn_t *c = &conns[map[k]];
			bool is_up_from = (k % 2) == 1;

			if (!c->used || p[k].revents == 0)
				continue;
			if (p[k].revents & (POLLIN | POLLHUP | POLLERR)) {
				dir_t *d = is_up_from ? &c->up : &c->down;
				int rc = d->eof ? 0 : dir_read(d, is_up_from ? &total_up : &total_down);

				if (rc != 0 || ((p[k].revents & POLLERR) != 0)) {
					conn_end(c, true, "read");
					continue;
				}
			}
		}
	}
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i].used)
			conn_end(&conns[i], true, "exit");
	printf("{\"event\":\"exit\",\"up\":%llu,\"down\":%llu}\n", (unsigned long long)total_up,
	       (unsigned long long)total_down);
	fflush(stdout);
	close(lfd);
	return 0;
}

static int write_full(int fd, const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_full(int fd, uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t r = recv(fd, b, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void serve_one(int fd)
{
	uint8_t buf[CHUNK], mode;
	uint64_t n = 0;
	ssize_t r;

	if (read_full(fd, &mode, 1) != 0)
		return;
	while ((r = recv(fd, buf, sizeof(buf), 0)) > 0) {
		if (mode == 'E' && write_full(fd, buf, (size_t)r) != 0)
			return;
		n += (uint64_t)r;
	}
	if (mode == 'S') {
		uint8_t be[8];
		for (int i = 0; i < 8; i++)
			be[i] = (uint8_t)(n >> (56 - 8 * i));
		(void)write_full(fd, be, sizeof(be));
	}
}

static int run_echo(const struct sockaddr_in *listen_a)
{
	int lfd = listen_on(listen_a);

	if (lfd < 0) {
		perror("pb-lan-relay: listen");
		return 1;
	}
	printf("{\"event\":\"listening\"}\n");
	fflush(stdout);
	signal(SIGCHLD, SIG_IGN);
	while (!want_stop) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (fd < 0)
			continue;
		pid = fork();
		if (pid == 0) {
			close(lfd);
			serve_one(fd);
			_exit(0);
		}
		close(fd);
	}
	close(lfd);
	return 0;
}

static int probe_connect(const struct sockaddr_in *to, uint8_t mode)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0 || connect(fd, (const struct sockaddr *)to, sizeof(*to)) != 0) {
		perror("pb-lan-relay: connect");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (write_full(fd, &mode, 1) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run_probe(const struct sockaddr_in *to, int count, uint64_t bulk)
{
	uint8_t msg[64];
	double sum = 0, sum2 = 0, mn = 1e9, mx = 0, avg;
	double *samples = calloc((size_t)count, sizeof(double));
	int fd = samples != NULL ? probe_connect(to, 'E') : -1;

	if (fd < 0) {
		free(samples);
		return 1;
	}
	memset(msg, 'x', sizeof(msg));
	for (int i = 0; i < count; i++) {
		double t0 = now_s(), ms;

		if (write_full(fd, msg, sizeof(msg)) != 0 || read_full(fd, msg, sizeof(msg)) != 0) {
			fprintf(stderr, "pb-lan-relay: probe connection broken\n");
			close(fd);
			free(samples);
			return 1;
		}
		ms = (now_s() - t0) * 1000;
		samples[i] = ms;
		sum += ms;
		sum2 += ms * ms;
		if (ms < mn)
			mn = ms;
		if (ms > mx)
			mx = ms;
	}
	close(fd);
	avg = sum / count;
	qsort(samples, (size_t)count, sizeof(double), cmp_double);
	printf("{\"event\":\"rtt\",\"count\":%d,\"min_ms\":%.1f,\"avg_ms\":%.1f,\"p50_ms\":%.1f,\"p90_ms\":%.1f,"
	       "\"max_ms\":%.1f,\"mdev_ms\":%.1f}\n",
	       count, mn, avg, samples[count / 2], samples[(count * 9) / 10], mx, sqrt(fmax(0, sum2 / count - avg * avg)));
	free(samples);
	if (bulk > 0) {
		static uint8_t buf[CHUNK];
		uint8_t be[8];
		uint64_t left = bulk, got = 0;
		double t0 = now_s(), secs;

		fd = probe_connect(to, 'S');
		if (fd < 0)
			return 1;
		memset(buf, 'b', sizeof(buf));
		while (left > 0) {
			size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
			if (write_full(fd, buf, n) != 0)
				break;
			left -= n;
		}
		(void)shutdown(fd, SHUT_WR);
		if (left != 0 || read_full(fd, be, sizeof(be)) != 0) {
			fprintf(stderr, "pb-lan-relay: bulk transfer broken\n");
			close(fd);
			return 1;
		}
		close(fd);
		secs = now_s() - t0;
		for (int i = 0; i < 8; i++)
			got = (got << 8) | be[i];
		printf("{\"event\":\"bulk\",\"bytes\":%llu,\"seconds\":%.2f,\"mbit_s\":%.2f}\n", (unsigned long long)got,
		       secs, (double)got * 8 / secs / 1e6);
	}
	fflush(stdout);
	return 0;
}

static int usage(void)
{
	fputs("usage: pb-lan-relay relay --listen A:P --to A:P [--delay-ms D] [--jitter-ms J]\n"
	      "                    [--cut-after-up BYTES] [--cut-after-down BYTES] [--cut-for-ms MS]\n"
	      "       pb-lan-relay echo --listen A:P\n"
	      "       pb-lan-relay probe --to A:P [--count N] [--bulk BYTES]\n",
	      stderr);
	return 2;
}

static int num(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno != 0 || *end != 0 || *s == 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in listen_a, to;
	bool have_listen = false, have_to = false;
	uint64_t v, count = 20, bulk = 0;
	struct sigaction sa;

	if (argc < 2)
		return usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (i + 1 >= argc)
			return usage();
		if (strcmp(a, "--listen") == 0) {
			if (parse_addr(argv[++i], &listen_a) != 0)
				return usage();
			have_listen = true;
		} else if (strcmp(a, "--to") == 0) {
			if (parse_addr(argv[++i], &to) != 0)
				return usage();
			have_to = true;
		} else if (num(argv[i + 1], &v) != 0) {
			return usage();
		} else if (strcmp(a, "--delay-ms") == 0) {
			delay_ms = (int64_t)v;
			i++;
		} else if (strcmp(a, "--jitter-ms") == 0) {
			jitter_ms = (int64_t)v;
			i++;
		} else if (strcmp(a, "--cut-after-up") == 0) {
			cut_after_up = v;
			i++;
		} else if (strcmp(a, "--cut-after-down") == 0) {
			cut_after_down = v;
			i++;
		} else if (strcmp(a, "--cut-for-ms") == 0) {
			cut_for_ms = (int64_t)v;
			i++;
		} else if (strcmp(a, "--count") == 0 && v > 0 && v < 100000) {
			count = v;
			i++;
		} else if (strcmp(a, "--bulk") == 0) {
			bulk = v;
			i++;
		} else {
			return usage();
		}
	}
	if (jitter_ms > delay_ms)
		jitter_ms = delay_ms;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));
	if (strcmp(argv[1], "relay") == 0 && have_listen && have_to)
		return run_relay(&listen_a, &to);
	if (strcmp(argv[1], "echo") == 0 && have_listen)
		return run_echo(&listen_a);
	if (strcmp(argv[1], "probe") == 0 && have_to)
		return run_probe(&to, (int)count, bulk);
	return usage();
}
