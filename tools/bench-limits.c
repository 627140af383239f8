/* bench-limits: the physical limits of this machine for what a backup does
 * to every byte, one core each: keyed BLAKE2b (the chunk name), XChaCha20-
 * Poly1305 and ChaCha20-Poly1305 IETF (sealing) in libsodium and in OpenSSL's
 * libcrypto (protocol/aead.c picks by size), zstd level 3 on
 * incompressible and on text-like data, and loopback TCP (one sender
 * thread, one receiver). Throughput is bytes per second of the measuring
 * thread's own CPU time, so that other programs on a shared machine change
 * it little; TCP is given per wall-clock second. BLAKE2b is measured as
 * libsodium's crypto_generichash, as agent/util/blake2b.c's prepared
 * keyed state, and as its eight messages at once (the row's size is that
 * of each message).
 *
 *   bench-limits [--json] [--seconds S] [--small]
 *
 * --small: ChaCha20-Poly1305 of short messages (16 B to 16 KiB) through each
 * library instead, where the cost of a call shows: protocol/aead.h's
 * PB_AEAD_LIBCRYPTO_MIN comes from these rows.
 *
 * The bench (tools/bench/bench.py) prints the table and keeps the figures
 * in bench/results.json beside peerback's, to show the distance to the
 * limit. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <zstd.h>

#include "agent/util/blake2b.h"
#include "protocol/aead.h"

#define KIB 1024
#define MIB (1024 * 1024)
#define TCP_BUF (256 * KIB)

static double seconds = 0.5;
static bool json;
static int rows;

static double clock_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	return clock_of(CLOCK_THREAD_CPUTIME_ID);
}

static double wall_now(void)
{
	return clock_of(CLOCK_MONOTONIC);
}

static void row(const char *what, const char *op, size_t size, double mb_s)
{
	if (json) {
		printf("%s{\"what\":\"%s\",\"op\":\"%s\",\"size\":%zu,\"mb_s\":%.1f}", rows > 0 ? ",\n" : "", what,
		       op, size, mb_s);
	} else {
		printf("%-32s %-11s %8zu %s %10.1f MB/s\n", what, op, size >= KIB ? size / KIB : size,
		       size >= KIB ? "KiB" : "B  ", mb_s);
	}
	rows++;
}

/* Random bytes (incompressible) or text-like bytes: words of a small
 * vocabulary with spaces and newlines, as chat messages are. */
static void fill(uint8_t *buf, size_t len, bool text)
{
	static const char *const words[] = { "the", "message", "sent", "at", "photo", "tomorrow", "ok", "see",
					     "you", "later", "call", "me", "when", "home", "thanks", "good",
					     "night", "where", "are", "meeting", "2026-11-30T16:14:50Z", "\n" };
	size_t nwords = sizeof(words) / sizeof(words[0]), at = 0;

	if (!text) {
		randombytes_buf(buf, len);
		return;
	}
	while (at < len) {
		const char *w = words[randombytes_uniform((uint32_t)nwords)];
		size_t n = strlen(w);

		for (size_t i = 0; i < n && at < len; i++)
			buf[at++] = (uint8_t)w[i];
		if (at < len)
			buf[at++] = ' ';
	}
}

/* Runs op on buf until `seconds` of this thread's CPU time have passed;
 * returns MB/s of CPU time. */
typedef size_t (*op_fn)(void *arg, uint8_t *buf, size_t len);

static double measure(op_fn op, void *arg, uint8_t *buf, size_t len)
{
	double start = cpu_now(), spent;
	uint64_t bytes = 0;

	op(arg, buf, len); /* warm the caches and contexts */
	do {
		bytes += op(arg, buf, len);
		spent = cpu_now() - start;
	} while (spent < seconds);
	return (double)bytes / spent / 1e6;
}

static const uint8_t key[32] = { 1, 2, 3 };

static size_t op_blake2b(void *arg, uint8_t *buf, size_t len)
{
	uint8_t out[32];

	(void)arg;
	crypto_generichash(out, sizeof(out), buf, len, key, sizeof(key));
	buf[0] ^= out[0];
	return len;
}

/* The same hash from agent/util/blake2b.c: one message from the prepared
 * keyed state (pb__b2k_hash), or *arg (4 or 8) messages of len bytes at
 * once (pb__b2k_hash_many, the chunk names of a batch), buf then holding
 * that many times len. */
static pb__b2k_t b2k;

static size_t op_b2k(void *arg, uint8_t *buf, size_t len)
{
	uint8_t out[32];

	(void)arg;
	pb__b2k_hash(&b2k, buf, len, out);
	buf[0] ^= out[0];
	return len;
}

#define MANY 8

