/* Item assembly on restore: an item's chunks, in order, rebuilt in memory
 * or, when large, in a temporary file, and hashed as they come so that the
 * result is checked against the hash its backup recorded. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/internal.h"

_Static_assert(sizeof(((pb__assembly_t *)0)->state) >= sizeof(crypto_generichash_state),
	       "pb__assembly_t.state holds a crypto_generichash_state");

static crypto_generichash_state *H(pb__assembly_t *a)
{
	return (crypto_generichash_state *)(void *)a->state;
}

int pb__assembly_start(pb__assembly_t *a, const pb_backup_keys_t *keys, uint64_t size, const char *tmpdir,
		       unsigned *tmpn)
{
	memset(a, 0, sizeof(*a));
	a->fd = -1;
	crypto_generichash_init(H(a), keys->name, sizeof(keys->name), 32);
	if (size > PB_CDC_WHOLE_MAX && tmpdir != NULL) {
		int n = snprintf(a->tmp, sizeof(a->tmp), "%s/item-%u", tmpdir, (*tmpn)++);

		if (n < 0 || (size_t)n >= sizeof(a->tmp)) {
			a->tmp[0] = 0;
			return PB_ETOOBIG;
		}
		/* A file an earlier run left there may be linked into the
		 * restore cache (pb__cache_stage): replaced, not truncated. */
		(void)unlink(a->tmp);
		a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (a->fd < 0) {
			a->tmp[0] = 0;
			return -errno;
		}
	}
	return 0;
}

int pb__assembly_add(pb__assembly_t *a, const uint8_t *data, size_t len)
{
	uint64_t off = a->added;

	a->added += len;
	if (!a->checked)
		crypto_generichash_update(H(a), data, len);
	if (a->fd >= 0) {
		while (len > 0) {
			ssize_t w = pwrite(a->fd, data, len, (off_t)off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return errno == ENOSPC ? PB_ENOSPACE : -errno;
			data += w;
			len -= (size_t)w;
			off += (uint64_t)w;
		}
		return 0;
	}
	if (pb__grow((void **)&a->buf, &a->cap, a->len + len + 1, 1) != 0)
		return PB_ENOMEM;
	memcpy(a->buf + a->len, data, len);
	a->len += len;
	return 0;
}

int pb__assembly_add_owned(pb__assembly_t *a, uint8_t *data, size_t len)
{
	int rc = 0;

	if (a->fd < 0 || a->wq == NULL) {
		rc = pb__assembly_add(a, data, len);
		sodium_memzero(data, len);
		free(data);
		return rc;
	}
	if (!a->checked)
		crypto_generichash_update(H(a), data, len);
	pb__wq_push(a->wq, a->fd, data, len, a->added);
	a->added += len;
	return 0;
}

int pb__assembly_add_chunk(pb__assembly_t *a, const pb_manifest_item_t *m, size_t k, const uint8_t *data,
			   size_t len)
{
	size_t start = 0;

	if (!m->slice)
		return pb__assembly_add(a, data, len);
	/* A slice begins at off in its first chunk and takes what is left of
	 * its size from the chunks after it; a short one fails its hash. */
	if (k == 0) {
		if (m->off > len)
			return PB_ESTORE_HASH;
		start = m->off;
	}
	len -= start;
	if (a->added >= m->size)
		return 0;
	if (len > m->size - a->added)
		len = (size_t)(m->size - a->added);
	return pb__assembly_add(a, data + start, len);
}

int pb__assembly_end(pb__assembly_t *a, uint8_t hash[32])
{
	int rc = 0;

	if (!a->checked)
		crypto_generichash_final(H(a), hash, 32);
	else
		memset(hash, 0, 32);
	if (a->fd >= 0 && a->wq != NULL) {
		/* Closed on the queue's thread after its writes (the last of
		 * them may wait there in its buffer, restore-write.c); what
		 * takes the file is queued behind it, or waits for it. */
		pb__wq_close(a->wq, a->fd);
		a->fd = -1;
		return a->queued_end ? 0 : pb__wq_wait(a->wq);
	}
	if (a->fd >= 0) {
		/* Not synced here: the file is handed to a restore's
		 * transaction, whose commit syncs what it keeps. */
#ifdef SYNC_FILE_RANGE_WRITE
		(void)sync_file_range(a->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
		if (close(a->fd) != 0 && rc == 0)
			rc = errno == ENOSPC ? PB_ENOSPACE : -errno;
		a->fd = -1;
	}
	return rc;
}

void pb__assembly_drop(pb__assembly_t *a)
{
	if (a->fd >= 0 && a->wq != NULL) {
		/* Closed there, after its writes: nothing is written to it
		 * once closed. */
		pb__wq_close(a->wq, a->fd);
		(void)pb__wq_wait(a->wq);
	} else if (a->fd >= 0) {
		close(a->fd);
	}
	a->fd = -1;
	if (a->tmp[0])
		unlink(a->tmp);
	a->tmp[0] = 0;
	free(a->buf);
	a->buf = NULL;
	a->len = a->cap = 0;
}

/* ---- the content hashes of a file on disk ---------------------------------- */

struct file_hashes {
	const pb_backup_keys_t *keys;
	crypto_generichash_state bytes;
	uint8_t *names;           /* its chunk names, as a backup cuts it */
	size_t n, cap;
};

static int hash_cut(void *arg, const uint8_t *data, size_t len)
{
	struct file_hashes *h = arg;
	int rc;

	crypto_generichash_update(&h->bytes, data, len);
	if ((rc = pb__grow((void **)&h->names, &h->cap, h->n + 1, PB_STORE_NAME_LEN)) != 0)
		return rc;
	pb__chunk_name(h->keys->name, data, len, h->names + h->n++ * PB_STORE_NAME_LEN);
	return 0;
}

int pb__file_hashes(const pb_backup_keys_t *keys, int fd, uint8_t bytes[32], uint8_t names[32])
{
	struct file_hashes h;
	pb_cdc_t cdc;
	int rc;

	memset(&h, 0, sizeof(h));
	h.keys = keys;
	crypto_generichash_init(&h.bytes, keys->name, sizeof(keys->name), 32);
	pb_cdc_init(&cdc, keys);
	rc = pb_cdc_file(&cdc, fd, hash_cut, &h);
	pb_cdc_wipe(&cdc);
	if (rc == 0) {
		crypto_generichash_final(&h.bytes, bytes, 32);
		if (h.n >= 2)
			pb__item_names_hash(keys, h.names, h.n, names);
		else if (h.n == 1)
			memcpy(names, h.names, 32); /* one chunk: its name is the hash */
		else
			memcpy(names, bytes, 32);
	}
	free(h.names);
	return rc;
}
