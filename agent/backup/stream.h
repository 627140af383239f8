/* A chat's messages cut as one stream (agent/backup/stream.c). */
#ifndef PB_BACKUP_STREAM_H
#define PB_BACKUP_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerback.h"

/* Stream chunks: smaller than a file's, so that one changed message
 * re-sends little: about 25 messages each, so that with one message in a
 * hundred edited most chunks (and the manifest records of the messages
 * in them) stay as they were; some 35,000 for a 352 MB chat. */
#define PB_STREAM_MIN (2u * 1024)
#define PB_STREAM_AVG (8u * 1024)
#define PB_STREAM_MAX (32u * 1024)
/* A large chat's stream (its file at least pb__stream_large_min bytes, 4
 * MiB by default: the million-message store's chats, none of the standard
 * dataset's) is cut four times coarser: its one changed message re-sends a
 * chunk of about 32 KiB (far under the 1 MB it may), and a first backup
 * makes a quarter of the chunks, each of which costs a zstd context's
 * tables, an offer, a put, the host's index row and a commit's row. The
 * largest stays within the sink's batches (64 KiB). */
#define PB_STREAM_L_MIN (8u * 1024)
#define PB_STREAM_L_AVG (32u * 1024)
#define PB_STREAM_L_MAX (64u * 1024)
extern uint64_t pb__stream_large_min;
/* zstd's level for them: fast, literals left as they are. A chunk of a few
 * KiB costs zstd more in building its tables than in matching, and the
 * million-message store makes 48,000 of them on the scan thread: level 3
 * took about 0.25 s more of it there for 7% fewer bytes stored. */
#define PB_STREAM_ZLEVEL (-1)

/* Tests only: chat messages are backed up one chunk each, as before
 * streams, to make snapshots in that format. */
extern bool pb__stream_off;

/* Cuts like pb_cdc_cut with the stream's sizes (agent/backup/cdc.c), or a
 * large chat's. */
size_t pb__cdc_cut_stream(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof);
size_t pb__cdc_cut_stream_large(const pb_cdc_t *cdc, const uint8_t *buf, size_t len, bool eof);

/* Names (and sends, when new) n chunks of the stream, in order: data[k]
 * (len[k] bytes) names into name[k]. They come several at a time, so
 * that they can be named together (pb__b2k_hash_many): at most
 * PB_STREAM_CUTS_MAX. */
#define PB_STREAM_CUTS_MAX 16
typedef int (*pb__stream_chunk_cb)(void *arg, const uint8_t *const *data, const size_t *len, size_t n,
				   uint8_t *const *name);
/* Receives each message, a slice, in order, once its bytes are cut, with
 * the key of its id given to pb__stream_add. */
typedef int (*pb__stream_rec_cb)(void *arg, const pb_manifest_item_t *m, uint64_t key);

struct pb__schunk {
	uint8_t name[PB_STORE_NAME_LEN];
	uint64_t start, end; /* its bytes in the stream */
};

struct pb__smsg {
	uint64_t off, len, seq;
	uint32_t kind;
	size_t id; /* in ids */
	uint64_t key; /* of the id, pb__manifest_id_key */
	uint8_t hash[32];
};

typedef struct pb__stream_s {
	const pb_cdc_t *cdc;
	pb__stream_chunk_cb chunk;
	pb__stream_rec_cb rec;
	void *arg;
	char *path;         /* the file being streamed, NULL when none */
	bool large, next_large; /* its chunks a large chat's; the next file's */
	uint8_t *buf;       /* buf[pos..len) not cut yet; buf[0] is at base */
	size_t len, pos, cap;
	uint64_t base;
	struct pb__schunk *ch; /* chunks cut that a waiting message needs */
	size_t nch, cap_ch;
	struct pb__smsg *msg;  /* messages waiting for their last byte to be cut */
	size_t nmsg, head, cap_msg;
	char *ids;
	size_t ids_len, ids_cap;
	uint8_t *names;
	size_t cap_names;
} pb__stream_t;

void pb__stream_init(pb__stream_t *s, const pb_cdc_t *cdc, pb__stream_chunk_cb chunk, pb__stream_rec_cb rec,
		     void *arg);
void pb__stream_free(pb__stream_t *s);
/* The size of the next file to be streamed: a large chat's is cut coarser. */
void pb__stream_next_size(pb__stream_t *s, uint64_t size);
/* True while a file is being streamed (path NULL: any file). */
bool pb__stream_on(const pb__stream_t *s, const char *path);
/* Adds the next message (bytes in it->data) of the file at path, whose
 * keyed content hash is hash and whose id's key is key. */
PB_WUR int pb__stream_add(pb__stream_t *s, const char *path, const pb_item_t *it, const uint8_t hash[32],
			  uint64_t key);
/* Cuts the rest and hands over every message: the file is done. */
PB_WUR int pb__stream_flush(pb__stream_t *s);

#endif
