/* Items made on a thread of their own, taken in order on the caller's.
 *
 * The maker copies each item's bytes and id into the batch it fills; a
 * full batch is handed over and the next of four is filled while the
 * caller takes the items of one before. Items to hash are hashed a batch
 * at a time on a hashing thread of the pipe's own, between the maker and
 * the caller: the maker (a chat's parser) is the slower side, and the
 * hashes were a quarter of its work. The caller's callback sees
 * the same items, in the same order, as if the maker had called it
 * itself; only the pointers differ (they point into the batch, valid for
 * the call as before). */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "peerback/error.h"
#include "agent/kinds/item-pipe.h"

/* One batch being filled, one hashed, one taken, and one spare so that
 * none of the three waits for another's hand-over. */
#define NBATCH 4
#define BATCH_DEFAULT (256u << 10)

struct ent {
	pb__item_x_t x; /* id and data are set when taken */
	size_t id_off, data_off;
	bool has_data;
};

struct batch {
	pb_buf_t bytes; /* ids and data, one after the other */
	struct ent *e;
	size_t n, cap;
	/* Room for hashing the batch at once (hash_batch), cap entries. */
	const uint8_t **hd;
	const char **hid;
	size_t *hl, *hidl, *hidx;
	uint8_t **ho;
	uint64_t *keys;
	size_t hcap;
};

struct pb__ipipe_s {
	pthread_mutex_t mu;
	pthread_cond_t room, fill, ready; /* for the maker, the hasher, the taker */
	struct batch b[NBATCH];
	size_t filled, taken; /* batches handed over, and taken */
	size_t hashed;        /* batches hashed: taken <= hashed <= filled */
	bool stop;            /* the taker failed: the maker stops */
	bool done;            /* the maker returned make_rc */
	int make_rc;
	size_t batch;
	struct batch *cur; /* the maker's, NULL when it has none */
	pb__ipipe_make_fn make;
	void *arg;
	/* Items put unhashed are hashed with it (NULL: as they come). */
	const pb__item_hasher_t *h;
	/* The batches are hashed on a thread of their own; without it
	 * (nothing to hash, or no thread) on the maker's, as handed over. */
	bool hthread;
	/* Without a thread, put calls the taker itself. */
	bool direct;
	pb_item_cb cb;
	void *cb_arg;
};

/* The maker's next batch: waits while all four are full. */
static int batch_get(pb__ipipe_t *p)
{
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	while (!p->stop && p->filled - p->taken >= NBATCH)
		pthread_cond_wait(&p->room, &p->mu);
	if (p->stop)
		rc = PB_ECANCELED;
	else
		p->cur = &p->b[p->filled % NBATCH];
	pthread_mutex_unlock(&p->mu);
	if (rc == 0) {
		p->cur->n = 0;
		p->cur->bytes.len = 0;
	}
	return rc;
}

/* Grows the batch's room for hashing it at once to its cap entries. */
static bool hash_room(struct batch *b)
{
	size_t cap = b->cap;

	if (b->hcap >= b->n)
		return true;
	free(b->hd);
	free(b->hid);
	free(b->hl);
	free(b->hidl);
	free(b->hidx);
	free(b->ho);
	free(b->keys);
	b->hd = malloc(cap * sizeof(*b->hd));
	b->hid = malloc(cap * sizeof(*b->hid));
	b->hl = malloc(cap * sizeof(*b->hl));
	b->hidl = malloc(cap * sizeof(*b->hidl));
	b->hidx = malloc(cap * sizeof(*b->hidx));
	b->ho = malloc(cap * sizeof(*b->ho));
	b->keys = malloc(cap * sizeof(*b->keys));
	b->hcap = b->hd && b->hid && b->hl && b->hidl && b->hidx && b->ho && b->keys ? cap : 0;
	return b->hcap >= b->n;
}

/* The batch's items, hashed and keyed at once (on the maker's thread).
 * Without room for that, an item at a time. */
