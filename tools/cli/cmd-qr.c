/* peerback qr: shows a pairing URI as a QR code and reads one back from an
 * image, for checking what a host advertises and what a phone will see. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "peerback/qr.h"
#include "commands.h"

static void qr_usage(FILE *out)
{
	fprintf(out, "usage: peerback qr show URI [--png FILE] [--svg FILE] [--dark-blocks] [--ansi]\n"
		     "       peerback qr decode FILE\n"
		     "\n"
		     "show    checks a pairing URI and prints it as a QR code in the terminal\n"
		     "        (light modules drawn, for light-on-dark terminals; --dark-blocks for\n"
		     "        dark-on-light ones, --ansi to force colours), and writes it as PNG or\n"
		     "        SVG. The files hold the pairing secret and are created private.\n"
		     "decode  finds a peerback QR code in a PNG, PGM or PPM image and prints its\n"
		     "        URI; exits 1 when the URI is invalid or expired.\n");
}

/* Prints text with bytes outside printable ASCII escaped (\xNN), so that
 * a hostile code cannot drive the terminal. */
static void print_escaped(const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if (*p < 0x20 || *p >= 0x7f)
			printf("\\x%02x", *p);
		else
			fputc(*p, stdout);
	}
}

static int qr_show(pb_cli_t *cli, int argc, char **argv)
{
	const char *uri = NULL, *png = NULL, *svg = NULL;
	unsigned flags = 0;
	pb_pair_uri_t u;
	char *text;
	int rc;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--png") == 0 && i + 1 < argc)
			png = argv[++i];
		else if (strcmp(argv[i], "--svg") == 0 && i + 1 < argc)
			svg = argv[++i];
		else if (strcmp(argv[i], "--dark-blocks") == 0)
			flags |= PB_QR_TERM_DARK_BLOCKS;
		else if (strcmp(argv[i], "--ansi") == 0)
			flags |= PB_QR_TERM_ANSI;
		else if (argv[i][0] != '-' && uri == NULL)
			uri = argv[i];
		else {
			qr_usage(stderr);
			return 2;
		}
	}
	if (uri == NULL) {
		qr_usage(stderr);
		return 2;
	}
	rc = pb_uri_parse(uri, strlen(uri), 0, &u);
	sodium_memzero(&u, sizeof(u));
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "not showing this URI");
	if (png != NULL && (rc = pb_qr_write_png(uri, png)) != 0)
		return pb_cli_fail_err(cli, rc, "cannot write the QR code to %s", png);
	if (svg != NULL && (rc = pb_qr_write_svg(uri, svg)) != 0)
		return pb_cli_fail_err(cli, rc, "cannot write the QR code to %s", svg);
	rc = pb_qr_render_terminal(uri, flags, &text, NULL);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "cannot render the QR code");
	fputs(text, stdout);
	free(text);
	return 0;
}

static int qr_decode(pb_cli_t *cli, int argc, char **argv)
{
	char uri[PB_URI_MAX_LEN + 1];
	pb_pair_uri_t u;
	int rc, n;

	if (argc != 1 || argv[0][0] == '-') {
		qr_usage(stderr);
		return 2;
	}
	n = pb_qr_decode_file(argv[0], uri, sizeof(uri));
	if (n == PB_EQR_NOTFOUND)
		return pb_cli_fail(cli, "%s: no peerback QR code found; photograph the code the host shows "
				       "(peerback host) with the whole code in view",
				   argv[0]);
	if (n < 0)
		return pb_cli_fail_err(cli, n, "%s", argv[0]);
	/* The text comes from an image and is not yet validated: escape it. */
	if (cli->json) {
		(void)pb_cli_json("{s:o}", "uri", pb_cli_text(uri));
	} else {
		print_escaped(uri);
		fputc('\n', stdout);
	}
	rc = pb_uri_parse(uri, (size_t)n, (uint64_t)time(NULL), &u);
	sodium_memzero(&u, sizeof(u));
	sodium_memzero(uri, sizeof(uri));
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "%s holds a pairing URI that cannot be used", argv[0]);
	return 0;
}

int pb_cmd_qr(pb_cli_t *cli, int argc, char **argv)
{
	if (argc < 2 || pb_cli_wants_help(argc, argv)) {
		qr_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "show") == 0)
		return qr_show(cli, argc - 2, argv + 2);
	if (strcmp(argv[1], "decode") == 0)
		return qr_decode(cli, argc - 2, argv + 2);
	qr_usage(stderr);
	return 2;
}
