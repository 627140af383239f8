/* Requests from an authenticated device: the storage protocol.
 *
 * Every device writes only its own namespace (account, device id). It may
 * read the namespaces of other devices of its account: a new phone restores
 * what an old one backed up, with the recovery passphrase.
 *
 * Each connection's requests are answered in the order they came. Storage
 * requests run on the host's storage worker (agent/host/worker.h), off the
 * event loop, so one phone's long commit does not hold up another phone's
 * handshake or ping; the rest (ping, instructions) are answered on the loop
 * when their turn comes.
 *
 * Memory: requests read but not answered yet are counted over all
 * connections. Once they reach the host's budget (QUEUE_BUDGET), no
 * connection is read until they are down to half of it. The request that
 * reached the budget is the last one taken (the channel delivers nothing
 * more once paused), so what waits stays under the budget plus one
 * request, however many phones write at once: backpressure, not errors.
 *
 * Replies are counted the same way, from when they are queued on a
 * channel until they are on the wire, with the most the reads handed to
 * the worker may still make (GET_BATCH_BYTES a run, one chunk at least).
 * While that is at the host's reply budget (REPLY_BUDGET), no connection's
 * reads (ChunkGet, SnapshotGet) are served; they are again, oldest
 * connection first, once it is down to half. Besides, a connection whose
 * own unread replies pass the channel's bound waits for them to drain. So
 * 16 phones restoring at once hold the reply budget plus one run, not 16
 * times the channel's bound. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peerback.h"
#include "peerback/store.h"
#include "agent/host/host.h"
#include "agent/host/worker.h"
#include "agent/util/fsutil.h"

#define OFFER_MAX 4096
/* Write requests (offers, puts, commits) in a row go to the worker as one
 * job, up to these bounds: one hand-over to the pool per run, not one per
 * chunk, and another phone's run waits at most this long. */
#define RUN_MAX 256
#define RUN_BYTES (4u << 20)
/* Bytes of requests all connections together may have waiting before none
 * is read (PEERBACK_TEST_QUEUE_BUDGET sets another, for tests): a worker
 * run is at most RUN_BYTES, so this keeps the next run ready while one is
 * under way. With 16 phones at once it held the host at 32 MiB (48 MiB with
 * 16 MiB), and one phone backs up as fast as with 16 MiB. */
#define QUEUE_BUDGET (8u << 20)
/* Bytes of replies all connections together may have waiting to be sent,
 * counting the reads under way at the most they may return, before no
 * further read is served (PEERBACK_TEST_REPLY_BUDGET sets another, for
 * tests). One restore keeps a run of reads going with up to the channel's
 * bound of replies queued. */
#define REPLY_BUDGET (8u << 20)
/* A connection with fewer replies than this waiting on its own channel is
 * served however full the budget is, a run of at most this many bytes at
 * a time: a phone that stops reading then holds up its own restore only,
 * never the others'. */
#define REPLY_FLOOR (256u << 10)
/* Devices one BackupList reports. */
#define BACKUPS_MAX 64
/* ChunkGets waiting in a row that one worker job reads together, and the
 * bytes after which it answers the ones it read and leaves the rest for
 * the next job. */
#define GET_BATCH 32
#define GET_BATCH_BYTES (4u << 20)

struct job;

/* A connection's storage state. The loop owns the queue fields; the worker
 * owns the handles and the batch, which only jobs touch. It outlives the
 * connection until its last job is done. */
struct conn_store {
	pb_host_conn_t *conn;       /* NULL once the connection closed */
	pb_host_ctx_t *ctx;
	struct pb_store_s *store;
	char account[PB_ACCOUNT_MAX + 1];
	uint8_t device_id[PB_DEVICE_ID_LEN];
	uint64_t quota;             /* the device's, as set when it connected */
	/* Loop side. */
	struct job *head, *tail;    /* requests not answered yet, in order */
	size_t busy;                /* the first busy requests are with the worker */
	bool paused;                /* not read; then in ctx->held */
	struct conn_store *held_next;
	bool reply_waiting;         /* its reads wait for the reply budget; in ctx->reply_wait */
	struct conn_store *reply_next;
	pb_link_t link;             /* in ctx->stores while the connection is open */
	size_t queued;              /* bytes of the waiting requests */
	/* Worker side. */
	pb_store_ns_t *own;         /* the device's namespace, opened at its first write */
	pb_store_ns_t *reader;      /* the namespace last read, opened read-only */
	uint8_t reader_id[PB_DEVICE_ID_LEN];
	int put_err;                /* first failed ChunkPut since the last Commit */
	uint64_t puts;
	/* Loop side: what the device sent, for its progress events. */
	uint64_t bytes_in, chunks_in;
};

/* Devices of the account a BackupList covers, found on the loop. */
struct backups {
	size_t ndev, n;
	uint8_t ids[BACKUPS_MAX][PB_DEVICE_ID_LEN];
	char names[BACKUPS_MAX][65];
	Peerback__DeviceBackups items[BACKUPS_MAX];
	Peerback__DeviceBackups *ptrs[BACKUPS_MAX];
	const char *account;
};

/* One request, or (env NULL) the closing of the connection's handles. */
struct job {
	pb_host_job_t work;         /* first: the worker's job is the job */
	struct job *next;           /* in the connection's queue */
	struct conn_store *cs;
	pb_envelope_t *env;
	size_t bytes;
	/* The answer, built by the worker and sent on the loop. */
	int rc;
	bool has_rep;
	Peerback__Reply rep;
	union {
		Peerback__ChunkWant want;
		Peerback__CommitReceipt receipt;
		Peerback__SnapshotListReply snapshots;
		Peerback__ChunkData chunk;
		Peerback__BackupListReply backups;
	} body;
	void *owned[2];             /* freed with the job */
	struct backups *list;
	size_t run;                 /* the first of a run: how many go to the worker */
	size_t nserved;             /* a run of ChunkGets: how many the worker read */
	bool here;                  /* answered on the loop (run_here) */
	size_t due;                 /* counted in ctx->replies_due until answered */
};

/* ---- namespaces (worker) ------------------------------------------------------ */

/* The caller's own namespace, for writing (created at the first write). */
static int own_ns(struct conn_store *cs, pb_store_ns_t **out)
{
	char hex[2 * PB_DEVICE_ID_LEN + 1];
	int rc;

	if (cs->store == NULL)
		return PB_EUNSUPPORTED;
	if (cs->own == NULL) {
		pb__hex(cs->device_id, PB_DEVICE_ID_LEN, hex);
		if ((rc = pb_store_ns_open(cs->store, cs->account, hex, &cs->own)) != 0)
			return rc;
		/* The store reads 0 as no limit; a quota of 0 admits nothing. */
		pb_store_ns_set_quota(cs->own, cs->quota != 0 ? cs->quota : 1);
	}
	*out = cs->own;
	return 0;
}

/* The namespace a read names: the caller's own, or another device of the
 * same account. Reads open it read-only: they never create a namespace, and
 * any number of them go along with the namespace's own writer. */
