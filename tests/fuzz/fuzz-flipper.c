/* Flipper .nfc MIFARE Classic files: never crashes; what it accepts
 * formats to a text that is a fixed point of parse and format. */
#include <stdlib.h>
#include <string.h>

#include "peerback/nfc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_mifare_card_t *card = NULL, *again = NULL;
	pb_buf_t a = { 0 }, b = { 0 };
	char err[256];

	if (pb_mifare_parse_flipper(data, size, &card, err, sizeof(err)) != 0)
		return 0;
	if (pb_mifare_format_flipper(card, &a) != 0 || pb_mifare_parse_flipper(a.data, a.len, &again, err, sizeof(err)) != 0 ||
	    pb_mifare_format_flipper(again, &b) != 0 || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	pb_buf_free(&a);
	pb_buf_free(&b);
	free(card);
	free(again);
	return 0;
}
