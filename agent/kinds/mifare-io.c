/* MIFARE Classic cards in the device directory: mifare/<id>.mfd holds the
 * blocks (unknown bytes as 00) and, when anything was not read or the .mct
 * layout needs remembering, mifare/<id>.mct holds the MIFARE Classic Tool
 * form that keeps it. Key files are kept as mifare/keys/<name>.keys. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "peerback/nfc.h"
#include "agent/kinds/internal.h"
#include "agent/kinds/util.h"

#define MIFARE_MAX_IMPORT (1u << 20)
#define MIFARE_MAX_KEYS 100000u

static bool card_id_ok(const char *id)
{
	size_t n = id != NULL ? strlen(id) : 0;

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '-')
			return false;
	return true;
}

static void card_free(pb_mifare_card_t *card)
{
	if (card == NULL)
		return;
	sodium_memzero(card, sizeof(*card));
	free(card);
}

int pb_mifare_load(const char *device_dir, const char *id, pb_mifare_card_t **out)
{
	char path[4096];
	pb_mifare_card_t *card = NULL;
	uint8_t *buf = NULL;
	size_t len;
	unsigned sectors;
	int n, rc;

	*out = NULL;
	if (device_dir == NULL || !card_id_ok(id))
		return PB_EINVAL;
	n = snprintf(path, sizeof(path), "%s/mifare/%s.mct", device_dir, id);
	if (n < 0 || (size_t)n >= sizeof(path))
		return PB_ETOOBIG;
	rc = pb__kinds_read_file(path, 256u << 10, &buf, &len);
	if (rc == 0) {
		rc = pb_mifare_parse_mct(buf, len, &card, NULL, 0);
		sodium_memzero(buf, len);
		free(buf);
		buf = NULL;
		if (rc != 0)
			return rc;
	} else if (rc != -ENOENT) {
		return rc;
	}
	n = snprintf(path, sizeof(path), "%s/mifare/%s.mfd", device_dir, id);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		rc = PB_ETOOBIG;
		goto out_free;
	}
	rc = pb__kinds_read_file(path, PB_MIFARE_MAX_BYTES, &buf, &len);
	if (rc == -ENOENT || rc == PB_ETOOBIG)
		rc = rc == -ENOENT ? PB_ENOTFOUND : PB_EDATA_SIZE;
	if (rc != 0)
		goto out_free;
	sectors = pb_mifare_sectors_for_size(len);
	if (sectors == 0) {
		rc = PB_EDATA_SIZE;
		goto out_free;
	}
	if (card != NULL) {
		/* The sidecar knows what was read; the dump knows the size. */
		if (sectors > card->sectors)
			card->sectors = sectors;
	} else if ((rc = pb_mifare_parse_bin(buf, len, &card, NULL, 0)) != 0) {
		goto out_free;
	}
	/* A card that came as a Flipper file keeps its header there. */
	if (buf != NULL) {
		sodium_memzero(buf, len);
		free(buf);
		buf = NULL;
	}
	n = snprintf(path, sizeof(path), "%s/mifare/%s.nfc", device_dir, id);
	if (n > 0 && (size_t)n < sizeof(path) && pb__kinds_read_file(path, 64u << 10, &buf, &len) == 0) {
		pb_mifare_card_t *nfc = NULL;

		if (pb_mifare_parse_flipper(buf, len, &nfc, NULL, 0) == 0) {
			card->flipper = true;
			card->flipper_has_atqa = nfc->flipper_has_atqa;
			card->flipper_has_sak = nfc->flipper_has_sak;
			memcpy(card->flipper_atqa, nfc->flipper_atqa, 2);
			card->flipper_sak = nfc->flipper_sak;
		}
		card_free(nfc);
	}
	*out = card;
	card = NULL;
out_free:
	if (buf != NULL) {
		sodium_memzero(buf, len);
		free(buf);
	}
	card_free(card);
	return rc;
}

static bool has_ext(const char *name, const char *ext)
{
	size_t a = strlen(name), b = strlen(ext);

	return a > b && strcasecmp(name + a - b, ext) == 0;
}

