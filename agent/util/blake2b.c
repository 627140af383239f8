/* BLAKE2b, RFC 7693: the compression function, a one-shot hash that
 * starts from a prepared state, and many messages hashed at once in the
 * lanes of vector registers (agent/util/blake2b.h). */
#include <string.h>

#include <sodium.h>

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
	k->avx512 = k->avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") ? 1 : 0;
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
	k->keylen = keylen;
	k->personal = personal != NULL;
	if (k->keyed) {
		memcpy(k->key, key, keylen);
		F(k, k->h, k->key, 128, 0);
	}
}

/* The rest of a message from state h after t bytes: its blocks but the
 * last, then the last zero-padded, and the digest to out. len > 0. */
static void finish(const pb__b2k_t *k, uint64_t h[8], uint64_t t, const uint8_t *data, size_t len, uint8_t *out)
{
	uint8_t last[128], full[64];
	int i;

	while (len > 128) {
		t += 128;
		F(k, h, data, t, 0);
		data += 128;
		len -= 128;
	}
	memset(last, 0, sizeof(last));
	memcpy(last, data, len);
	F(k, h, last, t + len, 1);
	for (i = 0; i < 8; i++)
		st64(full + 8 * i, h[i]);
	memcpy(out, full, k->outlen);
	/* The states follow from the key: none is left on the stack. */
	sodium_memzero(h, 8 * sizeof(h[0]));
	sodium_memzero(last, sizeof(last));
	sodium_memzero(full, sizeof(full));
}

/* From this length on, one message alone goes through libsodium: its
 * compression in one stream is about a fifth faster than F here (1,050
 * against 870 MB/s on this machine's AVX-512 core); below it, the key
 * block libsodium compresses again costs more than that gains. */
#define ONE_STREAM_MIN (64u << 10)

void pb__b2k_hash(const pb__b2k_t *k, const uint8_t *data, size_t len, uint8_t *out)
{
	uint64_t h[8];
	uint8_t last[128], full[64];
	int i;

	if (len >= ONE_STREAM_MIN && !k->personal && k->outlen >= crypto_generichash_BYTES_MIN &&
	    (k->keylen == 0 || k->keylen >= crypto_generichash_KEYBYTES_MIN)) {
		(void)crypto_generichash(out, k->outlen, data, len, k->keyed ? k->key : NULL, k->keylen);
		return;
	}
	if (len > 0) {
		memcpy(h, k->h, sizeof(h));
		finish(k, h, k->keyed ? 128 : 0, data, len, out);
		return;
	}
	/* The key block is the last block (keyed), or one zero block: from
	 * the state before it. */
	memset(last, 0, sizeof(last));
	memcpy(h, k->h0, sizeof(h));
	F(k, h, k->keyed ? k->key : last, k->keyed ? 128 : 0, 1);
	for (i = 0; i < 8; i++)
		st64(full + 8 * i, h[i]);
	memcpy(out, full, k->outlen);
	sodium_memzero(h, sizeof(h));
	sodium_memzero(full, sizeof(full));
}

/* Many messages at once: lane l of every vector holds message l's state
 * word, so a round is G on whole vectors with no shuffle between columns
 * and diagonals, and each message word is loaded once per block (the
 * blocks of the lanes transposed) instead of being gathered for each G.
 * The lanes' state, counters and block pointers live in struct lanes
 * between blocks; the scheduler (hash_lanes) refills a lane as soon as
 * its message ends. */
#define LANES_MAX 8

struct lanes {
	uint64_t h[8][LANES_MAX]; /* h[i][l]: word i of lane l's state */
	uint64_t t[LANES_MAX];
	uint64_t f[LANES_MAX]; /* all ones on a lane's last block */
	const uint8_t *blk[LANES_MAX];
};

typedef void lanes_fn(struct lanes *s);

#ifdef HAVE_AVX2_PATH
/* One round of the lane kernels, spelt with the kernel's own vector
 * operations (OP##_add, OP##_xor, OP##_ror32 ... OP##_ror63). */
