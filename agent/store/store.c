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
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "agent/store/store-priv.h"
#include "agent/util/fsutil.h"
#include "peerback/error.h"

/* Pack files grow past 2 GiB and are written at 64-bit offsets: a 32-bit
 * off_t (armhf without large-file support) would wrap them. */
_Static_assert(sizeof(off_t) == 8, "peerback needs a 64-bit off_t (_FILE_OFFSET_BITS=64)");

void (*pb__store_test_hook)(const char *point);
int (*pb__store_test_fail)(const char *point);
unsigned long pb__store_prepared;

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

int pb__store_sys_err(int e)
{
	if (e == ENOSPC || e == EDQUOT)
		return PB_ENOSPACE;
	return e > 0 ? -e : PB_EIO;
}

int pb__store_db_err(sqlite3 *db, int rc)
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

int pb__store_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : pb__store_db_err(db, rc);
}

int pb__store_begin_write(pb_store_ns_t *ns)
{
	if (ns->read_only)
		return PB_ESTATE;
	if (ns->store->uncertain)
		return PB_EIO;
	return pb__store_exec(ns->store->db, "BEGIN IMMEDIATE");
}

int pb__store_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);

	pb__store_prepared++;
	return rc == SQLITE_OK ? 0 : pb__store_db_err(db, rc);
}

/* An errno the failure-injection tests want at point, or 0. */
int pb__store_injected(const char *point)
{
	return pb__store_test_fail != NULL ? pb__store_test_fail(point) : 0;
}

/* Commits the open transaction; see pb_store_s.uncertain for failures. */
int pb__store_commit(pb_store_t *s)
{
	int e = pb__store_injected("commit");
	int rc;

	if (e != 0) {
		s->uncertain = true;
		return pb__store_sys_err(e);
	}
	rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		s->uncertain = true;
		return pb__store_db_err(s->db, rc);
	}
	return 0;
}

void pb__store_rollback(sqlite3 *db)
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
			return pb__store_sys_err(errno);
		}
		if (w == 0)
			return PB_ENOSPACE;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int pb__store_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	int e = pb__store_injected("write");

	return e != 0 ? pb__store_sys_err(e) : pwrite_raw(fd, buf, len, off);
}

