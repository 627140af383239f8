/* Internal interface of the host store (agent/store/): the pack record
 * format, shared by the store, its verifier and the fuzz target, and the
 * test hook the crash tests use to stop the process at chosen points. */
#ifndef PB_STORE_INTERNAL_H
#define PB_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "peerback/store.h"

/* A pack file starts with this 8-byte header, then holds records:
 *   "PBR2" | u32le ct_len | name[32] | ct[ct_len] | XXH3-128(head | ct) | 0[16]
 * or, written by older versions and still read and verified,
 *   "PBR1" | u32le ct_len | name[32] | ct[ct_len] | BLAKE2b-256(ct)
 * (pack.c; docs/STORAGE.md "Pack format"). The 32-byte tail is the chunk
 * row's hash in the index. */
#define PB__PACK_HDR "PBPACK01"
#define PB__PACK_HDR_LEN 8
#define PB__REC_MAGIC "PBR2"
#define PB__REC_MAGIC_V1 "PBR1"
#define PB__REC_HEAD_LEN (4 + 4 + PB_STORE_NAME_LEN)
#define PB__REC_TAIL_LEN 32
#define PB__REC_LEN(ct_len) (PB__REC_HEAD_LEN + (uint64_t)(ct_len) + PB__REC_TAIL_LEN)

typedef struct pb__pack_rec_s {
	const uint8_t *name; /* borrowed from the parsed buffer */
	const uint8_t *ct;
	size_t ct_len;
	const uint8_t *hash;
	size_t rec_len; /* bytes the whole record occupies */
} pb__pack_rec_t;

/* Writes a record head for a ciphertext of ct_len bytes into out. */
void pb__pack_rec_head(uint8_t out[PB__REC_HEAD_LEN], const uint8_t name[PB_STORE_NAME_LEN],
		       size_t ct_len);
/* The version of the records pb__pack_rec_head writes: 2; tests set 1 to
 * write a store as older versions did. */
extern int pb__pack_rec_version;

/* Computes the tail (checksum) of the record whose head is head, in the
 * version the head's magic names. */
void pb__pack_rec_tail(uint8_t out[PB__REC_TAIL_LEN], const uint8_t head[PB__REC_HEAD_LEN], const uint8_t *ct,
		       size_t ct_len);
/* Reads the ciphertext length from a record head; PB_EMALFORMED for a bad
 * magic, PB_ETOOBIG over PB_STORE_CT_MAX, PB_ETRUNCATED if len is short. */
PB_WUR int pb__pack_rec_head_parse(const uint8_t *buf, size_t len, size_t *ct_len);
/* Parses the record at the start of buf and checks its hash: PB_ETRUNCATED
 * when buf ends inside it, PB_ESTORE_HASH when the ciphertext does not match
 * the stored tail. */
PB_WUR int pb__pack_rec_parse(const uint8_t *buf, size_t len, pb__pack_rec_t *rec);

/* Called at named points of the write paths when set (tests only):
 * "put-torn" (a record written without its hash), "put", "pack-synced", "index-committed", "snapshot-checked",
 * "snapshot-committed", "gc-index-committed", "gc-repack-synced",
 * "gc-unlink". */
extern void (*pb__store_test_hook)(const char *point);

/* When set (tests only), asked before each pack "write" and "fsync", and
 * before the commit of a batch's "index" rows and of a "snapshot"; a
 * non-zero errno it returns is taken as that operation's failure. */
extern int (*pb__store_test_fail)(const char *point);

/* Statements the store has prepared so far (tests read it: recording a
 * snapshot prepares the same few statements for any number of references). */
extern unsigned long pb__store_prepared;

#endif
