/* The command line's conventions, with the account service, two hosts and a
 * phone as their real programs on loopback: backups go to every paired host,
 * the recovery passphrase is asked only when needed and checked when given,
 * it can be changed on every host at once, errors name the side and the
 * path that failed, --json errors are JSON objects and exit codes are
 * distinct. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "agent/util/fsutil.h"

#define PASS "recovery passphrase for tests"
#define NEWPASS "a brand new recovery passphrase"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host_a, host_b;
static char home_a[4096], home_b[4096], phone[4096], dev[4096];
static char mounted[4200]; /* a small tmpfs to unmount in teardown */

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

/* Runs peerback --home home ARGS with the test password and, when pass is
 * not NULL, PEERBACK_RECOVERY_PASSPHRASE=pass (and extra, "K=V" or NULL). */
static int pbx(const char *home, const char *pass, const char *extra, char *const args[], char **out, char **err)
{
	char *tool = pb_test_tool("peerback");
	char envp[256], envr[256], *argv[64], *env[4];
	int n = 0, e = 0, rc;

	snprintf(envp, sizeof(envp), "PEERBACK_PASSWORD=%s", PB_TEST_PASSWORD);
	env[e++] = envp;
	if (pass != NULL) {
		snprintf(envr, sizeof(envr), "PEERBACK_RECOVERY_PASSPHRASE=%s", pass);
		env[e++] = envr;
	}
	if (extra != NULL)
		env[e++] = (char *)extra;
	env[e] = NULL;
	argv[n++] = tool;
	if (home != NULL) {
		argv[n++] = "--home";
		argv[n++] = (char *)home;
	}
	for (size_t i = 0; args[i] != NULL && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	rc = pb_test_run(argv, env, 300, out, err);
	free(tool);
	return rc;
}

/* Runs a command on the phone that must succeed. */
static void ok(const char *pass, char *const args[], char **out)
{
	char *err = NULL;
	int rc = pbx(phone, pass, NULL, args, out, &err);

	if (rc != 0)
		printf("peerback %s: exit %d: %s", args[0], rc, err);
	assert_int_equal(rc, 0);
	free(err);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void pair(pb_test_host_t *h)
{
	char *args[] = { "pair", h->uri, NULL };
	char line[4096];

	ok(NULL, args, NULL);
	assert_true(pb_test_host_wait(h, "paired", line, sizeof(line), 10000) > 0);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };

	(void)state;
	dir = pb_test_tmpdir("cli");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(home_a, "host-a");
	mk(home_b, "host-b");
	mk(phone, "phone");
	snprintf(dev, sizeof(dev), "%s/device", phone);
	assert_int_equal(pb_test_login(&imd, home_a, "alice", "desk-a"), 0);
	assert_int_equal(pb_test_login(&imd, home_b, "alice", "desk-b"), 0);
	assert_int_equal(pb_test_login(&imd, phone, "alice", "phone"), 0);
	pb_test_host_start(&host_a, home_a, "127.0.0.1:0", NULL);
	pb_test_host_start(&host_b, home_b, "127.0.0.1:0", NULL);
	/* Paired with A first, then B: B is the most recently paired. */
	pair(&host_a);
	pair(&host_b);
	{
		char *gen[] = { "gen", "--out", dev, "--seed", "5", "--size", "small", NULL };
		ok(NULL, gen, NULL);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_host_stop(&host_a);
	pb_test_host_stop(&host_b);
	pb_test_imd_stop(&imd);
	if (mounted[0])
		umount2(mounted, MNT_DETACH);
	pb_test_rmtree(dir);
	free(dir);
	return 0;
}

/* The snapshots `ls --host NAME` lists. */
static size_t snapshots_on(const char *host)
{
	char *args[] = { "--json", "ls", "--host", (char *)host, NULL };
	char *out = NULL;
	size_t n;

	ok(NULL, args, &out);
	n = count(out, "\"snapshot\":");
	free(out);
	return n;
}

/* A phone paired with two hosts backs up to both, and reports each. */
static void test_backup_every_host(void **state)
{
	char *backup[] = { "--json", "backup", "--device", dev, NULL };
	char *only_a[] = { "backup", "--device", dev, "--host", "desk-a", NULL };
	char *out = NULL;

	(void)state;
	ok(PASS, backup, &out);
	printf("%s", out);
	assert_int_equal(count(out, "\"event\":\"backup-done\""), 2);
	assert_non_null(strstr(out, "\"host\":\"desk-a\""));
	assert_non_null(strstr(out, "\"host\":\"desk-b\""));
	free(out);
	assert_int_equal(snapshots_on("desk-a"), 1);
	assert_int_equal(snapshots_on("desk-b"), 1);
	/* --host picks one; the text names it. */
	ok(NULL, only_a, &out);
	assert_non_null(strstr(out, "desk-a"));
	assert_null(strstr(out, "desk-b"));
	free(out);
	assert_int_equal(snapshots_on("desk-a"), 2);
	assert_int_equal(snapshots_on("desk-b"), 1);
	/* The automatic backups too. */
	{
		char *agent[] = { "--json", "agent", "--once", "--network-type", "wifi", "--device", dev, NULL };

		ok(NULL, agent, &out);
		printf("%s", out);
		assert_int_equal(count(out, "\"event\":\"backup\""), 2);
		assert_non_null(strstr(out, "\"host\":\"desk-a\""));
		assert_non_null(strstr(out, "\"host\":\"desk-b\""));
		free(out);
	}
	assert_int_equal(snapshots_on("desk-a"), 3);
	assert_int_equal(snapshots_on("desk-b"), 2);
}

/* A host that does not answer is reported by name; the others get the
 * backup, and the exit status says it was partial. */
static void test_backup_one_host_down(void **state)
{
	char *backup[] = { "backup", "--device", dev, NULL };
	char *out = NULL, *err = NULL, line[4096], listen_a[96];
	int rc;

	(void)state;
	/* A fresh QR code of host A (it shows one after each pairing). */
	assert_true(pb_test_host_wait(&host_a, "advertise", line, sizeof(line), 10000) > 0);
	snprintf(listen_a, sizeof(listen_a), "%s", host_a.listen);
	pb_test_host_stop(&host_a);
	rc = pbx(phone, NULL, NULL, backup, &out, &err);
	printf("exit %d\n%s%s", rc, out, err);
	assert_int_equal(rc, 3);
	/* Named with the address tried, and as the host's side. */
	assert_non_null(strstr(err, "desk-a"));
	assert_non_null(strstr(err, listen_a));
	assert_non_null(strstr(err, "host"));
	assert_non_null(strstr(out, "desk-b"));
	free(out);
	free(err);
	/* Pairing with a host that is gone names the host's address, not the
	 * account service. */
	{
		char *pair_args[] = { "pair", host_a.uri, "--timeout", "2000", NULL };

		rc = pbx(phone, NULL, NULL, pair_args, &out, &err);
		printf("pair with a stopped host: exit %d: %s", rc, err);
		assert_int_not_equal(rc, 0);
		assert_non_null(strstr(err, listen_a));
		assert_null(strstr(err, "account service"));
		free(out);
		free(err);
	}
	pb_test_host_restart(&host_a, NULL);
}

/* With the key on the phone no passphrase is asked for; one given is
 * checked, from the environment, a file or a command. */
static void test_passphrase_checked(void **state)
{
	char file[4200], fileopt[4300];
	char *plain[] = { "backup", "--device", dev, "--host", "desk-b", NULL };
	char *by_file[] = { "backup", "--device", dev, "--host", "desk-b", "--passphrase-file", file, NULL };
	char *by_cmd[] = { "backup", "--device", dev, "--host", "desk-b", "--passphrase-command",
			   "printf '%s\\n' '" PASS "'", NULL };
	char *bad_cmd[] = { "backup", "--device", dev, "--host", "desk-b", "--passphrase-command", "exit 7", NULL };
	char *err = NULL;
	int rc;

	(void)state;
	(void)fileopt;
	ok(NULL, plain, NULL);
	rc = pbx(phone, "not the recovery passphrase", NULL, plain, NULL, &err);
	printf("wrong env: exit %d: %s", rc, err);
	assert_int_equal(rc, 12);
	assert_non_null(strstr(err, "wrong recovery passphrase"));
	assert_non_null(strstr(err, "PEERBACK_RECOVERY_PASSPHRASE"));
	free(err);
	snprintf(file, sizeof(file), "%s/pass.txt", dir);
	assert_int_equal(pb_test_write_file(file, "wrong words here\n", 17), 0);
	rc = pbx(phone, NULL, NULL, by_file, NULL, &err);
	printf("wrong file: exit %d: %s", rc, err);
	assert_int_equal(rc, 12);
	assert_non_null(strstr(err, file));
	free(err);
	assert_int_equal(pb_test_write_file(file, PASS "\n", strlen(PASS) + 1), 0);
	ok(NULL, by_file, NULL);
	ok(NULL, by_cmd, NULL);
	rc = pbx(phone, NULL, NULL, bad_cmd, NULL, &err);
	printf("failing command: exit %d: %s", rc, err);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(err, "exit 7"));
	free(err);
}

/* A phone without its key (a copy of its state without master.key) that
 * restores from host with passphrase: the exit status. */
static int restore_without_key(const char *host, const char *pass, char **err)
{
	char home2[4096], to[4200], path[4300];
	char *cp[] = { "/bin/cp", "-a", phone, home2, NULL };
	char *rm[] = { "/bin/rm", "-rf", home2, NULL };
	char *args[] = { "restore", "--host", (char *)host, "--to", to, NULL };
	int rc;

	snprintf(home2, sizeof(home2), "%s/phone-copy", dir);
	(void)pb_test_run(rm, NULL, 60, NULL, NULL);
	assert_int_equal(pb_test_run(cp, NULL, 60, NULL, NULL), 0);
	snprintf(path, sizeof(path), "%s/master.key", home2);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/master.wrapped", home2);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/backup-state.db", home2);
	(void)unlink(path);
	snprintf(to, sizeof(to), "%s/restored", home2);
	rc = pbx(home2, pass, NULL, args, NULL, err);
	(void)pb_test_run(rm, NULL, 60, NULL, NULL);
	return rc;
}

