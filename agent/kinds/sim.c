/* SIM profiles: pySim-prog CSV (sim/profiles.csv, one profile a row), its
 * codec, the ICCID/IMSI rules of FORMATS.md and the on-card EF encodings. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peerback/nfc.h"
#include "agent/kinds/internal.h"
#include "agent/kinds/util.h"

#define SIM_PATH "sim/profiles.csv"
#define SIM_MAX_FILE (16u << 20)
#define SIM_MAX_ROWS 100000u

/* The known columns, in canonical order; other columns follow them. */
enum { C_ICCID, C_IMSI, C_MCC, C_MNC, C_MSISDN, C_SMSP, C_KI, C_OPC, C_ACC, C_PIN_ADM, C_PIN_ADM_HEX, C_OTHER };
static const char *const col_names[] = { "iccid", "imsi", "mcc", "mnc", "msisdn", "smsp",
					 "ki", "opc", "acc", "pin_adm", "pin_adm_hex" };

/* --- Rules ---------------------------------------------------------------- */

int pb_sim_luhn_digit(const char *s, size_t n)
{
	unsigned sum = 0;
	bool dbl = true;

	for (size_t i = n; i-- > 0;) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (dbl) {
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
		dbl = !dbl;
	}
	return (int)((10 - sum % 10) % 10);
}

bool pb_sim_luhn_ok(const char *digits)
{
	size_t n = digits != NULL ? strlen(digits) : 0;

	if (n < 2 || !pb__kinds_is_digits(digits, n))
		return false;
	return pb_sim_luhn_digit(digits, n - 1) == digits[n - 1] - '0';
}

bool pb_sim_iccid_ok(const char *iccid)
{
	size_t n = iccid != NULL ? strlen(iccid) : 0;

	return (n == 19 || n == 20) && pb_sim_luhn_ok(iccid);
}

bool pb_sim_imsi_ok(const char *imsi, const char *mcc, const char *mnc)
{
	size_t n = imsi != NULL ? strlen(imsi) : 0, a, b;

	if (n < 6 || n > 15 || !pb__kinds_is_digits(imsi, n))
		return false;
	a = mcc != NULL ? strlen(mcc) : 0;
	b = mnc != NULL ? strlen(mnc) : 0;
	if (a > 0 && (a != 3 || memcmp(imsi, mcc, 3) != 0))
		return false;
	if (b > 0 && (a == 0 || b < 2 || b > 3 || memcmp(imsi + 3, mnc, b) != 0))
		return false;
	return true;
}

