/* peerback data kinds: the item model, the device directory, and the codecs
 * that turn files in real interchange formats into backup items and back.
 *
 * An item is the unit of backup and of restore by id: one credential, one
 * MIFARE card, one SIM profile, one chat message, one attachment, one contact
 * or contact group. Items live in files of a device directory (layout in
 * docs/DATA.md). A file that holds many items (a chat's result.json, the SIM
 * CSV, the vCard book) has a codec that splits it into items and joins items
 * back into the identical bytes; any other file is one item whose bytes are
 * the file's bytes. */
#ifndef PEERBACK_KINDS_H
#define PEERBACK_KINDS_H

#include "peerback/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pb_kind {
	PB_KIND_CREDENTIAL = 1, /* secure-element verification credential */
	PB_KIND_MIFARE = 2,     /* MIFARE Classic card dump with keys */
	PB_KIND_SIM = 3,        /* virtual SIM profile */
	PB_KIND_CHAT = 4,       /* chat: conversation frame, messages, attachments */
	PB_KIND_CONTACTS = 5,   /* contacts and contact groups */
} pb_kind_t;

#define PB_KIND_ALL 0x3eu /* mask of every kind: 1u << kind */
#define PB_ITEM_ID_MAX 256 /* ids are at most 255 bytes */

/* "credentials", "mifare", "sim", "chat", "contacts" (the CLI's KIND words). */
PB_EXTERN const char *pb_kind_name(pb_kind_t kind);
/* Parses a KIND word; also accepts "credential", "chats", "contact". */
PB_EXTERN PB_WUR int pb_kind_parse(const char *word, pb_kind_t *out);

/* One item. Borrowed pointers: valid only during the callback that gets it. */
typedef struct pb_item_s {
	pb_kind_t kind;
	const char *id;      /* stable, unique in the device: "chat/42/msg/7" */
	const char *path;    /* file in the device directory, relative: "chats/42/result.json" */
	uint64_t seq;        /* position inside a multi-item file; 0 for whole files */
	const uint8_t *data; /* the item's bytes when in memory, else NULL ... */
	size_t len;
	const char *file;    /* ... and then an absolute path to read them from */
	uint64_t size;       /* byte size either way */
	uint64_t mtime_ns;   /* change hint: the file's modification time */
	/* Restore into a multi-item file: the id of the item before this one
	 * in the backup's file (NULL: it came first, or unknown). A new item
	 * goes after it, so a deleted item comes back in its place. */
	const char *after;
} pb_item_t;

/* Called once per item. A non-zero return stops the walk and is returned. */
typedef int (*pb_item_cb)(void *arg, const pb_item_t *item);

/* A growable byte buffer owned by its user; pb_buf_free wipes and frees. */
typedef struct pb_buf_s {
	uint8_t *data;
	size_t len, cap;
} pb_buf_t;
PB_EXTERN PB_WUR int pb_buf_append(pb_buf_t *b, const void *data, size_t len);
PB_EXTERN void pb_buf_free(pb_buf_t *b);

/* A codec for files that hold many items. */
typedef struct pb_codec_s {
	const char *name;
	pb_kind_t kind;
	/* True when this codec owns the device-directory file at relpath. */
	bool (*matches)(const char *relpath);
	/* Splits a file's bytes into items (data in memory, seq = position). */
	int (*split)(const char *relpath, const uint8_t *buf, size_t len, pb_item_cb cb, void *arg);
	/* Joins items (sorted by seq, data in memory) back into the file's bytes:
	 * join(split(f)) == f for every file peerback writes. Items restored into
	 * an existing file are merged with its items first: one with the id of
	 * an existing item replaces it in place, a new one goes after the item
	 * before it in the backup (pb_item_t.after), chat messages by id; the
	 * merged items are numbered again, so join never sees two of one seq. */
	int (*join)(const char *relpath, const pb_item_t *items, size_t n, pb_buf_t *out);
} pb_codec_t;

/* The codec that owns relpath, or NULL for a whole-file item. */
PB_EXTERN const pb_codec_t *pb_codec_for(const char *relpath);

/* --- Device directory (the default provider) ------------------------------- */

