/* A session's input cut anywhere: frames whole in one read (taken where
 * they lie), split across reads (gathered by the frame reader), several a
 * read, and held part-way (pb__session_feed_some) give the same Envelopes
 * in the same order. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "testutil.h"
#include "protocol/session.h"

struct wire {
	uint8_t *data;
	size_t len, cap;
};

static int wire_write(void *arg, const uint8_t *data, size_t len)
{
	struct wire *w = arg;

	if (w->len + len > w->cap) {
		size_t cap = (w->len + len) * 2;
		uint8_t *n = realloc(w->data, cap);

		if (n == NULL)
			return PB_ENOMEM;
		w->data = n;
		w->cap = cap;
	}
	memcpy(w->data + w->len, data, len);
	w->len += len;
	return 0;
}

struct got {
	size_t n;
	size_t lens[16];
	uint8_t first[16];
	bool hold_after; /* set hold after each Envelope */
	pb_session_t *s;
};

static void on_env(void *arg, pb_envelope_t *env)
{
	struct got *g = arg;

	assert_int_equal(env->body_case, PEERBACK__ENVELOPE__BODY_AUTH_CHALLENGE);
	assert_true(g->n < 16);
	g->lens[g->n] = env->auth_challenge->challenge.len;
	g->first[g->n] = env->auth_challenge->challenge.len > 0 ? env->auth_challenge->challenge.data[0] : 0;
	g->n++;
	pb__envelope_free(env);
	if (g->hold_after)
		g->s->hold = true;
}

static void ignore_env(void *arg, pb_envelope_t *env)
{
	(void)arg;
	pb__envelope_free(env);
}

static const size_t sizes[] = { 32, 1, 70000, 65000, 200000, 5, 131072, 40 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* A fresh pair of sessions, the handshake done in memory; the initiator's
 * Envelopes (one AuthChallenge of each size, filled with its index) end up
 * in *out as the responder would read them. */
static void make_stream(pb_session_t *resp, struct wire *out)
{
	static uint8_t r_priv[32], r_pub[32], psk[32];
	static bool keyed;
	pb_session_candidate_t ci, cr;
	pb_session_t init;
	struct wire to_r = { 0 }, to_i = { 0 };
	bool est_i = false, est_r = false;
	size_t k;

	if (!keyed) {
		crypto_box_keypair(r_pub, r_priv);
		randombytes_buf(psk, sizeof(psk));
		keyed = true;
	}
	memset(&ci, 0, sizeof(ci));
	ci.protocol = PB_NOISE_PAIRING;
	ci.cfg.rs = r_pub;
	ci.cfg.psks[0] = psk;
	ci.cfg.npsks = 1;
	ci.cfg.prologue = (const uint8_t *)PB_NOISE_PROLOGUE;
	ci.cfg.prologue_len = strlen(PB_NOISE_PROLOGUE);
	cr = ci;
	cr.cfg.rs = NULL;
	cr.cfg.s_priv = r_priv;
	assert_int_equal(pb__session_init(&init, true, &ci, 1, wire_write, &to_r, 0), 0);
	assert_int_equal(pb__session_init(resp, false, &cr, 1, wire_write, &to_i, 0), 0);
	assert_int_equal(pb__session_start(&init), 0);
	while (!est_i || !est_r) {
		size_t len = to_r.len;

		assert_true(len > 0 || to_i.len > 0);
		to_r.len = 0;
		if (len > 0)
			assert_int_equal(pb__session_feed(resp, to_r.data, len, ignore_env, NULL, &est_r), 0);
		len = to_i.len;
		to_i.len = 0;
		if (len > 0)
			assert_int_equal(pb__session_feed(&init, to_i.data, len, ignore_env, NULL, &est_i), 0);
	}
	to_r.len = 0;
	for (k = 0; k < NSIZES; k++) {
		uint8_t *b = malloc(sizes[k]);
		Peerback__AuthChallenge ac;
		pb_envelope_t env;

		assert_non_null(b);
		memset(b, (int)k + 1, sizes[k]);
		peerback__auth_challenge__init(&ac);
		ac.challenge.data = b;
		ac.challenge.len = sizes[k];
		pb__envelope_init(&env);
		env.body_case = PEERBACK__ENVELOPE__BODY_AUTH_CHALLENGE;
		env.auth_challenge = &ac;
		assert_int_equal(pb__session_send(&init, &env), 0);
		free(b);
	}
	*out = to_r;
	free(to_i.data);
	pb__session_free(&init);
}

static void check(const struct got *g)
{
	size_t k;

	assert_int_equal(g->n, NSIZES);
	for (k = 0; k < NSIZES; k++) {
		assert_int_equal(g->lens[k], sizes[k]);
		assert_int_equal(g->first[k], k + 1);
	}
}

static void test_split_anywhere(void **state)
{
	/* Read sizes: one byte, odd sizes, one frame and a bit, several
	 * frames, everything at once. */
	static const size_t steps[] = { 1, 2, 3, 1000, 65537, 65539, 65536 * 3 + 5, 262144, 0 };
	size_t t;

	(void)state;
	for (t = 0; t < sizeof(steps) / sizeof(steps[0]); t++) {
		pb_session_t s;
		struct wire w;
		struct got g = { 0 };
		size_t off = 0;

		make_stream(&s, &w);
		while (off < w.len) {
			size_t n = steps[t] == 0 ? w.len : steps[t];

			if (n > w.len - off)
				n = w.len - off;
			assert_int_equal(pb__session_feed(&s, w.data + off, n, on_env, &g, NULL), 0);
			off += n;
		}
		assert_int_equal(pb__session_eof(&s), PB_EPEER_CLOSED);
		check(&g);
		pb__session_free(&s);
		free(w.data);
	}
}

/* Held after each Envelope, the rest of a read is fed again: frames taken
 * in place and from the reader alike. */
static void test_hold_and_feed_again(void **state)
{
	static const size_t steps[] = { 7, 65537, 262144, 0 };
	size_t t;

	(void)state;
	for (t = 0; t < sizeof(steps) / sizeof(steps[0]); t++) {
		pb_session_t s;
		struct wire w;
		struct got g = { 0 };
		size_t off = 0;

		make_stream(&s, &w);
		g.hold_after = true;
		g.s = &s;
		while (off < w.len) {
			size_t n = steps[t] == 0 ? w.len - off : steps[t], used = 0, at = 0;

			if (n > w.len - off)
				n = w.len - off;
			while (at < n) {
				s.hold = false;
				assert_int_equal(pb__session_feed_some(&s, w.data + off + at, n - at, on_env, &g, NULL,
								       &used),
						 0);
				at += used;
			}
			off += n;
		}
		check(&g);
		pb__session_free(&s);
		free(w.data);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_anywhere),
		cmocka_unit_test(test_hold_and_feed_again),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
