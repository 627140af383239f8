/* Manifests: the list of a snapshot's items, cut into manifest chunks of
 * about PB_MANIFEST_CHUNK_TARGET bytes, each sealed like a data chunk but
 * under the manifest key, plus a small sealed root that lists them and,
 * from version 2, the snapshot's id index. The root is the snapshot record
 * the host keeps; the writer never holds more than one manifest chunk
 * being filled and 256 KiB of finished ones waiting to be named together
 * (PEND_BYTES), so a million items stay within bounded memory (apart from
 * the list of referenced names and the index's 16 bytes an item).
 *
 * Manifest chunk plaintext (little-endian; the same in both versions):
 *   "PBMC" | u8 version 1 | 3 zero bytes | u32 count | count items
 *   item: u32 kind | u16 id_len | id | u16 path_len | path | u64 seq |
 *         u64 size | i64 mtime | hash[32] | u32 nchunks | nchunks names[32]
 * A chunk ends after an item whose id key (below) has its low five bits
 * clear once it holds 4 KiB, or at the target size.
 *
 * Root plaintext, version 1 (written by pb_manifest_writer_*, read always):
 *   "PBMR" | u8 1 | 3 zero bytes | i64 time | u64 items |
 *   u32 nchunks | nchunks names[32]
 * Root plaintext, version 2 (backups; pb__manifest_writer_indexed):
 *   the same with u8 2, then u32 nindex | nindex × (u64 first key | name[32])
 * Root blob: root name[32] | sealed root.
 *
 * The id index (version 2): an item's id key is the first 8 bytes (read
 * little-endian) of BLAKE2b(id) keyed with the naming key. Every item adds
 * (key, number of the manifest chunk that lists it); at finish these are
 * sorted and cut into index chunks of up to 512 entries (a reader takes up
 * to 4096, as written before), sealed under the manifest key:
 *   "PBMI" | u8 1 | 3 zero bytes | u32 count | count × (u64 key | u32 mchunk)
 * and the root lists each index chunk's first key and name. One item by id
 * is then the root, one index chunk (rarely two, when equal keys straddle
 * a boundary), and the manifest chunk it names: three requests for any
 * phone, with or without backup state, instead of a walk of every manifest
 * chunk. Index chunks are referenced like manifest chunks (in refs) and
 * dedup between snapshots like them.
 *
 * Records (pb__manifest_rec_*): u8 flags | u64 id key | the item as a
 * manifest chunk holds it; the phone's state keeps them per file so that
 * an unchanged file's items are replayed without being encoded again. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zstd.h>

#include "agent/backup/internal.h"
#include "agent/util/blake2b.h"
#include "peerback/error.h"

#define MF_VERSION 1       /* manifest chunks, and roots without an id index */
#define MF_ROOT_INDEXED 2  /* roots with an id index */
#define IDX_MAGIC "PBMI"
#define IDX_VERSION 1
#define IDX_ENT_LEN 12     /* u64 key | u32 manifest chunk */
/* Entries per index chunk: a reader takes up to IDX_PER_CHUNK (48 KiB,
 * what backups wrote first), a backup writes pb__manifest_idx_per_chunk
 * (512 by default: 6 KiB, so that one lookup opens 6 KiB, not 48, while
 * a million ids add some 80 kB to the root). */
#define IDX_PER_CHUNK 4096
#define IDX_WRITE_PER_CHUNK 512
#define ROOT_IDX_LEN (8 + PB_STORE_NAME_LEN)
#define MF_HDR_LEN 12
/* zstd's level for manifest chunks: records are mostly names and hashes,
 * which level 3 squeezes hardly better than level 1 at twice the time, and
 * level 1 hardly better than -1, whose literals are left as they are (the
 * hashes' bytes do not compress): the million-message store's 150 MB or
 * so of records sealed in about 0.06 CPU s less for 1.8% more bytes sent. */
#define MANIFEST_ZLEVEL (-1)
#define ITEM_FIXED_LEN (4 + 2 + 2 + 8 + 8 + 8 + 32 + 4)
#define ROOT_HDR_LEN (8 + 8 + 8 + 4)
#define ITEM_CHUNKS_MAX PB_MANIFEST_ITEM_CHUNKS_MAX
/* Kind bit 31: the item is a slice of its chunks, a u32 offset into the
 * first follows its names (pb_manifest_item_t.slice). */
#define KIND_SLICE 0x80000000u

_Static_assert(MF_HDR_LEN + ITEM_FIXED_LEN + PB_MANIFEST_ID_MAX + PB_MANIFEST_PATH_MAX +
			       ITEM_CHUNKS_MAX * 32ull <= PB_MANIFEST_CHUNK_PLAIN_MAX,
	       "the largest item fits one manifest chunk");

typedef uint8_t name_t[PB_STORE_NAME_LEN];

struct idx_ent {
	uint64_t key;
	uint32_t mchunk;
};

/* Chunks named several at once: a finished manifest chunk waits where it
 * was filled (in pbuf, PEND_BYTES, right after those waiting before it),
 * an index chunk copied there, until PEND_MAX wait or little room is left;
 * then all are named together in vector lanes (pb__b2k_hash_many, about
 * three times one stream's speed: a million messages make some 8,000
 * manifest chunks) and handed over in order. Their slots in mchunks and
 * refs are taken when they finish, so that the names keep their order;
 * pb__manifest_writer_nchunks counts only those handed over. A chunk that
 * outgrows the room left is moved to big and named alone, as all were. */
#define PEND_MAX 8
#define PEND_BYTES (256u << 10)
#define PEND_ROOM (32u << 10) /* less left: flushed */

struct pend {
	size_t off, len;
	size_t mi;    /* its slot in mchunks; SIZE_MAX: an index chunk */
	size_t ri;    /* its slot in refs */
	uint8_t *dst; /* an index chunk's: where its name goes too */
};

/* What an emitted manifest chunk holds: its items, their seqs and bytes,
 * and where its id keys and the references made up to it end (a stretch
 * of chunks is then recorded as it is: pb__manifest_writer_span). */
struct mc_info {
	uint32_t count;
	uint64_t first, last, bytes;
	size_t idx_end, refs_end;
};

