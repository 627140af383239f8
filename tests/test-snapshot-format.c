/* What a snapshot is made of, seen from outside. A re-backup of a device
 * directory skips every file whose stamp (size, mtime, inode, ctime) is
 * unchanged before reading it, multi-item files (chats, contacts)
 * included, and puts the items it last backed up from that file into the
 * snapshot as they were: the restore of that snapshot is byte for byte the
 * device, and one item of an unchanged file is still found through the
 * phone's state. A file rewritten with the same size and modification
 * time is read again (its ctime moved). A new phone (no state) restores
 * one message by id through the snapshot's id index with a handful of
 * chunk requests, not a walk of the manifest, and keeps the root it
 * opened for the next lookup. A snapshot written in the
 * format before the index (manifest version 1) still restores, whole and
 * by id. A file is recorded known whole only once a receipt covers all of
 * its items: a backup whose later commits fail leaves recorded only files
 * the next backup can skip. In one process, against a host store opened
 * here. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "inproc.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/internal.h"
#include "agent/backup/repo.h"
#include "agent/kinds/internal.h"
#include "agent/phone/handle.h"
#include "agent/util/fsutil.h"

static pb_test_phone_t phone;
static char dev[4096];

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

/* The id of the first message of the first chat, and that chat's file
 * (read into *buf, NUL-terminated). */
static void first_message(char *id, size_t cap, char *file, size_t fcap, uint8_t **buf, size_t *len)
{
	char chat[256], *p;

	pb_test_first_chat(dev, chat, sizeof(chat), file, fcap, buf, len);
	p = strstr((char *)*buf, "\"messages\"");
	assert_non_null(p);
	p = strstr(p, "\"id\":");
	assert_non_null(p);
	snprintf(id, cap, "chat/%s/msg/%lld", chat, atoll(p + 5));
}

static int setup(void **state)
{
	int rc = pb_test_dir_setup(state);

	if (rc != 0)
		return rc;
	pb_test_path(dev, "device");
	if (pb__gen_chat(dev, 3, PB_GEN_SMALL) != 0 || pb__gen_contacts(dev, 3, PB_GEN_SMALL) != 0 ||
	    pb__gen_credentials(dev, 3, PB_GEN_SMALL) != 0)
		return -1;
	pb_test_phone_init(&phone, "phone", "files");
	return pb_phone_set_device_dir(phone.ph, dev);
}

static int teardown(void **state)
{
	pb_test_phone_close(&phone);
	return pb_test_dir_teardown(state);
}

static void test_unchanged_files_unread(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t first, res;
	uint64_t nfiles = 0;
	char id[512], file[4400];
	struct stat st;
	uint8_t *buf = NULL;
	size_t len = 0;
	char *p;

	(void)state;
	count_files(dev, &nfiles);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &first), 0);
	assert_int_equal(first.files_read, nfiles);
	assert_int_equal(first.files_skipped, 0);
	assert_true(first.items > nfiles); /* chats and contacts hold many items */

	/* Nothing changed: no file is read, the snapshot holds every item. */
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.files_read, 0);
	assert_int_equal(res.files_skipped, nfiles);
	assert_int_equal(res.items, first.items);
	assert_int_equal(res.bytes, first.bytes);
	assert_int_equal(res.items_changed, 0);
	assert_int_equal(res.chunks_sent, 0);
	assert_int_equal(res.chunks_total, first.chunks_total);
	pb_test_restore_same(&phone, dev, "restored-unchanged");

	/* One message of an unchanged chat, found without a walk: a chat's
	 * messages are slices of its stream and have no state rows, so the
	 * snapshot's id index finds it. */
	first_message(id, sizeof(id), file, sizeof(file), &buf, &len);
	{
		char out[4096];

		pb_test_path(out, "restored-one");
		pb_test_restore_into(&phone, dev, out, id, &res);
		assert_true(res.by_index);
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
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.files_read, 1);
	assert_int_equal(res.files_skipped, nfiles - 1);
	assert_int_equal(res.items_changed, 1);
	assert_int_equal(res.items, first.items);
	pb_test_restore_same(&phone, dev, "restored-changed");

	/* And then it is known again. */
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.files_read, 0);
	assert_int_equal(res.chunks_sent, 0);
	pb_test_restore_same(&phone, dev, "restored-again");
}

static void test_new_phone_one_message_by_index(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0;
	char id[512], file[4400], out[4096];
	bool found;

	(void)state;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	first_message(id, sizeof(id), file, sizeof(file), &buf, &len);
	free(buf);
	pb_test_path(out, "new-phone-one");
	pb_test_new_phone_restore(&phone, dev, "phone-new", id, out, &res, &found);
	assert_true(found);
	assert_true(res.by_index);
	assert_false(res.by_state);
	assert_int_equal(res.items, 2); /* the chat's frame and the message */
	/* For each of the two: one index chunk and one manifest chunk (two
	 * when the item opens its manifest chunk), then its stream chunk;
	 * the frame and the message often share them, and a chunk both need
	 * is asked for once. */
	printf("one message on a new phone: %u chunk requests\n", pb_test_gets);
	assert_true(pb_test_gets >= 3 && pb_test_gets <= 8);
}

