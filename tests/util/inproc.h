/* Phones in the test's own process against a host store opened here (the
 * local repository, agent/backup/local.c): no socket, no host program.
 * Every path is below pb_test_dir (testutil.h's group fixtures); the store
 * is pb_test_dir/store. */
#ifndef PB_TEST_INPROC_H
#define PB_TEST_INPROC_H

#include <stdbool.h>
#include <stdint.h>

#include "testutil.h"
#include "peerback/phone.h"
#include "agent/backup/repo.h"

/* The recovery passphrase of the in-process tests' accounts. */
#define PB_TEST_PASS "correct horse battery staple 7"

/* Options of a backup or restore: PB_TEST_PASS, Argon2id's cheap limits. */
pb_op_opts_t pb_test_opts(void);

/* A phone: its home, its device id and its repository in the store, under
 * account. */
typedef struct pb_test_phone_s {
	char home[4096];
	uint8_t id[16];
	const char *account;
	pb_repo_t *repo;
	pb_phone_t *ph;
} pb_test_phone_t;

/* A new phone: home pb_test_dir/name, a random device id, opened. */
void pb_test_phone_init(pb_test_phone_t *p, const char *name, const char *account);
/* Opens the phone and its repository (the store is locked while open). */
void pb_test_phone_open(pb_test_phone_t *p);
void pb_test_phone_close(pb_test_phone_t *p);

/* Restores the phone's latest snapshot (item_id: one item, or NULL: all)
 * into the device directory out, then sets its device directory back to
 * dev. */
void pb_test_restore_into(pb_test_phone_t *p, const char *dev, const char *out, const char *item_id,
			  pb_op_result_t *res);
/* Restores everything into pb_test_dir/name and checks that it is dev, byte
 * for byte. */
void pb_test_restore_same(pb_test_phone_t *p, const char *dev, const char *name);

/* The first chat of the device directory dev (by name): its folder name
 * into chat, its result.json's path into file, and that file read into
 * *buf (malloc'd, NUL-terminated, *len bytes before the NUL). */
void pb_test_first_chat(const char *dev, char *chat, size_t cap, char *file, size_t fcap, uint8_t **buf,
			size_t *len);

/* The chunk requests and snapshot root requests of the last
 * pb_test_new_phone_restore. */
extern unsigned pb_test_gets, pb_test_roots;

/* A new phone of p's device (home pb_test_dir/name: no backup state, no
 * master key but the one the passphrase opens; the local repository shows
 * only its own device, so it keeps the device id) restores the chat
 * message id ("chat/<chat>/msg/<n>") into out, its chunk requests counted
 * in pb_test_gets and its root requests in pb_test_roots; *found: the
 * message is in the restored chat. p is closed meanwhile (the store is
 * locked by whoever has it open), then opened again on dev. */
void pb_test_new_phone_restore(pb_test_phone_t *p, const char *dev, const char *name, const char *id,
			       const char *out, pb_op_result_t *res, bool *found);

#endif
