/* Snapshots (a blob and the chunks it references) and small per-namespace
 * blobs of the host store. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "agent/store/store-priv.h"
#include "peerback/error.h"

/* ---- snapshots -------------------------------------------------------------- */

/* Orders indexes into the names (arg) by the names they point at. */
static int cmp_name_at(const void *a, const void *b, void *arg)
{
	const uint8_t(*names)[PB_STORE_NAME_LEN] = arg;

	return memcmp(names[*(const uint32_t *)a], names[*(const uint32_t *)b], PB_STORE_NAME_LEN);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts indexes 0..n-1 into names by name (4 bytes each where a sorted
 * copy of the names took 32) and drops those of repeated names; returns
 * how many are left. */
static size_t sort_unique(const uint8_t (*names)[PB_STORE_NAME_LEN], uint32_t *at, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		at[i] = (uint32_t)i;
	qsort_r(at, n, sizeof(*at), cmp_name_at, (void *)names);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || memcmp(names[at[k - 1]], names[at[i]], PB_STORE_NAME_LEN) != 0)
			at[k++] = at[i];
	return k;
}

/* Records the references of snapshot row, inside the caller's transaction,
 * with three statements prepared once for any number of them. Each walks
 * an index in its own order, so that each page is read once however many
 * references there are (a phone's order read a random page or two per
 * reference): the names, sorted, through the chunk index (which holds the
 * chunk's id beside its name), then the rows by chunk id into snap_refs,
 * its chunk index and, for their size, the chunk table. Repeated names
 * count once: *counted and *bytes are the distinct chunks and their size.
 * PB_ESTORE_NOCHUNK for a name the namespace has not committed. */
static int refs_insert(pb_store_ns_t *ns, int64_t row, const uint8_t (*refs)[PB_STORE_NAME_LEN], size_t nrefs,
		       int64_t *counted, int64_t *bytes)
{
	sqlite3 *db = ns->store->db;
	sqlite3_stmt *find = NULL, *ins = NULL, *sum = NULL;
	uint32_t *at = NULL;
	int64_t *ids = NULL;
	size_t n, i;
	int rc;

	*counted = 0;
	*bytes = 0;
	if (nrefs == 0)
		return 0;
	at = malloc(nrefs * sizeof(*at));
	ids = malloc(nrefs * sizeof(*ids));
	if (at == NULL || ids == NULL) {
		rc = PB_ENOMEM;
		goto out;
	}
	n = sort_unique(refs, at, nrefs);
	if ((rc = pb__store_prep(db, "SELECT id FROM chunks WHERE ns=?1 AND name=?2", &find)) < 0 ||
	    (rc = pb__store_prep(db, "INSERT INTO snap_refs(snap, chunk) VALUES(?1, ?2)", &ins)) < 0 ||
	    (rc = pb__store_prep(db, "SELECT COALESCE(SUM(c.len), 0) FROM snap_refs r JOIN chunks c ON c.id = r.chunk"
			   " WHERE r.snap=?1", &sum)) < 0)
		goto out;
	sqlite3_bind_int64(find, 1, ns->id);
	for (i = 0; i < n; i++) {
		sqlite3_bind_blob(find, 2, refs[at[i]], PB_STORE_NAME_LEN, SQLITE_STATIC);
		rc = sqlite3_step(find);
		if (rc != SQLITE_ROW) {
			rc = rc == SQLITE_DONE ? PB_ESTORE_NOCHUNK : pb__store_db_err(db, rc);
			goto out;
		}
		ids[i] = sqlite3_column_int64(find, 0);
		sqlite3_reset(find);
	}
	/* Distinct names are distinct chunks (UNIQUE(ns, name)). */
	qsort(ids, n, sizeof(*ids), cmp_i64);
	sqlite3_bind_int64(ins, 1, row);
	for (i = 0; i < n; i++) {
		sqlite3_bind_int64(ins, 2, ids[i]);
		rc = sqlite3_step(ins);
		if (rc != SQLITE_DONE) {
			rc = pb__store_db_err(db, rc);
			goto out;
		}
		sqlite3_reset(ins);
	}
	sqlite3_bind_int64(sum, 1, row);
	rc = sqlite3_step(sum);
	if (rc != SQLITE_ROW) {
		rc = pb__store_db_err(db, rc);
		goto out;
	}
	*counted = (int64_t)n;
	*bytes = sqlite3_column_int64(sum, 0);
	rc = 0;
out:
	sqlite3_finalize(find);
	sqlite3_finalize(ins);
	sqlite3_finalize(sum);
	free(at);
	free(ids);
	return rc;
}

