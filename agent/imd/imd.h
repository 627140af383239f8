/* The IM account service (peerback-imd) and the calls devices make to it.
 * Private to the library and its programs. */
#ifndef PB_AGENT_IMD_H
#define PB_AGENT_IMD_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/envelope.h"

/* Devices reach the service with NK: its static key is pinned at login. */
#define PB_IMD_NOISE "Noise_NK_25519_ChaChaPoly_BLAKE2b"

typedef struct pb_imd_s pb_imd_t;

/* Opens (creating on first use) the service state under home: imd.key and
 * imd.db. *out is freed with pb_imd_close. */
__attribute__((warn_unused_result)) int pb_imd_open(const char *home, pb_imd_t **out);
void pb_imd_close(pb_imd_t *imd);

/* The same with another store (agent/imd/store.h), of which *out takes
 * charge, even on failure; the keys stay in home. */
struct pb_imd_store_s;
__attribute__((warn_unused_result)) int pb_imd_open_store(const char *home, struct pb_imd_store_s *store,
							  pb_imd_t **out);

/* Adds an account: PB_EEXISTS when taken, PB_EINVAL for an id outside
 * [A-Za-z0-9._@+-]{1,128} or a password shorter than 8 characters. */
__attribute__((warn_unused_result)) int pb_imd_add_account(pb_imd_t *imd, const char *id, const char *password);

/* Links two accounts as sub-accounts of one owner (both directions). */
__attribute__((warn_unused_result)) int pb_imd_link(pb_imd_t *imd, const char *a, const char *b);

/* Removes the link between two accounts: PB_ENOTFOUND when there was none. */
__attribute__((warn_unused_result)) int pb_imd_unlink(pb_imd_t *imd, const char *a, const char *b);

/* Validity of new certificates and tickets, in seconds (0 keeps the
 * default: 30 days and 120 seconds). */
void pb_imd_set_validity(pb_imd_t *imd, uint64_t cert_seconds, uint64_t ticket_seconds);

/* 0 when the service's store answers (readiness). */
int pb_imd_ready(pb_imd_t *imd);
/* "sqlite" or "postgresql", and the schema version in use. */
const char *pb_imd_store_name(const pb_imd_t *imd);
int pb_imd_schema_version(pb_imd_t *imd);

/* The service's public keys. */
void pb_imd_keys(const pb_imd_t *imd, uint8_t static_pk[32], uint8_t sign_pk[32]);

/* Serves on listen ("ADDR:PORT") until SIGINT or SIGTERM. With json, one
 * JSON object per line on stdout, the first {"event":"listening",...}. */
__attribute__((warn_unused_result)) int pb_imd_serve(pb_imd_t *imd, const char *listen, bool json);

/* A device's request to the service at addr, whose static key is imd_key.
 * On success *reply_out points into *env_out, which the caller frees with
 * pb__envelope_free. A refusal by the service returns its PB_E* code. */
__attribute__((warn_unused_result)) int pb__imd_call(const char *addr, const uint8_t imd_key[32],
						     Peerback__ImdRequest *req, Peerback__ImdReply **reply_out,
						     pb_envelope_t **env_out);

/* Asks the service whether accounts a and b are the same or linked
 * sub-accounts of one owner. */
__attribute__((warn_unused_result)) int pb__imd_linked(const char *addr, const uint8_t imd_key[32], const char *a,
						       const char *b, bool *linked);

#endif
