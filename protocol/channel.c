/* The secure session on a libuv stream. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/channel.h"
#include "protocol/client.h"

/* Several frames a read: fewer read calls, and most frames are whole in
 * the buffer, where the session takes them without copying. */
#define READ_BUF (256u * 1024)
/* How long a closing channel waits for its last writes to go: a peer that
 * does not read does not keep it open. */
#define FLUSH_MS 5000
/* A fragment carries at least this much of its message (the encoder's
 * step, PB_ENVELOPE_MAX_PLAIN less its room for the fragment's fields),
 * and costs at most this much more in its frame: the fragment's fields,
 * the frame's header and the transport's tag. */
#define PB_BATCH_STEP (PB_ENVELOPE_MAX_PLAIN - 48)
#define PB_BATCH_FRAME_EXTRA (48 + PB_FRAME_HDR + PB_NOISE_TAGLEN)

struct write_req {
	uv_write_t req;
	pb_channel_t *ch;
	size_t len;
	size_t *total;            /* the owner's count it was added to, if any */
	uint8_t data[];
};

static void handle_closed(uv_handle_t *h)
{
	pb_channel_t *ch = h->data;

	if (--ch->handles_open > 0)
		return;
	free(ch->backlog);
	ch->backlog = NULL;
	ch->backlog_len = 0;
	pb__session_free(&ch->sess);
	if (ch->cb.on_close != NULL)
		ch->cb.on_close(ch, ch->status);
}

static void close_now(pb_channel_t *ch, int status)
{
	if (ch->closing)
		return;
	ch->closing = true;
	if (ch->status == 0)
		ch->status = status;
	uv_read_stop((uv_stream_t *)&ch->tcp);
	uv_timer_stop(&ch->timer);
	uv_close((uv_handle_t *)&ch->timer, handle_closed);
	uv_close((uv_handle_t *)&ch->tcp, handle_closed);
}

static void resume(pb_channel_t *ch);
static int batch_submit(pb_channel_t *ch);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void write_done(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	pb_channel_t *ch = w->ch;
	size_t *total = w->total;

	ch->queued -= w->len;
	if (total != NULL)
		*total -= w->len;
	free(w);
	/* Also while closing: the owner's count went down. */
	if (total != NULL && ch->on_sent != NULL)
		ch->on_sent(ch);
	if (ch->closing)
		return;
	if (status < 0) {
		close_now(ch, status);
		return;
	}
	ch->last_io = uv_now(ch->tcp.loop);
	if (ch->flush_then_close && ch->queued == 0) {
		close_now(ch, ch->status);
		return;
	}
	if (ch->sess.hold && !ch->owner_paused && ch->queued <= ch->out_high / 2)
		resume(ch);
	if (ch->on_drained != NULL && !ch->closing && ch->queued <= ch->out_high / 2) {
		void (*fn)(pb_channel_t *) = ch->on_drained;

		ch->on_drained = NULL;
		fn(ch); /* may close the channel: nothing after this */
	}
}

/* Sends w (its data and len set), which it owns from now on. */
static int submit(pb_channel_t *ch, struct write_req *w)
{
	uv_buf_t buf;
	int rc;

	if (ch->closing || w->len == 0) {
		free(w);
		return ch->closing ? PB_ESTATE : 0;
	}
	w->ch = ch;
	buf = uv_buf_init((char *)w->data, (unsigned)w->len);
	rc = uv_write(&w->req, (uv_stream_t *)&ch->tcp, &buf, 1, write_done);
	if (rc != 0) {
		free(w);
		return rc;
	}
	ch->queued += w->len;
	w->total = ch->out_total;
	if (w->total != NULL)
		*w->total += w->len;
	/* A reply made later (off the event loop, say) counts too. */
	if (ch->queued > ch->out_high && !ch->sess.hold) {
		ch->sess.hold = true;
		uv_read_stop((uv_stream_t *)&ch->tcp);
	}
	return 0;
}

static int queue_write(void *arg, const uint8_t *data, size_t len)
{
	pb_channel_t *ch = arg;
	struct write_req *w;
	int rc;

	if (ch->closing)
		return PB_ESTATE;
	/* Behind the frames made so far, in order. */
	if (ch->batch != NULL && (rc = batch_submit(ch)) != 0)
		return rc;
	w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return PB_ENOMEM;
	w->len = len;
	memcpy(w->data, data, len);
	return submit(ch, w);
}

/* The frames of one large message go out as one write (pb__channel_send):
 * one request and one write call where each frame of 64 KiB took its own. */
static int batch_submit(pb_channel_t *ch)
{
	struct write_req *w = ch->batch;

	ch->batch = NULL;
	return w != NULL ? submit(ch, w) : 0;
}

/* A frame encrypted straight into a write request's data (the session's
 * frame_alloc and frame_send): a reply is not copied once more. */
