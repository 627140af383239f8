/* The phone against a hostile host and hostile files, end to end with the
 * real programs on loopback: a restore that fails leaves its target as it
 * was; restore and import never follow a symbolic link they did not make;
 * a file that does not parse is skipped and reported while everything else
 * is backed up; a host that dropped the newest snapshot is caught before
 * older data comes back. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "inproc.h"
#include "agent/account/account.h"
#include "agent/util/fsutil.h"
#include "peerback/store.h"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone[4096], dev[4096];

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

/* Runs peerback on the phone; keeps stdout and stderr (either may be NULL). */
static int run(char *const args[], char **out, char **err)
{
	char *e = NULL;
	int rc = pb_test_peerback(phone, args, out, &e);

	printf("peerback %s %s: exit %d: %s", args[0], args[1] ? args[1] : "", rc, e ? e : "");
	if (err != NULL)
		*err = e;
	else
		free(e);
	return rc;
}

static void last_line(const char *out, const char *event, char *line, size_t cap)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "{\"event\":\"%s\"", event);
	p = strstr(out, pat);
	assert_non_null(p);
	snprintf(line, cap, "%.*s", (int)strcspn(p, "\n"), p);
}

static void backup(char *snap, size_t cap)
{
	char *args[] = { "--json", "backup", "--device", dev, NULL };
	char *out = NULL, line[4096];

	assert_int_equal(run(args, &out, NULL), 0);
	last_line(out, "backup-done", line, sizeof(line));
	if (snap != NULL)
		assert_int_equal(pb_test_json_str(line, "snapshot", snap, cap), 0);
	free(out);
}

