/* Device identity, account state, certificates, tickets and the account
 * challenge/response signatures. Private to the library.
 *
 * Files under a device's state directory (HOME):
 *   identity.key   device id (16), Ed25519 secret key (64), X25519 private
 *                  key (32); mode 0600
 *   account.json   account id, device name, account service address and keys
 *   cert.bin       the device certificate (a packed SignedBlob) */
#ifndef PB_AGENT_ACCOUNT_H
#define PB_AGENT_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/peerback.pb-c.h"

#define PB_DEVICE_ID_LEN 16
#define PB_SESSION_ID_LEN 16
#define PB_CHALLENGE_LEN 32
#define PB_ACCOUNT_MAX 128
#define PB_CERT_MAX 4096
#define PB_NAME_MAX 64

typedef struct pb_identity_s {
	uint8_t device_id[PB_DEVICE_ID_LEN];
	uint8_t sign_pk[32], sign_sk[64];
	uint8_t static_pk[32], static_sk[32];
} pb_identity_t;

/* Loads HOME/identity.key, creating it on first use. */
__attribute__((warn_unused_result)) int pb__identity_load(const char *home, pb_identity_t *id);
/* The device id of an existing identity.key, without deriving its keys
 * (pb__identity_load computes the X25519 public key). */
__attribute__((warn_unused_result)) int pb__identity_device_id(const char *home, uint8_t out[PB_DEVICE_ID_LEN]);
void pb__identity_wipe(pb_identity_t *id);

typedef struct pb_account_s {
	char account[PB_ACCOUNT_MAX + 1];
	char device_name[65];
	char imd_addr[96];
	uint8_t imd_key[32];      /* the service's X25519 static key (pinned) */
	uint8_t imd_sign_pk[32];  /* the service's Ed25519 key (pinned) */
	uint8_t cert[PB_CERT_MAX];/* packed SignedBlob */
	size_t cert_len;
} pb_account_t;

/* Loads HOME/account.json and HOME/cert.bin: PB_EACCT_NOT_LOGGED_IN when the
 * device never logged in. */
__attribute__((warn_unused_result)) int pb__account_load(const char *home, pb_account_t *acct);
__attribute__((warn_unused_result)) int pb__account_save(const char *home, const pb_account_t *acct);

/* Signs a Certificate or Ticket body into a SignedBlob whose buffers are
 * malloc'd (free with pb__signed_blob_clear). */
__attribute__((warn_unused_result)) int pb__sign_cert(const uint8_t sign_sk[64], const Peerback__Certificate *cert,
						      Peerback__SignedBlob *out);
__attribute__((warn_unused_result)) int pb__sign_ticket(const uint8_t sign_sk[64], const Peerback__Ticket *t,
							Peerback__SignedBlob *out);
void pb__signed_blob_clear(Peerback__SignedBlob *b);

/* Verifies a certificate against the service key and the time now:
 * PB_EACCT_CERT (not signed by that key, malformed) or
 * PB_EACCT_CERT_EXPIRED. On success *out is owned by the caller
 * (peerback__certificate__free_unpacked). */
__attribute__((warn_unused_result)) int pb__verify_cert(const uint8_t service_pk[32], const Peerback__SignedBlob *blob,
							uint64_t now, Peerback__Certificate **out);
/* Same for a connect ticket: PB_EACCT_TICKET or PB_EACCT_TICKET (expired
 * tickets are invalid tickets). */
__attribute__((warn_unused_result)) int pb__verify_ticket(const uint8_t service_pk[32],
							  const Peerback__SignedBlob *blob, uint64_t now,
							  Peerback__Ticket **out);

/* True when name is fit to show and log: 1 to PB_NAME_MAX bytes of valid
 * UTF-8 (shortest form, no surrogates) without control characters (C0, DEL,
 * C1), line or paragraph separators, or bidirectional overrides. */
__attribute__((warn_unused_result)) bool pb__name_valid(const char *name);

/* The pairing session id: BLAKE2b-128("peerback/session" keyed by secret). */
void pb__session_id(const uint8_t secret[32], uint8_t id[PB_SESSION_ID_LEN]);

/* The challenge/response signatures of SPEC step 5: Ed25519 over a label,
 * the handshake hash and the other side's challenge. */
void pb__auth_sign(const char *label, const uint8_t h[64], const uint8_t challenge[PB_CHALLENGE_LEN],
		   const uint8_t sign_sk[64], uint8_t sig[64]);
__attribute__((warn_unused_result)) bool pb__auth_verify(const char *label, const uint8_t h[64],
							 const uint8_t challenge[PB_CHALLENGE_LEN],
							 const uint8_t sign_pk[32], const uint8_t *sig, size_t sig_len);

#define PB_AUTH_PHONE "peerback/auth/phone"
#define PB_AUTH_HOST "peerback/auth/host"
#define PB_IMD_REGISTER "peerback/imd/register"
#define PB_IMD_TICKET "peerback/imd/ticket"

/* Signs label | data with the device key (requests to the service). */
void pb__sign_request(const char *label, const uint8_t *data, size_t len, uint64_t num, const uint8_t sign_sk[64],
		      uint8_t sig[64]);
__attribute__((warn_unused_result)) bool pb__verify_request(const char *label, const uint8_t *data, size_t len,
							    uint64_t num, const uint8_t sign_pk[32],
							    const uint8_t *sig, size_t sig_len);

#endif
