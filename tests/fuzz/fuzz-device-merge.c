/* Fuzz target: restoring items from a backup (hostile) into a multi-item
 * file that holds other or older versions of them. The input is a selector
 * byte (vCard book, Telegram chat, SIM CSV), the file on the phone, a NUL,
 * and the backup's file, split into items. Whenever both files parse, the
 * merge must succeed (never fail on duplicates), and its result must
 * parse. */
#include <stdlib.h>
#include <string.h>

#include "peerback/error.h"
#include "agent/kinds/internal.h"
#include "agent/kinds/util.h"

struct items {
	pb_item_t v[512];
	char *ids[512];
	uint8_t *data[512];
	size_t n;
	bool overflow;
};

static int collect(void *arg, const pb_item_t *item)
{
	struct items *x = arg;
	pb_item_t *it;

	if (x->n == 512) {
		x->overflow = true;
		return 1;
	}
	it = &x->v[x->n];
	*it = *item;
	x->ids[x->n] = strdup(item->id);
	x->data[x->n] = malloc(item->len ? item->len : 1);
	if (x->ids[x->n] == NULL || x->data[x->n] == NULL)
		abort();
	memcpy(x->data[x->n], item->data, item->len);
	it->id = x->ids[x->n];
	it->data = x->data[x->n];
	it->after = x->n > 0 ? x->ids[x->n - 1] : NULL;
	x->n++;
	return 0;
}

static void items_free(struct items *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->ids[i]);
		free(x->data[i]);
	}
	x->n = 0;
}

static int ignore(void *arg, const pb_item_t *item)
{
	(void)arg;
	(void)item;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const pb_codec_t *codecs[] = { &pb__codec_vcard, &pb__codec_telegram, &pb__codec_sim_csv };
	static const char *paths[] = { "contacts/contacts.vcf", "chats/7/result.json", "sim/profiles.csv" };
	static struct items backup;
	const uint8_t *sep;
	const pb_codec_t *codec;
	const char *path;
	pb_buf_t out = { 0 };
	size_t have_len;
	int rc;

	if (size < 2)
		return 0;
	codec = codecs[data[0] % 3];
	path = paths[data[0] % 3];
	data++;
	size--;
	sep = memchr(data, 0, size);
	if (sep == NULL)
		return 0;
	have_len = (size_t)(sep - data);
	memset(&backup, 0, sizeof(backup));
	/* A restore writes a file only for the items it brings. */
	if (codec->split(path, sep + 1, size - have_len - 1, collect, &backup) != 0 || backup.overflow ||
	    backup.n == 0) {
		items_free(&backup);
		return 0;
	}
	rc = pb__device_merge(codec, path, data, have_len, backup.v, backup.n, &out);
	if (rc == 0) {
		/* What the merge wrote reads back. (That no id appears twice
		 * is checked end to end: ids derived from vCard UIDs can
		 * collide on hostile input, and the codec's split then gives
		 * one id to two cards.) */
		if (codec->split(path, out.data, out.len, ignore, NULL) != 0)
			abort();
	} else if (codec->split(path, data, have_len, ignore, NULL) == 0 && rc != PB_ENOMEM) {
		abort(); /* both parse: merging them never fails */
	}
	pb_buf_free(&out);
	items_free(&backup);
	return 0;
}
