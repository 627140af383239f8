/* Content-defined cuts as the backup makes them now, against the cuts as
 * they were made before (a byte-by-byte gear hash, kept here as the
 * reference):
 *
 * - pb_cdc_cut and the chat streams' two cuts give the reference's cuts,
 *   byte for byte, on random, constant and periodic data;
 * - pb__cdc_cut_more fed a block at a time (blocks of every size) gives
 *   pb_cdc_cut's cuts;
 * - the reader (agent/backup/reader.c) gives a file's chunks and names as
 *   pb__cdc_file_many and pb__chunk_name do, for files just over 1 MiB,
 *   of many buffers, constant, and stopped midway, and for a file read
 *   ahead behind another (taken, or dropped unread); a whole file is one
 *   chunk; every buffer comes back. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "testutil.h"
#include "agent/backup/internal.h"
#include "agent/backup/reader.h"
#include "agent/backup/stream.h"
#include "peerback/store.h"

/* ---- the reference: the cut as it was -------------------------------------- */

static size_t ref_scan(const uint64_t gear[256], const uint8_t *buf, size_t i, size_t end, uint64_t *fp,
		       uint64_t mask)
{
	uint64_t f = *fp;

	for (; i < end; i++) {
		f = (f << 1) + gear[buf[i]];
		if ((f & mask) == 0)
			return i + 1;
	}
	*fp = f;
	return 0;
}

static size_t ref_cut(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof, size_t min, size_t avg,
		      size_t max, unsigned bits_s, unsigned bits_l)
{
	uint64_t mask_s = ~0ull << (64 - bits_s), mask_l = ~0ull << (64 - bits_l), fp = 0;
	size_t n = len < max ? len : max;
	size_t normal = n < avg ? n : avg;
	size_t at;

	if (len <= min)
		return eof ? len : 0;
	if (min < normal && (at = ref_scan(cdc->gear, buf, min, normal, &fp, mask_s)) != 0)
		return at;
	if ((at = ref_scan(cdc->gear, buf, min > normal ? min : normal, n, &fp, mask_l)) != 0)
		return at;
	if (n == max || eof)
		return n;
	return 0;
}

static size_t ref_file(const pb_cdc_t *cdc, const uint8_t *b, size_t l, bool eof)
{
	return ref_cut(cdc, b, l, eof, PB_CDC_MIN, PB_CDC_AVG, PB_CDC_MAX, 22, 18);
}

static size_t ref_stream(const pb_cdc_t *cdc, const uint8_t *b, size_t l, bool eof)
{
	return ref_cut(cdc, b, l, eof, PB_STREAM_MIN, PB_STREAM_AVG, PB_STREAM_MAX, 15, 11);
}

static size_t ref_stream_large(const pb_cdc_t *cdc, const uint8_t *b, size_t l, bool eof)
{
	return ref_cut(cdc, b, l, eof, PB_STREAM_L_MIN, PB_STREAM_L_AVG, PB_STREAM_L_MAX, 17, 13);
}

/* ---- data ---------------------------------------------------------------------- */

static void keys_from(uint8_t fill, pb_backup_keys_t *keys)
{
	uint8_t mk[PB_MASTERKEY_LEN];

	memset(mk, fill, sizeof(mk));
	pb_backup_keys_derive(mk, keys);
}

/* Kind 0 random, 1 zeros, 2 a 1000-byte period, 3 random with zero runs. */
static void fill(uint8_t *buf, size_t len, int kind, uint32_t seed)
{
	uint8_t key[randombytes_SEEDBYTES] = { 0 };

	memcpy(key, &seed, sizeof(seed));
	randombytes_buf_deterministic(buf, len, key);
	if (kind == 1)
		memset(buf, 0, len);
	if (kind == 2)
		for (size_t i = 1000; i < len; i++)
			buf[i] = buf[i - 1000];
	if (kind == 3)
		for (size_t i = 0; i + 70000 < len; i += 300000)
			memset(buf + i, 0, 70000);
}

typedef size_t (*cut_fn)(const pb_cdc_t *, const uint8_t *, size_t, bool);

