/* peerback backup storage: the host's zero-knowledge store and the phone's
 * keys, chunking, chunk sealing, manifests and local backup state.
 *
 * The host side (pb_store_*) keeps only ciphertext and opaque blobs: chunks in
 * append-only pack files, an SQLite index of what is committed, snapshot
 * records and small blobs (the wrapped master key). A transfer layer drives it
 * message by message: the phone offers chunk names, pb_store_missing() says
 * which to send, pb_store_put() takes each, pb_store_flush() makes them durable
 * and is the moment to acknowledge them, pb_store_snapshot_put() records the
 * snapshot once every chunk it references is committed, and its success is the
 * receipt. Handles are not thread-safe: one thread at a time drives a store
 * and all of its namespace handles.
 *
 * The phone side (pb_masterkey_*, pb_backup_keys_*, pb_cdc_*, pb_chunk_*,
 * pb_manifest_*, pb_backup_state_*) turns items into sealed, keyed-named
 * chunks and a sealed manifest, and remembers what was already backed up.
 *
 * Formats and the commit order are described in docs/STORAGE.md. */
#ifndef PEERBACK_STORE_H
#define PEERBACK_STORE_H

#include "peerback/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pb_store_s pb_store_t;
typedef struct pb_store_ns_s pb_store_ns_t;
typedef struct pb_backup_keys_s pb_backup_keys_t;
typedef struct pb_manifest_writer_s pb_manifest_writer_t;
typedef struct pb_backup_state_s pb_backup_state_t;

/* Every chunk is named by a 32-byte keyed hash of its plaintext. */
#define PB_STORE_NAME_LEN 32
/* Largest chunk ciphertext the host accepts. */
#define PB_STORE_CT_MAX (5u * 1024 * 1024)
/* A pack file is closed once it holds this many bytes; the next one starts. */
#define PB_STORE_PACK_CAP (64u * 1024 * 1024)
/* Largest snapshot record (the sealed manifest root) and blob values. */
#define PB_STORE_SNAPSHOT_MAX (4u * 1024 * 1024)
#define PB_STORE_BLOB_MAX (64u * 1024)
/* Most chunk names one snapshot may reference (58 MiB of names: the
 * SnapshotPut carrying them stays under the host's 64 MiB message cap). */
#define PB_STORE_SNAPSHOT_REFS_MAX 1900000u
/* Longest account id, device id and blob key, in bytes. */
#define PB_STORE_ID_MAX 255

/* ---- Callbacks ---------------------------------------------------------- */

/* Progress of pb_store_verify(): bytes checked so far of total. */
typedef void (*pb_store_progress_cb)(void *arg, uint64_t done, uint64_t total);

/* Receives one sealed manifest chunk from the manifest writer; the caller
 * stores it like a data chunk (pb_store_put on the host). ct is borrowed. */
typedef int (*pb_manifest_chunk_cb)(void *arg, const uint8_t name[PB_STORE_NAME_LEN],
				    const uint8_t *ct, size_t ct_len);

/* Receives one chunk of a file cut by pb_cdc_file(); data is borrowed. */
typedef int (*pb_cdc_chunk_cb)(void *arg, const uint8_t *data, size_t len);

/* ---- Host store --------------------------------------------------------- */

/* Opens (creating if needed) the store in dir and takes its lock. Recovers
 * from a crash: pack bytes past the last committed offset are cut off and
 * pack files the index does not know are removed. PB_ESTORE_LOCKED when
 * another handle holds the store; PB_ESTORE_CORRUPT when packs exist but the
 * index file is gone (nothing is touched then). *out is owned by the caller. */
PB_EXTERN PB_WUR int pb_store_open(const char *dir, pb_store_t **out);
/* Opens an existing store for reading only, beside the handle that holds
 * its lock (a running host): no lock is taken, nothing is recovered or
 * written. Namespaces open with pb_store_ns_open_ro() only; writes and GC
 * are refused with PB_ESTATE. */
PB_EXTERN PB_WUR int pb_store_open_ro(const char *dir, pb_store_t **out);
/* Closes the store; chunks put but not flushed are dropped. Accepts NULL.
 * Every namespace handle must be closed first. */
PB_EXTERN void pb_store_close(pb_store_t *store);

