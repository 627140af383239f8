/* The phone handle's inside: its home and where its items come from.
 * Private to the library. */
#ifndef PB_AGENT_PHONE_HANDLE_H
#define PB_AGENT_PHONE_HANDLE_H

#include "peerback/phone.h"

struct pb_phone_s {
	char home[4096];
	char device_dir[4096]; /* HOME/device unless set */
};

#endif
