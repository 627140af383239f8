/* Backup and restore end to end, with the account service, the host and the
 * phone as their real programs on loopback: byte-for-byte round trips, no
 * plaintext on the host, incremental and resumed backups after the host or
 * the phone is killed, and a full disk on the host. */
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "agent/util/fsutil.h"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone[4096], dev[4096], snap_a_copy[4096];
static char marker_vcard[64], marker_chat[64];
static char snap_a[32];

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

static int run(char *const args[], char **out)
{
	char *err = NULL;
	int rc = pb_test_peerback(phone, args, out, &err);

	if (rc != 0)
		printf("peerback %s: exit %d: %s", args[0], rc, err);
	free(err);
	return rc;
}

static void copy_tree(const char *from, const char *to)
{
	char *argv[] = { "/bin/cp", "-a", (char *)from, (char *)to, NULL };

	assert_int_equal(pb_test_run(argv, NULL, 120, NULL, NULL), 0);
}

/* The final JSON line of a backup or restore. */
static void last_line(const char *out, const char *event, char *line, size_t cap)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "{\"event\":\"%s\"", event);
	p = strstr(out, pat);
	assert_non_null(p);
	snprintf(line, cap, "%.*s", (int)strcspn(p, "\n"), p);
}

static void backup(char *line, size_t cap)
{
	char *args[] = { "--json", "backup", "--device", dev, NULL };
	char *out = NULL;

	assert_int_equal(run(args, &out), 0);
	last_line(out, "backup-done", line, cap);
	printf("%s\n", line);
	free(out);
}

