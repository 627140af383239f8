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
#include "agent/util/blake2b.h"

#define OPEN_THREADS 2
#define OPEN_RING 32
#define OPEN_BYTES (8u << 20)
/* At most this many waiting chunks are taken by a thread at once, their
 * names checked together (in the lanes of vector registers). The threads
 * let chunks gather (see ready) rather than take each as it comes. */
#define OPEN_BATCH 8
/* A chunk the taking thread finds not picked up is opened there when
 * smaller than this (a message of a few hundred bytes costs less to open
 * than to hand over); a larger one is left to a thread, with the chunks
 * behind it. */
#define OPEN_HERE_BYTES (64u * 1024)

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
	pb__b2k_t names; /* the chunk names' keyed BLAKE2b, its key block prepared */
	pthread_t th[OPEN_THREADS];
	size_t nth;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct oslot s[OPEN_RING];
	uint64_t put, take, next; /* handed over, taken back, next to open */
	size_t bytes;             /* sealed bytes handed over, not taken back */
	bool stop;
	bool spawned;             /* the threads were started (at the first wake) */
	bool taker_waits;         /* for a chunk not picked up yet */
	ZSTD_DCtx *dctx;          /* the taking thread's */
};

/* Authenticates and decompresses one chunk, its name not checked yet
 * (open_many does, for several at once). The plaintext buffer is
 * allocated once the chunk says its size (after decryption): memory holds
 * what the waiting chunks hold, not OPEN_RING times the largest chunk, and
 * no chunk is decrypted twice. */
static void open_unchecked(const pb_backup_keys_t *keys, struct oslot *s, ZSTD_DCtx *dctx)
{
	/* Kept as it came (the restoring thread only took its place); one
	 * that does not open is forgotten when taken back. */
	pb__cache_write(s->cache, s->keep_at, s->name, s->ct, s->len);
	s->rc = pb__open_alloc_unchecked(keys->chunk, s->name, s->ct, s->len, PB_CHUNK_PLAIN_MAX, &s->plain,
					 &s->plen, dctx);
}

/* The name of each plaintext (n at most OPEN_BATCH), all in one pass:
 * several messages (and a large chunk's eight segments) at once in the
 * lanes of vector registers (agent/util/blake2b.c), the same names as
 * pb__chunk_name gives. */
static void names_of(const pb__opener_t *o, const uint8_t *const *data, const size_t *len,
		     uint8_t (*got)[PB_STORE_NAME_LEN], size_t n)
{
	uint8_t *out[OPEN_BATCH] = { 0 };

	for (size_t j = 0; j < n; j++)
		out[j] = got[j];
	pb__chunk_names_many(&o->names, data, len, out, n);
}

/* Opens n chunks (n at most OPEN_BATCH): each is authenticated and
 * decompressed, then all their names are checked in one pass; a chunk
 * whose plaintext does not hash to its name fails, its plaintext wiped. A
 * chunk given as plaintext (is_plain) is only checked. */
static void open_many(const pb__opener_t *o, struct oslot *const *b, size_t n, ZSTD_DCtx *dctx)
{
	const uint8_t *data[OPEN_BATCH] = { 0 };
	size_t len[OPEN_BATCH] = { 0 };
	uint8_t got[OPEN_BATCH][PB_STORE_NAME_LEN];
	struct oslot *c[OPEN_BATCH];
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		struct oslot *s = b[i];

		if (!s->is_plain) {
			open_unchecked(o->keys, s, dctx);
			if (s->rc != 0)
				continue;
		}
		data[m] = s->is_plain ? s->ct : s->plain;
		len[m] = s->is_plain ? s->len : s->plen;
		c[m++] = s;
	}
	names_of(o, data, len, got, m);
	for (size_t j = 0; j < m; j++) {
		struct oslot *s = c[j];

		/* A large chunk named before the segments: the hash of its
		 * bytes (pb__chunk_name_ok). */
		if (len[j] >= PB_CHUNK_TREE_MIN && sodium_memcmp(got[j], s->name, PB_STORE_NAME_LEN) != 0)
			pb__b2k_hash(&o->names, data[j], len[j], got[j]);
		if (sodium_memcmp(got[j], s->name, PB_STORE_NAME_LEN) != 0) {
			s->rc = PB_ESTORE_HASH;
			if (!s->is_plain) {
				sodium_memzero(s->plain, s->plen);
				free(s->plain);
				s->plain = NULL;
				s->plen = 0;
			}
		} else if (s->is_plain) {
			s->rc = 0;
			s->plain = s->ct;
			s->plen = s->len;
			s->ct = NULL;
		}
	}
}

/* Whether a thread takes the waiting chunks now: when there are enough
 * for every lane, when the ring is full (the restoring thread takes one
 * back next and hands over no more until then), or when the restoring
 * thread waits for the first of them. Taken as they come, they would be
 * one or two at a time: the threads keep up with the network. Called with
 * o->mu held. */
static bool ready(const pb__opener_t *o)
{
	uint64_t waiting = o->put - o->next;

	return waiting > 0 && (waiting >= OPEN_BATCH || o->taker_waits || !pb__opener_room(o));
}

static void *worker(void *arg)
{
	pb__opener_t *o = arg;
	ZSTD_DCtx *dctx = ZSTD_createDCtx(); /* NULL: one a chunk */
	struct oslot *b[OPEN_BATCH];

	pthread_mutex_lock(&o->mu);
	for (;;) {
		size_t n = 0;

		while (!o->stop && !ready(o))
			pthread_cond_wait(&o->work, &o->mu);
		if (o->stop)
			break;
		/* What waits, up to OPEN_BATCH chunks in ring order: their
		 * names are checked in one pass. */
		while (n < OPEN_BATCH && o->next != o->put) {
			b[n] = &o->s[o->next++ % OPEN_RING];
			b[n++]->state = SLOT_OPENING;
		}
		pthread_mutex_unlock(&o->mu);
		open_many(o, b, n, dctx);
		pthread_mutex_lock(&o->mu);
		for (size_t i = 0; i < n; i++)
			b[i]->state = SLOT_DONE;
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
	pb__b2k_init(&o->names, keys->name, sizeof(keys->name), PB_STORE_NAME_LEN, NULL);
	o->dctx = ZSTD_createDCtx();
	if (pthread_mutex_init(&o->mu, NULL) != 0) {
		ZSTD_freeDCtx(o->dctx);
		sodium_memzero(&o->names, sizeof(o->names));
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
	if (ready(o)) {
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
	if (s->state == SLOT_WAITING && s->len >= OPEN_HERE_BYTES) {
		if (!o->spawned)
			spawn(o);
		if (o->nth > 0) {
			/* A thread takes it with the chunks behind it. */
			o->taker_waits = true;
			pthread_cond_signal(&o->work);
			while (s->state == SLOT_WAITING)
				pthread_cond_wait(&o->done, &o->mu);
			o->taker_waits = false;
		}
	}
	if (s->state == SLOT_WAITING) {
		/* Not picked up: the next in line, opened here. */
		o->next++;
		s->state = SLOT_OPENING;
		pthread_mutex_unlock(&o->mu);
		open_many(o, &s, 1, o->dctx);
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
	sodium_memzero(&o->names, sizeof(o->names));
	free(o);
}
