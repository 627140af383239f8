/* A chat's messages are one stream cut into chunks that hold many
 * messages, each message a slice of it in the manifest. A chat of N
 * messages is backed up in far fewer than N chunks; one changed message
 * re-sends only the chunks around it and the manifest and index parts
 * that name it; one message by id on a new phone costs a bounded number
 * of chunk requests; a full restore is byte for byte the device; a
 * restore into a phone that holds part of a chat completes it; a chat
 * that no longer parses keeps its messages; snapshots made before streams
 * (a chunk per message) still restore, whole and by id. In one process, against a host store opened here. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "inproc.h"
#include "agent/backup/internal.h"
#include "agent/backup/repo.h"
#include "agent/backup/sink.h"
#include "agent/backup/stream.h"
#include "agent/kinds/internal.h"
#include "agent/phone/handle.h"
#include "agent/util/fsutil.h"

static pb_test_phone_t phone;
static char dev[4096];

/* The first chat's file (read into *buf, NUL-terminated), its number of
 * messages, and the id of its message number k (0-based). */
static size_t chat_file(char *file, size_t fcap, uint8_t **buf, size_t *len, size_t k, char *id, size_t cap)
{
	char chat[256], *p;
	size_t n = 0;

	pb_test_first_chat(dev, chat, sizeof(chat), file, fcap, buf, len);
	p = strstr((char *)*buf, "\"messages\"");
	assert_non_null(p);
	while ((p = strstr(p, "{\"id\":")) != NULL) {
		if (n == k)
			snprintf(id, cap, "chat/%s/msg/%lld", chat, atoll(p + 6));
		n++;
		p += 6;
	}
	return n;
}

static uint64_t attachments;

static int count_attachment(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
	const char *base = strrchr(fpath, '/');

	(void)sb;
	(void)ftw;
	if (type == FTW_F && strcmp(base + 1, "result.json") != 0)
		attachments++;
	return 0;
}

/* Every file of the device gets a new modification time: the next backup
 * reads them all again. */
static void touch_all(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char sub[4500];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		assert_int_equal(lstat(sub, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			touch_all(sub);
		} else {
			struct timespec ts[2] = { st.st_atim, st.st_mtim };

			ts[1].tv_sec += 10;
			assert_int_equal(utimensat(AT_FDCWD, sub, ts, 0), 0);
		}
	}
	closedir(d);
}

static int setup(void **state)
{
	int rc = pb_test_dir_setup(state);

	if (rc != 0)
		return rc;
	pb_test_path(dev, "device");
	if (pb__gen_chat(dev, 5, PB_GEN_SMALL) != 0 || pb__gen_contacts(dev, 5, PB_GEN_SMALL) != 0)
		return -1;
	pb_test_phone_init(&phone, "phone", "files");
	return pb_phone_set_device_dir(phone.ph, dev);
}

/* The same, with every chat parsed on a thread of its own and handed over
 * a few messages at a time (agent/kinds/item-pipe.c), as large chats are:
 * the same snapshots, restores and counts. */
static int setup_piped(void **state)
{
	pb__tg_pipe_min = 0;
	pb__tg_pipe_batch = 3000;
	return setup(state);
}

static int teardown(void **state)
{
	pb_test_phone_close(&phone);
	return pb_test_dir_teardown(state);
}

/* First, a snapshot as backups made them before streams: a chunk per
 * message. It restores whole and by id, on this phone and a new one. */
static void test_old_snapshot_restores(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0, n;
	char id[512], file[4400], out[4096];
	bool found;

	(void)state;
	pb__stream_off = true;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	pb__stream_off = false;
	n = chat_file(file, sizeof(file), &buf, &len, 3, id, sizeof(id));
	free(buf);
	assert_true(n > 10);
	assert_true(res.chunks_sent >= n); /* a chunk per message */
	pb_test_restore_same(&phone, dev, "old-all");
	pb_test_path(out, "old-one");
	pb_test_new_phone_restore(&phone, dev, "phone-old", id, out, &res, &found);
	assert_true(found);
	assert_int_equal(res.items, 2); /* the chat's frame and the message */
}

/* Read again (every file's time moved), the chat becomes a stream: far
 * fewer chunks than messages, and the restore is the device. */
static void test_far_fewer_chunks(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0, n, chats = 0;
	char id[512], file[4400], dir[4200];
	struct dirent *de;
	DIR *d;

	(void)state;
	touch_all(dev);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	n = chat_file(file, sizeof(file), &buf, &len, 0, id, sizeof(id));
	free(buf);
	snprintf(dir, sizeof(dir), "%s/chats", dev);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		chats += de->d_name[0] != '.';
	closedir(d);
	printf("%llu items, %llu chunks in the snapshot, %zu chats, the first of %zu messages\n",
	       (unsigned long long)res.items, (unsigned long long)res.chunks_total, chats, n);
	/* The messages of a chat are a few chunks; attachments stay one
	 * chunk each. */
	assert_true(res.chunks_total * 4 < res.items);
	pb_test_restore_same(&phone, dev, "stream-all");
	/* Unchanged: nothing read, nothing sent. */
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.files_read, 0);
	assert_int_equal(res.chunks_sent, 0);
	pb_test_restore_same(&phone, dev, "stream-again");
	attachments = 0;
	assert_int_equal(nftw(dir, count_attachment, 16, FTW_PHYS), 0);
	/* Read again with nothing changed: no message is changed, no stream
	 * chunk is sent (only manifest and index chunks, which hold the
	 * files' times). */
	touch_all(dev);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_true(res.files_read > 0);
	/* (Attachments are files: their new time makes them changed.) */
	assert_int_equal(res.items_changed, attachments);
	printf("read again unchanged: %llu chunks sent\n", (unsigned long long)res.chunks_sent);
	assert_true(res.chunks_sent <= 4);
	/* Read again with each stream chunk sealed on its own instead of in
	 * batches (agent/backup/sink.c): the same chunks, so none is sent,
	 * and the same snapshot. */
	{
		pb_op_result_t batched = res;

		touch_all(dev);
		pb__sink_pack_off = true;
		assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
		pb__sink_pack_off = false;
		assert_true(res.chunks_sent <= 4);
		assert_int_equal(res.chunks_total, batched.chunks_total);
		assert_int_equal(res.items, batched.items);
		pb_test_restore_same(&phone, dev, "stream-one-by-one");
	}
}

