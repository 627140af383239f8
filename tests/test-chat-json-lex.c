/* The Telegram export's reader (agent/kinds/chat-json-lex.c) against yajl,
 * the reader it replaced (pb__chat_tg_new_yajl): the same messages in
 * canonical form, ids and error codes for valid chats, every truncation of
 * them, escapes (\uXXXX, surrogate pairs, lone surrogates, Telegram's
 * \xNN), unicode, numbers, whitespace, malformed and hostile text, fed
 * whole, in thirds and a byte or a few at a time; then what the canonical
 * bytes are for a few of them, the nesting limit and the token cap. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

/* Each message's canonical bytes, then its id, after a NUL each. */
static int canon_msg(void *arg, pb__chat_tg_chat_t *chat, const pb_buf_t *canon, const char *id)
{
	pb_buf_t *out = arg;

	(void)chat;
	if (pb__chat_buf_add(out, canon->data, canon->len) != 0 || pb__chat_buf_add(out, "", 1) != 0 ||
	    (id != NULL && pb__chat_buf_str(out, id) != 0) || pb__chat_buf_add(out, "", 1) != 0)
		return PB_ENOMEM;
	return 0;
}

/* Parses d fed in pieces of piece bytes (0: in thirds). */
static int parse(const char *d, size_t n, bool yajl, size_t piece, pb_buf_t *out, char *why, size_t whycap)
{
	pb__chat_tg_sink_t sink = {NULL, NULL, NULL, out, false, canon_msg};
	pb__chat_tg_t *p;
	size_t at = 0, k;
	int err = 0;

	out->len = 0;
	assert_int_equal(yajl ? pb__chat_tg_new_yajl(&p, &sink) : pb__chat_tg_new(&p, &sink), 0);
	if (piece == 0) {
		err = pb__chat_tg_feed(p, (const uint8_t *)d, n / 3, why, whycap);
		if (err == 0)
			err = pb__chat_tg_feed(p, (const uint8_t *)d + n / 3, n - n / 3, why, whycap);
	} else {
		for (; err == 0 && at < n; at += k) {
			k = n - at < piece ? n - at : piece;
			err = pb__chat_tg_feed(p, (const uint8_t *)d + at, k, why, whycap);
		}
	}
	if (err == 0)
		err = pb__chat_tg_finish(p, why, whycap);
	pb__chat_tg_free(p);
	return err;
}

/* The reader and yajl agree on d's first n bytes, in every feeding. */
static void agree_n(const char *d, size_t n)
{
	static const size_t pieces[] = {0, 1, 2, 3, 7, 64, 1u << 20};
	pb_buf_t want = {0}, got = {0};
	char why[256];
	int ew, eg;
	size_t i;

	ew = parse(d, n, true, 0, &want, why, sizeof(why));
	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		eg = parse(d, n, false, pieces[i], &got, why, sizeof(why));
		if (eg != ew || got.len != want.len || (got.len > 0 && memcmp(got.data, want.data, got.len) != 0))
			fail_msg("%.*s (%zu bytes, pieces of %zu): got %d (%s) and %zu bytes, yajl %d and %zu bytes",
				 (int)(n < 200 ? n : 200), d, n, pieces[i], eg, eg ? why : "", got.len, ew, want.len);
	}
	pb__chat_buf_clear(&want);
	pb__chat_buf_clear(&got);
}

static void agree(const char *d)
{
	agree_n(d, strlen(d));
}

#define CHAT(msgs) "{\"name\":\"A\",\"type\":\"personal_chat\",\"id\":5,\"messages\":[" msgs "]}"