int pb_sim_ef_iccid_encode(const char *iccid, uint8_t out[10])
{
	size_t n = iccid != NULL ? strlen(iccid) : 0;

	if (n == 0 || n > 20 || !pb__kinds_is_digits(iccid, n))
		return PB_EDATA_FIELD;
	for (size_t i = 0; i < 10; i++) {
		uint8_t lo = 2 * i < n ? (uint8_t)(iccid[2 * i] - '0') : 0xf;
		uint8_t hi = 2 * i + 1 < n ? (uint8_t)(iccid[2 * i + 1] - '0') : 0xf;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int pb_sim_ef_iccid_decode(const uint8_t *ef, size_t len, char *out, size_t cap)
{
	size_t n = 0;

	if (len != 10 || cap < 21)
		return PB_EINVAL;
	for (size_t i = 0; i < 2 * len; i++) {
		uint8_t d = i % 2 == 0 ? ef[i / 2] & 0xf : ef[i / 2] >> 4;

		if (d == 0xf) {
			/* Padding runs to the end. */
			for (size_t j = i + 1; j < 2 * len; j++)
				if ((j % 2 == 0 ? ef[j / 2] & 0xf : ef[j / 2] >> 4) != 0xf)
					return PB_EDATA_FIELD;
			break;
		}
		if (d > 9)
			return PB_EDATA_FIELD;
		out[n++] = (char)('0' + d);
	}
	out[n] = 0;
	return n > 0 ? 0 : PB_EDATA_FIELD;
}

int pb_sim_ef_imsi_encode(const char *imsi, uint8_t out[9])
{
	size_t n = imsi != NULL ? strlen(imsi) : 0;
	uint8_t nib[16];

	if (n < 6 || n > 15 || !pb__kinds_is_digits(imsi, n))
		return PB_EDATA_FIELD;
	nib[0] = n % 2 == 1 ? 9 : 1;
	for (size_t i = 0; i < n; i++)
		nib[i + 1] = (uint8_t)(imsi[i] - '0');
	for (size_t i = n + 1; i < 16; i++)
		nib[i] = 0xf;
	out[0] = (uint8_t)((n + 2) / 2);
	for (size_t i = 0; i < 8; i++)
		out[1 + i] = (uint8_t)(nib[2 * i + 1] << 4 | nib[2 * i]);
	return 0;
}

int pb_sim_ef_imsi_decode(const uint8_t *ef, size_t len, char *out, size_t cap)
{
	size_t nbytes, n = 0;
	uint8_t parity;

	if (len != 9 || cap < 16)
		return PB_EINVAL;
	nbytes = ef[0];
	if (nbytes < 4 || nbytes > 8)
		return PB_EDATA_FIELD;
	parity = ef[1] & 0xf;
	if (parity != 9 && parity != 1)
		return PB_EDATA_FIELD;
	for (size_t i = 1; i < 2 * nbytes; i++) {
		uint8_t d = i % 2 == 0 ? ef[1 + i / 2] & 0xf : ef[1 + i / 2] >> 4;

		if (d == 0xf && i == 2 * nbytes - 1 && parity == 1)
			break;
		if (d > 9)
			return PB_EDATA_FIELD;
		out[n++] = (char)('0' + d);
	}
	out[n] = 0;
	if ((n % 2 == 1) != (parity == 9) || n < 6 || n > 15)
		return PB_EDATA_FIELD;
	for (size_t i = 1 + nbytes; i < len; i++)
		if (ef[i] != 0xff)
			return PB_EDATA_FIELD;
	return 0;
}

/* --- The table ------------------------------------------------------------ */

typedef struct sim_header_s {
	size_t n;
	int id[PB__CSV_MAX_COLS];
	char name[PB__CSV_MAX_COLS][PB__CSV_MAX_FIELD + 1];
	size_t order[PB__CSV_MAX_COLS]; /* canonical position -> source column */
} sim_header_t;

static int header_parse(const char *line, size_t n, sim_header_t *h, const char *file, unsigned lineno,
			char *err, size_t cap)
{
	pb__csv_row_t *row = malloc(sizeof(*row));
	size_t col;
	bool seen_iccid = false, seen_imsi = false;
	int rc;

	if (row == NULL)
		return PB_ENOMEM;
	memset(h, 0, sizeof(*h));
	if ((rc = pb__kinds_csv_split(line, n, row, &col)) != 0) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s:%u: header column %zu is malformed or too long",
				    file, lineno, col);
		goto out_free;
	}
	h->n = row->n;
	for (size_t i = 0; i < row->n; i++) {
		char *name = h->name[i];
		size_t len = strlen(row->v[i]);

		for (size_t j = 0; j <= len; j++)
			name[j] = (char)tolower((unsigned char)row->v[i][j]);
		if (strcmp(name, "adm1") == 0)
			memcpy(name, "pin_adm", sizeof("pin_adm"));
		if (len == 0 || len > 64) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s:%u: header column %zu has no usable name",
					    file, lineno, i + 1);
			goto out_free;
		}
		for (size_t j = 0; j < len; j++) {
			if (!isalnum((unsigned char)name[j]) && name[j] != '_') {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT,
						    "%s:%u: header column %zu is not a column name (is this a pySim CSV?)",
						    file, lineno, i + 1);
				goto out_free;
			}
		}
		h->id[i] = C_OTHER;
		for (int k = 0; k < C_OTHER; k++)
			if (strcmp(name, col_names[k]) == 0)
				h->id[i] = k;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(h->name[j], name) == 0) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s:%u: column '%s' appears twice", file,
						    lineno, name);
				goto out_free;
			}
		}
		seen_iccid |= h->id[i] == C_ICCID;
		seen_imsi |= h->id[i] == C_IMSI;
	}
	if (!seen_iccid || !seen_imsi) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s:%u: the header lacks the required column '%s'", file,
				    lineno, !seen_iccid ? "iccid" : "imsi");
		goto out_free;
	}
	/* Canonical order: known columns first in their fixed order, then the
	 * others as they came. */
	for (size_t i = 0; i < h->n; i++)
		h->order[i] = i;
	for (size_t i = 1; i < h->n; i++) {
		size_t v = h->order[i], j = i;
		while (j > 0 && h->id[h->order[j - 1]] > h->id[v]) {
			h->order[j] = h->order[j - 1];
			j--;
		}
		h->order[j] = v;
	}
	rc = 0;
out_free:
	sodium_memzero(row, sizeof(*row));
	free(row);
	return rc;
}

static const char *value_of(const sim_header_t *h, const pb__csv_row_t *row, int id)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->id[i] == id)
			return row->v[i];
	return "";
}

static bool hex_len(const char *v, size_t want)
{
	size_t n = strlen(v);

	return n == want && pb__kinds_is_hex(v, n);
}

