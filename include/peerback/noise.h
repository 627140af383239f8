/* The Noise Protocol Framework (revision 34) with the 25519, ChaChaPoly and
 * BLAKE2b functions, on libsodium.
 *
 * A handshake state runs any fundamental or deferred pattern, with psk
 * modifiers ("Noise_NKpsk0_25519_ChaChaPoly_BLAKE2b", "Noise_IK_...",
 * "Noise_XXpsk0+psk3_..."). After the last handshake message, split() gives
 * one cipher state per direction. Secrets are wiped when freed. */
#ifndef PEERBACK_NOISE_H
#define PEERBACK_NOISE_H

#include "peerback/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_NOISE_KEYLEN 32
#define PB_NOISE_HASHLEN 64
#define PB_NOISE_TAGLEN 16
#define PB_NOISE_MAX_MSG 65535
#define PB_NOISE_MAX_PSKS 4

/* The two patterns of the wire contract, and its prologue. */
#define PB_NOISE_PAIRING "Noise_NKpsk0_25519_ChaChaPoly_BLAKE2b"
#define PB_NOISE_REMEMBERED "Noise_IK_25519_ChaChaPoly_BLAKE2b"
#define PB_NOISE_PROLOGUE "peerback/1"

typedef struct pb_noise_hs_s pb_noise_hs_t;

/* One direction of a transport: key and nonce. Nonce 2^64-1 is reserved; a
 * cipher that reaches it fails with PB_ENOISE_NONCE and never wraps. */
typedef struct pb_noise_cipher_s {
	uint8_t k[PB_NOISE_KEYLEN];
	uint64_t n;
	bool has_key;
} pb_noise_cipher_t;

/* Keys for a handshake. Every pointer is borrowed and copied by
 * pb_noise_hs_new; NULL means absent. */
typedef struct pb_noise_config_s {
	const uint8_t *s_priv;    /* local static X25519 private key (32) */
	const uint8_t *e_priv;    /* fixed local ephemeral, for test vectors only */
	const uint8_t *rs;        /* remote static public key known in advance */
	const uint8_t *psks[PB_NOISE_MAX_PSKS]; /* 32-byte psks, in order of use */
	size_t npsks;
	const uint8_t *prologue;
	size_t prologue_len;
} pb_noise_config_t;

typedef enum pb_noise_action {
	PB_NOISE_WRITE = 1, /* the next step is this side writing a message */
	PB_NOISE_READ = 2,  /* the next step is reading the peer's message */
	PB_NOISE_SPLIT = 3, /* the handshake is complete */
} pb_noise_action_t;

/* Creates a handshake state for protocol_name. Fails with PB_ENOISE_PATTERN
 * for a name or suite this engine does not run, PB_ENOKEY when a key the
 * pattern needs is missing. *out is owned by the caller (pb_noise_hs_free). */
PB_EXTERN PB_WUR int pb_noise_hs_new(const char *protocol_name, bool initiator,
				     const pb_noise_config_t *cfg, pb_noise_hs_t **out);
/* Wipes and frees; accepts NULL. */
PB_EXTERN void pb_noise_hs_free(pb_noise_hs_t *hs);
PB_EXTERN pb_noise_action_t pb_noise_hs_action(const pb_noise_hs_t *hs);

/* Writes the next handshake message carrying payload into out (cap bytes). */
PB_EXTERN PB_WUR int pb_noise_hs_write(pb_noise_hs_t *hs, const uint8_t *payload, size_t plen,
				       uint8_t *out, size_t cap, size_t *out_len);
/* Reads the peer's next handshake message; the payload goes to payload (cap
 * bytes). PB_ENOISE_DECRYPT when it fails authentication, PB_ETRUNCATED when
 * too short. A failed read leaves the state unusable. */
PB_EXTERN PB_WUR int pb_noise_hs_read(pb_noise_hs_t *hs, const uint8_t *msg, size_t len,
				      uint8_t *payload, size_t cap, size_t *plen);
/* After the last message: the cipher for sending and for receiving, and the
 * handshake hash (64 bytes) that binds later signatures to this session. */
PB_EXTERN PB_WUR int pb_noise_hs_split(pb_noise_hs_t *hs, pb_noise_cipher_t *send,
				       pb_noise_cipher_t *recv, uint8_t h[PB_NOISE_HASHLEN]);
/* The peer's static public key once learned (or given), else NULL. Valid
 * while hs lives. */
PB_EXTERN const uint8_t *pb_noise_hs_remote_static(const pb_noise_hs_t *hs);
/* The local static public key, or NULL. */
PB_EXTERN const uint8_t *pb_noise_hs_local_static(const pb_noise_hs_t *hs);

/* Transport: out needs len + 16 bytes (encrypt) or len - 16 (decrypt). */
PB_EXTERN PB_WUR int pb_noise_encrypt(pb_noise_cipher_t *c, const uint8_t *ad, size_t adlen,
				      const uint8_t *in, size_t len, uint8_t *out, size_t cap,
				      size_t *out_len);
PB_EXTERN PB_WUR int pb_noise_decrypt(pb_noise_cipher_t *c, const uint8_t *ad, size_t adlen,
				      const uint8_t *in, size_t len, uint8_t *out, size_t cap,
				      size_t *out_len);
/* Replaces the key as REKEY() of the Noise spec; the nonce is kept. */
PB_EXTERN void pb_noise_rekey(pb_noise_cipher_t *c);
/* Wipes a cipher state. */
PB_EXTERN void pb_noise_cipher_wipe(pb_noise_cipher_t *c);

/* Generates an X25519 key pair. */
PB_EXTERN void pb_noise_keypair(uint8_t pub[32], uint8_t priv[32]);
/* Derives the public key of priv. */
PB_EXTERN PB_WUR int pb_noise_pubkey(const uint8_t priv[32], uint8_t pub[32]);

#ifdef __cplusplus
}
#endif
#endif
