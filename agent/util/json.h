/* The library's JSON text (events as lines, the agent's reports, the
 * control socket): jansson builds and escapes the object, so a name, a
 * message or a path with a newline, a quote or a control character cannot
 * forge a line or a field. The library prints none of it itself. Private
 * to the library. */
#ifndef PB_AGENT_JSON_H
#define PB_AGENT_JSON_H

#include <stdarg.h>

#include <jansson.h>

/* A JSON string holding s. Bytes that are not UTF-8 become U+FFFD, so text
 * from a peer, a database or a file always prints. NULL s gives JSON null.
 * A new reference (for json_pack's "o"), or NULL when out of memory. */
json_t *pb__json_text(const char *s);

/* The same object as one line of text without a newline: malloc'd, the
 * caller frees; NULL when out of memory. */
char *pb__json_format(const char *fmt, ...);
char *pb__json_vformat(const char *fmt, va_list ap);

#endif
