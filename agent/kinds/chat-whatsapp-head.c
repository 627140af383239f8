/* WhatsApp chat lines: the head of a message ("[31/01/2024, 2:05:09 PM] ",
 * "31/01/24, 14:05 - ") in pieces, its date once the day/month order is
 * known, "Author: text" against system lines, and the attachment a
 * message's first line names; the locales' clock markers and attachment
 * lines. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"
#include "agent/kinds/chat-whatsapp.h"

/* --- Locales --------------------------------------------------------------- */

/* Clock markers, as the phone's locale writes them after (or, in Chinese,
 * before) the time. */
const struct wa_clock pb__wa_clocks[] = {
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
const struct wa_lang pb__wa_langs[] = {
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


const size_t pb__wa_nclocks = sizeof(pb__wa_clocks) / sizeof(pb__wa_clocks[0]);
const size_t pb__wa_nlangs = sizeof(pb__wa_langs) / sizeof(pb__wa_langs[0]);

/* --- Message heads --------------------------------------------------------- */

size_t pb__wa_skip_marks(const char *s, size_t len, size_t i)
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
		if (pb__wa_clocks[k].before != before)
			continue;
		if (starts(s, len, i, pb__wa_clocks[k].am) || starts(s, len, i, pb__wa_clocks[k].pm)) {
			*ampm = starts(s, len, i, pb__wa_clocks[k].am) ? 1 : 2;
			*n = strlen(*ampm == 1 ? pb__wa_clocks[k].am : pb__wa_clocks[k].pm);
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

bool pb__wa_parse_head(const char *s, size_t len, struct wa_head *h)
{
	size_t i, l0, n;

	memset(h, 0, sizeof(*h));
	h->clock = -1;
	i = h->mark_len = pb__wa_skip_marks(s, len, 0);
	if (i < len && s[i] == '[') {
		h->bracket = true;
		i++;
	}
	h->arabic = arabic_digit(s, len, i) >= 0;
	if (!digits(s, len, &i, 1, 4, &h->f[0], &h->nd[0]) || h->nd[0] == 3 || i >= len)
		return false;
	/* Right-to-left locales put a mark before each separator. */
	l0 = i;
	i = pb__wa_skip_marks(s, len, i);
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
bool pb__wa_head_date(const struct wa_head *h, int order, struct tm *tm)
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
bool pb__wa_split_author(const char *b, size_t len, size_t *alen)
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

/* --- Attachment lines ------------------------------------------------------ */

void pb__wa_msg_clear(struct wa_msg *m)
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
int pb__wa_find_attachment(struct wa_msg *m, const char *t, size_t tlen, size_t *took, int *lang)
{
	size_t k = pb__wa_skip_marks(t, tlen, 0), l, o, an;
	const char *gt;

	*took = 0;
	for (l = 0; l < WA_NLANGS; l++) {
		an = strlen(pb__wa_langs[l].attached);
		if (tlen - k > an && memcmp(t + k, pb__wa_langs[l].attached, an) == 0 &&
		    (gt = memchr(t + k + an, '>', tlen - k - an)) != NULL) {
			*took = (size_t)(gt + 1 - t);
			if (*took < tlen && t[*took] == ' ')
				(*took)++;
			m->attachment = strndup(t + k + an, (size_t)(gt - (t + k + an)));
			m->attach_raw = strndup(t, *took);
			*lang = (int)l;
			return m->attachment && m->attach_raw ? 0 : PB_ENOMEM;
		}
		an = strlen(pb__wa_langs[l].file);
		if (tlen > k + an && ends_with(t, tlen, pb__wa_langs[l].file) && memchr(t + k, ' ', tlen - an - k) == NULL) {
			*took = tlen;
			m->attachment = strndup(t + k, tlen - an - k);
			m->attach_raw = strndup(t, tlen);
			*lang = (int)l;
			return m->attachment && m->attach_raw ? 0 : PB_ENOMEM;
		}
		for (o = 0; o < 3; o++) {
			if (pb__wa_langs[l].omitted[o] == NULL || tlen - k != strlen(pb__wa_langs[l].omitted[o]) ||
			    memcmp(t + k, pb__wa_langs[l].omitted[o], tlen - k) != 0)
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
