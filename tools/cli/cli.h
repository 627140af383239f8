/* The peerback command line: shared state and helpers for the subcommands.
 * Each subcommand lives in tools/cli/cmd-<name>.c and is listed in main.c. */
#ifndef PB_CLI_H
#define PB_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "peerback.h"
#include "peerback/store.h"

typedef struct pb_cli_s {
	const char *prog;     /* "peerback" */
	char home[4096];      /* state directory (XDG data dir or --home) */
	bool json;            /* --json, anywhere on the command line */
	bool quiet;           /* --quiet: no progress, no notes, only results and errors */
	bool tty;             /* stderr is a terminal: progress bars allowed */
	const char *pass_file;    /* --passphrase-file FILE */
	const char *pass_command; /* --passphrase-command CMD */
	const char *pass_source;  /* where the recovery passphrase came from, for messages */
	const char *from;         /* --from DEVICE as given, for messages */
	const char *host;         /* --host NAME as given, for messages */
	bool host_named;          /* the message being printed names the host already */
} pb_cli_t;

/* Exit statuses, the same for every command (README, peerback --help). */
#define PB_EXIT_FAIL 1        /* failed */
#define PB_EXIT_USAGE 2       /* usage error: unknown command, option or value */
#define PB_EXIT_PARTIAL 3     /* backup done but partial: files skipped, or a host missed it */
#define PB_EXIT_NOBACKUP 10   /* no backup found (no snapshot, no such item) */
#define PB_EXIT_BUSY 11       /* locked or busy: another process holds the store */
#define PB_EXIT_PASSPHRASE 12 /* wrong recovery passphrase */

/* A subcommand: argv[0] is the subcommand's name. Returns the exit status. */
typedef int (*pb_cli_cmd_fn)(pb_cli_t *cli, int argc, char **argv);

typedef struct pb_cli_cmd_s {
	const char *name;
	pb_cli_cmd_fn fn;
	const char *summary;
} pb_cli_cmd_t;

/* Prints "peerback: <message>" to stderr; returns 1 for use as an exit code.
 * With --json the same message also goes to stdout as an error object
 * {"event":"error","code":"PB_EFAIL","message":...}; so for all below. */
