/* Telegram Desktop exports: import (full and single-chat result.json with
 * attachments), the canonical chat file and its codec, and the export.
 *
 * Canonical chat file (chats/<chat-id>/result.json):
 *   {
 *    "name": "Alice",
 *    "type": "personal_chat",
 *    "id": 42,
 *    "messages": [
 *     {"id":1,"type":"message",...},
 *     {"id":2,...}
 *    ]
 *   }
 * The chat's fields one a line (name, type, id, then others as they came),
 * then one message a line in compact canonical JSON. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"
#include "agent/kinds/item-pipe.h"
#include "agent/kinds/util.h"

/* --- Canonical writer ------------------------------------------------------ */

int pb__chat_header(pb_buf_t *b, const pb__cj_t *frame)
{
	const pb__cj_t **m;
	size_t i;
	int err;

	if ((err = pb__chat_buf_str(b, "{\n")) != 0)
		return err;
	m = calloc(frame->n ? frame->n : 1, sizeof(*m));
	if (m == NULL)
		return PB_ENOMEM;
	pb__cj_order(frame, PB__CJ_ORDER_CHAT, m);
	for (i = 0; i < frame->n && err == 0; i++) {
		if ((err = pb__chat_buf_str(b, " ")) != 0)
			break;
		if ((err = pb__cj_write_string(b, m[i]->key, m[i]->key_len)) != 0)
			break;
		if ((err = pb__chat_buf_str(b, ": ")) != 0)
			break;
		if ((err = pb__cj_write(b, m[i], PB__CJ_ORDER_NONE)) != 0)
			break;
		err = pb__chat_buf_str(b, ",\n");
	}
	free(m);
	if (err != 0)
		return err;
	return pb__chat_buf_str(b, " \"messages\": [");
}

static const char chat_tail[] = "\n ]\n}\n";

int pb__chat_writer_open(pb__chat_writer_t *w, const char *path, const pb__cj_t *frame)
{
	pb_buf_t b = {0};
	int err, n;

	memset(w, 0, sizeof(*w));
	n = snprintf(w->path, sizeof(w->path), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(w->path))
		return PB_ETOOBIG;
	if ((err = pb__chat_header(&b, frame)) != 0)
		goto out_buf;
	w->f = fopen(path, "wb");
	if (w->f == NULL) {
		err = -errno;
		goto out_buf;
	}
	if (fwrite(b.data, 1, b.len, w->f) != b.len) {
		err = PB_EIO;
		fclose(w->f);
		w->f = NULL;
		goto out_buf;
	}
	w->header_len = b.len;
out_buf:
	pb__chat_buf_clear(&b);
	return err;
}

int pb__chat_writer_message(pb__chat_writer_t *w, const pb__cj_t *msg)
{
	pb_buf_t b = {0};
	int err;

	err = pb__chat_buf_str(&b, w->n == 0 ? "\n  " : ",\n  ");
	if (err == 0)
		err = pb__cj_write(&b, msg, PB__CJ_ORDER_MESSAGE);
	if (err == 0 && fwrite(b.data, 1, b.len, w->f) != b.len)
		err = PB_EIO;
	pb__chat_buf_clear(&b);
	if (err == 0)
		w->n++;
	return err;
}

int pb__chat_writer_close(pb__chat_writer_t *w)
{
	int err = 0;

	if (w->f == NULL)
		return PB_EINVAL;
	if (fwrite(chat_tail, 1, sizeof(chat_tail) - 1, w->f) != sizeof(chat_tail) - 1)
		err = PB_EIO;
	if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
		err = err ? err : PB_EIO;
	if (fclose(w->f) != 0 && err == 0)
		err = PB_EIO;
	w->f = NULL;
	return err;
}

void pb__chat_writer_abort(pb__chat_writer_t *w)
{
	if (w->f != NULL) {
		fclose(w->f);
		w->f = NULL;
		unlink(w->path);
	}
}

