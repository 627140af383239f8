/* The subcommands of peerback, one line each: name, function, summary.
 * Each function is defined in tools/cli/cmd-<name>.c. */
#ifndef PB_CLI_COMMANDS_H
#define PB_CLI_COMMANDS_H

#include "cli.h"

#define PB_CLI_COMMANDS(X)                                                        \
	X("account", pb_cmd_account, "log this device into the IM account service")          \
	X("host", pb_cmd_host, "run the backup host, or manage its paired phones")           \
	X("desktop", pb_cmd_desktop, "run the backup host with a local web app to manage it and browse backups") \
	X("pair", pb_cmd_pair, "pair this phone with a host from its QR code")               \
	X("devices", pb_cmd_devices, "list pairings")                                        \
	X("ping", pb_cmd_ping, "open a session with the paired host and measure it")          \
	X("backup", pb_cmd_backup, "back this phone's data up to the paired host")           \
	X("restore", pb_cmd_restore, "restore everything, one kind, or one item")             \
	X("ls", pb_cmd_ls, "list the snapshots the paired host holds, or one snapshot's items") \
	X("diff", pb_cmd_diff, "list the items that changed between two snapshots")           \
	X("passphrase", pb_cmd_passphrase, "change the recovery passphrase on the phone and every host") \
	X("verify", pb_cmd_verify, "decrypt the latest backup and check every item")          \
	X("agent", pb_cmd_agent, "back up changes automatically on allowed networks")         \
	X("import", pb_cmd_import, "import credentials, MIFARE cards, SIM profiles, chats or contacts") \
	X("export", pb_cmd_export, "export one kind of data in a real interchange format")    \
	X("gen", pb_cmd_gen, "generate a realistic device directory from a seed")             \
	X("nfc", pb_cmd_nfc, "use NFC credentials with the host as fallback; MIFARE sector access") \
	X("qr", pb_cmd_qr, "show a pairing URI as a QR code, or read one from an image")     \
	X("store-verify", pb_cmd_store_verify, "check a host store without keys")             \
	X("version", pb_cmd_version, "print version information")

#define PB__CLI_DECL(name, fn, summary) int fn(pb_cli_t *cli, int argc, char **argv);
PB_CLI_COMMANDS(PB__CLI_DECL)
#undef PB__CLI_DECL

#endif
