/* peerback passphrase change: a new recovery passphrase for this phone's
 * master key, on the phone and on every paired host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"
#include "tools/cli/commands.h"

#define MAX_HOSTS 32

static const char usage_text[] =
	"usage: peerback passphrase change [--new-passphrase-file FILE]\n"
	"                                  [--new-passphrase-command CMD]\n\n"
	"Wraps this phone's master key with a new recovery passphrase and gives the\n"
	"new wrap to every paired host, so that a new phone restores with the new\n"
	"passphrase from any of them; the old one opens nothing afterwards. The data\n"
	"keys stay the same: nothing is backed up again.\n\n"
	"The current passphrase comes from --passphrase-file, --passphrase-command,\n"
	"PEERBACK_RECOVERY_PASSPHRASE or a prompt; the new one from the options above,\n"
	"PEERBACK_NEW_RECOVERY_PASSPHRASE, or a prompt that asks twice. Every paired\n"
	"host must answer: when one does not, nothing is changed (the hosts that took\n"
	"the new wrap get the old one back) and the host is named.\n\n"
	"Exit status: 0 changed everywhere; 1 not changed; 12 wrong current passphrase.\n";

/* The new passphrase: from a file, a command, the environment, or typed
 * twice. */
static int new_passphrase(pb_cli_t *cli, const char *file, const char *cmd, char *buf, size_t cap)
{
	char again[1024];
	int rc;

	if (file != NULL || cmd != NULL)
		return pb_cli_secret_from(cli, file, cmd, buf, cap);
	if (getenv("PEERBACK_NEW_RECOVERY_PASSPHRASE") != NULL) {
		if (pb_cli_secret("PEERBACK_NEW_RECOVERY_PASSPHRASE", "", buf, cap) != 0)
			return pb_cli_fail(cli, "PEERBACK_NEW_RECOVERY_PASSPHRASE is too long");
		return 0;
	}
	if (pb_cli_secret(NULL, "new recovery passphrase: ", buf, cap) != 0)
		return pb_cli_fail(cli, "no new passphrase: set PEERBACK_NEW_RECOVERY_PASSPHRASE, pass "
					"--new-passphrase-file, or run on a terminal");
	if (pb_cli_secret(NULL, "repeat the new recovery passphrase: ", again, sizeof(again)) != 0)
		again[0] = 0;
	rc = strcmp(again, buf) != 0;
	sodium_memzero(again, sizeof(again));
	if (rc != 0)
		return pb_cli_fail(cli, "the two new passphrases differ; nothing was changed, run it again");
	return 0;
}

/* Gives the host this phone's wrapped master key (MasterKeyPut). */
static int put_wrapped(pb_cli_t *cli, const pb_remembered_host_t *h, const uint8_t *blob, size_t len)
{
	Peerback__Request req;
	Peerback__BlobPut put;
	pb_envelope_t *in = NULL;
	pb_client_t c;
	char key[64];
	int rc;

	(void)pb__b64url_encode(h->static_pk, 32, key, sizeof(key));
	if ((rc = pb__phone_connect(cli->home, key, 30000, &c, NULL)) != 0)
		return rc;
	peerback__request__init(&req);
	peerback__blob_put__init(&put);
	put.value.data = (uint8_t *)blob;
	put.value.len = len;
	req.op_case = PEERBACK__REQUEST__OP_MASTERKEY_PUT;
	req.masterkey_put = &put;
	req.id = 1;
	rc = pb__phone_call(&c, &req, &in);
	if (rc == 0)
		pb__envelope_free(in);
	pb__client_close(&c);
	return rc;
}

static void label(const pb_remembered_host_t *h, char *out, size_t cap)
{
	char addr[96] = "";

	if (h->naddrs > 0)
		(void)pb__sockaddr_format(&h->addrs[0], addr, sizeof(addr));
	snprintf(out, cap, "%s (%s)", h->name[0] ? h->name : "unnamed host", addr[0] ? addr : "no address");
}