int pb_store_snapshot_put(pb_store_ns_t *ns, uint64_t snap_id, const uint8_t (*refs)[PB_STORE_NAME_LEN],
			  size_t nrefs, const uint8_t *blob, size_t len)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	int64_t row, counted = 0, bytes = 0;
	int rc;

	if (ns == NULL || (blob == NULL && len > 0) || (refs == NULL && nrefs > 0))
		return PB_EINVAL;
	if (len > PB_STORE_SNAPSHOT_MAX || nrefs > PB_STORE_SNAPSHOT_REFS_MAX)
		return PB_ETOOBIG;
	db = ns->store->db;
	rc = pb__store_begin_write(ns);
	if (rc < 0)
		return rc;
	rc = pb__store_prep(db, "SELECT blob FROM snapshots WHERE ns=?1 AND snap=?2", &st);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, (int64_t)snap_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		/* Already recorded: the same blob again is a retried commit
		 * whose receipt was lost. */
		bool same = (size_t)sqlite3_column_bytes(st, 0) == len &&
			    (len == 0 || memcmp(sqlite3_column_blob(st, 0), blob, len) == 0);

		rc = same ? 0 : PB_EEXISTS;
		goto out_rollback;
	}
	if (rc != SQLITE_DONE) {
		rc = pb__store_db_err(db, rc);
		goto out_rollback;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (ns->quota != 0) {
		uint64_t usage;

		if ((rc = pb_store_ns_usage(ns, &usage)) < 0 ||
		    (rc = pb__store_quota_check(ns, usage, len + (uint64_t)nrefs * PB_STORE_REF_COST)) < 0)
			goto out_rollback;
	}
	rc = pb__store_prep(db, "INSERT INTO snapshots(ns, snap, time, blob) VALUES(?1, ?2, ?3, ?4)", &st);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, (int64_t)snap_id);
	sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
	sqlite3_bind_blob(st, 4, len > 0 ? (const void *)blob : (const void *)"", (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		rc = pb__store_db_err(db, rc);
		goto out_rollback;
	}
	row = sqlite3_last_insert_rowid(db);
	if ((rc = refs_insert(ns, row, refs, nrefs, &counted, &bytes)) < 0)
		goto out_rollback;
	sqlite3_finalize(st);
	st = NULL;
	rc = pb__store_prep(db, "INSERT INTO snap_stats(snap, nrefs, size) VALUES(?1, ?2, ?3)", &st);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, row);
	sqlite3_bind_int64(st, 2, counted);
	sqlite3_bind_int64(st, 3, bytes);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		rc = pb__store_db_err(db, rc);
		goto out_rollback;
	}
	HOOK("snapshot-checked");
	if ((rc = pb__store_injected("snapshot")) != 0) {
		rc = pb__store_sys_err(rc);
		goto out_rollback;
	}
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = pb__store_db_err(db, rc);
		goto out_rollback;
	}
	HOOK("snapshot-committed");
	rc = 0;
out_rollback:
	sqlite3_finalize(st);
	pb__store_rollback(db);
	return rc;
}

static int cmp_snapinfo(const void *a, const void *b)
{
	const pb_store_snapinfo_t *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int pb_store_snapshot_list(pb_store_ns_t *ns, pb_store_snapinfo_t **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	pb_store_snapinfo_t *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	int rc;

	if (ns == NULL || out == NULL || n == NULL)
		return PB_EINVAL;
	if (!pb__store_ns_exists(ns)) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	/* Counted at put (or, for older stores, once at open). */
	rc = pb__store_prep(ns->store->db,
		  "SELECT s.snap, s.time, COALESCE(t.nrefs, 0), COALESCE(t.size, 0) FROM snapshots s"
		  " LEFT JOIN snap_stats t ON t.snap = s.id WHERE s.ns = ?1",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				rc = PB_ENOMEM;
				goto out_free;
			}
			v = nv;
		}
		v[cnt].id = (uint64_t)sqlite3_column_int64(st, 0);
		v[cnt].time = sqlite3_column_int64(st, 1);
		v[cnt].nrefs = (uint64_t)sqlite3_column_int64(st, 2);
		v[cnt].size = (uint64_t)sqlite3_column_int64(st, 3);
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		rc = pb__store_db_err(ns->store->db, rc);
		goto out_free;
	}
	sqlite3_finalize(st);
	if (cnt > 1)
		qsort(v, cnt, sizeof(*v), cmp_snapinfo);
	*out = v;
	*n = cnt;
	return 0;
out_free:
	sqlite3_finalize(st);
	free(v);
	return rc;
}

