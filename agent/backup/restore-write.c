/* File writes of a restore on their own thread: a large item's chunks,
 * opened and taken back in order by the restoring thread, are handed
 * here with their offset in the item's temporary file and written
 * (pwrite) while that thread receives and opens the next ones. A queue of
 * at most WQ_JOBS chunks and WQ_BYTES bytes bounds what waits. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"

#define WQ_JOBS 16
#define WQ_BYTES (8u << 20)

struct wjob {
	int fd;
	uint8_t *buf;
	size_t len;
	uint64_t off;
};

struct pb__wq_s {
	pthread_t th;
	bool started;     /* the thread was asked for (at the first write) */
	bool running;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct wjob j[WQ_JOBS];
	size_t head, n;   /* queued jobs, the one being written included */
	size_t bytes;
	int rc;           /* the first failure, until pb__wq_wait reports it */
	bool stop;
};

static int write_at(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == ENOSPC ? PB_ENOSPACE : -errno;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static void job_free(struct wjob *j)
{
	sodium_memzero(j->buf, j->len);
	free(j->buf);
	j->buf = NULL;
}

static void *writer(void *arg)
{
	pb__wq_t *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct wjob j;
		int rc;

		while (!q->stop && q->n == 0)
			pthread_cond_wait(&q->work, &q->mu);
		if (q->n == 0)
			break;
		j = q->j[q->head];
		pthread_mutex_unlock(&q->mu);
		rc = write_at(j.fd, j.buf, j.len, j.off);
		job_free(&j);
		pthread_mutex_lock(&q->mu);
		if (rc != 0 && q->rc == 0)
			q->rc = rc;
		q->head = (q->head + 1) % WQ_JOBS;
		q->n--;
		q->bytes -= j.len;
		pthread_cond_broadcast(&q->done);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int pb__wq_new(pb__wq_t **out)
{
	pb__wq_t *q = calloc(1, sizeof(*q));

	*out = NULL;
	if (q == NULL)
		return PB_ENOMEM;
	if (pthread_mutex_init(&q->mu, NULL) != 0) {
		free(q);
		return PB_ENOMEM;
	}
	pthread_cond_init(&q->work, NULL);
	pthread_cond_init(&q->done, NULL);
	*out = q;
	return 0;
}

void pb__wq_push(pb__wq_t *q, int fd, uint8_t *buf, size_t len, uint64_t off)
{
	int rc;

	/* The thread starts with the first large item's first write: a
	 * restore of small items (one message by id) starts none. Without
	 * the thread, this writes itself. */
	if (!q->started) {
		q->started = true;
		q->running = pthread_create(&q->th, NULL, writer, q) == 0;
	}
	if (!q->running) {
		rc = write_at(fd, buf, len, off);
		if (rc != 0 && q->rc == 0)
			q->rc = rc;
		sodium_memzero(buf, len);
		free(buf);
		return;
	}
	pthread_mutex_lock(&q->mu);
	while (q->n == WQ_JOBS || (q->n > 0 && q->bytes + len > WQ_BYTES))
		pthread_cond_wait(&q->done, &q->mu);
	q->j[(q->head + q->n) % WQ_JOBS] = (struct wjob){ fd, buf, len, off };
	q->n++;
	q->bytes += len;
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->mu);
}

int pb__wq_wait(pb__wq_t *q)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	while (q->n > 0)
		pthread_cond_wait(&q->done, &q->mu);
	rc = q->rc;
	q->rc = 0;
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void pb__wq_free(pb__wq_t *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = true; /* what is queued is written first */
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->mu);
	if (q->running)
		pthread_join(q->th, NULL);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->done);
	pthread_mutex_destroy(&q->mu);
	free(q);
}