/* Checks one row against the rules of FORMATS.md. */
static int row_check(const sim_header_t *h, const pb__csv_row_t *row, const char *file, unsigned lineno, char *err,
		     size_t cap)
{
	const char *mcc = value_of(h, row, C_MCC), *mnc = value_of(h, row, C_MNC);

	if (row->n != h->n)
		return pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s:%u: the row has %zu fields but the header has %zu",
				      file, lineno, row->n, h->n);
	for (size_t i = 0; i < h->n; i++) {
		const char *v = row->v[i], *name = h->name[i];
		size_t n = strlen(v);

		for (size_t j = 0; j < n; j++)
			if ((unsigned char)v[j] < 0x20 || v[j] == 0x7f || v[j] == ',' || v[j] == '"')
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD,
						      "%s:%u: column '%s' holds a control character, comma or quote",
						      file, lineno, name);
		if (n == 0) {
			if (h->id[i] == C_ICCID || h->id[i] == C_IMSI)
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD, "%s:%u: the %s is empty", file, lineno,
						      h->id[i] == C_ICCID ? "ICCID" : "IMSI");
			continue;
		}
		switch (h->id[i]) {
		case C_ICCID:
			if ((n != 19 && n != 20) || !pb__kinds_is_digits(v, n))
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD,
						      "%s:%u: ICCID '%s' is not 19 or 20 digits", file, lineno, v);
			if (!pb_sim_luhn_ok(v))
				return pb__kinds_errf(err, cap, PB_EDATA_CHECKSUM,
						      "%s:%u: ICCID %s fails its Luhn check (the last digit should be %d)",
						      file, lineno, v, pb_sim_luhn_digit(v, n - 1));
			break;
		case C_IMSI:
			if (n < 6 || n > 15 || !pb__kinds_is_digits(v, n))
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD,
						      "%s:%u: IMSI '%s' is not 6 to 15 digits (MCC, MNC, MSIN)", file,
						      lineno, v);
			if (!pb_sim_imsi_ok(v, mcc, mnc))
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD,
						      "%s:%u: IMSI %s does not start with MCC %s and MNC %s", file,
						      lineno, v, mcc, mnc);
			break;
		case C_MCC:
			if (n != 3 || !pb__kinds_is_digits(v, n))
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD, "%s:%u: MCC '%s' is not 3 digits",
						      file, lineno, v);
			break;
		case C_MNC:
			if (n < 2 || n > 3 || !pb__kinds_is_digits(v, n))
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD, "%s:%u: MNC '%s' is not 2 or 3 digits",
						      file, lineno, v);
			break;
		case C_MSISDN: {
			const char *d = v[0] == '+' ? v + 1 : v;
			size_t dn = strlen(d);
			if (dn == 0 || dn > 20 || !pb__kinds_is_digits(d, dn))
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD,
						      "%s:%u: MSISDN '%s' is not up to 20 digits with an optional +",
						      file, lineno, v);
			break;
		}
		case C_SMSP:
			if (n % 2 != 0 || !pb__kinds_is_hex(v, n))
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD, "%s:%u: SMSP is not whole hex bytes",
						      file, lineno);
			break;
		case C_KI:
		case C_OPC:
			if (!hex_len(v, 32))
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD, "%s:%u: %s is not 32 hex digits", file,
						      lineno, h->id[i] == C_KI ? "Ki" : "OPc");
			break;
		case C_ACC:
			if (!hex_len(v, 4))
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD, "%s:%u: ACC '%s' is not 4 hex digits",
						      file, lineno, v);
			break;
		case C_PIN_ADM:
			if (n > 8)
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD,
						      "%s:%u: ADM PIN is longer than 8 characters", file, lineno);
			break;
		case C_PIN_ADM_HEX:
			if (!hex_len(v, 16))
				return pb__kinds_errf(err, cap, PB_EDATA_FIELD,
						      "%s:%u: pin_adm_hex is not 16 hex digits", file, lineno);
			break;
		default:
			break;
		}
	}
	return 0;
}

/* Appends the header (row NULL) or a row in canonical column order. */
static int render_line(const sim_header_t *h, const pb__csv_row_t *row, pb_buf_t *out)
{
	int rc;

	for (size_t k = 0; k < h->n; k++) {
		size_t i = h->order[k];
		const char *v = row != NULL ? row->v[i] : h->name[i];

		if (k > 0 && (rc = pb_buf_append(out, ",", 1)) != 0)
			return rc;
		if ((rc = pb_buf_append(out, v, strlen(v))) != 0)
			return rc;
	}
	return pb_buf_append(out, "\n", 1);
}

static bool blank(const char *line, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (line[i] != ' ' && line[i] != '\t')
			return false;
	return true;
}

/* One validated row of a parsed file. */
typedef struct sim_row_cb_s {
	int (*fn)(void *arg, const sim_header_t *h, const pb__csv_row_t *row, unsigned lineno, size_t start,
		  size_t end);
	void *arg;
} sim_row_cb_t;

/* Parses and validates a whole CSV; calls cb for every row with the byte
 * range [start, end) of the row and the blank lines after it. The header's
 * range is [0, *header_end). */
