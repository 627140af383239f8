/* Resuming a restore: a restore keeps every chunk it fetched, sealed as
 * the host sent it, in HOME/restore-cache until the restore completes. Run
 * again after an interruption (or a cancel), it opens those chunks from
 * there instead of fetching them again; a cached chunk is opened and
 * checked exactly like a fetched one.
 *
 * The cache is one append-only file (HOME/restore-cache/chunks) of records
 * [name 32][length 4, little-endian][sealed chunk], indexed in memory by
 * name when opened (what earlier runs kept; this run looks up nothing it
 * kept itself): a restore of a hundred thousand small chunks pays one
 * write a chunk, not a file creation, a rename and an unlink. Nothing is
 * synced: a record lost or torn by a crash costs a refetch. Opening stops
 * at the first record that does not fit in the file and cuts the file
 * there; a record whose bytes were damaged fails its AEAD check like a
 * damaged reply (that run fails) and is forgotten: the next run fetches it
 * again.
 *
 * A large item's chunks are not copied there: the item is written into
 * its temporary file (HOME/restore-tmp/item-N) anyway, so that file is
 * linked into the cache's folder (staged-ID, a hard link: no byte is
 * copied) when the item starts, and each of its chunks gets a reference
 * record [name 32][16 | REC_REF 4][ID 4][offset 8][length 4] saying where
 * its plaintext lies in it. The link outlives the item's file being moved
 * into the target (or removed by an aborted transaction). A later run
 * reads such a chunk back and checks it against its name (the keyed
 * BLAKE2b every chunk is checked with) before it counts it as kept
 * (pb__cache_check): bytes that were never written (the process died
 * before the write queue got to them), changed or missing just mean the
 * chunk is fetched again. */
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
#include "agent/backup/internal.h"
#include "agent/util/fsutil.h"

#define CACHE_DIR "restore-cache"
#define CACHE_FILE "chunks"
#define CACHE_MAGIC "pbrcache1\n" /* 10 bytes, the file's first */
#define CACHE_MAGIC_LEN 10
#define REC_HEAD (PB_STORE_NAME_LEN + 4)
#define REC_REF 0x80000000u /* in the length field: a reference record */
#define REF_LEN 16          /* its body: staged file id, offset, length */
#define STAGED_PREFIX "staged-"

/* A record of the file: its name's first 8 bytes as the key (a false
 * match is a chunk that does not open under the name asked for: that run
 * fails like a damaged reply, the next fetches it), and where it is. 16
 * bytes a record: a million kept chunks index in 32 MiB. */
struct slot {
	uint64_t key;
	uint64_t at; /* offset of the sealed bytes << 24 | their length; 0: empty;
		      * AT_REF: of a reference record's body */
};

#define AT_LEN_BITS 24
#define AT_REF (1ull << 63)
#define AT_DEAD (1ull << 62) /* a reference that did not check: as if absent */
_Static_assert(PB_STORE_CT_MAX < (1u << AT_LEN_BITS), "a record's length fits in its slot");

/* The last records kept by this run, which the index does not hold (this
 * run never looks them up), so that one that does not open can still be
 * forgotten: it is among the chunks the restore has in hand. */
#define RECENT 128

struct pb__cache_s {
	char dir[4096], path[4200];
	int fd;       /* -1 until the first keep */
	bool broken;  /* a write failed: nothing more is kept this run */
	uint64_t end; /* where the next record goes */
	struct slot *t; /* what earlier runs kept */
	size_t cap, n;  /* cap: a power of two */
	struct slot recent[RECENT];
	size_t nrecent;
	uint32_t next_file; /* the next staged file's id (ids start at 1) */
	uint32_t sfile;     /* the staged file open as sfd (reading), or 0 */
	int sfd;
};

static uint64_t at_off(uint64_t at)
{
	return (at & ~(AT_REF | AT_DEAD)) >> AT_LEN_BITS;
}

static size_t at_len(uint64_t at)
{
	return (size_t)(at & ((1u << AT_LEN_BITS) - 1));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

static uint64_t key_of(const uint8_t name[PB_STORE_NAME_LEN])
{
	uint64_t k;

	memcpy(&k, name, sizeof(k));
	return k;
}

/* Names are keyed BLAKE2b hashes: their first bytes are as good as any hash. */
static size_t slot_of(const pb__cache_t *c, uint64_t key)
{
	return (size_t)key & (c->cap - 1);
}

static struct slot *find(const pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN])
{
	uint64_t key = key_of(name);

