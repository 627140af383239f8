/* The content hash of a file of several chunks is the hash of its chunk
 * names (pb__item_names_hash): a backup records it without a second pass
 * over the bytes; restore and verify accept it, and still accept the hash
 * of the bytes that backups made before recorded; a restore's plan knows
 * the file on disk under either. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "inproc.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/internal.h"
#include "agent/kinds/internal.h"
#include "agent/util/fsutil.h"

#define BIG (3u << 20) /* several chunks */

struct found {
	uint8_t hash[32];
	size_t nchunks;
	uint8_t (*names)[PB_STORE_NAME_LEN];
	bool seen;
};

static int on_item(void *arg, const pb_manifest_item_t *m)
{
	struct found *f = arg;

	f->seen = true;
	memcpy(f->hash, m->hash, 32);
	f->nchunks = m->nchunks;
	f->names = malloc(m->nchunks * PB_STORE_NAME_LEN);
	assert_non_null(f->names);
	memcpy(f->names, m->chunks, m->nchunks * PB_STORE_NAME_LEN);
	return 0;
}

/* What the phone's state recorded for the device file rel. */
static void recorded(pb_test_phone_t *p, const char *rel, struct found *f)
{
	char path[4200];
	pb_backup_state_t *st;

	memset(f, 0, sizeof(*f));
	snprintf(path, sizeof(path), "%s/backup-state.db", p->home);
	assert_int_equal(pb_backup_state_open_ro(path, &st), 0);
	assert_int_equal(pb_backup_state_path_items(st, rel, on_item, f), 0);
	pb_backup_state_close(st);
	assert_true(f->seen);
}

static void keys_of(pb_test_phone_t *p, pb_backup_keys_t *keys)
{
	uint8_t mk[PB_MASTERKEY_LEN];

	assert_int_equal(pb__master_local(p->home, mk), 0);
	pb_backup_keys_derive(mk, keys);
	sodium_memzero(mk, sizeof(mk));
}

static void file_hash(const pb_backup_keys_t *keys, const char *path, uint8_t bytes[32], uint8_t names[32])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pb__file_hashes(keys, fd, bytes, names), 0);
	close(fd);
}

/* A chat of the device directory dev with a large attachment, big.bin:
 * its path relative to dev into rel. */
static void device(const char *dev, uint32_t seed, char *rel, size_t cap)
{
	char chat[256], file[4200], path[4400];
	uint8_t *buf, *json;
	size_t len;

	assert_int_equal(pb__gen_chat(dev, 1, PB_GEN_SMALL), 0);
	pb_test_first_chat(dev, chat, sizeof(chat), file, sizeof(file), &json, &len);
	free(json);
	snprintf(rel, cap, "chats/%s/files/big.bin", chat);
	snprintf(path, sizeof(path), "%s/chats/%s/files", dev, chat);
	assert_int_equal(pb__mkdirs(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s", dev, rel);
	buf = malloc(BIG);
	assert_non_null(buf);
	randombytes_buf_deterministic(buf, BIG, (const uint8_t[32]){ (uint8_t)seed });
	assert_int_equal(pb_test_write_file(path, buf, BIG), 0);
	free(buf);
}

static void check_restores(pb_test_phone_t *p, const char *dev, const char *name)
{
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;

	assert_int_equal(pb_phone_verify(p->ph, &o, &res), 0);
	assert_int_equal(res.bad_items, 0);
	pb_test_restore_same(p, dev, name);
}

static void test_names_hash(void **state)
{
	pb_test_phone_t p;
	pb_backup_keys_t keys;
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	struct found f;
	char dev[4096], rel[512], path[4700];
	uint8_t bytes[32], names[32], h[32];

	(void)state;
	pb_test_phone_init(&p, "phone-names", "names");
	pb_test_path(dev, "device-names");
	device(dev, 1, rel, sizeof(rel));
	assert_int_equal(pb_phone_set_device_dir(p.ph, dev), 0);
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	keys_of(&p, &keys);

	/* Recorded: the hash of its names, not of its bytes. */
	recorded(&p, rel, &f);
	assert_true(f.nchunks >= 2);
	snprintf(path, sizeof(path), "%s/%s", dev, rel);
	file_hash(&keys, path, bytes, names);
	assert_memory_equal(f.hash, names, 32);
	assert_memory_not_equal(f.hash, bytes, 32);
	pb__item_names_hash(&keys, (const uint8_t *)f.names, f.nchunks, h);
	assert_memory_equal(h, f.hash, 32);
	assert_true(pb__item_by_names(&keys, (const uint8_t *)f.names, f.nchunks, f.hash));
	/* Any other list of names is another hash: one changed, two swapped,
	 * one left out. */
	f.names[1][0] ^= 1;
	assert_false(pb__item_by_names(&keys, (const uint8_t *)f.names, f.nchunks, f.hash));
	f.names[1][0] ^= 1;
	{
		uint8_t t[PB_STORE_NAME_LEN];

		memcpy(t, f.names[0], sizeof(t));
		memcpy(f.names[0], f.names[1], sizeof(t));
		memcpy(f.names[1], t, sizeof(t));
		assert_false(pb__item_by_names(&keys, (const uint8_t *)f.names, f.nchunks, f.hash));
		memcpy(f.names[1], f.names[0], sizeof(t));
		memcpy(f.names[0], t, sizeof(t));
	}
	assert_false(pb__item_by_names(&keys, (const uint8_t *)f.names, f.nchunks - 1, f.hash));
	/* Nor is the hash of the bytes taken for a hash of names. */
	assert_false(pb__item_by_names(&keys, (const uint8_t *)f.names, f.nchunks, bytes));
	free(f.names);
	check_restores(&p, dev, "restored-names");

	/* The restore's plan into the device itself: nothing to change. */
	o.dry_run = true;
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), 0);
	assert_int_equal(res.changed, 0);
	assert_int_equal(res.added, 0);
	o.dry_run = false;
	pb_test_phone_close(&p);
	pb_backup_keys_wipe(&keys);
}

