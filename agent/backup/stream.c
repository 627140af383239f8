/* A chat's messages as one stream: their canonical bytes concatenated in
 * order and cut into content-defined chunks that hold many messages, as a
 * large file is cut. Each message stays an item of the manifest, a slice
 * of the stream (pb_manifest_item_t.slice): the chunks that hold it and
 * its offset in the first. So a chat of a million messages is a few
 * thousand chunks, one changed message re-sends the chunk around it, and
 * one message by id is still one manifest record away through the
 * snapshot's id index. The stream holds only the bytes not yet cut and
 * the messages not yet complete: no allocation per message. */
#include <stdlib.h>
#include <string.h>

#include "agent/backup/engine-int.h"
#include "agent/backup/stream.h"

#define STREAM_BUF (1u << 20) /* bytes kept before the uncut ones move to the front */
/* Chunks are cut once this many of the largest could be: a dozen or so at
 * once, named together (256 KiB, a large chat's 512 KiB). */
#define STREAM_BATCH 8

void pb__stream_init(pb__stream_t *s, const pb_cdc_t *cdc, pb__stream_chunk_cb chunk, pb__stream_rec_cb rec,
		     void *arg)
{
	memset(s, 0, sizeof(*s));
	s->cdc = cdc;
	s->chunk = chunk;
	s->rec = rec;
	s->arg = arg;
}

void pb__stream_free(pb__stream_t *s)
{
	free(s->path);
	free(s->buf);
	free(s->ch);
	free(s->msg);
	free(s->ids);
	free(s->names);
	memset(s, 0, sizeof(*s));
}

uint64_t pb__stream_large_min = 4u << 20;

void pb__stream_next_size(pb__stream_t *s, uint64_t size)
{
	s->next_large = size >= pb__stream_large_min;
}

bool pb__stream_on(const pb__stream_t *s, const char *path)
{
	return s->path != NULL && (path == NULL || strcmp(s->path, path) == 0);
}

/* Every message whose bytes are all cut goes to the manifest, in order. */
static int emit_ready(pb__stream_t *s)
{
	uint64_t cut = s->base + s->pos;
	size_t first = 0, keep;
	int rc;

	while (s->head < s->nmsg) {
		const struct pb__smsg *g = &s->msg[s->head];
		uint64_t end = g->off + g->len;
		pb_manifest_item_t m;
		size_t c, n = 0;

		if (end > cut)
			break;
		memset(&m, 0, sizeof(m));
		if (g->len > 0) {
			while (first < s->nch && s->ch[first].end <= g->off)
				first++;
			for (c = first; c < s->nch && s->ch[c].start < end; c++)
				n++;
			if (n == 0)
				return PB_EINVAL;
			if ((rc = pb__grow((void **)&s->names, &s->cap_names, n, PB_STORE_NAME_LEN)) != 0)
				return rc;
			for (c = 0; c < n; c++)
				memcpy(s->names + c * PB_STORE_NAME_LEN, s->ch[first + c].name, PB_STORE_NAME_LEN);
			m.off = (uint32_t)(g->off - s->ch[first].start);
		}
		m.kind = g->kind;
		m.id = s->ids + g->id;
		m.path = s->path;
		m.seq = g->seq;
		m.size = g->len;
		memcpy(m.hash, g->hash, 32);
		m.nchunks = n;
		m.chunks = (const uint8_t(*)[PB_STORE_NAME_LEN])s->names;
		m.slice = true;
		if ((rc = s->rec(s->arg, &m, g->key)) != 0)
			return rc;
		s->head++;
	}
	/* Forget the chunks no waiting message needs, and the messages done. */
	if (s->head == s->nmsg) {
		s->nch = 0;
		s->head = s->nmsg = s->ids_len = 0;
		return 0;
	}
	for (keep = 0; keep < s->nch && s->ch[keep].end <= s->msg[s->head].off; keep++)
		;
	memmove(s->ch, s->ch + keep, (s->nch - keep) * sizeof(*s->ch));
	s->nch -= keep;
	if (s->head > 0) {
		size_t from = s->msg[s->head].id;

		memmove(s->ids, s->ids + from, s->ids_len - from);
		s->ids_len -= from;
		memmove(s->msg, s->msg + s->head, (s->nmsg - s->head) * sizeof(*s->msg));
		s->nmsg -= s->head;
		s->head = 0;
		for (size_t i = 0; i < s->nmsg; i++)
			s->msg[i].id -= from;
	}
	return 0;
}

