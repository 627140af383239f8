/* What the files of the backup engine share (agent/backup/): progress and
 * events, cancellation, small helpers. Private to agent/backup/. */
#ifndef PB_AGENT_BACKUP_ENGINE_INT_H
#define PB_AGENT_BACKUP_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerback/event.h"
#include "peerback/provider.h"
#include "peerback/store.h"
#include "agent/backup/engine.h"
#include "agent/backup/repo.h"

typedef uint8_t name_t[PB_STORE_NAME_LEN];

#define OFFER_BATCH 1024              /* names per ChunkOffer */

/* Progress of one run, told to the old-style callback (throttled) and as
 * PB_EVENT_PROGRESS events (each item, and throttled within large ones). */
typedef struct pb__prog_s {
	pb_progress_t p;
	const pb_engine_opts_t *o;
	double last, last_event;
	uint64_t items_told;
	int canceled; /* the event callback's non-zero return, kept */
} pb__prog_t;

double pb__now_s(void);
/* Grows *p (elements of elem bytes, *cap of them) to hold need. */
PB_WUR int pb__grow(void **p, size_t *cap, size_t need, size_t elem);
/* pb__grow for element n, which it returns zeroed; NULL when out of memory. */
PB_WUR void *pb__grow_slot(void **p, size_t *cap, size_t n, size_t elem);
/* Tells progress; returns PB_ECANCELED once the event callback asked to
 * stop (and from then on). */
int pb__progress(pb__prog_t *pr, bool final);
/* Tells o's event callback of ev (name filled in); PB_ECANCELED when it
 * returned non-zero. */
int pb__emit(const pb_engine_opts_t *o, pb_event_t *ev);
/* A PB_EVENT_WARNING; PB_ECANCELED as pb__emit. */
int pb__warn(const pb_engine_opts_t *o, const char *phase, const char *path, uint64_t line, int err,
	     const char *message);
/* The PB_EVENT_DONE that ends every run, whatever its outcome. */
void pb__done(const pb_engine_opts_t *o, const char *phase, int rc, uint64_t snapshot);
/* A pb_scan_bad_cb that skips every bad source without a word. */
int pb__skip_quietly(void *arg, const char *rel, int err, uint64_t line, const char *why);
PB_WUR int pb__state_path(const char *home, char *out, size_t cap);
void pb__item_hash(const pb_backup_keys_t *keys, const uint8_t *data, size_t len, uint8_t out[32]);
/* The content hash of a file of several chunks (over PB_CDC_WHOLE_MAX):
 * a keyed BLAKE2b, personalized "peerback/names", of its n chunk names in
 * order. Each chunk's name is checked against its plaintext when opened,
 * so the names bind the bytes; a backup hashes every byte once (to name
 * it) instead of twice. Snapshots made before hold pb__item_hash of the
 * bytes for such files; the two never collide (different
 * personalization), so a reader tells them apart by trying this one. */
void pb__item_names_hash(const pb_backup_keys_t *keys, const uint8_t *names, size_t n, uint8_t out[32]);
/* Tests only: a backup records the hash of the bytes for every item, as
 * backups before pb__item_names_hash did. */
extern bool pb__item_hash_bytes;
/* Whether hash is pb__item_names_hash of the n names (n >= 2). */
bool pb__item_by_names(const pb_backup_keys_t *keys, const uint8_t *names, size_t n, const uint8_t hash[32]);
/* The host-side key of a SIM identity: a keyed hash the host cannot invert. */
void pb__sim_key(const pb_backup_keys_t *keys, const char *iccid, const char *msisdn, char out[4 + 64 + 1]);
/* The repository o names: o->repo, or a session with the remembered host. */
PB_WUR int pb__engine_repo(const pb_engine_opts_t *o, pb_repo_t **out, bool *owned);
/* The provider o names: o->provider, or the device directory's. */
PB_WUR int pb__engine_provider(const pb_engine_opts_t *o, const pb_provider_t **out, pb_provider_t **owned);

/* Master key (agent/backup/master.c). */
/* The phone's key from HOME/master.key; -ENOENT when it has none. */
PB_WUR int pb__master_local(const char *home, uint8_t mk[PB_MASTERKEY_LEN]);
/* The master key for reading dev's backups (NULL: this phone's), or with
 * create for this phone's backup (see master.c). */
PB_WUR int pb__master_key(pb_repo_t *repo, const pb_engine_opts_t *o, const uint8_t *dev, bool create,
			  uint8_t mk[PB_MASTERKEY_LEN]);
/* dev's own wrap on the repository, opened with the passphrase. */
PB_WUR int pb__master_device(pb_repo_t *repo, const uint8_t *dev, const char *passphrase,
			     uint8_t mk[PB_MASTERKEY_LEN]);

/* Item assembly (agent/backup/assemble.c): one restored item rebuilt
 * from its chunks, in memory, or in a temporary file when large. */
