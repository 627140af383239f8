/* The backup host: listener, pairing codes, authentication of phones, and
 * its life on the embedder's loop (include/peerback/host.h). Requests of
 * authenticated phones go to the storage service (requests.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "peerback.h"
#include "agent/host/host.h"
#include "agent/host/hostdb.h"
#include "agent/host/worker.h"
#include "peerback/store.h"
#include "agent/imd/imd.h"
#include "agent/phone/discover.h"
#include "agent/store/internal.h"
#include "agent/util/fsutil.h"
#include "protocol/client.h"

#define FAIL_LIMIT 5
#define FAIL_WINDOW 60
#define AUTH_TIMEOUT 10     /* seconds from accept to authenticated */
#define IDLE_TIMEOUT 120    /* seconds of silence on an authenticated connection */
#define MAX_CONNECTIONS 256
#define MAX_PER_ADDRESS 32
#define MAX_PER_DEVICE 4    /* authenticated connections of one device */
/* Answers of the account service about linked accounts: kept a while, so
 * that a stopped service delays only the first question, and at most a few
 * asked at once, each on a thread of libuv's pool. */
#define LINKED_CACHE 16
#define LINKED_TTL 300
#define LOOKUPS_MAX 2

enum { LINK_UNKNOWN = 0, LINK_YES, LINK_NO, LINK_ERROR };

/* A question to the account service, asked off the event loop. */
struct pb_host_lookup_s {
	uv_work_t work;
	pb_host_t *host;
	pb_host_conn_t *conn;       /* NULL once the connection is gone */
	pb_envelope_t *env;         /* the AuthResponse to finish checking */
	char imd_addr[96];
	uint8_t imd_key[32];
	char mine[PB_ACCOUNT_MAX + 1];
	char theirs[PB_ACCOUNT_MAX + 1];
	int rc;
	bool linked;
};

struct pb_host_s {
	pb_host_config_t opts;
	char home[4096];
	pb_host_ctx_t ctx;           /* what requests.c and control.c see */
	const pb_host_service_t *service;
	bool admin;                  /* pb_host_open: administration only */
	pb_identity_t id;
	pb_account_t acct;
	Peerback__SignedBlob *cert; /* unpacked acct.cert */
	pb_hostdb_t db;
	pb_store_t *store;
	pb_host_worker_t *worker; /* runs the store's work off the loop */
	uv_loop_t *loop;
	uv_tcp_t *listener;          /* NULL until listening */
	uv_timer_t expiry;
	bool expiry_init;
	pb_host_control_t control;   /* HOME/control.sock: prune while serving */
	bool control_started;
	uv_udp_t announce;
	uv_timer_t announce_timer;
	bool announcing;
	bool listen_any; /* bound to every interface: addresses may change */
	uint16_t port;
	int listen_family;
	pb_ratelimit_t failures;     /* per source address */
	pb_ratelimit_t id_failures;  /* per device a certificate names */
	pb_host_conn_t *conns, *conns_last; /* oldest first */
	struct {
		char account[PB_ACCOUNT_MAX + 1];
		bool linked;
		uint64_t at;
	} linked[LINKED_CACHE];
	int lookups;                 /* in flight */
	struct advert_job *advert_job; /* a pairing code being registered */
	char listen[128];
	bool running;                /* serving: started and not stopping */
	bool started, stopping, stopped;
	unsigned closing;            /* handles whose close callback is due */
	pb_host_stop_cb stop_cb;
	void *stop_arg;
	struct sockaddr_storage addrs[PB_URI_MAX_ADDRS];
	size_t naddrs;
	uint64_t advertised;
};

/* --- Events ------------------------------------------------------------------ */

/* A connection's event: type and its word (the JSON "event"), the peer,
 * and the device once the host knows it. */
static void report(pb_host_t *host, pb_event_type_t type, const char *name, const pb_host_conn_t *conn, int rc)
{
	char dev[2 * PB_DEVICE_ID_LEN + 1] = "";
	pb_event_t ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.name = name;
	if (conn != NULL) {
		ev.address = conn->ch.peer;
		if (conn->state >= PB_HOST_CONN_HOST_SENT) {
			pb__hex(conn->device.device_id, PB_DEVICE_ID_LEN, dev);
			ev.device = dev;
			ev.account = conn->device.account;
			ev.device_name = conn->device.name;
		}
	}
	ev.error = rc;
	ev.message = rc != 0 ? pb_strerror(rc) : NULL;
	pb__host_emit(&host->ctx, &ev);
}

/* Something failed that the host survives. */
static void report_error(pb_host_t *host, int rc, const char *message)
{
	pb_event_t ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = PB_EVENT_ERROR;
	ev.name = "error";
	ev.error = rc;
	ev.message = message;
	pb__host_emit(&host->ctx, &ev);
}

/* --- Advertising ------------------------------------------------------------- */

/* What registering a pairing code needs, copied: it runs on a thread of
 * the pool while the host goes on. */
struct advert_job {
	uv_work_t work;
	pb_host_t *host;
	pb_host_secret_t s;
	char imd_addr[96];
	uint8_t imd_key[32];
	uint8_t cert[PB_CERT_MAX];
	size_t cert_len;
	uint8_t sign_sk[64];
	int rc;
};

static int register_session(const struct advert_job *j)
{
	Peerback__ImdRequest req;
	Peerback__RegisterSession reg;
	Peerback__ImdReply *reply;
	Peerback__SignedBlob *cert;
	pb_envelope_t *env;
	uint8_t sig[64];
	int rc;

	cert = peerback__signed_blob__unpack(NULL, j->cert_len, j->cert);
	if (cert == NULL)
		return PB_EACCT_NOT_LOGGED_IN;
	peerback__imd_request__init(&req);
	peerback__register_session__init(&reg);
	reg.certificate = cert;
	reg.session_id.data = (uint8_t *)j->s.session_id;
	reg.session_id.len = PB_SESSION_ID_LEN;
	reg.not_after = j->s.not_after;
	pb__sign_request(PB_IMD_REGISTER, j->s.session_id, PB_SESSION_ID_LEN, j->s.not_after, j->sign_sk, sig);
	reg.signature.data = sig;
	reg.signature.len = sizeof(sig);
	req.op_case = PEERBACK__IMD_REQUEST__OP_REGISTER_SESSION;
	req.register_session = &reg;
	rc = pb__imd_call(j->imd_addr, j->imd_key, &req, &reply, &env);
	if (rc == 0)
		pb__envelope_free(env);
	peerback__signed_blob__free_unpacked(cert, NULL);
	return rc;
}

