/* The phone's side of the account and of pairing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback.h"
#include "agent/util/testhook.h"
#include "agent/imd/imd.h"
#include "agent/phone/discover.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

#define MAX_HOSTS 32
#define CONNECT_TIMEOUT_MS 2000
/* How long a phone listens for its host's LAN announcement. */
#define DISCOVER_TIMEOUT_MS 6000

/* --- Login ------------------------------------------------------------------- */

int pb__phone_login(const char *home, const char *imd_addr, const char *imd_key_b64, const char *account,
		   const char *password, const char *device_name)
{
	pb_identity_t id;
	pb_account_t acct;
	Peerback__ImdRequest req;
	Peerback__Login login;
	Peerback__ImdReply *reply;
	Peerback__Certificate *cert;
	pb_envelope_t *env = NULL;
	struct sockaddr_storage ss;
	int rc;

	memset(&acct, 0, sizeof(acct));
	if (strlen(account) > PB_ACCOUNT_MAX || strlen(imd_addr) >= sizeof(acct.imd_addr))
		return PB_EINVAL;
	if ((rc = pb__sockaddr_parse(imd_addr, &ss)) != 0)
		return rc;
	if ((rc = pb__b64url_decode(imd_key_b64, acct.imd_key, 32)) != 0)
		return rc;
	if ((rc = pb__identity_load(home, &id)) != 0)
		return rc;
	peerback__imd_request__init(&req);
	peerback__login__init(&login);
	login.account = (char *)account;
	login.password = (char *)password;
	login.device_id.data = id.device_id;
	login.device_id.len = PB_DEVICE_ID_LEN;
	login.sign_pk.data = id.sign_pk;
	login.sign_pk.len = 32;
	login.static_pk.data = id.static_pk;
	login.static_pk.len = 32;
	login.device_name = (char *)device_name;
	req.op_case = PEERBACK__IMD_REQUEST__OP_LOGIN;
	req.login = &login;
	rc = pb__imd_call(imd_addr, acct.imd_key, &req, &reply, &env);
	if (rc != 0)
		goto out_wipe;
	if (reply->op_case != PEERBACK__IMD_REPLY__OP_LOGIN || reply->login->certificate == NULL ||
	    reply->login->service_sign_pk.len != 32) {
		rc = PB_EENV_MALFORMED;
		goto out_free_env;
	}
	memcpy(acct.imd_sign_pk, reply->login->service_sign_pk.data, 32);
	/* The certificate must be ours, signed by the key just learned over the
	 * channel pinned by imd_key. */
	rc = pb__verify_cert(acct.imd_sign_pk, reply->login->certificate, pb__now(), &cert);
	if (rc != 0)
		goto out_free_env;
	if (strcmp(cert->account, account) != 0 || memcmp(cert->device_id.data, id.device_id, PB_DEVICE_ID_LEN) != 0 ||
	    memcmp(cert->sign_pk.data, id.sign_pk, 32) != 0) {
		rc = PB_EACCT_CERT;
		goto out_free_cert;
	}
	acct.cert_len = peerback__signed_blob__get_packed_size(reply->login->certificate);
	if (acct.cert_len > sizeof(acct.cert)) {
		rc = PB_EACCT_CERT;
		goto out_free_cert;
	}
	peerback__signed_blob__pack(reply->login->certificate, acct.cert);
	snprintf(acct.account, sizeof(acct.account), "%s", account);
	snprintf(acct.device_name, sizeof(acct.device_name), "%s", device_name);
	snprintf(acct.imd_addr, sizeof(acct.imd_addr), "%s", imd_addr);
	rc = pb__account_save(home, &acct);
out_free_cert:
	peerback__certificate__free_unpacked(cert, NULL);
out_free_env:
	pb__envelope_free(env);
out_wipe:
	pb__identity_wipe(&id);
	return rc;
}

/* --- Remembered hosts -------------------------------------------------------- */

static int hosts_path(const char *home, char *out, size_t cap)
{
	return pb__path_join(out, cap, home, "hosts.json");
}