int pb_cli_fail(const pb_cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "peerback: <what>: <pb_strerror(err)>" and returns 1. */
int pb_cli_fail_err(const pb_cli_t *cli, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prints "peerback: <message>" with err's name as the JSON code, and returns
 * the exit status err calls for (pb_cli_exit_status). */
int pb_cli_error(const pb_cli_t *cli, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prints the message as it is (code PB_EUSAGE) and returns PB_EXIT_USAGE. */
int pb_cli_usage(const pb_cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The exit status for a failure with err: PB_EXIT_NOBACKUP,
 * PB_EXIT_BUSY, PB_EXIT_PASSPHRASE or PB_EXIT_FAIL. */
int pb_cli_exit_status(int err);

/* A note for the user on stderr, unless --quiet. */
void pb_cli_note(const pb_cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Why a failure at path on this device is the phone's own: its file system
 * is read-only or full. Fills why and returns true then. */
bool pb_cli_local_fault(const char *path, char *why, size_t cap);
/* Keeps buffers below mmap_min bytes in the heap, and up to trim_min
 * bytes of free heap, for commands that churn large buffers (glibc only). */
void pb_cli_keep_heap(size_t mmap_min, size_t trim_min);

/* Builds "home/rel" into out; returns 0 or PB_ETOOBIG. */
int pb_cli_path(const pb_cli_t *cli, const char *rel, char *out, size_t cap);

/* Reads a secret: from the environment variable env_name when set, else from
 * a prompt on the terminal with echo off. Returns 0, or PB_ENOKEY when neither
 * is available. The caller wipes buf with sodium_memzero. */
int pb_cli_secret(const char *env_name, const char *prompt, char *buf, size_t cap);

/* The recovery passphrase: from --passphrase-file, --passphrase-command or
 * PEERBACK_RECOVERY_PASSPHRASE, else from the terminal, which is asked only
 * when this phone has no master key (the key on the phone needs none).
 * Given while the key is here, it is checked against the phone's wrapped
 * key: a wrong one is an error (PB_EXIT_PASSPHRASE), never ignored. When
 * setting (a backup, which may set it) and typed on the terminal, it is
 * asked twice. buf is left empty when there is none. Returns 0, or an exit
 * status after telling the user why. The caller wipes buf. */
int pb_cli_recovery_passphrase(pb_cli_t *cli, bool setting, char *buf, size_t cap);

/* The current recovery passphrase, always asked for (a prompt when no
 * option or variable gives it) and checked against the phone's wrapped
 * key like pb_cli_recovery_passphrase. */
int pb_cli_current_passphrase(pb_cli_t *cli, char *buf, size_t cap);

/* Reads a secret from FILE (first line) or from the first line CMD prints
 * (run by /bin/sh). Returns 0, or an exit status after telling the user. */
int pb_cli_secret_from(const pb_cli_t *cli, const char *file, const char *cmd, char *buf, size_t cap);

/* Argon2id limits for a new wrapped master key: NULL (MODERATE), or the
 * INTERACTIVE ones when the environment has PEERBACK_TEST_WEAK_KDF=1. That
 * switch is for tests only: such a wrap is much cheaper to guess. */
const pb_pwhash_params_t *pb_cli_wrap_params(void);

/* Formats a byte count for people: "12.3 MB". */
void pb_cli_human(double bytes, char *out, size_t cap);

/* Reports a backup, restore or listing failure (tools/cli/cmd-backup.c); returns the exit status. */
int pb_cli_engine_error(pb_cli_t *cli, int rc, const char *what);
/* Resolves a snapshot as given ("latest", or a unique prefix of an id as
 * peerback ls prints it) into *out; returns 0 or an exit status after
 * telling the user. (tools/cli/cmd-ls.c) */
int pb_cli_snapshot(pb_cli_t *cli, pb_phone_t *phone, const pb_op_opts_t *o, const char *text, uint64_t *out);
/* The one item id of the backup that want names: the id itself, or its
 * last part with or without extension. 0, or PB_ENOTFOUND / PB_EEXISTS. */
int pb_cli_item_id(pb_cli_t *cli, pb_phone_t *phone, const pb_op_opts_t *o, const char *want, char *out,
		    size_t cap);

/* --json output: one object a line on stdout, built as json_pack(fmt, ...)
 * builds it, pure ASCII, flushed (tools/cli/json.c). Text that does not
 * come from the program itself goes in with "o" and pb_cli_text. Returns 0
 * or PB_ENOMEM (nothing printed). */
int pb_cli_json(const char *fmt, ...);
/* A JSON string of s, bytes that are not UTF-8 shown as U+FFFD; NULL s
 * gives null. A new reference. */
json_t *pb_cli_text(const char *s);
/* v rounded to 3 decimals (milliseconds and seconds as reals). */
double pb_cli_milli(double v);

/* The phone handle of the state directory; the caller closes it. */
int pb_cli_phone(const pb_cli_t *cli, const char *device_dir, pb_phone_t **out);
/* The phone's paired hosts (pb_phone_hosts); *out is malloc'd. */
int pb_cli_hosts(const pb_cli_t *cli, pb_host_info_t **out, size_t *n);

/* Tells of an instruction from the host carried out on this phone (arg: the
 * pb_cli_t): on stderr, or as an "instruction" JSON line. */
void pb_cli_instruction(void *arg, const char *op, int rc, const char *message);

/* Upper-case hex of bin into out (2 * len + 1 bytes). */
void pb_cli_hex_upper(const uint8_t *bin, size_t len, char *out);

/* Writes a file the user named (0600 by the umask) atomically: 0 or
 * -errno, nothing left behind on failure. */
int pb_cli_write_file(const char *path, const void *data, size_t len);

/* True when argv holds -h or --help. */
bool pb_cli_wants_help(int argc, char **argv);

#endif
