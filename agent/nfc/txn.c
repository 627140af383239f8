/* The NFC transaction state: HOME/nfc-transaction holds
 * {"started":S,"expires":E} while a transaction is in progress. The NFC
 * fallback asks the paired host only inside one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/nfc/nfc.h"
#include "agent/util/fsutil.h"
#include "peerback/error.h"

#define TXN_FILE "nfc-transaction"
#define TXN_MAX_FILE 1024u

static int txn_path(const char *home, char *out, size_t cap)
{
	if (home == NULL)
		return PB_EINVAL;
	return pb__path_join(out, cap, home, TXN_FILE);
}

int pb__nfc_txn_begin(const char *home, unsigned ttl_s, uint64_t now)
{
	char path[4096], text[128];
	int n, rc;

	if (ttl_s == 0 || ttl_s > PB_NFC_TXN_TTL_MAX)
		return PB_EINVAL;
	if ((rc = txn_path(home, path, sizeof(path))) != 0)
		return rc;
	if ((rc = pb__mkdirs(home, 0700)) != 0)
		return rc;
	n = snprintf(text, sizeof(text), "{\"started\":%llu,\"expires\":%llu}\n", (unsigned long long)now,
		     (unsigned long long)(now + ttl_s));
	if (n < 0 || (size_t)n >= sizeof(text))
		return PB_ETOOBIG;
	return pb__write_file_atomic(path, text, (size_t)n, 0600);
}

int pb__nfc_txn_end(const char *home)
{
	char path[4096];
	int rc;

	if ((rc = txn_path(home, path, sizeof(path))) != 0)
		return rc;
	if (unlink(path) != 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int pb__nfc_txn_get(const char *home, uint64_t now, uint64_t *expires)
{
	char path[4096];
	uint8_t *buf = NULL;
	size_t len;
	json_t *root = NULL, *e;
	int rc;

	if ((rc = txn_path(home, path, sizeof(path))) != 0)
		return rc;
	if (pb__read_file(path, TXN_MAX_FILE, &buf, &len) != 0)
		return PB_ENFC_NO_TXN;
	root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
	free(buf);
	rc = PB_ENFC_NO_TXN;
	if (root == NULL || !json_is_object(root))
		goto out_json;
	e = json_object_get(root, "expires");
	if (!json_is_integer(e) || json_integer_value(e) < 0 || (uint64_t)json_integer_value(e) <= now)
		goto out_json;
	if (expires != NULL)
		*expires = (uint64_t)json_integer_value(e);
	rc = 0;
out_json:
	json_decref(root);
	return rc;
}