int pb__chat_rewrite_header(const char *path, uint64_t old_header_len, const pb__cj_t *frame)
{
	char tmp[4200];
	pb_buf_t b = {0};
	FILE *in = NULL, *out = NULL;
	uint8_t buf[65536];
	size_t r;
	int err, n;

	n = snprintf(tmp, sizeof(tmp), "%s.head", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return PB_ETOOBIG;
	if ((err = pb__chat_header(&b, frame)) != 0)
		goto out_buf;
	in = fopen(path, "rb");
	out = fopen(tmp, "wb");
	if (in == NULL || out == NULL || fseeko(in, (off_t)old_header_len, SEEK_SET) != 0) {
		err = PB_EIO;
		goto out_files;
	}
	if (fwrite(b.data, 1, b.len, out) != b.len)
		err = PB_EIO;
	while (err == 0 && (r = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, r, out) != r)
			err = PB_EIO;
	if (err == 0 && (ferror(in) || fflush(out) != 0))
		err = PB_EIO;
out_files:
	if (in != NULL)
		fclose(in);
	if (out != NULL && fclose(out) != 0 && err == 0)
		err = PB_EIO;
	if (err == 0 && rename(tmp, path) != 0)
		err = -errno;
	if (err != 0)
		unlink(tmp);
out_buf:
	pb__chat_buf_clear(&b);
	return err;
}

bool pb__chat_is_attachment(const pb__cj_t *m)
{
	if (m->key == NULL || m->type != PB__CJ_STR)
		return false;
	if (strcmp(m->key, "photo") != 0 && strcmp(m->key, "file") != 0 && strcmp(m->key, "thumbnail") != 0)
		return false;
	return strcmp(m->str, PB__CHAT_FILE_NOT_INCLUDED) != 0;
}

/* A chat id is an integer as Telegram writes it; it names the directory. */
static bool chat_id_ok(const pb__cj_t *id)
{
	size_t i = 0;

	if (id == NULL || id->type != PB__CJ_NUM || id->len == 0 || id->len > 20)
		return false;
	if (id->str[0] == '-')
		i = 1;
	if (i == id->len)
		return false;
	for (; i < id->len; i++)
		if (id->str[i] < '0' || id->str[i] > '9')
			return false;
	return true;
}

/* A message id: an integer number's text. */
static bool num_id(const char *text, long long *out)
{
	char *end;

	if (text == NULL)
		return false;
	errno = 0;
	*out = strtoll(text, &end, 10);
	return errno == 0 && *end == 0;
}

static bool msg_id(const pb__cj_t *msg, long long *out)
{
	const pb__cj_t *id = pb__cj_get(msg, "id");

	return id != NULL && id->type == PB__CJ_NUM && num_id(id->str, out);
}

/* --- Import ---------------------------------------------------------------- */

struct tg_import {
	pb__chat_stage_t *st;
	char srcdir[4096];
	char chat_id[32]; /* the pending chat's number */
	uint64_t chat_seq;
	pb__chat_writer_t w;
	bool open;
	long long last_id;
	char **seen; /* chat ids imported by this run */
	size_t nseen;
};

/* Chats are written under pending/<n>/ and moved to chats/<id>/ at their end,
 * since a chat's id may come after its messages. */
static int imp_begin(void *arg, pb__chat_tg_chat_t *chat)
{
	struct tg_import *im = arg;
	char rel[128], path[4200];
	int err, n;

	im->chat_seq++;
	n = snprintf(im->chat_id, sizeof(im->chat_id), "%llu", (unsigned long long)im->chat_seq);
	if (n < 0 || (size_t)n >= sizeof(im->chat_id))
		return PB_ETOOBIG;
	n = snprintf(rel, sizeof(rel), "pending/%s/result.json", im->chat_id);
	if (n < 0 || (size_t)n >= sizeof(rel))
		return PB_ETOOBIG;
	if ((err = pb__chat_stage_path(im->st, rel, path, sizeof(path))) != 0)
		return err;
	if ((err = pb__chat_writer_open(&im->w, path, chat->frame)) != 0)
		return err;
	im->open = true;
	im->last_id = 0;
	return 0;
}

static int imp_end(void *arg, pb__chat_tg_chat_t *chat)
{
	struct tg_import *im = arg;
	const pb__cj_t *id = pb__cj_get(chat->frame, "id");
	char from[4200], to[4200];
	char **ns;
	size_t i;
	int err, n;

	im->open = false;
	if ((err = pb__chat_writer_close(&im->w)) != 0)
		return err;
	if (chat->frame->n != chat->frame_keys_at_first &&
	    (err = pb__chat_rewrite_header(im->w.path, im->w.header_len, chat->frame)) != 0)
		return err;
	if (!chat_id_ok(id)) {
		pb__chat_fail(chat->why, sizeof(chat->why), 0, "chat %llu has no integer \"id\"",
			 (unsigned long long)im->chat_seq);
		return PB_EDATA_FIELD;
	}
	for (i = 0; i < im->nseen; i++)
		if (strcmp(im->seen[i], id->str) == 0) {
			pb__chat_fail(chat->why, sizeof(chat->why), 0, "chat %s appears twice", id->str);
			return PB_EEXISTS;
		}
	ns = realloc(im->seen, (im->nseen + 1) * sizeof(*ns));
	if (ns == NULL)
		return PB_ENOMEM;
	im->seen = ns;
	if ((im->seen[im->nseen] = strdup(id->str)) == NULL)
		return PB_ENOMEM;
	im->nseen++;
	n = snprintf(from, sizeof(from), "%s/pending/%s", im->st->root, im->chat_id);
	if (n < 0 || (size_t)n >= sizeof(from))
		return PB_ETOOBIG;
	n = snprintf(to, sizeof(to), "%s/chats/%s", im->st->root, id->str);
	if (n < 0 || (size_t)n >= sizeof(to))
		return PB_ETOOBIG;
	if ((err = pb__chat_mkparents(to)) != 0)
		return err;
	if (access(to, F_OK) == 0) { /* from another file of this import */
		pb__chat_fail(chat->why, sizeof(chat->why), 0, "chat %s appears twice", id->str);
		return PB_EEXISTS;
	}
	if (rename(from, to) != 0)
		return -errno;
	return 0;
}

static int imp_attachment(struct tg_import *im, pb__chat_tg_chat_t *chat, const pb__cj_t *m)
{
	char rel[2048], dst[8300];
	int n, err, fd;

	if (!pb__chat_relpath_ok(m->str, m->len) || strcmp(m->str, "result.json") == 0) {
		pb__chat_fail(chat->why, sizeof(chat->why), 0, "chat #%s: attachment path \"%.60s\" is not a safe relative path",
			 im->chat_id, m->str);
		return PB_EDATA_FIELD;
	}
	/* A file the export left out stays a reference, as in the export; a
	 * symbolic link is refused: it may point at anything on the phone. */
	err = pb__chat_open_below(im->srcdir, m->str, &fd);
	if (err == PB_EDATA_LINK) {
		pb__chat_fail(chat->why, sizeof(chat->why), 0,
			      "chat #%s: attachment %.80s is a symbolic link; links in an export are not followed "
			      "(put the file itself in the export)", im->chat_id, m->str);
		return err;
	}
	if (err != 0)
		return 0;
	n = snprintf(rel, sizeof(rel), "pending/%s/%s", im->chat_id, m->str);
	if (n < 0 || (size_t)n >= sizeof(rel) || (err = pb__chat_stage_path(im->st, rel, dst, sizeof(dst))) != 0) {
		close(fd);
		return n < 0 || (size_t)n >= sizeof(rel) ? PB_ETOOBIG : err;
	}
	err = pb__chat_copy_fd(fd, dst);
	close(fd);
	if (err != 0) {
		pb__chat_fail(chat->why, sizeof(chat->why), 0, "cannot copy attachment %.80s: %s", m->str, strerror(-err));
		return err;
	}
	return 0;
}

static int imp_message(void *arg, pb__chat_tg_chat_t *chat, pb__cj_t *msg)
{
	struct tg_import *im = arg;
	const pb__cj_t *m;
	long long id;
	int err = 0;

	if (!msg_id(msg, &id)) {
		pb__chat_fail(chat->why, sizeof(chat->why), 0, "chat #%s: message %llu has no integer \"id\"", im->chat_id,
			 (unsigned long long)chat->messages);
		err = PB_EDATA_FIELD;
		goto out_free;
	}
	if (chat->messages > 1 && id <= im->last_id) {
		pb__chat_fail(chat->why, sizeof(chat->why), 0, "chat #%s: message id %lld does not follow %lld", im->chat_id, id,
			 im->last_id);
		err = PB_EDATA_FIELD;
		goto out_free;
	}
	im->last_id = id;
	for (m = msg->child; m != NULL && err == 0; m = m->next)
		if (pb__chat_is_attachment(m))
			err = imp_attachment(im, chat, m);
	if (err == 0)
		err = pb__chat_writer_message(&im->w, msg);
out_free:
	pb__cj_free(msg);
	return err;
}

int pb__chat_import_telegram(pb__chat_stage_t *st, const char *file, char *errbuf, size_t errcap)
{
	struct tg_import im;
	pb__chat_tg_sink_t sink = {imp_begin, imp_message, imp_end, &im, false, NULL};
	const char *slash = strrchr(file, '/');
	char inner[400];
	size_t i;
	int err, n;

	memset(&im, 0, sizeof(im));
	im.st = st;
	if (slash == NULL)
		n = snprintf(im.srcdir, sizeof(im.srcdir), ".");
	else
		n = snprintf(im.srcdir, sizeof(im.srcdir), "%.*s", (int)(slash - file), file);
	if (n < 0 || (size_t)n >= sizeof(im.srcdir))
		return pb__chat_fail(errbuf, errcap, PB_ETOOBIG, "%s: path too long", file);
	err = pb__chat_tg_parse_file(file, &sink, inner, sizeof(inner));
	if (im.open)
		pb__chat_writer_abort(&im.w);
	for (i = 0; i < im.nseen; i++)
		free(im.seen[i]);
	free(im.seen);
	if (err != 0)
		return pb__chat_fail(errbuf, errcap, err, "%s: %s", file, inner);
	return 0;
}

/* --- Codec ----------------------------------------------------------------- */

static bool codec_matches(const char *relpath)
{
	const char *p, *q;

	if (strncmp(relpath, "chats/", 6) != 0)
		return false;
	p = relpath + 6;
	q = strchr(p, '/');
	return q != NULL && q != p && strcmp(q, "/result.json") == 0;
}

static int chat_dir_of(const char *relpath, char *out, size_t cap)
{
	const char *p = relpath + 6, *q;

	if (!codec_matches(relpath))
		return PB_EINVAL;
	q = strchr(p, '/');
	if ((size_t)(q - p) >= cap)
		return PB_ETOOBIG;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = 0;
	return 0;
}

/* Messages a small chat's split hashes together (split_flush). */
#define SPLIT_LANES 8

struct tg_split {
	const char *relpath;
	char chat[128];
	pb_item_cb cb;
	void *arg;
	const pb__item_hasher_t *h;
	long long last_id;
	int cb_ret;
	pb_buf_t buf; /* each message's canonical bytes, one buffer for all */
	char pre[PB_ITEM_ID_MAX]; /* "chat/<chat>/msg/", made at the first message */
	size_t npre;
	/* Messages held until SPLIT_LANES are, then hashed together in
	 * vector lanes (the hasher's many and keys_many) and handed over in
	 * order (split_flush): with a hasher that has them, on the thread
	 * that parses (a small chat's: the walk's). */
	struct held {
		pb_buf_t data;
		char id[PB_ITEM_ID_MAX];
		uint64_t seq;
	} held[SPLIT_LANES];
	size_t nheld;
};

/* x as the chat message (or the chat's frame, seq 0) id of len bytes at
 * data, not hashed yet. */
static void split_item(const struct tg_split *s, pb__item_x_t *x, const char *id, uint64_t seq, const uint8_t *data,
		       size_t len)
{
	memset(x, 0, sizeof(*x));
	x->it.kind = PB_KIND_CHAT;
	x->it.id = id;
	x->it.path = s->relpath;
	x->it.seq = seq;
	x->it.data = data;
	x->it.len = len;
	x->it.size = len;
}

/* Hands over the held messages, hashed together; the callback's error
 * stops it (and the split). */
static int split_flush(struct tg_split *s)
{
	const uint8_t *data[SPLIT_LANES];
	const char *ids[SPLIT_LANES];
	size_t len[SPLIT_LANES], idlen[SPLIT_LANES];
	uint8_t hash[SPLIT_LANES][32], *out[SPLIT_LANES];
	uint64_t keys[SPLIT_LANES];
	size_t n = s->nheld, k;

	s->nheld = 0;
	if (n == 0 || s->cb_ret != 0)
		return s->cb_ret;
	for (k = 0; k < n; k++) {
		data[k] = s->held[k].data.data != NULL ? s->held[k].data.data : (const uint8_t *)"";
		len[k] = s->held[k].data.len;
		ids[k] = s->held[k].id;
		idlen[k] = strlen(ids[k]);
		out[k] = hash[k];
	}
	s->h->many(s->h->arg, data, len, out, n);
	s->h->keys_many(s->h->arg, ids, idlen, keys, n);
	for (k = 0; k < n && s->cb_ret == 0; k++) {
		pb__item_x_t x;

		split_item(s, &x, ids[k], s->held[k].seq, data[k], len[k]);
		memcpy(x.hash, hash[k], sizeof(x.hash));
		x.hashed = true;
		x.key = keys[k];
		x.keyed = true;
		s->cb_ret = s->cb(s->arg, &x.it);
	}
	sodium_memzero(hash, sizeof(hash));
	return s->cb_ret;
}

/* Each item goes out as the it of a pb__item_x_t, hashed here (on the
 * parsing thread) when there is a hasher: a message held for its hash in
 * lanes (split_flush) when the hasher hashes many at once. */
static int split_emit(struct tg_split *s, const char *id, uint64_t seq, const pb_buf_t *b)
{
	pb__item_x_t x;
	size_t idlen = strlen(id);

	if (seq > 0 && s->h != NULL && s->h->many != NULL && s->h->keys_many != NULL && b->data != NULL &&
	    idlen < sizeof(s->held[0].id)) {
		struct held *m = &s->held[s->nheld];

		m->data.len = 0;
		if ((s->cb_ret = pb_buf_append(&m->data, b->data, b->len)) != 0)
			return s->cb_ret;
		memcpy(m->id, id, idlen + 1);
		m->seq = seq;
		if (++s->nheld == SPLIT_LANES)
			return split_flush(s);
		return 0;
	}
	if (split_flush(s) != 0)
		return s->cb_ret;
	split_item(s, &x, id, seq, b->data, b->len);
	if (s->h != NULL && b->data != NULL) {
		s->h->fn(s->h->arg, b->data, b->len, x.hash);
		x.hashed = true;
	}
	if (s->h != NULL && s->h->key != NULL) {
		x.key = s->h->key(s->h->arg, id, idlen);
		x.keyed = true;
	}
	s->cb_ret = s->cb(s->arg, &x.it);
	return s->cb_ret;
}

static int split_begin(void *arg, pb__chat_tg_chat_t *chat)
{
	struct tg_split *s = arg;
	pb_buf_t b = {0};
	char id[PB_ITEM_ID_MAX];
	int err, n;

	n = snprintf(id, sizeof(id), "chat/%s", s->chat);
	if (n < 0 || (size_t)n >= sizeof(id))
		return PB_ETOOBIG;
	err = pb__cj_write(&b, chat->frame, PB__CJ_ORDER_CHAT);
	if (err == 0)
		err = split_emit(s, id, 0, &b);
	pb__chat_buf_clear(&b);
	return err;
}

/* pre (npre bytes) then v in decimal into out (cap bytes, NUL-terminated):
 * its length, or -1 when it does not fit. */
static int id_digits(char *out, size_t cap, const char *pre, size_t npre, long long v)
{
	char d[24];
	size_t nd = 0;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

	do {
		d[nd++] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	if (v < 0)
		d[nd++] = '-';
	if (npre + nd + 1 > cap)
		return -1;
	memcpy(out, pre, npre);
	for (size_t i = 0; i < nd; i++)
		out[npre + i] = d[nd - 1 - i];
	out[npre + nd] = 0;
	return (int)(npre + nd);
}

/* Checks a message's id (idtext: its first "id" member's number, or NULL)
 * and hands over its canonical bytes b. */
static int split_out(struct tg_split *s, pb__chat_tg_chat_t *chat, const char *idtext, const pb_buf_t *b)
{
	char id[PB_ITEM_ID_MAX];
	long long mid;
	int n;

	if (!num_id(idtext, &mid) || (chat->messages > 1 && mid <= s->last_id)) {
		pb__chat_fail(chat->why, sizeof(chat->why), 0, "message %llu has a missing or out-of-order \"id\"",
			 (unsigned long long)chat->messages);
		return PB_EDATA_FIELD;
	}
	s->last_id = mid;
	/* As snprintf "chat/%s/msg/%lld" would, without its cost a message. */
	if (s->npre == 0) {
		n = snprintf(s->pre, sizeof(s->pre), "chat/%s/msg/", s->chat);
		if (n < 0 || (size_t)n >= sizeof(s->pre))
			return PB_ETOOBIG;
		s->npre = (size_t)n;
	}
	if ((n = id_digits(id, sizeof(id), s->pre, s->npre, mid)) < 0)
		return PB_ETOOBIG;
	return split_emit(s, id, chat->messages, b);
}

static int split_message(void *arg, pb__chat_tg_chat_t *chat, pb__cj_t *msg)
{
	struct tg_split *s = arg;
	const pb__cj_t *id = pb__cj_get(msg, "id");
	int err;

	s->buf.len = 0;
	err = pb__cj_write(&s->buf, msg, PB__CJ_ORDER_MESSAGE);
	if (err == 0)
		err = split_out(s, chat, id != NULL && id->type == PB__CJ_NUM ? id->str : NULL, &s->buf);
	pb__cj_free(msg);
	return err;
}

/* The same, from the parser's canonical bytes (no tree). */
static int split_canon(void *arg, pb__chat_tg_chat_t *chat, const pb_buf_t *canon, const char *id)
{
	return split_out(arg, chat, id, canon);
}

/* One split: the bytes in buf, or those read from fd (fd >= 0) a block at
 * a time: then memory holds one block and the message being parsed, not
 * the file (a chat can be hundreds of MB). */
struct split_job {
	const char *relpath;
	const uint8_t *buf;
	size_t len;
	int fd;
	const pb__item_hasher_t *h;
	char why[256]; /* the parser's sentence for its error */
	bool parse_failed; /* the error is the parser's, not the callback's */
};

static int split_go(struct split_job *j, pb_item_cb cb, void *arg)
{
	enum { BLOCK = 1u << 20 };
	struct tg_split s;
	pb__chat_tg_sink_t sink = {split_begin, split_message, NULL, &s, true, split_canon};
	pb__chat_tg_t *p;
	uint8_t *block = NULL;
	size_t bsize = BLOCK, used = 0; /* the block's size, and how much of it held bytes */
	struct stat st;
	int err;

	memset(&s, 0, sizeof(s));
	s.relpath = j->relpath;
	s.cb = cb;
	s.arg = arg;
	s.h = j->h;
	if ((err = chat_dir_of(j->relpath, s.chat, sizeof(s.chat))) != 0)
		return err;
	/* A small chat's block is its size and a page (its end read in the
	 * same call): most chats are a few KiB, and a 1 MiB block wiped for
	 * each was a twentieth of the walk's thread. */
	if (j->fd >= 0 && fstat(j->fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size < BLOCK - 4096)
		bsize = (size_t)st.st_size + 4096;
	if (j->fd >= 0 && (block = malloc(bsize)) == NULL)
		return PB_ENOMEM;
	if ((err = pb__chat_tg_new(&p, &sink)) != 0) {
		free(block);
		return err;
	}
	if (j->fd < 0) {
		err = pb__chat_tg_feed(p, j->buf, j->len, j->why, sizeof(j->why));
	} else {
		for (;;) {
			ssize_t n = read(j->fd, block, bsize);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				err = n < 0 ? -errno : 0;
				break;
			}
			if ((size_t)n > used)
				used = (size_t)n;
			if ((err = pb__chat_tg_feed(p, block, (size_t)n, j->why, sizeof(j->why))) != 0)
				break;
		}
		sodium_memzero(block, used);
		free(block);
	}
	if (err == 0)
		err = pb__chat_tg_finish(p, j->why, sizeof(j->why));
	pb__chat_tg_free(p);
	/* The messages parsed before an error go out before it, as each did. */
	(void)split_flush(&s);
	pb__chat_buf_clear(&s.buf);
	/* The held copies of messages are wiped, as a read file is. */
	for (size_t k = 0; k < SPLIT_LANES; k++) {
		if (s.held[k].data.data != NULL)
			sodium_memzero(s.held[k].data.data, s.held[k].data.cap);
		pb__chat_buf_clear(&s.held[k].data);
	}
	if (s.cb_ret != 0)
		return s.cb_ret;
	j->parse_failed = err != 0;
	return err;
}

static int split_make(void *arg, pb__ipipe_t *pipe)
{
	return split_go(arg, pb__ipipe_put_cb, pipe);
}

/* A chat file at least this large is parsed on a thread of its own while
 * the caller takes its messages (pb__ipipe_run): parsing and writing the
 * canonical form is about half of a chat's backup. Smaller ones are not
 * worth a thread. Tests lower it to run every chat through the pipe. */
size_t pb__tg_pipe_min = 4u << 20;
size_t pb__tg_pipe_batch; /* 0: the pipe's default */

static int split_run(const char *relpath, const uint8_t *buf, size_t len, int fd, const pb__item_hasher_t *h,
		     pb_item_cb cb, void *arg)
{
	struct split_job j = {relpath, buf, len, fd, h, "", false};
	struct stat st;
	int err;

	if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size >= pb__tg_pipe_min) {
		/* An error of cb comes back as it is; one of the parser comes
		 * after every message parsed before it. The messages are
		 * hashed by the pipe, a batch at a time. */
		j.h = NULL;
		err = pb__ipipe_run_hashed(split_make, &j, cb, arg, pb__tg_pipe_batch, h);
	} else {
		err = split_go(&j, cb, arg);
	}
	if (err != 0 && j.parse_failed)
		pb__kinds_split_why(0, j.why);
	return err;
}

static int codec_split(const char *relpath, const uint8_t *buf, size_t len, pb_item_cb cb, void *arg)
{
	return split_run(relpath, buf, len, -1, NULL, cb, arg);
}

int pb__telegram_split_fd(const char *relpath, int fd, const pb__item_hasher_t *h, pb_item_cb cb, void *arg)
{
	return split_run(relpath, NULL, 0, fd, h, cb, arg);
}

/* --- The split pulled an item at a time ----------------------------------- */

/* The items a block of the file gave, copied (the parser's buffers are
 * reused), handed out one at a time; the next block is read when they are
 * all taken. Memory: one block and the items parsed from it. */
#define READER_BLOCK (256u << 10)

typedef struct ritem_s {
	char *id;
	uint8_t *data;
	size_t len;
	uint64_t seq;
} ritem_t;

struct pb__tg_reader_s {
	struct tg_split s;
	pb__chat_tg_sink_t sink;
	pb__chat_tg_t *p;
	int fd;
	bool eof;
	uint8_t *block;
	ritem_t *q;
	size_t n, cap, head;
	char why[256];
};

static void reader_clear(pb__tg_reader_t *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->q[i].id);
		if (r->q[i].data != NULL)
			sodium_memzero(r->q[i].data, r->q[i].len);
		free(r->q[i].data);
	}
	r->n = r->head = 0;
}

