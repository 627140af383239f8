/* Chunk sealing. A chunk's name is a keyed BLAKE2b-256 of its plaintext
 * (from 64 KiB on, of its eight segments' keyed hashes: pb__chunk_name),
 * so equal data dedups while the host learns nothing from names. The
 * sealed form
 * is versioned:
 *   u8 version (1) | u8 flags (bit 0: zstd) | nonce[24] | XChaCha20-Poly1305(payload)
 * with the name, version and flags as associated data, so a ciphertext
 * cannot be passed off under another name or with another flag. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zstd.h>

#include "agent/backup/internal.h"
#include "agent/util/blake2b.h"
#include "peerback/error.h"
#include "protocol/aead.h"

#define CT_VERSION 1
#define FLAG_ZSTD 0x01
#define ZSTD_LEVEL 3
#define SAMPLE_LEN 16384u /* bytes tried before compressing a chunk */
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES

_Static_assert(PB_CHUNK_HDR_LEN == 2 + NONCE_LEN, "chunk header");

static void make_ad(uint8_t ad[PB_STORE_NAME_LEN + 2], const uint8_t *name, uint8_t version, uint8_t flags)
{
	memcpy(ad, name, PB_STORE_NAME_LEN);
	ad[PB_STORE_NAME_LEN] = version;
	ad[PB_STORE_NAME_LEN + 1] = flags;
}

#define TREE_SEGS 8
#define TREE_ROOT_LEN (8 + TREE_SEGS * PB_STORE_NAME_LEN)
/* Large chunks named in one pass of pb__chunk_names_many (their
 * segments and up to TREE_GROUP * TREE_SEGS messages in all go through
 * the lanes together). */
#define TREE_GROUP 32

static const uint8_t tree_personal[16] = "peerback/tree8";

/* A segment's length: an eighth of the chunk, rounded up to whole
 * 128-byte blocks (the last segment holds the rest, never empty from
 * PB_CHUNK_TREE_MIN on). */
static size_t tree_seg(size_t len)
{
	return ((len + TREE_SEGS - 1) / TREE_SEGS + 127) & ~(size_t)127;
}

void pb__chunk_names_many(const pb__b2k_t *k, const uint8_t *const *data, const size_t *len, uint8_t *const *out,
			  size_t n)
{
	const uint8_t *d[TREE_GROUP * TREE_SEGS], *rd[TREE_GROUP];
	uint8_t *o[TREE_GROUP * TREE_SEGS], *ro[TREE_GROUP];
	size_t l[TREE_GROUP * TREE_SEGS], rl[TREE_GROUP];
	uint8_t root_msg[TREE_GROUP][TREE_ROOT_LEN];
	pb__b2k_t root;
	bool root_ready = false;
	size_t at = 0;

	while (at < n) {
		size_t m = 0, nr = 0;

		/* As many as the lanes' list holds: small chunks one message
		 * each, a large one its eight segments. */
		for (; at < n; at++) {
			size_t seg = tree_seg(len[at]);
			bool big = len[at] >= PB_CHUNK_TREE_MIN;

			if (m + (big ? TREE_SEGS : 1) > TREE_GROUP * TREE_SEGS || (big && nr == TREE_GROUP))
				break;
			if (!big) {
				d[m] = data[at];
				l[m] = len[at];
				o[m++] = out[at];
				continue;
			}
			for (int i = 0; i < 8; i++)
				root_msg[nr][i] = (uint8_t)((uint64_t)len[at] >> (8 * i));
			for (size_t q = 0; q < TREE_SEGS; q++) {
				d[m] = data[at] + q * seg;
				l[m] = q + 1 < TREE_SEGS ? seg : len[at] - q * seg;
				o[m++] = root_msg[nr] + 8 + q * PB_STORE_NAME_LEN;
			}
			rd[nr] = root_msg[nr];
			rl[nr] = TREE_ROOT_LEN;
			ro[nr++] = out[at];
		}
		pb__b2k_hash_many(k, d, l, o, m);
		if (nr == 0)
			continue;
		if (!root_ready) {
			pb__b2k_init(&root, k->key, k->keylen, PB_STORE_NAME_LEN, tree_personal);
			root_ready = true;
		}
		pb__b2k_hash_many(&root, rd, rl, ro, nr);
	}
	sodium_memzero(root_msg, sizeof(root_msg));
	if (root_ready)
		sodium_memzero(&root, sizeof(root));
}

