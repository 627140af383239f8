/* The phone's backup engine over an authenticated session with the host. */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "peerback/store.h"
#include "agent/backup/engine.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

typedef uint8_t name_t[PB_STORE_NAME_LEN];

#define OFFER_BATCH 1024              /* names per ChunkOffer */
#define OFFER_BYTES (8u << 20)        /* sealed bytes waiting for an offer */
#define COMMIT_BYTES (4u << 20)       /* bytes sent between commits */
#define COMMIT_SECONDS 1.0            /* or time between commits */
#define COMMIT_ITEMS 8192             /* items waiting for a commit */
#define FETCH_WINDOW 16               /* chunk requests in flight on restore */

/* --- Session -------------------------------------------------------------------- */

struct sess {
	pb_client_t c;
	uint64_t next_id;
	uint8_t host_pk[32]; /* the host's static key, which names it in the state */
};

static int sess_open(struct sess *s, const pb_engine_opts_t *o)
{
	pb_remembered_host_t host;
	char dev[4096];
	int rc;

	memset(s, 0, sizeof(*s));
	s->next_id = 100;
	rc = pb__phone_connect(o->home, o->host, o->timeout_ms > 0 ? o->timeout_ms : 30000, &s->c, &host);
	if (rc != 0)
		return rc;
	memcpy(s->host_pk, host.static_pk, sizeof(s->host_pk));
	/* Instructions the host queued are carried out at each connection. */
	if (o->device_dir != NULL)
		snprintf(dev, sizeof(dev), "%s", o->device_dir);
	else if (pb__path_join(dev, sizeof(dev), o->home, "device") != 0)
		return PB_ETOOBIG;
	rc = pb__phone_instructions(&s->c, o->home, dev, o->on_instruction, o->instruction_arg);
	if (rc < 0) {
		pb__client_close(&s->c);
		return rc;
	}
	return 0;
}

static void sess_close(struct sess *s)
{
	pb__client_close(&s->c);
}

static int sess_call(struct sess *s, Peerback__Request *req, pb_envelope_t **out)
{
	req->id = ++s->next_id;
	return pb__phone_call(&s->c, req, out);
}

static int sess_send(struct sess *s, Peerback__Request *req)
{
	pb_envelope_t env;

	req->id = ++s->next_id;
	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
	env.request = req;
	return pb__client_send(&s->c, &env);
}

/* The reply to request id, in order. */
static int sess_reply(struct sess *s, uint64_t id, pb_envelope_t **out)
{
	int peer = 0, rc = pb__client_recv(&s->c, out, &peer);

	if (rc == PB_EPEER_ERROR)
		return peer < 0 ? peer : PB_EPEER_ERROR;
	if (rc != 0)
		return rc;
	if ((*out)->body_case != PEERBACK__ENVELOPE__BODY_REPLY || (*out)->reply->id != id) {
		pb__envelope_free(*out);
		*out = NULL;
		return PB_EENV_UNEXPECTED;
	}
	if ((*out)->reply->op_case == PEERBACK__REPLY__OP_ERROR) {
		rc = (*out)->reply->error->code < 0 ? (*out)->reply->error->code : PB_EPEER_ERROR;
		pb__envelope_free(*out);
		*out = NULL;
		return rc;
	}
	return 0;
}

/* --- Master key ----------------------------------------------------------------- */

static int local_master(const char *home, uint8_t mk[PB_MASTERKEY_LEN])
{
	char path[4096];
	uint8_t *buf;
	size_t len;
	int rc;

	if ((rc = pb__path_join(path, sizeof(path), home, "master.key")) != 0)
		return rc;
	if ((rc = pb__read_file(path, 64, &buf, &len)) != 0)
		return rc;
	if (len != PB_MASTERKEY_LEN) {
		sodium_memzero(buf, len);
		free(buf);
		return PB_ESTORE_CORRUPT;
	}
	memcpy(mk, buf, PB_MASTERKEY_LEN);
	sodium_memzero(buf, len);
	free(buf);
	return 0;
}

static int save_master(const char *home, const uint8_t mk[PB_MASTERKEY_LEN], const uint8_t *wrapped, size_t wlen)
{
	char path[4096];
	int rc;

	if ((rc = pb__path_join(path, sizeof(path), home, "master.wrapped")) != 0 ||
	    (rc = pb__write_file_atomic(path, wrapped, wlen, 0600)) != 0)
		return rc;
	if ((rc = pb__path_join(path, sizeof(path), home, "master.key")) != 0)
		return rc;
	return pb__write_file_atomic(path, mk, PB_MASTERKEY_LEN, 0600);
}

/* A blob the host keeps for this phone (or dev): key NULL is the wrapped
 * master key. */
static int host_blob(struct sess *s, const ProtobufCBinaryData *dev, const char *key, uint8_t **blob, size_t *len)
{
	Peerback__Request req;
	Peerback__BlobGet get;
	pb_envelope_t *in;
	int rc;

	peerback__request__init(&req);
	peerback__blob_get__init(&get);
	if (dev != NULL)
		get.device = *dev;
	get.key = (char *)key;
	req.op_case = PEERBACK__REQUEST__OP_MASTERKEY_GET;
	req.masterkey_get = &get;
	rc = sess_call(s, &req, &in);
	if (rc != 0)
		return rc;
	if (in->reply->op_case != PEERBACK__REPLY__OP_BLOB || in->reply->blob.len > PB_STORE_BLOB_MAX) {
		pb__envelope_free(in);
		return PB_EENV_MALFORMED;
	}
	*blob = malloc(in->reply->blob.len ? in->reply->blob.len : 1);
	if (*blob == NULL) {
		pb__envelope_free(in);
		return PB_ENOMEM;
	}
	memcpy(*blob, in->reply->blob.data, in->reply->blob.len);
	*len = in->reply->blob.len;
	pb__envelope_free(in);
	return 0;
}

/* Stores val on the host under key (NULL: this phone's wrapped master key). */
static int blob_put_key(struct sess *s, const char *key, const uint8_t *val, size_t len)
{
	Peerback__Request req;
	Peerback__BlobPut put;
	pb_envelope_t *in;
	int rc;

	peerback__request__init(&req);
	peerback__blob_put__init(&put);
	if (key != NULL)
		put.key = (char *)key;
	put.value.data = (uint8_t *)val;
	put.value.len = len;
	req.op_case = PEERBACK__REQUEST__OP_MASTERKEY_PUT;
	req.masterkey_put = &put;
	rc = sess_call(s, &req, &in);
	if (rc == 0)
		pb__envelope_free(in);
	return rc;
}

static int put_master(struct sess *s, const uint8_t *wrapped, size_t len)
{
	return blob_put_key(s, NULL, wrapped, len);
}

/* The id of dev's latest snapshot on the host; PB_ESTORE_NOSNAP if none. */
static int sess_latest(struct sess *s, ProtobufCBinaryData dev, uint64_t *snap)
{
	Peerback__Request req;
	Peerback__SnapshotList sl;
	pb_envelope_t *in;
	int rc;

	*snap = 0;
	peerback__request__init(&req);
	peerback__snapshot_list__init(&sl);
	sl.device = dev;
	req.op_case = PEERBACK__REQUEST__OP_SNAPSHOT_LIST;
	req.snapshot_list = &sl;
	if ((rc = sess_call(s, &req, &in)) != 0)
		return rc;
	if (in->reply->op_case != PEERBACK__REPLY__OP_SNAPSHOTS) {
		pb__envelope_free(in);
		return PB_EENV_MALFORMED;
	}
	for (size_t i = 0; i < in->reply->snapshots->n_snapshots; i++) {
		const Peerback__SnapshotInfo *si = in->reply->snapshots->snapshots[i];
		if (*snap == 0 || si->snapshot > *snap)
			*snap = si->snapshot;
	}
	pb__envelope_free(in);
	return *snap == 0 ? PB_ESTORE_NOSNAP : 0;
}

/* Snapshot snap of dev: its sealed root, malloc'd. */
static int sess_snapshot(struct sess *s, ProtobufCBinaryData dev, uint64_t snap, uint8_t **blob, size_t *len)
{
	Peerback__Request req;
	Peerback__SnapshotGet sg;
	pb_envelope_t *in;
	int rc;

	peerback__request__init(&req);
	peerback__snapshot_get__init(&sg);
	sg.device = dev;
	sg.snapshot = snap;
	req.op_case = PEERBACK__REQUEST__OP_SNAPSHOT_GET;
	req.snapshot_get = &sg;
	if ((rc = sess_call(s, &req, &in)) != 0)
		return rc;
	if (in->reply->op_case != PEERBACK__REPLY__OP_BLOB) {
		pb__envelope_free(in);
		return PB_EENV_MALFORMED;
	}
	*blob = malloc(in->reply->blob.len ? in->reply->blob.len : 1);
	if (*blob == NULL) {
		pb__envelope_free(in);
		return PB_ENOMEM;
	}
	memcpy(*blob, in->reply->blob.data, in->reply->blob.len);
	*len = in->reply->blob.len;
	pb__envelope_free(in);
	return 0;
}

/* One master key per account, wrapped with the account's one recovery
 * passphrase: the first device to back up makes it, every later device
 * takes it (unwrapped with that passphrase, so a second passphrase cannot
 * start) and gives the host the same wrap under its own name. */

/* The wrapped key of the account's device with the latest backup, other
 * than this phone; PB_ENOTFOUND when none has one. */
static int account_blob(struct sess *s, const uint8_t own[16], uint8_t **blob, size_t *len)
{
	Peerback__Request req;
	Peerback__BackupList bl;
	pb_envelope_t *in;
	ProtobufCBinaryData dev = { 0, NULL };
	uint8_t best_id[16];
	int64_t best = -1;
	int rc;

	peerback__request__init(&req);
	peerback__backup_list__init(&bl);
	req.op_case = PEERBACK__REQUEST__OP_BACKUP_LIST;
	req.backup_list = &bl;
	if ((rc = sess_call(s, &req, &in)) != 0)
		return rc;
	if (in->reply->op_case != PEERBACK__REPLY__OP_BACKUPS) {
		pb__envelope_free(in);
		return PB_EENV_MALFORMED;
	}
	for (size_t i = 0; i < in->reply->backups->n_devices; i++) {
		const Peerback__DeviceBackups *d = in->reply->backups->devices[i];

		if (d->device.len != sizeof(best_id) || memcmp(d->device.data, own, sizeof(best_id)) == 0)
			continue;
		if (d->latest > best) {
			best = d->latest;
			memcpy(best_id, d->device.data, sizeof(best_id));
		}
	}
	pb__envelope_free(in);
	if (best < 0)
		return PB_ENOTFOUND;
	dev.data = best_id;
	dev.len = sizeof(best_id);
	return host_blob(s, &dev, NULL, blob, len);
}

static int read_wrapped(const char *home, uint8_t **blob, size_t *len)
{
	char path[4096];
	int rc;

	if ((rc = pb__path_join(path, sizeof(path), home, "master.wrapped")) != 0)
		return rc;
	return pb__read_file(path, PB_STORE_BLOB_MAX, blob, len);
}

/* True when dev is this phone (dev NULL is). */
static bool own_device(const pb_engine_opts_t *o, const ProtobufCBinaryData *dev, uint8_t own[16])
{
	pb_identity_t id;

	if (pb__identity_load(o->home, &id) != 0) {
		memset(own, 0, 16);
		return dev == NULL;
	}
	memcpy(own, id.device_id, 16);
	pb__identity_wipe(&id);
	return dev == NULL || (dev->len == 16 && memcmp(dev->data, own, 16) == 0);
}

/* Another device's key for reading its backups: this phone's when the host
 * holds the same wrap for it (one key per account), else its own wrap
 * opened with the passphrase, used for this restore only and never stored:
 * restoring from another device does not change this phone's key. */
