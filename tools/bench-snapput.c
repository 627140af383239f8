/* bench-snapput: the host store's CPU time for recording a snapshot of N
 * references (what a SnapshotPut costs the host). In a new store under DIR
 * it commits N small chunks of random names, then records a first snapshot
 * referencing all of them (a first backup) and a second snapshot of the
 * same N (an unchanged re-backup), and prints the CPU seconds of each
 * pb_store_snapshot_put() with the references in the phone's order (random
 * with respect to the names).
 *
 *   bench-snapput DIR N
 *
 * DIR must not exist; it is left behind for inspection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <sodium.h>

#include "peerback.h"

/* CPU seconds so far: user, and system into *sys. */
static double cpu_s(double *sys)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	*sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
}

/* Read and write system calls so far (/proc/self/io), for what the page
 * cache serves that CPU time alone does not tell apart. */
static void io_calls(unsigned long long *rd, unsigned long long *wr)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];

	*rd = *wr = 0;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "syscr: ", 7) == 0)
			*rd = strtoull(line + 7, NULL, 10);
		else if (strncmp(line, "syscw: ", 7) == 0)
			*wr = strtoull(line + 7, NULL, 10);
	}
	fclose(f);
}

static int snap(pb_store_ns_t *ns, uint64_t id, const uint8_t (*refs)[PB_STORE_NAME_LEN], size_t n)
{
	uint8_t root[64];
	double s0, s1, u0 = cpu_s(&s0), u1;
	unsigned long long r0, w0, r1, w1;
	int rc;

	io_calls(&r0, &w0);
	randombytes_buf(root, sizeof(root));
	rc = pb_store_snapshot_put(ns, id, refs, n, root, sizeof(root));
	if (rc != 0) {
		fprintf(stderr, "bench-snapput: snapshot %llu: %s\n", (unsigned long long)id, pb_strerror(rc));
		return rc;
	}
	u1 = cpu_s(&s1);
	io_calls(&r1, &w1);
	printf("snapshot %llu: %zu refs, %.2f CPU s (%.2f user, %.2f system), %llu reads, %llu writes\n",
	       (unsigned long long)id, n, u1 - u0 + s1 - s0, u1 - u0, s1 - s0, r1 - r0, w1 - w0);
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t (*names)[PB_STORE_NAME_LEN];
	uint8_t ct[64];
	pb_store_t *store = NULL;
	pb_store_ns_t *ns = NULL;
	unsigned long n;
	char *end = NULL;
	double t, sys0, sys1;
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: bench-snapput DIR N\n");
		return 2;
	}
	errno = 0;
	n = strtoul(argv[2], &end, 10);
	if (errno != 0 || *end != 0 || n == 0 || n > PB_STORE_SNAPSHOT_REFS_MAX) {
		fprintf(stderr, "bench-snapput: N must be 1 to %u\n", (unsigned)PB_STORE_SNAPSHOT_REFS_MAX);
		return 2;
	}
	if (sodium_init() < 0 || (names = malloc(n * sizeof(*names))) == NULL)
		return 1;
	randombytes_buf(names, n * sizeof(*names));
	randombytes_buf(ct, sizeof(ct));
	if ((rc = pb_store_open(argv[1], &store)) != 0 ||
	    (rc = pb_store_ns_open(store, "bench", "0123456789abcdef0123456789abcdef", &ns)) != 0)
		goto out;
	t = cpu_s(&sys0);
	for (unsigned long i = 0; i < n; i++) {
		if ((rc = pb_store_put(ns, names[i], ct, sizeof(ct))) != 0)
			goto out;
		if ((i + 1) % 8192 == 0 || i + 1 == n) {
			if ((rc = pb_store_flush(ns)) < 0)
				goto out;
		}
	}
	t = cpu_s(&sys1) - t;
	printf("chunks: %lu put and committed, %.2f CPU s\n", n, t + sys1 - sys0);
	if ((rc = snap(ns, 1, (const uint8_t(*)[PB_STORE_NAME_LEN])names, n)) == 0)
		rc = snap(ns, 2, (const uint8_t(*)[PB_STORE_NAME_LEN])names, n);
out:
	if (rc < 0)
		fprintf(stderr, "bench-snapput: %s\n", pb_strerror(rc));
	pb_store_ns_close(ns);
	pb_store_close(store);
	free(names);
	return rc == 0 ? 0 : 1;
}
