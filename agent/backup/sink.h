/* The sink of a backup's chunks: given plaintext, it names each chunk at
 * once (on the caller's thread, which needs the name for the manifest),
 * seals it on a pool of threads (zstd and XChaCha20-Poly1305, one zstd
 * context per thread), and sends it to the repository with offers and
 * commits in flight: an offer is answered while the previous batch's puts
 * go out, and a commit's receipt is taken later, never waited for on its
 * own. Each receipt is told to the caller (durable), which then records
 * what that commit covered. Private to agent/backup/. */
#ifndef PB_AGENT_BACKUP_SINK_H
#define PB_AGENT_BACKUP_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "peerback/store.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/repo.h"
#include "peerback.h"

typedef struct pb__sink_s pb__sink_t;

/* A commit's receipt came: names are committed in the repository from now
 * on, and so is every chunk added before the pb__sink_commit that gave
 * mark. Runs on the caller's thread, within a pb__sink_* call. */
typedef int (*pb__sink_durable_cb)(void *arg, uint64_t mark, const name_t *names, size_t n);

typedef struct pb__sink_opts_s {
	pb_repo_t *repo;
	pb_backup_state_t *st;          /* chunks it holds committed are skipped */
	const pb_backup_keys_t *keys;   /* chunk and name keys */
	bool dry_run;                   /* count what would be sent, send nothing */
	pb_engine_result_t *res;        /* chunks_sent, bytes_sent */
	pb__prog_t *pr;
	pb__sink_durable_cb durable;
	void *arg;
} pb__sink_opts_t;

/* Starts the sealing threads (none on a one-core machine or when they
 * cannot start: the caller's thread seals then). o is copied. */
PB_WUR int pb__sink_new(const pb__sink_opts_t *o, pb__sink_t **out);

/* Names plain (len <= PB_CHUNK_PLAIN_MAX) into name and queues it for
 * sealing and sending; plain is the caller's again on return. */
PB_WUR int pb__sink_add(pb__sink_t *s, const uint8_t *plain, size_t len, uint8_t name[PB_STORE_NAME_LEN]);
/* The same with a chunk of at most 64 KiB compressed at zstd level level
 * (pb__seal_named_level); a larger one at the default level. Such small
 * chunks are copied into a batch (512 KiB) that goes to the sealing
 * threads whole once full or before anything else is added or committed,
 * so they are sent in the order added (the caller's thread seals them
 * without sealing threads, or with pb__sink_pack_off). */
PB_WUR int pb__sink_add_level(pb__sink_t *s, const uint8_t *plain, size_t len, uint8_t name[PB_STORE_NAME_LEN],
			      int level);

/* Tests: no batches of small chunks (each sealed on the caller's thread). */
extern bool pb__sink_pack_off;

/* The same, and the bytes go into the item hash ih too (in the order
 * added, on the hashing thread when there is one): ih is not the caller's
 * to read or update again until pb__sink_hash_wait. NULL: none. */
PB_WUR int pb__sink_add_hashed(pb__sink_t *s, const uint8_t *plain, size_t len,
			       uint8_t name[PB_STORE_NAME_LEN], crypto_generichash_state *ih);

/* The same without an item hash, named on a sealing thread when there is
 * one (the caller's thread does not pass over the bytes again): the name
 * lands in name_to (32 bytes), which stays the caller's to keep but not
 * to read or move until pb__sink_hash_wait. Such a chunk is sealed and
 * offered even when the state holds it committed: the repository's answer
 * keeps it from being sent again. */
PB_WUR int pb__sink_add_named(pb__sink_t *s, const uint8_t *plain, size_t len, uint8_t *name_to);

/* n chunks of a file as pb__sink_add_named (name_to[k] for data[k]),
 * named together on a sealing thread (pb__b2k_hash_many, a few times the
 * speed of one by one) and sealed there one after the other; at most
 * PB__CDC_CUTS_MAX of them. Without sealing threads, named and sealed
 * here. */
PB_WUR int pb__sink_add_named_many(pb__sink_t *s, const uint8_t *const *data, const size_t *len, size_t n,
				   uint8_t *const *name_to);

