/* Backup: commits; an item's bytes chunked and handed to the sink (the
 * scan thread's side), files over 64 KiB through the reader (reader.h),
 * the walk's next file read ahead; and the stamps files are known by.
 * Private to agent/backup/backup*.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/backup/backup-int.h"
#include "agent/util/fsutil.h"

/* --- Commits ------------------------------------------------------------------------ */

/* Ends the transaction of touched unchanged items. */
int pb__bk_touch_end(struct backup *b)
{
	if (b->touched == 0)
		return 0;
	b->touched = 0;
	return pb_backup_state_end(b->st);
}

void pb__bk_free_pending(struct pending_item *it)
{
	free(it->id);
	free(it->path);
	free(it->names);
}

/* Makes everything sent durable in the repository: the items kept so
 * far are recorded at its receipt, which with wait is in on return. */
int pb__bk_commit(struct backup *b, bool wait)
{
	int rc = pb__bk_touch_end(b);

	if (rc == 0)
		rc = pb__sink_commit(b->sink, b->ticks, wait);
	if (b->o->dry_run) {
		/* A dry run committed nothing: the phone records nothing
		 * (and keeps no files: group_end). */
		for (size_t i = 0; i < b->nitems; i++)
			pb__bk_free_pending(&b->items[i]);
		b->nitems = 0;
	}
	return rc;
}

/* --- An item's chunks ---------------------------------------------------------------- */

/* After a chunk of the current item was added: its bytes are done, and
 * a commit may be due. */
static int chunk_added(struct backup *b, size_t len)
{
	int rc = 0;

	b->pr.p.bytes_done += len;
	if (pb__sink_due(b->sink))
		rc = pb__bk_commit(b, false);
	if (rc == 0)
		rc = pb__progress(&b->pr, false); /* large items report as they go */
	return rc;
}

/* Seals one chunk of the current item. */
static int add_chunk(void *arg, const uint8_t *data, size_t len)
{
	struct backup *b = arg;
	uint8_t name[PB_STORE_NAME_LEN];
	int rc;

	/* Names of a file's chunks land in b->cur from the sealing threads:
	 * it moves only once they are in. */
	if (b->by_names && b->ncur + 1 > b->cap_cur)
		pb__sink_hash_wait(b->sink);
	if ((rc = pb__grow((void **)&b->cur, &b->cap_cur, b->ncur + 1, sizeof(name_t))) != 0)
		return rc;
	if (b->by_names && !b->whole) {
		/* A file of several chunks: named and sealed off this thread;
		 * its hash is their names' (backup_item, after the wait). */
		if ((rc = pb__sink_add_named(b->sink, data, len, b->cur[b->ncur])) != 0)
			return rc;
		b->ncur++;
	} else {
		/* An item of several chunks in memory is hashed by the sink's
		 * hashing thread as its chunks go by, beside their naming here. */
		if ((rc = pb__sink_add_hashed(b->sink, data, len, name, b->whole || b->by_names ? NULL : &b->hash)) != 0)
			return rc;
		memcpy(b->cur[b->ncur++], name, PB_STORE_NAME_LEN);
	}
	return chunk_added(b, len);
}

/* The chunks of a large file cut from one buffer (pb__cdc_file_many):
 * named together on a sealing thread, several in the lanes of the vector
 * registers (a few times the speed of one at a time), and sealed there;
 * their names land in b->cur (read after pb__sink_hash_wait). The file's
 * hash is their names' (backup_item). */
