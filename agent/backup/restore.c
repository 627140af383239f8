/* Restore, verify and fetch: a snapshot's manifest walked, the items
 * wanted rebuilt from their chunks, checked against the content hash the
 * backup recorded, and written through the provider in one transaction
 * (restore), only checked (verify), or handed back (fetch). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zstd.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/internal.h"
#include "agent/backup/restore-int.h"
#include "agent/util/fsutil.h"

#define FETCH_WINDOW 64               /* chunk requests in flight on restore ... */
#define FETCH_BYTES (16u << 20)       /* ... and the bytes they are expected to bring */
/* Chunks of the items collected from the manifest before they are fetched:
 * the window stays full across the manifest's chunks. */
#define FETCH_BATCH 8192

/* --- Resuming a restore ------------------------------------------------------- */

/* Chunks fetched by a restore stay in HOME/restore-cache until it
 * completes (agent/backup/restore-cache.c). */
static bool caching(const struct restore *r)
{
	/* A few chunks by id are cheaper to fetch again than to keep. */
	return r->txn != NULL && r->exact_id == NULL && !r->fast && !r->res->by_index && !r->o->no_resume;
}

/* A chunk an earlier run noted in a large item's staged file is read back
 * and checked here, before the fetches are planned: one that does not
 * match is fetched like one never kept. */
static bool cache_has(struct restore *r, const uint8_t name[PB_STORE_NAME_LEN])
{
	return caching(r) && pb__cache_check(r->cache, r->keys.name, name);
}

/* An item written into its temporary file on the write queue's thread
 * (fetch_items): its chunks are noted in the cache as places in that file,
 * not copied into it. */
static bool staged_item(const struct restore *r, const struct want_item *w)
{
	return r->txn != NULL && !w->m.slice && w->m.size > PB_CDC_WHOLE_MAX;
}

/* --- Items written on the write queue's thread ----------------------------- */

/* A full restore into a folder hands its items to the folder's writer
 * (agent/kinds/device-writer.c: folders and files created, chats streamed,
 * large files moved into place; a third of the restoring thread's time,
 * most of it the kernel's) on the write queue's thread, in order, in
 * batches of DLV_ITEMS items or DLV_BYTES bytes, while the restoring
 * thread receives the next chunks. Only the folder's writer: another
 * provider is called from the restoring thread as always. */
#define DLV_ITEMS 256
#define DLV_BYTES (1u << 20)
/* An item smaller than this is copied into its batch and its buffer freed
 * here: a million messages' buffers freed on the other thread would each
 * take the allocator's lock of this thread's arena. */
#define DLV_COPY (64u << 10)

struct dlv {
	pb_item_t it;
	uint8_t *data; /* owned, or NULL: the bytes are at bytes_at in the batch */
	size_t bytes_at;
	/* Offsets + 1 into the batch's strings (0: NULL): they are copied,
	 * the collected items are freed before the batch has run. */
	size_t id, path, after, file;
};

struct dbatch {
	const pb_provider_t *prov;
	void *txn;
	struct dlv *v;
	size_t n, cap;
	char *s; /* strings, and the bytes of items copied in */
	size_t slen, scap;
	size_t bytes;
};

/* Appends n bytes at p to the batch's strings; *off: their offset + 1. */
static int dbatch_put(struct dbatch *b, const void *p, size_t n, size_t *off)
{
	if (pb__grow((void **)&b->s, &b->scap, b->slen + n, 1) != 0)
		return PB_ENOMEM;
	if (n > 0)
		memcpy(b->s + b->slen, p, n);
	*off = b->slen + 1;
	b->slen += n;
	return 0;
}

static int dbatch_str(struct dbatch *b, const char *str, size_t *off)
{
	*off = 0;
	return str == NULL ? 0 : dbatch_put(b, str, strlen(str) + 1, off);
}

static const char *dbatch_at(const struct dbatch *b, size_t off)
{
	return off == 0 ? NULL : b->s + off - 1;
}

/* On the queue's thread: each item written in order (a temporary file is
 * lent for the call, then removed if still there, as pb__assembly_drop
 * does); after a failure (skip, or this batch's) only freed. */
static int dbatch_run(void *arg, bool skip)
{
	struct dbatch *b = arg;
	int rc = 0;

	for (size_t i = 0; i < b->n; i++) {
		struct dlv *d = &b->v[i];
		const char *file = dbatch_at(b, d->file);

		if (!skip && rc == 0) {
			d->it.id = dbatch_at(b, d->id);
			d->it.path = dbatch_at(b, d->path);
			d->it.after = dbatch_at(b, d->after);
			d->it.file = file;
			if (file == NULL && d->data != NULL)
				d->it.data = d->data;
			else if (file == NULL)
				d->it.data = (const uint8_t *)b->s + d->bytes_at - 1;
			rc = b->prov->write(b->txn, &d->it);
		}
		if (file != NULL)
			(void)unlink(file);
		free(d->data);
	}
	free(b->v);
	free(b->s);
	free(b);
	return rc;
}

/* Queues the batch being filled; a failure on the queue's thread so far
 * stops the restore. */
static int dbatch_flush(struct restore *r)
{
	if (r->batch != NULL) {
		pb__wq_call(r->wq, dbatch_run, r->batch, r->batch->bytes);
		r->batch = NULL;
	}
	return pb__wq_failed(r->wq);
}

/* Adds the item to the batch, taking its buffer or its temporary file. */
static int dbatch_add(struct restore *r, pb__assembly_t *a, const struct want_item *w)
{
	struct dbatch *b = r->batch;
	struct dlv *d;
	int rc;

	if (b == NULL) {
		if ((b = calloc(1, sizeof(*b))) == NULL)
			return PB_ENOMEM;
		b->prov = r->prov;
		b->txn = r->txn;
		r->batch = b;
	}
	if (pb__grow((void **)&b->v, &b->cap, b->n + 1, sizeof(*b->v)) != 0)
		return PB_ENOMEM;
	d = &b->v[b->n];
	memset(d, 0, sizeof(*d));
	/* A chat's messages come in a row: the same path, each after the one
	 * before it. Those strings are not copied again. */
	if (b->n > 0 && w->m.path != NULL && b->v[b->n - 1].path != 0 &&
	    strcmp(dbatch_at(b, b->v[b->n - 1].path), w->m.path) == 0)
		d->path = b->v[b->n - 1].path;
	else if ((rc = dbatch_str(b, w->m.path, &d->path)) != 0)
		return rc;
	if (b->n > 0 && w->after != NULL && b->v[b->n - 1].id != 0 &&
	    strcmp(dbatch_at(b, b->v[b->n - 1].id), w->after) == 0)
		d->after = b->v[b->n - 1].id;
	else if ((rc = dbatch_str(b, w->after, &d->after)) != 0)
		return rc;
	if ((rc = dbatch_str(b, w->m.id, &d->id)) != 0 ||
	    (rc = dbatch_str(b, a->tmp[0] ? a->tmp : NULL, &d->file)) != 0)
		return rc;
	d->it.kind = (pb_kind_t)w->m.kind;
	d->it.seq = w->m.seq;
	d->it.size = w->m.size;
	d->it.mtime_ns = (uint64_t)w->m.mtime;
	if (!a->tmp[0] && a->len >= DLV_COPY) {
		d->data = a->buf;
		d->it.len = a->len;
		a->buf = NULL;
		a->len = a->cap = 0;
		b->bytes += d->it.len;
	} else if (!a->tmp[0]) {
		if ((rc = dbatch_put(b, a->buf, a->len, &d->bytes_at)) != 0)
			return rc;
		d->it.len = a->len;
		b->bytes += d->it.len;
	}
	a->tmp[0] = 0; /* the batch removes it */
	b->n++;
	if (b->n < DLV_ITEMS && b->bytes < DLV_BYTES)
		return 0;
	return dbatch_flush(r);
}

