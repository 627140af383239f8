/* The desktop's read-only view of a backup: the account's master key
 * unwrapped with the recovery passphrase (kept in memory only), the latest
 * snapshot of one device restored from the host's own store by the
 * library's restore (pb_store_restore: the snapshot's format is none of
 * the desktop's business) and laid out as a device directory in a private
 * folder on a memory file system, so that the library's exporters read it
 * as they read a phone's. Lock wipes the key and removes the folder. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback.h"
#include "desktop.h"

/* Where decrypted items may live: memory-backed, private to this user. */
static int private_dir(char *out, size_t cap)
{
	const char *bases[] = {"/dev/shm", getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), "/tmp"};

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (bases[i] == NULL || bases[i][0] == 0)
			continue;
		if ((size_t)snprintf(out, cap, "%s/peerback-desktop-XXXXXX", bases[i]) >= cap)
			continue;
		if (mkdtemp(out) != NULL)
			return 0;
	}
	return -errno;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	if (dir[0] != 0)
		(void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Keeps a chat message for search (in memory, wiped on lock). */
static int index_message(pb_desktop_view_t *v, const pb_item_t *it)
{
	if (it->kind != PB_KIND_CHAT || it->data == NULL || strstr(it->id, "/msg/") == NULL)
		return 0;
	return pb_desktop_msgs_add(&v->msgs, it->id, it->data, it->len);
}

/* Large chat attachments (photos, videos, voice) are most of a phone's
 * bytes and nothing the pages show: they stay encrypted until a chat
 * download needs them (pb_desktop_view_attachments). */
static bool deferred(const pb_manifest_item_t *it)
{
	return it->kind == PB_KIND_CHAT && it->seq == 0 && it->size >= 256 * 1024;
}

/* The provider the restore writes to at open: the device directory, with
 * every chat message also kept for search as it passes. */
struct tap {
	pb_desktop_view_t *v;
	pb_provider_t *dir;
	void *txn;
};

static int tap_begin(void *arg, void **txn)
{
	struct tap *t = arg;

	*txn = t;
	return t->dir->begin(t->dir->arg, &t->txn);
}

static int tap_write(void *txn, const pb_item_t *item)
{
	struct tap *t = txn;
	int rc = index_message(t->v, item);

	return rc != 0 ? rc : t->dir->write(t->txn, item);
}

static int tap_commit(void *txn)
{
	struct tap *t = txn;

	return t->dir->commit(t->txn);
}

static void tap_abort(void *txn)
{
	struct tap *t = txn;

	t->dir->abort(t->txn);
}

/* What an open restores: every item but the deferred attachments, each
 * counted by kind. */
static bool open_wants(void *arg, const pb_manifest_item_t *it)
{
	pb_desktop_view_t *v = arg;

	v->counts[it->kind < 6 ? it->kind : 0]++;
	if (deferred(it)) {
		v->pending++;
		return false;
	}
	return true;
}

static bool attachment_wanted(void *arg, const pb_manifest_item_t *it)
{
	(void)arg;
	return deferred(it);
}

struct open_events {
	atomic_bool *quit;
	pb_store_progress_cb progress;
	void *parg;
};

static int on_restore_event(void *arg, const pb_event_t *ev)
{
	struct open_events *oe = arg;

	if (oe->quit != NULL && atomic_load(oe->quit))
		return 1;
	if (ev->type == PB_EVENT_PROGRESS && oe->progress != NULL)
		oe->progress(oe->parg, ev->items_done, ev->items_total);
	return 0;
}

/* Restores the kinds in mask of the open device's latest snapshot, the
 * items want takes, through the library's restore path into provider. */
static int restore_into(pb_desktop_view_t *v, const char *home, unsigned mask,
			bool (*want)(void *, const pb_manifest_item_t *), const pb_provider_t *provider,
			struct open_events *oe, pb_op_result_t *res)
{
	char store[4096], work[600];
	pb_store_restore_opts_t o;

	snprintf(store, sizeof(store), "%s/store", home);
	snprintf(work, sizeof(work), "%s/work", v->dir);
	if (mkdir(work, 0700) != 0 && errno != EEXIST)
		return -errno;
	memset(&o, 0, sizeof(o));
	o.store_dir = store;
	o.account = v->account;
	o.device = v->device;
	o.master_key = v->mk;
	o.work_dir = work;
	o.provider = provider;
	o.kind_mask = mask;
	o.want = want;
	o.want_arg = v;
	o.on_event = oe != NULL ? on_restore_event : NULL;
	o.event_arg = oe;
	return pb_store_restore(&o, res);
}

int pb_desktop_view_attachments(pb_desktop_view_t *v, const char *home)
{
	char path[600];
	pb_provider_t *p = NULL;
	pb_op_result_t res;
	int rc;

	if (v->pending == 0)
		return 0;
	snprintf(path, sizeof(path), "%s/device", v->dir);
	if ((rc = pb_provider_dir(path, &p)) != 0)
		return rc;
	rc = restore_into(v, home, 1u << PB_KIND_CHAT, attachment_wanted, p, NULL, &res);
	pb_provider_dir_free(p);
	if (rc == 0)
		v->pending = 0;
	return rc;
}

/* The account's master key, unwrapped with the passphrase from the copy
 * the device left on this host (memory only). */
static int unwrap_key(pb_desktop_view_t *v, const char *home, const char *passphrase, int64_t *time)
{
	char path[4096];
	pb_store_t *store = NULL;
	pb_store_ns_t *ns = NULL;
	pb_store_snapinfo_t *snaps = NULL;
	uint8_t *blob = NULL;
	size_t blen = 0, nsnaps = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/store", home);
	if ((rc = pb_store_open_ro(path, &store)) != 0)
		return rc;
	if ((rc = pb_store_ns_open_ro(store, v->account, v->device, &ns)) != 0)
		goto out;
	if ((rc = pb_store_snapshot_list(ns, &snaps, &nsnaps)) != 0)
		goto out;
	if (nsnaps == 0) {
		rc = PB_ESTORE_NOSNAP;
		goto out;
	}
	*time = snaps[nsnaps - 1].time;
	if ((rc = pb_store_blob_get(ns, "masterkey", &blob, &blen)) != 0)
		goto out;
	rc = pb_masterkey_unwrap(blob, blen, passphrase, v->mk);
out:
	free(blob);
	free(snaps);
	if (ns != NULL)
		pb_store_ns_close(ns);
	pb_store_close(store);
	return rc;
}

int pb_desktop_view_open(pb_desktop_view_t *v, const char *home, const char *account, const char *device,
			 const char *passphrase, atomic_bool *quit, pb_store_progress_cb progress, void *parg)
{
	char path[600];
	struct open_events oe = {quit, progress, parg};
	struct tap tap = {v, NULL, NULL};
	pb_provider_t prov = {&tap, NULL, NULL, tap_begin, tap_write, tap_commit, tap_abort};
	pb_op_result_t res;
	int64_t t = 0;
	int rc;

	pb_desktop_view_lock(v);
	snprintf(v->account, sizeof(v->account), "%s", account);
	snprintf(v->device, sizeof(v->device), "%s", device);
	if ((rc = unwrap_key(v, home, passphrase, &t)) != 0)
		goto out;
	v->open = true;
	v->time = t;
	if ((rc = private_dir(v->dir, sizeof(v->dir))) != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/device", v->dir);
	if ((rc = pb_provider_dir(path, &tap.dir)) != 0)
		goto out;
	rc = restore_into(v, home, 0, open_wants, &prov, &oe, &res);
	if (rc == PB_ENOTFOUND && v->msgs.n == 0 && mkdir(path, 0700) == 0)
		rc = 0; /* a snapshot with nothing to show */
	if (rc == 0)
		v->snapshot = res.snapshot;
out:
	if (tap.dir != NULL)
		pb_provider_dir_free(tap.dir);
	if (rc != 0)
		pb_desktop_view_lock(v);
	return rc;
}

void pb_desktop_view_lock(pb_desktop_view_t *v)
{
	sodium_memzero(v->mk, sizeof(v->mk));
	pb_desktop_msgs_free(&v->msgs);
	v->pending = 0;
	rm_tree(v->dir);
	v->dir[0] = 0;
	v->device[0] = 0;
	v->account[0] = 0;
	memset(v->counts, 0, sizeof(v->counts));
	v->open = false;
}