typedef struct pb__assembly_s {
	uint8_t *buf;
	size_t len, cap;
	int fd;
	char tmp[4200]; /* the temporary file, "" when in memory */
	uint8_t state[384]; /* crypto_generichash_state */
	bool whole; /* buf is one chunk, checked when opened: not hashed again */
	/* Every chunk added was checked against its name when opened and the
	 * manifest names them in order: the content is that of the backup
	 * without hashing it again (only its size is checked). */
	bool checked;
	uint64_t added;     /* bytes added so far */
	struct pb__wq_s *wq; /* writes the temporary file on its thread, or NULL */
	/* With wq: the file is closed on its thread too (pb__assembly_end
	 * does not wait for the writes); what takes the file must be queued
	 * there behind it. */
	bool queued_end;
} pb__assembly_t;
/* tmpdir NULL: always in memory. *tmpn numbers the temporary files. */
PB_WUR int pb__assembly_start(pb__assembly_t *a, const pb_backup_keys_t *keys, uint64_t size, const char *tmpdir,
			      unsigned *tmpn);
PB_WUR int pb__assembly_add(pb__assembly_t *a, const uint8_t *data, size_t len);
/* Adds chunk number k (of m's chunks, data[0..len)) of item m: the whole
 * chunk, or for a slice (a stream's message) only its part of it. */
PB_WUR int pb__assembly_add_chunk(pb__assembly_t *a, const pb_manifest_item_t *m, size_t k, const uint8_t *data,
				  size_t len);
/* pb__assembly_add of a malloc'd buffer given up: written to the
 * temporary file on the write queue's thread when there is one. */
PB_WUR int pb__assembly_add_owned(pb__assembly_t *a, uint8_t *data, size_t len);
/* Ends the item: its keyed content hash (not computed when checked); a
 * temporary file is closed, its writeback started (kept until
 * pb__assembly_drop, unless its taker moved it away). */
PB_WUR int pb__assembly_end(pb__assembly_t *a, uint8_t hash[32]);
/* Frees the buffer and removes the temporary file. */
void pb__assembly_drop(pb__assembly_t *a);
/* The two content hashes a backup may have recorded for the file open as
 * fd: pb__item_hash of its bytes, and the hash of the chunk names it is
 * cut into (pb__item_names_hash; the bytes' hash when it is one chunk).
 * One read; for a restore's plan of what is on disk. */
PB_WUR int pb__file_hashes(const pb_backup_keys_t *keys, int fd, uint8_t bytes[32], uint8_t names[32]);

/* A restore's file writes on their own thread (agent/backup/restore-write.c):
 * buffers given up with where they go, written in the order given. */
typedef struct pb__wq_s pb__wq_t;
PB_WUR int pb__wq_new(pb__wq_t **out);
/* Queues buf (freed once written) for fd at off; waits while the queue is full. */
void pb__wq_push(pb__wq_t *q, int fd, uint8_t *buf, size_t len, uint64_t off);
/* Queues the closing of fd (its writeback started), after its writes. */
void pb__wq_close(pb__wq_t *q, int fd);
/* Queues fn(arg, skip), run on the queue's thread after what was queued
 * before it; bytes: the memory arg holds, counted against the queue's
 * bound. skip: an earlier job failed, fn only frees arg. fn's failure
 * fails the queue: later writes are skipped. */
void pb__wq_call(pb__wq_t *q, int (*fn)(void *arg, bool skip), void *arg, size_t bytes);
/* The first failure so far (not cleared), or 0; does not wait. */
int pb__wq_failed(pb__wq_t *q);
/* Waits until everything queued is written: the first failure since the
 * last wait, or 0. */
int pb__wq_wait(pb__wq_t *q);
/* Writes what is queued, stops the thread. Accepts NULL. */
void pb__wq_free(pb__wq_t *q);

/* The restore cache (agent/backup/restore-cache.c): chunks a restore
 * fetched, sealed as they came, in one file under HOME/restore-cache,
 * indexed by name in memory. */
typedef struct pb__cache_s pb__cache_t;
/* What an interrupted run kept (nothing is created before the first keep). */
PB_WUR int pb__cache_open(const char *home, pb__cache_t **out);
bool pb__cache_has(const pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN]);
void pb__cache_keep(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len);
/* pb__cache_keep in two steps: the record's place (0: not kept), taken on
 * the restoring thread, then its bytes written on any thread. */
uint64_t pb__cache_reserve(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], size_t len);
void pb__cache_write(pb__cache_t *c, uint64_t at, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct,
		     size_t len);
PB_WUR int pb__cache_read(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **ct, size_t *len);
void pb__cache_forget(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN]);
/* A large item's chunks are not copied into the cache: its temporary file
 * tmp is linked into the cache's folder (pb__cache_stage: its id, 0 when
 * not kept), and each chunk noted as len bytes at off in it. */
