/* The backup's sink of sealed chunks (agent/backup/sink.c) on an
 * in-process repository:
 *
 * - chunks small and large (sealed on the caller's thread and on the
 *   sealing threads) come back from the store as they went in, under the
 *   names the sink gave;
 * - each commit's receipt is told once, in order, with its mark, and only
 *   after its chunks are committed in the store;
 * - a chunk the state holds committed is not sent again;
 * - chunks named on the sealing threads get their names in place;
 * - a dry run sends and commits nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "harness.h"
#include "agent/backup/internal.h"
#include "agent/backup/sink.h"

#define NCHUNKS 40

struct world {
	pb_repo_t *repo;
	pb_backup_state_t *st;
	pb_backup_keys_t keys;
	pb_engine_opts_t o;
	pb_engine_result_t res;
	pb__prog_t pr;
	uint64_t marks[NCHUNKS + 2];
	size_t nmarks, names;
	bool names_in_store;
};

static int on_durable(void *arg, uint64_t mark, const name_t *names, size_t n)
{
	struct world *w = arg;
	bool *missing = calloc(n ? n : 1, sizeof(bool));

	assert_non_null(missing);
	assert_true(w->nmarks < NCHUNKS + 2);
	w->marks[w->nmarks++] = mark;
	w->names += n;
	/* Told only once the store holds them committed. */
	assert_int_equal(w->repo->ops->missing(w->repo, (const pb_repo_name_t *)names, n, missing), 0);
	for (size_t i = 0; i < n; i++)
		if (missing[i])
			w->names_in_store = false;
	free(missing);
	return pb_backup_state_mark_committed(w->st, names, n);
}

static void world_open(struct world *w, const char *tag, bool dry_run, pb__sink_t **sink)
{
	char store[4200], state[4200];
	uint8_t mk[PB_MASTERKEY_LEN], dev[16];
	pb__sink_opts_t so;

	memset(w, 0, sizeof(*w));
	w->names_in_store = true;
	snprintf(store, sizeof(store), "%s/%s-store", pb_test_dir, tag);
	snprintf(state, sizeof(state), "%s/%s-state.db", pb_test_dir, tag);
	memset(dev, 7, sizeof(dev));
	assert_int_equal(pb__repo_local_open(store, "alice", dev, &w->repo), 0);
	assert_int_equal(pb_backup_state_open(state, &w->st), 0);
	memset(mk, 3, sizeof(mk));
	pb_backup_keys_derive(mk, &w->keys);
	w->pr.o = &w->o;
	memset(&so, 0, sizeof(so));
	so.repo = w->repo;
	so.st = w->st;
	so.keys = &w->keys;
	so.dry_run = dry_run;
	so.res = &w->res;
	so.pr = &w->pr;
	so.durable = on_durable;
	so.arg = w;
	assert_int_equal(pb__sink_new(&so, sink), 0);
}

static void world_close(struct world *w, pb__sink_t *sink)
{
	pb__sink_free(sink);
	pb_backup_state_close(w->st);
	pb__repo_close(w->repo);
}

/* Chunk i, the same each time: small ones (a few hundred bytes) and large
 * ones (up to 1 MiB, half of them compressible). */
static size_t make_chunk(size_t i, uint8_t *buf)
{
	uint8_t seed[randombytes_SEEDBYTES] = { 0 };
	size_t len = i % 3 == 0 ? 200 + i : (size_t)(64 + i * 25) << 10;

	if (len > (1u << 20))
		len = 1u << 20;
	seed[0] = (uint8_t)i;
	randombytes_buf_deterministic(buf, len, seed);
	if (i % 2 == 0)
		memset(buf, 'a', len / 2);
	return len;
}

