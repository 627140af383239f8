/* A restore killed at any point leaves nothing half-written and resumes:
 * the restore cache (one file of sealed chunks, agent/backup/restore-cache.c)
 * keeps what was fetched across a crash, cuts a torn record, and a damaged
 * one is fetched again; a restore process killed (SIGKILL) midway leaves a
 * new target absent and an existing one as it was, and the next run takes
 * the chunks the killed one fetched and restores the same bytes. In
 * process, against a host store opened here (the local repository). */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "inproc.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/repo.h"
#include "agent/kinds/internal.h"
#include "agent/phone/handle.h"
#include "agent/util/fsutil.h"

#define NCHUNKS 200

static size_t chunk_len(size_t i)
{
	return 1 + (i * 7919) % 20000;
}

static void chunk_fill(size_t i, uint8_t name[PB_STORE_NAME_LEN], uint8_t *buf)
{
	memset(name, 0, PB_STORE_NAME_LEN);
	name[0] = (uint8_t)i;
	name[1] = (uint8_t)(i >> 8);
	name[31] = 0x5a;
	for (size_t k = 0; k < chunk_len(i); k++)
		buf[k] = (uint8_t)(i * 31 + k);
}

static size_t file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? (size_t)st.st_size : 0;
}

/* The cache file: what one run kept, the next finds; a torn last record is
 * cut, the others stay; a file that is not a cache is started afresh. */
static void test_cache_file(void **state)
{
	char home[4096], file[4200];
	uint8_t name[PB_STORE_NAME_LEN], *want = malloc(20000), *ct;
	pb__cache_t *c;
	size_t len, size;

	(void)state;
	assert_non_null(want);
	pb_test_path(home, "cache-home");
	snprintf(file, sizeof(file), "%s/restore-cache/chunks", home);
	assert_int_equal(pb__mkdirs(home, 0700), 0);
	assert_int_equal(pb__cache_open(home, &c), 0);
	/* Nothing is made before the first chunk is kept. */
	assert_int_equal(access(file, F_OK), -1);
	for (size_t i = 0; i < NCHUNKS; i++) {
		chunk_fill(i, name, want);
		assert_false(pb__cache_has(c, name));
		pb__cache_keep(c, name, want, chunk_len(i));
		/* Found by the next run, not looked up by this one. */
		assert_false(pb__cache_has(c, name));
	}
	/* One kept by this run that did not open: forgotten for the next. */
	chunk_fill(NCHUNKS + 1, name, want);
	pb__cache_keep(c, name, want, 100);
	pb__cache_forget(c, name);
	pb__cache_close(c);

	assert_int_equal(pb__cache_open(home, &c), 0);
	for (size_t i = 0; i < NCHUNKS; i++) {
		chunk_fill(i, name, want);
		assert_true(pb__cache_has(c, name));
		assert_int_equal(pb__cache_read(c, name, &ct, &len), 0);
		assert_int_equal(len, chunk_len(i));
		assert_memory_equal(ct, want, len);
		free(ct);
	}
	chunk_fill(NCHUNKS + 1, name, want);
	assert_false(pb__cache_has(c, name));
	/* Forgotten: not offered again in this run. */
	chunk_fill(3, name, want);
	pb__cache_forget(c, name);
	assert_false(pb__cache_has(c, name));
	assert_int_equal(pb__cache_read(c, name, &ct, &len), PB_ENOTFOUND);
	chunk_fill(4, name, want);
	assert_true(pb__cache_has(c, name));
	pb__cache_close(c);

	/* A crash in the middle of the last record (the forgotten one). */
	size = file_size(file);
	assert_int_equal(truncate(file, (off_t)(size - 5)), 0);
	assert_int_equal(pb__cache_open(home, &c), 0);
	assert_int_equal(file_size(file), size - (PB_STORE_NAME_LEN + 4) - 100);
	chunk_fill(NCHUNKS - 1, name, want);
	assert_int_equal(pb__cache_read(c, name, &ct, &len), 0);
	assert_int_equal(len, chunk_len(NCHUNKS - 1));
	assert_memory_equal(ct, want, len);
	free(ct);
	/* Kept after the cut: found by the next run. */
	chunk_fill(NCHUNKS + 2, name, want);
	pb__cache_keep(c, name, want, 777);
	pb__cache_close(c);
	assert_int_equal(pb__cache_open(home, &c), 0);
	assert_int_equal(pb__cache_read(c, name, &ct, &len), 0);
	assert_int_equal(len, 777);
	assert_memory_equal(ct, want, len);
	free(ct);
	pb__cache_close(c);

	/* Not a cache: nothing is taken from it. */
	assert_int_equal(pb_test_write_file(file, "something else entirely", 23), 0);
	assert_int_equal(pb__cache_open(home, &c), 0);
	assert_false(pb__cache_has(c, name));
	pb__cache_close(c);
	pb__cache_drop(home);
	assert_int_equal(access(file, F_OK), -1);
	free(want);
}

