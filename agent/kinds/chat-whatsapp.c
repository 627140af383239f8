/* WhatsApp ".txt" chat exports: import into the canonical chat form and
 * export from it.
 *
 * Android: "31/01/24, 14:05 - Alice: text", iOS: "[31/01/2024, 2:05:09 PM]
 * Alice: text", in every locale's dialect (date order, separators, digits,
 * clock). The day/month order is read from the whole file (a field over 12,
 * else the order in which the dates go forward, else zero-padding) or given
 * with --date-format; a file none of these settles is refused, naming the
 * line. A line without "Author: " is a system message, a line not starting
 * with a date continues the message before it. Attachment lines are read
 * from a table of WhatsApp's languages.
 *
 * The file's dialect (its heads as a pattern, its marks, attachment lines
 * and line ends) is kept in whatsapp_ fields of the chat and its messages,
 * so that the export writes the chat back byte for byte.
 *
 * The chat's id is derived from its name (the file name "WhatsApp Chat with
 * NAME.txt", or the directory of an iOS "_chat.txt"), so a newer export of
 * the same chat replaces the older one. Messages become Telegram-style
 * objects numbered from 1; dates are local times as written, date_unixtime
 * reads them as UTC since the export has no zone. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

/* --- Locales --------------------------------------------------------------- */

/* Clock markers, as the phone's locale writes them after (or, in Chinese,
 * before) the time. */
static const struct wa_clock {
	const char *am, *pm;
	bool before;
} wa_clocks[] = {
	{"AM", "PM", false},
	{"am", "pm", false},
	{"a. m.", "p. m.", false},
	{"a.m.", "p.m.", false},
	{"\xe4\xb8\x8a\xe5\x8d\x88", "\xe4\xb8\x8b\xe5\x8d\x88", true}, /* 上午 下午 */
	{"\xd8\xb5", "\xd9\x85", false},                              /* ص م */
	{"\xe0\xa4\xaa\xe0\xa5\x82\xe0\xa4\xb0\xe0\xa5\x8d\xe0\xa4\xb5\xe0\xa4\xbe\xe0\xa4\xb9\xe0\xa5\x8d\xe0\xa4\xa8",
	 "\xe0\xa4\x85\xe0\xa4\xaa\xe0\xa4\xb0\xe0\xa4\xbe\xe0\xa4\xb9\xe0\xa5\x8d\xe0\xa4\xa8", false}, /* पूर्वाह्न अपराह्न */
};

/* Attachment lines in WhatsApp's languages: "<attached: NAME>" (iOS),
 * "NAME (file attached)" (Android), and the lines of media left out of the
 * export. */
static const struct wa_lang {
	const char *code;
	const char *attached;  /* "<attached: " ... ">" */
	const char *file;      /* NAME " (file attached)" */
	const char *omitted[3]; /* the whole text of a message whose media was left out */
} wa_langs[] = {
	{"en", "<attached: ", " (file attached)", {"<Media omitted>", "image omitted", "video omitted"}},
	{"de", "<Anhang: ", " (Datei angeh\xc3\xa4ngt)", {"<Medien ausgeschlossen>", "Bild weggelassen", "Video weggelassen"}},
	{"es", "<adjunto: ", " (archivo adjunto)", {"<Multimedia omitido>", "imagen omitida", "video omitido"}},
	{"fr", "<pi\xc3\xa8" "ce jointe\xc2\xa0: ", " (fichier joint)", {"<M\xc3\xa9" "dias omis>", "image absente", "vid\xc3\xa9o absente"}},
	{"pt", "<anexado: ", " (arquivo anexado)", {"<M\xc3\xad" "dia oculta>", "imagem ocultada", "v\xc3\xad" "deo ocultado"}},
	{"ru", "<\xd0\xb2\xd0\xbb\xd0\xbe\xd0\xb6\xd0\xb5\xd0\xbd\xd0\xb8\xd0\xb5: ", /* <вложение: */
	 " (\xd1\x84\xd0\xb0\xd0\xb9\xd0\xbb \xd0\xb4\xd0\xbe\xd0\xb1\xd0\xb0\xd0\xb2\xd0\xbb\xd0\xb5\xd0\xbd)", /* (файл добавлен) */
	 {"<\xd0\x91\xd0\xb5\xd0\xb7 \xd0\xbc\xd0\xb5\xd0\xb4\xd0\xb8\xd0\xb0\xd1\x84\xd0\xb0\xd0\xb9\xd0\xbb\xd0\xbe\xd0\xb2>", /* <Без медиафайлов> */
	  "\xd0\xb8\xd0\xb7\xd0\xbe\xd0\xb1\xd1\x80\xd0\xb0\xd0\xb6\xd0\xb5\xd0\xbd\xd0\xb8\xd0\xb5 \xd0\xbe\xd1\x82\xd1\x81\xd1\x83\xd1\x82\xd1\x81\xd1\x82\xd0\xb2\xd1\x83\xd0\xb5\xd1\x82", NULL}}, /* изображение отсутствует */
	{"zh", "<\xe9\x99\x84\xe4\xbb\xb6\xef\xbc\x9a", " (\xe6\x96\x87\xe4\xbb\xb6\xe9\x99\x84\xe4\xbb\xb6)", /* <附件： (文件附件) */
	 {"<\xe7\x9c\x81\xe7\x95\xa5\xe5\xbd\xb1\xe9\x9f\xb3\xe5\x86\x85\xe5\xae\xb9>", "\xe5\x9b\xbe\xe7\x89\x87\xe5\xb7\xb2\xe5\xbf\xbd\xe7\x95\xa5", NULL}}, /* <省略影音内容> 图片已忽略 */
	{"ar", "<\xd9\x85\xd8\xb1\xd9\x81\xd9\x82: ", " (\xd8\xa7\xd9\x84\xd9\x85\xd9\x84\xd9\x81 \xd9\x85\xd8\xb1\xd9\x81\xd9\x82)", /* <مرفق: (الملف مرفق) */
	 {"<\xd8\xaa\xd9\x85 \xd8\xa7\xd8\xb3\xd8\xaa\xd8\xa8\xd8\xb9\xd8\xa7\xd8\xaf \xd8\xa7\xd9\x84\xd9\x88\xd8\xb3\xd8\xa7\xd8\xa6\xd8\xb7>", NULL, NULL}}, /* <تم استبعاد الوسائط> */
	{"hi", "<\xe0\xa4\xb8\xe0\xa4\x82\xe0\xa4\xb2\xe0\xa4\x97\xe0\xa5\x8d\xe0\xa4\xa8: ", /* <संलग्न: */
	 " (\xe0\xa4\xab\xe0\xa4\xbc\xe0\xa4\xbe\xe0\xa4\x87\xe0\xa4\xb2 \xe0\xa4\xb8\xe0\xa4\x82\xe0\xa4\xb2\xe0\xa4\x97\xe0\xa5\x8d\xe0\xa4\xa8 \xe0\xa4\xb9\xe0\xa5\x88)", /* (फ़ाइल संलग्न है) */
	 {"<\xe0\xa4\xae\xe0\xa5\x80\xe0\xa4\xa1\xe0\xa4\xbf\xe0\xa4\xaf\xe0\xa4\xbe \xe0\xa4\x95\xe0\xa5\x87 \xe0\xa4\xac\xe0\xa4\xbf\xe0\xa4\xa8\xe0\xa4\xbe>", NULL, NULL}}, /* <मीडिया के बिना> */
};

