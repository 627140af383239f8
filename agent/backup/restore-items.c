/* The items a restore takes: what kind_mask and item_id select, collected
 * from the snapshot's manifest chunks; the snapshot's root opened (from
 * the root cache for a lookup by id); one item found through the
 * snapshot's id index without a walk. Fetching and writing them is
 * restore.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zstd.h>

#include "agent/backup/restore-int.h"

static bool selected(const struct restore *r, const pb_manifest_item_t *m);
static bool ahead_root(struct restore *r, uint64_t snap);

static bool wanted(const struct restore *r, const pb_manifest_item_t *m)
{
	return selected(r, m) && (r->o->want == NULL || r->o->want(r->o->want_arg, m));
}

/* What kind_mask and item_id select. */
static bool selected(const struct restore *r, const pb_manifest_item_t *m)
{
	const char *want = r->exact_id != NULL ? r->exact_id : r->o->item_id;
	unsigned mask = r->o->kind_mask ? r->o->kind_mask : PB_KIND_ALL;
	size_t n;

	if (want == NULL)
		return m->kind < 32 && (mask & (1u << m->kind)) != 0;
	if (strcmp(m->id, want) == 0)
		return true;
	if (r->exact_id != NULL)
		return false;
	{
		/* A message comes with its chat's frame, without which the chat
		 * file cannot be written; the frame merges with an existing one. */
		const char *msg = strstr(want, "/msg/");

		if (msg != NULL && strncmp(want, "chat/", 5) == 0 && strlen(m->id) == (size_t)(msg - want) &&
		    strncmp(m->id, want, (size_t)(msg - want)) == 0)
			return true;
	}
	/* An id names that item and everything under it: "chat/42" is the
	 * chat, its messages, and its attachments in chats/42/. */
	n = strlen(want);
	if (strncmp(m->id, want, n) == 0 && m->id[n] == '/')
		return true;
	if (strncmp(want, "chat/", 5) == 0 && strchr(want + 5, '/') == NULL && m->path != NULL) {
		char prefix[PB_ITEM_ID_MAX + 16];

		if (snprintf(prefix, sizeof(prefix), "chats/%s/", want + 5) < (int)sizeof(prefix) &&
		    strncmp(m->path, prefix, strlen(prefix)) == 0)
			return true;
	}
	return false;
}

/* Remembers m as the manifest's previous item. */
static int note_prev(struct restore *r, const pb_manifest_item_t *m)
{
	free(r->prev_id);
	free(r->prev_path);
	r->prev_id = strdup(m->id);
	r->prev_path = strdup(m->path != NULL ? m->path : "");
	r->prev_seq = m->seq;
	return r->prev_id != NULL && r->prev_path != NULL ? 0 : PB_ENOMEM;
}

int pb__restore_collect(void *arg, const pb_manifest_item_t *m)
{
	struct restore *r = arg;
	struct want_item *w;
	const char *after = NULL;

	/* A file's items are listed together, by position: the item before
	 * this one in its file is the one listed before it. */
	if (r->prev_path != NULL && m->path != NULL && strcmp(r->prev_path, m->path) == 0 && r->prev_seq < m->seq)
		after = r->prev_id;
	if (!wanted(r, m))
		return note_prev(r, m);
	if ((w = pb__grow_slot((void **)&r->items, &r->cap_items, r->nitems, sizeof(*r->items))) == NULL)
		return PB_ENOMEM;
	w->m = *m;
	w->id = strdup(m->id);
	w->path = strdup(m->path != NULL ? m->path : "");
	w->after = after != NULL ? strdup(after) : NULL;
	w->names = malloc(m->nchunks ? m->nchunks * sizeof(name_t) : 1);
	if (w->id == NULL || w->path == NULL || w->names == NULL || (after != NULL && w->after == NULL)) {
		free(w->id);
		free(w->path);
		free(w->after);
		free(w->names);
		return PB_ENOMEM;
	}
	memcpy(w->names, m->chunks, m->nchunks * sizeof(name_t));
	w->m.id = w->id;
	w->m.path = w->path;
	w->m.chunks = (const name_t *)w->names;
	r->nitems++;
	return note_prev(r, m);
}

void pb__restore_items_free(struct restore *r)
{
	for (size_t i = 0; i < r->nitems; i++) {
		free(r->items[i].id);
		free(r->items[i].path);
		free(r->items[i].after);
		free(r->items[i].names);
	}
	r->nitems = 0;
}

/* pb__repo_latest, asked of the repository once per run and device: the
 * fast path, the rollback check and the snapshot's opening all need it. */