	if (c == NULL || c->cap == 0)
		return NULL;
	for (size_t i = slot_of(c, key);; i = (i + 1) & (c->cap - 1)) {
		struct slot *s = &c->t[i];

		if (s->at == 0)
			return NULL;
		if (s->key == key)
			return (s->at & AT_DEAD) != 0 ? NULL : s;
	}
}

static int put_slot(pb__cache_t *c, uint64_t key, uint64_t at);

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
		if (old[i].at != 0)
			(void)put_slot(c, old[i].key, old[i].at);
	free(old);
	return 0;
}

static int put_slot(pb__cache_t *c, uint64_t key, uint64_t at)
{
	struct slot *s;
	int rc;

	if ((c->n + 1) * 2 > c->cap && (rc = grow(c)) != 0)
		return rc;
	for (size_t i = slot_of(c, key);; i = (i + 1) & (c->cap - 1)) {
		s = &c->t[i];
		if (s->at == 0) {
			c->n++;
			break;
		}
		if (s->key == key)
			break;
	}
	s->key = key;
	s->at = at;
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
		/* Empty, or not ours: started afresh. A file that is empty is
		 * not truncated: on ext4 a truncation to 0 marks the file to be
		 * flushed when closed (auto_da_alloc), which would write out the
		 * whole cache (a gigabyte for a large restore) just before it is
		 * removed. */
		if ((st.st_size != 0 && ftruncate(c->fd, 0) != 0) ||
		    pwrite(c->fd, CACHE_MAGIC, CACHE_MAGIC_LEN, 0) != CACHE_MAGIC_LEN)
			return -errno;
		c->end = CACHE_MAGIC_LEN;
		return 0;
	}
	while (off + REC_HEAD <= (uint64_t)st.st_size) {
		uint32_t len;

		if (pread(c->fd, head, sizeof(head), (off_t)off) != (ssize_t)sizeof(head))
			break;
		len = get_le32(head + PB_STORE_NAME_LEN);
		if ((len & REC_REF) != 0) {
			uint8_t id[4];

			if (len != (REC_REF | REF_LEN) || off + REC_HEAD + REF_LEN > (uint64_t)st.st_size ||
			    pread(c->fd, id, sizeof(id), (off_t)(off + REC_HEAD)) != (ssize_t)sizeof(id))
				break;
			if (get_le32(id) >= c->next_file)
				c->next_file = get_le32(id) + 1;
			if (!sodium_is_zero(head, PB_STORE_NAME_LEN) &&
			    (rc = put_slot(c, key_of(head), AT_REF | (off + REC_HEAD) << AT_LEN_BITS | REF_LEN)) != 0)
				return rc;
			off += REC_HEAD + REF_LEN;
			continue;
		}
		if (len == 0 || len > PB_STORE_CT_MAX || off + REC_HEAD + len > (uint64_t)st.st_size)
			break;
		if (!sodium_is_zero(head, PB_STORE_NAME_LEN) &&
		    (rc = put_slot(c, key_of(head), (off + REC_HEAD) << AT_LEN_BITS | len)) != 0)
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
	c->sfd = -1;
	c->next_file = 1;
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

static bool is_broken(const pb__cache_t *c)
{
	return __atomic_load_n(&c->broken, __ATOMIC_RELAXED);
}

static void set_broken(pb__cache_t *c)
{
	__atomic_store_n(&c->broken, true, __ATOMIC_RELAXED);
}

/* A cache that cannot be written only costs a refetch, so a failure stops
 * caching for this run. The record's place is taken here, in the order
 * chunks come; its bytes may be written by another thread. */
uint64_t pb__cache_reserve(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], size_t len)
{
	uint64_t at;

	if (c == NULL || len == 0 || len > PB_STORE_CT_MAX || find(c, name) != NULL)
		return 0; /* kept by an earlier run */
	if (is_broken(c) || (c->fd < 0 && open_file(c, true) != 0)) {
		set_broken(c);
		return 0;
	}
	at = c->end;
	c->recent[c->nrecent++ % RECENT] = (struct slot){ key_of(name), (at + REC_HEAD) << AT_LEN_BITS | len };
	c->end += REC_HEAD + len;
	return at;
}

