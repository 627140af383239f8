/* The phone's local backup state: for each item, what was last backed up
 * (size, mtime, content hash, chunk names), and which chunk names the host
 * confirmed committed. An unchanged item whose chunks are all confirmed
 * costs nothing; a resumed backup skips confirmed chunks.
 *
 * synchronous=NORMAL in WAL mode: losing the last commits on power loss only
 * makes the phone offer some chunks again, which the host answers from its
 * index; nothing is lost, so the cheaper mode is enough here. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "peerback/error.h"
#include "peerback/store.h"
#include "agent/backup/internal.h"
#include "agent/util/fsutil.h"

/* The statements run once an item are prepared once, at open: preparing
 * them for every item cost more than running them. */
struct pb_backup_state_s {
	sqlite3 *db;
	sqlite3_stmt *is_committed;
	sqlite3_stmt *unchanged;
	sqlite3_stmt *record;
	sqlite3_stmt *item_chunks;
	sqlite3_stmt *touch;
	sqlite3_stmt *file_get, *file_touch, *file_parts, *part_put;
	bool no_files; /* a read-only state from before the files table */
	/* The run began with no committed chunk (a first backup, or one
	 * after a reset): none is looked up while it goes. A chunk it
	 * commits and meets again is offered to the repository, which
	 * answers that it holds it; one lookup a chunk was a read
	 * transaction of its own, with its locks. */
	bool none_committed;
	int64_t gen; /* this backup run's, or the completed one's after done() */
};

/* Files of the device directory as last backed up whole: their stamp
 * (size, mtime, inode, ctime), the generation that last saw them (gen) and
 * the one that recorded their items (rgen), and their items' manifest
 * records (pb__manifest_rec_*) in parts of about FILE_PART bytes. A file
 * whose stamp is unchanged is neither read nor parsed: its records go into
 * the snapshot as they are, one row touched for the whole file. A file row
 * is written only once every chunk its records name is committed, and
 * goes with the committed names on a reset. */
#define FILES_SCHEMA                                                                                                  \
	"CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime INTEGER NOT NULL,"      \
	" ino INTEGER NOT NULL, ctime INTEGER NOT NULL, gen INTEGER NOT NULL, rgen INTEGER NOT NULL,"                  \
	" items INTEGER NOT NULL, bytes INTEGER NOT NULL);"                                                           \
	"CREATE TABLE IF NOT EXISTS fparts(path TEXT NOT NULL, gen INTEGER NOT NULL, part INTEGER NOT NULL,"          \
	" data BLOB NOT NULL, PRIMARY KEY(path, gen, part));"

/* An item row is in the snapshot of generation ?N when it was recorded or
 * touched by it, or when its file was skipped whole by it and the row is
 * the one that file's records came from. */
#define IN_GEN(n)                                                                                                     \
	"(gen=" n " OR EXISTS(SELECT 1 FROM files f WHERE f.path=items.path AND f.gen=" n " AND f.rgen=items.gen))"
/* The statement a..b with the generation test above, or with the plain one
 * on a state that has no files table. */
#define GEN_SQL(st, a, n, b) ((st)->no_files ? a "gen=" n b : a IN_GEN(n) b)

/* Each backup run has a generation; every item it puts in the snapshot is
 * recorded or touched with it. meta holds the last completed run's
 * generation and snapshot id, so that a row with that generation is known
 * to be in that snapshot exactly as recorded (the fast lookup of one item,
 * docs/STORAGE.md). kind, path and seq are what a restore needs to write
 * the item back. */
static const char SCHEMA[] =
	"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS items(id TEXT PRIMARY KEY, size INTEGER NOT NULL,"
	" mtime INTEGER NOT NULL, hash BLOB NOT NULL, chunks BLOB NOT NULL,"
	" kind INTEGER, path TEXT, seq INTEGER, gen INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS committed(name BLOB PRIMARY KEY) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
	FILES_SCHEMA;

/* A state file from before the generations: add the columns (the rows keep
 * NULL and generation 0, so they are never used for a fast lookup until
 * the next backup touches them). */
