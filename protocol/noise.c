/* The Noise Protocol Framework, revision 34: cipher, symmetric and handshake
 * states for the 25519 / ChaChaPoly / BLAKE2b suite, and a pattern engine
 * for every fundamental and deferred pattern with psk modifiers. */
#include <string.h>

#include <sodium.h>

#include "peerback.h"
#include "peerback/noise.h"
#include "protocol/aead.h"
#include "protocol/session.h"

#define DHLEN 32
#define BLOCKLEN 128
#define MAX_MESSAGES 8
#define MAX_TOKENS 12

enum token { T_E = 1, T_S, T_EE, T_ES, T_SE, T_SS, T_PSK };

/* A pattern as the Noise spec writes it: pre-messages, then messages
 * separated by '|', each starting with "->" or "<-". */
struct pattern_def {
	const char *name;
	const char *pre_i; /* initiator's pre-message tokens, or "" */
	const char *pre_r; /* responder's pre-message tokens, or "" */
	const char *msgs;
};

static const struct pattern_def patterns[] = {
	{ "N", "", "s", "-> e, es" },
	{ "K", "s", "s", "-> e, es, ss" },
	{ "X", "", "s", "-> e, es, s, ss" },
	{ "NN", "", "", "-> e | <- e, ee" },
	{ "NK", "", "s", "-> e, es | <- e, ee" },
	{ "NX", "", "", "-> e | <- e, ee, s, es" },
	{ "XN", "", "", "-> e | <- e, ee | -> s, se" },
	{ "XK", "", "s", "-> e, es | <- e, ee | -> s, se" },
	{ "XX", "", "", "-> e | <- e, ee, s, es | -> s, se" },
	{ "KN", "s", "", "-> e | <- e, ee, se" },
	{ "KK", "s", "s", "-> e, es, ss | <- e, ee, se" },
	{ "KX", "s", "", "-> e | <- e, ee, se, s, es" },
	{ "IN", "", "", "-> e, s | <- e, ee, se" },
	{ "IK", "", "s", "-> e, es, s, ss | <- e, ee, se" },
	{ "IX", "", "", "-> e, s | <- e, ee, se, s, es" },
	{ "NK1", "", "s", "-> e | <- e, ee, es" },
	{ "NX1", "", "", "-> e | <- e, ee, s | -> es" },
	{ "X1N", "", "", "-> e | <- e, ee | -> s | <- se" },
	{ "X1K", "", "s", "-> e, es | <- e, ee | -> s | <- se" },
	{ "XK1", "", "s", "-> e | <- e, ee, es | -> s, se" },
	{ "X1K1", "", "s", "-> e | <- e, ee, es | -> s | <- se" },
	{ "X1X", "", "", "-> e | <- e, ee, s, es | -> s | <- se" },
	{ "XX1", "", "", "-> e | <- e, ee, s | -> es, s, se" },
	{ "X1X1", "", "", "-> e | <- e, ee, s | -> es, s | <- se" },
	{ "K1N", "s", "", "-> e | <- e, ee | -> se" },
	{ "K1K", "s", "s", "-> e, es | <- e, ee | -> se" },
	{ "KK1", "s", "s", "-> e | <- e, ee, se, es" },
	{ "K1K1", "s", "s", "-> e | <- e, ee, es | -> se" },
	{ "K1X", "s", "", "-> e | <- e, ee, s, es | -> se" },
	{ "KX1", "s", "", "-> e | <- e, ee, se, s | -> es" },
	{ "K1X1", "s", "", "-> e | <- e, ee, s | -> se, es" },
	{ "I1N", "", "", "-> e, s | <- e, ee | -> se" },
	{ "I1K", "", "s", "-> e, es, s | <- e, ee | -> se" },
	{ "IK1", "", "s", "-> e, s | <- e, ee, se, es" },
	{ "I1K1", "", "s", "-> e, s | <- e, ee, es | -> se" },
	{ "I1X", "", "", "-> e, s | <- e, ee, s, es | -> se" },
	{ "IX1", "", "", "-> e, s | <- e, ee, se, s | -> es" },
	{ "I1X1", "", "", "-> e, s | <- e, ee, s | -> se, es" },
};

