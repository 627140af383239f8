/* MIFARE Classic files: MIFARE Classic Tool .mct and .keys, binary .bin/.mfd,
 * Proxmark3 .eml and .json, Flipper .nfc. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback/nfc.h"
#include "agent/kinds/util.h"

#define MCT_MAX_FILE (256u << 10)
#define JSON_MAX_FILE (1u << 20)
#define LINE_MAX_LEN 4096
#define MCT_DEAD_DEFAULT "*No keys found or dead sector"

static pb_mifare_card_t *card_new(unsigned sectors)
{
	pb_mifare_card_t *card = malloc(sizeof(*card));

	if (card != NULL)
		pb_mifare_init(card, sectors);
	return card;
}

static void card_free(pb_mifare_card_t *card)
{
	if (card == NULL)
		return;
	sodium_memzero(card, sizeof(*card));
	free(card);
}

/* Marks every sector without a single known byte as missing. */
static void mark_missing(pb_mifare_card_t *card)
{
	for (unsigned s = 0; s < card->sectors; s++) {
		size_t off = 16 * (size_t)pb_mifare_sector_first_block(s), n = 16 * (size_t)pb_mifare_sector_blocks(s);
		bool any = false;

		for (size_t i = 0; i < n; i++)
			any |= card->known[off + i] != 0;
		if (!any)
			card->state[s] = PB_MIFARE_SECTOR_MISSING;
	}
}

static int finish(pb_mifare_card_t *card, pb_mifare_card_t **out, char *err, size_t cap)
{
	int rc = pb_mifare_validate(card, err, cap);

	if (rc != 0) {
		card_free(card);
		return rc;
	}
	*out = card;
	return 0;
}

/* --- MIFARE Classic Tool .mct ----------------------------------------------- */

int pb_mifare_parse_mct(const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *err, size_t cap)
{
	pb_mifare_card_t *card;
	pb__kinds_lines_t it;
	const char *line;
	size_t n;
	int cur = -1, max_sector = -1;
	unsigned got = 0, want = 0, sectors, lines = 0, crlf = 0;
	bool seen[PB_MIFARE_MAX_SECTORS] = { false }, newline = false;
	int rc;

	*out = NULL;
	if (len > MCT_MAX_FILE)
		return pb__kinds_errf(err, cap, PB_ETOOBIG, "file is larger than %u bytes", MCT_MAX_FILE);
	card = card_new(40);
	if (card == NULL)
		return PB_ENOMEM;
	memset(card->known, 0, sizeof(card->known));
	memset(card->state, PB_MIFARE_SECTOR_MISSING, sizeof(card->state));
	pb__kinds_lines_init(&it, buf, len);
	while (pb__kinds_lines_next(&it, &line, &n)) {
		lines++;
		crlf += it.crlf;
		newline = it.newline;
		if (n > LINE_MAX_LEN) {
			rc = pb__kinds_errf(err, cap, PB_ETOOBIG, "line %u: longer than %u characters", it.lineno,
					    LINE_MAX_LEN);
			goto out_free;
		}
		if (n == 0) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "line %u: empty line", it.lineno);
			goto out_free;
		}
		if (line[0] == '+') {
			unsigned s = 0;
			size_t i = strlen("+Sector: ");

			if (n <= i || n > i + 2 || memcmp(line, "+Sector: ", i) != 0 ||
			    !pb__kinds_is_digits(line + i, n - i)) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
						    "line %u: expected '+Sector: N' with N from 0 to 39", it.lineno);
				goto out_free;
			}
			for (; i < n; i++)
				s = s * 10 + (unsigned)(line[i] - '0');
			if (s >= PB_MIFARE_MAX_SECTORS) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "line %u: sector %u does not exist (0-39)",
						    it.lineno, s);
				goto out_free;
			}
			if (cur >= 0 && got < want) {
				rc = pb__kinds_errf(err, cap, PB_ETRUNCATED, "line %u: sector %d has only %u of %u blocks",
						    it.lineno, cur, got, want);
				goto out_free;
			}
			if (seen[s]) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "line %u: sector %u appears twice",
						    it.lineno, s);
				goto out_free;
			}
			seen[s] = true;
			cur = (int)s;
			if ((int)s > max_sector)
				max_sector = (int)s;
			got = 0;
			want = pb_mifare_sector_blocks(s);
			card->state[s] = PB_MIFARE_SECTOR_READ;
			continue;
		}
		if (cur < 0) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "line %u: data before the first '+Sector:' line",
					    it.lineno);
			goto out_free;
		}
		if (line[0] == '*') {
			if (got != 0 || card->state[cur] == PB_MIFARE_SECTOR_DEAD) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
						    "line %u: a dead-sector line must directly follow '+Sector: %d'",
						    it.lineno, cur);
				goto out_free;
			}
			if (n > PB_MIFARE_DEAD_MAX) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "line %u: dead-sector line is too long",
						    it.lineno);
				goto out_free;
			}
			for (size_t i = 0; i < n; i++) {
				if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
					rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
							    "line %u: control character in a dead-sector line", it.lineno);
					goto out_free;
				}
			}
			memcpy(card->dead[cur], line, n);
			card->dead[cur][n] = 0;
			card->state[cur] = PB_MIFARE_SECTOR_DEAD;
			got = want;
			continue;
		}
		if (got >= want) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
					    card->state[cur] == PB_MIFARE_SECTOR_DEAD
						    ? "line %u: block data after the dead sector %d"
						    : "line %u: sector %d has more blocks than it should",
					    it.lineno, cur);
			goto out_free;
		}
		if (n != 32) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
					    "line %u: a block is 32 hex digits ('-' for unknown), not %zu characters",
					    it.lineno, n);
			goto out_free;
		}
		{
			size_t off = 16 * ((size_t)pb_mifare_sector_first_block((unsigned)cur) + got);

			for (size_t i = 0; i < 16; i++) {
				int hi = pb__kinds_hexval((unsigned char)line[2 * i]);
				int lo = pb__kinds_hexval((unsigned char)line[2 * i + 1]);

				if (line[2 * i] == '-' && line[2 * i + 1] == '-')
					continue;
				if (hi < 0 || lo < 0) {
					rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
							    "line %u, column %zu: '%c%c' is neither hex nor '--'", it.lineno,
							    2 * i + 1, line[2 * i], line[2 * i + 1]);
					goto out_free;
				}
				card->data[off + i] = (uint8_t)(hi << 4 | lo);
				card->known[off + i] = 1;
			}
		}
		got++;
	}
	if (cur < 0) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "no '+Sector:' line: not a MIFARE Classic Tool dump");
		goto out_free;
	}
	if (got < want) {
		rc = pb__kinds_errf(err, cap, PB_ETRUNCATED, "line %u: the file ends with sector %d at %u of %u blocks",
				    it.lineno, cur, got, want);
		goto out_free;
	}
	/* The card size: the smallest that holds every sector, larger when
	 * block 0's SAK says so. */
	sectors = max_sector < 16 ? 16 : max_sector < 32 ? 32 : 40;
	if (card->state[0] == PB_MIFARE_SECTOR_READ && card->known[5]) {
		uint8_t sak = card->data[5];
		if (max_sector < 5 && sak == 0x09)
			sectors = 5;
		else if (sak == 0x19 && sectors < 32)
			sectors = 32; /* 2K; checked before the 4K bit it shares */
		else if (sak != 0x19 && (sak & 0x18) == 0x18 && sectors < 40)
			sectors = 40;
	}
	card->sectors = sectors;
	card->mct_crlf = lines > 0 && crlf > 0 && crlf >= lines - (newline ? 0u : 1u);
	card->mct_final_newline = newline;
	return finish(card, out, err, cap);