/* peerback passphrase change rewraps the key on every paired host: the old
 * passphrase no longer opens it anywhere, the new one does everywhere. */
static void test_passphrase_change(void **state)
{
	char *change[] = { "passphrase", "change", NULL };
	char *out = NULL, *err = NULL;
	int rc;

	(void)state;
	rc = pbx(phone, "not the recovery passphrase", "PEERBACK_NEW_RECOVERY_PASSPHRASE=" NEWPASS, change, &out,
		 &err);
	printf("change with the wrong one: exit %d: %s", rc, err);
	assert_int_equal(rc, 12);
	free(out);
	free(err);
	rc = pbx(phone, PASS, "PEERBACK_NEW_RECOVERY_PASSPHRASE=" NEWPASS, change, &out, &err);
	printf("change: exit %d: %s%s", rc, out, err);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "desk-a"));
	assert_non_null(strstr(out, "desk-b"));
	free(out);
	free(err);
	for (int i = 0; i < 2; i++) {
		const char *h = i == 0 ? "desk-a" : "desk-b";

		rc = restore_without_key(h, PASS, &err);
		printf("%s, old passphrase: exit %d: %s", h, rc, err);
		assert_int_equal(rc, 12);
		free(err);
		rc = restore_without_key(h, NEWPASS, &err);
		printf("%s, new passphrase: exit %d: %s", h, rc, err);
		assert_int_equal(rc, 0);
		free(err);
	}
	/* The phone's own check follows: the new one is now the right one. */
	{
		char *plain[] = { "backup", "--device", dev, "--host", "desk-b", NULL };

		ok(NEWPASS, plain, NULL);
		rc = pbx(phone, PASS, NULL, plain, NULL, &err);
		assert_int_equal(rc, 12);
		free(err);
	}
}

