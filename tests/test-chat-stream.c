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
#include "agent/backup/internal.h"
#include "agent/backup/repo.h"
#include "agent/backup/stream.h"
#include "agent/kinds/internal.h"
#include "agent/phone/handle.h"
#include "agent/util/fsutil.h"

#define PASS "correct horse battery staple 7"

static pb_repo_t *repo;
static pb_phone_t *ph;
static char dev[4096], home[4096], store[4096];
static uint8_t dev_id[16];
static const pb_repo_ops_t *real_ops;
static pb_repo_ops_t counting_ops;
static unsigned gets;

static void path(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", pb_test_dir, name);
}

static pb_op_opts_t opts(void)
{
	pb_op_opts_t o;

	memset(&o, 0, sizeof(o));
	o.passphrase = PASS;
	o.weak_kdf = true;
	return o;
}

static int counting_get_send(pb_repo_t *r, const uint8_t *d, const uint8_t name[PB_STORE_NAME_LEN], uint64_t *tok)
{
	gets++;
	return real_ops->get_send(r, d, name, tok);
}

/* The repository of the phone, its chunk requests counted. */
static void open_repo(pb_repo_t **r)
{
	assert_int_equal(pb__repo_local_open(store, "files", dev_id, r), 0);
	real_ops = (*r)->ops;
	counting_ops = *(*r)->ops;
	counting_ops.get_send = counting_get_send;
	(*r)->ops = &counting_ops;
}