out_free:
	card_free(card);
	return rc;
}

int pb_mifare_format_mct(const pb_mifare_card_t *card, pb_buf_t *out)
{
	const char *eol = card->mct_crlf ? "\r\n" : "\n";
	size_t eol_len = strlen(eol);
	bool any = false;
	int rc;

	for (unsigned s = 0; s < card->sectors && s < PB_MIFARE_MAX_SECTORS; s++) {
		char line[40];
		int n;

		if (card->state[s] == PB_MIFARE_SECTOR_MISSING)
			continue;
		n = snprintf(line, sizeof(line), "+Sector: %u", s);
		if (n < 0 || (size_t)n >= sizeof(line))
			return PB_ETOOBIG;
		if ((any && (rc = pb_buf_append(out, eol, eol_len)) != 0) || (rc = pb_buf_append(out, line, (size_t)n)) != 0)
			return rc;
		any = true;
		if (card->state[s] == PB_MIFARE_SECTOR_DEAD) {
			const char *d = card->dead[s][0] == '*' ? card->dead[s] : MCT_DEAD_DEFAULT;
			if ((rc = pb_buf_append(out, eol, eol_len)) != 0 || (rc = pb_buf_append(out, d, strnlen(d, PB_MIFARE_DEAD_MAX))) != 0)
				return rc;
			continue;
		}
		for (unsigned b = 0; b < pb_mifare_sector_blocks(s); b++) {
			size_t off = 16 * ((size_t)pb_mifare_sector_first_block(s) + b);

			pb__kinds_hex_encode(card->data + off, 16, line);
			for (size_t i = 0; i < 16; i++)
				if (!card->known[off + i])
					line[2 * i] = line[2 * i + 1] = '-';
			if ((rc = pb_buf_append(out, eol, eol_len)) != 0 || (rc = pb_buf_append(out, line, 32)) != 0)
				return rc;
		}
	}
	if (any && card->mct_final_newline && (rc = pb_buf_append(out, eol, eol_len)) != 0)
		return rc;
	return 0;
}

/* --- Binary dumps ----------------------------------------------------------- */

