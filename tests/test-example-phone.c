/* examples/phone-in-memory against real programs: an account service and a
 * host process on loopback, a phone logged in and paired by the CLI; the
 * example backs up from memory, cancels and resumes, and restores into
 * memory byte for byte (it exits 0 only then).
 *
 * The example run is the build tree's (build/examples/phone-in-memory) or
 * the program named by PB_EXAMPLE_PHONE_IN_MEMORY (a build of it against an
 * installed prefix). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void test_phone_in_memory(void **state)
{
	const char *env = getenv("PB_EXAMPLE_PHONE_IN_MEMORY");
	char prog[4096], *out = NULL, *err = NULL;
	char *argv[] = { prog, pb_test_world.phone, "desk", NULL };
	char *ls[] = { "--json", "ls", NULL };
	bool canceled, same;
	int rc, snapshots;

	(void)state;
	if (env != NULL)
		snprintf(prog, sizeof(prog), "%s", env);
	else
		snprintf(prog, sizeof(prog), "%s/examples/phone-in-memory", getenv("PB_BINARY_DIR"));
	rc = pb_test_run(argv, NULL, 240, &out, &err);
	if (rc != 0)
		printf("%s: exit %d\n%s\n%s\n", prog, rc, out != NULL ? out : "", err != NULL ? err : "");
	/* It canceled one backup and said so, and the restore matched. */
	canceled = out != NULL && strstr(out, "canceled after") != NULL;
	same = out != NULL && strstr(out, "byte for byte") != NULL;
	free(out);
	free(err);
	assert_int_equal(rc, 0);
	assert_true(canceled);
	assert_true(same);
	/* The host holds the two completed backups, not the canceled one. */
	assert_int_equal(pb_test_peerback(pb_test_world.phone, ls, &out, NULL), 0);
	snapshots = 0;
	for (const char *p = out; (p = strstr(p, "\"snapshot\"")) != NULL; p++)
		snapshots++;
	free(out);
	assert_int_equal(snapshots, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phone_in_memory),
	};

	return cmocka_run_group_tests(tests, pb_test_paired_setup, pb_test_world_teardown);
}