static int host_from_json(json_t *o, pb_remembered_host_t *h)
{
	const char *key = json_string_value(json_object_get(o, "key"));
	const char *dev = json_string_value(json_object_get(o, "device_id"));
	const char *account = json_string_value(json_object_get(o, "account"));
	const char *name = json_string_value(json_object_get(o, "name"));
	json_t *addrs = json_object_get(o, "addresses"), *a;
	size_t i, n;

	memset(h, 0, sizeof(*h));
	if (key == NULL || dev == NULL || account == NULL || pb__b64url_decode(key, h->static_pk, 32) != 0)
		return PB_ESTORE_CORRUPT;
	if (sodium_hex2bin(h->device_id, sizeof(h->device_id), dev, strlen(dev), NULL, &n, NULL) != 0 ||
	    n != PB_DEVICE_ID_LEN)
		return PB_ESTORE_CORRUPT;
	snprintf(h->account, sizeof(h->account), "%s", account);
	snprintf(h->name, sizeof(h->name), "%s", name != NULL ? name : "");
	h->paired_at = (uint64_t)json_integer_value(json_object_get(o, "paired_at"));
	json_array_foreach(addrs, i, a) {
		const char *s = json_string_value(a);
		if (s != NULL && h->naddrs < PB_URI_MAX_ADDRS && pb__sockaddr_parse(s, &h->addrs[h->naddrs]) == 0)
			h->naddrs++;
	}
	return 0;
}

int pb__phone_hosts(const char *home, pb_remembered_host_t *out, size_t max)
{
	char path[4096];
	uint8_t *buf;
	size_t len, i;
	json_t *root, *o;
	json_error_t jerr;
	int n = 0, rc;

	if ((rc = hosts_path(home, path, sizeof(path))) != 0)
		return rc;
	rc = pb__read_file(path, 1 << 20, &buf, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc != 0)
		return rc;
	root = json_loadb((const char *)buf, len, 0, &jerr);
	free(buf);
	if (!json_is_array(root)) {
		json_decref(root);
		return PB_ESTORE_CORRUPT;
	}
	json_array_foreach(root, i, o) {
		if ((size_t)n < max && host_from_json(o, &out[n]) == 0)
			n++;
	}
	json_decref(root);
	return n;
}

static int save_hosts(const char *home, const pb_remembered_host_t *hosts, size_t n)
{
	char path[4096], key[64], dev[2 * PB_DEVICE_ID_LEN + 1], addr[96];
	json_t *root = json_array();
	char *text;
	int rc;

	if (root == NULL)
		return PB_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *addrs = json_array();

		(void)pb__b64url_encode(hosts[i].static_pk, 32, key, sizeof(key));
		pb__hex(hosts[i].device_id, PB_DEVICE_ID_LEN, dev);
		for (size_t j = 0; j < hosts[i].naddrs; j++)
			if (pb__sockaddr_format(&hosts[i].addrs[j], addr, sizeof(addr)) == 0)
				json_array_append_new(addrs, json_string(addr));
		json_array_append_new(root, json_pack("{s:s, s:s, s:s, s:s, s:o, s:I}", "key", key, "device_id", dev,
						      "account", hosts[i].account, "name", hosts[i].name,
						      "addresses", addrs, "paired_at",
						      (json_int_t)hosts[i].paired_at));
	}
	text = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (text == NULL)
		return PB_ENOMEM;
	rc = hosts_path(home, path, sizeof(path));
	if (rc == 0)
		rc = pb__write_file_atomic(path, text, strlen(text), 0600);
	free(text);
	return rc;
}

static int remember_host(const char *home, const pb_remembered_host_t *h)
{
	pb_remembered_host_t *hosts = calloc(MAX_HOSTS + 1, sizeof(*hosts));
	int n, rc;
	size_t k = 0;

	if (hosts == NULL)
		return PB_ENOMEM;
	n = pb__phone_hosts(home, hosts, MAX_HOSTS);
	if (n < 0) {
		free(hosts);
		return n;
	}
	/* The new pairing replaces any earlier one of the same host, and the
	 * most recent pairing comes first. */
	for (int i = 0; i < n; i++)
		if (memcmp(hosts[i].static_pk, h->static_pk, 32) != 0)
			hosts[k++] = hosts[i];
	memmove(hosts + 1, hosts, k * sizeof(*hosts));
	hosts[0] = *h;
	rc = save_hosts(home, hosts, k + 1 > MAX_HOSTS ? MAX_HOSTS : k + 1);
	free(hosts);
	return rc;
}

