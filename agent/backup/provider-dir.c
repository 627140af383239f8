/* The default provider: a device directory in the real interchange formats
 * (docs/DATA.md). Backup walks it; a restore writes through a device
 * writer. A target that does not exist yet is built in a staging folder
 * beside it (.pbtmp-restore-NAME-XXXXXX) and renamed into place when
 * complete: a failed restore leaves no target. Into an existing target
 * (the live device directory) every file is staged beside its target as
 * the restore goes and renamed over it only at commit: a failed restore
 * leaves it as it was; should a rename itself fail, the files already
 * renamed are named (pb__dir_txn_replaced). No folder or file is written
 * through a symbolic link. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/kinds/internal.h"
#include "agent/util/fsutil.h"
#include "agent/util/testhook.h"

struct dirprov {
	pb_provider_t pub; /* first: the provider is the struct */
	char *dir;
	char bad[4096]; /* the file that stopped the last walk */
};

struct dirtxn {
	pb_device_writer_t *w;
	char writing[PB_MANIFEST_PATH_MAX + 1]; /* the multi-item file the writer holds */
	char stagedir[4096];
	char target[4096];
};

static int d_list(void *arg, unsigned kind_mask, pb_item_cb cb, pb_scan_bad_cb bad, void *cb_arg)
{
	struct dirprov *p = arg;

	p->bad[0] = 0;
	return pb_device_scan_skip(p->dir, kind_mask, cb, cb_arg, bad, cb_arg, p->bad, sizeof(p->bad));
}

int pb__provider_dir_list_files(const pb_provider_t *prov, unsigned kind_mask, pb__scan_file_cb fcb,
				const pb__item_hasher_t *h, pb_item_cb cb, pb_scan_bad_cb bad, void *arg)
{
	struct dirprov *p = prov->arg;

	p->bad[0] = 0;
	return pb__device_scan_files(p->dir, kind_mask, fcb, h, cb, arg, bad, p->bad, sizeof(p->bad));
}

/* Every item of a directory carries its bytes or its file. */
static int d_read(void *arg, const pb_item_t *item, pb_buf_t *out)
{
	(void)arg;
	(void)item;
	(void)out;
	return PB_EUNSUPPORTED;
}

/* A target that does not exist: a staging folder beside it. */
static int stage_new(struct dirtxn *t, const char *dir_in)
{
	char *dir = t->target, parent[4096];
	const char *slash;
	size_t len;
	int n, rc;

	n = snprintf(t->target, sizeof(t->target), "%s", dir_in);
	if (n < 0 || (size_t)n >= sizeof(t->target))
		return PB_ETOOBIG;
	for (len = strlen(dir); len > 1 && dir[len - 1] == '/'; len--)
		dir[len - 1] = 0;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		n = snprintf(parent, sizeof(parent), ".");
	else
		n = snprintf(parent, sizeof(parent), "%.*s", (int)(slash - dir) > 0 ? (int)(slash - dir) : 1, dir);
	if (n < 0 || (size_t)n >= sizeof(parent))
		return PB_ETOOBIG;
	if ((rc = pb__mkdirs(parent, 0700)) != 0)
		return rc;
	n = snprintf(t->stagedir, sizeof(t->stagedir), "%s/%srestore-%.64s-XXXXXX", parent, PB_TMP_PREFIX,
		     slash != NULL ? slash + 1 : dir);
	if (n < 0 || (size_t)n >= sizeof(t->stagedir)) {
		t->stagedir[0] = 0;
		return PB_ETOOBIG;
	}
	if (mkdtemp(t->stagedir) == NULL) {
		t->stagedir[0] = 0;
		return -errno;
	}
	if ((rc = pb_device_writer_open(t->stagedir, &t->w)) == 0)
		pb__device_writer_fresh(t->w);
	return rc;
}

static void d_abort(void *txn)
{
	struct dirtxn *t = txn;

	if (t == NULL)
		return;
	pb_device_writer_free(t->w);
	if (t->stagedir[0])
		pb__remove_tree(t->stagedir);
	free(t);
}

