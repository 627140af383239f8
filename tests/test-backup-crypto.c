/* The phone's side of backup: sealed chunks open only with the right key
 * and name, keyed content-defined chunking is stable under insertions and
 * differs per key, the master key wraps with a passphrase, and manifests
 * round-trip while truncated or oversized ones are refused. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "testutil.h"
#include "agent/backup/internal.h"
#include "agent/backup/stream.h"
#include "agent/util/blake2b.h"
#include "peerback.h"
#include "peerback/store.h"

typedef uint8_t name_t[PB_STORE_NAME_LEN];

static void keys_from(uint8_t fill, pb_backup_keys_t *keys)
{
	uint8_t mk[PB_MASTERKEY_LEN];

	memset(mk, fill, sizeof(mk));
	pb_backup_keys_derive(mk, keys);
}

static void fill_random(uint8_t *buf, size_t len, uint32_t seed)
{
	uint8_t key[randombytes_SEEDBYTES] = {0};

	memcpy(key, &seed, sizeof(seed));
	randombytes_buf_deterministic(buf, len, key);
}

static void test_keys_distinct(void **state)
{
	pb_backup_keys_t k;
	uint8_t mk[PB_MASTERKEY_LEN], mk2[PB_MASTERKEY_LEN];

	(void)state;
	keys_from(1, &k);
	assert_memory_not_equal(k.chunk, k.name, 32);
	assert_memory_not_equal(k.chunk, k.manifest, 32);
	assert_memory_not_equal(k.name, k.gear, 32);
	pb_masterkey_generate(mk);
	pb_masterkey_generate(mk2);
	assert_memory_not_equal(mk, mk2, sizeof(mk));
	pb_backup_keys_wipe(&k);
}

static void test_seal_open(void **state)
{
	pb_backup_keys_t k, other;
	size_t len = 100000, ct_len, plen;
	uint8_t *plain = malloc(len), *ct = malloc(PB_CHUNK_CT_LEN_MAX(len)), *out = malloc(len);
	name_t name, name2;
	size_t i;

	(void)state;
	keys_from(1, &k);
	keys_from(2, &other);
	for (i = 0; i < len; i++)
		plain[i] = (uint8_t)("the quick brown fox jumps over the lazy dog "[i % 44]);
	assert_int_equal(pb_chunk_seal(&k, plain, len, name, ct, &ct_len), 0);
	assert_int_equal(ct[0], 1);
	assert_int_equal(ct[1], 1); /* compressed */
	assert_true(ct_len < len / 10);
	assert_int_equal(pb_chunk_open(&k, name, ct, ct_len, out, len, &plen), 0);
	assert_int_equal(plen, len);
	assert_memory_equal(out, plain, len);
	/* Too small an output buffer is refused, not overrun. */
	assert_int_equal(pb_chunk_open(&k, name, ct, ct_len, out, len - 1, &plen), PB_ETOOBIG);

	/* The name is a keyed hash: stable for a key, different across keys. */
	assert_int_equal(pb_chunk_seal(&k, plain, len, name2, ct, &ct_len), 0);
	assert_memory_equal(name, name2, sizeof(name));
	assert_int_equal(pb_chunk_seal(&other, plain, len, name2, ct, &ct_len), 0);
	assert_memory_not_equal(name, name2, sizeof(name));

	/* Tampering: a flipped byte, a wrong name, a wrong key, a cut tail. */
	assert_int_equal(pb_chunk_seal(&k, plain, len, name, ct, &ct_len), 0);
	ct[ct_len / 2] ^= 1;
	assert_int_equal(pb_chunk_open(&k, name, ct, ct_len, out, len, &plen), PB_ESTORE_HASH);
	ct[ct_len / 2] ^= 1;
	ct[1] ^= 1; /* claim it is not compressed */
	assert_int_equal(pb_chunk_open(&k, name, ct, ct_len, out, len, &plen), PB_ESTORE_HASH);
	ct[1] ^= 1;
	name[5] ^= 0x80;
	assert_int_equal(pb_chunk_open(&k, name, ct, ct_len, out, len, &plen), PB_ESTORE_HASH);
	name[5] ^= 0x80;
	assert_int_equal(pb_chunk_open(&other, name, ct, ct_len, out, len, &plen), PB_ESTORE_HASH);
	assert_int_equal(pb_chunk_open(&k, name, ct, 20, out, len, &plen), PB_ETRUNCATED);
	ct[0] = 9;
	assert_int_equal(pb_chunk_open(&k, name, ct, ct_len, out, len, &plen), PB_EUNSUPPORTED);

	/* Incompressible data is stored as is: header, data, tag. */
	fill_random(plain, len, 5);
	assert_int_equal(pb_chunk_seal(&k, plain, len, name, ct, &ct_len), 0);
	assert_int_equal(ct[1], 0);
	assert_int_equal(ct_len, len + PB_CHUNK_HDR_LEN + 16);
	assert_int_equal(pb_chunk_open(&k, name, ct, ct_len, out, len, &plen), 0);
	assert_memory_equal(out, plain, len);
	/* A stored chunk claimed compressed is refused (the flags are
	 * authenticated), before zstd sees it. */
	ct[1] ^= 1;
	assert_int_equal(pb_chunk_open(&k, name, ct, ct_len, out, len, &plen), PB_ESTORE_HASH);
	ct[1] ^= 1;
	/* An empty chunk too. */
	assert_int_equal(pb_chunk_seal(&k, plain, 0, name, ct, &ct_len), 0);
	assert_int_equal(pb_chunk_open(&k, name, ct, ct_len, out, len, &plen), 0);
	assert_int_equal(plen, 0);
	free(plain);
	free(ct);
	free(out);
}

