/* The phone's side of the account and of pairing: login to the account
 * service, first pairing from a QR code (NKpsk0), and authenticated
 * sessions with a remembered host (IK). Private to the library and its
 * programs.
 *
 * Remembered hosts live in HOME/hosts.json. */
#ifndef PB_AGENT_PHONE_H
#define PB_AGENT_PHONE_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/account/account.h"
#include "peerback/qr.h"
#include "peerback/store.h"
#include "protocol/client.h"

typedef struct pb_remembered_host_s {
	uint8_t static_pk[32];
	uint8_t device_id[PB_DEVICE_ID_LEN];
	char account[PB_ACCOUNT_MAX + 1];
	char name[65];
	struct sockaddr_storage addrs[PB_URI_MAX_ADDRS];
	size_t naddrs;
	uint64_t paired_at;
} pb_remembered_host_t;

/* Logs in and stores the account state and certificate under home. */
__attribute__((warn_unused_result)) int pb__phone_login(const char *home, const char *imd_addr, const char *imd_key_b64,
							const char *account, const char *password,
							const char *device_name);

/* Deliberate misbehaviour for tests of the host's checks; all NULL/false
 * in normal use. */
typedef struct pb_pair_faults_s {
	const uint8_t *cert;      /* present this packed SignedBlob as certificate */
	size_t cert_len;
	const uint8_t *ticket;    /* present this packed SignedBlob as ticket */
	size_t ticket_len;
	uint8_t *ticket_out;      /* receives the ticket used (PB_CERT_MAX bytes) */
	size_t *ticket_out_len;
	const uint8_t *signature; /* send this 64-byte signature instead */
	uint8_t *signature_out;   /* receives the signature sent (64 bytes) */
	bool skip_ticket_request; /* do not ask the service for a ticket */
	bool ticket_only;         /* stop once the ticket is in ticket_out */
	bool ignore_expiry;       /* connect even when the QR code expired */
} pb_pair_faults_t;

/* Pairs with the host advertised by uri (text, as from the QR code): asks the
 * service for a connect ticket, runs NKpsk0 and the account
 * challenge/response, and remembers the host. Nothing is written on failure.
 * host_out (may be NULL) receives the host. */
__attribute__((warn_unused_result)) int pb__phone_pair(const char *home, const char *uri, int timeout_ms,
						       const pb_pair_faults_t *faults, pb_remembered_host_t *host_out);

/* Opens an authenticated session with a remembered host (IK, no QR): which
 * is a host name or key prefix, or NULL for the most recently paired. The
 * client is ready for requests; close it with pb__client_close. */
__attribute__((warn_unused_result)) int pb__phone_connect(const char *home, const char *which, int timeout_ms,
							  pb_client_t *c, pb_remembered_host_t *host_out);

/* Lists remembered hosts; returns the count or an error. */
int pb__phone_hosts(const char *home, pb_remembered_host_t *out, size_t max);

/* Forgets the one remembered host which names (name or key prefix of at
 * least 6 characters): PB_ENOTFOUND, PB_EEXISTS when several. */
__attribute__((warn_unused_result)) int pb__phone_forget(const char *home, const char *which);

/* Carries out the instructions the host queued for this phone (on its
 * device directory) and acknowledges each; report (may be NULL) hears of
 * each. Returns how many were handled, or an error. */
int pb__phone_instructions(pb_client_t *c, const char *home, const char *device_dir,
			  void (*report)(void *arg, const char *op, int rc, const char *message), void *arg);

/* A virtual SIM sealed by its source (agent/phone/instructions.c): splits
 * the opened payload into the source's certificate, its signature and the
 * profile rows (pointers into plain). PB_EDATA_FORMAT when malformed. */
__attribute__((warn_unused_result)) int pb__vsim_parse(const uint8_t *plain, size_t len, const uint8_t **cert,
							size_t *cert_len, const uint8_t **sig,
							const uint8_t **profile, size_t *profile_len);
/* Checks the certificate (a packed SignedBlob) of the other device of a
 * copy: signed by the service key, valid at now, naming device, and not the
 * host's own static key. PB_EINSTR_UNVOUCHED or PB_EACCT_CERT_EXPIRED; on
 * success *out is the caller's (peerback__certificate__free_unpacked). */
__attribute__((warn_unused_result)) int pb__vsim_peer_cert(const uint8_t service_pk[32], const uint8_t *blob,
							    size_t len, const uint8_t *device, size_t device_len,
							    const uint8_t host_static[32], uint64_t now,
							    Peerback__Certificate **out);

/* The active SIM identity: ICCID and MSISDN (may be empty) of the first
 * profile in the phone's SIM file; PB_ENOTFOUND when there is none. */
int pb__sim_identity(const char *device_dir, char *iccid, size_t icap, char *msisdn, size_t mcap);

/* Sends a Request and waits for the Reply with the same id. The reply is
 * returned in *env_out (free with pb__envelope_free), or freed when env_out
 * is NULL; a Reply carrying an Error is returned as its code. */
__attribute__((warn_unused_result)) int pb__phone_call(pb_client_t *c, Peerback__Request *req,
							pb_envelope_t **env_out);

/* pb__phone_call whose Reply must be of kind want: any other is
 * PB_EENV_MALFORMED (and freed). */
int pb__phone_call_expect(pb_client_t *c, Peerback__Request *req, Peerback__Reply__OpCase want,
			  pb_envelope_t **env_out);

/* Sends a Request without waiting (req->id as set). */
int pb__phone_send(pb_client_t *c, Peerback__Request *req);
/* pb__phone_send for a request that more follow before the phone waits
 * (pb__client_send_more). */
int pb__phone_send_more(pb_client_t *c, Peerback__Request *req);

/* Reads the Reply to request id, which must come next; as pb__phone_call. */
int pb__phone_reply(pb_client_t *c, uint64_t id, pb_envelope_t **env_out);

/* Sends a ChunkPut of a sealed chunk as request id, without waiting: the
 * commit's reply acknowledges it. */
int pb__phone_chunk_put(pb_client_t *c, uint64_t id, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *data,
			size_t len);

/* A Ping as request id, and its Pong. */
int pb__phone_ping(pb_client_t *c, uint64_t id);

/* Stores a blob on the host (MasterKeyPut; key NULL: the wrapped master
 * key) as request id and waits for the host to take it. */
int pb__phone_blob_put(pb_client_t *c, uint64_t id, const char *key, const uint8_t *val, size_t len);

#endif
