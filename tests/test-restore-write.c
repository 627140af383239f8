/* A restore's write queue (agent/backup/restore-write.c): writes, the
 * closing of their file and calls queued among them run on its thread in
 * the order given, so that what takes a file (the folder's writer moving
 * it into place) finds every byte written; after a failure later writes
 * are skipped and later calls only free what they hold, and the failure
 * is reported (pb__wq_failed without waiting, pb__wq_wait). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "testutil.h"
#include "agent/backup/engine-int.h"

#define NCALLS 40
#define PIECE 65536
#define PIECES 48

/* What the calls saw, in the order they ran. */
struct seen {
	char path[4200];
	size_t size[NCALLS]; /* the file's size when call i ran */
	int order[NCALLS];
	int nran, nskipped, nfreed;
};

struct call {
	struct seen *s;
	int i;
	int fail; /* returned when not skipped */
};

static int call_fn(void *arg, bool skip)
{
	struct call *c = arg;
	struct stat st;
	int rc = 0;

	if (skip) {
		c->s->nskipped++;
	} else {
		c->s->order[c->s->nran++] = c->i;
		c->s->size[c->i] = stat(c->s->path, &st) == 0 ? (size_t)st.st_size : 0;
		rc = c->fail;
	}
	c->s->nfreed++;
	free(c);
	return rc;
}

static void queue_call(pb__wq_t *q, struct seen *s, int i, int fail)
{
	struct call *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->s = s;
	c->i = i;
	c->fail = fail;
	pb__wq_call(q, call_fn, c, 100);
}

static uint8_t *piece(size_t k)
{
	uint8_t *b = malloc(PIECE);

	assert_non_null(b);
	memset(b, (int)('a' + k % 26), PIECE);
	return b;
}

/* Writes, the close and calls in one order; a call behind a file's close
 * sees the whole file. */
static void test_order(void **state)
{
	struct seen s;
	pb__wq_t *q;
	int fd;

	(void)state;
	memset(&s, 0, sizeof(s));
	snprintf(s.path, sizeof(s.path), "%s/wq-order.bin", pb_test_dir);
	fd = open(s.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pb__wq_new(&q), 0);
	for (size_t k = 0; k < PIECES; k++) {
		pb__wq_push(q, fd, piece(k), PIECE, (uint64_t)k * PIECE);
		if (k % 4 == 0)
			queue_call(q, &s, (int)(k / 4), 0);
	}
	pb__wq_close(q, fd);
	queue_call(q, &s, PIECES / 4, 0);
	assert_int_equal(pb__wq_wait(q), 0);
	assert_int_equal(pb__wq_failed(q), 0);
	pb__wq_free(q);
	assert_int_equal(s.nran, PIECES / 4 + 1);
	for (int i = 0; i < s.nran; i++) {
		assert_int_equal(s.order[i], i);
		/* Call i was queued behind 4 * i + 1 writes (the last behind all). */
		if (i < PIECES / 4)
			assert_true(s.size[i] >= ((size_t)4 * i + 1) * PIECE);
	}
	assert_int_equal(s.size[PIECES / 4], (size_t)PIECES * PIECE);
	{
		uint8_t *b = malloc(PIECE);
		int rfd = open(s.path, O_RDONLY | O_CLOEXEC);

		assert_non_null(b);
		assert_true(rfd >= 0);
		for (size_t k = 0; k < PIECES; k++) {
			assert_int_equal(pread(rfd, b, PIECE, (off_t)(k * PIECE)), PIECE);
			assert_int_equal(b[0], 'a' + k % 26);
			assert_int_equal(b[PIECE - 1], 'a' + k % 26);
		}
		close(rfd);
		free(b);
	}
	unlink(s.path);
}

/* A call that fails: the calls after it are skipped (and free what they
 * hold), writes after it are not made, the file is still closed, and the
 * failure is reported. */
static void test_failure(void **state)
{
	struct seen s;
	struct stat st;
	pb__wq_t *q;
	int fd, rc = PB_ENOSPACE;

	(void)state;
	memset(&s, 0, sizeof(s));
	snprintf(s.path, sizeof(s.path), "%s/wq-fail.bin", pb_test_dir);
	fd = open(s.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pb__wq_new(&q), 0);
	queue_call(q, &s, 0, 0);
	pb__wq_push(q, fd, piece(0), PIECE, 0);
	queue_call(q, &s, 1, rc);
	for (int i = 2; i < NCALLS; i++) {
		pb__wq_push(q, fd, piece((size_t)i), PIECE, (uint64_t)i * PIECE);
		queue_call(q, &s, i, 0);
	}
	pb__wq_close(q, fd);
	assert_int_equal(pb__wq_wait(q), rc);
	pb__wq_free(q);
	assert_int_equal(s.nran, 2);
	assert_int_equal(s.nskipped, NCALLS - 2);
	assert_int_equal(s.nfreed, NCALLS);
	assert_int_equal(stat(s.path, &st), 0);
	assert_int_equal((size_t)st.st_size, (size_t)PIECE);
	/* Closed on the queue's thread: the descriptor is free again. */
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	unlink(s.path);
}