static int reader_push(void *arg, const pb_item_t *it)
{
	pb__tg_reader_t *r = arg;
	ritem_t *e;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		ritem_t *v = realloc(r->q, cap * sizeof(*v));

		if (v == NULL)
			return PB_ENOMEM;
		r->q = v;
		r->cap = cap;
	}
	e = &r->q[r->n];
	e->id = strdup(it->id);
	e->data = malloc(it->len ? it->len : 1);
	if (e->id == NULL || e->data == NULL) {
		free(e->id);
		free(e->data);
		return PB_ENOMEM;
	}
	memcpy(e->data, it->data, it->len);
	e->len = it->len;
	e->seq = it->seq;
	r->n++;
	return 0;
}

int pb__telegram_reader_open(const char *relpath, int fd, pb__tg_reader_t **out)
{
	pb__tg_reader_t *r = calloc(1, sizeof(*r));
	int err;

	*out = NULL;
	if (r == NULL)
		return PB_ENOMEM;
	r->fd = fd;
	r->s.relpath = relpath;
	r->s.cb = reader_push;
	r->s.arg = r;
	r->sink = (pb__chat_tg_sink_t){ split_begin, split_message, NULL, &r->s, true, split_canon };
	if ((err = chat_dir_of(relpath, r->s.chat, sizeof(r->s.chat))) != 0 ||
	    (r->block = malloc(READER_BLOCK)) == NULL || (err = pb__chat_tg_new(&r->p, &r->sink)) != 0) {
		free(r->block);
		free(r);
		return err != 0 ? err : PB_ENOMEM;
	}
	*out = r;
	return 0;
}