/* Cuts buf fully in memory; returns the number of chunks, names in names. */
static size_t cut_all(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, name_t *names, size_t *offs,
		      size_t cap)
{
	size_t off = 0, n = 0;

	while (off < len) {
		size_t c = pb_cdc_cut(cdc, buf + off, len - off, true);

		assert_true(c > 0);
		assert_true(c <= PB_CDC_MAX);
		if (off + c < len)
			assert_true(c >= PB_CDC_MIN);
		assert_true(n < cap);
		if (offs != NULL)
			offs[n] = off + c;
		crypto_generichash(names[n++], PB_STORE_NAME_LEN, buf + off, c, NULL, 0);
		off += c;
	}
	return n;
}

static size_t count_shared(const name_t *a, size_t na, const name_t *b, size_t nb)
{
	size_t i, j, shared = 0;

	for (i = 0; i < na; i++)
		for (j = 0; j < nb; j++)
			if (memcmp(a[i], b[j], PB_STORE_NAME_LEN) == 0) {
				shared++;
				break;
			}
	return shared;
}

static void test_cdc_stable_and_keyed(void **state)
{
	const size_t len = 20u << 20, ins = 1000;
	uint8_t *buf = malloc(len + ins);
	pb_backup_keys_t k, other;
	pb_cdc_t *cdc = malloc(sizeof(*cdc)), *cdc2 = malloc(sizeof(*cdc2));
	name_t a[128], b[128], c[128];
	size_t offa[128], offc[128];
	size_t na, nb, nc, shared, i, j, same_cuts = 0;

	(void)state;
	keys_from(1, &k);
	keys_from(2, &other);
	pb_cdc_init(cdc, &k);
	pb_cdc_init(cdc2, &other);
	fill_random(buf + ins, len, 42);
	na = cut_all(cdc, buf + ins, len, a, offa, 128);
	/* The average is near PB_CDC_AVG. */
	assert_true(na >= 8 && na <= 40);
	fprintf(stderr, "20 MiB -> %zu chunks (mean %zu KiB)\n", na, len / na / 1024);

	/* Insert bytes at the front: only the first chunks change. */
	fill_random(buf, ins, 43);
	nb = cut_all(cdc, buf, len + ins, b, NULL, 128);
	shared = count_shared(a, na, b, nb);
	fprintf(stderr, "after inserting %zu bytes: %zu of %zu chunks unchanged\n", ins, shared, na);
	assert_true(shared + 2 >= na);

	/* Another key cuts elsewhere. */
	nc = cut_all(cdc2, buf + ins, len, c, offc, 128);
	for (i = 0; i + 1 < na; i++)
		for (j = 0; j + 1 < nc; j++)
			same_cuts += offa[i] == offc[j];
	assert_true(same_cuts <= 1);
	assert_true(count_shared(a, na, c, nc) <= 1);
	pb_cdc_wipe(cdc);
	pb_cdc_wipe(cdc2);
	free(cdc);
	free(cdc2);
	free(buf);
}

