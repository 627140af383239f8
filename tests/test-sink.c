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
 * - a file's chunks in a lent buffer (pb__sink_add_piece) are stored
 *   under their names and the buffer given back, at most keep held;
 * - a dry run sends and commits nothing;
 * - small chunks handed to the sealing threads in batches
 *   (pb__sink_add_level) get the same names, are put in the same order
 *   and covered by the same receipts as when sealed one by one, across
 *   every batch boundary (full by bytes, full by count, cut by another
 *   chunk, by a commit); an error mid-batch is returned, nothing after it
 *   is put, and the sink frees what it held. */
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

/* Buffers lent to the sink (pb__sink_add_piece): how many it holds. */
struct lender {
	size_t out;
};

static void give_back(void *arg, uint8_t *buf)
{
	struct lender *l = arg;

	assert_true(l->out > 0);
	l->out--;
	free(buf);
}

/* A file's chunks in lent buffers, named already: sealed from the buffer
 * itself, stored under their names, each buffer given back once, and
 * never more than keep held once a piece is added. */
static void test_pieces_lent(void **state)
{
	struct world w;
	pb__sink_t *sink;
	struct lender l = { 0 };
	uint8_t *one = malloc(1u << 20), *plain = malloc(1u << 20);
	static uint8_t names[NCHUNKS][PB_STORE_NAME_LEN];

	(void)state;
	assert_non_null(one);
	assert_non_null(plain);
	world_open(&w, "pieces", false, &sink);
	for (size_t i = 0; i < NCHUNKS; i += 4) {
		size_t len[4], total = 0;
		uint8_t *buf = malloc(4u << 20);

		assert_non_null(buf);
		for (size_t k = 0; k < 4; k++) {
			len[k] = make_chunk(i + k, one);
			memcpy(buf + total, one, len[k]);
			pb__chunk_name(w.keys.name, one, len[k], names[i + k]);
			total += len[k];
		}
		l.out++;
		assert_int_equal(pb__sink_add_piece(sink, buf, len, (const name_t *)names[i], 4, give_back, &l, 2), 0);
		assert_true(l.out <= 2);
	}
	assert_int_equal(pb__sink_commit(sink, 1, true), 0);
	assert_int_equal(l.out, 0);
	assert_true(w.names_in_store);
	assert_int_equal(w.res.chunks_sent, NCHUNKS);
	for (size_t i = 0; i < NCHUNKS; i++) {
		size_t len = make_chunk(i, one), plen = 0, clen = 0;
		uint8_t *ct = NULL;

		assert_int_equal(pb__repo_get(w.repo, NULL, names[i], &ct, &clen), 0);
		assert_int_equal(pb_chunk_open(&w.keys, names[i], ct, clen, plain, 1u << 20, &plen), 0);
		free(ct);
		assert_int_equal(plen, len);
		assert_memory_equal(plain, one, len);
	}
	world_close(&w, sink);
	free(one);
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

/* A commit is due after PB__SINK_COMMIT_BYTES added, twice as many once
 * the run has added PB__SINK_COMMIT_WIDE_AFTER (or after a second, which
 * this does not rely on: a commit due sooner than that must be due by
 * its bytes). */
static void test_commit_due_widens(void **state)
{
	struct world w;
	pb__sink_t *sink;
	uint8_t *buf = malloc(1u << 20), name[PB_STORE_NAME_LEN];
	uint64_t total = 0, since = 0;
	size_t due = 0;
	double last;

	(void)state;
	assert_non_null(buf);
	world_open(&w, "due", true, &sink);
	randombytes_buf(buf, 1u << 20);
	last = pb__now_s();
	for (size_t i = 0; i < 96; i++) {
		uint64_t want;

		buf[0] = (uint8_t)i;
		assert_int_equal(pb__sink_add(sink, buf, 1u << 20, name), 0);
		total += 1u << 20;
		since += 1u << 20;
		want = total >= PB__SINK_COMMIT_WIDE_AFTER ? PB__SINK_COMMIT_BYTES_WIDE : PB__SINK_COMMIT_BYTES;
		if (!pb__sink_due(sink)) {
			assert_true(since < want);
			continue;
		}
		if (pb__now_s() - last < 1.0)
			assert_true(since >= want);
		due++;
		last = pb__now_s(); /* before the sink's own clock starts again */
		assert_int_equal(pb__sink_commit(sink, i + 1, false), 0);
		since = 0;
	}
	assert_true(due >= 96 / 8);
	assert_int_equal(pb__sink_commit(sink, 100, true), 0);
	world_close(&w, sink);
	free(buf);
}

/* ---- batches of small chunks ---------------------------------------------------- */

#define PACKED 1300

/* What the repository saw: each put's name in order, each receipt's
 * names, and a put that fails (fail_at: the put with that number). */
static struct {
	const pb_repo_ops_t *real;
	uint8_t (*puts)[PB_STORE_NAME_LEN];
	size_t nputs, fail_at;
} seen;
static pb_repo_ops_t spy_ops;

static int spy_put(pb_repo_t *r, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	if (seen.fail_at != 0 && seen.nputs + 1 == seen.fail_at)
		return PB_EIO;
	memcpy(seen.puts[seen.nputs++], name, PB_STORE_NAME_LEN);
	return seen.real->put(r, name, ct, len);
}

static void spy_on(struct world *w)
{
	seen.real = w->repo->ops;
	spy_ops = *w->repo->ops;
	spy_ops.put = spy_put;
	w->repo->ops = &spy_ops;
	seen.nputs = 0;
}

/* Chunk i of the run, each different: mostly 2-32 KiB (a stream's), some
 * of a few bytes (600 in a row: a batch full by count), some large ones
 * between them. */
static size_t packed_chunk(size_t i, uint8_t *buf, bool *small)
{
	uint8_t seed[randombytes_SEEDBYTES] = { 0 };
	size_t len;

	seed[0] = (uint8_t)i;
	seed[1] = (uint8_t)(i >> 8);
	seed[2] = 0x5a;
	*small = true;
	if (i % 97 == 50) {
		len = (100u + i % 500) << 10; /* sealed alone */
		*small = false;
	} else if (i >= 300 && i < 900) {
		len = 8 + i % 5; /* more than a batch's count */
	} else {
		len = 2048 + (i * 7919) % (30u << 10);
	}
	randombytes_buf_deterministic(buf, len, seed);
	if (i % 3 == 0)
		memset(buf, 'z', len / 2);
	return len;
}

struct packed_run {
	uint8_t names[PACKED][PB_STORE_NAME_LEN];
	uint8_t (*puts)[PB_STORE_NAME_LEN];
	size_t nputs, nmarks, names_told;
	uint64_t marks[NCHUNKS + 2];
	int rc;
};

static void packed_run(const char *tag, bool off, size_t fail_at, struct packed_run *out)
{
	struct world w;
	pb__sink_t *sink;
	uint8_t *buf = malloc(1u << 20);
	uint64_t mark = 0;
	int rc = 0;

	assert_non_null(buf);
	world_open(&w, tag, false, &sink);
	spy_on(&w);
	seen.puts = out->puts;
	seen.fail_at = fail_at;
	pb__sink_pack_off = off;
	for (size_t i = 0; i < PACKED && rc == 0; i++) {
		bool small;
		size_t len = packed_chunk(i, buf, &small);

		rc = small ? pb__sink_add_level(sink, buf, len, out->names[i], -1)
			   : pb__sink_add(sink, buf, len, out->names[i]);
		/* Commits at odd places: mid-batch, right after a large one. */
		if (rc == 0 && (i % 61 == 17 || i % 97 == 50))
			rc = pb__sink_commit(sink, ++mark, false);
	}
	if (rc == 0)
		rc = pb__sink_commit(sink, ++mark, true);
	pb__sink_pack_off = false;
	out->rc = rc;
	out->nputs = seen.nputs;
	out->nmarks = w.nmarks;
	out->names_told = w.names;
	memcpy(out->marks, w.marks, sizeof(out->marks));
	if (rc == 0) {
		assert_true(w.names_in_store);
		/* Each chunk opens from the store to what went in. */
		for (size_t i = 0; i < PACKED; i += 7) {
			bool small;
			size_t len = packed_chunk(i, buf, &small), plen = 0, clen = 0;
			uint8_t *ct = NULL, *plain = malloc(1u << 20);

			assert_non_null(plain);
			assert_int_equal(pb__repo_get(w.repo, NULL, out->names[i], &ct, &clen), 0);
			assert_int_equal(pb_chunk_open(&w.keys, out->names[i], ct, clen, plain, 1u << 20, &plen), 0);
			assert_int_equal(plen, len);
			assert_memory_equal(plain, buf, len);
			free(ct);
			free(plain);
		}
	}
	w.repo->ops = seen.real;
	world_close(&w, sink);
	free(buf);
}

static void test_batches_same_as_one_by_one(void **state)
{
	struct packed_run *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	a->puts = calloc(PACKED, PB_STORE_NAME_LEN);
	b->puts = calloc(PACKED, PB_STORE_NAME_LEN);
	assert_non_null(a->puts);
	assert_non_null(b->puts);
	packed_run("one-by-one", true, 0, a);
	packed_run("batched", false, 0, b);
	assert_int_equal(a->rc, 0);
	assert_int_equal(b->rc, 0);
	/* The same names, put in the same order. */
	assert_memory_equal(a->names, b->names, sizeof(a->names));
	assert_int_equal(a->nputs, PACKED);
	assert_int_equal(b->nputs, PACKED);
	assert_memory_equal(a->puts, b->puts, a->nputs * PB_STORE_NAME_LEN);
	/* Every receipt in order, the last one with the last mark. */
	assert_int_equal(a->names_told, PACKED);
	assert_int_equal(b->names_told, PACKED);
	for (size_t i = 1; i < b->nmarks; i++)
		assert_true(b->marks[i] > b->marks[i - 1]);
	assert_int_equal(a->marks[a->nmarks - 1], b->marks[b->nmarks - 1]);

	/* A put that fails mid-batch: the error comes back, nothing after
	 * it was put, and everything held is freed (the sanitizer's leak
	 * check). */
	memset(b->names, 0, sizeof(b->names));
	packed_run("failing", false, 40, b);
	assert_int_equal(b->rc, PB_EIO);
	assert_int_equal(b->nputs, 39);
	assert_memory_equal(a->puts, b->puts, 39 * PB_STORE_NAME_LEN);
	free(a->puts);
	free(b->puts);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunks_and_receipts),
		cmocka_unit_test(test_named_off_thread),
		cmocka_unit_test(test_pieces_lent),
		cmocka_unit_test(test_dry_run),
		cmocka_unit_test(test_commit_due_widens),
		cmocka_unit_test(test_batches_same_as_one_by_one),
	};

	return cmocka_run_group_tests(tests, pb_test_dir_setup, pb_test_dir_teardown);
}
