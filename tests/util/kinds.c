/* Helpers of the kinds' tests (kinds.h). */
#include "kinds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/kinds/chat-util.h"

char *pb_test_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);

	assert_non_null(p);
	snprintf(p, n, "%s/%s", a, b);
	return p;
}

char *pb_test_write_at(const char *dir, const char *rel, const char *text)
{
	char *p = pb_test_join(dir, rel);

	assert_int_equal(pb__chat_mkparents(p), 0);
	assert_int_equal(pb_test_write_file(p, text, strlen(text)), 0);
	return p;
}

char *pb_test_read_at(const char *dir, const char *rel)
{
	char *p = pb_test_join(dir, rel);
	size_t len;
	char *s = (char *)pb_test_read_file(p, &len);

	free(p);
	return s;
}

void pb_test_import_chat_ok(const char *dev, const char *file)
{
	const char *files[1] = {file};
	char err[512] = "";
	int rc = pb__import_chat(dev, files, 1, err, sizeof(err));

	if (rc != 0)
		fail_msg("import %s: %d %s", file, rc, err);
}

void pb_test_import_contacts_ok(const char *dev, const char *file)
{
	const char *files[1] = {file};
	char err[512] = "";
	int rc = pb__import_contacts(dev, files, 1, err, sizeof(err));

	if (rc != 0)
		fail_msg("import %s: %d %s", file, rc, err);
}
