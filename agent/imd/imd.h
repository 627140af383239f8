/* The calls devices make to the IM account service (the service itself is
 * public: peerback/imd.h). Private to the library. */
#ifndef PB_AGENT_IMD_H
#define PB_AGENT_IMD_H

#include <stdbool.h>
#include <stdint.h>

#include "peerback/imd.h"
#include "protocol/envelope.h"

/* Devices reach the service with NK: its static key is pinned at login. */
#define PB_IMD_NOISE "Noise_NK_25519_ChaChaPoly_BLAKE2b"

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