struct pb_manifest_writer_s {
	pb_backup_keys_t keys;
	pb_manifest_chunk_cb emit;
	void *arg;
	uint8_t *buf; /* current manifest chunk plaintext: in pbuf or big */
	uint8_t *big; /* PB_MANIFEST_CHUNK_PLAIN_MAX */
	size_t len;
	uint32_t count;
	uint64_t items;
	uint8_t *ct;
	name_t *mchunks; /* manifest chunk names, in order */
	size_t nmchunks, mcap;
	name_t *refs; /* every referenced name, deduplicated at finish */
	size_t nrefs, rcap;
	/* Version 2: each item's id key and manifest chunk, sorted at finish
	 * into the id index. */
	bool indexed;
	struct idx_ent *idx;
	size_t nidx, icap;
	/* Per emitted manifest chunk (as mchunks), and the one being filled's
	 * seqs and bytes. */
	struct mc_info *minfo;
	size_t mi_cap;
	uint64_t cur_first, cur_last, cur_bytes;
	/* Records encoded now are a large chat's (REC_LARGE). */
	bool large;
	/* Chunks the repository is known to hold are named, not sealed. */
	bool (*known)(void *arg, const uint8_t name[PB_STORE_NAME_LEN]);
	void *known_arg;
	/* One compression context for every chunk the writer seals. */
	ZSTD_CCtx *zctx;
	/* When set, chunks go to it named but not sealed: the caller seals
	 * them (under the manifest key, at the level given) elsewhere. */
	pb__manifest_plain_cb plain;
	void *plain_arg;
	/* Chunks waiting to be named (PEND_MAX), their plaintext in pbuf;
	 * npend_m of them manifest chunks (the last of mchunks). */
	pb__b2k_t name_k;
	uint8_t *pbuf;
	size_t pused, npend, npend_m;
	struct pend pend[PEND_MAX];
};

void pb__manifest_writer_known(pb_manifest_writer_t *w, bool (*known)(void *arg, const uint8_t *name), void *arg)
{
	w->known = known;
	w->known_arg = arg;
}

void pb__manifest_writer_plain(pb_manifest_writer_t *w, pb__manifest_plain_cb plain, void *arg)
{
	w->plain = plain;
	w->plain_arg = arg;
}

/* Seals plain, named already, and hands it to the caller, unless the
 * repository is known to hold it (an unchanged stretch of a re-backup's
 * manifest). */
static int hand_over(pb_manifest_writer_t *w, const uint8_t *plain, size_t plen, const uint8_t name[PB_STORE_NAME_LEN])
{
	size_t ct_len;
	int rc;

	if (w->known != NULL && w->known(w->known_arg, name))
		return 0;
	if (w->plain != NULL) {
		rc = w->plain(w->plain_arg, name, plain, plen, MANIFEST_ZLEVEL);
		return rc == 0 ? 0 : rc < 0 ? rc : PB_ECANCELED;
	}
	if (w->zctx == NULL && (w->zctx = ZSTD_createCCtx()) == NULL)
		return PB_ENOMEM;
	if ((rc = pb__seal_named_level(w->zctx, MANIFEST_ZLEVEL, w->keys.manifest, name, plain, plen, w->ct, &ct_len)) < 0)
		return rc;
	rc = w->emit(w->arg, name, w->ct, ct_len);
	return rc == 0 ? 0 : rc < 0 ? rc : PB_ECANCELED;
}

/* Names plain alone and hands it over (a chunk too large to wait). */
static int seal_emit(pb_manifest_writer_t *w, const uint8_t *plain, size_t plen, uint8_t name[PB_STORE_NAME_LEN])
{
	/* Named once: the name both answers "known" and seals. */
	pb__chunk_names_many(&w->name_k, &plain, &plen, &name, 1);
	return hand_over(w, plain, plen, name);
}

static void le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void le32(uint8_t *p, uint32_t v)
{
	le16(p, (uint16_t)v);
	le16(p + 2, (uint16_t)(v >> 16));
}

static void le64(uint8_t *p, uint64_t v)
{
	le32(p, (uint32_t)v);
	le32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

#define MF_MIN_CHUNK 4096
/* A large chat's records (pb__manifest_writer_large): a quarter of the
 * chunks, each of which costs a zstd context's tables, an offer, a put and
 * the host's rows; about 20 KiB each, still one small read by id. */
#define MF_MIN_CHUNK_LARGE 16384

static int names_push(name_t **v, size_t *n, size_t *cap, const uint8_t *name)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		name_t *nv;

		if (nc > SIZE_MAX / sizeof(name_t))
			return PB_ENOMEM;
		nv = realloc(*v, nc * sizeof(name_t));
		if (nv == NULL)
			return PB_ENOMEM;
		*v = nv;
		*cap = nc;
	}
	memcpy((*v)[(*n)++], name, PB_STORE_NAME_LEN);
	return 0;
}

int pb_manifest_writer_new(const pb_backup_keys_t *keys, pb_manifest_chunk_cb emit, void *arg,
			   pb_manifest_writer_t **out)
{
	pb_manifest_writer_t *w;

	if (keys == NULL || emit == NULL || out == NULL)
		return PB_EINVAL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return PB_ENOMEM;
	w->big = malloc(PB_MANIFEST_CHUNK_PLAIN_MAX);
	w->ct = malloc(PB_CHUNK_CT_LEN_MAX(PB_MANIFEST_CHUNK_PLAIN_MAX));
	w->pbuf = malloc(PEND_BYTES);
	if (w->big == NULL || w->ct == NULL || w->pbuf == NULL) {
		pb_manifest_writer_free(w);
		return PB_ENOMEM;
	}
	w->keys = *keys;
	pb__b2k_init(&w->name_k, keys->name, sizeof(keys->name), PB_STORE_NAME_LEN, NULL);
	w->emit = emit;
	w->arg = arg;
	w->buf = w->pbuf;
	w->len = MF_HDR_LEN;
	*out = w;
	return 0;
}

void pb__manifest_writer_large(pb_manifest_writer_t *w, bool large)
{
	w->large = large;
}

void pb_manifest_writer_free(pb_manifest_writer_t *w)
{
	if (w == NULL)
		return;
	if (w->big != NULL) {
		sodium_memzero(w->big, PB_MANIFEST_CHUNK_PLAIN_MAX);
		free(w->big);
	}
	free(w->ct);
	if (w->pbuf != NULL) {
		sodium_memzero(w->pbuf, PEND_BYTES);
		free(w->pbuf);
	}
	free(w->mchunks);
	free(w->refs);
	free(w->idx);
	free(w->minfo);
	ZSTD_freeCCtx(w->zctx);
	sodium_memzero(&w->keys, sizeof(w->keys));
	sodium_memzero(&w->name_k, sizeof(w->name_k));
	free(w);
}

/* Notes the manifest chunk just listed (name pushed to mchunks and refs). */
static int minfo_push(pb_manifest_writer_t *w, uint32_t count, uint64_t first, uint64_t last, uint64_t bytes)
{
	struct mc_info *m;

	if (w->nmchunks > w->mi_cap) {
		size_t nc = w->mi_cap ? w->mi_cap * 2 : 256;

		if (nc < w->nmchunks || nc > SIZE_MAX / sizeof(*m) || (m = realloc(w->minfo, nc * sizeof(*m))) == NULL)
			return PB_ENOMEM;
		w->minfo = m;
		w->mi_cap = nc;
	}
	m = &w->minfo[w->nmchunks - 1];
	m->count = count;
	m->first = first;
	m->last = last;
	m->bytes = bytes;
	m->idx_end = w->nidx;
	m->refs_end = w->nrefs;
	return 0;
}

