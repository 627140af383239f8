/* Using a credential in an NFC transaction: the local copy first, and when
 * it cannot be read during a transaction, the copy a paired host holds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "agent/backup/engine.h"
#include "agent/nfc/nfc.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"
#include "peerback/error.h"
#include "peerback/kinds.h"

#define FETCH_MAX_HOSTS 32 /* as many as a phone remembers */
#define FETCH_MAX_OLDER 8 /* earlier snapshots searched per host */

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Errors that mean the host did not answer, as opposed to answering with a
 * refusal or an error of its own. */
static bool no_answer(int rc)
{
	return (rc < 0 && rc > PB_ERR_MAX) || rc == PB_ETIMEOUT || rc == PB_ECANCELED || rc == PB_EPEER_CLOSED ||
	       rc == PB_EFRAME_TRUNCATED || rc == PB_ENFC_UNREACHABLE;
}

static int left_ms(double deadline)
{
	double left = deadline - now_ms();

	return left < 1 ? 0 : (int)left;
}

/* Asks one remembered host for one item: from this phone's latest backup
 * on it, else from its earlier snapshots, newest first, while time is left. */
static int fetch_one(const char *home, const pb_remembered_host_t *h, const char *item_id, double deadline,
		     uint8_t **data, size_t *len)
{
	pb_engine_opts_t o;
	pb_engine_snapshot_t *snaps = NULL;
	char key[64];
	size_t n = 0;
	int rc;

	if (pb__b64url_encode(h->static_pk, 32, key, sizeof(key)) < 0)
		return PB_EINVAL;
	memset(&o, 0, sizeof(o));
	o.home = home;
	o.host = key;
	if ((o.timeout_ms = left_ms(deadline)) == 0)
		return PB_ETIMEOUT;
	rc = pb_engine_fetch_item(&o, item_id, data, len);
	if (rc != PB_ENOTFOUND)
		return rc;
	if ((o.timeout_ms = left_ms(deadline)) == 0)
		return PB_ENOTFOUND;
	if (pb_engine_list(&o, &snaps, &n) != 0)
		return PB_ENOTFOUND;
	/* The newest snapshot was just searched. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (snaps[j].time > snaps[i].time || (snaps[j].time == snaps[i].time && snaps[j].id > snaps[i].id)) {
				pb_engine_snapshot_t t = snaps[i];
				snaps[i] = snaps[j];
				snaps[j] = t;
			}
	rc = PB_ENOTFOUND;
	for (size_t i = 1; i < n && i <= FETCH_MAX_OLDER && rc == PB_ENOTFOUND; i++) {
		if ((o.timeout_ms = left_ms(deadline)) == 0)
			break;
		o.snapshot = snaps[i].id;
		rc = pb_engine_fetch_item(&o, item_id, data, len);
	}
	free(snaps);
	return rc;
}

int pb__nfc_fetch_paired(void *arg, const char *home, const char *item_id, int timeout_ms, uint8_t **data,
			size_t *len, char *host)
{
	pb_remembered_host_t *hosts;
	double deadline = now_ms() + timeout_ms;
	int n, rc = PB_ENFC_UNREACHABLE, first_refusal = 0;
	bool not_found = false;

	(void)arg;
	*data = NULL;
	*len = 0;
	hosts = calloc(FETCH_MAX_HOSTS, sizeof(*hosts));
	if (hosts == NULL)
		return PB_ENOMEM;
	n = pb__phone_hosts(home, hosts, FETCH_MAX_HOSTS);
	if (n < 0) {
		rc = n;
		goto out_free;
	}
	if (n == 0) {
		rc = PB_EACCT_NOT_PAIRED;
		goto out_free;
	}
	/* The most recently paired host first. */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && hosts[j].paired_at > hosts[j - 1].paired_at; j--) {
			pb_remembered_host_t t = hosts[j];
			hosts[j] = hosts[j - 1];
			hosts[j - 1] = t;
		}
	for (int i = 0; i < n; i++) {
		if (left_ms(deadline) == 0)
			break;
		rc = fetch_one(home, &hosts[i], item_id, deadline, data, len);
		if (rc == 0) {
			if (host != NULL)
				memcpy(host, hosts[i].name, sizeof(hosts[i].name));
			goto out_free;
		}
		/* A host without any backup of this phone holds nothing either. */
		if (rc == PB_ENOTFOUND || rc == PB_ESTORE_NOSNAP)
			not_found = true;
		else if (!no_answer(rc) && first_refusal == 0)
			first_refusal = rc;
	}
	rc = not_found ? PB_ENOTFOUND : first_refusal != 0 ? first_refusal : PB_ENFC_UNREACHABLE;
