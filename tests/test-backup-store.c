/* Phone and host together, as the transfer layer will drive them: items are
 * chunked, sealed and offered; the host is asked which names it lacks, takes
 * those, commits them and records the snapshot; a second backup sends only
 * what changed; a new phone unwraps the master key from the host's blob and
 * restores every item byte for byte. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "testutil.h"
#include "peerback.h"
#include "peerback/store.h"

typedef uint8_t name_t[PB_STORE_NAME_LEN];

#define NITEMS 6
#define BIG_ITEM 5 /* an attachment of several MiB, chunked by content */

typedef struct phone_s {
	const pb_backup_keys_t *keys;
	pb_cdc_t cdc;
	pb_store_ns_t *ns;
	pb_backup_state_t *state;
	uint8_t *ct;
	name_t *names; /* the current item's chunks */
	size_t nnames, cap;
	size_t sent;   /* chunks the host asked for */
	size_t offered;
} phone_t;

static uint8_t *item_bytes(int i, int version, size_t *len)
{
	size_t n = i == BIG_ITEM ? (6u << 20) + 12345 : 200 + (size_t)i * 1000;
	uint8_t *b = malloc(n), key[randombytes_SEEDBYTES] = {0};

	assert_non_null(b);
	key[0] = (uint8_t)i;
	randombytes_buf_deterministic(b, n, key);
	if (version > 0)
		b[n / 2] ^= (uint8_t)version; /* one byte differs in the new version */
	*len = n;
	return b;
}

/* Offers one chunk: sealed, asked about, sent only if missing. */
static int offer_chunk(void *arg, const uint8_t *data, size_t len)
{
	phone_t *ph = arg;
	size_t ct_len;
	bool missing;
	name_t name;

	if (pb_chunk_seal(ph->keys, data, len, name, ph->ct, &ct_len) != 0)
		return -1;
	ph->offered++;
	if (!pb_backup_state_is_committed(ph->state, name)) {
		if (pb_store_missing(ph->ns, (const name_t *)&name, 1, &missing) != 0)
			return -1;
		if (missing) {
			if (pb_store_put(ph->ns, name, ph->ct, ct_len) != 0)
				return -1;
			ph->sent++;
		}
	}
	if (ph->nnames == ph->cap) {
		ph->cap = ph->cap ? ph->cap * 2 : 16;
		ph->names = realloc(ph->names, ph->cap * sizeof(name_t));
		assert_non_null(ph->names);
	}
	memcpy(ph->names[ph->nnames++], name, PB_STORE_NAME_LEN);
	return 0;
}

static int put_manifest_chunk(void *arg, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	phone_t *ph = arg;

	ph->sent++;
	return pb_store_put(ph->ns, name, ct, len);
}