#define LG(OP, r, i, a, b, c, d)                                                                                       \
	do {                                                                                                           \
		a = OP##_add(OP##_add(a, b), m[sigma[r][2 * i]]);                                                      \
		d = OP##_ror32(OP##_xor(d, a));                                                                        \
		c = OP##_add(c, d);                                                                                    \
		b = OP##_ror24(OP##_xor(b, c));                                                                        \
		a = OP##_add(OP##_add(a, b), m[sigma[r][2 * i + 1]]);                                                  \
		d = OP##_ror16(OP##_xor(d, a));                                                                        \
		c = OP##_add(c, d);                                                                                    \
		b = OP##_ror63(OP##_xor(b, c));                                                                        \
	} while (0)
#define LROUND(OP, r)                                                                                                  \
	do {                                                                                                           \
		LG(OP, r, 0, v[0], v[4], v[8], v[12]);                                                                 \
		LG(OP, r, 1, v[1], v[5], v[9], v[13]);                                                                 \
		LG(OP, r, 2, v[2], v[6], v[10], v[14]);                                                                \
		LG(OP, r, 3, v[3], v[7], v[11], v[15]);                                                                \
		LG(OP, r, 4, v[0], v[5], v[10], v[15]);                                                                \
		LG(OP, r, 5, v[1], v[6], v[11], v[12]);                                                                \
		LG(OP, r, 6, v[2], v[7], v[8], v[13]);                                                                 \
		LG(OP, r, 7, v[3], v[4], v[9], v[14]);                                                                 \
	} while (0)
#define LROUNDS(OP)                                                                                                    \
	do {                                                                                                           \
		LROUND(OP, 0);                                                                                         \
		LROUND(OP, 1);                                                                                         \
		LROUND(OP, 2);                                                                                         \
		LROUND(OP, 3);                                                                                         \
		LROUND(OP, 4);                                                                                         \
		LROUND(OP, 5);                                                                                         \
		LROUND(OP, 6);                                                                                         \
		LROUND(OP, 7);                                                                                         \
		LROUND(OP, 8);                                                                                         \
		LROUND(OP, 9);                                                                                         \
		LROUND(OP, 10);                                                                                        \
		LROUND(OP, 11);                                                                                        \
	} while (0)

/* Four lanes in 256-bit registers (AVX2). */
#define a2_add(x, y) _mm256_add_epi64((x), (y))
#define a2_xor(x, y) _mm256_xor_si256((x), (y))
#define a2_ror32(x) _mm256_shuffle_epi32((x), _MM_SHUFFLE(2, 3, 0, 1))
#define a2_ror24(x) _mm256_shuffle_epi8((x), r24)
#define a2_ror16(x) _mm256_shuffle_epi8((x), r16)
#define a2_ror63(x) _mm256_or_si256(_mm256_add_epi64((x), (x)), _mm256_srli_epi64((x), 63))
#define LD4(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define ST4(p, x) _mm256_storeu_si256((__m256i *)(void *)(p), (x))

/* Words j..j+3 of the four lanes' blocks, as four vectors of one word
 * each (a 4x4 transpose). */
__attribute__((target("avx2"))) static void load4(__m256i m[16], const uint8_t *const blk[4])
{
	for (int j = 0; j < 16; j += 4) {
		__m256i r0 = LD4(blk[0] + 8 * j), r1 = LD4(blk[1] + 8 * j);
		__m256i r2 = LD4(blk[2] + 8 * j), r3 = LD4(blk[3] + 8 * j);
		__m256i t0 = _mm256_unpacklo_epi64(r0, r1), t1 = _mm256_unpackhi_epi64(r0, r1);
		__m256i t2 = _mm256_unpacklo_epi64(r2, r3), t3 = _mm256_unpackhi_epi64(r2, r3);

		m[j] = _mm256_permute2x128_si256(t0, t2, 0x20);
		m[j + 1] = _mm256_permute2x128_si256(t1, t3, 0x20);
		m[j + 2] = _mm256_permute2x128_si256(t0, t2, 0x31);
		m[j + 3] = _mm256_permute2x128_si256(t1, t3, 0x31);
	}
}

