/* Internal interface of the phone side of backup (agent/backup/). */
#ifndef PB_BACKUP_INTERNAL_H
#define PB_BACKUP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerback/store.h"

/* Seals plain like pb_chunk_seal() with explicit keys: enc encrypts, name_key
 * names. Used for data chunks (chunk key) and manifests (manifest key). */
PB_WUR int pb__seal(const uint8_t enc[32], const uint8_t name_key[32], const uint8_t *plain,
		    size_t len, uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t *ct_len);
/* pb__seal in two steps, for sealing on other threads: the name (on the
 * caller's thread, which needs it at once), then compression and
 * encryption under that name with zctx (a ZSTD_CCtx of the calling
 * thread, reused from chunk to chunk; NULL: a fresh one). */
void pb__chunk_name(const uint8_t name_key[32], const uint8_t *plain, size_t len, uint8_t name[PB_STORE_NAME_LEN]);
/* A chunk's name (docs/STORAGE.md, "Chunk names"): below this length
 * the keyed BLAKE2b-256 of its bytes; from it on, the keyed BLAKE2b-256
 * (personalization "peerback/tree8") of its length and of the keyed
 * BLAKE2b-256 digests of its eight segments, which hash in the eight
 * lanes of a vector register at once. */
#define PB_CHUNK_TREE_MIN (64u * 1024)
/* The names of n chunks at once (k: the name key, prepared, 32-byte
 * digests, no personalization), as pb__chunk_name gives them. */
struct pb__b2k_s;
void pb__chunk_names_many(const struct pb__b2k_s *k, const uint8_t *const *data, const size_t *len,
			  uint8_t *const *out, size_t n);
/* Whether name is plain's chunk name, or (a chunk of PB_CHUNK_TREE_MIN
 * or more) the keyed BLAKE2b-256 of its bytes that named every chunk
 * before the segments (snapshots made before 2026-12-01 22:00 UTC). */
bool pb__chunk_name_ok(const uint8_t name_key[32], const uint8_t *plain, size_t len,
		       const uint8_t name[PB_STORE_NAME_LEN]);
PB_WUR int pb__seal_named(void *zctx, const uint8_t enc[32], const uint8_t name[PB_STORE_NAME_LEN],
			  const uint8_t *plain, size_t len, uint8_t *ct, size_t *ct_len);
/* The same at zstd level level instead of the default (3). Any level
 * opens alike: the chunk's format does not change. */
PB_WUR int pb__seal_named_level(void *zctx, int level, const uint8_t enc[32], const uint8_t name[PB_STORE_NAME_LEN],
				const uint8_t *plain, size_t len, uint8_t *ct, size_t *ct_len);
/* Opens what pb__seal() made; the counterpart of pb_chunk_open(). */
PB_WUR int pb__open(const uint8_t enc[32], const uint8_t name_key[32],
		    const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t ct_len,
		    uint8_t *plain, size_t cap, size_t *plain_len);
/* pb__open with a decompression context kept by the caller (NULL: one for
 * the call), for threads that open many chunks. */
struct ZSTD_DCtx_s;
PB_WUR int pb__open_dctx(const uint8_t enc[32], const uint8_t name_key[32], const uint8_t name[PB_STORE_NAME_LEN],
			 const uint8_t *ct, size_t ct_len, uint8_t *plain, size_t cap, size_t *plain_len,
			 struct ZSTD_DCtx_s *dctx);
/* pb__open_dctx into a buffer of the plaintext's size (at most max),
 * allocated once the chunk says it: *plain, which the caller frees (NULL
 * on failure). */
PB_WUR int pb__open_alloc(const uint8_t enc[32], const uint8_t name_key[32], const uint8_t name[PB_STORE_NAME_LEN],
			  const uint8_t *ct, size_t ct_len, size_t max, uint8_t **plain, size_t *plain_len,
			  struct ZSTD_DCtx_s *dctx);
