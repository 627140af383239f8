/* Backup: the provider's items, chunked, sealed and sent to the
 * repository, then a snapshot naming them. Unchanged items cost nothing;
 * chunks the repository already committed are never sent again; an
 * interrupted or canceled backup resumes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/backup-int.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/group.h"
#include "agent/backup/internal.h"
#include "agent/backup/sink.h"
#include "agent/backup/stream.h"
#include "agent/kinds/internal.h"
#include "agent/phone/phone.h"
#include "agent/util/blake2b.h"
#include "agent/util/fsutil.h"

#define COMMIT_ITEMS 8192             /* items waiting for a commit */

/* Marks an unchanged item as part of this run's snapshot; many to a
 * transaction, as a re-backup touches every item. */
static int touch_item(struct backup *b, const pb_manifest_item_t *m)
{
	int rc;

	if (b->o->dry_run)
		return 0;
	if (b->touched == 0 && (rc = pb_backup_state_begin(b->st)) != 0)
		return rc;
	b->touched++;
	if ((rc = pb_backup_state_touch(b->st, m)) != 0)
		return rc;
	return b->touched >= 8192 ? pb__bk_touch_end(b) : 0;
}

/* Drops the first n files of dfiles (recorded, or never to be). */
static void files_drop(struct backup *b, size_t n)
{
	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		free(b->dfiles[i].path);
	memmove(b->dfiles, b->dfiles + n, (b->ndfiles - n) * sizeof(*b->dfiles));
	b->ndfiles -= n;
}

/* A commit's receipt: its chunks are committed in the repository, and so
 * are the items kept before mark, which are recorded now, then the files
 * all of whose items they complete. A file whose last items came after
 * mark waits for a later receipt. */
static int durable(void *arg, uint64_t mark, const name_t *names, size_t n)
{
	struct backup *b = arg;
	size_t k = 0, nf = 0;
	int rc = pb__bk_touch_end(b);

	/* Items are kept in order: their marks never decrease either. */
	while (k < b->nitems && b->items[k].mark <= mark)
		k++;
	/* Files end in walk order: their marks never decrease. */
	while (nf < b->ndfiles && b->dfiles[nf].mark <= mark)
		nf++;
	/* From here on these chunks are never sent again. */
	if (rc == 0)
		rc = pb_backup_state_mark_committed(b->st, names, n);
	if (rc == 0)
		rc = pb_backup_state_begin(b->st);
	for (size_t i = 0; i < k && rc == 0; i++)
		rc = pb_backup_state_record(b->st, &b->items[i].m);
	/* After their items: a file is known whole once all of them are. */
	for (size_t i = 0; i < nf && rc == 0; i++)
		rc = pb__state_file_done(b->st, b->dfiles[i].path, &b->dfiles[i].stamp, b->dfiles[i].items,
					 b->dfiles[i].bytes);
	if (rc == 0)
		rc = pb_backup_state_end(b->st);
	for (size_t i = 0; i < k; i++)
		pb__bk_free_pending(&b->items[i]);
	if (k > 0) {
		memmove(b->items, b->items + k, (b->nitems - k) * sizeof(*b->items));
		b->nitems -= k;
	}
	files_drop(b, nf);
	return rc;
}

static int emit_manifest_chunk(void *arg, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	struct backup *b = arg;
	int rc = pb__sink_add_sealed(b->sink, name, ct, len);

	/* A tick: a file whose spans name it is recorded only once a commit
	 * asked after it is in (group_end). */
	b->ticks++;
	if (rc == 0 && pb__sink_due(b->sink))
		rc = pb__bk_commit(b, false);
	return rc;
}

/* The same by its plaintext, sealed on the sink's sealing threads. */
static int emit_manifest_plain(void *arg, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *plain, size_t len,
			       int level)
{
	struct backup *b = arg;
	int rc = pb__sink_add_manifest(b->sink, name, plain, len, level);

	b->ticks++;
	if (rc == 0 && pb__sink_due(b->sink))
		rc = pb__bk_commit(b, false);
	return rc;
}

static void file_forget(struct backup *b)
{
	free(b->file);
	b->file = NULL;
	b->file_gave = false;
	b->file_seq = 0;
}

/* Remembers how far the walk got in a multi-item file (items come by seq). */
static int file_note(struct backup *b, const pb_item_t *it)
{
	if (it->data == NULL || it->path == NULL)
		return 0;
	if (b->file == NULL || strcmp(b->file, it->path) != 0) {
		file_forget(b);
		if ((b->file = strdup(it->path)) == NULL)
			return PB_ENOMEM;
	}
	b->file_gave = true;
	if (it->seq > b->file_seq)
		b->file_seq = it->seq;
	return 0;
}

/* An id key's 8 bytes, read little-endian (pb__manifest_id_key). */
static uint64_t key_of(const uint8_t h[8])
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | h[i];
	return v;
}

/* pb__manifest_id_key of id, from the prepared key. */
static uint64_t id_key(const struct backup *b, const char *id, size_t len)
{
	uint8_t h[8];

	pb__b2k_hash(&b->id_k, (const uint8_t *)id, len, h);
	return key_of(h);
}

/* Unchanged: same bytes (items in memory are hashed; others are taken as
 * unchanged when size and change stamp match) and every chunk committed
 * in the repository. Its chunk names are left in b->old (b->nold). One
 * lookup of the state. */