void pb__chunk_name(const uint8_t name_key[32], const uint8_t *plain, size_t len, uint8_t name[PB_STORE_NAME_LEN])
{
	pb__b2k_t k;

	if (len < PB_CHUNK_TREE_MIN) {
		crypto_generichash(name, PB_STORE_NAME_LEN, plain, len, name_key, 32);
		return;
	}
	pb__b2k_init(&k, name_key, 32, PB_STORE_NAME_LEN, NULL);
	pb__chunk_names_many(&k, &plain, &len, &name, 1);
	sodium_memzero(&k, sizeof(k));
}

bool pb__chunk_name_ok(const uint8_t name_key[32], const uint8_t *plain, size_t len,
		       const uint8_t name[PB_STORE_NAME_LEN])
{
	uint8_t h[PB_STORE_NAME_LEN];
	bool ok;

	pb__chunk_name(name_key, plain, len, h);
	ok = sodium_memcmp(h, name, sizeof(h)) == 0;
	if (!ok && len >= PB_CHUNK_TREE_MIN) {
		/* Named before the segments. */
		crypto_generichash(h, sizeof(h), plain, len, name_key, 32);
		ok = sodium_memcmp(h, name, sizeof(h)) == 0;
	}
	sodium_memzero(h, sizeof(h));
	return ok;
}

/* Media (photos, video, archives) does not compress: a fast pass over a
 * sample from the middle tells, and such a chunk skips the full pass. */
static bool worth_compressing(ZSTD_CCtx *z, const uint8_t *plain, size_t len, uint8_t *scratch)
{
	const uint8_t *sample = plain + (len - SAMPLE_LEN) / 2;
	size_t n;

	if (len < 4 * SAMPLE_LEN)
		return true;
	n = ZSTD_compressCCtx(z, scratch, SAMPLE_LEN, sample, SAMPLE_LEN, 1);
	return !ZSTD_isError(n) && n < SAMPLE_LEN - SAMPLE_LEN / 16;
}

/* Compresses into payload (len - 1 bytes): the size, or 0 if that does
 * not save at least one byte (zstd fails on the short buffer then). */
static size_t compress(ZSTD_CCtx *z, int level, uint8_t *payload, const uint8_t *plain, size_t len)
{
	size_t n;

	if (len <= 1 || !worth_compressing(z, plain, len, payload))
		return 0;
	n = ZSTD_compressCCtx(z, payload, len - 1, plain, len, level);
	return ZSTD_isError(n) ? 0 : n;
}

int pb__seal_named(void *zctx, const uint8_t enc[32], const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *plain,
		   size_t len, uint8_t *ct, size_t *ct_len)
{
	return pb__seal_named_level(zctx, ZSTD_LEVEL, enc, name, plain, len, ct, ct_len);
}