static int add_file(pb_device_writer_t *w, const char *path, const pb_buf_t *b)
{
	pb_item_t item = { 0 };

	item.kind = PB_KIND_MIFARE;
	item.id = path;
	item.path = path;
	item.data = b->data;
	item.len = b->len;
	item.size = b->len;
	return pb_device_writer_add(w, &item);
}

/* Ids of the cards given a sidecar in this import, so that a later dump
 * of the same card rewrites that sidecar instead of leaving it stale. */
typedef struct sidecars_s {
	char (*ids)[80];
	size_t n, cap;
} sidecars_t;

static bool sidecars_has(const sidecars_t *sc, const char *id)
{
	for (size_t i = 0; sc != NULL && i < sc->n; i++)
		if (strcmp(sc->ids[i], id) == 0)
			return true;
	return false;
}

static int sidecars_add(sidecars_t *sc, const char *id)
{
	if (sc == NULL || sidecars_has(sc, id))
		return 0;
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 16;
		char(*v)[80] = realloc(sc->ids, cap * sizeof(*v));
		if (v == NULL)
			return PB_ENOMEM;
		sc->ids = v;
		sc->cap = cap;
	}
	memcpy(sc->ids[sc->n++], id, strlen(id) + 1);
	return 0;
}

/* Queues mifare/<id>.mfd and, when needed, its .mct sidecar. */
static int queue_card(pb_device_writer_t *w, const char *device_dir, const pb_mifare_card_t *card, sidecars_t *sc)
{
	char id[80], path[128], abs[4096];
	pb_buf_t b = { 0 };
	struct stat st;
	int rc;

	if ((rc = pb_mifare_card_id(card, id, sizeof(id))) != 0)
		return rc;
	if (snprintf(path, sizeof(path), "mifare/%s.mfd", id) >= (int)sizeof(path))
		return PB_ETOOBIG;
	if ((rc = pb_mifare_format_bin(card, &b)) != 0 || (rc = add_file(w, path, &b)) != 0)
		goto out_free;
	if (snprintf(path, sizeof(path), "mifare/%s.mct", id) >= (int)sizeof(path) ||
	    snprintf(abs, sizeof(abs), "%s/%s", device_dir, path) >= (int)sizeof(abs)) {
		rc = PB_ETOOBIG;
		goto out_free;
	}
	/* A sidecar already there is rewritten too, so it never goes stale. */
	if (!pb_mifare_complete(card) || card->mct_crlf || card->mct_final_newline || stat(abs, &st) == 0 ||
	    sidecars_has(sc, id)) {
		b.len = 0;
		if ((rc = pb_mifare_format_mct(card, &b)) != 0 || (rc = add_file(w, path, &b)) != 0 ||
		    (rc = sidecars_add(sc, id)) != 0)
			goto out_free;
	}
	/* A Flipper file's header (ATQA, SAK as written) is kept beside. One
	 * already there is rewritten with the new dump's blocks, keeping its
	 * header: the card answers the same whatever read it. */
	if (snprintf(path, sizeof(path), "mifare/%s.nfc", id) >= (int)sizeof(path) ||
	    snprintf(abs, sizeof(abs), "%s/%s", device_dir, path) >= (int)sizeof(abs)) {
		rc = PB_ETOOBIG;
		goto out_free;
	}
	if (card->flipper) {
		b.len = 0;
		if ((rc = pb_mifare_format_flipper(card, &b)) != 0 || (rc = add_file(w, path, &b)) != 0)
			goto out_free;
	} else if (stat(abs, &st) == 0) {
		pb_mifare_card_t *both = malloc(sizeof(*both)), *old = NULL;
		uint8_t *buf = NULL;
		size_t len = 0;

		if (both == NULL) {
			rc = PB_ENOMEM;
			goto out_free;
		}
		memcpy(both, card, sizeof(*both));
		if (pb__kinds_read_file(abs, 64u << 10, &buf, &len) == 0 &&
		    pb_mifare_parse_flipper(buf, len, &old, NULL, 0) == 0) {
			both->flipper = true;
			both->flipper_has_atqa = old->flipper_has_atqa;
			both->flipper_has_sak = old->flipper_has_sak;
			memcpy(both->flipper_atqa, old->flipper_atqa, 2);
			both->flipper_sak = old->flipper_sak;
		}
		b.len = 0;
		rc = pb_mifare_format_flipper(both, &b);
		if (rc == 0)
			rc = add_file(w, path, &b);
		if (buf != NULL) {
			sodium_memzero(buf, len);
			free(buf);
		}
		card_free(old);
		card_free(both);
		if (rc != 0)
			goto out_free;
	}
out_free:
	pb_buf_free(&b);
	return rc;
}