/* The new pairing code, for the embedder to show. */
static void show_uri(pb_host_t *host, const char *uri, uint64_t expiry)
{
	char addrs[PB_URI_MAX_ADDRS][96];
	const char *list[PB_URI_MAX_ADDRS];
	size_t n = 0;
	pb_event_t ev;

	for (size_t i = 0; i < host->naddrs && i < PB_URI_MAX_ADDRS; i++)
		if (pb_uri_format_addr(&host->addrs[i], addrs[n], sizeof(addrs[n])) > 0) {
			list[n] = addrs[n];
			n++;
		}
	memset(&ev, 0, sizeof(ev));
	ev.type = PB_EVENT_ADVERTISE;
	ev.name = "advertise";
	ev.uri = uri;
	ev.expires = (int64_t)expiry;
	ev.addresses = list;
	ev.naddresses = n;
	pb__host_emit(&host->ctx, &ev);
}

static void on_expiry(uv_timer_t *t);
static void stop_check(pb_host_t *host);

/* A new code: a fresh secret, registered with the account service. */
static struct advert_job *advert_new(pb_host_t *host)
{
	struct advert_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->work.data = j;
	j->host = host;
	randombytes_buf(j->s.secret, sizeof(j->s.secret));
	pb__session_id(j->s.secret, j->s.session_id);
	j->s.not_after = pb__now() + host->opts.qr_ttl;
	j->s.used = false;
	snprintf(j->imd_addr, sizeof(j->imd_addr), "%s", host->acct.imd_addr);
	memcpy(j->imd_key, host->acct.imd_key, 32);
	memcpy(j->cert, host->acct.cert, host->acct.cert_len);
	j->cert_len = host->acct.cert_len;
	memcpy(j->sign_sk, host->id.sign_sk, sizeof(j->sign_sk));
	return j;
}

static void advert_free(struct advert_job *j)
{
	sodium_memzero(j, sizeof(*j));
	free(j);
}

/* Keeps the registered secret and shows its URI. */
static int publish(pb_host_t *host, const pb_host_secret_t *s)
{
	pb_pair_uri_t u;
	char uri[PB_URI_MAX_LEN + 1];
	int rc;

	rc = pb__hostdb_add_secret(&host->db, s);
	if (rc != 0)
		return rc;
	memset(&u, 0, sizeof(u));
	memcpy(u.host_pk, host->id.static_pk, 32);
	memcpy(u.secret, s->secret, 32);
	memcpy(u.addrs, host->addrs, host->naddrs * sizeof(host->addrs[0]));
	u.naddrs = host->naddrs;
	u.expiry = s->not_after;
	snprintf(u.host_name, sizeof(u.host_name), "%s", host->acct.device_name);
	rc = pb_uri_format(&u, uri, sizeof(uri));
	if (rc >= 0) {
		show_uri(host, uri, s->not_after);
		host->advertised++;
		uv_timer_start(&host->expiry, on_expiry, host->opts.qr_ttl * 1000, 0);
	}
	sodium_memzero(uri, sizeof(uri));
	sodium_memzero(&u, sizeof(u));
	return rc < 0 ? rc : 0;
}

static void register_failed(pb_host_t *host, int rc)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "the account service at %s did not register the pairing code: %s",
		 host->acct.imd_addr, pb_strerror(rc));
	report_error(host, rc, msg);
}

static void advert_work(uv_work_t *w)
{
	struct advert_job *j = w->data;

	j->rc = register_session(j);
}

static void advert_done(uv_work_t *w, int status)
{
	struct advert_job *j = w->data;
	pb_host_t *host = j->host;
	int rc = status != 0 ? status : j->rc;

	host->advert_job = NULL;
	if (host->stopping) {
		advert_free(j);
		stop_check(host);
		return;
	}
	if (rc != 0)
		register_failed(host, rc);
	else
		rc = publish(host, &j->s);
	if (rc != 0)
		uv_timer_start(&host->expiry, on_expiry, 10000, 0); /* try again soon */
	advert_free(j);
}

/* Shows a new pairing code. At start it is registered before the host
 * serves; once serving, on a thread of the pool, so that a slow account
 * service delays the code and nothing else (one at a time). */
static int advertise(pb_host_t *host)
{
	struct advert_job *j;
	int rc;

	if (host->running && host->advert_job != NULL)
		return 0; /* the one under way will be the newest */
	j = advert_new(host);
	if (j == NULL)
		return PB_ENOMEM;
	if (host->running) {
		rc = uv_queue_work(host->loop, &j->work, advert_work, advert_done);
		if (rc == 0) {
			host->advert_job = j;
			return 0;
		}
		advert_free(j);
		return rc;
	}
	rc = register_session(j);
	if (rc != 0)
		register_failed(host, rc);
	else
		rc = publish(host, &j->s);
	advert_free(j);
	return rc;
}

static void on_expiry(uv_timer_t *t)
{
	pb_host_t *host = t->data;

	if (advertise(host) != 0)
		uv_timer_start(&host->expiry, on_expiry, 10000, 0); /* try again soon */
}

/* --- Authentication ---------------------------------------------------------- */

static int send_env(pb_host_conn_t *conn, pb_envelope_t *env)
{
	return pb__channel_send(&conn->ch, env);
}

/* A refusal after the handshake counts against the address and, when the
 * peer presented a certificate, against the device it names: an attacker
 * with many addresses is limited per target too. */
static void refuse(pb_host_conn_t *conn, int code)
{
	pb_host_t *host = conn->host;

	if (code != PB_EACCT_RATE && code != PB_EBUSY) {
		pb__ratelimit_fail(&host->failures, &conn->ch.peer_addr);
		if (conn->has_claimed)
			pb__ratelimit_fail_id(&host->id_failures, conn->claimed);
	}
	report(host, PB_EVENT_REFUSED, "refused", conn, code);
	pb__channel_fail(&conn->ch, code, NULL);
}

/* A phone that proved, in the IK handshake, the static key of a device
 * paired here: the failures of others at its address (a NAT, a shared
 * network), or of others claiming to be it, do not keep it out. */
static bool proven_device(pb_host_conn_t *conn)
{
	pb_host_t *host = conn->host;
	pb_paired_device_t d;

	if (pb__session_matched(&conn->ch.sess) != 0 || !conn->ch.sess.has_remote_static)
		return false;
	return pb__hostdb_find_device(&host->db, conn->ch.sess.remote_static, &d) == 0 && !d.revoked;
}

