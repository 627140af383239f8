/* Helpers shared by the chat and contacts kinds (agent/kinds/chat*.c,
 * contacts*.c): byte buffers, the generators' random stream, error sentences,
 * staged atomic imports, the JSON value tree and the Telegram stream parser.
 * Every name is pb__chat_ so that nothing clashes with the model's helpers. */
#ifndef PB_KINDS_CHAT_UTIL_H
#define PB_KINDS_CHAT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "peerback/kinds.h"
#include "agent/kinds/internal.h"

/* Hard caps on hostile input. */
#define PB__CHAT_LINE_MAX (1u << 20)        /* one vCard or WhatsApp line */
#define PB__CHAT_MSG_MAX (16u << 20)        /* one message's JSON tree, bytes */
#define PB__CHAT_FRAME_MAX (16u << 20)      /* one chat's non-message fields */
#define PB__CHAT_DEPTH_MAX 64               /* JSON nesting */
#define PB__CHAT_PATH_MAX 1024              /* an attachment's relative path */
#define PB__CHAT_FILE_NOT_INCLUDED "(File not included. Change data exporting settings to download.)"

/* --- Buffers --------------------------------------------------------------- */

/* Appends len bytes to b (same layout as pb_buf_t: malloc'd data). */
PB_WUR int pb__chat_buf_add(pb_buf_t *b, const void *data, size_t len);
PB_WUR int pb__chat_buf_str(pb_buf_t *b, const char *s);
PB_WUR int pb__chat_buf_printf(pb_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pb__chat_buf_clear(pb_buf_t *b);

/* --- Errors ---------------------------------------------------------------- */

/* Writes a sentence into errbuf (may be NULL) and returns err. */
int pb__chat_fail(char *errbuf, size_t errcap, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* --- Random stream (ChaCha20, key = BLAKE2b(seed || label)) ---------------- */

typedef struct pb__chat_rng_s {
	uint8_t key[32];
	uint64_t nonce;
	uint8_t block[4096];
	size_t used;
} pb__chat_rng_t;
void pb__chat_rng_init(pb__chat_rng_t *rng, uint64_t seed, const char *label);
void pb__chat_rng_bytes(pb__chat_rng_t *rng, void *out, size_t len);
uint32_t pb__chat_rng_below(pb__chat_rng_t *rng, uint32_t bound);
void pb__chat_rng_wipe(pb__chat_rng_t *rng);

/* 64-bit BLAKE2b of data, for derived identifiers. */
uint64_t pb__chat_hash64(const void *data, size_t len);

/* --- Files ----------------------------------------------------------------- */

/* mkdir -p of path (absolute or relative). */
PB_WUR int pb__chat_mkdirs(const char *path);
/* Creates the parents of path. */
PB_WUR int pb__chat_mkparents(const char *path);
/* Copies file src to dst (created or replaced; not atomic). */
PB_WUR int pb__chat_copy_file(const char *src, const char *dst);
/* Copies from the open file in to dst (created 0600, fsynced). */
PB_WUR int pb__chat_copy_fd(int in, const char *dst);
/* Opens the regular file rel below dir without following a symbolic link
 * in any component below dir (PB_EDATA_LINK); -ENOENT when absent, -EISDIR
 * when not a regular file. */
PB_WUR int pb__chat_open_below(const char *dir, const char *rel, int *out);
/* Writes a whole file (not atomic). */
PB_WUR int pb__chat_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file of at most max bytes into out (malloc'd, caller frees). */
PB_WUR int pb__chat_read_file(const char *path, size_t max, uint8_t **out, size_t *len);
/* Removes a directory tree (best effort). */
void pb__chat_rmtree(const char *path);
/* True when rel is a safe relative path: no absolute path, no "." or ".."
 * component, no empty component, no control character, at most
 * PB__CHAT_PATH_MAX bytes. */
bool pb__chat_relpath_ok(const char *rel, size_t len);
/* The sorted names of the sub-directories (dirs) or regular files of dir,
 * skipping names starting with '.'. *names is malloc'd, free with
 * pb__chat_names_free. */
PB_WUR int pb__chat_list(const char *dir, bool dirs, char ***names, size_t *n);
void pb__chat_names_free(char **names, size_t n);

/* Reads lines of at most PB__CHAT_LINE_MAX bytes from a file or memory,
 * without their "\n" or "\r\n". */
typedef struct pb__chat_lines_s {
	FILE *f;
	const uint8_t *mem;
	size_t memlen, pos;
	uint8_t *buf;
	size_t len, cap;
	uint64_t lineno; /* of the line last returned, from 1 */
	bool crlf;       /* the line last returned ended in "\r\n" */
	bool newline;    /* ... and had a line end at all */
	uint64_t off;    /* bytes read so far */
	uint64_t start;  /* offset of the line last returned */
} pb__chat_lines_t;
/* Returns 1 and the line, 0 at the end, PB_ETOOBIG for a line over the cap. */
PB_WUR int pb__chat_lines_next(pb__chat_lines_t *r, const char **line, size_t *len);
void pb__chat_lines_free(pb__chat_lines_t *r);

/* A staged import: files are written below a hidden directory inside the
 * device directory and moved into place only by commit. */
typedef struct pb__chat_stage_s {
	char device[4096];
	char root[4096]; /* <device>/.pb-import-XXXXXX */
} pb__chat_stage_t;
PB_WUR int pb__chat_stage_open(pb__chat_stage_t *st, const char *device_dir);
/* Absolute path of rel inside the stage; parents are created. */
PB_WUR int pb__chat_stage_path(pb__chat_stage_t *st, const char *rel, char *out, size_t cap);
/* Moves every staged file to the same relative path in the device. */
PB_WUR int pb__chat_stage_commit(pb__chat_stage_t *st);
/* Removes the stage and everything in it. */
void pb__chat_stage_abort(pb__chat_stage_t *st);

/* --- JSON value tree ------------------------------------------------------- */

enum { PB__CJ_NULL, PB__CJ_TRUE, PB__CJ_FALSE, PB__CJ_NUM, PB__CJ_STR, PB__CJ_ARR, PB__CJ_OBJ };

typedef struct pb__cj_s pb__cj_t;
struct pb__cj_s {
	int type;
	char *key; /* member name when inside an object (NUL-terminated) */
	size_t key_len;
	char *str; /* string bytes or number text (NUL-terminated) */
	size_t len;
	pb__cj_t *child, *last, *next; /* members or elements, in order */
	size_t n;
};

void pb__cj_free(pb__cj_t *v);
pb__cj_t *pb__cj_new(int type);
pb__cj_t *pb__cj_new_str(const char *s, size_t len);
/* Appends child to an array or object (key copied when not NULL). */
PB_WUR int pb__cj_add(pb__cj_t *parent, const char *key, pb__cj_t *child);
/* The same, taking key (malloc'd, or NULL) as it is. */
void pb__cj_add_owned(pb__cj_t *parent, char *key, pb__cj_t *child);
/* Replaces a value's string with str (malloc'd, NUL-terminated), freeing
 * the old one. */
void pb__cj_set_str(pb__cj_t *v, char *str, size_t len);
/* Member of an object by name, or NULL. */
pb__cj_t *pb__cj_get(const pb__cj_t *obj, const char *key);
/* The text of a string member, or NULL. */
const char *pb__cj_get_str(const pb__cj_t *obj, const char *key);

/* Key orders of the canonical form. */
enum { PB__CJ_ORDER_NONE = 0, PB__CJ_ORDER_MESSAGE = 1, PB__CJ_ORDER_CHAT = 2 };
/* Compact canonical serialization: no spaces, members of the outermost object
 * in the given order (known keys first, unknown keys after in their order),
 * strings with only the escapes JSON requires. */
PB_WUR int pb__cj_write(pb_buf_t *out, const pb__cj_t *v, int order);
/* The members of obj in canonical order (out has obj->n slots). */
void pb__cj_order(const pb__cj_t *obj, int order, const pb__cj_t **out);
/* Appends a JSON string literal. */
PB_WUR int pb__cj_write_string(pb_buf_t *out, const char *s, size_t len);
/* The plain text of a Telegram "text" value (string or array), malloc'd. */
char *pb__cj_flatten_text(const pb__cj_t *text);

/* --- Telegram stream parser ------------------------------------------------ */

/* A chat being read: its fields except messages, and its message count. */
typedef struct pb__chat_tg_chat_s {
	pb__cj_t *frame;     /* object; owned by the parser */
	size_t frame_keys_at_first; /* frame->n when the first message came */
	uint64_t messages;
	bool begun;
	char why[200]; /* a sink's sentence for its error */
} pb__chat_tg_chat_t;

typedef struct pb__chat_tg_sink_s {
	/* Called before the chat's first message, or at its end if it has none. */
	int (*chat_begin)(void *arg, pb__chat_tg_chat_t *chat);
	/* One message (object). The sink owns msg. */
	int (*message)(void *arg, pb__chat_tg_chat_t *chat, pb__cj_t *msg);
	int (*chat_end)(void *arg, pb__chat_tg_chat_t *chat);
	void *arg;
	bool single_only; /* refuse full exports (device files) */
	/* When set, called instead of message: the message's canonical form
	 * (pb__cj_write, PB__CJ_ORDER_MESSAGE), written from the parser's
	 * events with no tree, and its first "id" member when that is a
	 * number (its text, NUL-terminated; NULL otherwise). */
	int (*message_canon)(void *arg, pb__chat_tg_chat_t *chat, const pb_buf_t *canon, const char *id);
} pb__chat_tg_sink_t;

typedef struct pb__chat_tg_s pb__chat_tg_t;
PB_WUR int pb__chat_tg_new(pb__chat_tg_t **out, const pb__chat_tg_sink_t *sink);
/* The same parser over yajl behind a \xNN filter, as it was before
 * chat-json-lex.c: the same events, canonical bytes and error codes, for
 * tests and the fuzz target to compare with. */
PB_WUR int pb__chat_tg_new_yajl(pb__chat_tg_t **out, const pb__chat_tg_sink_t *sink);
/* Feeds bytes (any split); errors are sentences in errbuf with the offset. */
PB_WUR int pb__chat_tg_feed(pb__chat_tg_t *p, const uint8_t *buf, size_t len, char *errbuf, size_t errcap);
PB_WUR int pb__chat_tg_finish(pb__chat_tg_t *p, char *errbuf, size_t errcap);
void pb__chat_tg_free(pb__chat_tg_t *p);
/* Parses a whole file through the stream parser in fixed-size reads. */
PB_WUR int pb__chat_tg_parse_file(const char *path, const pb__chat_tg_sink_t *sink, char *errbuf, size_t errcap);
/* Parses one JSON value from memory into a tree (for small items). */
PB_WUR int pb__chat_json_parse(const uint8_t *buf, size_t len, pb__cj_t **out);

/* --- Fuzz entry points (counts what was read; no files are written) -------- */

PB_WUR int pb__chat_telegram_parse_buf(const uint8_t *buf, size_t len);
PB_WUR int pb__chat_whatsapp_parse_buf(const uint8_t *buf, size_t len);
PB_WUR int pb__contacts_parse_buf(const uint8_t *buf, size_t len);

/* The canonical vCard 4.0 book of a vCard text (any version). */
PB_WUR int pb__contacts_canonical(const uint8_t *buf, size_t len, pb_buf_t *out);

/* --- Per-format importers and exporters (chat.c dispatches) ---------------- */

PB_WUR int pb__chat_import_telegram(pb__chat_stage_t *st, const char *file, char *errbuf, size_t errcap);
/* date_format (may be NULL) names the day/month order: "DD/MM/YY", "MM/DD/YY". */
PB_WUR int pb__chat_import_whatsapp(pb__chat_stage_t *st, const char *file, const char *date_format, char *errbuf,
				    size_t errcap);
/* The order a --date-format value names (0 D/M, 1 M/D, 2 Y/M/D), -1 for none,
 * PB_EINVAL when it names none. */
int pb__chat_whatsapp_order(const char *fmt);
/* True when the device has chats and every one came from WhatsApp. */
bool pb__chat_whatsapp_all(const char *device_dir);
PB_WUR int pb__chat_export_telegram(const char *device_dir, const char *out_dir, char *errbuf, size_t errcap);
PB_WUR int pb__chat_export_whatsapp(const char *device_dir, const char *out_dir, char *errbuf, size_t errcap);

/* Writes a canonical chat file (single-chat form) from a frame and messages
 * given one at a time: open, message..., close. */
typedef struct pb__chat_writer_s {
	FILE *f;
	uint64_t n;          /* messages written */
	uint64_t header_len; /* bytes before the first message */
	char path[4096];
} pb__chat_writer_t;
/* The canonical head of a chat file: its fields, one a line, up to and
 * including the opening of "messages". */
PB_WUR int pb__chat_header(pb_buf_t *b, const pb__cj_t *frame);
/* Replaces the head of a chat file written by a writer (fields that came
 * after the messages). */
PB_WUR int pb__chat_rewrite_header(const char *path, uint64_t old_header_len, const pb__cj_t *frame);
/* True for an attachment member of a message ("photo", "file", "thumbnail")
 * whose value names a file. */
bool pb__chat_is_attachment(const pb__cj_t *member);
PB_WUR int pb__chat_writer_open(pb__chat_writer_t *w, const char *path, const pb__cj_t *frame);
PB_WUR int pb__chat_writer_message(pb__chat_writer_t *w, const pb__cj_t *msg);
PB_WUR int pb__chat_writer_close(pb__chat_writer_t *w);
void pb__chat_writer_abort(pb__chat_writer_t *w);

#endif
