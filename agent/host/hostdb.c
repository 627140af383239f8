/* The host's pairing state in SQLite. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/host/hostdb.h"
#include "agent/util/fsutil.h"

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS devices(device_id BLOB PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL,"
	" static_pk BLOB NOT NULL UNIQUE, sign_pk BLOB NOT NULL, paired_at INTEGER NOT NULL,"
	" last_seen INTEGER NOT NULL DEFAULT 0, revoked INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS secrets(session_id BLOB PRIMARY KEY, secret BLOB NOT NULL,"
	" not_after INTEGER NOT NULL, created INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS used_tickets(ticket_id BLOB PRIMARY KEY, used_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS instructions(id INTEGER PRIMARY KEY, device BLOB NOT NULL, op TEXT NOT NULL,"
	" iccid TEXT NOT NULL, peer BLOB, payload BLOB, state TEXT NOT NULL, result TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL, updated INTEGER NOT NULL);"
	/* Each device's latest certificate from the account service, passed on
	 * to a phone asked to seal a virtual SIM to that device. */
	"CREATE TABLE IF NOT EXISTS certificates(device_id BLOB PRIMARY KEY, cert BLOB NOT NULL,"
	" updated INTEGER NOT NULL);"
	/* Storage quotas set by the host's owner; a device without a row has
	 * the default. Kept apart from devices: a pairing renewed in place
	 * keeps its quota. */
	"CREATE TABLE IF NOT EXISTS quotas(device BLOB PRIMARY KEY, bytes INTEGER NOT NULL);";

int pb__hostdb_open(const char *home, pb_hostdb_t *h)
{
	char path[4096];
	int rc;

	memset(h, 0, sizeof(*h));
	if ((rc = pb__path_join(path, sizeof(path), home, "host.db")) != 0)
		return rc;
	/* It holds the live pairing secrets. */
	if ((rc = pb__private_db(path, 1)) != 0)
		return rc;
	if (sqlite3_open(path, &h->db) != SQLITE_OK) {
		sqlite3_close(h->db);
		h->db = NULL;
		return PB_EIO;
	}
	sqlite3_busy_timeout(h->db, 5000);
	if (sqlite3_exec(h->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_close(h->db);
		h->db = NULL;
		return PB_EIO;
	}
	return 0;
}

void pb__hostdb_close(pb_hostdb_t *h)
{
	if (h->db != NULL)
		sqlite3_close(h->db);
	h->db = NULL;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	(void)db;
	if (rc == SQLITE_DONE)
		return 0;
	return rc == SQLITE_FULL ? PB_ENOSPACE : PB_EIO;
}

int pb__hostdb_add_secret(pb_hostdb_t *h, const pb_host_secret_t *s)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(h->db, "INSERT INTO secrets(session_id, secret, not_after, created) VALUES(?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, s->session_id, PB_SESSION_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, s->secret, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)s->not_after);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)pb__now());
	return step_done(h->db, st);
}

int pb__hostdb_recent_secrets(pb_hostdb_t *h, pb_host_secret_t *out, int max)
{
	sqlite3_stmt *st;
	int n = 0;

	if (sqlite3_prepare_v2(h->db,
			       "SELECT session_id, secret, not_after, used FROM secrets WHERE created > ?"
			       " ORDER BY created DESC, rowid DESC LIMIT ?",
			       -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)(pb__now() - 3600));
	sqlite3_bind_int(st, 2, max);
	while (n < max && sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != PB_SESSION_ID_LEN || sqlite3_column_bytes(st, 1) != 32)
			continue;
		memcpy(out[n].session_id, sqlite3_column_blob(st, 0), PB_SESSION_ID_LEN);
		memcpy(out[n].secret, sqlite3_column_blob(st, 1), 32);
		out[n].not_after = (uint64_t)sqlite3_column_int64(st, 2);
		out[n].used = sqlite3_column_int(st, 3) != 0;
		n++;
	}
	sqlite3_finalize(st);
	return n;
}