/* Everything queued written: before the commit, or before a failed
 * restore reports what the folder's writer did. */
static int deliveries_end(struct restore *r)
{
	int rc, wrc;

	if (r->wq == NULL)
		return 0;
	rc = dbatch_flush(r);
	wrc = pb__wq_wait(r->wq);
	if (rc == 0)
		rc = wrc;
	pb__wq_free(r->wq);
	r->wq = NULL;
	return rc;
}

/* Hands a checked item to where it goes: the fetch's answer, or the
 * provider's transaction (the temporary file of a large one is lent for
 * the call only). */
static int deliver(struct restore *r, pb__assembly_t *a, const struct want_item *w)
{
	pb_item_t it;

	if (r->wq != NULL && r->txn != NULL)
		return dbatch_add(r, a, w);
	if (r->exact_id != NULL) {
		r->out = a->buf;
		r->out_len = a->len;
		a->buf = NULL;
		r->found = true;
		return 0;
	}
	if (r->txn == NULL)
		return 0;
	memset(&it, 0, sizeof(it));
	it.kind = (pb_kind_t)w->m.kind;
	it.id = w->m.id;
	it.path = w->m.path;
	it.seq = w->m.seq;
	it.size = w->m.size;
	it.mtime_ns = (uint64_t)w->m.mtime;
	it.after = w->after;
	if (a->tmp[0]) {
		it.file = a->tmp;
	} else {
		it.data = a->buf != NULL ? a->buf : (const uint8_t *)"";
		it.len = a->len;
	}
	return r->prov->write(r->txn, &it);
}

/* An item of one chunk held whole: its content hash is the chunk's name
 * (below 64 KiB the keyed BLAKE2b of its bytes, pb__item_hash;
 * pb_chunk_seal), which opening the chunk checks; it is not hashed a
 * second time. */
static bool whole_item(const struct want_item *w)
{
	return w->m.nchunks == 1 && w->m.size <= PB_CDC_WHOLE_MAX && memcmp(w->names[0], w->m.hash, 32) == 0;
}

/* An item of one chunk whose hash is that chunk's name (a file's, since
 * chunk names of 64 KiB on are made of segments and no longer the hash
 * of the bytes): the chunk's name check proves it. */
static bool one_chunk_named(const struct want_item *w)
{
	return w->m.nchunks == 1 && memcmp(w->names[0], w->m.hash, 32) == 0;
}

static int assembly_finish(struct restore *r, pb__assembly_t *a, const struct want_item *w)
{
	uint8_t hash[32];
	int rc = pb__assembly_end(a, hash);

	if (rc != 0)
		goto out;
	if (a->whole || (a->checked && a->added == w->m.size))
		memcpy(hash, w->m.hash, 32);
	if (sodium_memcmp(hash, w->m.hash, 32) != 0) {
		r->res->bad_items++;
		if (r->txn != NULL || r->exact_id != NULL) {
			rc = PB_ESTORE_VERIFY;
			goto out;
		}
	}
	r->res->items++;
	r->res->bytes += w->m.size;
	r->pr.p.items_done++;
	r->pr.p.bytes_done += w->m.size;
	rc = deliver(r, a, w);
out:
	pb__assembly_drop(a);
	return rc;
}

#define FETCH 0
#define CACHED 1
#define AGAIN 2 /* slices of a stream: the chunk just opened serves the next item too */

/* Asks for the next chunks not cached, up to FETCH_WINDOW in flight. */
struct fetch {
	uint64_t ids[FETCH_WINDOW];
	uint64_t est[FETCH_WINDOW]; /* the bytes each request is expected to bring */
	uint64_t inflight;          /* their sum over the requests not received */
	uint8_t *cached; /* per chunk: FETCH, CACHED, or AGAIN (the chunk before it again) */
	size_t opened;   /* chunks not AGAIN: each goes through the opener */
	size_t total, sent, got;
	size_t si, sc, sk; /* next chunk to request, and its index in cached */
};

static int request_more(struct restore *r, struct fetch *f)
{
	int rc = 0;

	while (f->sent < f->total && f->sent - f->got < FETCH_WINDOW && rc == 0 &&
	       (f->inflight < FETCH_BYTES || f->sent == f->got)) {
		const pb_manifest_item_t *m;

		while (f->sc >= r->items[f->si].m.nchunks || f->cached[f->sk]) {
			if (f->sc < r->items[f->si].m.nchunks) {
				f->sc++; /* cached: skip */
				f->sk++;
				continue;
			}
			f->si++;
			f->sc = 0;
		}
		rc = r->repo->ops->get_send(r->repo, r->dev_id, r->items[f->si].names[f->sc],
					    &f->ids[f->sent % FETCH_WINDOW]);
		/* A chunk's size is not known before it comes: its item's share. */
		m = &r->items[f->si].m;
		f->est[f->sent % FETCH_WINDOW] = m->size / m->nchunks + 64;
		f->inflight += f->est[f->sent % FETCH_WINDOW];
		f->sc++;
		f->sk++;
		f->sent++;
	}
	return rc;
}

/* Where the next chunk to hand to the opener is: item, chunk in it, and
 * its index in fetch.cached. */
struct produce {
	size_t i, c, k, done;
};

/* Receives (or reads from the cache) the next chunk and hands it to the
 * opener; its tag says whether it came from the cache. */
