/* Test pause points (agent/util/testhook.h): unarmed they do nothing; armed
 * with PEERBACK_TEST_PAUSE=POINT:N the N-th pass through POINT reports
 * itself in PEERBACK_TEST_PAUSE_FILE and stops the whole process until it
 * is continued or killed. The environment is read once a process, so each
 * case runs in a child of its own. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "agent/util/testhook.h"

static char *dir;
static char report[4200];

/* The child: arms the environment, then passes through "a" three times and
 * "b" once, telling the parent (over fd) before each pass. */
static void child(const char *spec, int fd)
{
	static const char *const passes[] = { "a", "a", "b", "a" };

	/* The parent stops reading once the child stopped or exited. */
	signal(SIGPIPE, SIG_IGN);
	if (spec != NULL)
		setenv("PEERBACK_TEST_PAUSE", spec, 1);
	setenv("PEERBACK_TEST_PAUSE_FILE", report, 1);
	for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++) {
		if (write(fd, "x", 1) != 1) {
			/* the parent has stopped counting */
		}
		pb__test_point(passes[i]);
	}
	_exit(pb__test_pause_armed() ? 0 : 1);
}

/* Runs a child; returns after it exits or stops. *passes: the passes it
 * had begun by then; the status is waitpid's. */
static pid_t start(const char *spec, int *status, int *passes)
{
	int fds[2];
	char buf[16];
	ssize_t n;
	pid_t pid;

	snprintf(report, sizeof(report), "%s/paused", dir);
	unlink(report);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child(spec, fds[1]);
	}
	close(fds[1]);
	assert_int_equal(waitpid(pid, status, WUNTRACED), pid);
	/* A stopped child still holds the pipe open: read what is there. */
	assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
	*passes = 0;
	while ((n = read(fds[0], buf, sizeof(buf))) > 0)
		*passes += (int)n;
	close(fds[0]);
	return pid;
}

static char *reported(void)
{
	size_t len;

	return (char *)pb_test_read_file(report, &len);
}

static void test_unarmed_does_nothing(void **state)
{
	int status, passes;

	(void)state;
	start(NULL, &status, &passes);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1); /* not armed */
	assert_int_equal(passes, 4);
	assert_null(reported());
}

static void test_stops_at_the_nth_pass(void **state)
{
	int status, passes;
	char want[128], *got;
	pid_t pid;

	(void)state;
	pid = start("a:2", &status, &passes);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(passes, 2);
	got = reported();
	assert_non_null(got);
	snprintf(want, sizeof(want), "paused a 2 %ld\n", (long)pid);
	assert_string_equal(got, want);
	free(got);
	/* Continued, it goes on to its end and stops nowhere else. */
	kill(pid, SIGCONT);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_killed_where_it_stopped(void **state)
{
	int status, passes;
	pid_t pid;

	(void)state;
	pid = start("zzz:1,b:1", &status, &passes);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(passes, 3);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_malformed_items_ignored(void **state)
{
	static const char *const specs[] = { "a", "a:", ":1", "a:0", "a:-1", "a:1x", "", "a:99" };
	int status, passes;

	(void)state;
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		start(specs[i], &status, &passes);
		assert_true(WIFEXITED(status));
		assert_int_equal(passes, 4);
	}
}

static int setup(void **state)
{
	(void)state;
	dir = pb_test_tmpdir("testhook");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_rmtree(dir);
	free(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unarmed_does_nothing),
		cmocka_unit_test(test_stops_at_the_nth_pass),
		cmocka_unit_test(test_killed_where_it_stopped),
		cmocka_unit_test(test_malformed_items_ignored),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
