/* File writes of a restore on their own thread: a large item's chunks,
 * opened and taken back in order by the restoring thread, are handed
 * here with their offset in the item's temporary file and written
 * (pwrite) while that thread receives and opens the next ones; the file
 * is closed here too, and calls queued among the writes (a full
 * restore's items handed to the device writer, agent/backup/restore.c)
 * run here in the same order. A queue of at most WQ_JOBS jobs and
 * WQ_BYTES bytes bounds what waits.
 *
 * A large item's file is written past the page cache (O_DIRECT) where the
 * file system allows it: its bytes are gathered in aligned buffers of
 * DIO_BUF bytes, which a thread of their own writes (DIO_NBUF of them, so
 * that the disk is kept busy while the next one fills), the last one
 * padded to DIO_ALIGN and the file cut back to its size, then closed. Through
 * the page cache, the kernel's copy of every byte into it cost more CPU
 * than anything else of the restore (about 2 s a gigabyte here), and the
 * commit then waited for the same bytes' writeback anyway. A file whose
 * writes do not follow each other, or a file system that refuses
 * O_DIRECT, is written as before. A call queued behind a file's close
 * (the folder's writer, which takes the file) waits until its last
 * buffer is written and it is closed. A killed restore loses what the
 * buffers held: those chunks fail their name check in the next run and
 * are fetched again, like chunks never written. */
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
#define DIO_BUF (2u << 20)
#define DIO_NBUF 3
#define DIO_ALIGN 4096u

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
	/* Direct writes: the file written direct (-1: none), the file
	 * offset of the buffer being filled and how much it holds (the
	 * queue thread's own); the buffers, handed to the direct writer in
	 * ring order (under mu). */
	int dfd;
	uint64_t dbase;
	size_t dfill;
	struct dbuf {
		uint8_t *p;
		int fd;
		uint64_t off;
		size_t len;
		bool close; /* the file's last: then cut to size and closed */
		bool busy;  /* handed over, not written yet */
	} d[DIO_NBUF];
	size_t dcur, dnext; /* being filled; the writer's next */
	size_t dbusy, dcloses; /* handed over; closes among them */
	pthread_t dth;
	bool dtried, drunning; /* the buffers and thread were asked for; started */
	bool dstop;            /* once the queue's thread has ended */
	pthread_cond_t dwork;
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

/* Clears O_DIRECT on fd: its next writes go through the page cache. */
static void buffered(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && (fl & O_DIRECT))
		(void)fcntl(fd, F_SETFL, fl & ~O_DIRECT);
}

/* A buffer's bytes to its file (on the direct writer's thread): whole
 * or, for a file's last, padded to DIO_ALIGN and the file cut back to its
 * size, then closed. A write the file system refuses (EINVAL: alignment
 * it does not take) is made again through the page cache, and the file's
 * next writes with it. */
static int dio_write(struct dbuf *b)
{
	size_t n = b->len;
	int rc = 0;

	if (b->close && n % DIO_ALIGN != 0) {
		n += DIO_ALIGN - n % DIO_ALIGN;
		memset(b->p + b->len, 0, n - b->len);
	}
	if (b->len > 0) {
		rc = write_at(b->fd, b->p, n, b->off);
		if (rc == -EINVAL) {
			buffered(b->fd);
			n = b->len;
			rc = write_at(b->fd, b->p, n, b->off);
		}
	}
	if (rc == 0 && n != b->len && ftruncate(b->fd, (off_t)(b->off + b->len)) != 0)
		rc = errno == ENOSPC ? PB_ENOSPACE : -errno;
	return rc;
}

static int close_fd(int fd)
{
#ifdef SYNC_FILE_RANGE_WRITE
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
	if (close(fd) != 0)
		return errno == ENOSPC ? PB_ENOSPACE : -errno;
	return 0;
}

/* The direct writer: the buffers in ring order, as they are handed over;
 * after a failure only the files are closed. */
static void *dio_writer(void *arg)
{
	pb__wq_t *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct dbuf *b = &q->d[q->dnext];
		bool skip;
		int rc = 0;

		while (!q->dstop && !b->busy)
			pthread_cond_wait(&q->dwork, &q->mu);
		if (!b->busy)
			break;
		skip = q->rc != 0;
		pthread_mutex_unlock(&q->mu);
		if (!skip)
			rc = dio_write(b);
		if (b->close) {
			int crc = close_fd(b->fd);

			if (rc == 0)
				rc = crc;
		}
		pthread_mutex_lock(&q->mu);
		if (rc != 0 && q->rc == 0)
			q->rc = rc;
		if (b->close)
			q->dcloses--;
		b->busy = false;
		q->dbusy--;
		q->dnext = (q->dnext + 1) % DIO_NBUF;
		pthread_cond_broadcast(&q->done);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* The buffers and the direct writer, at the first large file: false
 * when they are not to be had (the file is written through the page
 * cache). Only with the queue's thread running. */
static bool dio_ready(pb__wq_t *q)
{
	if (!q->dtried) {
		q->dtried = true;
		for (size_t i = 0; i < DIO_NBUF; i++) {
			void *p = NULL;

			if (posix_memalign(&p, DIO_ALIGN, DIO_BUF) != 0)
				return false;
			q->d[i].p = p;
		}
		q->drunning = pthread_create(&q->dth, NULL, dio_writer, q) == 0;
	}
	return q->drunning;
}

/* Hands the buffer being filled to the direct writer (with the file's
 * close, for its last) and waits for the next one to be free; keep: the
 * buffer's last bytes past its last whole DIO_ALIGN block are not
 * written but start the next buffer. */
static void dio_hand(pb__wq_t *q, bool close, bool keep)
{
	struct dbuf *b = &q->d[q->dcur];
	size_t tail = keep ? q->dfill % DIO_ALIGN : 0;

	b->fd = q->dfd;
	b->off = q->dbase;
	b->len = q->dfill - tail;
	b->close = close;
	q->dbase += b->len;
	q->dfill = 0;
	q->dcur = (q->dcur + 1) % DIO_NBUF;
	pthread_mutex_lock(&q->mu);
	b->busy = true;
	q->dbusy++;
	q->dcloses += close;
	pthread_cond_signal(&q->dwork);
	while (q->d[q->dcur].busy)
		pthread_cond_wait(&q->done, &q->mu);
	pthread_mutex_unlock(&q->mu);
	memcpy(q->d[q->dcur].p, b->p + b->len, tail);
	q->dfill = tail;
}

/* Whether fd's writes go through the buffers from now on: a new file's
 * first write (at offset 0), the buffers at hand and O_DIRECT taken. */
static bool dio_start(pb__wq_t *q, int fd, uint64_t off)
{
	int fl;

	if (off != 0 || q->dfd >= 0 || !q->running || !dio_ready(q))
		return false;
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) != 0)
		return false;
	q->dfd = fd;
	q->dbase = 0;
	q->dfill = 0;
	return true;
}