/* --json anywhere; errors then are JSON objects with a code; usage errors
 * exit 2; text mode prints no JSON. */
static void test_json_errors(void **state)
{
	char *nodev[] = { "backup", "--json", "--device", "/nonexistent/device", NULL };
	char *bogus[] = { "ls", "--bogus", "--json", NULL };
	char *text[] = { "backup", "--device", "/nonexistent/device", NULL };
	char *out = NULL, *err = NULL;
	int rc;

	(void)state;
	rc = pbx(phone, NULL, NULL, nodev, &out, &err);
	printf("exit %d: %s%s", rc, out, err);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "{\"event\":\"error\",\"code\":\"PB_E"));
	assert_non_null(strstr(out, "\"message\":"));
	assert_non_null(strstr(out, "/nonexistent/device"));
	free(out);
	free(err);
	rc = pbx(phone, NULL, NULL, bogus, &out, &err);
	printf("exit %d: %s%s", rc, out, err);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, "\"code\":\"PB_EUSAGE\""));
	free(out);
	free(err);
	rc = pbx(phone, NULL, NULL, text, &out, &err);
	assert_int_equal(rc, 1);
	assert_null(strchr(out, '{'));
	assert_null(strchr(err, '{'));
	free(out);
	free(err);
}

/* account show reads; it must not create the state directory. */
static void test_account_show_creates_nothing(void **state)
{
	char home2[4200];
	char *args[] = { "account", "show", NULL };
	struct stat st;

	(void)state;
	snprintf(home2, sizeof(home2), "%s/never-made", dir);
	(void)pbx(home2, NULL, NULL, args, NULL, NULL);
	assert_int_not_equal(stat(home2, &st), 0);
}

