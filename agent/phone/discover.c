/* LAN announcements: the datagram, and the phone listening for one. */
#include "agent/phone/discover.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "peerback/error.h"

#define MAGIC "PBAN"
#define VERSION 1
#define LABEL "peerback announce v1"
/* magic, version, time, port, count */
#define HEAD_LEN (4 + 1 + 8 + 2 + 1)

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* The signed message: a label, then the datagram up to the signature. */
static void sign_state(crypto_sign_state *st, const uint8_t *buf, size_t len)
{
	crypto_sign_init(st);
	crypto_sign_update(st, (const uint8_t *)LABEL, sizeof(LABEL));
	crypto_sign_update(st, buf, len);
}

int pb__announce_build(const pb_identity_t *id, const pb_account_t *acct, const struct sockaddr_storage *addrs,
		       size_t naddrs, uint16_t port, uint64_t now, uint8_t *out)
{
	crypto_sign_state st;
	size_t off = HEAD_LEN, n = 0;

	if (acct->cert_len == 0 || acct->cert_len > 0xffff)
		return PB_EINVAL;
	memcpy(out, MAGIC, 4);
	out[4] = VERSION;
	put_be(out + 5, now, 8);
	put_be(out + 13, port, 2);
	for (size_t i = 0; i < naddrs && n < PB_ANNOUNCE_MAX_ADDRS; i++) {
		if (addrs[i].ss_family != AF_INET)
			continue;
		memcpy(out + off, &((const struct sockaddr_in *)&addrs[i])->sin_addr, 4);
		off += 4;
		n++;
	}
	out[15] = (uint8_t)n;
	if (n == 0)
		return PB_EINVAL;
	if (off + 2 + acct->cert_len + crypto_sign_BYTES > PB_ANNOUNCE_MAX)
		return PB_ETOOBIG;
	put_be(out + off, acct->cert_len, 2);
	off += 2;
	memcpy(out + off, acct->cert, acct->cert_len);
	off += acct->cert_len;
	sign_state(&st, out, off);
	crypto_sign_final_create(&st, out + off, NULL, id->sign_sk);
	return (int)(off + crypto_sign_BYTES);
}

int pb__announce_parse(const uint8_t *buf, size_t len, const uint8_t service_pk[32], const uint8_t host_pk[32],
		       const char *account, uint64_t now, struct sockaddr_storage *addrs, size_t *naddrs)
{
	Peerback__SignedBlob *blob = NULL;
	Peerback__Certificate *cert = NULL;
	crypto_sign_state st;
	uint64_t t;
	uint16_t port;
	size_t n, off, clen;
	int rc;

	if (len < HEAD_LEN || len > PB_ANNOUNCE_MAX || memcmp(buf, MAGIC, 4) != 0 || buf[4] != VERSION)
		return PB_EMALFORMED;
	t = get_be(buf + 5, 8);
	port = (uint16_t)get_be(buf + 13, 2);
	n = buf[15];
	if (port == 0 || n == 0 || n > PB_ANNOUNCE_MAX_ADDRS || n > PB_URI_MAX_ADDRS)
		return PB_EMALFORMED;
	off = HEAD_LEN + 4 * n;
	if (len < off + 2)
		return PB_EMALFORMED;
	clen = (size_t)get_be(buf + off, 2);
	if (len != off + 2 + clen + crypto_sign_BYTES)
		return PB_EMALFORMED;
	if (t + PB_ANNOUNCE_WINDOW < now || t > now + PB_ANNOUNCE_WINDOW)
		return PB_EACCT_CERT_EXPIRED;
	blob = peerback__signed_blob__unpack(NULL, clen, buf + off + 2);
	if (blob == NULL)
		return PB_EMALFORMED;
	rc = pb__verify_cert(service_pk, blob, now, &cert);
	if (rc != 0)
		goto out;
	if (cert->static_pk.len != 32 || sodium_memcmp(cert->static_pk.data, host_pk, 32) != 0 ||
	    cert->account == NULL || strcmp(cert->account, account) != 0) {
		rc = PB_ENOTFOUND;
		goto out;
	}
	if (cert->sign_pk.len != crypto_sign_PUBLICKEYBYTES) {
		rc = PB_EACCT_CERT;
		goto out;
	}
	sign_state(&st, buf, len - crypto_sign_BYTES);
	if (crypto_sign_final_verify(&st, buf + len - crypto_sign_BYTES, cert->sign_pk.data) != 0) {
		rc = PB_EACCT_SIG;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_in *a = (struct sockaddr_in *)&addrs[i];

		memset(&addrs[i], 0, sizeof(addrs[i]));
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		memcpy(&a->sin_addr, buf + HEAD_LEN + 4 * i, 4);
	}
	*naddrs = n;
	rc = 0;
out:
	if (cert != NULL)
		peerback__certificate__free_unpacked(cert, NULL);
	peerback__signed_blob__free_unpacked(blob, NULL);
	return rc;
}

uint16_t pb__announce_port(void)
{
	const char *s = getenv("PEERBACK_ANNOUNCE_PORT");
	char *end;
	long v;

	if (s == NULL || *s == 0)
		return PB_ANNOUNCE_PORT;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != 0 || v < 1 || v > 65535)
		return PB_ANNOUNCE_PORT;
	return (uint16_t)v;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pb__phone_discover(const uint8_t service_pk[32], const uint8_t host_pk[32], const char *account,
		       int timeout_ms, struct sockaddr_storage *addrs, size_t *naddrs)
{
	struct sockaddr_in a;
	uint8_t buf[PB_ANNOUNCE_MAX + 1];
	int fd, one = 1, rc = PB_ETIMEOUT;
	int64_t deadline = now_ms() + timeout_ms;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(pb__announce_port());
	a.sin_addr.s_addr = htonl(INADDR_ANY);
	if (bind(fd, (const struct sockaddr *)&a, sizeof(a)) != 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		int64_t left = deadline - now_ms();
		ssize_t r;

		if (left <= 0)
			break;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		r = recv(fd, buf, sizeof(buf), 0);
		if (r <= 0)
			continue;
		/* Anyone on the LAN can send anything here: only a datagram
		 * that checks out ends the wait. */
		if (pb__announce_parse(buf, (size_t)r, service_pk, host_pk, account, (uint64_t)time(NULL), addrs,
				       naddrs) == 0) {
			rc = 0;
			break;
		}
	}
out:
	close(fd);
	return rc;
}