int pb__manifest_writer_flush(pb_manifest_writer_t *w)
{
	const uint8_t *data[PEND_MAX];
	uint8_t names[PEND_MAX][PB_STORE_NAME_LEN], *out[PEND_MAX];
	size_t len[PEND_MAX], n = w->npend;
	int rc = 0;

	if (n == 0)
		return 0;
	for (size_t j = 0; j < n; j++) {
		data[j] = w->pbuf + w->pend[j].off;
		len[j] = w->pend[j].len;
		out[j] = names[j];
	}
	pb__chunk_names_many(&w->name_k, data, len, out, n);
	/* All names in place before any is handed over: the caller may ask
	 * for a commit meanwhile. */
	for (size_t j = 0; j < n; j++) {
		const struct pend *p = &w->pend[j];

		if (p->mi != SIZE_MAX)
			memcpy(w->mchunks[p->mi], names[j], PB_STORE_NAME_LEN);
		if (p->dst != NULL)
			memcpy(p->dst, names[j], PB_STORE_NAME_LEN);
		memcpy(w->refs[p->ri], names[j], PB_STORE_NAME_LEN);
	}
	w->npend = w->npend_m = 0;
	w->pused = 0;
	for (size_t j = 0; j < n && rc == 0; j++)
		rc = hand_over(w, data[j], len[j], names[j]);
	/* The chunk being filled behind them moves to the front. */
	if (w->buf != w->big && w->buf != w->pbuf) {
		memmove(w->pbuf, w->buf, w->len);
		w->buf = w->pbuf;
	}
	return rc;
}

/* A finished chunk of plen bytes at pbuf + pused (its plaintext is there
 * already, or plain: copied) waits for its name (mi: its slot in mchunks
 * or SIZE_MAX; dst: where else its name goes); its slot in refs is taken
 * now. Flushed at PEND_MAX, or when less room is left than a chunk being
 * filled is likely to need. */
static int pend_add(pb_manifest_writer_t *w, const uint8_t *plain, size_t plen, size_t mi, uint8_t *dst)
{
	static const uint8_t none[PB_STORE_NAME_LEN];
	struct pend *p;
	int rc;

	if (plain != NULL && PEND_BYTES - w->pused < plen && (rc = pb__manifest_writer_flush(w)) != 0)
		return rc;
	if ((rc = names_push(&w->refs, &w->nrefs, &w->rcap, none)) < 0)
		return rc;
	p = &w->pend[w->npend++];
	p->off = w->pused;
	p->len = plen;
	p->mi = mi;
	p->ri = w->nrefs - 1;
	p->dst = dst;
	if (plain != NULL)
		memcpy(w->pbuf + w->pused, plain, plen);
	w->pused += plen;
	if (mi != SIZE_MAX)
		w->npend_m++;
	if (w->npend == PEND_MAX || PEND_BYTES - w->pused < PEND_ROOM)
		return pb__manifest_writer_flush(w);
	return 0;
}

/* Seals the current manifest chunk and hands it to the caller: named with
 * the next few (pend_add), or at once when it is too large to wait. */
static int writer_emit(pb_manifest_writer_t *w)
{
	static const uint8_t none[PB_STORE_NAME_LEN];
	uint8_t name[PB_STORE_NAME_LEN];
	int rc;

	memcpy(w->buf, "PBMC", 4);
	w->buf[4] = MF_VERSION;
	memset(w->buf + 5, 0, 3);
	le32(w->buf + 8, w->count);
	if (w->buf == w->big) {
		if ((rc = pb__manifest_writer_flush(w)) != 0 || (rc = seal_emit(w, w->buf, w->len, name)) != 0)
			return rc;
		if ((rc = names_push(&w->mchunks, &w->nmchunks, &w->mcap, name)) < 0 ||
		    (rc = names_push(&w->refs, &w->nrefs, &w->rcap, name)) < 0 ||
		    (rc = minfo_push(w, w->count, w->cur_first, w->cur_last, w->cur_bytes)) < 0)
			return rc;
	} else {
		size_t plen = w->len;

		if ((rc = names_push(&w->mchunks, &w->nmchunks, &w->mcap, none)) < 0)
			return rc;
		/* The next is filled right behind it (moved to the front if
		 * they are named now); its refs slot comes before the names its
		 * successors reference, as it did when it was named at once. */
		w->buf += plen;
		w->len = MF_HDR_LEN;
		if ((rc = pend_add(w, NULL, plen, w->nmchunks - 1, NULL)) != 0 ||
		    (rc = minfo_push(w, w->count, w->cur_first, w->cur_last, w->cur_bytes)) < 0)
			return rc;
	}
	w->buf = w->pbuf + w->pused;
	w->len = MF_HDR_LEN;
	w->count = 0;
	w->cur_bytes = 0;
	return 0;
}

bool pb__manifest_write_v1;
size_t pb__manifest_idx_per_chunk = IDX_WRITE_PER_CHUNK;

void pb__manifest_writer_indexed(pb_manifest_writer_t *w)
{
	w->indexed = !pb__manifest_write_v1;
}

/* The item being added lands in the manifest chunk being filled. */
static int index_push(pb_manifest_writer_t *w, uint64_t key)
{
	if (w->nidx == w->icap) {
		size_t nc = w->icap ? w->icap + w->icap / 2 : 4096;
		struct idx_ent *nv;

		if (nc > SIZE_MAX / sizeof(*nv) || (nv = realloc(w->idx, nc * sizeof(*nv))) == NULL)
			return PB_ENOMEM;
		w->idx = nv;
		w->icap = nc;
	}
	w->idx[w->nidx].key = key;
	w->idx[w->nidx].mchunk = (uint32_t)w->nmchunks;
	w->nidx++;
	return 0;
}

/* Group records (pb__manifest_rec_*): u8 flags | u64 key | the item
 * exactly as a manifest chunk holds it (key: the item's id key, below). Flag REC_CUT: a manifest chunk may end after
 * the item (content-defined boundaries: its keyed id hash has its low five
 * bits clear, about 32 items a chunk, so that a changed item rewrites only
 * its own stretch of the manifest and the stretches around it dedup
 * against the previous snapshot). A record is made once, when its item is
 * backed up, and replayed as it is while its file is unchanged. */
#define REC_CUT 1u
/* Flag REC_LARGE: the item is a large chat's (pb__manifest_writer_large,
 * when it was encoded): its chunk ends at REC_CUT only past
 * MF_MIN_CHUNK_LARGE. Kept in the record, so that a replay cuts where the
 * backup that encoded it did. */
#define REC_LARGE 2u
#define REC_HDR 9