static int add_chunks(void *arg, const uint8_t *const *data, const size_t *len, size_t n)
{
	struct backup *b = arg;
	uint8_t *out[PB__CDC_CUTS_MAX];
	int rc = 0;

	if (!b->by_names || b->whole || n > PB__CDC_CUTS_MAX) {
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = add_chunk(b, data[i], len[i]);
		return rc;
	}
	if (b->ncur + n > b->cap_cur)
		pb__sink_hash_wait(b->sink); /* b->cur moves only once its names are in */
	if ((rc = pb__grow((void **)&b->cur, &b->cap_cur, b->ncur + n, sizeof(name_t))) != 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		out[i] = b->cur[b->ncur + i];
	if ((rc = pb__sink_add_named_many(b->sink, data, len, n, out)) != 0)
		return rc;
	b->ncur += n;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = chunk_added(b, len[i]);
	return rc;
}

/* The reader's buffers the sink holds at most once a piece is added: of
 * its four, one more may wait for this thread, and it fills the last. */
#define READER_LENT 2
/* Files of this size or less are read and sealed on this thread (handing
 * them over would cost more). */
#define READER_MIN (64u << 10)


/* A buffer of a file's chunks from the reader, named: their names go to
 * b->cur at once, the buffer to the sealing threads as it is. */
static int add_piece(struct backup *b, pb__piece_t *p)
{
	int rc;

	if (b->ncur + p->n > b->cap_cur)
		pb__sink_hash_wait(b->sink); /* b->cur moves only once its names are in */
	if ((rc = pb__grow((void **)&b->cur, &b->cap_cur, b->ncur + p->n, sizeof(name_t))) != 0) {
		pb__reader_give(b->reader, p->buf);
		return rc;
	}
	memcpy(b->cur + b->ncur, p->names, p->n * sizeof(name_t));
	b->ncur += p->n;
	rc = pb__sink_add_piece(b->sink, p->buf, p->len, (const name_t *)p->names, p->n, pb__reader_give, b->reader,
				READER_LENT);
	for (size_t i = 0; i < p->n && rc == 0; i++)
		rc = chunk_added(b, p->len[i]);
	return rc;
}

/* The reader, started at the first use when there are sealing threads. */
static bool reader_on(struct backup *b)
{
	if (b->reader != NULL)
		return true;
	if (b->no_reader)
		return false;
	if (!pb__sink_threaded(b->sink) || pb__reader_new(&b->cdc, &b->keys, &b->reader) != 0) {
		b->no_reader = true;
		return false;
	}
	return true;
}

/* Whether files go through the reader: named by their chunks' names (not
 * the test's hash of their bytes), with a reader. */
static bool use_reader(struct backup *b)
{
	return b->by_names && reader_on(b);
}

/* While the reader has no chunks yet: the sealed ones go on to the host
 * (and the reader's buffers they held back to it). */
static int pump_sink(void *arg)
{
	struct backup *b = arg;

	return pb__sink_pump(b->sink);
}

/* The first file queued in the reader, its chunks as it cuts them;
 * whole: one chunk, whose length is the item's size. */
static int read_pieces(struct backup *b, bool whole, uint64_t *size)
{
	pb__piece_t *p;
	uint64_t total = 0;
	int rc;

	/* An error of the reader's comes with the file's end. */
	while ((rc = pb__reader_next(b->reader, &p, pump_sink, b)) == 0 && p != NULL) {
		for (size_t i = 0; i < p->n; i++)
			total += p->len[i];
		if ((rc = add_piece(b, p)) != 0)
			break;
	}
	pb__reader_done(b->reader);
	if (rc == 0 && whole) {
		b->whole = true;
		*size = total;
	}
	return rc;
}

static void ahead_drop(struct backup *b)
{
	if (!b->ahead_on)
		return;
	pb__reader_done(b->reader);
	close(b->ahead_fd);
	b->ahead_fd = -1;
	b->ahead_on = false;
}

/* Whether the walk's next file (b->next_rel, stat st) is known whole by
 * its stamp: the walk skips it then (file_seen), and reading it ahead
 * would be for nothing (a re-backup's changed chats and files are each
 * followed by unchanged ones). */
static bool known_whole(struct backup *b, const struct stat *st)
{
	pb__stamp_t now, was;
	uint64_t items, bytes;
	int64_t rgen;

	pb__bk_stamp_of(st, &now);
	return pb__state_file_get(b->st, b->next_rel, &was, &rgen, &items, &bytes) == 0 && pb__bk_same_stamp(&now, &was);
}

/* Queues the file the walk comes to next in the reader, behind the one
 * being read, if it is one the reader would read. */
static void read_ahead(struct backup *b)
{
	struct stat st;
	int fd;

	if (!b->has_next || b->ahead_on)
		return;
	b->has_next = false;
	if ((fd = open(b->next, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size <= READER_MIN || known_whole(b, &st) ||
	    pb__reader_add(b->reader, fd, (uint64_t)st.st_size <= PB_CDC_WHOLE_MAX) != 0) {
		close(fd);
		return;
	}
	memcpy(b->ahead, b->next, sizeof(b->ahead));
	b->ahead_fd = fd;
	b->ahead_on = true;
	b->ahead_whole = (uint64_t)st.st_size <= PB_CDC_WHOLE_MAX;
	pb__bk_stamp_of(&st, &b->ahead_stamp);
}

/* The item's file through the reader: the one read ahead when it is
 * this file as the walk saw it, else fd queued now (the next file read
 * ahead behind it either way). */
static int read_file(struct backup *b, const pb_item_t *it, int fd, const struct stat *st, uint64_t *size)
{
	bool whole = (uint64_t)st->st_size <= PB_CDC_WHOLE_MAX;
	int rc;

	int afd = -1;

	if (b->ahead_on && b->has_seen && strcmp(b->ahead, it->file) == 0 &&
	    pb__bk_same_stamp(&b->ahead_stamp, &b->seen)) {
		/* Its first buffers may be cut already; its fd is closed once
		 * the reader is done with it. */
		afd = b->ahead_fd;
		b->ahead_fd = -1;
		b->ahead_on = false;
		whole = b->ahead_whole;
		*size = b->ahead_stamp.size;
	} else {
		ahead_drop(b);
		if ((rc = pb__reader_add(b->reader, fd, whole)) != 0)
			return rc;
		*size = (uint64_t)st->st_size;
	}
	read_ahead(b);
	rc = read_pieces(b, whole, size);
	if (afd >= 0)
		close(afd);
	return rc;
}

int pb__bk_chunk_file(struct backup *b, const pb_item_t *it, uint64_t *size)
{
	int fd = open(it->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	uint8_t *buf;
	size_t have;
	int rc;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
	} else if ((uint64_t)st.st_size > READER_MIN && S_ISREG(st.st_mode) && use_reader(b)) {
		/* Room for every name it can have (add_piece waits for the
		 * sealing threads before b->cur moves, should it grow). */
		rc = pb__grow((void **)&b->cur, &b->cap_cur, (size_t)(st.st_size / PB_CDC_MIN) + 2, sizeof(name_t));
		if (rc == 0)
			rc = read_file(b, it, fd, &st, size);
	} else if ((uint64_t)st.st_size > PB_CDC_WHOLE_MAX) {
		*size = (uint64_t)st.st_size;
		rc = pb__grow((void **)&b->cur, &b->cap_cur, (size_t)(st.st_size / PB_CDC_MIN) + 2, sizeof(name_t));
		if (rc == 0 && b->filebuf == NULL && (b->filebuf = malloc(PB__CDC_FILE_BUF)) == NULL)
			rc = PB_ENOMEM;
		else if (rc == 0)
			rc = pb__cdc_file_many(&b->cdc, fd, b->filebuf, add_chunks, b);
	} else if ((rc = pb__read_fd(fd, PB_CDC_WHOLE_MAX, &buf, &have)) == 0) {
		*size = have;
		b->whole = true;
		rc = add_chunk(b, buf, have);
		free(buf);
	}
	b->has_seen = false;
	close(fd);
	return rc;
}

int pb__bk_chunk_memory(struct backup *b, const uint8_t *data, size_t len)
{
	size_t off = 0;
	int rc = 0;

	if (len <= PB_CDC_WHOLE_MAX) {
		b->whole = true;
		return add_chunk(b, data, len);
	}
	while (off < len && rc == 0) {
		size_t cut = pb_cdc_cut(&b->cdc, data + off, len - off, true);

		rc = add_chunk(b, data + off, cut);
		off += cut;
	}
	return rc;
}

/* An item that carries neither bytes nor a file: the provider reads it. */
int pb__bk_chunk_read(struct backup *b, const pb_item_t *it, uint64_t *size)
{
	pb_buf_t buf = { NULL, 0, 0 };
	int rc = b->prov->read != NULL ? b->prov->read(b->prov->arg, it, &buf) : PB_EUNSUPPORTED;

	if (rc == 0) {
		*size = buf.len;
		rc = pb__bk_chunk_memory(b, buf.data != NULL ? buf.data : (const uint8_t *)"", buf.len);
	}
	pb_buf_free(&buf);
	return rc;
}

/* --- Files known by their stamp ------------------------------------------------ */

void pb__bk_stamp_of(const struct stat *st, pb__stamp_t *s)
{
	s->size = (uint64_t)st->st_size;
	s->ino = (uint64_t)st->st_ino;
	s->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	s->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

bool pb__bk_same_stamp(const pb__stamp_t *a, const pb__stamp_t *b)
{
	return a->size == b->size && a->ino == b->ino && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* The walk's next file (pb__item_hasher_t.ahead), read ahead by the
 * reader once this one is read (read_ahead). */
void pb__bk_ahead(void *arg, const char *abs, const char *rel, bool now)
{
	struct backup *b = arg;

	b->has_next = snprintf(b->next, sizeof(b->next), "%s", abs) < (int)sizeof(b->next) &&
		      snprintf(b->next_rel, sizeof(b->next_rel), "%s", rel) < (int)sizeof(b->next_rel);
	/* The walk parses a file now (a chat): nothing is in the reader, which
	 * reads the next file meanwhile (one read ahead before and not taken,
	 * its item unchanged, makes way). */
	if (now && b->has_next && reader_on(b)) {
		if (b->ahead_on && strcmp(b->ahead, b->next) != 0)
			ahead_drop(b);
		read_ahead(b);
	}
}

