/* Buffers, random stream, files and staged imports for the chat and contacts
 * kinds. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"
#include "agent/util/fsutil.h"

int pb__chat_buf_add(pb_buf_t *b, const void *data, size_t len)
{
	size_t cap;
	uint8_t *p;

	if (len == 0)
		return 0;
	if (len > SIZE_MAX - b->len - 1)
		return PB_ENOMEM;
	if (b->len + len + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + len + 1) {
			if (cap > SIZE_MAX / 2)
				return PB_ENOMEM;
			cap *= 2;
		}
		p = realloc(b->data, cap);
		if (p == NULL)
			return PB_ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = 0;
	return 0;
}

int pb__chat_buf_str(pb_buf_t *b, const char *s)
{
	return pb__chat_buf_add(b, s, strlen(s));
}

int pb__chat_buf_printf(pb_buf_t *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return PB_ETOOBIG;
	return pb__chat_buf_add(b, tmp, (size_t)n);
}

void pb__chat_buf_clear(pb_buf_t *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int pb__chat_fail(char *errbuf, size_t errcap, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (errbuf == NULL || errcap == 0)
		return err;
	va_start(ap, fmt);
	n = vsnprintf(errbuf, errcap, fmt, ap);
	va_end(ap);
	if (n < 0)
		errbuf[0] = 0;
	return err;
}

void pb__chat_rng_init(pb__chat_rng_t *rng, uint64_t seed, const char *label)
{
	crypto_generichash_state h;
	uint8_t s[8];
	int i;

	for (i = 0; i < 8; i++)
		s[i] = (uint8_t)(seed >> (8 * i));
	crypto_generichash_init(&h, NULL, 0, sizeof(rng->key));
	crypto_generichash_update(&h, s, sizeof(s));
	crypto_generichash_update(&h, (const uint8_t *)label, strlen(label));
	crypto_generichash_final(&h, rng->key, sizeof(rng->key));
	rng->nonce = 0;
	rng->used = sizeof(rng->block);
}

static void rng_stream(pb__chat_rng_t *rng, uint8_t *out, size_t len)
{
	uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
	int i;

	for (i = 0; i < 8; i++)
		nonce[i] = (uint8_t)(rng->nonce >> (8 * i));
	rng->nonce++;
	crypto_stream_chacha20_ietf(out, len, nonce, rng->key);
}

void pb__chat_rng_bytes(pb__chat_rng_t *rng, void *out, size_t len)
{
	uint8_t *o = out;
	size_t k;

	/* Large requests come straight from a fresh stream. */
	if (len >= sizeof(rng->block)) {
		rng_stream(rng, o, len);
		return;
	}
	while (len > 0) {
		if (rng->used == sizeof(rng->block)) {
			rng_stream(rng, rng->block, sizeof(rng->block));
			rng->used = 0;
		}
		k = sizeof(rng->block) - rng->used;
		if (k > len)
			k = len;
		memcpy(o, rng->block + rng->used, k);
		rng->used += k;
		o += k;
		len -= k;
	}
}

uint32_t pb__chat_rng_below(pb__chat_rng_t *rng, uint32_t bound)
{
	uint32_t x, limit;

	if (bound <= 1)
		return 0;
	limit = UINT32_MAX - UINT32_MAX % bound;
	do
		pb__chat_rng_bytes(rng, &x, sizeof(x));
	while (x >= limit);
	return x % bound;
}

void pb__chat_rng_wipe(pb__chat_rng_t *rng)
{
	sodium_memzero(rng, sizeof(*rng));
}

uint64_t pb__chat_hash64(const void *data, size_t len)
{
	uint8_t h[8];
	uint64_t v = 0;
	int i;

	crypto_generichash(h, sizeof(h), data, len, NULL, 0);
	for (i = 0; i < 8; i++)
		v |= (uint64_t)h[i] << (8 * i);
	return v;
}

int pb__chat_mkdirs(const char *path)
{
	char tmp[4096];
	size_t len = strlen(path), i;

	if (len == 0 || len >= sizeof(tmp))
		return PB_EINVAL;
	memcpy(tmp, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (tmp[i] != '/' && tmp[i] != 0)
			continue;
		tmp[i] = 0;
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return -errno;
		tmp[i] = i < len ? '/' : 0;
	}
	return 0;
}

int pb__chat_mkparents(const char *path)
{
	char tmp[4096];
	char *slash;
	size_t len = strlen(path);

	if (len >= sizeof(tmp))
		return PB_EINVAL;
	memcpy(tmp, path, len + 1);
	slash = strrchr(tmp, '/');
	if (slash == NULL || slash == tmp)
		return 0;
	*slash = 0;
	return pb__chat_mkdirs(tmp);
}

