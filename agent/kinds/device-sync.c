/* Staged files made durable while the writer goes on. Once a commit holds
 * many staged files (a full restore: thousands) while much else waits to
 * be written (other programs' writes), each file staged is handed to two
 * threads of their own that fsync it (its writeback started when it was
 * closed), so that the commit finds them synced and only the last few
 * left. One syncfs at the commit ends in one flush of the disk's cache,
 * but it also waits for every other program's writes on the file system:
 * a gigabyte copied a few seconds before a restore cost it half a second
 * here. An fsync waits for its own file's writes only, and these waits
 * overlap the restore's work; with little else to write, the syncfs is
 * kept (it costs less CPU than an fsync a file). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peerback.h"
#include "agent/kinds/device-int.h"
#include "agent/kinds/util.h"
#include "agent/util/fsutil.h"

#define SYNCQ_THREADS 2

/* A staged file to sync: its index among the staged files, its target
 * (for its folder) and its temporary name when it was queued. */
struct syncq_item {
	size_t idx;
	char *path, *tmp;
};

struct pb__dw_syncq_s {
	pthread_t th[SYNCQ_THREADS];
	size_t nth;
	int root;
	pthread_mutex_t mu;
	pthread_cond_t more, idle;
	struct syncq_item *v; /* queued, from head on */
	size_t head, n, cap;
	size_t busy;
	bool stop, drop;
	int rc;         /* the first fsync that failed */
	size_t *missed; /* staged files not found under their queued name */
	size_t nmissed, capmissed;
};

static void item_free(struct syncq_item *it)
{
	free(it->path);
	free(it->tmp);
}

/* The folder a syncing thread opened last: files of one folder come in a
 * row, and each open of a folder walks it from the root. */
struct folder {
	char *rel; /* the folder's part of a staged file's path, or NULL */
	size_t len;
	int fd;
};

static void folder_close(struct folder *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->rel);
	f->rel = NULL;
	f->fd = -1;
}

/* The folder of staged file path, opened from root without following a
 * link (kept in f for the next file); -1 when it cannot be. */
static int folder_of(struct folder *f, int root, const char *path)
{
	size_t len = (size_t)(pb__kinds_basename(path) - path), bad = 0;
	int pfd;

	if (f->fd >= 0 && f->len == len && memcmp(f->rel, path, len) == 0)
		return f->fd;
	folder_close(f);
	if (pb__open_parent_at(root, path, false, 0700, NULL, NULL, &bad, &pfd) != 0)
		return -1;
	if ((f->rel = malloc(len + 1)) != NULL) {
		memcpy(f->rel, path, len);
		f->len = len;
	}
	f->fd = pfd;
	if (f->rel == NULL) {
		folder_close(f);
		return -1;
	}
	return pfd;
}

/* Syncs one file: 0, an fsync's error, or 1 when it was not found (a
 * later stage renamed it: that one is queued too, or the commit syncs it). */
static int sync_item(struct folder *f, int root, const struct syncq_item *it)
{
	int pfd = folder_of(f, root, it->path), fd, rc;

	if (pfd < 0)
		return 1;
	fd = openat(pfd, it->tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 1;
	rc = fsync(fd) != 0 ? -errno : 0;
	close(fd);
	return rc;
}

static void note_missed(pb__dw_syncq_t *q, size_t idx)
{
	if (q->nmissed == q->capmissed) {
		size_t cap = q->capmissed ? q->capmissed * 2 : 64;
		size_t *v = realloc(q->missed, cap * sizeof(*v));

		if (v == NULL) {
			/* The commit then syncs every file itself. */
			if (q->rc == 0)
				q->rc = PB_ENOMEM;
			return;
		}
		q->missed = v;
		q->capmissed = cap;
	}
	q->missed[q->nmissed++] = idx;
}

static void *syncq_run(void *arg)
{
	pb__dw_syncq_t *q = arg;
	struct folder f = { NULL, 0, -1 };

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct syncq_item it;
		bool drop;
		int rc = 0;

		while (q->n == 0 && !q->stop)
			pthread_cond_wait(&q->more, &q->mu);
		if (q->n == 0)
			break;
		it = q->v[q->head++];
		q->n--;
		q->busy++;
		drop = q->drop;
		pthread_mutex_unlock(&q->mu);
		if (!drop)
			rc = sync_item(&f, q->root, &it);
		item_free(&it);
		pthread_mutex_lock(&q->mu);
		q->busy--;
		if (rc < 0 && q->rc == 0)
			q->rc = rc;
		if (rc == 1)
			note_missed(q, it.idx);
		if (q->n == 0 && q->busy == 0)
			pthread_cond_broadcast(&q->idle);
	}
	pthread_mutex_unlock(&q->mu);
	folder_close(&f);
	return NULL;
}

