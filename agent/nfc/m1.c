/* MIFARE Classic (M1) sector access: a change to a sector is staged in the
 * cache copy that holds the sector's backup, and reaches the card store
 * only when the operation key derived from the card's two stored keys
 * matches the sector's reference key and the sector's access bits allow the
 * write. docs/NFC.md describes it for users. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/nfc/nfc.h"
#include "agent/util/fsutil.h"
#include "peerback/error.h"
#include "peerback/kinds.h"

#define M1_KEYS_MAX_FILE 4096u
#define M1_OP_LABEL "peerback/m1-op/1"

const char *pb_m1_check_name(pb_m1_check_t check)
{
	switch (check) {
	case PB_M1_CHECK_KEYS:
		return "keys";
	case PB_M1_CHECK_PERMISSION:
		return "permission";
	case PB_M1_CHECK_ACCESS:
		return "access";
	case PB_M1_CHECK_DATA:
		return "data";
	default:
		return "none";
	}
}

void pb_m1_op_key(const uint8_t key1[6], const uint8_t key2[6], unsigned sector, uint8_t out[6])
{
	crypto_generichash_state st;
	uint8_t h[32], s = (uint8_t)sector;

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)M1_OP_LABEL, sizeof(M1_OP_LABEL) - 1);
	crypto_generichash_update(&st, key1, 6);
	crypto_generichash_update(&st, key2, 6);
	crypto_generichash_update(&st, &s, 1);
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(out, h, 6);
	sodium_memzero(h, sizeof(h));
	sodium_memzero(&st, sizeof(st));
}

unsigned pb_m1_reference_block(unsigned sector)
{
	return pb_mifare_sector_trailer(sector) - 1;
}

static bool card_name_ok(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-'))
			return false;
	}
	return true;
}

int pb__m1_find_card(const char *device_dir, const char *name, char *id, size_t cap)
{
	char dir[4096];
	DIR *d;
	struct dirent *e;
	size_t nlen;
	int found = 0, rc;

	if (!card_name_ok(name))
		return PB_EINVAL;
	nlen = strlen(name);
	if ((rc = pb__path_join(dir, sizeof(dir), device_dir, "mifare")) != 0)
		return rc;
	d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? PB_ENOTFOUND : -errno;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);

		if (n < 5 || strcmp(e->d_name + n - 4, ".mfd") != 0 || n - 4 >= cap || n - 4 < nlen ||
		    strncasecmp(e->d_name, name, nlen) != 0)
			continue;
		if (n - 4 == nlen) { /* an exact id wins over prefixes */
			memcpy(id, e->d_name, n - 4);
			id[n - 4] = 0;
			found = 1;
			break;
		}
		if (found++ == 0) {
			memcpy(id, e->d_name, n - 4);
			id[n - 4] = 0;
		}
	}
	closedir(d);
	if (found == 0)
		return PB_ENOTFOUND;
	return found == 1 ? 0 : PB_EEXISTS;
}

int pb__m1_load_keys(const char *home, const char *card_id, uint8_t key1[6], uint8_t key2[6])
{
	char path[4096];
	uint8_t *buf = NULL, keys[3][6];
	size_t len, n = 0;
	int k, rc;

	if (!card_name_ok(card_id))
		return PB_EINVAL;
	k = snprintf(path, sizeof(path), "%s/m1-keys/%s.keys", home, card_id);
	if (k < 0 || (size_t)k >= sizeof(path))
		return PB_ETOOBIG;
	rc = pb__read_file(path, M1_KEYS_MAX_FILE, &buf, &len);
	if (rc == -ENOENT)
		return PB_ENOKEY;
	if (rc != 0)
		return rc;
	rc = pb_mifare_parse_keys(buf, len, keys, 3, &n, NULL, 0);
	if (rc == 0 && n != 2)
		rc = PB_EDATA_FORMAT;
	if (rc == 0) {
		memcpy(key1, keys[0], 6);
		memcpy(key2, keys[1], 6);
	}
	sodium_memzero(keys, sizeof(keys));
	sodium_memzero(buf, len);
	free(buf);
	return rc;
}

int pb__m1_cache_path(const char *home, const char *card_id, unsigned sector, bool pending, char *out, size_t cap)
{
	int n;

	if (!card_name_ok(card_id) || sector >= PB_MIFARE_MAX_SECTORS)
		return PB_EINVAL;
	n = snprintf(out, cap, "%s/m1-cache/%s/sector-%u.%s", home, card_id, sector, pending ? "pending" : "bin");
	if (n < 0 || (size_t)n >= cap)
		return PB_ETOOBIG;
	return 0;
}

static int add_file(pb_device_writer_t *w, const char *rel, const pb_buf_t *b)
{
	pb_item_t item;

	memset(&item, 0, sizeof(item));
	item.kind = PB_KIND_MIFARE;
	item.id = rel;
	item.path = rel;
	item.data = b->data;
	item.len = b->len;
	item.size = b->len;
	return pb_device_writer_add(w, &item);
}

/* Rewrites the card's files in the device directory in one atomic commit:
 * the .mfd always, the .mct sidecar when it exists or the card is not
 * completely known. */