static void on_open(pb_channel_t *ch)
{
	pb_host_conn_t *conn = (pb_host_conn_t *)ch;
	pb_host_t *host = conn->host;
	Peerback__AuthChallenge c;
	pb_envelope_t env;
	int tag = pb__session_matched(&ch->sess);

	if (pb__ratelimit_blocked(&host->failures, &ch->peer_addr) && !proven_device(conn)) {
		refuse(conn, PB_EACCT_RATE);
		return;
	}
	conn->secret_index = tag - 1;
	if (tag > 0) {
		const pb_host_secret_t *s = &conn->secrets[tag - 1];

		if (s->used) {
			refuse(conn, PB_EACCT_SECRET_USED);
			return;
		}
		if (pb__now() > s->not_after) {
			refuse(conn, PB_EACCT_SECRET_EXPIRED);
			return;
		}
	}
	randombytes_buf(conn->challenge, sizeof(conn->challenge));
	peerback__auth_challenge__init(&c);
	c.challenge.data = conn->challenge;
	c.challenge.len = sizeof(conn->challenge);
	c.min_version = PB_PROTOCOL_VERSION;
	c.max_version = PB_PROTOCOL_VERSION;
	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_AUTH_CHALLENGE;
	env.auth_challenge = &c;
	if (send_env(conn, &env) == 0)
		conn->state = PB_HOST_CONN_CHALLENGED;
}

/* What the account service said lately about account (LINK_UNKNOWN when
 * nothing, or too long ago). */
static int linked_cached(pb_host_t *host, const char *account)
{
	for (int i = 0; i < LINKED_CACHE; i++)
		if (host->linked[i].at != 0 && strcmp(host->linked[i].account, account) == 0)
			return pb__now() - host->linked[i].at > LINKED_TTL ? LINK_UNKNOWN
			       : host->linked[i].linked		  ? LINK_YES
									  : LINK_NO;
	return LINK_UNKNOWN;
}

static void linked_remember(pb_host_t *host, const char *account, bool linked)
{
	int slot = 0;

	for (int i = 0; i < LINKED_CACHE; i++) {
		if (strcmp(host->linked[i].account, account) == 0) {
			slot = i;
			break;
		}
		if (host->linked[i].at < host->linked[slot].at)
			slot = i;
	}
	snprintf(host->linked[slot].account, sizeof(host->linked[slot].account), "%s", account);
	host->linked[slot].linked = linked;
	host->linked[slot].at = pb__now();
}

/* Checks the phone's certificate, ticket (first pairing) or remembered
 * pairing (IK), and its signature over this handshake. Everything the host
 * can check itself comes first; a question to the account service (is
 * another account linked to ours?) is never asked on the event loop:
 * check_response returns 1 and is run again with the answer (link). */
static int check_response(pb_host_conn_t *conn, const Peerback__AuthResponse *r, int link)
{
	pb_host_t *host = conn->host;
	Peerback__Certificate *cert = NULL;
	Peerback__Ticket *t = NULL;
	uint64_t now = pb__now();
	int rc;

	if (r->certificate == NULL || r->challenge.len != PB_CHALLENGE_LEN)
		return PB_EENV_MALFORMED;
	rc = pb__verify_cert(host->acct.imd_sign_pk, r->certificate, now, &cert);
	if (rc != 0)
		return rc;
	memcpy(conn->claimed, cert->device_id.data, PB_DEVICE_ID_LEN);
	conn->has_claimed = true;
	/* A device with too many recent failures, from whatever address, is
	 * refused unless this very session proved its key (IK). */
	if (pb__ratelimit_blocked_id(&host->id_failures, conn->claimed) &&
	    !(pb__session_matched(&conn->ch.sess) == 0 && conn->ch.sess.has_remote_static &&
	      memcmp(cert->static_pk.data, conn->ch.sess.remote_static, 32) == 0)) {
		rc = PB_EACCT_RATE;
		goto out;
	}
	if (!pb__auth_verify(PB_AUTH_PHONE, conn->ch.sess.h, conn->challenge, cert->sign_pk.data, r->signature.data,
			     r->signature.len)) {
		rc = PB_EACCT_SIG;
		goto out;
	}
	if (strcmp(cert->account, host->acct.account) != 0) {
		/* A linked sub-account of the host's account may use it too. */
		if (link == LINK_UNKNOWN)
			link = linked_cached(host, cert->account);
		if (link == LINK_UNKNOWN) {
			rc = 1;
			goto out;
		}
		if (link != LINK_YES) {
			rc = PB_EACCT_WRONG;
			goto out;
		}
	}
	if (conn->secret_index >= 0) {
		const pb_host_secret_t *s = &conn->secrets[conn->secret_index];

		if (r->ticket == NULL) {
			rc = PB_EACCT_TICKET;
			goto out;
		}
		rc = pb__verify_ticket(host->acct.imd_sign_pk, r->ticket, now, &t);
		if (rc != 0)
			goto out;
		if (pb__hostdb_ticket_used(&host->db, t->ticket_id.data)) {
			rc = PB_EACCT_TICKET_REPLAY;
			goto out;
		}
		if (memcmp(t->session_id.data, s->session_id, PB_SESSION_ID_LEN) != 0 ||
		    strcmp(t->account, cert->account) != 0 ||
		    memcmp(t->phone_device_id.data, cert->device_id.data, PB_DEVICE_ID_LEN) != 0) {
			rc = PB_EACCT_TICKET;
			goto out;
		}
		memcpy(conn->ticket_id, t->ticket_id.data, 16);
		memset(&conn->device, 0, sizeof(conn->device));
		memcpy(conn->device.device_id, cert->device_id.data, PB_DEVICE_ID_LEN);
		snprintf(conn->device.account, sizeof(conn->device.account), "%s", cert->account);
		snprintf(conn->device.name, sizeof(conn->device.name), "%s",
			 cert->device_name != NULL ? cert->device_name : "");
		memcpy(conn->device.static_pk, cert->static_pk.data, 32);
		memcpy(conn->device.sign_pk, cert->sign_pk.data, 32);
	} else {
		rc = pb__hostdb_find_device(&host->db, conn->ch.sess.remote_static, &conn->device);
		if (rc != 0)
			goto out;
		if (conn->device.revoked) {
			rc = PB_EACCT_REVOKED;
			goto out;
		}
		if (memcmp(conn->device.device_id, cert->device_id.data, PB_DEVICE_ID_LEN) != 0 ||
		    memcmp(cert->static_pk.data, conn->ch.sess.remote_static, 32) != 0 ||
		    strcmp(conn->device.account, cert->account) != 0) {
			rc = PB_EACCT_UNKNOWN_DEVICE;
			goto out;
		}
		/* A renewed certificate may carry a new signing key. */
		memcpy(conn->device.sign_pk, cert->sign_pk.data, 32);
	}
	conn->cert_len = peerback__signed_blob__get_packed_size(r->certificate);
	if (conn->cert_len > sizeof(conn->cert))
		conn->cert_len = 0; /* kept only to be passed on; not needed here */
	else
		peerback__signed_blob__pack(r->certificate, conn->cert);
	rc = 0;
out:
	if (t != NULL)
		peerback__ticket__free_unpacked(t, NULL);
	peerback__certificate__free_unpacked(cert, NULL);
	return rc;
}