static int table_walk(const uint8_t *buf, size_t len, const char *file, sim_header_t *h, size_t *header_end,
		      sim_row_cb_t cb, char *err, size_t cap)
{
	pb__csv_row_t *row;
	pb__kinds_lines_t it;
	const char *line;
	size_t n, col, start = 0, rows = 0;
	unsigned row_lineno = 0;
	bool have_header = false, have_row = false;
	int rc = 0;

	if (len > SIM_MAX_FILE)
		return pb__kinds_errf(err, cap, PB_ETOOBIG, "%s: file is larger than %u bytes", file, SIM_MAX_FILE);
	row = malloc(sizeof(*row));
	if (row == NULL)
		return PB_ENOMEM;
	pb__kinds_lines_init(&it, buf, len);
	while (pb__kinds_lines_next(&it, &line, &n)) {
		size_t line_start = (size_t)((const uint8_t *)line - buf);

		if (n > PB__CSV_MAX_LINE) {
			rc = pb__kinds_errf(err, cap, PB_ETOOBIG, "%s:%u: line is longer than %u bytes", file,
					    it.lineno, PB__CSV_MAX_LINE);
			goto out_free;
		}
		if (blank(line, n)) {
			if (!have_header) {
				rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s:%u: blank line before the header row",
						    file, it.lineno);
				goto out_free;
			}
			continue; /* belongs to the range before it */
		}
		if (!have_header) {
			if ((rc = header_parse(line, n, h, file, it.lineno, err, cap)) != 0)
				goto out_free;
			have_header = true;
			*header_end = it.pos;
			continue;
		}
		if (have_row) {
			if ((rc = cb.fn(cb.arg, h, row, row_lineno, start, line_start)) != 0)
				goto out_free;
		} else {
			*header_end = line_start;
		}
		if (++rows > SIM_MAX_ROWS) {
			rc = pb__kinds_errf(err, cap, PB_ETOOBIG, "%s:%u: more than %u profiles", file, it.lineno,
					    SIM_MAX_ROWS);
			goto out_free;
		}
		if (pb__kinds_csv_split(line, n, row, &col) != 0) {
			rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s:%u: field %zu is malformed or too long", file,
					    it.lineno, col);
			goto out_free;
		}
		if ((rc = row_check(h, row, file, it.lineno, err, cap)) != 0)
			goto out_free;
		have_row = true;
		row_lineno = it.lineno;
		start = line_start;
	}
	if (!have_header) {
		rc = pb__kinds_errf(err, cap, PB_EDATA_FORMAT, "%s: no header row (iccid,imsi,...)", file);
		goto out_free;
	}
	if (!have_row)
		*header_end = len;
	else if ((rc = cb.fn(cb.arg, h, row, row_lineno, start, len)) != 0)
		goto out_free;
out_free:
	sodium_memzero(row, sizeof(*row));
	free(row);
	return rc;
}

/* --- Canonical form --------------------------------------------------------- */

typedef struct canon_ctx_s {
	pb_buf_t *out;
	char (*iccids)[21];
	size_t n, cap;
	const char *file;
	char *err;
	size_t errcap;
} canon_ctx_t;

static int check_dup(canon_ctx_t *c, const char *iccid, unsigned lineno)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->iccids[i], iccid) == 0)
			return pb__kinds_errf(c->err, c->errcap, PB_EEXISTS, "%s:%u: ICCID %s appears twice", c->file,
					      lineno, iccid);
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		char(*v)[21] = realloc(c->iccids, cap * sizeof(*v));
		if (v == NULL)
			return PB_ENOMEM;
		c->iccids = v;
		c->cap = cap;
	}
	memcpy(c->iccids[c->n++], iccid, strlen(iccid) + 1);
	return 0;
}

static int canon_row(void *arg, const sim_header_t *h, const pb__csv_row_t *row, unsigned lineno, size_t start,
		     size_t end)
{
	canon_ctx_t *c = arg;
	int rc;

	if ((rc = check_dup(c, value_of(h, row, C_ICCID), lineno)) != 0)
		return rc;
	if (c->out->len == 0 && (rc = render_line(h, NULL, c->out)) != 0)
		return rc;
	return render_line(h, row, c->out);
}

int pb_sim_csv_canonical(const uint8_t *buf, size_t len, pb_buf_t *out, char *errbuf, size_t errcap)
{
	canon_ctx_t c = { out, NULL, 0, 0, "input", errbuf, errcap };
	sim_header_t *h = malloc(sizeof(*h));
	size_t hend;
	int rc;

	if (h == NULL)
		return PB_ENOMEM;
	rc = table_walk(buf, len, "input", h, &hend, (sim_row_cb_t){ canon_row, &c }, errbuf, errcap);
	if (rc == 0 && out->len == 0)
		rc = render_line(h, NULL, out);
	free(c.iccids);
	free(h);
	return rc;
}

/* --- Codec ---------------------------------------------------------------- */

static bool sim_matches(const char *relpath)
{
	return relpath != NULL && strcmp(relpath, SIM_PATH) == 0;
}

typedef struct split_ctx_s {
	const char *relpath;
	const uint8_t *buf;
	size_t header_end;
	uint64_t seq;
	pb_item_cb cb;
	void *arg;
	canon_ctx_t dup;
} split_ctx_t;