/* The root a lookup by id opened is kept parsed in the phone's
 * HOME/root-cache: the next lookup in the same snapshot does not fetch it
 * again, and finds the same; a damaged file is passed over (the root is
 * fetched again and the file replaced). */
static void test_root_kept_for_the_next_lookup(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0;
	char id[512], file[4400], out[4096], kept[4400], hex[33];
	bool found;
	int fd;

	(void)state;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	first_message(id, sizeof(id), file, sizeof(file), &buf, &len);
	free(buf);
	pb_test_path(out, "root-kept-1");
	pb_test_new_phone_restore(&phone, dev, "phone-root-kept", id, out, &res, &found);
	assert_true(found);
	assert_true(res.by_index);
	assert_int_equal(pb_test_roots, 1);
	pb_test_path(out, "root-kept-2");
	pb_test_new_phone_restore(&phone, dev, "phone-root-kept", id, out, &res, &found);
	assert_true(found);
	assert_true(res.by_index);
	assert_int_equal(res.items, 2);
	assert_int_equal(pb_test_roots, 0);
	/* Damaged: read again from the host. */
	pb_test_path(kept, "phone-root-kept");
	pb__hex(phone.id, sizeof(phone.id), hex);
	snprintf(kept + strlen(kept), sizeof(kept) - strlen(kept), "/root-cache/%s", hex);
	/* One byte flipped (writing a fixed byte left the file as it was
	 * whenever that byte was already there). */
	fd = open(kept, O_RDWR);
	assert_true(fd >= 0);
	{
		uint8_t b;

		assert_int_equal(pread(fd, &b, 1, 40), 1);
		b ^= 0xff;
		assert_int_equal(pwrite(fd, &b, 1, 40), 1);
	}
	close(fd);
	pb_test_path(out, "root-kept-3");
	pb_test_new_phone_restore(&phone, dev, "phone-root-kept", id, out, &res, &found);
	assert_true(found);
	assert_int_equal(res.items, 2);
	assert_int_equal(pb_test_roots, 1);
	/* Cut short: read again too. */
	assert_int_equal(truncate(kept, 100), 0);
	pb_test_path(out, "root-kept-4");
	pb_test_new_phone_restore(&phone, dev, "phone-root-kept", id, out, &res, &found);
	assert_true(found);
	assert_int_equal(pb_test_roots, 1);
}

/* The next lookup asks for the latest snapshot and the index chunks the
 * kept root names in one go (before it knows whether the root is still
 * the latest): after a new backup those chunks are the old snapshot's,
 * the root is fetched again, and the message is found in the new one;
 * then the new root is kept. */
static void test_kept_root_of_an_older_snapshot(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0;
	char id[512], file[4400], out[4096];
	uint64_t first;
	bool found;

	(void)state;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	first_message(id, sizeof(id), file, sizeof(file), &buf, &len);
	free(buf);
	pb_test_path(out, "stale-root-1");
	pb_test_new_phone_restore(&phone, dev, "phone-stale-root", id, out, &res, &found);
	assert_true(found);
	assert_int_equal(pb_test_roots, 1);
	first = res.snapshot;
	/* Another snapshot: the credentials change. */
	assert_int_equal(pb__gen_credentials(dev, 4, PB_GEN_SMALL), 0);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_true(res.snapshot > first);
	pb_test_path(out, "stale-root-2");
	pb_test_new_phone_restore(&phone, dev, "phone-stale-root", id, out, &res, &found);
	assert_true(found);
	assert_true(res.by_index);
	assert_true(res.snapshot > first);
	assert_int_equal(pb_test_roots, 1);
	/* The index chunks asked ahead in vain, then the lookup's own. */
	printf("one message, the kept root older than the latest: %u chunk requests\n", pb_test_gets);
	assert_true(pb_test_gets <= 10);
	pb_test_path(out, "stale-root-3");
	pb_test_new_phone_restore(&phone, dev, "phone-stale-root", id, out, &res, &found);
	assert_true(found);
	printf("one message, the kept root the latest: %u chunk requests\n", pb_test_gets);
	assert_int_equal(pb_test_roots, 0);
	assert_true(pb_test_gets <= 8);
}

static void test_v1_snapshot_restores(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0;
	char id[512], file[4400], out[4096];
	bool found;

	(void)state;
	/* A snapshot as backups wrote them before the id index. */
	pb__manifest_write_v1 = true;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	pb__manifest_write_v1 = false;
	first_message(id, sizeof(id), file, sizeof(file), &buf, &len);
	free(buf);
	/* By id on a new phone: found by walking its manifest. */
	pb_test_path(out, "v1-one");
	pb_test_new_phone_restore(&phone, dev, "phone-v1", id, out, &res, &found);
	assert_true(found);
	assert_false(res.by_index);
	assert_false(res.by_state);
	assert_true(pb_test_gets > 8);
	/* Whole, byte for byte. */
	pb_test_restore_same(&phone, dev, "v1-all");
	/* The next backup writes the index again. */
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	pb_test_path(out, "v2-one");
	pb_test_new_phone_restore(&phone, dev, "phone-v2", id, out, &res, &found);
	assert_true(found);
	assert_true(res.by_index);
}

