/* A secure session: the Noise handshake, framing, and Envelopes, independent
 * of how bytes move. The libuv binding (protocol/channel.c) and the blocking
 * socket binding (protocol/client.c) both drive one of these. Private to the
 * library and its tests. */
#ifndef PB_PROTOCOL_SESSION_H
#define PB_PROTOCOL_SESSION_H

#include "peerback.h"
#include "peerback/frame.h"
#include "peerback/noise.h"
#include "protocol/envelope.h"

#define PB_SESSION_MAX_CANDIDATES 8

/* One way the peer may run the handshake. A responder may accept several
 * (IK for remembered devices, NKpsk0 for each live pairing secret): the first
 * message is tried against each, and the one that authenticates wins. */
typedef struct pb_session_candidate_s {
	const char *protocol; /* e.g. PB_NOISE_PAIRING; static string */
	pb_noise_config_t cfg; /* pointers must outlive pb_session_start */
	/* cfg.s_priv's public key (32) when the caller holds it, else NULL:
	 * the handshake then does not derive it again (a scalar
	 * multiplication for each candidate tried). */
	const uint8_t *s_pub;
	int tag;              /* returned by pb_session_matched() */
} pb_session_candidate_t;

/* pb_noise_hs_new with the public key of cfg->s_priv given (s_pub, 32
 * bytes, which must be that key's) instead of derived; s_pub NULL derives
 * it. In protocol/noise.c. */
int pb__noise_hs_new_pub(const char *protocol_name, bool initiator, const pb_noise_config_t *cfg,
			 const uint8_t *s_pub, pb_noise_hs_t **out);

/* pb_noise_encrypt (no associated data) of a message in parts, read where
 * they are (pb__aead_encrypt_parts); out must not overlap them. In
 * protocol/noise.c. */
int pb__noise_encrypt_parts(pb_noise_cipher_t *c, const pb_aead_part_t *parts, size_t nparts, size_t len,
			    uint8_t *out, size_t cap, size_t *out_len);

typedef struct pb_session_s {
	bool initiator;
	bool established;
	bool failed;
	pb_noise_hs_t *hs;
	pb_noise_cipher_t send, recv;
	uint8_t h[PB_NOISE_HASHLEN];
	uint8_t remote_static[32];
	bool has_remote_static;
	pb_session_candidate_t cands[PB_SESSION_MAX_CANDIDATES];
	size_t ncands;
	int matched_tag;
	pb_frame_reader_t reader;
	pb_envelope_decoder_t decoder;
	/* Set by the owner (from on_envelope) to stop pb__session_feed_some
	 * after the current frame: backpressure. */
	bool hold;
	/* Output: frames ready to be written, in order. */
	int (*write)(void *arg, const uint8_t *data, size_t len);
	void *write_arg;
	/* Optional (pb__session_set_frame_out): a frame's buffer from the
	 * writer, encrypted into, then given back to be sent. */
	uint8_t *(*frame_alloc)(void *arg, size_t len);
	int (*frame_send)(void *arg, uint8_t *frame, size_t len);
} pb_session_t;

/* Prepares a session. An initiator gives exactly one candidate; a responder
 * one or more. write() receives framed bytes to send (copied by it). */
int pb__session_init(pb_session_t *s, bool initiator, const pb_session_candidate_t *cands, size_t ncands,
		     int (*write)(void *arg, const uint8_t *data, size_t len), void *write_arg, size_t max_envelope);
void pb__session_free(pb_session_t *s);
/* Frames after the handshake are encrypted straight into a buffer that
 * alloc (write_arg, the frame's length) gives and that send (write_arg,
 * the buffer, its length) takes, written or not: no copy by write(). */
void pb__session_set_frame_out(pb_session_t *s, uint8_t *(*alloc)(void *arg, size_t len),
			       int (*send)(void *arg, uint8_t *frame, size_t len));

/* Initiator: writes the first handshake message. */
int pb__session_start(pb_session_t *s);

/* Feeds received bytes. For each complete Envelope, on_envelope is called
 * with ownership of it. Returns 0, or a negative error after which the
 * session is unusable. *established_now is set when the handshake just
 * completed during this call (may be NULL). */
__attribute__((warn_unused_result)) int pb__session_feed(pb_session_t *s, const uint8_t *data, size_t len,
							 void (*on_envelope)(void *arg, pb_envelope_t *env),
							 void *arg, bool *established_now);

/* The same, but stops after the frame during which the owner set s->hold;
 * *used receives how many of the len bytes were taken (the rest must be
 * fed again, in order, once the owner clears hold). */
__attribute__((warn_unused_result)) int pb__session_feed_some(pb_session_t *s, const uint8_t *data, size_t len,
							      void (*on_envelope)(void *arg, pb_envelope_t *env),
							      void *arg, bool *established_now, size_t *used);

/* Limits the size of the next Envelopes, whole or reassembled (cap bytes);
 * takes effect for the next sequence. */
void pb__session_set_cap(pb_session_t *s, size_t cap);

/* Called at end of stream: PB_EFRAME_TRUNCATED if it ended inside a frame,
 * PB_ENOISE_HANDSHAKE if it ended during the handshake, else
 * PB_EPEER_CLOSED. */
int pb__session_eof(const pb_session_t *s);

/* Encrypts, frames and writes an Envelope (fragmented when large). */
__attribute__((warn_unused_result)) int pb__session_send(pb_session_t *s, pb_envelope_t *env);

/* Sends an Error envelope (best effort). */
void pb__session_send_error(pb_session_t *s, int code, const char *message);

/* The candidate tag that completed the handshake (responder). */
int pb__session_matched(const pb_session_t *s);

#endif
