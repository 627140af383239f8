/* The device writer streams a restored chat into its staged file as its
 * messages come (frame first, then by ascending id) instead of holding
 * the chat: a chat many times the writer's buffer is on disk before the
 * commit, and the file is the one the codec's join gives. Items out of
 * that order (a repeated id, an older one) are merged with what was
 * streamed, with the result of the writer that held them all. Whole
 * files are staged as they come once a few MiB of them are held. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kinds-util.h"
#include "peerback.h"
#include "peerback/kinds.h"
#include "agent/kinds/internal.h"
#include "agent/kinds/util.h"

#define PATH "chats/7/result.json"
#define FRAME "{\"id\":7,\"name\":\"Big chat\",\"type\":\"personal_chat\"}"
/* Far more than the writer keeps in memory (1 MiB) before writing. */
#define NMSG 40000

typedef struct msgs_s {
	pb_item_t *v;
	char **ids, **datas;
	size_t n;
} msgs_t;

static void add_one(msgs_t *m, const char *id, uint64_t seq, const char *data)
{
	pb_item_t *it = &m->v[m->n];

	m->ids[m->n] = strdup(id);
	m->datas[m->n] = strdup(data);
	assert_non_null(m->ids[m->n]);
	assert_non_null(m->datas[m->n]);
	memset(it, 0, sizeof(*it));
	it->kind = PB_KIND_CHAT;
	it->id = m->ids[m->n];
	it->path = PATH;
	it->seq = seq;
	it->data = (const uint8_t *)m->datas[m->n];
	it->len = strlen(m->datas[m->n]);
	it->size = it->len;
	m->n++;
}

static void add_msg(msgs_t *m, long id, uint64_t seq, const char *word)
{
	char mid[64], data[512];

	snprintf(mid, sizeof(mid), "chat/7/msg/%ld", id);
	snprintf(data, sizeof(data),
		 "{\"id\":%ld,\"type\":\"message\",\"date\":\"2024-01-01T00:00:00\",\"from\":\"Ann\","
		 "\"text\":\"%s message number %ld, long enough to fill the writer's buffer many times\"}",
		 id, word, id);
	add_one(m, mid, seq, data);
}

static void msgs_init(msgs_t *m, size_t cap)
{
	m->v = calloc(cap, sizeof(*m->v));
	m->ids = calloc(cap, sizeof(*m->ids));
	m->datas = calloc(cap, sizeof(*m->datas));
	m->n = 0;
	assert_non_null(m->v);
	assert_non_null(m->ids);
	assert_non_null(m->datas);
	add_one(m, "chat/7", 0, FRAME);
}

static void msgs_free(msgs_t *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->ids[i]);
		free(m->datas[i]);
	}
	free(m->v);
	free(m->ids);
	free(m->datas);
}

/* The size of the largest staged file in dir (0: none). */
static off_t staged_size(const char *dir_in)
{
	char dir[4096];
	DIR *d;
	struct dirent *de;
	off_t most = 0;

	snprintf(dir, sizeof(dir), "%s", dir_in); /* kt_path's buffers rotate */
	d = opendir(dir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (strncmp(de->d_name, PB__DEVICE_TMP_PREFIX, strlen(PB__DEVICE_TMP_PREFIX)) == 0 &&
		    stat(kt_path(dir, de->d_name), &st) == 0 && st.st_size > most)
			most = st.st_size;
	}
	closedir(d);
	return most;
}

/* Writes m through a writer into a fresh folder; *streamed: the staged
 * file's size before the commit. Returns the file written. */
static uint8_t *write_through(const msgs_t *m, size_t *len, off_t *streamed)
{
	char *dir = pb_test_tmpdir("chat-stream-dev");
	pb_device_writer_t *w;
	uint8_t *got;

	assert_int_equal(pb_device_writer_open(dir, &w), 0);
	for (size_t i = 0; i < m->n; i++)
		assert_int_equal(pb_device_writer_add(w, &m->v[i]), 0);
	*streamed = staged_size(kt_path(dir, "chats/7"));
	assert_int_equal(pb_device_writer_commit(w), 0);
	pb_device_writer_free(w);
	got = pb_test_read_file(kt_path(dir, PATH), len);
	assert_non_null(got);
	assert_int_equal(staged_size(kt_path(dir, "chats/7")), 0);
	pb_test_rmtree(dir);
	free(dir);
	return got;
}

