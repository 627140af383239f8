/* A file's chunks read, cut and named beside the scan
 * (agent/backup/reader.h), one file at a time, the next one queued.
 *
 * The thread reads the file a block at a time into one of a few buffers
 * kept for the run (mapped once: a buffer malloc'd per file is faulted
 * in anew page by page) and cuts as the bytes come (pb__cdc_cut_more: no
 * look-ahead, no byte scanned twice). A buffer goes to the scan thread
 * with the chunks it holds whole once it is full, or at once when the
 * scan thread waits for it; only the bytes of the chunk being cut move
 * to the next buffer (a buffer cut at its front used to move each byte
 * about once, and the sink copied every chunk again). The chunks of the
 * buffers queued are named together in vector lanes (pb__b2k_hash_many;
 * a lone one by libsodium, faster on one long message) before they go,
 * on a second thread (the namer): the reader cuts the next buffer
 * meanwhile.
 * Reading and cutting cost about as much as naming, and one thread doing
 * both was slower than the scan thread takes the chunks; the pieces stay
 * in one queue, in order, and the caller takes only named ones. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/util/fsutil.h"

#include "agent/backup/reader.h"
#include "agent/util/blake2b.h"

/* Buffers of PB__CDC_FILE_BUF bytes: one being filled, one or two in the
 * sink's ring waiting for a sealing thread, one being sealed. */
#define POOL 4
#define READ_BLOCK (1u << 20)
/* The caller, waiting for a piece with nothing else to do, looks again
 * after this long (its other work comes from other threads). */
#define IDLE_WAIT_US 300

static void cond_wait_us(pthread_cond_t *c, pthread_mutex_t *mu, long us)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += us * 1000;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(c, mu, &ts);
}

/* A file to cut: the one the caller takes pieces of, and one queued
 * behind it (read ahead). */
#define JOBS 2

struct job {
	int fd;
	bool whole;           /* one chunk of the file's size (pb__read_fd's) */
	bool ended;           /* its pieces are all queued */
	int rc;               /* its error */
};

struct pb__reader_s {
	const pb_cdc_t *cdc;
	const uint8_t *name_k_raw; /* the name key (the caller's) */
	pb__b2k_t name_k;
	pthread_mutex_t mu;
	pthread_cond_t work;  /* the thread's: a file, a buffer back, stop */
	pthread_cond_t ready; /* the caller's: a piece, the file's end */
	pthread_t thread;
	pthread_t namer;      /* names the queued pieces, in order */
	pthread_cond_t name;  /* the namer's: a piece to name, stop */
	bool stop;            /* the threads end */
	size_t naming;        /* the namer names q[qhead + nnamed] and the naming - 1 after it */
	/* Files by seq: the caller takes pieces of jhead, the thread cuts
	 * jrun; jobs[seq % JOBS]. cancel: jrun stops early. */
	struct job jobs[JOBS];
	uint64_t jhead, jrun, jtail;
	bool cancel;
	bool hungry;          /* the caller waits for a piece */
	bool trimmed;         /* buffers given back are freed (pb__reader_trim) */
	uint8_t *free_bufs[POOL];
	size_t nfree, nbufs;
	pb__piece_t q[POOL];  /* pieces for the caller, in order */
	uint64_t qjob[POOL];  /* the seq of each one's file */
	size_t qhead, qn;
	size_t nnamed;        /* the first nnamed of q are named */
	pb__piece_t out;      /* the one the caller holds */
};

/* A free buffer, waiting for one when all are out; NULL once the file is
 * canceled or memory is short. */
static uint8_t *get_buf(pb__reader_t *r)
{
	uint8_t *buf = NULL;

	pthread_mutex_lock(&r->mu);
	while (r->nfree == 0 && r->nbufs == POOL && !r->cancel && !r->stop)
		pthread_cond_wait(&r->work, &r->mu);
	if (r->cancel || r->stop)
		buf = NULL;
	else if (r->nfree > 0)
		buf = r->free_bufs[--r->nfree];
	else if ((buf = malloc(PB__CDC_FILE_BUF)) != NULL)
		r->nbufs++;
	pthread_mutex_unlock(&r->mu);
	return buf;
}