__attribute__((target("avx2"))) static void lanes_avx2(struct lanes *s)
{
	const __m256i r16 = _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, 2, 3, 4, 5, 6, 7, 0, 1,
					     10, 11, 12, 13, 14, 15, 8, 9);
	const __m256i r24 = _mm256_setr_epi8(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, 3, 4, 5, 6, 7, 0, 1, 2,
					     11, 12, 13, 14, 15, 8, 9, 10);
	__m256i m[16], v[16];
	int i;

	load4(m, s->blk);
	for (i = 0; i < 8; i++) {
		v[i] = LD4(s->h[i]);
		v[i + 8] = _mm256_set1_epi64x((long long)iv[i]);
	}
	v[12] = a2_xor(v[12], LD4(s->t));
	v[14] = a2_xor(v[14], LD4(s->f));
	LROUNDS(a2);
	for (i = 0; i < 8; i++)
		ST4(s->h[i], a2_xor(LD4(s->h[i]), a2_xor(v[i], v[i + 8])));
}

/* The same four lanes where AVX-512VL rotates a 256-bit register in one
 * instruction. */
#define a4_add a2_add
#define a4_xor a2_xor
#define a4_ror32(x) _mm256_ror_epi64((x), 32)
#define a4_ror24(x) _mm256_ror_epi64((x), 24)
#define a4_ror16(x) _mm256_ror_epi64((x), 16)
#define a4_ror63(x) _mm256_ror_epi64((x), 63)

__attribute__((target("avx2,avx512f,avx512vl"))) static void lanes_avx512vl(struct lanes *s)
{
	__m256i m[16], v[16];
	int i;

	load4(m, s->blk);
	for (i = 0; i < 8; i++) {
		v[i] = LD4(s->h[i]);
		v[i + 8] = _mm256_set1_epi64x((long long)iv[i]);
	}
	v[12] = a2_xor(v[12], LD4(s->t));
	v[14] = a2_xor(v[14], LD4(s->f));
	LROUNDS(a4);
	for (i = 0; i < 8; i++)
		ST4(s->h[i], a2_xor(LD4(s->h[i]), a2_xor(v[i], v[i + 8])));
}

/* Eight lanes in 512-bit registers (AVX-512F), whose rotate is one
 * instruction. */
#define a5_add(x, y) _mm512_add_epi64((x), (y))
#define a5_xor(x, y) _mm512_xor_si512((x), (y))
#define a5_ror32(x) _mm512_ror_epi64((x), 32)
#define a5_ror24(x) _mm512_ror_epi64((x), 24)
#define a5_ror16(x) _mm512_ror_epi64((x), 16)
#define a5_ror63(x) _mm512_ror_epi64((x), 63)
#define LD8(p) _mm512_loadu_si512((const void *)(p))
#define ST8(p, x) _mm512_storeu_si512((void *)(p), (x))

/* The eight lanes' blocks transposed: m[i] holds word i of each, in three
 * steps of two-source permutes per half block. */
__attribute__((target("avx512f"))) static void load8(__m512i m[16], const uint8_t *const blk[8])
{
	const __m512i ev = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), od = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);

	for (int j = 0; j < 16; j += 8) {
		__m512i a[8], b[8];
		int l;

		for (l = 0; l < 8; l += 2) {
			__m512i x = LD8(blk[l] + 8 * j), y = LD8(blk[l + 1] + 8 * j);

			a[l] = _mm512_unpacklo_epi64(x, y); /* words 0 2 4 6 of lanes l, l+1 */
			a[l + 1] = _mm512_unpackhi_epi64(x, y); /* words 1 3 5 7 */
		}
		for (l = 0; l < 8; l += 4) {
			b[l] = _mm512_permutex2var_epi64(a[l], ev, a[l + 2]); /* words 0, 4 of four lanes */
			b[l + 2] = _mm512_permutex2var_epi64(a[l], od, a[l + 2]); /* 2, 6 */
			b[l + 1] = _mm512_permutex2var_epi64(a[l + 1], ev, a[l + 3]); /* 1, 5 */
			b[l + 3] = _mm512_permutex2var_epi64(a[l + 1], od, a[l + 3]); /* 3, 7 */
		}
		for (l = 0; l < 4; l++) {
			m[j + l] = _mm512_shuffle_i64x2(b[l], b[l + 4], 0x44);
			m[j + l + 4] = _mm512_shuffle_i64x2(b[l], b[l + 4], 0xee);
		}
	}
}

