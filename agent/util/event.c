/* Events as JSON lines, as `peerback --json` prints them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "peerback.h"
#include "agent/util/event.h"
#include "agent/util/json.h"

const char *pb__event_name(pb_event_type_t type)
{
	static const char *const names[] = {
		[PB_EVENT_PROGRESS] = "progress",
		[PB_EVENT_WARNING] = "warning",
		[PB_EVENT_PLAN] = "plan",
		[PB_EVENT_INSTRUCTION] = "instruction",
		[PB_EVENT_DONE] = "done",
		[PB_EVENT_LISTENING] = "listening",
		[PB_EVENT_ADVERTISE] = "advertise",
		[PB_EVENT_CONNECTED] = "accepted",
		[PB_EVENT_AUTHENTICATED] = "connected",
		[PB_EVENT_PAIRED] = "paired",
		[PB_EVENT_REFUSED] = "refused",
		[PB_EVENT_DISCONNECTED] = "disconnected",
		[PB_EVENT_DEVICE_PROGRESS] = "device-progress",
		[PB_EVENT_SNAPSHOT] = "snapshot",
		[PB_EVENT_ERROR] = "error",
		[PB_EVENT_REQUEST] = "request",
	};

	if ((unsigned)type < sizeof(names) / sizeof(names[0]) && names[type] != NULL)
		return names[type];
	return "event";
}

static int set(json_t *o, const char *key, json_t *v)
{
	return v == NULL || json_object_set_new(o, key, v) != 0 ? PB_ENOMEM : 0;
}

static int set_text(json_t *o, const char *key, const char *s)
{
	return s == NULL ? 0 : set(o, key, pb__json_text(s));
}

static int set_num(json_t *o, const char *key, uint64_t v)
{
	return set(o, key, json_integer((json_int_t)v));
}

/* The numbers each type carries; its text fields go in when set. */
static int numbers(json_t *o, const pb_event_t *e)
{
	int rc = 0;

	switch (e->type) {
	case PB_EVENT_PROGRESS:
		if ((rc = set_num(o, "items_done", e->items_done)) == 0 &&
		    (rc = set_num(o, "items_total", e->items_total)) == 0 &&
		    (rc = set_num(o, "bytes_done", e->bytes_done)) == 0 &&
		    (rc = set_num(o, "bytes_total", e->bytes_total)) == 0 &&
		    (rc = set_num(o, "bytes_sent", e->bytes_sent)) == 0 &&
		    (rc = set_num(o, "bytes_committed", e->bytes_committed)) == 0)
			rc = set_num(o, "chunks_sent", e->chunks_sent);
		return rc;
	case PB_EVENT_WARNING:
		return e->line > 0 ? set_num(o, "line", e->line) : 0;
	case PB_EVENT_INSTRUCTION:
		return set(o, "ok", json_boolean(e->error == 0));
	case PB_EVENT_DONE:
	case PB_EVENT_SNAPSHOT:
		return e->snapshot != 0 ? set_num(o, "snapshot", e->snapshot) : 0;
	case PB_EVENT_ADVERTISE:
		return set(o, "expires", json_integer((json_int_t)e->expires));
	case PB_EVENT_DEVICE_PROGRESS:
		if ((rc = set_num(o, "bytes_done", e->bytes_done)) == 0)
			rc = set_num(o, "items_done", e->items_done);
		return rc;
	default:
		return 0;
	}
}

static json_t *text_or_null(const char *s)
{
	return s != NULL ? pb__json_text(s) : NULL;
}

static char *advertise(const pb_event_t *e)
{
	json_t *addrs = json_array();

	for (size_t i = 0; addrs != NULL && i < e->naddresses; i++)
		json_array_append_new(addrs, pb__json_text(e->addresses[i]));
	return pb__json_format("{s:s, s:o, s:I, s:o}", "event", "advertise", "uri", pb__json_text(e->uri), "expires",
			       (json_int_t)e->expires, "addresses", addrs);
}

/* The host's events keep the fields scripts and tests read ("listen",
 * "uri", "peer", "device", "snapshot" in hex); 1 when e is not one of them. */
static int host_json(const pb_event_t *e, const char *name, char **out)
{
	char snap[17];

	switch (e->type) {
	case PB_EVENT_LISTENING:
		*out = pb__json_format("{s:s, s:o}", "event", name, "listen", pb__json_text(e->address));
		break;
	case PB_EVENT_ADVERTISE:
		*out = advertise(e);
		break;
	case PB_EVENT_SNAPSHOT:
		snprintf(snap, sizeof(snap), "%016" PRIx64, e->snapshot);
		*out = pb__json_format("{s:o, s:o*, s:s, s:I}", "event", pb__json_text(name), "device",
				       text_or_null(e->device), "snapshot", snap, "chunks", (json_int_t)e->chunks);
		break;
	case PB_EVENT_CONNECTED:
	case PB_EVENT_AUTHENTICATED:
	case PB_EVENT_PAIRED:
	case PB_EVENT_REFUSED:
	case PB_EVENT_DISCONNECTED:
	case PB_EVENT_ERROR:
		*out = pb__json_format("{s:o, s:o*, s:o*, s:s*, s:o*}", "event", pb__json_text(name), "peer",
				       text_or_null(e->address), "device", text_or_null(e->device), "error",
				       e->error != 0 ? pb_err_name(e->error) : NULL, "message", text_or_null(e->message));
		break;
	case PB_EVENT_INSTRUCTION:
		if (e->device != NULL) { /* a host: a phone's answer */
			*out = pb__json_format("{s:o, s:I, s:b, s:s}", "event", pb__json_text(name), "id",
					       (json_int_t)e->instruction, "ok", e->error == 0, "result",
					       e->error == 0 ? "done" : pb_err_name(e->error));
			break;
		}
		return 1;
	default:
		return 1;
	}
	return *out != NULL ? 0 : PB_ENOMEM;
}

int pb_event_json(const pb_event_t *e, char **out)
{
	json_t *o;
	int rc;

	*out = NULL;
	if (e == NULL)
		return PB_EINVAL;
	if ((rc = host_json(e, e->name != NULL ? e->name : pb__event_name(e->type), out)) <= 0)
		return rc;
	if ((o = json_object()) == NULL)
		return PB_ENOMEM;
	if ((rc = set_text(o, "event", e->name != NULL ? e->name : pb__event_name(e->type))) == 0 && (rc = set_text(o, "phase", e->phase)) == 0 &&
	    (rc = numbers(o, e)) == 0 && (rc = set_text(o, "id", e->id)) == 0 &&
	    (rc = set_text(o, "path", e->path)) == 0 && (rc = set_text(o, "change", e->change)) == 0 &&
	    (rc = set_text(o, "op", e->op)) == 0 && (rc = set_text(o, "address", e->address)) == 0 &&
	    (rc = set_text(o, "device", e->device)) == 0 && (rc = set_text(o, "account", e->account)) == 0 &&
	    (rc = set_text(o, "uri", e->uri)) == 0 && (rc = set_text(o, "message", e->message)) == 0 &&
	    e->error != 0) {
		if ((rc = set(o, "code", json_integer(e->error))) == 0)
			rc = set_text(o, "error", pb_strerror(e->error));
	}
	if (rc == 0) {
		*out = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
		if (*out == NULL)
			rc = PB_ENOMEM;
	}
	json_decref(o);
	return rc;
}
