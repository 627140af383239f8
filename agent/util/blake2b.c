/* BLAKE2b, RFC 7693: the compression function and a one-shot hash that
 * starts from a prepared state (agent/util/blake2b.h). */
#include <string.h>

#include "agent/util/blake2b.h"

static const uint64_t iv[8] = {
	0x6a09e667f3bcc908ull, 0xbb67ae8584caa73bull, 0x3c6ef372fe94f82bull, 0xa54ff53a5f1d36f1ull,
	0x510e527fade682d1ull, 0x9b05688c2b3e6c1full, 0x1f83d9abfb41bd6bull, 0x5be0cd19137e2179ull,
};

static const uint8_t sigma[12][16] = {
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
	{11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
	{9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
	{12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
	{6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static uint64_t ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static void st64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, 8);
}

static inline uint64_t rotr(uint64_t x, unsigned n)
{
	return (x >> n) | (x << (64 - n));
}

#define G(r, i, a, b, c, d)                                                                                            \
	do {                                                                                                           \
		a = a + b + m[sigma[r][2 * i]];                                                                        \
		d = rotr(d ^ a, 32);                                                                                   \
		c = c + d;                                                                                             \
		b = rotr(b ^ c, 24);                                                                                   \
		a = a + b + m[sigma[r][2 * i + 1]];                                                                    \
		d = rotr(d ^ a, 16);                                                                                   \
		c = c + d;                                                                                             \
		b = rotr(b ^ c, 63);                                                                                   \
	} while (0)

#define ROUND(r)                                                                                                       \
	do {                                                                                                           \
		G(r, 0, v[0], v[4], v[8], v[12]);                                                                      \
		G(r, 1, v[1], v[5], v[9], v[13]);                                                                      \
		G(r, 2, v[2], v[6], v[10], v[14]);                                                                     \
		G(r, 3, v[3], v[7], v[11], v[15]);                                                                     \
		G(r, 4, v[0], v[5], v[10], v[15]);                                                                     \
		G(r, 5, v[1], v[6], v[11], v[12]);                                                                     \
		G(r, 6, v[2], v[7], v[8], v[13]);                                                                      \
		G(r, 7, v[3], v[4], v[9], v[14]);                                                                      \
	} while (0)

/* F of RFC 7693 3.2: t is the byte count so far (below 2^64 here). */
static void compress(uint64_t h[8], const uint8_t block[128], uint64_t t, int last)
{
	uint64_t m[16], v[16];
	int i;

	for (i = 0; i < 16; i++)
		m[i] = ld64(block + 8 * i);
	for (i = 0; i < 8; i++) {
		v[i] = h[i];
		v[i + 8] = iv[i];
	}
	v[12] ^= t;
	if (last)
		v[14] = ~v[14];
	ROUND(0);
	ROUND(1);
	ROUND(2);
	ROUND(3);
	ROUND(4);
	ROUND(5);
	ROUND(6);
	ROUND(7);
	ROUND(8);
	ROUND(9);
	ROUND(10);
	ROUND(11);
	for (i = 0; i < 8; i++)
		h[i] ^= v[i] ^ v[i + 8];
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1

/* The same F with the state's four rows in 256-bit registers: a round is
 * G on the four columns at once, then on the four diagonals (the rows
 * turned so the diagonals line up as columns). Chosen at run time
 * (pb__b2k_init) on processors that have AVX2. */
#define ROR32(x) _mm256_shuffle_epi32((x), _MM_SHUFFLE(2, 3, 0, 1))
#define ROR24(x) _mm256_shuffle_epi8((x), r24)
#define ROR16(x) _mm256_shuffle_epi8((x), r16)
#define ROR63(x) _mm256_or_si256(_mm256_add_epi64((x), (x)), _mm256_srli_epi64((x), 63))
#define M4(r, i0, i1, i2, i3)                                                                                          \
	_mm256_set_epi64x((long long)m[sigma[r][i3]], (long long)m[sigma[r][i2]], (long long)m[sigma[r][i1]],          \
			  (long long)m[sigma[r][i0]])
#define G4(mx, my)                                                                                                     \
	do {                                                                                                           \
		a = _mm256_add_epi64(_mm256_add_epi64(a, b), (mx));                                                    \
		d = ROR32(_mm256_xor_si256(d, a));                                                                     \
		c = _mm256_add_epi64(c, d);                                                                            \
		b = ROR24(_mm256_xor_si256(b, c));                                                                     \
		a = _mm256_add_epi64(_mm256_add_epi64(a, b), (my));                                                    \
		d = ROR16(_mm256_xor_si256(d, a));                                                                     \
		c = _mm256_add_epi64(c, d);                                                                            \
		b = ROR63(_mm256_xor_si256(b, c));                                                                     \
	} while (0)
#define ROUND4(r)                                                                                                      \
	do {                                                                                                           \
		G4(M4(r, 0, 2, 4, 6), M4(r, 1, 3, 5, 7));                                                              \
		b = _mm256_permute4x64_epi64(b, _MM_SHUFFLE(0, 3, 2, 1));                                              \
		c = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(1, 0, 3, 2));                                              \
		d = _mm256_permute4x64_epi64(d, _MM_SHUFFLE(2, 1, 0, 3));                                              \
		G4(M4(r, 8, 10, 12, 14), M4(r, 9, 11, 13, 15));                                                        \
		b = _mm256_permute4x64_epi64(b, _MM_SHUFFLE(2, 1, 0, 3));                                              \
		c = _mm256_permute4x64_epi64(c, _MM_SHUFFLE(1, 0, 3, 2));                                              \
		d = _mm256_permute4x64_epi64(d, _MM_SHUFFLE(0, 3, 2, 1));                                              \
	} while (0)

__attribute__((target("avx2"))) static void compress_avx2(uint64_t h[8], const uint8_t block[128], uint64_t t,
							  int last)
{
	const __m256i r16 = _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, 2, 3, 4, 5, 6, 7, 0, 1,
					     10, 11, 12, 13, 14, 15, 8, 9);
	const __m256i r24 = _mm256_setr_epi8(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, 3, 4, 5, 6, 7, 0, 1, 2,
					     11, 12, 13, 14, 15, 8, 9, 10);
	__m256i a, b, c, d, h0, h1;
	uint64_t m[16];

	memcpy(m, block, 128); /* little-endian */
	h0 = _mm256_loadu_si256((const __m256i *)(const void *)h);
	h1 = _mm256_loadu_si256((const __m256i *)(const void *)(h + 4));
	a = h0;
	b = h1;
	c = _mm256_loadu_si256((const __m256i *)(const void *)iv);
	d = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(iv + 4)),
			     _mm256_set_epi64x(0, last ? -1 : 0, 0, (long long)t));
	ROUND4(0);
	ROUND4(1);
	ROUND4(2);
	ROUND4(3);
	ROUND4(4);
	ROUND4(5);
	ROUND4(6);
	ROUND4(7);
	ROUND4(8);
	ROUND4(9);
	ROUND4(10);
	ROUND4(11);
	_mm256_storeu_si256((__m256i *)(void *)h, _mm256_xor_si256(h0, _mm256_xor_si256(a, c)));
	_mm256_storeu_si256((__m256i *)(void *)(h + 4), _mm256_xor_si256(h1, _mm256_xor_si256(b, d)));
}
#endif