struct message {
	bool from_initiator;
	uint8_t ntokens;
	uint8_t tokens[MAX_TOKENS];
};

struct symmetric {
	pb_noise_cipher_t cs;
	uint8_t ck[PB_NOISE_HASHLEN];
	uint8_t h[PB_NOISE_HASHLEN];
};

struct pb_noise_hs_s {
	struct symmetric ss;
	bool initiator;
	bool psk_mode;
	bool failed;
	uint8_t s_priv[DHLEN], s_pub[DHLEN];
	uint8_t e_priv[DHLEN], e_pub[DHLEN];
	uint8_t rs[DHLEN], re[DHLEN];
	bool has_s, has_e, has_rs, has_re, fixed_e;
	uint8_t psks[PB_NOISE_MAX_PSKS][32];
	size_t npsks, next_psk;
	struct message msgs[MAX_MESSAGES];
	size_t nmsgs, next_msg;
};

/* --- Hash, HMAC and HKDF over BLAKE2b ------------------------------------- */

static void hash2(uint8_t out[PB_NOISE_HASHLEN], const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	crypto_generichash_blake2b_state st;

	crypto_generichash_blake2b_init(&st, NULL, 0, PB_NOISE_HASHLEN);
	crypto_generichash_blake2b_update(&st, a, alen);
	if (blen > 0)
		crypto_generichash_blake2b_update(&st, b, blen);
	crypto_generichash_blake2b_final(&st, out, PB_NOISE_HASHLEN);
	sodium_memzero(&st, sizeof(st));
}

static void hmac(uint8_t out[PB_NOISE_HASHLEN], const uint8_t key[PB_NOISE_HASHLEN], const uint8_t *data,
		 size_t len, const uint8_t *data2, size_t len2)
{
	uint8_t pad[BLOCKLEN], inner[PB_NOISE_HASHLEN];
	crypto_generichash_blake2b_state st;

	memset(pad, 0, sizeof(pad));
	memcpy(pad, key, PB_NOISE_HASHLEN);
	for (size_t i = 0; i < BLOCKLEN; i++)
		pad[i] ^= 0x36;
	crypto_generichash_blake2b_init(&st, NULL, 0, PB_NOISE_HASHLEN);
	crypto_generichash_blake2b_update(&st, pad, BLOCKLEN);
	crypto_generichash_blake2b_update(&st, data, len);
	if (len2 > 0)
		crypto_generichash_blake2b_update(&st, data2, len2);
	crypto_generichash_blake2b_final(&st, inner, PB_NOISE_HASHLEN);
	for (size_t i = 0; i < BLOCKLEN; i++)
		pad[i] ^= 0x36 ^ 0x5c;
	crypto_generichash_blake2b_init(&st, NULL, 0, PB_NOISE_HASHLEN);
	crypto_generichash_blake2b_update(&st, pad, BLOCKLEN);
	crypto_generichash_blake2b_update(&st, inner, PB_NOISE_HASHLEN);
	crypto_generichash_blake2b_final(&st, out, PB_NOISE_HASHLEN);
	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
	sodium_memzero(&st, sizeof(st));
}

/* HKDF(chaining_key, ikm) with two or three outputs, as the spec defines. */
static void hkdf(const uint8_t ck[PB_NOISE_HASHLEN], const uint8_t *ikm, size_t ikm_len, uint8_t *o1, uint8_t *o2,
		 uint8_t *o3)
{
	uint8_t temp[PB_NOISE_HASHLEN], t[PB_NOISE_HASHLEN];
	uint8_t b;

	hmac(temp, ck, ikm, ikm_len, NULL, 0);
	b = 1;
	hmac(t, temp, &b, 1, NULL, 0);
	memcpy(o1, t, PB_NOISE_HASHLEN);
	b = 2;
	hmac(t, temp, o1, PB_NOISE_HASHLEN, &b, 1);
	memcpy(o2, t, PB_NOISE_HASHLEN);
	if (o3 != NULL) {
		b = 3;
		hmac(t, temp, o2, PB_NOISE_HASHLEN, &b, 1);
		memcpy(o3, t, PB_NOISE_HASHLEN);
	}
	sodium_memzero(temp, sizeof(temp));
	sodium_memzero(t, sizeof(t));
}