static size_t op_b2k_many(void *arg, uint8_t *buf, size_t len)
{
	const uint8_t *data[MANY];
	size_t lens[MANY];
	uint8_t outs[MANY][32], *out[MANY];
	size_t n = *(const size_t *)arg;

	for (size_t i = 0; i < n; i++) {
		data[i] = buf + (size_t)i * len;
		lens[i] = len;
		out[i] = outs[i];
	}
	pb__b2k_hash_many(&b2k, data, lens, out, n);
	buf[0] ^= outs[0][0];
	return n * len;
}

typedef struct {
	uint8_t *ct;
	uint8_t *pt;
	bool xchacha;
	bool libcrypto;
	bool decrypt;
} aead_t;

/* XChaCha20-Poly1305 through libcrypto: the subkey a message, as
 * protocol/aead.c does. */
static int aead_libcrypto(const aead_t *a, const uint8_t *buf, size_t len, const uint8_t *nonce)
{
	uint8_t k[32], n[12];
	const uint8_t *kp = key, *np = nonce;

	if (a->xchacha) {
		pb__aead_xderive(k, n, nonce, key);
		kp = k;
		np = n;
	}
	if (a->decrypt)
		return pb__aead_decrypt_libcrypto(a->pt, a->ct, len + 16, NULL, 0, np, kp);
	return pb__aead_encrypt_libcrypto(a->ct, buf, len, NULL, 0, np, kp);
}

static size_t op_aead(void *arg, uint8_t *buf, size_t len)
{
	aead_t *a = arg;
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = { 0 };
	unsigned long long n;
	int rc;

	if (a->libcrypto)
		rc = aead_libcrypto(a, buf, len, nonce);
	else if (a->xchacha && !a->decrypt)
		rc = crypto_aead_xchacha20poly1305_ietf_encrypt(a->ct, &n, buf, len, NULL, 0, NULL, nonce, key);
	else if (a->xchacha)
		rc = crypto_aead_xchacha20poly1305_ietf_decrypt(a->pt, &n, NULL, a->ct, len + 16, NULL, 0, nonce,
								 key);
	else if (!a->decrypt)
		rc = crypto_aead_chacha20poly1305_ietf_encrypt(a->ct, &n, buf, len, NULL, 0, NULL, nonce, key);
	else
		rc = crypto_aead_chacha20poly1305_ietf_decrypt(a->pt, &n, NULL, a->ct, len + 16, NULL, 0, nonce, key);
	if (rc != 0) {
		fprintf(stderr, "bench-limits: AEAD failed\n");
		exit(1);
	}
	return len;
}

/* Whether libcrypto can be opened here; its rows are left out if not. */
static bool have_libcrypto(void)
{
	uint8_t c[16], n[12] = { 0 };

	return pb__aead_encrypt_libcrypto(c, NULL, 0, NULL, 0, n, key) == 0;
}

static void bench_aead(const char *what, bool xchacha, bool libcrypto, uint8_t *buf, size_t len)
{
	aead_t a = { NULL, NULL, xchacha, libcrypto, false };
	unsigned long long n;
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = { 0 };

	if (libcrypto && !have_libcrypto())
		return;
	a.ct = malloc(len + 16);
	a.pt = malloc(len > 0 ? len : 1);
	if (a.ct == NULL || a.pt == NULL)
		exit(1);
	row(what, "encrypt", len, measure(op_aead, &a, buf, len));
	if (xchacha)
		crypto_aead_xchacha20poly1305_ietf_encrypt(a.ct, &n, buf, len, NULL, 0, NULL, nonce, key);
	else
		crypto_aead_chacha20poly1305_ietf_encrypt(a.ct, &n, buf, len, NULL, 0, NULL, nonce, key);
	a.decrypt = true;
	row(what, "decrypt", len, measure(op_aead, &a, buf, len));
	free(a.ct);
	free(a.pt);
}

/* The two libraries on short messages, for the size from which
 * protocol/aead.c goes to libcrypto. */
static void bench_small(uint8_t *buf)
{
	fill(buf, 16 * KIB, false);
	for (size_t len = 16; len <= 16 * KIB; len *= 2) {
		bench_aead("ChaCha20-Poly1305 libsodium", false, false, buf, len);
		bench_aead("ChaCha20-Poly1305 OpenSSL", false, true, buf, len);
	}
}

typedef struct {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	uint8_t *out;
	size_t cap;
	uint8_t *packed;
	size_t packed_len;
	uint8_t *back;
} zstd_t;

static size_t op_compress(void *arg, uint8_t *buf, size_t len)
{
	zstd_t *z = arg;
	size_t n = ZSTD_compressCCtx(z->cctx, z->out, z->cap, buf, len, 3);

	if (ZSTD_isError(n))
		exit(1);
	return len;
}

static size_t op_decompress(void *arg, uint8_t *buf, size_t len)
{
	zstd_t *z = arg;
	size_t n = ZSTD_decompressDCtx(z->dctx, z->back, len, z->packed, z->packed_len);

	(void)buf;
	if (ZSTD_isError(n) || n != len)
		exit(1);
	return len;
}

