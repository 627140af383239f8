/* peerback host instruct / instructions: remote instructions for a paired
 * device's virtual cards, carried out at its next connection. */
#include <stdio.h>
#include <string.h>

#include "peerback.h"
#include "peerback/host.h"
#include "cli.h"
#include "commands.h"

static int print_instruction(void *arg, const pb_host_instruction_t *in)
{
	const pb_cli_t *cli = arg;

	if (cli->json)
		(void)pb_cli_json("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id", (json_int_t)in->id, "device",
				  in->device, "op", in->op, "iccid", in->iccid, "peer", in->peer, "state", in->state,
				  "result", in->result, "created", (json_int_t)in->created, "updated",
				  (json_int_t)in->updated);
	else
		printf("%4lld  %-8s %-13s %s  %.12s  %s%s\n", (long long)in->id, in->state, in->op, in->iccid,
		       in->device, in->peer[0] ? "peer " : "", in->peer);
	return 0;
}

int pb_cli_host_instructions(pb_cli_t *cli)
{
	pb_host_t *h;
	int rc = pb_host_open(cli->home, &h);

	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "host state in %s", cli->home);
	rc = pb_host_instructions(h, print_instruction, cli);
	pb_host_free(h);
	return rc == 0 ? 0 : pb_cli_fail_err(cli, rc, "instructions");
}

int pb_cli_host_instruct(pb_cli_t *cli, int argc, char **argv)
{
	pb_host_device_t d, to;
	const char *dest = NULL;
	pb_host_t *h;
	int64_t id = 0;
	int rc;

	/* argv: instruct DEVICE OP ICCID [--to DEVICE2] */
	if (argc < 4 || (strcmp(argv[2], "delete-vsim") != 0 && strcmp(argv[2], "copy-vsim") != 0)) {
		fprintf(stderr, "usage: peerback host instruct DEVICE delete-vsim ICCID\n"
				"       peerback host instruct DEVICE copy-vsim ICCID --to DEVICE\n");
		return 2;
	}
	if (argc == 6 && strcmp(argv[4], "--to") == 0)
		dest = argv[5];
	else if (argc != 4) {
		return pb_cli_usage(cli, "peerback host instruct: unexpected argument '%s'", argv[4]);
	}
	if ((strcmp(argv[2], "copy-vsim") == 0) != (dest != NULL))
		return pb_cli_fail(cli, "copy-vsim needs --to DEVICE; delete-vsim takes none");
	if ((rc = pb_host_open(cli->home, &h)) != 0)
		return pb_cli_fail_err(cli, rc, "host state in %s", cli->home);
	rc = pb_host_instruct(h, argv[1], argv[2], argv[3], dest, &id);
	/* The names for the message. */
	if ((rc == 0 || rc == PB_EACCT_NOT_LINKED) && pb_host_device(h, argv[1], &d) != 0)
		memset(&d, 0, sizeof(d));
	if (rc == PB_EACCT_NOT_LINKED && pb_host_device(h, dest, &to) != 0)
		memset(&to, 0, sizeof(to));
	pb_host_free(h);
	switch (rc) {
	case 0:
		break;
	case PB_EMALFORMED:
		return pb_cli_fail(cli, "'%s' is not an ICCID (19 or 20 digits)", argv[3]);
	case PB_ENOTFOUND:
		return pb_cli_fail(cli, "no device paired with this host matches; see peerback host devices");
	case PB_EEXISTS:
		return pb_cli_fail(cli, "several devices match; give the full device id");
	case PB_EINVAL:
		return pb_cli_fail(cli, "the source and the destination are the same device");
	case PB_EACCT_NOT_LINKED:
		return pb_cli_fail(cli, "accounts %s and %s are not linked; link them first "
					"(peerback-imd link-accounts)", d.account, to.account);
	default:
		return pb_cli_fail_err(cli, rc, "instruct");
	}
	if (cli->json)
		(void)pb_cli_json("{s:s, s:I}", "event", "queued", "id", (json_int_t)id);
	else
		printf("queued instruction %lld; %s carries it out at its next connection\n", (long long)id,
		       d.name[0] ? d.name : argv[1]);
	return 0;
}
