/* Framing and the envelope codec: frames split anywhere, caps enforced,
 * large envelopes fragmented and reassembled, malformed envelopes refused. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "testutil.h"
#include "protocol/envelope.h"

static void test_frames_split_anywhere(void **state)
{
	pb_frame_reader_t r;
	uint8_t stream[2 + 3 + 2 + 300 + 2];
	const uint8_t *frame;
	size_t flen, consumed, got = 0;
	size_t lens[3];

	(void)state;
	/* Three frames: "abc", 300 bytes, and an empty one. */
	stream[0] = 0, stream[1] = 3;
	memcpy(stream + 2, "abc", 3);
	stream[5] = 1, stream[6] = 44;
	memset(stream + 7, 'x', 300);
	stream[307] = 0, stream[308] = 0;
	pb_frame_reader_init(&r, 0);
	/* Byte by byte. */
	for (size_t i = 0; i < 309; i++) {
		int rc = pb_frame_reader_feed(&r, stream + i, 1, &consumed, &frame, &flen);
		assert_true(rc >= 0);
		assert_int_equal(consumed, 1);
		if (rc == 1)
			lens[got++] = flen;
	}
	assert_int_equal(got, 3);
	assert_int_equal(lens[0], 3);
	assert_int_equal(lens[1], 300);
	assert_int_equal(lens[2], 0);
	assert_int_equal(pb_frame_reader_eof(&r), 0);
	/* All at once: the reader hands out one frame per call. */
	pb_frame_reader_init(&r, 0);
	{
		size_t off = 0;
		got = 0;
		while (off < 309) {
			int rc = pb_frame_reader_feed(&r, stream + off, 309 - off, &consumed, &frame, &flen);
			assert_true(rc >= 0);
			off += consumed;
			if (rc == 1) {
				if (got == 0)
					assert_memory_equal(frame, "abc", 3);
				got++;
			}
		}
		assert_int_equal(got, 3);
	}
}

static void test_frame_caps_and_truncation(void **state)
{
	pb_frame_reader_t r;
	uint8_t hdr[2];
	const uint8_t *frame;
	size_t flen, consumed;

	(void)state;
	assert_int_equal(pb_frame_header(65535, hdr), 0);
	assert_int_equal(hdr[0], 0xff);
	assert_int_equal(pb_frame_header(65536, hdr), PB_EFRAME_TOOBIG);
	/* A reader with a lower cap refuses a longer declared length at once. */
	pb_frame_reader_init(&r, 1024);
	hdr[0] = 0x04, hdr[1] = 0x01;
	assert_int_equal(pb_frame_reader_feed(&r, hdr, 2, &consumed, &frame, &flen), PB_EFRAME_TOOBIG);
	/* A stream that ends inside a frame is truncated. */
	pb_frame_reader_init(&r, 0);
	{
		uint8_t part[] = { 0x00, 0x10, 'a', 'b' };
		assert_int_equal(pb_frame_reader_feed(&r, part, sizeof(part), &consumed, &frame, &flen), 0);
		assert_int_equal(pb_frame_reader_eof(&r), PB_EFRAME_TRUNCATED);
	}
	pb_frame_reader_init(&r, 0);
	{
		uint8_t half = 0x00;
		assert_int_equal(pb_frame_reader_feed(&r, &half, 1, &consumed, &frame, &flen), 0);
		assert_int_equal(pb_frame_reader_eof(&r), PB_EFRAME_TRUNCATED);
	}
}

struct collected {
	uint8_t *msgs[1024];
	size_t lens[1024];
	size_t n;
};

static int collect(void *arg, const uint8_t *msg, size_t len)
{
	struct collected *c = arg;

	assert_true(c->n < 1024);
	assert_true(len <= PB_ENVELOPE_MAX_PLAIN);
	c->msgs[c->n] = malloc(len ? len : 1);
	memcpy(c->msgs[c->n], msg, len);
	c->lens[c->n++] = len;
	return 0;
}

static void free_collected(struct collected *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->msgs[i]);
	c->n = 0;
}

static void ping_envelope(pb_envelope_t *env, Peerback__Request *req, Peerback__Ping *ping, uint8_t *data, size_t len)
{
	pb__envelope_init(env);
	peerback__request__init(req);
	peerback__ping__init(ping);
	ping->data.data = data;
	ping->data.len = len;
	req->id = 7;
	req->op_case = PEERBACK__REQUEST__OP_PING;
	req->ping = ping;
	env->body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
	env->request = req;
}

