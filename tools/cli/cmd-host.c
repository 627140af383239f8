/* peerback host: run the backup host, or manage its paired devices. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "peerback.h"
#include "peerback/host.h"
#include "cli.h"
#include "commands.h"

static const char usage_text[] =
	"usage: peerback host [--listen ADDR:PORT] [--json] [--qr-png FILE] [--qr-svg FILE]\n"
	"                     [--qr-ttl SECONDS] [--no-qr] [--dark-blocks] [--max-failures N]\n"
	"                     [--announce-interval SECONDS] [--no-announce]\n"
	"                     [--auth-timeout SECONDS] [--idle-timeout SECONDS]\n"
	"                     [--max-connections N] [--max-per-address N]\n"
	"       peerback host devices\n"
	"       peerback host revoke DEVICE\n"
	"       peerback host quota DEVICE [SIZE|default]\n"
	"       peerback host verify [--json]\n"
	"       peerback host prune [--keep-last N] [--keep-daily N] [--keep-weekly N]\n"
	"                           [--keep-monthly N] [--dry-run]\n"
	"       peerback host instruct DEVICE delete-vsim ICCID\n"
	"       peerback host instruct DEVICE copy-vsim ICCID --to DEVICE\n"
	"       peerback host instructions\n"
	"\n"
	"Runs the backup host until interrupted: listens on every interface, on the\n"
	"port it had last time (kept in HOME/host.port, so that paired phones find it;\n"
	"a free one the first time), or on ADDR:PORT (port 0 picks a free one); shows\n"
	"a one-time pairing QR code that\n"
	"expires after --qr-ttl seconds (default 300), and shows a new one after each\n"
	"pairing, on expiry, and on SIGUSR1. This device must be logged in\n"
	"(peerback account login).\n"
	"\n"
	"  --json         one JSON object per event on stdout\n"
	"  --qr-png FILE  also write each QR code as a PNG image\n"
	"  --qr-svg FILE  also write each QR code as an SVG image\n"
	"  --no-qr        print the pairing URI without the terminal QR code\n"
	"  --dark-blocks  draw dark modules (for light terminals and paper)\n"
	"  --max-failures N  failed attempts an address may make in a minute before\n"
	"                 it is refused (default 5)\n"
	"  --announce-interval SECONDS  how often the host announces its addresses\n"
	"                 to the phones on its LAN (UDP broadcast, port 7451, signed;\n"
	"                 default 5)\n"
	"  --no-announce  do not announce on the LAN\n"
	"  --auth-timeout SECONDS  a connection must authenticate within this time\n"
	"                 of connecting, or is closed (default 10)\n"
	"  --idle-timeout SECONDS  an authenticated connection silent this long is\n"
	"                 closed (default 120)\n"
	"  --max-connections N  connections held at once (default 256); when full,\n"
	"                 the oldest not yet authenticated makes room\n"
	"  --max-per-address N  connections held at once from one address (default 32)\n"
	"\n"
	"devices  lists the phones paired with this host\n"
	"revoke   ends a pairing; DEVICE is a device id (or 8+ hex digits of it) or a name\n"
	"quota    shows or sets how much a phone may store on this host: SIZE in bytes or\n"
	"         with K, M, G or T (powers of 1024); default 64G. A phone over its quota\n"
	"         is refused with a clear error, others are not affected. It applies from\n"
	"         the phone's next connection\n"
	"verify   checks every chunk of the host's store against its hash, without keys\n"
	"         (also while the host runs: it reads the store without locking it)\n"
	"prune    per phone, keeps the N newest snapshots (--keep-last, default 7 when no\n"
	"         rule is given) and the newest of each of the last N days, weeks and\n"
	"         months that have one (--keep-daily/-weekly/-monthly; the union of the\n"
	"         rules, and always the newest), drops the others and frees the chunks no\n"
	"         kept snapshot needs. --dry-run lists what it would keep and remove and\n"
	"         what it would free, and changes nothing. While the host runs, the\n"
	"         running host prunes on request (HOME/control.sock)\n"
	"instruct queues an instruction for a paired phone, carried out at its next\n"
	"         connection: delete a virtual SIM (a lost phone), or copy one to another\n"
	"         phone of the account or of a linked sub-account (sealed to that phone)\n"
	"instructions  lists queued and finished instructions with their results\n";

/* A whole number from lo to hi, or -1. */
static long long number(const char *text, long long lo, long long hi)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != 0 || v < lo || v > hi)
		return -1;
	return v;
}

