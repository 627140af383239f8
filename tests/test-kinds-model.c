/* The item model: kind words, the buffer, the generators' random stream,
 * the device directory scan and the writer that restores into it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kinds-util.h"
#include "peerback.h"
#include "peerback/kinds.h"
#include "agent/kinds/internal.h"
#include "agent/kinds/util.h"

static void test_kind_words(void **state)
{
	pb_kind_t k;

	(void)state;
	assert_string_equal(pb_kind_name(PB_KIND_CREDENTIAL), "credentials");
	assert_string_equal(pb_kind_name(PB_KIND_MIFARE), "mifare");
	assert_string_equal(pb_kind_name(PB_KIND_SIM), "sim");
	assert_string_equal(pb_kind_name(PB_KIND_CHAT), "chat");
	assert_string_equal(pb_kind_name(PB_KIND_CONTACTS), "contacts");
	for (int i = PB_KIND_CREDENTIAL; i <= PB_KIND_CONTACTS; i++) {
		assert_int_equal(pb_kind_parse(pb_kind_name((pb_kind_t)i), &k), 0);
		assert_int_equal(k, i);
		assert_true((PB_KIND_ALL & (1u << i)) != 0);
	}
	assert_int_equal(pb_kind_parse("credential", &k), 0);
	assert_int_equal(k, PB_KIND_CREDENTIAL);
	assert_int_equal(pb_kind_parse("chats", &k), 0);
	assert_int_equal(k, PB_KIND_CHAT);
	assert_int_equal(pb_kind_parse("contact", &k), 0);
	assert_int_equal(k, PB_KIND_CONTACTS);
	assert_int_equal(pb_kind_parse("photos", &k), PB_EDATA_KIND);
	assert_int_equal(pb_kind_parse("", &k), PB_EDATA_KIND);
	assert_int_equal(pb_kind_parse(NULL, &k), PB_EDATA_KIND);
}

static void test_buf(void **state)
{
	pb_buf_t b = { 0 };
	uint8_t chunk[1000];

	(void)state;
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	for (int i = 0; i < 100; i++)
		assert_int_equal(pb_buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 100000);
	assert_true(b.cap >= b.len);
	for (int i = 0; i < 100; i++)
		assert_memory_equal(b.data + 1000 * i, chunk, sizeof(chunk));
	assert_int_equal(pb_buf_append(&b, chunk, 0), 0);
	assert_int_equal(pb_buf_append(&b, chunk, SIZE_MAX), PB_ETOOBIG);
	assert_int_equal(pb_buf_append(&b, chunk, SIZE_MAX - 10), PB_ETOOBIG);
	assert_int_equal(b.len, 100000);
	pb_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	pb_buf_free(&b);
	pb_buf_free(NULL);
}

static void test_rng(void **state)
{
	pb_gen_rng_t a, b, c;
	uint8_t x[200], y[200], z[200];
	unsigned hist[6] = { 0 };

	(void)state;
	pb__gen_rng_init(&a, 42, "mifare");
	pb__gen_rng_init(&b, 42, "mifare");
	pb__gen_rng_init(&c, 42, "sim");
	/* Reading in different chunk sizes gives the same stream. */
	pb__gen_rng_bytes(&a, x, sizeof(x));
	pb__gen_rng_bytes(&b, y, 3);
	pb__gen_rng_bytes(&b, y + 3, 100);
	pb__gen_rng_bytes(&b, y + 103, 97);
	pb__gen_rng_bytes(&c, z, sizeof(z));
	assert_memory_equal(x, y, sizeof(x));
	assert_memory_not_equal(x, z, sizeof(x));
	pb__gen_rng_init(&c, 43, "mifare");
	pb__gen_rng_bytes(&c, z, sizeof(z));
	assert_memory_not_equal(x, z, sizeof(x));
	for (int i = 0; i < 6000; i++)
		hist[pb__gen_rng_below(&a, 6)]++;
	for (int i = 0; i < 6; i++)
		assert_true(hist[i] > 800 && hist[i] < 1200);
	assert_int_equal(pb__gen_rng_below(&a, 1), 0);
	assert_int_equal(pb__gen_rng_below(&a, 0), 0);
}

