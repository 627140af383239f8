/* A large chat's manifest chunks recorded as spans in the phone's state
 * (agent/backup/manifest.c, pb__manifest_span_chunk): the state keeps the
 * chat's first and last records and, for every manifest chunk its messages
 * fill whole, the chunk's name and its items' id keys, not their records.
 * An unchanged re-backup lists those chunks again: the snapshot restores
 * byte for byte, whole and one message by id on a new phone, and so does
 * the next one made from it; the state holds far fewer bytes than the
 * records; a chat that no longer parses keeps its messages (those after
 * the damage read back from the span's chunk in the repository); a backup
 * canceled halfway resumes and its snapshot restores. In one process,
 * against a host store opened here. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "harness.h"
#include "inproc.h"
#include "agent/backup/internal.h"
#include "agent/backup/stream.h"
#include "agent/phone/handle.h"
#include "agent/util/fsutil.h"

#define BIG 6000 /* messages of the large chat: about 190 manifest chunks */

static pb_test_phone_t phone;
static char dev[4096], big[4400];

/* A Telegram export of n messages into dev/chats/<id>/result.json. */
static void write_chat(const char *id, size_t n, char *path, size_t cap)
{
	static const char *const texts[] = { "Wir sehen uns um acht.", "Привет! Как дела?", "明天见！ 😀",
					     "a quote \\\" and a tab \\t inside" };
	char dir[4300];
	size_t bcap = n * 256 + 256, len = 0;
	char *buf = malloc(bcap);

	assert_non_null(buf);
	snprintf(dir, sizeof(dir), "%s/chats/%s", dev, id);
	assert_int_equal(pb__mkdirs(dir, 0700), 0);
	snprintf(path, cap, "%s/result.json", dir);
	len += (size_t)snprintf(buf + len, bcap - len, "{\n \"name\": \"Chat %s\",\n \"type\": \"private_group\",\n"
				" \"id\": %s,\n \"messages\": [\n", id, id);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, bcap - len,
					"  {\"id\":%zu,\"type\":\"message\",\"date\":\"2021-01-01T00:00:00\","
					"\"date_unixtime\":\"%zu\",\"from\":\"Anna\",\"from_id\":\"user%zu\","
					"\"text\":\"%s %zu\"}%s\n",
					i + 1, 1609459200 + i * 37, i % 7, texts[i % 4], i * 7919 % 100003,
					i + 1 < n ? "," : "");
	len += (size_t)snprintf(buf + len, bcap - len, " ]\n}\n");
	assert_true(len < bcap);
	assert_int_equal(pb_test_write_file(path, (const uint8_t *)buf, len), 0);
	free(buf);
}

static int setup(void **state)
{
	char small[4400];
	int rc = pb_test_dir_setup(state);

	if (rc != 0)
		return rc;
	pb_test_path(dev, "device");
	write_chat("4000000000", BIG, big, sizeof(big));
	write_chat("4000000001", 40, small, sizeof(small));
	pb_test_phone_init(&phone, "phone", "spans");
	return pb_phone_set_device_dir(phone.ph, dev);
}

/* The same with the chats' streams cut as a large chat's (coarser). */
static int setup_large(void **state)
{
	pb__stream_large_min = 0;
	return setup(state);
}

static int teardown(void **state)
{
	pb_test_phone_close(&phone);
	pb__stream_large_min = 4u << 20;
	return pb_test_dir_teardown(state);
}

/* The state's parts of the large chat's records: bytes in all, and the
 * records and span entries they hold. */
