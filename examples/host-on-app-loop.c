/* A backup host inside an application's own event loop.
 *
 *   host-on-app-loop HOME [ADDR:PORT]
 *
 * HOME is a logged-in device's state directory (peerback account login).
 * The application owns the loop and runs its own timer on it; the host
 * shares the loop. The pairing URI goes to stdout, one line; a phone pairs
 * with it and backs up. When the phone that committed a snapshot hangs up,
 * the application asks the host to stop, and exits 0 only if the loop then
 * closes cleanly (nothing of the host left on it) and its timer ran. */
#include <signal.h>
#include <stdio.h>

#include <peerback.h>
#include <uv.h>

struct app {
	uv_loop_t loop;
	uv_timer_t tick;       /* the application's own work */
	unsigned ticks;
	pb_host_t *host;
	int snapshots;
	int stopping;
	int failed;
};

static void on_tick(uv_timer_t *t)
{
	struct app *app = t->data;

	app->ticks++;
}

/* The host has closed everything it had on the loop; the application
 * closes its own handle and the loop runs out. */
static void on_stopped(pb_host_t *host, void *arg)
{
	struct app *app = arg;

	(void)host;
	uv_close((uv_handle_t *)&app->tick, NULL);
}

static int on_event(void *arg, const pb_event_t *ev)
{
	struct app *app = arg;

	switch (ev->type) {
	case PB_EVENT_ADVERTISE:
		printf("%s\n", ev->uri);
		fflush(stdout);
		break;
	case PB_EVENT_PAIRED:
		fprintf(stderr, "paired %s (%s)\n", ev->device, ev->device_name);
		break;
	case PB_EVENT_SNAPSHOT:
		fprintf(stderr, "snapshot %016llx from %s, %llu chunks\n", (unsigned long long)ev->snapshot,
			ev->device, (unsigned long long)ev->chunks);
		app->snapshots++;
		break;
	case PB_EVENT_DISCONNECTED:
		/* A phone that backed up has finished: enough for this
		 * application, which stops its host. */
		if (app->snapshots > 0 && !app->stopping) {
			app->stopping = 1;
			if (pb_host_stop(app->host, on_stopped, app) != 0)
				app->failed = 1;
		}
		break;
	case PB_EVENT_ERROR:
		fprintf(stderr, "host: %s\n", ev->message != NULL ? ev->message : pb_strerror(ev->error));
		break;
	default:
		break;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct app app = { 0 };
	pb_host_config_t cfg = { 0 };
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: host-on-app-loop HOME [ADDR:PORT]\n");
		return 2;
	}
	/* The library leaves signal dispositions to the application: a phone
	 * that hangs up while the host writes must not end the program. */
	signal(SIGPIPE, SIG_IGN);
	cfg.home = argv[1];
	cfg.listen = argc > 2 ? argv[2] : "127.0.0.1:0";
	cfg.no_announce = 1;
	if (uv_loop_init(&app.loop) != 0)
		return 1;
	app.tick.data = &app;
	uv_timer_init(&app.loop, &app.tick);
	uv_timer_start(&app.tick, on_tick, 10, 10);

	rc = pb_host_new(&app.loop, &cfg, on_event, &app, &app.host);
	if (rc == 0 && (rc = pb_host_start(app.host)) != 0)
		(void)pb_host_stop(app.host, NULL, NULL); /* closes what start opened */
	if (rc != 0) {
		fprintf(stderr, "host: %s\n", pb_strerror(rc));
		app.failed = 1;
		uv_close((uv_handle_t *)&app.tick, NULL);
	}
	uv_run(&app.loop, UV_RUN_DEFAULT);
	pb_host_free(app.host);

	rc = uv_loop_close(&app.loop);
	fprintf(stderr, "loop closed: %s; timer fired %u times\n", rc == 0 ? "yes" : uv_strerror(rc), app.ticks);
	return rc == 0 && app.ticks > 0 && app.snapshots > 0 && !app.failed ? 0 : 1;
}
