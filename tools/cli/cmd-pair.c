/* peerback pair: pair this phone with a host from its QR code. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "commands.h"

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

/* text, ADDR:PORT as the phone stores it, as a socket address. */
static int numeric_addr(const char *text, struct sockaddr_storage *ss)
{
	struct addrinfo hints, *res = NULL;
	char host[128];
	const char *colon = strrchr(text, ':');
	size_t n;

	if (colon == NULL)
		return PB_EURI_ADDR;
	n = (size_t)(colon - text);
	if (text[0] == '[' && n >= 2 && text[n - 1] == ']') {
		text++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(host))
		return PB_EURI_ADDR;
	memcpy(host, text, n);
	host[n] = 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
		return PB_EURI_ADDR;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

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
static int connect_error(pb_cli_t *cli, pb_phone_t *phone, int rc, const char *uri)
{
	pb_account_info_t acct;
	pb_pair_uri_t u;
	struct sockaddr_storage ss;
	char addrs[512] = "";

	if (pb_phone_account(phone, &acct) == 0 && numeric_addr(acct.service, &ss) == 0 && !answers(&ss))
		return pb_cli_error(cli, rc, "pairing failed: the account service at %s did not answer (pairing asks "
					     "it for a ticket first): %s",
				    acct.service, pb_strerror(rc));
	if (pb_uri_parse(uri, strlen(uri), 0, &u) == 0)
		for (size_t i = 0; i < u.naddrs; i++) {
			char a[96];
			size_t n = strlen(addrs);

			if (pb_uri_format_addr(&u.addrs[i], a, sizeof(a)) >= 0)
				snprintf(addrs + n, sizeof(addrs) - n, "%s%s", n ? ", " : "", a);
		}
	sodium_memzero(&u, sizeof(u));
	return pb_cli_error(cli, rc, "pairing failed: the host at %s (from the QR code) did not answer or refused "
				     "the connection: %s (is peerback host running, and reachable from here?)",
			    addrs[0] ? addrs : "the QR code's addresses", pb_strerror(rc));
}

static int pair_result(pb_cli_t *cli, int rc, const pb_host_info_t *h);

int pb_cmd_pair(pb_cli_t *cli, int argc, char **argv)
{
	const char *uri = NULL, *image = NULL;
	char decoded[PB_URI_MAX_LEN + 1];
	pb_host_info_t h;
	pb_phone_t *phone;
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
	if ((rc = pb_cli_phone(cli, NULL, &phone)) != 0) {
		sodium_memzero(decoded, sizeof(decoded));
		return pb_cli_fail_err(cli, rc, "cannot open the phone's state in %s", cli->home);
	}
	rc = pb_phone_pair(phone, uri, timeout, &h);
	if (rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH || rc == -ENETUNREACH ||
	    rc == PB_ETIMEOUT || rc == PB_EPEER_CLOSED)
		rc = connect_error(cli, phone, rc, uri);
	else
		rc = pair_result(cli, rc, &h);
	pb_phone_close(phone);
	sodium_memzero(decoded, sizeof(decoded));
	return rc;
}

/* What pb_phone_pair said, for the user. */
static int pair_result(pb_cli_t *cli, int rc, const pb_host_info_t *h)
{
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
	if (cli->json)
		(void)pb_cli_json("{s:s, s:s, s:o, s:o}", "event", "paired", "host", h->key, "name",
				  pb_cli_text(h->name), "account", pb_cli_text(h->account));
	else
		printf("paired with %s (%s)\n", h->name[0] ? h->name : "host", h->key);
	return 0;
}