out_free:
	sodium_memzero(hosts, FETCH_MAX_HOSTS * sizeof(*hosts));
	free(hosts);
	return rc;
}

static int reinstall(const char *device_dir, const char *id, const uint8_t *data, size_t len)
{
	pb_device_writer_t *w = NULL;
	char rel[PB_CREDENTIAL_ID_MAX + 32];
	pb_item_t item;
	int n, rc;

	n = snprintf(rel, sizeof(rel), "credentials/%s.json", id);
	if (n < 0 || (size_t)n >= sizeof(rel))
		return PB_ETOOBIG;
	memset(&item, 0, sizeof(item));
	item.kind = PB_KIND_CREDENTIAL;
	item.id = rel;
	item.path = rel;
	item.data = data;
	item.len = len;
	item.size = len;
	if ((rc = pb__mkdirs(device_dir, 0700)) != 0)
		return rc;
	if ((rc = pb_device_writer_open(device_dir, &w)) != 0)
		return rc;
	if ((rc = pb_device_writer_add(w, &item)) == 0)
		rc = pb_device_writer_commit(w);
	pb_device_writer_free(w);
	return rc;
}

int pb__nfc_use(const pb__nfc_use_opts_t *o, const char *id, pb__nfc_use_result_t *res)
{
	pb__nfc_fetch_fn fetch = o->fetch != NULL ? o->fetch : pb__nfc_fetch_paired;
	uint64_t now = o->now != 0 ? o->now : (uint64_t)time(NULL);
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : PB_NFC_TIMEOUT_DEFAULT_MS;
	char item_id[PB_CREDENTIAL_ID_MAX + 32];
	uint8_t *data = NULL;
	size_t len = 0;
	double t0;
	int n, rc;

	memset(res, 0, sizeof(*res));
	if (o->home == NULL || o->device_dir == NULL || id == NULL)
		return PB_EINVAL;
	if (timeout > PB_NFC_TIMEOUT_MAX_MS)
		timeout = PB_NFC_TIMEOUT_MAX_MS;
	res->local = pb_credential_check(o->device_dir, id, now);
	if (res->local == PB_EINVAL)
		return PB_EINVAL;
	if (res->local == 0) {
		rc = pb_credential_load(o->device_dir, id, &res->cred);
		if (rc == 0)
			return 0;
		/* Changed between the check and the load: count it as unreadable. */
		res->local = rc == PB_ENOTFOUND ? rc : PB_EDATA_FORMAT;
	}
	res->transaction = o->transaction || pb__nfc_txn_get(o->home, now, NULL) == 0;
	if (!res->transaction)
		return PB_ENFC_NO_TXN;

	n = snprintf(item_id, sizeof(item_id), "credentials/%s.json", id);
	if (n < 0 || (size_t)n >= sizeof(item_id))
		return PB_EINVAL;
	t0 = now_ms();
	rc = fetch(o->fetch_arg, o->home, item_id, timeout, &data, &len, res->host);
	if (rc != 0)
		goto out_free;
	/* The host's copy is checked as strictly as the local one. */
	if ((rc = pb_credential_parse(data, len, &res->cred, NULL, 0)) != 0) {
		rc = PB_EDATA_FORMAT;
		goto out_free;
	}
	if (strcmp(res->cred->id, id) != 0) {
		rc = PB_EDATA_FORMAT;
		goto out_cred;
	}
	if ((rc = pb_credential_verify(res->cred, now)) != 0)
		goto out_cred;
	res->from_host = true;
	res->fetch_ms = now_ms() - t0;
	if (o->reinstall) {
		res->reinstall_error = reinstall(o->device_dir, id, data, len);
		res->reinstalled = res->reinstall_error == 0;
	}
	goto out_free;

out_cred:
	pb_credential_free(res->cred);
	res->cred = NULL;
out_free:
	if (data != NULL) {
		sodium_memzero(data, len);
		free(data);
	}
	return rc;
}