#define WA_NLANGS (sizeof(wa_langs) / sizeof(wa_langs[0]))
#define WA_NCLOCKS (sizeof(wa_clocks) / sizeof(wa_clocks[0]))

/* --- Message heads --------------------------------------------------------- */

enum wa_order { WA_ORDER_NONE = -1, WA_DMY = 0, WA_MDY = 1, WA_YMD = 2 };

/* One head "[12/01/24, 2:03 PM] " or "12.01.24, 14:03 - ", in pieces, so that
 * the file's own style can be written back. */
struct wa_head {
	size_t mark_len; /* U+200E and the like before it */
	size_t head_len; /* from after the marks to the body */
	bool bracket;
	unsigned f[3], nd[3]; /* date fields as written, and their digits */
	char dsep;
	char sep[8];     /* the date separator with the marks before it ("/", "\u200f/") */
	bool arabic;     /* Arabic-Indic digits */
	char lit[12];    /* between the date and the time (", ", " ", "\u060c ") */
	char ampm_sp[4]; /* between the time and an AM/PM after it */
	char tail[4];    /* "] ", "]" or " - " */
	unsigned hour, hour_nd, min, sec;
	bool has_sec;
	int clock;       /* wa_clocks index, -1 for a 24-hour clock */
	int ampm;        /* 0 none, 1 AM, 2 PM */
	const char *body;
	size_t body_len;
};

static size_t skip_marks(const char *s, size_t len, size_t i)
{
	/* U+200E, U+200F left/right marks and U+202A..U+202C embedding marks. */
	while (i + 3 <= len && (unsigned char)s[i] == 0xe2 && (unsigned char)s[i + 1] == 0x80 &&
	       ((unsigned char)s[i + 2] == 0x8e || (unsigned char)s[i + 2] == 0x8f ||
		((unsigned char)s[i + 2] >= 0xaa && (unsigned char)s[i + 2] <= 0xac)))
		i += 3;
	return i;
}

/* An Arabic-Indic digit (U+0660..U+0669) at i: its value, else -1. */
static int arabic_digit(const char *s, size_t len, size_t i)
{
	if (i + 2 <= len && (unsigned char)s[i] == 0xd9 && (unsigned char)s[i + 1] >= 0xa0 &&
	    (unsigned char)s[i + 1] <= 0xa9)
		return (unsigned char)s[i + 1] - 0xa0;
	return -1;
}

/* Digits as the locale writes them: ASCII or Arabic-Indic. */
static bool digits(const char *s, size_t len, size_t *i, unsigned min, unsigned max, unsigned *out, unsigned *nd)
{
	unsigned v = 0, n = 0;
	int a;

	while (*i < len && n < max) {
		if (s[*i] >= '0' && s[*i] <= '9') {
			v = v * 10 + (unsigned)(s[*i] - '0');
			(*i)++;
		} else if ((a = arabic_digit(s, len, *i)) >= 0) {
			v = v * 10 + (unsigned)a;
			*i += 2;
		} else {
			break;
		}
		n++;
	}
	if (n < min)
		return false;
	*out = v;
	if (nd != NULL)
		*nd = n;
	return true;
}

static bool starts(const char *s, size_t len, size_t i, const char *w)
{
	size_t n = strlen(w);

	return i + n <= len && memcmp(s + i, w, n) == 0;
}

/* A space as the clock uses it: ' ', U+202F or U+00A0; its length or 0. */
static size_t clock_space(const char *s, size_t len, size_t i)
{
	if (starts(s, len, i, " "))
		return 1;
	if (starts(s, len, i, "\xe2\x80\xaf"))
		return 3;
	if (starts(s, len, i, "\xc2\xa0"))
		return 2;
	return 0;
}

static bool clock_at(const char *s, size_t len, size_t i, bool before, int *clock, int *ampm, size_t *n)
{
	size_t k;

	for (k = 0; k < WA_NCLOCKS; k++) {
		if (wa_clocks[k].before != before)
			continue;
		if (starts(s, len, i, wa_clocks[k].am) || starts(s, len, i, wa_clocks[k].pm)) {
			*ampm = starts(s, len, i, wa_clocks[k].am) ? 1 : 2;
			*n = strlen(*ampm == 1 ? wa_clocks[k].am : wa_clocks[k].pm);
			*clock = (int)k;
			return true;
		}
	}
	return false;
}

static bool copy_lit(char *dst, size_t cap, const char *s, size_t a, size_t b)
{
	if (b - a >= cap)
		return false;
	memcpy(dst, s + a, b - a);
	dst[b - a] = 0;
	return true;
}

static bool parse_head(const char *s, size_t len, struct wa_head *h)
{
	size_t i, l0, n;

	memset(h, 0, sizeof(*h));
	h->clock = -1;
	i = h->mark_len = skip_marks(s, len, 0);
	if (i < len && s[i] == '[') {
		h->bracket = true;
		i++;
	}
	h->arabic = arabic_digit(s, len, i) >= 0;
	if (!digits(s, len, &i, 1, 4, &h->f[0], &h->nd[0]) || h->nd[0] == 3 || i >= len)
		return false;
	/* Right-to-left locales put a mark before each separator. */
	l0 = i;
	i = skip_marks(s, len, i);
	if (i >= len)
		return false;
	h->dsep = s[i];
	if (h->dsep != '/' && h->dsep != '.' && h->dsep != '-')
		return false;
	i++;
	if (!copy_lit(h->sep, sizeof(h->sep), s, l0, i))
		return false;
	if (!digits(s, len, &i, 1, 2, &h->f[1], &h->nd[1]) || i >= len || !starts(s, len, i, h->sep))
		return false;
	i += strlen(h->sep);
	if (!digits(s, len, &i, 1, 4, &h->f[2], &h->nd[2]))
		return false;
	if (h->nd[0] == 4 ? h->nd[2] > 2 : h->nd[0] > 2 || (h->nd[2] != 2 && h->nd[2] != 4))
		return false;
	l0 = i;
	if (i < len && s[i] == '.')
		i++;
	if (i < len && s[i] == ',')
		i++;
	else if (starts(s, len, i, "\xd8\x8c")) /* the Arabic comma */
		i += 2;
	if (i >= len || s[i] != ' ')
		return false;
	i++;
	if (!copy_lit(h->lit, sizeof(h->lit), s, l0, i))
		return false;
	if (clock_at(s, len, i, true, &h->clock, &h->ampm, &n))
		i += n;
	if (!digits(s, len, &i, 1, 2, &h->hour, &h->hour_nd) || i >= len || s[i] != ':')
		return false;
	i++;
	if (!digits(s, len, &i, 2, 2, &h->min, NULL))
		return false;
	if (i < len && s[i] == ':') {
		i++;
		if (!digits(s, len, &i, 2, 2, &h->sec, NULL))
			return false;
		h->has_sec = true;
	}
	if (h->clock < 0) {
		size_t sp = clock_space(s, len, i);

		if (clock_at(s, len, i + sp, false, &h->clock, &h->ampm, &n)) {
			if (!copy_lit(h->ampm_sp, sizeof(h->ampm_sp), s, i, i + sp))
				return false;
			i += sp + n;
		}
	}
	l0 = i;
	if (h->bracket) {
		if (i >= len || s[i] != ']')
			return false;
		i++;
		if (i < len && s[i] == ' ')
			i++;
	} else {
		if (!starts(s, len, i, " - "))
			return false;
		i += 3;
	}
	if (!copy_lit(h->tail, sizeof(h->tail), s, l0, i))
		return false;
	h->head_len = i - h->mark_len;
	h->body = s + i;
	h->body_len = len - i;
	return true;
}