int pb__telegram_reader_next(pb__tg_reader_t *r, pb_item_t *item, bool *end)
{
	int err = 0;

	if (r->head < r->n)
		r->head++; /* the item handed out last is taken */
	if (r->head == r->n)
		reader_clear(r);
	while (r->n == 0 && !r->eof && err == 0) {
		ssize_t got = read(r->fd, r->block, READER_BLOCK);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			err = -errno;
		} else if (got == 0) {
			r->eof = true;
			err = pb__chat_tg_finish(r->p, r->why, sizeof(r->why));
		} else {
			err = pb__chat_tg_feed(r->p, r->block, (size_t)got, r->why, sizeof(r->why));
		}
		if (r->s.cb_ret != 0)
			err = r->s.cb_ret;
	}
	if (err != 0) {
		if (r->s.cb_ret == 0)
			pb__kinds_split_why(0, r->why);
		return err;
	}
	*end = r->n == 0;
	if (!*end) {
		const ritem_t *e = &r->q[r->head];

		memset(item, 0, sizeof(*item));
		item->kind = PB_KIND_CHAT;
		item->id = e->id;
		item->path = r->s.relpath;
		item->seq = e->seq;
		item->data = e->data;
		item->len = item->size = e->len;
	}
	return 0;
}

void pb__telegram_reader_free(pb__tg_reader_t *r)
{
	if (r == NULL)
		return;
	reader_clear(r);
	free(r->q);
	pb__chat_tg_free(r->p);
	pb__chat_buf_clear(&r->s.buf);
	sodium_memzero(r->block, READER_BLOCK);
	free(r->block);
	free(r);
}