uint32_t pb__cache_stage(pb__cache_t *c, const char *tmp);
void pb__cache_note(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], uint32_t file, uint64_t off, size_t len);
/* Whether an earlier run noted the chunk in a staged file. */
bool pb__cache_is_staged(const pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN]);
/* Its plaintext, not checked. */
PB_WUR int pb__cache_read_staged(pb__cache_t *c, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **plain,
				 size_t *len);
/* pb__cache_has, a chunk in a staged file read back and checked against
 * its name (keyed with name_key) first: forgotten when it does not match. */
bool pb__cache_check(pb__cache_t *c, const uint8_t name_key[32], const uint8_t name[PB_STORE_NAME_LEN]);
void pb__cache_close(pb__cache_t *c);
/* After a complete restore the cache has served its purpose. */
void pb__cache_drop(const char *home);

/* A snapshot root as a lookup by id needs it: its manifest chunks and its
 * id index (entries of the first key and an index chunk's name). */
typedef struct pb__root_s {
	int64_t time;
	uint64_t nitems;
	name_t *mchunks;
	size_t nm;
	uint8_t *index; /* NULL for a version 1 root */
	size_t nindex;
	/* Loaded from the root cache: both point into this mapping, and
	 * snap is the snapshot's id. */
	uint8_t *map;
	size_t map_len;
	uint64_t snap;
} pb__root_t;

/* The latest root the phone opened for each device, kept parsed in
 * HOME/root-cache (agent/backup/root-cache.c): a lookup by id in the same
 * snapshot need not fetch and open it again. Load: PB_ENOTFOUND unless
 * the file holds snapshot snap of dev (0: any, then root->snap says which),
 * kept with these keys. Save: best
 * effort, roots with an index only. */
PB_WUR int pb__root_cache_load(const char *home, const pb_backup_keys_t *keys, const uint8_t dev[16], uint64_t snap,
			       pb__root_t *root);
void pb__root_cache_save(const char *home, const pb_backup_keys_t *keys, const uint8_t dev[16], uint64_t snap,
			 const pb__root_t *root);
void pb__root_free(pb__root_t *root);

/* Chunk opening on worker threads (agent/backup/restore-open.c): sealed
 * chunks handed over in order, opened (pb_chunk_open) on other threads,
 * taken back in the same order. */
typedef struct pb__opener_s pb__opener_t;
PB_WUR int pb__opener_new(const pb_backup_keys_t *keys, pb__opener_t **out);
/* Whether another chunk may be handed over (the ring and its byte bound). */
bool pb__opener_room(const pb__opener_t *o);
/* Chunks handed over and not taken back. */
size_t pb__opener_waiting(const pb__opener_t *o);
/* Hands ct over (the opener's until taken back); tag is the caller's. */
void pb__opener_put(pb__opener_t *o, const uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t len, uint64_t tag);
/* pb__opener_put, the chunk also written to the cache at its place at
 * (pb__cache_reserve; 0: not kept) by the thread that opens it. */
void pb__opener_put_keep(pb__opener_t *o, const uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t len,
			 uint64_t tag, pb__cache_t *cache, uint64_t at);
/* Hands over a chunk's plaintext (read back from a staged file): only its
 * name is checked; taken back as the plaintext with no sealed bytes. */
void pb__opener_put_plain(pb__opener_t *o, const uint8_t name[PB_STORE_NAME_LEN], uint8_t *plain, size_t len,
			  uint64_t tag);
/* Waits for the oldest chunk handed over: the sealed bytes and tag back,
 * its plaintext (malloc'd, NULL when it did not open) and pb_chunk_open's
 * result. */
int pb__opener_take(pb__opener_t *o, uint8_t **ct, size_t *len, uint64_t *tag, uint8_t **plain, size_t *plen);
/* Stops the threads and frees what was not taken back. Accepts NULL. */
void pb__opener_free(pb__opener_t *o);

/* Device-directory provider internals (agent/backup/provider-dir.c). */
bool pb__provider_is_dir(const pb_provider_t *p);
struct stat;
struct pb__item_hasher_s;
/* The provider's walk with fcb asked first about each file, before it is
 * read (see pb__device_scan_files): a known file is skipped whole. With a
 * hasher h, each item cb hears is the it of a pb__item_x_t. */
PB_WUR int pb__provider_dir_list_files(const pb_provider_t *p, unsigned kind_mask,
				       int (*fcb)(void *arg, const char *relpath, const struct stat *st),
				       const struct pb__item_hasher_s *h, pb_item_cb cb, pb_scan_bad_cb bad,
				       void *arg);
/* The file (relative) that stopped the provider's last walk, or "". */
const char *pb__provider_dir_bad(const pb_provider_t *p);
/* After a failed restore into a device directory: the link that stopped
 * it ("" if none), and the files already replaced (none when the target
 * was new). */
const char *pb__dir_txn_link(void *txn);
/* The restore gives up the temporary files of the items it writes: the
 * writer moves them into place instead of copying them. */
void pb__dir_txn_take_files(void *txn);
size_t pb__dir_txn_replaced(void *txn, const char *const **paths);

#endif
