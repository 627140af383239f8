/* Requests from an authenticated device. */
#include "peerback.h"
#include "agent/host/host.h"

static void pong(pb_host_conn_t *conn, const Peerback__Request *req)
{
	pb_envelope_t env;
	Peerback__Reply rep;
	Peerback__Ping ping;

	pb__envelope_init(&env);
	peerback__reply__init(&rep);
	peerback__ping__init(&ping);
	ping.data = req->ping->data;
	rep.id = req->id;
	rep.op_case = PEERBACK__REPLY__OP_PONG;
	rep.pong = &ping;
	env.body_case = PEERBACK__ENVELOPE__BODY_REPLY;
	env.reply = &rep;
	(void)pb__channel_send(&conn->ch, &env);
}

void pb__host_request(pb_host_conn_t *conn, pb_envelope_t *env)
{
	const Peerback__Request *req = env->request;

	switch (req->op_case) {
	case PEERBACK__REQUEST__OP_PING:
		pong(conn, req);
		break;
	default:
		pb__host_reply_error(conn, req->id, PB_EUNSUPPORTED);
		break;
	}
	pb__envelope_free(env);
}