static void test_in_order_streams(void **state)
{
	msgs_t m;
	pb_buf_t want = { 0 };
	uint8_t *got;
	size_t len;
	off_t streamed;

	(void)state;
	msgs_init(&m, NMSG + 1);
	for (long i = 1; i <= NMSG; i++)
		add_msg(&m, 1000 + 3 * i, (uint64_t)i, "a");
	assert_int_equal(pb__codec_telegram.join(PATH, m.v, m.n, &want), 0);
	assert_true(want.len > 4u << 20);
	got = write_through(&m, &len, &streamed);
	/* On disk before the commit, all but the last buffer's worth. */
	assert_true(streamed > (off_t)(want.len - (2u << 20)));
	assert_int_equal(len, want.len);
	assert_memory_equal(got, want.data, want.len);
	free(got);
	pb_buf_free(&want);
	msgs_free(&m);
}

/* After many in order: a repeated id (replaces its message in place), an
 * older id (goes in its place by id), a newer one. */
static void test_out_of_order_merges(void **state)
{
	msgs_t m;
	pb_buf_t want = { 0 };
	uint8_t *got;
	size_t len;
	off_t streamed;

	(void)state;
	msgs_init(&m, NMSG + 4);
	for (long i = 1; i <= NMSG; i++)
		add_msg(&m, 1000 + 3 * i, (uint64_t)i, "b");
	add_msg(&m, 1000 + 3 * 20, NMSG + 1, "replaced");
	add_msg(&m, 1000 + 3 * 30 + 1, NMSG + 2, "late");
	add_msg(&m, 1000 + 3 * NMSG + 5, NMSG + 3, "last");
	/* What the writer gives when it holds every item and merges them. */
	assert_int_equal(pb__device_merge(&pb__codec_telegram, PATH, NULL, 0, m.v, m.n, &want), 0);
	assert_non_null(memmem(want.data, want.len, "replaced message number 1060", 28));
	got = write_through(&m, &len, &streamed);
	assert_true(streamed > (off_t)(4u << 20));
	assert_int_equal(len, want.len);
	assert_memory_equal(got, want.data, want.len);
	free(got);
	pb_buf_free(&want);
	msgs_free(&m);
}

/* A message that is not one line of one object fails as join fails. */
static void test_bad_message_fails(void **state)
{
	char *dir = pb_test_tmpdir("chat-stream-bad");
	pb_device_writer_t *w;
	msgs_t m;
	int rc = 0;

	(void)state;
	msgs_init(&m, 4);
	add_msg(&m, 10, 1, "c");
	add_one(&m, "chat/7/msg/11", 2, "not an object");
	assert_int_equal(pb_device_writer_open(dir, &w), 0);
	for (size_t i = 0; i < m.n && rc == 0; i++)
		rc = pb_device_writer_add(w, &m.v[i]);
	if (rc == 0)
		rc = pb_device_writer_commit(w);
	assert_int_equal(rc, PB_EDATA_FORMAT);
	pb_device_writer_free(w);
	/* Nothing is left: no file, no staged file, no folder made. */
	{
		struct stat st;

		assert_int_not_equal(stat(kt_path(dir, "chats/7"), &st), 0);
	}
	pb_test_rmtree(dir);
	free(dir);
	msgs_free(&m);
}

/* Many files in memory: staged before the commit, not held. */
static void test_whole_files_staged(void **state)
{
	enum { NFILES = 24, SIZE = 1u << 20 };
	char *dir = pb_test_tmpdir("chat-stream-whole");
	uint8_t *data = malloc(SIZE);
	pb_device_writer_t *w;
	size_t staged = 0;

	(void)state;
	assert_non_null(data);
	assert_int_equal(pb_device_writer_open(dir, &w), 0);
	for (int i = 0; i < NFILES; i++) {
		char id[64], path[64];
		pb_item_t it;

		snprintf(id, sizeof(id), "chat/7/file/%d", i);
		snprintf(path, sizeof(path), "chats/7/files/f%02d.bin", i);
		memset(data, 'a' + i, SIZE);
		memset(&it, 0, sizeof(it));
		it.kind = PB_KIND_CHAT;
		it.id = id;
		it.path = path;
		it.data = data;
		it.len = it.size = SIZE;
		assert_int_equal(pb_device_writer_add(w, &it), 0);
	}
	{
		char files[4096];
		DIR *d;
		struct dirent *de;

		snprintf(files, sizeof(files), "%s", kt_path(dir, "chats/7/files"));
		assert_non_null(d = opendir(files));
		while ((de = readdir(d)) != NULL)
			staged += strncmp(de->d_name, PB__DEVICE_TMP_PREFIX, strlen(PB__DEVICE_TMP_PREFIX)) == 0;
		closedir(d);
	}
	assert_true(staged >= NFILES / 2);
	assert_int_equal(pb_device_writer_commit(w), 0);
	pb_device_writer_free(w);
	for (int i = 0; i < NFILES; i++) {
		char path[64];

		snprintf(path, sizeof(path), "chats/7/files/f%02d.bin", i);
		memset(data, 'a' + i, SIZE);
		kt_assert_file(kt_path(dir, path), data, SIZE);
	}
	free(data);
	pb_test_rmtree(dir);
	free(dir);
}