static void lookup_work(uv_work_t *w)
{
	struct pb_host_lookup_s *l = w->data;

	l->rc = pb__imd_linked(l->imd_addr, l->imd_key, l->mine, l->theirs, &l->linked);
}

static void answer_response(pb_host_conn_t *conn, pb_envelope_t *env, int link);

static void lookup_done(uv_work_t *w, int status)
{
	struct pb_host_lookup_s *l = w->data;
	pb_host_t *host = l->host;

	host->lookups--;
	if (status == 0 && l->rc == 0)
		linked_remember(host, l->theirs, l->linked);
	if (l->conn != NULL)
		l->conn->lookup = NULL;
	if (l->conn != NULL && !host->stopping) {
		pb_host_conn_t *conn = l->conn;

		conn->state = PB_HOST_CONN_CHALLENGED;
		answer_response(conn, l->env, status == 0 && l->rc == 0 ? (l->linked ? LINK_YES : LINK_NO) : LINK_ERROR);
	} else {
		pb__envelope_free(l->env);
	}
	sodium_memzero(l, sizeof(*l));
	free(l);
	stop_check(host);
}

/* Asks the account service whether account is linked to the host's, on a
 * thread of the pool; the connection waits, nothing else does. Takes env. */
static int lookup_start(pb_host_conn_t *conn, pb_envelope_t *env, const char *account)
{
	pb_host_t *host = conn->host;
	struct pb_host_lookup_s *l;
	int rc;

	if (host->lookups >= LOOKUPS_MAX)
		return PB_EBUSY;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return PB_ENOMEM;
	l->work.data = l;
	l->host = host;
	l->conn = conn;
	l->env = env;
	snprintf(l->imd_addr, sizeof(l->imd_addr), "%s", host->acct.imd_addr);
	memcpy(l->imd_key, host->acct.imd_key, 32);
	snprintf(l->mine, sizeof(l->mine), "%s", host->acct.account);
	snprintf(l->theirs, sizeof(l->theirs), "%s", account);
	rc = uv_queue_work(host->loop, &l->work, lookup_work, lookup_done);
	if (rc != 0) {
		free(l);
		return rc;
	}
	host->lookups++;
	conn->lookup = l;
	conn->state = PB_HOST_CONN_CHECKING;
	return 0;
}

/* Takes env. */
static void answer_response(pb_host_conn_t *conn, pb_envelope_t *env, int link)
{
	const Peerback__AuthResponse *r = env->auth_response;
	Peerback__AuthHost ah;
	pb_envelope_t out;
	uint8_t sig[64];
	int rc = check_response(conn, r, link);

	if (rc == 1) {
		Peerback__Certificate *cert = NULL;

		/* check_response verified it a moment ago. */
		rc = pb__verify_cert(conn->host->acct.imd_sign_pk, r->certificate, pb__now(), &cert);
		if (rc == 0)
			rc = lookup_start(conn, env, cert->account);
		peerback__certificate__free_unpacked(cert, NULL);
		if (rc == 0)
			return;
	}
	if (rc != 0) {
		pb__envelope_free(env);
		refuse(conn, rc);
		return;
	}
	pb__auth_sign(PB_AUTH_HOST, conn->ch.sess.h, r->challenge.data, conn->host->id.sign_sk, sig);
	peerback__auth_host__init(&ah);
	ah.certificate = conn->host->cert;
	ah.signature.data = sig;
	ah.signature.len = sizeof(sig);
	pb__envelope_init(&out);
	out.body_case = PEERBACK__ENVELOPE__BODY_AUTH_HOST;
	out.auth_host = &ah;
	if (send_env(conn, &out) == 0)
		conn->state = PB_HOST_CONN_HOST_SENT;
	pb__envelope_free(env);
}

static void passed(pb_host_conn_t *conn)
{
	pb_host_t *host = conn->host;
	int rc;

	if (conn->secret_index >= 0) {
		rc = pb__hostdb_commit_pairing(&host->db, &conn->device, conn->cert, conn->cert_len,
					       conn->secrets[conn->secret_index].session_id, conn->ticket_id);
		if (rc == PB_EACCT_DEVICE_TAKEN) {
			refuse(conn, rc);
			return;
		}
		if (rc != 0) {
			report(host, PB_EVENT_ERROR, "pairing not saved", conn, rc);
			pb__channel_fail(&conn->ch, rc, NULL);
			return;
		}
		conn->state = PB_HOST_CONN_READY;
		report(host, PB_EVENT_PAIRED, "paired", conn, 0);
		/* The code just used is spent: show a new one. */
		if (advertise(host) != 0)
			uv_timer_start(&host->expiry, on_expiry, 10000, 0);
	} else {
		/* Kept to the minute: a write (and its fsync) at every
		 * connection would sit in the path of each short command. */
		if (pb__now() >= conn->device.last_seen + 60)
			pb__hostdb_seen(&host->db, conn->device.device_id);
		if (conn->cert_len > 0 &&
		    pb__hostdb_keep_cert(&host->db, conn->device.device_id, conn->cert, conn->cert_len) != 0)
			report(host, PB_EVENT_ERROR, "certificate not kept", conn, PB_EIO);
		conn->state = PB_HOST_CONN_READY;
		report(host, PB_EVENT_AUTHENTICATED, "connected", conn, 0);
	}
}

/* A device holds at most MAX_PER_DEVICE authenticated connections: its
 * newest wins, so a phone that lost its network gets back in at once, and
 * what one device can make the host hold is bounded (docs/PROTOCOL.md).
 * Newest by arrival: the list runs from the last connection accepted, and
 * conn, which has just authenticated, counts at its own place in it. A
 * connection that finishes its handshake after MAX_PER_DEVICE newer ones
 * of its device is the one refused, not the newest of them. */
static void one_device_limit(pb_host_t *host, pb_host_conn_t *conn)
{
	unsigned n = 0;

	for (pb_host_conn_t *c = host->conns_last; c != NULL; c = c->prev) {
		if (c->ch.closing || c->ch.flush_then_close || c->state != PB_HOST_CONN_READY ||
		    memcmp(c->device.device_id, conn->device.device_id, PB_DEVICE_ID_LEN) != 0)
			continue;
		if (++n > MAX_PER_DEVICE)
			pb__channel_fail(&c->ch, PB_EBUSY, "this device opened a newer connection");
	}
}

