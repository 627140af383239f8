/* peerback account: log this device into the IM account service. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "commands.h"

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
	pb_account_info_t acct;
	pb_phone_t *phone = NULL;
	struct stat st;
	int rc = PB_EACCT_NOT_LOGGED_IN;

	/* Showing must not create the state directory. */
	if (stat(cli->home, &st) == 0 && (rc = pb_cli_phone(cli, NULL, &phone)) == 0) {
		rc = pb_phone_account(phone, &acct);
		pb_phone_close(phone);
	}
	if (rc == -ENOENT || rc == PB_ENOTFOUND || rc == PB_EACCT_NOT_LOGGED_IN)
		return pb_cli_error(cli, PB_EACCT_NOT_LOGGED_IN, "this device is not logged in (no account in %s); run "
								 "peerback account login", cli->home);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "cannot read the account in %s on this device", cli->home);
	if (cli->json)
		(void)pb_cli_json("{s:o, s:s, s:o, s:s, s:o}", "account", pb_cli_text(acct.account), "device",
				  acct.device, "name", pb_cli_text(acct.name), "key", acct.key, "imd",
				  pb_cli_text(acct.service));
	else
		printf("account %s\ndevice  %s (%s)\nkey     %s\nservice %s\n", acct.account, acct.name, acct.device,
		       acct.key, acct.service);
	return 0;
}

int pb_cmd_account(pb_cli_t *cli, int argc, char **argv)
{
	const char *imd = NULL, *key = NULL, *account = NULL, *name = NULL;
	char host[65], pw[1024], addr[128];
	pb_phone_t *phone;
	int rc;

	if (pb_cli_wants_help(argc, argv) || argc < 2) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "show") == 0)
		return show(cli);
	if (strcmp(argv[1], "login") != 0) {
		return pb_cli_usage(cli, "peerback account: unknown command '%s'; see 'peerback account --help'",
				    argv[1]);
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
			return pb_cli_usage(cli, "peerback account login: unknown argument '%s'; see 'peerback account "
						 "--help'", argv[i]);
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
	if ((rc = pb_phone_resolve(imd, addr, sizeof(addr))) == PB_ENOTFOUND)
		return pb_cli_error(cli, rc, "--imd %s: no such host name", imd);
	if (rc != 0)
		return pb_cli_usage(cli, "peerback: --imd must be HOST:PORT, e.g. imd.example.org:7450, "
					 "127.0.0.1:7450 or [::1]:7450");
	rc = pb_cli_secret("PEERBACK_PASSWORD", "account password: ", pw, sizeof(pw));
	if (rc != 0)
		return pb_cli_fail(cli, "no password: set PEERBACK_PASSWORD or run on a terminal");
	if ((rc = pb_cli_phone(cli, NULL, &phone)) == 0) {
		rc = pb_phone_login(phone, addr, key, account, pw, name);
		pb_phone_close(phone);
	}
	sodium_memzero(pw, sizeof(pw));
	if (rc == PB_EURI_BASE64 || rc == PB_EURI_KEYLEN)
		return pb_cli_fail(cli, "--imd-key must be the 43-character service key printed by peerback-imd");
	/* The channel to the service is pinned by --imd-key: a service
	 * without that key cannot complete it, which the service library
	 * reports as a refusal. */
	if (rc == PB_ENOISE_HANDSHAKE || rc == PB_ENOISE_DECRYPT || rc == PB_EACCT_SERVICE)
		return pb_cli_error(cli, rc, "the account service at %s refused the secure channel: the --imd-key "
					     "given is not its key (compare with what 'peerback-imd keys' prints), or "
					     "another service answers at that address", addr);
	if (rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH || rc == PB_ETIMEOUT)
		return pb_cli_error(cli, rc, "the account service at %s did not answer: %s (is peerback-imd serve "
					     "running there?)", addr, pb_strerror(rc));
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "login to %s as %s failed", imd, account);
	if (cli->json)
		(void)pb_cli_json("{s:s, s:o, s:o}", "event", "logged-in", "account", pb_cli_text(account), "name",
				  pb_cli_text(name));
	else
		printf("logged in as %s (%s)\n", account, name);
	return 0;
}
