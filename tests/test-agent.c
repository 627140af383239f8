/* The automatic backup agent end to end: it backs up a change on an allowed
 * network and not on a disallowed one, never resends unchanged data, and
 * after a SIM change brings back the contact groups kept for that SIM. The
 * Linux network type is checked in network namespaces with modem-like and
 * Ethernet-like interfaces. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "agent/util/fsutil.h"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone[4096], dev[4200];
static char netns[64]; /* removed at teardown, whatever the test's outcome */

static int agent(const char *network, char **out)
{
	char *args[] = { "--json", "agent", "--once", "--network-type", (char *)network, NULL }, *err = NULL;
	int rc = pb_test_peerback(phone, args, out, &err);

	if (rc != 0)
		printf("agent: %s", err);
	free(err);
	printf("%s", *out);
	return rc;
}

static int snapshots(void)
{
	char *args[] = { "--json", "ls", NULL }, *out = NULL;
	int n = 0;

	assert_int_equal(pb_test_peerback(phone, args, &out, NULL), 0);
	for (char *p = out; (p = strstr(p, "\"snapshot\"")) != NULL; p++)
		n++;
	free(out);
	return n;
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	char line[4096];

	(void)state;
	dir = pb_test_tmpdir("agent");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	snprintf(host_home, sizeof(host_home), "%s/host", dir);
	snprintf(phone, sizeof(phone), "%s/phone", dir);
	snprintf(dev, sizeof(dev), "%s/device", phone);
	assert_int_equal(pb__mkdirs(host_home, 0700), 0);
	assert_int_equal(pb__mkdirs(phone, 0700), 0);
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, phone, "alice", "phone"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", NULL);
	{
		char *pair[] = { "pair", host.uri, NULL };
		char *gen[] = { "gen", "--out", dev, "--seed", "21", "--size", "small", NULL };

		assert_int_equal(pb_test_peerback(phone, pair, NULL, NULL), 0);
		assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
		assert_int_equal(pb_test_peerback(phone, gen, NULL, NULL), 0);
	}
	return 0;
}

static int sh(const char *cmd);

static int teardown(void **state)
{
	(void)state;
	if (netns[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "ip netns del %s", netns);
		sh(cmd);
	}
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

/* A new file appears among the phone's chats. */
static void add_file(void)
{
	char path[4300];

	snprintf(path, sizeof(path), "%s/chats/agent-note.txt", dev);
	assert_int_equal(pb_test_write_file(path, "a note written while the agent watched\n", 39), 0);
}

static void test_backs_up_on_allowed_network(void **state)
{
	char *out = NULL;

	(void)state;
	assert_int_equal(agent("wifi", &out), 0);
	assert_non_null(strstr(out, "\"event\":\"backup\",\"result\":\"OK\""));
	free(out);
	assert_int_equal(snapshots(), 1);
	/* Nothing changed: no backup at all. */
	assert_int_equal(agent("ethernet", &out), 0);
	assert_non_null(strstr(out, "\"event\":\"unchanged\""));
	assert_null(strstr(out, "\"event\":\"backup\""));
	free(out);
	assert_int_equal(snapshots(), 1);
}

static void test_not_on_cellular(void **state)
{
	char *out = NULL;

	(void)state;
	add_file();
	assert_int_equal(agent("cellular", &out), 0);
	assert_non_null(strstr(out, "\"event\":\"skipped\""));
	assert_non_null(strstr(out, "not allowed"));
	free(out);
	assert_int_equal(snapshots(), 1);
	/* Back on Wi-Fi, the change goes, and only the change. */
	assert_int_equal(agent("wifi", &out), 0);
	assert_non_null(strstr(out, "\"event\":\"backup\",\"result\":\"OK\",\"items_changed\":1,"));
	assert_true(pb_test_json_num(strstr(out, "\"event\":\"backup\""), "bytes_sent") < 64 * 1024);
	free(out);
	assert_int_equal(snapshots(), 2);
}

/* Swaps the first two SIM profiles: the first one is the active SIM. */
static void swap_sims(void)
{
	char path[4300], *data, *l1, *l2, *l3, out[65536];
	size_t len;
	int n;

	snprintf(path, sizeof(path), "%s/sim/profiles.csv", dev);
	data = (char *)pb_test_read_file(path, &len);
	assert_non_null(data);
	l1 = strchr(data, '\n') + 1;
	l2 = strchr(l1, '\n') + 1;
	l3 = strchr(l2, '\n');
	assert_non_null(l3);
	l3++;
	n = snprintf(out, sizeof(out), "%.*s%.*s%.*s%s", (int)(l1 - data), data, (int)(l3 - l2), l2, (int)(l2 - l1), l1,
		     l3);
	assert_int_equal(pb_test_write_file(path, out, (size_t)n), 0);
	free(data);
}

static void test_sim_change_brings_contacts(void **state)
{
	char vcf[4300], saved[4300], *out = NULL;
	size_t len;
	uint8_t *before;

	(void)state;
	snprintf(vcf, sizeof(vcf), "%s/contacts/contacts.vcf", dev);
	snprintf(saved, sizeof(saved), "%s/contacts-with-first-sim.vcf", dir);
	before = pb_test_read_file(vcf, &len);
	assert_non_null(before);
	assert_int_equal(pb_test_write_file(saved, before, len), 0);
	/* SIM B goes in, with no contacts on the phone; the agent notices the
	 * change, finds nothing kept for SIM B, and backs up. */
	swap_sims();
	assert_int_equal(unlink(vcf), 0);
	assert_int_equal(agent("wifi", &out), 0);
	assert_non_null(strstr(out, "\"event\":\"sim-changed\""));
	assert_non_null(strstr(out, "\"contacts\":0"));
	free(out);
	assert_int_equal(access(vcf, F_OK), -1);
	/* SIM A comes back: its contact groups come back from the host. */
	swap_sims();
	assert_int_equal(agent("wifi", &out), 0);
	assert_non_null(strstr(out, "\"event\":\"sim-changed\""));
	assert_non_null(strstr(out, "\"result\":\"OK\""));
	free(out);
	{
		size_t alen;
		uint8_t *after = pb_test_read_file(vcf, &alen);

		assert_non_null(after);
		assert_int_equal(alen, len);
		assert_memory_equal(after, before, len);
		assert_non_null(strstr((char *)after, "KIND:group"));
		free(after);
	}
	free(before);
}

static int sh(const char *cmd)
{
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };

	return pb_test_run(argv, NULL, 30, NULL, NULL);
}

