/* QR decoding: image files (PNG through libpng, binary netpbm) are turned
 * into 8-bit grayscale and scanned by libzbar for a peerback QR code.
 *
 * Image files come from outside and are treated as hostile: sizes and
 * dimensions are capped before anything is allocated, libpng errors are
 * caught with setjmp, and no malformed image reaches an assert. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dlfcn.h>
#include <pthread.h>

#include <png.h>
#include <zbar.h>

#include "peerback/error.h"
#include "peerback/qr.h"

static const char peerback_scheme[] = "peerback://";

/* libzbar is loaded when the first image is decoded, not at start: it pulls
 * in X11, D-Bus and V4L, which would add more than a millisecond to every
 * command, while only `pair --qr-image` and `qr decode` scan images. */
#define ZBAR_SONAME "libzbar.so.0"

static struct {
	zbar_image_scanner_t *(*scanner_create)(void);
	void (*scanner_destroy)(zbar_image_scanner_t *);
	int (*scanner_set_config)(zbar_image_scanner_t *, zbar_symbol_type_t, zbar_config_t, int);
	int (*scan_image)(zbar_image_scanner_t *, zbar_image_t *);
	zbar_image_t *(*image_create)(void);
	void (*image_destroy)(zbar_image_t *);
	void (*image_set_format)(zbar_image_t *, unsigned long);
	void (*image_set_size)(zbar_image_t *, unsigned, unsigned);
	void (*image_set_data)(zbar_image_t *, const void *, unsigned long, zbar_image_cleanup_handler_t *);
	const zbar_symbol_t *(*image_first_symbol)(const zbar_image_t *);
	const zbar_symbol_t *(*symbol_next)(const zbar_symbol_t *);
	const char *(*symbol_get_data)(const zbar_symbol_t *);
	unsigned (*symbol_get_data_length)(const zbar_symbol_t *);
	zbar_symbol_type_t (*symbol_get_type)(const zbar_symbol_t *);
	int err;
} zb;

static pthread_once_t zb_once = PTHREAD_ONCE_INIT;

static void zb_load(void)
{
	void *h = dlopen(ZBAR_SONAME, RTLD_NOW | RTLD_LOCAL);

	zb.err = PB_EQR_DECODER;
	if (h == NULL)
		return;
#define ZB_SYM(field, name)                                                                                            \
	if ((*(void **)&zb.field = dlsym(h, name)) == NULL)                                                            \
		return;
	ZB_SYM(scanner_create, "zbar_image_scanner_create")
	ZB_SYM(scanner_destroy, "zbar_image_scanner_destroy")
	ZB_SYM(scanner_set_config, "zbar_image_scanner_set_config")
	ZB_SYM(scan_image, "zbar_scan_image")
	ZB_SYM(image_create, "zbar_image_create")
	ZB_SYM(image_destroy, "zbar_image_destroy")
	ZB_SYM(image_set_format, "zbar_image_set_format")
	ZB_SYM(image_set_size, "zbar_image_set_size")
	ZB_SYM(image_set_data, "zbar_image_set_data")
	ZB_SYM(image_first_symbol, "zbar_image_first_symbol")
	ZB_SYM(symbol_next, "zbar_symbol_next")
	ZB_SYM(symbol_get_data, "zbar_symbol_get_data")
	ZB_SYM(symbol_get_data_length, "zbar_symbol_get_data_length")
	ZB_SYM(symbol_get_type, "zbar_symbol_get_type")
#undef ZB_SYM
	zb.err = 0;
}

/* An 8-bit grayscale image owned by the decoder. */
struct gray_image {
	uint8_t *pixels;
	unsigned width, height;
};

static int check_dimensions(uint64_t width, uint64_t height)
{
	if (width == 0 || height == 0)
		return PB_EQR_IMAGE;
	if (width > PB_QR_IMAGE_MAX_DIM || height > PB_QR_IMAGE_MAX_DIM || width * height > PB_QR_IMAGE_MAX_PIXELS)
		return PB_ETOOBIG;
	return 0;
}