/* Restored into a folder that holds the chat: the file's messages and the
 * restored ones are joined by id as the file is read (a replaced one in
 * its place, new ones before, between and after), the bytes of the merge
 * in memory; a file not in id order is refused alike. */
static void merge_into(const msgs_t *old, const msgs_t *r)
{
	char *dir = pb_test_tmpdir("chat-stream-merge");
	pb_buf_t base = { 0 }, want = { 0 };
	pb_device_writer_t *w;
	uint8_t *got;
	size_t len;
	int rc;

	assert_int_equal(pb__codec_telegram.join(PATH, old->v, old->n, &base), 0);
	assert_int_equal(mkdir(kt_path(dir, "chats"), 0700), 0);
	assert_int_equal(mkdir(kt_path(dir, "chats/7"), 0700), 0);
	assert_int_equal(pb_test_write_file(kt_path(dir, PATH), base.data, base.len), 0);
	rc = pb__device_merge(&pb__codec_telegram, PATH, base.data, base.len, r->v, r->n, &want);
	assert_int_equal(pb_device_writer_open(dir, &w), 0);
	for (size_t i = 0; i < r->n; i++)
		assert_int_equal(pb_device_writer_add(w, &r->v[i]), 0);
	assert_int_equal(pb_device_writer_commit(w), rc);
	pb_device_writer_free(w);
	if (rc != 0) {
		/* Refused alike, the file as it was. */
		pb_buf_free(&want);
		assert_int_equal(pb_buf_append(&want, base.data, base.len), 0);
	}
	got = pb_test_read_file(kt_path(dir, PATH), &len);
	assert_non_null(got);
	assert_int_equal(len, want.len);
	assert_memory_equal(got, want.data, want.len);
	assert_int_equal(staged_size(kt_path(dir, "chats/7")), 0);
	free(got);
	pb_buf_free(&base);
	pb_buf_free(&want);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_merge_with_file(void **state)
{
	msgs_t old, r;

	(void)state;
	msgs_init(&old, NMSG + 1);
	for (long i = 1; i <= NMSG; i++)
		add_msg(&old, 1000 + 3 * i, (uint64_t)i, "old");
	msgs_init(&r, 8);
	add_msg(&r, 5, 1, "first");
	add_msg(&r, 1000 + 3 * 20, 2, "replaced");
	add_msg(&r, 1000 + 3 * 30 + 1, 3, "between");
	add_msg(&r, 1000 + 3 * NMSG + 5, 4, "last");
	merge_into(&old, &r);
	{
		/* Without the frame (a restore by id): held, then merged
		 * with the file as it is read at stage. */
		msgs_t nf = r;

		nf.v++;
		nf.n--;
		merge_into(&old, &nf);
	}
	msgs_free(&r);
	/* A whole chat restored in order (frame first): merged as it comes,
	 * the file's messages between the restored ones. */
	msgs_init(&r, NMSG + 1);
	for (long i = 1; i <= NMSG; i++)
		add_msg(&r, 1000 + 3 * i + (i % 3 == 0 ? 0 : 1), (uint64_t)i, i % 3 == 0 ? "again" : "new");
	merge_into(&old, &r);
	msgs_free(&old);
	/* A file not in id order: refused, by the streamed merge and by the
	 * one in memory alike (the codec's split requires the order). */
	msgs_init(&old, 4);
	add_msg(&old, 1000 + 3 * 40, 1, "old");
	add_msg(&old, 1000 + 3 * 10, 2, "old");
	add_msg(&old, 1000 + 3 * 50, 3, "old");
	merge_into(&old, &r);
	msgs_free(&old);
	msgs_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order_streams),
		cmocka_unit_test(test_out_of_order_merges),
		cmocka_unit_test(test_bad_message_fails),
		cmocka_unit_test(test_whole_files_staged),
		cmocka_unit_test(test_merge_with_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
