/* Requests from an authenticated device: the storage protocol.
 *
 * Every device writes only its own namespace (account, device id). It may
 * read the namespaces of other devices of its account: a new phone restores
 * what an old one backed up, with the recovery passphrase. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peerback.h"
#include "peerback/store.h"
#include "agent/host/host.h"
#include "agent/util/fsutil.h"

#define OFFER_MAX 4096

struct conn_store {
	pb_store_ns_t *own;         /* the device's namespace, opened at its first write */
	pb_store_ns_t *reader;      /* the namespace last read, opened read-only */
	uint8_t reader_id[PB_DEVICE_ID_LEN];
	int put_err;                /* first failed ChunkPut since the last Commit */
	uint64_t puts;
	uint64_t quota;             /* the device's, as set when it connected */
};

static void conn_store_free(pb_host_conn_t *conn)
{
	struct conn_store *cs = conn->app;

	if (cs == NULL)
		return;
	/* Chunks put but never committed are not acknowledged; the phone
	 * resends them. */
	pb_store_ns_close(cs->own);
	pb_store_ns_close(cs->reader);
	free(cs);
	conn->app = NULL;
}

static void device_hex(const uint8_t device[PB_DEVICE_ID_LEN], char hex[2 * PB_DEVICE_ID_LEN + 1])
{
	pb__hex(device, PB_DEVICE_ID_LEN, hex);
}

static struct conn_store *conn_store(pb_host_conn_t *conn)
{
	struct conn_store *cs;

	if (conn->app == NULL && (cs = calloc(1, sizeof(*cs))) != NULL) {
		/* A quota changed meanwhile applies from the next connection. */
		cs->quota = pb__hostdb_quota(pb__host_db(conn->host), conn->device.device_id, NULL);
		conn->app = cs;
		conn->app_free = conn_store_free;
	}
	return conn->app;
}

/* The caller's own namespace, for writing (created at the first write). */
static int own_ns(pb_host_conn_t *conn, pb_store_ns_t **out)
{
	struct pb_store_s *store = pb__host_store(conn->host);
	struct conn_store *cs = conn_store(conn);
	char hex[2 * PB_DEVICE_ID_LEN + 1];
	int rc;

	if (cs == NULL)
		return PB_ENOMEM;
	if (store == NULL)
		return PB_EUNSUPPORTED;
	if (cs->own == NULL) {
		device_hex(conn->device.device_id, hex);
		if ((rc = pb_store_ns_open(store, conn->device.account, hex, &cs->own)) != 0)
			return rc;
		pb_store_ns_set_quota(cs->own, cs->quota);
	}
	*out = cs->own;
	return 0;
}

/* The namespace a read names: the caller's own, or another device of the
 * same account. Reads open it read-only: they never create a namespace, and
 * any number of them go along with the namespace's own writer. */
static int read_ns(pb_host_conn_t *conn, const ProtobufCBinaryData *device, pb_store_ns_t **out)
{
	struct pb_store_s *store = pb__host_store(conn->host);
	struct conn_store *cs;
	const uint8_t *id = conn->device.device_id;
	char hex[2 * PB_DEVICE_ID_LEN + 1];
	int rc;

	if (device->len != 0 && device->len != PB_DEVICE_ID_LEN)
		return PB_EENV_MALFORMED;
	if (device->len == PB_DEVICE_ID_LEN)
		id = device->data;
	if ((cs = conn_store(conn)) == NULL)
		return PB_ENOMEM;
	if (store == NULL)
		return PB_EUNSUPPORTED;
	if (cs->own != NULL && memcmp(id, conn->device.device_id, PB_DEVICE_ID_LEN) == 0) {
		*out = cs->own;
		return 0;
	}
	if (cs->reader != NULL && memcmp(cs->reader_id, id, PB_DEVICE_ID_LEN) != 0) {
		pb_store_ns_close(cs->reader);
		cs->reader = NULL;
	}
	if (cs->reader == NULL) {
		device_hex(id, hex);
		if ((rc = pb_store_ns_open_ro(store, conn->device.account, hex, &cs->reader)) != 0)
			return rc;
		memcpy(cs->reader_id, id, PB_DEVICE_ID_LEN);
	}
	*out = cs->reader;
	return 0;
}

