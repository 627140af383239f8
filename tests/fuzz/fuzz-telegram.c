/* Fuzz target: Telegram result.json, through the stream parser (two reads,
 * so the \xNN rewrite crosses a boundary) and the chat file codec, whose
 * join must give back any file its split accepts in canonical form. The
 * parser's messages written from its events must be the trees' (bytes,
 * ids, and the error when there is one), whatever the feeds' sizes, and
 * the same as yajl's (pb__chat_tg_new_yajl), the reader it replaced. */
#include <stdbool.h>
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

/* Each message's canonical bytes, then its id, after a NUL each. */
static void add_msg(pb_buf_t *out, const uint8_t *bytes, size_t len, const char *id)
{
	if (pb__chat_buf_add(out, bytes, len) != 0 || pb__chat_buf_add(out, "", 1) != 0 ||
	    (id != NULL && pb__chat_buf_str(out, id) != 0) || pb__chat_buf_add(out, "", 1) != 0)
		abort();
}

static int tree_msg(void *arg, pb__chat_tg_chat_t *chat, pb__cj_t *msg)
{
	const pb__cj_t *id = pb__cj_get(msg, "id");
	pb_buf_t b = {0};

	(void)chat;
	if (pb__cj_write(&b, msg, PB__CJ_ORDER_MESSAGE) != 0)
		abort();
	add_msg(arg, b.data, b.len, id != NULL && id->type == PB__CJ_NUM ? id->str : NULL);
	pb__chat_buf_clear(&b);
	pb__cj_free(msg);
	return 0;
}

static int canon_msg(void *arg, pb__chat_tg_chat_t *chat, const pb_buf_t *canon, const char *id)
{
	(void)chat;
	add_msg(arg, canon->data, canon->len, id);
	return 0;
}

/* How the text is fed: in thirds, or in pieces of 1 to 8 bytes (so that
 * tokens split everywhere) whose sizes follow the text's own bytes. */
enum feeding { THIRDS, PIECES };

static int parse_way(const uint8_t *data, size_t size, bool canon, bool yajl, enum feeding how, pb_buf_t *out)
{
	pb__chat_tg_sink_t sink = {NULL, canon ? NULL : tree_msg, NULL, out, false, canon ? canon_msg : NULL};
	pb__chat_tg_t *p;
	size_t third = size / 3, at = 0, n;
	char why[256];
	int err;

	if ((yajl ? pb__chat_tg_new_yajl(&p, &sink) : pb__chat_tg_new(&p, &sink)) != 0)
		abort();
	if (how == THIRDS) {
		err = pb__chat_tg_feed(p, data, third, why, sizeof(why));
		if (err == 0)
			err = pb__chat_tg_feed(p, data + third, size - third, why, sizeof(why));
	} else {
		for (err = 0; err == 0 && at < size; at += n) {
			n = 1 + (size_t)(data[at] & 7);
			if (n > size - at)
				n = size - at;
			err = pb__chat_tg_feed(p, data + at, n, why, sizeof(why));
		}
	}
	if (err == 0)
		err = pb__chat_tg_finish(p, why, sizeof(why));
	pb__chat_tg_free(p);
	return err;
}

static bool same(int ea, const pb_buf_t *a, int eb, const pb_buf_t *b)
{
	return ea == eb && a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* The messages and the error must be the same: trees or written from the
 * events, the text fed in thirds or in small pieces, and read by the
 * parser's own reader or by yajl. */
static void both_ways(const uint8_t *data, size_t size)
{
	pb_buf_t a = {0}, b = {0}, c = {0}, d = {0};
	int ea, eb, ec, ed;

	ea = parse_way(data, size, false, false, THIRDS, &a);
	eb = parse_way(data, size, true, false, THIRDS, &b);
	ed = parse_way(data, size, true, false, PIECES, &d);
	if (!same(ea, &a, eb, &b) || !same(eb, &b, ed, &d))
		abort();
	ec = parse_way(data, size, true, true, THIRDS, &c);
	if (!same(eb, &b, ec, &c))
		abort();
	pb__chat_buf_clear(&a);
	pb__chat_buf_clear(&b);
	pb__chat_buf_clear(&c);
	pb__chat_buf_clear(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct items v = {0};
	pb_buf_t out = {0}, again = {0};
	struct items w = {0};
	size_t i;

	(void)pb__chat_telegram_parse_buf(data, size);
	both_ways(data, size);
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
