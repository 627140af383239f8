/* Failed attempts per source address or identity. */
#include <netinet/in.h>
#include <string.h>

#include "agent/util/fsutil.h"
#include "agent/util/ratelimit.h"

void pb__ratelimit_init(pb_ratelimit_t *rl, unsigned limit, uint64_t window_s)
{
	memset(rl, 0, sizeof(*rl));
	rl->limit = limit;
	rl->window = window_s;
}

void pb__ratelimit_addr_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		/* IPv4-mapped addresses count as the IPv4 address. */
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
			memcpy(key, (const uint8_t *)&a->sin6_addr + 12, 4);
		else
			memcpy(key, &a->sin6_addr, 16);
	}
}

static int find(pb_ratelimit_t *rl, const uint8_t key[16], bool create)
{
	uint64_t now = pb__now();
	int oldest = 0;

	for (int i = 0; i < PB_RATELIMIT_SLOTS; i++) {
		if (rl->slot[i].count > 0 && now - rl->slot[i].since > rl->window)
			rl->slot[i].count = 0;
		if (rl->slot[i].count > 0 && memcmp(rl->slot[i].addr, key, 16) == 0)
			return i;
		if (rl->slot[i].count == 0 || rl->slot[i].since < rl->slot[oldest].since)
			oldest = i;
	}
	if (!create)
		return -1;
	memset(&rl->slot[oldest], 0, sizeof(rl->slot[oldest]));
	memcpy(rl->slot[oldest].addr, key, 16);
	rl->slot[oldest].since = now;
	return oldest;
}

bool pb__ratelimit_blocked_id(pb_ratelimit_t *rl, const uint8_t id[16])
{
	int i = find(rl, id, false);

	return i >= 0 && rl->slot[i].count >= rl->limit;
}

void pb__ratelimit_fail_id(pb_ratelimit_t *rl, const uint8_t id[16])
{
	int i = find(rl, id, true);

	rl->slot[i].count++;
}

bool pb__ratelimit_blocked(pb_ratelimit_t *rl, const struct sockaddr_storage *ss)
{
	uint8_t key[16];

	pb__ratelimit_addr_key(ss, key);
	return pb__ratelimit_blocked_id(rl, key);
}

void pb__ratelimit_fail(pb_ratelimit_t *rl, const struct sockaddr_storage *ss)
{
	uint8_t key[16];

	pb__ratelimit_addr_key(ss, key);
	pb__ratelimit_fail_id(rl, key);
}

bool pb__addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	uint8_t ka[16], kb[16];

	pb__ratelimit_addr_key(a, ka);
	pb__ratelimit_addr_key(b, kb);
	return memcmp(ka, kb, 16) == 0;
}
