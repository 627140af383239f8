/* peerback gen: fills a device directory with realistic, deterministic data
 * of every kind, for demos, tests and benchmarks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "kinds-cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: peerback gen --out DIR --seed N --size small|standard|large\n"
		"\n"
		"Writes a generated phone's data into the device directory DIR: NFC\n"
		"credentials, MIFARE Classic cards, SIM profiles, chats and contacts.\n"
		"peerback backup reads HOME/device unless given --device DIR, so\n"
		"--out HOME/device makes the phone's data; another DIR needs --device.\n"
		"The same seed and size always give the same files.\n"
		"\n"
		"options:\n"
		"  --out DIR     device directory to fill (created when missing)\n"
		"  --seed N      seed, a decimal number (default 1)\n"
		"  --size SIZE   small (a few items), standard (about 1 GiB), large\n");
}

int pb_cmd_gen(pb_cli_t *cli, int argc, char **argv)
{
	const char *out = NULL;
	pb_gen_size_t size = PB_GEN_STANDARD;
	uint64_t seed = 1;
	int status = 0;

	if (pb_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
			out = argv[++i];
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			char *end;
			unsigned long long v;

			errno = 0;
			v = strtoull(argv[++i], &end, 10);
			if (errno != 0 || end == argv[i] || *end != 0 || argv[i][0] == '-') {
				return pb_cli_usage(cli, "peerback: --seed needs a decimal number, not '%s'", argv[i]);
			}
			seed = v;
		} else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
			const char *s = argv[++i];

			if (strcmp(s, "small") == 0)
				size = PB_GEN_SMALL;
			else if (strcmp(s, "standard") == 0)
				size = PB_GEN_STANDARD;
			else if (strcmp(s, "large") == 0)
				size = PB_GEN_LARGE;
			else {
				return pb_cli_usage(cli, "peerback: --size is small, standard or large, not '%s'", s);
			}
		} else {
			return pb_cli_usage(cli, "peerback: unexpected argument '%s'; see 'peerback gen --help'",
					    argv[i]);
		}
	}
	if (out == NULL) {
		return pb_cli_usage(cli, "peerback: gen needs --out DIR");
	}
	for (int k = PB_KIND_CREDENTIAL; k <= PB_KIND_CONTACTS; k++) {
		int rc = pb_kind_gen((pb_kind_t)k, out, seed, size);

		if (rc != 0) {
			pb_cli_fail_err(cli, rc, "generating %s into %s", pb_kind_name((pb_kind_t)k), out);
			status = 1;
			continue;
		}
		if (cli->json)
			(void)pb_cli_json("{s:s, s:s}", "event", "generated", "kind", pb_kind_name((pb_kind_t)k));
	}
	if (status == 0 && !cli->json) {
		char def[4200];
		struct stat a, b;

		printf("generated a %s device into %s (seed %llu)\n",
		       size == PB_GEN_SMALL ? "small" : size == PB_GEN_STANDARD ? "standard" : "large", out,
		       (unsigned long long)seed);
		/* Where backup reads from, so that the next step finds it. */
		snprintf(def, sizeof(def), "%s/device", cli->home);
		if (stat(def, &a) == 0 && stat(out, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			printf("peerback backup reads this directory (%s) by default\n", def);
		else
			printf("peerback backup reads %s by default: back this one up with "
			       "peerback backup --device %s\n",
			       def, out);
	}
	return status;
}