static void plant_markers(void)
{
	char path[4200], text[1024];
	char *argv_c[] = { "import", "contacts", path, "--device", dev, NULL };
	uint8_t r[8];

	randombytes_buf(r, sizeof(r));
	snprintf(marker_vcard, sizeof(marker_vcard), "PBMARKER-VCARD-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
		 r[3], r[4], r[5]);
	randombytes_buf(r, sizeof(r));
	snprintf(marker_chat, sizeof(marker_chat), "PBMARKER-CHAT-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
		 r[4], r[5]);
	snprintf(path, sizeof(path), "%s/marker.vcf", dir);
	snprintf(text, sizeof(text),
		 "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:5e0b9f5e-2f7a-4a57-9a83-1c2b3d4e5f60\r\nFN:%s\r\n"
		 "TEL;TYPE=cell:+15550100\r\nEND:VCARD\r\n",
		 marker_vcard);
	assert_int_equal(pb_test_write_file(path, text, strlen(text)), 0);
	assert_int_equal(run(argv_c, NULL), 0);
	snprintf(path, sizeof(path), "%s/WhatsApp Chat with Marker.txt", dir);
	snprintf(text, sizeof(text), "12/03/24, 09:15 - Ana: %s is the code\n12/03/24, 09:16 - Ben: ok\n",
		 marker_chat);
	assert_int_equal(pb_test_write_file(path, text, strlen(text)), 0);
	{
		char *argv_w[] = { "import", "chat", path, "--device", dev, NULL };
		assert_int_equal(run(argv_w, NULL), 0);
	}
	/* The phone holds them in plaintext: the check below can find them. */
	assert_true(pb_test_grep_tree(dev, marker_vcard, strlen(marker_vcard)) > 0);
	assert_true(pb_test_grep_tree(dev, marker_chat, strlen(marker_chat)) > 0);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	char *pair_args[3], line[4096];

	(void)state;
	dir = pb_test_tmpdir("backup");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	mk(phone, "phone");
	snprintf(dev, sizeof(dev), "%s/device", phone);
	snprintf(snap_a_copy, sizeof(snap_a_copy), "%s/snapshot-a", dir);
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, phone, "alice", "phone"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", NULL);
	pair_args[0] = "pair";
	pair_args[1] = host.uri;
	pair_args[2] = NULL;
	assert_int_equal(run(pair_args, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	{
		char *gen[] = { "gen", "--out", dev, "--seed", "3", "--size", "small", NULL };
		assert_int_equal(run(gen, NULL), 0);
	}
	plant_markers();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

static void test_round_trip(void **state)
{
	char line[4096], out_dir[4200];
	char *restore[] = { "--json", "restore", "--to", out_dir, NULL };
	char *out = NULL;

	(void)state;
	backup(line, sizeof(line));
	assert_true(pb_test_json_str(line, "snapshot", snap_a, sizeof(snap_a)) == 0);
	assert_true(pb_test_json_num(line, "items") > 1000);
	assert_int_equal(pb_test_json_num(line, "items"), pb_test_json_num(line, "items_changed"));
	copy_tree(dev, snap_a_copy);
	snprintf(out_dir, sizeof(out_dir), "%s/restored", dir);
	assert_int_equal(run(restore, &out), 0);
	free(out);
	assert_int_equal(pb_test_same_tree(dev, out_dir), 0);
}

static void test_no_plaintext_on_host(void **state)
{
	(void)state;
	assert_int_equal(pb_test_grep_tree(host_home, marker_vcard, strlen(marker_vcard)), 0);
	assert_int_equal(pb_test_grep_tree(host_home, marker_chat, strlen(marker_chat)), 0);
	/* Nor any recognisable piece of the data: a long line of a chat. */
	assert_int_equal(pb_test_grep_tree(host_home, "\"date_unixtime\":\"", 17), 0);
}

static void test_unchanged_sends_nothing(void **state)
{
	char line[4096];

	(void)state;
	backup(line, sizeof(line));
	assert_int_equal(pb_test_json_num(line, "chunks_sent"), 0);
	assert_int_equal(pb_test_json_num(line, "bytes_sent"), 0);
	assert_int_equal(pb_test_json_num(line, "items_changed"), 0);
}

/* The first chat of the device and the id of its first message. */
static void first_message(char *chat, size_t chat_cap, long long *msg)
{
	char path[4200];
	struct dirent *e;
	DIR *d;
	uint8_t *buf = NULL;
	size_t len = 0;
	const char *p;

	snprintf(path, sizeof(path), "%s/chats", dev);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL && e->d_name[0] == '.')
		;
	assert_non_null(e);
	snprintf(chat, chat_cap, "%s", e->d_name);
	closedir(d);
	snprintf(path, sizeof(path), "%s/chats/%s/result.json", dev, chat);
	assert_int_equal(pb__read_file(path, 64 << 20, &buf, &len), 0);
	buf[len - 1] = 0;
	p = strstr((const char *)buf, "\"messages\"");
	assert_non_null(p);
	p = strstr(p, "{\"id\":");
	assert_non_null(p);
	*msg = strtoll(p + 6, NULL, 10);
	free(buf);
}

/* Restores one message by id into a fresh directory; returns the restored
 * chat file's text (malloc'd) and the restore-done line. */
static char *restore_message(const char *id, const char *tag, char *const extra[], char *line, size_t cap)
{
	char out_dir[4200], path[4400];
	char *args[16] = { "--json", "restore", "--to", out_dir, "--id", (char *)id };
	char *out = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, n = 6;
	const char *chat_end = strstr(id, "/msg/");

	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	snprintf(out_dir, sizeof(out_dir), "%s/one-%s", dir, tag);
	pb_test_rmtree(out_dir);
	assert_int_equal(run(args, &out), 0);
	last_line(out, "restore-done", line, cap);
	printf("%s\n", line);
	free(out);
	snprintf(path, sizeof(path), "%s/chats/%.*s/result.json", out_dir, (int)(chat_end - id - 5), id + 5);
	assert_int_equal(pb__read_file(path, 64 << 20, &buf, &len), 0);
	buf = realloc(buf, len + 1);
	buf[len] = 0;
	return (char *)buf;
}

/* One message by id: a chat's messages are slices of its stream with no
 * state row of their own, so the phone that made the latest backup finds
 * one through the snapshot's id index (lookup "index"), with the same
 * result as with --from this phone;
 * after the message changes
 * and is backed up, the latest and an older snapshot each give their own
 * text; a chat deleted from the phone and backed up is not found, though
 * its chunks are still on the host for the older snapshot. */
static void test_single_message(void **state)
{
	char chat[256], id[512], line[4096], dev_hex[64], snap_old[32], path[4200], want[64];
	char *by_state, *by_walk, *text, *p;
	long long msg;
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)state;
	first_message(chat, sizeof(chat), &msg);
	snprintf(id, sizeof(id), "chat/%s/msg/%lld", chat, msg);
	snprintf(want, sizeof(want), "{\"id\":%lld,", msg);
	by_state = restore_message(id, "state", NULL, line, sizeof(line));
	assert_int_equal(pb_test_json_str(line, "lookup", path, sizeof(path)), 0);
	assert_string_equal(path, "index");
	assert_int_equal(pb_test_json_num(line, "items"), 2); /* the chat's frame and the message */
	assert_non_null(strstr(by_state, want));
	assert_int_equal(pb_test_json_str(line, "device", dev_hex, sizeof(dev_hex)), 0);
	assert_int_equal(pb_test_json_str(line, "snapshot", snap_old, sizeof(snap_old)), 0);
	{
		char *from[] = { "--from", dev_hex, NULL };
		by_walk = restore_message(id, "walk", from, line, sizeof(line));
	}
	assert_int_equal(pb_test_json_str(line, "lookup", path, sizeof(path)), 0);
	assert_string_equal(path, "index"); /* not the state: the snapshot's id index */
	assert_string_equal(by_state, by_walk);
	free(by_walk);

	/* Change the message's text on the phone and back up. */
	snprintf(path, sizeof(path), "%s/chats/%s/result.json", dev, chat);
	assert_int_equal(pb__read_file(path, 64 << 20, &buf, &len), 0);
	buf = realloc(buf, len + 1);
	buf[len] = 0;
	p = strstr((char *)buf, want);
	assert_non_null(p);
	p = strstr(p, "\"text\":\"");
	assert_non_null(p);
	p[8] = p[8] == 'Q' ? 'R' : 'Q';
	assert_int_equal(pb_test_write_file(path, buf, len), 0);
	free(buf);
	backup(line, sizeof(line));
	assert_int_equal(pb_test_json_num(line, "items_changed"), 1);
	text = restore_message(id, "new", NULL, line, sizeof(line));
	assert_int_equal(pb_test_json_str(line, "lookup", path, sizeof(path)), 0);
	assert_string_equal(path, "index");
	assert_string_not_equal(text, by_state);
	free(text);
	{
		char *older[] = { "--snapshot", snap_old, NULL };
		text = restore_message(id, "old", older, line, sizeof(line));
	}
	assert_int_equal(pb_test_json_str(line, "lookup", path, sizeof(path)), 0);
	assert_string_equal(path, "index"); /* not the state: the older snapshot's id index */
	assert_string_equal(text, by_state);
	free(text);

	/* Delete the chat on the phone, back up: the message is gone from the
	 * latest snapshot. Then put it back as it was. */
	{
		char saved[4200], chat_dir[4200];
		char *args[] = { "restore", "--to", (char *)"", "--id", id, NULL };
		char *out = NULL, *err = NULL;

		snprintf(chat_dir, sizeof(chat_dir), "%s/chats/%s", dev, chat);
		snprintf(saved, sizeof(saved), "%s/saved-chat", dir);
		copy_tree(chat_dir, saved);
		pb_test_rmtree(chat_dir);
		backup(line, sizeof(line));
		snprintf(path, sizeof(path), "%s/one-deleted", dir);
		args[2] = path;
		assert_int_not_equal(pb_test_peerback(phone, args, &out, &err), 0);
		assert_non_null(strstr(err, "no item"));
		free(out);
		free(err);
		{
			char *argv[] = { "/bin/mv", saved, chat_dir, NULL };
			assert_int_equal(pb_test_run(argv, NULL, 30, NULL, NULL), 0);
		}
	}
	free(by_state);
	backup(line, sizeof(line));
}

/* Flips one byte in the middle of attachments until want files changed;
 * returns how many files changed and their bytes. */
static int changes_left, changes_done;
static long long changed_total;

static int flip_one(const char *file, const struct stat *st, int flag, struct FTW *ftw)
{
	FILE *fp;
	int ch;

	(void)ftw;
	if (changes_left == 0 || flag != FTW_F || !S_ISREG(st->st_mode) || st->st_size < 100 ||
	    strstr(file, "result.json") != NULL)
		return 0;
	fp = fopen(file, "r+b");
	if (fp == NULL)
		return 0;
	fseek(fp, st->st_size / 2, SEEK_SET);
	ch = fgetc(fp);
	fseek(fp, st->st_size / 2, SEEK_SET);
	fputc(ch ^ 0x5a, fp);
	fclose(fp);
	changed_total += st->st_size;
	changes_done++;
	changes_left--;
	return 0;
}

static int change_attachments(int want, long long *bytes)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/chats", dev);
	changes_left = want > 0 ? want : 1;
	changes_done = 0;
	changed_total = 0;
	assert_int_equal(nftw(path, flip_one, 16, FTW_PHYS), 0);
	*bytes = changed_total;
	return changes_done;
}

