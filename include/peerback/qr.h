/* peerback qr layer: the pairing URI, QR code rendering, QR image decoding.
 *
 * This layer knows URIs and pictures and nothing about networking. The host
 * formats a pairing URI and shows it as a QR code (terminal, PNG, SVG); the
 * phone decodes the QR code from an image file, or takes the URI as text, and
 * parses it. The URI format is a wire contract, described in docs/PAIRING.md
 * ("The pairing URI").
 *
 * Ownership: every pointer argument is borrowed for the duration of the call.
 * Buffers returned through `uint8_t **` or `char **` are malloc'd and owned by
 * the caller, who releases them with free(). Matrices are released with
 * pb_qr_matrix_free(). */
#ifndef PEERBACK_QR_H
#define PEERBACK_QR_H

#include <sys/socket.h>

#include "peerback/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- Limits ---------------------------------------------------------------- */

#define PB_URI_MAX_LEN 2048          /* longest pairing URI a reader accepts */
#define PB_URI_MAX_ADDRS 16          /* most addresses in the a= parameter */
#define PB_URI_HOST_NAME_MAX 64      /* bytes of n= after percent-decoding */
#define PB_URI_ACCOUNT_HINT_MAX 128  /* bytes of h= after percent-decoding */
#define PB_URI_VERSION 1             /* the only version this reader knows */

#define PB_QR_QUIET_ZONE 4           /* light modules around every rendering */
#define PB_QR_PNG_MODULE_PX 8        /* PNG pixels per module side */
#define PB_QR_IMAGE_MAX_DIM 16384    /* widest or tallest image decoded */
#define PB_QR_IMAGE_MAX_PIXELS (1u << 25) /* most pixels in a decoded image */
#define PB_QR_IMAGE_MAX_FILE (64u << 20)  /* largest image file read */

/* --- Pairing URI ------------------------------------------------------------ */

/* A parsed pairing URI. Holds the pairing secret: wipe it with
 * sodium_memzero() once used. */
typedef struct pb_pair_uri_s {
	uint8_t host_pk[32];   /* k: the host's static X25519 public key */
	uint8_t secret[32];    /* s: the one-time pairing secret (Noise psk) */
	struct sockaddr_storage addrs[PB_URI_MAX_ADDRS]; /* a: AF_INET / AF_INET6, port set */
	size_t naddrs;         /* 1..PB_URI_MAX_ADDRS */
	uint64_t expiry;       /* x: unix seconds; 0 when the URI has no x */
	char host_name[PB_URI_HOST_NAME_MAX + 1];       /* n: UTF-8, "" when absent */
	char account_hint[PB_URI_ACCOUNT_HINT_MAX + 1]; /* h: UTF-8, "" when absent */
} pb_pair_uri_t;

/* Parses the len bytes at uri (no NUL needed) into out. now is the current
 * time in unix seconds; a URI whose expiry is at or before now is refused
 * with PB_EURI_EXPIRED; now = 0 skips that check. Unknown parameters are
 * ignored. Returns 0, or PB_EURI_TOOLONG, PB_EURI_SCHEME, PB_EURI_DUPLICATE,
 * PB_EURI_VERSION, PB_EURI_MISSING, PB_EURI_BASE64, PB_EURI_KEYLEN,
 * PB_EURI_ADDR, PB_EURI_EXPIRED, PB_EMALFORMED (bytes outside printable
 * ASCII, a fragment, a bad x, bad percent-escapes or UTF-8 in n or h),
 * PB_ETOOBIG (n or h too long). On failure out is wiped. */
PB_EXTERN PB_WUR int pb_uri_parse(const char *uri, size_t len, uint64_t now, pb_pair_uri_t *out);

/* Formats u as a pairing URI into out (cap bytes, NUL-terminated). Empty
 * host_name / account_hint and expiry 0 are left out. Returns the length
 * written (without the NUL), PB_ETOOBIG when cap is too small, PB_EINVAL when
 * u cannot be read back (no address, bad family or port 0, n or h not
 * NUL-terminated UTF-8 text) or PB_EURI_TOOLONG when the result would exceed
 * PB_URI_MAX_LEN. The output holds the secret; on failure it is wiped. */
PB_EXTERN PB_WUR int pb_uri_format(const pb_pair_uri_t *u, char *out, size_t cap);