int pb__seal_named_level(void *zctx, int level, const uint8_t enc[32], const uint8_t name[PB_STORE_NAME_LEN],
			 const uint8_t *plain, size_t len, uint8_t *ct, size_t *ct_len)
{
	uint8_t ad[PB_STORE_NAME_LEN + 2];
	uint8_t *payload = ct + PB_CHUNK_HDR_LEN;
	ZSTD_CCtx *z = zctx != NULL ? zctx : ZSTD_createCCtx();
	const uint8_t *src = plain;
	size_t plen = len, zlen;
	uint8_t flags = 0;

	if ((plain == NULL && len > 0) || name == NULL || ct == NULL || ct_len == NULL)
		return PB_EINVAL;
	if (len > PB_CHUNK_PLAIN_MAX)
		return PB_ETOOBIG;
	if (z == NULL)
		return PB_ENOMEM;
	zlen = compress(z, level, payload, plain, len);
	if (zctx == NULL)
		ZSTD_freeCCtx(z);
	if (zlen > 0) {
		src = payload;
		plen = zlen;
		flags = FLAG_ZSTD;
	}
	ct[0] = CT_VERSION;
	ct[1] = flags;
	randombytes_buf(ct + 2, NONCE_LEN);
	make_ad(ad, name, CT_VERSION, flags);
	/* In place when compressed (the AEAD allows it). */
	pb__aead_xencrypt(payload, src, plen, ad, sizeof(ad), ct + 2, enc);
	*ct_len = PB_CHUNK_HDR_LEN + plen + TAG_LEN;
	return 0;
}

int pb__seal(const uint8_t enc[32], const uint8_t name_key[32], const uint8_t *plain, size_t len,
	     uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t *ct_len)
{
	if ((plain == NULL && len > 0) || name == NULL || ct == NULL || ct_len == NULL)
		return PB_EINVAL;
	if (len > PB_CHUNK_PLAIN_MAX)
		return PB_ETOOBIG;
	if (sodium_init() < 0)
		return PB_ENOMEM;
	pb__chunk_name(name_key, plain, len, name);
	return pb__seal_named(NULL, enc, name, plain, len, ct, ct_len);
}

int pb__open(const uint8_t enc[32], const uint8_t name_key[32], const uint8_t name[PB_STORE_NAME_LEN],
	     const uint8_t *ct, size_t ct_len, uint8_t *plain, size_t cap, size_t *plain_len)
{
	return pb__open_dctx(enc, name_key, name, ct, ct_len, plain, cap, plain_len, NULL);
}

/* The plaintext goes to plain (cap bytes) or, alloc not NULL, to a buffer
 * of its size (at most cap) allocated once the size is known, *alloc,
 * which the caller frees. */
