/* File helpers shared by the agent. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/util/fsutil.h"

int pb__path_join(char *out, size_t cap, const char *a, const char *b)
{
	int n = snprintf(out, cap, "%s/%s", a, b);

	return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
}

ssize_t pb__read_full(int fd, uint8_t *buf, size_t want)
{
	size_t got = 0;

	while (got < want) {
		ssize_t n = read(fd, buf + got, want - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int pb__fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

int pb__write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[4096], dir[4096];
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	size_t dlen = (size_t)(base - path);
	const uint8_t *p = data;
	int fd, rc = 0, n;

	if (dlen >= sizeof(dir))
		return PB_ETOOBIG;
	if (dlen == 0) {
		dir[0] = '.', dir[1] = 0;
	} else {
		memcpy(dir, path, dlen);
		dir[dlen] = 0;
	}
	/* The temporary name starts with PB_TMP_PREFIX, which directory walks
	 * (the device scanner) pass over: a crash leaves no half file that
	 * looks like data. */
	n = snprintf(tmp, sizeof(tmp), "%s%s%s-XXXXXX", dlen ? dir : "", PB_TMP_PREFIX, base);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return PB_ETOOBIG;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) != 0) {
		rc = -errno;
		goto out_unlink;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out_unlink;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0) {
		rc = -errno;
		goto out_unlink;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		goto out_unlink;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = -errno;
		goto out_unlink;
	}
	return pb__fsync_dir(dir);

out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc == -ENOSPC ? PB_ENOSPACE : rc;
}

int pb__read_each(int fd, uint8_t *buf, size_t cap, int (*cb)(void *arg, const uint8_t *p, size_t n), void *arg)
{
	for (;;) {
		ssize_t r = read(fd, buf, cap);
		int rc;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return 0;
		if ((rc = cb(arg, buf, (size_t)r)) != 0)
			return rc;
	}
}

int pb__read_fd(int fd, size_t cap, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t have = 0;

	*out = NULL;
	*len = 0;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EISDIR;
	if ((uint64_t)st.st_size > cap)
		return PB_ETOOBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		return PB_ENOMEM;
	while (have < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + have, (size_t)st.st_size - have);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int rc = -errno;

			free(buf);
			return rc;
		}
		if (r == 0)
			break;
		have += (size_t)r;
	}
	buf[have] = 0;
	*out = buf;
	*len = have;
	return 0;
}

int pb__read_file(const char *path, size_t cap, uint8_t **out, size_t *len)
{
	int fd, rc;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = pb__read_fd(fd, cap, out, len);
	close(fd);
	return rc;
}

int pb__mkdirs(const char *path, unsigned mode)
{
	char tmp[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return PB_EINVAL;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int pb__private_db(const char *path, int create)
{
	static const char *const side[] = { "", "-wal", "-shm", "-journal" };
	char p[4096];

	for (size_t i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
		struct stat st;
		int n = snprintf(p, sizeof(p), "%s%s", path, side[i]);
		int fd, flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;

		if (n < 0 || (size_t)n >= sizeof(p))
			return PB_ETOOBIG;
		if (i == 0 && create)
			flags |= O_CREAT;
		fd = open(p, flags, 0600);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		if (fstat(fd, &st) != 0 || ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) != 0)) {
			int rc = -errno;

			close(fd);
			return rc;
		}
		close(fd);
	}
	return 0;
}

int pb__private_dir(const char *path, unsigned *was)
{
	struct stat st;
	int rc;

	*was = 0;
	if (stat(path, &st) != 0) {
		if (errno != ENOENT)
			return -errno;
		if ((rc = pb__mkdirs(path, 0700)) != 0)
			return rc;
		return chmod(path, 0700) != 0 ? -errno : 0;
	}
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if ((st.st_mode & 077) == 0)
		return 0;
	if (st.st_uid != geteuid())
		return -EPERM;
	if (chmod(path, 0700) != 0)
		return -errno;
	*was = (unsigned)st.st_mode & 07777;
	return 0;
}

int pb__b64url_encode(const uint8_t *bin, size_t len, char *out, size_t cap)
{
	if (cap < sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING))
		return PB_ETOOBIG;
	sodium_bin2base64(out, cap, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return 0;
}

