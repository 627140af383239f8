/* The pairing URI: peerback://pair?v=1&k=..&s=..&a=..&x=..[&n=..][&h=..].
 *
 * The parser is strict about what it knows and lenient only about what the
 * contract allows: unknown parameters are ignored so that later versions can
 * add some. Everything else that is out of shape is refused with its own
 * error code, and the secret never outlives a failed parse. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "peerback/error.h"
#include "peerback/qr.h"

#define KEY_LEN 32
/* Unpadded base64url of 64 bytes: no valid key or secret is longer. */
#define KEY_B64_MAX 86
#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

static const char uri_prefix[] = "peerback://pair";

enum param { P_V, P_K, P_S, P_A, P_X, P_N, P_H, P_COUNT };
static const char param_names[P_COUNT] = { 'v', 'k', 's', 'a', 'x', 'n', 'h' };

struct raw_param {
	const char *p;
	size_t n;
	bool seen;
};

static bool is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A decimal number without sign, spaces or leading zeros, at most max.
 * Returns false when p is not one. */
static bool parse_decimal(const char *p, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20 || (n > 1 && p[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (p[i] < '0' || p[i] > '9')
			return false;
		d = (unsigned)(p[i] - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* True when s[0..n) is well-formed UTF-8 with no control characters. */
static bool is_utf8_text(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		uint32_t cp;
		size_t more;

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i <= more)
			return false;
		for (size_t j = 1; j <= more; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		/* Overlong forms, UTF-16 surrogates, beyond U+10FFFF, C1 controls. */
		if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
			return false;
		i += more + 1;
	}
	return true;
}

/* Decodes a percent-encoded text parameter into out (cap bytes with NUL). */
static int decode_text(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				return PB_EMALFORMED;
			hi = hex_value(p[i + 1]);
			lo = hex_value(p[i + 2]);
			if (hi < 0 || lo < 0)
				return PB_EMALFORMED;
			c = hi << 4 | lo;
			i += 2;
		}
		if (o + 1 >= cap)
			return PB_ETOOBIG;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (!is_utf8_text((const uint8_t *)out, o))
		return PB_EMALFORMED;
	return 0;
}

/* Decodes a 32-byte key or secret from unpadded base64url. */
static int decode_key(const char *p, size_t n, uint8_t out[KEY_LEN])
{
	uint8_t tmp[64];
	size_t bin_len = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (!is_b64url(p[i]))
			return PB_EURI_BASE64;
	if (n == 0 || n > KEY_B64_MAX)
		return PB_EURI_KEYLEN;
	if (sodium_base642bin(tmp, sizeof(tmp), p, n, NULL, &bin_len, NULL, B64_VARIANT) != 0)
		rc = PB_EURI_BASE64;
	else if (bin_len != KEY_LEN)
		rc = PB_EURI_KEYLEN;
	else
		memcpy(out, tmp, KEY_LEN);
	sodium_memzero(tmp, sizeof(tmp));
	return rc;
}

/* Resolves an IPv6 zone: a numeric interface index or a local interface. */
static bool parse_zone(const char *p, size_t n, uint32_t *scope)
{
	char name[IF_NAMESIZE];
	uint64_t v;

	if (n == 0 || n >= sizeof(name))
		return false;
	if (p[0] >= '0' && p[0] <= '9') {
		if (!parse_decimal(p, n, UINT32_MAX, &v) || v == 0)
			return false;
		*scope = (uint32_t)v;
		return true;
	}
	for (size_t i = 0; i < n; i++)
		if (!is_unreserved((unsigned char)p[i]))
			return false;
	memcpy(name, p, n);
	name[n] = '\0';
	*scope = if_nametoindex(name);
	return *scope != 0;
}

/* Parses "a.b.c.d:port", "[v6]:port" or "[v6%25zone]:port". */
static int parse_addr(const char *p, size_t n, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN];
	const char *host_p, *port_p;
	size_t host_n, port_n;
	uint64_t port;

	memset(ss, 0, sizeof(*ss));
	if (n == 0)
		return PB_EURI_ADDR;
	if (p[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		const char *close = memchr(p, ']', n);
		const char *pct;

		if (close == NULL || (size_t)(close - p) + 2 > n || close[1] != ':')
			return PB_EURI_ADDR;
		host_p = p + 1;
		host_n = (size_t)(close - host_p);
		port_p = close + 2;
		port_n = n - (size_t)(port_p - p);
		pct = memchr(host_p, '%', host_n);
		if (pct != NULL) {
			size_t zone_off = (size_t)(pct - host_p);

			if (host_n - zone_off < 3 || memcmp(pct, "%25", 3) != 0 ||
			    !parse_zone(pct + 3, host_n - zone_off - 3, &sin6->sin6_scope_id))
				return PB_EURI_ADDR;
			host_n = zone_off;
		}
		if (host_n == 0 || host_n >= sizeof(host))
			return PB_EURI_ADDR;
		memcpy(host, host_p, host_n);
		host[host_n] = '\0';
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return PB_EURI_ADDR;
		if (!parse_decimal(port_p, port_n, 65535, &port) || port == 0)
			return PB_EURI_ADDR;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		return 0;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		const char *colon = memchr(p, ':', n);

		if (colon == NULL)
			return PB_EURI_ADDR;
		host_p = p;
		host_n = (size_t)(colon - p);
		port_p = colon + 1;
		port_n = n - host_n - 1;
		if (host_n == 0 || host_n >= sizeof(host))
			return PB_EURI_ADDR;
		memcpy(host, host_p, host_n);
		host[host_n] = '\0';
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return PB_EURI_ADDR;
		if (!parse_decimal(port_p, port_n, 65535, &port) || port == 0)
			return PB_EURI_ADDR;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		return 0;
	}
}

static int parse_addr_list(const char *p, size_t n, pb_pair_uri_t *out)
{
	size_t start = 0;

	out->naddrs = 0;
	for (;;) {
		const char *comma = memchr(p + start, ',', n - start);
		size_t item_n = comma != NULL ? (size_t)(comma - (p + start)) : n - start;
		int rc;

		if (out->naddrs == PB_URI_MAX_ADDRS)
			return PB_EURI_ADDR;
		rc = parse_addr(p + start, item_n, &out->addrs[out->naddrs]);
		if (rc != 0)
			return rc;
		out->naddrs++;
		if (comma == NULL)
			return 0;
		start += item_n + 1;
	}
}

/* Splits the query into the known parameters; unknown ones are skipped. */
static int split_query(const char *q, size_t n, struct raw_param raw[P_COUNT])
{
	size_t i = 0;

	while (i < n) {
		const char *amp = memchr(q + i, '&', n - i);
		size_t seg_n = amp != NULL ? (size_t)(amp - (q + i)) : n - i;
		const char *seg = q + i;
		const char *eq = memchr(seg, '=', seg_n);
		size_t name_n = eq != NULL ? (size_t)(eq - seg) : seg_n;

		i += seg_n + 1;
		if (name_n != 1)
			continue;
		for (int k = 0; k < P_COUNT; k++) {
			if (seg[0] != param_names[k])
				continue;
			if (raw[k].seen)
				return PB_EURI_DUPLICATE;
			raw[k].seen = true;
			raw[k].p = eq != NULL ? eq + 1 : seg + seg_n;
			raw[k].n = eq != NULL ? seg_n - name_n - 1 : 0;
		}
	}
	return 0;
}

static int parse_fields(const char *uri, size_t len, uint64_t now, pb_pair_uri_t *out)
{
	struct raw_param raw[P_COUNT];
	const size_t prefix_n = sizeof(uri_prefix) - 1;
	const size_t scheme_n = sizeof("peerback:") - 1;
	const char *q;
	size_t qn;
	int rc;

	memset(raw, 0, sizeof(raw));
	if (len > PB_URI_MAX_LEN)
		return PB_EURI_TOOLONG;
	/* The scheme is case-insensitive (RFC 3986); the rest is not. */
	if (len < prefix_n || strncasecmp(uri, uri_prefix, scheme_n) != 0 ||
	    memcmp(uri + scheme_n, uri_prefix + scheme_n, prefix_n - scheme_n) != 0)
		return PB_EURI_SCHEME;
	if (len > prefix_n && uri[prefix_n] != '?')
		return PB_EURI_SCHEME;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)uri[i] <= 0x20 || (unsigned char)uri[i] >= 0x7f || uri[i] == '#')
			return PB_EMALFORMED;
	q = len > prefix_n ? uri + prefix_n + 1 : uri + len;
	qn = len > prefix_n ? len - prefix_n - 1 : 0;
	rc = split_query(q, qn, raw);
	if (rc != 0)
		return rc;

	/* The version decides how to read the rest, so it is checked first. */
	if (!raw[P_V].seen)
		return PB_EURI_MISSING;
	if (raw[P_V].n != 1 || raw[P_V].p[0] != '0' + PB_URI_VERSION)
		return PB_EURI_VERSION;
	if (!raw[P_K].seen || !raw[P_S].seen || !raw[P_A].seen)
		return PB_EURI_MISSING;

	rc = decode_key(raw[P_K].p, raw[P_K].n, out->host_pk);
	if (rc != 0)
		return rc;
	rc = decode_key(raw[P_S].p, raw[P_S].n, out->secret);
	if (rc != 0)
		return rc;
	rc = parse_addr_list(raw[P_A].p, raw[P_A].n, out);
	if (rc != 0)
		return rc;
	if (raw[P_X].seen && !parse_decimal(raw[P_X].p, raw[P_X].n, UINT64_MAX, &out->expiry))
		return PB_EMALFORMED;
	if (raw[P_N].seen) {
		rc = decode_text(raw[P_N].p, raw[P_N].n, out->host_name, sizeof(out->host_name));
		if (rc != 0)
			return rc;
	}
	if (raw[P_H].seen) {
		rc = decode_text(raw[P_H].p, raw[P_H].n, out->account_hint, sizeof(out->account_hint));
		if (rc != 0)
			return rc;
	}
	if (now != 0 && raw[P_X].seen && out->expiry <= now)
		return PB_EURI_EXPIRED;
	return 0;
}