static void syncq_free(pb__dw_syncq_t *q)
{
	for (size_t i = 0; i < q->n; i++)
		item_free(&q->v[q->head + i]);
	free(q->v);
	free(q->missed);
	pthread_cond_destroy(&q->idle);
	pthread_cond_destroy(&q->more);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

static pb__dw_syncq_t *syncq_start(int root)
{
	pb__dw_syncq_t *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->root = root;
	if (pthread_mutex_init(&q->mu, NULL) != 0) {
		free(q);
		return NULL;
	}
	if (pthread_cond_init(&q->more, NULL) != 0) {
		pthread_mutex_destroy(&q->mu);
		free(q);
		return NULL;
	}
	if (pthread_cond_init(&q->idle, NULL) != 0) {
		pthread_cond_destroy(&q->more);
		pthread_mutex_destroy(&q->mu);
		free(q);
		return NULL;
	}
	while (q->nth < SYNCQ_THREADS && pthread_create(&q->th[q->nth], NULL, syncq_run, q) == 0)
		q->nth++;
	if (q->nth == 0) {
		syncq_free(q);
		return NULL;
	}
	return q;
}

/* Queues staged file idx of w; false when it could not be. */
static bool syncq_put(pb__dw_syncq_t *q, size_t idx, const wstaged_t *s)
{
	struct syncq_item it = { idx, strdup(s->path), strdup(s->tmp) };
	bool put = false;

	if (it.path == NULL || it.tmp == NULL) {
		item_free(&it);
		return false;
	}
	pthread_mutex_lock(&q->mu);
	if (q->head > 0 && q->head + q->n == q->cap) {
		/* The taken ones' room is used again. */
		memmove(q->v, q->v + q->head, q->n * sizeof(*q->v));
		q->head = 0;
	}
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 256;
		struct syncq_item *v = realloc(q->v, cap * sizeof(*v));

		if (v != NULL) {
			q->v = v;
			q->cap = cap;
		}
	}
	if (q->head + q->n < q->cap && !q->stop) {
		q->v[q->head + q->n++] = it;
		pthread_cond_signal(&q->more);
		put = true;
	}
	pthread_mutex_unlock(&q->mu);
	if (!put)
		item_free(&it);
	return put;
}

/* Bytes waiting to be written to any disk (/proc/meminfo: Dirty and
 * Writeback), or UINT64_MAX when that cannot be read. */
static uint64_t dirty_bytes(void)
{
	char line[128];
	uint64_t sum = 0;
	int seen = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	if (f == NULL)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long kb;

		if (sscanf(line, "Dirty: %llu kB", &kb) == 1 || sscanf(line, "Writeback: %llu kB", &kb) == 1) {
			sum += (uint64_t)kb * 1024;
			seen++;
		}
	}
	fclose(f);
	return seen == 2 ? sum : UINT64_MAX;
}

void pb__dw_sync_later(pb_device_writer_t *w, wstaged_t *s)
{
	s->queued = false;
	if (w->ns < PB__DW_SYNC_SPLIT || w->root < 0 || w->sync_at_end)
		return;
	if (w->syncq == NULL) {
		/* With little else waiting to be written, the one syncfs at
		 * the commit costs less than an fsync a file (each writes
		 * its inode's block and flushes the disk's cache: some 0.1
		 * CPU ms here); decided once a commit. */
		if (w->sync_dirty_min == UINT64_MAX || (w->sync_dirty_min > 0 && dirty_bytes() < w->sync_dirty_min)) {
			w->sync_at_end = true;
			return;
		}
		if ((w->syncq = syncq_start(w->root)) == NULL)
			return;
		/* The files staged before are queued too. */
		for (size_t i = 0; i < w->ns; i++)
			if (&w->s[i] != s && w->s[i].tmp != NULL)
				w->s[i].queued = syncq_put(w->syncq, i, &w->s[i]);
	}
	s->queued = syncq_put(w->syncq, (size_t)(s - w->s), s);
}

/* Ends the threads once the queue is done (drop: not synced). Staged files
 * the threads did not find are left to the commit. */
static int syncq_end(pb_device_writer_t *w, bool drop)
{
	pb__dw_syncq_t *q = w->syncq;
	int rc;

	if (q == NULL)
		return 0;
	pthread_mutex_lock(&q->mu);
	q->drop = drop;
	while (q->n > 0 || q->busy > 0)
		pthread_cond_wait(&q->idle, &q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->more);
	rc = q->rc;
	pthread_mutex_unlock(&q->mu);
	for (size_t i = 0; i < q->nth; i++)
		pthread_join(q->th[i], NULL);
	for (size_t i = 0; i < q->nmissed; i++)
		if (q->missed[i] < w->ns)
			w->s[q->missed[i]].queued = false;
	syncq_free(q);
	w->syncq = NULL;
	return rc;
}

int pb__dw_sync_wait(pb_device_writer_t *w)
{
	return syncq_end(w, false);
}

void pb__dw_sync_drop(pb_device_writer_t *w)
{
	(void)syncq_end(w, true);
	w->sync_at_end = false;
	for (size_t i = 0; i < w->ns; i++)
		w->s[i].queued = false;
}

void pb__device_writer_sync_dirty_min(pb_device_writer_t *w, uint64_t bytes)
{
	w->sync_dirty_min = bytes;
}
