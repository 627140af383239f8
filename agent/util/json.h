/* The one JSON writer behind every line peerback prints with --json and
 * every host event line: jansson builds and escapes the object, so a name,
 * a message or a path with a newline, a quote or a control character
 * cannot forge a line or a field. Private to the library and its programs. */
#ifndef PB_AGENT_JSON_H
#define PB_AGENT_JSON_H

#include <stdarg.h>

#include <jansson.h>

/* A JSON string holding s. Bytes that are not UTF-8 become U+FFFD, so text
 * from a peer, a database or a file always prints. NULL s gives JSON null.
 * A new reference (for json_pack's "o"), or NULL when out of memory. */
json_t *pb__json_text(const char *s);

/* Builds an object as json_pack(fmt, ...) does and prints it on stdout as
 * one line, then flushes. Text that does not come from the program itself
 * goes in with "o" and pb__json_text, never with "s" (which refuses bytes
 * that are not UTF-8, and the line would be lost). The line is pure ASCII
 * (other characters \u-escaped); reals have at most 10 significant
 * digits. Returns 0, or PB_ENOMEM when the object could not be built
 * (nothing is printed). */
int pb__json_print(const char *fmt, ...);

/* v rounded to 3 decimals, for seconds and milliseconds as reals. */
double pb__json_milli(double v);

/* The same object as one line of text without a newline: malloc'd, the
 * caller frees; NULL when out of memory. */
char *pb__json_format(const char *fmt, ...);
char *pb__json_vformat(const char *fmt, va_list ap);

#endif
