/* Checks one whole-file item of the device directory with its kind's
 * parser before it is backed up: a damaged file (a truncated MIFARE dump, a
 * credential that is not JSON) is named and skipped by the scan rather than
 * backed up as if it were data. Files of multi-item formats are checked by
 * their codec's split; attachments and other files have no format to
 * check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "peerback/nfc.h"
#include "agent/kinds/util.h"

/* Keys a key file may hold: far more than any real one. */
#define MAX_KEYS 65536u

static bool ends_with(const char *s, const char *ext)
{
	size_t a = strlen(s), b = strlen(ext);

	return a > b && strcasecmp(s + a - b, ext) == 0;
}

/* Which parser checks relpath's bytes; NULL: none. */
static const char *check_of(const char *relpath)
{
	switch (pb__device_kind_of(relpath)) {
	case PB_KIND_CREDENTIAL:
		return ends_with(relpath, ".json") ? "credential" : NULL;
	case PB_KIND_MIFARE:
		if (strncmp(relpath, "mifare/keys/", 12) == 0)
			return ends_with(relpath, ".keys") ? "keys" : NULL;
		if (ends_with(relpath, ".mfd"))
			return "dump";
		return ends_with(relpath, ".mct") ? "mct" : NULL;
	default:
		return NULL;
	}
}

bool pb__kinds_checked(const char *relpath)
{
	return check_of(relpath) != NULL;
}

int pb__kinds_validate(const char *relpath, const uint8_t *buf, size_t len, char *why, size_t cap)
{
	const char *check = check_of(relpath);
	pb_mifare_card_t *card = NULL;
	int rc = 0;

	if (why != NULL && cap > 0)
		why[0] = 0;
	if (check == NULL)
		return 0;
	if (strcmp(check, "credential") == 0) {
		pb_credential_t *c = NULL;

		rc = pb_credential_parse(buf, len, &c, why, cap);
		pb_credential_free(c);
	} else if (strcmp(check, "dump") == 0) {
		rc = pb_mifare_parse_bin(buf, len, &card, why, cap);
	} else if (strcmp(check, "mct") == 0) {
		rc = pb_mifare_parse_mct(buf, len, &card, why, cap);
	} else {
		uint8_t (*keys)[6] = malloc(MAX_KEYS * sizeof(*keys));
		size_t n = 0;

		if (keys == NULL)
			return PB_ENOMEM;
		rc = pb_mifare_parse_keys(buf, len, keys, MAX_KEYS, &n, why, cap);
		sodium_memzero(keys, MAX_KEYS * sizeof(*keys));
		free(keys);
	}
	if (card != NULL) {
		sodium_memzero(card, sizeof(*card));
		free(card);
	}
	if (rc != 0 && why != NULL && cap > 0 && why[0] == 0)
		snprintf(why, cap, "%s", pb_strerror(rc));
	return rc;
}
