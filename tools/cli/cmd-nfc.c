/* peerback nfc: the NFC transaction state, using a credential with the
 * paired host as fallback, and MIFARE Classic sector access. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "commands.h"
#include "kinds-cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: peerback nfc begin [--ttl SECONDS]\n"
		"       peerback nfc end\n"
		"       peerback nfc status\n"
		"       peerback nfc use CREDENTIAL [--transaction] [--reinstall] [--timeout MS]\n"
		"                                   [--out FILE] [--device DIR]\n"
		"       peerback nfc mifare show CARD [--sector N] [--device DIR]\n"
		"       peerback nfc mifare set CARD --block B --data HEX [--key A|B] [--device DIR]\n"
		"       peerback nfc mifare opkey CARD --sector N\n"
		"\n"
		"begin/end/status  mark an NFC transaction in progress (default %u s, at most\n"
		"                  %u s), end it, show it. The fallback to the paired host\n"
		"                  works only inside a transaction.\n"
		"use               read CREDENTIAL from the device directory; when it is\n"
		"                  missing, expired or fails its checksum during a transaction\n"
		"                  (or with --transaction), fetch it from a paired host within\n"
		"                  --timeout ms (default %d), and with --reinstall write it back.\n"
		"                  --out FILE receives the credential's data bytes.\n"
		"mifare show       a card's sectors: blocks, access conditions, cache copy state.\n"
		"mifare set        write 16 bytes (32 hex digits) into block B: staged in the\n"
		"                  cache copy, applied to the card only when the operation key\n"
		"                  from HOME/m1-keys/CARD.keys matches the sector's reference key\n"
		"                  and the access bits allow the write with --key (default: A,\n"
		"                  else B).\n"
		"mifare opkey      the operation key of a sector, to place in its reference\n"
		"                  block (bytes 0-5 of the block before the trailer).\n"
		"\n"
		"CARD is a card id (UID-HASH) or a prefix naming one card, such as its UID.\n"
		"See docs/NFC.md.\n",
		PB_NFC_TXN_TTL_DEFAULT, PB_NFC_TXN_TTL_MAX, PB_NFC_TIMEOUT_DEFAULT_MS);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return PB_EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != 0 || v > max)
		return PB_EINVAL;
	*out = v;
	return 0;
}

/* The phone handle with the device directory --device gave (NULL: the
 * default); a failure is told and its exit status returned. */
static int open_phone(pb_cli_t *cli, const char *device, pb_phone_t **out)
{
	char dir[4096];
	int rc;

	*out = NULL;
	if (pb_cli_device_dir(cli, device, dir, sizeof(dir)) != 0)
		return pb_cli_fail(cli, "device directory path is too long");
	if ((rc = pb_cli_phone(cli, dir, out)) != 0)
		return pb_cli_fail_err(cli, rc, "cannot open the phone's state in %s", cli->home);
	return 0;
}

static int bad_arg(const char *what, const char *arg)
{
	fprintf(stderr, "peerback nfc %s: unknown or incomplete argument '%s'; see 'peerback nfc --help'\n", what, arg);
	return 2;
}

/* --- Transaction ---------------------------------------------------------- */

static int cmd_begin(pb_cli_t *cli, int argc, char **argv)
{
	unsigned long ttl = PB_NFC_TXN_TTL_DEFAULT;
	uint64_t now = (uint64_t)time(NULL);
	pb_phone_t *phone;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc) {
			if (parse_uint(argv[++i], PB_NFC_TXN_TTL_MAX, &ttl) != 0 || ttl == 0)
				return pb_cli_fail(cli, "--ttl must be 1 to %u seconds", PB_NFC_TXN_TTL_MAX);
		} else {
			return bad_arg("begin", argv[i]);
		}
	}
	if ((rc = open_phone(cli, NULL, &phone)) != 0)
		return rc;
	rc = pb_phone_nfc_begin(phone, (unsigned)ttl);
	pb_phone_close(phone);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "cannot mark the NFC transaction in %s", cli->home);
	if (cli->json)
		(void)pb_cli_json("{s:s, s:b, s:I}", "event", "nfc-transaction", "active", 1, "expires",
				  (json_int_t)(now + ttl));
	else
		printf("NFC transaction in progress for %lu s\n", ttl);
	return 0;
}

