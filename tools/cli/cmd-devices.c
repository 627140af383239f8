/* peerback devices: the pairings this device holds. */
#include <stdio.h>
#include <string.h>

#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"
#include "tools/cli/cli.h"
#include "tools/cli/commands.h"

int pb__cli_list_paired(pb_cli_t *cli);

int pb_cmd_devices(pb_cli_t *cli, int argc, char **argv)
{
	pb_remembered_host_t hosts[32];
	int n, m;

	if (pb_cli_wants_help(argc, argv)) {
		printf("usage: peerback devices\n\nLists the hosts this phone is paired with, and the phones\n"
		       "paired with this host.\n");
		return 0;
	}
	n = pb__phone_hosts(cli->home, hosts, 32);
	if (n < 0)
		return pb_cli_fail_err(cli, n, "paired hosts");
	for (int i = 0; i < n; i++) {
		char key[64], addr[96] = "";

		(void)pb__b64url_encode(hosts[i].static_pk, 32, key, sizeof(key));
		if (hosts[i].naddrs > 0)
			(void)pb__sockaddr_format(&hosts[i].addrs[0], addr, sizeof(addr));
		if (cli->json)
			(void)pb_cli_json("{s:s, s:s, s:s, s:s, s:s, s:I}", "role", "host", "key", key, "name",
					  hosts[i].name, "account", hosts[i].account, "address", addr, "paired_at",
					  (json_int_t)hosts[i].paired_at);
		else
			printf("host   %s  %-20s %s\n", key, hosts[i].name, addr);
	}
	m = pb__cli_list_paired(cli);
	if (m < 0)
		return pb_cli_fail_err(cli, m, "paired devices");
	if (n == 0 && m == 0 && !cli->json)
		printf("no pairings\n");
	return 0;
}
