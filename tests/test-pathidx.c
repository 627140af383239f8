/* The device writer's path index (agent/util/pathidx.c) against a search
 * through every entry, the way the writer looked files up before: the
 * latest position of each path, through growth, replaced paths, paths
 * that share their beginning or differ in one byte, and clears. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "testutil.h"
#include "agent/util/pathidx.h"

struct arr {
	char **v;
	size_t n, cap;
};

static const char *arr_key(const void *arg, size_t i)
{
	return ((const struct arr *)arg)->v[i];
}

/* The latest position of s, searched from the end. */
static size_t linear(const struct arr *a, const char *s)
{
	for (size_t i = a->n; i > 0; i--)
		if (strcmp(a->v[i - 1], s) == 0)
			return i - 1;
	return SIZE_MAX;
}

static void arr_add(struct arr *a, pb__pathidx_t *x, const char *s)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = realloc(a->v, a->cap * sizeof(*a->v));
		assert_non_null(a->v);
	}
	a->v[a->n] = strdup(s);
	assert_non_null(a->v[a->n]);
	assert_int_equal(pb__pathidx_put(x, s, a->n, arr_key, a), 0);
	a->n++;
}

static void arr_clear(struct arr *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

static void check_all(const struct arr *a, const pb__pathidx_t *x, unsigned span)
{
	char s[64];

	for (unsigned k = 0; k < span; k++) {
		snprintf(s, sizeof(s), "chats/1000%04u/photos/photo_%u.jpg", k / 100, k);
		assert_int_equal(pb__pathidx_find(x, s, arr_key, a), linear(a, s));
	}
	assert_int_equal(pb__pathidx_find(x, "", arr_key, a), linear(a, ""));
	assert_int_equal(pb__pathidx_find(x, "chats/10000000/photos/photo_0.jpgx", arr_key, a), SIZE_MAX);
}

static void test_same_as_search(void **state)
{
	struct arr a = { 0 };
	pb__pathidx_t x = { 0 };
	char s[64];

	(void)state;
	assert_int_equal(pb__pathidx_find(&x, "a", arr_key, &a), SIZE_MAX);
	for (int round = 0; round < 3; round++) {
		/* 5,000 adds over 3,000 paths: many added again (the
		 * latest wins), the index grown from empty several times. */
		for (unsigned i = 0; i < 5000; i++) {
			unsigned k = randombytes_uniform(3000);

			snprintf(s, sizeof(s), "chats/1000%04u/photos/photo_%u.jpg", k / 100, k);
			arr_add(&a, &x, s);
			if (i % 997 == 0)
				check_all(&a, &x, 3100);
		}
		arr_add(&a, &x, "");
		check_all(&a, &x, 3100);
		pb__pathidx_clear(&x);
		arr_clear(&a);
		assert_int_equal(pb__pathidx_find(&x, "chats/10000000/photos/photo_0.jpg", arr_key, &a), SIZE_MAX);
	}
	/* After a clear, positions start again from 0. */
	arr_add(&a, &x, "x");
	assert_int_equal(pb__pathidx_find(&x, "x", arr_key, &a), 0);
	assert_int_equal(pb__pathidx_put(&x, "x", SIZE_MAX, arr_key, &a), PB_EINVAL);
	arr_clear(&a);
	free(a.v);
	pb__pathidx_free(&x);
	pb__pathidx_free(&x); /* twice: harmless */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_as_search),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
