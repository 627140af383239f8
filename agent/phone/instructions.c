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

/* --- Copies between devices ----------------------------------------------------
 *
 * The host names the other device of a copy and passes on that device's
 * certificate; it could name any key it likes, so the phone trusts only
 * what the account service signed: the certificate must name the device
 * the instruction names, be valid now, belong to this account or a linked
 * one, and not be the host's own. The profile is sealed to the key in that
 * certificate, together with this phone's certificate and its signature
 * over the profile and the destination, so that the destination checks
 * the source the same way:
 *
 *   "PBV1" | cert length (2 bytes, big-endian) | packed certificate |
 *   Ed25519 signature (64) | profile rows (CSV)
 *
 * signed: "peerback/vsim" 0 | destination id | destination static key |
 *         ICCID 0 | profile rows */

#define VSIM_MAGIC "PBV1"
#define VSIM_LABEL "peerback/vsim"

int pb__vsim_parse(const uint8_t *plain, size_t len, const uint8_t **cert, size_t *cert_len, const uint8_t **sig,
		   const uint8_t **profile, size_t *profile_len)
{
	size_t n;

	if (len < 4 + 2 || memcmp(plain, VSIM_MAGIC, 4) != 0)
		return PB_EDATA_FORMAT;
	n = ((size_t)plain[4] << 8) | plain[5];
	if (n == 0 || n > PB_CERT_MAX || len - 6 < n || len - 6 - n <= crypto_sign_BYTES)
		return PB_EDATA_FORMAT;
	*cert = plain + 6;
	*cert_len = n;
	*sig = plain + 6 + n;
	*profile = plain + 6 + n + crypto_sign_BYTES;
	*profile_len = len - 6 - n - crypto_sign_BYTES;
	return 0;
}

int pb__vsim_peer_cert(const uint8_t service_pk[32], const uint8_t *blob, size_t len, const uint8_t *device,
		       size_t device_len, const uint8_t host_static[32], uint64_t now, Peerback__Certificate **out)
{
	Peerback__SignedBlob *b;
	int rc;

	*out = NULL;
	if (len == 0 || len > PB_CERT_MAX || device_len != PB_DEVICE_ID_LEN)
		return PB_EINSTR_UNVOUCHED;
	b = peerback__signed_blob__unpack(NULL, len, blob);
	if (b == NULL)
		return PB_EINSTR_UNVOUCHED;
	rc = pb__verify_cert(service_pk, b, now, out);
	peerback__signed_blob__free_unpacked(b, NULL);
	if (rc == PB_EACCT_CERT_EXPIRED)
		return rc;
	if (rc != 0)
		return PB_EINSTR_UNVOUCHED;
	/* The device the instruction names, and never the host itself: a
	 * host holds a genuine certificate of its own. */
	if (memcmp((*out)->device_id.data, device, PB_DEVICE_ID_LEN) != 0 ||
	    memcmp((*out)->static_pk.data, host_static, 32) == 0) {
		peerback__certificate__free_unpacked(*out, NULL);
		*out = NULL;
		return PB_EINSTR_UNVOUCHED;
	}
	return 0;
}

/* Checks the certificate of the other device of a copy: vouched for, and of
 * this account or a linked one. msg says why not. */
static int check_peer(const pb_account_t *acct, const uint8_t host_static[32], const uint8_t *blob, size_t len,
		      const ProtobufCBinaryData *device, Peerback__Certificate **out, char *msg, size_t cap)
{
	char hex[2 * PB_DEVICE_ID_LEN + 1] = "?";
	bool ok = false;
	int rc;

	if (device->len == PB_DEVICE_ID_LEN)
		pb__hex(device->data, PB_DEVICE_ID_LEN, hex);
	rc = pb__vsim_peer_cert(acct->imd_sign_pk, blob, len, device->data, device->len, host_static, pb__now(), out);
	if (rc == PB_EACCT_CERT_EXPIRED) {
		snprintf(msg, cap,
			 "refused: the certificate of device %s has expired; connect that device to the host once, "
			 "then queue the copy again", hex);
		return PB_EINSTR_UNVOUCHED;
	}
	if (rc != 0) {
		snprintf(msg, cap, "refused: device %s is not vouched for by the account service", hex);
		return rc;
	}
	if (strcmp((*out)->account, acct->account) == 0)
		return 0;
	rc = pb__imd_linked(acct->imd_addr, acct->imd_key, acct->account, (*out)->account, &ok);
	if (rc == 0 && !ok)
		rc = PB_EACCT_NOT_LINKED;
	if (rc != 0) {
		snprintf(msg, cap, "refused: account %s of device %s is not linked to %s", (*out)->account, hex,
			 acct->account);
		peerback__certificate__free_unpacked(*out, NULL);
		*out = NULL;
	}
	return rc;
}

