/* Test-only pause points, inert unless the environment arms them.
 *
 * PEERBACK_TEST_PAUSE=POINT:N[,POINT:N...] makes the N-th pass of this
 * process through POINT append the line "paused POINT N PID" to the file
 * PEERBACK_TEST_PAUSE_FILE (standard error when unset) and stop the whole
 * process there (SIGSTOP), until it is killed or continued (SIGCONT). A
 * test can so kill a program at a point of its own choosing, however fast
 * the program runs. Points are fixed names in the code (the store's write
 * path: "put", "pack-synced", "index-committed", "snapshot-checked",
 * "snapshot-committed", ...; the phone's handshake: "auth-passed");
 * nothing received from the network can arm or name one. Private to the
 * library. */
#ifndef PB_AGENT_TESTHOOK_H
#define PB_AGENT_TESTHOOK_H

#include <stdbool.h>

/* True when PEERBACK_TEST_PAUSE names at least one point. */
bool pb__test_pause_armed(void);

/* Passes through point: counts it, and pauses there when armed for this
 * pass. Safe from any thread; does nothing when nothing is armed. */
void pb__test_point(const char *point);

#endif
