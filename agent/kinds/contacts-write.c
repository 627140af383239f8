/* Writing vCard books: the canonical book (vCard 4.0 with each card's
 * dialect) and the exports vCard 4.0, 3.0, Apple's and Android's 2.1. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"
#include "agent/kinds/util.h"
#include "agent/kinds/contacts.h"

/* Appends one logical line, folded at 75 octets, with CRLF. */
static int put_line(pb_buf_t *out, const char *s, size_t len)
{
	size_t i = 0, room = 75, k;
	int err;

	while (len - i > room) {
		k = room;
		while (k > 1 && ((unsigned char)s[i + k] & 0xc0) == 0x80)
			k--; /* never split a UTF-8 sequence */
		if ((err = pb__chat_buf_add(out, s + i, k)) != 0 || (err = pb__chat_buf_add(out, "\r\n ", 3)) != 0)
			return err;
		i += k;
		room = 74;
	}
	if ((err = pb__chat_buf_add(out, s + i, len - i)) != 0)
		return err;
	return pb__chat_buf_add(out, "\r\n", 2);
}

static int put(pb_buf_t *out, pb_buf_t *line, const char *a, const char *b)
{
	int err;

	line->len = 0;
	if ((err = pb__chat_buf_str(line, a)) != 0 || (err = pb__chat_buf_str(line, b)) != 0)
		return err;
	return put_line(out, (const char *)line->data, line->len);
}