int pb__restore_latest(struct restore *r, const uint8_t dev[16], uint64_t *snap)
{
	pb__restore_ahead_take(r);
	if (!r->latest_asked || memcmp(r->latest_dev, dev, sizeof(r->latest_dev)) != 0) {
		memcpy(r->latest_dev, dev, sizeof(r->latest_dev));
		r->latest_rc = pb__repo_latest(r->repo, dev, &r->latest);
		r->latest_asked = true;
	}
	*snap = r->latest;
	return r->latest_rc;
}

/* The snapshot root did not open with the key at hand: a wrong key (this
 * phone's, for a device that made its backups with another) is far likelier
 * than damage. The device's own wrap, opened with the passphrase, decides:
 * a passphrase that does not open it is wrong; a key that opens it but not
 * the root means the root is damaged. Nothing is stored. */
static int reopen_root(struct restore *r, const uint8_t *blob, size_t len, int64_t *when, uint64_t *nitems,
		       name_t **mchunks, size_t *nm)
{
	uint8_t mk[PB_MASTERKEY_LEN];
	int rc = pb__master_device(r->repo, r->dev_id, r->o->passphrase, mk);

	if (rc != 0)
		return rc;
	pb_backup_keys_wipe(&r->keys);
	pb_backup_keys_derive(mk, &r->keys);
	sodium_memzero(mk, sizeof(mk));
	return pb__manifest_root_open_index(&r->keys, blob, len, when, nitems, mchunks, nm, &r->index, &r->nindex);
}

/* A lookup by id keeps the root it opened (agent/backup/root-cache.c). */
static bool wants_id(const struct restore *r)
{
	return r->exact_id != NULL || r->o->item_id != NULL;
}

/* Opens the snapshot (snap 0: the latest) of r->dev_id with the right key:
 * its manifest chunks. A lookup by id takes the root from the phone's
 * root cache when it holds this snapshot's. */
int pb__restore_open_snapshot(struct restore *r, uint64_t *snap, name_t **mchunks, size_t *nm, uint64_t *nitems)
{
	uint8_t mk[PB_MASTERKEY_LEN], *blob = NULL;
	size_t blob_len = 0;
	pb__root_t root;
	int64_t when;
	int rc;

	pb__restore_ahead_take(r);
	if (!r->keys_ready && wants_id(r) && r->ahead.root.map != NULL) {
		if (*snap == 0 && (rc = pb__restore_latest(r, r->dev_id, snap)) != 0)
			return rc;
		if (ahead_root(r, *snap)) {
			r->res->snapshot = *snap;
			*mchunks = r->cached_root.mchunks;
			*nm = r->cached_root.nm;
			*nitems = r->cached_root.nitems;
			r->index = r->cached_root.index;
			r->nindex = r->cached_root.nindex;
			return 0;
		}
	}
	pb__restore_ahead_free(r);
	if (!r->keys_ready) {
		if ((rc = pb__master_key(r->repo, r->o, r->dev_id, false, mk)) != 0)
			return rc;
		pb_backup_keys_derive(mk, &r->keys);
		sodium_memzero(mk, sizeof(mk));
		r->keys_ready = true;
	}
	if (*snap == 0 && (rc = pb__restore_latest(r, r->dev_id, snap)) != 0)
		return rc;
	r->res->snapshot = *snap;
	if (wants_id(r) && pb__root_cache_load(r->o->home, &r->keys, r->dev_id, *snap, &r->cached_root) == 0) {
		*mchunks = r->cached_root.mchunks;
		*nm = r->cached_root.nm;
		*nitems = r->cached_root.nitems;
		r->index = r->cached_root.index;
		r->nindex = r->cached_root.nindex;
		return 0;
	}
	if ((rc = r->repo->ops->snapshot_get(r->repo, r->dev_id, *snap, &blob, &blob_len)) != 0)
		return rc;
	rc = pb__manifest_root_open_index(&r->keys, blob, blob_len, &when, nitems, mchunks, nm, &r->index, &r->nindex);
	if (rc == PB_ESTORE_HASH)
		rc = reopen_root(r, blob, blob_len, &when, nitems, mchunks, nm);
	free(blob);
	if (rc == 0 && wants_id(r)) {
		root.time = when;
		root.nitems = *nitems;
		root.mchunks = *mchunks;
		root.nm = *nm;
		root.index = r->index;
		root.nindex = r->nindex;
		root.map = NULL;
		pb__root_cache_save(r->o->home, &r->keys, r->dev_id, *snap, &root);
	}
	return rc;
}

/* --- One item through the snapshot's id index ------------------------------------- */

