/* The kind table of the import, export and gen subcommands. */
#include <stdio.h>

#include "tools/cli/kinds-cli.h"

static const pb_cli_kind_t table[] = {
	{ PB_KIND_CREDENTIAL, pb__import_credentials, pb__export_credentials, pb__gen_credentials, "json card-key-csv", "json" },
	{ PB_KIND_MIFARE, pb__import_mifare, pb__export_mifare, pb__gen_mifare, "auto mct bin mfd eml json nfc keys", "auto" },
	{ PB_KIND_SIM, pb__import_sim, pb__export_sim, pb__gen_sim, "csv ef", "csv" },
	{ PB_KIND_CHAT, pb__import_chat, pb__export_chat, pb__gen_chat, "auto telegram whatsapp", "auto" },
	{ PB_KIND_CONTACTS, pb__import_contacts, pb__export_contacts, pb__gen_contacts, "auto vcard4 vcard3 vcard21 apple", "auto" },
};

const pb_cli_kind_t *pb_cli_kind(pb_kind_t kind)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].kind == kind)
			return &table[i];
	return NULL;
}

int pb_cli_device_dir(const pb_cli_t *cli, const char *given, char *out, size_t cap)
{
	int n = given != NULL ? snprintf(out, cap, "%s", given) : snprintf(out, cap, "%s/device", cli->home);

	if (n < 0 || (size_t)n >= cap)
		return PB_ETOOBIG;
	return 0;
}