/* A full phone: the error names the phone and its path, not the host. */
static void test_phone_full_blames_phone(void **state)
{
	char small[4200], fill[4300];
	char *cp[] = { "/bin/sh", "-c", NULL, NULL };
	char script[9000];
	char *backup[] = { "backup", "--device", dev, "--host", "desk-b", NULL };
	char *out = NULL, *err = NULL;
	int rc;

	(void)state;
	snprintf(small, sizeof(small), "%s/small", dir);
	assert_int_equal(pb__mkdirs(small, 0700), 0);
	if (mount("tmpfs", small, "tmpfs", 0, "size=4m") != 0) {
		printf("cannot mount a small tmpfs here (needs root); test skipped\n");
		return;
	}
	snprintf(mounted, sizeof(mounted), "%s", small);
	/* The phone's state on the small disk, its state database gone so
	 * that the backup must write everything again, then the disk filled. */
	snprintf(script, sizeof(script),
		 "cd '%s' && for f in *; do [ \"$f\" = device ] || [ \"${f#backup-state}\" != \"$f\" ] || "
		 "cp -a \"$f\" '%s'/; done; dd if=/dev/zero of='%s/fill' bs=64k 2>/dev/null; true",
		 phone, small, small);
	cp[2] = script;
	assert_int_equal(pb_test_run(cp, NULL, 60, NULL, NULL), 0);
	snprintf(fill, sizeof(fill), "%s/fill", small);
	rc = pbx(small, NEWPASS, NULL, backup, &out, &err);
	printf("exit %d: %s%s", rc, out, err);
	assert_int_not_equal(rc, 0);
	assert_null(strstr(err, "host's disk"));
	assert_non_null(strstr(err, "phone"));
	assert_non_null(strstr(err, small));
	free(out);
	free(err);
	umount2(small, MNT_DETACH);
	mounted[0] = 0;
}

/* A read-only home: the error names the phone and the path. */
static void test_readonly_home_named(void **state)
{
	char ro[4200], script[9000];
	char *sh[] = { "/bin/sh", "-c", script, NULL };
	char *backup[] = { "backup", "--device", dev, "--host", "desk-b", NULL };
	char *out = NULL, *err = NULL;
	int rc;

	(void)state;
	snprintf(ro, sizeof(ro), "%s/ro", dir);
	assert_int_equal(pb__mkdirs(ro, 0700), 0);
	if (mount("tmpfs", ro, "tmpfs", 0, "size=16m,mode=0700") != 0) {
		printf("cannot mount a tmpfs here (needs root); test skipped\n");
		return;
	}
	snprintf(mounted, sizeof(mounted), "%s", ro);
	snprintf(script, sizeof(script),
		 "cd '%s' && for f in *; do [ \"$f\" = device ] || [ \"${f#backup-state}\" != \"$f\" ] || "
		 "cp -a \"$f\" '%s'/; done",
		 phone, ro);
	assert_int_equal(pb_test_run(sh, NULL, 60, NULL, NULL), 0);
	assert_int_equal(mount(NULL, ro, NULL, MS_REMOUNT | MS_RDONLY, "mode=0700"), 0);
	rc = pbx(ro, NULL, NULL, backup, &out, &err);
	printf("exit %d: %s%s", rc, out, err);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(err, ro));
	assert_non_null(strstr(err, "read-only"));
	assert_non_null(strstr(err, "phone"));
	free(out);
	free(err);
	umount2(ro, MNT_DETACH);
	mounted[0] = 0;
}