static int produce_one(struct restore *r, struct fetch *f, struct produce *p, pb__opener_t *op)
{
	const uint8_t *name;
	uint8_t *ct = NULL;
	size_t len = 0;
	uint64_t keep_at = 0;
	bool cached;
	int rc;

	/* A chunk AGAIN is the one before it, opened once: not handed over. */
	for (;;) {
		while (p->c >= r->items[p->i].m.nchunks) {
			p->i++;
			p->c = 0;
		}
		if (f->cached[p->k] != AGAIN)
			break;
		p->c++;
		p->k++;
	}
	name = r->items[p->i].names[p->c];
	cached = f->cached[p->k] == CACHED;
	if ((rc = request_more(r, f)) != 0)
		return rc;
	if (cached && pb__cache_is_staged(r->cache, name)) {
		/* Its plaintext: the opener checks its name again. */
		if ((rc = pb__cache_read_staged(r->cache, name, &ct, &len)) != 0)
			return rc;
		r->res->chunks_cached++;
		pb__opener_put_plain(op, name, ct, len, cached);
		p->c++;
		p->k++;
		p->done++;
		return 0;
	}
	if (cached) {
		rc = pb__cache_read(r->cache, name, &ct, &len);
		r->res->chunks_cached++;
	} else {
		rc = r->repo->ops->get_recv(r->repo, f->ids[f->got % FETCH_WINDOW], &ct, &len);
		f->inflight -= f->est[f->got % FETCH_WINDOW];
		f->got++;
		/* Kept for a later run as it comes (a cache that cannot be
		 * written only costs a refetch), written by the thread that
		 * opens it; dropped if it does not open. */
		if (rc == 0 && caching(r) && !staged_item(r, &r->items[p->i]))
			keep_at = pb__cache_reserve(r->cache, name, len);
	}
	if (rc != 0)
		return rc;
	pb__opener_put_keep(op, name, ct, len, cached, r->cache, keep_at);
	p->c++;
	p->k++;
	p->done++;
	return 0;
}

/* Takes the next opened chunk back; one that does not open is dropped
 * from the cache (the next run fetches it), failing this run like a
 * damaged reply. */
static int take_one(struct restore *r, pb__opener_t *op, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **plain,
		    size_t *plen)
{
	uint8_t *ct;
	size_t len;
	uint64_t cached;
	int rc = pb__opener_take(op, &ct, &len, &cached, plain, plen);

	if (rc != 0 && caching(r))
		pb__cache_forget(r->cache, name);
	free(ct);
	return rc;
}

/* HOME/restore-tmp, where an item too large to assemble in memory is
 * written first: made when the first such item comes (a restore of a few
 * small items makes and removes no directory). */
static int item_tmpdir(struct restore *r, uint64_t size)
{
	int rc;

	if (r->txn == NULL || size <= PB_CDC_WHOLE_MAX || r->tmpdir_made)
		return 0;
	if ((rc = pb__mkdirs(r->tmpdir, 0700)) != 0)
		return rc;
	r->tmpdir_made = true;
	return 0;
}

/* Fetches and rebuilds every collected item, with up to FETCH_WINDOW chunk
 * requests in flight; the chunks are opened on the opener's threads while
 * this thread receives the next ones and assembles and writes the items in
 * order. */
static int fetch_items(struct restore *r)
{
	struct fetch f;
	struct produce p;
	size_t all = 0, at = 0, item = 0, chunk = 0; /* at: index in cached of the current chunk */
	pb__opener_t *op = NULL;
	pb__wq_t *wq = NULL; /* large items' writes, when restoring */
	/* The chunk opened last, when a slice used it: the next slice may
	 * start in it (the messages of a chat stream share chunks). */
	const uint8_t *prev = r->held != NULL ? r->held_name : NULL;
	bool prev_slice = prev != NULL;
	uint8_t *plain = r->held;
	size_t plen = r->held_len;
	pb__assembly_t a;
	uint32_t staged = 0; /* the current item's file as the cache keeps it, or 0 */
	int rc = 0, cut = 0; /* cut: a chunk could not be had; the ones received are still used */

	memset(&f, 0, sizeof(f));
	memset(&p, 0, sizeof(p));
	if (caching(r) && r->cache == NULL && (rc = pb__cache_open(r->o->home, &r->cache)) != 0)
		return rc;
	for (size_t i = 0; i < r->nitems; i++)
		all += r->items[i].m.nchunks;
	f.cached = calloc(all + 1, sizeof(*f.cached));
	if (f.cached == NULL)
		return PB_ENOMEM;
	r->held = NULL;
	r->held_len = 0;
	/* A full restore into a folder keeps its queue for the run (its items
	 * are written there too); another keeps one for this fetch. */
	if (r->wq == NULL && r->txn != NULL && r->exact_id == NULL && !r->fast && !r->res->by_index &&
	    pb__provider_is_dir(r->prov) && (rc = pb__wq_new(&r->wq)) != 0) {
		free(f.cached);
		free(plain);
		return rc;
	}
	wq = r->wq;
	if ((rc = pb__opener_new(&r->keys, &op)) != 0 ||
	    (r->txn != NULL && wq == NULL && (rc = pb__wq_new(&wq)) != 0)) {
		pb__opener_free(op);
		free(f.cached);
		free(plain);
		return rc;
	}
	/* Chunks an interrupted run fetched are not fetched again, nor is a
	 * slice's chunk opened for the slice before it. */
	for (size_t i = 0, k = 0; i < r->nitems; i++)
		for (size_t c = 0; c < r->items[i].m.nchunks; c++, k++) {
			if (prev_slice && r->items[i].m.slice && memcmp(r->items[i].names[c], prev, PB_STORE_NAME_LEN) == 0)
				f.cached[k] = AGAIN;
			else
				f.cached[k] = cache_has(r, r->items[i].names[c]) ? CACHED : FETCH;
			prev = r->items[i].names[c];
			prev_slice = r->items[i].m.slice;
			if (f.cached[k] == FETCH)
				f.total++;
			if (f.cached[k] != AGAIN)
				f.opened++;
		}
	memset(&a, 0, sizeof(a));
	a.fd = -1;
	/* Items with no chunk (empty files) are finished at once below. */
	while (item < r->nitems && rc == 0) {
		const struct want_item *w = &r->items[item];

		if (chunk == 0 && (rc = item_tmpdir(r, w->m.size)) != 0)
			break;
		if (chunk == 0 &&
		    (rc = pb__assembly_start(&a, &r->keys, w->m.size, r->txn != NULL ? r->tmpdir : NULL, &r->tmpn)) != 0)
			break;
		if (chunk == 0)
			staged = caching(r) && a.fd >= 0 && staged_item(r, w) ? pb__cache_stage(r->cache, a.tmp) : 0;
		/* Restoring or fetching, each chunk's name check (a keyed hash
		 * of its plaintext, the names listed by the authenticated
		 * manifest) already proves the item's bytes: hashing them again
		 * would be a second BLAKE2b pass over every large file on this
		 * thread. Verify still recomputes every content hash of bytes;
		 * a file whose hash is that of its chunk names (backups since
		 * pb__item_names_hash) is proven by the names alone. */
		if (chunk == 0)
			a.checked = r->txn != NULL || r->exact_id != NULL ||
				    (!w->m.slice &&
				     (pb__item_by_names(&r->keys, (const uint8_t *)w->names, w->m.nchunks, w->m.hash) ||
				      one_chunk_named(w)));
		a.wq = wq;
		a.queued_end = wq != NULL && wq == r->wq;
		if (w->m.nchunks == 0) {
			rc = assembly_finish(r, &a, w);
			item++;
			continue;
		}
		while (rc == 0 && cut == 0 && p.done < f.opened && (pb__opener_room(op) || pb__opener_waiting(op) == 0))
			if ((rc = produce_one(r, &f, &p, op)) != 0 && caching(r)) {
				/* The link lost: the chunks received are still opened
				 * and written, so that the next run finds them kept (a
				 * large item's only in its file); then this run fails. */
				cut = rc;
				rc = 0;
			}
		if (rc == 0 && cut != 0 && f.cached[at] != AGAIN && pb__opener_waiting(op) == 0)
			rc = cut;
		if (rc == 0 && f.cached[at] != AGAIN) {
			free(plain);
			plain = NULL;
			plen = 0;
			memcpy(r->held_name, w->names[chunk], PB_STORE_NAME_LEN);
			rc = take_one(r, op, w->names[chunk], &plain, &plen);
		}
		if (rc == 0)
			at++;
		if (rc == 0 && !w->m.slice && whole_item(w)) {
			/* The item is its chunk: opening it checked its hash. */
			a.buf = plain;
			a.len = a.cap = plen;
			a.whole = true;
			plain = NULL;
		} else if (rc == 0 && !w->m.slice && a.fd >= 0) {
			/* Written on the write queue's thread, which frees it;
			 * kept for a later run as its place in the file. */
			pb__cache_note(r->cache, w->names[chunk], staged, a.added, plen);
			rc = pb__assembly_add_owned(&a, plain, plen);
			plain = NULL;
			plen = 0;
		} else if (rc == 0) {
			rc = pb__assembly_add_chunk(&a, &w->m, chunk, plain, plen);
		}
		if (rc == 0 && ++chunk == w->m.nchunks) {
			rc = assembly_finish(r, &a, w);
			item++;
			chunk = 0;
			if (rc == 0)
				rc = pb__progress(&r->pr, false);
		}
	}
	if (rc == 0 && cut != 0)
		rc = cut;
	pb__opener_free(op);
	pb__assembly_drop(&a);
	if (wq != r->wq)
		pb__wq_free(wq);
	else if (rc == 0 && wq != NULL)
		rc = dbatch_flush(r); /* written while the next manifest chunks come */
	/* Kept for the next call only when it is what held_name names and a
	 * slice used it last. */
	if (rc == 0 && plain != NULL && prev_slice) {
		r->held = plain;
		r->held_len = plen;
	} else {
		free(plain);
	}
	free(f.cached);
	return rc;
}

