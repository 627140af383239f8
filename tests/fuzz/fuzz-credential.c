/* Credentials: the peerback JSON parser (canonical form is a fixed point)
 * and the pySim card-key CSV reader. */
#include <stdlib.h>
#include <string.h>

#include "peerback/nfc.h"
#include "agent/kinds/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_credential_t *c = NULL, *again = NULL;
	pb_buf_t a = { 0 }, b = { 0 };
	char err[256];
	size_t n;

	if (pb_credential_parse(data, size, &c, err, sizeof(err)) == 0) {
		(void)pb_credential_verify(c, 1700000000);
		if (pb_credential_format(c, &a) != 0 || pb_credential_parse(a.data, a.len, &again, err, sizeof(err)) != 0 ||
		    pb_credential_format(again, &b) != 0 || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
			abort();
		pb_buf_free(&a);
		pb_buf_free(&b);
		pb_credential_free(c);
		pb_credential_free(again);
	}
	(void)pb__credential_card_keys_parse(data, size, &n, err, sizeof(err));
	return 0;
}
