/* Pack records: the on-disk unit of the host store. Each record carries the
 * chunk's name and a checksum of the record, so a pack can be checked, and
 * its chunks recovered, without the index and without any key.
 *
 * Two record versions, told apart by their magic: "PBR1" (written before
 * version 2 existed) ends with BLAKE2b-256 of the ciphertext, "PBR2" with
 * XXH3-128 of head and ciphertext (a fraction of BLAKE2b's CPU; the phone's
 * AEAD authenticates every chunk end to end, the checksum only has to find
 * disk corruption). Both tails are 32 bytes, so a record's length does not
 * depend on its version and packs may mix them. */
#include <string.h>

#include <sodium.h>

/* Header-only: the functions are inlined, nothing to link. On x86-64 the
 * long input's loop is also built for AVX2 and AVX-512 (as xxHash's own
 * xxh_x86dispatch.c builds it) and chosen at run time: the default build
 * has SSE2 only, at about half the speed. Every variant gives the same
 * hash. */
#if defined(__x86_64__) && defined(__GNUC__)
#define PB_XXH_DISPATCH 1
#define XXH_X86DISPATCH
#define XXH_DISPATCH_AVX2 1
#define XXH_DISPATCH_AVX512 1
#define XXH_TARGET_AVX2 __attribute__((target("avx2")))
#define XXH_TARGET_AVX512 __attribute__((target("avx512f")))
#include <immintrin.h>
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "agent/store/internal.h"
#include "peerback/error.h"

int pb__pack_rec_version = 2;

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void pb__pack_rec_head(uint8_t out[PB__REC_HEAD_LEN], const uint8_t name[PB_STORE_NAME_LEN],
		       size_t ct_len)
{
	memcpy(out, pb__pack_rec_version == 1 ? PB__REC_MAGIC_V1 : PB__REC_MAGIC, 4);
	put_le32(out + 4, (uint32_t)ct_len);
	memcpy(out + 8, name, PB_STORE_NAME_LEN);
}

#ifdef PB_XXH_DISPATCH
__attribute__((target("avx512f"))) static void update_avx512(XXH3_state_t *st, const uint8_t *p, size_t n)
{
	(void)XXH3_update(st, p, n, XXH3_accumulate_512_avx512, XXH3_scrambleAcc_avx512);
}

__attribute__((target("avx2"))) static void update_avx2(XXH3_state_t *st, const uint8_t *p, size_t n)
{
	(void)XXH3_update(st, p, n, XXH3_accumulate_512_avx2, XXH3_scrambleAcc_avx2);
}
#endif

/* XXH3_128bits_update in the widest vectors the processor has. */
static void xxh_update(XXH3_state_t *st, const uint8_t *p, size_t n)
{
#ifdef PB_XXH_DISPATCH
	/* (A load and a test each: the processor's features are read once
	 * at start-up.) */
	if (__builtin_cpu_supports("avx512f")) {
		update_avx512(st, p, n);
		return;
	}
	if (__builtin_cpu_supports("avx2")) {
		update_avx2(st, p, n);
		return;
	}
#endif
	(void)XXH3_128bits_update(st, p, n);
}

void pb__pack_rec_tail(uint8_t out[PB__REC_TAIL_LEN], const uint8_t head[PB__REC_HEAD_LEN], const uint8_t *ct,
		       size_t ct_len)
{
	XXH3_state_t st;
	XXH128_canonical_t c;

	if (memcmp(head, PB__REC_MAGIC_V1, 4) == 0) {
		crypto_generichash(out, PB__REC_TAIL_LEN, ct, ct_len, NULL, 0);
		return;
	}
	(void)XXH3_128bits_reset(&st);
	(void)XXH3_128bits_update(&st, head, PB__REC_HEAD_LEN);
	xxh_update(&st, ct, ct_len);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&st));
	memcpy(out, c.digest, sizeof(c.digest));
	memset(out + sizeof(c.digest), 0, PB__REC_TAIL_LEN - sizeof(c.digest));
}

int pb__pack_rec_head_parse(const uint8_t *buf, size_t len, size_t *ct_len)
{
	uint32_t n;

	if (len < PB__REC_HEAD_LEN)
		return PB_ETRUNCATED;
	if (memcmp(buf, PB__REC_MAGIC, 4) != 0 && memcmp(buf, PB__REC_MAGIC_V1, 4) != 0)
		return PB_EMALFORMED;
	n = get_le32(buf + 4);
	if (n > PB_STORE_CT_MAX)
		return PB_ETOOBIG;
	*ct_len = n;
	return 0;
}

int pb__pack_rec_parse(const uint8_t *buf, size_t len, pb__pack_rec_t *rec)
{
	uint8_t t[PB__REC_TAIL_LEN];
	size_t ct_len;
	int rc;

	rc = pb__pack_rec_head_parse(buf, len, &ct_len);
	if (rc < 0)
		return rc;
	/* ct_len is capped, so the sum cannot overflow. */
	if (len - PB__REC_HEAD_LEN < ct_len + PB__REC_TAIL_LEN)
		return PB_ETRUNCATED;
	rec->name = buf + 8;
	rec->ct = buf + PB__REC_HEAD_LEN;
	rec->ct_len = ct_len;
	rec->hash = rec->ct + ct_len;
	rec->rec_len = PB__REC_HEAD_LEN + ct_len + PB__REC_TAIL_LEN;
	pb__pack_rec_tail(t, buf, rec->ct, ct_len);
	if (sodium_memcmp(t, rec->hash, sizeof(t)) != 0)
		return PB_ESTORE_HASH;
	return 0;
}