/* Opens the namespace of one (account, device) pair, creating it. The handle
 * is owned by the caller and must be closed before the store. A namespace
 * may have any number of handles: readers are always served, and one
 * handle at a time appends chunks (from a batch's first pb_store_put() to
 * its pb_store_flush(); another handle's put meanwhile is PB_EBUSY). */
PB_EXTERN PB_WUR int pb_store_ns_open(pb_store_t *store, const char *account,
				      const char *device_id, pb_store_ns_t **out);
/* Opens a namespace for reading only: nothing is created or written, by the
 * open or by any read through the handle. A namespace that does not exist
 * reads as empty (no chunk, snapshot or blob) until it is created. The
 * functions that write refuse the handle with PB_ESTATE. */
PB_EXTERN PB_WUR int pb_store_ns_open_ro(pb_store_t *store, const char *account,
					 const char *device_id, pb_store_ns_t **out);
/* What a namespace holds, as its quota counts it: committed pack bytes
 * (dead records too, until GC), snapshot records plus PB_STORE_REF_COST
 * bytes per reference (the index rows), and blob values. */
#define PB_STORE_REF_COST 48
PB_EXTERN PB_WUR int pb_store_ns_usage(pb_store_ns_t *ns, uint64_t *bytes);
/* Limits what the namespace may hold to quota bytes (0, the default: no
 * limit) for writes through this handle. A put, snapshot or blob that would
 * pass it is refused with PB_ESTORE_QUOTA; a refused put drops its batch
 * like any write error. */
PB_EXTERN void pb_store_ns_set_quota(pb_store_ns_t *ns, uint64_t quota);
/* Closes a namespace handle; unflushed puts are dropped. Accepts NULL. */
PB_EXTERN void pb_store_ns_close(pb_store_ns_t *ns);

/* For each of the n names sets missing[i] to true when the namespace has no
 * committed chunk of that name. One read transaction. */
PB_EXTERN PB_WUR int pb_store_missing(pb_store_ns_t *ns, const uint8_t (*names)[PB_STORE_NAME_LEN],
				      size_t n, bool *missing);
/* Appends one chunk to the namespace's open pack. Not durable and not to be
 * acknowledged until pb_store_flush(). A name already committed or already
 * put in this batch is skipped (returns 0). On a write error (PB_ENOSPACE,
 * -EIO, ...) every unflushed put of the batch is dropped. */
PB_EXTERN PB_WUR int pb_store_put(pb_store_ns_t *ns, const uint8_t name[PB_STORE_NAME_LEN],
				  const uint8_t *ct, size_t len);
/* Makes every put so far durable: fsyncs the pack, then commits the index
 * rows. Returns the number of chunks committed (>= 0) or an error, in which
 * case none of the batch is acknowledged and the pack tail is discarded.
 * When the index commit itself failed, its outcome is unknown until the
 * store is reopened: every write then fails with PB_EIO until then. */
PB_EXTERN PB_WUR int pb_store_flush(pb_store_ns_t *ns);
/* Reads a committed chunk and checks its ciphertext against the stored hash
 * (PB_ESTORE_HASH on mismatch, PB_ENOTFOUND if absent). *ct is malloc'd and
 * owned by the caller. */
PB_EXTERN PB_WUR int pb_store_get(pb_store_ns_t *ns, const uint8_t name[PB_STORE_NAME_LEN],
				  uint8_t **ct, size_t *len);
/* Reads n committed chunks at once, each as pb_store_get would: one index
 * lookup a name through one statement, then the records read in pack and
 * offset order, each pack opened once. ct[i] (malloc'd, the caller's) and
 * len[i] for names[i], or NULL with rcs[i] saying why (PB_ENOTFOUND,
 * PB_ESTORE_HASH, ...). max_bytes (0: no limit) bounds what one call
 * reads: only names[0 .. *served) are answered (at least one), the rest
 * are left for another call; served may be NULL when max_bytes is 0.
 * Returns 0, or an error of the index (then no chunk is handed out). */
PB_EXTERN PB_WUR int pb_store_get_many(pb_store_ns_t *ns, const uint8_t (*names)[PB_STORE_NAME_LEN], size_t n,
				       size_t max_bytes, uint8_t **ct, size_t *len, int *rcs, size_t *served);

