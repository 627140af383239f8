/* The secure session on a libuv stream. */
#include <stdlib.h>
#include <string.h>

#include "protocol/channel.h"
#include "protocol/client.h"

#define READ_BUF 65536

struct write_req {
	uv_write_t req;
	pb_channel_t *ch;
	size_t len;
	uint8_t data[];
};

static void handle_closed(uv_handle_t *h)
{
	pb_channel_t *ch = h->data;

	if (--ch->handles_open > 0)
		return;
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

static void write_done(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	pb_channel_t *ch = w->ch;

	ch->queued -= w->len;
	free(w);
	if (status < 0 && !ch->closing) {
		close_now(ch, status);
		return;
	}
	if (ch->flush_then_close && ch->queued == 0)
		close_now(ch, ch->status);
}

static int queue_write(void *arg, const uint8_t *data, size_t len)
{
	pb_channel_t *ch = arg;
	struct write_req *w;
	uv_buf_t buf;
	int rc;

	if (ch->closing)
		return PB_ESTATE;
	w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return PB_ENOMEM;
	w->ch = ch;
	w->len = len;
	memcpy(w->data, data, len);
	buf = uv_buf_init((char *)w->data, (unsigned)len);
	rc = uv_write(&w->req, (uv_stream_t *)&ch->tcp, &buf, 1, write_done);
	if (rc != 0) {
		free(w);
		return rc;
	}
	ch->queued += len;
	return 0;
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
	ch->cb.on_envelope(ch, env);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	pb_channel_t *ch = stream->data;
	bool established = false;
	int rc;

	if (nread < 0) {
		close_now(ch, nread == UV_EOF ? pb__session_eof(&ch->sess) : (int)nread);
		return;
	}
	if (nread == 0 || ch->closing)
		return;
	rc = pb__session_feed(&ch->sess, (const uint8_t *)buf->base, (size_t)nread, deliver, ch, &established);
	if (established && !ch->opened && !ch->closing) {
		ch->opened = true;
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
}

static void on_handshake_timeout(uv_timer_t *t)
{
	pb_channel_t *ch = t->data;

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
	rc = pb__session_init(&ch->sess, false, cands, ncands, queue_write, ch, max_envelope);
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
		rc = uv_timer_start(&ch->timer, on_handshake_timeout, ch->handshake_timeout_ms, 0);
	if (rc != 0) {
		close_now(ch, rc);
		return 0; /* on_close reports it */
	}
	return 0;
}

int pb__channel_send(pb_channel_t *ch, pb_envelope_t *env)
{
	int rc;

	if (ch->closing)
		return PB_ESTATE;
	rc = pb__session_send(&ch->sess, env);
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
}

void pb__channel_fail(pb_channel_t *ch, int code, const char *message)
{
	if (ch->closing)
		return;
	pb__session_send_error(&ch->sess, code, message);
	pb__channel_close(ch, code);
}

void pb__channel_pause(pb_channel_t *ch, bool paused)
{
	if (ch->closing)
		return;
	if (paused)
		uv_read_stop((uv_stream_t *)&ch->tcp);
	else
		uv_read_start((uv_stream_t *)&ch->tcp, alloc_buf, on_read);
}
