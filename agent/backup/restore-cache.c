/* Resuming a restore: a restore keeps every chunk it fetched, sealed as
 * the host sent it, in HOME/restore-cache under its name until the restore
 * completes. Run again after an interruption (or a cancel), it opens those
 * chunks from there instead of fetching them again; a cached chunk is
 * opened and checked exactly like a fetched one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/util/fsutil.h"

#define CACHE_DIR "restore-cache"

static int cache_path(const char *home, const uint8_t name[PB_STORE_NAME_LEN], char *out, size_t cap)
{
	char hex[2 * PB_STORE_NAME_LEN + 1];
	int n;

	sodium_bin2hex(hex, sizeof(hex), name, PB_STORE_NAME_LEN);
	n = snprintf(out, cap, "%s/%s/%s", home, CACHE_DIR, hex);
	return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
}

bool pb__cache_has(const char *home, const uint8_t name[PB_STORE_NAME_LEN])
{
	char path[4200];

	return cache_path(home, name, path, sizeof(path)) == 0 && access(path, R_OK) == 0;
}

/* Written beside, then renamed: a run killed meanwhile leaves no part
 * that could pass for a chunk. Not synced: a lost file costs a refetch. */
void pb__cache_keep(const char *home, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	char path[4200], tmp[4300], dir[4200];
	int fd, n;

	if (cache_path(home, name, path, sizeof(path)) != 0)
		return;
	if (pb__path_join(dir, sizeof(dir), home, CACHE_DIR) != 0 || pb__mkdirs(dir, 0700) != 0)
		return;
	n = snprintf(tmp, sizeof(tmp), "%s.part", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, ct + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			unlink(tmp);
			return;
		}
		off += (size_t)w;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0)
		unlink(tmp);
}

int pb__cache_read(const char *home, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **ct, size_t *len)
{
	char path[4200];
	int rc;

	if ((rc = cache_path(home, name, path, sizeof(path))) != 0)
		return rc;
	return pb__read_file(path, PB_STORE_CT_MAX, ct, len);
}

void pb__cache_forget(const char *home, const uint8_t name[PB_STORE_NAME_LEN])
{
	char path[4200];

	if (cache_path(home, name, path, sizeof(path)) == 0)
		unlink(path);
}

void pb__cache_drop(const char *home)
{
	char dir[4200], path[4500];
	DIR *d;
	struct dirent *e;

	if (pb__path_join(dir, sizeof(dir), home, CACHE_DIR) != 0 || (d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		int n;

		if (e->d_name[0] == '.')
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (n > 0 && (size_t)n < sizeof(path))
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}
