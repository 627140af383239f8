/* The snapshot's id index (agent/backup/manifest.c): a backup cuts it into
 * index chunks of 512 entries; one id is found through the root's list of
 * first keys and one index chunk, the first and the last key of the whole
 * index and every id in between, and an id that is not there is not. Index
 * chunks of 4096 entries (what backups wrote first) still read, and a chunk
 * claiming more entries than a reader takes is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zstd.h>

#include "testutil.h"
#include "agent/backup/internal.h"
#include "peerback.h"
#include "peerback/store.h"

#define NITEMS 3000
#define STORE_MAX 1024

typedef struct store_s {
	size_t n;
	uint8_t names[STORE_MAX][PB_STORE_NAME_LEN];
	uint8_t *cts[STORE_MAX];
	size_t lens[STORE_MAX];
} store_t;

typedef struct written_s {
	store_t st;
	uint8_t (*mchunks)[PB_STORE_NAME_LEN];
	size_t nm;
	uint8_t *index;
	size_t nindex;
} written_t;

static int put(void *arg, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	store_t *s = arg;

	assert_true(s->n < STORE_MAX);
	memcpy(s->names[s->n], name, PB_STORE_NAME_LEN);
	assert_non_null(s->cts[s->n] = malloc(len));
	memcpy(s->cts[s->n], ct, len);
	s->lens[s->n++] = len;
	return 0;
}

static size_t find_chunk(const store_t *s, const uint8_t *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (memcmp(s->names[i], name, PB_STORE_NAME_LEN) == 0)
			return i;
	fail_msg("chunk not stored");
	return 0;
}

static void msg_id(size_t i, char *id, size_t cap)
{
	assert_true(snprintf(id, cap, "chat/1/msg/%zu", i) < (int)cap);
}

static void keys_of(pb_backup_keys_t *k)
{
	uint8_t mk[PB_MASTERKEY_LEN];

	memset(mk, 7, sizeof(mk));
	pb_backup_keys_derive(mk, k);
}

/* A backup's manifest of NITEMS messages, written with the index chunks
 * of per entries (0: what backups write). */
static void write_manifest(const pb_backup_keys_t *k, size_t per, written_t *out)
{
	pb_manifest_writer_t *w;
	uint8_t chunk[1][PB_STORE_NAME_LEN], *root = NULL, (*refs)[PB_STORE_NAME_LEN] = NULL;
	size_t root_len, nrefs, saved = pb__manifest_idx_per_chunk;
	uint64_t nitems;
	int64_t t;
	char id[64];

	memset(out, 0, sizeof(*out));
	if (per != 0)
		pb__manifest_idx_per_chunk = per;
	assert_int_equal(pb_manifest_writer_new(k, put, &out->st, &w), 0);
	pb__manifest_writer_indexed(w);
	for (size_t i = 0; i < NITEMS; i++) {
		pb_manifest_item_t it;

		msg_id(i, id, sizeof(id));
		memset(&it, 0, sizeof(it));
		memset(chunk[0], (int)(i & 0xff), PB_STORE_NAME_LEN);
		it.kind = 4;
		it.id = id;
		it.path = "chats/1/result.json";
		it.seq = i;
		it.size = 100;
		it.nchunks = 1;
		it.chunks = (const uint8_t(*)[PB_STORE_NAME_LEN])chunk;
		assert_int_equal(pb_manifest_writer_add(w, &it), 0);
	}
	assert_int_equal(pb_manifest_writer_finish(w, 1, &root, &root_len, &refs, &nrefs), 0);
	pb_manifest_writer_free(w);
	pb__manifest_idx_per_chunk = saved;
	free(refs);
	assert_int_equal(pb__manifest_root_open_index(k, root, root_len, &t, &nitems, &out->mchunks, &out->nm,
						      &out->index, &out->nindex),
			 0);
	assert_int_equal(nitems, NITEMS);
	free(root);
}

static void written_free(written_t *w)
{
	for (size_t i = 0; i < w->st.n; i++)
		free(w->st.cts[i]);
	free(w->mchunks);
	free(w->index);
}

typedef struct seek_s {
	const char *id;
	bool found;
} seek_t;

static int seek_cb(void *arg, const pb_manifest_item_t *it)
{
	seek_t *s = arg;

	if (strcmp(it->id, s->id) == 0)
		s->found = true;
	return 0;
}

/* Looks id up as a restore by id does: the root's index, one index chunk
 * (the next one too when equal keys may straddle), then the manifest
 * chunks it names; true when one of them lists the id. Counts the index
 * chunks opened. */