static void test_envelope_round_trip_and_fragments(void **state)
{
	static uint8_t big[1 << 20];
	struct collected c = { 0 };
	pb_envelope_t env, *out = NULL;
	Peerback__Request req;
	Peerback__Ping ping;
	pb_envelope_decoder_t d;
	int rc = 0;

	(void)state;
	randombytes_buf(big, sizeof(big));
	/* Small: one message. */
	ping_envelope(&env, &req, &ping, big, 100);
	assert_int_equal(pb__envelope_encode(&env, PB_ENVELOPE_MAX_PLAIN, collect, &c), 0);
	assert_int_equal(c.n, 1);
	pb__envelope_decoder_init(&d, 0);
	assert_int_equal(pb__envelope_decode(&d, c.msgs[0], c.lens[0], &out), 1);
	assert_int_equal(out->request->id, 7);
	assert_memory_equal(out->request->ping->data.data, big, 100);
	pb__envelope_free(out);
	free_collected(&c);
	/* 1 MiB: a sequence of fragments, reassembled exactly. */
	ping_envelope(&env, &req, &ping, big, sizeof(big));
	assert_int_equal(pb__envelope_encode(&env, PB_ENVELOPE_MAX_PLAIN, collect, &c), 0);
	assert_true(c.n >= 17);
	for (size_t i = 0; i < c.n; i++) {
		rc = pb__envelope_decode(&d, c.msgs[i], c.lens[i], &out);
		assert_int_equal(rc, i + 1 == c.n ? 1 : 0);
	}
	assert_int_equal(out->request->ping->data.len, sizeof(big));
	assert_memory_equal(out->request->ping->data.data, big, sizeof(big));
	pb__envelope_free(out);
	/* The same sequence against a 256 KiB cap is refused at its first part. */
	pb__envelope_decoder_init(&d, 256 * 1024);
	assert_int_equal(pb__envelope_decode(&d, c.msgs[0], c.lens[0], &out), PB_ESEQ_TOOBIG);
	/* A whole message in the middle of a sequence is malformed. */
	pb__envelope_decoder_init(&d, 0);
	assert_int_equal(pb__envelope_decode(&d, c.msgs[0], c.lens[0], &out), 0);
	free_collected(&c);
	ping_envelope(&env, &req, &ping, big, 10);
	assert_int_equal(pb__envelope_encode(&env, PB_ENVELOPE_MAX_PLAIN, collect, &c), 0);
	assert_int_equal(pb__envelope_decode(&d, c.msgs[0], c.lens[0], &out), PB_EENV_MALFORMED);
	assert_false(d.active);
	free_collected(&c);
}

/* The fragments of env as a packed copy split in order would make them:
 * pb__envelope_encode takes large bytes fields where they are instead. */
static void reference_fragments(pb_envelope_t *env, size_t max_plain, struct collected *c)
{
	size_t size = peerback__envelope__get_packed_size(env), step = max_plain - 48, off = 0;
	uint8_t *buf = malloc(size), msg[PB_ENVELOPE_MAX_PLAIN];

	assert_non_null(buf);
	peerback__envelope__pack(env, buf);
	if (size <= max_plain)
		assert_int_equal(collect(c, buf, size), 0);
	while (size > max_plain && off < size) {
		pb_envelope_t part;
		Peerback__Fragment frag;
		size_t n = size - off < step ? size - off : step;

		pb__envelope_init(&part);
		peerback__fragment__init(&frag);
		frag.total = off == 0 ? size : 0;
		frag.data.data = buf + off;
		frag.data.len = n;
		frag.last = off + n == size;
		part.body_case = PEERBACK__ENVELOPE__BODY_FRAGMENT;
		part.fragment = &frag;
		assert_int_equal(collect(c, msg, peerback__envelope__pack(&part, msg)), 0);
		off += n;
	}
	free(buf);
}

/* A message emitted in parts, collected as their bytes one after the
 * other. */
static int collect_parts(void *arg, const pb_aead_part_t *v, size_t nv, size_t len)
{
	uint8_t msg[PB_ENVELOPE_MAX_PLAIN];
	size_t off = 0;

	assert_true(len <= sizeof(msg));
	for (size_t i = 0; i < nv; i++) {
		assert_true(v[i].n <= len - off);
		if (v[i].n > 0)
			memcpy(msg + off, v[i].p, v[i].n);
		off += v[i].n;
	}
	assert_int_equal(off, len);
	return collect(arg, msg, len);
}

