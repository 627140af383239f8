/* The device writer: restores items into a device directory atomically
 * (staged beside their targets, renamed into place at commit), merging
 * multi-item files with what is there and streaming a chat into its
 * staged file as its messages come. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/kinds/internal.h"
#include "agent/util/fsutil.h"
#include "agent/util/testhook.h"
#include "agent/kinds/util.h"
#include "agent/kinds/device-int.h"

/* --- Writer --------------------------------------------------------------- */

static void wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	sodium_memzero(p, len);
	free(p);
}

static void witem_clear(witem_t *it)
{
	free(it->id);
	free(it->after);
	wipe_free(it->data, it->len);
	memset(it, 0, sizeof(*it));
}

static void wentry_clear(wentry_t *e)
{
	pb__dw_stream_drop(e);
	free(e->path);
	wipe_free(e->data, e->len);
	free(e->src);
	for (size_t i = 0; i < e->n; i++)
		witem_clear(&e->items[i]);
	free(e->items);
	free(e->slots);
	memset(e, 0, sizeof(*e));
}

/* A path from a backup may be hostile: it must stay inside the kind's folder
 * of the device directory. */
static bool relpath_ok(const char *rel, pb_kind_t kind)
{
	size_t n, comps = 0;
	const char *p = rel;

	if (rel == NULL || (n = strlen(rel)) == 0 || n >= MAX_PATH - 256 || rel[0] == '/')
		return false;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t c = slash != NULL ? (size_t)(slash - p) : strlen(p);

		if (c == 0 || c > 255)
			return false;
		if ((c == 1 && p[0] == '.') || (c == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (strncmp(p, PB__DEVICE_TMP_PREFIX, strlen(PB__DEVICE_TMP_PREFIX)) == 0)
			return false;
		for (size_t i = 0; i < c; i++)
			if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\')
				return false;
		comps++;
		if (slash == NULL)
			break;
		p = slash + 1;
		if (*p == 0)
			return false; /* trailing slash: an empty last component */
	}
	return comps >= 2 && pb__device_kind_of(rel) == kind;
}

static bool id_ok(const char *id)
{
	size_t n;

	if (id == NULL || (n = strlen(id)) == 0 || n >= PB_ITEM_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
			return false;
	return true;
}

int pb_device_writer_open(const char *dir, pb_device_writer_t **out)
{
	pb_device_writer_t *w;

	*out = NULL;
	if (dir == NULL || dir[0] == 0 || strlen(dir) >= MAX_PATH - 512)
		return PB_EINVAL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return PB_ENOMEM;
	w->root = -1;
	/* Others' bytes waiting to be written from which files are synced
	 * one by one as they are staged (device-sync.c). */
	w->sync_dirty_min = 256ull << 20;
	w->dir = strdup(dir);
	if (w->dir == NULL) {
		free(w);
		return PB_ENOMEM;
	}
	*out = w;
	return 0;
}

static const char *entry_path(const void *arg, size_t i)
{
	return ((const pb_device_writer_t *)arg)->e[i].path;
}

static wentry_t *find_entry(pb_device_writer_t *w, const char *path)
{
	size_t i;

	/* Items of one file usually arrive together: look at the last first. */
	if (w->n > 0 && strcmp(w->e[w->n - 1].path, path) == 0)
		return &w->e[w->n - 1];
	i = pb__pathidx_find(&w->eidx, path, entry_path, w);
	return i < w->n ? &w->e[i] : NULL;
}

/* The entries' index made again after they moved. */
static int index_entries(pb_device_writer_t *w)
{
	int rc = 0;

	pb__pathidx_clear(&w->eidx);
	for (size_t i = 0; i < w->n && rc == 0; i++)
		rc = pb__pathidx_put(&w->eidx, w->e[i].path, i, entry_path, w);
	return rc;
}

static int item_bytes(const pb_item_t *item, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (item->data != NULL || item->file == NULL) {
		if (item->len > 0) {
			*out = malloc(item->len);
			if (*out == NULL)
				return PB_ENOMEM;
			memcpy(*out, item->data, item->len);
		}
		*len = item->len;
		return 0;
	}
	return pb__kinds_read_file(item->file, PB__KINDS_MAX_FILE, out, len);
}

static size_t id_hash(const char *id)
{
	uint64_t h = 14695981039346656037ull;

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 1099511628211ull;
	return (size_t)(h ^ h >> 29);
}

/* The slot of id in e's table: its item's, or the empty one it would take. */
static uint32_t *id_slot(const wentry_t *e, const char *id)
{
	size_t mask = e->nslots - 1, k = id_hash(id) & mask;

	while (e->slots[k] != 0 && strcmp(e->items[e->slots[k] - 1].id, id) != 0)
		k = (k + 1) & mask;
	return &e->slots[k];
}

/* Keeps the table at most half full. */
static int id_table_grow(wentry_t *e)
{
	size_t n = e->nslots ? e->nslots : 64;
	uint32_t *old = e->slots;

	if ((e->n + 1) * 2 <= e->nslots)
		return 0;
	if (e->n + 1 >= UINT32_MAX / 2)
		return PB_ETOOBIG;
	while ((e->n + 1) * 2 > n)
		n *= 2;
	if ((e->slots = calloc(n, sizeof(*e->slots))) == NULL) {
		e->slots = old;
		return PB_ENOMEM;
	}
	free(old);
	e->nslots = n;
	for (size_t i = 0; i < e->n; i++)
		*id_slot(e, e->items[i].id) = (uint32_t)(i + 1);
	return 0;
}

static int add_multi(wentry_t *e, const pb_item_t *item)
{
	witem_t *it = NULL;
	uint32_t *slot;
	uint8_t *data;
	size_t len;
	int rc;

	if ((rc = id_table_grow(e)) != 0 || (rc = item_bytes(item, &data, &len)) != 0)
		return rc;
	slot = id_slot(e, item->id);
	if (*slot != 0)
		it = &e->items[*slot - 1];
	if (it != NULL) {
		char *after = item->after != NULL ? strdup(item->after) : NULL;

		if (item->after != NULL && after == NULL) {
			wipe_free(data, len);
			return PB_ENOMEM;
		}
		wipe_free(it->data, it->len);
		free(it->after);
		it->data = data;
		it->len = len;
		it->seq = item->seq;
		it->after = after;
		return 0;
	}
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 16;
		witem_t *v = realloc(e->items, cap * sizeof(*v));
		if (v == NULL) {
			wipe_free(data, len);
			return PB_ENOMEM;
		}
		e->items = v;
		e->cap = cap;
	}
	it = &e->items[e->n];
	memset(it, 0, sizeof(*it));
	it->id = strdup(item->id);
	it->after = item->after != NULL ? strdup(item->after) : NULL;
	if (it->id == NULL || (item->after != NULL && it->after == NULL)) {
		free(it->id);
		free(it->after);
		wipe_free(data, len);
		return PB_ENOMEM;
	}
	it->seq = item->seq;
	it->order = e->n;
	it->data = data;
	it->len = len;
	e->n++;
	*slot = (uint32_t)e->n;
	return 0;
}

static int stage(pb_device_writer_t *w, wentry_t *e);

/* Stages the whole files held, keeping the multi-item files (merged, or
 * streamed, when the last of their items has come). */
static int stage_whole(pb_device_writer_t *w)
{
	size_t k = 0;
	int rc = 0;

	for (size_t i = 0; i < w->n; i++) {
		if (w->e[i].codec != NULL) {
			if (k != i)
				w->e[k] = w->e[i];
			k++;
			continue;
		}
		if (rc == 0)
			rc = stage(w, &w->e[i]);
		wentry_clear(&w->e[i]);
	}
	w->n = k;
	w->held = 0;
	if (index_entries(w) != 0 && rc == 0)
		rc = PB_ENOMEM;
	return rc;
}

int pb_device_writer_add(pb_device_writer_t *w, const pb_item_t *item)
{
	wentry_t *e;
	int rc;

	if (w == NULL || item == NULL)
		return PB_EINVAL;
	if (!id_ok(item->id) || !relpath_ok(item->path, item->kind))
		return PB_EDATA_FIELD;
	if (item->data == NULL && item->len > 0)
		return PB_EINVAL;
	e = find_entry(w, item->path);
	if (e == NULL) {
		if (w->n == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 16;
			wentry_t *v = realloc(w->e, cap * sizeof(*v));
			if (v == NULL)
				return PB_ENOMEM;
			w->e = v;
			w->cap = cap;
		}
		e = &w->e[w->n];
		memset(e, 0, sizeof(*e));
		e->path = strdup(item->path);
		if (e->path == NULL)
			return PB_ENOMEM;
		if ((rc = pb__pathidx_put(&w->eidx, e->path, w->n, entry_path, w)) != 0) {
			free(e->path);
			return rc;
		}
		e->codec = pb_codec_for(item->path);
		if (e->codec != NULL && e->codec->kind != item->kind)
			e->codec = NULL;
		w->n++;
	}
	if (e->codec != NULL) {
		bool taken = false;

		if ((rc = pb__dw_stream_add(w, e, item, &taken)) != 0 || taken)
			return rc;
		return add_multi(e, item);
	}
	/* A whole file: the last item added for a path wins. */
	w->held -= e->len < w->held ? e->len : w->held;
	wipe_free(e->data, e->len);
	free(e->src);
	e->data = NULL;
	e->len = 0;
	e->src = NULL;
	if (item->data == NULL && item->file != NULL) {
		e->src = strdup(item->file);
		return e->src != NULL ? 0 : PB_ENOMEM;
	}
	if ((rc = item_bytes(item, &e->data, &e->len)) != 0)
		return rc;
	w->held += e->len;
	return w->held > HELD_MAX ? stage_whole(w) : 0;
}

/* Existing items of a multi-item file, gathered by its codec's split. */
typedef struct existing_s {
	wentry_t *e;
	witem_t *v;
	size_t n, cap;
} existing_t;

static int existing_cb(void *arg, const pb_item_t *item)
{
	existing_t *x = arg;
	witem_t *it;

	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 16;
		witem_t *v = realloc(x->v, cap * sizeof(*v));
		if (v == NULL)
			return PB_ENOMEM;
		x->v = v;
		x->cap = cap;
	}
	it = &x->v[x->n];
	memset(it, 0, sizeof(*it));
	it->id = strdup(item->id != NULL ? item->id : "");
	if (it->id == NULL)
		return PB_ENOMEM;
	it->seq = item->seq;
	it->len = item->len;
	if (item->len > 0) {
		it->data = malloc(item->len);
		if (it->data == NULL) {
			free(it->id);
			return PB_ENOMEM;
		}
		memcpy(it->data, item->data, item->len);
	}
	x->n++;
	return 0;
}

