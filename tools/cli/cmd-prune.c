/* peerback host prune: forgets old snapshots and frees the chunks no
 * remaining snapshot needs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peerback/store.h"
#include "agent/host/hostdb.h"
#include "agent/util/fsutil.h"
#include "tools/cli/commands.h"
#include "agent/util/json.h"

struct prune {
	pb_cli_t *cli;
	pb_store_t *store;
	unsigned keep;
	uint64_t snapshots_removed;
	int rc;
};

static int by_time_desc(const void *a, const void *b)
{
	const pb_store_snapinfo_t *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? 1 : -1;
	return x->id < y->id ? 1 : (x->id > y->id ? -1 : 0);
}

static void prune_device(void *arg, const pb_paired_device_t *d)
{
	struct prune *p = arg;
	char hex[2 * PB_DEVICE_ID_LEN + 1];
	pb_store_ns_t *ns;
	pb_store_snapinfo_t *snaps = NULL;
	uint64_t *keep;
	size_t n = 0, k;
	int rc;

	if (p->rc != 0)
		return;
	pb__hex(d->device_id, PB_DEVICE_ID_LEN, hex);
	if ((rc = pb_store_ns_open(p->store, d->account, hex, &ns)) != 0) {
		p->rc = rc;
		return;
	}
	rc = pb_store_snapshot_list(ns, &snaps, &n);
	if (rc == 0 && n > p->keep) {
		qsort(snaps, n, sizeof(*snaps), by_time_desc);
		k = p->keep;
		keep = calloc(k ? k : 1, sizeof(*keep));
		if (keep == NULL) {
			rc = PB_ENOMEM;
		} else {
			for (size_t i = 0; i < k; i++)
				keep[i] = snaps[i].id;
			rc = pb_store_prune(ns, keep, k);
			if (rc >= 0) {
				p->snapshots_removed += (uint64_t)rc;
				rc = 0;
			}
			free(keep);
		}
	}
	free(snaps);
	pb_store_ns_close(ns);
	p->rc = rc;
}

int pb__cli_host_prune(pb_cli_t *cli, int argc, char **argv)
{
	struct prune p;
	pb_store_gc_report_t rep;
	pb_hostdb_t db;
	char dir[4096];
	int rc;

	memset(&p, 0, sizeof(p));
	p.cli = cli;
	p.keep = 7;
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--keep-last") == 0) {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(argv[++i], &end, 10);
			if (errno != 0 || *end != 0 || v == 0 || v > 100000)
				return pb_cli_fail(cli, "--keep-last takes 1 or more snapshots to keep");
			p.keep = (unsigned)v;
		} else {
			return pb_cli_usage(cli, "peerback host prune: unknown argument '%s'", argv[i]);
		}
	}
	if ((rc = pb__path_join(dir, sizeof(dir), cli->home, "store")) != 0)
		return pb_cli_fail(cli, "home path is too long");
	if ((rc = pb_store_open(dir, &p.store)) != 0) {
		if (rc == PB_ESTORE_LOCKED)
			return pb_cli_fail(cli, "the host is running and holds the store; stop it, then prune");
		return pb_cli_fail_err(cli, rc, "cannot open the store %s", dir);
	}
	if ((rc = pb__hostdb_open(cli->home, &db)) != 0) {
		pb_store_close(p.store);
		return pb_cli_fail_err(cli, rc, "host state in %s", cli->home);
	}
	rc = pb__hostdb_list(&db, prune_device, &p);
	pb__hostdb_close(&db);
	if (rc >= 0)
		rc = p.rc;
	/* The host is stopped, so no backup is half way: no grace period. */
	if (rc == 0)
		rc = pb_store_gc(p.store, 0, &rep);
	pb_store_close(p.store);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "prune");
	if (cli->json)
		(void)pb__json_print("{s:s, s:I, s:I, s:I, s:I, s:I}", "event", "pruned", "snapshots_removed",
				     (json_int_t)p.snapshots_removed, "chunks_removed", (json_int_t)rep.chunks_removed,
				     "packs_deleted", (json_int_t)rep.packs_deleted, "packs_repacked",
				     (json_int_t)rep.packs_repacked, "bytes_freed", (json_int_t)rep.bytes_freed);
	else
		printf("removed %llu snapshots and %llu chunks; freed %llu bytes\n",
		       (unsigned long long)p.snapshots_removed, (unsigned long long)rep.chunks_removed,
		       (unsigned long long)rep.bytes_freed);
	return 0;
}
