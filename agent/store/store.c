/* The host store: append-only pack files and the SQLite index that says
 * which of their bytes are committed.
 *
 * Commit order: a batch of chunks is written to the namespace's open pack,
 * the pack is fdatasync'ed (and its directory fsync'ed when the pack is new),
 * then one index transaction records the pack's new committed length and the
 * chunk rows. A snapshot record is its own later transaction, refused unless
 * every chunk it references is already in the index. The index is the truth:
 * pack bytes past a pack's committed length are a torn or abandoned tail, cut
 * off when the store is opened. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "agent/store/internal.h"
#include "agent/util/fsutil.h"
#include "agent/util/testhook.h"
#include "peerback/error.h"

/* Pack files grow past 2 GiB and are written at 64-bit offsets: a 32-bit
 * off_t (armhf without large-file support) would wrap them. */
_Static_assert(sizeof(off_t) == 8, "peerback needs a 64-bit off_t (_FILE_OFFSET_BITS=64)");

void (*pb__store_test_hook)(const char *point);
int (*pb__store_test_fail)(const char *point);
unsigned long pb__store_prepared;

#define HOOK(point)                                                            \
	do {                                                                   \
		pb__test_point(point);                                         \
		if (pb__store_test_hook != NULL)                               \
			pb__store_test_hook(point);                            \
	} while (0)

#define PACK_OPEN 0
#define PACK_FULL 1
/* A pack is rewritten by GC when less than this share of it is live. */
#define REPACK_LIVE_PERCENT 50

typedef struct pending_s {
	uint8_t name[PB_STORE_NAME_LEN];
	uint8_t hash[32];
	uint64_t off;
	uint64_t len;
} pending_t;

struct pb_store_ns_s {
	pb_store_t *store;
	pb_store_ns_t *next;
	int64_t id;             /* 0: a read-only handle whose namespace does not exist yet */
	bool read_only;
	/* Appending to the namespace's pack: at most one handle of a namespace
	 * at a time, from the first record of a batch to the batch's flush. */
	bool writing;
	char *account, *device; /* a read-only handle's names, to find it later */
	uint64_t quota;          /* bytes the namespace may hold; 0: no limit */
	uint64_t usage;          /* what it held at the start of the batch */
	uint64_t pending_bytes;  /* pack bytes of the batch */
	/* The pack this namespace appends to, or fd -1 when none is open. */
	int fd;
	int64_t pack_id;
	bool pack_new;          /* file created, no index row yet */
	uint64_t pack_committed; /* committed length in the index */
	uint64_t wr_off;         /* where the next record goes */
	/* The batch: puts since the last flush, and a set over their names. */
	pending_t *pending;
	size_t npending, cap;
	uint32_t *set; /* indexes + 1 into pending; 0 is empty */
	size_t set_cap;
	int auto_flushed;
	sqlite3_stmt *lookup; /* is a name committed in this namespace? */
};

struct pb_store_s {
	char *dir;
	int lock_fd;
	/* Opened by pb_store_open_ro(): no lock, no recovery, no write. */
	bool read_only;
	sqlite3 *db;
	int64_t next_pack;
	pb_store_ns_t *ns_list;
	/* A COMMIT failed: it may still have reached the disk (the WAL frames
	 * were written but not synced), so the pack bytes it would index are
	 * kept, and writes are refused until the store is reopened and
	 * recovery settles what the index says. */
	bool uncertain;
};

static const char SCHEMA[] =
	"CREATE TABLE IF NOT EXISTS ns("
	" id INTEGER PRIMARY KEY, account TEXT NOT NULL, device TEXT NOT NULL,"
	" UNIQUE(account, device));"
	"CREATE TABLE IF NOT EXISTS packs("
	" id INTEGER PRIMARY KEY, ns INTEGER NOT NULL REFERENCES ns(id),"
	" committed_len INTEGER NOT NULL, state INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS chunks("
	" id INTEGER PRIMARY KEY, ns INTEGER NOT NULL REFERENCES ns(id),"
	" name BLOB NOT NULL, pack INTEGER NOT NULL REFERENCES packs(id),"
	" off INTEGER NOT NULL, len INTEGER NOT NULL, hash BLOB NOT NULL,"
	" added INTEGER NOT NULL, UNIQUE(ns, name));"
	"CREATE INDEX IF NOT EXISTS chunks_pack ON chunks(pack, off);"
	"CREATE TABLE IF NOT EXISTS snapshots("
	" id INTEGER PRIMARY KEY, ns INTEGER NOT NULL REFERENCES ns(id),"
	" snap INTEGER NOT NULL, time INTEGER NOT NULL, blob BLOB NOT NULL,"
	" UNIQUE(ns, snap));"
	"CREATE TABLE IF NOT EXISTS snap_refs("
	" snap INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,"
	" chunk INTEGER NOT NULL REFERENCES chunks(id),"
	" PRIMARY KEY(snap, chunk)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS snap_refs_chunk ON snap_refs(chunk);"
	/* Counted once at snapshot_put, so that listing snapshots does not
	 * walk a million references each time. */
	"CREATE TABLE IF NOT EXISTS snap_stats("
	" snap INTEGER PRIMARY KEY REFERENCES snapshots(id) ON DELETE CASCADE,"
	" nrefs INTEGER NOT NULL, size INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS blobs("
	" ns INTEGER NOT NULL REFERENCES ns(id), k TEXT NOT NULL, v BLOB NOT NULL,"
	" PRIMARY KEY(ns, k));";

/* ---- errors and small helpers ------------------------------------------- */

static int sys_err(int e)
{
	if (e == ENOSPC || e == EDQUOT)
		return PB_ENOSPACE;
	return e > 0 ? -e : PB_EIO;
}

static int db_err(sqlite3 *db, int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return PB_ENOSPACE;
	case SQLITE_NOMEM:
		return PB_ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return PB_EBUSY;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return PB_ESTORE_CORRUPT;
	case SQLITE_IOERR:
		/* SQLite reports a full disk during a write as an I/O error at
		 * times; the saved errno tells which. */
		if (sqlite3_system_errno(db) == ENOSPC)
			return PB_ENOSPACE;
		return PB_EIO;
	default:
		return PB_EIO;
	}
}

static int exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_err(db, rc);
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);

	pb__store_prepared++;
	return rc == SQLITE_OK ? 0 : db_err(db, rc);
}

/* An errno the failure-injection tests want at point, or 0. */
static int injected(const char *point)
{
	return pb__store_test_fail != NULL ? pb__store_test_fail(point) : 0;
}

/* Commits the open transaction; see pb_store_s.uncertain for failures. */
static int commit(pb_store_t *s)
{
	int e = injected("commit");
	int rc;

	if (e != 0) {
		s->uncertain = true;
		return sys_err(e);
	}
	rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		s->uncertain = true;
		return db_err(s->db, rc);
	}
	return 0;
}

static void rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static int pwrite_raw(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return sys_err(errno);
		}
		if (w == 0)
			return PB_ENOSPACE;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	int e = injected("write");

	return e != 0 ? sys_err(e) : pwrite_raw(fd, buf, len, off);
}

