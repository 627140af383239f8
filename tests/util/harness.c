/* The end-to-end harness. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/account/account.h"
#include "agent/util/fsutil.h"

static char *env_password = "PEERBACK_PASSWORD=" PB_TEST_PASSWORD;
static char *env_recovery = "PEERBACK_RECOVERY_PASSPHRASE=recovery passphrase for tests";

int pb_test_json_str(const char *line, const char *key, char *out, size_t cap)
{
	char pat[128];
	const char *p, *end;
	size_t n;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(line, pat);
	if (p == NULL)
		return -1;
	p += strlen(pat);
	end = strchr(p, '"');
	if (end == NULL)
		return -1;
	n = (size_t)(end - p);
	if (n >= cap)
		return -1;
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}

/* Under test-imd-pg --with-pg every service uses PostgreSQL: the first
 * one the database PEERBACK_IMD_DB names (so that restarting it with the
 * same arguments finds its state), each further one a fresh database of
 * the same cluster, as separate services have separate databases. */
static bool pg_database_for(char *url, size_t cap)
{
	static int count;
	const char *fmt = getenv("PB_TEST_PG_URL_FMT"), *createdb = getenv("PB_TEST_PG_CREATEDB");
	char name[64], cmd[2048];

	if (count++ == 0 || fmt == NULL || createdb == NULL)
		return false;
	snprintf(name, sizeof(name), "service%d", count);
	snprintf(cmd, sizeof(cmd), "%s %s", createdb, name);
	assert_int_equal(system(cmd), 0);
	snprintf(url, cap, fmt, name);
	return true;
}

void pb_test_imd_start(pb_test_imd_t *imd, const char *dir, const char *const *accounts, const char *const *extra)
{
	char *tool = pb_test_tool("peerback-imd");
	char line[1024], url[1024] = "";
	char *env[] = { env_password, NULL };
	char *argv[32];
	int n = 0;
	bool own_db = pg_database_for(url, sizeof(url));

	memset(imd, 0, sizeof(*imd));
	snprintf(imd->home, sizeof(imd->home), "%s/imd", dir);
	for (size_t i = 0; accounts != NULL && accounts[i] != NULL; i++) {
		char *a[] = { tool, "--home", imd->home, "--db", url, "add-account", (char *)accounts[i], NULL };
		if (!own_db) {
			a[3] = "add-account";
			a[4] = (char *)accounts[i];
			a[5] = NULL;
		}
		assert_int_equal(pb_test_run(a, env, 60, NULL, NULL), 0);
	}
	argv[n++] = tool;
	argv[n++] = "--home";
	argv[n++] = imd->home;
	if (own_db) {
		argv[n++] = "--db";
		argv[n++] = url;
	}
	argv[n++] = "serve";
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--json";
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 30; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	assert_int_equal(pb_test_spawn(&imd->proc, argv, NULL), 0);
	assert_true(pb_test_readline(&imd->proc, line, sizeof(line), 10000) > 0);
	assert_int_equal(pb_test_json_str(line, "listen", imd->addr, sizeof(imd->addr)), 0);
	assert_int_equal(pb_test_json_str(line, "key", imd->key, sizeof(imd->key)), 0);
	free(tool);
}

void pb_test_imd_stop(pb_test_imd_t *imd)
{
	if (imd->proc.pid > 0)
		pb_test_stop(&imd->proc, SIGTERM);
}

