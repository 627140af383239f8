/* Chunk opening on worker threads, for restore: the thread that receives
 * sealed chunks hands them over in order; OPEN_THREADS threads open them
 * (XChaCha20-Poly1305, zstd, the keyed BLAKE2b name check) while it goes
 * on receiving, writing and hashing; it takes them back in the order it
 * handed them over. A ring of OPEN_RING chunks, at most OPEN_BYTES of
 * sealed bytes, bounds what waits. Each thread keeps its zstd context. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zstd.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/internal.h"

#define OPEN_THREADS 2
#define OPEN_RING 32
#define OPEN_BYTES (8u << 20)
/* The threads are woken for a chunk this large, or for this many small
 * ones: a message of a few hundred bytes costs less to open than to hand
 * over, and the taking thread opens one nobody picked up itself. */
#define OPEN_WAKE_BYTES (64u * 1024)
#define OPEN_WAKE_COUNT 8

enum { SLOT_FREE, SLOT_WAITING, SLOT_OPENING, SLOT_DONE };

struct oslot {
	int state;
	uint8_t name[PB_STORE_NAME_LEN];
	uint8_t *ct, *plain;
	size_t len, plen;
	uint64_t tag;
	pb__cache_t *cache; /* written there at keep_at first (0: not kept) */
	uint64_t keep_at;
	bool is_plain; /* ct is the plaintext: its name is checked, nothing opened */
	int rc;
};

struct pb__opener_s {
	const pb_backup_keys_t *keys;
	pthread_t th[OPEN_THREADS];
	size_t nth;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct oslot s[OPEN_RING];
	uint64_t put, take, next; /* handed over, taken back, next to open */
	size_t bytes;             /* sealed bytes handed over, not taken back */
	bool stop;
	bool spawned;             /* the threads were started (at the first wake) */
	ZSTD_DCtx *dctx;          /* the taking thread's */
};

/* The plaintext buffer is allocated once the chunk says its size (after
 * decryption): memory holds what the waiting chunks hold, not OPEN_RING
 * times the largest chunk, and no chunk is decrypted twice. */
static void open_one(const pb_backup_keys_t *keys, struct oslot *s, ZSTD_DCtx *dctx)
{
	if (s->is_plain) {
		uint8_t got[PB_STORE_NAME_LEN];

		pb__chunk_name(keys->name, s->ct, s->len, got);
		s->rc = sodium_memcmp(got, s->name, PB_STORE_NAME_LEN) == 0 ? 0 : PB_ESTORE_HASH;
		if (s->rc == 0) {
			s->plain = s->ct;
			s->plen = s->len;
			s->ct = NULL;
		}
		return;
	}
	/* Kept as it came (the restoring thread only took its place); one
	 * that does not open is forgotten when taken back. */
	pb__cache_write(s->cache, s->keep_at, s->name, s->ct, s->len);
	s->rc = pb__open_alloc(keys->chunk, keys->name, s->name, s->ct, s->len, PB_CHUNK_PLAIN_MAX, &s->plain,
			       &s->plen, dctx);
}

static void *worker(void *arg)
{
	pb__opener_t *o = arg;
	ZSTD_DCtx *dctx = ZSTD_createDCtx(); /* NULL: one a chunk */

	pthread_mutex_lock(&o->mu);
	for (;;) {
		struct oslot *s;

		while (!o->stop && o->next == o->put)
			pthread_cond_wait(&o->work, &o->mu);
		if (o->stop)
			break;
		s = &o->s[o->next++ % OPEN_RING];
		s->state = SLOT_OPENING;
		pthread_mutex_unlock(&o->mu);
		open_one(o->keys, s, dctx);
		pthread_mutex_lock(&o->mu);
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&o->done);
	}
	pthread_mutex_unlock(&o->mu);
	ZSTD_freeDCtx(dctx);
	return NULL;
}

int pb__opener_new(const pb_backup_keys_t *keys, pb__opener_t **out)
{
	pb__opener_t *o = calloc(1, sizeof(*o));

	*out = NULL;
	if (o == NULL)
		return PB_ENOMEM;
	o->keys = keys;
	o->dctx = ZSTD_createDCtx();
	if (pthread_mutex_init(&o->mu, NULL) != 0) {
		ZSTD_freeDCtx(o->dctx);
		free(o);
		return PB_ENOMEM;
	}
	pthread_cond_init(&o->work, NULL);
	pthread_cond_init(&o->done, NULL);
	*out = o;
	return 0;
}