/* A snapshot made before (the hash of the bytes) still restores, verifies
 * and plans as unchanged; the next backup that sees the file changed
 * records the hash of its names. */
static void test_bytes_hash_still_reads(void **state)
{
	pb_test_phone_t p;
	pb_backup_keys_t keys;
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	struct found f;
	char dev[4096], rel[512], path[4700];
	uint8_t bytes[32], names[32];

	(void)state;
	pb_test_phone_init(&p, "phone-bytes", "bytes");
	pb_test_path(dev, "device-bytes");
	device(dev, 2, rel, sizeof(rel));
	assert_int_equal(pb_phone_set_device_dir(p.ph, dev), 0);
	pb__item_hash_bytes = true;
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	pb__item_hash_bytes = false;
	keys_of(&p, &keys);
	recorded(&p, rel, &f);
	assert_true(f.nchunks >= 2);
	snprintf(path, sizeof(path), "%s/%s", dev, rel);
	file_hash(&keys, path, bytes, names);
	assert_memory_equal(f.hash, bytes, 32);
	assert_false(pb__item_by_names(&keys, (const uint8_t *)f.names, f.nchunks, f.hash));
	free(f.names);
	check_restores(&p, dev, "restored-bytes");
	o.dry_run = true;
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), 0);
	assert_int_equal(res.changed, 0);
	o.dry_run = false;

	/* Touched, same bytes: backed up again under the hash of its names,
	 * its chunks known. */
	{
		struct timespec ts[2] = { { 0, UTIME_NOW }, { 1, 0 } };

		assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	}
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	assert_int_equal(res.items_changed, 1);
	recorded(&p, rel, &f);
	assert_memory_equal(f.hash, names, 32);
	free(f.names);
	check_restores(&p, dev, "restored-bytes-2");
	pb_test_phone_close(&p);
	pb_backup_keys_wipe(&keys);
}

/* Items of one chunk of 64 KiB or more, whose chunk's name is made of
 * eight segments (docs/STORAGE.md, "Chunk names"): a file's hash is its
 * chunk's name, which the restore's plan knows on disk (pb__file_hashes)
 * and restore and verify prove by the name check; an item held in memory
 * (a contact with a long note) keeps the hash of its bytes, which its
 * unchanged check makes. Restored, verified, planned as unchanged, and
 * an unchanged re-backup changes nothing. */
