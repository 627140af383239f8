/* The Envelope codec: version check, fragmentation and reassembly. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "protocol/envelope.h"

/* Room left for the Envelope and Fragment fields around a fragment's data. */
#define FRAGMENT_OVERHEAD 48
/* Bytes a sequence's buffer has past its message: a fragment decrypted
 * where its data belongs (pb__envelope_place) puts its last flag there. */
#define BUF_SLACK 16

void pb__envelope_init(pb_envelope_t *env)
{
	peerback__envelope__init(env);
	env->version = PB_PROTOCOL_VERSION;
}

/* A large Envelope packed as pieces, without a copy of it: a bytes field
 * of at least REF_MIN bytes (a chunk's data) is referenced where it is,
 * everything else is copied into small. Fragments then take their data
 * straight from the pieces. */
#define REF_MIN 4096
#define PIECES 16

struct piece {
	const uint8_t *ref; /* NULL: in small, at off */
	size_t off, n;
};

struct pieces {
	ProtobufCBuffer base;
	struct piece v[PIECES];
	size_t nv;
	uint8_t *small;
	size_t nsmall, cap;
	int rc;
};

static void pieces_append(ProtobufCBuffer *buf, size_t len, const uint8_t *data)
{
	struct pieces *p = (struct pieces *)(void *)buf;
	struct piece *last = p->nv > 0 ? &p->v[p->nv - 1] : NULL;

	if (len == 0 || p->rc != 0)
		return;
	if (len >= REF_MIN && p->nv + 2 <= PIECES) { /* room for a small piece after */
		p->v[p->nv++] = (struct piece){ data, 0, len };
		return;
	}
	if (p->nsmall + len > p->cap) {
		size_t cap = p->cap > 0 ? p->cap : 256;
		uint8_t *n;

		while (cap < p->nsmall + len)
			cap *= 2;
		/* Not realloc: what is in small is wiped before it is freed. */
		if ((n = malloc(cap)) == NULL) {
			p->rc = PB_ENOMEM;
			return;
		}
		if (p->small != NULL) {
			memcpy(n, p->small, p->nsmall);
			sodium_memzero(p->small, p->nsmall);
			free(p->small);
		}
		p->small = n;
		p->cap = cap;
	}
	memcpy(p->small + p->nsmall, data, len);
	if (last != NULL && last->ref == NULL)
		last->n += len;
	else if (p->nv < PIECES)
		p->v[p->nv++] = (struct piece){ NULL, p->nsmall, len };
	else
		p->rc = PB_ETOOBIG; /* not reached: a reference leaves room for one */
	p->nsmall += len;
}

static const uint8_t *piece_at(const struct pieces *p, const struct piece *v, size_t off)
{
	return (v->ref != NULL ? v->ref : p->small + v->off) + off;
}

/* The next n bytes from piece *i at *off on: a pointer into the piece
 * when they lie in it, else gathered into stage. */
static const uint8_t *pieces_take(const struct pieces *p, size_t *i, size_t *off, size_t n, uint8_t *stage)
{
	const uint8_t *out;
	size_t got = 0;

	if (*i < p->nv && p->v[*i].n - *off >= n) {
		out = piece_at(p, &p->v[*i], *off);
		*off += n;
		if (*off == p->v[*i].n) {
			(*i)++;
			*off = 0;
		}
		return out;
	}
	while (got < n && *i < p->nv) {
		size_t k = p->v[*i].n - *off < n - got ? p->v[*i].n - *off : n - got;

		memcpy(stage + got, piece_at(p, &p->v[*i], *off), k);
		got += k;
		*off += k;
		if (*off == p->v[*i].n) {
			(*i)++;
			*off = 0;
		}
	}
	return stage;
}

/* Where encoded messages go: whole (emit), or in parts (emit_parts). */
struct emitter {
	pb_envelope_emit_cb emit;
	pb_envelope_emit_parts_cb emit_parts;
	void *arg;
	uint8_t *msg; /* emit: PB_ENVELOPE_MAX_PLAIN bytes to gather parts in */
};

