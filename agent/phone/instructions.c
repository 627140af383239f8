/* Remote instructions, carried out by the phone at its next connection:
 * delete a virtual SIM (a lost phone), export one sealed to another device,
 * install one exported to this device. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "peerback/kinds.h"
#include "agent/imd/imd.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

#define SIM_PATH "sim/profiles.csv"
#define SIM_FILE_MAX (16u << 20)

struct sim_rows {
	pb_item_t *items;
	uint8_t **copies;
	char **ids;
	size_t n, cap;
};

static int keep_row(void *arg, const pb_item_t *it)
{
	struct sim_rows *r = arg;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		pb_item_t *a = realloc(r->items, cap * sizeof(*a));
		uint8_t **b;
		char **c;

		if (a == NULL)
			return PB_ENOMEM;
		r->items = a;
		b = realloc(r->copies, cap * sizeof(*b));
		if (b == NULL)
			return PB_ENOMEM;
		r->copies = b;
		c = realloc(r->ids, cap * sizeof(*c));
		if (c == NULL)
			return PB_ENOMEM;
		r->ids = c;
		r->cap = cap;
	}
	r->copies[r->n] = malloc(it->len ? it->len : 1);
	r->ids[r->n] = strdup(it->id);
	if (r->copies[r->n] == NULL || r->ids[r->n] == NULL)
		return PB_ENOMEM;
	memcpy(r->copies[r->n], it->data, it->len);
	r->items[r->n] = *it;
	r->items[r->n].data = r->copies[r->n];
	r->items[r->n].id = r->ids[r->n];
	r->items[r->n].path = SIM_PATH;
	r->items[r->n].file = NULL;
	r->n++;
	return 0;
}

static void free_rows(struct sim_rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		sodium_memzero(r->copies[i], r->items[i].len);
		free(r->copies[i]);
		free(r->ids[i]);
	}
	free(r->items);
	free(r->copies);
	free(r->ids);
	memset(r, 0, sizeof(*r));
}

/* The phone's SIM profiles, one item a row (header included in each). */
static int read_rows(const char *device_dir, struct sim_rows *rows)
{
	const pb_codec_t *codec = pb_codec_for(SIM_PATH);
	char path[4096];
	uint8_t *buf;
	size_t len;
	int rc;

	memset(rows, 0, sizeof(*rows));
	if (codec == NULL)
		return PB_EUNSUPPORTED;
	if ((rc = pb__path_join(path, sizeof(path), device_dir, SIM_PATH)) != 0)
		return rc;
	rc = pb__read_file(path, SIM_FILE_MAX, &buf, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc != 0)
		return rc;
	rc = codec->split(SIM_PATH, buf, len, keep_row, rows);
	sodium_memzero(buf, len);
	free(buf);
	return rc;
}

static int find_row(const struct sim_rows *rows, const char *iccid)
{
	char id[64];

	snprintf(id, sizeof(id), "sim/%s", iccid);
	for (size_t i = 0; i < rows->n; i++)
		if (strcmp(rows->items[i].id, id) == 0)
			return (int)i;
	return -1;
}

static int delete_vsim(const char *device_dir, const char *iccid, char *msg, size_t cap)
{
	const pb_codec_t *codec = pb_codec_for(SIM_PATH);
	struct sim_rows rows;
	pb_buf_t out = { 0 };
	char path[4096];
	int rc, k;

	if ((rc = read_rows(device_dir, &rows)) != 0)
		return rc;
	k = find_row(&rows, iccid);
	if (k < 0) {
		snprintf(msg, cap, "virtual SIM %s was not on this phone", iccid);
		free_rows(&rows);
		return 0;
	}
	memmove(&rows.items[k], &rows.items[k + 1], (rows.n - (size_t)k - 1) * sizeof(rows.items[0]));
	/* The row's copy and id stay in their arrays and are freed with them. */
	{
		uint8_t *c = rows.copies[k];
		char *i = rows.ids[k];
		size_t l = rows.n - (size_t)k - 1;

		memmove(&rows.copies[k], &rows.copies[k + 1], l * sizeof(rows.copies[0]));
		memmove(&rows.ids[k], &rows.ids[k + 1], l * sizeof(rows.ids[0]));
		rows.copies[rows.n - 1] = c;
		rows.ids[rows.n - 1] = i;
		rows.items[rows.n - 1].len = 0;
	}
	rc = pb__path_join(path, sizeof(path), device_dir, SIM_PATH);
	if (rc == 0 && rows.n == 1) {
		/* That was the last profile. */
		if (unlink(path) != 0)
			rc = -errno;
	} else if (rc == 0) {
		rc = codec->join(SIM_PATH, rows.items, rows.n - 1, &out);
		if (rc == 0)
			rc = pb__write_file_atomic(path, out.data, out.len, 0600);
	}
	if (rc == 0)
		snprintf(msg, cap, "deleted virtual SIM %s", iccid);
	pb_buf_free(&out);
	free_rows(&rows);
	return rc;
}