typedef struct collect_s {
	uint8_t *data;
	size_t len, n;
	size_t lens[64];
} collect_t;

static int collect(void *arg, const uint8_t *data, size_t len)
{
	collect_t *c = arg;

	assert_true(c->n < 64);
	memcpy(c->data + c->len, data, len);
	c->len += len;
	c->lens[c->n++] = len;
	return 0;
}

static void test_cdc_file(void **state)
{
	char *dir = pb_test_tmpdir("cdc-file");
	char path[4096];
	const size_t len = 9u << 20;
	uint8_t *buf = malloc(len);
	pb_backup_keys_t k;
	pb_cdc_t cdc;
	collect_t col = {0};
	size_t off = 0, i;
	int fd;

	(void)state;
	keys_from(3, &k);
	pb_cdc_init(&cdc, &k);
	fill_random(buf, len, 7);
	assert_true(snprintf(path, sizeof(path), "%s/big", dir) < (int)sizeof(path));
	assert_int_equal(pb_test_write_file(path, buf, len), 0);
	col.data = malloc(len);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pb_cdc_file(&cdc, fd, collect, &col), 0);
	close(fd);
	/* Streaming gives the same cuts as the whole buffer. */
	assert_int_equal(col.len, len);
	assert_memory_equal(col.data, buf, len);
	for (i = 0; i < col.n; i++) {
		assert_int_equal(col.lens[i], pb_cdc_cut(&cdc, buf + off, len - off, true));
		off += col.lens[i];
	}
	assert_true(col.n >= 3);
	/* Given a prefix, the chunker waits for more data or finds the same
	 * cut as with all the data. */
	{
		size_t c0 = col.lens[0], p;

		for (p = PB_CDC_MIN - 1; p < c0 + 4096 && p < PB_CDC_MAX; p += 65536 + 7) {
			size_t c = pb_cdc_cut(&cdc, buf, p, false);

			assert_int_equal(c, p < c0 ? 0 : c0);
		}
		assert_int_equal(pb_cdc_cut(&cdc, buf, c0, false), c0);
		assert_int_equal(pb_cdc_cut(&cdc, buf, c0 - 1, false), 0);
		assert_int_equal(pb_cdc_cut(&cdc, buf, c0 - 1, true), c0 - 1);
	}
	/* A small item is one chunk whatever its content. */
	assert_int_equal(pb_test_write_file(path, buf, 700000), 0);
	col.len = col.n = 0;
	fd = open(path, O_RDONLY);
	assert_int_equal(pb_cdc_file(&cdc, fd, collect, &col), 0);
	close(fd);
	assert_int_equal(col.n, 1);
	assert_int_equal(col.lens[0], 700000);
	free(col.data);
	free(buf);
	pb_test_rmtree(dir);
	free(dir);
}

/* The cut as FastCDC states it (a mask of the top bits tested each byte):
 * the cutter's compare must find exactly these cuts. */
static size_t cut_bytewise(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof, size_t min, size_t avg,
			   size_t max, int bits_s, int bits_l)
{
	uint64_t ms = ~0ull << (64 - bits_s), ml = ~0ull << (64 - bits_l), fp = 0;
	size_t n = len < max ? len : max, normal = n < avg ? n : avg, i;

	if (len <= min)
		return eof ? len : 0;
	for (i = min; i < normal; i++) {
		fp = (fp << 1) + cdc->gear[buf[i]];
		if ((fp & ms) == 0)
			return i + 1;
	}
	for (; i < n; i++) {
		fp = (fp << 1) + cdc->gear[buf[i]];
		if ((fp & ml) == 0)
			return i + 1;
	}
	return n == max || eof ? n : 0;
}