static int read_ns(struct conn_store *cs, const ProtobufCBinaryData *device, pb_store_ns_t **out)
{
	const uint8_t *id = cs->device_id;
	char hex[2 * PB_DEVICE_ID_LEN + 1];
	int rc;

	if (device->len != 0 && device->len != PB_DEVICE_ID_LEN)
		return PB_EENV_MALFORMED;
	if (device->len == PB_DEVICE_ID_LEN)
		id = device->data;
	if (cs->store == NULL)
		return PB_EUNSUPPORTED;
	if (cs->own != NULL && memcmp(id, cs->device_id, PB_DEVICE_ID_LEN) == 0) {
		*out = cs->own;
		return 0;
	}
	if (cs->reader != NULL && memcmp(cs->reader_id, id, PB_DEVICE_ID_LEN) != 0) {
		pb_store_ns_close(cs->reader);
		cs->reader = NULL;
	}
	if (cs->reader == NULL) {
		pb__hex(id, PB_DEVICE_ID_LEN, hex);
		if ((rc = pb_store_ns_open_ro(cs->store, cs->account, hex, &cs->reader)) != 0)
			return rc;
		memcpy(cs->reader_id, id, PB_DEVICE_ID_LEN);
	}
	*out = cs->reader;
	return 0;
}

/* ---- storage requests (worker) ------------------------------------------------ */

static int do_offer(struct job *j)
{
	const ProtobufCBinaryData *names = &j->env->request->chunk_offer->names;
	ProtobufCBinaryData own = { 0, NULL };
	size_t n = names->len / PB_STORE_NAME_LEN, k = 0;
	pb_store_ns_t *ns;
	bool *missing;
	uint32_t *idx;
	int rc;

	if ((rc = read_ns(j->cs, &own, &ns)) != 0)
		return rc;
	missing = j->owned[0] = calloc(n ? n : 1, sizeof(*missing));
	idx = j->owned[1] = calloc(n ? n : 1, sizeof(*idx));
	if (missing == NULL || idx == NULL)
		return PB_ENOMEM;
	rc = pb_store_missing(ns, (const uint8_t(*)[PB_STORE_NAME_LEN])names->data, n, missing);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (missing[i])
			idx[k++] = (uint32_t)i;
	peerback__chunk_want__init(&j->body.want);
	j->body.want.missing = idx;
	j->body.want.n_missing = k;
	j->rep.op_case = PEERBACK__REPLY__OP_CHUNK_WANT;
	j->rep.chunk_want = &j->body.want;
	return 0;
}

/* A put has no reply: its failure is the next Commit's answer. */
static void do_put(struct job *j)
{
	const Peerback__ChunkPut *put = j->env->request->chunk_put;
	struct conn_store *cs = j->cs;
	pb_store_ns_t *ns;
	int rc;

	if (cs->put_err != 0)
		return;
	rc = own_ns(cs, &ns);
	if (rc == 0)
		rc = pb_store_put(ns, put->name.data, put->data.data, put->data.len);
	if (rc != 0)
		cs->put_err = rc;
	else
		cs->puts++;
}

static int do_commit(struct job *j)
{
	struct conn_store *cs = j->cs;
	pb_store_ns_t *ns;
	int rc;

	if (cs->put_err != 0) {
		rc = cs->put_err;
		cs->put_err = 0;
		return rc;
	}
	/* Without a put there is nothing to make durable. */
	rc = 0;
	if (cs->own != NULL && (rc = own_ns(cs, &ns)) == 0)
		rc = pb_store_flush(ns);
	if (rc < 0)
		return rc;
	peerback__commit_receipt__init(&j->body.receipt);
	j->body.receipt.chunks = (uint64_t)rc;
	j->body.receipt.total = cs->puts;
	cs->puts = 0;
	j->rep.op_case = PEERBACK__REPLY__OP_RECEIPT;
	j->rep.receipt = &j->body.receipt;
	return 0;
}

static int do_snapshot_put(struct job *j)
{
	const Peerback__SnapshotPut *sp = j->env->request->snapshot_put;
	pb_store_ns_t *ns;
	int rc;

	if ((rc = own_ns(j->cs, &ns)) != 0)
		return rc;
	rc = pb_store_snapshot_put(ns, sp->snapshot, (const uint8_t(*)[PB_STORE_NAME_LEN])sp->refs.data,
				   sp->refs.len / PB_STORE_NAME_LEN, sp->root.data, sp->root.len);
	if (rc != 0)
		return rc;
	j->rep.op_case = PEERBACK__REPLY__OP_OK;
	j->rep.ok = true;
	return 0;
}

static int do_snapshot_list(struct job *j)
{
	Peerback__SnapshotInfo *infos, **ptrs;
	pb_store_snapinfo_t *snaps = NULL;
	pb_store_ns_t *ns;
	size_t n = 0;
	int rc;

	if ((rc = read_ns(j->cs, &j->env->request->snapshot_list->device, &ns)) != 0)
		return rc;
	if ((rc = pb_store_snapshot_list(ns, &snaps, &n)) != 0)
		return rc;
	infos = j->owned[0] = calloc(n ? n : 1, sizeof(*infos));
	ptrs = j->owned[1] = calloc(n ? n : 1, sizeof(*ptrs));
	if (infos == NULL || ptrs == NULL) {
		free(snaps);
		return PB_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		peerback__snapshot_info__init(&infos[i]);
		infos[i].snapshot = snaps[i].id;
		infos[i].time = snaps[i].time;
		infos[i].size = snaps[i].size;
		infos[i].chunks = snaps[i].nrefs;
		ptrs[i] = &infos[i];
	}
	free(snaps);
	peerback__snapshot_list_reply__init(&j->body.snapshots);
	j->body.snapshots.snapshots = ptrs;
	j->body.snapshots.n_snapshots = n;
	j->rep.op_case = PEERBACK__REPLY__OP_SNAPSHOTS;
	j->rep.snapshots = &j->body.snapshots;
	return 0;
}

static int reply_blob(struct job *j, uint8_t *data, size_t len)
{
	j->owned[0] = data;
	j->rep.op_case = PEERBACK__REPLY__OP_BLOB;
	j->rep.blob.data = data;
	j->rep.blob.len = len;
	return 0;
}

static int do_snapshot_get(struct job *j)
{
	const Peerback__SnapshotGet *sg = j->env->request->snapshot_get;
	pb_store_ns_t *ns;
	uint8_t *blob;
	size_t len;
	int rc;

	if ((rc = read_ns(j->cs, &sg->device, &ns)) != 0)
		return rc;
	if ((rc = pb_store_snapshot_get(ns, sg->snapshot, &blob, &len)) != 0)
		return rc;
	return reply_blob(j, blob, len);
}

