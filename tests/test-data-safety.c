/* Data safety in ordinary use, end to end with the real programs on
 * loopback: a backup of some kinds keeps the others in its snapshot, so
 * prune cannot lose them, and a restore that finds nothing says so; a
 * restore into a device that holds other or older versions of the items
 * merges them (and --dry-run tells what it would change); every device of
 * an account uses one recovery passphrase and restoring from another
 * device never swaps this one's key; a damaged file is named and skipped
 * while the rest is backed up. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "agent/util/fsutil.h"
#include "peerback/store.h"

#define PASSPHRASE "recovery passphrase for tests"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096];
static char *err_text, *out_text;

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

/* Runs peerback on home with this recovery passphrase; stdout and stderr
 * stay in out_text and err_text until the next run. */
static int run_pass(const char *home, char *const args[], const char *passphrase)
{
	char *tool = pb_test_tool("peerback");
	char pass_env[256];
	char *env[] = { "PEERBACK_PASSWORD=" PB_TEST_PASSWORD, pass_env, "PEERBACK_TEST_WEAK_KDF=1", NULL };
	char *argv[32];
	int n = 0, rc;

	snprintf(pass_env, sizeof(pass_env), "PEERBACK_RECOVERY_PASSPHRASE=%s", passphrase);
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

static int run(const char *home, char *const args[])
{
	return run_pass(home, args, PASSPHRASE);
}

/* Logs home in and pairs it; returns its device id (hex) in id; generates
 * its data (seed) into home/device. */
static void new_phone(char *home, const char *name, char id[64], const char *seed)
{
	char *pair[] = { "pair", host.uri, NULL };
	char dev[4200], line[4096];
	char *gen[] = { "gen", "--out", dev, "--seed", (char *)seed, "--size", "small", NULL };

	mk(home, name);
	assert_int_equal(pb_test_login(&imd, home, "alice", name), 0);
	assert_int_equal(pb_test_peerback(home, pair, NULL, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	assert_int_equal(pb_test_json_str(line, "device", id, 64), 0);
	kill(host.proc.pid, SIGUSR1);
	assert_true(pb_test_host_wait(&host, "advertise", line, sizeof(line), 10000) > 0);
	snprintf(dev, sizeof(dev), "%s/device", home);
	assert_int_equal(run(home, gen), 0);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static char *slurp(const char *path)
{
	size_t len;
	char *s = (char *)pb_test_read_file(path, &len);

	assert_non_null(s);
	return s;
}

static void spit(const char *path, const char *s, size_t len)
{
	assert_int_equal(pb_test_write_file(path, s, len), 0);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };

	(void)state;
	dir = pb_test_tmpdir("data-safety");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", NULL);
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

/* --- 1: a partial backup, then prune ----------------------------------------- */

/* `backup --kind contacts` after a full backup, then `host prune
 * --keep-last 1`: the one snapshot left still holds every kind, so a
 * restore brings all of it back; a restore of a kind the backup does not
 * hold says so and exits 10. */
static void test_partial_backup_then_prune(void **state)
{
	char home[4096], id[64], dev[4200], mifare[4300], all[4200], chats[4200], none[4200];
	char *backup[] = { "backup", "--device", dev, NULL };
	char *backup_contacts[] = { "backup", "--device", dev, "--kind", "contacts", NULL };
	char *prune[] = { "--json", "host", "prune", "--keep-last", "1", NULL };
	char *restore_chat[] = { "restore", "--to", chats, "--kind", "chat", NULL };
	char *restore_all[] = { "restore", "--to", all, NULL };
	char *restore_mifare[] = { "restore", "--to", none, "--kind", "mifare", NULL };
	char *rm[] = { "/bin/rm", "-rf", mifare, NULL };
	char path[4400];

	(void)state;
	new_phone(home, "partial", id, "5");
	snprintf(dev, sizeof(dev), "%s/device", home);
	snprintf(mifare, sizeof(mifare), "%s/mifare", dev);
	assert_int_equal(pb_test_run(rm, NULL, 30, NULL, NULL), 0);
	assert_int_equal(run(home, backup), 0);
	assert_int_equal(run(home, backup_contacts), 0);

	pb_test_host_stop(&host);
	assert_int_equal(run(host_home, prune), 0);
	pb_test_host_restart(&host, NULL);

	snprintf(chats, sizeof(chats), "%s/partial-chats", dir);
	assert_int_equal(run(home, restore_chat), 0);
	snprintf(path, sizeof(path), "%s/chats", chats);
	snprintf(mifare, sizeof(mifare), "%s/chats", dev);
	assert_int_equal(pb_test_same_tree(mifare, path), 0);

	snprintf(all, sizeof(all), "%s/partial-all", dir);
	assert_int_equal(run(home, restore_all), 0);
	assert_int_equal(pb_test_same_tree(dev, all), 0);

	/* Nothing of that kind was ever backed up: said, and not a success. */
	snprintf(none, sizeof(none), "%s/partial-none", dir);
	assert_int_equal(run(home, restore_mifare), 10);
	assert_non_null(strstr(err_text, "no backup found"));
	assert_int_not_equal(access(none, F_OK), 0);
}

/* --- 2: restoring into a device that has some of the data --------------------- */

/* The first chat file with at least three messages: its folder name. */
static void pick_chat(const char *dev, char *chat, size_t cap)
{
	char chats[4200], path[4600];
	struct dirent *e;
	DIR *d;

	snprintf(chats, sizeof(chats), "%s/chats", dev);
	d = opendir(chats);
	assert_non_null(d);
	chat[0] = 0;
	while ((e = readdir(d)) != NULL && chat[0] == 0) {
		char *s;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/result.json", chats, e->d_name);
		if (access(path, F_OK) != 0)
			continue;
		s = slurp(path);
		if (count(s, "\n  {\"id\":") >= 3)
			snprintf(chat, cap, "%s", e->d_name);
		free(s);
	}
	closedir(d);
	assert_true(chat[0] != 0);
}

/* Removes the n-th (0-based) message line of a chat file; returns its id. */
static long drop_message(const char *path, int n)
{
	char *s = slurp(path), *p = s, *end;
	long mid;

	for (int i = 0; i <= n; i++) {
		p = strstr(p + 1, "\n  {\"id\":");
		assert_non_null(p);
	}
	p++;
	mid = strtol(p + 8, NULL, 10);
	end = strchr(p, '\n');
	assert_non_null(end);
	memmove(p, end + 1, strlen(end + 1) + 1);
	spit(path, s, strlen(s));
	free(s);
	return mid;
}

/* Removes the n-th (0-based) card of a vCard book; returns its UID without
 * a urn:uuid: prefix. */
static void drop_card(const char *path, int n, char *uid, size_t cap)
{
	char *s = slurp(path), *p = s, *next, *u;

	for (int i = 0; i < n; i++) {
		p = strstr(p + 1, "BEGIN:VCARD");
		assert_non_null(p);
	}
	next = strstr(p + 1, "BEGIN:VCARD");
	assert_non_null(next);
	u = strstr(p, "\nUID:");
	assert_true(u != NULL && u < next);
	u += 5;
	if (strncmp(u, "urn:uuid:", 9) == 0)
		u += 9;
	snprintf(uid, cap, "%.*s", (int)strcspn(u, "\r\n"), u);
	memmove(p, next, strlen(next) + 1);
	spit(path, s, strlen(s));
	free(s);
}

static void digest(const char *path, char out[65])
{
	pb_test_file_digest(path, out);
	assert_string_not_equal(out, "absent");
}

static void test_restore_merges(void **state)
{
	char home[4096], id[64], dev[4200], vcf[4300], chat[256], json[4600], uid[256], item[600];
	char other_home[4096], other_id[64], other[4200], other_vcf[4300];
	char vcf0[65], json0[65], now[65];
	char *backup[] = { "backup", "--device", dev, NULL };
	char *restore_item[] = { "restore", "--to", dev, "--id", item, NULL };
	char *restore_dry[] = { "--json", "restore", "--to", dev, "--dry-run", NULL };
	char *restore_other[] = { "restore", "--to", other, "--from", id, NULL };
	long mid;

	(void)state;
	new_phone(home, "merge", id, "5");
	snprintf(dev, sizeof(dev), "%s/device", home);
	snprintf(vcf, sizeof(vcf), "%s/contacts/contacts.vcf", dev);
	pick_chat(dev, chat, sizeof(chat));
	snprintf(json, sizeof(json), "%s/chats/%s/result.json", dev, chat);
	assert_int_equal(run(home, backup), 0);
	digest(vcf, vcf0);
	digest(json, json0);

	/* One card deleted on the phone, then restored by id: back in place. */
	drop_card(vcf, 1, uid, sizeof(uid));
	snprintf(item, sizeof(item), "contact/%s", uid);
	assert_int_equal(run(home, restore_item), 0);
	digest(vcf, now);
	assert_string_equal(now, vcf0);

	/* One message deleted, restored by its id, then by its chat's. */
	mid = drop_message(json, 2);
	snprintf(item, sizeof(item), "chat/%s/msg/%ld", chat, mid);
	assert_int_equal(run(home, restore_item), 0);
	digest(json, now);
	assert_string_equal(now, json0);
	(void)drop_message(json, 2);
	snprintf(item, sizeof(item), "chat/%s", chat);
	assert_int_equal(run(home, restore_item), 0);
	digest(json, now);
	assert_string_equal(now, json0);

	/* --dry-run: a deleted card would be added, the rest left as is; and
	 * nothing is written. */
	drop_card(vcf, 1, uid, sizeof(uid));
	digest(vcf, vcf0);
	assert_int_equal(run(home, restore_dry), 0);
	snprintf(item, sizeof(item), "\"id\":\"contact/%s\",", uid);
	{
		const char *line = strstr(out_text, item);

		assert_non_null(line);
		assert_non_null(strstr(line, "\"change\":\"added\""));
	}
	assert_true(count(out_text, "\"change\":\"unchanged\"") > 10);
	assert_int_equal(count(out_text, "\"change\":\"replaced\""), 0);
	assert_int_equal(count(out_text, "\"change\":\"added\""), 1);
	digest(vcf, now);
	assert_string_equal(now, vcf0);

	/* A whole restore into another phone's non-empty data merges with it;
	 * a second one changes nothing (no duplicates). */
	new_phone(other_home, "merge-other", other_id, "9");
	snprintf(other, sizeof(other), "%s/device", other_home);
	snprintf(other_vcf, sizeof(other_vcf), "%s/contacts/contacts.vcf", other);
	{
		char *before = slurp(other_vcf), *after, again[65];
		size_t cards_before = count(before, "BEGIN:VCARD");

		assert_int_equal(run(other_home, restore_other), 0);
		after = slurp(other_vcf);
		assert_true(count(after, "BEGIN:VCARD") > cards_before);
		/* Every card the phone had is there once. */
		for (char *p = before; (p = strstr(p, "\nUID:")) != NULL; p++) {
			char u[300];

			snprintf(u, sizeof(u), "\nUID:%.*s\r", (int)strcspn(p + 5, "\r\n"), p + 5);
			assert_int_equal(count(after, u), 1);
		}
		digest(other_vcf, now);
		assert_int_equal(run(other_home, restore_other), 0);
		digest(other_vcf, again);
		assert_string_equal(now, again);
		free(before);
		free(after);
	}
}

/* --- 3: one recovery passphrase per account ----------------------------------- */

static void test_one_passphrase_per_account(void **state)
{
	char a[4096], d[4096], n[4096], e[4096], a_id[64], d_id[64], n_id[64], e_id[64];
	char a_dev[4200], d_dev[4200], e_dev[4200], to1[4200], to2[4200], to3[4200], path[4300];
	char *backup_a[] = { "backup", "--device", a_dev, NULL };
	char *backup_d[] = { "backup", "--device", d_dev, NULL };
	char *backup_e[] = { "backup", "--device", e_dev, NULL };
	char *restore_from_d[] = { "restore", "--to", to1, "--from", d_id, NULL };
	char *restore[] = { "restore", "--to", to2, NULL };
	char *restore_e[] = { "restore", "--to", to3, NULL };
	char *verify[] = { "verify", NULL };
	char ka[65], kd[65];

	(void)state;
	new_phone(a, "pa", a_id, "11");
	new_phone(d, "pd", d_id, "12");
	new_phone(n, "pn", n_id, "13");
	snprintf(a_dev, sizeof(a_dev), "%s/device", a);
	snprintf(d_dev, sizeof(d_dev), "%s/device", d);
	assert_int_equal(run(a, backup_a), 0);
	assert_int_equal(run(d, backup_d), 0);
	assert_int_equal(run(a, backup_a), 0); /* A's is the account's latest */

	/* A new phone restores D's backup, then the account's latest (A's). */
	snprintf(to1, sizeof(to1), "%s/from-d", dir);
	snprintf(to2, sizeof(to2), "%s/latest", dir);
	assert_int_equal(run(n, restore_from_d), 0);
	assert_int_equal(pb_test_same_tree(d_dev, to1), 0);
	assert_int_equal(run(n, restore), 0);
	assert_int_equal(pb_test_same_tree(a_dev, to2), 0);
	assert_int_equal(run(n, verify), 0);

	/* One master key for the account's devices. */
	snprintf(path, sizeof(path), "%s/master.key", a);
	digest(path, ka);
	snprintf(path, sizeof(path), "%s/master.key", d);
	digest(path, kd);
	assert_string_equal(ka, kd);

	/* Another device cannot set a second passphrase for the account, and a
	 * wrong one is called wrong, never damage. */
	new_phone(e, "pe", e_id, "14");
	snprintf(e_dev, sizeof(e_dev), "%s/device", e);
	snprintf(to3, sizeof(to3), "%s/e", dir);
	assert_int_not_equal(run_pass(e, restore_e, "not the account passphrase"), 0);
	assert_non_null(strstr(err_text, "wrong recovery passphrase"));
	assert_null(strstr(err_text, "hash"));
	assert_int_not_equal(run_pass(e, backup_e, "a second passphrase for it"), 0);
	assert_non_null(strstr(err_text, "wrong recovery passphrase"));
	snprintf(path, sizeof(path), "%s/master.key", e);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(run(e, backup_e), 0);

	/* A device that backed up with a key of its own (as each did before
	 * one key per account): A restores from it with the passphrase and
	 * keeps its own key. */
	{
		char l[4096], l_id[64], l_dev[4200], to4[4200], ka_after[65];
		char *backup_l[] = { "backup", "--device", l_dev, NULL };
		char *restore_from_l[] = { "restore", "--to", to4, "--from", l_id, NULL };
		uint8_t mk[PB_MASTERKEY_LEN], wrapped[PB_MASTERKEY_WRAPPED_LEN];
		pb_pwhash_params_t p = pb_pwhash_params_interactive();

		new_phone(l, "pl", l_id, "15");
		snprintf(l_dev, sizeof(l_dev), "%s/device", l);
		pb_masterkey_generate(mk);
		assert_int_equal(pb_masterkey_wrap(mk, PASSPHRASE, &p, wrapped), 0);
		snprintf(path, sizeof(path), "%s/master.key", l);
		spit(path, (const char *)mk, sizeof(mk));
		snprintf(path, sizeof(path), "%s/master.wrapped", l);
		spit(path, (const char *)wrapped, sizeof(wrapped));
		sodium_memzero(mk, sizeof(mk));
		assert_int_equal(run(l, backup_l), 0);
		snprintf(to4, sizeof(to4), "%s/from-l", dir);
		assert_int_equal(run(a, restore_from_l), 0);
		assert_int_equal(pb_test_same_tree(l_dev, to4), 0);
		snprintf(path, sizeof(path), "%s/master.key", a);
		digest(path, ka_after);
		assert_string_equal(ka_after, ka);
		assert_int_equal(run(a, verify), 0);
	}
}

/* --- 5: damaged files ---------------------------------------------------------- */

/* A truncated MIFARE dump and a credential that is not JSON: each named
 * with its reason and skipped, everything else backed up, the result
 * partial (exit 3). */
static void test_damaged_files_skipped(void **state)
{
	char home[4096], id[64], dev[4200], mfd[4600] = "", cred[4300], to[4200], path[4600];
	char *backup[] = { "--json", "backup", "--device", dev, NULL };
	char *restore[] = { "restore", "--to", to, NULL };
	struct dirent *de;
	DIR *d;

	(void)state;
	new_phone(home, "damaged", id, "5");
	snprintf(dev, sizeof(dev), "%s/device", home);
	snprintf(path, sizeof(path), "%s/mifare", dev);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (mfd[0] == 0 && strstr(de->d_name, ".mfd") != NULL)
			snprintf(mfd, sizeof(mfd), "%s/%s", path, de->d_name);
	closedir(d);
	assert_true(mfd[0] != 0);
	assert_int_equal(truncate(mfd, 1000), 0);
	snprintf(cred, sizeof(cred), "%s/credentials/other-000.json", dev);
	spit(cred, "{\"id\": \"other-000\", \"kind\": ", 29);

	assert_int_equal(run(home, backup), 3);
	assert_int_equal(count(out_text, "{\"event\":\"skipped\""), 2);
	assert_non_null(strstr(out_text, strrchr(mfd, '/') + 1));
	assert_non_null(strstr(out_text, "other-000.json"));
	assert_non_null(strstr(out_text, "\"partial\":true"));
	assert_non_null(strstr(err_text, "1000 bytes"));
	assert_non_null(strstr(err_text, "other-000.json"));

	/* The rest is in the backup; the damaged files are not. */
	snprintf(to, sizeof(to), "%s/damaged-restore", dir);
	assert_int_equal(run(home, restore), 0);
	snprintf(path, sizeof(path), "%s/credentials/other-000.json", to);
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/mifare/%s", to, strrchr(mfd, '/') + 1);
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/credentials/identity-001.json", to);
	assert_int_equal(access(path, F_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_partial_backup_then_prune),
		cmocka_unit_test(test_restore_merges),
		cmocka_unit_test(test_one_passphrase_per_account),
		cmocka_unit_test(test_damaged_files_skipped),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
