/* Backup and restore in one process, against a host store opened here (the
 * local repository): no socket, no host program. Byte-for-byte round trips
 * of a device directory and of an in-memory provider, and an event
 * callback that cancels a backup and a restore halfway: the store stays
 * consistent, nothing half-restored appears, and the next run resumes
 * without sending again what was committed. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "inproc.h"
#include "agent/backup/repo.h"
#include "agent/kinds/internal.h"
#include "agent/phone/handle.h"
#include "agent/util/fsutil.h"
#include "examples/mem-provider.h"

/* Events: counts, and a cancel once half of the items are done. */
struct watch {
	const char *phase;   /* cancel in this phase ... */
	uint64_t at;         /* ... once this many items are done (0: never) */
	uint64_t progress;
	uint64_t done_events;
	int done_error;
};

static int on_event(void *arg, const pb_event_t *e)
{
	struct watch *w = arg;
	char *json = NULL;

	/* Every event has a JSON form. */
	assert_int_equal(pb_event_json(e, &json), 0);
	assert_non_null(strstr(json, e->name));
	free(json);
	if (e->type == PB_EVENT_DONE) {
		w->done_events++;
		w->done_error = e->error;
		return 0;
	}
	if (e->type != PB_EVENT_PROGRESS)
		return 0;
	w->progress++;
	return w->at > 0 && strcmp(e->phase, w->phase) == 0 && e->items_done >= w->at;
}

/* The events of operations with o go to w, fresh, which cancels in phase
 * once at items are done. */
static void watch(struct watch *w, pb_op_opts_t *o, const char *phase, uint64_t at)
{
	memset(w, 0, sizeof(*w));
	w->phase = phase;
	w->at = at;
	o->on_event = on_event;
	o->event_arg = w;
}

/* The first file (by name) in top/sub. */
static void first_file(const char *top, const char *sub, char *out, size_t cap)
{
	char folder[4200], name[256];

	snprintf(folder, sizeof(folder), "%s/%s", top, sub);
	pb_test_first_entry(folder, name, sizeof(name));
	snprintf(out, cap, "%s/%s", folder, name);
}

/* A device directory of every kind, backed up and restored into a new
 * folder: the same files, byte for byte; a second backup sends nothing. */
static void test_device_dir(void **state)
{
	int (*const gen[])(const char *, uint64_t, pb_gen_size_t) = { pb__gen_credentials, pb__gen_mifare, pb__gen_sim,
								       pb__gen_chat, pb__gen_contacts };
	pb_test_phone_t p;
	struct watch w;
	uint64_t total;
	char dev[4096], out[4096], file[4200], before[65], after[65];
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;

	(void)state;
	pb_test_phone_init(&p, "phone-dir", "dir");
	pb_test_path(dev, "device");
	pb_test_path(out, "restored");
	for (size_t k = 0; k < sizeof(gen) / sizeof(gen[0]); k++)
		assert_int_equal(gen[k](dev, 1, PB_GEN_SMALL), 0);
	assert_int_equal(pb_phone_set_device_dir(p.ph, dev), 0);
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	assert_true(res.items > 100);
	assert_int_equal(res.items, res.items_changed);
	total = res.items;
	assert_true(res.snapshot != 0);

	/* A restore into a new folder canceled halfway leaves no folder. */
	assert_int_equal(pb_phone_set_device_dir(p.ph, out), 0);
	watch(&w, &o, "restore", 50);
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), PB_ECANCELED);
	assert_int_equal(access(out, F_OK), -1);
	o.on_event = NULL;
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), 0);
	assert_int_equal(pb_test_same_tree(dev, out), 0);
	/* Into an existing one with a file changed, canceled near the end
	 * (every file staged, none renamed yet): nothing of it changes. */
	first_file(out, "credentials", file, sizeof(file));
	assert_int_equal(pb_test_write_file(file, "changed", 7), 0);
	pb_test_file_digest(file, before);
	o.on_event = on_event;
	w.at = total - 2;
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), PB_ECANCELED);
	pb_test_file_digest(file, after);
	assert_string_equal(before, after);
	/* The same restore, not canceled, does replace it. */
	o.on_event = NULL;
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), 0);
	pb_test_file_digest(file, after);
	assert_string_not_equal(before, after);
	assert_int_equal(pb_test_same_tree(dev, out), 0);

	assert_int_equal(pb_phone_set_device_dir(p.ph, dev), 0);
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	assert_int_equal(res.items_changed, 0);
	assert_int_equal(res.chunks_sent, 0);
	pb_test_phone_close(&p);
}