int pb__telegram_join_head(const uint8_t *frame_item, size_t len, pb_buf_t *out)
{
	pb__cj_t *frame = NULL;
	int err;

	if (frame_item == NULL)
		return PB_EDATA_FORMAT; /* a chat file needs its frame */
	if ((err = pb__chat_json_parse(frame_item, len, &frame)) != 0)
		return err;
	if (frame->type != PB__CJ_OBJ || pb__cj_get(frame, "messages") != NULL)
		err = PB_EDATA_FORMAT;
	else
		err = pb__chat_header(out, frame);
	pb__cj_free(frame);
	return err;
}

int pb__telegram_join_message(const uint8_t *msg, size_t len, bool first, pb_buf_t *out)
{
	int err;

	/* One object on one line, as the canonical form writes it. */
	if (msg == NULL || len < 2 || msg[0] != '{' || msg[len - 1] != '}' || memchr(msg, '\n', len) != NULL)
		return PB_EDATA_FORMAT;
	if ((err = pb__chat_buf_str(out, first ? "\n  " : ",\n  ")) != 0)
		return err;
	return pb__chat_buf_add(out, msg, len);
}

int pb__telegram_join_tail(pb_buf_t *out)
{
	return pb__chat_buf_str(out, chat_tail);
}

static int codec_join(const char *relpath, const pb_item_t *items, size_t n, pb_buf_t *out)
{
	int err;

	(void)relpath;
	if (n == 0 || items[0].seq != 0)
		return PB_EDATA_FORMAT; /* a chat file needs its frame */
	if ((err = pb__telegram_join_head(items[0].data, items[0].len, out)) != 0)
		return err;
	for (size_t i = 1; i < n; i++) {
		if (items[i].seq <= items[i - 1].seq)
			return PB_EDATA_FORMAT;
		if ((err = pb__telegram_join_message(items[i].data, items[i].len, i == 1, out)) != 0)
			return err;
	}
	return pb__telegram_join_tail(out);
}