int pb__phone_forget(const char *home, const char *which)
{
	pb_remembered_host_t *hosts = calloc(MAX_HOSTS, sizeof(*hosts));
	int n, hit = -1, rc = 0;
	size_t k = 0, wl = which != NULL ? strlen(which) : 0;

	if (hosts == NULL)
		return PB_ENOMEM;
	n = pb__phone_hosts(home, hosts, MAX_HOSTS);
	if (n < 0)
		rc = n;
	/* The same names as pb__phone_connect takes, but exactly one host:
	 * forgetting is not to be done on a guess. */
	for (int i = 0; rc == 0 && i < n; i++) {
		char key[64];

		(void)pb__b64url_encode(hosts[i].static_pk, 32, key, sizeof(key));
		if (wl > 0 && (strcmp(which, hosts[i].name) == 0 || (wl >= 6 && strncmp(key, which, wl) == 0)))
			rc = hit < 0 ? (hit = i, 0) : PB_EEXISTS;
	}
	if (rc == 0 && hit < 0)
		rc = PB_ENOTFOUND;
	if (rc == 0) {
		for (int i = 0; i < n; i++)
			if (i != hit)
				hosts[k++] = hosts[i];
		rc = save_hosts(home, hosts, k);
	}
	free(hosts);
	return rc;
}

/* --- Requests to a host ----------------------------------------------------- */

int pb__phone_send(pb_client_t *c, Peerback__Request *req)
{
	pb_envelope_t env;

	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
	env.request = req;
	return pb__client_send(c, &env);
}

int pb__phone_send_more(pb_client_t *c, Peerback__Request *req)
{
	pb_envelope_t env;

	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
	env.request = req;
	return pb__client_send_more(c, &env);
}

int pb__phone_reply(pb_client_t *c, uint64_t id, pb_envelope_t **env_out)
{
	pb_envelope_t *in = NULL;
	int rc, peer = 0;

	*env_out = NULL;
	if (c->pending_reply != 0) {
		uint64_t first = c->pending_reply;

		c->pending_reply = 0;
		if ((rc = pb__phone_reply(c, first, &in)) != 0)
			return rc;
		pb__envelope_free(in);
		in = NULL;
	}
	rc = pb__client_recv(c, &in, &peer);
	if (rc == PB_EPEER_ERROR)
		return peer < 0 ? peer : PB_EPEER_ERROR;
	if (rc != 0)
		return rc;
	if (in->body_case != PEERBACK__ENVELOPE__BODY_REPLY || in->reply->id != id) {
		pb__envelope_free(in);
		return PB_EENV_UNEXPECTED;
	}
	if (in->reply->op_case == PEERBACK__REPLY__OP_ERROR) {
		rc = in->reply->error->code < 0 ? in->reply->error->code : PB_EPEER_ERROR;
		pb__envelope_free(in);
		return rc;
	}
	*env_out = in;
	return 0;
}

int pb__phone_call(pb_client_t *c, Peerback__Request *req, pb_envelope_t **env_out)
{
	pb_envelope_t *in = NULL;
	int rc = pb__phone_send(c, req);

	if (rc == 0)
		rc = pb__phone_reply(c, req->id, &in);
	if (env_out != NULL)
		*env_out = in;
	else
		pb__envelope_free(in);
	return rc;
}

int pb__phone_call_expect(pb_client_t *c, Peerback__Request *req, Peerback__Reply__OpCase want,
			   pb_envelope_t **env_out)
{
	int rc = pb__phone_call(c, req, env_out);

	if (rc != 0)
		return rc;
	if ((*env_out)->reply->op_case != want) {
		pb__envelope_free(*env_out);
		*env_out = NULL;
		return PB_EENV_MALFORMED;
	}
	return 0;
}

int pb__phone_chunk_put(pb_client_t *c, uint64_t id, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *data,
			size_t len)
{
	Peerback__Request req;
	Peerback__ChunkPut put;

	peerback__request__init(&req);
	peerback__chunk_put__init(&put);
	put.name.data = (uint8_t *)name;
	put.name.len = PB_STORE_NAME_LEN;
	put.data.data = (uint8_t *)data;
	put.data.len = len;
	req.id = id;
	req.op_case = PEERBACK__REQUEST__OP_CHUNK_PUT;
	req.chunk_put = &put;
	return pb__phone_send(c, &req);
}

/* A ping asked for; its answer is read by the caller (wait) or before
 * the next reply read (not wait). */