static void hash_batch(pb__ipipe_t *p, struct batch *b)
{
	const pb__item_hasher_t *h = p->h;
	bool room;
	size_t nd = 0, nk = 0;

	if (h == NULL)
		return;
	room = hash_room(b);
	for (size_t i = 0; i < b->n; i++) {
		struct ent *e = &b->e[i];
		const uint8_t *data = e->x.it.len > 0 ? b->bytes.data + e->data_off : (const uint8_t *)"";
		const char *id = e->x.it.id != NULL ? (const char *)b->bytes.data + e->id_off : NULL;

		if (e->has_data && !e->x.hashed) {
			if (room && h->many != NULL) {
				b->hd[nd] = data;
				b->hl[nd] = e->x.it.len;
				b->ho[nd++] = e->x.hash;
			} else {
				h->fn(h->arg, data, e->x.it.len, e->x.hash);
			}
			e->x.hashed = true;
		}
		if (id != NULL && h->key != NULL && !e->x.keyed) {
			if (room && h->keys_many != NULL) {
				b->hid[nk] = id;
				b->hidl[nk] = strlen(id);
				b->hidx[nk++] = i;
			} else {
				e->x.key = h->key(h->arg, id, strlen(id));
			}
			e->x.keyed = true;
		}
	}
	if (nd > 0)
		h->many(h->arg, b->hd, b->hl, b->ho, nd);
	if (nk > 0) {
		h->keys_many(h->arg, b->hid, b->hidl, b->keys, nk);
		for (size_t j = 0; j < nk; j++)
			b->e[b->hidx[j]].x.key = b->keys[j];
	}
	for (size_t i = 0; h->digest != NULL && i < b->n; i++) {
		struct ent *e = &b->e[i];

		if (e->x.hashed && e->x.it.id != NULL && !e->x.digested) {
			e->x.digest = h->digest((const char *)b->bytes.data + e->id_off, e->x.hash);
			e->x.digested = true;
		}
	}
}

static void batch_hand(pb__ipipe_t *p)
{
	if (!p->hthread)
		hash_batch(p, p->cur);
	pthread_mutex_lock(&p->mu);
	p->filled++;
	if (!p->hthread)
		p->hashed = p->filled;
	p->cur = NULL;
	pthread_cond_signal(p->hthread ? &p->fill : &p->ready);
	pthread_mutex_unlock(&p->mu);
}

static int append(pb_buf_t *b, const void *data, size_t len, size_t *off)
{
	*off = b->len;
	return len > 0 ? pb_buf_append(b, data, len) : 0;
}

int pb__ipipe_put(pb__ipipe_t *p, const pb_item_t *it)
{
	struct batch *b;
	struct ent *e;
	int rc;

	if (p->direct) {
		pb__item_x_t x = *(const pb__item_x_t *)it;

		if (p->h != NULL && it->data != NULL && !x.hashed) {
			p->h->fn(p->h->arg, it->data, it->len, x.hash);
			x.hashed = true;
		}
		if (p->h != NULL && p->h->key != NULL && it->id != NULL && !x.keyed) {
			x.key = p->h->key(p->h->arg, it->id, strlen(it->id));
			x.keyed = true;
		}
		return p->cb(p->cb_arg, &x.it);
	}
	if (p->cur == NULL && (rc = batch_get(p)) != 0)
		return rc;
	b = p->cur;
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 256;
		struct ent *ne = realloc(b->e, cap * sizeof(*ne));

		if (ne == NULL)
			return PB_ENOMEM;
		b->e = ne;
		b->cap = cap;
	}
	e = &b->e[b->n];
	e->x = *(const pb__item_x_t *)it;
	e->has_data = it->data != NULL;
	if ((rc = append(&b->bytes, it->id, it->id != NULL ? strlen(it->id) + 1 : 0, &e->id_off)) != 0 ||
	    (rc = append(&b->bytes, it->data, e->has_data ? it->len : 0, &e->data_off)) != 0)
		return rc;
	b->n++;
	if (b->bytes.len >= p->batch)
		batch_hand(p);
	return 0;
}

int pb__ipipe_put_cb(void *arg, const pb_item_t *it)
{
	return pb__ipipe_put(arg, it);
}