static int cmd_end(pb_cli_t *cli, int argc, char **argv)
{
	pb_phone_t *phone;
	int rc;

	if (argc > 1)
		return bad_arg("end", argv[1]);
	if ((rc = open_phone(cli, NULL, &phone)) != 0)
		return rc;
	rc = pb_phone_nfc_end(phone);
	pb_phone_close(phone);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "cannot end the NFC transaction");
	if (cli->json)
		(void)pb_cli_json("{s:s, s:b}", "event", "nfc-transaction", "active", 0);
	return 0;
}

static int cmd_status(pb_cli_t *cli, int argc, char **argv)
{
	uint64_t now, expires = 0;
	pb_phone_t *phone;
	bool active;
	int rc;

	if (argc > 1)
		return bad_arg("status", argv[1]);
	if ((rc = open_phone(cli, NULL, &phone)) != 0)
		return rc;
	active = pb_phone_nfc_status(phone, &expires) == 0;
	pb_phone_close(phone);
	now = (uint64_t)time(NULL);
	if (active && expires < now)
		expires = now;
	if (cli->json)
		(void)pb_cli_json("{s:s, s:b, s:I}", "event", "nfc-transaction", "active", (int)active, "expires",
				  (json_int_t)(active ? expires : 0));
	else if (active)
		printf("NFC transaction in progress, %llu s left\n", (unsigned long long)(expires - now));
	else
		printf("no NFC transaction in progress\n");
	return 0;
}

/* --- Using a credential --------------------------------------------------- */

static int write_out(const char *path, const pb_credential_t *c)
{
	return pb_cli_write_file(path, c->data, c->data_len);
}

static int use_failed(pb_cli_t *cli, const char *id, const pb_nfc_result_t *r, int rc, int timeout_ms)
{
	const char *local = r->local == PB_ENOTFOUND ? "it is missing" : pb_strerror(r->local);

	if (cli->json)
		(void)pb_cli_json("{s:s, s:o, s:s, s:b, s:s, s:o}", "event", "nfc-failed", "credential",
				  pb_cli_text(id), "local", pb_err_name(r->local), "transaction",
				  (int)r->transaction, "error", pb_err_name(rc), "host", pb_cli_text(r->host));
	switch (rc) {
	case PB_ENFC_NO_TXN:
		return pb_cli_fail(cli,
				   "credential %s cannot be read on this phone (%s); no NFC transaction is in "
				   "progress, so the paired host was not asked (peerback nfc begin, or --transaction)",
				   id, local);
	case PB_ENFC_UNREACHABLE:
		return pb_cli_fail(cli,
				   "credential %s cannot be read on this phone (%s) and no paired host answered "
				   "within %d ms; check that the host runs and is on this network (peerback ping)",
				   id, local, timeout_ms);
	case PB_ENOTFOUND:
		return pb_cli_fail(cli, "credential %s cannot be read on this phone (%s) and no paired host holds a "
				   "backup of it", id, local);
	case PB_EACCT_NOT_PAIRED:
		return pb_cli_fail(cli, "credential %s cannot be read on this phone (%s) and this phone has no paired "
				   "host to ask; run peerback pair first", id, local);
	case PB_EINVAL:
		return pb_cli_fail(cli, "'%s' is not a credential id (1-64 of A-Z a-z 0-9 . _ -)", id);
	default:
		if (r->host[0] != 0)
			return pb_cli_fail(cli, "credential %s cannot be read on this phone (%s), and the copy host %s "
					   "sent is not usable either: %s", id, local, r->host, pb_strerror(rc));
		return pb_cli_fail(cli, "credential %s cannot be read on this phone (%s); asking the paired host "
				   "failed: %s", id, local, pb_strerror(rc));
	}
}

