/* peerback ping: check the paired host is reachable and still trusts us. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

/* An instruction the host queued, carried out. */
static int on_event(void *arg, const pb_event_t *ev)
{
	pb_cli_t *cli = arg;

	if (ev->type == PB_EVENT_INSTRUCTION)
		pb_cli_instruction(cli, ev->op, ev->error, ev->message);
	return 0;
}

int pb_cmd_ping(pb_cli_t *cli, int argc, char **argv)
{
	pb_op_opts_t o;
	pb_ping_result_t r;
	pb_phone_t *phone;
	int rc;

	if (pb_cli_wants_help(argc, argv)) {
		printf("usage: peerback ping [--host NAME|KEY]\n\n"
		       "Opens an authenticated session with a paired host (no QR code needed),\n"
		       "carries out the instructions the host queued for this phone, measures a\n"
		       "round trip, and closes it.\n");
		return 0;
	}
	memset(&o, 0, sizeof(o));
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--host") == 0)
			o.host = argv[++i];
		else {
			return pb_cli_usage(cli, "peerback ping: unknown argument '%s'", argv[i]);
		}
	}
	if ((rc = pb_cli_phone(cli, NULL, &phone)) != 0)
		return pb_cli_fail_err(cli, rc, "cannot open the phone's state in %s", cli->home);
	o.timeout_ms = 15000; /* room to find a moved host */
	o.on_event = on_event;
	o.event_arg = cli;
	rc = pb_phone_ping(phone, &o, &r);
	pb_phone_close(phone);
	if (rc == PB_EACCT_NOT_PAIRED)
		return pb_cli_fail(cli, "this phone is not paired with %s; run peerback pair first",
				   o.host != NULL ? o.host : "any host");
	if (rc != 0 && r.host.key[0] == 0)
		return pb_cli_fail_err(cli, rc, "cannot reach the paired host");
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "ping");
	if (cli->json)
		(void)pb_cli_json("{s:s, s:o, s:f, s:f}", "event", "pong", "host", pb_cli_text(r.host.name),
				  "connect_ms", pb_cli_milli(r.connect_ms), "rtt_ms", pb_cli_milli(r.rtt_ms));
	else
		printf("%s: session in %.1f ms, round trip %.2f ms\n", r.host.name[0] ? r.host.name : "host",
		       r.connect_ms, r.rtt_ms);
	return 0;
}
