/* Prune (dropping snapshots by id or by a keep policy) and GC (dropping
 * unreferenced chunks, deleting or rewriting packs that hold few live
 * records) of the host store. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "agent/store/store-priv.h"
#include "peerback/error.h"

/* A pack is rewritten by GC when less than this share of it is live. */
#define REPACK_LIVE_PERCENT 50

/* ---- prune and GC ------------------------------------------------------------------ */

int pb_store_prune(pb_store_ns_t *ns, const uint64_t *keep, size_t nkeep)
{
	sqlite3 *db;
	sqlite3_stmt *sel = NULL, *del = NULL;
	int deleted = 0, rc;

	if (ns == NULL || (keep == NULL && nkeep > 0))
		return PB_EINVAL;
	db = ns->store->db;
	rc = pb__store_begin_write(ns);
	if (rc < 0)
		return rc;
	rc = pb__store_prep(db, "SELECT id, snap FROM snapshots WHERE ns=?1", &sel);
	if (rc < 0)
		goto out_rollback;
	rc = pb__store_prep(db, "DELETE FROM snapshots WHERE id=?1", &del);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(sel, 1, ns->id);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		uint64_t snap = (uint64_t)sqlite3_column_int64(sel, 1);
		bool kept = false;
		size_t i;

		for (i = 0; i < nkeep && !kept; i++)
			kept = keep[i] == snap;
		if (kept)
			continue;
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, sqlite3_column_int64(sel, 0));
		if (sqlite3_step(del) != SQLITE_DONE) {
			rc = pb__store_db_err(db, sqlite3_errcode(db));
			goto out_rollback;
		}
		deleted++;
	}
	if (rc != SQLITE_DONE) {
		rc = pb__store_db_err(db, rc);
		goto out_rollback;
	}
	sqlite3_finalize(sel);
	sqlite3_finalize(del);
	sel = del = NULL;
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = pb__store_db_err(db, rc);
		goto out_rollback;
	}
	return deleted;
out_rollback:
	sqlite3_finalize(sel);
	sqlite3_finalize(del);
	pb__store_rollback(db);
	return rc;
}

typedef struct keep_set_s {
	const uint64_t *ids;
	size_t n;
} keep_set_t;

/* pb_kept(snap): 1 when snap is among the ids prune keeps. */
static void sql_kept(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const keep_set_t *k = sqlite3_user_data(ctx);
	uint64_t snap = (uint64_t)sqlite3_value_int64(argv[0]);
	int kept = 0;

	(void)argc;
	for (size_t i = 0; i < k->n && !kept; i++)
		kept = k->ids[i] == snap;
	sqlite3_result_int(ctx, kept);
}

int pb_store_prune_plan(pb_store_ns_t *ns, const uint64_t *keep, size_t nkeep, uint64_t *chunks,
			uint64_t *bytes)
{
	keep_set_t k = { keep, nkeep };
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int rc;

	if (ns == NULL || chunks == NULL || bytes == NULL || (keep == NULL && nkeep > 0))
		return PB_EINVAL;
	*chunks = *bytes = 0;
	if (ns->id == 0)
		return 0;
	db = ns->store->db;
	if (sqlite3_create_function(db, "pb_kept", 1, SQLITE_UTF8, &k, sql_kept, NULL, NULL) != SQLITE_OK)
		return PB_ENOMEM;
	/* The chunks only dropped snapshots reference: what GC then frees. */
	rc = pb__store_prep(db, "SELECT COUNT(*), COALESCE(SUM(c.len), 0) FROM chunks c WHERE c.ns=?1"
		      " AND EXISTS (SELECT 1 FROM snap_refs r JOIN snapshots s ON s.id = r.snap"
		      "  WHERE r.chunk = c.id AND NOT pb_kept(s.snap))"
		      " AND NOT EXISTS (SELECT 1 FROM snap_refs r JOIN snapshots s ON s.id = r.snap"
		      "  WHERE r.chunk = c.id AND pb_kept(s.snap))", &st);
	if (rc == 0) {
		sqlite3_bind_int64(st, 1, ns->id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*chunks = (uint64_t)sqlite3_column_int64(st, 0);
			*bytes = (uint64_t)sqlite3_column_int64(st, 1);
			rc = 0;
		} else {
			rc = pb__store_db_err(db, rc);
		}
		sqlite3_finalize(st);
	}
	(void)sqlite3_create_function(db, "pb_kept", 1, SQLITE_UTF8, NULL, NULL, NULL, NULL);
	return rc;
}

static int snap_newest_first(const void *a, const void *b)
{
	const pb_store_snapinfo_t *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? 1 : -1;
	return x->id < y->id ? 1 : (x->id > y->id ? -1 : 0);
}

