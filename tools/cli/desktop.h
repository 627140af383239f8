/* peerback desktop: the host with a local web app (docs/DESKTOP.md). */
#ifndef PB_CLI_DESKTOP_H
#define PB_CLI_DESKTOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "peerback.h"

/* The chat messages of an open backup, for search: per message its id
 * and what the page shows of it (in text, each NUL-terminated), and what a
 * search looks at, folded to lower case (in lower, each NUL-terminated);
 * at[2i] and at[2i+1] are message i's offsets in both. Wiped on free. */
typedef struct pb_desktop_msgs_s {
	pb_buf_t text, lower;
	size_t *at;
	size_t n, cap;
} pb_desktop_msgs_t;

/* Adds a message (id, and its bytes as backed up: a Telegram JSON object
 * or a WhatsApp line). */
int pb_desktop_msgs_add(pb_desktop_msgs_t *m, const char *id, const uint8_t *data, size_t len);
/* Page page (per messages a page) of the messages whose text holds q
 * (ASCII letters in any case; every message for ""), with their total. */
json_t *pb_desktop_msgs_search(const pb_desktop_msgs_t *m, const char *q, size_t page, size_t per);
void pb_desktop_msgs_free(pb_desktop_msgs_t *m);

/* An open backup: the master key (memory only), the decrypted device
 * directory under dir (a private folder on a memory file system) and the
 * chat messages for search. */
typedef struct pb_desktop_view_s {
	bool open;
	uint8_t mk[PB_MASTERKEY_LEN];
	char device[PB_HOST_DEVICE_HEX];
	char dir[512];
	uint64_t snapshot;
	int64_t time;
	uint64_t counts[6]; /* items per kind */
	pb_desktop_msgs_t msgs;
	uint64_t pending;   /* large attachments still encrypted */
	char account[PB_HOST_TEXT_MAX];
} pb_desktop_view_t;

/* Unwraps the master key of account's device with passphrase (from the
 * store under home) and decrypts its latest snapshot through the library's
 * restore (pb_store_restore), all but the large chat attachments, telling
 * progress (may be NULL) the items done of all.
 * PB_ESTORE_PASSPHRASE for a wrong passphrase; PB_ECANCELED when *quit
 * became true meanwhile. Whatever was open in v before is locked first. */
int pb_desktop_view_open(pb_desktop_view_t *v, const char *home, const char *account, const char *device,
			 const char *passphrase, atomic_bool *quit, pb_store_progress_cb progress, void *parg);
/* Decrypts the large chat attachments the open left in the store (a chat
 * download needs them). */
int pb_desktop_view_attachments(pb_desktop_view_t *v, const char *home);
/* Wipes the key and the messages and removes the folder. */
void pb_desktop_view_lock(pb_desktop_view_t *v);

/* Page page (per items a page) of the kind's items in the device directory
 * dir, as the web app shows them, secrets masked unless reveal. */
json_t *pb_desktop_items(const char *dir, pb_kind_t kind, size_t page, size_t per, bool reveal);

/* The embedded web app (generated at build time from tools/cli/desktop/). */
typedef struct pb_desktop_asset_s {
	const char *path; /* "/app.js" */
	const char *type; /* its Content-Type */
	const unsigned char *data;
	size_t len;
} pb_desktop_asset_t;
extern const pb_desktop_asset_t pb_desktop_assets[];

#endif
