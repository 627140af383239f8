/* LAN announcements: a host's signed announcement is believed only for the
 * remembered key, account and service, whole and fresh; the phone's listener
 * takes the first one that checks out and ignores forgeries. The devices log
 * into the real account service, so the certificates are the real ones. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "agent/phone/discover.h"
#include "agent/util/fsutil.h"
#include "peerback.h"
#include "protocol/client.h"

static char *dir;
static pb_test_imd_t imd;
static pb_identity_t host_id, other_id;
static pb_account_t host_acct, other_acct, phone_acct;
static struct sockaddr_storage addrs[2];

static void device(const char *name, const char *account, pb_identity_t *id, pb_account_t *acct)
{
	char home[4096];

	snprintf(home, sizeof(home), "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(home, 0700), 0);
	assert_int_equal(pb_test_login(&imd, home, account, name), 0);
	if (id != NULL)
		assert_int_equal(pb__identity_load(home, id), 0);
	assert_int_equal(pb__account_load(home, acct), 0);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", "bob", NULL };

	(void)state;
	dir = pb_test_tmpdir("discover");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	device("host", "alice", &host_id, &host_acct);
	device("other", "alice", &other_id, &other_acct);
	device("phone", "alice", NULL, &phone_acct);
	assert_int_equal(pb__sockaddr_parse("192.168.7.20:4000", &addrs[0]), 0);
	assert_int_equal(pb__sockaddr_parse("10.1.2.3:4000", &addrs[1]), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_imd_stop(&imd);
	pb_test_rmtree(dir);
	free(dir);
	return 0;
}

static int build(uint8_t *buf, uint64_t now)
{
	int n = pb__announce_build(&host_id, &host_acct, addrs, 2, 7450, now, buf);

	assert_true(n > 0 && n <= PB_ANNOUNCE_MAX);
	return n;
}

static void test_round_trip(void **state)
{
	uint8_t buf[PB_ANNOUNCE_MAX];
	struct sockaddr_storage got[PB_URI_MAX_ADDRS];
	size_t n = 0;
	char text[96];
	int len;

	(void)state;
	len = build(buf, pb__now());
	assert_int_equal(pb__announce_parse(buf, (size_t)len, phone_acct.imd_sign_pk, host_id.static_pk, "alice",
					    pb__now(), got, &n),
			 0);
	assert_int_equal(n, 2);
	assert_int_equal(pb__sockaddr_format(&got[0], text, sizeof(text)), 0);
	assert_string_equal(text, "192.168.7.20:7450");
	assert_int_equal(pb__sockaddr_format(&got[1], text, sizeof(text)), 0);
	assert_string_equal(text, "10.1.2.3:7450");
}

static void test_refusals(void **state)
{
	uint8_t buf[PB_ANNOUNCE_MAX], bad[PB_ANNOUNCE_MAX], wrong_service[32];
	struct sockaddr_storage got[PB_URI_MAX_ADDRS];
	size_t n = 0;
	uint64_t now = pb__now();
	int len;

	(void)state;
	len = build(buf, now);
	/* Another host of the same account, a key the phone does not know. */
	assert_int_equal(pb__announce_parse(buf, (size_t)len, phone_acct.imd_sign_pk, other_id.static_pk, "alice",
					    now, got, &n),
			 PB_ENOTFOUND);
	assert_int_equal(pb__announce_parse(buf, (size_t)len, phone_acct.imd_sign_pk, host_id.static_pk, "bob", now,
					    got, &n),
			 PB_ENOTFOUND);
	/* A certificate from a service the phone does not trust. */
	randombytes_buf(wrong_service, sizeof(wrong_service));
	assert_int_equal(pb__announce_parse(buf, (size_t)len, wrong_service, host_id.static_pk, "alice", now, got, &n),
			 PB_EACCT_CERT);
	/* Stale or from the future. */
	assert_int_equal(pb__announce_parse(buf, (size_t)len, phone_acct.imd_sign_pk, host_id.static_pk, "alice",
					    now + PB_ANNOUNCE_WINDOW + 1, got, &n),
			 PB_EACCT_CERT_EXPIRED);
	assert_int_equal(pb__announce_parse(buf, (size_t)len, phone_acct.imd_sign_pk, host_id.static_pk, "alice",
					    now - PB_ANNOUNCE_WINDOW - 1, got, &n),
			 PB_EACCT_CERT_EXPIRED);
	/* Any changed byte outside the certificate breaks the signature; one
	 * inside breaks the certificate or the framing. */
	for (int i = 0; i < len; i++) {
		int rc;

		memcpy(bad, buf, (size_t)len);
		bad[i] ^= 0x01;
		rc = pb__announce_parse(bad, (size_t)len, phone_acct.imd_sign_pk, host_id.static_pk, "alice", now, got,
					&n);
		assert_int_not_equal(rc, 0);
	}
	/* The host's real certificate signed by another device's key. */
	{
		pb_identity_t swapped = other_id;
		int l2 = pb__announce_build(&swapped, &host_acct, addrs, 2, 7450, now, bad);

		assert_true(l2 > 0);
		assert_int_equal(pb__announce_parse(bad, (size_t)l2, phone_acct.imd_sign_pk, host_id.static_pk,
						    "alice", now, got, &n),
				 PB_EACCT_SIG);
	}
	/* Every truncation. */
	for (int i = 0; i < len; i++)
		assert_int_not_equal(pb__announce_parse(buf, (size_t)i, phone_acct.imd_sign_pk, host_id.static_pk,
							"alice", now, got, &n),
				     0);
}

/* A child sends a forgery, then the real announcement, to the listener over
 * loopback, several times. */
static void test_listen(void **state)
{
	uint8_t buf[PB_ANNOUNCE_MAX], forged[PB_ANNOUNCE_MAX];
	struct sockaddr_storage got[PB_URI_MAX_ADDRS];
	size_t n = 0;
	char port[16];
	int len, fd, status;
	uint16_t p;
	pid_t pid;

	(void)state;
	/* A free UDP port for this run. */
	{
		struct sockaddr_in a;
		socklen_t alen = sizeof(a);

		fd = socket(AF_INET, SOCK_DGRAM, 0);
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
		p = ntohs(a.sin_port);
		close(fd);
	}
	snprintf(port, sizeof(port), "%u", p);
	setenv("PEERBACK_ANNOUNCE_PORT", port, 1);
	assert_int_equal(pb__announce_port(), p);
	len = build(buf, pb__now());
	memcpy(forged, buf, (size_t)len);
	forged[17] ^= 0x40; /* the first address */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_in to;
		int s = socket(AF_INET, SOCK_DGRAM, 0);

		memset(&to, 0, sizeof(to));
		to.sin_family = AF_INET;
		to.sin_port = htons(p);
		to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		for (int i = 0; i < 40; i++) {
			usleep(100000);
			(void)sendto(s, forged, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to));
			if (i >= 5)
				(void)sendto(s, buf, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to));
		}
		_exit(0);
	}
	assert_int_equal(pb__phone_discover(phone_acct.imd_sign_pk, host_id.static_pk, "alice", 5000, got, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(&((struct sockaddr_in *)&got[0])->sin_addr, &((struct sockaddr_in *)&addrs[0])->sin_addr, 4);
	/* Only forgeries: the listener gives up at its deadline. */
	assert_int_equal(pb__phone_discover(phone_acct.imd_sign_pk, other_id.static_pk, "alice", 800, got, &n),
			 PB_ETIMEOUT);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	unsetenv("PEERBACK_ANNOUNCE_PORT");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_listen),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
