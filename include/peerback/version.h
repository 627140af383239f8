/* The library's version and the protocol it speaks. */
#ifndef PEERBACK_VERSION_H
#define PEERBACK_VERSION_H

#include "peerback/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version these headers belong to; CMakeLists.txt's project() holds the
 * same (the build checks that they agree). The shared library's SONAME
 * changes with the major number. */
#define PB_VERSION_MAJOR 0
#define PB_VERSION_MINOR 1
#define PB_VERSION_PATCH 0
#define PB_VERSION_STRING "0.1.0"

/* The protocol version carried in every envelope. */
#define PB_PROTOCOL_VERSION 1

/* The version of the library actually loaded ("0.1.0"), which may be newer
 * than PB_VERSION_STRING of the headers a program was built with. Static
 * string; any thread. */
PB_EXTERN const char *pb_version(void);

#ifdef __cplusplus
}
#endif
#endif