int pb_uri_parse(const char *uri, size_t len, uint64_t now, pb_pair_uri_t *out)
{
	int rc;

	if (out == NULL)
		return PB_EINVAL;
	memset(out, 0, sizeof(*out));
	if (uri == NULL)
		return PB_EINVAL;
	rc = parse_fields(uri, len, now, out);
	if (rc != 0)
		sodium_memzero(out, sizeof(*out));
	return rc;
}

/* --- Formatting ------------------------------------------------------------ */

/* An output cursor that counts the bytes needed even when they do not fit. */
struct out_buf {
	char *p;
	size_t cap, len, need;
	bool full;
};

static void put(struct out_buf *o, const char *s, size_t n)
{
	o->need += n;
	if (o->full || n >= o->cap - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void put_str(struct out_buf *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_text(struct out_buf *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[3] = { '%', hex[c >> 4], hex[c & 15] };

		if (is_unreserved(c))
			put(o, s, 1);
		else
			put(o, esc, sizeof(esc));
	}
}

int pb_uri_format_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (ss == NULL || out == NULL || cap == 0)
		return PB_EINVAL;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		if (sin->sin_port == 0 || inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) == NULL)
			return PB_EINVAL;
		n = snprintf(out, cap, "%s:%u", host, (unsigned)ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		if (sin6->sin6_port == 0 || inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)) == NULL)
			return PB_EINVAL;
		if (sin6->sin6_scope_id != 0)
			n = snprintf(out, cap, "[%s%%25%" PRIu32 "]:%u", host, (uint32_t)sin6->sin6_scope_id,
				     (unsigned)ntohs(sin6->sin6_port));
		else
			n = snprintf(out, cap, "[%s]:%u", host, (unsigned)ntohs(sin6->sin6_port));
	} else {
		return PB_EINVAL;
	}
	if (n < 0 || (size_t)n >= cap)
		return PB_ETOOBIG;
	return n;
}