/* --- Scan ----------------------------------------------------------------- */

typedef struct seen_s {
	char ids[32][128];
	char paths[32][128];
	uint64_t seq[32];
	pb_kind_t kind[32];
	bool in_memory[32];
	char data[32][512];
	size_t n;
} seen_t;

static int record(void *arg, const pb_item_t *item)
{
	seen_t *s = arg;

	assert_true(s->n < 32);
	snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", item->id);
	snprintf(s->paths[s->n], sizeof(s->paths[0]), "%s", item->path);
	s->seq[s->n] = item->seq;
	s->kind[s->n] = item->kind;
	s->in_memory[s->n] = item->data != NULL;
	if (item->data != NULL) {
		assert_int_equal(item->size, item->len);
		assert_true(item->len < sizeof(s->data[0]));
		memcpy(s->data[s->n], item->data, item->len);
		s->data[s->n][item->len] = 0;
	} else {
		struct stat st;

		assert_non_null(item->file);
		assert_int_equal(item->file[0], '/');
		assert_int_equal(stat(item->file, &st), 0);
		assert_int_equal(item->size, (uint64_t)st.st_size);
	}
	assert_true(item->mtime_ns > 0);
	s->n++;
	return 0;
}

static const char sim_csv[] = "iccid,imsi,ki\n"
			      "8988211000000430010,262011234567890,000102030405060708090A0B0C0D0E0F\n"
			      "8949440000001155314,228062800000208,101112131415161718191A1B1C1D1E1F\n";

/* A MIFARE Mini dump (5 sectors) that parses: UID 01020304 with its BCC,
 * transport trailers. */
static void write_mini_dump(const char *path)
{
	static const uint8_t trailer[16] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07,
					     0x80, 0x69, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t d[320] = { 0x01, 0x02, 0x03, 0x04, 0x01 ^ 0x02 ^ 0x03 ^ 0x04, 0x08, 0x04, 0x00 };

	for (size_t s = 0; s < 5; s++)
		memcpy(d + 16 * (4 * s + 3), trailer, sizeof(trailer));
	assert_int_equal(pb_test_write_file(path, d, sizeof(d)), 0);
}

static char *make_device(void)
{
	char *dir = pb_test_tmpdir("kinds-model");

	kt_mkdir(kt_path(dir, "credentials"));
	kt_mkdir(kt_path(dir, "mifare"));
	kt_mkdir(kt_path(dir, "sim"));
	kt_mkdir(kt_path(dir, "mifare/keys"));
	/* Files of a kind with a format parse: a scan checks them. */
	kt_write(kt_path(dir, "credentials/b.json"),
		 "{\"checksum\":\"4BF5122F\",\"created\":0,\"data\":\"01\",\"id\":\"b\",\"type\":\"other\"}\n");
	kt_write(kt_path(dir, "credentials/a.json"),
		 "{\"checksum\":\"4BF5122F\",\"created\":0,\"data\":\"01\",\"id\":\"a\",\"type\":\"other\"}\n");
	write_mini_dump(kt_path(dir, "mifare/x.mfd"));
	kt_write(kt_path(dir, "mifare/keys/std.keys"), "FFFFFFFFFFFF\n");
	kt_write(kt_path(dir, "mifare/notes.txt"), "a note the user put there");
	kt_write(kt_path(dir, "mifare/.pbtmp-x.mfd-abc123"), "half-written");
	kt_write(kt_path(dir, "sim/profiles.csv"), sim_csv);
	kt_write(kt_path(dir, "README"), "unknown top-level entries are not data");
	return dir;
}