/* Writes a then b at off, in one system call when the kernel takes it all. */
static int pwrite_pair(int fd, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint64_t off)
{
	struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
	int e = injected("write");
	ssize_t w;
	int rc;

	if (e != 0)
		return sys_err(e);
	w = pwritev(fd, iov, blen > 0 ? 2 : 1, (off_t)off);
	if (w < 0) {
		if (errno != EINTR)
			return sys_err(errno);
		w = 0;
	}
	if ((size_t)w < alen) {
		rc = pwrite_raw(fd, a + w, alen - (size_t)w, off + (uint64_t)w);
		if (rc < 0)
			return rc;
		w = (ssize_t)alen;
	}
	if ((size_t)w - alen >= blen)
		return 0;
	return pwrite_raw(fd, b + ((size_t)w - alen), blen - ((size_t)w - alen), off + (uint64_t)w);
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t r = pread(fd, p, len, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return sys_err(errno);
		}
		if (r == 0)
			return PB_ETRUNCATED;
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int sync_data(int fd)
{
	int e = injected("fsync");

	if (e != 0)
		return sys_err(e);
	return fdatasync(fd) < 0 ? sys_err(errno) : 0;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return sys_err(errno);
	if (fsync(fd) < 0)
		rc = sys_err(errno);
	close(fd);
	return rc;
}

static int ns_dir_path(const pb_store_t *s, int64_t ns, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/packs/%lld", s->dir, (long long)ns);

	return (n < 0 || (size_t)n >= cap) ? PB_ETOOBIG : 0;
}

static int pack_path(const pb_store_t *s, int64_t ns, int64_t pack, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/packs/%lld/%lld.pack", s->dir, (long long)ns, (long long)pack);

	return (n < 0 || (size_t)n >= cap) ? PB_ETOOBIG : 0;
}

/* Creates dir if missing; when it had to, fsyncs its parent so the new
 * entry survives a crash. */
static int ensure_dir(const char *dir, const char *parent)
{
	if (mkdir(dir, 0700) == 0)
		return parent != NULL ? fsync_dir(parent) : 0;
	return errno == EEXIST ? 0 : sys_err(errno);
}

/* ---- the batch's name set ------------------------------------------------ */

static uint64_t name_slot(const uint8_t *name)
{
	uint64_t h;

	memcpy(&h, name, sizeof(h)); /* names are keyed hashes: uniform */
	return h;
}

static bool set_find(const pb_store_ns_t *ns, const uint8_t *name)
{
	size_t mask = ns->set_cap - 1;
	size_t i;

	if (ns->set_cap == 0)
		return false;
	for (i = name_slot(name) & mask; ns->set[i] != 0; i = (i + 1) & mask)
		if (memcmp(ns->pending[ns->set[i] - 1].name, name, PB_STORE_NAME_LEN) == 0)
			return true;
	return false;
}

static int set_rebuild(pb_store_ns_t *ns, size_t cap)
{
	uint32_t *set = calloc(cap, sizeof(*set));
	size_t i, j;

	if (set == NULL)
		return PB_ENOMEM;
	for (i = 0; i < ns->npending; i++) {
		for (j = name_slot(ns->pending[i].name) & (cap - 1); set[j] != 0; j = (j + 1) & (cap - 1))
			;
		set[j] = (uint32_t)(i + 1);
	}
	free(ns->set);
	ns->set = set;
	ns->set_cap = cap;
	return 0;
}

static int pending_add(pb_store_ns_t *ns, const pending_t *p)
{
	size_t mask, j;

	if (ns->npending == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;
		pending_t *np;

		if (cap > UINT32_MAX / 4)
			return PB_ETOOBIG;
		np = realloc(ns->pending, cap * sizeof(*np));
		if (np == NULL)
			return PB_ENOMEM;
		ns->pending = np;
		ns->cap = cap;
	}
	ns->pending[ns->npending++] = *p;
	ns->pending_bytes += PB__REC_LEN(p->len);
	/* The set stays at most half full. */
	if (ns->npending * 2 > ns->set_cap)
		return set_rebuild(ns, ns->set_cap ? ns->set_cap * 4 : 256);
	mask = ns->set_cap - 1;
	for (j = name_slot(p->name) & mask; ns->set[j] != 0; j = (j + 1) & mask)
		;
	ns->set[j] = (uint32_t)ns->npending;
	return 0;
}

static void pending_clear(pb_store_ns_t *ns)
{
	ns->npending = 0;
	ns->pending_bytes = 0;
	if (ns->set != NULL)
		memset(ns->set, 0, ns->set_cap * sizeof(*ns->set));
}

/* ---- opening, recovery, closing ------------------------------------------ */

/* Brings every pack file in line with the index: cuts tails past the
 * committed length, drops rows of empty packs whose file is gone, and
 * removes pack files the index never committed. */
static int recover(pb_store_t *s)
{
	sqlite3_stmt *st = NULL;
	char path[PATH_MAX], dpath[PATH_MAX];
	DIR *top = NULL;
	struct dirent *de;
	int rc;

	rc = prep(s->db, "SELECT p.id, p.ns, p.committed_len,"
			 " (SELECT count(*) FROM chunks c WHERE c.pack = p.id) FROM packs p", &st);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0), ns = sqlite3_column_int64(st, 1);
		int64_t clen = sqlite3_column_int64(st, 2), nchunks = sqlite3_column_int64(st, 3);
		struct stat sb;
		int fd;

		if (pack_path(s, ns, id, path, sizeof(path)) < 0)
			continue;
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			/* GC removed the file after committing the pack's deletion
			 * was interrupted, or the pack is lost: verify reports the
			 * latter; an empty pack's row is simply dropped. */
			if (errno == ENOENT && nchunks == 0) {
				char sql[96];
				int n = snprintf(sql, sizeof(sql), "DELETE FROM packs WHERE id=%lld", (long long)id);

				if (n > 0 && (size_t)n < sizeof(sql))
					(void)exec(s->db, sql);
			}
			continue;
		}
		if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size > (uint64_t)clen) {
			if (ftruncate(fd, clen) < 0 || fdatasync(fd) < 0) {
				rc = sys_err(errno);
				close(fd);
				goto out_finalize;
			}
		}
		close(fd);
	}
	rc = rc == SQLITE_DONE ? 0 : db_err(s->db, rc);
	if (rc < 0)
		goto out_finalize;
	sqlite3_finalize(st);
	st = NULL;

	/* Pack files with no row: created by a batch, a repack or a GC whose
	 * index transaction never committed, or left after a deletion. */
	rc = prep(s->db, "SELECT 1 FROM packs WHERE id=?1 AND ns=?2", &st);
	if (rc < 0)
		return rc;
	if (snprintf(dpath, sizeof(dpath), "%s/packs", s->dir) >= (int)sizeof(dpath))
		goto out_finalize;
	top = opendir(dpath);
	if (top == NULL)
		goto out_finalize;
	while ((de = readdir(top)) != NULL) {
		char *end;
		long long ns = strtoll(de->d_name, &end, 10);
		DIR *sub;
		struct dirent *pe;
		bool removed = false;

		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end != '\0')
			continue;
		if (ns_dir_path(s, ns, path, sizeof(path)) < 0)
			continue;
		sub = opendir(path);
		if (sub == NULL)
			continue;
		while ((pe = readdir(sub)) != NULL) {
			long long id = strtoll(pe->d_name, &end, 10);
			char fpath[PATH_MAX];

			if (pe->d_name[0] < '0' || pe->d_name[0] > '9' || strcmp(end, ".pack") != 0)
				continue;
			sqlite3_reset(st);
			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_int64(st, 2, ns);
			if (sqlite3_step(st) == SQLITE_ROW)
				continue;
			if (pack_path(s, ns, id, fpath, sizeof(fpath)) == 0 && unlink(fpath) == 0)
				removed = true;
		}
		closedir(sub);
		if (removed)
			(void)fsync_dir(path);
	}
	closedir(top);
	rc = 0;
out_finalize:
	sqlite3_finalize(st);
	return rc;
}

static bool packs_empty(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	bool empty = true;
	DIR *d;

	if (snprintf(path, sizeof(path), "%s/packs", dir) >= (int)sizeof(path))
		return false;
	d = opendir(path);
	if (d == NULL)
		return true;
	while (empty && (de = readdir(d)) != NULL)
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
	closedir(d);
	return empty;
}

int pb_store_open(const char *dir, pb_store_t **out)
{
	char path[PATH_MAX];
	pb_store_t *s;
	sqlite3_stmt *st = NULL;
	int rc;

	if (dir == NULL || out == NULL)
		return PB_EINVAL;
	if (sodium_init() < 0)
		return PB_ENOMEM;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return PB_ENOMEM;
	s->lock_fd = -1;
	s->dir = strdup(dir);
	if (s->dir == NULL) {
		rc = PB_ENOMEM;
		goto out_free;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = sys_err(errno);
		goto out_free;
	}
	if (snprintf(path, sizeof(path), "%s/lock", dir) >= (int)sizeof(path)) {
		rc = PB_ETOOBIG;
		goto out_free;
	}
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		rc = sys_err(errno);
		goto out_free;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? PB_ESTORE_LOCKED : sys_err(errno);
		goto out_unlock;
	}
	if (snprintf(path, sizeof(path), "%s/packs", dir) >= (int)sizeof(path)) {
		rc = PB_ETOOBIG;
		goto out_unlock;
	}
	rc = ensure_dir(path, dir);
	if (rc < 0)
		goto out_unlock;
	if (snprintf(path, sizeof(path), "%s/index.db", dir) >= (int)sizeof(path)) {
		rc = PB_ETOOBIG;
		goto out_unlock;
	}
	/* Packs without an index: the index was lost. Starting a new one would
	 * discard every pack as uncommitted, so refuse instead. */
	if (access(path, F_OK) < 0 && errno == ENOENT && !packs_empty(dir)) {
		rc = PB_ESTORE_CORRUPT;
		goto out_unlock;
	}
	/* Index and packs hold only ciphertext, but who paired and how much
	 * each holds is nobody else's business either. */
	if ((rc = pb__private_db(path, 1)) != 0)
		goto out_unlock;
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		rc = s->db != NULL ? db_err(s->db, rc) : PB_ENOMEM;
		goto out_close_db;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* WAL with synchronous=FULL: a commit returns only once the WAL is
	 * fsync'ed, so an acknowledged chunk or snapshot survives power loss
	 * (NORMAL could lose the last commits, i.e. acknowledged data). */
	rc = exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			 " PRAGMA foreign_keys=ON;");
	if (rc < 0)
		goto out_close_db;
	rc = exec(s->db, SCHEMA);
	if (rc < 0)
		goto out_close_db;
	/* Snapshots recorded before snap_stats existed are counted once. */
	rc = exec(s->db, "INSERT INTO snap_stats(snap, nrefs, size)"
			 " SELECT s.id, COUNT(c.id), COALESCE(SUM(c.len), 0) FROM snapshots s"
			 " LEFT JOIN snap_refs r ON r.snap = s.id LEFT JOIN chunks c ON c.id = r.chunk"
			 " WHERE NOT EXISTS (SELECT 1 FROM snap_stats t WHERE t.snap = s.id) GROUP BY s.id");
	if (rc < 0)
		goto out_close_db;
	rc = recover(s);
	if (rc < 0)
		goto out_close_db;
	rc = prep(s->db, "SELECT COALESCE(MAX(id), 0) + 1 FROM packs", &st);
	if (rc < 0)
		goto out_close_db;
	if (sqlite3_step(st) == SQLITE_ROW)
		s->next_pack = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	*out = s;
	return 0;

out_close_db:
	sqlite3_close(s->db);
out_unlock:
	close(s->lock_fd);
out_free:
	free(s->dir);
	free(s);
	return rc;
}

/* Beside a running host that holds the lock: SQLite's WAL serves this
 * reader a consistent index while the host commits, and packs are only
 * appended to past the committed lengths this reader sees, so the bytes it
 * reads do not change under it. Recovery is the lock holder's job. */
int pb_store_open_ro(const char *dir, pb_store_t **out)
{
	char path[PATH_MAX];
	pb_store_t *s;
	int rc;

	if (dir == NULL || out == NULL)
		return PB_EINVAL;
	if (sodium_init() < 0)
		return PB_ENOMEM;
	if (snprintf(path, sizeof(path), "%s/index.db", dir) >= (int)sizeof(path))
		return PB_ETOOBIG;
	if (access(path, F_OK) < 0)
		return errno == ENOENT && !packs_empty(dir) ? PB_ESTORE_CORRUPT : sys_err(errno);
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return PB_ENOMEM;
	s->lock_fd = -1;
	s->read_only = true;
	s->dir = strdup(dir);
	if (s->dir == NULL) {
		free(s);
		return PB_ENOMEM;
	}
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		rc = s->db != NULL ? db_err(s->db, rc) : PB_ENOMEM;
		sqlite3_close(s->db);
		free(s->dir);
		free(s);
		return rc;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* The host may hold a write transaction for a moment. */
	sqlite3_busy_timeout(s->db, 5000);
	*out = s;
	return 0;
}

