/* peerback backup, restore, ls, verify: the phone's side of the job. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback.h"
#include "commands.h"

static void human(double bytes, char *out, size_t cap)
{
	const char *unit[] = { "B", "KB", "MB", "GB", "TB" };
	int u = 0;

	while (bytes >= 1000 && u < 4) {
		bytes /= 1000;
		u++;
	}
	snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
}

/* The progress of a run as the CLI shows it: the library tells every step,
 * the CLI draws at most ten times a second, and the last state once more
 * when the run is done. */
struct progress_view {
	pb_event_t ev;  /* a copy of the last progress event ... */
	char phase[16]; /* ... and of its phase */
	bool final;
};

struct progress_state {
	pb_cli_t *cli;
	double start;
	/* The rate counts from the first bytes moved: connecting and scanning
	 * before them would make the first estimate absurd. */
	double t0;
	uint64_t b0;
	bool moving;
	double shown;           /* when it was last drawn */
	unsigned skipped;       /* events since the clock was read */
	struct progress_view last;
};

/* Seconds of transfer, and the share done, before an estimate is shown. */
#define ETA_MIN_SECONDS 2.0
#define ETA_MIN_FRACTION 0.01

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_json(const struct progress_view *v)
{
	char *line = NULL;

	if (pb_event_json(&v->ev, &line) == 0) {
		printf("%s\n", line);
		fflush(stdout);
	}
	free(line);
}

/* A bar on a terminal, JSON lines with --json, nothing otherwise. */
static void show_progress(struct progress_state *ps, const struct progress_view *v)
{
	const pb_event_t *p = &v->ev;

	if (ps->cli->quiet)
		return;
	if (ps->cli->json) {
		progress_json(v);
		return;
	}
	if (!ps->cli->tty)
		return;
	if (!ps->moving && p->bytes_done > 0) {
		ps->moving = true;
		ps->t0 = mono();
		ps->b0 = p->bytes_done;
	}
	{
		char done[32], total[32], rate[32], eta[32];
		double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 0;
		double moving = ps->moving ? mono() - ps->t0 : 0;
		double r = moving > 0 ? (double)(p->bytes_done - ps->b0) / moving : 0;
		int left = r > 0 && p->bytes_total > p->bytes_done ? (int)((double)(p->bytes_total - p->bytes_done) / r)
								    : 0;
		int width = 24, fill;

		/* A finished run fills the bar, whatever its byte count (items
		 * already in place move no bytes). */
		if (v->final)
			frac = 1;
		fill = (int)(frac * width);
		if (v->final)
			snprintf(eta, sizeof(eta), "done");
		else if (moving < ETA_MIN_SECONDS || frac < ETA_MIN_FRACTION || r <= 0)
			snprintf(eta, sizeof(eta), "estimating");
		else
			snprintf(eta, sizeof(eta), "%d:%02d left", left / 60, left % 60);

		human((double)p->bytes_done, done, sizeof(done));
		human((double)p->bytes_total, total, sizeof(total));
		human(r, rate, sizeof(rate));
		fprintf(stderr, "\r%-7s [", p->phase);
		for (int i = 0; i < width; i++)
			fputc(i < fill ? '#' : '.', stderr);
		if (p->bytes_total)
			fprintf(stderr, "] %s / %s, %llu/%llu items, %s/s, %s   ", done, total,
				(unsigned long long)(v->final ? p->items_total : p->items_done),
				(unsigned long long)p->items_total, rate, eta);
		else
			fprintf(stderr, "] %s, %llu items, %s/s   ", done, (unsigned long long)p->items_done, rate);
		if (v->final)
			fputc('\n', stderr);
	}
}

static void note_progress(struct progress_state *ps, const pb_event_t *e)
{
	struct progress_view *v = &ps->last;
	const char *phase = e->phase != NULL ? e->phase : "";
	double t;

	/* The event's text is borrowed: the phase is kept, the rest dropped
	 * (a progress event has none). A backup tells each item done, a
	 * million of them for a chat store: the phase is copied when it
	 * changes and the clock read every 16th event. */
	v->ev = *e;
	if (strcmp(v->phase, phase) != 0) {
		snprintf(v->phase, sizeof(v->phase), "%s", phase);
		ps->skipped = 16;
	}
	v->ev.phase = v->phase;
	v->ev.name = "progress";
	v->ev.id = v->ev.path = v->ev.change = v->ev.op = v->ev.message = NULL;
	v->final = false;
	if (++ps->skipped < 16)
		return;
	ps->skipped = 0;
	t = mono();
	if (t - ps->shown < 0.1)
		return;
	ps->shown = t;
	show_progress(ps, v);
}

