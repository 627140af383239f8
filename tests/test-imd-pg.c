/* The account service scaled out: a real PostgreSQL cluster in a temporary
 * directory (initdb and pg_ctl from Debian's postgresql package), two
 * peerback-imd instances on it, hosts and phones as real programs or the
 * library's pairing code. Whatever must hold once (a session's ticket, a
 * failed-login count) holds across instances, and an instance may die
 * without losing anything. Skips (77) when PostgreSQL is not installed. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"

static char pg_bin[1024];
static char cluster[64];      /* /tmp/pb-pg-XXXXXX: data/ and sock/ */
static char db_url[512], url_fmt[512], createdb_cmd[1400];
static char *dir;
static char imd_home[4096];
static bool as_nobody;        /* the server refuses to run as root */
static pb_test_imd_t a, b;
static pb_test_host_t h; /* each case's host, stopped after it */

static void path(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
}

/* Runs a PostgreSQL program (as nobody when we are root); 0 on success.
 * Not through pb_test_run: the server pg_ctl starts would keep the pipes
 * it collects output from open. Output goes to cluster/pg.out, shown on
 * failure. */
static int pg_run(const char *prog, char *const args[])
{
	char tool[1100], outf[128];
	char *argv[32];
	int n = 0, status = 0;
	pid_t pid;

	snprintf(tool, sizeof(tool), "%s/%s", pg_bin, prog);
	snprintf(outf, sizeof(outf), "%s/pg.out", cluster);
	if (as_nobody) {
		argv[n++] = "/usr/sbin/runuser";
		argv[n++] = "-u";
		argv[n++] = "nobody";
		argv[n++] = "--";
	}
	argv[n++] = tool;
	for (size_t i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY), out = open(outf, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		size_t len = 0;
		uint8_t *text = pb_test_read_file(outf, &len);

		printf("%s failed: %.*s\n", prog, (int)len, text != NULL ? (const char *)text : "");
		free(text);
		return 1;
	}
	return 0;
}

static void imd_cmd(char *const args[], int want)
{
	char *tool = pb_test_tool("peerback-imd");
	char *argv[16] = { tool, "--home", imd_home };
	char *env[] = { "PEERBACK_PASSWORD=" PB_TEST_PASSWORD, NULL };
	int n = 3;

	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	assert_int_equal(pb_test_run(argv, env, 60, NULL, NULL), want);
	free(tool);
}

/* Starts instance *i on the shared home and database (accounts were added
 * by the first start). */
static void start_instance(pb_test_imd_t *i, const char *const *accounts)
{
	pb_test_imd_start(i, dir, accounts, NULL);
}

/* A cluster in /tmp/pb-pg-XXXXXX with one database, "peerback"; sets
 * db_url and PEERBACK_IMD_DB, so that every peerback-imd started from here
 * on uses it. 0 on success. */
static int cluster_start(void)
{
	char data[128], sock[128], port[16], logf[160], opts[512];
	struct passwd *pw = getpwnam("nobody");

	snprintf(cluster, sizeof(cluster), "/tmp/pb-pg-XXXXXX");
	if (mkdtemp(cluster) == NULL || chmod(cluster, 0755) != 0)
		return -1;
	snprintf(data, sizeof(data), "%s/data", cluster);
	snprintf(sock, sizeof(sock), "%s/sock", cluster);
	snprintf(logf, sizeof(logf), "%s/log", sock);
	if (mkdir(data, 0700) != 0 || mkdir(sock, 0700) != 0)
		return -1;
	if (as_nobody && (pw == NULL || chown(data, pw->pw_uid, pw->pw_gid) != 0 ||
			  chown(sock, pw->pw_uid, pw->pw_gid) != 0))
		return -1;
	/* The port only names the socket file: nothing listens on TCP. */
	snprintf(port, sizeof(port), "%u", 20000 + (unsigned)getpid() % 20000);
	{
		char *initdb[] = { "-D", data, "-U", "peerback", "--auth=trust", "-E", "UTF8", "--no-sync", NULL };
		if (pg_run("initdb", initdb) != 0)
			return -1;
	}
	snprintf(opts, sizeof(opts), "-k %s -p %s -c listen_addresses='' -c fsync=off -c full_page_writes=off", sock,
		 port);
	{
		char *start[] = { "-D", data, "-l", logf, "-w", "-o", opts, "start", NULL };
		if (pg_run("pg_ctl", start) != 0)
			return -1;
	}
	{
		char *createdb[] = { "-h", sock, "-p", port, "-U", "peerback", "peerback", NULL };
		if (pg_run("createdb", createdb) != 0)
			return -1;
	}
	snprintf(db_url, sizeof(db_url), "postgresql:///peerback?host=%s&port=%s&user=peerback", sock, port);
	/* For --with-pg: how the harness makes a database for each further
	 * service (tests/util/harness.c). */
	snprintf(url_fmt, sizeof(url_fmt), "postgresql:///%%s?host=%s&port=%s&user=peerback", sock, port);
	snprintf(createdb_cmd, sizeof(createdb_cmd), "%s/createdb -h %s -p %s -U peerback", pg_bin, sock, port);
	return setenv("PEERBACK_IMD_DB", db_url, 1);
}