static bool is_text_field(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	return n < size && is_utf8_text((const uint8_t *)s, n);
}

int pb_uri_format(const pb_pair_uri_t *u, char *out, size_t cap)
{
	char k[sodium_base64_ENCODED_LEN(KEY_LEN, B64_VARIANT)];
	char s[sodium_base64_ENCODED_LEN(KEY_LEN, B64_VARIANT)];
	char addr[INET6_ADDRSTRLEN + 32];
	char num[24];
	struct out_buf o = { out, cap, 0, 0, false };
	int rc = 0, n;

	if (u == NULL || out == NULL || cap == 0)
		return PB_EINVAL;
	out[0] = '\0';
	if (u->naddrs == 0 || u->naddrs > PB_URI_MAX_ADDRS ||
	    !is_text_field(u->host_name, sizeof(u->host_name)) ||
	    !is_text_field(u->account_hint, sizeof(u->account_hint)))
		return PB_EINVAL;
	sodium_bin2base64(k, sizeof(k), u->host_pk, KEY_LEN, B64_VARIANT);
	sodium_bin2base64(s, sizeof(s), u->secret, KEY_LEN, B64_VARIANT);

	put_str(&o, uri_prefix);
	put_str(&o, "?v=1&k=");
	put_str(&o, k);
	put_str(&o, "&s=");
	put_str(&o, s);
	put_str(&o, "&a=");
	for (size_t i = 0; i < u->naddrs; i++) {
		n = pb_uri_format_addr(&u->addrs[i], addr, sizeof(addr));
		if (n < 0) {
			rc = n == PB_ETOOBIG ? PB_EINVAL : n;
			goto out_wipe;
		}
		if (i > 0)
			put_str(&o, ",");
		put(&o, addr, (size_t)n);
	}
	if (u->expiry != 0) {
		n = snprintf(num, sizeof(num), "%" PRIu64, u->expiry);
		if (n < 0 || (size_t)n >= sizeof(num)) {
			rc = PB_EINVAL;
			goto out_wipe;
		}
		put_str(&o, "&x=");
		put(&o, num, (size_t)n);
	}
	if (u->host_name[0] != '\0') {
		put_str(&o, "&n=");
		put_text(&o, u->host_name);
	}
	if (u->account_hint[0] != '\0') {
		put_str(&o, "&h=");
		put_text(&o, u->account_hint);
	}
	if (o.need > PB_URI_MAX_LEN)
		rc = PB_EURI_TOOLONG;
	else if (o.full)
		rc = PB_ETOOBIG;

out_wipe:
	sodium_memzero(s, sizeof(s));
	if (rc != 0) {
		sodium_memzero(out, cap);
		return rc;
	}
	return (int)o.len;
}
