/* Secure-element verification credentials: one peerback JSON file per
 * credential (credentials/<id>.json, docs/DATA.md), imported from peerback
 * JSON or from pySim card-key CSV rows. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback/nfc.h"
#include "agent/kinds/internal.h"
#include "agent/kinds/util.h"

#define CRED_MAX_FILE (256u << 10)
#define CRED_MAX_CSV (4u << 20)
#define CRED_MAX_IMPORT 100000u

static const char *const cred_types[] = { "payment", "transit", "access", "identity", "sim-keys", "other" };

void pb_credential_checksum(const uint8_t *data, size_t len, uint8_t out[4])
{
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, len);
	memcpy(out, h, 4);
}

static bool id_ok(const char *id)
{
	size_t n = id != NULL ? strlen(id) : 0;

	if (n == 0 || n > PB_CREDENTIAL_ID_MAX || id[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '.' && id[i] != '_' && id[i] != '-')
			return false;
	return true;
}

static bool text_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

void pb_credential_free(pb_credential_t *c)
{
	if (c == NULL)
		return;
	if (c->data != NULL) {
		sodium_memzero(c->data, c->data_len);
		free(c->data);
	}
	sodium_memzero(c, sizeof(*c));
	free(c);
}

static int copy_str(json_t *obj, const char *key, char *out, size_t cap, bool required, char *err, size_t errcap)
{
	json_t *v = json_object_get(obj, key);
	size_t n;

	out[0] = 0;
	if (v == NULL) {
		if (required)
			return pb__kinds_errf(err, errcap, PB_EDATA_FIELD, "field \"%s\" is missing", key);
		return 0;
	}
	if (!json_is_string(v))
		return pb__kinds_errf(err, errcap, PB_EDATA_FIELD, "field \"%s\" is not a string", key);
	n = json_string_length(v);
	if (n >= cap || strlen(json_string_value(v)) != n)
		return pb__kinds_errf(err, errcap, PB_EDATA_FIELD, "field \"%s\" is too long or holds a NUL", key);
	memcpy(out, json_string_value(v), n + 1);
	return 0;
}

static int get_time(json_t *obj, const char *key, uint64_t *out, char *err, size_t errcap)
{
	json_t *v = json_object_get(obj, key);

	*out = 0;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return pb__kinds_errf(err, errcap, PB_EDATA_FIELD, "field \"%s\" is not a non-negative integer (unix seconds)",
				      key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int pb_credential_parse(const uint8_t *buf, size_t len, pb_credential_t **out, char *errbuf, size_t errcap)
{
	static const char *const known[] = { "id", "type", "aid", "issuer", "created", "expires", "data", "checksum" };
	pb_credential_t *c = NULL;
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	char sum[9];
	size_t hn;
	bool type_ok = false;
	int rc;

	*out = NULL;
	if (len > CRED_MAX_FILE)
		return pb__kinds_errf(errbuf, errcap, PB_ETOOBIG, "file is larger than %u bytes", CRED_MAX_FILE);
	root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return pb__kinds_errf(errbuf, errcap, PB_EDATA_FORMAT, "line %d, column %d: %s", jerr.line, jerr.column,
				      jerr.text);
	if (!json_is_object(root)) {
		rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FORMAT, "not a JSON object");
		goto out_json;
	}
	json_object_foreach (root, key, v) {
		bool ok = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok |= strcmp(key, known[i]) == 0;
		if (!ok) {
			rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FIELD, "unknown field \"%.40s\"", key);
			goto out_json;
		}
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		rc = PB_ENOMEM;
		goto out_json;
	}
	if ((rc = copy_str(root, "id", c->id, sizeof(c->id), true, errbuf, errcap)) != 0 ||
	    (rc = copy_str(root, "type", c->type, sizeof(c->type), true, errbuf, errcap)) != 0 ||
	    (rc = copy_str(root, "aid", c->aid, sizeof(c->aid), false, errbuf, errcap)) != 0 ||
	    (rc = copy_str(root, "issuer", c->issuer, sizeof(c->issuer), false, errbuf, errcap)) != 0 ||
	    (rc = copy_str(root, "checksum", sum, sizeof(sum), true, errbuf, errcap)) != 0 ||
	    (rc = get_time(root, "created", &c->created, errbuf, errcap)) != 0 ||
	    (rc = get_time(root, "expires", &c->expires, errbuf, errcap)) != 0)
		goto out_free;
	if (!id_ok(c->id)) {
		rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FIELD,
				    "id \"%s\" is not 1-64 letters, digits, '.', '_' or '-' (not starting with '.')", c->id);
		goto out_free;
	}
	for (size_t i = 0; i < sizeof(cred_types) / sizeof(cred_types[0]); i++)
		type_ok |= strcmp(c->type, cred_types[i]) == 0;
	if (!type_ok) {
		rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FIELD,
				    "type \"%s\" is not payment, transit, access, identity, sim-keys or other", c->type);
		goto out_free;
	}
	hn = strlen(c->aid);
	if (hn > 0 && (hn < 10 || hn % 2 != 0 || !pb__kinds_is_hex(c->aid, hn))) {
		rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FIELD, "aid \"%s\" is not 5 to 16 bytes of hex", c->aid);
		goto out_free;
	}
	for (size_t i = 0; i < hn; i++)
		c->aid[i] = (char)toupper((unsigned char)c->aid[i]);
	if (!text_ok(c->issuer)) {
		rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FIELD, "issuer holds a control character");
		goto out_free;
	}
	if (pb__kinds_hex_decode(sum, strlen(sum), c->checksum, 4) != 0) {
		rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FIELD, "checksum \"%s\" is not 8 hex digits", sum);
		goto out_free;
	}
	v = json_object_get(root, "data");
	if (v == NULL || !json_is_string(v)) {
		rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FIELD, "field \"data\" is missing or not a string");
		goto out_free;
	}
	hn = json_string_length(v);
	if (hn == 0 || hn % 2 != 0 || hn / 2 > PB_CREDENTIAL_DATA_MAX) {
		rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FIELD, "data is not 1 to %u bytes of hex",
				    PB_CREDENTIAL_DATA_MAX);
		goto out_free;
	}
	c->data_len = hn / 2;
	c->data = malloc(c->data_len);
	if (c->data == NULL) {
		rc = PB_ENOMEM;
		goto out_free;
	}
	if (pb__kinds_hex_decode(json_string_value(v), hn, c->data, c->data_len) != 0) {
		rc = pb__kinds_errf(errbuf, errcap, PB_EDATA_FIELD, "data is not hex");
		goto out_free;
	}
	json_decref(root);
	*out = c;
	return 0;

out_free:
	pb_credential_free(c);
out_json:
	json_decref(root);
	return rc;
}

int pb_credential_format(const pb_credential_t *c, pb_buf_t *out)
{
	json_t *root = json_object();
	char sum[9], *hex = NULL, *text = NULL;
	int rc = PB_ENOMEM;

	if (root == NULL)
		return PB_ENOMEM;
	if (c->data_len > PB_CREDENTIAL_DATA_MAX) {
		rc = PB_ETOOBIG;
		goto out_json;
	}
	hex = malloc(c->data_len * 2 + 1);
	if (hex == NULL)
		goto out_json;
	pb__kinds_hex_encode(c->data, c->data_len, hex);
	pb__kinds_hex_encode(c->checksum, 4, sum);
	if (json_object_set_new(root, "id", json_string(c->id)) != 0 ||
	    json_object_set_new(root, "type", json_string(c->type)) != 0 ||
	    json_object_set_new(root, "created", json_integer((json_int_t)c->created)) != 0 ||
	    json_object_set_new(root, "data", json_string(hex)) != 0 ||
	    json_object_set_new(root, "checksum", json_string(sum)) != 0)
		goto out_json;
	if (c->aid[0] != 0 && json_object_set_new(root, "aid", json_string(c->aid)) != 0)
		goto out_json;
	if (c->issuer[0] != 0 && json_object_set_new(root, "issuer", json_string(c->issuer)) != 0)
		goto out_json;
	if (c->expires != 0 && json_object_set_new(root, "expires", json_integer((json_int_t)c->expires)) != 0)
		goto out_json;
	text = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(2));
	if (text == NULL)
		goto out_json;
	if ((rc = pb_buf_append(out, text, strlen(text))) == 0)
		rc = pb_buf_append(out, "\n", 1);
	sodium_memzero(text, strlen(text));
	free(text);
out_json:
	if (hex != NULL) {
		sodium_memzero(hex, c->data_len * 2 + 1);
		free(hex);
	}
	json_decref(root);
	return rc;
}

int pb_credential_verify(const pb_credential_t *c, uint64_t now)
{
	uint8_t sum[4];

	pb_credential_checksum(c->data, c->data_len, sum);
	if (sodium_memcmp(sum, c->checksum, 4) != 0)
		return PB_EDATA_CHECKSUM;
	if (c->expires != 0 && now >= c->expires)
		return PB_EDATA_EXPIRED;
	return 0;
}

int pb_credential_load(const char *device_dir, const char *id, pb_credential_t **out)
{
	char path[4096];
	uint8_t *buf;
	size_t len;
	int n, rc;

	*out = NULL;
	if (device_dir == NULL || !id_ok(id))
		return PB_EINVAL;
	n = snprintf(path, sizeof(path), "%s/credentials/%s.json", device_dir, id);
	if (n < 0 || (size_t)n >= sizeof(path))
		return PB_ETOOBIG;
	rc = pb__kinds_read_file(path, CRED_MAX_FILE, &buf, &len);
	if (rc == -ENOENT)
		return PB_ENOTFOUND;
	if (rc != 0)
		return rc;
	rc = pb_credential_parse(buf, len, out, NULL, 0);
	sodium_memzero(buf, len);
	free(buf);
	if (rc == 0 && strcmp((*out)->id, id) != 0) {
		pb_credential_free(*out);
		*out = NULL;
		rc = PB_EDATA_FORMAT;
	}
	return rc;
}

int pb_credential_check(const char *device_dir, const char *id, uint64_t now)
{
	pb_credential_t *c;
	int rc = pb_credential_load(device_dir, id, &c);

	/* Missing, unreadable and unparsable are told apart; a file too large
	 * to be a credential counts as unparsable. */
	if (rc == PB_ETOOBIG || (rc <= PB_EDATA_FORMAT && rc >= PB_EDATA_KIND))
		return PB_EDATA_FORMAT;
	if (rc != 0)
		return rc;
	rc = pb_credential_verify(c, now);
	pb_credential_free(c);
	return rc;
}