static int do_chunk_get(struct job *j)
{
	const Peerback__ChunkGet *cg = j->env->request->chunk_get;
	pb_store_ns_t *ns;
	uint8_t *ct;
	size_t len;
	int rc;

	if ((rc = read_ns(j->cs, &cg->device, &ns)) != 0)
		return rc;
	if ((rc = pb_store_get(ns, cg->name.data, &ct, &len)) != 0)
		return rc;
	j->owned[0] = ct;
	peerback__chunk_data__init(&j->body.chunk);
	j->body.chunk.name = cg->name;
	j->body.chunk.data.data = ct;
	j->body.chunk.data.len = len;
	j->rep.op_case = PEERBACK__REPLY__OP_CHUNK;
	j->rep.chunk = &j->body.chunk;
	return 0;
}

/* The answer of one ChunkGet of a batch. */
static void chunk_answer(struct job *j, int rc, uint8_t *ct, size_t len)
{
	const Peerback__ChunkGet *cg = j->env->request->chunk_get;

	j->rc = rc;
	j->has_rep = rc == 0;
	if (rc != 0)
		return;
	j->owned[0] = ct;
	peerback__chunk_data__init(&j->body.chunk);
	j->body.chunk.name = cg->name;
	j->body.chunk.data.data = ct;
	j->body.chunk.data.len = len;
	j->rep.op_case = PEERBACK__REPLY__OP_CHUNK;
	j->rep.chunk = &j->body.chunk;
}

/* Reads the batch's chunks a run of the same device at a time, in one
 * store read each (pb_store_get_many), until the run's share of the reply
 * budget (lead->due, GET_BATCH_BYTES at most) is read (the first at
 * least): a phone that asks for many large chunks without reading holds
 * the host to the channel's bound plus about that. */
static void do_chunk_get_batch(struct job *lead)
{
	struct job *batch[GET_BATCH];
	size_t at = 0, bytes = 0, nbatch = lead->run;
	size_t cap = lead->due != 0 ? lead->due : GET_BATCH_BYTES;

	/* The run's jobs were linked before it was handed over. */
	batch[0] = lead;
	for (size_t i = 1; i < nbatch; i++)
		batch[i] = batch[i - 1]->next;

	while (at < nbatch && bytes < cap) {
		const ProtobufCBinaryData *dev = &batch[at]->env->request->chunk_get->device;
		uint8_t names[GET_BATCH][PB_STORE_NAME_LEN], *ct[GET_BATCH];
		size_t len[GET_BATCH], n = 0, served = 0;
		int rcs[GET_BATCH], rc;
		pb_store_ns_t *ns;

		while (at + n < nbatch) {
			const Peerback__ChunkGet *cg = batch[at + n]->env->request->chunk_get;

			if (cg->device.len != dev->len ||
			    (dev->len != 0 && memcmp(cg->device.data, dev->data, dev->len) != 0))
				break;
			memcpy(names[n++], cg->name.data, PB_STORE_NAME_LEN);
		}
		rc = read_ns(lead->cs, dev, &ns);
		if (rc == 0)
			rc = pb_store_get_many(ns, (const uint8_t(*)[PB_STORE_NAME_LEN])names, n, cap - bytes,
					       ct, len, rcs, &served);
		if (rc != 0)
			served = 1; /* the first fails; the others are asked again */
		for (size_t k = 0; k < served; k++) {
			chunk_answer(batch[at + k], rc != 0 ? rc : rcs[k], rc != 0 ? NULL : ct[k], len[k]);
			bytes += rc == 0 && rcs[k] == 0 ? len[k] : 0;
		}
		at += served;
		if (served < n)
			break;
	}
	lead->nserved = at;
}

/* Blob keys a phone may use: its wrapped master key, and per SIM identity
 * (a keyed hash the host cannot invert) the snapshot holding its contacts. */
