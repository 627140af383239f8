/* Device identity, account state, certificates, tickets and signatures. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback.h"
#include "peerback/noise.h"
#include "agent/account/account.h"
#include "agent/util/fsutil.h"

#define IDENTITY_LEN (PB_DEVICE_ID_LEN + 64 + 32)

int pb__identity_load(const char *home, pb_identity_t *id)
{
	char path[4096];
	uint8_t *buf = NULL, fresh[IDENTITY_LEN];
	size_t len;
	int rc;

	rc = pb__path_join(path, sizeof(path), home, "identity.key");
	if (rc != 0)
		return rc;
	rc = pb__read_file(path, 1024, &buf, &len);
	if (rc == -ENOENT) {
		randombytes_buf(id->device_id, PB_DEVICE_ID_LEN);
		crypto_sign_keypair(id->sign_pk, id->sign_sk);
		pb_noise_keypair(id->static_pk, id->static_sk);
		memcpy(fresh, id->device_id, PB_DEVICE_ID_LEN);
		memcpy(fresh + PB_DEVICE_ID_LEN, id->sign_sk, 64);
		memcpy(fresh + PB_DEVICE_ID_LEN + 64, id->static_sk, 32);
		rc = pb__write_file_atomic(path, fresh, sizeof(fresh), 0600);
		sodium_memzero(fresh, sizeof(fresh));
		return rc;
	}
	if (rc != 0)
		return rc;
	if (len != IDENTITY_LEN) {
		rc = PB_ESTORE_CORRUPT;
		goto out_wipe;
	}
	memcpy(id->device_id, buf, PB_DEVICE_ID_LEN);
	memcpy(id->sign_sk, buf + PB_DEVICE_ID_LEN, 64);
	crypto_sign_ed25519_sk_to_pk(id->sign_pk, id->sign_sk);
	memcpy(id->static_sk, buf + PB_DEVICE_ID_LEN + 64, 32);
	rc = pb_noise_pubkey(id->static_sk, id->static_pk);
out_wipe:
	sodium_memzero(buf, len);
	free(buf);
	return rc;
}

int pb__identity_device_id(const char *home, uint8_t out[PB_DEVICE_ID_LEN])
{
	char path[4096];
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	rc = pb__path_join(path, sizeof(path), home, "identity.key");
	if (rc == 0)
		rc = pb__read_file(path, 1024, &buf, &len);
	if (rc != 0)
		return rc;
	if (len == IDENTITY_LEN)
		memcpy(out, buf, PB_DEVICE_ID_LEN);
	else
		rc = PB_ESTORE_CORRUPT;
	sodium_memzero(buf, len);
	free(buf);
	return rc;
}

void pb__identity_wipe(pb_identity_t *id)
{
	sodium_memzero(id, sizeof(*id));
}

static int get_key(json_t *root, const char *name, uint8_t out[32])
{
	const char *s = json_string_value(json_object_get(root, name));

	if (s == NULL)
		return PB_ESTORE_CORRUPT;
	return pb__b64url_decode(s, out, 32) == 0 ? 0 : PB_ESTORE_CORRUPT;
}

static int copy_str(json_t *root, const char *name, char *out, size_t cap)
{
	const char *s = json_string_value(json_object_get(root, name));
	size_t n;

	if (s == NULL)
		return PB_ESTORE_CORRUPT;
	n = strlen(s);
	if (n >= cap)
		return PB_ESTORE_CORRUPT;
	memcpy(out, s, n + 1);
	return 0;
}

int pb__account_load(const char *home, pb_account_t *acct)
{
	char path[4096];
	uint8_t *buf = NULL;
	size_t len;
	json_t *root;
	json_error_t jerr;
	int rc;

	memset(acct, 0, sizeof(*acct));
	if ((rc = pb__path_join(path, sizeof(path), home, "account.json")) != 0)
		return rc;
	rc = pb__read_file(path, 65536, &buf, &len);
	if (rc == -ENOENT)
		return PB_EACCT_NOT_LOGGED_IN;
	if (rc != 0)
		return rc;
	root = json_loadb((const char *)buf, len, 0, &jerr);
	free(buf);
	if (root == NULL)
		return PB_ESTORE_CORRUPT;
	rc = copy_str(root, "account", acct->account, sizeof(acct->account));
	if (rc == 0)
		rc = copy_str(root, "device_name", acct->device_name, sizeof(acct->device_name));
	if (rc == 0)
		rc = copy_str(root, "imd", acct->imd_addr, sizeof(acct->imd_addr));
	if (rc == 0)
		rc = get_key(root, "imd_key", acct->imd_key);
	if (rc == 0)
		rc = get_key(root, "imd_sign_pk", acct->imd_sign_pk);
	json_decref(root);
	if (rc != 0)
		return rc;
	if ((rc = pb__path_join(path, sizeof(path), home, "cert.bin")) != 0)
		return rc;
	rc = pb__read_file(path, PB_CERT_MAX, &buf, &len);
	if (rc == -ENOENT)
		return PB_EACCT_NOT_LOGGED_IN;
	if (rc != 0)
		return rc == PB_ETOOBIG ? PB_ESTORE_CORRUPT : rc;
	memcpy(acct->cert, buf, len);
	acct->cert_len = len;
	free(buf);
	return 0;
}

int pb__account_save(const char *home, const pb_account_t *acct)
{
	char path[4096], k1[64], k2[64];
	json_t *root;
	char *text;
	int rc;

	if ((rc = pb__path_join(path, sizeof(path), home, "cert.bin")) != 0)
		return rc;
	rc = pb__write_file_atomic(path, acct->cert, acct->cert_len, 0600);
	if (rc != 0)
		return rc;
	(void)pb__b64url_encode(acct->imd_key, 32, k1, sizeof(k1));
	(void)pb__b64url_encode(acct->imd_sign_pk, 32, k2, sizeof(k2));
	root = json_pack("{s:s, s:s, s:s, s:s, s:s}", "account", acct->account, "device_name", acct->device_name,
			 "imd", acct->imd_addr, "imd_key", k1, "imd_sign_pk", k2);
	if (root == NULL)
		return PB_ENOMEM;
	text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	if (text == NULL)
		return PB_ENOMEM;
	if ((rc = pb__path_join(path, sizeof(path), home, "account.json")) == 0)
		rc = pb__write_file_atomic(path, text, strlen(text), 0600);
	free(text);
	return rc;
}

static int sign_body(const uint8_t sign_sk[64], uint8_t *body, size_t len, Peerback__SignedBlob *out)
{
	peerback__signed_blob__init(out);
	out->signature.data = malloc(crypto_sign_BYTES);
	if (out->signature.data == NULL) {
		free(body);
		return PB_ENOMEM;
	}
	crypto_sign_detached(out->signature.data, NULL, body, len, sign_sk);
	out->signature.len = crypto_sign_BYTES;
	out->body.data = body;
	out->body.len = len;
	return 0;
}

int pb__sign_cert(const uint8_t sign_sk[64], const Peerback__Certificate *cert, Peerback__SignedBlob *out)
{
	size_t len = peerback__certificate__get_packed_size(cert);
	uint8_t *body = malloc(len ? len : 1);

	if (body == NULL)
		return PB_ENOMEM;
	peerback__certificate__pack(cert, body);
	return sign_body(sign_sk, body, len, out);
}

int pb__sign_ticket(const uint8_t sign_sk[64], const Peerback__Ticket *t, Peerback__SignedBlob *out)
{
	size_t len = peerback__ticket__get_packed_size(t);
	uint8_t *body = malloc(len ? len : 1);

	if (body == NULL)
		return PB_ENOMEM;
	peerback__ticket__pack(t, body);
	return sign_body(sign_sk, body, len, out);
}

void pb__signed_blob_clear(Peerback__SignedBlob *b)
{
	free(b->body.data);
	free(b->signature.data);
	peerback__signed_blob__init(b);
}

static bool signed_by(const uint8_t pk[32], const Peerback__SignedBlob *blob)
{
	return blob != NULL && blob->signature.len == crypto_sign_BYTES && blob->body.len <= PB_CERT_MAX &&
	       crypto_sign_verify_detached(blob->signature.data, blob->body.data, blob->body.len, pk) == 0;
}

int pb__verify_cert(const uint8_t service_pk[32], const Peerback__SignedBlob *blob, uint64_t now,
		    Peerback__Certificate **out)
{
	Peerback__Certificate *c;

	*out = NULL;
	if (!signed_by(service_pk, blob))
		return PB_EACCT_CERT;
	c = peerback__certificate__unpack(NULL, blob->body.len, blob->body.data);
	if (c == NULL)
		return PB_EACCT_CERT;
	if (c->device_id.len != PB_DEVICE_ID_LEN || c->sign_pk.len != 32 || c->static_pk.len != 32 ||
	    c->account == NULL || c->account[0] == 0 || strlen(c->account) > PB_ACCOUNT_MAX) {
		peerback__certificate__free_unpacked(c, NULL);
		return PB_EACCT_CERT;
	}
	if (now < c->not_before || now > c->not_after) {
		peerback__certificate__free_unpacked(c, NULL);
		return PB_EACCT_CERT_EXPIRED;
	}
	*out = c;
	return 0;
}

int pb__verify_ticket(const uint8_t service_pk[32], const Peerback__SignedBlob *blob, uint64_t now,
		      Peerback__Ticket **out)
{
	Peerback__Ticket *t;

	*out = NULL;
	if (!signed_by(service_pk, blob))
		return PB_EACCT_TICKET;
	t = peerback__ticket__unpack(NULL, blob->body.len, blob->body.data);
	if (t == NULL)
		return PB_EACCT_TICKET;
	if (t->session_id.len != PB_SESSION_ID_LEN || t->phone_device_id.len != PB_DEVICE_ID_LEN ||
	    t->ticket_id.len != 16 || t->account == NULL || now > t->not_after) {
		peerback__ticket__free_unpacked(t, NULL);
		return PB_EACCT_TICKET;
	}
	*out = t;
	return 0;
}

/* Decodes one UTF-8 sequence at s (n bytes left): its length, or 0 when it
 * is not the shortest form of a scalar value. */
