/* pb_phone_t: one handle per phone state directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/phone/handle.h"
#include "agent/util/fsutil.h"

int pb_phone_open(const char *home, pb_phone_t **out)
{
	pb_phone_t *p;
	struct stat st;
	int rc;

	*out = NULL;
	if (home == NULL || home[0] == 0)
		return PB_EINVAL;
	/* Safe to call again and from any thread; the library's keys and
	 * random numbers need it. */
	if (sodium_init() < 0)
		return PB_EIO;
	if (stat(home, &st) != 0) {
		if (errno != ENOENT)
			return -errno;
		if ((rc = pb__mkdirs(home, 0700)) != 0)
			return rc;
	} else if (!S_ISDIR(st.st_mode)) {
		return -ENOTDIR;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL || (p->home = strdup(home)) == NULL) {
		free(p);
		return PB_ENOMEM;
	}
	*out = p;
	return 0;
}

void pb_phone_close(pb_phone_t *phone)
{
	if (phone == NULL)
		return;
	free(phone->home);
	free(phone->device_dir);
	free(phone);
}

int pb_phone_set_device_dir(pb_phone_t *phone, const char *dir)
{
	char *copy;

	if (phone == NULL || dir == NULL)
		return PB_EINVAL;
	if ((copy = strdup(dir)) == NULL)
		return PB_ENOMEM;
	free(phone->device_dir);
	phone->device_dir = copy;
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
	return phone != NULL ? phone->home : NULL;
}

void pb__phone_set_repo(pb_phone_t *phone, struct pb_repo_s *repo)
{
	phone->repo = repo;
}

int pb__phone_device_dir(const pb_phone_t *phone, char *out, size_t cap)
{
	int n;

	if (phone->device_dir != NULL) {
		n = snprintf(out, cap, "%s", phone->device_dir);
		return n < 0 || (size_t)n >= cap ? PB_ETOOBIG : 0;
	}
	return pb__path_join(out, cap, phone->home, "device");
}
