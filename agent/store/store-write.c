/* The host store's write path: a namespace's batch of records appended to
 * its open pack, then made durable by one fdatasync and one index
 * transaction (see store.c for the commit order). */
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

/* ---- the batch's name set ------------------------------------------------ */

static uint64_t name_slot(const uint8_t *name)
{
	uint64_t h;

	memcpy(&h, name, sizeof(h)); /* names are keyed hashes: uniform */
	return h;
}

static bool set_find(const pb_store_ns_t *ns, const uint8_t *name)
{
	size_t mask = ns->set_cap - 1;
	size_t i;

	if (ns->set_cap == 0)
		return false;
	for (i = name_slot(name) & mask; ns->set[i] != 0; i = (i + 1) & mask)
		if (memcmp(ns->pending[ns->set[i] - 1].name, name, PB_STORE_NAME_LEN) == 0)
			return true;
	return false;
}

static int set_rebuild(pb_store_ns_t *ns, size_t cap)
{
	uint32_t *set = calloc(cap, sizeof(*set));
	size_t i, j;

	if (set == NULL)
		return PB_ENOMEM;
	for (i = 0; i < ns->npending; i++) {
		for (j = name_slot(ns->pending[i].name) & (cap - 1); set[j] != 0; j = (j + 1) & (cap - 1))
			;
		set[j] = (uint32_t)(i + 1);
	}
	free(ns->set);
	ns->set = set;
	ns->set_cap = cap;
	return 0;
}

static int pending_add(pb_store_ns_t *ns, const pending_t *p)
{
	size_t mask, j;

	if (ns->npending == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;
		pending_t *np;

		if (cap > UINT32_MAX / 4)
			return PB_ETOOBIG;
		np = realloc(ns->pending, cap * sizeof(*np));
		if (np == NULL)
			return PB_ENOMEM;
		ns->pending = np;
		ns->cap = cap;
	}
	ns->pending[ns->npending++] = *p;
	ns->pending_bytes += PB__REC_LEN(p->len);
	/* The set stays at most half full. */
	if (ns->npending * 2 > ns->set_cap)
		return set_rebuild(ns, ns->set_cap ? ns->set_cap * 4 : 256);
	mask = ns->set_cap - 1;
	for (j = name_slot(p->name) & mask; ns->set[j] != 0; j = (j + 1) & mask)
		;
	ns->set[j] = (uint32_t)ns->npending;
	return 0;
}

/* Takes the namespace's pack for this handle's batch: PB_EBUSY while
 * another handle of the namespace has one under way. */
static int ns_claim(pb_store_ns_t *ns)
{
	pb_store_ns_t *o;

	if (ns->read_only)
		return PB_ESTATE;
	if (ns->writing)
		return 0;
	for (o = ns->store->ns_list; o != NULL; o = o->next)
		if (o != ns && o->id == ns->id && o->writing)
			return PB_EBUSY;
	ns->writing = true;
	return 0;
}

/* Ends the handle's batch once it is committed: the pack is left for the
 * next batch of whichever handle comes first. */
static void ns_release(pb_store_ns_t *ns)
{
	if (ns->npending > 0)
		return;
	if (ns->fd >= 0)
		close(ns->fd);
	ns->fd = -1;
	ns->pack_new = false;
	ns->writing = false;
}
/* ---- chunks ---------------------------------------------------------------- */

static int chunk_committed(pb_store_ns_t *ns, sqlite3_stmt *st, const uint8_t *name, bool *found)
{
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_blob(st, 2, name, PB_STORE_NAME_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st); /* a statement left stepping pins a WAL snapshot */
	if (rc == SQLITE_ROW)
		*found = true;
	else if (rc == SQLITE_DONE)
		*found = false;
	else
		return pb__store_db_err(ns->store->db, rc);
	return 0;
}

int pb_store_missing(pb_store_ns_t *ns, const uint8_t (*names)[PB_STORE_NAME_LEN], size_t n, bool *missing)
{
	size_t i;
	int rc;

	if (ns == NULL || (n > 0 && (names == NULL || missing == NULL)))
		return PB_EINVAL;
	if (!pb__store_ns_exists(ns)) {
		for (i = 0; i < n; i++)
			missing[i] = true;
		return 0;
	}
	rc = pb__store_exec(ns->store->db, "BEGIN");
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		bool found = false;

		rc = chunk_committed(ns, ns->lookup, names[i], &found);
		if (rc < 0)
			goto out_rollback;
		missing[i] = !found;
	}
	rc = 0;
