/* WhatsApp dialects: how a file writes its heads (a pattern, its clock
 * markers, digits, line ends and attachment language), read from the
 * whole file in a first pass that also settles the day/month order, kept
 * in the chat's whatsapp_ fields, and used to write heads back. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"
#include "agent/kinds/chat-whatsapp.h"

/* --- Dialect: how a file writes its heads ---------------------------------- */

static void dialect_default(struct wa_dialect *d)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->pattern, "[DD/MM/YYYY, HH:mm:ss] ", sizeof("[DD/MM/YYYY, HH:mm:ss] "));
	memcpy(d->eol, "\n", sizeof("\n"));
	d->bracket = true;
}

/* The pattern for a head once the order and zero-padding are settled;
 * pad[0..2] day, month, hour: 2 when written with two digits. */
static int dialect_from_head(struct wa_dialect *d, const struct wa_head *h, int order, const unsigned pad[3])
{
	pb_buf_t b = {0};
	const char *day = pad[0] == 2 ? "DD" : "D", *mon = pad[1] == 2 ? "MM" : "M";
	const char *year = (order == WA_YMD ? h->nd[0] : h->nd[2]) == 4 ? "YYYY" : "YY";
	const char *f[3];
	int err = 0;

	f[0] = order == WA_YMD ? year : order == WA_DMY ? day : mon;
	f[1] = order == WA_YMD ? mon : order == WA_DMY ? mon : day;
	f[2] = order == WA_YMD ? day : year;
	if (h->bracket)
		err = pb__chat_buf_str(&b, "[");
	if (err == 0)
		err = pb__chat_buf_printf(&b, "%s%s%s%s%s%s", f[0], h->sep, f[1], h->sep, f[2], h->lit);
	if (err == 0 && h->clock >= 0 && pb__wa_clocks[h->clock].before)
		err = pb__chat_buf_str(&b, "a");
	if (err == 0)
		err = pb__chat_buf_printf(&b, "%s:mm%s", h->clock >= 0 ? (pad[2] == 2 ? "hh" : "h") : (pad[2] == 2 ? "HH" : "H"),
					  h->has_sec ? ":ss" : "");
	if (err == 0 && h->clock >= 0 && !pb__wa_clocks[h->clock].before)
		err = pb__chat_buf_printf(&b, "%sa", h->ampm_sp);
	if (err == 0)
		err = pb__chat_buf_str(&b, h->tail);
	if (err == 0 && b.len >= sizeof(d->pattern))
		err = PB_ETOOBIG;
	if (err == 0) {
		memcpy(d->pattern, b.data, b.len);
		d->pattern[b.len] = 0;
		d->bracket = h->bracket;
		d->arabic = h->arabic;
		if (h->clock >= 0) {
			snprintf(d->am, sizeof(d->am), "%s", pb__wa_clocks[h->clock].am);
			snprintf(d->pm, sizeof(d->pm), "%s", pb__wa_clocks[h->clock].pm);
		}
	}
	pb__chat_buf_clear(&b);
	return err;
}

/* A number of at least width digits, in the dialect's digits. */
static int put_num(pb_buf_t *out, const struct wa_dialect *d, int v, int width)
{
	char tmp[16];
	int n = snprintf(tmp, sizeof(tmp), "%0*d", width, v), k, err = 0;

	if (n < 0 || (size_t)n >= sizeof(tmp))
		return PB_EINVAL;
	if (!d->arabic)
		return pb__chat_buf_add(out, tmp, (size_t)n);
	for (k = 0; k < n && err == 0; k++) {
		char a[2] = {(char)0xd9, (char)(0xa0 + tmp[k] - '0')};

		err = pb__chat_buf_add(out, a, 2);
	}
	return err;
}

int pb__wa_render_head(const struct wa_dialect *d, const struct tm *tm, pb_buf_t *out)
{
	const char *p = d->pattern;
	int err = 0, h12 = tm->tm_hour % 12 == 0 ? 12 : tm->tm_hour % 12;

	while (*p && err == 0) {
		if (strncmp(p, "YYYY", 4) == 0) {
			err = put_num(out, d, tm->tm_year + 1900, 4);
			p += 4;
		} else if (strncmp(p, "YY", 2) == 0) {
			err = put_num(out, d, (tm->tm_year + 1900) % 100, 2);
			p += 2;
		} else if (*p == 'D' || *p == 'M' || *p == 'H' || *p == 'h') {
			int v = *p == 'D' ? tm->tm_mday : *p == 'M' ? tm->tm_mon + 1 : *p == 'H' ? tm->tm_hour : h12;
			bool two = p[1] == p[0];

			err = put_num(out, d, v, two ? 2 : 1);
			p += two ? 2 : 1;
		} else if (strncmp(p, "mm", 2) == 0 || strncmp(p, "ss", 2) == 0) {
			err = put_num(out, d, *p == 'm' ? tm->tm_min : tm->tm_sec, 2);
			p += 2;
		} else if (*p == 'a') {
			err = pb__chat_buf_str(out, tm->tm_hour < 12 ? d->am : d->pm);
			p++;
		} else {
			err = pb__chat_buf_add(out, p, 1);
			p++;
		}
	}
	return err;
}

