/* The table of codecs for files that hold many items. The chat and contacts
 * codecs are weak references, so that a build without those kinds still
 * links; a missing codec is skipped and its files are whole-file items. */
#include <stddef.h>

#include "agent/kinds/internal.h"

extern const pb_codec_t pb__codec_telegram __attribute__((weak));
extern const pb_codec_t pb__codec_vcard __attribute__((weak));

const pb_codec_t *pb_codec_for(const char *relpath)
{
	const pb_codec_t *table[] = { &pb__codec_sim_csv, &pb__codec_telegram, &pb__codec_vcard };

	if (relpath == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i] != NULL && table[i]->matches != NULL && table[i]->matches(relpath))
			return table[i];
	return NULL;
}