static int split_row(void *arg, const sim_header_t *h, const pb__csv_row_t *row, unsigned lineno, size_t start,
		     size_t end)
{
	split_ctx_t *s = arg;
	const char *iccid = value_of(h, row, C_ICCID);
	char id[32];
	uint8_t *data;
	size_t len;
	pb_item_t item = { 0 };
	int n, rc;

	if ((rc = check_dup(&s->dup, iccid, lineno)) != 0)
		return rc;
	n = snprintf(id, sizeof(id), "sim/%s", iccid);
	if (n < 0 || (size_t)n >= sizeof(id))
		return PB_ETOOBIG;
	len = s->header_end + (end - start);
	data = malloc(len);
	if (data == NULL)
		return PB_ENOMEM;
	memcpy(data, s->buf, s->header_end);
	memcpy(data + s->header_end, s->buf + start, end - start);
	item.kind = PB_KIND_SIM;
	item.id = id;
	item.path = s->relpath;
	item.seq = ++s->seq;
	item.data = data;
	item.len = len;
	item.size = len;
	rc = s->cb(s->arg, &item);
	sodium_memzero(data, len);
	free(data);
	return rc;
}

/* The header range is only known once the first row is seen, so rows are
 * gathered in a first pass and handed out in a second. */
typedef struct range_s {
	size_t start, end;
	unsigned lineno;
} range_t;

typedef struct ranges_s {
	range_t *v;
	size_t n, cap;
} ranges_t;

static int collect_row(void *arg, const sim_header_t *h, const pb__csv_row_t *row, unsigned lineno, size_t start,
		       size_t end)
{
	ranges_t *r = arg;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		range_t *v = realloc(r->v, cap * sizeof(*v));
		if (v == NULL)
			return PB_ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = (range_t){ start, end, lineno };
	return 0;
}

static int sim_split(const char *relpath, const uint8_t *buf, size_t len, pb_item_cb cb, void *arg)
{
	split_ctx_t s = { relpath, buf, 0, 0, cb, arg, { NULL, NULL, 0, 0, relpath, NULL, 0 } };
	ranges_t r = { 0 };
	char why[256] = "";
	sim_header_t *h = malloc(sizeof(*h));
	pb__csv_row_t *row = malloc(sizeof(*row));
	int rc;

	if (h == NULL || row == NULL) {
		rc = PB_ENOMEM;
		goto out_free;
	}
	if ((rc = table_walk(buf, len, relpath, h, &s.header_end, (sim_row_cb_t){ collect_row, &r }, why,
			     sizeof(why))) != 0) {
		pb__kinds_split_why(0, why);
		goto out_free;
	}
	for (size_t i = 0; i < r.n; i++) {
		const char *line = (const char *)buf + r.v[i].start;
		size_t n = 0, col;

		while (r.v[i].start + n < r.v[i].end && line[n] != '\n' && line[n] != '\r')
			n++;
		if ((rc = pb__kinds_csv_split(line, n, row, &col)) != 0)
			goto out_free;
		if ((rc = split_row(&s, h, row, r.v[i].lineno, r.v[i].start, r.v[i].end)) != 0)
			goto out_free;
	}
out_free:
	if (row != NULL)
		sodium_memzero(row, sizeof(*row));
	free(row);
	free(h);
	free(r.v);
	free(s.dup.iccids);
	return rc;
}

/* The bytes of an item: its header line (with blank lines after it) and its
 * row. */
static int item_parts(const pb_item_t *it, size_t *hlen)
{
	const uint8_t *nl;
	size_t i;

	if (it->data == NULL || it->len == 0)
		return PB_EDATA_FORMAT;
	nl = memchr(it->data, '\n', it->len);
	if (nl == NULL)
		return PB_EDATA_FORMAT;
	i = (size_t)(nl - it->data) + 1;
	/* Blank lines after the header belong to it. */
	for (;;) {
		size_t j = i;
		while (j < it->len && (it->data[j] == ' ' || it->data[j] == '\t' || it->data[j] == '\r'))
			j++;
		if (j < it->len && it->data[j] == '\n')
			i = j + 1;
		else
			break;
	}
	*hlen = i;
	return i < it->len ? 0 : PB_EDATA_FORMAT;
}

static int join_union(const pb_item_t *items, size_t n, pb_buf_t *out);

static int sim_join(const char *relpath, const pb_item_t *items, size_t n, pb_buf_t *out)
{
	size_t h0, hi;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = item_parts(&items[0], &h0)) != 0)
		return rc;
	for (size_t i = 1; i < n; i++) {
		if ((rc = item_parts(&items[i], &hi)) != 0)
			return rc;
		if (hi != h0 || memcmp(items[i].data, items[0].data, h0) != 0)
			return join_union(items, n, out);
	}
	if ((rc = pb_buf_append(out, items[0].data, h0)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (out->len > 0 && out->data[out->len - 1] != '\n' && (rc = pb_buf_append(out, "\n", 1)) != 0)
			return rc;
		if ((rc = pb_buf_append(out, items[i].data + h0, items[i].len - h0)) != 0)
			return rc;
	}
	return 0;
}

/* Items with different headers: every row is rewritten under the union of
 * the columns, in canonical order. */
