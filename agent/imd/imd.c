/* The IM account service: accounts (SQLite, Argon2id password hashes), its
 * own signing and static keys, device certificates, pairing sessions and
 * single-use connect tickets, served over the Noise NK channel. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "peerback.h"
#include "peerback/noise.h"
#include "agent/account/account.h"
#include "agent/imd/imd.h"
#include "agent/imd/store.h"
#include "agent/util/fsutil.h"
#include "agent/util/list.h"
#include "agent/util/ratelimit.h"
#include "protocol/channel.h"
#include "protocol/client.h"

#define KEYFILE_LEN (64 + 32)

_Static_assert(PB_IMD_PWHASH_LEN == crypto_pwhash_STRBYTES, "the store's hash buffers fit libsodium's hashes");

struct imd_conn;

struct pb_imd_s {
	char home[4096];
	pb_imd_store_t *store;
	uint8_t sign_pk[32], sign_sk[64];
	uint8_t static_pk[32], static_sk[32];
	uint64_t cert_validity;
	uint64_t ticket_validity;
	/* Serving: the loop, the listening socket, the open connections and
	 * the password checks on the thread pool, until pb_imd_stop has seen
	 * every one of them end. */
	uv_loop_t *loop;
	uv_tcp_t *server; /* freed by its close callback */
	pb_event_cb cb;
	void *cb_arg;
	pb_link_t *conns; /* of struct imd_conn */
	unsigned jobs;
	bool started, stopping, server_open;
	unsigned long served;
	char dummy_hash[crypto_pwhash_STRBYTES]; /* for unknown accounts */
};

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

int pb_imd_private_home(const char *home, unsigned *was)
{
	unsigned mode = 0;
	int rc = pb__private_dir(home, &mode);

	if (was != NULL)
		*was = mode;
	return rc;
}

int pb_imd_open_store(const char *home, pb_imd_store_t *store, pb_imd_t **out)
{
	pb_imd_t *imd;
	size_t n = strlen(home);
	int rc;

	*out = NULL;
	if (n >= sizeof(imd->home)) {
		rc = PB_ETOOBIG;
		goto out_store;
	}
	/* The keys live in guarded memory, which needs libsodium set up. */
	if (sodium_init() < 0) {
		rc = PB_ENOMEM;
		goto out_store;
	}
	imd = sodium_malloc(sizeof(*imd));
	if (imd == NULL) {
		rc = PB_ENOMEM;
		goto out_store;
	}
	memset(imd, 0, sizeof(*imd));
	memcpy(imd->home, home, n + 1);
	imd->cert_validity = 30ull * 24 * 3600;
	imd->ticket_validity = 120;
	imd->store = store;
	if ((rc = pb__mkdirs(home, 0700)) != 0)
		goto out_free;
	if ((rc = load_keys(imd)) != 0)
		goto out_free;
	*out = imd;
	return 0;

out_free:
	sodium_free(imd);
out_store:
	store->ops->close(store);
	return rc;
}

int pb_imd_open(const char *home, pb_imd_t **out)
{
	pb_imd_store_t *store;
	char path[4096];
	int rc;

	*out = NULL;
	if ((rc = pb__mkdirs(home, 0700)) != 0)
		return rc;
	if ((rc = pb__path_join(path, sizeof(path), home, "imd.db")) != 0)
		return rc;
	/* It holds the password hashes. */
	if ((rc = pb__private_db(path, 1)) != 0)
		return rc;
	if ((rc = pb__imd_store_sqlite_open(path, &store)) != 0)
		return rc;
	return pb_imd_open_store(home, store, out);
}

void pb_imd_close(pb_imd_t *imd)
{
	if (imd == NULL)
		return;
	imd->store->ops->close(imd->store);
	sodium_free(imd);
}

void pb_imd_set_validity(pb_imd_t *imd, uint64_t cert_seconds, uint64_t ticket_seconds)
{
	if (cert_seconds > 0)
		imd->cert_validity = cert_seconds;
	if (ticket_seconds > 0)
		imd->ticket_validity = ticket_seconds;
}

