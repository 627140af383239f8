/* peerback desktop: the backup host plus a local web app to watch and
 * administer it and to browse a backup read-only (docs/DESKTOP.md).
 *
 * Threads: the host runs on the main thread's libuv loop. The web server
 * (libmicrohttpd) runs a thread per connection beside it, so that a
 * Server-Sent Events stream may block waiting for events. A request that
 * needs the serving host (devices, revoke, instruct, a new pairing code)
 * is handed to the loop through a uv_async and waited for; verify and
 * prune use a handle of their own (pb_host_open) on the request's thread,
 * and the store is read without its lock (pb_store_open_ro). One mutex
 * guards the shared state: the event log, the pairing code, the open
 * backup. */
#ifndef PB_HAVE_MHD
/* Built without libmicrohttpd (a cross build): no web app. */
#include <stdio.h>

#include "cli.h"
#include "commands.h"

int pb_cmd_desktop(pb_cli_t *cli, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return pb_cli_fail(cli, "this peerback was built without the desktop web app (libmicrohttpd-dev was "
				"missing); run peerback host");
}
#else
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>
#include <uv.h>

#include "peerback.h"
#include "cli.h"
#include "commands.h"
#include "desktop.h"

static const char usage_text[] =
	"usage: peerback desktop [--ui-listen ADDR:PORT] [--listen ADDR:PORT] [--no-announce]\n"
	"                        [--qr-ttl SECONDS] [--idle-lock MINUTES]\n"
	"\n"
	"Runs the backup host (as peerback host does) with a local web app, and prints\n"
	"the address to open in a browser. The web app listens on 127.0.0.1 (a free\n"
	"port unless --ui-listen says otherwise; another address is reachable by others\n"
	"on the network: it is allowed with a warning). The printed address carries a\n"
	"one-time token; keep it to yourself. An open backup locks itself after\n"
	"--idle-lock minutes without use (default 5).\n";

#define EVLOG 256        /* events kept for the streams */
#define SESSION_HEX 65   /* 32 random bytes in hex */

/* A request's call of the serving host, made on the loop's thread. */
struct job {
	enum { JOB_DEVICES, JOB_INSTRUCTIONS, JOB_REVOKE, JOB_INSTRUCT, JOB_ADVERTISE } what;
	const char *which, *op, *iccid, *to;
	json_t *out;
	int rc;
	bool done;
	struct job *next;
};

struct desk {
	pb_cli_t *cli;
	uv_loop_t *loop;
	pb_host_t *host;
	uv_async_t async;
	uv_signal_t sigint, sigterm;
	uv_timer_t idle;
	struct MHD_Daemon *mhd;
	char origin[160];    /* http://127.0.0.1:PORT */
	char hostport[128];  /* 127.0.0.1:PORT, the Host header we accept */
	char token[SESSION_HEX], session[SESSION_HEX], csrf[SESSION_HEX];
	unsigned idle_lock;  /* seconds */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *jobs;
	bool stopping;
	char *evlog[EVLOG];  /* JSON lines, by sequence number mod EVLOG */
	uint64_t evseq;
	char *uri;           /* the pairing code shown */
	int64_t expires;
	uint64_t adverts;
	pb_desktop_view_t view;
	bool opening;        /* a backup is being decrypted (outside the mutex) */
	atomic_bool quit;    /* stopping: an open under way gives up */
	time_t last_use;
};

static void random_hex(char out[SESSION_HEX])
{
	uint8_t b[32];

	randombytes_buf(b, sizeof(b));
	sodium_bin2hex(out, SESSION_HEX, b, sizeof(b));
	sodium_memzero(b, sizeof(b));
}

/* ---- the loop side -------------------------------------------------------- */

static void log_event(struct desk *d, char *line)
{
	if (line == NULL)
		return;
	free(d->evlog[d->evseq % EVLOG]);
	d->evlog[d->evseq % EVLOG] = line;
	d->evseq++;
	pthread_cond_broadcast(&d->cv);
}

static int on_event(void *arg, const pb_event_t *ev)
{
	struct desk *d = arg;
	char *line = NULL;

	if (ev->type == PB_EVENT_CONNECTED)
		return 0;
	if (pb_event_json(ev, &line) != 0)
		return 0;
	pthread_mutex_lock(&d->mu);
	if (ev->type == PB_EVENT_ADVERTISE && ev->uri != NULL) {
		free(d->uri);
		d->uri = strdup(ev->uri);
		d->expires = ev->expires;
		d->adverts++;
		/* The stream says a new code is there; the page fetches it. */
		free(line);
		line = NULL;
		json_t *o = json_pack("{s:s, s:I, s:I}", "event", "advertise", "expires", (json_int_t)ev->expires,
				      "n", (json_int_t)d->adverts);
		if (o != NULL)
			line = json_dumps(o, JSON_COMPACT);
		json_decref(o);
	}
	if (line != NULL)
		log_event(d, line);
	pthread_mutex_unlock(&d->mu);
	if (ev->type == PB_EVENT_ERROR && ev->address == NULL)
		fprintf(stderr, "peerback desktop: %s\n", ev->message != NULL ? ev->message : pb_strerror(ev->error));
	return 0;
}

static int run_job(struct desk *d, struct job *j);

