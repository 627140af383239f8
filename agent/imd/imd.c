/* The IM account service: accounts (SQLite, Argon2id password hashes), its
 * own signing and static keys, device certificates, pairing sessions and
 * single-use connect tickets, served over the Noise NK channel. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>
#include <uv.h>

#include "peerback.h"
#include "peerback/noise.h"
#include "agent/account/account.h"
#include "agent/imd/imd.h"
#include "agent/util/fsutil.h"
#include "agent/util/ratelimit.h"
#include "protocol/channel.h"
#include "protocol/client.h"
#include "agent/util/json.h"

#define KEYFILE_LEN (64 + 32)
#define FAIL_LIMIT 5
#define FAIL_WINDOW 60

struct pb_imd_s {
	char home[4096];
	sqlite3 *db;
	uint8_t sign_pk[32], sign_sk[64];
	uint8_t static_pk[32], static_sk[32];
	uint64_t cert_validity;
	uint64_t ticket_validity;
	bool json;
	uv_loop_t *loop;
	uv_tcp_t server;
	uv_signal_t sigint, sigterm;
	pb_ratelimit_t failures;
	unsigned long served;
	char dummy_hash[crypto_pwhash_STRBYTES]; /* for unknown accounts */
};

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
	" static_pk BLOB NOT NULL UNIQUE, account TEXT NOT NULL, first_login INTEGER NOT NULL);";

static int db_err(sqlite3 *db, int rc)
{
	if (rc == SQLITE_FULL)
		return PB_ENOSPACE;
	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		return PB_EBUSY;
	(void)db;
	return PB_EIO;
}

static int load_keys(pb_imd_t *imd)
{
	char path[4096];
	uint8_t *buf = NULL, fresh[KEYFILE_LEN];
	size_t len;
	int rc;

	if ((rc = pb__path_join(path, sizeof(path), imd->home, "imd.key")) != 0)
		return rc;
	rc = pb__read_file(path, 1024, &buf, &len);
	if (rc == -ENOENT) {
		crypto_sign_keypair(imd->sign_pk, imd->sign_sk);
		pb_noise_keypair(imd->static_pk, imd->static_sk);
		memcpy(fresh, imd->sign_sk, 64);
		memcpy(fresh + 64, imd->static_sk, 32);
		rc = pb__write_file_atomic(path, fresh, sizeof(fresh), 0600);
		sodium_memzero(fresh, sizeof(fresh));
		return rc;
	}
	if (rc != 0)
		return rc;
	if (len != KEYFILE_LEN) {
		sodium_memzero(buf, len);
		free(buf);
		return PB_ESTORE_CORRUPT;
	}
	memcpy(imd->sign_sk, buf, 64);
	crypto_sign_ed25519_sk_to_pk(imd->sign_pk, imd->sign_sk);
	memcpy(imd->static_sk, buf + 64, 32);
	sodium_memzero(buf, len);
	free(buf);
	return pb_noise_pubkey(imd->static_sk, imd->static_pk);
}

PB_EXTERN int pb_imd_open(const char *home, pb_imd_t **out)
{
	char path[4096];
	pb_imd_t *imd;
	size_t n = strlen(home);
	int rc;

	*out = NULL;
	if (n >= sizeof(imd->home))
		return PB_ETOOBIG;
	imd = sodium_malloc(sizeof(*imd));
	if (imd == NULL)
		return PB_ENOMEM;
	memset(imd, 0, sizeof(*imd));
	memcpy(imd->home, home, n + 1);
	imd->cert_validity = 30ull * 24 * 3600;
	imd->ticket_validity = 120;
	pb__ratelimit_init(&imd->failures, FAIL_LIMIT, FAIL_WINDOW);
	if ((rc = pb__mkdirs(home, 0700)) != 0)
		goto out_free;
	if ((rc = load_keys(imd)) != 0)
		goto out_free;
	if ((rc = pb__path_join(path, sizeof(path), home, "imd.db")) != 0)
		goto out_free;
	/* It holds the password hashes. */
	if ((rc = pb__private_db(path, 1)) != 0)
		goto out_free;
	if (sqlite3_open(path, &imd->db) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_close_db;
	}
	sqlite3_busy_timeout(imd->db, 5000);
	if (sqlite3_exec(imd->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_close_db;
	}
	*out = imd;
	return 0;

out_close_db:
	sqlite3_close(imd->db);
out_free:
	sodium_free(imd);
	return rc;
}

PB_EXTERN void pb_imd_close(pb_imd_t *imd)
{
	if (imd == NULL)
		return;
	sqlite3_close(imd->db);
	sodium_free(imd);
}

PB_EXTERN void pb_imd_set_validity(pb_imd_t *imd, uint64_t cert_seconds, uint64_t ticket_seconds)
{
	if (cert_seconds > 0)
		imd->cert_validity = cert_seconds;
	if (ticket_seconds > 0)
		imd->ticket_validity = ticket_seconds;
}

PB_EXTERN void pb_imd_keys(const pb_imd_t *imd, uint8_t static_pk[32], uint8_t sign_pk[32])
{
	if (static_pk != NULL)
		memcpy(static_pk, imd->static_pk, 32);
	if (sign_pk != NULL)
		memcpy(sign_pk, imd->sign_pk, 32);
}

static bool valid_account_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > PB_ACCOUNT_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-' || c == '@' || c == '+'))
			return false;
	}
	return true;
}

