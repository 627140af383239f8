/* peerback host instruct / instructions: remote instructions for a paired
 * device's virtual cards, carried out at its next connection. */
#include <stdio.h>
#include <string.h>

#include "agent/account/account.h"
#include "agent/host/hostdb.h"
#include "agent/imd/imd.h"
#include "agent/util/fsutil.h"
#include "tools/cli/commands.h"
#include "agent/util/json.h"

static bool valid_iccid(const char *s)
{
	size_t n = strlen(s);

	if (n < 19 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int print_instruction(void *arg, const pb_instruction_t *in)
{
	const pb_cli_t *cli = arg;
	char dev[2 * PB_DEVICE_ID_LEN + 1], peer[2 * PB_DEVICE_ID_LEN + 1] = "";

	pb__hex(in->device, PB_DEVICE_ID_LEN, dev);
	if (in->has_peer)
		pb__hex(in->peer, PB_DEVICE_ID_LEN, peer);
	if (cli->json)
		(void)pb__json_print("{s:I, s:s, s:o, s:o, s:s, s:o, s:o, s:I, s:I}", "id", (json_int_t)in->id,
				     "device", dev, "op", pb__json_text(in->op), "iccid", pb__json_text(in->iccid),
				     "peer", peer, "state", pb__json_text(in->state), "result",
				     pb__json_text(in->result), "created", (json_int_t)in->created, "updated",
				     (json_int_t)in->updated);
	else
		printf("%4lld  %-8s %-13s %s  %.12s  %s%s%s\n", (long long)in->id, in->state, in->op, in->iccid, dev,
		       peer[0] ? "peer " : "", peer[0] ? peer : "", in->result[0] ? "" : "");
	return 0;
}

int pb__cli_host_instructions(pb_cli_t *cli)
{
	pb_hostdb_t db;
	int rc = pb__hostdb_open(cli->home, &db);

	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "host state in %s", cli->home);
	rc = pb__hostdb_instructions(&db, NULL, false, print_instruction, cli);
	pb__hostdb_close(&db);
	return rc == 0 ? 0 : pb_cli_fail_err(cli, rc, "instructions");
}

int pb__cli_host_instruct(pb_cli_t *cli, int argc, char **argv)
{
	pb_hostdb_t db;
	pb_paired_device_t d, to;
	const char *dest = NULL;
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
	if (!valid_iccid(argv[3]))
		return pb_cli_fail(cli, "'%s' is not an ICCID (19 or 20 digits)", argv[3]);
	if ((strcmp(argv[2], "copy-vsim") == 0) != (dest != NULL))
		return pb_cli_fail(cli, "copy-vsim needs --to DEVICE; delete-vsim takes none");
	if ((rc = pb__hostdb_open(cli->home, &db)) != 0)
		return pb_cli_fail_err(cli, rc, "host state in %s", cli->home);
	rc = pb__hostdb_match(&db, argv[1], &d);
	if (rc == 0 && dest != NULL && (rc = pb__hostdb_match(&db, dest, &to)) == 0 &&
	    memcmp(d.device_id, to.device_id, PB_DEVICE_ID_LEN) == 0)
		rc = PB_EINVAL;
	if (rc == PB_ENOTFOUND) {
		pb__hostdb_close(&db);
		return pb_cli_fail(cli, "no device paired with this host matches; see peerback host devices");
	}
	if (rc == PB_EEXISTS) {
		pb__hostdb_close(&db);
		return pb_cli_fail(cli, "several devices match; give the full device id");
	}
	if (rc == PB_EINVAL) {
		pb__hostdb_close(&db);
		return pb_cli_fail(cli, "the source and the destination are the same device");
	}
	if (rc == 0 && dest != NULL && strcmp(d.account, to.account) != 0) {
		/* Between accounts only when they are linked sub-accounts. */
		pb_account_t acct;
		bool linked = false;

		rc = pb__account_load(cli->home, &acct);
		if (rc == 0)
			rc = pb__imd_linked(acct.imd_addr, acct.imd_key, d.account, to.account, &linked);
		if (rc == 0 && !linked) {
			pb__hostdb_close(&db);
			return pb_cli_fail(cli, "accounts %s and %s are not linked; link them first "
						"(peerback-imd link-accounts)", d.account, to.account);
		}
	}
	if (rc == 0)
		rc = pb__hostdb_instruct(&db, d.device_id, dest != NULL ? "export-vsim" : "delete-vsim", argv[3],
					 dest != NULL ? to.device_id : NULL, NULL, 0, &id);
	pb__hostdb_close(&db);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "instruct");
	if (cli->json)
		(void)pb__json_print("{s:s, s:I}", "event", "queued", "id", (json_int_t)id);
	else
		printf("queued instruction %lld; %s carries it out at its next connection\n", (long long)id,
		       d.name[0] ? d.name : argv[1]);
	return 0;
}
