/* The host killed at any instant: a child process runs a backup workload on
 * a store (batches of chunks, snapshot records, prune, GC) and is killed
 * with SIGKILL at a chosen point of the write paths. After each kill the
 * store is reopened: it verifies clean, holds every snapshot and chunk the
 * child reported as acknowledged, and keeps working. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "testutil.h"
#include "agent/store/internal.h"
#include "peerback.h"
#include "peerback/store.h"

#define ROUNDS 6
#define LONG_ROUNDS 120
#define PER_ROUND 5
#define ORPHAN_SEED 999u

typedef uint8_t name_t[PB_STORE_NAME_LEN];

static const char *kill_point;
static int kill_count;
static int hits;

static size_t chunk_len(uint32_t seed)
{
	return seed == ORPHAN_SEED ? 300000 : 3000 + (seed * 131) % 5000;
}

static void make_chunk(uint32_t seed, name_t name, uint8_t *ct)
{
	uint8_t key[randombytes_SEEDBYTES] = {0};

	memcpy(key, &seed, sizeof(seed));
	randombytes_buf_deterministic(ct, chunk_len(seed), key);
	crypto_generichash(name, PB_STORE_NAME_LEN, ct, chunk_len(seed), key, sizeof(key));
}

static uint32_t seed_of(int round, int i)
{
	return (uint32_t)(round * 100 + i);
}

static void hook(const char *point)
{
	if (strcmp(point, kill_point) == 0 && ++hits == kill_count)
		raise(SIGKILL);
}

static void say(int fd, const char *what, int round)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "%s %d\n", what, round);

	if (n > 0 && (size_t)n < sizeof(line) && write(fd, line, (size_t)n) != n)
		_exit(3);
}

/* The workload. Reports "C r" once round r's chunks are flushed, "S r" once
 * snapshot r is recorded, "P r" just before pruning snapshot 1 away. */
static void child(const char *dir, int out, int rounds)
{
	static uint8_t ct[300000];
	static name_t refs[LONG_ROUNDS * PER_ROUND];
	pb_store_t *s;
	pb_store_ns_t *ns;
	pb_store_gc_report_t rep;
	int r, i, nrefs = 0;

	if (pb_store_open(dir, &s) != 0 || pb_store_ns_open(s, "acct", "phone", &ns) != 0)
		_exit(2);
	for (r = 1; r <= rounds; r++) {
		for (i = 0; i < PER_ROUND; i++) {
			make_chunk(seed_of(r, i), refs[nrefs], ct);
			if (pb_store_put(ns, refs[nrefs], ct, chunk_len(seed_of(r, i))) != 0)
				_exit(2);
			nrefs++;
		}
		if (r == 3) {
			name_t orphan;

			make_chunk(ORPHAN_SEED, orphan, ct);
			if (pb_store_put(ns, orphan, ct, chunk_len(ORPHAN_SEED)) != 0)
				_exit(2);
		}
		if (pb_store_flush(ns) < 0)
			_exit(2);
		say(out, "C", r);
		if (pb_store_snapshot_put(ns, (uint64_t)r, (const name_t *)refs, (size_t)nrefs,
					  (const uint8_t *)"snapshot-root", 13) != 0)
			_exit(2);
		say(out, "S", r);
		if (r == 4) {
			uint64_t keep[] = {2, 3, 4};

			say(out, "P", r);
			if (pb_store_prune(ns, keep, 3) != 1 || pb_store_gc(s, 0, &rep) != 0)
				_exit(2);
		}
	}
	pb_store_ns_close(ns);
	pb_store_close(s);
	_exit(0);
}

static void check_store(const char *dir, const int *committed, const int *snapped, bool pruned, int rounds)
{
	pb_store_t *s;
	pb_store_ns_t *ns;
	pb_store_verify_report_t rep;
	static uint8_t ct[300000];
	name_t name;
	int r, i;

	assert_int_equal(pb_store_open(dir, &s), 0);
	assert_int_equal(pb_store_verify(s, NULL, NULL, &rep), 0);
	assert_int_equal(rep.bad_records + rep.bad_chunks + rep.missing_refs, 0);
	assert_int_equal(pb_store_ns_open(s, "acct", "phone", &ns), 0);
	for (r = 1; r <= rounds; r++) {
		for (i = 0; committed[r] && i < PER_ROUND; i++) {
			uint8_t *got = NULL;
			size_t len = 0;

			make_chunk(seed_of(r, i), name, ct);
			assert_int_equal(pb_store_get(ns, name, &got, &len), 0);
			assert_int_equal(len, chunk_len(seed_of(r, i)));
			assert_memory_equal(got, ct, len);
			free(got);
		}
		if (snapped[r] && !(r == 1 && pruned)) {
			uint8_t *blob = NULL;
			uint8_t (*refs)[PB_STORE_NAME_LEN] = NULL;
			size_t len = 0, n = 0;

			assert_int_equal(pb_store_snapshot_get(ns, (uint64_t)r, &blob, &len), 0);
			assert_int_equal(len, 13);
			free(blob);
			assert_int_equal(pb_store_snapshot_refs(ns, (uint64_t)r, &refs, &n), 0);
			assert_int_equal(n, (size_t)r * PER_ROUND);
			free(refs);
		}
	}
	/* The store goes on: a new batch and snapshot after the crash. */
	make_chunk(ORPHAN_SEED + 1, name, ct);
	assert_int_equal(pb_store_put(ns, name, ct, chunk_len(ORPHAN_SEED + 1)), 0);
	assert_true(pb_store_flush(ns) >= 0);
	assert_int_equal(pb_store_snapshot_put(ns, 100, (const name_t *)&name, 1, (const uint8_t *)"x", 1), 0);
	pb_store_ns_close(ns);
	assert_int_equal(pb_store_verify(s, NULL, NULL, &rep), 0);
	pb_store_close(s);
}

