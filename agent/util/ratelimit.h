/* Failed attempts counted per source address, in a fixed table: an address
 * with limit failures inside window seconds is refused until the window
 * passes. Private to the library. */
#ifndef PB_AGENT_RATELIMIT_H
#define PB_AGENT_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define PB_RATELIMIT_SLOTS 128

typedef struct pb_ratelimit_s {
	struct {
		uint8_t addr[16];
		uint64_t since;
		unsigned count;
	} slot[PB_RATELIMIT_SLOTS];
	unsigned limit;
	uint64_t window;
} pb_ratelimit_t;

void pb__ratelimit_init(pb_ratelimit_t *rl, unsigned limit, uint64_t window_s);
bool pb__ratelimit_blocked(pb_ratelimit_t *rl, const struct sockaddr_storage *ss);
void pb__ratelimit_fail(pb_ratelimit_t *rl, const struct sockaddr_storage *ss);

#endif