/* n chunks of a file one after the other in buf, named already
 * (names[k] for the k-th), sealed on the sealing threads straight from
 * buf, which is not copied: it is lent, and given back with give(garg,
 * buf) once they are sent (also on failure, or when the sink is freed,
 * which must then come before whatever give needs). Such a chunk is
 * sealed and offered even when the state holds it committed (as
 * pb__sink_add_named's). */
PB_WUR int pb__sink_add_piece(pb__sink_t *s, uint8_t *buf, const size_t *len, const name_t *names, size_t n,
			      void (*give)(void *garg, uint8_t *buf), void *garg, size_t keep);
/* (keep: it returns once at most keep lent buffers are still held, so
 * that a lender with a few buffers never waits for one while its caller
 * waits for the lender.) */

/* Takes the sealed chunks at the head of the ring on to the repository,
 * waiting for none (unless the ring is full): 1 when it took some, 0 when
 * there were none, or an error. For a caller that would wait anyway. */
PB_WUR int pb__sink_pump(pb__sink_t *s);

/* Whether chunks are sealed on threads of their own (none on one core). */
bool pb__sink_threaded(const pb__sink_t *s);

/* The same as pb__sink_add with plain's name given (named by the caller,
 * many chunks at once: pb__b2k_hash_many). */
PB_WUR int pb__sink_add_known(pb__sink_t *s, const uint8_t *plain, size_t len,
			      const uint8_t name[PB_STORE_NAME_LEN]);

/* The same as pb__sink_add_level with plain's name given (a chat
 * stream's chunks, named many at once). */
PB_WUR int pb__sink_add_known_level(pb__sink_t *s, const uint8_t *plain, size_t len,
				    const uint8_t name[PB_STORE_NAME_LEN], int level);

/* Returns once every byte added with an item hash went into it and every
 * name of pb__sink_add_named is in place. */
void pb__sink_hash_wait(pb__sink_t *s);

/* Queues a chunk sealed elsewhere (a manifest chunk); ct is copied. */
PB_WUR int pb__sink_add_sealed(pb__sink_t *s, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct,
			       size_t len);

/* Queues a manifest chunk by its plaintext, named already: sealed under
 * the manifest key at zstd level on a sealing thread, off the caller's
 * thread as a stream's chunks are; plain is copied. */
PB_WUR int pb__sink_add_manifest(pb__sink_t *s, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *plain,
				 size_t len, int level);

/* Bytes added between commits (each two syncs on the host: the pack's and
 * its index's): also what a cut link may make a phone send again
 * (docs/TESTING.md, lan-cut-resume). Once a run has added
 * PB__SINK_COMMIT_WIDE_AFTER bytes, twice as many: a large backup's
 * commits cost the host's storage worker half as many syncs (a standard
 * full backup made about 150), and what a cut link may make it send again
 * past that point grows from about 16 to about 24 MiB (two commits
 * awaiting receipts and the puts behind them). */
#define PB__SINK_COMMIT_BYTES (4u << 20)
#define PB__SINK_COMMIT_WIDE_AFTER (64u << 20)
#define PB__SINK_COMMIT_BYTES_WIDE (8u << 20)

/* True when enough was added since the last commit for another: its
 * bytes (above), or a second since it (with anything added). */
bool pb__sink_due(const pb__sink_t *s);

/* Asks for a commit of every chunk added so far, sent as soon as those
 * are put; its receipt calls durable with mark. wait: returns only once
 * every receipt is in (end of a run). A dry run commits nothing. */
PB_WUR int pb__sink_commit(pb__sink_t *s, uint64_t mark, bool wait);

/* Takes every answer asked for so far (puts and commits may follow), so
 * that the caller can read from the repository. */
PB_WUR int pb__sink_settle(pb__sink_t *s);

/* The large chunks are all added (the walk's files): the sealed rooms
 * kept for the next ones are freed, and no more are kept. */
void pb__sink_keep_none(pb__sink_t *s);

/* Stops the threads and drops what was not sent. Accepts NULL. */
void pb__sink_free(pb__sink_t *s);

#endif