static int emit_parts(struct emitter *e, const pb_aead_part_t *v, size_t nv, size_t len)
{
	size_t off = 0;

	if (e->emit_parts != NULL)
		return e->emit_parts(e->arg, v, nv, len);
	if (nv == 1)
		return e->emit(e->arg, v[0].p, len);
	for (size_t i = 0; i < nv; i++) {
		if (v[i].n > 0)
			memcpy(e->msg + off, v[i].p, v[i].n);
		off += v[i].n;
	}
	return e->emit(e->arg, e->msg, len);
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* A fragment as protobuf-c packs it (Envelope: version, fragment;
 * Fragment: total when set, data, last when true), its data not copied:
 * head, the data where it is, tail. */
static int emit_fragment(struct emitter *e, uint64_t total, const uint8_t *data, size_t n, bool last,
			 size_t max_plain)
{
	uint8_t head[40], tail[2] = { 0x18, 0x01 };
	size_t body = (total != 0 ? 1 + varint_len(total) : 0) + 1 + varint_len(n) + n + (last ? 2 : 0), h = 0;
	pb_aead_part_t v[3];

	head[h++] = 0x08;
	h += put_varint(head + h, PB_PROTOCOL_VERSION);
	head[h++] = 0x12;
	h += put_varint(head + h, body);
	if (total != 0) {
		head[h++] = 0x08;
		h += put_varint(head + h, total);
	}
	head[h++] = 0x12;
	h += put_varint(head + h, n);
	if (h + n + (last ? 2 : 0) > max_plain)
		return PB_ETOOBIG;
	v[0] = (pb_aead_part_t){ head, h };
	v[1] = (pb_aead_part_t){ data, n };
	v[2] = (pb_aead_part_t){ tail, last ? 2 : 0 };
	return emit_parts(e, v, last ? 3 : 2, h + n + (last ? 2 : 0));
}

static int encode_fragments(pb_envelope_t *env, size_t size, size_t max_plain, struct emitter *e)
{
	struct pieces p;
	uint8_t *stage = NULL;
	size_t step = max_plain - FRAGMENT_OVERHEAD, off = 0, i = 0, at = 0;
	int rc;

	memset(&p, 0, sizeof(p));
	p.base.append = pieces_append;
	if (protobuf_c_message_pack_to_buffer(&env->base, &p.base) != size && p.rc == 0)
		p.rc = PB_EINVAL;
	rc = p.rc;
	while (off < size && rc == 0) {
		size_t n = size - off < step ? size - off : step;
		const uint8_t *data;

		if (stage == NULL && (i >= p.nv || p.v[i].n - at < n) && (stage = malloc(step)) == NULL) {
			rc = PB_ENOMEM;
			break;
		}
		data = pieces_take(&p, &i, &at, n, stage);
		rc = emit_fragment(e, off == 0 ? size : 0, data, n, off + n == size, max_plain);
		off += n;
	}
	if (stage != NULL) {
		sodium_memzero(stage, step);
		free(stage);
	}
	if (p.small != NULL) {
		sodium_memzero(p.small, p.nsmall);
		free(p.small);
	}
	return rc;
}

static int encode(pb_envelope_t *env, size_t max_plain, struct emitter *e)
{
	pb_aead_part_t v;
	size_t size;
	uint8_t *buf;
	int rc;

	if (max_plain <= FRAGMENT_OVERHEAD || max_plain > PB_ENVELOPE_MAX_PLAIN)
		return PB_EINVAL;
	env->version = PB_PROTOCOL_VERSION;
	size = peerback__envelope__get_packed_size(env);
	if (size > max_plain)
		return encode_fragments(env, size, max_plain, e);
	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return PB_ENOMEM;
	peerback__envelope__pack(env, buf);
	v = (pb_aead_part_t){ buf, size };
	rc = emit_parts(e, &v, 1, size);
	sodium_memzero(buf, size);
	free(buf);
	return rc;
}

int pb__envelope_encode(pb_envelope_t *env, size_t max_plain, pb_envelope_emit_cb emit, void *arg)
{
	uint8_t msg[PB_ENVELOPE_MAX_PLAIN];
	struct emitter e = { emit, NULL, arg, msg };

	return encode(env, max_plain, &e);
}

int pb__envelope_encode_parts(pb_envelope_t *env, size_t max_plain, pb_envelope_emit_parts_cb emit, void *arg)
{
	struct emitter e = { NULL, emit, arg, NULL };

	return encode(env, max_plain, &e);
}

void pb__envelope_decoder_init(pb_envelope_decoder_t *d, size_t cap)
{
	memset(d, 0, sizeof(*d));
	d->cap = cap == 0 ? PB_SEQ_DEFAULT_CAP : cap;
}

void pb__envelope_decoder_free(pb_envelope_decoder_t *d)
{
	if (d->buf != NULL) {
		sodium_memzero(d->buf, d->len > d->skip ? d->len - d->skip : 0);
		free(d->buf);
	}
	d->buf = NULL;
	d->len = d->total = d->alloc = d->skip = 0;
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

/* A fragment's fields, wherever they were read from. */
struct frag {
	uint64_t total;
	const uint8_t *data;
	size_t n;
	bool last;
};

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return shift < 63 || b <= 1;
	}
	return false;
}