/* The length of the record at rec (at most len bytes), checked. */
static int rec_len(const uint8_t *rec, size_t len, size_t *out, size_t *nchunks, size_t *names_off)
{
	const uint8_t *it = rec + REC_HDR;
	size_t idl, pl, n, need;

	if (len < REC_HDR + ITEM_FIXED_LEN)
		return PB_ETRUNCATED;
	if (rec[0] & ~(REC_CUT | REC_LARGE))
		return PB_EMALFORMED;
	idl = rd16(it + 4);
	if (idl > PB_MANIFEST_ID_MAX)
		return PB_ETOOBIG;
	if (len < REC_HDR + ITEM_FIXED_LEN + idl)
		return PB_ETRUNCATED;
	pl = rd16(it + 6 + idl);
	if (pl > PB_MANIFEST_PATH_MAX)
		return PB_ETOOBIG;
	if (len < REC_HDR + ITEM_FIXED_LEN + idl + pl)
		return PB_ETRUNCATED;
	n = rd32(it + 8 + idl + pl + 56);
	if (n > ITEM_CHUNKS_MAX)
		return PB_ETOOBIG;
	need = REC_HDR + ITEM_FIXED_LEN + idl + pl + n * PB_STORE_NAME_LEN;
	*names_off = need - n * PB_STORE_NAME_LEN;
	if (rd32(it) & KIND_SLICE)
		need += 4;
	if (len < need)
		return PB_ETRUNCATED;
	*out = need;
	*nchunks = n;
	return 0;
}

size_t pb__manifest_rec_max(size_t nchunks)
{
	return REC_HDR + ITEM_FIXED_LEN + PB_MANIFEST_ID_MAX + PB_MANIFEST_PATH_MAX + nchunks * PB_STORE_NAME_LEN + 4;
}

int pb__manifest_rec_next(const uint8_t *buf, size_t len, size_t *reclen)
{
	size_t n, off;

	return rec_len(buf, len, reclen, &n, &off);
}

int pb__manifest_rec_info(const uint8_t *rec, size_t len, uint64_t *seq, uint64_t *size)
{
	size_t n, off, need, idl, pl;
	int rc = rec_len(rec, len, &need, &n, &off);

	if (rc != 0)
		return rc;
	idl = rd16(rec + REC_HDR + 4);
	pl = rd16(rec + REC_HDR + 6 + idl);
	*seq = rd64(rec + REC_HDR + 8 + idl + pl);
	*size = rd64(rec + REC_HDR + 16 + idl + pl);
	return 0;
}

uint64_t pb__manifest_id_key(const pb_backup_keys_t *keys, const char *id, size_t len)
{
	uint8_t h[8];

	crypto_generichash(h, sizeof(h), (const uint8_t *)id, len, keys->name, sizeof(keys->name));
	return rd64(h);
}

int pb__manifest_rec_encode(const pb_manifest_writer_t *w, const pb_manifest_item_t *it, uint8_t *out, size_t cap,
			    size_t *len)
{
	if (w == NULL || it == NULL || it->id == NULL)
		return PB_EINVAL;
	return pb__manifest_rec_encode_key(w, it, pb__manifest_id_key(&w->keys, it->id, strnlen(it->id, PB_MANIFEST_ID_MAX + 1)),
					   out, cap, len);
}

int pb__manifest_rec_encode_key(const pb_manifest_writer_t *w, const pb_manifest_item_t *it, uint64_t key,
				uint8_t *out, size_t cap, size_t *len)
{
	size_t idl, pl, need;
	uint8_t *p = out + REC_HDR;

	if (w == NULL || it == NULL || it->id == NULL || it->path == NULL || out == NULL ||
	    (it->chunks == NULL && it->nchunks > 0))
		return PB_EINVAL;
	idl = strnlen(it->id, PB_MANIFEST_ID_MAX + 1);
	pl = strnlen(it->path, PB_MANIFEST_PATH_MAX + 1);
	if (idl > PB_MANIFEST_ID_MAX || pl > PB_MANIFEST_PATH_MAX || it->nchunks > ITEM_CHUNKS_MAX)
		return PB_ETOOBIG;
	need = REC_HDR + ITEM_FIXED_LEN + idl + pl + it->nchunks * PB_STORE_NAME_LEN + (it->slice ? 4 : 0);
	if ((it->kind & KIND_SLICE) != 0)
		return PB_EINVAL;
	if (need > cap)
		return PB_ETOOBIG;
	out[0] = (uint8_t)(((key & 31) == 0 ? REC_CUT : 0) | (w->large ? REC_LARGE : 0));
	le64(out + 1, key);
	le32(p, it->kind | (it->slice ? KIND_SLICE : 0));
	le16(p + 4, (uint16_t)idl);
	memcpy(p + 6, it->id, idl);
	p += 6 + idl;
	le16(p, (uint16_t)pl);
	memcpy(p + 2, it->path, pl);
	p += 2 + pl;
	le64(p, it->seq);
	le64(p + 8, it->size);
	le64(p + 16, (uint64_t)it->mtime);
	memcpy(p + 24, it->hash, 32);
	le32(p + 56, (uint32_t)it->nchunks);
	if (it->nchunks > 0)
		memcpy(p + 60, it->chunks, it->nchunks * PB_STORE_NAME_LEN);
	if (it->slice)
		le32(p + 60 + it->nchunks * PB_STORE_NAME_LEN, it->off);
	*len = need;
	return 0;
}

int pb__manifest_writer_add_rec(pb_manifest_writer_t *w, const uint8_t *rec, size_t len)
{
	size_t need, n, off;
	int rc;

	if (w == NULL || rec == NULL)
		return PB_EINVAL;
	if ((rc = rec_len(rec, len, &need, &n, &off)) != 0)
		return rc;
	if (need != len)
		return PB_EMALFORMED;
	if (w->len + len - REC_HDR > PB_MANIFEST_CHUNK_PLAIN_MAX && (rc = writer_emit(w)) < 0)
		return rc;
	/* Too large for the room left behind the chunks waiting for names:
	 * filled on in big, named alone. */
	if (w->buf != w->big && (size_t)(w->buf - w->pbuf) + w->len + len - REC_HDR > PEND_BYTES) {
		memcpy(w->big, w->buf, w->len);
		w->buf = w->big;
	}
	memcpy(w->buf + w->len, rec + REC_HDR, len - REC_HDR);
	/* Slices of a stream name the chunk before them again and again: a
	 * repeat of the last reference is not kept twice. */
	for (size_t i = 0; i < n; i++)
		if ((w->nrefs == 0 ||
		     memcmp(w->refs[w->nrefs - 1], rec + off + i * PB_STORE_NAME_LEN, PB_STORE_NAME_LEN) != 0) &&
		    (rc = names_push(&w->refs, &w->nrefs, &w->rcap, rec + off + i * PB_STORE_NAME_LEN)) < 0)
			return rc;
	if (w->indexed && (rc = index_push(w, rd64(rec + 1))) != 0)
		return rc;
	{
		const uint8_t *it = rec + REC_HDR;
		size_t idl = rd16(it + 4), pl = rd16(it + 6 + idl);
		uint64_t seq = rd64(it + 8 + idl + pl);

		if (w->count == 0)
			w->cur_first = seq;
		w->cur_last = seq;
		w->cur_bytes += rd64(it + 16 + idl + pl);
	}
	w->len += len - REC_HDR;
	w->count++;
	w->items++;
	if (w->len >= PB_MANIFEST_CHUNK_TARGET ||
	    (w->len >= (rec[0] & REC_LARGE ? MF_MIN_CHUNK_LARGE : MF_MIN_CHUNK) && (rec[0] & REC_CUT)))
		return writer_emit(w);
	return 0;
}

