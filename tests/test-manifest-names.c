/* Manifest and index chunks named several at once (agent/backup/manifest.c,
 * pb__manifest_writer_flush): a finished chunk waits for a few more and
 * all are named together. Every chunk handed over carries the name of
 * its plaintext (what pb__chunk_name gives, pb_test_chunk_name), the
 * root lists the manifest chunks in the order their items were added,
 * every item reads back in order, the references hold every chunk, the
 * chunks the repository is known to hold are named but not handed over,
 * and pb__manifest_writer_nchunks counts only chunks handed over (or
 * known). Items of every size: small ones (many chunks of a few KiB), ones
 * whose records outgrow the room left behind the chunks waiting, and ones
 * too large for it at all. Sealed (emit) and plain (the backup's way)
 * writers alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "testutil.h"
#include "agent/backup/internal.h"
#include "peerback.h"
#include "peerback/store.h"

#define MAXCH 4096

typedef uint8_t name_t[PB_STORE_NAME_LEN];

struct seen {
	pb_backup_keys_t keys;
	pb_manifest_writer_t *w;
	size_t n;          /* chunks handed over or known, in order */
	name_t names[MAXCH];
	uint8_t *plain[MAXCH];
	size_t len[MAXCH];
	bool known[MAXCH];
	size_t nmanifest; /* of them manifest chunks */
	size_t asked;     /* known() calls */
	unsigned every;   /* known() says yes to every every-th chunk (0: none) */
	bool finishing;   /* index chunks from now on: none known */
	size_t items_read;
};

static void check_name(const struct seen *s, const name_t name, const uint8_t *plain, size_t len)
{
	uint8_t want[PB_STORE_NAME_LEN];

	pb_test_chunk_name(s->keys.name, plain, len, want);
	assert_memory_equal(want, name, PB_STORE_NAME_LEN);
}

static void note(struct seen *s, const uint8_t *name, const uint8_t *plain, size_t len, bool known)
{
	assert_true(s->n < MAXCH);
	memcpy(s->names[s->n], name, PB_STORE_NAME_LEN);
	s->known[s->n] = known;
	s->plain[s->n] = NULL;
	if (plain != NULL) {
		check_name(s, name, plain, len);
		assert_non_null(s->plain[s->n] = malloc(len));
		memcpy(s->plain[s->n], plain, len);
	}
	s->len[s->n] = len;
	s->n++;
}

/* Known chunks are noted here, the rest where they are handed over. */
static bool known(void *arg, const uint8_t *name)
{
	struct seen *s = arg;

	s->asked++;
	if (s->every == 0 || s->finishing || s->asked % s->every != 0)
		return false;
	note(s, name, NULL, 0, true);
	return true;
}

static int plain_cb(void *arg, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *plain, size_t len, int level)
{
	struct seen *s = arg;

	(void)level;
	note(s, name, plain, len, false);
	return 0;
}

static int emit_cb(void *arg, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	struct seen *s = arg;
	uint8_t *plain = malloc(PB_CHUNK_PLAIN_MAX);
	size_t plen;

	assert_non_null(plain);
	/* pb__open checks the plaintext against its name. */
	assert_int_equal(pb__open(s->keys.manifest, s->keys.name, name, ct, len, plain, PB_CHUNK_PLAIN_MAX, &plen), 0);
	note(s, name, plain, plen, false);
	free(plain);
	return 0;
}

static size_t manifest_chunks_seen(const struct seen *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		if (s->known[i] || (s->len[i] >= 4 && memcmp(s->plain[i], "PBMC", 4) == 0))
			n++;
	return n;
}

static void item_of(size_t i, char *id, size_t cap, name_t *names, pb_manifest_item_t *it)
{
	memset(it, 0, sizeof(*it));
	assert_true(snprintf(id, cap, "chat/7/msg/%zu", i) < (int)cap);
	it->kind = 4;
	it->id = id;
	it->path = "chats/7/result.json";
	it->seq = i;
	it->size = 1000 + i;
	it->hash[0] = (uint8_t)i;
	/* Mostly one chunk; some records of 40-190 KiB (they outgrow the
	 * room behind the chunks waiting) and a few of over 256 KiB (named
	 * alone). */
	it->nchunks = i % 997 == 500 ? 9000 : i % 211 == 100 ? 1300 + (i % 5) * 1000 : 1;
	for (size_t c = 0; c < it->nchunks; c++) {
		memset(names[c], (int)(c & 0xff), PB_STORE_NAME_LEN);
		names[c][0] = (uint8_t)i;
		names[c][1] = (uint8_t)(c >> 8);
	}
	it->chunks = (const uint8_t(*)[PB_STORE_NAME_LEN])names;
}

static int read_item(void *arg, const pb_manifest_item_t *m)
{
	struct seen *s = arg;
	char id[64];
	name_t *names = malloc(9000 * sizeof(name_t));
	pb_manifest_item_t want;

	assert_non_null(names);
	item_of(s->items_read, id, sizeof(id), names, &want);
	assert_string_equal(m->id, want.id);
	assert_int_equal(m->seq, want.seq);
	assert_int_equal(m->size, want.size);
	assert_int_equal(m->nchunks, want.nchunks);
	assert_memory_equal(m->chunks, names, want.nchunks * sizeof(name_t));
	s->items_read++;
	free(names);
	return 0;
}

static bool has_ref(uint8_t (*refs)[PB_STORE_NAME_LEN], size_t nrefs, const uint8_t *name)
{
	for (size_t i = 0; i < nrefs; i++)
		if (memcmp(refs[i], name, PB_STORE_NAME_LEN) == 0)
			return true;
	return false;
}

