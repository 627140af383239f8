/* peerback host prune: forgets old snapshots and frees the chunks no
 * remaining snapshot needs. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peerback/store.h"
#include "agent/host/hostdb.h"
#include "agent/util/fsutil.h"
#include "tools/cli/commands.h"
#include "agent/util/json.h"

/* Which snapshots to keep, per phone, as restic and Borg count them: the
 * newest keep_last, and the newest of each of the last keep_daily days,
 * keep_weekly ISO weeks and keep_monthly months that have a snapshot (in
 * local time); the union of the rules, and the newest always. */
struct policy {
	unsigned last, daily, weekly, monthly;
};

struct prune {
	pb_cli_t *cli;
	pb_store_t *store;
	struct policy pol;
	bool dry_run;
	uint64_t snapshots_removed;
	uint64_t plan_chunks, plan_bytes;
	int rc;
};

static int by_time_desc(const void *a, const void *b)
{
	const pb_store_snapinfo_t *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? 1 : -1;
	return x->id < y->id ? 1 : (x->id > y->id ? -1 : 0);
}

/* The day, ISO week or month a snapshot falls in, as a number. */
static long bucket(int64_t t, char unit)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[16];

	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	if (unit == 'd')
		return (tm.tm_year + 1900L) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
	if (unit == 'm')
		return (tm.tm_year + 1900L) * 100 + tm.tm_mon + 1;
	if (strftime(buf, sizeof(buf), "%G%V", &tm) == 0)
		return 0;
	return strtol(buf, NULL, 10);
}

/* Marks in keep[] the newest snapshot of each of the last n buckets;
 * snaps are newest first. */
static void keep_buckets(const pb_store_snapinfo_t *snaps, size_t n, bool *keep, unsigned count, char unit)
{
	long last = -1;

	for (size_t i = 0; i < n && count > 0; i++) {
		long b = bucket(snaps[i].time, unit);

		if (b == last)
			continue;
		last = b;
		keep[i] = true;
		count--;
	}
}

static void print_plan(const struct prune *p, const pb_paired_device_t *d, const char *hex,
		       const pb_store_snapinfo_t *snaps, size_t n, const bool *keep, uint64_t chunks,
		       uint64_t bytes)
{
	char id[17];

	if (p->cli->json) {
		json_t *k = json_array(), *r = json_array();

		for (size_t i = 0; i < n; i++) {
			snprintf(id, sizeof(id), "%016llx", (unsigned long long)snaps[i].id);
			(void)json_array_append_new(keep[i] ? k : r, json_string(id));
		}
		(void)pb__json_print("{s:s, s:s, s:s, s:o, s:o, s:I, s:I}", "event", "prune-plan", "device", hex,
				     "name", d->name, "keep", k, "remove", r, "chunks", (json_int_t)chunks, "bytes",
				     (json_int_t)bytes);
		return;
	}
	size_t kept = 0;

	for (size_t i = 0; i < n; i++)
		kept += keep[i];
	printf("%s (%.12s): would keep %zu snapshots, remove %zu, free %llu chunks (%llu bytes)\n", d->name, hex,
	       kept, n - kept, (unsigned long long)chunks, (unsigned long long)bytes);
	for (size_t i = 0; i < n; i++) {
		time_t t = (time_t)snaps[i].time;
		struct tm tm;
		char when[32] = "?";

		if (localtime_r(&t, &tm) != NULL)
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
		printf("  %s %016llx %s\n", keep[i] ? "keep  " : "remove", (unsigned long long)snaps[i].id, when);
	}
}

