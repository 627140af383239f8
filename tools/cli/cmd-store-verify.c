/* peerback store-verify: checks a host's backup store without any key:
 * every pack record's hash, every index row and snapshot reference. */
#include <stdio.h>
#include <string.h>

#include "peerback.h"
#include "peerback/host.h"
#include "peerback/store.h"
#include "cli.h"
#include "commands.h"

static void show_progress(void *arg, uint64_t done, uint64_t total)
{
	const pb_cli_t *cli = arg;

	if (cli->tty && total > 0)
		fprintf(stderr, "\rverifying: %3u%%", (unsigned)(done * 100 / total));
}

int pb_cmd_store_verify(pb_cli_t *cli, int argc, char **argv)
{
	pb_store_verify_report_t rep;
	pb_store_t *store;
	pb_host_t *host = NULL;
	bool other = false;
	char dir[4096];
	int i, rc;

	if (pb_cli_wants_help(argc, argv)) {
		printf("usage: peerback [--home DIR] store-verify [--store DIR]\n\n"
		       "Checks the host's backup store (default HOME/store) without keys: the\n"
		       "hash of every chunk in every pack, the index and the snapshot records.\n"
		       "Exit status 0 when the store is clean.\n");
		return 0;
	}
	if (pb_cli_path(cli, "store", dir, sizeof(dir)) < 0)
		return pb_cli_fail(cli, "home directory path is too long");
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
			int n = snprintf(dir, sizeof(dir), "%s", argv[++i]);

			if (n < 0 || (size_t)n >= sizeof(dir))
				return pb_cli_fail(cli, "store path is too long");
			other = true;
		} else {
			return pb_cli_fail(cli, "unknown argument '%s'; see peerback store-verify --help", argv[i]);
		}
	}
	if (!other) {
		/* The host's own store, through its handle. */
		if ((rc = pb_host_open(cli->home, &host)) == 0)
			rc = pb_host_verify(host, show_progress, cli, &rep);
		pb_host_free(host);
	} else {
		/* Verify only reads, so a running host's lock does not stop it. */
		rc = pb_store_open(dir, &store);
		if (rc == PB_ESTORE_LOCKED)
			rc = pb_store_open_ro(dir, &store);
		if (rc < 0)
			return pb_cli_fail_err(cli, rc, "cannot open the store %s", dir);
		rc = pb_store_verify(store, show_progress, cli, &rep);
		pb_store_close(store);
	}
	if (cli->tty)
		fputc('\n', stderr);
	if (rc < 0 && rc != PB_ESTORE_CORRUPT)
		return pb_cli_fail_err(cli, rc, "cannot verify the store %s", dir);
	if (cli->json) {
		(void)pb_cli_json("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "event", "verify", "clean",
				     rc == 0, "packs", (json_int_t)rep.packs, "records", (json_int_t)rep.records,
				     "chunks", (json_int_t)rep.chunks, "bytes", (json_int_t)rep.bytes, "dead_records",
				     (json_int_t)rep.dead_records, "bad_records", (json_int_t)rep.bad_records,
				     "bad_chunks", (json_int_t)rep.bad_chunks, "missing_refs",
				     (json_int_t)rep.missing_refs);
	} else {
		printf("%llu packs, %llu chunks, %llu bytes checked; %llu unused records\n",
		       (unsigned long long)rep.packs, (unsigned long long)rep.chunks, (unsigned long long)rep.bytes,
		       (unsigned long long)rep.dead_records);
	}
	if (rc == PB_ESTORE_CORRUPT)
		return pb_cli_fail(cli, "store %s is damaged: %llu bad records, %llu bad index rows, "
					"%llu missing chunks of snapshots; restore from another copy",
				   dir, (unsigned long long)rep.bad_records, (unsigned long long)rep.bad_chunks,
				   (unsigned long long)rep.missing_refs);
	return 0;
}