static void row_to_device(sqlite3_stmt *st, pb_paired_device_t *d)
{
	const char *account = (const char *)sqlite3_column_text(st, 1);
	const char *name = (const char *)sqlite3_column_text(st, 2);

	memset(d, 0, sizeof(*d));
	if (sqlite3_column_bytes(st, 0) == PB_DEVICE_ID_LEN)
		memcpy(d->device_id, sqlite3_column_blob(st, 0), PB_DEVICE_ID_LEN);
	snprintf(d->account, sizeof(d->account), "%s", account != NULL ? account : "");
	snprintf(d->name, sizeof(d->name), "%s", name != NULL ? name : "");
	if (sqlite3_column_bytes(st, 3) == 32)
		memcpy(d->static_pk, sqlite3_column_blob(st, 3), 32);
	if (sqlite3_column_bytes(st, 4) == 32)
		memcpy(d->sign_pk, sqlite3_column_blob(st, 4), 32);
	d->paired_at = (uint64_t)sqlite3_column_int64(st, 5);
	d->last_seen = (uint64_t)sqlite3_column_int64(st, 6);
	d->revoked = sqlite3_column_int(st, 7) != 0;
}

#define DEVICE_COLUMNS "device_id, account, name, static_pk, sign_pk, paired_at, last_seen, revoked"

