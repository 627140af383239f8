/* The sink of a backup's chunks (agent/backup/sink.h).
 *
 * Threads: the caller's thread names each chunk (keyed BLAKE2b), skips one
 * the repository already committed, and puts a copy in the ring; the
 * sealing threads take ring slots in order and compress and encrypt them,
 * naming first the chunks of files added with pb__sink_add_named (the
 * chunks a file's buffer held, pb__sink_add_named_many, come in one slot
 * and are named together in vector lanes; the caller waits for those
 * names at the item's end, pb__sink_hash_wait);
 * the hashing thread feeds the slots of an item of several chunks held in
 * memory, in ring order, into that item's content hash (a second keyed
 * BLAKE2b pass over the same bytes, which would otherwise run on the
 * caller's thread);
 * small chunks of a chat stream go to the sealing threads many in one
 * slot (a batch of PACK_BYTES), sealed there one by one and sent in order;
 * the caller's thread takes sealed slots back in ring order into batches
 * and does all talking to the repository. Nothing but the ring is shared.
 *
 * In flight: a full batch is offered at once, and the batch before it is
 * put once that offer is out (so the host answers an offer while it writes
 * the previous batch); a commit is sent right behind the puts of the last
 * chunk it covers, and its receipt is taken when the answers behind it are
 * needed. Chunks are sent in the order they were added, so "every chunk
 * added before the commit" is "every chunk put before it". */
#include <pthread.h>
#include <stdlib.h>
#ifdef __linux__
#include <malloc.h>
#endif
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <zstd.h>

#include "agent/backup/internal.h"
#include "agent/backup/sink.h"
#include "agent/util/blake2b.h"

#define RING 256                  /* chunks between naming and sending */
#define RING_BYTES (16u << 20)    /* plaintext waiting to be sealed */
#define BATCH_BYTES (4u << 20)    /* sealed bytes in one offer */
/* Bytes added between commits: sink.h (PB__SINK_COMMIT_BYTES). */
#define COMMIT_BYTES PB__SINK_COMMIT_BYTES
#define COMMIT_WIDE_AFTER PB__SINK_COMMIT_WIDE_AFTER
#define COMMIT_BYTES_WIDE PB__SINK_COMMIT_BYTES_WIDE
#define COMMIT_SECONDS 1.0        /* or time between commits */
#define OFFERS_AHEAD 1            /* offers answered ahead of their puts */
#define COMMITS_IN_FLIGHT 2       /* receipts not yet taken */
#define WAITS 16                  /* answers not yet taken */
#define THREADS_MAX 4
/* Sealed rooms of file chunks kept for the next ones once sent (on the
 * caller's thread, which takes and frees them): malloc gave a freed
 * megabyte back to the system and a sealing thread faulted the next one
 * in page by page (about 8% of its time). The rooms kept and those out
 * stay within CT_BYTES (a kept byte is a byte of the phone's peak: 8 MiB
 * saves most faults, 24 raised the peak by 20 MiB); kept only once
 * files' pieces come (pb__sink_add_piece) and until the walk's files end
 * (pb__sink_keep_none). Rooms under CT_KEEP_MIN come from malloc's bins
 * anyway. */
#define CT_KEEP 32
#define CT_BYTES (8u << 20)
#define CT_KEEP_MIN (64u << 10)
#define CT_ROUND (64u << 10)
/* Smaller chunks are sealed on the caller's thread: handing them over
 * would cost more than sealing them. */
#define INLINE_MAX (64u << 10)
/* Small chunks (a chat stream's, and manifest chunks) go to the sealing
 * threads in batches of this many plaintext bytes: one copy into the
 * batch, one hand-over and one wake-up for all of them. */
#define PACK_BYTES (512u << 10)
#define PACK_MAX 256              /* chunks in one batch */
/* A sealing thread is woken once this many batches wait for one (a
 * wake-up costs about as much as sealing 100 KiB), or when the caller
 * waits for them (drain). */
#define PACK_WAKE 2
/* Plaintext in the ring before another batch waits for the head: batches
 * hold their plaintext until sent, and RING_BYTES of them would double a
 * phone's peak. */
#define PACK_RING_BYTES (2u << 20)

bool pb__sink_pack_off;

/* A chunk of a batch: named by the caller, sealed by a sealing thread
 * under enc at level (a stream's chunks and manifest chunks share
 * batches). */
struct sub {
	name_t name;
	uint8_t *name_to;         /* a file's chunk named on the sealing thread (push_named) */
	const uint8_t *enc;
	int level;                /* 0: pb__seal_named's */
	size_t off, len;          /* in the slot's plain */
	uint8_t *ct;
	size_t ct_len;
};

struct slot {
	name_t name;
	uint8_t *plain;           /* NULL once sealed (or sealed elsewhere) */
	size_t len;
	uint8_t *ct;
	size_t ct_len;
	int rc;
	bool done;                /* under the lock */
	/* The item hash the bytes go into (under the lock): NULL once the
	 * hashing thread is done with them. A slot leaves the ring only once
	 * sealed and hashed. */
	crypto_generichash_state *ih;
	/* Named by the sealing thread that seals it (pb__sink_add_named),
	 * and offered whether or not the state holds it committed (the
	 * repository's answer decides). name_to: where the caller wants the
	 * name (under the lock), NULL once it is there. */
	bool deferred;
	uint8_t *name_to;
	/* A batch of small chunks (nsub > 0): plain holds them one after
	 * the other, each sealed into its own ct; the slot's name, ct and
	 * ct_len are unused. */
	struct sub *subs;
	size_t nsub;
	int level;
	/* A chunk of one's own sealed under enc (NULL: the chunk key) at
	 * level (0: pb__seal_named's); a manifest chunk's are the manifest
	 * key and its level (pb__sink_add_manifest). */
	const uint8_t *enc;
	/* plain is a buffer of the caller's, given back with give(garg)
	 * instead of freed (pb__sink_add_piece). */
	void (*give)(void *garg, uint8_t *buf);
	void *garg;
};