static int change(pb_cli_t *cli, const pb_remembered_host_t *hosts, int n, const uint8_t *old_wrap, size_t old_len,
		  const uint8_t *new_wrap)
{
	bool *got = calloc((size_t)n + 1, sizeof(*got));
	char path[4096], name[256];
	int rc = 0, bad = -1;

	if (got == NULL)
		return pb_cli_fail_err(cli, PB_ENOMEM, "passphrase change");
	for (int i = 0; i < n; i++) {
		label(&hosts[i], name, sizeof(name));
		rc = put_wrapped(cli, &hosts[i], new_wrap, PB_MASTERKEY_WRAPPED_LEN);
		if (rc != 0) {
			bad = i;
			break;
		}
		got[i] = true;
	}
	if (bad >= 0) {
		int status = pb_cli_fail_err(cli, rc, "host %s did not take the new wrapped key", name);

		/* All or nothing: a host left with another wrap than the phone's
		 * would refuse the next backup, and a new phone would need to
		 * know which passphrase each host takes. */
		for (int i = 0; i < bad; i++) {
			label(&hosts[i], name, sizeof(name));
			if (put_wrapped(cli, &hosts[i], old_wrap, old_len) != 0)
				fprintf(stderr, "peerback: host %s keeps the key wrapped with the NEW passphrase; run "
						"peerback passphrase change again once every host answers\n", name);
		}
		fprintf(stderr, "peerback: the recovery passphrase was not changed\n");
		free(got);
		return status;
	}
	free(got);
	if ((rc = pb_cli_path(cli, "master.wrapped", path, sizeof(path))) != 0 ||
	    (rc = pb__write_file_atomic(path, new_wrap, PB_MASTERKEY_WRAPPED_LEN, 0600)) != 0)
		return pb_cli_fail_err(cli, rc, "every host holds the key wrapped with the new passphrase, but the "
						"phone could not write %s/master.wrapped", cli->home);
	for (int i = 0; i < n; i++) {
		label(&hosts[i], name, sizeof(name));
		if (cli->json)
			(void)pb_cli_json("{s:s, s:o}", "event", "passphrase-changed", "host",
					     pb_cli_text(hosts[i].name));
		else
			printf("%s: holds the key wrapped with the new passphrase\n", name);
	}
	if (!cli->json)
		printf("recovery passphrase changed on the phone and %d host%s\n", n, n == 1 ? "" : "s");
	return 0;
}

int pb_cmd_passphrase(pb_cli_t *cli, int argc, char **argv)
{
	const char *new_file = NULL, *new_cmd = NULL;
	char path[4096], cur[1024], next[1024];
	uint8_t *old_wrap = NULL, mk[PB_MASTERKEY_LEN], wrapped[PB_MASTERKEY_WRAPPED_LEN];
	size_t old_len = 0;
	pb_remembered_host_t *hosts = NULL;
	uint8_t *key = NULL;
	size_t klen = 0;
	int rc, n;

	if (pb_cli_wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "change") != 0)
		return pb_cli_usage(cli, "peerback passphrase: expected 'change'; see 'peerback passphrase --help'");
	for (int i = 2; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--new-passphrase-file") == 0)
			new_file = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--new-passphrase-command") == 0)
			new_cmd = argv[++i];
		else
			return pb_cli_usage(cli, "peerback passphrase change: unknown argument '%s'", argv[i]);
	}
	if ((rc = pb_cli_path(cli, "master.key", path, sizeof(path))) != 0 ||
	    (rc = pb__read_file(path, 64, &key, &klen)) != 0 || klen != PB_MASTERKEY_LEN) {
		if (key != NULL)
			sodium_memzero(key, klen);
		free(key);
		return pb_cli_fail(cli, "this phone holds no master key in %s/master.key: its first backup sets the "
					"recovery passphrase (or restore first on a new phone)", cli->home);
	}
	memcpy(mk, key, sizeof(mk));
	sodium_memzero(key, klen);
	free(key);
	if ((rc = pb_cli_path(cli, "master.wrapped", path, sizeof(path))) != 0 ||
	    (rc = pb__read_file(path, PB_STORE_BLOB_MAX, &old_wrap, &old_len)) != 0) {
		sodium_memzero(mk, sizeof(mk));
		return pb_cli_fail_err(cli, rc, "cannot read the wrapped key %s on the phone", path);
	}
	/* The current passphrase must be the right one: changing it is for
	 * the one who knows it. */
	rc = pb_cli_current_passphrase(cli, cur, sizeof(cur));
	if (rc == 0 && cur[0] == 0)
		rc = pb_cli_fail(cli, "the current recovery passphrase is needed: set PEERBACK_RECOVERY_PASSPHRASE, "
				      "pass --passphrase-file, or run on a terminal");
	sodium_memzero(cur, sizeof(cur));
	if (rc == 0)
		rc = new_passphrase(cli, new_file, new_cmd, next, sizeof(next));
	if (rc == 0 && pb_passphrase_check(next) != 0)
		rc = pb_cli_error(cli, PB_ESTORE_WEAKPASS, "%s; nothing was changed", pb_strerror(PB_ESTORE_WEAKPASS));
	if (rc == 0 && (rc = pb_masterkey_wrap(mk, next, pb_cli_wrap_params(), wrapped)) != 0)
		rc = pb_cli_fail_err(cli, rc, "cannot wrap the key with the new passphrase");
	sodium_memzero(next, sizeof(next));
	sodium_memzero(mk, sizeof(mk));
	if (rc == 0 && (hosts = calloc(MAX_HOSTS, sizeof(*hosts))) == NULL)
		rc = pb_cli_fail_err(cli, PB_ENOMEM, "passphrase change");
	if (rc == 0) {
		n = pb__phone_hosts(cli->home, hosts, MAX_HOSTS);
		if (n < 0)
			rc = pb_cli_fail_err(cli, n, "cannot read the paired hosts in %s/hosts.json", cli->home);
		else
			rc = change(cli, hosts, n, old_wrap, old_len, wrapped);
	}
	free(hosts);
	free(old_wrap);
	return rc;
}