/* One paired device; with_quota for the listing, which shows quotas. */
static void print_device(const pb_cli_t *cli, const pb_host_device_t *d, bool with_quota)
{
	if (cli->json) {
		if (with_quota)
			(void)pb_cli_json("{s:s, s:s, s:s, s:I, s:I, s:b, s:I}", "device", d->device, "name", d->name,
					  "account", d->account, "paired_at", (json_int_t)d->paired_at, "last_seen",
					  (json_int_t)d->last_seen, "revoked", (int)d->revoked, "quota",
					  (json_int_t)d->quota);
		else
			(void)pb_cli_json("{s:s, s:s, s:s, s:I, s:I, s:b}", "device", d->device, "name", d->name,
					  "account", d->account, "paired_at", (json_int_t)d->paired_at, "last_seen",
					  (json_int_t)d->last_seen, "revoked", (int)d->revoked);
	} else
		printf("%s  %-20s %-20s%s\n", d->device, d->name, d->account, d->revoked ? "  (revoked)" : "");
}

static int list_device(void *arg, const pb_host_device_t *d)
{
	print_device(arg, d, true);
	return 0;
}

/* The message for a device that could not be found as the user named it;
 * returns the exit status. */
static int no_device(pb_cli_t *cli, int rc, const char *which, const char *what)
{
	if (rc == PB_ENOTFOUND)
		return pb_cli_fail(cli, "no paired device matches '%s'; see peerback host devices", which);
	if (rc == PB_EEXISTS)
		return pb_cli_fail(cli, "several devices match '%s'; give the full device id", which);
	return pb_cli_fail_err(cli, rc, "%s", what);
}