/* --from as a device's name or a prefix of its hex id (at least 4
 * digits): the one device of the repository's list it names. PB_ENOTFOUND
 * for none, PB_EEXISTS when it names more than one. */
static int match_device(struct restore *r, const pb_repo_device_t *d, size_t nd)
{
	const char *want = r->o->from_device;
	size_t n = strlen(want), found = 0;

	for (size_t i = 0; i < nd; i++) {
		char hex[2 * sizeof(r->dev_id) + 1];

		pb__hex(d[i].id, sizeof(r->dev_id), hex);
		if (strcmp(d[i].name, want) == 0 || (n >= 4 && strncasecmp(hex, want, n) == 0)) {
			memcpy(r->dev_id, d[i].id, sizeof(r->dev_id));
			found++;
		}
	}
	return found == 1 ? 0 : found == 0 ? PB_ENOTFOUND : PB_EEXISTS;
}

/* Whose backup to read: --from, else this phone's, else the account's most
 * recent backup of another device (a new phone). */
static int pick_device(struct restore *r)
{
	pb_repo_device_t *d = NULL;
	size_t nd = 0;
	int64_t best = -1;
	uint64_t latest;
	bool own = false;
	int rc;

	if (r->o->from_device != NULL) {
		size_t n;

		if (sodium_hex2bin(r->dev_id, sizeof(r->dev_id), r->o->from_device, strlen(r->o->from_device), NULL, &n,
				   NULL) == 0 &&
		    n == sizeof(r->dev_id))
			return 0;
		/* A device's name or an id prefix: found in the list. */
	}
	memcpy(r->dev_id, r->repo->device_id, sizeof(r->dev_id));
	/* This phone's own backups when the repository holds one: the list of
	 * devices is not needed then. */
	if (r->o->from_device == NULL && pb__restore_latest(r, r->dev_id, &latest) == 0)
		return 0;
	pb__restore_ahead_take(r);
	if ((rc = r->repo->ops->devices(r->repo, &d, &nd)) != 0)
		return rc;
	if (r->o->from_device != NULL) {
		rc = match_device(r, d, nd);
		free(d);
		return rc;
	}
	for (size_t i = 0; i < nd; i++)
		if (memcmp(d[i].id, r->dev_id, sizeof(r->dev_id)) == 0)
			own = true;
	for (size_t i = 0; !own && i < nd; i++) {
		if (d[i].latest > best) {
			best = d[i].latest;
			memcpy(r->dev_id, d[i].id, sizeof(r->dev_id));
		}
	}
	free(d);
	return 0;
}

/* --- Dry run -------------------------------------------------------------------- */

/* An item of the restore target, with the keyed content hash a backup
 * would record for it; a file of several chunks has two (names: the hash
 * of its chunk names, pb__item_names_hash; otherwise names is hash). */
struct local_item {
	char *id;
	uint8_t hash[32];
	uint8_t names[32];
};

static int hash_file(const pb_backup_keys_t *keys, const char *path, uint8_t out[32], uint8_t names[32])
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	rc = pb__file_hashes(keys, fd, out, names);
	close(fd);
	return rc;
}

