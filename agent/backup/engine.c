/* What the backup engine's files share: progress and events, cancellation,
 * and the repository and provider a run uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/util/event.h"
#include "agent/util/fsutil.h"

double pb__now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int pb__grow(void **p, size_t *cap, size_t need, size_t elem)
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

void *pb__grow_slot(void **p, size_t *cap, size_t n, size_t elem)
{
	uint8_t *slot;

	if (pb__grow(p, cap, n + 1, elem) != 0)
		return NULL;
	slot = (uint8_t *)*p + n * elem;
	memset(slot, 0, elem);
	return slot;
}

int pb__emit(const pb_engine_opts_t *o, pb_event_t *ev)
{
	if (o->on_event == NULL)
		return 0;
	if (ev->name == NULL)
		ev->name = pb__event_name(ev->type);
	return o->on_event(o->event_arg, ev) != 0 ? PB_ECANCELED : 0;
}

int pb__progress(pb__prog_t *pr, bool final)
{
	bool item = pr->p.items_done != pr->items_told;
	/* The clock only where a throttle asks for it: an event for each item
	 * done needs none (a million messages are a million events). */
	double t = pr->o->progress != NULL || (pr->o->on_event != NULL && !final && !item) ? pb__now_s() : 0;

	if (pr->o->progress != NULL && (final || t - pr->last >= 0.1)) {
		pr->last = t;
		pr->p.final = final;
		pr->o->progress(pr->o->progress_arg, &pr->p);
	}
	/* Events: at each item done, within a large item every 0.1 s, and at
	 * the end; a callback that asked to stop is not asked again. */
	if (pr->o->on_event != NULL && pr->canceled == 0 && (final || item || t - pr->last_event >= 0.1)) {
		const pb_progress_t *p = &pr->p;
		pb_event_t ev = { .type = PB_EVENT_PROGRESS, .phase = p->phase, .items_done = p->items_done,
				  .items_total = p->items_total, .bytes_done = p->bytes_done,
				  .bytes_total = p->bytes_total, .bytes_sent = p->bytes_sent,
				  .bytes_committed = p->bytes_committed, .chunks_sent = p->chunks_sent };

		if (t > 0)
			pr->last_event = t;
		pr->items_told = pr->p.items_done;
		pr->canceled = pb__emit(pr->o, &ev);
	}
	/* The last event cannot cancel: the run is done. */
	return final ? 0 : pr->canceled;
}

int pb__warn(const pb_engine_opts_t *o, const char *phase, const char *path, uint64_t line, int err,
	     const char *message)
{
	pb_event_t ev = { .type = PB_EVENT_WARNING, .phase = phase, .path = path, .line = line, .error = err,
			  .message = message };

	return pb__emit(o, &ev);
}

void pb__done(const pb_engine_opts_t *o, const char *phase, int rc, uint64_t snapshot)
{
	pb_event_t ev = { .type = PB_EVENT_DONE, .phase = phase, .error = rc, .snapshot = snapshot };

	/* The last event cannot cancel: the run is over. */
	(void)pb__emit(o, &ev);
}

int pb__skip_quietly(void *arg, const char *rel, int err, uint64_t line, const char *why)
{
	(void)arg;
	(void)rel;
	(void)err;
	(void)line;
	(void)why;
	return 0;
}

int pb__state_path(const char *home, char *out, size_t cap)
{
	return pb__path_join(out, cap, home, "backup-state.db");
}

void pb__item_hash(const pb_backup_keys_t *keys, const uint8_t *data, size_t len, uint8_t out[32])
{
	crypto_generichash(out, 32, data, len, keys->name, sizeof(keys->name));
}

/* Its own personalization: a hash of names is never a hash of bytes. */
static const uint8_t names_personal[crypto_generichash_blake2b_PERSONALBYTES] = "peerback/names";

void pb__item_names_hash(const pb_backup_keys_t *keys, const uint8_t *names, size_t n, uint8_t out[32])
{
	crypto_generichash_blake2b_state st;

	crypto_generichash_blake2b_init_salt_personal(&st, keys->name, sizeof(keys->name), 32, NULL, names_personal);
	crypto_generichash_blake2b_update(&st, names, n * PB_STORE_NAME_LEN);
	crypto_generichash_blake2b_final(&st, out, 32);
}

bool pb__item_by_names(const pb_backup_keys_t *keys, const uint8_t *names, size_t n, const uint8_t hash[32])
{
	uint8_t h[32];

	if (n < 2)
		return false;
	pb__item_names_hash(keys, names, n, h);
	return sodium_memcmp(h, hash, 32) == 0;
}

void pb__sim_key(const pb_backup_keys_t *keys, const char *iccid, const char *msisdn, char out[4 + 64 + 1])
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

/* Instructions carried out on connecting: told to the old-style callback
 * and as events (which cannot cancel: they are already done). */
static void instruction(void *arg, const char *op, int rc, const char *message)
{
	const pb_engine_opts_t *o = arg;
	pb_event_t ev = { .type = PB_EVENT_INSTRUCTION, .op = op, .error = rc, .message = message };

	if (o->on_instruction != NULL)
		o->on_instruction(o->instruction_arg, op, rc, message);
	(void)pb__emit(o, &ev);
}

int pb__engine_repo(const pb_engine_opts_t *o, pb_repo_t **out, bool *owned)
{
	*owned = false;
	if (o->repo != NULL) {
		*out = o->repo;
		return 0;
	}
	*owned = true;
	return pb__repo_remote_open(o->home, o->host, o->timeout_ms, o->device_dir, instruction, (void *)o, out);
}

int pb__engine_provider(const pb_engine_opts_t *o, const pb_provider_t **out, pb_provider_t **owned)
{
	int rc;

	*owned = NULL;
	if (o->provider != NULL) {
		*out = o->provider;
		return 0;
	}
	if (o->device_dir == NULL)
		return PB_EINVAL;
	if ((rc = pb_provider_dir(o->device_dir, owned)) != 0)
		return rc;
	*out = *owned;
	return 0;
}
