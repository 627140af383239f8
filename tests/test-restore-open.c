/* A restore's chunk openers (agent/backup/restore-open.c): chunks handed
 * over come back in the order given, opened, whether the opening threads
 * took them one by one or several at once (their names checked together);
 * a chunk that authenticates under the account's chunk key but does not
 * hash to its name (sealed under another chunk's name, as a hostile phone
 * of the same account could) fails alone, its neighbours in the same batch
 * open, and a chunk handed over as plaintext is checked against its name.
 * A chunk sealed under the name every chunk had before the eight-segment
 * names (the keyed BLAKE2b of its bytes, 64 KiB and more) opens, one
 * sealed under that name of other bytes fails. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "testutil.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/internal.h"
#include "peerback/store.h"

#define NCHUNKS 200

static void keys_of(uint8_t seed, pb_backup_keys_t *k)
{
	uint8_t mk[PB_MASTERKEY_LEN];

	memset(mk, seed, sizeof(mk));
	pb_backup_keys_derive(mk, k);
}

static void fill_seeded(uint8_t *buf, size_t len, uint32_t seed)
{
	uint8_t key[randombytes_SEEDBYTES] = { 0 };

	memcpy(key, &seed, sizeof(seed));
	randombytes_buf_deterministic(buf, len, key);
}

/* Chunk i's plaintext: sizes from a few bytes to 200 KB, some of it
 * compressible, so that the lanes of a batch end at different blocks. */
static size_t plain_of(size_t i, uint8_t *p)
{
	size_t len = i % 7 == 0 ? i % 300 : 1000 + (i * 7919) % 200000;

	fill_seeded(p, len, (uint32_t)i + 1);
	if (i % 3 == 0)
		memset(p, (int)i, len / 2);
	return len;
}

/* Chunk i, sealed; every 17th is sealed under the name of chunk i+1's
 * plaintext (it authenticates, its name lies), every 23rd is handed over
 * as plaintext, every 29th of those with a byte changed. */
enum { GOOD, POISONED, PLAIN, PLAIN_BAD, LEGACY, LEGACY_POISONED };

static int kind_of(size_t i)
{
	if (i % 17 == 5)
		return POISONED;
	if (i % 13 == 4)
		return LEGACY;
	if (i % 19 == 7)
		return LEGACY_POISONED;
	if (i % 23 == 3)
		return i % 2 == 0 ? PLAIN_BAD : PLAIN;
	return GOOD;
}

static void put_chunk(pb__opener_t *o, const pb_backup_keys_t *k, size_t i, uint8_t *plain, uint8_t *other)
{
	size_t len = plain_of(i, plain), ct_len;
	uint8_t name[PB_STORE_NAME_LEN];
	uint8_t *ct = malloc(len + PB_CHUNK_HDR_LEN + 64);

	assert_non_null(ct);
	switch (kind_of(i)) {
	case POISONED: {
		size_t olen = plain_of(i + 1, other);

		pb__chunk_name(k->name, other, olen, name);
		assert_int_equal(pb__seal_named(NULL, k->chunk, name, plain, len, ct, &ct_len), 0);
		pb__opener_put(o, name, ct, ct_len, i);
		return;
	}
	case LEGACY:
	case LEGACY_POISONED: {
		size_t olen = kind_of(i) == LEGACY ? len : plain_of(i + 1, other);

		crypto_generichash(name, sizeof(name), kind_of(i) == LEGACY ? plain : other, olen, k->name,
				   sizeof(k->name));
		assert_int_equal(pb__seal_named(NULL, k->chunk, name, plain, len, ct, &ct_len), 0);
		pb__opener_put(o, name, ct, ct_len, i);
		return;
	}
	case PLAIN:
	case PLAIN_BAD:
		pb__chunk_name(k->name, plain, len, name);
		memcpy(ct, plain, len);
		if (kind_of(i) == PLAIN_BAD)
			ct[len > 0 ? len / 2 : 0] ^= 1;
		pb__opener_put_plain(o, name, ct, len > 0 || kind_of(i) == PLAIN ? len : 1, i);
		return;
	default:
		assert_int_equal(pb_chunk_seal(k, plain, len, name, ct, &ct_len), 0);
		pb__opener_put(o, name, ct, ct_len, i);
	}
}

static void take_chunk(pb__opener_t *o, size_t i, uint8_t *plain)
{
	uint8_t *ct, *got;
	size_t len, plen, want = plain_of(i, plain);
	uint64_t tag;
	int rc = pb__opener_take(o, &ct, &len, &tag, &got, &plen);

	assert_int_equal(tag, i);
	if (kind_of(i) == POISONED || kind_of(i) == PLAIN_BAD || kind_of(i) == LEGACY_POISONED) {
		assert_int_equal(rc, PB_ESTORE_HASH);
		assert_null(got);
	} else {
		assert_int_equal(rc, 0);
		assert_non_null(got);
		assert_int_equal(plen, want);
		assert_memory_equal(got, plain, want);
	}
	free(ct);
	free(got);
}

/* Chunks handed over as fast as there is room, so that the threads find
 * several waiting; taken back when the ring is full. */
static void test_in_order_batched(void **state)
{
	pb_backup_keys_t k;
	pb__opener_t *o;
	uint8_t *plain = malloc(300000), *other = malloc(300000);
	size_t put = 0, taken = 0;

	(void)state;
	assert_non_null(plain);
	assert_non_null(other);
	keys_of(7, &k);
	assert_int_equal(pb__opener_new(&k, &o), 0);
	while (taken < NCHUNKS) {
		if (put < NCHUNKS && pb__opener_room(o))
			put_chunk(o, &k, put++, plain, other);
		else
			take_chunk(o, taken++, plain);
	}
	assert_int_equal(pb__opener_waiting(o), 0);
	pb__opener_free(o);
	pb_backup_keys_wipe(&k);
	free(plain);
	free(other);
}

/* One at a time: the taking thread may open the chunk itself. */
static void test_one_at_a_time(void **state)
{
	pb_backup_keys_t k;
	pb__opener_t *o;
	uint8_t *plain = malloc(300000), *other = malloc(300000);

	(void)state;
	assert_non_null(plain);
	assert_non_null(other);
	keys_of(9, &k);
	assert_int_equal(pb__opener_new(&k, &o), 0);
	for (size_t i = 0; i < 40; i++) {
		put_chunk(o, &k, i, plain, other);
		take_chunk(o, i, plain);
	}
	pb__opener_free(o);
	pb_backup_keys_wipe(&k);
	free(plain);
	free(other);
}

/* Freed with chunks still handed over: nothing leaks (the sanitizer
 * build checks). */
static void test_free_with_waiting(void **state)
{
	pb_backup_keys_t k;
	pb__opener_t *o;
	uint8_t *plain = malloc(300000), *other = malloc(300000);

	(void)state;
	assert_non_null(plain);
	assert_non_null(other);
	keys_of(11, &k);
	assert_int_equal(pb__opener_new(&k, &o), 0);
	for (size_t i = 0; i < 20 && pb__opener_room(o); i++)
		put_chunk(o, &k, i, plain, other);
	pb__opener_free(o);
	pb_backup_keys_wipe(&k);
	free(plain);
	free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order_batched),
		cmocka_unit_test(test_one_at_a_time),
		cmocka_unit_test(test_free_with_waiting),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