int pb_manifest_writer_add(pb_manifest_writer_t *w, const pb_manifest_item_t *it)
{
	uint8_t *rec;
	size_t len;
	int rc;

	if (w == NULL || it == NULL)
		return PB_EINVAL;
	if (it->nchunks > ITEM_CHUNKS_MAX)
		return PB_ETOOBIG;
	if ((rec = malloc(pb__manifest_rec_max(it->nchunks))) == NULL)
		return PB_ENOMEM;
	rc = pb__manifest_rec_encode(w, it, rec, pb__manifest_rec_max(it->nchunks), &len);
	if (rc == 0)
		rc = pb__manifest_writer_add_rec(w, rec, len);
	free(rec);
	return rc;
}

/* --- Spans: a stretch of manifest chunks recorded as it is --------------------------
 *
 * A file of many items (a chat) fills whole manifest chunks between the one
 * its first item lands in and the one its last item lands in. The phone's
 * state keeps, for such a file, its first and last records and, for each
 * chunk between, a span entry: a later snapshot lists those chunks again
 * (their names, their items' id keys, the names they reference) without
 * their records being stored, read, copied or named again.
 *
 *   chunk entry: u8 0xF0 | name[32] | u32 count | u64 first seq |
 *                u64 last seq | u64 bytes | count × u64 id key
 *   refs entry:  u8 0xF1 | u32 n | n × name[32]
 *
 * A record's first byte is its flags (REC_CUT, REC_LARGE), so records and span
 * entries share one sequence. */
#define SPAN_CHUNK 0xF0u
#define SPAN_REFS 0xF1u
#define SPAN_CHUNK_HDR (1 + PB_STORE_NAME_LEN + 4 + 8 + 8 + 8)
#define SPAN_REFS_HDR 5
#define SPAN_REFS_MAX 2048 /* names in one refs entry */

static int span_grow(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *nb;

	if (need <= *cap)
		return 0;
	if ((nb = realloc(*buf, need)) == NULL)
		return PB_ENOMEM;
	*buf = nb;
	*cap = need;
	return 0;
}

size_t pb__manifest_writer_nchunks(const pb_manifest_writer_t *w)
{
	return w->nmchunks - w->npend_m;
}

uint32_t pb__manifest_writer_pending(const pb_manifest_writer_t *w)
{
	return w->count;
}

uint64_t pb__manifest_writer_items(const pb_manifest_writer_t *w)
{
	return w->items;
}

bool pb__manifest_writer_spans(const pb_manifest_writer_t *w)
{
	return w->indexed;
}

uint32_t pb__manifest_writer_chunk_items(const pb_manifest_writer_t *w, size_t k)
{
	return k < w->nmchunks ? w->minfo[k].count : 0;
}

int pb__manifest_span_chunk(const pb_manifest_writer_t *w, size_t k, uint8_t **buf, size_t *cap, size_t *len)
{
	const struct mc_info *m;
	size_t i0, need;
	uint8_t *p;
	int rc;

	if (!w->indexed || k >= pb__manifest_writer_nchunks(w))
		return PB_EINVAL;
	m = &w->minfo[k];
	i0 = k > 0 ? w->minfo[k - 1].idx_end : 0;
	if (m->idx_end - i0 != m->count)
		return PB_EINVAL;
	need = SPAN_CHUNK_HDR + (size_t)m->count * 8;
	if ((rc = span_grow(buf, cap, need)) != 0)
		return rc;
	p = *buf;
	p[0] = SPAN_CHUNK;
	memcpy(p + 1, w->mchunks[k], PB_STORE_NAME_LEN);
	p += 1 + PB_STORE_NAME_LEN;
	le32(p, m->count);
	le64(p + 4, m->first);
	le64(p + 12, m->last);
	le64(p + 20, m->bytes);
	p += 28;
	for (size_t i = i0; i < m->idx_end; i++, p += 8)
		le64(p, w->idx[i].key);
	*len = need;
	return 0;
}

int pb__manifest_span_refs(const pb_manifest_writer_t *w, size_t after, size_t *from, uint8_t **buf, size_t *cap,
			   size_t *len)
{
	size_t start = after < w->nmchunks ? w->minfo[after].refs_end : w->nrefs, n;
	int rc;

	if (*from < start)
		*from = start;
	n = w->nrefs - *from < SPAN_REFS_MAX ? w->nrefs - *from : SPAN_REFS_MAX;
	*len = 0;
	if (n == 0)
		return 0;
	if ((rc = span_grow(buf, cap, SPAN_REFS_HDR + n * PB_STORE_NAME_LEN)) != 0)
		return rc;
	(*buf)[0] = SPAN_REFS;
	le32(*buf + 1, (uint32_t)n);
	memcpy(*buf + SPAN_REFS_HDR, w->refs[*from], n * PB_STORE_NAME_LEN);
	*from += n;
	*len = SPAN_REFS_HDR + n * PB_STORE_NAME_LEN;
	return 0;
}

bool pb__manifest_is_span(const uint8_t *e)
{
	return e[0] == SPAN_CHUNK || e[0] == SPAN_REFS;
}

int pb__manifest_elem_next(const uint8_t *buf, size_t len, size_t *n)
{
	size_t cnt, need;

	if (len == 0)
		return PB_ETRUNCATED;
	if (!pb__manifest_is_span(buf))
		return pb__manifest_rec_next(buf, len, n);
	if (len < (buf[0] == SPAN_CHUNK ? SPAN_CHUNK_HDR : SPAN_REFS_HDR))
		return PB_ETRUNCATED;
	if (buf[0] == SPAN_CHUNK) {
		cnt = rd32(buf + 1 + PB_STORE_NAME_LEN);
		if (cnt == 0 || cnt > PB_MANIFEST_CHUNK_PLAIN_MAX / ITEM_FIXED_LEN)
			return PB_EMALFORMED;
		need = SPAN_CHUNK_HDR + cnt * 8;
	} else {
		cnt = rd32(buf + 1);
		if (cnt == 0 || cnt > SPAN_REFS_MAX)
			return PB_EMALFORMED;
		need = SPAN_REFS_HDR + cnt * PB_STORE_NAME_LEN;
	}
	if (len < need)
		return PB_ETRUNCATED;
	*n = need;
	return 0;
}

int pb__manifest_span_info(const uint8_t *e, size_t len, const uint8_t **name, uint64_t *items, uint64_t *first,
			   uint64_t *last, uint64_t *bytes)
{
	const uint8_t *p = e + 1 + PB_STORE_NAME_LEN;

	if (len < SPAN_CHUNK_HDR || e[0] != SPAN_CHUNK)
		return PB_EINVAL;
	*name = e + 1;
	*items = rd32(p);
	*first = rd64(p + 4);
	*last = rd64(p + 12);
	*bytes = rd64(p + 20);
	return 0;
}

