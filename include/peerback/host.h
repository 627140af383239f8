/* The backup host: embeddable on the application's own libuv loop.
 *
 * A host listens for phones, shows one-time pairing codes, authenticates
 * phones (Noise, then the account service's certificates) and stores their
 * encrypted backups under its home directory. It tells its embedder what
 * happens through an event callback (peerback/event.h); it never prints,
 * never exits and never installs a signal handler.
 *
 * Threads: a running host belongs to its loop. Every pb_host_* call on a
 * host made with pb_host_new is made on the loop's thread, and the event
 * and stop callbacks arrive there. Storage work runs on libuv's thread pool
 * behind the scenes. A handle from pb_host_open (administration without
 * serving) is used by one thread at a time; different handles are
 * independent.
 *
 * SIGPIPE: libuv writes to sockets with write(2), which raises SIGPIPE when
 * a phone has gone. The library does not touch signal dispositions: a
 * program embedding a host ignores SIGPIPE itself (as every libuv server
 * does; Android apps already do).
 *
 * Ownership: strings passed in are copied or used only during the call;
 * records filled by the administration calls are the caller's (plain
 * structs, nothing to free) unless a comment says otherwise. */
#ifndef PEERBACK_HOST_H
#define PEERBACK_HOST_H

#include <uv.h>

#include "peerback/common.h"
#include "peerback/event.h"
#include "peerback/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pb_host_s pb_host_t;

/* What a host needs. Zero means the default for every number. */
typedef struct pb_host_config_s {
	const char *home;          /* state directory: identity, account, host.db, store/ (required) */
	const char *listen;        /* "ADDR:PORT" (port 0: any free one), or NULL for every interface
	                            * on the port it had last time (HOME/host.port) */
	uint64_t qr_ttl;           /* seconds a pairing code stays valid (default 300) */
	unsigned max_failures;     /* failed attempts per address per minute (default 5) */
	uint64_t announce_interval;/* seconds between LAN announcements (default 5) */
	bool no_announce;          /* do not announce on the LAN */
	uint64_t auth_timeout;     /* seconds from accept to authenticated (default 10) */
	uint64_t idle_timeout;     /* seconds of silence that close an authenticated connection (default 120) */
	unsigned max_connections;  /* held at once (default 256) */
	unsigned max_per_address;  /* held at once from one address (default 32) */
} pb_host_config_t;

/* Called once, on the loop, when everything pb_host_stop closed is closed. */
typedef void (*pb_host_stop_cb)(pb_host_t *host, void *arg);

/* --- Serving ------------------------------------------------------------- */

/* Makes a host on loop (the caller's; it must outlive the host). Loads the
 * identity and account from cfg->home (this device must be logged in:
 * PB_EACCT_NOT_LOGGED_IN, PB_EACCT_CERT_EXPIRED), opens host.db and the
 * store (PB_ESTORE_LOCKED when another host holds it). on_event (may be
 * NULL) receives the host's events with arg; its return value is ignored.
 * Nothing is started on the loop yet. *out is freed with pb_host_free. */
PB_EXTERN PB_WUR int pb_host_new(uv_loop_t *loop, const pb_host_config_t *cfg, pb_event_cb on_event, void *arg,
				 pb_host_t **out);

/* Starts serving: listens (a PB_EVENT_LISTENING event), registers a first
 * pairing code with the account service (waits for that one answer) and
 * shows it (PB_EVENT_ADVERTISE), announces itself on the LAN and opens
 * HOME/control.sock for pb_host_prune from other processes. Returns once
 * all is set up; the loop's owner runs the loop. After a failure too, call
 * pb_host_stop and free the host once its callback ran: it closes what
 * was opened. A second call: PB_ESTATE. */
PB_EXTERN PB_WUR int pb_host_start(pb_host_t *host);

/* Shows a fresh pairing code (PB_EVENT_ADVERTISE, a moment later: it is
 * registered with the account service off the loop). The host also makes
 * one after each pairing and when the shown one expires. */
PB_EXTERN PB_WUR int pb_host_advertise(pb_host_t *host);

/* Stops serving: closes the listener, the control socket, the timers and
 * every connection, lets the storage job under way finish (what waits is
 * dropped; phones resend it) and calls cb (may be NULL) on the loop when
 * all is closed. Afterwards pb_host_free releases the rest, and the loop
 * holds nothing of the host: uv_loop_close succeeds. On a host never
 * started, or already stopped, cb is called before this returns. Returns
 * 0, or PB_ESTATE while a stop is under way (or on a pb_host_open handle). */
PB_EXTERN int pb_host_stop(pb_host_t *host, pb_host_stop_cb cb, void *arg);

/* Frees a host that was never started or whose stop completed (cb called),
 * or a handle from pb_host_open. Accepts NULL. Freeing a running host is a
 * caller bug (aborts). */
PB_EXTERN void pb_host_free(pb_host_t *host);

/* The port the host listens on (0 before pb_host_start). */
PB_EXTERN uint16_t pb_host_port(const pb_host_t *host);

/* --- Administration ---------------------------------------------------------
 * Through a serving host's handle (on its loop's thread), or through a
 * handle opened on a home where no host runs in this process. */

/* A handle for administering the host whose state lives in home, without
 * serving (no login needed). Opening creates nothing; the calls below open
 * what they need. *out is freed with pb_host_free. */
PB_EXTERN PB_WUR int pb_host_open(const char *home, pb_host_t **out);

