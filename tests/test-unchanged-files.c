/* A re-backup of a device directory skips every file whose stamp (size,
 * mtime, inode, ctime) is unchanged before reading it, multi-item files
 * (chats, contacts) included, and puts the items it last backed up from
 * that file into the snapshot as they were: the restore of that snapshot
 * is byte for byte the device, and one item of an unchanged file is still
 * found through the phone's state. A file rewritten with the same size and
 * modification time is read again (its ctime moved). In one process,
 * against a host store opened here. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "agent/backup/repo.h"
#include "agent/kinds/internal.h"
#include "agent/phone/handle.h"
#include "agent/util/fsutil.h"

#define PASS "correct horse battery staple 7"

static pb_repo_t *repo;
static pb_phone_t *ph;
static char dev[4096], home[4096];

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

static void count_files(const char *dir, uint64_t *n)
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
		if (S_ISDIR(st.st_mode))
			count_files(sub, n);
		else
			(*n)++;
	}
	closedir(d);
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

static void restore_same(const char *name)
{
	pb_op_opts_t o = opts();
	pb_op_result_t res;
	char out[4096];

	path(out, name);
	assert_int_equal(pb_phone_set_device_dir(ph, out), 0);
	assert_int_equal(pb_phone_restore(ph, &o, &res), 0);
	assert_int_equal(pb_test_same_tree(dev, out), 0);
	assert_int_equal(pb_phone_set_device_dir(ph, dev), 0);
}

static int setup(void **state)
{
	char store[4096];
	uint8_t id[16];
	int rc = pb_test_dir_setup(state);

	if (rc != 0)
		return rc;
	path(store, "store");
	path(home, "phone");
	path(dev, "device");
	randombytes_buf(id, sizeof(id));
	if (pb__gen_chat(dev, 3, PB_GEN_SMALL) != 0 || pb__gen_contacts(dev, 3, PB_GEN_SMALL) != 0 ||
	    pb__gen_credentials(dev, 3, PB_GEN_SMALL) != 0)
		return -1;
	if (pb__repo_local_open(store, "files", id, &repo) != 0 || pb_phone_open(home, &ph) != 0)
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

static void test_unchanged_files_unread(void **state)
{
	pb_op_opts_t o = opts();
	pb_op_result_t first, res;
	uint64_t nfiles = 0;
	char chat[256], id[512], file[4400];
	struct stat st;
	uint8_t *buf = NULL;
	size_t len = 0;
	char *p;

	(void)state;
	count_files(dev, &nfiles);
	assert_int_equal(pb_phone_backup(ph, &o, &first), 0);
	assert_int_equal(first.files_read, nfiles);
	assert_int_equal(first.files_skipped, 0);
	assert_true(first.items > nfiles); /* chats and contacts hold many items */

	/* Nothing changed: no file is read, the snapshot holds every item. */
	assert_int_equal(pb_phone_backup(ph, &o, &res), 0);
	assert_int_equal(res.files_read, 0);
	assert_int_equal(res.files_skipped, nfiles);
	assert_int_equal(res.items, first.items);
	assert_int_equal(res.bytes, first.bytes);
	assert_int_equal(res.items_changed, 0);
	assert_int_equal(res.chunks_sent, 0);
	assert_int_equal(res.chunks_total, first.chunks_total);
	restore_same("restored-unchanged");

	/* One message of an unchanged chat, found through the state. */
	first_chat(chat, sizeof(chat));
	snprintf(file, sizeof(file), "%s/chats/%s/result.json", dev, chat);
	assert_int_equal(pb__read_file(file, 64 << 20, &buf, &len), 0);
	buf = realloc(buf, len + 1);
	assert_non_null(buf);
	buf[len] = 0;
	p = strstr((char *)buf, "\"messages\"");
	assert_non_null(p);
	p = strstr(p, "\"id\":");
	assert_non_null(p);
	snprintf(id, sizeof(id), "chat/%s/msg/%lld", chat, atoll(p + 5));
	{
		pb_op_opts_t one = opts();
		char out[4096];

		path(out, "restored-one");
		one.item_id = id;
		assert_int_equal(pb_phone_set_device_dir(ph, out), 0);
		assert_int_equal(pb_phone_restore(ph, &one, &res), 0);
		assert_true(res.by_state);
		assert_int_equal(pb_phone_set_device_dir(ph, dev), 0);
	}

	/* The chat rewritten with the same size and modification time (one
	 * character of a text changed): its ctime moved, so it is read. */
	assert_int_equal(stat(file, &st), 0);
	p = strstr((char *)buf, "\"text\":\"");
	assert_non_null(p);
	p[8] = p[8] == 'Q' ? 'R' : 'Q';
	sleep(0); /* ctime has nanoseconds; the write below moves it */
	assert_int_equal(pb_test_write_file(file, buf, len), 0);
	{
		struct timespec ts[2] = { st.st_atim, st.st_mtim };

		assert_int_equal(utimensat(AT_FDCWD, file, ts, 0), 0);
	}
	free(buf);
	assert_int_equal(pb_phone_backup(ph, &o, &res), 0);
	assert_int_equal(res.files_read, 1);
	assert_int_equal(res.files_skipped, nfiles - 1);
	assert_int_equal(res.items_changed, 1);
	assert_int_equal(res.items, first.items);
	restore_same("restored-changed");

	/* And then it is known again. */
	assert_int_equal(pb_phone_backup(ph, &o, &res), 0);
	assert_int_equal(res.files_read, 0);
	assert_int_equal(res.chunks_sent, 0);
	restore_same("restored-again");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unchanged_files_unread),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
