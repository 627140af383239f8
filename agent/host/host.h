/* The backup host's parts (include/peerback/host.h is its API): the
 * transport and authentication (host.c) hand authenticated requests to the
 * storage service (requests.c) through pb_host_service_t; the control
 * socket (control.c) works through the shared pb_host_ctx_t. Output goes
 * through the embedder's event callback. Private to the library. */
#ifndef PB_AGENT_HOST_H
#define PB_AGENT_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/account/account.h"
#include "agent/host/hostdb.h"
#include "agent/host/worker.h"
#include "agent/util/list.h"
#include "agent/util/ratelimit.h"
#include "peerback/event.h"
#include "peerback/host.h"
#include "protocol/channel.h"

typedef struct pb_host_conn_s pb_host_conn_t;

/* What the host's parts share, set by the host (agent/host/host.c) before
 * any connection or control request arrives: the storage service
 * (requests.c) and the control socket (control.c) reach the host only
 * through it, never by calling into host.c. Owned by the host; lives as
 * long as it does. */
typedef struct pb_host_ctx_s {
	struct pb_store_s *store;  /* driven only through the worker's jobs */
	pb_hostdb_t *db;           /* used on the loop only */
	pb_host_worker_t *worker;
	const char *home;
	unsigned nconns;           /* connections held (a backup may be under way) */
	/* Requests read but not answered yet, over all connections, against
	 * the host's budget for them (requests.c; loop only). */
	size_t queued, queue_budget, queued_peak;
	/* Replies made but not yet on the wire, over all connections, and
	 * those the reads with the worker may still make, against the host's
	 * budget for them (requests.c; loop only). */
	size_t replies, replies_due, reply_budget, replies_peak;
	struct conn_store *reply_wait; /* connections whose reads wait for it, oldest first */
	bool reply_waking;
	pb_link_t *stores;         /* every connection's storage state */
	struct conn_store *held;   /* connections not read meanwhile, oldest first */
	bool releasing;
	pb_event_cb on_event;      /* the embedder's, may be NULL */
	void *arg;
} pb_host_ctx_t;

/* Passes an event to the embedder. */
static inline void pb__host_emit(const pb_host_ctx_t *ctx, const pb_event_t *ev)
{
	if (ctx->on_event != NULL)
		(void)ctx->on_event(ctx->arg, ev);
}

enum pb_host_conn_state {
	PB_HOST_CONN_HANDSHAKE = 0,
	PB_HOST_CONN_CHALLENGED,
	PB_HOST_CONN_CHECKING,  /* the account service is asked, off the loop */
	PB_HOST_CONN_HOST_SENT,
	PB_HOST_CONN_READY,
};

#define PB_HOST_MAX_SECRETS 7

struct pb_host_conn_s {
	pb_channel_t ch; /* first: the channel's address is the connection's */
	pb_host_t *host;
	pb_host_ctx_t *ctx;
	enum pb_host_conn_state state;
	uint8_t challenge[PB_CHALLENGE_LEN];
	pb_host_secret_t secrets[PB_HOST_MAX_SECRETS];
	int nsecrets;
	int secret_index; /* -1 for IK */
	pb_paired_device_t device;
	uint8_t ticket_id[16];
	uint8_t cert[PB_CERT_MAX]; /* the device's certificate, as it sent it */
	size_t cert_len;
	void *app;        /* request handlers' per-connection state */
	void (*app_free)(pb_host_conn_t *conn);
	pb_host_conn_t *prev, *next; /* the host's connections, oldest first */
	struct pb_host_lookup_s *lookup; /* the account service question in flight */
	uint8_t claimed[PB_DEVICE_ID_LEN]; /* the device its certificate names */
	bool has_claimed;
};

/* The storage service the transport hands an authenticated device's
 * requests to (agent/host/requests.c). request takes ownership of env and
 * answers on conn's channel; it may keep per-connection state in conn->app
 * with conn->app_free to release it when the connection closes. */
typedef struct pb_host_service_s {
	void (*request)(pb_host_conn_t *conn, pb_envelope_t *env);
} pb_host_service_t;

extern const pb_host_service_t pb__host_storage_service;

/* The largest request a device may send once authenticated: a snapshot's
 * list of chunk names for two million items. */
#define PB_HOST_SEQ_CAP (64u << 20)

/* The largest message before authentication: an AuthResponse with a
 * certificate and a ticket (PB_CERT_MAX each) and its signature. */
#define PB_HOST_PREAUTH_CAP (2 * PB_CERT_MAX + 512)

/* HOME/control.sock (agent/host/control.c): pb_host_prune from another
 * process asks the running host, which prunes on its storage worker.
 * Starting is not fatal: without the socket, prune needs the host stopped.
 * Stopping closes the socket and the requests not yet with the worker;
 * the others close once answered. */
typedef struct pb_host_control_s {
	uv_pipe_t pipe;
	bool open;                 /* the pipe is to be closed */
	bool failed;               /* ...but never listened */
	pb_host_ctx_t *pipe_ctx;
	void *close_arg;           /* the pipe's data for the close callback */
	unsigned nconns;           /* requests whose pipes are open */
	pb_link_t *conns;          /* of struct control_conn */
	void (*idle)(void *arg);   /* called when the last request closed after stop */
	void *idle_arg;
	bool stopping;
} pb_host_control_t;
void pb__host_control_start(pb_host_ctx_t *ctx, uv_loop_t *loop, pb_host_control_t *ctl);
/* close_cb (may be NULL) is the listening pipe's close callback. */
void pb__host_control_stop(pb_host_ctx_t *ctx, pb_host_control_t *ctl, uv_close_cb close_cb);

/* Asks the host running on home, over its control socket, to prune with
 * the policy; 1 when none answers there (agent/host/control.c). */
int pb__host_control_prune(const char *home, const unsigned keep[4], pb_host_prune_report_t *rep);

/* For the administration calls (agent/host/admin.c): the host's home,
 * whether the handle serves (pb_host_new) or only administers
 * (pb_host_open), and its host.db, opened on first use (with create false,
 * PB_ENOTFOUND when the host never paired anything). */
const char *pb__host_home(const pb_host_t *host);
bool pb__host_serving(const pb_host_t *host);
__attribute__((warn_unused_result)) int pb__host_db(pb_host_t *host, bool create, pb_hostdb_t **out);

#endif