static void run_jobs(uv_async_t *a)
{
	struct desk *d = a->data;
	struct job *j;

	pthread_mutex_lock(&d->mu);
	while ((j = d->jobs) != NULL) {
		d->jobs = j->next;
		pthread_mutex_unlock(&d->mu);
		j->rc = run_job(d, j);
		pthread_mutex_lock(&d->mu);
		j->done = true;
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
}

/* Has j run on the loop's thread and waits for it. */
static int on_loop(struct desk *d, struct job *j)
{
	pthread_mutex_lock(&d->mu);
	if (d->stopping) {
		pthread_mutex_unlock(&d->mu);
		return PB_ESTATE;
	}
	j->next = d->jobs;
	d->jobs = j;
	uv_async_send(&d->async);
	while (!j->done)
		pthread_cond_wait(&d->cv, &d->mu);
	pthread_mutex_unlock(&d->mu);
	return j->rc;
}

static int add_device(void *arg, const pb_host_device_t *dv)
{
	json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:I}", "device", dv->device, "name",
					     dv->name, "account", dv->account, "paired_at", (json_int_t)dv->paired_at,
					     "last_seen", (json_int_t)dv->last_seen, "revoked", (int)dv->revoked,
					     "quota", (json_int_t)dv->quota));
	return 0;
}

static int add_instruction(void *arg, const pb_host_instruction_t *in)
{
	json_array_append_new(arg, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id", (json_int_t)in->id,
					     "device", in->device, "op", in->op, "iccid", in->iccid, "peer", in->peer,
					     "state", in->state, "result", in->result, "created",
					     (json_int_t)in->created, "updated", (json_int_t)in->updated));
	return 0;
}

/* Runs on the loop's thread: the one call of the serving host a request
 * needs. */
static int run_job(struct desk *d, struct job *j)
{
	int rc;

	switch (j->what) {
	case JOB_DEVICES:
		j->out = json_array();
		rc = pb_host_devices(d->host, add_device, j->out);
		return rc < 0 ? rc : 0;
	case JOB_INSTRUCTIONS:
		j->out = json_array();
		rc = pb_host_instructions(d->host, add_instruction, j->out);
		return rc < 0 ? rc : 0;
	case JOB_REVOKE:
		return pb_host_revoke(d->host, j->which, NULL);
	case JOB_INSTRUCT:
		return pb_host_instruct(d->host, j->which, j->op, j->iccid, j->to, NULL);
	case JOB_ADVERTISE:
		return pb_host_advertise(d->host);
	}
	return PB_EINVAL;
}

/* Locks an open backup nobody used for idle_lock seconds. */
static void on_idle(uv_timer_t *t)
{
	struct desk *d = t->data;

	pthread_mutex_lock(&d->mu);
	if (d->view.open && time(NULL) - d->last_use >= (time_t)d->idle_lock) {
		pb_desktop_view_lock(&d->view);
		log_event(d, strdup("{\"event\":\"locked\"}"));
	}
	pthread_mutex_unlock(&d->mu);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct desk *d = sig->data;

	(void)signum;
	pthread_mutex_lock(&d->mu);
	d->stopping = true;
	atomic_store(&d->quit, true);
	/* Requests still waiting for the loop get an answer: it is closing. */
	for (struct job *j = d->jobs; j != NULL; j = j->next) {
		j->rc = PB_ESTATE;
		j->done = true;
	}
	d->jobs = NULL;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	(void)pb_host_stop(d->host, NULL, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->async, NULL);
	uv_close((uv_handle_t *)&d->idle, NULL);
}

/* ---- the web side --------------------------------------------------------- */

struct req {
	char *body;
	size_t len;
	bool too_big;
};

static void secure_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
				"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(r, "Cache-Control", "no-store");
}

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *type, const void *data,
				size_t len, bool copy)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data,
								  copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	secure_headers(r);
	/* The embedded script and style sheet are the same for the program's
	 * life (and the port, hence the origin, changes with each start): the
	 * browser may keep them. Everything else, data above all, is no-store. */
	if (!copy && strncmp(type, "text/html", 9) != 0) {
		MHD_del_response_header(r, "Cache-Control", "no-store");
		MHD_add_response_header(r, "Cache-Control", "private, max-age=3600");
	}
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return send_buf(c, status, "text/plain; charset=utf-8", msg, strlen(msg), true);
}

/* Sends o (consumed) as JSON. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *o)
{
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	enum MHD_Result ret;

	json_decref(o);
	if (s == NULL)
		return send_text(c, 500, "out of memory");
	ret = send_buf(c, status, "application/json", s, strlen(s), true);
	free(s);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, int err)
{
	return send_json(c, status, json_pack("{s:s, s:s}", "code", pb_err_name(err), "message", pb_strerror(err)));
}

/* The session: the token in the address the program printed (first visit),
 * then the cookie it set. Compared in constant time. */
static bool has_session(struct desk *d, struct MHD_Connection *c)
{
	const char *ck = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "pb_session");

	return ck != NULL && strlen(ck) == SESSION_HEX - 1 && sodium_memcmp(ck, d->session, SESSION_HEX - 1) == 0;
}

/* Host header: only our own address (a page of another site that resolves
 * its name to 127.0.0.1 must not reach us). */
static bool good_host(struct desk *d, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");

	return h != NULL && strcmp(h, d->hostport) == 0;
}

/* State-changing requests: our CSRF header, our Origin, and a browser's
 * word that the request comes from this same origin when it gives one. */