int pb_mifare_parse_bin(const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *err, size_t cap)
{
	unsigned sectors = pb_mifare_sectors_for_size(len);
	pb_mifare_card_t *card;

	*out = NULL;
	if (sectors == 0)
		return pb__kinds_errf(err, cap, PB_EDATA_SIZE,
				      "dump is %zu bytes; MIFARE Classic dumps are 320, 1024, 2048 or 4096 bytes", len);
	card = card_new(sectors);
	if (card == NULL)
		return PB_ENOMEM;
	memcpy(card->data, buf, len);
	return finish(card, out, err, cap);
}

/* The card's bytes for formats that cannot say "unknown": unknown data
 * bytes are 00; a trailer's unknown keys become FFFFFFFFFFFF and unknown
 * access bits the transport setting FF0780 69, so the dump stays valid. */
static void filled(const pb_mifare_card_t *card, uint8_t *out)
{
	static const uint8_t transport[16] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07,
					       0x80, 0x69, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	size_t n = pb_mifare_size(card->sectors);

	for (size_t i = 0; i < n; i++)
		out[i] = card->known[i] ? card->data[i] : 0;
	for (unsigned s = 0; s < card->sectors; s++) {
		size_t t = 16 * (size_t)pb_mifare_sector_trailer(s);
		bool bits = card->known[t + 6] && card->known[t + 7] && card->known[t + 8] &&
			    card->state[s] == PB_MIFARE_SECTOR_READ;

		for (size_t i = 0; i < 16; i++) {
			bool is_bits = i >= 6 && i <= 9;
			if (card->state[s] != PB_MIFARE_SECTOR_READ || (is_bits ? !bits : !card->known[t + i]))
				out[t + i] = transport[i];
		}
	}
}

int pb_mifare_format_bin(const pb_mifare_card_t *card, pb_buf_t *out)
{
	uint8_t bytes[PB_MIFARE_MAX_BYTES];
	int rc;

	filled(card, bytes);
	rc = pb_buf_append(out, bytes, pb_mifare_size(card->sectors));
	sodium_memzero(bytes, sizeof(bytes));
	return rc;
}

/* --- Proxmark3 .eml ------------------------------------------------------- */

int pb_mifare_parse_eml(const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *err, size_t cap)
{
	pb_mifare_card_t *card;
	pb__kinds_lines_t it;
	const char *line;
	size_t n, blocks = 0;
	unsigned sectors;
	int rc;

	*out = NULL;
	if (len > 256 * 34)
		return pb__kinds_errf(err, cap, PB_EDATA_SIZE, "file is too large for a MIFARE Classic .eml dump");
	card = card_new(40);
	if (card == NULL)
		return PB_ENOMEM;
	pb__kinds_lines_init(&it, buf, len);
	while (pb__kinds_lines_next(&it, &line, &n)) {
		if (n == 0 && it.pos >= len)
			break; /* a final empty line */
		if (blocks >= 256) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_SIZE, "line %u: more than 256 blocks", it.lineno);
			goto out_free;
		}
		if (n != 32 || pb__kinds_hex_decode(line, 32, card->data + 16 * blocks, 16) != 0) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "line %u: a block is 32 hex digits", it.lineno);
			goto out_free;
		}
		blocks++;
	}
	sectors = pb_mifare_sectors_for_size(blocks * 16);
	if (sectors == 0) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_SIZE,
				    "dump has %zu blocks; MIFARE Classic cards have 20, 64, 128 or 256", blocks);
		goto out_free;
	}
	card->sectors = sectors;
	memset(card->known + 16 * blocks, 0, sizeof(card->known) - 16 * blocks);
	return finish(card, out, err, cap);

out_free:
	card_free(card);
	return rc;
}

int pb_mifare_format_eml(const pb_mifare_card_t *card, pb_buf_t *out)
{
	size_t blocks = pb_mifare_size(card->sectors) / 16;
	uint8_t bytes[PB_MIFARE_MAX_BYTES];
	char line[33];
	int rc = 0;

	filled(card, bytes);
	for (size_t b = 0; b < blocks && rc == 0; b++) {
		pb__kinds_hex_encode(bytes + 16 * b, 16, line);
		if ((b == 0 || (rc = pb_buf_append(out, "\n", 1)) == 0))
			rc = pb_buf_append(out, line, 32);
	}
	sodium_memzero(bytes, sizeof(bytes));
	sodium_memzero(line, sizeof(line));
	return rc;
}

/* --- Proxmark3 .json ------------------------------------------------------ */

static int json_hex(json_t *obj, const char *key, uint8_t *out, size_t n)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return PB_ENOTFOUND;
	if (!json_is_string(v) || pb__kinds_hex_decode(json_string_value(v), json_string_length(v), out, n) != 0)
		return PB_EDATA_FIELD;
	return 0;
}