static int send_ping(pb_client_t *c, uint64_t id, bool wait)
{
	Peerback__Request req;
	Peerback__Ping ping;
	int rc;

	peerback__request__init(&req);
	peerback__ping__init(&ping);
	req.id = id;
	req.op_case = PEERBACK__REQUEST__OP_PING;
	req.ping = &ping;
	if (wait)
		return pb__phone_call(c, &req, NULL);
	/* Held: the next request, or the next wait, pushes it. */
	if ((rc = pb__phone_send_more(c, &req)) == 0)
		c->pending_reply = id;
	return rc;
}

int pb__phone_ping(pb_client_t *c, uint64_t id)
{
	return send_ping(c, id, true);
}

int pb__phone_blob_put(pb_client_t *c, uint64_t id, const char *key, const uint8_t *val, size_t len)
{
	Peerback__Request req;
	Peerback__BlobPut put;

	peerback__request__init(&req);
	peerback__blob_put__init(&put);
	if (key != NULL)
		put.key = (char *)key;
	put.value.data = (uint8_t *)val;
	put.value.len = len;
	req.id = id;
	req.op_case = PEERBACK__REQUEST__OP_MASTERKEY_PUT;
	req.masterkey_put = &put;
	return pb__phone_call(c, &req, NULL);
}

/* --- The account challenge/response ----------------------------------------- */

/* Reads the next envelope; an Error from the host becomes its code. */
static int expect(pb_client_t *c, Peerback__Envelope__BodyCase want, pb_envelope_t **out)
{
	int peer = 0, rc = pb__client_recv(c, out, &peer);

	if (rc == PB_EPEER_ERROR)
		return peer < 0 && peer >= PB_ERR_MIN ? peer : PB_EPEER_ERROR;
	if (rc != 0)
		return rc;
	if ((*out)->body_case != want) {
		pb__envelope_free(*out);
		*out = NULL;
		return PB_EENV_UNEXPECTED;
	}
	return 0;
}

static void send_error(pb_client_t *c, int code)
{
	pb__session_send_error(&c->sess, code, NULL);
}

/* Runs step 5 of the pairing flow on an established session. */
static int authenticate(pb_client_t *c, const pb_identity_t *id, const pb_account_t *acct,
			const Peerback__SignedBlob *cert, const Peerback__SignedBlob *ticket,
			const uint8_t host_static[32], const pb_pair_faults_t *faults, char *host_name, size_t name_cap)
{
	pb_envelope_t *in = NULL, env;
	Peerback__AuthResponse resp;
	Peerback__AuthPassed ok;
	Peerback__Certificate *hc = NULL;
	uint8_t challenge[PB_CHALLENGE_LEN], sig[64];
	int rc;

	rc = expect(c, PEERBACK__ENVELOPE__BODY_AUTH_CHALLENGE, &in);
	if (rc != 0)
		return rc;
	if (in->auth_challenge->challenge.len != PB_CHALLENGE_LEN) {
		pb__envelope_free(in);
		return PB_EENV_MALFORMED;
	}
	if (in->auth_challenge->min_version > PB_PROTOCOL_VERSION ||
	    in->auth_challenge->max_version < PB_PROTOCOL_VERSION) {
		pb__envelope_free(in);
		send_error(c, PB_EENV_VERSION);
		return PB_EENV_VERSION;
	}
	pb__auth_sign(PB_AUTH_PHONE, c->sess.h, in->auth_challenge->challenge.data, id->sign_sk, sig);
	pb__envelope_free(in);
	if (faults != NULL && faults->signature != NULL)
		memcpy(sig, faults->signature, sizeof(sig));
	if (faults != NULL && faults->signature_out != NULL)
		memcpy(faults->signature_out, sig, sizeof(sig));
	randombytes_buf(challenge, sizeof(challenge));
	peerback__auth_response__init(&resp);
	resp.certificate = (Peerback__SignedBlob *)cert;
	resp.ticket = (Peerback__SignedBlob *)ticket;
	resp.signature.data = sig;
	resp.signature.len = sizeof(sig);
	resp.challenge.data = challenge;
	resp.challenge.len = sizeof(challenge);
	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_AUTH_RESPONSE;
	env.auth_response = &resp;
	if ((rc = pb__client_send(c, &env)) != 0)
		return rc;
	rc = expect(c, PEERBACK__ENVELOPE__BODY_AUTH_HOST, &in);
	if (rc != 0)
		return rc;
	/* The host must hold a certificate of our account, for the very key the
	 * QR code (or the remembered pairing) pinned, and must have signed our
	 * challenge within this handshake. */
	rc = pb__verify_cert(acct->imd_sign_pk, in->auth_host->certificate, pb__now(), &hc);
	if (rc == 0 && strcmp(hc->account, acct->account) != 0) {
		bool is_linked = false;

		if (pb__imd_linked(acct->imd_addr, acct->imd_key, acct->account, hc->account, &is_linked) != 0 ||
		    !is_linked)
			rc = PB_EACCT_WRONG;
	}
	if (rc == 0 && memcmp(hc->static_pk.data, host_static, 32) != 0)
		rc = PB_EACCT_CERT;
	if (rc == 0 && !pb__auth_verify(PB_AUTH_HOST, c->sess.h, challenge, hc->sign_pk.data,
					in->auth_host->signature.data, in->auth_host->signature.len))
		rc = PB_EACCT_SIG;
	if (rc == 0 && host_name != NULL)
		snprintf(host_name, name_cap, "%s", hc->device_name != NULL ? hc->device_name : "");
	if (hc != NULL)
		peerback__certificate__free_unpacked(hc, NULL);
	pb__envelope_free(in);
	if (rc != 0) {
		send_error(c, rc);
		return rc;
	}
	/* (A test holds a handshake here, the host's answer checked and the
	 * phone's last message not sent: test-preauth-memory.) */
	pb__test_point("auth-passed");
	peerback__auth_passed__init(&ok);
	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_AUTH_PASSED;
	env.auth_passed = &ok;
	/* Held: the ping follows at once. */
	if ((rc = pb__client_send_more(c, &env)) != 0)
		return rc;
	/* A round trip confirms the host committed the pairing. A remembered
	 * pairing commits nothing: the answer to the ping is read with the
	 * first reply the phone waits for, and a host that refused after all
	 * fails that one (a short command saves a round trip). */
	return send_ping(c, 1, ticket != NULL);
}

