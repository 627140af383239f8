/* The IM account service (what peerback-imd runs): it vouches for accounts
 * with device certificates, registers pairing sessions and issues
 * single-use connect tickets, served over a Noise NK channel.
 *
 * A handle is opened on a state directory (its keys, and the SQLite
 * database unless another store is given), administered (accounts, links)
 * and served on the application's own libuv loop: pb_imd_start, then
 * pb_imd_stop. The service installs no signal handler, prints nothing and
 * never exits: what it does arrives as events.
 *
 * Threading: a handle is used from one thread, the thread that runs its
 * loop once started; its events arrive there. Password checks run on
 * libuv's thread pool, but only the loop thread touches the store. Distinct
 * handles are independent. */
#ifndef PEERBACK_IMD_H
#define PEERBACK_IMD_H

#include <uv.h>

#include "peerback/common.h"
#include "peerback/event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pb_imd_s pb_imd_t;

/* --- Storage ------------------------------------------------------------------
 * One interface, two implementations: SQLite in the library (pb_imd_open),
 * for one instance; PostgreSQL in peerback-imd (tools/imd/store-pg.c), so
 * that any number of instances share one database. Whatever is single-use
 * or counted (a session's one ticket, a device id's keys, failed attempts)
 * is decided by the store, in one statement or transaction, never by one
 * process's memory alone. Every function returns 0 or a PB_E* code; the
 * service calls them on its loop's thread only. */

/* Room for a password hash (libsodium's crypto_pwhash_STRBYTES). */
#define PB_IMD_PWHASH_LEN 128
/* Failed attempts from one source allowed inside the window (seconds). */
#define PB_IMD_FAIL_LIMIT 5
#define PB_IMD_FAIL_WINDOW 60

typedef struct pb_imd_store_s pb_imd_store_t;

typedef struct pb_imd_store_ops_s {
	const char *name; /* "sqlite", "postgresql" */
	/* PB_EEXISTS when id is taken. */
	int (*add_account)(pb_imd_store_t *s, const char *id, const char *pwhash, uint64_t now);
	/* The account's password hash (NUL-terminated) into out; PB_ENOTFOUND
	 * when none. */
	int (*pwhash)(pb_imd_store_t *s, const char *id, char out[PB_IMD_PWHASH_LEN]);
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
	/* The session's account (*account malloc'd, freed by the service),
	 * expiry and whether its ticket was issued; PB_ENOTFOUND when none. */
	int (*session)(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, char **account, uint64_t *not_after,
		       bool *ticketed);
	/* Marks the session ticketed and records the ticket, atomically:
	 * PB_EACCT_SECRET_USED when it already was (by any instance). */
	int (*take_ticket)(pb_imd_store_t *s, const uint8_t *sid, size_t sid_len, const uint8_t ticket_id[16],
			   const uint8_t *phone_device, size_t dev_len, uint64_t now);
	/* Failed attempts per 16-byte source key: blocked once
	 * PB_IMD_FAIL_LIMIT were counted within PB_IMD_FAIL_WINDOW seconds. */
	int (*blocked)(pb_imd_store_t *s, const uint8_t key[16], uint64_t now, bool *blocked);
	int (*fail)(pb_imd_store_t *s, const uint8_t key[16], uint64_t now);
	/* 0 when the store answers (readiness). */
	int (*ping)(pb_imd_store_t *s);
	/* The schema version in use. */
	int (*version)(pb_imd_store_t *s);
	/* Frees the store. */
	void (*close)(pb_imd_store_t *s);
} pb_imd_store_ops_t;

/* A store is any struct that begins with this one. */
struct pb_imd_store_s {
	const pb_imd_store_ops_t *ops;
};

/* --- The service -------------------------------------------------------------- */

/* Makes home the service's private state directory (it holds the signing
 * key and the password hashes): created 0700 with its parents when
 * missing, tightened to 0700 when others may enter it, in which case *was
 * (may be NULL) gets the mode it had (else 0). -EPERM when it is open to
 * others and belongs to someone else. */
PB_EXTERN PB_WUR int pb_imd_private_home(const char *home, unsigned *was);

/* Opens (creating on first use) the service state under home: its keys in
 * imd.key and the SQLite store imd.db. *out is freed with pb_imd_close. */
PB_EXTERN PB_WUR int pb_imd_open(const char *home, pb_imd_t **out);

/* The same with another store, of which the service takes charge, even on
 * failure (it calls store->ops->close); the keys stay in home. */
PB_EXTERN PB_WUR int pb_imd_open_store(const char *home, pb_imd_store_t *store, pb_imd_t **out);

/* Frees the handle and closes its store. A started service must have been
 * stopped and its PB_EVENT_DONE delivered first. NULL is ignored. */
PB_EXTERN void pb_imd_close(pb_imd_t *imd);

/* Adds an account: PB_EEXISTS when taken, PB_EINVAL for an id outside
 * [A-Za-z0-9._@+-]{1,128} or a password shorter than 8 characters. The
 * password is hashed with Argon2id (tens of milliseconds, on the calling
 * thread). */
PB_EXTERN PB_WUR int pb_imd_add_account(pb_imd_t *imd, const char *id, const char *password);

/* Links two existing accounts as sub-accounts of one owner (both
 * directions): PB_ENOTFOUND when one does not exist. */
PB_EXTERN PB_WUR int pb_imd_link(pb_imd_t *imd, const char *a, const char *b);

/* Removes the link between two accounts: PB_ENOTFOUND when there was none. */
PB_EXTERN PB_WUR int pb_imd_unlink(pb_imd_t *imd, const char *a, const char *b);

/* Validity of new certificates and tickets, in seconds (0 keeps the
 * default: 30 days and 120 seconds). */
PB_EXTERN void pb_imd_set_validity(pb_imd_t *imd, uint64_t cert_seconds, uint64_t ticket_seconds);

/* 0 when the service's store answers (readiness). */
PB_EXTERN int pb_imd_ready(pb_imd_t *imd);

/* "sqlite" or "postgresql" (static string), and the schema version in use. */
PB_EXTERN const char *pb_imd_store_name(const pb_imd_t *imd);
PB_EXTERN int pb_imd_schema_version(pb_imd_t *imd);

/* The service's public keys: the Noise static key devices connect to and
 * the signing key of its certificates (the --imd-key devices log in with).
 * Either may be NULL. */
PB_EXTERN void pb_imd_keys(const pb_imd_t *imd, uint8_t static_pk[32], uint8_t sign_pk[32]);

/* Serves on listen ("ADDR:PORT"; port 0 picks one) on loop, which the
 * caller runs. Events, on the loop's thread (cb may be NULL):
 *   PB_EVENT_LISTENING  address: the bound address, once, before returning;
 *   PB_EVENT_REQUEST    name ("login", "register-session", "ticket",
 *                       "linked", "request"), address (the device's),
 *                       error: one a request answered;
 *   PB_EVENT_DONE       after pb_imd_stop, once every connection and
 *                       password check has ended.
 * PB_ESTATE when already started. On failure nothing is told and the handle
 * may be closed at once (a socket it opened closes when the loop next runs). */
PB_EXTERN PB_WUR int pb_imd_start(pb_imd_t *imd, uv_loop_t *loop, const char *listen, pb_event_cb cb,
				  void *cb_arg);

/* Stops listening and closes every connection (replies being written are
 * flushed first, five seconds at most); PB_EVENT_DONE follows on the loop.
 * A second call, or one before pb_imd_start, does nothing. */
PB_EXTERN void pb_imd_stop(pb_imd_t *imd);

#ifdef __cplusplus
}
#endif
#endif