void pb_store_close(pb_store_t *s)
{
	if (s == NULL)
		return;
	while (s->ns_list != NULL)
		pb_store_ns_close(s->ns_list);
	sqlite3_close(s->db);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->dir);
	free(s);
}

/* ---- namespaces ----------------------------------------------------------- */

static bool id_ok(const char *id)
{
	size_t n;

	if (id == NULL)
		return false;
	n = strnlen(id, PB_STORE_ID_MAX + 1);
	return n > 0 && n <= PB_STORE_ID_MAX;
}

/* The id of the namespace (account, device): 0 when it does not exist. */
static int ns_find(pb_store_t *s, const char *account, const char *device_id, int64_t *id)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prep(s->db, "SELECT id FROM ns WHERE account=?1 AND device=?2", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_err(s->db, rc);
	sqlite3_finalize(st);
	return rc;
}

static int ns_new(pb_store_t *s, int64_t id, bool read_only, pb_store_ns_t **out)
{
	pb_store_ns_t *ns = calloc(1, sizeof(*ns));
	int rc;

	if (ns == NULL)
		return PB_ENOMEM;
	rc = prep(s->db, "SELECT 1 FROM chunks WHERE ns=?1 AND name=?2", &ns->lookup);
	if (rc < 0) {
		free(ns);
		return rc;
	}
	ns->id = id;
	ns->read_only = read_only;
	ns->store = s;
	ns->fd = -1;
	ns->next = s->ns_list;
	s->ns_list = ns;
	*out = ns;
	return 0;
}

int pb_store_ns_open(pb_store_t *s, const char *account, const char *device_id, pb_store_ns_t **out)
{
	sqlite3_stmt *st = NULL;
	int64_t id;
	int rc;

	if (s == NULL || out == NULL || !id_ok(account) || !id_ok(device_id))
		return PB_EINVAL;
	if (s->read_only)
		return PB_ESTATE;
	if ((rc = ns_find(s, account, device_id, &id)) < 0)
		return rc;
	if (id == 0) {
		if (s->uncertain)
			return PB_EIO;
		rc = prep(s->db, "INSERT INTO ns(account, device) VALUES(?1, ?2)", &st);
		if (rc < 0)
			return rc;
		sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return db_err(s->db, rc);
		id = sqlite3_last_insert_rowid(s->db);
	}
	return ns_new(s, id, false, out);
}

int pb_store_ns_open_ro(pb_store_t *s, const char *account, const char *device_id, pb_store_ns_t **out)
{
	pb_store_ns_t *ns;
	int64_t id;
	int rc;

	if (s == NULL || out == NULL || !id_ok(account) || !id_ok(device_id))
		return PB_EINVAL;
	if ((rc = ns_find(s, account, device_id, &id)) < 0)
		return rc;
	if ((rc = ns_new(s, id, true, &ns)) < 0)
		return rc;
	if (id == 0) {
		ns->account = strdup(account);
		ns->device = strdup(device_id);
		if (ns->account == NULL || ns->device == NULL) {
			pb_store_ns_close(ns);
			return PB_ENOMEM;
		}
	}
	*out = ns;
	return 0;
}

/* True when the handle's namespace exists; a read-only handle opened
 * before its namespace was created finds it here. */
static bool ns_exists(pb_store_ns_t *ns)
{
	int64_t id;

	if (ns->id != 0)
		return true;
	if (ns->account == NULL || ns_find(ns->store, ns->account, ns->device, &id) < 0 || id == 0)
		return false;
	ns->id = id;
	return true;
}

void pb_store_ns_set_quota(pb_store_ns_t *ns, uint64_t quota)
{
	if (ns != NULL)
		ns->quota = quota;
}

int pb_store_ns_usage(pb_store_ns_t *ns, uint64_t *bytes)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (ns == NULL || bytes == NULL)
		return PB_EINVAL;
	*bytes = 0;
	if (!ns_exists(ns))
		return 0;
	rc = prep(ns->store->db,
		  "SELECT (SELECT COALESCE(SUM(committed_len), 0) FROM packs WHERE ns=?1)"
		  " + (SELECT COALESCE(SUM(length(blob)), 0) FROM snapshots WHERE ns=?1)"
		  " + ?2 * (SELECT COALESCE(SUM(t.nrefs), 0) FROM snap_stats t JOIN snapshots s ON s.id = t.snap"
		  "  WHERE s.ns=?1)"
		  " + (SELECT COALESCE(SUM(length(v)), 0) FROM blobs WHERE ns=?1)",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, PB_STORE_REF_COST);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0)
		*bytes = (uint64_t)sqlite3_column_int64(st, 0);
	rc = rc == SQLITE_ROW ? 0 : db_err(ns->store->db, rc);
	sqlite3_finalize(st);
	return rc;
}

/* PB_ESTORE_QUOTA when adding more bytes to what the namespace holds
 * (usage) would pass its quota. */
static int quota_check(const pb_store_ns_t *ns, uint64_t usage, uint64_t more)
{
	if (ns->quota == 0)
		return 0;
	return usage > ns->quota || more > ns->quota - usage ? PB_ESTORE_QUOTA : 0;
}

/* Takes the namespace's pack for this handle's batch: PB_EBUSY while
 * another handle of the namespace has one under way. */
static int ns_claim(pb_store_ns_t *ns)
{
	pb_store_ns_t *o;

	if (ns->read_only)
		return PB_ESTATE;
	if (ns->writing)
		return 0;
	for (o = ns->store->ns_list; o != NULL; o = o->next)
		if (o != ns && o->id == ns->id && o->writing)
			return PB_EBUSY;
	ns->writing = true;
	return 0;
}

/* Drops the batch: the pack is cut back to its committed length (a new pack
 * is removed), so nothing unacknowledged lingers. */
static void ns_discard(pb_store_ns_t *ns)
{
	char path[PATH_MAX];

	pending_clear(ns);
	ns->auto_flushed = 0;
	ns->writing = false;
	if (ns->fd < 0)
		return;
	if (ns->store->uncertain) {
		/* Leave the bytes; the next open cuts them if uncommitted. */
	} else if (ns->pack_new) {
		if (pack_path(ns->store, ns->id, ns->pack_id, path, sizeof(path)) == 0)
			(void)unlink(path);
	} else {
		(void)ftruncate(ns->fd, (off_t)ns->pack_committed);
	}
	close(ns->fd);
	ns->fd = -1;
	ns->pack_new = false;
}

/* Ends the handle's batch once it is committed: the pack is left for the
 * next batch of whichever handle comes first. */
static void ns_release(pb_store_ns_t *ns)
{
	if (ns->npending > 0)
		return;
	if (ns->fd >= 0)
		close(ns->fd);
	ns->fd = -1;
	ns->pack_new = false;
	ns->writing = false;
}

void pb_store_ns_close(pb_store_ns_t *ns)
{
	pb_store_ns_t **pp;

	if (ns == NULL)
		return;
	ns_discard(ns);
	for (pp = &ns->store->ns_list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == ns) {
			*pp = ns->next;
			break;
		}
	}
	sqlite3_finalize(ns->lookup);
	free(ns->pending);
	free(ns->set);
	free(ns->account);
	free(ns->device);
	free(ns);
}

/* ---- chunks ---------------------------------------------------------------- */

static int chunk_committed(pb_store_ns_t *ns, sqlite3_stmt *st, const uint8_t *name, bool *found)
{
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_blob(st, 2, name, PB_STORE_NAME_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st); /* a statement left stepping pins a WAL snapshot */
	if (rc == SQLITE_ROW)
		*found = true;
	else if (rc == SQLITE_DONE)
		*found = false;
	else
		return db_err(ns->store->db, rc);
	return 0;
}

int pb_store_missing(pb_store_ns_t *ns, const uint8_t (*names)[PB_STORE_NAME_LEN], size_t n, bool *missing)
{
	size_t i;
	int rc;

	if (ns == NULL || (n > 0 && (names == NULL || missing == NULL)))
		return PB_EINVAL;
	if (!ns_exists(ns)) {
		for (i = 0; i < n; i++)
			missing[i] = true;
		return 0;
	}
	rc = exec(ns->store->db, "BEGIN");
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		bool found;

		rc = chunk_committed(ns, ns->lookup, names[i], &found);
		if (rc < 0)
			goto out_rollback;
		missing[i] = !found;
	}
	rc = 0;
out_rollback:
	rollback(ns->store->db);
	return rc;
}

/* Opens the pack the namespace appends to: its newest open pack if one
 * exists, else a new file (registered in the index at the next flush). */