void pb__reader_give(void *arg, uint8_t *buf)
{
	pb__reader_t *r = arg;

	pthread_mutex_lock(&r->mu);
	if (r->trimmed) {
		free(buf);
		r->nbufs--;
	} else {
		r->free_bufs[r->nfree++] = buf;
	}
	pthread_cond_signal(&r->work);
	pthread_mutex_unlock(&r->mu);
}

void pb__reader_trim(pb__reader_t *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->trimmed = true;
	while (r->nfree > 0) {
		free(r->free_bufs[--r->nfree]);
		r->nbufs--;
	}
	pthread_mutex_unlock(&r->mu);
}

/* Whether the file is canceled; *hungry: whether the caller waits for
 * one of its pieces. */
static bool canceled(pb__reader_t *r, bool *hungry)
{
	bool c;

	pthread_mutex_lock(&r->mu);
	c = r->cancel || r->stop;
	*hungry = r->hungry && r->jhead == r->jrun;
	pthread_mutex_unlock(&r->mu);
	return c;
}

/* Names the chunks of the np pieces from q[first] on together: a file
 * of one chunk (most files of 64 KiB to 1 MiB) and the next file's first
 * piece, queued behind it, fill lanes that each would leave empty. */
static void name_pieces(pb__reader_t *r, size_t first, size_t np)
{
	const uint8_t *data[POOL * PB__CDC_CUTS_MAX];
	uint8_t *out[POOL * PB__CDC_CUTS_MAX];
	size_t len[POOL * PB__CDC_CUTS_MAX];
	size_t n = 0;

	for (size_t i = 0; i < np; i++) {
		pb__piece_t *p = &r->q[(first + i) % POOL];
		size_t off = 0;

		for (size_t k = 0; k < p->n; k++) {
			data[n] = p->buf + off;
			len[n] = p->len[k];
			out[n++] = p->names[k];
			off += p->len[k];
		}
	}
	if (n == 1)
		pb__chunk_name(r->name_k_raw, data[0], len[0], out[0]); /* one: libsodium's below 64 KiB */
	else
		pb__chunk_names_many(&r->name_k, data, len, out, n);
}

/* Queues a piece, to be named by the namer, then taken by the caller. */
static void hand(pb__reader_t *r, pb__piece_t *p)
{
	pthread_mutex_lock(&r->mu);
	r->q[(r->qhead + r->qn) % POOL] = *p;
	r->qjob[(r->qhead + r->qn) % POOL] = r->jrun;
	r->qn++;
	pthread_cond_signal(&r->name);
	pthread_mutex_unlock(&r->mu);
}

/* The namer: the queue's pieces not named yet, all that are queued, in
 * order. Their slots are the namer's alone while it names them: the
 * reader queues behind them, the caller takes named ones only,
 * pb__reader_done waits for them. */
