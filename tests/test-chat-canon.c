/* A Telegram message's canonical form written from the parser's events
 * (sink.message_canon) is the one the tree gives (pb__cj_write), whatever
 * order its members come in: in order, out of order (put in place at the
 * message's end), unknown and repeated members, nested values, the id
 * anywhere or missing; and fed a few bytes at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

struct collect {
	pb_buf_t out; /* each message's bytes, then " id=" and its id, a line each */
};

static void add_id(struct collect *c, const char *id)
{
	assert_int_equal(pb__chat_buf_str(&c->out, " id="), 0);
	assert_int_equal(pb__chat_buf_str(&c->out, id != NULL ? id : "(none)"), 0);
	assert_int_equal(pb__chat_buf_add(&c->out, "\n", 1), 0);
}

static int tree_msg(void *arg, pb__chat_tg_chat_t *chat, pb__cj_t *msg)
{
	struct collect *c = arg;
	const pb__cj_t *id = pb__cj_get(msg, "id");

	(void)chat;
	assert_int_equal(pb__cj_write(&c->out, msg, PB__CJ_ORDER_MESSAGE), 0);
	add_id(c, id != NULL && id->type == PB__CJ_NUM ? id->str : NULL);
	pb__cj_free(msg);
	return 0;
}

static int canon_msg(void *arg, pb__chat_tg_chat_t *chat, const pb_buf_t *canon, const char *id)
{
	struct collect *c = arg;

	(void)chat;
	assert_int_equal(pb__chat_buf_add(&c->out, canon->data, canon->len), 0);
	add_id(c, id);
	return 0;
}

/* Parses doc fed step bytes at a time (0: at once), messages as trees or
 * written from the events. */
static char *parse(const char *doc, size_t step, bool canon)
{
	struct collect c = {{0}};
	pb__chat_tg_sink_t sink = {NULL, canon ? NULL : tree_msg, NULL, &c, false, canon ? canon_msg : NULL};
	size_t len = strlen(doc), at, n;
	pb__chat_tg_t *p;
	char err[256];

	assert_int_equal(pb__chat_tg_new(&p, &sink), 0);
	for (at = 0; at < len; at += n) {
		n = step == 0 || step > len - at ? len - at : step;
		assert_int_equal(pb__chat_tg_feed(p, (const uint8_t *)doc + at, n, err, sizeof(err)), 0);
	}
	assert_int_equal(pb__chat_tg_finish(p, err, sizeof(err)), 0);
	pb__chat_tg_free(p);
	assert_non_null(c.out.data);
	return (char *)c.out.data;
}

static const char *const docs[] = {
	/* Telegram Desktop's own order: written straight through. */
	("{\"name\":\"A\",\"type\":\"personal_chat\",\"id\":9,\"messages\":["
	"{\"id\":1,\"type\":\"message\",\"date\":\"2024-01-01T00:00:00\",\"date_unixtime\":\"1704067200\","
	"\"from\":\"Ann\",\"from_id\":\"user1\",\"text\":\"hi \\\"there\\\"\\n\\u0001\",\"text_entities\":"
	"[{\"type\":\"plain\",\"text\":\"hi\"},{\"type\":\"bold\",\"text\":\"x\",\"z\":[1,2.50,-3e2,true,false,null,{}]}]},"
	"{\"id\":2,\"type\":\"service\",\"actor\":\"Ann\",\"action\":\"pin_message\",\"members\":[],\"text\":\"\"}]}"),
	/* Out of order: the members are put in place at the message's end. */
	("{\"id\":9,\"messages\":["
	"{\"text\":\"b\",\"id\":3,\"type\":\"message\",\"zz\":{\"b\":1,\"a\":[{\"y\":2,\"x\":1}]},\"date\":\"d\"},"
	"{\"zz\":1,\"text_entities\":[],\"yy\":[null],\"from\":\"B\",\"id\":4,\"aa\":\"\\\\x41\"},"
	"{\"unknown\":1,\"id\":5},"
	"{\"id\":6,\"text\":\"t\",\"type\":\"message\",\"text\":\"again\",\"type\":\"dup\",\"q\":{}}]}"),
	/* Repeated and odd ids: the first "id" member counts. */
	("{\"id\":9,\"messages\":["
	"{\"type\":\"message\",\"id\":\"7\",\"id\":8},"
	"{\"id\":{\"id\":1},\"text\":\"x\"},"
	"{\"id\":[9],\"id\":10},"
	"{\"text\":\"no id\"},"
	"{},"
	"{\"id\":11,\"id\":12,\"width\":1,\"height\":2,\"duration_seconds\":3,\"mime_type\":\"m\","
	"\"sticker_emoji\":\"s\",\"media_type\":\"v\",\"thumbnail_file_size\":4,\"thumbnail\":\"t\","
	"\"file_size\":5,\"file_name\":\"f\",\"file\":\"g\",\"photo_file_size\":6,\"photo\":\"p\","
	"\"via_bot\":\"v\",\"reply_to_message_id\":7,\"saved_from\":\"s\",\"forwarded_from\":\"f\","
	"\"members\":[\"a\",\"b\"],\"title\":\"t\",\"action\":\"a\",\"actor_id\":\"u\",\"actor\":\"a\","
	"\"from_id\":\"u\",\"from\":\"f\",\"edited_unixtime\":\"1\",\"edited\":\"e\",\"date_unixtime\":\"1\","
	"\"date\":\"d\",\"type\":\"message\"}]}"),
	/* \xNN escapes, member names that need escapes, deep values. */
	("{\"id\":9,\"messages\":[{\"te\\\"xt\":\"\\x1b[0m\",\"id\":1,\"a\\x01\":[[[[{\"k\":[[]]}]]]],"
	"\"text\":\"\\x41\\u00e9\\ud83d\\ude00\"}]}"),
};

