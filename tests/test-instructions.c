/* Remote instructions for virtual cards, end to end: queued on the host while
 * the phone is away, carried out and acknowledged at its next connection;
 * copies between devices of one account or of linked sub-accounts, sealed so
 * the host never reads the profile; refused for unlinked accounts and from a
 * host the phone is not paired with. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "harness.h"
#include "agent/util/fsutil.h"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], a1[4096], a2[4096], c1[4096];
static char a1_dev[64], a2_dev[64], c1_dev[64];

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

static int imd_cmd(const char *cmd, const char *x, const char *y)
{
	char *tool = pb_test_tool("peerback-imd");
	char *argv[] = { tool, "--home", imd.home, (char *)cmd, (char *)x, (char *)y, NULL };
	int rc = pb_test_run(argv, NULL, 30, NULL, NULL);

	free(tool);
	return rc;
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", "carol", "bob", NULL };
	const char *host_args[] = { "--max-failures", "1000", NULL };

	(void)state;
	dir = pb_test_tmpdir("instructions");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	assert_int_equal(imd_cmd("link-accounts", "alice", "carol"), 0);
	mk(host_home, "host");
	mk(a1, "a1");
	mk(a2, "a2");
	mk(c1, "c1");
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, a1, "alice", "alice-old-phone"), 0);
	assert_int_equal(pb_test_login(&imd, a2, "alice", "alice-new-phone"), 0);
	assert_int_equal(pb_test_login(&imd, c1, "carol", "carols-phone"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", host_args);
	pb_test_pair(&host, a1);
	pb_test_pair(&host, a2);
	pb_test_pair(&host, c1); /* carol is a linked sub-account of alice */
	pb_test_device_id(a1, a1_dev);
	pb_test_device_id(a2, a2_dev);
	pb_test_device_id(c1, c1_dev);
	{
		char d[4200];
		char *gen[] = { "gen", "--out", d, "--seed", "8", "--size", "small", NULL };
		snprintf(d, sizeof(d), "%s/device", a1);
		assert_int_equal(pb_test_peerback(a1, gen, NULL, NULL), 0);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

/* The n-th profile row of a phone's SIM file (1-based), or NULL. */
static char *sim_row(const char *home, int n, char *iccid)
{
	char path[4200], *data, *line, *save = NULL, *out = NULL;
	int i = 0;

	snprintf(path, sizeof(path), "%s/device/sim/profiles.csv", home);
	data = (char *)pb_test_read_file(path, NULL);
	if (data == NULL)
		return NULL;
	for (line = strtok_r(data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), i++) {
		if (i == n) {
			out = strdup(line);
			if (iccid != NULL)
				snprintf(iccid, 24, "%.*s", (int)strcspn(line, ","), line);
		}
	}
	free(data);
	return out;
}

static bool has_iccid(const char *home, const char *iccid)
{
	char path[4200], *data;
	bool found;

	snprintf(path, sizeof(path), "%s/device/sim/profiles.csv", home);
	data = (char *)pb_test_read_file(path, NULL);
	if (data == NULL)
		return false;
	found = strstr(data, iccid) != NULL;
	free(data);
	return found;
}

static int host_cmd(char *const args[], char **out, char **err)
{
	return pb_test_peerback(host_home, args, out, err);
}

static void ping(const char *home, char **out)
{
	char *args[] = { "--json", "ping", NULL }, *err = NULL;

	if (pb_test_peerback(home, args, out, &err) != 0)
		fail_msg("ping: %s", err);
	free(err);
}

static void expect_state(long long id, const char *state)
{
	char *args[] = { "--json", "host", "instructions", NULL }, *out = NULL, pat[64];
	char *line;

	assert_int_equal(host_cmd(args, &out, NULL), 0);
	snprintf(pat, sizeof(pat), "{\"id\":%lld,", id);
	line = strstr(out, pat);
	assert_non_null(line);
	snprintf(pat, sizeof(pat), "\"state\":\"%s\"", state);
	if (strncmp(strstr(line, "\"state\""), pat, strlen(pat)) != 0)
		fail_msg("instruction %lld: %.*s", id, (int)strcspn(line, "\n"), line);
	free(out);
}

static long long queue(char *const args[])
{
	char *out = NULL, *err = NULL;
	long long id;

	if (host_cmd(args, &out, &err) != 0)
		fail_msg("instruct: %s", err);
	id = pb_test_json_num(out, "id");
	free(out);
	free(err);
	assert_true(id > 0);
	return id;
}

static void test_delete_while_offline(void **state)
{
	char iccid[24], *row = sim_row(a1, 1, iccid), *out = NULL;
	char *args[] = { "--json", "host", "instruct", a1_dev, "delete-vsim", iccid, NULL };
	long long id;

	(void)state;
	assert_non_null(row);
	assert_true(has_iccid(a1, iccid));
	/* Queued while the phone is away; nothing happens to it yet. */
	id = queue(args);
	expect_state(id, "queued");
	assert_true(has_iccid(a1, iccid));
	/* Its next connection carries it out and acknowledges it. */
	ping(a1, &out);
	assert_non_null(strstr(out, "\"op\":\"delete-vsim\",\"ok\":true"));
	free(out);
	assert_false(has_iccid(a1, iccid));
	expect_state(id, "done");
	/* The other profiles are untouched. */
	{
		char second[24], *r2 = sim_row(a1, 1, second);
		assert_non_null(r2);
		assert_string_not_equal(second, iccid);
		free(r2);
	}
	free(row);
}

static void copy_between(const char *dst_home, const char *dst_dev)
{
	char iccid[24], *row = sim_row(a1, 1, iccid), *out = NULL;
	char *args[] = { "--json", "host", "instruct", a1_dev, "copy-vsim", iccid, "--to", (char *)dst_dev, NULL };
	const char *ki;
	long long id;

	assert_non_null(row);
	id = queue(args);
	/* The destination has nothing to do until the source exported it. */
	ping(dst_home, &out);
	assert_null(strstr(out, "install-vsim"));
	free(out);
	ping(a1, &out);
	assert_non_null(strstr(out, "\"op\":\"export-vsim\",\"ok\":true"));
	free(out);
	expect_state(id, "done");
	/* The host holds the profile sealed to the destination, not readable:
	 * its Ki (column 7) appears nowhere under the host's state. */
	ki = row;
	for (int c = 0; c < 6; c++)
		ki = strchr(ki, ',') + 1;
	assert_int_equal(pb_test_grep_tree(host_home, ki, 32), 0);
	ping(dst_home, &out);
	assert_non_null(strstr(out, "\"op\":\"install-vsim\",\"ok\":true"));
	free(out);
	/* The same row, byte for byte. */
	{
		char got_iccid[24], *got = sim_row(dst_home, 1, got_iccid);
		assert_non_null(got);
		assert_string_equal(got, row);
		free(got);
	}
	free(row);
}

static void test_copy_within_account(void **state)
{
	(void)state;
	copy_between(a2, a2_dev);
}

static void test_copy_to_linked_account(void **state)
{
	(void)state;
	copy_between(c1, c1_dev);
}

static void test_unlinked_account_refused(void **state)
{
	char iccid[24], *row = sim_row(a1, 2, iccid), *out = NULL, *err = NULL;
	char *args[] = { "--json", "host", "instruct", a1_dev, "copy-vsim", iccid, "--to", c1_dev, NULL };
	long long id;

	(void)state;
	assert_non_null(row);
	/* Queued while linked, then the link ends before the phone connects:
	 * the phone itself refuses to export to an unlinked account. */
	id = queue(args);
	assert_int_equal(imd_cmd("unlink-accounts", "alice", "carol"), 0);
	ping(a1, &out);
	assert_non_null(strstr(out, "\"op\":\"export-vsim\",\"ok\":false"));
	free(out);
	expect_state(id, "refused");
	assert_false(has_iccid(c1, iccid));
	/* And the host refuses to queue a copy across unlinked accounts. */
	assert_int_equal(host_cmd(args, NULL, &err), 1);
	assert_non_null(strstr(err, "not linked"));
	free(err);
	free(row);
}

static void test_unpaired_host_refused(void **state)
{
	pb_test_host_t h2;
	char h2home[4096], iccid[24], *row = sim_row(a1, 1, iccid), *err = NULL;
	char *args[] = { "host", "instruct", a1_dev, "delete-vsim", iccid, NULL };

	(void)state;
	mk(h2home, "other-host");
	assert_int_equal(pb_test_login(&imd, h2home, "alice", "other-desk"), 0);
	pb_test_host_start(&h2, h2home, "127.0.0.1:0", NULL);
	/* A host the phone never paired with cannot instruct it. */
	assert_int_equal(pb_test_peerback(h2home, args, NULL, &err), 1);
	assert_non_null(strstr(err, "no device paired with this host"));
	free(err);
	pb_test_host_stop(&h2);
	assert_true(has_iccid(a1, iccid));
	free(row);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delete_while_offline),
		cmocka_unit_test(test_copy_within_account),
		cmocka_unit_test(test_copy_to_linked_account),
		cmocka_unit_test(test_unlinked_account_refused),
		cmocka_unit_test(test_unpaired_host_refused),
	};
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
