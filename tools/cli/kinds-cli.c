/* What the import, export, gen and nfc subcommands share. */
#include <stdio.h>

#include "kinds-cli.h"

int pb_cli_device_dir(const pb_cli_t *cli, const char *given, char *out, size_t cap)
{
	int n = given != NULL ? snprintf(out, cap, "%s", given) : snprintf(out, cap, "%s/device", cli->home);

	if (n < 0 || (size_t)n >= cap)
		return PB_ETOOBIG;
	return 0;
}