int pb_qr_decode_gray(const uint8_t *pixels, unsigned width, unsigned height, char *out, size_t cap)
{
	zbar_image_scanner_t *scanner;
	zbar_image_t *image;
	const zbar_symbol_t *sym;
	int rc;

	if (pixels == NULL || out == NULL || cap == 0)
		return PB_EINVAL;
	out[0] = '\0';
	rc = check_dimensions(width, height);
	if (rc != 0)
		return rc == PB_EQR_IMAGE ? PB_EINVAL : rc;
	pthread_once(&zb_once, zb_load);
	if (zb.err != 0)
		return zb.err;
	scanner = zb.scanner_create();
	if (scanner == NULL)
		return PB_ENOMEM;
	image = zb.image_create();
	if (image == NULL) {
		rc = PB_ENOMEM;
		goto out_destroy_scanner;
	}
	zb.scanner_set_config(scanner, ZBAR_NONE, ZBAR_CFG_ENABLE, 0);
	zb.scanner_set_config(scanner, ZBAR_QRCODE, ZBAR_CFG_ENABLE, 1);
	/* Screenshots of a light-on-dark terminal hold an inverted code. */
	zb.scanner_set_config(scanner, ZBAR_NONE, ZBAR_CFG_TEST_INVERTED, 1);
	zb.image_set_format(image, zbar_fourcc('Y', '8', '0', '0'));
	zb.image_set_size(image, width, height);
	/* zbar only reads the pixels; it wants a non-const pointer. */
	zb.image_set_data(image, (void *)(uintptr_t)pixels, (unsigned long)width * height, NULL);
	if (zb.scan_image(scanner, image) < 0) {
		rc = PB_ENOMEM;
		goto out_destroy_image;
	}
	rc = PB_EQR_NOTFOUND;
	for (sym = zb.image_first_symbol(image); sym != NULL; sym = zb.symbol_next(sym)) {
		const char *data = zb.symbol_get_data(sym);
		size_t n = zb.symbol_get_data_length(sym);

		if (zb.symbol_get_type(sym) != ZBAR_QRCODE || data == NULL)
			continue;
		if (n < sizeof(peerback_scheme) - 1 ||
		    strncasecmp(data, peerback_scheme, sizeof(peerback_scheme) - 1) != 0 ||
		    memchr(data, '\0', n) != NULL)
			continue;
		if (n >= cap || n > PB_URI_MAX_LEN) {
			rc = PB_ETOOBIG;
			continue;
		}
		memcpy(out, data, n);
		out[n] = '\0';
		rc = (int)n;
		break;
	}

out_destroy_image:
	zb.image_destroy(image);
out_destroy_scanner:
	zb.scanner_destroy(scanner);
	return rc;
}

/* --- PNG --------------------------------------------------------------------- */

/* State of one PNG decoding, kept outside the function that calls setjmp so
 * that it stays defined after a longjmp. */
struct png_job {
	const uint8_t *buf;
	size_t len, pos;
	uint8_t *raw;   /* decoded rows: gray or gray+alpha, 8 bits */
	png_bytep *rows;
	struct gray_image img;
	int err;
};