static void same_fragments(pb_envelope_t *env, size_t max_plain)
{
	struct collected a = { 0 }, b = { 0 }, p = { 0 };

	assert_int_equal(pb__envelope_encode(env, max_plain, collect, &a), 0);
	assert_int_equal(pb__envelope_encode_parts(env, max_plain, collect_parts, &p), 0);
	reference_fragments(env, max_plain, &b);
	assert_int_equal(a.n, b.n);
	assert_int_equal(p.n, b.n);
	for (size_t i = 0; i < a.n; i++) {
		assert_int_equal(a.lens[i], b.lens[i]);
		assert_memory_equal(a.msgs[i], b.msgs[i], a.lens[i]);
		assert_int_equal(p.lens[i], b.lens[i]);
		assert_memory_equal(p.msgs[i], b.msgs[i], p.lens[i]);
	}
	free_collected(&a);
	free_collected(&b);
	free_collected(&p);
}

/* A chunk's put and a long reply of small fields: the same fragments as a
 * packed copy split in order, at every size around the fragment steps
 * and with fragments smaller than the data's pieces. */
static void test_envelope_fragments_in_place(void **state)
{
	static uint8_t data[300000];
	uint8_t name[32];
	pb_envelope_t env;
	Peerback__Request req;
	Peerback__ChunkPut put;
	Peerback__Reply rep;
	Peerback__SnapshotListReply list;
	Peerback__SnapshotInfo infos[3000], *ptrs[3000];
	const size_t lens[] = { 65000, 65460, 65470, 65480, 65490, 130976, 131000, 200000, sizeof(data) };

	(void)state;
	randombytes_buf(data, sizeof(data));
	randombytes_buf(name, sizeof(name));
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		pb__envelope_init(&env);
		peerback__request__init(&req);
		peerback__chunk_put__init(&put);
		put.name.data = name;
		put.name.len = sizeof(name);
		put.data.data = data;
		put.data.len = lens[k];
		req.id = 1000 + k;
		req.op_case = PEERBACK__REQUEST__OP_CHUNK_PUT;
		req.chunk_put = &put;
		env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
		env.request = &req;
		same_fragments(&env, PB_ENVELOPE_MAX_PLAIN);
		same_fragments(&env, 1000);
	}
	pb__envelope_init(&env);
	peerback__reply__init(&rep);
	peerback__snapshot_list_reply__init(&list);
	for (size_t i = 0; i < 3000; i++) {
		peerback__snapshot_info__init(&infos[i]);
		infos[i].snapshot = i + 1;
		infos[i].time = (int64_t)(1700000000 + i);
		infos[i].size = (uint64_t)i << 20;
		infos[i].chunks = i * 7;
		ptrs[i] = &infos[i];
	}
	list.n_snapshots = 3000;
	list.snapshots = ptrs;
	rep.id = 9;
	rep.op_case = PEERBACK__REPLY__OP_SNAPSHOTS;
	rep.snapshots = &list;
	env.body_case = PEERBACK__ENVELOPE__BODY_REPLY;
	env.reply = &rep;
	same_fragments(&env, PB_ENVELOPE_MAX_PLAIN);
	same_fragments(&env, 1000);
}

/* Fragments are read in place only in the form the encoder writes; the
 * same fields in another order go through protobuf-c and give the same
 * Envelope, and a fragment whose data runs past its end is refused. */