/* A large file in pieces of any length (the direct writes' buffers are
 * filled across their ends, the last one padded and the file cut back):
 * a call in the middle sees every byte queued before it, a call behind
 * the close the whole file, and the bytes are the ones given. A second
 * file after it in the same queue, and one whose writes do not follow
 * each other. */
static void check_file(const char *path, const uint8_t *want, size_t len)
{
	uint8_t *b = malloc(len + 1);
	int rfd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(b);
	assert_true(rfd >= 0);
	assert_int_equal(pread(rfd, b, len + 1, 0), (ssize_t)len);
	assert_memory_equal(b, want, len);
	close(rfd);
	free(b);
}

static void test_direct(void **state)
{
	const size_t total = 7 * 1024 * 1024 + 1234;
	uint8_t *want = malloc(total);
	struct seen s;
	char path2[4300];
	pb__wq_t *q;
	size_t off = 0;
	int fd, fd2, calls = 0;

	(void)state;
	assert_non_null(want);
	randombytes_buf(want, total);
	memset(&s, 0, sizeof(s));
	snprintf(s.path, sizeof(s.path), "%s/wq-direct.bin", pb_test_dir);
	snprintf(path2, sizeof(path2), "%s/wq-direct2.bin", pb_test_dir);
	fd = open(s.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pb__wq_new(&q), 0);
	while (off < total) {
		size_t n = 1 + randombytes_uniform(700 * 1024);
		uint8_t *b;

		if (n > total - off)
			n = total - off;
		b = malloc(n);
		assert_non_null(b);
		memcpy(b, want + off, n);
		pb__wq_push(q, fd, b, n, off);
		off += n;
		if (calls < 3 && off > (size_t)(calls + 1) * 2 * 1024 * 1024) {
			/* The size seen must be all of it so far. */
			s.size[calls] = 0;
			queue_call(q, &s, calls, 0);
			assert_int_equal(pb__wq_wait(q), 0);
			assert_int_equal(s.size[calls], off);
			calls++;
		}
	}
	pb__wq_close(q, fd);
	queue_call(q, &s, calls, 0);
	/* The next file: written from its start, then at a place that does
	 * not follow (through the page cache from there). */
	fd2 = open(path2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd2 >= 0);
	{
		uint8_t *a = malloc(5000), *b = malloc(3000);

		assert_non_null(a);
		assert_non_null(b);
		memcpy(a, want, 5000);
		memcpy(b, want + 6000, 3000);
		pb__wq_push(q, fd2, a, 5000, 0);
		pb__wq_push(q, fd2, b, 3000, 6000);
	}
	pb__wq_close(q, fd2);
	assert_int_equal(pb__wq_wait(q), 0);
	pb__wq_free(q);
	assert_int_equal(s.nran, calls + 1);
	assert_int_equal(s.size[calls], total);
	check_file(s.path, want, total);
	{
		uint8_t *w2 = calloc(1, 9000);

		assert_non_null(w2);
		memcpy(w2, want, 5000);
		memcpy(w2 + 6000, want + 6000, 3000);
		check_file(path2, w2, 9000);
		free(w2);
	}
	unlink(s.path);
	unlink(path2);
	free(want);
}

/* pb__wq_failed tells a failure without waiting for the queue to drain,
 * and does not clear it. */
static void test_failed_seen(void **state)
{
	struct seen s;
	pb__wq_t *q;

	(void)state;
	memset(&s, 0, sizeof(s));
	snprintf(s.path, sizeof(s.path), "%s/wq-none", pb_test_dir);
	assert_int_equal(pb__wq_new(&q), 0);
	queue_call(q, &s, 0, -EIO);
	while (pb__wq_failed(q) == 0)
		usleep(1000);
	assert_int_equal(pb__wq_failed(q), -EIO);
	assert_int_equal(pb__wq_wait(q), -EIO);
	pb__wq_free(q);
	assert_int_equal(s.nfreed, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_failure),
		cmocka_unit_test(test_failed_seen),
		cmocka_unit_test(test_direct),
	};

	return cmocka_run_group_tests(tests, pb_test_dir_setup, pb_test_dir_teardown);
}