/* What the source signs: the destination and the profile. */
static uint8_t *vsim_signed_message(const uint8_t dest_id[PB_DEVICE_ID_LEN], const uint8_t dest_static[32],
				    const char *iccid, const uint8_t *profile, size_t plen, size_t *len)
{
	size_t l = sizeof(VSIM_LABEL), il = strlen(iccid) + 1;
	uint8_t *m;

	if (plen > SIM_FILE_MAX)
		return NULL;
	*len = l + PB_DEVICE_ID_LEN + 32 + il + plen;
	m = malloc(*len);
	if (m == NULL)
		return NULL;
	memcpy(m, VSIM_LABEL, l);
	memcpy(m + l, dest_id, PB_DEVICE_ID_LEN);
	memcpy(m + l + PB_DEVICE_ID_LEN, dest_static, 32);
	memcpy(m + l + PB_DEVICE_ID_LEN + 32, iccid, il);
	memcpy(m + l + PB_DEVICE_ID_LEN + 32 + il, profile, plen);
	return m;
}

static int export_vsim(const char *home, const char *device_dir, const pb_account_t *acct,
		       const uint8_t host_static[32], const Peerback__Instruction *in, uint8_t **sealed,
		       size_t *slen, char *msg, size_t cap)
{
	Peerback__Certificate *dest = NULL;
	struct sim_rows rows;
	pb_identity_t id;
	uint8_t *plain = NULL, *m;
	size_t plen = 0, mlen;
	int rc, k;

	rc = check_peer(acct, host_static, in->payload.data, in->payload.len, &in->peer_device, &dest, msg, cap);
	if (rc != 0)
		return rc;
	if ((rc = read_rows(device_dir, &rows)) != 0)
		goto out_free_cert;
	k = find_row(&rows, in->iccid);
	if (k < 0) {
		snprintf(msg, cap, "no virtual SIM %s on this phone", in->iccid);
		rc = PB_ENOTFOUND;
		goto out_free_rows;
	}
	if ((rc = pb__identity_load(home, &id)) != 0)
		goto out_free_rows;
	m = vsim_signed_message(dest->device_id.data, dest->static_pk.data, in->iccid, rows.items[k].data,
				rows.items[k].len, &mlen);
	plen = 6 + acct->cert_len + crypto_sign_BYTES + rows.items[k].len;
	plain = m != NULL ? malloc(plen) : NULL;
	*slen = plen + crypto_box_SEALBYTES;
	*sealed = plain != NULL ? malloc(*slen) : NULL;
	if (*sealed == NULL || acct->cert_len > PB_CERT_MAX) {
		rc = PB_ENOMEM;
		free(*sealed);
		*sealed = NULL;
		*slen = 0;
	} else {
		memcpy(plain, VSIM_MAGIC, 4);
		plain[4] = (uint8_t)(acct->cert_len >> 8);
		plain[5] = (uint8_t)acct->cert_len;
		memcpy(plain + 6, acct->cert, acct->cert_len);
		crypto_sign_detached(plain + 6 + acct->cert_len, NULL, m, mlen, id.sign_sk);
		memcpy(plain + 6 + acct->cert_len + crypto_sign_BYTES, rows.items[k].data, rows.items[k].len);
		/* Only the device the service vouched for can open it: the
		 * host cannot. */
		crypto_box_seal(*sealed, plain, plen, dest->static_pk.data);
		snprintf(msg, cap, "exported virtual SIM %s", in->iccid);
	}
	pb__identity_wipe(&id);
	if (m != NULL) {
		sodium_memzero(m, mlen);
		free(m);
	}
	if (plain != NULL) {
		sodium_memzero(plain, plen);
		free(plain);
	}
out_free_rows:
	free_rows(&rows);
out_free_cert:
	peerback__certificate__free_unpacked(dest, NULL);
	return rc;
}

