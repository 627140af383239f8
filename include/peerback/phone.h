/* The phone: one handle per phone state directory (its identity, account,
 * remembered hosts and backup state), and everything a phone does with it.
 *
 * Threads: a handle is used by one thread at a time; different handles are
 * independent. Every call blocks until done (a phone app runs them on a
 * worker thread); its event callback is called on the calling thread.
 * Ownership: strings passed in are copied or used only during the call;
 * anything returned through an out-pointer is the caller's, freed with the
 * function named beside it. */
#ifndef PEERBACK_PHONE_H
#define PEERBACK_PHONE_H

#include "peerback/common.h"
#include "peerback/event.h"
#include "peerback/kinds.h"
#include "peerback/nfc.h"
#include "peerback/provider.h"
#include "peerback/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pb_phone_s pb_phone_t;

/* Opens the phone whose state lives in home (created 0700 if missing). The
 * items come from the device directory set with pb_phone_set_device_dir or
 * from a provider set with pb_phone_set_provider. */
PB_EXTERN PB_WUR int pb_phone_open(const char *home, pb_phone_t **out);
PB_EXTERN void pb_phone_close(pb_phone_t *phone);
/* The default provider over a device directory (docs/DATA.md). */
PB_EXTERN PB_WUR int pb_phone_set_device_dir(pb_phone_t *phone, const char *dir);
/* An application's own provider; *provider is copied, provider->arg must
 * outlive the handle or the next set call. */
PB_EXTERN PB_WUR int pb_phone_set_provider(pb_phone_t *phone, const pb_provider_t *provider);
PB_EXTERN const char *pb_phone_home(const pb_phone_t *phone);

/* --- Backup, restore, verify ---------------------------------------------- */

typedef struct pb_op_opts_s {
	const char *host;        /* remembered host name or key prefix; NULL: the latest */
	const char *passphrase;  /* the account's recovery passphrase when needed, or NULL */
	unsigned kind_mask;      /* 1u << kind; 0: every kind */
	const char *item_id;     /* restore: one item (a chat: with its messages) */
	const char *from_device; /* restore: another device's backup (hex id) */
	uint64_t snapshot;       /* restore: this snapshot; 0: the latest */
	bool dry_run;            /* PB_EVENT_PLAN per item; nothing written or sent */
	int timeout_ms;          /* per network step; 0: 30 s (recording a snapshot
				  * or a commit: plus 200 us per reference or chunk) */
	pb_event_cb on_event;    /* may be NULL; non-zero return cancels */
	void *event_arg;
	bool weak_kdf;           /* tests only: cheap Argon2id limits for a first backup's key wrap */
} pb_op_opts_t;

typedef struct pb_op_result_s {
	uint64_t snapshot;
	uint64_t items, bytes;         /* items and plaintext bytes covered */
	uint64_t items_changed;
	uint64_t chunks_sent, bytes_sent;
	uint64_t skipped;              /* backup: sources skipped (a partial backup) */
	uint64_t bad_items;            /* verify: items that did not match */
	uint64_t added, changed, unchanged; /* restore dry run */
	char device[33];               /* restore: whose backup (hex) */
	double seconds;
	uint64_t chunks_total;         /* backup: chunks the snapshot references */
	uint64_t items_kept;           /* backup: items of skipped sources kept from the last backup */
	uint64_t items_carried;        /* backup of some kinds: the other kinds' items, kept */
	uint64_t chunks_cached;        /* restore: chunks an interrupted run had fetched */
	uint64_t snapshot_known;       /* restore refused as a rollback (PB_ESTORE_ROLLBACK):
					* the newest snapshot this phone completed there */
	uint64_t replaced;             /* restore that failed: files already replaced */
	bool by_state;                 /* restore, fetch: found through the phone's state */
	char link[512];                /* restore refused with PB_EDATA_LINK: the link */
	char bad_path[512];            /* backup failed on a source it cannot read: which */
	uint64_t files_read;           /* backup of a device directory: files read (new or changed) */
	uint64_t files_skipped;        /* ... and files skipped unread: same stamp (size, mtime,
					* inode, ctime) as when last backed up */
	bool by_index;                 /* restore, fetch: found through the snapshot's id index */
} pb_op_result_t;

PB_EXTERN PB_WUR int pb_phone_backup(pb_phone_t *phone, const pb_op_opts_t *opts, pb_op_result_t *res);
PB_EXTERN PB_WUR int pb_phone_restore(pb_phone_t *phone, const pb_op_opts_t *opts, pb_op_result_t *res);
PB_EXTERN PB_WUR int pb_phone_verify(pb_phone_t *phone, const pb_op_opts_t *opts, pb_op_result_t *res);