static int local_add(void *arg, const pb_item_t *it)
{
	struct restore *r = arg;
	struct local_item *l;
	int rc;

	if ((rc = pb__grow((void **)&r->local, &r->cap_local, r->nlocal + 1, sizeof(*r->local))) != 0)
		return rc;
	l = &r->local[r->nlocal];
	if (it->data != NULL) {
		pb__item_hash(&r->keys, it->data, it->len, l->hash);
	} else if (it->file != NULL) {
		if ((rc = hash_file(&r->keys, it->file, l->hash, l->names)) != 0)
			return rc;
	} else {
		pb_buf_t buf = { NULL, 0, 0 };

		if (r->prov->read == NULL || r->prov->read(r->prov->arg, it, &buf) != 0)
			memset(l->hash, 0, sizeof(l->hash)); /* unreadable: "replaced" */
		else
			pb__item_hash(&r->keys, buf.data != NULL ? buf.data : (const uint8_t *)"", buf.len, l->hash);
		pb_buf_free(&buf);
	}
	if (it->data != NULL || it->file == NULL)
		memcpy(l->names, l->hash, 32);
	if ((l->id = strdup(it->id)) == NULL)
		return PB_ENOMEM;
	r->nlocal++;
	return 0;
}

static int cmp_local(const void *a, const void *b)
{
	return strcmp(((const struct local_item *)a)->id, ((const struct local_item *)b)->id);
}

/* What the target holds now; a source it cannot read counts as absent, a
 * target that does not exist as empty. */
static int local_scan(struct restore *r)
{
	int rc = r->prov->list(r->prov->arg, PB_KIND_ALL, local_add, pb__skip_quietly, r);

	if (rc == -ENOENT)
		rc = 0;
	if (rc == 0 && r->nlocal > 1)
		qsort(r->local, r->nlocal, sizeof(*r->local), cmp_local);
	return rc;
}

static void local_free(struct restore *r)
{
	for (size_t i = 0; i < r->nlocal; i++)
		free(r->local[i].id);
	free(r->local);
}

/* Tells what restoring each collected item would do to the target. */
static int plan_items(struct restore *r)
{
	int rc = 0;

	for (size_t i = 0; i < r->nitems && rc == 0; i++) {
		const struct want_item *w = &r->items[i];
		struct local_item key = { w->id, { 0 }, { 0 } }, *l;
		const char *change;

		l = r->nlocal > 0 ? bsearch(&key, r->local, r->nlocal, sizeof(*r->local), cmp_local) : NULL;
		if (l == NULL) {
			change = "added";
			r->res->added++;
		} else if (sodium_memcmp(l->hash, w->m.hash, 32) != 0 && sodium_memcmp(l->names, w->m.hash, 32) != 0) {
			change = "replaced";
			r->res->changed++;
		} else {
			change = "unchanged";
			r->res->unchanged++;
		}
		if (r->o->on_plan != NULL)
			r->o->on_plan(r->o->plan_arg, w->id, w->path, change);
		{
			pb_event_t ev = { .type = PB_EVENT_PLAN, .phase = "restore", .id = w->id, .path = w->path,
					  .change = change };

			rc = pb__emit(r->o, &ev);
		}
		r->res->items++;
		r->res->bytes += w->m.size;
		r->pr.p.items_done++;
	}
	return rc;
}

/* --- Checks before reading -------------------------------------------------------- */

/* A repository whose latest snapshot of this phone is older than the last
 * one this phone completed with it lost or withholds the newer ones:
 * reading "the latest" would quietly bring back older data. Refused unless
 * the caller names a snapshot; res->snapshot and res->snapshot_known say
 * which two. A phone without state (a new phone) knows nothing to compare. */
static int check_rollback(struct restore *r)
{
	pb_backup_state_t *st = NULL;
	char path[4096];
	uint64_t known = 0, latest = 0;
	struct stat sb;
	int rc;

	if (r->o->snapshot != 0)
		return 0;
	if (memcmp(r->repo->device_id, r->dev_id, sizeof(r->dev_id)) != 0)
		return 0;
	if (r->marked) {
		/* The value as the state held it, unchanged since. */
		if (!r->mark_has)
			return 0;
		known = r->mark_known;
	} else {
		uint64_t began = pb__rollback_mark_clock();

		if (r->st != NULL) {
			st = r->st;
			r->st = NULL;
		} else {
			if (pb__state_path(r->o->home, path, sizeof(path)) != 0 || stat(path, &sb) != 0)
				return 0;
			if ((rc = pb_backup_state_open_ro(path, &st)) != 0)
				return rc;
		}
		rc = pb_backup_state_host_done(st, r->repo->host_pk, &known);
		pb_backup_state_close(st);
		if (rc != 0 && rc != PB_ENOTFOUND)
			return rc;
		/* Kept for the next lookup of a message, which then need
		 * not open the state (when it has the root kept too). */
		if (r->ahead.listed)
			pb__rollback_mark_save(r->o->home, r->repo->host_pk, began, known, rc == 0);
		if (rc == PB_ENOTFOUND)
			return 0;
	}
	rc = pb__restore_latest(r, r->dev_id, &latest);
	if (rc != 0 && rc != PB_ESTORE_NOSNAP)
		return rc;
	if (latest >= known)
		return 0;
	r->res->snapshot = latest;
	r->res->snapshot_known = known;
	return PB_ESTORE_ROLLBACK;
}

/* Adds the item id as the state's completed generation recorded it. */
static int state_item(struct restore *r, pb_backup_state_t *st, const char *id)
{
	struct want_item *w;
	int rc;

	if ((w = pb__grow_slot((void **)&r->items, &r->cap_items, r->nitems, sizeof(*r->items))) == NULL)
		return PB_ENOMEM;
	rc = pb_backup_state_get(st, id, &w->m, &w->id, &w->path, &w->names);
	if (rc == 0 && w->m.seq > 0 && pb_codec_for(w->path) != NULL) {
		rc = pb_backup_state_before(st, w->path, w->m.seq, &w->after);
		if (rc == PB_ENOTFOUND)
			rc = 0;
	}
	if (rc == 0)
		r->nitems++;
	else if (w->id != NULL) {
		free(w->id);
		free(w->path);
		free(w->after);
		free(w->names);
	}
	return rc;
}

/* True when the repository holds every chunk of the collected items. */
static bool host_holds(struct restore *r)
{
	name_t *names;
	bool *missing, yes;
	size_t n = 0;

	for (size_t i = 0; i < r->nitems; i++)
		n += r->items[i].m.nchunks;
	if (n == 0)
		return true;
	if (n > OFFER_BATCH || (names = malloc(n * sizeof(name_t))) == NULL)
		return false;
	if ((missing = malloc(n * sizeof(bool))) == NULL) {
		free(names);
		return false;
	}
	n = 0;
	for (size_t i = 0; i < r->nitems; i++)
		for (size_t c = 0; c < r->items[i].m.nchunks; c++)
			memcpy(names[n++], r->items[i].names[c], PB_STORE_NAME_LEN);
	yes = r->repo->ops->missing(r->repo, (const name_t *)names, n, missing) == 0;
	for (size_t i = 0; yes && i < n; i++)
		yes = !missing[i];
	free(missing);
	free(names);
	return yes;
}