static const char *const valid[] = {
	CHAT(""),
	CHAT("{\"id\":1,\"type\":\"message\",\"date\":\"2024-01-31T14:08:00\",\"from\":\"Anna\",\"text\":\"hi\"},"
	     "{\"id\":2,\"text\":[\"a \",{\"type\":\"link\",\"text\":\"https://x/\"}],\"text_entities\":[]}"),
	/* escapes of every kind, and Telegram's \xNN */
	CHAT("{\"id\":1,\"text\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9\\u00E9 \\u20ac \\u0000 \\u001f \\xe9\\x0a\"}"),
	/* surrogate pairs, lone and odd surrogates (yajl's decoding kept) */
	CHAT("{\"id\":1,\"text\":\"\\ud83d\\ude00 \\uD83D\\uDE00 \\ud800x \\ud800\\u0041 \\udc00 \\ud800\"}"),
	CHAT("{\"id\":1,\"text\":\"\\ud800\\xe9 \\ud800\\u00e9z \\ud800\xc3\xa9 end\"}"),
	/* raw UTF-8 of 2, 3 and 4 bytes, DEL, overlong forms yajl accepts */
	CHAT("{\"id\":1,\"text\":\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f \xc0\x80 \xf7\xbf\xbf\xbf\"}"),
	/* numbers as written */
	CHAT("{\"id\":1,\"n\":[0,-0,12,-12,1.5,-1.25e+10,1E5,1e-3,0.0,123456789012345678901234567890]}"),
	/* whitespace yajl skips, nesting, empty containers, literals */
	"\t\v\f\r\n " CHAT("{\"id\" :\t1 ,\v\"a\":{\"b\":[[],{},[{}],null,true,false]},\"c\":{}}") " \n",
	/* members out of canonical order, unknown ones, a duplicate id */
	CHAT("{\"text\":\"t\",\"zz\":1,\"id\":3,\"from\":\"B\",\"date\":\"d\",\"id\":4}"),
	/* a full export */
	"{\"about\":\"x\",\"personal_information\":{\"a\":[1]},\"chats\":{\"about\":\"y\",\"list\":[{\"name\":\"A\","
	"\"id\":7,\"messages\":[{\"id\":1,\"text\":\"a\"}]},{\"id\":8,\"messages\":[{\"id\":1,\"text\":\"b\"}]}]},"
	"\"left_chats\":{\"list\":[]}}",
	/* member names with escapes */
	CHAT("{\"\\u0069d\":1,\"te\\u0078t\":\"a\",\"k\\\"ey\":2}"),
};

static const char *const malformed[] = {
	"",
	"   ",
	"{",
	"[1,2]",
	"\"str\"",
	"17",
	CHAT("{\"id\":1}") "x",
	CHAT("{\"id\":1}") " 1",
	CHAT("{\"id\":1}") " \"abc",
	CHAT("{\"id\":1}") "{}",
	CHAT("{\"id\":1}") "/",
	CHAT("{\"id\":1,}"),
	CHAT("{\"id\":1},"),
	CHAT("{\"id\" 1}"),
	CHAT("{\"id\":1 \"a\":2}"),
	CHAT("{\"id\":1,\"a\":[1 2]}"),
	CHAT("{\"id\":1,\"a\":[1,]}"),
	CHAT("{\"id\":1,\"a\":[,1]}"),
	CHAT("{\"id\":1,3:4}"),
	CHAT("{\"id\":01}"),
	CHAT("{\"id\":-}"),
	CHAT("{\"id\":1.}"),
	CHAT("{\"id\":1.e5}"),
	CHAT("{\"id\":1e}"),
	CHAT("{\"id\":1e+}"),
	CHAT("{\"id\":+1}"),
	CHAT("{\"id\":.5}"),
	CHAT("{\"id\":0x10}"),
	CHAT("{\"id\":1,\"a\":tru}"),
	CHAT("{\"id\":1,\"a\":nul}"),
	CHAT("{\"id\":1,\"a\":True}"),
	CHAT("{\"id\":1,\"a\":undefined}"),
	CHAT("{\"id\":1,\"a\":\"\\q\"}"),
	CHAT("{\"id\":1,\"a\":\"\\u12g4\"}"),
	CHAT("{\"id\":1,\"a\":\"\\xZZ\"}"),
	CHAT("{\"id\":1,\"a\":\"\\x1\"}"),
	CHAT("{\"id\":1,\"a\":\"tab\tinside\"}"),
	CHAT("{\"id\":1,\"a\":\"nl\ninside\"}"),
	CHAT("{\"id\":1,\"a\":\"\x80\"}"),
	CHAT("{\"id\":1,\"a\":\"\xc3\"}"),
	CHAT("{\"id\":1,\"a\":\"\xe2\x82\"}"),
	CHAT("{\"id\":1,\"a\":\"\xf0\x9f\x98\"}"),
	CHAT("{\"id\":1,\"a\":\"\xf8\x80\x80\x80\x80\"}"),
	CHAT("{\"id\":1,\"a\":\"\xff\"}"),
	CHAT("{\"id\":1,\"a\":\"x\"/* c */}"),
	"\xef\xbb\xbf" CHAT(""),
	CHAT("17"),
	"{\"name\":\"A\",\"id\":5,\"messages\":{}}",
	"{\"name\":\"A\",\"id\":5,\"messages\":[{\"id\":2},{\"id\":2}]}",
	"{\"name\":\"A\",\"id\":5,\"messages\":[{\"id\":1,\"text\":\"x\"}]",
	"{\"name\":\"A\",\"id\":5,\"messages\":[{\"id\":1,\"text\":\"x\"}]}}",
	"{\"name\":\"A\",\"id\":5,\"messages\":[{\"id\":1,\"text\":\"x\"}]]",
};

