/* Phones in the test's own process against a local host store (inproc.h). */
#include "inproc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent/phone/handle.h"
#include "agent/util/fsutil.h"

unsigned pb_test_gets, pb_test_roots;

pb_op_opts_t pb_test_opts(void)
{
	pb_op_opts_t o;

	memset(&o, 0, sizeof(o));
	o.passphrase = PB_TEST_PASS;
	o.weak_kdf = true;
	return o;
}

void pb_test_phone_open(pb_test_phone_t *p)
{
	char store[4096];

	pb_test_path(store, "store");
	assert_int_equal(pb__repo_local_open(store, p->account, p->id, &p->repo), 0);
	assert_int_equal(pb_phone_open(p->home, &p->ph), 0);
	pb__phone_set_repo(p->ph, p->repo);
}

void pb_test_phone_close(pb_test_phone_t *p)
{
	pb_phone_close(p->ph);
	pb__repo_close(p->repo);
	p->ph = NULL;
	p->repo = NULL;
}

void pb_test_phone_init(pb_test_phone_t *p, const char *name, const char *account)
{
	memset(p, 0, sizeof(*p));
	pb_test_path(p->home, name);
	randombytes_buf(p->id, sizeof(p->id));
	p->account = account;
	pb_test_phone_open(p);
}

void pb_test_restore_into(pb_test_phone_t *p, const char *dev, const char *out, const char *item_id,
			  pb_op_result_t *res)
{
	pb_op_opts_t o = pb_test_opts();

	o.item_id = item_id;
	assert_int_equal(pb_phone_set_device_dir(p->ph, out), 0);
	assert_int_equal(pb_phone_restore(p->ph, &o, res), 0);
	assert_int_equal(pb_phone_set_device_dir(p->ph, dev), 0);
}

void pb_test_restore_same(pb_test_phone_t *p, const char *dev, const char *name)
{
	pb_op_result_t res;
	char out[4096];

	pb_test_path(out, name);
	pb_test_restore_into(p, dev, out, NULL, &res);
	assert_int_equal(pb_test_same_tree(dev, out), 0);
}

void pb_test_first_chat(const char *dev, char *chat, size_t cap, char *file, size_t fcap, uint8_t **buf,
			size_t *len)
{
	char chats[4200];

	snprintf(chats, sizeof(chats), "%s/chats", dev);
	pb_test_first_entry(chats, chat, cap);
	snprintf(file, fcap, "%s/chats/%s/result.json", dev, chat);
	assert_int_equal(pb__read_file(file, 64 << 20, buf, len), 0);
	*buf = realloc(*buf, *len + 1);
	assert_non_null(*buf);
	(*buf)[*len] = 0;
}

/* Chunk requests of a repository, counted (every local repository has the
 * same operations). */
static const pb_repo_ops_t *real_ops;
static pb_repo_ops_t counting_ops;

static int counting_get_send(pb_repo_t *r, const uint8_t *d, const uint8_t name[PB_STORE_NAME_LEN], uint64_t *tok)
{
	pb_test_gets++;
	return real_ops->get_send(r, d, name, tok);
}

static int counting_snapshot_get(pb_repo_t *r, const uint8_t *d, uint64_t snap, uint8_t **blob, size_t *len)
{
	pb_test_roots++;
	return real_ops->snapshot_get(r, d, snap, blob, len);
}

void pb_test_new_phone_restore(pb_test_phone_t *p, const char *dev, const char *name, const char *id,
			       const char *out, pb_op_result_t *res, bool *found)
{
	pb_test_phone_t p2;
	pb_op_opts_t o = pb_test_opts();
	uint8_t *buf = NULL;
	size_t len = 0;
	char file[4400], want[64];
	const char *msg = strstr(id, "/msg/"), *chat = id + 5;

	pb_test_phone_close(p);
	memset(&p2, 0, sizeof(p2));
	pb_test_path(p2.home, name);
	memcpy(p2.id, p->id, sizeof(p2.id));
	p2.account = p->account;
	pb_test_phone_open(&p2);
	real_ops = p2.repo->ops;
	counting_ops = *p2.repo->ops;
	counting_ops.get_send = counting_get_send;
	counting_ops.snapshot_get = counting_snapshot_get;
	p2.repo->ops = &counting_ops;
	assert_int_equal(pb_phone_set_device_dir(p2.ph, out), 0);
	o.item_id = id;
	pb_test_gets = pb_test_roots = 0;
	assert_int_equal(pb_phone_restore(p2.ph, &o, res), 0);
	pb_test_phone_close(&p2);
	snprintf(file, sizeof(file), "%s/chats/%.*s/result.json", out, (int)(msg - chat), chat);
	snprintf(want, sizeof(want), "{\"id\":%s,", msg + 5);
	assert_int_equal(pb__read_file(file, 64 << 20, &buf, &len), 0);
	buf = realloc(buf, len + 1);
	buf[len] = 0;
	*found = strstr((char *)buf, want) != NULL;
	free(buf);
	pb_test_phone_open(p);
	assert_int_equal(pb_phone_set_device_dir(p->ph, dev), 0);
}