static void test_cdc_cut_bytewise(void **state)
{
	const size_t len = 6u << 20;
	uint8_t *buf = malloc(len);
	pb_backup_keys_t k;
	pb_cdc_t cdc;
	int key;

	(void)state;
	assert_non_null(buf);
	for (key = 0; key < 3; key++) {
		size_t off, trial;

		keys_from(10 + key, &k);
		pb_cdc_init(&cdc, &k);
		fill_random(buf, len, 20 + key);
		/* Low-entropy stretches too: runs of a few byte values. */
		if (key == 2)
			for (off = 0; off < len; off++)
				buf[off] = (uint8_t)(buf[off] & 3);
		for (off = 0; off < len;) {
			size_t c = pb_cdc_cut(&cdc, buf + off, len - off, true);

			assert_int_equal(c, cut_bytewise(&cdc, buf + off, len - off, true, PB_CDC_MIN, PB_CDC_AVG,
							 PB_CDC_MAX, 22, 18));
			off += c;
		}
		for (off = 0; off < len;) {
			size_t c = pb__cdc_cut_stream(&cdc, buf + off, len - off, true);

			assert_int_equal(c, cut_bytewise(&cdc, buf + off, len - off, true, PB_STREAM_MIN,
							 PB_STREAM_AVG, PB_STREAM_MAX, 15, 11));
			off += c;
		}
		for (off = 0; off < len;) {
			size_t c = pb__cdc_cut_stream_large(&cdc, buf + off, len - off, true);

			assert_int_equal(c, cut_bytewise(&cdc, buf + off, len - off, true, PB_STREAM_L_MIN,
							 PB_STREAM_L_AVG, PB_STREAM_L_MAX, 17, 13));
			off += c;
		}
		/* Prefixes of many lengths, with and without eof. */
		for (trial = 0; trial < 64; trial++) {
			size_t l = PB_CDC_MIN - 3 + trial * 65537 + trial % 4;
			size_t s = PB_STREAM_MIN - 3 + trial * 517 + trial % 4;

			assert_int_equal(pb_cdc_cut(&cdc, buf + trial, l, false),
					 cut_bytewise(&cdc, buf + trial, l, false, PB_CDC_MIN, PB_CDC_AVG, PB_CDC_MAX, 22, 18));
			assert_int_equal(pb_cdc_cut(&cdc, buf + trial, l, true),
					 cut_bytewise(&cdc, buf + trial, l, true, PB_CDC_MIN, PB_CDC_AVG, PB_CDC_MAX, 22, 18));
			assert_int_equal(pb__cdc_cut_stream(&cdc, buf + trial, s, false),
					 cut_bytewise(&cdc, buf + trial, s, false, PB_STREAM_MIN, PB_STREAM_AVG,
						      PB_STREAM_MAX, 15, 11));
		}
	}
	free(buf);
}