static void on_envelope(pb_channel_t *ch, pb_envelope_t *env)
{
	pb_host_conn_t *conn = (pb_host_conn_t *)ch;

	if (env->body_case == PEERBACK__ENVELOPE__BODY_ERROR) {
		/* The phone refused us (our certificate, say): it says why. */
		int code = env->error->code < 0 && env->error->code >= PB_ERR_MIN ? env->error->code : PB_EPEER_ERROR;
		report(conn->host, PB_EVENT_REFUSED, "refused by phone", conn, code);
		pb__envelope_free(env);
		pb__channel_close(ch, code);
		return;
	}
	switch (conn->state) {
	case PB_HOST_CONN_CHALLENGED:
		if (env->body_case != PEERBACK__ENVELOPE__BODY_AUTH_RESPONSE)
			break;
		answer_response(conn, env, LINK_UNKNOWN);
		return;
	case PB_HOST_CONN_HOST_SENT:
		if (env->body_case != PEERBACK__ENVELOPE__BODY_AUTH_PASSED)
			break;
		pb__envelope_free(env);
		passed(conn);
		if (conn->state == PB_HOST_CONN_READY) {
			pb__channel_authenticated(ch, conn->host->opts.idle_timeout * 1000, PB_HOST_SEQ_CAP);
			one_device_limit(conn->host, conn);
		}
		return;
	case PB_HOST_CONN_READY:
		if (env->body_case != PEERBACK__ENVELOPE__BODY_REQUEST)
			break;
		conn->host->service->request(conn, env);
		return;
	default:
		break;
	}
	pb__envelope_free(env);
	pb__channel_fail(ch, PB_EENV_UNEXPECTED, NULL);
}

static void conn_unlink(pb_host_t *host, pb_host_conn_t *conn)
{
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else if (host->conns == conn)
		host->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	else if (host->conns_last == conn)
		host->conns_last = conn->prev;
	conn->prev = conn->next = NULL;
}

/* A handshake that failed by the peer's doing: a wrong key or pairing
 * secret, a broken frame. A peer that went quiet (PB_ETIMEOUT), hung up,
 * or was closed to make room (PB_EBUSY) made no attempt at all. */
static bool failed_attempt(int status)
{
	return status <= -1000 && status != PB_EPEER_CLOSED && status != PB_ETIMEOUT && status != PB_EBUSY &&
	       status != PB_EFRAME_TRUNCATED && status != PB_ECANCELED;
}

static void on_close(pb_channel_t *ch, int status)
{
	pb_host_conn_t *conn = (pb_host_conn_t *)ch;
	pb_host_t *host = conn->host;

	conn_unlink(host, conn);
	host->ctx.nconns--;
	if (conn->lookup != NULL)
		conn->lookup->conn = NULL; /* its answer goes to the cache only */
	if (!ch->opened && failed_attempt(status)) {
		pb__ratelimit_fail(&host->failures, &ch->peer_addr);
		report(host, PB_EVENT_REFUSED, "handshake failed", conn, status);
	} else if (conn->state == PB_HOST_CONN_READY) {
		report(host, PB_EVENT_DISCONNECTED, "disconnected", conn, 0);
	}
	if (conn->app_free != NULL)
		conn->app_free(conn);
	sodium_memzero(conn->secrets, sizeof(conn->secrets));
	free(conn);
	stop_check(host);
}

/* Counts the connections held in all and from conn's address (one that is
 * flushing its last bytes still holds them), and finds the oldest of each
 * that has not authenticated and is not already closing. */
static void census(pb_host_t *host, const pb_host_conn_t *conn, unsigned *total, unsigned *same,
		   pb_host_conn_t **oldest, pb_host_conn_t **oldest_same)
{
	*total = *same = 0;
	*oldest = *oldest_same = NULL;
	for (pb_host_conn_t *c = host->conns; c != NULL; c = c->next) {
		bool here;

		if (c == conn || c->ch.closing)
			continue;
		here = pb__addr_same(&c->ch.peer_addr, &conn->ch.peer_addr);
		(*total)++;
		if (here)
			(*same)++;
		if (c->state >= PB_HOST_CONN_HOST_SENT || c->ch.flush_then_close)
			continue;
		if (*oldest == NULL)
			*oldest = c;
		if (here && *oldest_same == NULL)
			*oldest_same = c;
	}
}

/* Makes room for conn: when its address, or the host, holds as many
 * connections as allowed, the oldest one not yet authenticated is closed.
 * An authenticated connection is never closed for a newcomer; when none
 * can go, the newcomer does. Returns whether conn may stay. */
static bool admit(pb_host_t *host, pb_host_conn_t *conn)
{
	unsigned total, same;
	pb_host_conn_t *oldest, *oldest_same;

	census(host, conn, &total, &same, &oldest, &oldest_same);
	if (same >= host->opts.max_per_address) {
		if (oldest_same == NULL)
			return false;
		pb__channel_fail(&oldest_same->ch, PB_EBUSY, NULL);
		census(host, conn, &total, &same, &oldest, &oldest_same);
	}
	if (total >= host->opts.max_connections) {
		if (oldest == NULL)
			return false;
		pb__channel_fail(&oldest->ch, PB_EBUSY, NULL);
	}
	return true;
}

static void on_connection(uv_stream_t *server, int status)
{
	pb_host_t *host = server->data;
	pb_session_candidate_t cands[1 + PB_HOST_MAX_SECRETS];
	pb_channel_callbacks_t cb = { on_open, on_envelope, on_close };
	pb_host_conn_t *conn;
	size_t n = 0;

	if (status < 0 || host->stopping)
		return;
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return;
	conn->host = host;
	conn->ctx = &host->ctx;
	conn->secret_index = -1;
	conn->nsecrets = pb__hostdb_recent_secrets(&host->db, conn->secrets, PB_HOST_MAX_SECRETS);
	memset(cands, 0, sizeof(cands));
	cands[n].protocol = PB_NOISE_REMEMBERED;
	cands[n].cfg.s_priv = host->id.static_sk;
	cands[n].s_pub = host->id.static_pk;
	cands[n].cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	cands[n].cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	cands[n].tag = 0;
	n++;
	for (int i = 0; i < conn->nsecrets; i++, n++) {
		cands[n] = cands[0];
		cands[n].protocol = PB_NOISE_PAIRING;
		cands[n].cfg.psks[0] = conn->secrets[i].secret;
		cands[n].cfg.npsks = 1;
		cands[n].tag = i + 1;
	}
	if (pb__channel_accept(server, &conn->ch, cands, n, PB_HOST_SEQ_CAP, &cb, host) != 0) {
		free(conn);
		return;
	}
	host->ctx.nconns++;
	if (conn->ch.closing)
		return; /* on_close follows */
	conn->prev = host->conns_last;
	if (host->conns_last != NULL)
		host->conns_last->next = conn;
	else
		host->conns = conn;
	host->conns_last = conn;
	/* Until it authenticates, a peer may send a few KiB at most and has
	 * the deadline to do it. */
	pb__channel_require_auth(&conn->ch, host->opts.auth_timeout * 1000, PB_HOST_PREAUTH_CAP);
	if (!admit(host, conn)) {
		pb__channel_close(&conn->ch, PB_EBUSY);
		return;
	}
	report(host, PB_EVENT_CONNECTED, "accepted", conn, 0);
}