/* The id index answers for one item by id: a fetch, or a restore of one
 * chat message (which has no items under it; anything else may, and
 * walks). */
static bool message_id(const char *want)
{
	const char *msg;

	if (strncmp(want, "chat/", 5) != 0)
		return false;
	msg = strstr(want, "/msg/");
	return msg != NULL && msg[5] != 0 && strchr(msg + 5, '/') == NULL;
}

bool pb__restore_index_applies(const struct restore *r, enum restore_mode mode, const char *want)
{
	if (want == NULL || r->index == NULL)
		return false;
	if (mode == MODE_FETCH)
		return true;
	return mode == MODE_RESTORE && !r->o->dry_run && message_id(want);
}

/* The ids a lookup of want through the index finds: for a message of a
 * restore its chat's frame first (frame holds it), then want. */
static size_t lookup_ids(const struct restore *r, const char *want, char frame[PB_ITEM_ID_MAX + 1],
			 const char *ids[2])
{
	const char *msg = strstr(want, "/msg/");
	size_t n = 0;

	if (r->exact_id == NULL && msg != NULL) {
		snprintf(frame, PB_ITEM_ID_MAX + 1, "%.*s", (int)(msg - want), want);
		ids[n++] = frame;
	}
	ids[n++] = want;
	return n;
}

/* --- Asked ahead ------------------------------------------------------------------ */

/* The latest snapshot and the index chunks are asked for before the
 * phone opens its state (which then overlaps the host's answer), in one
 * segment: the chunks as the root the root cache holds for the device
 * names them (when that root is still the latest, as it is between
 * backups), then the listing. A chunk asked for in vain (a newer
 * snapshot) costs a few kB; any chunk is checked against its name when
 * opened. The key is the phone's own (its master.key, or the one the
 * caller gave): the cache's check value, keyed with it, says that it
 * opened that root. */
void pb__restore_ask_ahead(struct restore *r, const char *want)
{
	const pb_engine_opts_t *o = r->o;
	struct ahead *a = &r->ahead;
	uint8_t mk[PB_MASTERKEY_LEN];
	char frame[PB_ITEM_ID_MAX + 1];
	const char *ids[2];
	size_t n, len = 0;
	bool keyed;

	if (want == NULL || r->repo->ops->list_send == NULL || o->snapshot != 0 || o->dry_run || !message_id(want))
		return;
	if (o->from_device == NULL)
		memcpy(a->dev, r->repo->device_id, sizeof(a->dev));
	else if (sodium_hex2bin(a->dev, sizeof(a->dev), o->from_device, strlen(o->from_device), NULL, &len, NULL) !=
			 0 ||
		 len != sizeof(a->dev))
		return; /* a device's name: the device list finds it */
	if (o->master_key != NULL) {
		memcpy(mk, o->master_key, sizeof(mk));
		keyed = true;
	} else {
		keyed = pb__master_local(o->home, mk) == 0;
	}
	if (keyed) {
		pb_backup_keys_derive(mk, &a->keys);
		if (pb__root_cache_load(o->home, &a->keys, a->dev, 0, &a->root) != 0)
			memset(&a->root, 0, sizeof(a->root));
	}
	sodium_memzero(mk, sizeof(mk));
	a->pending = true;
	if (a->root.map != NULL) {
		n = lookup_ids(r, want, frame, ids);
		for (size_t i = 0; i < n; i++) {
			uint64_t key = pb__manifest_id_key(&a->keys, ids[i], strlen(ids[i]));
			const uint8_t *name = pb__manifest_index_name(
				a->root.index, pb__manifest_index_pick(a->root.index, a->root.nindex, key));

			if (a->ngets > 0 && memcmp(r->pre[0].name, name, PB_STORE_NAME_LEN) == 0)
				continue;
			if (r->repo->ops->get_send(r->repo, a->dev, name, &a->tok[a->ngets]) != 0)
				return;
			memcpy(r->pre[a->ngets].name, name, PB_STORE_NAME_LEN);
			r->pre[a->ngets].ct = NULL;
			r->npre = ++a->ngets;
		}
	}
	a->listed = r->repo->ops->list_send(r->repo, a->dev, &a->list_tok) == 0;
}

/* Takes what pb__restore_ask_ahead asked for, in the order asked: the
 * chunks into r->pre (one not received is asked for again when needed),
 * the listing as pb__restore_latest's answer for the device. */
