/* Macros shared by every public peerback header. */
#ifndef PEERBACK_COMMON_H
#define PEERBACK_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define PB_EXTERN __attribute__((visibility("default")))
#define PB_WUR __attribute__((warn_unused_result))
#else
#define PB_EXTERN
#define PB_WUR
#endif

#endif
