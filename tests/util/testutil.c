/* Helpers shared by the tests. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char *join_path(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);

	if (p == NULL)
		abort();
	if (snprintf(p, n, "%s/%s", a, b) < 0)
		abort();
	return p;
}

char *pb_test_tmpdir(const char *tag)
{
	const char *base = getenv("PB_BINARY_DIR");
	char tmpl[4096];
	char *root;
	int n;

	if (base == NULL)
		base = "/tmp";
	root = join_path(base, "test-tmp");
	mkdir(root, 0700);
	n = snprintf(tmpl, sizeof(tmpl), "%s/%s-XXXXXX", root, tag);
	free(root);
	if (n < 0 || (size_t)n >= sizeof(tmpl))
		abort();
	if (mkdtemp(tmpl) == NULL)
		abort();
	return strdup(tmpl);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

char *pb_test_dir;

int pb_test_dir_setup(void **state)
{
	(void)state;
	pb_test_dir = pb_test_tmpdir(program_invocation_short_name);
	return 0;
}

int pb_test_dir_teardown(void **state)
{
	(void)state;
	pb_test_rmtree(pb_test_dir);
	free(pb_test_dir);
	pb_test_dir = NULL;
	return 0;
}

void pb_test_path(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", pb_test_dir, name);
}

void pb_test_first_entry(const char *dir, char *out, size_t cap)
{
	struct dirent **names;
	int n;

	n = scandir(dir, &names, NULL, alphasort);
	assert_true(n > 2);
	snprintf(out, cap, "%s", names[2]->d_name);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void pb_test_rmtree(const char *path)
{
	if (path != NULL)
		nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

char *pb_test_data(const char *rel)
{
	const char *base = getenv("PB_TEST_DATA_DIR");

	if (base == NULL) {
		fprintf(stderr, "PB_TEST_DATA_DIR is not set: run the tests through ctest\n");
		exit(1);
	}
	return join_path(base, rel);
}

char *pb_test_tool(const char *name)
{
	const char *base = getenv("PB_TOOLS_DIR");

	if (base == NULL)
		base = "./tools";
	return join_path(base, name);
}

char *pb_test_tool_sh(const char *name)
{
	const char *emu = getenv("PB_TEST_EMULATOR");
	char *tool = pb_test_tool(name), *sh;
	size_t n;

	if (emu == NULL)
		emu = "";
	n = strlen(emu) + strlen(tool) + 4;
	sh = malloc(n);
	if (sh == NULL)
		abort();
	snprintf(sh, n, "%s%s'%s'", emu, emu[0] ? " " : "", tool);
	free(tool);
	return sh;
}

/* The ELF machine of a file (bytes 18-19 of its header), 0 if it is not ELF. */
static unsigned elf_machine(const char *path)
{
	unsigned char h[20];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return 0;
	r = read(fd, h, sizeof(h));
	close(fd);
	if (r != (ssize_t)sizeof(h) || memcmp(h, "\177ELF", 4) != 0)
		return 0;
	return (unsigned)h[18] | (unsigned)h[19] << 8;
}

void pb_test_execv(char *const argv[])
{
	const char *emu = getenv("PB_TEST_EMULATOR");
	char *words, *save = NULL, *w;
	char **all;
	size_t n = 0, na = 0;

	/* Only the programs built for the tests' own machine go through the
	 * emulator; /bin/sh, cp and the like are the build machine's. */
	if (emu == NULL || emu[0] == 0 || elf_machine(argv[0]) != elf_machine("/proc/self/exe")) {
		execv(argv[0], argv);
		return;
	}
	while (argv[n] != NULL)
		n++;
	words = strdup(emu);
	all = calloc(n + strlen(emu) + 2, sizeof(*all));
	if (words == NULL || all == NULL)
		return;
	for (w = strtok_r(words, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save))
		all[na++] = w;
	for (size_t i = 0; i < n; i++)
		all[na++] = argv[i];
	all[na] = NULL;
	execv(all[0], all);
}

uint8_t *pb_test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		size_t r;

		if (cap - n < 65536) {
			uint8_t *nb = realloc(buf, cap * 2 + 65537);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap = cap * 2 + 65536;
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[n] = 0;
	if (len != NULL)
		*len = n;
	return buf;
}

int pb_test_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL)
		return -errno;
	if (len > 0 && fwrite(data, 1, len, f) != len) {
		fclose(f);
		return -EIO;
	}
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

static void apply_env(char *const env[])
{
	if (env == NULL)
		return;
	for (size_t i = 0; env[i] != NULL; i++)
		putenv(env[i]);
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
	char *nb = realloc(*buf, *len + n + 1);

	if (nb == NULL)
		abort();
	memcpy(nb + *len, data, n);
	*len += n;
	nb[*len] = 0;
	*buf = nb;
}

static int status_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

