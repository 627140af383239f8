/* peerback version: the program and protocol versions, and the libraries. */
#include <stdio.h>

#include <sodium.h>
#include <uv.h>
#include <zstd.h>
#include <sqlite3.h>

#include "commands.h"

int pb_cmd_version(pb_cli_t *cli, int argc, char **argv)
{
	if (pb_cli_wants_help(argc, argv)) {
		printf("usage: peerback version\n\nPrints the versions of peerback, its protocol and its libraries.\n");
		return 0;
	}
	if (cli->json) {
		(void)pb_cli_json("{s:o, s:I, s:o, s:o, s:o, s:o}", "peerback", pb_cli_text(PB_VERSION_STRING),
				  "protocol", (json_int_t)PB_PROTOCOL_VERSION, "libuv",
				  pb_cli_text(uv_version_string()), "libsodium",
				  pb_cli_text(sodium_version_string()), "zstd",
				  pb_cli_text(ZSTD_versionString()), "sqlite",
				  pb_cli_text(sqlite3_libversion()));
		return 0;
	}
	printf("peerback %s (protocol %d)\nlibuv %s, libsodium %s, zstd %s, sqlite %s\n", PB_VERSION_STRING,
	       PB_PROTOCOL_VERSION, uv_version_string(), sodium_version_string(), ZSTD_versionString(),
	       sqlite3_libversion());
	return 0;
}
