/* Helpers shared by the data kinds. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/kinds/util.h"

int pb__kinds_errf(char *errbuf, size_t errcap, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (errbuf == NULL || errcap == 0)
		return rc;
	va_start(ap, fmt);
	n = vsnprintf(errbuf, errcap, fmt, ap);
	va_end(ap);
	if (n < 0)
		errbuf[0] = 0;
	return rc;
}

int pb__kinds_read_file(const char *path, size_t cap, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t have = 0;
	int fd, rc;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EISDIR;
		goto out_close;
	}
	if ((uint64_t)st.st_size > cap) {
		rc = PB_ETOOBIG;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = PB_ENOMEM;
		goto out_close;
	}
	while (have < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + have, (size_t)st.st_size - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out_free;
		}
		if (r == 0)
			break;
		have += (size_t)r;
	}
	buf[have] = 0;
	*out = buf;
	*len = have;
	close(fd);
	return 0;

out_free:
	free(buf);
out_close:
	close(fd);
	return rc;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int pb__kinds_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t outlen)
{
	if (outlen > SIZE_MAX / 2 || hexlen != outlen * 2)
		return PB_EMALFORMED;
	for (size_t i = 0; i < outlen; i++) {
		int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return PB_EMALFORMED;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void pb__kinds_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = 0;
}

bool pb__kinds_is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (hexval((unsigned char)s[i]) < 0)
			return false;
	return true;
}

bool pb__kinds_is_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

void pb__kinds_lines_init(pb__kinds_lines_t *it, const uint8_t *buf, size_t len)
{
	memset(it, 0, sizeof(*it));
	it->buf = buf;
	it->len = len;
}

bool pb__kinds_lines_next(pb__kinds_lines_t *it, const char **line, size_t *n)
{
	const uint8_t *nl;
	size_t end;

	if (it->pos >= it->len)
		return false;
	nl = memchr(it->buf + it->pos, '\n', it->len - it->pos);
	end = nl != NULL ? (size_t)(nl - it->buf) : it->len;
	*line = (const char *)it->buf + it->pos;
	*n = end - it->pos;
	it->newline = nl != NULL;
	it->crlf = false;
	if (nl != NULL && *n > 0 && (*line)[*n - 1] == '\r') {
		(*n)--;
		it->crlf = true;
	}
	it->pos = nl != NULL ? end + 1 : end;
	it->lineno++;
	return true;
}

int pb__kinds_mkdirs(const char *dir)
{
	char tmp[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return PB_ETOOBIG;
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int pb__kinds_join(char *out, size_t cap, const char *a, const char *b)
{
	int n = snprintf(out, cap, "%s/%s", a, b);

	if (n < 0 || (size_t)n >= cap)
		return PB_ETOOBIG;
	return 0;
}

const char *pb__kinds_basename(const char *path)
{
	const char *s = strrchr(path, '/');

	return s != NULL ? s + 1 : path;
}

int pb__kinds_write_atomic(const char *path, const void *data, size_t len)
{
	char tmp[4096], dir[4096];
	const char *base = pb__kinds_basename(path);
	size_t dlen = (size_t)(base - path);
	const uint8_t *p = data;
	int fd, dfd, n, rc;

	if (dlen >= sizeof(dir))
		return PB_ETOOBIG;
	if (dlen == 0) {
		dir[0] = '.';
		dir[1] = 0;
	} else {
		memcpy(dir, path, dlen);
		dir[dlen] = 0;
	}
	n = snprintf(tmp, sizeof(tmp), "%s%s%s-XXXXXX", dlen ? dir : "", PB__DEVICE_TMP_PREFIX, base);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return PB_ETOOBIG;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
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
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;

out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int pb__kinds_csv_split(const char *line, size_t n, pb__csv_row_t *row, size_t *col)
{
	size_t i = 0;

	row->n = 0;
	*col = 0;
	for (;;) {
		char *dst;
		size_t len = 0;

		if (row->n >= PB__CSV_MAX_COLS) {
			*col = row->n + 1;
			return PB_ETOOBIG;
		}
		dst = row->v[row->n];
		*col = row->n + 1;
		if (i < n && line[i] == '"') {
			i++;
			for (;;) {
				if (i >= n)
					return PB_EMALFORMED; /* unterminated quote */
				if (line[i] == '"') {
					if (i + 1 < n && line[i + 1] == '"') {
						i++;
					} else {
						i++;
						break;
					}
				}
				if (len >= PB__CSV_MAX_FIELD)
					return PB_ETOOBIG;
				dst[len++] = line[i++];
			}
			if (i < n && line[i] != ',')
				return PB_EMALFORMED;
		} else {
			while (i < n && line[i] != ',') {
				if (line[i] == '"')
					return PB_EMALFORMED;
				if (len >= PB__CSV_MAX_FIELD)
					return PB_ETOOBIG;
				dst[len++] = line[i++];
			}
		}
		dst[len] = 0;
		row->n++;
		if (i >= n)
			return 0;
		i++; /* the comma */
	}
}