int pb_imd_ready(pb_imd_t *imd)
{
	return imd->store->ops->ping(imd->store);
}

const char *pb_imd_store_name(const pb_imd_t *imd)
{
	return imd->store->ops->name;
}

int pb_imd_schema_version(pb_imd_t *imd)
{
	return imd->store->ops->version(imd->store);
}

void pb_imd_keys(const pb_imd_t *imd, uint8_t static_pk[32], uint8_t sign_pk[32])
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

int pb_imd_add_account(pb_imd_t *imd, const char *id, const char *password)
{
	char hash[crypto_pwhash_STRBYTES];
	int rc;

	if (!valid_account_id(id))
		return PB_EINVAL;
	if (strlen(password) < 8)
		return PB_EINVAL;
	if (crypto_pwhash_str(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return PB_ENOMEM;
	rc = imd->store->ops->add_account(imd->store, id, hash, pb__now());
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

static bool account_exists(pb_imd_t *imd, const char *id)
{
	bool found = false;

	return imd->store->ops->account_exists(imd->store, id, &found) == 0 && found;
}

int pb_imd_link(pb_imd_t *imd, const char *a, const char *b)
{
	if (!account_exists(imd, a) || !account_exists(imd, b))
		return PB_ENOTFOUND;
	if (strcmp(a, b) == 0)
		return PB_EINVAL;
	return imd->store->ops->link(imd->store, a, b);
}

int pb_imd_unlink(pb_imd_t *imd, const char *a, const char *b)
{
	return imd->store->ops->unlink(imd->store, a, b);
}

static bool linked(pb_imd_t *imd, const char *a, const char *b)
{
	bool found = false;

	if (strcmp(a, b) == 0)
		return true;
	return imd->store->ops->linked(imd->store, a, b, &found) == 0 && found;
}

/* --- Requests --------------------------------------------------------------- */

/* Binds the device id of a login to its keys on first use; a later login
 * with the same id and other keys, or with a key bound to another id, is
 * PB_EACCT_DEVICE_TAKEN. */
static int bind_device(pb_imd_t *imd, const Peerback__Login *req)
{
	return imd->store->ops->bind_device(imd->store, req->device_id.data, req->device_id.len, req->sign_pk.data,
					    req->static_pk.data, req->account, pb__now());
}

/* A connection: its channel, and the login whose password is being checked
 * on the thread pool, if any. */
struct imd_conn {
	pb_channel_t ch;
	struct login_job *job;
	pb_link_t link; /* in pb_imd_t.conns */
};

/* A login between the request and the reply: Argon2 runs on libuv's
 * thread pool, so that the loop keeps answering ticket and session
 * requests meanwhile. Only the loop thread touches the store. */
struct login_job {
	uv_work_t work;
	pb_imd_t *imd;
	struct imd_conn *conn; /* NULL once the connection closed */
	pb_envelope_t *env;    /* holds the request (and the password) */
	char hash[crypto_pwhash_STRBYTES];
	bool known;            /* an account with that id exists */
	bool ok;               /* the password matched */
};

static void respond(pb_imd_t *imd, pb_channel_t *ch, const char *what, int rc, Peerback__ImdReply *reply);
static void maybe_done(pb_imd_t *imd);

static void login_work(uv_work_t *w)
{
	struct login_job *j = w->data;
	const Peerback__Login *req = j->env->imd_request->login;
	const char *pw = req->password != NULL ? req->password : "";

	if (!j->known && j->hash[0] == 0) {
		/* Spend the same effort on an unknown account, so that timing
		 * does not tell which accounts exist: a hash to check against,
		 * made once (login_done keeps it). */
		uint8_t rnd[16];
		randombytes_buf(rnd, sizeof(rnd));
		if (crypto_pwhash_str(j->hash, (const char *)rnd, sizeof(rnd), crypto_pwhash_OPSLIMIT_INTERACTIVE,
				      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
			j->hash[0] = 0;
	}
	j->ok = j->hash[0] != 0 && crypto_pwhash_str_verify(j->hash, pw, strlen(pw)) == 0 && j->known;
}

/* The rest of a login, back on the loop: bind the device, sign its
 * certificate, reply. */
static void login_done(uv_work_t *w, int status)
{
	struct login_job *j = w->data;
	pb_imd_t *imd = j->imd;
	const Peerback__Login *req = j->env->imd_request->login;
	Peerback__Certificate cert;
	Peerback__ImdReply reply;
	Peerback__LoginReply login;
	Peerback__SignedBlob blob;
	uint64_t now = pb__now();
	int rc = status == 0 && j->ok ? 0 : PB_EACCT_LOGIN;

	imd->jobs--;
	if (!j->known && imd->dummy_hash[0] == 0)
		memcpy(imd->dummy_hash, j->hash, sizeof(j->hash));
	sodium_memzero(j->hash, sizeof(j->hash));
	if (j->conn == NULL)
		goto out_free; /* the device went away meanwhile */
	j->conn->job = NULL;
	peerback__imd_reply__init(&reply);
	peerback__signed_blob__init(&blob);
	if (rc == 0)
		rc = bind_device(imd, req);
	if (rc == 0) {
		peerback__certificate__init(&cert);
		cert.account = req->account;
		cert.device_id = req->device_id;
		cert.sign_pk = req->sign_pk;
		cert.static_pk = req->static_pk;
		cert.not_before = now > 300 ? now - 300 : 0; /* clock skew between devices */
		cert.not_after = now + imd->cert_validity;
		cert.device_name = req->device_name;
		rc = pb__sign_cert(imd->sign_sk, &cert, &blob);
	}
	if (rc == 0) {
		peerback__login_reply__init(&login);
		login.certificate = &blob;
		login.service_sign_pk.data = imd->sign_pk;
		login.service_sign_pk.len = 32;
		reply.op_case = PEERBACK__IMD_REPLY__OP_LOGIN;
		reply.login = &login;
	}
	respond(imd, &j->conn->ch, "login", rc, &reply);
	pb__signed_blob_clear(&blob);
out_free:
	pb__envelope_free(j->env);
	free(j);
	maybe_done(imd);
}

/* Checks the request, reads the account's hash and hands the password
 * check to the thread pool; takes env on success. */
static int login_start(pb_imd_t *imd, struct imd_conn *conn, pb_envelope_t *env)
{
	const Peerback__Login *req = env->imd_request->login;
	struct login_job *j;
	int rc;

	if (req->account == NULL || req->device_id.len != PB_DEVICE_ID_LEN || req->sign_pk.len != 32 ||
	    req->static_pk.len != 32)
		return PB_EENV_MALFORMED;
	/* Names end up in certificates, and from there in every device's
	 * terminal, logs and JSON. */
	if (!valid_account_id(req->account) || req->device_name == NULL || !pb__name_valid(req->device_name))
		return PB_EACCT_NAME;
	if (conn->job != NULL)
		return PB_EBUSY; /* one login at a time per connection */
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return PB_ENOMEM;
	rc = imd->store->ops->pwhash(imd->store, req->account, j->hash);
	if (rc != 0 && rc != PB_ENOTFOUND) {
		free(j);
		return rc;
	}
	j->known = rc == 0;
	if (!j->known)
		memcpy(j->hash, imd->dummy_hash, sizeof(j->hash));
	j->work.data = j;
	j->imd = imd;
	j->conn = conn;
	j->env = env;
	rc = uv_queue_work(imd->loop, &j->work, login_work, login_done);
	if (rc != 0) {
		sodium_memzero(j->hash, sizeof(j->hash));
		free(j);
		return PB_EIO;
	}
	conn->job = j;
	imd->jobs++;
	return 0;
}

static int do_register(pb_imd_t *imd, const Peerback__RegisterSession *req)
{
	Peerback__Certificate *cert;
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
	rc = imd->store->ops->register_session(imd->store, req->session_id.data, req->session_id.len, cert->account,
					       cert->device_id.data, cert->device_id.len, req->not_after);
out_free_cert:
	peerback__certificate__free_unpacked(cert, NULL);
	return rc;
}

static int do_ticket(pb_imd_t *imd, const Peerback__TicketRequest *req, Peerback__SignedBlob *out)
{
	Peerback__Certificate *cert;
	Peerback__Ticket t;
	uint8_t ticket_id[16];
	uint64_t now = pb__now(), not_after = 0;
	char *account = NULL;
	bool ticketed = false;
	int rc;

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
	rc = imd->store->ops->session(imd->store, req->session_id.data, req->session_id.len, &account, &not_after,
				      &ticketed);
	if (rc != 0 && rc != PB_ENOTFOUND)
		goto out_free_cert;
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
	/* The store marks the session used and records the ticket at once:
	 * one ticket per session, whichever instance is asked. */
	rc = imd->store->ops->take_ticket(imd->store, req->session_id.data, req->session_id.len, ticket_id,
					  cert->device_id.data, cert->device_id.len, now);
	if (rc != 0)
		goto out_free_account;
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

static void emit(pb_imd_t *imd, pb_event_type_t type, const char *name, const char *address, int rc)
{
	pb_event_t ev;

	if (imd->cb == NULL)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.name = name;
	ev.address = address;
	ev.error = rc;
	ev.message = rc != 0 ? pb_strerror(rc) : NULL;
	(void)imd->cb(imd->cb_arg, &ev);
}

/* Counts a refusal that guessing would cause against the source, logs
 * and sends the reply (or the error). */
static void respond(pb_imd_t *imd, pb_channel_t *ch, const char *what, int rc, Peerback__ImdReply *reply)
{
	Peerback__Error err;
	uint8_t src[16];

	if (rc == PB_EACCT_LOGIN || rc == PB_EACCT_CERT || rc == PB_EACCT_SIG || rc == PB_EACCT_WRONG ||
	    rc == PB_EACCT_DEVICE_TAKEN) {
		pb__ratelimit_addr_key(&ch->peer_addr, src);
		(void)imd->store->ops->fail(imd->store, src, pb__now());
	}
	if (rc != 0) {
		peerback__error__init(&err);
		err.code = rc;
		err.message = (char *)pb_strerror(rc);
		reply->op_case = PEERBACK__IMD_REPLY__OP_ERROR;
		reply->error = &err;
	}
	/* The request's kind, the source and the result; never a password,
	 * hash, key or ticket. */
	emit(imd, PB_EVENT_REQUEST, what, ch->peer, rc);
	send_reply(ch, reply);
}

static void on_envelope(pb_channel_t *ch, pb_envelope_t *env)
{
	pb_imd_t *imd = ch->data;
	Peerback__ImdReply reply;
	Peerback__SignedBlob blob;
	const char *what = "request";
	uint8_t src[16];
	bool blocked = false;
	int rc;

	peerback__imd_reply__init(&reply);
	peerback__signed_blob__init(&blob);
	if (env->body_case != PEERBACK__ENVELOPE__BODY_IMD_REQUEST) {
		pb__envelope_free(env);
		pb__channel_fail(ch, PB_EENV_UNEXPECTED, NULL);
		return;
	}
	pb__ratelimit_addr_key(&ch->peer_addr, src);
	rc = imd->store->ops->blocked(imd->store, src, pb__now(), &blocked);
	if (rc != 0 || blocked) {
		rc = rc != 0 ? rc : PB_EACCT_RATE;
		goto out_reply;
	}
	switch (env->imd_request->op_case) {
	case PEERBACK__IMD_REQUEST__OP_LOGIN:
		what = "login";
		rc = login_start(imd, (struct imd_conn *)ch, env);
		if (rc == 0)
			return; /* login_done replies */
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
out_reply:
	respond(imd, ch, what, rc, &reply);
	pb__signed_blob_clear(&blob);
	pb__envelope_free(env);
}

static void on_close(pb_channel_t *ch, int status)
{
	struct imd_conn *conn = (struct imd_conn *)ch;
	pb_imd_t *imd = ch->data;

	(void)status;
	if (conn->job != NULL)
		conn->job->conn = NULL; /* login_done drops its reply */
	pb__link_remove(&imd->conns, &conn->link);
	free(conn);
	maybe_done(imd);
}

static void on_connection(uv_stream_t *server, int status)
{
	pb_imd_t *imd = server->data;
	pb_session_candidate_t cand;
	pb_channel_callbacks_t cb = { NULL, on_envelope, on_close };
	struct imd_conn *conn;

	if (status < 0 || imd->stopping)
		return;
	memset(&cand, 0, sizeof(cand));
	cand.protocol = PB_IMD_NOISE;
	cand.cfg.s_priv = imd->static_sk;
	cand.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	cand.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return;
	/* Listed before the accept: a failure after it reaches on_close. */
	pb__link_push(&imd->conns, &conn->link);
	if (pb__channel_accept(server, &conn->ch, &cand, 1, 1u << 20, &cb, imd) != 0) {
		pb__link_remove(&imd->conns, &conn->link);
		free(conn);
	}
	imd->served++;
}

/* After pb_imd_stop: the end is told once nothing of the service is left
 * on the loop, so that the embedder may then close the handle. */
static void maybe_done(pb_imd_t *imd)
{
	if (!imd->stopping || imd->server_open || imd->conns != NULL || imd->jobs > 0)
		return;
	imd->stopping = false;
	imd->started = false;
	emit(imd, PB_EVENT_DONE, "done", NULL, 0);
}

static void on_server_closed(uv_handle_t *h)
{
	pb_imd_t *imd = h->data;

	free(h);
	if (imd == NULL)
		return; /* a start that failed */
	imd->server_open = false;
	maybe_done(imd);
}

int pb_imd_start(pb_imd_t *imd, uv_loop_t *loop, const char *listen, pb_event_cb cb, void *cb_arg)
{
	struct sockaddr_storage ss;
	char addr[96];
	int len = sizeof(ss), rc;

	if (imd->started)
		return PB_ESTATE;
	rc = pb__sockaddr_parse(listen, &ss);
	if (rc != 0)
		return rc;
	imd->server = malloc(sizeof(*imd->server));
	if (imd->server == NULL)
		return PB_ENOMEM;
	rc = uv_tcp_init(loop, imd->server);
	if (rc != 0) {
		free(imd->server);
		return rc;
	}
	imd->server->data = imd;
	rc = uv_tcp_bind(imd->server, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)imd->server, 128, on_connection);
	if (rc == 0)
		rc = uv_tcp_getsockname(imd->server, (struct sockaddr *)&ss, &len);
	if (rc != 0) {
		/* The handle closes on its own: the caller may close imd now. */
		imd->server->data = NULL;
		uv_close((uv_handle_t *)imd->server, on_server_closed);
		return rc;
	}
	imd->loop = loop;
	imd->cb = cb;
	imd->cb_arg = cb_arg;
	imd->server_open = true;
	imd->started = true;
	(void)pb__sockaddr_format(&ss, addr, sizeof(addr));
	emit(imd, PB_EVENT_LISTENING, "listening", addr, 0);
	return 0;
}

void pb_imd_stop(pb_imd_t *imd)
{
	if (!imd->started || imd->stopping)
		return;
	imd->stopping = true;
	uv_close((uv_handle_t *)imd->server, on_server_closed);
	for (pb_link_t *l = imd->conns; l != NULL; l = l->next)
		pb__channel_close(&PB_CONTAINER(l, struct imd_conn, link)->ch, 0);
}

/* --- Client side: devices talking to the service --------------------------- */

int pb__imd_call(const char *addr, const uint8_t imd_key[32], Peerback__ImdRequest *req,
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

int pb__imd_linked(const char *addr, const uint8_t imd_key[32], const char *a, const char *b, bool *linked)
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