/* The day, ISO week or month (local time) a snapshot falls in. */
static long keep_bucket(int64_t t, char unit)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[16];

	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	if (unit == 'd')
		return (tm.tm_year + 1900L) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
	if (unit == 'm')
		return (tm.tm_year + 1900L) * 100 + tm.tm_mon + 1;
	if (strftime(buf, sizeof(buf), "%G%V", &tm) == 0)
		return 0;
	return strtol(buf, NULL, 10);
}

/* Marks the newest snapshot of each of the last count buckets that have
 * one; snaps are newest first. */
static void keep_buckets(const pb_store_snapinfo_t *snaps, size_t n, bool *keep, unsigned count, char unit)
{
	long last = -1;

	for (size_t i = 0; i < n && count > 0; i++) {
		long b = keep_bucket(snaps[i].time, unit);

		if (b == last)
			continue;
		last = b;
		keep[i] = true;
		count--;
	}
}

void pb_store_prune_result_free(pb_store_prune_result_t *res)
{
	if (res == NULL)
		return;
	free(res->snaps);
	free(res->kept);
	memset(res, 0, sizeof(*res));
}

int pb_store_prune_keep(pb_store_ns_t *ns, const pb_store_keep_t *policy, bool dry_run, pb_store_prune_result_t *res)
{
	uint64_t *ids = NULL;
	size_t k = 0;
	int rc;

	if (ns == NULL || policy == NULL || res == NULL)
		return PB_EINVAL;
	memset(res, 0, sizeof(*res));
	if ((rc = pb_store_snapshot_list(ns, &res->snaps, &res->n)) != 0 || res->n == 0)
		return rc;
	res->kept = calloc(res->n, sizeof(*res->kept));
	ids = calloc(res->n, sizeof(*ids));
	if (res->kept == NULL || ids == NULL) {
		free(ids);
		pb_store_prune_result_free(res);
		return PB_ENOMEM;
	}
	qsort(res->snaps, res->n, sizeof(*res->snaps), snap_newest_first);
	/* Snapshots are whole (a backup of some kinds carries the others
	 * forward), so the newest alone restores everything: always kept. */
	res->kept[0] = true;
	for (size_t i = 0; i < res->n && i < policy->last; i++)
		res->kept[i] = true;
	keep_buckets(res->snaps, res->n, res->kept, policy->daily, 'd');
	keep_buckets(res->snaps, res->n, res->kept, policy->weekly, 'w');
	keep_buckets(res->snaps, res->n, res->kept, policy->monthly, 'm');
	for (size_t i = 0; i < res->n; i++)
		if (res->kept[i])
			ids[k++] = res->snaps[i].id;
	res->removed = res->n - k;
	if (dry_run)
		rc = pb_store_prune_plan(ns, ids, k, &res->chunks, &res->bytes);
	else if (k < res->n)
		rc = pb_store_prune(ns, ids, k);
	free(ids);
	if (rc < 0) {
		pb_store_prune_result_free(res);
		return rc;
	}
	if (!dry_run)
		res->removed = (uint64_t)rc;
	return 0;
}

typedef struct gc_pack_s {
	int64_t id, ns;
	uint64_t committed, live_bytes, live;
} gc_pack_t;

/* Rewrites a pack's live records into a new pack, points the index at the
 * copies, and only then removes the old file. */
