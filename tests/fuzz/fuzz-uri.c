/* Fuzz target: the pairing URI parser. Whatever it accepts must format back
 * into a URI that parses to the same fields. */
#include <stdint.h>
#include <string.h>

#include "peerback.h"
#include "peerback/qr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[PB_URI_MAX_LEN + 1];
	pb_pair_uri_t u, back;
	int n;

	if (pb_uri_parse((const char *)data, size, 1763780000, &u) != 0 &&
	    pb_uri_parse((const char *)data, size, 0, &u) != 0)
		return 0;
	n = pb_uri_format(&u, text, sizeof(text));
	if (n < 0 && n != PB_EURI_TOOLONG)
		__builtin_trap();
	if (n < 0)
		return 0;
	if (pb_uri_parse(text, (size_t)n, 0, &back) != 0)
		__builtin_trap();
	if (memcmp(u.host_pk, back.host_pk, 32) != 0 || memcmp(u.secret, back.secret, 32) != 0 ||
	    u.naddrs != back.naddrs || u.expiry != back.expiry || strcmp(u.host_name, back.host_name) != 0 ||
	    strcmp(u.account_hint, back.account_hint) != 0 ||
	    memcmp(u.addrs, back.addrs, u.naddrs * sizeof(u.addrs[0])) != 0)
		__builtin_trap();
	return 0;
}
