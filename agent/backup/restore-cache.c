/* Resuming a restore: a restore keeps every chunk it fetched, sealed as
 * the host sent it, in HOME/restore-cache until the restore completes. Run
 * again after an interruption (or a cancel), it opens those chunks from
 * there instead of fetching them again; a cached chunk is opened and
 * checked exactly like a fetched one.
 *
 * The cache is one append-only file (HOME/restore-cache/chunks) of records
 * [name 32][length 4, little-endian][sealed chunk], indexed in memory by
 * name when opened: a restore of a hundred thousand small chunks pays one
 * write a chunk, not a file creation, a rename and an unlink. Nothing is
 * synced: a record lost or torn by a crash costs a refetch. Opening stops
 * at the first record that does not fit in the file and cuts the file
 * there; a record whose bytes were damaged fails its AEAD check like a
 * damaged reply (that run fails) and is forgotten: the next run fetches it
 * again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/util/fsutil.h"

#define CACHE_DIR "restore-cache"
#define CACHE_FILE "chunks"
#define CACHE_MAGIC "pbrcache1\n" /* 10 bytes, the file's first */
#define CACHE_MAGIC_LEN 10
#define REC_HEAD (PB_STORE_NAME_LEN + 4)

struct slot {
	uint8_t name[PB_STORE_NAME_LEN];
	uint64_t off; /* of the sealed bytes; 0: empty slot */
	uint32_t len;
};

struct pb__cache_s {
	char dir[4096], path[4200];
	int fd;       /* -1 until the first keep */
	bool broken;  /* a write failed: nothing more is kept this run */
	uint64_t end; /* where the next record goes */
	struct slot *t;
	size_t cap, n; /* cap: a power of two */
};

/* Names are keyed BLAKE2b hashes: their first bytes are as good as any hash. */
static size_t slot_of(const pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN])
{
	uint64_t h;

	memcpy(&h, name, sizeof(h));
	return (size_t)h & (c->cap - 1);
}

static struct slot *find(const pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN])
{
	if (c == NULL || c->cap == 0)
		return NULL;
	for (size_t i = slot_of(c, name);; i = (i + 1) & (c->cap - 1)) {
		struct slot *s = &c->t[i];

		if (s->off == 0)
			return NULL;
		if (memcmp(s->name, name, PB_STORE_NAME_LEN) == 0)
			return s;
	}
}

static int put_slot(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], uint64_t off, uint32_t len);

static int grow(pb__cache_t *c)
{
	struct slot *old = c->t;
	size_t ocap = c->cap, cap = ocap ? ocap * 2 : 1024;

	if ((c->t = calloc(cap, sizeof(*c->t))) == NULL) {
		c->t = old;
		return PB_ENOMEM;
	}
	c->cap = cap;
	c->n = 0;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].off != 0)
			(void)put_slot(c, old[i].name, old[i].off, old[i].len);
	free(old);
	return 0;
}

