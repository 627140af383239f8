/* The account service checks passwords on libuv's thread pool: while one
 * login's Argon2 runs, the service still answers other requests. A login
 * and then an account-link question are sent on one connection, which the
 * service reads in order: the question's answer must come first. Were the
 * hash on the event loop, the login's reply would always come first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "harness.h"
#include "agent/account/account.h"
#include "agent/imd/imd.h"
#include "agent/util/fsutil.h"
#include "peerback/noise.h"
#include "protocol/client.h"

static char *dir;
static pb_test_imd_t imd;

static int setup(void **state)
{
	const char *accounts[] = { "alice", "bob", NULL };

	(void)state;
	dir = pb_test_tmpdir("imd-async");
	pb_test_imd_start(&imd, dir, accounts, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_test_imd_stop(&imd);
	pb_test_rmtree(dir);
	free(dir);
	return 0;
}

static void connect_imd(pb_client_t *c)
{
	struct sockaddr_storage ss;
	pb_session_candidate_t cand;
	static uint8_t key[32];

	assert_int_equal(pb__b64url_decode(imd.key, key, 32), 0);
	assert_int_equal(pb__sockaddr_parse(imd.addr, &ss), 0);
	memset(&cand, 0, sizeof(cand));
	cand.protocol = PB_IMD_NOISE;
	cand.cfg.rs = key;
	cand.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	cand.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	memset(c, 0, sizeof(*c));
	assert_int_equal(pb__client_connect(c, &ss, 1, 3000, &cand, NULL), 0);
	c->timeout_ms = 30000;
}

static void send_request(pb_client_t *c, Peerback__ImdRequest *req)
{
	pb_envelope_t env;

	pb__envelope_init(&env);
	env.body_case = PEERBACK__ENVELOPE__BODY_IMD_REQUEST;
	env.imd_request = req;
	assert_int_equal(pb__client_send(c, &env), 0);
}

static void test_linked_answered_while_hashing(void **state)
{
	pb_client_t c1;
	Peerback__ImdRequest r1, r2;
	Peerback__Login login;
	Peerback__AccountsLinked q;
	pb_envelope_t *in = NULL;
	uint8_t dev[PB_DEVICE_ID_LEN], spk[32], ssk[64], xpk[32], xsk[32];
	int peer = 0;

	(void)state;
	randombytes_buf(dev, sizeof(dev));
	crypto_sign_keypair(spk, ssk);
	pb_noise_keypair(xpk, xsk);
	pb_test_login_request(&r1, &login, "alice", PB_TEST_PASSWORD, dev, spk, xpk, "phone");
	peerback__imd_request__init(&r2);
	peerback__accounts_linked__init(&q);
	q.account_a = "alice";
	q.account_b = "bob";
	r2.op_case = PEERBACK__IMD_REQUEST__OP_ACCOUNTS_LINKED;
	r2.accounts_linked = &q;

	/* Both on one connection, the login first: the service reads them in
	 * this order. */
	connect_imd(&c1);
	send_request(&c1, &r1);
	send_request(&c1, &r2);
	assert_int_equal(pb__client_recv(&c1, &in, &peer), 0);
	assert_int_equal(in->body_case, PEERBACK__ENVELOPE__BODY_IMD_REPLY);
	printf("first reply: %s\n", in->imd_reply->op_case == PEERBACK__IMD_REPLY__OP_LOGIN ? "the login's" : "the question's");
	assert_int_equal(in->imd_reply->op_case, PEERBACK__IMD_REPLY__OP_OK);
	assert_false(in->imd_reply->ok);
	pb__envelope_free(in);

	/* Then the login's, a certificate. */
	assert_int_equal(pb__client_recv(&c1, &in, &peer), 0);
	assert_int_equal(in->imd_reply->op_case, PEERBACK__IMD_REPLY__OP_LOGIN);
	pb__envelope_free(in);
	pb__client_close(&c1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linked_answered_while_hashing),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
