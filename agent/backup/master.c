/* The master key: one per account, wrapped with the account's one
 * recovery passphrase. The first device to back up makes it, every later
 * device takes it (unwrapped with that passphrase, so a second passphrase
 * cannot start) and gives the repository the same wrap under its own name.
 *
 * Phone state under HOME: master.key (the 32-byte key, 0600) and
 * master.wrapped (the same key wrapped, as the repository holds it). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/util/fsutil.h"

int pb__master_local(const char *home, uint8_t mk[PB_MASTERKEY_LEN])
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

static int read_wrapped(const char *home, uint8_t **blob, size_t *len)
{
	char path[4096];
	int rc;

	if ((rc = pb__path_join(path, sizeof(path), home, "master.wrapped")) != 0)
		return rc;
	return pb__read_file(path, PB_STORE_BLOB_MAX, blob, len);
}

/* The wrapped key of the account's device with the latest backup, other
 * than this phone; PB_ENOTFOUND when none has one. */
static int account_blob(pb_repo_t *repo, uint8_t **blob, size_t *len)
{
	pb_repo_device_t *d = NULL;
	const uint8_t *best_id = NULL;
	int64_t best = -1;
	size_t n = 0;
	int rc;

	if ((rc = repo->ops->devices(repo, &d, &n)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (memcmp(d[i].id, repo->device_id, 16) == 0)
			continue;
		if (d[i].latest > best) {
			best = d[i].latest;
			best_id = d[i].id;
		}
	}
	rc = best_id == NULL ? PB_ENOTFOUND : repo->ops->blob_get(repo, best_id, NULL, blob, len);
	free(d);
	return rc;
}

/* Another device's key for reading its backups: this phone's when the
 * repository holds the same wrap for it (one key per account), else its
 * own wrap opened with the passphrase, used for this restore only and
 * never stored: restoring from another device does not change this
 * phone's key. */
static int other_device_key(pb_repo_t *repo, const pb_engine_opts_t *o, const uint8_t *dev,
			    uint8_t mk[PB_MASTERKEY_LEN])
{
	uint8_t *theirs = NULL, *ours = NULL;
	size_t tlen = 0, olen = 0;
	int rc = repo->ops->blob_get(repo, dev, NULL, &theirs, &tlen);

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

/* Makes sure the repository holds this phone's wrap, and that it is this
 * phone's: another one (swapped on the host, or written by a device that
 * took this namespace) would leave the backups there unrecoverable with
 * the phone's passphrase. */
static int check_wrap(pb_repo_t *repo, const char *home)
{
	uint8_t *have = NULL, *blob = NULL;
	size_t have_len = 0, len = 0;
	int rc = repo->ops->blob_get(repo, NULL, NULL, &have, &have_len);

	if (rc != 0 && rc != PB_ENOTFOUND)
		return rc;
	if ((rc = read_wrapped(home, &blob, &len)) == 0)
		rc = have == NULL ? repo->ops->blob_put(repo, NULL, blob, len)
		     : have_len == len && sodium_memcmp(have, blob, len) == 0 ? 0
									: PB_ESTORE_MASTER_MISMATCH;
	free(have);
	free(blob);
	return rc == -ENOENT ? PB_ESTORE_NOMASTER : rc;
}

/* The account's first backup: a new key, wrapped with the passphrase and
 * given to the repository. */
static int new_key(pb_repo_t *repo, const pb_engine_opts_t *o, uint8_t mk[PB_MASTERKEY_LEN])
{
	uint8_t wrapped[PB_MASTERKEY_WRAPPED_LEN];
	pb_pwhash_params_t params;
	int rc;

	if (o->passphrase == NULL || o->passphrase[0] == 0)
		return PB_ESTORE_NOMASTER;
	/* The rule applies where a passphrase is set, never where one opens
	 * an existing wrap. */
	if ((rc = pb_passphrase_check(o->passphrase)) != 0)
		return rc;
	pb_masterkey_generate(mk);
	params = o->wrap_params != NULL ? *o->wrap_params : pb_pwhash_params_moderate();
	rc = pb_masterkey_wrap(mk, o->passphrase, &params, wrapped);
	if (rc == 0)
		rc = repo->ops->blob_put(repo, NULL, wrapped, sizeof(wrapped));
	if (rc == 0)
		rc = save_master(o->home, mk, wrapped, sizeof(wrapped));
	if (rc != 0)
		sodium_memzero(mk, PB_MASTERKEY_LEN);
	return rc;
}

/* The master key for reading dev's backups (dev NULL: this phone's), or
 * with create for this phone's backup: the local one; else the
 * repository's wrap for this phone, else (a new phone) the account's,
 * unwrapped with the passphrase and kept; else, for the account's first
 * backup, a new one. */
int pb__master_key(pb_repo_t *repo, const pb_engine_opts_t *o, const uint8_t *dev, bool create,
		   uint8_t mk[PB_MASTERKEY_LEN])
{
	uint8_t *blob = NULL;
	size_t len = 0;
	bool own = dev == NULL || memcmp(dev, repo->device_id, 16) == 0;
	bool adopted = false;
	int rc;

	if (o->master_key != NULL) {
		memcpy(mk, o->master_key, PB_MASTERKEY_LEN);
		return 0;
	}
	rc = pb__master_local(o->home, mk);
	if (rc == 0) {
		if (!create)
			return own ? 0 : other_device_key(repo, o, dev, mk);
		return check_wrap(repo, o->home);
	}
	if (rc != -ENOENT)
		return rc;
	/* No key here yet. This phone's own wrap on the repository first. */
	rc = repo->ops->blob_get(repo, NULL, NULL, &blob, &len);
	if (rc == PB_ENOTFOUND) {
		/* A new phone takes the account's key (from the device it
		 * restores, or any that backed up): one passphrase for all. */
		rc = !own ? repo->ops->blob_get(repo, dev, NULL, &blob, &len) : account_blob(repo, &blob, &len);
		if (rc == PB_ENOTFOUND && !own)
			rc = account_blob(repo, &blob, &len);
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
		/* The account's key is now this phone's too: the repository
		 * keeps the same wrap under this phone's name. */
		if (rc == 0 && adopted && create)
			rc = repo->ops->blob_put(repo, NULL, blob, len);
		free(blob);
		if (rc == 0 && !own)
			rc = other_device_key(repo, o, dev, mk);
		return rc;
	}
	if (rc != PB_ENOTFOUND || !create)
		return rc == PB_ENOTFOUND ? PB_ESTORE_NOSNAP : rc;
	return new_key(repo, o, mk);
}

int pb__master_device(pb_repo_t *repo, const uint8_t *dev, const char *passphrase, uint8_t mk[PB_MASTERKEY_LEN])
{
	uint8_t *wrap = NULL;
	size_t wlen = 0;
	int rc;

	if (passphrase == NULL)
		return PB_ESTORE_WRONG_KEY;
	if ((rc = repo->ops->blob_get(repo, dev, NULL, &wrap, &wlen)) != 0)
		return rc == PB_ENOTFOUND ? PB_ESTORE_WRONG_KEY : rc;
	rc = pb_masterkey_unwrap(wrap, wlen, passphrase, mk);
	free(wrap);
	return rc;
}