int pb_mifare_parse_pm3json(const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *err, size_t cap)
{
	pb_mifare_card_t *card;
	json_error_t jerr;
	json_t *root, *blocks, *keys, *card_obj, *v;
	const char *key, *type;
	int max_block = -1, rc;

	*out = NULL;
	if (len > JSON_MAX_FILE)
		return pb__kinds_errf(err, cap, PB_ETOOBIG, "file is larger than %u bytes", JSON_MAX_FILE);
	root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "line %d, column %d: %s", jerr.line, jerr.column,
				      jerr.text);
	card = card_new(40);
	if (card == NULL) {
		rc = PB_ENOMEM;
		goto out_json;
	}
	memset(card->known, 0, sizeof(card->known));
	v = json_object_get(root, "FileType");
	type = json_is_string(v) ? json_string_value(v) : NULL;
	if (!json_is_object(root) || type == NULL || (strcmp(type, "mfc v2") != 0 && strcmp(type, "mfcard") != 0)) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
				    "not a Proxmark3 MIFARE Classic dump (FileType \"mfc v2\" or \"mfcard\")");
		goto out_free;
	}
	blocks = json_object_get(root, "blocks");
	if (!json_is_object(blocks)) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "\"blocks\" is missing or not an object");
		goto out_free;
	}
	json_object_foreach (blocks, key, v) {
		size_t kn = strlen(key);
		unsigned b = 0;

		if (kn == 0 || kn > 3 || !pb__kinds_is_digits(key, kn) || (kn > 1 && key[0] == '0')) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "blocks: \"%.8s\" is not a block number", key);
			goto out_free;
		}
		for (size_t i = 0; i < kn; i++)
			b = b * 10 + (unsigned)(key[i] - '0');
		if (b >= 256) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_SIZE, "blocks: block %u does not exist (0-255)", b);
			goto out_free;
		}
		if (!json_is_string(v) || json_string_length(v) != 32 ||
		    pb__kinds_hex_decode(json_string_value(v), 32, card->data + 16 * b, 16) != 0) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "blocks: block %u is not 32 hex digits", b);
			goto out_free;
		}
		memset(card->known + 16 * b, 1, 16);
		if ((int)b > max_block)
			max_block = (int)b;
	}
	if (max_block < 0) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "\"blocks\" is empty");
		goto out_free;
	}
	card->sectors = max_block < 20 ? 5 : max_block < 64 ? 16 : max_block < 128 ? 32 : 40;
	keys = json_object_get(root, "SectorKeys");
	if (keys != NULL && !json_is_object(keys)) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "\"SectorKeys\" is not an object");
		goto out_free;
	}
	json_object_foreach (keys, key, v) {
		size_t kn = strlen(key);
		unsigned s = 0, t;
		uint8_t trailer[16];
		bool had;

		if (kn == 0 || kn > 2 || !pb__kinds_is_digits(key, kn) || !json_is_object(v)) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "SectorKeys: \"%.8s\" is not a sector", key);
			goto out_free;
		}
		for (size_t i = 0; i < kn; i++)
			s = s * 10 + (unsigned)(key[i] - '0');
		if (s >= card->sectors) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "SectorKeys: sector %u is outside the card", s);
			goto out_free;
		}
		t = pb_mifare_sector_trailer(s);
		had = card->known[16 * t] != 0;
		memcpy(trailer, card->data + 16 * t, 16);
		if (json_hex(v, "KeyA", trailer, 6) != 0 || json_hex(v, "KeyB", trailer + 10, 6) != 0 ||
		    json_hex(v, "AccessConditions", trailer + 6, 4) != 0) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FIELD,
					    "SectorKeys: sector %u needs KeyA, KeyB (12 hex) and AccessConditions (8 hex)", s);
			goto out_free;
		}
		if (had && memcmp(trailer, card->data + 16 * t, 16) != 0) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FIELD,
					    "SectorKeys: sector %u disagrees with its trailer, block %u", s, t);
			goto out_free;
		}
		memcpy(card->data + 16 * t, trailer, 16);
		memset(card->known + 16 * t, 1, 16);
	}
	card_obj = json_object_get(root, "Card");
	if (json_is_object(card_obj) && card->known[0] && card->known[6]) {
		uint8_t uid[10];
		size_t ulen;

		v = json_object_get(card_obj, "UID");
		if (json_is_string(v)) {
			ulen = json_string_length(v) / 2;
			if ((ulen != 4 && ulen != 7 && ulen != 10) ||
			    pb__kinds_hex_decode(json_string_value(v), json_string_length(v), uid, ulen) != 0 ||
			    (ulen <= 7 && memcmp(uid, card->data, ulen) != 0)) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FIELD, "Card.UID does not match block 0");
				goto out_free;
			}
		}
	}
	mark_missing(card);
	json_decref(root);
	return finish(card, out, err, cap);

out_free:
	card_free(card);
out_json:
	json_decref(root);
	return rc;
}

static const char *who(unsigned a, unsigned b, unsigned bit)
{
	bool x = (a & bit) != 0, y = (b & bit) != 0;

	return x && y ? "AB" : x ? "A" : y ? "B" : "never";
}

