/* peerback account: log this device into the IM account service. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/account/account.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"
#include "agent/util/json.h"
#include "tools/cli/commands.h"

static const char usage_text[] =
	"usage: peerback account login --imd ADDR:PORT --imd-key KEY --account ID [--name NAME]\n"
	"       peerback account show\n"
	"\n"
	"login  logs this device into the account service and stores its device\n"
	"       certificate; the password comes from PEERBACK_PASSWORD or a prompt.\n"
	"       KEY is the service key printed by 'peerback-imd serve'. NAME defaults\n"
	"       to the machine's host name.\n"
	"show   prints the account this device is logged into.\n";

static int show(pb_cli_t *cli)
{
	pb_account_t acct;
	pb_identity_t id;
	char dev[2 * PB_DEVICE_ID_LEN + 1], key[64];
	int rc = pb__account_load(cli->home, &acct);

	if (rc == 0)
		rc = pb__identity_load(cli->home, &id);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "account");
	pb__hex(id.device_id, PB_DEVICE_ID_LEN, dev);
	(void)pb__b64url_encode(id.static_pk, 32, key, sizeof(key));
	pb__identity_wipe(&id);
	if (cli->json)
		(void)pb__json_print("{s:o, s:s, s:o, s:s, s:o}", "account", pb__json_text(acct.account), "device", dev,
				     "name", pb__json_text(acct.device_name), "key", key, "imd",
				     pb__json_text(acct.imd_addr));
	else
		printf("account %s\ndevice  %s (%s)\nkey     %s\nservice %s\n", acct.account, acct.device_name, dev,
		       key, acct.imd_addr);
	return 0;
}

int pb_cmd_account(pb_cli_t *cli, int argc, char **argv)
{
	const char *imd = NULL, *key = NULL, *account = NULL, *name = NULL;
	char host[65], pw[1024];
	int rc;

	if (pb_cli_wants_help(argc, argv) || argc < 2) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "show") == 0)
		return show(cli);
	if (strcmp(argv[1], "login") != 0) {
		fprintf(stderr, "peerback account: unknown command '%s'\n%s", argv[1], usage_text);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--imd") == 0)
			imd = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--imd-key") == 0)
			key = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--account") == 0)
			account = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--name") == 0)
			name = argv[++i];
		else {
			fprintf(stderr, "peerback account login: unknown argument '%s'\n%s", argv[i], usage_text);
			return 2;
		}
	}
	if (imd == NULL || key == NULL || account == NULL) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (name == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "device");
		host[sizeof(host) - 1] = 0;
		name = host;
	}
	if (strlen(name) > 64)
		return pb_cli_fail(cli, "--name is longer than 64 bytes");
	rc = pb_cli_secret("PEERBACK_PASSWORD", "account password: ", pw, sizeof(pw));
	if (rc != 0)
		return pb_cli_fail(cli, "no password: set PEERBACK_PASSWORD or run on a terminal");
	rc = pb_phone_login(cli->home, imd, key, account, pw, name);
	sodium_memzero(pw, sizeof(pw));
	if (rc == PB_EURI_BASE64 || rc == PB_EURI_KEYLEN)
		return pb_cli_fail(cli, "--imd-key must be the 43-character service key printed by peerback-imd");
	if (rc == PB_EURI_ADDR)
		return pb_cli_fail(cli, "--imd must be ADDR:PORT, e.g. 127.0.0.1:7450 or [::1]:7450");
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "login to %s as %s failed", imd, account);
	if (cli->json)
		(void)pb__json_print("{s:s, s:o, s:o}", "event", "logged-in", "account", pb__json_text(account), "name",
				     pb__json_text(name));
	else
		printf("logged in as %s (%s)\n", account, name);
	return 0;
}
