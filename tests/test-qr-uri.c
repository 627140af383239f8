/* The pairing URI: what the host writes is what the phone reads back, and
 * every malformed URI is refused with its own error code. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "testutil.h"
#include "peerback.h"
#include "peerback/qr.h"

/* Base64url of bytes 0..31 and of 32 bytes 0xff, computed independently. */
#define K_0_31 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define S_FF "__________________________________________8"
#define K_0_30 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg"
#define K_0_32 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"
#define BASE "peerback://pair?v=1&k=" K_0_31 "&s=" S_FF

static void set_v4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static void set_v6(struct sockaddr_storage *ss, const char *ip, uint16_t port, uint32_t scope)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	sin6->sin6_scope_id = scope;
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
}

static void sample(pb_pair_uri_t *u)
{
	memset(u, 0, sizeof(*u));
	for (int i = 0; i < 32; i++)
		u->host_pk[i] = (uint8_t)i;
	memset(u->secret, 0xff, sizeof(u->secret));
	set_v4(&u->addrs[0], "192.168.1.20", 4000);
	u->naddrs = 1;
	u->expiry = 1763780000;
}

static void assert_same(const pb_pair_uri_t *a, const pb_pair_uri_t *b)
{
	assert_memory_equal(a->host_pk, b->host_pk, 32);
	assert_memory_equal(a->secret, b->secret, 32);
	assert_int_equal(a->naddrs, b->naddrs);
	for (size_t i = 0; i < a->naddrs; i++)
		assert_memory_equal(&a->addrs[i], &b->addrs[i], sizeof(a->addrs[i]));
	assert_int_equal(a->expiry, b->expiry);
	assert_string_equal(a->host_name, b->host_name);
	assert_string_equal(a->account_hint, b->account_hint);
}

static int parse_str(const char *s, uint64_t now, pb_pair_uri_t *out)
{
	return pb_uri_parse(s, strlen(s), now, out);
}

static void test_format_known_answer(void **state)
{
	pb_pair_uri_t u, back;
	char buf[PB_URI_MAX_LEN + 1];
	const char *want = BASE "&a=192.168.1.20:4000&x=1763780000";
	int n;

	(void)state;
	sample(&u);
	n = pb_uri_format(&u, buf, sizeof(buf));
	assert_int_equal(n, (int)strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(parse_str(buf, 1763779999, &back), 0);
	assert_same(&u, &back);
}

static void test_roundtrip_ipv6_many_optional(void **state)
{
	pb_pair_uri_t u, back;
	char buf[PB_URI_MAX_LEN + 1];
	int n;

	(void)state;
	sample(&u);
	set_v6(&u.addrs[1], "fd00::1234:5678:9abc:def0", 65535, 0);
	set_v4(&u.addrs[2], "10.0.0.7", 1);
	set_v6(&u.addrs[3], "fe80::1", 4000, 7);
	set_v6(&u.addrs[4], "::ffff:192.0.2.1", 4000, 0);
	u.naddrs = 5;
	u.expiry = 0;
	snprintf(u.host_name, sizeof(u.host_name), "%s", "Anna's laptop & co=1 \xc3\xa9t\xc3\xa9");
	snprintf(u.account_hint, sizeof(u.account_hint), "%s", "anna@example.org #2");
	n = pb_uri_format(&u, buf, sizeof(buf));
	assert_true(n > 0);
	/* IPv6 in brackets, zone written as its index after an escaped %, text
	 * parameters percent-encoded, no x when there is no expiry. */
	assert_non_null(strstr(buf, "&a=192.168.1.20:4000,[fd00::1234:5678:9abc:def0]:65535,10.0.0.7:1,"
				    "[fe80::1%257]:4000,[::ffff:192.0.2.1]:4000&"));
	assert_non_null(strstr(buf, "&n=Anna%27s%20laptop%20%26%20co%3D1%20%C3%A9t%C3%A9"));
	assert_non_null(strstr(buf, "&h=anna%40example.org%20%232"));
	assert_null(strstr(buf, "&x="));
	assert_int_equal(parse_str(buf, 1763780000, &back), 0);
	assert_same(&u, &back);
	assert_int_equal(back.addrs[1].ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&back.addrs[1])->sin6_port), 65535);
	assert_int_equal(((struct sockaddr_in6 *)&back.addrs[3])->sin6_scope_id, 7);
}