static uint8_t *frame_alloc(void *arg, size_t len)
{
	pb_channel_t *ch = arg;
	struct write_req *w;

	if (ch->batch != NULL) {
		w = ch->batch;
		if (len <= ch->batch_cap - w->len)
			return w->data + w->len;
		/* Full: the frames after it go on their own. */
		if (batch_submit(ch) != 0)
			return NULL;
	}
	w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return NULL;
	w->len = len;
	return w->data;
}

static int frame_send(void *arg, uint8_t *frame, size_t len)
{
	pb_channel_t *ch = arg;
	struct write_req *w = ch->batch;

	if (w != NULL && frame == w->data + w->len) {
		w->len += len; /* 0: given back */
		return 0;
	}
	w = (struct write_req *)(void *)(frame - offsetof(struct write_req, data));
	if (len == 0) {
		free(w);
		return 0;
	}
	w->len = len;
	return submit(ch, w);
}

static void alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static __thread char storage[READ_BUF];

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(storage, sizeof(storage));
}

static void deliver(void *arg, pb_envelope_t *env)
{
	pb_channel_t *ch = arg;

	if (ch->closing || ch->cb.on_envelope == NULL) {
		pb__envelope_free(env);
		return;
	}
	/* Replies the peer has not read yet (over out_high): queue_write
	 * sets hold, and no more requests are taken until they drain
	 * (write_done resumes). */
	ch->cb.on_envelope(ch, env);
}

static void start_reading(pb_channel_t *ch)
{
	if (!ch->closing && !ch->flush_then_close && !ch->owner_paused && !ch->sess.hold && ch->backlog_len == 0)
		uv_read_start((uv_stream_t *)&ch->tcp, alloc_buf, on_read);
}

/* Feeds received bytes to the session; what it does not take while held
 * waits in the backlog, and reading stops. */
static void consume(pb_channel_t *ch, const uint8_t *data, size_t len)
{
	bool established = false;
	size_t used = 0;
	int rc;

	ch->feeding = true;
	rc = pb__session_feed_some(&ch->sess, data, len, deliver, ch, &established, &used);
	ch->feeding = false;
	if (established && !ch->opened && !ch->closing) {
		ch->opened = true;
		if (!ch->until_auth)
			uv_timer_stop(&ch->timer);
		if (ch->cb.on_open != NULL)
			ch->cb.on_open(ch);
	}
	if (rc != 0 && !ch->closing) {
		/* A peer that broke the protocol after the handshake is told why. */
		if (ch->sess.established && rc != PB_ENOISE_DECRYPT)
			pb__channel_fail(ch, rc, NULL);
		else
			close_now(ch, rc);
	}
	if (ch->closing || used == len)
		return;
	/* The rest of this read waits for the replies to drain. At most one
	 * read buffer is kept, and it is not read past. */
	if (ch->backlog == NULL && (ch->backlog = malloc(READ_BUF)) == NULL) {
		close_now(ch, PB_ENOMEM);
		return;
	}
	memmove(ch->backlog, data + used, len - used);
	ch->backlog_len = len - used;
	uv_read_stop((uv_stream_t *)&ch->tcp);
}

static void resume(pb_channel_t *ch)
{
	if (ch->flush_then_close || ch->owner_paused)
		return;
	ch->sess.hold = false;
	if (ch->backlog_len > 0) {
		size_t len = ch->backlog_len;

		/* consume() may keep part of it again: it moves the rest to the
		 * front of the same buffer. */
		ch->backlog_len = 0;
		consume(ch, ch->backlog, len);
		/* Not kept once drained: many paused channels would each hold
		 * a read buffer. */
		if (ch->backlog_len == 0 && !ch->feeding) {
			free(ch->backlog);
			ch->backlog = NULL;
		}
	}
	start_reading(ch);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	pb_channel_t *ch = stream->data;

	if (nread < 0) {
		close_now(ch, nread == UV_EOF ? pb__session_eof(&ch->sess) : (int)nread);
		return;
	}
	if (nread == 0 || ch->closing)
		return;
	ch->last_io = uv_now(ch->tcp.loop);
	consume(ch, (const uint8_t *)buf->base, (size_t)nread);
}

static void on_timer(uv_timer_t *t)
{
	pb_channel_t *ch = t->data;
	uint64_t now = uv_now(ch->tcp.loop);

	if (!ch->flush_then_close && ch->authenticated && ch->idle_ms > 0 &&
	    (ch->busy || now - ch->last_io < ch->idle_ms)) {
		uv_timer_start(&ch->timer, on_timer, ch->busy ? ch->idle_ms : ch->idle_ms - (now - ch->last_io), 0);
		return;
	}
	close_now(ch, PB_ETIMEOUT);
}

