/* noise-vectors: runs Noise test vectors (the cacophony / snow JSON format)
 * through peerback's Noise engine and prints "N passed, M failed".
 *
 * usage: noise-vectors [--verbose] [--pattern NAME] FILE...
 * Vectors for other cipher suites are counted as skipped. Exit status 0 only
 * when every vector that ran passed and at least one ran. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback.h"
#include "peerback/noise.h"

#define MAX_HEX 65536

struct party {
	uint8_t s[32], e[32], rs[32], prologue[1024];
	uint8_t psks[PB_NOISE_MAX_PSKS][32];
	size_t prologue_len, npsks;
	bool has_s, has_e, has_rs;
};

static int hex_field(json_t *v, const char *key, uint8_t *out, size_t cap, size_t *len)
{
	json_t *f = json_object_get(v, key);
	const char *s;
	size_t n;

	if (f == NULL)
		return 1; /* absent */
	s = json_string_value(f);
	if (s == NULL || sodium_hex2bin(out, cap, s, strlen(s), NULL, &n, NULL) != 0)
		return -1;
	if (len != NULL)
		*len = n;
	return 0;
}

static int key_field(json_t *v, const char *key, uint8_t out[32], bool *has)
{
	size_t n;
	int rc = hex_field(v, key, out, 32, &n);

	*has = false;
	if (rc == 1)
		return 0;
	if (rc != 0 || n != 32)
		return -1;
	*has = true;
	return 0;
}

static int load_party(json_t *v, const char *side, struct party *p)
{
	char key[64];
	json_t *psks;
	int rc;

	memset(p, 0, sizeof(*p));
#define FIELD(name) (snprintf(key, sizeof(key), "%s_%s", side, name) > 0 ? key : "")
	if (key_field(v, FIELD("static"), p->s, &p->has_s) != 0 ||
	    key_field(v, FIELD("ephemeral"), p->e, &p->has_e) != 0 ||
	    key_field(v, FIELD("remote_static"), p->rs, &p->has_rs) != 0)
		return -1;
	rc = hex_field(v, FIELD("prologue"), p->prologue, sizeof(p->prologue), &p->prologue_len);
	if (rc < 0)
		return -1;
	if (rc == 1)
		p->prologue_len = 0;
	psks = json_object_get(v, FIELD("psks"));
#undef FIELD
	if (psks != NULL) {
		size_t i;
		json_t *x;

		if (!json_is_array(psks) || json_array_size(psks) > PB_NOISE_MAX_PSKS)
			return -1;
		json_array_foreach(psks, i, x) {
			const char *s = json_string_value(x);
			size_t n;

			if (s == NULL || sodium_hex2bin(p->psks[i], 32, s, strlen(s), NULL, &n, NULL) != 0 || n != 32)
				return -1;
		}
		p->npsks = json_array_size(psks);
	}
	return 0;
}

static void config_of(const struct party *p, pb_noise_config_t *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->s_priv = p->has_s ? p->s : NULL;
	cfg->e_priv = p->has_e ? p->e : NULL;
	cfg->rs = p->has_rs ? p->rs : NULL;
	for (size_t i = 0; i < p->npsks; i++)
		cfg->psks[i] = p->psks[i];
	cfg->npsks = p->npsks;
	cfg->prologue = p->prologue;
	cfg->prologue_len = p->prologue_len;
}

static bool one_way(const char *name)
{
	/* "Noise_N_", "Noise_K_", "Noise_X_" and their psk variants. */
	const char *p = name + strlen("Noise_");

	return (p[0] == 'N' || p[0] == 'K' || p[0] == 'X') && (p[1] == '_' || strncmp(p + 1, "psk", 3) == 0);
}