static void prune_device(void *arg, const pb_paired_device_t *d)
{
	struct prune *p = arg;
	char hex[2 * PB_DEVICE_ID_LEN + 1];
	pb_store_ns_t *ns;
	pb_store_snapinfo_t *snaps = NULL;
	uint64_t *ids = NULL, chunks = 0, bytes = 0;
	bool *keep = NULL;
	size_t n = 0, k = 0;
	int rc;

	if (p->rc != 0)
		return;
	pb__hex(d->device_id, PB_DEVICE_ID_LEN, hex);
	rc = p->dry_run ? pb_store_ns_open_ro(p->store, d->account, hex, &ns)
			: pb_store_ns_open(p->store, d->account, hex, &ns);
	if (rc != 0) {
		p->rc = rc;
		return;
	}
	rc = pb_store_snapshot_list(ns, &snaps, &n);
	if (rc == 0 && n > 0) {
		keep = calloc(n, sizeof(*keep));
		ids = calloc(n, sizeof(*ids));
		if (keep == NULL || ids == NULL)
			rc = PB_ENOMEM;
	}
	if (rc == 0 && n > 0) {
		qsort(snaps, n, sizeof(*snaps), by_time_desc);
		/* Snapshots are whole (a backup of some kinds carries the
		 * others forward), so the newest alone restores everything. */
		keep[0] = true;
		for (size_t i = 0; i < n && i < p->pol.last; i++)
			keep[i] = true;
		keep_buckets(snaps, n, keep, p->pol.daily, 'd');
		keep_buckets(snaps, n, keep, p->pol.weekly, 'w');
		keep_buckets(snaps, n, keep, p->pol.monthly, 'm');
		for (size_t i = 0; i < n; i++)
			if (keep[i])
				ids[k++] = snaps[i].id;
		if (p->dry_run) {
			rc = pb_store_prune_plan(ns, ids, k, &chunks, &bytes);
			if (rc == 0) {
				print_plan(p, d, hex, snaps, n, keep, chunks, bytes);
				p->snapshots_removed += n - k;
				p->plan_chunks += chunks;
				p->plan_bytes += bytes;
			}
		} else if (k < n) {
			rc = pb_store_prune(ns, ids, k);
			if (rc >= 0) {
				p->snapshots_removed += (uint64_t)rc;
				rc = 0;
			}
		}
	}
	free(ids);
	free(keep);
	free(snaps);
	pb_store_ns_close(ns);
	p->rc = rc;
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

int pb__cli_host_prune(pb_cli_t *cli, int argc, char **argv)
{
	struct prune p;
	pb_store_gc_report_t rep = {0};
	pb_hostdb_t db;
	char dir[4096];
	bool any = false;
	int rc;

	memset(&p, 0, sizeof(p));
	p.cli = cli;
	for (int i = 1; i < argc; i++) {
		unsigned *dst = NULL;

		if (strcmp(argv[i], "--keep-last") == 0)
			dst = &p.pol.last;
		else if (strcmp(argv[i], "--keep-daily") == 0)
			dst = &p.pol.daily;
		else if (strcmp(argv[i], "--keep-weekly") == 0)
			dst = &p.pol.weekly;
		else if (strcmp(argv[i], "--keep-monthly") == 0)
			dst = &p.pol.monthly;
		if (dst != NULL) {
			if (i + 1 >= argc)
				return pb_cli_usage(cli, "%s needs a number", argv[i]);
			if ((rc = parse_count(cli, argv[i], argv[i + 1], dst)) != 0)
				return rc;
			i++;
			any = true;
		} else if (strcmp(argv[i], "--dry-run") == 0) {
			p.dry_run = true;
		} else {
			return pb_cli_usage(cli, "peerback host prune: unknown argument '%s'", argv[i]);
		}
	}
	if (!any)
		p.pol.last = 7;
	if ((rc = pb__path_join(dir, sizeof(dir), cli->home, "store")) != 0)
		return pb_cli_fail(cli, "home path is too long");
	/* A dry run only reads: it runs beside a serving host. */
	rc = p.dry_run ? pb_store_open_ro(dir, &p.store) : pb_store_open(dir, &p.store);
	if (rc != 0) {
		if (rc == PB_ESTORE_LOCKED)
			return pb_cli_fail_err(cli, rc, "the host is running and holds the store; stop it, then prune");
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
	if (rc == 0 && !p.dry_run)
		rc = pb_store_gc(p.store, 0, &rep);
	pb_store_close(p.store);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "prune");
	if (p.dry_run) {
		if (cli->json)
			(void)pb__json_print("{s:s, s:b, s:I, s:I, s:I}", "event", "pruned", "dry_run", 1,
					     "snapshots_removed", (json_int_t)p.snapshots_removed, "chunks_removed",
					     (json_int_t)p.plan_chunks, "bytes_freed", (json_int_t)p.plan_bytes);
		else
			printf("dry run: would remove %llu snapshots and %llu chunks, freeing %llu bytes; nothing "
			       "changed\n",
			       (unsigned long long)p.snapshots_removed, (unsigned long long)p.plan_chunks,
			       (unsigned long long)p.plan_bytes);
		return 0;
	}
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
