/* The remote repository: a paired host over an authenticated session. All
 * of the backup engine's protocol messages are built and read here. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peerback.h"
#include "agent/backup/repo.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

#define COMMIT_RING 16

struct remote {
	pb_repo_t base;
	pb_client_t c;
	uint64_t next_id;
	uint64_t puts;          /* ChunkPuts since the last Commit */
	/* Commits in flight and the chunks each makes durable (the sink keeps
	 * a few in flight; one pushed out of the ring waits the base time). */
	struct commit_wait {
		uint64_t tok, units;
	} commits[COMMIT_RING];
	size_t ncommits;
};

/* What the phone allows the host for each unit of work a request asks of
 * it (a reference to record, a chunk to make durable), on top of the
 * session's wait: a snapshot of a million references is minutes of index
 * work on a slow or loaded host, and the protocol has no word for "still
 * working", so the wait for such an answer grows with what was asked. */
#define WORK_WAIT_US 200

static struct remote *R(pb_repo_t *r)
{
	return (struct remote *)r;
}

/* dev as the protocol's bytes; NULL (the phone's own) is empty. */
static ProtobufCBinaryData dev_bytes(const uint8_t *dev)
{
	ProtobufCBinaryData b = { 0, NULL };

	if (dev != NULL) {
		b.data = (uint8_t *)dev;
		b.len = 16;
	}
	return b;
}

static int call(struct remote *s, Peerback__Request *req, pb_envelope_t **out)
{
	req->id = ++s->next_id;
	return pb__phone_call(&s->c, req, out);
}

/* A call whose reply must be of kind want; on 0, *out holds it for the
 * caller to free. */
static int call_expect(struct remote *s, Peerback__Request *req, Peerback__Reply__OpCase want, pb_envelope_t **out)
{
	req->id = ++s->next_id;
	return pb__phone_call_expect(&s->c, req, want, out);
}

