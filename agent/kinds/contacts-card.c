/* What the vCard reader, writer and book share: a card's properties, text
 * values (4.0's escapes), the URI properties, and vCard 2.1's media types. */
#include <stdlib.h>
#include <string.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"
#include "agent/kinds/contacts.h"

/* --- Cards in memory ------------------------------------------------------- */

int pb__vcard_grow(void **v, size_t *cap, size_t n, size_t size)
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

void pb__vcard_prop_free(struct vprop *p)
{
	free(p->group);
	free(p->name);
	free(p->params);
	free(p->value);
}

const struct vprop *pb__vcard_find(const struct vcard *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->p[i].name, name) == 0)
			return &c->p[i];
	return NULL;
}

/* True when a card's dialect says so (flag "vcard21", "no-uid", ...). */
bool pb__vcard_dialect_has(const struct vcard *c, const char *flag)
{
	const struct vprop *p = c ? pb__vcard_find(c, DIALECT_PROP) : NULL;
	size_t n = strlen(flag);
	const char *v;

	for (v = p ? p->value : NULL; v != NULL && *v; v += strcspn(v, ","), v += *v == ',') {
		if (strncmp(v, flag, n) == 0 && (v[n] == ',' || v[n] == 0))
			return true;
	}
	return false;
}

bool pb__vcard_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* --- Text values ----------------------------------------------------------- */

char *pb__vcard_unescape(const char *s, size_t len)
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

/* 4.0 escaping of one decoded component. */
int pb__vcard_escape40(pb_buf_t *b, const char *s, size_t len, bool list)
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

/* Properties whose 4.0 value is a URI: no escaping of ',' there. */
bool pb__vcard_uri_prop(const char *name)
{
	return !strcmp(name, "URL") || !strcmp(name, "PHOTO") || !strcmp(name, "LOGO") || !strcmp(name, "SOUND") ||
	       !strcmp(name, "KEY") || !strcmp(name, "GEO") || !strcmp(name, "SOURCE") || !strcmp(name, "IMPP") ||
	       !strcmp(name, "MEMBER") || !strcmp(name, "FBURL") || !strcmp(name, "CALURI") || !strcmp(name, "CALADRURI");
}

/* vCard 2.1's binary types and their media types. */
const struct pb__vcard_media pb__vcard_media_types[] = {
	{"JPEG", "image/jpeg"}, {"PNG", "image/png"}, {"GIF", "image/gif"}, {"BMP", "image/bmp"},
	{"TIFF", "image/tiff"}, {"WAVE", "audio/wav"}, {"PCM", "audio/basic"}, {"PGP", "application/pgp-keys"},
	{"X509", "application/pkix-cert"},
};
const size_t pb__vcard_nmedia_types = sizeof(pb__vcard_media_types) / sizeof(pb__vcard_media_types[0]);
