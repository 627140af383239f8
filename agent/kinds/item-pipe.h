/* Items made on a thread of their own and taken in order on the caller's
 * (agent/kinds/item-pipe.c): a large chat is parsed and written in
 * canonical form on one core while the caller backs up (names, seals,
 * sends) the messages before on the other. */
#ifndef PB_KINDS_ITEM_PIPE_H
#define PB_KINDS_ITEM_PIPE_H

#include <stddef.h>

#include "peerback/kinds.h"
#include "agent/kinds/internal.h"

typedef struct pb__ipipe_s pb__ipipe_t;

/* Makes the items: gives each to pb__ipipe_put, in order. */
typedef int (*pb__ipipe_make_fn)(void *arg, pb__ipipe_t *p);

/* Runs make(arg, p) on a new thread; the items it puts are handed to
 * cb(cb_arg, item) on this thread, in the order put, each once. An error
 * of cb stops make (its next put fails) and is returned; else make's own
 * error, after every item it put before it has gone to cb. The items'
 * bytes and ids are copied into batches of about batch bytes (0: the
 * default, 256 KiB): memory holds at most four of them. path, file and
 * after are passed as they are, so they must outlive the run. */
PB_WUR int pb__ipipe_run(pb__ipipe_make_fn make, void *arg, pb_item_cb cb, void *cb_arg, size_t batch);
/* The same, and the items put unhashed are hashed and keyed with h (h->many
 * and h->keys_many a batch at a time when set, else h->fn and h->key an
 * item at a time), a batch at a time on a thread of the pipe's own between
 * make's and this one (on make's, before the batch is handed over, if that
 * thread cannot be started). h is called from one thread at a time. */
PB_WUR int pb__ipipe_run_hashed(pb__ipipe_make_fn make, void *arg, pb_item_cb cb, void *cb_arg, size_t batch,
				const pb__item_hasher_t *h);

/* From make: queues one item (copied), the it of a pb__item_x_t (its hash
 * goes with it), and cb receives the it of a pb__item_x_t. Nonzero when
 * the taker stopped: make should return it. */
PB_WUR int pb__ipipe_put(pb__ipipe_t *p, const pb_item_t *it);

/* The same as a pb_item_cb (arg: the pipe). */
int pb__ipipe_put_cb(void *arg, const pb_item_t *it);

#endif
