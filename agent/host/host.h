/* The backup host: listens, advertises itself by QR code, authenticates
 * phones (Noise NKpsk0 or IK, then the account challenge/response), and
 * serves their requests. Private to the library and its programs. */
#ifndef PB_AGENT_HOST_H
#define PB_AGENT_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/account/account.h"
#include "agent/host/hostdb.h"
#include "agent/host/worker.h"
#include "agent/util/ratelimit.h"
#include "protocol/channel.h"

typedef struct pb_host_s pb_host_t;
typedef struct pb_host_conn_s pb_host_conn_t;

typedef struct pb_host_options_s {
	const char *home;     /* state directory */
	const char *listen;   /* "ADDR:PORT", or NULL for every interface */
	const char *qr_png;   /* write each QR as PNG here, or NULL */
	const char *qr_svg;   /* write each QR as SVG here, or NULL */
	uint64_t qr_ttl;      /* seconds a QR code stays valid (default 300) */
	bool json;            /* one JSON object per event on stdout */
	bool no_qr;           /* print the URI only, no terminal QR */
	unsigned qr_flags;    /* PB_QR_TERM_* */
	unsigned max_failures;/* failed attempts per address per minute (default 5) */
	uint64_t announce_interval; /* seconds between LAN announcements (default 5) */
	bool no_announce;     /* do not announce on the LAN */
	uint64_t auth_timeout; /* seconds from accept to authenticated (default 10) */
	uint64_t idle_timeout; /* seconds of silence that close an authenticated connection (default 120) */
	unsigned max_connections; /* held at once (default 256) */
	unsigned max_per_address; /* held at once from one address (default 32) */
} pb_host_options_t;

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

/* Runs the host until SIGINT or SIGTERM. SIGUSR1 shows a fresh QR code. */
__attribute__((warn_unused_result)) int pb_host_run(const pb_host_options_t *opts);

/* Requests from an authenticated device (agent/host/requests.c). Takes
 * ownership of env. */
void pb__host_request(pb_host_conn_t *conn, pb_envelope_t *env);

/* The largest request a device may send once authenticated: a snapshot's
 * list of chunk names for two million items. */
#define PB_HOST_SEQ_CAP (64u << 20)

/* The largest message before authentication: an AuthResponse with a
 * certificate and a ticket (PB_CERT_MAX each) and its signature. */
#define PB_HOST_PREAUTH_CAP (2 * PB_CERT_MAX + 512)

/* The host's store and pairing state, for request handlers. The store is
 * driven only through the worker's jobs. */
struct pb_store_s *pb__host_store(pb_host_t *host);
pb_hostdb_t *pb__host_db(pb_host_t *host);
pb_host_worker_t *pb__host_worker(pb_host_t *host);

/* Whether any phone is connected (a backup may be under way). */
bool pb__host_serving(const pb_host_t *host);

/* HOME/control.sock (agent/host/control.c): `peerback host prune` asks the
 * running host, which prunes on its storage worker. Starting is not fatal:
 * without the socket, prune needs the host stopped, as before. */
typedef struct pb_host_control_s {
	uv_pipe_t pipe;
	bool open;
} pb_host_control_t;
void pb__host_control_start(pb_host_t *host, uv_loop_t *loop, pb_host_control_t *ctl);
void pb__host_control_stop(pb_host_t *host, pb_host_control_t *ctl);

/* The host's state directory and JSON mode, for request handlers. */
const char *pb__host_home(const pb_host_t *host);
bool pb__host_json(const pb_host_t *host);

/* Sends a Reply with the given id and error code (0: an empty success). */
void pb__host_reply_error(pb_host_conn_t *conn, uint64_t id, int code);

#endif
