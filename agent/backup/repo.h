/* Where a phone's backups live, as the backup engine sees it: a repository
 * of sealed chunks, snapshots and small blobs per device of one account.
 * Two implementations: the remote one talks to a paired host over an
 * authenticated session (agent/backup/remote.c, the only protobuf user of
 * the engine), the local one works on a host store directly
 * (agent/backup/local.c), so backup and restore also run in-process.
 *
 * Device ids are PB_DEVICE_ID_LEN (16) bytes; dev NULL is the phone's own.
 * Every buffer returned through an out-pointer is malloc'd, the caller's. */
#ifndef PB_AGENT_BACKUP_REPO_H
#define PB_AGENT_BACKUP_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "peerback/error.h"
#include "peerback/store.h"

typedef uint8_t pb_repo_name_t[PB_STORE_NAME_LEN];

typedef struct pb_repo_s pb_repo_t;

/* A device of the account with at least one snapshot. */
typedef struct pb_repo_device_s {
	uint8_t id[16];
	char name[65];
	int64_t latest; /* time of its latest snapshot */
} pb_repo_device_t;

typedef struct pb_repo_ops_s {
	/* missing[i]: the repository lacks names[i]. */
	int (*missing)(pb_repo_t *r, const pb_repo_name_t *names, size_t n, bool *missing);
	/* Adds a chunk; durable only after commit. */
	int (*put)(pb_repo_t *r, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len);
	/* Makes every put so far durable (the receipt). */
	int (*commit)(pb_repo_t *r);
	/* missing and commit in two steps, so that several are in flight
	 * while puts go on: *_send asks (tok names the answer), *_recv takes
	 * the answer. Answers are taken in the order they were asked for,
	 * and none of them between other calls than put. missing_recv is
	 * given the names again (the caller keeps them until then). */
	int (*missing_send)(pb_repo_t *r, const pb_repo_name_t *names, size_t n, uint64_t *tok);
	int (*missing_recv)(pb_repo_t *r, uint64_t tok, const pb_repo_name_t *names, size_t n, bool *missing);
	int (*commit_send)(pb_repo_t *r, uint64_t *tok);
	int (*commit_recv)(pb_repo_t *r, uint64_t tok);
	/* Chunk reads in two steps, so that a remote one keeps several in
	 * flight: get_send asks for a chunk, get_recv takes the answers in the
	 * order they were asked for. */
	int (*get_send)(pb_repo_t *r, const uint8_t *dev, const uint8_t name[PB_STORE_NAME_LEN], uint64_t *tok);
	int (*get_recv)(pb_repo_t *r, uint64_t tok, uint8_t **ct, size_t *len);
	int (*snapshot_list)(pb_repo_t *r, const uint8_t *dev, pb_store_snapinfo_t **out, size_t *n);
	int (*snapshot_get)(pb_repo_t *r, const uint8_t *dev, uint64_t snap, uint8_t **blob, size_t *len);
	int (*snapshot_put)(pb_repo_t *r, uint64_t snap, const uint8_t *root, size_t len, const pb_repo_name_t *refs,
			    size_t nrefs);
	/* key NULL: the device's wrapped master key. PB_ENOTFOUND if none. */
	int (*blob_get)(pb_repo_t *r, const uint8_t *dev, const char *key, uint8_t **val, size_t *len);
	int (*blob_put)(pb_repo_t *r, const char *key, const uint8_t *val, size_t len);
	/* The account's devices that have snapshots. */
	int (*devices)(pb_repo_t *r, pb_repo_device_t **out, size_t *n);
	void (*close)(pb_repo_t *r);
	/* snapshot_list in two steps, answered in order with get_send's
	 * requests: list_send sends at once what get_send held with it, so
	 * that chunks asked ahead of it go out in the same segment. */
	int (*list_send)(pb_repo_t *r, const uint8_t *dev, uint64_t *tok);
	int (*list_recv)(pb_repo_t *r, uint64_t tok, pb_store_snapinfo_t **out, size_t *n);
} pb_repo_ops_t;

struct pb_repo_s {
	const pb_repo_ops_t *ops;
	uint8_t device_id[16]; /* the phone's own device */
	uint8_t host_pk[32];   /* names the repository in the phone's state */
};

/* Connects to a remembered host (which: name or key prefix, NULL: the
 * latest) and carries out the instructions it queued for this phone on
 * device_dir (report hears of each; both may be NULL). */
PB_WUR int pb__repo_remote_open(const char *home, const char *which, int timeout_ms, const char *device_dir,
				void (*report)(void *arg, const char *op, int rc, const char *message), void *arg,
				pb_repo_t **out);

/* A remote repository's connection writes from a thread of its own from
 * here on (pb__client_tx_start): for a backup, whose puts would otherwise
 * cost its thread the socket's writes. Other repositories: nothing. */
void pb__repo_remote_bulk(pb_repo_t *r);

/* A host store in dir, for the phone device_id (16 bytes) of account:
 * backups run in this process. The store is opened (and locked) here. */
PB_WUR int pb__repo_local_open(const char *dir, const char *account, const uint8_t device_id[16], pb_repo_t **out);
/* The same, read only and without the store's lock: beside the host that
 * runs on it (a desktop reading a backup it keeps). Nothing can be put. */
PB_WUR int pb__repo_local_open_ro(const char *dir, const char *account, const uint8_t device_id[16],
				  pb_repo_t **out);

static inline void pb__repo_close(pb_repo_t *r)
{
	if (r != NULL)
		r->ops->close(r);
}

/* The latest of the n snapshots s that a listing answered with rc (s is
 * freed); PB_ESTORE_NOSNAP if none. */
static inline int pb__repo_latest_of(int rc, pb_store_snapinfo_t *s, size_t n, uint64_t *snap)
{
	*snap = 0;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (s[i].id > *snap)
			*snap = s[i].id;
	free(s);
	return rc != 0 ? rc : *snap == 0 ? PB_ESTORE_NOSNAP : 0;
}

/* The id of dev's latest snapshot; PB_ESTORE_NOSNAP if none. */
static inline int pb__repo_latest(pb_repo_t *r, const uint8_t *dev, uint64_t *snap)
{
	pb_store_snapinfo_t *s = NULL;
	size_t n = 0;
	int rc = r->ops->snapshot_list(r, dev, &s, &n);

	return pb__repo_latest_of(rc, s, n, snap);
}

/* One chunk, asked for and received. */
static inline int pb__repo_get(pb_repo_t *r, const uint8_t *dev, const uint8_t name[PB_STORE_NAME_LEN],
			       uint8_t **ct, size_t *len)
{
	uint64_t tok;
	int rc = r->ops->get_send(r, dev, name, &tok);

	return rc != 0 ? rc : r->ops->get_recv(r, tok, ct, len);
}

#endif
