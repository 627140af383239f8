/* File writes of a restore on their own thread: a large item's chunks,
 * opened and taken back in order by the restoring thread, are handed
 * here with their offset in the item's temporary file and written
 * (pwrite) while that thread receives and opens the next ones; the file
 * is closed here too, and calls queued among the writes (a full
 * restore's items handed to the device writer, agent/backup/restore.c)
 * run here in the same order. A queue of at most WQ_JOBS jobs and
 * WQ_BYTES bytes bounds what waits. */
#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"

#define WQ_JOBS 16
#define WQ_BYTES (8u << 20)

enum { JOB_WRITE, JOB_CLOSE, JOB_CALL };

struct wjob {
	int kind;
	int fd;
	uint8_t *buf;
	size_t len; /* bytes held: buf's, or what the call's arg holds */
	uint64_t off;
	int (*fn)(void *arg, bool skip);
	void *arg;
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

/* A file closed once written; its writeback starts (the commit syncs it). */
static int close_file(int fd)
{
#ifdef SYNC_FILE_RANGE_WRITE
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
	if (close(fd) != 0)
		return errno == ENOSPC ? PB_ENOSPACE : -errno;
	return 0;
}

/* Runs a job; after a failure (skip) a call only frees what it holds and
 * nothing more is written. */
static int run_job(struct wjob *j, bool skip)
{
	int rc = 0;

	switch (j->kind) {
	case JOB_WRITE:
		if (!skip)
			rc = write_at(j->fd, j->buf, j->len, j->off);
		/* Not wiped: these bytes are the file's, which the restore
		 * writes out as they are (wiping them cost a second pass
		 * over every byte restored). */
		free(j->buf);
		j->buf = NULL;
		break;
	case JOB_CLOSE:
		rc = close_file(j->fd);
		break;
	default:
		rc = j->fn(j->arg, skip);
		break;
	}
	return rc;
}

static void *writer(void *arg)
{
	pb__wq_t *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct wjob j;
		bool skip;
		int rc;

		while (!q->stop && q->n == 0)
			pthread_cond_wait(&q->work, &q->mu);
		if (q->n == 0)
			break;
		j = q->j[q->head];
		skip = q->rc != 0;
		pthread_mutex_unlock(&q->mu);
		rc = run_job(&j, skip);
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

/* Queues j; waits while the queue is full. Without the thread (it could
 * not start), runs it here. */
static void push(pb__wq_t *q, struct wjob j)
{
	/* The thread starts with the first job: a restore of small items
	 * (one message by id) starts none. */
	if (!q->started) {
		q->started = true;
		q->running = pthread_create(&q->th, NULL, writer, q) == 0;
	}
	if (!q->running) {
		int rc = run_job(&j, q->rc != 0);

		if (rc != 0 && q->rc == 0)
			q->rc = rc;
		return;
	}
	pthread_mutex_lock(&q->mu);
	while (q->n == WQ_JOBS || (q->n > 0 && q->bytes + j.len > WQ_BYTES))
		pthread_cond_wait(&q->done, &q->mu);
	q->j[(q->head + q->n) % WQ_JOBS] = j;
	q->n++;
	q->bytes += j.len;
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->mu);
}

void pb__wq_push(pb__wq_t *q, int fd, uint8_t *buf, size_t len, uint64_t off)
{
	push(q, (struct wjob){ .kind = JOB_WRITE, .fd = fd, .buf = buf, .len = len, .off = off });
}

void pb__wq_close(pb__wq_t *q, int fd)
{
	push(q, (struct wjob){ .kind = JOB_CLOSE, .fd = fd });
}

void pb__wq_call(pb__wq_t *q, int (*fn)(void *arg, bool skip), void *arg, size_t bytes)
{
	push(q, (struct wjob){ .kind = JOB_CALL, .fn = fn, .arg = arg, .len = bytes });
}

int pb__wq_failed(pb__wq_t *q)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	rc = q->rc;
	pthread_mutex_unlock(&q->mu);
	return rc;
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
