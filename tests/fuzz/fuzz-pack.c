/* Fuzzes the pack record parser over a whole pack image, as verify and
 * repack read it from disk: records back to back after the pack header. */
#include <stdint.h>
#include <string.h>

#include "agent/store/internal.h"
#include "peerback/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0, sum = 0;
	pb__pack_rec_t rec;

	if (size >= PB__PACK_HDR_LEN && memcmp(data, PB__PACK_HDR, PB__PACK_HDR_LEN) == 0)
		off = PB__PACK_HDR_LEN;
	while (off < size) {
		size_t ct_len;
		int rc = pb__pack_rec_head_parse(data + off, size - off, &ct_len);

		if (rc < 0)
			break;
		rc = pb__pack_rec_parse(data + off, size - off, &rec);
		if (rc < 0 && rc != PB_ESTORE_HASH /* a damaged record is skipped */)
			break;
		if (rc == 0)
			sum += rec.name[0] + (rec.ct_len ? rec.ct[rec.ct_len - 1] : 0) + rec.hash[31];
		off += PB__REC_LEN(ct_len);
	}
	return (int)(sum & 0);
}
