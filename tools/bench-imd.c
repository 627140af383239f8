/* bench-imd: logins and ticket checks per second against one or more
 * peerback-imd instances (the same service: one key, one database), from
 * THREADS threads, each request a fresh connection as devices make them.
 *
 *   bench-imd ADDR[,ADDR...] KEY ACCOUNT PASSWORD LOGINS TICKETS THREADS
 *
 * Logins use a fresh device each. Ticket checks: a host and a phone log in
 * once, the host registers TICKETS sessions (not timed), then the phone
 * asks for each session's ticket (timed). Threads take the addresses in
 * turn. Prints one JSON object. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "peerback.h"
#include "peerback/noise.h"
#include "agent/account/account.h"
#include "agent/imd/imd.h"
#include "agent/util/fsutil.h"

#define MAX_ADDRS 8
#define MAX_THREADS 64

static char addrs[MAX_ADDRS][96];
static int naddrs;
static uint8_t key[32];
static const char *account, *password;
static int nthreads;

struct device {
	uint8_t id[PB_DEVICE_ID_LEN], sign_pk[32], sign_sk[64], static_pk[32], static_sk[32];
	pb_envelope_t *env; /* the login reply, holding the certificate */
	Peerback__SignedBlob *cert;
};

static uint8_t (*sessions)[PB_SESSION_ID_LEN];
static int nsessions;
static struct device host, phone;
static int failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int login(const char *addr, struct device *d, bool keep)
{
	Peerback__ImdRequest req;
	Peerback__Login l;
	Peerback__ImdReply *reply;
	pb_envelope_t *env;
	int rc;

	randombytes_buf(d->id, sizeof(d->id));
	crypto_sign_keypair(d->sign_pk, d->sign_sk);
	pb_noise_keypair(d->static_pk, d->static_sk);
	peerback__imd_request__init(&req);
	peerback__login__init(&l);
	l.account = (char *)account;
	l.password = (char *)password;
	l.device_id.data = d->id;
	l.device_id.len = sizeof(d->id);
	l.sign_pk.data = d->sign_pk;
	l.sign_pk.len = 32;
	l.static_pk.data = d->static_pk;
	l.static_pk.len = 32;
	l.device_name = "bench";
	req.op_case = PEERBACK__IMD_REQUEST__OP_LOGIN;
	req.login = &l;
	rc = pb__imd_call(addr, key, &req, &reply, &env);
	if (rc != 0)
		return rc;
	if (keep) {
		d->env = env;
		d->cert = reply->login->certificate;
	} else {
		pb__envelope_free(env);
	}
	return 0;
}

static int register_session(const char *addr, const uint8_t sid[PB_SESSION_ID_LEN])
{
	Peerback__ImdRequest req;
	Peerback__RegisterSession reg;
	Peerback__ImdReply *reply;
	pb_envelope_t *env;
	uint8_t sig[64];
	uint64_t not_after = pb__now() + 3600;
	int rc;

	peerback__imd_request__init(&req);
	peerback__register_session__init(&reg);
	reg.certificate = host.cert;
	reg.session_id.data = (uint8_t *)sid;
	reg.session_id.len = PB_SESSION_ID_LEN;
	reg.not_after = not_after;
	pb__sign_request(PB_IMD_REGISTER, sid, PB_SESSION_ID_LEN, not_after, host.sign_sk, sig);
	reg.signature.data = sig;
	reg.signature.len = sizeof(sig);
	req.op_case = PEERBACK__IMD_REQUEST__OP_REGISTER_SESSION;
	req.register_session = &reg;
	rc = pb__imd_call(addr, key, &req, &reply, &env);
	if (rc == 0)
		pb__envelope_free(env);
	return rc;
}

static int ticket(const char *addr, const uint8_t sid[PB_SESSION_ID_LEN])
{
	Peerback__ImdRequest req;
	Peerback__TicketRequest tr;
	Peerback__ImdReply *reply;
	pb_envelope_t *env;
	uint8_t sig[64];
	int rc;

	peerback__imd_request__init(&req);
	peerback__ticket_request__init(&tr);
	tr.certificate = phone.cert;
	tr.session_id.data = (uint8_t *)sid;
	tr.session_id.len = PB_SESSION_ID_LEN;
	pb__sign_request(PB_IMD_TICKET, sid, PB_SESSION_ID_LEN, 0, phone.sign_sk, sig);
	tr.signature.data = sig;
	tr.signature.len = sizeof(sig);
	req.op_case = PEERBACK__IMD_REQUEST__OP_TICKET_REQUEST;
	req.ticket_request = &tr;
	rc = pb__imd_call(addr, key, &req, &reply, &env);
	if (rc == 0)
		pb__envelope_free(env);
	return rc;
}