/* The opener hands chunks back in order, a chunk that compressed far
 * (its plaintext much larger than its sealed form) and a damaged one too. */
static void test_opener(void **state)
{
	pb_backup_keys_t keys;
	uint8_t mk[PB_MASTERKEY_LEN], names[40][PB_STORE_NAME_LEN];
	size_t lens[40];
	pb__opener_t *op;

	(void)state;
	randombytes_buf(mk, sizeof(mk));
	pb_backup_keys_derive(mk, &keys);
	assert_int_equal(pb__opener_new(&keys, &op), 0);
	for (size_t i = 0; i < 40; i++) {
		size_t len = i == 5 ? 3u << 20 : i % 7 == 0 ? 200000 : 1 + i * 131;
		uint8_t *plain = calloc(1, len), *ct = malloc(len + 1024);
		size_t ct_len;

		assert_non_null(plain);
		assert_non_null(ct);
		if (i % 2 == 1)
			randombytes_buf(plain, len);
		assert_int_equal(pb_chunk_seal(&keys, plain, len, names[i], ct, &ct_len), 0);
		if (i == 9)
			ct[ct_len - 1] ^= 1;
		lens[i] = len;
		assert_true(pb__opener_room(op));
		pb__opener_put(op, names[i], ct, ct_len, i);
		free(plain);
		if (pb__opener_waiting(op) >= 4 || i == 39) {
			while (pb__opener_waiting(op) > 0) {
				uint8_t *back, *out;
				size_t blen, olen;
				uint64_t tag;
				int rc = pb__opener_take(op, &back, &blen, &tag, &out, &olen);

				assert_true(tag <= i);
				if (tag == 9) {
					assert_int_not_equal(rc, 0);
					assert_null(out);
				} else {
					assert_int_equal(rc, 0);
					assert_int_equal(olen, lens[tag]);
				}
				free(back);
				free(out);
			}
		}
	}
	/* Handed over and never taken: freed with the opener. */
	{
		uint8_t *ct = malloc(64);

		assert_non_null(ct);
		memset(ct, 1, 64);
		pb__opener_put(op, names[0], ct, 64, 0);
	}
	pb__opener_free(op);
	pb_backup_keys_wipe(&keys);
}

static uint64_t kill_at;

/* The process dies once kill_at items are restored: no cleanup runs. */
static int killer(void *arg, const pb_event_t *e)
{
	(void)arg;
	if (e->type == PB_EVENT_PROGRESS && strcmp(e->phase, "restore") == 0 && e->items_done >= kill_at)
		raise(SIGKILL);
	return 0;
}

/* Restores p's latest backup into dir in a child process that is killed
 * after at items. */
static void restore_killed(pb_test_phone_t *p, const char *dir, uint64_t at)
{
	pid_t pid;
	int status;

	pb_test_phone_close(p);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pb_op_opts_t o = pb_test_opts();
		pb_op_result_t res;

		pb_test_phone_open(p);
		kill_at = at;
		o.on_event = killer;
		if (pb_phone_set_device_dir(p->ph, dir) != 0)
			_exit(3);
		(void)pb_phone_restore(p->ph, &o, &res);
		_exit(2); /* finished before the kill: the test is wrong */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	pb_test_phone_open(p);
}

/* Files of dir (relative, sorted) that are not a restore's staging. */
static size_t visible_files(const char *dir)
{
	char cmd[8400], *out = NULL, *err = NULL;
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	size_t n = 0;

	snprintf(cmd, sizeof(cmd), "cd '%s' && find . -type f ! -name '%s*' ! -path '*/%s*' | wc -l", dir,
		 PB_TMP_PREFIX, PB_TMP_PREFIX);
	assert_int_equal(pb_test_run(argv, NULL, 30, &out, &err), 0);
	n = (size_t)strtoul(out, NULL, 10);
	free(out);
	free(err);
	return n;
}