/* The wait for an answer that costs the host units of work. */
static int work_wait(int base, uint64_t units)
{
	uint64_t ms = (uint64_t)base + units * WORK_WAIT_US / 1000;

	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* A call whose answer costs the host work in proportion to units. */
static int call_work(struct remote *s, Peerback__Request *req, uint64_t units)
{
	int base = s->c.timeout_ms, rc;

	s->c.timeout_ms = work_wait(base, units);
	rc = call(s, req, NULL);
	s->c.timeout_ms = base;
	return rc;
}

static int send_req(struct remote *s, Peerback__Request *req)
{
	req->id = ++s->next_id;
	return pb__phone_send(&s->c, req);
}

static int copy_out(const ProtobufCBinaryData *b, uint8_t **out, size_t *len)
{
	*out = malloc(b->len ? b->len : 1);
	if (*out == NULL)
		return PB_ENOMEM;
	memcpy(*out, b->data, b->len);
	*len = b->len;
	return 0;
}

/* A call answered with a blob of at most max bytes, copied to *out. */
static int call_blob(struct remote *s, Peerback__Request *req, size_t max, uint8_t **out, size_t *len)
{
	pb_envelope_t *in;
	int rc = call_expect(s, req, PEERBACK__REPLY__OP_BLOB, &in);

	if (rc != 0)
		return rc;
	if (in->reply->blob.len > max)
		rc = PB_EENV_MALFORMED;
	else
		rc = copy_out(&in->reply->blob, out, len);
	pb__envelope_free(in);
	return rc;
}

static int r_missing_send(pb_repo_t *r, const pb_repo_name_t *names, size_t n, uint64_t *tok)
{
	Peerback__Request req;
	Peerback__ChunkOffer offer;
	int rc;

	peerback__request__init(&req);
	peerback__chunk_offer__init(&offer);
	offer.names.data = (uint8_t *)names;
	offer.names.len = n * PB_STORE_NAME_LEN;
	req.op_case = PEERBACK__REQUEST__OP_CHUNK_OFFER;
	req.chunk_offer = &offer;
	rc = send_req(R(r), &req);
	*tok = req.id;
	return rc;
}

static int r_missing_recv(pb_repo_t *r, uint64_t tok, const pb_repo_name_t *names, size_t n, bool *missing)
{
	pb_envelope_t *in = NULL;
	int rc;

	(void)names;
	for (size_t i = 0; i < n; i++)
		missing[i] = false;
	if ((rc = pb__phone_reply(&R(r)->c, tok, &in)) != 0)
		return rc;
	if (in->reply->op_case != PEERBACK__REPLY__OP_CHUNK_WANT)
		rc = PB_EENV_MALFORMED;
	for (size_t i = 0; rc == 0 && i < in->reply->chunk_want->n_missing; i++) {
		uint32_t k = in->reply->chunk_want->missing[i];

		if (k >= n) {
			rc = PB_EENV_MALFORMED;
			break;
		}
		missing[k] = true;
	}
	pb__envelope_free(in);
	return rc;
}

static int r_missing(pb_repo_t *r, const pb_repo_name_t *names, size_t n, bool *missing)
{
	uint64_t tok;
	int rc;

	for (size_t i = 0; i < n; i++)
		missing[i] = false;
	if (n == 0)
		return 0;
	if ((rc = r_missing_send(r, names, n, &tok)) != 0)
		return rc;
	return r_missing_recv(r, tok, names, n, missing);
}

static int r_put(pb_repo_t *r, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	R(r)->puts++;
	return pb__phone_chunk_put(&R(r)->c, ++R(r)->next_id, name, ct, len);
}

static int r_commit_send(pb_repo_t *r, uint64_t *tok)
{
	struct remote *s = R(r);
	Peerback__Request req;
	Peerback__Commit c;
	int rc;

	peerback__request__init(&req);
	peerback__commit__init(&c);
	req.op_case = PEERBACK__REQUEST__OP_COMMIT;
	req.commit = &c;
	rc = send_req(s, &req);
	*tok = req.id;
	/* The wait for its receipt grows with the chunks it makes durable. */
	s->commits[s->ncommits++ % COMMIT_RING] = (struct commit_wait){ req.id, s->puts };
	s->puts = 0;
	return rc;
}

/* The chunks the commit tok made durable (0 if it is no longer known). */
static uint64_t commit_units(struct remote *s, uint64_t tok)
{
	for (size_t i = 0; i < COMMIT_RING; i++)
		if (s->commits[i].tok == tok) {
			s->commits[i].tok = 0;
			return s->commits[i].units;
		}
	return 0;
}

static int r_commit_recv(pb_repo_t *r, uint64_t tok)
{
	struct remote *s = R(r);
	pb_envelope_t *in = NULL;
	int base = s->c.timeout_ms, rc;

	s->c.timeout_ms = work_wait(base, commit_units(s, tok));
	rc = pb__phone_reply(&s->c, tok, &in);
	s->c.timeout_ms = base;
	pb__envelope_free(in);
	return rc;
}

static int r_commit(pb_repo_t *r)
{
	uint64_t tok;
	int rc = r_commit_send(r, &tok);

	return rc != 0 ? rc : r_commit_recv(r, tok);
}

static int r_get_send(pb_repo_t *r, const uint8_t *dev, const uint8_t name[PB_STORE_NAME_LEN], uint64_t *tok)
{
	Peerback__Request req;
	Peerback__ChunkGet get;
	int rc;

	peerback__request__init(&req);
	peerback__chunk_get__init(&get);
	get.device = dev_bytes(dev);
	get.name.data = (uint8_t *)name;
	get.name.len = PB_STORE_NAME_LEN;
	req.op_case = PEERBACK__REQUEST__OP_CHUNK_GET;
	req.chunk_get = &get;
	/* Held until the next request or the first get_recv, which always
	 * follows: requests asked together go out in one segment. */
	req.id = ++R(r)->next_id;
	rc = pb__phone_send_more(&R(r)->c, &req);
	*tok = req.id;
	return rc;
}

static int r_get_recv(pb_repo_t *r, uint64_t tok, uint8_t **ct, size_t *len)
{
	pb_envelope_t *in;
	int rc = pb__phone_reply(&R(r)->c, tok, &in);

	if (rc != 0)
		return rc;
	if (in->reply->op_case != PEERBACK__REPLY__OP_CHUNK || in->reply->chunk->data.len > PB_STORE_CT_MAX) {
		rc = PB_EENV_MALFORMED;
	} else if (in->reply->chunk->data.len == 0) {
		rc = copy_out(&in->reply->chunk->data, ct, len);
	} else {
		/* The reply's own buffer is handed over, not copied: protobuf-c
		 * allocates each bytes field by itself with malloc (the default
		 * allocator), and frees none it does not hold. */
		*ct = in->reply->chunk->data.data;
		*len = in->reply->chunk->data.len;
		in->reply->chunk->data.data = NULL;
		in->reply->chunk->data.len = 0;
	}
	pb__envelope_free(in);
	return rc;
}

static int r_list_send(pb_repo_t *r, const uint8_t *dev, uint64_t *tok)
{
	Peerback__Request req;
	Peerback__SnapshotList sl;
	int rc;

	peerback__request__init(&req);
	peerback__snapshot_list__init(&sl);
	sl.device = dev_bytes(dev);
	req.op_case = PEERBACK__REQUEST__OP_SNAPSHOT_LIST;
	req.snapshot_list = &sl;
	/* Not held: it pushes the chunk requests held before it. */
	rc = send_req(R(r), &req);
	*tok = req.id;
	return rc;
}

static int r_list_recv(pb_repo_t *r, uint64_t tok, pb_store_snapinfo_t **out, size_t *n)
{
	pb_envelope_t *in;
	size_t k;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = pb__phone_reply(&R(r)->c, tok, &in)) != 0)
		return rc;
	if (in->reply->op_case != PEERBACK__REPLY__OP_SNAPSHOTS) {
		pb__envelope_free(in);
		return PB_EENV_MALFORMED;
	}
	k = in->reply->snapshots->n_snapshots;
	*out = calloc(k ? k : 1, sizeof(**out));
	if (*out == NULL) {
		pb__envelope_free(in);
		return PB_ENOMEM;
	}
	for (size_t i = 0; i < k; i++) {
		const Peerback__SnapshotInfo *s = in->reply->snapshots->snapshots[i];

		(*out)[i].id = s->snapshot;
		(*out)[i].time = s->time;
		(*out)[i].size = s->size;
		(*out)[i].nrefs = s->chunks;
	}
	*n = k;
	pb__envelope_free(in);
	return 0;
}

