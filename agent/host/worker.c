/* The host's storage worker: one job at a time on libuv's thread pool. */
#include <stdlib.h>

#include "peerback.h"
#include "agent/host/worker.h"

struct pb_host_worker_s {
	uv_loop_t *loop;
	pb_host_job_t *head, *tail; /* waiting, in order */
	pb_host_job_t *running;
	bool stopping;
	void (*idle)(void *arg);    /* drain: told once the queue is empty */
	void *idle_arg;
};

int pb__host_worker_new(uv_loop_t *loop, pb_host_worker_t **out)
{
	pb_host_worker_t *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return PB_ENOMEM;
	w->loop = loop;
	*out = w;
	return 0;
}

static void start_next(pb_host_worker_t *w);

static void job_run(uv_work_t *req)
{
	pb_host_job_t *job = req->data;

	job->run(job);
}

static void job_done(uv_work_t *req, int status)
{
	pb_host_job_t *job = req->data;
	pb_host_worker_t *w = job->worker;

	(void)status; /* jobs are never canceled through libuv */
	w->running = NULL;
	job->done(job, false);
	start_next(w);
	if (w->idle != NULL && pb__host_worker_idle(w))
		w->idle(w->idle_arg);
}

bool pb__host_worker_idle(const pb_host_worker_t *w)
{
	return w->running == NULL && w->head == NULL;
}

void pb__host_worker_drain(pb_host_worker_t *w, void (*idle)(void *arg), void *arg)
{
	w->idle = idle;
	w->idle_arg = arg;
}

static void start_next(pb_host_worker_t *w)
{
	pb_host_job_t *job;

	if (w->running != NULL || w->head == NULL || w->stopping)
		return;
	job = w->head;
	w->head = job->next;
	if (w->head == NULL)
		w->tail = NULL;
	job->next = NULL;
	w->running = job;
	job->req.data = job;
	if (uv_queue_work(w->loop, &job->req, job_run, job_done) != 0) {
		/* Only invalid arguments fail; run it here rather than lose it. */
		job_run(&job->req);
		job_done(&job->req, 0);
	}
}

void pb__host_worker_submit(pb_host_worker_t *w, pb_host_job_t *job)
{
	job->worker = w;
	job->next = NULL;
	if (w->tail != NULL)
		w->tail->next = job;
	else
		w->head = job;
	w->tail = job;
	start_next(w);
}

void pb__host_worker_free(pb_host_worker_t *w)
{
	if (w == NULL)
		return;
	w->stopping = true;
	while (w->running != NULL)
		uv_run(w->loop, UV_RUN_ONCE);
	/* A canceled job's done may submit another: it is canceled in turn. */
	while (w->head != NULL) {
		pb_host_job_t *job = w->head;

		w->head = job->next;
		if (w->head == NULL)
			w->tail = NULL;
		job->next = NULL;
		job->done(job, true);
	}
	free(w);
}
