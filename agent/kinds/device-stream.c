/* A chat restored by the device writer as its messages come: streamed
 * into its staged file (merged as it goes with the file there when that
 * one parses), and a chat merged with the file there at stage with both
 * sides streamed, not held. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/kinds/device-int.h"
#include "agent/kinds/util.h"
#include "agent/util/fsutil.h"

/* A Telegram chat file lists its messages by ascending message id, which
 * the item id carries ("chat/C/msg/N"); the frame ("chat/C") comes first.
 * False when the id is neither. */
bool pb__dw_chat_key(const char *id, int64_t *key)
{
	const char *msg = strstr(id, "/msg/");
	char *end;
	long long v;

	if (strncmp(id, "chat/", 5) != 0)
		return false;
	if (msg == NULL) {
		*key = INT64_MIN;
		return strchr(id + 5, '/') == NULL;
	}
	if (msg[5] < '0' || msg[5] > '9')
		return false;
	errno = 0;
	v = strtoll(msg + 5, &end, 10);
	if (errno != 0 || *end != 0)
		return false;
	*key = v;
	return true;
}

/* --- A chat streamed into its staged file --------------------------------- */

static void merge_close(wentry_t *e)
{
	if (e->mr == NULL)
		return;
	pb__telegram_reader_free(e->mr);
	close(e->mfd);
	e->mr = NULL;
	e->mfd = -1;
	e->mhas = false;
}

void pb__dw_stream_drop(wentry_t *e)
{
	merge_close(e);
	if (!e->streaming)
		return;
	if (e->sfd >= 0)
		close(e->sfd);
	if (e->stmp != NULL)
		(void)unlinkat(e->spfd, e->stmp, 0);
	free(e->stmp);
	close(e->spfd);
	pb_buf_free(&e->sbuf);
	e->stmp = NULL;
	e->sfd = e->spfd = -1;
	e->streaming = false;
}

static int stream_flush(wentry_t *e)
{
	int rc = pb__dw_write_all(e->sfd, e->sbuf.data, e->sbuf.len);

	sodium_memzero(e->sbuf.data, e->sbuf.len);
	e->sbuf.len = 0;
	return rc;
}

/* One message appended to the streamed chat. */
static int stream_message(wentry_t *e, int64_t key, const uint8_t *data, size_t len)
{
	int rc = pb__telegram_join_message(data, len, e->sn == 0, &e->sbuf);

	if (rc != 0)
		return rc;
	e->sn++;
	e->skey = key;
	return e->sbuf.len >= STREAM_BUF ? stream_flush(e) : 0;
}

/* The next message of the file the stream merges with, in e->mpend. */
static int merge_peek(wentry_t *e)
{
	bool end = false;
	int rc;

	if (e->mhas || e->mr == NULL)
		return 0;
	if ((rc = pb__telegram_reader_next(e->mr, &e->mpend, &end)) != 0)
		return rc;
	if (end) {
		merge_close(e);
		return 0;
	}
	if (!pb__dw_chat_key(e->mpend.id, &e->mkey))
		return PB_EDATA_FORMAT;
	e->mhas = true;
	return 0;
}

/* Writes the file's messages before key into the stream; the file's
 * message of that key is dropped when its id is id (the restored one
 * replaces it), else *clash (two ids of one key: merged in memory). */
static int merge_upto(wentry_t *e, int64_t key, const char *id, bool *clash)
{
	int rc;

	*clash = false;
	for (;;) {
		if ((rc = merge_peek(e)) != 0 || !e->mhas || e->mkey > key)
			return rc;
		if (e->mkey == key) {
			if (id != NULL && strcmp(e->mpend.id, id) == 0)
				e->mhas = false;
			else
				*clash = true;
			return 0;
		}
		e->mhas = false;
		if ((rc = stream_message(e, e->mkey, e->mpend.data, e->mpend.len)) != 0)
			return rc;
	}
}

/* The chat at base (in pfd) is merged with the stream as it goes when it
 * parses and its frame has frame_id; else (1) the restored items are
 * held and merged at stage, as before. */
