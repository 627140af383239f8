/* Contacts and contact groups: vCard 4.0 (RFC 6350, KIND:group cards with
 * MEMBER), vCard 3.0 (RFC 2426, CATEGORIES on member cards), Apple
 * (X-ADDRESSBOOKSERVER-KIND/-MEMBER) and Android's vCard 2.1 books (converted
 * to 4.0 as read); the canonical book contacts/contacts.vcf and its codec;
 * the exports auto (the dialect the cards came in), vcard4, vcard3, vcard21,
 * apple.
 *
 * Canonical book: vCard 4.0, CRLF line ends, lines folded at 75 octets.
 * Contact cards first, in the order read, then group cards. Each card:
 * BEGIN, VERSION:4.0, UID, KIND:group (groups), FN, the card's other
 * properties as read (names upper-cased, parameters and values as written),
 * CATEGORIES (contacts: the groups the card is in, in group order), MEMBER
 * (groups: member cards in card order, then members that are no card of the
 * book), END. Groups are written both ways, so each side is complete. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"
#include "agent/kinds/util.h"

#define VCARD_MAX_CARDS 100000
#define VCARD_MAX_PROPS 10000
#define VCARD_MAX_GROUPS 10000
#define VCARD_FILE_MAX (256u << 20)

struct vprop {
	char *group, *name, *params, *value; /* params: ";TYPE=cell" or "" */
};

struct vcard {
	struct vprop *p;
	size_t n, cap;
	uint64_t line;       /* first line */
	uint64_t start, end; /* byte span in the input */
	char *uid;
	char *fn; /* raw (escaped) */
	bool is_group;
	/* contacts: groups (indices) this card is in */
	size_t *groups;
	size_t ngroups, cgroups;
	/* group cards: its group's index */
	size_t gidx;
};

struct vgroup {
	char *name; /* unescaped */
	size_t card; /* index of its card, or SIZE_MAX when derived */
	char *uid;
	size_t *members; /* contact indices */
	size_t nmembers, cmembers;
	char **extra; /* MEMBER values that name no card */
	size_t nextra;
};

struct vbook {
	struct vcard *c;
	size_t n, cap;
	struct vgroup *g;
	size_t ng, cg;
};

static void card_free(struct vcard *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->p[i].group);
		free(c->p[i].name);
		free(c->p[i].params);
		free(c->p[i].value);
	}
	free(c->p);
	free(c->uid);
	free(c->fn);
	free(c->groups);
	memset(c, 0, sizeof(*c));
}

static void book_free(struct vbook *b)
{
	size_t i, j;

	for (i = 0; i < b->n; i++)
		card_free(&b->c[i]);
	free(b->c);
	for (i = 0; i < b->ng; i++) {
		free(b->g[i].name);
		free(b->g[i].uid);
		free(b->g[i].members);
		for (j = 0; j < b->g[i].nextra; j++)
			free(b->g[i].extra[j]);
		free(b->g[i].extra);
	}
	free(b->g);
	memset(b, 0, sizeof(*b));
}

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	void *nv;
	size_t nc;

	if (n < *cap)
		return 0;
	nc = *cap ? *cap * 2 : 8;
	nv = realloc(*v, nc * size);
	if (nv == NULL)
		return PB_ENOMEM;
	*v = nv;
	*cap = nc;
	return 0;
}

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

static bool name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
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
		else if (!name_char(s[name_end]))
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

static void prop_free(struct vprop *p)
{
	free(p->group);
	free(p->name);
	free(p->params);
	free(p->value);
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
static int read_book(pb__chat_lines_t *r, struct vbook *b, uint64_t *errline, const char **why)
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
			if ((err = grow((void **)&b->c, &b->cap, b->n, sizeof(*b->c))) != 0)
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
			prop_free(&p);
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
			prop_free(&p);
			rc = 1;
			break;
		}
		if (c->n >= VCARD_MAX_PROPS || (err = grow((void **)&c->p, &c->cap, c->n, sizeof(*c->p))) != 0) {
			prop_free(&p);
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

/* --- Text values ----------------------------------------------------------- */

static char *unescape(const char *s, size_t len)
{
	char *o = malloc(len + 1);
	size_t i, k = 0;

	if (o == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len) {
			i++;
			o[k++] = (s[i] == 'n' || s[i] == 'N') ? '\n' : s[i];
		} else {
			o[k++] = s[i];
		}
	}
	o[k] = 0;
	return o;
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

static const struct vprop *find(const struct vcard *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->p[i].name, name) == 0)
			return &c->p[i];
	return NULL;
}

/* --- Building the canonical book ------------------------------------------- */