out_rollback:
	pb__store_rollback(ns->store->db);
	return rc;
}

/* Opens the pack the namespace appends to: its newest open pack if one
 * exists, else a new file (registered in the index at the next flush). */
static int ns_open_pack(pb_store_ns_t *ns)
{
	pb_store_t *s = ns->store;
	char path[PATH_MAX], dir[PATH_MAX], packs[PATH_MAX];
	sqlite3_stmt *st = NULL;
	int rc, tries;

	rc = pb__store_prep(s->db, "SELECT id, committed_len FROM packs WHERE ns=?1 AND state=?2"
			 " ORDER BY id DESC LIMIT 1", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, ns->id);
	sqlite3_bind_int(st, 2, PACK_OPEN);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ns->pack_id = sqlite3_column_int64(st, 0);
		ns->pack_committed = (uint64_t)sqlite3_column_int64(st, 1);
		sqlite3_finalize(st);
		rc = pb__store_pack_path(s, ns->id, ns->pack_id, path, sizeof(path));
		if (rc < 0)
			return rc;
		ns->fd = open(path, O_RDWR | O_CLOEXEC);
		if (ns->fd < 0)
			return pb__store_sys_err(errno);
		ns->wr_off = ns->pack_committed;
		ns->wb_off = ns->wr_off;
		ns->pack_new = false;
		return 0;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return pb__store_db_err(s->db, rc);

	if (snprintf(packs, sizeof(packs), "%s/packs", s->dir) >= (int)sizeof(packs))
		return PB_ETOOBIG;
	rc = pb__store_ns_dir_path(s, ns->id, dir, sizeof(dir));
	if (rc < 0)
		return rc;
	rc = pb__store_ensure_dir(dir, packs);
	if (rc < 0)
		return rc;
	/* A leftover file that could not be removed at open only costs an id. */
	for (tries = 0; tries < 16; tries++) {
		ns->pack_id = s->next_pack++;
		rc = pb__store_pack_path(s, ns->id, ns->pack_id, path, sizeof(path));
		if (rc < 0)
			return rc;
		ns->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (ns->fd >= 0 || errno != EEXIST)
			break;
	}
	if (ns->fd < 0)
		return pb__store_sys_err(errno);
	ns->pack_new = true;
	ns->pack_committed = 0;
	rc = pb__store_pwrite_all(ns->fd, PB__PACK_HDR, PB__PACK_HDR_LEN, 0);
	if (rc < 0) {
		pb__store_ns_discard(ns);
		return rc;
	}
	ns->wr_off = PB__PACK_HDR_LEN;
	ns->wb_off = 0;
	return 0;
}

/* The pack's bytes put since the last kick go to the disk now, a
 * megabyte at a time, without waiting for them (Linux's
 * sync_file_range): the commit's fdatasync then finds them written or
 * under way, and waits for the rest and the device's flush only. It
 * waited for all of them, and the storage worker with it while the
 * puts behind the commit queued up (each commit's 4 MiB written back
 * after the fact, at the disk's pace). Durability is still the
 * fdatasync's; the pages stay in the page cache, where a restore reads
 * them back. A page the next record still writes to waits for the next
 * kick. */
#define WRITE_BACK_STEP (1u << 20)
#define WRITE_BACK_PAGE 4096u

static void write_back(pb_store_ns_t *ns)
{
#ifdef SYNC_FILE_RANGE_WRITE
	uint64_t end = ns->wr_off & ~(uint64_t)(WRITE_BACK_PAGE - 1);

	if (end < ns->wb_off + WRITE_BACK_STEP)
		return;
	/* A hint: a failure here is the fdatasync's to report. */
	(void)sync_file_range(ns->fd, (off_t)ns->wb_off, (off_t)(end - ns->wb_off), SYNC_FILE_RANGE_WRITE);
	ns->wb_off = end;
#else
	(void)ns;
#endif
}