static void state_parts(size_t *bytes, size_t *recs, size_t *spans)
{
	char db[4200];
	sqlite3 *h;
	sqlite3_stmt *q;

	*bytes = *recs = *spans = 0;
	snprintf(db, sizeof(db), "%s/backup-state.db", phone.home);
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT data FROM fparts f WHERE path LIKE '%4000000000%' AND part < ?1"
					       " AND gen=(SELECT rgen FROM files WHERE path=f.path) ORDER BY part",
					    -1, &q, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(q, 1, PB__PART_DIGESTS);
	while (sqlite3_step(q) == SQLITE_ROW) {
		const uint8_t *d = sqlite3_column_blob(q, 0);
		size_t len = (size_t)sqlite3_column_bytes(q, 0), off = 0, n;

		*bytes += len;
		while (off < len) {
			assert_int_equal(pb__manifest_elem_next(d + off, len - off, &n), 0);
			if (pb__manifest_is_span(d + off))
				(*spans)++;
			else
				(*recs)++;
			off += n;
		}
	}
	sqlite3_finalize(q);
	sqlite3_close(h);
}

/* The chat backed up: its whole manifest chunks are spans, and the state
 * holds a few records and the keys, far less than a record a message. An
 * unchanged re-backup, and one after it, read nothing and send nothing,
 * and their snapshots restore the device, whole and by id. */
static void test_spans_replayed(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res, first;
	size_t bytes, recs, spans;
	char out[4096];
	bool found;

	(void)state;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &first), 0);
	state_parts(&bytes, &recs, &spans);
	printf("%zu messages: %llu chunks sent, state %zu bytes, %zu records, %zu span entries\n", (size_t)BIG,
	       (unsigned long long)first.chunks_sent, bytes, recs, spans);
	assert_true(spans > 20);
	assert_true(recs < BIG / 10);
	/* About 100 bytes a record: the keys and names are a tenth. */
	assert_true(bytes < (size_t)BIG * 30);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
		assert_int_equal(res.files_read, 0);
		assert_int_equal(res.chunks_sent, 0);
		assert_int_equal(res.items, first.items);
		assert_int_equal(res.bytes, first.bytes);
		pb_test_restore_same(&phone, dev, i == 0 ? "again-1" : "again-2");
	}
	/* One message of a span's chunk by id, on a phone with no state. */
	pb_test_path(out, "one");
	pb_test_new_phone_restore(&phone, dev, "phone-new", "chat/4000000000/msg/3001", out, &res, &found);
	assert_true(found);
	assert_int_equal(res.items, 2);
}

/* Every file's time moved: the chat is read again, its spans made anew,
 * and nothing but manifest chunks around its ends is sent. */
static void test_read_again(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	struct stat st;
	struct timespec ts[2];

	(void)state;
	assert_int_equal(stat(big, &st), 0);
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	ts[1].tv_sec += 10;
	assert_int_equal(utimensat(AT_FDCWD, big, ts, 0), 0);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.files_read, 1);
	assert_int_equal(res.items_changed, 0);
	assert_true(res.chunks_sent <= 4);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.files_read, 0);
	pb_test_restore_same(&phone, dev, "read-again");
}

/* One letter of one message changed: the chat is read again, one message
 * is changed, and what is sent is a stream chunk or two and the manifest
 * chunks around the message, not the chat. */
static void test_one_changed_message(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	uint8_t *buf = NULL;
	size_t len = 0;
	char *p;

	(void)state;
	assert_int_equal(pb__read_file(big, 64 << 20, &buf, &len), 0);
	assert_non_null(p = strstr((char *)buf, "\"id\":4321,"));
	assert_non_null(p = strstr(p, "\"text\":\""));
	p[8] = p[8] == 'Q' ? 'R' : 'Q';
	assert_int_equal(pb_test_write_file(big, buf, len), 0);
	free(buf);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	printf("one changed message of %zu bytes: %llu chunks, %llu bytes sent (stream chunks of a large chat: %s)\n",
	       len, (unsigned long long)res.chunks_sent, (unsigned long long)res.bytes_sent,
	       pb__stream_large_min == 0 ? "yes" : "no");
	assert_int_equal(res.files_read, 1);
	assert_int_equal(res.items_changed, 1);
	assert_true(res.chunks_sent <= 8);
	assert_true(res.bytes_sent < 128u << 10);
	pb_test_restore_same(&phone, dev, pb__stream_large_min == 0 ? "changed-large" : "changed");
}

