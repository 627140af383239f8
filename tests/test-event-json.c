/* pb_event_json: the JSON line of each event, as `peerback --json` prints
 * it and as an application logs it. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "peerback.h"

static char *json(const pb_event_t *e)
{
	char *out = NULL;

	assert_int_equal(pb_event_json(e, &out), 0);
	assert_non_null(out);
	assert_null(strchr(out, '\n'));
	return out;
}

static void test_progress(void **state)
{
	pb_event_t e = { .type = PB_EVENT_PROGRESS, .name = "progress", .phase = "backup", .items_done = 3,
			 .items_total = 9, .bytes_done = 100, .bytes_total = 900, .bytes_sent = 120,
			 .bytes_committed = 60, .chunks_sent = 2 };
	char *s = json(&e);

	(void)state;
	assert_string_equal(s, "{\"event\":\"progress\",\"phase\":\"backup\",\"items_done\":3,\"items_total\":9,"
			       "\"bytes_done\":100,\"bytes_total\":900,\"bytes_sent\":120,\"bytes_committed\":60,"
			       "\"chunks_sent\":2}");
	free(s);
}

/* Text from files and peers cannot break the line or forge a field. */
static void test_warning_escaped(void **state)
{
	pb_event_t e = { .type = PB_EVENT_WARNING, .phase = "backup", .path = "contacts/contacts.vcf", .line = 7,
			 .error = PB_EDATA_FORMAT, .message = "bad \"line\"\n{\"event\":\"x\"}" };
	char *s = json(&e);

	(void)state;
	/* No name given: the type's word; the message's quote, newline and
	 * braces stay inside its string, and the code is the stable number. */
	assert_string_equal(s, "{\"event\":\"warning\",\"phase\":\"backup\",\"line\":7,"
			       "\"path\":\"contacts/contacts.vcf\","
			       "\"message\":\"bad \\\"line\\\"\\n{\\\"event\\\":\\\"x\\\"}\","
			       "\"code\":-1500,\"error\":\"file is not in the expected format\"}");
	free(s);
}

static void test_instruction_and_done(void **state)
{
	pb_event_t i = { .type = PB_EVENT_INSTRUCTION, .op = "delete-vsim", .message = "done" };
	pb_event_t d = { .type = PB_EVENT_DONE, .phase = "restore", .error = PB_ECANCELED };
	char *s = json(&i), *t = json(&d);

	(void)state;
	assert_string_equal(s, "{\"event\":\"instruction\",\"ok\":true,\"op\":\"delete-vsim\",\"message\":\"done\"}");
	assert_string_equal(t, "{\"event\":\"done\",\"phase\":\"restore\",\"code\":-1008,\"error\":\"canceled\"}");
	free(s);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_warning_escaped),
		cmocka_unit_test(test_instruction_and_done),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