static int migrate(sqlite3 *db)
{
	static const char *const cols[] = { "kind INTEGER", "path TEXT", "seq INTEGER",
					    "gen INTEGER NOT NULL DEFAULT 0" };
	sqlite3_stmt *q;
	bool has_gen = false;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info('items')", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		if (strcmp((const char *)sqlite3_column_text(q, 0), "gen") == 0)
			has_gen = true;
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return rc;
	for (size_t i = 0; !has_gen && i < sizeof(cols) / sizeof(cols[0]); i++) {
		char sql[128];

		snprintf(sql, sizeof(sql), "ALTER TABLE items ADD COLUMN %s", cols[i]);
		if ((rc = sqlite3_exec(db, sql, NULL, NULL, NULL)) != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

static int db_err(int rc)
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
	default:
		return PB_EIO;
	}
}

/* Allocates the handle and opens the database with flags. */
static int state_new(const char *path, int flags, pb_backup_state_t **out)
{
	pb_backup_state_t *st;
	int rc;

	if (path == NULL || out == NULL)
		return PB_EINVAL;
	if ((rc = pb__private_db(path, (flags & SQLITE_OPEN_CREATE) != 0)) != 0)
		return rc;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return PB_ENOMEM;
	rc = sqlite3_open_v2(path, &st->db, flags, NULL);
	if (rc != SQLITE_OK) {
		rc = st->db != NULL ? db_err(rc) : PB_ENOMEM;
		sqlite3_close(st->db);
		free(st);
		return rc;
	}
	*out = st;
	return 0;
}

static int prepare_files(pb_backup_state_t *st)
{
	int rc = sqlite3_prepare_v2(st->db, "SELECT size, mtime, ino, ctime, rgen, items, bytes FROM files WHERE path=?1",
				    -1, &st->file_get, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(st->db, "UPDATE files SET gen=?2 WHERE path=?1", -1, &st->file_touch, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(st->db, "SELECT data FROM fparts WHERE path=?1 AND gen=?2 AND part<?3 ORDER BY part", -1,
					&st->file_parts, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO fparts(path, gen, part, data)"
						" VALUES(?1, ?2, ?3, ?4)", -1, &st->part_put, NULL);
	return rc;
}

int pb_backup_state_open(const char *path, pb_backup_state_t **out)
{
	pb_backup_state_t *st;
	int rc;

	if ((rc = state_new(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &st)) != 0)
		return rc;
	rc = sqlite3_exec(st->db, SCHEMA, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = migrate(st->db);
	if (rc != SQLITE_OK)
		goto out_close;
	rc = sqlite3_prepare_v2(st->db, "SELECT 1 FROM committed WHERE name=?1", -1, &st->is_committed, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	rc = sqlite3_prepare_v2(st->db, "SELECT size, mtime, hash, chunks FROM items WHERE id=?1", -1,
				&st->unchanged, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	rc = sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO items(id, size, mtime, hash, chunks, kind, path,"
					" seq, gen) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", -1, &st->record, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	rc = sqlite3_prepare_v2(st->db, "UPDATE items SET kind=?2, path=?3, seq=?4, gen=?5 WHERE id=?1", -1,
				&st->touch, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	rc = sqlite3_prepare_v2(st->db, "SELECT chunks FROM items WHERE id=?1", -1, &st->item_chunks, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	if ((rc = prepare_files(st)) != SQLITE_OK)
		goto out_close;
	*out = st;
	return 0;
out_close:
	pb_backup_state_close(st);
	return db_err(rc);
}

int pb_backup_state_open_ro(const char *path, pb_backup_state_t **out)
{
	sqlite3_stmt *q;
	int rc = state_new(path, SQLITE_OPEN_READONLY, out);

	if (rc != 0)
		return rc;
	if (sqlite3_prepare_v2((*out)->db, "SELECT 1 FROM files LIMIT 1", -1, &q, NULL) != SQLITE_OK)
		(*out)->no_files = true;
	sqlite3_finalize(q);
	return 0;
}

void pb_backup_state_close(pb_backup_state_t *st)
{
	if (st == NULL)
		return;
	sqlite3_finalize(st->touch);
	sqlite3_finalize(st->file_get);
	sqlite3_finalize(st->file_touch);
	sqlite3_finalize(st->file_parts);
	sqlite3_finalize(st->part_put);
	sqlite3_finalize(st->item_chunks);
	sqlite3_finalize(st->record);
	sqlite3_finalize(st->unchanged);
	sqlite3_finalize(st->is_committed);
	sqlite3_close(st->db);
	free(st);
}

bool pb_backup_state_is_committed(pb_backup_state_t *st, const uint8_t name[PB_STORE_NAME_LEN])
{
	bool yes;

	if (st == NULL || name == NULL || st->none_committed)
		return false;
	sqlite3_reset(st->is_committed);
	sqlite3_bind_blob(st->is_committed, 1, name, PB_STORE_NAME_LEN, SQLITE_STATIC);
	yes = sqlite3_step(st->is_committed) == SQLITE_ROW;
	sqlite3_reset(st->is_committed);
	return yes;
}

bool pb_backup_state_unchanged(pb_backup_state_t *st, const char *id, uint64_t size, int64_t mtime,
			       const uint8_t hash[32])
{
	sqlite3_stmt *q;
	bool same = false;

	if (st == NULL || id == NULL || hash == NULL)
		return false;
	q = st->unchanged;
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW && (uint64_t)sqlite3_column_int64(q, 0) == size &&
	    sqlite3_column_int64(q, 1) == mtime && sqlite3_column_bytes(q, 2) == 32 &&
	    memcmp(sqlite3_column_blob(q, 2), hash, 32) == 0) {
		const uint8_t *names = sqlite3_column_blob(q, 3);
		size_t n = (size_t)sqlite3_column_bytes(q, 3) / PB_STORE_NAME_LEN, i;

		same = true;
		for (i = 0; i < n && same; i++)
			same = pb_backup_state_is_committed(st, names + i * PB_STORE_NAME_LEN);
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return same;
}

int pb_backup_state_record(pb_backup_state_t *st, const pb_manifest_item_t *item)
{
	sqlite3_stmt *q;
	int rc;

	if (st == NULL || item == NULL || item->id == NULL || (item->chunks == NULL && item->nchunks > 0))
		return PB_EINVAL;
	if (item->nchunks > PB_MANIFEST_ITEM_CHUNKS_MAX)
		return PB_ETOOBIG;
	q = st->record;
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, item->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, (int64_t)item->size);
	sqlite3_bind_int64(q, 3, item->mtime);
	sqlite3_bind_blob(q, 4, item->hash, 32, SQLITE_STATIC);
	sqlite3_bind_blob(q, 5, item->nchunks > 0 ? (const void *)item->chunks : (const void *)"",
			  (int)(item->nchunks * PB_STORE_NAME_LEN), SQLITE_STATIC);
	sqlite3_bind_int64(q, 6, item->kind);
	sqlite3_bind_text(q, 7, item->path != NULL ? item->path : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 8, (int64_t)item->seq);
	sqlite3_bind_int64(q, 9, st->gen);
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

int pb_backup_state_item_chunks(pb_backup_state_t *st, const char *id, uint8_t (**names)[PB_STORE_NAME_LEN],
				size_t *n)
{
	sqlite3_stmt *q;
	size_t bytes;
	int rc;

	if (st == NULL || id == NULL || names == NULL || n == NULL)
		return PB_EINVAL;
	q = st->item_chunks;
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? PB_ENOTFOUND : db_err(rc);
		goto out_reset;
	}
	bytes = (size_t)sqlite3_column_bytes(q, 0);
	*names = malloc(bytes > 0 ? bytes : 1);
	if (*names == NULL) {
		rc = PB_ENOMEM;
		goto out_reset;
	}
	if (bytes > 0)
		memcpy(*names, sqlite3_column_blob(q, 0), bytes);
	*n = bytes / PB_STORE_NAME_LEN;
	rc = 0;
out_reset:
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}

int pb_backup_state_mark_committed(pb_backup_state_t *st, const uint8_t (*names)[PB_STORE_NAME_LEN], size_t n)
{
	sqlite3_stmt *q = NULL;
	size_t i;
	int rc;

	if (st == NULL || (names == NULL && n > 0))
		return PB_EINVAL;
	rc = sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_err(rc);
	rc = sqlite3_prepare_v2(st->db, "INSERT OR IGNORE INTO committed(name) VALUES(?1)", -1, &q, NULL);
	if (rc != SQLITE_OK)
		goto out_rollback;
	for (i = 0; i < n; i++) {
		sqlite3_reset(q);
		sqlite3_bind_blob(q, 1, names[i], PB_STORE_NAME_LEN, SQLITE_STATIC);
		rc = sqlite3_step(q);
		if (rc != SQLITE_DONE)
			goto out_rollback;
	}
	sqlite3_finalize(q);
	rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return 0;
	q = NULL;
out_rollback:
	sqlite3_finalize(q);
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return db_err(rc);
}

int pb_backup_state_begin(pb_backup_state_t *st)
{
	int rc = sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_err(rc);
}

int pb_backup_state_end(pb_backup_state_t *st)
{
	int rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return db_err(rc);
	}
	return 0;
}

int pb_backup_state_lookup(pb_backup_state_t *st, const char *id, uint64_t *size, int64_t *mtime, uint8_t hash[32])
{
	sqlite3_stmt *q = NULL;
	int rc;

	if (st == NULL || id == NULL)
		return PB_EINVAL;
	rc = sqlite3_prepare_v2(st->db, "SELECT size, mtime, hash FROM items WHERE id=?1", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return db_err(rc);
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW || sqlite3_column_bytes(q, 2) != 32) {
		sqlite3_finalize(q);
		return rc == SQLITE_ROW || rc == SQLITE_DONE ? PB_ENOTFOUND : db_err(rc);
	}
	*size = (uint64_t)sqlite3_column_int64(q, 0);
	*mtime = sqlite3_column_int64(q, 1);
	memcpy(hash, sqlite3_column_blob(q, 2), 32);
	sqlite3_finalize(q);
	return 0;
}

int pb_backup_state_touch(pb_backup_state_t *st, const pb_manifest_item_t *item)
{
	sqlite3_stmt *q;
	int rc;

	if (st == NULL || item == NULL || item->id == NULL)
		return PB_EINVAL;
	q = st->touch;
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, item->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, item->kind);
	sqlite3_bind_text(q, 3, item->path != NULL ? item->path : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, (int64_t)item->seq);
	sqlite3_bind_int64(q, 5, st->gen);
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

static int meta_get(pb_backup_state_t *st, const char *k, int64_t *v)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(st->db, "SELECT v FROM meta WHERE k=?1", -1, &q, NULL);

	if (rc != SQLITE_OK)
		return db_err(rc);
	sqlite3_bind_text(q, 1, k, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? PB_ENOTFOUND : db_err(rc);
}

/* Runs one statement with up to two integer parameters. */
static int exec_int(pb_backup_state_t *st, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &q, NULL);

	if (rc != SQLITE_OK)
		return db_err(rc);
	if (sqlite3_bind_parameter_count(q) >= 1)
		sqlite3_bind_int64(q, 1, a);
	if (sqlite3_bind_parameter_count(q) >= 2)
		sqlite3_bind_int64(q, 2, b);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

static int none_committed(pb_backup_state_t *st, bool *none)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(st->db, "SELECT 1 FROM committed LIMIT 1", -1, &q, NULL);

	if (rc != SQLITE_OK)
		return db_err(rc);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	*none = rc == SQLITE_DONE;
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_err(rc);
}

int pb_backup_state_run_begin(pb_backup_state_t *st)
{
	int64_t gen = 0;
	int rc;

	if (st == NULL)
		return PB_EINVAL;
	rc = meta_get(st, "gen", &gen);
	if (rc != 0 && rc != PB_ENOTFOUND)
		return rc;
	st->gen = gen + 1;
	if ((rc = none_committed(st, &st->none_committed)) != 0)
		return rc;
	if ((rc = pb_backup_state_begin(st)) != 0)
		return rc;
	/* Until this run completes, no row is known to be in a snapshot. */
	rc = exec_int(st, "DELETE FROM meta WHERE k IN ('done_gen', 'done_snapshot')", 0, 0);
	if (rc == 0)
		rc = exec_int(st, "INSERT OR REPLACE INTO meta(k, v) VALUES('gen', ?1)", st->gen, 0);
	/* Parts of files an interrupted run never recorded. */
	if (rc == 0)
		rc = exec_int(st, "DELETE FROM fparts WHERE NOT EXISTS(SELECT 1 FROM files f"
				  " WHERE f.path=fparts.path AND f.rgen=fparts.gen)", 0, 0);
	if (rc != 0) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return pb_backup_state_end(st);
}

int pb_backup_state_run_done(pb_backup_state_t *st, uint64_t snapshot)
{
	if (st == NULL)
		return PB_EINVAL;
	st->none_committed = false;
	return exec_int(st, "INSERT OR REPLACE INTO meta(k, v) VALUES('done_gen', ?1), ('done_snapshot', ?2)", st->gen,
			(int64_t)snapshot);
}

int pb_backup_state_done(pb_backup_state_t *st, uint64_t *snapshot)
{
	sqlite3_stmt *q;
	int rc;

	if (st == NULL || snapshot == NULL)
		return PB_EINVAL;
	rc = sqlite3_prepare_v2(st->db, "SELECT g.v, s.v FROM meta g, meta s WHERE g.k='done_gen' AND s.k='done_snapshot'",
				-1, &q, NULL);
	if (rc != SQLITE_OK)
		return db_err(rc);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		st->gen = sqlite3_column_int64(q, 0);
		*snapshot = (uint64_t)sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? PB_ENOTFOUND : db_err(rc);
}

int pb_backup_state_get(pb_backup_state_t *st, const char *id, pb_manifest_item_t *m, char **id_out,
			char **path_out, uint8_t (**names)[PB_STORE_NAME_LEN])
{
	sqlite3_stmt *q;
	size_t bytes;
	int rc;

	if (st == NULL || id == NULL || m == NULL || id_out == NULL || path_out == NULL || names == NULL)
		return PB_EINVAL;
	*id_out = *path_out = NULL;
	*names = NULL;
	rc = sqlite3_prepare_v2(st->db, GEN_SQL(st, "SELECT kind, path, seq, size, mtime, hash, chunks FROM items"
						    " WHERE id=?1 AND kind IS NOT NULL AND ", "?2", ""), -1, &q, NULL);
	if (rc != SQLITE_OK)
		return db_err(rc);
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, st->gen);
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? PB_ENOTFOUND : db_err(rc);
		goto out;
	}
	bytes = (size_t)sqlite3_column_bytes(q, 6);
	if (sqlite3_column_bytes(q, 5) != 32 || bytes % PB_STORE_NAME_LEN != 0 ||
	    bytes / PB_STORE_NAME_LEN > PB_MANIFEST_ITEM_CHUNKS_MAX) {
		rc = PB_ESTORE_CORRUPT;
		goto out;
	}
	*id_out = strdup(id);
	*path_out = strdup(sqlite3_column_text(q, 1) != NULL ? (const char *)sqlite3_column_text(q, 1) : "");
	*names = malloc(bytes ? bytes : 1);
	if (*id_out == NULL || *path_out == NULL || *names == NULL) {
		free(*id_out);
		free(*path_out);
		free(*names);
		*id_out = *path_out = NULL;
		*names = NULL;
		rc = PB_ENOMEM;
		goto out;
	}
	memset(m, 0, sizeof(*m));
	m->kind = (uint32_t)sqlite3_column_int64(q, 0);
	m->seq = (uint64_t)sqlite3_column_int64(q, 2);
	m->size = (uint64_t)sqlite3_column_int64(q, 3);
	m->mtime = sqlite3_column_int64(q, 4);
	memcpy(m->hash, sqlite3_column_blob(q, 5), 32);
	if (bytes)
		memcpy(*names, sqlite3_column_blob(q, 6), bytes);
	m->nchunks = bytes / PB_STORE_NAME_LEN;
	m->id = *id_out;
	m->path = *path_out;
	m->chunks = (const uint8_t(*)[PB_STORE_NAME_LEN]) * names;
	rc = 0;
out:
	sqlite3_finalize(q);
	return rc;
}

bool pb_backup_state_has_children(pb_backup_state_t *st, const char *id)
{
	sqlite3_stmt *q;
	bool yes;

	if (st == NULL || id == NULL)
		return false;
	/* Ids under id are those between "id/" and "id0" ('0' follows '/'). */
	if (sqlite3_prepare_v2(st->db, GEN_SQL(st, "SELECT 1 FROM items WHERE id > ?1 || '/' AND id < ?1 || '0' AND ",
					       "?2", " LIMIT 1"), -1, &q, NULL) != SQLITE_OK)
		return true;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, st->gen);
	yes = sqlite3_step(q) != SQLITE_DONE;
	sqlite3_finalize(q);
	return yes;
}

int pb_backup_state_before(pb_backup_state_t *st, const char *path, uint64_t seq, char **id)
{
	sqlite3_stmt *q;
	int rc;

	*id = NULL;
	if (st == NULL || path == NULL)
		return PB_EINVAL;
	rc = sqlite3_prepare_v2(st->db, GEN_SQL(st, "SELECT id FROM items WHERE path=?1 AND seq<?2 AND ", "?3",
						    " ORDER BY seq DESC LIMIT 1"), -1, &q, NULL);
	if (rc != SQLITE_OK)
		return db_err(rc);
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, (int64_t)seq);
	sqlite3_bind_int64(q, 3, st->gen);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*id = strdup((const char *)sqlite3_column_text(q, 0));
		rc = *id != NULL ? 0 : PB_ENOMEM;
	} else {
		rc = rc == SQLITE_DONE ? PB_ENOTFOUND : db_err(rc);
	}
	sqlite3_finalize(q);
	return rc;
}

/* The newest snapshot this phone completed with a host, kept per host key
 * in meta as "host:<hex of the key>". It is never removed by a new run nor
 * by pb_backup_state_reset, so a host that drops or withholds snapshots
 * cannot make the phone forget what it stored there. */
static void host_meta_key(const uint8_t host_pk[32], char out[5 + 64 + 1])
{
	static const char hex[] = "0123456789abcdef";

	memcpy(out, "host:", 5);
	for (size_t i = 0; i < 32; i++) {
		out[5 + 2 * i] = hex[host_pk[i] >> 4];
		out[5 + 2 * i + 1] = hex[host_pk[i] & 15];
	}
	out[5 + 64] = 0;
}

int pb_backup_state_host_done(pb_backup_state_t *st, const uint8_t host_pk[32], uint64_t *snapshot)
{
	char k[5 + 64 + 1];
	int64_t v = 0;
	int rc;

	if (st == NULL || host_pk == NULL || snapshot == NULL)
		return PB_EINVAL;
	host_meta_key(host_pk, k);
	rc = meta_get(st, k, &v);
	*snapshot = rc == 0 ? (uint64_t)v : 0;
	return rc;
}

int pb_backup_state_set_host_done(pb_backup_state_t *st, const uint8_t host_pk[32], uint64_t snapshot)
{
	char k[5 + 64 + 1];
	sqlite3_stmt *q;
	int rc;

	if (st == NULL || host_pk == NULL)
		return PB_EINVAL;
	host_meta_key(host_pk, k);
	/* Only ever forward: snapshot ids grow with time. */
	rc = sqlite3_prepare_v2(st->db, "INSERT INTO meta(k, v) VALUES(?1, ?2)"
					" ON CONFLICT(k) DO UPDATE SET v=max(v, excluded.v)", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return db_err(rc);
	sqlite3_bind_text(q, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, (int64_t)snapshot);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

int pb_backup_state_reset(pb_backup_state_t *st)
{
	int rc;

	if (st == NULL)
		return PB_EINVAL;
	rc = sqlite3_exec(st->db, "BEGIN; DELETE FROM items; DELETE FROM committed;"
				  " DELETE FROM files; DELETE FROM fparts;"
				  " DELETE FROM meta WHERE k NOT LIKE 'host:%'; COMMIT;", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return db_err(rc);
	}
	return 0;
}

int pb_backup_state_path_items(pb_backup_state_t *st, const char *path, pb_manifest_item_cb cb, void *arg)
{
	sqlite3_stmt *q;
	int rc;

	if (st == NULL || path == NULL || cb == NULL)
		return PB_EINVAL;
	/* The newest generation that saw the file: its items as last backed
	 * up. Rows of items removed from the file earlier keep older ones. */
	rc = sqlite3_prepare_v2(st->db, "SELECT id, kind, seq, size, mtime, hash, chunks FROM items"
					" WHERE path=?1 AND kind IS NOT NULL AND"
					" gen=(SELECT max(gen) FROM items WHERE path=?1 AND kind IS NOT NULL)"
					" ORDER BY seq, id", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return db_err(rc);
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		pb_manifest_item_t m;
		size_t bytes = (size_t)sqlite3_column_bytes(q, 6);

		if (sqlite3_column_bytes(q, 5) != 32 || bytes % PB_STORE_NAME_LEN != 0 ||
		    bytes / PB_STORE_NAME_LEN > PB_MANIFEST_ITEM_CHUNKS_MAX) {
			sqlite3_finalize(q);
			return PB_ESTORE_CORRUPT;
		}
		memset(&m, 0, sizeof(m));
		m.id = (const char *)sqlite3_column_text(q, 0);
		m.kind = (uint32_t)sqlite3_column_int64(q, 1);
		m.path = path;
		m.seq = (uint64_t)sqlite3_column_int64(q, 2);
		m.size = (uint64_t)sqlite3_column_int64(q, 3);
		m.mtime = sqlite3_column_int64(q, 4);
		memcpy(m.hash, sqlite3_column_blob(q, 5), 32);
		m.nchunks = bytes / PB_STORE_NAME_LEN;
		m.chunks = (const uint8_t(*)[PB_STORE_NAME_LEN])sqlite3_column_blob(q, 6);
		if ((rc = cb(arg, &m)) != 0) {
			sqlite3_finalize(q);
			return rc;
		}
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

/* --- Files known whole --------------------------------------------------- */

int pb__state_file_get(pb_backup_state_t *st, const char *path, pb__stamp_t *stamp, int64_t *rgen, uint64_t *items,
		       uint64_t *bytes)
{
	sqlite3_stmt *q = st->file_get;
	int rc;

	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		stamp->size = (uint64_t)sqlite3_column_int64(q, 0);
		stamp->mtime_ns = sqlite3_column_int64(q, 1);
		stamp->ino = (uint64_t)sqlite3_column_int64(q, 2);
		stamp->ctime_ns = sqlite3_column_int64(q, 3);
		*rgen = sqlite3_column_int64(q, 4);
		*items = (uint64_t)sqlite3_column_int64(q, 5);
		*bytes = (uint64_t)sqlite3_column_int64(q, 6);
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? PB_ENOTFOUND : db_err(rc);
}

static int file_parts(sqlite3_stmt *q, const char *path, int64_t rgen,
		      int (*cb)(void *arg, const uint8_t *data, size_t len), void *arg)
{
	int rc;

	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, rgen);
	sqlite3_bind_int64(q, 3, PB__PART_DIGESTS);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int n = sqlite3_column_bytes(q, 0);
		const uint8_t *data = sqlite3_column_blob(q, 0);

		if ((rc = cb(arg, data != NULL ? data : (const uint8_t *)"", (size_t)n)) != 0)
			break;
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (rc == SQLITE_DONE)
		return 0;
	return rc < 0 || rc > 255 ? rc : db_err(rc);
}

int pb__state_file_parts(pb_backup_state_t *st, const char *path, int64_t rgen,
			 int (*cb)(void *arg, const uint8_t *data, size_t len), void *arg)
{
	return file_parts(st->file_parts, path, rgen, cb, arg);
}

int pb__state_file_digests(pb_backup_state_t *st, const char *path, int64_t rgen,
			   int (*cb)(void *arg, const uint8_t *data, size_t len), void *arg)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(st->db, "SELECT data FROM fparts WHERE path=?1 AND gen=?2 AND part>=?3 ORDER BY part",
				    -1, &q, NULL);

	if (rc != SQLITE_OK)
		return db_err(rc);
	rc = file_parts(q, path, rgen, cb, arg);
	sqlite3_finalize(q);
	return rc;
}

int pb__state_file_part_put(pb_backup_state_t *st, const char *path, uint32_t part, const uint8_t *data, size_t len)
{
	sqlite3_stmt *q = st->part_put;
	int rc;

	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, st->gen);
	sqlite3_bind_int64(q, 3, part);
	sqlite3_bind_blob(q, 4, len > 0 ? (const void *)data : (const void *)"", (int)len, SQLITE_STATIC);
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

int pb__state_file_done(pb_backup_state_t *st, const char *path, const pb__stamp_t *stamp, uint64_t items,
			uint64_t bytes)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO files(path, size, mtime, ino, ctime, gen, rgen,"
					    " items, bytes) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)", -1, &q, NULL);

	if (rc != SQLITE_OK)
		return db_err(rc);
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, (int64_t)stamp->size);
	sqlite3_bind_int64(q, 3, stamp->mtime_ns);
	sqlite3_bind_int64(q, 4, (int64_t)stamp->ino);
	sqlite3_bind_int64(q, 5, stamp->ctime_ns);
	sqlite3_bind_int64(q, 6, st->gen);
	sqlite3_bind_int64(q, 7, (int64_t)items);
	sqlite3_bind_int64(q, 8, (int64_t)bytes);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return db_err(rc);
	if ((rc = sqlite3_prepare_v2(st->db, "DELETE FROM fparts WHERE path=?1 AND gen<>?2", -1, &q, NULL)) != SQLITE_OK)
		return db_err(rc);
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, st->gen);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

int pb__state_file_touch(pb_backup_state_t *st, const char *path)
{
	sqlite3_stmt *q = st->file_touch;
	int rc;

	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, st->gen);
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

int pb__state_item_get(pb_backup_state_t *st, const char *id, uint64_t *size, int64_t *mtime, uint8_t hash[32],
		       uint8_t **names, size_t *cap, size_t *n)
{
	sqlite3_stmt *q = st->unchanged;
	size_t bytes;
	int rc;

	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? PB_ENOTFOUND : db_err(rc);
		goto out;
	}
	bytes = (size_t)sqlite3_column_bytes(q, 3);
	if (sqlite3_column_bytes(q, 2) != 32 || bytes % PB_STORE_NAME_LEN != 0) {
		rc = PB_ENOTFOUND; /* not usable: backed up again */
		goto out;
	}
	if (bytes > *cap) {
		uint8_t *nb = realloc(*names, bytes);

		if (nb == NULL) {
			rc = PB_ENOMEM;
			goto out;
		}
		*names = nb;
		*cap = bytes;
	}
	*size = (uint64_t)sqlite3_column_int64(q, 0);
	*mtime = sqlite3_column_int64(q, 1);
	memcpy(hash, sqlite3_column_blob(q, 2), 32);
	if (bytes > 0)
		memcpy(*names, sqlite3_column_blob(q, 3), bytes);
	*n = bytes / PB_STORE_NAME_LEN;
	rc = 0;
out:
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}

int pb__state_files_prune(pb_backup_state_t *st)
{
	int rc = exec_int(st, "DELETE FROM files WHERE gen<>?1", st->gen, 0);

	if (rc == 0)
		rc = exec_int(st, "DELETE FROM fparts WHERE NOT EXISTS(SELECT 1 FROM files f"
				  " WHERE f.path=fparts.path AND f.rgen=fparts.gen)", 0, 0);
	return rc;
}