static bool same_origin(struct desk *d, struct MHD_Connection *c)
{
	const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-PB-CSRF");
	const char *s = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");

	if (o == NULL || strcmp(o, d->origin) != 0)
		return false;
	if (s != NULL && strcmp(s, "same-origin") != 0)
		return false;
	return x != NULL && strlen(x) == SESSION_HEX - 1 && sodium_memcmp(x, d->csrf, SESSION_HEX - 1) == 0;
}

/* ---- Server-Sent Events ---- */

struct stream {
	struct desk *d;
	uint64_t next;
	char *pending;
	size_t off, len;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	struct desk *d = s->d;
	struct timespec until;

	(void)pos;
	if (s->pending == NULL) {
		pthread_mutex_lock(&d->mu);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 15;
		while (!d->stopping && s->next == d->evseq)
			if (pthread_cond_timedwait(&d->cv, &d->mu, &until) != 0)
				break;
		if (d->stopping) {
			pthread_mutex_unlock(&d->mu);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (d->evseq - s->next > EVLOG)
			s->next = d->evseq - EVLOG;
		if (s->next < d->evseq) {
			const char *line = d->evlog[s->next % EVLOG];
			size_t n = strlen(line) + 9; /* "data: ", "\n\n" and the NUL */

			s->pending = malloc(n);
			if (s->pending != NULL)
				s->len = (size_t)snprintf(s->pending, n, "data: %s\n\n", line);
			s->next++;
		} else {
			s->pending = strdup(": keep-alive\n\n");
			s->len = s->pending != NULL ? strlen(s->pending) : 0;
		}
		pthread_mutex_unlock(&d->mu);
		s->off = 0;
		if (s->pending == NULL)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	size_t n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(buf, s->pending + s->off, n);
	s->off += n;
	if (s->off == s->len) {
		free(s->pending);
		s->pending = NULL;
	}
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;

	free(s->pending);
	free(s);
}

static enum MHD_Result serve_events(struct desk *d, struct MHD_Connection *c)
{
	struct stream *s = calloc(1, sizeof(*s));
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (s == NULL)
		return send_text(c, 500, "out of memory");
	s->d = d;
	pthread_mutex_lock(&d->mu);
	s->next = d->evseq; /* only what happens from now on */
	pthread_mutex_unlock(&d->mu);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, stream_read, s, stream_free);
	secure_headers(r);
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- the API ---- */

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static enum MHD_Result api_pair(struct desk *d, struct MHD_Connection *c)
{
	json_t *o;

	pthread_mutex_lock(&d->mu);
	o = json_pack("{s:s?, s:I, s:I, s:I}", "uri", d->uri, "expires", (json_int_t)d->expires, "now",
		      (json_int_t)time(NULL), "n", (json_int_t)d->adverts);
	pthread_mutex_unlock(&d->mu);
	return send_json(c, 200, o);
}

static enum MHD_Result api_qr(struct desk *d, struct MHD_Connection *c)
{
	char *svg = NULL;
	size_t len = 0;
	int rc = PB_ENOTFOUND;
	enum MHD_Result ret;

	pthread_mutex_lock(&d->mu);
	if (d->uri != NULL)
		rc = pb_qr_render_svg(d->uri, &svg, &len);
	pthread_mutex_unlock(&d->mu);
	if (rc != 0)
		return send_error(c, 404, rc);
	ret = send_buf(c, 200, "image/svg+xml", svg, len, true);
	free(svg);
	return ret;
}

/* Stored bytes and snapshots of a device, read from the store without its
 * lock. */
static json_t *device_snapshots(struct desk *d, const char *account, const char *device, uint64_t *bytes)
{
	char path[4200];
	pb_store_t *st = NULL;
	pb_store_ns_t *ns = NULL;
	pb_store_snapinfo_t *s = NULL;
	size_t n = 0;
	json_t *a = json_array();

	*bytes = 0;
	snprintf(path, sizeof(path), "%s/store", d->cli->home);
	if (pb_store_open_ro(path, &st) != 0)
		return a;
	if (pb_store_ns_open_ro(st, account, device, &ns) == 0) {
		(void)pb_store_ns_usage(ns, bytes);
		if (pb_store_snapshot_list(ns, &s, &n) == 0)
			for (size_t i = n; i-- > 0;) {
				char id[17]; /* hex, as peerback ls shows it (and beyond a JS number's 53 bits) */

				snprintf(id, sizeof(id), "%016llx", (unsigned long long)s[i].id);
				json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:I}", "id", id,
								   "time", (json_int_t)s[i].time, "size",
								   (json_int_t)s[i].size, "chunks",
								   (json_int_t)s[i].nrefs));
			}
		free(s);
		pb_store_ns_close(ns);
	}
	pb_store_close(st);
	return a;
}

static enum MHD_Result api_devices(struct desk *d, struct MHD_Connection *c)
{
	struct job j = {.what = JOB_DEVICES};
	size_t i;
	json_t *dv;
	int rc = on_loop(d, &j);

	if (rc != 0) {
		json_decref(j.out);
		return send_error(c, 500, rc);
	}
	json_array_foreach(j.out, i, dv) {
		uint64_t bytes;
		json_t *snaps = device_snapshots(d, jstr(dv, "account"), jstr(dv, "device"), &bytes);

		json_object_set_new(dv, "bytes", json_integer((json_int_t)bytes));
		json_object_set_new(dv, "snapshot_count", json_integer((json_int_t)json_array_size(snaps)));
		json_object_set_new(dv, "snapshots", snaps);
	}
	return send_json(c, 200, j.out);
}

