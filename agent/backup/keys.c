/* The phone's key hierarchy: a random master key, one subkey per purpose
 * derived from it, and the master key wrapped with a recovery passphrase so
 * that the host can keep it for a new phone without being able to read it. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peerback/error.h"
#include "peerback/store.h"

#define KDF_CONTEXT "pbbackup"
enum { SUBKEY_CHUNK = 1, SUBKEY_NAME = 2, SUBKEY_MANIFEST = 3, SUBKEY_GEAR = 4 };

/* Wrapped key layout: header and parameters (the associated data), then the
 * nonce and the sealed key. */
#define WRAP_MAGIC "PBMK"
#define WRAP_VERSION 1
#define WRAP_ALG_ARGON2ID13 1
#define WRAP_SALT_OFF 24
#define WRAP_AD_LEN (WRAP_SALT_OFF + crypto_pwhash_SALTBYTES)
#define WRAP_NONCE_OFF WRAP_AD_LEN
#define WRAP_CT_OFF (WRAP_NONCE_OFF + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
/* Limits an unwrapped blob may ask for: a hostile blob must not make the
 * phone spend minutes or gigabytes. */
#define WRAP_OPS_MAX 16
#define WRAP_MEM_MAX (1024ull * 1024 * 1024)

_Static_assert(WRAP_CT_OFF + PB_MASTERKEY_LEN + crypto_aead_xchacha20poly1305_ietf_ABYTES ==
		       PB_MASTERKEY_WRAPPED_LEN,
	       "wrapped master key layout");

static void put_le64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

pb_pwhash_params_t pb_pwhash_params_moderate(void)
{
	pb_pwhash_params_t p = {crypto_pwhash_OPSLIMIT_MODERATE, crypto_pwhash_MEMLIMIT_MODERATE};

	return p;
}

pb_pwhash_params_t pb_pwhash_params_interactive(void)
{
	pb_pwhash_params_t p = {crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE};

	return p;
}

/* Counts UTF-8 code points (a byte that does not start one counts as one)
 * and how many different ones there are among the first 64. */
int pb_passphrase_check(const char *passphrase)
{
	uint32_t seen[64];
	size_t chars = 0, distinct = 0;
	const unsigned char *p = (const unsigned char *)passphrase;

	if (passphrase == NULL)
		return PB_EINVAL;
	while (*p != 0) {
		uint32_t cp = *p++;
		size_t i;

		if (cp >= 0xc0)
			while ((*p & 0xc0) == 0x80)
				cp = cp << 6 | (*p++ & 0x3f);
		chars++;
		for (i = 0; i < distinct && seen[i] != cp; i++)
			;
		if (i == distinct && distinct < sizeof(seen) / sizeof(seen[0]))
			seen[distinct++] = cp;
	}
	sodium_memzero(seen, sizeof(seen));
	if (chars < PB_PASSPHRASE_MIN_CHARS || distinct < PB_PASSPHRASE_MIN_DISTINCT)
		return PB_ESTORE_WEAKPASS;
	return 0;
}

void pb_masterkey_generate(uint8_t mk[PB_MASTERKEY_LEN])
{
	if (sodium_init() < 0)
		abort();
	randombytes_buf(mk, PB_MASTERKEY_LEN);
}

void pb_backup_keys_derive(const uint8_t mk[PB_MASTERKEY_LEN], pb_backup_keys_t *keys)
{
	crypto_kdf_derive_from_key(keys->chunk, sizeof(keys->chunk), SUBKEY_CHUNK, KDF_CONTEXT, mk);
	crypto_kdf_derive_from_key(keys->name, sizeof(keys->name), SUBKEY_NAME, KDF_CONTEXT, mk);
	crypto_kdf_derive_from_key(keys->manifest, sizeof(keys->manifest), SUBKEY_MANIFEST, KDF_CONTEXT, mk);
	crypto_kdf_derive_from_key(keys->gear, sizeof(keys->gear), SUBKEY_GEAR, KDF_CONTEXT, mk);
}

