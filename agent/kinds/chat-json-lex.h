/* The streaming JSON reader of Telegram exports (agent/kinds/chat-json-lex.c):
 * a tokenizer and grammar that accept what yajl 2.1 accepts with its default
 * options (no comments, strings checked as UTF-8, one value, whitespace
 * " \t\n\v\f\r"), hand the same events in the same order, and decode string
 * escapes as yajl does, plus Telegram's invalid "\xNN" escapes, read as
 * "\u00NN". A string without escapes is handed as it lies in the input, not
 * copied. Tokens may be split across feeds at any byte. */
#ifndef PB_KINDS_CHAT_JSON_LEX_H
#define PB_KINDS_CHAT_JSON_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The events, yajl's in shape; a callback returns 0 to stop the parse. A
 * string's plain says that s is its JSON text between the quotes (no escapes,
 * hence no '"', '\\' or control byte: it is its own canonical form). */
typedef struct pb__jlex_events_s {
	int (*null_value)(void *ctx);
	int (*boolean)(void *ctx, int b);
	int (*number)(void *ctx, const char *s, size_t len);
	int (*string)(void *ctx, const unsigned char *s, size_t len, bool plain);
	int (*start_map)(void *ctx);
	int (*map_key)(void *ctx, const unsigned char *key, size_t len);
	int (*end_map)(void *ctx);
	int (*start_array)(void *ctx);
	int (*end_array)(void *ctx);
} pb__jlex_events_t;

/* Results of pb__jlex_feed and pb__jlex_finish. */
enum {
	PB__JLEX_OK = 0,
	PB__JLEX_STOPPED,   /* a callback returned 0 */
	PB__JLEX_MALFORMED, /* not JSON: pb__jlex_error says why */
	PB__JLEX_TOOBIG,    /* a string or number over the token cap */
	PB__JLEX_NOMEM,
	PB__JLEX_EARLY_END, /* finish: the text ends inside a value */
};

typedef struct pb__jlex_s pb__jlex_t;

/* A reader calling ev with ctx. A number of more than token_max bytes, or
 * a string whose text between the quotes and its closing quote are more,
 * is refused (PB__JLEX_TOOBIG), as soon as that many are buffered. NULL
 * when out of memory. */
pb__jlex_t *pb__jlex_new(const pb__jlex_events_t *ev, void *ctx, size_t token_max);
void pb__jlex_free(pb__jlex_t *x);
/* Reads len bytes; after a result other than PB__JLEX_OK every later call
 * returns it again. */
int pb__jlex_feed(pb__jlex_t *x, const uint8_t *buf, size_t len);
/* The end of the text: a token waiting for its end is read as if a space
 * followed, then the value must be complete. */
int pb__jlex_finish(pb__jlex_t *x);
/* Bytes read up to the last event or error (for messages). */
uint64_t pb__jlex_offset(const pb__jlex_t *x);
/* A sentence for PB__JLEX_MALFORMED and PB__JLEX_EARLY_END (static). */
const char *pb__jlex_error(const pb__jlex_t *x);

#endif
