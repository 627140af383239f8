/* A file of the device directory being backed up whole (agent/backup/
 * group.c): its items' manifest records and span entries, stored in the
 * phone's state a part at a time as the manifest writer emits chunks, and
 * its messages' digests. Private to agent/backup/; the backup (backup.c)
 * records the file once a commit covers it. */
#ifndef PB_AGENT_BACKUP_GROUP_H
#define PB_AGENT_BACKUP_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerback/store.h"
#include "agent/backup/internal.h"

/* A file of the device directory being backed up whole: its items'
 * manifest records, stored in parts as they fill, and the file recorded
 * (pb__state_file_done) at the receipt of a commit covering its last
 * item, so that the next backup skips it by its stamp. */
struct pb__group {
	bool on, bad;
	char *path;
	pb__stamp_t stamp;
	/* Records not yet stored: with spans, those of the manifest chunk
	 * being filled (nrec of them); without, those of the part filling. */
	uint8_t *buf;
	size_t len, cap, nrec;
	size_t head; /* buf's records before it are taken (group_account) */
	/* What is stored, a part at a time: records and span entries. */
	uint8_t *out, *ent;
	size_t olen, ocap, ecap;
	uint32_t parts;
	uint64_t items, bytes;
	/* Spans (pb__manifest_span_chunk): the manifest chunk its first item
	 * went into (m0, holding c0 items before it), the next emitted chunk
	 * not yet told apart, and the writer's items when it began. */
	bool spans;
	size_t m0, mnext;
	uint32_t c0;
	uint64_t witems0;
	/* Its messages' digests (id and content), stored with its records;
	 * those of its last reading, sorted, tell the changed ones. */
	uint64_t *dig, *prev;
	size_t ndig, cap_dig, nprev, cap_prev;
};

/* Begins the group's records at the writer's place (its path, stamp and
 * flags are the caller's). */
void pb__group_begin(struct pb__group *g, pb_manifest_writer_t *mw);
/* The record (len bytes) of the group's next item, just added to mw. */
PB_WUR int pb__group_add_rec(struct pb__group *g, pb_backup_state_t *st, pb_manifest_writer_t *mw,
			     const uint8_t *rec, size_t len);
/* Stores the group's last records and span entries, then its digests;
 * g->bad set when the writer's chunks were not the group's alone (the
 * file is then not recorded). */
PB_WUR int pb__group_store(struct pb__group *g, pb_backup_state_t *st, pb_manifest_writer_t *mw);
/* A message's digest: its id and content hash. */
uint64_t pb__group_digest(const char *id, const uint8_t hash[32]);
/* The digests of the file's last reading (generation rgen), sorted. */
PB_WUR int pb__group_digests_get(struct pb__group *g, pb_backup_state_t *st, const char *rel, int64_t rgen);
bool pb__group_digest_known(const struct pb__group *g, uint64_t d);
void pb__group_free(struct pb__group *g);

#endif