int pb_test_run(char *const argv[], char *const env[], int timeout_s, char **out, char **err)
{
	int po[2], pe[2];
	pid_t pid;
	char *ob = NULL, *eb = NULL;
	size_t ol = 0, el = 0;
	int status = 0;
	int open_o = 1, open_e = 1;
	time_t deadline = time(NULL) + timeout_s;

	if (pipe(po) != 0 || pipe(pe) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		apply_env(env);
		pb_test_execv(argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	append(&ob, &ol, "", 0);
	append(&eb, &el, "", 0);
	while (open_o || open_e) {
		struct pollfd fds[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
		char tmp[8192];
		int left = (int)(deadline - time(NULL));

		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (!open_o)
			fds[0].fd = -1;
		if (!open_e)
			fds[1].fd = -1;
		if (poll(fds, 2, 1000) < 0 && errno != EINTR)
			break;
		if (fds[0].revents) {
			ssize_t r = read(po[0], tmp, sizeof(tmp));
			if (r <= 0)
				open_o = 0;
			else
				append(&ob, &ol, tmp, (size_t)r);
		}
		if (fds[1].revents) {
			ssize_t r = read(pe[0], tmp, sizeof(tmp));
			if (r <= 0)
				open_e = 0;
			else
				append(&eb, &el, tmp, (size_t)r);
		}
	}
	close(po[0]);
	close(pe[0]);
	waitpid(pid, &status, 0);
	if (out != NULL)
		*out = ob;
	else
		free(ob);
	if (err != NULL)
		*err = eb;
	else
		free(eb);
	return status_code(status);
}

int pb_test_spawn(pb_test_proc_t *p, char *const argv[], char *const env[])
{
	int po[2];

	memset(p, 0, sizeof(*p));
	if (pipe(po) != 0)
		return -1;
	p->pid = fork();
	if (p->pid < 0)
		return -1;
	if (p->pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(po[1], 1);
		close(po[0]);
		apply_env(env);
		pb_test_execv(argv);
		_exit(127);
	}
	close(po[1]);
	p->out_fd = po[0];
	return 0;
}

int pb_test_readline(pb_test_proc_t *p, char *line, size_t cap, int timeout_ms)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		struct pollfd fd = { p->out_fd, POLLIN, 0 };
		long spent;
		ssize_t r;

		if (nl != NULL) {
			size_t n = (size_t)(nl - p->buf);
			size_t c = n < cap - 1 ? n : cap - 1;

			memcpy(line, p->buf, c);
			line[c] = 0;
			memmove(p->buf, nl + 1, p->len - n - 1);
			p->len -= n + 1;
			return (int)c;
		}
		if (p->len == sizeof(p->buf))
			p->len = 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (spent >= timeout_ms)
			return -1;
		if (poll(&fd, 1, (int)(timeout_ms - spent)) <= 0)
			continue;
		r = read(p->out_fd, p->buf + p->len, sizeof(p->buf) - p->len);
		if (r <= 0)
			return -1;
		p->len += (size_t)r;
	}
}

int pb_test_stop(pb_test_proc_t *p, int sig)
{
	int status = 0;

	if (p->pid <= 0)
		return -1;
	if (sig != 0)
		kill(p->pid, sig);
	waitpid(p->pid, &status, 0);
	close(p->out_fd);
	p->pid = 0;
	return status_code(status);
}

static const void *g_needle;
static size_t g_needle_len;
static size_t g_hits;

static int grep_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	size_t len;
	uint8_t *data;

	(void)ftw;
	if (flag != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	data = pb_test_read_file(path, &len);
	if (data == NULL)
		return 0;
	for (size_t i = 0; i + g_needle_len <= len; i++)
		if (memcmp(data + i, g_needle, g_needle_len) == 0)
			g_hits++;
	free(data);
	return 0;
}

size_t pb_test_grep_tree(const char *dir, const void *needle, size_t len)
{
	g_needle = needle;
	g_needle_len = len;
	g_hits = 0;
	nftw(dir, grep_one, 32, FTW_PHYS);
	return g_hits;
}

int pb_test_same_tree(const char *a, const char *b)
{
	char *argv[] = { "/usr/bin/diff", "-r", "-q", (char *)a, (char *)b, NULL };
	char *out = NULL;
	int rc = pb_test_run(argv, NULL, 120, &out, NULL);

	if (rc != 0)
		printf("diff: %s", out);
	free(out);
	return rc;
}

void pb_test_chunk_name(const uint8_t key[32], const uint8_t *plain, size_t len, uint8_t name[32])
{
	static const uint8_t personal[16] = "peerback/tree8";
	static const uint8_t salt[16];
	crypto_generichash_blake2b_state st;
	uint8_t msg[8 + 8 * 32];
	size_t seg;

	if (len < 64 * 1024) {
		crypto_generichash(name, 32, plain, len, key, 32);
		return;
	}
	seg = (len + 7) / 8;
	seg = (seg + 127) / 128 * 128;
	for (int i = 0; i < 8; i++)
		msg[i] = (uint8_t)((uint64_t)len >> (8 * i));
	for (size_t q = 0; q < 8; q++)
		crypto_generichash(msg + 8 + 32 * q, 32, plain + q * seg, q < 7 ? seg : len - 7 * seg, key, 32);
	crypto_generichash_blake2b_init_salt_personal(&st, key, 32, 32, salt, personal);
	crypto_generichash_blake2b_update(&st, msg, sizeof(msg));
	crypto_generichash_blake2b_final(&st, name, 32);
}