static const char *blob_key(const char *key)
{
	size_t n;

	if (key == NULL || key[0] == 0)
		return "masterkey";
	n = strlen(key);
	if (n != 4 + 64 || strncmp(key, "sim-", 4) != 0)
		return NULL;
	for (size_t i = 4; i < n; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f')))
			return NULL;
	return key;
}

static int do_masterkey_put(struct job *j)
{
	const Peerback__BlobPut *bp = j->env->request->masterkey_put;
	pb_store_ns_t *ns;
	int rc;

	if ((rc = own_ns(j->cs, &ns)) != 0)
		return rc;
	if ((rc = pb_store_blob_put(ns, blob_key(bp->key), bp->value.data, bp->value.len)) != 0)
		return rc;
	j->rep.op_case = PEERBACK__REPLY__OP_OK;
	j->rep.ok = true;
	return 0;
}

static int do_masterkey_get(struct job *j)
{
	const Peerback__BlobGet *bg = j->env->request->masterkey_get;
	pb_store_ns_t *ns;
	uint8_t *val;
	size_t len;
	int rc;

	if ((rc = read_ns(j->cs, &bg->device, &ns)) != 0)
		return rc;
	if ((rc = pb_store_blob_get(ns, blob_key(bg->key), &val, &len)) != 0)
		return rc;
	return reply_blob(j, val, len);
}

/* Lists the snapshots of the devices found on the loop; a namespace that
 * cannot be listed fails the whole request: a device is never left out as
 * if it had no backup. */
static int do_backup_list(struct job *j)
{
	struct backups *b = j->list;

	for (size_t d = 0; d < b->ndev; d++) {
		ProtobufCBinaryData dev = { PB_DEVICE_ID_LEN, b->ids[d] };
		Peerback__DeviceBackups *it = &b->items[b->n];
		pb_store_snapinfo_t *snaps = NULL;
		pb_store_ns_t *ns;
		size_t n = 0;
		int rc;

		if ((rc = read_ns(j->cs, &dev, &ns)) != 0 || (rc = pb_store_snapshot_list(ns, &snaps, &n)) != 0)
			return rc;
		if (n > 0) {
			peerback__device_backups__init(it);
			it->device = dev;
			it->name = b->names[d];
			it->snapshots = n;
			for (size_t i = 0; i < n; i++)
				if (snaps[i].time > it->latest)
					it->latest = snaps[i].time;
			b->ptrs[b->n++] = it;
		}
		free(snaps);
	}
	peerback__backup_list_reply__init(&j->body.backups);
	j->body.backups.devices = b->ptrs;
	j->body.backups.n_devices = b->n;
	j->rep.op_case = PEERBACK__REPLY__OP_BACKUPS;
	j->rep.backups = &j->body.backups;
	return 0;
}

static void run_request(struct job *j)
{
	int rc;

	switch (j->env->request->op_case) {
	case PEERBACK__REQUEST__OP_CHUNK_OFFER:
		rc = do_offer(j);
		break;
	case PEERBACK__REQUEST__OP_CHUNK_PUT:
		do_put(j);
		return;
	case PEERBACK__REQUEST__OP_COMMIT:
		rc = do_commit(j);
		break;
	case PEERBACK__REQUEST__OP_SNAPSHOT_PUT:
		rc = do_snapshot_put(j);
		break;
	case PEERBACK__REQUEST__OP_SNAPSHOT_LIST:
		rc = do_snapshot_list(j);
		break;
	case PEERBACK__REQUEST__OP_SNAPSHOT_GET:
		rc = do_snapshot_get(j);
		break;
	case PEERBACK__REQUEST__OP_CHUNK_GET:
		rc = do_chunk_get(j);
		break;
	case PEERBACK__REQUEST__OP_MASTERKEY_PUT:
		rc = do_masterkey_put(j);
		break;
	case PEERBACK__REQUEST__OP_MASTERKEY_GET:
		rc = do_masterkey_get(j);
		break;
	case PEERBACK__REQUEST__OP_BACKUP_LIST:
		rc = do_backup_list(j);
		break;
	default:
		rc = PB_EUNSUPPORTED;
		break;
	}
	j->rc = rc;
	j->has_rep = rc == 0;
}

static bool is_get(const struct job *j)
{
	return j != NULL && j->env != NULL && j->rc == 0 && j->env->request->op_case == PEERBACK__REQUEST__OP_CHUNK_GET;
}

/* The first of a run of ChunkGets read together. Not is_get(): the worker
 * sets its rc to its own answer's. */
static bool get_run(const struct job *j)
{
	return j->env != NULL && j->run > 1 && j->env->request->op_case == PEERBACK__REQUEST__OP_CHUNK_GET;
}

static void job_run(pb_host_job_t *work)
{
	struct job *j = (struct job *)work;
	struct conn_store *cs = j->cs;

	if (get_run(j)) {
		do_chunk_get_batch(j);
		return;
	}
	if (j->env != NULL) {
		/* The run's jobs were linked before it was handed over; the
		 * loop only appends behind the last, whose link is not read. */
		for (size_t i = j->run;; j = j->next) {
			run_request(j);
			if (--i == 0)
				return;
		}
	}
	/* Chunks put but never committed are not acknowledged; the phone
	 * resends them. */
	pb_store_ns_close(cs->own);
	pb_store_ns_close(cs->reader);
	cs->own = cs->reader = NULL;
}

/* ---- answering (loop) -------------------------------------------------------------- */

static void send_reply(pb_host_conn_t *conn, Peerback__Reply *rep)
{
	pb_envelope_t env;

	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_REPLY;
	env.reply = rep;
	(void)pb__channel_send(&conn->ch, &env);
}

static void reply_ok(pb_host_conn_t *conn, uint64_t id)
{
	Peerback__Reply rep;

	peerback__reply__init(&rep);
	rep.id = id;
	rep.op_case = PEERBACK__REPLY__OP_OK;
	rep.ok = true;
	send_reply(conn, &rep);
}

/* Sends a Reply with the given id and error code (0: an empty success). */
static void reply_error(pb_host_conn_t *conn, uint64_t id, int code)
{
	Peerback__Reply rep;
	Peerback__Error err;

	peerback__reply__init(&rep);
	rep.id = id;
	if (code != 0) {
		peerback__error__init(&err);
		err.code = code;
		err.message = (char *)pb_strerror(code);
		rep.op_case = PEERBACK__REPLY__OP_ERROR;
		rep.error = &err;
	}
	send_reply(conn, &rep);
}

/* A phone's answer to an instruction, for the embedder. */
static void instruction_event(pb_host_conn_t *conn, const Peerback__InstructionAck *a)
{
	char dev[2 * PB_DEVICE_ID_LEN + 1];
	pb_event_t ev;

	pb__hex(conn->device.device_id, PB_DEVICE_ID_LEN, dev);
	memset(&ev, 0, sizeof(ev));
	ev.type = PB_EVENT_INSTRUCTION;
	ev.name = "instruction";
	ev.device = dev;
	ev.account = conn->device.account;
	ev.instruction = (int64_t)a->id;
	ev.error = a->ok ? 0 : (a->code != 0 ? a->code : PB_EPEER_ERROR);
	ev.message = a->message;
	pb__host_emit(conn->ctx, &ev);
}

/* What a device's answered request tells the embedder: puts add up to
 * its progress, told at each commit; a snapshot put is a committed
 * snapshot. */
static void progress_event(struct conn_store *cs, const Peerback__Request *req)
{
	char dev[2 * PB_DEVICE_ID_LEN + 1];
	pb_event_t ev;

	if (req->op_case == PEERBACK__REQUEST__OP_CHUNK_PUT) {
		cs->bytes_in += req->chunk_put->data.len;
		cs->chunks_in++;
		return;
	}
	if (req->op_case != PEERBACK__REQUEST__OP_COMMIT && req->op_case != PEERBACK__REQUEST__OP_SNAPSHOT_PUT)
		return;
	pb__hex(cs->device_id, PB_DEVICE_ID_LEN, dev);
	memset(&ev, 0, sizeof(ev));
	ev.device = dev;
	ev.account = cs->account;
	if (req->op_case == PEERBACK__REQUEST__OP_COMMIT) {
		ev.type = PB_EVENT_DEVICE_PROGRESS;
		ev.name = "device-progress";
		ev.phase = "backup";
		ev.bytes_done = cs->bytes_in;
		ev.items_done = cs->chunks_in;
	} else {
		ev.type = PB_EVENT_SNAPSHOT;
		ev.name = "snapshot";
		ev.snapshot = req->snapshot_put->snapshot;
		ev.chunks = req->snapshot_put->refs.len / PB_STORE_NAME_LEN;
	}
	pb__host_emit(cs->ctx, &ev);
}

struct ilist {
	pb_host_conn_t *conn;
	Peerback__Instruction *items;
	Peerback__Instruction **ptrs;
	uint8_t (*keys)[32];
	uint8_t (*peers)[PB_DEVICE_ID_LEN];
	char **strings;
	uint8_t **payloads;
	size_t n, cap;
};

static int add_instruction(void *arg, const pb_instruction_t *in)
{
	struct ilist *l = arg;
	Peerback__Instruction *it;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		void *a = realloc(l->items, cap * sizeof(*l->items)), *b, *c, *d, *e, *f;

		if (a == NULL)
			return PB_ENOMEM;
		l->items = a;
		b = realloc(l->ptrs, cap * sizeof(*l->ptrs));
		if (b == NULL)
			return PB_ENOMEM;
		l->ptrs = b;
		c = realloc(l->keys, cap * sizeof(*l->keys));
		if (c == NULL)
			return PB_ENOMEM;
		l->keys = c;
		d = realloc(l->peers, cap * sizeof(*l->peers));
		if (d == NULL)
			return PB_ENOMEM;
		l->peers = d;
		e = realloc(l->strings, cap * 3 * sizeof(*l->strings));
		if (e == NULL)
			return PB_ENOMEM;
		l->strings = e;
		f = realloc(l->payloads, cap * sizeof(*l->payloads));
		if (f == NULL)
			return PB_ENOMEM;
		l->payloads = f;
		l->cap = cap;
	}
	it = &l->items[l->n];
	peerback__instruction__init(it);
	it->id = (uint64_t)in->id;
	l->strings[3 * l->n] = strdup(in->op);
	l->strings[3 * l->n + 1] = strdup(in->iccid);
	l->strings[3 * l->n + 2] = NULL;
	l->payloads[l->n] = NULL;
	it->op = l->strings[3 * l->n];
	it->iccid = l->strings[3 * l->n + 1];
	if (it->op == NULL || it->iccid == NULL)
		return PB_ENOMEM;
	if (in->has_peer) {
		pb_paired_device_t peer;

		memcpy(l->peers[l->n], in->peer, PB_DEVICE_ID_LEN);
		it->peer_device.data = l->peers[l->n];
		it->peer_device.len = PB_DEVICE_ID_LEN;
		if (pb__hostdb_device_by_id(l->conn->ctx->db, in->peer, &peer) == 0) {
			memcpy(l->keys[l->n], peer.static_pk, 32);
			it->peer_static_pk.data = l->keys[l->n];
			it->peer_static_pk.len = 32;
			l->strings[3 * l->n + 2] = strdup(peer.account);
			it->peer_account = l->strings[3 * l->n + 2];
		}
	}
	if (in->has_peer && strcmp(in->op, "export-vsim") == 0) {
		/* The destination's certificate: the phone seals to the key the
		 * account service vouched for, not to the one in our table. */
		size_t len = 0;

		l->payloads[l->n] = malloc(PB_CERT_MAX);
		if (l->payloads[l->n] == NULL)
			return PB_ENOMEM;
		if (pb__hostdb_device_cert(l->conn->ctx->db, in->peer, l->payloads[l->n], PB_CERT_MAX,
					   &len) == 0) {
			it->payload.data = l->payloads[l->n];
			it->payload.len = len;
		}
	} else if (in->payload_len > 0) {
		l->payloads[l->n] = malloc(in->payload_len);
		if (l->payloads[l->n] == NULL)
			return PB_ENOMEM;
		memcpy(l->payloads[l->n], in->payload, in->payload_len);
		it->payload.data = l->payloads[l->n];
		it->payload.len = in->payload_len;
	}
	l->n++;
	return 0;
}

