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
/* pb__open with a decompression context kept by the caller (NULL: one for
 * the call), for threads that open many chunks. */
struct ZSTD_DCtx_s;
PB_WUR int pb__open_dctx(const uint8_t enc[32], const uint8_t name_key[32], const uint8_t name[PB_STORE_NAME_LEN],
			 const uint8_t *ct, size_t ct_len, uint8_t *plain, size_t cap, size_t *plain_len,
			 struct ZSTD_DCtx_s *dctx);

#endif