static void test_envelope_fragments_any_order(void **state)
{
	static uint8_t big[200000];
	struct collected c = { 0 };
	pb_envelope_t env, *out = NULL;
	Peerback__Request req;
	Peerback__Ping ping;
	pb_envelope_decoder_t d;
	uint8_t moved[PB_ENVELOPE_MAX_PLAIN];

	(void)state;
	randombytes_buf(big, sizeof(big));
	ping_envelope(&env, &req, &ping, big, sizeof(big));
	assert_int_equal(pb__envelope_encode(&env, PB_ENVELOPE_MAX_PLAIN, collect, &c), 0);
	assert_true(c.n >= 4);
	pb__envelope_decoder_init(&d, 0);
	for (size_t i = 0; i < c.n; i++) {
		const uint8_t *m = c.msgs[i];
		size_t n = c.lens[i];
		int rc;

		assert_true(n > 4 && m[0] == 0x08 && m[1] == PB_PROTOCOL_VERSION && m[2] == 0x12);
		if (i % 2 == 0) {
			/* The version after the fragment. */
			memcpy(moved, m + 2, n - 2);
			moved[n - 2] = 0x08;
			moved[n - 1] = PB_PROTOCOL_VERSION;
			m = moved;
		}
		rc = pb__envelope_decode(&d, m, n, &out);
		assert_int_equal(rc, i + 1 == c.n ? 1 : 0);
	}
	assert_int_equal(out->request->ping->data.len, sizeof(big));
	assert_memory_equal(out->request->ping->data.data, big, sizeof(big));
	pb__envelope_free(out);
	/* The first fragment's inner length one byte short of its data. */
	memcpy(moved, c.msgs[0], c.lens[0]);
	assert_true(moved[3] & 0x80);
	moved[3] = (uint8_t)(moved[3] - 1);
	pb__envelope_decoder_init(&d, 0);
	assert_int_equal(pb__envelope_decode(&d, moved, c.lens[0], &out), PB_EENV_MALFORMED);
	assert_false(d.active);
	free_collected(&c);
}

/* Decodes message m (len bytes) as a session does: where
 * pb__envelope_place says its data belongs when it says so (the copy
 * standing for the decryption), else from where it is. Returns what the
 * decoder returned; *placed tells which way it went. */
static int decode_as_session(pb_envelope_decoder_t *d, const uint8_t *m, size_t len, pb_envelope_t **out,
			     bool *placed)
{
	uint8_t *at = pb__envelope_place(d, len);

	*placed = at != NULL;
	if (at == NULL)
		return pb__envelope_decode(d, m, len, out);
	memcpy(at, m, len);
	return pb__envelope_decode_placed(d, at, len, out);
}

/* A chunk's reply or put as a sequence of fragments, decoded: the same
 * Envelope whether the decoder reads its head and keeps the data where it
 * lands (the form the encoder writes) or unpacks it whole (anything
 * else), and whether each fragment is decoded from where it is or placed
 * where its data belongs first (then every fragment after the first is,
 * when the first carried data). */
static void chunk_round_trip(bool put, const uint8_t *data, size_t len, uint64_t id, const uint8_t *name,
			     size_t nlen, size_t max_plain)
{
	struct collected c = { 0 };
	pb_envelope_t env, *out = NULL;
	Peerback__Reply rep;
	Peerback__ChunkData cd;
	Peerback__Request req;
	Peerback__ChunkPut cp;
	pb_envelope_decoder_t d;
	const ProtobufCBinaryData *got_name, *got_data;

	pb__envelope_init(&env);
	if (put) {
		peerback__request__init(&req);
		peerback__chunk_put__init(&cp);
		cp.name.data = (uint8_t *)name;
		cp.name.len = nlen;
		cp.data.data = (uint8_t *)data;
		cp.data.len = len;
		req.id = id;
		req.op_case = PEERBACK__REQUEST__OP_CHUNK_PUT;
		req.chunk_put = &cp;
		env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
		env.request = &req;
	} else {
		peerback__reply__init(&rep);
		peerback__chunk_data__init(&cd);
		cd.name.data = (uint8_t *)name;
		cd.name.len = nlen;
		cd.data.data = (uint8_t *)data;
		cd.data.len = len;
		rep.id = id;
		rep.op_case = PEERBACK__REPLY__OP_CHUNK;
		rep.chunk = &cd;
		env.body_case = PEERBACK__ENVELOPE__BODY_REPLY;
		env.reply = &rep;
	}
	assert_int_equal(pb__envelope_encode(&env, max_plain, collect, &c), 0);
	for (int way = 0; way < 2; way++) {
		pb__envelope_decoder_init(&d, 0);
		out = NULL;
		for (size_t i = 0; i < c.n; i++) {
			bool placed = false;
			int rc = way == 0 ? pb__envelope_decode(&d, c.msgs[i], c.lens[i], &out)
					  : decode_as_session(&d, c.msgs[i], c.lens[i], &out, &placed);

			assert_int_equal(rc, i + 1 == c.n ? 1 : 0);
			if (way == 1 && i > 0 && d.skip > 0)
				assert_true(placed);
		}
		assert_non_null(out);
		assert_int_equal(out->version, PB_PROTOCOL_VERSION);
		if (put) {
			assert_int_equal(out->body_case, PEERBACK__ENVELOPE__BODY_REQUEST);
			assert_int_equal(out->request->id, id);
			assert_int_equal(out->request->op_case, PEERBACK__REQUEST__OP_CHUNK_PUT);
			got_name = &out->request->chunk_put->name;
			got_data = &out->request->chunk_put->data;
		} else {
			assert_int_equal(out->body_case, PEERBACK__ENVELOPE__BODY_REPLY);
			assert_int_equal(out->reply->id, id);
			assert_int_equal(out->reply->op_case, PEERBACK__REPLY__OP_CHUNK);
			got_name = &out->reply->chunk->name;
			got_data = &out->reply->chunk->data;
		}
		assert_int_equal(got_name->len, nlen);
		if (nlen > 0)
			assert_memory_equal(got_name->data, name, nlen);
		assert_int_equal(got_data->len, len);
		assert_memory_equal(got_data->data, data, len);
		assert_false(d.active);
		pb__envelope_free(out);
	}
	free_collected(&c);
}

