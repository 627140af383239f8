/* Private to the host store's files (agent/store/store*.c): its handles,
 * the namespace's write batch, and the helpers its files share. The
 * record format and the test hooks are in internal.h. */
#ifndef PB_STORE_PRIV_H
#define PB_STORE_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "agent/store/internal.h"
#include "agent/util/testhook.h"

#define HOOK(point)                                                            \
	do {                                                                   \
		pb__test_point(point);                                         \
		if (pb__store_test_hook != NULL)                               \
			pb__store_test_hook(point);                            \
	} while (0)

#define PACK_OPEN 0
#define PACK_FULL 1


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
	uint64_t wb_off;         /* bytes from here on not yet handed to the disk (write_back in store-write.c) */
	/* The batch: puts since the last flush, and a set over their names. */
	pending_t *pending;
	size_t npending, cap;
	uint32_t *set; /* indexes + 1 into pending; 0 is empty */
	size_t set_cap;
	int auto_flushed;
	sqlite3_stmt *lookup; /* is a name committed in this namespace? */
};

/* Packs the read path keeps open. */
#define PB__PACK_FDS 8

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
	/* Read side: packs kept open between reads (a small restore asks for
	 * one chunk a request, and an open() a chunk cost as much as the
	 * read), least recently used first out. An entry is closed before its
	 * pack file is unlinked (gc, repack, discard, recovery), so a pack id
	 * never reads through a stale descriptor. */
	struct pb__pack_fd {
		int64_t ns, pack; /* pack 0: empty */
		int fd;
		uint64_t used;
	} pack_fds[PB__PACK_FDS];
	uint64_t pack_fd_clock;
	/* The chunk lookup of the read path, prepared once (finalized at close). */
	sqlite3_stmt *get_st;
};

/* An errno (or a SQLite result code of db) as a PB_E* code. */
int pb__store_sys_err(int e);
int pb__store_db_err(sqlite3 *db, int rc);
int pb__store_exec(sqlite3 *db, const char *sql);
/* Opens a write transaction in ns's store: PB_ESTATE for a store opened
 * read-only, PB_EIO while an earlier commit's outcome is unknown. */
int pb__store_begin_write(pb_store_ns_t *ns);
/* Prepares sql, counting it in pb__store_prepared. */
int pb__store_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st);
/* An errno the failure-injection tests want at point, or 0. */
int pb__store_injected(const char *point);
/* Commits the open transaction; see pb_store_s.uncertain for failures. */
int pb__store_commit(pb_store_t *s);
void pb__store_rollback(sqlite3 *db);
/* Whole-buffer pwrite/pread at a 64-bit offset; a short file reads as
 * PB_ETRUNCATED. */
int pb__store_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* Writes a then b at off, in one system call when the kernel takes it all. */
int pb__store_pwrite_pair(int fd, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint64_t off);
int pb__store_pread_all(int fd, void *buf, size_t len, uint64_t off);
/* The same into several buffers in a row (iov is changed as it fills). */
struct iovec;
int pb__store_preadv_all(int fd, struct iovec *iov, int n, uint64_t off);
/* fdatasync of a pack, fsync of a directory. */
int pb__store_sync_data(int fd);
int pb__store_fsync_dir(const char *path);
/* The paths of a namespace's pack directory and of one of its packs. */
int pb__store_ns_dir_path(const pb_store_t *s, int64_t ns, char *out, size_t cap);
int pb__store_pack_path(const pb_store_t *s, int64_t ns, int64_t pack, char *out, size_t cap);
/* A descriptor of a pack for reading, from the store's small cache (not
 * closed by the caller); errno-style codes as PB_E*, a missing pack as
 * PB_ESTORE_CORRUPT. */
int pb__store_pack_fd(pb_store_t *s, int64_t ns, int64_t pack, int *fd);
/* Closes the cached descriptor of pack, if any: before its file goes. */
void pb__store_pack_fd_forget(pb_store_t *s, int64_t pack);
/* Closes every cached descriptor and the read path's statement. */
void pb__store_read_close(pb_store_t *s);
/* Creates dir if missing; when it had to, fsyncs its parent so the new
 * entry survives a crash. */
int pb__store_ensure_dir(const char *dir, const char *parent);
/* An account, device or blob key: 1 to PB_STORE_ID_MAX bytes. */
bool pb__store_id_ok(const char *id);
/* True when the handle's namespace exists; a read-only handle opened
 * before its namespace was created finds it here. */
bool pb__store_ns_exists(pb_store_ns_t *ns);
/* PB_ESTORE_QUOTA when adding more bytes to what the namespace holds
 * (usage) would pass its quota. */
int pb__store_quota_check(const pb_store_ns_t *ns, uint64_t usage, uint64_t more);
/* Drops the batch: the pack is cut back to its committed length (a new pack
 * is removed), so nothing unacknowledged lingers. */
void pb__store_ns_discard(pb_store_ns_t *ns);
/* Empties the batch (its records and the set over their names). */
void pb__store_pending_clear(pb_store_ns_t *ns);

#endif