typedef struct pb_snapshot_info_s {
	uint64_t id;
	int64_t time;
	uint64_t size, chunks;
} pb_snapshot_info_t;
/* *out is malloc'd (free it with free()). */
PB_EXTERN PB_WUR int pb_phone_snapshots(pb_phone_t *phone, const pb_op_opts_t *opts, pb_snapshot_info_t **out,
					size_t *n);
/* Calls cb with each item of opts->snapshot (0: the latest) of this phone,
 * or of opts->from_device, or, on a new phone, of the account's most recent
 * backup (as a restore picks it); the item is borrowed for the call. res
 * (may be NULL) gets snapshot, device and items. */
PB_EXTERN PB_WUR int pb_phone_items(pb_phone_t *phone, const pb_op_opts_t *opts, pb_manifest_item_cb cb, void *arg,
				    pb_op_result_t *res);
/* One item's bytes from the host's latest snapshot; *data is malloc'd. */
PB_EXTERN PB_WUR int pb_phone_fetch(pb_phone_t *phone, const pb_op_opts_t *opts, const char *id, uint8_t **data,
				    size_t *len);

/* --- Reading a backup on its host ---------------------------------------------- */

/* A backup read where it is stored: a desktop host shows its user a
 * device's latest snapshot without a phone, through the same restore path
 * (the snapshot's format stays the library's business). */
typedef struct pb_store_restore_opts_s {
	const char *store_dir;   /* the host store's folder; read only and unlocked,
				  * so a host may run on it meanwhile */
	const char *account;
	const char *device;      /* whose latest snapshot: the device id in hex */
	/* The account's master key (PB_MASTERKEY_LEN bytes, the caller's, e.g.
	 * pb_masterkey_unwrap of the device's "masterkey" blob): nothing is
	 * saved. */
	const uint8_t *master_key;
	const char *work_dir;    /* an existing private folder for the restore's
				  * working files (the caller removes it) */
	const pb_provider_t *provider; /* where the items go (the caller's) */
	unsigned kind_mask;      /* 1u << kind; 0: every kind */
	/* Of those, only the items want (may be NULL) returns true for; it
	 * sees each item of the kinds once, before any is written. */
	bool (*want)(void *arg, const pb_manifest_item_t *item);
	void *want_arg;
	pb_event_cb on_event;    /* progress (phase "restore"); non-zero cancels */
	void *event_arg;
} pb_store_restore_opts_t;

/* Restores the latest snapshot of o->device into o->provider. res gets
 * snapshot, items and bytes. PB_ESTORE_NOSNAP when the device has none,
 * PB_ENOTFOUND when nothing was wanted, PB_ECANCELED. */
PB_EXTERN PB_WUR int pb_store_restore(const pb_store_restore_opts_t *o, pb_op_result_t *res);

/* --- Account ------------------------------------------------------------------ */

typedef struct pb_account_info_s {
	char account[129];     /* the account id */
	char name[65];         /* this device's name */
	char device[33];       /* this device's id, hex */
	char key[64];          /* this device's static public key, base64url */
	char service[96];      /* the account service's address, ADDR:PORT */
} pb_account_info_t;

/* An address as the phone stores and dials it: ADDR:PORT as given, or
 * HOST:PORT with HOST a name resolved to its first address. PB_EURI_ADDR
 * when given is neither, PB_ENOTFOUND when the name does not resolve. */
PB_EXTERN PB_WUR int pb_phone_resolve(const char *given, char *out, size_t cap);

/* Logs the phone into the account service at service_addr (ADDR:PORT or
 * HOST:PORT, see pb_phone_resolve) whose X25519 key service_key is pinned (base64url, as
 * peerback-imd prints it), and stores the account and the device
 * certificate in the home. name: this device's name (1-64 bytes of UTF-8).
 * The password is used during the call only. PB_EURI_BASE64/PB_EURI_KEYLEN
 * for a bad key, PB_EACCT_LOGIN for a wrong password, -errno when the
 * service does not answer. */
PB_EXTERN PB_WUR int pb_phone_login(pb_phone_t *phone, const char *service_addr, const char *service_key,
				    const char *account, const char *password, const char *name);
/* The account this phone is logged into: PB_EACCT_NOT_LOGGED_IN when none. */
PB_EXTERN PB_WUR int pb_phone_account(pb_phone_t *phone, pb_account_info_t *out);

