/* Helpers shared by the peerback subcommands. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <stdlib.h>

#include <sodium.h>

#include "tools/cli/cli.h"

int pb_cli_fail(const pb_cli_t *cli, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int pb_cli_fail_err(const pb_cli_t *cli, int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", pb_strerror(err));
	return 1;
}

int pb_cli_path(const pb_cli_t *cli, const char *rel, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", cli->home, rel);

	if (n < 0 || (size_t)n >= cap)
		return PB_ETOOBIG;
	return 0;
}

int pb_cli_secret(const char *env_name, const char *prompt, char *buf, size_t cap)
{
	const char *v = env_name != NULL ? getenv(env_name) : NULL;
	struct termios old, quiet;
	FILE *tty;
	size_t n;

	if (v != NULL) {
		n = strlen(v);
		if (n >= cap)
			return PB_ETOOBIG;
		memcpy(buf, v, n + 1);
		return 0;
	}
	tty = fopen("/dev/tty", "r+");
	if (tty == NULL)
		return PB_ENOKEY;
	fputs(prompt, tty);
	fflush(tty);
	if (tcgetattr(fileno(tty), &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	}
	if (fgets(buf, (int)cap, tty) == NULL)
		buf[0] = 0;
	tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fputc('\n', tty);
	fclose(tty);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	return n > 0 ? 0 : PB_ENOKEY;
}

int pb_cli_recovery_passphrase(const pb_cli_t *cli, char *buf, size_t cap)
{
	const char *env = "PEERBACK_RECOVERY_PASSPHRASE";
	char path[4096], again[1024];
	bool typed = getenv(env) == NULL;
	int rc;

	buf[0] = 0;
	if (pb_cli_secret(env, "recovery passphrase: ", buf, cap) != 0) {
		buf[0] = 0;
		return 0;
	}
	/* With a master key here, the passphrase at most opens a wrap. */
	if (!typed || pb_cli_path(cli, "master.key", path, sizeof(path)) != 0 || access(path, F_OK) == 0)
		return 0;
	/* A typo in a passphrase set now would lock the user out of every
	 * backup on a new phone: have it typed twice. Its strength is checked
	 * by the backup, which alone knows whether it sets the passphrase or
	 * opens the host's copy of the key (made under an older rule). */
	if (pb_cli_secret(NULL, "repeat the recovery passphrase: ", again, sizeof(again)) != 0)
		again[0] = 0;
	rc = strcmp(again, buf) != 0;
	sodium_memzero(again, sizeof(again));
	if (rc != 0) {
		sodium_memzero(buf, cap);
		return pb_cli_fail(cli, "the two recovery passphrases differ; nothing was set, run it again");
	}
	return 0;
}

const pb_pwhash_params_t *pb_cli_wrap_params(void)
{
	static pb_pwhash_params_t weak;
	const char *v = getenv("PEERBACK_TEST_WEAK_KDF");

	if (v == NULL || strcmp(v, "1") != 0)
		return NULL;
	weak = pb_pwhash_params_interactive();
	return &weak;
}

bool pb_cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}
