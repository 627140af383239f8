/* Reading vCard books: logical lines (unfolded, quoted-printable's soft
 * line breaks and Android's unfolded BASE64 joined), properties, cards; and
 * each card as read brought into vCard 4.0 form (vCard 2.1's and 3.0's
 * parameters, encodings and charsets, Android's X-GROUP-MEMBERSHIP), its
 * dialect noted in X-PEERBACK-DIALECT (agent/kinds/contacts.h). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"
#include "agent/kinds/util.h"
#include "agent/kinds/contacts.h"

/* --- Reading --------------------------------------------------------------- */

/* Logical lines: physical lines joined where the next starts with a blank. */
struct unfold {
	pb__chat_lines_t *r;
	pb_buf_t cur, peek;
	bool have_peek, eof;
	uint64_t peek_line, peek_start, peek_end;
	uint64_t line, start, end; /* of cur */
};

static int read_physical(struct unfold *u)
{
	const char *l;
	size_t len;
	int rc = pb__chat_lines_next(u->r, &l, &len);

	if (rc <= 0) {
		u->eof = true;
		return rc;
	}
	u->peek.len = 0;
	if (u->peek.data != NULL)
		u->peek.data[0] = 0;
	if (pb__chat_buf_add(&u->peek, l, len) != 0)
		return PB_ENOMEM;
	u->peek_line = u->r->lineno;
	u->peek_start = u->r->start;
	u->peek_end = u->r->off;
	u->have_peek = true;
	return 1;
}

static int unfold_next(struct unfold *u)
{
	int rc;

	if (!u->have_peek) {
		if (u->eof)
			return 0;
		if ((rc = read_physical(u)) <= 0)
			return rc;
	}
	u->cur.len = 0;
	if (u->cur.data == NULL && (rc = pb__chat_buf_add(&u->cur, " ", 1)) != 0)
		return rc;
	u->cur.len = 0;
	u->cur.data[0] = 0;
	if ((rc = pb__chat_buf_add(&u->cur, u->peek.data, u->peek.len)) != 0)
		return rc;
	u->line = u->peek_line;
	u->start = u->peek_start;
	u->end = u->peek_end;
	u->have_peek = false;
	while (!u->eof) {
		if ((rc = read_physical(u)) < 0)
			return rc;
		if (rc == 0)
			break;
		if (u->peek.len == 0 || (u->peek.data[0] != ' ' && u->peek.data[0] != '\t'))
			break;
		u->have_peek = false;
		if (u->cur.len + u->peek.len > PB__CHAT_LINE_MAX)
			return PB_ETOOBIG;
		if ((rc = pb__chat_buf_add(&u->cur, u->peek.data + 1, u->peek.len - 1)) != 0)
			return rc;
		u->end = u->peek_end;
	}
	return 1;
}

/* Splits "[group.]NAME[;params]:value". */
static int parse_prop(const char *s, size_t len, struct vprop *p)
{
	size_t i, colon = SIZE_MAX, name_end, dot = SIZE_MAX;
	bool quoted = false;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < len; i++) {
		if (s[i] == '"')
			quoted = !quoted;
		else if (s[i] == ':' && !quoted) {
			colon = i;
			break;
		}
	}
	if (colon == SIZE_MAX)
		return PB_EDATA_FORMAT;
	for (name_end = 0; name_end < colon && s[name_end] != ';'; name_end++) {
		if (s[name_end] == '.' && dot == SIZE_MAX)
			dot = name_end;
		else if (!pb__vcard_name_char(s[name_end]))
			return PB_EDATA_FORMAT;
	}
	if (dot == 0 || dot + 1 == name_end || name_end == 0)
		return PB_EDATA_FORMAT;
	if (dot != SIZE_MAX)
		p->group = strndup(s, dot);
	p->name = strndup(s + (dot == SIZE_MAX ? 0 : dot + 1), name_end - (dot == SIZE_MAX ? 0 : dot + 1));
	p->params = strndup(s + name_end, colon - name_end);
	p->value = strndup(s + colon + 1, len - colon - 1);
	if ((dot != SIZE_MAX && p->group == NULL) || p->name == NULL || p->params == NULL || p->value == NULL)
		return PB_ENOMEM;
	for (i = 0; p->name[i]; i++)
		if (p->name[i] >= 'a' && p->name[i] <= 'z')
			p->name[i] = (char)(p->name[i] - 32);
	return 0;
}

static bool is_begin(const char *s)
{
	return strcasecmp(s, "BEGIN:VCARD") == 0;
}

