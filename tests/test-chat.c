/* Chat history, Telegram side: import of full and single-chat result.json
 * exports (text arrays, entities, service messages, attachments, the \xNN
 * escape), the canonical file and its codec, the export, bad input, and the
 * generator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "kinds.h"
#include "peerback.h"
#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

/* Writes dir/rel, its parents made. */
static void write_at(const char *dir, const char *rel, const char *text)
{
	free(pb_test_write_at(dir, rel, text));
}

static bool exists_at(const char *dir, const char *rel)
{
	char *p = pb_test_join(dir, rel);
	struct stat st;
	bool ok = stat(p, &st) == 0;

	free(p);
	return ok;
}

/* Number of entries in a directory, hidden ones included. */
static size_t count_entries(const char *dir)
{
	char cmd[4200];
	FILE *f;
	size_t n = 0;
	char line[4096];

	snprintf(cmd, sizeof(cmd), "find '%s' -mindepth 1 | sort", dir);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		n++;
	pclose(f);
	return n;
}

/* A single-chat export as Telegram Desktop writes it. */
static const char single_chat[] =
	"{\n"
	" \"name\": \"Alice\",\n"
	" \"type\": \"personal_chat\",\n"
	" \"id\": 4242,\n"
	" \"messages\": [\n"
	"  {\n"
	"   \"id\": 1,\n"
	"   \"type\": \"service\",\n"
	"   \"date\": \"2024-01-31T14:05:00\",\n"
	"   \"date_unixtime\": \"1706709900\",\n"
	"   \"actor\": \"Alice\",\n"
	"   \"actor_id\": \"user77\",\n"
	"   \"action\": \"phone_call\",\n"
	"   \"duration_seconds\": 61,\n"
	"   \"text\": \"\",\n"
	"   \"text_entities\": []\n"
	"  },\n"
	"  {\n"
	"   \"id\": 2,\n"
	"   \"type\": \"message\",\n"
	"   \"date\": \"2024-01-31T14:06:10\",\n"
	"   \"date_unixtime\": \"1706709970\",\n"
	"   \"edited\": \"2024-01-31T14:07:00\",\n"
	"   \"from\": \"Alice\",\n"
	"   \"from_id\": \"user77\",\n"
	"   \"text\": [\"Hi \", {\"type\": \"bold\", \"text\": \"Bob\"}, \" see \", "
	"{\"type\": \"link\", \"text\": \"https://x.org\"}, \" \\u2014 \xf0\x9f\x98\x80\"],\n"
	"   \"text_entities\": [{\"type\": \"plain\", \"text\": \"Hi \"}, {\"type\": \"bold\", \"text\": \"Bob\"}]\n"
	"  },\n"
	"  {\n"
	"   \"id\": 5,\n"
	"   \"type\": \"message\",\n"
	"   \"date\": \"2024-01-31T14:08:00\",\n"
	"   \"date_unixtime\": \"1706710080\",\n"
	"   \"from\": \"Bob\",\n"
	"   \"from_id\": \"user88\",\n"
	"   \"reply_to_message_id\": 2,\n"
	"   \"photo\": \"photos/photo_1@31-01-2024_14-08-00.jpg\",\n"
	"   \"width\": 1280,\n"
	"   \"height\": 960,\n"
	"   \"text\": \"tab\\x09bell\\x07\",\n"
	"   \"x_custom\": {\"kept\": [1, 2.5e3, null, true]}\n"
	"  },\n"
	"  {\n"
	"   \"id\": 6,\n"
	"   \"type\": \"message\",\n"
	"   \"date\": \"2024-01-31T14:09:00\",\n"
	"   \"date_unixtime\": \"1706710140\",\n"
	"   \"from\": \"Bob\",\n"
	"   \"from_id\": \"user88\",\n"
	"   \"file\": \"(File not included. Change data exporting settings to download.)\",\n"
	"   \"media_type\": \"video_file\",\n"
	"   \"mime_type\": \"video/mp4\",\n"
	"   \"text\": \"\"\n"
	"  }\n"
	" ]\n"
	"}\n";

