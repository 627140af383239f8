/* WhatsApp chat exports, shared by chat-whatsapp-head.c (the line parser:
 * heads, authors, attachments, locales), chat-whatsapp-dialect.c (a file's
 * order and dialect, writing heads) and chat-whatsapp.c (messages, import,
 * export), each using only those before it. Every function name is
 * pb__wa_. */
#ifndef PB_KINDS_CHAT_WHATSAPP_H
#define PB_KINDS_CHAT_WHATSAPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "agent/kinds/chat-util.h"

/* --- Locales (chat-whatsapp-head.c) ---------------------------------------- */

/* Clock markers, as the phone's locale writes them after (or, in Chinese,
 * before) the time. */
struct wa_clock {
	const char *am, *pm;
	bool before;
};

/* Attachment lines in one of WhatsApp's languages. */
struct wa_lang {
	const char *code;
	const char *attached;  /* "<attached: " ... ">" */
	const char *file;      /* NAME " (file attached)" */
	const char *omitted[3]; /* the whole text of a message whose media was left out */
};

extern const struct wa_clock pb__wa_clocks[];
extern const struct wa_lang pb__wa_langs[];
extern const size_t pb__wa_nclocks, pb__wa_nlangs;
#define WA_NLANGS pb__wa_nlangs
#define WA_NCLOCKS pb__wa_nclocks

/* --- Message heads (chat-whatsapp-head.c) ---------------------------------- */

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
	int clock;       /* pb__wa_clocks index, -1 for a 24-hour clock */
	int ampm;        /* 0 none, 1 AM, 2 PM */
	const char *body;
	size_t body_len;
};

/* Skips the direction and embedding marks (U+200E, U+200F, U+202A..U+202C)
 * from s[i]; returns the index after them. */
size_t pb__wa_skip_marks(const char *s, size_t len, size_t i);
/* Reads the head at the start of a line into h (its body points into s);
 * false when the line has none. */
bool pb__wa_parse_head(const char *s, size_t len, struct wa_head *h);
/* The head's date and time in order (enum wa_order); false when they are
 * no date. */
bool pb__wa_head_date(const struct wa_head *h, int order, struct tm *tm);
/* Splits "Author: text" (alen: the author's length); false for a system
 * line. */
bool pb__wa_split_author(const char *b, size_t len, size_t *alen);

/* --- Dialect and the first pass (chat-whatsapp-dialect.c) ------------------ */

/* The pattern of a head: D DD M MM YY YYYY (date), H HH (24-hour) or h hh
 * (12-hour), mm, ss, a (the clock marker); every other character stands for
 * itself. "[D/M/YY, h:mm:ss\u202fa] " or "DD.MM.YY, HH:mm - ". */
struct wa_dialect {
	char pattern[64];
	char am[32], pm[32];
	char eol[3];
	bool bracket, arabic; /* arabic: Arabic-Indic digits */
	int lang; /* pb__wa_langs index for attachments written afresh */
};

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

/* The dialect a chat's frame records, or the default. */
void pb__wa_dialect_of_frame(const pb__cj_t *frame, struct wa_dialect *d);
/* Appends a head for tm in dialect d. */
PB_WUR int pb__wa_render_head(const struct wa_dialect *d, const struct tm *tm, pb_buf_t *out);
/* First pass: every line of r into sc; line_out receives the line of a
 * problem. sc is freed with pb__wa_scan_free. */
PB_WUR int pb__wa_scan_all(pb__chat_lines_t *r, struct wa_scan *sc, uint64_t *line_out);
void pb__wa_scan_free(struct wa_scan *sc);
/* Settles sc->order (forced: from --date-format, or WA_ORDER_NONE); why
 * (may be NULL) receives a sentence when the file cannot be settled. */
PB_WUR int pb__wa_settle_order(struct wa_scan *sc, int forced, char *why, size_t cap);
/* The file's dialect once the order is settled. */
PB_WUR int pb__wa_scan_dialect(const struct wa_scan *sc, struct wa_dialect *d);

/* --- Messages (chat-whatsapp.c; an attachment in chat-whatsapp-head.c) ---- */

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

void pb__wa_msg_clear(struct wa_msg *m);
/* Finds the attachment of a message's first line t (after "Author: "):
 * sets m->attachment / m->attach_raw (or m->omitted), *took to how many
 * bytes of t they took (the text starts there) and *lang to the language
 * of the line. */
PB_WUR int pb__wa_find_attachment(struct wa_msg *m, const char *t, size_t tlen, size_t *took, int *lang);

#endif