static void test_masterkey_wrap(void **state)
{
	pb_pwhash_params_t p = pb_pwhash_params_interactive();
	uint8_t mk[PB_MASTERKEY_LEN], mk2[PB_MASTERKEY_LEN];
	uint8_t blob[PB_MASTERKEY_WRAPPED_LEN], blob2[PB_MASTERKEY_WRAPPED_LEN];

	(void)state;
	pb_masterkey_generate(mk);
	assert_int_equal(pb_masterkey_wrap(mk, "correct horse battery staple", &p, blob), 0);
	assert_int_equal(pb_masterkey_unwrap(blob, sizeof(blob), "correct horse battery staple", mk2), 0);
	assert_memory_equal(mk, mk2, sizeof(mk));
	assert_int_equal(pb_masterkey_unwrap(blob, sizeof(blob), "correct horse battery stapler", mk2),
			 PB_ESTORE_PASSPHRASE);
	/* Salted: wrapping twice gives different blobs. */
	assert_int_equal(pb_masterkey_wrap(mk, "correct horse battery staple", &p, blob2), 0);
	assert_memory_not_equal(blob, blob2, sizeof(blob));
	/* The parameters are authenticated, and absurd ones refused early. */
	memcpy(blob2, blob, sizeof(blob));
	blob2[8] ^= 1;
	assert_int_not_equal(pb_masterkey_unwrap(blob2, sizeof(blob2), "correct horse battery staple", mk2), 0);
	memcpy(blob2, blob, sizeof(blob));
	blob2[23] = 0x7f; /* memlimit of petabytes */
	assert_int_equal(pb_masterkey_unwrap(blob2, sizeof(blob2), "x", mk2), PB_EMALFORMED);
	blob2[4] = 2;
	assert_int_equal(pb_masterkey_unwrap(blob2, sizeof(blob2), "x", mk2), PB_EUNSUPPORTED);
	assert_int_equal(pb_masterkey_unwrap(blob, sizeof(blob) - 1, "x", mk2), PB_ETRUNCATED);
	/* The default is the moderate setting, recorded in the blob. */
	assert_int_equal(pb_masterkey_wrap(mk, "pw", NULL, blob), 0);
	assert_int_equal(blob[16] | blob[17] << 8 | blob[18] << 16 | (uint32_t)blob[19] << 24,
			 (uint32_t)pb_pwhash_params_moderate().memlimit);
	assert_int_equal(pb_masterkey_unwrap(blob, sizeof(blob), "pw", mk2), 0);
	assert_memory_equal(mk, mk2, sizeof(mk));
}

/* ---- manifests ---------------------------------------------------------------- */

#define MSTORE_MAX 1024 /* manifest chunks: about 32 items each */

typedef struct mstore_s {
	name_t names[MSTORE_MAX];
	uint8_t *cts[MSTORE_MAX];
	size_t lens[MSTORE_MAX];
	size_t n;
} mstore_t;

static int mstore_put(void *arg, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	mstore_t *m = arg;

	assert_true(m->n < MSTORE_MAX);
	memcpy(m->names[m->n], name, PB_STORE_NAME_LEN);
	m->cts[m->n] = malloc(len);
	memcpy(m->cts[m->n], ct, len);
	m->lens[m->n++] = len;
	return 0;
}

#define NBIG 40
#define NSMALL 5000

static void item_at(size_t i, pb_manifest_item_t *it, char *id, size_t idcap, name_t *chunks)
{
	size_t j, n = i < NBIG ? 1000 : 1;

	assert_true(snprintf(id, idcap, "chat/%zu/msg/%zu", i % 7, i) < (int)idcap);
	memset(it, 0, sizeof(*it));
	it->kind = 4;
	it->id = id;
	it->path = i < NBIG ? "chats/1/photo.jpg" : "chats/1/result.json";
	it->seq = i;
	it->size = i * 1000;
	it->mtime = 1700000000 + (int64_t)i;
	memset(it->hash, (int)(i & 0xff), sizeof(it->hash));
	for (j = 0; j < n; j++) {
		uint32_t v = (uint32_t)(i * 1000 + j);

		memset(chunks[j], 0, PB_STORE_NAME_LEN);
		memcpy(chunks[j], &v, sizeof(v));
	}
	it->nchunks = n;
	it->chunks = (const name_t *)chunks;
}

typedef struct check_s {
	size_t next;
	name_t chunks[1000];
} check_t;

static int check_item(void *arg, const pb_manifest_item_t *got)
{
	check_t *c = arg;
	pb_manifest_item_t want;
	char id[64];

	item_at(c->next++, &want, id, sizeof(id), c->chunks);
	assert_int_equal(got->kind, want.kind);
	assert_string_equal(got->id, want.id);
	assert_string_equal(got->path, want.path);
	assert_int_equal(got->seq, want.seq);
	assert_int_equal(got->size, want.size);
	assert_int_equal(got->mtime, want.mtime);
	assert_memory_equal(got->hash, want.hash, 32);
	assert_int_equal(got->nchunks, want.nchunks);
	assert_memory_equal(got->chunks, want.chunks, want.nchunks * PB_STORE_NAME_LEN);
	return 0;
}