/* A fragment in exactly the form pb__envelope_encode writes it (version,
 * then the fragment: total when set, data when not empty, last when
 * true; nothing else) is read where it is, without unpacking it (which
 * allocates and copies its data). Anything else, false: the caller
 * unpacks it, with protobuf-c's checks. */
static bool frag_in_place(const uint8_t *msg, size_t len, struct frag *f)
{
	const uint8_t *p = msg, *end = msg + len;
	uint64_t v;

	memset(f, 0, sizeof(*f));
	if (len < 4 || p[0] != 0x08 || p[1] != PB_PROTOCOL_VERSION || p[2] != 0x12)
		return false;
	p += 3;
	if (!varint(&p, end, &v) || v != (uint64_t)(end - p))
		return false;
	if (p < end && *p == 0x08) {
		p++;
		if (!varint(&p, end, &f->total) || f->total == 0)
			return false;
	}
	if (p < end && *p == 0x12) {
		p++;
		if (!varint(&p, end, &v) || v == 0 || v > (uint64_t)(end - p))
			return false;
		f->data = p;
		f->n = (size_t)v;
		p += v;
	}
	if (p < end && *p == 0x18) {
		if (end - p < 2 || p[1] != 0x01)
			return false;
		f->last = true;
		p += 2;
	}
	return p == end;
}

/* Reads a field's length at *p: whether the field runs exactly to the end
 * of the message (total bytes from msg on). */
static bool len_to_end(const uint8_t **p, const uint8_t *end, const uint8_t *msg, uint64_t total)
{
	uint64_t v;

	if (!varint(p, end, &v))
		return false;
	return v == total - (uint64_t)(*p - msg);
}

/* The head of a chunk's message in exactly the form protobuf-c writes it:
 * a chunk's reply (Envelope: version, then the reply; Reply: id when set,
 * then the chunk; ChunkData: name when set, then data) or a chunk's put
 * (Envelope: version, then the request; Request: id when set, then
 * chunk_put; ChunkPut: name when set, then data), the same shape, each of
 * the three running to the message's end and the data at least REF_MIN
 * bytes. Read from the first fragment's data (have bytes of a message of
 * total): its length (the data's offset) to d->skip, which message to
 * d->kind, id and name to d. Anything else, false: the message is
 * reassembled whole and unpacked with protobuf-c's checks. */
static bool chunk_head(pb_envelope_decoder_t *d, const uint8_t *msg, size_t have, uint64_t total)
{
	const uint8_t *p = msg, *end;
	uint8_t op;
	uint64_t v;

	if (msg == NULL || have < 4)
		return false;
	end = msg + have;
	if (p[0] != 0x08 || p[1] != PB_PROTOCOL_VERSION || p[3] != 0x01)
		return false;
	if (p[2] == 0xfa) { /* field 31 (reply), length-delimited */
		d->kind = PB_ENVELOPE_CHUNK_REPLY;
		op = 0x7a; /* Reply field 15 (chunk) */
	} else if (p[2] == 0xf2) { /* field 30 (request) */
		d->kind = PB_ENVELOPE_CHUNK_PUT;
		op = 0x6a; /* Request field 13 (chunk_put) */
	} else {
		return false;
	}
	p += 4;
	if (!len_to_end(&p, end, msg, total))
		return false;
	d->id = 0;
	if (p < end && *p == 0x08) {
		p++;
		if (!varint(&p, end, &d->id) || d->id == 0)
			return false;
	}
	if (p >= end || *p++ != op || !len_to_end(&p, end, msg, total))
		return false;
	d->name_len = 0;
	if (p < end && *p == 0x0a) {
		p++;
		if (!varint(&p, end, &v) || v == 0 || v > sizeof(d->name) || v > (uint64_t)(end - p))
			return false;
		memcpy(d->name, p, (size_t)v);
		d->name_len = (size_t)v;
		p += v;
	}
	if (p >= end || *p++ != 0x12 || !len_to_end(&p, end, msg, total))
		return false;
	if (total - (uint64_t)(p - msg) < REF_MIN)
		return false;
	d->skip = (size_t)(p - msg);
	return true;
}