/* --- Cipher state ---------------------------------------------------------- */

static void nonce_bytes(uint8_t nonce[12], uint64_t n)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

static int cipher_encrypt(pb_noise_cipher_t *c, const uint8_t *ad, size_t adlen, const uint8_t *in, size_t len,
			  uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t nonce[12];

	if (!c->has_key) {
		if (cap < len)
			return PB_ETOOBIG;
		memmove(out, in, len);
		*out_len = len;
		return 0;
	}
	if (c->n == UINT64_MAX)
		return PB_ENOISE_NONCE;
	if (len > cap || cap - len < PB_NOISE_TAGLEN)
		return PB_ETOOBIG;
	nonce_bytes(nonce, c->n);
	pb__aead_encrypt(out, in, len, ad, adlen, nonce, c->k);
	c->n++;
	*out_len = len + PB_NOISE_TAGLEN;
	return 0;
}

static int cipher_decrypt(pb_noise_cipher_t *c, const uint8_t *ad, size_t adlen, const uint8_t *in, size_t len,
			  uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t nonce[12];

	if (!c->has_key) {
		if (cap < len)
			return PB_ETOOBIG;
		memmove(out, in, len);
		*out_len = len;
		return 0;
	}
	if (c->n == UINT64_MAX)
		return PB_ENOISE_NONCE;
	if (len < PB_NOISE_TAGLEN)
		return PB_ETRUNCATED;
	if (cap < len - PB_NOISE_TAGLEN)
		return PB_ETOOBIG;
	nonce_bytes(nonce, c->n);
	if (pb__aead_decrypt(out, in, len, ad, adlen, nonce, c->k) != 0)
		return PB_ENOISE_DECRYPT;
	c->n++;
	*out_len = len - PB_NOISE_TAGLEN;
	return 0;
}

PB_EXTERN int pb_noise_encrypt(pb_noise_cipher_t *c, const uint8_t *ad, size_t adlen, const uint8_t *in, size_t len,
			       uint8_t *out, size_t cap, size_t *out_len)
{
	if (!c->has_key)
		return PB_ESTATE;
	return cipher_encrypt(c, ad, adlen, in, len, out, cap, out_len);
}

int pb__noise_encrypt_parts(pb_noise_cipher_t *c, const pb_aead_part_t *parts, size_t nparts, size_t len,
			    uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t nonce[12];

	if (!c->has_key)
		return PB_ESTATE;
	if (c->n == UINT64_MAX)
		return PB_ENOISE_NONCE;
	if (len > cap || cap - len < PB_NOISE_TAGLEN)
		return PB_ETOOBIG;
	nonce_bytes(nonce, c->n);
	pb__aead_encrypt_parts(out, parts, nparts, len, nonce, c->k);
	c->n++;
	*out_len = len + PB_NOISE_TAGLEN;
	return 0;
}

PB_EXTERN int pb_noise_decrypt(pb_noise_cipher_t *c, const uint8_t *ad, size_t adlen, const uint8_t *in, size_t len,
			       uint8_t *out, size_t cap, size_t *out_len)
{
	if (!c->has_key)
		return PB_ESTATE;
	return cipher_decrypt(c, ad, adlen, in, len, out, cap, out_len);
}

PB_EXTERN void pb_noise_rekey(pb_noise_cipher_t *c)
{
	uint8_t nonce[12], zeros[32], out[32 + PB_NOISE_TAGLEN];
	unsigned long long clen;

	nonce_bytes(nonce, UINT64_MAX);
	memset(zeros, 0, sizeof(zeros));
	crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, zeros, sizeof(zeros), NULL, 0, NULL, nonce, c->k);
	memcpy(c->k, out, 32);
	sodium_memzero(out, sizeof(out));
}

