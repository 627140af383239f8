/* The phone's local backup state: for each item, what was last backed up
 * (size, mtime, content hash, chunk names), and which chunk names the host
 * confirmed committed. An unchanged item whose chunks are all confirmed
 * costs nothing; a resumed backup skips confirmed chunks.
 *
 * synchronous=NORMAL in WAL mode: losing the last commits on power loss only
 * makes the phone offer some chunks again, which the host answers from its
 * index; nothing is lost, so the cheaper mode is enough here. */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "peerback/error.h"
#include "peerback/store.h"

/* The statements run once an item are prepared once, at open: preparing
 * them for every item cost more than running them. */
struct pb_backup_state_s {
	sqlite3 *db;
	sqlite3_stmt *is_committed;
	sqlite3_stmt *unchanged;
	sqlite3_stmt *record;
	sqlite3_stmt *item_chunks;
};

static const char SCHEMA[] =
	"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS items(id TEXT PRIMARY KEY, size INTEGER NOT NULL,"
	" mtime INTEGER NOT NULL, hash BLOB NOT NULL, chunks BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS committed(name BLOB PRIMARY KEY) WITHOUT ROWID;";

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

int pb_backup_state_open(const char *path, pb_backup_state_t **out)
{
	pb_backup_state_t *st;
	int rc;

	if (path == NULL || out == NULL)
		return PB_EINVAL;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return PB_ENOMEM;
	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	rc = sqlite3_exec(st->db, SCHEMA, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	rc = sqlite3_prepare_v2(st->db, "SELECT 1 FROM committed WHERE name=?1", -1, &st->is_committed, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	rc = sqlite3_prepare_v2(st->db, "SELECT size, mtime, hash, chunks FROM items WHERE id=?1", -1,
				&st->unchanged, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	rc = sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO items(id, size, mtime, hash, chunks)"
					" VALUES(?1, ?2, ?3, ?4, ?5)", -1, &st->record, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	rc = sqlite3_prepare_v2(st->db, "SELECT chunks FROM items WHERE id=?1", -1, &st->item_chunks, NULL);
	if (rc != SQLITE_OK)
		goto out_close;
	*out = st;
	return 0;
out_close:
	rc = st->db != NULL ? db_err(rc) : PB_ENOMEM;
	sqlite3_finalize(st->item_chunks);
	sqlite3_finalize(st->record);
	sqlite3_finalize(st->unchanged);
	sqlite3_finalize(st->is_committed);
	sqlite3_close(st->db);
	free(st);
	return rc;
}

void pb_backup_state_close(pb_backup_state_t *st)
{
	if (st == NULL)
		return;
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

	if (st == NULL || name == NULL)
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