static int cmp_place(const void *a, const void *b)
{
	const witem_t *x = a, *y = b;

	if (x->major != y->major)
		return x->major < y->major ? -1 : 1;
	if (x->minor != y->minor)
		return x->minor < y->minor ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_seq(const void *a, const void *b)
{
	const witem_t *x = *(witem_t *const *)a, *y = *(witem_t *const *)b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

typedef struct idref_s {
	const char *id;
	size_t i;
} idref_t;

static int cmp_idref(const void *a, const void *b)
{
	return strcmp(((const idref_t *)a)->id, ((const idref_t *)b)->id);
}

static witem_t *find_existing(existing_t *x, const idref_t *index, size_t base, const char *id)
{
	idref_t key = { id, 0 }, *hit;

	if (id == NULL || base == 0)
		return NULL;
	hit = bsearch(&key, index, base, sizeof(*index), cmp_idref);
	return hit != NULL ? &x->v[hit->i] : NULL;
}

/* Places the restored items among the file's existing ones: an item with
 * the id of an existing one replaces it where it is; a new one goes right
 * after the item before it in the backup (pb_item_t.after, else the one
 * restored before it) when the file holds that one, first when it came
 * first (seq 0 with nothing before it), else last. The items of a
 * chat then go by message id, which its format requires. Every item gets a
 * new seq, so the codec's join sees each position once. */
static int merge_items(existing_t *x, wentry_t *e)
{
	size_t base = x->n;
	idref_t *index = calloc(base ? base : 1, sizeof(*index));
	witem_t **batch = calloc(e->n ? e->n : 1, sizeof(*batch));
	uint64_t *tail = calloc(base + 2, sizeof(*tail));
	int64_t last_major = (int64_t)base + 1; /* where the previous restored item went */
	const char *last_id = NULL;
	bool by_chat = e->codec == &pb__codec_telegram;
	int rc = 0;

	if (index == NULL || batch == NULL || tail == NULL) {
		rc = PB_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < base; i++) {
		x->v[i].order = i;
		x->v[i].major = (int64_t)i + 1;
		x->v[i].minor = 0;
		index[i].id = x->v[i].id;
		index[i].i = i;
	}
	if (base > 1)
		qsort(index, base, sizeof(*index), cmp_idref);
	/* In the backup's order, so that each one's predecessor is placed. */
	for (size_t i = 0; i < e->n; i++) {
		e->items[i].order = i;
		batch[i] = &e->items[i];
	}
	if (e->n > 1)
		qsort(batch, e->n, sizeof(*batch), cmp_seq);
	/* Each restored item's bytes move to the merged list (the entry's
	 * items are not used after the merge): a chat of a million messages
	 * is not held twice. */
	for (size_t i = 0; i < e->n; i++) {
		witem_t *it = batch[i];
		witem_t *dst = find_existing(x, index, base, it->id), *prev;

		if (dst != NULL) {
			wipe_free(dst->data, dst->len);
			dst->data = it->data;
			dst->len = it->len;
			it->data = NULL;
			it->len = 0;
			last_major = dst->major;
			last_id = dst->id;
			continue;
		}
		if ((rc = existing_cb(x, &(pb_item_t){ .id = it->id, .data = it->data, .len = it->len })) != 0)
			goto out;
		wipe_free(it->data, it->len);
		it->data = NULL;
		it->len = 0;
		dst = &x->v[x->n - 1];
		dst->order = base + i;
		if (it->after == NULL && it->seq == 0)
			dst->major = 0; /* it came first */
		else if (it->after != NULL && (prev = find_existing(x, index, base, it->after)) != NULL &&
			 (last_id == NULL || strcmp(it->after, last_id) != 0))
			dst->major = prev->major;
		else
			dst->major = last_major; /* after the previous one restored, else last */
		dst->minor = ++tail[dst->major];
		last_major = dst->major;
		last_id = dst->id;
	}
	for (size_t i = 0; by_chat && i < x->n; i++) {
		int64_t key;

		if (!pb__dw_chat_key(x->v[i].id, &key)) {
			by_chat = false;
			break;
		}
	}
	for (size_t i = 0; by_chat && i < x->n; i++) {
		(void)pb__dw_chat_key(x->v[i].id, &x->v[i].major);
		x->v[i].minor = 0;
	}
	if (x->n > 1)
		qsort(x->v, x->n, sizeof(x->v[0]), cmp_place);
	for (size_t i = 0; i < x->n; i++)
		x->v[i].seq = i;
out:
	free(index);
	free(batch);
	free(tail);
	return rc;
}

static int build_multi(const uint8_t *buf, size_t len, wentry_t *e, pb_buf_t *out);

int pb__device_merge(const pb_codec_t *codec, const char *relpath, const uint8_t *buf, size_t len,
		     const pb_item_t *items, size_t n, pb_buf_t *out)
{
	wentry_t e;
	int rc = 0;

	memset(&e, 0, sizeof(e));
	e.path = (char *)relpath;
	e.codec = codec;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = add_multi(&e, &items[i]);
	if (rc == 0)
		rc = build_multi(buf, len, &e, out);
	e.path = NULL;
	wentry_clear(&e);
	return rc;
}

/* Merges e's items into the file's existing items and joins them through
 * the codec. */
static int build_multi(const uint8_t *buf, size_t len, wentry_t *e, pb_buf_t *out)
{
	existing_t x = { e, NULL, 0, 0 };
	pb_item_t *items = NULL;
	int rc = 0;

	if (buf != NULL && (rc = e->codec->split(e->path, buf, len, existing_cb, &x)) != 0)
		goto out_free;
	if ((rc = merge_items(&x, e)) != 0)
		goto out_free;
	items = calloc(x.n ? x.n : 1, sizeof(*items));
	if (items == NULL) {
		rc = PB_ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < x.n; i++) {
		items[i].kind = e->codec->kind;
		items[i].id = x.v[i].id;
		items[i].path = e->path;
		items[i].seq = x.v[i].seq;
		items[i].data = x.v[i].data;
		items[i].len = x.v[i].len;
		items[i].size = x.v[i].len;
	}
	rc = e->codec->join(e->path, items, x.n, out);
out_free:
	free(items);
	for (size_t i = 0; i < x.n; i++)
		witem_clear(&x.v[i]);
	free(x.v);
	return rc;
}

/* --- Staging -------------------------------------------------------------- */

/* Writes one entry to a temporary file next to its target (a multi-item
 * file merged with the file there, or with what an earlier stage of the
 * same file wrote; a streamed chat ends). */
static int stage(pb_device_writer_t *w, wentry_t *e)
{
	char tmp[TMP_NAME];
	const char *base = pb__kinds_basename(e->path);
	wstaged_t *prev = pb__dw_find_staged(w, e->path);
	pb_buf_t joined = { 0 };
	struct stat st;
	int pfd, fd, rc;

	if (e->streaming)
		return pb__dw_stream_end(w, e);
	if ((rc = pb__dw_open_parent(w, e->path, true, &pfd)) != 0)
		return rc;
	/* A link where the file goes is not replaced: it was not made here. */
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
		snprintf(w->link, sizeof(w->link), "%s", e->path);
		rc = PB_EDATA_LINK;
		goto out_close;
	}
	if ((rc = pb__dw_stage_name(w, base, prev != NULL, tmp)) != 0)
		goto out_close;
	if (e->codec != NULL) {
		rc = pb__dw_merge_stream(e, pfd, prev != NULL ? prev->tmp : base, tmp);
		if (rc == 0)
			goto staged;
		if (rc != MJ_AGAIN)
			goto out_close;
	}
	if (e->codec != NULL) {
		uint8_t *buf = NULL;
		size_t len = 0;

		rc = pb__read_file_at(pfd, prev != NULL ? prev->tmp : base, PB__KINDS_MAX_FILE, &buf, &len);
		if (rc == -ENOENT)
			rc = 0;
		if (rc == PB_EDATA_LINK)
			snprintf(w->link, sizeof(w->link), "%s", e->path);
		if (rc == 0)
			rc = build_multi(buf, len, e, &joined);
		wipe_free(buf, len);
		if (rc != 0)
			goto out_close;
	}
	/* A file given up by its caller is moved, not copied (a restored
	 * large file was written once already); elsewhere than on this
	 * file system, it is copied. */
	if (e->codec != NULL || e->src == NULL || !w->take_files ||
	    renameat2(AT_FDCWD, e->src, pfd, tmp, RENAME_NOREPLACE) != 0) {
		fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = -errno;
			goto out_close;
		}
		if (e->codec != NULL)
			rc = pb__dw_write_all(fd, joined.data, joined.len);
		else if (e->src != NULL)
			rc = pb__dw_copy_file(e->src, fd);
		else
			rc = pb__dw_write_all(fd, e->data, e->len);
#ifdef SYNC_FILE_RANGE_WRITE
		/* Durable only at commit (sync_staged), all together; its
		 * writeback starts now, while the next files are written. */
		if (rc == 0)
			(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
		if (close(fd) != 0 && rc == 0)
			rc = -errno;
		if (rc != 0) {
			(void)unlinkat(pfd, tmp, 0);
			goto out_close;
		}
	}
staged:
	if (prev != NULL && w->fresh) {
		/* In a fresh folder the file keeps its own name: the newer
		 * stage (which holds the earlier one's items too) replaces it. */
		if (renameat(pfd, tmp, pfd, prev->tmp) != 0) {
			rc = -errno;
			(void)unlinkat(pfd, tmp, 0);
		} else {
			pb__dw_sync_later(w, prev);
		}
		goto out_close;
	}
	if (prev != NULL) {
		/* The newer stage holds the earlier one's items too. */
		char *copy = strdup(tmp);

		if (copy == NULL) {
			(void)unlinkat(pfd, tmp, 0);
			rc = PB_ENOMEM;
			goto out_close;
		}
		(void)unlinkat(pfd, prev->tmp, 0);
		free(prev->tmp);
		prev->tmp = copy;
		pb__dw_sync_later(w, prev);
		goto out_close;
	}
	if ((rc = pb__dw_add_staged(w, e->path, tmp)) != 0)
		(void)unlinkat(pfd, tmp, 0);
	else
		pb__dw_sync_later(w, &w->s[w->ns - 1]);
out_close:
	close(pfd);
	pb_buf_free(&joined);
	return rc;
}

/* Removes every staged file, and the folders made for them (newest first,
 * only when empty). */
static void unstage(pb_device_writer_t *w)
{
	pb__dw_sync_drop(w);
	for (size_t i = 0; i < w->ns; i++) {
		int pfd;

		if (w->s[i].tmp != NULL && pb__dw_open_parent(w, w->s[i].path, false, &pfd) == 0) {
			(void)unlinkat(pfd, w->s[i].tmp, 0);
			close(pfd);
		}
		free(w->s[i].path);
		free(w->s[i].tmp);
	}
	w->ns = 0;
	pb__pathidx_clear(&w->sidx);
	for (size_t i = w->made.n; i > 0 && w->root >= 0; i--)
		(void)unlinkat(w->root, w->made.v[i - 1], AT_REMOVEDIR);
	pb__dw_strlist_clear(&w->made);
}

int pb_device_writer_stage(pb_device_writer_t *w)
{
	int rc = 0;

	if (w == NULL)
		return PB_EINVAL;
	for (size_t i = 0; i < w->n && rc == 0; i++)
		rc = stage(w, &w->e[i]);
	for (size_t i = 0; i < w->n; i++)
		wentry_clear(&w->e[i]);
	w->n = 0;
	w->held = 0;
	pb__pathidx_clear(&w->eidx);
	return rc;
}

/* Syncs staged file i. */
static int sync_one(pb_device_writer_t *w, size_t i)
{
	int pfd, fd, rc;

	if ((rc = pb__dw_open_parent(w, w->s[i].path, false, &pfd)) != 0)
		return rc;
	fd = openat(pfd, w->s[i].tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	rc = fd < 0 ? -errno : fsync(fd) != 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	close(pfd);
	return rc;
}

/* Staged files synced on SYNC_THREADS threads at once when there are at
 * least SYNC_SPLIT of them: their writeback started as each was closed,
 * and each fsync mostly waits for its own; a restore of thousands of
 * files waits for them side by side, not one after another. */
#define SYNC_THREADS 4
#define SYNC_SPLIT PB__DW_SYNC_SPLIT

struct syncer {
	pb_device_writer_t *w;
	pthread_mutex_t mu;
	size_t next;
	int rc;
};

static void *sync_worker(void *arg)
{
	struct syncer *y = arg;

	for (;;) {
		size_t i;
		int rc;

		pthread_mutex_lock(&y->mu);
		i = y->rc == 0 ? y->next++ : y->w->ns;
		pthread_mutex_unlock(&y->mu);
		if (i >= y->w->ns)
			break;
		if (y->w->s[i].queued)
			continue;
		if ((rc = sync_one(y->w, i)) != 0) {
			pthread_mutex_lock(&y->mu);
			if (y->rc == 0)
				y->rc = rc;
			pthread_mutex_unlock(&y->mu);
		}
	}
	return NULL;
}

/* Staged file i's stat, by its temporary name from the root; a file that
 * is not a regular one is refused. */
static int stat_staged(pb_device_writer_t *w, size_t i, struct stat *st)
{
	const char *rel = w->s[i].path;
	int len = (int)(pb__kinds_basename(rel) - rel);
	char at[4400];
	int n = snprintf(at, sizeof(at), "%.*s%s", len, rel, w->s[i].tmp);

	if (n < 0 || (size_t)n >= sizeof(at))
		return PB_ETOOBIG;
	if (fstatat(w->root, at, st, AT_SYMLINK_NOFOLLOW) != 0)
		return -errno;
	return S_ISREG(st->st_mode) ? 0 : PB_EDATA_LINK;
}

/* Whether every staged file is there, on the file system of the
 * target's root (a folder reached through a link or a mount point
 * elsewhere is not): one fstatat a file. A file missing is left to the
 * fsync of each, which reports it. */
static bool staged_on_root_fs(pb_device_writer_t *w)
{
	struct stat rs, st;

	if (w->root < 0 || fstat(w->root, &rs) != 0)
		return false;
	for (size_t i = 0; i < w->ns; i++)
		if (stat_staged(w, i, &st) != 0 || st.st_dev != rs.st_dev)
			return false;
	return true;
}

/* The files synced as they were staged are all still there (the commit
 * renames every file or none): one fstatat a file. */
static int synced_present(pb_device_writer_t *w)
{
	struct stat st;
	int rc;

	for (size_t i = 0; i < w->ns; i++)
		if (w->s[i].queued && (rc = stat_staged(w, i, &st)) != 0)
			return rc;
	return 0;
}

/* Whether syncfs reports the file system's writeback errors: Linux 5.8
 * and later (errors since the descriptor was opened); before, it returned
 * 0 after a failed write, and only each file's fsync tells. */
static bool syncfs_reports_errors(void)
{
	struct utsname u;
	unsigned major = 0, minor = 0;

	if (uname(&u) != 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 5 || (major == 5 && minor >= 8);
}

/* The one durability point of a commit: every staged file synced, then
 * (sync_parents) each folder that received a rename, once. A commit of
 * many files has most of them synced already, each as it was staged
 * (device-sync.c), and waits for the last few. Many files left on the
 * root's file system are synced by one syncfs: their writeback started
 * as each was closed, and where an fsync a file ended each in a flush of
 * the disk's cache (thousands for a full restore: 0.4-1.5 s of its end
 * here), the file system's writes end in one (and others' with them). A
 * syncfs that fails (or a file elsewhere) leaves it to the fsync of each
 * file. */
static int sync_staged(pb_device_writer_t *w)
{
	struct syncer y = { .w = w, .next = 0, .rc = 0 };
	pthread_t th[SYNC_THREADS - 1];
	size_t nth = 0, left = 0;
	int rc;

	/* Most files were synced as they were staged (device-sync.c). */
	if ((rc = pb__dw_sync_wait(w)) != 0)
		return rc;
	for (size_t i = 0; i < w->ns; i++)
		left += !w->s[i].queued;
	if (left < w->ns && (rc = synced_present(w)) != 0)
		return rc;
	if (left >= SYNC_SPLIT && syncfs_reports_errors() && staged_on_root_fs(w) && syncfs(w->root) == 0)
		return 0;
	if (left < SYNC_SPLIT || pthread_mutex_init(&y.mu, NULL) != 0) {
		for (size_t i = 0; i < w->ns; i++) {
			if (!w->s[i].queued && (rc = sync_one(w, i)) != 0)
				return rc;
		}
		return 0;
	}
	/* This thread is one of them; one that cannot start is not needed. */
	while (nth < SYNC_THREADS - 1 && pthread_create(&th[nth], NULL, sync_worker, &y) == 0)
		nth++;
	(void)sync_worker(&y);
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&y.mu);
	return y.rc;
}

static void sync_parents(pb_device_writer_t *w)
{
	strlist_t done = { 0 };

	for (size_t i = 0; i < w->written.n; i++) {
		const char *rel = w->written.v[i], *base = pb__kinds_basename(rel);
		size_t len = (size_t)(base - rel);
		bool seen = false;
		int pfd;

		for (size_t k = 0; k < done.n && !seen; k++)
			seen = strlen(done.v[k]) == len && strncmp(done.v[k], rel, len) == 0;
		if (seen || pb__dw_strlist_add(&done, rel, len) != 0 || pb__dw_open_parent(w, rel, false, &pfd) != 0)
			continue;
		(void)fsync(pfd);
		close(pfd);
	}
	pb__dw_strlist_clear(&done);
	free(done.v);
}

int pb_device_writer_commit(pb_device_writer_t *w)
{
	size_t i;
	int rc = 0;

	if (w == NULL)
		return PB_EINVAL;
	pb__dw_strlist_clear(&w->written);
	w->link[0] = 0;
	/* Every file is staged first; a failure removes all staged files and
	 * the folders made for them, so the directory keeps its old content. */
	if ((rc = pb_device_writer_stage(w)) != 0 || (rc = sync_staged(w)) != 0) {
		unstage(w);
		return rc;
	}
	pb__test_point("device-synced");
	for (i = 0; i < w->ns; i++) {
		const char *base = pb__kinds_basename(w->s[i].path);
		int pfd;

		if (w->fresh) {
			/* Already under its own name: nothing to rename. */
			free(w->s[i].tmp);
			w->s[i].tmp = NULL;
			if ((rc = pb__dw_strlist_add(&w->written, w->s[i].path, strlen(w->s[i].path))) != 0)
				break;
			continue;
		}
		if ((rc = pb__dw_open_parent(w, w->s[i].path, false, &pfd)) != 0)
			break;
		if (renameat(pfd, w->s[i].tmp, pfd, base) != 0) {
			rc = -errno;
			close(pfd);
			break;
		}
		close(pfd);
		free(w->s[i].tmp);
		w->s[i].tmp = NULL;
		if ((rc = pb__dw_strlist_add(&w->written, w->s[i].path, strlen(w->s[i].path))) != 0)
			break;
	}
	if (rc != 0 && w->written.n == 0) {
		unstage(w);
		return rc;
	}
	pb__test_point("device-renamed");
	if (!w->fresh)
		sync_parents(w);
	/* Written files stay (pb_device_writer_written names them); the rest
	 * is removed, the folders kept. */
	pb__dw_strlist_clear(&w->made);
	unstage(w);
	return rc;
}

void pb__device_writer_take_files(pb_device_writer_t *w)
{
	w->take_files = true;
}

void pb__device_writer_fresh(pb_device_writer_t *w)
{
	w->fresh = true;
}

size_t pb_device_writer_written(const pb_device_writer_t *w, const char *const **paths)
{
	*paths = (const char *const *)w->written.v;
	return w->written.n;
}

const char *pb_device_writer_link(const pb_device_writer_t *w)
{
	return w->link;
}

void pb_device_writer_free(pb_device_writer_t *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n; i++)
		wentry_clear(&w->e[i]);
	unstage(w);
	free(w->s);
	pb__dw_strlist_clear(&w->made);
	free(w->made.v);
	pb__dw_strlist_clear(&w->written);
	free(w->written.v);
	if (w->root >= 0)
		close(w->root);
	free(w->e);
	pb__pathidx_free(&w->eidx);
	pb__pathidx_free(&w->sidx);
	free(w->dir);
	free(w);
}