static int r_snapshot_list(pb_repo_t *r, const uint8_t *dev, pb_store_snapinfo_t **out, size_t *n)
{
	uint64_t tok;
	int rc = r_list_send(r, dev, &tok);

	*out = NULL;
	*n = 0;
	return rc != 0 ? rc : r_list_recv(r, tok, out, n);
}

static int r_snapshot_get(pb_repo_t *r, const uint8_t *dev, uint64_t snap, uint8_t **blob, size_t *len)
{
	Peerback__Request req;
	Peerback__SnapshotGet sg;

	peerback__request__init(&req);
	peerback__snapshot_get__init(&sg);
	sg.device = dev_bytes(dev);
	sg.snapshot = snap;
	req.op_case = PEERBACK__REQUEST__OP_SNAPSHOT_GET;
	req.snapshot_get = &sg;
	/* No cap on a snapshot's root here, unlike a key blob's. */
	return call_blob(R(r), &req, SIZE_MAX, blob, len);
}

static int r_snapshot_put(pb_repo_t *r, uint64_t snap, const uint8_t *root, size_t len, const pb_repo_name_t *refs,
			  size_t nrefs)
{
	Peerback__Request req;
	Peerback__SnapshotPut sp;

	peerback__request__init(&req);
	peerback__snapshot_put__init(&sp);
	sp.snapshot = snap;
	sp.root.data = (uint8_t *)root;
	sp.root.len = len;
	sp.refs.data = (uint8_t *)refs;
	sp.refs.len = nrefs * PB_STORE_NAME_LEN;
	req.op_case = PEERBACK__REQUEST__OP_SNAPSHOT_PUT;
	req.snapshot_put = &sp;
	return call_work(R(r), &req, nrefs);
}