PB_EXTERN void pb_noise_cipher_wipe(pb_noise_cipher_t *c)
{
	sodium_memzero(c, sizeof(*c));
}

/* --- Symmetric state ------------------------------------------------------- */

static void mix_hash(struct symmetric *ss, const uint8_t *data, size_t len)
{
	hash2(ss->h, ss->h, PB_NOISE_HASHLEN, data, len);
}

static void init_key(struct symmetric *ss, const uint8_t *k)
{
	memcpy(ss->cs.k, k, PB_NOISE_KEYLEN);
	ss->cs.n = 0;
	ss->cs.has_key = true;
}

static void mix_key(struct symmetric *ss, const uint8_t *ikm, size_t len)
{
	uint8_t tk[PB_NOISE_HASHLEN];

	hkdf(ss->ck, ikm, len, ss->ck, tk, NULL);
	init_key(ss, tk);
	sodium_memzero(tk, sizeof(tk));
}

static void mix_key_and_hash(struct symmetric *ss, const uint8_t *ikm, size_t len)
{
	uint8_t th[PB_NOISE_HASHLEN], tk[PB_NOISE_HASHLEN];

	hkdf(ss->ck, ikm, len, ss->ck, th, tk);
	mix_hash(ss, th, PB_NOISE_HASHLEN);
	init_key(ss, tk);
	sodium_memzero(th, sizeof(th));
	sodium_memzero(tk, sizeof(tk));
}

static int encrypt_and_hash(struct symmetric *ss, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
			    size_t *out_len)
{
	int rc = cipher_encrypt(&ss->cs, ss->h, PB_NOISE_HASHLEN, in, len, out, cap, out_len);

	if (rc != 0)
		return rc;
	mix_hash(ss, out, *out_len);
	return 0;
}

static int decrypt_and_hash(struct symmetric *ss, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
			    size_t *out_len)
{
	uint8_t h_before[PB_NOISE_HASHLEN];
	int rc;

	/* The ciphertext is hashed, and decryption may work in place. */
	memcpy(h_before, ss->h, PB_NOISE_HASHLEN);
	mix_hash(ss, in, len);
	rc = cipher_decrypt(&ss->cs, h_before, PB_NOISE_HASHLEN, in, len, out, cap, out_len);
	return rc;
}

/* --- Pattern parsing ------------------------------------------------------- */

static int parse_token(const char *p, size_t n)
{
	static const struct { const char *s; int t; } names[] = {
		{ "e", T_E }, { "s", T_S }, { "ee", T_EE }, { "es", T_ES },
		{ "se", T_SE }, { "ss", T_SS }, { "psk", T_PSK },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].s) == n && memcmp(names[i].s, p, n) == 0)
			return names[i].t;
	return -1;
}

static int parse_messages(const char *msgs, struct message *out, size_t *nout)
{
	size_t n = 0;
	const char *p = msgs;

	while (*p) {
		struct message *m;

		while (*p == ' ' || *p == '|')
			p++;
		if (*p == 0)
			break;
		if (n == MAX_MESSAGES)
			return PB_ENOISE_PATTERN;
		m = &out[n++];
		memset(m, 0, sizeof(*m));
		if (strncmp(p, "->", 2) == 0)
			m->from_initiator = true;
		else if (strncmp(p, "<-", 2) != 0)
			return PB_ENOISE_PATTERN;
		p += 2;
		while (*p && *p != '|') {
			const char *start;
			int t;

			while (*p == ' ' || *p == ',')
				p++;
			start = p;
			while (*p && *p != ',' && *p != ' ' && *p != '|')
				p++;
			if (p == start)
				continue;
			t = parse_token(start, (size_t)(p - start));
			if (t < 0 || m->ntokens == MAX_TOKENS)
				return PB_ENOISE_PATTERN;
			m->tokens[m->ntokens++] = (uint8_t)t;
		}
	}
	*nout = n;
	return 0;
}