/* Records snapshot snap_id with its opaque blob (the sealed manifest root)
 * and the names of every chunk it references. Refused with
 * PB_ESTORE_NOCHUNK while any of them is not committed. Putting the same id
 * with the same blob again succeeds (a lost receipt); a different blob under
 * an existing id is PB_EEXISTS. Success is the receipt: the record is durable. */
PB_EXTERN PB_WUR int pb_store_snapshot_put(pb_store_ns_t *ns, uint64_t snap_id,
					   const uint8_t (*refs)[PB_STORE_NAME_LEN], size_t nrefs,
					   const uint8_t *blob, size_t len);

typedef struct pb_store_snapinfo_s {
	uint64_t id;
	int64_t time;     /* seconds since the epoch when the host recorded it */
	uint64_t size;    /* bytes of ciphertext of its referenced chunks */
	uint64_t nrefs;   /* referenced chunks */
} pb_store_snapinfo_t;

/* Lists the namespace's snapshots by id. *out is malloc'd (caller frees). */
PB_EXTERN PB_WUR int pb_store_snapshot_list(pb_store_ns_t *ns, pb_store_snapinfo_t **out, size_t *n);
/* Returns a snapshot's blob (malloc'd, caller frees); PB_ESTORE_NOSNAP. */
PB_EXTERN PB_WUR int pb_store_snapshot_get(pb_store_ns_t *ns, uint64_t snap_id, uint8_t **blob,
					   size_t *len);
/* Returns the names a snapshot references (malloc'd array, caller frees). */
PB_EXTERN PB_WUR int pb_store_snapshot_refs(pb_store_ns_t *ns, uint64_t snap_id,
					    uint8_t (**names)[PB_STORE_NAME_LEN], size_t *n);

/* Stores or replaces an opaque value under key (the wrapped master key). */
PB_EXTERN PB_WUR int pb_store_blob_put(pb_store_ns_t *ns, const char *key, const uint8_t *val,
				       size_t len);
/* Returns the value under key (malloc'd, caller frees); PB_ENOTFOUND. */
PB_EXTERN PB_WUR int pb_store_blob_get(pb_store_ns_t *ns, const char *key, uint8_t **val,
				       size_t *len);

/* Deletes every snapshot of the namespace whose id is not among the nkeep
 * ids in keep. Returns the number deleted. Chunks stay until pb_store_gc(). */
PB_EXTERN PB_WUR int pb_store_prune(pb_store_ns_t *ns, const uint64_t *keep, size_t nkeep);
/* What pb_store_prune() with these ids and then pb_store_gc() would free in
 * the namespace: the chunks (and their bytes) that only the dropped
 * snapshots reference. Writes nothing; works on a read-only handle. */
PB_EXTERN PB_WUR int pb_store_prune_plan(pb_store_ns_t *ns, const uint64_t *keep, size_t nkeep,
					 uint64_t *chunks, uint64_t *bytes);

/* Which snapshots of a phone to keep, as restic and Borg count them: the
 * newest last, and the newest of each of the last daily days, weekly ISO
 * weeks and monthly months (local time) that have a snapshot. The union of
 * the rules; the newest snapshot is always kept. */
typedef struct pb_store_keep_s {
	unsigned last, daily, weekly, monthly;
} pb_store_keep_t;

typedef struct pb_store_prune_result_s {
	pb_store_snapinfo_t *snaps; /* newest first */
	bool *kept;                 /* per snaps[i] */
	size_t n;
	uint64_t removed;           /* snapshots removed, or that would be */
	uint64_t chunks, bytes;     /* dry run: what pb_store_gc() would then free */
} pb_store_prune_result_t;

/* Applies policy to the namespace's snapshots: deletes the others (chunks
 * stay until pb_store_gc()) or, with dry_run, only tells (then a read-only
 * handle will do). res is filled on success; free it with
 * pb_store_prune_result_free(). */
PB_EXTERN PB_WUR int pb_store_prune_keep(pb_store_ns_t *ns, const pb_store_keep_t *policy, bool dry_run,
					 pb_store_prune_result_t *res);
PB_EXTERN void pb_store_prune_result_free(pb_store_prune_result_t *res);

