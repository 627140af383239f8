/* Fuzz target: the envelope decoder. The input is a sequence of messages,
 * each a 2-byte length and its bytes, fed to one decoder so that fragment
 * sequences are exercised too. */
#include <stdint.h>

#include "protocol/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_envelope_decoder_t d;
	size_t off = 0;

	pb__envelope_decoder_init(&d, 1 << 20);
	while (size - off >= 2) {
		size_t len = ((size_t)data[off] << 8) | data[off + 1];
		pb_envelope_t *env = NULL;

		off += 2;
		if (len > size - off)
			len = size - off;
		if (pb__envelope_decode(&d, data + off, len, &env) == 1)
			pb__envelope_free(env);
		off += len;
	}
	pb__envelope_decoder_free(&d);
	return 0;
}
