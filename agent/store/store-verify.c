/* host verify: every pack record checked against its checksum and against
 * the index, without any key. */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "agent/store/store-priv.h"
#include "peerback/error.h"

/* ---- verify ------------------------------------------------------------------------- */

typedef struct vrow_s {
	bool valid;
	uint64_t off, len;
	uint8_t name[PB_STORE_NAME_LEN], hash[32];
} vrow_t;

static void vrow_next(sqlite3_stmt *st, vrow_t *r)
{
	r->valid = false;
	if (sqlite3_step(st) != SQLITE_ROW)
		return;
	r->valid = true;
	r->off = (uint64_t)sqlite3_column_int64(st, 0);
	r->len = (uint64_t)sqlite3_column_int64(st, 1);
	memset(r->name, 0, sizeof(r->name));
	memset(r->hash, 0, sizeof(r->hash));
	if (sqlite3_column_bytes(st, 2) == PB_STORE_NAME_LEN)
		memcpy(r->name, sqlite3_column_blob(st, 2), PB_STORE_NAME_LEN);
	if (sqlite3_column_bytes(st, 3) == 32)
		memcpy(r->hash, sqlite3_column_blob(st, 3), 32);
}

/* Walks one pack's records up to its committed length alongside its index
 * rows (both by offset). */
static int verify_pack(pb_store_t *s, int64_t id, int64_t nsid, uint64_t clen, uint8_t *buf,
		       pb_store_verify_report_t *rep, pb_store_progress_cb progress, void *arg,
		       uint64_t *done, uint64_t total)
{
	char path[PATH_MAX];
	uint8_t hdr[PB__PACK_HDR_LEN];
	sqlite3_stmt *st = NULL;
	vrow_t row;
	uint64_t off = PB__PACK_HDR_LEN;
	int fd = -1, rc;

	rc = pb__store_prep(s->db, "SELECT off, len, name, hash FROM chunks WHERE pack=?1 ORDER BY off", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	vrow_next(st, &row);
	rep->packs++;
	rc = pb__store_pack_path(s, nsid, id, path, sizeof(path));
	if (rc == 0)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pb__store_pread_all(fd, hdr, sizeof(hdr), 0) < 0 || memcmp(hdr, PB__PACK_HDR, sizeof(hdr)) != 0) {
		rep->bad_records++;
		off = clen; /* unreadable: every row below counts as bad */
	}
	while (off < clen) {
		size_t ct_len;
		pb__pack_rec_t rec;
		int prc;

		if (clen - off < PB__REC_HEAD_LEN || pb__store_pread_all(fd, buf, PB__REC_HEAD_LEN, off) < 0 ||
		    pb__pack_rec_head_parse(buf, PB__REC_HEAD_LEN, &ct_len) < 0 ||
		    clen - off < PB__REC_LEN(ct_len)) {
			rep->bad_records++;
			break; /* the record boundaries are lost past this point */
		}
		if (pb__store_pread_all(fd, buf, PB__REC_LEN(ct_len), off) < 0) {
			rep->bad_records++;
			break;
		}
		prc = pb__pack_rec_parse(buf, PB__REC_LEN(ct_len), &rec);
		rep->records++;
		rep->bytes += PB__REC_LEN(ct_len);
		if (prc < 0)
			rep->bad_records++;
		while (row.valid && row.off < off) {
			rep->bad_chunks++;
			vrow_next(st, &row);
		}
		if (row.valid && row.off == off) {
			rep->chunks++;
			if (prc < 0 || row.len != ct_len || sodium_memcmp(row.name, rec.name, PB_STORE_NAME_LEN) != 0 ||
			    sodium_memcmp(row.hash, rec.hash, 32) != 0)
				rep->bad_chunks++;
			vrow_next(st, &row);
		} else if (prc == 0) {
			rep->dead_records++;
		}
		off += PB__REC_LEN(ct_len);
		*done += PB__REC_LEN(ct_len);
		if (progress != NULL)
			progress(arg, *done, total);
	}
	while (row.valid) {
		rep->chunks++;
		rep->bad_chunks++;
		vrow_next(st, &row);
	}
	if (fd >= 0)
		close(fd);
	sqlite3_finalize(st);
	return 0;
}

int pb_store_verify(pb_store_t *s, pb_store_progress_cb progress, void *arg, pb_store_verify_report_t *report)
{
	pb_store_verify_report_t rep = {0};
	sqlite3_stmt *st = NULL;
	uint64_t total = 0, done = 0;
	uint8_t *buf;
	int rc;

	if (s == NULL)
		return PB_EINVAL;
	buf = malloc(PB__REC_LEN(PB_STORE_CT_MAX));
	if (buf == NULL)
		return PB_ENOMEM;
	rc = pb__store_exec(s->db, "BEGIN");
	if (rc < 0)
		goto out_free;
	rc = pb__store_prep(s->db, "SELECT COALESCE(SUM(committed_len), 0) FROM packs", &st);
	if (rc < 0)
		goto out_rollback;
	if (sqlite3_step(st) == SQLITE_ROW)
		total = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	rc = pb__store_prep(s->db, "SELECT id, ns, committed_len FROM packs ORDER BY id", &st);
	if (rc < 0)
		goto out_rollback;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = verify_pack(s, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
				 (uint64_t)sqlite3_column_int64(st, 2), buf, &rep, progress, arg, &done, total);
		if (rc < 0)
			goto out_finalize;
	}
	if (rc != SQLITE_DONE) {
		rc = pb__store_db_err(s->db, rc);
		goto out_finalize;
	}
	sqlite3_finalize(st);
	/* Rows pointing at packs the index does not list. */
	rc = pb__store_prep(s->db, "SELECT (SELECT count(*) FROM chunks WHERE pack NOT IN (SELECT id FROM packs)),"
			 " (SELECT count(*) FROM snap_refs r WHERE NOT EXISTS"
			 "  (SELECT 1 FROM chunks c WHERE c.id = r.chunk))", &st);
	if (rc < 0)
		goto out_rollback;
	if (sqlite3_step(st) == SQLITE_ROW) {
		rep.bad_chunks += (uint64_t)sqlite3_column_int64(st, 0);
		rep.chunks += (uint64_t)sqlite3_column_int64(st, 0);
		rep.missing_refs = (uint64_t)sqlite3_column_int64(st, 1);
	}
	rc = (rep.bad_records || rep.bad_chunks || rep.missing_refs) ? PB_ESTORE_CORRUPT : 0;
out_finalize:
	sqlite3_finalize(st);
out_rollback:
	pb__store_rollback(s->db);
out_free:
	free(buf);
	if (report != NULL)
		*report = rep;
	return rc;
}
