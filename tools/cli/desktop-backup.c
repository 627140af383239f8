/* The desktop's read-only view of a backup: the account's master key
 * unwrapped with the recovery passphrase (kept in memory only), the latest
 * snapshot of one device decrypted from the host's own store and laid out
 * as a device directory in a private folder on a memory file system, so
 * that the library's exporters read it as they read a phone's. Lock wipes
 * the key and removes the folder. */
#define _XOPEN_SOURCE 700
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback.h"
#include "desktop.h"

/* Where decrypted items may live: memory-backed, private to this user. */
static int private_dir(char *out, size_t cap)
{
	const char *bases[] = {"/dev/shm", getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), "/tmp"};

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (bases[i] == NULL || bases[i][0] == 0)
			continue;
		if ((size_t)snprintf(out, cap, "%s/peerback-desktop-XXXXXX", bases[i]) >= cap)
			continue;
		if (mkdtemp(out) != NULL)
			return 0;
	}
	return -errno;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	if (dir[0] != 0)
		(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

struct collect {
	pb_manifest_item_t *items;
	char **strs; /* id and path per item */
	uint8_t (**chunks)[PB_STORE_NAME_LEN];
	size_t n, cap;
	/* The chunk opened last: the messages of a chat stream share chunks. */
	uint8_t last[PB_STORE_NAME_LEN];
	uint8_t *plain;
	size_t plen;
	bool have;
};

static int collect_item(void *arg, const pb_manifest_item_t *it)
{
	struct collect *c = arg;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		void *a = realloc(c->items, cap * sizeof(*c->items));
		if (a == NULL)
			return -ENOMEM;
		c->items = a;
		if ((a = realloc(c->strs, cap * 2 * sizeof(char *))) == NULL)
			return -ENOMEM;
		c->strs = a;
		if ((a = realloc(c->chunks, cap * sizeof(*c->chunks))) == NULL)
			return -ENOMEM;
		c->chunks = a;
		c->cap = cap;
	}
	c->items[c->n] = *it;
	c->strs[2 * c->n] = strdup(it->id);
	c->strs[2 * c->n + 1] = strdup(it->path);
	c->chunks[c->n] = malloc(it->nchunks * PB_STORE_NAME_LEN + 1);
	if (c->strs[2 * c->n] == NULL || c->strs[2 * c->n + 1] == NULL || c->chunks[c->n] == NULL)
		return -ENOMEM;
	memcpy(c->chunks[c->n], it->chunks, it->nchunks * PB_STORE_NAME_LEN);
	c->items[c->n].id = c->strs[2 * c->n];
	c->items[c->n].path = c->strs[2 * c->n + 1];
	c->items[c->n].chunks = (const uint8_t (*)[PB_STORE_NAME_LEN])c->chunks[c->n];
	c->n++;
	return 0;
}

static void collect_free(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->strs[2 * i]);
		free(c->strs[2 * i + 1]);
		free(c->chunks[i]);
	}
	free(c->items);
	free(c->strs);
	free(c->chunks);
	if (c->plain != NULL) {
		sodium_memzero(c->plain, PB_CHUNK_PLAIN_MAX);
		free(c->plain);
	}
}

/* One item's plaintext, its chunks fetched and opened in order (the one
 * opened last is kept in c). */
static int item_bytes(pb_store_ns_t *ns, const pb_backup_keys_t *keys, const pb_manifest_item_t *it,
		      struct collect *c, pb_buf_t *out)
{
	int rc = 0;