static int join_union(const pb_item_t *items, size_t n, pb_buf_t *out)
{
	sim_header_t *u = calloc(1, sizeof(*u)), *h = malloc(sizeof(*h));
	pb__csv_row_t *row = malloc(sizeof(*row)), *urow = malloc(sizeof(*urow));
	int rc = 0;

	if (u == NULL || h == NULL || row == NULL || urow == NULL) {
		rc = PB_ENOMEM;
		goto out_free;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			const char *line = (const char *)items[i].data, *nl;
			size_t hlen, col, rl;

			if ((rc = item_parts(&items[i], &hlen)) != 0)
				goto out_free;
			nl = memchr(line, '\n', hlen);
			if ((rc = header_parse(line, (size_t)(nl - line) - (nl > line && nl[-1] == '\r'), h, "item", 1,
					       NULL, 0)) != 0)
				goto out_free;
			if (pass == 0) {
				for (size_t c = 0; c < h->n; c++) {
					size_t k;
					for (k = 0; k < u->n; k++)
						if (strcmp(u->name[k], h->name[c]) == 0)
							break;
					if (k < u->n)
						continue;
					if (u->n >= PB__CSV_MAX_COLS) {
						rc = PB_ETOOBIG;
						goto out_free;
					}
					memcpy(u->name[u->n], h->name[c], sizeof(h->name[c]));
					u->id[u->n] = h->id[c];
					u->n++;
				}
				continue;
			}
			line += hlen;
			rl = 0;
			while (hlen + rl < items[i].len && line[rl] != '\n' && line[rl] != '\r')
				rl++;
			if ((rc = pb__kinds_csv_split(line, rl, row, &col)) != 0 || row->n != h->n) {
				rc = PB_EDATA_FORMAT;
				goto out_free;
			}
			urow->n = u->n;
			for (size_t k = 0; k < u->n; k++) {
				urow->v[k][0] = 0;
				for (size_t c = 0; c < h->n; c++)
					if (strcmp(u->name[k], h->name[c]) == 0)
						memcpy(urow->v[k], row->v[c], sizeof(row->v[c]));
			}
			if ((rc = render_line(u, urow, out)) != 0)
				goto out_free;
		}
		if (pass == 0) {
			for (size_t i = 0; i < u->n; i++)
				u->order[i] = i;
			for (size_t i = 1; i < u->n; i++) {
				size_t v = u->order[i], j = i;
				while (j > 0 && u->id[u->order[j - 1]] > u->id[v]) {
					u->order[j] = u->order[j - 1];
					j--;
				}
				u->order[j] = v;
			}
			if ((rc = render_line(u, NULL, out)) != 0)
				goto out_free;
		}
	}
out_free:
	if (row != NULL)
		sodium_memzero(row, sizeof(*row));
	if (urow != NULL)
		sodium_memzero(urow, sizeof(*urow));
	free(u);
	free(h);
	free(row);
	free(urow);
	return rc;
}

const pb_codec_t pb__codec_sim_csv = {
	.name = "pysim-csv",
	.kind = PB_KIND_SIM,
	.matches = sim_matches,
	.split = sim_split,
	.join = sim_join,
};

/* --- Import, export, generator -------------------------------------------- */

typedef struct import_ctx_s {
	pb_device_writer_t *w;
	canon_ctx_t dup;
	uint64_t seq;
	pb_buf_t line;
} import_ctx_t;

static int import_row(void *arg, const sim_header_t *h, const pb__csv_row_t *row, unsigned lineno, size_t start,
		      size_t end)
{
	import_ctx_t *c = arg;
	const char *iccid = value_of(h, row, C_ICCID);
	pb_item_t item = { 0 };
	char id[32];
	int n, rc;

	if ((rc = check_dup(&c->dup, iccid, lineno)) != 0)
		return rc;
	n = snprintf(id, sizeof(id), "sim/%s", iccid);
	if (n < 0 || (size_t)n >= sizeof(id))
		return PB_ETOOBIG;
	c->line.len = 0;
	if ((rc = render_line(h, NULL, &c->line)) != 0 || (rc = render_line(h, row, &c->line)) != 0)
		return rc;
	item.kind = PB_KIND_SIM;
	item.id = id;
	item.path = SIM_PATH;
	/* New profiles go after the ones already in the file. */
	item.seq = ((uint64_t)1 << 32) + c->seq++;
	item.data = c->line.data;
	item.len = c->line.len;
	item.size = c->line.len;
	return pb_device_writer_add(c->w, &item);
}