static int cmd_use(pb_cli_t *cli, int argc, char **argv)
{
	pb_nfc_opts_t o;
	pb_nfc_result_t r;
	pb_phone_t *phone;
	const char *id = NULL, *device = NULL, *out = NULL;
	char sum[9];
	unsigned long timeout = PB_NFC_TIMEOUT_DEFAULT_MS;
	int rc, status = 0;

	memset(&o, 0, sizeof(o));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--transaction") == 0)
			o.transaction = true;
		else if (strcmp(argv[i], "--reinstall") == 0)
			o.reinstall = true;
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			if (parse_uint(argv[++i], PB_NFC_TIMEOUT_MAX_MS, &timeout) != 0 || timeout == 0)
				return pb_cli_fail(cli, "--timeout must be 1 to %d milliseconds", PB_NFC_TIMEOUT_MAX_MS);
		} else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
			device = argv[++i];
		else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			out = argv[++i];
		else if (argv[i][0] != '-' && id == NULL)
			id = argv[i];
		else
			return bad_arg("use", argv[i]);
	}
	if (id == NULL) {
		usage(stderr);
		return 2;
	}
	if ((rc = open_phone(cli, device, &phone)) != 0)
		return rc;
	o.timeout_ms = (int)timeout;
	rc = pb_phone_nfc_use(phone, id, &o, &r);
	pb_phone_close(phone);
	if (rc != 0)
		return use_failed(cli, id, &r, rc, (int)timeout);
	if (out != NULL && (rc = write_out(out, r.cred)) != 0) {
		status = pb_cli_fail_err(cli, rc, "cannot write the credential's data to %s", out);
		goto out_free;
	}
	pb_cli_hex_upper(r.cred->checksum, 4, sum);
	if (cli->json) {
		(void)pb_cli_json("{s:s, s:o, s:o, s:s, s:s, s:b, s:o, s:f, s:b, s:s}", "event", "nfc-used",
				  "credential", pb_cli_text(id), "type", pb_cli_text(r.cred->type), "source",
				  r.from_host ? "host" : "local", "local",
				  r.local == 0 ? "ok" : pb_err_name(r.local), "transaction", (int)r.transaction,
				  "host", pb_cli_text(r.host), "fetch_ms", pb_cli_milli(r.fetch_ms),
				  "reinstalled", (int)r.reinstalled, "checksum", sum);
	} else if (!r.from_host) {
		printf("%s: used the copy on this phone (%s, %zu bytes)\n", id, r.cred->type, r.cred->data_len);
	} else {
		printf("%s: %s on this phone; used the copy from host %s (%.1f ms)%s\n", id,
		       r.local == PB_ENOTFOUND ? "missing" : pb_strerror(r.local), r.host[0] ? r.host : "?", r.fetch_ms,
		       r.reinstalled ? ", reinstalled" : "");
	}
	if (r.reinstall_error != 0)
		fprintf(stderr, "peerback: %s was used but could not be written back: %s\n", id,
			pb_strerror(r.reinstall_error));
out_free:
	pb_credential_free(r.cred);
	return status;
}

/* --- M1 sector access ----------------------------------------------------- */

static void rights_text(unsigned r, char out[5])
{
	size_t n = 0;

	if (r & PB_MIFARE_READ)
		out[n++] = 'r';
	if (r & PB_MIFARE_WRITE)
		out[n++] = 'w';
	if (r & PB_MIFARE_INCREMENT)
		out[n++] = 'i';
	if (r & PB_MIFARE_DECREMENT)
		out[n++] = 'd';
	if (n == 0)
		out[n++] = '-';
	out[n] = 0;
}

