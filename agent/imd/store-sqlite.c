/* The account service's SQLite store: one file, one instance. Failed
 * attempts are counted in memory, as only this process serves the file. */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "peerback.h"
#include "agent/imd/store.h"
#include "agent/util/ratelimit.h"

#define SQLITE_SCHEMA_VERSION 1

typedef struct {
	pb_imd_store_t base;
	sqlite3 *db;
	pb_ratelimit_t failures;
} sqlite_store_t;

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS accounts(id TEXT PRIMARY KEY, pwhash TEXT NOT NULL, created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS links(a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY(a, b));"
	"CREATE TABLE IF NOT EXISTS sessions(id BLOB PRIMARY KEY, account TEXT NOT NULL, host_device BLOB NOT NULL,"
	" not_after INTEGER NOT NULL, ticketed INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS tickets(id BLOB PRIMARY KEY, session BLOB NOT NULL, phone_device BLOB NOT NULL,"
	" issued INTEGER NOT NULL);"
	/* A device id belongs to the keys it first logged in with, and a key to
	 * one device id: certificates name one device, whoever knows the
	 * account's password. */
	"CREATE TABLE IF NOT EXISTS devices(id BLOB PRIMARY KEY, sign_pk BLOB NOT NULL UNIQUE,"
	" static_pk BLOB NOT NULL UNIQUE, account TEXT NOT NULL, first_login INTEGER NOT NULL);"
	"PRAGMA user_version=1;";

static sqlite3 *db_of(pb_imd_store_t *s)
{
	return ((sqlite_store_t *)s)->db;
}

static int db_err(int rc)
{
	if (rc == SQLITE_FULL)
		return PB_ENOSPACE;
	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		return PB_EBUSY;
	return PB_EIO;
}

static int prepare(pb_imd_store_t *s, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(db_of(s), sql, -1, st, NULL) == SQLITE_OK ? 0 : PB_EIO;
}

/* Steps a statement that returns no row, and finalizes it. */
static int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

static int s_add_account(pb_imd_store_t *s, const char *id, const char *pwhash, uint64_t now)
{
	sqlite3_stmt *st;
	int rc;

	if (prepare(s, "INSERT INTO accounts(id, pwhash, created) VALUES(?, ?, ?)", &st) != 0)
		return PB_EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pwhash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT)
		return PB_EEXISTS;
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

static int s_pwhash(pb_imd_store_t *s, const char *id, char out[PB_IMD_PWHASH_LEN])
{
	sqlite3_stmt *st;
	int rc = PB_ENOTFOUND;

	out[0] = 0;
	if (prepare(s, "SELECT pwhash FROM accounts WHERE id = ?", &st) != 0)
		return PB_EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(st, 0);
		size_t n = h != NULL ? strlen(h) : 0;

		rc = PB_ESTORE_CORRUPT;
		if (n > 0 && n < PB_IMD_PWHASH_LEN) {
			memcpy(out, h, n + 1);
			rc = 0;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

static int s_account_exists(pb_imd_store_t *s, const char *id, bool *exists)
{
	sqlite3_stmt *st;

	*exists = false;
	if (prepare(s, "SELECT 1 FROM accounts WHERE id = ?", &st) != 0)
		return PB_EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	*exists = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return 0;
}

static int s_link(pb_imd_store_t *s, const char *a, const char *b)
{
	sqlite3_stmt *st;

	if (prepare(s, "INSERT OR IGNORE INTO links(a, b) VALUES(?, ?), (?, ?)", &st) != 0)
		return PB_EIO;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a, -1, SQLITE_STATIC);
	return run(st);
}

static int s_unlink(pb_imd_store_t *s, const char *a, const char *b)
{
	sqlite3_stmt *st;
	int rc;

	if (prepare(s, "DELETE FROM links WHERE (a = ? AND b = ?) OR (a = ? AND b = ?)", &st) != 0)
		return PB_EIO;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a, -1, SQLITE_STATIC);
	if ((rc = run(st)) != 0)
		return rc;
	return sqlite3_changes(db_of(s)) > 0 ? 0 : PB_ENOTFOUND;
}

static int s_linked(pb_imd_store_t *s, const char *a, const char *b, bool *linked)
{
	sqlite3_stmt *st;

	*linked = false;
	if (prepare(s, "SELECT 1 FROM links WHERE a = ? AND b = ?", &st) != 0)
		return PB_EIO;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	*linked = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return 0;
}

static int s_bind_device(pb_imd_store_t *s, const uint8_t *device_id, size_t id_len, const uint8_t sign_pk[32],
			 const uint8_t static_pk[32], const char *account, uint64_t now)
{
	sqlite3 *db = db_of(s);
	sqlite3_stmt *st;
	bool taken;
	int rc;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return PB_EBUSY;
	if (prepare(s,
		    "SELECT 1 FROM devices WHERE (id = ?1 AND (sign_pk != ?2 OR static_pk != ?3))"
		    " OR (id != ?1 AND (sign_pk = ?2 OR static_pk = ?3))",
		    &st) != 0) {
		rc = PB_EIO;
		goto out_rollback;
	}
	sqlite3_bind_blob(st, 1, device_id, (int)id_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, sign_pk, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, static_pk, 32, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	taken = rc == SQLITE_ROW;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		rc = db_err(rc);
		goto out_rollback;
	}
	if (taken) {
		rc = PB_EACCT_DEVICE_TAKEN;
		goto out_rollback;
	}
	if (prepare(s,
		    "INSERT OR IGNORE INTO devices(id, sign_pk, static_pk, account, first_login)"
		    " VALUES(?, ?, ?, ?, ?)",
		    &st) != 0) {
		rc = PB_EIO;
		goto out_rollback;
	}
	sqlite3_bind_blob(st, 1, device_id, (int)id_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, sign_pk, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, static_pk, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)now);
	if ((rc = run(st)) != 0)
		goto out_rollback;
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	return 0;

out_rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int s_register_session(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, const char *account,
			      const uint8_t *host_device, size_t dev_len, uint64_t not_after)
{
	sqlite3_stmt *st;

	if (prepare(s, "INSERT OR IGNORE INTO sessions(id, account, host_device, not_after) VALUES(?, ?, ?, ?)",
		    &st) != 0)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, sid, (int)sid_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, host_device, (int)dev_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)not_after);
	return run(st);
}

