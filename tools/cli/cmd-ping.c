/* peerback ping: check the paired host is reachable and still trusts us. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"
#include "tools/cli/commands.h"

static double ms_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) * 1e3 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

void pb__cli_instruction(void *arg, const char *op, int rc, const char *message);

int pb_cmd_ping(pb_cli_t *cli, int argc, char **argv)
{
	const char *which = NULL;
	pb_remembered_host_t h;
	pb_client_t c;
	struct timespec t0;
	double connect_ms, rtt_ms;
	Peerback__Request req;
	Peerback__Ping p;
	pb_envelope_t *in;
	int rc;

	if (pb_cli_wants_help(argc, argv)) {
		printf("usage: peerback ping [--host NAME|KEY]\n\n"
		       "Opens an authenticated session with a paired host (no QR code needed),\n"
		       "carries out the instructions the host queued for this phone, measures a\n"
		       "round trip, and closes it.\n");
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--host") == 0)
			which = argv[++i];
		else {
			return pb_cli_usage(cli, "peerback ping: unknown argument '%s'", argv[i]);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = pb__phone_connect(cli->home, which, 15000, &c, &h); /* room to find a moved host */
	if (rc == PB_EACCT_NOT_PAIRED)
		return pb_cli_fail(cli, "this phone is not paired with %s; run peerback pair first",
				   which != NULL ? which : "any host");
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "cannot reach the paired host");
	connect_ms = ms_since(&t0);
	{
		char dev[4096];
		int n = snprintf(dev, sizeof(dev), "%s/device", cli->home);

		if (n > 0 && (size_t)n < sizeof(dev))
			rc = pb__phone_instructions(&c, cli->home, dev, pb__cli_instruction, cli);
		if (rc < 0) {
			pb__client_close(&c);
			return pb_cli_fail_err(cli, rc, "instructions from the host");
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	peerback__request__init(&req);
	peerback__ping__init(&p);
	req.id = 2;
	req.op_case = PEERBACK__REQUEST__OP_PING;
	req.ping = &p;
	rc = pb__phone_call(&c, &req, &in);
	rtt_ms = ms_since(&t0);
	pb__client_close(&c);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "ping");
	pb__envelope_free(in);
	if (cli->json)
		(void)pb_cli_json("{s:s, s:o, s:f, s:f}", "event", "pong", "host", pb_cli_text(h.name),
				     "connect_ms", pb_cli_milli(connect_ms), "rtt_ms", pb_cli_milli(rtt_ms));
	else
		printf("%s: session in %.1f ms, round trip %.2f ms\n", h.name[0] ? h.name : "host", connect_ms, rtt_ms);
	return 0;
}