static int set_text(json_t *obj, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_text(json_t *obj, const char *key, const char *fmt, ...)
{
	char text[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(text))
		return PB_ETOOBIG;
	return json_object_set_new(obj, key, json_string(text)) == 0 ? 0 : PB_ENOMEM;
}

/* AccessConditionsText: what each block group allows, in words. */
static json_t *access_text(const uint8_t *trailer)
{
	json_t *o = json_object();
	uint8_t cond[4];

	if (o == NULL)
		return NULL;
	if (pb_mifare_access_decode(trailer + 6, cond) != 0) {
		if (json_object_set_new(o, "error", json_string("inconsistent access bits")) != 0)
			goto out_free;
		return o;
	}
	for (unsigned g = 0; g < 3; g++) {
		unsigned a = pb_mifare_data_rights(cond[g], cond[3], PB_MIFARE_KEY_A);
		unsigned b = pb_mifare_data_rights(cond[g], cond[3], PB_MIFARE_KEY_B);
		char key[8];

		if (snprintf(key, sizeof(key), "block%u", g) >= (int)sizeof(key))
			goto out_free;
		if (set_text(o, key, "read %s; write %s; increment %s; decrement/transfer/restore %s",
			     who(a, b, PB_MIFARE_READ), who(a, b, PB_MIFARE_WRITE), who(a, b, PB_MIFARE_INCREMENT),
			     who(a, b, PB_MIFARE_DECREMENT)) != 0)
			goto out_free;
	}
	{
		unsigned a = pb_mifare_trailer_rights(cond[3], PB_MIFARE_KEY_A);
		unsigned b = pb_mifare_trailer_rights(cond[3], PB_MIFARE_KEY_B);

		if (set_text(o, "block3", "write A by %s; read ACCESS by %s; write ACCESS by %s; read B by %s; write B by %s",
			     who(a, b, PB_MIFARE_KEYA_WRITE), who(a, b, PB_MIFARE_ACCESS_READ),
			     who(a, b, PB_MIFARE_ACCESS_WRITE), who(a, b, PB_MIFARE_KEYB_READ),
			     who(a, b, PB_MIFARE_KEYB_WRITE)) != 0 ||
		    set_text(o, "UserData", "%02X", trailer[9]) != 0)
			goto out_free;
	}
	return o;
out_free:
	json_decref(o);
	return NULL;
}

static bool block_any_known(const pb_mifare_card_t *card, unsigned b)
{
	for (unsigned i = 0; i < 16; i++)
		if (card->known[16 * b + i])
			return true;
	return false;
}

int pb_mifare_format_pm3json(const pb_mifare_card_t *card, pb_buf_t *out)
{
	json_t *root = json_object(), *c = json_object(), *blocks = json_object(), *keys = json_object();
	size_t nblocks = pb_mifare_size(card->sectors) / 16, uid_len = 4;
	uint8_t uid[7];
	char hex[33], num[8];
	char *text = NULL;
	uint8_t *bytes = malloc(PB_MIFARE_MAX_BYTES);
	bool failed;
	int rc = PB_ENOMEM;

	if (root == NULL || c == NULL || blocks == NULL || keys == NULL || bytes == NULL)
		goto out_json;
	filled(card, bytes);
	if (pb_mifare_check_block0(card->data, uid, &uid_len) == PB_EDATA_BCC)
		uid_len = 4;
	pb__kinds_hex_encode(card->data, uid_len, hex);
	if (json_object_set_new(c, "UID", json_string(hex)) != 0)
		goto out_json;
	pb__kinds_hex_encode(card->data + (uid_len == 4 ? 6 : 8), 2, hex);
	if (json_object_set_new(c, "ATQA", json_string(hex)) != 0)
		goto out_json;
	pb__kinds_hex_encode(card->data + (uid_len == 4 ? 5 : 7), 1, hex);
	if (json_object_set_new(c, "SAK", json_string(hex)) != 0)
		goto out_json;
	for (size_t b = 0; b < nblocks; b++) {
		unsigned s = pb_mifare_block_sector((unsigned)b);

		if (card->state[s] != PB_MIFARE_SECTOR_READ || !block_any_known(card, (unsigned)b))
			continue;
		pb__kinds_hex_encode(bytes + 16 * b, 16, hex);
		if (snprintf(num, sizeof(num), "%zu", b) >= (int)sizeof(num) ||
		    json_object_set_new(blocks, num, json_string(hex)) != 0)
			goto out_json;
	}
	for (unsigned s = 0; s < card->sectors; s++) {
		unsigned t = pb_mifare_sector_trailer(s);
		const uint8_t *tr = bytes + 16 * t;
		json_t *k, *txt;

		if (card->state[s] != PB_MIFARE_SECTOR_READ || !block_any_known(card, t))
			continue;
		k = json_object();
		if (k == NULL)
			goto out_json;
		if (snprintf(num, sizeof(num), "%u", s) >= (int)sizeof(num) || json_object_set_new(keys, num, k) != 0)
			goto out_json;
		pb__kinds_hex_encode(tr, 6, hex);
		if (json_object_set_new(k, "KeyA", json_string(hex)) != 0)
			goto out_json;
		pb__kinds_hex_encode(tr + 10, 6, hex);
		if (json_object_set_new(k, "KeyB", json_string(hex)) != 0)
			goto out_json;
		pb__kinds_hex_encode(tr + 6, 4, hex);
		if (json_object_set_new(k, "AccessConditions", json_string(hex)) != 0)
			goto out_json;
		txt = access_text(tr);
		if (txt == NULL || json_object_set_new(k, "AccessConditionsText", txt) != 0)
			goto out_json;
	}
	/* json_object_set_new takes the reference whether it succeeds or not. */
	if (json_object_set_new(root, "Created", json_string("peerback")) != 0 ||
	    json_object_set_new(root, "FileType", json_string("mfc v2")) != 0)
		goto out_json;
	failed = json_object_set_new(root, "Card", c) != 0;
	c = NULL;
	failed |= json_object_set_new(root, "blocks", blocks) != 0;
	blocks = NULL;
	failed |= json_object_set_new(root, "SectorKeys", keys) != 0;
	keys = NULL;
	if (failed)
		goto out_json;
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text == NULL)
		goto out_json;
	if ((rc = pb_buf_append(out, text, strlen(text))) == 0)
		rc = pb_buf_append(out, "\n", 1);
	sodium_memzero(text, strlen(text));
	free(text);
out_json:
	if (bytes != NULL) {
		sodium_memzero(bytes, PB_MIFARE_MAX_BYTES);
		free(bytes);
	}
	json_decref(c);
	json_decref(blocks);
	json_decref(keys);
	json_decref(root);
	return rc;
}