struct batch {
	name_t names[OFFER_BATCH];
	uint8_t *ct[OFFER_BATCH];
	size_t len[OFFER_BATCH];
	bool missing[OFFER_BATCH];
	size_t n, bytes;
	uint64_t last;            /* the ring seq after its last chunk */
};

/* An answer to take, in the order asked. */
struct wait {
	bool commit;
	uint64_t tok;
	struct batch *b;          /* an offer's batch */
	uint64_t mark;            /* a commit's */
	name_t *names;            /* a commit's: what it makes committed */
	size_t n;
	uint64_t bytes_sent;      /* a commit's: bytes sent before it */
};

struct pb__sink_s {
	pb__sink_opts_t o;
	/* The ring: head (next to send) <= claim (next to seal) <= tail. */
	pthread_mutex_t mu;
	pthread_cond_t work, sealed;
	struct slot ring[RING];
	uint64_t head, claim, tail;
	size_t ring_bytes;
	/* Slots holding a lent buffer (pb__sink_add_piece), and how many
	 * may stay once one is added: its lender may wait for one back
	 * (caller's thread only). */
	size_t lent, lent_max;
	bool stop;
	size_t idle;              /* threads waiting for work */
	bool waiting;             /* the caller waits for a sealed slot */
	pthread_t threads[THREADS_MAX];
	size_t nthreads;
	/* The hashing thread: its next slot, and the seq after the last slot
	 * given an item hash (it has nothing to do once there). */
	pthread_cond_t hwork;
	pthread_t hasher;
	bool has_hasher;
	uint64_t hcur, htail;
	size_t unnamed;           /* names whose name_to is not filled yet */
	pb__b2k_t name_k;         /* the chunk names' key, prepared */
	void *zctx;               /* the caller's thread's */
	/* Caller's thread only. */
	/* The batch of small chunks being filled (PACK_BYTES of plain). */
	uint8_t *pack;
	struct sub *pack_subs;
	size_t pack_n, pack_len;
	uint8_t *ct_keep[CT_KEEP]; /* sealed rooms kept (ct_get) */
	size_t ct_cap[CT_KEEP], nkeep, keep_bytes;
	size_t out_bytes;     /* rooms of ct_get's out, by their size */
	bool keep_on;         /* rooms kept: files' pieces come (add_piece) */
	bool keep_none;       /* pb__sink_keep_none: no more kept */
	struct batch *cur;
	struct wait waits[WAITS];
	size_t whead, nwaits, noffers, ncommits;
	name_t *offered;          /* offered since the last commit was sent */
	size_t noffered, cap_offered;
	uint64_t put_upto;        /* ring seqs below this are put */
	bool want_commit;         /* a commit asked for, waiting for its puts */
	uint64_t commit_seq, commit_mark;
	uint64_t added_since_commit;
	uint64_t added;           /* in all, this run */
	double last_commit;
};

/* ---- sealing ---------------------------------------------------------------- */

/* The sealed bytes go into the room push_slot took on the caller's thread. */
static void seal_slot(pb__sink_t *s, struct slot *sl, void *zctx)
{
	if (sl->enc != NULL || sl->level != 0)
		sl->rc = pb__seal_named_level(zctx, sl->level, sl->enc != NULL ? sl->enc : s->o.keys->chunk, sl->name,
					      sl->plain, sl->len, sl->ct, &sl->ct_len);
	else
		sl->rc = pb__seal_named(zctx, s->o.keys->chunk, sl->name, sl->plain, sl->len, sl->ct, &sl->ct_len);
	/* The plaintext stays until the slot leaves: the hashing thread may
	 * still read it. */
}

/* Seals each chunk of a batch; the first error stops it (the batch
 * leaves the ring with that error, the chunks before it unsent). */
static void seal_subs(pb__sink_t *s, struct slot *sl, void *zctx)
{
	for (size_t k = 0; k < sl->nsub && sl->rc == 0; k++) {
		struct sub *u = &sl->subs[k];

		if (u->level != 0)
			sl->rc = pb__seal_named_level(zctx, u->level, u->enc, u->name, sl->plain + u->off, u->len,
						      u->ct, &u->ct_len);
		else
			sl->rc = pb__seal_named(zctx, u->enc, u->name, sl->plain + u->off, u->len, u->ct, &u->ct_len);
	}
}

/* Names the chunks of a slot left unnamed (pb__sink_add_named, or
 * several of a file at once: pb__sink_add_named_many) and hands the names
 * over at once, the caller may be waiting for them. Called and returns
 * with the lock held. */
static void name_slot(pb__sink_t *s, struct slot *sl)
{
	const uint8_t *data[PB__CDC_CUTS_MAX];
	size_t len[PB__CDC_CUTS_MAX];
	uint8_t *out[PB__CDC_CUTS_MAX];
	size_t k;

	pthread_mutex_unlock(&s->mu);
	if (sl->nsub == 0) {
		pb__chunk_name(s->o.keys->name, sl->plain, sl->len, sl->name);
	} else {
		for (k = 0; k < sl->nsub; k++) {
			data[k] = sl->plain + sl->subs[k].off;
			len[k] = sl->subs[k].len;
			out[k] = sl->subs[k].name;
		}
		pb__chunk_names_many(&s->name_k, data, len, out, sl->nsub);
	}
	pthread_mutex_lock(&s->mu);
	if (sl->nsub == 0) {
		memcpy(sl->name_to, sl->name, PB_STORE_NAME_LEN);
		s->unnamed--;
	}
	for (k = 0; k < sl->nsub; k++) {
		memcpy(sl->subs[k].name_to, sl->subs[k].name, PB_STORE_NAME_LEN);
		s->unnamed--;
	}
	sl->name_to = NULL;
	if (s->waiting)
		pthread_cond_broadcast(&s->sealed);
}