/* Runs `peerback --home home ARGS` on a terminal (script(1)) on which
 * the lines line1 and line2 (may be NULL) are typed, a second apart: the
 * prompt turns echo off with TCSAFLUSH, which drops what was typed ahead.
 * Returns the exit status; out gets what the terminal showed. */
static int on_terminal_of(const char *program, const char *home, const char *args, const char *line1,
			  const char *line2, char **out)
{
	char *tool = pb_test_tool_sh(program), cmd[16384], fifo[4200];
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	int rc;

	snprintf(fifo, sizeof(fifo), "%s/keyboard", dir);
	unlink(fifo);
	snprintf(cmd, sizeof(cmd),
		 "mkfifo '%s' || exit 99; env -u PEERBACK_PASSWORD -u PEERBACK_RECOVERY_PASSPHRASE /usr/bin/script "
		 "-qefc \"%s --home '%s' %s\" "
		 "/dev/null <'%s' & pid=$!; exec 3>'%s'; sleep 1; %s%s%s %s%s%s wait $pid; rc=$?; exec 3>&-; "
		 "exit $rc",
		 fifo, tool, home, args, fifo, fifo, line1 ? "printf '%s\\n' '" : "",
		 line1 ? line1 : "", line1 ? "' >&3; sleep 1;" : "", line2 ? "printf '%s\\n' '" : "",
		 line2 ? line2 : "", line2 ? "' >&3;" : "");
	rc = pb_test_run(argv, NULL, 120, out, NULL);
	unlink(fifo);
	free(tool);
	return rc;
}

static int on_terminal(const char *home, const char *args, const char *line1, const char *line2, char **out)
{
	return on_terminal_of("peerback", home, args, line1, line2, out);
}

/* peerback-imd add-account on a terminal asks the password twice. */
static void test_add_account_confirms(void **state)
{
	char home[4200];
	char *out = NULL;
	int rc;

	(void)state;
	if (access("/usr/bin/script", X_OK) != 0) {
		printf("no script(1) for a terminal; test skipped\n");
		return;
	}
	snprintf(home, sizeof(home), "%s/imd-2", dir);
	rc = on_terminal_of("peerback-imd", home, "add-account bob", "a password here", "a pasword here", &out);
	printf("two different: exit %d: %s\n", rc, out);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(out, "repeat the password"));
	assert_non_null(strstr(out, "differ"));
	free(out);
	rc = on_terminal_of("peerback-imd", home, "add-account bob", "a password here", "a password here", &out);
	printf("the same twice: exit %d: %s\n", rc, out);
	assert_int_equal(rc, 0);
	free(out);
}

/* A new phone's first backup on a terminal asks the passphrase twice and
 * sets nothing when the two differ; the account already has a recovery
 * passphrase (NEWPASS since test_passphrase_change), so another one typed
 * twice is refused as wrong, and the account's own one lets the phone in. */
static void test_first_passphrase_confirmed(void **state)
{
	char home3[4200], args[8400], path[4300];
	char *out = NULL;
	struct stat st;
	int rc;

	(void)state;
	if (access("/usr/bin/script", X_OK) != 0) {
		printf("no script(1) for a terminal; test skipped\n");
		return;
	}
	snprintf(home3, sizeof(home3), "%s/phone-3", dir);
	assert_int_equal(pb__mkdirs(home3, 0700), 0);
	assert_int_equal(pb_test_login(&imd, home3, "alice", "phone-3"), 0);
	{
		char line[4096];
		char *pair_args[] = { "pair", host_b.uri, NULL };

		assert_true(pb_test_host_wait(&host_b, "advertise", line, sizeof(line), 10000) > 0);
		pair_args[1] = host_b.uri;
		assert_int_equal(pbx(home3, NULL, NULL, pair_args, NULL, NULL), 0);
		assert_true(pb_test_host_wait(&host_b, "paired", line, sizeof(line), 10000) > 0);
	}
	snprintf(args, sizeof(args), "backup --device '%s'", dev);
	rc = on_terminal(home3, args, "first passphrase typed", "second one, a typo", &out);
	printf("two different: exit %d: %s\n", rc, out);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "repeat the recovery passphrase"));
	assert_non_null(strstr(out, "differ"));
	free(out);
	snprintf(path, sizeof(path), "%s/master.key", home3);
	assert_int_not_equal(stat(path, &st), 0);
	rc = on_terminal(home3, args, "first passphrase typed", "first passphrase typed", &out);
	printf("another passphrase than the account's, twice: exit %d\n", rc);
	assert_int_equal(rc, 12);
	free(out);
	assert_int_not_equal(stat(path, &st), 0);
	rc = on_terminal(home3, args, NEWPASS, NEWPASS, &out);
	printf("the account's passphrase twice: exit %d\n", rc);
	assert_int_equal(rc, 0);
	free(out);
	assert_int_equal(stat(path, &st), 0);
	/* Now the key is here: no prompt at all. */
	rc = on_terminal(home3, args, NULL, NULL, &out);
	assert_int_equal(rc, 0);
	assert_null(strstr(out, "recovery passphrase:"));
	free(out);
}