/* One backup run; returns the number of chunks sent to the host. */
static size_t backup(phone_t *ph, const char *dir, uint64_t snap_id, int changed_item)
{
	pb_manifest_writer_t *w;
	uint8_t *root = NULL, (*refs)[PB_STORE_NAME_LEN] = NULL;
	size_t root_len, nrefs, i;
	char path[4096], id[32];

	ph->sent = ph->offered = 0;
	assert_int_equal(pb_manifest_writer_new(ph->keys, put_manifest_chunk, ph, &w), 0);
	for (i = 0; i < NITEMS; i++) {
		pb_manifest_item_t it = {.kind = i == BIG_ITEM ? 4 : 1, .id = id, .path = path,
					 .seq = i, .mtime = 1700000000};
		uint8_t *data;
		size_t len;
		int fd;

		assert_true(snprintf(id, sizeof(id), "item/%zu", i) < (int)sizeof(id));
		assert_true(snprintf(path, sizeof(path), "%s/item-%zu", dir, i) < (int)sizeof(path));
		data = item_bytes((int)i, (int)i == changed_item ? 1 : 0, &len);
		crypto_generichash(it.hash, sizeof(it.hash), data, len, NULL, 0);
		it.size = len;
		ph->nnames = 0;
		if (pb_backup_state_unchanged(ph->state, id, len, it.mtime, it.hash)) {
			uint8_t (*names)[PB_STORE_NAME_LEN] = NULL;
			size_t n;

			/* Unchanged: no reading, no sealing, only its names. */
			assert_int_equal(pb_backup_state_item_chunks(ph->state, id, &names, &n), 0);
			it.chunks = (const name_t *)names;
			it.nchunks = n;
			assert_int_equal(pb_manifest_writer_add(w, &it), 0);
			free(names);
			free(data);
			continue;
		}
		assert_int_equal(pb_test_write_file(path, data, len), 0);
		free(data);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pb_cdc_file(&ph->cdc, fd, offer_chunk, ph), 0);
		close(fd);
		/* Acknowledged only once flushed; then the phone remembers. */
		assert_true(pb_store_flush(ph->ns) >= 0);
		assert_int_equal(pb_backup_state_mark_committed(ph->state, (const name_t *)ph->names, ph->nnames), 0);
		it.chunks = (const name_t *)ph->names;
		it.nchunks = ph->nnames;
		assert_int_equal(pb_manifest_writer_add(w, &it), 0);
		assert_int_equal(pb_backup_state_record(ph->state, &it), 0);
	}
	assert_int_equal(pb_manifest_writer_finish(w, 1700000000 + (int64_t)snap_id, &root, &root_len, &refs, &nrefs), 0);
	pb_manifest_writer_free(w);
	assert_true(pb_store_flush(ph->ns) >= 0);
	/* The receipt. */
	assert_int_equal(pb_store_snapshot_put(ph->ns, snap_id, (const name_t *)refs, nrefs, root, root_len), 0);
	free(root);
	free(refs);
	return ph->sent;
}

typedef struct restore_s {
	const pb_backup_keys_t *keys;
	pb_store_ns_t *ns;
	int changed_item;
	size_t restored;
} restore_t;

static int restore_item(void *arg, const pb_manifest_item_t *it)
{
	restore_t *r = arg;
	uint8_t *want, *got, *plain = malloc(PB_CHUNK_PLAIN_MAX), hash[32];
	size_t want_len, off = 0, i;
	int idx = atoi(it->id + 5);

	want = item_bytes(idx, idx == r->changed_item ? 1 : 0, &want_len);
	assert_int_equal(it->size, want_len);
	got = malloc(want_len);
	for (i = 0; i < it->nchunks; i++) {
		uint8_t *ct = NULL;
		size_t ct_len = 0, plen = 0;

		assert_int_equal(pb_store_get(r->ns, it->chunks[i], &ct, &ct_len), 0);
		assert_int_equal(pb_chunk_open(r->keys, it->chunks[i], ct, ct_len, plain, PB_CHUNK_PLAIN_MAX, &plen), 0);
		assert_true(off + plen <= want_len);
		memcpy(got + off, plain, plen);
		off += plen;
		free(ct);
	}
	assert_int_equal(off, want_len);
	assert_memory_equal(got, want, want_len);
	crypto_generichash(hash, sizeof(hash), got, off, NULL, 0);
	assert_memory_equal(hash, it->hash, 32);
	r->restored++;
	free(want);
	free(got);
	free(plain);
	return 0;
}

