/* Fuzz target: the envelope decoder. The input is a sequence of messages,
 * each a 2-byte length and its bytes, fed to one decoder so that fragment
 * sequences are exercised too. An input of odd size has each message first
 * placed where pb__envelope_place says (as a session decrypts it). */
#include <stdint.h>
#include <string.h>

#include "protocol/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_envelope_decoder_t d;
	size_t off = 0;

	pb__envelope_decoder_init(&d, 1 << 20);
	while (size - off >= 2) {
		size_t len = ((size_t)data[off] << 8) | data[off + 1];
		int placed = size & 1;
		pb_envelope_t *env = NULL;
		uint8_t *at;
		int rc;

		off += 2;
		if (len > size - off)
			len = size - off;
		if (placed && (at = pb__envelope_place(&d, len)) != NULL) {
			memcpy(at, data + off, len);
			rc = pb__envelope_decode_placed(&d, at, len, &env);
		} else {
			rc = pb__envelope_decode(&d, data + off, len, &env);
		}
		if (rc == 1)
			pb__envelope_free(env);
		off += len;
	}
	pb__envelope_decoder_free(&d);
	return 0;
}
