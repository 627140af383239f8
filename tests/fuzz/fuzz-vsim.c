/* Fuzz target: what a phone reads from a host, or from the source of a
 * virtual SIM copy, before it trusts it. The first byte picks the input:
 *   0: an opened sealed profile (source certificate, signature, rows);
 *   1: a certificate body, signed here with a test service key, checked as
 *      the other device of a copy;
 *   2: a device or account name as the account service checks it.
 * Whatever passes must hold what the checks promise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peerback.h"
#include "agent/account/account.h"
#include "agent/phone/phone.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t service_pk[32], service_sk[64];
static const uint8_t device[PB_DEVICE_ID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const uint8_t host_static[32] = { 0x42 };

static void opened_profile(const uint8_t *p, size_t n)
{
	const uint8_t *cert, *sig, *rows;
	size_t cert_len, rows_len;
	Peerback__Certificate *c;

	if (pb__vsim_parse(p, n, &cert, &cert_len, &sig, &rows, &rows_len) != 0)
		return;
	if (cert < p || cert_len > PB_CERT_MAX || sig != cert + cert_len || rows != sig + 64 || rows_len == 0 ||
	    rows + rows_len != p + n)
		__builtin_trap();
	if (pb__vsim_peer_cert(service_pk, cert, cert_len, device, sizeof(device), host_static, 1800000000, &c) == 0)
		__builtin_trap(); /* nothing here is signed by the service key */
}

static void signed_certificate(const uint8_t *p, size_t n)
{
	Peerback__SignedBlob blob;
	Peerback__Certificate *c;
	uint8_t sig[64], *packed;
	size_t len;

	if (n > PB_CERT_MAX - 128)
		return;
	crypto_sign_detached(sig, NULL, p, n, service_sk);
	peerback__signed_blob__init(&blob);
	blob.body.data = (uint8_t *)p;
	blob.body.len = n;
	blob.signature.data = sig;
	blob.signature.len = sizeof(sig);
	len = peerback__signed_blob__get_packed_size(&blob);
	packed = malloc(len ? len : 1);
	if (packed == NULL)
		abort();
	peerback__signed_blob__pack(&blob, packed);
	if (pb__vsim_peer_cert(service_pk, packed, len, device, sizeof(device), host_static, 1800000000, &c) == 0) {
		if (c->device_id.len != PB_DEVICE_ID_LEN || memcmp(c->device_id.data, device, PB_DEVICE_ID_LEN) != 0 ||
		    c->static_pk.len != 32 || memcmp(c->static_pk.data, host_static, 32) == 0 || c->account == NULL ||
		    c->not_before > 1800000000 || c->not_after < 1800000000)
			__builtin_trap();
		peerback__certificate__free_unpacked(c, NULL);
	}
	free(packed);
}

static void name(const uint8_t *p, size_t n)
{
	char buf[256];

	if (n >= sizeof(buf) || memchr(p, 0, n) != NULL)
		return;
	memcpy(buf, p, n);
	buf[n] = 0;
	if (!pb__name_valid(buf))
		return;
	if (n == 0 || n > PB_NAME_MAX)
		__builtin_trap();
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f || p[i] == 0xc0 || p[i] == 0xc1 || p[i] >= 0xf5)
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;

	if (!ready) {
		uint8_t seed[32] = { 7 };

		if (sodium_init() < 0)
			abort();
		crypto_sign_seed_keypair(service_pk, service_sk, seed);
		ready = 1;
	}
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		opened_profile(data + 1, size - 1);
		break;
	case 1:
		signed_certificate(data + 1, size - 1);
		break;
	default:
		name(data + 1, size - 1);
		break;
	}
	return 0;
}
