/* telegram-bigfile: writes a synthetic Telegram Desktop full export of about
 * N MiB (pretty-printed as Telegram writes it, with text arrays, entities,
 * service messages and \xNN escapes), and imports an export into a device
 * directory, for measuring the importer's memory on big files.
 *
 *   telegram-bigfile write FILE MIB [CHATS]
 *   telegram-bigfile import DEVICE_DIR FILE
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peerback/error.h"
#include "agent/kinds/internal.h"

static const char *const texts[] = {
	"Are we still on for tomorrow?",
	"Wir sehen uns um acht am Bahnhof.",
	"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82! \xd0\x9a\xd0\xb0\xd0\xba \xd0\xb4\xd0\xb5\xd0\xbb\xd0\xb0?",
	"\xe6\x98\x8e\xe5\xa4\xa9\xe8\xa7\x81\xef\xbc\x81 \xf0\x9f\x98\x80",
	"a control character \\x0b inside, and a quote \\\" too",
};

static int write_message(FILE *f, unsigned long long id, unsigned long long chat, bool last)
{
	unsigned long long t = 1609459200ull + id * 37;
	const char *s = texts[id % 5];
	int n;

	if (id % 50 == 0)
		n = fprintf(f,
			    "   {\n    \"id\": %llu,\n    \"type\": \"service\",\n    \"date\": \"2021-01-01T00:00:00\",\n"
			    "    \"date_unixtime\": \"%llu\",\n    \"actor\": \"Anna\",\n    \"actor_id\": \"user%llu\",\n"
			    "    \"action\": \"pin_message\",\n    \"message_id\": %llu,\n    \"text\": \"\",\n"
			    "    \"text_entities\": []\n   }%s\n",
			    id, t, chat, id - 1, last ? "" : ",");
	else if (id % 3 == 0)
		n = fprintf(f,
			    "   {\n    \"id\": %llu,\n    \"type\": \"message\",\n    \"date\": \"2021-01-01T00:00:00\",\n"
			    "    \"date_unixtime\": \"%llu\",\n    \"from\": \"Bob\",\n    \"from_id\": \"user%llu\",\n"
			    "    \"reply_to_message_id\": %llu,\n    \"text\": [\n     \"%s \",\n     {\n"
			    "      \"type\": \"link\",\n      \"text\": \"https://example.org/%llu\"\n     }\n    ],\n"
			    "    \"text_entities\": [\n     {\n      \"type\": \"plain\",\n      \"text\": \"%s \"\n     },\n"
			    "     {\n      \"type\": \"link\",\n      \"text\": \"https://example.org/%llu\"\n     }\n    ]\n"
			    "   }%s\n",
			    id, t, chat, id - 1, s, id, s, id, last ? "" : ",");
	else
		n = fprintf(f,
			    "   {\n    \"id\": %llu,\n    \"type\": \"message\",\n    \"date\": \"2021-01-01T00:00:00\",\n"
			    "    \"date_unixtime\": \"%llu\",\n    \"from\": \"Anna\",\n    \"from_id\": \"user%llu\",\n"
			    "    \"photo\": \"(File not included. Change data exporting settings to download.)\",\n"
			    "    \"width\": 1280,\n    \"height\": 960,\n    \"text\": \"%s\",\n"
			    "    \"text_entities\": [\n     {\n      \"type\": \"plain\",\n      \"text\": \"%s\"\n     }\n"
			    "    ]\n   }%s\n",
			    id, t, chat, s, s, last ? "" : ",");
	return n < 0 ? -1 : n;
}

static int write_export(const char *path, unsigned long long mib, unsigned long long chats)
{
	unsigned long long target = mib << 20, per_chat = target / chats, c, id, written = 0, chat_bytes;
	FILE *f = fopen(path, "wb");
	int n;

	if (f == NULL) {
		fprintf(stderr, "telegram-bigfile: %s: %s\n", path, strerror(errno));
		return 1;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	fputs("{\n \"about\": \"Here is the data you requested.\",\n \"chats\": {\n  \"about\": \"all chats\",\n"
	      "  \"list\": [\n",
	      f);
	for (c = 0; c < chats; c++) {
		fprintf(f, "   {\n    \"name\": \"Chat %llu\",\n    \"type\": \"private_group\",\n    \"id\": %llu,\n"
			   "    \"messages\": [\n",
			c, 4000000000ull + c);
		chat_bytes = 0;
		for (id = 1;; id++) {
			bool last = chat_bytes >= per_chat;

			n = write_message(f, id, c, last);
			if (n < 0) {
				fclose(f);
				return 1;
			}
			chat_bytes += (unsigned long long)n;
			if (last)
				break;
		}
		written += chat_bytes;
		fprintf(f, "    ]\n   }%s\n", c + 1 == chats ? "" : ",");
	}
	fputs("  ]\n }\n}\n", f);
	if (fclose(f) != 0) {
		fprintf(stderr, "telegram-bigfile: %s: write failed\n", path);
		return 1;
	}
	printf("wrote %s: %llu chats, about %llu MiB\n", path, chats, written >> 20);
	return 0;
}

int main(int argc, char **argv)
{
	char err[512] = "";
	const char *files[1];
	int rc;

	if (argc >= 4 && strcmp(argv[1], "write") == 0)
		return write_export(argv[2], strtoull(argv[3], NULL, 10),
				    argc >= 5 && strtoull(argv[4], NULL, 10) > 0 ? strtoull(argv[4], NULL, 10) : 4);
	if (argc == 4 && strcmp(argv[1], "import") == 0) {
		files[0] = argv[3];
		rc = pb__import_chat(argv[2], files, 1, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "telegram-bigfile: %s\n", err);
			return 1;
		}
		return 0;
	}
	fprintf(stderr, "usage: telegram-bigfile write FILE MIB [CHATS] | import DEVICE_DIR FILE\n");
	return 2;
}
