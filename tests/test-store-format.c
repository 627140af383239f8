/* The host store's pack record versions: a store whose records were written
 * in the old format (version 1, BLAKE2b-256 of the ciphertext) opens, reads,
 * verifies clean, takes new records (version 2, XXH3-128) into the same
 * pack, and GC copies both; verify finds a flipped byte in a record of
 * either version, and reads refuse the damaged chunk. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

/* The reference: xxHash's own one-shot XXH3-128, as this build compiles
 * it by default (no dispatch). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "testutil.h"
#include "agent/store/internal.h"
#include "peerback.h"
#include "peerback/store.h"

typedef uint8_t name_t[PB_STORE_NAME_LEN];

#define NOLD 5
#define NNEW 3
#define NALL (NOLD + NNEW)

static size_t chunk_len(uint32_t seed)
{
	return 1000 + 997 * (size_t)seed;
}

static void make_chunk(uint32_t seed, name_t name, uint8_t *ct)
{
	uint8_t key[randombytes_SEEDBYTES] = {0};

	memcpy(key, &seed, sizeof(seed));
	randombytes_buf_deterministic(ct, chunk_len(seed), key);
	crypto_generichash(name, PB_STORE_NAME_LEN, ct, chunk_len(seed), key, sizeof(key));
}

static void put_chunk(pb_store_ns_t *ns, uint32_t seed, name_t name)
{
	uint8_t *ct = malloc(chunk_len(seed));

	assert_non_null(ct);
	make_chunk(seed, name, ct);
	assert_int_equal(pb_store_put(ns, name, ct, chunk_len(seed)), 0);
	free(ct);
}

/* Chunk seed reads back as written (rc 0), or fails with want_rc. */
static void check_chunk(pb_store_ns_t *ns, uint32_t seed, int want_rc)
{
	size_t len = chunk_len(seed), n = 0;
	uint8_t *want = malloc(len), *got = NULL;
	name_t name;

	assert_non_null(want);
	make_chunk(seed, name, want);
	assert_int_equal(pb_store_get(ns, name, &got, &n), want_rc);
	if (want_rc == 0) {
		assert_int_equal(n, len);
		assert_memory_equal(got, want, len);
	}
	free(got);
	free(want);
}

/* Offset of record i in a pack that holds records 0, 1, ... in order. */
static off_t rec_off(uint32_t i)
{
	off_t off = PB__PACK_HDR_LEN;

	for (uint32_t k = 0; k < i; k++)
		off += (off_t)PB__REC_LEN(chunk_len(k));
	return off;
}

static void flip(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x21;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

static void magic_at(const char *path, off_t at, const char *magic)
{
	int fd = open(path, O_RDONLY);
	char m[4];

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, m, 4, at), 4);
	assert_memory_equal(m, magic, 4);
	close(fd);
}

/* Damage at byte at of the pack: verify reports one bad record and one bad
 * chunk, the chunk (seed) is refused, the others read; then the byte is put
 * back and verify is clean again. */
static void damage(pb_store_t *s, pb_store_ns_t *ns, const char *path, off_t at, uint32_t seed)
{
	pb_store_verify_report_t rep;

	flip(path, at);
	assert_int_equal(pb_store_verify(s, NULL, NULL, &rep), PB_ESTORE_CORRUPT);
	assert_int_equal(rep.bad_records, 1);
	assert_int_equal(rep.bad_chunks, 1);
	assert_int_equal(rep.records, NALL);
	check_chunk(ns, seed, PB_ESTORE_HASH);
	for (uint32_t k = 0; k < NALL; k++)
		if (k != seed)
			check_chunk(ns, k, 0);
	flip(path, at);
	assert_int_equal(pb_store_verify(s, NULL, NULL, &rep), 0);
}