/* Opens rel under dir for reading, one component at a time, without
 * following a symbolic link anywhere below dir: an export holds its files,
 * and a link in it may point at anything on the phone. */
int pb__chat_open_below(const char *dir, const char *rel, int *out)
{
	const char *base = strrchr(rel, '/');
	int root, fd, next;

	*out = -1;
	root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return -errno;
	next = pb__open_parent_at(root, rel, false, 0, NULL, NULL, NULL, &fd);
	close(root);
	if (next != 0)
		return next;
	next = openat(fd, base != NULL ? base + 1 : rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (next < 0 && errno == ELOOP)
		next = PB_EDATA_LINK;
	else if (next < 0)
		next = -errno;
	close(fd);
	if (next >= 0) {
		struct stat st;

		if (fstat(next, &st) != 0 || !S_ISREG(st.st_mode)) {
			close(next);
			return -EISDIR;
		}
	}
	*out = next;
	return next < 0 ? next : 0;
}

int pb__chat_copy_file(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC), err;

	if (in < 0)
		return -errno;
	err = pb__chat_copy_fd(in, dst);
	close(in);
	return err;
}

int pb__chat_copy_fd(int in, const char *dst)
{
	static const size_t block = 1u << 20;
	int out, err = 0;
	uint8_t *buf;
	ssize_t r, w, off;

	buf = malloc(block);
	if (buf == NULL)
		return PB_ENOMEM;
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		err = -errno;
		goto out_free;
	}
	for (;;) {
		r = read(in, buf, block);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			break;
		}
		if (r == 0)
			break;
		for (off = 0; off < r; off += w) {
			w = write(out, buf + off, (size_t)(r - off));
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w < 0) {
				err = -errno;
				goto out_close_out;
			}
		}
	}
	if (err == 0 && fsync(out) != 0)
		err = -errno;
out_close_out:
	if (close(out) != 0 && err == 0)
		err = -errno;
out_free:
	free(buf);
	return err;
}

int pb__chat_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int err = 0;

	if (f == NULL)
		return -errno;
	if (len > 0 && fwrite(data, 1, len, f) != len)
		err = PB_EIO;
	if (err == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		err = PB_EIO;
	if (fclose(f) != 0 && err == 0)
		err = PB_EIO;
	return err;
}

