/* Helpers shared by the data kinds of agent/kinds/: bounded file reading,
 * hex, lines, error sentences and atomic output files. */
#ifndef PB_KINDS_UTIL_H
#define PB_KINDS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerback/error.h"
#include "peerback/kinds.h"

/* Writes a sentence into errbuf (may be NULL) and returns rc. */
int pb__kinds_errf(char *errbuf, size_t errcap, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Reads a whole regular file of at most cap bytes into a malloc'd buffer
 * (NUL-terminated; the caller frees). Returns 0, PB_ETOOBIG or -errno. */
int pb__kinds_read_file(const char *path, size_t cap, uint8_t **out, size_t *len);

/* The value of a hex digit of either case, or -1. */
int pb__kinds_hexval(int c);
/* Strict hex: exactly 2*outlen hex digits of either case. Returns 0 or
 * PB_EMALFORMED. */
int pb__kinds_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t outlen);
/* Writes 2*len uppercase hex digits and a NUL into out (cap >= 2*len+1). */
void pb__kinds_hex_encode(const uint8_t *in, size_t len, char *out);
bool pb__kinds_is_hex(const char *s, size_t n);
bool pb__kinds_is_digits(const char *s, size_t n);

/* Iterates over the lines of a buffer. Each line excludes its "\n" and a
 * "\r" just before it. */
typedef struct pb__kinds_lines_s {
	const uint8_t *buf;
	size_t len, pos;
	unsigned lineno;  /* 1-based number of the line last returned */
	bool crlf;        /* the last line returned ended in "\r\n" */
	bool newline;     /* the last line returned ended in a newline */
} pb__kinds_lines_t;
void pb__kinds_lines_init(pb__kinds_lines_t *it, const uint8_t *buf, size_t len);
/* Returns false at the end of the buffer. */
bool pb__kinds_lines_next(pb__kinds_lines_t *it, const char **line, size_t *n);

/* Creates dir and its missing parents (mode 0700). Returns 0 or -errno. */
int pb__kinds_mkdirs(const char *dir);

/* Builds "a/b" into out. Returns 0 or PB_ETOOBIG. */
int pb__kinds_join(char *out, size_t cap, const char *a, const char *b);

/* Writes a file atomically (temporary file in the same directory, fsync,
 * rename, fsync of the directory). Returns 0 or -errno. */
int pb__kinds_write_atomic(const char *path, const void *data, size_t len);

/* The last component of a path. */
const char *pb__kinds_basename(const char *path);

/* The kind whose folder is the first component of a device-relative path,
 * or 0. */
pb_kind_t pb__device_kind_of(const char *relpath);
/* The folder name of a kind in the device directory ("credentials", ...). */
const char *pb__device_folder(pb_kind_t kind);

/* Prefix of the writer's temporary files; scans skip such names. */
#define PB__DEVICE_TMP_PREFIX ".pbtmp-" /* PB_TMP_PREFIX of agent/util/fsutil.h */

/* A codec's split that fails tells why here (line 1-based, 0 unknown), so
 * that a scan skipping the file can name the line; per thread. take reads
 * and clears it. */
void pb__kinds_split_why(uint64_t line, const char *why);
void pb__kinds_split_take(uint64_t *line, char *why, size_t cap);

/* Whole-file items whose kind has a format (credentials/ID.json, MIFARE
 * dumps, .mct sidecars and key files): checked tells whether relpath is
 * one; validate parses its bytes with the kind's parser and, when they do
 * not parse, returns the error with a sentence in why. Other files pass. */
bool pb__kinds_checked(const char *relpath);
int pb__kinds_validate(const char *relpath, const uint8_t *buf, size_t len, char *why, size_t cap);

/* What the writer does to a multi-item file on restore, in memory: merges
 * items (from a backup) into the file's bytes buf (NULL: no file yet) and
 * joins the result into out (the fuzz target's entry). */
int pb__device_merge(const pb_codec_t *codec, const char *relpath, const uint8_t *buf, size_t len,
		     const pb_item_t *items, size_t n, pb_buf_t *out);

/* Largest multi-item file or imported file read into memory. */
#define PB__KINDS_MAX_FILE (512u << 20)

/* Parses a pySim card-key CSV into credentials (for the fuzz target and
 * tests); *count receives the number of credentials. */
int pb__credential_card_keys_parse(const uint8_t *buf, size_t len, size_t *count, char *errbuf, size_t errcap);

#endif

/* One CSV record of at most PB__CSV_MAX_COLS fields of PB__CSV_MAX_FIELD
 * bytes; double-quoted fields with "" escapes are accepted. */
#define PB__CSV_MAX_COLS 48
#define PB__CSV_MAX_FIELD 256
#define PB__CSV_MAX_LINE 16384
typedef struct pb__csv_row_s {
	size_t n;
	char v[PB__CSV_MAX_COLS][PB__CSV_MAX_FIELD + 1];
} pb__csv_row_t;
/* Returns 0, PB_ETOOBIG (too many or too long fields) or PB_EMALFORMED (a
 * stray quote); *col receives the 1-based field of the problem. */
int pb__kinds_csv_split(const char *line, size_t n, pb__csv_row_t *row, size_t *col);