static enum MHD_Result api_instructions(struct desk *d, struct MHD_Connection *c)
{
	struct job j = {.what = JOB_INSTRUCTIONS};
	int rc = on_loop(d, &j);

	if (rc != 0) {
		json_decref(j.out);
		return send_error(c, 500, rc);
	}
	return send_json(c, 200, j.out);
}

static unsigned status_of(int rc)
{
	return rc == PB_ENOTFOUND ? 404 : rc == PB_EINVAL || rc == PB_EEXISTS ? 400 : rc == PB_ESTORE_PASSPHRASE ? 403
												       : 500;
}

/* The progress of a long request (verify, open), to the pages' streams
 * (at most every 1 %). */
struct progress {
	struct desk *d;
	const char *event;
	uint64_t last;
};

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
	struct progress *vp = arg;
	json_t *o;
	char *line;

	if (total == 0 || (done < total && (done - vp->last) * 100 < total))
		return;
	vp->last = done;
	o = json_pack("{s:s, s:I, s:I}", "event", vp->event, "done", (json_int_t)done, "total", (json_int_t)total);
	line = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (line == NULL)
		return;
	pthread_mutex_lock(&vp->d->mu);
	log_event(vp->d, line);
	pthread_mutex_unlock(&vp->d->mu);
}

static enum MHD_Result api_verify(struct desk *d, struct MHD_Connection *c)
{
	struct progress vp = {d, "verify-progress", 0};
	pb_host_t *h;
	pb_store_verify_report_t rep;
	int rc;

	memset(&rep, 0, sizeof(rep));
	if ((rc = pb_host_open(d->cli->home, &h)) != 0)
		return send_error(c, 500, rc);
	rc = pb_host_verify(h, on_progress, &vp, &rep);
	pb_host_free(h);
	if (rc != 0 && rc != PB_ESTORE_CORRUPT)
		return send_error(c, 500, rc);
	return send_json(c, 200, json_pack("{s:b, s:I, s:I}", "clean", rc == 0, "chunks", (json_int_t)rep.chunks,
					   "bad", (json_int_t)(rep.bad_chunks + rep.bad_records + rep.missing_refs)));
}

static enum MHD_Result api_prune(struct desk *d, struct MHD_Connection *c, json_t *in)
{
	pb_host_t *h;
	pb_store_keep_t keep;
	pb_host_prune_report_t rep;
	json_int_t last = json_integer_value(json_object_get(in, "keep_last"));
	int rc;

	memset(&keep, 0, sizeof(keep));
	memset(&rep, 0, sizeof(rep));
	keep.last = last > 0 && last < 100000 ? (unsigned)last : 7;
	if ((rc = pb_host_open(d->cli->home, &h)) != 0)
		return send_error(c, 500, rc);
	rc = pb_host_prune(h, &keep, json_is_true(json_object_get(in, "dry_run")), NULL, NULL, &rep);
	pb_host_free(h);
	if (rc != 0)
		return send_error(c, 500, rc);
	return send_json(c, 200, json_pack("{s:I, s:I, s:I}", "snapshots_removed", (json_int_t)rep.snapshots_removed,
					   "chunks_removed", (json_int_t)rep.chunks_removed, "bytes_freed",
					   (json_int_t)rep.bytes_freed));
}

static json_t *view_state(struct desk *d)
{
	pb_desktop_view_t *v = &d->view;

	if (!v->open)
		return json_pack("{s:b}", "open", 0);
	char id[17];

	snprintf(id, sizeof(id), "%016llx", (unsigned long long)v->snapshot);
	return json_pack("{s:b, s:s, s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:I}", "open", 1, "device", v->device,
			 "snapshot", id, "time", (json_int_t)v->time, "items", "credentials",
			 (json_int_t)v->counts[PB_KIND_CREDENTIAL], "mifare", (json_int_t)v->counts[PB_KIND_MIFARE],
			 "sim", (json_int_t)v->counts[PB_KIND_SIM], "chat", (json_int_t)v->counts[PB_KIND_CHAT],
			 "contacts", (json_int_t)v->counts[PB_KIND_CONTACTS], "messages", (json_int_t)v->msgs.n);
}

static enum MHD_Result api_open(struct desk *d, struct MHD_Connection *c, json_t *in)
{
	const char *dev = jstr(in, "device"), *pass = jstr(in, "passphrase");
	pb_host_device_t found;
	pb_desktop_view_t *nv;
	struct progress op = {d, "open-progress", 0};
	struct job j = {.what = JOB_DEVICES};
	size_t i;
	json_t *dv, *o;
	bool ok = false;
	int rc;

