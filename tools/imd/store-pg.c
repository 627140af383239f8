/* The account service's PostgreSQL store: any number of peerback-imd
 * instances share one database. Every decision that must hold across
 * instances is one statement, or one transaction holding the row's lock:
 * a session gives one ticket (UPDATE ... WHERE ticketed = 0), a device id
 * and each key are bound once (primary key and unique constraints), failed
 * attempts are counted in a table (an upsert), links are written both
 * directions in one statement. The schema is created and migrated here,
 * under an advisory lock, its version kept in schema_version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "peerback.h"
#include "store-pg.h"

typedef struct {
	pb_imd_store_t base;
	PGconn *conn;
	char *url;
} pg_store_t;

/* Migrations, in order: migration i brings the schema to version i + 1.
 * Never edit one that has shipped; append. */
static const char *const migrations[] = {
	"CREATE TABLE accounts(id TEXT PRIMARY KEY, pwhash TEXT NOT NULL, created BIGINT NOT NULL);"
	"CREATE TABLE links(a TEXT NOT NULL REFERENCES accounts(id), b TEXT NOT NULL REFERENCES accounts(id),"
	" PRIMARY KEY(a, b));"
	"CREATE TABLE sessions(id BYTEA PRIMARY KEY, account TEXT NOT NULL, host_device BYTEA NOT NULL,"
	" not_after BIGINT NOT NULL, ticketed BOOLEAN NOT NULL DEFAULT FALSE);"
	"CREATE TABLE tickets(id BYTEA PRIMARY KEY, session BYTEA NOT NULL UNIQUE REFERENCES sessions(id),"
	" phone_device BYTEA NOT NULL, issued BIGINT NOT NULL);"
	"CREATE TABLE devices(id BYTEA PRIMARY KEY, sign_pk BYTEA NOT NULL UNIQUE, static_pk BYTEA NOT NULL UNIQUE,"
	" account TEXT NOT NULL, first_login BIGINT NOT NULL);"
	"CREATE TABLE failures(source BYTEA PRIMARY KEY, since BIGINT NOT NULL, count INTEGER NOT NULL);",
};
#define PG_SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* Any key: all instances of every version take the same lock. */
#define MIGRATION_LOCK 0x70627d01

static PGconn *conn_of(pb_imd_store_t *s)
{
	return ((pg_store_t *)s)->conn;
}

/* A dropped connection (a restarted server) is opened again once. */
static void reconnect(pb_imd_store_t *s)
{
	if (PQstatus(conn_of(s)) != CONNECTION_OK)
		PQreset(conn_of(s));
}

static const char *state_of(const PGresult *r)
{
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	return st != NULL ? st : "";
}

static int res_err(const PGresult *r)
{
	const char *st = state_of(r);

	if (strcmp(st, "23505") == 0)
		return PB_EEXISTS; /* unique_violation */
	if (strncmp(st, "40", 2) == 0 || strcmp(st, "55P03") == 0)
		return PB_EBUSY; /* serialization, deadlock, lock */
	if (strcmp(st, "53100") == 0)
		return PB_ENOSPACE; /* disk_full */
	return PB_EIO;
}

/* Says on stderr why the database refused, for the operator: the server's
 * message names the statement's problem, never a parameter's value. */
static void report(pb_imd_store_t *s, const PGresult *r)
{
	const char *m = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	fprintf(stderr, "peerback-imd: PostgreSQL: %s\n", m != NULL ? m : PQerrorMessage(conn_of(s)));
}

/* Runs sql with text (-1 length) or binary (length >= 0) parameters;
 * results in text. *out is PQclear'ed by the caller. */
