/* peerback ls and diff: the snapshots the host holds, the items of one, and
 * what changed between two. Snapshot ids accept "latest" and unique
 * prefixes; --from accepts a device's name or an id prefix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "peerback.h"
#include "commands.h"

int pb_cli_snapshot(pb_cli_t *cli, pb_phone_t *phone, const pb_op_opts_t *o, const char *text, uint64_t *out)
{
	pb_snapshot_info_t *s = NULL;
	size_t n = 0, found = 0, len = strlen(text);
	int rc;

	*out = 0;
	if (len == 0 || len > 16 || (strcmp(text, "latest") != 0 && strspn(text, "0123456789abcdefABCDEF") != len))
		return pb_cli_usage(cli, "peerback: '%s' is not a snapshot id: give 'latest' or an id (or its first "
					 "digits) as peerback ls prints it", text);
	if ((rc = pb_phone_snapshots(phone, o, &s, &n)) != 0)
		return pb_cli_engine_error(cli, rc, "listing the snapshots");
	for (size_t i = 0; i < n; i++) {
		char hex[17];

		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)s[i].id);
		if (strcmp(text, "latest") == 0) {
			if (s[i].id > *out)
				*out = s[i].id;
			found = 1;
		} else if (strncasecmp(hex, text, len) == 0) {
			*out = s[i].id;
			found++;
		}
	}
	free(s);
	if (found == 0)
		return pb_cli_error(cli, PB_ESTORE_NOSNAP, "no snapshot %s on the host; peerback ls lists them", text);
	if (found > 1)
		return pb_cli_usage(cli, "peerback: %zu snapshots start with '%s'; give more digits", found, text);
	return 0;
}

/* Items as a list, for ls and diff. */
struct item {
	char *id, *path;
	uint32_t kind;
	uint64_t size;
	uint8_t hash[32];
};

struct items {
	struct item *v;
	size_t n, cap;
};

static int collect(void *arg, const pb_manifest_item_t *m)
{
	struct items *l = arg;
	struct item *it;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct item *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return PB_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	it = &l->v[l->n];
	it->id = strdup(m->id);
	it->path = strdup(m->path != NULL ? m->path : "");
	if (it->id == NULL || it->path == NULL) {
		free(it->id);
		free(it->path);
		return PB_ENOMEM;
	}
	it->kind = m->kind;
	it->size = m->size;
	memcpy(it->hash, m->hash, sizeof(it->hash));
	l->n++;
	return 0;
}

static void items_free(struct items *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].id);
		free(l->v[i].path);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->id, ((const struct item *)b)->id);
}

static int load_items(pb_cli_t *cli, pb_phone_t *phone, const pb_op_opts_t *o, struct items *l,
		      pb_op_result_t *res)
{
	int rc = pb_phone_items(phone, o, collect, l, res);

	if (rc != 0) {
		items_free(l);
		return pb_cli_engine_error(cli, rc, "reading the snapshot");
	}
	qsort(l->v, l->n, sizeof(*l->v), by_id);
	return 0;
}

static const char *kind_name(uint32_t k)
{
	return k <= PB_KIND_CONTACTS ? pb_kind_name((pb_kind_t)k) : "other";
}

int pb_cli_item_id(pb_cli_t *cli, pb_phone_t *phone, const pb_op_opts_t *o, const char *want, char *out,
		    size_t cap)
{
	struct items l = { 0 };
	size_t found = 0, wl = strlen(want);

	if (pb_phone_items(phone, o, collect, &l, NULL) != 0)
		return PB_ENOTFOUND;
	(void)cli;
	for (size_t i = 0; i < l.n; i++) {
		const char *id = l.v[i].id, *base = strrchr(id, '/');
		const char *dot;

		base = base != NULL ? base + 1 : id;
		dot = strrchr(base, '.');
		if (strcmp(base, want) == 0 ||
		    (dot != NULL && (size_t)(dot - base) == wl && strncmp(base, want, wl) == 0)) {
			snprintf(out, cap, "%s", id);
			found++;
		}
	}
	items_free(&l);
	return found == 1 ? 0 : found == 0 ? PB_ENOTFOUND : PB_EEXISTS;
}