/* The first chat's folder name. */
static void first_chat(char *out, size_t cap)
{
	char chats[4200];
	struct dirent **names;
	int n;

	snprintf(chats, sizeof(chats), "%s/chats", dev);
	n = scandir(chats, &names, NULL, alphasort);
	assert_true(n > 2);
	snprintf(out, cap, "%s", names[2]->d_name);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* The first chat's file (read into *buf, NUL-terminated), its number of
 * messages, and the id of its message number k (0-based). */
static size_t chat_file(char *file, size_t fcap, uint8_t **buf, size_t *len, size_t k, char *id, size_t cap)
{
	char chat[256], *p;
	size_t n = 0;

	first_chat(chat, sizeof(chat));
	snprintf(file, fcap, "%s/chats/%s/result.json", dev, chat);
	assert_int_equal(pb__read_file(file, 64 << 20, buf, len), 0);
	*buf = realloc(*buf, *len + 1);
	assert_non_null(*buf);
	(*buf)[*len] = 0;
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

static void restore_into(const char *out, const char *item_id, pb_op_result_t *res)
{
	pb_op_opts_t o = opts();

	o.item_id = item_id;
	assert_int_equal(pb_phone_set_device_dir(ph, out), 0);
	assert_int_equal(pb_phone_restore(ph, &o, res), 0);
	assert_int_equal(pb_phone_set_device_dir(ph, dev), 0);
}

static void restore_same(const char *name)
{
	pb_op_result_t res;
	char out[4096];

	path(out, name);
	restore_into(out, NULL, &res);
	assert_int_equal(pb_test_same_tree(dev, out), 0);
}

/* A phone with no state restores one message by id into out (the local
 * repository shows only its own device, so it keeps the device id);
 * *found: the message is in the restored chat. */
static void new_phone_restore(const char *name, const char *id, const char *out, pb_op_result_t *res, bool *found)
{
	pb_repo_t *r2;
	pb_phone_t *p2;
	pb_op_opts_t o = opts();
	uint8_t *buf = NULL;
	size_t len = 0;
	char h2[4096], file[4400], want[64];
	const char *msg = strstr(id, "/msg/"), *chat = id + 5;

	/* The store is locked by whoever has it open. */
	pb_phone_close(ph);
	pb__repo_close(repo);
	path(h2, name);
	open_repo(&r2);
	assert_int_equal(pb_phone_open(h2, &p2), 0);
	pb__phone_set_repo(p2, r2);
	assert_int_equal(pb_phone_set_device_dir(p2, out), 0);
	o.item_id = id;
	gets = 0;
	assert_int_equal(pb_phone_restore(p2, &o, res), 0);
	pb_phone_close(p2);
	pb__repo_close(r2);
	snprintf(file, sizeof(file), "%s/chats/%.*s/result.json", out, (int)(msg - chat), chat);
	snprintf(want, sizeof(want), "{\"id\":%s,", msg + 5);
	assert_int_equal(pb__read_file(file, 64 << 20, &buf, &len), 0);
	buf = realloc(buf, len + 1);
	buf[len] = 0;
	*found = strstr((char *)buf, want) != NULL;
	free(buf);
	open_repo(&repo);
	assert_int_equal(pb_phone_open(home, &ph), 0);
	pb__phone_set_repo(ph, repo);
	assert_int_equal(pb_phone_set_device_dir(ph, dev), 0);
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
	path(store, "store");
	path(home, "phone");
	path(dev, "device");
	randombytes_buf(dev_id, sizeof(dev_id));
	if (pb__gen_chat(dev, 5, PB_GEN_SMALL) != 0 || pb__gen_contacts(dev, 5, PB_GEN_SMALL) != 0)
		return -1;
	if (pb__repo_local_open(store, "files", dev_id, &repo) != 0 || pb_phone_open(home, &ph) != 0)
		return -1;
	pb__phone_set_repo(ph, repo);
	return pb_phone_set_device_dir(ph, dev);
}

static int teardown(void **state)
{
	pb_phone_close(ph);
	pb__repo_close(repo);
	return pb_test_dir_teardown(state);
}

/* First, a snapshot as backups made them before streams: a chunk per
 * message. It restores whole and by id, on this phone and a new one. */
static void test_old_snapshot_restores(void **state)
{
	pb_op_opts_t o = opts();
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0, n;
	char id[512], file[4400], out[4096];
	bool found;

	(void)state;
	pb__stream_off = true;
	assert_int_equal(pb_phone_backup(ph, &o, &res), 0);
	pb__stream_off = false;
	n = chat_file(file, sizeof(file), &buf, &len, 3, id, sizeof(id));
	free(buf);
	assert_true(n > 10);
	assert_true(res.chunks_sent >= n); /* a chunk per message */
	restore_same("old-all");
	path(out, "old-one");
	new_phone_restore("phone-old", id, out, &res, &found);
	assert_true(found);
	assert_int_equal(res.items, 2); /* the chat's frame and the message */
}

/* Read again (every file's time moved), the chat becomes a stream: far
 * fewer chunks than messages, and the restore is the device. */
static void test_far_fewer_chunks(void **state)
{
	pb_op_opts_t o = opts();
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0, n, chats = 0;
	char id[512], file[4400], dir[4200];
	struct dirent *de;
	DIR *d;

	(void)state;
	touch_all(dev);
	assert_int_equal(pb_phone_backup(ph, &o, &res), 0);
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
	restore_same("stream-all");
	/* Unchanged: nothing read, nothing sent. */
	assert_int_equal(pb_phone_backup(ph, &o, &res), 0);
	assert_int_equal(res.files_read, 0);
	assert_int_equal(res.chunks_sent, 0);
	restore_same("stream-again");
	attachments = 0;
	assert_int_equal(nftw(dir, count_attachment, 16, FTW_PHYS), 0);
	/* Read again with nothing changed: no message is changed, no stream
	 * chunk is sent (only manifest and index chunks, which hold the
	 * files' times). */
	touch_all(dev);
	assert_int_equal(pb_phone_backup(ph, &o, &res), 0);
	assert_true(res.files_read > 0);
	/* (Attachments are files: their new time makes them changed.) */
	assert_int_equal(res.items_changed, attachments);
	printf("read again unchanged: %llu chunks sent\n", (unsigned long long)res.chunks_sent);
	assert_true(res.chunks_sent <= 4);
}

/* One changed message re-sends the chunk around it and the manifest and
 * index parts that name it: not the chat. */
static void test_one_changed_message(void **state)
{
	pb_op_opts_t o = opts();
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
	assert_int_equal(pb_phone_backup(ph, &o, &res), 0);
	printf("one changed message of a %lld-byte chat: %llu chunks, %llu bytes sent\n", (long long)st.st_size,
	       (unsigned long long)res.chunks_sent, (unsigned long long)res.bytes_sent);
	assert_int_equal(res.files_read, 1);
	assert_int_equal(res.items_changed, 1);
	assert_true(res.chunks_sent >= 1);
	assert_true(res.chunks_sent <= 8);
	assert_true(res.bytes_sent < (uint64_t)st.st_size / 2 || res.bytes_sent < (64u << 10));
	restore_same("changed-all");
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
	path(out, "new-one");
	new_phone_restore("phone-new", id, out, &res, &found);
	assert_true(found);
	assert_true(res.by_index);
	assert_int_equal(res.items, 2);
	printf("one message on a new phone: %u chunk requests\n", gets);
	assert_true(gets >= 3 && gets <= 10);
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
	path(out, "partial");
	restore_into(out, id, &res);
	assert_int_equal(res.items, 2);
	restore_into(out, NULL, &res);
	assert_int_equal(pb_test_same_tree(dev, out), 0);
}

/* A chat that no longer parses (cut short) is skipped with a warning
 * and keeps every message of its last reading: those the walk gave
 * before the damage and, from the records of that reading, the rest. */
static void test_damaged_chat_keeps_messages(void **state)
{
	pb_op_opts_t o = opts();
	pb_op_result_t before, res;
	uint8_t *buf = NULL, *got = NULL;
	size_t len = 0, glen = 0;
	char id[512], file[4400], out[4096], rfile[8600];

	(void)state;
	assert_int_equal(pb_phone_backup(ph, &o, &before), 0);
	chat_file(file, sizeof(file), &buf, &len, 0, id, sizeof(id));
	assert_int_equal(pb_test_write_file(file, buf, len * 2 / 3), 0);
	assert_int_equal(pb_phone_backup(ph, &o, &res), 0);
	assert_int_equal(res.skipped, 1);
	assert_true(res.items_kept > 0);
	assert_int_equal(res.items, before.items);
	/* The snapshot holds the chat as it was. */
	path(out, "damaged");
	restore_into(out, NULL, &res);
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

	return cmocka_run_group_tests(tests, setup, teardown);
}