int pb_test_peerback(const char *home, char *const args[], char **out, char **err)
{
	char *tool = pb_test_tool("peerback");
	char *argv[64];
	char *env[] = { env_password, env_recovery, NULL };
	int n = 0, rc;

	argv[n++] = tool;
	argv[n++] = "--home";
	argv[n++] = (char *)home;
	for (size_t i = 0; args[i] != NULL && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	rc = pb_test_run(argv, env, 600, out, err);
	free(tool);
	return rc;
}

int pb_test_login(const pb_test_imd_t *imd, const char *home, const char *account, const char *name)
{
	char *args[] = { "account", "login", "--imd", (char *)imd->addr, "--imd-key", (char *)imd->key,
			 "--account", (char *)account, "--name", (char *)name, NULL };
	char *err = NULL;
	int rc = pb_test_peerback(home, args, NULL, &err);

	if (rc != 0)
		printf("login %s: %s", account, err);
	free(err);
	return rc;
}

void pb_test_login_request(Peerback__ImdRequest *req, Peerback__Login *login, const char *account,
			   const char *password, const uint8_t *id, const uint8_t sign_pk[32],
			   const uint8_t static_pk[32], const char *name)
{
	peerback__imd_request__init(req);
	peerback__login__init(login);
	login->account = (char *)account;
	login->password = (char *)password;
	login->device_id.data = (uint8_t *)id;
	login->device_id.len = PB_DEVICE_ID_LEN;
	login->sign_pk.data = (uint8_t *)sign_pk;
	login->sign_pk.len = 32;
	login->static_pk.data = (uint8_t *)static_pk;
	login->static_pk.len = 32;
	login->device_name = (char *)name;
	req->op_case = PEERBACK__IMD_REQUEST__OP_LOGIN;
	req->login = login;
}

int pb_test_host_wait(pb_test_host_t *host, const char *name, char *line, size_t cap, int timeout_ms)
{
	char pat[64];

	snprintf(pat, sizeof(pat), "\"event\":\"%s\"", name);
	for (;;) {
		int n = pb_test_readline(&host->proc, line, cap, timeout_ms);

		if (n < 0)
			return -1;
		if (strstr(line, "\"event\":\"advertise\"") != NULL)
			pb_test_json_str(line, "uri", host->uri, sizeof(host->uri));
		if (strstr(line, pat) != NULL)
			return n;
	}
}

void pb_test_host_start(pb_test_host_t *host, const char *home, const char *listen, const char *const *extra)
{
	char *tool = pb_test_tool("peerback");
	char line[4096];
	char *argv[32];
	int n = 0;

	memset(host, 0, sizeof(*host));
	snprintf(host->home, sizeof(host->home), "%s", home);
	argv[n++] = tool;
	argv[n++] = "--home";
	argv[n++] = host->home;
	argv[n++] = "host";
	argv[n++] = "--json";
	argv[n++] = "--listen";
	argv[n++] = (char *)listen;
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 30; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	assert_int_equal(pb_test_spawn(&host->proc, argv, NULL), 0);
	assert_true(pb_test_host_wait(host, "listening", line, sizeof(line), 10000) > 0);
	assert_int_equal(pb_test_json_str(line, "listen", host->listen, sizeof(host->listen)), 0);
	assert_true(pb_test_host_wait(host, "advertise", line, sizeof(line), 10000) > 0);
	free(tool);
}

void pb_test_host_stop(pb_test_host_t *host)
{
	if (host->proc.pid > 0)
		pb_test_stop(&host->proc, SIGTERM);
}

void pb_test_pair(pb_test_host_t *host, const char *home)
{
	char *args[] = { "pair", host->uri, NULL }, line[4096], *err = NULL;

	if (pb_test_peerback(home, args, NULL, &err) != 0)
		fail_msg("pair: %s", err);
	free(err);
	assert_true(pb_test_host_wait(host, "paired", line, sizeof(line), 10000) > 0);
	assert_true(pb_test_host_wait(host, "advertise", line, sizeof(line), 10000) > 0);
}

void pb_test_device_id(const char *home, char *out)
{
	char *args[] = { "--json", "account", "show", NULL }, *o = NULL;

	assert_int_equal(pb_test_peerback(home, args, &o, NULL), 0);
	assert_int_equal(pb_test_json_str(o, "device", out, 64), 0);
	free(o);
}

void pb_test_cleanup(pb_test_host_t *host, pb_test_imd_t *imd, char *dir)
{
	if (host != NULL)
		pb_test_host_stop(host);
	if (imd != NULL)
		pb_test_imd_stop(imd);
	pb_test_rmtree(dir);
	free(dir);
}

pb_test_world_t pb_test_world;

static void world_start(pb_test_world_t *w)
{
	const char *accounts[] = { "alice", NULL };

	w->dir = pb_test_tmpdir(program_invocation_short_name);
	pb_test_imd_start(&w->imd, w->dir, accounts, NULL);
}

int pb_test_logged_in_setup(void **state)
{
	pb_test_world_t *w = &pb_test_world;

	(void)state;
	world_start(w);
	return pb_test_logged_in(&w->imd, w->dir, w->host_home, w->phone);
}

int pb_test_paired_setup(void **state)
{
	pb_test_world_t *w = &pb_test_world;

	(void)state;
	world_start(w);
	return pb_test_paired_phone(&w->imd, &w->host, w->dir, w->host_home, w->phone);
}

int pb_test_world_teardown(void **state)
{
	pb_test_world_t *w = &pb_test_world;

	(void)state;
	pb_test_cleanup(&w->host, &w->imd, w->dir);
	memset(w, 0, sizeof(*w));
	return 0;
}

void pb_test_file_digest(const char *path, char out[65])
{
	size_t len;
	uint8_t *data = pb_test_read_file(path, &len);
	uint8_t h[32];

	if (data == NULL) {
		snprintf(out, 65, "absent");
		return;
	}
	crypto_generichash(h, sizeof(h), data, len, NULL, 0);
	sodium_bin2hex(out, 65, h, sizeof(h));
	free(data);
}

long long pb_test_json_num(const char *line, const char *key)
{
	char pat[128];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	if (p == NULL)
		return -1;
	return strtoll(p + strlen(pat), NULL, 10);
}

void pb_test_host_restart(pb_test_host_t *host, const char *const *extra)
{
	char home[4096], listen[96];

	snprintf(home, sizeof(home), "%s", host->home);
	snprintf(listen, sizeof(listen), "%s", host->listen);
	pb_test_host_start(host, home, listen, extra);
}

int pb_test_logged_in(pb_test_imd_t *imd, const char *dir, char *host_home, char *phone)
{
	static const char *const who[2][2] = { { "host", "desk" }, { "phone", "phone" } };
	char *homes[2] = { host_home, phone };

	for (int i = 0; i < 2; i++) {
		snprintf(homes[i], 4096, "%s/%s", dir, who[i][0]);
		if (pb__mkdirs(homes[i], 0700) != 0 || pb_test_login(imd, homes[i], "alice", who[i][1]) != 0) {
			printf("login of %s failed\n", homes[i]);
			return -1;
		}
	}
	return 0;
}

int pb_test_paired_phone(pb_test_imd_t *imd, pb_test_host_t *host, const char *dir, char *host_home, char *phone)
{
	return pb_test_paired_phone_with(imd, host, dir, host_home, phone, NULL);
}

int pb_test_paired_phone_with(pb_test_imd_t *imd, pb_test_host_t *host, const char *dir, char *host_home,
			      char *phone, const char *const *extra)
{
	char *pair[] = { "pair", NULL, NULL }, line[4096];

	if (pb_test_logged_in(imd, dir, host_home, phone) != 0)
		return -1;
	pb_test_host_start(host, host_home, "127.0.0.1:0", extra);
	pair[1] = host->uri;
	if (pb_test_peerback(phone, pair, NULL, NULL) != 0 ||
	    pb_test_host_wait(host, "paired", line, sizeof(line), 10000) <= 0) {
		printf("pairing %s with %s failed\n", phone, host->uri);
		return -1;
	}
	return 0;
}