static int store_card(const char *device_dir, const char *card_id, const pb_mifare_card_t *card)
{
	pb_device_writer_t *w = NULL;
	pb_buf_t b = { 0 };
	char rel[128], abs[4096];
	struct stat st;
	int n, rc;

	if ((rc = pb_device_writer_open(device_dir, &w)) != 0)
		return rc;
	n = snprintf(rel, sizeof(rel), "mifare/%s.mfd", card_id);
	if (n < 0 || (size_t)n >= sizeof(rel)) {
		rc = PB_ETOOBIG;
		goto out_free;
	}
	if ((rc = pb_mifare_format_bin(card, &b)) != 0 || (rc = add_file(w, rel, &b)) != 0)
		goto out_free;
	n = snprintf(rel, sizeof(rel), "mifare/%s.mct", card_id);
	if (n < 0 || (size_t)n >= sizeof(rel) || (rc = pb__path_join(abs, sizeof(abs), device_dir, rel)) != 0) {
		rc = rc != 0 ? rc : PB_ETOOBIG;
		goto out_free;
	}
	if (stat(abs, &st) == 0 || !pb_mifare_complete(card) || card->mct_crlf || card->mct_final_newline) {
		b.len = 0;
		if ((rc = pb_mifare_format_mct(card, &b)) != 0 || (rc = add_file(w, rel, &b)) != 0)
			goto out_free;
	}
	rc = pb_device_writer_commit(w);
out_free:
	pb_buf_free(&b);
	pb_device_writer_free(w);
	return rc;
}

/* The permission check: the operation key of the card's two keys against
 * the reference key in the sector as the card store holds it. */
static int check_permission(const char *home, const char *card_id, const pb_mifare_card_t *card, unsigned sector)
{
	uint8_t k1[6], k2[6], op[6];
	unsigned ref = pb_m1_reference_block(sector);
	int rc;

	if ((rc = pb__m1_load_keys(home, card_id, k1, k2)) != 0)
		return rc;
	pb_m1_op_key(k1, k2, sector, op);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	for (unsigned i = 0; i < 6; i++)
		if (!card->known[16 * ref + i])
			rc = PB_ENOKEY;
	if (rc == 0 && sodium_memcmp(op, card->data + 16 * ref, 6) != 0)
		rc = PB_EM1_PERMISSION;
	sodium_memzero(op, sizeof(op));
	return rc;
}

int pb__m1_set(const char *home, const char *device_dir, const char *card_id, unsigned block, const uint8_t data[16],
	      int key, pb_m1_set_result_t *res)
{
	pb_mifare_card_t *card = NULL;
	char cache[4096], pending[4096], dir[4096];
	uint8_t sector_buf[16 * 16];
	size_t slen;
	unsigned sector, first;
	int rc;

	memset(res, 0, sizeof(*res));
	if (home == NULL || device_dir == NULL || !card_name_ok(card_id) || data == NULL || key > 1)
		return PB_EINVAL;
	if ((rc = pb_mifare_load(device_dir, card_id, &card)) != 0)
		return rc;
	if (block >= pb_mifare_size(card->sectors) / 16) {
		rc = PB_EINVAL;
		goto out_card;
	}
	sector = pb_mifare_block_sector(block);
	first = pb_mifare_sector_first_block(sector);
	res->sector = sector;
	if (card->state[sector] != PB_MIFARE_SECTOR_READ) {
		rc = PB_ENOTFOUND;
		goto out_card;
	}
	if ((rc = pb__m1_cache_path(home, card_id, sector, false, cache, sizeof(cache))) != 0 ||
	    (rc = pb__m1_cache_path(home, card_id, sector, true, pending, sizeof(pending))) != 0)
		goto out_card;
	memcpy(dir, cache, sizeof(dir));
	*strrchr(dir, '/') = 0;
	if ((rc = pb__mkdirs(dir, 0700)) != 0)
		goto out_card;

	/* 1. The change goes to the cache copy first, staged. */
	if ((rc = pb_mifare_read_sector(card, sector, sector_buf, sizeof(sector_buf), &slen)) != 0)
		goto out_card;
	memcpy(sector_buf + 16 * (block - first), data, 16);
	if ((rc = pb__write_file_atomic(pending, sector_buf, slen, 0600)) != 0)
		goto out_card;

	/* 2. Permission: the operation key against the reference key. */
	rc = check_permission(home, card_id, card, sector);
	if (rc != 0) {
		res->failed = rc == PB_EM1_PERMISSION ? PB_M1_CHECK_PERMISSION : PB_M1_CHECK_KEYS;
		goto out_unstage;
	}

	/* 3. The sector's access bits, for the key asked or the first that may. */
	if (key >= 0) {
		res->key = (pb_mifare_key_t)key;
		rc = pb_mifare_check_write(card, block, res->key);
	} else {
		res->key = PB_MIFARE_KEY_A;
		rc = pb_mifare_check_write(card, block, PB_MIFARE_KEY_A);
		if (rc == PB_EM1_ACCESS) {
			res->key = PB_MIFARE_KEY_B;
			rc = pb_mifare_check_write(card, block, PB_MIFARE_KEY_B);
		}
	}
	if (rc != 0) {
		res->failed = rc == PB_ENOKEY ? PB_M1_CHECK_KEYS : PB_M1_CHECK_ACCESS;
		goto out_unstage;
	}

	/* 4. The new sector must still be a valid one. */
	memcpy(card->data + 16 * block, data, 16);
	memset(card->known + 16 * block, 1, 16);
	if ((rc = pb_mifare_validate(card, NULL, 0)) != 0) {
		res->failed = PB_M1_CHECK_DATA;
		goto out_unstage;
	}

	/* 5. Apply to the card store, then make the staged change the cache
	 * copy: it now holds the sector's backup as the store has it. */
	if ((rc = store_card(device_dir, card_id, card)) != 0)
		goto out_unstage;
	if (rename(pending, cache) != 0) {
		rc = -errno;
		goto out_unstage;
	}
	(void)pb__fsync_dir(dir);
	goto out_card;

out_unstage:
	(void)unlink(pending);
out_card:
	sodium_memzero(sector_buf, sizeof(sector_buf));
	if (card != NULL) {
		sodium_memzero(card, sizeof(*card));
		free(card);
	}
	return rc;
}