static bool is_end(const char *s)
{
	return strcasecmp(s, "END:VCARD") == 0;
}

static int convert_card(struct vcard *c, const char **why);

/* True when a property's parameters say its value is quoted-printable
 * (2.1 writes the bare word too). */
static bool is_qp(const char *params)
{
	const char *s;

	for (s = params; (s = strchr(s, ';')) != NULL; s++) {
		size_t n = strcspn(s + 1, ";");

		if ((n == 25 && strncasecmp(s + 1, "ENCODING=QUOTED-PRINTABLE", 25) == 0) ||
		    (n == 16 && strncasecmp(s + 1, "QUOTED-PRINTABLE", 16) == 0))
			return true;
	}
	return false;
}

static bool is_b64(const char *params)
{
	const char *s;

	for (s = params; (s = strchr(s, ';')) != NULL; s++) {
		size_t n = strcspn(s + 1, ";");

		if ((n == 15 && strncasecmp(s + 1, "ENCODING=BASE64", 15) == 0) ||
		    (n == 6 && strncasecmp(s + 1, "BASE64", 6) == 0))
			return true;
	}
	return false;
}

static bool base64_line(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '+' || s[i] == '/' || s[i] == '='))
			return false;
	return len > 0;
}

/* Reads every card of a book. errline receives the line of a problem. */
int pb__vcard_read_book(pb__chat_lines_t *r, struct vbook *b, uint64_t *errline, const char **why)
{
	struct unfold u;
	struct vcard *c = NULL;
	struct vprop p;
	int rc, err = 0;

	memset(&u, 0, sizeof(u));
	u.r = r;
	while ((rc = unfold_next(&u)) == 1) {
		const char *s = (const char *)u.cur.data;

		*errline = u.line;
		/* A content line ends with CRLF (or LF); a carriage return or NUL
		 * inside one has no vCard meaning, and passing it through would
		 * change how the line reads back. */
		if (memchr(s, '\r', u.cur.len) != NULL || memchr(s, 0, u.cur.len) != NULL) {
			*why = "a carriage return or NUL inside a line";
			err = PB_EDATA_FORMAT;
			break;
		}
		if (c == NULL) {
			if (u.cur.len == 0)
				continue;
			if (!is_begin(s)) {
				*why = "text outside a vCard (expected BEGIN:VCARD)";
				err = PB_EDATA_FORMAT;
				break;
			}
			if (b->n >= VCARD_MAX_CARDS) {
				*why = "more than 100000 cards";
				err = PB_ETOOBIG;
				break;
			}
			if ((err = pb__vcard_grow((void **)&b->c, &b->cap, b->n, sizeof(*b->c))) != 0)
				break;
			c = &b->c[b->n++];
			memset(c, 0, sizeof(*c));
			c->line = u.line;
			c->start = u.start;
			continue;
		}
		if (u.cur.len == 0)
			continue;
		if (is_end(s)) {
			c->end = u.end;
			if ((err = convert_card(c, why)) != 0) {
				if (err == PB_ENOMEM)
					*why = "out of memory";
				else if (err != PB_EUNSUPPORTED)
					*why = "a card that does not convert to vCard 4.0";
				*errline = c->line;
				break;
			}
			c = NULL;
			continue;
		}
		/* 2.1 BASE64 lines that were not folded with a blank continue
		 * the value before them up to a blank line. */
		if (c->n > 0 && is_b64(c->p[c->n - 1].params) && memchr(s, ':', u.cur.len) == NULL &&
		    base64_line(s, u.cur.len)) {
			struct vprop *last = &c->p[c->n - 1];
			size_t vl = strlen(last->value);
			char *nv = realloc(last->value, vl + u.cur.len + 1);

			if (nv == NULL) {
				err = PB_ENOMEM;
				break;
			}
			memcpy(nv + vl, s, u.cur.len + 1);
			last->value = nv;
			continue;
		}
		if (is_begin(s)) {
			*why = "BEGIN:VCARD inside a vCard (missing END:VCARD before it)";
			err = PB_EDATA_FORMAT;
			break;
		}
		if ((err = parse_prop(s, u.cur.len, &p)) != 0) {
			pb__vcard_prop_free(&p);
			*why = "not a vCard property line (NAME:value)";
			break;
		}
		/* Quoted-printable's soft line break: a value ending in '='
		 * goes on at the start of the next line. */
		while (is_qp(p.params) && p.value[0] != 0 && p.value[strlen(p.value) - 1] == '=') {
			size_t vl = strlen(p.value) - 1;
			char *nv;

			if ((rc = unfold_next(&u)) != 1) {
				err = rc < 0 ? rc : PB_ETRUNCATED;
				*why = "a quoted-printable value ends in a soft line break at the end of the file";
				break;
			}
			if (vl + u.cur.len > PB__CHAT_LINE_MAX || memchr(u.cur.data, '\r', u.cur.len) != NULL ||
			    memchr(u.cur.data, 0, u.cur.len) != NULL) {
				err = PB_EDATA_FORMAT;
				*why = "a quoted-printable value over 1 MiB, or with a carriage return or NUL";
				break;
			}
			nv = realloc(p.value, vl + u.cur.len + 1);
			if (nv == NULL) {
				err = PB_ENOMEM;
				break;
			}
			memcpy(nv + vl, u.cur.data, u.cur.len);
			nv[vl + u.cur.len] = 0;
			p.value = nv;
		}
		if (err != 0) {
			pb__vcard_prop_free(&p);
			rc = 1;
			break;
		}
		if (c->n >= VCARD_MAX_PROPS || (err = pb__vcard_grow((void **)&c->p, &c->cap, c->n, sizeof(*c->p))) != 0) {
			pb__vcard_prop_free(&p);
			*why = "a card has too many properties";
			err = err ? err : PB_ETOOBIG;
			break;
		}
		c->p[c->n++] = p;
	}
	if (rc < 0) {
		err = rc;
		*errline = r->lineno;
		*why = rc == PB_ETOOBIG ? "line longer than 1 MiB" : pb_strerror(rc);
	}
	if (err == 0 && c != NULL) {
		*errline = c->line;
		*why = "vCard has no END:VCARD (truncated file?)";
		err = PB_ETRUNCATED;
	}
	pb__chat_buf_clear(&u.cur);
	pb__chat_buf_clear(&u.peek);
	return err;
}