int pb__import_sim(const char *device_dir, const char *const *files, size_t n, char *errbuf, size_t errcap)
{
	import_ctx_t c = { 0 };
	sim_header_t *h = malloc(sizeof(*h));
	int rc;

	if (h == NULL)
		return PB_ENOMEM;
	if ((rc = pb_device_writer_open(device_dir, &c.w)) != 0)
		goto out_free;
	c.dup.err = errbuf;
	c.dup.errcap = errcap;
	for (size_t i = 0; i < n; i++) {
		uint8_t *buf;
		size_t len, hend;

		rc = pb__kinds_read_file(files[i], SIM_MAX_FILE, &buf, &len);
		if (rc != 0) {
			rc = pb__kinds_errf(errbuf, errcap, rc, "%s: %s", files[i], pb_strerror(rc));
			goto out_free;
		}
		/* ICCIDs must be unique within a file; a later file may replace
		 * a profile of an earlier one. */
		c.dup.n = 0;
		c.dup.file = files[i];
		rc = table_walk(buf, len, files[i], h, &hend, (sim_row_cb_t){ import_row, &c }, errbuf, errcap);
		sodium_memzero(buf, len);
		free(buf);
		if (rc != 0)
			goto out_free;
	}
	if ((rc = pb_device_writer_commit(c.w)) != 0)
		rc = pb__kinds_errf(errbuf, errcap, rc, "%s: cannot write the SIM profiles: %s", device_dir,
				    pb_strerror(rc));
out_free:
	pb_device_writer_free(c.w);
	pb_buf_free(&c.line);
	free(c.dup.iccids);
	free(h);
	return rc;
}

typedef struct export_ctx_s {
	const char *out_dir;
	bool ef;
	pb_buf_t file;
} export_ctx_t;

static int export_item(void *arg, const pb_item_t *item)
{
	export_ctx_t *c = arg;
	pb__csv_row_t *row;
	sim_header_t *h;
	char path[4096], iccid[21], imsi[16];
	uint8_t ef_iccid[10], ef_imsi[9];
	char hex_iccid[21], hex_imsi[19];
	size_t hlen, col, rl = 0;
	const char *line;
	pb_buf_t out = { 0 };
	int n, rc;

	if (!c->ef) {
		if (c->file.len == 0)
			return pb_buf_append(&c->file, item->data, item->len);
		if ((rc = item_parts(item, &hlen)) != 0)
			return rc;
		return pb_buf_append(&c->file, item->data + hlen, item->len - hlen);
	}
	h = malloc(sizeof(*h));
	row = malloc(sizeof(*row));
	if (h == NULL || row == NULL) {
		rc = PB_ENOMEM;
		goto out_free;
	}
	if ((rc = item_parts(item, &hlen)) != 0)
		goto out_free;
	line = (const char *)item->data;
	while (line[rl] != '\n' && line[rl] != '\r')
		rl++;
	if ((rc = header_parse(line, rl, h, item->path, 1, NULL, 0)) != 0)
		goto out_free;
	line += hlen;
	for (rl = 0; hlen + rl < item->len && line[rl] != '\n' && line[rl] != '\r'; rl++)
		;
	if ((rc = pb__kinds_csv_split(line, rl, row, &col)) != 0)
		goto out_free;
	n = snprintf(iccid, sizeof(iccid), "%s", value_of(h, row, C_ICCID));
	if (n < 0 || (size_t)n >= sizeof(iccid)) {
		rc = PB_EDATA_FIELD;
		goto out_free;
	}
	n = snprintf(imsi, sizeof(imsi), "%s", value_of(h, row, C_IMSI));
	if (n < 0 || (size_t)n >= sizeof(imsi)) {
		rc = PB_EDATA_FIELD;
		goto out_free;
	}
	if ((rc = pb_sim_ef_iccid_encode(iccid, ef_iccid)) != 0 || (rc = pb_sim_ef_imsi_encode(imsi, ef_imsi)) != 0)
		goto out_free;
	for (size_t i = 0; i < 10; i++) {
		/* EF dumps are written in lowercase, as card tools show them. */
		static const char d[] = "0123456789abcdef";
		hex_iccid[2 * i] = d[ef_iccid[i] >> 4];
		hex_iccid[2 * i + 1] = d[ef_iccid[i] & 15];
		if (i < 9) {
			hex_imsi[2 * i] = d[ef_imsi[i] >> 4];
			hex_imsi[2 * i + 1] = d[ef_imsi[i] & 15];
		}
	}
	hex_iccid[20] = 0;
	hex_imsi[18] = 0;
	n = snprintf(path, sizeof(path), "%s/%s.ef", c->out_dir, iccid);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		rc = PB_ETOOBIG;
		goto out_free;
	}
	if ((rc = pb_buf_append(&out, "EF.ICCID: ", 10)) != 0 || (rc = pb_buf_append(&out, hex_iccid, 20)) != 0 ||
	    (rc = pb_buf_append(&out, "\nEF.IMSI: ", 10)) != 0 || (rc = pb_buf_append(&out, hex_imsi, 18)) != 0 ||
	    (rc = pb_buf_append(&out, "\n", 1)) != 0)
		goto out_free;
	rc = pb__kinds_write_atomic(path, out.data, out.len);
out_free:
	pb_buf_free(&out);
	if (row != NULL)
		sodium_memzero(row, sizeof(*row));
	free(row);
	free(h);
	return rc;
}