/* The head's date and time for a day/month order; false if invalid. */
static bool head_date(const struct wa_head *h, int order, struct tm *tm)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned day, mon, year, yd, hour = h->hour;

	if (h->nd[0] == 4)
		order = WA_YMD;
	else if (order == WA_YMD || order == WA_ORDER_NONE)
		return false;
	day = order == WA_DMY ? h->f[0] : order == WA_MDY ? h->f[1] : h->f[2];
	mon = order == WA_MDY ? h->f[0] : h->f[1];
	year = order == WA_YMD ? h->f[0] : h->f[2];
	yd = order == WA_YMD ? h->nd[0] : h->nd[2];
	if (yd == 2)
		year += 2000;
	if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || h->min > 59 || h->sec > 59)
		return false;
	if (h->ampm != 0) {
		if (hour < 1 || hour > 12)
			return false;
		hour = hour % 12 + (h->ampm == 2 ? 12 : 0);
	} else if (hour > 23) {
		return false;
	}
	memset(tm, 0, sizeof(*tm));
	tm->tm_year = (int)year - 1900;
	tm->tm_mon = (int)mon - 1;
	tm->tm_mday = (int)day;
	tm->tm_hour = (int)hour;
	tm->tm_min = (int)h->min;
	tm->tm_sec = (int)h->sec;
	return true;
}

/* --- Dialect: how a file writes its heads ---------------------------------- */

/* The pattern of a head: D DD M MM YY YYYY (date), H HH (24-hour) or h hh
 * (12-hour), mm, ss, a (the clock marker); every other character stands for
 * itself. "[D/M/YY, h:mm:ss\u202fa] " or "DD.MM.YY, HH:mm - ". */
struct wa_dialect {
	char pattern[64];
	char am[32], pm[32];
	char eol[3];
	bool bracket, arabic; /* arabic: Arabic-Indic digits */
	int lang; /* wa_langs index for attachments written afresh */
};

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
	if (err == 0 && h->clock >= 0 && wa_clocks[h->clock].before)
		err = pb__chat_buf_str(&b, "a");
	if (err == 0)
		err = pb__chat_buf_printf(&b, "%s:mm%s", h->clock >= 0 ? (pad[2] == 2 ? "hh" : "h") : (pad[2] == 2 ? "HH" : "H"),
					  h->has_sec ? ":ss" : "");
	if (err == 0 && h->clock >= 0 && !wa_clocks[h->clock].before)
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
			snprintf(d->am, sizeof(d->am), "%s", wa_clocks[h->clock].am);
			snprintf(d->pm, sizeof(d->pm), "%s", wa_clocks[h->clock].pm);
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

static int render_head(const struct wa_dialect *d, const struct tm *tm, pb_buf_t *out)
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
static void dialect_of_frame(const pb__cj_t *frame, struct wa_dialect *d)
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
			if (strcmp(v, wa_langs[k].code) == 0)
				d->lang = (int)k;
}

/* Phrases of system lines that may quote a ": " (a new subject, a group's
 * name) before which an author would be looked for. */
static const char *const wa_system_phrases[] = {
	" changed the subject from ", " created group ", " changed the group description", /* en */
	" hat den Betreff von ", " hat die Gruppe ",                                       /* de */
	" cambi\xc3\xb3 el asunto de ", " cre\xc3\xb3 el grupo ",                            /* es */
	" a modifi\xc3\xa9 le sujet de ", " a cr\xc3\xa9\xc3\xa9 le groupe ",                    /* fr */
	" mudou o assunto de ", " criou o grupo ",                                         /* pt */
	" \xd0\xb8\xd0\xb7\xd0\xbc\xd0\xb5\xd0\xbd\xd0\xb8\xd0\xbb(-\xd0\xb0) \xd1\x82\xd0\xb5\xd0\xbc\xd1\x83 ",   /* ru: изменил(-а) тему */
	" \xd1\x81\xd0\xbe\xd0\xb7\xd0\xb4\xd0\xb0\xd0\xbb(-\xd0\xb0) \xd0\xb3\xd1\x80\xd1\x83\xd0\xbf\xd0\xbf\xd1\x83 ", /* ru: создал(-а) группу */
	"\xe6\x9b\xb4\xe6\x94\xb9\xe4\xba\x86\xe7\xbe\xa4\xe7\xbb\x84\xe5\x90\x8d\xe7\xa7\xb0",     /* zh: 更改了群组名称 */
	"\xe5\x88\x9b\xe5\xbb\xba\xe4\xba\x86\xe7\xbe\xa4\xe7\xbb\x84",                         /* zh: 创建了群组 */
	" \xd8\xba\xd9\x8a\xd9\x91\xd8\xb1 \xd8\xa7\xd9\x84\xd9\x85\xd9\x88\xd8\xb6\xd9\x88\xd8\xb9 ",       /* ar: غيّر الموضوع */
	" \xd8\xa3\xd9\x86\xd8\xb4\xd8\xa3 \xd8\xa7\xd9\x84\xd9\x85\xd8\xac\xd9\x85\xd9\x88\xd8\xb9\xd8\xa9 ", /* ar: أنشأ المجموعة */
	" \xe0\xa4\xa8\xe0\xa5\x87 \xe0\xa4\xb5\xe0\xa4\xbf\xe0\xa4\xb7\xe0\xa4\xaf ",                   /* hi: ने विषय */
	" \xe0\xa4\xa8\xe0\xa5\x87 \xe0\xa4\xb8\xe0\xa4\xae\xe0\xa5\x82\xe0\xa4\xb9 ",                   /* hi: ने समूह */
	NULL,
};

static bool has_phrase(const char *b, size_t len)
{
	size_t k, n;
	const char *p;

	for (k = 0; wa_system_phrases[k] != NULL; k++) {
		n = strlen(wa_system_phrases[k]);
		for (p = b; p + n <= b + len; p++)
			if (memcmp(p, wa_system_phrases[k], n) == 0)
				return true;
	}
	return false;
}

/* Splits "Author: text"; false for a system line. */
static bool split_author(const char *b, size_t len, size_t *alen)
{
	size_t i;

	for (i = 0; i + 1 < len && i < 200; i++) {
		if (b[i] == ':' && b[i + 1] == ' ') {
			if (i == 0 || has_phrase(b, i))
				return false;
			*alen = i;
			return true;
		}
	}
	if (len >= 1 && len <= 200 && b[len - 1] == ':') { /* "Alice:" with empty text */
		*alen = len - 1;
		return len > 1;
	}
	return false;
}

/* --- Message assembly ------------------------------------------------------ */

struct wa_msg {
	bool active, system, attach_only, omitted;
	struct tm tm;
	char *author;
	pb_buf_t text;
	char *attachment;
	char *attach_raw; /* the attachment as the line wrote it */
	char *mark, *head;
	pb_buf_t raw;     /* the message's lines as read */
};