/* One item by id without walking the manifest: the phone that made the
 * last completed backup knows from its state where each item of that
 * snapshot lives (kind, path, content hash, chunk names), so it asks the
 * repository for exactly those chunks, checked like any other. A restore
 * uses this only when the latest snapshot of this phone is that backup, so
 * the answer is the snapshot's; a fetch (NFC fallback) takes the item from
 * any host that holds its chunks. Everything else (another device, an
 * older snapshot, a chat with its files, a phone without state) walks the
 * manifest. *done tells whether this path answered. */
static int fast_restore(struct restore *r, enum restore_mode mode, const char *want, bool *done)
{
	const pb_engine_opts_t *o = r->o;
	pb_backup_state_t *st = NULL;
	uint8_t mk[PB_MASTERKEY_LEN];
	char path[4096], frame[PB_ITEM_ID_MAX + 1];
	const char *msg;
	uint64_t snap = 0;
	struct stat sb;
	int rc;

	*done = false;
	if (want == NULL || o->from_device != NULL)
		return 0;
	/* One chat message, asked ahead through the kept root (a message of
	 * a chat stream has no row in the state: the index finds it), and
	 * the rollback check's value kept from an unchanged state: the state
	 * is not opened. */
	if (mode == MODE_RESTORE && o->snapshot == 0 && r->ahead.root.map != NULL &&
	    memcmp(r->ahead.dev, r->repo->device_id, sizeof(r->ahead.dev)) == 0 &&
	    pb__rollback_mark_load(o->home, r->repo->host_pk, &r->mark_known, &r->mark_has) == 0) {
		r->marked = true;
		return 0;
	}
	/* "chat/42" brings its files too, found by path: walk. */
	msg = strstr(want, "/msg/");
	if (strncmp(want, "chat/", 5) == 0 && msg == NULL)
		return 0;
	if (pb__state_path(o->home, path, sizeof(path)) != 0 || stat(path, &sb) != 0)
		return 0;
	if (pb__master_local(o->home, mk) != 0)
		return 0;
	memcpy(r->dev_id, r->repo->device_id, sizeof(r->dev_id));
	if (pb_backup_state_open_ro(path, &st) != 0 || pb_backup_state_done(st, &snap) != 0)
		goto out_walk;
	if (o->snapshot != 0 && o->snapshot != snap)
		goto out_walk;
	if (mode == MODE_RESTORE && msg != NULL) {
		/* A message needs its chat's frame, which comes first. */
		snprintf(frame, sizeof(frame), "%.*s", (int)(msg - want), want);
		if (state_item(r, st, frame) != 0)
			goto out_walk;
	}
	if (state_item(r, st, want) != 0 || pb_backup_state_has_children(st, want))
		goto out_walk;
	/* The repository is asked only about an item the state knows. */
	if (mode == MODE_RESTORE && o->snapshot == 0) {
		uint64_t latest;

		if (pb__restore_latest(r, r->dev_id, &latest) != 0 || latest != snap)
			goto out_walk;
	}
	if (mode == MODE_FETCH && !host_holds(r))
		goto out_walk;
	pb_backup_keys_derive(mk, &r->keys);
	sodium_memzero(mk, sizeof(mk));
	pb_backup_state_close(st);
	r->res->snapshot = snap;
	pb__hex(r->dev_id, sizeof(r->dev_id), r->res->device);
	*done = true;
	r->fast = true;
	r->res->by_state = true;
	rc = fetch_items(r);
	pb__restore_items_free(r);
	return rc;
out_walk:
	sodium_memzero(mk, sizeof(mk));
	/* The rollback check reads it next. */
	r->st = st;
	pb__restore_items_free(r);
	return 0;
}

/* Tells what a failed restore did to a device directory: the link that
 * stopped it, and the files it had already replaced (none unless a rename
 * failed). */
static void target_report(struct restore *r, int rc)
{
	const char *const *written;
	size_t n;

	if (r->txn == NULL || !pb__provider_is_dir(r->prov))
		return;
	if (rc == PB_EDATA_LINK)
		snprintf(r->res->link, sizeof(r->res->link), "%s", pb__dir_txn_link(r->txn));
	n = pb__dir_txn_replaced(r->txn, &written);
	r->res->replaced = n;
	for (size_t i = 0; i < n; i++) {
		if (r->o->on_replaced != NULL)
			r->o->on_replaced(r->o->replaced_arg, written[i]);
		(void)pb__warn(r->o, "restore", written[i], 0, rc, "already replaced when the restore failed");
	}
}

/* Chunks of the items collected so far. */
static size_t collected_chunks(const struct restore *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nitems; i++)
		n += r->items[i].m.nchunks;
	return n;
}

/* Manifest chunks asked for ahead of the walk: each was a round trip of
 * its own, and a store of chats has a thousand of them (small chunks, a
 * few hundred records each). Asked MF_AHEAD at a time, one at a time
 * after a large one (their replies are held until the walk takes them),
 * and one at a time for a fetch by id, which stops at its item. */
#define MF_AHEAD 16
#define MF_AHEAD_LARGE (256u << 10)

struct mf_ahead {
	const name_t *names;
	size_t n;
	size_t asked, got; /* requests sent; replies received into ct */
	uint64_t tok[MF_AHEAD];
	uint8_t *ct[MF_AHEAD];
	size_t len[MF_AHEAD];
	int rc[MF_AHEAD];
	size_t ahead;
	bool timeout;
};

/* Asks for the manifest chunks after i, up to m->ahead in flight. */
static int mf_ask(struct restore *r, struct mf_ahead *m, size_t i)
{
	int rc = 0;

	while (rc == 0 && m->asked < m->n && m->asked - i < m->ahead) {
		rc = r->repo->ops->get_send(r->repo, r->dev_id, m->names[m->asked], &m->tok[m->asked % MF_AHEAD]);
		if (rc == 0)
			m->asked++;
	}
	return rc;
}

/* Receives the replies asked for, up to (not including) chunk upto, in
 * order; each one's outcome is kept with it. After a reply that did not
 * come in time, the ones behind it are not waited for as well. */
static void mf_recv(struct restore *r, struct mf_ahead *m, size_t upto)
{
	while (m->got < upto && m->got < m->asked) {
		size_t k = m->got % MF_AHEAD;

		m->ct[k] = NULL;
		m->len[k] = 0;
		m->rc[k] = m->timeout ? PB_ETIMEOUT : r->repo->ops->get_recv(r->repo, m->tok[k], &m->ct[k], &m->len[k]);
		m->timeout = m->rc[k] == PB_ETIMEOUT;
		m->got++;
	}
}