/* The Envelope of a chunk's message whose head chunk_head read, its data
 * the decoder's buffer (taken over, not copied). */
static int chunk_message(pb_envelope_decoder_t *d, pb_envelope_t **out)
{
	bool put = d->kind == PB_ENVELOPE_CHUNK_PUT;
	pb_envelope_t *env = malloc(sizeof(*env));
	void *outer = malloc(put ? sizeof(Peerback__Request) : sizeof(Peerback__Reply));
	void *inner = malloc(put ? sizeof(Peerback__ChunkPut) : sizeof(Peerback__ChunkData));
	uint8_t *name = d->name_len > 0 ? malloc(d->name_len) : NULL;
	ProtobufCBinaryData *nm, *data;

	if (env == NULL || outer == NULL || inner == NULL || (d->name_len > 0 && name == NULL)) {
		free(env);
		free(outer);
		free(inner);
		free(name);
		pb__envelope_decoder_free(d);
		return PB_ENOMEM;
	}
	pb__envelope_init(env);
	if (put) {
		Peerback__Request *req = outer;
		Peerback__ChunkPut *cp = inner;

		peerback__request__init(req);
		peerback__chunk_put__init(cp);
		req->id = d->id;
		req->op_case = PEERBACK__REQUEST__OP_CHUNK_PUT;
		req->chunk_put = cp;
		env->body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
		env->request = req;
		nm = &cp->name;
		data = &cp->data;
	} else {
		Peerback__Reply *rep = outer;
		Peerback__ChunkData *cd = inner;

		peerback__reply__init(rep);
		peerback__chunk_data__init(cd);
		rep->id = d->id;
		rep->op_case = PEERBACK__REPLY__OP_CHUNK;
		rep->chunk = cd;
		env->body_case = PEERBACK__ENVELOPE__BODY_REPLY;
		env->reply = rep;
		nm = &cd->name;
		data = &cd->data;
	}
	if (name != NULL)
		memcpy(name, d->name, d->name_len);
	nm->data = name;
	nm->len = d->name_len;
	data->data = d->buf;
	data->len = d->len - d->skip;
	d->buf = NULL;
	pb__envelope_decoder_free(d);
	*out = env;
	return 1;
}

/* The sequence is whole: its Envelope. */
static int finish(pb_envelope_decoder_t *d, pb_envelope_t **out)
{
	pb_envelope_t *env = NULL;
	int rc;

	if (d->skip > 0)
		return chunk_message(d, out);
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
}

