/* The phone's automatic backup agent and the network type it obeys.
 * Private to the library and its programs. */
#ifndef PB_AGENT_PHONE_AGENT_H
#define PB_AGENT_PHONE_AGENT_H

#include <stdbool.h>
#include <stddef.h>

#include "peerback/phone.h"

/* pb_net_type_t, pb_net_current, pb_net_name, pb_net_parse and the agent's
 * options: peerback/phone.h. */
pb_net_type_t pb__net_classify(const char *iface);

#endif