void pb_backup_keys_wipe(pb_backup_keys_t *keys)
{
	if (keys != NULL)
		sodium_memzero(keys, sizeof(*keys));
}

static int params_ok(uint64_t ops, uint64_t mem)
{
	return ops >= crypto_pwhash_OPSLIMIT_MIN && ops <= WRAP_OPS_MAX &&
	       mem >= crypto_pwhash_MEMLIMIT_MIN && mem <= WRAP_MEM_MAX;
}

static int derive_wrap_key(uint8_t key[32], const char *pass, const uint8_t *salt, uint64_t ops, uint64_t mem)
{
	if (crypto_pwhash(key, 32, pass, strlen(pass), salt, ops, (size_t)mem,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return PB_ENOMEM; /* libsodium fails only when it cannot allocate */
	return 0;
}

int pb_masterkey_wrap(const uint8_t mk[PB_MASTERKEY_LEN], const char *passphrase,
		      const pb_pwhash_params_t *params, uint8_t out[PB_MASTERKEY_WRAPPED_LEN])
{
	pb_pwhash_params_t p = params != NULL ? *params : pb_pwhash_params_moderate();
	uint8_t key[32];
	int rc;

	if (mk == NULL || passphrase == NULL || out == NULL || !params_ok(p.opslimit, p.memlimit))
		return PB_EINVAL;
	if (sodium_init() < 0)
		return PB_ENOMEM;
	memset(out, 0, PB_MASTERKEY_WRAPPED_LEN);
	memcpy(out, WRAP_MAGIC, 4);
	out[4] = WRAP_VERSION;
	out[5] = WRAP_ALG_ARGON2ID13;
	put_le64(out + 8, p.opslimit);
	put_le64(out + 16, p.memlimit);
	randombytes_buf(out + WRAP_SALT_OFF, crypto_pwhash_SALTBYTES);
	randombytes_buf(out + WRAP_NONCE_OFF, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	rc = derive_wrap_key(key, passphrase, out + WRAP_SALT_OFF, p.opslimit, p.memlimit);
	if (rc < 0)
		goto out_wipe;
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + WRAP_CT_OFF, NULL, mk, PB_MASTERKEY_LEN, out,
						   WRAP_AD_LEN, NULL, out + WRAP_NONCE_OFF, key);
out_wipe:
	sodium_memzero(key, sizeof(key));
	return rc;
}

int pb_masterkey_unwrap(const uint8_t *blob, size_t len, const char *passphrase, uint8_t mk[PB_MASTERKEY_LEN])
{
	uint8_t key[32];
	uint64_t ops, mem;
	int rc;

	if (blob == NULL || passphrase == NULL || mk == NULL)
		return PB_EINVAL;
	if (sodium_init() < 0)
		return PB_ENOMEM;
	if (len < 6)
		return PB_ETRUNCATED;
	if (memcmp(blob, WRAP_MAGIC, 4) != 0)
		return PB_EMALFORMED;
	if (blob[4] != WRAP_VERSION || blob[5] != WRAP_ALG_ARGON2ID13)
		return PB_EUNSUPPORTED;
	if (len != PB_MASTERKEY_WRAPPED_LEN)
		return len < PB_MASTERKEY_WRAPPED_LEN ? PB_ETRUNCATED : PB_EMALFORMED;
	ops = get_le64(blob + 8);
	mem = get_le64(blob + 16);
	if (!params_ok(ops, mem))
		return PB_EMALFORMED;
	rc = derive_wrap_key(key, passphrase, blob + WRAP_SALT_OFF, ops, mem);
	if (rc < 0)
		goto out_wipe;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(mk, NULL, NULL, blob + WRAP_CT_OFF,
						       PB_MASTERKEY_LEN + crypto_aead_xchacha20poly1305_ietf_ABYTES,
						       blob, WRAP_AD_LEN, blob + WRAP_NONCE_OFF, key) != 0) {
		sodium_memzero(mk, PB_MASTERKEY_LEN);
		rc = PB_ESTORE_PASSPHRASE;
	}
out_wipe:
	sodium_memzero(key, sizeof(key));
	return rc;
}