/* Commits after the first are answered but never made (the store keeps
 * their puts uncommitted), and their receipts are failures. */
static const pb_repo_ops_t *lossy_real;
static pb_repo_ops_t lossy_ops;
static unsigned commits_sent;
#define LOST_TOK (1ull << 62)

static int lossy_commit_send(pb_repo_t *r, uint64_t *tok)
{
	if (++commits_sent == 1)
		return lossy_real->commit_send(r, tok);
	*tok = LOST_TOK + commits_sent;
	return 0;
}

static int lossy_commit_recv(pb_repo_t *r, uint64_t tok)
{
	return tok >= LOST_TOK ? PB_EIO : lossy_real->commit_recv(r, tok);
}

/* Files of dir (rel: its path under the device directory) the state holds
 * as known whole. */
static void count_recorded(pb_backup_state_t *st, const char *root, const char *rel, uint64_t *n)
{
	struct dirent *de;
	char dir[4500];
	DIR *d;

	snprintf(dir, sizeof(dir), "%s%s%s", root, rel[0] ? "/" : "", rel);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		char sub[4500], full[9000];
		struct stat st2;
		pb__stamp_t was;
		uint64_t items, bytes;
		int64_t rgen;

		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		snprintf(full, sizeof(full), "%s/%s", root, sub);
		assert_int_equal(lstat(full, &st2), 0);
		if (S_ISDIR(st2.st_mode))
			count_recorded(st, root, sub, n);
		else if (pb__state_file_get(st, sub, &was, &rgen, &items, &bytes) == 0)
			(*n)++;
	}
	closedir(d);
}

static void test_files_recorded_at_their_receipt(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	pb_backup_state_t *st;
	pb_repo_t *r2;
	pb_phone_t *p2;
	char h2[4096], d2[4096], s2[4096], sp[4200];
	uint8_t id2[16];
	uint64_t nfiles = 0, recorded = 0;

	(void)state;
	pb_test_path(h2, "receipts-phone");
	pb_test_path(d2, "receipts-device");
	pb_test_path(s2, "receipts-store");
	randombytes_buf(id2, sizeof(id2));
	/* Some 20 MB: commits go out during the walk. */
	assert_int_equal(pb__gen_chat(d2, 21, PB_GEN_SMALL), 0);
	count_files(d2, &nfiles);
	assert_int_equal(pb__repo_local_open(s2, "files", id2, &r2), 0);
	lossy_real = r2->ops;
	lossy_ops = *r2->ops;
	lossy_ops.commit_send = lossy_commit_send;
	lossy_ops.commit_recv = lossy_commit_recv;
	r2->ops = &lossy_ops;
	commits_sent = 0;
	assert_int_equal(pb_phone_open(h2, &p2), 0);
	pb__phone_set_repo(p2, r2);
	assert_int_equal(pb_phone_set_device_dir(p2, d2), 0);
	assert_int_not_equal(pb_phone_backup(p2, &o, &res), 0);
	assert_true(commits_sent >= 2);
	pb_phone_close(p2);
	/* Reopened: what the lost commits put is not in the store. */
	pb__repo_close(r2);

	assert_int_equal(pb__state_path(h2, sp, sizeof(sp)), 0);
	assert_int_equal(pb_backup_state_open(sp, &st), 0);
	count_recorded(st, d2, "", &recorded);
	pb_backup_state_close(st);
	printf("files %llu, recorded whole after the failed backup %llu, commits asked %u\n",
	       (unsigned long long)nfiles, (unsigned long long)recorded, commits_sent);
	assert_true(recorded < nfiles);

	/* Every file recorded is skipped, its chunks in the store: the
	 * snapshot is not refused for a missing chunk (which would make the
	 * phone forget its state and read every file). */
	assert_int_equal(pb__repo_local_open(s2, "files", id2, &r2), 0);
	assert_int_equal(pb_phone_open(h2, &p2), 0);
	pb__phone_set_repo(p2, r2);
	assert_int_equal(pb_phone_set_device_dir(p2, d2), 0);
	assert_int_equal(pb_phone_backup(p2, &o, &res), 0);
	assert_int_equal(res.files_skipped, recorded);
	assert_int_equal(res.files_read + res.files_skipped, nfiles);
	pb_phone_close(p2);
	pb__repo_close(r2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unchanged_files_unread),
		cmocka_unit_test(test_new_phone_one_message_by_index),
		cmocka_unit_test(test_root_kept_for_the_next_lookup),
		cmocka_unit_test(test_kept_root_of_an_older_snapshot),
		cmocka_unit_test(test_v1_snapshot_restores),
		cmocka_unit_test(test_files_recorded_at_their_receipt),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
