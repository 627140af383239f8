/* Instructions for a device (agent/host/hostdb.c holds them): the list a
 * phone asks for at each connection, and its answers, told to the
 * embedder. On the host's loop, like the rest of a connection's answers
 * (agent/host/requests.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peerback.h"
#include "peerback/store.h"
#include "agent/host/host.h"
#include "agent/util/fsutil.h"

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

int pb__host_instruction_list(pb_host_conn_t *conn, const Peerback__Request *req)
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
		pb__host_send_reply(conn, &rep);
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

int pb__host_instruction_ack(pb_host_conn_t *conn, const Peerback__Request *req)
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
	pb__host_reply_ok(conn, req->id);
	return 0;
}