/* --- Listening --------------------------------------------------------------- */

static bool usable_v6(const struct sockaddr_in6 *a)
{
	return !IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr) && !IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
}

/* The addresses a phone may reach: every non-loopback interface address of
 * the bound families, or loopback when nothing else is up. */
static void collect_addresses(pb_host_t *host, int family, uint16_t port)
{
	uv_interface_address_t *ifs;
	int count;

	host->naddrs = 0;
	if (uv_interface_addresses(&ifs, &count) == 0) {
		for (int i = 0; i < count && host->naddrs < PB_URI_MAX_ADDRS; i++) {
			struct sockaddr_storage *ss = &host->addrs[host->naddrs];

			if (ifs[i].is_internal)
				continue;
			if (ifs[i].address.address4.sin_family == AF_INET && family != AF_INET6) {
				memset(ss, 0, sizeof(*ss));
				memcpy(ss, &ifs[i].address.address4, sizeof(struct sockaddr_in));
				((struct sockaddr_in *)ss)->sin_port = htons(port);
				host->naddrs++;
			} else if (ifs[i].address.address6.sin6_family == AF_INET6 && family != AF_INET &&
				   usable_v6(&ifs[i].address.address6)) {
				memset(ss, 0, sizeof(*ss));
				memcpy(ss, &ifs[i].address.address6, sizeof(struct sockaddr_in6));
				((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
				host->naddrs++;
			}
		}
		uv_free_interface_addresses(ifs, count);
	}
	if (host->naddrs == 0) {
		struct sockaddr_in *a = (struct sockaddr_in *)&host->addrs[0];
		memset(&host->addrs[0], 0, sizeof(host->addrs[0]));
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		host->naddrs = 1;
	}
}

static bool is_unspecified(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
					      : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* The port a host listening on every interface had last time
 * (HOME/host.port): paired phones remember it, so a restarted host keeps
 * it when it is still free. 0 when unknown. */
#define PORT_FILE "host.port"

static unsigned last_port(const pb_host_t *host)
{
	char path[4096];
	uint8_t *buf = NULL;
	size_t len = 0;
	unsigned long v = 0;

	if (pb__path_join(path, sizeof(path), host->opts.home, PORT_FILE) == 0 &&
	    pb__read_file(path, 16, &buf, &len) == 0) {
		char text[17];

		memcpy(text, buf, len);
		text[len] = 0;
		v = strtoul(text, NULL, 10);
	}
	free(buf);
	return v > 0 && v < 65536 ? (unsigned)v : 0;
}

static void remember_port(const pb_host_t *host)
{
	char path[4096], text[16];
	int n = snprintf(text, sizeof(text), "%u\n", (unsigned)host->port);

	/* A convenience: a host that cannot write it still serves. */
	if (pb__path_join(path, sizeof(path), host->opts.home, PORT_FILE) == 0)
		(void)pb__write_file_atomic(path, text, (size_t)n, 0600);
}

/* Every handle the host closes ends here: the host's stop completes when
 * none is left (and nothing else is under way). */
static void handle_closed(uv_handle_t *h)
{
	pb_host_t *host = h->data;

	host->closing--;
	stop_check(host);
}

static void listener_closed(uv_handle_t *h)
{
	pb_host_t *host = h->data;

	free(h);
	host->closing--;
	stop_check(host);
}

static void close_handle(pb_host_t *host, uv_handle_t *h, uv_close_cb cb)
{
	h->data = host;
	host->closing++;
	uv_close(h, cb);
}

/* Binds and listens on a new handle: *out on success; a failed one is
 * closed (and freed by its close callback: never run the embedder's loop
 * here). */
static int bind_listen(pb_host_t *host, uv_tcp_t **out, const struct sockaddr_storage *ss)
{
	uv_tcp_t *l = malloc(sizeof(*l));
	int rc;

	if (l == NULL)
		return PB_ENOMEM;
	if ((rc = uv_tcp_init(host->loop, l)) != 0) {
		free(l);
		return rc;
	}
	l->data = host;
	rc = uv_tcp_bind(l, (const struct sockaddr *)ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)l, 128, on_connection);
	if (rc != 0) {
		close_handle(host, (uv_handle_t *)l, listener_closed);
		return rc;
	}
	*out = l;
	return 0;
}

/* Every interface: one dual-stack socket, or IPv4 alone when the machine
 * has no IPv6; on port, else on any free one. */
static int listen_any(pb_host_t *host, uv_tcp_t **l, unsigned port, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	int rc;

	memset(ss, 0, sizeof(*ss));
	a6->sin6_family = AF_INET6;
	a6->sin6_addr = in6addr_any;
	a6->sin6_port = htons((uint16_t)port);
	if ((rc = bind_listen(host, l, ss)) == 0)
		return 0;
	memset(ss, 0, sizeof(*ss));
	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	return bind_listen(host, l, ss);
}

static int start_listening(pb_host_t *host)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss), rc;
	uv_tcp_t **l = &host->listener;
	char addr[96];
	pb_event_t ev;

	if (host->opts.listen == NULL) {
		unsigned port = last_port(host);

		rc = listen_any(host, l, port, &ss);
		if (rc != 0 && port != 0)
			rc = listen_any(host, l, 0, &ss); /* taken by now: a new one */
		if (rc != 0)
			return rc;
		goto listening;
	}
	if ((rc = pb__sockaddr_parse(host->opts.listen, &ss)) != 0)
		return rc;
	rc = bind_listen(host, l, &ss);
	if (rc != 0)
		return rc;
listening:
	uv_tcp_getsockname(*l, (struct sockaddr *)&ss, &len);
	host->port = port_of(&ss);
	if (host->opts.listen == NULL)
		remember_port(host);
	host->listen_family = host->opts.listen != NULL ? ss.ss_family : AF_UNSPEC;
	if (host->opts.listen != NULL && !is_unspecified(&ss)) {
		host->addrs[0] = ss;
		host->naddrs = 1;
	} else {
		host->listen_any = true;
		collect_addresses(host, host->opts.listen != NULL ? ss.ss_family : AF_UNSPEC, port_of(&ss));
	}
	(void)pb__sockaddr_format(&ss, addr, sizeof(addr));
	memset(&ev, 0, sizeof(ev));
	ev.type = PB_EVENT_LISTENING;
	ev.name = "listening";
	ev.address = addr;
	pb__host_emit(&host->ctx, &ev);
	return 0;
}

/* --- LAN announcements -------------------------------------------------------- */

typedef struct announce_req_s {
	uv_udp_send_t req;
	uint8_t buf[PB_ANNOUNCE_MAX];
} announce_req_t;

