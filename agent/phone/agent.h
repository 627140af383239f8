/* The phone's automatic backup agent and the network type it obeys.
 * Private to the library and its programs. */
#ifndef PB_AGENT_PHONE_AGENT_H
#define PB_AGENT_PHONE_AGENT_H

#include <stdbool.h>
#include <stddef.h>

#include "peerback/store.h"

typedef enum pb_net_type {
	PB_NET_NONE = 0,
	PB_NET_WIFI = 1,
	PB_NET_ETHERNET = 2,
	PB_NET_CELLULAR = 3,
} pb_net_type_t;

/* The type of the interface carrying the default route on Linux (its name
 * to iface, may be NULL): wireless per sysfs, cellular per DEVTYPE=wwan or
 * a modem's usual names (wwan*, rmnet*, ccmni*, ppp*), else ethernet. */
pb_net_type_t pb_net_current(char *iface, size_t cap);
pb_net_type_t pb_net_classify(const char *iface);
const char *pb_net_name(pb_net_type_t t);
int pb_net_parse(const char *word, pb_net_type_t *out);

typedef struct pb_agent_opts_s {
	const char *home;
	const char *device_dir;
	const char *host;
	const char *passphrase;  /* for a first backup */
	const pb_pwhash_params_t *wrap_params; /* for a first backup; NULL: MODERATE */
	unsigned allowed;        /* 1u << pb_net_type_t; default wifi and ethernet */
	unsigned interval;       /* seconds between checks */
	bool once;               /* one pass, then return its result */
	/* A phone app supplies the network type here (NULL: read Linux's). */
	pb_net_type_t (*network)(void *arg);
	void *network_arg;
	/* One JSON object per event. */
	void (*event)(void *arg, const char *json);
	void *event_arg;
} pb_agent_opts_t;

/* Runs until SIGINT/SIGTERM (or one pass with once). */
int pb_agent_run(const pb_agent_opts_t *opts);

#endif