int pb__chat_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	FILE *f;
	struct stat st;
	uint8_t *buf;
	size_t n;

	f = fopen(path, "rb");
	if (f == NULL)
		return -errno;
	if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
		fclose(f);
		return PB_EIO;
	}
	if ((uint64_t)st.st_size > max) {
		fclose(f);
		return PB_ETOOBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		fclose(f);
		return PB_ENOMEM;
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	if (n != (size_t)st.st_size) {
		free(buf);
		return PB_EIO;
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

void pb__chat_rmtree(const char *path)
{
	DIR *d;
	struct dirent *e;
	char sub[4096];
	struct stat st;
	int n;

	if (lstat(path, &st) != 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	d = opendir(path);
	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			n = snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			if (n < 0 || (size_t)n >= sizeof(sub))
				continue;
			pb__chat_rmtree(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

bool pb__chat_relpath_ok(const char *rel, size_t len)
{
	size_t i, start = 0;

	if (len == 0 || len > PB__CHAT_PATH_MAX || rel[0] == '/')
		return false;
	for (i = 0; i <= len; i++) {
		if (i < len && ((unsigned char)rel[i] < 0x20 || rel[i] == '\\' || rel[i] == 0x7f))
			return false;
		if (i < len && rel[i] != '/')
			continue;
		if (i == start)
			return false;
		if (i - start == 1 && rel[start] == '.')
			return false;
		if (i - start == 2 && rel[start] == '.' && rel[start + 1] == '.')
			return false;
		start = i + 1;
	}
	return true;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void pb__chat_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int pb__chat_list(const char *dir, bool dirs, char ***names, size_t *n)
{
	DIR *d;
	struct dirent *e;
	struct stat st;
	char sub[4096];
	char **v = NULL, **nv;
	size_t cnt = 0, cap = 0;
	int k;

	*names = NULL;
	*n = 0;
	d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		k = snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		if (k < 0 || (size_t)k >= sizeof(sub) || stat(sub, &st) != 0)
			continue;
		if (dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL)
				goto out_nomem;
			v = nv;
		}
		v[cnt] = strdup(e->d_name);
		if (v[cnt] == NULL)
			goto out_nomem;
		cnt++;
	}
	closedir(d);
	if (cnt > 1)
		qsort(v, cnt, sizeof(*v), cmp_names);
	*names = v;
	*n = cnt;
	return 0;
out_nomem:
	closedir(d);
	pb__chat_names_free(v, cnt);
	return PB_ENOMEM;
}

int pb__chat_stage_open(pb__chat_stage_t *st, const char *device_dir)
{
	int n;

	n = snprintf(st->device, sizeof(st->device), "%s", device_dir);
	if (n < 0 || (size_t)n >= sizeof(st->device) - 64)
		return PB_EINVAL;
	n = pb__chat_mkdirs(device_dir);
	if (n != 0)
		return n;
	n = snprintf(st->root, sizeof(st->root), "%s/.pb-import-XXXXXX", device_dir);
	if (n < 0 || (size_t)n >= sizeof(st->root))
		return PB_EINVAL;
	if (mkdtemp(st->root) == NULL)
		return -errno;
	return 0;
}

int pb__chat_stage_path(pb__chat_stage_t *st, const char *rel, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", st->root, rel);

	if (n < 0 || (size_t)n >= cap)
		return PB_ETOOBIG;
	return pb__chat_mkparents(out);
}

/* Moves the staged tree from into the device directory at rel ("" for
 * its top), opening every destination folder without following a link:
 * a link in the device directory is never written through. */
static int stage_move(int root, const char *from, const char *rel)
{
	DIR *d;
	struct dirent *e;
	struct stat st;
	char a[4096], b[4096];
	int n, err = 0;

	if (lstat(from, &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		const char *base = strrchr(rel, '/');
		int pfd;

		if ((err = pb__open_parent_at(root, rel, true, 0700, NULL, NULL, NULL, &pfd)) != 0)
			return err;
		base = base != NULL ? base + 1 : rel;
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			err = PB_EDATA_LINK;
		else if (renameat(AT_FDCWD, from, pfd, base) != 0)
			err = -errno;
		close(pfd);
		return err;
	}
	d = opendir(from);
	if (d == NULL)
		return -errno;
	while (err == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		n = snprintf(a, sizeof(a), "%s/%s", from, e->d_name);
		if (n < 0 || (size_t)n >= sizeof(a)) {
			err = PB_ETOOBIG;
			break;
		}
		n = rel[0] ? snprintf(b, sizeof(b), "%s/%s", rel, e->d_name) : snprintf(b, sizeof(b), "%s", e->d_name);
		if (n < 0 || (size_t)n >= sizeof(b)) {
			err = PB_ETOOBIG;
			break;
		}
		err = stage_move(root, a, b);
	}
	closedir(d);
	return err;
}

int pb__chat_stage_commit(pb__chat_stage_t *st)
{
	int root = open(st->device, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;

	if (root < 0) {
		err = -errno;
	} else {
		err = stage_move(root, st->root, "");
		close(root);
	}
	pb__chat_rmtree(st->root);
	return err;
}

void pb__chat_stage_abort(pb__chat_stage_t *st)
{
	pb__chat_rmtree(st->root);
}

int pb__chat_lines_next(pb__chat_lines_t *r, const char **line, size_t *len)
{
	int c;
	uint8_t *nb;
	bool any = false;

	r->len = 0;
	r->newline = false;
	r->start = r->off;
	for (;;) {
		if (r->f != NULL) {
			c = getc_unlocked(r->f);
			if (c == EOF)
				break;
		} else {
			if (r->pos >= r->memlen)
				break;
			c = r->mem[r->pos++];
		}
		any = true;
		r->off++;
		if (c == '\n') {
			r->newline = true;
			break;
		}
		if (r->len >= PB__CHAT_LINE_MAX) {
			r->lineno++;
			return PB_ETOOBIG;
		}
		if (r->len + 2 > r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 256;
			nb = realloc(r->buf, cap);
			if (nb == NULL)
				return PB_ENOMEM;
			r->buf = nb;
			r->cap = cap;
		}
		r->buf[r->len++] = (uint8_t)c;
	}
	if (!any)
		return 0;
	if (r->f != NULL && ferror(r->f))
		return PB_EIO;
	r->crlf = r->len > 0 && r->buf[r->len - 1] == '\r';
	if (r->crlf)
		r->len--;
	if (r->buf == NULL) {
		r->buf = malloc(1);
		if (r->buf == NULL)
			return PB_ENOMEM;
		r->cap = 1;
	}
	r->buf[r->len] = 0;
	r->lineno++;
	*line = (const char *)r->buf;
	*len = r->len;
	return 1;
}

void pb__chat_lines_free(pb__chat_lines_t *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = 0;
}
