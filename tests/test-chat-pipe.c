/* A large Telegram chat is parsed on a thread of its own and its messages
 * taken in batches on the caller's (agent/kinds/item-pipe.c): the caller
 * must see exactly the items, bytes and errors of the one-thread split,
 * with any batch size (a batch boundary inside a message's bytes, one item
 * a batch), odd strings (braces, brackets and escaped quotes inside),
 * nested objects, a parse error part way, and a callback that stops.
 * Items hashed a batch at a time come with the digest of their id and
 * hash when the hasher makes digests. A small chat's messages, split
 * without the pipe by a hasher of many at once, are hashed eight at a
 * time and handed over the same. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinds-util.h"
#include "peerback/error.h"
#include "peerback/kinds.h"
#include "agent/kinds/internal.h"
#include "agent/kinds/item-pipe.h"
#include "agent/kinds/util.h"

#define REL "chats/4242/result.json"

typedef struct got_s {
	pb_buf_t log; /* every item: kind, seq, id, path, len, bytes */
	size_t n;
	size_t stop_at; /* 0: never; else cb fails at this item */
	const pb__item_hasher_t *h;
	size_t digested; /* items that came with their digest */
} got_t;

static int collect(void *arg, const pb_item_t *it)
{
	got_t *g = arg;
	uint64_t hdr[3] = {(uint64_t)it->kind, it->seq, it->len};

	if (g->stop_at != 0 && g->n + 1 == g->stop_at)
		return PB_EBUSY;
	g->n++;
	assert_int_equal(pb_buf_append(&g->log, hdr, sizeof(hdr)), 0);
	assert_int_equal(pb_buf_append(&g->log, it->id, strlen(it->id) + 1), 0);
	assert_int_equal(pb_buf_append(&g->log, it->path, strlen(it->path) + 1), 0);
	assert_non_null(it->data);
	assert_int_equal(pb_buf_append(&g->log, it->data, it->len), 0);
	/* With a hasher, each item comes with the hash of its bytes. */
	if (g->h != NULL) {
		const pb__item_x_t *x = (const pb__item_x_t *)it;
		uint8_t want[32];

		crypto_generichash(want, 32, it->data, it->len, NULL, 0);
		assert_true(x->hashed);
		assert_memory_equal(x->hash, want, 32);
		/* and with a key function, the key of its id. */
		assert_true(x->keyed);
		assert_true(x->key == g->h->key(NULL, it->id, strlen(it->id)));
		/* and with a digest function, maybe the digest of both. */
		if (x->digested) {
			assert_non_null(g->h->digest);
			assert_true(x->digest == g->h->digest(it->id, x->hash));
			g->digested++;
		}
	}
	return 0;
}

static void plain_hash(void *arg, const uint8_t *data, size_t len, uint8_t out[32])
{
	(void)arg;
	crypto_generichash(out, 32, data, len, NULL, 0);
}

static uint64_t plain_key(void *arg, const char *id, size_t len)
{
	uint64_t h = 14695981039346656037ull;

	(void)arg;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)id[i]) * 1099511628211ull;
	return h;
}

static const pb__item_hasher_t hasher = {plain_hash, NULL, plain_key, NULL, NULL, NULL, NULL};

/* The same a batch at a time (the pipe hashes a batch before handing it
 * over): each output must land on its own item. */
static size_t many_calls;

static void plain_many(void *arg, const uint8_t *const *data, const size_t *len, uint8_t *const *out, size_t n)
{
	many_calls++;
	for (size_t i = 0; i < n; i++)
		plain_hash(arg, data[i], len[i], out[i]);
}

static void plain_keys_many(void *arg, const char *const *id, const size_t *idlen, uint64_t *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		keys[i] = plain_key(arg, id[i], idlen[i]);
}

static uint64_t plain_digest(const char *id, const uint8_t hash[32])
{
	return plain_key(NULL, id, strlen(id)) ^ hash[0] ^ (uint64_t)hash[31] << 56;
}

static const pb__item_hasher_t hasher_many = {plain_hash, NULL, plain_key, plain_many, plain_keys_many, NULL,
					      plain_digest};

