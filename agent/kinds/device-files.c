/* The device writer's files and folders: every folder below the target
 * opened one component at a time, never through a link; the temporary
 * names files are staged under, and the list of staged files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/kinds/device-int.h"
#include "agent/kinds/util.h"
#include "agent/util/fsutil.h"

int pb__dw_write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int write_piece(void *arg, const uint8_t *p, size_t n)
{
	return pb__dw_write_all(*(int *)arg, p, n);
}

int pb__dw_copy_file(const char *src, int fd)
{
	uint8_t buf[65536];
	int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rc = 0;

	if (in < 0)
		return errno == ELOOP ? PB_EDATA_LINK : -errno;
	rc = pb__read_each(in, buf, sizeof(buf), write_piece, &fd);
	sodium_memzero(buf, sizeof(buf));
	close(in);
	return rc;
}

int pb__dw_strlist_add(strlist_t *l, const char *s, size_t len)
{
	char *copy;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			return PB_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	copy = strndup(s, len);
	if (copy == NULL)
		return PB_ENOMEM;
	l->v[l->n++] = copy;
	return 0;
}

void pb__dw_strlist_clear(strlist_t *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

static int open_root(pb_device_writer_t *w)
{
	int rc;

	if (w->root >= 0)
		return 0;
	if ((rc = pb__kinds_mkdirs(w->dir)) != 0)
		return rc;
	w->root = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return w->root < 0 ? -errno : 0;
}

struct made_ctx {
	pb_device_writer_t *w;
	const char *rel;
};

static int note_made(void *arg, size_t len)
{
	struct made_ctx *m = arg;

	return pb__dw_strlist_add(&m->w->made, m->rel, len);
}

/* Opens the folder that holds rel, one component at a time from the root,
 * never through a link; create makes missing folders (and remembers them). */
int pb__dw_open_parent(pb_device_writer_t *w, const char *rel, bool create, int *out)
{
	struct made_ctx m = { w, rel };
	size_t bad = 0;
	int rc;

	if ((rc = open_root(w)) != 0)
		return rc;
	rc = pb__open_parent_at(w->root, rel, create, 0700, note_made, &m, &bad, out);
	if (rc == PB_EDATA_LINK)
		snprintf(w->link, sizeof(w->link), "%.*s", (int)bad, rel);
	return rc;
}

static const char *staged_path(const void *arg, size_t i)
{
	return ((const pb_device_writer_t *)arg)->s[i].path;
}

/* The latest stage of path. */
wstaged_t *pb__dw_find_staged(pb_device_writer_t *w, const char *path)
{
	size_t i = pb__pathidx_find(&w->sidx, path, staged_path, w);

	return i < w->ns ? &w->s[i] : NULL;
}

/* A new temporary name beside base: tmp holds TMP_NAME bytes. */
static int tmp_name(const char *base, char *tmp)
{
	char rnd[17];
	uint8_t r[8];
	int n;

	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(rnd, sizeof(rnd), r, sizeof(r));
	n = snprintf(tmp, TMP_NAME, "%s%.200s-%s", PB__DEVICE_TMP_PREFIX, base, rnd);
	return n < 0 || n >= TMP_NAME ? PB_ETOOBIG : 0;
}

/* The name a file is staged under: a new temporary name beside base, or
 * in a fresh folder base itself (nothing else is there, nobody sees it),
 * unless an earlier stage of the same file is there (again). */
int pb__dw_stage_name(const pb_device_writer_t *w, const char *base, bool again, char *tmp)
{
	if (!w->fresh || again)
		return tmp_name(base, tmp);
	if (strlen(base) >= TMP_NAME)
		return PB_ETOOBIG;
	memcpy(tmp, base, strlen(base) + 1);
	return 0;
}

/* Remembers tmp (in path's folder) as path's staged file. */
int pb__dw_add_staged(pb_device_writer_t *w, const char *path, const char *tmp)
{
	wstaged_t *s;

	if (w->ns == w->caps) {
		size_t cap = w->caps ? w->caps * 2 : 16;
		wstaged_t *v = realloc(w->s, cap * sizeof(*v));

		if (v == NULL)
			return PB_ENOMEM;
		w->s = v;
		w->caps = cap;
	}
	s = &w->s[w->ns];
	s->path = strdup(path);
	s->tmp = strdup(tmp);
	s->queued = false;
	if (s->path == NULL || s->tmp == NULL || pb__pathidx_put(&w->sidx, s->path, w->ns, staged_path, w) != 0) {
		free(s->path);
		free(s->tmp);
		return PB_ENOMEM;
	}
	w->ns++;
	return 0;
}