int pb__hostdb_find_device(pb_hostdb_t *h, const uint8_t static_pk[32], pb_paired_device_t *out)
{
	sqlite3_stmt *st;
	int rc = PB_EACCT_UNKNOWN_DEVICE;

	if (sqlite3_prepare_v2(h->db, "SELECT " DEVICE_COLUMNS " FROM devices WHERE static_pk = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, static_pk, 32, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		row_to_device(st, out);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

bool pb__hostdb_ticket_used(pb_hostdb_t *h, const uint8_t ticket_id[16])
{
	sqlite3_stmt *st;
	bool used = true; /* fail closed */

	if (sqlite3_prepare_v2(h->db, "SELECT 1 FROM used_tickets WHERE ticket_id = ?", -1, &st, NULL) != SQLITE_OK)
		return used;
	sqlite3_bind_blob(st, 1, ticket_id, 16, SQLITE_STATIC);
	used = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return used;
}

/* A pairing may renew the one of the same device (same id, same keys), never
 * give its id or its key to another: that device would then read and write
 * the other's namespace. */
static int pairing_allowed(pb_hostdb_t *h, const pb_paired_device_t *dev)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(h->db,
			       "SELECT 1 FROM devices WHERE (device_id = ?1 AND (static_pk != ?2 OR sign_pk != ?3))"
			       " OR (device_id != ?1 AND static_pk = ?2)",
			       -1, &st, NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, dev->device_id, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, dev->static_pk, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, dev->sign_pk, 32, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return PB_EACCT_DEVICE_TAKEN;
	return rc == SQLITE_DONE ? 0 : PB_EIO;
}

static int put_cert(pb_hostdb_t *h, const uint8_t device_id[PB_DEVICE_ID_LEN], const uint8_t *cert, size_t len)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(h->db, "INSERT OR REPLACE INTO certificates(device_id, cert, updated) VALUES(?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, device_id, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, cert, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)pb__now());
	return step_done(h->db, st);
}

int pb__hostdb_commit_pairing(pb_hostdb_t *h, const pb_paired_device_t *dev, const uint8_t *cert, size_t cert_len,
			      const uint8_t session_id[PB_SESSION_ID_LEN], const uint8_t ticket_id[16])
{
	sqlite3_stmt *st;
	uint64_t now = pb__now();
	int rc;

	if (sqlite3_exec(h->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return PB_EBUSY;
	if ((rc = pairing_allowed(h, dev)) != 0)
		goto out_rollback;
	if (cert_len > 0 && (rc = put_cert(h, dev->device_id, cert, cert_len)) != 0)
		goto out_rollback;
	rc = sqlite3_prepare_v2(h->db, "DELETE FROM devices WHERE device_id = ? OR static_pk = ?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto out_rollback;
	sqlite3_bind_blob(st, 1, dev->device_id, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, dev->static_pk, 32, SQLITE_STATIC);
	if ((rc = step_done(h->db, st)) != 0)
		goto out_rollback;
	rc = sqlite3_prepare_v2(h->db, "INSERT INTO devices(" DEVICE_COLUMNS ") VALUES(?,?,?,?,?,?,?,0)", -1, &st,
				NULL);
	if (rc != SQLITE_OK)
		goto out_rollback;
	sqlite3_bind_blob(st, 1, dev->device_id, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, dev->account, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, dev->name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, dev->static_pk, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, dev->sign_pk, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)now);
	if ((rc = step_done(h->db, st)) != 0)
		goto out_rollback;
	rc = sqlite3_prepare_v2(h->db, "UPDATE secrets SET used = 1 WHERE session_id = ?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto out_rollback;
	sqlite3_bind_blob(st, 1, session_id, PB_SESSION_ID_LEN, SQLITE_STATIC);
	if ((rc = step_done(h->db, st)) != 0)
		goto out_rollback;
	rc = sqlite3_prepare_v2(h->db, "INSERT INTO used_tickets(ticket_id, used_at) VALUES(?, ?)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto out_rollback;
	sqlite3_bind_blob(st, 1, ticket_id, 16, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	if ((rc = step_done(h->db, st)) != 0)
		goto out_rollback;
	if (sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	return 0;
out_rollback:
	sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
	return rc > 0 ? PB_EIO : rc;
}

int pb__hostdb_keep_cert(pb_hostdb_t *h, const uint8_t device_id[PB_DEVICE_ID_LEN], const uint8_t *cert, size_t len)
{
	sqlite3_stmt *st;
	bool same = false;

	/* Certificates change at a login, not at each connection: write (and
	 * fsync) only then. */
	if (sqlite3_prepare_v2(h->db, "SELECT cert FROM certificates WHERE device_id = ?", -1, &st, NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, device_id, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		same = (size_t)sqlite3_column_bytes(st, 0) == len && memcmp(sqlite3_column_blob(st, 0), cert, len) == 0;
	sqlite3_finalize(st);
	return same ? 0 : put_cert(h, device_id, cert, len);
}

int pb__hostdb_device_cert(pb_hostdb_t *h, const uint8_t device_id[PB_DEVICE_ID_LEN], uint8_t *out, size_t cap,
			   size_t *len)
{
	sqlite3_stmt *st;
	int rc = PB_ENOTFOUND;

	*len = 0;
	if (sqlite3_prepare_v2(h->db, "SELECT cert FROM certificates WHERE device_id = ?", -1, &st, NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, device_id, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);

		rc = n > 0 && n <= cap ? 0 : PB_ESTORE_CORRUPT;
		if (rc == 0) {
			memcpy(out, sqlite3_column_blob(st, 0), n);
			*len = n;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

void pb__hostdb_seen(pb_hostdb_t *h, const uint8_t device_id[PB_DEVICE_ID_LEN])
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(h->db, "UPDATE devices SET last_seen = ? WHERE device_id = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)pb__now());
	sqlite3_bind_blob(st, 2, device_id, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	(void)step_done(h->db, st);
}

int pb__hostdb_match(pb_hostdb_t *h, const char *which, pb_paired_device_t *out)
{
	sqlite3_stmt *st;
	int found = 0;

	if (sqlite3_prepare_v2(h->db, "SELECT " DEVICE_COLUMNS " FROM devices", -1, &st, NULL) != SQLITE_OK)
		return PB_EIO;
	while (sqlite3_step(st) == SQLITE_ROW) {
		pb_paired_device_t d;
		char hex[2 * PB_DEVICE_ID_LEN + 1];

		row_to_device(st, &d);
		pb__hex(d.device_id, PB_DEVICE_ID_LEN, hex);
		if (strcmp(hex, which) == 0 || strcmp(d.name, which) == 0 ||
		    (strlen(which) >= 8 && strncmp(hex, which, strlen(which)) == 0)) {
			*out = d;
			found++;
		}
	}
	sqlite3_finalize(st);
	if (found == 0)
		return PB_ENOTFOUND;
	return found > 1 ? PB_EEXISTS : 0;
}

int pb__hostdb_revoke(pb_hostdb_t *h, const char *which, pb_paired_device_t *out)
{
	sqlite3_stmt *st;
	int rc = pb__hostdb_match(h, which, out);

	if (rc != 0)
		return rc;
	if (sqlite3_prepare_v2(h->db, "UPDATE devices SET revoked = 1 WHERE device_id = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, out->device_id, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	out->revoked = true;
	return step_done(h->db, st);
}

int pb__hostdb_instruct(pb_hostdb_t *h, const uint8_t device[PB_DEVICE_ID_LEN], const char *op, const char *iccid,
			const uint8_t *peer, const uint8_t *payload, size_t plen, int64_t *id)
{
	sqlite3_stmt *st;
	uint64_t now = pb__now();
	int rc;

	if (sqlite3_prepare_v2(h->db,
			       "INSERT INTO instructions(device, op, iccid, peer, payload, state, created, updated)"
			       " VALUES(?, ?, ?, ?, ?, 'queued', ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, device, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, iccid, -1, SQLITE_STATIC);
	if (peer != NULL)
		sqlite3_bind_blob(st, 4, peer, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	if (payload != NULL)
		sqlite3_bind_blob(st, 5, payload, (int)plen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)now);
	rc = step_done(h->db, st);
	if (rc == 0 && id != NULL)
		*id = sqlite3_last_insert_rowid(h->db);
	return rc;
}

static void row_to_instruction(sqlite3_stmt *st, pb_instruction_t *in)
{
	const char *op = (const char *)sqlite3_column_text(st, 2);
	const char *iccid = (const char *)sqlite3_column_text(st, 3);
	const char *state = (const char *)sqlite3_column_text(st, 6);
	const char *result = (const char *)sqlite3_column_text(st, 7);

	memset(in, 0, sizeof(*in));
	in->id = sqlite3_column_int64(st, 0);
	if (sqlite3_column_bytes(st, 1) == PB_DEVICE_ID_LEN)
		memcpy(in->device, sqlite3_column_blob(st, 1), PB_DEVICE_ID_LEN);
	snprintf(in->op, sizeof(in->op), "%s", op != NULL ? op : "");
	snprintf(in->iccid, sizeof(in->iccid), "%s", iccid != NULL ? iccid : "");
	if (sqlite3_column_bytes(st, 4) == PB_DEVICE_ID_LEN) {
		memcpy(in->peer, sqlite3_column_blob(st, 4), PB_DEVICE_ID_LEN);
		in->has_peer = true;
	}
	in->payload = sqlite3_column_blob(st, 5);
	in->payload_len = (size_t)sqlite3_column_bytes(st, 5);
	snprintf(in->state, sizeof(in->state), "%s", state != NULL ? state : "");
	snprintf(in->result, sizeof(in->result), "%s", result != NULL ? result : "");
	in->created = (uint64_t)sqlite3_column_int64(st, 8);
	in->updated = (uint64_t)sqlite3_column_int64(st, 9);
}

#define INSTRUCTION_COLUMNS "id, device, op, iccid, peer, payload, state, result, created, updated"

int pb__hostdb_instructions(pb_hostdb_t *h, const uint8_t *device, bool queued_only,
			    int (*cb)(void *arg, const pb_instruction_t *in), void *arg)
{
	sqlite3_stmt *st;
	int rc = 0;

	if (sqlite3_prepare_v2(h->db,
			       device != NULL ? "SELECT " INSTRUCTION_COLUMNS " FROM instructions WHERE device = ?"
						" AND (? = 0 OR state = 'queued') ORDER BY id"
					      : "SELECT " INSTRUCTION_COLUMNS " FROM instructions ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK)
		return PB_EIO;
	if (device != NULL) {
		sqlite3_bind_blob(st, 1, device, PB_DEVICE_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, queued_only ? 1 : 0);
	}
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		pb_instruction_t in;

		row_to_instruction(st, &in);
		rc = cb(arg, &in);
	}
	sqlite3_finalize(st);
	return rc;
}

int pb__hostdb_ack(pb_hostdb_t *h, int64_t id, const uint8_t device[PB_DEVICE_ID_LEN], bool ok, const char *result,
		   const uint8_t *payload, size_t plen)
{
	sqlite3_stmt *st;
	pb_instruction_t in;
	bool found = false;
	int rc;

	if (sqlite3_exec(h->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return PB_EBUSY;
	rc = sqlite3_prepare_v2(h->db, "SELECT " INSTRUCTION_COLUMNS " FROM instructions WHERE id = ? AND device = ?"
				       " AND state = 'queued'", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_blob(st, 2, device, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		row_to_instruction(st, &in);
		found = true;
	}
	sqlite3_finalize(st);
	if (!found) {
		rc = PB_ENOTFOUND;
		goto out_rollback;
	}
	rc = sqlite3_prepare_v2(h->db, "UPDATE instructions SET state = ?, result = ?, updated = ? WHERE id = ?", -1,
				&st, NULL);
	if (rc != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	sqlite3_bind_text(st, 1, ok ? "done" : "refused", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, result != NULL ? result : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)pb__now());
	sqlite3_bind_int64(st, 4, id);
	if ((rc = step_done(h->db, st)) != 0)
		goto out_rollback;
	/* A source's sealed profile becomes the destination's instruction. */
	if (ok && strcmp(in.op, "export-vsim") == 0) {
		if (payload == NULL || plen == 0 || !in.has_peer) {
			rc = PB_EENV_MALFORMED;
			goto out_rollback;
		}
		rc = pb__hostdb_instruct(h, in.peer, "install-vsim", in.iccid, device, payload, plen, NULL);
		if (rc != 0)
			goto out_rollback;
	}
	if (sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	return 0;
out_rollback:
	sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int pb__hostdb_device_by_id(pb_hostdb_t *h, const uint8_t device[PB_DEVICE_ID_LEN], pb_paired_device_t *out)
{
	sqlite3_stmt *st;
	int rc = PB_ENOTFOUND;

	if (sqlite3_prepare_v2(h->db, "SELECT " DEVICE_COLUMNS " FROM devices WHERE device_id = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, device, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		row_to_device(st, out);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int pb__hostdb_set_quota(pb_hostdb_t *h, const uint8_t device[PB_DEVICE_ID_LEN], uint64_t bytes, bool reset)
{
	sqlite3_stmt *st;

	if (!reset && bytes > INT64_MAX)
		return PB_EINVAL;
	if (sqlite3_prepare_v2(h->db,
			       reset ? "DELETE FROM quotas WHERE device=?1"
				     : "INSERT OR REPLACE INTO quotas(device, bytes) VALUES(?1, ?2)",
			       -1, &st, NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_blob(st, 1, device, PB_DEVICE_ID_LEN, SQLITE_STATIC);
	if (!reset)
		sqlite3_bind_int64(st, 2, (sqlite3_int64)bytes);
	return step_done(h->db, st);
}

uint64_t pb__hostdb_quota(pb_hostdb_t *h, const uint8_t device[PB_DEVICE_ID_LEN], bool *is_default)
{
	sqlite3_stmt *st;
	uint64_t bytes = PB_HOST_QUOTA_DEFAULT;
	bool dflt = true;

	if (sqlite3_prepare_v2(h->db, "SELECT bytes FROM quotas WHERE device=?1", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, device, PB_DEVICE_ID_LEN, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) >= 0) {
			bytes = (uint64_t)sqlite3_column_int64(st, 0);
			dflt = false;
		}
		sqlite3_finalize(st);
	}
	if (is_default != NULL)
		*is_default = dflt;
	return bytes;
}

int pb__hostdb_list(pb_hostdb_t *h, void (*cb)(void *arg, const pb_paired_device_t *d), void *arg)
{
	sqlite3_stmt *st;
	int n = 0;

	if (sqlite3_prepare_v2(h->db, "SELECT " DEVICE_COLUMNS " FROM devices ORDER BY paired_at", -1, &st, NULL) !=
	    SQLITE_OK)
		return PB_EIO;
	while (sqlite3_step(st) == SQLITE_ROW) {
		pb_paired_device_t d;

		row_to_device(st, &d);
		cb(arg, &d);
		n++;
	}
	sqlite3_finalize(st);
	return n;
}