const pb_codec_t pb__codec_telegram = {
	.name = "telegram",
	.kind = PB_KIND_CHAT,
	.matches = codec_matches,
	.split = codec_split,
	.join = codec_join,
};

/* --- Fuzz entry: parse a result.json in memory, count messages ------------ */

static int count_message(void *arg, pb__chat_tg_chat_t *chat, pb__cj_t *msg)
{
	pb_buf_t b = {0};
	int err;

	(void)chat;
	(*(uint64_t *)arg)++;
	err = pb__cj_write(&b, msg, PB__CJ_ORDER_MESSAGE);
	pb__chat_buf_clear(&b);
	pb__cj_free(msg);
	return err;
}

int pb__chat_telegram_parse_buf(const uint8_t *buf, size_t len)
{
	uint64_t count = 0;
	pb__chat_tg_sink_t sink = {NULL, count_message, NULL, &count, false, NULL};
	pb__chat_tg_t *p;
	size_t half = len / 2;
	int err;

	if ((err = pb__chat_tg_new(&p, &sink)) != 0)
		return err;
	/* Two feeds, so that state crossing a read boundary is exercised. */
	err = pb__chat_tg_feed(p, buf, half, NULL, 0);
	if (err == 0)
		err = pb__chat_tg_feed(p, buf + half, len - half, NULL, 0);
	if (err == 0)
		err = pb__chat_tg_finish(p, NULL, 0);
	pb__chat_tg_free(p);
	return err != 0 ? err : (count > INT32_MAX ? INT32_MAX : (int)count);
}

