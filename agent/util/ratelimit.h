/* Failed attempts counted per key, in a fixed table: a source address, or
 * an identity (a device id), with limit failures inside window seconds is
 * refused until the window passes. Private to the library. */
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

/* The same for a 16-byte identity. */
bool pb__ratelimit_blocked_id(pb_ratelimit_t *rl, const uint8_t id[16]);
void pb__ratelimit_fail_id(pb_ratelimit_t *rl, const uint8_t id[16]);

/* The 16-byte key of a source address (IPv4 and IPv4-mapped IPv6 alike). */
void pb__ratelimit_addr_key(const struct sockaddr_storage *ss, uint8_t key[16]);

/* Whether two socket addresses are the same host (ports aside; an
 * IPv4-mapped IPv6 address is its IPv4 address). */
bool pb__addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
