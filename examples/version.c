/* The smallest program on libpeerback: which library it runs on, and how
 * its errors read. Build it against an installed library with
 *
 *   cc version.c $(pkg-config --cflags --libs peerback)
 */
#include <stdio.h>
#include <string.h>

#include <peerback.h>

int main(void)
{
	/* The headers' version is fixed at build time; pb_version() tells the
	 * library actually loaded, which may be a newer one. */
	printf("peerback %s (built with %s, protocol %d)\n", pb_version(), PB_VERSION_STRING,
	       PB_PROTOCOL_VERSION);
	/* Every call returns 0 or a negative code; pb_strerror and
	 * pb_err_name turn one into words for a user and for logs. */
	printf("%s: %s\n", pb_err_name(PB_ESTORE_PASSPHRASE), pb_strerror(PB_ESTORE_PASSPHRASE));
	return strcmp(pb_version(), PB_VERSION_STRING) == 0 ? 0 : 1;
}