/* --- Pairing and remembered hosts ---------------------------------------------- */

#define PB_HOST_ADDRS_MAX 8

typedef struct pb_host_info_s {
	char key[64];          /* the host's static key, base64url: what names it */
	char device[33];       /* the host's device id, hex */
	char account[129];
	char name[65];         /* the host's name, may be "" */
	char addrs[PB_HOST_ADDRS_MAX][96]; /* its known addresses, ADDR:PORT */
	size_t naddrs;
	uint64_t paired_at;    /* unix seconds */
} pb_host_info_t;

/* Pairs with the host advertised by uri (the text of its QR code): asks the
 * account service for a connect ticket, runs the pairing handshake and the
 * account challenge/response, and remembers the host. Nothing is written on
 * failure. host (may be NULL) receives the host. timeout_ms: 0 for 10 s. */
PB_EXTERN PB_WUR int pb_phone_pair(pb_phone_t *phone, const char *uri, int timeout_ms, pb_host_info_t *host);
/* The remembered hosts, most recently paired first. *out is malloc'd (free
 * it with free()); *n the count, 0 when none. */
PB_EXTERN PB_WUR int pb_phone_hosts(pb_phone_t *phone, pb_host_info_t **out, size_t *n);
/* Forgets a remembered host (name or key prefix naming one host):
 * PB_ENOTFOUND, or PB_EEXISTS when which names several. The host keeps the
 * backups; revoking the pairing is the host's business. */
PB_EXTERN PB_WUR int pb_phone_forget(pb_phone_t *phone, const char *which);

typedef struct pb_ping_result_s {
	pb_host_info_t host;   /* the host that answered */
	double connect_ms;     /* the authenticated session, opened */
	double rtt_ms;         /* one request's round trip */
	int instructions;      /* instructions carried out before the ping */
} pb_ping_result_t;

/* Opens an authenticated session with a remembered host (opts->host, NULL:
 * the latest; opts->timeout_ms, 0: 15 s), carries out the instructions the
 * host queued for this phone (a PB_EVENT_INSTRUCTION each), measures a round
 * trip and closes the session. PB_EACCT_NOT_PAIRED when no host is paired. */
PB_EXTERN PB_WUR int pb_phone_ping(pb_phone_t *phone, const pb_op_opts_t *opts, pb_ping_result_t *res);
/* Carries out the host's pending instructions only; returns how many were
 * handled (>= 0) or an error. */
PB_EXTERN PB_WUR int pb_phone_instructions(pb_phone_t *phone, const pb_op_opts_t *opts);

/* --- Recovery passphrase ------------------------------------------------------- */

/* 0 when passphrase opens this phone's wrapped master key,
 * PB_ESTORE_PASSPHRASE when not, PB_ENOTFOUND when the phone keeps no key
 * (its first backup sets one) or no wrapped copy to check against. */
PB_EXTERN PB_WUR int pb_phone_check_passphrase(pb_phone_t *phone, const char *passphrase);
/* True when the phone holds its master key (no passphrase needed). */
PB_EXTERN bool pb_phone_has_master_key(pb_phone_t *phone);

typedef struct pb_passphrase_opts_s {
	const char *current;   /* the current recovery passphrase (checked first) */
	const char *next;      /* the new one (pb_passphrase_check) */
	bool weak_kdf;         /* tests only: cheap Argon2id limits */
	int timeout_ms;        /* per host; 0: 30 s */
	pb_event_cb on_event;  /* PB_EVENT_PROGRESS per host (phase "passphrase", message: its label) */
	void *event_arg;
} pb_passphrase_opts_t;

typedef struct pb_passphrase_result_s {
	size_t hosts;          /* hosts that hold the new wrap */
	char failed[160];      /* on failure at a host: its label ("name (address)") */
	bool rollback_failed;  /* a host kept the NEW wrap although the phone keeps the old one */
} pb_passphrase_result_t;

/* Wraps the master key with a new recovery passphrase and gives the new wrap
 * to every paired host, then keeps it on the phone. All or nothing: when a
 * host does not take it, the hosts that did get the old wrap back and the
 * phone keeps the old one (res->failed names the host). PB_ENOKEY when the
 * phone holds no master key, PB_ESTORE_PASSPHRASE for a wrong current one,
 * PB_ESTORE_WEAKPASS for a weak new one. */