static void msg_clear(struct wa_msg *m)
{
	free(m->author);
	free(m->attachment);
	free(m->attach_raw);
	free(m->mark);
	free(m->head);
	pb__chat_buf_clear(&m->text);
	pb__chat_buf_clear(&m->raw);
	memset(m, 0, sizeof(*m));
}

static bool ends_with(const char *s, size_t len, const char *suf)
{
	size_t n = strlen(suf);

	return len >= n && memcmp(s + len - n, suf, n) == 0;
}

/* Finds the attachment of a message's first line t (after "Author: "):
 * sets m->attachment / m->attach_raw and returns how many bytes of t they
 * took (the text starts there). */
static int find_attachment(struct wa_msg *m, const char *t, size_t tlen, size_t *took, int *lang)
{
	size_t k = skip_marks(t, tlen, 0), l, o, an;
	const char *gt;

	*took = 0;
	for (l = 0; l < WA_NLANGS; l++) {
		an = strlen(wa_langs[l].attached);
		if (tlen - k > an && memcmp(t + k, wa_langs[l].attached, an) == 0 &&
		    (gt = memchr(t + k + an, '>', tlen - k - an)) != NULL) {
			*took = (size_t)(gt + 1 - t);
			if (*took < tlen && t[*took] == ' ')
				(*took)++;
			m->attachment = strndup(t + k + an, (size_t)(gt - (t + k + an)));
			m->attach_raw = strndup(t, *took);
			*lang = (int)l;
			return m->attachment && m->attach_raw ? 0 : PB_ENOMEM;
		}
		an = strlen(wa_langs[l].file);
		if (tlen > k + an && ends_with(t, tlen, wa_langs[l].file) && memchr(t + k, ' ', tlen - an - k) == NULL) {
			*took = tlen;
			m->attachment = strndup(t + k, tlen - an - k);
			m->attach_raw = strndup(t, tlen);
			*lang = (int)l;
			return m->attachment && m->attach_raw ? 0 : PB_ENOMEM;
		}
		for (o = 0; o < 3; o++) {
			if (wa_langs[l].omitted[o] == NULL || tlen - k != strlen(wa_langs[l].omitted[o]) ||
			    memcmp(t + k, wa_langs[l].omitted[o], tlen - k) != 0)
				continue;
			*took = tlen;
			m->omitted = true;
			m->attach_raw = strndup(t, tlen);
			*lang = (int)l;
			return m->attach_raw ? 0 : PB_ENOMEM;
		}
	}
	return 0;
}

static int msg_start(struct wa_msg *m, const char *line, const struct wa_head *h, const struct tm *tm, int *lang)
{
	const char *t;
	size_t alen = 0, tlen, took;
	int err = 0;

	msg_clear(m);
	m->active = true;
	m->tm = *tm;
	if (h->mark_len > 0 && (m->mark = strndup(line, h->mark_len)) == NULL)
		return PB_ENOMEM;
	if ((m->head = strndup(line + h->mark_len, h->head_len)) == NULL)
		return PB_ENOMEM;
	m->system = !split_author(h->body, h->body_len, &alen);
	if (m->system) {
		t = h->body;
		tlen = h->body_len;
	} else {
		m->author = strndup(h->body, alen);
		if (m->author == NULL)
			return PB_ENOMEM;
		t = h->body + alen + 1;
		tlen = h->body_len - alen - 1;
		if (tlen > 0 && t[0] == ' ') {
			t++;
			tlen--;
		}
		if ((err = find_attachment(m, t, tlen, &took, lang)) != 0)
			return err;
		t += took;
		tlen -= took;
		m->attach_only = m->attach_raw != NULL && tlen == 0;
	}
	if (tlen > 0)
		err = pb__chat_buf_add(&m->text, t, tlen);
	return err;
}

static int msg_continue(struct wa_msg *m, const char *line, size_t len)
{
	int err;

	if (m->text.len + len + 1 > PB__CHAT_MSG_MAX / 2)
		return PB_ETOOBIG;
	if (!(m->attach_only && m->text.len == 0) && (err = pb__chat_buf_add(&m->text, "\n", 1)) != 0)
		return err;
	m->attach_only = false;
	return pb__chat_buf_add(&m->text, line, len);
}

static int add_str(pb__cj_t *o, const char *key, const char *s, size_t len)
{
	pb__cj_t *v = pb__cj_new_str(s, len);
	int err;

	if (v == NULL)
		return PB_ENOMEM;
	if ((err = pb__cj_add(o, key, v)) != 0)
		pb__cj_free(v);
	return err;
}

static int add_num(pb__cj_t *o, const char *key, long long n)
{
	char tmp[32];
	pb__cj_t *v;
	int k = snprintf(tmp, sizeof(tmp), "%lld", n), err;

	if (k < 0 || (size_t)k >= sizeof(tmp))
		return PB_EINVAL;
	v = pb__cj_new_str(tmp, (size_t)k);
	if (v == NULL)
		return PB_ENOMEM;
	v->type = PB__CJ_NUM;
	if ((err = pb__cj_add(o, key, v)) != 0)
		pb__cj_free(v);
	return err;
}

static const char *media_of(const char *name, const char **mime)
{
	const char *dot = strrchr(name, '.');

	*mime = NULL;
	if (dot == NULL)
		return NULL;
	if (!strcasecmp(dot, ".opus")) {
		*mime = "audio/ogg";
		return "voice_message";
	}
	if (!strcasecmp(dot, ".mp4") || !strcasecmp(dot, ".3gp") || !strcasecmp(dot, ".mov")) {
		*mime = "video/mp4";
		return "video_file";
	}
	if (!strcasecmp(dot, ".mp3") || !strcasecmp(dot, ".m4a") || !strcasecmp(dot, ".aac")) {
		*mime = "audio/mpeg";
		return "audio_file";
	}
	if (!strcasecmp(dot, ".webp")) {
		*mime = "image/webp";
		return "sticker";
	}
	if (!strcasecmp(dot, ".pdf"))
		*mime = "application/pdf";
	return NULL;
}