static void *sealer(void *arg)
{
	pb__sink_t *s = arg;
	ZSTD_CCtx *z = ZSTD_createCCtx();

	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		struct slot *sl;

		if (s->claim == s->tail) {
			s->idle++;
			pthread_cond_wait(&s->work, &s->mu);
			s->idle--;
			continue;
		}
		sl = &s->ring[s->claim++ % RING];
		if (sl->done)
			continue; /* sealed elsewhere */
		if (sl->deferred)
			name_slot(s, sl); /* first */
		pthread_mutex_unlock(&s->mu);
		if (z == NULL)
			sl->rc = PB_ENOMEM;
		else if (sl->nsub > 0)
			seal_subs(s, sl, z);
		else
			seal_slot(s, sl, z);
		pthread_mutex_lock(&s->mu);
		sl->done = true;
		if (s->waiting)
			pthread_cond_broadcast(&s->sealed);
	}
	pthread_mutex_unlock(&s->mu);
	ZSTD_freeCCtx(z);
	return NULL;
}

/* Feeds the slots that carry an item hash into it, in ring order (slots
 * before head left the ring: none of them carried one still unhashed). */
static void *hasher(void *arg)
{
	pb__sink_t *s = arg;

	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		struct slot *sl;
		crypto_generichash_state *ih;

		if (s->hcur < s->head)
			s->hcur = s->head;
		if (s->hcur >= s->htail) {
			pthread_cond_wait(&s->hwork, &s->mu);
			continue;
		}
		sl = &s->ring[s->hcur % RING];
		if ((ih = sl->ih) != NULL) {
			pthread_mutex_unlock(&s->mu);
			crypto_generichash_update(ih, sl->plain, sl->len);
			pthread_mutex_lock(&s->mu);
			sl->ih = NULL;
		}
		s->hcur++;
		if (s->waiting)
			pthread_cond_broadcast(&s->sealed);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- answers ------------------------------------------------------------------ */

static int put_batch(pb__sink_t *s, struct batch *b)
{
	pb_repo_t *r = s->o.repo;
	int rc = 0;

	for (size_t k = 0; k < b->n && rc == 0; k++) {
		if (!b->missing[k])
			continue;
		/* A dry run counts what it would send. */
		if (!s->o.dry_run)
			rc = r->ops->put(r, b->names[k], b->ct[k], b->len[k]);
		s->o.res->chunks_sent++;
		s->o.res->bytes_sent += b->len[k];
	}
	s->o.pr->p.chunks_sent = s->o.res->chunks_sent;
	s->o.pr->p.bytes_sent = s->o.res->bytes_sent;
	/* Every offered name is in the repository after the next commit:
	 * either it was there already, or it was just sent. */
	if (rc == 0 && !s->o.dry_run &&
	    (rc = pb__grow((void **)&s->offered, &s->cap_offered, s->noffered + b->n, sizeof(name_t))) == 0) {
		memcpy(s->offered + s->noffered, b->names, b->n * sizeof(name_t));
		s->noffered += b->n;
	}
	s->put_upto = b->last;
	return rc;
}

/* A room's size: malloc's (asked: what was asked, where malloc does not
 * say; 0 keeps none). */
static size_t ct_cap(uint8_t *ct, size_t asked)
{
#ifdef __linux__
	(void)asked;
	return malloc_usable_size(ct);
#else
	(void)ct;
	return asked;
#endif
}

static uint8_t *keep_take(pb__sink_t *s, size_t i)
{
	uint8_t *ct = s->ct_keep[i];

	s->keep_bytes -= s->ct_cap[i];
	s->nkeep--;
	s->ct_keep[i] = s->ct_keep[s->nkeep];
	s->ct_cap[i] = s->ct_cap[s->nkeep];
	return ct;
}

/* Room for a chunk of len bytes sealed: the smallest kept one that
 * fits, or a new one (kept ones freed first while all would pass
 * CT_BYTES). */
static uint8_t *ct_get(pb__sink_t *s, size_t len)
{
	size_t need = PB_CHUNK_CT_LEN_MAX(len), best = s->nkeep;
	uint8_t *ct;

	if (need < CT_KEEP_MIN)
		return malloc(need);
	for (size_t i = 0; i < s->nkeep; i++)
		if (s->ct_cap[i] >= need && (best == s->nkeep || s->ct_cap[i] < s->ct_cap[best]))
			best = i;
	if (best < s->nkeep) {
		s->out_bytes += s->ct_cap[best];
		return keep_take(s, best);
	}
	if (!s->keep_on || s->keep_none)
		return malloc(need); /* none kept: as asked */
	need = (need + CT_ROUND - 1) / CT_ROUND * CT_ROUND; /* to fit more of the next ones */
	while (s->nkeep > 0 && s->keep_bytes + s->out_bytes + need > CT_BYTES)
		free(keep_take(s, s->nkeep - 1));
	if ((ct = malloc(need)) != NULL)
		s->out_bytes += ct_cap(ct, need);
	return ct;
}

/* A sealed room sent: kept for ct_get while there is place, else freed. */
static void ct_give(pb__sink_t *s, uint8_t *ct)
{
	size_t cap = ct != NULL ? ct_cap(ct, 0) : 0;

	if (cap < CT_KEEP_MIN) {
		free(ct);
		return;
	}
	s->out_bytes -= cap < s->out_bytes ? cap : s->out_bytes;
	if (s->keep_on && !s->keep_none && s->nkeep < CT_KEEP && s->keep_bytes + s->out_bytes + cap <= CT_BYTES) {
		s->ct_keep[s->nkeep] = ct;
		s->ct_cap[s->nkeep++] = cap;
		s->keep_bytes += cap;
		return;
	}
	free(ct);
}

void pb__sink_keep_none(pb__sink_t *s)
{
	s->keep_none = true;
	while (s->nkeep > 0)
		free(keep_take(s, s->nkeep - 1));
}

static void batch_free(pb__sink_t *s, struct batch *b)
{
	if (b == NULL)
		return;
	for (size_t k = 0; k < b->n; k++)
		ct_give(s, b->ct[k]);
	free(b);
}

static int push_wait(pb__sink_t *s, const struct wait *w)
{
	if (s->nwaits == WAITS)
		return PB_ESTATE; /* the windows keep far fewer */
	s->waits[(s->whead + s->nwaits) % WAITS] = *w;
	s->nwaits++;
	if (w->commit)
		s->ncommits++;
	else
		s->noffers++;
	return 0;
}

static int send_commit(pb__sink_t *s);

/* Takes the oldest answer. */
static int take_one(pb__sink_t *s)
{
	struct wait w = s->waits[s->whead];
	pb_repo_t *r = s->o.repo;
	int rc;

	s->whead = (s->whead + 1) % WAITS;
	s->nwaits--;
	if (!w.commit) {
		s->noffers--;
		rc = r->ops->missing_recv(r, w.tok, (const pb_repo_name_t *)w.b->names, w.b->n, w.b->missing);
		if (rc == 0)
			rc = put_batch(s, w.b);
		batch_free(s, w.b);
		if (rc == 0 && s->want_commit && s->put_upto >= s->commit_seq)
			rc = send_commit(s);
		return rc;
	}
	s->ncommits--;
	rc = r->ops->commit_recv(r, w.tok);
	/* The receipt: from here on these chunks are never sent again. */
	if (rc == 0)
		rc = s->o.durable(s->o.arg, w.mark, (const name_t *)w.names, w.n);
	if (rc == 0)
		s->o.pr->p.bytes_committed = w.bytes_sent;
	free(w.names);
	return rc;
}

static int send_commit(pb__sink_t *s)
{
	struct wait w;
	pb_repo_t *r = s->o.repo;
	int rc;

	memset(&w, 0, sizeof(w));
	w.commit = true;
	w.mark = s->commit_mark;
	w.names = s->offered;
	w.n = s->noffered;
	w.bytes_sent = s->o.res->bytes_sent;
	s->want_commit = false;
	if ((rc = r->ops->commit_send(r, &w.tok)) != 0)
		return rc;
	s->offered = NULL;
	s->noffered = s->cap_offered = 0;
	if ((rc = push_wait(s, &w)) != 0) {
		free(w.names);
		return rc;
	}
	while (rc == 0 && s->ncommits > COMMITS_IN_FLIGHT)
		rc = take_one(s);
	return rc;
}

/* Offers the batch being filled; puts the one before once this is out. */
static int offer(pb__sink_t *s)
{
	struct batch *b = s->cur;
	pb_repo_t *r = s->o.repo;
	struct wait w;
	int rc;

	if (b == NULL || b->n == 0)
		return 0;
	s->cur = NULL;
	memset(&w, 0, sizeof(w));
	w.b = b;
	if ((rc = r->ops->missing_send(r, (const pb_repo_name_t *)b->names, b->n, &w.tok)) != 0 ||
	    (rc = push_wait(s, &w)) != 0) {
		batch_free(s, b);
		return rc;
	}
	while (rc == 0 && s->noffers > OFFERS_AHEAD)
		rc = take_one(s);
	return rc;
}

/* ---- the ring (caller's thread) ---------------------------------------------- */

/* A slot's plaintext leaves: freed, or given back to whoever lent it. */
static void plain_free(struct slot *sl)
{
	if (sl->give != NULL && sl->plain != NULL)
		sl->give(sl->garg, sl->plain);
	else
		free(sl->plain);
	sl->plain = NULL;
	sl->give = NULL;
}

static void subs_free(struct slot *sl)
{
	for (size_t k = 0; k < sl->nsub; k++)
		free(sl->subs[k].ct);
	free(sl->subs);
	sl->subs = NULL;
	sl->nsub = 0;
}

/* Moves one sealed chunk into the batch being filled (ct is the batch's
 * from here on); last: the ring seq put once this chunk is. */
static int take_chunk(pb__sink_t *s, const name_t name, uint8_t *ct, size_t ct_len, uint64_t last)
{
	struct batch *b;

	if (s->cur == NULL) {
		if ((s->cur = malloc(sizeof(*s->cur))) == NULL) {
			free(ct);
			return PB_ENOMEM;
		}
		s->cur->n = s->cur->bytes = 0;
	}
	b = s->cur;
	memcpy(b->names[b->n], name, PB_STORE_NAME_LEN);
	b->ct[b->n] = ct;
	b->len[b->n] = ct_len;
	b->n++;
	b->bytes += ct_len;
	b->last = last;
	/* A batch closes when full, or when a commit waits for its chunks. */
	if (b->n == OFFER_BATCH || b->bytes >= BATCH_BYTES || (s->want_commit && last >= s->commit_seq))
		return offer(s);
	return 0;
}

/* Moves the sealed slot at the head into the batch being filled: a batch
 * of small chunks one by one, in order (only its last one puts the slot
 * whole, so that a commit behind it waits for all of them). */
static int take_slot(pb__sink_t *s)
{
	struct slot *sl = &s->ring[s->head % RING];
	int rc = sl->rc;
	uint8_t *ct = sl->ct;

	pthread_mutex_lock(&s->mu);
	s->head++;
	/* A slot sealed elsewhere leaves without a thread claiming it. */
	if (s->claim < s->head)
		s->claim = s->head;
	s->ring_bytes -= sl->len;
	pthread_mutex_unlock(&s->mu);
	if (sl->give != NULL)
		s->lent--;
	plain_free(sl);
	sl->ct = NULL;
	if (rc != 0) {
		free(ct);
		subs_free(sl);
		return rc;
	}
	if (sl->nsub == 0)
		return take_chunk(s, sl->name, ct, sl->ct_len, s->head);
	for (size_t k = 0; k < sl->nsub && rc == 0; k++) {
		struct sub *u = &sl->subs[k];

		/* Counted for the next commit once sealed, as a chunk sealed
		 * on the caller's thread is: by its sealed bytes. */
		s->added_since_commit += u->ct_len;
		s->added += u->ct_len;
		rc = take_chunk(s, u->name, u->ct, u->ct_len, k + 1 == sl->nsub ? s->head : s->head - 1);
		u->ct = NULL;
	}
	subs_free(sl);
	return rc;
}

/* Takes every sealed slot at the head, waiting for the head while the
 * ring is full, holding limit bytes or more (with all: until the ring is
 * empty). */
static int drain_to(pb__sink_t *s, bool all, size_t limit)
{
	int rc = 0;

	while (rc == 0 && s->head < s->tail) {
		struct slot *sl = &s->ring[s->head % RING];
		bool done;

		pthread_mutex_lock(&s->mu);
		while ((!sl->done || sl->ih != NULL) &&
		       (all || s->tail - s->head == RING || s->ring_bytes >= limit || s->lent > s->lent_max)) {
			/* Batches not woken for yet (pack_push) are sealed now. */
			if (s->claim < s->tail && s->idle > 0)
				pthread_cond_broadcast(&s->work);
			s->waiting = true;
			pthread_cond_wait(&s->sealed, &s->mu);
			s->waiting = false;
		}
		done = sl->done && sl->ih == NULL;
		pthread_mutex_unlock(&s->mu);
		if (!done)
			break;
		rc = take_slot(s);
	}
	return rc;
}

static int drain(pb__sink_t *s, bool all)
{
	return drain_to(s, all, RING_BYTES);
}

static int pack_push(pb__sink_t *s);

/* enc and level: how a sealing thread seals plain (struct slot). */
static int push_slot(pb__sink_t *s, const uint8_t name[PB_STORE_NAME_LEN], uint8_t *plain, size_t len,
		     uint8_t *ct, size_t ct_len, crypto_generichash_state *ih, uint8_t *name_to, const uint8_t *enc,
		     int level)
{
	struct slot *sl;
	int rc;

	/* The batch of small chunks added before goes first, and room in
	 * the ring: the oldest slots leave once sealed (drain waits while
	 * there is none). */
	if ((rc = pack_push(s)) != 0 || (rc = drain(s, false)) != 0) {
		free(plain);
		free(ct);
		return rc;
	}
	/* Bytes to seal get their sealed room here, on the caller's thread
	 * that frees it (as pack_add's): taken by a sealing thread, it came
	 * from that thread's arena, which gave its top back to the system
	 * and faulted the pages in again chunk after chunk. */
	if (plain != NULL && (ct = ct_get(s, len)) == NULL) {
		free(plain);
		return PB_ENOMEM;
	}
	pthread_mutex_lock(&s->mu);
	sl = &s->ring[s->tail % RING];
	sl->subs = NULL;
	sl->nsub = 0;
	sl->deferred = name_to != NULL;
	sl->name_to = name_to;
	if (name_to != NULL)
		s->unnamed++;
	else
		memcpy(sl->name, name, PB_STORE_NAME_LEN);
	sl->plain = plain;
	sl->len = len;
	sl->ct = ct;
	sl->ct_len = ct_len;
	sl->rc = 0;
	sl->done = plain == NULL;
	sl->ih = ih;
	sl->enc = enc;
	sl->level = level;
	sl->give = NULL;
	s->tail++;
	s->ring_bytes += len;
	if (!sl->done && s->idle > 0)
		pthread_cond_signal(&s->work);
	if (ih != NULL) {
		s->htail = s->tail;
		pthread_cond_signal(&s->hwork);
	}
	pthread_mutex_unlock(&s->mu);
	s->added_since_commit += plain != NULL ? len : ct_len;
	s->added += plain != NULL ? len : ct_len;
	/* Whatever is sealed moves on without waiting. */
	return drain(s, false);
}

/* Hands the batch of small chunks to the sealing threads as one slot. */
static int pack_push(pb__sink_t *s)
{
	struct slot *sl;
	int rc;

	if (s->pack_n == 0)
		return 0;
	if ((rc = drain_to(s, false, PACK_RING_BYTES)) != 0)
		return rc;
	pthread_mutex_lock(&s->mu);
	sl = &s->ring[s->tail % RING];
	memset(sl->name, 0, PB_STORE_NAME_LEN);
	sl->deferred = false;
	sl->name_to = NULL;
	sl->plain = s->pack;
	sl->len = s->pack_len;
	sl->ct = NULL;
	sl->ct_len = 0;
	sl->rc = 0;
	sl->done = false;
	sl->ih = NULL;
	sl->subs = s->pack_subs;
	sl->nsub = s->pack_n;
	sl->level = 0;
	sl->enc = NULL;
	sl->give = NULL;
	s->tail++;
	s->ring_bytes += s->pack_len;
	if (s->idle > 0 && s->tail - s->claim >= PACK_WAKE)
		pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->mu);
	s->pack = NULL;
	s->pack_subs = NULL;
	s->pack_n = s->pack_len = 0;
	return drain(s, false);
}