/* Copies column col of the first row of st into a malloc'd buffer. */
static int step_blob(sqlite3 *db, sqlite3_stmt *st, int col, int notfound, uint8_t **out, size_t *len)
{
	int rc = sqlite3_step(st);
	size_t n;
	uint8_t *b;

	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? notfound : pb__store_db_err(db, rc);
	n = (size_t)sqlite3_column_bytes(st, col);
	b = malloc(n > 0 ? n : 1);
	if (b == NULL)
		return PB_ENOMEM;
	if (n > 0)
		memcpy(b, sqlite3_column_blob(st, col), n);
	*out = b;
	*len = n;
	return 0;
}

int pb_store_snapshot_get(pb_store_ns_t *ns, uint64_t snap_id, uint8_t **blob, size_t *len)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (ns == NULL || blob == NULL || len == NULL)
		return PB_EINVAL;
	if (!pb__store_ns_exists(ns))
		return PB_ESTORE_NOSNAP;
	rc = pb__store_prep(ns->store->db, "SELECT blob FROM snapshots WHERE ns=?1 AND snap=?2", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, (int64_t)snap_id);
	rc = step_blob(ns->store->db, st, 0, PB_ESTORE_NOSNAP, blob, len);
	sqlite3_finalize(st);
	return rc;
}

int pb_store_snapshot_refs(pb_store_ns_t *ns, uint64_t snap_id, uint8_t (**names)[PB_STORE_NAME_LEN], size_t *n)
{
	sqlite3_stmt *st = NULL;
	uint8_t(*v)[PB_STORE_NAME_LEN] = NULL, (*nv)[PB_STORE_NAME_LEN];
	size_t cnt = 0, cap = 0;
	int rc;

	if (ns == NULL || names == NULL || n == NULL)
		return PB_EINVAL;
	if (!pb__store_ns_exists(ns))
		return PB_ESTORE_NOSNAP;
	rc = pb__store_prep(ns->store->db, "SELECT 1 FROM snapshots WHERE ns=?1 AND snap=?2", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, (int64_t)snap_id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? PB_ESTORE_NOSNAP : pb__store_db_err(ns->store->db, rc);
	rc = pb__store_prep(ns->store->db, "SELECT c.name FROM snapshots s JOIN snap_refs r ON r.snap = s.id"
				 " JOIN chunks c ON c.id = r.chunk WHERE s.ns=?1 AND s.snap=?2", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int64(st, 2, (int64_t)snap_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != PB_STORE_NAME_LEN)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				rc = PB_ENOMEM;
				goto out_free;
			}
			v = nv;
		}
		memcpy(v[cnt++], sqlite3_column_blob(st, 0), PB_STORE_NAME_LEN);
	}
	if (rc != SQLITE_DONE) {
		rc = pb__store_db_err(ns->store->db, rc);
		goto out_free;
	}
	sqlite3_finalize(st);
	*names = v;
	*n = cnt;
	return 0;
out_free:
	sqlite3_finalize(st);
	free(v);
	return rc;
}

/* ---- blobs -------------------------------------------------------------------- */

int pb_store_blob_put(pb_store_ns_t *ns, const char *key, const uint8_t *val, size_t len)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (ns == NULL || !pb__store_id_ok(key) || (val == NULL && len > 0))
		return PB_EINVAL;
	if (len > PB_STORE_BLOB_MAX)
		return PB_ETOOBIG;
	if (ns->read_only)
		return PB_ESTATE;
	if (ns->quota != 0) {
		uint64_t usage;

		if ((rc = pb_store_ns_usage(ns, &usage)) < 0 || (rc = pb__store_quota_check(ns, usage, len)) < 0)
			return rc;
	}
	rc = pb__store_prep(ns->store->db, "INSERT OR REPLACE INTO blobs(ns, k, v) VALUES(?1, ?2, ?3)", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, len > 0 ? (const void *)val : (const void *)"", (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : pb__store_db_err(ns->store->db, rc);
	sqlite3_finalize(st);
	return rc;
}

int pb_store_blob_get(pb_store_ns_t *ns, const char *key, uint8_t **val, size_t *len)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (ns == NULL || !pb__store_id_ok(key) || val == NULL || len == NULL)
		return PB_EINVAL;
	if (!pb__store_ns_exists(ns))
		return PB_ENOTFOUND;
	rc = pb__store_prep(ns->store->db, "SELECT v FROM blobs WHERE ns=?1 AND k=?2", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	rc = step_blob(ns->store->db, st, 0, PB_ENOTFOUND, val, len);
	sqlite3_finalize(st);
	return rc;
}
