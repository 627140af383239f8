/* Keeping and forgetting snapshots, end to end with the real programs on
 * loopback: `host prune` keeps per phone the snapshots its --keep-last,
 * --keep-daily, --keep-weekly and --keep-monthly rules select, and its
 * --dry-run tells exactly that and what it would free without changing
 * anything; `backup --dry-run` tells what a backup would send and sends
 * nothing; `host verify` and `host prune` run while the host serves. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "harness.h"
#include "agent/util/fsutil.h"

#define PASSPHRASE "recovery passphrase for tests"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone_home[4096], index_db[4200];
static char *err_text, *out_text;

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

/* Runs peerback on home; stdout and stderr stay in out_text and err_text
 * until the next run. */
static int run(const char *home, char *const args[])
{
	char *tool = pb_test_tool("peerback");
	char *env[] = { "PEERBACK_PASSWORD=" PB_TEST_PASSWORD, "PEERBACK_RECOVERY_PASSPHRASE=" PASSPHRASE,
			"PEERBACK_TEST_WEAK_KDF=1", "TZ=UTC", NULL };
	char *argv[32];
	int n = 0, rc;

	argv[n++] = tool;
	argv[n++] = "--home";
	argv[n++] = (char *)home;
	for (size_t i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	free(err_text);
	free(out_text);
	err_text = out_text = NULL;
	rc = pb_test_run(argv, env, 300, &out_text, &err_text);
	printf("peerback %s %s: exit %d\n%s%s", args[0], args[1] != NULL ? args[1] : "", rc, out_text, err_text);
	free(tool);
	return rc;
}

/* One integer from the host's index (read-only, beside a running host). */
static long long query(const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;

	assert_int_equal(sqlite3_open_v2(index_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void exec_sql(const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(index_db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* The backup-done event of the last run (after its progress events). */
static const char *done_event(void)
{
	const char *p = strstr(out_text, "\"backup-done\"");

	assert_non_null(p);
	return p;
}

/* Generates device data from seed into dir/dev-SEED and backs it up. */
static void backup_seed(const char *seed)
{
	char dev[4200];
	char *gen[] = { "gen", "--out", dev, "--seed", (char *)seed, "--size", "small", NULL };
	char *backup[] = { "backup", "--device", dev, NULL };

	snprintf(dev, sizeof(dev), "%s/dev-%s", dir, seed);
	assert_int_equal(run(phone_home, gen), 0);
	assert_int_equal(run(phone_home, backup), 0);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	char *pair[] = { "pair", NULL, NULL };
	char line[4096];

	(void)state;
	dir = pb_test_tmpdir("prune");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	mk(phone_home, "phone");
	snprintf(index_db, sizeof(index_db), "%s/store/index.db", host_home);
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, phone_home, "alice", "phone"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", NULL);
	pair[1] = host.uri;
	assert_int_equal(pb_test_peerback(phone_home, pair, NULL, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	kill(host.proc.pid, SIGUSR1);
	assert_true(pb_test_host_wait(&host, "advertise", line, sizeof(line), 10000) > 0);
	/* Four snapshots, each of other data. */
	backup_seed("1");
	backup_seed("2");
	backup_seed("3");
	backup_seed("4");
	assert_int_equal(query("SELECT COUNT(*) FROM snapshots"), 4);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_cleanup(&host, &imd, dir);
	free(err_text);
	free(out_text);
	return 0;
}

/* The snapshots, oldest first, were made on 2026-01-05, twice on
 * 2026-03-10 and on 2026-03-20 (UTC; the host records the time). Keeping
 * the last 2 days keeps the 4th and the 3rd (the newer of 03-10); the last
 * 2 months the 4th (March) and the 1st (January). The dry run says so and
 * changes nothing; the real prune then removes what the dry run said. */
static void test_prune_rules_and_dry_run(void **state)
{
	char *dry_daily[] = { "--json", "host", "prune", "--keep-daily", "2", "--dry-run", NULL };
	char *dry_monthly[] = { "--json", "host", "prune", "--dry-run", "--keep-monthly", "2", NULL };
	char *monthly[] = { "--json", "host", "prune", "--keep-monthly", "2", NULL };
	char *text_dry[] = { "host", "prune", "--keep-weekly", "1", "--dry-run", NULL };
	long long chunks_before, plan_chunks, plan_bytes;

	(void)state;
	pb_test_host_stop(&host);
	exec_sql("UPDATE snapshots SET time = CASE"
		 " (SELECT COUNT(*) FROM snapshots s WHERE s.id < snapshots.id)"
		 " WHEN 0 THEN 1767614400" /* 2026-01-05 12:00 */
		 " WHEN 1 THEN 1773140400" /* 2026-03-10 11:00 */
		 " WHEN 2 THEN 1773147600" /* 2026-03-10 13:00 */
		 " ELSE 1774008000 END");  /* 2026-03-20 12:00 */
	chunks_before = query("SELECT COUNT(*) FROM chunks");

	assert_int_equal(run(host_home, dry_daily), 0);
	assert_int_equal(count(out_text, "\"prune-plan\""), 1);
	assert_int_equal(pb_test_json_num(out_text, "snapshots_removed"), 2);
	assert_true(pb_test_json_num(out_text, "chunks_removed") > 0);

	assert_int_equal(run(host_home, text_dry), 0);
	assert_non_null(strstr(out_text, "would keep 1 snapshots, remove 3"));
	assert_int_equal(count(out_text, "  remove "), 3);
	assert_non_null(strstr(out_text, "2026-03-20 12:00"));

	assert_int_equal(run(host_home, dry_monthly), 0);
	plan_chunks = pb_test_json_num(out_text, "chunks_removed");
	plan_bytes = pb_test_json_num(out_text, "bytes_freed");
	assert_true(plan_chunks > 0 && plan_bytes > 0);
	/* Nothing written by the dry runs. */
	assert_int_equal(query("SELECT COUNT(*) FROM snapshots"), 4);
	assert_int_equal(query("SELECT COUNT(*) FROM chunks"), chunks_before);

	assert_int_equal(run(host_home, monthly), 0);
	assert_int_equal(pb_test_json_num(out_text, "snapshots_removed"), 2);
	assert_int_equal(pb_test_json_num(out_text, "chunks_removed"), plan_chunks);
	assert_int_equal(query("SELECT COUNT(*) FROM snapshots"), 2);
	assert_int_equal(query("SELECT COUNT(*) FROM snapshots WHERE time IN (1767614400, 1774008000)"), 2);
	assert_int_equal(query("SELECT COUNT(*) FROM chunks"), chunks_before - plan_chunks);
	pb_test_host_restart(&host, NULL);
}

/* `backup --dry-run` after the device changed: it tells how many items
 * changed and what it would send, and sends nothing (no chunk, no
 * snapshot); the phone's state is untouched, so the real backup then sends
 * just what the dry run said. */
static void test_backup_dry_run(void **state)
{
	char dev[4200];
	char *gen[] = { "gen", "--out", dev, "--seed", "5", "--size", "small", NULL };
	char *dry[] = { "--json", "backup", "--device", dev, "--dry-run", NULL };
	char *backup[] = { "--json", "backup", "--device", dev, NULL };
	long long snaps, chunks, changed, sent;

	(void)state;
	snprintf(dev, sizeof(dev), "%s/dev-5", dir);
	assert_int_equal(run(phone_home, gen), 0);
	snaps = query("SELECT COUNT(*) FROM snapshots");
	chunks = query("SELECT COUNT(*) FROM chunks");

	assert_int_equal(run(phone_home, dry), 0);
	assert_non_null(strstr(done_event(), "\"dry_run\":true"));
	changed = pb_test_json_num(done_event(), "items_changed");
	sent = pb_test_json_num(done_event(), "chunks_sent");
	assert_true(changed > 0 && sent > 0 && pb_test_json_num(done_event(), "bytes_sent") > 0);
	assert_int_equal(query("SELECT COUNT(*) FROM snapshots"), snaps);
	assert_int_equal(query("SELECT COUNT(*) FROM chunks"), chunks);

	assert_int_equal(run(phone_home, backup), 0);
	assert_int_equal(pb_test_json_num(done_event(), "items_changed"), changed);
	assert_int_equal(pb_test_json_num(done_event(), "chunks_sent"), sent);
	assert_int_equal(query("SELECT COUNT(*) FROM snapshots"), snaps + 1);
}

/* `host verify` and `host prune` while the host serves: verify reads the
 * store beside it; prune is carried out by the running host. A backup
 * afterwards works and the kept snapshot restores. */
static void test_verify_and_prune_while_serving(void **state)
{
	char *verify[] = { "--json", "host", "verify", NULL };
	char *prune[] = { "--json", "host", "prune", "--keep-last", "1", NULL };
	char out_dir[4200];
	char *restore[] = { "restore", "--to", out_dir, NULL };

	struct stat sb;
	char sock[4200];

	(void)state;
	/* Only the host's user may ask it. */
	snprintf(sock, sizeof(sock), "%s/control.sock", host_home);
	assert_int_equal(stat(sock, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_true(query("SELECT COUNT(*) FROM snapshots") > 1);
	assert_int_equal(run(host_home, verify), 0);
	assert_non_null(strstr(out_text, "\"clean\":true"));
	assert_int_equal(run(host_home, prune), 0);
	assert_true(pb_test_json_num(out_text, "snapshots_removed") > 0);
	assert_true(pb_test_json_num(out_text, "chunks_removed") > 0);
	assert_int_equal(query("SELECT COUNT(*) FROM snapshots"), 1);
	assert_int_equal(run(host_home, verify), 0);
	assert_non_null(strstr(out_text, "\"clean\":true"));
	snprintf(out_dir, sizeof(out_dir), "%s/restored", dir);
	assert_int_equal(run(phone_home, restore), 0);
	backup_seed("6");
	assert_int_equal(query("SELECT COUNT(*) FROM snapshots"), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prune_rules_and_dry_run),
		cmocka_unit_test(test_backup_dry_run),
		cmocka_unit_test(test_verify_and_prune_while_serving),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