static bool unchanged(struct backup *b, const pb_item_t *it, int64_t mtime, uint8_t hash[32])
{
	uint8_t rec_hash[32];
	uint64_t rec_size;
	int64_t rec_mtime;

	if (pb__state_item_get(b->st, it->id, &rec_size, &rec_mtime, rec_hash, &b->old, &b->cap_old, &b->nold) != 0)
		return false;
	if (it->data != NULL) {
		/* Items split out of a file share its modification time, which
		 * changes with any of them: their content decides. */
		pb__b2k_hash(&b->item_k, it->data, it->len, hash);
		if (rec_size != it->len || sodium_memcmp(rec_hash, hash, 32) != 0)
			return false;
	} else {
		if (rec_size != it->size || rec_mtime != mtime)
			return false;
		memcpy(hash, rec_hash, 32);
	}
	for (size_t i = 0; i < b->nold; i++)
		if (!pb_backup_state_is_committed(b->st, b->old + i * PB_STORE_NAME_LEN))
			return false;
	return true;
}

/* --- A chat's messages as one stream (agent/backup/stream.c) ------------------------ */

static int stream_flush(struct backup *b)
{
	return pb__stream_on(&b->stream, NULL) ? pb__stream_flush(&b->stream) : 0;
}

/* The walk left the file: it is recorded at the next commit, unless it did
 * not parse. */
static int group_end(struct backup *b)
{
	struct done_file *d;
	int rc;

	if ((rc = stream_flush(b)) != 0)
		return rc;
	pb__manifest_writer_large(b->mw, false);
	if (!b->grp.on)
		return 0;
	b->grp.on = false;
	if (b->grp.bad || b->o->dry_run)
		return 0;
	/* The file's manifest chunks named and sent before its spans are
	 * stored and its mark taken. */
	if ((rc = pb__manifest_writer_flush(b->mw)) != 0 || (rc = pb__group_store(&b->grp, b->st, b->mw)) != 0 ||
	    b->grp.bad)
		return rc;
	if ((d = pb__grow_slot((void **)&b->dfiles, &b->cap_dfiles, b->ndfiles, sizeof(*d))) == NULL ||
	    (d->path = strdup(b->grp.path)) == NULL)
		return PB_ENOMEM;
	d->stamp = b->grp.stamp;
	d->items = b->grp.items;
	d->bytes = b->grp.bytes;
	/* Its items are all kept, its stream cut and the manifest chunks its
	 * spans name sent by now (the walk has left it: stream_flush above;
	 * each manifest chunk is a tick). */
	d->mark = b->ticks;
	b->ndfiles++;
	return 0;
}

static int group_begin(struct backup *b, const char *rel, const pb__stamp_t *stamp, int64_t rgen)
{
	int rc;

	/* A dry run gathers the file's items (its chat stream is cut as a
	 * backup would) but records nothing. */
	free(b->grp.path);
	if ((b->grp.path = strdup(rel)) == NULL)
		return PB_ENOMEM;
	b->grp.on = true;
	b->grp.bad = false;
	b->grp.stamp = *stamp;
	pb__stream_next_size(&b->stream, stamp->size);
	/* The file's first manifest chunk is counted from the chunks named
	 * so far: none may be waiting for a name. */
	if ((rc = pb__manifest_writer_flush(b->mw)) != 0)
		return rc;
	pb__group_begin(&b->grp, b->mw);
	if (rgen >= 0 && (rc = pb__group_digests_get(&b->grp, b->st, rel, rgen)) != 0)
		return rc;
	return 0;
}

/* Called after the item's record went into the manifest writer. */
static int group_add(struct backup *b, const char *path, const uint8_t *rec, size_t len, uint64_t size)
{
	if (!b->grp.on || b->grp.bad)
		return 0;
	if (path == NULL || strcmp(path, b->grp.path) != 0) {
		b->grp.bad = true; /* not one file's items: not known whole */
		return 0;
	}
	if (b->o->dry_run)
		return 0;
	b->grp.items++;
	b->grp.bytes += size;
	return pb__group_add_rec(&b->grp, b->st, b->mw, rec, len);
}

/* The item's manifest record, its id's key made already (key_on_parser):
 * into the manifest and its file's records. */
static int add_item_keyed(struct backup *b, const pb_manifest_item_t *m, uint64_t key)
{
	size_t len;
	int rc;

	if ((rc = pb__grow((void **)&b->rec, &b->cap_rec, pb__manifest_rec_max(m->nchunks), 1)) != 0)
		return rc;
	if ((rc = pb__manifest_rec_encode_key(b->mw, m, key, b->rec, b->cap_rec, &len)) != 0 ||
	    (rc = pb__manifest_writer_add_rec(b->mw, b->rec, len)) != 0)
		return rc;
	return group_add(b, m->path, b->rec, len, m->size);
}

static int add_item(struct backup *b, const pb_manifest_item_t *m)
{
	if (m->id == NULL)
		return PB_EINVAL;
	return add_item_keyed(b, m, id_key(b, m->id, strnlen(m->id, PB_MANIFEST_ID_MAX + 1)));
}

struct replay {
	struct backup *b;
	uint64_t items, bytes;
	bool after;       /* only the items after seq (a damaged file's rest) */
	uint64_t seq;
};

/* A damaged file's items after r->seq from one manifest chunk of its
 * last reading, read back from the repository: the chunk also holds items
 * the walk gave again. Everything sent so far is committed first, so that
 * no other answer is awaited meanwhile. */
