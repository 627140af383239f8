/* The phone handle behind include/peerback/phone.h: what one phone state
 * directory holds open. Private to the library; the files of agent/phone/
 * that implement pb_phone_* add their fields here. */
#ifndef PB_AGENT_PHONE_HANDLE_H
#define PB_AGENT_PHONE_HANDLE_H

#include "peerback/phone.h"

struct pb_repo_s;

struct pb_phone_s {
	char *home;
	char *device_dir;          /* the device directory, or NULL: HOME/device */
	pb_provider_t provider;    /* an application's provider ... */
	bool has_provider;         /* ... when set */
	struct pb_repo_s *repo;    /* a local repository instead of a host (tests), or NULL */
};

/* Backups and restores of this handle go to repo (agent/backup/repo.h)
 * instead of a paired host; the caller keeps it open while the handle
 * uses it. NULL: back to the remembered hosts. */
void pb__phone_set_repo(pb_phone_t *phone, struct pb_repo_s *repo);

/* The device directory the handle uses (set, or HOME/device) into out. */
PB_WUR int pb__phone_device_dir(const pb_phone_t *phone, char *out, size_t cap);

#endif
