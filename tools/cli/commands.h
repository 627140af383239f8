/* The subcommands of peerback, one line each: name, function, summary.
 * Each function is defined in tools/cli/cmd-<name>.c. */
#ifndef PB_CLI_COMMANDS_H
#define PB_CLI_COMMANDS_H

#include "tools/cli/cli.h"

#define PB_CLI_COMMANDS(X)                                                        \
	X("version", pb_cmd_version, "print version information")                    \
	X("import", pb_cmd_import, "import credentials, MIFARE cards, SIM profiles, chats or contacts") \
	X("export", pb_cmd_export, "export one kind of data in a real interchange format") \
	X("gen", pb_cmd_gen, "generate a realistic device directory from a seed")

#define PB__CLI_DECL(name, fn, summary) int fn(pb_cli_t *cli, int argc, char **argv);
PB_CLI_COMMANDS(PB__CLI_DECL)
#undef PB__CLI_DECL

#endif
