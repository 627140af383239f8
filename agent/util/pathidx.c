/* A string-to-position index over an array kept elsewhere (pathidx.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/util/pathidx.h"

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

/* The slot that holds s, or the empty one where it would go. */
static size_t probe(const size_t *slot, size_t cap, const char *s, pb__pathidx_key_fn key, const void *arg)
{
	size_t k = (size_t)hash_str(s) & (cap - 1);

	while (slot[k] != 0 && strcmp(key(arg, slot[k] - 1), s) != 0)
		k = (k + 1) & (cap - 1);
	return k;
}

size_t pb__pathidx_find(const pb__pathidx_t *x, const char *s, pb__pathidx_key_fn key, const void *arg)
{
	size_t k;

	if (x->n == 0)
		return SIZE_MAX;
	k = probe(x->slot, x->cap, s, key, arg);
	return x->slot[k] != 0 ? x->slot[k] - 1 : SIZE_MAX;
}

/* At most half full: twice the room, every position placed again. */
static int grow(pb__pathidx_t *x, pb__pathidx_key_fn key, const void *arg)
{
	size_t cap = x->cap ? x->cap * 2 : 64;
	size_t *slot;

	if (cap < x->cap || cap > SIZE_MAX / sizeof(*slot))
		return PB_ENOMEM;
	slot = calloc(cap, sizeof(*slot));
	if (slot == NULL)
		return PB_ENOMEM;
	for (size_t k = 0; k < x->cap; k++)
		if (x->slot[k] != 0)
			slot[probe(slot, cap, key(arg, x->slot[k] - 1), key, arg)] = x->slot[k];
	free(x->slot);
	x->slot = slot;
	x->cap = cap;
	return 0;
}

int pb__pathidx_put(pb__pathidx_t *x, const char *s, size_t i, pb__pathidx_key_fn key, const void *arg)
{
	size_t k;
	int rc;

	if (i == SIZE_MAX)
		return PB_EINVAL;
	if ((x->n + 1) * 2 > x->cap && (rc = grow(x, key, arg)) != 0)
		return rc;
	k = probe(x->slot, x->cap, s, key, arg);
	if (x->slot[k] == 0)
		x->n++;
	x->slot[k] = i + 1;
	return 0;
}

void pb__pathidx_clear(pb__pathidx_t *x)
{
	if (x->n > 0)
		memset(x->slot, 0, x->cap * sizeof(*x->slot));
	x->n = 0;
}

void pb__pathidx_free(pb__pathidx_t *x)
{
	free(x->slot);
	memset(x, 0, sizeof(*x));
}