static void test_one_chunk_items(void **state)
{
	enum { MID = 200 * 1024, NOTE = 100 * 1024 };
	static const char head[] = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Long Note\r\nN:Note;Long;;;\r\nNOTE:";
	static const char tail[] = "\r\nEND:VCARD\r\n";
	pb_test_phone_t p;
	pb_backup_keys_t keys;
	pb_op_opts_t o = pb_test_opts();
	pb_op_result_t res;
	struct found f;
	char dev[4096], chat[256], file[4200], rel[512], path[4700];
	uint8_t bytes[32], names[32], h[32], *buf, *json, *card;
	size_t len, n;

	(void)state;
	pb_test_phone_init(&p, "phone-one", "one");
	pb_test_path(dev, "device-one");
	assert_int_equal(pb__gen_chat(dev, 3, PB_GEN_SMALL), 0);
	pb_test_first_chat(dev, chat, sizeof(chat), file, sizeof(file), &json, &len);
	free(json);
	assert_true(snprintf(rel, sizeof(rel), "chats/%s/files/mid.bin", chat) < (int)sizeof(rel));
	assert_true(snprintf(path, sizeof(path), "%s/chats/%s/files", dev, chat) < (int)sizeof(path));
	assert_int_equal(pb__mkdirs(path, 0700), 0);
	assert_true(snprintf(path, sizeof(path), "%s/%s", dev, rel) < (int)sizeof(path));
	buf = malloc(MID);
	assert_non_null(buf);
	randombytes_buf_deterministic(buf, MID, (const uint8_t[32]){ 3 });
	assert_int_equal(pb_test_write_file(path, buf, MID), 0);
	/* A contact whose note alone is over 64 KiB. */
	assert_true(snprintf(path, sizeof(path), "%s/contacts", dev) < (int)sizeof(path));
	assert_int_equal(pb__mkdirs(path, 0700), 0);
	card = malloc(sizeof(head) - 1 + NOTE + sizeof(tail) - 1);
	assert_non_null(card);
	memcpy(card, head, sizeof(head) - 1);
	n = sizeof(head) - 1;
	memset(card + n, 'x', NOTE);
	n += NOTE;
	memcpy(card + n, tail, sizeof(tail) - 1);
	n += sizeof(tail) - 1;
	assert_true(snprintf(path, sizeof(path), "%s/contacts/contacts.vcf", dev) < (int)sizeof(path));
	assert_int_equal(pb_test_write_file(path, card, n), 0);
	free(card);

	assert_int_equal(pb_phone_set_device_dir(p.ph, dev), 0);
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	keys_of(&p, &keys);

	/* The file: one chunk, its hash that chunk's name, not the hash of
	 * its bytes; the plan's hash of it on disk the same. */
	recorded(&p, rel, &f);
	assert_int_equal(f.nchunks, 1);
	pb__chunk_name(keys.name, buf, MID, h);
	assert_memory_equal(f.names[0], h, 32);
	assert_memory_equal(f.hash, h, 32);
	assert_true(snprintf(path, sizeof(path), "%s/%s", dev, rel) < (int)sizeof(path));
	file_hash(&keys, path, bytes, names);
	assert_memory_equal(names, f.hash, 32);
	assert_memory_not_equal(bytes, f.hash, 32);
	free(f.names);
	free(buf);
	/* The contact: one chunk, its hash the hash of its bytes. */
	recorded(&p, "contacts/contacts.vcf", &f);
	assert_int_equal(f.nchunks, 1);
	assert_memory_not_equal(f.names[0], f.hash, 32);
	free(f.names);

	assert_int_equal(pb_phone_verify(p.ph, &o, &res), 0);
	assert_int_equal(res.bad_items, 0);
	o.dry_run = true;
	assert_int_equal(pb_phone_restore(p.ph, &o, &res), 0);
	assert_int_equal(res.changed, 0);
	assert_int_equal(res.added, 0);
	o.dry_run = false;
	assert_int_equal(pb_phone_backup(p.ph, &o, &res), 0);
	assert_int_equal(res.items_changed, 0);
	assert_int_equal(res.bytes_sent, 0);
	pb_test_phone_close(&p);
	pb_backup_keys_wipe(&keys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_hash),
		cmocka_unit_test(test_bytes_hash_still_reads),
		cmocka_unit_test(test_one_chunk_items),
	};

	return cmocka_run_group_tests(tests, pb_test_dir_setup, pb_test_dir_teardown);
}