static int d_begin(void *arg, void **txn)
{
	struct dirprov *p = arg;
	struct dirtxn *t = calloc(1, sizeof(*t));
	struct stat st;
	int rc;

	*txn = NULL;
	if (t == NULL)
		return PB_ENOMEM;
	if (stat(p->dir, &st) == 0)
		rc = pb_device_writer_open(p->dir, &t->w);
	else
		rc = errno != ENOENT ? -errno : stage_new(t, p->dir);
	if (rc != 0) {
		d_abort(t);
		return rc;
	}
	*txn = t;
	return 0;
}

/* The manifest lists a file's items together: once the next file begins,
 * the previous one is staged, so memory holds one chat at a time, not the
 * whole phone. An item given as a file is staged at once: the file is
 * only lent for the call. */
static int d_write(void *txn, const pb_item_t *item)
{
	struct dirtxn *t = txn;
	int rc;

	if (item->path != NULL && pb_codec_for(item->path) != NULL && strcmp(item->path, t->writing) != 0) {
		if (t->writing[0] != 0 && (rc = pb_device_writer_stage(t->w)) != 0)
			return rc;
		snprintf(t->writing, sizeof(t->writing), "%s", item->path);
	}
	if ((rc = pb_device_writer_add(t->w, item)) != 0)
		return rc;
	return item->file != NULL ? pb_device_writer_stage(t->w) : 0;
}

static int d_commit(void *txn)
{
	struct dirtxn *t = txn;
	char parent[4096];
	const char *slash;
	int rc = pb_device_writer_commit(t->w);

	if (rc != 0 || !t->stagedir[0])
		goto out;
	/* The files are synced; the folders in the staging folder are not
	 * synced one by one: a new file's sync makes the entries that lead
	 * to it durable too (ext4 commits its journal, or without one syncs
	 * the new file's parents; XFS and btrfs log them with it). A crash
	 * before the rename leaves no target, after it the whole one; the
	 * sync of the parent below makes the rename durable. */
	pb__test_point("restore-staged");
	/* A target that appeared meanwhile with content is not merged into. */
	if (rename(t->stagedir, t->target) != 0) {
		rc = errno == EEXIST || errno == ENOTEMPTY ? PB_EEXISTS : -errno;
		goto out;
	}
	t->stagedir[0] = 0;
	slash = strrchr(t->target, '/');
	if (slash != NULL && slash > t->target &&
	    snprintf(parent, sizeof(parent), "%.*s", (int)(slash - t->target), t->target) < (int)sizeof(parent))
		(void)pb__fsync_dir(parent);
out:
	/* A failed commit is told by the library, then aborted. */
	if (rc == 0)
		d_abort(t);
	return rc;
}

const char *pb__dir_txn_link(void *txn)
{
	struct dirtxn *t = txn;

	return t != NULL && t->w != NULL ? pb_device_writer_link(t->w) : "";
}

void pb__dir_txn_take_files(void *txn)
{
	struct dirtxn *t = txn;

	if (t != NULL && t->w != NULL)
		pb__device_writer_take_files(t->w);
}

size_t pb__dir_txn_replaced(void *txn, const char *const **paths)
{
	struct dirtxn *t = txn;
	size_t n;

	*paths = NULL;
	if (t == NULL || t->w == NULL)
		return 0;
	n = pb_device_writer_written(t->w, paths);
	return t->stagedir[0] ? 0 : n;
}

bool pb__provider_is_dir(const pb_provider_t *p)
{
	return p != NULL && p->list == d_list;
}

const char *pb__provider_dir_bad(const pb_provider_t *p)
{
	return pb__provider_is_dir(p) ? ((const struct dirprov *)p->arg)->bad : "";
}

int pb_provider_dir(const char *dir, pb_provider_t **out)
{
	struct dirprov *p;

	*out = NULL;
	if (dir == NULL)
		return PB_EINVAL;
	if ((p = calloc(1, sizeof(*p))) == NULL || (p->dir = strdup(dir)) == NULL) {
		free(p);
		return PB_ENOMEM;
	}
	p->pub.arg = p;
	p->pub.list = d_list;
	p->pub.read = d_read;
	p->pub.begin = d_begin;
	p->pub.write = d_write;
	p->pub.commit = d_commit;
	p->pub.abort = d_abort;
	*out = &p->pub;
	return 0;
}

void pb_provider_dir_free(pb_provider_t *p)
{
	struct dirprov *d = (struct dirprov *)p;

	if (d == NULL)
		return;
	free(d->dir);
	free(d);
}
