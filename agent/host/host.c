/* The backup host: listener, QR advertisement, authentication of phones. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "peerback.h"
#include "agent/host/host.h"
#include "peerback/store.h"
#include "agent/imd/imd.h"
#include "agent/phone/discover.h"
#include "agent/util/fsutil.h"
#include "agent/util/json.h"
#include "protocol/client.h"

#define FAIL_LIMIT 5
#define FAIL_WINDOW 60
#define MAX_LISTENERS 2

struct pb_host_s {
	pb_host_options_t opts;
	pb_identity_t id;
	pb_account_t acct;
	Peerback__SignedBlob *cert; /* unpacked acct.cert */
	pb_hostdb_t db;
	pb_store_t *store;
	uv_loop_t *loop;
	uv_tcp_t listeners[MAX_LISTENERS];
	int nlisteners;
	uv_timer_t expiry;
	uv_signal_t sigint, sigterm, sigusr1;
	uv_udp_t announce;
	uv_timer_t announce_timer;
	bool announcing;
	bool listen_any; /* bound to every interface: addresses may change */
	uint16_t port;
	int listen_family;
	pb_ratelimit_t failures;
	struct sockaddr_storage addrs[PB_URI_MAX_ADDRS];
	size_t naddrs;
	uint64_t advertised;
	int exit_status;
};

pb_store_t *pb__host_store(pb_host_t *host)
{
	return host->store;
}

pb_hostdb_t *pb__host_db(pb_host_t *host)
{
	return &host->db;
}

const char *pb__host_home(const pb_host_t *host)
{
	return host->opts.home;
}

bool pb__host_json(const pb_host_t *host)
{
	return host->opts.json;
}

/* --- Events ------------------------------------------------------------------ */

static void json_event(const char *event, const char *peer, const char *device, int rc)
{
	(void)pb__json_print("{s:s, s:o*, s:o*, s:s*, s:s*}", "event", event, "peer",
			     peer != NULL ? pb__json_text(peer) : NULL, "device",
			     device != NULL ? pb__json_text(device) : NULL, "error", rc != 0 ? pb_err_name(rc) : NULL,
			     "message", rc != 0 ? pb_strerror(rc) : NULL);
}

static void report(pb_host_t *host, const char *event, const pb_host_conn_t *conn, int rc)
{
	char dev[2 * PB_DEVICE_ID_LEN + 1] = "";
	const char *peer = conn != NULL ? conn->ch.peer : NULL;

	if (conn != NULL && conn->state >= PB_HOST_CONN_HOST_SENT)
		pb__hex(conn->device.device_id, PB_DEVICE_ID_LEN, dev);
	if (host->opts.json) {
		json_event(event, peer, dev[0] ? dev : NULL, rc);
		return;
	}
	if (rc != 0)
		fprintf(stderr, "peerback host: %s %s: %s\n", event, peer != NULL ? peer : "", pb_strerror(rc));
	else
		fprintf(stderr, "peerback host: %s %s%s%s%s\n", event, peer != NULL ? peer : "",
			conn != NULL && conn->device.name[0] ? " (" : "", conn != NULL ? conn->device.name : "",
			conn != NULL && conn->device.name[0] ? ")" : "");
}

/* --- Advertising ------------------------------------------------------------- */

static int register_session(pb_host_t *host, const pb_host_secret_t *s)
{
	Peerback__ImdRequest req;
	Peerback__RegisterSession reg;
	Peerback__ImdReply *reply;
	pb_envelope_t *env;
	uint8_t sig[64];
	int rc;

	peerback__imd_request__init(&req);
	peerback__register_session__init(&reg);
	reg.certificate = host->cert;
	reg.session_id.data = (uint8_t *)s->session_id;
	reg.session_id.len = PB_SESSION_ID_LEN;
	reg.not_after = s->not_after;
	pb__sign_request(PB_IMD_REGISTER, s->session_id, PB_SESSION_ID_LEN, s->not_after, host->id.sign_sk, sig);
	reg.signature.data = sig;
	reg.signature.len = sizeof(sig);
	req.op_case = PEERBACK__IMD_REQUEST__OP_REGISTER_SESSION;
	req.register_session = &reg;
	rc = pb__imd_call(host->acct.imd_addr, host->acct.imd_key, &req, &reply, &env);
	if (rc == 0)
		pb__envelope_free(env);
	return rc;
}

