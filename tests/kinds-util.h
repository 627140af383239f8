/* Helpers for the data-kind tests: a digest of a whole directory tree (to
 * assert that a failed import left it unchanged) and small file helpers. */
#ifndef PB_TEST_KINDS_UTIL_H
#define PB_TEST_KINDS_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "testutil.h"

static void kt_digest_walk(crypto_generichash_state *st, const char *root, const char *rel)
{
	char path[4096];
	struct dirent **list;
	int n;

	snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
	n = scandir(path, &list, NULL, alphasort);
	if (n < 0)
		return;
	for (int i = 0; i < n; i++) {
		char child[4096], full[4096];
		struct stat sb;

		if (strcmp(list[i]->d_name, ".") != 0 && strcmp(list[i]->d_name, "..") != 0) {
			snprintf(child, sizeof(child), "%s%s%s", rel, rel[0] ? "/" : "", list[i]->d_name);
			snprintf(full, sizeof(full), "%s/%s", root, child);
			crypto_generichash_update(st, (const unsigned char *)child, strlen(child) + 1);
			if (lstat(full, &sb) == 0 && S_ISDIR(sb.st_mode)) {
				kt_digest_walk(st, root, child);
			} else {
				size_t len = 0;
				uint8_t *data = pb_test_read_file(full, &len);
				if (data != NULL)
					crypto_generichash_update(st, data, len);
				free(data);
			}
		}
		free(list[i]);
	}
	free(list);
}

/* A digest of every path and file content below dir. */
static inline void kt_dir_digest(const char *dir, uint8_t out[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	kt_digest_walk(&st, dir, "");
	crypto_generichash_final(&st, out, 32);
}

/* "dir/rel" in a static buffer rotating among four. */
static inline const char *kt_path(const char *dir, const char *rel)
{
	static char bufs[4][4096];
	static int k;
	char *p = bufs[k++ & 3];

	snprintf(p, 4096, "%s/%s", dir, rel);
	return p;
}

static inline void kt_write(const char *path, const char *text)
{
	assert_int_equal(pb_test_write_file(path, text, strlen(text)), 0);
}

static inline void kt_mkdir(const char *path)
{
	assert_true(mkdir(path, 0700) == 0);
}

/* Asserts that file holds exactly want (len bytes). */
static inline void kt_assert_file(const char *path, const void *want, size_t len)
{
	size_t n = 0;
	uint8_t *data = pb_test_read_file(path, &n);

	assert_non_null(data);
	assert_int_equal(n, len);
	assert_memory_equal(data, want, len);
	free(data);
}

#endif