/* Every cut of buf by both, from every chunk start, eof or not. */
static size_t compare_all(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, cut_fn got, cut_fn want)
{
	size_t off = 0, n = 0;

	while (off < len) {
		size_t a = got(cdc, buf + off, len - off, true), b = want(cdc, buf + off, len - off, true);

		assert_int_equal(a, b);
		/* Not at the end: the same "need more" answers too. */
		for (size_t part = 1; part < 4; part++) {
			size_t l = (len - off) * part / 4;

			assert_int_equal(got(cdc, buf + off, l, false), want(cdc, buf + off, l, false));
		}
		assert_true(a > 0);
		off += a;
		n++;
	}
	return n;
}

static void test_cut_same_as_before(void **state)
{
	size_t len = 24u << 20;
	uint8_t *buf = malloc(len);
	pb_backup_keys_t k;
	pb_cdc_t *cdc = malloc(sizeof(*cdc));
	size_t files = 0, streams = 0;

	(void)state;
	assert_non_null(buf);
	assert_non_null(cdc);
	for (uint8_t key = 1; key <= 2; key++) {
		keys_from(key, &k);
		pb_cdc_init(cdc, &k);
		for (int kind = 0; kind < 4; kind++) {
			fill(buf, len, kind, 100u + (uint32_t)kind + key);
			files += compare_all(cdc, buf, len, pb_cdc_cut, ref_file);
			streams += compare_all(cdc, buf, 2u << 20, pb__cdc_cut_stream, ref_stream);
			streams += compare_all(cdc, buf, 2u << 20, pb__cdc_cut_stream_large, ref_stream_large);
		}
	}
	/* Random data cuts near the average sizes: many cuts were compared. */
	assert_true(files > 60);
	assert_true(streams > 500);
	pb_cdc_wipe(cdc);
	free(cdc);
	free(buf);
}

static void test_cut_more_by_blocks(void **state)
{
	size_t len = 20u << 20;
	uint8_t *buf = malloc(len);
	pb_backup_keys_t k;
	pb_cdc_t *cdc = malloc(sizeof(*cdc));
	static const size_t blocks[] = { 1, 4093, 65536, 1u << 20, 3u << 20, 8u << 20 };

	(void)state;
	assert_non_null(buf);
	assert_non_null(cdc);
	keys_from(5, &k);
	pb_cdc_init(cdc, &k);
	for (int kind = 0; kind < 4; kind++) {
		fill(buf, len, kind, 7u + (uint32_t)kind);
		for (size_t bi = 0; bi < sizeof(blocks) / sizeof(blocks[0]); bi++) {
			size_t off = 0, have = 0, cuts = 0, step = blocks[bi];
			pb__cdc_at_t at = { 0, 0 };

			/* A byte at a time is slow: only the first few MiB. */
			size_t end = step == 1 ? (3u << 20) : len;

			while (off < end) {
				bool eof = have == end;
				size_t c = pb__cdc_cut_more(cdc, buf + off, have - off, eof, &at);

				if (c == 0) {
					assert_false(eof);
					have = have + step < end ? have + step : end;
					continue;
				}
				assert_int_equal(c, pb_cdc_cut(cdc, buf + off, end - off, true));
				off += c;
				cuts++;
			}
			assert_int_equal(off, end);
			/* Random data: cuts near the average size (zeros
			 * only at the maximum). */
			assert_true(kind != 0 || cuts > 2);
		}
	}
	pb_cdc_wipe(cdc);
	free(cdc);
	free(buf);
}

/* ---- the reader -------------------------------------------------------------- */

struct cuts {
	size_t len[256];
	uint8_t names[256][PB_STORE_NAME_LEN];
	size_t n;
	const pb_backup_keys_t *k;
};

static int collect(void *arg, const uint8_t *const *data, const size_t *len, size_t n)
{
	struct cuts *c = arg;

	for (size_t i = 0; i < n; i++) {
		assert_true(c->n < 256);
		c->len[c->n] = len[i];
		pb__chunk_name(c->k->name, data[i], len[i], c->names[c->n]);
		c->n++;
	}
	return 0;
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* What pb__cdc_file_many and pb__chunk_name make of path. */
static void expect(const pb_cdc_t *cdc, const pb_backup_keys_t *k, const char *path, struct cuts *want)
{
	uint8_t *fbuf = malloc(PB__CDC_FILE_BUF);
	int fd;

	assert_non_null(fbuf);
	memset(want, 0, sizeof(*want));
	want->k = k;
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pb__cdc_file_many(cdc, fd, fbuf, collect, want), 0);
	close(fd);
	free(fbuf);
}