static int put_slot(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], uint64_t off, uint32_t len)
{
	struct slot *s;
	int rc;

	if ((c->n + 1) * 2 > c->cap && (rc = grow(c)) != 0)
		return rc;
	for (size_t i = slot_of(c, name);; i = (i + 1) & (c->cap - 1)) {
		s = &c->t[i];
		if (s->off == 0) {
			c->n++;
			break;
		}
		if (memcmp(s->name, name, PB_STORE_NAME_LEN) == 0)
			break;
	}
	memcpy(s->name, name, PB_STORE_NAME_LEN);
	s->off = off;
	s->len = len;
	return 0;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Indexes the records of an existing file; a tail that is not a whole
 * record is cut off. */
static int load(pb__cache_t *c)
{
	uint8_t head[REC_HEAD], magic[CACHE_MAGIC_LEN];
	struct stat st;
	uint64_t off = CACHE_MAGIC_LEN;
	int rc = 0;

	if (fstat(c->fd, &st) != 0)
		return -errno;
	if (pread(c->fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic) ||
	    memcmp(magic, CACHE_MAGIC, CACHE_MAGIC_LEN) != 0) {
		/* Empty, or not ours: started afresh. */
		if (ftruncate(c->fd, 0) != 0 || pwrite(c->fd, CACHE_MAGIC, CACHE_MAGIC_LEN, 0) != CACHE_MAGIC_LEN)
			return -errno;
		c->end = CACHE_MAGIC_LEN;
		return 0;
	}
	while (off + REC_HEAD <= (uint64_t)st.st_size) {
		uint32_t len;

		if (pread(c->fd, head, sizeof(head), (off_t)off) != (ssize_t)sizeof(head))
			break;
		len = get_le32(head + PB_STORE_NAME_LEN);
		if (len == 0 || len > PB_STORE_CT_MAX || off + REC_HEAD + len > (uint64_t)st.st_size)
			break;
		if (!sodium_is_zero(head, PB_STORE_NAME_LEN) && (rc = put_slot(c, head, off + REC_HEAD, len)) != 0)
			return rc;
		off += REC_HEAD + len;
	}
	if (off != (uint64_t)st.st_size && ftruncate(c->fd, (off_t)off) != 0)
		return -errno;
	c->end = off;
	return 0;
}

/* Opens the file, creating it (and the folder) when create. */
static int open_file(pb__cache_t *c, bool create)
{
	int rc;

	if (create && (rc = pb__mkdirs(c->dir, 0700)) != 0)
		return rc;
	c->fd = open(c->path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (c->fd < 0)
		return -errno;
	if ((rc = load(c)) != 0) {
		close(c->fd);
		c->fd = -1;
	}
	return rc;
}

int pb__cache_open(const char *home, pb__cache_t **out)
{
	pb__cache_t *c = calloc(1, sizeof(*c));
	int rc, n;

	*out = NULL;
	if (c == NULL)
		return PB_ENOMEM;
	c->fd = -1;
	if ((rc = pb__path_join(c->dir, sizeof(c->dir), home, CACHE_DIR)) != 0) {
		free(c);
		return rc;
	}
	n = snprintf(c->path, sizeof(c->path), "%s/%s", c->dir, CACHE_FILE);
	if (n < 0 || (size_t)n >= sizeof(c->path)) {
		free(c);
		return PB_ETOOBIG;
	}
	/* An unreadable cache is no cache: everything is fetched. */
	if (access(c->path, F_OK) == 0)
		(void)open_file(c, false);
	*out = c;
	return 0;
}

bool pb__cache_has(const pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN])
{
	return find(c, name) != NULL;
}

/* One write a record; a cache that cannot be written only costs a refetch,
 * so a failure stops caching for this run. */
void pb__cache_keep(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	uint8_t head[REC_HEAD];
	struct iovec iov[2];
	size_t want = REC_HEAD + len, done = 0;

	if (c == NULL || len == 0 || len > PB_STORE_CT_MAX || find(c, name) != NULL)
		return;
	if (c->broken || (c->fd < 0 && open_file(c, true) != 0)) {
		c->broken = true;
		return;
	}
	memcpy(head, name, PB_STORE_NAME_LEN);
	for (int k = 0; k < 4; k++)
		head[PB_STORE_NAME_LEN + k] = (uint8_t)(len >> (8 * k));
	while (done < want) {
		ssize_t w;

		if (done < REC_HEAD) {
			iov[0].iov_base = head + done;
			iov[0].iov_len = REC_HEAD - done;
			iov[1].iov_base = (void *)ct;
			iov[1].iov_len = len;
			w = pwritev(c->fd, iov, 2, (off_t)(c->end + done));
		} else {
			w = pwrite(c->fd, ct + (done - REC_HEAD), want - done, (off_t)(c->end + done));
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* The torn record is cut by the next open. */
			c->broken = true;
			return;
		}
		done += (size_t)w;
	}
	if (put_slot(c, name, c->end + REC_HEAD, (uint32_t)len) == 0)
		c->end += want;
}

int pb__cache_read(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **ct, size_t *len)
{
	struct slot *s = find(c, name);
	size_t done = 0;

	*ct = NULL;
	*len = 0;
	if (s == NULL || c->fd < 0)
		return PB_ENOTFOUND;
	if ((*ct = malloc(s->len)) == NULL)
		return PB_ENOMEM;
	while (done < s->len) {
		ssize_t r = pread(c->fd, *ct + done, s->len - done, (off_t)(s->off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(*ct);
			*ct = NULL;
			return r < 0 ? -errno : PB_ETRUNCATED;
		}
		done += (size_t)r;
	}
	*len = s->len;
	return 0;
}

/* The record's name is zeroed in the file, which no chunk has: the next
 * open skips it, and the chunk is fetched again. */
void pb__cache_forget(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN])
{
	static const uint8_t zero[PB_STORE_NAME_LEN];
	struct slot *s = find(c, name);
	struct slot *old;
	size_t cap;

	if (s == NULL)
		return;
	if (pwrite(c->fd, zero, sizeof(zero), (off_t)(s->off - REC_HEAD)) != (ssize_t)sizeof(zero))
		c->broken = true;
	/* Open addressing: the table is rebuilt without it. */
	memset(s->name, 0, sizeof(s->name));
	s->off = 0;
	old = c->t;
	cap = c->cap;
	c->t = NULL;
	c->cap = c->n = 0;
	if (grow(c) != 0) {
		c->t = old;
		c->cap = cap;
		return;
	}
	for (size_t i = 0; i < cap; i++)
		if (old[i].off != 0)
			(void)put_slot(c, old[i].name, old[i].off, old[i].len);
	free(old);
}

void pb__cache_close(pb__cache_t *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->t);
	free(c);
}

void pb__cache_drop(const char *home)
{
	char dir[4200], path[4500];
	DIR *d;
	struct dirent *e;

	if (pb__path_join(dir, sizeof(dir), home, CACHE_DIR) != 0 || (d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		int n;

		if (e->d_name[0] == '.')
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (n > 0 && (size_t)n < sizeof(path))
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}
