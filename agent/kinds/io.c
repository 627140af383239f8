/* Each kind's importer, exporter and generator behind one public entry. */
#include <stdio.h>

#include "peerback.h"
#include "agent/kinds/internal.h"

typedef struct kind_io_s {
	pb_kind_t kind;
	int (*import)(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap);
	int (*export)(const char *device_dir, const char *format, const char *out_dir, char *errbuf, size_t errcap);
	int (*gen)(const char *device_dir, uint64_t seed, pb_gen_size_t size);
	const char *formats; /* export formats, first the default */
	const char *default_format;
} kind_io_t;

static const kind_io_t table[] = {
	{ PB_KIND_CREDENTIAL, pb__import_credentials, pb__export_credentials, pb__gen_credentials, "json card-key-csv", "json" },
	{ PB_KIND_MIFARE, pb__import_mifare, pb__export_mifare, pb__gen_mifare, "auto mct bin mfd eml json nfc keys", "auto" },
	{ PB_KIND_SIM, pb__import_sim, pb__export_sim, pb__gen_sim, "csv ef", "csv" },
	{ PB_KIND_CHAT, pb__import_chat, pb__export_chat, pb__gen_chat, "auto telegram whatsapp", "auto" },
	{ PB_KIND_CONTACTS, pb__import_contacts, pb__export_contacts, pb__gen_contacts, "auto vcard4 vcard3 vcard21 apple", "auto" },
};

static const kind_io_t *find(pb_kind_t kind)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].kind == kind)
			return &table[i];
	return NULL;
}

int pb_kind_import(pb_kind_t kind, const char *device_dir, const char *const *files, size_t n,
		   const char *date_format, char *errbuf, size_t errcap)
{
	const kind_io_t *k = find(kind);

	if (k == NULL || device_dir == NULL || (files == NULL && n > 0))
		return k == NULL ? PB_EDATA_KIND : PB_EINVAL;
	if (date_format != NULL && kind == PB_KIND_CHAT)
		return pb__import_chat_dated(device_dir, files, n, date_format, errbuf, errcap);
	return k->import(device_dir, files, n, errbuf, errcap);
}

int pb_kind_export(pb_kind_t kind, const char *device_dir, const char *format, const char *out_dir, char *errbuf,
		   size_t errcap)
{
	const kind_io_t *k = find(kind);

	if (k == NULL || device_dir == NULL || out_dir == NULL)
		return k == NULL ? PB_EDATA_KIND : PB_EINVAL;
	return k->export(device_dir, format != NULL ? format : k->default_format, out_dir, errbuf, errcap);
}

const char *pb_kind_formats(pb_kind_t kind)
{
	const kind_io_t *k = find(kind);

	return k != NULL ? k->formats : NULL;
}

int pb_kind_gen(pb_kind_t kind, const char *device_dir, uint64_t seed, pb_gen_size_t size)
{
	const kind_io_t *k = find(kind);

	if (k == NULL || device_dir == NULL)
		return k == NULL ? PB_EDATA_KIND : PB_EINVAL;
	return k->gen(device_dir, seed, size);
}