static void *run_namer(void *arg)
{
	pb__reader_t *r = arg;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		size_t first, np;

		while (!r->stop && r->nnamed == r->qn)
			pthread_cond_wait(&r->name, &r->mu);
		if (r->stop)
			break;
		first = r->qhead + r->nnamed;
		np = r->naming = r->qn - r->nnamed;
		pthread_mutex_unlock(&r->mu);
		name_pieces(r, first, np);
		pthread_mutex_lock(&r->mu);
		r->nnamed += np;
		r->naming = 0;
		pthread_cond_broadcast(&r->ready);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Cuts the file as pb__cdc_file_many does (a file found below
 * PB_CDC_WHOLE_MAX is one chunk, whatever its content). */
static int cut_file(pb__reader_t *r, int fd, bool whole)
{
	pb__piece_t p;
	pb__cdc_at_t at = { 0, 0 };
	struct stat sb;
	size_t have = 0, cs = 0;
	bool eof = false, first = true, hungry;
	ssize_t got;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if (whole && !S_ISREG(sb.st_mode))
		return -EISDIR;
	if (whole && (uint64_t)sb.st_size > PB_CDC_WHOLE_MAX)
		return PB_ETOOBIG;
	if ((p.buf = get_buf(r)) == NULL)
		return PB_ECANCELED;
	p.n = 0;
	if (whole) {
		/* As pb__read_fd reads it: its size when opened, or less. */
		if ((got = pb__read_full(fd, p.buf, (size_t)sb.st_size)) < 0)
			goto out_errno;
		p.len[p.n++] = (size_t)got;
		hand(r, &p);
		return 0;
	}
	if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size < PB_CDC_WHOLE_MAX) {
		if ((got = pb__read_full(fd, p.buf, PB_CDC_WHOLE_MAX)) < 0)
			goto out_errno;
		if ((size_t)got < PB_CDC_WHOLE_MAX) {
			p.len[p.n++] = (size_t)got;
			hand(r, &p);
			return 0;
		}
		have = (size_t)got; /* it grew meanwhile: cut like a large one */
	}
	for (;;) {
		size_t cut, room, want;

		while ((cut = pb__cdc_cut_more(r->cdc, p.buf + cs, have - cs, eof, &at)) != 0) {
			p.len[p.n++] = cut;
			cs += cut;
		}
		if (eof)
			break;
		if (canceled(r, &hungry)) {
			pb__reader_give(r, p.buf);
			return PB_ECANCELED;
		}
		room = PB__CDC_FILE_BUF - have;
		/* The chunk being cut is under PB_CDC_MAX: with none cut
		 * before it in the buffer, a block always fits. A waiting
		 * caller gets the file's first chunks at once, later ones
		 * once they are half a buffer (named in more lanes). */
		if (p.n > 0 && (room < READ_BLOCK || (hungry && (first || cs >= PB__CDC_FILE_BUF / 2)))) {
			uint8_t *next = get_buf(r);

			if (next == NULL) {
				pb__reader_give(r, p.buf);
				return PB_ECANCELED;
			}
			memcpy(next, p.buf + cs, have - cs);
			hand(r, &p);
			p.buf = next;
			p.n = 0;
			have -= cs;
			cs = 0;
			room = PB__CDC_FILE_BUF - have;
			first = false;
		}
		want = room < READ_BLOCK ? room : READ_BLOCK;
		if ((got = pb__read_full(fd, p.buf + have, want)) < 0)
			goto out_errno;
		eof = (size_t)got < want;
		have += (size_t)got;
	}
	if (p.n > 0)
		hand(r, &p);
	else
		pb__reader_give(r, p.buf);
	return 0;

out_errno:
	got = -errno; /* the chunks cut so far in this buffer are dropped */
	pb__reader_give(r, p.buf);
	return (int)got;
}

static void *run(void *arg)
{
	pb__reader_t *r = arg;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct job *j;
		int rc;

		while (!r->stop && r->jrun == r->jtail)
			pthread_cond_wait(&r->work, &r->mu);
		if (r->stop)
			break;
		j = &r->jobs[r->jrun % JOBS];
		pthread_mutex_unlock(&r->mu);
		rc = cut_file(r, j->fd, j->whole);
		pthread_mutex_lock(&r->mu);
		j->rc = rc;
		j->ended = true;
		r->jrun++;
		r->cancel = false;
		pthread_cond_broadcast(&r->ready);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void destroy(pb__reader_t *r)
{
	sodium_memzero(&r->name_k, sizeof(r->name_k));
	pthread_cond_destroy(&r->work);
	pthread_cond_destroy(&r->ready);
	pthread_cond_destroy(&r->name);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Stops the reader's thread, and the namer too when namer. */
static void stop_join(pb__reader_t *r, bool namer)
{
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->work);
	pthread_cond_broadcast(&r->name);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	if (namer)
		pthread_join(r->namer, NULL);
}

int pb__reader_new(const pb_cdc_t *cdc, const pb_backup_keys_t *keys, pb__reader_t **out)
{
	pb__reader_t *r;

	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return PB_ENOMEM;
	r->cdc = cdc;
	r->name_k_raw = keys->name;
	pb__b2k_init(&r->name_k, keys->name, sizeof(keys->name), PB_STORE_NAME_LEN, NULL);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->work, NULL);
	pthread_cond_init(&r->ready, NULL);
	pthread_cond_init(&r->name, NULL);
	if (pthread_create(&r->thread, NULL, run, r) != 0) {
		destroy(r);
		return PB_EUNSUPPORTED;
	}
	if (pthread_create(&r->namer, NULL, run_namer, r) != 0) {
		stop_join(r, false);
		destroy(r);
		return PB_EUNSUPPORTED;
	}
	*out = r;
	return 0;
}

