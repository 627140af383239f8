/* The recovery passphrase: a weak one is refused before anything is set,
 * the wrapped master key the host keeps is made with Argon2id at libsodium's
 * MODERATE limits unless the test switch PEERBACK_TEST_WEAK_KDF=1 is set,
 * and a key wrapped earlier at the INTERACTIVE limits (even under a short
 * passphrase) still opens on a new phone. The account service, the host and
 * the phones run as the real programs. */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "peerback/store.h"
#include "agent/util/fsutil.h"

#define GOOD_PASSPHRASE "four words of recovery"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host, other_hosts[3];
static char host_home[4096], dev[4096];
static char *err_text;

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

/* Runs peerback on home with this recovery passphrase, the test KDF switch
 * on or off; stderr stays in err_text until the next run. */
static int run(const char *home, char *const args[], const char *passphrase, bool weak_kdf)
{
	char *tool = pb_test_tool("peerback");
	char pass_env[256];
	char *env[] = { "PEERBACK_PASSWORD=" PB_TEST_PASSWORD, pass_env,
			weak_kdf ? "PEERBACK_TEST_WEAK_KDF=1" : "PEERBACK_TEST_WEAK_KDF=0", NULL };
	char *argv[32];
	int n = 0, rc;

	snprintf(pass_env, sizeof(pass_env), "PEERBACK_RECOVERY_PASSPHRASE=%s", passphrase);
	argv[n++] = tool;
	argv[n++] = "--home";
	argv[n++] = (char *)home;
	for (size_t i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	free(err_text);
	err_text = NULL;
	rc = pb_test_run(argv, env, 300, NULL, &err_text);
	if (rc != 0)
		printf("peerback %s: exit %d: %s", args[0], rc, err_text);
	free(tool);
	return rc;
}

/* Logs home into account and pairs it; returns its device id (hex) in id.
 * The devices of one account share its recovery passphrase: a test that
 * sets a passphrase of its own uses an account of its own. */
static void new_phone_at(char *home, const char *name, char id[64], const char *account, pb_test_host_t *h)
{
	char *pair[] = { "pair", h->uri, NULL };
	char line[4096];

	mk(home, name);
	assert_int_equal(pb_test_login(&imd, home, account, name), 0);
	assert_int_equal(pb_test_peerback(home, pair, NULL, NULL), 0);
	assert_true(pb_test_host_wait(h, "paired", line, sizeof(line), 10000) > 0);
	assert_int_equal(pb_test_json_str(line, "device", id, 64), 0);
	kill(h->proc.pid, SIGUSR1);
	assert_true(pb_test_host_wait(h, "advertise", line, sizeof(line), 10000) > 0);
}

static void new_phone(char *home, const char *name, char id[64])
{
	new_phone_at(home, name, id, "alice", &host);
}

/* A phone of another account (bob: 0, carol: 1, dave: 2), with a host of
 * its own. */
static void new_phone_in(char *home, const char *name, char id[64], int account)
{
	const char *names[] = { "bob", "carol", "dave" };
	pb_test_host_t *h = &other_hosts[account];

	if (h->proc.pid <= 0) {
		char hh[4096], label[32];

		snprintf(label, sizeof(label), "host-%s", names[account]);
		mk(hh, label);
		assert_int_equal(pb_test_login(&imd, hh, names[account], "desk"), 0);
		pb_test_host_start(h, hh, "127.0.0.1:0", NULL);
	}
	new_phone_at(home, name, id, names[account], h);
}

/* The Argon2id limits recorded in a phone's wrapped master key. */
static void wrap_limits(const char *home, uint64_t *ops, uint64_t *mem)
{
	char path[4200];
	size_t len;
	uint8_t *b;

	snprintf(path, sizeof(path), "%s/master.wrapped", home);
	b = pb_test_read_file(path, &len);
	assert_non_null(b);
	assert_int_equal(len, PB_MASTERKEY_WRAPPED_LEN);
	*ops = *mem = 0;
	for (int i = 7; i >= 0; i--) {
		*ops = *ops << 8 | b[8 + i];
		*mem = *mem << 8 | b[16 + i];
	}
	free(b);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", "bob", "carol", "dave", NULL };
	char *gen[] = { "gen", "--out", dev, "--seed", "7", "--size", "small", NULL };

	(void)state;
	dir = pb_test_tmpdir("passphrase");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", NULL);
	snprintf(dev, sizeof(dev), "%s/source", dir);
	assert_int_equal(pb_test_peerback(host_home, gen, NULL, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_host_stop(&host);
	pb_test_host_stop(&other_hosts[0]);
	pb_test_host_stop(&other_hosts[1]);
	pb_test_host_stop(&other_hosts[2]);
	pb_test_imd_stop(&imd);
	pb_test_rmtree(dir);
	free(dir);
	free(err_text);
	return 0;
}

/* A one-character passphrase, or a long one of one repeated character, is
 * refused with the rule, before the host holds anything. */
static void test_weak_passphrase_refused(void **state)
{
	char home[4096], id[64], path[4200];
	char *backup[] = { "backup", "--device", dev, NULL };
	const char *weak[] = { "x", "short pass", "aaaaaaaaaaaaaaaa" };

	(void)state;
	new_phone(home, "weak", id);
	for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
		assert_int_not_equal(run(home, backup, weak[i], true), 0);
		if (strstr(err_text, "12 characters") == NULL)
			fail_msg("passphrase '%s': no rule in the refusal: '%s'", weak[i], err_text);
	}
	snprintf(path, sizeof(path), "%s/master.key", home);
	assert_int_not_equal(access(path, F_OK), 0);
	/* The host holds no key for it: a new backup with a good passphrase
	 * sets one. */
	assert_int_equal(run(home, backup, GOOD_PASSPHRASE, true), 0);
}

/* Without the test switch the wrap records the MODERATE limits; with it,
 * the INTERACTIVE ones. */
static void test_wrap_limits(void **state)
{
	char strong[4096], fast[4096], id[64];
	char *backup[] = { "backup", "--device", dev, NULL };
	uint64_t ops, mem;

	(void)state;
	new_phone_in(strong, "strong", id, 0);
	assert_int_equal(run(strong, backup, GOOD_PASSPHRASE, false), 0);
	wrap_limits(strong, &ops, &mem);
	assert_int_equal(ops, crypto_pwhash_OPSLIMIT_MODERATE);
	assert_int_equal(mem, crypto_pwhash_MEMLIMIT_MODERATE);
	new_phone_in(fast, "fast", id, 1);
	assert_int_equal(run(fast, backup, GOOD_PASSPHRASE, true), 0);
	wrap_limits(fast, &ops, &mem);
	assert_int_equal(ops, crypto_pwhash_OPSLIMIT_INTERACTIVE);
	assert_int_equal(mem, crypto_pwhash_MEMLIMIT_INTERACTIVE);
}

/* A key wrapped before the rule, at the INTERACTIVE limits under a short
 * passphrase, opens on a new phone that runs without the test switch. */
static void test_old_interactive_wrap_opens(void **state)
{
	char old[4096], fresh[4096], old_id[64], fresh_id[64], path[4200];
	char *backup[] = { "backup", "--device", dev, NULL };
	char *restore[] = { "restore", "--from", old_id, NULL };
	uint8_t mk[PB_MASTERKEY_LEN], wrapped[PB_MASTERKEY_WRAPPED_LEN];
	pb_pwhash_params_t p = pb_pwhash_params_interactive();
	uint64_t ops, mem;

	(void)state;
	new_phone(old, "old", old_id);
	/* The phone's state as an earlier version left it. */
	pb_masterkey_generate(mk);
	assert_int_equal(pb_masterkey_wrap(mk, "x", &p, wrapped), 0);
	snprintf(path, sizeof(path), "%s/master.key", old);
	assert_int_equal(pb_test_write_file(path, mk, sizeof(mk)), 0);
	snprintf(path, sizeof(path), "%s/master.wrapped", old);
	assert_int_equal(pb_test_write_file(path, wrapped, sizeof(wrapped)), 0);
	/* Its backup gives the host that wrapped key. */
	assert_int_equal(run(old, backup, "x", false), 0);
	new_phone(fresh, "fresh", fresh_id);
	assert_int_equal(run(fresh, restore, "x", false), 0);
	wrap_limits(fresh, &ops, &mem);
	assert_int_equal(ops, crypto_pwhash_OPSLIMIT_INTERACTIVE);
	snprintf(path, sizeof(path), "%s/master.key", fresh);
	{
		size_t len;
		uint8_t *got = pb_test_read_file(path, &len);

		assert_non_null(got);
		assert_int_equal(len, sizeof(mk));
		assert_memory_equal(got, mk, sizeof(mk));
		free(got);
	}
	sodium_memzero(mk, sizeof(mk));
}

/* Reads the terminal until want appears in what it showed (or the program
 * ended, want NULL); returns whether it did. */
static bool read_until(int fd, const char *want, char *seen, size_t cap, size_t *len)
{
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;

		if (want != NULL && strstr(seen, want) != NULL)
			return true;
		if (poll(&pfd, 1, 60000) <= 0)
			return false;
		n = read(fd, seen + *len, cap - 1 - *len);
		if (n <= 0)
			return want == NULL;
		*len += (size_t)n;
		seen[*len] = 0;
	}
}

/* Types text once the program has turned echo off: it reads the secret
 * then, and input that arrives before is flushed. */
static void type_secret(int fd, const char *text)
{
	struct termios t;

	for (int i = 0; i < 6000; i++) {
		assert_int_equal(tcgetattr(fd, &t), 0);
		if (!(t.c_lflag & ECHO))
			break;
		usleep(10000);
	}
	assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
}

/* Runs a first backup on a terminal, typing first and then second at the
 * two prompts; returns the exit status and what the terminal showed. */
static int typed_backup(const char *home, const char *first, const char *second, char *seen, size_t cap)
{
	char *tool = pb_test_tool("peerback");
	char *argv[] = { tool, "--home", (char *)home, "backup", "--device", dev, NULL };
	size_t len = 0;
	int fd, status = 0;
	pid_t pid;

	seen[0] = 0;
	pid = forkpty(&fd, NULL, NULL, NULL);
	assert_true(pid >= 0);
	if (pid == 0) {
		unsetenv("PEERBACK_RECOVERY_PASSPHRASE");
		setenv("PEERBACK_PASSWORD", PB_TEST_PASSWORD, 1);
		pb_test_execv(argv);
		_exit(127);
	}
	free(tool);
	if (read_until(fd, "recovery passphrase: ", seen, cap, &len)) {
		type_secret(fd, first);
		if (second != NULL && read_until(fd, "repeat the recovery passphrase: ", seen, cap, &len))
			type_secret(fd, second);
	}
	(void)read_until(fd, NULL, seen, cap, &len);
	close(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Set on a terminal, the passphrase is asked twice: a mismatch sets
 * nothing, and neither does a weak one typed twice. */
static void test_terminal_asks_twice(void **state)
{
	char home[4096], id[64], path[4200], seen[65536];

	(void)state;
	new_phone_in(home, "typed", id, 2);
	snprintf(path, sizeof(path), "%s/master.key", home);
	assert_int_not_equal(typed_backup(home, GOOD_PASSPHRASE "\n", "four words of recovery!\n", seen,
					  sizeof(seen)), 0);
	if (strstr(seen, "differ") == NULL)
		fail_msg("no word that the two passphrases differ: '%s'", seen);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_not_equal(typed_backup(home, "x\n", "x\n", seen, sizeof(seen)), 0);
	if (strstr(seen, "12 characters") == NULL)
		fail_msg("a weak typed passphrase was not refused with the rule: '%s'", seen);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(typed_backup(home, GOOD_PASSPHRASE "\n", GOOD_PASSPHRASE "\n", seen, sizeof(seen)), 0);
	assert_int_equal(access(path, F_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weak_passphrase_refused),
		cmocka_unit_test(test_wrap_limits),
		cmocka_unit_test(test_old_interactive_wrap_opens),
		cmocka_unit_test(test_terminal_asks_twice),
	};

	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