static int carry_item(void *arg, const pb_manifest_item_t *m)
{
	struct replay *r = arg;
	int rc;

	if (m->seq <= r->seq)
		return 0;
	if ((rc = pb_manifest_writer_add(r->b->mw, m)) != 0)
		return rc;
	r->items++;
	r->bytes += m->size;
	return 0;
}

static int carry_chunk(struct replay *r, const uint8_t name[PB_STORE_NAME_LEN])
{
	struct backup *b = r->b;
	uint8_t *ct = NULL;
	size_t len = 0;
	uint64_t tok;
	int rc;

	if ((rc = pb__bk_commit(b, true)) != 0 || (rc = b->repo->ops->get_send(b->repo, NULL, name, &tok)) != 0 ||
	    (rc = b->repo->ops->get_recv(b->repo, tok, &ct, &len)) != 0)
		return rc;
	rc = pb_manifest_chunk_open(&b->keys, name, ct, len, carry_item, r);
	free(ct);
	return rc;
}

/* A span entry: its chunk listed whole, or for a damaged file (r->after)
 * only the items after r->seq. */
static int replay_span(struct replay *r, const uint8_t *e, size_t n)
{
	const uint8_t *name;
	uint64_t items, first, last, bytes;
	int rc;

	if (pb__manifest_span_info(e, n, &name, &items, &first, &last, &bytes) != 0)
		return pb__manifest_writer_add_span(r->b->mw, e, n); /* names referenced */
	if (r->after && last <= r->seq)
		return 0;
	if (r->after && first <= r->seq)
		return carry_chunk(r, name);
	if ((rc = pb__manifest_writer_add_span(r->b->mw, e, n)) != 0)
		return rc;
	r->items += items;
	r->bytes += bytes;
	return 0;
}

static int replay_part(void *arg, const uint8_t *data, size_t len)
{
	struct replay *r = arg;
	size_t off = 0, n;
	uint64_t seq, size;
	int rc;

	while (off < len) {
		if ((rc = pb__manifest_elem_next(data + off, len - off, &n)) != 0)
			return rc == PB_ENOMEM ? rc : PB_ESTORE_CORRUPT;
		if (pb__manifest_is_span(data + off)) {
			if ((rc = replay_span(r, data + off, n)) != 0)
				return rc == PB_ENOMEM || r->after ? rc : PB_ESTORE_CORRUPT;
			off += n;
			continue;
		}
		if ((rc = pb__manifest_rec_info(data + off, n, &seq, &size)) != 0 ||
		    ((!r->after || seq > r->seq) && (rc = pb__manifest_writer_add_rec(r->b->mw, data + off, n)) != 0))
			return rc == PB_ENOMEM ? rc : PB_ESTORE_CORRUPT;
		if (!r->after || seq > r->seq) {
			r->items++;
			r->bytes += size;
		}
		off += n;
	}
	return 0;
}

/* The file's records as the backup that read it last made them, without
 * reading, parsing or looking up any of its items; the file is touched,
 * so that its items are this run's. */
static int replay_records(struct backup *b, const char *rel, int64_t rgen, struct replay *r)
{
	int rc;

	if ((rc = pb__state_file_parts(b->st, rel, rgen, replay_part, r)) != 0)
		return rc;
	if (!b->o->dry_run) {
		if (b->touched == 0 && (rc = pb_backup_state_begin(b->st)) != 0)
			return rc;
		b->touched++;
		if ((rc = pb__state_file_touch(b->st, rel)) != 0)
			return rc;
	}
	b->res->items += r->items;
	b->res->bytes += r->bytes;
	b->pr.p.items_done += r->items;
	b->pr.p.bytes_done += r->bytes;
	return 0;
}

/* An unchanged file: its records, all of them. */
static int replay_file(struct backup *b, const char *rel, int64_t rgen, uint64_t items, uint64_t bytes)
{
	struct replay r = { b, 0, 0, false, 0 };
	int rc;

	if ((rc = replay_records(b, rel, rgen, &r)) != 0)
		return rc;
	if (r.items != items || r.bytes != bytes)
		return PB_ESTORE_CORRUPT;
	if ((rc = pb__progress(&b->pr, false)) != 0)
		return rc;
	return b->touched >= 8192 ? pb__bk_touch_end(b) : 0;
}

/* Asked before the walk reads a file: an unchanged one is replayed and
 * skipped (1); any other is read, its items gathered as a new group. */
static int file_seen(void *arg, const char *rel, const struct stat *st)
{
	struct backup *b = arg;
	pb__stamp_t now, was;
	uint64_t items, bytes;
	int64_t rgen;
	int rc;

	if ((rc = group_end(b)) != 0)
		return rc;
	pb__bk_stamp_of(st, &now);
	rc = pb__state_file_get(b->st, rel, &was, &rgen, &items, &bytes);
	if (rc == 0 && pb__bk_same_stamp(&now, &was)) {
		b->res->files_skipped++;
		return (rc = replay_file(b, rel, rgen, items, bytes)) != 0 ? rc : 1;
	}
	if (rc != 0 && rc != PB_ENOTFOUND)
		return rc;
	b->res->files_read++;
	b->seen = now;
	b->has_seen = true;
	return group_begin(b, rel, &now, rc == 0 ? rgen : -1);
}

