/* The device directory: the default provider of items. pb_device_scan walks
 * the documented layout (docs/DATA.md); the writer (device-writer.c)
 * restores items into it atomically. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/kinds/internal.h"
#include "agent/util/fsutil.h"
#include "agent/kinds/util.h"

#define MAX_DEPTH 16
#define MAX_FILES 4000000u
#define MAX_PATH 4096

/* --- Scan ----------------------------------------------------------------- */

typedef struct pathlist_s {
	char **v;
	size_t n, cap;
} pathlist_t;

static void pathlist_free(pathlist_t *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int pathlist_add(pathlist_t *l, const char *rel)
{
	char *copy;

	if (l->n >= MAX_FILES)
		return PB_ETOOBIG;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			return PB_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	copy = strdup(rel);
	if (copy == NULL)
		return PB_ENOMEM;
	l->v[l->n++] = copy;
	return 0;
}

/* Collects the regular files below root/rel. Symbolic links and other
 * special files are not followed: the directory holds plain files. */
static int collect(const char *root, const char *rel, int depth, pathlist_t *out)
{
	char abs[MAX_PATH], child[MAX_PATH];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (depth > MAX_DEPTH)
		return PB_ETOOBIG;
	if ((rc = pb__kinds_join(abs, sizeof(abs), root, rel)) != 0)
		return rc;
	d = opendir(abs);
	if (d == NULL)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		char full[MAX_PATH];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, PB__DEVICE_TMP_PREFIX, strlen(PB__DEVICE_TMP_PREFIX)) == 0)
			continue;
		if ((rc = pb__kinds_join(child, sizeof(child), rel, de->d_name)) != 0)
			goto out_close;
		if ((rc = pb__kinds_join(full, sizeof(full), root, child)) != 0)
			goto out_close;
		if (lstat(full, &st) != 0) {
			rc = -errno;
			goto out_close;
		}
		if (S_ISDIR(st.st_mode))
			rc = collect(root, child, depth + 1, out);
		else if (S_ISREG(st.st_mode))
			rc = pathlist_add(out, child);
		if (rc != 0)
			goto out_close;
	}
out_close:
	closedir(d);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct split_ctx_s {
	pb_item_cb cb;
	void *arg;
	uint64_t mtime_ns;
	bool stopped; /* the callback, not the file, ended the walk */
	bool x;       /* the split hands over pb__item_x_t (a Telegram chat's) */
} split_ctx_t;

static int split_cb(void *arg, const pb_item_t *item)
{
	split_ctx_t *ctx = arg;
	pb__item_x_t copy;
	int rc;

	if (ctx->x) {
		copy = *(const pb__item_x_t *)item;
	} else {
		memset(&copy, 0, sizeof(copy));
		copy.it = *item;
	}
	copy.it.mtime_ns = ctx->mtime_ns;
	if (copy.it.data != NULL)
		copy.it.size = copy.it.len;
	rc = ctx->cb(ctx->arg, &copy.it);
	if (rc != 0)
		ctx->stopped = true;
	return rc;
}

static void set_bad(char *bad_path, size_t cap, const char *rel)
{
	int n;

	if (bad_path == NULL || cap == 0)
		return;
	n = snprintf(bad_path, cap, "%s", rel);
	if (n < 0)
		bad_path[0] = 0;
}

/* A multi-item file that could not be read or split: with a bad callback
 * it is reported (why and line from the codec) and, when the callback
 * returns 0, skipped. */
static int file_failed(pb_scan_bad_cb bad, void *bad_arg, const char *rel, int rc)
{
	uint64_t line = 0;
	char why[256];

	pb__kinds_split_take(&line, why, sizeof(why));
	if (bad == NULL)
		return rc;
	if (why[0] == 0)
		snprintf(why, sizeof(why), "%s", pb_strerror(rc));
	return bad(bad_arg, rel, rc, line, why);
}

/* Reads a whole-file item and checks it with its kind's parser; the
 * reason goes where file_failed takes it from. */
static int check_file(const char *abs, const char *rel)
{
	char why[256];
	uint8_t *buf;
	size_t len;
	int rc;

	/* The largest such file is a key file; a dump is at most 4 KiB. */
	if ((rc = pb__kinds_read_file(abs, 64u << 20, &buf, &len)) != 0)
		return rc;
	rc = pb__kinds_validate(rel, buf, len, why, sizeof(why));
	sodium_memzero(buf, len);
	free(buf);
	if (rc != 0)
		pb__kinds_split_why(0, why);
	return rc;
}

/* Whether the scan hands rel over as a file item, unparsed and unchecked. */
static bool plain_file(const char *rel)
{
	const pb_codec_t *codec = pb_codec_for(rel);

	return !(codec != NULL && codec->kind == pb__device_kind_of(rel)) && !pb__kinds_checked(rel);
}

/* How many files on the walk looks for the next one it hands over as a
 * file item: a chat's attachments come between chats that have none,
 * which the walk parses itself. */
#define AHEAD_FILES 16

/* Tells h's ahead of the next file after files->v[i] the scan hands over
 * as a file item, past files it parses (up to AHEAD_FILES on), so that
 * the reader reads it while the walk parses the chats before it; now:
 * files->v[i] is parsed here, not handed over as a file. */
static void tell_ahead(const pb__item_hasher_t *h, const char *dir, const pathlist_t *files, size_t i, bool now)
{
	char next[MAX_PATH];
	size_t j;

	if (h == NULL || h->ahead == NULL)
		return;
	for (j = i + 1; j < files->n && j <= i + AHEAD_FILES && !plain_file(files->v[j]); j++)
		;
	if (j >= files->n || j > i + AHEAD_FILES)
		return;
	if (pb__kinds_join(next, sizeof(next), dir, files->v[j]) == 0)
		h->ahead(h->arg, next, files->v[j], now);
}

