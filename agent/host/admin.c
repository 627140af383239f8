/* Host administration (include/peerback/host.h): paired devices, quotas,
 * remote instructions, prune and verify, through a serving host's handle
 * or a handle on its home. The host's pairing state is host.db
 * (agent/host/hostdb.h); a prune asks a host serving in another process
 * over its control socket (agent/host/control.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peerback.h"
#include "peerback/host.h"
#include "peerback/store.h"
#include "agent/account/account.h"
#include "agent/host/host.h"
#include "agent/host/hostdb.h"
#include "agent/imd/imd.h"
#include "agent/util/fsutil.h"
#include "agent/util/json.h"

/* in as valid UTF-8 (bytes that are not become U+FFFD) into out, cut at a
 * character's start when it does not fit. */
static void text(char *out, size_t cap, const char *in)
{
	json_t *j = pb__json_text(in);
	const char *s = j != NULL ? json_string_value(j) : "";
	size_t n = strlen(s);

	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	json_decref(j);
}

static void device_out(pb_hostdb_t *db, const pb_paired_device_t *d, pb_host_device_t *out)
{
	memset(out, 0, sizeof(*out));
	pb__hex(d->device_id, PB_DEVICE_ID_LEN, out->device);
	text(out->name, sizeof(out->name), d->name);
	text(out->account, sizeof(out->account), d->account);
	out->paired_at = d->paired_at;
	out->last_seen = d->last_seen;
	out->revoked = d->revoked;
	out->quota = pb__hostdb_quota(db, d->device_id, &out->quota_default);
}

struct each_device {
	pb_hostdb_t *db;
	int (*cb)(void *arg, const pb_host_device_t *d);
	void *arg;
	int rc, n;
};

static void each_device(void *arg, const pb_paired_device_t *d)
{
	struct each_device *e = arg;
	pb_host_device_t out;

	if (e->rc != 0)
		return;
	device_out(e->db, d, &out);
	e->rc = e->cb(e->arg, &out);
	e->n++;
}