/* n items of varied sizes, two of them past the one-chunk limit. */
static void fill(mem_store_t *s, size_t n, uint64_t stamp)
{
	mem_store_clear(s);
	for (size_t i = 0; i < n; i++) {
		size_t len = i < 2 ? PB_CDC_WHOLE_MAX + 300000 * (i + 1) : 1 + i * 7919;
		uint8_t *data = malloc(len);
		char id[64];

		assert_non_null(data);
		randombytes_buf(data, len);
		snprintf(id, sizeof(id), "card/%zu", i);
		assert_int_equal(mem_store_add(s, id, data, len, stamp), 0);
		free(data);
	}
}

static size_t count_snapshots(pb_test_phone_t *p)
{
	pb_snapshot_info_t *s = NULL;
	size_t n = 0;
	pb_op_opts_t o = pb_test_opts();

	assert_int_equal(pb_phone_snapshots(p->ph, &o, &s, &n), 0);
	free(s);
	return n;
}

/* The host store after a canceled run: every record and reference sound. */
static void store_sound(pb_test_phone_t *p)
{
	char store[4096];
	pb_store_t *st;
	pb_store_verify_report_t rep;

	pb_test_phone_close(p);
	pb_test_path(store, "store");
	assert_int_equal(pb_store_open(store, &st), 0);
	assert_int_equal(pb_store_verify(st, NULL, NULL, &rep), 0);
	assert_int_equal(rep.missing_refs, 0);
	pb_store_close(st);
	pb_test_phone_open(p);
}

static void test_memory_cancel_resume(void **state)
{
	mem_store_t items = { PB_KIND_MIFARE, NULL, 0, 0 }, restored = { PB_KIND_MIFARE, NULL, 0, 0 };
	mem_phone_t mp = { &items, &restored };
	pb_provider_t prov = mem_provider(&mp);
	pb_test_phone_t p;
	struct watch w;
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	uint64_t would, sent_canceled;
	uint8_t *data = NULL;
	size_t len = 0;

	(void)state;
	pb_test_phone_init(&p, "phone-mem", "mem");
	assert_int_equal(pb_phone_set_provider(p.ph, &prov), 0);
	fill(&items, 40, 1);
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	assert_int_equal(res.items, 40);
	/* Items listed without their bytes were read through the provider. */
	assert_true(items.reads >= 20);
	assert_int_equal(count_snapshots(&p), 1);

	/* Everything changes; a dry run tells what the next backup sends. */
	fill(&items, 40, 2);
	o.dry_run = true;
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	would = res.chunks_sent;
	assert_true(would >= 40);
	o.dry_run = false;

	/* Canceled halfway by the event callback. */
	watch(&w, &o, "backup", 20);
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), PB_ECANCELED);
	assert_int_equal(w.done_events, 1);
	assert_int_equal(w.done_error, PB_ECANCELED);
	sent_canceled = res.chunks_sent;
	assert_true(sent_canceled > 0 && sent_canceled < would);
	assert_int_equal(count_snapshots(&p), 1);
	store_sound(&p);
	assert_int_equal(pb_phone_set_provider(p.ph, &prov), 0);

	/* Resumed: what the canceled run committed is not sent again. */
	memset(&w, 0, sizeof(w));
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	assert_int_equal(res.items, 40);
	assert_true(res.chunks_sent < would);
	assert_true(res.chunks_sent + sent_canceled <= would + 1);
	assert_true(w.progress > 0);
	assert_int_equal(count_snapshots(&p), 2);

	/* A restore canceled halfway leaves the target untouched ... */
	watch(&w, &o, "restore", 20);
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), PB_ECANCELED);
	assert_int_equal(restored.n, 0);
	/* ... and the next one completes from where it stopped. */
	memset(&w, 0, sizeof(w));
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), 0);
	assert_true(res.chunks_cached > 0);
	assert_true(mem_store_same(&items, &restored));

	/* One item by id, and a verify of the whole snapshot. */
	assert_int_equal(pb_phone_fetch(p.ph, &o, "card/1", &data, &len), 0);
	assert_int_equal(len, items.items[1].len);
	assert_memory_equal(data, items.items[1].data, len);
	free(data);
	assert_int_equal(pb_phone_verify(p.ph, &o, &res), 0);
	assert_int_equal(res.bad_items, 0);
	assert_int_equal(res.items, 40);

	pb_test_phone_close(&p);
	mem_store_clear(&items);
	mem_store_clear(&restored);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device_dir),
		cmocka_unit_test(test_memory_cancel_resume),
	};

	return cmocka_run_group_tests(tests, pb_test_dir_setup, pb_test_dir_teardown);
}