/* The dialect a chat's frame records, or the default. */
void pb__wa_dialect_of_frame(const pb__cj_t *frame, struct wa_dialect *d)
{
	const char *p = frame ? pb__cj_get_str(frame, "whatsapp_format") : NULL, *v;
	size_t k;

	dialect_default(d);
	if (p == NULL || strlen(p) >= sizeof(d->pattern))
		return;
	memcpy(d->pattern, p, strlen(p) + 1); /* length checked above */
	d->bracket = p[0] == '[';
	if ((v = pb__cj_get_str(frame, "whatsapp_am")) != NULL)
		snprintf(d->am, sizeof(d->am), "%s", v);
	if ((v = pb__cj_get_str(frame, "whatsapp_pm")) != NULL)
		snprintf(d->pm, sizeof(d->pm), "%s", v);
	if ((v = pb__cj_get_str(frame, "whatsapp_eol")) != NULL && strcmp(v, "\r\n") == 0)
		memcpy(d->eol, "\r\n", sizeof("\r\n"));
	if ((v = pb__cj_get_str(frame, "whatsapp_digits")) != NULL && strcmp(v, "arabic") == 0)
		d->arabic = true;
	if ((v = pb__cj_get_str(frame, "whatsapp_lang")) != NULL)
		for (k = 0; k < WA_NLANGS; k++)
			if (strcmp(v, pb__wa_langs[k].code) == 0)
				d->lang = (int)k;
}

/* --- The first pass: the order and the dialect of a file ------------------ */

void pb__wa_scan_free(struct wa_scan *sc)
{
	free(sc->authors[0]);
	free(sc->authors[1]);
}

static void pad_note(unsigned *one, unsigned *two, unsigned v, unsigned nd)
{
	if (v < 10 && nd == 1)
		(*one)++;
	else if (v < 10 && nd == 2)
		(*two)++;
}

static int scan_line(struct wa_scan *sc, const char *line, size_t len, uint64_t lineno)
{
	struct wa_head h;
	size_t alen;
	unsigned y;
	int i;

	if (!pb__wa_parse_head(line, len, &h))
		return sc->heads == 0 && len > 0 && pb__wa_skip_marks(line, len, 0) < len ? PB_EDATA_FORMAT : 0;
	if (sc->heads++ == 0) {
		sc->first = h;
		snprintf(sc->first_line, sizeof(sc->first_line), "%.*s", (int)(len < 200 ? len : 200), line);
	}
	if (h.nd[0] == 4) {
		sc->ymd = true;
		pad_note(&sc->seen1[0], &sc->seen2[0], h.f[2], h.nd[2]);
		pad_note(&sc->seen1[1], &sc->seen2[1], h.f[1], h.nd[1]);
	} else {
		pad_note(&sc->raw1[0], &sc->raw2[0], h.f[0], h.nd[0]);
		pad_note(&sc->raw1[1], &sc->raw2[1], h.f[1], h.nd[1]);
		sc->padded = sc->padded || (h.f[0] < 10 && h.nd[0] == 2) || (h.f[1] < 10 && h.nd[1] == 2);
		if (h.f[0] > 12 && sc->dmy_line == 0)
			sc->dmy_line = lineno;
		if (h.f[1] > 12 && sc->mdy_line == 0)
			sc->mdy_line = lineno;
		y = h.nd[2] == 2 ? h.f[2] + 2000 : h.f[2];
		if (y * 10000 + h.f[1] * 100 + h.f[0] < sc->prev_dmy)
			sc->dmy_back = true;
		if (y * 10000 + h.f[0] * 100 + h.f[1] < sc->prev_mdy)
			sc->mdy_back = true;
		sc->prev_dmy = y * 10000 + h.f[1] * 100 + h.f[0];
		sc->prev_mdy = y * 10000 + h.f[0] * 100 + h.f[1];
		if (sc->amb_line == 0 && h.f[0] != h.f[1] && h.f[0] <= 12 && h.f[1] <= 12) {
			sc->amb_line = lineno;
			snprintf(sc->amb_text, sizeof(sc->amb_text), "%.*s", (int)(len < 80 ? len : 80), line);
		}
	}
	pad_note(&sc->seen1[2], &sc->seen2[2], h.hour, h.hour_nd);
	if (sc->group || !pb__wa_split_author(h.body, h.body_len, &alen))
		return 0;
	for (i = 0; i < 2; i++) {
		if (sc->authors[i] == NULL) {
			sc->authors[i] = strndup(h.body, alen);
			return sc->authors[i] ? 0 : PB_ENOMEM;
		}
		if (strlen(sc->authors[i]) == alen && memcmp(sc->authors[i], h.body, alen) == 0)
			return 0;
	}
	sc->group = true;
	return 0;
}

