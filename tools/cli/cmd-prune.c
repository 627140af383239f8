/* peerback host prune: forgets old snapshots and frees the chunks no
 * remaining snapshot needs. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "peerback.h"
#include "peerback/host.h"
#include "cli.h"
#include "commands.h"

static void print_plan(void *arg, const pb_host_prune_plan_t *p)
{
	const pb_cli_t *cli = arg;
	const pb_store_prune_result_t *res = p->result;
	char id[17];

	if (cli->json) {
		json_t *k = json_array(), *r = json_array();

		for (size_t i = 0; i < res->n; i++) {
			snprintf(id, sizeof(id), "%016llx", (unsigned long long)res->snaps[i].id);
			(void)json_array_append_new(res->kept[i] ? k : r, json_string(id));
		}
		(void)pb_cli_json("{s:s, s:s, s:s, s:o, s:o, s:I, s:I}", "event", "prune-plan", "device",
				  p->device->device, "name", p->device->name, "keep", k, "remove", r, "chunks",
				  (json_int_t)res->chunks, "bytes", (json_int_t)res->bytes);
		return;
	}
	size_t kept = 0;

	for (size_t i = 0; i < res->n; i++)
		kept += res->kept[i];
	printf("%s (%.12s): would keep %zu snapshots, remove %zu, free %llu chunks (%llu bytes)\n", p->device->name,
	       p->device->device, kept, res->n - kept, (unsigned long long)res->chunks,
	       (unsigned long long)res->bytes);
	for (size_t i = 0; i < res->n; i++) {
		time_t t = (time_t)res->snaps[i].time;
		struct tm tm;
		char when[32] = "?";

		if (localtime_r(&t, &tm) != NULL)
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
		printf("  %s %016llx %s\n", res->kept[i] ? "keep  " : "remove", (unsigned long long)res->snaps[i].id,
		       when);
	}
}

static int parse_count(pb_cli_t *cli, const char *opt, const char *val, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(val, &end, 10);
	if (errno != 0 || *end != 0 || val[0] == '-' || v > 100000)
		return pb_cli_usage(cli, "%s takes a number of snapshots to keep", opt);
	*out = (unsigned)v;
	return 0;
}

int pb_cli_host_prune(pb_cli_t *cli, int argc, char **argv)
{
	pb_store_keep_t keep = { 0, 0, 0, 0 };
	pb_host_prune_report_t rep;
	bool dry_run = false;
	pb_host_t *h;
	int rc;

	for (int i = 1; i < argc; i++) {
		unsigned *dst = NULL;

		if (strcmp(argv[i], "--keep-last") == 0)
			dst = &keep.last;
		else if (strcmp(argv[i], "--keep-daily") == 0)
			dst = &keep.daily;
		else if (strcmp(argv[i], "--keep-weekly") == 0)
			dst = &keep.weekly;
		else if (strcmp(argv[i], "--keep-monthly") == 0)
			dst = &keep.monthly;
		if (dst != NULL) {
			if (i + 1 >= argc)
				return pb_cli_usage(cli, "%s needs a number", argv[i]);
			if ((rc = parse_count(cli, argv[i], argv[i + 1], dst)) != 0)
				return rc;
			i++;
		} else if (strcmp(argv[i], "--dry-run") == 0) {
			dry_run = true;
		} else {
			return pb_cli_usage(cli, "peerback host prune: unknown argument '%s'", argv[i]);
		}
	}
	if ((rc = pb_host_open(cli->home, &h)) != 0)
		return pb_cli_fail_err(cli, rc, "host state in %s", cli->home);
	rc = pb_host_prune(h, &keep, dry_run, print_plan, cli, &rep);
	pb_host_free(h);
	if (rc == PB_ESTORE_LOCKED)
		return pb_cli_fail_err(cli, rc, "the store %s/store is locked by another process and no host answers "
						"on %s/control.sock", cli->home, cli->home);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "prune");
	if (dry_run) {
		if (cli->json)
			(void)pb_cli_json("{s:s, s:b, s:I, s:I, s:I}", "event", "pruned", "dry_run", 1,
					  "snapshots_removed", (json_int_t)rep.snapshots_removed, "chunks_removed",
					  (json_int_t)rep.chunks_removed, "bytes_freed", (json_int_t)rep.bytes_freed);
		else
			printf("dry run: would remove %llu snapshots and %llu chunks, freeing %llu bytes; nothing "
			       "changed\n",
			       (unsigned long long)rep.snapshots_removed, (unsigned long long)rep.chunks_removed,
			       (unsigned long long)rep.bytes_freed);
		return 0;
	}
	if (cli->json)
		(void)pb_cli_json("{s:s, s:I, s:I, s:I, s:I, s:I}", "event", "pruned", "snapshots_removed",
				  (json_int_t)rep.snapshots_removed, "chunks_removed", (json_int_t)rep.chunks_removed,
				  "packs_deleted", (json_int_t)rep.packs_deleted, "packs_repacked",
				  (json_int_t)rep.packs_repacked, "bytes_freed", (json_int_t)rep.bytes_freed);
	else
		printf("removed %llu snapshots and %llu chunks; freed %llu bytes\n",
		       (unsigned long long)rep.snapshots_removed, (unsigned long long)rep.chunks_removed,
		       (unsigned long long)rep.bytes_freed);
	return 0;
}