static void show_sector(pb_cli_t *cli, const char *card_id, const pb_mifare_card_t *card, unsigned s,
			const char *cache)
{
	unsigned first = pb_mifare_sector_first_block(s), nb = pb_mifare_sector_blocks(s), t = first + nb - 1;
	const char *state = card->state[s] == PB_MIFARE_SECTOR_READ ? "read"
			    : card->state[s] == PB_MIFARE_SECTOR_DEAD ? "dead"
								       : "missing";
	bool have_bits = card->state[s] == PB_MIFARE_SECTOR_READ && card->known[16 * t + 6] &&
			 card->known[16 * t + 7] && card->known[16 * t + 8];
	uint8_t cond[4] = { 0 };
	char bits[7] = "", hex[33];
	json_t *blocks = NULL;

	if (have_bits && pb_mifare_access_decode(card->data + 16 * t + 6, cond) != 0)
		have_bits = false;
	if (have_bits)
		pb_cli_hex_upper(card->data + 16 * t + 6, 3, bits);
	if (cli->json)
		blocks = json_array();
	else
		printf("sector %u: %s, access bits %s, cache copy: %s\n", s, state, have_bits ? bits : "unknown", cache);
	for (unsigned b = first; b < first + nb; b++) {
		char ra[5] = "?", rb[5] = "?";

		for (unsigned i = 0; i < 16; i++) {
			if (card->known[16 * b + i])
				pb_cli_hex_upper(card->data + 16 * b + i, 1, hex + 2 * i);
			else
				memcpy(hex + 2 * i, "--", 3);
		}
		if (have_bits && b != t) {
			uint8_t c = cond[pb_mifare_block_group(b)];
			rights_text(pb_mifare_data_rights(c, cond[3], PB_MIFARE_KEY_A), ra);
			rights_text(pb_mifare_data_rights(c, cond[3], PB_MIFARE_KEY_B), rb);
		}
		if (cli->json)
			json_array_append_new(blocks, pb_cli_text(hex));
		else
			printf("  block %3u  %s  %s%s%s%s%s\n", b, hex,
			       b == t ? "trailer" : b == 0 ? "manufacturer" : "data  ",
			       b == t || b == 0 ? "" : "  A:", b == t || b == 0 ? "" : ra,
			       b == t || b == 0 ? "" : "  B:", b == t || b == 0 ? "" : rb);
	}
	if (cli->json)
		(void)pb_cli_json("{s:s, s:o, s:I, s:o, s:o, s:o, s:o, s:I}", "event", "sector", "card",
				  pb_cli_text(card_id), "sector", (json_int_t)s, "state", pb_cli_text(state),
				  "access", pb_cli_text(bits), "cache", pb_cli_text(cache), "blocks", blocks,
				  "reference_block", (json_int_t)pb_m1_reference_block(s));
}

static int find_card(pb_cli_t *cli, pb_phone_t *phone, const char *dir, const char *name, char *id, size_t cap)
{
	int rc = pb_phone_m1_find(phone, name, id, cap);

	if (rc == PB_ENOTFOUND)
		return pb_cli_fail(cli, "no MIFARE card '%s' in %s/mifare; peerback export mifare lists them", name,
				   dir);
	if (rc == PB_EEXISTS)
		return pb_cli_fail(cli, "'%s' names more than one MIFARE card; give more of its id", name);
	if (rc == PB_EINVAL)
		return pb_cli_fail(cli, "'%s' is not a MIFARE card id (UID-HASH, hex and '-')", name);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "cannot list %s/mifare", dir);
	return 0;
}

static int cmd_mifare_show(pb_cli_t *cli, int argc, char **argv)
{
	const char *name = NULL, *device = NULL;
	char dir[4096], id[80];
	unsigned long sector = ULONG_MAX;
	pb_mifare_card_t *card;
	const char *cache[PB_MIFARE_MAX_SECTORS];
	pb_phone_t *phone;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sector") == 0 && i + 1 < argc) {
			if (parse_uint(argv[++i], PB_MIFARE_MAX_SECTORS - 1, &sector) != 0)
				return pb_cli_fail(cli, "--sector must be 0 to %d", PB_MIFARE_MAX_SECTORS - 1);
		} else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
			device = argv[++i];
		else if (argv[i][0] != '-' && name == NULL)
			name = argv[i];
		else
			return bad_arg("mifare show", argv[i]);
	}
	if (name == NULL) {
		usage(stderr);
		return 2;
	}
	if (pb_cli_device_dir(cli, device, dir, sizeof(dir)) != 0)
		return pb_cli_fail(cli, "device directory path is too long");
	if ((rc = open_phone(cli, device, &phone)) != 0)
		return rc;
	if ((rc = find_card(cli, phone, dir, name, id, sizeof(id))) == 0 &&
	    (rc = pb_phone_m1_show(phone, id, &card, cache)) != 0)
		rc = pb_cli_fail_err(cli, rc, "cannot read MIFARE card %s", id);
	pb_phone_close(phone);
	if (rc != 0)
		return rc;
	if (sector != ULONG_MAX && sector >= card->sectors) {
		rc = pb_cli_fail(cli, "card %s has sectors 0 to %u", id, card->sectors - 1);
		goto out_free;
	}
	if (!cli->json)
		printf("card %s: %u sectors\n", id, card->sectors);
	for (unsigned s = 0; s < card->sectors; s++)
		if (sector == ULONG_MAX || s == sector)
			show_sector(cli, id, card, s, cache[s]);
