/* The chat generator: realistic, deterministic chats from a seed. Personal
 * chats, groups and saved messages; text in several languages and scripts
 * with emoji, entity arrays, replies, edits, forwards and service messages;
 * photos, voice notes, videos and documents whose bytes come from the
 * ChaCha20 stream behind a plausible header. "small" is about 20 MB,
 * "standard" about 1 GiB, "large" about 4 GiB. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

static const char *const first_names[] = {
	"Anna", "J\xc3\xbcrgen", "Mar\u00eda", "\xd0\x9e\xd0\xbb\xd0\xb5\xd0\xb3", "\xe6\x9d\x8e\xe4\xbc\x9f",
	"\xe3\x81\x95\xe3\x81\x8f\xe3\x82\x89", "Fatima", "\xd8\xa3\xd8\xad\xd9\x85\xd8\xaf", "Chlo\xc3\xa9",
	"S\xc3\xb8ren", "\xce\x9d\xce\xaf\xce\xba\xce\xbf\xcf\x82", "Priya", "Ngozi", "Tom", "Lena", "Mateo",
	"\xc5\x81ukasz", "Aylin", "Kwame", "Ines",
};
static const char *const last_names[] = {
	"Schmidt", "Garc\u00eda", "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd\xd0\xbe\xd0\xb2", "\xe7\x8e\x8b", "Tanaka",
	"Haddad", "Dubois", "Nielsen", "Papadopoulos", "Sharma", "Okafor", "Smith", "Rossi", "Kowalski",
	"Y\xc4\xb1lmaz", "Mensah", "Silva",
};
static const char *const sentences[] = {
	"Are we still on for tomorrow?",
	"I'll be there in 10 minutes",
	"Can you send me the document again?",
	"Happy birthday! \xf0\x9f\x8e\x89\xf0\x9f\x8e\x82",
	"Haha that's great \xf0\x9f\x98\x82",
	"Wir sehen uns um acht am Bahnhof.",
	"K\xc3\xb6nntest du bitte Milch mitbringen?",
	"\xc2\xbf" "D\xc3\xb3nde est\xc3\xa1s? Te espero en la plaza.",
	"\xc2\xa1" "Qu\xc3\xa9 bonito! \xe2\x9d\xa4\xef\xb8\x8f",
	"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82! \xd0\x9a\xd0\xb0\xd0\xba \xd0\xb4\xd0\xb5\xd0\xbb\xd0\xb0?",
	"\xe6\x98\x8e\xe5\xa4\xa9\xe8\xa7\x81\xef\xbc\x81",
	"\xe4\xbb\x8a\xe6\x97\xa5\xe3\x81\xaf\xe3\x81\x82\xe3\x82\x8a\xe3\x81\x8c\xe3\x81\xa8\xe3\x81\x86\xe3\x81\x94"
	"\xe3\x81\x96\xe3\x81\x84\xe3\x81\xbe\xe3\x81\x97\xe3\x81\x9f\xf0\x9f\x99\x8f",
	"\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7\xd8\x8c \xd9\x83\xd9\x8a\xd9\x81 \xd8\xad\xd8\xa7\xd9\x84\xd9\x83\xd8\x9f",
	"On est o\xc3\xb9 ce soir ? \xf0\x9f\x8d\xb7",
	"OK \xf0\x9f\x91\x8d",
	"The meeting moved to 3pm, room 4.12",
	"Did you see the match yesterday? \xe2\x9a\xbd",
	"Line one\nline two\n\tindented \"quoted\" line",
	"Prices: 10\xe2\x82\xac, \xc2\xa3" "8, \xc2\xa5" "1200 \xe2\x80\x94 not bad",
	"brb",
};
static const char *const words[] = {"photos", "trip", "plan", "link", "notes", "recipe", "tickets", "invoice"};

typedef struct gen_s {
	pb__chat_rng_t rng;
	pb__chat_stage_t st;
	uint64_t budget;  /* attachment bytes still to write */
	uint32_t attach_every; /* about one message in this many has one */
	uint8_t *block;   /* 1 MiB of stream bytes at a time */
	char chat_dir[64];
	uint64_t file_no;
} gen_t;

