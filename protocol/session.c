/* The secure session state machine shared by the libuv and blocking
 * bindings. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "protocol/session.h"

int pb__session_init(pb_session_t *s, bool initiator, const pb_session_candidate_t *cands, size_t ncands,
		     int (*write)(void *arg, const uint8_t *data, size_t len), void *write_arg, size_t max_envelope)
{
	memset(s, 0, sizeof(*s));
	if (ncands == 0 || ncands > PB_SESSION_MAX_CANDIDATES || (initiator && ncands != 1))
		return PB_EINVAL;
	s->initiator = initiator;
	memcpy(s->cands, cands, ncands * sizeof(*cands));
	s->ncands = ncands;
	s->write = write;
	s->write_arg = write_arg;
	s->matched_tag = -1;
	pb_frame_reader_init(&s->reader, PB_FRAME_MAX);
	pb__envelope_decoder_init(&s->decoder, max_envelope);
	return 0;
}

void pb__session_set_frame_out(pb_session_t *s, uint8_t *(*alloc)(void *arg, size_t len),
			       int (*send)(void *arg, uint8_t *frame, size_t len))
{
	s->frame_alloc = alloc;
	s->frame_send = send;
}

void pb__session_free(pb_session_t *s)
{
	pb_noise_hs_free(s->hs);
	s->hs = NULL;
	pb_noise_cipher_wipe(&s->send);
	pb_noise_cipher_wipe(&s->recv);
	sodium_memzero(s->h, sizeof(s->h));
	pb__envelope_decoder_free(&s->decoder);
}

static int write_frame(pb_session_t *s, const uint8_t *msg, size_t len)
{
	uint8_t hdr[PB_FRAME_HDR];
	uint8_t *buf;
	int rc = pb_frame_header(len, hdr);

	if (rc != 0)
		return rc;
	buf = malloc(len + PB_FRAME_HDR);
	if (buf == NULL)
		return PB_ENOMEM;
	memcpy(buf, hdr, PB_FRAME_HDR);
	memcpy(buf + PB_FRAME_HDR, msg, len);
	rc = s->write(s->write_arg, buf, len + PB_FRAME_HDR);
	free(buf);
	return rc;
}

static int finish_handshake(pb_session_t *s)
{
	const uint8_t *rs = pb_noise_hs_remote_static(s->hs);
	int rc;

	if (rs != NULL) {
		memcpy(s->remote_static, rs, 32);
		s->has_remote_static = true;
	}
	rc = pb_noise_hs_split(s->hs, &s->send, &s->recv, s->h);
	pb_noise_hs_free(s->hs);
	s->hs = NULL;
	if (rc != 0)
		return rc;
	s->established = true;
	return 0;
}

/* Writes handshake messages while it is this side's turn. Payloads are
 * empty: peerback carries nothing in the handshake. */
static int advance(pb_session_t *s)
{
	uint8_t msg[PB_FRAME_MAX];
	size_t len;
	int rc;

	while (pb_noise_hs_action(s->hs) == PB_NOISE_WRITE) {
		rc = pb_noise_hs_write(s->hs, NULL, 0, msg, sizeof(msg), &len);
		if (rc != 0)
			return rc;
		rc = write_frame(s, msg, len);
		if (rc != 0)
			return rc;
	}
	if (pb_noise_hs_action(s->hs) == PB_NOISE_SPLIT)
		return finish_handshake(s);
	return 0;
}

int pb__session_start(pb_session_t *s)
{
	int rc;

	if (!s->initiator || s->hs != NULL || s->established)
		return PB_ESTATE;
	rc = pb__noise_hs_new_pub(s->cands[0].protocol, true, &s->cands[0].cfg, s->cands[0].s_pub, &s->hs);
	if (rc != 0)
		return rc;
	s->matched_tag = s->cands[0].tag;
	return advance(s);
}