/* Manifest chunk i, asked for with the ones after it; the caller frees
 * *ct. */
static int mf_take(struct restore *r, struct mf_ahead *m, size_t i, uint8_t **ct, size_t *len)
{
	size_t k = i % MF_AHEAD;
	int rc = mf_ask(r, m, i);

	if (rc == 0 && m->got <= i)
		mf_recv(r, m, i + 1);
	if (rc == 0 && m->got <= i)
		rc = PB_ESTATE;
	if (rc != 0)
		return rc;
	*ct = m->ct[k];
	*len = m->len[k];
	m->ct[k] = NULL;
	/* After a large chunk, the next ones are not asked for many at once:
	 * their replies are held in memory until taken. */
	m->ahead = *len >= MF_AHEAD_LARGE || r->exact_id != NULL ? 1 : MF_AHEAD;
	return m->rc[k];
}

/* Every reply asked for is received (the connection's replies come in
 * order, and the next request's must be the next one), and those not
 * taken are freed. */
static void mf_end(struct restore *r, struct mf_ahead *m)
{
	mf_recv(r, m, m->asked);
	for (size_t k = 0; k < MF_AHEAD; k++) {
		free(m->ct[k]);
		m->ct[k] = NULL;
	}
}

/* Walks the manifest chunks; the wanted items of several are fetched (or
 * planned) together, about FETCH_BATCH chunks at a time, so that the
 * fetch window does not drain at each manifest chunk. A fetch by id takes
 * each manifest chunk's items at once: it stops at the first match. */
static int walk_manifest(struct restore *r, enum restore_mode mode, const name_t *mchunks, size_t nm)
{
	struct mf_ahead m;
	int rc = 0;

	memset(&m, 0, sizeof(m));
	m.names = mchunks;
	m.n = nm;
	m.ahead = r->exact_id != NULL ? 1 : MF_AHEAD;
	for (size_t i = 0; i < nm && rc == 0 && !r->found; i++) {
		uint8_t *ct = NULL;
		size_t len = 0;

		if ((rc = mf_take(r, &m, i, &ct, &len)) != 0) {
			free(ct);
			break;
		}
		/* One decompression context for every manifest chunk (each
		 * made afresh is some 160 kB initialised); NULL: one each. */
		if (r->dctx == NULL)
			r->dctx = ZSTD_createDCtx();
		rc = pb__manifest_chunk_open_dctx(&r->keys, mchunks[i], ct, len, pb__restore_collect, r, r->dctx);
		free(ct);
		if (rc != 0 || (i + 1 < nm && r->exact_id == NULL && collected_chunks(r) < FETCH_BATCH))
			continue;
		/* The manifest's replies asked for come before the items'. */
		mf_recv(r, &m, m.asked);
		if (mode == MODE_RESTORE && r->o->dry_run)
			rc = plan_items(r);
		else
			rc = fetch_items(r);
		pb__restore_items_free(r);
	}
	mf_end(r, &m);
	return rc;
}

static int restore_begin(struct restore *r, enum restore_mode mode)
{
	const pb_engine_opts_t *o = r->o;
	int rc;

	if ((rc = pb__engine_repo(o, &r->repo, &r->repo_owned)) != 0)
		return rc;
	if (mode != MODE_RESTORE)
		return 0;
	/* One message: the host answers while the target and the state are
	 * opened. */
	pb__restore_ask_ahead(r, r->exact_id != NULL ? r->exact_id : o->item_id);
	if ((rc = pb__engine_provider(o, &r->prov, &r->prov_owned)) != 0)
		return rc;
	if (o->dry_run)
		return 0;
	if ((rc = pb__path_join(r->tmpdir, sizeof(r->tmpdir), o->home, "restore-tmp")) != 0) {
		r->tmpdir[0] = 0;
		return rc;
	}
	if ((rc = r->prov->begin(r->prov->arg, &r->txn)) == 0 && pb__provider_is_dir(r->prov))
		pb__dir_txn_take_files(r->txn);
	return rc;
}

/* The end of a restore: nothing of what was asked in the snapshot is not
 * a success, and nothing appears; else the transaction commits. */
static int restore_end(struct restore *r, enum restore_mode mode, uint8_t **out, size_t *out_len)
{
	int rc = 0;

	if (mode == MODE_RESTORE) {
		if ((rc = deliveries_end(r)) != 0)
			return rc;
		if (r->pr.p.items_done == 0)
			rc = PB_ENOTFOUND;
		else if (!r->o->dry_run && (rc = r->prov->commit(r->txn)) == 0)
			r->txn = NULL;
		if (rc == 0) {
			pb__cache_close(r->cache);
			r->cache = NULL;
			pb__cache_drop(r->o->home);
		}
	}
	if (rc == 0 && mode == MODE_FETCH) {
		if (!r->found) {
			rc = PB_ENOTFOUND;
		} else {
			*out = r->out;
			*out_len = r->out_len;
			r->out = NULL;
		}
	}
	if (rc == 0 && mode == MODE_VERIFY && r->res->bad_items > 0)
		rc = PB_ESTORE_VERIFY;
	return rc;
}

static void restore_free(struct restore *r)
{
	(void)deliveries_end(r);
	if (r->txn != NULL)
		r->prov->abort(r->txn);
	pb_provider_dir_free(r->prov_owned);
	if (r->tmpdir_made)
		rmdir(r->tmpdir);
	free(r->out);
	free(r->held);
	pb__restore_items_free(r);
	free(r->items);
	free(r->prev_id);
	free(r->prev_path);
	if (r->cached_root.map != NULL)
		pb__root_free(&r->cached_root);
	else
		free(r->index);
	/* Answers asked ahead and never taken (a run that stopped early) are
	 * taken: a repository the caller keeps is left with none pending. */
	pb__restore_ahead_take(r);
	pb__restore_prefetch_free(r);
	pb__restore_ahead_free(r);
	ZSTD_freeDCtx(r->dctx);
	pb_backup_state_close(r->st);
	local_free(r);
	pb__cache_close(r->cache);
	pb_backup_keys_wipe(&r->keys);
	if (r->repo_owned)
		pb__repo_close(r->repo);
	free(r);
}

