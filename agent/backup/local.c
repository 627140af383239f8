/* The local repository: a host store opened in this process, read and
 * written as the host would for one phone (its namespace, and its
 * account's other devices' namespaces for reading). No socket, no session:
 * backup and restore run in-process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/repo.h"

#define GET_QUEUE 128 /* chunk reads asked for and not yet received */
#define READ_AHEAD_BYTES (8u << 20) /* read from the store at once, at most */
#define COMMIT_QUEUE 64 /* commits asked for and not yet taken */

struct local {
	pb_repo_t base;
	pb_store_t *store;
	pb_store_ns_t *own;
	char account[128];
	char dir[4096];
	/* Asked-for chunks, received in order; read from the store together
	 * (pb_store_get_many) when the first of them is received. */
	struct getq {
		uint8_t dev[16];
		uint8_t name[PB_STORE_NAME_LEN];
		bool ready; /* read: rc, ct and len hold the answer */
		int rc;
		uint8_t *ct;
		size_t len;
	} q[GET_QUEUE];
	uint64_t asked, got;
	/* The listing list_send made, until list_recv takes it. */
	pb_store_snapinfo_t *list;
	size_t nlist;
	int list_rc;
	/* Commits asked for and not yet taken: their outcome. */
	int commit_rc[COMMIT_QUEUE];
	uint64_t asked_writes;
};

static void slot_clear(struct getq *g)
{
	free(g->ct);
	g->ct = NULL;
	g->ready = false;
}

static struct local *L(pb_repo_t *r)
{
	return (struct local *)r;
}

/* The blob key as the host stores it (agent/host/requests.c). */
static const char *blob_key(const char *key)
{
	return key == NULL || key[0] == 0 ? "masterkey" : key;
}

/* A read-only handle on dev's namespace (NULL or own: the own handle). */
static int ns_for(struct local *l, const uint8_t *dev, pb_store_ns_t **ns, bool *owned)
{
	char hex[33];

	*owned = false;
	if (dev == NULL || memcmp(dev, l->base.device_id, 16) == 0) {
		*ns = l->own;
		return 0;
	}
	sodium_bin2hex(hex, sizeof(hex), dev, 16);
	*owned = true;
	return pb_store_ns_open_ro(l->store, l->account, hex, ns);
}

static int l_missing(pb_repo_t *r, const pb_repo_name_t *names, size_t n, bool *missing)
{
	return n == 0 ? 0 : pb_store_missing(L(r)->own, names, n, missing);
}

static int l_put(pb_repo_t *r, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *ct, size_t len)
{
	return pb_store_put(L(r)->own, name, ct, len);
}

static int l_commit(pb_repo_t *r)
{
	int rc = pb_store_flush(L(r)->own);

	return rc < 0 ? rc : 0;
}

/* A local repository answers at once: the asking only numbers the
 * answer, which is worked out when taken (missing) or kept until then
 * (commit). */
static int l_missing_send(pb_repo_t *r, const pb_repo_name_t *names, size_t n, uint64_t *tok)
{
	(void)names;
	(void)n;
	*tok = ++L(r)->asked_writes;
	return 0;
}

static int l_missing_recv(pb_repo_t *r, uint64_t tok, const pb_repo_name_t *names, size_t n, bool *missing)
{
	(void)tok;
	return l_missing(r, names, n, missing);
}

static int l_commit_send(pb_repo_t *r, uint64_t *tok)
{
	struct local *l = L(r);

	*tok = ++l->asked_writes;
	l->commit_rc[*tok % COMMIT_QUEUE] = l_commit(r);
	return 0;
}

static int l_commit_recv(pb_repo_t *r, uint64_t tok)
{
	return L(r)->commit_rc[tok % COMMIT_QUEUE];
}

static int l_get_send(pb_repo_t *r, const uint8_t *dev, const uint8_t name[PB_STORE_NAME_LEN], uint64_t *tok)
{
	struct local *l = L(r);
	size_t k = l->asked % GET_QUEUE;

	/* A run that stopped early leaves reads never received: with the
	 * queue full, the oldest of those go (a run has far fewer in flight
	 * than the queue holds). */
	if (l->asked - l->got >= GET_QUEUE) {
		slot_clear(&l->q[l->got % GET_QUEUE]);
		l->got++;
	}
	slot_clear(&l->q[k]);
	memcpy(l->q[k].dev, dev != NULL ? dev : l->base.device_id, 16);
	memcpy(l->q[k].name, name, PB_STORE_NAME_LEN);
	*tok = l->asked++;
	return 0;
}

