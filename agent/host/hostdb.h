/* The host's pairing state in SQLite (HOME/host.db): paired devices, the
 * pairing secrets it advertised, and connect tickets already used. Private
 * to the library. */
#ifndef PB_AGENT_HOSTDB_H
#define PB_AGENT_HOSTDB_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "agent/account/account.h"

typedef struct pb_hostdb_s {
	sqlite3 *db;
} pb_hostdb_t;

typedef struct pb_paired_device_s {
	uint8_t device_id[PB_DEVICE_ID_LEN];
	char account[PB_ACCOUNT_MAX + 1];
	char name[65];
	uint8_t static_pk[32];
	uint8_t sign_pk[32];
	uint64_t paired_at;
	uint64_t last_seen;
	bool revoked;
} pb_paired_device_t;

typedef struct pb_host_secret_s {
	uint8_t secret[32];
	uint8_t session_id[PB_SESSION_ID_LEN];
	uint64_t not_after;
	bool used;
} pb_host_secret_t;

__attribute__((warn_unused_result)) int pb__hostdb_open(const char *home, pb_hostdb_t *h);
void pb__hostdb_close(pb_hostdb_t *h);

/* Records an advertised secret. */
__attribute__((warn_unused_result)) int pb__hostdb_add_secret(pb_hostdb_t *h, const pb_host_secret_t *s);
/* The most recent secrets (newest first), at most max, advertised within
 * the last hour: live ones to accept, used and expired ones to refuse with
 * a clear error. Returns the count. */
int pb__hostdb_recent_secrets(pb_hostdb_t *h, pb_host_secret_t *out, int max);

/* Looks a device up by its Noise static key: PB_EACCT_UNKNOWN_DEVICE when
 * unknown. Revoked devices are returned with revoked set. */
__attribute__((warn_unused_result)) int pb__hostdb_find_device(pb_hostdb_t *h, const uint8_t static_pk[32],
							       pb_paired_device_t *out);
/* True when the ticket id was already used. */
bool pb__hostdb_ticket_used(pb_hostdb_t *h, const uint8_t ticket_id[16]);

/* Commits a first pairing in one transaction: the device (renewing an
 * earlier pairing of the same device id and keys), its certificate (a
 * packed SignedBlob, if cert_len > 0), the secret marked used, the ticket
 * marked used. PB_EACCT_DEVICE_TAKEN, and nothing written, when the device
 * id is paired with other keys or the static key with another device id. */
__attribute__((warn_unused_result)) int pb__hostdb_commit_pairing(pb_hostdb_t *h, const pb_paired_device_t *dev,
								  const uint8_t *cert, size_t cert_len,
								  const uint8_t session_id[PB_SESSION_ID_LEN],
								  const uint8_t ticket_id[16]);
/* Keeps a device's latest certificate (written only when it changed). */
__attribute__((warn_unused_result)) int pb__hostdb_keep_cert(pb_hostdb_t *h, const uint8_t device_id[PB_DEVICE_ID_LEN],
							     const uint8_t *cert, size_t len);
/* The certificate kept for a device into out (cap bytes): PB_ENOTFOUND when
 * the host holds none. */
__attribute__((warn_unused_result)) int pb__hostdb_device_cert(pb_hostdb_t *h,
							       const uint8_t device_id[PB_DEVICE_ID_LEN],
							       uint8_t *out, size_t cap, size_t *len);
/* Notes a remembered device's connection. */
void pb__hostdb_seen(pb_hostdb_t *h, const uint8_t device_id[PB_DEVICE_ID_LEN]);

/* Revokes the device whose id (hex) or name matches: PB_ENOTFOUND, or
 * PB_EEXISTS when several match. */
__attribute__((warn_unused_result)) int pb__hostdb_revoke(pb_hostdb_t *h, const char *which,
							  pb_paired_device_t *out);
/* The one device whose id (hex, or 8+ hex digits) or name matches:
 * PB_ENOTFOUND, or PB_EEXISTS when several match. */
__attribute__((warn_unused_result)) int pb__hostdb_match(pb_hostdb_t *h, const char *which, pb_paired_device_t *out);
__attribute__((warn_unused_result)) int pb__hostdb_device_by_id(pb_hostdb_t *h, const uint8_t device[PB_DEVICE_ID_LEN],
								pb_paired_device_t *out);

/* A remote instruction queued for a device. Pointers valid during the
 * callback only. */
typedef struct pb_instruction_s {
	int64_t id;
	uint8_t device[PB_DEVICE_ID_LEN];
	char op[24];
	char iccid[24];
	uint8_t peer[PB_DEVICE_ID_LEN];
	bool has_peer;
	const uint8_t *payload;
	size_t payload_len;
	char state[16];   /* queued, done, refused */
	char result[256];
	uint64_t created, updated;
} pb_instruction_t;

/* Queues an instruction for device; *id (may be NULL) gets its number. */
__attribute__((warn_unused_result)) int pb__hostdb_instruct(pb_hostdb_t *h, const uint8_t device[PB_DEVICE_ID_LEN],
							    const char *op, const char *iccid, const uint8_t *peer,
							    const uint8_t *payload, size_t plen, int64_t *id);
/* Calls cb for the instructions of device (queued ones only, if asked), or
 * for every instruction when device is NULL; a non-zero return stops. */
int pb__hostdb_instructions(pb_hostdb_t *h, const uint8_t *device, bool queued_only,
			    int (*cb)(void *arg, const pb_instruction_t *in), void *arg);
/* Records a device's answer to its instruction (one transaction); an
 * exported profile becomes the destination's install instruction. */
__attribute__((warn_unused_result)) int pb__hostdb_ack(pb_hostdb_t *h, int64_t id, const uint8_t device[PB_DEVICE_ID_LEN],
						       bool ok, const char *result, const uint8_t *payload, size_t plen);

/* The storage a device may use on the host unless its owner set another
 * quota (peerback host quota): pack bytes, snapshot records and blobs of
 * its namespace (docs/STORAGE.md). */
#define PB_HOST_QUOTA_DEFAULT (64ull << 30)

/* Sets a device's quota in bytes, or (reset) gives it the default again. */
__attribute__((warn_unused_result)) int pb__hostdb_set_quota(pb_hostdb_t *h, const uint8_t device[PB_DEVICE_ID_LEN],
							     uint64_t bytes, bool reset);
/* A device's quota in bytes; *is_default (may be NULL) says whether it is
 * the default. The default also when the state cannot be read. */
uint64_t pb__hostdb_quota(pb_hostdb_t *h, const uint8_t device[PB_DEVICE_ID_LEN], bool *is_default);

/* Calls cb for every paired device. */
int pb__hostdb_list(pb_hostdb_t *h, void (*cb)(void *arg, const pb_paired_device_t *d), void *arg);

#endif
