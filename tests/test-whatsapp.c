/* Chat history, WhatsApp side: Android and iOS .txt exports (U+200E marks,
 * continuation lines, attachments, system lines, day/month order), the
 * whatsapp export and its round trip, bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "kinds.h"
#include "peerback.h"
#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

/* The device's only chat directory name. */
static char *only_chat(const char *dev)
{
	char *chats = pb_test_join(dev, "chats"), **names = NULL, *r;
	size_t n = 0;

	assert_int_equal(pb__chat_list(chats, true, &names, &n), 0);
	assert_int_equal(n, 1);
	r = strdup(names[0]);
	pb__chat_names_free(names, n);
	free(chats);
	return r;
}

static char *chat_file(const char *dev)
{
	char *id = only_chat(dev), rel[256], *s;

	snprintf(rel, sizeof(rel), "chats/%s/result.json", id);
	s = pb_test_read_at(dev, rel);
	free(id);
	return s;
}

static const char android[] =
	"\xe2\x80\x8e" "13/01/24, 09:15 - Messages and calls are end-to-end encrypted. No one outside of this chat can read them.\n"
	"13/01/24, 09:16 - Maria: Hola! \xc2\xbf" "Qu\xc3\xa9 tal?\n"
	"13/01/24, 09:17 - Tom: Fine, thanks \xf0\x9f\x98\x8a\n"
	"second line of Tom's message\n"
	"\n"
	"third after a blank line\n"
	"13/01/24, 21:40 - Maria: IMG-20240113-WA0007.jpg (file attached)\n"
	"sunset\n"
	"14/01/24, 08:00 - Tom: PTT-20240114-WA0001.opus (file attached)\n"
	"14/01/24, 08:01 - Maria: <Media omitted>\n"
	"14/01/24, 08:02 - Tom changed the group description\n";