/* Keeps a changed item until its chunks are committed. */
static int keep_pending(struct backup *b, const pb_manifest_item_t *m, const pb_item_t *it)
{
	struct pending_item *p;

	if ((p = pb__grow_slot((void **)&b->items, &b->cap_items, b->nitems, sizeof(*b->items))) == NULL)
		return PB_ENOMEM;
	p->id = strdup(it->id);
	p->path = strdup(it->path != NULL ? it->path : "");
	p->names = malloc(b->ncur ? b->ncur * sizeof(name_t) : 1);
	if (p->id == NULL || p->path == NULL || p->names == NULL) {
		pb__bk_free_pending(p);
		return PB_ENOMEM;
	}
	memcpy(p->names, b->cur, b->ncur * sizeof(name_t));
	p->m = *m;
	p->m.id = p->id;
	p->m.path = p->path;
	p->m.chunks = (const name_t *)p->names;
	p->mark = ++b->ticks;
	b->nitems++;
	return b->nitems >= COMMIT_ITEMS ? pb__bk_commit(b, false) : 0;
}

/* Chunks of a chat stream, through the sink like any other chunk: named
 * here, several at once (the chunk name is the keyed hash item_k makes),
 * sealed on its threads, skipped when the repository holds them committed
 * (a chat read before is cut whole again and most of its chunks are
 * known). Each is a tick: the file's mark comes after its last one. */
static int stream_chunks(void *arg, const uint8_t *const *data, const size_t *len, size_t n, uint8_t *const *name)
{
	struct backup *b = arg;
	size_t k;
	int rc;

	pb__chunk_names_many(&b->item_k, data, len, name, n);
	for (k = 0; k < n; k++) {
		if ((rc = pb__sink_add_known_level(b->sink, data[k], len[k], name[k], PB_STREAM_ZLEVEL)) != 0)
			return rc;
		b->ticks++;
		if (pb__sink_due(b->sink) && (rc = pb__bk_commit(b, false)) != 0)
			return rc;
	}
	return 0;
}

static int stream_rec(void *arg, const pb_manifest_item_t *m, uint64_t key)
{
	return add_item_keyed(arg, m, key);
}

/* A chat message of a file being read whole goes into its chat's stream:
 * no state row, chunk or lookup of its own. */
bool pb__stream_off;

static bool streamed(const struct backup *b, const pb_item_t *it)
{
	return !pb__stream_off && b->grp.on && !b->grp.bad && it->kind == PB_KIND_CHAT && it->data != NULL && it->path != NULL &&
	       strcmp(it->path, b->grp.path) == 0;
}

static int stream_item(struct backup *b, const pb_item_t *it)
{
	const pb__item_x_t *x = b->xwalk ? (const pb__item_x_t *)it : NULL;
	uint8_t hash[32];
	uint64_t d, key;
	int rc;

	/* Hashed already by the thread that parsed the chat, or here. */
	if (x != NULL && x->hashed)
		memcpy(hash, x->hash, 32);
	else
		pb__b2k_hash(&b->item_k, it->data, it->len, hash);
	key = x != NULL && x->keyed ? x->key : id_key(b, it->id, strlen(it->id));
	/* Made beside the hashes of a large chat's messages, or here. */
	d = x != NULL && x->hashed && x->digested ? x->digest : pb__group_digest(it->id, hash);
	if (!pb__group_digest_known(&b->grp, d))
		b->res->items_changed++;
	if ((rc = pb__grow((void **)&b->grp.dig, &b->grp.cap_dig, b->grp.ndig + 1, 8)) != 0)
		return rc;
	b->grp.dig[b->grp.ndig++] = d;
	if ((rc = pb__stream_add(&b->stream, it->path, it, hash, key)) != 0)
		return rc;
	/* A large chat's records are cut into larger manifest chunks too,
	 * until its file ends (group_end). */
	pb__manifest_writer_large(b->mw, b->stream.large);
	b->res->items++;
	b->res->bytes += it->len;
	b->pr.p.items_done++;
	b->pr.p.bytes_done += it->len;
	return pb__progress(&b->pr, false);
}

bool pb__item_hash_bytes;