/* Copies a small named chunk into the batch being filled. */
static int pack_add(pb__sink_t *s, const uint8_t *plain, size_t len, const uint8_t name[PB_STORE_NAME_LEN],
		    const uint8_t *enc, int level)
{
	struct sub *u;
	int rc;

	if (s->pack_n > 0 && (s->pack_n == PACK_MAX || s->pack_len + len > PACK_BYTES) &&
	    (rc = pack_push(s)) != 0)
		return rc;
	if (s->pack == NULL) {
		s->pack = malloc(PACK_BYTES > len ? PACK_BYTES : len);
		s->pack_subs = malloc(PACK_MAX * sizeof(*s->pack_subs));
		if (s->pack == NULL || s->pack_subs == NULL) {
			free(s->pack);
			free(s->pack_subs);
			s->pack = NULL;
			s->pack_subs = NULL;
			return PB_ENOMEM;
		}
	}
	/* The sealed bytes' room is taken here, on the caller's thread that
	 * frees it: a sealing thread's malloc would grow an arena of its own
	 * that keeps what the caller frees. */
	u = &s->pack_subs[s->pack_n];
	if ((u->ct = ct_get(s, len)) == NULL)
		return PB_ENOMEM;
	s->pack_n++;
	memcpy(u->name, name, PB_STORE_NAME_LEN);
	u->name_to = NULL;
	u->enc = enc;
	u->level = level;
	u->off = s->pack_len;
	u->len = len;
	u->ct_len = 0;
	memcpy(s->pack + s->pack_len, plain, len);
	s->pack_len += len;
	return 0;
}