static void test_scan_order(void **state)
{
	char *dir = make_device();
	seen_t *s = calloc(1, sizeof(*s));
	char bad[256];

	(void)state;
	assert_int_equal(pb_device_scan(dir, PB_KIND_ALL, record, s, bad, sizeof(bad)), 0);
	assert_int_equal(s->n, 7);
	assert_string_equal(s->paths[0], "credentials/a.json");
	assert_string_equal(s->paths[1], "credentials/b.json");
	assert_string_equal(s->paths[2], "mifare/keys/std.keys");
	assert_string_equal(s->paths[3], "mifare/notes.txt");
	assert_int_equal(s->kind[3], PB_KIND_MIFARE);
	assert_string_equal(s->paths[4], "mifare/x.mfd");
	assert_string_equal(s->ids[4], "mifare/x.mfd");
	assert_false(s->in_memory[4]);
	assert_string_equal(s->paths[5], "sim/profiles.csv");
	assert_string_equal(s->ids[5], "sim/8988211000000430010");
	assert_int_equal(s->seq[5], 1);
	assert_true(s->in_memory[5]);
	assert_string_equal(s->data[5], "iccid,imsi,ki\n"
					"8988211000000430010,262011234567890,000102030405060708090A0B0C0D0E0F\n");
	assert_string_equal(s->ids[6], "sim/8949440000001155314");
	assert_int_equal(s->seq[6], 2);
	assert_int_equal(s->kind[6], PB_KIND_SIM);

	/* The kind mask filters, the order stays. */
	memset(s, 0, sizeof(*s));
	assert_int_equal(pb_device_scan(dir, 1u << PB_KIND_SIM | 1u << PB_KIND_CREDENTIAL, record, s, NULL, 0), 0);
	assert_int_equal(s->n, 4);
	assert_string_equal(s->paths[1], "credentials/b.json");
	assert_string_equal(s->paths[2], "sim/profiles.csv");

	/* A missing directory holds nothing. */
	memset(s, 0, sizeof(*s));
	assert_int_equal(pb_device_scan(kt_path(dir, "nothing-here"), PB_KIND_ALL, record, s, NULL, 0), 0);
	assert_int_equal(s->n, 0);
	free(s);
	pb_test_rmtree(dir);
	free(dir);
}

static int stop_at_two(void *arg, const pb_item_t *item)
{
	int *n = arg;

	(void)item;
	return ++*n == 2 ? 77 : 0;
}

static void test_scan_errors(void **state)
{
	char *dir = make_device();
	seen_t *s = calloc(1, sizeof(*s));
	char bad[256];
	int n = 0;

	(void)state;
	/* A callback's non-zero return stops the walk and is returned. */
	assert_int_equal(pb_device_scan(dir, PB_KIND_ALL, stop_at_two, &n, bad, sizeof(bad)), 77);
	assert_int_equal(n, 2);
	assert_string_equal(bad, "");
	/* A multi-item file that fails validation names itself. */
	kt_write(kt_path(dir, "sim/profiles.csv"), "iccid,imsi\n2222334455667788990,262011234567890\n");
	assert_int_equal(pb_device_scan(dir, PB_KIND_ALL, record, s, bad, sizeof(bad)), PB_EDATA_CHECKSUM);
	assert_string_equal(bad, "sim/profiles.csv");
	/* So does a whole file of a kind with a format: a truncated dump, a
	 * credential that is not JSON, a BCC that does not match the UID. */
	kt_write(kt_path(dir, "sim/profiles.csv"), sim_csv);
	kt_write(kt_path(dir, "mifare/x.mfd"), "1234");
	assert_int_equal(pb_device_scan(dir, PB_KIND_ALL, record, s, bad, sizeof(bad)), PB_EDATA_SIZE);
	assert_string_equal(bad, "mifare/x.mfd");
	write_mini_dump(kt_path(dir, "mifare/x.mfd"));
	kt_write(kt_path(dir, "credentials/b.json"), "{\"id\": \"b\", ");
	memset(s, 0, sizeof(*s));
	assert_int_not_equal(pb_device_scan(dir, PB_KIND_ALL, record, s, bad, sizeof(bad)), 0);
	assert_string_equal(bad, "credentials/b.json");
	{
		char why[256];
		uint8_t d[320];

		memset(d, 0, sizeof(d));
		d[0] = 1;
		assert_int_equal(pb__kinds_validate("mifare/y.mfd", d, sizeof(d), why, sizeof(why)), PB_EDATA_BCC);
		assert_non_null(strstr(why, "BCC"));
		assert_int_equal(pb__kinds_validate("chats/1/photos/p.jpg", d, 1, why, sizeof(why)), 0);
	}
	free(s);
	pb_test_rmtree(dir);
	free(dir);
}