typedef struct pb_store_gc_report_s {
	uint64_t chunks_removed;
	uint64_t packs_deleted;
	uint64_t packs_repacked;
	uint64_t bytes_freed;
} pb_store_gc_report_t;

/* Removes chunks no snapshot references and that were committed at least
 * min_age seconds ago (younger ones may belong to a backup in progress),
 * then deletes packs with no live chunk and rewrites packs that are mostly
 * dead. Files are removed only after the index that no longer needs them is
 * committed. PB_EBUSY while a namespace has unflushed puts. report may be
 * NULL. */
PB_EXTERN PB_WUR int pb_store_gc(pb_store_t *store, int64_t min_age, pb_store_gc_report_t *report);

typedef struct pb_store_verify_report_s {
	uint64_t packs;
	uint64_t records;        /* pack records read */
	uint64_t chunks;         /* index rows checked */
	uint64_t bytes;          /* pack bytes read */
	uint64_t dead_records;   /* intact records no index row uses (GC fodder) */
	uint64_t bad_records;    /* records whose hash does not match, or unreadable */
	uint64_t bad_chunks;     /* index rows with no matching intact record */
	uint64_t missing_refs;   /* snapshot references to absent chunks */
} pb_store_verify_report_t;

/* Reads every pack and checks each record's hash, each index row against
 * its record, and each snapshot's references; needs no key. Returns 0 when
 * clean, PB_ESTORE_CORRUPT when something is wrong (details in report), or
 * another error if it could not run. progress may be NULL. */
PB_EXTERN PB_WUR int pb_store_verify(pb_store_t *store, pb_store_progress_cb progress, void *arg,
				     pb_store_verify_report_t *report);

/* ---- Phone: master key and key hierarchy -------------------------------- */

#define PB_MASTERKEY_LEN 32
/* Wrapped master key: header, Argon2id parameters, salt, nonce, sealed key. */
#define PB_MASTERKEY_WRAPPED_LEN (4 + 1 + 1 + 2 + 8 + 8 + 16 + 24 + 32 + 16)

typedef struct pb_pwhash_params_s {
	uint64_t opslimit;
	uint64_t memlimit; /* bytes */
} pb_pwhash_params_t;

/* Argon2id "moderate" (the default, about 1 s and 256 MiB) and "interactive"
 * (for tests only: a wrap made with them is cheap to guess) parameters. */
PB_EXTERN pb_pwhash_params_t pb_pwhash_params_moderate(void);
PB_EXTERN pb_pwhash_params_t pb_pwhash_params_interactive(void);

/* The rule a new recovery passphrase must meet: at least
 * PB_PASSPHRASE_MIN_CHARS characters (UTF-8 code points) of which at least
 * PB_PASSPHRASE_MIN_DISTINCT differ. 0, or PB_ESTORE_WEAKPASS. Applies only
 * when a passphrase is set: an existing wrap opens with whatever it was
 * made with. */
#define PB_PASSPHRASE_MIN_CHARS 12
#define PB_PASSPHRASE_MIN_DISTINCT 5
PB_EXTERN PB_WUR int pb_passphrase_check(const char *passphrase);

/* Creates a new random master key. */
PB_EXTERN void pb_masterkey_generate(uint8_t mk[PB_MASTERKEY_LEN]);
/* Wraps mk with a key derived from the passphrase (params NULL = moderate)
 * into out (PB_MASTERKEY_WRAPPED_LEN bytes). */
PB_EXTERN PB_WUR int pb_masterkey_wrap(const uint8_t mk[PB_MASTERKEY_LEN], const char *passphrase,
				       const pb_pwhash_params_t *params,
				       uint8_t out[PB_MASTERKEY_WRAPPED_LEN]);
/* Unwraps a blob made by pb_masterkey_wrap(); PB_ESTORE_PASSPHRASE when the
 * passphrase is wrong, PB_EMALFORMED/PB_EUNSUPPORTED for a bad blob. */
PB_EXTERN PB_WUR int pb_masterkey_unwrap(const uint8_t *blob, size_t len, const char *passphrase,
					 uint8_t mk[PB_MASTERKEY_LEN]);