/* Changes one letter of the text of messages until want messages (items)
 * changed, across the chats' result.json files. */
static int msgs_left, msgs_done;

static int edit_messages(const char *file, const struct stat *st, int flag, struct FTW *ftw)
{
	size_t len;
	char *text;
	bool touched = false;

	(void)st;
	(void)ftw;
	if (msgs_left == 0 || flag != FTW_F || strstr(file, "result.json") == NULL)
		return 0;
	text = (char *)pb_test_read_file(file, &len);
	if (text == NULL)
		return 0;
	for (char *line = text; line != NULL && msgs_left > 0;) {
		char *nl = strchr(line, '\n'), *t = strstr(line, "\"text\":\"");

		if (t != NULL && (nl == NULL || t < nl) && t[8] >= 'a' && t[8] < 'z' && strncmp(line, "  {\"id\":", 8) == 0) {
			t[8]++;
			msgs_left--;
			msgs_done++;
			touched = true;
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
	if (touched)
		assert_int_equal(pb_test_write_file(file, text, len), 0);
	free(text);
	return 0;
}

static void test_one_percent_changed(void **state)
{
	char line[4096];
	long long items, total, changed_bytes, sent;
	int changed;

	(void)state;
	backup(line, sizeof(line)); /* baseline after the previous tests */
	items = pb_test_json_num(line, "items");
	total = pb_test_json_num(line, "bytes");
	/* 1% of the items: a few attachments, the rest messages. */
	changed = change_attachments((int)(items / 400) + 1, &changed_bytes);
	assert_true(changed > 0);
	msgs_left = (int)(items / 100) - changed;
	msgs_done = 0;
	{
		char path[4200];
		snprintf(path, sizeof(path), "%s/chats", dev);
		assert_int_equal(nftw(path, edit_messages, 16, FTW_PHYS), 0);
	}
	assert_int_equal(msgs_left, 0);
	changed += msgs_done;
	backup(line, sizeof(line));
	sent = pb_test_json_num(line, "bytes_sent");
	printf("changed %d of %lld items (%d messages; attachments of %lld bytes) of %lld bytes; sent %lld bytes\n",
	       changed, items, msgs_done, changed_bytes, total, sent);
	assert_int_equal(pb_test_json_num(line, "items_changed"), changed);
	/* Only the chunks around each change, plus the new manifest. */
	assert_true(sent > 0);
	assert_true(sent <= changed_bytes + (512 << 10));
	assert_true(sent <= total / 4);
}

/* Starts a backup in the background and returns when its progress passes
 * fraction of the work, or it ended; the caller kills what it wants. */
/* The kill tests arm the host to stop itself inside a snapshot commit
 * (PEERBACK_TEST_PAUSE, agent/util/testhook.h), so that a backup cannot
 * finish before its kill however fast it runs. */
static char pause_file[4200];
static bool host_armed;

static bool host_paused(void)
{
	struct stat st;

	return stat(pause_file, &st) == 0 && st.st_size > 0;
}

/* Restarts the host, armed at the given pause points (NULL: unarmed). */
static void host_restart_armed(const char *points)
{
	snprintf(pause_file, sizeof(pause_file), "%s/host.paused", dir);
	unlink(pause_file);
	/* An armed host may be stopped at a point, where SIGTERM would wait
	 * for ever: it is killed, which its store is made to survive. */
	if (host_armed && host.proc.pid > 0)
		pb_test_stop(&host.proc, SIGKILL);
	pb_test_host_stop(&host);
	host_armed = points != NULL;
	if (points != NULL) {
		setenv("PEERBACK_TEST_PAUSE", points, 1);
		setenv("PEERBACK_TEST_PAUSE_FILE", pause_file, 1);
	}
	pb_test_host_restart(&host, NULL);
	unsetenv("PEERBACK_TEST_PAUSE");
	unsetenv("PEERBACK_TEST_PAUSE_FILE");
}

/* Starts a backup and returns once fraction of its bytes are done or the
 * armed host has stopped at its pause point (0), when it completed (1), or
 * on silence or end of output (-1). */
static int backup_until(pb_test_proc_t *p, double fraction, long long *committed)
{
	char *tool = pb_test_tool("peerback");
	char *argv[] = { tool, "--home", phone, "--json", "backup", "--device", dev, NULL };
	char line[4096];

	*committed = 0;
	assert_int_equal(pb_test_spawn(p, argv, NULL), 0);
	free(tool);
	for (int waited = 0; waited < 60000;) {
		long long done, total;

		if (pb_test_readline(p, line, sizeof(line), 200) < 0) {
			if (host_paused()) {
				printf("the host stopped at its pause point\n");
				return 0;
			}
			waited += 200;
			continue;
		}
		done = pb_test_json_num(line, "bytes_done");
		total = pb_test_json_num(line, "bytes_total");
		if (strstr(line, "backup-done") != NULL)
			return 1;
		if (pb_test_json_num(line, "bytes_committed") > *committed)
			*committed = pb_test_json_num(line, "bytes_committed");
		if (total > 0 && done >= (long long)(fraction * (double)total)) {
			printf("stopping at %lld of %lld bytes\n", done, total);
			return 0;
		}
	}
	return -1;
}

static void host_verify_clean(void)
{
	char *args[] = { "--json", "host", "verify", NULL };
	char *out = NULL;

	assert_int_equal(pb_test_peerback(host_home, args, &out, NULL), 0);
	assert_non_null(strstr(out, "\"clean\":true"));
	free(out);
}

static void restore_snapshot_a(void)
{
	char out_dir[4200];
	char *args[] = { "restore", "--snapshot", snap_a, "--to", out_dir, NULL };

	snprintf(out_dir, sizeof(out_dir), "%s/restore-a", dir);
	pb_test_rmtree(out_dir);
	assert_int_equal(run(args, NULL), 0);
	assert_int_equal(pb_test_same_tree(snap_a_copy, out_dir), 0);
}

static void fresh_data(const char *seed)
{
	char *gen[] = { "gen", "--out", dev, "--seed", (char *)seed, "--size", "small", NULL };

	pb_test_rmtree(dev);
	assert_int_equal(run(gen, NULL), 0);
}

static void test_host_sigkill_mid_backup(void **state)
{
	long long committed_total = 0, total = 0;
	char line[4096];

	(void)state;
	fresh_data("12");
	host_restart_armed("snapshot-checked:1");
	for (int i = 0; i < 10; i++) {
		pb_test_proc_t p;
		long long committed;
		/* The last kill waits for the host's pause point alone. */
		double f = i == 9 ? 2.0 : 0.05 + 0.09 * i;
		int r = backup_until(&p, f, &committed);

		if (i == 9)
			assert_true(r == 0 && host_paused());

		/* Kill the host mid-write, without warning. */
		kill(host.proc.pid, SIGKILL);
		waitpid(host.proc.pid, NULL, 0);
		close(host.proc.out_fd);
		host.proc.pid = 0;
		/* The phone sees the link die and must not report success. */
		while (pb_test_readline(&p, line, sizeof(line), 30000) > 0) {
			if (pb_test_json_num(line, "bytes_committed") > committed)
				committed = pb_test_json_num(line, "bytes_committed");
			if (strstr(line, "backup-done") != NULL)
				r = 1;
			if (pb_test_json_num(line, "bytes_total") > 0)
				total = pb_test_json_num(line, "bytes_total");
		}
		{
			int status = pb_test_stop(&p, 0);

			if (r == 1)
				assert_int_equal(status, 0);
			else
				assert_int_not_equal(status, 0); /* never "done" without the receipt */
		}
		committed_total += committed;
		printf("kill %d at %.0f%%: %s; %lld bytes acknowledged in that run, %lld in all\n", i, f > 1 ? 100 : f * 100,
		       r == 1 ? "the backup had completed" : "backup interrupted", committed, committed_total);
		/* Restarts with a store that verifies clean and still holds the
		 * acknowledged snapshot. */
		host_verify_clean();
		host_restart_armed(i < 9 ? "snapshot-checked:1" : NULL);
		restore_snapshot_a();
	}
	/* The re-run sends at most what was not acknowledged, plus 10%. */
	backup(line, sizeof(line));
	if (total == 0)
		total = pb_test_json_num(line, "bytes");
	printf("final run sent %lld bytes; %lld of %lld were acknowledged before\n",
	       pb_test_json_num(line, "bytes_sent"), committed_total, total);
	assert_true(pb_test_json_num(line, "bytes_sent") <= total - committed_total + total / 10);
}

static void test_phone_killed_mid_backup(void **state)
{
	long long committed_total = 0, total = 0;
	char line[4096];

	(void)state;
	fresh_data("13");
	host_restart_armed("snapshot-checked:1,snapshot-checked:2,snapshot-checked:3");
	for (int i = 0; i < 3; i++) {
		pb_test_proc_t p;
		long long committed;
		/* The last kill waits for the host's pause point alone. */
		int r = backup_until(&p, i == 2 ? 2.0 : 0.25 + 0.25 * i, &committed);

		if (i == 2)
			assert_true(r == 0 && host_paused());

		/* The phone dies (or its link does) mid-transfer; a host
		 * stopped at its pause point then goes on. */
		pb_test_stop(&p, SIGKILL);
		if (host_paused()) {
			kill(host.proc.pid, SIGCONT);
			unlink(pause_file);
		}
		committed_total += committed;
		printf("phone killed at %d%%: %s; %lld bytes acknowledged\n", i == 2 ? 100 : 25 + 25 * i,
		       r == 1 ? "had completed" : "interrupted", committed);
	}
	host_restart_armed(NULL);
	backup(line, sizeof(line));
	total = pb_test_json_num(line, "bytes");
	printf("final run sent %lld bytes; %lld of %lld were acknowledged before\n",
	       pb_test_json_num(line, "bytes_sent"), committed_total, total);
	assert_true(pb_test_json_num(line, "bytes_sent") <= total - committed_total + total / 10);
	{
		char out_dir[4200];
		char *args[] = { "restore", "--to", out_dir, NULL };

		snprintf(out_dir, sizeof(out_dir), "%s/restore-13", dir);
		assert_int_equal(run(args, NULL), 0);
		assert_int_equal(pb_test_same_tree(dev, out_dir), 0);
	}
}

static void test_prune_keeps_latest(void **state)
{
	char *prune[] = { "--json", "host", "prune", "--keep-last", "1", NULL };
	char *ls[] = { "--json", "ls", NULL };
	char *out = NULL, out_dir[4200];
	char *restore[] = { "restore", "--to", out_dir, NULL };
	char *err = NULL;
	int n = 0;

	(void)state;

	pb_test_host_stop(&host);
	if (pb_test_peerback(host_home, prune, &out, &err) != 0)
		fail_msg("prune: %s", err);
	free(err);
	printf("%s", out);
	/* Earlier snapshots held other data: their chunks go. */
	assert_true(pb_test_json_num(out, "snapshots_removed") > 0);
	assert_true(pb_test_json_num(out, "chunks_removed") > 0);
	free(out);
	host_verify_clean();
	pb_test_host_restart(&host, NULL);
	assert_int_equal(run(ls, &out), 0);
	for (char *p = out; (p = strstr(p, "\"snapshot\"")) != NULL; p++)
		n++;
	assert_int_equal(n, 1);
	free(out);
	snprintf(out_dir, sizeof(out_dir), "%s/after-prune", dir);
	assert_int_equal(run(restore, NULL), 0);
	assert_int_equal(pb_test_same_tree(dev, out_dir), 0);
}

static void test_full_disk(void **state)
{
	char h2[4096], p2[4096], store[4200], line[4096], *err = NULL;
	pb_test_host_t host2;
	char *gen[] = { "gen", "--out", NULL, "--seed", "5", "--size", "small", NULL };
	char d2[4200];

	(void)state;
	mk(h2, "host-small-disk");
	mk(p2, "phone-2");
	snprintf(store, sizeof(store), "%s/store", h2);
	assert_int_equal(pb__mkdirs(store, 0700), 0);
	if (mount("tmpfs", store, "tmpfs", 0, "size=6m") != 0) {
		printf("cannot mount a small tmpfs here (needs root); full-disk test skipped\n");
		skip();
	}
	assert_int_equal(pb_test_login(&imd, h2, "alice", "small-host"), 0);
	assert_int_equal(pb_test_login(&imd, p2, "alice", "phone-2"), 0);
	pb_test_host_start(&host2, h2, "127.0.0.1:0", NULL);
	{
		char *pair[] = { "pair", host2.uri, NULL };
		assert_int_equal(pb_test_peerback(p2, pair, NULL, NULL), 0);
	}
	snprintf(d2, sizeof(d2), "%s/device", p2);
	gen[2] = d2;
	assert_int_equal(pb_test_peerback(p2, gen, NULL, NULL), 0);
	{
		char *args[] = { "backup", NULL };
		assert_int_equal(pb_test_peerback(p2, args, NULL, &err), 1);
	}
	printf("phone said: %s", err);
	assert_non_null(strstr(err, "disk is full"));
	free(err);
	pb_test_host_stop(&host2);
	{
		char *args[] = { "--json", "host", "verify", NULL };
		char *out = NULL;

		assert_int_equal(pb_test_peerback(h2, args, &out, NULL), 0);
		assert_non_null(strstr(out, "\"clean\":true"));
		free(out);
	}
	umount2(store, MNT_DETACH);
	(void)line;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_no_plaintext_on_host),
		cmocka_unit_test(test_unchanged_sends_nothing),
		cmocka_unit_test(test_single_message),
		cmocka_unit_test(test_one_percent_changed),
		cmocka_unit_test(test_host_sigkill_mid_backup),
		cmocka_unit_test(test_phone_killed_mid_backup),
		cmocka_unit_test(test_prune_keeps_latest),
		cmocka_unit_test(test_full_disk),
	};
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