static int list_snapshots(pb_cli_t *cli, pb_phone_t *phone, const pb_op_opts_t *o)
{
	pb_snapshot_info_t *s = NULL;
	size_t n = 0;
	int rc = pb_phone_snapshots(phone, o, &s, &n);

	if (rc != 0)
		return pb_cli_engine_error(cli, rc, "ls");
	for (size_t i = 0; i < n; i++) {
		char when[64], size[32], snap[17];
		time_t t = (time_t)s[i].time;
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
		pb_cli_human((double)s[i].size, size, sizeof(size));
		snprintf(snap, sizeof(snap), "%016llx", (unsigned long long)s[i].id);
		if (cli->json)
			(void)pb_cli_json("{s:s, s:I, s:I, s:I}", "snapshot", snap, "time", (json_int_t)s[i].time,
					     "size", (json_int_t)s[i].size, "chunks", (json_int_t)s[i].chunks);
		else
			printf("%s  %s UTC  %10s  %llu chunks\n", snap, when, size, (unsigned long long)s[i].chunks);
	}
	if (!cli->json)
		printf(n == 0 ? "no snapshots yet\n"
			      : "(peerback ls SNAPSHOT, or ls latest, lists a snapshot's items)\n");
	free(s);
	return 0;
}

static int list_items(pb_cli_t *cli, pb_phone_t *phone, const pb_op_opts_t *o)
{
	struct items l = { 0 };
	pb_op_result_t res;
	char snap[17];
	int rc;

	if ((rc = load_items(cli, phone, o, &l, &res)) != 0)
		return rc;
	snprintf(snap, sizeof(snap), "%016llx", (unsigned long long)res.snapshot);
	for (size_t i = 0; i < l.n; i++) {
		char size[32];

		if (cli->json) {
			(void)pb_cli_json("{s:s, s:s, s:o, s:I, s:o}", "snapshot", snap, "kind",
					     kind_name(l.v[i].kind), "id", pb_cli_text(l.v[i].id), "size",
					     (json_int_t)l.v[i].size, "path", pb_cli_text(l.v[i].path));
			continue;
		}
		pb_cli_human((double)l.v[i].size, size, sizeof(size));
		printf("%-11s  %-48s  %9s\n", kind_name(l.v[i].kind), l.v[i].id, size);
	}
	if (!cli->json)
		printf("%zu items in snapshot %s (restore one with peerback restore --id ID)\n", l.n, snap);
	items_free(&l);
	return 0;
}

static const char ls_usage[] =
	"usage: peerback ls [SNAPSHOT] [--host NAME] [--from DEVICE] [--json]\n\n"
	"Without SNAPSHOT, lists the snapshots the paired host holds for this phone\n"
	"(or for DEVICE: a device's name or the first digits of its id). With SNAPSHOT\n"
	"('latest', or an id or its first digits), lists its items: kind, id and\n"
	"size. The ids are what peerback restore --id takes.\n";

/* Options shared by ls and diff; the other words go to words[]. */
static int parse(pb_cli_t *cli, const char *cmd, int argc, char **argv, pb_op_opts_t *o, const char **words,
		 int max)
{
	int n = 0;

	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--host") == 0)
			o->host = cli->host = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--from") == 0)
			o->from_device = cli->from = argv[++i];
		else if (argv[i][0] != '-' && n < max)
			words[n++] = argv[i];
		else
			return -pb_cli_usage(cli, "peerback %s: unknown argument '%s'; see 'peerback %s --help'", cmd,
					     argv[i], cmd);
	}
	return n;
}

/* Items need the key: the phone's, or the passphrase on a new phone. */
static int with_key(pb_cli_t *cli, pb_op_opts_t *o, char *pass, size_t cap)
{
	int rc = pb_cli_recovery_passphrase(cli, false, pass, cap);

	o->passphrase = pass[0] ? pass : NULL;
	return rc;
}

/* The phone of the command's home. */
static int open_phone(pb_cli_t *cli, pb_phone_t **phone)
{
	int rc = pb_phone_open(cli->home, phone);

	return rc != 0 ? pb_cli_fail_err(cli, rc, "cannot open the phone's state in %s", cli->home) : 0;
}

