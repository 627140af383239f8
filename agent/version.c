/* The library's version, as loaded at run time. */
#include "peerback/version.h"

const char *pb_version(void)
{
	return PB_VERSION_STRING;
}