int pb__manifest_writer_add_span(pb_manifest_writer_t *w, const uint8_t *e, size_t len)
{
	size_t need;
	int rc;

	if (w == NULL || e == NULL || !pb__manifest_is_span(e))
		return PB_EINVAL;
	if ((rc = pb__manifest_elem_next(e, len, &need)) != 0)
		return rc;
	if (need != len)
		return PB_EMALFORMED;
	if (e[0] == SPAN_REFS) {
		uint32_t n = rd32(e + 1);

		for (uint32_t i = 0; i < n; i++)
			if ((rc = names_push(&w->refs, &w->nrefs, &w->rcap, e + SPAN_REFS_HDR + i * PB_STORE_NAME_LEN)) < 0)
				return rc;
		return 0;
	}
	{
		const uint8_t *name, *keys = e + SPAN_CHUNK_HDR;
		uint64_t items, first, last, bytes;

		if ((rc = pb__manifest_span_info(e, len, &name, &items, &first, &last, &bytes)) != 0)
			return rc;
		/* The chunk stands alone, as it did: what is being filled ends
		 * before it. */
		if ((w->count > 0 && (rc = writer_emit(w)) < 0) || (rc = pb__manifest_writer_flush(w)) != 0)
			return rc;
		for (uint64_t i = 0; w->indexed && i < items; i++)
			if ((rc = index_push(w, rd64(keys + i * 8))) != 0)
				return rc;
		if ((rc = names_push(&w->mchunks, &w->nmchunks, &w->mcap, name)) < 0 ||
		    (rc = names_push(&w->refs, &w->nrefs, &w->rcap, name)) < 0 ||
		    (rc = minfo_push(w, (uint32_t)items, first, last, bytes)) < 0)
			return rc;
		w->items += items;
	}
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return memcmp(a, b, PB_STORE_NAME_LEN);
}

static int cmp_idx(const void *a, const void *b)
{
	const struct idx_ent *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->mchunk < y->mchunk ? -1 : x->mchunk > y->mchunk;
}

/* Sorts the id index by key, then manifest chunk. Keys are keyed hashes,
 * spread evenly: one pass counts the entries under each value of the top
 * bits (about eight a bucket), one puts them into their buckets, and each
 * bucket is sorted by insertion. Two passes over a million entries' 16 MB
 * instead of the eight of a radix sort a byte a pass; a bucket that is not
 * small after all (keys not spread) goes to qsort. */