/* One write a record. Records are written by two threads at once: should
 * the process die, a record not written yet leaves a hole of zeros, where
 * the next open cuts the file (the records after it are fetched again). */
void pb__cache_write(pb__cache_t *c, uint64_t at, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct,
		     size_t len)
{
	uint8_t head[REC_HEAD];
	struct iovec iov[2];
	size_t want = REC_HEAD + len, done = 0;

	if (at == 0 || is_broken(c))
		return;
	memcpy(head, name, PB_STORE_NAME_LEN);
	put_le32(head + PB_STORE_NAME_LEN, (uint32_t)len);
	while (done < want) {
		ssize_t w;

		if (done < REC_HEAD) {
			iov[0].iov_base = head + done;
			iov[0].iov_len = REC_HEAD - done;
			iov[1].iov_base = (void *)ct;
			iov[1].iov_len = len;
			w = pwritev(c->fd, iov, 2, (off_t)(at + done));
		} else {
			w = pwrite(c->fd, ct + (done - REC_HEAD), want - done, (off_t)(at + done));
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* The torn record is cut by the next open. */
			set_broken(c);
			return;
		}
		done += (size_t)w;
	}
}

void pb__cache_keep(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	pb__cache_write(c, pb__cache_reserve(c, name, len), name, ct, len);
}

static int read_at(int fd, uint8_t *buf, size_t want, uint64_t off)
{
	size_t done = 0;

	while (done < want) {
		ssize_t r = pread(fd, buf + done, want - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : PB_ETRUNCATED;
		done += (size_t)r;
	}
	return 0;
}

/* The whole record is read: the name in it must be the one asked for. */
int pb__cache_read(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **ct, size_t *len)
{
	struct slot *s = find(c, name);
	uint64_t off;
	size_t want;
	uint8_t *buf;
	int rc;

	*ct = NULL;
	*len = 0;
	if (s == NULL || c->fd < 0 || (s->at & AT_REF) != 0)
		return PB_ENOTFOUND;
	off = at_off(s->at) - REC_HEAD;
	want = REC_HEAD + at_len(s->at);
	if ((buf = malloc(want)) == NULL)
		return PB_ENOMEM;
	if ((rc = read_at(c->fd, buf, want, off)) != 0) {
		free(buf);
		return rc;
	}
	if (memcmp(buf, name, PB_STORE_NAME_LEN) != 0) {
		free(buf);
		return PB_ESTORE_HASH;
	}
	memmove(buf, buf + REC_HEAD, want - REC_HEAD);
	*ct = buf;
	*len = want - REC_HEAD;
	return 0;
}

/* Zeroes the record's name in the file, which no chunk has: the next open
 * skips it, and the chunk is fetched again. */
static void zero_record(pb__cache_t *c, uint64_t at)
{
	static const uint8_t zero[PB_STORE_NAME_LEN];

	if (c->fd >= 0 &&
	    pwrite(c->fd, zero, sizeof(zero), (off_t)(at_off(at) - REC_HEAD)) != (ssize_t)sizeof(zero))
		set_broken(c);
}

void pb__cache_forget(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN])
{
	uint64_t key = key_of(name);
	struct slot *s = find(c, name), *old;
	size_t cap;

	if (c == NULL)
		return;
	for (size_t i = 0; i < RECENT && i < c->nrecent; i++)
		if (c->recent[i].at != 0 && c->recent[i].key == key) {
			zero_record(c, c->recent[i].at);
			c->recent[i].at = 0;
		}
	if (s == NULL)
		return;
	zero_record(c, s->at);
	s->at = 0;
	/* Open addressing: the table is rebuilt without it. */
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
		if (old[i].at != 0)
			(void)put_slot(c, old[i].key, old[i].at);
	free(old);
}

/* --- Chunks of large items: references into their staged files ------------- */

static int staged_path(const pb__cache_t *c, uint32_t id, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/" STAGED_PREFIX "%u", c->dir, id);

	return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
}

