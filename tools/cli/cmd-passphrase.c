/* peerback passphrase change: a new recovery passphrase for this phone's
 * master key, on the phone and on every paired host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "commands.h"

static const char usage_text[] =
	"usage: peerback passphrase change [--new-passphrase-file FILE]\n"
	"                                  [--new-passphrase-command CMD]\n\n"
	"Wraps this phone's master key with a new recovery passphrase and gives the\n"
	"new wrap to every paired host, so that a new phone restores with the new\n"
	"passphrase from any of them; the old one opens nothing afterwards. The data\n"
	"keys stay the same: nothing is backed up again.\n\n"
	"The current passphrase comes from --passphrase-file, --passphrase-command,\n"
	"PEERBACK_RECOVERY_PASSPHRASE or a prompt; the new one from the options above,\n"
	"PEERBACK_NEW_RECOVERY_PASSPHRASE, or a prompt that asks twice. Every paired\n"
	"host must answer: when one does not, nothing is changed (the hosts that took\n"
	"the new wrap get the old one back) and the host is named.\n\n"
	"Exit status: 0 changed everywhere; 1 not changed; 12 wrong current passphrase.\n";

/* The new passphrase: from a file, a command, the environment, or typed
 * twice. */
static int new_passphrase(pb_cli_t *cli, const char *file, const char *cmd, char *buf, size_t cap)
{
	char again[1024];
	int rc;

	if (file != NULL || cmd != NULL)
		return pb_cli_secret_from(cli, file, cmd, buf, cap);
	if (getenv("PEERBACK_NEW_RECOVERY_PASSPHRASE") != NULL) {
		if (pb_cli_secret("PEERBACK_NEW_RECOVERY_PASSPHRASE", "", buf, cap) != 0)
			return pb_cli_fail(cli, "PEERBACK_NEW_RECOVERY_PASSPHRASE is too long");
		return 0;
	}
	if (pb_cli_secret(NULL, "new recovery passphrase: ", buf, cap) != 0)
		return pb_cli_fail(cli, "no new passphrase: set PEERBACK_NEW_RECOVERY_PASSPHRASE, pass "
					"--new-passphrase-file, or run on a terminal");
	if (pb_cli_secret(NULL, "repeat the new recovery passphrase: ", again, sizeof(again)) != 0)
		again[0] = 0;
	rc = strcmp(again, buf) != 0;
	sodium_memzero(again, sizeof(again));
	if (rc != 0)
		return pb_cli_fail(cli, "the two new passphrases differ; nothing was changed, run it again");
	return 0;
}

/* The hosts that took the new wrap, and the ones that kept it when they
 * should have got the old one back. */
static int on_event(void *arg, const pb_event_t *ev)
{
	pb_cli_t *cli = arg;

	if (ev->type == PB_EVENT_WARNING)
		fprintf(stderr, "peerback: host %s keeps the key wrapped with the NEW passphrase; run "
				"peerback passphrase change again once every host answers\n", ev->message);
	else if (cli->json)
		(void)pb_cli_json("{s:s, s:o}", "event", "passphrase-changed", "host", pb_cli_text(ev->id));
	else
		printf("%s: holds the key wrapped with the new passphrase\n", ev->message);
	return 0;
}

int pb_cmd_passphrase(pb_cli_t *cli, int argc, char **argv)
{
	const char *new_file = NULL, *new_cmd = NULL;
	char cur[1024], next[1024];
	pb_passphrase_opts_t o;
	pb_passphrase_result_t r;
	pb_phone_t *phone;
	int rc;

	if (pb_cli_wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "change") != 0)
		return pb_cli_usage(cli, "peerback passphrase: expected 'change'; see 'peerback passphrase --help'");
	for (int i = 2; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--new-passphrase-file") == 0)
			new_file = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--new-passphrase-command") == 0)
			new_cmd = argv[++i];
		else
			return pb_cli_usage(cli, "peerback passphrase change: unknown argument '%s'", argv[i]);
	}
	if ((rc = pb_cli_phone(cli, NULL, &phone)) != 0)
		return pb_cli_fail_err(cli, rc, "cannot open the phone's state in %s", cli->home);
	if (!pb_phone_has_master_key(phone)) {
		pb_phone_close(phone);
		return pb_cli_fail(cli, "this phone holds no master key in %s/master.key: its first backup sets the "
					"recovery passphrase (or restore first on a new phone)", cli->home);
	}
	/* The current passphrase must be the right one: changing it is for
	 * the one who knows it. */
	rc = pb_cli_current_passphrase(cli, cur, sizeof(cur));
	if (rc == 0 && cur[0] == 0)
		rc = pb_cli_fail(cli, "the current recovery passphrase is needed: set PEERBACK_RECOVERY_PASSPHRASE, "
				      "pass --passphrase-file, or run on a terminal");
	if (rc == 0)
		rc = new_passphrase(cli, new_file, new_cmd, next, sizeof(next));
	if (rc == 0 && pb_passphrase_check(next) != 0)
		rc = pb_cli_error(cli, PB_ESTORE_WEAKPASS, "%s; nothing was changed", pb_strerror(PB_ESTORE_WEAKPASS));
	if (rc == 0) {
		memset(&o, 0, sizeof(o));
		o.current = cur;
		o.next = next;
		o.weak_kdf = pb_cli_wrap_params() != NULL;
		o.on_event = on_event;
		o.event_arg = cli;
		rc = pb_phone_change_passphrase(phone, &o, &r);
		if (rc == 0 && !cli->json)
			printf("recovery passphrase changed on the phone and %zu host%s\n", r.hosts,
			       r.hosts == 1 ? "" : "s");
		else if (rc != 0 && r.failed[0] != 0) {
			rc = pb_cli_fail_err(cli, rc, "host %s did not take the new wrapped key", r.failed);
			fprintf(stderr, "peerback: the recovery passphrase was not changed\n");
		} else if (rc != 0 && r.hosts > 0)
			rc = pb_cli_fail_err(cli, rc, "every host holds the key wrapped with the new passphrase, but "
						      "the phone could not write %s/master.wrapped", cli->home);
		else if (rc != 0)
			rc = pb_cli_fail_err(cli, rc, "passphrase change");
	}
	sodium_memzero(cur, sizeof(cur));
	sodium_memzero(next, sizeof(next));
	pb_phone_close(phone);
	return rc;
}