int pb__envelope_decode(pb_envelope_decoder_t *d, const uint8_t *msg, size_t len, pb_envelope_t **out)
{
	pb_envelope_t *env = NULL;
	struct frag f;
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
	if (!frag_in_place(msg, len, &f)) {
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
		f.total = env->fragment->total;
		f.data = env->fragment->data.data;
		f.n = env->fragment->data.len;
		f.last = env->fragment->last;
	}
	if (!d->active) {
		if (f.total == 0 || f.total <= PB_ENVELOPE_MAX_PLAIN - FRAGMENT_OVERHEAD) {
			rc = PB_EENV_MALFORMED; /* first fragment without a sensible total */
			goto out_free_env;
		}
		if (f.total > d->cap) {
			rc = PB_ESEQ_TOOBIG;
			goto out_free_env;
		}
		/* Its whole size at once (no copy as it grows): only address
		 * space until the data arrives, so that a peer announcing a
		 * large total costs no memory until it sends it. A chunk's
		 * reply keeps only its data here, from the buffer's start: it
		 * becomes the reply's data as it is. */
		d->skip = chunk_head(d, f.data, f.n, f.total) ? d->skip : 0;
		d->buf = malloc((size_t)f.total - d->skip + BUF_SLACK);
		if (d->buf == NULL) {
			d->skip = 0;
			rc = PB_ENOMEM;
			goto out_free_env;
		}
		d->alloc = d->total = (size_t)f.total;
		d->len = 0;
		d->active = true;
	} else if (f.total != 0) {
		rc = PB_EENV_MALFORMED;
		goto out_free_env;
	}
	if (f.n > d->total - d->len || (f.last != (d->len + f.n == d->total))) {
		rc = PB_EENV_MALFORMED;
		goto out_free_env;
	}
	if (d->len >= d->skip) {
		if (f.n > 0)
			memcpy(d->buf + (d->len - d->skip), f.data, f.n);
	} else if (d->len + f.n > d->skip) {
		/* The first fragment: its head was read by chunk_head. */
		memcpy(d->buf, f.data + (d->skip - d->len), d->len + f.n - d->skip);
	}
	d->len += f.n;
	if (env != NULL)
		peerback__envelope__free_unpacked(env, NULL);
	if (d->len < d->total)
		return 0;
	return finish(d, out);

out_free_env:
	if (env != NULL)
		peerback__envelope__free_unpacked(env, NULL);
out_reset:
	pb__envelope_decoder_free(d);
	return rc;
}

/* The head of a fragment after the first, as the encoder writes it, with
 * n bytes of data (and its last flag when last): version, the fragment's
 * field and length, the data's field and length. */
static size_t frag_head_len(size_t n, bool last)
{
	size_t body = 1 + varint_len(n) + n + (last ? 2 : 0);

	return 3 + varint_len(body) + 1 + varint_len(n);
}

uint8_t *pb__envelope_place(pb_envelope_decoder_t *d, size_t len)
{
	size_t rest, at, h = 0;

	d->saved_len = 0;
	if (!d->active || d->buf == NULL || d->len < d->skip || len > PB_ENVELOPE_MAX_PLAIN)
		return NULL;
	rest = d->total - d->len;
	/* The last fragment carries the rest; any other, less. Its head's
	 * length grows with its data's, so one length of head fits. */
	if (rest > 0 && frag_head_len(rest, true) + rest + 2 == len) {
		h = frag_head_len(rest, true);
	} else {
		for (size_t k = 6; k <= 10 && h == 0; k++)
			if (len > k && len - k < rest && frag_head_len(len - k, false) == k)
				h = k;
	}
	at = d->len - d->skip;
	if (h == 0 || at < h || at - h + len > d->total - d->skip + BUF_SLACK)
		return NULL;
	/* The head lands on the end of the data before it: kept aside. */
	memcpy(d->saved, d->buf + at - h, h);
	d->saved_len = h;
	return d->buf + at - h;
}

void pb__envelope_unplace(pb_envelope_decoder_t *d, uint8_t *msg)
{
	if (d->saved_len > 0 && d->buf != NULL)
		memcpy(msg, d->saved, d->saved_len);
	d->saved_len = 0;
}

int pb__envelope_decode_placed(pb_envelope_decoder_t *d, uint8_t *msg, size_t len, pb_envelope_t **out)
{
	size_t h = d->saved_len;
	uint8_t *copy;
	struct frag f;
	int rc;

	*out = NULL;
	if (frag_in_place(msg, len, &f) && f.total == 0 && f.data == msg + h && f.n <= d->total - d->len &&
	    f.last == (d->len + f.n == d->total)) {
		pb__envelope_unplace(d, msg);
		d->len += f.n;
		return d->len < d->total ? 0 : finish(d, out);
	}
	/* Not the fragment expected: decoded as any message is, from a
	 * copy (the data before it is put back first). */
	copy = malloc(len ? len : 1);
	if (copy == NULL) {
		pb__envelope_decoder_free(d);
		return PB_ENOMEM;
	}
	memcpy(copy, msg, len);
	pb__envelope_unplace(d, msg);
	rc = pb__envelope_decode(d, copy, len, out);
	sodium_memzero(copy, len);
	free(copy);
	return rc;
}

void pb__envelope_free(pb_envelope_t *env)
{
	if (env != NULL)
		peerback__envelope__free_unpacked(env, NULL);
}