static int ns_open_pack(pb_store_ns_t *ns)
{
	pb_store_t *s = ns->store;
	char path[PATH_MAX], dir[PATH_MAX], packs[PATH_MAX];
	sqlite3_stmt *st = NULL;
	int rc, tries;

	rc = prep(s->db, "SELECT id, committed_len FROM packs WHERE ns=?1 AND state=?2"
			 " ORDER BY id DESC LIMIT 1", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int(st, 2, PACK_OPEN);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ns->pack_id = sqlite3_column_int64(st, 0);
		ns->pack_committed = (uint64_t)sqlite3_column_int64(st, 1);
		sqlite3_finalize(st);
		rc = pack_path(s, ns->id, ns->pack_id, path, sizeof(path));
		if (rc < 0)
			return rc;
		ns->fd = open(path, O_RDWR | O_CLOEXEC);
		if (ns->fd < 0)
			return sys_err(errno);
		ns->wr_off = ns->pack_committed;
		ns->pack_new = false;
		return 0;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_err(s->db, rc);

	if (snprintf(packs, sizeof(packs), "%s/packs", s->dir) >= (int)sizeof(packs))
		return PB_ETOOBIG;
	rc = ns_dir_path(s, ns->id, dir, sizeof(dir));
	if (rc < 0)
		return rc;
	rc = ensure_dir(dir, packs);
	if (rc < 0)
		return rc;
	/* A leftover file that could not be removed at open only costs an id. */
	for (tries = 0; tries < 16; tries++) {
		ns->pack_id = s->next_pack++;
		rc = pack_path(s, ns->id, ns->pack_id, path, sizeof(path));
		if (rc < 0)
			return rc;
		ns->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (ns->fd >= 0 || errno != EEXIST)
			break;
	}
	if (ns->fd < 0)
		return sys_err(errno);
	ns->pack_new = true;
	ns->pack_committed = 0;
	rc = pwrite_all(ns->fd, PB__PACK_HDR, PB__PACK_HDR_LEN, 0);
	if (rc < 0) {
		ns_discard(ns);
		return rc;
	}
	ns->wr_off = PB__PACK_HDR_LEN;
	return 0;
}

/* Makes the batch durable: pack first, then the index rows. */
static int ns_commit(pb_store_ns_t *ns)
{
	pb_store_t *s = ns->store;
	sqlite3_stmt *st = NULL;
	char dir[PATH_MAX];
	int64_t now = (int64_t)time(NULL);
	bool full;
	size_t i;
	int rc;

	if (ns->npending == 0)
		return 0;
	if (s->uncertain) {
		rc = PB_EIO;
		goto out_discard;
	}
	rc = sync_data(ns->fd);
	if (rc < 0)
		goto out_discard;
	if (ns->pack_new) {
		rc = ns_dir_path(s, ns->id, dir, sizeof(dir));
		if (rc == 0)
			rc = fsync_dir(dir);
		if (rc < 0)
			goto out_discard;
	}
	HOOK("pack-synced");
	full = ns->wr_off >= PB_STORE_PACK_CAP;
	rc = exec(s->db, "BEGIN IMMEDIATE");
	if (rc < 0)
		goto out_discard;
	rc = prep(s->db, ns->pack_new ? "INSERT INTO packs(committed_len, state, ns, id) VALUES(?1, ?2, ?3, ?4)"
				       : "UPDATE packs SET committed_len=?1, state=?2 WHERE ns=?3 AND id=?4",
		  &st);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, (int64_t)ns->wr_off);
	sqlite3_bind_int(st, 2, full ? PACK_FULL : PACK_OPEN);
	sqlite3_bind_int64(st, 3, ns->id);
	sqlite3_bind_int64(st, 4, ns->pack_id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE || sqlite3_changes(s->db) != 1) {
		rc = rc != SQLITE_DONE ? db_err(s->db, rc) : PB_ESTORE_CORRUPT;
		goto out_rollback;
	}
	rc = prep(s->db, "INSERT INTO chunks(ns, name, pack, off, len, hash, added)"
			 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)", &st);
	if (rc < 0)
		goto out_rollback;
	for (i = 0; i < ns->npending; i++) {
		const pending_t *p = &ns->pending[i];

		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, ns->id);
		sqlite3_bind_blob(st, 2, p->name, PB_STORE_NAME_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, ns->pack_id);
		sqlite3_bind_int64(st, 4, (int64_t)p->off);
		sqlite3_bind_int64(st, 5, (int64_t)p->len);
		sqlite3_bind_blob(st, 6, p->hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, now);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE) {
			rc = db_err(s->db, rc);
			goto out_rollback;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = injected("index")) != 0) {
		rc = sys_err(rc);
		goto out_rollback;
	}
	rc = commit(s);
	if (rc < 0)
		goto out_rollback;
	HOOK("index-committed");
	rc = (int)ns->npending;
	ns->pack_committed = ns->wr_off;
	ns->pack_new = false;
	pending_clear(ns);
	if (full) {
		close(ns->fd);
		ns->fd = -1;
	}
	return rc;

out_rollback:
	sqlite3_finalize(st);
	rollback(s->db);
out_discard:
	ns_discard(ns);
	return rc;
}

int pb_store_put(pb_store_ns_t *ns, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	uint8_t head[PB__REC_HEAD_LEN];
	pending_t p;
	bool found;
	int rc;

	if (ns == NULL || name == NULL || (ct == NULL && len > 0))
		return PB_EINVAL;
	if (len > PB_STORE_CT_MAX)
		return PB_ETOOBIG;
	if (ns->store->uncertain)
		return PB_EIO;
	if (ns->read_only)
		return PB_ESTATE;
	if (set_find(ns, name))
		return 0;
	rc = chunk_committed(ns, ns->lookup, name, &found);
	if (rc < 0)
		return rc;
	if (found)
		return 0;
	if ((rc = ns_claim(ns)) < 0)
		return rc;
	if (ns->quota != 0) {
		/* Counted once a batch: nobody else appends meanwhile. */
		if (ns->npending == 0 && (rc = pb_store_ns_usage(ns, &ns->usage)) < 0)
			goto out_discard;
		rc = quota_check(ns, ns->usage, ns->pending_bytes + PB__REC_LEN(len));
		if (rc < 0)
			goto out_discard;
	}

	/* A batch never straddles packs: a full pack's batch is committed
	 * first, and the next record starts a new pack. */
	if (ns->fd >= 0 && ns->wr_off > PB__PACK_HDR_LEN &&
	    ns->wr_off + PB__REC_LEN(len) > PB_STORE_PACK_CAP) {
		if (ns->npending > 0) {
			rc = ns_commit(ns);
			if (rc < 0)
				return rc;
			ns->auto_flushed += rc;
		}
		if (ns->fd >= 0) {
			/* Committed but not yet marked full: mark it now. */
			char sql[128];
			int n = snprintf(sql, sizeof(sql), "UPDATE packs SET state=%d WHERE id=%lld",
					 PACK_FULL, (long long)ns->pack_id);

			if (n < 0 || (size_t)n >= sizeof(sql))
				return PB_ETOOBIG;
			if (!ns->pack_new) {
				rc = exec(ns->store->db, sql);
				if (rc < 0)
					return rc;
			}
			/* Everything in it is committed: just stop appending. */
			close(ns->fd);
			ns->fd = -1;
		}
	}
	if (ns->fd < 0) {
		rc = ns_open_pack(ns);
		if (rc < 0)
			return rc;
	}
	memcpy(p.name, name, PB_STORE_NAME_LEN);
	crypto_generichash(p.hash, sizeof(p.hash), ct, len, NULL, 0);
	p.off = ns->wr_off;
	p.len = len;
	pb__pack_rec_head(head, name, len);
	rc = pwrite_pair(ns->fd, head, sizeof(head), ct, len, ns->wr_off);
	if (rc < 0)
		goto out_discard;
	HOOK("put-torn");
	rc = pwrite_all(ns->fd, p.hash, sizeof(p.hash), ns->wr_off + sizeof(head) + len);
	if (rc < 0)
		goto out_discard;
	rc = pending_add(ns, &p);
	if (rc < 0)
		goto out_discard;
	ns->wr_off += PB__REC_LEN(len);
	HOOK("put");
	return 0;

out_discard:
	ns_discard(ns);
	return rc;
}

int pb_store_flush(pb_store_ns_t *ns)
{
	int rc, done;

	if (ns == NULL)
		return PB_EINVAL;
	if (ns->read_only)
		return PB_ESTATE;
	rc = ns_commit(ns);
	if (rc < 0)
		return rc;
	done = ns->auto_flushed + rc;
	ns->auto_flushed = 0;
	ns_release(ns);
	return done;
}

/* Reads and checks the record of one indexed chunk from its pack (fd); the
 * record's buffer becomes the chunk's (the ciphertext moved to its start). */
static int read_chunk(int fd, uint64_t off, uint64_t len, const uint8_t *name, const uint8_t *hash, uint8_t **ct,
		      size_t *ct_len)
{
	pb__pack_rec_t rec;
	uint8_t *buf, *out;
	size_t rlen;
	int rc;

	if (len > PB_STORE_CT_MAX)
		return PB_ESTORE_CORRUPT;
	rlen = (size_t)PB__REC_LEN(len);
	buf = malloc(rlen);
	if (buf == NULL)
		return PB_ENOMEM;
	rc = pread_all(fd, buf, rlen, off);
	if (rc == PB_ETRUNCATED)
		rc = PB_ESTORE_CORRUPT;
	if (rc < 0)
		goto out_free;
	rc = pb__pack_rec_parse(buf, rlen, &rec);
	if (rc == 0 && (rec.ct_len != len || sodium_memcmp(rec.name, name, PB_STORE_NAME_LEN) != 0 ||
			sodium_memcmp(rec.hash, hash, 32) != 0))
		rc = PB_ESTORE_HASH;
	else if (rc < 0)
		rc = PB_ESTORE_HASH;
	if (rc < 0)
		goto out_free;
	memmove(buf, rec.ct, len);
	out = realloc(buf, len > 0 ? len : 1);
	*ct = out != NULL ? out : buf;
	*ct_len = len;
	return 0;
out_free:
	free(buf);
	return rc;
}

/* Where one chunk of a batched read is. */
struct getloc {
	size_t i; /* its index in the request */
	int64_t pack;
	uint64_t off, len;
	uint8_t hash[32];
};

static int cmp_getloc(const void *a, const void *b)
{
	const struct getloc *x = a, *y = b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Looks every name up with one statement; rcs[i] says which are absent. */
static int get_lookup(pb_store_ns_t *ns, const uint8_t (*names)[PB_STORE_NAME_LEN], size_t n, struct getloc *loc,
		      size_t *nloc, int *rcs)
{
	sqlite3_stmt *st = NULL;
	int rc = prep(ns->store->db, "SELECT pack, off, len, hash FROM chunks WHERE ns=?1 AND name=?2", &st);

	*nloc = 0;
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct getloc *l = &loc[*nloc];

		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, ns->id);
		sqlite3_bind_blob(st, 2, names[i], PB_STORE_NAME_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			if (rc != SQLITE_DONE) {
				rc = db_err(ns->store->db, rc);
				sqlite3_finalize(st);
				return rc;
			}
			rcs[i] = PB_ENOTFOUND;
			continue;
		}
		if (sqlite3_column_bytes(st, 3) != 32) {
			rcs[i] = PB_ESTORE_CORRUPT;
			continue;
		}
		l->i = i;
		l->pack = sqlite3_column_int64(st, 0);
		l->off = (uint64_t)sqlite3_column_int64(st, 1);
		l->len = (uint64_t)sqlite3_column_int64(st, 2);
		memcpy(l->hash, sqlite3_column_blob(st, 3), 32);
		(*nloc)++;
	}
	sqlite3_finalize(st);
	return 0;
}