/* A write job: into the buffers when its file is written direct and it
 * follows what they hold, else through the page cache (a file whose
 * writes do not follow each other: what the buffers hold is written
 * first, the file not closed). */
static int write_job(pb__wq_t *q, const struct wjob *j)
{
	const uint8_t *p = j->buf;
	size_t len = j->len;

	if (q->dfd != j->fd && !dio_start(q, j->fd, j->off))
		return write_at(j->fd, j->buf, j->len, j->off);
	if (j->off != q->dbase + q->dfill) {
		int rc;

		if (q->dfill > 0)
			dio_hand(q, false, false);
		q->dfd = -1;
		pthread_mutex_lock(&q->mu);
		while (q->dbusy > 0)
			pthread_cond_wait(&q->done, &q->mu);
		rc = q->rc;
		pthread_mutex_unlock(&q->mu);
		buffered(j->fd);
		return rc != 0 ? rc : write_at(j->fd, j->buf, j->len, j->off);
	}
	while (len > 0) {
		size_t n = DIO_BUF - q->dfill < len ? DIO_BUF - q->dfill : len;

		memcpy(q->d[q->dcur].p + q->dfill, p, n);
		q->dfill += n;
		p += n;
		len -= n;
		if (q->dfill == DIO_BUF)
			dio_hand(q, false, false);
	}
	return 0;
}

/* A file closed once written; its writeback starts (the commit syncs it).
 * A file written direct is closed by the direct writer after its last
 * buffer. */
static int close_file(pb__wq_t *q, int fd)
{
	if (fd == q->dfd) {
		dio_hand(q, true, false);
		q->dfd = -1;
		return 0;
	}
	return close_fd(fd);
}

/* Before a call: every byte queued before it is in its file, as with
 * writes through the page cache (the call may take the file). The files
 * closed so far are written and closed; of the file being written, what
 * the buffer holds in whole blocks is written direct and the rest (less
 * than a block) through the page cache, and stays in the buffer, to be
 * written again with the bytes that follow it. A call comes in the
 * middle of a large file rarely: the folder's writer is handed files
 * once they are closed. */
static int dio_sync(pb__wq_t *q)
{
	int rc;

	if (q->dfd >= 0 && q->dfill >= DIO_ALIGN)
		dio_hand(q, false, true);
	pthread_mutex_lock(&q->mu);
	while (q->dbusy > 0)
		pthread_cond_wait(&q->done, &q->mu);
	rc = q->rc;
	pthread_mutex_unlock(&q->mu);
	if (rc == 0 && q->dfd >= 0 && q->dfill > 0) {
		int fl = fcntl(q->dfd, F_GETFL);

		buffered(q->dfd);
		rc = write_at(q->dfd, q->d[q->dcur].p, q->dfill, q->dbase);
		if (fl >= 0)
			(void)fcntl(q->dfd, F_SETFL, fl);
	}
	return rc;
}

/* Runs a job; after a failure (skip) a call only frees what it holds and
 * nothing more is written. */
static int run_job(pb__wq_t *q, struct wjob *j, bool skip)
{
	int rc = 0;

	switch (j->kind) {
	case JOB_WRITE:
		if (!skip)
			rc = write_job(q, j);
		/* Not wiped: these bytes are the file's, which the restore
		 * writes out as they are (wiping them cost a second pass
		 * over every byte restored). */
		free(j->buf);
		j->buf = NULL;
		break;
	case JOB_CLOSE:
		rc = close_file(q, j->fd);
		break;
	default:
		rc = skip ? 0 : dio_sync(q);
		if (rc == 0)
			rc = j->fn(j->arg, skip || pb__wq_failed(q) != 0);
		else
			(void)j->fn(j->arg, true);
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
		rc = run_job(q, &j, skip);
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
	q->dfd = -1;
	pthread_cond_init(&q->dwork, NULL);
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
		int rc = run_job(q, &j, q->rc != 0);

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
	while (q->n > 0 || q->dbusy > 0)
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
	if (q->drunning) {
		pthread_mutex_lock(&q->mu);
		q->dstop = true; /* what is handed over is written first */
		pthread_cond_signal(&q->dwork);
		pthread_mutex_unlock(&q->mu);
		pthread_join(q->dth, NULL);
	}
	for (size_t i = 0; i < DIO_NBUF; i++)
		free(q->d[i].p);
	pthread_cond_destroy(&q->dwork);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->done);
	pthread_mutex_destroy(&q->mu);
	free(q);
}
