/* A backup read on its host (pb_store_restore): a phone backs a device
 * directory up into a host store in this process, and the store's owner
 * restores the latest snapshot from the store alone, read only, while the
 * phone still holds the store open: the same files byte for byte, only
 * the items a filter wants, nothing saved of the key, and a wrong key
 * writes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "inproc.h"
#include "agent/backup/repo.h"
#include "agent/kinds/internal.h"
#include "agent/phone/handle.h"

/* The account's master key, unwrapped from the device's copy on the host. */
static void unwrap(const char *store, const char *account, const char *device, uint8_t mk[PB_MASTERKEY_LEN])
{
	pb_store_t *st;
	pb_store_ns_t *ns;
	uint8_t *blob = NULL;
	size_t len = 0;

	assert_int_equal(pb_store_open_ro(store, &st), 0);
	assert_int_equal(pb_store_ns_open_ro(st, account, device, &ns), 0);
	assert_int_equal(pb_store_blob_get(ns, "masterkey", &blob, &len), 0);
	assert_int_equal(pb_masterkey_unwrap(blob, len, PB_TEST_PASS, mk), 0);
	free(blob);
	pb_store_ns_close(ns);
	pb_store_close(st);
}

struct counts {
	uint64_t seen, contacts;
};

static bool only_contacts(void *arg, const pb_manifest_item_t *it)
{
	struct counts *c = arg;

	c->seen++;
	c->contacts += it->kind == PB_KIND_CONTACTS;
	return it->kind == PB_KIND_CONTACTS;
}

static void test_restore_from_store(void **state)
{
	int (*const gen[])(const char *, uint64_t, pb_gen_size_t) = { pb__gen_credentials, pb__gen_mifare, pb__gen_sim,
								       pb__gen_chat, pb__gen_contacts };
	char home[4096], store[4096], dev[4096], out[4096], work[4096], contacts[4096], key[4200], hex[33];
	uint8_t id[16], mk[PB_MASTERKEY_LEN];
	pb_repo_t *repo;
	pb_phone_t *ph;
	pb_provider_t *prov;
	pb_op_opts_t o;
	pb_op_result_t res, got;
	pb_store_restore_opts_t ro;
	struct counts c = {0, 0};

	(void)state;
	pb_test_path(home, "phone");
	pb_test_path(store, "store");
	pb_test_path(dev, "device");
	pb_test_path(out, "restored");
	pb_test_path(contacts, "contacts-only");
	pb_test_path(work, "work");
	assert_int_equal(mkdir(work, 0700), 0);
	randombytes_buf(id, sizeof(id));
	sodium_bin2hex(hex, sizeof(hex), id, sizeof(id));
	for (size_t k = 0; k < sizeof(gen) / sizeof(gen[0]); k++)
		assert_int_equal(gen[k](dev, 3, PB_GEN_SMALL), 0);
	assert_int_equal(pb__repo_local_open(store, "acct", id, &repo), 0);
	assert_int_equal(pb_phone_open(home, &ph), 0);
	pb__phone_set_repo(ph, repo);
	assert_int_equal(pb_phone_set_device_dir(ph, dev), 0);
	o = pb_test_opts();
	assert_int_equal(pb_phone_backup(ph, &o, &res), 0);
	assert_true(res.items > 100);

	/* Everything, while the phone keeps the store open (and locked). */
	unwrap(store, "acct", hex, mk);
	memset(&ro, 0, sizeof(ro));
	ro.store_dir = store;
	ro.account = "acct";
	ro.device = hex;
	ro.master_key = mk;
	ro.work_dir = work;
	assert_int_equal(pb_provider_dir(out, &prov), 0);
	ro.provider = prov;
	assert_int_equal(pb_store_restore(&ro, &got), 0);
	pb_provider_dir_free(prov);
	assert_int_equal(got.snapshot, res.snapshot);
	assert_int_equal(got.items, res.items);
	assert_int_equal(pb_test_same_tree(dev, out), 0);
	/* The key was the caller's: nothing of it under the working folder. */
	snprintf(key, sizeof(key), "%s/master.key", work);
	assert_int_equal(access(key, F_OK), -1);

	/* What the filter wants, and it saw every item once. */
	ro.want = only_contacts;
	ro.want_arg = &c;
	assert_int_equal(pb_provider_dir(contacts, &prov), 0);
	ro.provider = prov;
	assert_int_equal(pb_store_restore(&ro, &got), 0);
	pb_provider_dir_free(prov);
	assert_int_equal(c.seen, res.items);
	assert_true(c.contacts > 0);
	assert_int_equal(got.items, c.contacts);
	snprintf(key, sizeof(key), "%s/contacts", contacts);
	assert_int_equal(access(key, F_OK), 0);
	snprintf(key, sizeof(key), "%s/credentials", contacts);
	assert_int_equal(access(key, F_OK), -1);

	/* Another key opens nothing, and nothing appears. */
	pb_test_path(out, "wrong-key");
	mk[0] ^= 1;
	ro.want = NULL;
	assert_int_equal(pb_provider_dir(out, &prov), 0);
	ro.provider = prov;
	assert_int_not_equal(pb_store_restore(&ro, &got), 0);
	pb_provider_dir_free(prov);
	assert_int_equal(access(out, F_OK), -1);
	/* A device that is no hex id is refused. */
	ro.device = "not-a-device";
	assert_int_equal(pb_store_restore(&ro, &got), PB_EINVAL);
	sodium_memzero(mk, sizeof(mk));

	pb_phone_close(ph);
	pb__repo_close(repo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restore_from_store),
	};

	return cmocka_run_group_tests(tests, pb_test_dir_setup, pb_test_dir_teardown);
}
