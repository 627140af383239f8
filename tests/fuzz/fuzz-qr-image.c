/* Fuzz target: QR image decoding from memory (PNG through libpng, netpbm,
 * then libzbar). Any result is fine; crashes, leaks and hangs are not. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "peerback.h"
#include "peerback/qr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[PB_URI_MAX_LEN + 1];
	int rc = pb_qr_decode_mem(data, size, text, sizeof(text));

	/* A success is a NUL-terminated peerback URI of the length returned. */
	if (rc >= 0 && (strlen(text) != (size_t)rc || strncasecmp(text, "peerback://", 11) != 0))
		__builtin_trap();
	return 0;
}