static int gc_repack(pb_store_t *s, const gc_pack_t *gp, pb_store_gc_report_t *rep)
{
	char opath[PATH_MAX], npath[PATH_MAX], dir[PATH_MAX];
	sqlite3_stmt *sel = NULL, *upd = NULL, *ins = NULL;
	int64_t nid = s->next_pack++;
	uint64_t wr = PB__PACK_HDR_LEN;
	int ofd = -1, nfd = -1, rc;
	uint8_t *buf = NULL;
	bool committed = false, keep_new = false;

	if ((rc = pb__store_pack_path(s, gp->ns, gp->id, opath, sizeof(opath))) < 0 ||
	    (rc = pb__store_pack_path(s, gp->ns, nid, npath, sizeof(npath))) < 0 ||
	    (rc = pb__store_ns_dir_path(s, gp->ns, dir, sizeof(dir))) < 0)
		return rc;
	ofd = open(opath, O_RDONLY | O_CLOEXEC);
	if (ofd < 0)
		return pb__store_sys_err(errno);
	nfd = open(npath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (nfd < 0) {
		rc = pb__store_sys_err(errno);
		goto out_close;
	}
	buf = malloc(PB__REC_LEN(PB_STORE_CT_MAX));
	if (buf == NULL) {
		rc = PB_ENOMEM;
		goto out_unlink_new;
	}
	rc = pb__store_pwrite_all(nfd, PB__PACK_HDR, PB__PACK_HDR_LEN, 0);
	if (rc < 0)
		goto out_unlink_new;
	rc = pb__store_prep(s->db, "SELECT off, len FROM chunks WHERE pack=?1 ORDER BY off", &sel);
	if (rc < 0)
		goto out_unlink_new;
	sqlite3_bind_int64(sel, 1, gp->id);
	/* The copies first, all of them durable before the index moves. */
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		uint64_t off = (uint64_t)sqlite3_column_int64(sel, 0);
		uint64_t len = (uint64_t)sqlite3_column_int64(sel, 1);
		pb__pack_rec_t rec;

		if (len > PB_STORE_CT_MAX) {
			rc = PB_ESTORE_CORRUPT;
			goto out_unlink_new;
		}
		rc = pb__store_pread_all(ofd, buf, PB__REC_LEN(len), off);
		if (rc == 0)
			rc = pb__pack_rec_parse(buf, PB__REC_LEN(len), &rec);
		if (rc < 0) {
			/* A damaged record is left where it is for verify to
			 * report; the pack is not rewritten. */
			rc = PB_ESTORE_HASH;
			goto out_unlink_new;
		}
		rc = pb__store_pwrite_all(nfd, buf, PB__REC_LEN(len), wr);
		if (rc < 0)
			goto out_unlink_new;
		wr += PB__REC_LEN(len);
	}
	if (rc != SQLITE_DONE) {
		rc = pb__store_db_err(s->db, rc);
		goto out_unlink_new;
	}
	sqlite3_finalize(sel);
	sel = NULL;
	rc = pb__store_sync_data(nfd);
	if (rc < 0)
		goto out_unlink_new;
	rc = pb__store_fsync_dir(dir);
	if (rc < 0)
		goto out_unlink_new;
	HOOK("gc-repack-synced");

	rc = pb__store_exec(s->db, "BEGIN IMMEDIATE");
	if (rc < 0)
		goto out_unlink_new;
	rc = pb__store_prep(s->db, "INSERT INTO packs(id, ns, committed_len, state) VALUES(?1, ?2, ?3, ?4)", &ins);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(ins, 1, nid);
	sqlite3_bind_int64(ins, 2, gp->ns);
	sqlite3_bind_int64(ins, 3, (int64_t)wr);
	sqlite3_bind_int(ins, 4, PACK_FULL);
	if (sqlite3_step(ins) != SQLITE_DONE) {
		rc = pb__store_db_err(s->db, sqlite3_errcode(s->db));
		goto out_rollback;
	}
	rc = pb__store_prep(s->db, "SELECT id, len FROM chunks WHERE pack=?1 ORDER BY off", &sel);
	if (rc < 0)
		goto out_rollback;
	rc = pb__store_prep(s->db, "UPDATE chunks SET pack=?1, off=?2 WHERE id=?3", &upd);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(sel, 1, gp->id);
	wr = PB__PACK_HDR_LEN;
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		uint64_t len = (uint64_t)sqlite3_column_int64(sel, 1);

		sqlite3_reset(upd);
		sqlite3_bind_int64(upd, 1, nid);
		sqlite3_bind_int64(upd, 2, (int64_t)wr);
		sqlite3_bind_int64(upd, 3, sqlite3_column_int64(sel, 0));
		if (sqlite3_step(upd) != SQLITE_DONE) {
			rc = pb__store_db_err(s->db, sqlite3_errcode(s->db));
			goto out_rollback;
		}
		wr += PB__REC_LEN(len);
	}
	if (rc != SQLITE_DONE) {
		rc = pb__store_db_err(s->db, rc);
		goto out_rollback;
	}
	sqlite3_finalize(sel);
	sel = NULL;
	sqlite3_finalize(ins);
	ins = NULL;
	rc = pb__store_prep(s->db, "DELETE FROM packs WHERE id=?1", &ins);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(ins, 1, gp->id);
	if (sqlite3_step(ins) != SQLITE_DONE) {
		rc = pb__store_db_err(s->db, sqlite3_errcode(s->db));
		goto out_rollback;
	}
	rc = pb__store_commit(s);
	if (rc < 0) {
		keep_new = true; /* the copy may be what the index now uses */
		goto out_rollback;
	}
	committed = keep_new = true;
	HOOK("gc-index-committed");
	pb__store_pack_fd_forget(s, gp->id);
	(void)unlink(opath);
	(void)pb__store_fsync_dir(dir);
	HOOK("gc-unlink");
	rep->packs_repacked++;
	rep->bytes_freed += gp->committed > wr ? gp->committed - wr : 0;
	rc = 0;
out_rollback:
	if (!committed)
		pb__store_rollback(s->db);
out_unlink_new:
	if (!keep_new)
		(void)unlink(npath);