static void write_and_check(size_t nitems, bool plain, unsigned every)
{
	struct seen *s = calloc(1, sizeof(*s));
	uint8_t mk[PB_MASTERKEY_LEN], *root = NULL, (*refs)[PB_STORE_NAME_LEN] = NULL, (*mchunks)[PB_STORE_NAME_LEN] = NULL;
	name_t *names = malloc(9000 * sizeof(name_t));
	size_t root_len, nrefs, nm, k = 0;
	uint64_t nitems_read;
	int64_t t;
	char id[64];

	assert_non_null(s);
	assert_non_null(names);
	memset(mk, 9, sizeof(mk));
	pb_backup_keys_derive(mk, &s->keys);
	s->every = every;
	assert_int_equal(pb_manifest_writer_new(&s->keys, emit_cb, s, &s->w), 0);
	pb__manifest_writer_indexed(s->w);
	if (plain)
		pb__manifest_writer_plain(s->w, plain_cb, s);
	if (every != 0)
		pb__manifest_writer_known(s->w, known, s);
	for (size_t i = 0; i < nitems; i++) {
		pb_manifest_item_t it;

		item_of(i, id, sizeof(id), names, &it);
		assert_int_equal(pb_manifest_writer_add(s->w, &it), 0);
		/* Only chunks named are counted, all of them seen. */
		assert_int_equal(pb__manifest_writer_nchunks(s->w), manifest_chunks_seen(s));
		if (i % 1500 == 1499) {
			assert_int_equal(pb__manifest_writer_flush(s->w), 0);
			assert_int_equal(pb__manifest_writer_nchunks(s->w), manifest_chunks_seen(s));
		}
	}
	/* The last manifest chunks may wait: known ones are told by the
	 * last flush. */
	assert_int_equal(pb__manifest_writer_flush(s->w), 0);
	s->finishing = true;
	assert_int_equal(pb_manifest_writer_finish(s->w, 1, &root, &root_len, &refs, &nrefs), 0);
	assert_int_equal(pb__manifest_writer_nchunks(s->w), manifest_chunks_seen(s));
	pb_manifest_writer_free(s->w);
	assert_int_equal(pb_manifest_root_open(&s->keys, root, root_len, &t, &nitems_read, &mchunks, &nm), 0);
	assert_int_equal(nitems_read, nitems);
	/* Many chunks, so that batches of every size were named. */
	assert_true(nm > 40);
	assert_int_equal(nm, manifest_chunks_seen(s));
	/* The root lists the manifest chunks in the order they were seen; the
	 * items read back from them in order; every chunk is referenced. */
	for (size_t i = 0; i < s->n; i++) {
		assert_true(has_ref(refs, nrefs, s->names[i]));
		if (!s->known[i] && memcmp(s->plain[i], "PBMC", 4) != 0)
			continue;
		assert_true(k < nm);
		assert_memory_equal(mchunks[k], s->names[i], PB_STORE_NAME_LEN);
		k++;
		/* Items read back in order (a known chunk's are not seen). */
		if (every == 0)
			assert_int_equal(pb_manifest_parse(s->plain[i], s->len[i], read_item, s), 0);
	}
	assert_int_equal(k, nm);
	if (every == 0)
		assert_int_equal(s->items_read, nitems);
	for (size_t i = 0; i < s->n; i++)
		free(s->plain[i]);
	free(root);
	free(refs);
	free(mchunks);
	free(names);
	free(s);
}

static void test_plain_names(void **state)
{
	(void)state;
	write_and_check(6000, true, 0);
}

static void test_sealed_names(void **state)
{
	(void)state;
	write_and_check(6000, false, 0);
}

/* Every third chunk known to the repository: named, listed, not sent. */
static void test_known_chunks(void **state)
{
	(void)state;
	write_and_check(6000, true, 3);
}

/* Fewer items than fill a batch: named at finish. */
static void test_few_items(void **state)
{
	struct seen *s = calloc(1, sizeof(*s));
	uint8_t mk[PB_MASTERKEY_LEN], *root = NULL, (*refs)[PB_STORE_NAME_LEN] = NULL, (*mchunks)[PB_STORE_NAME_LEN] = NULL;
	name_t names[1];
	size_t root_len, nrefs, nm;
	uint64_t n;
	int64_t t;
	char id[64];

	(void)state;
	assert_non_null(s);
	memset(mk, 9, sizeof(mk));
	pb_backup_keys_derive(mk, &s->keys);
	assert_int_equal(pb_manifest_writer_new(&s->keys, emit_cb, s, &s->w), 0);
	pb__manifest_writer_indexed(s->w);
	for (size_t i = 0; i < 3; i++) {
		pb_manifest_item_t it;

		item_of(i * 2, id, sizeof(id), names, &it);
		assert_int_equal(pb_manifest_writer_add(s->w, &it), 0);
	}
	assert_int_equal(pb_manifest_writer_finish(s->w, 1, &root, &root_len, &refs, &nrefs), 0);
	pb_manifest_writer_free(s->w);
	assert_int_equal(pb_manifest_root_open(&s->keys, root, root_len, &t, &n, &mchunks, &nm), 0);
	assert_int_equal(n, 3);
	assert_int_equal(nm, 1);
	assert_int_equal(s->n, 2); /* the manifest chunk and the index chunk */
	assert_memory_equal(mchunks[0], s->names[0], PB_STORE_NAME_LEN);
	assert_memory_equal(s->plain[1], "PBMI", 4);
	for (size_t i = 0; i < s->n; i++)
		free(s->plain[i]);
	free(root);
	free(refs);
	free(mchunks);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_names),
		cmocka_unit_test(test_sealed_names),
		cmocka_unit_test(test_known_chunks),
		cmocka_unit_test(test_few_items),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