/* The run succeeded: its last state, drawn as final. */
static void final_progress(struct progress_state *ps)
{
	if (ps->last.phase[0] == 0)
		return;
	ps->last.final = true;
	show_progress(ps, &ps->last);
}

/* What a run's events go to. */
struct run {
	pb_cli_t *cli;
	const char *dev;
	struct progress_state ps;
};

/* A file the backup skipped: named with its line, as a JSON event too
 * (path relative to the device directory there). */
static void show_skip(const struct run *r, const char *path, uint64_t line, const char *why)
{
	pb_cli_t *cli = r->cli;

	if (cli->json) {
		(void)pb_cli_json("{s:s, s:o, s:I, s:o}", "event", "skipped", "path", pb_cli_text(path), "line",
				     (json_int_t)line, "error", pb_cli_text(why));
	}
	if (line > 0)
		fprintf(stderr, "peerback: %s/%s: line %llu: %s; skipped (its last backed-up version is kept)\n",
			r->dev, path, (unsigned long long)line, why);
	else
		fprintf(stderr, "peerback: %s/%s: %s; skipped (its last backed-up version is kept)\n", r->dev, path,
			why);
}

static void show_replaced(const struct run *r, const char *path)
{
	fprintf(stderr, "peerback: replaced before the failure: %s/%s\n", r->dev, path);
}

static void show_plan(pb_cli_t *cli, const char *id, const char *path, const char *change);

static int on_event(void *arg, const pb_event_t *e)
{
	struct run *r = arg;

	switch (e->type) {
	case PB_EVENT_PROGRESS:
		note_progress(&r->ps, e);
		break;
	case PB_EVENT_DONE:
		if (e->error == 0)
			final_progress(&r->ps);
		break;
	case PB_EVENT_WARNING:
		if (e->phase != NULL && strcmp(e->phase, "restore") == 0)
			show_replaced(r, e->path);
		else
			show_skip(r, e->path, e->line, e->message);
		break;
	case PB_EVENT_PLAN:
		show_plan(r->cli, e->id, e->path, e->change);
		break;
	case PB_EVENT_INSTRUCTION:
		pb_cli_instruction(r->cli, e->op, e->error, e->message);
		break;
	default:
		break;
	}
	return 0;
}

/* A run's options, its events told to r. */
static void run_opts(struct run *r, pb_cli_t *cli, const char *dev, pb_op_opts_t *o)
{
	memset(r, 0, sizeof(*r));
	r->cli = cli;
	r->dev = dev;
	r->ps.cli = cli;
	r->ps.start = mono();
	memset(o, 0, sizeof(*o));
	o->on_event = on_event;
	o->event_arg = r;
}

/* The phone of the command's home, its items in dev (may be NULL). */
static int open_phone(pb_cli_t *cli, const char *dev, pb_phone_t **phone)
{
	int rc = pb_phone_open(cli->home, phone);

	if (rc == 0 && dev != NULL && (rc = pb_phone_set_device_dir(*phone, dev)) != 0) {
		pb_phone_close(*phone);
		*phone = NULL;
	}
	return rc != 0 ? pb_cli_fail_err(cli, rc, "cannot open the phone's state in %s", cli->home) : 0;
}

/* The failures the phone itself can cause by its own disk: a full or
 * read-only file system, or a directory it may not write. */
static bool maybe_local(int rc)
{
	return rc == PB_ENOSPACE || rc == PB_EIO || rc == PB_ESTORE_CORRUPT || rc == PB_ESTORE_LOCKED ||
	       (rc < 0 && rc > -4096);
}

/* A connection that failed: the host did not answer, or refused. */
static bool connect_failure(int rc)
{
	return rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -EHOSTUNREACH || rc == -ENETUNREACH ||
	       rc == PB_ETIMEOUT || rc == PB_EPEER_CLOSED || rc == PB_ENOISE_HANDSHAKE;
}

static void host_label(const pb_host_info_t *h, char *out, size_t cap);

/* The paired host a command without a list of hosts used: --host, else
 * the most recently paired; its name and the address tried first. */