#define PB_HOST_DEVICE_HEX 33   /* a device id in hex, with its NUL */
#define PB_HOST_TEXT_MAX 129    /* an account or a name, with its NUL */

/* A phone paired with the host. Text is valid UTF-8 (bytes that are not
 * became U+FFFD): names come from phones and may hold anything else. */
typedef struct pb_host_device_s {
	char device[PB_HOST_DEVICE_HEX];
	char name[PB_HOST_TEXT_MAX];
	char account[PB_HOST_TEXT_MAX];
	uint64_t paired_at, last_seen; /* unix seconds */
	bool revoked;
	uint64_t quota;                /* bytes it may store */
	bool quota_default;            /* quota is the default (64 GiB) */
} pb_host_device_t;

/* Calls cb for each paired device, oldest pairing first; a non-zero return
 * from cb stops and is returned. Returns the count otherwise (0 when the
 * host never paired anything). */
PB_EXTERN PB_WUR int pb_host_devices(pb_host_t *host, int (*cb)(void *arg, const pb_host_device_t *d), void *arg);

/* The one device whose id (hex, or 8+ hex digits of it) or name matches
 * which: PB_ENOTFOUND, or PB_EEXISTS when several match. */
PB_EXTERN PB_WUR int pb_host_device(pb_host_t *host, const char *which, pb_host_device_t *out);

/* Ends the pairing of the device which names (as pb_host_device); *out
 * (may be NULL) gets it as it is now. */
PB_EXTERN PB_WUR int pb_host_revoke(pb_host_t *host, const char *which, pb_host_device_t *out);

/* Sets the quota of the device which names to bytes (> 0), or with reset
 * gives it the default again; it applies from the device's next connection.
 * *out (may be NULL) gets the device with its quota as it is now. */
PB_EXTERN PB_WUR int pb_host_set_quota(pb_host_t *host, const char *which, uint64_t bytes, bool reset,
				       pb_host_device_t *out);

/* A remote instruction for a phone's virtual cards. */
typedef struct pb_host_instruction_s {
	int64_t id;
	char device[PB_HOST_DEVICE_HEX];
	char op[24];                   /* "delete-vsim", "export-vsim", "install-vsim" */
	char iccid[24];
	char peer[PB_HOST_DEVICE_HEX]; /* the other device of a copy, or "" */
	char state[16];                /* "queued", "done", "refused" */
	char result[256];              /* the phone's answer (valid UTF-8) */
	uint64_t created, updated;     /* unix seconds */
} pb_host_instruction_t;

/* Queues an instruction for the device which names, carried out at its
 * next connection: op "delete-vsim" (to NULL) removes a virtual SIM, op
 * "copy-vsim" copies it to the device to names (of the same account, or of
 * a linked sub-account: then the account service is asked, which blocks
 * for a network round trip; PB_EACCT_NOT_LINKED when not). PB_EINVAL for
 * an unknown op, an ICCID that is not 19 or 20 digits, or a copy to the
 * same device. *id (may be NULL) gets its number. */
PB_EXTERN PB_WUR int pb_host_instruct(pb_host_t *host, const char *which, const char *op, const char *iccid,
				      const char *to, int64_t *id);

/* Calls cb for every instruction, queued and finished; a non-zero return
 * from cb stops and is returned. */
PB_EXTERN PB_WUR int pb_host_instructions(pb_host_t *host, int (*cb)(void *arg, const pb_host_instruction_t *in),
					  void *arg);

typedef struct pb_host_prune_report_s {
	uint64_t snapshots_removed;    /* or, in a dry run, that would be */
	uint64_t chunks_removed;       /* or, in a dry run, that would be */
	uint64_t packs_deleted, packs_repacked;
	uint64_t bytes_freed;          /* or, in a dry run, that would be */
} pb_host_prune_report_t;

/* One device's plan in a dry run: its snapshots, which are kept, and what
 * removing the others frees (peerback/store.h). Borrowed during the call. */
typedef struct pb_host_prune_plan_s {
	const pb_host_device_t *device;
	const pb_store_prune_result_t *result;
} pb_host_prune_plan_t;

/* Per device, forgets the snapshots keep does not keep (all 0: the 7
 * newest), then frees the chunks no kept snapshot needs. On a home whose
 * host runs in another process (it holds the store), that host does it on
 * request (HOME/control.sock), between its phones' requests;
 * PB_ESTORE_LOCKED when none answers there. With dry_run nothing changes
 * and it runs beside a serving host: plan (may be NULL) gets each device's
 * plan, and *rep what would go. Not on a serving handle (PB_ESTATE): its
 * store belongs to its storage worker; open another handle on its home
 * with pb_host_open and call this from another thread. */
PB_EXTERN PB_WUR int pb_host_prune(pb_host_t *host, const pb_store_keep_t *keep, bool dry_run,
				   void (*plan)(void *arg, const pb_host_prune_plan_t *p), void *arg,
				   pb_host_prune_report_t *rep);

/* Checks every chunk of the host's store (HOME/store) against its hash,
 * without keys, as pb_store_verify does; beside a serving host too (it
 * reads without the store's lock). Returns 0 when clean, PB_ESTORE_CORRUPT
 * with the details in *rep, or another error. progress may be NULL. */
PB_EXTERN PB_WUR int pb_host_verify(pb_host_t *host, pb_store_progress_cb progress, void *arg,
				    pb_store_verify_report_t *rep);

#ifdef __cplusplus
}
#endif
#endif