/* Responder, first message: the candidate whose keys authenticate it. */
static int read_first(pb_session_t *s, const uint8_t *msg, size_t len)
{
	uint8_t payload[PB_FRAME_MAX];
	int rc = PB_ENOISE_HANDSHAKE;

	for (size_t i = 0; i < s->ncands; i++) {
		pb_noise_hs_t *hs;
		size_t plen;

		if (pb__noise_hs_new_pub(s->cands[i].protocol, false, &s->cands[i].cfg, s->cands[i].s_pub, &hs) != 0)
			continue;
		if (pb_noise_hs_read(hs, msg, len, payload, sizeof(payload), &plen) == 0) {
			s->hs = hs;
			s->matched_tag = s->cands[i].tag;
			return 0;
		}
		pb_noise_hs_free(hs);
	}
	return rc;
}

static int on_frame(pb_session_t *s, const uint8_t *frame, size_t len,
		    void (*on_envelope)(void *arg, pb_envelope_t *env), void *arg, bool *established_now)
{
	uint8_t plain[PB_FRAME_MAX], *at;
	size_t plen;
	pb_envelope_t *env;
	int rc;

	if (!s->established) {
		if (s->hs == NULL) {
			if (s->initiator)
				return PB_ESTATE;
			rc = read_first(s, frame, len);
		} else {
			rc = pb_noise_hs_read(s->hs, frame, len, plain, sizeof(plain), &plen);
			if (rc == PB_ENOISE_DECRYPT || rc == PB_ETRUNCATED || rc == PB_ENOISE_DH)
				rc = PB_ENOISE_HANDSHAKE;
		}
		if (rc != 0)
			return rc;
		rc = advance(s);
		if (rc == 0 && s->established && established_now != NULL)
			*established_now = true;
		return rc;
	}
	if (len > PB_NOISE_TAGLEN && (at = pb__envelope_place(&s->decoder, len - PB_NOISE_TAGLEN)) != NULL) {
		/* A large message's next fragment, decrypted where its data
		 * belongs: neither copied nor wiped from a buffer of its own. */
		rc = pb_noise_decrypt(&s->recv, NULL, 0, frame, len, at, len - PB_NOISE_TAGLEN, &plen);
		if (rc != 0) {
			pb__envelope_unplace(&s->decoder, at);
			return rc == PB_ETRUNCATED ? PB_ENOISE_DECRYPT : rc;
		}
		rc = pb__envelope_decode_placed(&s->decoder, at, plen, &env);
	} else {
		rc = pb_noise_decrypt(&s->recv, NULL, 0, frame, len, plain, sizeof(plain), &plen);
		if (rc != 0)
			return rc == PB_ETRUNCATED ? PB_ENOISE_DECRYPT : rc;
		rc = pb__envelope_decode(&s->decoder, plain, plen, &env);
		sodium_memzero(plain, plen);
	}
	if (rc < 0)
		return rc;
	if (rc == 1)
		on_envelope(arg, env);
	return 0;
}

/* A whole frame at the front of data, with no partial frame waiting in the
 * reader: it is taken where it lies instead of being copied into the
 * reader first (most frames, with reads of several frames). */
static bool frame_in_place(pb_frame_reader_t *r, const uint8_t *data, size_t len, const uint8_t **frame,
			   size_t *flen)
{
	size_t n;

	if (r->have != 0 && (r->have < PB_FRAME_HDR || r->have != PB_FRAME_HDR + ((size_t)r->buf[0] << 8 | r->buf[1])))
		return false;
	if (len < PB_FRAME_HDR)
		return false;
	n = (size_t)data[0] << 8 | data[1];
	if (n > r->max_len || len - PB_FRAME_HDR < n)
		return false;
	r->have = 0; /* the frame handed out before is released */
	*frame = data + PB_FRAME_HDR;
	*flen = n;
	return true;
}