static void test_android(void **state)
{
	char *src = pb_test_tmpdir("wa-src"), *dev = pb_test_tmpdir("wa-dev");
	char *f = pb_test_write_at(src, "WhatsApp Chat with Maria.txt", android), *got, *id, rel[256];

	(void)state;
	free(pb_test_write_at(src, "IMG-20240113-WA0007.jpg", "\xff\xd8jpeg"));
	pb_test_import_chat_ok(dev, f);
	got = chat_file(dev);
	assert_non_null(strstr(got, " \"name\": \"Maria\",\n \"type\": \"personal_chat\",\n"));
	assert_non_null(strstr(got, "{\"id\":1,\"type\":\"service\",\"date\":\"2024-01-13T09:15:00\","
				    "\"date_unixtime\":\"1705137300\",\"action\":\"whatsapp_system\","
				    "\"text\":\"Messages and calls are end-to-end encrypted."));
	assert_non_null(strstr(got, "{\"id\":2,\"type\":\"message\",\"date\":\"2024-01-13T09:16:00\","
				    "\"date_unixtime\":\"1705137360\",\"from\":\"Maria\",\"text\":\"Hola! \xc2\xbfQu\xc3\xa9 tal?\","
				    "\"text_entities\":[{\"type\":\"plain\",\"text\":\"Hola!"));
	assert_non_null(strstr(got, "\"from\":\"Tom\",\"text\":\"Fine, thanks \xf0\x9f\x98\x8a\\nsecond line of Tom's "
				    "message\\n\\nthird after a blank line\""));
	assert_non_null(strstr(got, "\"from\":\"Maria\",\"photo\":\"IMG-20240113-WA0007.jpg\",\"text\":\"sunset\""));
	assert_non_null(strstr(got, "\"file\":\"PTT-20240114-WA0001.opus\",\"media_type\":\"voice_message\","
				    "\"mime_type\":\"audio/ogg\",\"text\":\"\",\"text_entities\":[],"
				    "\"whatsapp_attach\":\"PTT-20240114-WA0001.opus (file attached)\"}"));
	/* Media left out of the export is a file not included. */
	assert_non_null(strstr(got, "\"file\":\"" PB__CHAT_FILE_NOT_INCLUDED "\",\"text\":\"\",\"text_entities\":[],"
				    "\"whatsapp_attach\":\"<Media omitted>\"}"));
	/* The file's dialect is kept with the chat. */
	assert_non_null(strstr(got, "\n \"whatsapp_format\": \"DD/MM/YY, HH:mm - \",\n"));
	assert_non_null(strstr(got, "{\"id\":7,\"type\":\"service\",\"date\":\"2024-01-14T08:02:00\","));
	assert_null(strstr(got, "\"id\":8,"));
	id = only_chat(dev);
	snprintf(rel, sizeof(rel), "chats/%s/IMG-20240113-WA0007.jpg", id);
	free(got);
	got = pb_test_read_at(dev, rel);
	assert_string_equal(got, "\xff\xd8jpeg");
	free(got);
	free(id);
	free(f);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

/* iOS, US locale: month first (found from 1/31), 12-hour clock with a
 * narrow no-break space before PM, U+200E before attachments. */
static const char ios[] =
	"[1/30/2024, 11:59:58\xe2\x80\xaf" "PM] Ann: last one of the day\n"
	"[1/31/2024, 12:00:01\xe2\x80\xaf" "AM] Bob: midnight\n"
	"[1/31/2024, 12:30:00 PM] Cleo: \xe2\x80\x8e<attached: 00000042-PHOTO-2024-01-31-12-30-00.jpg>\n"
	"\xe2\x80\x8e[1/31/2024, 1:05:09 PM] Ann: \xe2\x80\x8e" "Cleo joined using this group's invite link\n";

static void test_ios(void **state)
{
	char *src = pb_test_tmpdir("wai-src"), *dev = pb_test_tmpdir("wai-dev");
	char *f = pb_test_write_at(src, "WhatsApp Chat - Trip/_chat.txt", ios), *got;

	(void)state;
	pb_test_import_chat_ok(dev, f);
	got = chat_file(dev);
	assert_non_null(strstr(got, " \"name\": \"Trip\",\n \"type\": \"private_group\",\n"));
	assert_non_null(strstr(got, "\"date\":\"2024-01-30T23:59:58\""));
	assert_non_null(strstr(got, "\"date\":\"2024-01-31T00:00:01\",\"date_unixtime\":\"1706659201\",\"from\":\"Bob\""));
	assert_non_null(strstr(got, "\"from\":\"Cleo\",\"photo\":\"00000042-PHOTO-2024-01-31-12-30-00.jpg\",\"text\":\"\""));
	assert_non_null(strstr(got, "\"date\":\"2024-01-31T13:05:09\""));
	free(got);
	free(f);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

static void test_export_round_trip(void **state)
{
	char *src = pb_test_tmpdir("war-src"), *dev = pb_test_tmpdir("war-dev"), *out = pb_test_tmpdir("war-out");
	char *dev2 = pb_test_tmpdir("war-dev2"), *f, *a, *b, err[256];

	(void)state;
	f = pb_test_write_at(src, "WhatsApp Chat with Maria.txt", android);
	free(pb_test_write_at(src, "IMG-20240113-WA0007.jpg", "\xff\xd8jpeg"));
	pb_test_import_chat_ok(dev, f);
	free(f);
	assert_int_equal(pb__export_chat(dev, "whatsapp", out, err, sizeof(err)), 0);
	a = pb_test_read_at(out, "WhatsApp Chat with Maria.txt");
	assert_non_null(a);
	/* Exported in the dialect it came in: the same bytes. */
	assert_string_equal(a, android);
	free(a);
	a = pb_test_read_at(out, "IMG-20240113-WA0007.jpg");
	assert_string_equal(a, "\xff\xd8jpeg");
	free(a);
	f = pb_test_join(out, "WhatsApp Chat with Maria.txt");
	pb_test_import_chat_ok(dev2, f);
	free(f);
	a = chat_file(dev);
	b = chat_file(dev2);
	assert_string_equal(a, b);
	free(a);
	free(b);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	pb_test_rmtree(dev2);
	pb_test_rmtree(out);
	free(src);
	free(dev);
	free(dev2);
	free(out);
}

static void test_bad_input(void **state)
{
	static const struct {
		const char *text;
		int err;
		const char *words;
	} cases[] = {
		{"hello there\n13/01/24, 09:16 - Maria: x\n", PB_EDATA_FORMAT, "line 1: not a WhatsApp chat line"},
		{"just some notes\n", PB_EDATA_FORMAT, "line 1"},
		{"13/13/24, 09:16 - Maria: x\n13/01/24, 25:16 - Maria: y\n", PB_EDATA_FORMAT, "line 1"},
		{"13/01/24, 09:16 - Maria: x\n14/01/24, 09:16 - Maria: <attached: ../../x.jpg>\n", PB_EDATA_FIELD,
		 "line 2: attachment name"},
	};
	char *src = pb_test_tmpdir("wab-src"), *dev = pb_test_tmpdir("wab-dev"), *good, *bad, *before, *after;
	const char *files[2];
	char err[512];
	size_t i;
	int rc;

	(void)state;
	good = pb_test_write_at(src, "WhatsApp Chat with Maria.txt", android);
	pb_test_import_chat_ok(dev, good);
	before = chat_file(dev);
	for (i = 0; i <= sizeof(cases) / sizeof(cases[0]); i++) {
		if (i < sizeof(cases) / sizeof(cases[0])) {
			bad = pb_test_write_at(src, "WhatsApp Chat with Bad.txt", cases[i].text);
		} else {
			size_t n = 3u << 20;
			char *big = malloc(n + 1);

			memset(big, 'x', n);
			memcpy(big, "13/01/24, 09:16 - Maria: ", 25);
			big[n] = 0;
			bad = pb_test_write_at(src, "WhatsApp Chat with Bad.txt", big);
			free(big);
		}
		files[0] = good;
		files[1] = bad;
		err[0] = 0;
		rc = pb__import_chat(dev, files, 2, err, sizeof(err));
		if (i < sizeof(cases) / sizeof(cases[0])) {
			if (rc != cases[i].err || strstr(err, cases[i].words) == NULL || strstr(err, "Bad.txt") == NULL)
				fail_msg("case %zu: got %d \"%s\"", i, rc, err);
		} else if (rc != PB_ETOOBIG || strstr(err, "line 1: line longer than 1 MiB") == NULL) {
			fail_msg("long line: got %d \"%s\"", rc, err);
		}
		after = chat_file(dev); /* still exactly one chat, unchanged */
		assert_string_equal(before, after);
		free(after);
		free(bad);
	}
	/* The same chat twice in one import is refused too. */
	files[0] = good;
	files[1] = good;
	rc = pb__import_chat(dev, files, 2, err, sizeof(err));
	assert_int_equal(rc, PB_EEXISTS);
	assert_non_null(strstr(err, "imported twice"));
	after = chat_file(dev);
	assert_string_equal(before, after);
	free(after);
	free(before);
	free(good);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_android),
		cmocka_unit_test(test_ios),
		cmocka_unit_test(test_export_round_trip),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
