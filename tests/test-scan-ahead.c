/* The device walk tells its hasher's ahead of the next file it will hand
 * over as a file item, past the chats it parses itself between (up to 16
 * files on), so that the backup's reader reads a chat's attachment while
 * the walk parses the chats before it: before the first of those chats is
 * parsed, with now set; then behind each file item, the next one. A file
 * further on than that is told once the walk is within 16 files of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kinds-util.h"
#include "peerback/error.h"
#include "peerback/kinds.h"
#include "agent/kinds/internal.h"

#define EVENTS 256

typedef struct log_s {
	char ev[EVENTS][160]; /* "ahead REL now|behind", "item ID" */
	size_t n;
} log_t;

static log_t lg;

static void note(const char *what, const char *a, const char *b)
{
	assert_true(lg.n < EVENTS);
	snprintf(lg.ev[lg.n++], sizeof(lg.ev[0]), "%s %s%s%s", what, a, *b ? " " : "", b);
}

static void plain_hash(void *arg, const uint8_t *data, size_t len, uint8_t out[32])
{
	(void)arg;
	crypto_generichash(out, 32, data, len, NULL, 0);
}

static void ahead(void *arg, const char *abs, const char *rel, bool now)
{
	(void)arg;
	assert_non_null(strstr(abs, rel));
	note("ahead", rel, now ? "now" : "behind");
}

static int item(void *arg, const pb_item_t *it)
{
	(void)arg;
	/* A chat's messages are one event: its frame item. */
	if (it->seq == 0)
		note("item", it->id, "");
	return 0;
}

static const pb__item_hasher_t hasher = {plain_hash, NULL, NULL, NULL, NULL, ahead, NULL};

static void write_chat(const char *dev, const char *id)
{
	char rel[256], text[512];

	snprintf(rel, sizeof(rel), "chats/%s", id);
	kt_mkdir(kt_path(dev, rel));
	snprintf(rel, sizeof(rel), "chats/%s/result.json", id);
	snprintf(text, sizeof(text),
		 "{\"name\":\"C%s\",\"type\":\"personal_chat\",\"id\":%s,\"messages\":["
		 "{\"id\":1,\"type\":\"message\",\"date\":\"2024-01-31T14:06:10\",\"date_unixtime\":\"1706709970\","
		 "\"from\":\"A\",\"from_id\":\"user1\",\"text\":\"hi\",\"text_entities\":[]}]}\n",
		 id, id);
	kt_write(kt_path(dev, rel), text);
}

/* The index of the first event equal to want, or -1. */
static int find(const char *want)
{
	for (size_t i = 0; i < lg.n; i++)
		if (strcmp(lg.ev[i], want) == 0)
			return (int)i;
	return -1;
}

static size_t count(const char *want)
{
	size_t c = 0;

	for (size_t i = 0; i < lg.n; i++)
		c += strcmp(lg.ev[i], want) == 0;
	return c;
}

static void test_ahead_past_parsed_chats(void **state)
{
	char *dev = pb_test_tmpdir("scan-ahead");
	char id[16], why[256] = "";
	int rc;

	(void)state;
	kt_mkdir(kt_path(dev, "chats"));
	/* chats/10 .. chats/14 have no attachment; chats/15 has one, which
	 * the walk comes to after parsing 10 to 14 (photo < result). Then
	 * chats/16 .. chats/34 have none and chats/35 has one: 20 files
	 * after chats/15's, too far to be told before chats/16 is parsed. */
	for (int k = 10; k <= 35; k++) {
		snprintf(id, sizeof(id), "%d", k);
		write_chat(dev, id);
	}
	kt_write(kt_path(dev, "chats/15/photo.jpg"), "attachment fifteen");
	kt_write(kt_path(dev, "chats/35/photo.jpg"), "attachment thirty-five");

	lg.n = 0;
	rc = pb__device_scan_files(dev, 1u << PB_KIND_CHAT, NULL, &hasher, item, NULL, NULL, why, sizeof(why));
	assert_int_equal(rc, 0);

	/* The first attachment is told before the first chat is parsed,
	 * five parsed chats ahead of it, and again before each of them (the
	 * backup reads it once: its ahead is kept while it is the same). */
	assert_int_equal(find("ahead chats/15/photo.jpg now"), 0);
	assert_int_equal(find("item chat/10"), 1);
	assert_int_equal(count("ahead chats/15/photo.jpg now"), 5);
	assert_true(find("ahead chats/15/photo.jpg now") < find("item chat/14"));
	assert_true(find("item chats/15/photo.jpg") > find("item chat/14"));
	/* The second one is 20 files on from the first: not told behind
	 * it, only once the walk is within 16 files of it. */
	assert_int_equal(find("ahead chats/35/photo.jpg behind"), -1);
	assert_true(find("ahead chats/35/photo.jpg now") > find("item chat/18"));
	assert_true(find("ahead chats/35/photo.jpg now") < find("item chat/19"));
	assert_true(find("ahead chats/35/photo.jpg now") < find("item chats/35/photo.jpg"));
	pb_test_rmtree(dev);
	free(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ahead_past_parsed_chats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
