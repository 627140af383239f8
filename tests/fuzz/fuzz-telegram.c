/* Fuzz target: Telegram result.json, through the stream parser (two reads,
 * so the \xNN rewrite crosses a boundary) and the chat file codec, whose
 * join must give back any file its split accepts in canonical form. */
#include <stdlib.h>
#include <string.h>

#include "agent/kinds/chat-util.h"

struct items {
	pb_item_t *it;
	uint8_t **data;
	size_t n;
};

static int keep(void *arg, const pb_item_t *item)
{
	struct items *v = arg;
	pb_item_t *nit = realloc(v->it, (v->n + 1) * sizeof(*nit));
	uint8_t **nd;

	if (nit == NULL)
		return -1;
	v->it = nit;
	nd = realloc(v->data, (v->n + 1) * sizeof(*nd));
	if (nd == NULL)
		return -1;
	v->data = nd;
	v->data[v->n] = malloc(item->len + 1);
	if (v->data[v->n] == NULL)
		return -1;
	memcpy(v->data[v->n], item->data, item->len);
	v->it[v->n] = *item;
	v->it[v->n].data = v->data[v->n];
	v->it[v->n].id = NULL;
	v->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct items v = {0};
	pb_buf_t out = {0}, again = {0};
	struct items w = {0};
	size_t i;

	(void)pb__chat_telegram_parse_buf(data, size);
	if (pb__codec_telegram.split("chats/1/result.json", data, size, keep, &v) == 0 &&
	    pb__codec_telegram.join("chats/1/result.json", v.it, v.n, &out) == 0) {
		/* The joined file is canonical: it splits and joins to itself. */
		if (pb__codec_telegram.split("chats/1/result.json", out.data, out.len, keep, &w) != 0 ||
		    pb__codec_telegram.join("chats/1/result.json", w.it, w.n, &again) != 0 || again.len != out.len ||
		    memcmp(again.data, out.data, out.len) != 0)
			abort();
	}
	for (i = 0; i < v.n; i++)
		free(v.data[i]);
	for (i = 0; i < w.n; i++)
		free(w.data[i]);
	free(v.it);
	free(v.data);
	free(w.it);
	free(w.data);
	pb__chat_buf_clear(&out);
	pb__chat_buf_clear(&again);
	return 0;
}
