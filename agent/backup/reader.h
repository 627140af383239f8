/* A file's chunks read, cut and named on a thread of their own, beside
 * the scan: the scan thread hands a file over (pb__reader_add), and the
 * next one ahead of time, takes its chunks back in order, a buffer of
 * them at a time (pb__reader_next), named already, and gives each buffer
 * on to the sink without copying it (pb__sink_add_piece), which gives it
 * back (pb__reader_give) once its chunks are sent. The cuts are pb_cdc_cut's
 * and the names pb__chunk_name's: the same chunks as cut and named on the
 * scan thread. Private to agent/backup/. */
#ifndef PB_AGENT_BACKUP_READER_H
#define PB_AGENT_BACKUP_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerback/store.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/internal.h"

typedef struct pb__reader_s pb__reader_t;

/* Chunks of a file one after the other from buf, with their names. buf
 * is one of the reader's buffers (PB__CDC_FILE_BUF bytes): whoever holds
 * it gives it back with pb__reader_give. */
typedef struct pb__piece_s {
	uint8_t *buf;
	size_t n;
	size_t len[PB__CDC_CUTS_MAX];
	name_t names[PB__CDC_CUTS_MAX];
} pb__piece_t;

/* Starts the reader's thread; cdc and keys (the name key) stay the
 * caller's and must outlive it. PB_EUNSUPPORTED when no thread starts. */
PB_WUR int pb__reader_new(const pb_cdc_t *cdc, const pb_backup_keys_t *keys, pb__reader_t **out);

/* Queues the open file fd (the caller's, open until pb__reader_done of
 * it) to be cut on the reader's thread after the files queued before it;
 * whole: one chunk of the file's size, as pb__read_fd reads it (a file of
 * at most PB_CDC_WHOLE_MAX). Two files at most: the one whose pieces the
 * caller takes and one read ahead (PB_ESTATE beyond). */
PB_WUR int pb__reader_add(pb__reader_t *r, int fd, bool whole);

/* The first queued file's next buffer of chunks, waiting for it: *p is
 * valid until the next call, its buf the caller's. *p NULL at the file's
 * end (with the reading's error, if any). */
PB_WUR int pb__reader_next(pb__reader_t *r, pb__piece_t **p, int (*idle)(void *arg), void *arg);
/* (idle, when not NULL, is called while there is none yet: > 0 when it
 * did something, 0 when not (the caller then waits a little), < 0 an
 * error, returned.) */

/* Done with the first queued file, all taken or not (the thread stops
 * cutting it; its pieces not taken are dropped): the next one is first
 * from here on. */
void pb__reader_done(pb__reader_t *r);

/* Gives a piece's buffer back (any thread); arg is the reader. */
void pb__reader_give(void *arg, uint8_t *buf);

/* The walk's files are all read: the buffers back are freed, and those
 * still lent once given back (the manifest's end needs the memory).
 * Accepts NULL. */
void pb__reader_trim(pb__reader_t *r);

/* Stops the thread and frees the buffers; every buffer must be back.
 * Accepts NULL. */
void pb__reader_free(pb__reader_t *r);

#endif