static void *maker(void *arg)
{
	pb__ipipe_t *p = arg;
	int rc = p->make(p->arg, p);

	if (p->cur != NULL && p->cur->n > 0)
		batch_hand(p);
	pthread_mutex_lock(&p->mu);
	p->done = true;
	p->make_rc = rc;
	pthread_cond_broadcast(&p->fill);
	pthread_cond_broadcast(&p->ready);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* The hashing thread: hashes the batches in the order filled, until the
 * maker is done and all are hashed, or the taker stopped. */
static void *hasher(void *arg)
{
	pb__ipipe_t *p = arg;

	for (;;) {
		struct batch *b;

		pthread_mutex_lock(&p->mu);
		while (!p->stop && !p->done && p->hashed == p->filled)
			pthread_cond_wait(&p->fill, &p->mu);
		if (p->stop || p->hashed == p->filled) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		b = &p->b[p->hashed % NBATCH];
		pthread_mutex_unlock(&p->mu);
		hash_batch(p, b);
		pthread_mutex_lock(&p->mu);
		p->hashed++;
		pthread_cond_signal(&p->ready);
		pthread_mutex_unlock(&p->mu);
	}
}

/* Hands one batch's items to the taker. */
static int take(pb__ipipe_t *p, struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct ent *e = &b->e[i];
		pb__item_x_t x = e->x;
		int rc;

		if (x.it.id != NULL)
			x.it.id = (const char *)b->bytes.data + e->id_off;
		/* An empty item keeps a pointer of its own: bytes.data may be
		 * NULL while the batch holds nothing else. */
		if (e->has_data)
			x.it.data = x.it.len > 0 ? b->bytes.data + e->data_off : (const uint8_t *)"";
		if ((rc = p->cb(p->cb_arg, &x.it)) != 0)
			return rc;
	}
	return 0;
}

int pb__ipipe_run(pb__ipipe_make_fn make, void *arg, pb_item_cb cb, void *cb_arg, size_t batch)
{
	return pb__ipipe_run_hashed(make, arg, cb, cb_arg, batch, NULL);
}

int pb__ipipe_run_hashed(pb__ipipe_make_fn make, void *arg, pb_item_cb cb, void *cb_arg, size_t batch,
			 const pb__item_hasher_t *h)
{
	pb__ipipe_t p;
	pthread_t th, hth;
	int rc = 0;

	memset(&p, 0, sizeof(p));
	p.make = make;
	p.arg = arg;
	p.cb = cb;
	p.cb_arg = cb_arg;
	p.h = h;
	p.batch = batch > 0 ? batch : BATCH_DEFAULT;
	if (pthread_mutex_init(&p.mu, NULL) != 0)
		return PB_ENOMEM;
	if (pthread_cond_init(&p.room, NULL) != 0)
		goto fail_room;
	if (pthread_cond_init(&p.fill, NULL) != 0)
		goto fail_fill;
	if (pthread_cond_init(&p.ready, NULL) != 0)
		goto fail_ready;
	p.hthread = h != NULL && pthread_create(&hth, NULL, hasher, &p) == 0;
	if (pthread_create(&th, NULL, maker, &p) != 0) {
		/* No thread: the items go to the taker as they are made. */
		if (p.hthread) {
			pthread_mutex_lock(&p.mu);
			p.stop = true;
			pthread_cond_broadcast(&p.fill);
			pthread_mutex_unlock(&p.mu);
			pthread_join(hth, NULL);
		}
		p.direct = true;
		p.stop = false;
		rc = make(arg, &p);
		goto out;
	}
	for (;;) {
		struct batch *b;

		pthread_mutex_lock(&p.mu);
		while (p.taken == p.hashed && !(p.done && p.hashed == p.filled))
			pthread_cond_wait(&p.ready, &p.mu);
		if (p.taken == p.hashed) {
			pthread_mutex_unlock(&p.mu);
			break; /* done, all taken */
		}
		b = &p.b[p.taken % NBATCH];
		pthread_mutex_unlock(&p.mu);
		rc = take(&p, b);
		pthread_mutex_lock(&p.mu);
		if (rc != 0)
			p.stop = true;
		else
			p.taken++;
		pthread_cond_signal(&p.room);
		if (rc != 0)
			pthread_cond_broadcast(&p.fill);
		pthread_mutex_unlock(&p.mu);
		if (rc != 0)
			break;
	}
	pthread_join(th, NULL);
	if (p.hthread)
		pthread_join(hth, NULL);
	if (rc == 0)
		rc = p.make_rc;
out:
	for (int i = 0; i < NBATCH; i++) {
		pb_buf_free(&p.b[i].bytes);
		free(p.b[i].e);
		free(p.b[i].hd);
		free(p.b[i].hid);
		free(p.b[i].hl);
		free(p.b[i].hidl);
		free(p.b[i].hidx);
		free(p.b[i].ho);
		free(p.b[i].keys);
	}
	pthread_cond_destroy(&p.ready);
	pthread_cond_destroy(&p.fill);
	pthread_cond_destroy(&p.room);
	pthread_mutex_destroy(&p.mu);
	return rc;
fail_ready:
	pthread_cond_destroy(&p.fill);
fail_fill:
	pthread_cond_destroy(&p.room);
fail_room:
	pthread_mutex_destroy(&p.mu);
	return PB_ENOMEM;
}