void pb__sink_hash_wait(pb__sink_t *s)
{
	pthread_mutex_lock(&s->mu);
	while ((s->hcur < s->htail || s->unnamed > 0) && !s->stop) {
		s->waiting = true;
		pthread_cond_wait(&s->sealed, &s->mu);
		s->waiting = false;
	}
	pthread_mutex_unlock(&s->mu);
}

/* Bytes that get no slot of their own go into the item hash here, after
 * every slot before them. */
static void hash_here(pb__sink_t *s, crypto_generichash_state *ih, const uint8_t *plain, size_t len)
{
	if (ih == NULL)
		return;
	pb__sink_hash_wait(s);
	crypto_generichash_update(ih, plain, len);
}

/* level 0: zstd's level for chunks (pb__seal_named). */
/* Seals a chunk on the caller's thread (level 0: the default level) and
 * queues it sealed. */
static int seal_here(pb__sink_t *s, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *enc, int level,
		     const uint8_t *plain, size_t len)
{
	uint8_t *ct;
	size_t ct_len;
	int rc;

	if ((ct = ct_get(s, len)) == NULL)
		return PB_ENOMEM;
	rc = level != 0 ? pb__seal_named_level(s->zctx, level, enc, name, plain, len, ct, &ct_len)
			: pb__seal_named(s->zctx, enc, name, plain, len, ct, &ct_len);
	if (rc != 0) {
		free(ct);
		return rc;
	}
	return push_slot(s, name, NULL, 0, ct, ct_len, NULL, NULL, NULL, 0);
}

