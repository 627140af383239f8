/* What the import, export, gen and nfc subcommands share: the default
 * device directory. Each kind's importer, exporter and generator are
 * peerback/kinds.h's pb_kind_import, pb_kind_export and pb_kind_gen. */
#ifndef PB_CLI_KINDS_H
#define PB_CLI_KINDS_H

#include "cli.h"

/* Builds the device directory: the --device value when given, else
 * HOME/device. Returns 0 or PB_ETOOBIG. */
int pb_cli_device_dir(const pb_cli_t *cli, const char *given, char *out, size_t cap);

#endif
