/* Events inside the library (include/peerback/event.h is the public side). */
#ifndef PB_AGENT_UTIL_EVENT_H
#define PB_AGENT_UTIL_EVENT_H

#include "peerback/event.h"

/* The type as its word ("progress", "advertise", ...): the pb_event_t name
 * of an event that was given none. A static string. */
const char *pb__event_name(pb_event_type_t type);

#endif