static void test_canon_is_the_trees(void **state)
{
	static const size_t steps[] = {0, 1, 2, 3, 7, 64};
	size_t d, s;

	(void)state;
	for (d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
		char *want = parse(docs[d], 0, false);

		for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			char *got = parse(docs[d], steps[s], true);

			assert_string_equal(got, want);
			free(got);
		}
		free(want);
	}
}

/* A message of more than 64 members (the tree's general path), known
 * members among the unknown ones in reverse order. */
static void test_many_members(void **state)
{
	pb_buf_t doc = {0};
	char *want, *got, m[64];
	int i;

	(void)state;
	assert_int_equal(pb__chat_buf_str(&doc, "{\"id\":9,\"messages\":[{"), 0);
	for (i = 0; i < 100; i++) {
		if (i % 10 == 0)
			snprintf(m, sizeof(m), "%s\"%s\":%d", i ? "," : "", i == 90 ? "id" : i == 50 ? "text" : "type", i);
		else
			snprintf(m, sizeof(m), ",\"k%d\":[%d]", 100 - i, i);
		assert_int_equal(pb__chat_buf_str(&doc, m), 0);
	}
	assert_int_equal(pb__chat_buf_str(&doc, "}]}"), 0);
	want = parse((char *)doc.data, 0, false);
	got = parse((char *)doc.data, 5, true);
	assert_string_equal(got, want);
	free(want);
	free(got);
	pb__chat_buf_clear(&doc);
}

/* JSON string literal of s, a byte at a time (what pb__cj_write_string
 * writes, however it scans). */
static void ref_string(pb_buf_t *out, const unsigned char *s, size_t len)
{
	char e[8];
	size_t i;

	assert_int_equal(pb__chat_buf_add(out, "\"", 1), 0);
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			snprintf(e, sizeof(e), "\\%c", s[i]);
		else if (s[i] == '\n')
			snprintf(e, sizeof(e), "\\n");
		else if (s[i] == '\r')
			snprintf(e, sizeof(e), "\\r");
		else if (s[i] == '\t')
			snprintf(e, sizeof(e), "\\t");
		else if (s[i] == '\b')
			snprintf(e, sizeof(e), "\\b");
		else if (s[i] == '\f')
			snprintf(e, sizeof(e), "\\f");
		else if (s[i] < 0x20)
			snprintf(e, sizeof(e), "\\u%04x", s[i]);
		else
			snprintf(e, sizeof(e), "%c", s[i]);
		assert_int_equal(pb__chat_buf_add(out, e, strlen(e)), 0);
	}
	assert_int_equal(pb__chat_buf_add(out, "\"", 1), 0);
}

/* Telegram's way: each \u00NN of doc written \xNN. */
static void x_escapes(pb_buf_t *doc)
{
	size_t i, o = 0;

	for (i = 0; i < doc->len; i++) {
		if (i + 4 < doc->len && memcmp(doc->data + i, "\\u00", 4) == 0) {
			doc->data[o++] = '\\';
			doc->data[o++] = 'x';
			i += 3;
			continue;
		}
		doc->data[o++] = doc->data[i];
	}
	doc->len = o;
	doc->data[o] = 0;
}

/* A byte to escape (or one next to those) at every place of strings of
 * up to 40 bytes: the writer scans 8 bytes at a time. And the same string
 * through the parser, where the \x filter scans alike. */