static int do_instruction_list(pb_host_conn_t *conn, const Peerback__Request *req)
{
	struct ilist l;
	Peerback__Reply rep;
	Peerback__InstructionListReply list;
	int rc;

	memset(&l, 0, sizeof(l));
	l.conn = conn;
	rc = pb__hostdb_instructions(conn->ctx->db, conn->device.device_id, true, add_instruction, &l);
	if (rc == 0) {
		for (size_t i = 0; i < l.n; i++)
			l.ptrs[i] = &l.items[i];
		peerback__reply__init(&rep);
		peerback__instruction_list_reply__init(&list);
		list.instructions = l.ptrs;
		list.n_instructions = l.n;
		rep.id = req->id;
		rep.op_case = PEERBACK__REPLY__OP_INSTRUCTIONS;
		rep.instructions = &list;
		send_reply(conn, &rep);
	}
	for (size_t i = 0; i < l.n; i++) {
		free(l.strings[3 * i]);
		free(l.strings[3 * i + 1]);
		free(l.strings[3 * i + 2]);
		free(l.payloads[i]);
	}
	free(l.items);
	free(l.ptrs);
	free(l.keys);
	free(l.peers);
	free(l.strings);
	free(l.payloads);
	return rc;
}

static int do_instruction_ack(pb_host_conn_t *conn, const Peerback__Request *req)
{
	const Peerback__InstructionAck *a = req->instruction_ack;
	char result[256];
	int rc;

	if (a->payload.len > PB_STORE_BLOB_MAX)
		return PB_EENV_MALFORMED;
	if (a->ok)
		snprintf(result, sizeof(result), "%s", a->message != NULL ? a->message : "");
	else
		snprintf(result, sizeof(result), "%s: %s", pb_err_name(a->code), a->message != NULL ? a->message : "");
	rc = pb__hostdb_ack(conn->ctx->db, (int64_t)a->id, conn->device.device_id, a->ok, result,
			    a->payload.len ? a->payload.data : NULL, a->payload.len);
	if (rc != 0)
		return rc;
	instruction_event(conn, a);
	reply_ok(conn, req->id);
	return 0;
}

static void pong(pb_host_conn_t *conn, const Peerback__Request *req)
{
	Peerback__Reply rep;
	Peerback__Ping ping;

	peerback__reply__init(&rep);
	peerback__ping__init(&ping);
	ping.data = req->ping->data;
	rep.id = req->id;
	rep.op_case = PEERBACK__REPLY__OP_PONG;
	rep.pong = &ping;
	send_reply(conn, &rep);
}

/* ---- the connection's queue (loop) -------------------------------------------------- */

static void job_free(struct job *j)
{
	if (j->env != NULL)
		pb__envelope_free(j->env);
	free(j->owned[0]);
	free(j->owned[1]);
	free(j->list);
	free(j);
}

/* Checks a request against its caps before it waits for the worker: an
 * over-cap request is refused without touching the store (docs/PROTOCOL.md). */
static int check_request(const Peerback__Request *req)
{
	switch (req->op_case) {
	case PEERBACK__REQUEST__OP_CHUNK_OFFER:
		if (req->chunk_offer->names.len % PB_STORE_NAME_LEN != 0)
			return PB_EENV_MALFORMED;
		return req->chunk_offer->names.len / PB_STORE_NAME_LEN > OFFER_MAX ? PB_ETOOBIG : 0;
	case PEERBACK__REQUEST__OP_CHUNK_PUT:
		if (req->chunk_put->name.len != PB_STORE_NAME_LEN || req->chunk_put->data.len == 0)
			return PB_EENV_MALFORMED;
		return req->chunk_put->data.len > PB_STORE_CT_MAX ? PB_ETOOBIG : 0;
	case PEERBACK__REQUEST__OP_SNAPSHOT_PUT:
		if (req->snapshot_put->refs.len % PB_STORE_NAME_LEN != 0 || req->snapshot_put->root.len == 0)
			return PB_EENV_MALFORMED;
		if (req->snapshot_put->refs.len / PB_STORE_NAME_LEN > PB_STORE_SNAPSHOT_REFS_MAX ||
		    req->snapshot_put->root.len > PB_STORE_SNAPSHOT_MAX)
			return PB_ETOOBIG;
		return 0;
	case PEERBACK__REQUEST__OP_CHUNK_GET:
		return req->chunk_get->name.len != PB_STORE_NAME_LEN ? PB_EENV_MALFORMED : 0;
	case PEERBACK__REQUEST__OP_MASTERKEY_PUT:
		if (blob_key(req->masterkey_put->key) == NULL || req->masterkey_put->value.len == 0)
			return PB_EENV_MALFORMED;
		return req->masterkey_put->value.len > PB_STORE_BLOB_MAX ? PB_ETOOBIG : 0;
	case PEERBACK__REQUEST__OP_MASTERKEY_GET:
		return blob_key(req->masterkey_get->key) == NULL ? PB_EENV_MALFORMED : 0;
	case PEERBACK__REQUEST__OP_INSTRUCTION_ACK:
		return req->instruction_ack->payload.len > PB_STORE_BLOB_MAX ? PB_ETOOBIG : 0;
	default:
		return 0;
	}
}