PB_EXTERN PB_WUR int pb_phone_change_passphrase(pb_phone_t *phone, const pb_passphrase_opts_t *opts,
						pb_passphrase_result_t *res);

/* --- NFC ------------------------------------------------------------------------ */

#define PB_NFC_TXN_TTL_DEFAULT 30u /* seconds */
#define PB_NFC_TXN_TTL_MAX 600u
#define PB_NFC_TIMEOUT_DEFAULT_MS 1500 /* a transaction cannot wait long */
#define PB_NFC_TIMEOUT_MAX_MS 60000

/* Marks an NFC transaction in progress for ttl_s seconds (1 to
 * PB_NFC_TXN_TTL_MAX): a phone app calls it when its NFC stack starts one
 * (a reader selected an applet). The fallback to a host works only inside
 * a transaction. */
PB_EXTERN PB_WUR int pb_phone_nfc_begin(pb_phone_t *phone, unsigned ttl_s);
/* Ends it; 0 also when none was in progress. */
PB_EXTERN PB_WUR int pb_phone_nfc_end(pb_phone_t *phone);
/* 0 when a transaction is in progress (*expires, may be NULL, gets its end
 * in unix seconds), PB_ENFC_NO_TXN when none is. */
PB_EXTERN PB_WUR int pb_phone_nfc_status(pb_phone_t *phone, uint64_t *expires);

typedef struct pb_nfc_opts_s {
	bool transaction;      /* the caller knows a transaction is in progress */
	bool reinstall;        /* write a credential got from the host back locally */
	int timeout_ms;        /* fallback deadline; 0: PB_NFC_TIMEOUT_DEFAULT_MS */
	/* The app's own transport for the fallback (NULL: every paired host,
	 * most recently paired first): fetches the item's plaintext bytes
	 * within timeout_ms into *data (malloc'd; the library wipes and frees
	 * it) and names the answering host in host (65 bytes). Returns 0,
	 * PB_ENFC_UNREACHABLE, PB_ENOTFOUND or PB_EACCT_NOT_PAIRED. Whatever
	 * it brings is checked like a copy from a host. */
	int (*fetch)(void *arg, const char *item_id, int timeout_ms, uint8_t **data, size_t *len, char *host);
	void *fetch_arg;
} pb_nfc_opts_t;

typedef struct pb_nfc_result_s {
	int local;             /* the local read: 0, PB_ENOTFOUND, PB_EDATA_EXPIRED, ... */
	bool transaction;      /* a transaction was in progress */
	bool from_host;        /* the credential came from a host */
	char host[65];         /* the host's name when from_host */
	double fetch_ms;       /* request to usable credential, when from_host */
	bool reinstalled;      /* written back to the device directory */
	int reinstall_error;   /* why the write-back failed (the use still succeeded) */
	pb_credential_t *cred; /* the usable credential; the caller's (pb_credential_free) */
} pb_nfc_result_t;

/* Uses credential id: reads it from the device directory; when that fails
 * during a transaction, fetches it from a paired host within the timeout,
 * checks it, and with reinstall writes it back. PB_ENFC_NO_TXN,
 * PB_ENFC_UNREACHABLE, PB_ENOTFOUND, PB_EACCT_NOT_PAIRED; res is filled in
 * also on failure (res->cred NULL then). */
PB_EXTERN PB_WUR int pb_phone_nfc_use(pb_phone_t *phone, const char *id, const pb_nfc_opts_t *opts,
				      pb_nfc_result_t *res);

/* --- MIFARE Classic sector access (M1) ------------------------------------------- */

/* The operation key of a sector: the first 6 bytes of BLAKE2b-256 over
 * "peerback/m1-op/1" || key1 || key2 || sector (one byte). */
PB_EXTERN void pb_m1_op_key(const uint8_t key1[6], const uint8_t key2[6], unsigned sector, uint8_t out[6]);
/* The block holding a sector's reference key (bytes 0-5): the one just
 * before the trailer. */
PB_EXTERN unsigned pb_m1_reference_block(unsigned sector);

/* A card of the device directory by id or by a prefix naming exactly one
 * (its UID): PB_ENOTFOUND, PB_EEXISTS when several, PB_EINVAL for a name
 * that is no card id. */
PB_EXTERN PB_WUR int pb_phone_m1_find(pb_phone_t *phone, const char *name, char *id, size_t cap);
/* The card (free() it) and, per sector, its cache copy's state against the
 * card: "none", "same" or "differs" (static strings). */
