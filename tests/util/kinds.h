/* Helpers of the kinds' tests (test-chat, test-whatsapp, test-vcard,
 * test-formats): files below a device or source directory, and imports
 * that must succeed. */
#ifndef PB_TEST_KINDS_H
#define PB_TEST_KINDS_H

#include "testutil.h"

/* "a/b", malloc'd; the caller frees. */
char *pb_test_join(const char *a, const char *b);

/* Writes text to dir/rel, its parent directories made; returns the path
 * (malloc'd, the caller frees). */
char *pb_test_write_at(const char *dir, const char *rel, const char *text);

/* The file dir/rel, NUL-terminated (malloc'd), or NULL when it cannot be
 * read. */
char *pb_test_read_at(const char *dir, const char *rel);

/* Imports one file into the device directory dev; fails the test, with the
 * importer's sentence, when it is refused. */
void pb_test_import_chat_ok(const char *dev, const char *file);
void pb_test_import_contacts_ok(const char *dev, const char *file);

#endif
