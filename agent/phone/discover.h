/* LAN announcements: a running host tells the phones on its network where
 * it is, so a remembered phone finds it again after its address changed.
 * Private to the library and its programs.
 *
 * One UDP datagram (IPv4 broadcast to PB_ANNOUNCE_PORT, every few seconds):
 *
 *   "PBAN" | version 1 | unix time (8, big-endian) | port (2) | n (1)
 *   | n x IPv4 address (4) | certificate length (2) | certificate
 *   | Ed25519 signature (64)
 *
 * The certificate is the host's own (a packed SignedBlob from the account
 * service); the signature, by the certificate's signing key, covers every
 * byte before it. A phone believes an announcement only when the service it
 * trusts signed the certificate, the certificate names the static key and
 * account it remembers, and the signature holds; even then the IK handshake
 * with the remembered key is what authenticates the host, so a forged or
 * replayed announcement can at most make the phone try a wrong address. */
#ifndef PB_AGENT_DISCOVER_H
#define PB_AGENT_DISCOVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "agent/account/account.h"
#include "peerback/qr.h"

#define PB_ANNOUNCE_PORT 7451
#define PB_ANNOUNCE_MAX_ADDRS 8
#define PB_ANNOUNCE_MAX 1400
/* Announcements older or newer than this many seconds are ignored. */
#define PB_ANNOUNCE_WINDOW 600

/* Builds an announcement of the IPv4 addresses among addrs, all with port,
 * into out (PB_ANNOUNCE_MAX bytes); returns its length or an error. */
__attribute__((warn_unused_result)) int pb__announce_build(const pb_identity_t *id, const pb_account_t *acct,
							   const struct sockaddr_storage *addrs, size_t naddrs,
							   uint16_t port, uint64_t now, uint8_t *out);

/* Checks an announcement for the host with static key host_pk on account,
 * against the service key service_pk and the time now; on success fills
 * addrs (PB_URI_MAX_ADDRS) and *naddrs. PB_EMALFORMED, PB_EACCT_CERT,
 * PB_EACCT_CERT_EXPIRED, PB_EACCT_SIG or PB_ENOTFOUND (another host). */
__attribute__((warn_unused_result)) int pb__announce_parse(const uint8_t *buf, size_t len,
							   const uint8_t service_pk[32], const uint8_t host_pk[32],
							   const char *account, uint64_t now,
							   struct sockaddr_storage *addrs, size_t *naddrs);

/* The UDP port announcements go to: PEERBACK_ANNOUNCE_PORT from the
 * environment when set to 1-65535, else PB_ANNOUNCE_PORT. */
uint16_t pb__announce_port(void);

/* Listens up to timeout_ms for an announcement of that host and returns its
 * addresses: 0, PB_ETIMEOUT, or a socket error. */
__attribute__((warn_unused_result)) int pb__phone_discover(const uint8_t service_pk[32], const uint8_t host_pk[32],
							   const char *account, int timeout_ms,
							   struct sockaddr_storage *addrs, size_t *naddrs);

#endif