int pb_store_get_many(pb_store_ns_t *ns, const uint8_t (*names)[PB_STORE_NAME_LEN], size_t n, size_t max_bytes,
		      uint8_t **ct, size_t *len, int *rcs, size_t *served)
{
	struct getloc *loc;
	size_t nloc = 0, bytes = 0, upto = n;
	int64_t open_pack = 0;
	int fd = -1, rc;

	if (ns == NULL || (n > 0 && (names == NULL || ct == NULL || len == NULL || rcs == NULL)))
		return PB_EINVAL;
	for (size_t i = 0; i < n; i++) {
		ct[i] = NULL;
		len[i] = 0;
		rcs[i] = PB_ENOTFOUND;
	}
	if (served != NULL)
		*served = n;
	if (n == 0 || !ns_exists(ns))
		return 0;
	if ((loc = malloc(n * sizeof(*loc))) == NULL)
		return PB_ENOMEM;
	if ((rc = get_lookup(ns, names, n, loc, &nloc, rcs)) != 0)
		goto out;
	/* The first chunks (in the order asked) that fit in max_bytes, at
	 * least one: the others are not read. */
	for (size_t k = 0; max_bytes != 0 && k < nloc; k++) {
		bytes += loc[k].len;
		if (bytes > max_bytes && k > 0) {
			upto = loc[k].i;
			nloc = k;
			break;
		}
	}
	if (served != NULL)
		*served = upto;
	/* In pack order: each pack opened once, read front to back. */
	if (nloc > 1)
		qsort(loc, nloc, sizeof(*loc), cmp_getloc);
	for (size_t k = 0; k < nloc; k++) {
		const struct getloc *l = &loc[k];

		if (fd < 0 || l->pack != open_pack) {
			char path[PATH_MAX];

			if (fd >= 0)
				close(fd);
			fd = -1;
			if ((rc = pack_path(ns->store, ns->id, l->pack, path, sizeof(path))) < 0)
				goto out;
			if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
				rcs[l->i] = errno == ENOENT ? PB_ESTORE_CORRUPT : sys_err(errno);
				continue;
			}
			open_pack = l->pack;
		}
		rcs[l->i] = read_chunk(fd, l->off, l->len, names[l->i], l->hash, &ct[l->i], &len[l->i]);
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(loc);
	if (rc != 0) {
		for (size_t i = 0; i < n; i++) {
			free(ct[i]);
			ct[i] = NULL;
		}
	}
	return rc;
}

int pb_store_get(pb_store_ns_t *ns, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **ct, size_t *len)
{
	int one = 0, rc;

	if (ns == NULL || name == NULL || ct == NULL || len == NULL)
		return PB_EINVAL;
	rc = pb_store_get_many(ns, (const uint8_t(*)[PB_STORE_NAME_LEN])name, 1, 0, ct, len, &one, NULL);
	return rc != 0 ? rc : one;
}

/* ---- snapshots -------------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
	return memcmp(a, b, PB_STORE_NAME_LEN);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts names and drops repeats; returns how many are left. */
static size_t sort_unique(uint8_t (*names)[PB_STORE_NAME_LEN], size_t n)
{
	size_t k = 0;

	qsort(names, n, sizeof(*names), cmp_name);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || memcmp(names[k - 1], names[i], PB_STORE_NAME_LEN) != 0) {
			if (k != i)
				memcpy(names[k], names[i], PB_STORE_NAME_LEN);
			k++;
		}
	return k;
}

/* Records the references of snapshot row, inside the caller's transaction,
 * with three statements prepared once for any number of them. Each walks
 * an index in its own order, so that each page is read once however many
 * references there are (a phone's order read a random page or two per
 * reference): the names, sorted, through the chunk index (which holds the
 * chunk's id beside its name), then the rows by chunk id into snap_refs,
 * its chunk index and, for their size, the chunk table. Repeated names
 * count once: *counted and *bytes are the distinct chunks and their size.
 * PB_ESTORE_NOCHUNK for a name the namespace has not committed. */
static int refs_insert(pb_store_ns_t *ns, int64_t row, const uint8_t (*refs)[PB_STORE_NAME_LEN], size_t nrefs,
		       int64_t *counted, int64_t *bytes)
{
	sqlite3 *db = ns->store->db;
	sqlite3_stmt *find = NULL, *ins = NULL, *sum = NULL;
	uint8_t(*names)[PB_STORE_NAME_LEN] = NULL;
	int64_t *ids = NULL;
	size_t n, i;
	int rc;

	*counted = 0;
	*bytes = 0;
	if (nrefs == 0)
		return 0;
	names = malloc(nrefs * sizeof(*names));
	ids = malloc(nrefs * sizeof(*ids));
	if (names == NULL || ids == NULL) {
		rc = PB_ENOMEM;
		goto out;
	}
	memcpy(names, refs, nrefs * sizeof(*names));
	n = sort_unique(names, nrefs);
	if ((rc = prep(db, "SELECT id FROM chunks WHERE ns=?1 AND name=?2", &find)) < 0 ||
	    (rc = prep(db, "INSERT INTO snap_refs(snap, chunk) VALUES(?1, ?2)", &ins)) < 0 ||
	    (rc = prep(db, "SELECT COALESCE(SUM(c.len), 0) FROM snap_refs r JOIN chunks c ON c.id = r.chunk"
			   " WHERE r.snap=?1", &sum)) < 0)
		goto out;
	sqlite3_bind_int64(find, 1, ns->id);
	for (i = 0; i < n; i++) {
		sqlite3_bind_blob(find, 2, names[i], PB_STORE_NAME_LEN, SQLITE_STATIC);
		rc = sqlite3_step(find);
		if (rc != SQLITE_ROW) {
			rc = rc == SQLITE_DONE ? PB_ESTORE_NOCHUNK : db_err(db, rc);
			goto out;
		}
		ids[i] = sqlite3_column_int64(find, 0);
		sqlite3_reset(find);
	}
	/* Distinct names are distinct chunks (UNIQUE(ns, name)). */
	qsort(ids, n, sizeof(*ids), cmp_i64);
	sqlite3_bind_int64(ins, 1, row);
	for (i = 0; i < n; i++) {
		sqlite3_bind_int64(ins, 2, ids[i]);
		rc = sqlite3_step(ins);
		if (rc != SQLITE_DONE) {
			rc = db_err(db, rc);
			goto out;
		}
		sqlite3_reset(ins);
	}
	sqlite3_bind_int64(sum, 1, row);
	rc = sqlite3_step(sum);
	if (rc != SQLITE_ROW) {
		rc = db_err(db, rc);
		goto out;
	}
	*counted = (int64_t)n;
	*bytes = sqlite3_column_int64(sum, 0);
	rc = 0;
out:
	sqlite3_finalize(find);
	sqlite3_finalize(ins);
	sqlite3_finalize(sum);
	free(names);
	free(ids);
	return rc;
}

int pb_store_snapshot_put(pb_store_ns_t *ns, uint64_t snap_id, const uint8_t (*refs)[PB_STORE_NAME_LEN],
			  size_t nrefs, const uint8_t *blob, size_t len)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int64_t row, counted = 0, bytes = 0;
	int rc;

	if (ns == NULL || (blob == NULL && len > 0) || (refs == NULL && nrefs > 0))
		return PB_EINVAL;
	if (len > PB_STORE_SNAPSHOT_MAX || nrefs > PB_STORE_SNAPSHOT_REFS_MAX)
		return PB_ETOOBIG;
	if (ns->read_only)
		return PB_ESTATE;
	if (ns->store->uncertain)
		return PB_EIO;
	db = ns->store->db;
	rc = exec(db, "BEGIN IMMEDIATE");
	if (rc < 0)
		return rc;
	rc = prep(db, "SELECT blob FROM snapshots WHERE ns=?1 AND snap=?2", &st);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, (int64_t)snap_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		/* Already recorded: the same blob again is a retried commit
		 * whose receipt was lost. */
		bool same = (size_t)sqlite3_column_bytes(st, 0) == len &&
			    (len == 0 || memcmp(sqlite3_column_blob(st, 0), blob, len) == 0);

		rc = same ? 0 : PB_EEXISTS;
		goto out_rollback;
	}
	if (rc != SQLITE_DONE) {
		rc = db_err(db, rc);
		goto out_rollback;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (ns->quota != 0) {
		uint64_t usage;

		if ((rc = pb_store_ns_usage(ns, &usage)) < 0 ||
		    (rc = quota_check(ns, usage, len + (uint64_t)nrefs * PB_STORE_REF_COST)) < 0)
			goto out_rollback;
	}
	rc = prep(db, "INSERT INTO snapshots(ns, snap, time, blob) VALUES(?1, ?2, ?3, ?4)", &st);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, (int64_t)snap_id);
	sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
	sqlite3_bind_blob(st, 4, len > 0 ? (const void *)blob : (const void *)"", (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		rc = db_err(db, rc);
		goto out_rollback;
	}
	row = sqlite3_last_insert_rowid(db);
	if ((rc = refs_insert(ns, row, refs, nrefs, &counted, &bytes)) < 0)
		goto out_rollback;
	sqlite3_finalize(st);
	st = NULL;
	rc = prep(db, "INSERT INTO snap_stats(snap, nrefs, size) VALUES(?1, ?2, ?3)", &st);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, row);
	sqlite3_bind_int64(st, 2, counted);
	sqlite3_bind_int64(st, 3, bytes);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		rc = db_err(db, rc);
		goto out_rollback;
	}
	HOOK("snapshot-checked");
	if ((rc = injected("snapshot")) != 0) {
		rc = sys_err(rc);
		goto out_rollback;
	}
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = db_err(db, rc);
		goto out_rollback;
	}
	HOOK("snapshot-committed");
	rc = 0;