static int count_item(void *arg, const pb_manifest_item_t *it)
{
	(void)it;
	(*(size_t *)arg)++;
	return 0;
}

static void test_manifest_round_trip(void **state)
{
	pb_backup_keys_t k, other;
	pb_manifest_writer_t *w;
	static mstore_t m;
	memset(&m, 0, sizeof(m));
	check_t *chk = calloc(1, sizeof(*chk));
	name_t *chunks = malloc(1000 * sizeof(name_t));
	uint8_t *root = NULL, (*refs)[PB_STORE_NAME_LEN] = NULL, (*mchunks)[PB_STORE_NAME_LEN] = NULL;
	size_t root_len, nrefs, nm, i;
	uint64_t nitems;
	int64_t t;
	char id[64];

	(void)state;
	keys_from(1, &k);
	keys_from(2, &other);
	assert_int_equal(pb_manifest_writer_new(&k, mstore_put, &m, &w), 0);
	for (i = 0; i < NBIG + NSMALL; i++) {
		pb_manifest_item_t it;

		item_at(i, &it, id, sizeof(id), chunks);
		assert_int_equal(pb_manifest_writer_add(w, &it), 0);
	}
	assert_int_equal(pb_manifest_writer_finish(w, 1700000123, &root, &root_len, &refs, &nrefs), 0);
	pb_manifest_writer_free(w);
	/* 40 x 32 KB of names: more than one manifest chunk. */
	assert_true(m.n >= 2);
	/* Deduplicated: 40 x 1000 names of the big items, one per small
	 * item, and the manifest chunks. */
	assert_int_equal(nrefs, NBIG * 1000 + NSMALL + m.n);
	free(refs);

	assert_int_equal(pb_manifest_root_open(&k, root, root_len, &t, &nitems, &mchunks, &nm), 0);
	assert_int_equal(t, 1700000123);
	assert_int_equal(nitems, NBIG + NSMALL);
	assert_int_equal(nm, m.n);
	for (i = 0; i < nm; i++) {
		assert_memory_equal(mchunks[i], m.names[i], PB_STORE_NAME_LEN);
		assert_int_equal(pb_manifest_chunk_open(&k, m.names[i], m.cts[i], m.lens[i], check_item, chk), 0);
	}
	assert_int_equal(chk->next, NBIG + NSMALL);
	free(mchunks);
	/* Another phone's keys open nothing. */
	assert_int_equal(pb_manifest_root_open(&other, root, root_len, &t, &nitems, &mchunks, &nm), PB_ESTORE_HASH);
	assert_int_equal(pb_manifest_chunk_open(&other, m.names[0], m.cts[0], m.lens[0], check_item, chk),
			 PB_ESTORE_HASH);
	free(root);
	for (i = 0; i < m.n; i++)
		free(m.cts[i]);
	free(chunks);
	free(chk);
}

