/* The rollback check of a lookup by id without opening the phone's state.
 *
 * The check compares the host's latest snapshot of this phone with the
 * newest one this phone completed there, which only the state knows
 * (pb_backup_state_host_done). Opening the SQLite state costs a command
 * more than half a millisecond of CPU (the only connection rebuilds the
 * WAL index, the schema is parsed), for one value that changes only when
 * a backup completes. So, after a check that read it, the phone keeps
 * that value in HOME/root-cache/rollback with the state's stamp: the
 * inode, size and modification time of the state's file and of its WAL.
 * Every transaction a backup commits writes the WAL (or, checkpointed,
 * the file), so an unchanged stamp means an unchanged value; the next
 * lookup compares the stamp (two stat calls) and takes the value, or
 * opens the state as before.
 *
 * The stamp is taken after the value was read and kept only when neither
 * file was modified since just before the read (their modification times
 * are older than the clock, at the file system's granularity, when the
 * read began): a backup committing during the read leaves no mark. A file
 * that does not parse, another host's, or a stamp that differs is passed
 * over. Layout (little-endian):
 *   [magic 8][host 32][known 8][has 1][wal 1][db: ino size mtime 24]
 *   [wal: ino size mtime 24][check 16]  check: BLAKE2b-128 of what precedes */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/backup/restore-int.h"
#include "agent/util/fsutil.h"

#define MARK_MAGIC "pbroll1\n"
#define MARK_BODY (8 + 32 + 8 + 1 + 1 + 24 + 24)
#define MARK_LEN (MARK_BODY + 16)

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int mark_path(const char *home, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/root-cache/rollback", home);

	return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
}

static uint64_t ns_of(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

/* The state's stamp: 0, or PB_ENOTFOUND when there is no state. */
static int stamp(const char *home, uint8_t *wal, uint8_t out[48], uint64_t *newest)
{
	char path[4096], walp[4200];
	struct stat a, b;
	int n;

	if (pb__state_path(home, path, sizeof(path)) != 0 || stat(path, &a) != 0)
		return PB_ENOTFOUND;
	n = snprintf(walp, sizeof(walp), "%s-wal", path);
	if (n < 0 || (size_t)n >= sizeof(walp))
		return PB_ENOTFOUND;
	*wal = stat(walp, &b) == 0;
	if (!*wal)
		memset(&b, 0, sizeof(b));
	memset(out, 0, 48);
	put64(out, (uint64_t)a.st_ino);
	put64(out + 8, (uint64_t)a.st_size);
	put64(out + 16, ns_of(&a.st_mtim));
	put64(out + 24, (uint64_t)b.st_ino);
	put64(out + 32, (uint64_t)b.st_size);
	put64(out + 40, ns_of(&b.st_mtim));
	*newest = ns_of(&a.st_mtim) > ns_of(&b.st_mtim) ? ns_of(&a.st_mtim) : ns_of(&b.st_mtim);
	return 0;
}

uint64_t pb__rollback_mark_clock(void)
{
	struct timespec t;

	/* The clock the file system stamps modifications with. */
	if (clock_gettime(CLOCK_REALTIME_COARSE, &t) != 0)
		return 0;
	return ns_of(&t);
}

int pb__rollback_mark_load(const char *home, const uint8_t host_pk[32], uint64_t *known, bool *has)
{
	uint8_t buf[MARK_LEN + 1], st[48], check[16], wal;
	char path[4096];
	uint64_t newest, v = 0;
	ssize_t n;
	int fd;

	if (mark_path(home, path, sizeof(path)) != 0 || (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return PB_ENOTFOUND;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != MARK_LEN || memcmp(buf, MARK_MAGIC, 8) != 0 || sodium_memcmp(buf + 8, host_pk, 32) != 0)
		return PB_ENOTFOUND;
	crypto_generichash(check, sizeof(check), buf, MARK_BODY, NULL, 0);
	if (sodium_memcmp(check, buf + MARK_BODY, sizeof(check)) != 0 || buf[48] > 1)
		return PB_ENOTFOUND;
	if (stamp(home, &wal, st, &newest) != 0 || buf[49] != wal || memcmp(buf + 50, st, 48) != 0)
		return PB_ENOTFOUND;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | buf[40 + i];
	*known = v;
	*has = buf[48] == 1;
	return 0;
}

void pb__rollback_mark_save(const char *home, const uint8_t host_pk[32], uint64_t began, uint64_t known, bool has)
{
	uint8_t buf[MARK_LEN], wal;
	char path[4096], dir[4096];
	uint64_t newest;

	/* Modified at or after the read began (or no clock): no mark. */
	if (began == 0 || stamp(home, &wal, buf + 50, &newest) != 0 || newest >= began)
		return;
	if (mark_path(home, path, sizeof(path)) != 0 || pb__path_join(dir, sizeof(dir), home, "root-cache") != 0 ||
	    pb__mkdirs(dir, 0700) != 0)
		return;
	memcpy(buf, MARK_MAGIC, 8);
	memcpy(buf + 8, host_pk, 32);
	put64(buf + 40, known);
	buf[48] = has ? 1 : 0;
	buf[49] = wal;
	crypto_generichash(buf + MARK_BODY, 16, buf, MARK_BODY, NULL, 0);
	/* Best effort: without it the next lookup opens the state. */
	(void)pb__write_file_atomic(path, buf, sizeof(buf), 0600);
}