static int load_device(const char *home, pb_identity_t *id, pb_account_t *acct, Peerback__SignedBlob **cert)
{
	int rc = pb__account_load(home, acct);

	if (rc != 0)
		return rc;
	if ((rc = pb__identity_load(home, id)) != 0)
		return rc;
	*cert = peerback__signed_blob__unpack(NULL, acct->cert_len, acct->cert);
	if (*cert == NULL) {
		pb__identity_wipe(id);
		return PB_EACCT_NOT_LOGGED_IN;
	}
	return 0;
}

static int request_ticket(const pb_identity_t *id, const pb_account_t *acct, Peerback__SignedBlob *cert,
			  const uint8_t session_id[PB_SESSION_ID_LEN], uint8_t *out, size_t *out_len)
{
	Peerback__ImdRequest req;
	Peerback__TicketRequest tr;
	Peerback__ImdReply *reply;
	pb_envelope_t *env;
	uint8_t sig[64];
	int rc;

	peerback__imd_request__init(&req);
	peerback__ticket_request__init(&tr);
	tr.certificate = cert;
	tr.session_id.data = (uint8_t *)session_id;
	tr.session_id.len = PB_SESSION_ID_LEN;
	pb__sign_request(PB_IMD_TICKET, session_id, PB_SESSION_ID_LEN, 0, id->sign_sk, sig);
	tr.signature.data = sig;
	tr.signature.len = sizeof(sig);
	req.op_case = PEERBACK__IMD_REQUEST__OP_TICKET_REQUEST;
	req.ticket_request = &tr;
	rc = pb__imd_call(acct->imd_addr, acct->imd_key, &req, &reply, &env);
	if (rc != 0)
		return rc;
	if (reply->op_case != PEERBACK__IMD_REPLY__OP_TICKET ||
	    peerback__signed_blob__get_packed_size(reply->ticket) > PB_CERT_MAX) {
		pb__envelope_free(env);
		return PB_EENV_MALFORMED;
	}
	*out_len = peerback__signed_blob__pack(reply->ticket, out);
	pb__envelope_free(env);
	return 0;
}

