/* The recovery passphrase on the phone: checking it against the phone's
 * wrapped master key, and changing it on the phone and every paired host. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "peerback/store.h"
#include "agent/phone/handle.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

#define MAX_HOSTS 32

static int home_file(const pb_phone_t *phone, const char *name, char *out, size_t cap)
{
	return pb__path_join(out, cap, phone->home, name);
}

/* The master key the phone holds: PB_ENOKEY when none. */
static int load_key(const pb_phone_t *phone, uint8_t mk[PB_MASTERKEY_LEN])
{
	char path[4096];
	uint8_t *key = NULL;
	size_t klen = 0;
	int rc;

	if ((rc = home_file(phone, "master.key", path, sizeof(path))) != 0)
		return rc;
	rc = pb__read_file(path, 64, &key, &klen);
	if (rc == 0 && klen == PB_MASTERKEY_LEN)
		memcpy(mk, key, PB_MASTERKEY_LEN);
	else if (rc == 0 || rc == -ENOENT)
		rc = PB_ENOKEY;
	if (key != NULL)
		sodium_memzero(key, klen);
	free(key);
	return rc;
}

bool pb_phone_has_master_key(pb_phone_t *phone)
{
	char path[4096];

	return phone != NULL && home_file(phone, "master.key", path, sizeof(path)) == 0 && access(path, F_OK) == 0;
}

int pb_phone_check_passphrase(pb_phone_t *phone, const char *pass)
{
	char path[4096];
	uint8_t *wrapped = NULL, mk[PB_MASTERKEY_LEN], key[PB_MASTERKEY_LEN];
	size_t wlen = 0;
	int rc;

	if (phone == NULL || pass == NULL)
		return PB_EINVAL;
	if ((rc = home_file(phone, "master.wrapped", path, sizeof(path))) != 0 ||
	    (rc = pb__read_file(path, PB_STORE_BLOB_MAX, &wrapped, &wlen)) != 0)
		return rc == -ENOENT ? PB_ENOTFOUND : rc;
	if ((rc = load_key(phone, key)) == PB_ENOKEY)
		rc = PB_ENOTFOUND;
	if (rc == 0 && (rc = pb_masterkey_unwrap(wrapped, wlen, pass, mk)) == 0)
		rc = sodium_memcmp(mk, key, PB_MASTERKEY_LEN) == 0 ? 0 : PB_ESTORE_PASSPHRASE;
	sodium_memzero(mk, sizeof(mk));
	sodium_memzero(key, sizeof(key));
	free(wrapped);
	return rc;
}

/* Gives the host this phone's wrapped master key (MasterKeyPut). */
static int put_wrapped(const pb_phone_t *phone, const pb_remembered_host_t *h, const uint8_t *blob, size_t len,
		       int timeout_ms)
{
	pb_client_t c;
	char key[64];
	int rc;

	(void)pb__b64url_encode(h->static_pk, 32, key, sizeof(key));
	if ((rc = pb__phone_connect(phone->home, key, timeout_ms, &c, NULL)) != 0)
		return rc;
	rc = pb__phone_blob_put(&c, 1, NULL, blob, len);
	pb__client_close(&c);
	return rc;
}

static void label(const pb_remembered_host_t *h, char *out, size_t cap)
{
	char addr[96] = "";

	if (h->naddrs > 0)
		(void)pb__sockaddr_format(&h->addrs[0], addr, sizeof(addr));
	snprintf(out, cap, "%s (%s)", h->name[0] ? h->name : "unnamed host", addr[0] ? addr : "no address");
}

static void tell(const pb_passphrase_opts_t *o, pb_event_type_t type, const char *name, const char *host, int err)
{
	pb_event_t ev;

	if (o->on_event == NULL)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.name = type == PB_EVENT_WARNING ? "warning" : "progress";
	ev.phase = "passphrase";
	ev.id = name;
	ev.message = host;
	ev.error = err;
	(void)o->on_event(o->event_arg, &ev);
}

/* Every host takes the new wrap, or none keeps it. */
static int rewrap_hosts(const pb_phone_t *phone, const pb_passphrase_opts_t *o, const pb_remembered_host_t *hosts,
			int n, const uint8_t *old_wrap, size_t old_len, const uint8_t *new_wrap,
			pb_passphrase_result_t *res)
{
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : 30000, rc = 0, bad = -1;
	char name[160];

	for (int i = 0; i < n && bad < 0; i++) {
		if ((rc = put_wrapped(phone, &hosts[i], new_wrap, PB_MASTERKEY_WRAPPED_LEN, timeout)) != 0)
			bad = i;
	}
	if (bad < 0)
		return 0;
	label(&hosts[bad], res->failed, sizeof(res->failed));
	/* All or nothing: a host left with another wrap than the phone's would
	 * refuse the next backup, and a new phone would need to know which
	 * passphrase each host takes. */
	for (int i = 0; i < bad; i++) {
		if (put_wrapped(phone, &hosts[i], old_wrap, old_len, timeout) != 0) {
			label(&hosts[i], name, sizeof(name));
			res->rollback_failed = true;
			tell(o, PB_EVENT_WARNING, hosts[i].name, name, PB_ESTATE);
		}
	}
	return rc;
}

int pb_phone_change_passphrase(pb_phone_t *phone, const pb_passphrase_opts_t *o, pb_passphrase_result_t *res)
{
	char path[4096], name[160];
	uint8_t *old_wrap = NULL, mk[PB_MASTERKEY_LEN], wrapped[PB_MASTERKEY_WRAPPED_LEN];
	size_t old_len = 0;
	pb_remembered_host_t *hosts = NULL;
	pb_pwhash_params_t weak;
	int rc, n = 0;

	if (phone == NULL || o == NULL || o->current == NULL || o->next == NULL || res == NULL)
		return PB_EINVAL;
	memset(res, 0, sizeof(*res));
	if ((rc = load_key(phone, mk)) != 0)
		return rc;
	if ((rc = home_file(phone, "master.wrapped", path, sizeof(path))) == 0)
		rc = pb__read_file(path, PB_STORE_BLOB_MAX, &old_wrap, &old_len);
	/* Changing it is for the one who knows the current one. */
	if (rc == 0 && (rc = pb_phone_check_passphrase(phone, o->current)) == PB_ENOTFOUND)
		rc = PB_ESTORE_PASSPHRASE;
	if (rc == 0 && pb_passphrase_check(o->next) != 0)
		rc = PB_ESTORE_WEAKPASS;
	if (rc == 0) {
		if (o->weak_kdf)
			weak = pb_pwhash_params_interactive();
		rc = pb_masterkey_wrap(mk, o->next, o->weak_kdf ? &weak : NULL, wrapped);
	}
	sodium_memzero(mk, sizeof(mk));
	if (rc == 0 && (hosts = calloc(MAX_HOSTS, sizeof(*hosts))) == NULL)
		rc = PB_ENOMEM;
	if (rc == 0 && (n = pb__phone_hosts(phone->home, hosts, MAX_HOSTS)) < 0)
		rc = n;
	if (rc == 0)
		rc = rewrap_hosts(phone, o, hosts, n, old_wrap, old_len, wrapped, res);
	if (rc == 0) {
		res->hosts = (size_t)n;
		rc = pb__write_file_atomic(path, wrapped, PB_MASTERKEY_WRAPPED_LEN, 0600);
	}
	for (int i = 0; rc == 0 && i < n; i++) {
		label(&hosts[i], name, sizeof(name));
		tell(o, PB_EVENT_PROGRESS, hosts[i].name, name, 0);
	}
	free(hosts);
	free(old_wrap);
	return rc;
}