/* named: name holds plain's name already (pb__sink_add_known). */
static int add(pb__sink_t *s, const uint8_t *plain, size_t len, uint8_t name[PB_STORE_NAME_LEN],
	       crypto_generichash_state *ih, int level, bool named)
{
	uint8_t *copy;

	if (len > PB_CHUNK_PLAIN_MAX)
		return PB_ETOOBIG;
	if (!named)
		pb__chunk_name(s->o.keys->name, plain, len, name);
	if (pb_backup_state_is_committed(s->o.st, name)) {
		hash_here(s, ih, plain, len);
		return 0;
	}
	if (level != 0 && ih == NULL && s->nthreads > 0 && len <= INLINE_MAX && !pb__sink_pack_off)
		return pack_add(s, plain, len, name, s->o.keys->chunk, level);
	if (!s->has_hasher || len <= INLINE_MAX) {
		hash_here(s, ih, plain, len);
		return seal_here(s, name, s->o.keys->chunk, level, plain, len);
	}
	if ((copy = malloc(len)) == NULL)
		return PB_ENOMEM;
	memcpy(copy, plain, len);
	return push_slot(s, name, copy, len, NULL, 0, ih, NULL, NULL, 0);
}

int pb__sink_add_named(pb__sink_t *s, const uint8_t *plain, size_t len, uint8_t *name_to)
{
	uint8_t *copy;

	if (len > PB_CHUNK_PLAIN_MAX)
		return PB_ETOOBIG;
	if (s->nthreads == 0 || len <= INLINE_MAX)
		return pb__sink_add_hashed(s, plain, len, name_to, NULL);
	if ((copy = malloc(len)) == NULL)
		return PB_ENOMEM;
	memcpy(copy, plain, len);
	return push_slot(s, NULL, copy, len, NULL, 0, NULL, name_to, NULL, 0);
}

/* A file's chunks one after the other in plain (total bytes), in one
 * slot: a batch of chunks as pack_push's, each under the chunk key. With
 * name_to, its sealing thread names them all at once first; with names,
 * they are named already. give: plain is lent (pb__sink_add_piece). */