/* --- Import --------------------------------------------------------------- */

typedef struct pending_s {
	char id[PB_CREDENTIAL_ID_MAX + 1];
	pb_buf_t json;
} pending_t;

typedef struct import_s {
	pending_t *v;
	size_t n, cap;
} import_t;

static void import_free(import_t *im)
{
	for (size_t i = 0; i < im->n; i++)
		pb_buf_free(&im->v[i].json);
	free(im->v);
}

/* Queues a validated credential; a later one with the same id replaces it. */
static int queue(import_t *im, const pb_credential_t *c)
{
	pending_t *p = NULL;
	int rc;

	for (size_t i = 0; i < im->n; i++)
		if (strcmp(im->v[i].id, c->id) == 0)
			p = &im->v[i];
	if (p == NULL) {
		if (im->n >= CRED_MAX_IMPORT)
			return PB_ETOOBIG;
		if (im->n == im->cap) {
			size_t cap = im->cap ? im->cap * 2 : 16;
			pending_t *v = realloc(im->v, cap * sizeof(*v));
			if (v == NULL)
				return PB_ENOMEM;
			im->v = v;
			im->cap = cap;
		}
		p = &im->v[im->n++];
		memset(p, 0, sizeof(*p));
		memcpy(p->id, c->id, sizeof(p->id));
	}
	p->json.len = 0;
	if ((rc = pb_credential_format(c, &p->json)) != 0)
		return rc;
	return 0;
}