/* Subkeys of the master key, one per purpose. Wipe with pb_backup_keys_wipe. */
struct pb_backup_keys_s {
	uint8_t chunk[32];    /* encrypts data chunks */
	uint8_t name[32];     /* names chunks (keyed BLAKE2b) */
	uint8_t manifest[32]; /* encrypts manifests */
	uint8_t gear[32];     /* derives the chunker's gear table */
};

PB_EXTERN void pb_backup_keys_derive(const uint8_t mk[PB_MASTERKEY_LEN], pb_backup_keys_t *keys);
PB_EXTERN void pb_backup_keys_wipe(pb_backup_keys_t *keys);

/* ---- Phone: content-defined chunking ------------------------------------ */

/* Items below PB_CDC_WHOLE_MAX are one chunk; larger ones are cut by a keyed
 * gear hash with normalized chunking into chunks of PB_CDC_MIN..PB_CDC_MAX
 * bytes, about PB_CDC_AVG on average. */
#define PB_CDC_WHOLE_MAX (1u * 1024 * 1024)
#define PB_CDC_MIN (256u * 1024)
#define PB_CDC_AVG (1u * 1024 * 1024)
#define PB_CDC_MAX (4u * 1024 * 1024)

typedef struct pb_cdc_s {
	uint64_t gear[256];
} pb_cdc_t;

/* Derives the gear table from keys->gear. Wipe with pb_cdc_wipe. */
PB_EXTERN void pb_cdc_init(pb_cdc_t *cdc, const pb_backup_keys_t *keys);
PB_EXTERN void pb_cdc_wipe(pb_cdc_t *cdc);
/* Length of the next chunk at the start of buf[0..len). When the cut point
 * lies beyond len and more data follows (eof false), returns 0: call again
 * with more data. With eof true, always returns min(len, the cut). */
PB_EXTERN size_t pb_cdc_cut(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof);
/* Streams the file open on fd and calls cb for each chunk, with memory
 * bounded by twice PB_CDC_MAX. Small files are one chunk. */
PB_EXTERN PB_WUR int pb_cdc_file(const pb_cdc_t *cdc, int fd, pb_cdc_chunk_cb cb, void *arg);

/* ---- Phone: chunk sealing ----------------------------------------------- */

/* Largest plaintext chunk and the ciphertext bound for a plaintext length. */
#define PB_CHUNK_PLAIN_MAX PB_CDC_MAX
#define PB_CHUNK_HDR_LEN (1 + 1 + 24)
#define PB_CHUNK_CT_LEN_MAX(plain_len) ((plain_len) + PB_CHUNK_HDR_LEN + 16)

/* Names (keyed BLAKE2b-256 of plain; from 64 KiB on, of its eight
 * segments: docs/STORAGE.md, "Chunk names"), compresses with zstd when that
 * shrinks it, and encrypts with XChaCha20-Poly1305 (random nonce, the name
 * as associated data). ct must hold PB_CHUNK_CT_LEN_MAX(len) bytes. */
PB_EXTERN PB_WUR int pb_chunk_seal(const pb_backup_keys_t *keys, const uint8_t *plain, size_t len,
				   uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t *ct_len);
/* Decrypts and decompresses ct into plain (cap bytes) and checks that the
 * plaintext hashes to name: PB_ESTORE_HASH if the ciphertext was tampered
 * with, sealed under another name or key, or names other data. */
PB_EXTERN PB_WUR int pb_chunk_open(const pb_backup_keys_t *keys, const uint8_t name[PB_STORE_NAME_LEN],
				   const uint8_t *ct, size_t ct_len, uint8_t *plain, size_t cap,
				   size_t *plain_len);

/* ---- Phone: manifests ---------------------------------------------------- */

/* Caps the manifest decoder enforces on hostile input. */
#define PB_MANIFEST_ID_MAX 1024
#define PB_MANIFEST_PATH_MAX 4096
#define PB_MANIFEST_ITEM_CHUNKS_MAX 100000u
#define PB_MANIFEST_CHUNK_PLAIN_MAX PB_CHUNK_PLAIN_MAX
#define PB_MANIFEST_ROOT_CHUNKS_MAX (1u << 20)
/* A manifest chunk is sealed once its plaintext passes this size. */
#define PB_MANIFEST_CHUNK_TARGET (1u * 1024 * 1024)

