/* An item provider over items held in memory: what a phone app does with
 * its own stores (an NFC stack, a chat database), here with a plain array.
 * Public API only. Included by examples/phone-in-memory.c and by the
 * in-process tests; everything in it is static.
 *
 * Items are of one kind (mem_store.kind). Every other item carries its
 * bytes in the listing; the rest carry only size and change stamp and are
 * read when the library asks (provider.read), as a large item would be. A
 * restore goes to a second store: written items wait in a transaction and
 * replace the target's contents only at commit. */
#ifndef PEERBACK_EXAMPLE_MEM_PROVIDER_H
#define PEERBACK_EXAMPLE_MEM_PROVIDER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <peerback.h>

typedef struct mem_item {
	char id[64];
	uint8_t *data;
	size_t len;
	uint64_t stamp; /* changes whenever data does */
} mem_item_t;

typedef struct mem_store {
	pb_kind_t kind;
	mem_item_t *items;
	size_t n;
	size_t reads; /* provider.read calls, for the curious */
} mem_store_t;

static void mem_store_clear(mem_store_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->items[i].data);
	free(s->items);
	s->items = NULL;
	s->n = 0;
}

/* Appends (a copy of) data under id. */
static int mem_store_add(mem_store_t *s, const char *id, const uint8_t *data, size_t len, uint64_t stamp)
{
	mem_item_t *v = realloc(s->items, (s->n + 1) * sizeof(*v));

	if (v == NULL)
		return PB_ENOMEM;
	s->items = v;
	v = &s->items[s->n];
	memset(v, 0, sizeof(*v));
	snprintf(v->id, sizeof(v->id), "%s", id);
	v->data = malloc(len ? len : 1);
	if (v->data == NULL)
		return PB_ENOMEM;
	memcpy(v->data, data, len);
	v->len = len;
	v->stamp = stamp;
	s->n++;
	return 0;
}

static const mem_item_t *mem_store_find(const mem_store_t *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->items[i].id, id) == 0)
			return &s->items[i];
	return NULL;
}

/* 1 when a and b hold the same ids with the same bytes. */
static int mem_store_same(const mem_store_t *a, const mem_store_t *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const mem_item_t *o = mem_store_find(b, a->items[i].id);

		if (o == NULL || o->len != a->items[i].len || memcmp(o->data, a->items[i].data, o->len) != 0)
			return 0;
	}
	return 1;
}

/* The provider's arg: where items come from, and where a restore puts them. */
typedef struct mem_phone {
	mem_store_t *items;
	mem_store_t *restored;
} mem_phone_t;

static int mem_list(void *arg, unsigned kind_mask, pb_item_cb cb, pb_scan_bad_cb bad, void *cb_arg)
{
	mem_store_t *s = ((mem_phone_t *)arg)->items;
	int rc = 0;

	(void)bad; /* memory always parses */
	if ((kind_mask & (1u << s->kind)) == 0)
		return 0;
	for (size_t i = 0; i < s->n && rc == 0; i++) {
		pb_item_t it;

		memset(&it, 0, sizeof(it));
		it.kind = s->kind;
		it.id = s->items[i].id;
		it.size = s->items[i].len;
		it.mtime_ns = s->items[i].stamp;
		if (i % 2 == 0) {
			it.data = s->items[i].data;
			it.len = s->items[i].len;
		}
		rc = cb(cb_arg, &it);
	}
	return rc;
}

static int mem_read(void *arg, const pb_item_t *item, pb_buf_t *out)
{
	mem_store_t *s = ((mem_phone_t *)arg)->items;
	const mem_item_t *m = mem_store_find(s, item->id);

	if (m == NULL)
		return PB_ENOTFOUND;
	s->reads++;
	return pb_buf_append(out, m->data, m->len);
}

/* A restore transaction: the items written so far, and where they go. */
struct mem_txn {
	mem_store_t *target;
	mem_store_t pending;
};

static int mem_begin(void *arg, void **txn)
{
	struct mem_txn *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return PB_ENOMEM;
	t->target = ((mem_phone_t *)arg)->restored;
	t->pending.kind = t->target->kind;
	*txn = t;
	return 0;
}

/* A large item comes in a file lent for this call only. */
static int mem_write(void *txn, const pb_item_t *item)
{
	struct mem_txn *t = txn;
	uint8_t *buf;
	size_t len = 0;
	FILE *f;
	int rc;

	if (item->file == NULL)
		return mem_store_add(&t->pending, item->id, item->data, item->len, 0);
	if ((f = fopen(item->file, "rb")) == NULL)
		return PB_EIO;
	buf = malloc(item->size ? item->size : 1);
	if (buf != NULL)
		len = fread(buf, 1, item->size, f);
	fclose(f);
	if (buf == NULL)
		return PB_ENOMEM;
	rc = len == item->size ? mem_store_add(&t->pending, item->id, buf, len, 0) : PB_EIO;
	free(buf);
	return rc;
}

/* Everything at once: the target now holds what was restored. */
static int mem_commit(void *txn)
{
	struct mem_txn *t = txn;

	mem_store_clear(t->target);
	*t->target = t->pending;
	free(t);
	return 0;
}

static void mem_abort(void *txn)
{
	struct mem_txn *t = txn;

	if (t == NULL)
		return;
	mem_store_clear(&t->pending);
	free(t);
}

/* A provider that lists ph->items and restores into ph->restored. */
static pb_provider_t mem_provider(mem_phone_t *ph)
{
	pb_provider_t p = { .arg = ph, .list = mem_list, .read = mem_read, .begin = mem_begin,
			    .write = mem_write, .commit = mem_commit, .abort = mem_abort };

	return p;
}

#endif