PB_EXTERN int pb_imd_add_account(pb_imd_t *imd, const char *id, const char *password)
{
	char hash[crypto_pwhash_STRBYTES];
	sqlite3_stmt *st;
	int rc;

	if (!valid_account_id(id))
		return PB_EINVAL;
	if (strlen(password) < 8)
		return PB_EINVAL;
	if (crypto_pwhash_str(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return PB_ENOMEM;
	if (sqlite3_prepare_v2(imd->db, "INSERT INTO accounts(id, pwhash, created) VALUES(?, ?, ?)", -1, &st,
			       NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)pb__now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	sodium_memzero(hash, sizeof(hash));
	if (rc == SQLITE_CONSTRAINT)
		return PB_EEXISTS;
	return rc == SQLITE_DONE ? 0 : db_err(imd->db, rc);
}

static bool account_exists(pb_imd_t *imd, const char *id)
{
	sqlite3_stmt *st;
	bool found;

	if (sqlite3_prepare_v2(imd->db, "SELECT 1 FROM accounts WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

PB_EXTERN int pb_imd_link(pb_imd_t *imd, const char *a, const char *b)
{
	sqlite3_stmt *st;
	int rc;

	if (!account_exists(imd, a) || !account_exists(imd, b))
		return PB_ENOTFOUND;
	if (strcmp(a, b) == 0)
		return PB_EINVAL;
	if (sqlite3_prepare_v2(imd->db, "INSERT OR IGNORE INTO links(a, b) VALUES(?, ?), (?, ?)", -1, &st, NULL) !=
	    SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_err(imd->db, rc);
}

PB_EXTERN int pb_imd_unlink(pb_imd_t *imd, const char *a, const char *b)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(imd->db, "DELETE FROM links WHERE (a = ? AND b = ?) OR (a = ? AND b = ?)", -1, &st,
			       NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_err(imd->db, rc);
	return sqlite3_changes(imd->db) > 0 ? 0 : PB_ENOTFOUND;
}

static bool linked(pb_imd_t *imd, const char *a, const char *b)
{
	sqlite3_stmt *st;
	bool found;

	if (strcmp(a, b) == 0)
		return true;
	if (sqlite3_prepare_v2(imd->db, "SELECT 1 FROM links WHERE a = ? AND b = ?", -1, &st, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

/* --- Requests --------------------------------------------------------------- */

/* Binds the device id of a login to its keys on first use; a later login
 * with the same id and other keys, or with a key bound to another id, is
 * PB_EACCT_DEVICE_TAKEN. */
static int bind_device(pb_imd_t *imd, const Peerback__Login *req)
{
	sqlite3_stmt *st;
	bool taken;
	int rc;

	if (sqlite3_exec(imd->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return PB_EBUSY;
	if (sqlite3_prepare_v2(imd->db,
			       "SELECT 1 FROM devices WHERE (id = ?1 AND (sign_pk != ?2 OR static_pk != ?3))"
			       " OR (id != ?1 AND (sign_pk = ?2 OR static_pk = ?3))",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	sqlite3_bind_blob(st, 1, req->device_id.data, (int)req->device_id.len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, req->sign_pk.data, (int)req->sign_pk.len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, req->static_pk.data, (int)req->static_pk.len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	taken = rc == SQLITE_ROW;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		rc = db_err(imd->db, rc);
		goto out_rollback;
	}
	if (taken) {
		rc = PB_EACCT_DEVICE_TAKEN;
		goto out_rollback;
	}
	if (sqlite3_prepare_v2(imd->db,
			       "INSERT OR IGNORE INTO devices(id, sign_pk, static_pk, account, first_login)"
			       " VALUES(?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	sqlite3_bind_blob(st, 1, req->device_id.data, (int)req->device_id.len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, req->sign_pk.data, (int)req->sign_pk.len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, req->static_pk.data, (int)req->static_pk.len, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, req->account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)pb__now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rc = db_err(imd->db, rc);
		goto out_rollback;
	}
	if (sqlite3_exec(imd->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	return 0;

out_rollback:
	sqlite3_exec(imd->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int do_login(pb_imd_t *imd, const Peerback__Login *req, Peerback__LoginReply *reply,
		    Peerback__SignedBlob *cert_blob)
{
	Peerback__Certificate cert;
	sqlite3_stmt *st;
	char hash[crypto_pwhash_STRBYTES];
	const char *pw = req->password != NULL ? req->password : "";
	bool ok = false;
	uint64_t now = pb__now();
	int rc;

	if (req->account == NULL || req->device_id.len != PB_DEVICE_ID_LEN || req->sign_pk.len != 32 ||
	    req->static_pk.len != 32)
		return PB_EENV_MALFORMED;
	/* Names end up in certificates, and from there in every device's
	 * terminal, logs and JSON. */
	if (!valid_account_id(req->account) || req->device_name == NULL || !pb__name_valid(req->device_name))
		return PB_EACCT_NAME;
	if (sqlite3_prepare_v2(imd->db, "SELECT pwhash FROM accounts WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return PB_EIO;
	sqlite3_bind_text(st, 1, req->account, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(st, 0);
		size_t n = h != NULL ? strlen(h) : 0;

		if (n > 0 && n < sizeof(hash)) {
			memcpy(hash, h, n + 1);
			ok = crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0;
		}
	} else {
		/* Spend the same effort on an unknown account, so that timing
		 * does not tell which accounts exist. */
		if (imd->dummy_hash[0] == 0) {
			uint8_t rnd[16];
			randombytes_buf(rnd, sizeof(rnd));
			if (crypto_pwhash_str(imd->dummy_hash, (const char *)rnd, sizeof(rnd),
					      crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
				imd->dummy_hash[0] = 0;
		}
		if (imd->dummy_hash[0] != 0)
			(void)crypto_pwhash_str_verify(imd->dummy_hash, pw, strlen(pw));
	}
	sqlite3_finalize(st);
	sodium_memzero(hash, sizeof(hash));
	if (!ok)
		return PB_EACCT_LOGIN;
	if ((rc = bind_device(imd, req)) != 0)
		return rc;
	peerback__certificate__init(&cert);
	cert.account = req->account;
	cert.device_id = req->device_id;
	cert.sign_pk = req->sign_pk;
	cert.static_pk = req->static_pk;
	cert.not_before = now > 300 ? now - 300 : 0; /* clock skew between devices */
	cert.not_after = now + imd->cert_validity;
	cert.device_name = req->device_name;
	rc = pb__sign_cert(imd->sign_sk, &cert, cert_blob);
	if (rc != 0)
		return rc;
	peerback__login_reply__init(reply);
	reply->certificate = cert_blob;
	reply->service_sign_pk.data = imd->sign_pk;
	reply->service_sign_pk.len = 32;
	return 0;
}

static int do_register(pb_imd_t *imd, const Peerback__RegisterSession *req)
{
	Peerback__Certificate *cert;
	sqlite3_stmt *st;
	uint64_t now = pb__now();
	int rc;

	rc = pb__verify_cert(imd->sign_pk, req->certificate, now, &cert);
	if (rc != 0)
		return rc;
	if (req->session_id.len != PB_SESSION_ID_LEN || req->not_after <= now ||
	    req->not_after > now + 24 * 3600 ||
	    !pb__verify_request(PB_IMD_REGISTER, req->session_id.data, req->session_id.len, req->not_after,
				cert->sign_pk.data, req->signature.data, req->signature.len)) {
		rc = req->session_id.len != PB_SESSION_ID_LEN ? PB_EENV_MALFORMED : PB_EACCT_SIG;
		goto out_free_cert;
	}
	if (sqlite3_prepare_v2(imd->db,
			       "INSERT OR IGNORE INTO sessions(id, account, host_device, not_after) VALUES(?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_free_cert;
	}
	sqlite3_bind_blob(st, 1, req->session_id.data, (int)req->session_id.len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, cert->account, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, cert->device_id.data, (int)cert->device_id.len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)req->not_after);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(imd->db, rc);
out_free_cert:
	peerback__certificate__free_unpacked(cert, NULL);
	return rc;
}

static int do_ticket(pb_imd_t *imd, const Peerback__TicketRequest *req, Peerback__SignedBlob *out)
{
	Peerback__Certificate *cert;
	Peerback__Ticket t;
	sqlite3_stmt *st;
	uint8_t ticket_id[16];
	uint64_t now = pb__now(), not_after = 0;
	char *account = NULL;
	int rc, ticketed = 0;

	rc = pb__verify_cert(imd->sign_pk, req->certificate, now, &cert);
	if (rc != 0)
		return rc;
	if (req->session_id.len != PB_SESSION_ID_LEN) {
		rc = PB_EENV_MALFORMED;
		goto out_free_cert;
	}
	if (!pb__verify_request(PB_IMD_TICKET, req->session_id.data, req->session_id.len, 0, cert->sign_pk.data,
				req->signature.data, req->signature.len)) {
		rc = PB_EACCT_SIG;
		goto out_free_cert;
	}
	if (sqlite3_prepare_v2(imd->db, "SELECT account, not_after, ticketed FROM sessions WHERE id = ?", -1, &st,
			       NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_free_cert;
	}
	sqlite3_bind_blob(st, 1, req->session_id.data, (int)req->session_id.len, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		account = strdup((const char *)sqlite3_column_text(st, 0));
		not_after = (uint64_t)sqlite3_column_int64(st, 1);
		ticketed = sqlite3_column_int(st, 2);
	}
	sqlite3_finalize(st);
	if (account == NULL) {
		rc = PB_EACCT_TICKET; /* no such pairing session */
		goto out_free_cert;
	}
	/* The host's account, or a sub-account linked to it. */
	if (!linked(imd, account, cert->account)) {
		rc = PB_EACCT_WRONG;
		goto out_free_account;
	}
	if (now > not_after) {
		rc = PB_EACCT_SECRET_EXPIRED;
		goto out_free_account;
	}
	if (ticketed) {
		rc = PB_EACCT_SECRET_USED;
		goto out_free_account;
	}
	randombytes_buf(ticket_id, sizeof(ticket_id));
	/* Mark the session used and record the ticket in one transaction. */
	if (sqlite3_exec(imd->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		rc = PB_EBUSY;
		goto out_free_account;
	}
	if (sqlite3_prepare_v2(imd->db, "UPDATE sessions SET ticketed = 1 WHERE id = ? AND ticketed = 0", -1, &st,
			       NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	sqlite3_bind_blob(st, 1, req->session_id.data, (int)req->session_id.len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE || sqlite3_changes(imd->db) != 1) {
		rc = PB_EACCT_SECRET_USED;
		goto out_rollback;
	}
	if (sqlite3_prepare_v2(imd->db, "INSERT INTO tickets(id, session, phone_device, issued) VALUES(?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	sqlite3_bind_blob(st, 1, ticket_id, sizeof(ticket_id), SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, req->session_id.data, (int)req->session_id.len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, cert->device_id.data, (int)cert->device_id.len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rc = db_err(imd->db, rc);
		goto out_rollback;
	}
	if (sqlite3_exec(imd->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = PB_EIO;
		goto out_rollback;
	}
	peerback__ticket__init(&t);
	t.session_id = req->session_id;
	t.account = cert->account;
	t.phone_device_id = cert->device_id;
	t.ticket_id.data = ticket_id;
	t.ticket_id.len = sizeof(ticket_id);
	t.not_after = now + imd->ticket_validity < not_after + imd->ticket_validity ? now + imd->ticket_validity
										     : not_after;
	rc = pb__sign_ticket(imd->sign_sk, &t, out);
	goto out_free_account;

out_rollback:
	sqlite3_exec(imd->db, "ROLLBACK", NULL, NULL, NULL);
out_free_account:
	free(account);
out_free_cert:
	peerback__certificate__free_unpacked(cert, NULL);
	return rc;
}

static void send_reply(pb_channel_t *ch, Peerback__ImdReply *reply)
{
	pb_envelope_t env;

	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_IMD_REPLY;
	env.imd_reply = reply;
	(void)pb__channel_send(ch, &env);
}

static void log_event(pb_imd_t *imd, const char *event, const char *peer, int rc)
{
	if (imd->json)
		(void)pb__json_print("{s:s, s:o, s:s}", "event", event, "peer", pb__json_text(peer), "result",
				     pb_err_name(rc));
	else
		fprintf(stderr, "peerback-imd: %s from %s: %s\n", event, peer, rc == 0 ? "ok" : pb_strerror(rc));
	fflush(stdout);
}

static void on_envelope(pb_channel_t *ch, pb_envelope_t *env)
{
	pb_imd_t *imd = ch->data;
	Peerback__ImdReply reply;
	Peerback__LoginReply login;
	Peerback__SignedBlob blob;
	Peerback__Error err;
	const char *what = "request";
	int rc;

	peerback__imd_reply__init(&reply);
	peerback__signed_blob__init(&blob);
	if (env->body_case != PEERBACK__ENVELOPE__BODY_IMD_REQUEST) {
		pb__envelope_free(env);
		pb__channel_fail(ch, PB_EENV_UNEXPECTED, NULL);
		return;
	}
	if (pb__ratelimit_blocked(&imd->failures, &ch->peer_addr)) {
		rc = PB_EACCT_RATE;
		goto out_reply;
	}
	switch (env->imd_request->op_case) {
	case PEERBACK__IMD_REQUEST__OP_LOGIN:
		what = "login";
		rc = do_login(imd, env->imd_request->login, &login, &blob);
		if (rc == 0) {
			reply.op_case = PEERBACK__IMD_REPLY__OP_LOGIN;
			reply.login = &login;
		}
		break;
	case PEERBACK__IMD_REQUEST__OP_REGISTER_SESSION:
		what = "register-session";
		rc = do_register(imd, env->imd_request->register_session);
		if (rc == 0) {
			reply.op_case = PEERBACK__IMD_REPLY__OP_OK;
			reply.ok = true;
		}
		break;
	case PEERBACK__IMD_REQUEST__OP_TICKET_REQUEST:
		what = "ticket";
		rc = do_ticket(imd, env->imd_request->ticket_request, &blob);
		if (rc == 0) {
			reply.op_case = PEERBACK__IMD_REPLY__OP_TICKET;
			reply.ticket = &blob;
		}
		break;
	case PEERBACK__IMD_REQUEST__OP_ACCOUNTS_LINKED: {
		const Peerback__AccountsLinked *q = env->imd_request->accounts_linked;
		what = "linked";
		rc = q->account_a != NULL && q->account_b != NULL ? 0 : PB_EENV_MALFORMED;
		if (rc == 0 && (!valid_account_id(q->account_a) || !valid_account_id(q->account_b)))
			rc = PB_EACCT_NAME;
		if (rc == 0) {
			reply.op_case = PEERBACK__IMD_REPLY__OP_OK;
			reply.ok = linked(imd, q->account_a, q->account_b);
		}
		break;
	}
	default:
		rc = PB_EENV_MALFORMED;
		break;
	}
	if (rc == PB_EACCT_LOGIN || rc == PB_EACCT_CERT || rc == PB_EACCT_SIG || rc == PB_EACCT_WRONG ||
	    rc == PB_EACCT_DEVICE_TAKEN)
		pb__ratelimit_fail(&imd->failures, &ch->peer_addr);
out_reply:
	if (rc != 0) {
		peerback__error__init(&err);
		err.code = rc;
		err.message = (char *)pb_strerror(rc);
		reply.op_case = PEERBACK__IMD_REPLY__OP_ERROR;
		reply.error = &err;
	}
	log_event(imd, what, ch->peer, rc);
	send_reply(ch, &reply);
	pb__signed_blob_clear(&blob);
	pb__envelope_free(env);
}

static void on_close(pb_channel_t *ch, int status)
{
	(void)status;
	free(ch);
}

static void on_connection(uv_stream_t *server, int status)
{
	pb_imd_t *imd = server->data;
	pb_session_candidate_t cand;
	pb_channel_callbacks_t cb = { NULL, on_envelope, on_close };
	pb_channel_t *ch;

	if (status < 0)
		return;
	memset(&cand, 0, sizeof(cand));
	cand.protocol = PB_IMD_NOISE;
	cand.cfg.s_priv = imd->static_sk;
	cand.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	cand.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	ch = malloc(sizeof(*ch));
	if (ch == NULL)
		return;
	if (pb__channel_accept(server, ch, &cand, 1, 1u << 20, &cb, imd) != 0)
		free(ch);
	imd->served++;
}

static void on_signal(uv_signal_t *sig, int signum)
{
	pb_imd_t *imd = sig->data;

	(void)signum;
	uv_stop(imd->loop);
}

PB_EXTERN int pb_imd_serve(pb_imd_t *imd, const char *listen, bool json)
{
	struct sockaddr_storage ss;
	char addr[96], key[64];
	int len = sizeof(ss), rc;

	imd->json = json;
	rc = pb__sockaddr_parse(listen, &ss);
	if (rc != 0)
		return rc;
	imd->loop = uv_default_loop();
	uv_tcp_init(imd->loop, &imd->server);
	imd->server.data = imd;
	rc = uv_tcp_bind(&imd->server, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&imd->server, 128, on_connection);
	if (rc != 0)
		return rc;
	uv_tcp_getsockname(&imd->server, (struct sockaddr *)&ss, &len);
	(void)pb__sockaddr_format(&ss, addr, sizeof(addr));
	(void)pb__b64url_encode(imd->static_pk, 32, key, sizeof(key));
	if (json)
		(void)pb__json_print("{s:s, s:o, s:s}", "event", "listening", "listen", pb__json_text(addr), "key", key);
	else
		printf("peerback-imd listening on %s\nservice key: %s\n", addr, key);
	fflush(stdout);
	signal(SIGPIPE, SIG_IGN);
	uv_signal_init(imd->loop, &imd->sigint);
	uv_signal_init(imd->loop, &imd->sigterm);
	imd->sigint.data = imd->sigterm.data = imd;
	uv_signal_start(&imd->sigint, on_signal, SIGINT);
	uv_signal_start(&imd->sigterm, on_signal, SIGTERM);
	uv_run(imd->loop, UV_RUN_DEFAULT);
	return 0;
}

/* --- Client side: devices talking to the service --------------------------- */

PB_EXTERN int pb__imd_call(const char *addr, const uint8_t imd_key[32], Peerback__ImdRequest *req,
			   Peerback__ImdReply **reply_out, pb_envelope_t **env_out)
{
	struct sockaddr_storage ss;
	pb_session_candidate_t cand;
	pb_client_t c;
	pb_envelope_t env, *in = NULL;
	int rc, peer = 0;

	*env_out = NULL;
	*reply_out = NULL;
	rc = pb__sockaddr_parse(addr, &ss);
	if (rc != 0)
		return rc;
	memset(&cand, 0, sizeof(cand));
	cand.protocol = PB_IMD_NOISE;
	cand.cfg.rs = imd_key;
	cand.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	cand.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	memset(&c, 0, sizeof(c));
	rc = pb__client_connect(&c, &ss, 1, 3000, &cand, NULL);
	if (rc != 0)
		return rc == PB_ENOISE_HANDSHAKE ? PB_EACCT_SERVICE : rc;
	c.timeout_ms = 30000;
	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_IMD_REQUEST;
	env.imd_request = req;
	rc = pb__client_send(&c, &env);
	if (rc == 0)
		rc = pb__client_recv(&c, &in, &peer);
	if (rc == PB_EPEER_ERROR)
		rc = peer < 0 ? peer : PB_EACCT_SERVICE;
	pb__client_close(&c);
	if (rc != 0)
		return rc;
	if (in->body_case != PEERBACK__ENVELOPE__BODY_IMD_REPLY) {
		pb__envelope_free(in);
		return PB_EENV_UNEXPECTED;
	}
	if (in->imd_reply->op_case == PEERBACK__IMD_REPLY__OP_ERROR) {
		rc = in->imd_reply->error->code;
		pb__envelope_free(in);
		return rc < 0 && rc >= PB_ERR_MIN ? rc : PB_EACCT_SERVICE;
	}
	*reply_out = in->imd_reply;
	*env_out = in;
	return 0;
}

PB_EXTERN int pb__imd_linked(const char *addr, const uint8_t imd_key[32], const char *a, const char *b, bool *linked)
{
	Peerback__ImdRequest req;
	Peerback__AccountsLinked q;
	Peerback__ImdReply *reply;
	pb_envelope_t *env;
	int rc;

	*linked = false;
	if (strcmp(a, b) == 0) {
		*linked = true;
		return 0;
	}
	peerback__imd_request__init(&req);
	peerback__accounts_linked__init(&q);
	q.account_a = (char *)a;
	q.account_b = (char *)b;
	req.op_case = PEERBACK__IMD_REQUEST__OP_ACCOUNTS_LINKED;
	req.accounts_linked = &q;
	rc = pb__imd_call(addr, imd_key, &req, &reply, &env);
	if (rc != 0)
		return rc;
	*linked = reply->op_case == PEERBACK__IMD_REPLY__OP_OK && reply->ok;
	pb__envelope_free(env);
	return 0;
}
