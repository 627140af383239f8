/* Internal interface of the data kinds (agent/kinds/): importers, exporters
 * and the generator of each kind, called by the CLI and the tests.
 *
 * Device directory layout (docs/DATA.md):
 *   credentials/<id>.json        one secure-element credential (peerback JSON)
 *   mifare/<id>.mfd              one MIFARE Classic dump, keys in trailers
 *   sim/profiles.csv             pySim-prog CSV, one profile a row
 *   chats/<chat-id>/result.json  Telegram single-chat export, canonical form
 *   chats/<chat-id>/<file>       attachments, relative paths as in the export
 *   contacts/contacts.vcf        vCard 4.0 book, groups as KIND:group cards
 *
 * Importers read foreign files, validate them, and write the items into the
 * device directory atomically: either every file is imported or nothing is
 * written. errbuf receives a sentence naming the file and line or offset of
 * the first problem. Exporters write the device's items of one kind into
 * out_dir in the named format. Generators write realistic, deterministic
 * items from a seed. */
#ifndef PB_KINDS_INTERNAL_H
#define PB_KINDS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "peerback/kinds.h"

/* pb_gen_size_t: peerback/kinds.h. */

struct stat;
/* Hears of each file of a device scan before it is read: a positive return
 * skips the file (the caller knows it by its stamp), a negative one stops
 * the walk with that error, 0 reads it as usual. */
typedef int (*pb__scan_file_cb)(void *arg, const char *relpath, const struct stat *st);
/* An item's keyed content hash, made on the thread that made the item (a
 * large chat's parsing thread) rather than on the walk's. fn must be safe
 * to call from another thread. key, when set, also makes the item's id key
 * there (the backup's manifest index key of the id). */
typedef struct pb__item_hasher_s {
	void (*fn)(void *arg, const uint8_t *data, size_t len, uint8_t out[32]);
	void *arg;
	uint64_t (*key)(void *arg, const char *id, size_t len);
	/* Optional, the same for n items at once (several in the lanes of
	 * vector registers): fn of data[j] (len[j] bytes) to out[j], key of
	 * id[j] (idlen[j] bytes) to keys[j]. A large chat's batches of
	 * messages (agent/kinds/item-pipe.c) go through these. */
	void (*many)(void *arg, const uint8_t *const *data, const size_t *len, uint8_t *const *out, size_t n);
	void (*keys_many)(void *arg, const char *const *id, const size_t *idlen, uint64_t *keys, size_t n);
	/* Optional: told of the next file the walk will hand over as an
	 * item (it->file; abs: its path, rel: relative to the device), past
	 * the files it parses itself (chats) up to 16 files on, so that it
	 * may be read ahead: before a file is handed over as an item, or
	 * (now) before a file is parsed into items (a chat), which the walk
	 * reads itself meanwhile. */
	void (*ahead)(void *arg, const char *abs, const char *rel, bool now);
	/* Optional: a digest of an item's id and content hash (the backup's
	 * record of which messages a chat held), made beside the batched
	 * hashes, off the walk's thread. */
	uint64_t (*digest)(const char *id, const uint8_t hash[32]);
} pb__item_hasher_t;
/* Every item pb__device_scan_files and pb__telegram_split_fd hand to
 * their callback is the it of one of these: hashed when a hasher made
 * hash from its bytes, keyed when its key made key from its id, digested
 * when its digest made digest from both. */
typedef struct pb__item_x_s {
	pb_item_t it;
	bool hashed, keyed, digested;
	uint8_t hash[32];
	uint64_t key, digest;
} pb__item_x_t;
/* pb_device_scan_skip with fcb asked first about each file (arg goes to
 * fcb, cb and bad). */
int pb__device_scan_files(const char *dir, unsigned kind_mask, pb__scan_file_cb fcb, const pb__item_hasher_t *h,
			  pb_item_cb cb, void *arg, pb_scan_bad_cb bad, char *bad_path, size_t bad_path_cap);

/* A deterministic random stream for the generators (ChaCha20 keyed by the
 * seed and a per-kind label). */
typedef struct pb_gen_rng_s {
	uint8_t key[32];
	uint64_t counter;
	uint8_t block[64];
	size_t used;
} pb_gen_rng_t;
void pb__gen_rng_init(pb_gen_rng_t *rng, uint64_t seed, const char *label);
void pb__gen_rng_bytes(pb_gen_rng_t *rng, void *out, size_t len);
uint32_t pb__gen_rng_below(pb_gen_rng_t *rng, uint32_t bound);