struct job {
	int index, count;
	int (*op)(int thread, int i);
};

static int op_login(int thread, int i)
{
	struct device d;
	int rc;

	(void)i;
	rc = login(addrs[thread % naddrs], &d, false);
	sodium_memzero(&d, sizeof(d));
	return rc;
}

static int op_register(int thread, int i)
{
	return register_session(addrs[thread % naddrs], sessions[i]);
}

static int op_ticket(int thread, int i)
{
	return ticket(addrs[thread % naddrs], sessions[i]);
}

static void *worker(void *arg)
{
	struct job *j = arg;

	for (int i = j->index; i < j->count; i += nthreads)
		if (j->op(j->index, i) != 0) {
			pthread_mutex_lock(&lock);
			failures++;
			pthread_mutex_unlock(&lock);
		}
	return NULL;
}

/* Runs op over count items on nthreads threads; the wall time. */
static double run(int (*op)(int, int), int count)
{
	pthread_t t[MAX_THREADS];
	struct job j[MAX_THREADS];
	double t0 = now_s();

	for (int i = 0; i < nthreads; i++) {
		j[i].index = i;
		j[i].count = count;
		j[i].op = op;
		if (pthread_create(&t[i], NULL, worker, &j[i]) != 0)
			exit(1);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	return now_s() - t0;
}

int main(int argc, char **argv)
{
	char list[1024], *save = NULL;
	int nlogins;
	double tl = 0, tt = 0;

	if (argc != 8) {
		fprintf(stderr, "usage: bench-imd ADDR[,ADDR...] KEY ACCOUNT PASSWORD LOGINS TICKETS THREADS\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	snprintf(list, sizeof(list), "%s", argv[1]);
	for (char *a = strtok_r(list, ",", &save); a != NULL && naddrs < MAX_ADDRS; a = strtok_r(NULL, ",", &save))
		snprintf(addrs[naddrs++], sizeof(addrs[0]), "%s", a);
	if (pb__b64url_decode(argv[2], key, 32) != 0) {
		fprintf(stderr, "bench-imd: bad KEY\n");
		return 2;
	}
	account = argv[3];
	password = argv[4];
	nlogins = atoi(argv[5]);
	nsessions = atoi(argv[6]);
	nthreads = atoi(argv[7]);
	if (naddrs == 0 || nlogins < 0 || nsessions < 0 || nthreads < 1 || nthreads > MAX_THREADS)
		return 2;
	if (nlogins > 0)
		tl = run(op_login, nlogins);
	if (nsessions > 0) {
		int rc;

		if ((rc = login(addrs[0], &host, true)) != 0 || (rc = login(addrs[0], &phone, true)) != 0) {
			fprintf(stderr, "bench-imd: login: %s\n", pb_strerror(rc));
			return 1;
		}
		sessions = calloc((size_t)nsessions, PB_SESSION_ID_LEN);
		if (sessions == NULL)
			return 1;
		randombytes_buf(sessions, (size_t)nsessions * PB_SESSION_ID_LEN);
		(void)run(op_register, nsessions);
		tt = run(op_ticket, nsessions);
	}
	printf("{\"instances\":%d,\"threads\":%d,\"logins\":%d,\"login_s\":%.3f,\"logins_per_s\":%.1f,"
	       "\"tickets\":%d,\"ticket_s\":%.3f,\"tickets_per_s\":%.1f,\"failures\":%d}\n",
	       naddrs, nthreads, nlogins, tl, tl > 0 ? nlogins / tl : 0.0, nsessions, tt,
	       tt > 0 ? nsessions / tt : 0.0, failures);
	if (host.env != NULL)
		pb__envelope_free(host.env);
	if (phone.env != NULL)
		pb__envelope_free(phone.env);
	free(sessions);
	return failures == 0 ? 0 : 1;
}