static int backup_item(void *arg, const pb_item_t *it)
{
	struct backup *b = arg;
	pb_manifest_item_t m;
	uint8_t hash[32];
	uint64_t size = it->size;
	int rc;

	if ((rc = file_note(b, it)) != 0)
		return rc;
	if (streamed(b, it))
		return stream_item(b, it);
	if ((rc = stream_flush(b)) != 0)
		return rc;
	memset(&m, 0, sizeof(m));
	m.kind = (uint32_t)it->kind;
	m.id = it->id;
	m.path = it->path != NULL ? it->path : ""; /* an application's items may have none */
	m.seq = it->seq;
	/* A split item's time is its file's, which changes with any sibling:
	 * recording it would churn the manifest. Files keep theirs. */
	m.mtime = it->data != NULL ? 0 : (int64_t)it->mtime_ns;
	if (unchanged(b, it, m.mtime, hash)) {
		m.size = size;
		memcpy(m.hash, hash, 32);
		m.nchunks = b->nold;
		m.chunks = (const name_t *)b->old;
		rc = add_item(b, &m);
		if (rc == 0)
			rc = touch_item(b, &m);
		b->pr.p.bytes_done += size;
		goto out_count;
	}
	b->res->items_changed++;
	b->ncur = 0;
	b->whole = false;
	b->by_names = it->data == NULL && !pb__item_hash_bytes;
	crypto_generichash_init(&b->hash, b->keys.name, sizeof(b->keys.name), 32);
	if (it->data != NULL) {
		rc = pb__bk_chunk_memory(b, it->data, it->len);
		size = it->len;
	} else if (it->file != NULL) {
		rc = pb__bk_chunk_file(b, it, &size);
	} else {
		rc = pb__bk_chunk_read(b, it, &size);
	}
	/* The hashing thread may still hold b->hash (also on failure). */
	pb__sink_hash_wait(b->sink);
	if (rc != 0)
		return rc;
	if (it->data != NULL && b->ncur == 1 && it->len >= PB_CHUNK_TREE_MIN) {
		/* An item in memory: the hash of its bytes, as its unchanged
		 * check makes it; its one chunk's name is made of segments. */
		pb__b2k_hash(&b->item_k, it->data, it->len, hash);
	} else if ((b->whole || b->by_names) && b->ncur == 1) {
		memcpy(hash, b->cur[0], 32);
	} else if (b->by_names && b->ncur >= 2) {
		pb__item_names_hash(&b->keys, (const uint8_t *)b->cur, b->ncur, hash);
	} else if (b->by_names) {
		pb__item_hash(&b->keys, (const uint8_t *)"", 0, hash); /* emptied after its size was read */
	} else {
		crypto_generichash_final(&b->hash, hash, 32);
	}
	m.size = size;
	memcpy(m.hash, hash, 32);
	m.nchunks = b->ncur;
	m.chunks = (const name_t *)b->cur;
	if ((rc = add_item(b, &m)) != 0)
		return rc;
	/* Recorded as backed up once its chunks are committed. */
	rc = keep_pending(b, &m, it);
out_count:
	b->res->items++;
	b->res->bytes += size;
	b->pr.p.items_done++;
	if (rc == 0)
		rc = pb__progress(&b->pr, false);
	return rc;
}

/* --- A source that does not parse ------------------------------------------------ */

/* Its items as the last backup that saw the file recorded them go into this
 * snapshot unchanged (their chunks are in the repository), so skipping a
 * damaged file loses nothing that was backed up before. Items the walk
 * already gave from the file stand; only later ones (by seq) are carried
 * over. */
struct carry {
	struct backup *b;
	const char *path;
	pb_manifest_item_t *v;
	char **ids;
	name_t **names;
	size_t n, cap, cap_ids, cap_names;
};

static int carry_collect(void *arg, const pb_manifest_item_t *m)
{
	struct carry *c = arg;
	struct backup *b = c->b;
	int rc;

	if (b->file_gave && strcmp(b->file, c->path) == 0 && m->seq <= b->file_seq)
		return 0;
	if (!pb_backup_state_unchanged(b->st, m->id, m->size, m->mtime, m->hash))
		return 0;
	if ((rc = pb__grow((void **)&c->v, &c->cap, c->n + 1, sizeof(*c->v))) != 0 ||
	    (rc = pb__grow((void **)&c->ids, &c->cap_ids, c->n + 1, sizeof(char *))) != 0 ||
	    (rc = pb__grow((void **)&c->names, &c->cap_names, c->n + 1, sizeof(name_t *))) != 0)
		return rc;
	c->ids[c->n] = strdup(m->id);
	c->names[c->n] = malloc(m->nchunks ? m->nchunks * sizeof(name_t) : 1);
	if (c->ids[c->n] == NULL || c->names[c->n] == NULL) {
		free(c->ids[c->n]);
		free(c->names[c->n]);
		return PB_ENOMEM;
	}
	memcpy(c->names[c->n], m->chunks, m->nchunks * sizeof(name_t));
	c->v[c->n] = *m;
	c->v[c->n].id = c->ids[c->n];
	c->v[c->n].path = c->path;
	c->v[c->n].chunks = (const name_t *)c->names[c->n];
	c->n++;
	return 0;
}

static int carry_over(struct backup *b, const char *path)
{
	struct carry c;
	pb__stamp_t was;
	uint64_t items, bytes;
	int64_t rgen;
	int rc;

	/* A file known whole: the records of its last reading (a chat's
	 * messages have no rows of their own). */
	if (b->by_file && (rc = pb__state_file_get(b->st, path, &was, &rgen, &items, &bytes)) != PB_ENOTFOUND) {
		struct replay r = { b, 0, 0, true, 0 };

		if (rc != 0)
			return rc;
		if (b->file_gave && strcmp(b->file, path) == 0)
			r.seq = b->file_seq;
		else
			r.after = false;
		rc = replay_records(b, path, rgen, &r);
		b->res->items_kept += r.items;
		return rc;
	}
	memset(&c, 0, sizeof(c));
	c.b = b;
	c.path = path;
	rc = pb_backup_state_path_items(b->st, path, carry_collect, &c);
	for (size_t i = 0; i < c.n && rc == 0; i++) {
		if ((rc = pb_manifest_writer_add(b->mw, &c.v[i])) == 0)
			rc = touch_item(b, &c.v[i]);
		b->res->items++;
		b->res->bytes += c.v[i].size;
		b->res->items_kept++;
	}
	for (size_t i = 0; i < c.n; i++) {
		free(c.ids[i]);
		free(c.names[i]);
	}
	free(c.v);
	free(c.ids);
	free(c.names);
	return rc;
}

/* A multi-item source that does not parse: named (with its line) in a
 * warning, skipped, its last backed-up items kept; everything else is
 * backed up. */