int pb__b64url_decode(const char *text, uint8_t *out, size_t want)
{
	uint8_t buf[256];
	size_t n;

	if (want > sizeof(buf))
		return PB_EINVAL;
	if (sodium_base642bin(buf, sizeof(buf), text, strlen(text), NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return PB_EURI_BASE64;
	if (n != want) {
		sodium_memzero(buf, sizeof(buf));
		return PB_EURI_KEYLEN;
	}
	memcpy(out, buf, want);
	sodium_memzero(buf, sizeof(buf));
	return 0;
}

void pb__hex(const uint8_t *bin, size_t len, char *out)
{
	sodium_bin2hex(out, len * 2 + 1, bin, len);
}

uint64_t pb__now(void)
{
	return (uint64_t)time(NULL);
}

/* --- Under a directory, without following links ------------------------------ */

#include <dirent.h>

int pb__dir_open_at(int dirfd, const char *name, bool create, unsigned mode, bool *created)
{
	struct stat st;
	int fd;

	if (created != NULL)
		*created = false;
	for (int tries = 0; tries < 2; tries++) {
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno == ELOOP || errno == ENOTDIR) {
			/* O_NOFOLLOW on a link: ELOOP (or ENOTDIR with
			 * O_DIRECTORY on some systems); tell a link from a file. */
			if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
				return PB_EDATA_LINK;
			return -ENOTDIR;
		}
		if (errno != ENOENT || !create)
			return -errno;
		if (mkdirat(dirfd, name, (mode_t)mode) == 0) {
			if (created != NULL)
				*created = true;
		} else if (errno != EEXIST) {
			return -errno;
		}
	}
	return -ENOENT;
}

int pb__read_file_at(int dirfd, const char *name, size_t cap, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t have = 0;
	int fd, rc = 0;

	*out = NULL;
	*len = 0;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP)
			return PB_EDATA_LINK;
		return -errno;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = fstat(fd, &st) != 0 ? -errno : -EISDIR;
		close(fd);
		return rc;
	}
	if ((uint64_t)st.st_size > cap) {
		close(fd);
		return PB_ETOOBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return PB_ENOMEM;
	}
	while (have < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + have, (size_t)st.st_size - have);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		have += (size_t)r;
	}
	close(fd);
	if (rc != 0) {
		sodium_memzero(buf, (size_t)st.st_size);
		free(buf);
		return rc;
	}
	buf[have] = 0;
	*out = buf;
	*len = have;
	return 0;
}

/* Removes what is under dirfd, depth first; links are removed, never
 * followed. */
static void remove_under(int dirfd, int depth)
{
	DIR *d;
	struct dirent *e;
	int fd = dup(dirfd);

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		int sub;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd, e->d_name, 0) == 0)
			continue;
		if (depth >= 64)
			continue;
		sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		remove_under(sub, depth + 1);
		close(sub);
		(void)unlinkat(dirfd, e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

void pb__remove_tree(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		(void)unlink(path);
		return;
	}
	remove_under(fd, 0);
	close(fd);
	(void)rmdir(path);
}

int pb__open_parent_at(int root, const char *rel, bool create, unsigned mode, int (*made)(void *arg, size_t len),
		       void *arg, size_t *bad_len, int *out)
{
	char comp[256];
	const char *p = rel, *slash;
	int fd, rc;

	*out = -1;
	if ((fd = dup(root)) < 0)
		return -errno;
	while ((slash = strchr(p, '/')) != NULL) {
		size_t c = (size_t)(slash - p);
		bool created = false;
		int next;

		if (c == 0 || c >= sizeof(comp)) {
			close(fd);
			return PB_EINVAL;
		}
		memcpy(comp, p, c);
		comp[c] = 0;
		next = pb__dir_open_at(fd, comp, create, mode, &created);
		close(fd);
		if (next == PB_EDATA_LINK && bad_len != NULL)
			*bad_len = (size_t)(slash - rel);
		if (next < 0)
			return next;
		fd = next;
		if (created && made != NULL && (rc = made(arg, (size_t)(slash - rel))) != 0) {
			close(fd);
			return rc;
		}
		p = slash + 1;
	}
	*out = fd;
	return 0;
}
