/* A restore through the device directory killed at each step of its
 * commit leaves every file old or new, never half: into a new folder
 * (built in a staging folder whose files are written under their own
 * names, synced, and the folder renamed into place) the target is absent
 * until the rename, then whole; into an existing folder each file is
 * staged beside its target, synced and renamed over it. A later restore
 * gives the same files as one never killed. The restoring process is a
 * child stopped at a pause point (agent/util/testhook.h) and killed there;
 * every restore runs in a child (the points are read once a process, so
 * the parent passes none). */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kinds-util.h"
#include "peerback.h"
#include "peerback/kinds.h"
#include "agent/kinds/util.h"
#include "agent/kinds/internal.h"

#define CHAT "chats/7/result.json"
#define CRED "credentials/c.json"
#define FRAME "{\"id\":7,\"name\":\"Chat\",\"type\":\"personal_chat\"}"

static const char *const msgs[] = {
	"{\"id\":1,\"type\":\"message\",\"date\":\"2024-01-01T00:00:00\",\"from\":\"Ann\",\"text\":\"one\"}",
	"{\"id\":2,\"type\":\"message\",\"date\":\"2024-01-01T00:00:01\",\"from\":\"Bob\",\"text\":\"two\"}",
	"{\"id\":3,\"type\":\"message\",\"date\":\"2024-01-01T00:00:02\",\"from\":\"Ann\",\"text\":\"three\"}",
};

static pb_item_t item(pb_kind_t kind, const char *id, const char *path, const char *data)
{
	pb_item_t it;

	memset(&it, 0, sizeof(it));
	it.kind = kind;
	it.id = id;
	it.path = path;
	it.data = (const uint8_t *)data;
	it.len = strlen(data);
	it.size = it.len;
	return it;
}

/* The restore: a chat (frame and messages, streamed) and a whole file,
 * cred the whole file's bytes. */
static int restore_into(const char *dir, const char *cred)
{
	static const char *const ids[] = { "chat/7/msg/1", "chat/7/msg/2", "chat/7/msg/3" };
	pb_provider_t *prov;
	void *txn;
	pb_item_t it;
	int rc;

	if ((rc = pb_provider_dir(dir, &prov)) != 0)
		return rc;
	if ((rc = prov->begin(prov->arg, &txn)) != 0)
		goto out;
	it = item(PB_KIND_CHAT, "chat/7", CHAT, FRAME);
	rc = prov->write(txn, &it);
	for (size_t i = 0; i < 3 && rc == 0; i++) {
		it = item(PB_KIND_CHAT, ids[i], CHAT, msgs[i]);
		it.seq = i + 1;
		rc = prov->write(txn, &it);
	}
	if (rc == 0) {
		it = item(PB_KIND_CREDENTIAL, CRED, CRED, cred);
		rc = prov->write(txn, &it);
	}
	if (rc == 0)
		rc = prov->commit(txn);
	if (rc != 0)
		prov->abort(txn);
out:
	pb_provider_dir_free(prov);
	return rc;
}

/* Runs the restore in a child stopped at point (its first pass), then
 * killed there: nothing of it runs after the point. */
static void restore_killed_at(const char *dir, const char *cred, const char *point)
{
	char env[64];
	int status;
	pid_t pid;

	snprintf(env, sizeof(env), "%s:1", point);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("PEERBACK_TEST_PAUSE", env, 1);
		setenv("PEERBACK_TEST_PAUSE_FILE", "/dev/null", 1);
		(void)restore_into(dir, cred);
		_exit(2); /* never stopped: the point is not passed */
	}
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
}