/* Writes a then b at off, in one system call when the kernel takes it all. */
int pb__store_pwrite_pair(int fd, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint64_t off)
{
	struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
	int e = pb__store_injected("write");
	ssize_t w;
	int rc;

	if (e != 0)
		return pb__store_sys_err(e);
	w = pwritev(fd, iov, blen > 0 ? 2 : 1, (off_t)off);
	if (w < 0) {
		if (errno != EINTR)
			return pb__store_sys_err(errno);
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

/* preadv until every buffer is full (PB_ETRUNCATED at the file's end). */
int pb__store_preadv_all(int fd, struct iovec *iov, int n, uint64_t off)
{
	for (;;) {
		ssize_t r;

		while (n > 0 && iov->iov_len == 0) {
			iov++;
			n--;
		}
		if (n == 0)
			return 0;
		r = preadv(fd, iov, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return pb__store_sys_err(errno);
		}
		if (r == 0)
			return PB_ETRUNCATED;
		off += (uint64_t)r;
		while (n > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
}

int pb__store_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { buf, len };

	return pb__store_preadv_all(fd, &iov, 1, off);
}

int pb__store_sync_data(int fd)
{
	int e = pb__store_injected("fsync");

	if (e != 0)
		return pb__store_sys_err(e);
	return fdatasync(fd) < 0 ? pb__store_sys_err(errno) : 0;
}

int pb__store_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return pb__store_sys_err(errno);
	if (fsync(fd) < 0)
		rc = pb__store_sys_err(errno);
	close(fd);
	return rc;
}

int pb__store_ns_dir_path(const pb_store_t *s, int64_t ns, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/packs/%lld", s->dir, (long long)ns);

	return (n < 0 || (size_t)n >= cap) ? PB_ETOOBIG : 0;
}

int pb__store_pack_path(const pb_store_t *s, int64_t ns, int64_t pack, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/packs/%lld/%lld.pack", s->dir, (long long)ns, (long long)pack);

	return (n < 0 || (size_t)n >= cap) ? PB_ETOOBIG : 0;
}

/* ---- packs kept open for reading ---------------------------------------------------------------- */

int pb__store_pack_fd(pb_store_t *s, int64_t ns, int64_t pack, int *fd)
{
	struct pb__pack_fd *e = &s->pack_fds[0];
	char path[PATH_MAX];
	int rc;

	for (size_t i = 0; i < PB__PACK_FDS; i++) {
		struct pb__pack_fd *c = &s->pack_fds[i];

		if (c->pack == pack && c->ns == ns) {
			c->used = ++s->pack_fd_clock;
			*fd = c->fd;
			return 0;
		}
		/* The entry to reuse: an empty one, else the least recent. */
		if (e->pack != 0 && (c->pack == 0 || c->used < e->used))
			e = c;
	}
	if ((rc = pb__store_pack_path(s, ns, pack, path, sizeof(path))) < 0)
		return rc;
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? PB_ESTORE_CORRUPT : pb__store_sys_err(errno);
	if (e->pack != 0)
		close(e->fd);
	e->ns = ns;
	e->pack = pack;
	e->fd = *fd;
	e->used = ++s->pack_fd_clock;
	return 0;
}

void pb__store_pack_fd_forget(pb_store_t *s, int64_t pack)
{
	for (size_t i = 0; i < PB__PACK_FDS; i++) {
		struct pb__pack_fd *c = &s->pack_fds[i];

		if (c->pack == pack) {
			close(c->fd);
			c->pack = 0;
			c->fd = -1;
		}
	}
}

void pb__store_read_close(pb_store_t *s)
{
	for (size_t i = 0; i < PB__PACK_FDS; i++)
		if (s->pack_fds[i].pack != 0)
			pb__store_pack_fd_forget(s, s->pack_fds[i].pack);
	sqlite3_finalize(s->get_st);
	s->get_st = NULL;
}

/* Creates dir if missing; when it had to, fsyncs its parent so the new
 * entry survives a crash. */
int pb__store_ensure_dir(const char *dir, const char *parent)
{
	if (mkdir(dir, 0700) == 0)
		return parent != NULL ? pb__store_fsync_dir(parent) : 0;
	return errno == EEXIST ? 0 : pb__store_sys_err(errno);
}

/* Empties the batch (its records and the set over their names). */
void pb__store_pending_clear(pb_store_ns_t *ns)
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

	rc = pb__store_prep(s->db, "SELECT p.id, p.ns, p.committed_len,"
			 " (SELECT count(*) FROM chunks c WHERE c.pack = p.id) FROM packs p", &st);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0), ns = sqlite3_column_int64(st, 1);
		int64_t clen = sqlite3_column_int64(st, 2), nchunks = sqlite3_column_int64(st, 3);
		struct stat sb;
		int fd;

		if (pb__store_pack_path(s, ns, id, path, sizeof(path)) < 0)
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
					(void)pb__store_exec(s->db, sql);
			}
			continue;
		}
		if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size > (uint64_t)clen) {
			if (ftruncate(fd, clen) < 0 || fdatasync(fd) < 0) {
				rc = pb__store_sys_err(errno);
				close(fd);
				goto out_finalize;
			}
		}
		close(fd);
	}
	rc = rc == SQLITE_DONE ? 0 : pb__store_db_err(s->db, rc);
	if (rc < 0)
		goto out_finalize;
	sqlite3_finalize(st);
	st = NULL;

	/* Pack files with no row: created by a batch, a repack or a GC whose
	 * index transaction never committed, or left after a deletion. */
	rc = pb__store_prep(s->db, "SELECT 1 FROM packs WHERE id=?1 AND ns=?2", &st);
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
		if (pb__store_ns_dir_path(s, ns, path, sizeof(path)) < 0)
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
			pb__store_pack_fd_forget(s, id);
			if (pb__store_pack_path(s, ns, id, fpath, sizeof(fpath)) == 0 && unlink(fpath) == 0)
				removed = true;
		}
		closedir(sub);
		if (removed)
			(void)pb__store_fsync_dir(path);
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
		rc = pb__store_sys_err(errno);
		goto out_free;
	}
	if (snprintf(path, sizeof(path), "%s/lock", dir) >= (int)sizeof(path)) {
		rc = PB_ETOOBIG;
		goto out_free;
	}
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		rc = pb__store_sys_err(errno);
		goto out_free;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? PB_ESTORE_LOCKED : pb__store_sys_err(errno);
		goto out_unlock;
	}
	if (snprintf(path, sizeof(path), "%s/packs", dir) >= (int)sizeof(path)) {
		rc = PB_ETOOBIG;
		goto out_unlock;
	}
	rc = pb__store_ensure_dir(path, dir);
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
		rc = s->db != NULL ? pb__store_db_err(s->db, rc) : PB_ENOMEM;
		goto out_close_db;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* WAL with synchronous=FULL: a commit returns only once the WAL is
	 * fsync'ed, so an acknowledged chunk or snapshot survives power loss
	 * (NORMAL could lose the last commits, i.e. acknowledged data). */
	rc = pb__store_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			 " PRAGMA foreign_keys=ON;");
	if (rc < 0)
		goto out_close_db;
	rc = pb__store_exec(s->db, SCHEMA);
	if (rc < 0)
		goto out_close_db;
	/* Snapshots recorded before snap_stats existed are counted once. */
	rc = pb__store_exec(s->db, "INSERT INTO snap_stats(snap, nrefs, size)"
			 " SELECT s.id, COUNT(c.id), COALESCE(SUM(c.len), 0) FROM snapshots s"
			 " LEFT JOIN snap_refs r ON r.snap = s.id LEFT JOIN chunks c ON c.id = r.chunk"
			 " WHERE NOT EXISTS (SELECT 1 FROM snap_stats t WHERE t.snap = s.id) GROUP BY s.id");
	if (rc < 0)
		goto out_close_db;
	rc = recover(s);
	if (rc < 0)
		goto out_close_db;
	rc = pb__store_prep(s->db, "SELECT COALESCE(MAX(id), 0) + 1 FROM packs", &st);
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
		return errno == ENOENT && !packs_empty(dir) ? PB_ESTORE_CORRUPT : pb__store_sys_err(errno);
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
		rc = s->db != NULL ? pb__store_db_err(s->db, rc) : PB_ENOMEM;
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
	pb__store_read_close(s);
	sqlite3_close(s->db);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->dir);
	free(s);
}

