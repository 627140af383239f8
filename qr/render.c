/* QR code rendering: the module matrix (libqrencode), UTF-8 half blocks for
 * terminals, SVG and PNG (libpng), and atomic writes of the image files.
 *
 * libqrencode is opened with dlopen when the first code is made: linked, it
 * (and the libpthread it needs) would be loaded at the start of every
 * command, some 0.1 ms of a restore of one message that never draws a code.
 *
 * Every rendering includes the quiet zone of PB_QR_QUIET_ZONE light modules
 * that scanners need around the code. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>
#include <qrencode.h>
#include <sodium.h>

#include "peerback/error.h"
#include "peerback/qr.h"

#ifndef PB_QRENCODE_SONAME
#define PB_QRENCODE_SONAME "libqrencode.so.4"
#endif

static struct {
	QRcode *(*encode_data)(int, const unsigned char *, int, QRecLevel);
	void (*free)(QRcode *);
} qre;
static pthread_once_t qre_once = PTHREAD_ONCE_INIT;
static int qre_ok;

static void qre_load(void)
{
	void *h = dlopen(PB_QRENCODE_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (h == NULL)
		return;
	*(void **)&qre.encode_data = dlsym(h, "QRcode_encodeData");
	*(void **)&qre.free = dlsym(h, "QRcode_free");
	qre_ok = qre.encode_data != NULL && qre.free != NULL;
}

/* A growable output buffer, owned by the rendering that fills it. */
struct grow_buf {
	uint8_t *data;
	size_t len, cap;
};

static int grow_append(struct grow_buf *b, const void *data, size_t len)
{
	if (len > SIZE_MAX - b->len - 1)
		return PB_ENOMEM;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap != 0 ? b->cap : 1024;
		uint8_t *p;

		while (cap < b->len + len + 1)
			cap = cap > SIZE_MAX / 2 ? b->len + len + 1 : cap * 2;
		p = malloc(cap);
		if (p == NULL)
			return PB_ENOMEM;
		if (b->data != NULL) {
			memcpy(p, b->data, b->len);
			sodium_memzero(b->data, b->cap);
		}
		free(b->data);
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = 0;
	return 0;
}

