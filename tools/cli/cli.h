/* The peerback command line: shared state and helpers for the subcommands.
 * Each subcommand lives in tools/cli/cmd-<name>.c and is listed in main.c. */
#ifndef PB_CLI_H
#define PB_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "peerback.h"
#include "peerback/store.h"

typedef struct pb_cli_s {
	const char *prog;     /* "peerback" */
	char home[4096];      /* state directory (XDG data dir or --home) */
	bool json;            /* --json given before the subcommand */
	bool tty;             /* stderr is a terminal: progress bars allowed */
} pb_cli_t;

/* A subcommand: argv[0] is the subcommand's name. Returns the exit status. */
typedef int (*pb_cli_cmd_fn)(pb_cli_t *cli, int argc, char **argv);

typedef struct pb_cli_cmd_s {
	const char *name;
	pb_cli_cmd_fn fn;
	const char *summary;
} pb_cli_cmd_t;

/* Prints "peerback: <message>" to stderr; returns 1 for use as an exit code. */
int pb_cli_fail(const pb_cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "peerback: <what>: <pb_strerror(err)>" and returns 1. */
int pb_cli_fail_err(const pb_cli_t *cli, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Builds "home/rel" into out; returns 0 or PB_ETOOBIG. */
int pb_cli_path(const pb_cli_t *cli, const char *rel, char *out, size_t cap);

/* Reads a secret: from the environment variable env_name when set, else from
 * a prompt on the terminal with echo off. Returns 0, or PB_ENOKEY when neither
 * is available. The caller wipes buf with sodium_memzero. */
int pb_cli_secret(const char *env_name, const char *prompt, char *buf, size_t cap);

/* The recovery passphrase for a backup: from PEERBACK_RECOVERY_PASSPHRASE,
 * else from the terminal. When this phone has no master key yet the
 * passphrase may become the recovery passphrase: typed on the terminal, it
 * is asked twice. buf is left
 * empty when there is none. Returns 0, or an exit status after telling the
 * user why. The caller wipes buf with sodium_memzero. */
int pb_cli_recovery_passphrase(const pb_cli_t *cli, char *buf, size_t cap);

/* Argon2id limits for a new wrapped master key: NULL (MODERATE), or the
 * INTERACTIVE ones when the environment has PEERBACK_TEST_WEAK_KDF=1. That
 * switch is for tests only: such a wrap is much cheaper to guess. */
const pb_pwhash_params_t *pb_cli_wrap_params(void);

/* True when argv holds -h or --help. */
bool pb_cli_wants_help(int argc, char **argv);

#endif
