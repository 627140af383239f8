/* A harness for end-to-end tests: the account service, hosts and phones run
 * as the real programs, as separate processes, on loopback. */
#ifndef PB_TEST_HARNESS_H
#define PB_TEST_HARNESS_H

#include "testutil.h"
#include "protocol/envelope.h"

#define PB_TEST_PASSWORD "correct-horse-battery"

typedef struct pb_test_imd_s {
	pb_test_proc_t proc;
	char home[4096];
	char addr[96];
	char key[64];
} pb_test_imd_t;

typedef struct pb_test_host_s {
	pb_test_proc_t proc;
	char home[4096];
	char listen[96];
	char uri[2048];   /* the latest advertised URI */
} pb_test_host_t;

/* Creates dir/imd, adds the given accounts (NULL-terminated), starts the
 * service with extra serve arguments (NULL-terminated, may be NULL). */
void pb_test_imd_start(pb_test_imd_t *imd, const char *dir, const char *const *accounts,
		       const char *const *extra);
void pb_test_imd_stop(pb_test_imd_t *imd);

/* Logs the device at home into account (as name) with the test password;
 * returns the exit status. */
int pb_test_login(const pb_test_imd_t *imd, const char *home, const char *account, const char *name);

/* Fills req and login with a login to the account service as a device
 * sends it; the fields point at the arguments (id: PB_DEVICE_ID_LEN bytes). */
void pb_test_login_request(Peerback__ImdRequest *req, Peerback__Login *login, const char *account,
			   const char *password, const uint8_t *id, const uint8_t sign_pk[32],
			   const uint8_t static_pk[32], const char *name);

/* Starts `peerback host --json` for home listening on listen (e.g.
 * "127.0.0.1:0") with extra arguments; waits for the first advertisement. */
void pb_test_host_start(pb_test_host_t *host, const char *home, const char *listen, const char *const *extra);
/* Reads host events until one whose "event" is name arrives (timeout_ms);
 * returns the line in line, or -1. An advertise event updates host->uri. */
int pb_test_host_wait(pb_test_host_t *host, const char *name, char *line, size_t cap, int timeout_ms);
void pb_test_host_stop(pb_test_host_t *host);

/* Pairs the phone at home with host (its latest advertised URI): fails the
 * test, with what peerback said, unless it pairs; then waits for the host's
 * next advertisement (the code just used is spent). */
void pb_test_pair(pb_test_host_t *host, const char *home);

/* The device id (hex) of the device at home, from `account show`, into out
 * (64 bytes). */
void pb_test_device_id(const char *home, char *out);

/* Runs `peerback --home home ARGS...` (NULL-terminated) with the test
 * password and recovery passphrase in the environment. Returns its exit
 * status; out and err as pb_test_run. */
int pb_test_peerback(const char *home, char *const args[], char **out, char **err);

/* Extracts the string value of "key" from a one-line JSON object into out. */
int pb_test_json_str(const char *line, const char *key, char *out, size_t cap);

/* The integer value of "key" in a one-line JSON object, or -1. */
long long pb_test_json_num(const char *line, const char *key);

/* Two devices of the account alice (imd serves it), logged in: homes
 * dir/host (as "desk") and dir/phone (as "phone"), their paths in host_home
 * and phone (4096 bytes each). Returns 0, or -1 with what failed printed. */
int pb_test_logged_in(pb_test_imd_t *imd, const char *dir, char *host_home, char *phone);

/* pb_test_logged_in, then the host started on loopback and the phone
 * paired with it. Returns 0, or -1 with what failed printed. */
int pb_test_paired_phone(pb_test_imd_t *imd, pb_test_host_t *host, const char *dir, char *host_home, char *phone);
/* The same with the host started with extra arguments (NULL-terminated,
 * may be NULL). */
int pb_test_paired_phone_with(pb_test_imd_t *imd, pb_test_host_t *host, const char *dir, char *host_home,
			      char *phone, const char *const *extra);

/* The end of a test's world: stops host and imd (either may be NULL),
 * removes dir with all below it and frees it. */
void pb_test_cleanup(pb_test_host_t *host, pb_test_imd_t *imd, char *dir);

/* The world of an end-to-end test program, made and ended by the group
 * fixtures below (cmocka_run_group_tests): a scratch directory named after
 * the program, the account service with the account alice, and
 * pb_test_logged_in's two devices; pb_test_paired_setup also starts the
 * host and pairs the phone (pb_test_paired_phone). */
typedef struct pb_test_world_s {
	char *dir;
	pb_test_imd_t imd;
	pb_test_host_t host;
	char host_home[4096], phone[4096];
} pb_test_world_t;

extern pb_test_world_t pb_test_world;
int pb_test_logged_in_setup(void **state);
int pb_test_paired_setup(void **state);
int pb_test_world_teardown(void **state);

/* Starts the host again on the same home and address (after a kill). */
void pb_test_host_restart(pb_test_host_t *host, const char *const *extra);

/* A hash (hex) of a file's bytes, or "absent". */
void pb_test_file_digest(const char *path, char out[65]);

#endif