static int push_file(pb__sink_t *s, uint8_t *plain, size_t total, const size_t *len, size_t n,
		     uint8_t *const *name_to, const name_t *names, void (*give)(void *, uint8_t *), void *garg)
{
	struct slot *sl;
	struct sub *subs;
	size_t off = 0, k;

	if ((subs = calloc(n, sizeof(*subs))) == NULL)
		goto out_nomem;
	/* The sealed room is taken on this thread, which frees it (pack_add). */
	for (k = 0; k < n; k++) {
		struct sub *u = &subs[k];

		if ((u->ct = ct_get(s, len[k])) == NULL) {
			while (k-- > 0)
				free(subs[k].ct);
			free(subs);
			goto out_nomem;
		}
		if (names != NULL)
			memcpy(u->name, names[k], PB_STORE_NAME_LEN);
		else
			u->name_to = name_to[k];
		u->enc = s->o.keys->chunk;
		u->off = off;
		u->len = len[k];
		off += len[k];
	}
	pthread_mutex_lock(&s->mu);
	sl = &s->ring[s->tail % RING];
	memset(sl->name, 0, PB_STORE_NAME_LEN);
	sl->deferred = names == NULL;
	sl->name_to = NULL;
	if (names == NULL)
		s->unnamed += n;
	sl->plain = plain;
	sl->give = give;
	sl->garg = garg;
	sl->len = total;
	sl->ct = NULL;
	sl->ct_len = 0;
	sl->rc = 0;
	sl->done = false;
	sl->ih = NULL;
	sl->subs = subs;
	sl->nsub = n;
	sl->level = 0;
	sl->enc = NULL;
	s->tail++;
	s->ring_bytes += total;
	if (s->idle > 0)
		pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->mu);
	if (give != NULL)
		s->lent++;
	return drain(s, false);

out_nomem:
	if (give != NULL)
		give(garg, plain);
	else
		free(plain);
	return PB_ENOMEM;
}

/* A file's chunks cut from one buffer, copied into one slot whose
 * sealing thread names them all at once, then seals them one by one. */
static int push_named(pb__sink_t *s, const uint8_t *const *data, const size_t *len, size_t n, uint8_t *const *name_to)
{
	uint8_t *plain;
	size_t total = 0, k;
	int rc;

	for (k = 0; k < n; k++)
		total += len[k];
	if ((rc = pack_push(s)) != 0 || (rc = drain(s, false)) != 0)
		return rc;
	if ((plain = malloc(total > 0 ? total : 1)) == NULL)
		return PB_ENOMEM;
	for (k = 0, total = 0; k < n; k++) {
		memcpy(plain + total, data[k], len[k]);
		total += len[k];
	}
	return push_file(s, plain, total, len, n, name_to, NULL, NULL, NULL);
}

int pb__sink_add_piece(pb__sink_t *s, uint8_t *buf, const size_t *len, const name_t *names, size_t n,
		       void (*give)(void *garg, uint8_t *buf), void *garg, size_t keep)
{
	size_t total = 0, k;
	int rc;

	for (k = 0; k < n; k++) {
		if (len[k] > PB_CHUNK_PLAIN_MAX) {
			give(garg, buf);
			return PB_ETOOBIG;
		}
		total += len[k];
	}
	if (n == 0 || s->nthreads == 0) {
		/* No sealing thread: each chunk sealed here (copied as need be). */
		for (k = 0, total = 0, rc = 0; k < n && rc == 0; k++) {
			rc = pb__sink_add_known(s, buf + total, len[k], names[k]);
			total += len[k];
		}
		give(garg, buf);
		return rc;
	}
	if ((rc = pack_push(s)) != 0 || (rc = drain(s, false)) != 0) {
		give(garg, buf);
		return rc;
	}
	/* drain waits for the head while more than keep are lent. */
	s->lent_max = keep;
	s->keep_on = true;
	rc = push_file(s, buf, total, len, n, NULL, names, give, garg);
	s->lent_max = SIZE_MAX;
	return rc;
}

int pb__sink_add_named_many(pb__sink_t *s, const uint8_t *const *data, const size_t *len, size_t n,
			    uint8_t *const *name_to)
{
	size_t k;
	int rc = 0;

	for (k = 0; k < n; k++)
		if (len[k] > PB_CHUNK_PLAIN_MAX)
			return PB_ETOOBIG;
	if (n > PB__CDC_CUTS_MAX) {
		if ((rc = pb__sink_add_named_many(s, data, len, PB__CDC_CUTS_MAX, name_to)) != 0)
			return rc;
		return pb__sink_add_named_many(s, data + PB__CDC_CUTS_MAX, len + PB__CDC_CUTS_MAX,
					       n - PB__CDC_CUTS_MAX, name_to + PB__CDC_CUTS_MAX);
	}
	if (n == 0)
		return 0;
	if (s->nthreads > 0 && n > 1)
		return push_named(s, data, len, n, name_to);
	if (s->nthreads > 0)
		return pb__sink_add_named(s, data[0], len[0], name_to[0]);
	/* No sealing thread: named here, all at once. */
	pb__chunk_names_many(&s->name_k, data, len, name_to, n);
	for (k = 0; k < n && rc == 0; k++)
		rc = pb__sink_add_known(s, data[k], len[k], name_to[k]);
	return rc;
}

int pb__sink_add_hashed(pb__sink_t *s, const uint8_t *plain, size_t len, uint8_t name[PB_STORE_NAME_LEN],
			crypto_generichash_state *ih)
{
	return add(s, plain, len, name, ih, 0, false);
}

int pb__sink_add_known(pb__sink_t *s, const uint8_t *plain, size_t len, const uint8_t name[PB_STORE_NAME_LEN])
{
	uint8_t copy[PB_STORE_NAME_LEN];

	memcpy(copy, name, PB_STORE_NAME_LEN);
	return add(s, plain, len, copy, NULL, 0, true);
}

int pb__sink_add_known_level(pb__sink_t *s, const uint8_t *plain, size_t len, const uint8_t name[PB_STORE_NAME_LEN],
			     int level)
{
	uint8_t copy[PB_STORE_NAME_LEN];

	memcpy(copy, name, PB_STORE_NAME_LEN);
	return add(s, plain, len, copy, NULL, len <= INLINE_MAX ? level : 0, true);
}