/* --- vCard 2.1 and 3.0 into 4.0 -------------------------------------------- */

/* Properties whose 4.0 value is a list: no escaping of ',' there. */
static bool list_prop(const char *name)
{
	return !strcmp(name, "CATEGORIES") || !strcmp(name, "NICKNAME") || !strcmp(name, "X-GROUP-MEMBERSHIP");
}

/* Text into UTF-8 from a CHARSET; ISO-8859-1 (and its Windows superset, as
 * far as Latin-1 goes) widened, UTF-8 and US-ASCII as they are. */
static int to_utf8(const char *charset, const uint8_t *s, size_t len, pb_buf_t *out)
{
	size_t i;
	int err = 0;

	if (charset == NULL || !strcasecmp(charset, "UTF-8") || !strcasecmp(charset, "UTF8") ||
	    !strcasecmp(charset, "US-ASCII"))
		return pb__chat_buf_add(out, s, len);
	if (strcasecmp(charset, "ISO-8859-1") != 0 && strcasecmp(charset, "WINDOWS-1252") != 0 &&
	    strcasecmp(charset, "LATIN1") != 0)
		return PB_EUNSUPPORTED;
	for (i = 0; i < len && err == 0; i++) {
		uint8_t c[2] = {(uint8_t)(0xc0 | (s[i] >> 6)), (uint8_t)(0x80 | (s[i] & 0x3f))};

		err = s[i] < 0x80 ? pb__chat_buf_add(out, s + i, 1) : pb__chat_buf_add(out, c, 2);
	}
	return err;
}

/* One component of a 2.1 value, decoded: quoted-printable or 2.1's escapes
 * (\; \\ \: \,), then the charset. */
static int decode21(const char *s, size_t len, bool qp, const char *charset, pb_buf_t *out)
{
	pb_buf_t raw = {0};
	size_t i;
	int err = 0, h, l;

	for (i = 0; i < len && err == 0; i++) {
		if (qp && s[i] == '=' && i + 2 < len + 0 && (h = pb__kinds_hexval((unsigned char)s[i + 1])) >= 0 &&
		    (l = pb__kinds_hexval((unsigned char)s[i + 2])) >= 0) {
			uint8_t c = (uint8_t)(h << 4 | l);

			err = pb__chat_buf_add(&raw, &c, 1);
			i += 2;
		} else if (!qp && s[i] == '\\' && i + 1 < len && strchr("\\;:,", s[i + 1]) != NULL) {
			err = pb__chat_buf_add(&raw, s + i + 1, 1);
			i++;
		} else {
			err = pb__chat_buf_add(&raw, s + i, 1);
		}
	}
	if (err == 0)
		err = to_utf8(charset, raw.data, raw.len, out);
	pb__chat_buf_clear(&raw);
	return err;
}

