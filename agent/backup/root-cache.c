/* The snapshot roots a phone looked items up in: one file per device,
 * HOME/root-cache/DEVICE (hex), holding the latest root it opened in
 * parsed form (its manifest chunk names and its id index), so that the
 * next lookup by id in the same snapshot asks the host only for the
 * snapshot's id and the chunks it needs, instead of fetching and opening
 * a root of hundreds of kilobytes (a million messages make a root of 580
 * kB) every time.
 *
 * The root opened with the backup's keys: what the file holds came out of
 * an authenticated root. It is trusted as the phone's backup state is
 * (the private HOME, 0700): chunk names and keyed id hashes, none of them
 * secret (the host sees the names, the ids are keyed). Every chunk named
 * through it is still opened and checked against its name with the keys.
 * A check value (keyed with the name key) binds the file to the keys that
 * opened the root, so another key never reuses it. The file is replaced
 * whole (written, synced, renamed) when the snapshot changes; one that
 * does not parse is ignored. It is mapped, not read: a lookup touches a
 * few of its pages. Layout:
 *   [magic 8][device 16][snapshot 8][check 16][time 8][items 8]
 *   [chunks 8][index entries 8] chunk names (32 each) index entries */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/backup/engine-int.h"
#include "agent/backup/internal.h"
#include "agent/util/fsutil.h"

#define RC_MAGIC "pbroot1\n"
#define RC_HDR (8 + 16 + 8 + 16 + 8 + 8 + 8 + 8)
/* An index entry: its first key and an index chunk's name. */
#define RC_IDX_LEN (8 + PB_STORE_NAME_LEN)
/* Far above any root a backup writes (PB_CHUNK_PLAIN_MAX bounds it). */
#define RC_MAX_ENTRIES (1u << 24)

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static int cache_path(const char *home, const uint8_t dev[16], char *out, size_t cap)
{
	char hex[33];
	int n;

	pb__hex(dev, 16, hex);
	n = snprintf(out, cap, "%s/root-cache/%s", home, hex);
	return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
}

/* Ties the file to the keys and the snapshot. */
static void check_value(const pb_backup_keys_t *keys, const uint8_t dev[16], uint64_t snap, uint8_t out[16])
{
	crypto_generichash_state st;
	uint8_t s[8];

	put64(s, snap);
	crypto_generichash_init(&st, keys->name, sizeof(keys->name), 16);
	crypto_generichash_update(&st, (const uint8_t *)"peerback root cache", 19);
	crypto_generichash_update(&st, dev, 16);
	crypto_generichash_update(&st, s, sizeof(s));
	crypto_generichash_final(&st, out, 16);
}

int pb__root_cache_load(const char *home, const pb_backup_keys_t *keys, const uint8_t dev[16], uint64_t snap,
			pb__root_t *root)
{
	uint8_t check[16];
	const uint8_t *hdr;
	char path[4096];
	uint64_t nm, ni;
	struct stat sb;
	void *map;
	int fd, rc;

	memset(root, 0, sizeof(*root));
	if ((rc = cache_path(home, dev, path, sizeof(path))) != 0)
		return rc;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return PB_ENOTFOUND;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < RC_HDR) {
		close(fd);
		return PB_ENOTFOUND;
	}
	/* Mapped, not read: a lookup touches a few pages of it. */
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return PB_ENOTFOUND;
	hdr = map;
	/* Any snapshot: the one the file holds (bound to the keys all the
	 * same). */
	if (snap == 0)
		snap = get64(hdr + 24);
	check_value(keys, dev, snap, check);
	nm = get64(hdr + 64);
	ni = get64(hdr + 72);
	if (memcmp(hdr, RC_MAGIC, 8) != 0 || memcmp(hdr + 8, dev, 16) != 0 || get64(hdr + 24) != snap || snap == 0 ||
	    sodium_memcmp(hdr + 32, check, 16) != 0 || nm > RC_MAX_ENTRIES || ni > RC_MAX_ENTRIES || ni == 0 ||
	    (uint64_t)sb.st_size != RC_HDR + nm * PB_STORE_NAME_LEN + ni * RC_IDX_LEN) {
		munmap(map, (size_t)sb.st_size);
		return PB_ENOTFOUND;
	}
	root->map = map;
	root->map_len = (size_t)sb.st_size;
	root->snap = snap;
	root->time = (int64_t)get64(hdr + 48);
	root->nitems = get64(hdr + 56);
	root->mchunks = (name_t *)(root->map + RC_HDR);
	root->nm = nm;
	root->index = root->map + RC_HDR + nm * PB_STORE_NAME_LEN;
	root->nindex = ni;
	return 0;
}

void pb__root_cache_save(const char *home, const pb_backup_keys_t *keys, const uint8_t dev[16], uint64_t snap,
			 const pb__root_t *root)
{
	char path[4096], dir[4096];
	size_t len;
	uint8_t *buf;

	/* A version 1 root has no index: lookups in it walk the manifest. */
	if (root->index == NULL || root->nindex == 0 || root->nm > RC_MAX_ENTRIES || root->nindex > RC_MAX_ENTRIES)
		return;
	if (cache_path(home, dev, path, sizeof(path)) != 0 ||
	    pb__path_join(dir, sizeof(dir), home, "root-cache") != 0 || pb__mkdirs(dir, 0700) != 0)
		return;
	len = RC_HDR + root->nm * PB_STORE_NAME_LEN + root->nindex * RC_IDX_LEN;
	if ((buf = malloc(len)) == NULL)
		return;
	memcpy(buf, RC_MAGIC, 8);
	memcpy(buf + 8, dev, 16);
	put64(buf + 24, snap);
	check_value(keys, dev, snap, buf + 32);
	put64(buf + 48, (uint64_t)root->time);
	put64(buf + 56, root->nitems);
	put64(buf + 64, root->nm);
	put64(buf + 72, root->nindex);
	memcpy(buf + RC_HDR, root->mchunks, root->nm * PB_STORE_NAME_LEN);
	memcpy(buf + RC_HDR + root->nm * PB_STORE_NAME_LEN, root->index, root->nindex * RC_IDX_LEN);
	/* A cache: a phone that cannot write it opens the root next time. */
	(void)pb__write_file_atomic(path, buf, len, 0600);
	free(buf);
}

void pb__root_free(pb__root_t *root)
{
	if (root->map != NULL) {
		munmap(root->map, root->map_len);
	} else {
		free(root->mchunks);
		free(root->index);
	}
	memset(root, 0, sizeof(*root));
}