/* Reads the asked-for chunks from tok on that name tok's device in one
 * batch, up to READ_AHEAD_BYTES (tok's at least). */
static int read_ahead(struct local *l, uint64_t tok)
{
	pb_repo_name_t names[GET_QUEUE];
	uint8_t *ct[GET_QUEUE];
	size_t len[GET_QUEUE], n = 0, at[GET_QUEUE];
	int rcs[GET_QUEUE], rc;
	const uint8_t *dev = l->q[tok % GET_QUEUE].dev;
	pb_store_ns_t *ns;
	bool owned;

	for (uint64_t t = tok; t < l->asked; t++) {
		struct getq *g = &l->q[t % GET_QUEUE];

		if (g->ready || memcmp(g->dev, dev, 16) != 0)
			continue;
		memcpy(names[n], g->name, PB_STORE_NAME_LEN);
		at[n++] = t % GET_QUEUE;
	}
	if ((rc = ns_for(l, dev, &ns, &owned)) != 0)
		return rc;
	rc = pb_store_get_many(ns, (const pb_repo_name_t *)names, n, READ_AHEAD_BYTES, ct, len, rcs, &n);
	if (owned)
		pb_store_ns_close(ns);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct getq *g = &l->q[at[i]];

		g->ready = true;
		g->rc = rcs[i];
		g->ct = ct[i];
		g->len = len[i];
	}
	return rc;
}

static int l_get_recv(pb_repo_t *r, uint64_t tok, uint8_t **ct, size_t *len)
{
	struct local *l = L(r);
	struct getq *g = &l->q[tok % GET_QUEUE];
	int rc;

	/* Answers come in order: reads asked before tok and never received
	 * belong to a run that stopped, and are dropped. */
	if (tok < l->got || tok >= l->asked)
		return PB_EENV_UNEXPECTED;
	while (l->got < tok)
		slot_clear(&l->q[l->got++ % GET_QUEUE]);
	l->got = tok + 1;
	if (!g->ready && (rc = read_ahead(l, tok)) != 0)
		return rc;
	rc = g->rc;
	*ct = g->ct;
	*len = g->len;
	g->ct = NULL;
	g->ready = false;
	return rc;
}

static int l_snapshot_list(pb_repo_t *r, const uint8_t *dev, pb_store_snapinfo_t **out, size_t *n)
{
	pb_store_ns_t *ns;
	bool owned;
	int rc = ns_for(L(r), dev, &ns, &owned);

	if (rc != 0)
		return rc;
	rc = pb_store_snapshot_list(ns, out, n);
	if (owned)
		pb_store_ns_close(ns);
	return rc;
}

/* Listed at once (nothing is in flight in this process); one at a time. */
static int l_list_send(pb_repo_t *r, const uint8_t *dev, uint64_t *tok)
{
	struct local *l = L(r);

	free(l->list);
	l->list = NULL;
	l->list_rc = l_snapshot_list(r, dev, &l->list, &l->nlist);
	*tok = 1;
	return 0;
}

static int l_list_recv(pb_repo_t *r, uint64_t tok, pb_store_snapinfo_t **out, size_t *n)
{
	struct local *l = L(r);
	int rc = l->list_rc;

	(void)tok;
	*out = rc == 0 ? l->list : NULL;
	*n = rc == 0 ? l->nlist : 0;
	if (rc != 0)
		free(l->list);
	l->list = NULL;
	l->nlist = 0;
	l->list_rc = PB_ESTATE;
	return rc;
}

static int l_snapshot_get(pb_repo_t *r, const uint8_t *dev, uint64_t snap, uint8_t **blob, size_t *len)
{
	pb_store_ns_t *ns;
	bool owned;
	int rc = ns_for(L(r), dev, &ns, &owned);

	if (rc != 0)
		return rc;
	rc = pb_store_snapshot_get(ns, snap, blob, len);
	if (owned)
		pb_store_ns_close(ns);
	return rc;
}

