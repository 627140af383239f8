/* WhatsApp ".txt" chat exports: import into the canonical chat form and
 * export from it.
 *
 * Android: "31/01/24, 14:05 - Alice: text", iOS: "[31/01/2024, 2:05:09 PM]
 * Alice: text". Lines may start with U+200E; the day/month order follows the
 * phone's locale and is found from the data (a first field over 12 means
 * day first, a second field over 12 month first, day first otherwise). A
 * line without "Author: " is a system message, a line not starting with a
 * date continues the message before it. Attachments read
 * "IMG-20240131-WA0001.jpg (file attached)" or "<attached: name>".
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

struct wa_head {
	unsigned f1, f2, year, hour, min, sec;
	bool has_sec;
	int ampm; /* 0 none, 1 AM, 2 PM */
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

static bool digits(const char *s, size_t len, size_t *i, unsigned min, unsigned max, unsigned *out)
{
	unsigned v = 0, n = 0;

	while (*i < len && s[*i] >= '0' && s[*i] <= '9' && n < max) {
		v = v * 10 + (unsigned)(s[*i] - '0');
		(*i)++;
		n++;
	}
	if (n < min)
		return false;
	*out = v;
	return true;
}

static bool parse_head(const char *s, size_t len, struct wa_head *h)
{
	size_t i = skip_marks(s, len, 0), y0;
	bool bracket = false;
	char sep;

	memset(h, 0, sizeof(*h));
	if (i < len && s[i] == '[') {
		bracket = true;
		i++;
	}
	if (!digits(s, len, &i, 1, 2, &h->f1) || i >= len)
		return false;
	sep = s[i];
	if (sep != '/' && sep != '.' && sep != '-')
		return false;
	i++;
	if (!digits(s, len, &i, 1, 2, &h->f2) || i >= len || s[i] != sep)
		return false;
	i++;
	y0 = i;
	if (!digits(s, len, &i, 2, 4, &h->year) || (i - y0 != 2 && i - y0 != 4))
		return false;
	if (i - y0 == 2)
		h->year += 2000;
	if (i < len && s[i] == '.')
		i++;
	if (i < len && s[i] == ',')
		i++;
	if (i >= len || s[i] != ' ')
		return false;
	i++;
	if (!digits(s, len, &i, 1, 2, &h->hour) || i >= len || s[i] != ':')
		return false;
	i++;
	if (!digits(s, len, &i, 2, 2, &h->min))
		return false;
	if (i < len && s[i] == ':') {
		i++;
		if (!digits(s, len, &i, 2, 2, &h->sec))
			return false;
		h->has_sec = true;
	}
	/* " AM", or with U+202F / U+00A0 before it. */
	{
		size_t j = i;

		if (j + 1 <= len && s[j] == ' ')
			j++;
		else if (j + 3 <= len && memcmp(s + j, "\xe2\x80\xaf", 3) == 0)
			j += 3;
		else if (j + 2 <= len && memcmp(s + j, "\xc2\xa0", 2) == 0)
			j += 2;
		if (j != i && j + 2 <= len && (s[j] == 'A' || s[j] == 'a' || s[j] == 'P' || s[j] == 'p') &&
		    (s[j + 1] == 'M' || s[j + 1] == 'm')) {
			h->ampm = (s[j] == 'A' || s[j] == 'a') ? 1 : 2;
			i = j + 2;
		}
	}
	if (bracket) {
		if (i >= len || s[i] != ']')
			return false;
		i++;
		if (i < len && s[i] == ' ')
			i++;
	} else {
		if (i + 3 > len || memcmp(s + i, " - ", 3) != 0)
			return false;
		i += 3;
	}
	i = skip_marks(s, len, i);
	h->body = s + i;
	h->body_len = len - i;
	return true;
}

/* Date fields as (day, month) for the detected order; false if invalid. */
static bool head_date(const struct wa_head *h, bool month_first, struct tm *tm)
{
	unsigned day = month_first ? h->f2 : h->f1, mon = month_first ? h->f1 : h->f2, hour = h->hour;
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

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
	tm->tm_year = (int)h->year - 1900;
	tm->tm_mon = (int)mon - 1;
	tm->tm_mday = (int)day;
	tm->tm_hour = (int)hour;
	tm->tm_min = (int)h->min;
	tm->tm_sec = (int)h->sec;
	return true;
}