static int import_json(import_t *im, const char *file, const uint8_t *buf, size_t len, char *err, size_t cap)
{
	pb_credential_t *c;
	char why[256];
	int rc;

	if ((rc = pb_credential_parse(buf, len, &c, why, sizeof(why))) != 0)
		return pb__kinds_errf(err, cap, rc, "%s: %s", file, why);
	if (pb_credential_verify(c, 0) == PB_EDATA_CHECKSUM) {
		uint8_t sum[4];
		char want[9];

		pb_credential_checksum(c->data, c->data_len, sum);
		pb__kinds_hex_encode(sum, 4, want);
		rc = pb__kinds_errf(err, cap, PB_EDATA_CHECKSUM,
				    "%s: credential %s fails its checksum (data gives %s)", file, c->id, want);
	} else {
		rc = queue(im, c);
	}
	pb_credential_free(c);
	return rc;
}

/* A pySim card-key CSV: each row becomes a "sim-keys" credential whose data
 * is the row's fields as "NAME=VALUE\n" lines in column order. */
static int import_card_keys(import_t *im, const char *file, const uint8_t *buf, size_t len, char *err, size_t cap)
{
	pb__csv_row_t *head = malloc(sizeof(*head)), *row = malloc(sizeof(*row));
	pb__kinds_lines_t it;
	pb_credential_t c;
	pb_buf_t data = { 0 };
	const char *line;
	size_t n, col, iccid_col = SIZE_MAX, eid_col = SIZE_MAX;
	bool have_header = false;
	int rc = 0;

	memset(&c, 0, sizeof(c));
	if (head == NULL || row == NULL) {
		rc = PB_ENOMEM;
		goto out_free;
	}
	pb__kinds_lines_init(&it, buf, len);
	while (pb__kinds_lines_next(&it, &line, &n)) {
		const char *key;

		if (n > PB__CSV_MAX_LINE) {
			rc = pb__kinds_errf(err, cap, PB_ETOOBIG, "%s:%u: line is longer than %u bytes", file, it.lineno,
					    PB__CSV_MAX_LINE);
			goto out_free;
		}
		if (n == 0)
			continue;
		if (pb__kinds_csv_split(line, n, have_header ? row : head, &col) != 0) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s:%u: field %zu is malformed or too long", file,
					    it.lineno, col);
			goto out_free;
		}
		if (!have_header) {
			for (size_t i = 0; i < head->n; i++) {
				if (head->v[i][0] == 0 || !text_ok(head->v[i]) || strchr(head->v[i], '=') != NULL) {
					rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
							    "%s:%u: header column %zu is not a name", file, it.lineno,
							    i + 1);
					goto out_free;
				}
				if (strcasecmp(head->v[i], "iccid") == 0)
					iccid_col = i;
				else if (strcasecmp(head->v[i], "eid") == 0)
					eid_col = i;
			}
			if (iccid_col == SIZE_MAX && eid_col == SIZE_MAX) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
						    "%s:%u: the header has neither an ICCID nor an EID column", file,
						    it.lineno);
				goto out_free;
			}
			have_header = true;
			continue;
		}
		if (row->n != head->n) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s:%u: the row has %zu fields but the header has %zu",
					    file, it.lineno, row->n, head->n);
			goto out_free;
		}
		memset(&c, 0, sizeof(c));
		key = iccid_col != SIZE_MAX ? row->v[iccid_col] : "";
		if (key[0] != 0) {
			size_t kn = strlen(key);
			if ((kn != 19 && kn != 20) || !pb__kinds_is_digits(key, kn)) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FIELD, "%s:%u: ICCID '%s' is not 19 or 20 digits",
						    file, it.lineno, key);
				goto out_free;
			}
			if (!pb_sim_iccid_ok(key)) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_CHECKSUM,
						    "%s:%u: ICCID %s fails its Luhn check (the last digit should be %d)",
						    file, it.lineno, key, pb_sim_luhn_digit(key, kn - 1));
				goto out_free;
			}
			if (snprintf(c.id, sizeof(c.id), "iccid-%s", key) < 0)
				c.id[0] = 0;
		} else {
			key = eid_col != SIZE_MAX ? row->v[eid_col] : "";
			if (strlen(key) != 32 || !pb__kinds_is_digits(key, 32)) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FIELD,
						    "%s:%u: the row has no ICCID and its EID '%s' is not 32 digits", file,
						    it.lineno, key);
				goto out_free;
			}
			if (snprintf(c.id, sizeof(c.id), "eid-%s", key) < 0)
				c.id[0] = 0;
		}
		data.len = 0;
		for (size_t i = 0; i < row->n; i++) {
			if (!text_ok(row->v[i])) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FIELD, "%s:%u: column %s holds a control character",
						    file, it.lineno, head->v[i]);
				goto out_free;
			}
			if ((rc = pb_buf_append(&data, head->v[i], strlen(head->v[i]))) != 0 ||
			    (rc = pb_buf_append(&data, "=", 1)) != 0 ||
			    (rc = pb_buf_append(&data, row->v[i], strlen(row->v[i]))) != 0 ||
			    (rc = pb_buf_append(&data, "\n", 1)) != 0)
				goto out_free;
		}
		if (data.len > PB_CREDENTIAL_DATA_MAX) {
			rc = pb__kinds_errf(err, cap, PB_ETOOBIG, "%s:%u: the row is too large", file, it.lineno);
			goto out_free;
		}
		memcpy(c.type, "sim-keys", sizeof("sim-keys"));
		c.data = data.data;
		c.data_len = data.len;
		pb_credential_checksum(c.data, c.data_len, c.checksum);
		if ((rc = queue(im, &c)) != 0)
			goto out_free;
	}
	if (!have_header)
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s: no header row (ICCID,ADM1,...)", file);
out_free:
	pb_buf_free(&data);
	if (row != NULL)
		sodium_memzero(row, sizeof(*row));
	free(head);
	free(row);
	return rc;
}

