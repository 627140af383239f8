/* The phone handle's inside: its home and where its items come from.
 * Private to the library; the files of agent/phone/ that implement
 * pb_phone_* add their fields here. */
#ifndef PB_AGENT_PHONE_HANDLE_H
#define PB_AGENT_PHONE_HANDLE_H

#include "peerback/phone.h"

struct pb_repo_s;

struct pb_phone_s {
	char home[4096];
	char device_dir[4096];     /* HOME/device unless set */
	pb_provider_t provider;    /* an application's provider ... */
	bool has_provider;         /* ... when set (instead of device_dir) */
	struct pb_repo_s *repo;    /* a local repository instead of a host (tests), or NULL */
};

/* Backups and restores of this handle go to repo (agent/backup/repo.h)
 * instead of a paired host; the caller keeps it open while the handle
 * uses it. NULL: back to the remembered hosts. */
void pb__phone_set_repo(pb_phone_t *phone, struct pb_repo_s *repo);

#endif