out_rollback:
	sqlite3_finalize(st);
	rollback(db);
	return rc;
}

static int cmp_snapinfo(const void *a, const void *b)
{
	const pb_store_snapinfo_t *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int pb_store_snapshot_list(pb_store_ns_t *ns, pb_store_snapinfo_t **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	pb_store_snapinfo_t *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	int rc;

	if (ns == NULL || out == NULL || n == NULL)
		return PB_EINVAL;
	if (!ns_exists(ns)) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	/* Counted at put (or, for older stores, once at open). */
	rc = prep(ns->store->db,
		  "SELECT s.snap, s.time, COALESCE(t.nrefs, 0), COALESCE(t.size, 0) FROM snapshots s"
		  " LEFT JOIN snap_stats t ON t.snap = s.id WHERE s.ns = ?1",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				rc = PB_ENOMEM;
				goto out_free;
			}
			v = nv;
		}
		v[cnt].id = (uint64_t)sqlite3_column_int64(st, 0);
		v[cnt].time = sqlite3_column_int64(st, 1);
		v[cnt].nrefs = (uint64_t)sqlite3_column_int64(st, 2);
		v[cnt].size = (uint64_t)sqlite3_column_int64(st, 3);
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		rc = db_err(ns->store->db, rc);
		goto out_free;
	}
	sqlite3_finalize(st);
	if (cnt > 1)
		qsort(v, cnt, sizeof(*v), cmp_snapinfo);
	*out = v;
	*n = cnt;
	return 0;
out_free:
	sqlite3_finalize(st);
	free(v);
	return rc;
}

/* Copies column col of the first row of st into a malloc'd buffer. */
static int step_blob(sqlite3 *db, sqlite3_stmt *st, int col, int notfound, uint8_t **out, size_t *len)
{
	int rc = sqlite3_step(st);
	size_t n;
	uint8_t *b;

	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? notfound : db_err(db, rc);
	n = (size_t)sqlite3_column_bytes(st, col);
	b = malloc(n > 0 ? n : 1);
	if (b == NULL)
		return PB_ENOMEM;
	if (n > 0)
		memcpy(b, sqlite3_column_blob(st, col), n);
	*out = b;
	*len = n;
	return 0;
}

int pb_store_snapshot_get(pb_store_ns_t *ns, uint64_t snap_id, uint8_t **blob, size_t *len)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (ns == NULL || blob == NULL || len == NULL)
		return PB_EINVAL;
	if (!ns_exists(ns))
		return PB_ESTORE_NOSNAP;
	rc = prep(ns->store->db, "SELECT blob FROM snapshots WHERE ns=?1 AND snap=?2", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, (int64_t)snap_id);
	rc = step_blob(ns->store->db, st, 0, PB_ESTORE_NOSNAP, blob, len);
	sqlite3_finalize(st);
	return rc;
}

int pb_store_snapshot_refs(pb_store_ns_t *ns, uint64_t snap_id, uint8_t (**names)[PB_STORE_NAME_LEN], size_t *n)
{
	sqlite3_stmt *st = NULL;
	uint8_t(*v)[PB_STORE_NAME_LEN] = NULL, (*nv)[PB_STORE_NAME_LEN];
	size_t cnt = 0, cap = 0;
	int rc;

	if (ns == NULL || names == NULL || n == NULL)
		return PB_EINVAL;
	if (!ns_exists(ns))
		return PB_ESTORE_NOSNAP;
	rc = prep(ns->store->db, "SELECT 1 FROM snapshots WHERE ns=?1 AND snap=?2", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, (int64_t)snap_id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? PB_ESTORE_NOSNAP : db_err(ns->store->db, rc);
	rc = prep(ns->store->db, "SELECT c.name FROM snapshots s JOIN snap_refs r ON r.snap = s.id"
				 " JOIN chunks c ON c.id = r.chunk WHERE s.ns=?1 AND s.snap=?2", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, (int64_t)snap_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != PB_STORE_NAME_LEN)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				rc = PB_ENOMEM;
				goto out_free;
			}
			v = nv;
		}
		memcpy(v[cnt++], sqlite3_column_blob(st, 0), PB_STORE_NAME_LEN);
	}
	if (rc != SQLITE_DONE) {
		rc = db_err(ns->store->db, rc);
		goto out_free;
	}
	sqlite3_finalize(st);
	*names = v;
	*n = cnt;
	return 0;
out_free:
	sqlite3_finalize(st);
	free(v);
	return rc;
}

/* ---- blobs -------------------------------------------------------------------- */

int pb_store_blob_put(pb_store_ns_t *ns, const char *key, const uint8_t *val, size_t len)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (ns == NULL || !id_ok(key) || (val == NULL && len > 0))
		return PB_EINVAL;
	if (len > PB_STORE_BLOB_MAX)
		return PB_ETOOBIG;
	if (ns->read_only)
		return PB_ESTATE;
	if (ns->quota != 0) {
		uint64_t usage;

		if ((rc = pb_store_ns_usage(ns, &usage)) < 0 || (rc = quota_check(ns, usage, len)) < 0)
			return rc;
	}
	rc = prep(ns->store->db, "INSERT OR REPLACE INTO blobs(ns, k, v) VALUES(?1, ?2, ?3)", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, len > 0 ? (const void *)val : (const void *)"", (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(ns->store->db, rc);
	sqlite3_finalize(st);
	return rc;
}

int pb_store_blob_get(pb_store_ns_t *ns, const char *key, uint8_t **val, size_t *len)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (ns == NULL || !id_ok(key) || val == NULL || len == NULL)
		return PB_EINVAL;
	if (!ns_exists(ns))
		return PB_ENOTFOUND;
	rc = prep(ns->store->db, "SELECT v FROM blobs WHERE ns=?1 AND k=?2", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	rc = step_blob(ns->store->db, st, 0, PB_ENOTFOUND, val, len);
	sqlite3_finalize(st);
	return rc;
}

/* ---- prune and GC ------------------------------------------------------------------ */

int pb_store_prune(pb_store_ns_t *ns, const uint64_t *keep, size_t nkeep)
{
	sqlite3 *db;
	sqlite3_stmt *sel = NULL, *del = NULL;
	int deleted = 0, rc;

	if (ns == NULL || (keep == NULL && nkeep > 0))
		return PB_EINVAL;
	if (ns->read_only)
		return PB_ESTATE;
	if (ns->store->uncertain)
		return PB_EIO;
	db = ns->store->db;
	rc = exec(db, "BEGIN IMMEDIATE");
	if (rc < 0)
		return rc;
	rc = prep(db, "SELECT id, snap FROM snapshots WHERE ns=?1", &sel);
	if (rc < 0)
		goto out_rollback;
	rc = prep(db, "DELETE FROM snapshots WHERE id=?1", &del);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(sel, 1, ns->id);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		uint64_t snap = (uint64_t)sqlite3_column_int64(sel, 1);
		bool kept = false;
		size_t i;

		for (i = 0; i < nkeep && !kept; i++)
			kept = keep[i] == snap;
		if (kept)
			continue;
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, sqlite3_column_int64(sel, 0));
		if (sqlite3_step(del) != SQLITE_DONE) {
			rc = db_err(db, sqlite3_errcode(db));
			goto out_rollback;
		}
		deleted++;
	}
	if (rc != SQLITE_DONE) {
		rc = db_err(db, rc);
		goto out_rollback;
	}
	sqlite3_finalize(sel);
	sqlite3_finalize(del);
	sel = del = NULL;
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = db_err(db, rc);
		goto out_rollback;
	}
	return deleted;
out_rollback:
	sqlite3_finalize(sel);
	sqlite3_finalize(del);
	rollback(db);
	return rc;
}

typedef struct keep_set_s {
	const uint64_t *ids;
	size_t n;
} keep_set_t;

/* pb_kept(snap): 1 when snap is among the ids prune keeps. */
static void sql_kept(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const keep_set_t *k = sqlite3_user_data(ctx);
	uint64_t snap = (uint64_t)sqlite3_value_int64(argv[0]);
	int kept = 0;

	(void)argc;
	for (size_t i = 0; i < k->n && !kept; i++)
		kept = k->ids[i] == snap;
	sqlite3_result_int(ctx, kept);
}

int pb_store_prune_plan(pb_store_ns_t *ns, const uint64_t *keep, size_t nkeep, uint64_t *chunks,
			uint64_t *bytes)
{
	keep_set_t k = { keep, nkeep };
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int rc;

	if (ns == NULL || chunks == NULL || bytes == NULL || (keep == NULL && nkeep > 0))
		return PB_EINVAL;
	*chunks = *bytes = 0;
	if (ns->id == 0)
		return 0;
	db = ns->store->db;
	if (sqlite3_create_function(db, "pb_kept", 1, SQLITE_UTF8, &k, sql_kept, NULL, NULL) != SQLITE_OK)
		return PB_ENOMEM;
	/* The chunks only dropped snapshots reference: what GC then frees. */
	rc = prep(db, "SELECT COUNT(*), COALESCE(SUM(c.len), 0) FROM chunks c WHERE c.ns=?1"
		      " AND EXISTS (SELECT 1 FROM snap_refs r JOIN snapshots s ON s.id = r.snap"
		      "  WHERE r.chunk = c.id AND NOT pb_kept(s.snap))"
		      " AND NOT EXISTS (SELECT 1 FROM snap_refs r JOIN snapshots s ON s.id = r.snap"
		      "  WHERE r.chunk = c.id AND pb_kept(s.snap))", &st);
	if (rc == 0) {
		sqlite3_bind_int64(st, 1, ns->id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*chunks = (uint64_t)sqlite3_column_int64(st, 0);
			*bytes = (uint64_t)sqlite3_column_int64(st, 1);
			rc = 0;
		} else {
			rc = db_err(db, rc);
		}
		sqlite3_finalize(st);
	}
	(void)sqlite3_create_function(db, "pb_kept", 1, SQLITE_UTF8, NULL, NULL, NULL, NULL);
	return rc;
}

