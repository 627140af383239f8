/* Internal interface of the phone side of backup (agent/backup/). */
#ifndef PB_BACKUP_INTERNAL_H
#define PB_BACKUP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "peerback/store.h"

/* Seals plain like pb_chunk_seal() with explicit keys: enc encrypts, name_key
 * names. Used for data chunks (chunk key) and manifests (manifest key). */
PB_WUR int pb__seal(const uint8_t enc[32], const uint8_t name_key[32], const uint8_t *plain,
		    size_t len, uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t *ct_len);
/* Opens what pb__seal() made; the counterpart of pb_chunk_open(). */
PB_WUR int pb__open(const uint8_t enc[32], const uint8_t name_key[32],
		    const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t ct_len,
		    uint8_t *plain, size_t cap, size_t *plain_len);

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
/* Stores part number part of the file's records for this run. */
PB_WUR int pb__state_file_part_put(pb_backup_state_t *st, const char *path, uint32_t part, const uint8_t *data,
				   size_t len);
/* The file is backed up whole by this run (its chunks committed): its row
 * and this run's parts replace any older ones. */
PB_WUR int pb__state_file_done(pb_backup_state_t *st, const char *path, const pb__stamp_t *stamp, uint64_t items,
			       uint64_t bytes);
/* This run skipped the file whole, its records as they were. */
PB_WUR int pb__state_file_touch(pb_backup_state_t *st, const char *path);

/* Manifest records (agent/backup/manifest.c): an item encoded once, as the
 * manifest holds it plus where a manifest chunk may end after it, so that
 * a file's items are replayed into later snapshots without being encoded,
 * looked up or hashed again. */
/* The largest record of an item of nchunks chunks. */
size_t pb__manifest_rec_max(size_t nchunks);
PB_WUR int pb__manifest_rec_encode(const pb_manifest_writer_t *w, const pb_manifest_item_t *it, uint8_t *out,
				   size_t cap, size_t *len);
PB_WUR int pb__manifest_writer_add_rec(pb_manifest_writer_t *w, const uint8_t *rec, size_t len);
/* The length of the first record of buf, checked against len. */
PB_WUR int pb__manifest_rec_next(const uint8_t *buf, size_t len, size_t *reclen);

#endif
