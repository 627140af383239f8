/* MIFARE Classic Tool .mct parser: never crashes, and what it accepts
 * formats to a text that parses to the same text again. */
#include <stdlib.h>
#include <string.h>

#include "peerback/nfc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_mifare_card_t *card = NULL, *again = NULL;
	pb_buf_t a = { 0 }, b = { 0 };
	char err[256];

	if (pb_mifare_parse_mct(data, size, &card, err, sizeof(err)) != 0)
		return 0;
	if (pb_mifare_format_mct(card, &a) != 0)
		abort();
	/* Canonical input comes back byte for byte. */
	if (pb_mifare_parse_mct(a.data, a.len, &again, err, sizeof(err)) != 0)
		abort();
	if (pb_mifare_format_mct(again, &b) != 0 || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	pb_buf_free(&a);
	pb_buf_free(&b);
	free(card);
	free(again);
	return 0;
}