static int other_device_key(struct sess *s, const pb_engine_opts_t *o, const ProtobufCBinaryData *dev,
			    uint8_t mk[PB_MASTERKEY_LEN])
{
	uint8_t *theirs = NULL, *ours = NULL;
	size_t tlen = 0, olen = 0;
	int rc = host_blob(s, dev, NULL, &theirs, &tlen);

	if (rc != 0)
		return rc == PB_ENOTFOUND ? PB_ESTORE_NOSNAP : rc;
	if (read_wrapped(o->home, &ours, &olen) == 0 && olen == tlen && sodium_memcmp(ours, theirs, tlen) == 0) {
		free(ours);
		free(theirs);
		return 0; /* mk already holds it */
	}
	free(ours);
	if (o->passphrase == NULL)
		rc = PB_ESTORE_NOMASTER;
	else
		rc = pb_masterkey_unwrap(theirs, tlen, o->passphrase, mk);
	free(theirs);
	return rc;
}

/* The master key for reading dev's backups (dev NULL: this phone's), or
 * with create for this phone's backup: the local one; else the host's
 * wrap for this phone, else (a new phone) the account's, unwrapped with
 * the passphrase and kept; else, for the account's first backup, a new
 * one wrapped with the passphrase and given to the host. */
static int master_key(struct sess *s, const pb_engine_opts_t *o, const ProtobufCBinaryData *dev, bool create,
		      uint8_t mk[PB_MASTERKEY_LEN])
{
	uint8_t *blob = NULL, wrapped[PB_MASTERKEY_WRAPPED_LEN], own_id[16];
	size_t len = 0;
	pb_pwhash_params_t params;
	bool own = own_device(o, dev, own_id);
	bool adopted = false;
	int rc = local_master(o->home, mk);

	if (rc == 0) {
		if (!create)
			return own ? 0 : other_device_key(s, o, dev, mk);
		/* Make sure the host holds the wrapped key for a new phone, and
		 * that it is this phone's: another one (swapped on the host, or
		 * written by a device that took this namespace) would leave the
		 * backups there unrecoverable with the phone's passphrase. */
		uint8_t *have = NULL;
		size_t have_len = 0;

		rc = host_blob(s, NULL, NULL, &have, &have_len);
		if (rc != 0 && rc != PB_ENOTFOUND)
			return rc;
		if ((rc = read_wrapped(o->home, &blob, &len)) == 0)
			rc = have == NULL ? put_master(s, blob, len)
			     : have_len == len && sodium_memcmp(have, blob, len) == 0 ? 0
										: PB_ESTORE_MASTER_MISMATCH;
		free(have);
		free(blob);
		return rc == -ENOENT ? PB_ESTORE_NOMASTER : rc;
	}
	if (rc != -ENOENT)
		return rc;
	/* No key here yet. This phone's own wrap on the host comes first. */
	rc = host_blob(s, NULL, NULL, &blob, &len);
	if (rc == PB_ENOTFOUND) {
		/* A new phone takes the account's key (from the device it
		 * restores, or any that backed up): one passphrase for all. */
		rc = !own ? host_blob(s, dev, NULL, &blob, &len) : account_blob(s, own_id, &blob, &len);
		if (rc == PB_ENOTFOUND && !own)
			rc = account_blob(s, own_id, &blob, &len);
		adopted = rc == 0;
	}
	if (rc == 0) {
		if (o->passphrase == NULL) {
			free(blob);
			return PB_ESTORE_NOMASTER;
		}
		rc = pb_masterkey_unwrap(blob, len, o->passphrase, mk);
		if (rc == 0)
			rc = save_master(o->home, mk, blob, len);
		/* The account's key is now this phone's too: the host keeps the
		 * same wrap under this phone's name. */
		if (rc == 0 && adopted && create)
			rc = put_master(s, blob, len);
		free(blob);
		if (rc == 0 && !own)
			rc = other_device_key(s, o, dev, mk);
		return rc;
	}
	if (rc != PB_ENOTFOUND || !create)
		return rc == PB_ENOTFOUND ? PB_ESTORE_NOSNAP : rc;
	if (o->passphrase == NULL || o->passphrase[0] == 0)
		return PB_ESTORE_NOMASTER;
	/* The rule applies where a passphrase is set, never where one opens an
	 * existing wrap. */
	if ((rc = pb_passphrase_check(o->passphrase)) != 0)
		return rc;
	pb_masterkey_generate(mk);
	params = o->wrap_params != NULL ? *o->wrap_params : pb_pwhash_params_moderate();
	rc = pb_masterkey_wrap(mk, o->passphrase, &params, wrapped);
	if (rc == 0)
		rc = put_master(s, wrapped, sizeof(wrapped));
	if (rc == 0)
		rc = save_master(o->home, mk, wrapped, sizeof(wrapped));
	if (rc != 0)
		sodium_memzero(mk, PB_MASTERKEY_LEN);
	return rc;
}

/* The host-side key of a SIM identity: a keyed hash the host cannot invert. */
static void sim_key(const pb_backup_keys_t *keys, const char *iccid, const char *msisdn, char out[4 + 64 + 1])
{
	crypto_generichash_state st;
	uint8_t h[32];

	crypto_generichash_init(&st, keys->name, sizeof(keys->name), sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)"peerback/sim\0", 13);
	crypto_generichash_update(&st, (const uint8_t *)iccid, strlen(iccid) + 1);
	crypto_generichash_update(&st, (const uint8_t *)msisdn, strlen(msisdn) + 1);
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(out, "sim-", 4);
	sodium_bin2hex(out + 4, 65, h, sizeof(h));
}


/* --- Progress ------------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct prog {
	pb_progress_t p;
	const pb_engine_opts_t *o;
	double last;
};

static void progress(struct prog *pr, bool final)
{
	double t = now_s();

	if (pr->o->progress == NULL || (!final && t - pr->last < 0.1))
		return;
	pr->last = t;
	pr->p.final = final;
	pr->o->progress(pr->o->progress_arg, &pr->p);
}

/* --- Backup --------------------------------------------------------------------- */

struct pending_item {
	pb_manifest_item_t m;
	char *id, *path;
	name_t *names;
};