static bool lookup(const pb_backup_keys_t *k, const written_t *w, const char *id, size_t *opened, ZSTD_DCtx *dctx)
{
	uint64_t key = pb__manifest_id_key(k, id, strlen(id));
	size_t i = pb__manifest_index_pick(w->index, w->nindex, key);
	seek_t s = { id, false };

	*opened = 0;
	for (; i < w->nindex; i++) {
		uint32_t mc[8];
		size_t n = 0, c = find_chunk(&w->st, pb__manifest_index_name(w->index, i));

		if (*opened > 0 && pb__manifest_index_first(w->index, i) != key)
			break;
		assert_int_equal(pb__manifest_index_find(k, w->st.names[c], w->st.cts[c], w->st.lens[c], key, mc, 8,
							 &n, dctx),
				 0);
		(*opened)++;
		for (size_t j = 0; j < n; j++) {
			size_t m;

			assert_true(mc[j] < w->nm);
			m = find_chunk(&w->st, w->mchunks[mc[j]]);
			assert_int_equal(pb__manifest_chunk_open_dctx(k, w->st.names[m], w->st.cts[m], w->st.lens[m],
								      seek_cb, &s, dctx),
					 0);
		}
	}
	return s.found;
}

/* The ids whose keys are the smallest and the largest. */
static void extremes(const pb_backup_keys_t *k, size_t *lo, size_t *hi)
{
	uint64_t kmin = UINT64_MAX, kmax = 0;
	char id[64];

	for (size_t i = 0; i < NITEMS; i++) {
		uint64_t key;

		msg_id(i, id, sizeof(id));
		key = pb__manifest_id_key(k, id, strlen(id));
		if (key <= kmin) {
			kmin = key;
			*lo = i;
		}
		if (key >= kmax) {
			kmax = key;
			*hi = i;
		}
	}
}

/* Each id looked up with a decompression context of its own per chunk
 * and with one kept across the lookups, as a restore by id keeps one. */
static void check_lookups(const pb_backup_keys_t *k, const written_t *w)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	size_t lo = 0, hi = 0, opened;
	char id[64];

	assert_non_null(dctx);
	extremes(k, &lo, &hi);
	msg_id(lo, id, sizeof(id));
	assert_true(lookup(k, w, id, &opened, NULL));
	assert_int_equal(opened, 1);
	assert_true(lookup(k, w, id, &opened, dctx));
	msg_id(hi, id, sizeof(id));
	assert_true(lookup(k, w, id, &opened, NULL));
	assert_int_equal(opened, 1);
	assert_true(lookup(k, w, id, &opened, dctx));
	for (size_t i = 0; i < NITEMS; i += 7) {
		msg_id(i, id, sizeof(id));
		assert_true(lookup(k, w, id, &opened, i % 2 ? dctx : NULL));
	}
	assert_false(lookup(k, w, "chat/1/msg/3000", &opened, dctx));
	assert_false(lookup(k, w, "chat/2/msg/0", &opened, NULL));
	assert_false(lookup(k, w, "", &opened, dctx));
	ZSTD_freeDCtx(dctx);
}

static void test_small_index_chunks(void **state)
{
	pb_backup_keys_t k;
	written_t w;

	(void)state;
	keys_of(&k);
	write_manifest(&k, 0, &w);
	/* 3000 ids in chunks of 512: six, each listed by its first key,
	 * in order. */
	assert_int_equal(w.nindex, (NITEMS + 511) / 512);
	for (size_t i = 1; i < w.nindex; i++)
		assert_true(pb__manifest_index_first(w.index, i - 1) <= pb__manifest_index_first(w.index, i));
	/* Below the first key: the first chunk; above the last: the last. */
	assert_int_equal(pb__manifest_index_pick(w.index, w.nindex, 0), 0);
	assert_int_equal(pb__manifest_index_pick(w.index, w.nindex, UINT64_MAX), w.nindex - 1);
	check_lookups(&k, &w);
	written_free(&w);
}

/* Index chunks of 4096 entries, as the first indexed backups wrote them,
 * are read the same way. */
static void test_index_chunks_of_before(void **state)
{
	pb_backup_keys_t k;
	written_t w;

	(void)state;
	keys_of(&k);
	write_manifest(&k, 4096, &w);
	assert_int_equal(w.nindex, 1);
	check_lookups(&k, &w);
	written_free(&w);
}

/* A chunk of more entries than any reader takes is refused, not read. */
static void test_index_chunk_too_long(void **state)
{
	pb_backup_keys_t k;
	size_t count = 4097, plen = 12 + count * 12, ct_len = 0, n = 9;
	uint8_t *plain = calloc(1, plen), *ct = malloc(plen + 1024), name[PB_STORE_NAME_LEN];
	uint32_t mc[8];

	(void)state;
	keys_of(&k);
	assert_non_null(plain);
	assert_non_null(ct);
	memcpy(plain, "PBMI", 4);
	plain[4] = 1;
	plain[8] = (uint8_t)count;
	plain[9] = (uint8_t)(count >> 8);
	assert_int_equal(pb__seal(k.manifest, k.name, plain, plen, name, ct, &ct_len), 0);
	/* Larger than the largest index chunk a reader opens. */
	assert_int_equal(pb__manifest_index_find(&k, name, ct, ct_len, 0, mc, 8, &n, NULL), PB_ETOOBIG);
	assert_int_equal(n, 0);
	free(plain);
	free(ct);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_index_chunks),
		cmocka_unit_test(test_index_chunks_of_before),
		cmocka_unit_test(test_index_chunk_too_long),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
