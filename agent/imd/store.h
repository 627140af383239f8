/* The account service's SQLite store (store-sqlite.c), the embedded
 * default; the storage interface is public (peerback/imd.h). Private to the
 * library. */
#ifndef PB_AGENT_IMD_STORE_H
#define PB_AGENT_IMD_STORE_H

#include "peerback/imd.h"

/* Opens (creating and migrating) the SQLite store at path. */
__attribute__((warn_unused_result)) int pb__imd_store_sqlite_open(const char *path, pb_imd_store_t **out);

#endif
