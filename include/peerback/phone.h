/* The phone: one handle per phone state directory (its identity, account,
 * remembered hosts and backup state), and everything a phone does with it.
 *
 * Threads: a handle is used by one thread at a time; different handles are
 * independent. Every call blocks until done (a phone app runs them on a
 * worker thread); its event callback is called on the calling thread.
 * Ownership: strings passed in are copied or used only during the call;
 * anything returned through an out-pointer is the caller's, freed with the
 * function named beside it. */
#ifndef PEERBACK_PHONE_H
#define PEERBACK_PHONE_H

#include "peerback/common.h"
#include "peerback/event.h"
#include "peerback/kinds.h"
#include "peerback/provider.h"
#include "peerback/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pb_phone_s pb_phone_t;

/* Opens the phone whose state lives in home (created 0700 if missing). The
 * items come from the device directory set with pb_phone_set_device_dir or
 * from a provider set with pb_phone_set_provider. */
PB_EXTERN PB_WUR int pb_phone_open(const char *home, pb_phone_t **out);
PB_EXTERN void pb_phone_close(pb_phone_t *phone);
/* The default provider over a device directory (docs/DATA.md). */
PB_EXTERN PB_WUR int pb_phone_set_device_dir(pb_phone_t *phone, const char *dir);
/* An application's own provider; *provider is copied, provider->arg must
 * outlive the handle or the next set call. */
PB_EXTERN PB_WUR int pb_phone_set_provider(pb_phone_t *phone, const pb_provider_t *provider);
PB_EXTERN const char *pb_phone_home(const pb_phone_t *phone);

/* --- Backup, restore, verify ---------------------------------------------- */

typedef struct pb_op_opts_s {
	const char *host;        /* remembered host name or key prefix; NULL: the latest */
	const char *passphrase;  /* the account's recovery passphrase when needed, or NULL */
	unsigned kind_mask;      /* 1u << kind; 0: every kind */
	const char *item_id;     /* restore: one item (a chat: with its messages) */
	const char *from_device; /* restore: another device's backup (hex id) */
	uint64_t snapshot;       /* restore: this snapshot; 0: the latest */
	bool dry_run;            /* PB_EVENT_PLAN per item; nothing written or sent */
	int timeout_ms;          /* per network step; 0: 30 s */
	pb_event_cb on_event;    /* may be NULL; non-zero return cancels */
	void *event_arg;
	bool weak_kdf;           /* tests only: cheap Argon2id limits for a first backup's key wrap */
} pb_op_opts_t;

typedef struct pb_op_result_s {
	uint64_t snapshot;
	uint64_t items, bytes;         /* items and plaintext bytes covered */
	uint64_t items_changed;
	uint64_t chunks_sent, bytes_sent;
	uint64_t skipped;              /* backup: sources skipped (a partial backup) */
	uint64_t bad_items;            /* verify: items that did not match */
	uint64_t added, changed, unchanged; /* restore dry run */
	char device[33];               /* restore: whose backup (hex) */
	double seconds;
	uint64_t chunks_total;         /* backup: chunks the snapshot references */
	uint64_t items_kept;           /* backup: items of skipped sources kept from the last backup */
	uint64_t items_carried;        /* backup of some kinds: the other kinds' items, kept */
	uint64_t chunks_cached;        /* restore: chunks an interrupted run had fetched */
	uint64_t snapshot_known;       /* restore refused as a rollback (PB_ESTORE_ROLLBACK):
					* the newest snapshot this phone completed there */
	uint64_t replaced;             /* restore that failed: files already replaced */
	bool by_state;                 /* restore, fetch: found through the phone's state */
	char link[512];                /* restore refused with PB_EDATA_LINK: the link */
	char bad_path[512];            /* backup failed on a source it cannot read: which */
} pb_op_result_t;

PB_EXTERN PB_WUR int pb_phone_backup(pb_phone_t *phone, const pb_op_opts_t *opts, pb_op_result_t *res);
PB_EXTERN PB_WUR int pb_phone_restore(pb_phone_t *phone, const pb_op_opts_t *opts, pb_op_result_t *res);
PB_EXTERN PB_WUR int pb_phone_verify(pb_phone_t *phone, const pb_op_opts_t *opts, pb_op_result_t *res);

typedef struct pb_snapshot_info_s {
	uint64_t id;
	int64_t time;
	uint64_t size, chunks;
} pb_snapshot_info_t;
/* *out is malloc'd (free it with free()). */
PB_EXTERN PB_WUR int pb_phone_snapshots(pb_phone_t *phone, const pb_op_opts_t *opts, pb_snapshot_info_t **out,
					size_t *n);
/* Calls cb with each item of opts->snapshot (0: the latest) of this phone,
 * or of opts->from_device, or, on a new phone, of the account's most recent
 * backup (as a restore picks it); the item is borrowed for the call. res
 * (may be NULL) gets snapshot, device and items. */
PB_EXTERN PB_WUR int pb_phone_items(pb_phone_t *phone, const pb_op_opts_t *opts, pb_manifest_item_cb cb, void *arg,
				    pb_op_result_t *res);
/* One item's bytes from the host's latest snapshot; *data is malloc'd. */
PB_EXTERN PB_WUR int pb_phone_fetch(pb_phone_t *phone, const pb_op_opts_t *opts, const char *id, uint8_t **data,
				    size_t *len);

/* --- Account, pairing, hosts, instructions, NFC ----------------------------- */
/* (declared below by the account and NFC parts) */

#ifdef __cplusplus
}
#endif
#endif