static void on_announce_sent(uv_udp_send_t *req, int status)
{
	(void)status; /* a lost announcement is followed by the next one */
	free(req->data);
}

/* Where announcements go: the broadcast address of every IPv4 interface,
 * or loopback when the host has no other. */
static size_t announce_targets(struct sockaddr_in *out, size_t max)
{
	uv_interface_address_t *ifs;
	int count;
	size_t n = 0;

	if (uv_interface_addresses(&ifs, &count) == 0) {
		for (int i = 0; i < count && n < max; i++) {
			const struct sockaddr_in *a = &ifs[i].address.address4;
			const struct sockaddr_in *m = &ifs[i].netmask.netmask4;

			if (ifs[i].is_internal || a->sin_family != AF_INET)
				continue;
			memset(&out[n], 0, sizeof(out[n]));
			out[n].sin_family = AF_INET;
			out[n].sin_addr.s_addr = a->sin_addr.s_addr | ~m->sin_addr.s_addr;
			n++;
		}
		uv_free_interface_addresses(ifs, count);
	}
	if (n == 0 && max > 0) {
		memset(&out[0], 0, sizeof(out[0]));
		out[0].sin_family = AF_INET;
		out[0].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		n = 1;
	}
	for (size_t i = 0; i < n; i++)
		out[i].sin_port = htons(pb__announce_port());
	return n;
}

static void on_announce_timer(uv_timer_t *t)
{
	pb_host_t *host = t->data;
	struct sockaddr_in to[PB_ANNOUNCE_MAX_ADDRS];
	size_t nto;
	int len;

	/* A host on every interface follows its addresses as they change. */
	if (host->listen_any)
		collect_addresses(host, host->listen_family, host->port);
	nto = announce_targets(to, PB_ANNOUNCE_MAX_ADDRS);
	for (size_t i = 0; i < nto; i++) {
		announce_req_t *r = malloc(sizeof(*r));
		uv_buf_t b;

		if (r == NULL)
			return;
		len = pb__announce_build(&host->id, &host->acct, host->addrs, host->naddrs, host->port, pb__now(),
					 r->buf);
		if (len < 0) {
			free(r);
			return; /* no IPv4 address to announce yet */
		}
		r->req.data = r;
		b = uv_buf_init((char *)r->buf, (unsigned)len);
		if (uv_udp_send(&r->req, &host->announce, &b, 1, (const struct sockaddr *)&to[i], on_announce_sent) !=
		    0)
			free(r);
	}
}

static void start_announcing(pb_host_t *host)
{
	struct sockaddr_in any;
	uint64_t ms = (host->opts.announce_interval ? host->opts.announce_interval : 5) * 1000;
	int rc;

	/* A host bound to loopback is out of the LAN's reach. */
	if (host->opts.no_announce || (!host->listen_any && host->naddrs > 0 && host->addrs[0].ss_family == AF_INET &&
				       (ntohl(((struct sockaddr_in *)&host->addrs[0])->sin_addr.s_addr) >> 24) == 127))
		return;
	memset(&any, 0, sizeof(any));
	any.sin_family = AF_INET;
	if (uv_udp_init(host->loop, &host->announce) != 0)
		return;
	if ((rc = uv_udp_bind(&host->announce, (const struct sockaddr *)&any, 0)) != 0 ||
	    (rc = uv_udp_set_broadcast(&host->announce, 1)) != 0) {
		report_error(host, rc, "cannot announce on the LAN; phones find the host by its known addresses");
		close_handle(host, (uv_handle_t *)&host->announce, handle_closed);
		return;
	}
	uv_timer_init(host->loop, &host->announce_timer);
	host->announce_timer.data = host;
	uv_timer_start(&host->announce_timer, on_announce_timer, 0, ms);
	host->announcing = true;
}

/* --- Life on the embedder's loop ----------------------------------------------- */

/* For tests: with PEERBACK_TEST_STORE_HOLD=PATH in the environment, a
 * snapshot commit that reaches its checked point (inside its transaction)
 * creates PATH.held and waits there while PATH exists, at most a minute. A
 * test can then show what the host does while its store is busy, without
 * depending on how long a real commit takes. */
static const char *store_hold;

static void hold_store(const char *point)
{
	char held[4200];
	int fd, n;

	if (strcmp(point, "snapshot-checked") != 0 || access(store_hold, F_OK) != 0)
		return;
	n = snprintf(held, sizeof(held), "%s.held", store_hold);
	if (n < 0 || (size_t)n >= sizeof(held))
		return;
	fd = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 6000 && access(store_hold, F_OK) == 0; i++)
		usleep(10000);
	unlink(held);
}

/* The stop is complete when nothing of the host is left on the loop: no
 * handle closing, no connection, no question to the account service, no
 * storage job, no control request. Called by each of them as it ends; the
 * caller touches the host no more afterwards (the stop callback may free
 * it). */
static void stop_check(pb_host_t *host)
{
	pb_host_stop_cb cb;

	if (!host->stopping || host->stopped)
		return;
	if (host->closing > 0 || host->ctx.nconns > 0 || host->advert_job != NULL || host->lookups > 0 ||
	    host->control.nconns > 0 || !pb__host_worker_idle(host->worker))
		return;
	host->stopped = true;
	cb = host->stop_cb;
	if (cb != NULL)
		cb(host, host->stop_arg);
}

static void worker_idle(void *arg)
{
	stop_check(arg);
}

static int load(pb_host_t *host)
{
	Peerback__Certificate *c;
	char dir[4096];
	int rc;

	if ((rc = pb__identity_load(host->home, &host->id)) != 0)
		return rc;
	if ((rc = pb__account_load(host->home, &host->acct)) != 0)
		return rc;
	host->cert = peerback__signed_blob__unpack(NULL, host->acct.cert_len, host->acct.cert);
	if (host->cert == NULL)
		return PB_EACCT_NOT_LOGGED_IN;
	if ((rc = pb__verify_cert(host->acct.imd_sign_pk, host->cert, pb__now(), &c)) != 0)
		return rc;
	peerback__certificate__free_unpacked(c, NULL);
	if ((rc = pb__hostdb_open(host->home, &host->db)) != 0)
		return rc;
	if ((rc = pb__path_join(dir, sizeof(dir), host->home, "store")) != 0)
		return rc;
	if ((rc = pb_store_open(dir, &host->store)) != 0)
		return rc;
	return pb__host_worker_new(host->loop, &host->worker);
}

static pb_host_t *host_alloc(const char *home)
{
	pb_host_t *host;
	int n;

	/* The embedder may not have initialised libsodium (idempotent). */
	if (home == NULL || sodium_init() < 0)
		return NULL;
	host = sodium_malloc(sizeof(*host));
	if (host == NULL)
		return NULL;
	memset(host, 0, sizeof(*host));
	n = snprintf(host->home, sizeof(host->home), "%s", home);
	if (n < 0 || (size_t)n >= sizeof(host->home)) {
		sodium_free(host);
		return NULL;
	}
	return host;
}