static int skip_file(void *arg, const char *rel, int err, uint64_t line, const char *why)
{
	struct backup *b = arg;
	int rc;

	b->res->skipped++;
	if ((rc = stream_flush(b)) != 0)
		return rc;
	if (b->grp.on && strcmp(b->grp.path, rel) == 0)
		b->grp.bad = true;
	if (b->o->on_skip != NULL)
		b->o->on_skip(b->o->skip_arg, rel, line, why);
	if ((rc = carry_over(b, rel)) != 0)
		return rc;
	return pb__warn(b->o, "backup", rel, line, err, why);
}

/* A chat message's content hash (pb__item_hash), made on the thread that
 * parsed it: the keys are only read. */
static void hash_on_parser(void *arg, const uint8_t *data, size_t len, uint8_t out[32])
{
	const struct backup *b = arg;

	pb__b2k_hash(&b->item_k, data, len, out);
}

/* And its id's key in the manifest's index (pb__manifest_id_key). */
static uint64_t key_on_parser(void *arg, const char *id, size_t len)
{
	return id_key(arg, id, len);
}

/* The same for a batch of messages, several at once in vector lanes. */
static void hash_many_on_parser(void *arg, const uint8_t *const *data, const size_t *len, uint8_t *const *out,
				size_t n)
{
	const struct backup *b = arg;

	pb__b2k_hash_many(&b->item_k, data, len, out, n);
}

static void keys_many_on_parser(void *arg, const char *const *id, const size_t *idlen, uint64_t *keys, size_t n)
{
	enum { AT_ONCE = 64 };
	const struct backup *b = arg;
	uint8_t h[AT_ONCE][8], *out[AT_ONCE];

	for (size_t i = 0; i < AT_ONCE; i++)
		out[i] = h[i];
	for (size_t at = 0; at < n; at += AT_ONCE) {
		size_t m = n - at < AT_ONCE ? n - at : AT_ONCE;

		pb__b2k_hash_many(&b->id_k, (const uint8_t *const *)(id + at), idlen + at, out, m);
		for (size_t i = 0; i < m; i++)
			keys[at + i] = key_of(h[i]);
	}
}

/* The walk's next file, read ahead (not when files are hashed by their
 * bytes, a test's setting, which the reader does not do). */
static void ahead_on_walk(void *arg, const char *abs, const char *rel, bool now)
{
	pb__bk_ahead(arg, abs, rel, now && !pb__item_hash_bytes);
}

static int walk(struct backup *b, unsigned mask, int (*fcb)(void *, const char *, const struct stat *), pb_item_cb item,
		pb_scan_bad_cb bad, void *arg, bool hashed)
{
	pb__item_hasher_t h = { .fn = hash_on_parser, .arg = b, .key = key_on_parser, .many = hash_many_on_parser,
				.keys_many = keys_many_on_parser, .ahead = ahead_on_walk, .digest = pb__group_digest };
	int rc;

	if (b->by_file && fcb != NULL) {
		b->xwalk = hashed;
		rc = pb__provider_dir_list_files(b->prov, mask, fcb, hashed ? &h : NULL, item, bad, arg);
		b->xwalk = false;
	} else {
		rc = b->prov->list(b->prov->arg, mask, item, bad, arg);
	}

	if (rc != 0 && rc != PB_ECANCELED)
		snprintf(b->res->bad_path, sizeof(b->res->bad_path), "%s", pb__provider_dir_bad(b->prov));
	return rc;
}

/* --- A backup of some kinds ------------------------------------------------------- */

/* A snapshot is always the whole phone: a backup of some kinds takes the
 * other kinds' items from this phone's previous snapshot as they are
 * (same chunks, nothing sent), so "latest" is never missing a kind and
 * prune, which keeps the latest, cannot lose one. */
struct carry_kinds {
	struct backup *b;
	unsigned mask;
};

static int carry_kind_item(void *arg, const pb_manifest_item_t *m)
{
	struct carry_kinds *c = arg;
	int rc;

	if (m->kind < 32 && (c->mask & (1u << m->kind)) != 0)
		return 0;
	if ((rc = pb_manifest_writer_add(c->b->mw, m)) != 0)
		return rc;
	c->b->res->items++;
	c->b->res->bytes += m->size;
	c->b->res->items_carried++;
	return 0;
}

static int carry_kinds(struct backup *b, unsigned mask)
{
	struct carry_kinds c = { b, mask };
	const uint8_t *dev = b->repo->device_id;
	uint8_t *blob = NULL;
	name_t *mchunks = NULL;
	size_t len = 0, nm = 0;
	uint64_t snap, nitems;
	int64_t when;
	int rc = pb__repo_latest(b->repo, dev, &snap);

	if (rc == PB_ESTORE_NOSNAP)
		return 0; /* a first backup: nothing to carry */
	if (rc == 0)
		rc = b->repo->ops->snapshot_get(b->repo, dev, snap, &blob, &len);
	if (rc == 0)
		rc = pb_manifest_root_open(&b->keys, blob, len, &when, &nitems, &mchunks, &nm);
	for (size_t i = 0; i < nm && rc == 0; i++) {
		uint8_t *ct = NULL;
		size_t clen = 0;

		/* The items carried may have made manifest chunks: their
		 * answers come first. */
		rc = pb__sink_settle(b->sink);
		if (rc == 0 && (rc = pb__repo_get(b->repo, dev, mchunks[i], &ct, &clen)) == 0)
			rc = pb_manifest_chunk_open(&b->keys, mchunks[i], ct, clen, carry_kind_item, &c);
		free(ct);
	}
	free(blob);
	free(mchunks);
	return rc;
}

