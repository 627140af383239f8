/* The device writer's state, shared by device-writer.c (adding, staging,
 * committing), device-stream.c (a chat streamed into its staged file, or
 * merged with the file there as both stream) and device-files.c (the
 * target's folders and the staged files' names). */
#ifndef PB_AGENT_KINDS_DEVICE_INT_H
#define PB_AGENT_KINDS_DEVICE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/kinds/internal.h"
#include "agent/util/pathidx.h"

#define MAX_PATH 4096
/* Bytes of a temporary name, with its terminator. */
#define TMP_NAME 256
/* pb__dw_merge_stream: nothing written, the merge is done in memory. */
#define MJ_AGAIN 1

typedef struct witem_s {
	char *id;
	char *after; /* the item before it in the backup's file, or NULL */
	uint64_t seq;
	size_t order; /* insertion order, to keep the sort stable */
	/* Its place in a merged file: after existing item major - 1 (0: before
	 * all, n + 1: after all), minor-th of the new items placed there. */
	int64_t major;
	uint64_t minor;
	uint8_t *data;
	size_t len;
} witem_t;

typedef struct wentry_s {
	char *path;              /* relative, validated */
	const pb_codec_t *codec; /* NULL for a whole-file item */
	/* Whole-file item: bytes in memory, or a source file to copy. */
	uint8_t *data;
	size_t len;
	char *src;
	/* Multi-item file: the items to merge into it, and a hash table of
	 * their ids (index + 1, 0 empty) so that adding a million messages
	 * does not compare each with all before it. */
	witem_t *items;
	size_t n, cap;
	uint32_t *slots;
	size_t nslots; /* a power of two, or 0 */
	/* A chat streamed into its staged file as its items come, when no
	 * file is there to merge with and they come in the file's order
	 * (frame, then messages by ascending id): memory holds STREAM_BUF
	 * bytes of it, not the chat. sfd: the staged file, spfd: its folder. */
	bool streaming;
	int sfd, spfd;
	char *stmp;
	pb_buf_t sbuf;
	int64_t skey; /* the last message's key */
	uint64_t sn;  /* messages written */
	/* The file there, when the stream merges with it (merge_open): its
	 * messages read one at a time (mr over mfd), the next one not yet
	 * written (mpend, its key mkey) when mhas. */
	pb__tg_reader_t *mr;
	int mfd;
	pb_item_t mpend;
	int64_t mkey;
	bool mhas;
} wentry_t;

/* Bytes of a streamed chat gathered before one write. */
#define STREAM_BUF (1u << 20)
/* Bytes of whole files held before they are staged (a restore of many
 * small files holds this much, not the files). */
#define HELD_MAX (8u << 20)

/* A file written to a temporary name beside its target, waiting to be
 * renamed over it at commit. */
typedef struct wstaged_s {
	char *path; /* relative target */
	char *tmp;  /* temporary name in the target's folder */
	bool queued; /* handed to the syncing threads (agent/kinds/device-sync.c) */
} wstaged_t;

/* Staged files from which a commit's files are synced side by side (and
 * from the next one on, as they are staged: device-sync.c). */
#define PB__DW_SYNC_SPLIT 64

typedef struct pb__dw_syncq_s pb__dw_syncq_t;

typedef struct strlist_s {
	char **v;
	size_t n, cap;
} strlist_t;

/* Every folder below dir is opened one component at a time without
 * following a symbolic link (openat, O_NOFOLLOW): a link in the target,
 * made by whoever, is refused with PB_EDATA_LINK and never written
 * through. Staged files and the folders the writer made are removed when
 * the writer is freed uncommitted. */
struct pb_device_writer_s {
	char *dir;
	int root; /* dir, opened at the first stage; -1 before */
	wentry_t *e;
	size_t n, cap;
	pb__pathidx_t eidx; /* e's paths */
	wstaged_t *s;
	size_t ns, caps;
	pb__pathidx_t sidx; /* s's paths: the latest stage of each */
	strlist_t made;    /* folders made, relative, parents first */
	strlist_t written; /* files renamed into place by the last commit */
	bool take_files;   /* an item's file may be moved into place, not copied */
	bool fresh;        /* dir is a staging folder (pb__device_writer_fresh) */
	size_t held;       /* bytes of whole files held in entries */
	pb__dw_syncq_t *syncq; /* the staged files' syncing threads, or NULL */
	bool sync_at_end;      /* this commit's files synced together at its end */
	uint64_t sync_dirty_min; /* pb__device_writer_sync_dirty_min */
	char link[MAX_PATH];
};

/* Files and folders of the target (agent/kinds/device-files.c). */
PB_WUR int pb__dw_write_all(int fd, const uint8_t *p, size_t len);
PB_WUR int pb__dw_copy_file(const char *src, int fd);
PB_WUR int pb__dw_strlist_add(strlist_t *l, const char *s, size_t len);
void pb__dw_strlist_clear(strlist_t *l);
PB_WUR int pb__dw_open_parent(pb_device_writer_t *w, const char *rel, bool create, int *out);
wstaged_t *pb__dw_find_staged(pb_device_writer_t *w, const char *path);
PB_WUR int pb__dw_stage_name(const pb_device_writer_t *w, const char *base, bool again, char *tmp);
PB_WUR int pb__dw_add_staged(pb_device_writer_t *w, const char *path, const char *tmp);

/* Staged files synced while the writer goes on (agent/kinds/device-sync.c):
 * s, just staged, is handed to the syncing threads once the writer holds
 * PB__DW_SYNC_SPLIT staged files and the system has w->sync_dirty_min
 * bytes or more waiting to be written (they then start with every file staged before;
 * else the commit syncs them); s->queued says whether it was. wait: every queued file synced
 * and the threads ended; the first fsync's error; a file they did not
 * find under its queued name is queued no more (the commit syncs it).
 * drop: the threads ended, nothing more synced. */
void pb__dw_sync_later(pb_device_writer_t *w, wstaged_t *s);
PB_WUR int pb__dw_sync_wait(pb_device_writer_t *w);
void pb__dw_sync_drop(pb_device_writer_t *w);

/* A chat streamed (agent/kinds/device-stream.c). */
bool pb__dw_chat_key(const char *id, int64_t *key);
PB_WUR int pb__dw_stream_add(pb_device_writer_t *w, wentry_t *e, const pb_item_t *item, bool *taken);
PB_WUR int pb__dw_stream_end(pb_device_writer_t *w, wentry_t *e);
void pb__dw_stream_drop(wentry_t *e);
PB_WUR int pb__dw_merge_stream(wentry_t *e, int pfd, const char *src, const char *tmp);

#endif
