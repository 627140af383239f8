/* File helpers shared by the agent: atomic durable writes, capped reads,
 * directory creation, base64url. Private to the library. */
#ifndef PB_AGENT_FSUTIL_H
#define PB_AGENT_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

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

#endif
