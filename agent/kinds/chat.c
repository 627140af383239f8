/* The chat kind's entry points: import (Telegram result.json, or a WhatsApp
 * .txt), export ("auto", "telegram", "whatsapp"). Formats are in chat-telegram.c and
 * chat-whatsapp*.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

/* True for a ".json" file or one that starts (after blanks and a BOM) with
 * '{' or '[' (but not "[<digit>"). */
static bool looks_like_json(const char *path)
{
	size_t n = strlen(path);
	FILE *f;
	int c;

	if (n >= 5 && strcmp(path + n - 5, ".json") == 0)
		return true;
	f = fopen(path, "rb");
	if (f == NULL)
		return false;
	do
		c = fgetc(f);
	while (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0xef || c == 0xbb || c == 0xbf);
	/* "[1/31/2024, ..." is an iOS WhatsApp line, not a JSON array. */
	if (c == '[') {
		int d = fgetc(f);

		c = d >= '0' && d <= '9' ? 0 : '[';
	}
	fclose(f);
	return c == '{' || c == '[';
}

int pb__import_chat(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap)
{
	return pb__import_chat_dated(device_dir, files, n, NULL, errbuf, errcap);
}

int pb__import_chat_dated(const char *device_dir, const char *const *files, size_t n, const char *date_format,
			  char *errbuf, size_t errcap)
{
	pb__chat_stage_t st;
	char path[4200];
	struct stat sb;
	size_t i;
	int err, k;

	if (device_dir == NULL || (files == NULL && n > 0))
		return pb__chat_fail(errbuf, errcap, PB_EINVAL, "no device directory or files given");
	if (n == 0)
		return pb__chat_fail(errbuf, errcap, PB_EINVAL, "no files to import");
	if ((err = pb__chat_stage_open(&st, device_dir)) != 0)
		return pb__chat_fail(errbuf, errcap, err, "%s: cannot prepare the import: %s", device_dir,
				     pb_strerror(err));
	for (i = 0; i < n; i++) {
		/* A Telegram export folder stands for its result.json, an
		 * unpacked iOS WhatsApp export for its _chat.txt. */
		if (stat(files[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
			k = snprintf(path, sizeof(path), "%s/result.json", files[i]);
			if (k > 0 && (size_t)k < sizeof(path) && access(path, F_OK) != 0)
				k = snprintf(path, sizeof(path), "%s/_chat.txt", files[i]);
		} else
			k = snprintf(path, sizeof(path), "%s", files[i]);
		if (k < 0 || (size_t)k >= sizeof(path)) {
			err = pb__chat_fail(errbuf, errcap, PB_ETOOBIG, "%s: path too long", files[i]);
			goto out_abort;
		}
		if (access(path, R_OK) != 0) {
			err = pb__chat_fail(errbuf, errcap, -errno, "cannot open %s: %s", path, strerror(errno));
			goto out_abort;
		}
		if (looks_like_json(path))
			err = pb__chat_import_telegram(&st, path, errbuf, errcap);
		else
			err = pb__chat_import_whatsapp(&st, path, date_format, errbuf, errcap);
		if (err != 0)
			goto out_abort;
	}
	if ((err = pb__chat_stage_commit(&st)) != 0)
		return pb__chat_fail(errbuf, errcap, err, "%s: cannot move the imported chats into place: %s",
				     device_dir, pb_strerror(err));
	return 0;
out_abort:
	pb__chat_stage_abort(&st);
	return err;
}

int pb__export_chat(const char *device_dir, const char *format, const char *out_dir, char *errbuf, size_t errcap)
{
	if (device_dir == NULL || format == NULL || out_dir == NULL)
		return pb__chat_fail(errbuf, errcap, PB_EINVAL, "no device, format or output directory given");
	/* "auto": the format the chats came in (all WhatsApp: WhatsApp). */
	if (strcmp(format, "auto") == 0)
		format = pb__chat_whatsapp_all(device_dir) ? "whatsapp" : "telegram";
	if (strcmp(format, "telegram") == 0)
		return pb__chat_export_telegram(device_dir, out_dir, errbuf, errcap);
	if (strcmp(format, "whatsapp") == 0)
		return pb__chat_export_whatsapp(device_dir, out_dir, errbuf, errcap);
	return pb__chat_fail(errbuf, errcap, PB_EUNSUPPORTED,
			     "unknown chat export format \"%s\"; use auto, telegram or whatsapp", format);
}