static bool keys_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 128 || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '.' && name[i] != '_' && name[i] != '-')
			return false;
	return true;
}

int pb__import_mifare(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap)
{
	pb_device_writer_t *w = NULL;
	uint8_t(*keys)[6] = NULL;
	sidecars_t sc = { 0 };
	int rc;

	if ((rc = pb_device_writer_open(device_dir, &w)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		pb_mifare_card_t *card = NULL;
		char why[512];
		uint8_t *buf;
		size_t len;

		rc = pb__kinds_read_file(files[i], MIFARE_MAX_IMPORT, &buf, &len);
		if (rc != 0) {
			rc = pb__kinds_errf(errbuf, errcap, rc, "%s: %s", files[i], pb_strerror(rc));
			goto out_free;
		}
		if (has_ext(files[i], ".keys")) {
			const char *base = pb__kinds_basename(files[i]);
			char path[160];
			size_t count;

			if (keys == NULL && (keys = malloc(MIFARE_MAX_KEYS * sizeof(*keys))) == NULL)
				rc = PB_ENOMEM;
			else if ((rc = pb_mifare_parse_keys(buf, len, keys, MIFARE_MAX_KEYS, &count, why, sizeof(why))) != 0)
				rc = pb__kinds_errf(errbuf, errcap, rc, "%s: %s", files[i], why);
			else if (!keys_name_ok(base) || snprintf(path, sizeof(path), "mifare/keys/%s", base) >= (int)sizeof(path))
				rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FIELD,
						    "%s: a key file name is letters, digits, '.', '_' or '-'", files[i]);
			else
				rc = add_file(w, path, &(pb_buf_t){ buf, len, len });
		} else {
			rc = pb_mifare_parse_any(files[i], buf, len, &card, why, sizeof(why));
			if (rc != 0)
				rc = pb__kinds_errf(errbuf, errcap, rc, "%s: %s", files[i], why);
			else
				rc = queue_card(w, device_dir, card, &sc);
			card_free(card);
		}
		sodium_memzero(buf, len);
		free(buf);
		if (rc != 0)
			goto out_free;
	}
	if ((rc = pb_device_writer_commit(w)) != 0)
		rc = pb__kinds_errf(errbuf, errcap, rc, "%s: cannot write the MIFARE cards: %s", device_dir,
				    pb_strerror(rc));
out_free:
	if (keys != NULL) {
		sodium_memzero(keys, MIFARE_MAX_KEYS * sizeof(*keys));
		free(keys);
	}
	free(sc.ids);
	pb_device_writer_free(w);
	return rc;
}

typedef struct export_s {
	const char *device_dir, *out_dir, *ext;
	int (*format)(const pb_mifare_card_t *card, pb_buf_t *out);
	char *err;
	size_t errcap;
} export_t;

static int export_one(void *arg, const pb_item_t *item)
{
	export_t *x = arg;
	const char *name = item->path + strlen("mifare/");
	pb_mifare_card_t *card = NULL;
	pb_buf_t b = { 0 };
	char id[80], path[4096];
	size_t n = strlen(name);
	int rc;

	if (strchr(name, '/') != NULL || !has_ext(name, ".mfd") || n - 4 >= sizeof(id))
		return 0;
	memcpy(id, name, n - 4);
	id[n - 4] = 0;
	if ((rc = pb_mifare_load(x->device_dir, id, &card)) != 0)
		return pb__kinds_errf(x->err, x->errcap, rc, "%s: %s", item->path, pb_strerror(rc));
	/* "auto": each card in the format it came in (Flipper's, else .mct). */
	if ((rc = (x->format != NULL ? x->format : card->flipper ? pb_mifare_format_flipper : pb_mifare_format_mct)(
		     card, &b)) == 0) {
		const char *ext = x->ext != NULL ? x->ext : card->flipper ? ".nfc" : ".mct";

		if (snprintf(path, sizeof(path), "%s/%s%s", x->out_dir, id, ext) >= (int)sizeof(path))
			rc = PB_ETOOBIG;
		else
			rc = pb__kinds_write_atomic(path, b.data, b.len);
		if (rc != 0)
			rc = pb__kinds_errf(x->err, x->errcap, rc, "%s: %s", path, pb_strerror(rc));
	}
	pb_buf_free(&b);
	card_free(card);
	return rc;
}