static const char single_canonical[] =
	"{\n"
	" \"name\": \"Alice\",\n"
	" \"type\": \"personal_chat\",\n"
	" \"id\": 4242,\n"
	" \"messages\": [\n"
	"  {\"id\":1,\"type\":\"service\",\"date\":\"2024-01-31T14:05:00\",\"date_unixtime\":\"1706709900\","
	"\"actor\":\"Alice\",\"actor_id\":\"user77\",\"action\":\"phone_call\",\"duration_seconds\":61,"
	"\"text\":\"\",\"text_entities\":[]},\n"
	"  {\"id\":2,\"type\":\"message\",\"date\":\"2024-01-31T14:06:10\",\"date_unixtime\":\"1706709970\","
	"\"edited\":\"2024-01-31T14:07:00\",\"from\":\"Alice\",\"from_id\":\"user77\","
	"\"text\":[\"Hi \",{\"type\":\"bold\",\"text\":\"Bob\"},\" see \",{\"type\":\"link\",\"text\":\"https://x.org\"},"
	"\" \xe2\x80\x94 \xf0\x9f\x98\x80\"],"
	"\"text_entities\":[{\"type\":\"plain\",\"text\":\"Hi \"},{\"type\":\"bold\",\"text\":\"Bob\"}]},\n"
	"  {\"id\":5,\"type\":\"message\",\"date\":\"2024-01-31T14:08:00\",\"date_unixtime\":\"1706710080\","
	"\"from\":\"Bob\",\"from_id\":\"user88\",\"reply_to_message_id\":2,"
	"\"photo\":\"photos/photo_1@31-01-2024_14-08-00.jpg\",\"width\":1280,\"height\":960,"
	"\"text\":\"tab\\tbell\\u0007\",\"x_custom\":{\"kept\":[1,2.5e3,null,true]}},\n"
	"  {\"id\":6,\"type\":\"message\",\"date\":\"2024-01-31T14:09:00\",\"date_unixtime\":\"1706710140\","
	"\"from\":\"Bob\",\"from_id\":\"user88\","
	"\"file\":\"(File not included. Change data exporting settings to download.)\","
	"\"media_type\":\"video_file\",\"mime_type\":\"video/mp4\",\"text\":\"\"}\n"
	" ]\n"
	"}\n";

static const char photo_bytes[] = "\xff\xd8\xff\xe0JFIF-not-really-a-photo";

static char *make_single_export(void)
{
	char *src = pb_test_tmpdir("tg-src");

	write_at(src, "result.json", single_chat);
	write_at(src, "photos/photo_1@31-01-2024_14-08-00.jpg", photo_bytes);
	return src;
}