/* Usage errors and the documented exit codes. */
static void test_exit_codes(void **state)
{
	char *unknown[] = { "no-such-command", NULL };
	char *help[] = { "help", "backup", NULL };
	char *out = NULL;

	(void)state;
	assert_int_equal(pbx(phone, NULL, NULL, unknown, NULL, NULL), 2);
	ok(NULL, help, &out);
	assert_non_null(strstr(out, "usage: peerback backup"));
	free(out);
	{
		char *top[] = { "--help", NULL };

		ok(NULL, top, &out);
		assert_non_null(strstr(out, "12"));
		assert_non_null(strstr(out, "wrong recovery passphrase"));
		free(out);
	}
}

/* The first line of out that holds needle, copied into line. */
static void line_with(const char *out, const char *needle, char *line, size_t cap)
{
	const char *p = strstr(out, needle);

	assert_non_null(p);
	while (p > out && p[-1] != '\n')
		p--;
	snprintf(line, cap, "%.*s", (int)strcspn(p, "\n"), p);
}

/* ls SNAPSHOT lists items by the ids restore --id takes; snapshots by
 * "latest" or a unique prefix; diff; --from by a device's name. */
static void test_ls_items_and_ids(void **state)
{
	char *snaps[] = { "ls", "--host", "desk-b", NULL };
	char *items[] = { "--json", "ls", "latest", "--host", "desk-b", NULL };
	char *from[] = { "ls", "--from", "phone", "--host", "desk-b", NULL };
	char *out = NULL, *err = NULL, line[4096], id[512], prefix[24], to[4200], shortid[512];
	int rc;

	(void)state;
	ok(NULL, snaps, &out);
	printf("%s", out);
	free(out);
	ok(NULL, items, &out);
	line_with(out, "\"kind\":\"credentials\"", line, sizeof(line));
	assert_int_equal(pb_test_json_str(line, "id", id, sizeof(id)), 0);
	/* The latest snapshot's id without its last two digits. */
	assert_int_equal(pb_test_json_str(line, "snapshot", prefix, sizeof(prefix)), 0);
	prefix[14] = 0;
	printf("an item: %s\n", line);
	free(out);
	/* The same listing by a snapshot prefix. */
	{
		char *by_prefix[] = { "ls", prefix, "--host", "desk-b", NULL };

		ok(NULL, by_prefix, &out);
		assert_non_null(strstr(out, id));
		free(out);
	}
	/* restore --id takes that id, and its short form. */
	snprintf(to, sizeof(to), "%s/one-item", dir);
	{
		char *restore[] = { "restore", "--host", "desk-b", "--id", id, "--to", to, NULL };
		const char *base = strrchr(id, '/');
		const char *dot;

		ok(NULL, restore, NULL);
		base = base != NULL ? base + 1 : id;
		dot = strrchr(base, '.');
		snprintf(shortid, sizeof(shortid), "%.*s", dot != NULL ? (int)(dot - base) : (int)strlen(base), base);
	}
	{
		char *restore_short[] = { "restore", "--host", "desk-b", "--id", shortid, "--to", to, NULL };

		rc = pbx(phone, NULL, NULL, restore_short, &out, &err);
		printf("restore --id %s: exit %d: %s%s", shortid, rc, out, err);
		assert_int_equal(rc, 0);
		free(out);
		free(err);
	}
	/* diff between the same snapshot: nothing changed. */
	{
		char *diff[] = { "diff", prefix, "latest", "--host", "desk-b", NULL };

		ok(NULL, diff, &out);
		printf("%s", out);
		assert_non_null(strstr(out, " added, "));
		free(out);
	}
	/* --from takes the device's name. */
	rc = pbx(phone, NULL, NULL, from, &out, &err);
	printf("ls --from phone: exit %d: %s%s", rc, out, err);
	assert_int_equal(rc, 0);
	free(out);
	free(err);
	{
		char *nosnap[] = { "ls", "ffffffffff", "--host", "desk-b", NULL };

		rc = pbx(phone, NULL, NULL, nosnap, NULL, NULL);
		assert_int_equal(rc, 10);
	}
}

