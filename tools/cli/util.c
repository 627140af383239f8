/* Helpers shared by the peerback subcommands. */
#include <ctype.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <stdlib.h>

#include <sys/statvfs.h>
#include <sys/wait.h>

#include <sodium.h>

#include "cli.h"

/* The message on stderr as text; with --json also on stdout as an error
 * object, through the one JSON writer. */
static void report(const pb_cli_t *cli, const char *code, bool prefix, const char *msg)
{
	char sys[64];

	/* Every code starts PB_E: a system error's name follows without its
	 * own E (ENOENT: PB_ENOENT). */
	if (strncmp(code, "PB_E", 4) != 0 && code[0] == 'E') {
		snprintf(sys, sizeof(sys), "PB_E%s", code + 1);
		code = sys;
	}
	if (cli->json)
		(void)pb_cli_json("{s:s, s:s, s:o}", "event", "error", "code", code, "message", pb_cli_text(msg));
	fprintf(stderr, "%s%s%s\n", prefix ? cli->prog : "", prefix ? ": " : "", msg);
}

__attribute__((format(printf, 5, 0))) static void vreport(const pb_cli_t *cli, const char *code, bool prefix, int err,
							    const char *fmt, va_list ap)
{
	char msg[8192];
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);

	if (n >= 0 && err != 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", pb_strerror(err));
	report(cli, code, prefix, msg);
}

int pb_cli_fail(const pb_cli_t *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cli, "PB_EFAIL", true, 0, fmt, ap);
	va_end(ap);
	return PB_EXIT_FAIL;
}

int pb_cli_fail_err(const pb_cli_t *cli, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cli, pb_err_name(err), true, err, fmt, ap);
	va_end(ap);
	return pb_cli_exit_status(err);
}

int pb_cli_error(const pb_cli_t *cli, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cli, pb_err_name(err), true, 0, fmt, ap);
	va_end(ap);
	return pb_cli_exit_status(err);
}

int pb_cli_usage(const pb_cli_t *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cli, "PB_EUSAGE", false, 0, fmt, ap);
	va_end(ap);
	return PB_EXIT_USAGE;
}

int pb_cli_exit_status(int err)
{
	switch (err) {
	case PB_ESTORE_NOSNAP:
		return PB_EXIT_NOBACKUP;
	case PB_ESTORE_LOCKED:
	case PB_EBUSY:
		return PB_EXIT_BUSY;
	case PB_ESTORE_PASSPHRASE:
		return PB_EXIT_PASSPHRASE;
	default:
		return PB_EXIT_FAIL;
	}
}

