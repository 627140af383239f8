/* peerback pair: pair this phone with a host from its QR code. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"
#include "tools/cli/commands.h"

static const char usage_text[] =
	"usage: peerback pair URI\n"
	"       peerback pair --qr-image FILE\n"
	"\n"
	"Pairs this phone with the backup host whose QR code shows URI (or the QR\n"
	"code in FILE: PNG, PGM or PPM). Both devices must be logged into the same\n"
	"account. A QR code works once and expires; ask the host for a new one\n"
	"(it shows one after each pairing).\n"
	"\n"
	"  --timeout MS   how long to wait for the host (default 10000)\n";

/* True when something accepts a TCP connection at ss within 2 s. */
static bool answers(const struct sockaddr_storage *ss)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err = 0;
	socklen_t len = sizeof(err);
	struct pollfd p;
	bool ok = false;

	if (fd < 0)
		return false;
	if (connect(fd, (const struct sockaddr *)ss, ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
										: sizeof(struct sockaddr_in)) == 0)
		ok = true;
	else if (errno == EINPROGRESS) {
		p.fd = fd;
		p.events = POLLOUT;
		ok = poll(&p, 1, 2000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
	}
	close(fd);
	return ok;
}

/* A pairing that could not connect: pairing asks the account service for a
 * ticket first, then connects to the host; say which did not answer. */
static int connect_error(pb_cli_t *cli, int rc, const char *uri)
{
	pb_account_t acct;
	pb_pair_uri_t u;
	struct sockaddr_storage ss;
	char addrs[512] = "";

	if (pb__account_load(cli->home, &acct) == 0 && pb__sockaddr_parse(acct.imd_addr, &ss) == 0 && !answers(&ss))
		return pb_cli_error(cli, rc, "pairing failed: the account service at %s did not answer (pairing asks "
					     "it for a ticket first): %s",
				    acct.imd_addr, pb_strerror(rc));
	if (pb_uri_parse(uri, strlen(uri), 0, &u) == 0)
		for (size_t i = 0; i < u.naddrs; i++) {
			char a[96];
			size_t n = strlen(addrs);

			if (pb__sockaddr_format(&u.addrs[i], a, sizeof(a)) == 0)
				snprintf(addrs + n, sizeof(addrs) - n, "%s%s", n ? ", " : "", a);
		}
	sodium_memzero(&u, sizeof(u));
	return pb_cli_error(cli, rc, "pairing failed: the host at %s (from the QR code) did not answer or refused "
				     "the connection: %s (is peerback host running, and reachable from here?)",
			    addrs[0] ? addrs : "the QR code's addresses", pb_strerror(rc));
}

int pb_cmd_pair(pb_cli_t *cli, int argc, char **argv)
{
	const char *uri = NULL, *image = NULL;
	char decoded[PB_URI_MAX_LEN + 1], key[64];
	pb_remembered_host_t h;
	int timeout = 10000, rc;

	if (pb_cli_wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--qr-image") == 0) {
			image = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--timeout") == 0) {
			timeout = atoi(argv[++i]);
			if (timeout <= 0)
				return pb_cli_fail(cli, "--timeout takes milliseconds");
		} else if (argv[i][0] != '-' && uri == NULL) {
			uri = argv[i];
		} else {
			fprintf(stderr, "peerback pair: unknown argument '%s'\n%s", argv[i], usage_text);
			return 2;
		}
	}
	if ((uri == NULL) == (image == NULL)) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (image != NULL) {
		rc = pb_qr_decode_file(image, decoded, sizeof(decoded));
		if (rc < 0)
			return pb_cli_fail_err(cli, rc, "%s", image);
		uri = decoded;
	}
	rc = pb__phone_pair(cli->home, uri, timeout, NULL, &h);
	if (rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH || rc == -ENETUNREACH ||
	    rc == PB_ETIMEOUT || rc == PB_EPEER_CLOSED) {
		rc = connect_error(cli, rc, uri);
		sodium_memzero(decoded, sizeof(decoded));
		return rc;
	}
	sodium_memzero(decoded, sizeof(decoded));
	if (rc == PB_EURI_EXPIRED || rc == PB_EACCT_SECRET_EXPIRED)
		return pb_cli_fail(cli, "this QR code has expired; ask the host for a new one (peerback host)");
	if (rc == PB_EACCT_SECRET_USED)
		return pb_cli_fail(cli, "this QR code was already used; ask the host for a new one");
	if (rc == PB_EACCT_WRONG)
		return pb_cli_fail(cli, "the host is logged into a different account than this phone; log both "
					"into the same account (peerback account login)");
	if (rc == PB_EACCT_NOT_LOGGED_IN)
		return pb_cli_fail(cli, "this phone is not logged in; run peerback account login first");
	if (rc == PB_ENOISE_HANDSHAKE)
		return pb_cli_fail(cli, "the host refused the secure handshake: the QR code is not the host's "
					"current one, or someone else answered at that address");
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "pairing failed");
	(void)pb__b64url_encode(h.static_pk, 32, key, sizeof(key));
	if (cli->json)
		(void)pb_cli_json("{s:s, s:s, s:o, s:o}", "event", "paired", "host", key, "name",
				     pb_cli_text(h.name), "account", pb_cli_text(h.account));
	else
		printf("paired with %s (%s)\n", h.name[0] ? h.name : "host", key);
	return 0;
}
