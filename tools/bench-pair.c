/* bench-pair: latency of opening an authenticated session with a paired
 * host, for the benchmarks.
 *
 *   bench-pair connect HOME N    N remembered-pairing sessions (IK handshake
 *                                plus the account challenge/response), one
 *                                after another, each closed before the next
 *   bench-pair pair HOME N       N first pairings: reads one pairing URI a
 *                                line from stdin, pairs with it (connect
 *                                ticket, NKpsk0, challenge/response), prints
 *                                {"event":"paired","ms":F} and reads the next
 *
 * Timing covers the session set-up inside this process only: no process
 * start and no password hashing (the phone is logged in beforehand). Prints
 * one JSON object at the end:
 * {"event":"latency","mode":"connect","n":N,"p50_ms":F,"p99_ms":F,"min_ms":F,"max_ms":F}
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "agent/phone/phone.h"
#include "peerback/error.h"

#define MAX_RUNS 100000

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* The nearest-rank percentile of sorted values. */
static double percentile(const double *v, size_t n, unsigned pct)
{
	size_t rank = (n * pct + 99) / 100;

	if (rank == 0)
		rank = 1;
	return v[rank - 1];
}

static int one_connect(const char *home, double *ms)
{
	pb_client_t c;
	pb_envelope_t *in = NULL;
	double t0 = now_ms();
	int rc = pb__phone_connect(home, NULL, 5000, &c, NULL);
	uint64_t last = c.pending_reply;

	if (rc != 0)
		return rc;
	/* Until the host answered the session's last request, as before the
	 * phone read that answer with its first reply. */
	c.pending_reply = 0;
	if (last != 0 && (rc = pb__phone_reply(&c, last, &in)) != 0) {
		pb__client_close(&c);
		return rc;
	}
	pb__envelope_free(in);
	*ms = now_ms() - t0;
	pb__client_close(&c);
	return 0;
}

static int one_pair(const char *home, double *ms)
{
	char uri[4096];
	size_t len;
	double t0;
	int rc;

	if (fgets(uri, sizeof(uri), stdin) == NULL)
		return PB_ETRUNCATED;
	len = strlen(uri);
	while (len > 0 && (uri[len - 1] == '\n' || uri[len - 1] == '\r'))
		uri[--len] = 0;
	t0 = now_ms();
	rc = pb__phone_pair(home, uri, 5000, NULL, NULL);
	if (rc != 0)
		return rc;
	*ms = now_ms() - t0;
	printf("{\"event\":\"paired\",\"ms\":%.3f}\n", *ms);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode, *home;
	unsigned long n;
	char *end;
	double *v;
	int rc = 0;

	if (argc != 4 || (strcmp(argv[1], "connect") != 0 && strcmp(argv[1], "pair") != 0)) {
		fprintf(stderr, "usage: bench-pair connect|pair HOME N\n");
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "bench-pair: libsodium failed to initialize\n");
		return 1;
	}
	mode = argv[1];
	home = argv[2];
	errno = 0;
	n = strtoul(argv[3], &end, 10);
	if (errno != 0 || end == argv[3] || *end != 0 || n == 0 || n > MAX_RUNS) {
		fprintf(stderr, "bench-pair: N is 1 to %d, not '%s'\n", MAX_RUNS, argv[3]);
		return 2;
	}
	v = calloc(n, sizeof(*v));
	if (v == NULL) {
		fprintf(stderr, "bench-pair: out of memory\n");
		return 1;
	}
	for (unsigned long i = 0; i < n; i++) {
		rc = strcmp(mode, "connect") == 0 ? one_connect(home, &v[i]) : one_pair(home, &v[i]);
		if (rc != 0) {
			fprintf(stderr, "bench-pair: %s %lu of %lu failed: %s\n", mode, i + 1, n, pb_strerror(rc));
			goto out_free;
		}
	}
	qsort(v, n, sizeof(*v), cmp_double);
	printf("{\"event\":\"latency\",\"mode\":\"%s\",\"n\":%lu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"min_ms\":%.3f,"
	       "\"max_ms\":%.3f}\n",
	       mode, n, percentile(v, n, 50), percentile(v, n, 99), v[0], v[n - 1]);
out_free:
	free(v);
	return rc == 0 ? 0 : 1;
}
