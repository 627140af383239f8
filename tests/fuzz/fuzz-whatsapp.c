/* Fuzz target: WhatsApp .txt chat exports (both passes of the reader). */
#include "agent/kinds/chat-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)pb__chat_whatsapp_parse_buf(data, size);
	return 0;
}
