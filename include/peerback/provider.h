/* Item providers: where a phone's items come from on backup and go to on
 * restore. The device directory in the real interchange formats
 * (docs/DATA.md) is the default provider; a phone app supplies its own (its
 * NFC stack, its chat database) without touching files. */
#ifndef PEERBACK_PROVIDER_H
#define PEERBACK_PROVIDER_H

#include "peerback/common.h"
#include "peerback/kinds.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pb_provider_s {
	void *arg;
	/* Calls cb once for every item of the kinds in kind_mask (1u << kind),
	 * in a stable order. Each item gives kind, id, size and a change stamp
	 * (pb_item_t.mtime_ns: any number that changes when the item does).
	 * It may carry its bytes (data, len) or a file to read them from; if
	 * it carries neither, the library calls read() for it, and only when
	 * its size or stamp changed since the last backup. A non-zero return
	 * from cb must stop the walk and be returned. A source it cannot read
	 * or parse is told to bad (may be NULL): the walk skips it when bad
	 * returns 0 (the library keeps that source's last backed-up items)
	 * and stops with bad's return otherwise. */
	int (*list)(void *arg, unsigned kind_mask, pb_item_cb cb, pb_scan_bad_cb bad, void *cb_arg);
	/* Appends one item's bytes to out (the library frees it). May be NULL
	 * when every item carries its bytes or a file. */
	int (*read)(void *arg, const pb_item_t *item, pb_buf_t *out);
	/* Restore: begin gives a transaction, write is called per item (data
	 * in memory, or a large item in item->file; either is lent for the
	 * call only), commit makes them all visible at once and ends the
	 * transaction, abort drops it: called for a restore that fails or is
	 * canceled, and after a commit that failed. Nothing may be visible to
	 * the phone's user before commit returns 0. Called on the thread of
	 * the operation. */
	int (*begin)(void *arg, void **txn);
	int (*write)(void *txn, const pb_item_t *item);
	int (*commit)(void *txn);
	void (*abort)(void *txn);
} pb_provider_t;

/* The default provider over a device directory (docs/DATA.md). dir is
 * copied; free with pb_provider_dir_free. A restore into a folder that
 * does not exist builds it beside and renames it into place at commit;
 * into an existing one each file is staged beside its target and renamed
 * over it at commit; nothing is written through a symbolic link. */
PB_EXTERN PB_WUR int pb_provider_dir(const char *dir, pb_provider_t **out);
PB_EXTERN void pb_provider_dir_free(pb_provider_t *p);

#ifdef __cplusplus
}
#endif
#endif