/* The threads start when there is first work for them: a restore of a few
 * small chunks (one message by id) opens them all itself and starts none.
 * No thread at all still works: chunks are opened when taken. Called with
 * o->mu held. */
static void spawn(pb__opener_t *o)
{
	o->spawned = true;
	for (size_t i = 0; i < OPEN_THREADS; i++)
		if (pthread_create(&o->th[o->nth], NULL, worker, o) == 0)
			o->nth++;
}

bool pb__opener_room(const pb__opener_t *o)
{
	return o->put - o->take < OPEN_RING && (o->bytes < OPEN_BYTES || o->put == o->take);
}

size_t pb__opener_waiting(const pb__opener_t *o)
{
	return (size_t)(o->put - o->take);
}

static void put(pb__opener_t *o, const uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t len, uint64_t tag,
		pb__cache_t *cache, uint64_t at, bool is_plain)
{
	struct oslot *s = &o->s[o->put % OPEN_RING];

	pthread_mutex_lock(&o->mu);
	memset(s, 0, sizeof(*s));
	memcpy(s->name, name, PB_STORE_NAME_LEN);
	s->ct = ct;
	s->len = len;
	s->tag = tag;
	s->cache = cache;
	s->keep_at = at;
	s->is_plain = is_plain;
	s->state = SLOT_WAITING;
	o->bytes += len;
	o->put++;
	if (len >= OPEN_WAKE_BYTES || o->put - o->next >= OPEN_WAKE_COUNT) {
		if (!o->spawned)
			spawn(o);
		pthread_cond_signal(&o->work);
	}
	pthread_mutex_unlock(&o->mu);
}

void pb__opener_put_keep(pb__opener_t *o, const uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t len,
			 uint64_t tag, pb__cache_t *cache, uint64_t at)
{
	put(o, name, ct, len, tag, cache, at, false);
}

void pb__opener_put_plain(pb__opener_t *o, const uint8_t name[PB_STORE_NAME_LEN], uint8_t *plain, size_t len,
			  uint64_t tag)
{
	put(o, name, plain, len, tag, NULL, 0, true);
}

void pb__opener_put(pb__opener_t *o, const uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t len, uint64_t tag)
{
	pb__opener_put_keep(o, name, ct, len, tag, NULL, 0);
}

int pb__opener_take(pb__opener_t *o, uint8_t **ct, size_t *len, uint64_t *tag, uint8_t **plain, size_t *plen)
{
	struct oslot *s = &o->s[o->take % OPEN_RING];

	pthread_mutex_lock(&o->mu);
	if (s->state == SLOT_WAITING) {
		/* Not picked up: the next in line, opened here. */
		o->next++;
		s->state = SLOT_OPENING;
		pthread_mutex_unlock(&o->mu);
		open_one(o->keys, s, o->dctx);
		pthread_mutex_lock(&o->mu);
		s->state = SLOT_DONE;
	}
	while (s->state != SLOT_DONE)
		pthread_cond_wait(&o->done, &o->mu);
	o->bytes -= s->len;
	o->take++;
	pthread_mutex_unlock(&o->mu);
	*ct = s->ct;
	*len = s->len;
	*tag = s->tag;
	*plain = s->plain;
	*plen = s->plen;
	s->state = SLOT_FREE;
	return s->rc;
}

void pb__opener_free(pb__opener_t *o)
{
	if (o == NULL)
		return;
	pthread_mutex_lock(&o->mu);
	o->stop = true;
	pthread_cond_broadcast(&o->work);
	pthread_mutex_unlock(&o->mu);
	for (size_t i = 0; i < o->nth; i++)
		pthread_join(o->th[i], NULL);
	/* What was handed over and never taken back. */
	for (; o->take < o->put; o->take++) {
		struct oslot *s = &o->s[o->take % OPEN_RING];

		free(s->ct);
		if (s->plain != NULL)
			sodium_memzero(s->plain, s->plen);
		free(s->plain);
	}
	ZSTD_freeDCtx(o->dctx);
	pthread_cond_destroy(&o->work);
	pthread_cond_destroy(&o->done);
	pthread_mutex_destroy(&o->mu);
	free(o);
}