/* One backed-up item. Pointers are borrowed for the duration of a call. */
typedef struct pb_manifest_item_s {
	uint32_t kind;
	const char *id;
	const char *path;
	uint64_t seq;
	uint64_t size;
	int64_t mtime;
	uint8_t hash[32]; /* content hash of the item's plaintext */
	size_t nchunks;
	const uint8_t (*chunks)[PB_STORE_NAME_LEN];
	/* A slice of a stream (a chat's messages cut into chunks that hold
	 * many): the item is the size bytes at off in its chunks joined, not
	 * the chunks whole. */
	bool slice;
	uint32_t off;
} pb_manifest_item_t;

/* Receives each decoded item; return non-zero to stop (that value is
 * returned by the decoder). */
typedef int (*pb_manifest_item_cb)(void *arg, const pb_manifest_item_t *item);

/* Starts a manifest; sealed manifest chunks go to emit as they fill. */
PB_EXTERN PB_WUR int pb_manifest_writer_new(const pb_backup_keys_t *keys, pb_manifest_chunk_cb emit,
					    void *arg, pb_manifest_writer_t **out);
/* Adds one item (copied). */
PB_EXTERN PB_WUR int pb_manifest_writer_add(pb_manifest_writer_t *w, const pb_manifest_item_t *item);
/* Seals the last chunk and the root. *root (malloc'd) is the snapshot blob
 * for pb_store_snapshot_put(); *refs (malloc'd, deduplicated) the names to
 * pass with it: every data and manifest chunk. */
PB_EXTERN PB_WUR int pb_manifest_writer_finish(pb_manifest_writer_t *w, int64_t time, uint8_t **root,
					       size_t *root_len, uint8_t (**refs)[PB_STORE_NAME_LEN],
					       size_t *nrefs);
/* Frees the writer (wipes its buffers). Accepts NULL. */
PB_EXTERN void pb_manifest_writer_free(pb_manifest_writer_t *w);

/* Decrypts a root blob; returns its time, item count and the manifest chunk
 * names (malloc'd, caller frees). */
PB_EXTERN PB_WUR int pb_manifest_root_open(const pb_backup_keys_t *keys, const uint8_t *blob,
					   size_t len, int64_t *time, uint64_t *nitems,
					   uint8_t (**chunks)[PB_STORE_NAME_LEN], size_t *nchunks);
/* Decrypts one manifest chunk and calls cb for each item in it. */
PB_EXTERN PB_WUR int pb_manifest_chunk_open(const pb_backup_keys_t *keys,
					    const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct,
					    size_t ct_len, pb_manifest_item_cb cb, void *arg);
/* Decodes a manifest chunk's plaintext (hostile input: every length checked
 * and capped) and calls cb for each item. */
PB_EXTERN PB_WUR int pb_manifest_parse(const uint8_t *buf, size_t len, pb_manifest_item_cb cb, void *arg);
/* Decodes a root's plaintext; the names are borrowed from buf. */
PB_EXTERN PB_WUR int pb_manifest_root_parse(const uint8_t *buf, size_t len, int64_t *time,
					    uint64_t *nitems, const uint8_t **names, size_t *nchunks);

/* ---- Phone: local backup state ------------------------------------------ */

/* Opens (creating) the phone's backup state database at path. */
PB_EXTERN PB_WUR int pb_backup_state_open(const char *path, pb_backup_state_t **out);
/* Opens it for the lookups below only (done, get, has_children): no
 * schema set-up, nothing prepared, nothing written. */
PB_EXTERN PB_WUR int pb_backup_state_open_ro(const char *path, pb_backup_state_t **out);
PB_EXTERN void pb_backup_state_close(pb_backup_state_t *st);
/* True when the item was backed up with this size, mtime and content hash
 * and every one of its chunks is confirmed committed by the host. */
PB_EXTERN bool pb_backup_state_unchanged(pb_backup_state_t *st, const char *id, uint64_t size,
					 int64_t mtime, const uint8_t hash[32]);
/* Records the item as backed up (its size, mtime, hash and chunk names). */
PB_EXTERN PB_WUR int pb_backup_state_record(pb_backup_state_t *st, const pb_manifest_item_t *item);
/* Returns the chunk names recorded for id (malloc'd); PB_ENOTFOUND. */
PB_EXTERN PB_WUR int pb_backup_state_item_chunks(pb_backup_state_t *st, const char *id,
						 uint8_t (**names)[PB_STORE_NAME_LEN], size_t *n);