/* peerback-imd --version and per-command help; the account service by a
 * host name; a wrong --imd-key named as such; gen says where backup reads. */
static void test_findable(void **state)
{
	char *tool = pb_test_tool("peerback-imd");
	char *version[] = { tool, "--version", NULL };
	char *serve_help[] = { tool, "serve", "--help", NULL };
	char port[16], byname[64], home2[4200], genout[4200];
	char wrong_key[64];
	char *out = NULL, *err = NULL;
	int rc;

	(void)state;
	assert_int_equal(pb_test_run(version, NULL, 30, &out, NULL), 0);
	assert_non_null(strstr(out, "peerback-imd "));
	free(out);
	assert_int_equal(pb_test_run(serve_help, NULL, 30, &out, NULL), 0);
	assert_non_null(strstr(out, "usage: peerback-imd serve"));
	free(out);
	free(tool);
	snprintf(port, sizeof(port), "%s", strrchr(imd.addr, ':') + 1);
	snprintf(byname, sizeof(byname), "localhost:%s", port);
	snprintf(home2, sizeof(home2), "%s/phone-by-name", dir);
	{
		char *login[] = { "account", "login", "--imd", byname, "--imd-key", imd.key, "--account", "alice",
				  "--name", "by-name", NULL };

		rc = pbx(home2, NULL, NULL, login, &out, &err);
		printf("login via %s: exit %d: %s%s", byname, rc, out, err);
		assert_int_equal(rc, 0);
		free(out);
		free(err);
	}
	snprintf(wrong_key, sizeof(wrong_key), "%s", imd.key);
	wrong_key[0] = wrong_key[0] == 'A' ? 'B' : 'A';
	{
		char *login[] = { "account", "login", "--imd", imd.addr, "--imd-key", wrong_key, "--account", "alice",
				  NULL };

		rc = pbx(home2, NULL, NULL, login, &out, &err);
		printf("wrong key: exit %d: %s", rc, err);
		assert_int_not_equal(rc, 0);
		assert_non_null(strstr(err, "--imd-key"));
		free(out);
		free(err);
	}
	snprintf(genout, sizeof(genout), "%s/gen-elsewhere", dir);
	{
		char *gen[] = { "gen", "--out", genout, "--seed", "1", "--size", "small", NULL };

		rc = pbx(home2, NULL, NULL, gen, &out, &err);
		assert_int_equal(rc, 0);
		assert_non_null(strstr(out, "--device"));
		free(out);
		free(err);
	}
	/* --quiet: results only. */
	{
		char *q[] = { "--quiet", "backup", "--device", dev, "--host", "desk-b", NULL };

		rc = pbx(phone, NULL, NULL, q, &out, &err);
		assert_int_equal(rc, 0);
		assert_string_equal(err, "");
		assert_non_null(strstr(out, "backed up"));
		free(out);
		free(err);
	}
}

/* The port of a host started without --listen on home. */
static void host_port(const char *home, char *port, size_t cap)
{
	char *tool = pb_test_tool("peerback");
	char *argv[] = { tool, "--home", (char *)home, "host", "--json", "--no-announce", "--no-qr", NULL };
	pb_test_proc_t p;
	char line[4096], listen[96];

	assert_int_equal(pb_test_spawn(&p, argv, NULL), 0);
	do
		assert_true(pb_test_readline(&p, line, sizeof(line), 10000) > 0);
	while (strstr(line, "\"event\":\"listening\"") == NULL);
	assert_int_equal(pb_test_json_str(line, "listen", listen, sizeof(listen)), 0);
	snprintf(port, cap, "%s", strrchr(listen, ':') + 1);
	pb_test_stop(&p, SIGTERM);
	free(tool);
}