/* A restore in a child that runs to its end. */
static int restore_child(const char *dir, const char *cred)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(restore_into(dir, cred) == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Removes what killed restores left beside their targets. */
static void remove_staging(const char *dir)
{
	char cmd[4200], *argv[] = { "/bin/sh", "-c", cmd, NULL }, *so = NULL, *se = NULL;

	snprintf(cmd, sizeof(cmd), "find '%s' -name '%s*' -delete", dir, PB__DEVICE_TMP_PREFIX);
	assert_int_equal(pb_test_run(argv, NULL, 30, &so, &se), 0);
	free(so);
	free(se);
}

/* Entries of dir that are not staging. */
/* No staged file is left in dir. */
static void assert_no_staging(const char *dir)
{
	DIR *d = opendir(dir);
	size_t plen = strlen(PB__DEVICE_TMP_PREFIX);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		assert_int_not_equal(strncmp(de->d_name, PB__DEVICE_TMP_PREFIX, plen), 0);
	closedir(d);
}

static size_t visible(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_new_folder(void **state)
{
	char *parent = pb_test_tmpdir("commit-new"), *ref = pb_test_tmpdir("commit-ref");
	const char *out = kt_path(parent, "restored");
	char target[4096];
	uint8_t a[32], b[32];

	(void)state;
	snprintf(target, sizeof(target), "%s", out);
	/* Killed with every file synced, or with the staging folder complete
	 * and not yet renamed: no target, only staging beside it. */
	restore_killed_at(target, "{\"c\":1}", "device-synced");
	assert_int_equal(access(target, F_OK), -1);
	assert_int_equal(visible(parent), 0);
	restore_killed_at(target, "{\"c\":1}", "restore-staged");
	assert_int_equal(access(target, F_OK), -1);
	assert_int_equal(visible(parent), 0);
	/* Then restored whole: the files of a restore never killed. */
	assert_int_equal(restore_child(target, "{\"c\":1}"), 0);
	assert_int_equal(restore_child(kt_path(ref, "restored"), "{\"c\":1}"), 0);
	kt_dir_digest(target, a);
	kt_dir_digest(kt_path(ref, "restored"), b);
	assert_memory_equal(a, b, 32);
	kt_assert_file(kt_path(target, CRED), "{\"c\":1}", 7);
	pb_test_rmtree(parent);
	pb_test_rmtree(ref);
	free(parent);
	free(ref);
}

static void test_existing_folder(void **state)
{
	char *dir = pb_test_tmpdir("commit-old");
	uint8_t before[32], after[32];

	(void)state;
	assert_int_equal(pb_test_write_file(kt_path(dir, "keep.txt"), "keep", 4), 0);
	assert_int_equal(mkdir(kt_path(dir, "credentials"), 0700), 0);
	assert_int_equal(pb_test_write_file(kt_path(dir, CRED), "{\"c\":0}", 7), 0);
	/* Synced and not renamed: every file as it was (staging aside). */
	restore_killed_at(dir, "{\"c\":2}", "device-synced");
	kt_assert_file(kt_path(dir, CRED), "{\"c\":0}", 7);
	assert_int_equal(access(kt_path(dir, CHAT), F_OK), -1);
	/* Renamed, the folders not yet synced: every file new and whole. */
	restore_killed_at(dir, "{\"c\":2}", "device-renamed");
	kt_assert_file(kt_path(dir, CRED), "{\"c\":2}", 7);
	assert_int_equal(access(kt_path(dir, CHAT), F_OK), 0);
	kt_assert_file(kt_path(dir, "keep.txt"), "keep", 4);
	/* Restored again: the same files (the chat merged with itself). */
	remove_staging(dir);
	kt_dir_digest(dir, before);
	assert_int_equal(restore_child(dir, "{\"c\":2}"), 0);
	remove_staging(dir);
	kt_dir_digest(dir, after);
	assert_memory_equal(before, after, 32);
	pb_test_rmtree(dir);
	free(dir);
}

/* A commit of many files (synced on several threads at once at the
 * commit, or each as it is staged) into an existing folder: every file
 * whole; one staged file gone before the commit fails it, and every file
 * is as it was, no staging left. */
static void test_many_files(void **state)
{
	enum { NFILES = 150 };
	char *dir = pb_test_tmpdir("commit-many");
	pb_device_writer_t *w;
	char path[64], data[64];

	(void)state;
	assert_int_equal(mkdir(kt_path(dir, "credentials"), 0700), 0);
	for (int round = 0; round < 4; round++) {
		assert_int_equal(pb_device_writer_open(dir, &w), 0);
		/* Synced at the commit (rounds 0 and 1), or each as it is
		 * staged (2 and 3). */
		pb__device_writer_sync_dirty_min(w, round < 2 ? UINT64_MAX : 0);
		for (int i = 0; i < NFILES; i++) {
			char id[64];
			pb_item_t it;

			snprintf(id, sizeof(id), "credentials/f%03d.json", i);
			snprintf(data, sizeof(data), "{\"r\":%d,\"i\":%d}", round, i);
			it = item(PB_KIND_CREDENTIAL, id, id, data);
			assert_int_equal(pb_device_writer_add(w, &it), 0);
		}
		assert_int_equal(pb_device_writer_stage(w), 0);
		if (round % 2 == 1) {
			/* The 100th file's staged copy removed: the sync fails. */
			char cmd[4400], *argv[] = { "/bin/sh", "-c", cmd, NULL }, *so = NULL, *se = NULL;

			snprintf(cmd, sizeof(cmd), "rm '%s'/credentials/%sf099.json-*", dir, PB__DEVICE_TMP_PREFIX);
			assert_int_equal(pb_test_run(argv, NULL, 30, &so, &se), 0);
			free(so);
			free(se);
			assert_int_not_equal(pb_device_writer_commit(w), 0);
		} else {
			assert_int_equal(pb_device_writer_commit(w), 0);
		}
		pb_device_writer_free(w);
		for (int i = 0; i < NFILES; i++) {
			snprintf(path, sizeof(path), "credentials/f%03d.json", i);
			snprintf(data, sizeof(data), "{\"r\":%d,\"i\":%d}", round - round % 2, i);
			kt_assert_file(kt_path(dir, path), data, strlen(data));
		}
		assert_int_equal(visible(kt_path(dir, "credentials")), NFILES);
	}
	/* Nothing staged is left behind by the failed commits. */
	assert_no_staging(kt_path(dir, "credentials"));
	pb_test_rmtree(dir);
	free(dir);
}

/* A commit of many files whose files are synced as they are staged
 * (agent/kinds/device-sync.c), each file staged twice (the second stage
 * replaces the first, which may be synced already or still queued), into
 * an existing folder and into a fresh one (files under their own names):
 * every file holds its second content, nothing staged is left. */
static void test_many_files_staged_again(void **state)
{
	enum { NFILES = 300 };
	char path[64], data[64];

	(void)state;
	for (int fresh = 0; fresh < 2; fresh++) {
		char *dir = pb_test_tmpdir("commit-again");
		pb_device_writer_t *w;

		assert_int_equal(mkdir(kt_path(dir, "credentials"), 0700), 0);
		assert_int_equal(pb_device_writer_open(dir, &w), 0);
		pb__device_writer_sync_dirty_min(w, 0);
		if (fresh)
			pb__device_writer_fresh(w);
		for (int round = 0; round < 2; round++) {
			for (int i = 0; i < NFILES; i++) {
				pb_item_t it;

				snprintf(path, sizeof(path), "credentials/f%03d.json", i);
				snprintf(data, sizeof(data), "{\"r\":%d,\"i\":%d}", round, i);
				it = item(PB_KIND_CREDENTIAL, path, path, data);
				assert_int_equal(pb_device_writer_add(w, &it), 0);
				/* Staged in runs: some files of the first round
				 * are synced before their second stage, some not. */
				if (i % 37 == 36)
					assert_int_equal(pb_device_writer_stage(w), 0);
			}
			assert_int_equal(pb_device_writer_stage(w), 0);
		}
		assert_int_equal(pb_device_writer_commit(w), 0);
		pb_device_writer_free(w);
		for (int i = 0; i < NFILES; i++) {
			snprintf(path, sizeof(path), "credentials/f%03d.json", i);
			snprintf(data, sizeof(data), "{\"r\":%d,\"i\":%d}", 1, i);
			kt_assert_file(kt_path(dir, path), data, strlen(data));
		}
		assert_int_equal(visible(kt_path(dir, "credentials")), NFILES);
		assert_no_staging(kt_path(dir, "credentials"));
		pb_test_rmtree(dir);
		free(dir);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_folder),
		cmocka_unit_test(test_existing_folder),
		cmocka_unit_test(test_many_files),
		cmocka_unit_test(test_many_files_staged_again),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