static int exec_params(pb_imd_store_t *s, const char *sql, int n, const char *const *vals, const int *lens,
		       PGresult **out)
{
	int formats[8];
	PGresult *r;
	ExecStatusType st;

	for (int i = 0; i < n; i++)
		formats[i] = lens != NULL && lens[i] >= 0 ? 1 : 0;
	reconnect(s);
	r = PQexecParams(conn_of(s), sql, n, NULL, vals, lens, formats, 0);
	st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		int rc = r != NULL ? res_err(r) : PB_EIO;
		if (rc != PB_EEXISTS)
			report(s, r);
		PQclear(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* Statements without parameters; several may be given at once. */
static int exec_simple(pb_imd_store_t *s, const char *sql)
{
	PGresult *r;
	ExecStatusType st;
	int rc = 0;

	reconnect(s);
	r = PQexec(conn_of(s), sql);
	st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		rc = r != NULL ? res_err(r) : PB_EIO;
		report(s, r);
	}
	PQclear(r);
	return rc;
}

static void u64_text(uint64_t v, char buf[24])
{
	snprintf(buf, 24, "%llu", (unsigned long long)v);
}

static int p_add_account(pb_imd_store_t *s, const char *id, const char *pwhash, uint64_t now)
{
	char t[24];
	const char *v[3] = { id, pwhash, t };
	PGresult *r;
	int rc;

	u64_text(now, t);
	rc = exec_params(s, "INSERT INTO accounts(id, pwhash, created) VALUES($1, $2, $3)", 3, v, NULL, &r);
	if (rc == 0)
		PQclear(r);
	return rc;
}

static int p_pwhash(pb_imd_store_t *s, const char *id, char out[PB_IMD_PWHASH_LEN])
{
	const char *v[1] = { id };
	PGresult *r;
	int rc;

	out[0] = 0;
	if ((rc = exec_params(s, "SELECT pwhash FROM accounts WHERE id = $1", 1, v, NULL, &r)) != 0)
		return rc;
	rc = PB_ENOTFOUND;
	if (PQntuples(r) == 1) {
		const char *h = PQgetvalue(r, 0, 0);
		size_t n = strlen(h);

		rc = PB_ESTORE_CORRUPT;
		if (n > 0 && n < PB_IMD_PWHASH_LEN) {
			memcpy(out, h, n + 1);
			rc = 0;
		}
	}
	PQclear(r);
	return rc;
}

static int p_account_exists(pb_imd_store_t *s, const char *id, bool *exists)
{
	const char *v[1] = { id };
	PGresult *r;
	int rc;

	*exists = false;
	if ((rc = exec_params(s, "SELECT 1 FROM accounts WHERE id = $1", 1, v, NULL, &r)) != 0)
		return rc;
	*exists = PQntuples(r) == 1;
	PQclear(r);
	return 0;
}

static int p_link(pb_imd_store_t *s, const char *a, const char *b)
{
	const char *v[2] = { a, b };
	PGresult *r;
	int rc;

	rc = exec_params(s, "INSERT INTO links(a, b) VALUES($1, $2), ($2, $1) ON CONFLICT DO NOTHING", 2, v, NULL,
			 &r);
	if (rc == 0)
		PQclear(r);
	return rc;
}

static int p_unlink(pb_imd_store_t *s, const char *a, const char *b)
{
	const char *v[2] = { a, b };
	PGresult *r;
	int rc;

	rc = exec_params(s, "DELETE FROM links WHERE (a = $1 AND b = $2) OR (a = $2 AND b = $1)", 2, v, NULL, &r);
	if (rc != 0)
		return rc;
	rc = atoi(PQcmdTuples(r)) > 0 ? 0 : PB_ENOTFOUND;
	PQclear(r);
	return rc;
}

static int p_linked(pb_imd_store_t *s, const char *a, const char *b, bool *linked)
{
	const char *v[2] = { a, b };
	PGresult *r;
	int rc;

	*linked = false;
	if ((rc = exec_params(s, "SELECT 1 FROM links WHERE a = $1 AND b = $2", 2, v, NULL, &r)) != 0)
		return rc;
	*linked = PQntuples(r) == 1;
	PQclear(r);
	return 0;
}

static int p_bind_device(pb_imd_store_t *s, const uint8_t *device_id, size_t id_len, const uint8_t sign_pk[32],
			 const uint8_t static_pk[32], const char *account, uint64_t now)
{
	char t[24];
	const char *v[5] = { (const char *)device_id, (const char *)sign_pk, (const char *)static_pk, account, t };
	int lens[5] = { (int)id_len, 32, 32, -1, -1 };
	PGresult *r;
	int rc;

	u64_text(now, t);
	/* One statement: the row is there afterwards with exactly these keys,
	 * or a constraint names the conflict. Two instances binding the same
	 * id at once serialize on its primary key. */
	rc = exec_params(s,
			 "INSERT INTO devices(id, sign_pk, static_pk, account, first_login) VALUES($1, $2, $3, $4, $5)"
			 " ON CONFLICT (id) DO NOTHING",
			 5, v, lens, &r);
	if (rc == PB_EEXISTS)
		return PB_EACCT_DEVICE_TAKEN; /* a key bound to another id */
	if (rc != 0)
		return rc;
	PQclear(r);
	rc = exec_params(s, "SELECT 1 FROM devices WHERE id = $1 AND sign_pk = $2 AND static_pk = $3", 3, v, lens, &r);
	if (rc != 0)
		return rc;
	rc = PQntuples(r) == 1 ? 0 : PB_EACCT_DEVICE_TAKEN;
	PQclear(r);
	return rc;
}

static int p_register_session(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, const char *account,
			      const uint8_t *host_device, size_t dev_len, uint64_t not_after)
{
	char t[24];
	const char *v[4] = { (const char *)sid, account, (const char *)host_device, t };
	int lens[4] = { (int)sid_len, -1, (int)dev_len, -1 };
	PGresult *r;
	int rc;

	u64_text(not_after, t);
	rc = exec_params(s,
			 "INSERT INTO sessions(id, account, host_device, not_after) VALUES($1, $2, $3, $4)"
			 " ON CONFLICT (id) DO NOTHING",
			 4, v, lens, &r);
	if (rc == 0)
		PQclear(r);
	return rc;
}

static int p_session(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, char **account, uint64_t *not_after,
		     bool *ticketed)
{
	const char *v[1] = { (const char *)sid };
	int lens[1] = { (int)sid_len };
	PGresult *r;
	int rc;

	*account = NULL;
	rc = exec_params(s, "SELECT account, not_after, ticketed FROM sessions WHERE id = $1", 1, v, lens, &r);
	if (rc != 0)
		return rc;
	rc = PB_ENOTFOUND;
	if (PQntuples(r) == 1) {
		*account = strdup(PQgetvalue(r, 0, 0));
		*not_after = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
		*ticketed = PQgetvalue(r, 0, 2)[0] == 't';
		rc = *account != NULL ? 0 : PB_ENOMEM;
	}
	PQclear(r);
	return rc;
}

static int p_take_ticket(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, const uint8_t ticket_id[16],
			 const uint8_t *phone_device, size_t dev_len, uint64_t now)
{
	char t[24];
	const char *v[4] = { (const char *)sid, (const char *)ticket_id, (const char *)phone_device, t };
	int lens[4] = { (int)sid_len, 16, (int)dev_len, -1 };
	PGresult *r;
	int rc;

	u64_text(now, t);
	/* One statement: the UPDATE takes the session row's lock, so of two
	 * instances asked at once, the second sees ticketed already true and
	 * inserts nothing. */
	rc = exec_params(s,
			 "WITH taken AS (UPDATE sessions SET ticketed = TRUE WHERE id = $1 AND NOT ticketed"
			 " RETURNING id)"
			 " INSERT INTO tickets(id, session, phone_device, issued) SELECT $2, id, $3, $4 FROM taken",
			 4, v, lens, &r);
	if (rc == PB_EEXISTS)
		return PB_EACCT_SECRET_USED;
	if (rc != 0)
		return rc;
	rc = atoi(PQcmdTuples(r)) == 1 ? 0 : PB_EACCT_SECRET_USED;
	PQclear(r);
	return rc;
}

static int p_blocked(pb_imd_store_t *s, const uint8_t key[16], uint64_t now, bool *blocked)
{
	char t[24], lim[24], win[24];
	const char *v[4] = { (const char *)key, t, lim, win };
	int lens[4] = { 16, -1, -1, -1 };
	PGresult *r;
	int rc;

	*blocked = false;
	u64_text(now, t);
	u64_text(PB_IMD_FAIL_LIMIT, lim);
	u64_text(PB_IMD_FAIL_WINDOW, win);
	rc = exec_params(s, "SELECT 1 FROM failures WHERE source = $1 AND count >= $3::int AND $2::bigint - since <= $4::bigint",
			 4, v, lens, &r);
	if (rc != 0)
		return rc;
	*blocked = PQntuples(r) == 1;
	PQclear(r);
	return 0;
}

static int p_fail(pb_imd_store_t *s, const uint8_t key[16], uint64_t now)
{
	char t[24], win[24];
	const char *v[3] = { (const char *)key, t, win };
	int lens[3] = { 16, -1, -1 };
	PGresult *r;
	int rc;

	u64_text(now, t);
	u64_text(PB_IMD_FAIL_WINDOW, win);
	/* Counted by the database: every instance adds to the same row. A
	 * window that has passed starts again. */
	rc = exec_params(s,
			 "INSERT INTO failures(source, since, count) VALUES($1, $2::bigint, 1)"
			 " ON CONFLICT (source) DO UPDATE SET"
			 " count = CASE WHEN $2::bigint - failures.since > $3::bigint THEN 1 ELSE failures.count + 1 END,"
			 " since = CASE WHEN $2::bigint - failures.since > $3::bigint THEN $2::bigint ELSE failures.since END",
			 3, v, lens, &r);
	if (rc == 0)
		PQclear(r);
	return rc;
}

static int p_ping(pb_imd_store_t *s)
{
	return exec_simple(s, "SELECT 1");
}

static int p_version(pb_imd_store_t *s)
{
	PGresult *r;
	int v = -1;

	if (exec_params(s, "SELECT version FROM schema_version", 0, NULL, NULL, &r) != 0)
		return -1;
	if (PQntuples(r) == 1)
		v = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static void p_close(pb_imd_store_t *s)
{
	PQfinish(conn_of(s));
	free(((pg_store_t *)s)->url);
	free(s);
}

static const pb_imd_store_ops_t pg_ops = {
	"postgresql",  p_add_account,	   p_pwhash,  p_account_exists, p_link,	   p_unlink, p_linked,
	p_bind_device, p_register_session, p_session, p_take_ticket,	p_blocked, p_fail,   p_ping,
	p_version,     p_close,
};

/* Brings the schema to PG_SCHEMA_VERSION in one transaction, under a lock
 * that instances starting together share. A database newer than this
 * program is refused rather than written to. */
static int migrate(pb_imd_store_t *s)
{
	PGresult *r;
	int rc, have = 0;
	char sql[64];

	if ((rc = exec_simple(s, "BEGIN")) != 0)
		return rc;
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)", MIGRATION_LOCK);
	if ((rc = exec_simple(s, sql)) != 0)
		goto out_rollback;
	if ((rc = exec_simple(s, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)")) != 0)
		goto out_rollback;
	if ((rc = exec_params(s, "SELECT version FROM schema_version", 0, NULL, NULL, &r)) != 0)
		goto out_rollback;
	if (PQntuples(r) == 1)
		have = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (have > PG_SCHEMA_VERSION) {
		fprintf(stderr, "peerback-imd: the database has schema version %d; this program knows up to %d\n",
			have, PG_SCHEMA_VERSION);
		rc = PB_EUNSUPPORTED;
		goto out_rollback;
	}
	for (int i = have; i < PG_SCHEMA_VERSION; i++)
		if ((rc = exec_simple(s, migrations[i])) != 0)
			goto out_rollback;
	if (have != PG_SCHEMA_VERSION) {
		snprintf(sql, sizeof(sql), "%s schema_version VALUES(%d)", have == 0 ? "INSERT INTO" : "DELETE FROM",
			 PG_SCHEMA_VERSION);
		if (have != 0) {
			snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", PG_SCHEMA_VERSION);
		}
		if ((rc = exec_simple(s, sql)) != 0)
			goto out_rollback;
	}
	return exec_simple(s, "COMMIT");

out_rollback:
	(void)exec_simple(s, "ROLLBACK");
	return rc;
}

/* Notices ("already exists, skipping") are not for the operator. */
static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int pb_imd_store_pg_open(const char *url, pb_imd_store_t **out)
{
	pg_store_t *s;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return PB_ENOMEM;
	s->base.ops = &pg_ops;
	s->conn = PQconnectdb(url);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		/* The message names host and reason, never the password. */
		fprintf(stderr, "peerback-imd: PostgreSQL: %s", PQerrorMessage(s->conn));
		rc = PB_EIO;
		goto out_free;
	}
	PQsetNoticeProcessor(s->conn, quiet, NULL);
	if ((rc = migrate(&s->base)) != 0)
		goto out_free;
	*out = &s->base;
	return 0;

out_free:
	PQfinish(s->conn);
	free(s);
	return rc;
}