static int run_restore(const pb_engine_opts_t *o, pb_engine_result_t *res, enum restore_mode mode, const char *exact,
		       uint8_t **out, size_t *out_len)
{
	struct restore *r;
	name_t *mchunks = NULL;
	size_t nmchunks = 0;
	uint64_t snap = o->snapshot, nitems_total = 0;
	double t0 = pb__now_s();
	bool fast = false;
	int rc;

	memset(res, 0, sizeof(*res));
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return PB_ENOMEM;
	r->o = o;
	r->res = res;
	r->pr.o = o;
	r->pr.p.phase = mode == MODE_VERIFY ? "verify" : mode == MODE_FETCH ? "fetch" : "restore";
	r->exact_id = exact;
	if ((rc = restore_begin(r, mode)) != 0)
		goto out;
	if (mode != MODE_VERIFY && !o->dry_run &&
	    (rc = fast_restore(r, mode, exact != NULL ? exact : o->item_id, &fast)) != 0)
		goto out;
	if (!fast) {
		if ((rc = pick_device(r)) != 0)
			goto out;
		pb__hex(r->dev_id, sizeof(r->dev_id), res->device);
		if ((rc = check_rollback(r)) != 0)
			goto out;
		if (mode == MODE_RESTORE && o->dry_run) {
			uint8_t mk[PB_MASTERKEY_LEN];

			/* The target is hashed with the key the backup used. */
			if ((rc = pb__master_key(r->repo, o, r->dev_id, false, mk)) != 0)
				goto out;
			pb_backup_keys_derive(mk, &r->keys);
			sodium_memzero(mk, sizeof(mk));
			r->keys_ready = true;
			if ((rc = local_scan(r)) != 0)
				goto out;
		}
		if ((rc = pb__restore_open_snapshot(r, &snap, &mchunks, &nmchunks, &nitems_total)) != 0)
			goto out;
		r->pr.p.items_total = exact != NULL || o->item_id != NULL ? 0 : nitems_total;
		if (pb__restore_index_applies(r, mode, exact != NULL ? exact : o->item_id)) {
			rc = pb__restore_index_collect(r, exact != NULL ? exact : o->item_id, (const name_t *)mchunks,
						       nmchunks);
			if (rc == 0 && r->nitems > 0)
				rc = fetch_items(r);
			pb__restore_items_free(r);
		} else {
			rc = walk_manifest(r, mode, (const name_t *)mchunks, nmchunks);
		}
		if (rc != 0)
			goto out;
	}
	rc = restore_end(r, mode, out, out_len);
	res->seconds = pb__now_s() - t0;
	if (rc == 0)
		(void)pb__progress(&r->pr, true);
out:
	if (rc != 0 && mode == MODE_RESTORE) {
		(void)deliveries_end(r); /* the folder's writer settled */
		target_report(r, rc);
	}
	if (r->cached_root.map == NULL)
		free(mchunks);
	restore_free(r);
	pb__done(o, mode == MODE_VERIFY ? "verify" : mode == MODE_FETCH ? "fetch" : "restore", rc, res->snapshot);
	return rc;
}

int pb_engine_restore(const pb_engine_opts_t *o, pb_engine_result_t *res)
{
	return run_restore(o, res, MODE_RESTORE, NULL, NULL, NULL);
}

int pb_engine_verify(const pb_engine_opts_t *o, pb_engine_result_t *res)
{
	return run_restore(o, res, MODE_VERIFY, NULL, NULL, NULL);
}

int pb_engine_fetch_item(const pb_engine_opts_t *o, const char *id, uint8_t **data, size_t *len)
{
	pb_engine_result_t res;

	*data = NULL;
	*len = 0;
	return run_restore(o, &res, MODE_FETCH, id, data, len);
}

int pb_engine_list(const pb_engine_opts_t *o, pb_engine_snapshot_t **out, size_t *n)
{
	struct restore *r = calloc(1, sizeof(*r));
	pb_store_snapinfo_t *s = NULL;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (r == NULL)
		return PB_ENOMEM;
	r->o = o;
	if ((rc = pb__engine_repo(o, &r->repo, &r->repo_owned)) != 0 || (rc = pick_device(r)) != 0 ||
	    (rc = r->repo->ops->snapshot_list(r->repo, r->dev_id, &s, &k)) != 0)
		goto out;
	if ((*out = calloc(k ? k : 1, sizeof(**out))) == NULL) {
		rc = PB_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < k; i++) {
		(*out)[i].id = s[i].id;
		(*out)[i].time = s[i].time;
		(*out)[i].size = s[i].size;
		(*out)[i].chunks = s[i].nrefs;
	}
	*n = k;
out:
	free(s);
	restore_free(r);
	return rc;
}

int pb_engine_sim_snapshot(const pb_engine_opts_t *o, const char *iccid, const char *msisdn, uint64_t *snapshot)
{
	pb_repo_t *repo;
	pb_backup_keys_t keys;
	uint8_t mk[PB_MASTERKEY_LEN], *val = NULL;
	char key[4 + 64 + 1];
	size_t len = 0;
	bool owned;
	int rc;

	*snapshot = 0;
	if ((rc = pb__master_local(o->home, mk)) != 0)
		return rc == -ENOENT ? PB_ESTORE_NOMASTER : rc;
	pb_backup_keys_derive(mk, &keys);
	sodium_memzero(mk, sizeof(mk));
	pb__sim_key(&keys, iccid, msisdn, key);
	pb_backup_keys_wipe(&keys);
	if ((rc = pb__engine_repo(o, &repo, &owned)) != 0)
		return rc;
	rc = repo->ops->blob_get(repo, NULL, key, &val, &len);
	if (rc == 0 && len != 8)
		rc = PB_EENV_MALFORMED;
	for (size_t k = 0; rc == 0 && k < 8; k++)
		*snapshot |= (uint64_t)val[k] << (8 * k);
	free(val);
	if (owned)
		pb__repo_close(repo);
	return rc;
}

/* --- Listing items ----------------------------------------------------------------- */

int pb_engine_items(const pb_engine_opts_t *o, pb_manifest_item_cb cb, void *arg, pb_engine_result_t *res)
{
	struct restore *r = calloc(1, sizeof(*r));
	name_t *mchunks = NULL;
	size_t nmchunks = 0;
	uint64_t snap = o->snapshot, nitems = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	if (r == NULL)
		return PB_ENOMEM;
	r->o = o;
	r->res = res;
	if ((rc = pb__engine_repo(o, &r->repo, &r->repo_owned)) != 0 || (rc = pick_device(r)) != 0)
		goto out;
	pb__hex(r->dev_id, sizeof(r->dev_id), res->device);
	if ((rc = pb__restore_open_snapshot(r, &snap, &mchunks, &nmchunks, &nitems)) != 0)
		goto out;
	res->items = nitems;
	for (size_t i = 0; i < nmchunks && rc == 0; i++) {
		uint8_t *ct = NULL;
		size_t len = 0;

		if ((rc = pb__repo_get(r->repo, r->dev_id, mchunks[i], &ct, &len)) == 0)
			rc = pb_manifest_chunk_open(&r->keys, mchunks[i], ct, len, cb, arg);
		free(ct);
	}
out:
	if (r->cached_root.map == NULL)
		free(mchunks);
	restore_free(r);
	return rc;
}
