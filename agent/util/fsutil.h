/* File helpers shared by the agent: atomic durable writes, capped reads,
 * directory creation, base64url. Private to the library. */
#ifndef PB_AGENT_FSUTIL_H
#define PB_AGENT_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Temporary files of atomic writes start with this; walks skip them. */
#define PB_TMP_PREFIX ".pbtmp-"

/* Writes data to path atomically: a temporary file in the same directory,
 * fsync, rename over path, fsync of the directory. mode as for open(2).
 * Nothing is left behind on failure. */
__attribute__((warn_unused_result)) int pb__write_file_atomic(const char *path, const void *data, size_t len,
							      unsigned mode);

/* Reads a whole file of at most cap bytes into a malloc'd buffer (NUL
 * appended, not counted). PB_ETOOBIG when larger, -errno on failure. */
__attribute__((warn_unused_result)) int pb__read_file(const char *path, size_t cap, uint8_t **out, size_t *len);
/* pb__read_file for a file already open (read from its current offset). */
__attribute__((warn_unused_result)) int pb__read_fd(int fd, size_t cap, uint8_t **out, size_t *len);

/* Reads fd to its end through buf (cap bytes), handing each piece to cb;
 * stops at the first non-zero cb result and returns it, or -errno. */
__attribute__((warn_unused_result)) int pb__read_each(int fd, uint8_t *buf, size_t cap,
						       int (*cb)(void *arg, const uint8_t *p, size_t n), void *arg);

/* mkdir -p with the given mode for created directories. */
__attribute__((warn_unused_result)) int pb__mkdirs(const char *path, unsigned mode);

/* Makes the SQLite database at path, and its -wal, -shm and -journal files
 * where they exist, readable by the owner only (0600), creating path empty
 * when it is missing and create is set. SQLite itself would create them
 * 0644 less the umask (its side files take the database's mode). Call it
 * before sqlite3_open. 0 or -errno. */
__attribute__((warn_unused_result)) int pb__private_db(const char *path, int create);

/* Makes a state directory private: created 0700 (with its parents) when
 * missing, else tightened to 0700 when others may enter it; *was gets the
 * mode it had (0 when created or already private). 0 or -errno (-EPERM
 * when it belongs to someone else). */
__attribute__((warn_unused_result)) int pb__private_dir(const char *path, unsigned *was);

/* fsyncs a directory. */
int pb__fsync_dir(const char *path);

/* Reads up to want bytes from fd, across short reads and EINTR: how many
 * (fewer only at the file's end), or -1 with errno. */
ssize_t pb__read_full(int fd, uint8_t *buf, size_t want);

/* Joins a and b with '/' into out; PB_ETOOBIG when it does not fit. */
__attribute__((warn_unused_result)) int pb__path_join(char *out, size_t cap, const char *a, const char *b);

/* Unpadded base64url. Encoding needs cap >= 4*len/3+2; decoding requires the
 * exact length want (PB_EURI_BASE64 / PB_EURI_KEYLEN otherwise). */
int pb__b64url_encode(const uint8_t *bin, size_t len, char *out, size_t cap);
__attribute__((warn_unused_result)) int pb__b64url_decode(const char *text, uint8_t *out, size_t want);

/* Lower-case hex of bin into out (cap >= 2*len+1). */
void pb__hex(const uint8_t *bin, size_t len, char *out);

/* Current time in unix seconds. */
uint64_t pb__now(void);

/* Opens the directory name (one component) under dirfd without following
 * a symbolic link: PB_EDATA_LINK when name is one. With create, a missing
 * directory is made with mode and *created (may be NULL) is set. Returns
 * the descriptor or a negative error. */
__attribute__((warn_unused_result)) int pb__dir_open_at(int dirfd, const char *name, bool create, unsigned mode,
							bool *created);

/* Opens the folder that holds rel (all but its last component) below the
 * directory root, one component at a time as pb__dir_open_at does: never
 * through a symbolic link (PB_EDATA_LINK; *bad_len, may be NULL, receives
 * the length of the prefix of rel that is the link). With create, missing
 * folders are made with mode and made (may be NULL) hears the length of
 * each one's prefix of rel. *out receives the descriptor. */
__attribute__((warn_unused_result)) int pb__open_parent_at(int root, const char *rel, bool create, unsigned mode,
							   int (*made)(void *arg, size_t len), void *arg,
							   size_t *bad_len, int *out);

/* pb__read_file for the regular file name under dirfd, not following a
 * link (PB_EDATA_LINK). */
__attribute__((warn_unused_result)) int pb__read_file_at(int dirfd, const char *name, size_t cap, uint8_t **out,
							 size_t *len);

/* Removes a directory tree this process made (a restore's staging
 * folder): links inside are removed, never followed. Best effort. */
void pb__remove_tree(const char *path);

#endif