/* Once the commit's fdatasync has made them durable, the pack's pages
 * leave the page cache (POSIX_FADV_DONTNEED), as Borg does with its
 * segments: a host keeps only ciphertext, read again at a restore or a
 * verify, and a gigabyte of it kept cached would push out what the
 * machine's own programs read. The pages freed are the ones the next
 * records are written into, so a backup's writes go to pages already in
 * use instead of claiming fresh ones: on a virtual machine whose free
 * pages go back to the hypervisor, a fresh page costs about four times
 * as much to write into (docs/BENCH.md, "What changed: the host's pack
 * pages leave the page cache after their commit"). The page the next
 * record still writes to stays, so that writing it does not read it back
 * from the disk; a full pack's last page goes too. A hint: nothing
 * depends on its success. */
static void drop_synced(const pb_store_ns_t *ns, bool whole)
{
#ifdef POSIX_FADV_DONTNEED
	uint64_t from = ns->pack_committed & ~(uint64_t)(WRITE_BACK_PAGE - 1);
	uint64_t to = whole ? ns->wr_off : ns->wr_off & ~(uint64_t)(WRITE_BACK_PAGE - 1);

	if (to > from)
		(void)posix_fadvise(ns->fd, (off_t)from, (off_t)(to - from), POSIX_FADV_DONTNEED);
#else
	(void)ns;
	(void)whole;
#endif
}

/* Makes the batch durable: pack first, then the index rows. */
static int ns_commit(pb_store_ns_t *ns)
{
	pb_store_t *s = ns->store;
	sqlite3_stmt *st = NULL;
	char dir[PATH_MAX];
	int64_t now = (int64_t)time(NULL);
	bool full;
	size_t i;
	int rc;

	if (ns->npending == 0)
		return 0;
	if (s->uncertain) {
		rc = PB_EIO;
		goto out_discard;
	}
	rc = pb__store_sync_data(ns->fd);
	if (rc < 0)
		goto out_discard;
	full = ns->wr_off >= PB_STORE_PACK_CAP;
	drop_synced(ns, full);
	if (ns->pack_new) {
		rc = pb__store_ns_dir_path(s, ns->id, dir, sizeof(dir));
		if (rc == 0)
			rc = pb__store_fsync_dir(dir);
		if (rc < 0)
			goto out_discard;
	}
	HOOK("pack-synced");
	rc = pb__store_exec(s->db, "BEGIN IMMEDIATE");
	if (rc < 0)
		goto out_discard;
	rc = pb__store_prep(s->db, ns->pack_new ? "INSERT INTO packs(committed_len, state, ns, id) VALUES(?1, ?2, ?3, ?4)"
				       : "UPDATE packs SET committed_len=?1, state=?2 WHERE ns=?3 AND id=?4",
		  &st);
	if (rc < 0)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, (int64_t)ns->wr_off);
	sqlite3_bind_int(st, 2, full ? PACK_FULL : PACK_OPEN);
	sqlite3_bind_int64(st, 3, ns->id);
	sqlite3_bind_int64(st, 4, ns->pack_id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE || sqlite3_changes(s->db) != 1) {
		rc = rc != SQLITE_DONE ? pb__store_db_err(s->db, rc) : PB_ESTORE_CORRUPT;
		goto out_rollback;
	}
	rc = pb__store_prep(s->db, "INSERT INTO chunks(ns, name, pack, off, len, hash, added)"
			 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)", &st);
	if (rc < 0)
		goto out_rollback;
	for (i = 0; i < ns->npending; i++) {
		const pending_t *p = &ns->pending[i];

		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, ns->id);
		sqlite3_bind_blob(st, 2, p->name, PB_STORE_NAME_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, ns->pack_id);
		sqlite3_bind_int64(st, 4, (int64_t)p->off);
		sqlite3_bind_int64(st, 5, (int64_t)p->len);
		sqlite3_bind_blob(st, 6, p->hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, now);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE) {
			rc = pb__store_db_err(s->db, rc);
			goto out_rollback;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = pb__store_injected("index")) != 0) {
		rc = pb__store_sys_err(rc);
		goto out_rollback;
	}
	rc = pb__store_commit(s);
	if (rc < 0)
		goto out_rollback;
	HOOK("index-committed");
	rc = (int)ns->npending;
	ns->pack_committed = ns->wr_off;
	ns->pack_new = false;
	pb__store_pending_clear(ns);
	if (full) {
		close(ns->fd);
		ns->fd = -1;
	}
	return rc;