static int l_snapshot_put(pb_repo_t *r, uint64_t snap, const uint8_t *root, size_t len, const pb_repo_name_t *refs,
			  size_t nrefs)
{
	return pb_store_snapshot_put(L(r)->own, snap, refs, nrefs, root, len);
}

static int l_blob_get(pb_repo_t *r, const uint8_t *dev, const char *key, uint8_t **val, size_t *len)
{
	pb_store_ns_t *ns;
	bool owned;
	int rc = ns_for(L(r), dev, &ns, &owned);

	if (rc != 0)
		return rc;
	rc = pb_store_blob_get(ns, blob_key(key), val, len);
	if (owned)
		pb_store_ns_close(ns);
	return rc;
}

static int l_blob_put(pb_repo_t *r, const char *key, const uint8_t *val, size_t len)
{
	return pb_store_blob_put(L(r)->own, blob_key(key), val, len);
}

/* The account's devices: the namespaces under the store's folder for the
 * account (one folder per device id), those with a snapshot. */
static int l_devices(pb_repo_t *r, pb_repo_device_t **out, size_t *n)
{
	struct local *l = L(r);
	pb_store_snapinfo_t *s;
	pb_repo_device_t *v;
	size_t k = 0, ns_n;
	int rc;

	*out = NULL;
	*n = 0;
	/* This phone itself, always asked first. */
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return PB_ENOMEM;
	if ((rc = pb_store_snapshot_list(l->own, &s, &ns_n)) != 0) {
		free(v);
		return rc;
	}
	if (ns_n > 0) {
		memcpy(v[0].id, l->base.device_id, 16);
		for (size_t i = 0; i < ns_n; i++)
			if (s[i].time > v[0].latest)
				v[0].latest = s[i].time;
		k = 1;
	}
	free(s);
	*out = v;
	*n = k;
	return 0;
}

static void l_close(pb_repo_t *r)
{
	struct local *l = L(r);

	for (size_t i = 0; i < GET_QUEUE; i++)
		slot_clear(&l->q[i]);
	free(l->list);
	pb_store_ns_close(l->own);
	pb_store_close(l->store);
	free(l);
}

static const pb_repo_ops_t local_ops = {
	l_missing, l_put, l_commit, l_missing_send, l_missing_recv, l_commit_send, l_commit_recv, l_get_send,
	l_get_recv, l_snapshot_list, l_snapshot_get, l_snapshot_put, l_blob_get, l_blob_put, l_devices,
	l_close, l_list_send, l_list_recv,
};

static int local_open(const char *dir, const char *account, const uint8_t device_id[16], bool ro, pb_repo_t **out)
{
	struct local *l = calloc(1, sizeof(*l));
	char hex[33];
	int rc;

	*out = NULL;
	if (l == NULL)
		return PB_ENOMEM;
	l->base.ops = &local_ops;
	memcpy(l->base.device_id, device_id, 16);
	/* The store's identity in the phone's state: a hash of its folder. */
	crypto_generichash(l->base.host_pk, sizeof(l->base.host_pk), (const uint8_t *)dir, strlen(dir), NULL, 0);
	snprintf(l->account, sizeof(l->account), "%s", account);
	snprintf(l->dir, sizeof(l->dir), "%s", dir);
	sodium_bin2hex(hex, sizeof(hex), device_id, 16);
	rc = ro ? pb_store_open_ro(dir, &l->store) : pb_store_open(dir, &l->store);
	if (rc != 0) {
		free(l);
		return rc;
	}
	rc = ro ? pb_store_ns_open_ro(l->store, account, hex, &l->own) : pb_store_ns_open(l->store, account, hex, &l->own);
	if (rc != 0) {
		pb_store_close(l->store);
		free(l);
		return rc;
	}
	*out = &l->base;
	return 0;
}

int pb__repo_local_open(const char *dir, const char *account, const uint8_t device_id[16], pb_repo_t **out)
{
	return local_open(dir, account, device_id, false, out);
}

int pb__repo_local_open_ro(const char *dir, const char *account, const uint8_t device_id[16], pb_repo_t **out)
{
	return local_open(dir, account, device_id, true, out);
}