static void which_host(pb_cli_t *cli, char *out, size_t cap)
{
	pb_host_info_t *hosts = NULL;
	size_t n = 0;

	snprintf(out, cap, "%s", cli->host != NULL ? cli->host : "(the paired host)");
	if (pb_cli_hosts(cli, &hosts, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const char *key = hosts[i].key;

		if (cli->host == NULL || strcmp(cli->host, hosts[i].name) == 0 ||
		    (strlen(cli->host) >= 6 && strncmp(key, cli->host, strlen(cli->host)) == 0)) {
			host_label(&hosts[i], out, cap);
			break;
		}
	}
	free(hosts);
}

static int engine_error_at(pb_cli_t *cli, int rc, const char *what, const char *local)
{
	char why[8400];

	/* A failure of the phone's own disk names the phone and its path:
	 * it is never blamed on the host. */
	if (maybe_local(rc) && (pb_cli_local_fault(cli->home, why, sizeof(why)) ||
				(local != NULL && pb_cli_local_fault(local, why, sizeof(why)))))
		return pb_cli_error(cli, rc, "%s failed on the phone: %s (%s)", what, why, pb_strerror(rc));
	switch (rc) {
	case PB_EACCT_NOT_PAIRED:
		return pb_cli_error(cli, rc, "this phone is not paired with a host; run peerback pair first");
	case PB_ESTORE_NOMASTER:
		return pb_cli_error(cli, rc, "%s needs the recovery passphrase: set PEERBACK_RECOVERY_PASSPHRASE, "
					     "pass --passphrase-file or --passphrase-command, or run on a terminal",
				    what);
	case PB_ESTORE_PASSPHRASE:
		if (strncmp(what, "backup", 6) == 0)
			return pb_cli_error(cli, rc, "wrong recovery passphrase%s%s%s: it does not open the key this "
						     "account's other devices use (every device of an account uses the "
						     "one recovery passphrase); nothing was sent",
					    cli->pass_source ? " (from " : "", cli->pass_source ? cli->pass_source : "",
					    cli->pass_source ? ")" : "");
		return pb_cli_error(cli, rc, "wrong recovery passphrase%s%s%s; nothing was written",
				    cli->pass_source ? " (from " : "", cli->pass_source ? cli->pass_source : "",
				    cli->pass_source ? ")" : "");
	case PB_ESTORE_WRONG_KEY:
		return pb_cli_error(cli, rc, "%s failed: wrong key: this backup was made with another master key than "
					     "this phone's; give the account's recovery passphrase "
					     "(PEERBACK_RECOVERY_PASSPHRASE, --passphrase-file or --passphrase-command) to "
					     "open it", what);
	case PB_ESTORE_WEAKPASS:
		return pb_cli_error(cli, rc, "%s failed: %s (a few words are easy to remember); nothing was set", what,
				    pb_strerror(rc));
	case PB_ESTORE_NOSNAP:
		return pb_cli_error(cli, rc, "no backup found: the host holds no backup of this account yet; run "
					     "peerback backup first");
	case PB_ENOSPACE:
		return pb_cli_error(cli, rc, "%s failed: the host's disk is full; nothing unacknowledged is counted as "
					     "backed up (free space on the host and run it again to resume)", what);
	default:
		if (connect_failure(rc)) {
			char label[256];

			if (cli->host_named)
				return pb_cli_error(cli, rc, "%s failed: the host did not answer or refused the "
							     "connection: %s (is peerback host running there?)", what,
						    pb_strerror(rc));
			which_host(cli, label, sizeof(label));
			return pb_cli_error(cli, rc, "%s failed: the host %s did not answer or refused the connection: "
						     "%s (is peerback host running there?)",
					    what, label, pb_strerror(rc));
		}
		if (rc < 0 && rc > -4096)
			return pb_cli_error(cli, rc, "%s failed on the phone (state in %s): %s", what, cli->home,
					    pb_strerror(rc));
		return pb_cli_fail_err(cli, rc, "%s failed", what);
	}
}

static int engine_error(pb_cli_t *cli, int rc, const char *what)
{
	return engine_error_at(cli, rc, what, NULL);
}

int pb_cli_engine_error(pb_cli_t *cli, int rc, const char *what)
{
	if (rc == PB_ENOTFOUND && cli->from != NULL)
		return pb_cli_error(cli, rc, "no device named '%s', nor one whose id starts with it, has a backup on "
					     "the host; see peerback ls", cli->from);
	if (rc == PB_EEXISTS && cli->from != NULL)
		return pb_cli_usage(cli, "peerback: '%s' names more than one device; give more of its id", cli->from);
	return engine_error_at(cli, rc, what, NULL);
}

/* The host's latest snapshot is older than one this phone completed there. */
static int rollback_error(pb_cli_t *cli, const pb_op_result_t *res, const char *what)
{
	if (res->snapshot == 0)
		return pb_cli_fail(cli, "%s refused: the host holds no snapshot of this phone, but this phone completed "
					"snapshot %016llx there; the host lost or withholds it. Nothing was written.",
				   what, (unsigned long long)res->snapshot_known);
	return pb_cli_fail(cli, "%s refused: the host's latest snapshot of this phone is %016llx, older than snapshot "
				"%016llx, the last backup this phone completed there; the host lost or withholds the "
				"newer one. Nothing was written. To use the older snapshot anyway, run it again with "
				"--snapshot %016llx",
			   what, (unsigned long long)res->snapshot, (unsigned long long)res->snapshot_known,
			   (unsigned long long)res->snapshot);
}

/* A restore that failed: what it did to the target, then why. */
static int restore_error(pb_cli_t *cli, const pb_op_result_t *res, int rc, const char *dev)
{
	if (rc == PB_EDATA_LINK && res->link[0])
		return pb_cli_fail(cli, "%s/%s is a symbolic link; restore does not write through links and wrote "
					"nothing (remove the link, or restore --to another folder)", dev, res->link);
	if (res->replaced > 0)
		fprintf(stderr, "peerback: the restore stopped after replacing the %llu file%s listed above; the rest "
				"of %s is as it was\n", (unsigned long long)res->replaced, res->replaced == 1 ? "" : "s",
			dev);
	else if (rc != PB_ESTORE_ROLLBACK && rc != PB_ESTORE_PASSPHRASE)
		fprintf(stderr, "peerback: nothing was written to %s\n", dev);
	return engine_error_at(cli, rc, "restore", dev);
}

static int device_dir(pb_cli_t *cli, const char *given, char *out, size_t cap)
{
	int n = given != NULL ? snprintf(out, cap, "%s", given) : snprintf(out, cap, "%s/device", cli->home);

	return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
}

/* One paired host as messages name it: "desk (192.0.2.7:4000)". */
static void host_label(const pb_host_info_t *h, char *out, size_t cap)
{
	const char *addr = h->naddrs > 0 ? h->addrs[0] : "";

	snprintf(out, cap, "%s%s%s%s", h->name[0] ? h->name : "(unnamed host)", addr[0] ? " (" : "", addr,
		 addr[0] ? ")" : "");
}

/* The paired hosts a backup goes to: every one, or those --host names
 * (a name or a key prefix). Returns the count, or an exit status < 0. */
static int backup_hosts(pb_cli_t *cli, const char *which, pb_host_info_t **out)
{
	pb_host_info_t *hosts = NULL;
	size_t n = 0;
	int rc = pb_cli_hosts(cli, &hosts, &n), m = 0;

	*out = NULL;
	if (rc != 0)
		return -pb_cli_fail_err(cli, rc, "cannot read the paired hosts in %s/hosts.json", cli->home);
	*out = hosts;
	if (n == 0)
		return -engine_error(cli, PB_EACCT_NOT_PAIRED, "backup");
	for (size_t i = 0; i < n; i++) {
		const char *key = hosts[i].key;

		if (which == NULL || strcmp(which, hosts[i].name) == 0 ||
		    (strlen(which) >= 6 && strncmp(key, which, strlen(which)) == 0))
			hosts[m++] = hosts[i];
	}
	if (m == 0)
		return -pb_cli_usage(cli, "peerback backup: no paired host is named '%s'; see peerback devices", which);
	return m;
}

static void backup_done(pb_cli_t *cli, const char *name, const pb_op_result_t *res, bool dry_run)
{
	char sent[32], total[32], snap[17];

	snprintf(snap, sizeof(snap), "%016llx", (unsigned long long)res->snapshot);
	if (dry_run) {
		/* What a backup would do: chunks_sent and bytes_sent are what
		 * it would send (nothing was). */
		human((double)res->bytes_sent, sent, sizeof(sent));
		if (cli->json)
			(void)pb_cli_json("{s:s, s:b, s:o, s:I, s:I, s:I, s:I, s:I}", "event", "backup-done", "dry_run",
					     1, "host", pb_cli_text(name), "items", (json_int_t)res->items, "bytes",
					     (json_int_t)res->bytes, "items_changed", (json_int_t)res->items_changed,
					     "chunks_sent", (json_int_t)res->chunks_sent, "bytes_sent",
					     (json_int_t)res->bytes_sent);
		else
			printf("%s: dry run: %llu items, %llu changed; would send %llu chunks (%s); sent nothing\n", name,
			       (unsigned long long)res->items, (unsigned long long)res->items_changed,
			       (unsigned long long)res->chunks_sent, sent);
		fflush(stdout);
		return;
	}
	if (cli->json) {
		(void)pb_cli_json("{s:s, s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:b, s:I, s:I, s:I, s:I, s:I}",
				     "event", "backup-done", "host", pb_cli_text(name), "snapshot", snap, "items",
				     (json_int_t)res->items, "bytes", (json_int_t)res->bytes, "items_changed",
				     (json_int_t)res->items_changed, "chunks_sent", (json_int_t)res->chunks_sent,
				     "bytes_sent", (json_int_t)res->bytes_sent, "chunks", (json_int_t)res->chunks_total,
				     "seconds", pb_cli_milli(res->seconds), "partial", res->skipped > 0, "skipped",
				     (json_int_t)res->skipped, "items_kept", (json_int_t)res->items_kept,
				     "items_carried", (json_int_t)res->items_carried, "files_read",
				     (json_int_t)res->files_read, "files_skipped", (json_int_t)res->files_skipped);
		return;
	}
	human((double)res->bytes_sent, sent, sizeof(sent));
	human((double)res->bytes, total, sizeof(total));
	printf("%s: backed up %llu items (%s), %llu changed; sent %llu chunks (%s) in %.1f s; snapshot %s\n", name,
	       (unsigned long long)res->items, total, (unsigned long long)res->items_changed,
	       (unsigned long long)res->chunks_sent, sent, res->seconds, snap);
	if (res->items_carried > 0)
		printf("%s: the other kinds' %llu items were kept from the previous snapshot\n", name,
		       (unsigned long long)res->items_carried);
	fflush(stdout);
}

int pb_cmd_backup(pb_cli_t *cli, int argc, char **argv)
{
	pb_op_opts_t o;
	pb_op_result_t res;
	struct run run;
	pb_phone_t *phone;
	pb_host_info_t *hosts = NULL;
	char dev[4096], pass[1024];
	const char *given = NULL, *which = NULL;
	int rc, nhosts, done = 0, failed = 0, status = 0;
	bool skipped = false;

	if (pb_cli_wants_help(argc, argv)) {
		printf("usage: peerback backup [--device DIR] [--host NAME] [--kind KIND] [--dry-run] [--json]\n\n"
		       "Backs the phone's data (default HOME/device) up to every paired host that\n"
		       "answers (or only to --host NAME, a host's name or key prefix as peerback\n"
		       "devices shows), encrypted so that the hosts cannot read it, and reports\n"
		       "each host. Unchanged items cost nothing; an interrupted backup resumes\n"
		       "where it stopped when run again. It reports done only after the host has\n"
		       "committed the snapshot. The first backup sets the recovery passphrase\n"
		       "(PEERBACK_RECOVERY_PASSPHRASE, --passphrase-file, --passphrase-command, or\n"
		       "a prompt that asks twice), which a new phone needs to restore: at least 12\n"
		       "characters, at least 5 of them different. Later backups need none; one\n"
		       "given anyway is checked.\n\n"
		       "A file that does not parse (a truncated contacts.vcf, say) is named with its\n"
		       "line and skipped; its last backed-up version stays in the snapshot and\n"
		       "everything else is backed up. --json then prints a \"skipped\" event per\n"
		       "file and \"partial\":true in backup-done.\n\n"
		       "--kind KIND (repeatable) reads only those kinds; the snapshot still holds\n"
		       "every kind, the others as the previous snapshot had them, so the latest\n"
		       "snapshot is always the whole phone.\n\n"
		       "--dry-run scans the device and asks each host which chunks it lacks, then\n"
		       "reports how many items changed and what would be sent; it sends nothing,\n"
		       "makes no snapshot and records nothing.\n\n"
		       "Exit status: 0 backed up to every host; 3 partial (files skipped, or a host\n"
		       "did not answer: each is named); 1 failed (nothing new counts as backed up);\n"
		       "2 usage error; 12 wrong recovery passphrase.\n");
		return 0;
	}
	/* Chunks of up to 4 MiB, copied, sealed and sent, come and go: kept
	 * in the heap. Free memory at its top is given back beyond 4 MiB, not
	 * 32: with the chat parser's and the sealing threads' arenas, 32 MiB
	 * held back each put the million-message store's peak at 74-94 MiB
	 * (64 MiB with 4), for no CPU measured. */
	pb_cli_keep_heap(8u << 20, 4u << 20);
	run_opts(&run, cli, dev, &o);
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--device") == 0) {
			given = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--host") == 0) {
			which = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--kind") == 0) {
			pb_kind_t k;
			if (pb_kind_parse(argv[++i], &k) != 0)
				return pb_cli_usage(cli, "peerback backup: unknown kind '%s' (credentials mifare sim "
							 "chat contacts)",
						    argv[i]);
			o.kind_mask |= 1u << k;
		} else if (strcmp(argv[i], "--dry-run") == 0) {
			o.dry_run = true;
		} else {
			return pb_cli_usage(cli, "peerback backup: unknown argument '%s'", argv[i]);
		}
	}
	if ((rc = device_dir(cli, given, dev, sizeof(dev))) != 0)
		return pb_cli_fail(cli, "--device path is too long");
	if (access(dev, R_OK) != 0)
		return pb_cli_error(cli, -errno, "no device directory at %s on the phone: %s (pass --device DIR, or "
						 "peerback gen / import)", dev, strerror(errno));
	if ((nhosts = backup_hosts(cli, which, &hosts)) < 0) {
		free(hosts);
		return -nhosts;
	}
	if ((rc = pb_cli_recovery_passphrase(cli, true, pass, sizeof(pass))) != 0) {
		free(hosts);
		return rc;
	}
	if ((rc = open_phone(cli, dev, &phone)) != 0) {
		sodium_memzero(pass, sizeof(pass));
		free(hosts);
		return rc;
	}
	o.passphrase = pass[0] ? pass : NULL;
	o.weak_kdf = pb_cli_wrap_params() != NULL;
	/* Each paired host gets the backup: a phone paired with a second host
	 * must not silently stop backing up to the first. A host that does not
	 * answer is named and the others still get it. */
	for (int h = 0; h < nhosts; h++) {
		const char *key = hosts[h].key;
		char label[256], what[300];

		host_label(&hosts[h], label, sizeof(label));
		o.host = key;
		memset(&run.ps, 0, sizeof(run.ps));
		run.ps.cli = cli;
		run.ps.start = mono();
		rc = pb_phone_backup(phone, &o, &res);
		if (rc != 0 && res.bad_path[0])
			fprintf(stderr, "peerback: %s/%s: %s\n", dev, res.bad_path, pb_strerror(rc));
		if (rc != 0) {
			snprintf(what, sizeof(what), "backup to host %s", label);
			cli->host_named = true;
			status = engine_error(cli, rc, what);
			cli->host_named = false;
			failed++;
			/* The phone's own fault, or a wrong passphrase, fails for
			 * every host alike. */
			if (rc == PB_ESTORE_PASSPHRASE || rc == PB_ESTORE_WEAKPASS || rc == PB_ESTORE_NOMASTER ||
			    status == PB_EXIT_PASSPHRASE)
				break;
			continue;
		}
		done++;
		backup_done(cli, hosts[h].name[0] ? hosts[h].name : key, &res, o.dry_run);
		if (res.skipped > 0) {
			skipped = true;
			fprintf(stderr, "peerback: partial backup: %llu file%s could not be read and %s skipped (see "
					"above)\n", (unsigned long long)res.skipped, res.skipped == 1 ? "" : "s",
				res.skipped == 1 ? "was" : "were");
		}
	}
	sodium_memzero(pass, sizeof(pass));
	pb_phone_close(phone);
	free(hosts);
	if (done == 0)
		return status != 0 ? status : PB_EXIT_FAIL;
	if (failed > 0) {
		fprintf(stderr, "peerback: partial backup: %d of %d paired hosts did not get it (named above); run it "
				"again when they answer\n", failed, done + failed);
		return PB_EXIT_PARTIAL;
	}
	return skipped ? PB_EXIT_PARTIAL : 0;
}