out_rollback:
	sqlite3_finalize(st);
	pb__store_rollback(s->db);
out_discard:
	pb__store_ns_discard(ns);
	return rc;
}

int pb_store_put(pb_store_ns_t *ns, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	uint8_t head[PB__REC_HEAD_LEN];
	pending_t p;
	bool found = false;
	int rc;

	if (ns == NULL || name == NULL || (ct == NULL && len > 0))
		return PB_EINVAL;
	if (len > PB_STORE_CT_MAX)
		return PB_ETOOBIG;
	if (ns->store->uncertain)
		return PB_EIO;
	if (ns->read_only)
		return PB_ESTATE;
	if (set_find(ns, name))
		return 0;
	rc = chunk_committed(ns, ns->lookup, name, &found);
	if (rc < 0)
		return rc;
	if (found)
		return 0;
	if ((rc = ns_claim(ns)) < 0)
		return rc;
	if (ns->quota != 0) {
		/* Counted once a batch: nobody else appends meanwhile. */
		if (ns->npending == 0 && (rc = pb_store_ns_usage(ns, &ns->usage)) < 0)
			goto out_discard;
		rc = pb__store_quota_check(ns, ns->usage, ns->pending_bytes + PB__REC_LEN(len));
		if (rc < 0)
			goto out_discard;
	}

	/* A batch never straddles packs: a full pack's batch is committed
	 * first, and the next record starts a new pack. */
	if (ns->fd >= 0 && ns->wr_off > PB__PACK_HDR_LEN &&
	    ns->wr_off + PB__REC_LEN(len) > PB_STORE_PACK_CAP) {
		if (ns->npending > 0) {
			rc = ns_commit(ns);
			if (rc < 0)
				return rc;
			ns->auto_flushed += rc;
		}
		if (ns->fd >= 0) {
			/* Committed but not yet marked full: mark it now. */
			char sql[128];
			int n = snprintf(sql, sizeof(sql), "UPDATE packs SET state=%d WHERE id=%lld",
					 PACK_FULL, (long long)ns->pack_id);

			if (n < 0 || (size_t)n >= sizeof(sql))
				return PB_ETOOBIG;
			if (!ns->pack_new) {
				rc = pb__store_exec(ns->store->db, sql);
				if (rc < 0)
					return rc;
			}
			/* Everything in it is committed: just stop appending. */
			close(ns->fd);
			ns->fd = -1;
		}
	}
	if (ns->fd < 0) {
		rc = ns_open_pack(ns);
		if (rc < 0)
			return rc;
	}
	memcpy(p.name, name, PB_STORE_NAME_LEN);
	pb__pack_rec_head(head, name, len);
	pb__pack_rec_tail(p.hash, head, ct, len);
	p.off = ns->wr_off;
	p.len = len;
	rc = pb__store_pwrite_pair(ns->fd, head, sizeof(head), ct, len, ns->wr_off);
	if (rc < 0)
		goto out_discard;
	HOOK("put-torn");
	rc = pb__store_pwrite_all(ns->fd, p.hash, sizeof(p.hash), ns->wr_off + sizeof(head) + len);
	if (rc < 0)
		goto out_discard;
	rc = pending_add(ns, &p);
	if (rc < 0)
		goto out_discard;
	ns->wr_off += PB__REC_LEN(len);
	write_back(ns);
	HOOK("put");
	return 0;

out_discard:
	pb__store_ns_discard(ns);
	return rc;
}

int pb_store_flush(pb_store_ns_t *ns)
{
	int rc, done;

	if (ns == NULL)
		return PB_EINVAL;
	if (ns->read_only)
		return PB_ESTATE;
	rc = ns_commit(ns);
	if (rc < 0)
		return rc;
	done = ns->auto_flushed + rc;
	ns->auto_flushed = 0;
	ns_release(ns);
	return done;
}
