/* The phone's backup run, shared by agent/backup/backup.c (the walk,
 * items, receipts, the snapshot) and backup-chunk.c (commits, an item's
 * bytes into the sink). Private to agent/backup/. */
#ifndef PB_AGENT_BACKUP_BACKUP_INT_H
#define PB_AGENT_BACKUP_BACKUP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/group.h"
#include "agent/backup/internal.h"
#include "agent/backup/reader.h"
#include "agent/backup/sink.h"
#include "agent/backup/stream.h"
#include "agent/util/blake2b.h"

struct pending_item {
	pb_manifest_item_t m;
	char *id, *path;
	name_t *names;
	uint64_t mark; /* b->ticks when it was kept */
};

/* A file walked whole, waiting for the receipt that covers its items:
 * mark is b->ticks when it ended (its items kept, its stream cut), and a
 * commit asked at or after that mark covers all of them. */
struct done_file {
	char *path;
	pb__stamp_t stamp;
	uint64_t items, bytes;
	uint64_t mark;
};

struct backup {
	const pb_engine_opts_t *o;
	pb_repo_t *repo;
	const pb_provider_t *prov;
	pb_backup_keys_t keys;
	/* keys.name's keyed BLAKE2b prepared once (agent/util/blake2b.h):
	 * a message's content hash (pb__item_hash) and its id's key
	 * (pb__manifest_id_key) are each one or two blocks, of which the
	 * key's own block was the first. */
	pb__b2k_t item_k, id_k;
	pb_cdc_t cdc;
	/* pb__cdc_file_many's buffer, allocated at the first large file and
	 * kept for the others (without a reader). */
	uint8_t *filebuf;
	/* Reads, cuts and names files over 64 KiB beside this thread
	 * (started at the first, with sealing threads; reader.h). */
	pb__reader_t *reader;
	bool no_reader;
	/* The file the walk comes to next, when it is a file item (the
	 * scan's ahead): read ahead once the walk reads the one before. */
	char next[4096], next_rel[4096];
	bool has_next;
	/* The file read ahead: its path, fd, and stamp when opened; its
	 * chunks are taken only if the walk's own stat of it (seen, from
	 * file_seen) is the same, so that no byte read before the stamp the
	 * state records goes into the backup. */
	char ahead[4096];
	int ahead_fd;
	bool ahead_on, ahead_whole;
	pb__stamp_t ahead_stamp, seen;
	bool has_seen;
	pb_backup_state_t *st;
	pb_manifest_writer_t *mw;
	pb__prog_t pr;
	pb_engine_result_t *res;
	/* Where sealed chunks go (agent/backup/sink.h). */
	pb__sink_t *sink;
	/* Items whose chunks wait for a commit's receipt. */
	struct pending_item *items;
	size_t nitems, cap_items;
	/* Counts what went to the sink: each item kept and each chunk of a
	 * chat stream (whose messages are kept as no item). A commit's mark
	 * is the count when it was asked: what came before it is covered by
	 * its receipt, a file whose stream was cut after it is not. */
	uint64_t ticks;
	/* The item being chunked. */
	name_t *cur;
	size_t ncur, cap_cur;
	/* The item's content hash, as its chunks go by; an item of one chunk
	 * (whole) is not hashed apart: its hash is that chunk's name, the
	 * same keyed BLAKE2b of the same bytes. */
	crypto_generichash_state hash;
	bool whole;
	/* An item not in memory: its hash, when it is several chunks, is
	 * the hash of their names (pb__item_names_hash), and its bytes are
	 * not hashed apart either. Items in memory keep the hash of their
	 * bytes, which unchanged() compares without cutting them. */
	bool by_names;
	/* Unchanged items touched in the state since the last commit, in one
	 * open transaction. */
	size_t touched;
	/* The multi-item file being walked, and the largest seq it gave so
	 * far (a file that then fails to parse keeps those items). */
	char *file;
	bool file_gave;
	uint64_t file_seq;
	/* Files known by their stamp (the device directory only). */
	bool by_file;
	struct pb__group grp;
	struct done_file *dfiles;
	size_t ndfiles, cap_dfiles;
	/* The manifest record being made. */
	uint8_t *rec;
	size_t cap_rec;
	/* An unchanged item's chunk names, as recorded. */
	uint8_t *old;
	size_t cap_old, nold;
	/* The chat whose messages are being cut as one stream. */
	pb__stream_t stream;
	/* True while the walk hands over pb__item_x_t (walk with a hasher):
	 * a chat's messages come hashed by the thread that parsed them. */
	bool xwalk;
};

/* backup-chunk.c: makes everything sent durable in the repository (the
 * items kept so far are recorded at its receipt, which with wait is in on
 * return); ends the transaction of touched unchanged items; frees a kept
 * item. */
PB_WUR int pb__bk_commit(struct backup *b, bool wait);
int pb__bk_touch_end(struct backup *b);
void pb__bk_free_pending(struct pending_item *it);

/* The current item's chunks from its bytes, its file (at
 * it->file) or its provider's read; *size: the item's size. */
PB_WUR int pb__bk_chunk_memory(struct backup *b, const uint8_t *data, size_t len);
PB_WUR int pb__bk_chunk_file(struct backup *b, const pb_item_t *it, uint64_t *size);
PB_WUR int pb__bk_chunk_read(struct backup *b, const pb_item_t *it, uint64_t *size);
/* The walk's next file (pb__item_hasher_t.ahead; arg: the backup); now:
 * the walk parses a file meanwhile, and the reader may read it at once. */
void pb__bk_ahead(void *arg, const char *abs, const char *rel, bool now);
/* A file's stamp from its stat, and whether two are the same. */
void pb__bk_stamp_of(const struct stat *st, pb__stamp_t *s);
bool pb__bk_same_stamp(const pb__stamp_t *a, const pb__stamp_t *b);

#endif