int pb_cmd_ls(pb_cli_t *cli, int argc, char **argv)
{
	pb_op_opts_t o;
	pb_phone_t *phone;
	const char *words[1];
	char pass[1024] = "";
	int n, rc;

	if (pb_cli_wants_help(argc, argv)) {
		fputs(ls_usage, stdout);
		return 0;
	}
	if ((n = parse(cli, "ls", argc, argv, &o, words, 1)) < 0)
		return -n;
	if ((rc = open_phone(cli, &phone)) != 0)
		return rc;
	if (n == 0)
		rc = list_snapshots(cli, phone, &o);
	else if ((rc = with_key(cli, &o, pass, sizeof(pass))) == 0 &&
		 (rc = pb_cli_snapshot(cli, phone, &o, words[0], &o.snapshot)) == 0)
		rc = list_items(cli, phone, &o);
	sodium_memzero(pass, sizeof(pass));
	pb_phone_close(phone);
	return rc;
}

static void diff_line(pb_cli_t *cli, char op, const struct item *it)
{
	char size[32];

	if (cli->json) {
		(void)pb_cli_json("{s:s, s:s, s:o, s:I}", "change",
				     op == '+' ? "added" : op == '-' ? "removed" : "modified", "kind",
				     kind_name(it->kind), "id", pb_cli_text(it->id), "size", (json_int_t)it->size);
		return;
	}
	pb_cli_human((double)it->size, size, sizeof(size));
	printf("%c %-11s  %-48s  %9s\n", op, kind_name(it->kind), it->id, size);
}

int pb_cmd_diff(pb_cli_t *cli, int argc, char **argv)
{
	pb_op_opts_t o;
	pb_op_result_t res;
	pb_phone_t *phone = NULL;
	struct items a = { 0 }, b = { 0 };
	const char *words[2];
	char pass[1024];
	uint64_t snap_a, snap_b;
	size_t i = 0, j = 0, added = 0, removed = 0, modified = 0;
	int n, rc;

	if (pb_cli_wants_help(argc, argv)) {
		printf("usage: peerback diff SNAPSHOT1 SNAPSHOT2 [--host NAME] [--from DEVICE] [--json]\n\n"
		       "Lists the items added (+), removed (-) and modified (M) from SNAPSHOT1 to\n"
		       "SNAPSHOT2 ('latest', or ids or their first digits as peerback ls prints them).\n");
		return 0;
	}
	if ((n = parse(cli, "diff", argc, argv, &o, words, 2)) < 0)
		return -n;
	if (n != 2)
		return pb_cli_usage(cli, "peerback diff: give two snapshots; see 'peerback diff --help'");
	if ((rc = open_phone(cli, &phone)) != 0)
		return rc;
	if ((rc = with_key(cli, &o, pass, sizeof(pass))) != 0 ||
	    (rc = pb_cli_snapshot(cli, phone, &o, words[0], &snap_a)) != 0 ||
	    (rc = pb_cli_snapshot(cli, phone, &o, words[1], &snap_b)) != 0)
		goto out;
	o.snapshot = snap_a;
	if ((rc = load_items(cli, phone, &o, &a, &res)) != 0)
		goto out;
	o.snapshot = snap_b;
	if ((rc = load_items(cli, phone, &o, &b, &res)) != 0)
		goto out;
	while (i < a.n || j < b.n) {
		int c = i == a.n ? 1 : j == b.n ? -1 : strcmp(a.v[i].id, b.v[j].id);

		if (c < 0) {
			diff_line(cli, '-', &a.v[i++]);
			removed++;
		} else if (c > 0) {
			diff_line(cli, '+', &b.v[j++]);
			added++;
		} else {
			if (memcmp(a.v[i].hash, b.v[j].hash, 32) != 0) {
				diff_line(cli, 'M', &b.v[j]);
				modified++;
			}
			i++;
			j++;
		}
	}
	if (!cli->json)
		printf("%016llx -> %016llx: %zu added, %zu removed, %zu modified\n", (unsigned long long)snap_a,
		       (unsigned long long)snap_b, added, removed, modified);
out:
	sodium_memzero(pass, sizeof(pass));
	items_free(&a);
	items_free(&b);
	pb_phone_close(phone);
	return rc;
}