/* --- Flipper .nfc --------------------------------------------------------- */

static bool field(const char *line, size_t n, const char *name, const char **val, size_t *vn)
{
	size_t k = strlen(name);

	if (n < k + 1 || memcmp(line, name, k) != 0 || line[k] != ':')
		return false;
	k++;
	while (k < n && line[k] == ' ')
		k++;
	*val = line + k;
	*vn = n - k;
	return true;
}

static bool val_is(const char *v, size_t n, const char *want)
{
	return strlen(want) == n && memcmp(v, want, n) == 0;
}

/* "7A E3 ?? ..." into bytes; unknown bytes get known = 0. Returns the count
 * or -1. */
static int hex_tokens(const char *v, size_t n, uint8_t *out, uint8_t *known, size_t max, bool allow_unknown)
{
	size_t i = 0, count = 0;

	while (i < n) {
		int hi, lo;

		if (count >= max || i + 2 > n || (i + 2 < n && v[i + 2] != ' '))
			return -1;
		if (v[i] == '?' && v[i + 1] == '?' && allow_unknown) {
			out[count] = 0;
			known[count] = 0;
		} else {
			hi = pb__kinds_hexval((unsigned char)v[i]);
			lo = pb__kinds_hexval((unsigned char)v[i + 1]);
			if (hi < 0 || lo < 0)
				return -1;
			out[count] = (uint8_t)(hi << 4 | lo);
			known[count] = 1;
		}
		count++;
		i += 3;
	}
	return (int)count;
}

int pb_mifare_parse_flipper(const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *err, size_t cap)
{
	pb_mifare_card_t *card;
	pb__kinds_lines_t it;
	const char *line, *v;
	size_t n, vn;
	uint8_t uid[10], uid_known[10];
	int uid_len = -1, rc;
	bool filetype = false, version = false, device = false;

	*out = NULL;
	if (len > 64u << 10)
		return pb__kinds_errf(err, cap, PB_ETOOBIG, "file is larger than 64 KiB");
	card = card_new(40);
	if (card == NULL)
		return PB_ENOMEM;
	memset(card->known, 0, sizeof(card->known));
	card->sectors = 0;
	pb__kinds_lines_init(&it, buf, len);
	while (pb__kinds_lines_next(&it, &line, &n)) {
		if (n > LINE_MAX_LEN) {
			rc = pb__kinds_errf(err, cap, PB_ETOOBIG, "line %u: longer than %u characters", it.lineno,
					    LINE_MAX_LEN);
			goto out_free;
		}
		if (n == 0 || line[0] == '#')
			continue;
		if (field(line, n, "Filetype", &v, &vn)) {
			filetype = val_is(v, vn, "Flipper NFC device");
		} else if (field(line, n, "Version", &v, &vn)) {
			version = val_is(v, vn, "4");
		} else if (field(line, n, "Device type", &v, &vn)) {
			device = val_is(v, vn, "Mifare Classic");
		} else if (field(line, n, "UID", &v, &vn)) {
			uid_len = hex_tokens(v, vn, uid, uid_known, sizeof(uid), false);
			if (uid_len != 4 && uid_len != 7) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FIELD, "line %u: UID is not 4 or 7 hex bytes",
						    it.lineno);
				goto out_free;
			}
		} else if (field(line, n, "Mifare Classic type", &v, &vn)) {
			card->sectors = val_is(v, vn, "MINI") || val_is(v, vn, "Mini") ? 5
					: val_is(v, vn, "1K")                            ? 16
					: val_is(v, vn, "2K")                            ? 32
					: val_is(v, vn, "4K")                            ? 40
											 : 0;
			if (card->sectors == 0) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_SIZE,
						    "line %u: unknown Mifare Classic type (MINI, 1K, 2K or 4K)", it.lineno);
				goto out_free;
			}
		} else if (n > 6 && memcmp(line, "Block ", 6) == 0) {
			unsigned b = 0;
			size_t i = 6;

			while (i < n && i < 10 && line[i] >= '0' && line[i] <= '9')
				b = b * 10 + (unsigned)(line[i++] - '0');
			if (i == 6 || i >= n || line[i] != ':' || b >= 256 || card->sectors == 0 ||
			    b >= pb_mifare_size(card->sectors) / 16) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
						    "line %u: block line before the card type, or a block outside the card",
						    it.lineno);
				goto out_free;
			}
			i++;
			while (i < n && line[i] == ' ')
				i++;
			if (hex_tokens(line + i, n - i, card->data + 16 * b, card->known + 16 * b, 16, true) != 16) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
						    "line %u: a block is 16 hex bytes ('\?\?' for unknown) separated by spaces",
						    it.lineno);
				goto out_free;
			}
		}
		else if (field(line, n, "ATQA", &v, &vn)) {
			uint8_t k[2];

			card->flipper_has_atqa = hex_tokens(v, vn, card->flipper_atqa, k, 2, false) == 2;
		} else if (field(line, n, "SAK", &v, &vn)) {
			uint8_t k[1];

			card->flipper_has_sak = hex_tokens(v, vn, &card->flipper_sak, k, 1, false) == 1;
		}
		/* ATQA and SAK are kept as written: block 0's bytes are the
		 * manufacturer's and often differ from what the card answers
		 * (a 4-byte UID card's byte 5 is not its SAK). Other keys
		 * (Data format version, comments) carry nothing. */
	}
	if (!filetype || !version || !device) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
				    "not a Flipper NFC device file, Version 4, Device type Mifare Classic");
		goto out_free;
	}
	if (card->sectors == 0) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "the 'Mifare Classic type' line is missing");
		goto out_free;
	}
	if (uid_len > 0 && card->known[0] && card->known[uid_len - 1] &&
	    memcmp(uid, card->data, (size_t)uid_len) != 0) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FIELD, "UID does not match block 0");
		goto out_free;
	}
	card->flipper = true;
	mark_missing(card);
	return finish(card, out, err, cap);