int pb__reader_add(pb__reader_t *r, int fd, bool whole)
{
	struct job *j;

	pthread_mutex_lock(&r->mu);
	if (r->jtail - r->jhead == JOBS) {
		pthread_mutex_unlock(&r->mu);
		return PB_ESTATE;
	}
	j = &r->jobs[r->jtail % JOBS];
	j->fd = fd;
	j->whole = whole;
	j->ended = false;
	j->rc = 0;
	r->jtail++;
	pthread_cond_signal(&r->work);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/* Whether the first queued file's next piece is named (ready to take);
 * *none: whether it has none left to come. */
static bool piece_ready(pb__reader_t *r, bool *none)
{
	bool queued = r->qn > 0 && r->qjob[r->qhead] == r->jhead;

	*none = !queued && r->jobs[r->jhead % JOBS].ended;
	return queued && r->nnamed > 0;
}

int pb__reader_next(pb__reader_t *r, pb__piece_t **p, int (*idle)(void *arg), void *arg)
{
	struct job *j = &r->jobs[r->jhead % JOBS];
	bool none;
	int rc = 0;

	*p = NULL;
	pthread_mutex_lock(&r->mu);
	if (r->jhead == r->jtail) {
		pthread_mutex_unlock(&r->mu);
		return PB_ESTATE;
	}
	while (!piece_ready(r, &none) && !none) {
		r->hungry = true;
		if (idle != NULL) {
			/* Meanwhile the caller moves what else it can (the
			 * sealed chunks on to the host, buffers back here). */
			pthread_mutex_unlock(&r->mu);
			rc = idle(arg);
			pthread_mutex_lock(&r->mu);
			if (rc < 0)
				break;
			if (rc > 0) {
				rc = 0;
				continue; /* it did something: look again */
			}
			if (!piece_ready(r, &none) && !none)
				cond_wait_us(&r->ready, &r->mu, IDLE_WAIT_US);
			continue;
		}
		pthread_cond_wait(&r->ready, &r->mu);
	}
	r->hungry = false;
	if (rc < 0) {
		pthread_mutex_unlock(&r->mu);
		return rc;
	}
	if (piece_ready(r, &none)) {
		r->out = r->q[r->qhead];
		r->qhead = (r->qhead + 1) % POOL;
		r->qn--;
		r->nnamed--;
		*p = &r->out;
	} else {
		rc = j->rc;
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void pb__reader_done(pb__reader_t *r)
{
	pthread_mutex_lock(&r->mu);
	if (r->jhead == r->jtail) {
		pthread_mutex_unlock(&r->mu);
		return;
	}
	if (r->jrun == r->jhead)
		r->cancel = true;
	pthread_cond_broadcast(&r->work);
	/* ... and the namer with its pieces (the first it names is the
	 * first of the file's not named). */
	while (!r->jobs[r->jhead % JOBS].ended ||
	       (r->naming > 0 && r->qjob[(r->qhead + r->nnamed) % POOL] == r->jhead))
		pthread_cond_wait(&r->ready, &r->mu);
	/* Its pieces left are dropped: they come before the next file's. */
	while (r->qn > 0 && r->qjob[r->qhead] == r->jhead) {
		if (r->nnamed > 0)
			r->nnamed--;
		r->free_bufs[r->nfree++] = r->q[r->qhead].buf;
		r->qhead = (r->qhead + 1) % POOL;
		r->qn--;
	}
	r->jhead++;
	pthread_cond_signal(&r->work); /* buffers back */
	pthread_mutex_unlock(&r->mu);
}

void pb__reader_free(pb__reader_t *r)
{
	if (r == NULL)
		return;
	stop_join(r, true);
	r->nnamed = 0;
	while (r->qn > 0) {
		r->free_bufs[r->nfree++] = r->q[r->qhead].buf;
		r->qhead = (r->qhead + 1) % POOL;
		r->qn--;
	}
	/* A buffer still out (not given back) is the holder's to lose. */
	for (size_t i = 0; i < r->nfree; i++)
		free(r->free_bufs[i]);
	destroy(r);
}