out_close:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	sqlite3_finalize(ins);
	free(buf);
	if (nfd >= 0)
		close(nfd);
	close(ofd);
	return rc;
}

int pb_store_gc(pb_store_t *s, int64_t min_age, pb_store_gc_report_t *report)
{
	pb_store_gc_report_t rep = {0};
	pb_store_ns_t *ns;
	sqlite3_stmt *st = NULL;
	gc_pack_t *packs = NULL, *np;
	size_t npacks = 0, cap = 0, i;
	int rc;

	if (s == NULL)
		return PB_EINVAL;
	if (s->read_only)
		return PB_ESTATE;
	if (s->uncertain)
		return PB_EIO;
	for (ns = s->ns_list; ns != NULL; ns = ns->next)
		if (ns->npending > 0)
			return PB_EBUSY;
	/* Namespaces reopen their pack at the next put: GC may move it. */
	for (ns = s->ns_list; ns != NULL; ns = ns->next)
		pb__store_ns_discard(ns);

	rc = pb__store_exec(s->db, "BEGIN IMMEDIATE");
	if (rc < 0)
		return rc;
	rc = pb__store_prep(s->db, "DELETE FROM chunks WHERE added <= ?1 AND NOT EXISTS"
			 " (SELECT 1 FROM snap_refs r WHERE r.chunk = chunks.id)", &st);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, (int64_t)time(NULL) - (min_age > 0 ? min_age : 0));
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = pb__store_db_err(s->db, sqlite3_errcode(s->db));
		goto out_rollback;
	}
	rep.chunks_removed = (uint64_t)sqlite3_changes(s->db);
	sqlite3_finalize(st);
	st = NULL;
	rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = pb__store_db_err(s->db, rc);
		goto out_rollback;
	}
	HOOK("gc-index-committed");

	rc = pb__store_prep(s->db, "SELECT p.id, p.ns, p.committed_len, COUNT(c.id), COALESCE(SUM(c.len), 0)"
			 " FROM packs p LEFT JOIN chunks c ON c.pack = p.id GROUP BY p.id", &st);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (npacks == cap) {
			cap = cap ? cap * 2 : 32;
			np = realloc(packs, cap * sizeof(*np));
			if (np == NULL) {
				rc = PB_ENOMEM;
				goto out_free;
			}
			packs = np;
		}
		np = &packs[npacks++];
		np->id = sqlite3_column_int64(st, 0);
		np->ns = sqlite3_column_int64(st, 1);
		np->committed = (uint64_t)sqlite3_column_int64(st, 2);
		np->live = (uint64_t)sqlite3_column_int64(st, 3);
		/* Record overhead counts as live: it moves with the chunk. */
		np->live_bytes = (uint64_t)sqlite3_column_int64(st, 4) +
				 np->live * (PB__REC_HEAD_LEN + PB__REC_TAIL_LEN);
	}
	if (rc != SQLITE_DONE) {
		rc = pb__store_db_err(s->db, rc);
		goto out_free;
	}
	sqlite3_finalize(st);
	st = NULL;

	for (i = 0; i < npacks; i++) {
		const gc_pack_t *gp = &packs[i];
		char path[PATH_MAX], dir[PATH_MAX], sql[96];
		int n;

		if (gp->live == 0) {
			n = snprintf(sql, sizeof(sql), "DELETE FROM packs WHERE id=%lld", (long long)gp->id);
			if (n < 0 || (size_t)n >= sizeof(sql)) {
				rc = PB_ETOOBIG;
				goto out_free;
			}
			rc = pb__store_exec(s->db, sql);
			if (rc < 0)
				goto out_free;
			HOOK("gc-index-committed");
			pb__store_pack_fd_forget(s, gp->id);
			if (pb__store_pack_path(s, gp->ns, gp->id, path, sizeof(path)) == 0 && unlink(path) == 0 &&
			    pb__store_ns_dir_path(s, gp->ns, dir, sizeof(dir)) == 0)
				(void)pb__store_fsync_dir(dir);
			HOOK("gc-unlink");
			rep.packs_deleted++;
			rep.bytes_freed += gp->committed;
		} else if (gp->live_bytes * 100 < (gp->committed - PB__PACK_HDR_LEN) * REPACK_LIVE_PERCENT) {
			rc = gc_repack(s, gp, &rep);
			if (rc == PB_ESTORE_HASH)
				continue;
			if (rc < 0)
				goto out_free;
		}
	}
	rc = 0;
	if (report != NULL)
		*report = rep;
out_free:
	sqlite3_finalize(st);
	free(packs);
	return rc;
out_rollback:
	sqlite3_finalize(st);
	pb__store_rollback(s->db);
	return rc;
}