static void test_single_chat_import(void **state)
{
	char *src = make_single_export(), *dev = pb_test_tmpdir("tg-dev");
	char *file = pb_test_join(src, "result.json"), *got;

	(void)state;
	pb_test_import_chat_ok(dev, file);
	got = pb_test_read_at(dev, "chats/4242/result.json");
	assert_non_null(got);
	assert_string_equal(got, single_canonical);
	free(got);
	got = pb_test_read_at(dev, "chats/4242/photos/photo_1@31-01-2024_14-08-00.jpg");
	assert_non_null(got);
	assert_string_equal(got, photo_bytes);
	free(got);
	/* The stage is gone. */
	assert_int_equal(count_entries(dev), 5); /* chats, 4242, result.json, photos, photo */
	/* Importing the canonical file again changes nothing. */
	free(file);
	file = pb_test_join(dev, "chats/4242/result.json");
	pb_test_import_chat_ok(dev, file);
	got = pb_test_read_at(dev, "chats/4242/result.json");
	assert_string_equal(got, single_canonical);
	free(got);
	free(file);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

static const char full_export[] =
	"{\n"
	" \"about\": \"Here is the data you requested.\",\n"
	" \"personal_information\": {\"user_id\": 1, \"first_name\": \"Me\"},\n"
	" \"chats\": {\n"
	"  \"about\": \"This page lists all chats from this export.\",\n"
	"  \"list\": [\n"
	"   {\"name\": \"Team\", \"type\": \"private_group\", \"id\": 100, \"messages\": [\n"
	"     {\"id\": 10, \"type\": \"service\", \"date\": \"2023-05-01T09:00:00\", \"date_unixtime\": \"1682931600\","
	" \"actor\": \"Me\", \"actor_id\": \"user1\", \"action\": \"create_group\", \"title\": \"Team\","
	" \"members\": [\"Me\", \"Ann\"], \"text\": \"\", \"text_entities\": []},\n"
	"     {\"id\": 11, \"type\": \"message\", \"date\": \"2023-05-01T09:01:00\", \"date_unixtime\": \"1682931660\","
	" \"from\": \"Ann\", \"from_id\": \"user2\", \"file\": \"chats/chat_01/files/plan.pdf\","
	" \"text\": \"Plan attached\"}\n"
	"   ]},\n"
	"   {\"name\": \"Saved Messages\", \"type\": \"saved_messages\", \"id\": 1, \"messages\": []}\n"
	"  ]\n"
	" },\n"
	" \"left_chats\": {\"about\": \"\", \"list\": [\n"
	"   {\"messages\": [{\"id\": 1, \"type\": \"message\", \"date\": \"2020-01-01T00:00:00\", \"text\": \"old\"}],"
	" \"name\": \"Old\", \"type\": \"public_supergroup\", \"id\": 555}\n"
	" ]},\n"
	" \"other_data\": {\"x\": 1}\n"
	"}\n";

static void test_full_export_import(void **state)
{
	char *src = pb_test_tmpdir("tg-full"), *dev = pb_test_tmpdir("tg-dev");
	char *file, *got;

	(void)state;
	write_at(src, "result.json", full_export);
	write_at(src, "chats/chat_01/files/plan.pdf", "%PDF-1.4 plan");
	file = pb_test_join(src, "result.json");
	pb_test_import_chat_ok(dev, file);
	got = pb_test_read_at(dev, "chats/100/result.json");
	assert_non_null(got);
	assert_non_null(strstr(got, " \"name\": \"Team\",\n \"type\": \"private_group\",\n \"id\": 100,\n"));
	assert_non_null(strstr(got, "\"members\":[\"Me\",\"Ann\"]"));
	assert_null(strstr(got, "personal_information"));
	free(got);
	got = pb_test_read_at(dev, "chats/100/chats/chat_01/files/plan.pdf");
	assert_string_equal(got, "%PDF-1.4 plan");
	free(got);
	got = pb_test_read_at(dev, "chats/1/result.json");
	assert_string_equal(got, "{\n \"name\": \"Saved Messages\",\n \"type\": \"saved_messages\",\n \"id\": 1,\n"
				 " \"messages\": [\n ]\n}\n");
	free(got);
	/* Fields after "messages" still land in the head. */
	got = pb_test_read_at(dev, "chats/555/result.json");
	assert_string_equal(got, "{\n \"name\": \"Old\",\n \"type\": \"public_supergroup\",\n \"id\": 555,\n"
				 " \"messages\": [\n  {\"id\":1,\"type\":\"message\",\"date\":\"2020-01-01T00:00:00\","
				 "\"text\":\"old\"}\n ]\n}\n");
	free(got);
	free(file);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

/* The \xNN rewrite must hold whatever the read boundaries are. */
struct collect {
	pb_buf_t out;
};

static int collect_msg(void *arg, pb__chat_tg_chat_t *chat, pb__cj_t *msg)
{
	struct collect *c = arg;

	(void)chat;
	assert_int_equal(pb__cj_write(&c->out, msg, PB__CJ_ORDER_MESSAGE), 0);
	assert_int_equal(pb__chat_buf_add(&c->out, "\n", 1), 0);
	pb__cj_free(msg);
	return 0;
}

static void test_x_escape_across_boundaries(void **state)
{
	static const char doc[] = "{\"id\":7,\"name\":\"q\\\"\\x0b\",\"messages\":[{\"id\":1,\"text\":\"a\\x1fb\\\\x41"
				  "\\x7f\\\"\\x00\"}]}";
	static const char want[] = "{\"id\":1,\"text\":\"a\\u001fb\\\\x41\x7f\\\"\\u0000\"}\n";
	size_t len = strlen(doc), cut, cut2;

	(void)state;
	for (cut = 0; cut <= len; cut++) {
		for (cut2 = cut; cut2 <= len; cut2 += 3) {
			struct collect c = {{0}};
			pb__chat_tg_sink_t sink = {NULL, collect_msg, NULL, &c, false, NULL};
			pb__chat_tg_t *p;
			char err[256];

			assert_int_equal(pb__chat_tg_new(&p, &sink), 0);
			assert_int_equal(pb__chat_tg_feed(p, (const uint8_t *)doc, cut, err, sizeof(err)), 0);
			assert_int_equal(pb__chat_tg_feed(p, (const uint8_t *)doc + cut, cut2 - cut, err, sizeof(err)), 0);
			assert_int_equal(pb__chat_tg_feed(p, (const uint8_t *)doc + cut2, len - cut2, err, sizeof(err)), 0);
			assert_int_equal(pb__chat_tg_finish(p, err, sizeof(err)), 0);
			pb__chat_tg_free(p);
			assert_non_null(c.out.data);
			assert_string_equal((char *)c.out.data, want);
			pb__chat_buf_clear(&c.out);
		}
	}
}

/* The same through a file: each escape straddles the 64 KiB read boundary. */
static void test_x_escape_at_read_boundary(void **state)
{
	static const char head[] = "{\"name\":\"B\",\"type\":\"personal_chat\",\"id\":9,\"messages\":[{\"id\":1,\"text\":\"";
	char *src = pb_test_tmpdir("tg-edge"), *dev, *file, *got, *want;
	size_t block = 65536, cut, pad, len;
	pb_buf_t doc = {0};

	(void)state;
	for (cut = 0; cut < 4; cut++) {
		/* The backslash lands at block - 1 - cut ... */
		doc.len = 0;
		pad = block - 1 - cut - (sizeof(head) - 1);
		assert_int_equal(pb__chat_buf_add(&doc, head, sizeof(head) - 1), 0);
		for (len = 0; len < pad; len++)
			assert_int_equal(pb__chat_buf_add(&doc, "a", 1), 0);
		assert_int_equal(pb__chat_buf_str(&doc, "\\x1b[0m\"}]}"), 0);
		assert_int_equal(doc.data[block - 1 - cut], '\\');
		file = pb_test_join(src, "result.json");
		assert_int_equal(pb_test_write_file(file, doc.data, doc.len), 0);
		dev = pb_test_tmpdir("tg-edge-dev");
		pb_test_import_chat_ok(dev, file);
		got = pb_test_read_at(dev, "chats/9/result.json");
		want = malloc(pad + 64);
		memset(want, 'a', pad);
		memcpy(want + pad, "\\u001b[0m\"}", 12);
		want[pad + 12] = 0;
		assert_non_null(strstr(got, want));
		free(want);
		free(got);
		free(file);
		pb_test_rmtree(dev);
		free(dev);
	}
	pb__chat_buf_clear(&doc);
	pb_test_rmtree(src);
	free(src);
}

struct items {
	size_t n;
	pb_item_t it[16];
	char ids[16][PB_ITEM_ID_MAX];
	uint8_t *data[16];
};

static int keep_item(void *arg, const pb_item_t *item)
{
	struct items *v = arg;

	assert_true(v->n < 16);
	v->it[v->n] = *item;
	snprintf(v->ids[v->n], PB_ITEM_ID_MAX, "%s", item->id);
	v->it[v->n].id = v->ids[v->n];
	v->data[v->n] = malloc(item->len);
	memcpy(v->data[v->n], item->data, item->len);
	v->it[v->n].data = v->data[v->n];
	v->n++;
	return 0;
}

static void items_free(struct items *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		free(v->data[i]);
}

static void test_codec_round_trip(void **state)
{
	const pb_codec_t *c = &pb__codec_telegram;
	struct items v;
	pb_buf_t out = {0};
	pb_item_t two[2];

	(void)state;
	memset(&v, 0, sizeof(v));
	assert_true(c->matches("chats/4242/result.json"));
	assert_false(c->matches("chats/4242/photos/result.json"));
	assert_false(c->matches("chats//result.json"));
	assert_false(c->matches("contacts/contacts.vcf"));
	assert_int_equal(c->split("chats/4242/result.json", (const uint8_t *)single_canonical,
				  strlen(single_canonical), keep_item, &v),
			 0);
	assert_int_equal(v.n, 5);
	assert_string_equal(v.it[0].id, "chat/4242");
	assert_int_equal(v.it[0].seq, 0);
	assert_int_equal(v.it[0].kind, PB_KIND_CHAT);
	assert_memory_equal(v.it[0].data, "{\"name\":\"Alice\",\"type\":\"personal_chat\",\"id\":4242}", v.it[0].len);
	assert_string_equal(v.it[3].id, "chat/4242/msg/5");
	assert_int_equal(v.it[3].seq, 3);
	assert_string_equal(v.it[3].path, "chats/4242/result.json");
	assert_int_equal(c->join("chats/4242/result.json", v.it, v.n, &out), 0);
	assert_int_equal(out.len, strlen(single_canonical));
	assert_memory_equal(out.data, single_canonical, out.len);
	pb__chat_buf_clear(&out);
	/* A frame and one message make a valid chat file too. */
	two[0] = v.it[0];
	two[1] = v.it[2];
	assert_int_equal(c->join("chats/4242/result.json", two, 2, &out), 0);
	assert_non_null(strstr((char *)out.data, "\"id\":2,"));
	assert_null(strstr((char *)out.data, "\"id\":5,"));
	pb__chat_buf_clear(&out);
	/* Messages without their frame cannot be joined. */
	assert_int_equal(c->join("chats/4242/result.json", v.it + 1, 2, &out), PB_EDATA_FORMAT);
	pb__chat_buf_clear(&out);
	items_free(&v);
	/* A full export is not a device file. */
	memset(&v, 0, sizeof(v));
	assert_true(c->split("chats/1/result.json", (const uint8_t *)full_export, strlen(full_export), keep_item,
			     &v) < 0);
	items_free(&v);
}

static void test_export_round_trip(void **state)
{
	char *src = make_single_export(), *dev = pb_test_tmpdir("tg-dev"), *out = pb_test_tmpdir("tg-out");
	char *dev2 = pb_test_tmpdir("tg-dev2"), *out2 = pb_test_tmpdir("tg-out2"), *dev3 = pb_test_tmpdir("tg-dev3");
	char *file, *a, *b, err[512];

	(void)state;
	file = pb_test_join(src, "result.json");
	pb_test_import_chat_ok(dev, file);
	free(file);
	/* One chat: a single-chat export with its photo beside it. */
	assert_int_equal(pb__export_chat(dev, "telegram", out, err, sizeof(err)), 0);
	a = pb_test_read_at(out, "result.json");
	assert_string_equal(a, single_canonical);
	free(a);
	assert_true(exists_at(out, "photos/photo_1@31-01-2024_14-08-00.jpg"));
	file = pb_test_join(out, "result.json");
	pb_test_import_chat_ok(dev2, file);
	free(file);
	a = pb_test_read_at(dev, "chats/4242/result.json");
	b = pb_test_read_at(dev2, "chats/4242/result.json");
	assert_string_equal(a, b);
	free(a);
	free(b);
	/* Several chats: a full export; attachments kept apart per chat. */
	write_at(src, "second/result.json",
		 "{\"name\":\"Carol\",\"type\":\"personal_chat\",\"id\":77,\"messages\":[{\"id\":3,\"type\":\"message\","
		 "\"date\":\"2024-02-01T10:00:00\",\"from\":\"Carol\",\"photo\":\"photos/photo_1@31-01-2024_14-08-00.jpg\","
		 "\"text\":\"same name, other photo\"}]}");
	write_at(src, "second/photos/photo_1@31-01-2024_14-08-00.jpg", "carol's photo");
	file = pb_test_join(src, "second/result.json");
	pb_test_import_chat_ok(dev, file);
	free(file);
	assert_int_equal(pb__export_chat(dev, "telegram", out2, err, sizeof(err)), 0);
	a = pb_test_read_at(out2, "chats/chat_77/photos/photo_1@31-01-2024_14-08-00.jpg");
	assert_string_equal(a, "carol's photo");
	free(a);
	a = pb_test_read_at(out2, "chats/chat_4242/photos/photo_1@31-01-2024_14-08-00.jpg");
	assert_string_equal(a, photo_bytes);
	free(a);
	file = pb_test_join(out2, "result.json");
	pb_test_import_chat_ok(dev3, file);
	free(file);
	a = pb_test_read_at(dev3, "chats/77/chats/chat_77/photos/photo_1@31-01-2024_14-08-00.jpg");
	assert_string_equal(a, "carol's photo");
	free(a);
	a = pb_test_read_at(dev3, "chats/4242/result.json");
	assert_non_null(strstr(a, "\"photo\":\"chats/chat_4242/photos/photo_1@31-01-2024_14-08-00.jpg\""));
	free(a);
	/* Exporting that device again gives the same full export. */
	{
		char *out3 = pb_test_tmpdir("tg-out3");

		assert_int_equal(pb__export_chat(dev3, "telegram", out3, err, sizeof(err)), 0);
		a = pb_test_read_at(out2, "result.json");
		b = pb_test_read_at(out3, "result.json");
		assert_string_equal(a, b);
		free(a);
		free(b);
		pb_test_rmtree(out3);
		free(out3);
	}
	assert_int_equal(pb__export_chat(dev, "pdf", out, err, sizeof(err)), PB_EUNSUPPORTED);
	assert_non_null(strstr(err, "pdf"));
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	pb_test_rmtree(dev2);
	pb_test_rmtree(dev3);
	pb_test_rmtree(out);
	pb_test_rmtree(out2);
	free(src);
	free(dev);
	free(dev2);
	free(dev3);
	free(out);
	free(out2);
}

struct bad_case {
	const char *doc;
	int err;
	const char *words;
};

static void test_bad_input_leaves_device_unchanged(void **state)
{
	static const struct bad_case cases[] = {
		{"{\"name\":\"A\",\"id\":5,\"messages\":[{\"id\":1,\"text\":\"x\"}", PB_ETRUNCATED, "ends too early"},
		{"{\"name\":\"A\",\"id\":5,\"messages\":[{\"id\":1,\"text\":\"x\"},]}", PB_EMALFORMED, "malformed JSON"},
		{"{\"name\":\"A\",\"id\":5,\"messages\":[{\"id\":1,\"text\":\"\\xZZ\"}]}", PB_EMALFORMED, "byte"},
		{"{\"name\":\"A\",\"id\":5,\"messages\":[17]}", PB_EDATA_FORMAT, "not an object"},
		{"{\"name\":\"A\",\"id\":5,\"messages\":{}}", PB_EDATA_FORMAT, "not an array"},
		{"{\"name\":\"A\",\"messages\":[]}", PB_EDATA_FIELD, "integer \"id\""},
		{"{\"name\":\"A\",\"id\":\"5/../x\",\"messages\":[]}", PB_EDATA_FIELD, "integer \"id\""},
		{"{\"name\":\"A\",\"id\":5,\"messages\":[{\"text\":\"no id\"}]}", PB_EDATA_FIELD, "no integer"},
		{"{\"name\":\"A\",\"id\":5,\"messages\":[{\"id\":2},{\"id\":2}]}", PB_EDATA_FIELD, "does not follow"},
		{"{\"name\":\"A\",\"id\":5,\"messages\":[{\"id\":1,\"photo\":\"../../etc/passwd\"}]}", PB_EDATA_FIELD,
		 "safe relative path"},
		{"{\"name\":\"A\",\"id\":5,\"messages\":[{\"id\":1,\"file\":\"/etc/passwd\"}]}", PB_EDATA_FIELD,
		 "safe relative path"},
		{"{\"about\":\"x\"}", PB_EDATA_FORMAT, "neither"},
		{"[1,2]", PB_EDATA_FORMAT, "not a JSON object"},
		{"", PB_ETRUNCATED, "ends too early"},
		{"{\"chats\":{\"list\":[{\"id\":9,\"messages\":[]},{\"id\":9,\"messages\":[]}]}}", PB_EEXISTS,
		 "twice"},
	};
	char *dev = pb_test_tmpdir("tg-bad"), *src = pb_test_tmpdir("tg-badsrc");
	char *good = pb_test_join(src, "good.json"), *bad = pb_test_join(src, "bad.json"), *before, *after;
	const char *files[2];
	char err[512];
	size_t i;
	int rc;

	(void)state;
	write_at(src, "good.json", single_chat);
	write_at(src, "photos/photo_1@31-01-2024_14-08-00.jpg", photo_bytes);
	pb_test_import_chat_ok(dev, good);
	before = pb_test_read_at(dev, "chats/4242/result.json");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_at(src, "bad.json", cases[i].doc);
		/* A good file before the bad one is not imported either. */
		files[0] = good;
		files[1] = bad;
		err[0] = 0;
		rc = pb__import_chat(dev, files, 2, err, sizeof(err));
		if (rc != cases[i].err || strstr(err, cases[i].words) == NULL || strstr(err, "bad.json") == NULL)
			fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rc, err, cases[i].err, cases[i].words);
		assert_int_equal(count_entries(dev), 5);
		after = pb_test_read_at(dev, "chats/4242/result.json");
		assert_string_equal(before, after);
		free(after);
	}
	/* A 17 MiB string is refused before the parser buffers it. */
	{
		static const char pre[] = "{\"id\":5,\"messages\":[{\"id\":1,\"text\":\"";
		size_t n = 17u << 20;
		char *big = malloc(n + 64);

		memcpy(big, pre, sizeof(pre) - 1);
		memset(big + sizeof(pre) - 1, 'z', n);
		memcpy(big + sizeof(pre) - 1 + n, "\"}]}", 5);
		free(pb_test_write_at(src, "bad.json", big));
		free(big);
		files[0] = good;
		files[1] = bad;
		rc = pb__import_chat(dev, files, 2, err, sizeof(err));
		if (rc != PB_ETOOBIG || strstr(err, "longer than 16 MiB") == NULL)
			fail_msg("17 MiB string: got %d \"%s\"", rc, err);
		assert_int_equal(count_entries(dev), 5);
	}
	/* The same chat in two files of one import. */
	files[0] = good;
	files[1] = good;
	assert_int_equal(pb__import_chat(dev, files, 2, err, sizeof(err)), PB_EEXISTS);
	assert_non_null(strstr(err, "chat 4242 appears twice"));
	assert_int_equal(count_entries(dev), 5);
	free(before);
	free(good);
	free(bad);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

static int count_only(void *arg, const pb_item_t *item)
{
	(*(size_t *)arg)++;
	assert_int_equal(item->kind, PB_KIND_CHAT);
	return 0;
}

struct join_check {
	pb_item_t *it;
	uint8_t **data;
	char **ids;
	size_t n, cap;
};

static int collect_item(void *arg, const pb_item_t *item)
{
	struct join_check *j = arg;

	if (j->n == j->cap) {
		j->cap = j->cap ? j->cap * 2 : 64;
		j->it = realloc(j->it, j->cap * sizeof(*j->it));
		j->data = realloc(j->data, j->cap * sizeof(*j->data));
		j->ids = realloc(j->ids, j->cap * sizeof(*j->ids));
	}
	j->it[j->n] = *item;
	j->data[j->n] = malloc(item->len ? item->len : 1);
	memcpy(j->data[j->n], item->data, item->len);
	j->ids[j->n] = strdup(item->id);
	j->it[j->n].data = j->data[j->n];
	j->it[j->n].id = j->ids[j->n];
	j->n++;
	return 0;
}

/* Every generated chat file is canonical: join(split(f)) == f. Returns the
 * number of messages. */
static size_t check_generated(const char *dev, uint64_t *bytes)
{
	char *chats = pb_test_join(dev, "chats"), **names = NULL, rel[256], cmd[4300];
	size_t n = 0, i, k, messages = 0;
	FILE *f;

	assert_int_equal(pb__chat_list(chats, true, &names, &n), 0);
	assert_true(n >= 10);
	for (i = 0; i < n; i++) {
		struct join_check j = {0};
		pb_buf_t out = {0};
		char *file;
		size_t len, cnt = 0;

		snprintf(rel, sizeof(rel), "chats/%s/result.json", names[i]);
		file = pb_test_read_at(dev, rel);
		assert_non_null(file);
		len = strlen(file);
		assert_int_equal(pb__codec_telegram.split(rel, (uint8_t *)file, len, collect_item, &j), 0);
		assert_int_equal(pb__codec_telegram.join(rel, j.it, j.n, &out), 0);
		assert_int_equal(out.len, len);
		assert_memory_equal(out.data, file, len);
		assert_int_equal(pb__codec_telegram.split(rel, (uint8_t *)file, len, count_only, &cnt), 0);
		assert_int_equal(cnt, j.n);
		messages += j.n - 1;
		for (k = 0; k < j.n; k++) {
			free(j.data[k]);
			free(j.ids[k]);
		}
		free(j.it);
		free(j.data);
		free(j.ids);
		pb__chat_buf_clear(&out);
		free(file);
	}
	pb__chat_names_free(names, n);
	free(chats);
	snprintf(cmd, sizeof(cmd), "du -sb '%s'", dev);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%lu", (unsigned long *)bytes), 1);
	pclose(f);
	return messages;
}

static bool same_tree(const char *a, const char *b)
{
	char cmd[8400];

	snprintf(cmd, sizeof(cmd), "diff -r -q '%s' '%s' >/dev/null", a, b);
	return system(cmd) == 0;
}

static void test_generator(void **state)
{
	char *a = pb_test_tmpdir("gen-a"), *b = pb_test_tmpdir("gen-b"), *c = pb_test_tmpdir("gen-c");
	char *out = pb_test_tmpdir("gen-out"), *dev2 = pb_test_tmpdir("gen-dev2"), *file, err[512];
	uint64_t bytes = 0;
	size_t messages;

	(void)state;
	assert_int_equal(pb__gen_chat(a, 7, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_chat(b, 7, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_chat(c, 8, PB_GEN_SMALL), 0);
	assert_true(same_tree(a, b));
	assert_false(same_tree(a, c));
	messages = check_generated(a, &bytes);
	assert_true(messages >= 500);
	/* "small" is about 20 MB. */
	assert_true(bytes > (12u << 20) && bytes < (40u << 20));
	/* A generated device exports as a full Telegram export that imports
	 * back to the same chats and attachments. */
	assert_int_equal(pb__export_chat(a, "telegram", out, err, sizeof(err)), 0);
	file = pb_test_join(out, "result.json");
	pb_test_import_chat_ok(dev2, file);
	free(file);
	{
		char **names = NULL, *ca = pb_test_join(a, "chats");
		size_t n = 0, i;
		char rel[256], *x, *y;

		assert_int_equal(pb__chat_list(ca, true, &names, &n), 0);
		for (i = 0; i < n; i++) {
			snprintf(rel, sizeof(rel), "chats/%s/result.json", names[i]);
			x = pb_test_read_at(a, rel);
			y = pb_test_read_at(dev2, rel);
			assert_non_null(y);
			/* Paths gained the chats/chat_<id>/ prefix, nothing else. */
			assert_true(strlen(y) >= strlen(x));
			assert_memory_equal(x, y, strstr(x, "\n \"messages\"") - x);
			free(x);
			free(y);
		}
		pb__chat_names_free(names, n);
		free(ca);
	}
	pb_test_rmtree(a);
	pb_test_rmtree(b);
	pb_test_rmtree(c);
	pb_test_rmtree(out);
	pb_test_rmtree(dev2);
	free(a);
	free(b);
	free(c);
	free(out);
	free(dev2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_chat_import),
		cmocka_unit_test(test_full_export_import),
		cmocka_unit_test(test_x_escape_across_boundaries),
		cmocka_unit_test(test_x_escape_at_read_boundary),
		cmocka_unit_test(test_codec_round_trip),
		cmocka_unit_test(test_export_round_trip),
		cmocka_unit_test(test_bad_input_leaves_device_unchanged),
		cmocka_unit_test(test_generator),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