/* Day/month order from the whole file: a field above 12 settles it, else
 * the order in which the dates go forward, else zero-padding (WhatsApp's
 * month-first locales, US English and its kin, write M/D/YY, never 03/04);
 * forced (from --date-format) wins. why receives a sentence when the file
 * cannot be settled. */
int pb__wa_settle_order(struct wa_scan *sc, int forced, char *why, size_t cap)
{
	if (sc->ymd) {
		sc->order = WA_YMD;
		return 0;
	}
	if (forced == WA_DMY || forced == WA_MDY) {
		sc->order = forced;
		return 0;
	}
	if (sc->dmy_line != 0 && sc->mdy_line != 0)
		return pb__chat_fail(why, cap, PB_EDATA_FORMAT,
				     "line %llu has a first date field over 12 and line %llu a second one: the dates "
				     "mix two orders", (unsigned long long)sc->dmy_line, (unsigned long long)sc->mdy_line);
	if (sc->dmy_line != 0 || sc->mdy_line != 0) {
		sc->order = sc->dmy_line != 0 ? WA_DMY : WA_MDY;
		return 0;
	}
	if (sc->amb_line == 0 || sc->dmy_back != sc->mdy_back) {
		sc->order = sc->dmy_back ? WA_MDY : WA_DMY;
		return 0;
	}
	if (sc->padded) {
		sc->order = WA_DMY;
		return 0;
	}
	return pb__chat_fail(why, cap, PB_EDATA_FORMAT,
			     "line %llu (\"%s\") reads as day/month and as month/day, and no date in the file "
			     "settles which; give the order with --date-format DD/MM/YY or MM/DD/YY",
			     (unsigned long long)sc->amb_line, sc->amb_text);
}

/* The file's dialect once the order is settled. */
int pb__wa_scan_dialect(const struct wa_scan *sc, struct wa_dialect *d)
{
	unsigned pad[3], one[3], two[3], i;

	dialect_default(d);
	for (i = 0; i < 3; i++) {
		one[i] = sc->seen1[i];
		two[i] = sc->seen2[i];
	}
	if (sc->order == WA_DMY || sc->order == WA_MDY) {
		/* raw[0] is the first field: the day in D/M order, the month in M/D. */
		one[sc->order == WA_DMY ? 0 : 1] += sc->raw1[0];
		two[sc->order == WA_DMY ? 0 : 1] += sc->raw2[0];
		one[sc->order == WA_DMY ? 1 : 0] += sc->raw1[1];
		two[sc->order == WA_DMY ? 1 : 0] += sc->raw2[1];
	}
	for (i = 0; i < 3; i++)
		pad[i] = two[i] > one[i] ? 2 : one[i] > 0 ? 1 : 0;
	/* No day under 10: padded as the month is (locales pad both or
	 * neither); no hour under 10: 24-hour clocks pad, 12-hour ones not. */
	if (pad[0] == 0)
		pad[0] = pad[1] ? pad[1] : 1;
	if (pad[1] == 0)
		pad[1] = pad[0];
	if (pad[2] == 0)
		pad[2] = sc->first.clock < 0 ? 2 : 1;
	memcpy(d->eol, sc->crlf ? "\r\n" : "\n", sc->crlf ? sizeof("\r\n") : sizeof("\n"));
	d->lang = sc->lang;
	return dialect_from_head(d, &sc->first, sc->order, pad);
}

/* The language of the first attachment line, for attachments written
 * afresh. */
static int scan_lang(const char *line, size_t len)
{
	struct wa_head h;
	struct wa_msg m;
	size_t alen, took;
	int lang = -1;

	if (!pb__wa_parse_head(line, len, &h) || !pb__wa_split_author(h.body, h.body_len, &alen))
		return -1;
	memset(&m, 0, sizeof(m));
	if (h.body_len > alen + 2 && pb__wa_find_attachment(&m, h.body + alen + 2, h.body_len - alen - 2, &took, &lang) != 0)
		lang = -1;
	pb__wa_msg_clear(&m);
	return lang;
}

int pb__wa_scan_all(pb__chat_lines_t *r, struct wa_scan *sc, uint64_t *line_out)
{
	const char *line;
	size_t len;
	int rc, err, l;

	sc->lang = -1;
	while ((rc = pb__chat_lines_next(r, &line, &len)) == 1) {
		*line_out = r->lineno;
		if (r->lineno == 1)
			sc->crlf = r->crlf;
		if ((err = scan_line(sc, line, len, r->lineno)) != 0)
			return err;
		if (sc->lang < 0 && (l = scan_lang(line, len)) >= 0)
			sc->lang = l;
	}
	if (sc->lang < 0)
		sc->lang = 0;
	*line_out = r->lineno;
	if (rc < 0)
		return rc;
	return sc->heads == 0 ? PB_EDATA_FORMAT : 0;
}