/* Opens a profile sealed to this device and checks who sealed it: *profile
 * points into *plain (free both with the length *plain_len). */
static int open_vsim(const pb_identity_t *id, const pb_account_t *acct, const uint8_t host_static[32],
		     const Peerback__Instruction *in, uint8_t **plain, size_t *plain_len, const uint8_t **profile,
		     size_t *profile_len, char *msg, size_t cap)
{
	Peerback__Certificate *src = NULL;
	const uint8_t *cert, *sig;
	size_t cert_len, mlen;
	uint8_t *m;
	int rc;

	*plain_len = in->payload.len - crypto_box_SEALBYTES;
	*plain = malloc(*plain_len);
	if (*plain == NULL)
		return PB_ENOMEM;
	if (crypto_box_seal_open(*plain, in->payload.data, in->payload.len, id->static_pk, id->static_sk) != 0)
		return PB_ENOISE_DECRYPT;
	rc = pb__vsim_parse(*plain, *plain_len, &cert, &cert_len, &sig, profile, profile_len);
	if (rc != 0) {
		snprintf(msg, cap, "refused: the profile for virtual SIM %s carries no source certificate", in->iccid);
		return PB_EINSTR_UNVOUCHED;
	}
	rc = check_peer(acct, host_static, cert, cert_len, &in->peer_device, &src, msg, cap);
	if (rc != 0)
		return rc;
	m = vsim_signed_message(id->device_id, id->static_pk, in->iccid, *profile, *profile_len, &mlen);
	if (m == NULL) {
		rc = PB_ENOMEM;
	} else if (crypto_sign_verify_detached(sig, m, mlen, src->sign_pk.data) != 0) {
		snprintf(msg, cap, "refused: the profile for virtual SIM %s is not signed by its source", in->iccid);
		rc = PB_EINSTR_UNVOUCHED;
	}
	free(m);
	peerback__certificate__free_unpacked(src, NULL);
	return rc;
}

static int install_vsim(const char *home, const char *device_dir, const pb_account_t *acct,
			const uint8_t host_static[32], const Peerback__Instruction *in, char *msg, size_t cap)
{
	const pb_codec_t *codec = pb_codec_for(SIM_PATH);
	struct sim_rows got, have;
	pb_device_writer_t *w = NULL;
	pb_identity_t id;
	const uint8_t *profile = NULL;
	uint8_t *plain = NULL;
	size_t plen = 0, prof_len = 0;
	int rc;

	if (in->payload.len <= crypto_box_SEALBYTES || in->payload.len > SIM_FILE_MAX)
		return PB_EENV_MALFORMED;
	if ((rc = pb__identity_load(home, &id)) != 0)
		return rc;
	rc = open_vsim(&id, acct, host_static, in, &plain, &plen, &profile, &prof_len, msg, cap);
	pb__identity_wipe(&id);
	memset(&got, 0, sizeof(got));
	if (rc == 0)
		rc = codec->split(SIM_PATH, profile, prof_len, keep_row, &got);
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
	if (plain != NULL) {
		sodium_memzero(plain, plen);
		free(plain);
	}
	return rc;
}

static int ack(pb_client_t *c, uint64_t *next_id, const Peerback__Instruction *in, int rc, const char *msg,
	       const uint8_t *payload, size_t plen)
{
	Peerback__Request req;
	Peerback__InstructionAck a;

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
	return pb__phone_call(c, &req, NULL);
}

int pb__phone_instructions(pb_client_t *c, const char *home, const char *device_dir,
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
	if ((rc = pb__phone_call_expect(c, &req, PEERBACK__REPLY__OP_INSTRUCTIONS, &env)) != 0)
		return rc;
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
			r = export_vsim(home, device_dir, &acct, c->sess.remote_static, in, &sealed, &slen, msg,
					sizeof(msg));
		} else if (strcmp(in->op, "install-vsim") == 0) {
			r = install_vsim(home, device_dir, &acct, c->sess.remote_static, in, msg, sizeof(msg));
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
