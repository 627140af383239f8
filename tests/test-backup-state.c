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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unchanged_items_cost_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
