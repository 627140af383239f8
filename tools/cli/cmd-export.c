/* peerback export: writes the device's items of one kind into a directory
 * in a real interchange format. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "kinds-cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: peerback export KIND --out DIR [--format FMT] [--device DIR]\n"
		"\n"
		"Writes the items of KIND from the device directory (default HOME/device)\n"
		"into DIR, one file per item where the format has one file per item.\n"
		"\n"
		"KIND and its formats (the first is the default):\n");
	for (int k = PB_KIND_CREDENTIAL; k <= PB_KIND_CONTACTS; k++)
		fprintf(out, "  %-12s %s\n", pb_kind_name((pb_kind_t)k), pb_kind_formats((pb_kind_t)k));
	fprintf(out,
		"\n"
		"options:\n"
		"  --out DIR     directory to write (created when missing)\n"
		"  --format FMT  output format\n"
		"  --device DIR  device directory to read\n");
}

int pb_cmd_export(pb_cli_t *cli, int argc, char **argv)
{
	const char *device = NULL, *format = NULL, *out = NULL;
	char dir[4096], err[1024] = "", def[32];
	pb_kind_t kind;
	int rc;

	if (pb_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || pb_kind_parse(argv[1], &kind) != 0) {
		if (argc >= 2)
			fprintf(stderr, "peerback: unknown kind '%s' (credentials, mifare, sim, chat, contacts)\n",
				argv[1]);
		else
			usage(stderr);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
			device = argv[++i];
		else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc)
			format = argv[++i];
		else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			out = argv[++i];
		else {
			return pb_cli_usage(cli, "peerback: unexpected argument '%s'; see 'peerback export --help'",
					    argv[i]);
		}
	}
	if (out == NULL) {
		return pb_cli_usage(cli, "peerback: export needs --out DIR");
	}
	if (pb_cli_device_dir(cli, device, dir, sizeof(dir)) != 0)
		return pb_cli_fail(cli, "device directory path is too long");
	/* The default format is the first one listed. */
	if (format == NULL) {
		snprintf(def, sizeof(def), "%s", pb_kind_formats(kind));
		def[strcspn(def, " ")] = 0;
		format = def;
	}
	rc = pb_kind_export(kind, dir, format, out, err, sizeof(err));
	if (rc != 0) {
		if (err[0] == 0)
			return pb_cli_fail_err(cli, rc, "export %s", pb_kind_name(kind));
		return pb_cli_fail(cli, "%s", err);
	}
	if (cli->json)
		(void)pb_cli_json("{s:s, s:s, s:o}", "event", "exported", "kind", pb_kind_name(kind), "format",
				  pb_cli_text(format));
	else
		printf("exported %s as %s into %s\n", pb_kind_name(kind), format, out);
	return 0;
}