static int snap_newest_first(const void *a, const void *b)
{
	const pb_store_snapinfo_t *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? 1 : -1;
	return x->id < y->id ? 1 : (x->id > y->id ? -1 : 0);
}

/* The day, ISO week or month (local time) a snapshot falls in. */
static long keep_bucket(int64_t t, char unit)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[16];

	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	if (unit == 'd')
		return (tm.tm_year + 1900L) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
	if (unit == 'm')
		return (tm.tm_year + 1900L) * 100 + tm.tm_mon + 1;
	if (strftime(buf, sizeof(buf), "%G%V", &tm) == 0)
		return 0;
	return strtol(buf, NULL, 10);
}

/* Marks the newest snapshot of each of the last count buckets that have
 * one; snaps are newest first. */
static void keep_buckets(const pb_store_snapinfo_t *snaps, size_t n, bool *keep, unsigned count, char unit)
{
	long last = -1;

	for (size_t i = 0; i < n && count > 0; i++) {
		long b = keep_bucket(snaps[i].time, unit);

		if (b == last)
			continue;
		last = b;
		keep[i] = true;
		count--;
	}
}

void pb_store_prune_result_free(pb_store_prune_result_t *res)
{
	if (res == NULL)
		return;
	free(res->snaps);
	free(res->kept);
	memset(res, 0, sizeof(*res));
}

int pb_store_prune_keep(pb_store_ns_t *ns, const pb_store_keep_t *policy, bool dry_run, pb_store_prune_result_t *res)
{
	uint64_t *ids = NULL;
	size_t k = 0;
	int rc;

	if (ns == NULL || policy == NULL || res == NULL)
		return PB_EINVAL;
	memset(res, 0, sizeof(*res));
	if ((rc = pb_store_snapshot_list(ns, &res->snaps, &res->n)) != 0 || res->n == 0)
		return rc;
	res->kept = calloc(res->n, sizeof(*res->kept));
	ids = calloc(res->n, sizeof(*ids));
	if (res->kept == NULL || ids == NULL) {
		free(ids);
		pb_store_prune_result_free(res);
		return PB_ENOMEM;
	}
	qsort(res->snaps, res->n, sizeof(*res->snaps), snap_newest_first);
	/* Snapshots are whole (a backup of some kinds carries the others
	 * forward), so the newest alone restores everything: always kept. */
	res->kept[0] = true;
	for (size_t i = 0; i < res->n && i < policy->last; i++)
		res->kept[i] = true;
	keep_buckets(res->snaps, res->n, res->kept, policy->daily, 'd');
	keep_buckets(res->snaps, res->n, res->kept, policy->weekly, 'w');
	keep_buckets(res->snaps, res->n, res->kept, policy->monthly, 'm');
	for (size_t i = 0; i < res->n; i++)
		if (res->kept[i])
			ids[k++] = res->snaps[i].id;
	res->removed = res->n - k;
	if (dry_run)
		rc = pb_store_prune_plan(ns, ids, k, &res->chunks, &res->bytes);
	else if (k < res->n)
		rc = pb_store_prune(ns, ids, k);
	free(ids);
	if (rc < 0) {
		pb_store_prune_result_free(res);
		return rc;
	}
	if (!dry_run)
		res->removed = (uint64_t)rc;
	return 0;
}

typedef struct gc_pack_s {
	int64_t id, ns;
	uint64_t committed, live_bytes, live;
} gc_pack_t;

/* Rewrites a pack's live records into a new pack, points the index at the
 * copies, and only then removes the old file. */
static int gc_repack(pb_store_t *s, const gc_pack_t *gp, pb_store_gc_report_t *rep)
{
	char opath[PATH_MAX], npath[PATH_MAX], dir[PATH_MAX];
	sqlite3_stmt *sel = NULL, *upd = NULL, *ins = NULL;
	int64_t nid = s->next_pack++;
	uint64_t wr = PB__PACK_HDR_LEN;
	int ofd = -1, nfd = -1, rc;
	uint8_t *buf = NULL;
	bool committed = false, keep_new = false;

	if ((rc = pack_path(s, gp->ns, gp->id, opath, sizeof(opath))) < 0 ||
	    (rc = pack_path(s, gp->ns, nid, npath, sizeof(npath))) < 0 ||
	    (rc = ns_dir_path(s, gp->ns, dir, sizeof(dir))) < 0)
		return rc;
	ofd = open(opath, O_RDONLY | O_CLOEXEC);
	if (ofd < 0)
		return sys_err(errno);
	nfd = open(npath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (nfd < 0) {
		rc = sys_err(errno);
		goto out_close;
	}
	buf = malloc(PB__REC_LEN(PB_STORE_CT_MAX));
	if (buf == NULL) {
		rc = PB_ENOMEM;
		goto out_unlink_new;
	}
	rc = pwrite_all(nfd, PB__PACK_HDR, PB__PACK_HDR_LEN, 0);
	if (rc < 0)
		goto out_unlink_new;
	rc = prep(s->db, "SELECT off, len FROM chunks WHERE pack=?1 ORDER BY off", &sel);
	if (rc < 0)
		goto out_unlink_new;
	sqlite3_bind_int64(sel, 1, gp->id);
	/* The copies first, all of them durable before the index moves. */
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		uint64_t off = (uint64_t)sqlite3_column_int64(sel, 0);
		uint64_t len = (uint64_t)sqlite3_column_int64(sel, 1);
		pb__pack_rec_t rec;

		if (len > PB_STORE_CT_MAX) {
			rc = PB_ESTORE_CORRUPT;
			goto out_unlink_new;
		}
		rc = pread_all(ofd, buf, PB__REC_LEN(len), off);
		if (rc == 0)
			rc = pb__pack_rec_parse(buf, PB__REC_LEN(len), &rec);
		if (rc < 0) {
			/* A damaged record is left where it is for verify to
			 * report; the pack is not rewritten. */
			rc = PB_ESTORE_HASH;
			goto out_unlink_new;
		}
		rc = pwrite_all(nfd, buf, PB__REC_LEN(len), wr);
		if (rc < 0)
			goto out_unlink_new;
		wr += PB__REC_LEN(len);
	}
	if (rc != SQLITE_DONE) {
		rc = db_err(s->db, rc);
		goto out_unlink_new;
	}
	sqlite3_finalize(sel);
	sel = NULL;
	rc = sync_data(nfd);
	if (rc < 0)
		goto out_unlink_new;
	rc = fsync_dir(dir);
	if (rc < 0)
		goto out_unlink_new;
	HOOK("gc-repack-synced");

	rc = exec(s->db, "BEGIN IMMEDIATE");
	if (rc < 0)
		goto out_unlink_new;
	rc = prep(s->db, "INSERT INTO packs(id, ns, committed_len, state) VALUES(?1, ?2, ?3, ?4)", &ins);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(ins, 1, nid);
	sqlite3_bind_int64(ins, 2, gp->ns);
	sqlite3_bind_int64(ins, 3, (int64_t)wr);
	sqlite3_bind_int(ins, 4, PACK_FULL);
	if (sqlite3_step(ins) != SQLITE_DONE) {
		rc = db_err(s->db, sqlite3_errcode(s->db));
		goto out_rollback;
	}
	rc = prep(s->db, "SELECT id, len FROM chunks WHERE pack=?1 ORDER BY off", &sel);
	if (rc < 0)
		goto out_rollback;
	rc = prep(s->db, "UPDATE chunks SET pack=?1, off=?2 WHERE id=?3", &upd);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(sel, 1, gp->id);
	wr = PB__PACK_HDR_LEN;
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		uint64_t len = (uint64_t)sqlite3_column_int64(sel, 1);

		sqlite3_reset(upd);
		sqlite3_bind_int64(upd, 1, nid);
		sqlite3_bind_int64(upd, 2, (int64_t)wr);
		sqlite3_bind_int64(upd, 3, sqlite3_column_int64(sel, 0));
		if (sqlite3_step(upd) != SQLITE_DONE) {
			rc = db_err(s->db, sqlite3_errcode(s->db));
			goto out_rollback;
		}
		wr += PB__REC_LEN(len);
	}
	if (rc != SQLITE_DONE) {
		rc = db_err(s->db, rc);
		goto out_rollback;
	}
	sqlite3_finalize(sel);
	sel = NULL;
	sqlite3_finalize(ins);
	ins = NULL;
	rc = prep(s->db, "DELETE FROM packs WHERE id=?1", &ins);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(ins, 1, gp->id);
	if (sqlite3_step(ins) != SQLITE_DONE) {
		rc = db_err(s->db, sqlite3_errcode(s->db));
		goto out_rollback;
	}
	rc = commit(s);
	if (rc < 0) {
		keep_new = true; /* the copy may be what the index now uses */
		goto out_rollback;
	}
	committed = keep_new = true;
	HOOK("gc-index-committed");
	(void)unlink(opath);
	(void)fsync_dir(dir);
	HOOK("gc-unlink");
	rep->packs_repacked++;
	rep->bytes_freed += gp->committed > wr ? gp->committed - wr : 0;
	rc = 0;
out_rollback:
	if (!committed)
		rollback(s->db);
out_unlink_new:
	if (!keep_new)
		(void)unlink(npath);
out_close:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	sqlite3_finalize(ins);
	free(buf);
	if (nfd >= 0)
		close(nfd);
	close(ofd);
	return rc;
}

