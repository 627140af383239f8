/* The phone handle's account, pairing, hosts, instructions, recovery
 * passphrase and NFC calls: the public face of agent/phone, agent/account
 * and agent/nfc. */
#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "peerback/store.h"
#include "agent/nfc/nfc.h"
#include "agent/phone/handle.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

#define MAX_HOSTS 32

/* --- Account ------------------------------------------------------------------ */

int pb_phone_resolve(const char *given, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *colon;
	int n;

	if (given == NULL || out == NULL)
		return PB_EINVAL;
	if (pb__sockaddr_parse(given, &ss) == 0) {
		n = snprintf(out, cap, "%s", given);
		return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
	}
	colon = strrchr(given, ':');
	if (colon == NULL || colon == given || (size_t)(colon - given) >= sizeof(host) || given[0] == '[')
		return PB_EURI_ADDR;
	memcpy(host, given, (size_t)(colon - given));
	host[colon - given] = 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
		return PB_ENOTFOUND;
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return pb__sockaddr_format(&ss, out, cap);
}

int pb_phone_login(pb_phone_t *phone, const char *service_addr, const char *service_key, const char *account,
		   const char *password, const char *name)
{
	char addr[96];
	int rc;

	if (phone == NULL || service_addr == NULL || service_key == NULL || account == NULL || password == NULL ||
	    name == NULL)
		return PB_EINVAL;
	/* The phone stores and later dials an address, not a name. */
	if ((rc = pb_phone_resolve(service_addr, addr, sizeof(addr))) != 0)
		return rc;
	return pb__phone_login(phone->home, addr, service_key, account, password, name);
}

int pb_phone_account(pb_phone_t *phone, pb_account_info_t *out)
{
	pb_account_t acct;
	pb_identity_t id;
	int rc;

	if (phone == NULL || out == NULL)
		return PB_EINVAL;
	memset(out, 0, sizeof(*out));
	rc = pb__account_load(phone->home, &acct);
	if (rc == 0)
		rc = pb__identity_load(phone->home, &id);
	if (rc == -ENOENT || rc == PB_ENOTFOUND)
		rc = PB_EACCT_NOT_LOGGED_IN;
	if (rc != 0)
		return rc;
	snprintf(out->account, sizeof(out->account), "%s", acct.account);
	snprintf(out->name, sizeof(out->name), "%s", acct.device_name);
	snprintf(out->service, sizeof(out->service), "%s", acct.imd_addr);
	pb__hex(id.device_id, PB_DEVICE_ID_LEN, out->device);
	(void)pb__b64url_encode(id.static_pk, 32, out->key, sizeof(out->key));
	pb__identity_wipe(&id);
	return 0;
}

/* --- Hosts -------------------------------------------------------------------- */

static void host_info(const pb_remembered_host_t *h, pb_host_info_t *out)
{
	memset(out, 0, sizeof(*out));
	(void)pb__b64url_encode(h->static_pk, 32, out->key, sizeof(out->key));
	pb__hex(h->device_id, PB_DEVICE_ID_LEN, out->device);
	snprintf(out->account, sizeof(out->account), "%s", h->account);
	snprintf(out->name, sizeof(out->name), "%s", h->name);
	for (size_t i = 0; i < h->naddrs && out->naddrs < PB_HOST_ADDRS_MAX; i++)
		if (pb__sockaddr_format(&h->addrs[i], out->addrs[out->naddrs], sizeof(out->addrs[0])) == 0)
			out->naddrs++;
	out->paired_at = h->paired_at;
}

int pb_phone_pair(pb_phone_t *phone, const char *uri, int timeout_ms, pb_host_info_t *host)
{
	pb_remembered_host_t h;
	int rc;

	if (phone == NULL || uri == NULL)
		return PB_EINVAL;
	rc = pb__phone_pair(phone->home, uri, timeout_ms > 0 ? timeout_ms : 10000, NULL, &h);
	if (rc == 0 && host != NULL)
		host_info(&h, host);
	return rc;
}

