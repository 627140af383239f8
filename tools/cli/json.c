/* The --json output of the peerback commands. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

/* Pure ASCII out: everything else is \u-escaped, so no byte of a name can
 * reach a terminal as a control sequence. */
#define LINE_FLAGS (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10))

int pb_cli_json(const char *fmt, ...)
{
	json_error_t err;
	json_t *obj;
	char *line;
	va_list ap;

	va_start(ap, fmt);
	obj = json_vpack_ex(&err, 0, fmt, ap);
	va_end(ap);
	line = obj != NULL ? json_dumps(obj, LINE_FLAGS) : NULL;
	json_decref(obj);
	if (line == NULL)
		return PB_ENOMEM;
	printf("%s\n", line);
	fflush(stdout);
	free(line);
	return 0;
}

json_t *pb_cli_text(const char *s)
{
	char *clean = NULL;
	json_t *j = NULL;

	if (s == NULL)
		return json_null();
	if (pb_text_utf8(s, &clean) == 0)
		j = json_string(clean);
	free(clean);
	return j;
}

double pb_cli_milli(double v)
{
	return round(v * 1000.0) / 1000.0;
}
