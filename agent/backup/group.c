/* A file of the device directory being backed up whole: its items'
 * manifest records as the manifest writer takes them, stored in the
 * phone's state (fparts) a part at a time, the manifest chunks that hold
 * only its items as span entries (docs/STORAGE.md "Spans"), and its
 * messages' digests. */
#include <stdlib.h>
#include <string.h>

#include "peerback/error.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/group.h"

#define FILE_PART (256u << 10) /* a file's records stored a part at a time */

/* A message's digest: its id and content, as the file's last reading
 * knew them, so that a re-read chat tells which messages changed without
 * a row per message. */
uint64_t pb__group_digest(const char *id, const uint8_t hash[32])
{
	uint64_t h = 14695981039346656037ull, v = 0;

	for (const char *p = id; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	for (int k = 7; k >= 0; k--)
		v = v << 8 | hash[k];
	return h ^ v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int digests_part(void *arg, const uint8_t *data, size_t len)
{
	struct pb__group *g = arg;
	size_t n = len / 8;
	int rc;

	if (len % 8 != 0)
		return PB_ESTORE_CORRUPT;
	if ((rc = pb__grow((void **)&g->prev, &g->cap_prev, g->nprev + n, 8)) != 0)
		return rc;
	memcpy(g->prev + g->nprev, data, len);
	g->nprev += n;
	return 0;
}

int pb__group_digests_get(struct pb__group *g, pb_backup_state_t *st, const char *rel, int64_t rgen)
{
	int rc = pb__state_file_digests(st, rel, rgen, digests_part, g);

	if (rc == 0 && g->nprev > 0)
		qsort(g->prev, g->nprev, 8, cmp_u64);
	return rc;
}

static int digests_put(struct pb__group *g, pb_backup_state_t *st)
{
	size_t per = FILE_PART / 8;
	int rc = 0;

	for (size_t i = 0, k = 0; i < g->ndig && rc == 0; i += per, k++) {
		size_t n = g->ndig - i < per ? g->ndig - i : per;

		rc = pb__state_file_part_put(st, g->path, PB__PART_DIGESTS + (uint32_t)k,
					     (const uint8_t *)(g->dig + i), n * 8);
	}
	return rc;
}

bool pb__group_digest_known(const struct pb__group *g, uint64_t d)
{
	return g->nprev > 0 && bsearch(&d, g->prev, g->nprev, 8, cmp_u64) != NULL;
}

/* Stores the part being filled. */
static int parts_flush(struct pb__group *g, pb_backup_state_t *st)
{
	int rc;

	if (g->olen == 0)
		return 0;
	rc = pb__state_file_part_put(st, g->path, g->parts++, g->out, g->olen);
	g->olen = 0;
	return rc;
}

/* Whole records or span entries into the part being filled. */
static int parts_add(struct pb__group *g, pb_backup_state_t *st, const uint8_t *data, size_t len)
{
	int rc;

	if (len == 0)
		return 0;
	if (g->olen > 0 && g->olen + len > FILE_PART && (rc = parts_flush(g, st)) != 0)
		return rc;
	if ((rc = pb__grow((void **)&g->out, &g->ocap, g->olen + len, 1)) != 0)
		return rc;
	memcpy(g->out + g->olen, data, len);
	g->olen += len;
	return 0;
}

/* The bytes of the first n records held; PB_EINVAL when fewer are. */
static int recs_span(const struct pb__group *g, size_t n, size_t *bytes)
{
	size_t off = 0, l;

	if (n > g->nrec)
		return PB_EINVAL;
	for (size_t i = 0; i < n; i++, off += l)
		if (pb__manifest_rec_next(g->buf + g->head + off, g->len - g->head - off, &l) != 0)
			return PB_EINVAL;
	*bytes = off;
	return 0;
}

/* Stores (keep) or drops the first n records held (moved past: the
 * records held are moved to the front once, by group_account). */
static int recs_take(struct pb__group *g, pb_backup_state_t *st, size_t n, bool keep)
{
	size_t off;
	int rc;

	if (recs_span(g, n, &off) != 0) {
		g->bad = true; /* not the writer's count: not recorded */
		return 0;
	}
	if (keep && off > 0 && (rc = parts_add(g, st, g->buf + g->head, off)) != 0)
		return rc;
	g->head += off;
	g->nrec -= n;
	return 0;
}

/* Tells apart the manifest chunks emitted since the last call: the first
 * one's records of this file are stored (what came before them in it is
 * another file's), every later one is all this file's and is stored as a
 * span entry, its records dropped. What stays held is the chunk being
 * filled. */
static int group_account(struct pb__group *g, pb_backup_state_t *st, pb_manifest_writer_t *mw)
{
	size_t n = pb__manifest_writer_nchunks(mw);
	int rc = 0;

	if (pb__manifest_writer_items(mw) != g->witems0 + g->items) {
		g->bad = true; /* the writer had items of others meanwhile */
		return 0;
	}
	if (g->mnext == n)
		return 0;
	for (; g->mnext < n && !g->bad && rc == 0; g->mnext++) {
		size_t k = g->mnext, len;
		uint32_t cnt = pb__manifest_writer_chunk_items(mw, k);

		if (k == g->m0) {
			if (cnt < g->c0)
				g->bad = true;
			else
				rc = recs_take(g, st, cnt - g->c0, true);
			continue;
		}
		if ((rc = recs_take(g, st, cnt, false)) != 0 || g->bad)
			break;
		if ((rc = pb__manifest_span_chunk(mw, k, &g->ent, &g->ecap, &len)) == 0)
			rc = parts_add(g, st, g->ent, len);
	}
	if (g->head > 0) {
		memmove(g->buf, g->buf + g->head, g->len - g->head);
		g->len -= g->head;
		g->head = 0;
	}
	return rc;
}

/* The file's last records: with spans, the names its spanned chunks
 * reference, then the records of the chunk being filled. */
int pb__group_store(struct pb__group *g, pb_backup_state_t *st, pb_manifest_writer_t *mw)
{
	size_t from = 0, len;
	int rc;

	if (g->spans) {
		if ((rc = group_account(g, st, mw)) != 0 || g->bad)
			return rc;
		/* Spans follow the file's first chunk: the names referenced
		 * since it was emitted (its last records' among them, kept
		 * twice in the snapshot's list, which is made unique). */
		do {
			len = 0;
			if (g->mnext > g->m0 + 1 &&
			    ((rc = pb__manifest_span_refs(mw, g->m0, &from, &g->ent, &g->ecap, &len)) != 0 ||
			     (rc = parts_add(g, st, g->ent, len)) != 0))
				return rc;
		} while (len > 0);
	}
	if (g->len > g->head && (rc = parts_add(g, st, g->buf + g->head, g->len - g->head)) != 0)
		return rc;
	g->len = g->nrec = g->head = 0;
	if ((rc = parts_flush(g, st)) != 0)
		return rc;
	return digests_put(g, st);
}

void pb__group_begin(struct pb__group *g, pb_manifest_writer_t *mw)
{
	g->len = g->nrec = g->olen = g->head = 0;
	g->parts = 0;
	g->items = g->bytes = 0;
	g->ndig = g->nprev = 0;
	g->spans = pb__manifest_writer_spans(mw);
	g->m0 = g->mnext = pb__manifest_writer_nchunks(mw);
	g->c0 = pb__manifest_writer_pending(mw);
	g->witems0 = pb__manifest_writer_items(mw);
}

int pb__group_add_rec(struct pb__group *g, pb_backup_state_t *st, pb_manifest_writer_t *mw, const uint8_t *rec,
		      size_t len)
{
	int rc;

	if (!g->spans)
		return parts_add(g, st, rec, len);
	if ((rc = pb__grow((void **)&g->buf, &g->cap, g->len + len, 1)) != 0)
		return rc;
	memcpy(g->buf + g->len, rec, len);
	g->len += len;
	g->nrec++;
	return group_account(g, st, mw);
}

void pb__group_free(struct pb__group *g)
{
	free(g->path);
	free(g->buf);
	free(g->out);
	free(g->ent);
	free(g->dig);
	free(g->prev);
}