/* Applies "pskN" modifiers: psk0 opens the first message, pskN closes message N. */
static int apply_psk(struct message *msgs, size_t nmsgs, unsigned idx)
{
	struct message *m;

	if (idx == 0) {
		m = &msgs[0];
		if (m->ntokens == MAX_TOKENS)
			return PB_ENOISE_PATTERN;
		memmove(m->tokens + 1, m->tokens, m->ntokens);
		m->tokens[0] = T_PSK;
		m->ntokens++;
		return 0;
	}
	if (idx > nmsgs)
		return PB_ENOISE_PATTERN;
	m = &msgs[idx - 1];
	if (m->ntokens == MAX_TOKENS)
		return PB_ENOISE_PATTERN;
	m->tokens[m->ntokens++] = T_PSK;
	return 0;
}

/* Splits "Noise_<pattern><modifiers>_25519_ChaChaPoly_BLAKE2b" and builds the
 * message list. */
static int load_protocol(pb_noise_hs_t *hs, const char *name, const struct pattern_def **def_out)
{
	static const char prefix[] = "Noise_";
	static const char suite[] = "_25519_ChaChaPoly_BLAKE2b";
	char pat[32];
	size_t nlen = strlen(name), plen, base;
	const struct pattern_def *def = NULL;
	const char *mods;
	int rc;

	if (nlen <= sizeof(prefix) - 1 + sizeof(suite) - 1 || strncmp(name, prefix, sizeof(prefix) - 1) != 0 ||
	    strcmp(name + nlen - (sizeof(suite) - 1), suite) != 0)
		return PB_ENOISE_PATTERN;
	plen = nlen - (sizeof(prefix) - 1) - (sizeof(suite) - 1);
	if (plen >= sizeof(pat))
		return PB_ENOISE_PATTERN;
	memcpy(pat, name + sizeof(prefix) - 1, plen);
	pat[plen] = 0;
	/* The base pattern is the longest run of capitals and '1'. */
	for (base = 0; base < plen && (pat[base] == 'N' || pat[base] == 'K' || pat[base] == 'X' ||
				       pat[base] == 'I' || pat[base] == '1');
	     base++)
		;
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
		if (strlen(patterns[i].name) == base && memcmp(patterns[i].name, pat, base) == 0)
			def = &patterns[i];
	if (def == NULL)
		return PB_ENOISE_PATTERN;
	rc = parse_messages(def->msgs, hs->msgs, &hs->nmsgs);
	if (rc != 0)
		return rc;
	mods = pat + base;
	while (*mods) {
		char *end;
		unsigned long idx;

		if (strncmp(mods, "psk", 3) != 0)
			return PB_ENOISE_PATTERN;
		mods += 3;
		if (*mods < '0' || *mods > '9')
			return PB_ENOISE_PATTERN;
		idx = strtoul(mods, &end, 10);
		if (idx > MAX_MESSAGES || (rc = apply_psk(hs->msgs, hs->nmsgs, (unsigned)idx)) != 0)
			return PB_ENOISE_PATTERN;
		hs->psk_mode = true;
		mods = end;
		if (*mods == '+')
			mods++;
		else if (*mods != 0)
			return PB_ENOISE_PATTERN;
	}
	*def_out = def;
	return 0;
}

/* --- Handshake state ------------------------------------------------------- */

PB_EXTERN void pb_noise_keypair(uint8_t pub[32], uint8_t priv[32])
{
	randombytes_buf(priv, 32);
	crypto_scalarmult_base(pub, priv);
}

PB_EXTERN int pb_noise_pubkey(const uint8_t priv[32], uint8_t pub[32])
{
	return crypto_scalarmult_base(pub, priv) == 0 ? 0 : PB_ENOISE_DH;
}

static int count_psks(const pb_noise_hs_t *hs)
{
	int n = 0;

	for (size_t i = 0; i < hs->nmsgs; i++)
		for (size_t t = 0; t < hs->msgs[i].ntokens; t++)
			if (hs->msgs[i].tokens[t] == T_PSK)
				n++;
	return n;
}