int pb__channel_accept(uv_stream_t *server, pb_channel_t *ch, const pb_session_candidate_t *cands, size_t ncands,
		       size_t max_envelope, const pb_channel_callbacks_t *cb, void *data)
{
	int rc, len = sizeof(ch->peer_addr);

	memset(ch, 0, sizeof(*ch));
	ch->cb = *cb;
	ch->data = data;
	ch->handshake_timeout_ms = 10000;
	ch->out_high = PB_CHANNEL_OUT_HIGH;
	rc = pb__session_init(&ch->sess, false, cands, ncands, queue_write, ch, max_envelope);
	if (rc == 0)
		pb__session_set_frame_out(&ch->sess, frame_alloc, frame_send);
	if (rc != 0)
		return rc;
	uv_tcp_init(server->loop, &ch->tcp);
	uv_timer_init(server->loop, &ch->timer);
	ch->tcp.data = ch;
	ch->timer.data = ch;
	ch->handles_open = 2;
	rc = uv_accept(server, (uv_stream_t *)&ch->tcp);
	if (rc == 0) {
		uv_tcp_nodelay(&ch->tcp, 1);
		if (uv_tcp_getpeername(&ch->tcp, (struct sockaddr *)&ch->peer_addr, &len) == 0)
			(void)pb__sockaddr_format(&ch->peer_addr, ch->peer, sizeof(ch->peer));
		rc = uv_read_start((uv_stream_t *)&ch->tcp, alloc_buf, on_read);
	}
	if (rc == 0)
		rc = uv_timer_start(&ch->timer, on_timer, ch->handshake_timeout_ms, 0);
	if (rc != 0) {
		close_now(ch, rc);
		return 0; /* on_close reports it */
	}
	return 0;
}

void pb__channel_require_auth(pb_channel_t *ch, uint64_t deadline_ms, size_t preauth_cap)
{
	if (ch->closing)
		return;
	ch->until_auth = true;
	pb__session_set_cap(&ch->sess, preauth_cap);
	uv_timer_start(&ch->timer, on_timer, deadline_ms, 0);
}

void pb__channel_busy(pb_channel_t *ch, bool busy)
{
	if (ch->busy && !busy)
		ch->last_io = uv_now(ch->tcp.loop);
	ch->busy = busy;
}

void pb__channel_authenticated(pb_channel_t *ch, uint64_t idle_ms, size_t max_envelope)
{
	if (ch->closing)
		return;
	ch->authenticated = true;
	ch->idle_ms = idle_ms;
	ch->last_io = uv_now(ch->tcp.loop);
	pb__session_set_cap(&ch->sess, max_envelope);
	uv_timer_stop(&ch->timer);
	if (idle_ms > 0)
		uv_timer_start(&ch->timer, on_timer, idle_ms, 0);
}

int pb__channel_send(pb_channel_t *ch, pb_envelope_t *env)
{
	size_t size;
	int rc;

	if (ch->closing)
		return PB_ESTATE;
	/* A message of several frames: its frames are made in one buffer,
	 * sized for the most they can take (each fragment's head and the
	 * frame's header and tag around at least PB_BATCH_STEP bytes of it). */
	size = ch->sess.established ? peerback__envelope__get_packed_size(env) : 0;
	if (size > PB_ENVELOPE_MAX_PLAIN) {
		size_t frames = size / PB_BATCH_STEP + 1;

		ch->batch_cap = size + frames * PB_BATCH_FRAME_EXTRA;
		ch->batch = malloc(sizeof(struct write_req) + ch->batch_cap);
		if (ch->batch != NULL)
			ch->batch->len = 0;
	}
	rc = pb__session_send(&ch->sess, env);
	if (rc == 0)
		rc = batch_submit(ch);
	free(ch->batch);
	ch->batch = NULL;
	if (rc != 0)
		close_now(ch, rc);
	return rc;
}

void pb__channel_close(pb_channel_t *ch, int status)
{
	if (ch->closing)
		return;
	if (ch->status == 0)
		ch->status = status;
	if (ch->queued == 0) {
		close_now(ch, status);
		return;
	}
	ch->flush_then_close = true;
	uv_read_stop((uv_stream_t *)&ch->tcp);
	uv_timer_start(&ch->timer, on_timer, FLUSH_MS, 0);
}

void pb__channel_fail(pb_channel_t *ch, int code, const char *message)
{
	if (ch->closing)
		return;
	pb__session_send_error(&ch->sess, code, message);
	pb__channel_close(ch, code);
}

void pb__channel_when_drained(pb_channel_t *ch, void (*fn)(pb_channel_t *ch))
{
	ch->on_drained = fn;
}

void pb__channel_pause(pb_channel_t *ch, bool paused)
{
	if (ch->closing)
		return;
	ch->owner_paused = paused;
	if (paused) {
		/* Nothing more is delivered, not even the rest of the bytes
		 * already read: they wait in the backlog. */
		ch->sess.hold = true;
		uv_read_stop((uv_stream_t *)&ch->tcp);
		return;
	}
	if (ch->sess.hold && ch->queued > ch->out_high / 2)
		return; /* held for the replies as well: write_done resumes */
	if (ch->feeding) {
		/* Restarted from an Envelope being delivered: consume() goes
		 * on with the bytes it has. */
		ch->sess.hold = false;
		start_reading(ch);
		return;
	}
	resume(ch);
}
