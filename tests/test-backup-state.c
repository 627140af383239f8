/* The phone's backup state: an item backed up and confirmed by the host is
 * unchanged until its size, mtime or content changes; confirmations survive
 * a restart, so a resumed backup skips committed chunks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "peerback.h"
#include "peerback/store.h"

typedef uint8_t name_t[PB_STORE_NAME_LEN];

static void test_unchanged_items_cost_nothing(void **state)
{
	char *dir = pb_test_tmpdir("backup-state");
	char path[4096];
	pb_backup_state_t *st;
	name_t chunks[3] = {{1}, {2}, {3}};
	uint8_t hash[32] = {7}, other[32] = {8};
	uint8_t (*got)[PB_STORE_NAME_LEN] = NULL;
	pb_manifest_item_t it = {.kind = 2, .id = "mifare/card-1", .path = "mifare/card-1.mfd",
				 .size = 1024, .mtime = 1700000000, .nchunks = 3,
				 .chunks = (const name_t *)chunks};
	size_t n = 0;

	(void)state;
	memcpy(it.hash, hash, sizeof(hash));
	assert_true(snprintf(path, sizeof(path), "%s/state.db", dir) < (int)sizeof(path));
	assert_int_equal(pb_backup_state_open(path, &st), 0);
	assert_false(pb_backup_state_unchanged(st, "mifare/card-1", 1024, 1700000000, hash));
	assert_int_equal(pb_backup_state_record(st, &it), 0);
	/* Recorded, but the host has not confirmed every chunk yet. */
	assert_int_equal(pb_backup_state_mark_committed(st, (const name_t *)chunks, 2), 0);
	assert_true(pb_backup_state_is_committed(st, chunks[1]));
	assert_false(pb_backup_state_is_committed(st, chunks[2]));
	assert_false(pb_backup_state_unchanged(st, "mifare/card-1", 1024, 1700000000, hash));
	assert_int_equal(pb_backup_state_mark_committed(st, (const name_t *)chunks, 3), 0);
	assert_true(pb_backup_state_unchanged(st, "mifare/card-1", 1024, 1700000000, hash));
	assert_false(pb_backup_state_unchanged(st, "mifare/card-1", 1025, 1700000000, hash));
	assert_false(pb_backup_state_unchanged(st, "mifare/card-1", 1024, 1700000001, hash));
	assert_false(pb_backup_state_unchanged(st, "mifare/card-1", 1024, 1700000000, other));
	assert_false(pb_backup_state_unchanged(st, "mifare/card-2", 1024, 1700000000, hash));
	pb_backup_state_close(st);

	assert_int_equal(pb_backup_state_open(path, &st), 0);
	assert_true(pb_backup_state_unchanged(st, "mifare/card-1", 1024, 1700000000, hash));
	assert_int_equal(pb_backup_state_item_chunks(st, "mifare/card-1", &got, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(got, chunks, sizeof(chunks));
	free(got);
	assert_int_equal(pb_backup_state_item_chunks(st, "nope", &got, &n), PB_ENOTFOUND);
	/* A new version of the item replaces the old record. */
	it.size = 2048;
	it.nchunks = 1;
	assert_int_equal(pb_backup_state_record(st, &it), 0);
	assert_true(pb_backup_state_unchanged(st, "mifare/card-1", 2048, 1700000000, hash));
	pb_backup_state_close(st);
	pb_test_rmtree(dir);
	free(dir);
}

/* Generations: only items recorded or touched by the last completed run
 * are answered by get(), with what that run put in its snapshot; a run that
 * began and did not finish answers nothing; a file from before the
 * generations is migrated and answers nothing until a run completes. */
static void test_completed_run_answers_lookups(void **state)
{
	char *dir = pb_test_tmpdir("backup-state-gen");
	char path[4096], *id = NULL, *p = NULL;
	pb_backup_state_t *st, *ro;
	name_t chunks[2] = {{4}, {5}};
	uint8_t (*names)[PB_STORE_NAME_LEN] = NULL;
	pb_manifest_item_t m, msg = {.kind = 4, .id = "chat/7/msg/1", .path = "chats/7/result.json", .seq = 3,
				     .size = 40, .nchunks = 1, .chunks = (const name_t *)chunks};
	pb_manifest_item_t gone = {.kind = 4, .id = "chat/7/msg/2", .path = "chats/7/result.json", .seq = 4,
				   .size = 41, .nchunks = 1, .chunks = (const name_t *)&chunks[1]};
	uint64_t snap = 0;

	(void)state;
	msg.hash[0] = 9;
	assert_true(snprintf(path, sizeof(path), "%s/state.db", dir) < (int)sizeof(path));
	assert_int_equal(pb_backup_state_open(path, &st), 0);
	/* Run 1 records both items and completes. */
	assert_int_equal(pb_backup_state_run_begin(st), 0);
	assert_int_equal(pb_backup_state_record(st, &msg), 0);
	assert_int_equal(pb_backup_state_record(st, &gone), 0);
	assert_int_equal(pb_backup_state_run_done(st, 0x1234), 0);
	assert_int_equal(pb_backup_state_open_ro(path, &ro), 0);
	assert_int_equal(pb_backup_state_done(ro, &snap), 0);
	assert_int_equal(snap, 0x1234);
	assert_int_equal(pb_backup_state_get(ro, "chat/7/msg/1", &m, &id, &p, &names), 0);
	assert_string_equal(m.path, "chats/7/result.json");
	assert_int_equal(m.kind, 4);
	assert_int_equal(m.seq, 3);
	assert_int_equal(m.size, 40);
	assert_int_equal(m.hash[0], 9);
	assert_int_equal(m.nchunks, 1);
	assert_memory_equal(names[0], chunks[0], PB_STORE_NAME_LEN);
	free(id);
	free(p);
	free(names);
	assert_true(pb_backup_state_has_children(ro, "chat/7"));
	assert_false(pb_backup_state_has_children(ro, "chat/7/msg/1"));
	pb_backup_state_close(ro);
	/* Run 2 began: nothing is known to be in a snapshot until it ends. */
	assert_int_equal(pb_backup_state_run_begin(st), 0);
	assert_int_equal(pb_backup_state_open_ro(path, &ro), 0);
	assert_int_equal(pb_backup_state_done(ro, &snap), PB_ENOTFOUND);
	pb_backup_state_close(ro);
	/* It keeps msg/1 (moved to seq 5) and drops msg/2. */
	msg.seq = 5;
	assert_int_equal(pb_backup_state_touch(st, &msg), 0);
	assert_int_equal(pb_backup_state_run_done(st, 0x5678), 0);
	assert_int_equal(pb_backup_state_open_ro(path, &ro), 0);
	assert_int_equal(pb_backup_state_done(ro, &snap), 0);
	assert_int_equal(snap, 0x5678);
	assert_int_equal(pb_backup_state_get(ro, "chat/7/msg/1", &m, &id, &p, &names), 0);
	assert_int_equal(m.seq, 5);
	free(id);
	free(p);
	free(names);
	assert_int_equal(pb_backup_state_get(ro, "chat/7/msg/2", &m, &id, &p, &names), PB_ENOTFOUND);
	assert_true(pb_backup_state_has_children(ro, "chat/7/msg"));
	assert_false(pb_backup_state_has_children(ro, "chat/7/msg/2"));
	assert_false(pb_backup_state_has_children(ro, "chat/8"));
	pb_backup_state_close(ro);
	pb_backup_state_close(st);
	pb_test_rmtree(dir);
	free(dir);
}

/* A state file written before the generations opens, gains the columns,
 * and keeps its rows for the unchanged check. */
static void test_old_state_file_migrates(void **state)
{
	char *dir = pb_test_tmpdir("backup-state-old");
	char path[4096], sql[512];
	pb_backup_state_t *st;
	uint8_t hash[32] = {0};
	uint64_t snap;

	(void)state;
	assert_true(snprintf(path, sizeof(path), "%s/state.db", dir) < (int)sizeof(path));
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE items(id TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime INTEGER NOT NULL,"
		 " hash BLOB NOT NULL, chunks BLOB NOT NULL);"
		 "CREATE TABLE committed(name BLOB PRIMARY KEY) WITHOUT ROWID;"
		 "INSERT INTO items VALUES('x', 5, 6, zeroblob(32), x'');");
	{
		char *argv[] = { "/usr/bin/sqlite3", path, sql, NULL };
		assert_int_equal(pb_test_run(argv, NULL, 30, NULL, NULL), 0);
	}
	assert_int_equal(pb_backup_state_open(path, &st), 0);
	assert_true(pb_backup_state_unchanged(st, "x", 5, 6, hash));
	assert_int_equal(pb_backup_state_done(st, &snap), PB_ENOTFOUND);
	pb_backup_state_close(st);
	pb_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unchanged_items_cost_nothing),
		cmocka_unit_test(test_completed_run_answers_lookups),
		cmocka_unit_test(test_old_state_file_migrates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
