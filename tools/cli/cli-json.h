/* One JSON object a line on stdout, for the commands' --json output. */
#ifndef PB_CLI_JSON_H
#define PB_CLI_JSON_H

#include <jansson.h> /* json_int_t for "I" */

/* Builds an object as jansson's json_pack(fmt, ...) does and prints it as
 * one line of pure ASCII, then flushes. Text from the library is valid
 * UTF-8 ("s"); a string that may not be goes in through "o" with
 * json_string of text the caller checked. Returns 0, or -1 when the object
 * could not be built (nothing is printed). */
int pb_cli_json(const char *fmt, ...);

#endif
