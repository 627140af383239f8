/* Times past January 2038 on every architecture: a 32-bit phone (armhf)
 * with a 32-bit time_t could not stat a file whose modification time lies
 * after 2038 (EOVERFLOW), so a backup of a device holding one failed. The
 * build asks for a 64-bit time_t everywhere (_TIME_BITS=64). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "peerback.h"
#include "peerback/kinds.h"
#include "testutil.h"

/* 2040-01-01 00:00:00 UTC. */
#define LATE_SECONDS 2208988800LL

static void test_time_t_is_64_bit(void **state)
{
	(void)state;
	assert_int_equal(sizeof(time_t), 8);
	assert_int_equal(sizeof(off_t), 8);
}

struct seen {
	unsigned n;
	uint64_t mtime_ns;
};

static int on_item(void *arg, const pb_item_t *it)
{
	struct seen *s = arg;

	s->n++;
	s->mtime_ns = it->mtime_ns;
	return 0;
}

static void test_scan_file_dated_2040(void **state)
{
	char *dir = pb_test_tmpdir("time64"), path[4200];
	static const char vcf[] = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:late-1\r\nFN:Late Contact\r\n"
				  "N:Contact;Late;;;\r\nEND:VCARD\r\n";
	char cmd[4400];
	struct seen s = { 0, 0 };
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/contacts", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/contacts/contacts.vcf", dir);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(vcf, 1, sizeof(vcf) - 1, f), sizeof(vcf) - 1);
	assert_int_equal(fclose(f), 0);
	/* The build machine's touch sets the time, so that the test itself
	 * needs no 64-bit time_t to plant it. */
	snprintf(cmd, sizeof(cmd), "touch -d @%lld.000000005 '%s'", LATE_SECONDS, path);
	assert_int_equal(system(cmd), 0);

	assert_int_equal(pb_device_scan(dir, PB_KIND_ALL, on_item, &s, NULL, 0), 0);
	assert_int_equal(s.n, 1);
	assert_true(s.mtime_ns == (uint64_t)LATE_SECONDS * 1000000000u + 5u);
	pb_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time_t_is_64_bit),
		cmocka_unit_test(test_scan_file_dated_2040),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
