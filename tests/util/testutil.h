/* Helpers shared by the tests: scratch directories, files, child processes. */
#ifndef PB_TESTUTIL_H
#define PB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

/* A fresh empty directory under the build tree, removed by pb_test_rmtree().
 * Returns a malloc'd path owned by the caller. */
char *pb_test_tmpdir(const char *tag);
/* A chunk's name as docs/STORAGE.md defines it ("Chunk names"), made
 * with libsodium's one-stream BLAKE2b only: the keyed hash of its bytes
 * below 64 KiB, from it on the personalized hash of its length and of its
 * eight segments' keyed hashes. The reference the programs' names are
 * checked against. */
void pb_test_chunk_name(const uint8_t key[32], const uint8_t *plain, size_t len, uint8_t name[32]);

/* Removes a directory tree (best effort). */
void pb_test_rmtree(const char *path);

/* Group fixtures (cmocka_run_group_tests) for a test program that works in
 * one scratch directory, pb_test_dir: made by the setup (named after the
 * program), removed with all below it by the teardown. */
extern char *pb_test_dir;
int pb_test_dir_setup(void **state);
int pb_test_dir_teardown(void **state);

/* pb_test_dir/name into out (4096 bytes). */
void pb_test_path(char *out, const char *name);

/* The name of the first entry of dir by name, "." and ".." aside, into out;
 * fails the test when dir has none. */
void pb_test_first_entry(const char *dir, char *out, size_t cap);

/* Path of a file in tests/data (vectors, fixtures made by others; listed in
 * tests/data/MANIFEST). malloc'd, caller frees. */
char *pb_test_data(const char *rel);

/* Path of a built program in build/tools ("peerback", "peerback-imd").
 * malloc'd, caller frees. */
char *pb_test_tool(const char *name);

/* The same program as a shell command word: its quoted path, after the
 * emulator in a cross build. malloc'd, caller frees. */
char *pb_test_tool_sh(const char *name);

/* execv(argv[0], argv), through the emulator named by PB_TEST_EMULATOR
 * ("/usr/bin/qemu-aarch64") when the tests run in a cross build and
 * argv[0] is built for the same machine as the test. Returns only on
 * failure. */
void pb_test_execv(char *const argv[]);

/* Reads a whole file; returns a malloc'd, NUL-terminated buffer or NULL. */
uint8_t *pb_test_read_file(const char *path, size_t *len);

/* Writes a whole file; returns 0 or -errno. */
int pb_test_write_file(const char *path, const void *data, size_t len);

/* Runs argv (argv[0] a path) with extra environment entries ("K=V", NULL
 * terminated, may be NULL) and stdin from /dev/null; collects stdout and
 * stderr (malloc'd, NUL-terminated, caller frees; either out pointer may be
 * NULL). Returns the exit status, or 128+signal, or -1 when it could not run.
 * The child is killed after timeout_s seconds. */
int pb_test_run(char *const argv[], char *const env[], int timeout_s, char **out, char **err);

/* A program started in the background with its stdout readable line by line. */
typedef struct pb_test_proc_s {
	pid_t pid;
	int out_fd;
	char buf[65536];
	size_t len;
} pb_test_proc_t;

/* Starts argv in the background; stdout is a pipe, stderr inherited. */
int pb_test_spawn(pb_test_proc_t *p, char *const argv[], char *const env[]);

/* Reads the next stdout line (without newline) into line; waits at most
 * timeout_ms. Returns the line length, or -1 on timeout/EOF. */
int pb_test_readline(pb_test_proc_t *p, char *line, size_t cap, int timeout_ms);

/* Sends sig and reaps the process; returns its exit status as pb_test_run. */
int pb_test_stop(pb_test_proc_t *p, int sig);

/* 0 when the trees a and b hold the same files with the same bytes (diff
 * -r); else what differs is printed and diff's status returned. */
int pb_test_same_tree(const char *a, const char *b);

/* Counts occurrences of needle (len bytes) in every regular file below dir. */
size_t pb_test_grep_tree(const char *dir, const void *needle, size_t len);

#endif