static bool is_photo(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot != NULL && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* A message written as a WhatsApp line, in dialect d. 1 when it has no
 * date a line could carry. */
static int render_msg(const struct wa_dialect *d, const pb__cj_t *msg, pb_buf_t *out)
{
	const char *date = pb__cj_get_str(msg, "date"), *type = pb__cj_get_str(msg, "type");
	const char *lines = pb__cj_get_str(msg, "whatsapp_lines"), *v;
	const pb__cj_t *m, *att = NULL;
	unsigned y, mo, dd, h, mi, s;
	char *text = NULL, *p;
	struct tm tm;
	int err = 0;

	if (lines != NULL)
		return pb__chat_buf_str(out, lines);
	if (date == NULL || sscanf(date, "%4u-%2u-%2uT%2u:%2u:%2u", &y, &mo, &dd, &h, &mi, &s) != 6)
		return 1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)y - 1900;
	tm.tm_mon = (int)mo - 1;
	tm.tm_mday = (int)dd;
	tm.tm_hour = (int)h;
	tm.tm_min = (int)mi;
	tm.tm_sec = (int)s;
	text = pb__cj_flatten_text(pb__cj_get(msg, "text"));
	if (text == NULL)
		return PB_ENOMEM;
	for (m = msg->child; m != NULL; m = m->next)
		if (pb__chat_is_attachment(m) && strcmp(m->key, "thumbnail") != 0 && pb__chat_relpath_ok(m->str, m->len)) {
			att = m;
			break;
		}
	if ((v = pb__cj_get_str(msg, "whatsapp_mark")) != NULL)
		err = pb__chat_buf_str(out, v);
	if (err == 0)
		err = (v = pb__cj_get_str(msg, "whatsapp_head")) != NULL ? pb__chat_buf_str(out, v) : render_head(d, &tm, out);
	if (err == 0 && type != NULL && strcmp(type, "service") == 0) {
		if (text[0] == 0) {
			const char *actor = pb__cj_get_str(msg, "actor"), *action = pb__cj_get_str(msg, "action");

			err = pb__chat_buf_printf(out, "%s %s", actor ? actor : "Someone", action ? action : "did something");
		}
	} else if (err == 0) {
		const char *from = pb__cj_get_str(msg, "from"), *raw = pb__cj_get_str(msg, "whatsapp_attach");
		const struct wa_lang *l = &wa_langs[d->lang];

		err = pb__chat_buf_printf(out, "%s: ", from ? from : "Deleted Account");
		if (err == 0 && raw != NULL) {
			err = pb__chat_buf_str(out, raw);
			if (err == 0 && text[0] && raw[0] && raw[strlen(raw) - 1] != ' ')
				err = pb__chat_buf_str(out, d->eol);
		} else if (err == 0 && att != NULL) {
			if (d->bracket)
				err = pb__chat_buf_printf(out, "%s%s>", l->attached, att->str);
			else
				err = pb__chat_buf_printf(out, "%s%s", att->str, l->file);
			if (err == 0 && text[0])
				err = pb__chat_buf_str(out, d->eol);
		}
	}
	for (p = text; err == 0 && *p; p++)
		err = *p == '\n' ? pb__chat_buf_str(out, d->eol) : pb__chat_buf_add(out, p, 1);
	if (err == 0)
		err = pb__chat_buf_str(out, d->eol);
	free(text);
	return err;
}

/* Builds the Telegram-style object of a finished message; what the
 * canonical fields cannot say about its lines is kept in whatsapp_ fields,
 * so that rendering it in the file's dialect gives its bytes back. */