out_free:
	sodium_memzero(card, sizeof(*card));
	free(card);
	return rc;
}

static int cmd_mifare_set(pb_cli_t *cli, int argc, char **argv)
{
	const char *name = NULL, *device = NULL, *hex = NULL;
	char dir[4096], id[80];
	unsigned long block = ULONG_MAX;
	uint8_t data[16];
	size_t n = 0;
	int key = -1, rc;
	pb_m1_set_result_t r;
	pb_phone_t *phone;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--block") == 0 && i + 1 < argc) {
			if (parse_uint(argv[++i], 255, &block) != 0)
				return pb_cli_fail(cli, "--block must be a block number, 0 to 255");
		} else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
			hex = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "A") == 0 || strcmp(argv[i], "a") == 0)
				key = PB_MIFARE_KEY_A;
			else if (strcmp(argv[i], "B") == 0 || strcmp(argv[i], "b") == 0)
				key = PB_MIFARE_KEY_B;
			else
				return pb_cli_fail(cli, "--key must be A or B");
		} else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
			device = argv[++i];
		else if (argv[i][0] != '-' && name == NULL)
			name = argv[i];
		else
			return bad_arg("mifare set", argv[i]);
	}
	if (name == NULL || block == ULONG_MAX || hex == NULL) {
		usage(stderr);
		return 2;
	}
	if (strlen(hex) != 32 || sodium_hex2bin(data, sizeof(data), hex, 32, NULL, &n, NULL) != 0 || n != 16)
		return pb_cli_fail(cli, "--data must be 32 hex digits (16 bytes), not '%s'", hex);
	if (pb_cli_device_dir(cli, device, dir, sizeof(dir)) != 0)
		return pb_cli_fail(cli, "device directory path is too long");
	if ((rc = open_phone(cli, device, &phone)) != 0)
		return rc;
	if ((rc = find_card(cli, phone, dir, name, id, sizeof(id))) != 0) {
		pb_phone_close(phone);
		return rc;
	}
	rc = pb_phone_m1_set(phone, id, (unsigned)block, data, key, &r);
	pb_phone_close(phone);
	sodium_memzero(data, sizeof(data));
	if (rc == 0) {
		if (cli->json)
			(void)pb_cli_json("{s:s, s:o, s:I, s:I, s:s}", "event", "m1-written", "card",
					  pb_cli_text(id), "sector", (json_int_t)r.sector, "block",
					  (json_int_t)block, "key", r.key == PB_MIFARE_KEY_A ? "A" : "B");
		else
			printf("card %s: block %lu (sector %u) written with key %c; cache copy updated\n", id, block,
			       r.sector, r.key == PB_MIFARE_KEY_A ? 'A' : 'B');
		return 0;
	}
	if (cli->json)
		(void)pb_cli_json("{s:s, s:o, s:I, s:I, s:s, s:s}", "event", "m1-refused", "card", pb_cli_text(id),
				  "sector", (json_int_t)r.sector, "block", (json_int_t)block, "check",
				  pb_m1_check_name(r.failed), "error", pb_err_name(rc));
	switch (r.failed) {
	case PB_M1_CHECK_PERMISSION:
		return pb_cli_fail(cli, "card %s block %lu: write refused by the permission check: the operation key "
				   "from %s/m1-keys/%s.keys does not match the reference key in block %u; nothing was "
				   "changed", id, block, cli->home, id, pb_m1_reference_block(r.sector));
	case PB_M1_CHECK_ACCESS:
		return pb_cli_fail(cli, "card %s block %lu: write refused by the access check: the sector's access "
				   "bits forbid writing this block with key %s; nothing was changed", id, block,
				   key < 0 ? "A or B" : key == PB_MIFARE_KEY_A ? "A" : "B");
	case PB_M1_CHECK_KEYS:
		if (rc == PB_ENOKEY)
			return pb_cli_fail(cli, "card %s block %lu: write refused: the operation keys (%s/m1-keys/%s.keys, "
					   "two keys) or the sector's reference key or access bits are missing; nothing "
					   "was changed", id, block, cli->home, id);
		return pb_cli_fail_err(cli, rc, "card %s block %lu: write refused: %s/m1-keys/%s.keys must hold "
				       "exactly two 12-hex-digit keys; nothing was changed", id, block, cli->home, id);
	case PB_M1_CHECK_DATA:
		return pb_cli_fail_err(cli, rc, "card %s block %lu: write refused: the sector would no longer be valid; "
				       "nothing was changed", id, block);
	default:
		if (rc == PB_EINVAL)
			return pb_cli_fail(cli, "card %s has no block %lu", id, block);
		if (rc == PB_ENOTFOUND)
			return pb_cli_fail(cli, "card %s: sector of block %lu was not read from the card", id, block);
		return pb_cli_fail_err(cli, rc, "card %s block %lu: cannot write", id, block);
	}
}

