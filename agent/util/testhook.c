/* Test-only pause points (testhook.h). The environment is read once; an
 * unarmed process pays one pthread_once and one test per point. */
#include "agent/util/testhook.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PAUSES 4
#define POINT_MAX 48

typedef struct {
	char point[POINT_MAX];
	long at;           /* the pass that pauses, counted from 1 */
	atomic_long seen;
} pause_t;

static pause_t pauses[MAX_PAUSES];
static int npauses;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Parses "POINT:N" items separated by commas; malformed items are ignored. */
static void parse(void)
{
	const char *s = getenv("PEERBACK_TEST_PAUSE");

	while (s != NULL && *s != 0 && npauses < MAX_PAUSES) {
		const char *end = strchr(s, ','), *colon = strchr(s, ':');
		size_t len = end != NULL ? (size_t)(end - s) : strlen(s);
		char *num_end;
		long at;

		if (colon != NULL && colon < s + len && (size_t)(colon - s) < POINT_MAX && colon > s) {
			at = strtol(colon + 1, &num_end, 10);
			if (at > 0 && num_end == s + len) {
				pause_t *p = &pauses[npauses++];

				memcpy(p->point, s, (size_t)(colon - s));
				p->point[colon - s] = 0;
				p->at = at;
				atomic_init(&p->seen, 0);
			}
		}
		s = end != NULL ? end + 1 : NULL;
	}
}

bool pb__test_pause_armed(void)
{
	pthread_once(&once, parse);
	return npauses > 0;
}

/* Says where the process stops: one line, appended in a single write so
 * that a reader never sees half of it. */
static void report(const char *point, long at)
{
	const char *path = getenv("PEERBACK_TEST_PAUSE_FILE");
	char line[128];
	int n = snprintf(line, sizeof(line), "paused %s %ld %ld\n", point, at, (long)getpid());
	int fd = STDERR_FILENO;

	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	if (path != NULL && path[0] != 0)
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n) {
		/* nothing to do: the test then waits in vain and fails */
	}
	if (fd != STDERR_FILENO)
		close(fd);
}

void pb__test_point(const char *point)
{
	if (!pb__test_pause_armed())
		return;
	for (int i = 0; i < npauses; i++) {
		pause_t *p = &pauses[i];

		if (strcmp(p->point, point) != 0 || atomic_fetch_add(&p->seen, 1) + 1 != p->at)
			continue;
		report(point, p->at);
		/* SIGSTOP stops every thread of the process, here and now. */
		raise(SIGSTOP);
	}
}