void pb__restore_ahead_take(struct restore *r)
{
	struct ahead *a = &r->ahead;
	pb_store_snapinfo_t *s = NULL;
	size_t n = 0;
	int rc;

	if (!a->pending)
		return;
	a->pending = false;
	for (size_t k = 0; k < a->ngets; k++) {
		r->pre[k].ct = NULL;
		if (r->repo->ops->get_recv(r->repo, a->tok[k], &r->pre[k].ct, &r->pre[k].len) != 0)
			r->pre[k].ct = NULL;
	}
	if (!a->listed)
		return;
	rc = r->repo->ops->list_recv(r->repo, a->list_tok, &s, &n);
	memcpy(r->latest_dev, a->dev, sizeof(r->latest_dev));
	r->latest_rc = pb__repo_latest_of(rc, s, n, &r->latest);
	r->latest_asked = true;
}

void pb__restore_ahead_free(struct restore *r)
{
	if (r->ahead.root.map != NULL)
		pb__root_free(&r->ahead.root);
	pb_backup_keys_wipe(&r->ahead.keys);
}

/* The root asked ahead with, when the snapshot is still the one the root
 * cache holds: it and its keys serve the restore. */
static bool ahead_root(struct restore *r, uint64_t snap)
{
	struct ahead *a = &r->ahead;

	if (a->root.map == NULL || a->root.snap != snap || memcmp(a->dev, r->dev_id, sizeof(a->dev)) != 0)
		return false;
	r->keys = a->keys;
	r->keys_ready = true;
	r->cached_root = a->root;
	memset(&a->root, 0, sizeof(a->root));
	return true;
}

struct find {
	struct restore *r;
	const char *id;  /* NULL: collect nothing, only note the last item */
	bool first;      /* no item seen yet in this manifest chunk */
	bool was_first;  /* the item found was the chunk's first */
};

static int find_item(void *arg, const pb_manifest_item_t *m)
{
	struct find *f = arg;
	bool first = f->first;

	f->first = false;
	if (f->id == NULL || strcmp(m->id, f->id) != 0)
		return note_prev(f->r, m);
	f->was_first = first;
	return pb__restore_collect(f->r, m);
}

static void forget_prev(struct restore *r)
{
	free(r->prev_id);
	free(r->prev_path);
	r->prev_id = r->prev_path = NULL;
	r->prev_seq = 0;
}

/* Asks for the chunks of a lookup by id together (one round trip for
 * all), kept in r->pre for lookup_get; names already kept or asked for
 * are skipped. */
static int prefetch(struct restore *r, const uint8_t *const *names, size_t n)
{
	uint64_t tok[4];
	size_t first = r->npre, k;
	int rc = 0;

	for (size_t i = 0; i < n && r->npre < sizeof(r->pre) / sizeof(r->pre[0]); i++) {
		for (k = 0; k < r->npre && memcmp(r->pre[k].name, names[i], PB_STORE_NAME_LEN) != 0; k++)
			;
		if (k < r->npre)
			continue;
		if ((rc = r->repo->ops->get_send(r->repo, r->dev_id, names[i], &tok[r->npre - first])) != 0)
			break;
		memcpy(r->pre[r->npre].name, names[i], PB_STORE_NAME_LEN);
		r->pre[r->npre].ct = NULL;
		r->npre++;
	}
	/* Every request sent is answered and taken, in order. */
	for (k = first; k < r->npre; k++) {
		int got = r->repo->ops->get_recv(r->repo, tok[k - first], &r->pre[k].ct, &r->pre[k].len);

		if (got != 0) {
			r->pre[k].ct = NULL;
			if (rc == 0)
				rc = got;
		}
	}
	return rc;
}

void pb__restore_prefetch_free(struct restore *r)
{
	for (size_t k = 0; k < r->npre; k++)
		free(r->pre[k].ct);
	r->npre = 0;
}

/* One decompression context for the chunks of a lookup by id (each
 * context is some 160 kB mapped, initialised and unmapped); NULL if none
 * could be made (each open then makes its own). */
static struct ZSTD_DCtx_s *lookup_dctx(struct restore *r)
{
	if (r->dctx == NULL)
		r->dctx = ZSTD_createDCtx();
	return r->dctx;
}

/* A chunk of a lookup by id: a copy of the one prefetched, else asked for. */
static int lookup_get(struct restore *r, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **ct, size_t *len)
{
	for (size_t k = 0; k < r->npre; k++) {
		if (r->pre[k].ct == NULL || memcmp(r->pre[k].name, name, PB_STORE_NAME_LEN) != 0)
			continue;
		if ((*ct = malloc(r->pre[k].len > 0 ? r->pre[k].len : 1)) == NULL)
			return PB_ENOMEM;
		memcpy(*ct, r->pre[k].ct, r->pre[k].len);
		*len = r->pre[k].len;
		return 0;
	}
	return pb__repo_get(r->repo, r->dev_id, name, ct, len);
}