PB_EXTERN PB_WUR int pb_phone_m1_show(pb_phone_t *phone, const char *card_id, pb_mifare_card_t **card,
				      const char *cache[PB_MIFARE_MAX_SECTORS]);
/* The operation key of a sector of card_id from the two keys in
 * HOME/m1-keys/<card>.keys: PB_ENOKEY when missing, PB_EDATA_FORMAT when not
 * exactly two keys. */
PB_EXTERN PB_WUR int pb_phone_m1_opkey(pb_phone_t *phone, const char *card_id, unsigned sector, uint8_t out[6]);

typedef enum pb_m1_check {
	PB_M1_CHECK_NONE = 0,
	PB_M1_CHECK_KEYS,       /* the two keys or the reference key are missing */
	PB_M1_CHECK_PERMISSION, /* operation key differs from the reference key */
	PB_M1_CHECK_ACCESS,     /* the access bits forbid the write */
	PB_M1_CHECK_DATA,       /* the new sector would be invalid */
} pb_m1_check_t;

/* "keys", "permission", "access", "data", "none" (static). */
PB_EXTERN const char *pb_m1_check_name(pb_m1_check_t check);

typedef struct pb_m1_set_result_s {
	pb_m1_check_t failed;   /* the refusing check, or NONE */
	pb_mifare_key_t key;    /* the key whose access bits allowed the write */
	unsigned sector;
} pb_m1_set_result_t;

/* Writes 16 bytes into block of the card through its cache copy: applied
 * only when the operation key matches the sector's reference key and the
 * access bits allow it with key (PB_MIFARE_KEY_A/B, or -1: A, else B). A
 * refusal changes nothing: PB_EM1_PERMISSION, PB_EM1_ACCESS, PB_ENOKEY,
 * PB_EDATA_*, res->failed says which check; PB_EINVAL for a block outside
 * the card, PB_ENOTFOUND for a sector that was not read. */
PB_EXTERN PB_WUR int pb_phone_m1_set(pb_phone_t *phone, const char *card_id, unsigned block, const uint8_t data[16],
				     int key, pb_m1_set_result_t *res);

/* --- The automatic backup agent ------------------------------------------------- */

typedef enum pb_net_type {
	PB_NET_NONE = 0,
	PB_NET_WIFI = 1,
	PB_NET_ETHERNET = 2,
	PB_NET_CELLULAR = 3,
} pb_net_type_t;

/* The type of the interface carrying the default route on Linux (its name
 * to iface, may be NULL). */
PB_EXTERN pb_net_type_t pb_net_current(char *iface, size_t cap);
PB_EXTERN const char *pb_net_name(pb_net_type_t t); /* "wifi", ... (static) */
PB_EXTERN PB_WUR int pb_net_parse(const char *word, pb_net_type_t *out);

/* The active SIM identity of the device directory: ICCID and MSISDN (may be
 * empty) of the first SIM profile; PB_ENOTFOUND when there is none. */
PB_EXTERN PB_WUR int pb_phone_sim_identity(pb_phone_t *phone, char *iccid, size_t icap, char *msisdn, size_t mcap);

typedef struct pb_agent_opts_s {
	const char *host;        /* one host (name or key); NULL: every paired host */
	const char *passphrase;  /* for a first backup */
	bool weak_kdf;           /* tests only: cheap Argon2id limits for a first wrap */
	unsigned allowed;        /* 1u << pb_net_type_t; 0: wifi and ethernet */
	unsigned interval;       /* seconds between checks; 0: 300 */
	bool once;               /* one pass, then return its result */
	/* A phone app supplies the network type here (NULL: read Linux's). */
	pb_net_type_t (*network)(void *arg);
	void *network_arg;
	/* One JSON object per event ("check", "unchanged", "skipped", "backup",
	 * "sim-changed", "error"); json is borrowed. Called on the agent's
	 * thread. */
	void (*event)(void *arg, const char *json);
	void *event_arg;
	/* Asked at least once a second: non-zero stops the agent (after the
	 * pass in progress). NULL: runs until once ends it. */
	int (*stop)(void *arg);
	void *stop_arg;
} pb_agent_opts_t;

/* Checks the data every interval and backs up what changed, on allowed
 * networks only; runs until opts->stop says so (0), or one pass with once
 * (its result). Installs no signal handler: the caller decides what stops
 * it. Blocks; run it on a thread of its own. */
PB_EXTERN PB_WUR int pb_agent_run(pb_phone_t *phone, const pb_agent_opts_t *opts);

#ifdef __cplusplus
}
#endif
#endif
