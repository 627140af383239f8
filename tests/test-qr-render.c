/* QR rendering and decoding: every rendering a host shows (PNG, SVG,
 * terminal) holds exactly libqrencode's code and scans back to the URI with
 * an independent reader (zbarimg) and with pb_qr_decode_*; hostile or
 * foreign images are refused with a clear error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include <png.h>
#include <qrencode.h>

#include "testutil.h"
#include "peerback.h"
#include "peerback/qr.h"

#define ZBARIMG "/usr/bin/zbarimg"

static const char uri[] = "peerback://pair?v=1&k=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
			  "&s=__________________________________________8"
			  "&a=192.168.1.20:4000,[fd00::1234:5678:9abc:def0]:4000&x=4102444800&n=laptop";

/* A grayscale picture built by the tests. */
struct pic {
	unsigned w, h;
	uint8_t *px;
};

static char *tmp_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	assert_non_null(p);
	assert_true(snprintf(p, n, "%s/%s", dir, name) == (int)n - 1);
	return p;
}

/* Runs zbarimg on path; returns its stdout (malloc'd). */
static char *zbarimg(const char *path)
{
	char *argv[] = { ZBARIMG, "--raw", "-q", (char *)path, NULL };
	char *out = NULL, *err = NULL;
	int st = pb_test_run(argv, NULL, 60, &out, &err);

	if (st != 0)
		fail_msg("zbarimg %s exited %d: %s", path, st, err != NULL ? err : "");
	free(err);
	return out;
}

static void assert_zbarimg_reads_uri(const char *path)
{
	char *out = zbarimg(path);
	size_t n = strlen(uri);

	assert_non_null(out);
	/* Exactly the URI, followed by the newline zbarimg ends each symbol with. */
	assert_int_equal(strlen(out), n + 1);
	assert_memory_equal(out, uri, n);
	assert_int_equal(out[n], '\n');
	free(out);
}

static void assert_we_read_uri(const char *path)
{
	char text[PB_URI_MAX_LEN + 1];

	assert_int_equal(pb_qr_decode_file(path, text, sizeof(text)), (int)strlen(uri));
	assert_string_equal(text, uri);
}

/* The reference: libqrencode asked directly for 8-bit mode and level M. */
static QRcode *reference_code(void)
{
	QRcode *qr = QRcode_encodeString8bit(uri, 0, QR_ECLEVEL_M);

	assert_non_null(qr);
	return qr;
}

static void assert_grid_is_reference(const uint8_t *grid, unsigned side)
{
	QRcode *qr = reference_code();
	unsigned size = (unsigned)qr->width;

	assert_int_equal(side, size + 2 * PB_QR_QUIET_ZONE);
	for (unsigned y = 0; y < side; y++)
		for (unsigned x = 0; x < side; x++) {
			bool in = x >= PB_QR_QUIET_ZONE && y >= PB_QR_QUIET_ZONE && x < size + PB_QR_QUIET_ZONE &&
				  y < size + PB_QR_QUIET_ZONE;
			bool want = in && (qr->data[(y - PB_QR_QUIET_ZONE) * size + x - PB_QR_QUIET_ZONE] & 1);

			if ((grid[y * side + x] != 0) != want)
				fail_msg("module (%u,%u) differs from libqrencode's", x, y);
		}
	QRcode_free(qr);
}

static void write_pgm(const char *path, const struct pic *p)
{
	char head[64];
	int n = snprintf(head, sizeof(head), "P5\n# test\n%u %u\n255\n", p->w, p->h);
	size_t total = (size_t)n + (size_t)p->w * p->h;
	uint8_t *buf = malloc(total);

	assert_non_null(buf);
	memcpy(buf, head, (size_t)n);
	memcpy(buf + n, p->px, (size_t)p->w * p->h);
	assert_int_equal(pb_test_write_file(path, buf, total), 0);
	free(buf);
}

/* Scales a module grid (1 = dark) to a picture, scale pixels a module. */
static struct pic grid_to_pic(const uint8_t *grid, unsigned gw, unsigned gh, unsigned scale)
{
	struct pic p = { gw * scale, gh * scale, NULL };

	p.px = malloc((size_t)p.w * p.h);
	assert_non_null(p.px);
	for (unsigned y = 0; y < p.h; y++)
		for (unsigned x = 0; x < p.w; x++)
			p.px[y * p.w + x] = grid[(y / scale) * gw + x / scale] ? 0 : 255;
	return p;
}