/* Entries in a directory (not counting . and ..), or -1 when it is absent. */
static int entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void write_text(const char *path, const char *text)
{
	assert_int_equal(pb_test_write_file(path, text, strlen(text)), 0);
}

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	char *pair_args[3], line[4096];

	(void)state;
	dir = pb_test_tmpdir("phone-guard");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	mk(phone, "phone");
	snprintf(dev, sizeof(dev), "%s/device", phone);
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, phone, "alice", "phone"), 0);
	pb_test_host_start(&host, host_home, "127.0.0.1:0", NULL);
	pair_args[0] = "pair";
	pair_args[1] = host.uri;
	pair_args[2] = NULL;
	assert_int_equal(run(pair_args, NULL, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	{
		char *gen[] = { "gen", "--out", dev, "--seed", "5", "--size", "small", NULL };
		assert_int_equal(run(gen, NULL, NULL), 0);
	}
	backup(NULL, 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

/* A restore target whose credentials folder is a symbolic link to a folder
 * elsewhere: nothing is written through it, nor anywhere in the target. */
static void test_restore_refuses_symlink_in_target(void **state)
{
	char target[4096], outside[4096], link[4200];
	char *args[] = { "restore", "--to", target, NULL };
	char *err = NULL;
	int rc;

	(void)state;
	mk(target, "t-link");
	mk(outside, "outside");
	snprintf(link, sizeof(link), "%s/credentials", target);
	assert_int_equal(symlink(outside, link), 0);
	rc = run(args, NULL, &err);
	assert_int_equal(entries(outside), 0);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(err, "credentials"));
	assert_non_null(strstr(err, "symbolic link"));
	/* The refusal comes before anything is written. */
	assert_int_equal(entries(target), 1);
	free(err);
}

/* A chat export whose attachment is a symbolic link to a secret file: the
 * import refuses it by name and the secret never reaches the phone's data
 * nor the host. */
static void test_import_refuses_symlinked_attachment(void **state)
{
	char export[4096], secret[4200], att[4200], chat[4200], marker[64];
	char *args[] = { "import", "chat", chat, "--device", dev, NULL };
	char *err = NULL;
	uint8_t r[8];
	int rc;

	(void)state;
	mk(export, "wa-export");
	randombytes_buf(r, sizeof(r));
	snprintf(marker, sizeof(marker), "PBSECRET-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
		 r[5], r[6], r[7]);
	snprintf(secret, sizeof(secret), "%s/secret.txt", dir);
	write_text(secret, marker);
	snprintf(att, sizeof(att), "%s/IMG-20240131-WA0001.jpg", export);
	assert_int_equal(symlink(secret, att), 0);
	snprintf(chat, sizeof(chat), "%s/WhatsApp Chat with Eve.txt", export);
	write_text(chat, "31/01/2024, 09:15 - Eve: IMG-20240131-WA0001.jpg (file attached)\n"
			 "31/01/2024, 09:16 - Ana: thanks\n");
	rc = run(args, NULL, &err);
	assert_int_equal(pb_test_grep_tree(dev, marker, strlen(marker)), 0);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(err, "IMG-20240131-WA0001.jpg"));
	assert_non_null(strstr(err, "symbolic link"));
	free(err);

	/* A Telegram export whose photos folder is a link to a folder elsewhere. */
	{
		char tg[4096], photos[4200], outside[4096], json[4200], pic[4400];
		char *tg_args[] = { "import", "chat", json, "--device", dev, NULL };

		mk(tg, "tg-export");
		mk(outside, "tg-outside");
		snprintf(pic, sizeof(pic), "%s/p1.jpg", outside);
		write_text(pic, marker);
		snprintf(photos, sizeof(photos), "%s/photos", tg);
		assert_int_equal(symlink(outside, photos), 0);
		snprintf(json, sizeof(json), "%s/result.json", tg);
		write_text(json, "{\"name\":\"Eve\",\"type\":\"personal_chat\",\"id\":777,\"messages\":["
				 "{\"id\":1,\"type\":\"message\",\"date\":\"2024-01-31T14:08:00\","
				 "\"date_unixtime\":\"1706710080\",\"from\":\"Eve\",\"from_id\":\"user9\","
				 "\"photo\":\"photos/p1.jpg\",\"text\":\"look\"}]}\n");
		rc = run(tg_args, NULL, &err);
		assert_int_equal(pb_test_grep_tree(dev, marker, strlen(marker)), 0);
		assert_int_not_equal(rc, 0);
		assert_non_null(strstr(err, "photos/p1.jpg"));
		assert_non_null(strstr(err, "symbolic link"));
		free(err);
	}
	backup(NULL, 0);
	assert_int_equal(pb_test_grep_tree(host_home, marker, strlen(marker)), 0);
}

/* A device directory whose chats and contacts folders are links to folders
 * elsewhere: imports refuse to write through them. */
static void test_import_refuses_symlinked_device_folder(void **state)
{
	char dev2[4096], outside[4096], link[4200], chat[4200], vcf[4200];
	char *chat_args[] = { "import", "chat", chat, "--device", dev2, NULL };
	char *vcf_args[] = { "import", "contacts", vcf, "--device", dev2, NULL };
	char *err = NULL;

	(void)state;
	mk(dev2, "dev-links");
	mk(outside, "dev-links-outside");
	snprintf(link, sizeof(link), "%s/chats", dev2);
	assert_int_equal(symlink(outside, link), 0);
	snprintf(link, sizeof(link), "%s/contacts", dev2);
	assert_int_equal(symlink(outside, link), 0);
	snprintf(chat, sizeof(chat), "%s/WhatsApp Chat with Bo.txt", dir);
	write_text(chat, "31/01/2024, 09:15 - Bo: hello\n");
	snprintf(vcf, sizeof(vcf), "%s/one.vcf", dir);
	write_text(vcf, "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:5e0b9f5e-2f7a-4a57-9a83-1c2b3d4e5f61\r\n"
			"FN:Bo\r\nEND:VCARD\r\n");
	assert_int_not_equal(run(chat_args, NULL, &err), 0);
	assert_non_null(strstr(err, "symbolic link"));
	free(err);
	assert_int_not_equal(run(vcf_args, NULL, &err), 0);
	assert_non_null(strstr(err, "symbolic link"));
	free(err);
	assert_int_equal(entries(outside), 0);
}

/* A truncated contacts.vcf is reported (file and line) and skipped; a
 * credential added beside it is backed up all the same, and the exit status
 * and the JSON say the backup was partial. */
static void test_unparseable_file_is_skipped(void **state)
{
	char vcf[4200], cred_src[4200], cred[4200], line[4096], out_dir[4200], got[4400], snap[32];
	char *bk[] = { "--json", "backup", "--device", dev, NULL };
	char *out = NULL, *err = NULL;
	uint8_t *a, *b, *book;
	size_t alen, blen, book_len;
	DIR *d;
	struct dirent *e;
	int rc;

	(void)state;
	/* A new credential: import one the generator made, under a new name. */
	snprintf(cred, sizeof(cred), "%s/credentials", dev);
	d = opendir(cred);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL && (e->d_name[0] == '.' || strstr(e->d_name, ".json") == NULL))
		;
	assert_non_null(e);
	snprintf(cred_src, sizeof(cred_src), "%s/credentials/%s", dev, e->d_name);
	closedir(d);
	a = pb_test_read_file(cred_src, &alen);
	assert_non_null(a);
	snprintf(cred, sizeof(cred), "%s/credentials/zz-added.json", dev);
	assert_int_equal(pb_test_write_file(cred, a, alen), 0);
	/* Truncate the vCard book in the middle of its last card. */
	snprintf(vcf, sizeof(vcf), "%s/contacts/contacts.vcf", dev);
	book = pb_test_read_file(vcf, &book_len);
	assert_non_null(book);
	assert_true(book_len > 40);
	assert_int_equal(truncate(vcf, (off_t)(book_len - 20)), 0);

	rc = run(bk, &out, &err);
	assert_int_equal(rc, 3);
	assert_non_null(strstr(err, "contacts/contacts.vcf"));
	assert_non_null(strstr(err, "line "));
	assert_non_null(strstr(out, "{\"event\":\"skipped\""));
	last_line(out, "skipped", line, sizeof(line));
	assert_non_null(strstr(line, "\"path\":\"contacts/contacts.vcf\""));
	assert_true(pb_test_json_num(line, "line") > 0);
	last_line(out, "backup-done", line, sizeof(line));
	assert_non_null(strstr(line, "\"partial\":true"));
	assert_int_equal(pb_test_json_num(line, "skipped"), 1);
	assert_int_equal(pb_test_json_str(line, "snapshot", snap, sizeof(snap)), 0);
	free(out);
	free(err);

	/* The credential is in the snapshot. */
	snprintf(out_dir, sizeof(out_dir), "%s/r-partial", dir);
	{
		char *rs[] = { "restore", "--to", out_dir, "--kind", "credentials", NULL };
		assert_int_equal(run(rs, NULL, NULL), 0);
	}
	snprintf(got, sizeof(got), "%s/credentials/zz-added.json", out_dir);
	b = pb_test_read_file(got, &blen);
	assert_non_null(b);
	assert_int_equal(blen, alen);
	assert_memory_equal(a, b, alen);
	free(a);
	free(b);
	/* The contacts of the previous backup are kept in it, not dropped. */
	{
		char *rs[] = { "restore", "--to", out_dir, "--kind", "contacts", NULL };
		assert_int_equal(run(rs, NULL, NULL), 0);
	}
	snprintf(got, sizeof(got), "%s/contacts/contacts.vcf", out_dir);
	b = pb_test_read_file(got, &blen);
	assert_non_null(b);
	assert_int_equal(blen, book_len);
	assert_memory_equal(b, book, book_len);
	free(b);
	free(book);

	/* Repaired, the next backup is complete again. */
	assert_int_equal(unlink(vcf), 0);
	assert_int_equal(rename(got, vcf), 0);
	{
		char *bk2[] = { "--json", "backup", "--device", dev, NULL };
		assert_int_equal(run(bk2, &out, NULL), 0);
	}
	last_line(out, "backup-done", line, sizeof(line));
	assert_non_null(strstr(line, "\"partial\":false"));
	free(out);
}