struct backup {
	const pb_engine_opts_t *o;
	struct sess s;
	pb_backup_keys_t keys;
	pb_cdc_t cdc;
	pb_backup_state_t *st;
	pb_manifest_writer_t *mw;
	struct prog pr;
	pb_engine_result_t *res;
	/* Sealed chunks waiting for an offer. */
	name_t *qnames;
	uint8_t **qct;
	size_t *qlen;
	size_t qn, qbytes;
	/* Names offered since the last commit (committed at the next receipt). */
	name_t *offered;
	size_t noffered, cap_offered;
	uint64_t bytes_since_commit;
	double last_commit;
	/* Items whose chunks wait for the next commit. */
	struct pending_item *items;
	size_t nitems, cap_items;
	/* The item being chunked. */
	name_t *cur;
	size_t ncur, cap_cur;
	crypto_generichash_state hash;
	uint8_t *ct;
	int err;
	/* Unchanged items touched in the state since the last commit, in one
	 * open transaction. */
	size_t touched;
	/* The multi-item file being walked, and the largest seq it gave so
	 * far (a file that then fails to parse keeps those items). */
	char *file;
	bool file_gave;
	uint64_t file_seq;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	while (ncap < need)
		ncap *= 2;
	np = realloc(*p, ncap * elem);
	if (np == NULL)
		return PB_ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

static int offer_batch(struct backup *b)
{
	Peerback__Request req;
	Peerback__ChunkOffer offer;
	pb_envelope_t *in = NULL;
	int rc;

	if (b->qn == 0)
		return 0;
	peerback__request__init(&req);
	peerback__chunk_offer__init(&offer);
	offer.names.data = (uint8_t *)b->qnames;
	offer.names.len = b->qn * PB_STORE_NAME_LEN;
	req.op_case = PEERBACK__REQUEST__OP_CHUNK_OFFER;
	req.chunk_offer = &offer;
	rc = sess_call(&b->s, &req, &in);
	if (rc != 0)
		goto out_free;
	if (in->reply->op_case != PEERBACK__REPLY__OP_CHUNK_WANT) {
		rc = PB_EENV_MALFORMED;
		goto out_free;
	}
	for (size_t i = 0; i < in->reply->chunk_want->n_missing && rc == 0; i++) {
		uint32_t k = in->reply->chunk_want->missing[i];
		Peerback__ChunkPut put;

		if (k >= b->qn) {
			rc = PB_EENV_MALFORMED;
			break;
		}
		peerback__request__init(&req);
		peerback__chunk_put__init(&put);
		put.name.data = b->qnames[k];
		put.name.len = PB_STORE_NAME_LEN;
		put.data.data = b->qct[k];
		put.data.len = b->qlen[k];
		req.op_case = PEERBACK__REQUEST__OP_CHUNK_PUT;
		req.chunk_put = &put;
		/* A dry run counts what it would send. */
		if (!b->o->dry_run)
			rc = sess_send(&b->s, &req);
		b->res->chunks_sent++;
		b->res->bytes_sent += b->qlen[k];
		b->bytes_since_commit += b->qlen[k];
	}
	b->pr.p.chunks_sent = b->res->chunks_sent;
	b->pr.p.bytes_sent = b->res->bytes_sent;
	/* Every offered name is on the host after the next commit: either it
	 * was there already, or it was just sent. */
	if (rc == 0 && (rc = grow((void **)&b->offered, &b->cap_offered, b->noffered + b->qn, sizeof(name_t))) == 0) {
		memcpy(b->offered + b->noffered, b->qnames, b->qn * sizeof(name_t));
		b->noffered += b->qn;
	}
out_free:
	pb__envelope_free(in);
	for (size_t i = 0; i < b->qn; i++)
		free(b->qct[i]);
	b->qn = 0;
	b->qbytes = 0;
	return rc;
}

static int record_item(struct backup *b, const struct pending_item *it)
{
	return pb_backup_state_record(b->st, &it->m);
}

/* Ends the transaction of touched unchanged items. */
static int touch_end(struct backup *b)
{
	if (b->touched == 0)
		return 0;
	b->touched = 0;
	return pb_backup_state_end(b->st);
}

/* Marks an unchanged item as part of this run's snapshot; many to a
 * transaction, as a re-backup touches every item. */
static int touch_item(struct backup *b, const pb_manifest_item_t *m)
{
	int rc;

	if (b->o->dry_run)
		return 0;
	if (b->touched == 0 && (rc = pb_backup_state_begin(b->st)) != 0)
		return rc;
	b->touched++;
	if ((rc = pb_backup_state_touch(b->st, m)) != 0)
		return rc;
	return b->touched >= 8192 ? touch_end(b) : 0;
}

static void free_pending(struct pending_item *it)
{
	free(it->id);
	free(it->path);
	free(it->names);
}

/* Makes everything sent durable on the host, then records it locally. */
static int commit(struct backup *b)
{
	Peerback__Request req;
	Peerback__Commit c;
	pb_envelope_t *in = NULL;
	int rc = offer_batch(b);

	if (rc == 0)
		rc = touch_end(b);
	if (rc != 0 || b->o->dry_run) {
		/* A dry run committed nothing: the phone records nothing. */
		for (size_t i = 0; b->o->dry_run && i < b->nitems; i++)
			free_pending(&b->items[i]);
		if (b->o->dry_run)
			b->nitems = b->noffered = 0;
		return rc;
	}
	peerback__request__init(&req);
	peerback__commit__init(&c);
	req.op_case = PEERBACK__REQUEST__OP_COMMIT;
	req.commit = &c;
	rc = sess_call(&b->s, &req, &in);
	if (rc != 0)
		return rc;
	pb__envelope_free(in);
	/* The receipt: from here on these chunks are never sent again. */
	rc = pb_backup_state_mark_committed(b->st, (const name_t *)b->offered, b->noffered);
	if (rc != 0)
		return rc;
	b->noffered = 0;
	rc = pb_backup_state_begin(b->st);
	for (size_t i = 0; i < b->nitems && rc == 0; i++)
		rc = record_item(b, &b->items[i]);
	if (rc == 0)
		rc = pb_backup_state_end(b->st);
	for (size_t i = 0; i < b->nitems; i++)
		free_pending(&b->items[i]);
	b->nitems = 0;
	b->pr.p.bytes_committed = b->res->bytes_sent;
	b->bytes_since_commit = 0;
	b->last_commit = now_s();
	return rc;
}

/* Queues a sealed chunk (takes ct); sends a batch when it is full. */
static int enqueue(struct backup *b, const uint8_t name[PB_STORE_NAME_LEN], uint8_t *ct, size_t len)
{
	int rc;

	if (pb_backup_state_is_committed(b->st, name)) {
		free(ct);
		return 0;
	}
	if (b->qnames == NULL) {
		b->qnames = malloc(OFFER_BATCH * sizeof(name_t));
		b->qct = malloc(OFFER_BATCH * sizeof(uint8_t *));
		b->qlen = malloc(OFFER_BATCH * sizeof(size_t));
		if (b->qnames == NULL || b->qct == NULL || b->qlen == NULL) {
			free(ct);
			return PB_ENOMEM;
		}
	}
	memcpy(b->qnames[b->qn], name, PB_STORE_NAME_LEN);
	b->qct[b->qn] = ct;
	b->qlen[b->qn] = len;
	b->qn++;
	b->qbytes += len;
	if (b->qn < OFFER_BATCH && b->qbytes < OFFER_BYTES)
		return 0;
	rc = offer_batch(b);
	if (rc == 0 && (b->bytes_since_commit >= COMMIT_BYTES ||
			(b->bytes_since_commit > 0 && now_s() - b->last_commit >= COMMIT_SECONDS)))
		rc = commit(b);
	return rc;
}

/* Seals one chunk of the current item. */
static int add_chunk(void *arg, const uint8_t *data, size_t len)
{
	struct backup *b = arg;
	uint8_t name[PB_STORE_NAME_LEN], *ct;
	size_t ct_len;
	int rc;

	crypto_generichash_update(&b->hash, data, len);
	ct = malloc(PB_CHUNK_CT_LEN_MAX(len));
	if (ct == NULL)
		return PB_ENOMEM;
	rc = pb_chunk_seal(&b->keys, data, len, name, ct, &ct_len);
	if (rc != 0) {
		free(ct);
		return rc;
	}
	if ((rc = grow((void **)&b->cur, &b->cap_cur, b->ncur + 1, sizeof(name_t))) != 0) {
		free(ct);
		return rc;
	}
	memcpy(b->cur[b->ncur++], name, PB_STORE_NAME_LEN);
	b->pr.p.bytes_done += len;
	rc = enqueue(b, name, ct, ct_len);
	progress(&b->pr, false); /* large items report as they go */
	return rc;
}

static int emit_manifest_chunk(void *arg, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	struct backup *b = arg;
	uint8_t *copy = malloc(len ? len : 1);

	if (copy == NULL)
		return PB_ENOMEM;
	memcpy(copy, ct, len);
	return enqueue(b, name, copy, len);
}

static int chunk_file(struct backup *b, const pb_item_t *it, uint64_t *size)
{
	int fd = open(it->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	int rc;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out_close;
	}
	*size = (uint64_t)st.st_size;
	if ((uint64_t)st.st_size <= PB_CDC_WHOLE_MAX) {
		uint8_t *buf = malloc((size_t)st.st_size + 1);
		size_t have = 0;

		if (buf == NULL) {
			rc = PB_ENOMEM;
			goto out_close;
		}
		while (have < (size_t)st.st_size) {
			ssize_t r = read(fd, buf + have, (size_t)st.st_size - have);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			have += (size_t)r;
		}
		*size = have;
		rc = add_chunk(b, buf, have);
		free(buf);
	} else {
		rc = pb_cdc_file(&b->cdc, fd, add_chunk, b);
	}
out_close:
	close(fd);
	return rc;
}

static int chunk_memory(struct backup *b, const uint8_t *data, size_t len)
{
	size_t off = 0;
	int rc = 0;

	if (len <= PB_CDC_WHOLE_MAX)
		return add_chunk(b, data, len);
	while (off < len && rc == 0) {
		size_t cut = pb_cdc_cut(&b->cdc, data + off, len - off, true);

		rc = add_chunk(b, data + off, cut);
		off += cut;
	}
	return rc;
}

static void item_hash(const pb_backup_keys_t *keys, const uint8_t *data, size_t len, uint8_t out[32])
{
	crypto_generichash(out, 32, data, len, keys->name, sizeof(keys->name));
}

static void file_forget(struct backup *b)
{
	free(b->file);
	b->file = NULL;
	b->file_gave = false;
	b->file_seq = 0;
}

/* Remembers how far the walk got in a multi-item file (items come by seq). */
static int file_note(struct backup *b, const pb_item_t *it)
{
	if (it->data == NULL || it->path == NULL)
		return 0;
	if (b->file == NULL || strcmp(b->file, it->path) != 0) {
		file_forget(b);
		if ((b->file = strdup(it->path)) == NULL)
			return PB_ENOMEM;
	}
	b->file_gave = true;
	if (it->seq > b->file_seq)
		b->file_seq = it->seq;
	return 0;
}

static int backup_item(void *arg, const pb_item_t *it)
{
	struct backup *b = arg;
	pb_manifest_item_t m;
	struct pending_item *p;
	uint8_t hash[32], rec_hash[32];
	uint64_t size = it->size, rec_size;
	int64_t rec_mtime;
	name_t *names = NULL;
	size_t n = 0;
	bool unchanged = false;
	int rc;

	if ((rc = file_note(b, it)) != 0)
		return rc;
	memset(&m, 0, sizeof(m));
	m.kind = (uint32_t)it->kind;
	m.id = it->id;
	m.path = it->path;
	m.seq = it->seq;
	/* A split item's time is its file's, which changes with any sibling:
	 * recording it would churn the manifest. Files keep theirs. */
	m.mtime = it->data != NULL ? 0 : (int64_t)it->mtime_ns;
	/* Unchanged: same bytes (small items are hashed; files are taken as
	 * unchanged when size and modification time match) and every chunk
	 * committed on the host. */
	if (it->data != NULL) {
		/* Items split out of a file share its modification time, which
		 * changes with any of them: their content decides. */
		item_hash(&b->keys, it->data, it->len, hash);
		if (pb_backup_state_lookup(b->st, it->id, &rec_size, &rec_mtime, rec_hash) == 0 && rec_size == it->len &&
		    sodium_memcmp(rec_hash, hash, 32) == 0)
			unchanged = pb_backup_state_unchanged(b->st, it->id, rec_size, rec_mtime, hash);
	} else if (pb_backup_state_lookup(b->st, it->id, &rec_size, &rec_mtime, rec_hash) == 0 &&
		   rec_size == it->size && rec_mtime == m.mtime) {
		memcpy(hash, rec_hash, 32);
		unchanged = pb_backup_state_unchanged(b->st, it->id, it->size, m.mtime, hash);
	}
	if (unchanged && pb_backup_state_item_chunks(b->st, it->id, &names, &n) == 0) {
		m.size = size;
		memcpy(m.hash, hash, 32);
		m.nchunks = n;
		m.chunks = (const name_t *)names;
		rc = pb_manifest_writer_add(b->mw, &m);
		if (rc == 0)
			rc = touch_item(b, &m);
		free(names);
		b->pr.p.bytes_done += size;
		goto out_count;
	}
	b->res->items_changed++;
	b->ncur = 0;
	crypto_generichash_init(&b->hash, b->keys.name, sizeof(b->keys.name), 32);
	if (it->data != NULL) {
		rc = chunk_memory(b, it->data, it->len);
		size = it->len;
	} else {
		rc = chunk_file(b, it, &size);
	}
	if (rc != 0)
		return rc;
	crypto_generichash_final(&b->hash, hash, 32);
	m.size = size;
	memcpy(m.hash, hash, 32);
	m.nchunks = b->ncur;
	m.chunks = (const name_t *)b->cur;
	rc = pb_manifest_writer_add(b->mw, &m);
	if (rc != 0)
		return rc;
	/* Recorded as backed up once its chunks are committed. */
	if ((rc = grow((void **)&b->items, &b->cap_items, b->nitems + 1, sizeof(*b->items))) != 0)
		return rc;
	p = &b->items[b->nitems];
	memset(p, 0, sizeof(*p));
	p->id = strdup(it->id);
	p->path = strdup(it->path != NULL ? it->path : "");
	p->names = malloc(b->ncur ? b->ncur * sizeof(name_t) : 1);
	if (p->id == NULL || p->path == NULL || p->names == NULL) {
		free_pending(p);
		return PB_ENOMEM;
	}
	memcpy(p->names, b->cur, b->ncur * sizeof(name_t));
	p->m = m;
	p->m.id = p->id;
	p->m.path = p->path;
	p->m.chunks = (const name_t *)p->names;
	b->nitems++;
	if (b->nitems >= COMMIT_ITEMS)
		rc = commit(b);
out_count:
	b->res->items++;
	b->res->bytes += size;
	b->pr.p.items_done++;
	progress(&b->pr, false);
	return rc;
}

/* --- A file that does not parse ---------------------------------------------------- */

/* Its items as the last backup that saw the file recorded them go into this
 * snapshot unchanged (their chunks are on the host), so skipping a damaged
 * file loses nothing that was backed up before. Items the walk already gave
 * from the file stand; only later ones (by seq) are carried over. */
struct carry {
	struct backup *b;
	const char *path;
	pb_manifest_item_t *v;
	char **ids;
	name_t **names;
	size_t n, cap, cap_ids, cap_names;
};

static int carry_collect(void *arg, const pb_manifest_item_t *m)
{
	struct carry *c = arg;
	struct backup *b = c->b;
	int rc;

	/* Items the file gave before it failed stand: only what came after
	 * them (by position) is carried. */
	if (b->file_gave && strcmp(b->file, c->path) == 0 && m->seq <= b->file_seq)
		return 0;
	if (!pb_backup_state_unchanged(b->st, m->id, m->size, m->mtime, m->hash))
		return 0;
	if ((rc = grow((void **)&c->v, &c->cap, c->n + 1, sizeof(*c->v))) != 0 ||
	    (rc = grow((void **)&c->ids, &c->cap_ids, c->n + 1, sizeof(char *))) != 0 ||
	    (rc = grow((void **)&c->names, &c->cap_names, c->n + 1, sizeof(name_t *))) != 0)
		return rc;
	c->ids[c->n] = strdup(m->id);
	c->names[c->n] = malloc(m->nchunks ? m->nchunks * sizeof(name_t) : 1);
	if (c->ids[c->n] == NULL || c->names[c->n] == NULL) {
		free(c->ids[c->n]);
		free(c->names[c->n]);
		return PB_ENOMEM;
	}
	memcpy(c->names[c->n], m->chunks, m->nchunks * sizeof(name_t));
	c->v[c->n] = *m;
	c->v[c->n].id = c->ids[c->n];
	c->v[c->n].path = c->path;
	c->v[c->n].chunks = (const name_t *)c->names[c->n];
	c->n++;
	return 0;
}

static int carry_over(struct backup *b, const char *path)
{
	struct carry c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.b = b;
	c.path = path;
	rc = pb_backup_state_path_items(b->st, path, carry_collect, &c);
	for (size_t i = 0; i < c.n && rc == 0; i++) {
		if ((rc = pb_manifest_writer_add(b->mw, &c.v[i])) == 0)
			rc = touch_item(b, &c.v[i]);
		b->res->items++;
		b->res->bytes += c.v[i].size;
		b->res->items_kept++;
	}
	for (size_t i = 0; i < c.n; i++) {
		free(c.ids[i]);
		free(c.names[i]);
	}
	free(c.v);
	free(c.ids);
	free(c.names);
	return rc;
}

/* A multi-item file that does not parse: named (with its line), skipped,
 * its last backed-up items kept; everything else is backed up. */
static int skip_file(void *arg, const char *rel, int err, uint64_t line, const char *why)
{
	struct backup *b = arg;

	(void)err;
	b->res->skipped++;
	if (b->o->on_skip != NULL)
		b->o->on_skip(b->o->skip_arg, rel, line, why);
	return carry_over(b, rel);
}

static int skip_quietly(void *arg, const char *rel, int err, uint64_t line, const char *why)
{
	(void)arg;
	(void)rel;
	(void)err;
	(void)line;
	(void)why;
	return 0;
}

/* --- A backup of some kinds ------------------------------------------------------- */

/* A snapshot is always the whole phone: a backup of some kinds takes the
 * other kinds' items from this phone's previous snapshot on the host as
 * they are (same chunks, nothing sent), so "latest" is never missing a
 * kind and prune, which keeps the latest, cannot lose one. */
struct carry_kinds {
	struct backup *b;
	unsigned mask;
};

static int carry_kind_item(void *arg, const pb_manifest_item_t *m)
{
	struct carry_kinds *c = arg;
	int rc;

	if (m->kind < 32 && (c->mask & (1u << m->kind)) != 0)
		return 0;
	if ((rc = pb_manifest_writer_add(c->b->mw, m)) != 0)
		return rc;
	c->b->res->items++;
	c->b->res->bytes += m->size;
	c->b->res->items_carried++;
	return 0;
}

static int carry_kinds(struct backup *b, unsigned mask)
{
	struct carry_kinds c = { b, mask };
	ProtobufCBinaryData dev;
	pb_identity_t id;
	uint8_t dev_id[16], *blob = NULL;
	name_t *mchunks = NULL;
	size_t len = 0, nm = 0;
	uint64_t snap, nitems;
	int64_t when;
	int rc;

	if ((rc = pb__identity_load(b->o->home, &id)) != 0)
		return rc;
	memcpy(dev_id, id.device_id, sizeof(dev_id));
	pb__identity_wipe(&id);
	dev.data = dev_id;
	dev.len = sizeof(dev_id);
	rc = sess_latest(&b->s, dev, &snap);
	if (rc == PB_ESTORE_NOSNAP)
		return 0; /* a first backup: nothing to carry */
	if (rc == 0)
		rc = sess_snapshot(&b->s, dev, snap, &blob, &len);
	if (rc == 0)
		rc = pb_manifest_root_open(&b->keys, blob, len, &when, &nitems, &mchunks, &nm);
	for (size_t i = 0; i < nm && rc == 0; i++) {
		Peerback__Request req;
		Peerback__ChunkGet get;
		pb_envelope_t *in;

		peerback__request__init(&req);
		peerback__chunk_get__init(&get);
		get.device = dev;
		get.name.data = mchunks[i];
		get.name.len = PB_STORE_NAME_LEN;
		req.op_case = PEERBACK__REQUEST__OP_CHUNK_GET;
		req.chunk_get = &get;
		if ((rc = sess_call(&b->s, &req, &in)) != 0)
			break;
		if (in->reply->op_case != PEERBACK__REPLY__OP_CHUNK)
			rc = PB_EENV_MALFORMED;
		else
			rc = pb_manifest_chunk_open(&b->keys, mchunks[i], in->reply->chunk->data.data,
						    in->reply->chunk->data.len, carry_kind_item, &c);
		pb__envelope_free(in);
	}
	free(blob);
	free(mchunks);
	return rc;
}

struct count {
	uint64_t items, bytes;
};

static int count_item(void *arg, const pb_item_t *it)
{
	struct count *c = arg;

	c->items++;
	c->bytes += it->size;
	return 0;
}

static int snapshot_put(struct backup *b, uint64_t id, const uint8_t *root, size_t root_len, const name_t *refs,
			size_t nrefs)
{
	Peerback__Request req;
	Peerback__SnapshotPut sp;
	pb_envelope_t *in;
	int rc;

	peerback__request__init(&req);
	peerback__snapshot_put__init(&sp);
	sp.snapshot = id;
	sp.root.data = (uint8_t *)root;
	sp.root.len = root_len;
	sp.refs.data = (uint8_t *)refs;
	sp.refs.len = nrefs * sizeof(name_t);
	req.op_case = PEERBACK__REQUEST__OP_SNAPSHOT_PUT;
	req.snapshot_put = &sp;
	rc = sess_call(&b->s, &req, &in);
	if (rc == 0)
		pb__envelope_free(in);
	return rc;
}

static int state_path(const char *home, char *out, size_t cap)
{
	return pb__path_join(out, cap, home, "backup-state.db");
}

static int backup_once(const pb_engine_opts_t *o, pb_engine_result_t *res)
{
	struct backup *b;
	struct count cnt = { 0, 0 };
	uint8_t mk[PB_MASTERKEY_LEN], *root = NULL;
	name_t *refs = NULL;
	size_t root_len = 0, nrefs = 0;
	char path[4096], bad[4096] = "";
	unsigned mask = o->kind_mask ? o->kind_mask : PB_KIND_ALL;
	double t0 = now_s();
	int rc;

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return PB_ENOMEM;
	b->o = o;
	b->res = res;
	b->pr.o = o;
	b->pr.p.phase = "scan";
	b->last_commit = now_s();
	rc = pb_device_scan_skip(o->device_dir, mask, count_item, &cnt, skip_quietly, NULL, bad, sizeof(bad));
	if (rc != 0) {
		if (bad[0])
			fprintf(stderr, "peerback: %s/%s: %s\n", o->device_dir, bad, pb_strerror(rc));
		goto out_free;
	}
	b->pr.p.phase = "backup";
	b->pr.p.items_total = cnt.items;
	b->pr.p.bytes_total = cnt.bytes;
	if ((rc = sess_open(&b->s, o)) != 0)
		goto out_free;
	/* A dry run neither makes nor stores a key. Before the first backup
	 * every chunk is new, whatever key names it. */
	if (o->dry_run) {
		rc = local_master(o->home, mk);
		if (rc == -ENOENT) {
			randombytes_buf(mk, sizeof(mk));
			rc = 0;
		}
	} else {
		rc = master_key(&b->s, o, NULL, true, mk);
	}
	if (rc != 0)
		goto out_close;
	pb_backup_keys_derive(mk, &b->keys);
	sodium_memzero(mk, sizeof(mk));
	pb_cdc_init(&b->cdc, &b->keys);
	if ((rc = state_path(o->home, path, sizeof(path))) != 0 || (rc = pb_backup_state_open(path, &b->st)) != 0)
		goto out_keys;
	if (!o->dry_run && (rc = pb_backup_state_run_begin(b->st)) != 0)
		goto out_state;
	if ((rc = pb_manifest_writer_new(&b->keys, emit_manifest_chunk, b, &b->mw)) != 0)
		goto out_state;
	rc = pb_device_scan_skip(o->device_dir, mask, backup_item, b, skip_file, b, bad, sizeof(bad));
	if (rc != 0) {
		if (bad[0])
			fprintf(stderr, "peerback: %s/%s: %s\n", o->device_dir, bad, pb_strerror(rc));
		goto out_writer;
	}
	if ((mask & PB_KIND_ALL) != PB_KIND_ALL && (rc = carry_kinds(b, mask)) != 0)
		goto out_writer;
	rc = pb_manifest_writer_finish(b->mw, (int64_t)time(NULL), &root, &root_len, &refs, &nrefs);
	if (rc == 0)
		rc = commit(b);
	if (rc == 0 && !o->dry_run) {
		/* Snapshot ids order backups in time ("latest" is the largest):
		 * microseconds, so that two backups in one second still order,
		 * and 12 random bits below. */
		struct timespec ts;
		uint64_t id;

		clock_gettime(CLOCK_REALTIME, &ts);
		id = (((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u) << 12) |
		     (randombytes_random() & 0xfff);

		rc = snapshot_put(b, id, root, root_len, (const name_t *)refs, nrefs);
		if (rc == 0)
			res->snapshot = id;
		/* The receipt is in: every item of this run is in snapshot id. */
		if (rc == 0)
			rc = pb_backup_state_run_done(b->st, id);
		/* What this host must hold from now on: a restore from it that
		 * finds only older snapshots is a rollback. */
		if (rc == 0)
			rc = pb_backup_state_set_host_done(b->st, b->s.host_pk, id);
		if (rc == 0) {
			/* Remember which snapshot holds the contacts of the active
			 * SIM identity, for a phone that later gets that SIM. */
			char iccid[32], msisdn[32], key[4 + 64 + 1];
			uint8_t val[8];

			if (pb__sim_identity(o->device_dir, iccid, sizeof(iccid), msisdn, sizeof(msisdn)) == 0) {
				sim_key(&b->keys, iccid, msisdn, key);
				for (int k = 0; k < 8; k++)
					val[k] = (uint8_t)(id >> (8 * k));
				rc = blob_put_key(&b->s, key, val, sizeof(val));
			}
		}
	}
	res->chunks_total = nrefs;
	res->seconds = now_s() - t0;
	b->pr.p.items_done = res->items;
	if (rc == 0)
		progress(&b->pr, true);
	free(root);
	free(refs);
out_writer:
	if (b->touched > 0)
		(void)touch_end(b);
	pb_manifest_writer_free(b->mw);
	for (size_t i = 0; i < b->qn; i++)
		free(b->qct[i]);
	for (size_t i = 0; i < b->nitems; i++)
		free_pending(&b->items[i]);
out_state:
	pb_backup_state_close(b->st);
out_keys:
	pb_cdc_wipe(&b->cdc);
	pb_backup_keys_wipe(&b->keys);
out_close:
	sess_close(&b->s);
out_free:
	free(b->qnames);
	free(b->qct);
	free(b->qlen);
	free(b->offered);
	free(b->items);
	free(b->cur);
	file_forget(b);
	free(b);
	return rc;
}

int pb_engine_backup(const pb_engine_opts_t *o, pb_engine_result_t *res)
{
	int rc;

	memset(res, 0, sizeof(*res));
	rc = backup_once(o, res);
	if (rc == PB_ESTORE_NOCHUNK) {
		/* The host no longer holds chunks this phone believed committed
		 * (its store was replaced): forget that belief and send again.
		 * The snapshots completed with each host are kept: a host cannot
		 * make the phone forget them this way. */
		char path[4096];
		pb_backup_state_t *st;

		if (state_path(o->home, path, sizeof(path)) == 0 && pb_backup_state_open(path, &st) == 0) {
			rc = pb_backup_state_reset(st);
			pb_backup_state_close(st);
			if (rc != 0)
				return rc;
		}
		memset(res, 0, sizeof(*res));
		rc = backup_once(o, res);
	}
	return rc;
}

/* --- Restore, verify, fetch -------------------------------------------------------- */

struct want_item {
	pb_manifest_item_t m;
	char *id, *path;
	char *after; /* the item before it in its file, or NULL */
	name_t *names;
};

struct restore {
	const pb_engine_opts_t *o;
	struct sess s;
	pb_backup_keys_t keys;
	ProtobufCBinaryData dev;
	uint8_t dev_id[16];
	pb_device_writer_t *w;  /* NULL when verifying or fetching */
	char writing[PB_MANIFEST_PATH_MAX + 1]; /* the multi-item file the writer holds */
	struct prog pr;
	pb_engine_result_t *res;
	const char *exact_id;   /* fetch: this id only, into out */
	bool fast;              /* items found through the phone's state */
	uint8_t *out;
	size_t out_len;
	bool found;
	/* Items of the manifest chunk being processed. */
	struct want_item *items;
	size_t nitems, cap_items;
	/* restore --dry-run: the target's items, sorted by id. */
	struct local_item *local;
	size_t nlocal, cap_local;
	/* The manifest's previous item: the one before the next in its file. */
	char *prev_id, *prev_path;
	uint64_t prev_seq;
	char tmpdir[4096];
	char stagedir[4096];    /* a target that did not exist: built here, then renamed */
	char target[4096];      /* that target, without trailing slashes */
	unsigned tmpn;
	char **tmpfiles;
	size_t ntmp, cap_tmp;
};

static bool wanted(const struct restore *r, const pb_manifest_item_t *m)
{
	const char *want = r->exact_id != NULL ? r->exact_id : r->o->item_id;
	unsigned mask = r->o->kind_mask ? r->o->kind_mask : PB_KIND_ALL;
	size_t n;

	if (want == NULL)
		return m->kind < 32 && (mask & (1u << m->kind)) != 0;
	if (strcmp(m->id, want) == 0)
		return true;
	if (r->exact_id != NULL)
		return false;
	{
		/* A message comes with its chat's frame, without which the chat
		 * file cannot be written; the frame merges with an existing one. */
		const char *msg = strstr(want, "/msg/");

		if (msg != NULL && strncmp(want, "chat/", 5) == 0 && strlen(m->id) == (size_t)(msg - want) &&
		    strncmp(m->id, want, (size_t)(msg - want)) == 0)
			return true;
	}
	/* An id names that item and everything under it: "chat/42" is the
	 * chat, its messages, and its attachments in chats/42/. */
	n = strlen(want);
	if (strncmp(m->id, want, n) == 0 && m->id[n] == '/')
		return true;
	if (strncmp(want, "chat/", 5) == 0 && strchr(want + 5, '/') == NULL && m->path != NULL) {
		char prefix[PB_ITEM_ID_MAX + 16];

		if (snprintf(prefix, sizeof(prefix), "chats/%s/", want + 5) < (int)sizeof(prefix) &&
		    strncmp(m->path, prefix, strlen(prefix)) == 0)
			return true;
	}
	return false;
}

/* Remembers m as the manifest's previous item. */
static int note_prev(struct restore *r, const pb_manifest_item_t *m)
{
	free(r->prev_id);
	free(r->prev_path);
	r->prev_id = strdup(m->id);
	r->prev_path = strdup(m->path != NULL ? m->path : "");
	r->prev_seq = m->seq;
	return r->prev_id != NULL && r->prev_path != NULL ? 0 : PB_ENOMEM;
}

static int collect_item(void *arg, const pb_manifest_item_t *m)
{
	struct restore *r = arg;
	struct want_item *w;
	const char *after = NULL;
	int rc;

	/* A file's items are listed together, by position: the item before
	 * this one in its file is the one listed before it. */
	if (r->prev_path != NULL && m->path != NULL && strcmp(r->prev_path, m->path) == 0 && r->prev_seq < m->seq)
		after = r->prev_id;
	if (!wanted(r, m))
		return note_prev(r, m);
	if ((rc = grow((void **)&r->items, &r->cap_items, r->nitems + 1, sizeof(*r->items))) != 0)
		return rc;
	w = &r->items[r->nitems];
	memset(w, 0, sizeof(*w));
	w->m = *m;
	w->id = strdup(m->id);
	w->path = strdup(m->path != NULL ? m->path : "");
	w->after = after != NULL ? strdup(after) : NULL;
	w->names = malloc(m->nchunks ? m->nchunks * sizeof(name_t) : 1);
	if (w->id == NULL || w->path == NULL || w->names == NULL || (after != NULL && w->after == NULL)) {
		free(w->id);
		free(w->path);
		free(w->after);
		free(w->names);
		return PB_ENOMEM;
	}
	memcpy(w->names, m->chunks, m->nchunks * sizeof(name_t));
	w->m.id = w->id;
	w->m.path = w->path;
	w->m.chunks = (const name_t *)w->names;
	r->nitems++;
	return note_prev(r, m);
}

static void free_items(struct restore *r)
{
	for (size_t i = 0; i < r->nitems; i++) {
		free(r->items[i].id);
		free(r->items[i].path);
		free(r->items[i].after);
		free(r->items[i].names);
	}
	r->nitems = 0;
}

static int request_chunk(struct restore *r, const uint8_t name[PB_STORE_NAME_LEN], uint64_t *id)
{
	Peerback__Request req;
	Peerback__ChunkGet get;
	int rc;

	peerback__request__init(&req);
	peerback__chunk_get__init(&get);
	get.device = r->dev;
	get.name.data = (uint8_t *)name;
	get.name.len = PB_STORE_NAME_LEN;
	req.op_case = PEERBACK__REQUEST__OP_CHUNK_GET;
	req.chunk_get = &get;
	rc = sess_send(&r->s, &req);
	*id = req.id;
	return rc;
}

/* Receives the chunk answering request id and decrypts it into a malloc'd
 * buffer. */
/* --- Resuming a restore ------------------------------------------------------- */

/* A restore keeps every chunk it fetched, sealed as the host sent it, in
 * HOME/restore-cache under its name until the restore completes. Run again
 * after an interruption, it opens those chunks from there instead of
 * fetching them again; a cached chunk is opened and checked exactly like a
 * fetched one, so a damaged file fails like a damaged reply. */

#define CACHE_DIR "restore-cache"

static bool caching(const struct restore *r)
{
	/* A few chunks by id are cheaper to fetch again than to keep. */
	return r->w != NULL && r->exact_id == NULL && !r->fast;
}

static int cache_path(const struct restore *r, const uint8_t name[PB_STORE_NAME_LEN], char *out, size_t cap)
{
	char hex[2 * PB_STORE_NAME_LEN + 1];
	int n;

	sodium_bin2hex(hex, sizeof(hex), name, PB_STORE_NAME_LEN);
	n = snprintf(out, cap, "%s/%s/%s", r->o->home, CACHE_DIR, hex);
	return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
}

static bool cache_has(const struct restore *r, const uint8_t name[PB_STORE_NAME_LEN])
{
	char path[4200];

	return caching(r) && cache_path(r, name, path, sizeof(path)) == 0 && access(path, R_OK) == 0;
}

/* Keeps a fetched chunk for a later run; a cache that cannot be written
 * only costs a refetch. */
static void cache_keep(const struct restore *r, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	char path[4200], tmp[4300], dir[4200];
	int fd, n;

	if (!caching(r) || cache_path(r, name, path, sizeof(path)) != 0)
		return;
	if (pb__path_join(dir, sizeof(dir), r->o->home, CACHE_DIR) != 0 || pb__mkdirs(dir, 0700) != 0)
		return;
	n = snprintf(tmp, sizeof(tmp), "%s.part", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, ct + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			unlink(tmp);
			return;
		}
		off += (size_t)w;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0)
		unlink(tmp);
}

/* Opens a cached chunk as receive_chunk opens a fetched one. */
static int cache_open(struct restore *r, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **plain, size_t *plen)
{
	char path[4200];
	uint8_t *ct;
	size_t len;
	int rc;

	if ((rc = cache_path(r, name, path, sizeof(path))) != 0)
		return rc;
	if ((rc = pb__read_file(path, PB_STORE_CT_MAX, &ct, &len)) != 0)
		return rc;
	*plain = malloc(PB_CHUNK_PLAIN_MAX);
	if (*plain == NULL) {
		free(ct);
		return PB_ENOMEM;
	}
	rc = pb_chunk_open(&r->keys, name, ct, len, *plain, PB_CHUNK_PLAIN_MAX, plen);
	free(ct);
	if (rc != 0) {
		/* Damaged: the next run fetches it. */
		unlink(path);
		free(*plain);
		*plain = NULL;
	}
	return rc;
}

/* After a complete restore the cache has served its purpose. */
static void cache_drop(const struct restore *r)
{
	char dir[4200], path[4500];
	DIR *d;
	struct dirent *e;

	if (pb__path_join(dir, sizeof(dir), r->o->home, CACHE_DIR) != 0 || (d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		int n;

		if (e->d_name[0] == '.')
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (n > 0 && (size_t)n < sizeof(path))
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static int receive_chunk(struct restore *r, uint64_t id, const uint8_t name[PB_STORE_NAME_LEN], uint8_t **plain,
			 size_t *plen)
{
	pb_envelope_t *in;
	int rc = sess_reply(&r->s, id, &in);

	if (rc != 0)
		return rc;
	if (in->reply->op_case != PEERBACK__REPLY__OP_CHUNK || in->reply->chunk->data.len > PB_STORE_CT_MAX) {
		pb__envelope_free(in);
		return PB_EENV_MALFORMED;
	}
	*plain = malloc(PB_CHUNK_PLAIN_MAX);
	if (*plain == NULL) {
		pb__envelope_free(in);
		return PB_ENOMEM;
	}
	rc = pb_chunk_open(&r->keys, name, in->reply->chunk->data.data, in->reply->chunk->data.len, *plain,
			   PB_CHUNK_PLAIN_MAX, plen);
	if (rc == 0)
		cache_keep(r, name, in->reply->chunk->data.data, in->reply->chunk->data.len);
	pb__envelope_free(in);
	if (rc != 0) {
		free(*plain);
		*plain = NULL;
	}
	return rc;
}

/* One item being reassembled: in memory, or in a temporary file when large. */
struct assembly {
	uint8_t *buf;
	size_t len, cap;
	int fd;
	char tmp[4200];
	crypto_generichash_state hash;
};

static int assembly_start(struct restore *r, struct assembly *a, const pb_manifest_item_t *m)
{
	memset(a, 0, sizeof(*a));
	a->fd = -1;
	crypto_generichash_init(&a->hash, r->keys.name, sizeof(r->keys.name), 32);
	if (m->size > PB_CDC_WHOLE_MAX && r->w != NULL) {
		int n = snprintf(a->tmp, sizeof(a->tmp), "%s/item-%u", r->tmpdir, r->tmpn++);

		if (n < 0 || (size_t)n >= sizeof(a->tmp))
			return PB_ETOOBIG;
		a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		return a->fd < 0 ? -errno : 0;
	}
	return 0;
}

static int assembly_add(struct assembly *a, const uint8_t *data, size_t len)
{
	crypto_generichash_update(&a->hash, data, len);
	if (a->fd >= 0) {
		while (len > 0) {
			ssize_t w = write(a->fd, data, len);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return errno == ENOSPC ? PB_ENOSPACE : -errno;
			data += w;
			len -= (size_t)w;
		}
		return 0;
	}
	if (grow((void **)&a->buf, &a->cap, a->len + len + 1, 1) != 0)
		return PB_ENOMEM;
	memcpy(a->buf + a->len, data, len);
	a->len += len;
	return 0;
}

static int remember_tmp(struct restore *r, const char *path)
{
	int rc = grow((void **)&r->tmpfiles, &r->cap_tmp, r->ntmp + 1, sizeof(char *));

	if (rc != 0)
		return rc;
	r->tmpfiles[r->ntmp] = strdup(path);
	if (r->tmpfiles[r->ntmp] == NULL)
		return PB_ENOMEM;
	r->ntmp++;
	return 0;
}

/* Stages what the writer holds beside its targets, freeing the memory;
 * nothing replaces a file before the restore is complete. */
static int flush_writer(struct restore *r)
{
	int rc = pb_device_writer_stage(r->w);

	for (size_t i = 0; i < r->ntmp; i++) {
		unlink(r->tmpfiles[i]);
		free(r->tmpfiles[i]);
	}
	r->ntmp = 0;
	return rc;
}

static int assembly_finish(struct restore *r, struct assembly *a, const struct want_item *w)
{
	uint8_t hash[32];
	pb_item_t it;
	int rc = 0;

	crypto_generichash_final(&a->hash, hash, 32);
	if (a->fd >= 0) {
		if (fsync(a->fd) != 0)
			rc = -errno;
		close(a->fd);
		a->fd = -1;
		if (rc == 0)
			rc = remember_tmp(r, a->tmp);
		else
			unlink(a->tmp);
	}
	if (rc != 0)
		goto out;
	if (sodium_memcmp(hash, w->m.hash, 32) != 0) {
		r->res->bad_items++;
		if (r->w != NULL || r->exact_id != NULL) {
			rc = PB_ESTORE_VERIFY;
			goto out;
		}
	}
	r->res->items++;
	r->res->bytes += w->m.size;
	r->pr.p.items_done++;
	r->pr.p.bytes_done += w->m.size;
	if (r->exact_id != NULL) {
		r->out = a->buf;
		r->out_len = a->len;
		a->buf = NULL;
		r->found = true;
		goto out;
	}
	if (r->w == NULL)
		goto out;
	/* The manifest lists a file's items together: once the next file
	 * begins, the previous one is written, so memory holds one chat at a
	 * time, not the whole phone. */
	if (pb_codec_for(w->m.path) != NULL && strcmp(w->m.path, r->writing) != 0) {
		if (r->writing[0] != 0 && (rc = flush_writer(r)) != 0)
			goto out;
		snprintf(r->writing, sizeof(r->writing), "%s", w->m.path);
	}
	memset(&it, 0, sizeof(it));
	it.kind = (pb_kind_t)w->m.kind;
	it.id = w->m.id;
	it.path = w->m.path;
	it.seq = w->m.seq;
	it.size = w->m.size;
	it.mtime_ns = (uint64_t)w->m.mtime;
	it.after = w->after;
	if (a->tmp[0]) {
		it.file = a->tmp;
	} else {
		it.data = a->buf != NULL ? a->buf : (const uint8_t *)"";
		it.len = a->len;
	}
	rc = pb_device_writer_add(r->w, &it);
out:
	free(a->buf);
	a->buf = NULL;
	return rc;
}

/* Fetches and rebuilds every collected item, with up to FETCH_WINDOW chunk
 * requests in flight. */
static int fetch_items(struct restore *r)
{
	uint64_t ids[FETCH_WINDOW];
	size_t total = 0, sent = 0, got = 0, item = 0, chunk = 0;
	size_t si = 0, sc = 0, sk = 0; /* next chunk to request, and its index in cached */
	struct assembly a;
	int rc = 0;

	bool *cached;
	size_t all = 0, at = 0; /* at: index in cached of the current chunk */

	for (size_t i = 0; i < r->nitems; i++)
		all += r->items[i].m.nchunks;
	cached = calloc(all + 1, sizeof(*cached));
	if (cached == NULL)
		return PB_ENOMEM;
	/* Chunks an interrupted run fetched are not fetched again. */
	for (size_t i = 0, k = 0; i < r->nitems; i++)
		for (size_t c = 0; c < r->items[i].m.nchunks; c++, k++) {
			cached[k] = cache_has(r, r->items[i].names[c]);
			if (!cached[k])
				total++;
		}
	memset(&a, 0, sizeof(a));
	a.fd = -1;
	/* Items with no chunk (empty files) are finished at once below. */
	while (item < r->nitems && rc == 0) {
		const struct want_item *w = &r->items[item];

		if (chunk == 0 && (rc = assembly_start(r, &a, &w->m)) != 0)
			break;
		if (w->m.nchunks == 0) {
			rc = assembly_finish(r, &a, w);
			item++;
			continue;
		}
		while (sent < total && sent - got < FETCH_WINDOW && rc == 0) {
			while (sc >= r->items[si].m.nchunks || cached[sk]) {
				if (sc < r->items[si].m.nchunks) {
					sc++; /* cached: skip */
					sk++;
					continue;
				}
				si++;
				sc = 0;
			}
			rc = request_chunk(r, r->items[si].names[sc], &ids[sent % FETCH_WINDOW]);
			sc++;
			sk++;
			sent++;
		}
		if (rc == 0) {
			uint8_t *plain = NULL;
			size_t plen = 0;

			if (cached[at]) {
				rc = cache_open(r, w->names[chunk], &plain, &plen);
				r->res->chunks_cached++;
			} else {
				rc = receive_chunk(r, ids[got % FETCH_WINDOW], w->names[chunk], &plain, &plen);
				got++;
			}
			at++;
			if (rc == 0)
				rc = assembly_add(&a, plain, plen);
			free(plain);
		}
		if (rc == 0 && ++chunk == w->m.nchunks) {
			rc = assembly_finish(r, &a, w);
			item++;
			chunk = 0;
			progress(&r->pr, false);
		}
	}
	if (a.fd >= 0) {
		close(a.fd);
		unlink(a.tmp);
	}
	free(a.buf);
	free(cached);
	return rc;
}

/* The id of r->dev's latest snapshot on the host. */
static int get_latest(struct restore *r, uint64_t *snap)
{
	return sess_latest(&r->s, r->dev, snap);
}

static int get_snapshot(struct restore *r, uint64_t *snap, uint8_t **blob, size_t *len)
{
	int rc;

	if (*snap == 0 && (rc = get_latest(r, snap)) != 0)
		return rc;
	return sess_snapshot(&r->s, r->dev, *snap, blob, len);
}

/* --from as a device's name or a prefix of its hex id (at least 4
 * digits): the one device of the host's list it names. PB_ENOTFOUND for
 * none, PB_EEXISTS when it names more than one. */
static int match_device(struct restore *r, const Peerback__BackupListReply *list)
{
	const char *want = r->o->from_device;
	size_t n = strlen(want), found = 0;

	for (size_t i = 0; i < list->n_devices; i++) {
		const Peerback__DeviceBackups *d = list->devices[i];
		char hex[2 * sizeof(r->dev_id) + 1];

		if (d->device.len != sizeof(r->dev_id))
			continue;
		pb__hex(d->device.data, sizeof(r->dev_id), hex);
		if ((d->name != NULL && strcmp(d->name, want) == 0) || (n >= 4 && strncasecmp(hex, want, n) == 0)) {
			memcpy(r->dev_id, d->device.data, sizeof(r->dev_id));
			found++;
		}
	}
	if (found != 1)
		return found == 0 ? PB_ENOTFOUND : PB_EEXISTS;
	r->dev.data = r->dev_id;
	r->dev.len = sizeof(r->dev_id);
	return 0;
}

/* Whose backup to read: --from, else this phone's, else the account's most
 * recent backup of another device (a new phone). */
static int pick_device(struct restore *r)
{
	Peerback__Request req;
	Peerback__BackupList bl;
	pb_envelope_t *in;
	pb_identity_t id;
	int64_t best = -1;
	bool own = false;
	int rc;

	if (r->o->from_device != NULL) {
		size_t n;

		if (sodium_hex2bin(r->dev_id, sizeof(r->dev_id), r->o->from_device, strlen(r->o->from_device), NULL, &n,
				   NULL) == 0 &&
		    n == sizeof(r->dev_id)) {
			r->dev.data = r->dev_id;
			r->dev.len = sizeof(r->dev_id);
			return 0;
		}
		/* A device's name or an id prefix: found in the host's list. */
	}
	if ((rc = pb__identity_load(r->o->home, &id)) != 0)
		return rc;
	memcpy(r->dev_id, id.device_id, sizeof(r->dev_id));
	pb__identity_wipe(&id);
	peerback__request__init(&req);
	peerback__backup_list__init(&bl);
	req.op_case = PEERBACK__REQUEST__OP_BACKUP_LIST;
	req.backup_list = &bl;
	if ((rc = sess_call(&r->s, &req, &in)) != 0)
		return rc;
	if (in->reply->op_case != PEERBACK__REPLY__OP_BACKUPS) {
		pb__envelope_free(in);
		return PB_EENV_MALFORMED;
	}
	if (r->o->from_device != NULL) {
		rc = match_device(r, in->reply->backups);
		pb__envelope_free(in);
		return rc;
	}
	for (size_t i = 0; i < in->reply->backups->n_devices; i++) {
		const Peerback__DeviceBackups *d = in->reply->backups->devices[i];

		if (d->device.len != sizeof(r->dev_id))
			continue;
		if (memcmp(d->device.data, r->dev_id, sizeof(r->dev_id)) == 0)
			own = true;
	}
	if (!own) {
		for (size_t i = 0; i < in->reply->backups->n_devices; i++) {
			const Peerback__DeviceBackups *d = in->reply->backups->devices[i];

			if (d->device.len == sizeof(r->dev_id) && d->latest > best) {
				best = d->latest;
				memcpy(r->dev_id, d->device.data, sizeof(r->dev_id));
			}
		}
	}
	pb__envelope_free(in);
	r->dev.data = r->dev_id;
	r->dev.len = sizeof(r->dev_id);
	return 0;
}

enum restore_mode { MODE_RESTORE, MODE_VERIFY, MODE_FETCH };

/* --- Dry run -------------------------------------------------------------------- */

/* An item of the restore target, with the keyed content hash a backup
 * would record for it. */
struct local_item {
	char *id;
	uint8_t hash[32];
};

static int hash_file(const pb_backup_keys_t *keys, const char *path, uint8_t out[32])
{
	crypto_generichash_state st;
	uint8_t buf[65536];
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	crypto_generichash_init(&st, keys->name, sizeof(keys->name), 32);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		crypto_generichash_update(&st, buf, (size_t)n);
	}
	close(fd);
	sodium_memzero(buf, sizeof(buf));
	crypto_generichash_final(&st, out, 32);
	return rc;
}

static int local_add(void *arg, const pb_item_t *it)
{
	struct restore *r = arg;
	struct local_item *l;
	int rc;

	if ((rc = grow((void **)&r->local, &r->cap_local, r->nlocal + 1, sizeof(*r->local))) != 0)
		return rc;
	l = &r->local[r->nlocal];
	if (it->data != NULL)
		item_hash(&r->keys, it->data, it->len, l->hash);
	else if ((rc = hash_file(&r->keys, it->file, l->hash)) != 0)
		return rc;
	if ((l->id = strdup(it->id)) == NULL)
		return PB_ENOMEM;
	r->nlocal++;
	return 0;
}

static int cmp_local(const void *a, const void *b)
{
	return strcmp(((const struct local_item *)a)->id, ((const struct local_item *)b)->id);
}

/* What the target holds now; a file it cannot read counts as absent. */
static int local_scan(struct restore *r)
{
	struct stat sb;
	int rc;

	if (stat(r->o->device_dir, &sb) != 0)
		return errno == ENOENT ? 0 : -errno;
	rc = pb_device_scan_skip(r->o->device_dir, PB_KIND_ALL, local_add, r, skip_quietly, NULL, NULL, 0);
	if (rc == 0 && r->nlocal > 1)
		qsort(r->local, r->nlocal, sizeof(*r->local), cmp_local);
	return rc;
}

static void local_free(struct restore *r)
{
	for (size_t i = 0; i < r->nlocal; i++)
		free(r->local[i].id);
	free(r->local);
}

/* Tells what restoring each collected item would do to the target. */
static void plan_items(struct restore *r)
{
	for (size_t i = 0; i < r->nitems; i++) {
		const struct want_item *w = &r->items[i];
		struct local_item key = { w->id, { 0 } }, *l;
		const char *change;

		l = r->nlocal > 0 ? bsearch(&key, r->local, r->nlocal, sizeof(*r->local), cmp_local) : NULL;
		if (l == NULL) {
			change = "added";
			r->res->added++;
		} else if (sodium_memcmp(l->hash, w->m.hash, 32) != 0) {
			change = "replaced";
			r->res->changed++;
		} else {
			change = "unchanged";
			r->res->unchanged++;
		}
		if (r->o->on_plan != NULL)
			r->o->on_plan(r->o->plan_arg, w->id, w->path, change);
		r->res->items++;
		r->res->bytes += w->m.size;
		r->pr.p.items_done++;
	}
}

/* A host whose latest snapshot of this phone is older than the last one
 * this phone completed with it lost or withholds the newer ones: reading
 * "the latest" would quietly bring back older data. Refused unless the
 * caller names a snapshot; res->snapshot and res->snapshot_known say which
 * two. A phone without state (a new phone) knows nothing to compare. */
static int check_rollback(struct restore *r)
{
	pb_backup_state_t *st = NULL;
	pb_identity_t id;
	char path[4096];
	uint64_t known = 0, latest = 0;
	struct stat sb;
	bool own;
	int rc;

	if (r->o->snapshot != 0)
		return 0;
	if ((rc = pb__identity_load(r->o->home, &id)) != 0)
		return rc;
	own = memcmp(id.device_id, r->dev_id, sizeof(r->dev_id)) == 0;
	pb__identity_wipe(&id);
	if (!own || state_path(r->o->home, path, sizeof(path)) != 0 || stat(path, &sb) != 0)
		return 0;
	if ((rc = pb_backup_state_open_ro(path, &st)) != 0)
		return rc;
	rc = pb_backup_state_host_done(st, r->s.host_pk, &known);
	pb_backup_state_close(st);
	if (rc == PB_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	rc = get_latest(r, &latest);
	if (rc != 0 && rc != PB_ESTORE_NOSNAP)
		return rc;
	if (latest >= known)
		return 0;
	r->res->snapshot = latest;
	r->res->snapshot_known = known;
	return PB_ESTORE_ROLLBACK;
}

/* Adds the item id as the state's completed generation recorded it. */
static int state_item(struct restore *r, pb_backup_state_t *st, const char *id)
{
	struct want_item *w;
	int rc;

	if ((rc = grow((void **)&r->items, &r->cap_items, r->nitems + 1, sizeof(*r->items))) != 0)
		return rc;
	w = &r->items[r->nitems];
	memset(w, 0, sizeof(*w));
	rc = pb_backup_state_get(st, id, &w->m, &w->id, &w->path, &w->names);
	if (rc == 0 && w->m.seq > 0 && pb_codec_for(w->path) != NULL) {
		rc = pb_backup_state_before(st, w->path, w->m.seq, &w->after);
		if (rc == PB_ENOTFOUND)
			rc = 0;
	}
	if (rc == 0)
		r->nitems++;
	else if (w->id != NULL) {
		free(w->id);
		free(w->path);
		free(w->after);
		free(w->names);
	}
	return rc;
}

/* True when the host holds every chunk of the collected items (one
 * ChunkOffer: the host answers which names it lacks). */
static bool host_holds(struct restore *r)
{
	Peerback__Request req;
	Peerback__ChunkOffer offer;
	pb_envelope_t *in = NULL;
	name_t *names;
	size_t n = 0;
	bool yes;

	for (size_t i = 0; i < r->nitems; i++)
		n += r->items[i].m.nchunks;
	if (n == 0)
		return true;
	if (n > OFFER_BATCH || (names = malloc(n * sizeof(name_t))) == NULL)
		return false;
	n = 0;
	for (size_t i = 0; i < r->nitems; i++)
		for (size_t c = 0; c < r->items[i].m.nchunks; c++)
			memcpy(names[n++], r->items[i].names[c], PB_STORE_NAME_LEN);
	peerback__request__init(&req);
	peerback__chunk_offer__init(&offer);
	offer.names.data = (uint8_t *)names;
	offer.names.len = n * PB_STORE_NAME_LEN;
	req.op_case = PEERBACK__REQUEST__OP_CHUNK_OFFER;
	req.chunk_offer = &offer;
	yes = sess_call(&r->s, &req, &in) == 0 && in->reply->op_case == PEERBACK__REPLY__OP_CHUNK_WANT &&
	      in->reply->chunk_want->n_missing == 0;
	pb__envelope_free(in);
	free(names);
	return yes;
}

/* One item by id without walking the manifest: the phone that made the
 * last completed backup knows from its state where each item of that
 * snapshot lives (kind, path, content hash, chunk names), so it asks the
 * host for exactly those chunks, checked like any other. A restore uses
 * this only when the host's latest snapshot of this phone is that backup,
 * so the answer is the snapshot's; a fetch (NFC fallback) takes the item
 * from any host that holds its chunks. Everything else (another device,
 * an older snapshot, a chat with its files, a phone without state) walks
 * the manifest. *done tells whether this path answered. */
static int fast_restore(struct restore *r, enum restore_mode mode, const char *want, bool *done)
{
	const pb_engine_opts_t *o = r->o;
	pb_backup_state_t *st = NULL;
	pb_identity_t ident;
	uint8_t mk[PB_MASTERKEY_LEN];
	char path[4096], frame[PB_ITEM_ID_MAX + 1];
	const char *msg;
	uint64_t snap = 0;
	struct stat sb;
	int rc;

	*done = false;
	if (want == NULL || o->from_device != NULL)
		return 0;
	/* "chat/42" brings its files too, found by path: walk. */
	msg = strstr(want, "/msg/");
	if (strncmp(want, "chat/", 5) == 0 && msg == NULL)
		return 0;
	if (state_path(o->home, path, sizeof(path)) != 0 || stat(path, &sb) != 0)
		return 0;
	if (local_master(o->home, mk) != 0)
		return 0;
	if (pb__identity_load(o->home, &ident) != 0) {
		sodium_memzero(mk, sizeof(mk));
		return 0;
	}
	memcpy(r->dev_id, ident.device_id, sizeof(r->dev_id));
	pb__identity_wipe(&ident);
	r->dev.data = r->dev_id;
	r->dev.len = sizeof(r->dev_id);
	if (pb_backup_state_open_ro(path, &st) != 0 || pb_backup_state_done(st, &snap) != 0)
		goto out_walk;
	if (o->snapshot != 0 && o->snapshot != snap)
		goto out_walk;
	if (mode == MODE_RESTORE && o->snapshot == 0) {
		uint64_t latest;

		if (get_latest(r, &latest) != 0 || latest != snap)
			goto out_walk;
	}
	if (mode == MODE_RESTORE && msg != NULL) {
		/* A message needs its chat's frame, which comes first. */
		snprintf(frame, sizeof(frame), "%.*s", (int)(msg - want), want);
		if (state_item(r, st, frame) != 0)
			goto out_walk;
	}
	if (state_item(r, st, want) != 0 || pb_backup_state_has_children(st, want))
		goto out_walk;
	if (mode == MODE_FETCH && !host_holds(r))
		goto out_walk;
	pb_backup_keys_derive(mk, &r->keys);
	sodium_memzero(mk, sizeof(mk));
	pb_backup_state_close(st);
	r->res->snapshot = snap;
	pb__hex(r->dev_id, sizeof(r->dev_id), r->res->device);
	*done = true;
	r->fast = true;
	r->res->by_state = true;
	rc = fetch_items(r);
	free_items(r);
	return rc;
out_walk:
	sodium_memzero(mk, sizeof(mk));
	pb_backup_state_close(st);
	free_items(r);
	return 0;
}

/* The restore target. One that does not exist yet is built in a staging
 * folder beside it (.pbtmp-restore-NAME-XXXXXX) and renamed into place
 * when complete: a failed restore leaves no target. Into an existing
 * target (the live device directory) every file is staged beside its
 * target as the restore goes and renamed over it only once everything was
 * fetched and checked: a failed restore leaves it as it was; should a
 * rename itself fail, the files already renamed are named. */
static int target_open(struct restore *r)
{
	char *dir = r->target, parent[4096];
	const char *slash;
	struct stat st;
	size_t len;
	int n, rc;

	if (stat(r->o->device_dir, &st) == 0)
		return pb_device_writer_open(r->o->device_dir, &r->w);
	if (errno != ENOENT)
		return -errno;
	n = snprintf(r->target, sizeof(r->target), "%s", r->o->device_dir);
	if (n < 0 || (size_t)n >= sizeof(r->target))
		return PB_ETOOBIG;
	for (len = strlen(dir); len > 1 && dir[len - 1] == '/'; len--)
		dir[len - 1] = 0;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		n = snprintf(parent, sizeof(parent), ".");
	else
		n = snprintf(parent, sizeof(parent), "%.*s", (int)(slash - dir) > 0 ? (int)(slash - dir) : 1, dir);
	if (n < 0 || (size_t)n >= sizeof(parent))
		return PB_ETOOBIG;
	if ((rc = pb__mkdirs(parent, 0700)) != 0)
		return rc;
	n = snprintf(r->stagedir, sizeof(r->stagedir), "%s/%srestore-%.64s-XXXXXX", parent, PB_TMP_PREFIX,
		     slash != NULL ? slash + 1 : dir);
	if (n < 0 || (size_t)n >= sizeof(r->stagedir)) {
		r->stagedir[0] = 0;
		return PB_ETOOBIG;
	}
	if (mkdtemp(r->stagedir) == NULL) {
		r->stagedir[0] = 0;
		return -errno;
	}
	return pb_device_writer_open(r->stagedir, &r->w);
}

static int target_commit(struct restore *r)
{
	char parent[4096];
	const char *slash;
	int rc = pb_device_writer_commit(r->w);

	if (rc != 0 || !r->stagedir[0])
		return rc;
	/* A target that appeared meanwhile with content is not merged into. */
	if (rename(r->stagedir, r->target) != 0)
		return errno == EEXIST || errno == ENOTEMPTY ? PB_EEXISTS : -errno;
	r->stagedir[0] = 0;
	slash = strrchr(r->target, '/');
	if (slash != NULL && slash > r->target &&
	    snprintf(parent, sizeof(parent), "%.*s", (int)(slash - r->target), r->target) < (int)sizeof(parent))
		(void)pb__fsync_dir(parent);
	return 0;
}

/* Tells what a failed restore did to its target: the link that stopped
 * it, and the files it had already replaced (none unless a rename failed). */
static void target_report(struct restore *r, int rc)
{
	const char *const *written;
	size_t n;

	if (r->w == NULL)
		return;
	if (rc == PB_EDATA_LINK)
		snprintf(r->res->link, sizeof(r->res->link), "%s", pb_device_writer_link(r->w));
	n = pb_device_writer_written(r->w, &written);
	if (r->stagedir[0])
		return;
	r->res->replaced = n;
	for (size_t i = 0; i < n && r->o->on_replaced != NULL; i++)
		r->o->on_replaced(r->o->replaced_arg, written[i]);
}

/* The snapshot root did not open with the key at hand: a wrong key (this
 * phone's, for a device that made its backups with another) is far likelier
 * than damage. The device's own wrap, opened with the passphrase, decides:
 * a passphrase that does not open it is wrong; a key that opens it but not
 * the root means the root is damaged. Nothing is stored. */
static int reopen_root(struct restore *r, const uint8_t *blob, size_t len, int64_t *when, uint64_t *nitems,
		       name_t **mchunks, size_t *nm)
{
	uint8_t *wrap = NULL, mk[PB_MASTERKEY_LEN];
	size_t wlen = 0;
	int rc;

	if (r->o->passphrase == NULL)
		return PB_ESTORE_WRONG_KEY;
	if ((rc = host_blob(&r->s, &r->dev, NULL, &wrap, &wlen)) != 0)
		return rc == PB_ENOTFOUND ? PB_ESTORE_WRONG_KEY : rc;
	rc = pb_masterkey_unwrap(wrap, wlen, r->o->passphrase, mk);
	free(wrap);
	if (rc != 0)
		return rc;
	pb_backup_keys_wipe(&r->keys);
	pb_backup_keys_derive(mk, &r->keys);
	sodium_memzero(mk, sizeof(mk));
	return pb_manifest_root_open(&r->keys, blob, len, when, nitems, mchunks, nm);
}

static int run_restore(const pb_engine_opts_t *o, pb_engine_result_t *res, enum restore_mode mode, const char *exact,
		       uint8_t **out, size_t *out_len)
{
	struct restore *r;
	uint8_t mk[PB_MASTERKEY_LEN], *blob = NULL;
	name_t *mchunks = NULL;
	size_t blob_len = 0, nmchunks = 0;
	uint64_t snap = o->snapshot, nitems_total = 0;
	int64_t when;
	double t0 = now_s();
	int rc;

	memset(res, 0, sizeof(*res));
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return PB_ENOMEM;
	r->o = o;
	r->res = res;
	r->pr.o = o;
	r->pr.p.phase = mode == MODE_VERIFY ? "verify" : "restore";
	r->exact_id = exact;
	if ((rc = sess_open(&r->s, o)) != 0)
		goto out_free;
	if (mode == MODE_RESTORE && !o->dry_run) {
		if ((rc = pb__path_join(r->tmpdir, sizeof(r->tmpdir), o->home, "restore-tmp")) != 0 ||
		    (rc = pb__mkdirs(r->tmpdir, 0700)) != 0)
			goto out_keys;
		if ((rc = target_open(r)) != 0)
			goto out_keys;
	}
	if (mode != MODE_VERIFY && !o->dry_run) {
		bool fast = false;

		rc = fast_restore(r, mode, exact != NULL ? exact : o->item_id, &fast);
		if (rc != 0)
			goto out_keys;
		if (fast)
			goto finish;
	}
	if ((rc = pick_device(r)) != 0)
		goto out_keys;
	pb__hex(r->dev_id, sizeof(r->dev_id), res->device);
	if ((rc = check_rollback(r)) != 0)
		goto out_keys;
	if ((rc = master_key(&r->s, o, &r->dev, false, mk)) != 0)
		goto out_keys;
	pb_backup_keys_derive(mk, &r->keys);
	sodium_memzero(mk, sizeof(mk));
	if (mode == MODE_RESTORE && o->dry_run && (rc = local_scan(r)) != 0)
		goto out_keys;
	if ((rc = get_snapshot(r, &snap, &blob, &blob_len)) != 0)
		goto out_keys;
	res->snapshot = snap;
	rc = pb_manifest_root_open(&r->keys, blob, blob_len, &when, &nitems_total, &mchunks, &nmchunks);
	if (rc == PB_ESTORE_HASH)
		rc = reopen_root(r, blob, blob_len, &when, &nitems_total, &mchunks, &nmchunks);
	if (rc != 0)
		goto out_keys;
	r->pr.p.items_total = exact != NULL || o->item_id != NULL ? 0 : nitems_total;
	for (size_t i = 0; i < nmchunks && rc == 0 && !r->found; i++) {
		uint8_t *ct;
		uint64_t id;
		pb_envelope_t *in;

		/* A manifest chunk lists items; fetch it, then their chunks. */
		rc = request_chunk(r, mchunks[i], &id);
		if (rc == 0)
			rc = sess_reply(&r->s, id, &in);
		if (rc != 0)
			break;
		if (in->reply->op_case != PEERBACK__REPLY__OP_CHUNK) {
			pb__envelope_free(in);
			rc = PB_EENV_MALFORMED;
			break;
		}
		ct = in->reply->chunk->data.data;
		rc = pb_manifest_chunk_open(&r->keys, mchunks[i], ct, in->reply->chunk->data.len, collect_item, r);
		pb__envelope_free(in);
		if (rc == 0 && mode == MODE_RESTORE && o->dry_run)
			plan_items(r);
		else if (rc == 0)
			rc = fetch_items(r);
		free_items(r);
	}
finish:
	if (rc == 0 && mode == MODE_RESTORE) {
		/* Nothing of what was asked is in the snapshot: not a success,
		 * and no empty target appears. */
		if (r->pr.p.items_done == 0)
			rc = PB_ENOTFOUND;
		else if (!o->dry_run)
			rc = target_commit(r);
		if (rc == 0)
			cache_drop(r);
	}
	if (rc == 0 && mode == MODE_FETCH) {
		if (!r->found) {
			rc = PB_ENOTFOUND;
		} else {
			*out = r->out;
			*out_len = r->out_len;
			r->out = NULL;
		}
	}
	if (rc == 0 && mode == MODE_VERIFY && res->bad_items > 0)
		rc = PB_ESTORE_VERIFY;
	res->seconds = now_s() - t0;
	if (rc == 0)
		progress(&r->pr, true);
out_keys:
	if (rc != 0 && mode == MODE_RESTORE)
		target_report(r, rc);
	pb_device_writer_free(r->w);
	if (r->stagedir[0])
		pb__remove_tree(r->stagedir);
	for (size_t i = 0; i < r->ntmp; i++) {
		unlink(r->tmpfiles[i]);
		free(r->tmpfiles[i]);
	}
	free(r->tmpfiles);
	if (r->tmpdir[0])
		rmdir(r->tmpdir);
	free(r->out);
	free(blob);
	free(mchunks);
	free_items(r);
	free(r->items);
	free(r->prev_id);
	free(r->prev_path);
	local_free(r);
	pb_backup_keys_wipe(&r->keys);
	sess_close(&r->s);
out_free:
	free(r);
	return rc;
}

int pb_engine_restore(const pb_engine_opts_t *o, pb_engine_result_t *res)
{
	return run_restore(o, res, MODE_RESTORE, NULL, NULL, NULL);
}

int pb_engine_verify(const pb_engine_opts_t *o, pb_engine_result_t *res)
{
	return run_restore(o, res, MODE_VERIFY, NULL, NULL, NULL);
}

int pb_engine_fetch_item(const pb_engine_opts_t *o, const char *id, uint8_t **data, size_t *len)
{
	pb_engine_result_t res;

	*data = NULL;
	*len = 0;
	return run_restore(o, &res, MODE_FETCH, id, data, len);
}

int pb_engine_list(const pb_engine_opts_t *o, pb_engine_snapshot_t **out, size_t *n)
{
	struct restore *r = calloc(1, sizeof(*r));
	Peerback__Request req;
	Peerback__SnapshotList sl;
	pb_envelope_t *in;
	int rc;

	*out = NULL;
	*n = 0;
	if (r == NULL)
		return PB_ENOMEM;
	r->o = o;
	if ((rc = sess_open(&r->s, o)) != 0)
		goto out_free;
	if ((rc = pick_device(r)) != 0)
		goto out_close;
	peerback__request__init(&req);
	peerback__snapshot_list__init(&sl);
	sl.device = r->dev;
	req.op_case = PEERBACK__REQUEST__OP_SNAPSHOT_LIST;
	req.snapshot_list = &sl;
	if ((rc = sess_call(&r->s, &req, &in)) != 0)
		goto out_close;
	if (in->reply->op_case == PEERBACK__REPLY__OP_SNAPSHOTS) {
		size_t k = in->reply->snapshots->n_snapshots;

		*out = calloc(k ? k : 1, sizeof(**out));
		if (*out == NULL) {
			rc = PB_ENOMEM;
		} else {
			for (size_t i = 0; i < k; i++) {
				const Peerback__SnapshotInfo *s = in->reply->snapshots->snapshots[i];
				(*out)[i].id = s->snapshot;
				(*out)[i].time = s->time;
				(*out)[i].size = s->size;
				(*out)[i].chunks = s->chunks;
			}
			*n = k;
		}
	} else {
		rc = PB_EENV_MALFORMED;
	}
	pb__envelope_free(in);
out_close:
	sess_close(&r->s);
out_free:
	free(r);
	return rc;
}

int pb_engine_sim_snapshot(const pb_engine_opts_t *o, const char *iccid, const char *msisdn, uint64_t *snapshot)
{
	struct sess s;
	pb_backup_keys_t keys;
	uint8_t mk[PB_MASTERKEY_LEN], *val = NULL;
	char key[4 + 64 + 1];
	size_t len = 0;
	int rc;

	*snapshot = 0;
	if ((rc = local_master(o->home, mk)) != 0)
		return rc == -ENOENT ? PB_ESTORE_NOMASTER : rc;
	pb_backup_keys_derive(mk, &keys);
	sodium_memzero(mk, sizeof(mk));
	sim_key(&keys, iccid, msisdn, key);
	pb_backup_keys_wipe(&keys);
	if ((rc = sess_open(&s, o)) != 0)
		return rc;
	rc = host_blob(&s, NULL, key, &val, &len);
	if (rc == 0 && len != 8)
		rc = PB_EENV_MALFORMED;
	for (size_t k = 0; rc == 0 && k < 8; k++)
		*snapshot |= (uint64_t)val[k] << (8 * k);
	free(val);
	sess_close(&s);
	return rc;
}

/* --- Listing items ----------------------------------------------------------------- */

int pb_engine_items(const pb_engine_opts_t *o, pb_manifest_item_cb cb, void *arg, pb_engine_result_t *res)
{
	struct restore *r = calloc(1, sizeof(*r));
	uint8_t mk[PB_MASTERKEY_LEN], *blob = NULL;
	name_t *mchunks = NULL;
	size_t blob_len = 0, nmchunks = 0;
	uint64_t snap = o->snapshot, nitems = 0;
	int64_t when;
	int rc;

	memset(res, 0, sizeof(*res));
	if (r == NULL)
		return PB_ENOMEM;
	r->o = o;
	r->res = res;
	if ((rc = sess_open(&r->s, o)) != 0)
		goto out_free;
	if ((rc = pick_device(r)) != 0)
		goto out_close;
	pb__hex(r->dev_id, sizeof(r->dev_id), res->device);
	if ((rc = master_key(&r->s, o, &r->dev, false, mk)) != 0)
		goto out_close;
	pb_backup_keys_derive(mk, &r->keys);
	sodium_memzero(mk, sizeof(mk));
	if ((rc = get_snapshot(r, &snap, &blob, &blob_len)) != 0)
		goto out_keys;
	res->snapshot = snap;
	if ((rc = pb_manifest_root_open(&r->keys, blob, blob_len, &when, &nitems, &mchunks, &nmchunks)) != 0)
		goto out_keys;
	res->items = nitems;
	for (size_t i = 0; i < nmchunks && rc == 0; i++) {
		uint64_t id;
		pb_envelope_t *in;

		if ((rc = request_chunk(r, mchunks[i], &id)) != 0 || (rc = sess_reply(&r->s, id, &in)) != 0)
			break;
		if (in->reply->op_case != PEERBACK__REPLY__OP_CHUNK)
			rc = PB_EENV_MALFORMED;
		else
			rc = pb_manifest_chunk_open(&r->keys, mchunks[i], in->reply->chunk->data.data,
						    in->reply->chunk->data.len, cb, arg);
		pb__envelope_free(in);
	}
out_keys:
	free(blob);
	free(mchunks);
	pb_backup_keys_wipe(&r->keys);
out_close:
	sess_close(&r->s);
out_free:
	free(r);
	return rc;
}