/* The first queued file's pieces against want; stop_after: pieces taken
 * before pb__reader_done (0: all). */
static void take(pb__reader_t *r, const pb_backup_keys_t *k, const struct cuts *want, size_t stop_after)
{
	size_t got = 0, pieces = 0;
	pb__piece_t *p;

	for (;;) {
		size_t off = 0;

		assert_int_equal(pb__reader_next(r, &p, NULL, NULL), 0);
		if (p == NULL)
			break;
		assert_true(p->n > 0);
		for (size_t i = 0; i < p->n; i++) {
			uint8_t name[PB_STORE_NAME_LEN];

			assert_true(got < want->n);
			assert_int_equal(p->len[i], want->len[got]);
			assert_memory_equal(p->names[i], want->names[got], PB_STORE_NAME_LEN);
			pb__chunk_name(k->name, p->buf + off, p->len[i], name);
			assert_memory_equal(name, want->names[got], PB_STORE_NAME_LEN);
			off += p->len[i];
			got++;
		}
		pb__reader_give(r, p->buf);
		if (++pieces == stop_after)
			break;
	}
	pb__reader_done(r);
	if (stop_after == 0)
		assert_int_equal(got, want->n);
}

static void test_reader_same_as_file_many(void **state)
{
	size_t len = 40u << 20;
	uint8_t *buf = malloc(len);
	char *dir = pb_test_tmpdir("cdc-reader");
	char path[4200], path2[4200];
	pb_backup_keys_t k;
	pb_cdc_t *cdc = malloc(sizeof(*cdc));
	pb__reader_t *r = NULL;
	static struct cuts want, want2;
	static const struct {
		size_t len;
		int kind;
		size_t stop_after;
	} files[] = {
		{ (1u << 20) + 1, 0, 0 }, { 3u << 20, 0, 0 },	  { 40u << 20, 0, 0 }, { 9u << 20, 1, 0 },
		{ 17u << 20, 3, 0 },	  { 12u << 20, 2, 0 },	  { 40u << 20, 0, 1 }, { 40u << 20, 0, 2 },
		{ 5u << 20, 0, 0 },	  { (1u << 20) - 5, 0, 0 }, { 0, 0, 0 },
	};
	int fd, fd2;

	(void)state;
	assert_non_null(buf);
	assert_non_null(cdc);
	keys_from(9, &k);
	pb_cdc_init(cdc, &k);
	assert_int_equal(pb__reader_new(cdc, &k, &r), 0);
	snprintf(path, sizeof(path), "%s/file", dir);
	snprintf(path2, sizeof(path2), "%s/file2", dir);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		fill(buf, files[i].len, files[i].kind, 50u + (uint32_t)i);
		write_file(path, buf, files[i].len);
		expect(cdc, &k, path, &want);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pb__reader_add(r, fd, false), 0);
		take(r, &k, &want, files[i].stop_after);
		close(fd);
	}

	/* A file read ahead behind another: its pieces come once the first
	 * one's are done; or it is dropped unread, and the next one is whole. */
	fill(buf, 20u << 20, 0, 77);
	write_file(path, buf, 20u << 20);
	write_file(path2, buf + (3u << 20), 11u << 20);
	expect(cdc, &k, path, &want);
	expect(cdc, &k, path2, &want2);
	for (int drop = 0; drop < 2; drop++) {
		fd = open(path, O_RDONLY);
		fd2 = open(path2, O_RDONLY);
		assert_true(fd >= 0 && fd2 >= 0);
		assert_int_equal(pb__reader_add(r, fd, false), 0);
		assert_int_equal(pb__reader_add(r, fd2, false), 0);
		assert_int_equal(pb__reader_add(r, fd2, false), PB_ESTATE); /* two at most */
		take(r, &k, &want, 0);
		if (drop)
			pb__reader_done(r);
		else
			take(r, &k, &want2, 0);
		close(fd);
		close(fd2);
	}
	/* Whole: one chunk of the file's size, not cut. */
	write_file(path2, buf, 700000);
	fd = open(path2, O_RDONLY);
	assert_true(fd >= 0);
	memset(&want2, 0, sizeof(want2));
	want2.k = &k;
	want2.n = 1;
	want2.len[0] = 700000;
	pb__chunk_name(k.name, buf, 700000, want2.names[0]);
	assert_int_equal(pb__reader_add(r, fd, true), 0);
	take(r, &k, &want2, 0);
	close(fd);

	/* Every buffer is back (the reader frees them; ASan finds a leak). */
	pb__reader_free(r);
	pb_cdc_wipe(cdc);
	free(cdc);
	free(buf);
	pb_test_rmtree(dir);
	free(dir);
}