/* restore --dry-run: one line per item that would change (JSON: every
 * item). */
static void show_plan(pb_cli_t *cli, const char *id, const char *path, const char *change)
{
	if (cli->json)
		(void)pb_cli_json("{s:s, s:o, s:o, s:s}", "event", "restore-plan", "id", pb_cli_text(id), "path",
				     pb_cli_text(path), "change", change);
	else if (strcmp(change, "unchanged") != 0)
		printf("%-9s %s  (%s)\n", change, id, path);
}

/* What a restore that found nothing was asked for. */
static int not_found(pb_cli_t *cli, const pb_op_opts_t *o, const pb_op_result_t *res)
{
	char kinds[128] = "";

	if (o->item_id != NULL)
		(void)pb_cli_fail(cli, "no backup found: no item '%s' in snapshot %016llx (see peerback ls); wrote "
				       "nothing", o->item_id, (unsigned long long)res->snapshot);
	else if (o->kind_mask != 0) {
		for (int k = PB_KIND_CREDENTIAL; k <= PB_KIND_CONTACTS; k++)
			if (o->kind_mask & (1u << k))
				snprintf(kinds + strlen(kinds), sizeof(kinds) - strlen(kinds), "%s%s", kinds[0] ? ", " : "",
					 pb_kind_name((pb_kind_t)k));
		(void)pb_cli_fail(cli, "no backup found: snapshot %016llx holds no %s items; restored 0 items, wrote "
				       "nothing", (unsigned long long)res->snapshot, kinds);
	} else
		(void)pb_cli_fail(cli, "no backup found: snapshot %016llx holds no items; wrote nothing",
				  (unsigned long long)res->snapshot);
	return PB_EXIT_NOBACKUP;
}