/* Removes the newest snapshot of this phone directly in the host's store,
 * as a hostile host would. */
static void host_drops_newest(const char *newest)
{
	char store[4200], hex[2 * PB_DEVICE_ID_LEN + 1];
	pb_identity_t id;
	pb_store_t *st;
	pb_store_ns_t *ns;
	pb_store_snapinfo_t *snaps = NULL;
	uint64_t keep[64], want = strtoull(newest, NULL, 16);
	size_t n = 0, k = 0;
	bool seen = false;

	assert_int_equal(pb__identity_load(phone, &id), 0);
	pb__hex(id.device_id, PB_DEVICE_ID_LEN, hex);
	pb__identity_wipe(&id);
	pb_test_host_stop(&host);
	snprintf(store, sizeof(store), "%s/store", host_home);
	assert_int_equal(pb_store_open(store, &st), 0);
	assert_int_equal(pb_store_ns_open(st, "alice", hex, &ns), 0);
	assert_int_equal(pb_store_snapshot_list(ns, &snaps, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (snaps[i].id == want)
			seen = true;
		else if (k < 64)
			keep[k++] = snaps[i].id;
	}
	assert_true(seen);
	assert_int_equal(pb_store_prune(ns, keep, k), 1);
	free(snaps);
	pb_store_ns_close(ns);
	pb_store_close(st);
	pb_test_host_restart(&host, NULL);
}

/* Two backups, then the host drops the newer: a restore refuses, naming
 * both snapshots, and goes ahead only with --snapshot. */
static void test_rollback_needs_snapshot(void **state)
{
	char old[32], newer[32], path[4200], out_dir[4200], got[4400];
	char *args[] = { "restore", "--to", out_dir, NULL };
	char *err = NULL;
	int rc;

	(void)state;
	backup(old, sizeof(old));
	snprintf(path, sizeof(path), "%s/credentials/zz-newer.json", dev);
	/* A credential only in the newer snapshot. */
	write_text(path, "{\"checksum\":\"4BF5122F\",\"created\":0,\"data\":\"01\",\"id\":\"zz-newer\","
			 "\"type\":\"other\"}\n");
	backup(newer, sizeof(newer));
	assert_string_not_equal(old, newer);
	host_drops_newest(newer);

	snprintf(out_dir, sizeof(out_dir), "%s/r-rollback", dir);
	rc = run(args, NULL, &err);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(err, old));
	assert_non_null(strstr(err, newer));
	assert_non_null(strstr(err, "--snapshot"));
	free(err);
	assert_int_equal(entries(out_dir), -1);
	{
		char *with[] = { "restore", "--to", out_dir, "--snapshot", old, NULL };
		assert_int_equal(run(with, NULL, NULL), 0);
	}
	snprintf(got, sizeof(got), "%s/credentials/zz-newer.json", out_dir);
	assert_int_not_equal(access(got, F_OK), 0);
	assert_true(entries(out_dir) > 0);
	unlink(path);
}

