/* The host store's read path: chunks by name, each pack's chunks read in
 * offset order through the store's open packs (pb__store_pack_fd). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "agent/store/store-priv.h"
#include "peerback/error.h"

/* Reads and checks the record of one indexed chunk from its pack (fd), as
 * pb__pack_rec_parse checks a whole record: its head and tail go to the
 * stack, its ciphertext straight into the chunk's own buffer (no copy of
 * it within a record's buffer, no second allocation). */
static int read_chunk(int fd, uint64_t off, uint64_t len, const uint8_t *name, const uint8_t *hash, uint8_t **ct,
		      size_t *ct_len)
{
	uint8_t head[PB__REC_HEAD_LEN], tail[PB__REC_TAIL_LEN], t[PB__REC_TAIL_LEN];
	struct iovec iov[3];
	size_t n;
	uint8_t *buf;
	int rc;

	if (len > PB_STORE_CT_MAX)
		return PB_ESTORE_CORRUPT;
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (buf == NULL)
		return PB_ENOMEM;
	iov[0] = (struct iovec){ head, sizeof(head) };
	iov[1] = (struct iovec){ buf, (size_t)len };
	iov[2] = (struct iovec){ tail, sizeof(tail) };
	rc = pb__store_preadv_all(fd, iov, 3, off);
	if (rc == PB_ETRUNCATED)
		rc = PB_ESTORE_CORRUPT;
	if (rc < 0)
		goto out_free;
	/* The head holds magic, length and name (pb__pack_rec_head); the
	 * tail the record's checksum, which the index holds too. */
	if (pb__pack_rec_head_parse(head, sizeof(head), &n) != 0 || n != len ||
	    sodium_memcmp(head + 8, name, PB_STORE_NAME_LEN) != 0 || sodium_memcmp(tail, hash, 32) != 0) {
		rc = PB_ESTORE_HASH;
		goto out_free;
	}
	pb__pack_rec_tail(t, head, buf, (size_t)len);
	if (sodium_memcmp(t, tail, sizeof(t)) != 0) {
		rc = PB_ESTORE_HASH;
		goto out_free;
	}
	*ct = buf;
	*ct_len = (size_t)len;
	return 0;
out_free:
	free(buf);
	return rc;
}

/* ---- reads ------------------------------------------------------------------------ */

/* Where one chunk of a batched read is. */
struct getloc {
	size_t i; /* its index in the request */
	int64_t pack;
	uint64_t off, len;
	uint8_t hash[32];
};

static int cmp_getloc(const void *a, const void *b)
{
	const struct getloc *x = a, *y = b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Looks every name up with one statement; rcs[i] says which are absent. */
static int get_lookup(pb_store_ns_t *ns, const uint8_t (*names)[PB_STORE_NAME_LEN], size_t n, struct getloc *loc,
		      size_t *nloc, int *rcs)
{
	sqlite3_stmt *st = ns->store->get_st;
	int rc = 0;

	*nloc = 0;
	if (st == NULL) {
		rc = pb__store_prep(ns->store->db, "SELECT pack, off, len, hash FROM chunks WHERE ns=?1 AND name=?2", &st);
		if (rc < 0)
			return rc;
		ns->store->get_st = st;
	}
	for (size_t i = 0; i < n; i++) {
		struct getloc *l = &loc[*nloc];

		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, ns->id);
		sqlite3_bind_blob(st, 2, names[i], PB_STORE_NAME_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			if (rc != SQLITE_DONE) {
				rc = pb__store_db_err(ns->store->db, rc);
				sqlite3_reset(st);
				return rc;
			}
			rcs[i] = PB_ENOTFOUND;
			continue;
		}
		if (sqlite3_column_bytes(st, 3) != 32) {
			rcs[i] = PB_ESTORE_CORRUPT;
			continue;
		}
		l->i = i;
		l->pack = sqlite3_column_int64(st, 0);
		l->off = (uint64_t)sqlite3_column_int64(st, 1);
		l->len = (uint64_t)sqlite3_column_int64(st, 2);
		memcpy(l->hash, sqlite3_column_blob(st, 3), 32);
		(*nloc)++;
	}
	/* Reset, so that no read stays open on the database between calls. */
	sqlite3_reset(st);
	return 0;
}

int pb_store_get_many(pb_store_ns_t *ns, const uint8_t (*names)[PB_STORE_NAME_LEN], size_t n, size_t max_bytes,
		      uint8_t **ct, size_t *len, int *rcs, size_t *served)
{
	struct getloc *loc;
	size_t nloc = 0, bytes = 0, upto = n;
	int fd, rc;

	if (ns == NULL || (n > 0 && (names == NULL || ct == NULL || len == NULL || rcs == NULL)))
		return PB_EINVAL;
	for (size_t i = 0; i < n; i++) {
		ct[i] = NULL;
		len[i] = 0;
		rcs[i] = PB_ENOTFOUND;
	}
	if (served != NULL)
		*served = n;
	if (n == 0 || !pb__store_ns_exists(ns))
		return 0;
	if ((loc = malloc(n * sizeof(*loc))) == NULL)
		return PB_ENOMEM;
	if ((rc = get_lookup(ns, names, n, loc, &nloc, rcs)) != 0)
		goto out;
	/* The first chunks (in the order asked) that fit in max_bytes, at
	 * least one: the others are not read. */
	for (size_t k = 0; max_bytes != 0 && k < nloc; k++) {
		bytes += loc[k].len;
		if (bytes > max_bytes && k > 0) {
			upto = loc[k].i;
			nloc = k;
			break;
		}
	}
	if (served != NULL)
		*served = upto;
	/* In pack order: each pack opened once, read front to back. */
	if (nloc > 1)
		qsort(loc, nloc, sizeof(*loc), cmp_getloc);
	for (size_t k = 0; k < nloc; k++) {
		const struct getloc *l = &loc[k];

		if ((rc = pb__store_pack_fd(ns->store, ns->id, l->pack, &fd)) < 0) {
			rcs[l->i] = rc;
			continue;
		}
		rcs[l->i] = read_chunk(fd, l->off, l->len, names[l->i], l->hash, &ct[l->i], &len[l->i]);
	}
	rc = 0;
out:
	free(loc);
	if (rc != 0) {
		for (size_t i = 0; i < n; i++) {
			free(ct[i]);
			ct[i] = NULL;
		}
	}
	return rc;
}

int pb_store_get(pb_store_ns_t *ns, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **ct, size_t *len)
{
	int one = 0, rc;

	if (ns == NULL || name == NULL || ct == NULL || len == NULL)
		return PB_EINVAL;
	rc = pb_store_get_many(ns, (const uint8_t(*)[PB_STORE_NAME_LEN])name, 1, 0, ct, len, &one, NULL);
	return rc != 0 ? rc : one;
}