/* --- Writer --------------------------------------------------------------- */

static pb_item_t item_of(pb_kind_t kind, const char *id, const char *path, uint64_t seq, const char *data)
{
	pb_item_t it = { 0 };

	it.kind = kind;
	it.id = id;
	it.path = path;
	it.seq = seq;
	it.data = (const uint8_t *)data;
	it.len = strlen(data);
	it.size = it.len;
	return it;
}

static void test_writer_whole_and_merge(void **state)
{
	char *dir = make_device(), *src = pb_test_tmpdir("kinds-src");
	pb_device_writer_t *w;
	pb_item_t it;
	char big[4096];

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(pb_test_write_file(kt_path(src, "big.bin"), big, sizeof(big)), 0);
	assert_int_equal(pb_device_writer_open(dir, &w), 0);
	it = item_of(PB_KIND_CREDENTIAL, "credentials/c.json", "credentials/c.json", 0, "{\"c\":1}");
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	/* A whole file restored from a file is copied, not loaded. */
	it = item_of(PB_KIND_CHAT, "chats/9/photo.jpg", "chats/9/photos/photo.jpg", 0, "");
	it.data = NULL;
	it.len = 0;
	it.file = kt_path(src, "big.bin");
	it.size = sizeof(big);
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	/* Same id replaces the row in its place; a new id goes by seq. */
	it = item_of(PB_KIND_SIM, "sim/8949440000001155314", "sim/profiles.csv", 2,
		     "iccid,imsi,ki\n8949440000001155314,228062800000999,FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\n");
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	it = item_of(PB_KIND_SIM, "sim/89445310150011013678", "sim/profiles.csv", 3,
		     "iccid,imsi,ki\n89445310150011013678,234150000000001,00000000000000000000000000000000\n");
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	assert_int_equal(pb_device_writer_commit(w), 0);
	pb_device_writer_free(w);

	kt_assert_file(kt_path(dir, "credentials/c.json"), "{\"c\":1}", 7);
	kt_assert_file(kt_path(dir, "chats/9/photos/photo.jpg"), big, sizeof(big));
	{
		const char want[] = "iccid,imsi,ki\n"
				    "8988211000000430010,262011234567890,000102030405060708090A0B0C0D0E0F\n"
				    "8949440000001155314,228062800000999,FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\n"
				    "89445310150011013678,234150000000001,00000000000000000000000000000000\n";
		kt_assert_file(kt_path(dir, "sim/profiles.csv"), want, strlen(want));
	}
	/* Items under a different header are merged under the union of the
	 * columns. */
	assert_int_equal(pb_device_writer_open(dir, &w), 0);
	it = item_of(PB_KIND_SIM, "sim/8988211000000430010", "sim/profiles.csv", 1,
		     "IMSI,ICCID,MSISDN\n262011234567890,8988211000000430010,+4912345\n");
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	assert_int_equal(pb_device_writer_commit(w), 0);
	pb_device_writer_free(w);
	{
		const char want[] = "iccid,imsi,msisdn,ki\n"
				    "8988211000000430010,262011234567890,+4912345,\n"
				    "8949440000001155314,228062800000999,,FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\n"
				    "89445310150011013678,234150000000001,,00000000000000000000000000000000\n";
		kt_assert_file(kt_path(dir, "sim/profiles.csv"), want, strlen(want));
	}
	pb_test_rmtree(src);
	pb_test_rmtree(dir);
	free(src);
	free(dir);
}