int pb__export_sim(const char *device_dir, const char *format, const char *out_dir, char *errbuf, size_t errcap)
{
	export_ctx_t c = { out_dir, false, { 0 } };
	char bad[256], path[4096];
	int rc;

	if (format == NULL || strcmp(format, "csv") == 0 || strcmp(format, "pysim") == 0 ||
	    strcmp(format, "pysim-csv") == 0)
		c.ef = false;
	else if (strcmp(format, "ef") == 0)
		c.ef = true;
	else
		return pb__kinds_errf(errbuf, errcap, PB_EUNSUPPORTED,
				      "unknown SIM export format '%s' (use csv or ef)", format);
	if ((rc = pb__kinds_mkdirs(out_dir)) != 0)
		return pb__kinds_errf(errbuf, errcap, rc, "%s: %s", out_dir, pb_strerror(rc));
	rc = pb_device_scan(device_dir, 1u << PB_KIND_SIM, export_item, &c, bad, sizeof(bad));
	if (rc == 0 && !c.ef && c.file.len > 0) {
		if ((rc = pb__kinds_join(path, sizeof(path), out_dir, "profiles.csv")) == 0)
			rc = pb__kinds_write_atomic(path, c.file.data, c.file.len);
	}
	if (rc != 0)
		rc = pb__kinds_errf(errbuf, errcap, rc, "%s: %s", bad[0] ? bad : out_dir, pb_strerror(rc));
	pb_buf_free(&c.file);
	return rc;
}

static void rand_digits(pb_gen_rng_t *rng, char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (char)('0' + pb__gen_rng_below(rng, 10));
	out[n] = 0;
}

static void rand_hex(pb_gen_rng_t *rng, char *out, size_t bytes)
{
	uint8_t b[32];

	pb__gen_rng_bytes(rng, b, bytes);
	pb__kinds_hex_encode(b, bytes, out);
}

int pb__gen_sim(const char *device_dir, uint64_t seed, pb_gen_size_t size)
{
	static const struct {
		const char *mcc, *mnc, *iin, *cc;
	} nets[] = {
		{ "262", "01", "894901", "49" }, { "234", "15", "894410", "44" }, { "310", "260", "890126", "1" },
		{ "208", "01", "893301", "33" }, { "228", "06", "894106", "41" }, { "001", "01", "899999", "1" },
	};
	static const char header[] = "iccid,imsi,mcc,mnc,msisdn,smsp,ki,opc,acc,pin_adm\n";
	unsigned count = size == PB_GEN_SMALL ? 3 : size == PB_GEN_STANDARD ? 8 : 40;
	pb_device_writer_t *w;
	pb_gen_rng_t rng;
	pb_buf_t line = { 0 };
	int rc;

	pb__gen_rng_init(&rng, seed, "sim");
	if ((rc = pb_device_writer_open(device_dir, &w)) != 0)
		return rc;
	for (unsigned i = 0; i < count; i++) {
		unsigned k = pb__gen_rng_below(&rng, sizeof(nets) / sizeof(nets[0]));
		char iccid[21], imsi[16], msisdn[16], ki[33], opc[33], pin[9], id[32], row[512];
		size_t pre = strlen(nets[k].iin), ml = 3 + strlen(nets[k].mnc);
		pb_item_t item = { 0 };
		int n;

		memcpy(iccid, nets[k].iin, pre);
		rand_digits(&rng, iccid + pre, 18 - pre);
		iccid[18] = (char)('0' + pb_sim_luhn_digit(iccid, 18));
		iccid[19] = 0;
		memcpy(imsi, nets[k].mcc, 3);
		memcpy(imsi + 3, nets[k].mnc, strlen(nets[k].mnc));
		rand_digits(&rng, imsi + ml, 15 - ml);
		rand_digits(&rng, msisdn, 10);
		rand_hex(&rng, ki, 16);
		rand_hex(&rng, opc, 16);
		rand_digits(&rng, pin, 8);
		n = snprintf(row, sizeof(row),
			     "%s%s,%s,%s,%s,+%s%s,e1ffffffffffffffffffffffff0581005155f5ffffffffffff000000,%s,%s,%04x,%s\n",
			     header, iccid, imsi, nets[k].mcc, nets[k].mnc, nets[k].cc, msisdn, ki, opc,
			     1u << pb__gen_rng_below(&rng, 10), pin);
		if (n < 0 || (size_t)n >= sizeof(row)) {
			rc = PB_ETOOBIG;
			goto out_free;
		}
		n = snprintf(id, sizeof(id), "sim/%s", iccid);
		if (n < 0 || (size_t)n >= sizeof(id)) {
			rc = PB_ETOOBIG;
			goto out_free;
		}
		item.kind = PB_KIND_SIM;
		item.id = id;
		item.path = SIM_PATH;
		item.seq = i + 1;
		item.data = (const uint8_t *)row;
		item.len = strlen(row);
		rc = pb_device_writer_add(w, &item);
		sodium_memzero(row, sizeof(row));
		sodium_memzero(ki, sizeof(ki));
		sodium_memzero(opc, sizeof(opc));
		if (rc != 0)
			goto out_free;
	}
	rc = pb_device_writer_commit(w);
out_free:
	pb_buf_free(&line);
	pb_device_writer_free(w);
	return rc;
}
