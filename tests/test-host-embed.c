/* The host embedded on a caller's loop: it starts, serves, stops with
 * nothing left on the loop (uv_loop_close succeeds), and never touches the
 * process's signal dispositions. The example program
 * examples/host-on-app-loop does the same beside its own timer while a real
 * phone pairs and backs up. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "harness.h"
#include "peerback.h"
#include "peerback/host.h"

/* Every signal's disposition, to compare before and after. */
struct dispositions {
	struct sigaction sa[NSIG];
};

static void dispositions(struct dispositions *d)
{
	memset(d, 0, sizeof(*d));
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, NULL, &d->sa[s]);
}

static void assert_same_dispositions(const struct dispositions *a, const struct dispositions *b)
{
	for (int s = 1; s < NSIG; s++) {
		if (a->sa[s].sa_handler != b->sa[s].sa_handler || a->sa[s].sa_flags != b->sa[s].sa_flags)
			fail_msg("the host changed the disposition of signal %d (%s)", s, strsignal(s));
	}
}

struct seen {
	pb_host_t *host;
	int listening, advertised, accepted, stopped;
	char uri[2048];
};

static int on_event(void *arg, const pb_event_t *ev)
{
	struct seen *s = arg;
	char *line = NULL;

	/* Every event has a JSON line. */
	assert_int_equal(pb_event_json(ev, &line), 0);
	assert_non_null(strstr(line, "\"event\":\""));
	/* The fields scripts read from `peerback host --json`. */
	if (ev->type == PB_EVENT_LISTENING)
		assert_non_null(strstr(line, "{\"event\":\"listening\",\"listen\":\"127.0.0.1:"));
	if (ev->type == PB_EVENT_ADVERTISE)
		assert_non_null(strstr(line, "{\"event\":\"advertise\",\"uri\":\"peerback://pair?"));
	free(line);
	if (ev->type == PB_EVENT_LISTENING)
		s->listening++;
	if (ev->type == PB_EVENT_ADVERTISE) {
		s->advertised++;
		snprintf(s->uri, sizeof(s->uri), "%s", ev->uri);
	}
	if (ev->type == PB_EVENT_CONNECTED)
		s->accepted++;
	return 0;
}

static void on_stopped(pb_host_t *host, void *arg)
{
	struct seen *s = arg;

	assert_ptr_equal(host, s->host);
	s->stopped++;
}

static int count_device(void *arg, const pb_host_device_t *d)
{
	(void)d;
	(*(int *)arg)++;
	return 0;
}

/* Runs the loop until *count reaches want (at most timeout_ms). */
static void run_until(uv_loop_t *loop, const int *count, int want, int timeout_ms)
{
	for (int i = 0; i < timeout_ms / 10 && *count < want; i++) {
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(10000);
	}
	assert_int_equal(*count, want);
}

/* A host on this test's loop, with a connection that never authenticates
 * held open when it stops: the stop closes everything, the loop closes, no
 * signal disposition changed. */
static void test_stop_on_callers_loop(void **state)
{
	struct dispositions before, after;
	pb_host_config_t cfg;
	struct seen s;
	struct sockaddr_in a;
	pb_host_device_t dev;
	pb_store_verify_report_t vrep;
	pb_host_prune_report_t prep;
	uv_loop_t loop;
	int fd, ndev = 0;

	(void)state;
	dispositions(&before);
	memset(&cfg, 0, sizeof(cfg));
	memset(&s, 0, sizeof(s));
	cfg.home = pb_test_world.host_home;
	cfg.listen = "127.0.0.1:0";
	cfg.no_announce = true;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(pb_host_new(&loop, &cfg, on_event, &s, &s.host), 0);
	assert_int_equal(pb_host_port(s.host), 0);
	assert_int_equal(pb_host_start(s.host), 0);
	assert_int_equal(s.listening, 1);
	assert_int_equal(s.advertised, 1);
	assert_true(pb_host_port(s.host) > 0);
	assert_int_equal(pb_host_start(s.host), PB_ESTATE);

	/* A fresh code on request (what SIGUSR1 does for the program). */
	assert_int_equal(pb_host_advertise(s.host), 0);
	run_until(&loop, &s.advertised, 2, 10000);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(pb_host_port(s.host));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	run_until(&loop, &s.accepted, 1, 5000);

	/* Administration through the serving handle. */
	assert_int_equal(pb_host_devices(s.host, count_device, &ndev), 0);
	assert_int_equal(ndev, 0);
	assert_int_equal(pb_host_device(s.host, "nobody", &dev), PB_ENOTFOUND);
	assert_int_equal(pb_host_verify(s.host, NULL, NULL, &vrep), 0);
	assert_int_equal(pb_host_prune(s.host, NULL, false, NULL, NULL, &prep), PB_ESTATE);

	assert_int_equal(pb_host_stop(s.host, on_stopped, &s), 0);
	assert_int_equal(pb_host_stop(s.host, on_stopped, &s), PB_ESTATE);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(s.stopped, 1);
	pb_host_free(s.host);
	assert_int_equal(uv_loop_close(&loop), 0);
	close(fd);

	/* The store's lock went with it: a new host opens the same home. */
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(pb_host_new(&loop, &cfg, NULL, NULL, &s.host), 0);
	pb_host_free(s.host); /* never started: nothing on the loop */
	assert_int_equal(uv_loop_close(&loop), 0);

	dispositions(&after);
	assert_same_dispositions(&before, &after);
}