int pb__phone_pair(const char *home, const char *uri, int timeout_ms, const pb_pair_faults_t *faults,
		  pb_remembered_host_t *host_out)
{
	pb_identity_t id;
	pb_account_t acct;
	pb_pair_uri_t u;
	Peerback__SignedBlob *cert = NULL, *ticket = NULL;
	pb_session_candidate_t cand;
	pb_remembered_host_t h;
	pb_client_t c;
	uint8_t session_id[PB_SESSION_ID_LEN], tbuf[PB_CERT_MAX];
	size_t tlen = 0;
	int rc;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	rc = pb_uri_parse(uri, strlen(uri), faults != NULL && faults->ignore_expiry ? 0 : pb__now(), &u);
	if (rc != 0)
		return rc;
	rc = load_device(home, &id, &acct, &cert);
	if (rc != 0)
		goto out_wipe_uri;
	pb__session_id(u.secret, session_id);
	if (faults != NULL && faults->ticket != NULL) {
		if (faults->ticket_len > sizeof(tbuf)) {
			rc = PB_EINVAL;
			goto out_free_cert;
		}
		memcpy(tbuf, faults->ticket, faults->ticket_len);
		tlen = faults->ticket_len;
	}
	if (faults == NULL || !faults->skip_ticket_request) {
		uint8_t fresh[PB_CERT_MAX];
		size_t flen;

		rc = request_ticket(&id, &acct, cert, session_id, fresh, &flen);
		if (rc != 0)
			goto out_free_cert;
		if (tlen == 0) {
			memcpy(tbuf, fresh, flen);
			tlen = flen;
		}
	}
	if (faults != NULL && faults->ticket_out != NULL) {
		memcpy(faults->ticket_out, tbuf, tlen);
		*faults->ticket_out_len = tlen;
		if (faults->ticket_only)
			goto out_free_cert;
	}
	if (faults != NULL && faults->cert != NULL) {
		/* Present another certificate to the host than the one the
		 * service vouched for. */
		peerback__signed_blob__free_unpacked(cert, NULL);
		cert = peerback__signed_blob__unpack(NULL, faults->cert_len, faults->cert);
		if (cert == NULL) {
			rc = PB_EINVAL;
			goto out_wipe_id;
		}
	}
	if (tlen > 0) {
		ticket = peerback__signed_blob__unpack(NULL, tlen, tbuf);
		if (ticket == NULL) {
			rc = PB_EACCT_TICKET;
			goto out_free_cert;
		}
	}
	memset(&cand, 0, sizeof(cand));
	cand.protocol = PB_NOISE_PAIRING;
	cand.cfg.rs = u.host_pk;
	cand.cfg.psks[0] = u.secret;
	cand.cfg.npsks = 1;
	cand.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	cand.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	c.timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	rc = pb__client_connect(&c, u.addrs, u.naddrs, CONNECT_TIMEOUT_MS, &cand, NULL);
	if (rc != 0)
		goto out_free_ticket;
	memset(&h, 0, sizeof(h));
	rc = authenticate(&c, &id, &acct, cert, ticket, u.host_pk, faults, h.name, sizeof(h.name));
	if (rc != 0)
		goto out_close;
	memcpy(h.static_pk, u.host_pk, 32);
	snprintf(h.account, sizeof(h.account), "%s", acct.account);
	memcpy(h.addrs, u.addrs, u.naddrs * sizeof(u.addrs[0]));
	h.naddrs = u.naddrs;
	h.paired_at = pb__now();
	rc = remember_host(home, &h);
	if (rc == 0 && host_out != NULL)
		*host_out = h;
out_close:
	pb__client_close(&c);
out_free_ticket:
	if (ticket != NULL)
		peerback__signed_blob__free_unpacked(ticket, NULL);
out_free_cert:
	peerback__signed_blob__free_unpacked(cert, NULL);
out_wipe_id:
	pb__identity_wipe(&id);
out_wipe_uri:
	sodium_memzero(&u, sizeof(u));
	sodium_memzero(tbuf, sizeof(tbuf));
	return rc;
}

