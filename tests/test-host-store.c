/* The host's store under hostile and busy phones, with the account service,
 * the host and two phones of one account as their real programs on
 * loopback, and a client inside the test speaking for either phone:
 *
 * - a phone reading another's namespace does not lock that phone out of
 *   its own backups, and a reader beside a writer is served (never told
 *   "no backup" when the namespace is merely in use);
 * - reads of namespaces that do not exist leave nothing on the host;
 * - a device over its storage quota is refused with a clear error while
 *   the other device keeps backing up;
 * - a long snapshot commit runs off the host's event loop: another phone's
 *   handshake and ping are answered while it is held inside its
 *   transaction, and a request over its cap is refused;
 * - two phones writing at once with offers, puts and commits in flight
 *   (their requests go to the worker in runs) get every answer in order,
 *   a refused put fails the commit behind it only, and each receipt
 *   counts what it made durable;
 * - ChunkGets queued in a row are read together, a part at a time when
 *   they bring more than a worker job reads: each is answered once, in
 *   order, an absent one (the first of a run included) with its error;
 * - a phone waits for a snapshot in proportion to its references: a host
 *   still recording a big snapshot is not given up on, while a small one
 *   held as long is; and the host does not close the waiting phone's
 *   connection as idle meanwhile;
 * - four phones writing at once while the store is busy: what the host
 *   holds of their requests stays within its budget (plus the one request
 *   that reached it), reading resumes once the store is free, and every
 *   put is committed. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "harness.h"
#include "agent/backup/repo.h"
#include "agent/nfc/nfc.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"
#include "peerback/store.h"

static char *dir;
static pb_test_imd_t imd;
static pb_test_host_t host;
static char host_home[4096], phone_a[4096], phone_b[4096], dev_a[4200], dev_b[4200], hold[4200];
static char id_a[2 * PB_DEVICE_ID_LEN + 1], id_b[2 * PB_DEVICE_ID_LEN + 1];
static uint8_t bin_a[PB_DEVICE_ID_LEN];
static uint64_t next_id = 1000;

static void mk(char *out, const char *name)
{
	snprintf(out, 4096, "%s/%s", dir, name);
	assert_int_equal(pb__mkdirs(out, 0700), 0);
}

/* Runs peerback for a phone; on failure *why (may be NULL) gets its stderr. */
static int run(const char *home, char *const args[], char **out, char **why)
{
	char *err = NULL;
	int rc = pb_test_peerback(home, args, out, &err);

	if (rc != 0)
		printf("peerback %s %s: exit %d: %s", args[0], args[1] != NULL ? args[1] : "", rc, err);
	if (why != NULL)
		*why = err;
	else
		free(err);
	return rc;
}

/* Reads whatever the host printed so that its stdout never fills. */
static void drain_host(void)
{
	char line[4096];

	while (pb_test_readline(&host.proc, line, sizeof(line), 0) >= 0)
		;
}

static void pair(const char *home, char id[2 * PB_DEVICE_ID_LEN + 1])
{
	char *args[] = { "pair", host.uri, NULL };
	char line[4096];

	assert_int_equal(run(home, args, NULL, NULL), 0);
	assert_true(pb_test_host_wait(&host, "paired", line, sizeof(line), 10000) > 0);
	assert_int_equal(pb_test_json_str(line, "device", id, 2 * PB_DEVICE_ID_LEN + 1), 0);
	/* The code just used is spent; the host shows the next one. */
	assert_true(pb_test_host_wait(&host, "advertise", line, sizeof(line), 10000) > 0);
}

/* A contacts file of n cards with random notes (incompressible enough to
 * weigh about 120 bytes each once sealed). */
static void make_contacts(const char *home, const char *dev, const char *tag, int n)
{
	char path[4400];
	char *text = malloc((size_t)n * 400 + 1);
	size_t len = 0;
	char *args[] = { "import", "contacts", path, "--device", (char *)dev, NULL };

	assert_non_null(text);
	for (int i = 0; i < n; i++) {
		uint8_t r[48];
		char hex[97];

		randombytes_buf(r, sizeof(r));
		sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
		len += (size_t)snprintf(text + len, 400,
					"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:%s %d\r\nTEL;TYPE=cell:+1555%06d\r\n"
					"NOTE:%s\r\nEND:VCARD\r\n",
					tag, i, i, hex);
	}
	snprintf(path, sizeof(path), "%s/%s.vcf", dir, tag);
	assert_int_equal(pb_test_write_file(path, text, len), 0);
	free(text);
	assert_int_equal(run(home, args, NULL, NULL), 0);
}