static size_t utf8_next(const uint8_t *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		min = 0x80;
		*cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		min = 0x800;
		*cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		min = 0x10000;
		*cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3f);
	}
	if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return len;
}

bool pb__name_valid(const char *name)
{
	const uint8_t *s = (const uint8_t *)name;
	size_t n = strlen(name), i = 0;

	if (n == 0 || n > PB_NAME_MAX)
		return false;
	while (i < n) {
		uint32_t cp;
		size_t len = utf8_next(s + i, n - i, &cp);

		if (len == 0)
			return false;
		/* Characters that move the cursor, end a line or reorder text
		 * would let a name forge output around it. */
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
		    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
			return false;
		i += len;
	}
	return true;
}

void pb__session_id(const uint8_t secret[32], uint8_t id[PB_SESSION_ID_LEN])
{
	static const char label[] = "peerback/session";

	crypto_generichash_blake2b(id, PB_SESSION_ID_LEN, (const uint8_t *)label, sizeof(label) - 1, secret, 32);
}

static void auth_message(const char *label, const uint8_t h[64], const uint8_t challenge[PB_CHALLENGE_LEN],
			 uint8_t *msg, size_t *len)
{
	size_t l = strlen(label);

	memcpy(msg, label, l);
	msg[l] = 0;
	memcpy(msg + l + 1, h, 64);
	memcpy(msg + l + 1 + 64, challenge, PB_CHALLENGE_LEN);
	*len = l + 1 + 64 + PB_CHALLENGE_LEN;
}