int pb_store_gc(pb_store_t *s, int64_t min_age, pb_store_gc_report_t *report)
{
	pb_store_gc_report_t rep = {0};
	pb_store_ns_t *ns;
	sqlite3_stmt *st = NULL;
	gc_pack_t *packs = NULL, *np;
	size_t npacks = 0, cap = 0, i;
	int rc;

	if (s == NULL)
		return PB_EINVAL;
	if (s->read_only)
		return PB_ESTATE;
	if (s->uncertain)
		return PB_EIO;
	for (ns = s->ns_list; ns != NULL; ns = ns->next)
		if (ns->npending > 0)
			return PB_EBUSY;
	/* Namespaces reopen their pack at the next put: GC may move it. */
	for (ns = s->ns_list; ns != NULL; ns = ns->next)
		ns_discard(ns);

	rc = exec(s->db, "BEGIN IMMEDIATE");
	if (rc < 0)
		return rc;
	rc = prep(s->db, "DELETE FROM chunks WHERE added <= ?1 AND NOT EXISTS"
			 " (SELECT 1 FROM snap_refs r WHERE r.chunk = chunks.id)", &st);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, (int64_t)time(NULL) - (min_age > 0 ? min_age : 0));
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = db_err(s->db, sqlite3_errcode(s->db));
		goto out_rollback;
	}
	rep.chunks_removed = (uint64_t)sqlite3_changes(s->db);
	sqlite3_finalize(st);
	st = NULL;
	rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = db_err(s->db, rc);
		goto out_rollback;
	}
	HOOK("gc-index-committed");

	rc = prep(s->db, "SELECT p.id, p.ns, p.committed_len, COUNT(c.id), COALESCE(SUM(c.len), 0)"
			 " FROM packs p LEFT JOIN chunks c ON c.pack = p.id GROUP BY p.id", &st);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (npacks == cap) {
			cap = cap ? cap * 2 : 32;
			np = realloc(packs, cap * sizeof(*np));
			if (np == NULL) {
				rc = PB_ENOMEM;
				goto out_free;
			}
			packs = np;
		}
		np = &packs[npacks++];
		np->id = sqlite3_column_int64(st, 0);
		np->ns = sqlite3_column_int64(st, 1);
		np->committed = (uint64_t)sqlite3_column_int64(st, 2);
		np->live = (uint64_t)sqlite3_column_int64(st, 3);
		/* Record overhead counts as live: it moves with the chunk. */
		np->live_bytes = (uint64_t)sqlite3_column_int64(st, 4) +
				 np->live * (PB__REC_HEAD_LEN + PB__REC_TAIL_LEN);
	}
	if (rc != SQLITE_DONE) {
		rc = db_err(s->db, rc);
		goto out_free;
	}
	sqlite3_finalize(st);
	st = NULL;

	for (i = 0; i < npacks; i++) {
		const gc_pack_t *gp = &packs[i];
		char path[PATH_MAX], dir[PATH_MAX], sql[96];
		int n;

		if (gp->live == 0) {
			n = snprintf(sql, sizeof(sql), "DELETE FROM packs WHERE id=%lld", (long long)gp->id);
			if (n < 0 || (size_t)n >= sizeof(sql)) {
				rc = PB_ETOOBIG;
				goto out_free;
			}
			rc = exec(s->db, sql);
			if (rc < 0)
				goto out_free;
			HOOK("gc-index-committed");
			if (pack_path(s, gp->ns, gp->id, path, sizeof(path)) == 0 && unlink(path) == 0 &&
			    ns_dir_path(s, gp->ns, dir, sizeof(dir)) == 0)
				(void)fsync_dir(dir);
			HOOK("gc-unlink");
			rep.packs_deleted++;
			rep.bytes_freed += gp->committed;
		} else if (gp->live_bytes * 100 < (gp->committed - PB__PACK_HDR_LEN) * REPACK_LIVE_PERCENT) {
			rc = gc_repack(s, gp, &rep);
			if (rc == PB_ESTORE_HASH)
				continue;
			if (rc < 0)
				goto out_free;
		}
	}
	rc = 0;
	if (report != NULL)
		*report = rep;
out_free:
	sqlite3_finalize(st);
	free(packs);
	return rc;
out_rollback:
	sqlite3_finalize(st);
	rollback(s->db);
	return rc;
}

/* ---- verify ------------------------------------------------------------------------- */

typedef struct vrow_s {
	bool valid;
	uint64_t off, len;
	uint8_t name[PB_STORE_NAME_LEN], hash[32];
} vrow_t;

static void vrow_next(sqlite3_stmt *st, vrow_t *r)
{
	r->valid = false;
	if (sqlite3_step(st) != SQLITE_ROW)
		return;
	r->valid = true;
	r->off = (uint64_t)sqlite3_column_int64(st, 0);
	r->len = (uint64_t)sqlite3_column_int64(st, 1);
	memset(r->name, 0, sizeof(r->name));
	memset(r->hash, 0, sizeof(r->hash));
	if (sqlite3_column_bytes(st, 2) == PB_STORE_NAME_LEN)
		memcpy(r->name, sqlite3_column_blob(st, 2), PB_STORE_NAME_LEN);
	if (sqlite3_column_bytes(st, 3) == 32)
		memcpy(r->hash, sqlite3_column_blob(st, 3), 32);
}

/* Walks one pack's records up to its committed length alongside its index
 * rows (both by offset). */
static int verify_pack(pb_store_t *s, int64_t id, int64_t nsid, uint64_t clen, uint8_t *buf,
		       pb_store_verify_report_t *rep, pb_store_progress_cb progress, void *arg,
		       uint64_t *done, uint64_t total)
{
	char path[PATH_MAX];
	uint8_t hdr[PB__PACK_HDR_LEN];
	sqlite3_stmt *st = NULL;
	vrow_t row;
	uint64_t off = PB__PACK_HDR_LEN;
	int fd = -1, rc;

	rc = prep(s->db, "SELECT off, len, name, hash FROM chunks WHERE pack=?1 ORDER BY off", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	vrow_next(st, &row);
	rep->packs++;
	rc = pack_path(s, nsid, id, path, sizeof(path));
	if (rc == 0)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread_all(fd, hdr, sizeof(hdr), 0) < 0 || memcmp(hdr, PB__PACK_HDR, sizeof(hdr)) != 0) {
		rep->bad_records++;
		off = clen; /* unreadable: every row below counts as bad */
	}
	while (off < clen) {
		size_t ct_len;
		pb__pack_rec_t rec;
		int prc;

		if (clen - off < PB__REC_HEAD_LEN || pread_all(fd, buf, PB__REC_HEAD_LEN, off) < 0 ||
		    pb__pack_rec_head_parse(buf, PB__REC_HEAD_LEN, &ct_len) < 0 ||
		    clen - off < PB__REC_LEN(ct_len)) {
			rep->bad_records++;
			break; /* the record boundaries are lost past this point */
		}
		if (pread_all(fd, buf, PB__REC_LEN(ct_len), off) < 0) {
			rep->bad_records++;
			break;
		}
		prc = pb__pack_rec_parse(buf, PB__REC_LEN(ct_len), &rec);
		rep->records++;
		rep->bytes += PB__REC_LEN(ct_len);
		if (prc < 0)
			rep->bad_records++;
		while (row.valid && row.off < off) {
			rep->bad_chunks++;
			vrow_next(st, &row);
		}
		if (row.valid && row.off == off) {
			rep->chunks++;
			if (prc < 0 || row.len != ct_len || sodium_memcmp(row.name, rec.name, PB_STORE_NAME_LEN) != 0 ||
			    sodium_memcmp(row.hash, rec.hash, 32) != 0)
				rep->bad_chunks++;
			vrow_next(st, &row);
		} else if (prc == 0) {
			rep->dead_records++;
		}
		off += PB__REC_LEN(ct_len);
		*done += PB__REC_LEN(ct_len);
		if (progress != NULL)
			progress(arg, *done, total);
	}
	while (row.valid) {
		rep->chunks++;
		rep->bad_chunks++;
		vrow_next(st, &row);
	}
	if (fd >= 0)
		close(fd);
	sqlite3_finalize(st);
	return 0;
}

int pb_store_verify(pb_store_t *s, pb_store_progress_cb progress, void *arg, pb_store_verify_report_t *report)
{
	pb_store_verify_report_t rep = {0};
	sqlite3_stmt *st = NULL;
	uint64_t total = 0, done = 0;
	uint8_t *buf;
	int rc;

	if (s == NULL)
		return PB_EINVAL;
	buf = malloc(PB__REC_LEN(PB_STORE_CT_MAX));
	if (buf == NULL)
		return PB_ENOMEM;
	rc = exec(s->db, "BEGIN");
	if (rc < 0)
		goto out_free;
	rc = prep(s->db, "SELECT COALESCE(SUM(committed_len), 0) FROM packs", &st);
	if (rc < 0)
		goto out_rollback;
	if (sqlite3_step(st) == SQLITE_ROW)
		total = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	rc = prep(s->db, "SELECT id, ns, committed_len FROM packs ORDER BY id", &st);
	if (rc < 0)
		goto out_rollback;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = verify_pack(s, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
				 (uint64_t)sqlite3_column_int64(st, 2), buf, &rep, progress, arg, &done, total);
		if (rc < 0)
			goto out_finalize;
	}
	if (rc != SQLITE_DONE) {
		rc = db_err(s->db, rc);
		goto out_finalize;
	}
	sqlite3_finalize(st);
	/* Rows pointing at packs the index does not list. */
	rc = prep(s->db, "SELECT (SELECT count(*) FROM chunks WHERE pack NOT IN (SELECT id FROM packs)),"
			 " (SELECT count(*) FROM snap_refs r WHERE NOT EXISTS"
			 "  (SELECT 1 FROM chunks c WHERE c.id = r.chunk))", &st);
	if (rc < 0)
		goto out_rollback;
	if (sqlite3_step(st) == SQLITE_ROW) {
		rep.bad_chunks += (uint64_t)sqlite3_column_int64(st, 0);
		rep.chunks += (uint64_t)sqlite3_column_int64(st, 0);
		rep.missing_refs = (uint64_t)sqlite3_column_int64(st, 1);
	}
	rc = (rep.bad_records || rep.bad_chunks || rep.missing_refs) ? PB_ESTORE_CORRUPT : 0;
out_finalize:
	sqlite3_finalize(st);
out_rollback:
	rollback(s->db);
out_free:
	free(buf);
	if (report != NULL)
		*report = rep;
	return rc;
}
