/* The host's control socket.
 *
 * `peerback host prune` cannot open the store while the host holds its lock,
 * so it asks the running host instead, on HOME/control.sock (0600, in the
 * host's own home: only its user may ask). One request a connection, one
 * line each way:
 *   prune LAST DAILY WEEKLY MONTHLY
 *   {"rc":0,"snapshots_removed":N,"chunks_removed":N,"packs_deleted":N,
 *    "packs_repacked":N,"bytes_freed":N}       (rc: 0 or a PB_E code)
 * The work runs as a job of the storage worker, so it never meets a
 * phone's request half way. Chunks committed by a backup still under way
 * are in no snapshot yet: while any phone is connected, GC spares chunks
 * younger than CONTROL_GC_GRACE. The asking side is here too
 * (pb__host_control_prune), so the line format lives in one file. */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "peerback.h"
#include "agent/host/host.h"
#include "agent/host/hostdb.h"
#include "agent/host/worker.h"
#include "peerback/store.h"
#include "agent/util/fsutil.h"
#include "agent/util/list.h"

#define CONTROL_REQ_MAX 128
#define CONTROL_GC_GRACE (6 * 3600)

struct control_conn {
	uv_pipe_t pipe;
	pb_host_ctx_t *ctx;
	pb_host_control_t *ctl;
	pb_link_t link;                   /* in the control's open requests */
	pb_host_job_t job;
	uv_write_t wr;
	char req[CONTROL_REQ_MAX];
	size_t len;
	bool submitted;
	pb_store_keep_t pol;
	int64_t min_age;
	struct control_dev {
		char account[PB_ACCOUNT_MAX + 1];
		char hex[2 * PB_DEVICE_ID_LEN + 1];
	} *devs;
	size_t ndevs, cap;
	uint64_t removed;
	pb_store_gc_report_t gc;
	int rc;
	char reply[256];
};

static void control_closed(uv_handle_t *h)
{
	struct control_conn *c = h->data;
	pb_host_control_t *ctl = c->ctl;

	pb__link_remove(&ctl->conns, &c->link);
	ctl->nconns--;
	free(c->devs);
	free(c);
	if (ctl->stopping && ctl->nconns == 0 && ctl->idle != NULL)
		ctl->idle(ctl->idle_arg);
}

static void control_written(uv_write_t *wr, int status)
{
	struct control_conn *c = wr->data;

	(void)status;
	uv_close((uv_handle_t *)&c->pipe, control_closed);
}

static void control_answer(struct control_conn *c)
{
	uv_buf_t buf;
	int n = snprintf(c->reply, sizeof(c->reply),
			 "{\"rc\":%d,\"snapshots_removed\":%llu,\"chunks_removed\":%llu,\"packs_deleted\":%llu,"
			 "\"packs_repacked\":%llu,\"bytes_freed\":%llu}\n",
			 c->rc, (unsigned long long)c->removed, (unsigned long long)c->gc.chunks_removed,
			 (unsigned long long)c->gc.packs_deleted, (unsigned long long)c->gc.packs_repacked,
			 (unsigned long long)c->gc.bytes_freed);

	buf = uv_buf_init(c->reply, n > 0 && (size_t)n < sizeof(c->reply) ? (unsigned)n : 0);
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &buf, 1, control_written) != 0)
		uv_close((uv_handle_t *)&c->pipe, control_closed);
}

/* On the worker: the same prune as `peerback host prune` on a stopped host. */
static void control_run(pb_host_job_t *job)
{
	struct control_conn *c = (struct control_conn *)((char *)job - offsetof(struct control_conn, job));
	pb_store_t *store = c->ctx->store;
	int rc = 0;

	for (size_t i = 0; i < c->ndevs && rc == 0; i++) {
		pb_store_prune_result_t res;
		pb_store_ns_t *ns;

		if ((rc = pb_store_ns_open(store, c->devs[i].account, c->devs[i].hex, &ns)) != 0)
			break;
		rc = pb_store_prune_keep(ns, &c->pol, false, &res);
		if (rc == 0) {
			c->removed += res.removed;
			pb_store_prune_result_free(&res);
		}
		pb_store_ns_close(ns);
	}
	if (rc == 0)
		rc = pb_store_gc(store, c->min_age, &c->gc);
	c->rc = rc;
}

static void control_done(pb_host_job_t *job, bool canceled)
{
	struct control_conn *c = (struct control_conn *)((char *)job - offsetof(struct control_conn, job));

	if (canceled)
		c->rc = PB_ECANCELED;
	control_answer(c);
}

static void control_add_dev(void *arg, const pb_paired_device_t *d)
{
	struct control_conn *c = arg;
	struct control_dev *nd;

	if (c->rc != 0)
		return;
	if (c->ndevs == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 16;

		if ((nd = realloc(c->devs, ncap * sizeof(*nd))) == NULL) {
			c->rc = PB_ENOMEM;
			return;
		}
		c->devs = nd;
		c->cap = ncap;
	}
	nd = &c->devs[c->ndevs++];
	snprintf(nd->account, sizeof(nd->account), "%s", d->account);
	pb__hex(d->device_id, PB_DEVICE_ID_LEN, nd->hex);
}