static bool skipped(const char *name)
{
	static const char *const names[] = {"VERSION", "UID", "FN", "CATEGORIES", "MEMBER",
					     "X-ADDRESSBOOKSERVER-KIND", "X-ADDRESSBOOKSERVER-MEMBER", NULL};
	int i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

static int escape(pb_buf_t *b, const char *s)
{
	int err = 0;

	for (; *s && err == 0; s++) {
		if (*s == '\\' || *s == ',' || *s == ';') {
			err = pb__chat_buf_add(b, "\\", 1);
			if (err == 0)
				err = pb__chat_buf_add(b, s, 1);
		}
		else if (*s == '\n')
			err = pb__chat_buf_add(b, "\\n", 2);
		else if (*s != '\r')
			err = pb__chat_buf_add(b, s, 1);
	}
	return err;
}

/* Does a value need quoted-printable in 2.1 (anything but printable ASCII)? */
static bool needs_qp(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return true;
	return false;
}

/* Quoted-printable as Android writes it: every byte =XX, a soft line break
 * after each 23 bytes. */
static int put_qp(pb_buf_t *b, const char *s, size_t len)
{
	size_t i, col = 0;
	int err = 0;

	for (i = 0; i < len && err == 0; i++) {
		err = pb__chat_buf_printf(b, "=%02X", (unsigned char)s[i]);
		col += 3;
		if (err == 0 && col >= 67) {
			err = pb__chat_buf_str(b, "=\r\n");
			col = 0;
		}
	}
	return err;
}

/* A 4.0 property as Android's 2.1 exporter writes it. */
static int put_prop21(pb_buf_t *out, const struct vprop *p)
{
	pb_buf_t line = {0};
	const char *s;
	size_t i, start, n;
	int err = 0;
	bool qp = false;

	if ((p->group && (err = pb__chat_buf_printf(&line, "%s.", p->group)) != 0) ||
	    (err = pb__chat_buf_str(&line, p->name)) != 0)
		goto out;
	if (strncmp(p->value, "data:", 5) == 0 && pb__vcard_uri_prop(p->name) && strstr(p->value, ";base64,") != NULL) {
		/* PHOTO;ENCODING=BASE64;JPEG:, folded as Android folds it,
		 * and a blank line after it. */
		const char *comma = strstr(p->value, ";base64,"), *mt = p->value + 5, *type = NULL;
		size_t mtlen = (size_t)(comma - mt), col;

		for (i = 0; i < pb__vcard_nmedia_types; i++)
			if (strlen(pb__vcard_media_types[i].media) == mtlen && strncmp(pb__vcard_media_types[i].media, mt, mtlen) == 0)
				type = pb__vcard_media_types[i].type;
		if ((err = pb__chat_buf_str(&line, ";ENCODING=BASE64")) != 0 ||
		    (type != NULL && (err = pb__chat_buf_printf(&line, ";%s", type)) != 0) ||
		    (err = pb__chat_buf_str(&line, ":")) != 0)
			goto out;
		/* Android counts the line from its start: 74 characters on
		 * the first, a blank and 73 on the others. */
		col = line.len;
		for (s = comma + 8, n = 73; *s && err == 0; s++) {
			err = pb__chat_buf_add(&line, s, 1);
			if (err == 0 && ++col > n) {
				err = pb__chat_buf_str(&line, "\r\n ");
				col = 0;
				n = 72;
			}
		}
		if (err == 0)
			err = pb__chat_buf_str(&line, "\r\n\r\n");
		if (err == 0)
			err = pb__chat_buf_add(out, line.data, line.len);
		goto out;
	}
	/* Parameters: TYPE=a,b as ;A;B, PREF=1 as ;PREF. */
	for (s = p->params; *s && err == 0;) {
		const char *e = s + 1;
		bool quoted = false;

		while (*e && (quoted || *e != ';')) {
			quoted ^= *e == '"';
			e++;
		}
		n = (size_t)(e - s - 1);
		if (n > 5 && strncasecmp(s + 1, "TYPE=", 5) == 0) {
			for (i = 6; i <= n && err == 0; i++) {
				char c = i < n + 1 && s[i] != ',' && s[i] != '"' ? s[i] : 0;

				if (i == 6 || s[i - 1] == ',')
					err = pb__chat_buf_str(&line, ";");
				if (c && err == 0) {
					c = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
					err = pb__chat_buf_add(&line, &c, 1);
				}
			}
		} else if (n >= 5 && strncasecmp(s + 1, "PREF=", 5) == 0) {
			err = pb__chat_buf_str(&line, ";PREF");
		} else if (n == 9 && strncasecmp(s + 1, "VALUE=uri", 9) == 0) {
			err = pb__chat_buf_str(&line, ";VALUE=URL");
		} else {
			err = pb__chat_buf_add(&line, s, n + 1);
		}
		s = e;
	}
	if (err != 0)
		goto out;
	if (pb__vcard_uri_prop(p->name)) {
		err = pb__chat_buf_printf(&line, ":%s\r\n", p->value);
	} else {
		char *all = pb__vcard_unescape(p->value, strlen(p->value));

		if (all == NULL) {
			err = PB_ENOMEM;
			goto out;
		}
		qp = needs_qp(all, strlen(all));
		free(all);
		if (qp)
			err = pb__chat_buf_str(&line, ";CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE");
		if (err == 0)
			err = pb__chat_buf_str(&line, ":");
		for (start = 0, i = 0; err == 0; i++) {
			char *comp;
			size_t k;

			if (p->value[i] == '\\' && p->value[i + 1] != 0) {
				i++;
				continue;
			}
			if (p->value[i] != ';' && p->value[i] != 0)
				continue;
			comp = pb__vcard_unescape(p->value + start, i - start);
			if (comp == NULL) {
				err = PB_ENOMEM;
				break;
			}
			if (start > 0)
				err = pb__chat_buf_str(&line, ";");
			if (err == 0 && qp)
				err = put_qp(&line, comp, strlen(comp));
			for (k = 0; err == 0 && !qp && comp[k]; k++)
				err = comp[k] == ';' ? pb__chat_buf_str(&line, "\\;") : pb__chat_buf_add(&line, comp + k, 1);
			free(comp);
			if (p->value[i] == 0)
				break;
			start = i + 1;
		}
		if (err == 0)
			err = pb__chat_buf_str(&line, "\r\n");
	}
	if (err == 0)
		err = pb__chat_buf_add(out, line.data, line.len);
out:
	pb__chat_buf_clear(&line);
	return err;
}

/* A contact card as Android writes vCard 2.1: VERSION, N, FN, the other
 * properties in their order, the groups; no line folding but
 * quoted-printable's and BASE64's own. */
static int write_card21(pb_buf_t *out, const struct vbook *b, const struct vcard *c)
{
	pb_buf_t line = {0};
	const struct vprop *n = pb__vcard_find(c, "N");
	struct vprop fn = {NULL, (char *)"FN", (char *)"", c->fn};
	bool xgm = pb__vcard_dialect_has(c, "x-group-membership");
	size_t i;
	int err;

	if ((err = pb__chat_buf_str(out, "BEGIN:VCARD\r\nVERSION:2.1\r\n")) != 0)
		return err;
	if (!pb__vcard_dialect_has(c, "no-uid") && (err = pb__chat_buf_printf(out, "UID:%s\r\n", c->uid)) != 0)
		return err;
	if (n != NULL && (err = put_prop21(out, n)) != 0)
		return err;
	if (!pb__vcard_dialect_has(c, "no-fn") && (err = put_prop21(out, &fn)) != 0)
		return err;
	for (i = 0; i < c->n; i++) {
		const struct vprop *p = &c->p[i];

		if (p == n || skipped(p->name) || strcmp(p->name, DIALECT_PROP) == 0 || strcmp(p->name, "KIND") == 0)
			continue;
		if ((err = put_prop21(out, p)) != 0)
			return err;
	}
	for (i = 0; i < c->ngroups && err == 0; i++) {
		line.len = 0;
		err = pb__vcard_escape40(&line, b->g[c->groups[i]].name, strlen(b->g[c->groups[i]].name), false);
		if (err == 0 && xgm) {
			struct vprop g = {NULL, (char *)"X-GROUP-MEMBERSHIP", (char *)"", (char *)line.data};

			err = put_prop21(out, &g);
		}
	}
	if (err == 0 && !xgm && c->ngroups > 0) {
		line.len = 0;
		for (i = 0; i < c->ngroups && err == 0; i++) {
			if (i > 0)
				err = pb__chat_buf_str(&line, ",");
			if (err == 0)
				err = pb__vcard_escape40(&line, b->g[c->groups[i]].name, strlen(b->g[c->groups[i]].name), false);
		}
		if (err == 0) {
			struct vprop g = {NULL, (char *)"CATEGORIES", (char *)"", (char *)line.data};

			err = put_prop21(out, &g);
		}
	}
	pb__chat_buf_clear(&line);
	if (err == 0)
		err = pb__chat_buf_str(out, "END:VCARD\r\n");
	return err;
}

static const char *member_ref(const char *uid, pb_buf_t *tmp)
{
	tmp->len = 0;
	if (strncasecmp(uid, "urn:", 4) != 0 && pb__chat_buf_str(tmp, "urn:uuid:") != 0)
		return NULL;
	if (pb__chat_buf_str(tmp, uid) != 0)
		return NULL;
	return (const char *)tmp->data;
}

static int write_card(pb_buf_t *out, const struct vbook *b, const struct vcard *c, const struct vgroup *g,
		      enum vformat f)
{
	pb_buf_t line = {0}, tmp = {0};
	const char *uid = c ? c->uid : g->uid;
	bool store = f == VF_STORE;
	size_t i;
	int err;

	if (store)
		f = VF_4;

	if ((err = put_line(out, "BEGIN:VCARD", 11)) != 0 ||
	    (err = put(out, &line, "VERSION:", f == VF_4 ? "4.0" : "3.0")) != 0 ||
	    (err = put(out, &line, "UID:", uid)) != 0)
		goto out;
	if (g != NULL && f == VF_4 && (err = put(out, &line, "KIND:", "group")) != 0)
		goto out;
	if (g != NULL && f == VF_APPLE && (err = put(out, &line, "X-ADDRESSBOOKSERVER-KIND:", "group")) != 0)
		goto out;
	tmp.len = 0;
	if (g != NULL && ((err = pb__chat_buf_add(&tmp, "x", 1)) != 0 || (tmp.len = 0, err = escape(&tmp, g->name)) != 0))
		goto out;
	if ((err = put(out, &line, "FN:", c != NULL ? c->fn : (const char *)tmp.data)) != 0)
		goto out;
	/* Apple group cards carry the name in N as well. */
	if (g != NULL && f == VF_APPLE && (err = put(out, &line, "N:", (const char *)tmp.data)) != 0)
		goto out;
	for (i = 0; c != NULL && i < c->n; i++) {
		const struct vprop *p = &c->p[i];

		if (skipped(p->name) || (strcmp(p->name, "KIND") == 0 && strcasecmp(p->value, "group") == 0) ||
		    (!store && strcmp(p->name, DIALECT_PROP) == 0))
			continue;
		if (f == VF_APPLE && g != NULL && strcmp(p->name, "N") == 0)
			continue;
		line.len = 0;
		if ((p->group && ((err = pb__chat_buf_str(&line, p->group)) != 0 ||
				  (err = pb__chat_buf_str(&line, ".")) != 0)) ||
		    (err = pb__chat_buf_str(&line, p->name)) != 0 || (err = pb__chat_buf_str(&line, p->params)) != 0 ||
		    (err = pb__chat_buf_str(&line, ":")) != 0 || (err = pb__chat_buf_str(&line, p->value)) != 0 ||
		    (err = put_line(out, (const char *)line.data, line.len)) != 0)
			goto out;
	}
	if (g == NULL && c->ngroups > 0 && f != VF_APPLE) {
		line.len = 0;
		err = pb__chat_buf_str(&line, "CATEGORIES:");
		for (i = 0; i < c->ngroups && err == 0; i++) {
			if (i > 0)
				err = pb__chat_buf_str(&line, ",");
			if (err == 0)
				err = escape(&line, b->g[c->groups[i]].name);
		}
		if (err != 0 || (err = put_line(out, (const char *)line.data, line.len)) != 0)
			goto out;
	}
	if (g != NULL && f != VF_3) {
		const char *name = f == VF_APPLE ? "X-ADDRESSBOOKSERVER-MEMBER:" : "MEMBER:";

		for (i = 0; i < g->nmembers; i++) {
			const char *ref = member_ref(b->c[g->members[i]].uid, &tmp);

			if (ref == NULL) {
				err = PB_ENOMEM;
				goto out;
			}
			if ((err = put(out, &line, name, ref)) != 0)
				goto out;
		}
		for (i = 0; i < g->nextra; i++)
			if ((err = put(out, &line, name, g->extra[i])) != 0)
				goto out;
	}
	err = put_line(out, "END:VCARD", 9);
out:
	pb__chat_buf_clear(&line);
	pb__chat_buf_clear(&tmp);
	return err;
}

int pb__vcard_write_book(pb_buf_t *out, const struct vbook *b, enum vformat f)
{
	size_t i;
	int err;

	for (i = 0; i < b->n; i++) {
		if (b->c[i].is_group)
			continue;
		err = f == VF_21 ? write_card21(out, b, &b->c[i]) : write_card(out, b, &b->c[i], NULL, f);
		if (err != 0)
			return err;
	}
	if (f == VF_3 || f == VF_21)
		return 0;
	for (i = 0; i < b->ng; i++) {
		const struct vcard *gc = b->g[i].card == SIZE_MAX ? NULL : &b->c[b->g[i].card];

		if ((err = write_card(out, b, gc, &b->g[i], f)) != 0)
			return err;
	}
	return 0;
}
