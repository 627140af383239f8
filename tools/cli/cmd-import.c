/* peerback import: validates files in real interchange formats and adds
 * their items to the device directory, all or nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "kinds-cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: peerback import KIND FILE... [--device DIR] [--date-format FMT]\n"
		"\n"
		"Validates FILEs and adds their items to the device directory (default\n"
		"HOME/device). Either every file is imported or nothing is written.\n"
		"\n"
		"KIND and the files it reads:\n"
		"  credentials  peerback credential .json; pySim card-key .csv (ICCID/EID, ADM1, PIN1, ...)\n"
		"  mifare       MIFARE Classic Tool .mct and .keys, .bin/.mfd dumps, Proxmark3 .eml\n"
		"               and .json, Flipper .nfc\n"
		"  sim          pySim-prog .csv (iccid, imsi, ki, opc, ...)\n"
		"  chat         Telegram chat export (result.json); WhatsApp .txt export\n"
		"  contacts     vCard .vcf (2.1, 3.0, 4.0)\n"
		"\n"
		"options:\n"
		"  --device DIR  device directory to import into\n"
		"  --date-format FMT  day/month order of WhatsApp dates, e.g. DD/MM/YY or MM/DD/YY\n"
		"                (read from the file when not given)\n");
}

int pb_cmd_import(pb_cli_t *cli, int argc, char **argv)
{
	const char *device = NULL, *date_format = NULL, **files;
	char dir[4096], err[1024] = "";
	pb_kind_t kind;
	size_t n = 0;
	int rc;

	if (pb_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	if (argc < 3) {
		usage(stderr);
		return 2;
	}
	if (pb_kind_parse(argv[1], &kind) != 0) {
		return pb_cli_usage(cli, "peerback: unknown kind '%s' (credentials, mifare, sim, chat, contacts)",
				    argv[1]);
	}
	files = calloc((size_t)argc, sizeof(*files));
	if (files == NULL)
		return pb_cli_fail_err(cli, PB_ENOMEM, "import");
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
			device = argv[++i];
		else if (strcmp(argv[i], "--date-format") == 0 && i + 1 < argc && kind == PB_KIND_CHAT)
			date_format = argv[++i];
		else if (strncmp(argv[i], "--", 2) == 0) {
			free(files);
			return pb_cli_usage(cli, "peerback: unknown option '%s'; see 'peerback import --help'",
					    argv[i]);
		} else
			files[n++] = argv[i];
	}
	if (n == 0) {
		free(files);
		usage(stderr);
		return 2;
	}
	if (pb_cli_device_dir(cli, device, dir, sizeof(dir)) != 0) {
		free(files);
		return pb_cli_fail(cli, "device directory path is too long");
	}
	rc = pb_kind_import(kind, dir, files, n, date_format, err, sizeof(err));
	free(files);
	if (rc != 0) {
		if (err[0] == 0)
			return pb_cli_fail_err(cli, rc, "import %s", pb_kind_name(kind));
		return pb_cli_fail(cli, "%s; nothing was imported", err);
	}
	if (cli->json)
		(void)pb_cli_json("{s:s, s:s, s:I}", "event", "imported", "kind", pb_kind_name(kind), "files",
				  (json_int_t)n);
	else
		printf("imported %zu %s file%s into %s\n", n, pb_kind_name(kind), n == 1 ? "" : "s", dir);
	return 0;
}