/* --- Export ---------------------------------------------------------------- */

/* Copies a chat directory's files except its result.json into out_dir. */
static int copy_tree(const char *from, const char *to, bool top)
{
	char **names = NULL;
	size_t n = 0, i;
	char a[4096], b[4096];
	int err, k;

	if ((err = pb__chat_list(from, false, &names, &n)) != 0)
		return err;
	for (i = 0; i < n && err == 0; i++) {
		if (top && strcmp(names[i], "result.json") == 0)
			continue;
		k = snprintf(a, sizeof(a), "%s/%s", from, names[i]);
		if (k < 0 || (size_t)k >= sizeof(a) || (k = snprintf(b, sizeof(b), "%s/%s", to, names[i])) < 0 ||
		    (size_t)k >= sizeof(b)) {
			err = PB_ETOOBIG;
			break;
		}
		if ((err = pb__chat_mkparents(b)) == 0)
			err = pb__chat_copy_file(a, b);
	}
	pb__chat_names_free(names, n);
	if (err != 0)
		return err;
	if ((err = pb__chat_list(from, true, &names, &n)) != 0)
		return err;
	for (i = 0; i < n && err == 0; i++) {
		k = snprintf(a, sizeof(a), "%s/%s", from, names[i]);
		if (k < 0 || (size_t)k >= sizeof(a) || (k = snprintf(b, sizeof(b), "%s/%s", to, names[i])) < 0 ||
		    (size_t)k >= sizeof(b)) {
			err = PB_ETOOBIG;
			break;
		}
		err = copy_tree(a, b, false);
	}
	pb__chat_names_free(names, n);
	return err;
}

struct tg_export {
	FILE *f;
	const char *device_dir;
	const char *out_dir;
	const char *chat;
	uint64_t written;
	bool first_chat;
	int err;
	char why[300];
};

static int exp_begin(void *arg, pb__chat_tg_chat_t *chat)
{
	struct tg_export *ex = arg;
	pb_buf_t b = {0};
	int err;

	err = pb__cj_write(&b, chat->frame, PB__CJ_ORDER_CHAT);
	if (err == 0 && b.len >= 2) {
		b.len--; /* reopen the object to add the messages */
		err = pb__chat_buf_str(&b, chat->frame->n ? ",\"messages\":[" : "\"messages\":[");
	}
	if (err == 0 && fprintf(ex->f, "%s   ", ex->first_chat ? "" : ",\n") < 0)
		err = PB_EIO;
	if (err == 0 && fwrite(b.data, 1, b.len, ex->f) != b.len)
		err = PB_EIO;
	ex->first_chat = false;
	pb__chat_buf_clear(&b);
	return err;
}

