/* The contact book in memory, shared by contacts-card.c (a card's
 * properties, text values), contacts-read.c (vCard text into cards, in 4.0
 * form), contacts-write.c (cards into the canonical book and the exports)
 * and contacts.c (the book's groups and UIDs, merging, entry points, codec),
 * each using only those before it. Every function name is pb__vcard_. */
#ifndef PB_KINDS_CONTACTS_H
#define PB_KINDS_CONTACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/kinds/chat-util.h"

#define VCARD_MAX_CARDS 100000
#define VCARD_MAX_PROPS 10000
#define VCARD_MAX_GROUPS 10000
#define VCARD_FILE_MAX (256u << 20)

/* A card's dialect is kept in the canonical book as X-PEERBACK-DIALECT:
 * the version it came in ("vcard21", "vcard3", "apple"), then what that
 * version wrote differently: "no-uid" (the file gave no UID), "no-fn" (no
 * FN), "x-group-membership" (groups as Android's X-GROUP-MEMBERSHIP). */
#define DIALECT_PROP "X-PEERBACK-DIALECT"

/* Every string is malloc'd and owned by the card that holds the property. */
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

/* Owns its cards and groups. */
struct vbook {
	struct vcard *c;
	size_t n, cap;
	struct vgroup *g;
	size_t ng, cg;
};

/* VF_STORE is the canonical book: vCard 4.0 that keeps each card's
 * dialect; the exports leave it out. */
enum vformat { VF_4, VF_3, VF_APPLE, VF_21, VF_STORE };

/* vCard 2.1's binary types and their media types (PHOTO;JPEG: and
 * data:image/jpeg;base64,). */
struct pb__vcard_media {
	const char *type, *media;
};
extern const struct pb__vcard_media pb__vcard_media_types[];
extern const size_t pb__vcard_nmedia_types;

/* --- Cards and text values (contacts-card.c) ------------------------------ */

void pb__vcard_prop_free(struct vprop *p);
/* Makes room in *v (of *cap elements of size bytes) for element n. */
PB_WUR int pb__vcard_grow(void **v, size_t *cap, size_t n, size_t size);
/* The card's first property named name (upper case), or NULL. */
const struct vprop *pb__vcard_find(const struct vcard *c, const char *name);
/* True when a card's dialect says so (flag "vcard21", "no-uid", ...). */
bool pb__vcard_dialect_has(const struct vcard *c, const char *flag);
/* A character of a property or group name. */
bool pb__vcard_name_char(char c);
/* One decoded 4.0 text value or component (between unescaped ';'):
 * malloc'd, NULL when out of memory. */
char *pb__vcard_unescape(const char *s, size_t len);
/* 4.0 escaping of one decoded component (list: ',' separates values). */
PB_WUR int pb__vcard_escape40(pb_buf_t *b, const char *s, size_t len, bool list);
/* Properties whose 4.0 value is a URI: no escaping there. */
bool pb__vcard_uri_prop(const char *name);

/* --- Reading (contacts-read.c) --------------------------------------------- */

/* Reads every card of a book, each in 4.0 form. On an error, errline and
 * why (a static sentence) say where and what. */
PB_WUR int pb__vcard_read_book(pb__chat_lines_t *r, struct vbook *b, uint64_t *errline, const char **why);

/* --- Writing (contacts-write.c) -------------------------------------------- */

/* Appends the settled book b to out in format f. */
PB_WUR int pb__vcard_write_book(pb_buf_t *out, const struct vbook *b, enum vformat f);

#endif