uint32_t pb__cache_stage(pb__cache_t *c, const char *tmp)
{
	char path[4300];

	if (c == NULL || is_broken(c) || (c->fd < 0 && open_file(c, true) != 0))
		return 0;
	/* A link left by a run that died before its first reference is
	 * taken over by none: the next id is tried. */
	for (int tries = 0; tries < 64; tries++) {
		uint32_t id = c->next_file++;

		if (id == 0 || staged_path(c, id, path, sizeof(path)) != 0)
			return 0;
		if (link(tmp, path) == 0)
			return id;
		if (errno != EEXIST)
			return 0;
	}
	return 0;
}

void pb__cache_note(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], uint32_t file, uint64_t off, size_t len)
{
	uint8_t rec[REC_HEAD + REF_LEN];
	uint64_t at;

	if (c == NULL || file == 0 || len == 0 || len > UINT32_MAX || is_broken(c) || c->fd < 0 ||
	    find(c, name) != NULL)
		return;
	memcpy(rec, name, PB_STORE_NAME_LEN);
	put_le32(rec + PB_STORE_NAME_LEN, REC_REF | REF_LEN);
	put_le32(rec + REC_HEAD, file);
	for (int k = 0; k < 8; k++)
		rec[REC_HEAD + 4 + k] = (uint8_t)(off >> (8 * k));
	put_le32(rec + REC_HEAD + 12, (uint32_t)len);
	at = c->end;
	c->end += sizeof(rec);
	if (pwrite(c->fd, rec, sizeof(rec), (off_t)at) != (ssize_t)sizeof(rec))
		set_broken(c); /* a torn record is cut by the next open */
}

bool pb__cache_is_staged(const pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN])
{
	const struct slot *s = find(c, name);

	return s != NULL && (s->at & AT_REF) != 0;
}

/* The plaintext a reference record points to, read from its staged file
 * (the one read last stays open: a large item's chunks follow each other). */
int pb__cache_read_staged(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **plain, size_t *len)
{
	struct slot *s = find(c, name);
	uint8_t body[REF_LEN], *buf;
	uint32_t id, n;
	uint64_t off = 0;
	int rc;

	*plain = NULL;
	*len = 0;
	if (s == NULL || c->fd < 0 || (s->at & AT_REF) == 0)
		return PB_ENOTFOUND;
	if ((rc = read_at(c->fd, body, sizeof(body), at_off(s->at))) != 0)
		return rc;
	id = get_le32(body);
	for (int k = 7; k >= 0; k--)
		off = off << 8 | body[4 + k];
	n = get_le32(body + 12);
	if (n == 0 || n > PB_CHUNK_PLAIN_MAX)
		return PB_ESTORE_HASH;
	if (c->sfile != id) {
		char path[4300];

		if (c->sfd >= 0)
			close(c->sfd);
		c->sfd = -1;
		c->sfile = 0;
		if ((rc = staged_path(c, id, path, sizeof(path))) != 0)
			return rc;
		if ((c->sfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return -errno;
		c->sfile = id;
	}
	if ((buf = malloc(n)) == NULL)
		return PB_ENOMEM;
	if ((rc = read_at(c->sfd, buf, n, off)) != 0) {
		free(buf);
		return rc;
	}
	*plain = buf;
	*len = n;
	return 0;
}

/* Forgotten like pb__cache_forget, without rebuilding the index: a staged
 * file lost takes all its chunks' references with it, one by one. */
static void drop_staged(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN])
{
	struct slot *s = find(c, name);

	if (s == NULL)
		return;
	zero_record(c, s->at);
	s->at |= AT_DEAD;
}

bool pb__cache_check(pb__cache_t *c, const uint8_t name_key[32], const uint8_t name[PB_STORE_NAME_LEN])
{
	uint8_t *plain;
	size_t len;
	bool ok;

	if (!pb__cache_is_staged(c, name))
		return pb__cache_has(c, name);
	if (pb__cache_read_staged(c, name, &plain, &len) != 0) {
		drop_staged(c, name);
		return false;
	}
	ok = pb__chunk_name_ok(name_key, plain, len, name);
	sodium_memzero(plain, len);
	free(plain);
	if (!ok)
		drop_staged(c, name);
	return ok;
}

void pb__cache_close(pb__cache_t *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	if (c->sfd >= 0)
		close(c->sfd);
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