static void test_killed_restore_resumes(void **state)
{
	pb_test_phone_t p;
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	char dev[4096], out[4096], cache[4200], file[4200], before[65], after[65];
	uint64_t total;

	(void)state;
	pb_test_phone_init(&p, "phone", "acct");
	pb_test_path(dev, "device");
	pb_test_path(out, "restored");
	snprintf(cache, sizeof(cache), "%s/restore-cache/chunks", p.home);
	assert_int_equal(pb__gen_chat(dev, 1, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_credentials(dev, 1, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_contacts(dev, 1, PB_GEN_SMALL), 0);
	assert_int_equal(pb_phone_set_device_dir(p.ph, dev), 0);
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	total = res.items;
	assert_true(total > 100);

	/* Into a new folder, killed halfway: no folder, the chunks kept. */
	restore_killed(&p, out, total / 2);
	assert_int_equal(access(out, F_OK), -1);
	assert_true(file_size(cache) > 0);
	assert_int_equal(pb_phone_set_device_dir(p.ph, out), 0);
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), 0);
	assert_true(res.chunks_cached > 0);
	assert_int_equal(res.items, total);
	assert_int_equal(pb_test_same_tree(dev, out), 0);
	assert_int_equal(access(cache, F_OK), -1);

	/* Into an existing one with a file changed, killed near the end (its
	 * files staged, none renamed): every file as it was, nothing new but
	 * staging. */
	snprintf(file, sizeof(file), "%s/credentials/access-001.json", out);
	if (access(file, F_OK) != 0) {
		char *argv[] = { "/bin/sh", "-c", NULL, NULL }, cmd[8400], *sout = NULL, *serr = NULL;

		snprintf(cmd, sizeof(cmd), "ls '%s/credentials' | head -n 1 | tr -d '\\n'", out);
		argv[2] = cmd;
		assert_int_equal(pb_test_run(argv, NULL, 30, &sout, &serr), 0);
		snprintf(file, sizeof(file), "%s/credentials/%s", out, sout);
		free(sout);
		free(serr);
	}
	assert_int_equal(pb_test_write_file(file, "changed", 7), 0);
	pb_test_file_digest(file, before);
	{
		size_t files = visible_files(out);

		restore_killed(&p, out, total - 1);
		assert_int_equal(visible_files(out), files);
	}
	pb_test_file_digest(file, after);
	assert_string_equal(before, after);
	{
		/* A byte of the last cached chunk flipped. */
		size_t len = 0;
		uint8_t *buf = pb_test_read_file(cache, &len);

		assert_non_null(buf);
		assert_true(len > 100);
		buf[len - 3] ^= 0x40;
		assert_int_equal(pb_test_write_file(cache, buf, len), 0);
		free(buf);
	}
	/* The damaged chunk fails its check like a damaged reply: that run
	 * fails and changes nothing, the next fetches it again. */
	assert_int_equal(pb_phone_set_device_dir(p.ph, out), 0);
	assert_int_not_equal(pb_phone_restore(p.ph, &o, &res), 0);
	pb_test_file_digest(file, after);
	assert_string_equal(before, after);
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), 0);
	assert_true(res.chunks_cached > 0);
	pb_test_file_digest(file, after);
	assert_string_not_equal(before, after);
	/* The killed run's staged files stay beside their targets under the
	 * staging prefix, which backups and restores skip. */
	{
		char cmd[8400], *argv[] = { "/bin/sh", "-c", cmd, NULL }, *sout = NULL, *serr = NULL;

		snprintf(cmd, sizeof(cmd), "find '%s' -name '%s*' -type f -delete", out, PB_TMP_PREFIX);
		assert_int_equal(pb_test_run(argv, NULL, 30, &sout, &serr), 0);
		free(sout);
		free(serr);
	}
	assert_int_equal(pb_test_same_tree(dev, out), 0);
	assert_int_equal(access(cache, F_OK), -1);
	pb_test_phone_close(&p);
}

#define NBIG 10
#define BIG_LEN (3u << 20)

/* Files of the restore cache's folder named staged-*. */
static size_t staged_files(const char *home, char *first, size_t cap)
{
	char dir[4200];
	DIR *d;
	struct dirent *e;
	size_t n = 0;

	snprintf(dir, sizeof(dir), "%s/restore-cache", home);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "staged-", 7) == 0) {
			if (n++ == 0)
				snprintf(first, cap, "%s/%s", dir, e->d_name);
		}
	closedir(d);
	return n;
}

/* A phone whose device folder holds NBIG large files (written into their
 * temporary files on the write queue's thread) and a few small items. */
static uint64_t backup_big(pb_test_phone_t *p, const char *dev, uint64_t *chunks)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	char path[4200];
	uint8_t *buf = malloc(BIG_LEN);
	char chat[4200] = "";
	DIR *d;
	struct dirent *e;

	assert_non_null(buf);
	assert_int_equal(pb__gen_credentials(dev, 1, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_chat(dev, 1, PB_GEN_SMALL), 0);
	/* The large files are a chat's videos. */
	snprintf(path, sizeof(path), "%s/chats", dev);
	assert_non_null(d = opendir(path));
	while ((e = readdir(d)) != NULL && chat[0] == 0)
		if (e->d_name[0] != '.')
			snprintf(chat, sizeof(chat), "%s/%s/video_files", path, e->d_name);
	closedir(d);
	assert_int_equal(pb__mkdirs(chat, 0700), 0);
	for (size_t i = 0; i < NBIG; i++) {
		randombytes_buf(buf, BIG_LEN);
		snprintf(path, sizeof(path), "%s/big-%02zu.mp4", chat, i);
		assert_int_equal(pb_test_write_file(path, buf, BIG_LEN - i * 1000), 0);
	}
	free(buf);
	assert_int_equal(pb_phone_set_device_dir(p->ph, dev), 0);
	assert_int_equal(pb_phone_backup(p->ph, &o, &res), 0);
	*chunks = res.chunks_total;
	return res.items;
}