/* Runs one vector; returns 0 on pass, writes a reason on failure. */
static int run_vector(json_t *v, char *why, size_t why_cap)
{
	const char *name = json_string_value(json_object_get(v, "protocol_name"));
	json_t *msgs = json_object_get(v, "messages");
	struct party ip, rp;
	pb_noise_config_t icfg, rcfg;
	pb_noise_hs_t *ihs = NULL, *rhs = NULL;
	pb_noise_cipher_t isend, irecv, rsend, rrecv;
	uint8_t payload[MAX_HEX], expect[MAX_HEX], out[MAX_HEX], back[MAX_HEX], h_i[64], h_r[64], h_want[64];
	size_t plen, elen, olen, blen, hlen, i;
	bool split = false, oneway = name != NULL && one_way(name);
	json_t *m;
	int rc = -1;

	if (name == NULL || !json_is_array(msgs) || load_party(v, "init", &ip) != 0 || load_party(v, "resp", &rp) != 0) {
		snprintf(why, why_cap, "malformed vector");
		return -1;
	}
	config_of(&ip, &icfg);
	config_of(&rp, &rcfg);
	if (pb_noise_hs_new(name, true, &icfg, &ihs) != 0 || pb_noise_hs_new(name, false, &rcfg, &rhs) != 0) {
		snprintf(why, why_cap, "cannot set up the handshake");
		goto out;
	}
	json_array_foreach(msgs, i, m) {
		bool from_init;
		pb_noise_hs_t *w, *r;

		if (hex_field(m, "payload", payload, sizeof(payload), &plen) != 0 ||
		    hex_field(m, "ciphertext", expect, sizeof(expect), &elen) != 0) {
			snprintf(why, why_cap, "message %zu malformed", i);
			goto out;
		}
		if (!split) {
			w = pb_noise_hs_action(ihs) == PB_NOISE_WRITE ? ihs : rhs;
			r = w == ihs ? rhs : ihs;
			if (pb_noise_hs_write(w, payload, plen, out, sizeof(out), &olen) != 0 ||
			    pb_noise_hs_read(r, out, olen, back, sizeof(back), &blen) != 0) {
				snprintf(why, why_cap, "handshake message %zu failed", i);
				goto out;
			}
			if (pb_noise_hs_action(ihs) == PB_NOISE_SPLIT) {
				if (pb_noise_hs_split(ihs, &isend, &irecv, h_i) != 0 ||
				    pb_noise_hs_split(rhs, &rsend, &rrecv, h_r) != 0) {
					snprintf(why, why_cap, "split failed");
					goto out;
				}
				split = true;
				if (memcmp(h_i, h_r, 64) != 0) {
					snprintf(why, why_cap, "handshake hashes differ");
					goto out;
				}
				if (hex_field(v, "handshake_hash", h_want, sizeof(h_want), &hlen) == 0 &&
				    (hlen != 64 || memcmp(h_want, h_i, 64) != 0)) {
					snprintf(why, why_cap, "handshake hash differs from the vector");
					goto out;
				}
			}
		} else {
			from_init = oneway || i % 2 == 0;
			if (pb_noise_encrypt(from_init ? &isend : &rsend, NULL, 0, payload, plen, out, sizeof(out),
					     &olen) != 0 ||
			    pb_noise_decrypt(from_init ? &rrecv : &irecv, NULL, 0, out, olen, back, sizeof(back),
					     &blen) != 0) {
				snprintf(why, why_cap, "transport message %zu failed", i);
				goto out;
			}
		}
		if (olen != elen || memcmp(out, expect, elen) != 0) {
			snprintf(why, why_cap, "message %zu ciphertext differs", i);
			goto out;
		}
		if (blen != plen || memcmp(back, payload, plen) != 0) {
			snprintf(why, why_cap, "message %zu payload differs after decryption", i);
			goto out;
		}
	}
	rc = 0;
out:
	pb_noise_hs_free(ihs);
	pb_noise_hs_free(rhs);
	return rc;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0, files = 0;
	bool verbose = false;
	const char *only = NULL;

	if (sodium_init() < 0)
		return 2;
	for (int a = 1; a < argc; a++) {
		json_error_t jerr;
		json_t *root, *vectors, *v;
		size_t i;

		if (strcmp(argv[a], "--verbose") == 0) {
			verbose = true;
			continue;
		}
		if (strcmp(argv[a], "--pattern") == 0 && a + 1 < argc) {
			only = argv[++a];
			continue;
		}
		if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
			printf("usage: noise-vectors [--verbose] [--pattern NAME] FILE...\n"
			       "Runs Noise test vectors (JSON with a \"vectors\" array) and prints\n"
			       "\"N passed, M failed\"; exits non-zero on any failure.\n");
			return 0;
		}
		root = json_load_file(argv[a], 0, &jerr);
		if (root == NULL) {
			fprintf(stderr, "noise-vectors: %s: line %d: %s\n", argv[a], jerr.line, jerr.text);
			return 2;
		}
		files++;
		vectors = json_object_get(root, "vectors");
		if (!json_is_array(vectors)) {
			fprintf(stderr, "noise-vectors: %s: no \"vectors\" array\n", argv[a]);
			json_decref(root);
			return 2;
		}
		json_array_foreach(vectors, i, v) {
			const char *name = json_string_value(json_object_get(v, "protocol_name"));
			char why[256] = "";

			if (name == NULL || strstr(name, "_25519_ChaChaPoly_BLAKE2b") == NULL ||
			    (only != NULL && strstr(name, only) == NULL)) {
				skipped++;
				continue;
			}
			if (run_vector(v, why, sizeof(why)) == 0) {
				passed++;
				if (verbose)
					printf("pass %s\n", name);
			} else {
				failed++;
				printf("FAIL %s: %s\n", name, why);
			}
		}
		json_decref(root);
	}
	if (files == 0) {
		fprintf(stderr, "usage: noise-vectors [--verbose] [--pattern NAME] FILE...\n");
		return 2;
	}
	printf("%d passed, %d failed%s", passed, failed, skipped ? "" : "\n");
	if (skipped)
		printf(", %d skipped\n", skipped);
	return failed == 0 && passed > 0 ? 0 : 1;
}