int pb_phone_hosts(pb_phone_t *phone, pb_host_info_t **out, size_t *n)
{
	pb_remembered_host_t *hosts;
	int count;

	if (phone == NULL || out == NULL || n == NULL)
		return PB_EINVAL;
	*out = NULL;
	*n = 0;
	if ((hosts = calloc(MAX_HOSTS, sizeof(*hosts))) == NULL)
		return PB_ENOMEM;
	count = pb__phone_hosts(phone->home, hosts, MAX_HOSTS);
	if (count > 0 && (*out = calloc((size_t)count, sizeof(**out))) == NULL)
		count = PB_ENOMEM;
	for (int i = 0; i < count; i++)
		host_info(&hosts[i], &(*out)[i]);
	free(hosts);
	if (count < 0)
		return count;
	*n = (size_t)count;
	return 0;
}

int pb_phone_forget(pb_phone_t *phone, const char *which)
{
	if (phone == NULL || which == NULL)
		return PB_EINVAL;
	return pb__phone_forget(phone->home, which);
}

/* --- Instructions and ping ------------------------------------------------------ */

static void on_instruction(void *arg, const char *op, int rc, const char *message)
{
	const pb_op_opts_t *o = arg;
	pb_event_t ev;

	if (o == NULL || o->on_event == NULL)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = PB_EVENT_INSTRUCTION;
	ev.name = "instruction";
	ev.op = op;
	ev.error = rc;
	ev.message = message;
	/* An instruction already carried out cannot be taken back: the
	 * return value does not cancel it. */
	(void)o->on_event(o->event_arg, &ev);
}

static double ms_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) * 1e3 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

static int run_instructions(pb_phone_t *phone, pb_client_t *c, const pb_op_opts_t *opts)
{
	return pb__phone_instructions(c, phone->home, phone->device_dir, on_instruction, (void *)opts);
}

int pb_phone_instructions(pb_phone_t *phone, const pb_op_opts_t *opts)
{
	pb_client_t c;
	int rc;

	if (phone == NULL)
		return PB_EINVAL;
	rc = pb__phone_connect(phone->home, opts != NULL ? opts->host : NULL,
			       opts != NULL && opts->timeout_ms > 0 ? opts->timeout_ms : 15000, &c, NULL);
	if (rc != 0)
		return rc;
	rc = run_instructions(phone, &c, opts);
	pb__client_close(&c);
	return rc;
}

int pb_phone_ping(pb_phone_t *phone, const pb_op_opts_t *opts, pb_ping_result_t *res)
{
	pb_remembered_host_t h;
	pb_client_t c;
	struct timespec t0;
	int rc;

	if (phone == NULL || res == NULL)
		return PB_EINVAL;
	memset(res, 0, sizeof(*res));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Room to find a host that moved. */
	rc = pb__phone_connect(phone->home, opts != NULL ? opts->host : NULL,
			       opts != NULL && opts->timeout_ms > 0 ? opts->timeout_ms : 15000, &c, &h);
	if (rc != 0)
		return rc;
	res->connect_ms = ms_since(&t0);
	host_info(&h, &res->host);
	if ((rc = run_instructions(phone, &c, opts)) < 0) {
		pb__client_close(&c);
		return rc;
	}
	res->instructions = rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = pb__phone_ping(&c, 2);
	res->rtt_ms = ms_since(&t0);
	pb__client_close(&c);
	return rc;
}

/* --- SIM identity ----------------------------------------------------------------- */

int pb_phone_sim_identity(pb_phone_t *phone, char *iccid, size_t icap, char *msisdn, size_t mcap)
{
	if (phone == NULL)
		return PB_EINVAL;
	return pb__sim_identity(phone->device_dir, iccid, icap, msisdn, mcap);
}

/* --- NFC ---------------------------------------------------------------------------- */

static uint64_t now_s(void)
{
	return pb__now();
}

int pb_phone_nfc_begin(pb_phone_t *phone, unsigned ttl_s)
{
	if (phone == NULL)
		return PB_EINVAL;
	return pb__nfc_txn_begin(phone->home, ttl_s, now_s());
}

