/* The growable byte buffer of the data kinds. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent/kinds/util.h"

/* A buffer never grows past this; larger items are streamed from files. */
#define PB__BUF_MAX ((size_t)1 << 31)

int pb_buf_append(pb_buf_t *b, const void *data, size_t len)
{
	size_t need, cap;
	uint8_t *p;

	if (len == 0)
		return 0;
	if (len > PB__BUF_MAX || b->len > PB__BUF_MAX - len)
		return PB_ETOOBIG;
	need = b->len + len;
	if (need > b->cap) {
		cap = b->cap < 256 ? 256 : b->cap;
		while (cap < need)
			cap = cap > PB__BUF_MAX / 2 ? PB__BUF_MAX : cap * 2;
		/* A fresh block rather than realloc, so that the old bytes, which
		 * may be secrets, are wiped before they are released. */
		p = malloc(cap);
		if (p == NULL)
			return PB_ENOMEM;
		if (b->len > 0)
			memcpy(p, b->data, b->len);
		if (b->data != NULL) {
			sodium_memzero(b->data, b->cap);
			free(b->data);
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

void pb_buf_free(pb_buf_t *b)
{
	if (b == NULL)
		return;
	if (b->data != NULL) {
		sodium_memzero(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = b->cap = 0;
}