int pb__export_mifare(const char *device_dir, const char *format, const char *out_dir, char *errbuf, size_t errcap)
{
	static const struct {
		const char *name, *ext;
		int (*format)(const pb_mifare_card_t *card, pb_buf_t *out);
	} formats[] = {
		{ "mct", ".mct", pb_mifare_format_mct },      { "bin", ".bin", pb_mifare_format_bin },
		{ "mfd", ".mfd", pb_mifare_format_bin },      { "eml", ".eml", pb_mifare_format_eml },
		{ "json", ".json", pb_mifare_format_pm3json }, { "pm3", ".json", pb_mifare_format_pm3json },
		{ "nfc", ".nfc", pb_mifare_format_flipper },   { "flipper", ".nfc", pb_mifare_format_flipper },
		{ "keys", ".keys", pb_mifare_format_keys },
	};
	export_t x = { device_dir, out_dir, NULL, NULL, errbuf, errcap };
	char bad[256];
	int rc;

	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		if (format != NULL && strcmp(format, formats[i].name) == 0) {
			x.ext = formats[i].ext;
			x.format = formats[i].format;
		}
	}
	if (x.format == NULL && (format == NULL || strcmp(format, "auto") != 0))
		return pb__kinds_errf(errbuf, errcap, PB_EUNSUPPORTED,
				      "unknown MIFARE export format '%s' (use auto, mct, bin, mfd, eml, json, nfc or keys)",
				      format != NULL ? format : "");
	if ((rc = pb__kinds_mkdirs(out_dir)) != 0)
		return pb__kinds_errf(errbuf, errcap, rc, "%s: %s", out_dir, pb_strerror(rc));
	if (errbuf != NULL && errcap > 0)
		errbuf[0] = 0;
	rc = pb_device_scan(device_dir, 1u << PB_KIND_MIFARE, export_one, &x, bad, sizeof(bad));
	if (rc != 0 && (errbuf == NULL || errcap == 0 || errbuf[0] == 0))
		rc = pb__kinds_errf(errbuf, errcap, rc, "%s: %s", bad[0] ? bad : device_dir, pb_strerror(rc));
	return rc;
}

/* --- Generator ------------------------------------------------------------ */

/* Sector layouts seen on real cards. */
enum { LAYOUT_TRANSPORT, LAYOUT_READ_B_WRITE, LAYOUT_VALUE, LAYOUT_READONLY, LAYOUT_COUNT };