/* Walks a device directory and calls cb for every item of the kinds in
 * kind_mask (bit 1u << kind), in a stable order (by path, then seq). A file
 * that fails to parse or validate stops the walk with its error, and
 * bad_path (may be NULL) receives the file's relative path. */
PB_EXTERN PB_WUR int pb_device_scan(const char *dir, unsigned kind_mask, pb_item_cb cb, void *arg,
				    char *bad_path, size_t bad_path_cap);

/* pb_device_scan that goes on past a multi-item file it cannot read or
 * parse: bad hears of it (relative path, error, line when the codec knows
 * it (1-based, else 0), and a sentence), and the walk skips the file when
 * bad returns 0, or stops with bad's return otherwise. A file whose split
 * failed midway may already have given some items to cb. */
typedef int (*pb_scan_bad_cb)(void *arg, const char *relpath, int err, uint64_t line, const char *why);
PB_EXTERN PB_WUR int pb_device_scan_skip(const char *dir, unsigned kind_mask, pb_item_cb cb, void *arg,
					 pb_scan_bad_cb bad, void *bad_arg, char *bad_path, size_t bad_path_cap);

/* Restore into a device directory: items are added in any order; commit
 * writes every touched file atomically (temporary file, fsync, rename),
 * merging with items already in a multi-item file (by id: a contact by its
 * UID, a message by its message id; never a duplicate). Large whole-file items
 * may be added from a file (item->file) and are copied, not loaded. */
typedef struct pb_device_writer_s pb_device_writer_t;
PB_EXTERN PB_WUR int pb_device_writer_open(const char *dir, pb_device_writer_t **out);
PB_EXTERN PB_WUR int pb_device_writer_add(pb_device_writer_t *w, const pb_item_t *item);
PB_EXTERN PB_WUR int pb_device_writer_commit(pb_device_writer_t *w);
/* Writes what was added so far to temporary files beside their targets and
 * frees its memory; the next commit renames these too. Nothing replaces a
 * target before commit. */
PB_EXTERN PB_WUR int pb_device_writer_stage(pb_device_writer_t *w);
/* After commit: the files it renamed into place (relative). A commit that
 * failed with none written left the directory as it was. */
PB_EXTERN size_t pb_device_writer_written(const pb_device_writer_t *w, const char *const **paths);
/* The relative path of the symbolic link that stopped the writer
 * (PB_EDATA_LINK): no folder or file is written through a link. "" if none. */
PB_EXTERN const char *pb_device_writer_link(const pb_device_writer_t *w);
/* Frees the writer; uncommitted items are dropped, temporary files removed. */
PB_EXTERN void pb_device_writer_free(pb_device_writer_t *w);

/* --- Import, export and generated test data ------------------------------- */

/* Importers read foreign files (files[0..n)), validate them and write the
 * items into the device directory atomically: every file is imported or
 * nothing is written. date_format (NULL: guessed) settles the day/month
 * order of WhatsApp chats ("dd/mm", "mm/dd"; other kinds ignore it).
 * errbuf (may be NULL) receives a sentence naming the file and the line or
 * offset of the first problem. */
PB_EXTERN PB_WUR int pb_kind_import(pb_kind_t kind, const char *device_dir, const char *const *files, size_t n,
				    const char *date_format, char *errbuf, size_t errcap);
/* Writes the device directory's items of kind into out_dir in format
 * (NULL: the kind's default; pb_kind_formats lists them). */
PB_EXTERN PB_WUR int pb_kind_export(pb_kind_t kind, const char *device_dir, const char *format, const char *out_dir,
				    char *errbuf, size_t errcap);
/* The export formats of kind, space separated, the default first; NULL for
 * an unknown kind. Static string. */
PB_EXTERN const char *pb_kind_formats(pb_kind_t kind);

/* Sizes of generated data: small (quick tests), standard (about 1 GiB in
 * all kinds), large. */
typedef enum pb_gen_size { PB_GEN_SMALL = 0, PB_GEN_STANDARD = 1, PB_GEN_LARGE = 2 } pb_gen_size_t;
/* Writes realistic, deterministic items of kind from seed into the device
 * directory. */
PB_EXTERN PB_WUR int pb_kind_gen(pb_kind_t kind, const char *device_dir, uint64_t seed, pb_gen_size_t size);

#ifdef __cplusplus
}
#endif
#endif