static int derived_uid(const char *what, size_t len, uint64_t salt, char **out)
{
	uint8_t h[16];
	char s[64];
	uint8_t saltb[8];
	int i, n;

	for (i = 0; i < 8; i++)
		saltb[i] = (uint8_t)(salt >> (8 * i));
	{
		uint64_t a = pb__chat_hash64(what, len), bb;
		uint8_t tmp[16];

		memcpy(tmp, &a, 8);
		memcpy(tmp + 8, saltb, 8);
		bb = pb__chat_hash64(tmp, sizeof(tmp));
		memcpy(h, &a, 8);
		memcpy(h + 8, &bb, 8);
	}
	h[6] = (uint8_t)((h[6] & 0x0f) | 0x50); /* name-based UUID layout */
	h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
	n = snprintf(s, sizeof(s), "urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		     h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
		     h[15]);
	if (n < 0 || (size_t)n >= sizeof(s))
		return PB_EINVAL;
	*out = strdup(s);
	return *out ? 0 : PB_ENOMEM;
}

static const char *bare_uid(const char *uid)
{
	if (strncasecmp(uid, "urn:uuid:", 9) == 0)
		return uid + 9;
	return uid;
}

static size_t group_by_name(const struct vbook *b, const char *name)
{
	size_t i;

	for (i = 0; i < b->ng; i++)
		if (strcmp(b->g[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

static int add_group(struct vbook *b, char *name, size_t card, size_t *out)
{
	struct vgroup *g;
	int err;

	if (b->ng >= VCARD_MAX_GROUPS) {
		free(name);
		return PB_ETOOBIG;
	}
	if ((err = grow((void **)&b->g, &b->cg, b->ng, sizeof(*b->g))) != 0) {
		free(name);
		return err;
	}
	g = &b->g[b->ng];
	memset(g, 0, sizeof(*g));
	g->name = name;
	g->card = card;
	*out = b->ng++;
	return 0;
}

static int link_member(struct vbook *b, size_t gi, size_t ci)
{
	struct vcard *c = &b->c[ci];
	struct vgroup *g = &b->g[gi];
	size_t i;
	int err;

	for (i = 0; i < c->ngroups; i++)
		if (c->groups[i] == gi)
			return 0;
	if ((err = grow((void **)&c->groups, &c->cgroups, c->ngroups, sizeof(size_t))) != 0)
		return err;
	c->groups[c->ngroups++] = gi;
	if ((err = grow((void **)&g->members, &g->cmembers, g->nmembers, sizeof(size_t))) != 0)
		return err;
	g->members[g->nmembers++] = ci;
	return 0;
}

struct uid_ix {
	const char *uid;
	size_t card;
};

static int cmp_uid_ix(const void *a, const void *b)
{
	return strcmp(((const struct uid_ix *)a)->uid, ((const struct uid_ix *)b)->uid);
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* Case-insensitive prefix match of a property value ("mailto:", "tel:"). */
static size_t member_card(const struct vbook *b, const struct uid_ix *ix, const char *value)
{
	struct uid_ix key, *hit;
	const char *v;
	size_t i, j;

	key.uid = bare_uid(value);
	hit = bsearch(&key, ix, b->n, sizeof(*ix), cmp_uid_ix);
	if (hit != NULL)
		return b->c[hit->card].is_group ? SIZE_MAX : hit->card;
	if (strncasecmp(value, "mailto:", 7) == 0 || strncasecmp(value, "tel:", 4) == 0) {
		bool mail = value[0] == 'm' || value[0] == 'M';

		v = value + (mail ? 7 : 4);
		for (i = 0; i < b->n; i++) {
			if (b->c[i].is_group)
				continue;
			for (j = 0; j < b->c[i].n; j++) {
				const struct vprop *p = &b->c[i].p[j];
				const char *pv = p->value;

				if (strcmp(p->name, mail ? "EMAIL" : "TEL") != 0)
					continue;
				if (!mail && strncasecmp(pv, "tel:", 4) == 0)
					pv += 4;
				if ((mail ? strcasecmp(pv, v) : strcmp(pv, v)) == 0)
					return i;
			}
		}
	}
	return SIZE_MAX;
}

/* Classifies cards, settles UIDs, and links groups both ways. */
static int settle(struct vbook *b)
{
	struct uid_ix *ix = NULL;
	size_t i, j, gi, k;
	const struct vprop *p;
	int err = 0;

	/* Kinds, names, UIDs. */
	for (i = 0; i < b->n; i++) {
		struct vcard *c = &b->c[i];
		pb_buf_t all = {0};

		for (j = 0; j < c->n; j++) {
			p = &c->p[j];
			if ((strcmp(p->name, "KIND") == 0 || strcmp(p->name, "X-ADDRESSBOOKSERVER-KIND") == 0) &&
			    strcasecmp(p->value, "group") == 0)
				c->is_group = true;
			if (c->uid == NULL && strcmp(p->name, "UID") == 0 && p->value[0] != 0 &&
			    (c->uid = strdup(p->value)) == NULL)
				return PB_ENOMEM;
			if (c->fn == NULL && strcmp(p->name, "FN") == 0 && (c->fn = strdup(p->value)) == NULL)
				return PB_ENOMEM;
			if (c->uid == NULL &&
			    (pb__chat_buf_str(&all, p->name) != 0 || pb__chat_buf_str(&all, p->params) != 0 ||
			     pb__chat_buf_str(&all, ":") != 0 || pb__chat_buf_str(&all, p->value) != 0 ||
			     pb__chat_buf_str(&all, "\n") != 0)) {
				pb__chat_buf_clear(&all);
				return PB_ENOMEM;
			}
		}
		if (c->fn == NULL) {
			/* vCard 4.0 needs FN: from N, ORG, EMAIL or TEL. */
			const char *from[] = {"N", "ORG", "EMAIL", "TEL", NULL};
			pb_buf_t fn = {0};

			for (k = 0; from[k] != NULL && fn.len == 0; k++) {
				p = find(c, from[k]);
				if (p == NULL)
					continue;
				if (strcmp(from[k], "N") == 0) {
					/* "Family;Given;..." -> "Given Family" */
					const char *semi = strchr(p->value, ';');
					size_t fam = semi ? (size_t)(semi - p->value) : strlen(p->value);
					const char *giv = semi ? semi + 1 : "";
					size_t gl = strcspn(giv, ";");

					if (gl && (pb__chat_buf_add(&fn, giv, gl) != 0 || (fam && pb__chat_buf_str(&fn, " ") != 0)))
						err = PB_ENOMEM;
					if (fam && pb__chat_buf_add(&fn, p->value, fam) != 0)
						err = PB_ENOMEM;
				} else if (pb__chat_buf_add(&fn, p->value, strcspn(p->value, ";")) != 0) {
					err = PB_ENOMEM;
				}
			}
			if (err == 0 && fn.len == 0 && pb__chat_buf_str(&fn, c->is_group ? "Group" : "Unnamed") != 0)
				err = PB_ENOMEM;
			if (err != 0) {
				pb__chat_buf_clear(&fn);
				pb__chat_buf_clear(&all);
				return err;
			}
			c->fn = (char *)fn.data;
		}
		if (c->uid == NULL) {
			err = derived_uid(all.data ? (const char *)all.data : "", all.len, 0, &c->uid);
			if (err != 0) {
				pb__chat_buf_clear(&all);
				return err;
			}
		}
		pb__chat_buf_clear(&all);
	}
	/* Unique UIDs: a later duplicate gets a derived one. */
	ix = calloc(b->n ? b->n : 1, sizeof(*ix));
	if (ix == NULL)
		return PB_ENOMEM;
	for (k = 1;; k++) {
		bool dup = false;

		for (i = 0; i < b->n; i++) {
			ix[i].uid = bare_uid(b->c[i].uid);
			ix[i].card = i;
		}
		qsort(ix, b->n, sizeof(*ix), cmp_uid_ix);
		for (i = 1; i < b->n; i++) {
			if (strcmp(ix[i].uid, ix[i - 1].uid) != 0)
				continue;
			/* The later card (by position) gets the new UID. */
			j = ix[i].card > ix[i - 1].card ? ix[i].card : ix[i - 1].card;
			{
				char *nu;

				if ((err = derived_uid(b->c[j].uid, strlen(b->c[j].uid), k * 1000003u + j, &nu)) != 0)
					goto out_ix;
				free(b->c[j].uid);
				b->c[j].uid = nu;
			}
			dup = true;
			break;
		}
		if (!dup)
			break;
		if (k > 1000000) {
			err = PB_EDATA_FIELD;
			goto out_ix;
		}
	}
	/* Groups with cards. */
	for (i = 0; i < b->n; i++) {
		char *name;

		if (!b->c[i].is_group)
			continue;
		name = unescape(b->c[i].fn, strlen(b->c[i].fn));
		if (name == NULL) {
			err = PB_ENOMEM;
			goto out_ix;
		}
		if (group_by_name(b, name) != SIZE_MAX) {
			/* Two group cards of one name: keep them apart. */
			char *n2 = malloc(strlen(name) + 32);

			if (n2 == NULL) {
				free(name);
				err = PB_ENOMEM;
				goto out_ix;
			}
			k = (size_t)snprintf(n2, strlen(name) + 32, "%s (%zu)", name, b->ng + 1);
			if (k >= strlen(name) + 32) {
				free(name);
				free(n2);
				err = PB_EINVAL;
				goto out_ix;
			}
			free(name);
			name = n2;
		}
		if ((err = add_group(b, name, i, &gi)) != 0)
			goto out_ix;
		b->c[i].gidx = gi;
		if ((b->g[gi].uid = strdup(b->c[i].uid)) == NULL) {
			err = PB_ENOMEM;
			goto out_ix;
		}
	}
	/* Members named by group cards. */
	for (gi = 0; gi < b->ng; gi++) {
		const struct vcard *gc = &b->c[b->g[gi].card];

		for (j = 0; j < gc->n; j++) {
			p = &gc->p[j];
			if (strcmp(p->name, "MEMBER") != 0 && strcmp(p->name, "X-ADDRESSBOOKSERVER-MEMBER") != 0)
				continue;
			k = member_card(b, ix, p->value);
			if (k != SIZE_MAX) {
				if ((err = link_member(b, gi, k)) != 0)
					goto out_ix;
				continue;
			}
			{
				struct vgroup *g = &b->g[gi];
				char **ne;
				size_t e;
				bool seen = false;

				for (e = 0; e < g->nextra; e++)
					seen = seen || strcmp(g->extra[e], p->value) == 0;
				if (seen)
					continue;
				ne = realloc(g->extra, (g->nextra + 1) * sizeof(*ne));
				if (ne == NULL) {
					err = PB_ENOMEM;
					goto out_ix;
				}
				g->extra = ne;
				if ((g->extra[g->nextra] = strdup(p->value)) == NULL) {
					err = PB_ENOMEM;
					goto out_ix;
				}
				g->nextra++;
			}
		}
	}
	/* Groups named by CATEGORIES; derived groups get a name-based UID. */
	for (i = 0; i < b->n; i++) {
		if (b->c[i].is_group)
			continue;
		for (j = 0; j < b->c[i].n; j++) {
			const char *v, *e;

			p = &b->c[i].p[j];
			if (strcmp(p->name, "CATEGORIES") != 0)
				continue;
			for (v = p->value; *v; v = *e ? e + 1 : e) {
				char *name;

				for (e = v; *e && *e != ','; e++)
					if (*e == '\\' && e[1] != 0)
						e++;
				name = unescape(v, (size_t)(e - v));
				if (name == NULL) {
					err = PB_ENOMEM;
					goto out_ix;
				}
				if (name[0] == 0) {
					free(name);
					continue;
				}
				gi = group_by_name(b, name);
				if (gi == SIZE_MAX) {
					size_t nl = strlen(name);
					char *key = malloc(nl + 8);

					if (key == NULL) {
						free(name);
						err = PB_ENOMEM;
						goto out_ix;
					}
					memcpy(key, "group:", 6);
					memcpy(key + 6, name, nl + 1);
					if ((err = add_group(b, name, SIZE_MAX, &gi)) != 0) {
						free(key);
						goto out_ix;
					}
					err = derived_uid(key, nl + 6, 0, &b->g[gi].uid);
					free(key);
					if (err != 0)
						goto out_ix;
				} else {
					free(name);
				}
				if ((err = link_member(b, gi, i)) != 0)
					goto out_ix;
			}
		}
	}
	for (i = 0; i < b->n; i++)
		if (b->c[i].ngroups > 1)
			qsort(b->c[i].groups, b->c[i].ngroups, sizeof(size_t), cmp_size);
	for (gi = 0; gi < b->ng; gi++)
		if (b->g[gi].nmembers > 1)
			qsort(b->g[gi].members, b->g[gi].nmembers, sizeof(size_t), cmp_size);
out_ix:
	free(ix);
	return err;
}

/* --- Writing --------------------------------------------------------------- */

/* VF_STORE is the canonical book: vCard 4.0 that keeps each card's
 * dialect; the exports leave it out. */
enum vformat { VF_4, VF_3, VF_APPLE, VF_21, VF_STORE };

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

/* --- vCard 2.1 and the dialect of a card ------------------------------------ */

/* A card's dialect is kept in the canonical book as X-PEERBACK-DIALECT:
 * the version it came in ("vcard21", "vcard3", "apple"), then what that
 * version wrote differently: "no-uid" (the file gave no UID), "no-fn" (no
 * FN), "x-group-membership" (groups as Android's X-GROUP-MEMBERSHIP). */
#define DIALECT_PROP "X-PEERBACK-DIALECT"

static int hexdig(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Properties whose 4.0 value is a URI or a list: no escaping of ',' there. */
static bool uri_prop(const char *name)
{
	return !strcmp(name, "URL") || !strcmp(name, "PHOTO") || !strcmp(name, "LOGO") || !strcmp(name, "SOUND") ||
	       !strcmp(name, "KEY") || !strcmp(name, "GEO") || !strcmp(name, "SOURCE") || !strcmp(name, "IMPP") ||
	       !strcmp(name, "MEMBER") || !strcmp(name, "FBURL") || !strcmp(name, "CALURI") || !strcmp(name, "CALADRURI");
}

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
		if (qp && s[i] == '=' && i + 2 < len + 0 && (h = hexdig((unsigned char)s[i + 1])) >= 0 &&
		    (l = hexdig((unsigned char)s[i + 2])) >= 0) {
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

/* 4.0 escaping of one decoded component. */
static int escape40(pb_buf_t *b, const char *s, size_t len, bool list)
{
	size_t i;
	int err = 0;

	for (i = 0; i < len && err == 0; i++) {
		if (s[i] == '\\' || s[i] == ';' || (s[i] == ',' && !list)) {
			err = pb__chat_buf_add(b, "\\", 1);
			if (err == 0)
				err = pb__chat_buf_add(b, s + i, 1);
		} else if (s[i] == '\n') {
			err = pb__chat_buf_add(b, "\\n", 2);
		} else if (s[i] == '\r') {
			if (!(i + 1 < len && s[i + 1] == '\n'))
				err = pb__chat_buf_add(b, "\\n", 2);
		} else {
			err = pb__chat_buf_add(b, s + i, 1);
		}
	}
	return err;
}

static const struct {
	const char *type, *media;
} media_types[] = {
	{"JPEG", "image/jpeg"}, {"PNG", "image/png"}, {"GIF", "image/gif"}, {"BMP", "image/bmp"},
	{"TIFF", "image/tiff"}, {"WAVE", "audio/wav"}, {"PCM", "audio/basic"}, {"PGP", "application/pgp-keys"},
	{"X509", "application/pkix-cert"},
};

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

		if (eq != NULL && strncasecmp(tok, "CHARSET=", 8) == 0) {
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
		if (eq == NULL || strncasecmp(tok, "TYPE=", 5) == 0) {
			/* A type: for a binary value, its media type. */
			for (i = 0; i < sizeof(media_types) / sizeof(media_types[0]); i++)
				if (!strcasecmp(v, media_types[i].type))
					break;
			if (i < sizeof(media_types) / sizeof(media_types[0]) && uri_prop(p->name)) {
				media = media_types[i].media;
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
	if (err != 0 || !touched)
		goto out;
	if (b64) {
		/* data:<media type>;base64,<the value without blanks> */
		err = pb__chat_buf_printf(&val, "data:%s;base64,", media ? media : "application/octet-stream");
		for (i = 0; p->value[i] && err == 0; i++)
			if (p->value[i] != ' ' && p->value[i] != '\t')
				err = pb__chat_buf_add(&val, p->value + i, 1);
	} else if (!qp && (!v21 || (uri_prop(p->name) && charset_s == NULL))) {
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
			if ((err = escape40(&val, comp.data ? (const char *)comp.data : "", comp.len, list_prop(p->name))) != 0)
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
		prop_free(&p);
		return PB_ENOMEM;
	}
	if (c->n >= VCARD_MAX_PROPS || (err = grow((void **)&c->p, &c->cap, c->n, sizeof(*c->p))) != 0) {
		prop_free(&p);
		return PB_ETOOBIG;
	}
	c->p[c->n++] = p;
	return 0;
}

/* A card as read, in 4.0 form, its dialect noted. 4.0 cards (the canonical
 * book among them) are left as they are. */
static int convert_card(struct vcard *c, const char **why)
{
	const struct vprop *ver = find(c, "VERSION");
	pb_buf_t dialect = {0}, cats = {0};
	bool v21 = ver != NULL && strcmp(ver->value, "2.1") == 0, v3 = ver != NULL && strcmp(ver->value, "3.0") == 0;
	bool xgm = false;
	size_t i, k;
	int err = 0;

	if (find(c, DIALECT_PROP) != NULL)
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
			prop_free(&c->p[i]);
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
		if (err == 0 && v21 && find(c, "UID") == NULL)
			err = pb__chat_buf_str(&dialect, ",no-uid");
		if (err == 0 && v21 && find(c, "FN") == NULL)
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

/* True when a card's dialect says so (flag "vcard21", "no-uid", ...). */
static bool dialect_has(const struct vcard *c, const char *flag)
{
	const struct vprop *p = c ? find(c, DIALECT_PROP) : NULL;
	size_t n = strlen(flag);
	const char *v;

	for (v = p ? p->value : NULL; v != NULL && *v; v += strcspn(v, ","), v += *v == ',') {
		if (strncmp(v, flag, n) == 0 && (v[n] == ',' || v[n] == 0))
			return true;
	}
	return false;
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

/* One decoded 4.0 component (between unescaped ';'). */
static char *unescape40(const char *s, size_t len)
{
	char *o = malloc(len + 1);
	size_t i, k = 0;

	if (o == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len) {
			i++;
			o[k++] = (s[i] == 'n' || s[i] == 'N') ? '\n' : s[i];
		} else {
			o[k++] = s[i];
		}
	}
	o[k] = 0;
	return o;
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
	if (strncmp(p->value, "data:", 5) == 0 && uri_prop(p->name) && strstr(p->value, ";base64,") != NULL) {
		/* PHOTO;ENCODING=BASE64;JPEG:, folded as Android folds it,
		 * and a blank line after it. */
		const char *comma = strstr(p->value, ";base64,"), *mt = p->value + 5, *type = NULL;
		size_t mtlen = (size_t)(comma - mt), col;

		for (i = 0; i < sizeof(media_types) / sizeof(media_types[0]); i++)
			if (strlen(media_types[i].media) == mtlen && strncmp(media_types[i].media, mt, mtlen) == 0)
				type = media_types[i].type;
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
	if (uri_prop(p->name)) {
		err = pb__chat_buf_printf(&line, ":%s\r\n", p->value);
	} else {
		char *all = unescape40(p->value, strlen(p->value));

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
			comp = unescape40(p->value + start, i - start);
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
	const struct vprop *n = find(c, "N");
	struct vprop fn = {NULL, (char *)"FN", (char *)"", c->fn};
	bool xgm = dialect_has(c, "x-group-membership");
	size_t i;
	int err;

	if ((err = pb__chat_buf_str(out, "BEGIN:VCARD\r\nVERSION:2.1\r\n")) != 0)
		return err;
	if (!dialect_has(c, "no-uid") && (err = pb__chat_buf_printf(out, "UID:%s\r\n", c->uid)) != 0)
		return err;
	if (n != NULL && (err = put_prop21(out, n)) != 0)
		return err;
	if (!dialect_has(c, "no-fn") && (err = put_prop21(out, &fn)) != 0)
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
		err = escape40(&line, b->g[c->groups[i]].name, strlen(b->g[c->groups[i]].name), false);
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
				err = escape40(&line, b->g[c->groups[i]].name, strlen(b->g[c->groups[i]].name), false);
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

static int write_book(pb_buf_t *out, const struct vbook *b, enum vformat f)
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

/* --- Merging and entry points ---------------------------------------------- */

/* Moves the cards of src to the end of dst; a card whose UID dst already
 * has replaces it in place. Both books must be settled; dst is then
 * re-settled by the caller from the raw properties. */
static int merge_into(struct vbook *dst, struct vbook *src)
{
	size_t i, j;
	int err;

	for (i = 0; i < src->n; i++) {
		struct vcard *c = &src->c[i];

		for (j = 0; j < dst->n; j++)
			if (strcmp(bare_uid(dst->c[j].uid), bare_uid(c->uid)) == 0)
				break;
		if (j < dst->n) {
			card_free(&dst->c[j]);
			dst->c[j] = *c;
		} else {
			if (dst->n >= VCARD_MAX_CARDS)
				return PB_ETOOBIG;
			if ((err = grow((void **)&dst->c, &dst->cap, dst->n, sizeof(*dst->c))) != 0)
				return err;
			dst->c[dst->n++] = *c;
		}
		memset(c, 0, sizeof(*c));
	}
	src->n = 0;
	return 0;
}

/* Forgets what settle() derived, keeping each card's properties and UID. */
static void unsettle(struct vbook *b)
{
	size_t i, j;

	for (i = 0; i < b->n; i++) {
		struct vcard *c = &b->c[i];
		bool has_uid = find(c, "UID") != NULL;

		free(c->groups);
		c->groups = NULL;
		c->ngroups = c->cgroups = 0;
		free(c->fn);
		c->fn = NULL;
		c->is_group = false;
		/* A derived UID is kept so the card stays the same card. */
		if (!has_uid && c->uid != NULL) {
			struct vprop p = {NULL, strdup("UID"), strdup(""), c->uid};

			c->uid = NULL;
			if (p.name == NULL || p.params == NULL ||
			    grow((void **)&c->p, &c->cap, c->n, sizeof(*c->p)) != 0) {
				prop_free(&p);
				continue;
			}
			c->p[c->n++] = p;
		} else {
			free(c->uid);
			c->uid = NULL;
		}
	}
	for (i = 0; i < b->ng; i++) {
		free(b->g[i].name);
		free(b->g[i].uid);
		free(b->g[i].members);
		for (j = 0; j < b->g[i].nextra; j++)
			free(b->g[i].extra[j]);
		free(b->g[i].extra);
	}
	free(b->g);
	b->g = NULL;
	b->ng = b->cg = 0;
}

static int load_file(const char *path, struct vbook *b, char *errbuf, size_t errcap)
{
	pb__chat_lines_t r;
	uint64_t line = 0;
	const char *why = "";
	struct stat sb;
	int err;

	memset(&r, 0, sizeof(r));
	r.f = fopen(path, "rb");
	if (r.f == NULL)
		return pb__chat_fail(errbuf, errcap, -errno, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fileno(r.f), &sb) != 0 || (uint64_t)sb.st_size > VCARD_FILE_MAX) {
		fclose(r.f);
		return pb__chat_fail(errbuf, errcap, PB_ETOOBIG, "%s: larger than the 256 MiB a contact book may have",
				     path);
	}
	err = read_book(&r, b, &line, &why);
	if (err == 0 && b->n == 0) {
		err = PB_EDATA_FORMAT;
		why = "no vCard in the file";
	}
	if (err != 0)
		pb__chat_fail(errbuf, errcap, err, "%s: line %llu: %s", path, (unsigned long long)line, why);
	pb__chat_lines_free(&r);
	fclose(r.f);
	return err;
}

static int book_path(const char *device_dir, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/contacts/contacts.vcf", device_dir);

	return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
}

int pb__import_contacts(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap)
{
	struct vbook book, in;
	pb__chat_stage_t st;
	pb_buf_t out = {0};
	char path[4200], staged[4400];
	size_t i;
	int err;

	if (device_dir == NULL || files == NULL || n == 0)
		return pb__chat_fail(errbuf, errcap, PB_EINVAL, "no device directory or files given");
	memset(&book, 0, sizeof(book));
	if ((err = book_path(device_dir, path, sizeof(path))) != 0)
		return pb__chat_fail(errbuf, errcap, err, "%s: path too long", device_dir);
	/* The device's book first, so imported cards update it by UID. */
	if (access(path, F_OK) == 0) {
		if ((err = load_file(path, &book, errbuf, errcap)) != 0)
			goto out_book;
	}
	for (i = 0; i < n; i++) {
		memset(&in, 0, sizeof(in));
		if ((err = load_file(files[i], &in, errbuf, errcap)) != 0) {
			book_free(&in);
			goto out_book;
		}
		if ((err = settle(&in)) != 0) {
			book_free(&in);
			pb__chat_fail(errbuf, errcap, err, "%s: %s", files[i], pb_strerror(err));
			goto out_book;
		}
		/* UIDs on both sides are settled before matching. */
		if ((err = settle(&book)) == 0)
			err = merge_into(&book, &in);
		unsettle(&book);
		book_free(&in);
		if (err != 0) {
			pb__chat_fail(errbuf, errcap, err, "%s: %s", files[i], pb_strerror(err));
			goto out_book;
		}
	}
	if ((err = settle(&book)) != 0)
		goto out_settle;
	if ((err = write_book(&out, &book, VF_STORE)) != 0)
		goto out_settle;
	if ((err = pb__chat_stage_open(&st, device_dir)) != 0)
		goto out_settle;
	err = pb__chat_stage_path(&st, "contacts/contacts.vcf", staged, sizeof(staged));
	if (err == 0)
		err = pb__chat_write_file(staged, out.data, out.len);
	if (err == 0)
		err = pb__chat_stage_commit(&st);
	else
		pb__chat_stage_abort(&st);
	if (err != 0)
		pb__chat_fail(errbuf, errcap, err, "%s: cannot write the contacts: %s", path, pb_strerror(err));
	goto out_book;
out_settle:
	pb__chat_fail(errbuf, errcap, err, "cannot merge the contacts: %s", pb_strerror(err));
out_book:
	pb__chat_buf_clear(&out);
	book_free(&book);
	return err;
}

/* The format a book came in: the one its cards share (Apple's when its
 * groups were Apple's), else vCard 4.0. */
static enum vformat book_dialect(const struct vbook *b)
{
	static const char *const names[] = {"vcard21", "vcard3", "apple"};
	static const enum vformat fs[] = {VF_21, VF_3, VF_APPLE};
	bool all[3] = {true, true, true}, any = false, apple = false;
	size_t i, k;

	for (i = 0; i < b->n; i++) {
		const struct vcard *c = &b->c[i];

		apple = apple || (c->is_group && dialect_has(c, "apple"));
		if (c->is_group)
			continue;
		any = true;
		for (k = 0; k < 3; k++)
			all[k] = all[k] && (dialect_has(c, names[k]) || (k == 2 && dialect_has(c, "vcard3")));
	}
	if (!any)
		return VF_4;
	if (all[2] && apple)
		return VF_APPLE;
	for (k = 0; k < 2; k++)
		if (all[k])
			return fs[k];
	return VF_4;
}

int pb__export_contacts(const char *device_dir, const char *format, const char *out_dir, char *errbuf,
			size_t errcap)
{
	struct vbook book;
	pb_buf_t out = {0};
	char path[4200], dst[4200];
	enum vformat f;
	int err, k;

	if (device_dir == NULL || format == NULL || out_dir == NULL)
		return pb__chat_fail(errbuf, errcap, PB_EINVAL, "no device, format or output directory given");
	if (strcmp(format, "auto") == 0)
		f = VF_STORE; /* settled from the cards below */
	else if (strcmp(format, "vcard4") == 0)
		f = VF_4;
	else if (strcmp(format, "vcard21") == 0)
		f = VF_21;
	else if (strcmp(format, "vcard3") == 0)
		f = VF_3;
	else if (strcmp(format, "apple") == 0)
		f = VF_APPLE;
	else
		return pb__chat_fail(errbuf, errcap, PB_EUNSUPPORTED,
				     "unknown contacts export format \"%s\"; use auto, vcard4, vcard3, vcard21 or apple", format);
	if ((err = book_path(device_dir, path, sizeof(path))) != 0)
		return err;
	memset(&book, 0, sizeof(book));
	if (access(path, F_OK) != 0)
		return pb__chat_fail(errbuf, errcap, PB_ENOTFOUND, "%s: the device has no contacts", device_dir);
	if ((err = load_file(path, &book, errbuf, errcap)) != 0)
		goto out_book;
	if ((err = settle(&book)) == 0 && f == VF_STORE)
		f = book_dialect(&book);
	if (err != 0 || (err = write_book(&out, &book, f)) != 0) {
		pb__chat_fail(errbuf, errcap, err, "%s: %s", path, pb_strerror(err));
		goto out_book;
	}
	k = snprintf(dst, sizeof(dst), "%s/contacts.vcf", out_dir);
	if (k < 0 || (size_t)k >= sizeof(dst)) {
		err = PB_ETOOBIG;
		goto out_book;
	}
	if ((err = pb__chat_mkdirs(out_dir)) != 0 || (err = pb__chat_write_file(dst, out.data, out.len)) != 0)
		pb__chat_fail(errbuf, errcap, err, "%s: %s", dst, pb_strerror(err));
out_book:
	pb__chat_buf_clear(&out);
	book_free(&book);
	return err;
}

int pb__contacts_canonical(const uint8_t *buf, size_t len, pb_buf_t *out)
{
	struct vbook book;
	pb__chat_lines_t r;
	uint64_t line;
	const char *why;
	int err;

	memset(&book, 0, sizeof(book));
	memset(&r, 0, sizeof(r));
	r.mem = buf;
	r.memlen = len;
	err = read_book(&r, &book, &line, &why);
	if (err == 0)
		err = settle(&book);
	if (err == 0)
		err = write_book(out, &book, VF_STORE);
	pb__chat_lines_free(&r);
	book_free(&book);
	return err;
}

int pb__contacts_parse_buf(const uint8_t *buf, size_t len)
{
	pb_buf_t out = {0}, again = {0};
	int err = pb__contacts_canonical(buf, len, &out);

	/* The canonical form is a fixed point. */
	if (err == 0 && pb__contacts_canonical(out.data, out.len, &again) == 0 &&
	    (again.len != out.len || (out.len && memcmp(again.data, out.data, out.len) != 0)))
		err = PB_EDATA_FORMAT;
	pb__chat_buf_clear(&out);
	pb__chat_buf_clear(&again);
	return err;
}

/* --- Codec ----------------------------------------------------------------- */

static bool vcf_matches(const char *relpath)
{
	return strcmp(relpath, "contacts/contacts.vcf") == 0;
}

static int vcf_split(const char *relpath, const uint8_t *buf, size_t len, pb_item_cb cb, void *arg)
{
	struct vbook book;
	pb__chat_lines_t r;
	uint64_t line, from = 0, to;
	const char *why;
	char id[PB_ITEM_ID_MAX], safe[200];
	pb_item_t it;
	size_t i, k;
	int err, n;

	memset(&book, 0, sizeof(book));
	memset(&r, 0, sizeof(r));
	r.mem = buf;
	r.memlen = len;
	err = read_book(&r, &book, &line, &why);
	pb__chat_lines_free(&r);
	if (err != 0)
		pb__kinds_split_why(line, why);
	if (err == 0 && book.n == 0 && len > 0)
		err = PB_EDATA_FORMAT; /* blank lines only: no card to carry them */
	if (err == 0 && (err = settle(&book)) == 0) {
		for (i = 0; i < book.n && err == 0; i++) {
			const struct vcard *c = &book.c[i];
			const char *u = bare_uid(c->uid);

			/* Bytes between cards go with the card after them, the
			 * tail with the last card: join gives the file back. */
			to = i + 1 == book.n ? len : c->end;
			for (k = 0; u[k] && k < sizeof(safe) - 1; k++)
				safe[k] = (char)(name_char(u[k]) || u[k] == '.' || u[k] == '@' || u[k] == '+' ? u[k] : '_');
			safe[k] = 0;
			if (u[k] != 0 || k == 0) {
				n = snprintf(safe, sizeof(safe), "h%016llx",
					     (unsigned long long)pb__chat_hash64(c->uid, strlen(c->uid)));
				if (n < 0 || (size_t)n >= sizeof(safe)) {
					err = PB_EINVAL;
					break;
				}
			}
			n = snprintf(id, sizeof(id), "%s/%s", c->is_group ? "group" : "contact", safe);
			if (n < 0 || (size_t)n >= sizeof(id)) {
				err = PB_ETOOBIG;
				break;
			}
			memset(&it, 0, sizeof(it));
			it.kind = PB_KIND_CONTACTS;
			it.id = id;
			it.path = relpath;
			it.seq = i;
			it.data = buf + from;
			it.len = (size_t)(to - from);
			it.size = it.len;
			err = cb(arg, &it);
			from = to;
		}
	}
	book_free(&book);
	return err;
}

static int vcf_join(const char *relpath, const pb_item_t *items, size_t n, pb_buf_t *out)
{
	size_t i;
	int err;

	(void)relpath;
	for (i = 0; i < n; i++) {
		if (items[i].data == NULL || (i > 0 && items[i].seq <= items[i - 1].seq))
			return PB_EDATA_FORMAT;
		if ((err = pb__chat_buf_add(out, items[i].data, items[i].len)) != 0)
			return err;
	}
	return 0;
}

const pb_codec_t pb__codec_vcard = {
	.name = "vcard",
	.kind = PB_KIND_CONTACTS,
	.matches = vcf_matches,
	.split = vcf_split,
	.join = vcf_join,
};
