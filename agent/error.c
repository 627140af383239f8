/* Error sentences for peerback's own codes and for -errno. */
#include <errno.h>
#include <string.h>

#include "peerback/error.h"

const char *pb_strerror(int err)
{
	switch (err) {
#define PB__ERR_TEXT(name, value, text) case value: return text;
	PB_ERRNO_MAP(PB__ERR_TEXT)
#undef PB__ERR_TEXT
	default:
		break;
	}
	if (err == 0)
		return "success";
	if (err < 0 && err > -4096)
		return strerror(-err);
	return "unknown error";
}

const char *pb_err_name(int err)
{
	switch (err) {
#define PB__ERR_NAME(name, value, text) case value: return "PB_E" #name;
	PB_ERRNO_MAP(PB__ERR_NAME)
#undef PB__ERR_NAME
	default:
		break;
	}
	if (err == 0)
		return "OK";
	if (err < 0 && err > -4096) {
		const char *n = strerrorname_np(-err);
		if (n != NULL)
			return n;
	}
	return "UNKNOWN";
}