int pb_cmd_restore(pb_cli_t *cli, int argc, char **argv)
{
	pb_op_opts_t o;
	pb_op_result_t res;
	struct run run;
	pb_phone_t *phone;
	char dev[4096], pass[1024], total[32], item[PB_ITEM_ID_MAX + 1];
	const char *given = NULL, *snap_text = NULL;
	int rc;

	if (pb_cli_wants_help(argc, argv)) {
		printf("usage: peerback restore [--to DIR] [--kind KIND] [--id ID] [--snapshot ID]\n"
		       "                        [--from DEVICE] [--host NAME] [--dry-run] [--json]\n\n"
		       "Restores the latest backup (or --snapshot) into DIR (default HOME/device):\n"
		       "everything, one KIND (credentials mifare sim chat contacts), or one item by ID\n"
		       "(chat/42 restores a chat with its messages and files). Files are written\n"
		       "atomically; items already in DIR are merged by id (a contact by its UID, a\n"
		       "message by its message id): an item DIR lacks is added in its place, one it\n"
		       "holds is replaced, nothing is duplicated. --dry-run writes nothing and lists\n"
		       "what would change (added, replaced; --json: every item, unchanged too).\n"
		       "A new phone restores the account's most recent backup (or --from DEVICE)\n"
		       "with the recovery passphrase (PEERBACK_RECOVERY_PASSPHRASE, or a prompt);\n"
		       "restoring from another device never replaces this phone's key.\n\n"
		       "A host whose latest snapshot of this phone is older than the last backup this\n"
		       "phone completed there has lost or withholds the newer one: restore then stops\n"
		       "and names both; --snapshot ID restores the older one deliberately.\n\n"
		       "Exit status: 0 restored; 10 no backup found (no snapshot, or none of the\n"
		       "asked kind or id in it: nothing was written); 1 failed; 2 usage error.\n");
		return 0;
	}
	/* A full restore's chunks of up to 4 MiB (sealed, reassembled,
	 * opened) come and go on several threads: glibc's own thresholds let
	 * it give their pages back and fault them in again (70,000-118,000
	 * faults for the standard dataset, 12,000 kept in the heap). 16 MiB
	 * free at a heap's top are kept, not 4: below the largest chunks, 4
	 * made it worse (docs/BENCH.md). */
	pb_cli_keep_heap(8u << 20, 16u << 20);
	run_opts(&run, cli, dev, &o);
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--to") == 0) {
			given = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--host") == 0) {
			o.host = cli->host = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--id") == 0) {
			o.item_id = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--from") == 0) {
			o.from_device = cli->from = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--snapshot") == 0) {
			snap_text = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--kind") == 0) {
			pb_kind_t k;
			if (pb_kind_parse(argv[++i], &k) != 0)
				return pb_cli_fail(cli, "unknown kind '%s' (credentials mifare sim chat contacts)", argv[i]);
			o.kind_mask |= 1u << k;
		} else if (strcmp(argv[i], "--dry-run") == 0) {
			o.dry_run = true;
		} else if (strcmp(argv[i], "--json") == 0) {
			cli->json = true;
		} else {
			return pb_cli_usage(cli, "peerback restore: unknown argument '%s'", argv[i]);
		}
	}
	if ((rc = device_dir(cli, given, dev, sizeof(dev))) != 0)
		return pb_cli_fail(cli, "--to path is too long");
	if ((rc = pb_cli_recovery_passphrase(cli, false, pass, sizeof(pass))) != 0)
		return rc;
	if ((rc = open_phone(cli, dev, &phone)) != 0) {
		sodium_memzero(pass, sizeof(pass));
		return rc;
	}
	o.passphrase = pass[0] ? pass : NULL;
	if (snap_text != NULL && (rc = pb_cli_snapshot(cli, phone, &o, snap_text, &o.snapshot)) != 0) {
		sodium_memzero(pass, sizeof(pass));
		pb_phone_close(phone);
		return rc;
	}
	rc = pb_phone_restore(phone, &o, &res);
	/* An id as ls shows it always works; a short one (payment-003 for
	 * credentials/payment-003.json) when it names one item. */
	if (rc == PB_ENOTFOUND && o.item_id != NULL &&
	    pb_cli_item_id(cli, phone, &o, o.item_id, item, sizeof(item)) == 0) {
		pb_cli_note(cli, "restoring %s", item);
		o.item_id = item;
		rc = pb_phone_restore(phone, &o, &res);
	}
	sodium_memzero(pass, sizeof(pass));
	pb_phone_close(phone);
	if (rc == PB_ENOTFOUND)
		return not_found(cli, &o, &res);
	if (rc == PB_ESTORE_ROLLBACK)
		return rollback_error(cli, &res, "restore");
	if (rc != 0)
		return restore_error(cli, &res, rc, dev);
	human((double)res.bytes, total, sizeof(total));
	if (o.dry_run) {
		char snap[17];

		snprintf(snap, sizeof(snap), "%016llx", (unsigned long long)res.snapshot);
		if (cli->json)
			(void)pb_cli_json("{s:s, s:b, s:s, s:o, s:I, s:I, s:I}", "event", "restore-done", "dry_run", 1,
					     "snapshot", snap, "device", pb_cli_text(res.device), "added",
					     (json_int_t)res.added, "replaced", (json_int_t)res.changed, "unchanged",
					     (json_int_t)res.unchanged);
		else
			printf("dry run: restoring snapshot %s into %s would add %llu items, replace %llu and leave %llu "
			       "unchanged; nothing was written\n",
			       snap, dev, (unsigned long long)res.added, (unsigned long long)res.changed,
			       (unsigned long long)res.unchanged);
		return 0;
	}
	if (cli->json) {
		char snap[17];

		snprintf(snap, sizeof(snap), "%016llx", (unsigned long long)res.snapshot);
		(void)pb_cli_json("{s:s, s:s, s:o, s:I, s:I, s:I, s:s, s:f}", "event", "restore-done", "snapshot",
				     snap, "device", pb_cli_text(res.device), "items", (json_int_t)res.items, "bytes",
				     (json_int_t)res.bytes, "chunks_resumed", (json_int_t)res.chunks_cached, "lookup",
				     res.by_state ? "state" : res.by_index ? "index" : "manifest", "seconds", pb_cli_milli(res.seconds));
	} else
		printf("restored %llu items (%s) from snapshot %016llx into %s in %.1f s\n",
		       (unsigned long long)res.items, total, (unsigned long long)res.snapshot, dev, res.seconds);
	return 0;
}

