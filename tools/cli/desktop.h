/* peerback desktop: the host with a local web app (docs/DESKTOP.md). */
#ifndef PB_CLI_DESKTOP_H
#define PB_CLI_DESKTOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "peerback.h"

/* One chat message of an open backup: its id and its bytes as backed up. */
typedef struct pb_desktop_msg_s {
	char *id;
	char *text;
	size_t len;
	char *lower;      /* what a search looks at, ASCII folded to lower case */
	size_t lower_len;
} pb_desktop_msg_t;

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
	pb_desktop_msg_t *msgs;
	size_t nmsgs, capmsgs;
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
