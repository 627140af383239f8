/* NFC behaviours of the phone: the NFC transaction state, using a
 * credential with the paired host as fallback, and MIFARE Classic (M1)
 * sector access through a cache copy and two permission checks. Private to
 * the library and its programs; users' view in docs/NFC.md.
 *
 * State under HOME:
 *   nfc-transaction               the transaction in progress (JSON, expiry)
 *   m1-keys/<card>.keys           the two keys an operation key derives from
 *   m1-cache/<card>/sector-N.bin  the cache copy holding the sector's backup
 *   m1-cache/<card>/sector-N.pending  a change waiting for permission */
#ifndef PB_AGENT_NFC_H
#define PB_AGENT_NFC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerback/error.h"
#include "peerback/nfc.h"
#include "peerback/phone.h"

/* --- NFC transaction ------------------------------------------------------ */


/* Marks a transaction in progress until now + ttl_s (1..PB_NFC_TXN_TTL_MAX):
 * HOME/nfc-transaction, written atomically. A phone app calls this when its
 * NFC stack starts a transaction (a reader selected an applet). */
__attribute__((warn_unused_result)) int pb__nfc_txn_begin(const char *home, unsigned ttl_s, uint64_t now);
/* Ends the transaction; 0 also when none was in progress. */
__attribute__((warn_unused_result)) int pb__nfc_txn_end(const char *home);
/* 0 when a transaction is in progress at now (*expires, may be NULL, gets
 * its end), PB_ENFC_NO_TXN when none is, or has expired, or the state file
 * is unreadable or malformed (a broken file never enables the fallback). */
__attribute__((warn_unused_result)) int pb__nfc_txn_get(const char *home, uint64_t now, uint64_t *expires);

/* --- Using a credential --------------------------------------------------- */


/* Fetches one backed-up item by id (e.g. "credentials/card-1.json") from a
 * paired host within timeout_ms. On success *data (malloc'd, caller wipes
 * and frees) holds the item's plaintext bytes and host (may be NULL, 65
 * bytes) the answering host's name. Errors: PB_ENFC_UNREACHABLE when no
 * paired host answered in time, PB_ENOTFOUND when the hosts that answered
 * hold no such item, PB_EACCT_NOT_PAIRED when there is no paired host. */
typedef int (*pb__nfc_fetch_fn)(void *arg, const char *home, const char *item_id, int timeout_ms, uint8_t **data,
			       size_t *len, char *host);

/* The default fetch: every remembered host, most recently paired first,
 * until one holds the item; the timeout covers all of them. */
__attribute__((warn_unused_result)) int pb__nfc_fetch_paired(void *arg, const char *home, const char *item_id,
							     int timeout_ms, uint8_t **data, size_t *len, char *host);

typedef struct pb__nfc_use_opts_s {
	const char *home;       /* state directory */
	const char *device_dir; /* the phone's device directory */
	bool transaction;       /* the caller knows a transaction is in progress */
	bool reinstall;         /* write a credential got from the host back locally */
	int timeout_ms;         /* fallback deadline; 0 = PB_NFC_TIMEOUT_DEFAULT_MS */
	uint64_t now;           /* unix seconds; 0 = the clock */
	pb__nfc_fetch_fn fetch;  /* NULL = pb__nfc_fetch_paired */
	void *fetch_arg;
} pb__nfc_use_opts_t;

/* The result is the public one (peerback/phone.h). */
typedef pb_nfc_result_t pb__nfc_use_result_t;

/* Plays an NFC transaction's use of credential id: reads it locally; when
 * that fails and a transaction is in progress (opts->transaction or
 * pb__nfc_txn_get), fetches it from a paired host, checks it (id, checksum,
 * expiry) and, with reinstall, writes it back. Returns 0 with res->cred set;
 * PB_ENFC_NO_TXN when the local read failed outside a transaction
 * (res->local says why); PB_ENFC_UNREACHABLE, PB_ENOTFOUND,
 * PB_EACCT_NOT_PAIRED from the fetch; PB_EDATA_* when the host's copy is not
 * usable either; PB_EINVAL for an invalid id. res is always initialized;
 * free res->cred. */
__attribute__((warn_unused_result)) int pb__nfc_use(const pb__nfc_use_opts_t *opts, const char *id,
						    pb__nfc_use_result_t *res);

/* --- M1 sector access ----------------------------------------------------- */

/* pb_m1_op_key and pb_m1_reference_block: peerback/phone.h. */

/* Finds a card of the device directory by id or by a prefix of it (the UID)
 * that names exactly one card. PB_ENOTFOUND, or PB_EEXISTS when the prefix
 * names several. */
__attribute__((warn_unused_result)) int pb__m1_find_card(const char *device_dir, const char *name, char *id,
							 size_t cap);

/* Reads HOME/m1-keys/<card>.keys: exactly two keys. PB_ENOKEY when the file
 * is missing, PB_EDATA_FORMAT when it does not hold exactly two keys. */
__attribute__((warn_unused_result)) int pb__m1_load_keys(const char *home, const char *card_id, uint8_t key1[6],
							 uint8_t key2[6]);

/* pb_m1_check_t, pb_m1_check_name and pb_m1_set_result_t: peerback/phone.h. */

/* Writes 16 bytes into block of the card: the changed sector is staged in
 * the cache copy (sector-N.pending), then both checks run (operation key,
 * then access bits for key, or for A then B when key < 0); only when both
 * pass is the card store (mifare/<card>.mfd and its .mct) rewritten and the
 * cache copy replaced by the new sector. A refusal removes the staged change
 * and leaves the card store and the cache copy as they were. Returns 0,
 * PB_EM1_PERMISSION, PB_EM1_ACCESS, PB_ENOKEY, PB_EDATA_* (res->failed says
 * which check), PB_EINVAL for a block outside the card, PB_ENOTFOUND for a
 * sector that was not read. */
__attribute__((warn_unused_result)) int pb__m1_set(const char *home, const char *device_dir, const char *card_id,
						   unsigned block, const uint8_t data[16], int key,
						   pb_m1_set_result_t *res);

/* Paths of a sector's cache copy and staged change under home. */
__attribute__((warn_unused_result)) int pb__m1_cache_path(const char *home, const char *card_id, unsigned sector,
							  bool pending, char *out, size_t cap);

#endif