int pb_cmd_verify(pb_cli_t *cli, int argc, char **argv)
{
	pb_op_opts_t o;
	pb_op_result_t res;
	struct run run;
	pb_phone_t *phone;
	char pass[1024], total[32];
	int rc;

	if (pb_cli_wants_help(argc, argv)) {
		printf("usage: peerback verify [--host NAME] [--json]\n\n"
		       "Fetches and decrypts every item of the latest backup and checks it against\n"
		       "the content hash recorded when it was backed up. (peerback host verify checks\n"
		       "the host's store without keys.)\n");
		return 0;
	}
	run_opts(&run, cli, NULL, &o);
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--host") == 0)
			o.host = cli->host = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			cli->json = true;
		else {
			return pb_cli_usage(cli, "peerback verify: unknown argument '%s'", argv[i]);
		}
	}
	if ((rc = pb_cli_recovery_passphrase(cli, false, pass, sizeof(pass))) != 0)
		return rc;
	if ((rc = open_phone(cli, NULL, &phone)) != 0) {
		sodium_memzero(pass, sizeof(pass));
		return rc;
	}
	o.passphrase = pass[0] ? pass : NULL;
	rc = pb_phone_verify(phone, &o, &res);
	sodium_memzero(pass, sizeof(pass));
	pb_phone_close(phone);
	if (cli->json) {
		char snap[17];

		snprintf(snap, sizeof(snap), "%016llx", (unsigned long long)res.snapshot);
		(void)pb_cli_json("{s:s, s:s, s:I, s:I, s:I, s:b}", "event", "verify-done", "snapshot", snap,
				     "items", (json_int_t)res.items, "bad_items", (json_int_t)res.bad_items, "bytes",
				     (json_int_t)res.bytes, "ok", rc == 0);
	}
	if (rc == PB_ESTORE_ROLLBACK)
		return rollback_error(cli, &res, "verify");
	if (rc == PB_ESTORE_VERIFY)
		return pb_cli_fail(cli, "%llu of %llu items do not match their backup", (unsigned long long)res.bad_items,
				   (unsigned long long)(res.items));
	if (rc != 0)
		return engine_error(cli, rc, "verify");
	if (!cli->json) {
		human((double)res.bytes, total, sizeof(total));
		printf("verified %llu items (%s) of snapshot %016llx: all match\n", (unsigned long long)res.items,
		       total, (unsigned long long)res.snapshot);
	}
	return 0;
}