/* A chat of n messages whose texts hold what a naive split at a brace,
 * bracket or quote would get wrong. */
static char *make_chat(size_t n, size_t *len)
{
	pb_buf_t b = {0};
	char m[1024];

	static const char head[] = "{\"name\":\"A {[\\\"]}\",\"type\":\"personal_chat\",\"id\":4242,\"messages\":[";

	assert_int_equal(pb_buf_append(&b, head, strlen(head)), 0);
	for (size_t i = 1; i <= n; i++) {
		int k = snprintf(m, sizeof(m),
				 "%s{\"id\":%zu,\"type\":\"message\",\"date\":\"2024-01-31T14:06:10\","
				 "\"date_unixtime\":\"1706709970\",\"from\":\"Al}ice\",\"from_id\":\"user77\","
				 "\"text\":[\"x } ] \\\" { [ %zu\",{\"type\":\"bold\",\"text\":\"\\\\\\\"}\"}],"
				 "\"text_entities\":[{\"type\":\"plain\",\"text\":\"x } ] \\\" { [ %zu\"},"
				 "{\"type\":\"bold\",\"text\":\"\\\\\\\"}\"}]%s}",
				 i > 1 ? ",\n" : "\n", i, i, i,
				 i % 7 == 0 ? ",\"reactions\":[{\"type\":\"emoji\",\"count\":2,\"emoji\":\"\\u00e9\"}]" : "");
		assert_true(k > 0 && (size_t)k < sizeof(m));
		assert_int_equal(pb_buf_append(&b, m, (size_t)k), 0);
	}
	assert_int_equal(pb_buf_append(&b, "\n]}\n", 4), 0);
	*len = b.len;
	return (char *)b.data;
}

/* Splits file with the pipe (batch bytes a batch) or without (batch 0). */
static int split(const char *file, size_t batch, got_t *g, char *why, size_t cap)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	uint64_t line;
	int rc;

	assert_true(fd >= 0);
	pb__tg_pipe_min = batch > 0 ? 0 : SIZE_MAX;
	pb__tg_pipe_batch = batch;
	rc = pb__telegram_split_fd(REL, fd, g->h, collect, g);
	close(fd);
	pb__kinds_split_take(&line, why, cap);
	pb__tg_pipe_min = 4u << 20;
	pb__tg_pipe_batch = 0;
	return rc;
}

static void same_split(const char *file, size_t stop_at)
{
	static const size_t batches[] = {1, 100, 777, 4096, 1u << 20};
	got_t one = {.stop_at = stop_at, .h = stop_at % 2 ? &hasher : NULL};
	char why1[256], why2[256];
	int rc1 = split(file, 0, &one, why1, sizeof(why1));

	for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
		got_t two = {.stop_at = stop_at, .h = i % 2 ? (i % 4 == 1 ? &hasher : &hasher_many) : NULL};
		int rc2 = split(file, batches[i], &two, why2, sizeof(why2));

		assert_int_equal(rc2, rc1);
		assert_string_equal(why2, why1);
		assert_int_equal(two.n, one.n);
		assert_int_equal(two.log.len, one.log.len);
		assert_memory_equal(two.log.data, one.log.data, one.log.len);
		/* Hashed a batch at a time: every item digested there. */
		if (two.h == &hasher_many)
			assert_int_equal(two.digested, two.n);
		pb_buf_free(&two.log);
	}
	/* Without the pipe, with a hasher of many at once: the messages are
	 * held and hashed eight at a time on the thread that parses (a small
	 * chat's), and handed over as the one-thread split does. */
	{
		got_t three = {.stop_at = stop_at, .h = &hasher_many};
		int rc3;

		many_calls = 0;
		rc3 = split(file, 0, &three, why2, sizeof(why2));
		assert_int_equal(rc3, rc1);
		assert_string_equal(why2, why1);
		assert_int_equal(three.n, one.n);
		assert_int_equal(three.log.len, one.log.len);
		assert_memory_equal(three.log.data, one.log.data, one.log.len);
		if (one.n > 9)
			assert_true(many_calls > 0);
		pb_buf_free(&three.log);
	}
	pb_buf_free(&one.log);
}