	if (dev == NULL || pass == NULL)
		return send_error(c, 400, PB_EINVAL);
	if ((rc = on_loop(d, &j)) != 0) {
		json_decref(j.out);
		return send_error(c, 500, rc);
	}
	json_array_foreach(j.out, i, dv) {
		if (jstr(dv, "device") != NULL && strcmp(jstr(dv, "device"), dev) == 0) {
			snprintf(found.device, sizeof(found.device), "%s", jstr(dv, "device"));
			snprintf(found.account, sizeof(found.account), "%s", jstr(dv, "account"));
			ok = true;
		}
	}
	json_decref(j.out);
	if (!ok)
		return send_error(c, 404, PB_ENOTFOUND);
	/* Decrypting a large backup takes a while: it happens outside the
	 * mutex (the host's events and the other pages go on), into a view
	 * of its own that replaces the open one when it is ready. */
	pthread_mutex_lock(&d->mu);
	if (d->opening) {
		pthread_mutex_unlock(&d->mu);
		return send_error(c, 409, PB_EBUSY);
	}
	d->opening = true;
	pb_desktop_view_lock(&d->view);
	pthread_mutex_unlock(&d->mu);
	if ((nv = calloc(1, sizeof(*nv))) == NULL)
		rc = -ENOMEM;
	else
		rc = pb_desktop_view_open(nv, d->cli->home, found.account, found.device, pass, &d->quit, on_progress,
					  &op);
	pthread_mutex_lock(&d->mu);
	if (rc == 0) {
		d->view = *nv;
		sodium_memzero(nv, sizeof(*nv));
	}
	free(nv);
	d->opening = false;
	d->last_use = time(NULL);
	o = rc == 0 ? view_state(d) : NULL;
	pthread_mutex_unlock(&d->mu);
	if (rc != 0)
		return send_error(c, status_of(rc), rc);
	return send_json(c, 200, o);
}

/* Takes the mutex for a request to the open backup, which counts as its
 * use (the idle lock waits), and gives the decrypted device directory's
 * path in dev (when cap > 0). False, mutex released, when none is open. */
static bool view_use(struct desk *d, char *dev, size_t cap)
{
	pthread_mutex_lock(&d->mu);
	if (!d->view.open) {
		pthread_mutex_unlock(&d->mu);
		return false;
	}
	d->last_use = time(NULL);
	if (cap > 0)
		snprintf(dev, cap, "%s/device", d->view.dir);
	return true;
}

/* Chat messages matching q, page by page, searched here rather than in the
 * page: a large backup never travels to the browser whole. */
static enum MHD_Result api_messages(struct desk *d, struct MHD_Connection *c)
{
	const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "q");
	const char *ps = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "page");
	long page = ps != NULL ? strtol(ps, NULL, 10) : 0;
	json_t *o;

	if (page < 0 || page > 1000000)
		page = 0;
	if (q != NULL && strlen(q) > 255)
		return send_error(c, 400, PB_EINVAL);
	if (!view_use(d, NULL, 0))
		return send_error(c, 409, PB_ESTORE_NOMASTER);
	o = pb_desktop_msgs_search(&d->view.msgs, q != NULL ? q : "", (size_t)page, 50);
	pthread_mutex_unlock(&d->mu);
	return send_json(c, 200, o);
}

/* The first regular file under dir, in name order, read whole. */
static int read_first_file(const char *dir, char *name, size_t ncap, uint8_t **data, size_t *len)
{
	struct dirent **ents = NULL;
	char path[1400];
	int n = scandir(dir, &ents, NULL, alphasort), rc = -ENOENT;

	for (int i = 0; i < n; i++) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if (rc == -ENOENT && ents[i]->d_name[0] != '.' && lstat(path, &st) == 0) {
			if (S_ISREG(st.st_mode)) {
				FILE *f = fopen(path, "rb");

				snprintf(name, ncap, "%s", ents[i]->d_name);
				rc = -EIO;
				if (f != NULL && (*data = malloc((size_t)st.st_size + 1)) != NULL) {
					*len = fread(*data, 1, (size_t)st.st_size, f);
					rc = *len == (size_t)st.st_size ? 0 : -EIO;
				}
				if (f != NULL)
					fclose(f);
			} else if (S_ISDIR(st.st_mode)) {
				rc = read_first_file(path, name, ncap, data, len);
			}
		}
		free(ents[i]);
	}
	free(ents);
	return n < 0 ? -errno : rc;
}

