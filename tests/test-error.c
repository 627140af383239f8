/* Error codes: every peerback code has its own sentence and name, and
 * -errno values read as the system's messages. */
#include <errno.h>
#include <string.h>

#include "testutil.h"
#include "peerback.h"

static void test_own_codes_have_sentences(void **state)
{
	(void)state;
#define CHECK(name, value, text)                                               \
	assert_string_equal(pb_strerror(value), text);                         \
	assert_string_equal(pb_err_name(value), "PB_E" #name);                 \
	assert_true((value) >= PB_ERR_MIN && (value) <= PB_ERR_MAX);
	PB_ERRNO_MAP(CHECK)
#undef CHECK
}

static void test_errno_codes(void **state)
{
	(void)state;
	assert_string_equal(pb_strerror(-ENOSPC), strerror(ENOSPC));
	assert_string_equal(pb_err_name(-ENOSPC), "ENOSPC");
	assert_string_equal(pb_strerror(0), "success");
	assert_string_equal(pb_strerror(-99999), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_codes_have_sentences),
		cmocka_unit_test(test_errno_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