static void test_envelope_chunk_reply(void **state)
{
	static uint8_t data[300000];
	uint8_t name[64];
	const size_t lens[] = { 4096, 65000, 65460, 65480, 65490, 130976, 200000, sizeof(data) };
	const uint64_t ids[] = { 0, 1, 300, UINT64_MAX };

	(void)state;
	randombytes_buf(data, sizeof(data));
	randombytes_buf(name, sizeof(name));
	for (int put = 0; put < 2; put++) {
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
			for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
				chunk_round_trip(put, data, lens[k], ids[i], name, 32, PB_ENVELOPE_MAX_PLAIN);
				/* Fragments of a sequence are at least the
				 * largest whole message: smaller fragments for
				 * large data. */
				if (lens[k] >= 65490)
					chunk_round_trip(put, data, lens[k], ids[i], name, k % 2 ? 0 : 64, 1000);
			}
		/* A name longer than the decoder keeps: unpacked whole, the
		 * same Envelope. */
		chunk_round_trip(put, data, 70000, 5, data, 65, PB_ENVELOPE_MAX_PLAIN);
		chunk_round_trip(put, data, 70000, 5, data, 65, 1000);
	}
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

/* The fragment of msg (as pb__envelope_encode gave it) encoded again with
 * its fields in reverse order (valid protobuf, not the encoder's order). */
static size_t fragment_reordered(const uint8_t *msg, size_t len, uint8_t *out)
{
	Peerback__Envelope *e = peerback__envelope__unpack(NULL, len, msg);
	uint8_t inner[PB_ENVELOPE_MAX_PLAIN];
	size_t n = 0, o = 0;

	assert_non_null(e);
	assert_int_equal(e->body_case, PEERBACK__ENVELOPE__BODY_FRAGMENT);
	if (e->fragment->last) {
		inner[n++] = 0x18;
		inner[n++] = 1;
	}
	inner[n++] = 0x12;
	n += put_varint(inner + n, e->fragment->data.len);
	memcpy(inner + n, e->fragment->data.data, e->fragment->data.len);
	n += e->fragment->data.len;
	if (e->fragment->total != 0) {
		inner[n++] = 0x08;
		n += put_varint(inner + n, e->fragment->total);
	}
	out[o++] = 0x12;
	o += put_varint(out + o, n);
	memcpy(out + o, inner, n);
	o += n;
	out[o++] = 0x08; /* the version last */
	o += put_varint(out + o, e->version);
	peerback__envelope__free_unpacked(e, NULL);
	return o;
}

/* Fragments in the encoder's own encoding are read in place, others by
 * protobuf-c: a sequence mixing both reassembles exactly, and a fragment
 * whose last flag is not 0 or 1 is still understood as protobuf says.
 * The same when each is first placed where the encoder's form would put
 * its data (as a session decrypts it): one of another form is then
 * decoded from a copy, and the data its head covered is put back. */
