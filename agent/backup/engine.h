/* The phone's backup engine: backs a provider's items (a device directory
 * by default) up to a repository (the paired host over an authenticated
 * session, or a host store in this process), restores them (all, one kind,
 * or one item), verifies them, and fetches single items (NFC fallback).
 * Private to the library; applications use include/peerback/phone.h.
 * Files: backup.c, restore.c (fetching and writing what a restore takes),
 * restore-items.c (which items: selection, the snapshot root, the id
 * index), assemble.c (item assembly), master.c (the master key),
 * remote.c and local.c (the repositories, repo.h),
 * provider-dir.c (the device directory), engine.c (what they share).
 *
 * Phone state under HOME: master.key (the 32-byte master key, 0600),
 * master.wrapped (the same key wrapped with the recovery passphrase, as the
 * host holds it), backup-state.db (what the host already holds). */
#ifndef PB_AGENT_BACKUP_ENGINE_H
#define PB_AGENT_BACKUP_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "peerback/event.h"
#include "peerback/kinds.h"
#include "peerback/phone.h"
#include "peerback/provider.h"
#include "peerback/store.h"

struct pb_repo_s;

typedef struct pb_progress_s {
	const char *phase;      /* "scan", "backup", "restore", "verify" */
	uint64_t items_done, items_total;
	uint64_t bytes_done, bytes_total;
	uint64_t bytes_sent;    /* ciphertext bytes that went to the host */
	uint64_t bytes_committed; /* of those, the ones the host acknowledged */
	uint64_t chunks_sent;
	bool final;
} pb_progress_t;

typedef void (*pb_progress_cb)(void *arg, const pb_progress_t *p);

typedef struct pb_engine_opts_s {
	const char *home;        /* phone state directory */
	const char *device_dir;  /* backup source / restore target */
	/* Where items come from and go to; NULL: the device directory
	 * device_dir (pb_provider_dir). */
	const pb_provider_t *provider;
	/* The repository; NULL: a session with the remembered host (host).
	 * Tests and in-process use pass a local one (agent/backup/repo.h). */
	struct pb_repo_s *repo;
	/* Progress, warnings, plan lines and instructions as events; a
	 * non-zero return cancels at the next safe point (PB_ECANCELED):
	 * nothing is left half-written, and a backup's committed chunks are
	 * not sent again by the next run. */
	pb_event_cb on_event;
	void *event_arg;
	const char *host;        /* remembered host name or key prefix, NULL: latest */
	const char *passphrase;  /* recovery passphrase when needed, or NULL */
	/* Argon2id limits for a new wrapped master key; NULL: MODERATE. Only
	 * tests pass the INTERACTIVE ones. */
	const pb_pwhash_params_t *wrap_params;
	unsigned kind_mask;      /* 1u << kind; 0: every kind */
	const char *item_id;     /* restore: one item (or a chat and its messages) */
	const char *from_device; /* restore: another device's backup (hex id) */
	uint64_t snapshot;       /* restore: this snapshot; 0: the latest */
	int timeout_ms;          /* per network step (0: 30 s) */
	pb_progress_cb progress; /* may be NULL */
	void *progress_arg;
	/* Told of each remote instruction carried out on connecting (may be NULL). */
	void (*on_instruction)(void *arg, const char *op, int rc, const char *message);
	void *instruction_arg;
	/* Told of each multi-item file that does not parse, which the backup
	 * skips (its last backed-up items are kept); line 0 when unknown. */
	void (*on_skip)(void *arg, const char *path, uint64_t line, const char *why);
	void *skip_arg;
	/* Told of each file (relative) a restore that then failed had already
	 * replaced in an existing target; normally none: files are renamed
	 * into place only once everything was fetched and checked. */
	void (*on_replaced)(void *arg, const char *path);
	void *replaced_arg;
	/* restore: write nothing; tell on_plan, for each item the restore
	 * would write, whether the target lacks it ("added"), holds other
	 * bytes under its id ("replaced") or the same ("unchanged"), judged
	 * by the content hash the backup recorded (nothing is fetched).
	 * backup: scan and chunk as usual and offer the names, so that the
	 * host tells which it lacks; count what would be sent (items_changed,
	 * chunks_sent, bytes_sent) but send no chunk, snapshot or key and
	 * record nothing in the phone's state. */
	bool dry_run;
	void (*on_plan)(void *arg, const char *id, const char *path, const char *change);
	void *plan_arg;
	/* restore: the master key itself (PB_MASTERKEY_LEN bytes, the
	 * caller's), for a reader that is no phone: nothing under home is
	 * read or saved for it. NULL: the phone's key as usual. */
	const uint8_t *master_key;
	/* restore: keep no chunk for a later run to resume from (a reader's
	 * view into memory is redone whole when interrupted). */
	bool no_resume;
	/* restore: of the items kind_mask and item_id select, only those want
	 * (may be NULL) returns true for; called once per such item. */
	bool (*want)(void *arg, const pb_manifest_item_t *item);
	void *want_arg;
} pb_engine_opts_t;