/* Formats one address as the URI writes it: "192.0.2.1:4000",
 * "[2001:db8::1]:4000", "[fe80::1%253]:4000" (zone as its interface index).
 * Returns the length, PB_EINVAL or PB_ETOOBIG. */
PB_EXTERN PB_WUR int pb_uri_format_addr(const struct sockaddr_storage *ss, char *out, size_t cap);

/* --- QR rendering ------------------------------------------------------------ */

/* The modules of a QR code, without quiet zone: size x size bytes, row-major,
 * 1 for a dark module and 0 for a light one. */
typedef struct pb_qr_matrix_s {
	unsigned size;
	uint8_t *modules;
} pb_qr_matrix_t;

/* Encodes text (8-bit mode, error correction level M, smallest version that
 * fits) into out. Returns 0, PB_EINVAL, PB_EQR_ENCODE (empty or longer than
 * PB_URI_MAX_LEN, or refused by the encoder) or PB_ENOMEM. */
PB_EXTERN PB_WUR int pb_qr_encode(const char *text, pb_qr_matrix_t *out);

/* Frees the modules of m and zeroes it. Accepts NULL. */
PB_EXTERN void pb_qr_matrix_free(pb_qr_matrix_t *m);

/* Terminal rendering flags. By default light modules (and the quiet zone)
 * are drawn as blocks and dark modules left blank, which suits the usual
 * light-on-dark terminal. */
#define PB_QR_TERM_DARK_BLOCKS 0x1u /* draw dark modules instead: dark-on-light terminals, paper */
#define PB_QR_TERM_ANSI 0x2u        /* add ANSI colours so it reads on any terminal */

/* Renders text as UTF-8 half blocks (U+2580, U+2584, U+2588 and space): one
 * character per module wide, two modules per line, quiet zone included, each
 * line ending in '\n'. *out is NUL-terminated; *len (may be NULL) gets its
 * length. Returns 0 or an error of pb_qr_encode. */
PB_EXTERN PB_WUR int pb_qr_render_terminal(const char *text, unsigned flags, char **out, size_t *len);

/* Renders text as an SVG document: viewBox in modules (quiet zone included),
 * a white background and one black <path> of the dark modules. */
PB_EXTERN PB_WUR int pb_qr_render_svg(const char *text, char **out, size_t *len);

/* Renders text as an 8-bit grayscale PNG, PB_QR_PNG_MODULE_PX pixels a
 * module, quiet zone included. */
PB_EXTERN PB_WUR int pb_qr_render_png(const char *text, uint8_t **out, size_t *len);

/* Write the PNG / SVG rendering to path atomically (temporary file, fsync,
 * rename). The file is created with mode 0600: the code holds the pairing
 * secret. Returns 0, a rendering error or -errno. */
PB_EXTERN PB_WUR int pb_qr_write_png(const char *text, const char *path);
PB_EXTERN PB_WUR int pb_qr_write_svg(const char *text, const char *path);

/* --- QR decoding ------------------------------------------------------------- */

/* Finds the first QR code whose text starts with "peerback://" in an 8-bit
 * grayscale image (width * height bytes, row-major) and copies its text to
 * out (cap bytes, NUL-terminated). Light-on-dark codes are found too.
 * Returns the text's length, PB_EQR_NOTFOUND, PB_ETOOBIG (image over the
 * caps, or text not fitting in cap), PB_EINVAL or PB_ENOMEM. */
PB_EXTERN PB_WUR int pb_qr_decode_gray(const uint8_t *pixels, unsigned width, unsigned height, char *out,
				       size_t cap);

/* Same from an image file's bytes: PNG (any colour type, bit depth,
 * interlacing; transparency composed on white) or binary netpbm (P5 PGM, P6
 * PPM, maxval up to 65535). Returns as pb_qr_decode_gray, or PB_EQR_IMAGE
 * when the bytes are not a readable image of those formats. */
PB_EXTERN PB_WUR int pb_qr_decode_mem(const uint8_t *buf, size_t len, char *out, size_t cap);

/* Same from an image file; files larger than PB_QR_IMAGE_MAX_FILE give
 * PB_ETOOBIG, files that cannot be opened -errno. */
PB_EXTERN PB_WUR int pb_qr_decode_file(const char *path, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