static void F(const pb__b2k_t *k, uint64_t h[8], const uint8_t block[128], uint64_t t, int last)
{
#ifdef HAVE_AVX2_PATH
	if (k->avx2) {
		compress_avx2(h, block, t, last);
		return;
	}
#endif
	(void)k;
	compress(h, block, t, last);
}

void pb__b2k_init(pb__b2k_t *k, const uint8_t *key, size_t keylen, size_t outlen, const uint8_t *personal)
{
	int i;

	memset(k, 0, sizeof(*k));
#ifdef HAVE_AVX2_PATH
	k->avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
	for (i = 0; i < 8; i++)
		k->h[i] = iv[i];
	/* The parameter block: digest length, key length, fanout 1, depth 1;
	 * no salt; the personalization in its last 16 bytes. */
	k->h[0] ^= 0x01010000ull ^ ((uint64_t)keylen << 8) ^ (uint64_t)outlen;
	if (personal != NULL) {
		k->h[6] ^= ld64(personal);
		k->h[7] ^= ld64(personal + 8);
	}
	memcpy(k->h0, k->h, sizeof(k->h0));
	k->outlen = outlen;
	k->keyed = keylen > 0;
	if (k->keyed) {
		memcpy(k->key, key, keylen);
		F(k, k->h, k->key, 128, 0);
	}
}

void pb__b2k_hash(const pb__b2k_t *k, const uint8_t *data, size_t len, uint8_t *out)
{
	uint64_t h[8];
	uint8_t last[128], full[64];
	uint64_t t = k->keyed ? 128 : 0;
	int i;

	if (len == 0) {
		/* The key block is the last block (keyed), or one zero block:
		 * from the state before it. */
		memset(last, 0, sizeof(last));
		memcpy(h, k->h0, sizeof(h));
		F(k, h, k->keyed ? k->key : last, t, 1);
	} else {
		memcpy(h, k->h, sizeof(h));
		while (len > 128) {
			t += 128;
			F(k, h, data, t, 0);
			data += 128;
			len -= 128;
		}
		memset(last, 0, sizeof(last));
		memcpy(last, data, len);
		F(k, h, last, t + len, 1);
	}
	for (i = 0; i < 8; i++)
		st64(full + 8 * i, h[i]);
	memcpy(out, full, k->outlen);
}