/* One message by id, restored into a fresh folder: 0 or the exit code,
 * *err the command's error output. */
static int restore_message(const char *id, const char *tag, char **err)
{
	char out_dir[4200];
	char *args[] = { "restore", "--to", out_dir, "--id", (char *)id, NULL };

	snprintf(out_dir, sizeof(out_dir), "%s/r-msg-%s", dir, tag);
	return run(args, NULL, err);
}

/* One message by id: the newest snapshot this phone completed, kept with
 * the state's stamp once a lookup has read it (HOME/root-cache/rollback),
 * spares the next lookups the state; a backup since changes the stamp and
 * the next lookup reads the state again. Either way a host that dropped
 * the newest snapshot is refused. */
static void test_rollback_one_message(void **state)
{
	char s2[32], s3[32], chat[256], file[4400], id[600], mark[4200], path[4200];
	char *err = NULL, *p;
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)state;
	pb_test_first_chat(dev, chat, sizeof(chat), file, sizeof(file), &buf, &len);
	p = strstr((char *)buf, "\"messages\"");
	assert_non_null(p);
	p = strstr(p, "\"id\":");
	assert_non_null(p);
	snprintf(id, sizeof(id), "chat/%s/msg/%lld", chat, atoll(p + 5));
	free(buf);
	backup(NULL, 0);
	/* The first lookup after a backup makes the state's WAL file anew
	 * (its open does): the next one keeps the mark. */
	assert_int_equal(restore_message(id, "1", NULL), 0);
	assert_int_equal(restore_message(id, "2", NULL), 0);
	snprintf(mark, sizeof(mark), "%s/root-cache/rollback", phone);
	assert_int_equal(access(mark, F_OK), 0);
	assert_int_equal(restore_message(id, "2b", NULL), 0);
	/* A newer snapshot: the stamp changed, the state is read. */
	snprintf(path, sizeof(path), "%s/credentials/zz-mark-1.json", dev);
	write_text(path, "{\"checksum\":\"4BF5122F\",\"created\":0,\"data\":\"01\",\"id\":\"zz-mark-1\","
			 "\"type\":\"other\"}\n");
	backup(s2, sizeof(s2));
	assert_int_equal(restore_message(id, "3", NULL), 0);
	snprintf(path, sizeof(path), "%s/credentials/zz-mark-2.json", dev);
	write_text(path, "{\"checksum\":\"4BF5122F\",\"created\":0,\"data\":\"02\",\"id\":\"zz-mark-2\","
			 "\"type\":\"other\"}\n");
	backup(s3, sizeof(s3));
	host_drops_newest(s3);
	/* The kept root is the host's latest (s2), the mark is older than
	 * the backup of s3: refused, from the state. */
	assert_int_not_equal(restore_message(id, "4", &err), 0);
	assert_non_null(strstr(err, s2));
	assert_non_null(strstr(err, s3));
	free(err);
	err = NULL;
	/* Refused again from the mark that lookup kept. */
	assert_int_not_equal(restore_message(id, "5", &err), 0);
	assert_non_null(strstr(err, s2));
	assert_non_null(strstr(err, s3));
	free(err);
	unlink(path);
	snprintf(path, sizeof(path), "%s/credentials/zz-mark-1.json", dev);
	unlink(path);
}

