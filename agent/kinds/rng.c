/* The deterministic random stream of the generators: ChaCha20 keyed by
 * BLAKE2b-256(seed || label), one 64-byte block per nonce value. */
#include <string.h>

#include <sodium.h>

#include "agent/kinds/internal.h"

void pb__gen_rng_init(pb_gen_rng_t *rng, uint64_t seed, const char *label)
{
	crypto_generichash_state st;
	uint8_t le[8];

	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(seed >> (8 * i));
	crypto_generichash_init(&st, NULL, 0, sizeof(rng->key));
	crypto_generichash_update(&st, le, sizeof(le));
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
	crypto_generichash_final(&st, rng->key, sizeof(rng->key));
	rng->counter = 0;
	rng->used = sizeof(rng->block);
}

static void refill(pb_gen_rng_t *rng)
{
	uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = { 0 };

	for (int i = 0; i < 8; i++)
		nonce[i] = (uint8_t)(rng->counter >> (8 * i));
	crypto_stream_chacha20_ietf(rng->block, sizeof(rng->block), nonce, rng->key);
	rng->counter++;
	rng->used = 0;
}

void pb__gen_rng_bytes(pb_gen_rng_t *rng, void *out, size_t len)
{
	uint8_t *p = out;

	while (len > 0) {
		size_t take;

		if (rng->used >= sizeof(rng->block))
			refill(rng);
		take = sizeof(rng->block) - rng->used;
		if (take > len)
			take = len;
		memcpy(p, rng->block + rng->used, take);
		rng->used += take;
		p += take;
		len -= take;
	}
}

uint32_t pb__gen_rng_below(pb_gen_rng_t *rng, uint32_t bound)
{
	uint32_t threshold, r;

	if (bound <= 1)
		return 0;
	/* Rejection sampling: values below threshold would bias the result. */
	threshold = (uint32_t)(-bound) % bound;
	for (;;) {
		uint8_t b[4];

		pb__gen_rng_bytes(rng, b, sizeof(b));
		r = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
		if (r >= threshold)
			return r % bound;
	}
}
