/* Hostile network peers for the end-to-end tests: raw sockets from chosen
 * loopback addresses, Noise sessions with no account behind them, and the
 * host process as the kernel sees it (memory, open descriptors). */
#ifndef PB_TEST_HOSTILE_H
#define PB_TEST_HOSTILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "protocol/client.h"

/* A blocking TCP connection to addr ("127.0.0.1:PORT") from the source
 * address from (e.g. "127.0.0.2"; NULL: any). Returns the fd or -1. */
int pb_test_tcp_connect(const char *addr, const char *from);

/* The host's static key, from its latest advertised URI. */
void pb_test_host_key(const pb_test_host_t *host, uint8_t pk[32]);

/* Runs the remembered-device handshake (IK) with a fresh static key that no
 * account knows: anyone who saw the host's key can do this. Returns 0 or
 * the handshake's error. */
int pb_test_noise_connect(pb_client_t *c, const char *addr, const uint8_t host_pk[32], int timeout_ms);

/* The same from the source address from (NULL: any). */
int pb_test_noise_connect_from(pb_client_t *c, const char *addr, const char *from, const uint8_t host_pk[32],
			       int timeout_ms);

/* A field of /proc/PID/status in KiB ("VmRSS", "VmHWM"), or -1. */
long pb_test_proc_kib(pid_t pid, const char *field);

/* Sockets a process holds open, or -1. Only sockets: a host under an
 * emulator (qemu-user) also holds the emulator's own descriptors, which
 * come and go. */
int pb_test_proc_sockets(pid_t pid);

/* Milliseconds until the peer closes fd (EOF or reset), reading and
 * discarding anything it sends; -1 when still open after timeout_ms. */
long pb_test_wait_closed(int fd, int timeout_ms);

/* Reads and discards the host's events on a thread, so that a host that
 * reports every refused connection never blocks on a full pipe. */
void pb_test_host_drain_start(pb_test_host_t *host);
void pb_test_host_drain_stop(void);

/* Milliseconds since an arbitrary point (monotonic). */
int64_t pb_test_now_ms(void);

#endif

/* On a session from pb_test_noise_connect: waits for the host's challenge
 * and answers it with the certificate of the device logged in at home,
 * signed with that device's key, or with random bytes when forge. Returns
 * 0 once sent. */
int pb_test_answer_challenge(pb_client_t *c, const char *home, bool forge);