static int pick_host(const char *home, const char *which, pb_remembered_host_t *out)
{
	pb_remembered_host_t *hosts = calloc(MAX_HOSTS, sizeof(*hosts));
	int n, rc = PB_EACCT_NOT_PAIRED;

	if (hosts == NULL)
		return PB_ENOMEM;
	n = pb__phone_hosts(home, hosts, MAX_HOSTS);
	if (n < 0)
		rc = n;
	for (int i = 0; i < n; i++) {
		char key[64];

		(void)pb__b64url_encode(hosts[i].static_pk, 32, key, sizeof(key));
		if (which == NULL || strcmp(which, hosts[i].name) == 0 ||
		    (strlen(which) >= 6 && strncmp(key, which, strlen(which)) == 0)) {
			*out = hosts[i];
			rc = 0;
			break;
		}
	}
	free(hosts);
	return rc;
}

/* No remembered address answered: listens for the host's LAN announcement
 * and, when one checks out with new addresses, remembers them in h and in
 * hosts.json. The IK handshake that follows still decides who answers. */
static int rediscover(const char *home, const pb_account_t *acct, pb_remembered_host_t *h, int wait_ms)
{
	struct sockaddr_storage addrs[PB_URI_MAX_ADDRS];
	pb_remembered_host_t *hosts;
	size_t n = 0;
	int count, rc;

	rc = pb__phone_discover(acct->imd_sign_pk, h->static_pk, h->account, wait_ms, addrs, &n);
	if (rc != 0)
		return rc;
	if (n == h->naddrs && memcmp(addrs, h->addrs, n * sizeof(addrs[0])) == 0)
		return PB_ENOTFOUND; /* nothing new to try */
	memcpy(h->addrs, addrs, n * sizeof(addrs[0]));
	h->naddrs = n;
	hosts = calloc(MAX_HOSTS, sizeof(*hosts));
	if (hosts == NULL)
		return PB_ENOMEM;
	count = pb__phone_hosts(home, hosts, MAX_HOSTS);
	for (int i = 0; i < count; i++)
		if (memcmp(hosts[i].static_pk, h->static_pk, 32) == 0) {
			memcpy(hosts[i].addrs, addrs, n * sizeof(addrs[0]));
			hosts[i].naddrs = n;
		}
	/* Keeping the new addresses is a convenience: a phone that cannot
	 * write them still connects, and listens again next time. */
	if (count > 0)
		(void)save_hosts(home, hosts, (size_t)count);
	free(hosts);
	return 0;
}

int pb__phone_connect(const char *home, const char *which, int timeout_ms, pb_client_t *c,
		     pb_remembered_host_t *host_out)
{
	pb_identity_t id;
	pb_account_t acct;
	Peerback__SignedBlob *cert = NULL;
	pb_remembered_host_t h;
	pb_session_candidate_t cand;
	int rc;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	rc = pick_host(home, which, &h);
	if (rc != 0)
		return rc;
	rc = load_device(home, &id, &acct, &cert);
	if (rc != 0)
		return rc;
	memset(&cand, 0, sizeof(cand));
	cand.protocol = PB_NOISE_REMEMBERED;
	cand.cfg.s_priv = id.static_sk;
	cand.s_pub = id.static_pk;
	cand.cfg.rs = h.static_pk;
	cand.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	cand.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	/* The handshake is bounded by the caller's timeout too: a host that
	 * accepts and then stays silent must not hold the phone longer. */
	rc = pb__client_connect_within(c, h.addrs, h.naddrs,
				       timeout_ms > 0 && timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS,
				       timeout_ms > 0 ? timeout_ms : 10000, &cand, NULL);
	/* Unreachable at every remembered address: the host may have moved;
	 * its signed LAN announcement says where. */
	/* Listening takes time: only within what the caller allowed (an NFC
	 * transaction allows little). */
	if (rc != 0 && rc != PB_ENOISE_HANDSHAKE && (timeout_ms <= 0 || timeout_ms >= 2 * DISCOVER_TIMEOUT_MS) &&
	    rediscover(home, &acct, &h, DISCOVER_TIMEOUT_MS) == 0)
		rc = pb__client_connect_within(c, h.addrs, h.naddrs, CONNECT_TIMEOUT_MS,
					       timeout_ms > 0 ? timeout_ms : 10000, &cand, NULL);
	if (rc == 0) {
		c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
		rc = authenticate(c, &id, &acct, cert, NULL, h.static_pk, NULL, NULL, 0);
		if (rc != 0)
			pb__client_close(c);
	}
	if (rc == 0 && host_out != NULL)
		*host_out = h;
	peerback__signed_blob__free_unpacked(cert, NULL);
	pb__identity_wipe(&id);
	return rc;
}