/* Writes pic with libpng's full API: Adam7 interlaced, or as a 1-bit
 * palette image (index 0 dark red, index 1 white). */
static void write_png_full(const char *path, const struct pic *p, bool interlaced, bool palette)
{
	FILE *f = fopen(path, "wb");
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	png_bytep *rows = calloc(p->h, sizeof(*rows));
	uint8_t *packed = calloc((size_t)p->h, (p->w + 7) / 8);

	assert_non_null(f);
	assert_non_null(png);
	assert_non_null(info);
	assert_non_null(rows);
	assert_non_null(packed);
	if (setjmp(png_jmpbuf(png)))
		fail_msg("libpng could not write %s", path);
	png_init_io(png, f);
	if (palette) {
		png_color colours[2] = { { 120, 0, 0 }, { 255, 255, 255 } };
		size_t stride = (p->w + 7) / 8;

		png_set_IHDR(png, info, p->w, p->h, 1, PNG_COLOR_TYPE_PALETTE,
			     interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
			     PNG_FILTER_TYPE_DEFAULT);
		png_set_PLTE(png, info, colours, 2);
		for (unsigned y = 0; y < p->h; y++) {
			for (unsigned x = 0; x < p->w; x++)
				if (p->px[y * p->w + x])
					packed[y * stride + x / 8] |= (uint8_t)(0x80 >> (x % 8));
			rows[y] = packed + y * stride;
		}
	} else {
		png_set_IHDR(png, info, p->w, p->h, 8, PNG_COLOR_TYPE_GRAY,
			     interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
			     PNG_FILTER_TYPE_DEFAULT);
		for (unsigned y = 0; y < p->h; y++)
			rows[y] = p->px + (size_t)y * p->w;
	}
	png_set_rows(png, info, rows);
	png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
	png_destroy_write_struct(&png, &info);
	assert_int_equal(fclose(f), 0);
	free(rows);
	free(packed);
}

static void test_matrix_is_libqrencode_level_m(void **state)
{
	pb_qr_matrix_t m;
	QRcode *qr = reference_code();
	QRcode *qr_l = QRcode_encodeString8bit(uri, 0, QR_ECLEVEL_L);

	(void)state;
	assert_int_equal(pb_qr_encode(uri, &m), 0);
	assert_int_equal(m.size, (unsigned)qr->width);
	for (unsigned i = 0; i < m.size * m.size; i++)
		assert_int_equal(m.modules[i], qr->data[i] & 1);
	/* Level M, not the encoder's default L: the two codes differ. */
	assert_non_null(qr_l);
	assert_true(qr_l->width != qr->width ||
		    memcmp(qr_l->data, qr->data, (size_t)qr->width * (size_t)qr->width) != 0);
	print_message("URI of %zu bytes -> QR version %d, %u modules\n", strlen(uri), qr->version, m.size);
	pb_qr_matrix_free(&m);
	pb_qr_matrix_free(&m);
	pb_qr_matrix_free(NULL);
	QRcode_free(qr);
	QRcode_free(qr_l);

	assert_int_equal(pb_qr_encode("", &m), PB_EQR_ENCODE);
	assert_null(m.modules);
	assert_int_equal(pb_qr_encode(NULL, &m), PB_EINVAL);
}