static int scan(const char *dir, unsigned kind_mask, pb__scan_file_cb fcb, const pb__item_hasher_t *h,
		pb_item_cb cb, void *arg, pb_scan_bad_cb bad, void *bad_arg, char *bad_path, size_t bad_path_cap)
{
	static const pb_kind_t order[] = { PB_KIND_CREDENTIAL, PB_KIND_MIFARE, PB_KIND_SIM, PB_KIND_CHAT,
					   PB_KIND_CONTACTS };
	pathlist_t files = { 0 };
	const char *cur = "";
	int rc = 0;

	if (bad_path != NULL && bad_path_cap > 0)
		bad_path[0] = 0;
	if (dir == NULL || cb == NULL)
		return PB_EINVAL;
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		if ((kind_mask & (1u << order[k])) == 0)
			continue;
		if ((rc = collect(dir, pb__device_folder(order[k]), 0, &files)) != 0)
			goto out_free;
	}
	if (files.n > 1)
		qsort(files.v, files.n, sizeof(files.v[0]), cmp_str);
	for (size_t i = 0; i < files.n; i++) {
		const char *rel = cur = files.v[i];
		const pb_codec_t *codec = pb_codec_for(rel);
		char abs[MAX_PATH];
		struct stat st;
		uint64_t mtime;

		if ((rc = pb__kinds_join(abs, sizeof(abs), dir, rel)) != 0)
			goto out_bad;
		if (stat(abs, &st) != 0) {
			rc = -errno;
			goto out_bad;
		}
		mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
		/* The caller may know the file by its stamp: then it is
		 * neither read nor parsed. */
		if (fcb != NULL && (rc = fcb(arg, rel, &st)) != 0) {
			if (rc < 0)
				goto out_free;
			rc = 0;
			continue;
		}
		if (codec != NULL && codec->kind == pb__device_kind_of(rel)) {
			split_ctx_t ctx = { cb, arg, mtime, false, false };
			uint8_t *buf;
			size_t len;

			tell_ahead(h, dir, &files, i, true);

			pb__kinds_split_why(0, NULL);
			if (codec == &pb__codec_telegram) {
				/* A chat is parsed as it is read: memory does not
				 * hold the whole file. */
				int fd = open(abs, O_RDONLY | O_CLOEXEC);

				ctx.x = true;
				rc = fd < 0 ? -errno : pb__telegram_split_fd(rel, fd, h, split_cb, &ctx);
				if (fd >= 0)
					close(fd);
				if (rc != 0 && ctx.stopped)
					goto out_free;
				if (rc != 0 && (rc = file_failed(bad, bad_arg, rel, rc)) != 0)
					goto out_bad;
				continue;
			}
			if ((rc = pb__kinds_read_file(abs, PB__KINDS_MAX_FILE, &buf, &len)) != 0) {
				if ((rc = file_failed(bad, bad_arg, rel, rc)) != 0)
					goto out_bad;
				continue;
			}
			rc = codec->split(rel, buf, len, split_cb, &ctx);
			sodium_memzero(buf, len);
			free(buf);
			if (rc != 0 && ctx.stopped)
				goto out_free;
			/* Items the split already gave stay in the walk: the
			 * callback hears the file failed after them. */
			if (rc != 0 && (rc = file_failed(bad, bad_arg, rel, rc)) != 0)
				goto out_bad;
		} else {
			pb__item_x_t ix = { 0 };
			pb_item_t *item = &ix.it;

			/* A file of a kind with a format is checked by its
			 * parser: a damaged one is skipped like a chat that
			 * does not parse, not backed up as if it were data. */
			if (pb__kinds_checked(rel) && (rc = check_file(abs, rel)) != 0) {
				if ((rc = file_failed(bad, bad_arg, rel, rc)) != 0)
					goto out_bad;
				continue;
			}
			item->kind = pb__device_kind_of(rel);
			item->id = rel;
			item->path = rel;
			item->file = abs;
			item->size = (uint64_t)st.st_size;
			item->mtime_ns = mtime;
			tell_ahead(h, dir, &files, i, false);
			if ((rc = cb(arg, item)) != 0)
				goto out_free;
		}
	}
	goto out_free;

out_bad:
	set_bad(bad_path, bad_path_cap, cur);
out_free:
	pathlist_free(&files);
	return rc;
}

int pb_device_scan(const char *dir, unsigned kind_mask, pb_item_cb cb, void *arg, char *bad_path,
		   size_t bad_path_cap)
{
	return scan(dir, kind_mask, NULL, NULL, cb, arg, NULL, NULL, bad_path, bad_path_cap);
}

int pb_device_scan_skip(const char *dir, unsigned kind_mask, pb_item_cb cb, void *arg, pb_scan_bad_cb bad,
			void *bad_arg, char *bad_path, size_t bad_path_cap)
{
	return scan(dir, kind_mask, NULL, NULL, cb, arg, bad, bad_arg, bad_path, bad_path_cap);
}

int pb__device_scan_files(const char *dir, unsigned kind_mask, pb__scan_file_cb fcb, const pb__item_hasher_t *h,
			  pb_item_cb cb, void *arg, pb_scan_bad_cb bad, char *bad_path, size_t bad_path_cap)
{
	return scan(dir, kind_mask, fcb, h, cb, arg, bad, arg, bad_path, bad_path_cap);
}