static void test_backup_then_restore_on_a_new_phone(void **state)
{
	char *dir = pb_test_tmpdir("backup-e2e");
	char store_dir[4096], state_path[4096];
	pb_pwhash_params_t params = pb_pwhash_params_interactive();
	uint8_t mk[PB_MASTERKEY_LEN], wrapped[PB_MASTERKEY_WRAPPED_LEN];
	pb_backup_keys_t keys, keys2;
	pb_store_t *store;
	phone_t ph = {0};
	size_t first, second, third, nm, i;
	uint8_t *blob = NULL, (*mchunks)[PB_STORE_NAME_LEN] = NULL;
	size_t blob_len;
	uint64_t nitems;
	int64_t t;
	restore_t r = {0};

	(void)state;
	assert_true(snprintf(store_dir, sizeof(store_dir), "%s/host", dir) < (int)sizeof(store_dir));
	assert_true(snprintf(state_path, sizeof(state_path), "%s/state.db", dir) < (int)sizeof(state_path));
	pb_masterkey_generate(mk);
	pb_backup_keys_derive(mk, &keys);
	assert_int_equal(pb_masterkey_wrap(mk, "recovery words", &params, wrapped), 0);
	sodium_memzero(mk, sizeof(mk));

	assert_int_equal(pb_store_open(store_dir, &store), 0);
	assert_int_equal(pb_store_ns_open(store, "acct", "phone-1", &ph.ns), 0);
	assert_int_equal(pb_store_blob_put(ph.ns, "masterkey", wrapped, sizeof(wrapped)), 0);
	assert_int_equal(pb_backup_state_open(state_path, &ph.state), 0);
	ph.keys = &keys;
	pb_cdc_init(&ph.cdc, &keys);
	ph.ct = malloc(PB_CHUNK_CT_LEN_MAX(PB_CHUNK_PLAIN_MAX));

	first = backup(&ph, dir, 1, -1);
	second = backup(&ph, dir, 2, -1);
	third = backup(&ph, dir, 3, BIG_ITEM);
	fprintf(stderr, "chunks sent: first %zu, unchanged %zu, one byte of the attachment changed %zu\n",
		first, second, third);
	/* Five small items, the attachment's several chunks, one manifest chunk. */
	assert_true(first >= 5 + 4 + 1);
	/* Nothing changed: no data chunk; only the manifest chunk is offered,
	 * and the host already has it (same items, same name). */
	assert_true(second <= 1);
	/* One changed byte in the attachment: one data chunk and the manifest. */
	assert_true(third >= 1 && third <= 3);
	pb_backup_state_close(ph.state);
	pb_store_ns_close(ph.ns);
	pb_store_close(store);
	pb_cdc_wipe(&ph.cdc);
	free(ph.ct);
	free(ph.names);

	/* A new phone: only the passphrase and the host. */
	assert_int_equal(pb_store_open(store_dir, &store), 0);
	assert_int_equal(pb_store_ns_open(store, "acct", "phone-1", &r.ns), 0);
	assert_int_equal(pb_store_blob_get(r.ns, "masterkey", &blob, &blob_len), 0);
	assert_int_equal(pb_masterkey_unwrap(blob, blob_len, "wrong words", mk), PB_ESTORE_PASSPHRASE);
	assert_int_equal(pb_masterkey_unwrap(blob, blob_len, "recovery words", mk), 0);
	free(blob);
	pb_backup_keys_derive(mk, &keys2);
	sodium_memzero(mk, sizeof(mk));
	assert_memory_equal(&keys, &keys2, sizeof(keys));
	assert_int_equal(pb_store_snapshot_get(r.ns, 3, &blob, &blob_len), 0);
	assert_int_equal(pb_manifest_root_open(&keys2, blob, blob_len, &t, &nitems, &mchunks, &nm), 0);
	free(blob);
	assert_int_equal(nitems, NITEMS);
	r.keys = &keys2;
	r.changed_item = BIG_ITEM;
	for (i = 0; i < nm; i++) {
		uint8_t *ct = NULL;
		size_t ct_len = 0;

		assert_int_equal(pb_store_get(r.ns, mchunks[i], &ct, &ct_len), 0);
		assert_int_equal(pb_manifest_chunk_open(&keys2, mchunks[i], ct, ct_len, restore_item, &r), 0);
		free(ct);
	}
	free(mchunks);
	assert_int_equal(r.restored, NITEMS);
	/* Pruning the older snapshots frees only the attachment's old chunk. */
	{
		pb_store_gc_report_t rep;
		pb_store_verify_report_t vrep;
		uint64_t keep = 3;

		assert_int_equal(pb_store_prune(r.ns, &keep, 1), 2);
		assert_int_equal(pb_store_gc(store, 0, &rep), 0);
		assert_true(rep.chunks_removed >= 1 && rep.chunks_removed <= 3);

		assert_int_equal(pb_store_verify(store, NULL, NULL, &vrep), 0);
	}
	pb_store_ns_close(r.ns);
	pb_store_close(store);
	pb_backup_keys_wipe(&keys);
	pb_backup_keys_wipe(&keys2);
	pb_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backup_then_restore_on_a_new_phone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