__attribute__((target("avx512f"))) static void lanes_avx512(struct lanes *s)
{
	__m512i m[16], v[16];
	int i;

	load8(m, s->blk);
	for (i = 0; i < 8; i++) {
		v[i] = LD8(s->h[i]);
		v[i + 8] = _mm512_set1_epi64((long long)iv[i]);
	}
	v[12] = a5_xor(v[12], LD8(s->t));
	v[14] = a5_xor(v[14], LD8(s->f));
	LROUNDS(a5);
	for (i = 0; i < 8; i++)
		ST8(s->h[i], a5_xor(LD8(s->h[i]), a5_xor(v[i], v[i + 8])));
}
#endif

/* Messages of one call put in order of length, longest first. */
#define ORDER_MAX 64

/* A lane kernel and how many lanes it compresses. */
struct kernel {
	unsigned lanes;
	lanes_fn *fn;
};

/* The lanes of a batch: where each lane's message is (p NULL: the lane is
 * free), how much of it is left and whose it is. */
struct batch {
	struct lanes s;
	const uint8_t *p[LANES_MAX];
	size_t left[LANES_MAX], msg[LANES_MAX];
	uint8_t pad[LANES_MAX][128];
	unsigned nl, active;
};

/* Moves the running lanes into the lowest slots (at most nl of them run),
 * for a narrower kernel. */
static void narrow(struct batch *b, unsigned nl)
{
	unsigned l, to = 0;
	int i;

	for (l = 0; l < b->nl; l++) {
		if (b->p[l] == NULL)
			continue;
		if (l != to) {
			for (i = 0; i < 8; i++)
				b->s.h[i][to] = b->s.h[i][l];
			b->s.t[to] = b->s.t[l];
			b->p[to] = b->p[l];
			b->left[to] = b->left[l];
			b->msg[to] = b->msg[l];
			b->p[l] = NULL;
		}
		to++;
	}
	b->nl = nl;
}

/* One block of every running lane: a full block in place, or the last
 * one zero-padded; free lanes compress an idle block. */
static void step(struct batch *b, lanes_fn *fn)
{
	static const uint8_t idle[128];
	unsigned l;

	for (l = 0; l < b->nl; l++) {
		if (b->p[l] == NULL) {
			b->s.blk[l] = idle;
		} else if (b->left[l] > 128) {
			b->s.blk[l] = b->p[l];
			b->s.t[l] += 128;
			b->s.f[l] = 0;
			b->p[l] += 128;
			b->left[l] -= 128;
		} else {
			memset(b->pad[l], 0, sizeof(b->pad[l]));
			memcpy(b->pad[l], b->p[l], b->left[l]);
			b->s.blk[l] = b->pad[l];
			b->s.t[l] += b->left[l];
			b->s.f[l] = ~0ull;
			b->left[l] = 0;
		}
	}
	fn(&b->s);
}

/* Hashes data[0..n) with the kernels ks (widest first, nk of them),
 * longest messages first. A lane whose message ends is given the next one
 * at once; empty messages
 * (one block from the state before the key) are hashed alone. When no
 * message is left to start, the running lanes move to the next narrower
 * kernel once they fit in it, and the last one finishes alone: a kernel
 * costs the same for idle lanes as for busy ones. */
