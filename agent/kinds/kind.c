/* Kind names and the device folders of the kinds. */
#include <string.h>

#include "agent/kinds/util.h"

static const struct {
	pb_kind_t kind;
	const char *name;   /* the CLI's KIND word */
	const char *alias;  /* also accepted by pb_kind_parse */
	const char *folder; /* top-level folder in the device directory */
} kinds[] = {
	{ PB_KIND_CREDENTIAL, "credentials", "credential", "credentials" },
	{ PB_KIND_MIFARE, "mifare", "m1", "mifare" },
	{ PB_KIND_SIM, "sim", "sims", "sim" },
	{ PB_KIND_CHAT, "chat", "chats", "chats" },
	{ PB_KIND_CONTACTS, "contacts", "contact", "contacts" },
};

#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

const char *pb_kind_name(pb_kind_t kind)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (kinds[i].kind == kind)
			return kinds[i].name;
	return "unknown";
}

int pb_kind_parse(const char *word, pb_kind_t *out)
{
	if (word == NULL)
		return PB_EDATA_KIND;
	for (size_t i = 0; i < NKINDS; i++) {
		if (strcmp(word, kinds[i].name) == 0 || strcmp(word, kinds[i].alias) == 0) {
			*out = kinds[i].kind;
			return 0;
		}
	}
	return PB_EDATA_KIND;
}

const char *pb__device_folder(pb_kind_t kind)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (kinds[i].kind == kind)
			return kinds[i].folder;
	return NULL;
}

pb_kind_t pb__device_kind_of(const char *relpath)
{
	const char *slash = strchr(relpath, '/');
	size_t n = slash != NULL ? (size_t)(slash - relpath) : strlen(relpath);

	for (size_t i = 0; i < NKINDS; i++)
		if (strlen(kinds[i].folder) == n && memcmp(kinds[i].folder, relpath, n) == 0)
			return kinds[i].kind;
	return (pb_kind_t)0;
}
