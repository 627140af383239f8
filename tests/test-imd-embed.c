/* The account service embedded in an application (peerback/imd.h): it
 * serves on the application's own loop beside the application's timer,
 * tells what it does through events instead of printing, installs no signal
 * handler, and after pb_imd_stop leaves nothing on the loop, so that
 * uv_loop_close returns 0. Devices are played by a thread making the
 * blocking calls a phone makes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "harness.h"
#include "peerback.h"
#include "peerback/imd.h"
#include "agent/account/account.h"
#include "agent/imd/imd.h"
#include "protocol/client.h"

#define MAX_EVENTS 16

struct app {
	uv_loop_t loop;
	uv_timer_t timer;
	uv_async_t stop;
	pb_imd_t *imd;
	char addr[96];
	uint8_t key[32];
	unsigned ticks;
	uint64_t started_ms;
	/* Events seen, in order. */
	pb_event_type_t types[MAX_EVENTS];
	char names[MAX_EVENTS][32], addresses[MAX_EVENTS][96];
	int errors[MAX_EVENTS];
	size_t nevents;
	/* What the device thread saw. */
	int linked_rc, login_rc;
	bool linked;
	/* The device thread opens a raw connection and leaves it idle. */
	bool idle_connection;
	int idle_fd;
};


static int on_event(void *arg, const pb_event_t *ev)
{
	struct app *a = arg;
	size_t i = a->nevents;

	assert_true(i < MAX_EVENTS);
	a->types[i] = ev->type;
	snprintf(a->names[i], sizeof(a->names[i]), "%s", ev->name != NULL ? ev->name : "");
	snprintf(a->addresses[i], sizeof(a->addresses[i]), "%s", ev->address != NULL ? ev->address : "");
	a->errors[i] = ev->error;
	a->nevents++;
	if (ev->type == PB_EVENT_LISTENING)
		snprintf(a->addr, sizeof(a->addr), "%s", ev->address);
	if (ev->type == PB_EVENT_DONE) {
		/* The service is gone from the loop: the application closes
		 * its own handles and the loop ends. */
		uv_close((uv_handle_t *)&a->timer, NULL);
		uv_close((uv_handle_t *)&a->stop, NULL);
	}
	return 0;
}

/* Every 5 ms. Also the watchdog: a service that kept a connection open
 * after pb_imd_stop would keep the loop running until the connection's
 * handshake deadline (10 s); a login and a question take well under 4 s. */
static void on_tick(uv_timer_t *t)
{
	struct app *a = t->data;

	a->ticks++;
	if (uv_now(t->loop) - a->started_ms > 4000)
		fail_msg("the loop still runs after 4 s (%zu events)", a->nevents);
}

static void on_stop(uv_async_t *h)
{
	struct app *a = h->data;

	pb_imd_stop(a->imd);
	pb_imd_stop(a->imd); /* a second call does nothing */
}

static int login(struct app *a, const char *password)
{
	Peerback__ImdRequest req;
	Peerback__Login l;
	Peerback__ImdReply *reply;
	pb_envelope_t *env;
	uint8_t id[PB_DEVICE_ID_LEN], spk[32], xpk[32];
	int rc;

	randombytes_buf(id, sizeof(id));
	randombytes_buf(spk, sizeof(spk));
	randombytes_buf(xpk, sizeof(xpk));
	pb_test_login_request(&req, &l, "alice", password, id, spk, xpk, "phone");
	rc = pb__imd_call(a->addr, a->key, &req, &reply, &env);
	if (rc == 0)
		pb__envelope_free(env);
	return rc;
}

static void *device(void *arg)
{
	struct app *a = arg;

	if (a->idle_connection) {
		struct sockaddr_storage ss;

		a->idle_fd = socket(AF_INET, SOCK_STREAM, 0);
		if (pb__sockaddr_parse(a->addr, &ss) == 0)
			(void)connect(a->idle_fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in));
		usleep(100 * 1000); /* the service has accepted it */
	} else {
		a->linked_rc = pb__imd_linked(a->addr, a->key, "alice", "bob", &a->linked);
		a->login_rc = login(a, "not the password");
	}
	uv_async_send(&a->stop);
	return NULL;
}

static void open_service(struct app *a, const char *tag)
{
	char home[4096];

	memset(a, 0, sizeof(*a));
	a->idle_fd = -1;
	snprintf(home, sizeof(home), "%s/%s", pb_test_dir, tag);
	assert_int_equal(pb_imd_open(home, &a->imd), 0);
	assert_int_equal(pb_imd_add_account(a->imd, "alice", "correct-horse"), 0);
	assert_int_equal(pb_imd_add_account(a->imd, "bob", "correct-horse"), 0);
	assert_int_equal(pb_imd_link(a->imd, "alice", "bob"), 0);
	pb_imd_keys(a->imd, a->key, NULL);
	assert_int_equal(uv_loop_init(&a->loop), 0);
	assert_int_equal(uv_timer_init(&a->loop, &a->timer), 0);
	a->timer.data = a;
	uv_update_time(&a->loop);
	a->started_ms = uv_now(&a->loop);
	assert_int_equal(uv_timer_start(&a->timer, on_tick, 5, 5), 0);
	assert_int_equal(uv_async_init(&a->loop, &a->stop, on_stop), 0);
	a->stop.data = a;
}