/* pb__open_alloc without the check of the plaintext against its name:
 * authenticated and decompressed only. The caller checks the name itself
 * (pb__chunk_name, or several chunks' at once) before it uses a byte. */
PB_WUR int pb__open_alloc_unchecked(const uint8_t enc[32], const uint8_t name[PB_STORE_NAME_LEN],
				    const uint8_t *ct, size_t ct_len, size_t max, uint8_t **plain, size_t *plain_len,
				    struct ZSTD_DCtx_s *dctx);

/* The phone's state of files known whole (agent/backup/state.c). */
typedef struct pb__stamp_s {
	uint64_t size, ino;
	int64_t mtime_ns, ctime_ns;
} pb__stamp_t;
/* The file as last backed up whole: its stamp, the generation its records
 * are of, its item count and bytes; PB_ENOTFOUND if none. */
PB_WUR int pb__state_file_get(pb_backup_state_t *st, const char *path, pb__stamp_t *stamp, int64_t *rgen,
			      uint64_t *items, uint64_t *bytes);
/* Calls cb with each part of the file's records of generation rgen, in
 * order (a part holds whole records); a non-zero return stops and is
 * returned. */
PB_WUR int pb__state_file_parts(pb_backup_state_t *st, const char *path, int64_t rgen,
				int (*cb)(void *arg, const uint8_t *data, size_t len), void *arg);
/* Part numbers from PB__PART_DIGESTS on hold the file's message digests
 * (u64 each, agent/backup/backup.c), not records; pb__state_file_digests
 * reads them like pb__state_file_parts. */
#define PB__PART_DIGESTS 0x80000000u
PB_WUR int pb__state_file_digests(pb_backup_state_t *st, const char *path, int64_t rgen,
				  int (*cb)(void *arg, const uint8_t *data, size_t len), void *arg);
/* Stores part number part of the file's records for this run. */
PB_WUR int pb__state_file_part_put(pb_backup_state_t *st, const char *path, uint32_t part, const uint8_t *data,
				   size_t len);
/* The file is backed up whole by this run (its chunks committed): its row
 * and this run's parts replace any older ones. */
PB_WUR int pb__state_file_done(pb_backup_state_t *st, const char *path, const pb__stamp_t *stamp, uint64_t items,
			       uint64_t bytes);
/* This run skipped the file whole, its records as they were. */
PB_WUR int pb__state_file_touch(pb_backup_state_t *st, const char *path);
/* After a complete backup of every kind: files this run did not see are
 * gone from the device; their rows and records go too. */
PB_WUR int pb__state_files_prune(pb_backup_state_t *st);

/* An item as last recorded, in one lookup: size, mtime, content hash and
 * its chunk names (into *names, grown to *cap bytes; *n of them). */
PB_WUR int pb__state_item_get(pb_backup_state_t *st, const char *id, uint64_t *size, int64_t *mtime,
			      uint8_t hash[32], uint8_t **names, size_t *cap, size_t *n);

/* pb_cdc_file with a buffer of PB__CDC_FILE_BUF bytes the caller keeps
 * (agent/backup/cdc.c): chunks are cut from an offset into it, and what is
 * left moves to its front only when it is full. */
#define PB__CDC_FILE_BUF (2 * PB_CDC_MAX)
PB_WUR int pb__cdc_file_buf(const pb_cdc_t *cdc, int fd, uint8_t *buf, pb_cdc_chunk_cb cb, void *arg);
/* The same giving the callback every chunk cut from the buffer before its
 * bytes move (up to PB__CDC_CUTS_MAX at once, a few MiB): so that they
 * are hashed together (pb__b2k_hash_many). */
#define PB__CDC_CUTS_MAX (PB__CDC_FILE_BUF / PB_CDC_MIN + 1)
typedef int (*pb__cdc_chunks_cb)(void *arg, const uint8_t *const *data, const size_t *len, size_t n);
PB_WUR int pb__cdc_file_many(const pb_cdc_t *cdc, int fd, uint8_t *buf, pb__cdc_chunks_cb cb, void *arg);