static void test_string_escapes_at_every_place(void **state)
{
	static const unsigned char odd[] = {'"', '\\', 0x01, 0x1f, 0x20, 0x7f, 0x80, 0xff, '\n', 0x00};
	unsigned char s[48];
	size_t len, at, k;

	(void)state;
	for (len = 1; len <= 40; len++)
		for (at = 0; at < len; at++)
			for (k = 0; k < sizeof(odd); k++) {
				pb_buf_t got = {0}, want = {0}, doc = {0};
				char *parsed;

				memset(s, 'a' + (int)(len % 26), len);
				s[at] = odd[k];
				if (at + 3 < len)
					s[len - 1] = '"';
				assert_int_equal(pb__cj_write_string(&got, (const char *)s, len), 0);
				ref_string(&want, s, len);
				assert_int_equal(got.len, want.len);
				assert_memory_equal(got.data, want.data, want.len);
				if (odd[k] != 0 && odd[k] < 0x80) {
					/* As a message's text, a control byte written
					 * \xNN as Telegram does. */
					assert_int_equal(pb__chat_buf_str(&doc, "{\"id\":9,\"messages\":[{\"id\":1,\"text\":"), 0);
					assert_int_equal(pb__cj_write_string(&doc, (const char *)s, len), 0);
					assert_int_equal(pb__chat_buf_str(&doc, "}]}"), 0);
					x_escapes(&doc);
					parsed = parse((char *)doc.data, 0, true);
					assert_int_equal(strncmp(parsed + strlen("{\"id\":1,\"text\":"), (char *)want.data,
								 want.len), 0);
					free(parsed);
				}
				pb__chat_buf_clear(&got);
				pb__chat_buf_clear(&want);
				pb__chat_buf_clear(&doc);
			}
}

/* The out-of-order message of docs[1], spelled out. */
static void test_out_of_order_put_in_place(void **state)
{
	char *got;

	(void)state;
	got = parse("{\"id\":9,\"messages\":[{\"zz\":{\"b\":1},\"text\":\"b\",\"q\":2,\"id\":3,\"type\":\"m\"}]}", 0, true);
	assert_string_equal(got, "{\"id\":3,\"type\":\"m\",\"text\":\"b\",\"zz\":{\"b\":1},\"q\":2} id=3\n");
	free(got);
}

/* A message that is not an object fails as it does with trees. */
static void test_bad_message(void **state)
{
	static const char doc[] = "{\"id\":9,\"messages\":[{\"id\":1},2]}";
	pb__chat_tg_sink_t sink = {NULL, NULL, NULL, NULL, false, canon_msg};
	struct collect c = {{0}};
	pb__chat_tg_t *p;
	char err[256];

	(void)state;
	sink.arg = &c;
	assert_int_equal(pb__chat_tg_new(&p, &sink), 0);
	assert_int_equal(pb__chat_tg_feed(p, (const uint8_t *)doc, strlen(doc), err, sizeof(err)), PB_EDATA_FORMAT);
	assert_non_null(strstr(err, "a message is not an object"));
	pb__chat_tg_free(p);
	pb__chat_buf_clear(&c.out);
}

/* A member name with a NUL in it is refused both ways, a pooled name's
 * prefix too. */
static void test_nul_in_member_name(void **state)
{
	static const char *const docs_nul[] = {
		"{\"id\":9,\"messages\":[{\"id\":1,\"id\\u0000\\u0000\":2}]}",
		"{\"id\":9,\"messages\":[{\"id\":1,\"x\":{\"text\\u0000\":2}}]}",
		"{\"id\":9,\"messages\":[{\"\\u0000\":1}]}",
	};
	size_t d;
	int way;

	(void)state;
	for (d = 0; d < sizeof(docs_nul) / sizeof(docs_nul[0]); d++)
		for (way = 0; way < 2; way++) {
			struct collect c = {{0}};
			pb__chat_tg_sink_t sink = {NULL, way ? NULL : tree_msg, NULL, &c, false, way ? canon_msg : NULL};
			pb__chat_tg_t *p;
			char err[256];

			assert_int_equal(pb__chat_tg_new(&p, &sink), 0);
			assert_int_equal(pb__chat_tg_feed(p, (const uint8_t *)docs_nul[d], strlen(docs_nul[d]), err,
							  sizeof(err)),
					 PB_EDATA_FORMAT);
			assert_non_null(strstr(err, "a member name contains a NUL character"));
			pb__chat_tg_free(p);
			pb__chat_buf_clear(&c.out);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canon_is_the_trees),
		cmocka_unit_test(test_many_members),
		cmocka_unit_test(test_string_escapes_at_every_place),
		cmocka_unit_test(test_out_of_order_put_in_place),
		cmocka_unit_test(test_bad_message),
		cmocka_unit_test(test_nul_in_member_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