static void test_parse_handwritten(void **state)
{
	pb_pair_uri_t u;
	const char *uri = "PeerBack://pair?x=4000000000&a=[2001:db8::2]:443,127.0.0.1:9&s=" S_FF
			  "&z=future&name=x&k=" K_0_31 "&v=1&n=desk%2Dtop&&h=";
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;
	uint8_t b = 0;

	(void)state;
	/* Any parameter order, unknown parameters (z, name) and empty segments
	 * ignored, the scheme in any case. */
	assert_int_equal(parse_str(uri, 1763780000, &u), 0);
	for (int i = 0; i < 32; i++)
		b |= (uint8_t)(u.host_pk[i] ^ i);
	assert_int_equal(b, 0);
	assert_true(u.secret[0] == 0xff && u.secret[31] == 0xff);
	assert_int_equal(u.naddrs, 2);
	sin6 = (struct sockaddr_in6 *)&u.addrs[0];
	sin = (struct sockaddr_in *)&u.addrs[1];
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 443);
	assert_int_equal(sin6->sin6_addr.s6_addr[15], 2);
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(ntohs(sin->sin_port), 9);
	assert_int_equal(u.expiry, 4000000000u);
	assert_string_equal(u.host_name, "desk-top");
	assert_string_equal(u.account_hint, "");
}

static void test_zone_by_interface_name(void **state)
{
	pb_pair_uri_t u;
	unsigned lo = if_nametoindex("lo");

	(void)state;
	if (lo == 0)
		skip();
	assert_int_equal(parse_str(BASE "&a=[fe80::1%25lo]:4000", 0, &u), 0);
	assert_int_equal(((struct sockaddr_in6 *)&u.addrs[0])->sin6_scope_id, lo);
	assert_int_equal(parse_str(BASE "&a=[fe80::1%25nosuchif9]:4000", 0, &u), PB_EURI_ADDR);
}