/* A run of files of one chunk each, and of a few, each read ahead behind
 * the one being taken, taken slowly: the namer finds several pieces
 * queued, of two files, and names them together; every piece's names
 * are still its own chunks', in order, and one file dropped untaken
 * leaves the next one's names right. */
static void test_reader_names_queued_together(void **state)
{
	enum { FILES = 24 };
	size_t len[FILES];
	uint8_t *buf = malloc(6u << 20);
	char *dir = pb_test_tmpdir("cdc-reader-run");
	char path[FILES][4200];
	pb_backup_keys_t k;
	pb_cdc_t *cdc = malloc(sizeof(*cdc));
	pb__reader_t *r = NULL;
	static struct cuts want[FILES];
	int fd[FILES];

	(void)state;
	assert_non_null(buf);
	assert_non_null(cdc);
	keys_from(11, &k);
	pb_cdc_init(cdc, &k);
	assert_int_equal(pb__reader_new(cdc, &k, &r), 0);
	for (size_t i = 0; i < FILES; i++) {
		/* Mostly one chunk (64 KiB to 1 MiB, some whole), every fifth
		 * several (up to 6 MiB). */
		len[i] = i % 5 == 4 ? (2u << 20) + i * 150001u : 65537u + i * 40009u;
		fill(buf, len[i], (int)(i % 2), 300u + (uint32_t)i);
		snprintf(path[i], sizeof(path[i]), "%s/f%zu", dir, i);
		write_file(path[i], buf, len[i]);
		if (len[i] <= PB_CDC_WHOLE_MAX && i % 3 == 0) {
			memset(&want[i], 0, sizeof(want[i]));
			want[i].k = &k;
			want[i].n = 1;
			want[i].len[0] = len[i];
			pb__chunk_name(k.name, buf, len[i], want[i].names[0]);
		} else {
			expect(cdc, &k, path[i], &want[i]);
		}
		fd[i] = open(path[i], O_RDONLY);
		assert_true(fd[i] >= 0);
	}
	for (int round = 0; round < 3; round++) {
		assert_int_equal(pb__reader_add(r, fd[0], false), 0);
		for (size_t i = 0; i < FILES; i++) {
			struct timespec pause = { 0, 2000000 }; /* 2 ms: the one ahead is read, maybe named */

			if (i + 1 < FILES) {
				bool whole = len[i + 1] <= PB_CDC_WHOLE_MAX && (i + 1) % 3 == 0;

				assert_int_equal(lseek(fd[i + 1], 0, SEEK_SET), 0);
				assert_int_equal(pb__reader_add(r, fd[i + 1], whole), 0);
			}
			if (round > 0)
				nanosleep(&pause, NULL);
			if (round == 2 && i % 7 == 3)
				pb__reader_done(r); /* dropped, taken or not */
			else
				take(r, &k, &want[i], 0);
		}
		assert_int_equal(lseek(fd[0], 0, SEEK_SET), 0);
	}
	pb__reader_free(r);
	for (size_t i = 0; i < FILES; i++)
		close(fd[i]);
	pb_cdc_wipe(cdc);
	free(cdc);
	free(buf);
	pb_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cut_same_as_before),
		cmocka_unit_test(test_cut_more_by_blocks),
		cmocka_unit_test(test_reader_same_as_file_many),
		cmocka_unit_test(test_reader_names_queued_together),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