static int r_blob_get(pb_repo_t *r, const uint8_t *dev, const char *key, uint8_t **val, size_t *len)
{
	Peerback__Request req;
	Peerback__BlobGet get;

	peerback__request__init(&req);
	peerback__blob_get__init(&get);
	get.device = dev_bytes(dev);
	get.key = (char *)key;
	req.op_case = PEERBACK__REQUEST__OP_MASTERKEY_GET;
	req.masterkey_get = &get;
	return call_blob(R(r), &req, PB_STORE_BLOB_MAX, val, len);
}

static int r_blob_put(pb_repo_t *r, const char *key, const uint8_t *val, size_t len)
{
	return pb__phone_blob_put(&R(r)->c, ++R(r)->next_id, key, val, len);
}

static int r_devices(pb_repo_t *r, pb_repo_device_t **out, size_t *n)
{
	Peerback__Request req;
	Peerback__BackupList bl;
	pb_envelope_t *in;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	peerback__request__init(&req);
	peerback__backup_list__init(&bl);
	req.op_case = PEERBACK__REQUEST__OP_BACKUP_LIST;
	req.backup_list = &bl;
	if ((rc = call_expect(R(r), &req, PEERBACK__REPLY__OP_BACKUPS, &in)) != 0)
		return rc;
	*out = calloc(in->reply->backups->n_devices + 1, sizeof(**out));
	if (*out == NULL) {
		pb__envelope_free(in);
		return PB_ENOMEM;
	}
	for (size_t i = 0; i < in->reply->backups->n_devices; i++) {
		const Peerback__DeviceBackups *d = in->reply->backups->devices[i];

		if (d->device.len != 16)
			continue;
		memcpy((*out)[k].id, d->device.data, 16);
		snprintf((*out)[k].name, sizeof((*out)[k].name), "%s", d->name != NULL ? d->name : "");
		(*out)[k].latest = d->latest;
		k++;
	}
	*n = k;
	pb__envelope_free(in);
	return 0;
}

static void r_close(pb_repo_t *r)
{
	pb__client_close(&R(r)->c);
	free(r);
}

static const pb_repo_ops_t remote_ops = {
	r_missing, r_put, r_commit, r_missing_send, r_missing_recv, r_commit_send, r_commit_recv, r_get_send,
	r_get_recv, r_snapshot_list, r_snapshot_get, r_snapshot_put, r_blob_get, r_blob_put, r_devices,
	r_close, r_list_send, r_list_recv,
};

void pb__repo_remote_bulk(pb_repo_t *r)
{
	if (r != NULL && r->ops == &remote_ops)
		(void)pb__client_tx_start(&R(r)->c);
}

int pb__repo_remote_open(const char *home, const char *which, int timeout_ms, const char *device_dir,
			 void (*report)(void *arg, const char *op, int rc, const char *message), void *arg,
			 pb_repo_t **out)
{
	struct remote *s = calloc(1, sizeof(*s));
	pb_remembered_host_t host;
	char dev[4096];
	int rc;

	*out = NULL;
	if (s == NULL)
		return PB_ENOMEM;
	s->base.ops = &remote_ops;
	s->next_id = 100;
	/* The device id only: the connection below loads the keys. */
	if (pb__identity_device_id(home, s->base.device_id) != 0)
		memset(s->base.device_id, 0, sizeof(s->base.device_id));
	rc = pb__phone_connect(home, which, timeout_ms > 0 ? timeout_ms : 30000, &s->c, &host);
	if (rc != 0) {
		free(s);
		return rc;
	}
	memcpy(s->base.host_pk, host.static_pk, sizeof(s->base.host_pk));
	/* Instructions the host queued are carried out at each connection. */
	if (device_dir != NULL)
		snprintf(dev, sizeof(dev), "%s", device_dir);
	else if (pb__path_join(dev, sizeof(dev), home, "device") != 0)
		rc = PB_ETOOBIG;
	if (rc == 0)
		rc = pb__phone_instructions(&s->c, home, dev, report, arg);
	if (rc < 0) {
		r_close(&s->base);
		return rc;
	}
	*out = &s->base;
	return 0;
}
