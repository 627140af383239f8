/* Fuzzes chunk opening: the first 32 bytes are the claimed name, the rest
 * the sealed chunk, under a fixed key (the seeds are sealed with it, so
 * mutations of the payload reach the decompressor's checks only when they
 * keep authentication, i.e. the header and length parsing). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peerback/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[65536];
	uint8_t mk[PB_MASTERKEY_LEN];
	pb_backup_keys_t keys;
	size_t plen;

	if (size < PB_STORE_NAME_LEN)
		return 0;
	memset(mk, 0x5a, sizeof(mk));
	pb_backup_keys_derive(mk, &keys);
	(void)pb_chunk_open(&keys, data, data + PB_STORE_NAME_LEN, size - PB_STORE_NAME_LEN, out,
			    sizeof(out), &plen);
	pb_backup_keys_wipe(&keys);
	return 0;
}