static void control_request(struct control_conn *c)
{
	unsigned v[4];
	int rc;

	c->submitted = true;
	uv_read_stop((uv_stream_t *)&c->pipe);
	if (sscanf(c->req, "prune %u %u %u %u", &v[0], &v[1], &v[2], &v[3]) != 4) {
		c->rc = PB_EINVAL;
		control_answer(c);
		return;
	}
	c->pol.last = v[0];
	c->pol.daily = v[1];
	c->pol.weekly = v[2];
	c->pol.monthly = v[3];
	c->min_age = c->ctx->nconns > 0 ? CONTROL_GC_GRACE : 0;
	rc = pb__hostdb_list(c->ctx->db, control_add_dev, c);
	if (rc < 0 || c->rc != 0) {
		c->rc = rc < 0 ? rc : c->rc;
		control_answer(c);
		return;
	}
	c->job.run = control_run;
	c->job.done = control_done;
	pb__host_worker_submit(c->ctx->worker, &c->job);
}

static void control_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct control_conn *c = h->data;

	(void)hint;
	*buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof(c->req) - 1 - c->len));
}

static void control_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct control_conn *c = st->data;
	char *nl;

	(void)buf;
	if (c->submitted)
		return;
	if (n < 0 || (n == 0 && c->len + 1 >= sizeof(c->req))) {
		uv_close((uv_handle_t *)&c->pipe, control_closed);
		return;
	}
	c->len += (size_t)n;
	c->req[c->len] = '\0';
	if ((nl = strchr(c->req, '\n')) != NULL) {
		*nl = '\0';
		control_request(c);
	} else if (c->len + 1 >= sizeof(c->req)) {
		uv_close((uv_handle_t *)&c->pipe, control_closed);
	}
}

static void on_control(uv_stream_t *server, int status)
{
	pb_host_control_t *ctl = server->data;
	struct control_conn *c;

	if (status < 0 || ctl->stopping || (c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->ctx = ctl->pipe_ctx;
	c->ctl = ctl;
	pb__link_push(&ctl->conns, &c->link);
	ctl->nconns++;
	uv_pipe_init(server->loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 ||
	    uv_read_start((uv_stream_t *)&c->pipe, control_alloc, control_read) != 0)
		uv_close((uv_handle_t *)&c->pipe, control_closed);
}

void pb__host_control_start(pb_host_ctx_t *ctx, uv_loop_t *loop, pb_host_control_t *ctl)
{
	char path[4096];
	mode_t old;
	int rc;

	ctl->pipe_ctx = ctx;
	if (pb__path_join(path, sizeof(path), ctx->home, "control.sock") != 0)
		return;
	/* We hold the store's lock: a socket file left here is a dead host's. */
	(void)unlink(path);
	uv_pipe_init(loop, &ctl->pipe, 0);
	ctl->pipe.data = ctl;
	old = umask(077);
	rc = uv_pipe_bind(&ctl->pipe, path);
	umask(old);
	if (rc == 0)
		(void)chmod(path, 0600);
	if (rc != 0 || uv_listen((uv_stream_t *)&ctl->pipe, 8, on_control) != 0) {
		char msg[4200];
		pb_event_t ev;

		snprintf(msg, sizeof(msg), "no control socket at %s; prune needs the host stopped", path);
		memset(&ev, 0, sizeof(ev));
		ev.type = PB_EVENT_ERROR;
		ev.name = "error";
		ev.error = rc != 0 ? rc : PB_EIO;
		ev.message = msg;
		pb__host_emit(ctx, &ev);
		ctl->open = true; /* closed by pb__host_control_stop, like an open one */
		ctl->failed = true;
		return;
	}
	ctl->open = true;
}

void pb__host_control_stop(pb_host_ctx_t *ctx, pb_host_control_t *ctl, uv_close_cb close_cb)
{
	char path[4096];

	ctl->stopping = true;
	/* Requests with the worker are answered and close themselves. */
	for (pb_link_t *l = ctl->conns; l != NULL; l = l->next) {
		struct control_conn *c = PB_CONTAINER(l, struct control_conn, link);

		if (!c->submitted && !uv_is_closing((uv_handle_t *)&c->pipe))
			uv_close((uv_handle_t *)&c->pipe, control_closed);
	}
	if (!ctl->open)
		return;
	ctl->pipe.data = ctl->close_arg;
	uv_close((uv_handle_t *)&ctl->pipe, close_cb);
	if (!ctl->failed && pb__path_join(path, sizeof(path), ctx->home, "control.sock") == 0)
		(void)unlink(path);
	ctl->open = false;
}

int pb__host_control_prune(const char *home, const unsigned keep[4], pb_host_prune_report_t *rep)
{
	struct sockaddr_un sa;
	char req[128], buf[512];
	size_t len = 0;
	json_t *j;
	ssize_t n;
	int fd, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (pb__path_join(sa.sun_path, sizeof(sa.sun_path), home, "control.sock") != 0)
		return 1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return 1;
	}
	snprintf(req, sizeof(req), "prune %u %u %u %u\n", keep[0], keep[1], keep[2], keep[3]);
	/* MSG_NOSIGNAL: a host that went away is an error, not SIGPIPE. */
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
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
	rep->snapshots_removed = (uint64_t)json_integer_value(json_object_get(j, "snapshots_removed"));
	rep->chunks_removed = (uint64_t)json_integer_value(json_object_get(j, "chunks_removed"));
	rep->packs_deleted = (uint64_t)json_integer_value(json_object_get(j, "packs_deleted"));
	rep->packs_repacked = (uint64_t)json_integer_value(json_object_get(j, "packs_repacked"));
	rep->bytes_freed = (uint64_t)json_integer_value(json_object_get(j, "bytes_freed"));
	json_decref(j);
	return rc;
}