static int msg_object(const struct wa_msg *m, const struct wa_dialect *d, long long id, pb__cj_t **out)
{
	pb__cj_t *o = pb__cj_new(PB__CJ_OBJ), *ents = NULL, *ent = NULL;
	char date[32];
	const char *media, *mime;
	struct tm tm = m->tm;
	pb_buf_t b = {0};
	time_t t;
	int err, k;

	if (o == NULL)
		return PB_ENOMEM;
	k = snprintf(date, sizeof(date), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
		     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	t = timegm(&tm);
	if (k < 0 || (size_t)k >= sizeof(date)) {
		err = PB_EINVAL;
		goto out_free;
	}
	if ((err = add_num(o, "id", id)) != 0 ||
	    (err = add_str(o, "type", m->system ? "service" : "message", 7)) != 0 ||
	    (err = add_str(o, "date", date, (size_t)k)) != 0)
		goto out_free;
	k = snprintf(date, sizeof(date), "%lld", (long long)t);
	if (k < 0 || (size_t)k >= sizeof(date) || (err = add_str(o, "date_unixtime", date, (size_t)k)) != 0)
		goto out_free;
	if (m->system) {
		if ((err = add_str(o, "action", "whatsapp_system", 15)) != 0)
			goto out_free;
	} else if ((err = add_str(o, "from", m->author, strlen(m->author))) != 0) {
		goto out_free;
	}
	if (m->omitted && (err = add_str(o, "file", PB__CHAT_FILE_NOT_INCLUDED, strlen(PB__CHAT_FILE_NOT_INCLUDED))) != 0)
		goto out_free;
	if (m->attachment != NULL) {
		media = media_of(m->attachment, &mime);
		if ((err = add_str(o, is_photo(m->attachment) ? "photo" : "file", m->attachment,
				   strlen(m->attachment))) != 0)
			goto out_free;
		if (media != NULL && (err = add_str(o, "media_type", media, strlen(media))) != 0)
			goto out_free;
		if (mime != NULL && (err = add_str(o, "mime_type", mime, strlen(mime))) != 0)
			goto out_free;
	}
	if ((err = add_str(o, "text", m->text.len ? (const char *)m->text.data : "", m->text.len)) != 0)
		goto out_free;
	ents = pb__cj_new(PB__CJ_ARR);
	if (ents == NULL) {
		err = PB_ENOMEM;
		goto out_free;
	}
	if ((err = pb__cj_add(o, "text_entities", ents)) != 0) {
		pb__cj_free(ents);
		goto out_free;
	}
	if (m->text.len > 0) {
		ent = pb__cj_new(PB__CJ_OBJ);
		if (ent == NULL) {
			err = PB_ENOMEM;
			goto out_free;
		}
		if ((err = pb__cj_add(ents, NULL, ent)) != 0) {
			pb__cj_free(ent);
			goto out_free;
		}
		if ((err = add_str(ent, "type", "plain", 5)) != 0 ||
		    (err = add_str(ent, "text", (const char *)m->text.data, m->text.len)) != 0)
			goto out_free;
	}
	if (m->mark != NULL && (err = add_str(o, "whatsapp_mark", m->mark, strlen(m->mark))) != 0)
		goto out_free;
	if (m->attach_raw != NULL && (err = add_str(o, "whatsapp_attach", m->attach_raw, strlen(m->attach_raw))) != 0)
		goto out_free;
	/* A head the pattern does not give back is kept as written. */
	if ((err = render_head(d, &m->tm, &b)) != 0)
		goto out_free;
	if ((b.len != strlen(m->head) || memcmp(b.data, m->head, b.len) != 0) &&
	    (err = add_str(o, "whatsapp_head", m->head, strlen(m->head))) != 0)
		goto out_free;
	b.len = 0;
	if ((err = render_msg(d, o, &b)) < 0)
		goto out_free;
	if ((b.len != m->raw.len || (b.len && memcmp(b.data, m->raw.data, b.len) != 0)) &&
	    (err = add_str(o, "whatsapp_lines", m->raw.len ? (const char *)m->raw.data : "", m->raw.len)) != 0)
		goto out_free;
	pb__chat_buf_clear(&b);
	*out = o;
	return 0;
out_free:
	pb__chat_buf_clear(&b);
	pb__cj_free(o);
	return err;
}

/* --- The two passes -------------------------------------------------------- */

/* What the first pass learns from every head of the file. */
struct wa_scan {
	char *authors[2];
	bool group, crlf, ymd;
	uint64_t heads;
	uint64_t dmy_line, mdy_line; /* a line only one order reads, or 0 */
	uint64_t amb_line;           /* the first line either order reads differently */
	char amb_text[96];
	bool dmy_back, mdy_back;     /* the dates go backwards in that order */
	bool padded;                 /* a day or month under 10 written with two digits */
	unsigned prev_dmy, prev_mdy;
	unsigned seen1[3], seen2[3]; /* day, month, hour under 10 with one / two digits */
	unsigned raw1[3], raw2[3];   /* first, second date field and hour, before the order is known */
	struct wa_head first;
	char first_line[256];
	int lang;
	int order;
};

static void scan_free(struct wa_scan *sc)
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

	if (!parse_head(line, len, &h))
		return sc->heads == 0 && len > 0 && skip_marks(line, len, 0) < len ? PB_EDATA_FORMAT : 0;
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
	if (sc->group || !split_author(h.body, h.body_len, &alen))
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
static int settle_order(struct wa_scan *sc, int forced, char *why, size_t cap)
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
static int scan_dialect(const struct wa_scan *sc, struct wa_dialect *d)
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

typedef int (*wa_emit_fn)(void *arg, pb__cj_t *msg);

static int raw_add(struct wa_msg *m, const pb__chat_lines_t *r, const char *line, size_t len)
{
	int err = pb__chat_buf_add(&m->raw, line, len);

	if (err == 0 && r->newline)
		err = pb__chat_buf_str(&m->raw, r->crlf ? "\r\n" : "\n");
	return err;
}

/* Second pass: messages, one at a time, to emit. */
static int read_messages(pb__chat_lines_t *r, const struct wa_dialect *d, int order, wa_emit_fn emit, void *arg,
			 uint64_t *line_out)
{
	struct wa_msg m;
	struct wa_head h;
	struct tm tm;
	const char *line;
	size_t len;
	long long id = 0;
	pb__cj_t *o;
	int rc, err = 0, lang = 0;

	memset(&m, 0, sizeof(m));
	while ((rc = pb__chat_lines_next(r, &line, &len)) == 1) {
		*line_out = r->lineno;
		if (parse_head(line, len, &h) && head_date(&h, order, &tm)) {
			if (m.active) {
				if ((err = msg_object(&m, d, ++id, &o)) != 0 || (err = emit(arg, o)) != 0)
					goto out_msg;
			}
			if ((err = msg_start(&m, line, &h, &tm, &lang)) != 0 || (err = raw_add(&m, r, line, len)) != 0)
				goto out_msg;
			continue;
		}
		if (!m.active) {
			if (len == 0 || skip_marks(line, len, 0) == len)
				continue;
			err = PB_EDATA_FORMAT;
			goto out_msg;
		}
		if ((err = msg_continue(&m, line, len)) != 0 || (err = raw_add(&m, r, line, len)) != 0)
			goto out_msg;
	}
	if (rc < 0) {
		*line_out = r->lineno;
		err = rc;
		goto out_msg;
	}
	if (m.active && ((err = msg_object(&m, d, ++id, &o)) != 0 || (err = emit(arg, o)) != 0))
		goto out_msg;
out_msg:
	msg_clear(&m);
	return err;
}

/* The language of the first attachment line, for attachments written
 * afresh. */
static int scan_lang(const char *line, size_t len)
{
	struct wa_head h;
	struct wa_msg m;
	size_t alen, took;
	int lang = -1;

	if (!parse_head(line, len, &h) || !split_author(h.body, h.body_len, &alen))
		return -1;
	memset(&m, 0, sizeof(m));
	if (h.body_len > alen + 2 && find_attachment(&m, h.body + alen + 2, h.body_len - alen - 2, &took, &lang) != 0)
		lang = -1;
	msg_clear(&m);
	return lang;
}

static int scan_all(pb__chat_lines_t *r, struct wa_scan *sc, uint64_t *line_out)
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

static const char *why_of(int err)
{
	switch (err) {
	case PB_ETOOBIG: return "line longer than 1 MiB (or a message over 8 MiB)";
	case PB_EDATA_FORMAT: return "not a WhatsApp chat line (expected a date like 31/01/24, 14:05 - Name: text)";
	default: return pb_strerror(err);
	}
}

/* --- Fuzz entry ------------------------------------------------------------ */

static int count_emit(void *arg, pb__cj_t *msg)
{
	pb_buf_t b = {0};
	int err = pb__cj_write(&b, msg, PB__CJ_ORDER_MESSAGE);

	pb__chat_buf_clear(&b);
	pb__cj_free(msg);
	(*(uint64_t *)arg)++;
	return err;
}

int pb__chat_whatsapp_parse_buf(const uint8_t *buf, size_t len)
{
	pb__chat_lines_t r;
	struct wa_scan sc;
	struct wa_dialect d;
	uint64_t line = 0, count = 0;
	int err;

	memset(&r, 0, sizeof(r));
	memset(&sc, 0, sizeof(sc));
	r.mem = buf;
	r.memlen = len;
	err = scan_all(&r, &sc, &line);
	if (err == 0)
		err = settle_order(&sc, WA_ORDER_NONE, NULL, 0);
	if (err == 0)
		err = scan_dialect(&sc, &d);
	if (err == 0) {
		r.pos = 0;
		r.lineno = 0;
		err = read_messages(&r, &d, sc.order, count_emit, &count, &line);
	}
	pb__chat_lines_free(&r);
	scan_free(&sc);
	return err != 0 ? err : (int)(count > INT32_MAX ? INT32_MAX : count);
}

/* The order named by a --date-format value ("DD/MM/YY", "MM/DD/YYYY",
 * "YYYY-MM-DD", "dmy", "mdy", "ymd"): which of D, M, Y comes first. */
int pb__chat_whatsapp_order(const char *fmt)
{
	const char *d, *m, *y;

	if (fmt == NULL || fmt[0] == 0)
		return WA_ORDER_NONE;
	d = strpbrk(fmt, "Dd");
	m = strpbrk(fmt, "Mm");
	y = strpbrk(fmt, "Yy");
	if (d == NULL || m == NULL || y == NULL)
		return PB_EINVAL;
	if (y < d && y < m)
		return m < d ? WA_YMD : PB_EINVAL;
	return d < m ? WA_DMY : WA_MDY;
}

/* --- Import ---------------------------------------------------------------- */

/* The chat's name from "WhatsApp Chat with NAME.txt", "WhatsApp Chat -
 * NAME/_chat.txt" or the file name. */
static int chat_name(const char *file, char *out, size_t cap)
{
	const char *base = strrchr(file, '/'), *end;
	/* The export's file name in WhatsApp's languages. */
	const char *prefixes[] = {"WhatsApp Chat with ", "WhatsApp Chat - ", "WhatsApp-Chat mit ",
				  "Chat de WhatsApp con ", "Discussion WhatsApp avec ", "Conversa do WhatsApp com ",
				  "Ð§Ð°Ñ WhatsApp Ñ ", /* Чат WhatsApp с */
				  "ä¸ WhatsApp èå¤©ï¼", /* 与 WhatsApp 聊天： */
				  NULL};
	size_t n;
	int i;

	base = base ? base + 1 : file;
	if (strcmp(base, "_chat.txt") == 0 && base > file + 1) {
		/* iOS: the name is the folder's. */
		end = base - 1;
		base = end;
		while (base > file && base[-1] != '/')
			base--;
	} else {
		end = base + strlen(base);
		if (end - base > 4 && strcasecmp(end - 4, ".txt") == 0)
			end -= 4;
	}
	for (i = 0; prefixes[i] != NULL; i++) {
		n = strlen(prefixes[i]);
		if ((size_t)(end - base) > n && strncmp(base, prefixes[i], n) == 0) {
			base += n;
			break;
		}
	}
	n = (size_t)(end - base);
	if (n == 0 || n >= cap)
		return PB_EINVAL;
	memcpy(out, base, n);
	out[n] = 0;
	return 0;
}

struct wa_import {
	pb__chat_stage_t *st;
	pb__chat_writer_t w;
	char srcdir[4096];
	char chat_id[32];
	char why[300];
};

static int imp_emit(void *arg, pb__cj_t *msg)
{
	struct wa_import *im = arg;
	char rel[2048], dst[8300];
	const pb__cj_t *m;
	int err = 0, n, fd;

	for (m = msg->child; m != NULL && err == 0; m = m->next) {
		if (!pb__chat_is_attachment(m))
			continue;
		if (!pb__chat_relpath_ok(m->str, m->len) || strcmp(m->str, "result.json") == 0) {
			pb__chat_fail(im->why, sizeof(im->why), 0, "attachment name \"%.60s\" is not a safe file name", m->str);
			err = PB_EDATA_FIELD;
			break;
		}
		/* A file the export left out stays a reference; a symbolic
		 * link is refused: it may point at anything on the phone. */
		err = pb__chat_open_below(im->srcdir, m->str, &fd);
		if (err == PB_EDATA_LINK) {
			pb__chat_fail(im->why, sizeof(im->why), 0,
				      "attachment %.80s is a symbolic link; links in an export are not followed (put "
				      "the file itself in the export)", m->str);
			break;
		}
		if (err != 0) {
			err = 0;
			continue;
		}
		n = snprintf(rel, sizeof(rel), "chats/%s/%s", im->chat_id, m->str);
		if (n < 0 || (size_t)n >= sizeof(rel))
			err = PB_ETOOBIG;
		else if ((err = pb__chat_stage_path(im->st, rel, dst, sizeof(dst))) == 0)
			err = pb__chat_copy_fd(fd, dst);
		close(fd);
	}
	if (err == 0)
		err = pb__chat_writer_message(&im->w, msg);
	pb__cj_free(msg);
	return err;
}

int pb__chat_import_whatsapp(pb__chat_stage_t *st, const char *file, const char *date_format, char *errbuf,
			     size_t errcap)
{
	struct wa_import im;
	struct wa_scan sc;
	struct wa_dialect d;
	pb__chat_lines_t r;
	pb__cj_t *frame = NULL;
	char name[512], rel[128], path[4200], why[300];
	const char *slash = strrchr(file, '/');
	uint64_t line = 0;
	int err, n, forced = pb__chat_whatsapp_order(date_format);

	memset(&im, 0, sizeof(im));
	memset(&sc, 0, sizeof(sc));
	memset(&r, 0, sizeof(r));
	im.st = st;
	if (forced == PB_EINVAL)
		return pb__chat_fail(errbuf, errcap, PB_EINVAL,
				     "--date-format \"%s\": give the order of day, month and year, e.g. DD/MM/YY, "
				     "MM/DD/YY or YYYY-MM-DD", date_format);
	n = slash ? snprintf(im.srcdir, sizeof(im.srcdir), "%.*s", (int)(slash - file), file)
		  : snprintf(im.srcdir, sizeof(im.srcdir), ".");
	if (n < 0 || (size_t)n >= sizeof(im.srcdir) || chat_name(file, name, sizeof(name)) != 0)
		return pb__chat_fail(errbuf, errcap, PB_EINVAL, "%s: cannot derive a chat name from the file name",
				     file);
	r.f = fopen(file, "rb");
	if (r.f == NULL)
		return pb__chat_fail(errbuf, errcap, -errno, "cannot open %s: %s", file, strerror(errno));
	if ((err = scan_all(&r, &sc, &line)) != 0) {
		pb__chat_fail(errbuf, errcap, err, "%s: line %llu: %s", file, (unsigned long long)line, why_of(err));
		goto out_close;
	}
	if ((err = settle_order(&sc, forced, why, sizeof(why))) != 0) {
		pb__chat_fail(errbuf, errcap, err, "%s: %s", file, why);
		goto out_close;
	}
	if ((err = scan_dialect(&sc, &d)) != 0) {
		pb__chat_fail(errbuf, errcap, err, "%s: line 1: a date style too long to keep", file);
		goto out_close;
	}
	/* The frame: name, type, id, and the file's dialect. */
	n = snprintf(im.chat_id, sizeof(im.chat_id), "%llu",
		     (unsigned long long)(pb__chat_hash64(name, strlen(name)) % 1000000000000000ull));
	if (n < 0 || (size_t)n >= sizeof(im.chat_id)) {
		err = pb__chat_fail(errbuf, errcap, PB_EINVAL, "%s: bad chat id", file);
		goto out_close;
	}
	frame = pb__cj_new(PB__CJ_OBJ);
	if (frame == NULL || add_str(frame, "name", name, strlen(name)) != 0 ||
	    add_str(frame, "type", sc.group ? "private_group" : "personal_chat", strlen(sc.group ? "private_group" : "personal_chat")) != 0 ||
	    add_num(frame, "id", strtoll(im.chat_id, NULL, 10)) != 0 ||
	    add_str(frame, "whatsapp_format", d.pattern, strlen(d.pattern)) != 0 ||
	    (d.am[0] && (add_str(frame, "whatsapp_am", d.am, strlen(d.am)) != 0 ||
			 add_str(frame, "whatsapp_pm", d.pm, strlen(d.pm)) != 0)) ||
	    (sc.crlf && add_str(frame, "whatsapp_eol", "\r\n", 2) != 0) ||
	    (d.arabic && add_str(frame, "whatsapp_digits", "arabic", 6) != 0) ||
	    add_str(frame, "whatsapp_lang", wa_langs[d.lang].code, strlen(wa_langs[d.lang].code)) != 0) {
		err = pb__chat_fail(errbuf, errcap, PB_ENOMEM, "out of memory");
		goto out_close;
	}
	n = snprintf(rel, sizeof(rel), "chats/%s/result.json", im.chat_id);
	if (n < 0 || (size_t)n >= sizeof(rel) || (err = pb__chat_stage_path(st, rel, path, sizeof(path))) != 0) {
		err = pb__chat_fail(errbuf, errcap, err ? err : PB_ETOOBIG, "cannot stage %s", rel);
		goto out_close;
	}
	if (access(path, F_OK) == 0) {
		err = pb__chat_fail(errbuf, errcap, PB_EEXISTS, "%s: chat \"%s\" is imported twice", file, name);
		goto out_close;
	}
	if ((err = pb__chat_writer_open(&im.w, path, frame)) != 0) {
		pb__chat_fail(errbuf, errcap, err, "cannot stage %s: %s", rel, pb_strerror(err));
		goto out_close;
	}
	rewind(r.f);
	r.lineno = 0;
	err = read_messages(&r, &d, sc.order, imp_emit, &im, &line);
	if (err == 0)
		err = pb__chat_writer_close(&im.w);
	else
		pb__chat_writer_abort(&im.w);
	if (err != 0)
		pb__chat_fail(errbuf, errcap, err, "%s: line %llu: %s", file, (unsigned long long)line,
			      im.why[0] ? im.why : why_of(err));
out_close:
	pb__cj_free(frame);
	scan_free(&sc);
	pb__chat_lines_free(&r);
	fclose(r.f);
	return err;
}

/* --- Export ---------------------------------------------------------------- */

struct wa_export {
	FILE *f;
	const char *device_dir, *out_dir, *chat;
	struct wa_dialect d;
	bool have_dialect;
};

static void sanitize(char *s)
{
	for (; *s; s++)
		if (*s == '/' || (unsigned char)*s < 0x20 || *s == '\\')
			*s = '_';
}

/* Each message in the chat's own dialect (the one it was imported in, or
 * the iOS style for chats from elsewhere); attachments are copied along. */
static int wx_message(void *arg, pb__chat_tg_chat_t *chat, pb__cj_t *msg)
{
	struct wa_export *ex = arg;
	const pb__cj_t *m, *att = NULL;
	char src[8192], dst[8192];
	pb_buf_t b = {0};
	int err, n;
	struct stat sb;

	if (!ex->have_dialect) {
		dialect_of_frame(chat->frame, &ex->d);
		ex->have_dialect = true;
	}
	err = render_msg(&ex->d, msg, &b);
	if (err == 1) {
		err = 0; /* a message without a date has no WhatsApp line */
		goto out_free;
	}
	if (err == 0 && b.len > 0 && fwrite(b.data, 1, b.len, ex->f) != b.len)
		err = PB_EIO;
	for (m = msg->child; m != NULL && err == 0; m = m->next)
		if (pb__chat_is_attachment(m) && strcmp(m->key, "thumbnail") != 0 && pb__chat_relpath_ok(m->str, m->len)) {
			att = m;
			break;
		}
	if (err == 0 && att != NULL) {
		n = snprintf(src, sizeof(src), "%s/chats/%s/%s", ex->device_dir, ex->chat, att->str);
		if (n > 0 && (size_t)n < sizeof(src) && stat(src, &sb) == 0 && S_ISREG(sb.st_mode)) {
			n = snprintf(dst, sizeof(dst), "%s/%s", ex->out_dir, att->str);
			if (n < 0 || (size_t)n >= sizeof(dst))
				err = PB_ETOOBIG;
			else if ((err = pb__chat_mkparents(dst)) == 0)
				err = pb__chat_copy_file(src, dst);
		}
	}
out_free:
	pb__chat_buf_clear(&b);
	pb__cj_free(msg);
	return err;
}

/* The chat's name from the head of its canonical file, if it has one. */
static void frame_name(const char *path, char *name, size_t cap)
{
	char hbuf[8192], *mstart;
	pb__cj_t *frame = NULL;
	const char *nm;
	size_t got;
	FILE *f;

	f = fopen(path, "rb");
	if (f == NULL)
		return;
	got = fread(hbuf, 1, sizeof(hbuf) - 1, f);
	fclose(f);
	hbuf[got] = 0;
	mstart = strstr(hbuf, "\n \"messages\": [");
	if (mstart == NULL || mstart - hbuf < 3 || mstart[-1] != ',')
		return;
	/* "{\n \"name\": ...," closed with "}" is the frame. */
	mstart[-1] = '}';
	if (pb__chat_json_parse((const uint8_t *)hbuf, (size_t)(mstart - hbuf), &frame) != 0)
		return;
	nm = pb__cj_get_str(frame, "name");
	if (nm != NULL && nm[0] != 0)
		pb__chat_fail(name, cap, 0, "%s", nm);
	pb__cj_free(frame);
}

int pb__chat_export_whatsapp(const char *device_dir, const char *out_dir, char *errbuf, size_t errcap)
{
	char chats[4096], path[4200], inner[400], name[600], dst[4800];
	pb__chat_tg_sink_t sink;
	struct wa_export ex;
	char **names = NULL;
	size_t n = 0, i;
	int err, k;

	k = snprintf(chats, sizeof(chats), "%s/chats", device_dir);
	if (k < 0 || (size_t)k >= sizeof(chats))
		return PB_ETOOBIG;
	if ((err = pb__chat_list(chats, true, &names, &n)) != 0)
		return pb__chat_fail(errbuf, errcap, err, "%s: %s", chats, strerror(-err));
	if (n == 0) {
		err = pb__chat_fail(errbuf, errcap, PB_ENOTFOUND, "%s: the device has no chats", device_dir);
		goto out_names;
	}
	if ((err = pb__chat_mkdirs(out_dir)) != 0) {
		pb__chat_fail(errbuf, errcap, err, "%s: %s", out_dir, strerror(-err));
		goto out_names;
	}
	for (i = 0; i < n && err == 0; i++) {
		k = snprintf(path, sizeof(path), "%s/%s/result.json", chats, names[i]);
		if (k < 0 || (size_t)k >= sizeof(path)) {
			err = PB_ETOOBIG;
			break;
		}
		pb__chat_fail(name, sizeof(name), 0, "%s", names[i]);
		frame_name(path, name, sizeof(name));
		sanitize(name);
		k = snprintf(dst, sizeof(dst), "%s/WhatsApp Chat with %s.txt", out_dir, name);
		if (k < 0 || (size_t)k >= sizeof(dst)) {
			err = PB_ETOOBIG;
			break;
		}
		if (access(dst, F_OK) == 0) {
			k = snprintf(dst, sizeof(dst), "%s/WhatsApp Chat with %s (%s).txt", out_dir, name, names[i]);
			if (k < 0 || (size_t)k >= sizeof(dst)) {
				err = PB_ETOOBIG;
				break;
			}
		}
		memset(&ex, 0, sizeof(ex));
		ex.device_dir = device_dir;
		ex.out_dir = out_dir;
		ex.chat = names[i];
		ex.f = fopen(dst, "wb");
		if (ex.f == NULL) {
			err = pb__chat_fail(errbuf, errcap, -errno, "%s: %s", dst, strerror(errno));
			break;
		}
		memset(&sink, 0, sizeof(sink));
		sink.message = wx_message;
		sink.arg = &ex;
		sink.single_only = true;
		err = pb__chat_tg_parse_file(path, &sink, inner, sizeof(inner));
		if (fclose(ex.f) != 0 && err == 0)
			err = PB_EIO;
		if (err != 0) {
			pb__chat_fail(errbuf, errcap, err, "%s: %s", path, inner);
			unlink(dst);
		}
	}
out_names:
	pb__chat_names_free(names, n);
	return err;
}

bool pb__chat_whatsapp_all(const char *device_dir)
{
	char chats[4096], path[4200], hbuf[8192];
	char **names = NULL;
	size_t n = 0, i, got;
	bool all;
	FILE *f;
	int k;

	k = snprintf(chats, sizeof(chats), "%s/chats", device_dir);
	if (k < 0 || (size_t)k >= sizeof(chats) || pb__chat_list(chats, true, &names, &n) != 0)
		return false;
	all = n > 0;
	for (i = 0; i < n && all; i++) {
		k = snprintf(path, sizeof(path), "%s/%s/result.json", chats, names[i]);
		all = false;
		if (k < 0 || (size_t)k >= sizeof(path) || (f = fopen(path, "rb")) == NULL)
			break;
		got = fread(hbuf, 1, sizeof(hbuf) - 1, f);
		fclose(f);
		hbuf[got] = 0;
		/* The frame's fields come one a line before the messages. */
		{
			char *msgs = strstr(hbuf, "\n \"messages\": [");

			if (msgs != NULL)
				*msgs = 0;
			all = strstr(hbuf, "\n \"whatsapp_format\": ") != NULL;
		}
	}
	pb__chat_names_free(names, n);
	return all;
}