static void gen_sector(pb_gen_rng_t *rng, pb_mifare_card_t *card, unsigned s, unsigned layout, const uint8_t key_a[6],
		       const uint8_t key_b[6])
{
	static const uint8_t transport[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	unsigned first = pb_mifare_sector_first_block(s), t = pb_mifare_sector_trailer(s);
	uint8_t *tr = card->data + 16 * t;
	uint8_t cond[4];

	switch (layout) {
	case LAYOUT_TRANSPORT:
		memcpy(cond, (uint8_t[4]){ 0, 0, 0, 1 }, 4);
		break;
	case LAYOUT_READ_B_WRITE:
		memcpy(cond, (uint8_t[4]){ 4, 4, 4, 3 }, 4); /* 787788 */
		break;
	case LAYOUT_VALUE:
		memcpy(cond, (uint8_t[4]){ 6, 6, 6, 3 }, 4);
		break;
	default:
		memcpy(cond, (uint8_t[4]){ 2, 2, 2, 3 }, 4);
		break;
	}
	for (unsigned b = first; b < t; b++) {
		uint8_t *blk = card->data + 16 * b;

		if (b == 0)
			continue;
		if (layout == LAYOUT_VALUE) {
			pb_mifare_value_format((int32_t)pb__gen_rng_below(rng, 100000), (uint8_t)b, blk);
		} else if (pb__gen_rng_below(rng, 3) == 0) {
			memset(blk, 0, 16);
		} else {
			pb__gen_rng_bytes(rng, blk, 16);
		}
	}
	memcpy(tr, layout == LAYOUT_TRANSPORT ? transport : key_a, 6);
	pb_mifare_access_encode(cond, tr + 6);
	tr[9] = 0x69;
	memcpy(tr + 10, layout == LAYOUT_TRANSPORT ? transport : key_b, 6);
}

static void gen_card(pb_gen_rng_t *rng, pb_mifare_card_t *card)
{
	static const unsigned sizes[] = { 16, 16, 16, 16, 16, 16, 40, 40, 5, 32 };
	unsigned sectors = sizes[pb__gen_rng_below(rng, 10)];
	uint8_t key_a[6], key_b[6];
	uint8_t *b0 = card->data;

	pb_mifare_init(card, sectors);
	do
		pb__gen_rng_bytes(rng, b0, 4);
	while (b0[0] == 0x88 || b0[0] == 0xf8);
	b0[4] = (uint8_t)(b0[0] ^ b0[1] ^ b0[2] ^ b0[3]);
	b0[5] = sectors == 5 ? 0x09 : sectors == 16 ? 0x08 : sectors == 32 ? 0x19 : 0x18;
	b0[6] = sectors == 40 ? 0x02 : 0x04;
	b0[7] = 0x00;
	pb__gen_rng_bytes(rng, b0 + 8, 8);
	pb__gen_rng_bytes(rng, key_a, 6);
	pb__gen_rng_bytes(rng, key_b, 6);
	for (unsigned s = 0; s < sectors; s++) {
		unsigned layout = pb__gen_rng_below(rng, LAYOUT_COUNT);

		if (s == 0 && layout == LAYOUT_VALUE)
			layout = LAYOUT_READ_B_WRITE;
		gen_sector(rng, card, s, layout, key_a, key_b);
	}
	/* One card in six was read only in part, as MIFARE Classic Tool
	 * leaves it: a key B it could not find, a dead sector. */
	if (pb__gen_rng_below(rng, 6) == 0) {
		unsigned s = 1 + pb__gen_rng_below(rng, sectors - 1), t = pb_mifare_sector_trailer(s);

		memset(card->known + 16 * t + 10, 0, 6);
		memset(card->data + 16 * t + 10, 0, 6);
		s = 1 + pb__gen_rng_below(rng, sectors - 1);
		card->state[s] = PB_MIFARE_SECTOR_DEAD;
		memcpy(card->dead[s], "*No keys found or dead sector", sizeof("*No keys found or dead sector"));
		memset(card->data + 16 * pb_mifare_sector_first_block(s), 0, 16 * (size_t)pb_mifare_sector_blocks(s));
		memset(card->known + 16 * pb_mifare_sector_first_block(s), 0, 16 * (size_t)pb_mifare_sector_blocks(s));
	}
}

int pb__gen_mifare(const char *device_dir, uint64_t seed, pb_gen_size_t size)
{
	unsigned count = size == PB_GEN_SMALL ? 4 : size == PB_GEN_STANDARD ? 36 : 200;
	pb_mifare_card_t *card = malloc(sizeof(*card));
	pb_device_writer_t *w = NULL;
	pb_gen_rng_t rng;
	int rc;

	if (card == NULL)
		return PB_ENOMEM;
	pb__gen_rng_init(&rng, seed, "mifare");
	if ((rc = pb_device_writer_open(device_dir, &w)) != 0)
		goto out_free;
	for (unsigned i = 0; i < count; i++) {
		gen_card(&rng, card);
		if ((rc = pb_mifare_validate(card, NULL, 0)) != 0 || (rc = queue_card(w, device_dir, card, NULL)) != 0)
			goto out_free;
	}
	rc = pb_device_writer_commit(w);
out_free:
	pb_device_writer_free(w);
	card_free(card);
	return rc;
}