struct count {
	struct backup *b;
	uint64_t items, bytes;
};

static int count_item(void *arg, const pb_item_t *it)
{
	struct count *c = arg;

	c->items++;
	c->bytes += it->size;
	return 0;
}

/* An unchanged file counts as its last backup recorded it, unread. A
 * changed multi-item file is not parsed just to be counted (a chat of a
 * million messages would be parsed twice): it counts as its last reading
 * did, or, never read, as its size and no items; the totals are for
 * progress only. */
static int count_file(void *arg, const char *rel, const struct stat *st)
{
	struct count *c = arg;
	pb__stamp_t now, was;
	uint64_t items, bytes;
	int64_t rgen;
	int rc = pb__state_file_get(c->b->st, rel, &was, &rgen, &items, &bytes);

	pb__bk_stamp_of(st, &now);
	if (rc == 0 && (pb__bk_same_stamp(&now, &was) || pb_codec_for(rel) != NULL)) {
		c->items += items;
		c->bytes += bytes;
		return 1;
	}
	if (rc == PB_ENOTFOUND && pb_codec_for(rel) != NULL) {
		c->bytes += (uint64_t)st->st_size;
		return 1;
	}
	return rc == 0 || rc == PB_ENOTFOUND ? 0 : rc;
}

/* The snapshot is in: every item of this run is in it, and this
 * repository must hold it from now on (a restore from it that finds only
 * older snapshots is a rollback). */
