/* libmicrohttpd, loaded when the desktop command first needs it. Linked
 * at build time, it and what it pulls in (GnuTLS, p11-kit, nettle, gmp,
 * ...) are loaded and initialised at the start of every command: about
 * 1.3 ms of CPU, a good part of a short command's whole time (a restore of
 * one message by id). Only peerback desktop serves HTTP, so the functions
 * it calls are defined here with the library's own prototypes
 * (microhttpd.h checks them) and forward to the library, opened with
 * dlopen at the first call. */
#ifdef PB_HAVE_MHD
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <microhttpd.h>

#ifndef PB_MHD_SONAME
#define PB_MHD_SONAME "libmicrohttpd.so.12"
#endif

static struct {
	struct MHD_Daemon *(*start_daemon_va)(unsigned int, uint16_t, MHD_AcceptPolicyCallback, void *,
					      MHD_AccessHandlerCallback, void *, va_list);
	void (*stop_daemon)(struct MHD_Daemon *);
	const union MHD_DaemonInfo *(*get_daemon_info)(struct MHD_Daemon *, enum MHD_DaemonInfoType, ...);
	const char *(*lookup_connection_value)(struct MHD_Connection *, enum MHD_ValueKind, const char *);
	enum MHD_Result (*queue_response)(struct MHD_Connection *, unsigned int, struct MHD_Response *);
	struct MHD_Response *(*create_response_from_buffer)(size_t, void *, enum MHD_ResponseMemoryMode);
	struct MHD_Response *(*create_response_from_callback)(uint64_t, size_t, MHD_ContentReaderCallback, void *,
							      MHD_ContentReaderFreeCallback);
	enum MHD_Result (*add_response_header)(struct MHD_Response *, const char *, const char *);
	enum MHD_Result (*del_response_header)(struct MHD_Response *, const char *, const char *);
	void (*destroy_response)(struct MHD_Response *);
} mhd;
static pthread_once_t mhd_once = PTHREAD_ONCE_INIT;
static int mhd_ok;

#define MHD_SYM(lib, field, name) (*(void **)&mhd.field = dlsym(lib, name)) != NULL

static void mhd_load(void)
{
	void *lib = dlopen(PB_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (lib == NULL) {
		fprintf(stderr, "peerback: cannot load %s (the desktop web app's HTTP server): %s\n", PB_MHD_SONAME,
			dlerror());
		return;
	}
	mhd_ok = MHD_SYM(lib, start_daemon_va, "MHD_start_daemon_va") && MHD_SYM(lib, stop_daemon, "MHD_stop_daemon") &&
		 MHD_SYM(lib, get_daemon_info, "MHD_get_daemon_info") &&
		 MHD_SYM(lib, lookup_connection_value, "MHD_lookup_connection_value") &&
		 MHD_SYM(lib, queue_response, "MHD_queue_response") &&
		 MHD_SYM(lib, create_response_from_buffer, "MHD_create_response_from_buffer") &&
		 MHD_SYM(lib, create_response_from_callback, "MHD_create_response_from_callback") &&
		 MHD_SYM(lib, add_response_header, "MHD_add_response_header") &&
		 MHD_SYM(lib, del_response_header, "MHD_del_response_header") &&
		 MHD_SYM(lib, destroy_response, "MHD_destroy_response");
	if (!mhd_ok)
		fprintf(stderr, "peerback: %s lacks a function the desktop web app needs\n", PB_MHD_SONAME);
}

/* Only a daemon that started leads to the other calls: they need no check. */
struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc, void *apc_cls,
				    MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
	struct MHD_Daemon *d;
	va_list ap;

	pthread_once(&mhd_once, mhd_load);
	if (!mhd_ok)
		return NULL;
	va_start(ap, dh_cls);
	d = mhd.start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
	va_end(ap);
	return d;
}

void MHD_stop_daemon(struct MHD_Daemon *daemon)
{
	mhd.stop_daemon(daemon);
}

/* The info types the desktop asks for take no further argument. */
const union MHD_DaemonInfo *MHD_get_daemon_info(struct MHD_Daemon *daemon, enum MHD_DaemonInfoType info_type, ...)
{
	return mhd.get_daemon_info(daemon, info_type);
}

const char *MHD_lookup_connection_value(struct MHD_Connection *connection, enum MHD_ValueKind kind, const char *key)
{
	return mhd.lookup_connection_value(connection, kind, key);
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
				   struct MHD_Response *response)
{
	return mhd.queue_response(connection, status_code, response);
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode)
{
	return mhd.create_response_from_buffer(size, buffer, mode);
}

struct MHD_Response *MHD_create_response_from_callback(uint64_t size, size_t block_size, MHD_ContentReaderCallback crc,
						       void *crc_cls, MHD_ContentReaderFreeCallback crfc)
{
	return mhd.create_response_from_callback(size, block_size, crc, crc_cls, crfc);
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *response, const char *header, const char *content)
{
	return mhd.add_response_header(response, header, content);
}

enum MHD_Result MHD_del_response_header(struct MHD_Response *response, const char *header, const char *content)
{
	return mhd.del_response_header(response, header, content);
}

void MHD_destroy_response(struct MHD_Response *response)
{
	mhd.destroy_response(response);
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int pb_cli_no_mhd;
#endif
