/* Fuzz target: the frame reader, fed in pieces whose sizes come from the
 * input, then a responder session fed the same bytes (handshake parsing of
 * hostile first messages). */
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "protocol/session.h"

static void drop(void *arg, pb_envelope_t *env)
{
	(void)arg;
	pb__envelope_free(env);
}

static int sink(void *arg, const uint8_t *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t host_priv[32] = { 1 }, psk[32] = { 2 };
	pb_frame_reader_t r;
	pb_session_t s;
	pb_session_candidate_t c[2];
	size_t off = 0, step = 1;

	if (sodium_init() < 0)
		return 0;
	pb_frame_reader_init(&r, size > 0 ? (size_t)data[0] << 8 : 0);
	while (off < size) {
		const uint8_t *frame;
		size_t consumed, flen, n = size - off < step ? size - off : step;
		int rc = pb_frame_reader_feed(&r, data + off, n, &consumed, &frame, &flen);

		if (rc < 0)
			break;
		if (rc == 1 && (flen > r.max_len || frame + flen > r.buf + sizeof(r.buf)))
			__builtin_trap();
		off += consumed;
		step = (step * 7 + 3) % 97 + 1;
	}
	(void)pb_frame_reader_eof(&r);

	memset(c, 0, sizeof(c));
	c[0].protocol = PB_NOISE_PAIRING;
	c[0].cfg.s_priv = host_priv;
	c[0].cfg.psks[0] = psk;
	c[0].cfg.npsks = 1;
	c[1].protocol = PB_NOISE_REMEMBERED;
	c[1].cfg.s_priv = host_priv;
	if (pb__session_init(&s, false, c, 2, sink, NULL, 1 << 20) == 0) {
		(void)pb__session_feed(&s, data, size, drop, NULL, NULL);
		(void)pb__session_eof(&s);
		pb__session_free(&s);
	}
	return 0;
}