int pb_host_devices(pb_host_t *host, int (*cb)(void *arg, const pb_host_device_t *d), void *arg)
{
	struct each_device e = { NULL, cb, arg, 0, 0 };
	int rc;

	if (host == NULL || cb == NULL)
		return PB_EINVAL;
	rc = pb__host_db(host, false, &e.db);
	if (rc == PB_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	rc = pb__hostdb_list(e.db, each_device, &e);
	if (rc < 0)
		return rc;
	return e.rc != 0 ? e.rc : e.n;
}

int pb_host_device(pb_host_t *host, const char *which, pb_host_device_t *out)
{
	pb_paired_device_t d;
	pb_hostdb_t *db;
	int rc;

	if (host == NULL || which == NULL || out == NULL)
		return PB_EINVAL;
	if ((rc = pb__host_db(host, true, &db)) != 0 || (rc = pb__hostdb_match(db, which, &d)) != 0)
		return rc;
	device_out(db, &d, out);
	return 0;
}

int pb_host_revoke(pb_host_t *host, const char *which, pb_host_device_t *out)
{
	pb_paired_device_t d;
	pb_hostdb_t *db;
	int rc;

	if (host == NULL || which == NULL)
		return PB_EINVAL;
	if ((rc = pb__host_db(host, true, &db)) != 0 || (rc = pb__hostdb_revoke(db, which, &d)) != 0)
		return rc;
	if (out != NULL)
		device_out(db, &d, out);
	return 0;
}

int pb_host_set_quota(pb_host_t *host, const char *which, uint64_t bytes, bool reset, pb_host_device_t *out)
{
	pb_paired_device_t d;
	pb_hostdb_t *db;
	int rc;

	if (host == NULL || which == NULL || (!reset && bytes == 0))
		return PB_EINVAL;
	if ((rc = pb__host_db(host, true, &db)) != 0 || (rc = pb__hostdb_match(db, which, &d)) != 0 ||
	    (rc = pb__hostdb_set_quota(db, d.device_id, bytes, reset)) != 0)
		return rc;
	if (out != NULL)
		device_out(db, &d, out);
	return 0;
}

static bool valid_iccid(const char *s)
{
	size_t n = strlen(s);

	if (n < 19 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Whether the account service links the two accounts (a blocking question). */
static int accounts_linked(pb_host_t *host, const char *a, const char *b, bool *linked)
{
	pb_account_t acct;
	int rc = pb__account_load(pb__host_home(host), &acct);

	if (rc == 0)
		rc = pb__imd_linked(acct.imd_addr, acct.imd_key, a, b, linked);
	sodium_memzero(&acct, sizeof(acct));
	return rc;
}

int pb_host_instruct(pb_host_t *host, const char *which, const char *op, const char *iccid, const char *to,
		     int64_t *id)
{
	pb_paired_device_t d, dest;
	bool copy, linked = false;
	pb_hostdb_t *db;
	int64_t n = 0;
	int rc;

	if (host == NULL || which == NULL || op == NULL || iccid == NULL)
		return PB_EINVAL;
	copy = strcmp(op, "copy-vsim") == 0;
	if ((!copy && strcmp(op, "delete-vsim") != 0) || copy != (to != NULL))
		return PB_EINVAL;
	if (!valid_iccid(iccid))
		return PB_EMALFORMED;
	if ((rc = pb__host_db(host, true, &db)) != 0 || (rc = pb__hostdb_match(db, which, &d)) != 0)
		return rc;
	if (copy) {
		if ((rc = pb__hostdb_match(db, to, &dest)) != 0)
			return rc;
		if (memcmp(d.device_id, dest.device_id, PB_DEVICE_ID_LEN) == 0)
			return PB_EINVAL;
		/* Between accounts only when they are linked sub-accounts. */
		if (strcmp(d.account, dest.account) != 0) {
			if ((rc = accounts_linked(host, d.account, dest.account, &linked)) != 0)
				return rc;
			if (!linked)
				return PB_EACCT_NOT_LINKED;
		}
	}
	rc = pb__hostdb_instruct(db, d.device_id, copy ? "export-vsim" : "delete-vsim", iccid,
				 copy ? dest.device_id : NULL, NULL, 0, &n);
	if (rc == 0 && id != NULL)
		*id = n;
	return rc;
}

struct each_instruction {
	int (*cb)(void *arg, const pb_host_instruction_t *in);
	void *arg;
};

static int each_instruction(void *arg, const pb_instruction_t *in)
{
	struct each_instruction *e = arg;
	pb_host_instruction_t out;

	memset(&out, 0, sizeof(out));
	out.id = in->id;
	pb__hex(in->device, PB_DEVICE_ID_LEN, out.device);
	text(out.op, sizeof(out.op), in->op);
	text(out.iccid, sizeof(out.iccid), in->iccid);
	if (in->has_peer)
		pb__hex(in->peer, PB_DEVICE_ID_LEN, out.peer);
	text(out.state, sizeof(out.state), in->state);
	text(out.result, sizeof(out.result), in->result);
	out.created = in->created;
	out.updated = in->updated;
	return e->cb(e->arg, &out);
}

int pb_host_instructions(pb_host_t *host, int (*cb)(void *arg, const pb_host_instruction_t *in), void *arg)
{
	struct each_instruction e = { cb, arg };
	pb_hostdb_t *db;
	int rc;

	if (host == NULL || cb == NULL)
		return PB_EINVAL;
	if ((rc = pb__host_db(host, true, &db)) != 0)
		return rc;
	return pb__hostdb_instructions(db, NULL, false, each_instruction, &e);
}

/* ---- prune and verify ----------------------------------------------------------- */

struct prune {
	pb_hostdb_t *db;
	pb_store_t *store;
	const pb_store_keep_t *keep;
	bool dry_run;
	void (*plan)(void *arg, const pb_host_prune_plan_t *p);
	void *arg;
	pb_host_prune_report_t *rep;
	int rc;
};

static void prune_device(void *arg, const pb_paired_device_t *d)
{
	struct prune *p = arg;
	char hex[2 * PB_DEVICE_ID_LEN + 1];
	pb_store_prune_result_t res;
	pb_store_ns_t *ns;
	int rc;

	if (p->rc != 0)
		return;
	pb__hex(d->device_id, PB_DEVICE_ID_LEN, hex);
	rc = p->dry_run ? pb_store_ns_open_ro(p->store, d->account, hex, &ns)
			: pb_store_ns_open(p->store, d->account, hex, &ns);
	if (rc != 0) {
		p->rc = rc;
		return;
	}
	rc = pb_store_prune_keep(ns, p->keep, p->dry_run, &res);
	if (rc == 0) {
		if (p->dry_run && p->plan != NULL) {
			pb_host_device_t dev;
			pb_host_prune_plan_t plan = { &dev, &res };

			device_out(p->db, d, &dev);
			p->plan(p->arg, &plan);
		}
		p->rep->snapshots_removed += res.removed;
		if (p->dry_run) {
			p->rep->chunks_removed += res.chunks;
			p->rep->bytes_freed += res.bytes;
		}
		pb_store_prune_result_free(&res);
	}
	pb_store_ns_close(ns);
	p->rc = rc;
}

int pb_host_prune(pb_host_t *host, const pb_store_keep_t *keep, bool dry_run,
		  void (*plan)(void *arg, const pb_host_prune_plan_t *p), void *arg, pb_host_prune_report_t *rep)
{
	pb_store_keep_t k = { 7, 0, 0, 0 };
	pb_store_gc_report_t gc = { 0 };
	struct prune p;
	char dir[4096];
	int rc;

	if (host == NULL || rep == NULL)
		return PB_EINVAL;
	if (pb__host_serving(host))
		return PB_ESTATE;
	memset(rep, 0, sizeof(*rep));
	if (keep != NULL && (keep->last || keep->daily || keep->weekly || keep->monthly))
		k = *keep;
	if ((rc = pb__path_join(dir, sizeof(dir), pb__host_home(host), "store")) != 0)
		return rc;
	memset(&p, 0, sizeof(p));
	/* A dry run only reads: it runs beside a serving host. */
	rc = dry_run ? pb_store_open_ro(dir, &p.store) : pb_store_open(dir, &p.store);
	if (rc == PB_ESTORE_LOCKED) {
		/* A running host does it between its phones' requests. */
		const unsigned v[4] = { k.last, k.daily, k.weekly, k.monthly };

		rc = pb__host_control_prune(pb__host_home(host), v, rep);
		return rc == 1 ? PB_ESTORE_LOCKED : rc;
	}
	if (rc != 0)
		return rc;
	if ((rc = pb__host_db(host, true, &p.db)) != 0) {
		pb_store_close(p.store);
		return rc;
	}
	p.keep = &k;
	p.dry_run = dry_run;
	p.plan = plan;
	p.arg = arg;
	p.rep = rep;
	rc = pb__hostdb_list(p.db, prune_device, &p);
	if (rc >= 0)
		rc = p.rc;
	/* No host serves this store, so no backup is half way: no grace period. */
	if (rc == 0 && !dry_run && (rc = pb_store_gc(p.store, 0, &gc)) == 0) {
		rep->chunks_removed = gc.chunks_removed;
		rep->packs_deleted = gc.packs_deleted;
		rep->packs_repacked = gc.packs_repacked;
		rep->bytes_freed = gc.bytes_freed;
	}
	pb_store_close(p.store);
	return rc;
}

int pb_host_verify(pb_host_t *host, pb_store_progress_cb progress, void *arg, pb_store_verify_report_t *rep)
{
	pb_store_t *store;
	char dir[4096];
	int rc;

	if (host == NULL || rep == NULL)
		return PB_EINVAL;
	if ((rc = pb__path_join(dir, sizeof(dir), pb__host_home(host), "store")) != 0)
		return rc;
	/* Verify only reads, so a running host's lock does not stop it. */
	rc = pb_store_open(dir, &store);
	if (rc == PB_ESTORE_LOCKED)
		rc = pb_store_open_ro(dir, &store);
	if (rc != 0)
		return rc;
	rc = pb_store_verify(store, progress, arg, rep);
	pb_store_close(store);
	return rc;
}