/* A host restarted without --listen keeps its port: paired phones find it. */
static void test_host_keeps_port(void **state)
{
	char home_c[4096], first[16], second[16];

	(void)state;
	mk(home_c, "host-c");
	assert_int_equal(pb_test_login(&imd, home_c, "alice", "desk-c"), 0);
	host_port(home_c, first, sizeof(first));
	host_port(home_c, second, sizeof(second));
	printf("ports: %s, then %s\n", first, second);
	assert_string_not_equal(first, "0");
	assert_string_equal(first, second);
}

/* Text mode prints no JSON (the agent's events too); progress on a
 * terminal starts without an absurd estimate and a restore's bar ends
 * full. */
static void test_text_and_progress(void **state)
{
	char *agent[] = { "agent", "--once", "--network-type", "wifi", "--device", dev, NULL };
	char *tool = pb_test_tool_sh("peerback"), cmd[16384], to[4200];
	char *out = NULL, *err = NULL;
	int rc;

	(void)state;
	rc = pbx(phone, NULL, NULL, agent, &out, &err);
	printf("agent: exit %d: %s%s", rc, out, err);
	assert_null(strchr(out, '{'));
	assert_null(strchr(err, '{'));
	assert_non_null(strstr(err, "peerback agent: "));
	free(out);
	free(err);
	if (access("/usr/bin/script", X_OK) != 0) {
		printf("no script(1) for a terminal; progress part skipped\n");
		free(tool);
		return;
	}
	/* script(1) gives the command a terminal. */
	snprintf(to, sizeof(to), "%s/progress-restore", dir);
	snprintf(cmd, sizeof(cmd),
		 "PEERBACK_PASSWORD=x %s --home '%s' backup --device '%s' --host desk-b && "
		 "%s --home '%s' restore --host desk-b --to '%s'",
		 tool, phone, dev, tool, phone, to);
	{
		char *argv[] = { "/usr/bin/script", "-qefc", cmd, "/dev/null", NULL };

		rc = pb_test_run(argv, NULL, 120, &out, &err);
	}
	printf("on a terminal: exit %d\n", rc);
	assert_int_equal(rc, 0);
	/* No estimate of minutes for a backup that takes seconds. */
	for (const char *p = out; (p = strstr(p, " left")) != NULL; p++) {
		const char *q = p;

		while (q > out && q[-1] != ' ')
			q--;
		printf("estimate: %.*s\n", (int)(p - q), q);
		assert_true(atoi(q) < 5);
	}
	assert_non_null(strstr(out, "restore [########################]"));
	free(out);
	free(err);
	free(tool);
}

/* host verify takes --json after it, like every command. */
static void test_json_anywhere(void **state)
{
	char *verify[] = { "store-verify", "--json", NULL };
	char *hv[] = { "host", "verify", "--json", NULL };
	char *out = NULL, *err = NULL;
	int rc;

	(void)state;
	(void)verify;
	pb_test_host_stop(&host_a);
	rc = pbx(home_a, NULL, NULL, hv, &out, &err);
	printf("host verify --json: exit %d: %s%s", rc, out, err);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "{"));
	free(out);
	free(err);
	pb_test_host_restart(&host_a, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backup_every_host),
		cmocka_unit_test(test_backup_one_host_down),
		cmocka_unit_test(test_passphrase_checked),
		cmocka_unit_test(test_passphrase_change),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_account_show_creates_nothing),
		cmocka_unit_test(test_phone_full_blames_phone),
		cmocka_unit_test(test_readonly_home_named),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_first_passphrase_confirmed),
		cmocka_unit_test(test_add_account_confirms),
		cmocka_unit_test(test_ls_items_and_ids),
		cmocka_unit_test(test_findable),
		cmocka_unit_test(test_host_keeps_port),
		cmocka_unit_test(test_text_and_progress),
		cmocka_unit_test(test_json_anywhere),
	};
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