/* Cut short at two thirds, the chat is skipped with a warning and keeps
 * every message: those before the damage as read, the rest from the
 * state's spans (one chunk straddling the damage read back from the
 * repository, only its items after the last one read kept). */
static void test_damaged_keeps_messages(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t before, res;
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &before), 0);
	assert_int_equal(pb__read_file(big, 64 << 20, &buf, &len), 0);
	assert_int_equal(pb_test_write_file(big, buf, len * 2 / 3), 0);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.skipped, 1);
	assert_true(res.items_kept > BIG / 4);
	assert_int_equal(res.items, before.items);
	/* The snapshot holds the chat as it was. */
	assert_int_equal(pb_test_write_file(big, buf, len), 0);
	free(buf);
	pb_test_restore_same(&phone, dev, "damaged");
}

/* Every record and reference of the host store sound. */
static void store_sound(void)
{
	char store[4096];
	pb_store_t *st;
	pb_store_verify_report_t rep;

	pb_test_phone_close(&phone);
	pb_test_path(store, "store");
	assert_int_equal(pb_store_open(store, &st), 0);
	assert_int_equal(pb_store_verify(st, NULL, NULL, &rep), 0);
	assert_int_equal(rep.missing_refs, 0);
	pb_store_close(st);
	pb_test_phone_open(&phone);
	assert_int_equal(pb_phone_set_device_dir(phone.ph, dev), 0);
}

/* Events: cancel a backup once this many items are done. */
static int cancel_at(void *arg, const pb_event_t *e)
{
	const uint64_t *at = arg;

	return e->type == PB_EVENT_PROGRESS && strcmp(e->phase, "backup") == 0 && e->items_done >= *at;
}

/* A backup of the chat read anew, canceled halfway, then resumed: the
 * resumed one completes and its snapshot restores, and an unchanged one
 * after it reads nothing. */
static void test_canceled_resumes(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	uint64_t at = BIG / 2;
	char other[4400];

	(void)state;
	write_chat("4000000002", BIG, other, sizeof(other));
	o.on_event = cancel_at;
	o.event_arg = &at;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), PB_ECANCELED);
	o.on_event = NULL;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	pb_test_restore_same(&phone, dev, "resumed");
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.files_read, 0);
	assert_int_equal(res.chunks_sent, 0);
	pb_test_restore_same(&phone, dev, "resumed-again");
	store_sound();
}

/* A state that holds a chat's records, as every backup before spans kept
 * them (here: made by a backup writing version 1 manifests, which keep no
 * id keys and so no spans): replayed record by record into the next
 * snapshot, which restores byte for byte; read again, the chat gets
 * spans. */
static void test_records_state_replays(void **state)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	size_t bytes, recs, spans;
	char other[4400];
	struct stat st;
	struct timespec ts[2];

	(void)state;
	write_chat("4000000003", BIG, other, sizeof(other));
	pb__manifest_write_v1 = true;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	pb__manifest_write_v1 = false;
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.files_read, 0);
	pb_test_restore_same(&phone, dev, "from-records");
	/* The big chat read again gets spans (the query looks at it). */
	assert_int_equal(stat(big, &st), 0);
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	ts[1].tv_sec += 20;
	assert_int_equal(utimensat(AT_FDCWD, big, ts, 0), 0);
	assert_int_equal(pb_phone_backup(phone.ph, &o, &res), 0);
	assert_int_equal(res.files_read, 1);
	state_parts(&bytes, &recs, &spans);
	assert_true(spans > 20);
	pb_test_restore_same(&phone, dev, "from-records-again");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spans_replayed),
		cmocka_unit_test(test_read_again),
		cmocka_unit_test(test_one_changed_message),
		cmocka_unit_test(test_damaged_keeps_messages),
		cmocka_unit_test(test_canceled_resumes),
		cmocka_unit_test(test_records_state_replays),
	};

	int failed = cmocka_run_group_tests(tests, setup, teardown);

	return failed + cmocka_run_group_tests(tests, setup_large, teardown);
}