static void test_writer_atomic(void **state)
{
	char *dir = make_device();
	pb_device_writer_t *w;
	uint8_t before[32], after[32];
	pb_item_t it;

	(void)state;
	kt_dir_digest(dir, before);
	/* The second file cannot be staged (its source is gone): the first
	 * must not appear, and no temporary file may stay. */
	assert_int_equal(pb_device_writer_open(dir, &w), 0);
	it = item_of(PB_KIND_CREDENTIAL, "credentials/a.json", "credentials/a.json", 0, "{\"new\":true}");
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	it = item_of(PB_KIND_SIM, "sim/8949440000001155314", "sim/profiles.csv", 2,
		     "iccid,imsi\n8949440000001155314,228062800000999\n");
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	it = item_of(PB_KIND_MIFARE, "mifare/y.mfd", "mifare/y.mfd", 0, "");
	it.data = NULL;
	it.file = kt_path(dir, "no-such-source");
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	assert_int_equal(pb_device_writer_commit(w), -ENOENT);
	pb_device_writer_free(w);
	kt_dir_digest(dir, after);
	assert_memory_equal(before, after, 32);

	/* A folder that cannot be created fails the same way. */
	kt_write(kt_path(dir, "contacts"), "a file where a folder should be");
	kt_dir_digest(dir, before);
	assert_int_equal(pb_device_writer_open(dir, &w), 0);
	it = item_of(PB_KIND_CREDENTIAL, "credentials/a.json", "credentials/a.json", 0, "{\"new\":true}");
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	it = item_of(PB_KIND_CONTACTS, "contacts/x", "contacts/photos/x.jpg", 0, "jpeg");
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	assert_true(pb_device_writer_commit(w) < 0);
	pb_device_writer_free(w);
	kt_dir_digest(dir, after);
	assert_memory_equal(before, after, 32);

	/* Items dropped without a commit leave nothing. */
	assert_int_equal(pb_device_writer_open(dir, &w), 0);
	it = item_of(PB_KIND_CREDENTIAL, "credentials/z.json", "credentials/z.json", 0, "{}");
	assert_int_equal(pb_device_writer_add(w, &it), 0);
	pb_device_writer_free(w);
	kt_dir_digest(dir, after);
	assert_memory_equal(before, after, 32);
	pb_device_writer_free(NULL);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_writer_hostile_paths(void **state)
{
	static const struct {
		pb_kind_t kind;
		const char *id, *path;
	} bad[] = {
		{ PB_KIND_MIFARE, "x", "../x.mfd" },
		{ PB_KIND_MIFARE, "x", "mifare/../../etc/passwd" },
		{ PB_KIND_MIFARE, "x", "/etc/passwd" },
		{ PB_KIND_MIFARE, "x", "mifare//x.mfd" },
		{ PB_KIND_MIFARE, "x", "mifare/./x.mfd" },
		{ PB_KIND_MIFARE, "x", "mifare/x/" },
		{ PB_KIND_MIFARE, "x", "mifare" },
		{ PB_KIND_MIFARE, "x", "" },
		{ PB_KIND_MIFARE, "x", NULL },
		{ PB_KIND_MIFARE, "x", "mifare/.pbtmp-x.mfd-123456" },
		{ PB_KIND_MIFARE, "x", "sim/profiles.csv" },
		{ PB_KIND_CHAT, "x", "chats/1/a\\..\\b" },
		{ PB_KIND_CHAT, "x", "chats/1/a\nb" },
		{ PB_KIND_CHAT, "x", "chats/1/.." },
		{ PB_KIND_MIFARE, "", "mifare/x.mfd" },
		{ PB_KIND_MIFARE, NULL, "mifare/x.mfd" },
		{ PB_KIND_MIFARE, "bad\nid", "mifare/x.mfd" },
		{ (pb_kind_t)9, "x", "mifare/x.mfd" },
	};
	char *dir = make_device();
	char long_id[PB_ITEM_ID_MAX + 1];
	uint8_t before[32], after[32];
	pb_device_writer_t *w;
	pb_item_t it;

	(void)state;
	kt_dir_digest(dir, before);
	assert_int_equal(pb_device_writer_open(dir, &w), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		it = item_of(bad[i].kind, "x", "x", 0, "evil");
		it.id = bad[i].id;
		it.path = bad[i].path;
		assert_int_equal(pb_device_writer_add(w, &it), PB_EDATA_FIELD);
	}
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = 0;
	it = item_of(PB_KIND_MIFARE, long_id, "mifare/x.mfd", 0, "evil");
	assert_int_equal(pb_device_writer_add(w, &it), PB_EDATA_FIELD);
	assert_int_equal(pb_device_writer_commit(w), 0);
	pb_device_writer_free(w);
	kt_dir_digest(dir, after);
	assert_memory_equal(before, after, 32);
	pb_test_rmtree(dir);
	free(dir);
}

/* Everything scanned from one device and written into an empty one gives
 * the same files, byte for byte. */
typedef struct copy_s {
	pb_device_writer_t *w;
} copy_t;

static int copy_item(void *arg, const pb_item_t *item)
{
	copy_t *c = arg;

	return pb_device_writer_add(c->w, item);
}

static void test_restore_round_trip(void **state)
{
	char *a = pb_test_tmpdir("kinds-a"), *b = pb_test_tmpdir("kinds-b");
	uint8_t da[32], db[32];
	copy_t c;

	(void)state;
	assert_int_equal(pb__gen_credentials(a, 5, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_mifare(a, 5, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_sim(a, 5, PB_GEN_SMALL), 0);
	/* Blank lines and CRLF line ends survive split and join. */
	kt_write(kt_path(a, "sim/profiles.csv"), "iccid,imsi\r\n\r\n8988211000000430010,262011234567890\r\n\n"
						 "8949440000001155314,228062800000208");
	assert_int_equal(pb_device_writer_open(b, &c.w), 0);
	assert_int_equal(pb_device_scan(a, PB_KIND_ALL, copy_item, &c, NULL, 0), 0);
	assert_int_equal(pb_device_writer_commit(c.w), 0);
	pb_device_writer_free(c.w);
	kt_dir_digest(a, da);
	kt_dir_digest(b, db);
	assert_memory_equal(da, db, 32);
	pb_test_rmtree(a);
	pb_test_rmtree(b);
	free(a);
	free(b);
}

static void test_generators_deterministic(void **state)
{
	char *a = pb_test_tmpdir("kinds-gen-a"), *b = pb_test_tmpdir("kinds-gen-b"), *c = pb_test_tmpdir("kinds-gen-c");
	uint8_t da[32], db[32], dc[32];

	(void)state;
	assert_int_equal(pb__gen_credentials(a, 11, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_mifare(a, 11, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_sim(a, 11, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_credentials(b, 11, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_mifare(b, 11, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_sim(b, 11, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_credentials(c, 12, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_mifare(c, 12, PB_GEN_SMALL), 0);
	assert_int_equal(pb__gen_sim(c, 12, PB_GEN_SMALL), 0);
	kt_dir_digest(a, da);
	kt_dir_digest(b, db);
	kt_dir_digest(c, dc);
	assert_memory_equal(da, db, 32);
	assert_memory_not_equal(da, dc, 32);
	pb_test_rmtree(a);
	pb_test_rmtree(b);
	pb_test_rmtree(c);
	free(a);
	free(b);
	free(c);
}

static void test_codec_table(void **state)
{
	(void)state;
	assert_ptr_equal(pb_codec_for("sim/profiles.csv"), &pb__codec_sim_csv);
	assert_int_equal(pb_codec_for("sim/profiles.csv")->kind, PB_KIND_SIM);
	assert_null(pb_codec_for("sim/other.csv"));
	assert_null(pb_codec_for("mifare/x.mfd"));
	assert_null(pb_codec_for("credentials/a.json"));
	assert_null(pb_codec_for(NULL));
}

/* The import, export and gen subcommands as a user runs them. */
static void test_cli(void **state)
{
	char *tool = pb_test_tool("peerback"), *dir = pb_test_tmpdir("kinds-cli"), *out = NULL, *err = NULL;
	char *fixture = pb_test_data("fixtures/mifare/zhovner-mfdread-4k.mfd");
	char *csv = pb_test_data("fixtures/sim/pysim-card_data.csv");
	char home[4096], dev[4096], exp[4096];

	(void)state;
	snprintf(home, sizeof(home), "%s/home", dir);
	snprintf(dev, sizeof(dev), "%s/home/device", dir);
	snprintf(exp, sizeof(exp), "%s/export", dir);
	for (int i = 0; i < 3; i++) {
		static const char *const cmds[] = { "import", "export", "gen" };
		char *argv[] = { tool, "--home", home, (char *)cmds[i], "--help", NULL };
		assert_int_equal(pb_test_run(argv, NULL, 30, &out, NULL), 0);
		assert_non_null(strstr(out, "usage: peerback "));
		assert_non_null(strstr(out, cmds[i]));
		free(out);
	}
	{
		char *argv[] = { tool, "--home", home, "import", "mifare", fixture, NULL };
		assert_int_equal(pb_test_run(argv, NULL, 30, &out, &err), 0);
		free(out);
		free(err);
	}
	{
		/* The default device directory is HOME/device. */
		char *argv[] = { tool, "--home", home, "export", "mifare", "--format", "mfd", "--out", exp, NULL };
		char path[4096];
		size_t len, flen;
		uint8_t *a, *b;

		assert_int_equal(pb_test_run(argv, NULL, 30, &out, &err), 0);
		free(out);
		free(err);
		snprintf(path, sizeof(path), "%s/33BD9D3F-A32330D7.mfd", exp);
		a = pb_test_read_file(path, &len);
		b = pb_test_read_file(fixture, &flen);
		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal(len, flen);
		assert_memory_equal(a, b, len);
		free(a);
		free(b);
	}
	{
		char *argv[] = { tool, "--home", home, "import", "credentials", csv, "--device", dev, NULL };
		assert_int_equal(pb_test_run(argv, NULL, 30, &out, &err), 1);
		assert_non_null(strstr(err, "pysim-card_data.csv:4: ICCID 2222334455667788990 fails its Luhn check"));
		assert_non_null(strstr(err, "nothing was imported"));
		free(out);
		free(err);
	}
	{
		char *argv[] = { tool, "--home", home, "import", "photos", csv, NULL };
		assert_int_equal(pb_test_run(argv, NULL, 30, &out, &err), 2);
		free(out);
		free(err);
	}
	{
		char *argv[] = { tool, "--home", home, "gen", "--out", dev, "--seed", "5", "--size", "small", NULL };
		assert_int_equal(pb_test_run(argv, NULL, 60, &out, &err), 0);
		free(out);
		free(err);
	}
	{
		char *argv[] = { tool, "--home", home, "gen", "--out", dev, "--seed", "x5", NULL };
		assert_int_equal(pb_test_run(argv, NULL, 60, &out, &err), 2);
		free(out);
		free(err);
	}
	pb_test_rmtree(dir);
	free(dir);
	free(tool);
	free(fixture);
	free(csv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kind_words),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_rng),
		cmocka_unit_test(test_codec_table),
		cmocka_unit_test(test_scan_order),
		cmocka_unit_test(test_scan_errors),
		cmocka_unit_test(test_writer_whole_and_merge),
		cmocka_unit_test(test_writer_atomic),
		cmocka_unit_test(test_writer_hostile_paths),
		cmocka_unit_test(test_restore_round_trip),
		cmocka_unit_test(test_generators_deterministic),
		cmocka_unit_test(test_cli),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
