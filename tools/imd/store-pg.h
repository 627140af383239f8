/* The PostgreSQL store of peerback-imd (store-pg.c). */
#ifndef PB_TOOLS_IMD_STORE_PG_H
#define PB_TOOLS_IMD_STORE_PG_H

#include "peerback/imd.h"

/* Connects to url (a libpq URI or key=value string), creates or migrates
 * the schema, and returns the store. */
__attribute__((warn_unused_result)) int pb_imd_store_pg_open(const char *url, pb_imd_store_t **out);

#endif