static void cluster_stop(void)
{
	char data[128];
	char *stop[] = { "-D", data, "-m", "immediate", "-w", "stop", NULL };

	snprintf(data, sizeof(data), "%s/data", cluster);
	(void)pg_run("pg_ctl", stop);
	pb_test_rmtree(cluster);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", "carol", NULL };

	(void)state;
	assert_int_equal(cluster_start(), 0);
	dir = pb_test_tmpdir("imd-pg");
	snprintf(imd_home, sizeof(imd_home), "%s/imd", dir);
	start_instance(&a, accounts);
	start_instance(&b, NULL);
	{
		char *link[] = { "link-accounts", "alice", "carol", NULL };
		imd_cmd(link, 0);
	}
	return 0;
}

/* After each case, whether it passed or not: its host stopped, instance A
 * running again. */
static int after_case(void **state)
{
	(void)state;
	if (h.proc.pid > 0)
		pb_test_host_stop(&h);
	if (a.proc.pid <= 0)
		start_instance(&a, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_imd_stop(&a);
	pb_test_imd_stop(&b);
	cluster_stop();
	pb_test_rmtree(dir);
	free(dir);
	return 0;
}

/* --with-pg PROGRAM: runs another test program (one whose account service
 * is one peerback-imd, started through the harness) with its service on a
 * fresh cluster; its exit status. */
static int with_pg(char *const argv[])
{
	int status = 0;
	pid_t pid;

	if (cluster_start() != 0 || setenv("PB_TEST_PG_URL_FMT", url_fmt, 1) != 0 ||
	    setenv("PB_TEST_PG_CREATEDB", createdb_cmd, 1) != 0) {
		cluster_stop();
		return 1;
	}
	pid = fork();
	if (pid == 0) {
		pb_test_execv(argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		status = -1;
	cluster_stop();
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* The health command: ready on the shared database with its schema
 * version; not ready (exit 1) when the database does not answer. */
static void test_health(void **state)
{
	char *tool = pb_test_tool("peerback-imd");
	char *argv[] = { tool, "--home", imd_home, "health", NULL };
	char *bad[] = { tool, "--home", imd_home, "--db", "postgresql:///peerback?host=/nonexistent&user=peerback",
			"health", NULL };
	char *out = NULL;

	(void)state;
	assert_int_equal(pb_test_run(argv, NULL, 30, &out, NULL), 0);
	assert_non_null(strstr(out, "\"ready\":true"));
	assert_non_null(strstr(out, "\"store\":\"postgresql\""));
	assert_non_null(strstr(out, "\"schema\":1"));
	free(out);
	assert_int_equal(pb_test_run(bad, NULL, 30, &out, NULL), 1);
	assert_non_null(strstr(out, "\"ready\":false"));
	free(out);
	free(tool);
}

/* The host registers its pairing session at instance B, the phone (a
 * linked sub-account) gets its ticket from instance A and pairs; then, with
 * A stopped, the phone logs in through B and its remembered connection goes
 * through: both sides ask B whether the accounts are linked. */
static void test_pair_through_a_remembered_through_b(void **state)
{
	char hhome[4096], p1[4096], line[4096], *out = NULL, *err = NULL;
	char *ping[] = { "--json", "ping", NULL };
	const char *hargs[] = { "--max-failures", "1000", NULL };

	(void)state;
	path(hhome, "host-b");
	path(p1, "p1");
	assert_int_equal(pb_test_login(&b, hhome, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&a, p1, "carol", "carols-phone"), 0);
	pb_test_host_start(&h, hhome, "127.0.0.1:0", hargs);
	assert_int_equal(pb__phone_pair(p1, h.uri, 10000, NULL, NULL), 0);
	assert_true(pb_test_host_wait(&h, "paired", line, sizeof(line), 10000) > 0);

	/* A goes away; the phone's device logs in again through B (same id,
	 * same keys: the binding A recorded holds at B) and reconnects. */
	pb_test_imd_stop(&a);
	assert_int_equal(pb_test_login(&b, p1, "carol", "carols-phone"), 0);
	if (pb_test_peerback(p1, ping, &out, &err) != 0)
		printf("ping: %s%s", out, err);
	assert_non_null(strstr(out, "\"event\":\"pong\""));
	free(out);
	free(err);
	assert_true(pb_test_host_wait(&h, "connected", line, sizeof(line), 10000) > 0);
}

/* A session's one ticket, issued by instance A, is refused when asked for
 * again at instance B. */
static void test_ticket_replayed_across_instances(void **state)
{
	char hhome[4096], p2[4096], p3[4096], line[4096];
	const char *hargs[] = { "--max-failures", "1000", NULL };
	uint8_t t2[PB_CERT_MAX], t3[PB_CERT_MAX];
	size_t t2_len = 0, t3_len = 0;
	pb_pair_faults_t f;

	(void)state;
	path(hhome, "host-a");
	path(p2, "p2");
	path(p3, "p3");
	assert_int_equal(pb_test_login(&a, hhome, "alice", "laptop"), 0);
	assert_int_equal(pb_test_login(&a, p2, "alice", "phone-2"), 0);
	assert_int_equal(pb_test_login(&b, p3, "alice", "phone-3"), 0);
	pb_test_host_start(&h, hhome, "127.0.0.1:0", hargs);

	memset(&f, 0, sizeof(f));
	f.ticket_only = true;
	f.ticket_out = t2;
	f.ticket_out_len = &t2_len;
	assert_int_equal(pb__phone_pair(p2, h.uri, 10000, &f, NULL), 0);
	assert_true(t2_len > 0);

	f.ticket_out = t3;
	f.ticket_out_len = &t3_len;
	assert_int_equal(pb__phone_pair(p3, h.uri, 10000, &f, NULL), PB_EACCT_SECRET_USED);
	assert_int_equal(t3_len, 0);

	/* The ticket A gave still pairs its phone, once. */
	memset(&f, 0, sizeof(f));
	f.ticket = t2;
	f.ticket_len = t2_len;
	f.skip_ticket_request = true;
	assert_int_equal(pb__phone_pair(p2, h.uri, 10000, &f, NULL), 0);
	assert_true(pb_test_host_wait(&h, "paired", line, sizeof(line), 10000) > 0);
}

/* Two phones ask for one session's ticket at the same moment, one at A
 * and one at B: exactly one gets it, whatever the timing. */
static void test_ticket_race_across_instances(void **state)
{
	char hhome[4096], p7[4096], p8[4096];
	const char *hargs[] = { "--max-failures", "1000", NULL };
	const char *phones[2] = { p7, p8 };
	int got[2];

	(void)state;
	path(hhome, "host-race");
	path(p7, "p7");
	path(p8, "p8");
	assert_int_equal(pb_test_login(&a, hhome, "alice", "race-desk"), 0);
	assert_int_equal(pb_test_login(&a, p7, "alice", "phone-7"), 0);
	assert_int_equal(pb_test_login(&b, p8, "alice", "phone-8"), 0);
	pb_test_host_start(&h, hhome, "127.0.0.1:0", hargs);
	fflush(stdout);
	for (int i = 0; i < 2; i++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			uint8_t t[PB_CERT_MAX];
			size_t t_len = 0;
			pb_pair_faults_t f;
			int rc;

			memset(&f, 0, sizeof(f));
			f.ticket_only = true;
			f.ticket_out = t;
			f.ticket_out_len = &t_len;
			rc = pb__phone_pair(phones[i], h.uri, 10000, &f, NULL);
			_exit(rc == 0 ? 0 : rc == PB_EACCT_SECRET_USED ? 3 : 4);
		}
		got[i] = pid;
	}
	for (int i = 0; i < 2; i++) {
		int status = 0;

		assert_int_equal(waitpid(got[i], &status, 0), got[i]);
		assert_true(WIFEXITED(status));
		got[i] = WEXITSTATUS(status);
	}
	assert_true((got[0] == 0 && got[1] == 3) || (got[0] == 3 && got[1] == 0));
}

/* The host registered its session at A; A dies (SIGKILL) before the phone
 * asks for its ticket; the phone gets it from B and pairs. */
static void test_instance_killed_mid_pairing(void **state)
{
	char hhome[4096], p4[4096], line[4096];
	const char *hargs[] = { "--max-failures", "1000", NULL };

	(void)state;
	path(hhome, "host-killed");
	path(p4, "p4");
	assert_int_equal(pb_test_login(&a, hhome, "alice", "tower"), 0);
	assert_int_equal(pb_test_login(&b, p4, "alice", "phone-4"), 0);
	pb_test_host_start(&h, hhome, "127.0.0.1:0", hargs); /* its session is registered at A */
	assert_int_equal(pb_test_stop(&a.proc, SIGKILL), 128 + SIGKILL);
	a.proc.pid = 0;
	assert_int_equal(pb__phone_pair(p4, h.uri, 10000, NULL, NULL), 0);
	assert_true(pb_test_host_wait(&h, "paired", line, sizeof(line), 10000) > 0);
}

/* Five failed logins at A lock the source out at B too; A's structured log
 * names them without the password. */
static void test_rate_limit_shared(void **state)
{
	char p5[4096], p6[4096];

	(void)state;
	path(p5, "p5");
	path(p6, "p6");
	assert_int_equal(pb__mkdirs(p5, 0700), 0);
	assert_int_equal(pb__mkdirs(p6, 0700), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(pb__phone_login(p5, a.addr, a.key, "alice", "wrong password", "phone-5"),
				 PB_EACCT_LOGIN);
	assert_int_equal(pb__phone_login(p6, b.addr, b.key, "alice", PB_TEST_PASSWORD, "phone-6"), PB_EACCT_RATE);

	/* A's log: one JSON object a line, the refused logins among them,
	 * and no password. */
	{
		char line[4096];
		int logins = 0;

		while (pb_test_readline(&a.proc, line, sizeof(line), 500) > 0) {
			assert_true(line[0] == '{' && line[strlen(line) - 1] == '}');
			assert_null(strstr(line, "wrong password"));
			assert_null(strstr(line, PB_TEST_PASSWORD));
			if (strstr(line, "\"event\":\"login\"") != NULL &&
			    strstr(line, "\"result\":\"PB_EACCT_LOGIN\"") != NULL)
				logins++;
		}
		assert_int_equal(logins, 5);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_health, after_case),
		cmocka_unit_test_teardown(test_pair_through_a_remembered_through_b, after_case),
		cmocka_unit_test_teardown(test_ticket_replayed_across_instances, after_case),
		cmocka_unit_test_teardown(test_ticket_race_across_instances, after_case),
		cmocka_unit_test_teardown(test_instance_killed_mid_pairing, after_case),
		/* Last: it locks this machine's address out for a minute. */
		cmocka_unit_test_teardown(test_rate_limit_shared, after_case),
	};
	const char *bin = getenv("PB_PG_BIN");
	char initdb[1100];

	if (sodium_init() < 0)
		return 1;
	snprintf(pg_bin, sizeof(pg_bin), "%s", bin != NULL ? bin : "/usr/lib/postgresql/15/bin");
	snprintf(initdb, sizeof(initdb), "%s/initdb", pg_bin);
	if (access(initdb, X_OK) != 0) {
		printf("SKIP: PostgreSQL is not installed (no %s; Debian's postgresql package, which tools/run "
		       "installs, provides it; PB_PG_BIN names another directory)\n",
		       initdb);
		return 77;
	}
	if (geteuid() == 0) {
		if (getpwnam("nobody") == NULL || access("/usr/sbin/runuser", X_OK) != 0) {
			printf("SKIP: running as root, and PostgreSQL refuses root: no user 'nobody' or no runuser\n");
			return 77;
		}
		as_nobody = true;
	}
	if (argc >= 3 && strcmp(argv[1], "--with-pg") == 0)
		return with_pg(argv + 2);
	return cmocka_run_group_tests(tests, setup, teardown);
}