/* Killed after some large files were restored: their chunks are not
 * copied into the cache (its file stays small) but noted in their staged
 * files, which the next run reads back, checks and counts as kept. */
static void test_killed_large_resumes(void **state)
{
	pb_test_phone_t p;
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	char dev[4096], out[4096], cache[4200], staged[4300];
	uint64_t total, chunks;

	(void)state;
	pb_test_phone_init(&p, "phone-big", "acct-big");
	pb_test_path(dev, "device-big");
	pb_test_path(out, "restored-big");
	snprintf(cache, sizeof(cache), "%s/restore-cache/chunks", p.home);
	total = backup_big(&p, dev, &chunks);
	assert_true(chunks >= NBIG * 2);

	restore_killed(&p, out, total - 3);
	assert_int_equal(access(out, F_OK), -1);
	assert_true(staged_files(p.home, staged, sizeof(staged)) >= NBIG / 2);
	/* References, not copies: the small items' chunks, less than one
	 * of the NBIG large files. */
	assert_true(file_size(cache) < BIG_LEN);
	assert_int_equal(pb_phone_set_device_dir(p.ph, out), 0);
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), 0);
	/* Most of what the killed run fetched is not fetched again: at
	 * least the chunks of the first half of the large files. */
	assert_true(res.chunks_cached * 2 >= chunks * 4 / 10);
	assert_true(res.chunks_cached <= chunks);
	assert_int_equal(res.items, total);
	assert_int_equal(pb_test_same_tree(dev, out), 0);
	assert_int_equal(access(cache, F_OK), -1);
	assert_int_equal(staged_files(p.home, staged, sizeof(staged)), 0);
	pb_test_phone_close(&p);
	pb_test_rmtree(out);
	pb_test_rmtree(dev);
}

/* A staged file changed after the kill, another removed: their chunks do
 * not match their names or cannot be read, are fetched again in the same
 * run, and the files come out right. */
static void test_corrupted_staged_file(void **state)
{
	pb_test_phone_t p;
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	char dev[4096], out[4096], staged[4300];
	uint64_t total, chunks, kept;

	(void)state;
	pb_test_phone_init(&p, "phone-bad", "acct-bad");
	pb_test_path(dev, "device-bad");
	pb_test_path(out, "restored-bad");
	total = backup_big(&p, dev, &chunks);

	restore_killed(&p, out, total - 3);
	assert_true(staged_files(p.home, staged, sizeof(staged)) > 0);
	{
		/* A byte of the first staged file flipped, another truncated
		 * away at its end. */
		size_t len = 0;
		uint8_t *buf = pb_test_read_file(staged, &len);

		assert_non_null(buf);
		assert_true(len > 1000);
		buf[len / 3] ^= 0x40;
		assert_int_equal(pb_test_write_file(staged, buf, len - 1), 0);
		free(buf);
	}
	{
		/* Another staged file gone. */
		char dir[4200], other[4600] = "";
		DIR *d;
		struct dirent *e;

		snprintf(dir, sizeof(dir), "%s/restore-cache", p.home);
		assert_non_null(d = opendir(dir));
		while ((e = readdir(d)) != NULL)
			if (strncmp(e->d_name, "staged-", 7) == 0 && strcmp(strrchr(staged, '/') + 1, e->d_name) != 0)
				snprintf(other, sizeof(other), "%s/%s", dir, e->d_name);
		closedir(d);
		if (other[0])
			assert_int_equal(unlink(other), 0);
	}
	assert_int_equal(pb_phone_set_device_dir(p.ph, out), 0);
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), 0);
	/* The other staged files still serve: the output is right only if
	 * the damaged chunks were fetched again. */
	kept = res.chunks_cached;
	assert_true(kept > 0 && kept < chunks);
	assert_int_equal(res.items, total);
	assert_int_equal(pb_test_same_tree(dev, out), 0);
	assert_int_equal(staged_files(p.home, staged, sizeof(staged)), 0);
	pb_test_phone_close(&p);
	pb_test_rmtree(out);
	pb_test_rmtree(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_file),
		cmocka_unit_test(test_opener),
		cmocka_unit_test(test_killed_restore_resumes),
		cmocka_unit_test(test_killed_large_resumes),
		cmocka_unit_test(test_corrupted_staged_file),
	};

	return cmocka_run_group_tests(tests, pb_test_dir_setup, pb_test_dir_teardown);
}
