/* peerback-imd: the IM account service. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "peerback.h"
#include "store-pg.h"

static const char usage_text[] =
	"usage: peerback-imd [--home DIR] COMMAND [ARGS...]\n"
	"\n"
	"The IM account service: vouches for accounts with device certificates,\n"
	"registers pairing sessions and issues single-use connect tickets.\n"
	"\n"
	"commands:\n"
	"  serve [--listen ADDR:PORT] [--json] [--cert-validity SECONDS] [--ticket-validity SECONDS]\n"
	"                         serve until interrupted (default listen 127.0.0.1:7450)\n"
	"  add-account ID         create an account; password from PEERBACK_PASSWORD\n"
	"                         or a prompt\n"
	"  link-accounts ID ID    link two accounts as sub-accounts of one owner\n"
	"  unlink-accounts ID ID  remove that link\n"
	"  keys [--json]          print the service's public keys\n"
	"  health                 check the database answers; JSON on stdout, exit 0\n"
	"                         when ready (for a load balancer)\n"
	"\n"
	"options:\n"
	"  --home DIR             state directory (default: $XDG_DATA_HOME/peerback-imd)\n"
	"  --db URL               postgresql://... to share accounts, sessions and\n"
	"                         limits between instances (default: PEERBACK_IMD_DB,\n"
	"                         else SQLite in the state directory)\n"
	"  --version              print the version and exit\n"
	"\n"
	"Run 'peerback-imd COMMAND --help' for a command's options.\n";

/* Per-command help: what each takes, and what it prints. */
static const struct {
	const char *name, *text;
} command_help[] = {
	{ "serve", "usage: peerback-imd serve [--listen ADDR:PORT] [--json] [--cert-validity SECONDS]\n"
		   "                          [--ticket-validity SECONDS] [--db URL]\n\n"
		   "Serves the account service until interrupted (default 127.0.0.1:7450; use\n"
		   "0.0.0.0:7450 for other machines). Devices log in with peerback account login\n"
		   "--imd HOST:7450 --imd-key KEY, KEY as 'peerback-imd keys' prints it.\n" },
	{ "add-account", "usage: peerback-imd add-account ID\n\n"
			 "Creates the account ID. The password comes from PEERBACK_PASSWORD, or is\n"
			 "typed twice on the terminal; at least 8 characters.\n" },
	{ "link-accounts", "usage: peerback-imd link-accounts ID ID\n\n"
			   "Links two accounts as sub-accounts of one owner.\n" },
	{ "unlink-accounts", "usage: peerback-imd unlink-accounts ID ID\n\nRemoves that link.\n" },
	{ "keys", "usage: peerback-imd keys [--json]\n\n"
		  "Prints the service's public keys; the signing key is the --imd-key devices\n"
		  "give to peerback account login.\n" },
	{ "health", "usage: peerback-imd health\n\n"
		    "Opens the database (migrating its schema when needed), asks it a question\n"
		    "and prints {\"ready\":true|false,\"store\":...,\"schema\":N}; exits 0 when ready.\n" },
};

static int fail(int rc, const char *what)
{
	fprintf(stderr, "peerback-imd: %s: %s\n", what, pb_strerror(rc));
	return 1;
}

/* One JSON object a line on stdout (o is consumed). */
static void print_json(json_t *o)
{
	if (o == NULL)
		return;
	(void)json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	fputc('\n', stdout);
	fflush(stdout);
}

