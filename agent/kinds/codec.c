/* The table of codecs for files that hold many items. */
#include <stddef.h>

#include "agent/kinds/internal.h"

const pb_codec_t *pb_codec_for(const char *relpath)
{
	const pb_codec_t *table[] = { &pb__codec_sim_csv, &pb__codec_telegram, &pb__codec_vcard };

	if (relpath == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i]->matches(relpath))
			return table[i];
	return NULL;
}
