/* What the import, export and gen subcommands share: the kind table with
 * each kind's functions (NULL when the kind is not in this build) and the
 * default device directory. */
#ifndef PB_CLI_KINDS_H
#define PB_CLI_KINDS_H

#include "tools/cli/cli.h"
#include "agent/kinds/internal.h"

typedef struct pb_cli_kind_s {
	pb_kind_t kind;
	int (*import)(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap);
	int (*export)(const char *device_dir, const char *format, const char *out_dir, char *errbuf, size_t errcap);
	int (*gen)(const char *device_dir, uint64_t seed, pb_gen_size_t size);
	const char *formats;        /* export formats, first the default */
	const char *default_format;
} pb_cli_kind_t;

/* The entry of a kind; never NULL for a valid kind. */
const pb_cli_kind_t *pb_cli_kind(pb_kind_t kind);

/* Builds the device directory: the --device value when given, else
 * HOME/device. Returns 0 or PB_ETOOBIG. */
int pb_cli_device_dir(const pb_cli_t *cli, const char *given, char *out, size_t cap);

#endif