/* Which static keys the pattern needs before it starts. */
static bool pattern_sends_static(const pb_noise_hs_t *hs, bool initiator)
{
	for (size_t i = 0; i < hs->nmsgs; i++)
		if (hs->msgs[i].from_initiator == initiator)
			for (size_t t = 0; t < hs->msgs[i].ntokens; t++)
				if (hs->msgs[i].tokens[t] == T_S)
					return true;
	return false;
}

PB_EXTERN int pb_noise_hs_new(const char *protocol_name, bool initiator, const pb_noise_config_t *cfg,
			      pb_noise_hs_t **out)
{
	return pb__noise_hs_new_pub(protocol_name, initiator, cfg, NULL, out);
}

int pb__noise_hs_new_pub(const char *protocol_name, bool initiator, const pb_noise_config_t *cfg,
			 const uint8_t *s_pub, pb_noise_hs_t **out)
{
	const struct pattern_def *def;
	pb_noise_hs_t *hs;
	size_t nlen;
	int rc;

	*out = NULL;
	hs = sodium_malloc(sizeof(*hs));
	if (hs == NULL)
		return PB_ENOMEM;
	memset(hs, 0, sizeof(*hs));
	hs->initiator = initiator;
	rc = load_protocol(hs, protocol_name, &def);
	if (rc != 0)
		goto out_free;
	if (cfg->npsks > PB_NOISE_MAX_PSKS || (size_t)count_psks(hs) != cfg->npsks) {
		rc = PB_ENOKEY;
		goto out_free;
	}
	for (size_t i = 0; i < cfg->npsks; i++) {
		if (cfg->psks[i] == NULL) {
			rc = PB_ENOKEY;
			goto out_free;
		}
		memcpy(hs->psks[i], cfg->psks[i], 32);
	}
	hs->npsks = cfg->npsks;
	if (cfg->s_priv != NULL) {
		memcpy(hs->s_priv, cfg->s_priv, DHLEN);
		if (s_pub != NULL)
			memcpy(hs->s_pub, s_pub, DHLEN);
		else
			crypto_scalarmult_base(hs->s_pub, hs->s_priv);
		hs->has_s = true;
	}
	if (cfg->e_priv != NULL) {
		memcpy(hs->e_priv, cfg->e_priv, DHLEN);
		hs->fixed_e = true;
	}
	if (cfg->rs != NULL) {
		memcpy(hs->rs, cfg->rs, DHLEN);
		hs->has_rs = true;
	}
	/* Keys the pattern needs from the start. */
	if ((initiator ? def->pre_i : def->pre_r)[0] == 's' && !hs->has_s) {
		rc = PB_ENOKEY;
		goto out_free;
	}
	if ((initiator ? def->pre_r : def->pre_i)[0] == 's' && !hs->has_rs) {
		rc = PB_ENOKEY;
		goto out_free;
	}
	if (pattern_sends_static(hs, initiator) && !hs->has_s) {
		rc = PB_ENOKEY;
		goto out_free;
	}

	nlen = strlen(protocol_name);
	if (nlen <= PB_NOISE_HASHLEN) {
		memset(hs->ss.h, 0, PB_NOISE_HASHLEN);
		memcpy(hs->ss.h, protocol_name, nlen);
	} else {
		hash2(hs->ss.h, (const uint8_t *)protocol_name, nlen, NULL, 0);
	}
	memcpy(hs->ss.ck, hs->ss.h, PB_NOISE_HASHLEN);
	hs->ss.cs.has_key = false;
	mix_hash(&hs->ss, cfg->prologue != NULL ? cfg->prologue : (const uint8_t *)"", cfg->prologue_len);
	/* Pre-messages: the initiator's first, then the responder's. */
	if (def->pre_i[0] == 's')
		mix_hash(&hs->ss, initiator ? hs->s_pub : hs->rs, DHLEN);
	if (def->pre_r[0] == 's')
		mix_hash(&hs->ss, initiator ? hs->rs : hs->s_pub, DHLEN);
	*out = hs;
	return 0;

out_free:
	sodium_free(hs);
	return rc;
}