static int cmd_mifare_opkey(pb_cli_t *cli, int argc, char **argv)
{
	const char *name = NULL;
	char id[80], hex[13];
	unsigned long sector = ULONG_MAX;
	uint8_t op[6];
	pb_phone_t *phone;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sector") == 0 && i + 1 < argc) {
			if (parse_uint(argv[++i], PB_MIFARE_MAX_SECTORS - 1, &sector) != 0)
				return pb_cli_fail(cli, "--sector must be 0 to %d", PB_MIFARE_MAX_SECTORS - 1);
		} else if (argv[i][0] != '-' && name == NULL)
			name = argv[i];
		else
			return bad_arg("mifare opkey", argv[i]);
	}
	if (name == NULL || sector == ULONG_MAX) {
		usage(stderr);
		return 2;
	}
	/* The card need not be in the device directory yet: opkey serves to
	 * prepare one. A known card's prefix is expanded. */
	if ((rc = open_phone(cli, NULL, &phone)) != 0)
		return rc;
	if (pb_phone_m1_find(phone, name, id, sizeof(id)) != 0) {
		size_t n = strlen(name);

		if (n >= sizeof(id)) {
			pb_phone_close(phone);
			return pb_cli_fail(cli, "'%s' is not a MIFARE card id (UID-HASH, hex and '-')", name);
		}
		memcpy(id, name, n + 1);
	}
	rc = pb_phone_m1_opkey(phone, id, (unsigned)sector, op);
	pb_phone_close(phone);
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "cannot read the two keys of %s/m1-keys/%s.keys", cli->home, id);
	pb_cli_hex_upper(op, 6, hex);
	if (cli->json)
		(void)pb_cli_json("{s:s, s:o, s:I, s:s, s:I}", "event", "m1-opkey", "card", pb_cli_text(id),
				  "sector", (json_int_t)sector, "opkey", hex, "reference_block",
				  (json_int_t)pb_m1_reference_block((unsigned)sector));
	else
		printf("%s\n", hex);
	sodium_memzero(op, sizeof(op));
	return 0;
}

static int cmd_mifare(pb_cli_t *cli, int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "show") == 0)
		return cmd_mifare_show(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "set") == 0)
		return cmd_mifare_set(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "opkey") == 0)
		return cmd_mifare_opkey(cli, argc - 1, argv + 1);
	return bad_arg("mifare", argv[1]);
}

int pb_cmd_nfc(pb_cli_t *cli, int argc, char **argv)
{
	if (pb_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "begin") == 0)
		return cmd_begin(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "end") == 0)
		return cmd_end(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "use") == 0)
		return cmd_use(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "mifare") == 0)
		return cmd_mifare(cli, argc - 1, argv + 1);
	return bad_arg("", argv[1]);
}