static int show_uri(pb_host_t *host, const char *uri, uint64_t expiry)
{
	int rc;

	if (host->opts.qr_png != NULL && (rc = pb_qr_write_png(uri, host->opts.qr_png)) != 0) {
		fprintf(stderr, "peerback host: cannot write %s: %s\n", host->opts.qr_png, pb_strerror(rc));
		return rc;
	}
	if (host->opts.qr_svg != NULL && (rc = pb_qr_write_svg(uri, host->opts.qr_svg)) != 0) {
		fprintf(stderr, "peerback host: cannot write %s: %s\n", host->opts.qr_svg, pb_strerror(rc));
		return rc;
	}
	if (host->opts.json) {
		json_t *addrs = json_array();
		char addr[96];

		for (size_t i = 0; addrs != NULL && i < host->naddrs; i++)
			if (pb_uri_format_addr(&host->addrs[i], addr, sizeof(addr)) > 0)
				json_array_append_new(addrs, pb__json_text(addr));
		(void)pb__json_print("{s:s, s:o, s:I, s:o, s:o*, s:o*}", "event", "advertise", "uri",
				     pb__json_text(uri), "expires", (json_int_t)expiry, "addresses", addrs, "png",
				     host->opts.qr_png != NULL ? pb__json_text(host->opts.qr_png) : NULL, "svg",
				     host->opts.qr_svg != NULL ? pb__json_text(host->opts.qr_svg) : NULL);
	} else {
		char *art = NULL;

		if (!host->opts.no_qr && pb_qr_render_terminal(uri, host->opts.qr_flags, &art, NULL) == 0) {
			fputs(art, stdout);
			sodium_memzero(art, strlen(art));
			free(art);
		}
		printf("Scan with the phone, or run: peerback pair '%s'\n", uri);
		printf("This code works once and expires in %llu seconds.\n",
		       (unsigned long long)(expiry - pb__now()));
	}
	fflush(stdout);
	return 0;
}

static void on_expiry(uv_timer_t *t);

