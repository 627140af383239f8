/* Fuzzes the JSON writer with the strings a peer, a database or a file can
 * put in a --json line: whatever the bytes, the line is one JSON object of
 * pure ASCII without a newline, and it reads back as the same string (bytes
 * that are not UTF-8 as U+FFFD). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *line;
	json_t *back, *want;
	json_error_t err;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	line = pb__json_format("{s:s, s:o}", "event", "fuzz", "name", pb__json_text(text));
	if (line == NULL)
		abort();
	for (const unsigned char *p = (const unsigned char *)line; *p != 0; p++)
		if (*p < 0x20 || *p > 0x7f)
			abort();
	back = json_loads(line, 0, &err);
	if (back == NULL || !json_is_object(back) || json_object_size(back) != 2)
		abort();
	/* Valid UTF-8 comes back byte for byte. */
	want = json_string(text);
	if (want != NULL && !json_equal(want, json_object_get(back, "name")))
		abort();
	json_decref(want);
	json_decref(back);
	free(line);
	free(text);
	return 0;
}
