/* peerback devices: the pairings this device holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

int pb_cli_list_paired(pb_cli_t *cli);

int pb_cmd_devices(pb_cli_t *cli, int argc, char **argv)
{
	pb_host_info_t *hosts = NULL;
	size_t n = 0;
	int rc, m;

	if (pb_cli_wants_help(argc, argv)) {
		printf("usage: peerback devices\n\nLists the hosts this phone is paired with, and the phones\n"
		       "paired with this host.\n");
		return 0;
	}
	if ((rc = pb_cli_hosts(cli, &hosts, &n)) != 0)
		return pb_cli_fail_err(cli, rc, "paired hosts");
	for (size_t i = 0; i < n; i++) {
		const char *addr = hosts[i].naddrs > 0 ? hosts[i].addrs[0] : "";

		if (cli->json)
			(void)pb_cli_json("{s:s, s:s, s:o, s:o, s:s, s:I}", "role", "host", "key", hosts[i].key, "name",
					  pb_cli_text(hosts[i].name), "account", pb_cli_text(hosts[i].account), "address",
					  addr, "paired_at", (json_int_t)hosts[i].paired_at);
		else
			printf("host   %s  %-20s %s\n", hosts[i].key, hosts[i].name, addr);
	}
	free(hosts);
	m = pb_cli_list_paired(cli);
	if (m < 0)
		return pb_cli_fail_err(cli, m, "paired devices");
	if (n == 0 && m == 0 && !cli->json)
		printf("no pairings\n");
	return 0;
}