static int s_session(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, char **account, uint64_t *not_after,
		     bool *ticketed)
{
	sqlite3_stmt *st;
	int rc = PB_ENOTFOUND;

	*account = NULL;
	if (prepare(s, "SELECT account, not_after, ticketed FROM sessions WHERE id = ?", &st) != 0)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, sid, (int)sid_len, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*account = strdup((const char *)sqlite3_column_text(st, 0));
		*not_after = (uint64_t)sqlite3_column_int64(st, 1);
		*ticketed = sqlite3_column_int(st, 2) != 0;
		rc = *account != NULL ? 0 : PB_ENOMEM;
	}
	sqlite3_finalize(st);
	return rc;
}

static int s_take_ticket(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, const uint8_t ticket_id[16],
			 const uint8_t *phone_device, size_t dev_len, uint64_t now)
{
	sqlite3 *db = db_of(s);
	sqlite3_stmt *st;
	int rc;

	/* Mark the session used and record the ticket in one transaction. */
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return PB_EBUSY;
	if (prepare(s, "UPDATE sessions SET ticketed = 1 WHERE id = ? AND ticketed = 0", &st) != 0) {
		rc = PB_EIO;
		goto out_rollback;
	}
	sqlite3_bind_blob(st, 1, sid, (int)sid_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE || sqlite3_changes(db) != 1) {
		rc = PB_EACCT_SECRET_USED;
		goto out_rollback;
	}
	if (prepare(s, "INSERT INTO tickets(id, session, phone_device, issued) VALUES(?, ?, ?, ?)", &st) != 0) {
		rc = PB_EIO;
		goto out_rollback;
	}
	sqlite3_bind_blob(st, 1, ticket_id, 16, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, sid, (int)sid_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, phone_device, (int)dev_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
	if ((rc = run(st)) != 0)
		goto out_rollback;
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	return 0;

out_rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int s_blocked(pb_imd_store_t *s, const uint8_t key[16], uint64_t now, bool *blocked)
{
	(void)now;
	*blocked = pb__ratelimit_blocked_id(&((sqlite_store_t *)s)->failures, key);
	return 0;
}

static int s_fail(pb_imd_store_t *s, const uint8_t key[16], uint64_t now)
{
	(void)now;
	pb__ratelimit_fail_id(&((sqlite_store_t *)s)->failures, key);
	return 0;
}

static int s_ping(pb_imd_store_t *s)
{
	return sqlite3_exec(db_of(s), "SELECT 1 FROM accounts LIMIT 1", NULL, NULL, NULL) == SQLITE_OK ? 0 : PB_EIO;
}

static int s_version(pb_imd_store_t *s)
{
	(void)s;
	return SQLITE_SCHEMA_VERSION;
}

static void s_close(pb_imd_store_t *s)
{
	sqlite3_close(db_of(s));
	free(s);
}

static const pb_imd_store_ops_t sqlite_ops = {
	"sqlite",	      s_add_account,   s_pwhash,  s_account_exists, s_link, s_unlink, s_linked,
	s_bind_device, s_register_session, s_session, s_take_ticket,    s_blocked, s_fail, s_ping,
	s_version,     s_close,
};

int pb__imd_store_sqlite_open(const char *path, pb_imd_store_t **out)
{
	sqlite_store_t *s;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return PB_ENOMEM;
	s->base.ops = &sqlite_ops;
	pb__ratelimit_init(&s->failures, PB_IMD_FAIL_LIMIT, PB_IMD_FAIL_WINDOW);
	if (sqlite3_open(path, &s->db) != SQLITE_OK)
		goto out_close;
	sqlite3_busy_timeout(s->db, 5000);
	if (sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK)
		goto out_close;
	*out = &s->base;
	return 0;

out_close:
	sqlite3_close(s->db);
	free(s);
	return PB_EIO;
}