static void b64url(const uint8_t key[32], char out[64])
{
	sodium_bin2base64(out, 64, key, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static int prompt(const char *text, char *buf, size_t cap)
{
	struct termios old, quiet;
	FILE *tty;
	size_t n;

	tty = fopen("/dev/tty", "r+");
	if (tty == NULL)
		return PB_ENOKEY;
	fputs(text, tty);
	fflush(tty);
	tcgetattr(fileno(tty), &old);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	if (fgets(buf, (int)cap, tty) == NULL)
		buf[0] = 0;
	tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fputc('\n', tty);
	fclose(tty);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	return n > 0 ? 0 : PB_ENOKEY;
}

/* The new account's password: PEERBACK_PASSWORD, else typed twice on the
 * terminal (a typo would lock every device of the account out). */
static int read_password(char *buf, size_t cap)
{
	const char *v = getenv("PEERBACK_PASSWORD");
	char again[1024];
	int rc;

	if (v != NULL) {
		if (strlen(v) >= cap)
			return PB_ETOOBIG;
		memcpy(buf, v, strlen(v) + 1);
		return 0;
	}
	if ((rc = prompt("new account password: ", buf, cap)) != 0)
		return rc;
	if (prompt("repeat the password: ", again, sizeof(again)) != 0)
		again[0] = 0;
	rc = strcmp(again, buf) != 0 ? PB_EINVAL : 0;
	sodium_memzero(again, sizeof(again));
	if (rc != 0) {
		sodium_memzero(buf, cap);
		fprintf(stderr, "peerback-imd: the two passwords differ; no account was created, run it again\n");
		return PB_ECANCELED;
	}
	return 0;
}

static int parse_seconds(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != 0 || v == 0 || v > 10ull * 365 * 24 * 3600)
		return PB_EINVAL;
	*out = v;
	return 0;
}

/* SQLite under home, or the PostgreSQL database at url. */
static int open_service(const char *home, const char *url, pb_imd_t **out)
{
	pb_imd_store_t *store;
	int rc;

	if (url == NULL || url[0] == 0)
		return pb_imd_open(home, out);
	if (strncmp(url, "postgresql://", 13) != 0 && strncmp(url, "postgres://", 11) != 0) {
		fprintf(stderr, "peerback-imd: --db takes a postgresql:// URL\n");
		return PB_EINVAL;
	}
	if ((rc = pb_imd_store_pg_open(url, &store)) != 0)
		return rc;
	return pb_imd_open_store(home, store, out);
}

/* serve: the service on this program's loop, until SIGINT or SIGTERM. */
struct serve {
	pb_imd_t *imd;
	bool json;
	uv_signal_t sigint, sigterm;
};

/* With --json, one object a line for log collectors: the request's kind,
 * the source, the result and the time; else lines for a person. */
static int on_event(void *arg, const pb_event_t *ev)
{
	struct serve *sv = arg;
	char key[64];
	uint8_t pk[32];

	switch (ev->type) {
	case PB_EVENT_LISTENING:
		pb_imd_keys(sv->imd, pk, NULL);
		b64url(pk, key);
		if (sv->json)
			print_json(json_pack("{s:s, s:s, s:s, s:s, s:i}", "event", "listening", "listen", ev->address,
					     "key", key, "store", pb_imd_store_name(sv->imd), "schema",
					     pb_imd_schema_version(sv->imd)));
		else
			printf("peerback-imd listening on %s\nservice key: %s\n", ev->address, key);
		break;
	case PB_EVENT_REQUEST:
		if (sv->json)
			print_json(json_pack("{s:s, s:s, s:s, s:I}", "event", ev->name, "peer", ev->address, "result",
					     pb_err_name(ev->error), "time", (json_int_t)time(NULL)));
		else
			fprintf(stderr, "peerback-imd: %s from %s: %s\n", ev->name, ev->address,
				ev->error == 0 ? "ok" : pb_strerror(ev->error));
		break;
	case PB_EVENT_DONE:
		/* Nothing of the service is left: the loop may end. */
		uv_close((uv_handle_t *)&sv->sigint, NULL);
		uv_close((uv_handle_t *)&sv->sigterm, NULL);
		break;
	default:
		break;
	}
	fflush(stdout);
	return 0;
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct serve *sv = sig->data;

	(void)signum;
	pb_imd_stop(sv->imd);
}

static int serve(pb_imd_t *imd, const char *listen, bool json)
{
	struct serve sv = { .imd = imd, .json = json };
	uv_loop_t *loop = uv_default_loop();
	int rc;

	/* A device that goes away mid-reply is the channel's error, not ours. */
	signal(SIGPIPE, SIG_IGN);
	/* Caught from before the listening line: whoever waits for it may
	 * signal at once. The loop delivers them once it runs, after start. */
	uv_signal_init(loop, &sv.sigint);
	uv_signal_init(loop, &sv.sigterm);
	sv.sigint.data = sv.sigterm.data = &sv;
	uv_signal_start(&sv.sigint, on_signal, SIGINT);
	uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
	rc = pb_imd_start(imd, loop, listen, on_event, &sv);
	if (rc != 0)
		return rc;
	uv_run(loop, UV_RUN_DEFAULT);
	return uv_loop_close(loop) == 0 ? 0 : PB_EBUSY;
}

int main(int argc, char **argv)
{
	char home[4096] = "";
	const char *db = getenv("PEERBACK_IMD_DB");
	pb_imd_t *imd = NULL;
	int i = 1, rc, status = 1;

	/* Whatever the service writes is for its user only. */
	umask(077);
	if (sodium_init() < 0)
		return 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--home") == 0 && i + 1 < argc) {
			rc = snprintf(home, sizeof(home), "%s", argv[++i]);
			if (rc < 0 || (size_t)rc >= sizeof(home))
				return fail(PB_ETOOBIG, "--home");
		} else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
			db = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage_text, stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("peerback-imd %s (protocol %d)\n", PB_VERSION_STRING, PB_PROTOCOL_VERSION);
			return 0;
		} else {
			fprintf(stderr, "peerback-imd: unknown option '%s'\n%s", argv[i], usage_text);
			return 2;
		}
	}
	if (i >= argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (strcmp(argv[i], "version") == 0) {
		printf("peerback-imd %s (protocol %d)\n", PB_VERSION_STRING, PB_PROTOCOL_VERSION);
		return 0;
	}
	for (int j = i + 1; j < argc; j++)
		if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0) {
			for (size_t c = 0; c < sizeof(command_help) / sizeof(command_help[0]); c++)
				if (strcmp(argv[i], command_help[c].name) == 0) {
					fputs(command_help[c].text, stdout);
					return 0;
				}
			fputs(usage_text, stdout);
			return 0;
		}
	if (home[0] == 0) {
		const char *xdg = getenv("XDG_DATA_HOME"), *h = getenv("HOME");
		if (xdg != NULL && xdg[0] == '/')
			rc = snprintf(home, sizeof(home), "%s/peerback-imd", xdg);
		else if (h != NULL)
			rc = snprintf(home, sizeof(home), "%s/.local/share/peerback-imd", h);
		else
			return fail(PB_ENOTFOUND, "no state directory; pass --home DIR");
		if (rc < 0 || (size_t)rc >= sizeof(home))
			return fail(PB_ETOOBIG, "state directory");
	}
	if (strcmp(argv[i], "serve") != 0 && strcmp(argv[i], "add-account") != 0 &&
	    strcmp(argv[i], "link-accounts") != 0 && strcmp(argv[i], "unlink-accounts") != 0 &&
	    strcmp(argv[i], "keys") != 0 && strcmp(argv[i], "health") != 0) {
		fprintf(stderr, "peerback-imd: unknown command '%s'; see 'peerback-imd --help'\n", argv[i]);
		return 2;
	}
	/* The service's home holds its signing key and the password hashes. */
	{
		unsigned was;

		rc = pb_imd_private_home(home, &was);
		if (rc == -EPERM) {
			fprintf(stderr, "peerback-imd: state directory %s is open to other users and belongs to "
					"someone else; pass --home with a directory of your own\n", home);
			return 1;
		}
		if (rc != 0)
			return fail(rc, home);
		if (was != 0)
			fprintf(stderr, "peerback-imd: state directory %s was open to other users (mode %04o); made it "
					"0700\n", home, was);
	}
	for (int j = i + 1; j + 1 < argc; j++)
		if (strcmp(argv[j], "--db") == 0)
			db = argv[j + 1];
	rc = open_service(home, db, &imd);
	if (rc != 0) {
		if (strcmp(argv[i], "health") == 0) {
			print_json(json_pack("{s:b, s:s}", "ready", 0, "error", pb_err_name(rc)));
			return 1;
		}
		return fail(rc, db != NULL && db[0] != 0 ? "database" : home);
	}

	if (strcmp(argv[i], "serve") == 0) {
		const char *listen = "127.0.0.1:7450";
		uint64_t cert_s = 0, ticket_s = 0;
		bool json = false;

		for (int j = i + 1; j < argc; j++) {
			if (strcmp(argv[j], "--listen") == 0 && j + 1 < argc) {
				listen = argv[++j];
			} else if (strcmp(argv[j], "--json") == 0) {
				json = true;
			} else if (strcmp(argv[j], "--db") == 0 && j + 1 < argc) {
				j++; /* read above */
			} else if (strcmp(argv[j], "--cert-validity") == 0 && j + 1 < argc) {
				if (parse_seconds(argv[++j], &cert_s) != 0) {
					fprintf(stderr, "peerback-imd: --cert-validity takes a number of seconds\n");
					goto out_close;
				}
			} else if (strcmp(argv[j], "--ticket-validity") == 0 && j + 1 < argc) {
				if (parse_seconds(argv[++j], &ticket_s) != 0) {
					fprintf(stderr, "peerback-imd: --ticket-validity takes a number of seconds\n");
					goto out_close;
				}
			} else {
				fprintf(stderr, "peerback-imd: serve: unknown argument '%s'\n", argv[j]);
				status = 2;
				goto out_close;
			}
		}
		pb_imd_set_validity(imd, cert_s, ticket_s);
		rc = serve(imd, listen, json);
		if (rc != 0) {
			fail(rc, listen);
			goto out_close;
		}
		status = 0;
	} else if (strcmp(argv[i], "add-account") == 0) {
		char pw[1024];

		if (argc - i != 2) {
			fprintf(stderr, "usage: peerback-imd add-account ID\n");
			status = 2;
			goto out_close;
		}
		rc = read_password(pw, sizeof(pw));
		if (rc == PB_ECANCELED)
			goto out_close;
		if (rc != 0) {
			fail(rc, "no password: set PEERBACK_PASSWORD or run on a terminal");
			goto out_close;
		}
		rc = pb_imd_add_account(imd, argv[i + 1], pw);
		sodium_memzero(pw, sizeof(pw));
		if (rc == PB_EEXISTS)
			fprintf(stderr, "peerback-imd: account '%s' already exists\n", argv[i + 1]);
		else if (rc == PB_EINVAL)
			fprintf(stderr, "peerback-imd: account ids are 1-128 of A-Z a-z 0-9 . _ @ + -, "
					"and passwords at least 8 characters\n");
		else if (rc != 0)
			fail(rc, "add-account");
		else
			status = 0;
	} else if (strcmp(argv[i], "link-accounts") == 0) {
		if (argc - i != 3) {
			fprintf(stderr, "usage: peerback-imd link-accounts ID ID\n");
			status = 2;
			goto out_close;
		}
		rc = pb_imd_link(imd, argv[i + 1], argv[i + 2]);
		if (rc == PB_ENOTFOUND)
			fprintf(stderr, "peerback-imd: both accounts must exist (peerback-imd add-account ID)\n");
		else if (rc != 0)
			fail(rc, "link-accounts");
		else
			status = 0;
	} else if (strcmp(argv[i], "unlink-accounts") == 0) {
		if (argc - i != 3) {
			fprintf(stderr, "usage: peerback-imd unlink-accounts ID ID\n");
			status = 2;
			goto out_close;
		}
		rc = pb_imd_unlink(imd, argv[i + 1], argv[i + 2]);
		if (rc == PB_ENOTFOUND)
			fprintf(stderr, "peerback-imd: accounts '%s' and '%s' are not linked\n", argv[i + 1], argv[i + 2]);
		else if (rc != 0)
			fail(rc, "unlink-accounts");
		else
			status = 0;
	} else if (strcmp(argv[i], "health") == 0) {
		bool ready = pb_imd_ready(imd) == 0;

		print_json(json_pack("{s:b, s:s, s:i}", "ready", ready, "store", pb_imd_store_name(imd), "schema",
				     pb_imd_schema_version(imd)));
		status = ready ? 0 : 1;
	} else {
		uint8_t sk[32], gk[32];
		char a[64], b[64];

		pb_imd_keys(imd, sk, gk);
		b64url(sk, a);
		b64url(gk, b);
		if (argc - i > 1 && strcmp(argv[i + 1], "--json") == 0)
			print_json(json_pack("{s:s, s:s}", "key", a, "sign_key", b));
		else
			printf("service key: %s\nsigning key: %s\n", a, b);
		status = 0;
	}
out_close:
	pb_imd_close(imd);
	return status;
}