void pb__auth_sign(const char *label, const uint8_t h[64], const uint8_t challenge[PB_CHALLENGE_LEN],
		   const uint8_t sign_sk[64], uint8_t sig[64])
{
	uint8_t msg[64 + 1 + 64 + PB_CHALLENGE_LEN];
	size_t len;

	auth_message(label, h, challenge, msg, &len);
	crypto_sign_detached(sig, NULL, msg, len, sign_sk);
}

bool pb__auth_verify(const char *label, const uint8_t h[64], const uint8_t challenge[PB_CHALLENGE_LEN],
		     const uint8_t sign_pk[32], const uint8_t *sig, size_t sig_len)
{
	uint8_t msg[64 + 1 + 64 + PB_CHALLENGE_LEN];
	size_t len;

	if (sig_len != crypto_sign_BYTES)
		return false;
	auth_message(label, h, challenge, msg, &len);
	return crypto_sign_verify_detached(sig, msg, len, sign_pk) == 0;
}

static size_t request_message(const char *label, const uint8_t *data, size_t len, uint64_t num, uint8_t *msg)
{
	size_t l = strlen(label);

	memcpy(msg, label, l);
	msg[l] = 0;
	memcpy(msg + l + 1, data, len);
	for (int i = 0; i < 8; i++)
		msg[l + 1 + len + (size_t)i] = (uint8_t)(num >> (8 * i));
	return l + 1 + len + 8;
}

void pb__sign_request(const char *label, const uint8_t *data, size_t len, uint64_t num, const uint8_t sign_sk[64],
		      uint8_t sig[64])
{
	uint8_t msg[256];

	if (len > 128)
		len = 128;
	crypto_sign_detached(sig, NULL, msg, request_message(label, data, len, num, msg), sign_sk);
}

bool pb__verify_request(const char *label, const uint8_t *data, size_t len, uint64_t num, const uint8_t sign_pk[32],
			const uint8_t *sig, size_t sig_len)
{
	uint8_t msg[256];

	if (sig_len != crypto_sign_BYTES || len > 128)
		return false;
	return crypto_sign_verify_detached(sig, msg, request_message(label, data, len, num, msg), sign_pk) == 0;
}
