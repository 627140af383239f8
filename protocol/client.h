/* A blocking secure-session client over a TCP socket, for the phone side's
 * sequential flows (login, pairing, backup, restore). Private to the
 * library. */
#ifndef PB_PROTOCOL_CLIENT_H
#define PB_PROTOCOL_CLIENT_H

#include <sys/socket.h>

#include "protocol/session.h"

#define PB_CLIENT_MAX_QUEUE 64

typedef struct pb_client_tx_s pb_client_tx_t;

typedef struct pb_client_s {
	int fd;
	pb_session_t sess;
	pb_envelope_t *queue[PB_CLIENT_MAX_QUEUE];
	size_t qhead, qlen;
	int timeout_ms;  /* for each receive */
	int write_err;
	uint64_t bytes_out, bytes_in;
	/* A phone's request whose reply is read (and checked) before the
	 * next reply it waits for; 0: none (agent/phone/phone.c). */
	uint64_t pending_reply;
	/* pb__client_send_more: the envelope being sent is held (MSG_MORE);
	 * held: bytes are held in the socket, pushed before the next wait. */
	bool more, held;
	uint8_t *rbuf; /* what a read takes in (allocated at the first read) */
	pb_client_tx_t *tx; /* the sending thread, once pb__client_tx_start ran */
} pb_client_t;

/* Connects to the first address that answers (each tried for
 * connect_timeout_ms), then runs the handshake as initiator. The connected
 * index goes to *which (may be NULL). */
__attribute__((warn_unused_result)) int pb__client_connect(pb_client_t *c, const struct sockaddr_storage *addrs,
							   size_t naddrs, int connect_timeout_ms,
							   const pb_session_candidate_t *cand, size_t *which);

/* The same, with the handshake and then each receive bounded by timeout_ms
 * (pb__client_connect uses 30 s). */
__attribute__((warn_unused_result)) int pb__client_connect_within(pb_client_t *c, const struct sockaddr_storage *addrs,
								  size_t naddrs, int connect_timeout_ms, int timeout_ms,
								  const pb_session_candidate_t *cand, size_t *which);

/* Runs the handshake as initiator on fd, a connected stream socket, which
 * the client then owns (closed on failure too); timeout_ms as above. */
__attribute__((warn_unused_result)) int pb__client_start(pb_client_t *c, int fd, int timeout_ms,
							 const pb_session_candidate_t *cand);

/* Sends one Envelope. */
__attribute__((warn_unused_result)) int pb__client_send(pb_client_t *c, pb_envelope_t *env);
/* Sends one Envelope that more follow before the client waits for an answer:
 * the kernel holds it (MSG_MORE) and the next send, or the next receive
 * before it waits, pushes everything held in one segment. A burst of small
 * requests then costs the peer one wake-up and the loopback one transmit. */
__attribute__((warn_unused_result)) int pb__client_send_more(pb_client_t *c, pb_envelope_t *env);

/* Receives the next Envelope (caller frees with pb__envelope_free) within the
 * client's timeout. An Error envelope from the peer is returned as
 * PB_EPEER_ERROR with *peer_code (may be NULL) set to the peer's code. */
__attribute__((warn_unused_result)) int pb__client_recv(pb_client_t *c, pb_envelope_t **out, int *peer_code);

/* From here on the client's frames are encrypted (on the caller's thread,
 * in order) into a ring of frames that a thread of the client writes to
 * the socket, several frames a write, while the caller goes on: for a
 * bulk sender (a backup), whose thread would otherwise spend a third of
 * its time in the socket's writes. A write error or timeout comes back
 * from a later send, receive or pb__client_flush. Without memory or a
 * thread, the client writes on the caller's thread as before (0). */
int pb__client_tx_start(pb_client_t *c);
/* Waits until every frame sent is written (or the write failed: its
 * error); 0 without the sending thread. */
__attribute__((warn_unused_result)) int pb__client_flush(pb_client_t *c);

/* Closes and wipes; accepts a client that never connected. A client with
 * the sending thread writes what is queued first (within the timeout). */
void pb__client_close(pb_client_t *c);

/* Formats "addr:port" ("[v6]:port") into out. */
int pb__sockaddr_format(const struct sockaddr_storage *ss, char *out, size_t cap);

/* Parses "addr:port" or "[v6]:port" (numeric) into ss. */
__attribute__((warn_unused_result)) int pb__sockaddr_parse(const char *text, struct sockaddr_storage *ss);

#endif