int pb__credential_card_keys_parse(const uint8_t *buf, size_t len, size_t *count, char *errbuf, size_t errcap)
{
	import_t im = { 0 };
	int rc = import_card_keys(&im, "input", buf, len, errbuf, errcap);

	*count = im.n;
	import_free(&im);
	return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

int pb__import_credentials(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap)
{
	import_t im = { 0 };
	pb_device_writer_t *w = NULL;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		bool csv = ends_with(files[i], ".csv");
		uint8_t *buf;
		size_t len;

		rc = pb__kinds_read_file(files[i], csv ? CRED_MAX_CSV : CRED_MAX_FILE, &buf, &len);
		if (rc != 0) {
			rc = pb__kinds_errf(errbuf, errcap, rc, "%s: %s", files[i], pb_strerror(rc));
			goto out_free;
		}
		if (csv)
			rc = import_card_keys(&im, files[i], buf, len, errbuf, errcap);
		else
			rc = import_json(&im, files[i], buf, len, errbuf, errcap);
		sodium_memzero(buf, len);
		free(buf);
		if (rc != 0)
			goto out_free;
	}
	if ((rc = pb_device_writer_open(device_dir, &w)) != 0)
		goto out_free;
	for (size_t i = 0; i < im.n; i++) {
		char id[PB_ITEM_ID_MAX], path[PB_ITEM_ID_MAX];
		pb_item_t item = { 0 };

		if (snprintf(path, sizeof(path), "credentials/%s.json", im.v[i].id) < 0 ||
		    snprintf(id, sizeof(id), "%s", path) < 0) {
			rc = PB_EINVAL;
			goto out_free;
		}
		item.kind = PB_KIND_CREDENTIAL;
		item.id = id;
		item.path = path;
		item.data = im.v[i].json.data;
		item.len = im.v[i].json.len;
		item.size = item.len;
		if ((rc = pb_device_writer_add(w, &item)) != 0)
			goto out_free;
	}
	if ((rc = pb_device_writer_commit(w)) != 0)
		rc = pb__kinds_errf(errbuf, errcap, rc, "%s: cannot write the credentials: %s", device_dir,
				    pb_strerror(rc));
out_free:
	pb_device_writer_free(w);
	import_free(&im);
	return rc;
}