PB_EXTERN void pb_noise_hs_free(pb_noise_hs_t *hs)
{
	if (hs != NULL)
		sodium_free(hs); /* sodium_free wipes the memory */
}

PB_EXTERN pb_noise_action_t pb_noise_hs_action(const pb_noise_hs_t *hs)
{
	if (hs->next_msg >= hs->nmsgs)
		return PB_NOISE_SPLIT;
	return hs->msgs[hs->next_msg].from_initiator == hs->initiator ? PB_NOISE_WRITE : PB_NOISE_READ;
}

static int dh(uint8_t out[DHLEN], const uint8_t priv[DHLEN], const uint8_t pub[DHLEN])
{
	/* libsodium refuses an all-zero result (a low-order peer key). */
	return crypto_scalarmult(out, priv, pub) == 0 ? 0 : PB_ENOISE_DH;
}

static int mix_dh(pb_noise_hs_t *hs, int token)
{
	uint8_t shared[DHLEN];
	const uint8_t *priv, *pub;
	bool i = hs->initiator;
	int rc;

	switch (token) {
	case T_EE:
		priv = hs->e_priv, pub = hs->re;
		if (!hs->has_e || !hs->has_re)
			return PB_ENOISE_HANDSHAKE;
		break;
	case T_ES:
		priv = i ? hs->e_priv : hs->s_priv;
		pub = i ? hs->rs : hs->re;
		if (!(i ? hs->has_e && hs->has_rs : hs->has_s && hs->has_re))
			return PB_ENOISE_HANDSHAKE;
		break;
	case T_SE:
		priv = i ? hs->s_priv : hs->e_priv;
		pub = i ? hs->re : hs->rs;
		if (!(i ? hs->has_s && hs->has_re : hs->has_e && hs->has_rs))
			return PB_ENOISE_HANDSHAKE;
		break;
	case T_SS:
		priv = hs->s_priv, pub = hs->rs;
		if (!hs->has_s || !hs->has_rs)
			return PB_ENOISE_HANDSHAKE;
		break;
	default:
		return PB_ENOISE_HANDSHAKE;
	}
	rc = dh(shared, priv, pub);
	if (rc == 0)
		mix_key(&hs->ss, shared, DHLEN);
	sodium_memzero(shared, sizeof(shared));
	return rc;
}

PB_EXTERN int pb_noise_hs_write(pb_noise_hs_t *hs, const uint8_t *payload, size_t plen, uint8_t *out, size_t cap,
				size_t *out_len)
{
	const struct message *m;
	size_t pos = 0, n;
	int rc = 0;

	if (hs->failed || pb_noise_hs_action(hs) != PB_NOISE_WRITE)
		return PB_ESTATE;
	m = &hs->msgs[hs->next_msg];
	for (size_t t = 0; t < m->ntokens && rc == 0; t++) {
		switch (m->tokens[t]) {
		case T_E:
			if (cap - pos < DHLEN) {
				rc = PB_ETOOBIG;
				break;
			}
			if (!hs->fixed_e)
				randombytes_buf(hs->e_priv, DHLEN);
			crypto_scalarmult_base(hs->e_pub, hs->e_priv);
			hs->has_e = true;
			memcpy(out + pos, hs->e_pub, DHLEN);
			pos += DHLEN;
			mix_hash(&hs->ss, hs->e_pub, DHLEN);
			if (hs->psk_mode)
				mix_key(&hs->ss, hs->e_pub, DHLEN);
			break;
		case T_S:
			rc = encrypt_and_hash(&hs->ss, hs->s_pub, DHLEN, out + pos, cap - pos, &n);
			if (rc == 0)
				pos += n;
			break;
		case T_PSK:
			if (hs->next_psk >= hs->npsks) {
				rc = PB_ENOKEY;
				break;
			}
			mix_key_and_hash(&hs->ss, hs->psks[hs->next_psk++], 32);
			break;
		default:
			rc = mix_dh(hs, m->tokens[t]);
			break;
		}
	}
	if (rc == 0)
		rc = encrypt_and_hash(&hs->ss, payload, plen, out + pos, cap - pos, &n);
	if (rc != 0) {
		hs->failed = true;
		return rc;
	}
	*out_len = pos + n;
	hs->next_msg++;
	return 0;
}

