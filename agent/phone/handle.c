/* The phone handle: opened once from its home. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/phone/handle.h"
#include "agent/util/fsutil.h"

int pb_phone_open(const char *home, pb_phone_t **out)
{
	pb_phone_t *p;
	unsigned was;
	int rc;

	if (home == NULL || out == NULL)
		return PB_EINVAL;
	*out = NULL;
	/* An embedder need not know the crypto library needs starting. */
	if (sodium_init() < 0)
		return PB_EIO;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return PB_ENOMEM;
	if ((size_t)snprintf(p->home, sizeof(p->home), "%s", home) >= sizeof(p->home) ||
	    (rc = pb__path_join(p->device_dir, sizeof(p->device_dir), home, "device")) != 0) {
		free(p);
		return PB_ETOOBIG;
	}
	if ((rc = pb__private_dir(home, &was)) != 0) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void pb_phone_close(pb_phone_t *phone)
{
	free(phone);
}

int pb_phone_set_device_dir(pb_phone_t *phone, const char *dir)
{
	if (phone == NULL || dir == NULL)
		return PB_EINVAL;
	if ((size_t)snprintf(phone->device_dir, sizeof(phone->device_dir), "%s", dir) >= sizeof(phone->device_dir))
		return PB_ETOOBIG;
	phone->has_provider = false;
	return 0;
}

int pb_phone_set_provider(pb_phone_t *phone, const pb_provider_t *provider)
{
	if (phone == NULL || provider == NULL || provider->list == NULL || provider->begin == NULL ||
	    provider->write == NULL || provider->commit == NULL || provider->abort == NULL)
		return PB_EINVAL;
	phone->provider = *provider;
	phone->has_provider = true;
	return 0;
}

const char *pb_phone_home(const pb_phone_t *phone)
{
	return phone->home;
}

void pb__phone_set_repo(pb_phone_t *phone, struct pb_repo_s *repo)
{
	phone->repo = repo;
}
