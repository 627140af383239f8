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
#include "agent/kinds/chat-whatsapp.h"

/* --- Message assembly ------------------------------------------------------ */

static int msg_start(struct wa_msg *m, const char *line, const struct wa_head *h, const struct tm *tm, int *lang)
{
	const char *t;
	size_t alen = 0, tlen, took;
	int err = 0;

	pb__wa_msg_clear(m);
	m->active = true;
	m->tm = *tm;
	if (h->mark_len > 0 && (m->mark = strndup(line, h->mark_len)) == NULL)
		return PB_ENOMEM;
	if ((m->head = strndup(line + h->mark_len, h->head_len)) == NULL)
		return PB_ENOMEM;
	m->system = !pb__wa_split_author(h->body, h->body_len, &alen);
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
		if ((err = pb__wa_find_attachment(m, t, tlen, &took, lang)) != 0)
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
		err = (v = pb__cj_get_str(msg, "whatsapp_head")) != NULL ? pb__chat_buf_str(out, v) : pb__wa_render_head(d, &tm, out);
	if (err == 0 && type != NULL && strcmp(type, "service") == 0) {
		if (text[0] == 0) {
			const char *actor = pb__cj_get_str(msg, "actor"), *action = pb__cj_get_str(msg, "action");

			err = pb__chat_buf_printf(out, "%s %s", actor ? actor : "Someone", action ? action : "did something");
		}
	} else if (err == 0) {
		const char *from = pb__cj_get_str(msg, "from"), *raw = pb__cj_get_str(msg, "whatsapp_attach");
		const struct wa_lang *l = &pb__wa_langs[d->lang];

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
	if ((err = pb__wa_render_head(d, &m->tm, &b)) != 0)
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

/* --- The second pass: messages --------------------------------------------- */

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
		if (pb__wa_parse_head(line, len, &h) && pb__wa_head_date(&h, order, &tm)) {
			if (m.active) {
				if ((err = msg_object(&m, d, ++id, &o)) != 0 || (err = emit(arg, o)) != 0)
					goto out_msg;
			}
			if ((err = msg_start(&m, line, &h, &tm, &lang)) != 0 || (err = raw_add(&m, r, line, len)) != 0)
				goto out_msg;
			continue;
		}
		if (!m.active) {
			if (len == 0 || pb__wa_skip_marks(line, len, 0) == len)
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
	pb__wa_msg_clear(&m);
	return err;
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
	err = pb__wa_scan_all(&r, &sc, &line);
	if (err == 0)
		err = pb__wa_settle_order(&sc, WA_ORDER_NONE, NULL, 0);
	if (err == 0)
		err = pb__wa_scan_dialect(&sc, &d);
	if (err == 0) {
		r.pos = 0;
		r.lineno = 0;
		err = read_messages(&r, &d, sc.order, count_emit, &count, &line);
	}
	pb__chat_lines_free(&r);
	pb__wa_scan_free(&sc);
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
	if ((err = pb__wa_scan_all(&r, &sc, &line)) != 0) {
		pb__chat_fail(errbuf, errcap, err, "%s: line %llu: %s", file, (unsigned long long)line, why_of(err));
		goto out_close;
	}
	if ((err = pb__wa_settle_order(&sc, forced, why, sizeof(why))) != 0) {
		pb__chat_fail(errbuf, errcap, err, "%s: %s", file, why);
		goto out_close;
	}
	if ((err = pb__wa_scan_dialect(&sc, &d)) != 0) {
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
	    add_str(frame, "whatsapp_lang", pb__wa_langs[d.lang].code, strlen(pb__wa_langs[d.lang].code)) != 0) {
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
	pb__wa_scan_free(&sc);
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
		pb__wa_dialect_of_frame(chat->frame, &ex->d);
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