/* Runs the workload in a child killed at the count-th pass through point,
 * or, with point NULL, after delay_ms of running; then checks the store. */
static void crash_run(const char *point, int count, int delay_ms, int rounds)
{
	char *dir = pb_test_tmpdir("store-crash");
	int committed[LONG_ROUNDS + 1] = {0}, snapped[LONG_ROUNDS + 1] = {0};
	bool pruned = false;
	int fds[2], status;
	static char buf[65536];
	size_t have = 0;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		if (point != NULL) {
			kill_point = point;
			kill_count = count;
			pb__store_test_hook = hook;
		}
		child(dir, fds[1], rounds);
	}
	close(fds[1]);
	if (point == NULL) {
		usleep((useconds_t)delay_ms * 1000);
		kill(pid, SIGKILL);
	}
	while ((r = read(fds[0], buf + have, sizeof(buf) - 1 - have)) > 0)
		have += (size_t)r;
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (point != NULL && (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL))
		fail_msg("child was not killed at %s #%d (status %d)", point, count, status);
	if (point == NULL && !(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0)))
		fail_msg("child failed (status %d)", status);
	buf[have] = '\0';
	{
		char *line, *save = NULL;

		for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
			int round = atoi(line + 2);

			assert_true(round >= 1 && round <= rounds);
			if (line[0] == 'C')
				committed[round] = 1;
			else if (line[0] == 'S')
				snapped[round] = 1;
			else if (line[0] == 'P')
				pruned = true;
		}
	}
	if (point == NULL) {
		int last = 0, k;

		for (k = 1; k <= rounds; k++)
			last = snapped[k] ? k : last;
		fprintf(stderr, "killed after %d ms: %d snapshots acknowledged%s\n", delay_ms, last,
			WIFSIGNALED(status) ? "" : " (finished first)");
	}
	check_store(dir, committed, snapped, pruned, rounds);
	pb_test_rmtree(dir);
	free(dir);
}

static void crash_at(const char *point, int count)
{
	crash_run(point, count, 0, ROUNDS);
}

static void test_kill_mid_batch(void **state)
{
	(void)state;
	crash_at("put", 3);          /* records written, nothing flushed */
	crash_at("put-torn", 8);     /* a torn record in round two */
}

static void test_kill_between_pack_sync_and_index(void **state)
{
	(void)state;
	crash_at("pack-synced", 1);
	crash_at("pack-synced", 3);
}

static void test_kill_after_index_commit(void **state)
{
	(void)state;
	crash_at("index-committed", 2); /* committed, not yet acknowledged */
}

static void test_kill_during_snapshot(void **state)
{
	(void)state;
	crash_at("snapshot-checked", 1);   /* inside its transaction */
	crash_at("snapshot-checked", 3);
	crash_at("snapshot-committed", 2); /* recorded, receipt not sent */
}

static void test_kill_during_gc(void **state)
{
	(void)state;
	crash_at("gc-index-committed", 1); /* dead chunks dropped from the index */
	crash_at("gc-repack-synced", 1);   /* copies written, index not moved */
	crash_at("gc-index-committed", 2); /* index moved, old pack still there */
	crash_at("gc-unlink", 1);
}

/* Kills at whatever instant a timer fires, many times over. */
static void test_kill_at_random_instants(void **state)
{
	int i;

	(void)state;
	srand((unsigned)getpid());
	for (i = 0; i < 8; i++)
		crash_run(NULL, 0, 5 + rand() % 120, LONG_ROUNDS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_mid_batch),
		cmocka_unit_test(test_kill_between_pack_sync_and_index),
		cmocka_unit_test(test_kill_after_index_commit),
		cmocka_unit_test(test_kill_during_snapshot),
		cmocka_unit_test(test_kill_during_gc),
		cmocka_unit_test(test_kill_at_random_instants),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
