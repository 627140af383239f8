/* pb_event_json: an event as the one line `peerback --json` prints. The
 * host's events keep the fields scripts and tests read ("listen", "uri",
 * "peer", "device", "snapshot" in hex); other events carry the word of
 * their type and every field they set. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "peerback.h"
#include "peerback/event.h"
#include "agent/util/json.h"

static const char *type_name(pb_event_type_t type)
{
	static const char *const names[] = {
		[PB_EVENT_PROGRESS] = "progress",	  [PB_EVENT_WARNING] = "warning",
		[PB_EVENT_PLAN] = "plan",		  [PB_EVENT_INSTRUCTION] = "instruction",
		[PB_EVENT_DONE] = "done",		  [PB_EVENT_LISTENING] = "listening",
		[PB_EVENT_ADVERTISE] = "advertise",	  [PB_EVENT_CONNECTED] = "accepted",
		[PB_EVENT_AUTHENTICATED] = "connected",	  [PB_EVENT_PAIRED] = "paired",
		[PB_EVENT_REFUSED] = "refused",		  [PB_EVENT_DISCONNECTED] = "disconnected",
		[PB_EVENT_DEVICE_PROGRESS] = "device-progress", [PB_EVENT_SNAPSHOT] = "snapshot",
		[PB_EVENT_ERROR] = "error",
	};

	if ((unsigned)type < sizeof(names) / sizeof(names[0]) && names[type] != NULL)
		return names[type];
	return "event";
}

static json_t *text_or_null(const char *s)
{
	return s != NULL ? pb__json_text(s) : NULL;
}

/* Text fields: set when given. */
static void put_text(json_t *o, const char *key, const char *s)
{
	if (s != NULL)
		json_object_set_new(o, key, pb__json_text(s));
}

static void put_uint(json_t *o, const char *key, uint64_t v)
{
	if (v != 0)
		json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* Any event: its word and the fields it sets, in the struct's order. */
static char *generic(const pb_event_t *e, const char *name)
{
	json_t *o = json_object();
	char *text;

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "event", pb__json_text(name));
	put_text(o, "phase", e->phase);
	put_uint(o, "items_done", e->items_done);
	put_uint(o, "items_total", e->items_total);
	put_uint(o, "bytes_done", e->bytes_done);
	put_uint(o, "bytes_total", e->bytes_total);
	put_uint(o, "bytes_sent", e->bytes_sent);
	if (e->snapshot != 0) {
		char snap[17];

		snprintf(snap, sizeof(snap), "%016" PRIx64, e->snapshot);
		json_object_set_new(o, "snapshot", json_string(snap));
	}
	put_text(o, "id", e->id);
	put_text(o, "path", e->path);
	put_uint(o, "line", e->line);
	put_text(o, "change", e->change);
	put_text(o, "op", e->op);
	put_text(o, "peer", e->address);
	put_text(o, "device", e->device);
	put_text(o, "account", e->account);
	put_text(o, "name", e->device_name);
	if (e->error != 0)
		json_object_set_new(o, "error", json_string(pb_err_name(e->error)));
	put_text(o, "message", e->message);
	text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	return text;
}

static char *advertise(const pb_event_t *e)
{
	json_t *addrs = json_array();

	for (size_t i = 0; addrs != NULL && i < e->naddresses; i++)
		json_array_append_new(addrs, pb__json_text(e->addresses[i]));
	return pb__json_format("{s:s, s:o, s:I, s:o}", "event", "advertise", "uri", pb__json_text(e->uri), "expires",
			       (json_int_t)e->expires, "addresses", addrs);
}

int pb_event_json(const pb_event_t *e, char **out)
{
	const char *name;
	char snap[17];

	if (e == NULL || out == NULL)
		return PB_EINVAL;
	name = e->name != NULL ? e->name : type_name(e->type);
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
		*out = generic(e, name);
		break;
	default:
		*out = generic(e, name);
		break;
	}
	return *out != NULL ? 0 : PB_ENOMEM;
}
