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
#include "agent/kinds/contacts.h"

/* --- The book in memory --------------------------------------------------- */

static void card_free(struct vcard *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		pb__vcard_prop_free(&c->p[i]);
	free(c->p);
	free(c->uid);
	free(c->fn);
	free(c->groups);
	memset(c, 0, sizeof(*c));
}

/* Frees the book's groups (the cards' group indices are left as they are). */
static void groups_free(struct vbook *b)
{
	size_t i, j;

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

static void book_free(struct vbook *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		card_free(&b->c[i]);
	free(b->c);
	groups_free(b);
	memset(b, 0, sizeof(*b));
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
	if ((err = pb__vcard_grow((void **)&b->g, &b->cg, b->ng, sizeof(*b->g))) != 0) {
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
	if ((err = pb__vcard_grow((void **)&c->groups, &c->cgroups, c->ngroups, sizeof(size_t))) != 0)
		return err;
	c->groups[c->ngroups++] = gi;
	if ((err = pb__vcard_grow((void **)&g->members, &g->cmembers, g->nmembers, sizeof(size_t))) != 0)
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
				p = pb__vcard_find(c, from[k]);
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
		name = pb__vcard_unescape(b->c[i].fn, strlen(b->c[i].fn));
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
				name = pb__vcard_unescape(v, (size_t)(e - v));
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
			if ((err = pb__vcard_grow((void **)&dst->c, &dst->cap, dst->n, sizeof(*dst->c))) != 0)
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
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct vcard *c = &b->c[i];
		bool has_uid = pb__vcard_find(c, "UID") != NULL;

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
			    pb__vcard_grow((void **)&c->p, &c->cap, c->n, sizeof(*c->p)) != 0) {
				pb__vcard_prop_free(&p);
				continue;
			}
			c->p[c->n++] = p;
		} else {
			free(c->uid);
			c->uid = NULL;
		}
	}
	groups_free(b);
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
	err = pb__vcard_read_book(&r, b, &line, &why);
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
	if ((err = pb__vcard_write_book(&out, &book, VF_STORE)) != 0)
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

		apple = apple || (c->is_group && pb__vcard_dialect_has(c, "apple"));
		if (c->is_group)
			continue;
		any = true;
		for (k = 0; k < 3; k++)
			all[k] = all[k] && (pb__vcard_dialect_has(c, names[k]) || (k == 2 && pb__vcard_dialect_has(c, "vcard3")));
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
	if (err != 0 || (err = pb__vcard_write_book(&out, &book, f)) != 0) {
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
	err = pb__vcard_read_book(&r, &book, &line, &why);
	if (err == 0)
		err = settle(&book);
	if (err == 0)
		err = pb__vcard_write_book(out, &book, VF_STORE);
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
	err = pb__vcard_read_book(&r, &book, &line, &why);
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
				safe[k] = (char)(pb__vcard_name_char(u[k]) || u[k] == '.' || u[k] == '@' || u[k] == '+' ? u[k] : '_');
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