static uint32_t rnd(gen_t *g, uint32_t n)
{
	return pb__chat_rng_below(&g->rng, n);
}

static int put_str(pb__cj_t *o, const char *key, const char *s)
{
	pb__cj_t *v = pb__cj_new_str(s, strlen(s));
	int err;

	if (v == NULL)
		return PB_ENOMEM;
	if ((err = pb__cj_add(o, key, v)) != 0)
		pb__cj_free(v);
	return err;
}

static int put_num(pb__cj_t *o, const char *key, long long n)
{
	char tmp[32];
	int k = snprintf(tmp, sizeof(tmp), "%lld", n);
	pb__cj_t *v;
	int err;

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

static int put_date(pb__cj_t *o, const char *key, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;
	char d[32];

	if (gmtime_r(&tt, &tm) == NULL || strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		return PB_EINVAL;
	return put_str(o, key, d);
}

/* date and date_unixtime (a string, as Telegram writes it). */
static int put_when(pb__cj_t *o, const char *key, const char *ukey, int64_t t)
{
	char u[32];
	int err, k;

	if ((err = put_date(o, key, t)) != 0)
		return err;
	k = snprintf(u, sizeof(u), "%lld", (long long)t);
	if (k < 0 || (size_t)k >= sizeof(u))
		return PB_EINVAL;
	return put_str(o, ukey, u);
}

/* Writes an attachment of size bytes: header, then stream bytes. */
static int write_blob(gen_t *g, const char *rel, const uint8_t *head, size_t hlen, uint64_t size)
{
	char full[256], path[4400];
	FILE *f;
	uint64_t left = size;
	size_t k;
	int err, n;

	n = snprintf(full, sizeof(full), "chats/%s/%s", g->chat_dir, rel);
	if (n < 0 || (size_t)n >= sizeof(full))
		return PB_ETOOBIG;
	if ((err = pb__chat_stage_path(&g->st, full, path, sizeof(path))) != 0)
		return err;
	f = fopen(path, "wb");
	if (f == NULL)
		return PB_EIO;
	if (hlen > size)
		hlen = (size_t)size;
	if (fwrite(head, 1, hlen, f) != hlen)
		err = PB_EIO;
	left -= hlen;
	while (err == 0 && left > 0) {
		k = left > (1u << 20) ? (1u << 20) : (size_t)left;
		pb__chat_rng_bytes(&g->rng, g->block, k);
		if (fwrite(g->block, 1, k, f) != k)
			err = PB_EIO;
		left -= k;
	}
	if (fclose(f) != 0 && err == 0)
		err = PB_EIO;
	return err;
}

static uint64_t between(gen_t *g, uint64_t lo, uint64_t hi)
{
	uint64_t span = hi - lo, r;

	/* Skewed toward small sizes: the smaller of two draws. */
	r = (uint64_t)rnd(g, (uint32_t)(span > UINT32_MAX ? UINT32_MAX : span));
	{
		uint64_t r2 = rnd(g, (uint32_t)(span > UINT32_MAX ? UINT32_MAX : span));

		if (r2 < r)
			r = r2;
	}
	return lo + r;
}

static int add_attachment(gen_t *g, pb__cj_t *m, int64_t t)
{
	static const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0};
	static const uint8_t ogg[] = {'O', 'g', 'g', 'S', 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'O', 'p', 'u', 's', 'H', 'e', 'a', 'd'};
	static const uint8_t mp4[] = {0, 0, 0, 0x20, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0, 'i', 's', 'o', 'm', 'i', 's', 'o', '2', 'm', 'p', '4', '1'};
	static const uint8_t pdf[] = "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";
	struct tm tm;
	time_t tt = (time_t)t;
	char stamp[32], rel[160], name[64];
	uint32_t kind = rnd(g, 100);
	uint64_t size;
	int err = 0, k;

	if (gmtime_r(&tt, &tm) == NULL || strftime(stamp, sizeof(stamp), "%d-%m-%Y_%H-%M-%S", &tm) == 0)
		return PB_EINVAL;
	g->file_no++;
#define FIT(x) ((x) > g->budget ? g->budget : (x))
	if (kind < 55) { /* photo 50 KB - 3 MB */
		size = FIT(between(g, 50000, 3000000));
		k = snprintf(rel, sizeof(rel), "photos/photo_%llu@%s.jpg", (unsigned long long)g->file_no, stamp);
		if (k < 0 || (size_t)k >= sizeof(rel))
			return PB_EINVAL;
		if ((err = put_str(m, "photo", rel)) != 0 || (err = put_num(m, "photo_file_size", (long long)size)) != 0 ||
		    (err = put_num(m, "width", 1280)) != 0 || (err = put_num(m, "height", 960)) != 0)
			return err;
		err = write_blob(g, rel, jpeg, sizeof(jpeg), size);
	} else if (kind < 75) { /* voice note 10 KB - 1 MB */
		size = FIT(between(g, 10000, 1000000));
		k = snprintf(rel, sizeof(rel), "voice_messages/audio_%llu@%s.ogg", (unsigned long long)g->file_no, stamp);
		if (k < 0 || (size_t)k >= sizeof(rel))
			return PB_EINVAL;
		if ((err = put_str(m, "file", rel)) != 0 || (err = put_num(m, "file_size", (long long)size)) != 0 ||
		    (err = put_str(m, "media_type", "voice_message")) != 0 ||
		    (err = put_str(m, "mime_type", "audio/ogg")) != 0 ||
		    (err = put_num(m, "duration_seconds", (long long)(size / 4000 + 1))) != 0)
			return err;
		err = write_blob(g, rel, ogg, sizeof(ogg), size);
	} else if (kind < 88) { /* video 1 MB - 40 MB */
		size = FIT(between(g, 1000000, 40000000));
		k = snprintf(rel, sizeof(rel), "video_files/video_%llu@%s.mp4", (unsigned long long)g->file_no, stamp);
		if (k < 0 || (size_t)k >= sizeof(rel))
			return PB_EINVAL;
		if ((err = put_str(m, "file", rel)) != 0 || (err = put_num(m, "file_size", (long long)size)) != 0 ||
		    (err = put_str(m, "media_type", "video_file")) != 0 ||
		    (err = put_str(m, "mime_type", "video/mp4")) != 0 ||
		    (err = put_num(m, "duration_seconds", (long long)(size / 250000 + 1))) != 0 ||
		    (err = put_num(m, "width", 1920)) != 0 || (err = put_num(m, "height", 1080)) != 0)
			return err;
		err = write_blob(g, rel, mp4, sizeof(mp4), size);
	} else if (kind < 98) { /* document 20 KB - 5 MB */
		size = FIT(between(g, 20000, 5000000));
		k = snprintf(name, sizeof(name), "%s_%llu.pdf", words[rnd(g, sizeof(words) / sizeof(words[0]))],
			     (unsigned long long)g->file_no);
		if (k < 0 || (size_t)k >= sizeof(name))
			return PB_EINVAL;
		k = snprintf(rel, sizeof(rel), "files/%s", name);
		if (k < 0 || (size_t)k >= sizeof(rel))
			return PB_EINVAL;
		if ((err = put_str(m, "file", rel)) != 0 || (err = put_str(m, "file_name", name)) != 0 ||
		    (err = put_num(m, "file_size", (long long)size)) != 0 ||
		    (err = put_str(m, "mime_type", "application/pdf")) != 0)
			return err;
		err = write_blob(g, rel, pdf, sizeof(pdf) - 1, size);
	} else { /* left out of the export */
		size = 0;
		if ((err = put_str(m, "file", PB__CHAT_FILE_NOT_INCLUDED)) != 0 ||
		    (err = put_str(m, "media_type", "video_file")) != 0 || (err = put_str(m, "mime_type", "video/mp4")) != 0)
			return err;
	}
	g->budget = size >= g->budget ? 0 : g->budget - size;
	return err;
#undef FIT
}

static int add_text(gen_t *g, pb__cj_t *m, const char *const *people, size_t npeople)
{
	pb__cj_t *text = NULL, *ents, *e;
	const char *s = sentences[rnd(g, sizeof(sentences) / sizeof(sentences[0]))];
	uint32_t style = rnd(g, 10);
	char link[96];
	int err, k;

	ents = pb__cj_new(PB__CJ_ARR);
	if (ents == NULL)
		return PB_ENOMEM;
	if (style < 7) {
		/* Plain text: a string, one plain entity. */
		if ((err = put_str(m, "text", s)) != 0)
			goto out_ents;
		e = pb__cj_new(PB__CJ_OBJ);
		if (e == NULL || (err = pb__cj_add(ents, NULL, e)) != 0) {
			pb__cj_free(e);
			err = PB_ENOMEM;
			goto out_ents;
		}
		if ((err = put_str(e, "type", "plain")) != 0 || (err = put_str(e, "text", s)) != 0)
			goto out_ents;
	} else {
		/* Mixed: "s ", {link|bold|mention}, " \xf0\x9f\x91\x80" */
		static const char *const types[] = {"link", "bold", "mention", "hashtag", "italic"};
		const char *ty = types[rnd(g, 5)];
		const char *parts[3];
		int i;

		if (strcmp(ty, "link") == 0)
			k = snprintf(link, sizeof(link), "https://example.org/%s/%u", words[rnd(g, 8)], rnd(g, 100000));
		else if (strcmp(ty, "mention") == 0)
			k = snprintf(link, sizeof(link), "@%s", people[rnd(g, (uint32_t)npeople)]);
		else if (strcmp(ty, "hashtag") == 0)
			k = snprintf(link, sizeof(link), "#%s", words[rnd(g, 8)]);
		else
			k = snprintf(link, sizeof(link), "%s", words[rnd(g, 8)]);
		if (k < 0 || (size_t)k >= sizeof(link)) {
			err = PB_EINVAL;
			goto out_ents;
		}
		parts[0] = s;
		parts[1] = link;
		parts[2] = " \xf0\x9f\x91\x80";
		text = pb__cj_new(PB__CJ_ARR);
		if (text == NULL) {
			err = PB_ENOMEM;
			goto out_ents;
		}
		for (i = 0; i < 3; i++) {
			pb__cj_t *piece, *ent;
			const char *pt = i == 1 ? ty : "plain";
			const char *txt = i == 0 ? s : parts[i];
			char buf[512];

			if (i == 0) {
				k = snprintf(buf, sizeof(buf), "%s ", s);
				if (k < 0 || (size_t)k >= sizeof(buf)) {
					err = PB_EINVAL;
					goto out_text;
				}
				txt = buf;
			}
			if (i == 1) {
				piece = pb__cj_new(PB__CJ_OBJ);
				if (piece == NULL || (err = pb__cj_add(text, NULL, piece)) != 0) {
					pb__cj_free(piece);
					err = PB_ENOMEM;
					goto out_text;
				}
				if ((err = put_str(piece, "type", ty)) != 0 || (err = put_str(piece, "text", txt)) != 0)
					goto out_text;
			} else {
				piece = pb__cj_new_str(txt, strlen(txt));
				if (piece == NULL || (err = pb__cj_add(text, NULL, piece)) != 0) {
					pb__cj_free(piece);
					err = PB_ENOMEM;
					goto out_text;
				}
			}
			ent = pb__cj_new(PB__CJ_OBJ);
			if (ent == NULL || (err = pb__cj_add(ents, NULL, ent)) != 0) {
				pb__cj_free(ent);
				err = PB_ENOMEM;
				goto out_text;
			}
			if ((err = put_str(ent, "type", pt)) != 0 || (err = put_str(ent, "text", txt)) != 0)
				goto out_text;
		}
		if ((err = pb__cj_add(m, "text", text)) != 0)
			goto out_text;
		text = NULL;
	}
	return pb__cj_add(m, "text_entities", ents) == 0 ? 0 : (pb__cj_free(ents), PB_ENOMEM);
out_text:
	pb__cj_free(text);
out_ents:
	pb__cj_free(ents);
	return err;
}

static int gen_chat(gen_t *g, uint64_t index, uint32_t nmsg, int64_t *clock)
{
	const char *people[6];
	char names[6][96], rel[128], path[4400];
	const char *type;
	pb__chat_writer_t w;
	pb__cj_t *frame, *m;
	uint32_t kind = rnd(g, 100), np, i, j;
	long long chat_id = 100000000LL + (long long)index * 1000 + rnd(g, 1000), msg_id = rnd(g, 50) + 1;
	int err = 0, k;

	np = kind < 65 ? 2 : 3 + rnd(g, 4);
	type = index == 0 ? "saved_messages" : kind < 65 ? "personal_chat" : kind < 95 ? "private_group" : "public_supergroup";
	for (i = 0; i < np; i++) {
		k = snprintf(names[i], sizeof(names[i]), "%s %s",
			     first_names[rnd(g, sizeof(first_names) / sizeof(first_names[0]))],
			     last_names[rnd(g, sizeof(last_names) / sizeof(last_names[0]))]);
		if (k < 0 || (size_t)k >= sizeof(names[i]))
			return PB_EINVAL;
		people[i] = names[i];
	}
	k = snprintf(g->chat_dir, sizeof(g->chat_dir), "%lld", chat_id);
	if (k < 0 || (size_t)k >= sizeof(g->chat_dir))
		return PB_EINVAL;
	frame = pb__cj_new(PB__CJ_OBJ);
	if (frame == NULL)
		return PB_ENOMEM;
	if (index == 0)
		err = put_str(frame, "type", type);
	else if ((err = put_str(frame, "name", np == 2 ? people[1] : words[rnd(g, 8)])) == 0)
		err = put_str(frame, "type", type);
	if (err == 0)
		err = put_num(frame, "id", chat_id);
	k = snprintf(rel, sizeof(rel), "chats/%lld/result.json", chat_id);
	if (err == 0 && (k < 0 || (size_t)k >= sizeof(rel)))
		err = PB_EINVAL;
	if (err == 0)
		err = pb__chat_stage_path(&g->st, rel, path, sizeof(path));
	if (err == 0)
		err = pb__chat_writer_open(&w, path, frame);
	pb__cj_free(frame);
	if (err != 0)
		return err;
	for (j = 0; j < nmsg && err == 0; j++) {
		uint32_t who = rnd(g, np), r = rnd(g, 100);

		*clock += 5 + rnd(g, r < 10 ? 86400 : 900);
		m = pb__cj_new(PB__CJ_OBJ);
		if (m == NULL) {
			err = PB_ENOMEM;
			break;
		}
		err = put_num(m, "id", msg_id);
		if (j == 0 && np > 2 && err == 0) {
			pb__cj_t *members = pb__cj_new(PB__CJ_ARR);

			if ((err = put_str(m, "type", "service")) == 0 && (err = put_when(m, "date", "date_unixtime", *clock)) == 0 &&
			    (err = put_str(m, "actor", people[0])) == 0 && (err = put_str(m, "actor_id", "user1000")) == 0 &&
			    (err = put_str(m, "action", "create_group")) == 0 && (err = put_str(m, "title", "group")) == 0) {
				for (i = 0; i < np && err == 0 && members; i++) {
					pb__cj_t *s = pb__cj_new_str(people[i], strlen(people[i]));

					if (s == NULL || pb__cj_add(members, NULL, s) != 0) {
						pb__cj_free(s);
						err = PB_ENOMEM;
					}
				}
				if (members == NULL || err != 0 || pb__cj_add(m, "members", members) != 0) {
					pb__cj_free(members);
					err = err ? err : PB_ENOMEM;
				} else if ((err = put_str(m, "text", "")) == 0) {
					pb__cj_t *e = pb__cj_new(PB__CJ_ARR);

					err = e != NULL && pb__cj_add(m, "text_entities", e) == 0 ? 0 : (pb__cj_free(e), PB_ENOMEM);
				}
			} else {
				pb__cj_free(members);
			}
		} else if (r < 3 && err == 0) {
			/* A call (personal) or a pinned message (group). */
			pb__cj_t *e;

			if ((err = put_str(m, "type", "service")) == 0 && (err = put_when(m, "date", "date_unixtime", *clock)) == 0 &&
			    (err = put_str(m, "actor", people[who])) == 0 && (err = put_str(m, "actor_id", "user1001")) == 0)
				err = np == 2 ? put_str(m, "action", "phone_call") : put_str(m, "action", "pin_message");
			if (err == 0)
				err = np == 2 ? put_num(m, "duration_seconds", rnd(g, 3600)) : put_num(m, "message_id", msg_id - 1);
			if (err == 0 && (err = put_str(m, "text", "")) == 0) {
				e = pb__cj_new(PB__CJ_ARR);
				err = e != NULL && pb__cj_add(m, "text_entities", e) == 0 ? 0 : (pb__cj_free(e), PB_ENOMEM);
			}
		} else if (err == 0) {
			char uid[32];

			k = snprintf(uid, sizeof(uid), "user%u", 1000 + who);
			if (k < 0 || (size_t)k >= sizeof(uid))
				err = PB_EINVAL;
			if (err == 0 && (err = put_str(m, "type", "message")) == 0 && (err = put_when(m, "date", "date_unixtime", *clock)) == 0 &&
			    r < 8)
				err = put_when(m, "edited", "edited_unixtime", *clock + 60 + rnd(g, 600));
			if (err == 0 && (err = put_str(m, "from", people[who])) == 0)
				err = put_str(m, "from_id", uid);
			if (err == 0 && r >= 8 && r < 11)
				err = put_str(m, "forwarded_from", people[rnd(g, np)]);
			if (err == 0 && r >= 11 && r < 25 && msg_id > 1)
				err = put_num(m, "reply_to_message_id", msg_id - 1 - rnd(g, (uint32_t)(msg_id - 1 > 20 ? 20 : msg_id - 1)));
			if (err == 0 && g->budget > 0 && rnd(g, g->attach_every) == 0)
				err = add_attachment(g, m, *clock);
			if (err == 0)
				err = add_text(g, m, people, np);
		}
		if (err == 0)
			err = pb__chat_writer_message(&w, m);
		pb__cj_free(m);
		msg_id += 1 + (rnd(g, 10) == 0 ? rnd(g, 5) : 0);
	}
	if (err != 0) {
		pb__chat_writer_abort(&w);
		return err;
	}
	return pb__chat_writer_close(&w);
}

int pb__gen_chat(const char *device_dir, uint64_t seed, pb_gen_size_t size)
{
	gen_t g;
	uint64_t nchats, avg_msgs, i, total_msgs;
	int64_t clock;
	int err;

	memset(&g, 0, sizeof(g));
	switch (size) {
	case PB_GEN_SMALL:
		nchats = 12;
		avg_msgs = 120;
		g.budget = 19ull << 20;
		break;
	case PB_GEN_STANDARD:
		nchats = 1200;
		avg_msgs = 150;
		g.budget = 960ull << 20;
		break;
	default:
		nchats = 4000;
		avg_msgs = 200;
		g.budget = 3900ull << 20;
		break;
	}
	total_msgs = nchats * avg_msgs;
	/* An attachment averages about 1.9 MB. Offer a few more than the budget
	 * holds, so that it is used up (the last one is cut to fit). */
	g.attach_every = (uint32_t)(total_msgs * 10 / ((g.budget / 1900000 + 1) * 18));
	if (g.attach_every < 1)
		g.attach_every = 1;
	pb__chat_rng_init(&g.rng, seed, "chat");
	g.block = malloc(1u << 20);
	if (g.block == NULL)
		return PB_ENOMEM;
	if ((err = pb__chat_stage_open(&g.st, device_dir)) != 0)
		goto out_block;
	for (i = 0; i < nchats && err == 0; i++) {
		/* Chat lengths vary a lot: a few long chats, many short ones. */
		uint32_t n = 1 + pb__chat_rng_below(&g.rng, (uint32_t)avg_msgs);

		if (pb__chat_rng_below(&g.rng, 10) == 0)
			n += pb__chat_rng_below(&g.rng, (uint32_t)avg_msgs * 8);
		/* Each chat starts somewhere in 2021-2024. */
		clock = 1609459200 + (int64_t)pb__chat_rng_below(&g.rng, 4u * 365 * 86400);
		err = gen_chat(&g, i, n, &clock);
	}
	if (err == 0)
		err = pb__chat_stage_commit(&g.st);
	else
		pb__chat_stage_abort(&g.st);
out_block:
	free(g.block);
	pb__chat_rng_wipe(&g.rng);
	return err;
}