/* A restore into an existing folder whose last file cannot be renamed into
 * place (a folder stands at its path): the restore fails and names every
 * file it had already replaced, each of which is then complete. */
static void test_restore_names_replaced_files(void **state)
{
	char path[4200], target[4096], blocker[4200], keep[4400], line[4400];
	char *args[] = { "restore", "--to", target, NULL };
	char *err = NULL, *p;
	int listed = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/sim/zz-blocked.bin", dev);
	write_text(path, "the last file of the restore\n");
	backup(NULL, 0);
	mk(target, "r-blocked");
	snprintf(blocker, sizeof(blocker), "%s/sim/zz-blocked.bin", target);
	assert_int_equal(pb__mkdirs(blocker, 0700), 0);
	snprintf(keep, sizeof(keep), "%s/keep", blocker);
	write_text(keep, "mine\n");
	assert_int_not_equal(run(args, NULL, &err), 0);
	assert_non_null(strstr(err, "stopped after replacing"));
	/* Every file listed is there and whole: it equals the phone's. */
	for (p = strstr(err, "replaced before the failure: "); p != NULL;
	     p = strstr(p + 1, "replaced before the failure: ")) {
		char mine[65], theirs[65], src[4400];
		const char *rel;

		snprintf(line, sizeof(line), "%.*s", (int)strcspn(p + 29, "\n"), p + 29);
		assert_true(strncmp(line, target, strlen(target)) == 0);
		rel = line + strlen(target) + 1;
		snprintf(src, sizeof(src), "%s/%s", dev, rel);
		pb_test_file_digest(line, mine);
		pb_test_file_digest(src, theirs);
		assert_string_equal(mine, theirs);
		listed++;
	}
	assert_true(listed > 0);
	free(err);
	assert_int_equal(entries(blocker), 1);
	assert_int_equal(unlink(path), 0);
}

/* Offset of the first pack record at or after off in the host's newest
 * pack (records: "PBR2" | u32le len | name[32] | ct | checksum[32]). */
static void newest_pack(char *out, size_t cap)
{
	char packs[4200], sub[4400];
	DIR *d, *e;
	struct dirent *x, *y;
	long best = -1, ns = -1;

	snprintf(packs, sizeof(packs), "%s/store/packs", host_home);
	d = opendir(packs);
	assert_non_null(d);
	while ((x = readdir(d)) != NULL)
		if (x->d_name[0] != '.')
			ns = strtol(x->d_name, NULL, 10) > ns ? strtol(x->d_name, NULL, 10) : ns;
	closedir(d);
	assert_true(ns >= 0);
	snprintf(sub, sizeof(sub), "%s/%ld", packs, ns);
	e = opendir(sub);
	assert_non_null(e);
	while ((y = readdir(e)) != NULL)
		if (y->d_name[0] != '.' && strtol(y->d_name, NULL, 10) > best)
			best = strtol(y->d_name, NULL, 10);
	closedir(e);
	assert_true(best >= 0);
	snprintf(out, cap, "%s/%ld.pack", sub, best);
}