/* --- Export --------------------------------------------------------------- */

typedef struct export_s {
	const char *out_dir;
	char *err;
	size_t errcap;
	bool csv;                   /* card-key CSV instead of JSON files */
	pb__csv_row_t *names;       /* CSV: the columns, in first-seen order */
	pb_buf_t rows;              /* CSV: one "NAME=VALUE\n..." block per card, then "\0" */
} export_t;

/* Appends a CSV field, quoted when it holds a comma or a quote. */
static int csv_field(pb_buf_t *out, const char *v, size_t n)
{
	bool quote = memchr(v, ',', n) != NULL || memchr(v, '"', n) != NULL;
	int rc;

	if (!quote)
		return pb_buf_append(out, v, n);
	if ((rc = pb_buf_append(out, "\"", 1)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if ((rc = pb_buf_append(out, v + i, 1)) != 0 || (v[i] == '"' && (rc = pb_buf_append(out, "\"", 1)) != 0))
			return rc;
	return pb_buf_append(out, "\"", 1);
}

/* Remembers a sim-keys credential's fields for the card-key CSV. */
static int csv_collect(export_t *x, const pb_credential_t *c)
{
	const char *p = (const char *)c->data, *end = p + c->data_len;
	int rc;

	if (strcmp(c->type, "sim-keys") != 0)
		return 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *eq;
		size_t k;

		if (nl == NULL)
			nl = end;
		eq = memchr(p, '=', (size_t)(nl - p));
		if (eq == NULL || eq == p || (size_t)(eq - p) > PB__CSV_MAX_FIELD)
			return PB_EDATA_FORMAT;
		for (k = 0; k < x->names->n; k++)
			if (strlen(x->names->v[k]) == (size_t)(eq - p) && memcmp(x->names->v[k], p, (size_t)(eq - p)) == 0)
				break;
		if (k == x->names->n) {
			if (k >= PB__CSV_MAX_COLS)
				return PB_ETOOBIG;
			memcpy(x->names->v[k], p, (size_t)(eq - p));
			x->names->v[k][eq - p] = 0;
			x->names->n++;
		}
		p = nl + 1;
	}
	if ((rc = pb_buf_append(&x->rows, c->data, c->data_len)) != 0)
		return rc;
	return pb_buf_append(&x->rows, "", 1);
}

/* Writes the card-key CSV: the union of the columns, one row a card. */
static int csv_write(export_t *x)
{
	pb_buf_t out = { 0 };
	char path[4096];
	size_t off = 0;
	int rc = 0;

	if (x->names->n == 0)
		return 0;
	for (size_t k = 0; k < x->names->n && rc == 0; k++)
		if ((k == 0 || (rc = pb_buf_append(&out, ",", 1)) == 0))
			rc = csv_field(&out, x->names->v[k], strlen(x->names->v[k]));
	if (rc == 0)
		rc = pb_buf_append(&out, "\n", 1);
	while (rc == 0 && off < x->rows.len) {
		const char *card = (const char *)x->rows.data + off;
		size_t clen = strlen(card);

		for (size_t k = 0; k < x->names->n && rc == 0; k++) {
			size_t nk = strlen(x->names->v[k]);
			const char *p = card, *end = card + clen;

			if (k > 0 && (rc = pb_buf_append(&out, ",", 1)) != 0)
				break;
			while (p < end) {
				const char *nl = memchr(p, '\n', (size_t)(end - p));
				if (nl == NULL)
					nl = end;
				if ((size_t)(nl - p) > nk && p[nk] == '=' && memcmp(p, x->names->v[k], nk) == 0) {
					rc = csv_field(&out, p + nk + 1, (size_t)(nl - p) - nk - 1);
					break;
				}
				p = nl + 1;
			}
		}
		if (rc == 0)
			rc = pb_buf_append(&out, "\n", 1);
		off += clen + 1;
	}
	if (rc == 0 && (rc = pb__kinds_join(path, sizeof(path), x->out_dir, "card_data.csv")) == 0)
		rc = pb__kinds_write_atomic(path, out.data, out.len);
	pb_buf_free(&out);
	return rc;
}

static int export_one(void *arg, const pb_item_t *item)
{
	export_t *x = arg;
	pb_credential_t *c = NULL;
	pb_buf_t out = { 0 };
	char path[4096], why[256];
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	if (!ends_with(item->path, ".json") || strchr(item->path + strlen("credentials/"), '/') != NULL)
		return 0; /* not a credential of the documented layout */
	if ((rc = pb__kinds_read_file(item->file, CRED_MAX_FILE, &buf, &len)) != 0)
		return pb__kinds_errf(x->err, x->errcap, rc, "%s: %s", item->path, pb_strerror(rc));
	if ((rc = pb_credential_parse(buf, len, &c, why, sizeof(why))) != 0) {
		rc = pb__kinds_errf(x->err, x->errcap, rc, "%s: %s", item->path, why);
		goto out_free;
	}
	if (x->csv) {
		if ((rc = csv_collect(x, c)) != 0)
			rc = pb__kinds_errf(x->err, x->errcap, rc, "%s: the card keys cannot be written as CSV", item->path);
		goto out_free;
	}
	if ((rc = pb_credential_format(c, &out)) != 0)
		goto out_free;
	if (snprintf(path, sizeof(path), "%s/%s.json", x->out_dir, c->id) >= (int)sizeof(path)) {
		rc = PB_ETOOBIG;
		goto out_free;
	}
	if ((rc = pb__kinds_write_atomic(path, out.data, out.len)) != 0)
		rc = pb__kinds_errf(x->err, x->errcap, rc, "%s: %s", path, pb_strerror(rc));
out_free:
	pb_buf_free(&out);
	pb_credential_free(c);
	if (buf != NULL) {
		sodium_memzero(buf, len);
		free(buf);
	}
	return rc;
}

int pb__export_credentials(const char *device_dir, const char *format, const char *out_dir, char *errbuf,
			   size_t errcap)
{
	export_t x = { out_dir, errbuf, errcap, false, NULL, { 0 } };
	char bad[256];
	int rc;

	if (format != NULL && (strcmp(format, "card-key-csv") == 0 || strcmp(format, "pysim-csv") == 0))
		x.csv = true;
	else if (format != NULL && strcmp(format, "json") != 0)
		return pb__kinds_errf(errbuf, errcap, PB_EUNSUPPORTED,
				      "unknown credential export format '%s' (use json or card-key-csv)", format);
	if ((rc = pb__kinds_mkdirs(out_dir)) != 0)
		return pb__kinds_errf(errbuf, errcap, rc, "%s: %s", out_dir, pb_strerror(rc));
	if (x.csv && (x.names = calloc(1, sizeof(*x.names))) == NULL)
		return PB_ENOMEM;
	if (errbuf != NULL && errcap > 0)
		errbuf[0] = 0;
	rc = pb_device_scan(device_dir, 1u << PB_KIND_CREDENTIAL, export_one, &x, bad, sizeof(bad));
	if (rc == 0 && x.csv && (rc = csv_write(&x)) != 0)
		rc = pb__kinds_errf(errbuf, errcap, rc, "%s/card_data.csv: %s", out_dir, pb_strerror(rc));
	if (rc != 0 && (errbuf == NULL || errcap == 0 || errbuf[0] == 0))
		rc = pb__kinds_errf(errbuf, errcap, rc, "%s: %s", bad[0] ? bad : device_dir, pb_strerror(rc));
	pb_buf_free(&x.rows);
	free(x.names);
	return rc;
}

/* --- Generator ------------------------------------------------------------ */

int pb__gen_credentials(const char *device_dir, uint64_t seed, pb_gen_size_t size)
{
	static const struct {
		const char *type, *aid, *issuer;
	} kinds[] = {
		{ "payment", "A0000000041010", "Mastercard debit" },
		{ "payment", "A0000000031010", "Visa credit" },
		{ "transit", "D2760000850101", "City transit pass" },
		{ "access", "F0010203040506", "Office door badge" },
		{ "identity", "A0000006472F0001", "FIDO security key" },
		{ "other", "", "Loyalty card" },
	};
	unsigned count = size == PB_GEN_SMALL ? 4 : size == PB_GEN_STANDARD ? 12 : 48;
	pb_device_writer_t *w;
	pb_gen_rng_t rng;
	int rc;

	pb__gen_rng_init(&rng, seed, "credentials");
	if ((rc = pb_device_writer_open(device_dir, &w)) != 0)
		return rc;
	for (unsigned i = 0; i < count; i++) {
		unsigned k = pb__gen_rng_below(&rng, sizeof(kinds) / sizeof(kinds[0]));
		pb_credential_t c;
		pb_buf_t json = { 0 };
		uint8_t data[512];
		char path[128];
		pb_item_t item = { 0 };

		memset(&c, 0, sizeof(c));
		if (snprintf(c.id, sizeof(c.id), "%s-%03u", kinds[k].type, i) >= (int)sizeof(c.id) ||
		    snprintf(path, sizeof(path), "credentials/%s.json", c.id) >= (int)sizeof(path)) {
			rc = PB_ETOOBIG;
			goto out_free;
		}
		memcpy(c.type, kinds[k].type, strlen(kinds[k].type) + 1);
		memcpy(c.aid, kinds[k].aid, strlen(kinds[k].aid) + 1);
		memcpy(c.issuer, kinds[k].issuer, strlen(kinds[k].issuer) + 1);
		c.created = 1600000000u + pb__gen_rng_below(&rng, 100000000u);
		/* One in four has expired; one in eight never expires. */
		switch (pb__gen_rng_below(&rng, 8)) {
		case 0:
		case 1:
			c.expires = c.created + 86400u * (1 + pb__gen_rng_below(&rng, 30));
			break;
		case 2:
			c.expires = 0;
			break;
		default:
			c.expires = 2000000000u + pb__gen_rng_below(&rng, 200000000u);
			break;
		}
		c.data_len = 32 + pb__gen_rng_below(&rng, sizeof(data) - 32);
		pb__gen_rng_bytes(&rng, data, c.data_len);
		c.data = data;
		pb_credential_checksum(data, c.data_len, c.checksum);
		rc = pb_credential_format(&c, &json);
		sodium_memzero(data, sizeof(data));
		if (rc == 0) {
			item.kind = PB_KIND_CREDENTIAL;
			item.id = path;
			item.path = path;
			item.data = json.data;
			item.len = json.len;
			item.size = json.len;
			rc = pb_device_writer_add(w, &item);
		}
		pb_buf_free(&json);
		if (rc != 0)
			goto out_free;
	}
	rc = pb_device_writer_commit(w);
out_free:
	pb_device_writer_free(w);
	return rc;
}