/* Every regular file under dir/rel, as paths relative to dir. */
static int list_files(const char *dir, const char *rel, json_t *out)
{
	struct dirent **ents = NULL;
	char path[1400], sub[700];
	int n, rc = 0;

	snprintf(path, sizeof(path), "%s%s%s", dir, rel[0] ? "/" : "", rel);
	if ((n = scandir(path, &ents, NULL, alphasort)) < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct stat st;
		char full[2200];

		if (rc == 0 && ents[i]->d_name[0] != '.') {
			snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", ents[i]->d_name);
			snprintf(full, sizeof(full), "%s/%s", dir, sub);
			if (lstat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
				rc = list_files(dir, sub, out);
			} else if (lstat(full, &st) == 0 && S_ISREG(st.st_mode)) {
				char *t = NULL;

				if (pb_text_utf8(sub, &t) == 0)
					json_array_append_new(out, json_pack("{s:s, s:I}", "file", t, "size",
									     (json_int_t)st.st_size));
				free(t);
			}
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

/* The file rel under dir: a path the listing gave, never one that leaves
 * dir ("..", absolute) or follows a link. */
static int read_one_file(const char *dir, const char *rel, char *name, size_t ncap, uint8_t **data, size_t *len)
{
	char path[2200];
	struct stat st;
	const char *base = strrchr(rel, '/');
	FILE *f;

	if (rel[0] == '/' || rel[0] == 0 || strstr(rel, "..") != NULL || strstr(rel, "//") != NULL)
		return PB_EINVAL;
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	if (lstat(path, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return PB_EINVAL;
	snprintf(name, ncap, "%s", base != NULL ? base + 1 : rel);
	if ((f = fopen(path, "rb")) == NULL)
		return -errno;
	*data = malloc((size_t)st.st_size + 1);
	*len = *data != NULL ? fread(*data, 1, (size_t)st.st_size, f) : 0;
	fclose(f);
	return *data == NULL ? -ENOMEM : *len == (size_t)st.st_size ? 0 : -EIO;
}

/* One kind of the open backup in one of its real formats, as a download,
 * written by the same exporter as peerback export. */
static enum MHD_Result api_export(struct desk *d, struct MHD_Connection *c)
{
	const char *ks = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
	const char *fmt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
	const char *list = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "list");
	const char *file = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "file");
	char out[700], dev[600], name[256], disp[400], err[256];
	uint8_t *data = NULL;
	size_t len = 0;
	pb_kind_t kind;
	struct MHD_Response *r;
	enum MHD_Result ret;
	int rc;

	if (ks == NULL || pb_kind_parse(ks, &kind) != 0)
		return send_error(c, 400, PB_EINVAL);
	if (fmt != NULL && strspn(fmt, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(fmt))
		return send_error(c, 400, PB_EINVAL);
	if (!view_use(d, dev, sizeof(dev)))
		return send_error(c, 409, PB_ESTORE_NOMASTER);
	snprintf(out, sizeof(out), "%s/export-%s-%s", d->view.dir, pb_kind_name(kind), fmt != NULL ? fmt : "default");
	err[0] = 0;
	rc = kind == PB_KIND_CHAT ? pb_desktop_view_attachments(&d->view, d->cli->home) : 0;
	if (rc == 0 && access(out, F_OK) != 0) /* once per open backup */
		rc = pb_kind_export(kind, dev, fmt, out, err, sizeof(err));
	if (rc == 0 && list != NULL) {
		json_t *files = json_array();

		rc = list_files(out, "", files);
		pthread_mutex_unlock(&d->mu);
		if (rc != 0) {
			json_decref(files);
			return send_error(c, 500, rc);
		}
		return send_json(c, 200, files);
	}
	if (rc == 0 && file != NULL)
		rc = read_one_file(out, file, name, sizeof(name), &data, &len);
	else if (rc == 0)
		rc = read_first_file(out, name, sizeof(name), &data, &len);
	pthread_mutex_unlock(&d->mu);
	if (rc != 0) {
		free(data);
		return send_json(c, status_of(rc), json_pack("{s:s, s:s}", "code", pb_err_name(rc), "message",
							      err[0] != 0 ? err : pb_strerror(rc)));
	}
	r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	secure_headers(r);
	MHD_add_response_header(r, "Content-Type", "application/octet-stream");
	/* The name as the exporter wrote it, without what would end the quoted string. */
	for (char *q = name; *q; q++)
		if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
			*q = '_';
	snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", name);
	MHD_add_response_header(r, "Content-Disposition", disp);
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* A page of one kind's items of the open backup. */
static enum MHD_Result api_items(struct desk *d, struct MHD_Connection *c)
{
	const char *ks = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
	const char *ps = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "page");
	const char *rv = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "reveal");
	long page = ps != NULL ? strtol(ps, NULL, 10) : 0;
	char dev[600];
	pb_kind_t kind;
	json_t *o;

	if (ks == NULL || pb_kind_parse(ks, &kind) != 0 || kind == PB_KIND_CHAT)
		return send_error(c, 400, PB_EINVAL);
	if (page < 0 || page > 1000000)
		page = 0;
	if (!view_use(d, dev, sizeof(dev)))
		return send_error(c, 409, PB_ESTORE_NOMASTER);
	o = pb_desktop_items(dev, kind, (size_t)page, 20, rv != NULL && strcmp(rv, "1") == 0);
	pthread_mutex_unlock(&d->mu);
	return send_json(c, 200, o);
}

static enum MHD_Result api_post(struct desk *d, struct MHD_Connection *c, const char *url, json_t *in)
{
	int rc;

	if (strcmp(url, "/api/revoke") == 0) {
		struct job j = {.what = JOB_REVOKE, .which = jstr(in, "device")};

		if (j.which == NULL)
			return send_error(c, 400, PB_EINVAL);
		rc = on_loop(d, &j);
		return rc != 0 ? send_error(c, status_of(rc), rc) : send_json(c, 200, json_pack("{s:b}", "ok", 1));
	}
	if (strcmp(url, "/api/instruct") == 0) {
		struct job j = {.what = JOB_INSTRUCT, .which = jstr(in, "device"), .op = jstr(in, "op"),
				.iccid = jstr(in, "iccid"), .to = jstr(in, "to")};

		if (j.which == NULL || j.op == NULL || j.iccid == NULL)
			return send_error(c, 400, PB_EINVAL);
		if (j.to != NULL && j.to[0] == 0)
			j.to = NULL;
		rc = on_loop(d, &j);
		return rc != 0 ? send_error(c, status_of(rc), rc) : send_json(c, 200, json_pack("{s:b}", "ok", 1));
	}
	if (strcmp(url, "/api/pair/new") == 0) {
		struct job j = {.what = JOB_ADVERTISE};

		rc = on_loop(d, &j);
		return rc != 0 ? send_error(c, 500, rc) : send_json(c, 200, json_pack("{s:b}", "ok", 1));
	}
	if (strcmp(url, "/api/verify") == 0)
		return api_verify(d, c);
	if (strcmp(url, "/api/prune") == 0)
		return api_prune(d, c, in);
	if (strcmp(url, "/api/open") == 0)
		return api_open(d, c, in);
	if (strcmp(url, "/api/lock") == 0) {
		pthread_mutex_lock(&d->mu);
		pb_desktop_view_lock(&d->view);
		pthread_mutex_unlock(&d->mu);
		return send_json(c, 200, json_pack("{s:b}", "ok", 1));
	}
	return send_text(c, 404, "not found");
}

static enum MHD_Result api_get(struct desk *d, struct MHD_Connection *c, const char *url)
{
	if (strcmp(url, "/api/session") == 0)
		return send_json(c, 200, json_pack("{s:s, s:s}", "csrf", d->csrf, "version", pb_version()));
	if (strcmp(url, "/api/events") == 0)
		return serve_events(d, c);
	if (strcmp(url, "/api/pair") == 0)
		return api_pair(d, c);
	if (strcmp(url, "/api/qr.svg") == 0)
		return api_qr(d, c);
	if (strcmp(url, "/api/devices") == 0)
		return api_devices(d, c);
	if (strcmp(url, "/api/instructions") == 0)
		return api_instructions(d, c);
	if (strcmp(url, "/api/backup") == 0) {
		json_t *o;

		pthread_mutex_lock(&d->mu);
		o = view_state(d);
		pthread_mutex_unlock(&d->mu);
		return send_json(c, 200, o);
	}
	if (strcmp(url, "/api/messages") == 0)
		return api_messages(d, c);
	if (strcmp(url, "/api/export") == 0)
		return api_export(d, c);
	if (strcmp(url, "/api/items") == 0)
		return api_items(d, c);
	return send_text(c, 404, "not found");
}

/* The first visit: the token from the printed address becomes a cookie,
 * and the browser is sent on to an address without it. */
static enum MHD_Result login(struct desk *d, struct MHD_Connection *c, const char *tok)
{
	struct MHD_Response *r;
	char cookie[160];
	enum MHD_Result ret;

	if (tok == NULL || strlen(tok) != SESSION_HEX - 1 || sodium_memcmp(tok, d->token, SESSION_HEX - 1) != 0)
		return send_text(c, 403, "forbidden: open the address peerback desktop printed");
	r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	secure_headers(r);
	snprintf(cookie, sizeof(cookie), "pb_session=%s; HttpOnly; SameSite=Strict; Path=/", d->session);
	MHD_add_response_header(r, "Set-Cookie", cookie);
	MHD_add_response_header(r, "Location", "/");
	ret = MHD_queue_response(c, 303, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_len, void **con_cls)
{
	struct desk *d = cls;
	struct req *rq = *con_cls;
	bool post = strcmp(method, "POST") == 0;

	(void)version;
	if (rq == NULL) {
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (post && *upload_len > 0) {
		if (rq->len + *upload_len > 65536) {
			rq->too_big = true;
		} else {
			char *b = realloc(rq->body, rq->len + *upload_len + 1);
			if (b == NULL)
				return MHD_NO;
			memcpy(b + rq->len, upload, *upload_len);
			rq->body = b;
			rq->len += *upload_len;
			rq->body[rq->len] = 0;
		}
		*upload_len = 0;
		return MHD_YES;
	}
	if (!good_host(d, c))
		return send_text(c, 403, "forbidden: wrong Host");
	if (strcmp(url, "/login") == 0 && !post)
		return login(d, c, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token"));
	if (!has_session(d, c))
		return send_text(c, 403, "forbidden: open the address peerback desktop printed");
	if (post) {
		json_t *in;
		enum MHD_Result ret;

		if (!same_origin(d, c))
			return send_text(c, 403, "forbidden: cross-site request");
		if (rq->too_big)
			return send_text(c, 413, "too large");
		in = json_loads(rq->body != NULL ? rq->body : "{}", 0, NULL);
		if (in == NULL || !json_is_object(in)) {
			json_decref(in);
			return send_text(c, 400, "a JSON object is expected");
		}
		ret = api_post(d, c, url, in);
		/* The passphrase leaves memory with the request: the body and the
		 * parsed copy are wiped before they are freed. */
		if (rq->body != NULL)
			sodium_memzero(rq->body, rq->len);
		if (json_is_string(json_object_get(in, "passphrase")))
			sodium_memzero((char *)json_string_value(json_object_get(in, "passphrase")),
				       json_string_length(json_object_get(in, "passphrase")));
		json_decref(in);
		return ret;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_text(c, 405, "method not allowed");
	if (strncmp(url, "/api/", 5) == 0)
		return api_get(d, c, url);
	for (const pb_desktop_asset_t *a = pb_desktop_assets; a->path != NULL; a++)
		if (strcmp(url, a->path) == 0 || (strcmp(url, "/") == 0 && strcmp(a->path, "/index.html") == 0))
			return send_buf(c, 200, a->type, a->data, a->len, false);
	return send_text(c, 404, "not found");
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
	struct req *rq = *con_cls;

	(void)cls;
	(void)c;
	(void)t;
	if (rq != NULL) {
		if (rq->body != NULL)
			sodium_memzero(rq->body, rq->len);
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

/* ---- the command ------------------------------------------------------------ */

static int parse_addr(const char *text, struct sockaddr_in *sa)
{
	char ip[64];
	const char *colon = strrchr(text, ':');
	long port;

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (colon == NULL || (size_t)(colon - text) >= sizeof(ip))
		return PB_EINVAL;
	memcpy(ip, text, (size_t)(colon - text));
	ip[colon - text] = 0;
	port = strtol(colon + 1, NULL, 10);
	if (port < 0 || port > 65535 || inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
		return PB_EINVAL;
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

static int start_web(struct desk *d, const char *listen)
{
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;
	char ip[64];

	if (parse_addr(listen != NULL ? listen : "127.0.0.1:0", &sa) != 0)
		return PB_EINVAL;
	d->mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
					  MHD_USE_ERROR_LOG,
				  0, NULL, NULL, on_request, d, MHD_OPTION_SOCK_ADDR, &sa,
				  MHD_OPTION_NOTIFY_COMPLETED, on_done, d, MHD_OPTION_CONNECTION_TIMEOUT,
				  (unsigned)120, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
	if (d->mhd == NULL)
		return -EADDRINUSE;
	info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
	inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
	snprintf(d->hostport, sizeof(d->hostport), "%s:%u", ip, info != NULL ? info->port : 0);
	snprintf(d->origin, sizeof(d->origin), "http://%s", d->hostport);
	if (sa.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
		fprintf(stderr, "peerback desktop: warning: the web app listens on %s, reachable from other "
				"machines; anyone with the address and its token controls this host\n", ip);
	return 0;
}

int pb_cmd_desktop(pb_cli_t *cli, int argc, char **argv)
{
	pb_host_config_t o;
	struct desk *d;
	const char *ui_listen = NULL;
	uv_loop_t loop;
	int rc;

	if (pb_cli_wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return pb_cli_fail_err(cli, -ENOMEM, "desktop");
	memset(&o, 0, sizeof(o));
	o.home = cli->home;
	d->cli = cli;
	d->idle_lock = 300;
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--listen") == 0) {
			o.listen = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--ui-listen") == 0) {
			ui_listen = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--qr-ttl") == 0) {
			long v = strtol(argv[++i], NULL, 10);
			if (v < 1 || v > 86400) {
				free(d);
				return pb_cli_fail(cli, "--qr-ttl takes 1 to 86400 seconds");
			}
			o.qr_ttl = (uint64_t)v;
		} else if (i + 1 < argc && strcmp(argv[i], "--idle-lock") == 0) {
			long v = strtol(argv[++i], NULL, 10);
			if (v < 1 || v > 1440) {
				free(d);
				return pb_cli_fail(cli, "--idle-lock takes 1 to 1440 minutes");
			}
			d->idle_lock = (unsigned)v * 60;
		} else if (strcmp(argv[i], "--no-announce") == 0) {
			o.no_announce = true;
		} else {
			fprintf(stderr, "peerback desktop: unknown argument '%s'\n%s", argv[i], usage_text);
			free(d);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	random_hex(d->token);
	random_hex(d->session);
	random_hex(d->csrf);
	if ((rc = uv_loop_init(&loop)) != 0) {
		free(d);
		return pb_cli_fail_err(cli, rc, "desktop");
	}
	d->loop = &loop;
	rc = pb_host_new(&loop, &o, on_event, d, &d->host);
	if (rc == 0) {
		d->async.data = d->sigint.data = d->sigterm.data = d->idle.data = d;
		uv_async_init(&loop, &d->async, run_jobs);
		uv_signal_init(&loop, &d->sigint);
		uv_signal_init(&loop, &d->sigterm);
		uv_timer_init(&loop, &d->idle);
		uv_signal_start(&d->sigint, on_signal, SIGINT);
		uv_signal_start(&d->sigterm, on_signal, SIGTERM);
		uv_timer_start(&d->idle, on_idle, 10000, 10000);
		rc = pb_host_start(d->host);
		if (rc == 0)
			rc = start_web(d, ui_listen);
		if (rc == 0) {
			/* The address with its token: on stdout only, never in a log line. */
			/* The address with its token is for the user's eyes: with
			 * --json it goes to the terminal (stderr), not the stream. */
			if (cli->json)
				(void)pb_cli_json("{s:s, s:s, s:I}", "event", "desktop", "url", d->origin, "host_port",
						  (json_int_t)pb_host_port(d->host));
			fprintf(cli->json ? stderr : stdout, "Open %s/login?token=%s\n", d->origin, d->token);
			fflush(cli->json ? stderr : stdout);
		} else {
			on_signal(&d->sigint, SIGTERM);
		}
		(void)uv_run(&loop, UV_RUN_DEFAULT);
		if (d->mhd != NULL)
			MHD_stop_daemon(d->mhd);
		pb_host_free(d->host);
	}
	(void)uv_loop_close(&loop);
	pb_desktop_view_lock(&d->view);
	for (size_t i = 0; i < EVLOG; i++)
		free(d->evlog[i]);
	free(d->uri);
	sodium_memzero(d->token, sizeof(d->token));
	sodium_memzero(d->session, sizeof(d->session));
	free(d);
	if (rc == PB_EACCT_NOT_LOGGED_IN)
		return pb_cli_fail(cli, "this device is not logged in; run peerback account login first");
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "desktop (state in %s)", cli->home);
	return 0;
}
#endif