static void test_linux_network_type(void **state)
{
	char *tool = pb_test_tool_sh("peerback"), cmd[8192], *out = NULL;
	char *ns = netns;
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };

	(void)state;
	snprintf(netns, sizeof(netns), "pbagent%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "ip netns add %s", ns);
	if (sh(cmd) != 0) {
		netns[0] = 0;
		printf("network namespaces are not available here; skipped\n");
		free(tool);
		skip();
	}
	/* A modem-like interface carrying the default route: cellular. */
	snprintf(cmd, sizeof(cmd),
		 "ip -n %s link add wwan0 type veth peer name pbpeer0 && ip -n %s link set wwan0 up && "
		 "ip -n %s addr add 192.0.2.2/24 dev wwan0 && ip -n %s route add default via 192.0.2.1",
		 ns, ns, ns, ns);
	/* (veth, as this kernel may lack the dummy driver; only the name and
	 * sysfs attributes matter to the classification) */
	assert_int_equal(sh(cmd), 0);
	snprintf(cmd, sizeof(cmd), "ip netns exec %s %s --home %s --json agent status", ns, tool, phone);
	assert_int_equal(pb_test_run(argv, NULL, 30, &out, NULL), 0);
	printf("%s", out);
	assert_non_null(strstr(out, "\"network\":\"cellular\",\"interface\":\"wwan0\""));
	free(out);
	/* The same with an Ethernet-like one. */
	snprintf(cmd, sizeof(cmd),
		 "ip -n %s route del default && ip -n %s link add eth7 type veth peer name pbpeer1 && ip -n %s link set eth7 up && "
		 "ip -n %s addr add 198.51.100.2/24 dev eth7 && ip -n %s route add default via 198.51.100.1",
		 ns, ns, ns, ns, ns);
	assert_int_equal(sh(cmd), 0);
	snprintf(cmd, sizeof(cmd), "ip netns exec %s %s --home %s --json agent status", ns, tool, phone);
	assert_int_equal(pb_test_run(argv, NULL, 30, &out, NULL), 0);
	printf("%s", out);
	assert_non_null(strstr(out, "\"network\":\"ethernet\",\"interface\":\"eth7\""));
	free(out);
	free(tool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backs_up_on_allowed_network),
		cmocka_unit_test(test_not_on_cellular),
		cmocka_unit_test(test_sim_change_brings_contacts),
		cmocka_unit_test(test_linux_network_type),
	};
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