/* A 2.1 property in 4.0 form: bare types become TYPE= (lower case), PREF
 * becomes PREF=1, CHARSET and ENCODING go (the value is decoded), binary
 * values become data: URIs. */
static int convert21_prop(struct vprop *p, bool v21, const char **why)
{
	pb_buf_t params = {0}, val = {0}, comp = {0};
	const char *charset_s = NULL, *media = NULL;
	char *plist = strdup(p->params), *tok, *save = NULL, charset[40] = "";
	bool qp = false, b64 = false, in_types = false, touched = false;
	size_t i, start;
	int err = 0;

	if (plist == NULL)
		return PB_ENOMEM;
	for (tok = strtok_r(plist, ";", &save); tok != NULL && err == 0; tok = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(tok, '=');
		const char *v = eq ? eq + 1 : tok;
		/* A parameter dropped or rewritten must hold no double quote:
		 * the quotes left would pair differently when the line is read
		 * again, and the canonical form would not read back. One
		 * passed on as it is keeps its quotes. */
		bool dq = strchr(tok, '"') != NULL;

		if (eq != NULL && strncasecmp(tok, "CHARSET=", 8) == 0) {
			if (dq) {
				err = PB_EDATA_FORMAT;
				break;
			}
			snprintf(charset, sizeof(charset), "%s", v);
			charset_s = charset;
			touched = true;
			continue;
		}
		if ((eq != NULL && strncasecmp(tok, "ENCODING=", 9) == 0) ||
		    (eq == NULL && v21 && (!strcasecmp(tok, "QUOTED-PRINTABLE") || !strcasecmp(tok, "BASE64") ||
					  !strcasecmp(tok, "8BIT") || !strcasecmp(tok, "7BIT")))) {
			if (!v21 && strcasecmp(v, "QUOTED-PRINTABLE") != 0) {
				err = pb__chat_buf_printf(&params, ";%s", tok);
				continue;
			}
			if (dq) {
				err = PB_EDATA_FORMAT;
				break;
			}
			qp = qp || !strcasecmp(v, "QUOTED-PRINTABLE");
			b64 = b64 || !strcasecmp(v, "BASE64") || !strcasecmp(v, "B");
			touched = true;
			continue;
		}
		if (!v21) {
			err = pb__chat_buf_printf(&params, ";%s", tok);
			continue;
		}
		touched = true;
		if (dq && (eq == NULL || strncasecmp(tok, "TYPE=", 5) == 0)) {
			err = PB_EDATA_FORMAT;
			break;
		}
		if (eq == NULL || strncasecmp(tok, "TYPE=", 5) == 0) {
			/* A type: for a binary value, its media type. */
			for (i = 0; i < pb__vcard_nmedia_types; i++)
				if (!strcasecmp(v, pb__vcard_media_types[i].type))
					break;
			if (i < pb__vcard_nmedia_types && pb__vcard_uri_prop(p->name)) {
				media = pb__vcard_media_types[i].media;
				in_types = false;
				continue;
			}
			if (!strcasecmp(v, "PREF")) {
				err = pb__chat_buf_str(&params, ";PREF=1");
				in_types = false;
				continue;
			}
			err = pb__chat_buf_str(&params, in_types ? "," : ";TYPE=");
			for (i = 0; v[i] && err == 0; i++) {
				char c = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);

				err = pb__chat_buf_add(&params, &c, 1);
			}
			in_types = true;
			continue;
		}
		in_types = false;
		if (!strcasecmp(tok, "VALUE=URL") || !strcasecmp(tok, "VALUE=URI"))
			continue; /* 4.0's default for these */
		err = pb__chat_buf_printf(&params, ";%s", tok);
	}
	free(plist);
	if (err == PB_EDATA_FORMAT)
		*why = "a double quote in a CHARSET, ENCODING or 2.1 type parameter";
	if (err != 0 || !touched)
		goto out;
	if (b64) {
		/* data:<media type>;base64,<the value without blanks> */
		err = pb__chat_buf_printf(&val, "data:%s;base64,", media ? media : "application/octet-stream");
		for (i = 0; p->value[i] && err == 0; i++)
			if (p->value[i] != ' ' && p->value[i] != '\t')
				err = pb__chat_buf_add(&val, p->value + i, 1);
	} else if (!qp && (!v21 || (pb__vcard_uri_prop(p->name) && charset_s == NULL))) {
		err = pb__chat_buf_str(&val, p->value);
	} else {
		/* Component by component: ';' separates them in 2.1 as in 4.0. */
		for (start = 0, i = 0;; i++) {
			if (p->value[i] == '\\' && !qp && p->value[i + 1] != 0) {
				i++;
				continue;
			}
			if (p->value[i] != ';' && p->value[i] != 0)
				continue;
			comp.len = 0;
			if ((err = decode21(p->value + start, i - start, qp, charset_s, &comp)) != 0)
				break;
			if (start > 0 && (err = pb__chat_buf_add(&val, ";", 1)) != 0)
				break;
			if ((err = pb__vcard_escape40(&val, comp.data ? (const char *)comp.data : "", comp.len, list_prop(p->name))) != 0)
				break;
			if (p->value[i] == 0)
				break;
			start = i + 1;
		}
		if (err == PB_EUNSUPPORTED)
			*why = "a CHARSET other than UTF-8, ISO-8859-1 or US-ASCII";
	}
	if (err == 0) {
		char *np = strndup(params.data ? (const char *)params.data : "", params.len);
		char *nv = strndup(val.data ? (const char *)val.data : "", val.len);

		if (np == NULL || nv == NULL) {
			free(np);
			free(nv);
			err = PB_ENOMEM;
		} else {
			free(p->params);
			free(p->value);
			p->params = np;
			p->value = nv;
		}
	}