static void test_png_scans(void **state)
{
	char *dir = pb_test_tmpdir("qr-png");
	char *path = tmp_path(dir, "pair.png");
	struct stat st;
	png_image img;
	uint8_t *png;
	size_t len;
	DIR *d;
	struct dirent *e;
	int files = 0;

	(void)state;
	assert_int_equal(pb_qr_write_png(uri, path), 0);
	/* Overwriting is atomic and leaves no temporary file behind. */
	assert_int_equal(pb_qr_write_png(uri, path), 0);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			files++;
	closedir(d);
	assert_int_equal(files, 1);
	/* The code holds the pairing secret: private to its owner. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* libpng's own reader sees an 8-px-a-module code with its quiet zone,
	 * and the same modules as libqrencode. */
	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	assert_true(png_image_begin_read_from_file(&img, path));
	img.format = PNG_FORMAT_GRAY;
	{
		uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
		unsigned side = img.width / PB_QR_PNG_MODULE_PX;
		uint8_t *grid = malloc((size_t)side * side);

		assert_non_null(px);
		assert_non_null(grid);
		assert_true(png_image_finish_read(&img, NULL, px, 0, NULL));
		assert_int_equal(img.width, img.height);
		assert_int_equal(img.width % PB_QR_PNG_MODULE_PX, 0);
		for (unsigned y = 0; y < side; y++)
			for (unsigned x = 0; x < side; x++) {
				/* Every pixel of a module has the module's colour. */
				uint8_t first = px[(y * PB_QR_PNG_MODULE_PX) * img.width + x * PB_QR_PNG_MODULE_PX];

				for (unsigned dy = 0; dy < PB_QR_PNG_MODULE_PX; dy++)
					for (unsigned dx = 0; dx < PB_QR_PNG_MODULE_PX; dx++)
						assert_int_equal(px[(y * PB_QR_PNG_MODULE_PX + dy) * img.width +
								    x * PB_QR_PNG_MODULE_PX + dx],
								 first);
				assert_true(first == 0 || first == 255);
				grid[y * side + x] = first == 0;
			}
		assert_grid_is_reference(grid, side);
		free(grid);
		free(px);
	}

	assert_zbarimg_reads_uri(path);
	assert_we_read_uri(path);
	assert_int_equal(pb_qr_render_png(uri, &png, &len), 0);
	print_message("PNG: %u x %u px, %zu bytes\n", img.width, img.height, len);
	free(png);
	free(path);
	pb_test_rmtree(dir);
	free(dir);
}

/* Turns the terminal text back into a module grid (1 = dark). drawn_is_dark
 * says which colour the blocks stand for. Escape sequences are skipped. */
static uint8_t *terminal_to_grid(const char *text, bool drawn_is_dark, unsigned *gw, unsigned *gh)
{
	unsigned cols = 0, lines = 0, x = 0;
	uint8_t *grid;
	const char *p;

	for (p = text; *p != '\0'; p++) {
		if (*p == '\n') {
			if (lines == 0)
				cols = x;
			assert_int_equal(x, cols);
			lines++;
			x = 0;
		} else if (*p == '\033') {
			while (*p != 'm')
				p++;
		} else if ((*p & 0xc0) != 0x80) {
			x++;
		}
	}
	assert_int_equal(x, 0); /* the text ends with a newline */
	*gw = cols;
	*gh = lines * 2;
	grid = calloc((size_t)*gw * *gh, 1);
	assert_non_null(grid);
	x = 0;
	lines = 0;
	for (p = text; *p != '\0';) {
		bool top, bottom;

		if (*p == '\n') {
			lines++;
			x = 0;
			p++;
			continue;
		}
		if (*p == '\033') {
			while (*p != 'm')
				p++;
			p++;
			continue;
		}
		if (*p == ' ') {
			top = bottom = false;
			p++;
		} else if (memcmp(p, "\xe2\x96\x80", 3) == 0) {
			top = true;
			bottom = false;
			p += 3;
		} else if (memcmp(p, "\xe2\x96\x84", 3) == 0) {
			top = false;
			bottom = true;
			p += 3;
		} else if (memcmp(p, "\xe2\x96\x88", 3) == 0) {
			top = bottom = true;
			p += 3;
		} else {
			fail_msg("unexpected byte 0x%02x in the terminal rendering", (unsigned char)*p);
			return NULL;
		}
		grid[(2 * lines) * *gw + x] = top == drawn_is_dark;
		grid[(2 * lines + 1) * *gw + x] = bottom == drawn_is_dark;
		x++;
	}
	return grid;
}

