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
#include "agent/util/fsutil.h"

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
	return pb__read_file(path, cap, out, len);
}

int pb__kinds_hexval(int c)
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
		int hi = pb__kinds_hexval((unsigned char)hex[2 * i]), lo = pb__kinds_hexval((unsigned char)hex[2 * i + 1]);
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
		if (pb__kinds_hexval((unsigned char)s[i]) < 0)
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
	return pb__mkdirs(dir, 0700);
}

int pb__kinds_join(char *out, size_t cap, const char *a, const char *b)
{
	return pb__path_join(out, cap, a, b);
}

const char *pb__kinds_basename(const char *path)
{
	const char *s = strrchr(path, '/');

	return s != NULL ? s + 1 : path;
}

int pb__kinds_write_atomic(const char *path, const void *data, size_t len)
{
	int rc = pb__write_file_atomic(path, data, len, 0600);

	return rc == PB_ENOSPACE ? -ENOSPC : rc;
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

/* Why the last split on this thread failed, for a scan that skips the file
 * and names it. */
static _Thread_local struct {
	uint64_t line;
	char why[256];
} split_diag;

void pb__kinds_split_why(uint64_t line, const char *why)
{
	split_diag.line = line;
	snprintf(split_diag.why, sizeof(split_diag.why), "%s", why != NULL ? why : "");
}

void pb__kinds_split_take(uint64_t *line, char *why, size_t cap)
{
	*line = split_diag.line;
	if (cap > 0)
		snprintf(why, cap, "%s", split_diag.why);
	split_diag.line = 0;
	split_diag.why[0] = 0;
}