	if (c->plain == NULL && (c->plain = malloc(PB_CHUNK_PLAIN_MAX)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; rc == 0 && i < it->nchunks; i++) {
		uint8_t *ct = NULL;
		size_t ct_len = 0;

		if (!c->have || memcmp(c->last, it->chunks[i], PB_STORE_NAME_LEN) != 0) {
			c->have = false;
			if ((rc = pb_store_get(ns, it->chunks[i], &ct, &ct_len)) != 0)
				break;
			rc = pb_chunk_open(keys, it->chunks[i], ct, ct_len, c->plain, PB_CHUNK_PLAIN_MAX, &c->plen);
			free(ct);
			if (rc != 0)
				break;
			memcpy(c->last, it->chunks[i], PB_STORE_NAME_LEN);
			c->have = true;
		}
		rc = pb_buf_append(out, c->plain, c->plen);
	}
	/* A message of a chat stream: its part of its chunks. */
	if (rc == 0 && it->slice) {
		if (it->off > out->len || it->size > out->len - it->off)
			rc = -EIO;
		else if (it->size > 0)
			memmove(out->data, out->data + it->off, (size_t)it->size);
		if (rc == 0)
			out->len = (size_t)it->size;
	}
	return rc;
}

/* What a search looks at in a message, ASCII letters folded to lower case:
 * a Telegram message's sender and text (not its JSON keys), a WhatsApp
 * line as it is. */
static char *search_text(const char *text, size_t len, size_t *out_len)
{
	json_t *o = json_loadb(text, len, 0, NULL), *t;
	pb_buf_t b = {0};
	size_t i;
	json_t *part;
	int rc = 0;

	if (o != NULL && json_is_object(o)) {
		const char *from = json_string_value(json_object_get(o, "from"));

		if (from != NULL)
			rc = pb_buf_append(&b, from, strlen(from));
		rc = rc != 0 ? rc : pb_buf_append(&b, "\n", 1);
		t = json_object_get(o, "text");
		if (json_is_string(t))
			rc = rc != 0 ? rc : pb_buf_append(&b, json_string_value(t), json_string_length(t));
		json_array_foreach(t, i, part) {
			json_t *pt = json_is_string(part) ? part : json_object_get(part, "text");

			if (json_is_string(pt))
				rc = rc != 0 ? rc : pb_buf_append(&b, json_string_value(pt), json_string_length(pt));
		}
	} else {
		rc = pb_buf_append(&b, text, len);
	}
	json_decref(o);
	if (rc == 0)
		rc = pb_buf_append(&b, "", 1);
	if (rc != 0) {
		pb_buf_free(&b);
		return NULL;
	}
	for (i = 0; i < b.len; i++)
		if (b.data[i] < 0x80)
			b.data[i] = (uint8_t)tolower(b.data[i]);
	*out_len = b.len - 1;
	return (char *)b.data;
}

/* Keeps a chat message's text for search (in memory, wiped on lock). */
static int index_message(pb_desktop_view_t *v, const pb_manifest_item_t *it, const pb_buf_t *b)
{
	pb_desktop_msg_t *m;

	if (it->kind != PB_KIND_CHAT || strstr(it->id, "/msg/") == NULL)
		return 0;
	if (v->nmsgs == v->capmsgs) {
		size_t cap = v->capmsgs ? v->capmsgs * 2 : 1024;
		void *a = realloc(v->msgs, cap * sizeof(*v->msgs));
		if (a == NULL)
			return -ENOMEM;
		v->msgs = a;
		v->capmsgs = cap;
	}
	m = &v->msgs[v->nmsgs];
	m->id = strdup(it->id);
	m->text = malloc(b->len + 1);
	if (m->id == NULL || m->text == NULL) {
		free(m->id);
		free(m->text);
		return -ENOMEM;
	}
	memcpy(m->text, b->data, b->len);
	m->text[b->len] = 0;
	m->len = b->len;
	if ((m->lower = search_text(m->text, b->len, &m->lower_len)) == NULL) {
		free(m->id);
		free(m->text);
		return -ENOMEM;
	}
	v->nmsgs++;
	return 0;
}

/* Large chat attachments (photos, videos, voice) are most of a phone's
 * bytes and nothing the pages show: they stay encrypted until a chat
 * download needs them (pb_desktop_view_attachments). */
static bool deferred(const pb_manifest_item_t *it)
{
	return it->kind == PB_KIND_CHAT && it->seq == 0 && it->size >= 256 * 1024;
}

/* Decrypts item i of c into the device directory's transaction. */
static int write_item(pb_desktop_view_t *v, pb_provider_t *p, void *txn, pb_store_ns_t *ns, struct collect *c,
		      size_t i)
{
	const pb_manifest_item_t *it = &c->items[i];
	pb_buf_t b = {0};
	pb_item_t item;
	int rc = item_bytes(ns, &v->keys, it, c, &b);

	if (rc == 0) {
		memset(&item, 0, sizeof(item));
		item.kind = (pb_kind_t)it->kind;
		item.id = it->id;
		item.path = it->path;
		item.seq = it->seq;
		item.data = b.data != NULL ? b.data : (const uint8_t *)"";
		item.len = b.len;
		item.size = b.len;
		item.mtime_ns = (uint64_t)it->mtime;
		if (i > 0 && strcmp(c->items[i - 1].path, it->path) == 0)
			item.after = c->items[i - 1].id;
		rc = p->write(txn, &item);
		if (rc == 0)
			rc = index_message(v, it, &b);
	}
	pb_buf_free(&b);
	return rc;
}

int pb_desktop_view_attachments(pb_desktop_view_t *v, const char *home)
{
	struct collect *c = v->rest;
	char path[4096];
	pb_store_t *store = NULL;
	pb_store_ns_t *ns = NULL;
	pb_provider_t *p = NULL;
	void *txn = NULL;
	int rc;

	if (c == NULL)
		return 0;
	snprintf(path, sizeof(path), "%s/store", home);
	if ((rc = pb_store_open_ro(path, &store)) != 0)
		return rc;
	if ((rc = pb_store_ns_open_ro(store, v->account, v->device, &ns)) != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/device", v->dir);
	if ((rc = pb_provider_dir(path, &p)) != 0 || (rc = p->begin(p->arg, &txn)) != 0)
		goto out;
	for (size_t i = 0; rc == 0 && i < c->n; i++)
		if (deferred(&c->items[i]))
			rc = write_item(v, p, txn, ns, c, i);
	if (rc == 0)
		rc = p->commit(txn);
	else
		p->abort(txn);
	if (rc == 0) {
		collect_free(c);
		free(c);
		v->rest = NULL;
		v->pending = 0;
	}
out:
	if (p != NULL)
		pb_provider_dir_free(p);
	if (ns != NULL)
		pb_store_ns_close(ns);
	pb_store_close(store);
	return rc;
}

int pb_desktop_view_open(pb_desktop_view_t *v, const char *home, const char *account, const char *device,
			 const char *passphrase, atomic_bool *quit, pb_store_progress_cb progress, void *parg)
{
	char path[4096];
	pb_store_t *store = NULL;
	pb_store_ns_t *ns = NULL;
	pb_store_snapinfo_t *snaps = NULL;
	uint8_t *blob = NULL, (*mchunks)[PB_STORE_NAME_LEN] = NULL;
	size_t blen = 0, nsnaps = 0, nmchunks = 0;
	uint64_t nitems = 0;
	int64_t t = 0;
	struct collect c = {0};
	pb_provider_t *p = NULL;
	void *txn = NULL;
	int rc;

	pb_desktop_view_lock(v);
	snprintf(path, sizeof(path), "%s/store", home);
	if ((rc = pb_store_open_ro(path, &store)) != 0)
		return rc;
	if ((rc = pb_store_ns_open_ro(store, account, device, &ns)) != 0)
		goto out;
	if ((rc = pb_store_blob_get(ns, "masterkey", &blob, &blen)) != 0)
		goto out;
	rc = pb_masterkey_unwrap(blob, blen, passphrase, v->mk);
	free(blob);
	blob = NULL;
	if (rc != 0)
		goto out;
	pb_backup_keys_derive(v->mk, &v->keys);
	v->open = true;
	if ((rc = pb_store_snapshot_list(ns, &snaps, &nsnaps)) != 0)
		goto out;
	if (nsnaps == 0) {
		rc = PB_ESTORE_NOSNAP;
		goto out;
	}
	v->snapshot = snaps[nsnaps - 1].id;
	if ((rc = pb_store_snapshot_get(ns, v->snapshot, &blob, &blen)) != 0 ||
	    (rc = pb_manifest_root_open(&v->keys, blob, blen, &t, &nitems, &mchunks, &nmchunks)) != 0)
		goto out;
	v->time = t;
	for (size_t i = 0; rc == 0 && i < nmchunks; i++) {
		uint8_t *ct = NULL;
		size_t ct_len = 0;

		if ((rc = pb_store_get(ns, mchunks[i], &ct, &ct_len)) == 0)
			rc = pb_manifest_chunk_open(&v->keys, mchunks[i], ct, ct_len, collect_item, &c);
		free(ct);
	}
	if (rc != 0)
		goto out;
	if ((rc = private_dir(v->dir, sizeof(v->dir))) != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/device", v->dir);
	if ((rc = pb_provider_dir(path, &p)) != 0 || (rc = p->begin(p->arg, &txn)) != 0)
		goto out;
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		if (atomic_load(quit)) {
			rc = PB_ECANCELED;
			break;
		}
		if (progress != NULL && i % 1000 == 0)
			progress(parg, i, c.n);
		v->counts[c.items[i].kind < 6 ? c.items[i].kind : 0]++;
		if (deferred(&c.items[i])) {
			v->pending++;
			continue;
		}
		rc = write_item(v, p, txn, ns, &c, i);
	}
	if (rc == 0)
		rc = p->commit(txn);
	else
		p->abort(txn);
	txn = NULL;
	/* The list stays for the attachments left encrypted. */
	if (rc == 0 && v->pending > 0 && (v->rest = malloc(sizeof(c))) != NULL) {
		memcpy(v->rest, &c, sizeof(c));
		memset(&c, 0, sizeof(c));
		snprintf(v->account, sizeof(v->account), "%s", account);
	}
out:
	if (p != NULL)
		pb_provider_dir_free(p);
	collect_free(&c);
	free(mchunks);
	free(blob);
	free(snaps);
	if (ns != NULL)
		pb_store_ns_close(ns);
	pb_store_close(store);
	if (rc != 0)
		pb_desktop_view_lock(v);
	else
		snprintf(v->device, sizeof(v->device), "%s", device);
	return rc;
}

void pb_desktop_view_lock(pb_desktop_view_t *v)
{
	sodium_memzero(v->mk, sizeof(v->mk));
	pb_backup_keys_wipe(&v->keys);
	for (size_t i = 0; i < v->nmsgs; i++) {
		sodium_memzero(v->msgs[i].text, v->msgs[i].len);
		sodium_memzero(v->msgs[i].lower, v->msgs[i].lower_len);
		free(v->msgs[i].text);
		free(v->msgs[i].lower);
		free(v->msgs[i].id);
	}
	free(v->msgs);
	v->msgs = NULL;
	if (v->rest != NULL) {
		collect_free(v->rest);
		free(v->rest);
		v->rest = NULL;
	}
	v->pending = 0;
	v->nmsgs = v->capmsgs = 0;
	rm_tree(v->dir);
	v->dir[0] = 0;
	v->device[0] = 0;
	memset(v->counts, 0, sizeof(v->counts));
	v->open = false;
}