/* Collects id from manifest chunk i (id NULL: notes its last item only). */
static int index_chunk(struct restore *r, const name_t *mchunks, size_t i, const char *id, bool *was_first)
{
	struct find f = { r, id, true, false };
	uint8_t *ct = NULL;
	size_t len = 0;
	int rc = lookup_get(r, mchunks[i], &ct, &len);

	if (rc == 0)
		rc = pb__manifest_chunk_open_dctx(&r->keys, mchunks[i], ct, len, find_item, &f, lookup_dctx(r));
	free(ct);
	*was_first = f.was_first;
	return rc;
}

/* The manifest chunks the index lists for id's key (at most 8). */
static int index_candidates(struct restore *r, const char *id, uint32_t cand[8], size_t *nc)
{
	uint64_t key = pb__manifest_id_key(&r->keys, id, strlen(id));
	size_t i = pb__manifest_index_pick(r->index, r->nindex, key);
	int rc = 0;

	*nc = 0;
	while (i < r->nindex && pb__manifest_index_first(r->index, i) <= key && *nc < 8) {
		const uint8_t *name = pb__manifest_index_name(r->index, i);
		uint8_t *ct = NULL;
		size_t len = 0, k = 0;

		if ((rc = lookup_get(r, name, &ct, &len)) == 0)
			rc = pb__manifest_index_find(&r->keys, name, ct, len, key, cand + *nc, 8 - *nc, &k,
						     lookup_dctx(r));
		free(ct);
		if (rc != 0)
			return rc;
		*nc += k;
		if (++i < r->nindex && pb__manifest_index_first(r->index, i) != key)
			break;
	}
	return 0;
}

/* Adds item id to r->items from the manifest chunks cand the index named
 * for its key, if the snapshot has it. */
static int index_collect(struct restore *r, const name_t *mchunks, size_t nm, const char *id, const uint32_t *cand,
			 size_t nc)
{
	int rc = 0;

	for (size_t c = 0; c < nc; c++) {
		size_t before = r->nitems;
		bool was_first = false;
		struct want_item *w;

		if (cand[c] >= nm)
			return PB_ESTORE_CORRUPT;
		forget_prev(r);
		if ((rc = index_chunk(r, mchunks, cand[c], id, &was_first)) != 0)
			return rc;
		if (r->nitems == before)
			continue; /* another id with the same key */
		w = &r->items[r->nitems - 1];
		if (was_first && w->after == NULL && w->m.seq > 0 && cand[c] > 0 && pb_codec_for(w->path) != NULL) {
			/* The item before it in its file may end the chunk
			 * before: read that one's last item first. */
			free(w->id);
			free(w->path);
			free(w->names);
			r->nitems--;
			forget_prev(r);
			if ((rc = index_chunk(r, mchunks, cand[c] - 1, NULL, &was_first)) != 0 ||
			    (rc = index_chunk(r, mchunks, cand[c], id, &was_first)) != 0)
				return rc;
		}
		return 0;
	}
	return 0;
}

/* One item (a message with its chat's frame) by id, any phone, no walk:
 * the index chunks of both ids are asked for together, then the manifest
 * chunks they name, then the item's chunks. */
int pb__restore_index_collect(struct restore *r, const char *want, const name_t *mchunks, size_t nm)
{
	char frame[PB_ITEM_ID_MAX + 1];
	const char *ids[2];
	const uint8_t *names[2];
	uint32_t cand[2][8];
	size_t nc[2] = { 0, 0 }, n, k;
	int rc = 0;

	r->res->by_index = true;
	n = lookup_ids(r, want, frame, ids);
	/* An empty index (an empty snapshot) names no chunk. */
	for (size_t i = 0; i < n && r->nindex > 0; i++) {
		uint64_t key = pb__manifest_id_key(&r->keys, ids[i], strlen(ids[i]));

		names[i] = pb__manifest_index_name(r->index, pb__manifest_index_pick(r->index, r->nindex, key));
	}
	rc = prefetch(r, names, r->nindex > 0 ? n : 0);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = index_candidates(r, ids[i], cand[i], &nc[i]);
	/* The first candidate is the item's manifest chunk but for another id
	 * of the same key (rare): the others are asked for when needed. */
	k = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (nc[i] > 0 && cand[i][0] < nm)
			names[k++] = mchunks[cand[i][0]];
	if (rc == 0)
		rc = prefetch(r, names, k);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = index_collect(r, mchunks, nm, ids[i], cand[i], nc[i]);
	pb__restore_prefetch_free(r);
	return rc;
}