static void check_terminal(unsigned flags, const char *name)
{
	char *dir = pb_test_tmpdir("qr-term");
	char *path = tmp_path(dir, name);
	char *text;
	size_t len;
	unsigned gw, gh;
	uint8_t *grid;
	struct pic pic;

	assert_int_equal(pb_qr_render_terminal(uri, flags, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	grid = terminal_to_grid(text, (flags & PB_QR_TERM_DARK_BLOCKS) != 0, &gw, &gh);
	/* One character a module wide, two modules a line; the odd last row of
	 * the quiet zone is padded with one more light row. */
	assert_int_equal(gh, gw + 1);
	for (unsigned x = 0; x < gw; x++)
		assert_int_equal(grid[(gh - 1) * gw + x], 0);
	assert_grid_is_reference(grid, gw);

	pic = grid_to_pic(grid, gw, gh, 4);
	write_pgm(path, &pic);
	assert_zbarimg_reads_uri(path);
	assert_we_read_uri(path);
	if (flags == 0)
		print_message("terminal: %u columns x %u lines\n", gw, gh / 2);
	free(pic.px);
	free(grid);
	free(text);
	free(path);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_terminal_scans(void **state)
{
	(void)state;
	check_terminal(0, "term.pgm");
	check_terminal(PB_QR_TERM_DARK_BLOCKS, "term-dark.pgm");
	check_terminal(PB_QR_TERM_ANSI, "term-ansi.pgm");
	check_terminal(PB_QR_TERM_ANSI | PB_QR_TERM_DARK_BLOCKS, "term-ansi-dark.pgm");
}

static void test_terminal_default_draws_light(void **state)
{
	char *text;

	(void)state;
	/* The quiet zone is light, so on the default convention the first line
	 * is all full blocks; with dark blocks it is all spaces. */
	assert_int_equal(pb_qr_render_terminal(uri, 0, &text, NULL), 0);
	assert_memory_equal(text, "\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88", 9);
	free(text);
	assert_int_equal(pb_qr_render_terminal(uri, PB_QR_TERM_DARK_BLOCKS, &text, NULL), 0);
	assert_memory_equal(text, "    ", 4);
	free(text);
	assert_int_equal(pb_qr_render_terminal(uri, PB_QR_TERM_ANSI, &text, NULL), 0);
	assert_memory_equal(text, "\033[97;40m", 8);
	assert_non_null(strstr(text, "\033[0m\n"));
	free(text);
}

/* Reads our own SVG back: the viewBox side and the modules the path covers. */
static uint8_t *svg_to_grid(const char *svg, unsigned *side)
{
	const char *vb = strstr(svg, "viewBox=\"0 0 ");
	const char *d = strstr(svg, " d=\"");
	unsigned w, h;
	uint8_t *grid;

	assert_non_null(vb);
	assert_non_null(d);
	assert_int_equal(sscanf(vb, "viewBox=\"0 0 %u %u\"", &w, &h), 2);
	assert_int_equal(w, h);
	assert_true(w > 0 && w < 1000);
	*side = w;
	grid = calloc((size_t)w * w, 1);
	assert_non_null(grid);
	d += 4;
	while (*d != '"') {
		unsigned x, y, run, run2;
		int used = 0;

		assert_int_equal(sscanf(d, "M%u %uh%uv1h-%uz%n", &x, &y, &run, &run2, &used), 4);
		assert_true(used > 0);
		assert_int_equal(run, run2);
		assert_true(run > 0 && x + run <= w && y < w);
		for (unsigned i = 0; i < run; i++) {
			assert_int_equal(grid[y * w + x + i], 0); /* runs never overlap */
			grid[y * w + x + i] = 1;
		}
		d += used;
	}
	return grid;
}

static void test_svg_matches_matrix(void **state)
{
	char *dir = pb_test_tmpdir("qr-svg");
	char *path = tmp_path(dir, "pair.svg");
	char *argv[] = { "/usr/bin/python3", "-c",
			 "import sys, xml.dom.minidom\n"
			 "doc = xml.dom.minidom.parse(sys.argv[1])\n"
			 "svg = doc.documentElement\n"
			 "assert svg.tagName == 'svg', svg.tagName\n"
			 "assert svg.getAttribute('xmlns') == 'http://www.w3.org/2000/svg'\n"
			 "assert len(svg.getElementsByTagName('path')) == 1\n"
			 "print(svg.getAttribute('viewBox'))\n",
			 path, NULL };
	char *out = NULL, *err = NULL, *svg;
	size_t len;
	uint8_t *grid;
	unsigned side;
	char want[64];

	(void)state;
	assert_int_equal(pb_qr_write_svg(uri, path), 0);
	if (pb_test_run(argv, NULL, 60, &out, &err) != 0)
		fail_msg("the SVG is not valid XML: %s", err != NULL ? err : "");
	svg = (char *)pb_test_read_file(path, &len);
	assert_non_null(svg);
	grid = svg_to_grid(svg, &side);
	assert_grid_is_reference(grid, side);
	snprintf(want, sizeof(want), "0 0 %u %u\n", side, side);
	assert_string_equal(out, want);
	print_message("SVG: %zu bytes\n", len);
	free(grid);
	free(svg);
	free(out);
	free(err);
	free(path);
	pb_test_rmtree(dir);
	free(dir);
}

/* The PNG of the code as a module grid, for building other images. */
static uint8_t *code_grid(unsigned *side)
{
	pb_qr_matrix_t m;
	uint8_t *grid;

	assert_int_equal(pb_qr_encode(uri, &m), 0);
	*side = m.size + 2 * PB_QR_QUIET_ZONE;
	grid = calloc((size_t)*side * *side, 1);
	assert_non_null(grid);
	for (unsigned y = 0; y < m.size; y++)
		for (unsigned x = 0; x < m.size; x++)
			grid[(y + PB_QR_QUIET_ZONE) * *side + x + PB_QR_QUIET_ZONE] = m.modules[y * m.size + x];
	pb_qr_matrix_free(&m);
	return grid;
}

static void test_decode_other_formats(void **state)
{
	char *dir = pb_test_tmpdir("qr-formats");
	char *path;
	unsigned side;
	uint8_t *grid = code_grid(&side);
	struct pic pic = grid_to_pic(grid, side, side, 3);
	size_t n = (size_t)pic.w * pic.h;
	char text[PB_URI_MAX_LEN + 1];
	png_image img;
	uint8_t *buf;

	(void)state;
	/* P6 colour PPM: dark blue on pale yellow. */
	{
		char head[64];
		int hn = snprintf(head, sizeof(head), "P6 %u %u 255\n", pic.w, pic.h);

		buf = malloc((size_t)hn + 3 * n);
		assert_non_null(buf);
		memcpy(buf, head, (size_t)hn);
		for (size_t i = 0; i < n; i++) {
			uint8_t *p = buf + hn + 3 * i;

			p[0] = pic.px[i] ? 250 : 10;
			p[1] = pic.px[i] ? 240 : 20;
			p[2] = pic.px[i] ? 180 : 120;
		}
		path = tmp_path(dir, "code.ppm");
		assert_int_equal(pb_test_write_file(path, buf, (size_t)hn + 3 * n), 0);
		assert_zbarimg_reads_uri(path);
		assert_we_read_uri(path);
		free(path);
		free(buf);
	}
	/* P5 with 16-bit samples. */
	{
		char head[64];
		int hn = snprintf(head, sizeof(head), "P5\n%u %u\n65535\n", pic.w, pic.h);

		buf = malloc((size_t)hn + 2 * n);
		assert_non_null(buf);
		memcpy(buf, head, (size_t)hn);
		for (size_t i = 0; i < n; i++) {
			buf[hn + 2 * i] = pic.px[i];
			buf[hn + 2 * i + 1] = pic.px[i];
		}
		assert_int_equal(pb_qr_decode_mem(buf, (size_t)hn + 2 * n, text, sizeof(text)), (int)strlen(uri));
		assert_string_equal(text, uri);
		/* Cut short: not an image any more. */
		assert_int_equal(pb_qr_decode_mem(buf, (size_t)hn + 2 * n - 1, text, sizeof(text)), PB_EQR_IMAGE);
		free(buf);
	}
	/* RGBA PNG with a transparent background: composed on white. */
	{
		uint8_t *rgba = malloc(4 * n);

		assert_non_null(rgba);
		for (size_t i = 0; i < n; i++) {
			rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = 0;
			rgba[4 * i + 3] = pic.px[i] ? 0 : 255;
		}
		memset(&img, 0, sizeof(img));
		img.version = PNG_IMAGE_VERSION;
		img.width = pic.w;
		img.height = pic.h;
		img.format = PNG_FORMAT_RGBA;
		path = tmp_path(dir, "alpha.png");
		assert_true(png_image_write_to_file(&img, path, 0, rgba, 0, NULL));
		assert_we_read_uri(path);
		free(path);
		free(rgba);
	}
	/* 16-bit gray PNG. */
	{
		uint16_t *g16 = malloc(2 * n);

		assert_non_null(g16);
		for (size_t i = 0; i < n; i++)
			g16[i] = pic.px[i] ? 65535 : 0;
		memset(&img, 0, sizeof(img));
		img.version = PNG_IMAGE_VERSION;
		img.width = pic.w;
		img.height = pic.h;
		img.format = PNG_FORMAT_LINEAR_Y;
		path = tmp_path(dir, "gray16.png");
		assert_true(png_image_write_to_file(&img, path, 0, g16, 0, NULL));
		assert_we_read_uri(path);
		free(path);
		free(g16);
	}
	/* Interlaced gray, interlaced 1-bit palette. */
	path = tmp_path(dir, "interlaced.png");
	write_png_full(path, &pic, true, false);
	assert_zbarimg_reads_uri(path);
	assert_we_read_uri(path);
	free(path);
	path = tmp_path(dir, "palette.png");
	write_png_full(path, &pic, true, true);
	assert_zbarimg_reads_uri(path);
	assert_we_read_uri(path);
	free(path);
	/* Light on dark, as a screenshot of a dark terminal shows it. */
	for (size_t i = 0; i < n; i++)
		pic.px[i] = (uint8_t)(255 - pic.px[i]);
	assert_int_equal(pb_qr_decode_gray(pic.px, pic.w, pic.h, text, sizeof(text)), (int)strlen(uri));
	assert_string_equal(text, uri);
	/* Too small an output buffer. */
	assert_int_equal(pb_qr_decode_gray(pic.px, pic.w, pic.h, text, 10), PB_ETOOBIG);

	free(pic.px);
	free(grid);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_decode_refusals(void **state)
{
	char *dir = pb_test_tmpdir("qr-refuse");
	char *path;
	char text[PB_URI_MAX_LEN + 1];
	uint8_t *png;
	size_t len;
	static const char huge_pgm[] = "P5 20000 20000 255\n";
	static const char many_pgm[] = "P5 16384 16384 255\n";
	uint8_t white[64 * 64];

	(void)state;
	/* A QR code that is not a peerback URI. */
	path = tmp_path(dir, "web.png");
	assert_int_equal(pb_qr_write_png("https://example.org/", path), 0);
	assert_int_equal(pb_qr_decode_file(path, text, sizeof(text)), PB_EQR_NOTFOUND);
	free(path);
	/* No code at all. */
	memset(white, 255, sizeof(white));
	assert_int_equal(pb_qr_decode_gray(white, 64, 64, text, sizeof(text)), PB_EQR_NOTFOUND);
	/* Truncated and damaged PNGs. */
	assert_int_equal(pb_qr_render_png(uri, &png, &len), 0);
	assert_int_equal(pb_qr_decode_mem(png, len, text, sizeof(text)), (int)strlen(uri));
	assert_int_equal(pb_qr_decode_mem(png, len / 2, text, sizeof(text)), PB_EQR_IMAGE);
	assert_int_equal(pb_qr_decode_mem(png, 8, text, sizeof(text)), PB_EQR_IMAGE);
	png[20] ^= 0x40; /* inside IHDR: its CRC no longer matches */
	assert_int_equal(pb_qr_decode_mem(png, len, text, sizeof(text)), PB_EQR_IMAGE);
	free(png);
	/* Not an image; over the dimension and pixel caps. */
	assert_int_equal(pb_qr_decode_mem((const uint8_t *)"GIF89a", 6, text, sizeof(text)), PB_EQR_IMAGE);
	assert_int_equal(pb_qr_decode_mem((const uint8_t *)"", 0, text, sizeof(text)), PB_EQR_IMAGE);
	assert_int_equal(pb_qr_decode_mem((const uint8_t *)"P5 4 4 0\n", 9, text, sizeof(text)), PB_EQR_IMAGE);
	assert_int_equal(pb_qr_decode_mem((const uint8_t *)"P5 99999999999 4 255\n", 21, text, sizeof(text)),
			 PB_EQR_IMAGE);
	assert_int_equal(pb_qr_decode_mem((const uint8_t *)huge_pgm, sizeof(huge_pgm) - 1, text, sizeof(text)),
			 PB_ETOOBIG);
	assert_int_equal(pb_qr_decode_mem((const uint8_t *)many_pgm, sizeof(many_pgm) - 1, text, sizeof(text)),
			 PB_ETOOBIG);
	/* Files: missing, a directory. */
	path = tmp_path(dir, "missing.png");
	assert_int_equal(pb_qr_decode_file(path, text, sizeof(text)), -ENOENT);
	free(path);
	assert_int_equal(pb_qr_decode_file(dir, text, sizeof(text)), PB_EQR_IMAGE);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_write_failures_leave_nothing(void **state)
{
	char *dir = pb_test_tmpdir("qr-writefail");
	char *sub = tmp_path(dir, "taken");
	char *missing = tmp_path(dir, "no/such/dir/code.png");
	DIR *d;
	struct dirent *e;
	int entries = 0;

	(void)state;
	assert_int_equal(pb_qr_write_png(uri, missing), -ENOENT);
	/* The name is taken by a directory: the rename fails, and the
	 * temporary file holding the secret is removed. */
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(pb_qr_write_png(uri, sub), -EISDIR);
	assert_int_equal(pb_qr_write_svg(uri, sub), -EISDIR);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			entries++;
	closedir(d);
	assert_int_equal(entries, 1);
	assert_int_equal(pb_qr_write_png("", sub), PB_EQR_ENCODE);
	free(sub);
	free(missing);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_cli_show_and_decode(void **state)
{
	char *dir = pb_test_tmpdir("qr-cli");
	char *png = tmp_path(dir, "code.png");
	char *svg = tmp_path(dir, "code.svg");
	char *tool = pb_test_tool("peerback");
	char *expired = tmp_path(dir, "old.png");
	char *home = tmp_path(dir, "home");
	char *out = NULL, *err = NULL;
	char want[PB_URI_MAX_LEN + 2];
	const char *old_uri = "peerback://pair?v=1&k=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
			      "&s=__________________________________________8&a=10.0.0.1:4000&x=1000";

	(void)state;
	{
		char *argv[] = { tool, "--home", home, "qr", "show", (char *)uri, "--png", png, "--svg", svg, NULL };

		assert_int_equal(pb_test_run(argv, NULL, 60, &out, &err), 0);
		/* The terminal code is printed, 33 lines of 65 modules. */
		assert_non_null(strstr(out, "\xe2\x96\x88"));
		free(out);
		free(err);
	}
	assert_zbarimg_reads_uri(png);
	{
		char *argv[] = { tool, "--home", home, "qr", "decode", png, NULL };

		assert_int_equal(pb_test_run(argv, NULL, 60, &out, &err), 0);
		snprintf(want, sizeof(want), "%s\n", uri);
		assert_string_equal(out, want);
		free(out);
		free(err);
	}
	{
		/* An expired code is printed but refused with the fix. */
		char *argv[] = { tool, "--home", home, "qr", "decode", expired, NULL };

		assert_int_equal(pb_qr_write_png(old_uri, expired), 0);
		assert_int_equal(pb_test_run(argv, NULL, 60, &out, &err), 1);
		assert_non_null(strstr(out, "&x=1000"));
		assert_non_null(strstr(err, "expired; ask the host for a new one"));
		free(out);
		free(err);
	}
	{
		/* Text from a hostile code is escaped, never sent raw to the
		 * terminal or spliced into JSON. */
		char *argv[] = { tool, "--home", home, "--json", "qr", "decode", expired, NULL };
		const char *uri_line = "{\"uri\":\"peerback://\\u001B[2J\\\"}\"}\n";

		assert_int_equal(pb_qr_write_png("peerback://\033[2J\"}", expired), 0);
		assert_int_equal(pb_test_run(argv, NULL, 60, &out, &err), 1);
		/* The URI's line, then the error as a JSON object. */
		assert_int_equal(strncmp(out, uri_line, strlen(uri_line)), 0);
		assert_non_null(strstr(out, "\n{\"event\":\"error\",\"code\":\"PB_EURI_SCHEME\""));
		free(out);
		free(err);
	}
	{
		char *argv[] = { tool, "--home", home, "qr", "show", "peerback://pair?v=1", NULL };

		assert_int_equal(pb_test_run(argv, NULL, 60, &out, &err), 1);
		assert_non_null(strstr(err, "lacks a required parameter"));
		free(out);
		free(err);
	}
	free(png);
	free(svg);
	free(tool);
	free(expired);
	free(home);
	pb_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix_is_libqrencode_level_m),
		cmocka_unit_test(test_png_scans),
		cmocka_unit_test(test_terminal_scans),
		cmocka_unit_test(test_terminal_default_draws_light),
		cmocka_unit_test(test_svg_matches_matrix),
		cmocka_unit_test(test_decode_other_formats),
		cmocka_unit_test(test_decode_refusals),
		cmocka_unit_test(test_write_failures_leave_nothing),
		cmocka_unit_test(test_cli_show_and_decode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