/* NFC kinds: credentials, MIFARE, SIM (agent/kinds/credential.c, mifare*.c,
 * sim.c). */
int pb__import_credentials(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap);
int pb__export_credentials(const char *device_dir, const char *format, const char *out_dir, char *errbuf, size_t errcap);
int pb__gen_credentials(const char *device_dir, uint64_t seed, pb_gen_size_t size);
int pb__import_mifare(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap);
int pb__export_mifare(const char *device_dir, const char *format, const char *out_dir, char *errbuf, size_t errcap);
int pb__gen_mifare(const char *device_dir, uint64_t seed, pb_gen_size_t size);
int pb__import_sim(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap);
int pb__export_sim(const char *device_dir, const char *format, const char *out_dir, char *errbuf, size_t errcap);
int pb__gen_sim(const char *device_dir, uint64_t seed, pb_gen_size_t size);

/* Chat and contacts (agent/kinds/chat*.c, contacts*.c). */
int pb__import_chat(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap);
/* As pb__import_chat; date_format settles WhatsApp's day/month order. */
int pb__import_chat_dated(const char *device_dir, const char *const *files, size_t n, const char *date_format,
			  char *errbuf, size_t errcap);
int pb__export_chat(const char *device_dir, const char *format, const char *out_dir, char *errbuf, size_t errcap);
int pb__gen_chat(const char *device_dir, uint64_t seed, pb_gen_size_t size);
int pb__import_contacts(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap);
int pb__export_contacts(const char *device_dir, const char *format, const char *out_dir, char *errbuf, size_t errcap);
int pb__gen_contacts(const char *device_dir, uint64_t seed, pb_gen_size_t size);

/* Codecs of multi-item files, registered in agent/kinds/codec.c. */
extern const pb_codec_t pb__codec_sim_csv;
extern const pb_codec_t pb__codec_telegram;
/* pb__codec_telegram's split reading the file from fd a block at a time. */
int pb__telegram_split_fd(const char *relpath, int fd, const pb__item_hasher_t *h, pb_item_cb cb, void *arg);
/* A chat file of at least pb__tg_pipe_min bytes is parsed on a thread of
 * its own, its messages handed over in batches of about pb__tg_pipe_batch
 * bytes (0: 256 KiB). Tests lower both. */
extern size_t pb__tg_pipe_min;
extern size_t pb__tg_pipe_batch;
/* pb__codec_telegram's join a piece at a time, appended to out: the head
 * from the frame item, each message (first: the first after the head),
 * the tail. A file streamed this way is the one join gives. */
int pb__telegram_join_head(const uint8_t *frame_item, size_t len, pb_buf_t *out);
int pb__telegram_join_message(const uint8_t *msg, size_t len, bool first, pb_buf_t *out);
int pb__telegram_join_tail(pb_buf_t *out);
/* pb__codec_telegram's split pulled an item at a time from fd (not
 * owned): each item handed by next stays valid until the following call;
 * *end at the end of the file. Memory: a block and the items it gave. */
typedef struct pb__tg_reader_s pb__tg_reader_t;
int pb__telegram_reader_open(const char *relpath, int fd, pb__tg_reader_t **out);
int pb__telegram_reader_next(pb__tg_reader_t *r, pb_item_t *item, bool *end);
void pb__telegram_reader_free(pb__tg_reader_t *r);
/* The writer's caller gives up the files it names in items (pb_item_t.file)
 * from now on: each is moved into place when it can be, not copied. */
void pb__device_writer_take_files(pb_device_writer_t *w);
/* The writer's folder is new and hidden, renamed into place by its caller
 * after the commit (a staging folder): files are written under their own
 * names and synced, no temporary name, no rename, no folder synced; the
 * caller's rename and the sync of its parent make the restore durable. */
void pb__device_writer_fresh(pb_device_writer_t *w);
/* The bytes waiting to be written on the system (Dirty and Writeback of
 * /proc/meminfo) from which a commit of many files syncs each as it is
 * staged rather than all with one syncfs at its end (agent/kinds/
 * device-sync.c; default 256 MiB; 0: always, UINT64_MAX: never). */
void pb__device_writer_sync_dirty_min(pb_device_writer_t *w, uint64_t bytes);
extern const pb_codec_t pb__codec_vcard;

#endif