static void test_same_as_yajl(void **state)
{
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		/* every truncation, so that each token ends the text somewhere */
		for (n = 0; n <= strlen(valid[i]); n++)
			agree_n(valid[i], n);
	}
	for (i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		agree(malformed[i]);
}

/* A generated chat of a few hundred messages, all of the generator's kinds
 * of text. */
static void test_generated_chat_same_as_yajl(void **state)
{
	pb_buf_t d = {0};
	size_t i;

	(void)state;
	assert_int_equal(pb__chat_buf_str(&d, "{\"name\":\"G\",\"id\":9,\"messages\":[\n"), 0);
	for (i = 1; i <= 400; i++) {
		static const char *const texts[] = {
			"Wir sehen uns um acht am Bahnhof.",
			"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82!",
			"a control character \\u000b inside, and a quote \\\" too",
			"\xe6\x98\x8e\xe5\xa4\xa9\xe8\xa7\x81 \xf0\x9f\x98\x80 \\ud83d\\ude00 \\xe9",
			"",
		};
		assert_int_equal(pb__chat_buf_printf(&d,
						     "%s {\"id\":%zu,\"type\":\"message\",\"date\":\"2021-01-01T00:00:00\","
						     "\"date_unixtime\":\"%zu\",\"from\":\"Anna\",\"from_id\":\"user1\","
						     "\"text\":\"%s\",\"text_entities\":[{\"type\":\"plain\",\"text\":"
						     "\"%s\"}],\"width\":%zu.5e-%zu}\n",
						     i > 1 ? "," : "", i, 1609459237 + i, texts[i % 5], texts[(i + 1) % 5],
						     i * 7, i % 3),
				 0);
	}
	assert_int_equal(pb__chat_buf_str(&d, "]}\n"), 0);
	agree_n((const char *)d.data, d.len);
	pb__chat_buf_clear(&d);
}

