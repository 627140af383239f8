/* The account service's storage: one interface, two implementations.
 * SQLite (store-sqlite.c) is the embedded default, for one instance;
 * PostgreSQL (tools/imd/store-pg.c) lets any number of instances share one
 * database. Whatever is single-use or counted (a session's one ticket, a
 * device id's keys, failed attempts) is decided by the store, in one
 * statement or transaction, never by one process's memory alone. Private to
 * the library and its programs. */
#ifndef PB_AGENT_IMD_STORE_H
#define PB_AGENT_IMD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

/* Failed attempts from one source allowed inside the window (seconds). */
#define PB_IMD_FAIL_LIMIT 5
#define PB_IMD_FAIL_WINDOW 60

typedef struct pb_imd_store_s pb_imd_store_t;

typedef struct pb_imd_store_ops_s {
	const char *name; /* "sqlite", "postgresql" */
	/* PB_EEXISTS when id is taken. */
	int (*add_account)(pb_imd_store_t *s, const char *id, const char *pwhash, uint64_t now);
	/* The account's password hash into out; PB_ENOTFOUND when none. */
	int (*pwhash)(pb_imd_store_t *s, const char *id, char out[crypto_pwhash_STRBYTES]);
	int (*account_exists)(pb_imd_store_t *s, const char *id, bool *exists);
	/* Both directions at once. */
	int (*link)(pb_imd_store_t *s, const char *a, const char *b);
	/* PB_ENOTFOUND when there was no link. */
	int (*unlink)(pb_imd_store_t *s, const char *a, const char *b);
	int (*linked)(pb_imd_store_t *s, const char *a, const char *b, bool *linked);
	/* Binds a device id to its first keys; PB_EACCT_DEVICE_TAKEN when the
	 * id has other keys or a key another id. */
	int (*bind_device)(pb_imd_store_t *s, const uint8_t *device_id, size_t id_len, const uint8_t sign_pk[32],
			   const uint8_t static_pk[32], const char *account, uint64_t now);
	/* Registers a pairing session (a second registration is ignored). */
	int (*register_session)(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, const char *account,
				const uint8_t *host_device, size_t dev_len, uint64_t not_after);
	/* The session's account (*account freed by the caller), expiry and
	 * whether its ticket was issued; PB_ENOTFOUND when none. */
	int (*session)(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, char **account, uint64_t *not_after,
		       bool *ticketed);
	/* Marks the session ticketed and records the ticket, atomically:
	 * PB_EACCT_SECRET_USED when it already was (by any instance). */
	int (*take_ticket)(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, const uint8_t ticket_id[16],
			   const uint8_t *phone_device, size_t dev_len, uint64_t now);
	/* Failed attempts per 16-byte source key. */
	int (*blocked)(pb_imd_store_t *s, const uint8_t key[16], uint64_t now, bool *blocked);
	int (*fail)(pb_imd_store_t *s, const uint8_t key[16], uint64_t now);
	/* 0 when the store answers (readiness). */
	int (*ping)(pb_imd_store_t *s);
	/* The schema version in use. */
	int (*version)(pb_imd_store_t *s);
	void (*close)(pb_imd_store_t *s);
} pb_imd_store_ops_t;

struct pb_imd_store_s {
	const pb_imd_store_ops_t *ops;
};

/* Opens (creating and migrating) the SQLite store at path. */
__attribute__((warn_unused_result)) int pb__imd_store_sqlite_open(const char *path, pb_imd_store_t **out);

#endif