out_free:
	card_free(card);
	return rc;
}

static int append_tokens(pb_buf_t *out, const uint8_t *b, const uint8_t *known, size_t n)
{
	char tok[4];
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (known == NULL || known[i])
			pb__kinds_hex_encode(b + i, 1, tok);
		else
			memcpy(tok, "??", 3);
		if ((i > 0 && (rc = pb_buf_append(out, " ", 1)) != 0) || (rc = pb_buf_append(out, tok, 2)) != 0)
			return rc;
	}
	return 0;
}

static int append_str(pb_buf_t *out, const char *s)
{
	return pb_buf_append(out, s, strlen(s));
}

int pb_mifare_format_flipper(const pb_mifare_card_t *card, pb_buf_t *out)
{
	size_t uid_len = 4, nblocks = pb_mifare_size(card->sectors) / 16;
	uint8_t uid[7], atqa[2];
	const uint8_t *sak;
	const char *type = card->sectors == 5 ? "MINI" : card->sectors == 16 ? "1K" : card->sectors == 32 ? "2K" : "4K";
	int rc;

	if (pb_mifare_check_block0(card->data, uid, &uid_len) == PB_EDATA_BCC)
		uid_len = 4;
	/* Flipper shows ATQA with its bytes swapped relative to block 0. */
	atqa[0] = card->data[uid_len == 4 ? 7 : 9];
	atqa[1] = card->data[uid_len == 4 ? 6 : 8];
	sak = card->data + (uid_len == 4 ? 5 : 7);
	/* A card read from a Flipper file keeps the file's values. */
	if (card->flipper_has_atqa)
		memcpy(atqa, card->flipper_atqa, 2);
	if (card->flipper_has_sak)
		sak = &card->flipper_sak;
	if ((rc = append_str(out, "Filetype: Flipper NFC device\nVersion: 4\n"
				  "# Device type can be ISO14443-3A, ISO14443-3B, ISO14443-4A, NTAG/Ultralight, "
				  "Mifare Classic, Mifare DESFire, SLIX, ST25TB\n"
				  "Device type: Mifare Classic\n# UID is common for all formats\nUID: ")) != 0 ||
	    (rc = append_tokens(out, card->data, NULL, uid_len)) != 0 ||
	    (rc = append_str(out, "\n# ISO14443-3A data\nATQA: ")) != 0 || (rc = append_tokens(out, atqa, NULL, 2)) != 0 ||
	    (rc = append_str(out, "\nSAK: ")) != 0 || (rc = append_tokens(out, sak, NULL, 1)) != 0 ||
	    (rc = append_str(out, "\n# Mifare Classic specific data\nMifare Classic type: ")) != 0 ||
	    (rc = append_str(out, type)) != 0 ||
	    (rc = append_str(out, "\nData format version: 2\n# Mifare Classic blocks, '\?\?' means unknown data\n")) != 0)
		return rc;
	for (size_t b = 0; b < nblocks; b++) {
		unsigned s = pb_mifare_block_sector((unsigned)b);
		static const uint8_t none[16] = { 0 };
		char head[16];
		int n = snprintf(head, sizeof(head), "Block %zu: ", b);

		if (n < 0 || (size_t)n >= sizeof(head))
			return PB_ETOOBIG;
		if ((rc = pb_buf_append(out, head, (size_t)n)) != 0 ||
		    (rc = append_tokens(out, card->data + 16 * b,
					card->state[s] == PB_MIFARE_SECTOR_READ ? card->known + 16 * b : none, 16)) != 0 ||
		    (rc = pb_buf_append(out, "\n", 1)) != 0)
			return rc;
	}
	return 0;
}

