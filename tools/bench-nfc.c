/* bench-nfc: the NFC fallback latency, from the request to a usable
 * credential: each round plays `peerback nfc use ID --transaction` against
 * an empty device directory, so the local read fails and the credential
 * comes from the paired host (remembered pairing, Noise IK, account check,
 * fetch, decrypt, checksum and expiry check). Prints the median and spread.
 *
 *   bench-nfc --home PHONE_HOME --id CREDENTIAL [-n ROUNDS] [--timeout MS] [--json]
 *
 * The phone at PHONE_HOME must be paired with a running host that holds a
 * backup of CREDENTIAL (tools/bench/nfc-fallback.sh sets that up). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/nfc/nfc.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
	const char *home = NULL, *id = NULL;
	unsigned long rounds = 100, timeout = 2000;
	bool json = false;
	char empty[] = "/tmp/bench-nfc-XXXXXX";
	double *ms, sum = 0;
	size_t ok = 0;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		char *end = NULL;

		if (strcmp(argv[i], "--home") == 0 && i + 1 < argc)
			home = argv[++i];
		else if (strcmp(argv[i], "--id") == 0 && i + 1 < argc)
			id = argv[++i];
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			errno = 0;
			rounds = strtoul(argv[++i], &end, 10);
			if (errno != 0 || *end != 0 || rounds == 0 || rounds > 100000) {
				fprintf(stderr, "bench-nfc: -n must be 1 to 100000\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			errno = 0;
			timeout = strtoul(argv[++i], &end, 10);
			if (errno != 0 || *end != 0 || timeout == 0 || timeout > PB_NFC_TIMEOUT_MAX_MS) {
				fprintf(stderr, "bench-nfc: --timeout must be 1 to %d ms\n", PB_NFC_TIMEOUT_MAX_MS);
				return 2;
			}
		} else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else {
			fprintf(stderr, "usage: bench-nfc --home PHONE_HOME --id CREDENTIAL [-n ROUNDS] [--timeout MS] "
					"[--json]\n");
			return 2;
		}
	}
	if (home == NULL || id == NULL) {
		fprintf(stderr, "bench-nfc: --home and --id are required\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	ms = calloc(rounds, sizeof(*ms));
	if (ms == NULL || mkdtemp(empty) == NULL) {
		fprintf(stderr, "bench-nfc: %s\n", strerror(errno));
		free(ms);
		return 1;
	}
	for (unsigned long i = 0; i < rounds; i++) {
		pb__nfc_use_opts_t o;
		pb__nfc_use_result_t r;
		struct timespec t0, t1;
		int e;

		memset(&o, 0, sizeof(o));
		o.home = home;
		o.device_dir = empty;
		o.transaction = true;
		o.timeout_ms = (int)timeout;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		e = pb__nfc_use(&o, id, &r);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (e != 0 || !r.from_host) {
			fprintf(stderr, "bench-nfc: round %lu: %s\n", i + 1, pb_strerror(e));
			pb_credential_free(r.cred);
			goto out_free;
		}
		/* The whole call: local read, fetch, decrypt and checks. */
		ms[ok] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		sum += ms[ok++];
		pb_credential_free(r.cred);
	}
	qsort(ms, ok, sizeof(*ms), cmp_double);
	if (json)
		printf("{\"bench\":\"nfc-fallback\",\"rounds\":%zu,\"median_ms\":%.3f,\"mean_ms\":%.3f,\"p90_ms\":%.3f,"
		       "\"min_ms\":%.3f,\"max_ms\":%.3f,\"target_ms\":50}\n",
		       ok, pct(ms, ok, 0.5), sum / (double)ok, pct(ms, ok, 0.9), ms[0], ms[ok - 1]);
	else
		printf("nfc fallback (request to usable credential), %zu rounds: median %.2f ms, mean %.2f, p90 %.2f, "
		       "min %.2f, max %.2f (target <= 50 ms)\n",
		       ok, pct(ms, ok, 0.5), sum / (double)ok, pct(ms, ok, 0.9), ms[0], ms[ok - 1]);
	rc = 0;
out_free:
	rmdir(empty);
	free(ms);
	return rc;
}
