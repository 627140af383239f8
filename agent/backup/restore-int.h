/* A restore's state, shared by restore.c (fetching and writing the items)
 * and restore-items.c (which items: selection, collection from manifest
 * chunks, the snapshot's root and its id index). */
#ifndef PB_AGENT_BACKUP_RESTORE_INT_H
#define PB_AGENT_BACKUP_RESTORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/internal.h"

struct want_item {
	pb_manifest_item_t m;
	char *id, *path;
	char *after; /* the item before it in its file, or NULL */
	name_t *names;
};

enum restore_mode { MODE_RESTORE, MODE_VERIFY, MODE_FETCH };

struct restore {
	const pb_engine_opts_t *o;
	pb_repo_t *repo;
	bool repo_owned;
	const pb_provider_t *prov;
	pb_provider_t *prov_owned;
	void *txn;              /* the provider's restore transaction; NULL when verifying or fetching */
	pb_backup_keys_t keys;
	bool keys_ready;        /* keys already derived for dev_id */
	uint8_t dev_id[16];     /* whose backup */
	pb__prog_t pr;
	pb_engine_result_t *res;
	const char *exact_id;   /* fetch: this id only, into out */
	bool fast;              /* items found through the phone's state */
	uint8_t *out;
	size_t out_len;
	bool found;
	/* Items of the manifest chunk being processed. */
	struct want_item *items;
	size_t nitems, cap_items;
	/* restore --dry-run: the target's items, sorted by id. */
	struct local_item *local;
	size_t nlocal, cap_local;
	/* The manifest's previous item: the one before the next in its file. */
	char *prev_id, *prev_path;
	uint64_t prev_seq;
	char tmpdir[4096];
	bool tmpdir_made;       /* made at the first item that needs a temporary file */
	unsigned tmpn;
	pb__cache_t *cache;     /* opened at the first fetch that keeps chunks */
	/* A full restore into a folder: the write queue (large items' writes,
	 * and the items handed to the folder's writer in batches, on its
	 * thread) lives for the whole run; NULL otherwise. */
	pb__wq_t *wq;
	struct dbatch *batch;   /* items not yet queued */
	/* The snapshot's id index (version 2 roots), or NULL. */
	uint8_t *index;
	size_t nindex;
	/* The root as the root cache mapped it (index and the manifest chunks
	 * point into it), or nothing. */
	pb__root_t cached_root;
	/* The chunk opened last, kept for the next manifest chunk's items: a
	 * chat stream's chunk holds messages of several manifest chunks. */
	uint8_t *held, held_name[PB_STORE_NAME_LEN];
	size_t held_len;
	/* The phone's state as the fast path opened it, for the rollback
	 * check (one open a run). */
	pb_backup_state_t *st;
	/* The latest snapshot of latest_dev, asked once per run. */
	bool latest_asked;
	int latest_rc;
	uint64_t latest;
	uint8_t latest_dev[16];
	/* Index and manifest chunks of a lookup by id, asked for together. */
	struct prefetched {
		uint8_t name[PB_STORE_NAME_LEN];
		uint8_t *ct;
		size_t len;
	} pre[6];
	size_t npre;
	/* The rollback check's value taken from HOME/root-cache/rollback
	 * (agent/backup/restore-mark.c) instead of the state: marked. */
	bool marked, mark_has;
	uint64_t mark_known;
	/* The decompression context of a lookup by id's index and manifest
	 * chunks, or NULL. */
	struct ZSTD_DCtx_s *dctx;
	/* Asked ahead (pb__restore_ask_ahead), answers not yet taken: the
	 * latest snapshot of dev and the index chunks pre[0..ngets) of the
	 * root the root cache holds for dev (root, opened with keys). */
	struct ahead {
		bool pending, listed;
		uint8_t dev[16];
		uint64_t list_tok, tok[2];
		size_t ngets;
		pb_backup_keys_t keys;
		pb__root_t root;
	} ahead;
};

/* Item selection and collection (agent/backup/restore-items.c). */

/* A pb_manifest_chunk_open callback (arg: the restore): adds the item to
 * r->items when it is wanted, and notes it as the manifest's previous. */
PB_WUR int pb__restore_collect(void *arg, const pb_manifest_item_t *m);
void pb__restore_items_free(struct restore *r);

/* pb__repo_latest, asked of the repository once per run and device. */
PB_WUR int pb__restore_latest(struct restore *r, const uint8_t dev[16], uint64_t *snap);

/* A restore of one chat message asks, before it opens the phone's state,
 * for the latest snapshot and the index chunks the root cache names for
 * the message; pb__restore_ahead_take takes the answers (before any other
 * request is answered: pb__restore_latest, pb__restore_open_snapshot and
 * the device list call it). */
void pb__restore_ask_ahead(struct restore *r, const char *want);
void pb__restore_ahead_take(struct restore *r);
void pb__restore_ahead_free(struct restore *r);

/* The rollback check's value (pb_backup_state_host_done: the newest
 * snapshot this phone completed with the host host_pk; has: there is one)
 * kept beside the state's stamp (agent/backup/restore-mark.c). Load:
 * PB_ENOTFOUND unless kept for this host and the state is unchanged since.
 * Save: began is pb__rollback_mark_clock() just before the value was read;
 * nothing is kept if the state changed since. */
uint64_t pb__rollback_mark_clock(void);
PB_WUR int pb__rollback_mark_load(const char *home, const uint8_t host_pk[32], uint64_t *known, bool *has);
void pb__rollback_mark_save(const char *home, const uint8_t host_pk[32], uint64_t began, uint64_t known, bool has);

/* Opens the snapshot (snap 0: the latest) of r->dev_id with the right key:
 * its manifest chunks, and its id index in r->index. */
PB_WUR int pb__restore_open_snapshot(struct restore *r, uint64_t *snap, name_t **mchunks, size_t *nm,
				     uint64_t *nitems);

/* One item by id through the snapshot's id index: whether it applies, and
 * the item (a message with its chat's frame) collected into r->items
 * without a walk; the caller fetches them. */
bool pb__restore_index_applies(const struct restore *r, enum restore_mode mode, const char *want);
PB_WUR int pb__restore_index_collect(struct restore *r, const char *want, const name_t *mchunks, size_t nm);
void pb__restore_prefetch_free(struct restore *r);

#endif
