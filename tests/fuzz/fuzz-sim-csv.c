/* pySim-prog CSV: the canonical rewriter is a fixed point, and the
 * profiles.csv codec joins what it split into the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "peerback/nfc.h"
#include "agent/kinds/internal.h"

typedef struct items_s {
	pb_item_t v[64];
	uint8_t *data[64];
	char *id[64];
	size_t n;
	bool overflow;
} items_t;

static int keep(void *arg, const pb_item_t *item)
{
	items_t *it = arg;

	if (it->n >= 64) {
		it->overflow = true;
		return 1;
	}
	it->data[it->n] = malloc(item->len ? item->len : 1);
	it->id[it->n] = strdup(item->id);
	if (it->data[it->n] == NULL || it->id[it->n] == NULL)
		abort();
	memcpy(it->data[it->n], item->data, item->len);
	it->v[it->n] = *item;
	it->v[it->n].data = it->data[it->n];
	it->v[it->n].id = it->id[it->n];
	it->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const pb_codec_t *codec = pb_codec_for("sim/profiles.csv");
	pb_buf_t a = { 0 }, b = { 0 };
	items_t *it = calloc(1, sizeof(*it));
	char err[256];
	int rc;

	if (it == NULL)
		abort();
	if (pb_sim_csv_canonical(data, size, &a, err, sizeof(err)) == 0) {
		if (pb_sim_csv_canonical(a.data, a.len, &b, err, sizeof(err)) != 0 || a.len != b.len ||
		    memcmp(a.data, b.data, a.len) != 0)
			abort();
	}
	pb_buf_free(&a);
	pb_buf_free(&b);
	rc = codec->split("sim/profiles.csv", data, size, keep, it);
	if (rc == 0 && it->n > 0 && !it->overflow) {
		if (codec->join("sim/profiles.csv", it->v, it->n, &a) != 0 || a.len != size || memcmp(a.data, data, size) != 0)
			abort();
		pb_buf_free(&a);
	}
	for (size_t i = 0; i < it->n; i++) {
		free(it->data[i]);
		free(it->id[i]);
	}
	free(it);
	return 0;
}