int pb__session_feed_some(pb_session_t *s, const uint8_t *data, size_t len,
			  void (*on_envelope)(void *arg, pb_envelope_t *env), void *arg, bool *established_now,
			  size_t *used_out)
{
	size_t used = 0;

	*used_out = 0;
	if (s->failed)
		return PB_ESTATE;
	while (used < len && !s->hold) {
		const uint8_t *frame;
		size_t consumed, flen;
		int rc;

		if (frame_in_place(&s->reader, data + used, len - used, &frame, &flen)) {
			consumed = PB_FRAME_HDR + flen;
			rc = 1;
		} else {
			rc = pb_frame_reader_feed(&s->reader, data + used, len - used, &consumed, &frame, &flen);
		}

		used += consumed;
		*used_out = used;
		if (rc == 1)
			rc = on_frame(s, frame, flen, on_envelope, arg, established_now);
		if (rc < 0) {
			s->failed = true;
			return rc;
		}
		if (s->failed)
			return PB_ESTATE;
	}
	return 0;
}

int pb__session_feed(pb_session_t *s, const uint8_t *data, size_t len,
		     void (*on_envelope)(void *arg, pb_envelope_t *env), void *arg, bool *established_now)
{
	size_t used;
	int rc;

	s->hold = false;
	rc = pb__session_feed_some(s, data, len, on_envelope, arg, established_now, &used);
	return rc;
}

void pb__session_set_cap(pb_session_t *s, size_t cap)
{
	s->decoder.cap = cap == 0 ? PB_SEQ_DEFAULT_CAP : cap;
}

int pb__session_eof(const pb_session_t *s)
{
	if (pb_frame_reader_eof(&s->reader) != 0)
		return PB_EFRAME_TRUNCATED;
	if (!s->established)
		return PB_ENOISE_HANDSHAKE;
	if (s->decoder.active)
		return PB_EFRAME_TRUNCATED;
	return PB_EPEER_CLOSED;
}

/* Encrypted behind the room for its header, so that the frame goes out
 * in one write without another copy; the message's parts (a fragment's
 * head, its data where it lies, its tail) are read where they are. */
static int emit_encrypted(void *arg, const pb_aead_part_t *parts, size_t nparts, size_t len)
{
	pb_session_t *s = arg;
	uint8_t frame[PB_FRAME_HDR + PB_FRAME_MAX];
	size_t clen;
	int rc;

	if (s->frame_alloc != NULL && len <= PB_FRAME_MAX - PB_NOISE_TAGLEN) {
		/* Into the writer's own buffer: the frame is not copied. */
		size_t flen = PB_FRAME_HDR + len + PB_NOISE_TAGLEN;
		uint8_t *out = s->frame_alloc(s->write_arg, flen);

		if (out == NULL)
			return PB_ENOMEM;
		rc = pb__noise_encrypt_parts(&s->send, parts, nparts, len, out + PB_FRAME_HDR, flen - PB_FRAME_HDR,
					     &clen);
		if (rc == 0)
			rc = pb_frame_header(clen, out);
		if (rc == 0 && clen + PB_FRAME_HDR != flen)
			rc = PB_EINVAL;
		if (rc != 0) {
			(void)s->frame_send(s->write_arg, out, 0); /* only given back */
			return rc;
		}
		return s->frame_send(s->write_arg, out, flen);
	}
	rc = pb__noise_encrypt_parts(&s->send, parts, nparts, len, frame + PB_FRAME_HDR, PB_FRAME_MAX, &clen);
	if (rc == 0)
		rc = pb_frame_header(clen, frame);
	if (rc != 0)
		return rc;
	return s->write(s->write_arg, frame, clen + PB_FRAME_HDR);
}

int pb__session_send(pb_session_t *s, pb_envelope_t *env)
{
	/* A session whose input failed may still say why before it closes. */
	if (!s->established)
		return PB_ESTATE;
	return pb__envelope_encode_parts(env, PB_ENVELOPE_MAX_PLAIN, emit_encrypted, s);
}

void pb__session_send_error(pb_session_t *s, int code, const char *message)
{
	pb_envelope_t env;
	Peerback__Error err;

	if (!s->established)
		return;
	pb__envelope_init(&env);
	peerback__error__init(&err);
	err.code = code;
	err.message = (char *)(message != NULL ? message : pb_strerror(code));
	env.body_case = PEERBACK__ENVELOPE__BODY_ERROR;
	env.error = &err;
	(void)pb__session_send(s, &env);
}

int pb__session_matched(const pb_session_t *s)
{
	return s->matched_tag;
}