static bool storage_request(const Peerback__Request *req)
{
	switch (req->op_case) {
	case PEERBACK__REQUEST__OP_CHUNK_OFFER:
	case PEERBACK__REQUEST__OP_CHUNK_PUT:
	case PEERBACK__REQUEST__OP_COMMIT:
	case PEERBACK__REQUEST__OP_SNAPSHOT_PUT:
	case PEERBACK__REQUEST__OP_SNAPSHOT_LIST:
	case PEERBACK__REQUEST__OP_SNAPSHOT_GET:
	case PEERBACK__REQUEST__OP_CHUNK_GET:
	case PEERBACK__REQUEST__OP_MASTERKEY_PUT:
	case PEERBACK__REQUEST__OP_MASTERKEY_GET:
	case PEERBACK__REQUEST__OP_BACKUP_LIST:
		return true;
	default:
		return false;
	}
}

static void add_device(void *arg, const pb_paired_device_t *d)
{
	struct backups *b = arg;

	if (b->ndev == BACKUPS_MAX || strcmp(d->account, b->account) != 0)
		return;
	memcpy(b->ids[b->ndev], d->device_id, PB_DEVICE_ID_LEN);
	snprintf(b->names[b->ndev], sizeof(b->names[b->ndev]), "%s", d->name);
	b->ndev++;
}

/* The devices a BackupList covers come from host.db, which the loop owns. */
static int prepare_backup_list(struct job *j)
{
	struct backups *b = j->list = calloc(1, sizeof(*b));
	int rc;

	if (b == NULL)
		return PB_ENOMEM;
	b->account = j->cs->account;
	rc = pb__hostdb_list(j->cs->ctx->db, add_device, b);
	return rc < 0 ? rc : 0;
}

/* Answers a request on the loop (ping, instructions, a refusal). */
static void answer_here(struct conn_store *cs, struct job *j)
{
	pb_host_conn_t *conn = cs->conn;
	const Peerback__Request *req = j->env->request;
	int rc = j->rc;

	if (rc == 0) {
		switch (req->op_case) {
		case PEERBACK__REQUEST__OP_PING:
			pong(conn, req);
			break;
		case PEERBACK__REQUEST__OP_INSTRUCTION_LIST:
			rc = do_instruction_list(conn, req);
			break;
		case PEERBACK__REQUEST__OP_INSTRUCTION_ACK:
			rc = do_instruction_ack(conn, req);
			break;
		default:
			rc = PB_EUNSUPPORTED;
			break;
		}
	}
	/* A refused put is the next Commit's answer, like a failed one. */
	if (rc != 0 && req->op_case == PEERBACK__REQUEST__OP_CHUNK_PUT)
		cs->put_err = cs->put_err != 0 ? cs->put_err : rc;
	else if (rc != 0)
		reply_error(conn, req->id, rc);
}

/* ---- the host's budget for waiting requests (loop) ------------------------------------ */

static size_t queue_budget(pb_host_ctx_t *ctx)
{
	if (ctx->queue_budget == 0) {
		const char *e = getenv("PEERBACK_TEST_QUEUE_BUDGET");
		unsigned long long v = e != NULL ? strtoull(e, NULL, 10) : 0;

		ctx->queue_budget = v > 0 && v <= SIZE_MAX ? (size_t)v : QUEUE_BUDGET;
	}
	return ctx->queue_budget;
}

/* For tests: with var (PEERBACK_TEST_QUEUE_PEAK, PEERBACK_TEST_REPLY_PEAK)
 * set to PATH in the environment, the most bytes that ever waited is
 * written to PATH (replaced whole) each time it grows. */
static void note_peak(const char *var, size_t peak)
{
	const char *path = getenv(var);
	char tmp[4200], num[32];
	int fd, n, m;

	if (path == NULL || path[0] == 0)
		return;
	n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	m = snprintf(num, sizeof(num), "%zu\n", peak);
	if (n < 0 || (size_t)n >= sizeof(tmp) || m < 0 || (size_t)m >= sizeof(num))
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, num, (size_t)m) == m)
		(void)rename(tmp, path);
	close(fd);
}

/* Stops reading the connection, which joins the end of the held ones. */
static void hold(struct conn_store *cs)
{
	pb_host_ctx_t *ctx = cs->ctx;
	struct conn_store **pp;

	if (cs->paused || cs->conn == NULL)
		return;
	cs->paused = true;
	cs->held_next = NULL;
	for (pp = &ctx->held; *pp != NULL; pp = &(*pp)->held_next)
		;
	*pp = cs;
	pb__channel_pause(&cs->conn->ch, true);
}

static void unhold(struct conn_store *cs)
{
	struct conn_store **pp;

	for (pp = &cs->ctx->held; *pp != NULL; pp = &(*pp)->held_next)
		if (*pp == cs) {
			*pp = cs->held_next;
			break;
		}
	cs->held_next = NULL;
	cs->paused = false;
}

/* Counts a request read from cs; reading stops where a bound is reached. */
static void enqueued(struct conn_store *cs, size_t bytes)
{
	pb_host_ctx_t *ctx = cs->ctx;

	cs->queued += bytes;
	ctx->queued += bytes;
	if (ctx->queued > ctx->queued_peak) {
		ctx->queued_peak = ctx->queued;
		note_peak("PEERBACK_TEST_QUEUE_PEAK", ctx->queued_peak);
	}
	if (ctx->queued >= queue_budget(ctx))
		for (pb_link_t *l = ctx->stores; l != NULL; l = l->next)
			hold(PB_CONTAINER(l, struct conn_store, link));
}

/* Reads the held connections again, oldest first, while under the budget
 * (each may deliver requests it had read before it returns). */
static void release_held(pb_host_ctx_t *ctx)
{
	if (ctx->releasing)
		return; /* a connection being released took a request */
	ctx->releasing = true;
	while (ctx->queued < queue_budget(ctx)) {
		struct conn_store *cs = ctx->held;

		if (cs == NULL)
			break;
		unhold(cs);
		/* May close the connection (a peer's bad bytes): cs is not
		 * used after this. */
		pb__channel_pause(&cs->conn->ch, false);
	}
	ctx->releasing = false;
}

/* Releases the held connections once the waiting requests are down to
 * half the budget. Called only where the connection's queue is settled (a
 * released connection delivers requests, which may start a run). */
static void maybe_release(pb_host_ctx_t *ctx)
{
	if (ctx->held != NULL && ctx->queued < queue_budget(ctx) / 2)
		release_held(ctx);
}