/* What the canonical form is, spelled out. */
static void test_canonical_bytes(void **state)
{
	static const struct {
		const char *text, *canon;
	} cases[] = {
		{"\"plain \xc3\xa9\"", "\"plain \xc3\xa9\""},
		{"\"\\u00e9\\xe9\\/\"", "\"\xc3\xa9\xc3\xa9/\""},
		{"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""},
		{"\"\\ud800xy\"", "\"?xy\""},
		{"\"\\u0000\\u000b\\n\\\"\\\\\"", "\"\\u0000\\u000b\\n\\\"\\\\\""},
		{"-1.50E+3", "-1.50E+3"},
	};
	pb_buf_t out = {0};
	char doc[256], want[256], why[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(snprintf(doc, sizeof(doc), CHAT("{\"id\":1,\"text\":%s}"), cases[i].text) <
			    (int)sizeof(doc));
		assert_true(snprintf(want, sizeof(want), "{\"id\":1,\"text\":%s}", cases[i].canon) <
			    (int)sizeof(want));
		assert_int_equal(parse(doc, strlen(doc), false, 1, &out, why, sizeof(why)), 0);
		assert_int_equal(out.len, strlen(want) + 1 + 2);
		assert_memory_equal(out.data, want, strlen(want));
		assert_string_equal((const char *)out.data + strlen(want) + 1, "1");
	}
	pb__chat_buf_clear(&out);
}

/* Nesting past the limit, and a string over the token cap whether it comes
 * in one feed or many: refused, with the error the parser always gave. */
static void test_limits(void **state)
{
	static const char pre[] = "{\"id\":5,\"messages\":[{\"id\":1,\"text\":\"";
	pb_buf_t d = {0}, out = {0};
	char why[256];
	size_t i, n = (16u << 20) + 16;
	char *big;

	(void)state;
	assert_int_equal(pb__chat_buf_str(&d, "{\"id\":5,\"messages\":[{\"id\":1,\"a\":"), 0);
	for (i = 0; i < 80; i++)
		assert_int_equal(pb__chat_buf_str(&d, "["), 0);
	for (i = 0; i < 80; i++)
		assert_int_equal(pb__chat_buf_str(&d, "]"), 0);
	assert_int_equal(pb__chat_buf_str(&d, "}]}"), 0);
	assert_int_equal(parse((const char *)d.data, d.len, false, 0, &out, why, sizeof(why)), PB_ETOOBIG);
	assert_non_null(strstr(why, "nested too deeply"));
	agree_n((const char *)d.data, d.len);

	big = malloc(n + 64);
	assert_non_null(big);
	memcpy(big, pre, sizeof(pre) - 1);
	memset(big + sizeof(pre) - 1, 'z', n);
	memcpy(big + sizeof(pre) - 1 + n, "\"}]}", 5);
	for (i = 0; i < 2; i++) {
		int rc = parse(big, strlen(big), i == 1, i == 0 ? 0 : 65536, &out, why, sizeof(why));

		if (rc != PB_ETOOBIG || strstr(why, "longer than 16 MiB") == NULL)
			fail_msg("%s: got %d \"%s\"", i ? "yajl" : "reader", rc, why);
	}
	assert_int_equal(parse(big, strlen(big), false, 65536, &out, why, sizeof(why)), PB_ETOOBIG);
	/* At the cap, to the byte: the same error and sentence as yajl's
	 * filter (the token's cap, or the message's just under it). */
	for (n = (16u << 20) - 2; n <= (16u << 20); n++) {
		char why_y[256];
		int ry, rr;

		memset(big + sizeof(pre) - 1, 'z', n);
		memcpy(big + sizeof(pre) - 1 + n, "\"}]}", 5);
		rr = parse(big, strlen(big), false, 65536, &out, why, sizeof(why));
		ry = parse(big, strlen(big), true, 65536, &out, why_y, sizeof(why_y));
		if (rr != PB_ETOOBIG || ry != PB_ETOOBIG ||
		    (strstr(why, "longer than 16 MiB") == NULL) != (strstr(why_y, "longer than 16 MiB") == NULL))
			fail_msg("%zu bytes: got %d \"%s\", yajl %d \"%s\"", n, rr, why, ry, why_y);
	}
	/* A string of 8 MiB is read. */
	memcpy(big + sizeof(pre) - 1 + (8u << 20), "\"}]}", 5);
	assert_int_equal(parse(big, strlen(big), false, 65536, &out, why, sizeof(why)), 0);
	assert_int_equal(parse(big, strlen(big), true, 65536, &out, why, sizeof(why)), 0);
	free(big);
	pb__chat_buf_clear(&d);
	pb__chat_buf_clear(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_as_yajl),
		cmocka_unit_test(test_generated_chat_same_as_yajl),
		cmocka_unit_test(test_canonical_bytes),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
