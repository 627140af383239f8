/* Events: how the library tells its embedder what a long operation or a
 * running host is doing, instead of printing.
 *
 * One callback type serves the phone's operations (backup, restore, verify,
 * NFC fallback, instructions) and the host. Every pointer in an event is
 * borrowed: valid only during the call. A phone operation calls its callback
 * on the thread that called the operation; a host or an account service
 * calls it on its loop's thread. */
#ifndef PEERBACK_EVENT_H
#define PEERBACK_EVENT_H

#include "peerback/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pb_event_type {
	/* Phone operations. */
	PB_EVENT_PROGRESS = 1, /* phase, items_done/total, bytes_done/total, bytes_sent */
	PB_EVENT_WARNING,      /* an item or file skipped or not restored: path, id, line, error, message */
	PB_EVENT_PLAN,         /* dry run: id, path, change ("added", "replaced", "unchanged") */
	PB_EVENT_INSTRUCTION,  /* a remote instruction carried out: op, error, message; on a host,
	                       * a phone's answer: device, instruction, error */
	PB_EVENT_DONE,         /* the operation ended: error (0: success), snapshot */
	/* Host. */
	PB_EVENT_LISTENING,    /* address */
	PB_EVENT_ADVERTISE,    /* uri, expires (unix seconds): a new pairing code */
	PB_EVENT_CONNECTED,    /* address: a connection was accepted */
	PB_EVENT_AUTHENTICATED,/* address, device, account, device_name (the word "connected") */
	PB_EVENT_PAIRED,       /* address, device, account, device_name: a new device paired */
	PB_EVENT_REFUSED,      /* address, error, message: authentication failed */
	PB_EVENT_DISCONNECTED, /* address, device */
	PB_EVENT_DEVICE_PROGRESS, /* device, phase ("backup"), bytes_done, items_done: chunk bytes
	                       * and chunks received on this connection, at each commit */
	PB_EVENT_SNAPSHOT,     /* device, account, snapshot, chunks: a snapshot was committed */
	PB_EVENT_ERROR,        /* error, message: something failed that the host survives
	                       * (address, device when it concerns a connection) */
	/* Account service (peerback/imd.h); it also sends LISTENING and DONE. */
	PB_EVENT_REQUEST,      /* name (the request's kind), address, error: a request answered */
} pb_event_type_t;

typedef struct pb_event_s {
	pb_event_type_t type;
	const char *name;      /* the type as a word: "progress", "advertise", ... (the --json "event") */
	const char *phase;     /* "scan", "backup", "restore", "verify", "fetch" */
	uint64_t items_done, items_total;
	uint64_t bytes_done, bytes_total;
	uint64_t bytes_sent;   /* ciphertext bytes sent to the host */
	uint64_t bytes_committed; /* of those, the ones the host acknowledged */
	uint64_t chunks_sent;
	uint64_t snapshot;
	const char *id;        /* item id */
	const char *path;      /* file, relative to the device directory */
	uint64_t line;         /* 1-based line in path, 0 when unknown */
	const char *change;    /* plan: "added", "replaced", "unchanged" */
	const char *op;        /* instruction: "delete-vsim", "copy-vsim" */
	const char *address;   /* host: the peer's or the listening address */
	const char *device;    /* host: the device id in hex */
	const char *account;   /* host: the device's account */
	const char *uri;       /* host: the pairing URI */
	int64_t expires;       /* host: when the pairing URI expires (unix seconds) */
	const char *const *addresses; /* host advertise: the addresses in the URI, */
	size_t naddresses;     /* naddresses of them */
	const char *device_name; /* host: the device's name */
	uint64_t chunks;       /* host snapshot: chunks the snapshot references */
	int64_t instruction;   /* host instruction: its number (op, error: the phone's answer) */
	int error;             /* a peerback error code, 0 for none */
	const char *message;   /* a sentence for the user, or NULL */
} pb_event_t;

/* Returns 0 to go on. A phone operation's callback returning non-zero
 * cancels the operation cleanly: it stops at the next safe point, leaves
 * nothing half-written, returns PB_ECANCELED, and the next run resumes. A
 * host ignores the return value. */
typedef int (*pb_event_cb)(void *arg, const pb_event_t *event);

/* The event as one line of JSON (no newline), as `peerback --json` prints
 * it: "event" (name, or the type's word when name is NULL), then the
 * fields the type carries and every text field that is set; "code" and
 * "error" (its sentence) when error is set. *out is malloc'd, the caller
 * frees it. */
PB_EXTERN PB_WUR int pb_event_json(const pb_event_t *event, char **out);

/* s with every byte that starts no valid UTF-8 sequence replaced by U+FFFD,
 * as pb_event_json writes text: names, ids and paths from a peer or a file
 * always show. *out is malloc'd, the caller frees it. */
PB_EXTERN PB_WUR int pb_text_utf8(const char *s, char **out);

#ifdef __cplusplus
}
#endif
#endif