static void test_manifest_rejects_bad_input(void **state)
{
	pb_backup_keys_t k;
	pb_manifest_writer_t *w;
	static mstore_t m;
	memset(&m, 0, sizeof(m));
	name_t chunks[3] = {{1}, {2}, {3}};
	pb_manifest_item_t it = {.kind = 1, .id = "cred/1", .path = "credentials/1.json",
				 .nchunks = 3, .chunks = (const name_t *)chunks};
	uint8_t *root, (*refs)[PB_STORE_NAME_LEN], *plain = malloc(PB_CHUNK_PLAIN_MAX + 1), *bad;
	size_t root_len, nrefs, plen, count, i;

	(void)state;
	keys_from(1, &k);
	assert_int_equal(pb_manifest_writer_new(&k, mstore_put, &m, &w), 0);
	assert_int_equal(pb_manifest_writer_add(w, &it), 0);
	it.id = "cred/2";
	assert_int_equal(pb_manifest_writer_add(w, &it), 0);
	assert_int_equal(pb_manifest_writer_finish(w, 1, &root, &root_len, &refs, &nrefs), 0);
	pb_manifest_writer_free(w);
	assert_int_equal(nrefs, 4); /* three data chunks, one manifest chunk */
	assert_int_equal(m.n, 1);
	assert_int_equal(pb__open(k.manifest, k.name, m.names[0], m.cts[0], m.lens[0], plain,
				  PB_CHUNK_PLAIN_MAX, &plen), 0);
	count = 0;
	assert_int_equal(pb_manifest_parse(plain, plen, count_item, &count), 0);
	assert_int_equal(count, 2);

	/* Every truncation is refused. */
	for (i = 0; i < plen; i++)
		assert_int_not_equal(pb_manifest_parse(plain, i, count_item, &count), 0);
	bad = malloc(plen + 1);
	/* A trailing byte. */
	memcpy(bad, plain, plen);
	bad[plen] = 0;
	assert_int_equal(pb_manifest_parse(bad, plen + 1, count_item, &count), PB_EMALFORMED);
	/* More items claimed than present. */
	memcpy(bad, plain, plen);
	bad[8] = 3;
	assert_int_equal(pb_manifest_parse(bad, plen, count_item, &count), PB_ETRUNCATED);
	bad[8] = 0xff, bad[9] = 0xff, bad[10] = 0xff, bad[11] = 0xff;
	assert_int_equal(pb_manifest_parse(bad, plen, count_item, &count), PB_ETRUNCATED);
	/* An id longer than the cap. */
	memcpy(bad, plain, plen);
	bad[16] = 0xff, bad[17] = 0x7f;
	assert_int_equal(pb_manifest_parse(bad, plen, count_item, &count), PB_ETOOBIG);
	/* A chunk count over the cap (first item: after id and path). */
	memcpy(bad, plain, plen);
	{
		size_t off = 12 + 6 + 6 + 2 + 18 + 24 + 32;

		bad[off] = 0xff, bad[off + 1] = 0xff, bad[off + 2] = 0xff, bad[off + 3] = 0x7f;
		assert_int_equal(pb_manifest_parse(bad, plen, count_item, &count), PB_ETOOBIG);
	}
	/* Bad magic and version. */
	memcpy(bad, plain, plen);
	bad[0] = 'X';
	assert_int_equal(pb_manifest_parse(bad, plen, count_item, &count), PB_EMALFORMED);
	memcpy(bad, plain, plen);
	bad[4] = 7;
	assert_int_equal(pb_manifest_parse(bad, plen, count_item, &count), PB_EUNSUPPORTED);
	/* A manifest chunk larger than the cap. */
	memset(plain, 0, PB_CHUNK_PLAIN_MAX + 1);
	assert_int_equal(pb_manifest_parse(plain, PB_CHUNK_PLAIN_MAX + 1, count_item, &count), PB_ETOOBIG);
	/* An oversized item is refused by the writer too. */
	{
		char longid[PB_MANIFEST_ID_MAX + 2];

		memset(longid, 'a', sizeof(longid) - 1);
		longid[sizeof(longid) - 1] = '\0';
		it.id = longid;
		assert_int_equal(pb_manifest_writer_new(&k, mstore_put, &m, &w), 0);
		assert_int_equal(pb_manifest_writer_add(w, &it), PB_ETOOBIG);
		pb_manifest_writer_free(w);
	}
	free(bad);
	free(plain);
	free(root);
	free(refs);
	for (i = 0; i < m.n; i++)
		free(m.cts[i]);
}

/* Chunk names (docs/STORAGE.md, "Chunk names"): below 64 KiB the keyed
 * BLAKE2b of the bytes, as before; from 64 KiB on, eight segments hashed
 * in vector lanes and a personalized hash of them. pb__chunk_name and
 * pb__chunk_names_many (batches of mixed lengths, across its groups of
 * 32) give the reference's names (pb_test_chunk_name, libsodium's one
 * stream only) at the segments' edges; the name of every chunk before
 * (the hash of its bytes) is still accepted for the same bytes, no name
 * for other bytes; and a chunk sealed under its old name opens. */
