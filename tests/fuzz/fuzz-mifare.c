/* Every MIFARE Classic reader on the same bytes: binary dumps, Proxmark3
 * .eml, key files and the format sniffer. Binary dumps must come back
 * byte for byte; .eml must format to a fixed point. */
#include <stdlib.h>
#include <string.h>

#include "peerback/nfc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_mifare_card_t *card = NULL, *again = NULL;
	pb_buf_t a = { 0 }, b = { 0 };
	uint8_t keys[64][6];
	size_t n;
	char err[256];

	if (pb_mifare_parse_bin(data, size, &card, err, sizeof(err)) == 0) {
		if (pb_mifare_format_bin(card, &a) != 0 || a.len != size || memcmp(a.data, data, size) != 0)
			abort();
		pb_buf_free(&a);
		free(card);
		card = NULL;
	}
	if (pb_mifare_parse_eml(data, size, &card, err, sizeof(err)) == 0) {
		if (pb_mifare_format_eml(card, &a) != 0 || pb_mifare_parse_eml(a.data, a.len, &again, err, sizeof(err)) != 0 ||
		    pb_mifare_format_eml(again, &b) != 0 || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
			abort();
		pb_buf_free(&a);
		pb_buf_free(&b);
		free(card);
		free(again);
		card = again = NULL;
	}
	(void)pb_mifare_parse_keys(data, size, keys, 64, &n, err, sizeof(err));
	if (pb_mifare_parse_any(NULL, data, size, &card, err, sizeof(err)) == 0) {
		/* Whatever was read can be written in every format. */
		if (pb_mifare_format_mct(card, &a) != 0 || pb_mifare_format_pm3json(card, &a) != 0 ||
		    pb_mifare_format_flipper(card, &a) != 0 || pb_mifare_format_keys(card, &a) != 0)
			abort();
		pb_buf_free(&a);
		free(card);
	}
	return 0;
}
