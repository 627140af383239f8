/* peerback-imd: the IM account service. */
#include <stdio.h>
#include <string.h>

#include "peerback.h"

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: peerback-imd [--home DIR] COMMAND\n\nThe IM account service (being built).\n");
		return 0;
	}
	fprintf(stderr, "peerback-imd: not built yet\n");
	return 1;
}