static void test_fragments_read_either_way(void **state)
{
	static uint8_t big[1 << 20];
	static uint8_t alt[PB_ENVELOPE_MAX_PLAIN + 64];
	struct collected c = { 0 };
	pb_envelope_t env, *out = NULL;
	Peerback__Request req;
	Peerback__Ping ping;
	pb_envelope_decoder_t d;

	(void)state;
	randombytes_buf(big, sizeof(big));
	ping_envelope(&env, &req, &ping, big, sizeof(big));
	assert_int_equal(pb__envelope_encode(&env, PB_ENVELOPE_MAX_PLAIN, collect, &c), 0);
	assert_true(c.n >= 17);
	for (int way = 0; way < 2; way++) {
		size_t nplaced = 0;

		pb__envelope_decoder_init(&d, 0);
		out = NULL;
		for (size_t i = 0; i < c.n; i++) {
			const uint8_t *m = c.msgs[i];
			size_t n = c.lens[i];
			bool placed = false;
			int rc;

			if (i % 2 == 1 || i + 1 == c.n) {
				n = fragment_reordered(c.msgs[i], c.lens[i], alt);
				m = alt;
				if (i + 1 == c.n) {
					/* last = 2, first in its fragment: true
					 * to protobuf. */
					size_t at = 1;

					assert_int_equal(alt[0], 0x12);
					while (alt[at] & 0x80)
						at++;
					assert_int_equal(alt[at + 1], 0x18);
					alt[at + 2] = 2;
				}
			}
			if (way == 0)
				rc = pb__envelope_decode(&d, m, n, &out);
			else
				rc = decode_as_session(&d, m, n, &out, &placed);
			assert_int_equal(rc, i + 1 == c.n ? 1 : 0);
			nplaced += placed;
		}
		/* Every fragment after the first was placed, the reordered
		 * ones (the same length) too. */
		if (way == 1)
			assert_int_equal(nplaced, c.n - 1);
		assert_int_equal(out->request->id, 7);
		assert_int_equal(out->request->ping->data.len, sizeof(big));
		assert_memory_equal(out->request->ping->data.data, big, sizeof(big));
		pb__envelope_free(out);
	}
	free_collected(&c);
}

static void test_envelope_refusals(void **state)
{
	pb_envelope_t env, *out = NULL;
	pb_envelope_decoder_t d;
	Peerback__Request req;
	Peerback__Ping ping;
	uint8_t buf[256], data[4] = { 1, 2, 3, 4 };
	size_t n;

	(void)state;
	pb__envelope_decoder_init(&d, 0);
	/* Unknown version. */
	ping_envelope(&env, &req, &ping, data, sizeof(data));
	env.version = 99;
	n = peerback__envelope__pack(&env, buf);
	assert_int_equal(pb__envelope_decode(&d, buf, n, &out), PB_EENV_VERSION);
	/* No version at all. */
	env.version = 0;
	n = peerback__envelope__pack(&env, buf);
	assert_int_equal(pb__envelope_decode(&d, buf, n, &out), PB_EENV_VERSION);
	/* No body. */
	pb__envelope_init(&env);
	n = peerback__envelope__pack(&env, buf);
	assert_int_equal(pb__envelope_decode(&d, buf, n, &out), PB_EENV_MALFORMED);
	/* Not protobuf. */
	memset(buf, 0xff, 32);
	assert_int_equal(pb__envelope_decode(&d, buf, 32, &out), PB_EENV_MALFORMED);
	/* A fragment that claims to be first but is small enough to not need
	 * fragmenting, and one whose last flag lies. */
	{
		Peerback__Fragment f;
		pb__envelope_init(&env);
		peerback__fragment__init(&f);
		f.total = 10;
		f.data.data = data;
		f.data.len = 4;
		env.body_case = PEERBACK__ENVELOPE__BODY_FRAGMENT;
		env.fragment = &f;
		n = peerback__envelope__pack(&env, buf);
		assert_int_equal(pb__envelope_decode(&d, buf, n, &out), PB_EENV_MALFORMED);
		f.total = 100000;
		f.last = true;
		n = peerback__envelope__pack(&env, buf);
		assert_int_equal(pb__envelope_decode(&d, buf, n, &out), PB_EENV_MALFORMED);
		assert_false(d.active);
	}
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames_split_anywhere),
		cmocka_unit_test(test_frame_caps_and_truncation),
		cmocka_unit_test(test_envelope_round_trip_and_fragments),
		cmocka_unit_test(test_envelope_fragments_in_place),
		cmocka_unit_test(test_envelope_fragments_any_order),
		cmocka_unit_test(test_envelope_chunk_reply),
		cmocka_unit_test(test_fragments_read_either_way),
		cmocka_unit_test(test_envelope_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