static void test_pipe_same_items(void **state)
{
	char *dir = pb_test_tmpdir("chat-pipe"), path[4096];
	size_t len;
	char *chat = make_chat(3000, &len);
	got_t g = {0};
	char why[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/result.json", dir);
	assert_int_equal(pb_test_write_file(path, chat, len), 0);
	many_calls = 0;
	same_split(path, 0);
	/* A batch at a time where the hasher can. */
	assert_true(many_calls > 0);
	/* The messages are all there: the frame and 3000 messages, hashed
	 * on the parsing thread. */
	g.h = &hasher;
	assert_int_equal(split(path, 333, &g, why, sizeof(why)), 0);
	assert_int_equal(g.n, 3001);
	pb_buf_free(&g.log);
	/* The caller stops at the first item, one inside, and the last. */
	same_split(path, 1);
	same_split(path, 1500);
	same_split(path, 3001);
	free(chat);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_pipe_parse_error(void **state)
{
	char *dir = pb_test_tmpdir("chat-pipe-err"), path[4096];
	size_t len;
	char *chat = make_chat(2000, &len);
	got_t g = {0};
	char why[256];
	char *at;

	(void)state;
	snprintf(path, sizeof(path), "%s/result.json", dir);
	/* Message 1200's id goes backwards: an error part way. */
	at = strstr(chat, "{\"id\":1200,");
	assert_non_null(at);
	memcpy(at, "{\"id\":  12,", 11);
	assert_int_equal(pb_test_write_file(path, chat, len), 0);
	same_split(path, 0);
	assert_int_not_equal(split(path, 500, &g, why, sizeof(why)), 0);
	assert_int_equal(g.n, 1200); /* the frame and messages 1-1199 */
	assert_true(why[0] != 0);
	pb_buf_free(&g.log);
	/* Cut short inside a message. */
	assert_int_equal(pb_test_write_file(path, chat, len / 2), 0);
	same_split(path, 0);
	free(chat);
	pb_test_rmtree(dir);
	free(dir);
}

/* The pipe by itself: an item without data and an empty one. */
struct mk {
	int rc;
};

static int make_odd(void *arg, pb__ipipe_t *p)
{
	struct mk *m = arg;
	pb__item_x_t x;
	int rc;

	memset(&x, 0, sizeof(x));
	x.it.kind = PB_KIND_CHAT;
	x.it.id = "a";
	x.it.path = "p";
	x.it.file = "/x";
	x.it.size = 9;
	if ((rc = pb__ipipe_put(p, &x.it)) != 0)
		return rc;
	x.hashed = true;
	memset(x.hash, 7, 32);
	x.it.id = "b";
	x.it.file = NULL;
	x.it.data = (const uint8_t *)"";
	x.it.len = 0;
	if ((rc = pb__ipipe_put(p, &x.it)) != 0)
		return rc;
	return m->rc;
}

static int check_odd(void *arg, const pb_item_t *it)
{
	size_t *n = arg;

	if (*n == 0) {
		assert_string_equal(it->id, "a");
		assert_false(((const pb__item_x_t *)it)->hashed);
		assert_null(it->data);
		assert_string_equal(it->file, "/x");
		assert_int_equal(it->size, 9);
	} else {
		assert_string_equal(it->id, "b");
		assert_true(((const pb__item_x_t *)it)->hashed);
		assert_int_equal(((const pb__item_x_t *)it)->hash[31], 7);
		assert_non_null(it->data);
		assert_int_equal(it->len, 0);
	}
	(*n)++;
	return 0;
}

static void test_pipe_odd_items(void **state)
{
	struct mk m = {0};
	size_t n = 0;

	(void)state;
	assert_int_equal(pb__ipipe_run(make_odd, &m, check_odd, &n, 1), 0);
	assert_int_equal(n, 2);
	m.rc = PB_EMALFORMED;
	n = 0;
	assert_int_equal(pb__ipipe_run(make_odd, &m, check_odd, &n, 0), PB_EMALFORMED);
	assert_int_equal(n, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipe_same_items),
		cmocka_unit_test(test_pipe_parse_error),
		cmocka_unit_test(test_pipe_odd_items),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