static void job_done(pb_host_job_t *work, bool canceled);
static void pump(struct conn_store *cs);

/* ---- the host's budget for replies (loop) ----------------------------------------------- */

static size_t reply_budget(pb_host_ctx_t *ctx)
{
	if (ctx->reply_budget == 0) {
		const char *e = getenv("PEERBACK_TEST_REPLY_BUDGET");
		unsigned long long v = e != NULL ? strtoull(e, NULL, 10) : 0;

		ctx->reply_budget = v > 0 && v <= SIZE_MAX ? (size_t)v : REPLY_BUDGET;
	}
	return ctx->reply_budget;
}

/* A read whose reply may be large: it waits for the reply budget. */
static bool big_read(const struct job *j)
{
	if (j->env == NULL || j->rc != 0)
		return false;
	return j->env->request->op_case == PEERBACK__REQUEST__OP_CHUNK_GET ||
	       j->env->request->op_case == PEERBACK__REQUEST__OP_SNAPSHOT_GET;
}

static bool reply_room(pb_host_ctx_t *ctx, size_t below)
{
	return ctx->replies + ctx->replies_due < below;
}

/* The most the connection's next run of reads may answer (a run of
 * ChunkGets stops there, after one chunk at least; a snapshot counts the
 * same): a full run while under the budget, a short one while its own
 * channel holds less than REPLY_FLOOR; 0: it waits. */
static size_t reply_share(const struct conn_store *cs)
{
	if (cs->conn == NULL || reply_room(cs->ctx, reply_budget(cs->ctx)))
		return GET_BATCH_BYTES;
	return cs->conn->ch.queued < REPLY_FLOOR ? REPLY_FLOOR : 0;
}

/* The connection's reads wait for the budget, behind those already waiting. */
static void reply_wait(struct conn_store *cs)
{
	struct conn_store **pp;

	if (cs->reply_waiting)
		return;
	cs->reply_waiting = true;
	cs->reply_next = NULL;
	/* The host holds its answers back, not the peer: not idle. */
	if (cs->conn != NULL)
		pb__channel_busy(&cs->conn->ch, true);
	for (pp = &cs->ctx->reply_wait; *pp != NULL; pp = &(*pp)->reply_next)
		;
	*pp = cs;
}

static void reply_unwait(struct conn_store *cs)
{
	struct conn_store **pp;

	for (pp = &cs->ctx->reply_wait; *pp != NULL; pp = &(*pp)->reply_next)
		if (*pp == cs) {
			*pp = cs->reply_next;
			break;
		}
	cs->reply_next = NULL;
	cs->reply_waiting = false;
	if (cs->conn != NULL)
		pb__channel_busy(&cs->conn->ch, false);
}

/* Serves the waiting connections again, oldest first, once the replies are
 * down to half the budget (each may take the room again). */
static void reply_wake(pb_host_ctx_t *ctx)
{
	if (ctx->reply_waking)
		return; /* a connection being served sent a reply */
	ctx->reply_waking = true;
	while (ctx->reply_wait != NULL && reply_room(ctx, reply_budget(ctx) / 2)) {
		struct conn_store *cs = ctx->reply_wait;

		reply_unwait(cs);
		pump(cs);
	}
	ctx->reply_waking = false;
}

/* The channel's on_sent: some replies are on the wire. */
static void replies_sent(pb_channel_t *ch)
{
	pb_host_conn_t *conn = (pb_host_conn_t *)ch;
	struct conn_store *cs = conn->app;

	/* Its own share came back (not while closing: then cs is gone). */
	if (cs != NULL && cs->reply_waiting && !ch->closing && ch->queued < REPLY_FLOOR) {
		reply_unwait(cs);
		pump(cs);
	}
	if (conn->ctx->reply_wait != NULL)
		reply_wake(conn->ctx);
}

static void dequeue(struct conn_store *cs, struct job *j)
{
	cs->head = j->next;
	if (cs->head == NULL)
		cs->tail = NULL;
	cs->queued -= j->bytes;
	cs->ctx->queued -= j->bytes;
}

static bool write_request(const struct job *j)
{
	if (j->env == NULL || j->rc != 0)
		return false;
	switch (j->env->request->op_case) {
	case PEERBACK__REQUEST__OP_CHUNK_OFFER:
	case PEERBACK__REQUEST__OP_CHUNK_PUT:
	case PEERBACK__REQUEST__OP_COMMIT:
		return true;
	default:
		return false;
	}
}

/* How many requests from j on go to the worker together: j alone, or the
 * write requests in a row behind it (their replies are small, so the
 * channel's bound on unread replies still holds). */
static size_t run_length(const struct job *j)
{
	size_t n = 1, bytes = j->bytes;

	/* ChunkGets in a row: read together (pb_store_get_many). */
	if (is_get(j)) {
		for (j = j->next; n < GET_BATCH && is_get(j); j = j->next)
			n++;
		return n;
	}
	if (!write_request(j))
		return 1;
	for (j = j->next; j != NULL && n < RUN_MAX && bytes < RUN_BYTES && write_request(j); j = j->next) {
		bytes += j->bytes;
		n++;
	}
	return n;
}

/* A lone read (a small restore's lookups: its master key, the snapshot
 * list, a snapshot, one chunk) is answered on the loop when the worker is
 * idle: the hand-over to the pool and back cost more than the read. The
 * store is still driven by one thread at a time (no job runs or waits, and
 * the last job's end reached the loop through libuv's queue, which orders
 * it as a mutex would); a run of reads, or any write, goes to the worker,
 * which overlaps them with the loop's sending. */
static bool run_here(const struct conn_store *cs, const struct job *j)
{
	if (cs->conn == NULL || j->env == NULL || j->run != 1 || !pb__host_worker_idle(cs->ctx->worker))
		return false;
	switch (j->env->request->op_case) {
	case PEERBACK__REQUEST__OP_SNAPSHOT_LIST:
	case PEERBACK__REQUEST__OP_SNAPSHOT_GET:
	case PEERBACK__REQUEST__OP_CHUNK_GET:
	case PEERBACK__REQUEST__OP_MASTERKEY_GET:
	case PEERBACK__REQUEST__OP_BACKUP_LIST:
		return true;
	default:
		return false;
	}
}

static void on_drained(pb_channel_t *ch)
{
	pb_host_conn_t *conn = (pb_host_conn_t *)ch;

	if (conn->app != NULL)
		pump(conn->app);
}

/* Serves the connection's requests in order until one has to wait for the
 * worker, or for the peer to read: while more than the channel's bound of
 * replies waits unread, no request is served (each may make a reply of a
 * few MiB), so a phone that asks and never reads holds at most that bound
 * plus one reply, however many requests it has queued. */