out:
	pb__chat_buf_clear(&params);
	pb__chat_buf_clear(&val);
	pb__chat_buf_clear(&comp);
	return err;
}

static int add_prop(struct vcard *c, const char *name, const char *params, const char *value)
{
	struct vprop p = {NULL, strdup(name), strdup(params), strdup(value)};
	int err;

	if (p.name == NULL || p.params == NULL || p.value == NULL) {
		pb__vcard_prop_free(&p);
		return PB_ENOMEM;
	}
	if (c->n >= VCARD_MAX_PROPS || (err = pb__vcard_grow((void **)&c->p, &c->cap, c->n, sizeof(*c->p))) != 0) {
		pb__vcard_prop_free(&p);
		return PB_ETOOBIG;
	}
	c->p[c->n++] = p;
	return 0;
}

/* A card as read, in 4.0 form, its dialect noted. 4.0 cards (the canonical
 * book among them) are left as they are. */
static int convert_card(struct vcard *c, const char **why)
{
	const struct vprop *ver = pb__vcard_find(c, "VERSION");
	pb_buf_t dialect = {0}, cats = {0};
	bool v21 = ver != NULL && strcmp(ver->value, "2.1") == 0, v3 = ver != NULL && strcmp(ver->value, "3.0") == 0;
	bool xgm = false;
	size_t i, k;
	int err = 0;

	if (pb__vcard_find(c, DIALECT_PROP) != NULL)
		return 0;
	for (i = 0; i < c->n && err == 0; i++)
		err = convert21_prop(&c->p[i], v21, why);
	if (err != 0 || (!v21 && !v3))
		return err;
	/* Android's group lines become CATEGORIES, which make the groups. */
	for (i = k = 0; i < c->n; i++) {
		if (v21 && strcmp(c->p[i].name, "X-GROUP-MEMBERSHIP") == 0) {
			if ((cats.len > 0 && pb__chat_buf_str(&cats, ",") != 0) || pb__chat_buf_str(&cats, c->p[i].value) != 0)
				err = PB_ENOMEM;
			xgm = true;
			pb__vcard_prop_free(&c->p[i]);
			continue;
		}
		c->p[k++] = c->p[i];
	}
	c->n = k;
	if (err == 0 && xgm)
		err = add_prop(c, "CATEGORIES", "", (const char *)cats.data);
	if (err == 0) {
		bool apple = false;

		for (i = 0; i < c->n; i++)
			apple = apple || strcmp(c->p[i].name, "X-ADDRESSBOOKSERVER-KIND") == 0;
		err = pb__chat_buf_str(&dialect, v21 ? "vcard21" : apple ? "apple" : "vcard3");
		/* The 3.0 writers always write UID and FN: nothing more to keep. */
		if (err == 0 && v21 && pb__vcard_find(c, "UID") == NULL)
			err = pb__chat_buf_str(&dialect, ",no-uid");
		if (err == 0 && v21 && pb__vcard_find(c, "FN") == NULL)
			err = pb__chat_buf_str(&dialect, ",no-fn");
		if (err == 0 && xgm)
			err = pb__chat_buf_str(&dialect, ",x-group-membership");
		if (err == 0)
			err = add_prop(c, DIALECT_PROP, "", (const char *)dialect.data);
	}
	pb__chat_buf_clear(&dialect);
	pb__chat_buf_clear(&cats);
	return err;
}
