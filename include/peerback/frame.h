/* Framing and the message envelope of the wire contract.
 *
 * Every Noise message travels as a 2-byte big-endian length and that many
 * bytes (at most 65535). After the handshake each message carries one
 * protobuf Envelope (protocol/peerback.proto); an Envelope too large for one
 * message is sent as a sequence of Fragments and reassembled up to a cap. */
#ifndef PEERBACK_FRAME_H
#define PEERBACK_FRAME_H

#include "peerback/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_FRAME_MAX 65535
#define PB_FRAME_HDR 2
/* Largest Envelope payload in one transport message (65535 - AEAD tag). */
#define PB_ENVELOPE_MAX_PLAIN (PB_FRAME_MAX - 16)
/* Default cap on a reassembled Envelope. */
#define PB_SEQ_DEFAULT_CAP (16u << 20)

/* A frame reader holds at most one frame: its memory never grows. */
typedef struct pb_frame_reader_s {
	uint8_t buf[PB_FRAME_HDR + PB_FRAME_MAX];
	size_t have;
	size_t max_len; /* frames longer than this are refused (<= 65535) */
} pb_frame_reader_t;

PB_EXTERN void pb_frame_reader_init(pb_frame_reader_t *r, size_t max_len);

/* Consumes bytes from data (len) until one frame is complete. Returns 1 with
 * *frame / *frame_len pointing into the reader (valid until the next call)
 * when a frame is ready, 0 when all input was consumed without completing
 * one, or PB_EFRAME_TOOBIG for a declared length over max_len. *consumed says
 * how much input was used; call again with the rest. */
PB_EXTERN PB_WUR int pb_frame_reader_feed(pb_frame_reader_t *r, const uint8_t *data, size_t len, size_t *consumed,
					  const uint8_t **frame, size_t *frame_len);

/* At end of stream: 0 when no partial frame is pending, else
 * PB_EFRAME_TRUNCATED. */
PB_EXTERN PB_WUR int pb_frame_reader_eof(const pb_frame_reader_t *r);

/* Writes the 2-byte header for a frame of len bytes; PB_EFRAME_TOOBIG over
 * 65535. */
PB_EXTERN PB_WUR int pb_frame_header(size_t len, uint8_t hdr[PB_FRAME_HDR]);

#ifdef __cplusplus
}
#endif
#endif