static void pump(struct conn_store *cs)
{
	struct job *j;

	while (cs->busy == 0 && (j = cs->head) != NULL) {
		if (cs->conn != NULL && pb__channel_congested(&cs->conn->ch)) {
			pb__channel_when_drained(&cs->conn->ch, on_drained);
			return;
		}
		if (j->env == NULL || (j->rc == 0 && storage_request(j->env->request))) {
			if (j->env != NULL && j->env->request->op_case == PEERBACK__REQUEST__OP_BACKUP_LIST)
				j->rc = prepare_backup_list(j);
			if (j->rc == 0 && big_read(j) && (j->due = reply_share(cs)) == 0) {
				reply_wait(cs);
				return;
			}
			if (j->rc == 0) {
				cs->busy = j->run = run_length(j);
				cs->ctx->replies_due += j->due;
				if (cs->conn != NULL)
					pb__channel_busy(&cs->conn->ch, true);
				j->work.run = job_run;
				j->work.done = job_done;
				if (!run_here(cs, j)) {
					pb__host_worker_submit(cs->ctx->worker, &j->work);
					return;
				}
				/* Answered now; job_done leaves the next to this loop. */
				j->here = true;
				job_run(&j->work);
				job_done(&j->work, false);
				continue;
			}
		}
		dequeue(cs, j);
		answer_here(cs, j);
		job_free(j);
		maybe_release(cs->ctx);
	}
}

static void job_done(pb_host_job_t *work, bool canceled)
{
	struct job *j = (struct job *)work;
	struct conn_store *cs = j->cs;
	/* A run of ChunkGets may have been read in part: the rest stay at the
	 * head of the queue for the next run, unless nothing will run them. */
	size_t n = get_run(j) && !canceled && cs->conn != NULL ? j->nserved : j->run;
	bool here = j->here;
	pb_host_ctx_t *ctx = cs->ctx;

	ctx->replies_due -= j->due;

	if (j->env == NULL) {
		/* The connection's last job: its handles are closed. */
		job_free(j);
		free(cs);
		return;
	}
	/* The run's answers, in order. */
	cs->busy = 0;
	if (cs->conn != NULL)
		pb__channel_busy(&cs->conn->ch, false);
	while (n-- > 0) {
		j = cs->head;
		dequeue(cs, j);
		if (cs->conn != NULL && !canceled) {
			if (j->rc != 0)
				reply_error(cs->conn, j->env->request->id, j->rc);
			else if (j->has_rep) {
				j->rep.id = j->env->request->id;
				send_reply(cs->conn, &j->rep);
			}
			if (j->rc == 0)
				progress_event(cs, j->env->request);
		}
		job_free(j);
	}
	if (ctx->replies > ctx->replies_peak) {
		ctx->replies_peak = ctx->replies;
		note_peak("PEERBACK_TEST_REPLY_PEAK", ctx->replies_peak);
	}
	if (!canceled) {
		maybe_release(ctx);
		if (!here)
			pump(cs);
		if (ctx->reply_wait != NULL)
			reply_wake(ctx);
	}
}

/* The connection is gone: what it still had waiting is dropped, and its
 * handles are closed by a last job behind the one under way. */
static void conn_store_free(pb_host_conn_t *conn)
{
	struct conn_store *cs = conn->app;
	struct job *j, *close_job;
	pb_host_ctx_t *ctx;

	if (cs == NULL)
		return;
	ctx = cs->ctx;
	conn->app = NULL;
	cs->conn = NULL;
	if (cs->paused)
		unhold(cs);
	if (cs->reply_waiting)
		reply_unwait(cs);
	pb__link_remove(&cs->ctx->stores, &cs->link);
	/* The run with the worker stays until its done. */
	if (cs->busy > 0) {
		struct job *last = cs->head;

		for (size_t i = 1; i < cs->busy; i++)
			last = last->next;
		j = last->next;
		last->next = NULL;
		cs->tail = last;
	} else {
		j = cs->head;
		cs->head = cs->tail = NULL;
	}
	while (j != NULL) {
		struct job *next = j->next;

		cs->queued -= j->bytes;
		cs->ctx->queued -= j->bytes;
		job_free(j);
		j = next;
	}
	close_job = calloc(1, sizeof(*close_job));
	if (close_job == NULL) {
		/* Left open until the store closes; never used again. */
		if (cs->busy == 0)
			free(cs);
		maybe_release(ctx);
		return;
	}
	close_job->cs = cs;
	if (cs->tail != NULL)
		cs->tail->next = close_job;
	else
		cs->head = close_job;
	cs->tail = close_job;
	pump(cs);
	maybe_release(ctx);
}

static struct conn_store *conn_store(pb_host_conn_t *conn)
{
	struct conn_store *cs;

	if (conn->app != NULL)
		return conn->app;
	cs = calloc(1, sizeof(*cs));
	if (cs == NULL)
		return NULL;
	cs->conn = conn;
	cs->ctx = conn->ctx;
	cs->store = conn->ctx->store;
	snprintf(cs->account, sizeof(cs->account), "%s", conn->device.account);
	memcpy(cs->device_id, conn->device.device_id, PB_DEVICE_ID_LEN);
	/* A quota changed meanwhile applies from the next connection. */
	cs->quota = pb__hostdb_quota(conn->ctx->db, conn->device.device_id, NULL);
	pb__link_push(&cs->ctx->stores, &cs->link);
	/* Its replies count against the host's reply budget from now on. */
	conn->ch.out_total = &cs->ctx->replies;
	conn->ch.on_sent = replies_sent;
	conn->app = cs;
	conn->app_free = conn_store_free;
	return cs;
}

/* What a waiting request weighs against the connection's bound. */
static size_t request_bytes(const Peerback__Request *req)
{
	switch (req->op_case) {
	case PEERBACK__REQUEST__OP_CHUNK_PUT:
		return 256 + req->chunk_put->data.len;
	case PEERBACK__REQUEST__OP_CHUNK_OFFER:
		return 256 + req->chunk_offer->names.len;
	case PEERBACK__REQUEST__OP_SNAPSHOT_PUT:
		return 256 + req->snapshot_put->refs.len + req->snapshot_put->root.len;
	case PEERBACK__REQUEST__OP_MASTERKEY_PUT:
		return 256 + req->masterkey_put->value.len;
	case PEERBACK__REQUEST__OP_INSTRUCTION_ACK:
		return 256 + req->instruction_ack->payload.len;
	default:
		return 256;
	}
}

static void request(pb_host_conn_t *conn, pb_envelope_t *env)
{
	struct conn_store *cs = conn_store(conn);
	struct job *j = cs != NULL ? calloc(1, sizeof(*j)) : NULL;

	if (j == NULL) {
		reply_error(conn, env->request->id, PB_ENOMEM);
		pb__envelope_free(env);
		return;
	}
	j->cs = cs;
	j->env = env;
	j->bytes = request_bytes(env->request);
	j->rc = check_request(env->request);
	peerback__reply__init(&j->rep);
	if (cs->tail != NULL)
		cs->tail->next = j;
	else
		cs->head = j;
	cs->tail = j;
	enqueued(cs, j->bytes);
	pump(cs);
}

const pb_host_service_t pb__host_storage_service = { request };
