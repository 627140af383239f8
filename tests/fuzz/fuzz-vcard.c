/* Fuzz target: vCard books. The canonical form must be a fixed point, and
 * the codec's join must give back the bytes its split accepted. */
#include <stdlib.h>
#include <string.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

static int append(void *arg, const pb_item_t *item)
{
	return pb__chat_buf_add(arg, item->data, item->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_buf_t joined = {0}, once = {0}, twice = {0};

	(void)pb__contacts_parse_buf(data, size);
	if (pb__contacts_canonical(data, size, &once) == 0 &&
	    (pb__contacts_canonical(once.data, once.len, &twice) != 0 || twice.len != once.len ||
	     (once.len > 0 && memcmp(twice.data, once.data, once.len) != 0)))
		abort();
	pb__chat_buf_clear(&once);
	pb__chat_buf_clear(&twice);
	if (pb__codec_vcard.split("contacts/contacts.vcf", data, size, append, &joined) == 0 &&
	    (joined.len != size || (size > 0 && memcmp(joined.data, data, size) != 0)))
		abort();
	pb__chat_buf_clear(&joined);
	return 0;
}
