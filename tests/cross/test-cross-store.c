/* Stores move between machines: a phone and a host whose state was written
 * by the programs of one architecture are read, verified, restored from and
 * backed up again by the programs of another (x86-64 and ARM, the latter
 * under qemu-user). The on-disk formats (master key, wrapped key, backup
 * state database, host store, chunk and manifest encodings) and the wire
 * must not depend on byte order or word size.
 *
 * Built only in a cross build (tools/run cross): PB_TOOLS_DIR holds the
 * build's own (ARM) programs, PB_NATIVE_TOOLS_DIR those of the native build. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "harness.h"
#include "agent/util/fsutil.h"

static char arm_tools[4096], native_tools[4096];
static pb_test_imd_t imd;
static pb_test_host_t host;

static void use_tools(const char *tools)
{
	assert_int_equal(setenv("PB_TOOLS_DIR", tools, 1), 0);
}

static int run(const char *home, char *const args[], char **out)
{
	char *err = NULL;
	int rc = pb_test_peerback(home, args, out, &err);

	if (rc != 0)
		printf("peerback %s: exit %d: %s", args[0], rc, err);
	free(err);
	return rc;
}

/* The phone's store and the host's store made with the programs in
 * `writer`, then used with those in `reader`. */
static void move_store(const char *tag, const char *writer, const char *reader)
{
	const char *accounts[] = { "alice", NULL };
	char *dir = pb_test_tmpdir(tag);
	char host_home[4200], phone[4200], dev[4300], to[4200], line[4096];
	char *pair_args[] = { "pair", NULL, NULL };
	char *gen[] = { "gen", "--out", dev, "--seed", "11", "--size", "small", NULL };
	char *backup[] = { "--json", "backup", "--device", dev, NULL };
	char *restore[] = { "--json", "restore", "--to", to, NULL };
	char *verify[] = { "--json", "host", "verify", NULL };
	char *out = NULL;

	printf("written by %s, read by %s\n", writer, reader);
	snprintf(host_home, sizeof(host_home), "%s/host", dir);
	snprintf(phone, sizeof(phone), "%s/phone", dir);
	snprintf(dev, sizeof(dev), "%s/device", phone);
	snprintf(to, sizeof(to), "%s/restored", dir);
	assert_int_equal(pb__mkdirs(host_home, 0700), 0);
	assert_int_equal(pb__mkdirs(phone, 0700), 0);

	/* Written: account, pairing, a first backup. */
	use_tools(writer);
	pb_test_imd_start(&imd, dir, accounts, NULL);
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, phone, "alice", "phone"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", NULL);
	pair_args[1] = host.uri;
	assert_int_equal(run(phone, pair_args, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 30000) > 0);
	assert_int_equal(run(phone, gen, NULL), 0);
	assert_int_equal(run(phone, backup, &out), 0);
	assert_non_null(strstr(out, "\"event\":\"backup-done\""));
	free(out);
	pb_test_host_stop(&host);

	/* Read: the host's store verified, the host restarted on it, the
	 * phone's state used for a restore and a second backup. */
	use_tools(reader);
	assert_int_equal(run(host_home, verify, &out), 0);
	printf("%s", out);
	assert_non_null(strstr(out, "\"clean\":true"));
	free(out);
	pb_test_host_restart(&host, NULL);
	assert_int_equal(run(phone, restore, &out), 0);
	free(out);
	assert_int_equal(pb_test_same_tree(dev, to), 0);
	/* A changed device, backed up on top of the other machine's state. */
	{
		static const char card[] = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Moved Between Machines\r\n"
					   "TEL;TYPE=cell:+15550111\r\nEND:VCARD\r\n";
		char path[4400];
		char *import[] = { "import", "contacts", path, "--device", dev, NULL };

		snprintf(path, sizeof(path), "%s/moved.vcf", dir);
		assert_int_equal(pb_test_write_file(path, card, strlen(card)), 0);
		assert_int_equal(run(phone, import, NULL), 0);
	}
	assert_int_equal(run(phone, backup, &out), 0);
	assert_non_null(strstr(out, "\"event\":\"backup-done\""));
	free(out);
	pb_test_host_stop(&host);

	/* And back: the writer's programs read what the reader added. */
	use_tools(writer);
	assert_int_equal(run(host_home, verify, &out), 0);
	assert_non_null(strstr(out, "\"clean\":true"));
	free(out);
	pb_test_host_restart(&host, NULL);
	pb_test_rmtree(to);
	assert_int_equal(run(phone, restore, &out), 0);
	free(out);
	assert_int_equal(pb_test_same_tree(dev, to), 0);
	pb_test_host_stop(&host);
	pb_test_imd_stop(&imd);
	pb_test_rmtree(dir);
	free(dir);
}

/* Whatever a failed assertion left running. */
static int teardown(void **state)
{
	(void)state;
	pb_test_host_stop(&host);
	pb_test_imd_stop(&imd);
	memset(&host, 0, sizeof(host));
	memset(&imd, 0, sizeof(imd));
	return 0;
}

static void test_native_to_arm(void **state)
{
	(void)state;
	move_store("x86-to-arm", native_tools, arm_tools);
}

static void test_arm_to_native(void **state)
{
	(void)state;
	move_store("arm-to-x86", arm_tools, native_tools);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_native_to_arm, teardown),
		cmocka_unit_test_teardown(test_arm_to_native, teardown),
	};
	const char *a = getenv("PB_TOOLS_DIR"), *n = getenv("PB_NATIVE_TOOLS_DIR");
	char probe[4200];

	if (a == NULL || n == NULL) {
		fprintf(stderr, "PB_TOOLS_DIR and PB_NATIVE_TOOLS_DIR must be set: run through ctest\n");
		return 1;
	}
	snprintf(probe, sizeof(probe), "%s/peerback", n);
	if (access(probe, X_OK) != 0) {
		fprintf(stderr, "no native programs in %s: build them first (tools/run cross does)\n", n);
		return 1;
	}
	snprintf(arm_tools, sizeof(arm_tools), "%s", a);
	snprintf(native_tools, sizeof(native_tools), "%s", n);
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