static void test_chunk_names(void **state)
{
	static const size_t lens[] = { 0, 1, 127, 128, 65535, 65536, 65537, 65536 + 127, 65536 + 8 * 128 - 1,
				       65536 + 8 * 128, 65536 + 8 * 128 + 1, 100000, 1u << 20, (1u << 20) + 1,
				       3u * 1024 * 1024 + 17, PB_CDC_MAX };
	enum { N = sizeof(lens) / sizeof(lens[0]), MANY = 80 };
	uint8_t *buf = malloc(PB_CDC_MAX), *ct = malloc(PB_CHUNK_CT_LEN_MAX(PB_CDC_MAX)), *back = malloc(PB_CDC_MAX);
	uint8_t want[MANY][PB_STORE_NAME_LEN], got[MANY][PB_STORE_NAME_LEN], old[PB_STORE_NAME_LEN];
	const uint8_t *data[MANY];
	uint8_t *out[MANY];
	size_t len[MANY], ct_len, plen;
	pb_backup_keys_t keys;
	pb__b2k_t k;

	(void)state;
	assert_non_null(buf);
	assert_non_null(ct);
	assert_non_null(back);
	keys_from(9, &keys);
	fill_random(buf, PB_CDC_MAX, 77);
	for (size_t i = 0; i < N; i++) {
		pb__chunk_name(keys.name, buf, lens[i], got[0]);
		pb_test_chunk_name(keys.name, buf, lens[i], want[0]);
		assert_memory_equal(got[0], want[0], PB_STORE_NAME_LEN);
		crypto_generichash(old, sizeof(old), buf, lens[i], keys.name, sizeof(keys.name));
		if (lens[i] < PB_CHUNK_TREE_MIN)
			assert_memory_equal(got[0], old, PB_STORE_NAME_LEN);
		else
			assert_memory_not_equal(got[0], old, PB_STORE_NAME_LEN);
		assert_true(pb__chunk_name_ok(keys.name, buf, lens[i], got[0]));
		assert_true(pb__chunk_name_ok(keys.name, buf, lens[i], old));
		if (lens[i] > 0) {
			/* Other bytes: neither name. */
			buf[lens[i] - 1] ^= 1;
			assert_false(pb__chunk_name_ok(keys.name, buf, lens[i], got[0]));
			assert_false(pb__chunk_name_ok(keys.name, buf, lens[i], old));
			buf[lens[i] - 1] ^= 1;
		}
		/* Sealed under its old name, as a snapshot made before holds it. */
		assert_int_equal(pb__seal_named(NULL, keys.chunk, old, buf, lens[i], ct, &ct_len), 0);
		assert_int_equal(pb__open(keys.chunk, keys.name, old, ct, ct_len, back, PB_CDC_MAX, &plen), 0);
		assert_int_equal(plen, lens[i]);
		assert_memory_equal(back, buf, lens[i]);
	}
	/* Many at once, mixed, from anywhere in the buffer: more segments and
	 * small chunks than one pass of the lanes takes. */
	pb__b2k_init(&k, keys.name, sizeof(keys.name), PB_STORE_NAME_LEN, NULL);
	for (size_t j = 0; j < MANY; j++) {
		len[j] = lens[(j * 7) % N];
		data[j] = buf + (j * 4099) % (PB_CDC_MAX - len[j] + 1);
		out[j] = got[j];
		pb_test_chunk_name(keys.name, data[j], len[j], want[j]);
	}
	memset(got, 0, sizeof(got));
	pb__chunk_names_many(&k, data, len, out, MANY);
	for (size_t j = 0; j < MANY; j++)
		assert_memory_equal(got[j], want[j], PB_STORE_NAME_LEN);
	sodium_memzero(&k, sizeof(k));
	pb_backup_keys_wipe(&keys);
	free(buf);
	free(ct);
	free(back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_distinct),
		cmocka_unit_test(test_seal_open),
		cmocka_unit_test(test_chunk_names),
		cmocka_unit_test(test_cdc_stable_and_keyed),
		cmocka_unit_test(test_cdc_file),
		cmocka_unit_test(test_cdc_cut_bytewise),
		cmocka_unit_test(test_masterkey_wrap),
		cmocka_unit_test(test_manifest_round_trip),
		cmocka_unit_test(test_manifest_rejects_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
