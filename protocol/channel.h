/* A secure session on a libuv TCP stream, for servers (the host and the
 * account service). Private to the library.
 *
 * Lifetime: the owner allocates a pb_channel_t, calls pb__channel_accept,
 * and frees it only from on_close, after libuv has closed the handles. */
#ifndef PB_PROTOCOL_CHANNEL_H
#define PB_PROTOCOL_CHANNEL_H

#include <uv.h>

#include "protocol/session.h"

typedef struct pb_channel_s pb_channel_t;

typedef struct pb_channel_callbacks_s {
	/* The handshake completed; the owner may now send. */
	void (*on_open)(pb_channel_t *ch);
	/* One Envelope arrived; ownership passes to the callback. */
	void (*on_envelope)(pb_channel_t *ch, pb_envelope_t *env);
	/* The channel is closed with status (0, or why); free it here. */
	void (*on_close)(pb_channel_t *ch, int status);
} pb_channel_callbacks_t;

struct pb_channel_s {
	uv_tcp_t tcp;
	uv_timer_t timer;
	pb_session_t sess;
	pb_channel_callbacks_t cb;
	void *data;              /* the owner's */
	char peer[64];           /* "addr:port" of the peer */
	struct sockaddr_storage peer_addr;
	size_t queued;           /* bytes written but not yet on the wire */
	size_t out_high;         /* above this much queued, reading stops */
	uint8_t *backlog;        /* bytes read but not yet fed (while held) */
	size_t backlog_len;
	int status;              /* why it closes */
	int handles_open;
	bool closing;
	bool opened;
	bool flush_then_close;
	bool owner_paused;       /* pb__channel_pause */
	bool feeding;            /* inside consume(): delivering Envelopes */
	bool until_auth;         /* the deadline runs until pb__channel_authenticated */
	bool authenticated;
	bool busy;               /* pb__channel_busy */
	uint64_t handshake_timeout_ms;
	uint64_t idle_ms;        /* once authenticated: silence that closes it */
	uint64_t last_io;        /* uv_now of the last byte in or out */
	void (*on_drained)(pb_channel_t *ch); /* pb__channel_when_drained */
	/* Set by the owner (NULL: none): output queued from then on is also
	 * counted in *out_total, a count the owner keeps over its channels,
	 * and on_sent is called each time some of it has gone (or was dropped
	 * by the close), after the count went down. on_sent may send on other
	 * channels; it must not close or free this one. */
	size_t *out_total;
	void (*on_sent)(pb_channel_t *ch);
	/* While pb__channel_send sends a message of several frames: the
	 * write request they are made in, and its room. */
	struct write_req *batch;
	size_t batch_cap;
};

/* Queued output above which a channel stops reading, until half of it has
 * gone: a peer that asks and never reads holds at most this much of the
 * server's memory, plus the reply being made when it was reached. */
#define PB_CHANNEL_OUT_HIGH (4u << 20)

/* Accepts a connection from server and starts the handshake as responder
 * with the given candidates (copied). Envelopes larger than max_envelope
 * (0: PB_SEQ_DEFAULT_CAP) are refused. Returns an error, without calling
 * on_close, only when nothing was set up; any later failure, accept
 * included, reaches on_close. */
__attribute__((warn_unused_result)) int pb__channel_accept(uv_stream_t *server, pb_channel_t *ch,
							   const pb_session_candidate_t *cands, size_t ncands,
							   size_t max_envelope, const pb_channel_callbacks_t *cb,
							   void *data);

/* For servers that authenticate their peers after the handshake (the
 * host): from now on, messages are capped at preauth_cap bytes and the
 * connection is closed (PB_ETIMEOUT) unless pb__channel_authenticated is
 * called within deadline_ms of the accept. Call right after accept. */
void pb__channel_require_auth(pb_channel_t *ch, uint64_t deadline_ms, size_t preauth_cap);

/* The peer is authenticated: the deadline stops, Envelopes up to
 * max_envelope are accepted, and idle_ms (0: never) without a byte in
 * either direction closes the channel (PB_ETIMEOUT). */
void pb__channel_authenticated(pb_channel_t *ch, uint64_t idle_ms, size_t max_envelope);

/* The peer has fallen behind: more than out_high bytes of replies wait.
 * Whoever makes replies off the read path (a queue of requests served
 * later) checks this before making another. */
static inline bool pb__channel_congested(const pb_channel_t *ch)
{
	return ch->queued > ch->out_high;
}

/* Calls fn once, when the queued output has gone down to half of
 * out_high (never if the channel closes first). */
void pb__channel_when_drained(pb_channel_t *ch, void (*fn)(pb_channel_t *ch));

/* Sends an Envelope; returns an error only when the channel is unusable. */
__attribute__((warn_unused_result)) int pb__channel_send(pb_channel_t *ch, pb_envelope_t *env);

/* Sends an Error envelope, then closes once it is written. */
void pb__channel_fail(pb_channel_t *ch, int code, const char *message);

/* Closes after queued writes are flushed (5 s at most); on_close follows
 * with status. */
void pb__channel_close(pb_channel_t *ch, int status);

/* Stops or restarts reading (backpressure from the owner). Once paused, no
 * further Envelope is delivered, not even one in bytes already read, until
 * the owner restarts it (which may deliver them before it returns). */
void pb__channel_pause(pb_channel_t *ch, bool paused);

/* While busy, the owner is working on an answer the peer waits for (a
 * snapshot of a million references can take minutes): the connection is
 * not idle however long that takes, and its idle time starts again when
 * the owner is done. */
void pb__channel_busy(pb_channel_t *ch, bool busy);

#endif
