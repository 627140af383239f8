/* The Envelope codec: version check, fragmentation and reassembly. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "protocol/envelope.h"

/* Room left for the Envelope and Fragment fields around a fragment's data. */
#define FRAGMENT_OVERHEAD 48
/* A sequence's buffer is first given up to this much (never more than its
 * announced total): the largest chunk (4 MiB) with its envelope. */
#define FIRST_ALLOC ((4u << 20) + (64u << 10))

void pb__envelope_init(pb_envelope_t *env)
{
	peerback__envelope__init(env);
	env->version = PB_PROTOCOL_VERSION;
}

int pb__envelope_encode(pb_envelope_t *env, size_t max_plain, pb_envelope_emit_cb emit, void *arg)
{
	size_t size, step, off = 0;
	uint8_t *buf;
	int rc = 0;

	if (max_plain <= FRAGMENT_OVERHEAD || max_plain > PB_ENVELOPE_MAX_PLAIN)
		return PB_EINVAL;
	env->version = PB_PROTOCOL_VERSION;
	size = peerback__envelope__get_packed_size(env);
	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return PB_ENOMEM;
	peerback__envelope__pack(env, buf);
	if (size <= max_plain) {
		rc = emit(arg, buf, size);
		goto out_free;
	}
	step = max_plain - FRAGMENT_OVERHEAD;
	while (off < size && rc == 0) {
		pb_envelope_t part;
		Peerback__Fragment frag;
		uint8_t msg[PB_ENVELOPE_MAX_PLAIN];
		size_t n = size - off < step ? size - off : step;

		pb__envelope_init(&part);
		peerback__fragment__init(&frag);
		frag.total = off == 0 ? size : 0;
		frag.data.data = buf + off;
		frag.data.len = n;
		frag.last = off + n == size;
		part.body_case = PEERBACK__ENVELOPE__BODY_FRAGMENT;
		part.fragment = &frag;
		if (peerback__envelope__get_packed_size(&part) > max_plain) {
			rc = PB_ETOOBIG;
			break;
		}
		rc = emit(arg, msg, peerback__envelope__pack(&part, msg));
		off += n;
	}
out_free:
	sodium_memzero(buf, size);
	free(buf);
	return rc;
}

void pb__envelope_decoder_init(pb_envelope_decoder_t *d, size_t cap)
{
	memset(d, 0, sizeof(*d));
	d->cap = cap == 0 ? PB_SEQ_DEFAULT_CAP : cap;
}

void pb__envelope_decoder_free(pb_envelope_decoder_t *d)
{
	if (d->buf != NULL) {
		sodium_memzero(d->buf, d->len);
		free(d->buf);
	}
	d->buf = NULL;
	d->len = d->total = d->alloc = 0;
	d->active = false;
}

static int unpack_checked(const uint8_t *msg, size_t len, pb_envelope_t **out)
{
	pb_envelope_t *env = peerback__envelope__unpack(NULL, len, msg);

	if (env == NULL)
		return PB_EENV_MALFORMED;
	if (env->version != PB_PROTOCOL_VERSION) {
		peerback__envelope__free_unpacked(env, NULL);
		return PB_EENV_VERSION;
	}
	if (env->body_case == PEERBACK__ENVELOPE__BODY__NOT_SET) {
		peerback__envelope__free_unpacked(env, NULL);
		return PB_EENV_MALFORMED;
	}
	*out = env;
	return 0;
}

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false;
}

/* A fragment in the encoding pb__envelope_encode gives it (the version,
 * then the fragment: its total when set, its data, last when set; nothing
 * else), read in place: its data is not copied out by protobuf-c before
 * it is copied into the sequence. Anything else, valid or not: false,
 * and protobuf-c reads it. */
static bool fragment_in_place(const uint8_t *msg, size_t len, Peerback__Fragment *f)
{
	const uint8_t *p = msg, *end = msg + len;
	uint64_t v, n;

	if (p >= end || *p++ != 0x08 || !read_varint(&p, end, &v) || v != PB_PROTOCOL_VERSION)
		return false;
	if (p >= end || *p++ != 0x12 || !read_varint(&p, end, &n) || n != (uint64_t)(end - p))
		return false;
	peerback__fragment__init(f);
	if (p < end && *p == 0x08) {
		p++;
		if (!read_varint(&p, end, &v))
			return false;
		f->total = v;
	}
	if (p >= end || *p++ != 0x12 || !read_varint(&p, end, &n) || n > (uint64_t)(end - p))
		return false;
	f->data.data = (uint8_t *)(uintptr_t)p;
	f->data.len = (size_t)n;
	p += n;
	if (p < end && *p == 0x18) {
		p++;
		if (!read_varint(&p, end, &v) || v > 1)
			return false;
		f->last = v == 1;
	}
	return p == end;
}