/* pb_cdc_cut on bytes that come a block at a time (agent/backup/cdc.c):
 * buf is the chunk's start and len its bytes so far. Returns the cut
 * pb_cdc_cut would (at is then reset for the next chunk), or 0 when more
 * bytes are needed: at keeps where the scan stopped, and the next call,
 * with the same buf and more bytes, goes on from there. A zeroed at
 * starts a chunk. */
typedef struct pb__cdc_at_s {
	size_t pos;
	uint64_t fp;
} pb__cdc_at_t;
size_t pb__cdc_cut_more(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof, pb__cdc_at_t *at);

/* Manifest records (agent/backup/manifest.c): an item encoded once, as the
 * manifest holds it plus where a manifest chunk may end after it, so that
 * a file's items are replayed into later snapshots without being encoded,
 * looked up or hashed again. */
/* The largest record of an item of nchunks chunks. */
size_t pb__manifest_rec_max(size_t nchunks);
PB_WUR int pb__manifest_rec_encode(const pb_manifest_writer_t *w, const pb_manifest_item_t *it, uint8_t *out,
				   size_t cap, size_t *len);
/* The same with the key of it->id (pb__manifest_id_key) made by the caller,
 * e.g. on the thread that parsed the item. */
PB_WUR int pb__manifest_rec_encode_key(const pb_manifest_writer_t *w, const pb_manifest_item_t *it, uint64_t key,
				       uint8_t *out, size_t cap, size_t *len);
PB_WUR int pb__manifest_writer_add_rec(pb_manifest_writer_t *w, const uint8_t *rec, size_t len);
/* The length of the first record of buf, checked against len. */
PB_WUR int pb__manifest_rec_next(const uint8_t *buf, size_t len, size_t *reclen);
/* The seq and size of the item of the record at rec, checked as above. */
PB_WUR int pb__manifest_rec_info(const uint8_t *rec, size_t len, uint64_t *seq, uint64_t *size);

/* Spans (agent/backup/manifest.c): the manifest chunks a file's items
 * filled whole, recorded by their names and their items' id keys so that
 * a later snapshot lists them again without their records. Entries share
 * one sequence with records (pb__manifest_elem_next tells the length of
 * either). */
/* Records encoded from now on are a large chat's: a manifest chunk ends
 * after one at its content-defined points only past 16 KiB, not 4 (the
 * record says so: replayed, it cuts the same). */
void pb__manifest_writer_large(pb_manifest_writer_t *w, bool large);
/* Manifest chunks emitted so far (named and handed over: finished ones
 * wait to be named several at once until pb__manifest_writer_flush), and
 * items in the one being filled. */
size_t pb__manifest_writer_nchunks(const pb_manifest_writer_t *w);
uint32_t pb__manifest_writer_pending(const pb_manifest_writer_t *w);
/* Items added so far. */
uint64_t pb__manifest_writer_items(const pb_manifest_writer_t *w);
/* Whether the writer can record spans (it keeps id keys: indexed). */
bool pb__manifest_writer_spans(const pb_manifest_writer_t *w);
/* Items of emitted manifest chunk k. */
uint32_t pb__manifest_writer_chunk_items(const pb_manifest_writer_t *w, size_t k);
/* The span entry of emitted chunk k into *buf (grown, *cap), *len bytes. */
PB_WUR int pb__manifest_span_chunk(const pb_manifest_writer_t *w, size_t k, uint8_t **buf, size_t *cap,
				   size_t *len);
/* The next entry of the names referenced since chunk after was emitted,
 * from *from on (moved past them); *len 0 when there are no more. */
PB_WUR int pb__manifest_span_refs(const pb_manifest_writer_t *w, size_t after, size_t *from, uint8_t **buf,
				  size_t *cap, size_t *len);
bool pb__manifest_is_span(const uint8_t *e);
PB_WUR int pb__manifest_elem_next(const uint8_t *buf, size_t len, size_t *n);
/* A chunk entry's manifest chunk, its items, their first and last seq and
 * their bytes; PB_EINVAL for a refs entry. */
