/* Fuzzes the manifest decoders: a manifest chunk's plaintext and a root's
 * plaintext, both of which come back from a host that may be hostile. The
 * first input byte picks the decoder. */
#include <stdint.h>
#include <string.h>

#include "peerback/store.h"

static int touch_item(void *arg, const pb_manifest_item_t *it)
{
	size_t *sum = arg;
	size_t i;

	*sum += strlen(it->id) + strlen(it->path) + it->nchunks;
	for (i = 0; i < it->nchunks; i++)
		*sum += it->chunks[i][0] + it->chunks[i][PB_STORE_NAME_LEN - 1];
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t sum = 0;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		int64_t t;
		uint64_t n;
		const uint8_t *names;
		size_t nc;

		if (pb_manifest_root_parse(data + 1, size - 1, &t, &n, &names, &nc) == 0 && nc > 0)
			sum += names[nc * PB_STORE_NAME_LEN - 1];
	} else {
		(void)pb_manifest_parse(data + 1, size - 1, touch_item, &sum);
	}
	return (int)(sum & 0);
}