static int grow_printf(struct grow_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int grow_printf(struct grow_buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return PB_EINVAL;
	return grow_append(b, tmp, (size_t)n);
}

/* Frees the buffer, wiping it first: renderings spell out the secret. */
static void grow_free(struct grow_buf *b)
{
	if (b->data != NULL)
		sodium_memzero(b->data, b->cap);
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Hands the buffer's bytes to the caller (never NULL on success). */
static void grow_release(struct grow_buf *b, void **out, size_t *len)
{
	*out = b->data;
	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
}

int pb_qr_encode(const char *text, pb_qr_matrix_t *out)
{
	QRcode *qr;
	size_t n, cells;

	if (out == NULL)
		return PB_EINVAL;
	out->size = 0;
	out->modules = NULL;
	if (text == NULL)
		return PB_EINVAL;
	n = strlen(text);
	if (n == 0 || n > PB_URI_MAX_LEN)
		return PB_EQR_ENCODE;
	if (pthread_once(&qre_once, qre_load) != 0 || !qre_ok)
		return PB_EQR_ENCODE;
	errno = 0;
	qr = qre.encode_data((int)n, (const unsigned char *)text, 0, QR_ECLEVEL_M);
	if (qr == NULL)
		return errno == ENOMEM ? PB_ENOMEM : PB_EQR_ENCODE;
	if (qr->width <= 0) {
		qre.free(qr);
		return PB_EQR_ENCODE;
	}
	cells = (size_t)qr->width * (size_t)qr->width;
	out->modules = malloc(cells);
	if (out->modules == NULL) {
		qre.free(qr);
		return PB_ENOMEM;
	}
	out->size = (unsigned)qr->width;
	for (size_t i = 0; i < cells; i++)
		out->modules[i] = qr->data[i] & 1;
	qre.free(qr);
	return 0;
}

void pb_qr_matrix_free(pb_qr_matrix_t *m)
{
	if (m == NULL)
		return;
	/* The modules spell out the pairing secret. */
	if (m->modules != NULL)
		sodium_memzero(m->modules, (size_t)m->size * m->size);
	free(m->modules);
	m->modules = NULL;
	m->size = 0;
}

/* The module at (x, y) of the code with its quiet zone; outside is light. */
static bool dark_at(const pb_qr_matrix_t *m, unsigned x, unsigned y)
{
	if (x < PB_QR_QUIET_ZONE || y < PB_QR_QUIET_ZONE)
		return false;
	x -= PB_QR_QUIET_ZONE;
	y -= PB_QR_QUIET_ZONE;
	if (x >= m->size || y >= m->size)
		return false;
	return m->modules[(size_t)y * m->size + x] != 0;
}

int pb_qr_render_terminal(const char *text, unsigned flags, char **out, size_t *len)
{
	static const char *const cells[4] = { " ", "\xe2\x96\x80", "\xe2\x96\x84", "\xe2\x96\x88" };
	const bool draw_dark = (flags & PB_QR_TERM_DARK_BLOCKS) != 0;
	const char *colour = draw_dark ? "\033[30;107m" : "\033[97;40m";
	pb_qr_matrix_t m;
	struct grow_buf b = { NULL, 0, 0 };
	unsigned side;
	int rc;

	if (out == NULL)
		return PB_EINVAL;
	*out = NULL;
	rc = pb_qr_encode(text, &m);
	if (rc != 0)
		return rc;
	side = m.size + 2 * PB_QR_QUIET_ZONE;
	for (unsigned y = 0; y < side && rc == 0; y += 2) {
		if (flags & PB_QR_TERM_ANSI)
			rc = grow_append(&b, colour, strlen(colour));
		for (unsigned x = 0; x < side && rc == 0; x++) {
			bool top = dark_at(&m, x, y) == draw_dark;
			bool bottom = (y + 1 < side ? dark_at(&m, x, y + 1) : false) == draw_dark;
			const char *cell = cells[(top ? 1 : 0) | (bottom ? 2 : 0)];

			rc = grow_append(&b, cell, strlen(cell));
		}
		if (rc == 0 && (flags & PB_QR_TERM_ANSI))
			rc = grow_append(&b, "\033[0m", 4);
		if (rc == 0)
			rc = grow_append(&b, "\n", 1);
	}
	pb_qr_matrix_free(&m);
	if (rc != 0) {
		grow_free(&b);
		return rc;
	}
	grow_release(&b, (void **)out, len);
	return 0;
}

int pb_qr_render_svg(const char *text, char **out, size_t *len)
{
	pb_qr_matrix_t m;
	struct grow_buf b = { NULL, 0, 0 };
	unsigned side;
	int rc;

	if (out == NULL)
		return PB_EINVAL;
	*out = NULL;
	rc = pb_qr_encode(text, &m);
	if (rc != 0)
		return rc;
	side = m.size + 2 * PB_QR_QUIET_ZONE;
	rc = grow_printf(&b,
			 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			 "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" ");
	if (rc == 0)
		rc = grow_printf(&b, "viewBox=\"0 0 %u %u\" width=\"%u\" height=\"%u\" ", side, side,
				 side * PB_QR_PNG_MODULE_PX, side * PB_QR_PNG_MODULE_PX);
	if (rc == 0)
		rc = grow_printf(&b, "shape-rendering=\"crispEdges\">\n"
				     "<rect width=\"%u\" height=\"%u\" fill=\"#ffffff\"/>\n"
				     "<path fill=\"#000000\" d=\"",
				 side, side);
	/* One subpath per horizontal run of dark modules. */
	for (unsigned y = 0; y < m.size && rc == 0; y++) {
		unsigned x = 0;

		while (x < m.size && rc == 0) {
			unsigned run = 0;

			if (!m.modules[(size_t)y * m.size + x]) {
				x++;
				continue;
			}
			while (x + run < m.size && m.modules[(size_t)y * m.size + x + run])
				run++;
			rc = grow_printf(&b, "M%u %uh%uv1h-%uz", x + PB_QR_QUIET_ZONE, y + PB_QR_QUIET_ZONE, run,
					 run);
			x += run;
		}
	}
	if (rc == 0)
		rc = grow_printf(&b, "\"/>\n</svg>\n");
	pb_qr_matrix_free(&m);
	if (rc != 0) {
		grow_free(&b);
		return rc;
	}
	grow_release(&b, (void **)out, len);
	return 0;
}

/* --- PNG --------------------------------------------------------------------- */

/* State of one PNG encoding, kept outside the function that calls setjmp so
 * that it stays defined after a longjmp. */
struct png_job {
	const pb_qr_matrix_t *m;
	uint8_t *row;
	struct grow_buf out;
	int err;
};

static void png_write_cb(png_structp png, png_bytep data, png_size_t len)
{
	struct png_job *job = png_get_io_ptr(png);

	if (grow_append(&job->out, data, len) != 0) {
		job->err = PB_ENOMEM;
		png_error(png, "out of memory");
	}
}

static void png_flush_cb(png_structp png)
{
	(void)png;
}

static void png_error_cb(png_structp png, png_const_charp msg)
{
	(void)msg;
	png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static int png_encode(struct png_job *job)
{
	const unsigned side = job->m->size + 2 * PB_QR_QUIET_ZONE;
	const unsigned px = side * PB_QR_PNG_MODULE_PX;
	png_structp png;
	png_infop info;

	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_error_cb, png_warning_cb);
	if (png == NULL)
		return PB_ENOMEM;
	info = png_create_info_struct(png);
	if (info == NULL) {
		png_destroy_write_struct(&png, NULL);
		return PB_ENOMEM;
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		return job->err != 0 ? job->err : PB_EQR_ENCODE;
	}
	png_set_write_fn(png, job, png_write_cb, png_flush_cb);
	png_set_IHDR(png, info, px, px, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		     PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (unsigned y = 0; y < px; y++) {
		for (unsigned x = 0; x < px; x++)
			job->row[x] = dark_at(job->m, x / PB_QR_PNG_MODULE_PX, y / PB_QR_PNG_MODULE_PX) ? 0 : 255;
		png_write_row(png, job->row);
	}
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	return 0;
}

int pb_qr_render_png(const char *text, uint8_t **out, size_t *len)
{
	pb_qr_matrix_t m;
	struct png_job job;
	int rc;

	if (out == NULL)
		return PB_EINVAL;
	*out = NULL;
	rc = pb_qr_encode(text, &m);
	if (rc != 0)
		return rc;
	memset(&job, 0, sizeof(job));
	job.m = &m;
	job.row = malloc((size_t)(m.size + 2 * PB_QR_QUIET_ZONE) * PB_QR_PNG_MODULE_PX);
	if (job.row == NULL) {
		rc = PB_ENOMEM;
		goto out_free_matrix;
	}
	rc = png_encode(&job);
	if (rc != 0)
		goto out_free_row;
	grow_release(&job.out, (void **)out, len);

out_free_row:
	free(job.row);
	grow_free(&job.out);
out_free_matrix:
	pb_qr_matrix_free(&m);
	return rc;
}

/* --- Files ------------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Flushes the directory that holds path so that a rename in it is durable. */
static int sync_parent(const char *path)
{
	char copy[PATH_MAX];
	size_t n = strlen(path);
	int fd, rc = 0;

	if (n >= sizeof(copy))
		return -ENAMETOOLONG;
	memcpy(copy, path, n + 1);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0 && errno != EINVAL)
		rc = -errno;
	close(fd);
	return rc;
}

/* Replaces path with data: temporary file in the same directory, fsync,
 * rename, fsync of the directory. The file gets mode 0600. */
static int write_atomic(const char *path, const uint8_t *data, size_t len)
{
	char tmp[PATH_MAX];
	int fd, rc, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, data, len);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc != 0)
		goto out_unlink;
	if (rename(tmp, path) != 0) {
		rc = -errno;
		goto out_unlink;
	}
	return sync_parent(path);

out_unlink:
	unlink(tmp);
	return rc;
}

int pb_qr_write_png(const char *text, const char *path)
{
	uint8_t *png;
	size_t len;
	int rc;

	if (path == NULL)
		return PB_EINVAL;
	rc = pb_qr_render_png(text, &png, &len);
	if (rc != 0)
		return rc;
	rc = write_atomic(path, png, len);
	free(png);
	return rc;
}

int pb_qr_write_svg(const char *text, const char *path)
{
	char *svg;
	size_t len;
	int rc;

	if (path == NULL)
		return PB_EINVAL;
	rc = pb_qr_render_svg(text, &svg, &len);
	if (rc != 0)
		return rc;
	rc = write_atomic(path, (const uint8_t *)svg, len);
	free(svg);
	return rc;
}