static void test_chunks_and_receipts(void **state)
{
	struct world w;
	pb__sink_t *sink;
	uint8_t *buf = malloc(1u << 20), *plain = malloc(1u << 20);
	static uint8_t names[NCHUNKS][PB_STORE_NAME_LEN];
	uint64_t mark = 0;

	(void)state;
	assert_non_null(buf);
	assert_non_null(plain);
	world_open(&w, "receipts", false, &sink);
	for (size_t i = 0; i < NCHUNKS; i++) {
		size_t len = make_chunk(i, buf);

		assert_int_equal(pb__sink_add(sink, buf, len, names[i]), 0);
		if (i % 7 == 6)
			assert_int_equal(pb__sink_commit(sink, ++mark, false), 0);
	}
	assert_int_equal(pb__sink_commit(sink, ++mark, true), 0);
	/* Every receipt told once, in order, the last one with the last mark. */
	assert_true(w.nmarks >= 1);
	for (size_t i = 1; i < w.nmarks; i++)
		assert_true(w.marks[i] > w.marks[i - 1]);
	assert_int_equal(w.marks[w.nmarks - 1], mark);
	assert_true(w.names_in_store);
	assert_int_equal(w.names, NCHUNKS);
	assert_int_equal(w.res.chunks_sent, NCHUNKS);
	/* Each chunk opens from the store to what went in. */
	for (size_t i = 0; i < NCHUNKS; i++) {
		size_t len = make_chunk(i, buf), plen = 0, clen = 0;
		uint8_t *ct = NULL;

		assert_int_equal(pb__repo_get(w.repo, NULL, names[i], &ct, &clen), 0);
		assert_int_equal(pb_chunk_open(&w.keys, names[i], ct, clen, plain, 1u << 20, &plen), 0);
		free(ct);
		assert_int_equal(plen, len);
		assert_memory_equal(plain, buf, len);
		assert_true(pb_backup_state_is_committed(w.st, names[i]));
	}
	pb__sink_free(sink);

	/* A chunk the state holds committed is not sent again. */
	{
		pb__sink_opts_t so;
		uint8_t name[PB_STORE_NAME_LEN];
		size_t len = make_chunk(3, buf);

		memset(&so, 0, sizeof(so));
		so.repo = w.repo;
		so.st = w.st;
		so.keys = &w.keys;
		so.res = &w.res;
		so.pr = &w.pr;
		so.durable = on_durable;
		so.arg = &w;
		w.res.chunks_sent = 0;
		assert_int_equal(pb__sink_new(&so, &sink), 0);
		randombytes_buf(buf, len);
		assert_int_equal(pb__sink_add(sink, buf, len, name), 0);
		len = make_chunk(4, buf);
		assert_int_equal(pb__sink_add(sink, buf, len, name), 0);
		assert_memory_equal(name, names[4], PB_STORE_NAME_LEN);
		assert_int_equal(pb__sink_commit(sink, ++mark, true), 0);
		assert_int_equal(w.res.chunks_sent, 1);
	}
	world_close(&w, sink);
	free(buf);
	free(plain);
}

/* Chunks named on the sealing threads (pb__sink_add_named): each name
 * is in place once pb__sink_hash_wait returns and is the chunk's name;
 * every chunk opens from the store; sent again, chunks the repository
 * holds are offered but not put. */
static void test_named_off_thread(void **state)
{
	struct world w;
	pb__sink_t *sink;
	uint8_t *buf = malloc(1u << 20), *plain = malloc(1u << 20);
	static uint8_t names[NCHUNKS][PB_STORE_NAME_LEN];
	uint8_t want[PB_STORE_NAME_LEN];

	(void)state;
	assert_non_null(buf);
	assert_non_null(plain);
	world_open(&w, "named", false, &sink);
	memset(names, 0, sizeof(names));
	for (size_t i = 0; i < NCHUNKS; i++)
		assert_int_equal(pb__sink_add_named(sink, buf, make_chunk(i, buf), names[i]), 0);
	pb__sink_hash_wait(sink);
	for (size_t i = 0; i < NCHUNKS; i++) {
		pb__chunk_name(w.keys.name, buf, make_chunk(i, buf), want);
		assert_memory_equal(names[i], want, PB_STORE_NAME_LEN);
	}
	assert_int_equal(pb__sink_commit(sink, 1, true), 0);
	assert_true(w.names_in_store);
	assert_int_equal(w.names, NCHUNKS);
	assert_int_equal(w.res.chunks_sent, NCHUNKS);
	for (size_t i = 0; i < NCHUNKS; i++) {
		size_t len = make_chunk(i, buf), plen = 0, clen = 0;
		uint8_t *ct = NULL;

		assert_int_equal(pb__repo_get(w.repo, NULL, names[i], &ct, &clen), 0);
		assert_int_equal(pb_chunk_open(&w.keys, names[i], ct, clen, plain, 1u << 20, &plen), 0);
		free(ct);
		assert_int_equal(plen, len);
		assert_memory_equal(plain, buf, len);
	}
	/* The same chunks again: none is put a second time. */
	w.res.chunks_sent = 0;
	for (size_t i = 0; i < NCHUNKS; i++)
		assert_int_equal(pb__sink_add_named(sink, buf, make_chunk(i, buf), names[i]), 0);
	pb__sink_hash_wait(sink);
	assert_int_equal(pb__sink_commit(sink, 2, true), 0);
	assert_int_equal(w.res.chunks_sent, 0);
	world_close(&w, sink);
	free(buf);
	free(plain);
}

static void test_dry_run(void **state)
{
	struct world w;
	pb__sink_t *sink;
	uint8_t *buf = malloc(1u << 20), name[PB_STORE_NAME_LEN];
	bool missing = false;

	(void)state;
	assert_non_null(buf);
	world_open(&w, "dry", true, &sink);
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(pb__sink_add(sink, buf, make_chunk(i, buf), name), 0);
	assert_int_equal(pb__sink_commit(sink, 1, true), 0);
	assert_int_equal(w.nmarks, 0);
	assert_int_equal(w.res.chunks_sent, 10);
	assert_int_equal(w.repo->ops->missing(w.repo, (const pb_repo_name_t *)name, 1, &missing), 0);
	assert_true(missing);
	world_close(&w, sink);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunks_and_receipts),
		cmocka_unit_test(test_named_off_thread),
		cmocka_unit_test(test_dry_run),
	};

	return cmocka_run_group_tests(tests, pb_test_dir_setup, pb_test_dir_teardown);
}