static void bench_zstd(const char *what, uint8_t *buf, size_t len)
{
	zstd_t z = { ZSTD_createCCtx(), ZSTD_createDCtx(), NULL, ZSTD_compressBound(len), NULL, 0, malloc(len) };
	char name[64];

	z.out = malloc(z.cap);
	z.packed = malloc(z.cap);
	if (z.cctx == NULL || z.dctx == NULL || z.out == NULL || z.packed == NULL || z.back == NULL)
		exit(1);
	z.packed_len = ZSTD_compressCCtx(z.cctx, z.packed, z.cap, buf, len, 3);
	if (ZSTD_isError(z.packed_len))
		exit(1);
	snprintf(name, sizeof(name), "%s (ratio %.2f)", what, (double)len / (double)z.packed_len);
	row(name, "compress", len, measure(op_compress, &z, buf, len));
	row(name, "decompress", len, measure(op_decompress, &z, buf, len));
	ZSTD_freeCCtx(z.cctx);
	ZSTD_freeDCtx(z.dctx);
	free(z.out);
	free(z.packed);
	free(z.back);
}

/* Loopback TCP: the sender writes for `seconds`, the receiver counts. */
static void *tcp_send(void *arg)
{
	int fd = *(int *)arg;
	uint8_t *buf = calloc(1, TCP_BUF);
	double end = wall_now() + seconds * 2;

	while (buf != NULL && wall_now() < end) {
		ssize_t n = send(fd, buf, TCP_BUF, MSG_NOSIGNAL);

		if (n < 0 && errno != EINTR)
			break;
	}
	shutdown(fd, SHUT_WR);
	free(buf);
	return NULL;
}

static double bench_tcp(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), sfd = socket(AF_INET, SOCK_STREAM, 0), rfd;
	uint8_t *buf = malloc(TCP_BUF);
	uint64_t bytes = 0;
	double start;
	pthread_t t;
	ssize_t n;

	if (lfd < 0 || sfd < 0 || buf == NULL || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(lfd, 1) != 0 || getsockname(lfd, (struct sockaddr *)&a, &alen) != 0 ||
	    connect(sfd, (struct sockaddr *)&a, sizeof(a)) != 0 || (rfd = accept(lfd, NULL, NULL)) < 0) {
		fprintf(stderr, "bench-limits: loopback TCP: %s\n", strerror(errno));
		exit(1);
	}
	start = wall_now();
	pthread_create(&t, NULL, tcp_send, &sfd);
	while ((n = recv(rfd, buf, TCP_BUF, 0)) > 0)
		bytes += (uint64_t)n;
	pthread_join(t, NULL);
	close(rfd);
	close(sfd);
	close(lfd);
	free(buf);
	return (double)bytes / (wall_now() - start) / 1e6;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 64 * KIB, MIB };
	static size_t four = 4, eight = MANY;
	uint8_t *buf;
	bool small = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--small") == 0) {
			small = true;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else {
			fprintf(stderr, "usage: bench-limits [--json] [--seconds S] [--small]\n");
			return 2;
		}
	}
	if (sodium_init() < 0 || (buf = malloc(MANY * MIB)) == NULL)
		return 1;
	pb__b2k_init(&b2k, key, sizeof(key), 32, NULL);
	if (json)
		printf("[\n");
	if (small) {
		bench_small(buf);
		goto out;
	}
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		fill(buf, sizes[s], false);
		row("BLAKE2b-256 keyed", "hash", sizes[s], measure(op_blake2b, NULL, buf, sizes[s]));
		row("BLAKE2b-256 keyed, prepared", "hash", sizes[s], measure(op_b2k, NULL, buf, sizes[s]));
		fill(buf, MANY * sizes[s], false);
		row("BLAKE2b-256 keyed, 8 at once", "hash", sizes[s], measure(op_b2k_many, &eight, buf, sizes[s]));
		row("BLAKE2b-256 keyed, 4 at once", "hash", sizes[s], measure(op_b2k_many, &four, buf, sizes[s]));
		bench_aead("XChaCha20-Poly1305", true, false, buf, sizes[s]);
		bench_aead("XChaCha20-Poly1305 OpenSSL", true, true, buf, sizes[s]);
		bench_aead("ChaCha20-Poly1305 IETF", false, false, buf, sizes[s]);
		bench_aead("ChaCha20-Poly1305 IETF OpenSSL", false, true, buf, sizes[s]);
	}
	fill(buf, MIB, false);
	bench_zstd("zstd-3 random", buf, MIB);
	fill(buf, MIB, true);
	bench_zstd("zstd-3 text", buf, MIB);
	row("loopback TCP (1+1 threads)", "send+recv", TCP_BUF, bench_tcp());
out:
	if (json)
		printf("\n]\n");
	free(buf);
	return 0;
}