PB_WUR int pb__manifest_span_info(const uint8_t *e, size_t len, const uint8_t **name, uint64_t *items,
				  uint64_t *first, uint64_t *last, uint64_t *bytes);
/* Lists a span entry's chunk (after the one being filled, which it ends)
 * or adds its names to the snapshot's references. */
PB_WUR int pb__manifest_writer_add_span(pb_manifest_writer_t *w, const uint8_t *e, size_t len);
/* Names the finished chunks waiting to be named together and hands them
 * over, in order (finish and add_span do this themselves). */
PB_WUR int pb__manifest_writer_flush(pb_manifest_writer_t *w);

/* The id index (manifest version 2, agent/backup/manifest.c): every id's
 * key (keyed BLAKE2b of the id, 64 bits) with the number of the manifest
 * chunk that lists it, sorted by key and sealed in index chunks; the root
 * lists each index chunk's first key and name. One item is then the root,
 * one index chunk, one manifest chunk: no walk. */
uint64_t pb__manifest_id_key(const pb_backup_keys_t *keys, const char *id, size_t len);
/* Manifest and index chunks for which known(arg, name) is true are named
 * but neither sealed nor emitted: the repository holds them. */
void pb__manifest_writer_known(pb_manifest_writer_t *w, bool (*known)(void *arg, const uint8_t *name), void *arg);
/* Hands each manifest and index chunk to plain, named but not sealed, with
 * the zstd level to seal it at under the manifest key; plain is only valid
 * for the call. A non-zero return stops the writer as emit's does. */
typedef int (*pb__manifest_plain_cb)(void *arg, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *plain,
				     size_t len, int level);
void pb__manifest_writer_plain(pb_manifest_writer_t *w, pb__manifest_plain_cb plain, void *arg);
/* The writer makes a version 2 root with an id index. */
void pb__manifest_writer_indexed(pb_manifest_writer_t *w);
/* Tests only: backups write version 1 roots, as before the index, to show
 * that such snapshots still restore. */
extern bool pb__manifest_write_v1;
/* Entries a backup writes in one index chunk (512; readers take 1 to 4096).
 * Tests set it to write index chunks as backups did before (4096). */
extern size_t pb__manifest_idx_per_chunk;
/* pb_manifest_root_open that also hands over the root's index (malloc'd
 * entries; NULL and 0 entries for a version 1 root); index may be NULL. */
PB_WUR int pb__manifest_root_open_index(const pb_backup_keys_t *keys, const uint8_t *blob, size_t len,
					int64_t *time, uint64_t *nitems, uint8_t (**chunks)[PB_STORE_NAME_LEN],
					size_t *nchunks, uint8_t **index, size_t *nindex);
/* The first index chunk that may hold key; its entries' first keys and
 * names. */
size_t pb__manifest_index_pick(const uint8_t *index, size_t nindex, uint64_t key);
uint64_t pb__manifest_index_first(const uint8_t *index, size_t i);
const uint8_t *pb__manifest_index_name(const uint8_t *index, size_t i);
/* Opens an index chunk: the manifest chunk numbers listed for key (at most
 * cap of them). dctx: a decompression context of the caller's (NULL: one
 * for the call). */
PB_WUR int pb__manifest_index_find(const pb_backup_keys_t *keys, const uint8_t name[PB_STORE_NAME_LEN],
				   const uint8_t *ct, size_t ct_len, uint64_t key, uint32_t *mchunks, size_t cap,
				   size_t *n, struct ZSTD_DCtx_s *dctx);
/* pb_manifest_chunk_open with the caller's decompression context. */
PB_WUR int pb__manifest_chunk_open_dctx(const pb_backup_keys_t *keys, const uint8_t name[PB_STORE_NAME_LEN],
					const uint8_t *ct, size_t ct_len, pb_manifest_item_cb cb, void *arg,
					struct ZSTD_DCtx_s *dctx);

#endif