static void test_reject_scheme(void **state)
{
	pb_pair_uri_t u;

	(void)state;
	assert_int_equal(parse_str("http://pair?v=1&k=" K_0_31 "&s=" S_FF "&a=1.2.3.4:5", 0, &u), PB_EURI_SCHEME);
	assert_int_equal(parse_str("peerback://pairing?v=1&k=" K_0_31 "&s=" S_FF "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_SCHEME);
	assert_int_equal(parse_str("peerback://PAIR?v=1&k=" K_0_31 "&s=" S_FF "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_SCHEME);
	assert_int_equal(parse_str("peerback:/pair?v=1", 0, &u), PB_EURI_SCHEME);
	assert_int_equal(parse_str("", 0, &u), PB_EURI_SCHEME);
	assert_int_equal(parse_str("peerback://pair", 0, &u), PB_EURI_MISSING);
}

static void test_reject_version(void **state)
{
	pb_pair_uri_t u;

	(void)state;
	assert_int_equal(parse_str("peerback://pair?v=2&k=" K_0_31 "&s=" S_FF "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_VERSION);
	/* A later version may lay out its keys differently: the version is
	 * judged before anything else. */
	assert_int_equal(parse_str("peerback://pair?v=2&k=!!&a=nowhere", 0, &u), PB_EURI_VERSION);
	assert_int_equal(parse_str("peerback://pair?v=01&k=" K_0_31 "&s=" S_FF "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_VERSION);
	assert_int_equal(parse_str("peerback://pair?v=&k=" K_0_31 "&s=" S_FF "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_VERSION);
	assert_int_equal(parse_str("peerback://pair?v&k=" K_0_31 "&s=" S_FF "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_VERSION);
}

static void test_reject_missing(void **state)
{
	pb_pair_uri_t u;

	(void)state;
	assert_int_equal(parse_str("peerback://pair?k=" K_0_31 "&s=" S_FF "&a=1.2.3.4:5", 0, &u), PB_EURI_MISSING);
	assert_int_equal(parse_str("peerback://pair?v=1&s=" S_FF "&a=1.2.3.4:5", 0, &u), PB_EURI_MISSING);
	assert_int_equal(parse_str("peerback://pair?v=1&k=" K_0_31 "&a=1.2.3.4:5", 0, &u), PB_EURI_MISSING);
	assert_int_equal(parse_str(BASE, 0, &u), PB_EURI_MISSING);
	assert_int_equal(parse_str(BASE "&x=9999999999", 0, &u), PB_EURI_MISSING);
	/* Parameter names are case-sensitive: K is an unknown parameter. */
	assert_int_equal(parse_str("peerback://pair?v=1&K=" K_0_31 "&s=" S_FF "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_MISSING);
}

static void test_reject_base64(void **state)
{
	pb_pair_uri_t u;

	(void)state;
	/* Standard base64 characters, padding, escapes: not base64url. */
	assert_int_equal(parse_str("peerback://pair?v=1&k=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH+8&s=" S_FF
				   "&a=1.2.3.4:5",
				   0, &u),
			 PB_EURI_BASE64);
	assert_int_equal(parse_str("peerback://pair?v=1&k=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH/8&s=" S_FF
				   "&a=1.2.3.4:5",
				   0, &u),
			 PB_EURI_BASE64);
	assert_int_equal(parse_str("peerback://pair?v=1&k=" K_0_31 "=&s=" S_FF "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_BASE64);
	assert_int_equal(parse_str("peerback://pair?v=1&k=" K_0_31 "&s=%5F" S_FF "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_BASE64);
	/* Non-zero bits after the last byte: a second spelling of the same key. */
	assert_int_equal(parse_str("peerback://pair?v=1&k=" K_0_31 "&s=__________________________________________9"
				   "&a=1.2.3.4:5",
				   0, &u),
			 PB_EURI_BASE64);
}

static void test_reject_keylen(void **state)
{
	pb_pair_uri_t u;

	(void)state;
	assert_int_equal(parse_str("peerback://pair?v=1&k=" K_0_30 "&s=" S_FF "&a=1.2.3.4:5", 0, &u), PB_EURI_KEYLEN);
	assert_int_equal(parse_str("peerback://pair?v=1&k=" K_0_32 "&s=" S_FF "&a=1.2.3.4:5", 0, &u), PB_EURI_KEYLEN);
	assert_int_equal(parse_str("peerback://pair?v=1&k=&s=" S_FF "&a=1.2.3.4:5", 0, &u), PB_EURI_KEYLEN);
	assert_int_equal(parse_str("peerback://pair?v=1&k=" K_0_31 "&s=" K_0_30 "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_KEYLEN);
	assert_int_equal(parse_str("peerback://pair?v=1&k=" K_0_31 K_0_31 K_0_31 "&s=" S_FF "&a=1.2.3.4:5", 0, &u),
			 PB_EURI_KEYLEN);
}

static void test_reject_toolong(void **state)
{
	pb_pair_uri_t u;
	const char *head = BASE "&a=1.2.3.4:5&z=";
	char *buf = malloc(PB_URI_MAX_LEN + 2);
	size_t h = strlen(head);

	(void)state;
	assert_non_null(buf);
	memcpy(buf, head, h);
	memset(buf + h, 'q', PB_URI_MAX_LEN + 1 - h);
	/* Exactly at the cap is fine; one byte more is not. */
	assert_int_equal(pb_uri_parse(buf, PB_URI_MAX_LEN, 0, &u), 0);
	assert_int_equal(pb_uri_parse(buf, PB_URI_MAX_LEN + 1, 0, &u), PB_EURI_TOOLONG);
	free(buf);
}

static void test_reject_expired(void **state)
{
	pb_pair_uri_t u;
	const char *uri = BASE "&a=1.2.3.4:5&x=1000";

	(void)state;
	assert_int_equal(parse_str(uri, 999, &u), 0);
	assert_int_equal(u.expiry, 1000);
	assert_int_equal(parse_str(uri, 1000, &u), PB_EURI_EXPIRED);
	assert_int_equal(parse_str(uri, 5000, &u), PB_EURI_EXPIRED);
	assert_true(sodium_is_zero(u.secret, sizeof(u.secret)));
	/* now = 0 leaves the expiry to the caller. */
	assert_int_equal(parse_str(uri, 0, &u), 0);
	/* A URI without x never expires by itself. */
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5", 5000, &u), 0);
}

static void test_reject_addr(void **state)
{
	static const char *const bad[] = {
		"",                      /* empty list */
		"1.2.3.4",               /* no port */
		"1.2.3.4:",              /* empty port */
		"1.2.3.4:0",             /* port 0 */
		"1.2.3.4:65536",         /* port out of range */
		"1.2.3.4:080",           /* leading zero */
		"1.2.3.4:+80",           /* sign */
		"1.2.3.4:80,",           /* empty last entry */
		",1.2.3.4:80",           /* empty first entry */
		"256.1.1.1:80",          /* not an IPv4 address */
		"1.2.3:80",              /* not an IPv4 address */
		"host.example:80",       /* names are not resolved */
		"fe80::1:4000",          /* IPv6 without brackets */
		"[fe80::1]4000",         /* no colon after the bracket */
		"[fe80::1]:",            /* empty port */
		"[fe80::1:4000",         /* unclosed bracket */
		"[]:4000",               /* empty address */
		"[1.2.3.4]:4000",        /* IPv4 in brackets */
		"[fe80::1%eth0]:4000",   /* zone not escaped as %25 */
		"[fe80::1%25]:4000",     /* empty zone */
		"[fe80::1%250]:4000",    /* zone index 0 */
		"[fe80::1%25a/b]:4000",  /* zone with a reserved character */
	};
	pb_pair_uri_t u;
	char buf[PB_URI_MAX_LEN + 1];
	int n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = snprintf(buf, sizeof(buf), BASE "&a=%s", bad[i]);
		assert_true(n > 0 && (size_t)n < sizeof(buf));
		if (parse_str(buf, 0, &u) != PB_EURI_ADDR)
			fail_msg("address list \"%s\" was not refused with PB_EURI_ADDR", bad[i]);
	}
	/* At most PB_URI_MAX_ADDRS addresses. */
	n = snprintf(buf, sizeof(buf), "%s", BASE "&a=10.0.0.1:1");
	for (int i = 2; i <= PB_URI_MAX_ADDRS; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ",10.0.0.%d:1", i);
	assert_int_equal(parse_str(buf, 0, &u), 0);
	assert_int_equal(u.naddrs, PB_URI_MAX_ADDRS);
	snprintf(buf + n, sizeof(buf) - (size_t)n, ",10.0.0.99:1");
	assert_int_equal(parse_str(buf, 0, &u), PB_EURI_ADDR);
}

static void test_reject_duplicate(void **state)
{
	pb_pair_uri_t u;

	(void)state;
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&k=" K_0_31, 0, &u), PB_EURI_DUPLICATE);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&v=1", 0, &u), PB_EURI_DUPLICATE);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&a=1.2.3.4:6", 0, &u), PB_EURI_DUPLICATE);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&x=1&x=2", 0, &u), PB_EURI_DUPLICATE);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&n=a&n=b", 0, &u), PB_EURI_DUPLICATE);
	/* Repeated unknown parameters are none of the reader's business. */
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&zz=1&zz=2", 0, &u), 0);
}

static void test_reject_malformed(void **state)
{
	pb_pair_uri_t u;
	char nul[sizeof(BASE "&a=1.2.3.4:5")];
	char longname[PB_URI_MAX_LEN];

	(void)state;
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&n=a b", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5#frag", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5\n", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&n=\xc3\xa9", 0, &u), PB_EMALFORMED);
	memcpy(nul, BASE "&a=1.2.3.4:5", sizeof(nul));
	nul[20] = '\0';
	assert_int_equal(pb_uri_parse(nul, sizeof(nul) - 1, 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&x=", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&x=-1", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&x=1e9", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&x=18446744073709551616", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&x=18446744073709551615", 0, &u), 0);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&n=%zz", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&n=%4", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&n=a%00b", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&h=%1B[2J", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&n=%C3%28", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&n=%C0%AF", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&n=%ED%A0%80", 0, &u), PB_EMALFORMED);
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:5&n=%C3%A9", 0, &u), 0);
	assert_string_equal(u.host_name, "\xc3\xa9");
	/* n holds at most PB_URI_HOST_NAME_MAX bytes. */
	snprintf(longname, sizeof(longname), "%s%.*s", BASE "&a=1.2.3.4:5&n=", PB_URI_HOST_NAME_MAX,
		 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
	assert_int_equal(parse_str(longname, 0, &u), 0);
	assert_int_equal(strlen(u.host_name), PB_URI_HOST_NAME_MAX);
	snprintf(longname + strlen(longname), 4, "%%41");
	assert_int_equal(parse_str(longname, 0, &u), PB_ETOOBIG);
}

static void test_secret_wiped_on_error(void **state)
{
	pb_pair_uri_t u;

	(void)state;
	/* The secret is decoded before the bad address is met. */
	memset(&u, 0xa5, sizeof(u));
	assert_int_equal(parse_str(BASE "&a=1.2.3.4:0", 0, &u), PB_EURI_ADDR);
	assert_true(sodium_is_zero(u.secret, sizeof(u.secret)));
	assert_true(sodium_is_zero(u.host_pk, sizeof(u.host_pk)));
	assert_true(sodium_is_zero((const unsigned char *)&u, sizeof(u)));
	assert_int_equal(pb_uri_parse(NULL, 5, 0, &u), PB_EINVAL);
	assert_int_equal(pb_uri_parse("x", 1, 0, NULL), PB_EINVAL);
}

static void test_format_errors(void **state)
{
	pb_pair_uri_t u;
	char buf[PB_URI_MAX_LEN + 1];
	char small[100];
	int n;

	(void)state;
	sample(&u);
	n = pb_uri_format(&u, buf, sizeof(buf));
	assert_true(n > 0);
	/* Exactly enough room, and one byte short (nothing of the secret left). */
	assert_int_equal(pb_uri_format(&u, buf, (size_t)n + 1), n);
	assert_int_equal(pb_uri_format(&u, buf, (size_t)n), PB_ETOOBIG);
	assert_true(sodium_is_zero((const unsigned char *)buf, (size_t)n));
	assert_int_equal(pb_uri_format(&u, small, sizeof(small)), PB_ETOOBIG);
	assert_true(sodium_is_zero((const unsigned char *)small, sizeof(small)));

	u.naddrs = 0;
	assert_int_equal(pb_uri_format(&u, buf, sizeof(buf)), PB_EINVAL);
	u.naddrs = PB_URI_MAX_ADDRS + 1;
	assert_int_equal(pb_uri_format(&u, buf, sizeof(buf)), PB_EINVAL);
	sample(&u);
	((struct sockaddr_in *)&u.addrs[0])->sin_port = 0;
	assert_int_equal(pb_uri_format(&u, buf, sizeof(buf)), PB_EINVAL);
	sample(&u);
	u.addrs[0].ss_family = AF_UNIX;
	assert_int_equal(pb_uri_format(&u, buf, sizeof(buf)), PB_EINVAL);
	sample(&u);
	memset(u.host_name, 'a', sizeof(u.host_name));
	assert_int_equal(pb_uri_format(&u, buf, sizeof(buf)), PB_EINVAL);
	sample(&u);
	snprintf(u.account_hint, sizeof(u.account_hint), "bell\a");
	assert_int_equal(pb_uri_format(&u, buf, sizeof(buf)), PB_EINVAL);
}

static void test_largest_uri_fits(void **state)
{
	pb_pair_uri_t u, back;
	char buf[PB_URI_MAX_LEN + 1];
	int n;

	(void)state;
	/* Every field at its longest, every text byte escaped: a host can
	 * always write a URI that readers accept. */
	sample(&u);
	for (int i = 0; i < PB_URI_MAX_ADDRS; i++)
		set_v6(&u.addrs[i], "2001:db8:1234:5678:9abc:def0:1234:5678", 65535, 4000000000u);
	u.naddrs = PB_URI_MAX_ADDRS;
	u.expiry = UINT64_MAX;
	memset(u.account_hint, '!', PB_URI_ACCOUNT_HINT_MAX);
	memset(u.host_name, '!', PB_URI_HOST_NAME_MAX);
	n = pb_uri_format(&u, buf, sizeof(buf));
	assert_true(n > 0 && n <= PB_URI_MAX_LEN);
	print_message("largest pairing URI: %d bytes\n", n);
	assert_int_equal(pb_uri_parse(buf, (size_t)n, 1, &back), 0);
	assert_same(&u, &back);
}

static void test_format_addr(void **state)
{
	struct sockaddr_storage ss;
	char buf[64];

	(void)state;
	set_v4(&ss, "203.0.113.9", 80);
	assert_int_equal(pb_uri_format_addr(&ss, buf, sizeof(buf)), 14);
	assert_string_equal(buf, "203.0.113.9:80");
	set_v6(&ss, "2001:db8::1", 4000, 0);
	assert_true(pb_uri_format_addr(&ss, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "[2001:db8::1]:4000");
	set_v6(&ss, "fe80::1", 4000, 3);
	assert_true(pb_uri_format_addr(&ss, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "[fe80::1%253]:4000");
	assert_int_equal(pb_uri_format_addr(&ss, buf, 10), PB_ETOOBIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_known_answer),
		cmocka_unit_test(test_roundtrip_ipv6_many_optional),
		cmocka_unit_test(test_parse_handwritten),
		cmocka_unit_test(test_zone_by_interface_name),
		cmocka_unit_test(test_reject_scheme),
		cmocka_unit_test(test_reject_version),
		cmocka_unit_test(test_reject_missing),
		cmocka_unit_test(test_reject_base64),
		cmocka_unit_test(test_reject_keylen),
		cmocka_unit_test(test_reject_toolong),
		cmocka_unit_test(test_reject_expired),
		cmocka_unit_test(test_reject_addr),
		cmocka_unit_test(test_reject_duplicate),
		cmocka_unit_test(test_reject_malformed),
		cmocka_unit_test(test_secret_wiped_on_error),
		cmocka_unit_test(test_format_errors),
		cmocka_unit_test(test_format_addr),
		cmocka_unit_test(test_largest_uri_fits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