int pb_phone_nfc_end(pb_phone_t *phone)
{
	if (phone == NULL)
		return PB_EINVAL;
	return pb__nfc_txn_end(phone->home);
}

int pb_phone_nfc_status(pb_phone_t *phone, uint64_t *expires)
{
	if (phone == NULL)
		return PB_EINVAL;
	return pb__nfc_txn_get(phone->home, now_s(), expires);
}

/* The app's fetch behind the library's fetch type (which names the home). */
static int app_fetch(void *arg, const char *home, const char *item_id, int timeout_ms, uint8_t **data, size_t *len,
		     char *host)
{
	const pb_nfc_opts_t *opts = arg;

	(void)home;
	return opts->fetch(opts->fetch_arg, item_id, timeout_ms, data, len, host);
}

int pb_phone_nfc_use(pb_phone_t *phone, const char *id, const pb_nfc_opts_t *opts, pb_nfc_result_t *res)
{
	pb__nfc_use_opts_t o;

	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (phone == NULL || id == NULL || res == NULL)
		return PB_EINVAL;
	memset(&o, 0, sizeof(o));
	o.home = phone->home;
	o.device_dir = phone->device_dir;
	if (opts != NULL) {
		o.transaction = opts->transaction;
		o.reinstall = opts->reinstall;
		o.timeout_ms = opts->timeout_ms;
		if (opts->fetch != NULL) {
			o.fetch = app_fetch;
			o.fetch_arg = (void *)opts;
		}
	}
	return pb__nfc_use(&o, id, res);
}

int pb_phone_m1_find(pb_phone_t *phone, const char *name, char *id, size_t cap)
{
	if (phone == NULL || name == NULL)
		return PB_EINVAL;
	return pb__m1_find_card(phone->device_dir, name, id, cap);
}

/* The state of a sector's cache copy against the card store. */
static const char *cache_state(const char *home, const char *card_id, unsigned sector, const uint8_t *cur,
			       size_t len)
{
	char path[4096];
	uint8_t *buf = NULL;
	size_t n;
	const char *st;

	if (pb__m1_cache_path(home, card_id, sector, false, path, sizeof(path)) != 0)
		return "none";
	if (pb__read_file(path, 256, &buf, &n) != 0)
		return "none";
	st = n == len && memcmp(buf, cur, len) == 0 ? "same" : "differs";
	free(buf);
	return st;
}

int pb_phone_m1_show(pb_phone_t *phone, const char *card_id, pb_mifare_card_t **card,
		     const char *cache[PB_MIFARE_MAX_SECTORS])
{
	pb_mifare_card_t *c;
	int rc;

	if (phone == NULL || card_id == NULL || card == NULL)
		return PB_EINVAL;
	if ((rc = pb_mifare_load(phone->device_dir, card_id, &c)) != 0)
		return rc;
	for (unsigned s = 0; cache != NULL && s < PB_MIFARE_MAX_SECTORS; s++) {
		cache[s] = "none";
		if (s < c->sectors && c->state[s] == PB_MIFARE_SECTOR_READ)
			cache[s] = cache_state(phone->home, card_id, s, c->data + 16 * pb_mifare_sector_first_block(s),
					       16 * (size_t)pb_mifare_sector_blocks(s));
	}
	*card = c;
	return 0;
}

int pb_phone_m1_opkey(pb_phone_t *phone, const char *card_id, unsigned sector, uint8_t out[6])
{
	uint8_t k1[6], k2[6];
	int rc;

	if (phone == NULL || card_id == NULL)
		return PB_EINVAL;
	if ((rc = pb__m1_load_keys(phone->home, card_id, k1, k2)) != 0)
		return rc;
	pb_m1_op_key(k1, k2, sector, out);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	return 0;
}

int pb_phone_m1_set(pb_phone_t *phone, const char *card_id, unsigned block, const uint8_t data[16], int key,
		    pb_m1_set_result_t *res)
{
	if (phone == NULL || card_id == NULL || data == NULL || res == NULL)
		return PB_EINVAL;
	return pb__m1_set(phone->home, phone->device_dir, card_id, block, data, key, res);
}
