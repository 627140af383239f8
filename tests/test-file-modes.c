/* Files peerback creates are readable by their owner only: with umask 022
 * and state directories that already exist at 0755, the account service,
 * a host and two phones (pair, backup, restore) run as the real programs,
 * then every file and folder under their homes and the restore target is
 * checked: files 0600, folders 0700, SQLite's -wal/-shm/-journal files
 * included. A home open to others is tightened and the user is told. */
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "peerback/store.h"
#include "agent/host/hostdb.h"
#include "agent/imd/imd.h"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone[4096], phone2[4096], dev[4096], restored[4096];

/* Offending paths found by the walk, one a line. */
static char bad[16384];
static size_t bad_len, walked;
/* A home that was tightened without a word to the user. */
static char untold[8192];

static void open_home(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(mkdir(out, 0755), 0);
	assert_int_equal(chmod(out, 0755), 0);
}

static int check_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	unsigned mode = (unsigned)st->st_mode & 07777;
	unsigned want;
	int n;

	(void)flag;
	walked++;
	if (S_ISREG(st->st_mode))
		want = 0600;
	else if (S_ISDIR(st->st_mode))
		want = 0700;
	else if (S_ISSOCK(st->st_mode) && strcmp(path + ftw->base, "control.sock") == 0)
		want = 0600; /* a running host's control socket */
	else
		want = 0; /* nothing else belongs there, a symlink least of all */
	if (mode == want && (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode) || S_ISSOCK(st->st_mode)))
		return 0;
	n = snprintf(bad + bad_len, sizeof(bad) - bad_len, "  %04o %s\n", mode, path);
	if (n > 0 && (size_t)n < sizeof(bad) - bad_len)
		bad_len += (size_t)n;
	return 0;
}

static void walk(const char *root)
{
	assert_int_equal(nftw(root, check_entry, 16, FTW_PHYS), 0);
}

/* Walks every place peerback wrote to; fails listing each offender. */
static void assert_private(const char *when)
{
	bad_len = 0;
	bad[0] = 0;
	walked = 0;
	walk(imd.home);
	walk(host_home);
	walk(phone);
	walk(phone2);
	walk(restored);
	if (bad_len > 0)
		fail_msg("%s: files not 0600 or folders not 0700 (of %zu checked):\n%s", when, walked, bad);
	assert_true(walked > 20);
}

static int run(const char *home, char *const args[], char **err_out)
{
	char *err = NULL;
	int rc = pb_test_peerback(home, args, NULL, &err);

	if (rc != 0)
		printf("peerback %s: exit %d: %s", args[0], rc, err);
	if (err_out != NULL)
		*err_out = err;
	else
		free(err);
	return rc;
}

/* Logs home in; the first command on an open home tightens it and says so. */
static void login(const char *home, const char *name)
{
	char *args[] = { "account", "login", "--imd", imd.addr, "--imd-key", imd.key, "--account", "alice",
			 "--name", (char *)name, NULL };
	char *err = NULL;
	struct stat st;

	assert_int_equal(run(home, args, &err), 0);
	if (strstr(err, "0700") == NULL && untold[0] == 0)
		snprintf(untold, sizeof(untold), "%s (stderr: '%s')", home, err);
	free(err);
	assert_int_equal(stat(home, &st), 0);
}

static void pair(const char *home)
{
	char *args[] = { "pair", host.uri, NULL };
	char line[4096];

	assert_int_equal(run(home, args, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	/* A fresh QR code for the next phone. */
	kill(host.proc.pid, SIGUSR1);
	assert_true(pb_test_host_wait(&host, "advertise", line, sizeof(line), 10000) > 0);
}

static void test_modes_after_pair_backup_restore(void **state)
{
	const char *accounts[] = { "alice", NULL };
	char imd_dir[4200];

	(void)state;
	umask(022);
	dir = pb_test_tmpdir("file-modes");
	/* The account service's home exists and is open to others. */
	snprintf(imd_dir, sizeof(imd_dir), "%s/imd", dir);
	assert_int_equal(mkdir(imd_dir, 0755), 0);
	pb_test_imd_start(&imd, dir, accounts, NULL);
	open_home(host_home, "host");
	open_home(phone, "phone");
	open_home(phone2, "phone2");
	snprintf(dev, sizeof(dev), "%s/source", dir);
	snprintf(restored, sizeof(restored), "%s/restored", dir);
	login(host_home, "desk");
	login(phone, "phone");
	login(phone2, "phone-2");
	pb_test_host_start(&host, host_home, "127.0.0.1:0", NULL);
	pair(phone);
	pair(phone2);
	{
		/* The generated data stand in for the phone's own files: they
		 * live outside the homes, only what peerback writes is checked. */
		char *gen[] = { "gen", "--out", dev, "--seed", "5", "--size", "small", NULL };
		char *backup[] = { "backup", "--device", dev, NULL };
		char *restore[] = { "restore", "--to", restored, NULL };
		char *restore2[] = { "restore", NULL };

		assert_int_equal(run(phone, gen, NULL), 0);
		assert_int_equal(run(phone, backup, NULL), 0);
		assert_int_equal(run(phone, restore, NULL), 0);
		/* A new phone of the account: master key, state, device files. */
		assert_int_equal(run(phone2, restore2, NULL), 0);
	}
	/* While the host and the service run, their databases' -wal and -shm
	 * files exist too. */
	assert_private("while running");
	pb_test_host_stop(&host);
	pb_test_imd_stop(&imd);
	assert_private("after stopping");
	if (untold[0] != 0)
		fail_msg("no word on stderr that a home open to others was made 0700: %s", untold);
}

static int teardown(void **state)
{
	(void)state;
	pb_test_host_stop(&host);
	pb_test_imd_stop(&imd);
	if (dir != NULL)
		pb_test_rmtree(dir);
	free(dir);
	return 0;
}

/* The library sets the modes itself, for an app that embeds it under any
 * umask, and tightens a database an earlier version left 0644. */
static void test_library_modes(void **state)
{
	char *lib = pb_test_tmpdir("file-modes-lib");
	char path[4200];
	pb_hostdb_t hdb;
	pb_store_t *store;
	pb_backup_state_t *st;
	pb_imd_t *service;

	(void)state;
	umask(022);
	snprintf(path, sizeof(path), "%s/host.db", lib);
	assert_int_equal(pb_test_write_file(path, "", 0), 0);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(pb__hostdb_open(lib, &hdb), 0);
	pb__hostdb_close(&hdb);
	snprintf(path, sizeof(path), "%s/store", lib);
	assert_int_equal(pb_store_open(path, &store), 0);
	pb_store_close(store);
	snprintf(path, sizeof(path), "%s/backup-state.db", lib);
	assert_int_equal(pb_backup_state_open(path, &st), 0);
	pb_backup_state_close(st);
	snprintf(path, sizeof(path), "%s/imd", lib);
	assert_int_equal(pb_imd_open(path, &service), 0);
	pb_imd_close(service);
	bad_len = 0;
	bad[0] = 0;
	walked = 0;
	walk(lib);
	if (bad_len > 0)
		fail_msg("files not 0600 or folders not 0700 (of %zu checked):\n%s", walked, bad);
	assert_true(walked >= 6);
	pb_test_rmtree(lib);
	free(lib);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes_after_pair_backup_restore),
		cmocka_unit_test(test_library_modes),
	};

	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, teardown);
}
