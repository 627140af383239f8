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
/* pb__seal in two steps, for sealing on other threads: the name (on the
 * caller's thread, which needs it at once), then compression and
 * encryption under that name with zctx (a ZSTD_CCtx of the calling
 * thread, reused from chunk to chunk; NULL: a fresh one). */
void pb__chunk_name(const uint8_t name_key[32], const uint8_t *plain, size_t len, uint8_t name[PB_STORE_NAME_LEN]);
PB_WUR int pb__seal_named(void *zctx, const uint8_t enc[32], const uint8_t name[PB_STORE_NAME_LEN],
			  const uint8_t *plain, size_t len, uint8_t *ct, size_t *ct_len);
/* Opens what pb__seal() made; the counterpart of pb_chunk_open(). */
PB_WUR int pb__open(const uint8_t enc[32], const uint8_t name_key[32],
		    const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t ct_len,
		    uint8_t *plain, size_t cap, size_t *plain_len);

#endif