/* --- Key files ------------------------------------------------------------ */

int pb_mifare_parse_keys(const uint8_t *buf, size_t len, uint8_t (*keys)[6], size_t max, size_t *count, char *err,
			 size_t cap)
{
	pb__kinds_lines_t it;
	const char *line;
	size_t n;

	*count = 0;
	if (len > (4u << 20))
		return pb__kinds_errf(err, cap, PB_ETOOBIG, "key file is larger than 4 MiB");
	pb__kinds_lines_init(&it, buf, len);
	while (pb__kinds_lines_next(&it, &line, &n)) {
		size_t i = 0, end;

		while (i < n && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == n || line[i] == '#')
			continue;
		end = i;
		while (end < n && line[end] != ' ' && line[end] != '\t' && line[end] != '#')
			end++;
		for (size_t j = end; j < n && line[j] != '#'; j++) {
			if (line[j] != ' ' && line[j] != '\t')
				return pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "line %u: text after the key", it.lineno);
		}
		if (*count >= max)
			return pb__kinds_errf(err, cap, PB_ETOOBIG, "line %u: more than %zu keys", it.lineno, max);
		if (end - i != 12 || pb__kinds_hex_decode(line + i, 12, keys[*count], 6) != 0)
			return pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "line %u: a key is 12 hex digits", it.lineno);
		(*count)++;
	}
	return 0;
}

int pb_mifare_format_keys(const pb_mifare_card_t *card, pb_buf_t *out)
{
	uint8_t seen[2 * PB_MIFARE_MAX_SECTORS][6];
	size_t n = 0;
	int rc;

	for (unsigned s = 0; s < card->sectors; s++) {
		unsigned t = pb_mifare_sector_trailer(s);

		if (card->state[s] != PB_MIFARE_SECTOR_READ)
			continue;
		for (unsigned k = 0; k < 2; k++) {
			size_t off = 16 * (size_t)t + (k == 0 ? 0 : 10);
			bool known = true, dup = false;
			char hex[13];

			for (size_t i = 0; i < 6; i++)
				known &= card->known[off + i] != 0;
			for (size_t i = 0; i < n && known; i++)
				dup |= memcmp(seen[i], card->data + off, 6) == 0;
			if (!known || dup)
				continue;
			memcpy(seen[n++], card->data + off, 6);
			pb__kinds_hex_encode(card->data + off, 6, hex);
			if ((rc = pb_buf_append(out, hex, 12)) != 0 || (rc = pb_buf_append(out, "\n", 1)) != 0)
				return rc;
		}
	}
	sodium_memzero(seen, sizeof(seen));
	return 0;
}

/* --- Any format ------------------------------------------------------------- */

static bool has_ext(const char *name, const char *ext)
{
	size_t a = strlen(name), b = strlen(ext);

	return a > b && strcasecmp(name + a - b, ext) == 0;
}

int pb_mifare_parse_any(const char *name, const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *err,
			size_t cap)
{
	if (name != NULL) {
		if (has_ext(name, ".mct"))
			return pb_mifare_parse_mct(buf, len, out, err, cap);
		if (has_ext(name, ".bin") || has_ext(name, ".mfd") || has_ext(name, ".dump"))
			return pb_mifare_parse_bin(buf, len, out, err, cap);
		if (has_ext(name, ".eml"))
			return pb_mifare_parse_eml(buf, len, out, err, cap);
		if (has_ext(name, ".json"))
			return pb_mifare_parse_pm3json(buf, len, out, err, cap);
		if (has_ext(name, ".nfc"))
			return pb_mifare_parse_flipper(buf, len, out, err, cap);
	}
	if (len >= 8 && memcmp(buf, "+Sector:", 8) == 0)
		return pb_mifare_parse_mct(buf, len, out, err, cap);
	if (len >= 9 && memcmp(buf, "Filetype:", 9) == 0)
		return pb_mifare_parse_flipper(buf, len, out, err, cap);
	if (len >= 1 && buf[0] == '{')
		return pb_mifare_parse_pm3json(buf, len, out, err, cap);
	if (pb_mifare_sectors_for_size(len) != 0)
		return pb_mifare_parse_bin(buf, len, out, err, cap);
	return pb_mifare_parse_eml(buf, len, out, err, cap);
}
