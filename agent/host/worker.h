/* The host's storage worker: store work (SQLite transactions, fsync, pack
 * writes) runs on libuv's thread pool, one job at a time in the order jobs
 * were submitted, so that the event loop keeps serving handshakes, pings
 * and other phones meanwhile. Private to the library.
 *
 * One job at a time keeps the store's rule that one thread at a time drives
 * it and its namespace handles (peerback/store.h): libuv's queue hands each
 * job over with the ordering a mutex gives. */
#ifndef PB_AGENT_HOST_WORKER_H
#define PB_AGENT_HOST_WORKER_H

#include <stdbool.h>

#include <uv.h>

typedef struct pb_host_worker_s pb_host_worker_t;
typedef struct pb_host_job_s pb_host_job_t;

struct pb_host_job_s {
	uv_work_t req;
	pb_host_job_t *next;
	pb_host_worker_t *worker;
	/* Runs on a thread of the pool; touches nothing the loop uses. */
	void (*run)(pb_host_job_t *job);
	/* Runs on the loop after run, or without run (canceled) when the
	 * worker is freed first; may submit further jobs. */
	void (*done)(pb_host_job_t *job, bool canceled);
};

/* Creates a worker on loop. *out is owned by the caller. */
__attribute__((warn_unused_result)) int pb__host_worker_new(uv_loop_t *loop, pb_host_worker_t **out);

/* Queues job (owned by the caller until its done callback) behind the jobs
 * already submitted. run and done must be set. */
void pb__host_worker_submit(pb_host_worker_t *w, pb_host_job_t *job);

/* From now on, calls idle(arg) on the loop each time the last job waiting
 * is done (never from this call): the host's stop waits for it before the
 * store closes. Jobs submitted meanwhile still run. */
void pb__host_worker_drain(pb_host_worker_t *w, void (*idle)(void *arg), void *arg);

/* True when no job runs or waits. */
bool pb__host_worker_idle(const pb_host_worker_t *w);

/* Waits (running the loop) for the job under way, cancels the waiting ones
 * (their done is called with canceled true) and frees the worker. Accepts
 * NULL. The store may be closed afterwards. */
void pb__host_worker_free(pb_host_worker_t *w);

#endif
