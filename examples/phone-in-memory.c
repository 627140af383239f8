/* A phone whose items live in memory, not in a device directory: what a
 * phone app does with its own NFC stack or chat database.
 *
 *   phone-in-memory HOME HOST [PASSPHRASE]
 *
 * HOME is a phone state directory already logged in and paired with the
 * host named HOST (`peerback login`, `peerback pair`). The example backs
 * its items up, changes them all, cancels the next backup halfway from its
 * event callback, runs it again (it resumes: what the canceled run
 * committed is not sent again), and restores the latest snapshot into a
 * second store in memory, which must then equal the items byte for byte.
 * Exits 0 only if all of that holds.
 *
 * Build: cc phone-in-memory.c $(pkg-config --cflags --libs peerback) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <peerback.h>

#include "mem-provider.h"

#define ITEMS 48

/* Deterministic bytes for item i of generation gen (no RNG needed). */
static void make_items(mem_store_t *s, unsigned gen)
{
	mem_store_clear(s);
	for (unsigned i = 0; i < ITEMS; i++) {
		/* Two items past the one-chunk size, the rest small. */
		size_t len = i < 2 ? (size_t)(1500000 + 250000 * i) : (size_t)(100 + 5000 * i);
		uint8_t *data = malloc(len);
		uint32_t x = 2463534242u ^ (gen * 7919u) ^ (i * 104729u);
		char id[64];

		if (data == NULL)
			exit(2);
		for (size_t k = 0; k < len; k++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			data[k] = (uint8_t)x;
		}
		snprintf(id, sizeof(id), "card/%u", i);
		if (mem_store_add(s, id, data, len, gen) != 0)
			exit(2);
		free(data);
	}
}

/* The event callback: prints progress, and cancels when asked to once
 * half of the items are done. */
struct watch {
	int cancel_at;
	int canceled;
};

static int on_event(void *arg, const pb_event_t *e)
{
	struct watch *w = arg;
	char *line = NULL;

	if (pb_event_json(e, &line) == 0) {
		printf("%s\n", line);
		free(line);
	}
	if (e->type == PB_EVENT_PROGRESS && w->cancel_at > 0 && e->items_done >= (uint64_t)w->cancel_at) {
		w->canceled = 1;
		return 1; /* stop: the library returns PB_ECANCELED */
	}
	return 0;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "phone-in-memory: %s: %s\n", what, pb_strerror(rc));
	return 1;
}

int main(int argc, char **argv)
{
	mem_store_t items = { PB_KIND_MIFARE, NULL, 0, 0 }, restored = { PB_KIND_MIFARE, NULL, 0, 0 };
	mem_phone_t mp = { &items, &restored };
	pb_provider_t prov = mem_provider(&mp);
	pb_phone_t *phone = NULL;
	pb_op_opts_t o;
	pb_op_result_t res;
	struct watch w = { 0, 0 };
	uint64_t sent_canceled, first_snapshot;
	int rc, ok = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: phone-in-memory HOME HOST [PASSPHRASE]\n");
		return 2;
	}
	if ((rc = pb_phone_open(argv[1], &phone)) != 0)
		return fail("open", rc);
	if ((rc = pb_phone_set_provider(phone, &prov)) != 0) {
		fail("provider", rc);
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.host = argv[2];
	o.passphrase = argc > 3 ? argv[3] : "correct horse battery staple 7";
	o.on_event = on_event;
	o.event_arg = &w;

	/* 1. A first backup. */
	make_items(&items, 1);
	if ((rc = pb_phone_backup(phone, &o, &res)) != 0) {
		fail("backup", rc);
		goto out;
	}
	first_snapshot = res.snapshot;

	/* 2. Every item changes; the next backup is canceled halfway. */
	make_items(&items, 2);
	w.cancel_at = ITEMS / 2;
	rc = pb_phone_backup(phone, &o, &res);
	if (rc != PB_ECANCELED || !w.canceled) {
		fail("canceled backup", rc == 0 ? PB_ESTATE : rc);
		goto out;
	}
	sent_canceled = res.chunks_sent;
	printf("canceled after %llu chunks\n", (unsigned long long)sent_canceled);

	/* 3. Run again: it resumes, and only the rest is sent. */
	w.cancel_at = 0;
	if ((rc = pb_phone_backup(phone, &o, &res)) != 0) {
		fail("resumed backup", rc);
		goto out;
	}
	printf("resumed: %llu chunks sent, snapshot %llu\n", (unsigned long long)res.chunks_sent,
	       (unsigned long long)res.snapshot);
	if (sent_canceled == 0 || res.items != ITEMS || res.snapshot == first_snapshot) {
		fprintf(stderr, "phone-in-memory: the resumed backup is not what was expected\n");
		goto out;
	}
	/* The canceled run's chunks were committed: fewer are sent now than
	 * the whole change (two chunks or more per large item, one per small). */
	if (res.chunks_sent >= ITEMS + 2) {
		fprintf(stderr, "phone-in-memory: the resumed backup sent everything again\n");
		goto out;
	}

	/* 4. Restore into memory and compare. */
	if ((rc = pb_phone_restore(phone, &o, &res)) != 0) {
		fail("restore", rc);
		goto out;
	}
	if (!mem_store_same(&items, &restored)) {
		fprintf(stderr, "phone-in-memory: the restored items differ\n");
		goto out;
	}
	printf("restored %zu items, byte for byte\n", restored.n);
	ok = 1;
out:
	pb_phone_close(phone);
	mem_store_clear(&items);
	mem_store_clear(&restored);
	return ok ? 0 : 1;
}