static int exp_message(void *arg, pb__chat_tg_chat_t *chat, pb__cj_t *msg)
{
	struct tg_export *ex = arg;
	pb_buf_t b = {0}, np = {0};
	char src[8192], dst[8192];
	pb__cj_t *m;
	struct stat sb;
	int err = 0, n;

	for (m = msg->child; m != NULL && err == 0; m = m->next) {
		if (!pb__chat_is_attachment(m) || !pb__chat_relpath_ok(m->str, m->len))
			continue;
		n = snprintf(src, sizeof(src), "%s/chats/%s/%s", ex->device_dir, ex->chat, m->str);
		if (n < 0 || (size_t)n >= sizeof(src))
			return PB_ETOOBIG;
		/* Paths of several chats share one directory: keep them apart. */
		if (strncmp(m->str, "chats/", 6) != 0) {
			pb__chat_buf_clear(&np);
			if ((err = pb__chat_buf_printf(&np, "chats/chat_%s/", ex->chat)) != 0 ||
			    (err = pb__chat_buf_add(&np, m->str, m->len)) != 0)
				break;
			pb__cj_set_str(m, (char *)np.data, np.len);
			np.data = NULL;
			pb__chat_buf_clear(&np);
		}
		if (stat(src, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		n = snprintf(dst, sizeof(dst), "%s/%s", ex->out_dir, m->str);
		if (n < 0 || (size_t)n >= sizeof(dst))
			return PB_ETOOBIG;
		if ((err = pb__chat_mkparents(dst)) == 0)
			err = pb__chat_copy_file(src, dst);
	}
	if (err == 0)
		err = pb__chat_buf_str(&b, chat->messages == 1 ? "\n    " : ",\n    ");
	if (err == 0)
		err = pb__cj_write(&b, msg, PB__CJ_ORDER_MESSAGE);
	if (err == 0 && fwrite(b.data, 1, b.len, ex->f) != b.len)
		err = PB_EIO;
	pb__chat_buf_clear(&b);
	pb__chat_buf_clear(&np);
	pb__cj_free(msg);
	return err;
}

static int exp_end(void *arg, pb__chat_tg_chat_t *chat)
{
	struct tg_export *ex = arg;

	if (fputs(chat->messages ? "\n   ]}" : "]}", ex->f) < 0)
		return PB_EIO;
	return 0;
}

int pb__chat_export_telegram(const char *device_dir, const char *out_dir, char *errbuf, size_t errcap)
{
	char chats[4096], path[4200], dst[4200], inner[400];
	struct tg_export ex;
	pb__chat_tg_sink_t sink = {exp_begin, exp_message, exp_end, &ex, true, NULL};
	char **names = NULL;
	size_t n = 0, i;
	int err, k;

	k = snprintf(chats, sizeof(chats), "%s/chats", device_dir);
	if (k < 0 || (size_t)k >= sizeof(chats))
		return PB_ETOOBIG;
	if ((err = pb__chat_list(chats, true, &names, &n)) != 0)
		return pb__chat_fail(errbuf, errcap, err, "%s: %s", chats, strerror(-err));
	if (n == 0) {
		err = pb__chat_fail(errbuf, errcap, PB_ENOTFOUND, "%s: the device has no chats", device_dir);
		goto out_names;
	}
	if ((err = pb__chat_mkdirs(out_dir)) != 0) {
		pb__chat_fail(errbuf, errcap, err, "%s: %s", out_dir, strerror(-err));
		goto out_names;
	}
	k = snprintf(dst, sizeof(dst), "%s/result.json", out_dir);
	if (k < 0 || (size_t)k >= sizeof(dst)) {
		err = PB_ETOOBIG;
		goto out_names;
	}
	if (n == 1) {
		/* One chat: the canonical file is a single-chat export. */
		k = snprintf(path, sizeof(path), "%s/%s", chats, names[0]);
		if (k < 0 || (size_t)k >= sizeof(path)) {
			err = PB_ETOOBIG;
			goto out_names;
		}
		err = copy_tree(path, out_dir, true);
		if (err == 0) {
			k = snprintf(path, sizeof(path), "%s/%s/result.json", chats, names[0]);
			err = k < 0 || (size_t)k >= sizeof(path) ? PB_ETOOBIG : pb__chat_copy_file(path, dst);
		}
		if (err != 0)
			pb__chat_fail(errbuf, errcap, err, "cannot export chat %s: %s", names[0], pb_strerror(err));
		goto out_names;
	}
	memset(&ex, 0, sizeof(ex));
	ex.device_dir = device_dir;
	ex.out_dir = out_dir;
	ex.first_chat = true;
	ex.f = fopen(dst, "wb");
	if (ex.f == NULL) {
		err = pb__chat_fail(errbuf, errcap, -errno, "%s: %s", dst, strerror(errno));
		goto out_names;
	}
	fputs("{\n \"about\": \"Exported by peerback in the Telegram Desktop format.\",\n"
	      " \"chats\": {\n  \"about\": \"This page lists all chats from this export.\",\n  \"list\": [\n",
	      ex.f);
	for (i = 0; i < n && err == 0; i++) {
		k = snprintf(path, sizeof(path), "%s/%s/result.json", chats, names[i]);
		if (k < 0 || (size_t)k >= sizeof(path)) {
			err = PB_ETOOBIG;
			break;
		}
		if (access(path, F_OK) != 0)
			continue;
		ex.chat = names[i];
		err = pb__chat_tg_parse_file(path, &sink, inner, sizeof(inner));
		if (err != 0)
			pb__chat_fail(errbuf, errcap, err, "%s: %s", path, inner);
	}
	if (err == 0 && fputs("\n  ]\n }\n}\n", ex.f) < 0)
		err = PB_EIO;
	if (fclose(ex.f) != 0 && err == 0)
		err = PB_EIO;
	if (err != 0)
		unlink(dst);
out_names:
	pb__chat_names_free(names, n);
	return err;
}
