/* An index over strings kept in an array elsewhere (a device writer's
 * paths): a string to the position of its latest entry, in constant time.
 * The writer looked each file up by a search through every file before it,
 * which made a restore of many small files quadratic (40,000 files: 10 CPU
 * s, most of it strcmp). Open addressing with linear probing over the
 * positions; the strings are read back through key(arg, i), so the index
 * holds no copies. */
#ifndef PB_UTIL_PATHIDX_H
#define PB_UTIL_PATHIDX_H

#include <stddef.h>

#include "peerback/common.h"
#include "peerback/error.h"

typedef const char *(*pb__pathidx_key_fn)(const void *arg, size_t i);

typedef struct pb__pathidx_s {
	size_t *slot; /* a position + 1; 0: empty */
	size_t cap;   /* a power of two, or 0 */
	size_t n;
} pb__pathidx_t;

/* The position recorded for s, or SIZE_MAX. */
size_t pb__pathidx_find(const pb__pathidx_t *x, const char *s, pb__pathidx_key_fn key, const void *arg);

/* Records position i for s (its string is key(arg, i)), in place of the
 * position recorded for an equal string. PB_ENOMEM leaves x as it was. */
PB_WUR int pb__pathidx_put(pb__pathidx_t *x, const char *s, size_t i, pb__pathidx_key_fn key, const void *arg);

/* Forgets every position (the memory is kept). */
void pb__pathidx_clear(pb__pathidx_t *x);

void pb__pathidx_free(pb__pathidx_t *x);

#endif