/* A size: bytes, or a number with K, M, G or T (powers of 1024). */
static int parse_size(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (text[0] < '0' || text[0] > '9')
		return PB_EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0)
		return PB_EINVAL;
	switch (*end) {
	case 0:
		break;
	case 'K': case 'k':
		shift = 10;
		break;
	case 'M': case 'm':
		shift = 20;
		break;
	case 'G': case 'g':
		shift = 30;
		break;
	case 'T': case 't':
		shift = 40;
		break;
	default:
		return PB_EINVAL;
	}
	if (*end != 0 && end[1] != 0 && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
		return PB_EINVAL;
	if (v > (unsigned long long)(INT64_MAX >> shift))
		return PB_EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int host_quota(pb_cli_t *cli, int argc, char **argv)
{
	pb_host_t *h;
	pb_host_device_t d;
	uint64_t bytes = 0;
	bool reset = false;
	int rc;

	if (argc != 2 && argc != 3) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (argc == 3) {
		reset = strcmp(argv[2], "default") == 0;
		if (!reset && parse_size(argv[2], &bytes) != 0)
			return pb_cli_fail(cli, "'%s' is not a size; give bytes, or a number with K, M, G or T "
						"(e.g. 16G), or default", argv[2]);
		if (!reset && bytes == 0)
			return pb_cli_fail(cli, "a quota of 0 would refuse every backup; to end a pairing use "
						"peerback host revoke");
	}
	if ((rc = pb_host_open(cli->home, &h)) != 0)
		return pb_cli_fail_err(cli, rc, "host state in %s", cli->home);
	rc = argc == 3 ? pb_host_set_quota(h, argv[1], bytes, reset, &d) : pb_host_device(h, argv[1], &d);
	pb_host_free(h);
	if (rc != 0)
		return no_device(cli, rc, argv[1], "quota");
	if (cli->json)
		(void)pb_cli_json("{s:s, s:s, s:I, s:b}", "device", d.device, "name", d.name, "quota",
				  (json_int_t)d.quota, "default", (int)d.quota_default);
	else
		printf("%s may store %llu bytes on this host%s%s\n", d.name[0] ? d.name : argv[1],
		       (unsigned long long)d.quota, d.quota_default ? " (the default)" : "",
		       argc == 3 ? "; this applies from its next connection" : "");
	return 0;
}

static int host_revoke(pb_cli_t *cli, int argc, char **argv)
{
	pb_host_t *h;
	pb_host_device_t d;
	int rc;

	if (argc != 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	if ((rc = pb_host_open(cli->home, &h)) != 0)
		return pb_cli_fail_err(cli, rc, "host state in %s", cli->home);
	rc = pb_host_revoke(h, argv[1], &d);
	pb_host_free(h);
	if (rc != 0)
		return no_device(cli, rc, argv[1], "revoke");
	if (cli->json)
		print_device(cli, &d, false);
	else
		printf("revoked %s\n", d.name[0] ? d.name : argv[1]);
	return 0;
}

int pb_cli_list_paired(pb_cli_t *cli)
{
	pb_host_t *h;
	int rc;

	if ((rc = pb_host_open(cli->home, &h)) != 0)
		return rc;
	rc = pb_host_devices(h, list_device, cli);
	pb_host_free(h);
	return rc;
}

/* ---- serving -------------------------------------------------------------- */

/* The running host: its loop, its signals (SIGINT and SIGTERM stop it,
 * SIGUSR1 shows a fresh pairing code) and how its events are shown. */
struct run {
	pb_cli_t *cli;
	bool json, no_qr;
	unsigned qr_flags;
	const char *qr_png, *qr_svg;
	pb_host_t *host;
	uv_signal_t sigint, sigterm, sigusr1;
};

/* The pairing code: as an image file when asked, and on stdout as a JSON
 * line or as a QR code with the command to type. */
static void show_advert(const struct run *r, const pb_event_t *ev)
{
	char *line = NULL;
	int rc;

	if (r->qr_png != NULL && (rc = pb_qr_write_png(ev->uri, r->qr_png)) != 0)
		fprintf(stderr, "peerback host: cannot write %s: %s\n", r->qr_png, pb_strerror(rc));
	if (r->qr_svg != NULL && (rc = pb_qr_write_svg(ev->uri, r->qr_svg)) != 0)
		fprintf(stderr, "peerback host: cannot write %s: %s\n", r->qr_svg, pb_strerror(rc));
	if (r->json) {
		json_t *o;

		if (pb_event_json(ev, &line) != 0)
			return;
		/* The image files, for scripts that show them. */
		if ((r->qr_png != NULL || r->qr_svg != NULL) && (o = json_loads(line, 0, NULL)) != NULL) {
			if (r->qr_png != NULL)
				json_object_set_new(o, "png", json_string(r->qr_png));
			if (r->qr_svg != NULL)
				json_object_set_new(o, "svg", json_string(r->qr_svg));
			free(line);
			line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
			json_decref(o);
		}
		if (line != NULL)
			printf("%s\n", line);
		free(line);
	} else {
		char *art = NULL;
		time_t now = time(NULL);

		if (!r->no_qr && pb_qr_render_terminal(ev->uri, r->qr_flags, &art, NULL) == 0) {
			fputs(art, stdout);
			free(art);
		}
		printf("Scan with the phone, or run: peerback pair '%s'\n", ev->uri);
		printf("This code works once and expires in %llu seconds.\n",
		       (unsigned long long)(ev->expires > now ? ev->expires - now : 0));
	}
	fflush(stdout);
}

static int on_event(void *arg, const pb_event_t *ev)
{
	const struct run *r = arg;
	char *line;

	switch (ev->type) {
	case PB_EVENT_CONNECTED:
	case PB_EVENT_DEVICE_PROGRESS:
		return 0; /* too many for a terminal or a log */
	case PB_EVENT_ADVERTISE:
		show_advert(r, ev);
		return 0;
	default:
		break;
	}
	if (ev->type == PB_EVENT_ERROR && ev->address == NULL) {
		/* The host's own trouble, not a phone's: for the operator. */
		fprintf(stderr, "peerback host: %s\n", ev->message != NULL ? ev->message : pb_strerror(ev->error));
		return 0;
	}
	if (r->json) {
		if (pb_event_json(ev, &line) == 0) {
			printf("%s\n", line);
			fflush(stdout);
			free(line);
		}
		return 0;
	}
	if (ev->type == PB_EVENT_LISTENING || ev->type == PB_EVENT_SNAPSHOT || ev->type == PB_EVENT_INSTRUCTION)
		return 0;
	if (ev->error != 0)
		fprintf(stderr, "peerback host: %s %s: %s\n", ev->name, ev->address != NULL ? ev->address : "",
			pb_strerror(ev->error));
	else
		fprintf(stderr, "peerback host: %s %s%s%s%s\n", ev->name, ev->address != NULL ? ev->address : "",
			ev->device_name != NULL && ev->device_name[0] ? " (" : "",
			ev->device_name != NULL ? ev->device_name : "",
			ev->device_name != NULL && ev->device_name[0] ? ")" : "");
	return 0;
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct run *r = sig->data;

	if (signum == SIGUSR1) {
		(void)pb_host_advertise(r->host); /* a failure is an event; it tries again soon */
		return;
	}
	/* The loop ends once the host has closed everything. */
	(void)pb_host_stop(r->host, NULL, NULL);
	uv_close((uv_handle_t *)&r->sigint, NULL);
	uv_close((uv_handle_t *)&r->sigterm, NULL);
	uv_close((uv_handle_t *)&r->sigusr1, NULL);
}

/* Runs the host on a loop of its own until SIGINT or SIGTERM. */
static int serve(struct run *r, const pb_host_config_t *cfg)
{
	uv_loop_t loop;
	int rc;

	/* A phone that hangs up while the host writes is an error on that
	 * connection, not the end of the program. */
	signal(SIGPIPE, SIG_IGN);
	/* Requests of up to 4 MiB (a chunk's put) come and go all the time:
	 * each mapped afresh, every page was faulted in again, about 0.4 s
	 * of CPU per GB received. The peak stays about what it was. */
	pb_cli_keep_heap(16u << 20, 64u << 20);
	if ((rc = uv_loop_init(&loop)) != 0)
		return rc;
	rc = pb_host_new(&loop, cfg, on_event, r, &r->host);
	if (rc == 0) {
		rc = pb_host_start(r->host);
		if (rc == 0) {
			r->sigint.data = r->sigterm.data = r->sigusr1.data = r;
			uv_signal_init(&loop, &r->sigint);
			uv_signal_init(&loop, &r->sigterm);
			uv_signal_init(&loop, &r->sigusr1);
			uv_signal_start(&r->sigint, on_signal, SIGINT);
			uv_signal_start(&r->sigterm, on_signal, SIGTERM);
			uv_signal_start(&r->sigusr1, on_signal, SIGUSR1);
		} else {
			(void)pb_host_stop(r->host, NULL, NULL);
		}
		(void)uv_run(&loop, UV_RUN_DEFAULT);
		pb_host_free(r->host);
	}
	(void)uv_loop_close(&loop);
	return rc;
}

int pb_cli_host_prune(pb_cli_t *cli, int argc, char **argv);
int pb_cli_host_instruct(pb_cli_t *cli, int argc, char **argv);
int pb_cli_host_instructions(pb_cli_t *cli);

int pb_cmd_host(pb_cli_t *cli, int argc, char **argv)
{
	pb_host_config_t o;
	struct run r;
	int rc;

	if (pb_cli_wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "devices") == 0) {
		rc = pb_cli_list_paired(cli);
		if (rc < 0)
			return pb_cli_fail_err(cli, rc, "host devices");
		if (rc == 0 && !cli->json)
			printf("no paired devices\n");
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "quota") == 0)
		return host_quota(cli, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "instruct") == 0)
		return pb_cli_host_instruct(cli, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "instructions") == 0)
		return pb_cli_host_instructions(cli);
	if (argc >= 2 && strcmp(argv[1], "prune") == 0)
		return pb_cli_host_prune(cli, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "verify") == 0) {
		/* The same check as peerback store-verify, on this host's store. */
		rc = pb_cmd_store_verify(cli, argc - 1, argv + 1);
		return rc;
	}
	if (argc >= 2 && strcmp(argv[1], "revoke") == 0)
		return host_revoke(cli, argc - 1, argv + 1);
	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	r.cli = cli;
	r.json = cli->json;
	o.home = cli->home;
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--listen") == 0) {
			o.listen = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			r.json = true;
		} else if (i + 1 < argc && strcmp(argv[i], "--qr-png") == 0) {
			r.qr_png = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--qr-svg") == 0) {
			r.qr_svg = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--qr-ttl") == 0) {
			char *end;
			errno = 0;
			o.qr_ttl = strtoull(argv[++i], &end, 10);
			if (errno != 0 || *end != 0 || o.qr_ttl == 0 || o.qr_ttl > 86400)
				return pb_cli_fail(cli, "--qr-ttl takes 1 to 86400 seconds");
		} else if (i + 1 < argc && strcmp(argv[i], "--max-failures") == 0) {
			char *end;
			unsigned long v;
			errno = 0;
			v = strtoul(argv[++i], &end, 10);
			if (errno != 0 || *end != 0 || v == 0 || v > 100000)
				return pb_cli_fail(cli, "--max-failures takes 1 to 100000 attempts");
			o.max_failures = (unsigned)v;
		} else if (i + 1 < argc && strcmp(argv[i], "--announce-interval") == 0) {
			char *end;
			errno = 0;
			o.announce_interval = strtoull(argv[++i], &end, 10);
			if (errno != 0 || *end != 0 || o.announce_interval == 0 || o.announce_interval > 3600)
				return pb_cli_fail(cli, "--announce-interval takes 1 to 3600 seconds");
		} else if (i + 1 < argc && strcmp(argv[i], "--auth-timeout") == 0) {
			long long v = number(argv[++i], 1, 3600);
			if (v < 0)
				return pb_cli_fail(cli, "--auth-timeout takes 1 to 3600 seconds");
			o.auth_timeout = (uint64_t)v;
		} else if (i + 1 < argc && strcmp(argv[i], "--idle-timeout") == 0) {
			long long v = number(argv[++i], 1, 86400);
			if (v < 0)
				return pb_cli_fail(cli, "--idle-timeout takes 1 to 86400 seconds");
			o.idle_timeout = (uint64_t)v;
		} else if (i + 1 < argc && strcmp(argv[i], "--max-connections") == 0) {
			long long v = number(argv[++i], 1, 65536);
			if (v < 0)
				return pb_cli_fail(cli, "--max-connections takes 1 to 65536");
			o.max_connections = (unsigned)v;
		} else if (i + 1 < argc && strcmp(argv[i], "--max-per-address") == 0) {
			long long v = number(argv[++i], 1, 65536);
			if (v < 0)
				return pb_cli_fail(cli, "--max-per-address takes 1 to 65536");
			o.max_per_address = (unsigned)v;
		} else if (strcmp(argv[i], "--no-announce") == 0) {
			o.no_announce = true;
		} else if (strcmp(argv[i], "--no-qr") == 0) {
			r.no_qr = true;
		} else if (strcmp(argv[i], "--dark-blocks") == 0) {
			r.qr_flags |= PB_QR_TERM_DARK_BLOCKS;
		} else {
			fprintf(stderr, "peerback host: unknown argument '%s'\n%s", argv[i], usage_text);
			return 2;
		}
	}
	rc = serve(&r, &o);
	if (rc == PB_EACCT_NOT_LOGGED_IN)
		return pb_cli_fail(cli, "this device is not logged in; run peerback account login first");
	if (rc == PB_EACCT_CERT_EXPIRED)
		return pb_cli_fail(cli, "this device's certificate has expired; run peerback account login again");
	if (rc == -EADDRINUSE || rc == -EADDRNOTAVAIL || rc == -EACCES)
		return pb_cli_fail_err(cli, rc, "the host cannot listen on %s", o.listen != NULL ? o.listen
												  : "every interface");
	if (rc == PB_ESTORE_LOCKED)
		fprintf(stderr, "peerback host: the store in %s/store is in use by another host process\n", cli->home);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "host (state in %s)", cli->home);
	return 0;
}