static int merge_open(wentry_t *e, int pfd, const char *base, const char *frame_id)
{
	e->mfd = openat(pfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (e->mfd < 0)
		return 1;
	if (pb__telegram_reader_open(e->path, e->mfd, &e->mr) != 0) {
		close(e->mfd);
		e->mr = NULL;
		return 1;
	}
	if (merge_peek(e) != 0 || !e->mhas || e->mkey != INT64_MIN || strcmp(e->mpend.id, frame_id) != 0) {
		merge_close(e);
		return 1;
	}
	e->mhas = false; /* the restored frame replaces it */
	return 0;
}

/* Ends a streamed chat: the rest of the file it merges with and its tail
 * written, the file closed and staged (an item that comes later for the
 * same file is merged with it at stage). */
int pb__dw_stream_end(pb_device_writer_t *w, wentry_t *e)
{
	bool clash = false;
	int rc = merge_upto(e, INT64_MAX, NULL, &clash);

	if (rc == 0 && clash)
		rc = PB_EDATA_FORMAT; /* a message of key INT64_MAX: none parses */
	merge_close(e);
	if (rc == 0)
		rc = pb__telegram_join_tail(&e->sbuf);

	if (rc == 0)
		rc = stream_flush(e);
#ifdef SYNC_FILE_RANGE_WRITE
	if (rc == 0)
		(void)sync_file_range(e->sfd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
	if (close(e->sfd) != 0 && rc == 0)
		rc = -errno;
	e->sfd = -1;
	if (rc == 0 && (rc = pb__dw_add_staged(w, e->path, e->stmp)) == 0) {
		free(e->stmp);
		e->stmp = NULL; /* staged: no longer removed with the entry */
		pb__dw_sync_later(w, &w->s[w->ns - 1]);
	}
	pb__dw_stream_drop(e);
	return rc;
}

/* Starts streaming e's chat with its frame when nothing is there to merge
 * with: no file at the target, no earlier stage of it. */
static int stream_begin(pb_device_writer_t *w, wentry_t *e, const pb_item_t *item, bool *taken)
{
	const char *base = pb__kinds_basename(e->path);
	char tmp[TMP_NAME];
	struct stat st;
	int pfd, fd = -1, rc;

	if (pb__dw_find_staged(w, e->path) != NULL || item->data == NULL)
		return 0;
	if ((rc = pb__dw_open_parent(w, e->path, true, &pfd)) != 0)
		return rc;
	/* A file to merge with: merged as the stream goes when it can be;
	 * a link, which stage refuses, or anything else: held. */
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISREG(st.st_mode) || merge_open(e, pfd, base, item->id) != 0) {
			close(pfd);
			return 0;
		}
	} else if (errno != ENOENT) {
		close(pfd);
		return 0;
	}
	rc = pb__telegram_join_head(item->data, item->len, &e->sbuf);
	if (rc == 0 && (rc = pb__dw_stage_name(w, base, false, tmp)) == 0) {
		fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		rc = fd < 0 ? -errno : 0;
	}
	if (rc == 0 && (e->stmp = strdup(tmp)) == NULL) {
		close(fd);
		(void)unlinkat(pfd, tmp, 0);
		rc = PB_ENOMEM;
	}
	if (rc != 0) {
		merge_close(e);
		close(pfd);
		pb_buf_free(&e->sbuf);
		return rc;
	}
	e->streaming = true;
	e->sfd = fd;
	e->spfd = pfd;
	e->skey = INT64_MIN;
	e->sn = 0;
	*taken = true;
	return 0;
}

/* Streams item into e's staged chat when it comes in the file's order
 * (*taken); an item out of that order ends the stream, and it and the
 * items after it are held and merged with what was streamed, as with a
 * file that was there. */
int pb__dw_stream_add(pb_device_writer_t *w, wentry_t *e, const pb_item_t *item, bool *taken)
{
	int64_t key;
	bool ordered = e->codec == &pb__codec_telegram && pb__dw_chat_key(item->id, &key);
	int rc;

	*taken = false;
	if (!e->streaming)
		return ordered && key == INT64_MIN && e->n == 0 ? stream_begin(w, e, item, taken) : 0;
	if (!ordered || key == INT64_MIN || key <= e->skey || item->data == NULL)
		return pb__dw_stream_end(w, e);
	if (e->mr != NULL) {
		bool clash;

		if ((rc = merge_upto(e, key, item->id, &clash)) != 0)
			return rc;
		if (clash)
			return pb__dw_stream_end(w, e);
	}
	*taken = true;
	return stream_message(e, key, item->data, item->len);
}

/* --- A chat merged with the file there, streamed ------------------------- */

/* Both sides of a chat's merge go by message id: the file's messages, read
 * a block at a time by the codec's split, and the restored ones, sorted.
 * They are joined into the staged file as they come, so memory holds the
 * restored items and MJ_BUF bytes, not the chat that is there. Anything
 * else than what that needs (an id that is no chat key, a file not in
 * ascending order, two ids of one key, no frame first, a file that does
 * not parse) gives MJ_AGAIN: the merge is then done in memory
 * (build_multi), which gives the same bytes where both apply. */
#define MJ_BUF (1u << 20)

typedef struct mjoin_s {
	witem_t **v;  /* restored items by key */
	int64_t *key; /* their keys */
	size_t n, at;
	int fd;
	pb_buf_t buf;
	int64_t last; /* the last key written */
	uint64_t nmsg;
	bool head;
} mjoin_t;

