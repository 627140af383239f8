/* Length-prefixed frames: 2-byte big-endian length, at most 65535 bytes. */
#include <string.h>

#include "peerback.h"
#include "peerback/frame.h"

PB_EXTERN void pb_frame_reader_init(pb_frame_reader_t *r, size_t max_len)
{
	r->have = 0;
	r->max_len = max_len == 0 || max_len > PB_FRAME_MAX ? PB_FRAME_MAX : max_len;
}

static size_t declared_len(const pb_frame_reader_t *r)
{
	return ((size_t)r->buf[0] << 8) | r->buf[1];
}

PB_EXTERN int pb_frame_reader_feed(pb_frame_reader_t *r, const uint8_t *data, size_t len, size_t *consumed,
				   const uint8_t **frame, size_t *frame_len)
{
	size_t used = 0;

	*consumed = 0;
	/* A frame handed out by the previous call is released now. */
	if (r->have >= PB_FRAME_HDR && r->have == PB_FRAME_HDR + declared_len(r))
		r->have = 0;
	while (used < len) {
		size_t want, take;

		if (r->have < PB_FRAME_HDR) {
			want = PB_FRAME_HDR - r->have;
		} else {
			size_t flen = declared_len(r);

			if (flen > r->max_len)
				return PB_EFRAME_TOOBIG;
			want = PB_FRAME_HDR + flen - r->have;
		}
		take = len - used < want ? len - used : want;
		memcpy(r->buf + r->have, data + used, take);
		r->have += take;
		used += take;
		if (r->have == PB_FRAME_HDR && declared_len(r) > r->max_len) {
			*consumed = used;
			return PB_EFRAME_TOOBIG;
		}
		if (r->have >= PB_FRAME_HDR && r->have == PB_FRAME_HDR + declared_len(r)) {
			*consumed = used;
			*frame = r->buf + PB_FRAME_HDR;
			*frame_len = declared_len(r);
			return 1;
		}
	}
	*consumed = used;
	return 0;
}

PB_EXTERN int pb_frame_reader_eof(const pb_frame_reader_t *r)
{
	if (r->have == 0 || (r->have >= PB_FRAME_HDR && r->have == PB_FRAME_HDR + declared_len(r)))
		return 0;
	return PB_EFRAME_TRUNCATED;
}

PB_EXTERN int pb_frame_header(size_t len, uint8_t hdr[PB_FRAME_HDR])
{
	if (len > PB_FRAME_MAX)
		return PB_EFRAME_TOOBIG;
	hdr[0] = (uint8_t)(len >> 8);
	hdr[1] = (uint8_t)len;
	return 0;
}
