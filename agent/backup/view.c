/* A backup read on its host (pb_store_restore): the restore engine over
 * the host store opened read only in this process, with a master key the
 * caller unwrapped, into the caller's provider. The engine's phone state
 * (its restore cache, staging) lives in the caller's working folder. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/engine.h"
#include "agent/backup/repo.h"

int pb_store_restore(const pb_store_restore_opts_t *o, pb_op_result_t *res)
{
	pb_engine_opts_t eo;
	pb_repo_t *repo = NULL;
	uint8_t dev[16];
	int rc;

	memset(res, 0, sizeof(*res));
	if (o->store_dir == NULL || o->account == NULL || o->device == NULL || o->master_key == NULL ||
	    o->work_dir == NULL || o->provider == NULL)
		return PB_EINVAL;
	if (strlen(o->device) != 32 ||
	    sodium_hex2bin(dev, sizeof(dev), o->device, 32, NULL, NULL, NULL) != 0)
		return PB_EINVAL;
	/* The device's own namespace is the repository's: its snapshots are
	 * the phone's own, as for the phone restoring itself. */
	if ((rc = pb__repo_local_open_ro(o->store_dir, o->account, dev, &repo)) != 0)
		return rc;
	memset(&eo, 0, sizeof(eo));
	eo.home = o->work_dir;
	eo.provider = o->provider;
	eo.repo = repo;
	eo.master_key = o->master_key;
	eo.no_resume = true;
	eo.kind_mask = o->kind_mask;
	eo.want = o->want;
	eo.want_arg = o->want_arg;
	eo.on_event = o->on_event;
	eo.event_arg = o->event_arg;
	rc = pb_engine_restore(&eo, res);
	pb__repo_close(repo);
	return rc;
}
