/* The Envelope codec: one protobuf Envelope per transport message, larger
 * ones split into Fragments and reassembled under a hard cap. Private to
 * the library and its tests. */
#ifndef PB_PROTOCOL_ENVELOPE_H
#define PB_PROTOCOL_ENVELOPE_H

#include "peerback.h"
#include "peerback/frame.h"
#include "protocol/aead.h"
#include "protocol/peerback.pb-c.h"

typedef Peerback__Envelope pb_envelope_t;

/* Receives each plaintext transport message of an encoded Envelope. */
typedef int (*pb_envelope_emit_cb)(void *arg, const uint8_t *msg, size_t len);

/* Serializes env (its version is set here) and emits one message, or a
 * sequence of Fragment messages when it does not fit in one. max_plain is
 * the largest message to emit (PB_ENVELOPE_MAX_PLAIN normally). */
int pb__envelope_encode(pb_envelope_t *env, size_t max_plain, pb_envelope_emit_cb emit, void *arg);

/* The same in parts (the message is their bytes one after the other):
 * a fragment's data is passed where it lies, not copied behind its head. */
typedef int (*pb_envelope_emit_parts_cb)(void *arg, const pb_aead_part_t *parts, size_t nparts, size_t len);
int pb__envelope_encode_parts(pb_envelope_t *env, size_t max_plain, pb_envelope_emit_parts_cb emit, void *arg);

/* Reassembles Envelopes from transport messages. */
typedef struct pb_envelope_decoder_s {
	uint8_t *buf;
	size_t len, total, cap, alloc;
	bool active; /* inside a sequence */
	/* A chunk's reply or put (chunk_head in envelope.c): the message's
	 * first skip bytes are its head, parsed into kind, id and name; buf
	 * holds only the chunk's data, which becomes the message's without a
	 * copy. */
	size_t skip;
	int kind;
	uint64_t id;
	uint8_t name[64];
	size_t name_len;
	/* What pb__envelope_place set aside. */
	uint8_t saved[16];
	size_t saved_len;
} pb_envelope_decoder_t;

enum { PB_ENVELOPE_CHUNK_REPLY = 1, PB_ENVELOPE_CHUNK_PUT };

void pb__envelope_decoder_init(pb_envelope_decoder_t *d, size_t cap);
void pb__envelope_decoder_free(pb_envelope_decoder_t *d);

/* Decodes one transport message. Returns 1 and sets *out (free with
 * pb__envelope_free) when an Envelope is complete, 0 when a fragment was
 * absorbed, or PB_EENV_VERSION, PB_EENV_MALFORMED, PB_ESEQ_TOOBIG. */
__attribute__((warn_unused_result)) int pb__envelope_decode(pb_envelope_decoder_t *d, const uint8_t *msg, size_t len,
							    pb_envelope_t **out);
void pb__envelope_free(pb_envelope_t *env);

/* A sequence's next transport message (len bytes of plaintext) decrypted
 * where its data belongs, not copied there: when a sequence is under way
 * and a fragment of len bytes in the encoder's form would carry the next
 * data, the place to decrypt it to (len bytes; its head then overlays the
 * end of the data before it, which is set aside), else NULL. Then
 * pb__envelope_decode_placed with those bytes decodes it as
 * pb__envelope_decode would (checking that it is that fragment, else
 * decoding it from a copy) and puts the data before it back; or, when it
 * could not be decrypted, pb__envelope_unplace puts it back. */
uint8_t *pb__envelope_place(pb_envelope_decoder_t *d, size_t len);
__attribute__((warn_unused_result)) int pb__envelope_decode_placed(pb_envelope_decoder_t *d, uint8_t *msg,
								   size_t len, pb_envelope_t **out);
void pb__envelope_unplace(pb_envelope_decoder_t *d, uint8_t *msg);

/* Convenience initializers. */
void pb__envelope_init(pb_envelope_t *env);

#endif