static void make_credential(const char *dev, const char *id)
{
	pb_credential_t c;
	pb_buf_t b = { 0 };
	uint8_t data[32];
	char path[4400];

	memset(&c, 0, sizeof(c));
	snprintf(c.id, sizeof(c.id), "%s", id);
	snprintf(c.type, sizeof(c.type), "transit");
	snprintf(c.aid, sizeof(c.aid), "A0000000041010");
	c.created = 1700000000;
	randombytes_buf(data, sizeof(data));
	c.data = data;
	c.data_len = sizeof(data);
	pb_credential_checksum(data, sizeof(data), c.checksum);
	assert_int_equal(pb_credential_format(&c, &b), 0);
	snprintf(path, sizeof(path), "%s/credentials", dev);
	assert_int_equal(pb__mkdirs(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/credentials/%s.json", dev, id);
	assert_int_equal(pb_test_write_file(path, b.data, b.len), 0);
	pb_buf_free(&b);
}

static int backup(const char *home, const char *dev, char **why)
{
	char *args[] = { "--json", "backup", "--device", (char *)dev, NULL };

	return run(home, args, NULL, why);
}

/* The host's --idle-timeout, below the hold of test_snapshot_wait_scales. */
#define IDLE_S "2"
static const char *const host_args[] = { "--idle-timeout", IDLE_S, NULL };

static int setup(void **state)
{
	const char *accounts[] = { "alice", NULL };
	size_t n;

	(void)state;
	assert_true(sodium_init() >= 0);
	dir = pb_test_tmpdir("host-store");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	mk(host_home, "host");
	mk(phone_a, "phone-a");
	mk(phone_b, "phone-b");
	snprintf(dev_a, sizeof(dev_a), "%s/device", phone_a);
	snprintf(dev_b, sizeof(dev_b), "%s/device", phone_b);
	assert_int_equal(pb__mkdirs(dev_a, 0700), 0);
	assert_int_equal(pb__mkdirs(dev_b, 0700), 0);
	assert_int_equal(pb_test_login(&imd, host_home, "alice", "desk"), 0);
	assert_int_equal(pb_test_login(&imd, phone_a, "alice", "phone-a"), 0);
	assert_int_equal(pb_test_login(&imd, phone_b, "alice", "phone-b"), 0);
	/* The test can stop the host's store inside a snapshot commit: while
	 * this file exists, a commit that reaches its checked point waits
	 * there (and says so with hold.held). */
	snprintf(hold, sizeof(hold), "%s/hold", dir);
	setenv("PEERBACK_TEST_STORE_HOLD", hold, 1);
	/* A connection silent for IDLE_S seconds is closed, unless the host
	 * is still working on its answer. */
	pb_test_host_start(&host, host_home, "127.0.0.1:0", host_args);
	unsetenv("PEERBACK_TEST_STORE_HOLD");
	pair(phone_a, id_a);
	pair(phone_b, id_b);
	assert_int_equal(sodium_hex2bin(bin_a, sizeof(bin_a), id_a, strlen(id_a), NULL, &n, NULL), 0);
	assert_int_equal(n, sizeof(bin_a));
	make_contacts(phone_a, dev_a, "a", 5);
	make_credential(dev_a, "card");
	make_contacts(phone_b, dev_b, "b", 5);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_cleanup(&host, &imd, dir);
	return 0;
}

/* ---- a phone's session inside the test ---------------------------------- */

static void connect_as(const char *home, pb_client_t *c)
{
	int rc = pb__phone_connect(home, NULL, 10000, c, NULL);

	if (rc != 0)
		printf("connect: %s\n", pb_strerror(rc));
	assert_int_equal(rc, 0);
}

static int call(pb_client_t *c, Peerback__Request *req, pb_envelope_t **out)
{
	req->id = ++next_id;
	return pb__phone_call(c, req, out);
}

static int send_only(pb_client_t *c, Peerback__Request *req)
{
	req->id = ++next_id;
	return pb__phone_send(c, req);
}

static int list_snapshots(pb_client_t *c, const uint8_t *device, size_t n)
{
	Peerback__Request req;
	Peerback__SnapshotList sl;

	peerback__request__init(&req);
	peerback__snapshot_list__init(&sl);
	sl.device.data = (uint8_t *)device;
	sl.device.len = n;
	req.op_case = PEERBACK__REQUEST__OP_SNAPSHOT_LIST;
	req.snapshot_list = &sl;
	return call(c, &req, NULL);
}

static void put_chunk(pb_client_t *c, const uint8_t name[PB_STORE_NAME_LEN], const uint8_t *data, size_t len)
{
	assert_int_equal(pb__phone_chunk_put(c, ++next_id, name, data, len), 0);
}

static int commit(pb_client_t *c)
{
	Peerback__Request req;
	Peerback__Commit cm;

	peerback__request__init(&req);
	peerback__commit__init(&cm);
	req.op_case = PEERBACK__REQUEST__OP_COMMIT;
	req.commit = &cm;
	return call(c, &req, NULL);
}

static int ping(pb_client_t *c)
{
	Peerback__Request req;
	Peerback__Ping p;
	uint8_t data[8] = "pingpong";

	peerback__request__init(&req);
	peerback__ping__init(&p);
	p.data.data = data;
	p.data.len = sizeof(data);
	req.op_case = PEERBACK__REQUEST__OP_PING;
	req.ping = &p;
	return call(c, &req, NULL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- one namespace, several connections ------------------------------------ */

static void test_reader_beside_writer(void **state)
{
	pb_client_t reader, writer;
	uint8_t name[PB_STORE_NAME_LEN], data[512];
	char out_dir[4400], creds[4400];
	char *why_backup = NULL, *why_restore = NULL, *why_nfc = NULL, *why_ls = NULL;
	int rc_backup, rc_restore, rc_nfc, rc_ls;

	(void)state;
	assert_int_equal(backup(phone_a, dev_a, NULL), 0);

	/* Phone B reads A's snapshots and keeps its connection open. */
	connect_as(phone_b, &reader);
	assert_int_equal(list_snapshots(&reader, bin_a, sizeof(bin_a)), 0);
	/* A backs up again and uses its credential from the host meanwhile. */
	make_contacts(phone_a, dev_a, "a2", 3);
	rc_backup = backup(phone_a, dev_a, &why_backup);
	snprintf(creds, sizeof(creds), "%s/credentials/card.json", dev_a);
	{
		char kept[4400];
		char *args[] = { "--json", "nfc", "use", "card", "--transaction", "--timeout", "10000", NULL };

		snprintf(kept, sizeof(kept), "%s/card.json.kept", dir);
		assert_int_equal(rename(creds, kept), 0);
		rc_nfc = run(phone_a, args, NULL, &why_nfc);
		assert_int_equal(rename(kept, creds), 0);
	}

	/* A writes into its own namespace (a batch not yet committed) while
	 * B restores A's backup and lists it. */
	connect_as(phone_a, &writer);
	randombytes_buf(name, sizeof(name));
	randombytes_buf(data, sizeof(data));
	put_chunk(&writer, name, data, sizeof(data));
	assert_int_equal(ping(&writer), 0);
	snprintf(out_dir, sizeof(out_dir), "%s/restored-by-b", dir);
	{
		char *args[] = { "--json", "restore", "--to", out_dir, NULL };
		char *ls[] = { "--json", "ls", "--from", id_a, NULL };

		rc_restore = run(phone_b, args, NULL, &why_restore);
		rc_ls = run(phone_b, ls, NULL, &why_ls);
	}
	/* And the writer's batch still commits. */
	assert_int_equal(commit(&writer), 0);
	pb__client_close(&writer);
	pb__client_close(&reader);
	drain_host();

	if (rc_backup != 0)
		printf("backup of A beside B's read: %s", why_backup);
	if (rc_nfc != 0)
		printf("nfc use --transaction on A beside B's read: %s", why_nfc);
	if (rc_restore != 0)
		printf("restore by B beside A's write: %s", why_restore);
	if (rc_ls != 0)
		printf("ls by B beside A's write: %s", why_ls);
	free(why_backup);
	free(why_nfc);
	free(why_restore);
	free(why_ls);
	assert_int_equal(rc_backup, 0);
	assert_int_equal(rc_nfc, 0);
	assert_int_equal(rc_restore, 0);
	assert_int_equal(rc_ls, 0);
	{
		char path[4400];
		struct stat sb;

		snprintf(path, sizeof(path), "%s/credentials/card.json", out_dir);
		assert_int_equal(stat(path, &sb), 0);
	}
}

/* ---- reads never write ------------------------------------------------------ */

static long long index_count(const char *table)
{
	char path[4400], sql[128];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long n = -1;

	snprintf(path, sizeof(path), "%s/store/index.db", host_home);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_true(n >= 0);
	return n;
}

/* Entries (files and folders) below path. */
static size_t count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char sub[4400];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		n += 1 + count_entries(sub);
	}
	closedir(d);
	return n;
}

static void test_reads_never_write(void **state)
{
	pb_client_t c;
	char packs[4400];
	long long rows;
	size_t entries;
	int answered = 0;

	(void)state;
	snprintf(packs, sizeof(packs), "%s/store/packs", host_home);
	rows = index_count("ns");
	entries = count_entries(packs);
	connect_as(phone_b, &c);
	/* B has never backed up: its own namespace is read too. */
	for (int i = 0; i < 201; i++) {
		uint8_t dev[PB_DEVICE_ID_LEN], name[PB_STORE_NAME_LEN];
		size_t dlen = i == 0 ? 0 : sizeof(dev);
		Peerback__Request req;
		Peerback__BlobGet bg;
		Peerback__SnapshotGet sg;
		Peerback__ChunkGet cg;
		Peerback__ChunkOffer co;

		randombytes_buf(dev, sizeof(dev));
		randombytes_buf(name, sizeof(name));
		if (list_snapshots(&c, dev, dlen) == 0)
			answered++;
		peerback__request__init(&req);
		peerback__blob_get__init(&bg);
		bg.device.data = dev;
		bg.device.len = dlen;
		req.op_case = PEERBACK__REQUEST__OP_MASTERKEY_GET;
		req.masterkey_get = &bg;
		assert_int_equal(call(&c, &req, NULL), PB_ENOTFOUND);
		peerback__request__init(&req);
		peerback__snapshot_get__init(&sg);
		sg.device.data = dev;
		sg.device.len = dlen;
		sg.snapshot = 1;
		req.op_case = PEERBACK__REQUEST__OP_SNAPSHOT_GET;
		req.snapshot_get = &sg;
		assert_int_equal(call(&c, &req, NULL), PB_ESTORE_NOSNAP);
		peerback__request__init(&req);
		peerback__chunk_get__init(&cg);
		cg.device.data = dev;
		cg.device.len = dlen;
		cg.name.data = name;
		cg.name.len = sizeof(name);
		req.op_case = PEERBACK__REQUEST__OP_CHUNK_GET;
		req.chunk_get = &cg;
		assert_int_equal(call(&c, &req, NULL), PB_ENOTFOUND);
		if (i == 0) {
			/* Asking which chunks the host lacks is a read as well. */
			peerback__request__init(&req);
			peerback__chunk_offer__init(&co);
			co.names.data = name;
			co.names.len = sizeof(name);
			req.op_case = PEERBACK__REQUEST__OP_CHUNK_OFFER;
			req.chunk_offer = &co;
			assert_int_equal(call(&c, &req, NULL), 0);
		}
	}
	{
		Peerback__Request req;
		Peerback__BackupList bl;

		peerback__request__init(&req);
		peerback__backup_list__init(&bl);
		req.op_case = PEERBACK__REQUEST__OP_BACKUP_LIST;
		req.backup_list = &bl;
		assert_int_equal(call(&c, &req, NULL), 0);
	}
	pb__client_close(&c);
	drain_host();
	printf("reads answered: %d snapshot lists; namespaces %lld -> %lld; pack entries %zu -> %zu\n", answered,
	       rows, index_count("ns"), entries, count_entries(packs));
	assert_int_equal(answered, 201);
	assert_int_equal(index_count("ns"), rows);
	assert_int_equal(count_entries(packs), entries);
}

/* ---- per-device quota ---------------------------------------------------------- */

static int host_cmd(char *const args[], char **out, char **why)
{
	return run(host_home, args, out, why);
}

static void test_device_quota(void **state)
{
	char *set_small[] = { "host", "quota", id_a, "16K", NULL };
	char *set_big[] = { "host", "quota", id_a, "64M", NULL };
	char *why_a = NULL, *why_b = NULL, *out = NULL;
	int rc_set, rc_a, rc_b, rc_again;

	(void)state;
	rc_set = host_cmd(set_small, &out, NULL);
	printf("host quota: %s", out != NULL ? out : "");
	free(out);
	/* About 60 KiB of sealed contacts: over A's quota. */
	make_contacts(phone_a, dev_a, "big", 400);
	rc_a = backup(phone_a, dev_a, &why_a);
	/* B is not held back by A. */
	make_contacts(phone_b, dev_b, "b2", 50);
	rc_b = backup(phone_b, dev_b, &why_b);
	printf("A over its quota: exit %d: %s", rc_a, why_a != NULL ? why_a : "\n");
	assert_int_equal(rc_set, 0);
	assert_int_not_equal(rc_a, 0);
	assert_non_null(strstr(why_a, "quota"));
	assert_int_equal(rc_b, 0);
	free(why_a);
	free(why_b);
	/* Raised, A's backup completes: nothing was lost. */
	assert_int_equal(host_cmd(set_big, NULL, NULL), 0);
	rc_again = backup(phone_a, dev_a, NULL);
	assert_int_equal(rc_again, 0);
	{
		char *devices[] = { "--json", "host", "devices", NULL };

		assert_int_equal(host_cmd(devices, &out, NULL), 0);
		assert_non_null(strstr(out, "\"quota\":67108864"));
		free(out);
	}
	drain_host();
}

/* ---- storage work off the event loop -------------------------------------------- */

/* The most references one SnapshotPut may carry (docs/PROTOCOL.md). */
#define REFS_CAP PB_STORE_SNAPSHOT_REFS_MAX

static int snapshot_put(pb_client_t *c, uint64_t snap, const uint8_t name[PB_STORE_NAME_LEN], size_t nrefs,
			bool wait)
{
	Peerback__Request req;
	Peerback__SnapshotPut sp;
	uint8_t root[64];
	uint8_t *refs = malloc(nrefs * PB_STORE_NAME_LEN);
	int rc;

	assert_non_null(refs);
	for (size_t i = 0; i < nrefs; i++)
		memcpy(refs + i * PB_STORE_NAME_LEN, name, PB_STORE_NAME_LEN);
	randombytes_buf(root, sizeof(root));
	peerback__request__init(&req);
	peerback__snapshot_put__init(&sp);
	sp.snapshot = snap;
	sp.root.data = root;
	sp.root.len = sizeof(root);
	sp.refs.data = refs;
	sp.refs.len = nrefs * PB_STORE_NAME_LEN;
	req.op_case = PEERBACK__REQUEST__OP_SNAPSHOT_PUT;
	req.snapshot_put = &sp;
	rc = wait ? call(c, &req, NULL) : send_only(c, &req);
	free(refs);
	return rc;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void test_commit_off_loop(void **state)
{
	pb_client_t writer, other;
	uint8_t name[PB_STORE_NAME_LEN], data[1024];
	char held[4400];
	double t0, t_commit, t_ping = -1;
	int rc_connect, rc_ping = -1, peer = 0;
	bool still_held = false;
	pb_envelope_t *in = NULL;

	(void)state;
	snprintf(held, sizeof(held), "%s.held", hold);
	connect_as(phone_a, &writer);
	randombytes_buf(name, sizeof(name));
	randombytes_buf(data, sizeof(data));
	put_chunk(&writer, name, data, sizeof(data));
	assert_int_equal(commit(&writer), 0);

	/* A snapshot of 100,000 references, stopped inside its transaction. */
	assert_int_equal(pb_test_write_file(hold, "", 0), 0);
	t_commit = now_s();
	assert_int_equal(snapshot_put(&writer, 0x5150000000000001ull, name, 100000, false), 0);
	for (int i = 0; i < 2000 && !exists(held); i++)
		usleep(10000);
	assert_true(exists(held));

	/* Meanwhile phone B connects (a full handshake) and pings. */
	t0 = now_s();
	{
		int rc = pb__phone_connect(phone_b, NULL, 5000, &other, NULL);

		rc_connect = rc;
		if (rc == 0) {
			rc_ping = ping(&other);
			pb__client_close(&other);
		}
	}
	t_ping = now_s() - t0;
	still_held = exists(held);
	/* The commit is held for 3 s in all: well past the bound below. */
	while (now_s() - t_commit < 3.0)
		usleep(10000);
	unlink(hold);

	/* The commit completes once released, with its receipt. */
	assert_int_equal(pb__client_recv(&writer, &in, &peer), 0);
	t_commit = now_s() - t_commit;
	assert_int_equal(in->body_case, PEERBACK__ENVELOPE__BODY_REPLY);
	assert_int_equal(in->reply->op_case, PEERBACK__REPLY__OP_OK);
	pb__envelope_free(in);
	printf("handshake and ping while a commit was held: %s / %s in %.3f s (commit took %.3f s)\n",
	       pb_strerror(rc_connect), rc_ping == -1 ? "not sent" : pb_strerror(rc_ping), t_ping, t_commit);
	assert_int_equal(rc_connect, 0);
	assert_int_equal(rc_ping, 0);
	assert_true(still_held);
	assert_true(t_ping < 1.5);
	assert_true(t_ping * 2 < t_commit);

	/* One reference over the cap: refused with a clear error, and the
	 * connection stays usable. */
	{
		int rc = snapshot_put(&writer, 0x5150000000000002ull, name, REFS_CAP + 1, true);

		printf("SnapshotPut of %u references: %s\n", REFS_CAP + 1, pb_strerror(rc));
		assert_int_equal(rc, PB_ETOOBIG);
		assert_int_equal(ping(&writer), 0);
	}
	pb__client_close(&writer);
	drain_host();
}

/* ---- writes in flight from two phones at once ------------------------------ */

#define WIN_N 600 /* chunks a phone puts: more than one run of the worker */

static uint64_t offer_send(pb_client_t *c, const uint8_t (*names)[PB_STORE_NAME_LEN], size_t n)
{
	Peerback__Request req;
	Peerback__ChunkOffer offer;

	peerback__request__init(&req);
	peerback__chunk_offer__init(&offer);
	offer.names.data = (uint8_t *)names;
	offer.names.len = n * PB_STORE_NAME_LEN;
	req.op_case = PEERBACK__REQUEST__OP_CHUNK_OFFER;
	req.chunk_offer = &offer;
	assert_int_equal(send_only(c, &req), 0);
	return req.id;
}

static uint64_t commit_send(pb_client_t *c)
{
	Peerback__Request req;
	Peerback__Commit cm;

	peerback__request__init(&req);
	peerback__commit__init(&cm);
	req.op_case = PEERBACK__REQUEST__OP_COMMIT;
	req.commit = &cm;
	assert_int_equal(send_only(c, &req), 0);
	return req.id;
}

/* The answer to offer id: how many were missing (first_missing: whether
 * the first name was). */
static size_t want_recv(pb_client_t *c, uint64_t id, bool *first_missing)
{
	pb_envelope_t *in = NULL;
	size_t n;

	assert_int_equal(pb__phone_reply(c, id, &in), 0);
	assert_int_equal(in->reply->op_case, PEERBACK__REPLY__OP_CHUNK_WANT);
	n = in->reply->chunk_want->n_missing;
	if (first_missing != NULL)
		*first_missing = n > 0 && in->reply->chunk_want->missing[0] == 0;
	pb__envelope_free(in);
	return n;
}

static uint64_t receipt_recv(pb_client_t *c, uint64_t id)
{
	pb_envelope_t *in = NULL;
	uint64_t n;

	assert_int_equal(pb__phone_reply(c, id, &in), 0);
	assert_int_equal(in->reply->op_case, PEERBACK__REPLY__OP_RECEIPT);
	n = in->reply->receipt->chunks;
	pb__envelope_free(in);
	return n;
}

static void test_writes_in_flight(void **state)
{
	static uint8_t names[2][WIN_N + 1][PB_STORE_NAME_LEN];
	const size_t half = WIN_N / 2;
	pb_client_t c[2];
	uint64_t o1[2], o2[2], c1[2], c2[2], c3[2];
	uint8_t data[2][64];
	bool first_missing;

	(void)state;
	connect_as(phone_a, &c[0]);
	connect_as(phone_b, &c[1]);
	randombytes_buf(names, sizeof(names));
	/* Everything is sent before any answer is read, the two phones'
	 * requests interleaved. */
	for (int p = 0; p < 2; p++)
		o1[p] = offer_send(&c[p], (const uint8_t(*)[PB_STORE_NAME_LEN])names[p], half);
	for (size_t i = 0; i < half; i++)
		for (int p = 0; p < 2; p++) {
			randombytes_buf(data[p], sizeof(data[p]));
			put_chunk(&c[p], names[p][i], data[p], sizeof(data[p]));
		}
	for (int p = 0; p < 2; p++) {
		c1[p] = commit_send(&c[p]);
		/* Asked again after the first commit: names[p][0] is in. */
		memcpy(names[p][WIN_N], names[p][0], PB_STORE_NAME_LEN);
		o2[p] = offer_send(&c[p], (const uint8_t(*)[PB_STORE_NAME_LEN])names[p] + half, half + 1);
	}
	for (size_t i = half; i < WIN_N; i++)
		for (int p = 0; p < 2; p++) {
			randombytes_buf(data[p], sizeof(data[p]));
			put_chunk(&c[p], names[p][i], data[p], sizeof(data[p]));
		}
	for (int p = 0; p < 2; p++) {
		/* An empty put is refused: the commit behind it fails... */
		put_chunk(&c[p], names[p][WIN_N], data[p], 0);
		c2[p] = commit_send(&c[p]);
		/* ...and the next one makes the second half durable. */
		c3[p] = commit_send(&c[p]);
	}
	for (int p = 0; p < 2; p++) {
		pb_envelope_t *in = NULL;

		assert_int_equal(want_recv(&c[p], o1[p], &first_missing), half);
		assert_true(first_missing);
		assert_int_equal(receipt_recv(&c[p], c1[p]), half);
		assert_int_equal(want_recv(&c[p], o2[p], NULL), half);
		assert_int_equal(pb__phone_reply(&c[p], c2[p], &in), PB_EENV_MALFORMED);
		assert_int_equal(receipt_recv(&c[p], c3[p]), half);
		/* All of them are in now. */
		o1[p] = offer_send(&c[p], (const uint8_t(*)[PB_STORE_NAME_LEN])names[p], WIN_N);
		assert_int_equal(want_recv(&c[p], o1[p], NULL), 0);
		pb__client_close(&c[p]);
	}
	drain_host();
}

/* ---- reads in a row ----------------------------------------------------------- */

#define BIG_LEN (3u << 20) /* two of them are more than one worker job reads */
#define NBIG 3

static uint64_t get_send(pb_client_t *c, const uint8_t name[PB_STORE_NAME_LEN])
{
	Peerback__Request req;
	Peerback__ChunkGet cg;

	peerback__request__init(&req);
	peerback__chunk_get__init(&cg);
	cg.name.data = (uint8_t *)name;
	cg.name.len = PB_STORE_NAME_LEN;
	req.op_case = PEERBACK__REQUEST__OP_CHUNK_GET;
	req.chunk_get = &cg;
	assert_int_equal(send_only(c, &req), 0);
	return req.id;
}

static void test_gets_in_a_row(void **state)
{
	static uint8_t names[NBIG][PB_STORE_NAME_LEN], absent[2][PB_STORE_NAME_LEN];
	/* Absent first (the run's first answer is an error), then more than
	 * one job's bytes, an absent one among them, then a known one again. */
	const int order[] = { -1, 0, 1, -2, 2, 0 };
	const size_t norder = sizeof(order) / sizeof(order[0]);
	uint64_t ids[sizeof(order) / sizeof(order[0])], cm;
	uint8_t *data[NBIG];
	pb_client_t c;

	(void)state;
	connect_as(phone_b, &c);
	randombytes_buf(names, sizeof(names));
	randombytes_buf(absent, sizeof(absent));
	for (int i = 0; i < NBIG; i++) {
		data[i] = malloc(BIG_LEN);
		assert_non_null(data[i]);
		randombytes_buf(data[i], BIG_LEN);
		put_chunk(&c, names[i], data[i], BIG_LEN);
	}
	/* The gets queue behind the commit's fsync: the worker takes them as
	 * one run. */
	cm = commit_send(&c);
	for (size_t k = 0; k < norder; k++)
		ids[k] = get_send(&c, order[k] >= 0 ? names[order[k]] : absent[-order[k] - 1]);
	assert_int_equal(receipt_recv(&c, cm), NBIG);
	for (size_t k = 0; k < norder; k++) {
		pb_envelope_t *in = NULL;
		int rc = pb__phone_reply(&c, ids[k], &in);

		if (order[k] < 0) {
			assert_int_equal(rc, PB_ENOTFOUND);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(in->reply->op_case, PEERBACK__REPLY__OP_CHUNK);
		assert_int_equal(in->reply->chunk->data.len, BIG_LEN);
		assert_memory_equal(in->reply->chunk->data.data, data[order[k]], BIG_LEN);
		pb__envelope_free(in);
	}
	for (int i = 0; i < NBIG; i++)
		free(data[i]);
	pb__client_close(&c);
	drain_host();
}

/* Holds the host's store inside a snapshot commit until HOLD_S seconds
 * after the commit got there: the thread's argument is the start time. */
#define HOLD_S 3.5

static void *release_hold(void *arg)
{
	char held[4400];
	double t0 = 0;

	(void)arg;
	snprintf(held, sizeof(held), "%s.held", hold);
	for (int i = 0; i < 6000 && t0 == 0; i++) {
		if (exists(held))
			t0 = now_s();
		else
			usleep(10000);
	}
	while (t0 != 0 && now_s() - t0 < HOLD_S)
		usleep(10000);
	unlink(hold);
	return NULL;
}

/* A SnapshotPut of nrefs references (all one committed chunk) through the
 * phone's remote repository, whose session waits wait_ms for an answer,
 * while the host is held HOLD_S seconds inside the commit. */
static int held_snapshot(uint64_t snap, size_t nrefs, int wait_ms, double *took)
{
	pb_repo_t *repo = NULL;
	pb_repo_name_t *refs = calloc(nrefs, sizeof(*refs));
	uint8_t data[256], root[64];
	pthread_t th;
	double t0;
	int rc;

	assert_non_null(refs);
	assert_int_equal(pb__repo_remote_open(phone_a, NULL, wait_ms, dev_a, NULL, NULL, &repo), 0);
	randombytes_buf(refs[0], sizeof(refs[0]));
	randombytes_buf(data, sizeof(data));
	randombytes_buf(root, sizeof(root));
	for (size_t i = 1; i < nrefs; i++)
		memcpy(refs[i], refs[0], sizeof(refs[0]));
	assert_int_equal(repo->ops->put(repo, refs[0], data, sizeof(data)), 0);
	assert_int_equal(repo->ops->commit(repo), 0);
	assert_int_equal(pb_test_write_file(hold, "", 0), 0);
	assert_int_equal(pthread_create(&th, NULL, release_hold, NULL), 0);
	t0 = now_s();
	rc = repo->ops->snapshot_put(repo, snap, root, sizeof(root), refs, nrefs);
	*took = now_s() - t0;
	assert_int_equal(pthread_join(th, NULL), 0);
	pb__repo_close(repo);
	free(refs);
	drain_host();
	return rc;
}

static void test_snapshot_wait_scales(void **state)
{
	double took;
	int rc;

	(void)state;
	/* One reference: the phone's one-second wait runs out while the host
	 * is held (what a loaded host did to a million-reference snapshot
	 * before the wait grew with the references). */
	rc = held_snapshot(0x5150000000000011ull, 1, 1000, &took);
	printf("1 reference, held %.1f s, 1 s wait: %s after %.2f s\n", HOLD_S, pb_strerror(rc), took);
	assert_int_equal(rc, PB_ETIMEOUT);
	/* 30,000 references: the same one-second session waits for the
	 * host as long as it keeps to its allowance per reference, and gets
	 * its receipt; the host, working on it past its idle timeout, keeps
	 * the connection. */
	rc = held_snapshot(0x5150000000000012ull, 30000, 1000, &took);
	printf("30000 references, held %.1f s, 1 s wait: %s after %.2f s\n", HOLD_S, pb_strerror(rc), took);
	assert_int_equal(rc, 0);
	assert_true(took >= HOLD_S);
}

/* ---- the host's budget for waiting requests ------------------------------------ */

#define BUDGET (1u << 20)
#define NWRITERS 4
#define NPUT 64
#define PUT_LEN (64u << 10)

struct writer {
	pb_client_t c;
	uint64_t first_id, commit_id;
	uint8_t names[NPUT][PB_STORE_NAME_LEN];
	int rc;
};

/* Sends NPUT puts and a commit without reading: blocks while the host does
 * not read the connection. */
static void *write_all(void *arg)
{
	struct writer *w = arg;
	uint8_t *data = malloc(PUT_LEN);
	Peerback__Request req;
	Peerback__Commit cm;

	w->rc = data != NULL ? 0 : PB_ENOMEM;
	for (size_t i = 0; i < NPUT && w->rc == 0; i++) {
		randombytes_buf(data, PUT_LEN);
		w->rc = pb__phone_chunk_put(&w->c, w->first_id + i, w->names[i], data, PUT_LEN);
	}
	free(data);
	if (w->rc != 0)
		return NULL;
	peerback__request__init(&req);
	peerback__commit__init(&cm);
	req.op_case = PEERBACK__REQUEST__OP_COMMIT;
	req.commit = &cm;
	req.id = w->commit_id;
	w->rc = pb__phone_send(&w->c, &req);
	return NULL;
}

static size_t queue_peak(const char *path)
{
	size_t len = 0, v = 0;
	uint8_t *text = pb_test_read_file(path, &len);
	char num[32];

	if (text != NULL && len > 0 && len < sizeof(num)) {
		memcpy(num, text, len);
		num[len] = 0;
		v = (size_t)strtoull(num, NULL, 10);
	}
	free(text);
	return v;
}

static void test_queue_budget(void **state)
{
	static struct writer w[NWRITERS];
	char phone_c[4096], phone_d[4096], id_c[2 * PB_DEVICE_ID_LEN + 1], id_d[2 * PB_DEVICE_ID_LEN + 1];
	char peak[4200], held[4400], budget[32];
	const char *homes[NWRITERS] = { phone_a, phone_b, phone_c, phone_d };
	uint8_t name[PB_STORE_NAME_LEN], data[1024];
	pthread_t th[NWRITERS];
	pb_envelope_t *in = NULL;
	uint64_t snap_id;
	size_t p = 0;

	(void)state;
	snprintf(peak, sizeof(peak), "%s/queue-peak", dir);
	snprintf(held, sizeof(held), "%s.held", hold);
	snprintf(budget, sizeof(budget), "%u", BUDGET);
	setenv("PEERBACK_TEST_STORE_HOLD", hold, 1);
	setenv("PEERBACK_TEST_QUEUE_BUDGET", budget, 1);
	setenv("PEERBACK_TEST_QUEUE_PEAK", peak, 1);
	pb_test_host_stop(&host);
	pb_test_host_restart(&host, host_args);
	unsetenv("PEERBACK_TEST_STORE_HOLD");
	unsetenv("PEERBACK_TEST_QUEUE_BUDGET");
	unsetenv("PEERBACK_TEST_QUEUE_PEAK");
	mk(phone_c, "phone-c");
	mk(phone_d, "phone-d");
	assert_int_equal(pb_test_login(&imd, phone_c, "alice", "phone-c"), 0);
	assert_int_equal(pb_test_login(&imd, phone_d, "alice", "phone-d"), 0);
	pair(phone_c, id_c);
	pair(phone_d, id_d);
	for (int i = 0; i < NWRITERS; i++) {
		connect_as(homes[i], &w[i].c);
		randombytes_buf(w[i].names, sizeof(w[i].names));
		w[i].first_id = 0x42000000ull + (uint64_t)i * 0x10000;
		w[i].commit_id = w[i].first_id + NPUT;
	}

	/* The store is kept busy inside a snapshot commit of the first phone:
	 * nothing waiting is answered meanwhile. */
	randombytes_buf(name, sizeof(name));
	randombytes_buf(data, sizeof(data));
	put_chunk(&w[0].c, name, data, sizeof(data));
	assert_int_equal(commit(&w[0].c), 0);
	assert_int_equal(pb_test_write_file(hold, "", 0), 0);
	assert_int_equal(snapshot_put(&w[0].c, 0x5150000000000003ull, name, 1, false), 0);
	snap_id = next_id;
	for (int i = 0; i < 2000 && !exists(held); i++)
		usleep(10000);
	assert_true(exists(held));

	/* Each phone sends 4 MiB of puts, 16 times the host's budget in all. */
	for (int i = 0; i < NWRITERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, write_all, &w[i]), 0);
	for (int i = 0; i < 3000 && (p = queue_peak(peak)) < BUDGET; i++)
		usleep(10000);
	printf("requests waiting on the host: %zu bytes at most (budget %u)\n", p, BUDGET);
	assert_true(p >= BUDGET);
	unlink(hold);

	for (int i = 0; i < NWRITERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].rc, 0);
	}
	assert_int_equal(pb__phone_reply(&w[0].c, snap_id, &in), 0);
	pb__envelope_free(in);
	for (int i = 0; i < NWRITERS; i++) {
		assert_int_equal(receipt_recv(&w[i].c, w[i].commit_id), NPUT);
		pb__client_close(&w[i].c);
	}
	/* Never more than the budget and the one request that reached it. */
	p = queue_peak(peak);
	printf("requests waiting on the host: %zu bytes at most after all (budget %u)\n", p, BUDGET);
	assert_true(p >= BUDGET);
	assert_true(p < BUDGET + 256 + PUT_LEN);
	drain_host();
}

/* ---- the host's budget for replies ---------------------------------------------- */

#define REPLY_BUDGET (1u << 20)
#define NREADERS 2
#define NGET 256
#define GET_LEN (64u << 10)
/* The host's most for one run of reads (requests.c, GET_BATCH_BYTES), and
 * what a connection may always have waiting (REPLY_FLOOR). */
#define RUN_BYTES_MAX (4u << 20)
#define REPLY_FLOOR (256u << 10)

/* Chunk k of reader r: its bytes follow from r and k. */
static void reader_chunk(int r, size_t k, uint8_t *out)
{
	for (size_t i = 0; i < GET_LEN; i++)
		out[i] = (uint8_t)(i * 31 + k * 7 + (size_t)r * 101);
}

/* Two phones each ask for 16 MiB of chunks and read nothing for a while:
 * the host serves their reads while the replies of both together are
 * under its reply budget (plus one run of reads), and then only a short
 * run at a time to a phone whose own replies are below a floor. The first
 * phone is read to the end before the second is read at all: the second's
 * unread replies must not stop the first's. Every reply comes, in order
 * and intact. */
static void test_reply_budget(void **state)
{
	static uint8_t names[NREADERS][NGET][PB_STORE_NAME_LEN];
	static uint64_t ids[NREADERS][NGET];
	const char *homes[NREADERS] = { phone_a, phone_b };
	char peak[4200], budget[32];
	uint8_t *data = malloc(GET_LEN);
	pb_client_t c[NREADERS];
	size_t p = 0;

	(void)state;
	assert_non_null(data);
	snprintf(peak, sizeof(peak), "%s/reply-peak", dir);
	snprintf(budget, sizeof(budget), "%u", REPLY_BUDGET);
	setenv("PEERBACK_TEST_REPLY_BUDGET", budget, 1);
	setenv("PEERBACK_TEST_REPLY_PEAK", peak, 1);
	pb_test_host_stop(&host);
	pb_test_host_restart(&host, host_args);
	unsetenv("PEERBACK_TEST_REPLY_BUDGET");
	unsetenv("PEERBACK_TEST_REPLY_PEAK");
	for (int r = 0; r < NREADERS; r++) {
		connect_as(homes[r], &c[r]);
		randombytes_buf(names[r], sizeof(names[r]));
		for (size_t k = 0; k < NGET; k++) {
			reader_chunk(r, k, data);
			put_chunk(&c[r], names[r][k], data, GET_LEN);
		}
		assert_int_equal(commit(&c[r]), 0);
	}
	for (int r = 0; r < NREADERS; r++)
		for (size_t k = 0; k < NGET; k++)
			ids[r][k] = get_send(&c[r], names[r][k]);
	/* Not read (well within the idle timeout): the host fills what it may. */
	for (int i = 0; i < 100 && (p = queue_peak(peak)) < REPLY_BUDGET; i++)
		usleep(10000);
	usleep(300000);
	for (int r = 0; r < NREADERS; r++)
		for (size_t k = 0; k < NGET; k++) {
			pb_envelope_t *in = NULL;

			int rc = pb__phone_reply(&c[r], ids[r][k], &in);

			if (rc != 0)
				printf("reader %d, reply %zu: %s\n", r, k, pb_strerror(rc));
			assert_int_equal(rc, 0);
			assert_int_equal(in->reply->op_case, PEERBACK__REPLY__OP_CHUNK);
			assert_int_equal(in->reply->chunk->data.len, GET_LEN);
			reader_chunk(r, k, data);
			assert_memory_equal(in->reply->chunk->data.data, data, GET_LEN);
			pb__envelope_free(in);
		}
	for (int r = 0; r < NREADERS; r++)
		pb__client_close(&c[r]);
	free(data);
	p = queue_peak(peak);
	printf("replies waiting on the host: %zu bytes at most (budget %u)\n", p, REPLY_BUDGET);
	assert_true(p >= REPLY_BUDGET);
	/* The budget and one run, and per phone its floor and a short run of
	 * a floor's bytes and one chunk; the channel's bound alone would let
	 * each phone have 4 MiB and a run. */
	assert_true(p < REPLY_BUDGET + RUN_BYTES_MAX + NREADERS * (2 * REPLY_FLOOR + GET_LEN + 4096));
	drain_host();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_beside_writer),
		cmocka_unit_test(test_reads_never_write),
		cmocka_unit_test(test_device_quota),
		cmocka_unit_test(test_commit_off_loop),
		cmocka_unit_test(test_writes_in_flight),
		cmocka_unit_test(test_gets_in_a_row),
		cmocka_unit_test(test_snapshot_wait_scales),
		cmocka_unit_test(test_queue_budget),
		cmocka_unit_test(test_reply_budget),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