/* ---- namespaces ----------------------------------------------------------- */

bool pb__store_id_ok(const char *id)
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

	rc = pb__store_prep(s->db, "SELECT id FROM ns WHERE account=?1 AND device=?2", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pb__store_db_err(s->db, rc);
	sqlite3_finalize(st);
	return rc;
}

static int ns_new(pb_store_t *s, int64_t id, bool read_only, pb_store_ns_t **out)
{
	pb_store_ns_t *ns = calloc(1, sizeof(*ns));
	int rc;

	if (ns == NULL)
		return PB_ENOMEM;
	rc = pb__store_prep(s->db, "SELECT 1 FROM chunks WHERE ns=?1 AND name=?2", &ns->lookup);
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

	if (s == NULL || out == NULL || !pb__store_id_ok(account) || !pb__store_id_ok(device_id))
		return PB_EINVAL;
	if (s->read_only)
		return PB_ESTATE;
	if ((rc = ns_find(s, account, device_id, &id)) < 0)
		return rc;
	if (id == 0) {
		if (s->uncertain)
			return PB_EIO;
		rc = pb__store_prep(s->db, "INSERT INTO ns(account, device) VALUES(?1, ?2)", &st);
		if (rc < 0)
			return rc;
		sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return pb__store_db_err(s->db, rc);
		id = sqlite3_last_insert_rowid(s->db);
	}
	return ns_new(s, id, false, out);
}

int pb_store_ns_open_ro(pb_store_t *s, const char *account, const char *device_id, pb_store_ns_t **out)
{
	pb_store_ns_t *ns;
	int64_t id;
	int rc;

	if (s == NULL || out == NULL || !pb__store_id_ok(account) || !pb__store_id_ok(device_id))
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
bool pb__store_ns_exists(pb_store_ns_t *ns)
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
	if (!pb__store_ns_exists(ns))
		return 0;
	rc = pb__store_prep(ns->store->db,
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
	rc = rc == SQLITE_ROW ? 0 : pb__store_db_err(ns->store->db, rc);
	sqlite3_finalize(st);
	return rc;
}

/* PB_ESTORE_QUOTA when adding more bytes to what the namespace holds
 * (usage) would pass its quota. */
int pb__store_quota_check(const pb_store_ns_t *ns, uint64_t usage, uint64_t more)
{
	if (ns->quota == 0)
		return 0;
	return usage > ns->quota || more > ns->quota - usage ? PB_ESTORE_QUOTA : 0;
}

/* Drops the batch: the pack is cut back to its committed length (a new pack
 * is removed), so nothing unacknowledged lingers. */
void pb__store_ns_discard(pb_store_ns_t *ns)
{
	char path[PATH_MAX];

	pb__store_pending_clear(ns);
	ns->auto_flushed = 0;
	ns->writing = false;
	if (ns->fd < 0)
		return;
	if (ns->store->uncertain) {
		/* Leave the bytes; the next open cuts them if uncommitted. */
	} else if (ns->pack_new) {
		pb__store_pack_fd_forget(ns->store, ns->pack_id);
		if (pb__store_pack_path(ns->store, ns->id, ns->pack_id, path, sizeof(path)) == 0)
			(void)unlink(path);
	} else {
		(void)ftruncate(ns->fd, (off_t)ns->pack_committed);
	}
	close(ns->fd);
	ns->fd = -1;
	ns->pack_new = false;
}


void pb_store_ns_close(pb_store_ns_t *ns)
{
	pb_store_ns_t **pp;

	if (ns == NULL)
		return;
	pb__store_ns_discard(ns);
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
