/* The JSON writer for --json output and host events. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peerback.h"
#include "agent/util/json.h"

/* Pure ASCII out: everything else is \u-escaped, so no byte of a name can
 * reach a terminal as a control sequence. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10))

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none
 * starts there. The same rules as jansson's: no overlong forms, no
 * surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

int pb_text_utf8(const char *s, char **out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, out_len = 0;
	unsigned char *t;

	if (s == NULL || out == NULL)
		return PB_EINVAL;
	n = strlen(s);
	if (n > (SIZE_MAX - 1) / 3 || (t = malloc(3 * n + 1)) == NULL)
		return PB_ENOMEM;
	/* Each byte that starts no valid sequence becomes U+FFFD. */
	for (size_t i = 0; i < n;) {
		size_t k = utf8_len(p + i, n - i);

		if (k == 0) {
			memcpy(t + out_len, "\xef\xbf\xbd", 3);
			out_len += 3;
			i++;
		} else {
			memcpy(t + out_len, p + i, k);
			out_len += k;
			i += k;
		}
	}
	t[out_len] = 0;
	*out = (char *)t;
	return 0;
}

json_t *pb__json_text(const char *s)
{
	char *clean;
	json_t *j;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL)
		return j;
	if (pb_text_utf8(s, &clean) != 0)
		return NULL;
	j = json_string(clean);
	free(clean);
	return j;
}

static json_t *vbuild(const char *fmt, va_list ap)
{
	json_error_t err;

	return json_vpack_ex(&err, 0, fmt, ap);
}

char *pb__json_vformat(const char *fmt, va_list ap)
{
	json_t *o = vbuild(fmt, ap);
	char *text;

	if (o == NULL)
		return NULL;
	text = json_dumps(o, DUMP_FLAGS);
	json_decref(o);
	return text;
}

char *pb__json_format(const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = pb__json_vformat(fmt, ap);
	va_end(ap);
	return text;
}