/* The bytes cut are gone: the uncut ones move to the front. */
static void move_front(pb__stream_t *s)
{
	memmove(s->buf, s->buf + s->pos, s->len - s->pos);
	s->len -= s->pos;
	s->base += s->pos;
	s->pos = 0;
}

/* Cuts chunks off the front of the uncut bytes while at least keep
 * bytes stay uncut (0 at the file's end: all of them), and hands them
 * over PB_STREAM_CUTS_MAX at a time. */
static int cut_many(pb__stream_t *s, size_t keep, bool eof)
{
	const uint8_t *data[PB_STREAM_CUTS_MAX];
	uint8_t *names[PB_STREAM_CUTS_MAX];
	size_t len[PB_STREAM_CUTS_MAX], k, n, at;
	struct pb__schunk *c;
	int rc;

	while (s->len - s->pos > keep || (keep == 0 && s->len > s->pos)) {
		if ((rc = pb__grow((void **)&s->ch, &s->cap_ch, s->nch + PB_STREAM_CUTS_MAX, sizeof(*s->ch))) != 0)
			return rc;
		for (n = 0, at = s->pos; n < PB_STREAM_CUTS_MAX && s->len - at > keep && s->len > at; n++) {
			size_t cut = s->large ? pb__cdc_cut_stream_large(s->cdc, s->buf + at, s->len - at, eof)
					      : pb__cdc_cut_stream(s->cdc, s->buf + at, s->len - at, eof);

			if (cut == 0)
				return PB_EINVAL;
			c = &s->ch[s->nch + n];
			c->start = s->base + at;
			c->end = c->start + cut;
			data[n] = s->buf + at;
			len[n] = cut;
			names[n] = c->name;
			at += cut;
		}
		if ((rc = s->chunk(s->arg, data, len, n, names)) != 0)
			return rc;
		for (k = 0; k < n; k++)
			s->pos += len[k];
		s->nch += n;
		if ((rc = emit_ready(s)) != 0)
			return rc;
	}
	return 0;
}

int pb__stream_add(pb__stream_t *s, const char *path, const pb_item_t *it, const uint8_t hash[32], uint64_t key)
{
	size_t idl = strlen(it->id) + 1, max;
	struct pb__smsg *g;
	int rc;

	if (s->path == NULL) {
		if ((s->path = strdup(path)) == NULL)
			return PB_ENOMEM;
		s->large = s->next_large;
		s->next_large = false;
	}
	max = s->large ? PB_STREAM_L_MAX : PB_STREAM_MAX;
	if (s->pos > 0 && s->len + it->len > STREAM_BUF)
		move_front(s);
	if ((rc = pb__grow((void **)&s->buf, &s->cap, s->len + it->len + 1, 1)) != 0 ||
	    (rc = pb__grow((void **)&s->ids, &s->ids_cap, s->ids_len + idl, 1)) != 0 ||
	    (g = pb__grow_slot((void **)&s->msg, &s->cap_msg, s->nmsg, sizeof(*s->msg))) == NULL)
		return rc != 0 ? rc : PB_ENOMEM;
	g->off = s->base + s->len;
	g->len = it->len;
	g->seq = it->seq;
	g->kind = (uint32_t)it->kind;
	g->id = s->ids_len;
	g->key = key;
	memcpy(g->hash, hash, 32);
	memcpy(s->ids + s->ids_len, it->id, idl);
	s->ids_len += idl;
	s->nmsg++;
	if (it->len > 0)
		memcpy(s->buf + s->len, it->data, it->len);
	s->len += it->len;
	/* Cut once a few batches' worth is waiting, down to under a chunk's
	 * largest size (where a cut no longer depends on bytes to come). */
	if (s->len - s->pos >= STREAM_BATCH * max) {
		if ((rc = cut_many(s, max - 1, false)) != 0)
			return rc;
		/* Less than a chunk is left uncut: the cheapest time to move it
		 * to the front, before the buffer fills up with a batch's worth
		 * uncut. */
		if (s->pos >= STREAM_BUF / 2)
			move_front(s);
	}
	/* An empty message at the start of a cut is complete at once. */
	return s->len == s->pos ? emit_ready(s) : 0;
}

int pb__stream_flush(pb__stream_t *s)
{
	int rc = 0;

	if (s->path == NULL)
		return 0;
	rc = cut_many(s, 0, true);
	if (rc == 0)
		rc = emit_ready(s);
	if (rc != 0)
		return rc;
	free(s->path);
	s->path = NULL;
	s->len = s->pos = 0;
	s->base = 0;
	return 0;
}
