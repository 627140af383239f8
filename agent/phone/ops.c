/* pb_phone_backup, restore, verify, snapshots, fetch: the phone handle over
 * the backup engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peerback.h"
#include "agent/backup/engine.h"
#include "agent/phone/handle.h"

static const pb_op_opts_t no_opts;

static int engine_opts(pb_phone_t *p, const pb_op_opts_t *op, pb_engine_opts_t *e, pb_pwhash_params_t *weak)
{
	memset(e, 0, sizeof(*e));
	if (op == NULL)
		op = &no_opts;
	e->home = p->home;
	if (p->has_provider)
		e->provider = &p->provider;
	else
		e->device_dir = p->device_dir;
	e->repo = p->repo;
	e->host = op->host;
	e->passphrase = op->passphrase;
	if (op->weak_kdf) {
		*weak = pb_pwhash_params_interactive();
		e->wrap_params = weak;
	}
	e->kind_mask = op->kind_mask;
	e->item_id = op->item_id;
	e->from_device = op->from_device;
	e->snapshot = op->snapshot;
	e->dry_run = op->dry_run;
	e->timeout_ms = op->timeout_ms;
	e->on_event = op->on_event;
	e->event_arg = op->event_arg;
	return 0;
}

typedef int (*engine_fn)(const pb_engine_opts_t *o, pb_engine_result_t *res);

/* One engine call: fn, or a walk of the items to cb. */
struct call {
	engine_fn fn;
	pb_manifest_item_cb cb;
	void *arg;
};

static int run(pb_phone_t *phone, const pb_op_opts_t *op, pb_op_result_t *res, const struct call *c)
{
	pb_engine_opts_t e;
	pb_engine_result_t r;
	pb_pwhash_params_t weak;
	int rc;

	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (phone == NULL)
		return PB_EINVAL;
	if ((rc = engine_opts(phone, op, &e, &weak)) != 0)
		return rc;
	if (res == NULL)
		res = &r;
	return c->cb != NULL ? pb_engine_items(&e, c->cb, c->arg, res) : c->fn(&e, res);
}

int pb_phone_backup(pb_phone_t *phone, const pb_op_opts_t *opts, pb_op_result_t *res)
{
	struct call c = { pb_engine_backup, NULL, NULL };

	return run(phone, opts, res, &c);
}

int pb_phone_restore(pb_phone_t *phone, const pb_op_opts_t *opts, pb_op_result_t *res)
{
	struct call c = { pb_engine_restore, NULL, NULL };

	return run(phone, opts, res, &c);
}

int pb_phone_verify(pb_phone_t *phone, const pb_op_opts_t *opts, pb_op_result_t *res)
{
	struct call c = { pb_engine_verify, NULL, NULL };

	return run(phone, opts, res, &c);
}

int pb_phone_snapshots(pb_phone_t *phone, const pb_op_opts_t *opts, pb_snapshot_info_t **out, size_t *n)
{
	pb_engine_opts_t e;
	pb_engine_snapshot_t *s = NULL;
	pb_pwhash_params_t weak;
	int rc;

	*out = NULL;
	*n = 0;
	if (phone == NULL)
		return PB_EINVAL;
	if ((rc = engine_opts(phone, opts, &e, &weak)) != 0 || (rc = pb_engine_list(&e, &s, n)) != 0)
		return rc;
	/* The same fields in the same order: handed over as they are. */
	_Static_assert(sizeof(pb_engine_snapshot_t) == sizeof(pb_snapshot_info_t), "snapshot info layout");
	*out = (pb_snapshot_info_t *)(void *)s;
	return 0;
}

int pb_phone_items(pb_phone_t *phone, const pb_op_opts_t *opts, pb_manifest_item_cb cb, void *arg,
		   pb_op_result_t *res)
{
	struct call c = { NULL, cb, arg };

	return cb == NULL ? PB_EINVAL : run(phone, opts, res, &c);
}

int pb_phone_fetch(pb_phone_t *phone, const pb_op_opts_t *opts, const char *id, uint8_t **data, size_t *len)
{
	pb_engine_opts_t e;
	pb_pwhash_params_t weak;
	int rc;

	*data = NULL;
	*len = 0;
	if (phone == NULL || id == NULL)
		return PB_EINVAL;
	if ((rc = engine_opts(phone, opts, &e, &weak)) != 0)
		return rc;
	return pb_engine_fetch_item(&e, id, data, len);
}