static int open_chunk(const uint8_t enc[32], const uint8_t name_key[32], const uint8_t name[PB_STORE_NAME_LEN],
		      const uint8_t *ct, size_t ct_len, uint8_t *plain, size_t cap, uint8_t **alloc,
		      size_t *plain_len, ZSTD_DCtx *dctx, bool check)
{
	uint8_t ad[PB_STORE_NAME_LEN + 2];
	uint8_t *tmp = NULL;
	size_t plen, out_len;
	int rc = 0;

	if (name == NULL || ct == NULL || plain_len == NULL || (alloc == NULL && plain == NULL && cap > 0))
		return PB_EINVAL;
	if (alloc != NULL)
		*alloc = NULL;
	if (sodium_init() < 0)
		return PB_ENOMEM;
	if (ct_len < PB_CHUNK_HDR_LEN + TAG_LEN)
		return PB_ETRUNCATED;
	if (ct[0] != CT_VERSION)
		return PB_EUNSUPPORTED;
	if ((ct[1] & ~FLAG_ZSTD) != 0)
		return PB_EMALFORMED;
	plen = ct_len - PB_CHUNK_HDR_LEN - TAG_LEN;
	if (plen > PB_CHUNK_PLAIN_MAX)
		return PB_ETOOBIG;
	make_ad(ad, name, ct[0], ct[1]);
	if (!(ct[1] & FLAG_ZSTD)) {
		if (plen > cap)
			return PB_ETOOBIG;
		if (alloc != NULL && (plain = *alloc = malloc(plen > 0 ? plen : 1)) == NULL)
			return PB_ENOMEM;
		if (pb__aead_xdecrypt(plain, ct + PB_CHUNK_HDR_LEN, plen + TAG_LEN, ad, sizeof(ad), ct + 2, enc) != 0) {
			rc = PB_ESTORE_HASH;
			goto out_free;
		}
		out_len = plen;
	} else {
		unsigned long long fsize;

		tmp = malloc(plen > 0 ? plen : 1);
		if (tmp == NULL)
			return PB_ENOMEM;
		if (pb__aead_xdecrypt(tmp, ct + PB_CHUNK_HDR_LEN, plen + TAG_LEN, ad, sizeof(ad), ct + 2, enc) != 0) {
			rc = PB_ESTORE_HASH;
			goto out_free;
		}
		/* Authentic, but still checked: the sealer may be buggy or
		 * the key shared with an old client. */
		fsize = ZSTD_getFrameContentSize(tmp, plen);
		if (fsize == ZSTD_CONTENTSIZE_ERROR || fsize == ZSTD_CONTENTSIZE_UNKNOWN) {
			rc = PB_EMALFORMED;
			goto out_free;
		}
		if (fsize > PB_CHUNK_PLAIN_MAX || fsize > cap) {
			rc = PB_ETOOBIG;
			goto out_free;
		}
		if (alloc != NULL && (plain = *alloc = malloc(fsize > 0 ? (size_t)fsize : 1)) == NULL) {
			rc = PB_ENOMEM;
			goto out_free;
		}
		out_len = dctx != NULL ? ZSTD_decompressDCtx(dctx, plain, (size_t)fsize, tmp, plen)
				       : ZSTD_decompress(plain, (size_t)fsize, tmp, plen);
		if (ZSTD_isError(out_len) || out_len != fsize) {
			rc = PB_EMALFORMED;
			goto out_free;
		}
	}
	if (check && !pb__chunk_name_ok(name_key, plain, out_len, name)) {
		sodium_memzero(plain, out_len);
		rc = PB_ESTORE_HASH;
		goto out_free;
	}
	*plain_len = out_len;
out_free:
	if (tmp != NULL) {
		sodium_memzero(tmp, plen);
		free(tmp);
	}
	if (rc != 0 && alloc != NULL) {
		free(*alloc);
		*alloc = NULL;
	}
	return rc;
}

int pb__open_dctx(const uint8_t enc[32], const uint8_t name_key[32], const uint8_t name[PB_STORE_NAME_LEN],
		  const uint8_t *ct, size_t ct_len, uint8_t *plain, size_t cap, size_t *plain_len, ZSTD_DCtx *dctx)
{
	return open_chunk(enc, name_key, name, ct, ct_len, plain, cap, NULL, plain_len, dctx, true);
}

int pb__open_alloc(const uint8_t enc[32], const uint8_t name_key[32], const uint8_t name[PB_STORE_NAME_LEN],
		   const uint8_t *ct, size_t ct_len, size_t max, uint8_t **plain, size_t *plain_len, ZSTD_DCtx *dctx)
{
	if (plain == NULL)
		return PB_EINVAL;
	return open_chunk(enc, name_key, name, ct, ct_len, NULL, max, plain, plain_len, dctx, true);
}

int pb__open_alloc_unchecked(const uint8_t enc[32], const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct,
			     size_t ct_len, size_t max, uint8_t **plain, size_t *plain_len, ZSTD_DCtx *dctx)
{
	if (plain == NULL)
		return PB_EINVAL;
	return open_chunk(enc, NULL, name, ct, ct_len, NULL, max, plain, plain_len, dctx, false);
}

int pb_chunk_seal(const pb_backup_keys_t *keys, const uint8_t *plain, size_t len,
		  uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t *ct_len)
{
	if (keys == NULL)
		return PB_EINVAL;
	return pb__seal(keys->chunk, keys->name, plain, len, name, ct, ct_len);
}

int pb_chunk_open(const pb_backup_keys_t *keys, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct,
		  size_t ct_len, uint8_t *plain, size_t cap, size_t *plain_len)
{
	if (keys == NULL)
		return PB_EINVAL;
	return pb__open(keys->chunk, keys->name, name, ct, ct_len, plain, cap, plain_len);
}