static int mj_emit(mjoin_t *m, int64_t key, const uint8_t *data, size_t len)
{
	int rc;

	if (m->head && key <= m->last)
		return MJ_AGAIN;
	if (!m->head) {
		if (key != INT64_MIN)
			return MJ_AGAIN;
		if ((rc = pb__telegram_join_head(data, len, &m->buf)) != 0)
			return MJ_AGAIN;
		m->head = true;
	} else if ((rc = pb__telegram_join_message(data, len, m->nmsg++ == 0, &m->buf)) != 0) {
		return MJ_AGAIN;
	}
	m->last = key;
	if (m->buf.len < MJ_BUF)
		return 0;
	rc = pb__dw_write_all(m->fd, m->buf.data, m->buf.len);
	sodium_memzero(m->buf.data, m->buf.len);
	m->buf.len = 0;
	return rc;
}

/* The restored items before key, then the file's item (or the restored
 * one of the same id, which replaces it). */
static int mj_existing(void *arg, const pb_item_t *item)
{
	mjoin_t *m = arg;
	int64_t key;
	int rc = 0;

	if (item->id == NULL || !pb__dw_chat_key(item->id, &key))
		return MJ_AGAIN;
	while (rc == 0 && m->at < m->n && m->key[m->at] < key) {
		rc = mj_emit(m, m->key[m->at], m->v[m->at]->data, m->v[m->at]->len);
		m->at++;
	}
	if (rc != 0)
		return rc;
	if (m->at < m->n && m->key[m->at] == key) {
		if (strcmp(m->v[m->at]->id, item->id) != 0)
			return MJ_AGAIN;
		m->at++;
		return mj_emit(m, key, m->v[m->at - 1]->data, m->v[m->at - 1]->len);
	}
	return mj_emit(m, key, item->data, item->len);
}

/* A restored item and its key, to sort them by key. */
typedef struct mref_s {
	int64_t key;
	witem_t *it;
} mref_t;

static int cmp_mref(const void *a, const void *b)
{
	const mref_t *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

/* Writes e's chat merged with the file src (in pfd) into the new file tmp
 * (in pfd). 0: written; MJ_AGAIN: nothing written, merge in memory; else
 * an error. */
int pb__dw_merge_stream(wentry_t *e, int pfd, const char *src, const char *tmp)
{
	mjoin_t m;
	mref_t *refs;
	int in, rc = 0;

	if (e->codec != &pb__codec_telegram || e->n == 0)
		return MJ_AGAIN;
	memset(&m, 0, sizeof(m));
	refs = calloc(e->n, sizeof(*refs));
	m.v = calloc(e->n, sizeof(*m.v));
	m.key = calloc(e->n, sizeof(*m.key));
	if (refs == NULL || m.v == NULL || m.key == NULL) {
		rc = PB_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < e->n && rc == 0; i++) {
		refs[i].it = &e->items[i];
		if (!pb__dw_chat_key(e->items[i].id, &refs[i].key) || e->items[i].data == NULL)
			rc = MJ_AGAIN;
	}
	if (rc != 0)
		goto out;
	qsort(refs, e->n, sizeof(*refs), cmp_mref);
	for (size_t i = 0; i < e->n; i++) {
		if (i > 0 && refs[i].key == refs[i - 1].key)
			rc = MJ_AGAIN;
		m.v[i] = refs[i].it;
		m.key[i] = refs[i].key;
	}
	m.n = e->n;
	if (rc != 0)
		goto out;
	if ((in = openat(pfd, src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		rc = MJ_AGAIN; /* none there, or a link: as in memory */
		goto out;
	}
	m.fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (m.fd < 0) {
		rc = -errno;
		close(in);
		goto out;
	}
	rc = pb__telegram_split_fd(e->path, in, NULL, mj_existing, &m);
	close(in);
	while (rc == 0 && m.at < m.n) {
		rc = mj_emit(&m, m.key[m.at], m.v[m.at]->data, m.v[m.at]->len);
		m.at++;
	}
	if (rc == 0 && !m.head)
		rc = MJ_AGAIN;
	if (rc == 0)
		rc = pb__telegram_join_tail(&m.buf);
	if (rc == 0)
		rc = pb__dw_write_all(m.fd, m.buf.data, m.buf.len);
#ifdef SYNC_FILE_RANGE_WRITE
	if (rc == 0)
		(void)sync_file_range(m.fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
	if (close(m.fd) != 0 && rc == 0)
		rc = -errno;
	if (rc != 0) {
		(void)unlinkat(pfd, tmp, 0);
		/* A file the split refuses is refused in memory too, alike. */
		if (rc != PB_ENOMEM && rc != PB_ENOSPACE)
			rc = MJ_AGAIN;
	}
out:
	if (m.buf.data != NULL)
		sodium_memzero(m.buf.data, m.buf.len);
	pb_buf_free(&m.buf);
	free(refs);
	free(m.v);
	free(m.key);
	return rc;
}