/* Every --json line is one JSON object, whatever the strings in it: a
 * device or host name with a newline, quotes, a backslash and control
 * characters, coming from the account service, from host.db or from a
 * phone's files, is printed escaped, and reads back exactly. The account
 * service, the host and the phone run as the real programs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "harness.h"
#include "agent/util/fsutil.h"

/* A name that forges a line when printed without escaping. */
static const char evil[] = "ev\"il\n{\"event\":\"forged\",\"name\":\"x\"}\\\t\x01 end";
/* One with a byte that is not UTF-8, as a database may hold it, and how it
 * prints: JSON text is UTF-8, the byte becomes U+FFFD. */
static const char evil_bytes[] = "ev\"il\n{\"event\":\"forged\"}\\\t\x01 \xff end";
static const char evil_bytes_shown[] = "ev\"il\n{\"event\":\"forged\"}\\\t\x01 \xef\xbf\xbd end";

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone[4096], phone_hex[64];
/* The last command's output, kept until the next one so a failed check
 * does not leak it. */
static char *output;

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

/* Every line of out must be exactly one JSON object; returns how many carry
 * key with the string value want. */
static int check_lines(const char *what, const char *out, const char *key, const char *want)
{
	int found = 0;
	const char *p = out;

	while (*p != 0) {
		size_t n = strcspn(p, "\n");
		json_error_t err;
		json_t *o = json_loadb(p, n, 0, &err);
		const char *v;

		if (o == NULL || !json_is_object(o))
			fail_msg("%s: a line that is not one JSON object (%s): '%.*s'\nwhole output:\n%s", what,
				 err.text, (int)n, p, out);
		v = json_string_value(json_object_get(o, key));
		if (v != NULL && strcmp(v, want) == 0)
			found++;
		json_decref(o);
		p += n;
		if (*p == '\n')
			p++;
	}
	return found;
}

static int run(const char *home, char *const args[])
{
	char *err = NULL;
	int rc;

	free(output);
	output = NULL;
	rc = pb_test_peerback(home, args, &output, &err);
	if (rc != 0)
		printf("peerback %s: exit %d: %s", args[1], rc, err);
	free(err);
	return rc;
}

static void sql(const char *db_path, const char *stmt, const char *text)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, stmt, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_true(sqlite3_changes(db) > 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Sets key to value in every object of a JSON file (an object or an array
 * of objects), as a hostile or damaged file might hold it. */
static void plant_json(const char *path, const char *key, const char *value)
{
	json_error_t err;
	json_t *root = json_load_file(path, 0, &err), *o;
	size_t i;

	assert_non_null(root);
	if (json_is_array(root)) {
		json_array_foreach(root, i, o)
			json_object_set_new(o, key, json_stringn_nocheck(value, strlen(value)));
	} else {
		json_object_set_new(root, key, json_stringn_nocheck(value, strlen(value)));
	}
	assert_int_equal(json_dump_file(root, path, 0), 0);
	json_decref(root);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	char *args[] = { "pair", NULL, NULL };
	char line[4096];

	(void)state;
	dir = pb_test_tmpdir("json-output");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	mk(phone, "phone");
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, phone, "alice", "phone"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", NULL);
	args[1] = host.uri;
	assert_int_equal(pb_test_peerback(phone, args, NULL, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	assert_int_equal(pb_test_json_str(line, "device", phone_hex, sizeof(phone_hex)), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_cleanup(&host, &imd, dir);
	free(output);
	return 0;
}

/* The account service gives the name back as the device asked for it. */
static void test_account_login_json(void **state)
{
	char other[4096];
	char *login[] = { "--json", "account", "login", "--imd", imd.addr, "--imd-key", imd.key, "--account",
			  "alice", "--name", (char *)evil, NULL };
	char *show[] = { "--json", "account", "show", NULL };
	char path[4200];
	int rc;

	(void)state;
	mk(other, "other");
	rc = run(other, login);
	/* The service may refuse such a name; what is printed still parses. */
	if (rc == 0)
		assert_int_equal(check_lines("account login --json", output, "name", evil), 1);
	else
		(void)check_lines("account login --json", output, "name", evil);
	/* Whatever account.json holds prints as one object. */
	snprintf(path, sizeof(path), "%s/account.json", phone);
	plant_json(path, "device_name", evil);
	assert_int_equal(run(phone, show), 0);
	assert_int_equal(check_lines("account show --json", output, "name", evil), 1);
}

/* A paired device's name as host.db holds it, and a phone's answer to an
 * instruction, print as one object each. */
static void test_host_devices_json(void **state)
{
	char *devices[] = { "--json", "host", "devices", NULL };
	char *instructions[] = { "--json", "host", "instructions", NULL };
	char *instruct[] = { "host", "instruct", phone_hex, "delete-vsim", "8949000000000000001", NULL };
	char path[4200];

	(void)state;
	snprintf(path, sizeof(path), "%s/host.db", host_home);
	sql(path, "UPDATE devices SET name = ?1", evil_bytes);
	assert_int_equal(run(host_home, devices), 0);
	assert_int_equal(check_lines("host devices --json", output, "name", evil_bytes_shown), 1);
	assert_int_equal(run(host_home, instruct), 0);
	sql(path, "UPDATE instructions SET result = ?1", evil_bytes);
	assert_int_equal(run(host_home, instructions), 0);
	assert_int_equal(check_lines("host instructions --json", output, "result", evil_bytes_shown), 1);
}

/* The host's name as the phone remembers it. */
static void test_phone_devices_json(void **state)
{
	char *devices[] = { "--json", "devices", NULL };
	char *ping[] = { "--json", "ping", NULL };
	char path[4200];

	(void)state;
	snprintf(path, sizeof(path), "%s/hosts.json", phone);
	plant_json(path, "name", evil);
	assert_int_equal(run(phone, devices), 0);
	assert_int_equal(check_lines("devices --json", output, "name", evil), 1);
	assert_int_equal(run(phone, ping), 0);
	(void)check_lines("ping --json", output, "host", evil);
}

/* Every event line the host printed since it started parses. */
static void test_host_events_json(void **state)
{
	char line[65536], all[262144];
	size_t len = 0;
	int n;

	(void)state;
	kill(host.proc.pid, SIGUSR1);
	while ((n = pb_test_readline(&host.proc, line, sizeof(line), 1500)) >= 0) {
		if (len + (size_t)n + 2 < sizeof(all)) {
			memcpy(all + len, line, (size_t)n);
			len += (size_t)n;
			all[len++] = '\n';
		}
	}
	all[len] = 0;
	assert_true(len > 0);
	assert_true(check_lines("host --json events", all, "event", "advertise") >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_account_login_json),
		cmocka_unit_test(test_host_devices_json),
		cmocka_unit_test(test_phone_devices_json),
		cmocka_unit_test(test_host_events_json),
	};

	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
