/* peerback host prune: forgets old snapshots and frees the chunks no
 * remaining snapshot needs. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "peerback/store.h"
#include "agent/host/hostdb.h"
#include "agent/util/fsutil.h"
#include "tools/cli/commands.h"
#include "agent/util/json.h"

struct prune {
	pb_cli_t *cli;
	pb_store_t *store;
	pb_store_keep_t pol;
	bool dry_run;
	uint64_t snapshots_removed;
	uint64_t plan_chunks, plan_bytes;
	int rc;
};

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
	pb_store_prune_result_t res;
	pb_store_ns_t *ns;
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
	rc = pb_store_prune_keep(ns, &p->pol, p->dry_run, &res);
	if (rc == 0) {
		if (p->dry_run)
			print_plan(p, d, hex, res.snaps, res.n, res.kept, res.chunks, res.bytes);
		p->snapshots_removed += res.removed;
		p->plan_chunks += res.chunks;
		p->plan_bytes += res.bytes;
		pb_store_prune_result_free(&res);
	}
	pb_store_ns_close(ns);
	p->rc = rc;
}

/* The host runs and holds the store: ask it, on its control socket
 * (docs/STORAGE.md), to prune on its storage worker. 1 when no host
 * answers there. */
static int prune_by_host(pb_cli_t *cli, const struct prune *p, pb_store_gc_report_t *rep, uint64_t *removed)
{
	struct sockaddr_un sa;
	char req[128], buf[512];
	size_t len = 0;
	json_t *j;
	ssize_t n;
	int fd, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (pb__path_join(sa.sun_path, sizeof(sa.sun_path), cli->home, "control.sock") != 0)
		return 1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return 1;
	}
	snprintf(req, sizeof(req), "prune %u %u %u %u\n", p->pol.last, p->pol.daily, p->pol.weekly, p->pol.monthly);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while (len + 1 < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	j = json_loads(buf, 0, NULL);
	if (j == NULL)
		return PB_EMALFORMED;
	rc = (int)json_integer_value(json_object_get(j, "rc"));
	*removed = (uint64_t)json_integer_value(json_object_get(j, "snapshots_removed"));
	rep->chunks_removed = (uint64_t)json_integer_value(json_object_get(j, "chunks_removed"));
	rep->packs_deleted = (uint64_t)json_integer_value(json_object_get(j, "packs_deleted"));
	rep->packs_repacked = (uint64_t)json_integer_value(json_object_get(j, "packs_repacked"));
	rep->bytes_freed = (uint64_t)json_integer_value(json_object_get(j, "bytes_freed"));
	json_decref(j);
	return rc;
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
	if (rc == PB_ESTORE_LOCKED) {
		/* A running host does it between its phones' requests. */
		rc = prune_by_host(cli, &p, &rep, &p.snapshots_removed);
		if (rc == 1)
			return pb_cli_fail_err(cli, PB_ESTORE_LOCKED, "the store %s is locked by another process and "
								 "no host answers on %s/control.sock",
					       dir, cli->home);
		if (rc != 0)
			return pb_cli_fail_err(cli, rc, "prune by the running host");
		goto out_report;
	}
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "cannot open the store %s", dir);
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
out_report:
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