int pb__envelope_decode(pb_envelope_decoder_t *d, const uint8_t *msg, size_t len, pb_envelope_t **out)
{
	pb_envelope_t *env = NULL;
	Peerback__Fragment *f, inplace;
	int rc;

	*out = NULL;
	if (len > PB_ENVELOPE_MAX_PLAIN)
		return PB_EENV_MALFORMED;
	/* A cap below one message (before authentication, say) holds for
	 * whole messages too. */
	if (len > d->cap) {
		pb__envelope_decoder_free(d);
		return PB_ESEQ_TOOBIG;
	}
	if (fragment_in_place(msg, len, &inplace)) {
		f = &inplace;
	} else {
		rc = unpack_checked(msg, len, &env);
		if (rc != 0)
			goto out_reset;
		if (env->body_case != PEERBACK__ENVELOPE__BODY_FRAGMENT) {
			if (d->active) {
				/* A whole message in the middle of a sequence. */
				peerback__envelope__free_unpacked(env, NULL);
				rc = PB_EENV_MALFORMED;
				goto out_reset;
			}
			*out = env;
			return 1;
		}
		f = env->fragment;
	}
	if (!d->active) {
		if (f->total == 0 || f->total <= PB_ENVELOPE_MAX_PLAIN - FRAGMENT_OVERHEAD) {
			rc = PB_EENV_MALFORMED; /* first fragment without a sensible total */
			goto out_free_env;
		}
		if (f->total > d->cap) {
			rc = PB_ESEQ_TOOBIG;
			goto out_free_env;
		}
		/* The buffer grows with the data that arrives (from
		 * FIRST_ALLOC on), so that a peer announcing a large total
		 * costs little until it sends it. */
		d->alloc = 0;
		d->buf = NULL;
		d->total = (size_t)f->total;
		d->len = 0;
		d->active = true;
	} else if (f->total != 0) {
		rc = PB_EENV_MALFORMED;
		goto out_free_env;
	}
	if (f->data.len > d->total - d->len || (f->last != (d->len + f->data.len == d->total))) {
		rc = PB_EENV_MALFORMED;
		goto out_free_env;
	}
	if (d->len + f->data.len > d->alloc) {
		/* The first step takes up to FIRST_ALLOC at once: a chunk a
		 * restore fetches or a backup puts is not copied again by each
		 * doubling (64 KiB, 128 KiB, ... was almost one more copy of
		 * every byte). A peer announcing more than it sends still costs
		 * at most that much. */
		size_t want = d->alloc < FIRST_ALLOC ? FIRST_ALLOC : d->alloc * 2;
		uint8_t *nb;

		if (want < d->len + f->data.len)
			want = d->len + f->data.len;
		if (want > d->total)
			want = d->total;
		nb = realloc(d->buf, want);
		if (nb == NULL) {
			rc = PB_ENOMEM;
			goto out_free_env;
		}
		d->buf = nb;
		d->alloc = want;
	}
	if (f->data.len > 0)
		memcpy(d->buf + d->len, f->data.data, f->data.len);
	d->len += f->data.len;
	pb__envelope_free(env);
	if (d->len < d->total)
		return 0;
	rc = unpack_checked(d->buf, d->len, &env);
	pb__envelope_decoder_free(d);
	if (rc != 0)
		return rc;
	if (env->body_case == PEERBACK__ENVELOPE__BODY_FRAGMENT) {
		peerback__envelope__free_unpacked(env, NULL);
		return PB_EENV_MALFORMED;
	}
	*out = env;
	return 1;

out_free_env:
	pb__envelope_free(env);
out_reset:
	pb__envelope_decoder_free(d);
	return rc;
}

void pb__envelope_free(pb_envelope_t *env)
{
	if (env != NULL)
		peerback__envelope__free_unpacked(env, NULL);
}