static int snapshot_done(struct backup *b, const uint8_t *root, size_t root_len, const name_t *refs, size_t nrefs)
{
	/* Snapshot ids order backups in time ("latest" is the largest):
	 * microseconds, so that two backups in one second still order, and
	 * 12 random bits below. */
	struct timespec ts;
	uint64_t id;
	int rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	id = (((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u) << 12) | (randombytes_random() & 0xfff);
	if ((rc = b->repo->ops->snapshot_put(b->repo, id, root, root_len, refs, nrefs)) != 0)
		return rc;
	b->res->snapshot = id;
	if ((rc = pb_backup_state_run_done(b->st, id)) != 0 ||
	    (rc = pb_backup_state_set_host_done(b->st, b->repo->host_pk, id)) != 0)
		return rc;
	if (b->o->provider == NULL && b->o->device_dir != NULL) {
		/* Remember which snapshot holds the contacts of the active SIM
		 * identity, for a phone that later gets that SIM. */
		char iccid[32], msisdn[32], key[4 + 64 + 1];
		uint8_t val[8];

		if (pb__sim_identity(b->o->device_dir, iccid, sizeof(iccid), msisdn, sizeof(msisdn)) == 0) {
			pb__sim_key(&b->keys, iccid, msisdn, key);
			for (int k = 0; k < 8; k++)
				val[k] = (uint8_t)(id >> (8 * k));
			rc = b->repo->ops->blob_put(b->repo, key, val, sizeof(val));
		}
	}
	return rc;
}

/* The keys of this run. A dry run neither makes nor stores a key: before
 * the first backup every chunk is new, whatever key names it. */
static int run_keys(struct backup *b)
{
	uint8_t mk[PB_MASTERKEY_LEN];
	int rc;

	if (b->o->dry_run) {
		rc = pb__master_local(b->o->home, mk);
		if (rc == -ENOENT) {
			randombytes_buf(mk, sizeof(mk));
			rc = 0;
		}
	} else {
		rc = pb__master_key(b->repo, b->o, NULL, true, mk);
	}
	if (rc != 0)
		return rc;
	pb_backup_keys_derive(mk, &b->keys);
	pb__b2k_init(&b->item_k, b->keys.name, sizeof(b->keys.name), 32, NULL);
	pb__b2k_init(&b->id_k, b->keys.name, sizeof(b->keys.name), 8, NULL);
	sodium_memzero(mk, sizeof(mk));
	pb_cdc_init(&b->cdc, &b->keys);
	pb__stream_init(&b->stream, &b->cdc, stream_chunks, stream_rec, b);
	return 0;
}

static int sink_open(struct backup *b)
{
	pb__sink_opts_t so;

	memset(&so, 0, sizeof(so));
	so.repo = b->repo;
	so.st = b->st;
	so.keys = &b->keys;
	so.dry_run = b->o->dry_run;
	so.res = b->res;
	so.pr = &b->pr;
	so.durable = durable;
	so.arg = b;
	return pb__sink_new(&so, &b->sink);
}

static int backup_walk(struct backup *b, unsigned mask)
{
	uint8_t *root = NULL;
	name_t *refs = NULL;
	size_t root_len = 0, nrefs = 0;
	int rc;

	if ((rc = pb_manifest_writer_new(&b->keys, emit_manifest_chunk, b, &b->mw)) != 0)
		return rc;
	pb__manifest_writer_indexed(b->mw);
	/* A manifest or index chunk this phone knows committed is not sealed
	 * again (most of a re-backup's manifest is unchanged): the sink asks
	 * the state (pb__sink_add_manifest), once a chunk, so the writer does
	 * not ask as well. */
	pb__manifest_writer_plain(b->mw, emit_manifest_plain, b);
	rc = walk(b, mask, file_seen, backup_item, skip_file, b, true);
	if (rc == 0)
		rc = group_end(b);
	/* The files are read: their memory goes before the manifest's end
	 * takes its own (the phone's peak). */
	pb__reader_trim(b->reader);
	pb__sink_keep_none(b->sink);
	if (rc == PB_ECANCELED && !b->o->dry_run) {
		/* Canceled: what was sent is committed, so the next run does
		 * not send it again; no snapshot is made. */
		int crc = pb__bk_commit(b, true);

		return crc != 0 ? crc : rc;
	}
	/* Other kinds are read from the repository: nothing may be in
	 * flight then. */
	if (rc == 0 && (mask & PB_KIND_ALL) != PB_KIND_ALL && (rc = pb__bk_commit(b, true)) == 0)
		rc = carry_kinds(b, mask);
	if (rc == 0)
		rc = pb_manifest_writer_finish(b->mw, (int64_t)time(NULL), &root, &root_len, &refs, &nrefs);
	if (rc == 0)
		rc = pb__bk_commit(b, true);
	if (rc == 0 && !b->o->dry_run)
		rc = snapshot_done(b, root, root_len, (const name_t *)refs, nrefs);
	if (rc == 0 && !b->o->dry_run && b->by_file && (mask & PB_KIND_ALL) == PB_KIND_ALL)
		rc = pb__state_files_prune(b->st);
	b->res->chunks_total = nrefs;
	free(root);
	free(refs);
	return rc;
}

static void backup_free(struct backup *b)
{
	if (b->touched > 0)
		(void)pb__bk_touch_end(b);
	pb_manifest_writer_free(b->mw);
	pb__sink_free(b->sink);
	/* After the sink, which gives back the reader's buffers it held. */
	pb__reader_free(b->reader);
	if (b->ahead_fd >= 0)
		close(b->ahead_fd);
	files_drop(b, b->ndfiles);
	free(b->dfiles);
	pb__group_free(&b->grp);
	pb__stream_free(&b->stream);
	free(b->rec);
	free(b->old);
	for (size_t i = 0; i < b->nitems; i++)
		pb__bk_free_pending(&b->items[i]);
	pb_backup_state_close(b->st);
	pb_cdc_wipe(&b->cdc);
	pb_backup_keys_wipe(&b->keys);
	sodium_memzero(&b->item_k, sizeof(b->item_k));
	sodium_memzero(&b->id_k, sizeof(b->id_k));
	free(b->items);
	free(b->cur);
	free(b->filebuf);
	file_forget(b);
	free(b);
}

static int backup_once(const pb_engine_opts_t *o, const pb_provider_t *prov, pb_engine_result_t *res)
{
	struct backup *b;
	struct count cnt = { NULL, 0, 0 };
	char path[4096];
	unsigned mask = o->kind_mask ? o->kind_mask : PB_KIND_ALL;
	double t0 = pb__now_s();
	bool owned = false;
	int rc;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return PB_ENOMEM;
	b->ahead_fd = -1;
	b->o = o;
	b->prov = prov;
	b->res = res;
	b->pr.o = o;
	b->pr.p.phase = "scan";
	b->by_file = pb__provider_is_dir(prov);
	cnt.b = b;
	/* The state first: the counting walk and the sink read it. */
	if ((rc = pb__state_path(o->home, path, sizeof(path))) != 0 || (rc = pb_backup_state_open(path, &b->st)) != 0)
		goto out;
	if ((rc = walk(b, mask, count_file, count_item, pb__skip_quietly, &cnt, false)) != 0)
		goto out;
	b->pr.p.phase = "backup";
	b->pr.p.items_total = cnt.items;
	b->pr.p.bytes_total = cnt.bytes;
	if ((rc = pb__engine_repo(o, &b->repo, &owned)) != 0)
		goto out;
	if ((rc = run_keys(b)) != 0)
		goto out;
	if (!o->dry_run && (rc = pb_backup_state_run_begin(b->st)) != 0)
		goto out;
	if ((rc = sink_open(b)) != 0)
		goto out;
	if (!o->dry_run)
		pb__repo_remote_bulk(b->repo);
	rc = backup_walk(b, mask);
	res->seconds = pb__now_s() - t0;
	b->pr.p.items_done = res->items;
	if (rc == 0)
		(void)pb__progress(&b->pr, true);
out:
	if (owned)
		pb__repo_close(b->repo);
	backup_free(b);
	return rc;
}

int pb_engine_backup(const pb_engine_opts_t *o, pb_engine_result_t *res)
{
	const pb_provider_t *prov;
	pb_provider_t *owned;
	int rc;

	memset(res, 0, sizeof(*res));
	if ((rc = pb__engine_provider(o, &prov, &owned)) != 0)
		goto out;
	rc = backup_once(o, prov, res);
	if (rc == PB_ESTORE_NOCHUNK) {
		/* The repository no longer holds chunks this phone believed
		 * committed (its store was replaced): forget that belief and
		 * send again. The snapshots completed with each host are kept:
		 * a host cannot make the phone forget them this way. */
		char path[4096];
		pb_backup_state_t *st;

		if (pb__state_path(o->home, path, sizeof(path)) == 0 && pb_backup_state_open(path, &st) == 0) {
			rc = pb_backup_state_reset(st);
			pb_backup_state_close(st);
			if (rc != 0)
				goto out;
		}
		memset(res, 0, sizeof(*res));
		rc = backup_once(o, prov, res);
	}
out:
	pb_provider_dir_free(owned);
	pb__done(o, "backup", rc, res->snapshot);
	return rc;
}