static int own_read_ns(pb_host_conn_t *conn, pb_store_ns_t **out)
{
	ProtobufCBinaryData own = { 0, NULL };

	return read_ns(conn, &own, out);
}

static void send_reply(pb_host_conn_t *conn, Peerback__Reply *rep)
{
	pb_envelope_t env;

	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_REPLY;
	env.reply = rep;
	(void)pb__channel_send(&conn->ch, &env);
}

static void reply_bytes(pb_host_conn_t *conn, uint64_t id, uint8_t *data, size_t len)
{
	Peerback__Reply rep;

	peerback__reply__init(&rep);
	rep.id = id;
	rep.op_case = PEERBACK__REPLY__OP_BLOB;
	rep.blob.data = data;
	rep.blob.len = len;
	send_reply(conn, &rep);
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

static int do_offer(pb_host_conn_t *conn, const Peerback__Request *req)
{
	const ProtobufCBinaryData *names = &req->chunk_offer->names;
	size_t n = names->len / PB_STORE_NAME_LEN, k = 0;
	Peerback__Reply rep;
	Peerback__ChunkWant want;
	pb_store_ns_t *ns;
	bool *missing;
	uint32_t *idx;
	int rc;

	if (names->len % PB_STORE_NAME_LEN != 0 || n > OFFER_MAX)
		return PB_EENV_MALFORMED;
	if ((rc = own_read_ns(conn, &ns)) != 0)
		return rc;
	missing = calloc(n ? n : 1, sizeof(*missing));
	idx = calloc(n ? n : 1, sizeof(*idx));
	if (missing == NULL || idx == NULL) {
		rc = PB_ENOMEM;
		goto out_free;
	}
	rc = pb_store_missing(ns, (const uint8_t(*)[PB_STORE_NAME_LEN])names->data, n, missing);
	if (rc != 0)
		goto out_free;
	for (size_t i = 0; i < n; i++)
		if (missing[i])
			idx[k++] = (uint32_t)i;
	peerback__reply__init(&rep);
	peerback__chunk_want__init(&want);
	want.missing = idx;
	want.n_missing = k;
	rep.id = req->id;
	rep.op_case = PEERBACK__REPLY__OP_CHUNK_WANT;
	rep.chunk_want = &want;
	send_reply(conn, &rep);
out_free:
	free(missing);
	free(idx);
	return rc;
}

static void do_put(pb_host_conn_t *conn, const Peerback__ChunkPut *put)
{
	struct conn_store *cs = conn_store(conn);
	pb_store_ns_t *ns;
	int rc;

	if (cs == NULL || cs->put_err != 0)
		return;
	if (put->name.len != PB_STORE_NAME_LEN || put->data.len == 0 || put->data.len > PB_STORE_CT_MAX) {
		cs->put_err = PB_EENV_MALFORMED;
		return;
	}
	rc = own_ns(conn, &ns);
	if (rc == 0)
		rc = pb_store_put(ns, put->name.data, put->data.data, put->data.len);
	if (rc != 0)
		cs->put_err = rc;
	else
		cs->puts++;
}

static int do_commit(pb_host_conn_t *conn, const Peerback__Request *req)
{
	struct conn_store *cs = conn_store(conn);
	Peerback__Reply rep;
	Peerback__CommitReceipt receipt;
	pb_store_ns_t *ns;
	int rc;

	if (cs == NULL)
		return PB_ENOMEM;
	if (cs->put_err != 0) {
		rc = cs->put_err;
		cs->put_err = 0;
		return rc;
	}
	/* Without a put there is nothing to make durable. */
	rc = 0;
	if (cs->own != NULL && (rc = own_ns(conn, &ns)) == 0)
		rc = pb_store_flush(ns);
	if (rc < 0)
		return rc;
	peerback__reply__init(&rep);
	peerback__commit_receipt__init(&receipt);
	receipt.chunks = (uint64_t)rc;
	receipt.total = cs->puts;
	cs->puts = 0;
	rep.id = req->id;
	rep.op_case = PEERBACK__REPLY__OP_RECEIPT;
	rep.receipt = &receipt;
	send_reply(conn, &rep);
	return 0;
}

static int do_snapshot_put(pb_host_conn_t *conn, const Peerback__Request *req)
{
	const Peerback__SnapshotPut *sp = req->snapshot_put;
	pb_store_ns_t *ns;
	int rc;

	if (sp->refs.len % PB_STORE_NAME_LEN != 0 || sp->root.len == 0 || sp->root.len > PB_STORE_SNAPSHOT_MAX)
		return PB_EENV_MALFORMED;
	if ((rc = own_ns(conn, &ns)) != 0)
		return rc;
	rc = pb_store_snapshot_put(ns, sp->snapshot, (const uint8_t(*)[PB_STORE_NAME_LEN])sp->refs.data,
				   sp->refs.len / PB_STORE_NAME_LEN, sp->root.data, sp->root.len);
	if (rc != 0)
		return rc;
	if (pb__host_json(conn->host)) {
		char dev[2 * PB_DEVICE_ID_LEN + 1];

		pb__hex(conn->device.device_id, PB_DEVICE_ID_LEN, dev);
		printf("{\"event\":\"snapshot\",\"device\":\"%s\",\"snapshot\":\"%016llx\",\"chunks\":%zu}\n", dev,
		       (unsigned long long)sp->snapshot, sp->refs.len / PB_STORE_NAME_LEN);
		fflush(stdout);
	}
	reply_ok(conn, req->id);
	return 0;
}

static int do_snapshot_list(pb_host_conn_t *conn, const Peerback__Request *req)
{
	Peerback__Reply rep;
	Peerback__SnapshotListReply list;
	Peerback__SnapshotInfo *infos = NULL, **ptrs = NULL;
	pb_store_snapinfo_t *snaps = NULL;
	pb_store_ns_t *ns;
	size_t n = 0;
	int rc;

	if ((rc = read_ns(conn, &req->snapshot_list->device, &ns)) != 0)
		return rc;
	if ((rc = pb_store_snapshot_list(ns, &snaps, &n)) != 0)
		return rc;
	infos = calloc(n ? n : 1, sizeof(*infos));
	ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (infos == NULL || ptrs == NULL) {
		rc = PB_ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < n; i++) {
		peerback__snapshot_info__init(&infos[i]);
		infos[i].snapshot = snaps[i].id;
		infos[i].time = snaps[i].time;
		infos[i].size = snaps[i].size;
		infos[i].chunks = snaps[i].nrefs;
		ptrs[i] = &infos[i];
	}
	peerback__reply__init(&rep);
	peerback__snapshot_list_reply__init(&list);
	list.snapshots = ptrs;
	list.n_snapshots = n;
	rep.id = req->id;
	rep.op_case = PEERBACK__REPLY__OP_SNAPSHOTS;
	rep.snapshots = &list;
	send_reply(conn, &rep);
out_free:
	free(infos);
	free(ptrs);
	free(snaps);
	return rc;
}

static int do_snapshot_get(pb_host_conn_t *conn, const Peerback__Request *req)
{
	pb_store_ns_t *ns;
	uint8_t *blob;
	size_t len;
	int rc;

	if ((rc = read_ns(conn, &req->snapshot_get->device, &ns)) != 0)
		return rc;
	if ((rc = pb_store_snapshot_get(ns, req->snapshot_get->snapshot, &blob, &len)) != 0)
		return rc;
	reply_bytes(conn, req->id, blob, len);
	free(blob);
	return 0;
}

static int do_chunk_get(pb_host_conn_t *conn, const Peerback__Request *req)
{
	Peerback__Reply rep;
	Peerback__ChunkData cd;
	pb_store_ns_t *ns;
	uint8_t *ct;
	size_t len;
	int rc;

	if (req->chunk_get->name.len != PB_STORE_NAME_LEN)
		return PB_EENV_MALFORMED;
	if ((rc = read_ns(conn, &req->chunk_get->device, &ns)) != 0)
		return rc;
	if ((rc = pb_store_get(ns, req->chunk_get->name.data, &ct, &len)) != 0)
		return rc;
	peerback__reply__init(&rep);
	peerback__chunk_data__init(&cd);
	cd.name = req->chunk_get->name;
	cd.data.data = ct;
	cd.data.len = len;
	rep.id = req->id;
	rep.op_case = PEERBACK__REPLY__OP_CHUNK;
	rep.chunk = &cd;
	send_reply(conn, &rep);
	free(ct);
	return 0;
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

static int do_masterkey_put(pb_host_conn_t *conn, const Peerback__Request *req)
{
	const char *key = blob_key(req->masterkey_put->key);
	pb_store_ns_t *ns;
	int rc;

	if (key == NULL || req->masterkey_put->value.len == 0 || req->masterkey_put->value.len > PB_STORE_BLOB_MAX)
		return PB_EENV_MALFORMED;
	if ((rc = own_ns(conn, &ns)) != 0)
		return rc;
	rc = pb_store_blob_put(ns, key, req->masterkey_put->value.data, req->masterkey_put->value.len);
	if (rc == 0)
		reply_ok(conn, req->id);
	return rc;
}

static int do_masterkey_get(pb_host_conn_t *conn, const Peerback__Request *req)
{
	const char *key = blob_key(req->masterkey_get->key);
	pb_store_ns_t *ns;
	uint8_t *val;
	size_t len;
	int rc;

	if (key == NULL)
		return PB_EENV_MALFORMED;
	if ((rc = read_ns(conn, &req->masterkey_get->device, &ns)) != 0)
		return rc;
	if ((rc = pb_store_blob_get(ns, key, &val, &len)) != 0)
		return rc;
	reply_bytes(conn, req->id, val, len);
	free(val);
	return 0;
}

struct backups {
	pb_host_conn_t *conn;
	Peerback__DeviceBackups items[64];
	Peerback__DeviceBackups *ptrs[64];
	uint8_t ids[64][PB_DEVICE_ID_LEN];
	char names[64][65];
	size_t n;
	int rc; /* a namespace could not be listed */
};

static void add_backups(void *arg, const pb_paired_device_t *d)
{
	struct backups *b = arg;
	pb_store_snapinfo_t *snaps = NULL;
	pb_store_ns_t *ns = NULL;
	ProtobufCBinaryData dev = { PB_DEVICE_ID_LEN, (uint8_t *)d->device_id };
	size_t n = 0;
	int rc;

	if (b->n == 64 || b->rc != 0 || strcmp(d->account, b->conn->device.account) != 0)
		return;
	rc = read_ns(b->conn, &dev, &ns);
	if (rc == 0)
		rc = pb_store_snapshot_list(ns, &snaps, &n);
	if (rc != 0) {
		/* Never answered as if that device had no backup. */
		b->rc = rc;
		free(snaps);
		return;
	}
	if (n == 0) {
		free(snaps);
		return;
	}
	peerback__device_backups__init(&b->items[b->n]);
	memcpy(b->ids[b->n], d->device_id, PB_DEVICE_ID_LEN);
	snprintf(b->names[b->n], sizeof(b->names[b->n]), "%s", d->name);
	b->items[b->n].device.data = b->ids[b->n];
	b->items[b->n].device.len = PB_DEVICE_ID_LEN;
	b->items[b->n].name = b->names[b->n];
	b->items[b->n].snapshots = n;
	for (size_t i = 0; i < n; i++)
		if (snaps[i].time > b->items[b->n].latest)
			b->items[b->n].latest = snaps[i].time;
	b->ptrs[b->n] = &b->items[b->n];
	b->n++;
	free(snaps);
}

static int do_backup_list(pb_host_conn_t *conn, const Peerback__Request *req)
{
	struct backups *b = calloc(1, sizeof(*b));
	Peerback__Reply rep;
	Peerback__BackupListReply list;
	int rc;

	if (b == NULL)
		return PB_ENOMEM;
	b->conn = conn;
	rc = pb__hostdb_list(pb__host_db(conn->host), add_backups, b);
	if (rc >= 0 && b->rc != 0)
		rc = b->rc;
	if (rc >= 0) {
		peerback__reply__init(&rep);
		peerback__backup_list_reply__init(&list);
		list.devices = b->ptrs;
		list.n_devices = b->n;
		rep.id = req->id;
		rep.op_case = PEERBACK__REPLY__OP_BACKUPS;
		rep.backups = &list;
		send_reply(conn, &rep);
		rc = 0;
	}
	free(b);
	return rc;
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
		if (pb__hostdb_device_by_id(pb__host_db(l->conn->host), in->peer, &peer) == 0) {
			memcpy(l->keys[l->n], peer.static_pk, 32);
			it->peer_static_pk.data = l->keys[l->n];
			it->peer_static_pk.len = 32;
			l->strings[3 * l->n + 2] = strdup(peer.account);
			it->peer_account = l->strings[3 * l->n + 2];
		}
	}
	if (in->payload_len > 0) {
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
	rc = pb__hostdb_instructions(pb__host_db(conn->host), conn->device.device_id, true, add_instruction, &l);
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
	rc = pb__hostdb_ack(pb__host_db(conn->host), (int64_t)a->id, conn->device.device_id, a->ok, result,
			    a->payload.len ? a->payload.data : NULL, a->payload.len);
	if (rc != 0)
		return rc;
	if (pb__host_json(conn->host))
		printf("{\"event\":\"instruction\",\"id\":%llu,\"ok\":%s,\"result\":\"%s\"}\n",
		       (unsigned long long)a->id, a->ok ? "true" : "false", a->ok ? "done" : pb_err_name(a->code));
	fflush(stdout);
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

void pb__host_request(pb_host_conn_t *conn, pb_envelope_t *env)
{
	const Peerback__Request *req = env->request;
	int rc = 0;

	switch (req->op_case) {
	case PEERBACK__REQUEST__OP_PING:
		pong(conn, req);
		break;
	case PEERBACK__REQUEST__OP_CHUNK_OFFER:
		rc = do_offer(conn, req);
		break;
	case PEERBACK__REQUEST__OP_CHUNK_PUT:
		do_put(conn, req->chunk_put);
		break;
	case PEERBACK__REQUEST__OP_COMMIT:
		rc = do_commit(conn, req);
		break;
	case PEERBACK__REQUEST__OP_SNAPSHOT_PUT:
		rc = do_snapshot_put(conn, req);
		break;
	case PEERBACK__REQUEST__OP_SNAPSHOT_LIST:
		rc = do_snapshot_list(conn, req);
		break;
	case PEERBACK__REQUEST__OP_SNAPSHOT_GET:
		rc = do_snapshot_get(conn, req);
		break;
	case PEERBACK__REQUEST__OP_CHUNK_GET:
		rc = do_chunk_get(conn, req);
		break;
	case PEERBACK__REQUEST__OP_MASTERKEY_PUT:
		rc = do_masterkey_put(conn, req);
		break;
	case PEERBACK__REQUEST__OP_MASTERKEY_GET:
		rc = do_masterkey_get(conn, req);
		break;
	case PEERBACK__REQUEST__OP_BACKUP_LIST:
		rc = do_backup_list(conn, req);
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
	if (rc != 0)
		pb__host_reply_error(conn, req->id, rc);
	pb__envelope_free(env);
}
