/* A phone that asks and never reads: an authenticated device sends chunk
 * requests for its biggest chunk and never reads a reply. The host must
 * stop reading that connection while its replies wait, so that its memory
 * stays bounded, and go on serving the other phones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "hostile.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

/* What the host may grow by while one connection has unread replies: the
 * queued-output bound (4 MiB), one reply over it, and what the sanitizer
 * build itself keeps. */
#define GROWTH_BOUND_KIB (48 * 1024)

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone[4096], phone2[4096], dev[4200];

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	const char *host_args[] = { "--max-failures", "1000", NULL };

	(void)state;
	/* The sanitizer keeps freed memory in quarantine (256 MiB by default),
	 * which would hide what the host itself holds. */
	setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:quarantine_size_mb=8", 1);
	assert_true(sodium_init() >= 0);
	dir = pb_test_tmpdir("backpressure");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	mk(phone, "phone");
	mk(phone2, "phone2");
	snprintf(dev, sizeof(dev), "%s/device", phone);
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, phone, "alice", "phone"), 0);
	assert_int_equal(pb_test_login(&imd, phone2, "alice", "phone-2"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", host_args);
	pb_test_pair(&host, phone);
	pb_test_pair(&host, phone2);
	{
		char *gen[] = { "gen", "--out", dev, "--seed", "4", "--size", "small", NULL };
		char *backup[] = { "backup", "--device", dev, NULL };

		assert_int_equal(pb_test_peerback(phone, gen, NULL, NULL), 0);
		assert_int_equal(pb_test_peerback(phone, backup, NULL, NULL), 0);
	}
	pb_test_host_drain_start(&host);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_host_drain_stop();
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

/* The name and size of the biggest chunk the host holds. */
static size_t biggest_chunk(uint8_t name[32])
{
	char db[4200], hex[65];
	char *argv[] = { "/usr/bin/sqlite3", "-readonly", db,
			 "SELECT hex(name), len FROM chunks ORDER BY len DESC LIMIT 1;", NULL };
	char *out = NULL;
	long len;

	snprintf(db, sizeof(db), "%s/store/index.db", host_home);
	assert_int_equal(pb_test_run(argv, NULL, 30, &out, NULL), 0);
	assert_int_equal(sscanf(out, "%64[0-9A-F]|%ld", hex, &len), 2);
	assert_int_equal(sodium_hex2bin(name, 32, hex, 64, NULL, NULL, NULL), 0);
	free(out);
	return (size_t)len;
}

static void ping_within(const char *home, int limit_ms)
{
	pb_client_t c;
	int64_t start = pb_test_now_ms();
	int rc = pb__phone_connect(home, NULL, limit_ms, &c, NULL);
	long ms;

	if (rc == 0) {
		rc = pb__phone_ping(&c, 1);
		pb__client_close(&c);
	}
	ms = (long)(pb_test_now_ms() - start);
	if (rc != 0)
		print_error("ping from %s: %s after %ld ms\n", home, pb_strerror(rc), ms);
	assert_int_equal(rc, 0);
	assert_true(ms <= limit_ms);
}

static void test_requests_without_reading(void **state)
{
	Peerback__Request req;
	Peerback__ChunkGet get;
	pb_envelope_t env;
	pb_client_t c;
	uint8_t name[32];
	size_t len = biggest_chunk(name), asked = 0;
	long base, hwm = 0;
	int n = 0, rc = 0;

	(void)state;
	printf("biggest chunk: %zu bytes\n", len);
	base = pb_test_proc_kib(host.proc.pid, "VmRSS");
	assert_int_equal(pb__phone_connect(phone, NULL, 5000, &c, NULL), 0);
	/* A send that cannot finish in 2 s means the host stopped reading. */
	c.timeout_ms = 2000;
	while (asked < (600u << 20) && rc == 0) {
		peerback__request__init(&req);
		peerback__chunk_get__init(&get);
		get.name.data = name;
		get.name.len = 32;
		req.id = (uint64_t)++n;
		req.op_case = PEERBACK__REQUEST__OP_CHUNK_GET;
		req.chunk_get = &get;
		pb__envelope_init(&env);
		env.body_case = PEERBACK__ENVELOPE__BODY_REQUEST;
		env.request = &req;
		rc = pb__client_send(&c, &env);
		asked += len;
		if (n % 64 == 0) {
			hwm = pb_test_proc_kib(host.proc.pid, "VmHWM");
			if (hwm - base > 2 * GROWTH_BOUND_KIB)
				break; /* the host grows without bound: no need to go on */
		}
	}
	/* Time for the host to answer whatever it took in. */
	sleep(2);
	hwm = pb_test_proc_kib(host.proc.pid, "VmHWM");
	printf("%d requests (%zu MiB asked), send: %s; host VmRSS %ld KiB before, VmHWM %ld KiB\n", n, asked >> 20,
	       rc ? pb_strerror(rc) : "ok", base, hwm);
	if (hwm - base > GROWTH_BOUND_KIB)
		print_error("host VmHWM %ld KiB, from VmRSS %ld KiB before: grew %ld KiB with one phone not reading "
			    "(bound %d KiB)\n", hwm, base, hwm - base, GROWTH_BOUND_KIB);
	assert_true(hwm - base <= GROWTH_BOUND_KIB);
	/* The other phone, and this phone on a new connection, are served
	 * while the first connection still holds its unread replies. */
	ping_within(phone2, 8000);
	ping_within(phone, 8000);
	pb__client_close(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests_without_reading),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