int pb__sink_add(pb__sink_t *s, const uint8_t *plain, size_t len, uint8_t name[PB_STORE_NAME_LEN])
{
	return add(s, plain, len, name, NULL, 0, false);
}

int pb__sink_add_level(pb__sink_t *s, const uint8_t *plain, size_t len, uint8_t name[PB_STORE_NAME_LEN], int level)
{
	return add(s, plain, len, name, NULL, len <= INLINE_MAX ? level : 0, false);
}

int pb__sink_add_sealed(pb__sink_t *s, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	uint8_t *copy;

	if (pb_backup_state_is_committed(s->o.st, name))
		return 0;
	if ((copy = ct_get(s, len)) == NULL) /* (room enough for len) */
		return PB_ENOMEM;
	memcpy(copy, ct, len);
	return push_slot(s, name, NULL, 0, copy, len, NULL, NULL, NULL, 0);
}

int pb__sink_add_manifest(pb__sink_t *s, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *plain, size_t len,
			  int level)
{
	const uint8_t *enc = s->o.keys->manifest;
	uint8_t *copy;

	if (len > PB_CHUNK_PLAIN_MAX)
		return PB_ETOOBIG;
	if (pb_backup_state_is_committed(s->o.st, name))
		return 0;
	if (s->nthreads > 0 && len <= INLINE_MAX && !pb__sink_pack_off)
		return pack_add(s, plain, len, name, enc, level);
	if (s->nthreads == 0)
		return seal_here(s, name, enc, level, plain, len);
	if ((copy = malloc(len)) == NULL)
		return PB_ENOMEM;
	memcpy(copy, plain, len);
	return push_slot(s, name, copy, len, NULL, 0, NULL, NULL, enc, level);
}

int pb__sink_pump(pb__sink_t *s)
{
	uint64_t head = s->head;
	int rc = drain_to(s, false, SIZE_MAX);

	return rc < 0 ? rc : s->head != head;
}

bool pb__sink_threaded(const pb__sink_t *s)
{
	return s->nthreads > 0;
}

bool pb__sink_due(const pb__sink_t *s)
{
	if (s->want_commit)
		return false; /* one asked for already */
	return s->added_since_commit >= (s->added >= COMMIT_WIDE_AFTER ? COMMIT_BYTES_WIDE : COMMIT_BYTES) ||
	       (s->added_since_commit > 0 && pb__now_s() - s->last_commit >= COMMIT_SECONDS);
}

int pb__sink_commit(pb__sink_t *s, uint64_t mark, bool wait)
{
	int rc = 0;

	s->added_since_commit = 0;
	s->last_commit = pb__now_s();
	/* The chunks waiting in a batch are added before the commit. */
	if ((rc = pack_push(s)) != 0)
		return rc;
	if (!s->o.dry_run) {
		s->want_commit = true;
		s->commit_seq = s->tail;
		s->commit_mark = mark;
		if (s->put_upto >= s->commit_seq)
			rc = send_commit(s); /* nothing left to put for it */
	}
	if (rc != 0 || !wait)
		return rc;
	if ((rc = drain(s, true)) == 0)
		rc = offer(s);
	return rc != 0 ? rc : pb__sink_settle(s);
}

int pb__sink_settle(pb__sink_t *s)
{
	int rc = 0;

	while (rc == 0 && s->nwaits > 0)
		rc = take_one(s);
	return rc;
}

/* ---- life ------------------------------------------------------------------------ */

int pb__sink_new(const pb__sink_opts_t *o, pb__sink_t **out)
{
	pb__sink_t *s;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t want = ncpu > 1 ? (size_t)(ncpu < THREADS_MAX ? ncpu : THREADS_MAX) : 0;

	*out = NULL;
	if (sodium_init() < 0)
		return PB_ENOMEM;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return PB_ENOMEM;
	s->o = *o;
	s->lent_max = SIZE_MAX;
	s->last_commit = pb__now_s();
	pb__b2k_init(&s->name_k, o->keys->name, sizeof(o->keys->name), PB_STORE_NAME_LEN, NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->sealed, NULL);
	pthread_cond_init(&s->hwork, NULL);
	while (s->nthreads < want && pthread_create(&s->threads[s->nthreads], NULL, sealer, s) == 0)
		s->nthreads++;
	/* Without a second core the caller's thread hashes items itself. */
	if (s->nthreads > 0)
		s->has_hasher = pthread_create(&s->hasher, NULL, hasher, s) == 0;
	if ((s->zctx = ZSTD_createCCtx()) == NULL) {
		pb__sink_free(s);
		return PB_ENOMEM;
	}
	*out = s;
	return 0;
}

void pb__sink_free(pb__sink_t *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->work);
	pthread_cond_broadcast(&s->hwork);
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	if (s->has_hasher)
		pthread_join(s->hasher, NULL);
	for (uint64_t q = s->head; q < s->tail; q++) {
		plain_free(&s->ring[q % RING]);
		free(s->ring[q % RING].ct);
		subs_free(&s->ring[q % RING]);
	}
	for (size_t k = 0; k < s->pack_n; k++)
		free(s->pack_subs[k].ct);
	free(s->pack);
	free(s->pack_subs);
	for (size_t i = 0; i < s->nwaits; i++) {
		struct wait *w = &s->waits[(s->whead + i) % WAITS];

		batch_free(s, w->b);
		free(w->names);
	}
	batch_free(s, s->cur);
	for (size_t i = 0; i < s->nkeep; i++)
		free(s->ct_keep[i]);
	free(s->offered);
	ZSTD_freeCCtx(s->zctx);
	sodium_memzero(&s->name_k, sizeof(s->name_k)); /* the name key's block and state */
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->sealed);
	pthread_cond_destroy(&s->hwork);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