PB_EXTERN int pb_noise_hs_read(pb_noise_hs_t *hs, const uint8_t *msg, size_t len, uint8_t *payload, size_t cap,
			       size_t *plen)
{
	const struct message *m;
	size_t pos = 0, n;
	int rc = 0;

	if (hs->failed || pb_noise_hs_action(hs) != PB_NOISE_READ)
		return PB_ESTATE;
	if (len > PB_NOISE_MAX_MSG)
		return PB_ETOOBIG;
	m = &hs->msgs[hs->next_msg];
	for (size_t t = 0; t < m->ntokens && rc == 0; t++) {
		switch (m->tokens[t]) {
		case T_E:
			if (len - pos < DHLEN) {
				rc = PB_ETRUNCATED;
				break;
			}
			memcpy(hs->re, msg + pos, DHLEN);
			hs->has_re = true;
			pos += DHLEN;
			mix_hash(&hs->ss, hs->re, DHLEN);
			if (hs->psk_mode)
				mix_key(&hs->ss, hs->re, DHLEN);
			break;
		case T_S: {
			size_t want = DHLEN + (hs->ss.cs.has_key ? PB_NOISE_TAGLEN : 0);
			uint8_t tmp[DHLEN];

			if (len - pos < want) {
				rc = PB_ETRUNCATED;
				break;
			}
			rc = decrypt_and_hash(&hs->ss, msg + pos, want, tmp, sizeof(tmp), &n);
			if (rc == 0) {
				memcpy(hs->rs, tmp, DHLEN);
				hs->has_rs = true;
				pos += want;
			}
			break;
		}
		case T_PSK:
			if (hs->next_psk >= hs->npsks) {
				rc = PB_ENOKEY;
				break;
			}
			mix_key_and_hash(&hs->ss, hs->psks[hs->next_psk++], 32);
			break;
		default:
			rc = mix_dh(hs, m->tokens[t]);
			break;
		}
	}
	if (rc == 0) {
		if (hs->ss.cs.has_key && len - pos < PB_NOISE_TAGLEN)
			rc = PB_ETRUNCATED;
		else
			rc = decrypt_and_hash(&hs->ss, msg + pos, len - pos, payload, cap, &n);
	}
	if (rc != 0) {
		hs->failed = true;
		return rc;
	}
	*plen = n;
	hs->next_msg++;
	return 0;
}

PB_EXTERN int pb_noise_hs_split(pb_noise_hs_t *hs, pb_noise_cipher_t *send, pb_noise_cipher_t *recv,
				uint8_t h[PB_NOISE_HASHLEN])
{
	uint8_t k1[PB_NOISE_HASHLEN], k2[PB_NOISE_HASHLEN];

	if (hs->failed || pb_noise_hs_action(hs) != PB_NOISE_SPLIT)
		return PB_ESTATE;
	hkdf(hs->ss.ck, NULL, 0, k1, k2, NULL);
	memset(send, 0, sizeof(*send));
	memset(recv, 0, sizeof(*recv));
	memcpy(hs->initiator ? send->k : recv->k, k1, PB_NOISE_KEYLEN);
	memcpy(hs->initiator ? recv->k : send->k, k2, PB_NOISE_KEYLEN);
	send->has_key = recv->has_key = true;
	if (h != NULL)
		memcpy(h, hs->ss.h, PB_NOISE_HASHLEN);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	return 0;
}

PB_EXTERN const uint8_t *pb_noise_hs_remote_static(const pb_noise_hs_t *hs)
{
	return hs->has_rs ? hs->rs : NULL;
}

PB_EXTERN const uint8_t *pb_noise_hs_local_static(const pb_noise_hs_t *hs)
{
	return hs->has_s ? hs->s_pub : NULL;
}