/* One changed message re-sends the chunk around it and the manifest and
 * index parts that name it: not the chat. */
static void test_one_changed_message(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0;
	char id[512], file[4400], *p;
	struct stat st;

	(void)state;
	chat_file(file, sizeof(file), &buf, &len, 0, id, sizeof(id));
	assert_int_equal(stat(file, &st), 0);
	/* A text that starts with a letter: one letter changes, the size not. */
	p = (char *)buf;
	while ((p = strstr(p + 1, "\"text\":\"")) != NULL && !(p[8] >= 'A' && p[8] <= 'Z') && !(p[8] >= 'a' && p[8] <= 'z'))
		;
	assert_non_null(p);
	p[8] = p[8] == 'Q' ? 'R' : 'Q';
	assert_int_equal(pb_test_write_file(file, buf, len), 0);
	free(buf);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	printf("one changed message of a %lld-byte chat: %llu chunks, %llu bytes sent\n", (long long)st.st_size,
	       (unsigned long long)res.chunks_sent, (unsigned long long)res.bytes_sent);
	assert_int_equal(res.files_read, 1);
	assert_int_equal(res.items_changed, 1);
	assert_true(res.chunks_sent >= 1);
	assert_true(res.chunks_sent <= 8);
	assert_true(res.bytes_sent < (uint64_t)st.st_size / 2 || res.bytes_sent < (64u << 10));
	pb_test_restore_same(&phone, dev, "changed-all");
}

/* One message by id on a new phone: the id index, the manifest chunk,
 * then the stream chunk(s), for the message and its chat's frame (which
 * often share them: a chunk both need is asked for once). */
static void test_new_phone_one_message(void **state)
{
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0, n;
	char id[512], file[4400], out[4096];
	bool found;

	(void)state;
	n = chat_file(file, sizeof(file), &buf, &len, 0, id, sizeof(id));
	free(buf);
	chat_file(file, sizeof(file), &buf, &len, n / 2, id, sizeof(id));
	free(buf);
	pb_test_path(out, "new-one");
	pb_test_new_phone_restore(&phone, dev, "phone-new", id, out, &res, &found);
	assert_true(found);
	assert_true(res.by_index);
	assert_int_equal(res.items, 2);
	printf("one message on a new phone: %u chunk requests\n", pb_test_gets);
	assert_true(pb_test_gets >= 3 && pb_test_gets <= 10);
}

/* A phone that holds part of a chat (one message of it, restored by id)
 * gets the rest merged in: the chat as backed up. */
static void test_restore_into_partial_chat(void **state)
{
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0, n;
	char id[512], file[4400], out[4096];

	(void)state;
	n = chat_file(file, sizeof(file), &buf, &len, 0, id, sizeof(id));
	free(buf);
	chat_file(file, sizeof(file), &buf, &len, n - 1, id, sizeof(id));
	free(buf);
	pb_test_path(out, "partial");
	pb_test_restore_into(&phone, dev, out, id, &res);
	assert_int_equal(res.items, 2);
	pb_test_restore_into(&phone, dev, out, NULL, &res);
	assert_int_equal(pb_test_same_tree(dev, out), 0);
}

/* A chat that no longer parses (cut short) is skipped with a warning
 * and keeps every message of its last reading: those the walk gave
 * before the damage and, from the records of that reading, the rest. */
static void test_damaged_chat_keeps_messages(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t before, res;
	uint8_t *buf = NULL, *got = NULL;
	size_t len = 0, glen = 0;
	char id[512], file[4400], out[4096], rfile[8600];

	(void)state;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &before), 0);
	chat_file(file, sizeof(file), &buf, &len, 0, id, sizeof(id));
	assert_int_equal(pb_test_write_file(file, buf, len * 2 / 3), 0);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.skipped, 1);
	assert_true(res.items_kept > 0);
	assert_int_equal(res.items, before.items);
	/* The snapshot holds the chat as it was. */
	pb_test_path(out, "damaged");
	pb_test_restore_into(&phone, dev, out, NULL, &res);
	snprintf(rfile, sizeof(rfile), "%s%s", out, file + strlen(dev));
	assert_int_equal(pb__read_file(rfile, 64 << 20, &got, &glen), 0);
	assert_int_equal(glen, len);
	assert_memory_equal(got, buf, len);
	free(got);
	assert_int_equal(pb_test_write_file(file, buf, len), 0);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_old_snapshot_restores),
		cmocka_unit_test(test_far_fewer_chunks),
		cmocka_unit_test(test_one_changed_message),
		cmocka_unit_test(test_new_phone_one_message),
		cmocka_unit_test(test_restore_into_partial_chat),
		cmocka_unit_test(test_damaged_chat_keeps_messages),
	};

	int failed = cmocka_run_group_tests(tests, setup, teardown);

	return failed + cmocka_run_group_tests(tests, setup_piped, teardown);
}