/* What an operation did: the public result itself, so that pb_phone_*
 * hand it over as the engine filled it. */
typedef pb_op_result_t pb_engine_result_t;

/* Backs the device directory up (opts->kind_mask: only those kinds are read;
 * the snapshot still holds every kind, the others as this phone's previous
 * snapshot on the host had them). Unchanged items cost nothing; chunks the
 * host already committed are never sent again; an interrupted backup
 * resumes. Reports done only after the host committed the snapshot. A first
 * backup needs opts->passphrase to wrap the new master key; a weak one is
 * refused (PB_ESTORE_WEAKPASS) before anything is created. */
__attribute__((warn_unused_result)) int pb_engine_backup(const pb_engine_opts_t *opts, pb_engine_result_t *res);

/* Restores into opts->device_dir: everything, the kinds in kind_mask, or
 * item_id; a restore that finds no such item in the snapshot writes nothing
 * and returns PB_ENOTFOUND. A phone without a master key needs opts->passphrase. A failed
 * restore leaves the target as it was (a new target does not appear; see
 * on_replaced for the one exception); no symbolic link inside the target is
 * written through (PB_EDATA_LINK, res->link); without opts->snapshot, a host
 * whose latest snapshot of this phone is older than the last one the phone
 * completed there is refused with PB_ESTORE_ROLLBACK (res->snapshot and
 * res->snapshot_known name both). */
__attribute__((warn_unused_result)) int pb_engine_restore(const pb_engine_opts_t *opts, pb_engine_result_t *res);

/* Decrypts every item of the latest snapshot and checks it against the
 * content hash recorded at backup time. */
__attribute__((warn_unused_result)) int pb_engine_verify(const pb_engine_opts_t *opts, pb_engine_result_t *res);

/* One snapshot as listed by pb_engine_list. */
typedef struct pb_engine_snapshot_s {
	uint64_t id;
	int64_t time;
	uint64_t size, chunks;
} pb_engine_snapshot_t;

/* Lists the snapshots of this phone (or from_device); *out is malloc'd. */
__attribute__((warn_unused_result)) int pb_engine_list(const pb_engine_opts_t *opts, pb_engine_snapshot_t **out,
						       size_t *n);

/* Calls cb with each item of o->snapshot (0: the latest) of this phone (or
 * o->from_device, or the account's latest like a restore); res->snapshot,
 * res->device and res->items say which and how many. */
__attribute__((warn_unused_result)) int pb_engine_items(const pb_engine_opts_t *o, pb_manifest_item_cb cb, void *arg,
							pb_engine_result_t *res);

/* Fetches one item's bytes from the host's latest snapshot (malloc'd). */
__attribute__((warn_unused_result)) int pb_engine_fetch_item(const pb_engine_opts_t *opts, const char *id,
							     uint8_t **data, size_t *len);

/* The snapshot that holds the contacts kept for a SIM identity (recorded
 * by the last backup made while it was active): PB_ENOTFOUND if none. */
__attribute__((warn_unused_result)) int pb_engine_sim_snapshot(const pb_engine_opts_t *opts, const char *iccid,
							       const char *msisdn, uint64_t *snapshot);

#endif