static int sort_idx(pb_manifest_writer_t *w)
{
	struct idx_ent *to;
	size_t n = w->nidx, nb, *end, lo = 0;
	unsigned bits = 8;

	if (n < 2)
		return 0;
	while (bits < 22 && ((size_t)1 << bits) < n / 8)
		bits++;
	nb = (size_t)1 << bits;
	to = malloc(n * sizeof(*to));
	end = calloc(nb, sizeof(*end));
	if (to == NULL || end == NULL) {
		free(to);
		free(end);
		return PB_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		end[w->idx[i].key >> (64 - bits)]++;
	for (size_t d = 0, pos = 0; d < nb; d++) {
		size_t c = end[d];

		end[d] = pos;
		pos += c;
	}
	/* end[d] moves from the bucket's start to its end. */
	for (size_t i = 0; i < n; i++)
		to[end[w->idx[i].key >> (64 - bits)]++] = w->idx[i];
	for (size_t d = 0; d < nb; lo = end[d], d++) {
		if (end[d] - lo > 64) {
			qsort(to + lo, end[d] - lo, sizeof(*to), cmp_idx);
			continue;
		}
		for (size_t j = lo + 1; j < end[d]; j++) {
			struct idx_ent e = to[j];
			size_t k = j;

			for (; k > lo && cmp_idx(&to[k - 1], &e) > 0; k--)
				to[k] = to[k - 1];
			to[k] = e;
		}
	}
	free(end);
	free(w->idx);
	w->idx = to;
	w->icap = n;
	return 0;
}

/* Sorts the id keys and seals them into index chunks; *out gets, for each,
 * its first key and its name (the root's index). */
static int write_index(pb_manifest_writer_t *w, uint8_t **out, size_t *nout)
{
	size_t per = pb__manifest_idx_per_chunk, u = 0, nchunks, plen;
	uint8_t *plain = NULL;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (per == 0 || per > IDX_PER_CHUNK)
		per = IDX_WRITE_PER_CHUNK;
	/* The manifest chunks are all emitted: the room is the index chunks'
	 * (each at most 48 KiB). */
	if ((rc = pb__manifest_writer_flush(w)) != 0)
		return rc;
	w->buf = w->big;
	if ((rc = sort_idx(w)) != 0)
		return rc;
	for (size_t i = 0; i < w->nidx; i++)
		if (u == 0 || cmp_idx(&w->idx[u - 1], &w->idx[i]) != 0)
			w->idx[u++] = w->idx[i];
	w->nidx = u;
	nchunks = (u + per - 1) / per;
	plain = malloc(MF_HDR_LEN + per * IDX_ENT_LEN);
	*out = malloc(nchunks ? nchunks * ROOT_IDX_LEN : 1);
	if (plain == NULL || *out == NULL) {
		rc = PB_ENOMEM;
		goto out;
	}
	for (size_t c = 0; c < nchunks && rc == 0; c++) {
		size_t first = c * per, n = u - first < per ? u - first : per;
		uint8_t *e = *out + c * ROOT_IDX_LEN;

		memcpy(plain, IDX_MAGIC, 4);
		plain[4] = IDX_VERSION;
		memset(plain + 5, 0, 3);
		le32(plain + 8, (uint32_t)n);
		for (size_t i = 0; i < n; i++) {
			le64(plain + MF_HDR_LEN + i * IDX_ENT_LEN, w->idx[first + i].key);
			le32(plain + MF_HDR_LEN + i * IDX_ENT_LEN + 8, w->idx[first + i].mchunk);
		}
		plen = MF_HDR_LEN + n * IDX_ENT_LEN;
		le64(e, w->idx[first].key);
		rc = pend_add(w, plain, plen, SIZE_MAX, e + 8);
	}
	if (rc == 0)
		rc = pb__manifest_writer_flush(w);
	*nout = nchunks;
out:
	free(plain);
	if (rc != 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

int pb_manifest_writer_finish(pb_manifest_writer_t *w, int64_t time, uint8_t **root, size_t *root_len,
			      uint8_t (**refs)[PB_STORE_NAME_LEN], size_t *nrefs)
{
	uint8_t *plain = NULL, *blob = NULL, *index = NULL;
	size_t plen, ct_len, i, u, nindex = 0;
	int rc;

	if (w == NULL || root == NULL || root_len == NULL || refs == NULL || nrefs == NULL)
		return PB_EINVAL;
	if (w->count > 0 || w->nmchunks == 0) {
		rc = writer_emit(w);
		if (rc < 0)
			return rc;
	}
	if ((rc = pb__manifest_writer_flush(w)) != 0)
		return rc;
	if (w->nmchunks > PB_MANIFEST_ROOT_CHUNKS_MAX)
		return PB_ETOOBIG;
	if (w->indexed && (rc = write_index(w, &index, &nindex)) != 0)
		return rc;
	plen = ROOT_HDR_LEN + w->nmchunks * PB_STORE_NAME_LEN + (w->indexed ? 4 + nindex * ROOT_IDX_LEN : 0);
	if (plen > PB_CHUNK_PLAIN_MAX) {
		rc = PB_ETOOBIG;
		goto out_free;
	}
	plain = malloc(plen);
	blob = malloc(PB_STORE_NAME_LEN + PB_CHUNK_CT_LEN_MAX(plen));
	if (plain == NULL || blob == NULL) {
		rc = PB_ENOMEM;
		goto out_free;
	}
	memcpy(plain, "PBMR", 4);
	plain[4] = w->indexed ? MF_ROOT_INDEXED : MF_VERSION;
	memset(plain + 5, 0, 3);
	le64(plain + 8, (uint64_t)time);
	le64(plain + 16, w->items);
	le32(plain + 24, (uint32_t)w->nmchunks);
	memcpy(plain + ROOT_HDR_LEN, w->mchunks, w->nmchunks * PB_STORE_NAME_LEN);
	if (w->indexed) {
		uint8_t *p = plain + ROOT_HDR_LEN + w->nmchunks * PB_STORE_NAME_LEN;

		le32(p, (uint32_t)nindex);
		if (nindex > 0)
			memcpy(p + 4, index, nindex * ROOT_IDX_LEN);
	}
	rc = pb__seal(w->keys.manifest, w->keys.name, plain, plen, blob, blob + PB_STORE_NAME_LEN, &ct_len);
	if (rc < 0)
		goto out_free;
	if (w->nrefs > 1)
		qsort(w->refs, w->nrefs, sizeof(name_t), cmp_name);
	for (i = 0, u = 0; i < w->nrefs; i++)
		if (u == 0 || memcmp(w->refs[u - 1], w->refs[i], PB_STORE_NAME_LEN) != 0)
			memmove(w->refs[u++], w->refs[i], PB_STORE_NAME_LEN);
	*root = blob;
	*root_len = PB_STORE_NAME_LEN + ct_len;
	*refs = w->refs;
	*nrefs = u;
	w->refs = NULL;
	w->nrefs = w->rcap = 0;
	blob = NULL;
out_free:
	free(plain);
	free(blob);
	free(index);
	return rc;
}

/* Parses a root of either version: its manifest chunks, and (version 2)
 * its id index (NULL, 0 for version 1). */
static int root_parse(const uint8_t *buf, size_t len, int64_t *time, uint64_t *nitems, const uint8_t **names,
		      size_t *nchunks, const uint8_t **index, size_t *nindex)
{
	uint32_t n, ni;
	size_t rest;

	if (buf == NULL || time == NULL || nitems == NULL || names == NULL || nchunks == NULL)
		return PB_EINVAL;
	if (len < ROOT_HDR_LEN)
		return PB_ETRUNCATED;
	if (memcmp(buf, "PBMR", 4) != 0 || buf[5] != 0 || buf[6] != 0 || buf[7] != 0)
		return PB_EMALFORMED;
	if (buf[4] != MF_VERSION && buf[4] != MF_ROOT_INDEXED)
		return PB_EUNSUPPORTED;
	n = rd32(buf + 24);
	if (n > PB_MANIFEST_ROOT_CHUNKS_MAX)
		return PB_ETOOBIG;
	if ((len - ROOT_HDR_LEN) / PB_STORE_NAME_LEN < n)
		return PB_ETRUNCATED;
	rest = len - ROOT_HDR_LEN - (size_t)n * PB_STORE_NAME_LEN;
	*index = NULL;
	*nindex = 0;
	if (buf[4] == MF_ROOT_INDEXED) {
		if (rest < 4)
			return PB_ETRUNCATED;
		ni = rd32(buf + len - rest);
		if ((rest - 4) / ROOT_IDX_LEN < ni)
			return PB_ETRUNCATED;
		if (rest - 4 != (size_t)ni * ROOT_IDX_LEN)
			return PB_EMALFORMED;
		*index = buf + len - rest + 4;
		*nindex = ni;
	} else if (rest != 0) {
		return PB_EMALFORMED;
	}
	*time = (int64_t)rd64(buf + 8);
	*nitems = rd64(buf + 16);
	*names = buf + ROOT_HDR_LEN;
	*nchunks = n;
	return 0;
}

int pb_manifest_root_parse(const uint8_t *buf, size_t len, int64_t *time, uint64_t *nitems,
			   const uint8_t **names, size_t *nchunks)
{
	const uint8_t *index;
	size_t nindex;

	return root_parse(buf, len, time, nitems, names, nchunks, &index, &nindex);
}

int pb_manifest_parse(const uint8_t *buf, size_t len, pb_manifest_item_cb cb, void *arg)
{
	char id[PB_MANIFEST_ID_MAX + 1], path[PB_MANIFEST_PATH_MAX + 1];
	size_t off = MF_HDR_LEN;
	uint32_t count, k;
	int rc;

	if (buf == NULL || cb == NULL)
		return PB_EINVAL;
	if (len > PB_MANIFEST_CHUNK_PLAIN_MAX)
		return PB_ETOOBIG;
	if (len < MF_HDR_LEN)
		return PB_ETRUNCATED;
	if (memcmp(buf, "PBMC", 4) != 0 || buf[5] != 0 || buf[6] != 0 || buf[7] != 0)
		return PB_EMALFORMED;
	if (buf[4] != MF_VERSION)
		return PB_EUNSUPPORTED;
	count = rd32(buf + 8);
	/* Each item takes at least ITEM_FIXED_LEN bytes. */
	if (count > (len - MF_HDR_LEN) / ITEM_FIXED_LEN)
		return PB_ETRUNCATED;
	for (k = 0; k < count; k++) {
		pb_manifest_item_t it;
		size_t idl, pl, nch;

		if (len - off < 6)
			return PB_ETRUNCATED;
		it.kind = rd32(buf + off);
		it.slice = (it.kind & KIND_SLICE) != 0;
		it.kind &= ~KIND_SLICE;
		it.off = 0;
		idl = rd16(buf + off + 4);
		off += 6;
		if (idl > PB_MANIFEST_ID_MAX)
			return PB_ETOOBIG;
		if (len - off < idl + 2)
			return PB_ETRUNCATED;
		if (memchr(buf + off, 0, idl) != NULL)
			return PB_EMALFORMED;
		memcpy(id, buf + off, idl);
		id[idl] = '\0';
		off += idl;
		pl = rd16(buf + off);
		off += 2;
		if (pl > PB_MANIFEST_PATH_MAX)
			return PB_ETOOBIG;
		if (len - off < pl + 60)
			return PB_ETRUNCATED;
		if (memchr(buf + off, 0, pl) != NULL)
			return PB_EMALFORMED;
		memcpy(path, buf + off, pl);
		path[pl] = '\0';
		off += pl;
		it.seq = rd64(buf + off);
		it.size = rd64(buf + off + 8);
		it.mtime = (int64_t)rd64(buf + off + 16);
		memcpy(it.hash, buf + off + 24, 32);
		nch = rd32(buf + off + 56);
		off += 60;
		if (nch > ITEM_CHUNKS_MAX)
			return PB_ETOOBIG;
		if ((len - off) / PB_STORE_NAME_LEN < nch)
			return PB_ETRUNCATED;
		it.id = id;
		it.path = path;
		it.nchunks = nch;
		it.chunks = (const uint8_t(*)[PB_STORE_NAME_LEN])(buf + off);
		off += nch * PB_STORE_NAME_LEN;
		if (it.slice) {
			if (len - off < 4)
				return PB_ETRUNCATED;
			it.off = rd32(buf + off);
			off += 4;
		}
		rc = cb(arg, &it);
		if (rc != 0)
			return rc;
	}
	if (off != len)
		return PB_EMALFORMED;
	return 0;
}

int pb__manifest_root_open_index(const pb_backup_keys_t *keys, const uint8_t *blob, size_t len, int64_t *time,
				 uint64_t *nitems, uint8_t (**chunks)[PB_STORE_NAME_LEN], size_t *nchunks,
				 uint8_t **index, size_t *nindex)
{
	const uint8_t *names, *idx;
	uint8_t *plain;
	size_t plen, n, ni;
	int rc;

	if (keys == NULL || blob == NULL || chunks == NULL || nchunks == NULL)
		return PB_EINVAL;
	if (len < PB_STORE_NAME_LEN)
		return PB_ETRUNCATED;
	if (len - PB_STORE_NAME_LEN > PB_CHUNK_CT_LEN_MAX(PB_CHUNK_PLAIN_MAX))
		return PB_ETOOBIG;
	plain = malloc(PB_CHUNK_PLAIN_MAX);
	if (plain == NULL)
		return PB_ENOMEM;
	rc = pb__open(keys->manifest, keys->name, blob, blob + PB_STORE_NAME_LEN, len - PB_STORE_NAME_LEN,
		      plain, PB_CHUNK_PLAIN_MAX, &plen);
	if (rc < 0)
		goto out_free;
	rc = root_parse(plain, plen, time, nitems, &names, &n, &idx, &ni);
	if (rc < 0)
		goto out_free;
	*chunks = malloc(n > 0 ? n * PB_STORE_NAME_LEN : 1);
	if (index != NULL) /* NULL: a version 1 root, without an index */
		*index = idx == NULL ? NULL : malloc(ni > 0 ? ni * ROOT_IDX_LEN : 1);
	if (*chunks == NULL || (index != NULL && idx != NULL && *index == NULL)) {
		free(*chunks);
		if (index != NULL)
			free(*index);
		rc = PB_ENOMEM;
		goto out_free;
	}
	memcpy(*chunks, names, n * PB_STORE_NAME_LEN);
	*nchunks = n;
	if (index != NULL) {
		if (ni > 0)
			memcpy(*index, idx, ni * ROOT_IDX_LEN);
		*nindex = ni;
	}
out_free:
	free(plain);
	return rc;
}

int pb_manifest_root_open(const pb_backup_keys_t *keys, const uint8_t *blob, size_t len, int64_t *time,
			  uint64_t *nitems, uint8_t (**chunks)[PB_STORE_NAME_LEN], size_t *nchunks)
{
	return pb__manifest_root_open_index(keys, blob, len, time, nitems, chunks, nchunks, NULL, NULL);
}

size_t pb__manifest_index_pick(const uint8_t *index, size_t nindex, uint64_t key)
{
	size_t lo = 0, hi = nindex;

	/* The first index chunk that may hold key: the last one whose first
	 * key is below it (equal keys may begin in the one before). */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (rd64(index + mid * ROOT_IDX_LEN) < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 ? lo - 1 : 0;
}

uint64_t pb__manifest_index_first(const uint8_t *index, size_t i)
{
	return rd64(index + i * ROOT_IDX_LEN);
}

const uint8_t *pb__manifest_index_name(const uint8_t *index, size_t i)
{
	return index + i * ROOT_IDX_LEN + 8;
}

int pb__manifest_index_find(const pb_backup_keys_t *keys, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct,
			    size_t ct_len, uint64_t key, uint32_t *mchunks, size_t cap, size_t *n, struct ZSTD_DCtx_s *dctx)
{
	size_t plen = 0, count, lo = 0, hi;
	uint8_t *plain = NULL;
	int rc;

	*n = 0;
	/* A buffer of the chunk's size: 6 KiB for what backups write now. */
	rc = pb__open_alloc(keys->manifest, keys->name, name, ct, ct_len, MF_HDR_LEN + IDX_PER_CHUNK * IDX_ENT_LEN,
			    &plain, &plen, dctx);
	if (rc < 0)
		return rc;
	if (plen < MF_HDR_LEN || memcmp(plain, IDX_MAGIC, 4) != 0 || plain[4] != IDX_VERSION) {
		rc = PB_EMALFORMED;
		goto out;
	}
	count = rd32(plain + 8);
	if (count > IDX_PER_CHUNK || plen != MF_HDR_LEN + count * IDX_ENT_LEN) {
		rc = PB_EMALFORMED;
		goto out;
	}
	hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (rd64(plain + MF_HDR_LEN + mid * IDX_ENT_LEN) < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < count && rd64(plain + MF_HDR_LEN + lo * IDX_ENT_LEN) == key && *n < cap; lo++)
		mchunks[(*n)++] = rd32(plain + MF_HDR_LEN + lo * IDX_ENT_LEN + 8);
out:
	free(plain);
	return rc;
}

int pb_manifest_chunk_open(const pb_backup_keys_t *keys, const uint8_t name[PB_STORE_NAME_LEN],
			   const uint8_t *ct, size_t ct_len, pb_manifest_item_cb cb, void *arg)
{
	return pb__manifest_chunk_open_dctx(keys, name, ct, ct_len, cb, arg, NULL);
}

int pb__manifest_chunk_open_dctx(const pb_backup_keys_t *keys, const uint8_t name[PB_STORE_NAME_LEN],
				 const uint8_t *ct, size_t ct_len, pb_manifest_item_cb cb, void *arg,
				 struct ZSTD_DCtx_s *dctx)
{
	uint8_t *plain = NULL;
	size_t plen = 0;
	int rc;

	if (keys == NULL)
		return PB_EINVAL;
	/* A buffer of the chunk's size, not of the largest chunk's. */
	rc = pb__open_alloc(keys->manifest, keys->name, name, ct, ct_len, PB_MANIFEST_CHUNK_PLAIN_MAX, &plain, &plen,
			    dctx);
	if (rc != 0)
		return rc;
	rc = pb_manifest_parse(plain, plen, cb, arg);
	sodium_memzero(plain, plen);
	free(plain);
	return rc;
}