static int advertise(pb_host_t *host)
{
	pb_host_secret_t s;
	pb_pair_uri_t u;
	char uri[PB_URI_MAX_LEN + 1];
	int rc;

	randombytes_buf(s.secret, sizeof(s.secret));
	pb__session_id(s.secret, s.session_id);
	s.not_after = pb__now() + host->opts.qr_ttl;
	s.used = false;
	rc = register_session(host, &s);
	if (rc != 0) {
		fprintf(stderr,
			"peerback host: the account service at %s did not register the pairing code: %s\n",
			host->acct.imd_addr, pb_strerror(rc));
		goto out_wipe;
	}
	rc = pb__hostdb_add_secret(&host->db, &s);
	if (rc != 0)
		goto out_wipe;
	memset(&u, 0, sizeof(u));
	memcpy(u.host_pk, host->id.static_pk, 32);
	memcpy(u.secret, s.secret, 32);
	memcpy(u.addrs, host->addrs, host->naddrs * sizeof(host->addrs[0]));
	u.naddrs = host->naddrs;
	u.expiry = s.not_after;
	snprintf(u.host_name, sizeof(u.host_name), "%s", host->acct.device_name);
	rc = pb_uri_format(&u, uri, sizeof(uri));
	if (rc < 0)
		goto out_wipe;
	rc = show_uri(host, uri, s.not_after);
	sodium_memzero(uri, sizeof(uri));
	host->advertised++;
	uv_timer_start(&host->expiry, on_expiry, host->opts.qr_ttl * 1000, 0);
out_wipe:
	sodium_memzero(&u, sizeof(u));
	sodium_memzero(&s, sizeof(s));
	return rc < 0 ? rc : 0;
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

static void refuse(pb_host_conn_t *conn, int code)
{
	pb_host_t *host = conn->host;

	pb__ratelimit_fail(&host->failures, &conn->ch.peer_addr);
	report(host, "refused", conn, code);
	pb__channel_fail(&conn->ch, code, NULL);
}

static void on_open(pb_channel_t *ch)
{
	pb_host_conn_t *conn = (pb_host_conn_t *)ch;
	pb_host_t *host = conn->host;
	Peerback__AuthChallenge c;
	pb_envelope_t env;
	int tag = pb__session_matched(&ch->sess);

	if (pb__ratelimit_blocked(&host->failures, &ch->peer_addr)) {
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

/* Checks the phone's certificate, ticket (first pairing) or remembered
 * pairing (IK), and its signature over this handshake. */
static int check_response(pb_host_conn_t *conn, const Peerback__AuthResponse *r)
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
	if (strcmp(cert->account, host->acct.account) != 0) {
		/* A linked sub-account of the host's account may use it too. */
		bool ok = false;

		if (pb__imd_linked(host->acct.imd_addr, host->acct.imd_key, host->acct.account, cert->account, &ok) != 0 ||
		    !ok) {
			rc = PB_EACCT_WRONG;
			goto out;
		}
	}
	if (!pb__auth_verify(PB_AUTH_PHONE, conn->ch.sess.h, conn->challenge, cert->sign_pk.data, r->signature.data,
			     r->signature.len)) {
		rc = PB_EACCT_SIG;
		goto out;
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

static void answer_response(pb_host_conn_t *conn, const Peerback__AuthResponse *r)
{
	Peerback__AuthHost ah;
	pb_envelope_t env;
	uint8_t sig[64];
	int rc = check_response(conn, r);

	if (rc != 0) {
		refuse(conn, rc);
		return;
	}
	pb__auth_sign(PB_AUTH_HOST, conn->ch.sess.h, r->challenge.data, conn->host->id.sign_sk, sig);
	peerback__auth_host__init(&ah);
	ah.certificate = conn->host->cert;
	ah.signature.data = sig;
	ah.signature.len = sizeof(sig);
	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_AUTH_HOST;
	env.auth_host = &ah;
	if (send_env(conn, &env) == 0)
		conn->state = PB_HOST_CONN_HOST_SENT;
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
			report(host, "pairing not saved", conn, rc);
			pb__channel_fail(&conn->ch, rc, NULL);
			return;
		}
		conn->state = PB_HOST_CONN_READY;
		report(host, "paired", conn, 0);
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
			report(host, "certificate not kept", conn, PB_EIO);
		conn->state = PB_HOST_CONN_READY;
		report(host, "connected", conn, 0);
	}
}

static void on_envelope(pb_channel_t *ch, pb_envelope_t *env)
{
	pb_host_conn_t *conn = (pb_host_conn_t *)ch;

	if (env->body_case == PEERBACK__ENVELOPE__BODY_ERROR) {
		/* The phone refused us (our certificate, say): it says why. */
		int code = env->error->code < 0 && env->error->code >= PB_ERR_MIN ? env->error->code : PB_EPEER_ERROR;
		report(conn->host, "refused by phone", conn, code);
		pb__envelope_free(env);
		pb__channel_close(ch, code);
		return;
	}
	switch (conn->state) {
	case PB_HOST_CONN_CHALLENGED:
		if (env->body_case != PEERBACK__ENVELOPE__BODY_AUTH_RESPONSE)
			break;
		answer_response(conn, env->auth_response);
		pb__envelope_free(env);
		return;
	case PB_HOST_CONN_HOST_SENT:
		if (env->body_case != PEERBACK__ENVELOPE__BODY_AUTH_PASSED)
			break;
		pb__envelope_free(env);
		passed(conn);
		return;
	case PB_HOST_CONN_READY:
		if (env->body_case != PEERBACK__ENVELOPE__BODY_REQUEST)
			break;
		pb__host_request(conn, env);
		return;
	default:
		break;
	}
	pb__envelope_free(env);
	pb__channel_fail(ch, PB_EENV_UNEXPECTED, NULL);
}

static void on_close(pb_channel_t *ch, int status)
{
	pb_host_conn_t *conn = (pb_host_conn_t *)ch;
	pb_host_t *host = conn->host;

	if (!ch->opened && status != 0 && status != PB_EPEER_CLOSED) {
		pb__ratelimit_fail(&host->failures, &ch->peer_addr);
		report(host, "handshake failed", conn, status);
	} else if (conn->state == PB_HOST_CONN_READY) {
		report(host, "disconnected", conn, 0);
	}
	if (conn->app_free != NULL)
		conn->app_free(conn);
	sodium_memzero(conn->secrets, sizeof(conn->secrets));
	free(conn);
}

static void on_connection(uv_stream_t *server, int status)
{
	pb_host_t *host = server->data;
	pb_session_candidate_t cands[1 + PB_HOST_MAX_SECRETS];
	pb_channel_callbacks_t cb = { on_open, on_envelope, on_close };
	pb_host_conn_t *conn;
	size_t n = 0;

	if (status < 0)
		return;
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return;
	conn->host = host;
	conn->secret_index = -1;
	conn->nsecrets = pb__hostdb_recent_secrets(&host->db, conn->secrets, PB_HOST_MAX_SECRETS);
	memset(cands, 0, sizeof(cands));
	cands[n].protocol = PB_NOISE_REMEMBERED;
	cands[n].cfg.s_priv = host->id.static_sk;
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
	if (pb__channel_accept(server, &conn->ch, cands, n, PB_HOST_SEQ_CAP, &cb, host) != 0)
		free(conn);
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

static int bind_listen(pb_host_t *host, uv_tcp_t *l, const struct sockaddr_storage *ss)
{
	int rc;

	uv_tcp_init(host->loop, l);
	l->data = host;
	rc = uv_tcp_bind(l, (const struct sockaddr *)ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)l, 128, on_connection);
	if (rc != 0) {
		uv_close((uv_handle_t *)l, NULL);
		uv_run(host->loop, UV_RUN_NOWAIT);
	}
	return rc;
}

/* Every interface: one dual-stack socket, or IPv4 alone when the machine
 * has no IPv6; on port, else on any free one. */
static int listen_any(pb_host_t *host, uv_tcp_t *l, unsigned port, struct sockaddr_storage *ss)
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
	uv_tcp_t *l = &host->listeners[0];

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
	host->nlisteners = 1;
	uv_tcp_getsockname(l, (struct sockaddr *)&ss, &len);
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
	if (host->opts.json) {
		char addr[96];
		(void)pb__sockaddr_format(&ss, addr, sizeof(addr));
		(void)pb__json_print("{s:s, s:o}", "event", "listening", "listen", pb__json_text(addr));
	}
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

	/* A host bound to loopback is out of the LAN's reach. */
	if (host->opts.no_announce || (!host->listen_any && host->naddrs > 0 && host->addrs[0].ss_family == AF_INET &&
				       (ntohl(((struct sockaddr_in *)&host->addrs[0])->sin_addr.s_addr) >> 24) == 127))
		return;
	memset(&any, 0, sizeof(any));
	any.sin_family = AF_INET;
	if (uv_udp_init(host->loop, &host->announce) != 0)
		return;
	if (uv_udp_bind(&host->announce, (const struct sockaddr *)&any, 0) != 0 ||
	    uv_udp_set_broadcast(&host->announce, 1) != 0) {
		fprintf(stderr, "peerback host: cannot announce on the LAN; phones find it by its known addresses\n");
		uv_close((uv_handle_t *)&host->announce, NULL);
		return;
	}
	uv_timer_init(host->loop, &host->announce_timer);
	host->announce_timer.data = host;
	uv_timer_start(&host->announce_timer, on_announce_timer, 0, ms);
	host->announcing = true;
}

static void on_signal(uv_signal_t *sig, int signum)
{
	pb_host_t *host = sig->data;

	if (signum == SIGUSR1) {
		if (advertise(host) != 0)
			uv_timer_start(&host->expiry, on_expiry, 10000, 0);
		return;
	}
	uv_stop(host->loop);
}

int pb_host_run(const pb_host_options_t *opts)
{
	pb_host_t *host;
	int rc;

	host = sodium_malloc(sizeof(*host));
	if (host == NULL)
		return PB_ENOMEM;
	memset(host, 0, sizeof(*host));
	host->opts = *opts;
	if (host->opts.qr_ttl == 0)
		host->opts.qr_ttl = 300;
	pb__ratelimit_init(&host->failures, opts->max_failures ? opts->max_failures : FAIL_LIMIT, FAIL_WINDOW);
	if ((rc = pb__identity_load(opts->home, &host->id)) != 0)
		goto out_free;
	if ((rc = pb__account_load(opts->home, &host->acct)) != 0)
		goto out_free;
	host->cert = peerback__signed_blob__unpack(NULL, host->acct.cert_len, host->acct.cert);
	if (host->cert == NULL) {
		rc = PB_EACCT_NOT_LOGGED_IN;
		goto out_free;
	}
	{
		Peerback__Certificate *c;
		rc = pb__verify_cert(host->acct.imd_sign_pk, host->cert, pb__now(), &c);
		if (rc != 0)
			goto out_free_cert;
		peerback__certificate__free_unpacked(c, NULL);
	}
	if ((rc = pb__hostdb_open(opts->home, &host->db)) != 0)
		goto out_free_cert;
	{
		char dir[4096];
		if ((rc = pb__path_join(dir, sizeof(dir), opts->home, "store")) != 0 ||
		    (rc = pb_store_open(dir, &host->store)) != 0) {
			if (rc == PB_ESTORE_LOCKED)
				fprintf(stderr, "peerback host: the store in %s is in use by another host process\n",
					dir);
			goto out_close_db;
		}
	}
	host->loop = uv_default_loop();
	uv_timer_init(host->loop, &host->expiry);
	host->expiry.data = host;
	if ((rc = start_listening(host)) != 0)
		goto out_close_db;
	if ((rc = advertise(host)) != 0)
		goto out_close_db;
	signal(SIGPIPE, SIG_IGN);
	uv_signal_init(host->loop, &host->sigint);
	uv_signal_init(host->loop, &host->sigterm);
	uv_signal_init(host->loop, &host->sigusr1);
	host->sigint.data = host->sigterm.data = host->sigusr1.data = host;
	uv_signal_start(&host->sigint, on_signal, SIGINT);
	uv_signal_start(&host->sigterm, on_signal, SIGTERM);
	uv_signal_start(&host->sigusr1, on_signal, SIGUSR1);
	start_announcing(host);
	uv_run(host->loop, UV_RUN_DEFAULT);
	if (host->announcing) {
		uv_close((uv_handle_t *)&host->announce_timer, NULL);
		uv_close((uv_handle_t *)&host->announce, NULL);
		uv_run(host->loop, UV_RUN_NOWAIT);
	}
	rc = host->exit_status;
out_close_db:
	pb_store_close(host->store);
	pb__hostdb_close(&host->db);
out_free_cert:
	peerback__signed_blob__free_unpacked(host->cert, NULL);
out_free:
	pb__identity_wipe(&host->id);
	sodium_free(host);
	return rc;
}

void pb__host_reply_error(pb_host_conn_t *conn, uint64_t id, int code)
{
	pb_envelope_t env;
	Peerback__Reply rep;
	Peerback__Error err;

	pb__envelope_init(&env);
	peerback__reply__init(&rep);
	rep.id = id;
	if (code != 0) {
		peerback__error__init(&err);
		err.code = code;
		err.message = (char *)pb_strerror(code);
		rep.op_case = PEERBACK__REPLY__OP_ERROR;
		rep.error = &err;
	}
	env.body_case = PEERBACK__ENVELOPE__BODY_REPLY;
	env.reply = &rep;
	(void)pb__channel_send(&conn->ch, &env);
}