/* One chunk late in the restore order is damaged on the host: the restore
 * fails, and a fresh target is not created, an existing one keeps exactly
 * its content. */
static void test_failed_restore_leaves_target(void **state)
{
	char pack[4200], path[4200], fresh[4200], existing[4200], keep[4400], before[65], after[65];
	char *args_fresh[] = { "restore", "--to", fresh, NULL };
	char *args_existing[] = { "restore", "--to", existing, NULL };
	uint8_t late[4096];
	struct stat sb;
	off_t len0;
	int fd;

	(void)state;
	backup(NULL, 0);
	newest_pack(pack, sizeof(pack));
	assert_int_equal(stat(pack, &sb), 0);
	len0 = sb.st_size;
	/* The last path in the restore order: sim/ sorts after every other
	 * kind folder. Random bytes: one incompressible chunk. */
	randombytes_buf(late, sizeof(late));
	snprintf(path, sizeof(path), "%s/sim/zz-late.bin", dev);
	assert_int_equal(pb_test_write_file(path, late, sizeof(late)), 0);
	backup(NULL, 0);
	newest_pack(path, sizeof(path));
	assert_string_equal(path, pack);
	/* The new item's chunk is the first record after len0. */
	pb_test_host_stop(&host);
	fd = open(pack, O_RDWR);
	assert_true(fd >= 0);
	{
		uint8_t b;
		off_t at = len0 + 4 + 4 + 32 + 100;

		assert_int_equal(pread(fd, &b, 1, at), 1);
		b ^= 0x55;
		assert_int_equal(pwrite(fd, &b, 1, at), 1);
	}
	close(fd);
	pb_test_host_restart(&host, NULL);

	snprintf(fresh, sizeof(fresh), "%s/r-fresh", dir);
	assert_int_not_equal(run(args_fresh, NULL, NULL), 0);
	assert_int_equal(entries(fresh), -1);
	/* No staging folder is left beside it either. */
	assert_int_equal(entries(dir) >= 0, 1);
	{
		DIR *d = opendir(dir);
		struct dirent *e;

		assert_non_null(d);
		while ((e = readdir(d)) != NULL)
			assert_null(strstr(e->d_name, "r-fresh"));
		closedir(d);
	}

	mk(existing, "r-existing");
	snprintf(keep, sizeof(keep), "%s/contacts", existing);
	assert_int_equal(pb__mkdirs(keep, 0700), 0);
	snprintf(keep, sizeof(keep), "%s/contacts/contacts.vcf", existing);
	{
		/* The phone's first contact: the restore would merge the others. */
		char src[4200];
		size_t len;
		uint8_t *vcf;
		char *end;

		snprintf(src, sizeof(src), "%s/contacts/contacts.vcf", dev);
		vcf = pb_test_read_file(src, &len);
		assert_non_null(vcf);
		end = strstr((char *)vcf, "END:VCARD\r\n");
		assert_non_null(end);
		assert_int_equal(pb_test_write_file(keep, vcf, (size_t)(end + 11 - (char *)vcf)), 0);
		free(vcf);
	}
	pb_test_file_digest(keep, before);
	assert_int_not_equal(run(args_existing, NULL, NULL), 0);
	pb_test_file_digest(keep, after);
	assert_string_equal(before, after);
	assert_int_equal(entries(existing), 1);
	snprintf(keep, sizeof(keep), "%s/contacts", existing);
	assert_int_equal(entries(keep), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restore_refuses_symlink_in_target),
		cmocka_unit_test(test_import_refuses_symlinked_attachment),
		cmocka_unit_test(test_import_refuses_symlinked_device_folder),
		cmocka_unit_test(test_unparseable_file_is_skipped),
		cmocka_unit_test(test_rollback_needs_snapshot),
		cmocka_unit_test(test_rollback_one_message),
		cmocka_unit_test(test_restore_names_replaced_files),
		cmocka_unit_test(test_failed_restore_leaves_target),
	};

	/* PB_TEST_FILTER=test_name runs one case alone. */
	if (getenv("PB_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("PB_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