int pb_host_new(uv_loop_t *loop, const pb_host_config_t *cfg, pb_event_cb on_event, void *arg, pb_host_t **out)
{
	pb_host_t *host;
	int rc;

	if (out == NULL || loop == NULL || cfg == NULL || cfg->home == NULL)
		return PB_EINVAL;
	*out = NULL;
	if (cfg->listen != NULL && strlen(cfg->listen) >= sizeof(host->listen))
		return PB_EINVAL;
	if ((host = host_alloc(cfg->home)) == NULL)
		return PB_ENOMEM;
	host->opts = *cfg;
	host->opts.home = host->home;
	if (cfg->listen != NULL) {
		snprintf(host->listen, sizeof(host->listen), "%s", cfg->listen);
		host->opts.listen = host->listen;
	}
	if (host->opts.qr_ttl == 0)
		host->opts.qr_ttl = 300;
	pb__ratelimit_init(&host->failures, cfg->max_failures ? cfg->max_failures : FAIL_LIMIT, FAIL_WINDOW);
	pb__ratelimit_init(&host->id_failures, cfg->max_failures ? cfg->max_failures : FAIL_LIMIT, FAIL_WINDOW);
	if (host->opts.auth_timeout == 0)
		host->opts.auth_timeout = AUTH_TIMEOUT;
	if (host->opts.idle_timeout == 0)
		host->opts.idle_timeout = IDLE_TIMEOUT;
	if (host->opts.max_connections == 0)
		host->opts.max_connections = MAX_CONNECTIONS;
	if (host->opts.max_per_address == 0)
		host->opts.max_per_address = MAX_PER_ADDRESS;
	host->loop = loop;
	if ((rc = load(host)) != 0) {
		pb_host_free(host);
		return rc;
	}
	host->service = &pb__host_storage_service;
	host->ctx.store = host->store;
	host->ctx.db = &host->db;
	host->ctx.worker = host->worker;
	host->ctx.home = host->home;
	host->ctx.on_event = on_event;
	host->ctx.arg = arg;
	store_hold = getenv("PEERBACK_TEST_STORE_HOLD");
	if (store_hold != NULL && store_hold[0] != 0)
		pb__store_test_hook = hold_store;
	*out = host;
	return 0;
}

int pb_host_start(pb_host_t *host)
{
	int rc;

	if (host == NULL || host->admin || host->started)
		return PB_ESTATE;
	host->started = true;
	if ((rc = uv_timer_init(host->loop, &host->expiry)) != 0)
		return rc;
	host->expiry.data = host;
	host->expiry_init = true;
	if ((rc = start_listening(host)) != 0)
		return rc;
	if ((rc = advertise(host)) != 0)
		return rc;
	start_announcing(host);
	host->control.idle = worker_idle;
	host->control.idle_arg = host;
	host->control.close_arg = host;
	pb__host_control_start(&host->ctx, host->loop, &host->control);
	host->control_started = true;
	host->running = true;
	return 0;
}

int pb_host_advertise(pb_host_t *host)
{
	int rc;

	if (host == NULL || !host->running)
		return PB_ESTATE;
	rc = advertise(host);
	if (rc != 0)
		uv_timer_start(&host->expiry, on_expiry, 10000, 0);
	return rc;
}

uint16_t pb_host_port(const pb_host_t *host)
{
	return host != NULL ? host->port : 0;
}

int pb_host_stop(pb_host_t *host, pb_host_stop_cb cb, void *arg)
{
	if (host == NULL || host->admin || (host->stopping && !host->stopped))
		return PB_ESTATE;
	host->stop_cb = cb;
	host->stop_arg = arg;
	host->stopping = true;
	host->running = false;
	if (host->stopped || !host->started) {
		host->stopped = true;
		if (cb != NULL)
			cb(host, arg);
		return 0;
	}
	if (host->listener != NULL)
		close_handle(host, (uv_handle_t *)host->listener, listener_closed);
	host->listener = NULL;
	if (host->expiry_init)
		close_handle(host, (uv_handle_t *)&host->expiry, handle_closed);
	if (host->announcing) {
		close_handle(host, (uv_handle_t *)&host->announce_timer, handle_closed);
		close_handle(host, (uv_handle_t *)&host->announce, handle_closed);
	}
	if (host->control_started) {
		if (host->control.open)
			host->closing++;
		pb__host_control_stop(&host->ctx, &host->control, handle_closed);
	}
	/* Questions on the pool that have not begun are dropped; those under
	 * way are waited for. */
	if (host->advert_job != NULL)
		(void)uv_cancel((uv_req_t *)&host->advert_job->work);
	for (pb_host_conn_t *c = host->conns; c != NULL; c = c->next) {
		if (c->lookup != NULL)
			(void)uv_cancel((uv_req_t *)&c->lookup->work);
		pb__channel_close(&c->ch, PB_ECANCELED);
	}
	pb__host_worker_drain(host->worker, worker_idle, host);
	stop_check(host);
	return 0;
}

int pb_host_open(const char *home, pb_host_t **out)
{
	pb_host_t *host;

	if (out == NULL || home == NULL)
		return PB_EINVAL;
	if ((host = host_alloc(home)) == NULL)
		return PB_ENOMEM;
	host->admin = true;
	host->opts.home = host->home;
	*out = host;
	return 0;
}

void pb_host_free(pb_host_t *host)
{
	if (host == NULL)
		return;
	if (host->started && !host->stopped)
		abort(); /* the loop still holds its handles: a caller bug */
	if (store_hold != NULL && pb__store_test_hook == hold_store)
		pb__store_test_hook = NULL;
	pb__host_worker_free(host->worker);
	pb_store_close(host->store);
	pb__hostdb_close(&host->db);
	if (host->cert != NULL)
		peerback__signed_blob__free_unpacked(host->cert, NULL);
	pb__identity_wipe(&host->id);
	sodium_free(host);
}

/* For the administration calls (agent/host/admin.c). */
const char *pb__host_home(const pb_host_t *host)
{
	return host->home;
}

bool pb__host_serving(const pb_host_t *host)
{
	return !host->admin;
}

int pb__host_db(pb_host_t *host, bool create, pb_hostdb_t **out)
{
	char path[4096];
	int rc;

	if (host->db.db == NULL) {
		if (!create && (pb__path_join(path, sizeof(path), host->home, "host.db") != 0 ||
				access(path, F_OK) != 0))
			return PB_ENOTFOUND;
		if ((rc = pb__hostdb_open(host->home, &host->db)) != 0)
			return rc;
	}
	*out = &host->db;
	return 0;
}
