/* Search over the chat messages of an open backup, on the desktop side:
 * the messages are kept as the restore wrote them (their ids and what the
 * page shows of each), and what a search looks at is one lower-case text
 * of all of them, so that a query is one memmem over it however many
 * messages the backup holds. Only a page of hits goes to the browser. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback.h"
#include "desktop.h"

/* What a search looks at in a message, appended to b: a Telegram
 * message's sender and text (not its JSON keys), a WhatsApp line as it
 * is; then a NUL, so that no query matches across two messages. */
static int search_text(json_t *o, const char *text, size_t len, pb_buf_t *b)
{
	size_t i, from = b->len;
	json_t *t, *part;
	int rc = 0;

	if (o != NULL) {
		const char *who = json_string_value(json_object_get(o, "from"));

		if (who != NULL)
			rc = pb_buf_append(b, who, strlen(who));
		rc = rc != 0 ? rc : pb_buf_append(b, "\n", 1);
		t = json_object_get(o, "text");
		if (json_is_string(t))
			rc = rc != 0 ? rc : pb_buf_append(b, json_string_value(t), json_string_length(t));
		json_array_foreach(t, i, part) {
			json_t *pt = json_is_string(part) ? part : json_object_get(part, "text");

			if (json_is_string(pt))
				rc = rc != 0 ? rc : pb_buf_append(b, json_string_value(pt), json_string_length(pt));
		}
	} else {
		rc = pb_buf_append(b, text, len);
	}
	/* A NUL inside a message would end it early for nobody: it cannot
	 * be typed into a query, and the separator stays the only one. */
	for (i = from; rc == 0 && i < b->len; i++)
		b->data[i] = b->data[i] == 0 ? ' ' : b->data[i] < 0x80 ? (uint8_t)tolower(b->data[i]) : b->data[i];
	return rc != 0 ? rc : pb_buf_append(b, "", 1);
}

/* What the page shows of a Telegram message: its date, sender, text and
 * whether it carries media, as compact JSON (the full object stays in the
 * device directory); a WhatsApp line as it is. Appended to b with a NUL. */
static int shown_text(json_t *o, const char *text, size_t len, pb_buf_t *b)
{
	static const char *const keys[] = {"date", "from", "actor", "text", "media_type", NULL};
	json_t *s;
	char *out;
	int rc;

	if (o == NULL) {
		rc = pb_buf_append(b, text, strnlen(text, len));
		return rc != 0 ? rc : pb_buf_append(b, "", 1);
	}
	if ((s = json_object()) == NULL)
		return -ENOMEM;
	for (size_t i = 0; keys[i] != NULL; i++) {
		json_t *v = json_object_get(o, keys[i]);

		if (v != NULL)
			json_object_set(s, keys[i], v);
	}
	if (json_object_get(o, "photo") != NULL)
		json_object_set_new(s, "photo", json_true());
	if (json_object_get(o, "file") != NULL)
		json_object_set_new(s, "file", json_true());
	out = json_dumps(s, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(s);
	if (out == NULL)
		return -ENOMEM;
	rc = pb_buf_append(b, out, strlen(out) + 1);
	sodium_memzero(out, strlen(out));
	free(out);
	return rc;
}

int pb_desktop_msgs_add(pb_desktop_msgs_t *m, const char *id, const uint8_t *data, size_t len)
{
	json_t *o = json_loadb((const char *)data, len, 0, NULL);
	size_t *a;
	int rc;

	if (o != NULL && !json_is_object(o)) {
		json_decref(o);
		o = NULL;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 4096;

		if ((a = realloc(m->at, 2 * cap * sizeof(*a))) == NULL) {
			json_decref(o);
			return -ENOMEM;
		}
		m->at = a;
		m->cap = cap;
	}
	m->at[2 * m->n] = m->text.len;
	m->at[2 * m->n + 1] = m->lower.len;
	rc = pb_buf_append(&m->text, id, strlen(id) + 1);
	rc = rc != 0 ? rc : shown_text(o, (const char *)data, len, &m->text);
	rc = rc != 0 ? rc : search_text(o, (const char *)data, len, &m->lower);
	json_decref(o);
	if (rc != 0) {
		m->text.len = m->at[2 * m->n];
		m->lower.len = m->at[2 * m->n + 1];
		return rc;
	}
	m->n++;
	return 0;
}

void pb_desktop_msgs_free(pb_desktop_msgs_t *m)
{
	pb_buf_free(&m->text);
	pb_buf_free(&m->lower);
	free(m->at);
	memset(m, 0, sizeof(*m));
}

/* The message whose search text holds offset off. */
static size_t msg_at(const pb_desktop_msgs_t *m, size_t off)
{
	size_t lo = 0, hi = m->n;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->at[2 * mid + 1] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void page_add(const pb_desktop_msgs_t *m, size_t i, json_t *out)
{
	const char *id = (const char *)m->text.data + m->at[2 * i];
	const char *shown = id + strlen(id) + 1;
	char *uid = NULL, *utext = NULL;

	if (pb_text_utf8(id, &uid) == 0 && pb_text_utf8(shown, &utext) == 0)
		json_array_append_new(out, json_pack("{s:s, s:s}", "id", uid, "text", utext));
	free(uid);
	free(utext);
}

json_t *pb_desktop_msgs_search(const pb_desktop_msgs_t *m, const char *q, size_t page, size_t per)
{
	size_t nq = strlen(q), skip = page * per, total = 0;
	char lq[256];
	json_t *a = json_array();

	if (nq >= sizeof(lq))
		nq = sizeof(lq) - 1;
	for (size_t i = 0; i < nq; i++)
		lq[i] = (char)((unsigned char)q[i] < 0x80 ? tolower((unsigned char)q[i]) : q[i]);
	lq[nq] = 0;
	if (nq == 0) {
		total = m->n;
		for (size_t i = skip; i < m->n && i < skip + per; i++)
			page_add(m, i, a);
	} else {
		const char *base = (const char *)m->lower.data, *end = base + m->lower.len, *p = base;

		while (p < end && (p = memmem(p, (size_t)(end - p), lq, nq)) != NULL) {
			size_t i = msg_at(m, (size_t)(p - base));

			if (total >= skip && total < skip + per)
				page_add(m, i, a);
			total++;
			/* Each message counts once: on to the next one. */
			p = i + 1 < m->n ? base + m->at[2 * (i + 1) + 1] : end;
		}
	}
	return json_pack("{s:o, s:I, s:I, s:I}", "messages", a, "total", (json_int_t)total, "page", (json_int_t)page,
			 "per_page", (json_int_t)per);
}