static int export_vsim(const char *device_dir, const Peerback__Instruction *in, uint8_t **sealed, size_t *slen,
		       char *msg, size_t cap)
{
	struct sim_rows rows;
	int rc, k;

	if (in->peer_static_pk.len != 32)
		return PB_EENV_MALFORMED;
	if ((rc = read_rows(device_dir, &rows)) != 0)
		return rc;
	k = find_row(&rows, in->iccid);
	if (k < 0) {
		free_rows(&rows);
		snprintf(msg, cap, "no virtual SIM %s on this phone", in->iccid);
		return PB_ENOTFOUND;
	}
	*slen = rows.items[k].len + crypto_box_SEALBYTES;
	*sealed = malloc(*slen);
	if (*sealed == NULL) {
		free_rows(&rows);
		return PB_ENOMEM;
	}
	/* Only the destination device can open it: the host cannot. */
	crypto_box_seal(*sealed, rows.items[k].data, rows.items[k].len, in->peer_static_pk.data);
	snprintf(msg, cap, "exported virtual SIM %s", in->iccid);
	free_rows(&rows);
	return 0;
}

static int install_vsim(const char *home, const char *device_dir, const Peerback__Instruction *in, char *msg,
			size_t cap)
{
	const pb_codec_t *codec = pb_codec_for(SIM_PATH);
	struct sim_rows got, have;
	pb_device_writer_t *w = NULL;
	pb_identity_t id;
	uint8_t *plain;
	size_t plen;
	int rc;

	if (in->payload.len <= crypto_box_SEALBYTES || in->payload.len > SIM_FILE_MAX)
		return PB_EENV_MALFORMED;
	if ((rc = pb__identity_load(home, &id)) != 0)
		return rc;
	plen = in->payload.len - crypto_box_SEALBYTES;
	plain = malloc(plen);
	if (plain == NULL) {
		pb__identity_wipe(&id);
		return PB_ENOMEM;
	}
	rc = crypto_box_seal_open(plain, in->payload.data, in->payload.len, id.static_pk, id.static_sk) == 0
		     ? 0
		     : PB_ENOISE_DECRYPT;
	pb__identity_wipe(&id);
	memset(&got, 0, sizeof(got));
	if (rc == 0)
		rc = codec->split(SIM_PATH, plain, plen, keep_row, &got);
	/* Exactly the profile announced, valid by the SIM rules. */
	if (rc == 0 && (got.n != 1 || find_row(&got, in->iccid) != 0))
		rc = PB_EDATA_FIELD;
	if (rc == 0)
		rc = read_rows(device_dir, &have);
	else
		memset(&have, 0, sizeof(have));
	if (rc == 0 && (rc = pb_device_writer_open(device_dir, &w)) == 0) {
		got.items[0].seq = ((uint64_t)1 << 32) + have.n;
		if (find_row(&have, in->iccid) >= 0)
			got.items[0].seq = have.items[find_row(&have, in->iccid)].seq;
		rc = pb_device_writer_add(w, &got.items[0]);
		if (rc == 0)
			rc = pb_device_writer_commit(w);
		pb_device_writer_free(w);
	}
	if (rc == 0)
		snprintf(msg, cap, "installed virtual SIM %s", in->iccid);
	free_rows(&got);
	free_rows(&have);
	sodium_memzero(plain, plen);
	free(plain);
	return rc;
}

static int ack(pb_client_t *c, uint64_t *next_id, const Peerback__Instruction *in, int rc, const char *msg,
	       const uint8_t *payload, size_t plen)
{
	Peerback__Request req;
	Peerback__InstructionAck a;
	pb_envelope_t *out;
	int r;

	peerback__request__init(&req);
	peerback__instruction_ack__init(&a);
	a.id = in->id;
	a.ok = rc == 0;
	a.code = rc;
	a.message = (char *)(msg[0] ? msg : pb_strerror(rc));
	a.payload.data = (uint8_t *)payload;
	a.payload.len = plen;
	req.id = (*next_id)++;
	req.op_case = PEERBACK__REQUEST__OP_INSTRUCTION_ACK;
	req.instruction_ack = &a;
	r = pb__phone_call(c, &req, &out);
	if (r == 0)
		pb__envelope_free(out);
	return r;
}