void pb_cli_note(const pb_cli_t *cli, const char *fmt, ...)
{
	va_list ap;

	if (cli->quiet)
		return;
	fprintf(stderr, "%s: ", cli->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Less than this free on the phone's file system counts as full: SQLite
 * and atomic writes need room for a journal and a temporary copy. */
#define LOCAL_FULL_BYTES (256u * 1024)

bool pb_cli_local_fault(const char *path, char *why, size_t cap)
{
	struct statvfs vfs;

	if (path == NULL || statvfs(path, &vfs) != 0)
		return false;
	if (vfs.f_flag & ST_RDONLY) {
		snprintf(why, cap, "%s is on a read-only file system on the phone", path);
		return true;
	}
	if ((unsigned long long)vfs.f_bavail * vfs.f_frsize < LOCAL_FULL_BYTES) {
		snprintf(why, cap, "the phone's disk holding %s is full (free space there and run it again)", path);
		return true;
	}
	if (access(path, W_OK) != 0) {
		snprintf(why, cap, "%s on the phone is not writable: %s", path, strerror(errno));
		return true;
	}
	return false;
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

static int first_line(FILE *f, char *buf, size_t cap)
{
	size_t n;

	if (fgets(buf, (int)cap, f) == NULL)
		buf[0] = 0;
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	return n > 0 ? 0 : PB_ENOKEY;
}

int pb_cli_secret_from(const pb_cli_t *cli, const char *file, const char *cmd, char *buf, size_t cap)
{
	FILE *f;
	int rc, status;

	buf[0] = 0;
	if (file != NULL) {
		if ((f = fopen(file, "r")) == NULL)
			return pb_cli_fail_err(cli, -errno, "cannot read the passphrase file %s", file);
		rc = first_line(f, buf, cap);
		fclose(f);
		if (rc != 0)
			return pb_cli_fail(cli, "the passphrase file %s is empty", file);
		return 0;
	}
	fflush(stdout);
	if ((f = popen(cmd, "r")) == NULL)
		return pb_cli_fail_err(cli, -errno, "cannot run the passphrase command '%s'", cmd);
	rc = first_line(f, buf, cap);
	/* The rest of its output, so that the command is not killed by a
	 * closed pipe. */
	while (fgetc(f) != EOF)
		;
	status = pclose(f);
	if (status != 0) {
		sodium_memzero(buf, cap);
		return pb_cli_fail(cli, "the passphrase command '%s' failed (exit %d); nothing was done", cmd,
				   WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
	if (rc != 0)
		return pb_cli_fail(cli, "the passphrase command '%s' printed nothing", cmd);
	return 0;
}

/* 0 when pass opens the phone's wrapped master key and gives the key the
 * phone holds; PB_ESTORE_PASSPHRASE when not; PB_ENOTFOUND when the phone
 * keeps no wrapped copy to check against. */
static int check_local(const pb_cli_t *cli, const char *pass)
{
	pb_phone_t *phone;
	int rc = pb_cli_phone(cli, NULL, &phone);

	if (rc == 0) {
		rc = pb_phone_check_passphrase(phone, pass);
		pb_phone_close(phone);
	}
	return rc;
}

int pb_cli_phone(const pb_cli_t *cli, const char *device_dir, pb_phone_t **out)
{
	int rc = pb_phone_open(cli->home, out);

	if (rc == 0 && device_dir != NULL && (rc = pb_phone_set_device_dir(*out, device_dir)) != 0) {
		pb_phone_close(*out);
		*out = NULL;
	}
	return rc;
}

int pb_cli_hosts(const pb_cli_t *cli, pb_host_info_t **out, size_t *n)
{
	pb_phone_t *phone;
	int rc = pb_cli_phone(cli, NULL, &phone);

	*out = NULL;
	*n = 0;
	if (rc != 0)
		return rc;
	rc = pb_phone_hosts(phone, out, n);
	pb_phone_close(phone);
	return rc;
}

static int recovery_passphrase(pb_cli_t *cli, bool setting, bool always, char *buf, size_t cap);

/* A typo in a passphrase set now would lock the user out of every backup
 * on a new phone: have it typed twice. Its strength is checked by the
 * backup, which alone knows whether it sets the passphrase or opens the
 * host's copy of the key. */
static int confirm(const pb_cli_t *cli, char *buf, size_t cap)
{
	char again[1024];
	int rc;

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

int pb_cli_recovery_passphrase(pb_cli_t *cli, bool setting, char *buf, size_t cap)
{
	return recovery_passphrase(cli, setting, false, buf, cap);
}

int pb_cli_current_passphrase(pb_cli_t *cli, char *buf, size_t cap)
{
	return recovery_passphrase(cli, false, true, buf, cap);
}

static int recovery_passphrase(pb_cli_t *cli, bool setting, bool always, char *buf, size_t cap)
{
	const char *env = "PEERBACK_RECOVERY_PASSPHRASE";
	char path[4096];
	bool have_key;
	int rc;

	buf[0] = 0;
	have_key = pb_cli_path(cli, "master.key", path, sizeof(path)) == 0 && access(path, F_OK) == 0;
	if (cli->pass_file != NULL || cli->pass_command != NULL) {
		if ((rc = pb_cli_secret_from(cli, cli->pass_file, cli->pass_command, buf, cap)) != 0)
			return rc;
		cli->pass_source = cli->pass_file != NULL ? cli->pass_file : "--passphrase-command";
	} else if (getenv(env) != NULL) {
		if (pb_cli_secret(env, "", buf, cap) != 0)
			return pb_cli_fail(cli, "%s is too long", env);
		cli->pass_source = env;
	} else if (have_key && !always) {
		return 0; /* the key on the phone needs no passphrase: none is asked for */
	} else {
		if (pb_cli_secret(NULL, "recovery passphrase: ", buf, cap) != 0) {
			buf[0] = 0;
			return 0;
		}
		cli->pass_source = "the terminal";
		if (!have_key)
			return setting ? confirm(cli, buf, cap) : 0;
	}
	if (buf[0] == 0 || !have_key)
		return 0;
	/* Given while the key is here: it must be the right one, or the user
	 * believes in a passphrase that would not restore anything. */
	rc = check_local(cli, buf);
	if (rc == PB_ESTORE_PASSPHRASE) {
		sodium_memzero(buf, cap);
		return pb_cli_error(cli, rc, "wrong recovery passphrase (from %s): it does not open this phone's key; "
					     "nothing was done", cli->pass_source);
	}
	if (rc != 0 && rc != PB_ENOTFOUND) {
		sodium_memzero(buf, cap);
		return pb_cli_fail_err(cli, rc, "cannot check the recovery passphrase against %s/master.wrapped",
				       cli->home);
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

void pb_cli_instruction(void *arg, const char *op, int rc, const char *message)
{
	pb_cli_t *cli = arg;

	if (cli->json)
		(void)pb_cli_json("{s:s, s:o, s:b, s:o}", "event", "instruction", "op", pb_cli_text(op), "ok", rc == 0,
				  "message", pb_cli_text(message));
	else
		fprintf(stderr, "peerback: instruction from the host: %s: %s%s\n", op, rc == 0 ? "" : "refused: ",
			message);
	fflush(stdout);
}

void pb_cli_hex_upper(const uint8_t *bin, size_t len, char *out)
{
	sodium_bin2hex(out, 2 * len + 1, bin, len);
	for (size_t i = 0; i < 2 * len; i++)
		out[i] = (char)toupper((unsigned char)out[i]);
}

/* A temporary file beside path, synced, then renamed over it: a reader
 * sees the old file or the new one, never a part. */
int pb_cli_write_file(const char *path, const void *data, size_t len)
{
	char tmp[4200];
	FILE *f;
	int rc = 0, n = snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid());

	if (n < 0 || (size_t)n >= sizeof(tmp))
		return PB_ETOOBIG;
	if ((f = fopen(tmp, "wb")) == NULL)
		return -errno;
	if (fwrite(data, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = -errno;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

bool pb_cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

void pb_cli_human(double bytes, char *out, size_t cap)
{
	const char *unit[] = { "B", "KB", "MB", "GB", "TB" };
	int u = 0;

	while (bytes >= 1000 && u < 4) {
		bytes /= 1000;
		u++;
	}
	snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
}

void pb_cli_keep_heap(size_t mmap_min, size_t trim_min)
{
#ifdef __GLIBC__
	/* A backup's chunks (up to 4 MiB, and their sealed and sent forms)
	 * are allocated and freed all the time: glibc maps each afresh (or
	 * trims the heap under it) and every page is faulted in again. Kept
	 * in the heap, freed buffers are reused (docs/BENCH.md). */
	(void)mallopt(M_MMAP_THRESHOLD, (int)mmap_min);
	(void)mallopt(M_TRIM_THRESHOLD, (int)trim_min);
#else
	(void)mmap_min;
	(void)trim_min;
#endif
}
