/* peerback: the phone-side and host-side command line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "commands.h"

static const pb_cli_cmd_t commands[] = {
#define PB__CLI_ENTRY(name, fn, summary) { name, fn, summary },
	PB_CLI_COMMANDS(PB__CLI_ENTRY)
#undef PB__CLI_ENTRY
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: peerback [--home DIR] [--json] [--quiet] COMMAND [ARGS...]\n"
		"\n"
		"Back up a phone's NFC credentials, MIFARE cards, SIM profiles, chats and\n"
		"contacts to a paired host that stores only ciphertext.\n"
		"\n"
		"options:\n"
		"  --home DIR   state directory (default: $XDG_DATA_HOME/peerback)\n"
		"  --json       print machine-readable JSON lines instead of text; errors are\n"
		"               {\"event\":\"error\",\"code\":\"PB_E...\",\"message\":...} on stdout\n"
		"  --quiet, -q  no progress bars or notes: only results and errors\n"
		"  --passphrase-file FILE     read the recovery passphrase from FILE\n"
		"  --passphrase-command CMD   read it from what CMD prints (run by /bin/sh)\n"
		"               (else PEERBACK_RECOVERY_PASSPHRASE, else a prompt when needed)\n"
		"  --version    print the version and exit\n"
		"Options may come before or after the command.\n"
		"\n"
		"commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "  %-13s %s\n", "help", "show a command's options (peerback help COMMAND)");
	fprintf(out, "\nRun 'peerback COMMAND --help' for a command's options.\n"
		     "\nexit status:\n"
		     "  0   done\n"
		     "  1   failed\n"
		     "  2   usage error (unknown command, option or value)\n"
		     "  3   partial backup: some files were skipped, or some paired host missed it\n"
		     "  10  no backup found (no snapshot, or no such item)\n"
		     "  11  locked or busy (another process uses the store; try again)\n"
		     "  12  wrong recovery passphrase\n");
}

static int default_home(pb_cli_t *cli)
{
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	int n;

	if (xdg != NULL && xdg[0] == '/')
		n = snprintf(cli->home, sizeof(cli->home), "%s/peerback", xdg);
	else if (home != NULL)
		n = snprintf(cli->home, sizeof(cli->home), "%s/.local/share/peerback", home);
	else
		return PB_ENOTFOUND;
	if (n < 0 || (size_t)n >= sizeof(cli->home))
		return PB_ETOOBIG;
	return 0;
}

/* Creates the state directory, or makes an existing one private: it holds
 * keys, pairing secrets and restored data. */
static int make_home(const pb_cli_t *cli)
{
	unsigned was = 0;
	struct stat st;
	pb_phone_t *phone = NULL;
	int rc;

	if (stat(cli->home, &st) == 0 && (st.st_mode & 077) != 0)
		was = st.st_mode & 07777;
	/* Opening the phone makes its home private. */
	if ((rc = pb_phone_open(cli->home, &phone)) == 0)
		pb_phone_close(phone);

	if (rc == -EPERM)
		return pb_cli_fail(cli, "state directory %s is open to other users and belongs to someone else; "
					"pass --home with a directory of your own", cli->home);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "cannot create state directory %s", cli->home);
	if (was != 0)
		fprintf(stderr, "peerback: state directory %s was open to other users (mode %04o); made it 0700\n",
			cli->home, was);
	return 0;
}

/* Commands that only read the state directory: they must not create it. */
static bool reads_only(int argc, char **argv)
{
	if (strcmp(argv[0], "version") == 0 || strcmp(argv[0], "devices") == 0)
		return true;
	return strcmp(argv[0], "account") == 0 && argc > 1 && strcmp(argv[1], "show") == 0;
}

/* Takes the options every command shares out of argv, wherever they are
 * (before "--" only): --json, --quiet, --passphrase-file, and
 * --passphrase-command. Returns the new argc, or -1 after a usage error. */
static int shared_options(pb_cli_t *cli, int argc, char **argv)
{
	int out = 1, i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0)
			break;
		if (strcmp(a, "--json") == 0) {
			cli->json = true;
		} else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			cli->quiet = true;
		} else if (strcmp(a, "--passphrase-file") == 0 || strcmp(a, "--passphrase-command") == 0) {
			if (i + 1 >= argc) {
				(void)pb_cli_usage(cli, "peerback: %s needs a value", a);
				return -1;
			}
			if (a[13] == 'f')
				cli->pass_file = argv[++i];
			else
				cli->pass_command = argv[++i];
		} else {
			argv[out++] = argv[i];
		}
	}
	while (i < argc)
		argv[out++] = argv[i++];
	argv[out] = NULL;
	return out;
}

int main(int argc, char **argv)
{
	pb_cli_t cli;
	int i = 1, rc;

	/* Whatever peerback writes is for its user only, whichever code path
	 * writes it; the library sets modes itself too. */
	umask(077);
	memset(&cli, 0, sizeof(cli));
	cli.prog = "peerback";
	cli.tty = isatty(2);
	if (sodium_init() < 0) {
		fprintf(stderr, "peerback: the crypto library failed to start\n");
		return 1;
	}
	if ((argc = shared_options(&cli, argc, argv)) < 0)
		return PB_EXIT_USAGE;
	if (cli.pass_file != NULL && cli.pass_command != NULL)
		return pb_cli_usage(&cli, "peerback: give --passphrase-file or --passphrase-command, not both");
	if ((rc = default_home(&cli)) != 0 && argc < 3)
		return pb_cli_fail_err(&cli, rc, "cannot find a state directory; pass --home DIR");
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--home") == 0 && i + 1 < argc) {
			int n = snprintf(cli.home, sizeof(cli.home), "%s", argv[++i]);
			if (n < 0 || (size_t)n >= sizeof(cli.home))
				return pb_cli_fail(&cli, "--home path is too long");
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("peerback %s (protocol %d)\n", PB_VERSION_STRING, PB_PROTOCOL_VERSION);
			return 0;
		} else {
			return pb_cli_usage(&cli, "peerback: unknown option '%s'; see 'peerback --help'", argv[i]);
		}
	}
	if (i >= argc) {
		usage(stderr);
		return PB_EXIT_USAGE;
	}
	/* peerback help COMMAND is peerback COMMAND --help. */
	if (strcmp(argv[i], "help") == 0) {
		char *help_argv[] = { NULL, "--help", NULL };

		if (i + 1 >= argc) {
			usage(stdout);
			return 0;
		}
		for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++)
			if (strcmp(argv[i + 1], commands[c].name) == 0) {
				help_argv[0] = argv[i + 1];
				return commands[c].fn(&cli, 2, help_argv);
			}
		return pb_cli_usage(&cli, "peerback: unknown command '%s'; see 'peerback --help'", argv[i + 1]);
	}
	if (cli.home[0] == 0)
		return pb_cli_fail(&cli, "cannot find a state directory; pass --home DIR");
	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
		if (strcmp(argv[i], commands[c].name) != 0)
			continue;
		if (!pb_cli_wants_help(argc - i, argv + i) && !reads_only(argc - i, argv + i) &&
		    (rc = make_home(&cli)) != 0)
			return rc;
		return commands[c].fn(&cli, argc - i, argv + i);
	}
	return pb_cli_usage(&cli, "peerback: unknown command '%s'; see 'peerback --help'", argv[i]);
}