/* Remembers that the host confirmed these chunks committed (one transaction). */
PB_EXTERN PB_WUR int pb_backup_state_mark_committed(pb_backup_state_t *st,
						    const uint8_t (*names)[PB_STORE_NAME_LEN], size_t n);
/* Groups the following records in one transaction (many small items). */
PB_EXTERN PB_WUR int pb_backup_state_begin(pb_backup_state_t *st);
PB_EXTERN PB_WUR int pb_backup_state_end(pb_backup_state_t *st);

/* The size, mtime and content hash recorded for id; PB_ENOTFOUND. */
PB_EXTERN PB_WUR int pb_backup_state_lookup(pb_backup_state_t *st, const char *id, uint64_t *size,
					    int64_t *mtime, uint8_t hash[32]);

/* True when the host confirmed the chunk committed. During a run that
 * began with no chunk confirmed (a first backup), always false: the
 * repository is asked instead (a lookup a chunk costs more than it saves
 * there). */
PB_EXTERN bool pb_backup_state_is_committed(pb_backup_state_t *st, const uint8_t name[PB_STORE_NAME_LEN]);

/* Backup runs: run_begin starts a new generation (and forgets the last
 * completed one); record() and touch() mark items with it; run_done, after
 * the host's receipt for the snapshot, makes it the completed one. */
PB_EXTERN PB_WUR int pb_backup_state_run_begin(pb_backup_state_t *st);
PB_EXTERN PB_WUR int pb_backup_state_run_done(pb_backup_state_t *st, uint64_t snapshot);
/* An unchanged item put in this run's snapshot: its kind, path and seq. */
PB_EXTERN PB_WUR int pb_backup_state_touch(pb_backup_state_t *st, const pb_manifest_item_t *item);
/* The last completed run's snapshot id, and selects its generation for
 * get() and has_children(); PB_ENOTFOUND when no run completed since the
 * last began. */
PB_EXTERN PB_WUR int pb_backup_state_done(pb_backup_state_t *st, uint64_t *snapshot);
/* The item id as the selected generation put it in its snapshot; *id_out,
 * *path_out and *names are malloc'd and referenced by *m. PB_ENOTFOUND. */
PB_EXTERN PB_WUR int pb_backup_state_get(pb_backup_state_t *st, const char *id, pb_manifest_item_t *m,
					 char **id_out, char **path_out, uint8_t (**names)[PB_STORE_NAME_LEN]);
/* True when the selected generation has an item under id ("id/..."). */
PB_EXTERN bool pb_backup_state_has_children(pb_backup_state_t *st, const char *id);
/* The id (malloc'd) of the item before position seq of the file at path
 * in the selected generation; NULL and PB_ENOTFOUND when none. */
PB_EXTERN PB_WUR int pb_backup_state_before(pb_backup_state_t *st, const char *path, uint64_t seq, char **id);

/* The newest snapshot this phone completed with the host whose static key
 * is host_pk (0 and PB_ENOTFOUND when none). set_host_done only moves it
 * forward; neither a new run nor reset() forgets it, so a host that drops
 * its newest snapshots is caught (docs/STORAGE.md, rollback). */
PB_EXTERN PB_WUR int pb_backup_state_host_done(pb_backup_state_t *st, const uint8_t host_pk[32],
					       uint64_t *snapshot);
PB_EXTERN PB_WUR int pb_backup_state_set_host_done(pb_backup_state_t *st, const uint8_t host_pk[32],
						   uint64_t snapshot);
/* Forgets every item and committed chunk (the host lost chunks it had
 * confirmed), keeping what set_host_done recorded. */
PB_EXTERN PB_WUR int pb_backup_state_reset(pb_backup_state_t *st);
/* Calls cb for the items of the device file path as the newest backup run
 * that saw the file recorded them (borrowed for the call only). */
PB_EXTERN PB_WUR int pb_backup_state_path_items(pb_backup_state_t *st, const char *path,
						pb_manifest_item_cb cb, void *arg);

#ifdef __cplusplus
}
#endif
#endif