/* A second host on a home whose store is held: refused, nothing left. */
static void test_store_held(void **state)
{
	pb_host_config_t cfg;
	pb_host_t *h1, *h2 = NULL;
	uv_loop_t loop;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.home = pb_test_world.host_home;
	cfg.listen = "127.0.0.1:0";
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(pb_host_new(&loop, &cfg, NULL, NULL, &h1), 0);
	assert_int_equal(pb_host_new(&loop, &cfg, NULL, NULL, &h2), PB_ESTORE_LOCKED);
	assert_null(h2);
	pb_host_free(h1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Waits for the process to end by itself (at most timeout_s); its exit
 * status, or -1 when it had to be killed. */
static int wait_exit(pb_test_proc_t *p, int timeout_s)
{
	int status;

	for (int i = 0; i < timeout_s * 10; i++) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			close(p->out_fd);
			p->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		usleep(100000);
	}
	pb_test_stop(p, SIGKILL);
	return -1;
}

/* examples/host-on-app-loop with a real phone: pairs, backs up, and the
 * example stops its host and closes its loop (exit 0 says so). */
static void test_example(void **state)
{
	/* The build tree's example, or the one PB_EXAMPLE_HOST_ON_APP_LOOP names
	 * (tests/examples/host-on-app-loop.sh: built against the installed
	 * library). */
	const char *env = getenv("PB_EXAMPLE_HOST_ON_APP_LOOP");
	char *tool = env != NULL ? strdup(env) : pb_test_tool("../examples/host-on-app-loop");
	char *argv[] = { tool, pb_test_world.host_home, "127.0.0.1:0", NULL };
	char uri[2048], dev[4200];
	char *pair[] = { "pair", uri, NULL };
	char *gen[] = { "gen", "--out", dev, "--seed", "5", "--size", "small", NULL };
	char *backup[] = { "--json", "backup", "--device", dev, NULL };
	char *err = NULL;
	pb_test_proc_t p;

	(void)state;
	snprintf(dev, sizeof(dev), "%s/device", pb_test_world.phone);
	assert_int_equal(pb_test_peerback(pb_test_world.phone, gen, NULL, NULL), 0);
	assert_int_equal(pb_test_spawn(&p, argv, NULL), 0);
	assert_true(pb_test_readline(&p, uri, sizeof(uri), 15000) > 0);
	assert_non_null(strstr(uri, "peerback://pair?"));
	if (pb_test_peerback(pb_test_world.phone, pair, NULL, &err) != 0)
		fail_msg("pair: %s", err);
	free(err);
	err = NULL;
	if (pb_test_peerback(pb_test_world.phone, backup, NULL, &err) != 0)
		fail_msg("backup: %s", err);
	free(err);
	assert_int_equal(wait_exit(&p, 20), 0);
	free(tool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stop_on_callers_loop),
		cmocka_unit_test(test_store_held),
		cmocka_unit_test(test_example),
	};

	return cmocka_run_group_tests(tests, pb_test_logged_in_setup, pb_test_world_teardown);
}