/* Serves until the device thread is done, then stops; returns after the
 * loop has ended and closed. */
static void serve(struct app *a)
{
	struct sigaction before[3], after;
	const int sigs[3] = { SIGINT, SIGTERM, SIGPIPE };
	pthread_t t;

	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], NULL, &before[i]);
	assert_int_equal(pb_imd_start(a->imd, &a->loop, "127.0.0.1:0", on_event, a), 0);
	/* Told before pb_imd_start returns, with the port it picked. */
	assert_int_equal(a->nevents, 1);
	assert_int_equal(a->types[0], PB_EVENT_LISTENING);
	assert_non_null(strstr(a->addr, "127.0.0.1:"));
	assert_int_not_equal(strcmp(a->addr, "127.0.0.1:0"), 0);
	assert_int_equal(pb_imd_start(a->imd, &a->loop, "127.0.0.1:0", on_event, a), PB_ESTATE);
	assert_int_equal(pthread_create(&t, NULL, device, a), 0);
	assert_int_equal(uv_run(&a->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(uv_loop_close(&a->loop), 0);
	for (int i = 0; i < 3; i++) {
		sigaction(sigs[i], NULL, &after);
		assert_ptr_equal(after.sa_handler, before[i].sa_handler);
	}
	/* The application's timer ran beside the service. */
	assert_true(a->ticks > 0);
	assert_int_equal(a->types[a->nevents - 1], PB_EVENT_DONE);
}

static void test_serves_on_the_app_loop(void **state)
{
	struct app a;

	(void)state;
	open_service(&a, "on-loop");
	serve(&a);
	assert_int_equal(a.linked_rc, 0);
	assert_true(a.linked);
	assert_int_equal(a.login_rc, PB_EACCT_LOGIN);
	/* One event a request, in order, with the device's address and the
	 * result; then the end. */
	assert_int_equal(a.nevents, 4);
	assert_int_equal(a.types[1], PB_EVENT_REQUEST);
	assert_string_equal(a.names[1], "linked");
	assert_int_equal(a.errors[1], 0);
	assert_non_null(strstr(a.addresses[1], "127.0.0.1:"));
	assert_int_equal(a.types[2], PB_EVENT_REQUEST);
	assert_string_equal(a.names[2], "login");
	assert_int_equal(a.errors[2], PB_EACCT_LOGIN);
	pb_imd_close(a.imd);
}

/* A device that connected and says nothing does not keep the service (and
 * so the application's loop) alive after pb_imd_stop. */
static void test_stop_closes_idle_connections(void **state)
{
	struct app a;

	(void)state;
	open_service(&a, "idle");
	a.idle_connection = true;
	serve(&a);
	assert_int_equal(a.nevents, 2); /* listening, done */
	close(a.idle_fd);
	pb_imd_close(a.imd);
}

/* A start that fails leaves nothing behind: the handle may be closed at
 * once, and the loop still closes. */
static void test_failed_start(void **state)
{
	struct app a, b;

	(void)state;
	open_service(&a, "first");
	assert_int_equal(pb_imd_start(a.imd, &a.loop, "127.0.0.1:0", on_event, &a), 0);
	open_service(&b, "second");
	assert_int_not_equal(pb_imd_start(b.imd, &b.loop, a.addr, on_event, &b), 0);
	assert_int_not_equal(pb_imd_start(b.imd, &b.loop, "not an address", on_event, &b), 0);
	assert_int_equal(b.nevents, 0);
	pb_imd_close(b.imd);
	uv_close((uv_handle_t *)&b.timer, NULL);
	uv_close((uv_handle_t *)&b.stop, NULL);
	assert_int_equal(uv_run(&b.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&b.loop), 0);
	pb_imd_stop(a.imd);
	assert_int_equal(uv_run(&a.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&a.loop), 0);
	pb_imd_close(a.imd);
}

static int setup(void **state)
{
	if (sodium_init() < 0)
		return -1;
	return pb_test_dir_setup(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serves_on_the_app_loop),
		cmocka_unit_test(test_stop_closes_idle_connections),
		cmocka_unit_test(test_failed_start),
	};

	return cmocka_run_group_tests(tests, setup, pb_test_dir_teardown);
}
