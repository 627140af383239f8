/* The --json line writer of the command line. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "tools/cli/cli-json.h"

int pb_cli_json(const char *fmt, ...)
{
	json_error_t error;
	va_list ap;
	json_t *o;
	char *text;

	va_start(ap, fmt);
	o = json_vpack_ex(&error, 0, fmt, ap);
	va_end(ap);
	if (o == NULL)
		return -1;
	/* Pure ASCII: no byte of a name reaches a terminal as a control sequence. */
	text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (text == NULL)
		return -1;
	printf("%s\n", text);
	fflush(stdout);
	free(text);
	return 0;
}