static void test_old_records(void **state)
{
	char *dir = pb_test_tmpdir("store-format");
	char path[4096];
	pb_store_verify_report_t rep;
	pb_store_t *s;
	pb_store_ns_t *ns;
	name_t names[NALL];

	(void)state;
	/* A store as older versions wrote it. */
	pb__pack_rec_version = 1;
	assert_int_equal(pb_store_open(dir, &s), 0);
	assert_int_equal(pb_store_ns_open(s, "acct", "phone", &ns), 0);
	for (uint32_t i = 0; i < NOLD; i++)
		put_chunk(ns, i, names[i]);
	assert_int_equal(pb_store_flush(ns), NOLD);
	assert_int_equal(pb_store_snapshot_put(ns, 1, (const name_t *)names, NOLD, (const uint8_t *)"r1", 2), 0);
	pb_store_ns_close(ns);
	pb_store_close(s);
	pb__pack_rec_version = 2;

	assert_true(snprintf(path, sizeof(path), "%s/packs/1/1.pack", dir) < (int)sizeof(path));
	magic_at(path, rec_off(0), "PBR1");
	assert_int_equal(pb_store_open(dir, &s), 0);
	assert_int_equal(pb_store_ns_open(s, "acct", "phone", &ns), 0);
	assert_int_equal(pb_store_verify(s, NULL, NULL, &rep), 0);
	assert_int_equal(rep.records, NOLD);
	for (uint32_t i = 0; i < NOLD; i++)
		check_chunk(ns, i, 0);

	/* New records go into the same open pack, in the new version. */
	for (uint32_t i = NOLD; i < NALL; i++)
		put_chunk(ns, i, names[i]);
	assert_int_equal(pb_store_flush(ns), NNEW);
	magic_at(path, rec_off(NOLD - 1), "PBR1");
	magic_at(path, rec_off(NOLD), "PBR2");
	assert_int_equal(pb_store_verify(s, NULL, NULL, &rep), 0);
	assert_int_equal(rep.records, NALL);
	assert_int_equal(rep.chunks, NALL);
	for (uint32_t i = 0; i < NALL; i++)
		check_chunk(ns, i, 0);

	/* A flipped byte: in an old record's ciphertext; in a new record's
	 * ciphertext, name (the new checksum covers the head) and tail. */
	damage(s, ns, path, rec_off(2) + PB__REC_HEAD_LEN + 500, 2);
	damage(s, ns, path, rec_off(NOLD + 1) + PB__REC_HEAD_LEN + 700, NOLD + 1);
	damage(s, ns, path, rec_off(NOLD + 1) + 8 + 3, NOLD + 1);
	damage(s, ns, path, rec_off(NOLD + 1) + PB__REC_HEAD_LEN + (off_t)chunk_len(NOLD + 1) + 20, NOLD + 1);

	/* GC copies records of both versions as they are. */
	{
		const uint64_t keep[] = {2};
		name_t two[2];
		pb_store_gc_report_t grep;

		memcpy(two[0], names[1], sizeof(name_t));
		memcpy(two[1], names[NALL - 1], sizeof(name_t));
		assert_int_equal(pb_store_snapshot_put(ns, 2, (const name_t *)two, 2, (const uint8_t *)"r2", 2), 0);
		assert_int_equal(pb_store_prune(ns, keep, 1), 1);
		assert_int_equal(pb_store_gc(s, 0, &grep), 0);
		assert_int_equal(grep.chunks_removed, NALL - 2);
		assert_int_equal(grep.packs_repacked, 1);
		assert_int_equal(pb_store_verify(s, NULL, NULL, &rep), 0);
		assert_int_equal(rep.records, 2);
		check_chunk(ns, 1, 0);
		check_chunk(ns, NALL - 1, 0);
	}
	pb_store_ns_close(ns);
	pb_store_close(s);
	pb_test_rmtree(dir);
	free(dir);
}

/* A version 2 record's checksum is XXH3-128 of its head and ciphertext,
 * whichever vector width the store hashes with here (AVX-512, AVX2 or the
 * default): against xxHash's published value for the empty input and its
 * one-shot hash, for lengths around its 240-byte, stripe and 1 KiB block
 * boundaries up to a 4 MiB chunk, at odd alignments. Packs written by
 * one machine verify on another. */
static void test_record_tail_reference(void **state)
{
	static const size_t lens[] = { 0, 1, 199, 200, 201, 983, 984, 985, 1000, 4096 + 17, 65536, (1u << 20) + 7,
				       (4u << 20) + 13 };
	const size_t max = (4u << 20) + 13;
	uint8_t *buf = malloc(PB__REC_HEAD_LEN + max + 8);
	uint8_t name[PB_STORE_NAME_LEN], tail[PB__REC_TAIL_LEN], zero[PB__REC_TAIL_LEN - 16] = { 0 };
	XXH128_canonical_t want;
	XXH128_hash_t empty = XXH3_128bits(NULL, 0);

	(void)state;
	assert_non_null(buf);
	/* xxHash's own sanity value for an empty input. */
	assert_true(empty.low64 == 0x6001C324468D497FULL && empty.high64 == 0x99AA06D3014798D8ULL);
	randombytes_buf(buf, PB__REC_HEAD_LEN + max + 8);
	randombytes_buf(name, sizeof(name));
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (size_t a = 0; a < 4; a++) {
			uint8_t *head = buf + a, *ct = head + PB__REC_HEAD_LEN;

			pb__pack_rec_head(head, name, lens[i]);
			pb__pack_rec_tail(tail, head, ct, lens[i]);
			XXH128_canonicalFromHash(&want, XXH3_128bits(head, PB__REC_HEAD_LEN + lens[i]));
			assert_memory_equal(tail, want.digest, 16);
			assert_memory_equal(tail + 16, zero, sizeof(zero));
		}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_old_records),
		cmocka_unit_test(test_record_tail_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