static void png_read_cb(png_structp png, png_bytep data, png_size_t len)
{
	struct png_job *job = png_get_io_ptr(png);

	if (len > job->len - job->pos) {
		job->err = PB_EQR_IMAGE;
		png_error(png, "truncated");
	}
	memcpy(data, job->buf + job->pos, len);
	job->pos += len;
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

static int png_decode(struct png_job *job)
{
	png_structp png;
	png_infop info;
	png_uint_32 width, height;
	int depth, colour, channels;
	size_t rowbytes;

	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_error_cb, png_warning_cb);
	if (png == NULL)
		return PB_ENOMEM;
	info = png_create_info_struct(png);
	if (info == NULL) {
		png_destroy_read_struct(&png, NULL, NULL);
		return PB_ENOMEM;
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_read_struct(&png, &info, NULL);
		return job->err != 0 ? job->err : PB_EQR_IMAGE;
	}
	png_set_read_fn(png, job, png_read_cb);
	png_set_chunk_cache_max(png, 128);
	png_set_chunk_malloc_max(png, 8u << 20);
	png_read_info(png, info);
	width = png_get_image_width(png, info);
	height = png_get_image_height(png, info);
	depth = png_get_bit_depth(png, info);
	colour = png_get_color_type(png, info);
	job->err = check_dimensions(width, height);
	if (job->err != 0)
		png_error(png, "image too large");

	/* Reduce every kind of PNG to 8-bit gray, with alpha when it has some. */
	if (colour == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(png);
	if (colour == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(png);
	if (png_get_valid(png, info, PNG_INFO_tRNS))
		png_set_tRNS_to_alpha(png);
	if (depth == 16)
		png_set_strip_16(png);
	if (colour == PNG_COLOR_TYPE_PALETTE || (colour & PNG_COLOR_MASK_COLOR))
		png_set_rgb_to_gray_fixed(png, 1, -1, -1);
	png_set_interlace_handling(png);
	png_read_update_info(png, info);
	channels = png_get_channels(png, info);
	rowbytes = png_get_rowbytes(png, info);
	if (png_get_bit_depth(png, info) != 8 || (channels != 1 && channels != 2) ||
	    rowbytes != (size_t)width * (size_t)channels) {
		job->err = PB_EQR_IMAGE;
		png_error(png, "unexpected layout");
	}

	job->raw = malloc(rowbytes * height);
	job->rows = malloc(sizeof(*job->rows) * height);
	if (job->raw == NULL || job->rows == NULL) {
		job->err = PB_ENOMEM;
		png_error(png, "out of memory");
	}
	for (png_uint_32 y = 0; y < height; y++)
		job->rows[y] = job->raw + (size_t)y * rowbytes;
	png_read_image(png, job->rows);
	png_destroy_read_struct(&png, &info, NULL);

	if (channels == 2) {
		/* Compose on white: transparent parts of a code are its light parts. */
		size_t n = (size_t)width * height;

		for (size_t i = 0; i < n; i++) {
			unsigned g = job->raw[2 * i], a = job->raw[2 * i + 1];

			job->raw[i] = (uint8_t)((g * a + 255u * (255u - a) + 127u) / 255u);
		}
	}
	job->img.pixels = job->raw;
	job->img.width = width;
	job->img.height = height;
	job->raw = NULL;
	return 0;
}

/* --- Netpbm -------------------------------------------------------------- */

/* Reads one header number of a netpbm file, skipping whitespace and
 * comments before it. */
static bool pnm_number(const uint8_t *buf, size_t len, size_t *pos, uint32_t max, uint32_t *out)
{
	size_t i = *pos;
	uint32_t v = 0;
	size_t digits = 0;

	for (;;) {
		if (i >= len)
			return false;
		if (buf[i] == '#') {
			while (i < len && buf[i] != '\n' && buf[i] != '\r')
				i++;
		} else if (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\v' ||
			   buf[i] == '\f') {
			i++;
		} else {
			break;
		}
	}
	while (i < len && buf[i] >= '0' && buf[i] <= '9') {
		uint32_t d = buf[i] - '0';

		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
		i++;
		digits++;
	}
	if (digits == 0)
		return false;
	*pos = i;
	*out = v;
	return true;
}

/* Binary PGM (P5) and PPM (P6), one image, maxval 1..65535. */
static int pnm_decode(const uint8_t *buf, size_t len, struct gray_image *img)
{
	uint32_t width, height, maxval;
	size_t pos = 2, channels, sample_bytes, need, n;
	const uint8_t *data;
	int rc;

	channels = buf[1] == '6' ? 3 : 1;
	if (!pnm_number(buf, len, &pos, UINT32_MAX / 16, &width) ||
	    !pnm_number(buf, len, &pos, UINT32_MAX / 16, &height) || !pnm_number(buf, len, &pos, 65535, &maxval))
		return PB_EQR_IMAGE;
	/* Exactly one whitespace byte separates the header from the samples. */
	if (maxval == 0 || pos >= len ||
	    (buf[pos] != ' ' && buf[pos] != '\t' && buf[pos] != '\n' && buf[pos] != '\r'))
		return PB_EQR_IMAGE;
	pos++;
	rc = check_dimensions(width, height);
	if (rc != 0)
		return rc;
	sample_bytes = maxval < 256 ? 1 : 2;
	n = (size_t)width * height;
	need = n * channels * sample_bytes;
	if (len - pos < need)
		return PB_EQR_IMAGE;
	data = buf + pos;
	img->pixels = malloc(n);
	if (img->pixels == NULL)
		return PB_ENOMEM;
	img->width = width;
	img->height = height;
	for (size_t i = 0; i < n; i++) {
		uint32_t s[3];
		uint32_t y;

		for (size_t c = 0; c < channels; c++) {
			const uint8_t *p = data + (i * channels + c) * sample_bytes;
			uint32_t v = sample_bytes == 2 ? (uint32_t)p[0] << 8 | p[1] : p[0];

			/* Samples above maxval are malformed; read them as white. */
			s[c] = v >= maxval ? 255 : (v * 255 + maxval / 2) / maxval;
		}
		y = channels == 3 ? (s[0] * 299 + s[1] * 587 + s[2] * 114 + 500) / 1000 : s[0];
		img->pixels[i] = (uint8_t)y;
	}
	return 0;
}

int pb_qr_decode_mem(const uint8_t *buf, size_t len, char *out, size_t cap)
{
	static const uint8_t png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	struct gray_image img = { NULL, 0, 0 };
	int rc;

	if ((buf == NULL && len > 0) || out == NULL || cap == 0)
		return PB_EINVAL;
	out[0] = '\0';
	if (len > PB_QR_IMAGE_MAX_FILE)
		return PB_ETOOBIG;
	if (len >= sizeof(png_sig) && memcmp(buf, png_sig, sizeof(png_sig)) == 0) {
		struct png_job job;

		memset(&job, 0, sizeof(job));
		job.buf = buf;
		job.len = len;
		rc = png_decode(&job);
		free(job.raw);
		free(job.rows);
		img = job.img;
		if (rc != 0) {
			free(img.pixels);
			return rc;
		}
	} else if (len >= 2 && buf[0] == 'P' && (buf[1] == '5' || buf[1] == '6')) {
		rc = pnm_decode(buf, len, &img);
		if (rc != 0) {
			free(img.pixels);
			return rc;
		}
	} else {
		return PB_EQR_IMAGE;
	}
	rc = pb_qr_decode_gray(img.pixels, img.width, img.height, out, cap);
	free(img.pixels);
	return rc;
}

int pb_qr_decode_file(const char *path, char *out, size_t cap)
{
	struct stat st;
	uint8_t *buf;
	size_t len = 0;
	int fd, rc;

	if (path == NULL || out == NULL || cap == 0)
		return PB_EINVAL;
	out[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = PB_EQR_IMAGE;
		goto out_close;
	}
	if (st.st_size > (off_t)PB_QR_IMAGE_MAX_FILE) {
		rc = PB_ETOOBIG;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = PB_ENOMEM;
		goto out_close;
	}
	/* Read up to the cap, whatever the size was when fstat looked. */
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out_free;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	rc = pb_qr_decode_mem(buf, len, out, cap);

out_free:
	free(buf);
out_close:
	close(fd);
	return rc;
}