int pb_phone_instructions(pb_client_t *c, const char *home, const char *device_dir,
			  void (*report)(void *arg, const char *op, int rc, const char *message), void *arg)
{
	Peerback__Request req;
	Peerback__InstructionList il;
	pb_envelope_t *env;
	pb_account_t acct;
	uint64_t next_id = 1000;
	int rc, done = 0;

	if ((rc = pb__account_load(home, &acct)) != 0)
		return rc;
	peerback__request__init(&req);
	peerback__instruction_list__init(&il);
	req.id = next_id++;
	req.op_case = PEERBACK__REQUEST__OP_INSTRUCTION_LIST;
	req.instruction_list = &il;
	if ((rc = pb__phone_call(c, &req, &env)) != 0)
		return rc;
	if (env->reply->op_case != PEERBACK__REPLY__OP_INSTRUCTIONS) {
		pb__envelope_free(env);
		return PB_EENV_MALFORMED;
	}
	for (size_t i = 0; i < env->reply->instructions->n_instructions && rc == 0; i++) {
		const Peerback__Instruction *in = env->reply->instructions->instructions[i];
		uint8_t *sealed = NULL;
		size_t slen = 0;
		char msg[256] = "";
		int r;

		/* Only the phone's own account or a linked sub-account may be
		 * the other side of a copy. */
		if (in->peer_account != NULL && in->peer_account[0] != 0 && strcmp(in->peer_account, acct.account) != 0) {
			bool ok = false;

			if (pb__imd_linked(acct.imd_addr, acct.imd_key, acct.account, in->peer_account, &ok) != 0 || !ok) {
				r = PB_EACCT_NOT_LINKED;
				snprintf(msg, sizeof(msg), "account %s is not linked to %s", in->peer_account,
					 acct.account);
				goto answer;
			}
		}
		if (in->op == NULL || in->iccid == NULL) {
			r = PB_EENV_MALFORMED;
		} else if (strcmp(in->op, "delete-vsim") == 0) {
			r = delete_vsim(device_dir, in->iccid, msg, sizeof(msg));
		} else if (strcmp(in->op, "export-vsim") == 0) {
			r = export_vsim(device_dir, in, &sealed, &slen, msg, sizeof(msg));
		} else if (strcmp(in->op, "install-vsim") == 0) {
			r = install_vsim(home, device_dir, in, msg, sizeof(msg));
		} else {
			r = PB_EINSTR_REFUSED;
			snprintf(msg, sizeof(msg), "unknown instruction %s", in->op);
		}
answer:
		if (report != NULL)
			report(arg, in->op != NULL ? in->op : "?", r, msg[0] ? msg : pb_strerror(r));
		rc = ack(c, &next_id, in, r, msg, sealed, slen);
		free(sealed);
		done++;
	}
	pb__envelope_free(env);
	return rc == 0 ? done : rc;
}

/* The active SIM identity: ICCID and MSISDN of the first profile in the
 * phone's SIM file. PB_ENOTFOUND when the phone has none. */
int pb__sim_identity(const char *device_dir, char *iccid, size_t icap, char *msisdn, size_t mcap)
{
	struct sim_rows rows;
	const char *data, *nl, *row;
	int rc, col_iccid = -1, col_msisdn = -1, col = 0;

	iccid[0] = msisdn[0] = 0;
	if ((rc = read_rows(device_dir, &rows)) != 0)
		return rc;
	if (rows.n == 0) {
		free_rows(&rows);
		return PB_ENOTFOUND;
	}
	/* Each row item is the header line and the row line. */
	data = (const char *)rows.items[0].data;
	nl = memchr(data, '\n', rows.items[0].len);
	if (nl == NULL) {
		free_rows(&rows);
		return PB_EDATA_FORMAT;
	}
	for (const char *p = data; p < nl; col++) {
		const char *e = memchr(p, ',', (size_t)(nl - p));
		size_t n = (size_t)((e != NULL ? e : nl) - p);

		if (n == 5 && strncasecmp(p, "iccid", 5) == 0)
			col_iccid = col;
		if (n == 6 && strncasecmp(p, "msisdn", 6) == 0)
			col_msisdn = col;
		p = e != NULL ? e + 1 : nl;
	}
	row = nl + 1;
	col = 0;
	for (const char *p = row; p <= data + rows.items[0].len; col++) {
		const char *end = data + rows.items[0].len;
		const char *e = memchr(p, ',', (size_t)(end - p));
		size_t n = (size_t)((e != NULL ? e : end) - p);

		while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
			n--;
		if (col == col_iccid && n < icap) {
			memcpy(iccid, p, n);
			iccid[n] = 0;
		}
		if (col == col_msisdn && n < mcap) {
			memcpy(msisdn, p, n);
			msisdn[n] = 0;
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	free_rows(&rows);
	return iccid[0] != 0 ? 0 : PB_ENOTFOUND;
}