/* Splits "Author: text"; false for a system line. */
static bool split_author(const char *b, size_t len, size_t *alen)
{
	size_t i;

	for (i = 0; i + 1 < len && i < 200; i++) {
		if (b[i] == ':' && b[i + 1] == ' ') {
			if (i == 0)
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
	bool active, system, attach_only;
	struct tm tm;
	char *author;
	pb_buf_t text;
	char *attachment;
};

static void msg_clear(struct wa_msg *m)
{
	free(m->author);
	free(m->attachment);
	pb__chat_buf_clear(&m->text);
	memset(m, 0, sizeof(*m));
}

static bool ends_with(const char *s, size_t len, const char *suf)
{
	size_t n = strlen(suf);

	return len >= n && memcmp(s + len - n, suf, n) == 0;
}

static int msg_start(struct wa_msg *m, const struct wa_head *h, const struct tm *tm)
{
	const char *t;
	size_t alen = 0, tlen, k;
	int err = 0;

	msg_clear(m);
	m->active = true;
	m->tm = *tm;
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
		k = skip_marks(t, tlen, 0);
		if (tlen - k > 11 && memcmp(t + k, "<attached: ", 11) == 0 && memchr(t + k, '>', tlen - k) != NULL) {
			const char *gt = memchr(t + k, '>', tlen - k);

			m->attachment = strndup(t + k + 11, (size_t)(gt - (t + k + 11)));
			if (m->attachment == NULL)
				return PB_ENOMEM;
			tlen -= (size_t)(gt + 1 - t);
			t = gt + 1;
			if (tlen > 0 && t[0] == ' ') {
				t++;
				tlen--;
			}
		} else if (ends_with(t, tlen, " (file attached)") && tlen > 16 &&
			   memchr(t + k, ' ', tlen - 16 - k) == NULL) {
			m->attachment = strndup(t + k, tlen - 16 - k);
			if (m->attachment == NULL)
				return PB_ENOMEM;
			tlen = 0;
		}
		m->attach_only = m->attachment != NULL && tlen == 0;
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

/* Builds the Telegram-style object of a finished message. */
static int msg_object(const struct wa_msg *m, long long id, pb__cj_t **out)
{
	pb__cj_t *o = pb__cj_new(PB__CJ_OBJ), *ents = NULL, *ent = NULL;
	char date[32];
	const char *media, *mime;
	struct tm tm = m->tm;
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
	    (err = add_str(o, "type", m->system ? "service" : "message", m->system ? 7 : 7)) != 0 ||
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
	*out = o;
	return 0;
out_free:
	pb__cj_free(o);
	return err;
}

/* --- The two passes -------------------------------------------------------- */

struct wa_scan {
	unsigned max1, max2;
	char *authors[2];
	bool group;
	uint64_t heads;
};

static void scan_free(struct wa_scan *sc)
{
	free(sc->authors[0]);
	free(sc->authors[1]);
}

static int scan_line(struct wa_scan *sc, const char *line, size_t len)
{
	struct wa_head h;
	size_t alen;
	int i;

	if (!parse_head(line, len, &h))
		return sc->heads == 0 && len > 0 && skip_marks(line, len, 0) < len ? PB_EDATA_FORMAT : 0;
	sc->heads++;
	if (h.f1 > sc->max1)
		sc->max1 = h.f1;
	if (h.f2 > sc->max2)
		sc->max2 = h.f2;
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

typedef int (*wa_emit_fn)(void *arg, pb__cj_t *msg);

/* Second pass: messages, one at a time, to emit. */
static int read_messages(pb__chat_lines_t *r, bool month_first, wa_emit_fn emit, void *arg, uint64_t *line_out)
{
	struct wa_msg m;
	struct wa_head h;
	struct tm tm;
	const char *line;
	size_t len;
	long long id = 0;
	pb__cj_t *o;
	int rc, err = 0;

	memset(&m, 0, sizeof(m));
	while ((rc = pb__chat_lines_next(r, &line, &len)) == 1) {
		*line_out = r->lineno;
		if (parse_head(line, len, &h) && head_date(&h, month_first, &tm)) {
			if (m.active) {
				if ((err = msg_object(&m, ++id, &o)) != 0 || (err = emit(arg, o)) != 0)
					goto out_msg;
			}
			if ((err = msg_start(&m, &h, &tm)) != 0)
				goto out_msg;
			continue;
		}
		if (!m.active) {
			if (len == 0 || skip_marks(line, len, 0) == len)
				continue;
			err = PB_EDATA_FORMAT;
			goto out_msg;
		}
		if ((err = msg_continue(&m, line, len)) != 0)
			goto out_msg;
	}
	if (rc < 0) {
		*line_out = r->lineno;
		err = rc;
		goto out_msg;
	}
	if (m.active && ((err = msg_object(&m, ++id, &o)) != 0 || (err = emit(arg, o)) != 0))
		goto out_msg;
out_msg:
	msg_clear(&m);
	return err;
}

static int scan_all(pb__chat_lines_t *r, struct wa_scan *sc, uint64_t *line_out)
{
	const char *line;
	size_t len;
	int rc, err;

	while ((rc = pb__chat_lines_next(r, &line, &len)) == 1) {
		*line_out = r->lineno;
		if ((err = scan_line(sc, line, len)) != 0)
			return err;
	}
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
	uint64_t line = 0, count = 0;
	int err;

	memset(&r, 0, sizeof(r));
	memset(&sc, 0, sizeof(sc));
	r.mem = buf;
	r.memlen = len;
	err = scan_all(&r, &sc, &line);
	if (err == 0) {
		r.pos = 0;
		r.lineno = 0;
		err = read_messages(&r, sc.max1 <= 12 && sc.max2 > 12, count_emit, &count, &line);
	}
	pb__chat_lines_free(&r);
	scan_free(&sc);
	return err != 0 ? err : (int)(count > INT32_MAX ? INT32_MAX : count);
}

/* --- Import ---------------------------------------------------------------- */

/* The chat's name from "WhatsApp Chat with NAME.txt", "WhatsApp Chat -
 * NAME/_chat.txt" or the file name. */
static int chat_name(const char *file, char *out, size_t cap)
{
	const char *base = strrchr(file, '/'), *end;
	const char *prefixes[] = {"WhatsApp Chat with ", "WhatsApp Chat - ", "WhatsApp-Chat mit ", NULL};
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

int pb__chat_import_whatsapp(pb__chat_stage_t *st, const char *file, char *errbuf, size_t errcap)
{
	struct wa_import im;
	struct wa_scan sc;
	pb__chat_lines_t r;
	pb__cj_t *frame = NULL;
	char name[512], rel[128], path[4200];
	const char *slash = strrchr(file, '/');
	uint64_t line = 0;
	int err, n;

	memset(&im, 0, sizeof(im));
	memset(&sc, 0, sizeof(sc));
	memset(&r, 0, sizeof(r));
	im.st = st;
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
	/* The frame: name, type, id. */
	n = snprintf(im.chat_id, sizeof(im.chat_id), "%llu",
		     (unsigned long long)(pb__chat_hash64(name, strlen(name)) % 1000000000000000ull));
	if (n < 0 || (size_t)n >= sizeof(im.chat_id)) {
		err = pb__chat_fail(errbuf, errcap, PB_EINVAL, "%s: bad chat id", file);
		goto out_close;
	}
	frame = pb__cj_new(PB__CJ_OBJ);
	if (frame == NULL || add_str(frame, "name", name, strlen(name)) != 0 ||
	    add_str(frame, "type", sc.group ? "private_group" : "personal_chat", strlen(sc.group ? "private_group" : "personal_chat")) != 0 ||
	    add_num(frame, "id", strtoll(im.chat_id, NULL, 10)) != 0) {
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
	err = read_messages(&r, sc.max1 <= 12 && sc.max2 > 12, imp_emit, &im, &line);
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
};

static void sanitize(char *s)
{
	for (; *s; s++)
		if (*s == '/' || (unsigned char)*s < 0x20 || *s == '\\')
			*s = '_';
}

static int wx_message(void *arg, pb__chat_tg_chat_t *chat, pb__cj_t *msg)
{
	struct wa_export *ex = arg;
	const char *date = pb__cj_get_str(msg, "date"), *from, *type = pb__cj_get_str(msg, "type");
	const pb__cj_t *m, *att = NULL;
	char src[8192], dst[8192];
	unsigned y, mo, d, h, mi, s;
	char *text = NULL;
	int err = 0, n;
	struct stat sb;

	(void)chat;
	if (date == NULL || sscanf(date, "%4u-%2u-%2uT%2u:%2u:%2u", &y, &mo, &d, &h, &mi, &s) != 6)
		goto out_free; /* a message without a date has no WhatsApp line */
	text = pb__cj_flatten_text(pb__cj_get(msg, "text"));
	if (text == NULL) {
		err = PB_ENOMEM;
		goto out_free;
	}
	for (m = msg->child; m != NULL; m = m->next)
		if (pb__chat_is_attachment(m) && strcmp(m->key, "thumbnail") != 0 &&
		    pb__chat_relpath_ok(m->str, m->len)) {
			att = m;
			break;
		}
	if (fprintf(ex->f, "[%02u/%02u/%04u, %02u:%02u:%02u] ", d, mo, y, h, mi, s) < 0) {
		err = PB_EIO;
		goto out_free;
	}
	if (type != NULL && strcmp(type, "service") == 0) {
		if (text[0] == 0) {
			const char *actor = pb__cj_get_str(msg, "actor"), *action = pb__cj_get_str(msg, "action");

			if (fprintf(ex->f, "%s %s", actor ? actor : "Someone", action ? action : "did something") < 0)
				err = PB_EIO;
		}
	} else {
		from = pb__cj_get_str(msg, "from");
		if (from == NULL)
			from = "Deleted Account";
		if (fprintf(ex->f, "%s: ", from) < 0)
			err = PB_EIO;
		if (att != NULL && err == 0) {
			if (fprintf(ex->f, "<attached: %s>%s", att->str, text[0] ? "\n" : "") < 0)
				err = PB_EIO;
			n = snprintf(src, sizeof(src), "%s/chats/%s/%s", ex->device_dir, ex->chat, att->str);
			if (n > 0 && (size_t)n < sizeof(src) && stat(src, &sb) == 0 && S_ISREG(sb.st_mode)) {
				n = snprintf(dst, sizeof(dst), "%s/%s", ex->out_dir, att->str);
				if (n < 0 || (size_t)n >= sizeof(dst))
					err = PB_ETOOBIG;
				else if ((err = pb__chat_mkparents(dst)) == 0)
					err = pb__chat_copy_file(src, dst);
			}
		}
	}
	if (err == 0 && fprintf(ex->f, "%s\n", text) < 0)
		err = PB_EIO;
out_free:
	free(text);
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