static void hash_lanes(const pb__b2k_t *k, const uint8_t *const *data, const size_t *len, uint8_t *const *out,
		       size_t n, const struct kernel *ks, unsigned nk)
{
	struct batch b;
	uint8_t ord[ORDER_MAX];
	size_t next = 0, j = 0;
	unsigned l;
	int i;

	/* The longest first (up to ORDER_MAX messages): the last message to
	 * end, which runs alone, is then a short one. */
	if (n <= ORDER_MAX)
		for (j = 0; j < n; j++) {
			size_t at = j;

			while (at > 0 && len[ord[at - 1]] < len[j]) {
				ord[at] = ord[at - 1];
				at--;
			}
			ord[at] = (uint8_t)j;
		}
	memset(&b, 0, sizeof(b));
	b.nl = ks[0].lanes;
	for (;;) {
		/* Start a message in every free lane. */
		for (l = 0; l < b.nl && next < n; l++) {
			if (b.p[l] != NULL)
				continue;
			while (next < n && len[j = n <= ORDER_MAX ? ord[next] : next] == 0) {
				pb__b2k_hash(k, data[j], 0, out[j]);
				next++;
			}
			if (next == n)
				break;
			for (i = 0; i < 8; i++)
				b.s.h[i][l] = k->h[i];
			b.s.t[l] = k->keyed ? 128 : 0;
			b.p[l] = data[j];
			b.left[l] = len[j];
			b.msg[l] = j;
			next++;
			b.active++;
		}
		if (next == n) {
			while (nk > 1 && b.active <= ks[1].lanes) {
				ks++;
				nk--;
				narrow(&b, ks[0].lanes);
			}
			if (b.active <= 1)
				break;
		}
		step(&b, ks[0].fn);
		for (l = 0; l < b.nl; l++) {
			uint8_t full[64];

			if (b.p[l] == NULL || b.left[l] > 0)
				continue;
			for (i = 0; i < 8; i++)
				st64(full + 8 * i, b.s.h[i][l]);
			memcpy(out[b.msg[l]], full, k->outlen);
			sodium_memzero(full, sizeof(full));
			b.p[l] = NULL;
			b.active--;
		}
	}
	for (l = 0; l < b.nl; l++) {
		uint64_t h[8];

		if (b.p[l] == NULL)
			continue;
		for (i = 0; i < 8; i++)
			h[i] = b.s.h[i][l];
		finish(k, h, b.s.t[l], b.p[l], b.left[l], out[b.msg[l]]);
	}
	/* The lanes' states and last blocks follow from the key and the
	 * messages: none is left on the stack. */
	sodium_memzero(&b, sizeof(b));
}

/* A message longer than twice all the others together would end alone in
 * the lanes for most of its length, at the speed of one lane's kernel:
 * it is hashed alone as one stream (pb__b2k_hash) and the others in the
 * lanes. Whether it was. */
static int one_long(const pb__b2k_t *k, const uint8_t *const *data, const size_t *len, uint8_t *const *out,
		     size_t n)
{
	const uint8_t *d[ORDER_MAX];
	size_t l[ORDER_MAX], rest = 0, m = 0, j, o = 0;
	uint8_t *p[ORDER_MAX];

	if (n > ORDER_MAX)
		return 0;
	for (j = 0; j < n; j++) {
		rest += len[j];
		if (len[j] > len[m])
			m = j;
	}
	rest -= len[m];
	if (len[m] < ONE_STREAM_MIN || len[m] / 2 <= rest)
		return 0;
	pb__b2k_hash(k, data[m], len[m], out[m]);
	for (j = 0; j < n; j++)
		if (j != m) {
			d[o] = data[j];
			l[o] = len[j];
			p[o++] = out[j];
		}
	pb__b2k_hash_many(k, d, l, p, o);
	return 1;
}

void pb__b2k_hash_many(const pb__b2k_t *k, const uint8_t *const *data, const size_t *len, uint8_t *const *out,
		       size_t n)
{
#ifdef HAVE_AVX2_PATH
	/* Eight lanes, then four for the last messages; four alone without
	 * AVX-512. */
	static const struct kernel avx512[] = { { 8, lanes_avx512 }, { 4, lanes_avx512vl } };
	static const struct kernel avx2[] = { { 4, lanes_avx2 } };

	if (n > 1 && one_long(k, data, len, out, n))
		return;
	if (n > 1 && k->avx512) {
		hash_lanes(k, data, len, out, n, avx512, 2);
		return;
	}
	if (n > 1 && k->avx2) {
		hash_lanes(k, data, len, out, n, avx2, 1);
		return;
	}
#endif
	for (size_t j = 0; j < n; j++)
		pb__b2k_hash(k, data[j], len[j], out[j]);
}
