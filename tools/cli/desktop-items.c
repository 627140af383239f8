/* The items of an open backup as the web app shows them: contacts as their
 * vCards, MIFARE cards by sector with their access bits, credentials and
 * SIM profiles with their secret fields masked unless the user asks to
 * reveal them. Masking happens here, so that a secret not revealed never
 * reaches the browser. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback.h"
#include "cli.h"
#include "desktop.h"

#define MASK "••••••"

struct walk {
	pb_kind_t kind;
	size_t skip, per, total;
	bool reveal;
	json_t *out;
};

static bool secret_name(const char *k)
{
	static const char *const names[] = {"data", "key", "keys", "secret", "pin", "puk", "ki", "opc", "pin_adm",
					    "adm", "key_a", "key_b", "checksum", NULL};

	for (size_t i = 0; names[i] != NULL; i++)
		if (strcasecmp(k, names[i]) == 0)
			return true;
	return false;
}

/* A credential (JSON): every secret field masked. */
static json_t *credential(const uint8_t *data, size_t len, bool reveal)
{
	json_t *o = json_loadb((const char *)data, len, 0, NULL);
	const char *k;
	json_t *v;

	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return json_pack("{s:s}", "error", "not a JSON object");
	}
	if (!reveal)
		json_object_foreach(o, k, v)
			if (secret_name(k))
				json_object_set_new(o, k, json_string(MASK));
	return o;
}

/* A SIM profile: its CSV header line and its row (as the SIM codec splits
 * the file), the secret columns masked. */
static json_t *sim(const uint8_t *data, size_t len, bool reveal)
{
	json_t *o = json_object();
	char *text = strndup((const char *)data, len), *row, *hs = NULL, *rs = NULL, *col, *val;

	if (text == NULL)
		return o;
	row = text + strcspn(text, "\n");
	if (*row != 0)
		*row++ = 0;
	text[strcspn(text, "\r")] = 0;
	row[strcspn(row, "\r\n")] = 0;
	/* Simple fields only: the columns of a SIM profile hold no commas. */
	col = strtok_r(text, ",", &hs);
	val = strtok_r(row, ",", &rs);
	while (col != NULL && val != NULL) {
		json_object_set_new(o, col, json_string(!reveal && secret_name(col) ? MASK : val));
		col = strtok_r(NULL, ",", &hs);
		val = strtok_r(NULL, ",", &rs);
	}
	sodium_memzero(text, len);
	free(text);
	return o;
}

/* A MIFARE Classic dump (.mfd): per sector its blocks, keys A and B
 * (masked) and the access conditions C1C2C3 of each block of the sector
 * (from the trailer's bytes 6 to 8). */
static json_t *mifare(const uint8_t *d, size_t len, bool reveal)
{
	json_t *sectors = json_array();
	size_t block = 0, nblocks = len / 16;

	for (unsigned s = 0; block < nblocks; s++) {
		unsigned n = s < 32 ? 4 : 16;
		json_t *blocks, *access;
		const uint8_t *t;
		char buf[40];

		if (block + n > nblocks) /* a dump cut short: its last whole sector shown */
			break;
		blocks = json_array();
		access = json_array();
		t = d + (block + n - 1) * 16;
		for (unsigned b = 0; b < n; b++) {
			pb_cli_hex_upper(d + (block + b) * 16, 16, buf);
			if (b == n - 1 && !reveal) { /* the trailer holds the keys */
				memset(buf, '*', 12);
				memset(buf + 20, '*', 12);
			}
			json_array_append_new(blocks, json_string(buf));
		}
		/* C1 in byte 7's high nibble, C2 in byte 8's low one, C3 in its high one;
		 * a 16-block sector's groups cover 5 blocks each and the trailer. */
		for (unsigned g = 0; g < 4; g++) {
			unsigned c1 = (t[7] >> (4 + g)) & 1, c2 = (t[8] >> g) & 1, c3 = (t[8] >> (4 + g)) & 1;

			snprintf(buf, sizeof(buf), "%u%u%u", c1, c2, c3);
			json_array_append_new(access, json_string(buf));
		}
		pb_cli_hex_upper(t, 6, buf);
		json_t *sec = json_pack("{s:I, s:o, s:o, s:s}", "sector", (json_int_t)s, "blocks", blocks, "access",
					access, "key_a", reveal ? buf : MASK);
		pb_cli_hex_upper(t + 10, 6, buf);
		json_object_set_new(sec, "key_b", json_string(reveal ? buf : MASK));
		json_array_append_new(sectors, sec);
		block += n;
	}
	return sectors;
}

static int on_item(void *arg, const pb_item_t *it)
{
	struct walk *w = arg;
	uint8_t *data = (uint8_t *)it->data;
	size_t len = it->len;
	json_t *o, *v;
	char *id = NULL, *path = NULL;

	if (it->kind == PB_KIND_CONTACTS && strstr(it->path, ".vcf") == NULL)
		return 0;
	if (w->total++ < w->skip || json_array_size(w->out) >= w->per)
		return 0;
	if (data == NULL && it->file != NULL) {
		FILE *f = fopen(it->file, "rb");

		if (f == NULL)
			return -errno;
		data = malloc(it->size + 1);
		len = data != NULL ? fread(data, 1, it->size, f) : 0;
		fclose(f);
		if (data == NULL)
			return -ENOMEM;
	}
	switch (it->kind) {
	case PB_KIND_CREDENTIAL:
		v = credential(data, len, w->reveal);
		break;
	case PB_KIND_SIM:
		v = sim(data, len, w->reveal);
		break;
	case PB_KIND_MIFARE:
		v = mifare(data, len, w->reveal);
		break;
	default: {
		char *s = strndup((const char *)data, len), *t = NULL;

		v = s != NULL && pb_text_utf8(s, &t) == 0 ? json_string(t) : json_null();
		free(s);
		free(t);
	}
	}
	if (data != it->data)
		free(data);
	if (pb_text_utf8(it->id, &id) == 0 && pb_text_utf8(it->path, &path) == 0 &&
	    (o = json_pack("{s:s, s:s, s:I, s:o}", "id", id, "path", path, "size", (json_int_t)it->size, "value", v)) != NULL)
		json_array_append_new(w->out, o);
	else
		json_decref(v);
	free(id);
	free(path);
	return 0;
}

json_t *pb_desktop_items(const char *dir, pb_kind_t kind, size_t page, size_t per, bool reveal)
{
	struct walk w = {.kind = kind, .skip = page * per, .per = per, .reveal = reveal, .out = json_array()};
	int rc;

	rc = pb_device_scan(dir, 1u << kind, on_item, &w, NULL, 0);
	if (rc != 0) {
		json_decref(w.out);
		return json_pack("{s:s, s:s}", "code", pb_err_name(rc), "message", pb_strerror(rc));
	}
	return json_pack("{s:o, s:I, s:I, s:I}", "items", w.out, "total", (json_int_t)w.total, "page",
			 (json_int_t)page, "per_page", (json_int_t)per);
}
