/* JSON for the chat kind: a small value tree that keeps numbers as written,
 * its canonical serialization, and the streaming parser of Telegram Desktop
 * exports. The parser reads any number of bytes at a time through the
 * reader of chat-json-lex.c (which reads Telegram's invalid "\xNN" escapes
 * as "\u00NN"), and holds at most one message (plus the chat's other
 * fields) in memory. The same parser over yajl, behind a filter that
 * rewrites "\xNN" into "\u00NN", stays for comparison
 * (pb__chat_tg_new_yajl); single values in memory are read by yajl
 * (chat-json-value.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "peerback/error.h"
#include "agent/kinds/chat-json-lex.h"
#include "agent/kinds/chat-util.h"

/* --- Tree ------------------------------------------------------------------ */

pb__cj_t *pb__cj_new(int type)
{
	pb__cj_t *v = calloc(1, sizeof(*v));

	if (v != NULL)
		v->type = type;
	return v;
}

/* A string's bytes live in the node's own allocation (one malloc per
 * value: a million-message chat makes tens of millions of them). */
static bool str_inline(const pb__cj_t *v)
{
	return v->str == (const char *)(v + 1);
}

pb__cj_t *pb__cj_new_str(const char *s, size_t len)
{
	pb__cj_t *v;

	if (len > SIZE_MAX - sizeof(*v) - 1 || (v = malloc(sizeof(*v) + len + 1)) == NULL)
		return NULL;
	memset(v, 0, sizeof(*v));
	v->type = PB__CJ_STR;
	v->str = (char *)(v + 1);
	memcpy(v->str, s, len);
	v->str[len] = 0;
	v->len = len;
	return v;
}

/* Member names the streaming parser meets in every message: one static
 * copy each, taken instead of a malloc'd one (key_free leaves them). The
 * first 32 are message_keys in its order, so that a pooled name's rank is
 * its place (key_rank). */
#define POOL_KEY_MAX 24
static const char key_pool[][POOL_KEY_MAX] = {
	"id", "type", "date", "date_unixtime", "edited", "edited_unixtime", "from", "from_id", "actor",
	"actor_id", "action", "title", "members", "forwarded_from", "saved_from", "reply_to_message_id",
	"via_bot", "photo", "photo_file_size", "file", "file_name", "file_size", "thumbnail",
	"thumbnail_file_size", "media_type", "sticker_emoji", "mime_type", "duration_seconds", "width",
	"height", "text", "text_entities", "name", "messages", "href", "user_id", "document_id",
};
#define POOL_KEYS (sizeof(key_pool) / sizeof(key_pool[0]))

static const char *pool_key_from(const unsigned char *k, size_t len, size_t from)
{
	size_t n, i;

	if (len == 0 || len >= POOL_KEY_MAX)
		return NULL;
	for (n = 0, i = from; n < POOL_KEYS; n++, i = i + 1 == POOL_KEYS ? 0 : i + 1) {
		const char *e = key_pool[i];
		size_t j = 1;

		if (e[0] != (char)k[0])
			continue;
		while (j < len && e[j] == (char)k[j])
			j++;
		/* e[len - 1] != 0: a name with a NUL in it matches none. */
		if (j == len && e[len] == 0 && e[len - 1] != 0)
			return e;
	}
	return NULL;
}

static const char *pool_key(const unsigned char *k, size_t len)
{
	return pool_key_from(k, len, 0);
}

/* The pool's place of key, or -1 when key is not one of its copies. */
static int pool_index(const char *key)
{
	uintptr_t a = (uintptr_t)key, b = (uintptr_t)key_pool;

	if (a < b || a >= (uintptr_t)(key_pool + POOL_KEYS))
		return -1;
	return (int)((a - b) / POOL_KEY_MAX);
}

static void key_free(char *key)
{
	if (pool_index(key) < 0)
		free(key);
}

void pb__cj_free(pb__cj_t *v)
{
	pb__cj_t *c, *next;

	if (v == NULL)
		return;
	for (c = v->child; c != NULL; c = next) {
		next = c->next;
		pb__cj_free(c);
	}
	key_free(v->key);
	if (!str_inline(v))
		free(v->str);
	free(v);
}

void pb__cj_set_str(pb__cj_t *v, char *str, size_t len)
{
	if (!str_inline(v))
		free(v->str);
	v->str = str;
	v->len = len;
}

void pb__cj_add_owned(pb__cj_t *parent, char *key, pb__cj_t *child)
{
	if (key != NULL) {
		child->key_len = strlen(key);
		child->key = key;
	}
	if (parent->last != NULL)
		parent->last->next = child;
	else
		parent->child = child;
	parent->last = child;
	parent->n++;
}

int pb__cj_add(pb__cj_t *parent, const char *key, pb__cj_t *child)
{
	char *copy = NULL;

	if (key != NULL && (copy = strdup(key)) == NULL)
		return PB_ENOMEM;
	pb__cj_add_owned(parent, copy, child);
	return 0;
}

pb__cj_t *pb__cj_get(const pb__cj_t *obj, const char *key)
{
	pb__cj_t *c;

	if (obj == NULL || obj->type != PB__CJ_OBJ)
		return NULL;
	for (c = obj->child; c != NULL; c = c->next)
		if (c->key != NULL && strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

const char *pb__cj_get_str(const pb__cj_t *obj, const char *key)
{
	pb__cj_t *v = pb__cj_get(obj, key);

	return v != NULL && v->type == PB__CJ_STR ? v->str : NULL;
}

/* --- Canonical serialization ----------------------------------------------- */

/* Telegram Desktop's own member order for messages and chats. */
static const char *const message_keys[] = {
	"id", "type", "date", "date_unixtime", "edited", "edited_unixtime", "from", "from_id",
	"actor", "actor_id", "action", "title", "members", "forwarded_from", "saved_from",
	"reply_to_message_id", "via_bot", "photo", "photo_file_size", "file", "file_name",
	"file_size", "thumbnail", "thumbnail_file_size", "media_type", "sticker_emoji",
	"mime_type", "duration_seconds", "width", "height", "text", "text_entities", NULL,
};
static const char *const chat_keys[] = {"name", "type", "id", NULL};
#define MESSAGE_KEYS 32 /* message_keys without its NULL */

static int key_rank(const char *key, int order)
{
	const char *const *t = order == PB__CJ_ORDER_MESSAGE ? message_keys : chat_keys;
	int i;

	if (order == PB__CJ_ORDER_NONE || key == NULL)
		return -1;
	if (order == PB__CJ_ORDER_MESSAGE && (i = pool_index(key)) >= 0)
		return i < MESSAGE_KEYS ? i : -1;
	/* The first byte tells most keys apart without a call. */
	for (i = 0; t[i] != NULL; i++)
		if (t[i][0] == key[0] && strcmp(t[i], key) == 0)
			return i;
	return -1;
}

/* pb__chat_buf_add with the common case (room left) done here: the
 * canonical form is written a few bytes at a time, for every message. */
static inline int out_add(pb_buf_t *out, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (out->cap > 0 && len < out->cap - out->len) {
		memcpy(out->data + out->len, data, len);
		out->len += len;
		out->data[out->len] = 0;
		return 0;
	}
	return pb__chat_buf_add(out, data, len);
}

/* Where the run of bytes from s[i] that hold no '"', no '\\' and (ctl)
 * no control byte ends, or about (in its last 7 bytes the caller goes on
 * a byte at a time): found 8 bytes at a time. Chat strings are mostly
 * such runs, tens of bytes long: a call to memchr costs more than it
 * saves. */
static inline size_t plain_run(const uint8_t *s, size_t i, size_t len, bool ctl)
{
	static const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t v, q, b, m;

	while (len - i >= 8) {
		memcpy(&v, s + i, 8);
		q = v ^ (ones * '"');
		b = v ^ (ones * '\\');
		/* The lowest byte of x that is zero (or below 0x20) is the
		 * lowest one whose high bit is set in (x - ones) & ~x (the
		 * bytes above it may be set wrongly by the borrow). */
		m = (((q - ones) & ~q) | ((b - ones) & ~b) | (ctl ? (v - ones * 0x20) & ~v : 0)) & highs;
		if (m != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			i += (size_t)__builtin_ctzll(m) / 8;
#endif
			break;
		}
		i += 8;
	}
	return i;
}

int pb__cj_write_string(pb_buf_t *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;
	char esc[7];
	unsigned char c;
	int err;

	if ((err = out_add(out, "\"", 1)) != 0)
		return err;
	for (i = 0; i < len; i++) {
		if ((i = plain_run((const uint8_t *)s, i, len, true)) == len)
			break;
		c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if ((err = out_add(out, s + run, i - run)) != 0)
			return err;
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			if ((err = out_add(out, esc, 6)) != 0)
				return err;
			continue;
		}
		if ((err = out_add(out, esc, 2)) != 0)
			return err;
	}
	if ((err = out_add(out, s + run, len - run)) != 0)
		return err;
	return out_add(out, "\"", 1);
}

static int write_value(pb_buf_t *out, const pb__cj_t *v, int order, int depth);

static int write_member(pb_buf_t *out, const pb__cj_t *c, bool *first, int depth)
{
	int err;

	if (!*first && (err = out_add(out, ",", 1)) != 0)
		return err;
	*first = false;
	if ((err = pb__cj_write_string(out, c->key, c->key_len)) != 0)
		return err;
	if ((err = out_add(out, ":", 1)) != 0)
		return err;
	return write_value(out, c, PB__CJ_ORDER_NONE, depth + 1);
}

/* Members of an ordered object with up to this many members have their
 * ranks looked up once; bigger objects take the general path. */
#define RANKED_MAX 64

/* Writes the members of v in canonical order (known keys in the fixed order,
 * then the others as they came), looking each key up once: this runs for
 * every message of every backup. Returns false, having written nothing, when
 * v has more than RANKED_MAX members; otherwise true with *err set. */
static bool write_ranked(pb_buf_t *out, const pb__cj_t *v, int order, int depth, int *err)
{
	const pb__cj_t *kids[RANKED_MAX];
	unsigned char ranks[RANKED_MAX];
	const pb__cj_t *c;
	bool first = true;
	size_t n = 0, k, j;

	*err = 0;
	/* A stable insertion sort by rank, unknown keys last (rank 255): the
	 * members mostly come in the canonical order already, so this is
	 * about one compare each. */
	for (c = v->child; c != NULL; c = c->next) {
		int r = key_rank(c->key, order);
		unsigned char rk = r < 0 ? 255 : (unsigned char)r;

		if (n == RANKED_MAX)
			return false;
		for (j = n; j > 0 && ranks[j - 1] > rk; j--) {
			ranks[j] = ranks[j - 1];
			kids[j] = kids[j - 1];
		}
		ranks[j] = rk;
		kids[j] = c;
		n++;
	}
	for (k = 0; k < n; k++)
		if ((*err = write_member(out, kids[k], &first, depth)) != 0)
			return true;
	return true;
}

static int write_value(pb_buf_t *out, const pb__cj_t *v, int order, int depth)
{
	const pb__cj_t *c;
	bool first = true;
	int err, r, i;

	if (depth > PB__CHAT_DEPTH_MAX + 2)
		return PB_ETOOBIG;
	switch (v->type) {
	case PB__CJ_NULL: return pb__chat_buf_str(out, "null");
	case PB__CJ_TRUE: return pb__chat_buf_str(out, "true");
	case PB__CJ_FALSE: return pb__chat_buf_str(out, "false");
	case PB__CJ_NUM: return out_add(out, v->str, v->len);
	case PB__CJ_STR: return pb__cj_write_string(out, v->str, v->len);
	case PB__CJ_ARR:
		if ((err = out_add(out, "[", 1)) != 0)
			return err;
		for (c = v->child; c != NULL; c = c->next) {
			if (c != v->child && (err = out_add(out, ",", 1)) != 0)
				return err;
			if ((err = write_value(out, c, PB__CJ_ORDER_NONE, depth + 1)) != 0)
				return err;
		}
		return out_add(out, "]", 1);
	default: break;
	}
	if ((err = out_add(out, "{", 1)) != 0)
		return err;
	if (order != PB__CJ_ORDER_NONE && write_ranked(out, v, order, depth, &err)) {
		if (err != 0)
			return err;
		return out_add(out, "}", 1);
	}
	if (order != PB__CJ_ORDER_NONE) {
		/* Known keys in the fixed order, then the others as they came. */
		for (i = 0; (order == PB__CJ_ORDER_MESSAGE ? message_keys : chat_keys)[i] != NULL; i++)
			for (c = v->child; c != NULL; c = c->next)
				if (key_rank(c->key, order) == i &&
				    (err = write_member(out, c, &first, depth)) != 0)
					return err;
	}
	for (c = v->child; c != NULL; c = c->next) {
		r = key_rank(c->key, order);
		if (r >= 0)
			continue;
		if ((err = write_member(out, c, &first, depth)) != 0)
			return err;
	}
	return out_add(out, "}", 1);
}

void pb__cj_order(const pb__cj_t *obj, int order, const pb__cj_t **out)
{
	const char *const *t = order == PB__CJ_ORDER_MESSAGE ? message_keys : chat_keys;
	const pb__cj_t *c;
	size_t k = 0;
	int i;

	if (order != PB__CJ_ORDER_NONE)
		for (i = 0; t[i] != NULL; i++)
			for (c = obj->child; c != NULL; c = c->next)
				if (key_rank(c->key, order) == i)
					out[k++] = c;
	for (c = obj->child; c != NULL; c = c->next)
		if (key_rank(c->key, order) < 0)
			out[k++] = c;
}

int pb__cj_write(pb_buf_t *out, const pb__cj_t *v, int order)
{
	return write_value(out, v, order, 0);
}

static int flatten(pb_buf_t *b, const pb__cj_t *t)
{
	const pb__cj_t *c;
	const char *s;
	int err;

	if (t == NULL)
		return 0;
	if (t->type == PB__CJ_STR)
		return pb__chat_buf_add(b, t->str, t->len);
	if (t->type != PB__CJ_ARR)
		return 0;
	for (c = t->child; c != NULL; c = c->next) {
		if (c->type == PB__CJ_STR)
			err = pb__chat_buf_add(b, c->str, c->len);
		else if ((s = pb__cj_get_str(c, "text")) != NULL)
			err = pb__chat_buf_str(b, s);
		else
			err = 0;
		if (err != 0)
			return err;
	}
	return 0;
}

char *pb__cj_flatten_text(const pb__cj_t *text)
{
	pb_buf_t b = {0};

	if (flatten(&b, text) != 0) {
		pb__chat_buf_clear(&b);
		return NULL;
	}
	if (b.data == NULL)
		return strdup("");
	return (char *)b.data;
}

/* --- Stream parser --------------------------------------------------------- */

enum role {
	ROLE_CHAT,      /* a chat object (or the root, which may be a full export) */
	ROLE_CHATS,     /* the "chats" object of a full export */
	ROLE_CHAT_LIST, /* its "list" array */
	ROLE_MSG_LIST,  /* a chat's "messages" array */
	ROLE_MSG,       /* one message: a tree */
	ROLE_TREE,      /* a value inside a message or a chat's field */
	ROLE_SKIP,      /* a value that is read and dropped */
	ROLE_DMSG,      /* one message written as it is read (sink.message_canon) */
	ROLE_DVAL,      /* a container inside such a message */
};

struct level {
	enum role role;
	pb__cj_t *node; /* ROLE_MSG/ROLE_TREE: the container being built */
	char *key;      /* pending member name in an object */
	bool is_root;
	/* ROLE_DMSG/ROLE_DVAL: the pending member name's length (its bytes
	 * are written already), the members so far, an object? */
	size_t key_len, n;
	bool has_key, is_object;
};

/* A message member written as it is read: where its bytes are in the
 * canonical buffer and its rank (255: not a known member). */
struct dseg {
	size_t off, len;
	unsigned char rank;
};

struct pb__chat_tg_s {
	pb__jlex_t *x;  /* the reader; or, for comparison (pb__chat_tg_new_yajl), */
	yajl_handle y;  /* yajl behind the \xNN filter below */
	pb__chat_tg_sink_t sink;
	struct level stack[PB__CHAT_DEPTH_MAX + 1];
	int depth;
	pb__chat_tg_chat_t chat; /* the chat being read */
	bool in_chat, root_is_chat, root_is_full, done;
	size_t tree_bytes; /* bytes held by the current message or frame */
	int err;
	char msg[200];
	/* \xNN filter state */
	bool in_string, escaped;
	size_t token; /* bytes of the current string or bare token */
	uint8_t *fbuf;
	size_t fcap;
	uint64_t offset; /* bytes of input consumed before the current feed */
	/* A message written as it is read: canon holds "{" and its members
	 * in the order they came, separated by commas; segs says where each
	 * is. Members out of canonical order are put in place at its end. */
	pb_buf_t canon, resort;
	struct dseg *segs;
	size_t nsegs, segcap;
	unsigned char last_rank;
	bool sorted;
	int id_state; /* 0: no "id" yet, 1: pending, 2: seen */
	pb_buf_t id;  /* the first "id" member's number, or empty */
	size_t pool_next; /* where the next name's pool lookup starts */
	/* The pool's names by pool_hash (place + 1; 0: none), when no two
	 * share a slot (pool_tab_ok); else the lookup from pool_next. */
	uint8_t pool_tab[128];
	bool pool_tab_ok;
};

static int fail(struct pb__chat_tg_s *p, int err, const char *what)
{
	if (p->err == 0) {
		p->err = err;
		pb__chat_fail(p->msg, sizeof(p->msg), 0, "%s", what);
	}
	return 0; /* stop yajl */
}

static void chat_reset(struct pb__chat_tg_s *p)
{
	pb__cj_free(p->chat.frame);
	memset(&p->chat, 0, sizeof(p->chat));
	p->in_chat = false;
}

static int chat_open(struct pb__chat_tg_s *p)
{
	chat_reset(p);
	p->chat.frame = pb__cj_new(PB__CJ_OBJ);
	if (p->chat.frame == NULL)
		return PB_ENOMEM;
	p->in_chat = true;
	p->tree_bytes = 0;
	return 0;
}

static int chat_begin(struct pb__chat_tg_s *p)
{
	int err;

	if (p->chat.begun)
		return 0;
	p->chat.begun = true;
	p->chat.frame_keys_at_first = p->chat.frame->n;
	if (p->sink.chat_begin != NULL && (err = p->sink.chat_begin(p->sink.arg, &p->chat)) != 0)
		return err;
	return 0;
}

static int chat_end(struct pb__chat_tg_s *p)
{
	int err;

	if ((err = chat_begin(p)) != 0)
		return err;
	if (p->sink.chat_end != NULL && (err = p->sink.chat_end(p->sink.arg, &p->chat)) != 0)
		return err;
	chat_reset(p);
	return 0;
}

static struct level *top(struct pb__chat_tg_s *p)
{
	return p->depth > 0 ? &p->stack[p->depth - 1] : NULL;
}

static bool key_is(const struct level *l, const char *k)
{
	return l->key != NULL && strcmp(l->key, k) == 0;
}

static int account(struct pb__chat_tg_s *p, size_t n)
{
	size_t cap = PB__CHAT_MSG_MAX;

	p->tree_bytes += n + sizeof(pb__cj_t);
	if (p->tree_bytes > cap)
		return fail(p, PB_ETOOBIG, "a message or chat field is larger than 16 MiB");
	return 1;
}

/* The sections of a full export about the account itself, which are not
 * chats and are not kept (they are read and dropped, whatever their size). */
static bool account_section(const char *key)
{
	static const char *const keys[] = {"about", "personal_information", "profile_pictures", "stories",
					   "contacts", "frequent_contacts", "sessions", "web_sessions",
					   "other_data", NULL};
	int i;

	for (i = 0; key != NULL && keys[i] != NULL; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

/* Places a new value (node, or NULL for containers without a tree) under the
 * current level; sets *role for containers. Returns 1 to continue. */
static int place(struct pb__chat_tg_s *p, pb__cj_t *node, bool container, bool is_object, enum role *role)
{
	struct level *l = top(p);
	enum role r = ROLE_SKIP;
	char *key;
	int err;

	if (l == NULL) {
		if (!is_object) {
			pb__cj_free(node);
			return fail(p, PB_EDATA_FORMAT, "the file is not a JSON object");
		}
		pb__cj_free(node);
		if (p->done)
			return fail(p, PB_EDATA_FORMAT, "more than one JSON value");
		if (chat_open(p) != 0)
			return fail(p, PB_ENOMEM, "out of memory");
		*role = ROLE_CHAT;
		return 1;
	}
	key = l->key;
	l->key = NULL;
	switch (l->role) {
	case ROLE_CHAT:
		if (key != NULL && strcmp(key, "messages") == 0) {
			pb__cj_free(node);
			key_free(key);
			if (!container || is_object)
				return fail(p, PB_EDATA_FORMAT, "\"messages\" is not an array");
			if (l->is_root)
				p->root_is_chat = true;
			if (p->root_is_full && l->is_root)
				return fail(p, PB_EDATA_FORMAT, "a file is both a full and a single-chat export");
			if ((err = chat_begin(p)) != 0)
				return fail(p, err, p->chat.why[0] ? p->chat.why : "could not write the chat");
			*role = ROLE_MSG_LIST;
			return 1;
		}
		if (l->is_root && key != NULL && (strcmp(key, "chats") == 0 || strcmp(key, "left_chats") == 0) &&
		    is_object) {
			pb__cj_free(node);
			key_free(key);
			if (p->sink.single_only)
				return fail(p, PB_EDATA_FORMAT, "a full export where a single chat was expected");
			if (p->root_is_chat)
				return fail(p, PB_EDATA_FORMAT, "a file is both a full and a single-chat export");
			p->root_is_full = true;
			chat_reset(p); /* the account's own fields are not kept */
			*role = ROLE_CHATS;
			return 1;
		}
		if (account(p, (key ? strlen(key) : 0) + (node && node->str ? node->len : 0)) == 0) {
			pb__cj_free(node);
			key_free(key);
			return 0;
		}
		if (l->is_root && (p->root_is_full || account_section(key))) {
			key_free(key);
			pb__cj_free(node);
			*role = ROLE_SKIP;
			return 1;
		}
		if (p->chat.frame->n >= 4096) {
			pb__cj_free(node);
			key_free(key);
			return fail(p, PB_ETOOBIG, "a chat has too many fields");
		}
		err = pb__cj_add(p->chat.frame, key, node);
		key_free(key);
		if (err != 0) {
			pb__cj_free(node);
			return fail(p, err, "out of memory");
		}
		r = ROLE_TREE;
		break;
	case ROLE_CHATS:
		r = key != NULL && strcmp(key, "list") == 0 && container && !is_object ? ROLE_CHAT_LIST : ROLE_SKIP;
		key_free(key);
		pb__cj_free(node);
		node = NULL;
		break;
	case ROLE_CHAT_LIST:
		key_free(key);
		pb__cj_free(node);
		if (!is_object)
			return fail(p, PB_EDATA_FORMAT, "a chat in \"list\" is not an object");
		if (chat_open(p) != 0)
			return fail(p, PB_ENOMEM, "out of memory");
		*role = ROLE_CHAT;
		return 1;
	case ROLE_MSG_LIST:
		key_free(key);
		if (!is_object) {
			pb__cj_free(node);
			return fail(p, PB_EDATA_FORMAT, "a message is not an object");
		}
		p->tree_bytes = 0;
		*role = ROLE_MSG;
		return 1; /* the caller keeps node as the level's tree */
	case ROLE_MSG:
	case ROLE_TREE:
		if (account(p, (key ? strlen(key) : 0) + (node && node->str ? node->len : 0)) == 0) {
			pb__cj_free(node);
			key_free(key);
			return 0;
		}
		if (l->node->n >= 1000000) {
			pb__cj_free(node);
			key_free(key);
			return fail(p, PB_ETOOBIG, "an array or object has too many members");
		}
		pb__cj_add_owned(l->node, key, node); /* the member name moves to it */
		r = ROLE_TREE;
		break;
	case ROLE_SKIP:
	case ROLE_DMSG: /* not placed here: see d_value */
	case ROLE_DVAL:
		key_free(key);
		pb__cj_free(node);
		node = NULL;
		r = ROLE_SKIP;
		break;
	}
	*role = r;
	return 1;
}

/* --- A message written as it is read -------------------------------------- *
 * With sink.message_canon, a message's canonical form is written from the
 * parser's events, with no tree: inside a message every value is written
 * as it came, only the message's own members are ordered (write_ranked).
 * Each member is a segment of p->canon; when one comes before the rank of
 * an earlier one, the segments are put in place at the message's end. The
 * checks are place()'s, on the same figures. */

static bool direct(const struct level *l)
{
	return l != NULL && (l->role == ROLE_DMSG || l->role == ROLE_DVAL);
}

static int d_message_begin(struct pb__chat_tg_s *p)
{
	p->canon.len = 0;
	p->nsegs = 0;
	p->last_rank = 0;
	p->sorted = true;
	p->id_state = 0;
	p->id.len = 0;
	return out_add(&p->canon, "{", 1);
}

/* place()'s checks for a value (n bytes of text) under l, and the comma
 * before an array's next value. Returns 1 to continue. */
static int d_value(struct pb__chat_tg_s *p, struct level *l, size_t n)
{
	if (account(p, l->key_len + n) == 0)
		return 0;
	if (l->n >= 1000000)
		return fail(p, PB_ETOOBIG, "an array or object has too many members");
	if (!l->is_object && l->n > 0 && out_add(&p->canon, ",", 1) != 0)
		return fail(p, PB_ENOMEM, "out of memory");
	l->n++;
	l->key_len = 0;
	return 1;
}

/* A slot for a member name of 1..POOL_KEY_MAX-1 bytes: three of its bytes
 * and its length tell every name of the pool apart. */
static unsigned pool_hash(const unsigned char *k, size_t len)
{
	return (k[0] + 8u * k[len >= 3 ? len - 3 : 0] + k[len - 1] + 2u * (unsigned)len) & 127u;
}

static void pool_tab_init(struct pb__chat_tg_s *p)
{
	size_t i;

	p->pool_tab_ok = true;
	for (i = 0; i < POOL_KEYS; i++) {
		unsigned h = pool_hash((const unsigned char *)key_pool[i], strlen(key_pool[i]));

		if (p->pool_tab[h] != 0)
			p->pool_tab_ok = false;
		p->pool_tab[h] = (uint8_t)(i + 1);
	}
}

/* The pool's copy of a member name, or NULL: one slot to look at. */
static const char *pool_key_fast(struct pb__chat_tg_s *p, const unsigned char *k, size_t len)
{
	const char *e;
	unsigned i;

	if (!p->pool_tab_ok)
		return pool_key_from(k, len, p->pool_next);
	if (len == 0 || len >= POOL_KEY_MAX || (i = p->pool_tab[pool_hash(k, len)]) == 0)
		return NULL;
	e = key_pool[i - 1];
	/* e[len - 1] != 0: a name with a NUL in it matches none. */
	return e[len] == 0 && e[len - 1] != 0 && memcmp(e, k, len) == 0 ? e : NULL;
}

static int d_key(struct pb__chat_tg_s *p, struct level *l, const unsigned char *key, size_t len)
{
	/* Members mostly come in the pool's order: a scan of the pool starts
	 * after the name before. */
	const char *pk = pool_key_fast(p, key, len);
	int i = pk != NULL ? pool_index(pk) : -1;
	char quoted[POOL_KEY_MAX + 3];
	int err;

	if (pk == NULL && memchr(key, 0, len) != NULL)
		return fail(p, PB_EDATA_FORMAT, "a member name contains a NUL character");
	if (i >= 0)
		p->pool_next = (size_t)i + 1 == POOL_KEYS ? 0 : (size_t)i + 1;
	if (l->role == ROLE_DMSG) {
		unsigned char rank = i >= 0 && i < MESSAGE_KEYS ? (unsigned char)i : 255;
		struct dseg *ns;

		if (p->nsegs == p->segcap) {
			size_t cap = p->segcap ? 2 * p->segcap : 64;

			if ((ns = realloc(p->segs, cap * sizeof(*ns))) == NULL)
				return fail(p, PB_ENOMEM, "out of memory");
			p->segs = ns;
			p->segcap = cap;
		}
		if (p->nsegs > 0 && out_add(&p->canon, ",", 1) != 0)
			return fail(p, PB_ENOMEM, "out of memory");
		p->segs[p->nsegs++] = (struct dseg){p->canon.len, 0, rank};
		if (rank < p->last_rank)
			p->sorted = false;
		else
			p->last_rank = rank;
		if (i == 0 && p->id_state == 0)
			p->id_state = 1;
	} else if (l->n > 0 && out_add(&p->canon, ",", 1) != 0) {
		return fail(p, PB_ENOMEM, "out of memory");
	}
	if (pk != NULL && p->canon.cap > 0 && POOL_KEY_MAX + 3 < p->canon.cap - p->canon.len) {
		/* A pooled name needs no escape, and is written with its pool
		 * entry's whole fixed size (its NUL padding then overwritten): a
		 * copy of a known length, a dozen of them a message. */
		uint8_t *o = p->canon.data + p->canon.len;

		o[0] = '"';
		memcpy(o + 1, pk, POOL_KEY_MAX);
		o[1 + len] = '"';
		o[2 + len] = ':';
		o[3 + len] = 0;
		p->canon.len += len + 3;
		err = 0;
	} else if (pk != NULL) {
		quoted[0] = '"';
		memcpy(quoted + 1, pk, len);
		memcpy(quoted + 1 + len, "\":", 2);
		err = out_add(&p->canon, quoted, len + 3);
	} else if ((err = pb__cj_write_string(&p->canon, (const char *)key, len)) == 0) {
		err = out_add(&p->canon, ":", 1);
	}
	if (err != 0)
		return fail(p, PB_ENOMEM, "out of memory");
	l->key_len = len;
	return 1;
}

/* A scalar of type (text s, len for numbers and strings) under l; plain:
 * a string that is its own canonical form (pb__jlex_events_t). */
static int d_scalar(struct pb__chat_tg_s *p, struct level *l, int type, const char *s, size_t len, bool plain)
{
	static const char *const lit[] = {[PB__CJ_NULL] = "null", [PB__CJ_TRUE] = "true", [PB__CJ_FALSE] = "false"};
	int err;

	if (d_value(p, l, len) == 0)
		return 0;
	if (l->role == ROLE_DMSG && p->id_state == 1) {
		p->id_state = 2;
		if (type == PB__CJ_NUM && pb__chat_buf_add(&p->id, s, len) != 0)
			return fail(p, PB_ENOMEM, "out of memory");
	}
	if (type == PB__CJ_STR && plain && p->canon.cap > 0 && len + 2 < p->canon.cap - p->canon.len) {
		uint8_t *o = p->canon.data + p->canon.len;

		o[0] = '"';
		memcpy(o + 1, s, len);
		o[len + 1] = '"';
		o[len + 2] = 0;
		p->canon.len += len + 2;
		err = 0;
	} else if (type == PB__CJ_STR) {
		err = pb__cj_write_string(&p->canon, s, len);
	} else if (type == PB__CJ_NUM)
		err = out_add(&p->canon, s, len);
	else
		err = pb__chat_buf_str(&p->canon, lit[type]);
	return err != 0 ? fail(p, err, "out of memory") : 1;
}

static int d_start(struct pb__chat_tg_s *p, struct level *l, bool is_object)
{
	struct level *nl;

	if (d_value(p, l, 0) == 0)
		return 0;
	if (l->role == ROLE_DMSG && p->id_state == 1)
		p->id_state = 2;
	if (out_add(&p->canon, is_object ? "{" : "[", 1) != 0)
		return fail(p, PB_ENOMEM, "out of memory");
	nl = &p->stack[p->depth++];
	memset(nl, 0, sizeof(*nl));
	nl->role = ROLE_DVAL;
	nl->is_object = is_object;
	return 1;
}

/* The message's members in canonical order, when they did not come so:
 * known members by rank, then the others, each group as it came. */
static int d_resort(struct pb__chat_tg_s *p)
{
	pb_buf_t t;
	size_t i, k = 0;
	unsigned b;
	int err;

	for (i = 0; i < p->nsegs; i++)
		p->segs[i].len = (i + 1 < p->nsegs ? p->segs[i + 1].off - 1 : p->canon.len) - p->segs[i].off;
	p->resort.len = 0;
	if ((err = out_add(&p->resort, "{", 1)) != 0)
		return err;
	for (b = 0; b <= MESSAGE_KEYS; b++)
		for (i = 0; i < p->nsegs; i++) {
			const struct dseg *g = &p->segs[i];

			if (g->rank != (b == MESSAGE_KEYS ? 255 : b))
				continue;
			if ((k++ > 0 && (err = out_add(&p->resort, ",", 1)) != 0) ||
			    (err = out_add(&p->resort, p->canon.data + g->off, g->len)) != 0)
				return err;
		}
	t = p->canon;
	p->canon = p->resort;
	p->resort = t;
	return 0;
}

static int d_message_end(struct pb__chat_tg_s *p)
{
	int err;

	if ((!p->sorted && (err = d_resort(p)) != 0) || (err = out_add(&p->canon, "}", 1)) != 0)
		return fail(p, err, "out of memory");
	p->chat.messages++;
	err = p->sink.message_canon(p->sink.arg, &p->chat, &p->canon,
				    p->id.len > 0 ? (const char *)p->id.data : NULL);
	if (err != 0)
		return fail(p, err, p->chat.why[0] ? p->chat.why : "the message could not be stored");
	return 1;
}

static int on_scalar(struct pb__chat_tg_s *p, pb__cj_t *node)
{
	struct level *l = top(p);
	enum role r;

	if (node == NULL)
		return fail(p, PB_ENOMEM, "out of memory");
	if (l != NULL && (l->role == ROLE_CHAT_LIST || l->role == ROLE_MSG_LIST)) {
		pb__cj_free(node);
		return fail(p, PB_EDATA_FORMAT, l->role == ROLE_MSG_LIST ? "a message is not an object"
									: "a chat in \"list\" is not an object");
	}
	if (l != NULL && l->role == ROLE_CHAT && key_is(l, "messages")) {
		pb__cj_free(node);
		return fail(p, PB_EDATA_FORMAT, "\"messages\" is not an array");
	}
	return place(p, node, false, false, &r);
}

static int cb_null(void *ctx)
{
	if (direct(top(ctx)))
		return d_scalar(ctx, top(ctx), PB__CJ_NULL, NULL, 0, false);
	return on_scalar(ctx, pb__cj_new(PB__CJ_NULL));
}

static int cb_bool(void *ctx, int b)
{
	if (direct(top(ctx)))
		return d_scalar(ctx, top(ctx), b ? PB__CJ_TRUE : PB__CJ_FALSE, NULL, 0, false);
	return on_scalar(ctx, pb__cj_new(b ? PB__CJ_TRUE : PB__CJ_FALSE));
}

static int cb_number(void *ctx, const char *s, size_t len)
{
	pb__cj_t *v;

	if (direct(top(ctx)))
		return d_scalar(ctx, top(ctx), PB__CJ_NUM, s, len, false);
	v = pb__cj_new_str(s, len);

	if (v != NULL)
		v->type = PB__CJ_NUM;
	return on_scalar(ctx, v);
}

static int cb_string_plain(void *ctx, const unsigned char *s, size_t len, bool plain)
{
	if (direct(top(ctx)))
		return d_scalar(ctx, top(ctx), PB__CJ_STR, (const char *)s, len, plain);
	return on_scalar(ctx, pb__cj_new_str((const char *)s, len));
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
	return cb_string_plain(ctx, s, len, false);
}

static int start(struct pb__chat_tg_s *p, bool is_object)
{
	struct level *l = top(p), *nl;
	pb__cj_t *node = NULL;
	enum role r;
	bool tree;
	int ok;

	if (p->depth >= PB__CHAT_DEPTH_MAX)
		return fail(p, PB_ETOOBIG, "JSON nested too deeply");
	if (direct(l))
		return d_start(p, l, is_object);
	tree = l != NULL && (l->role == ROLE_MSG || l->role == ROLE_TREE ||
			     (l->role == ROLE_MSG_LIST && p->sink.message_canon == NULL) ||
			     (l->role == ROLE_CHAT && !key_is(l, "messages") &&
			      !(l->is_root && (key_is(l, "chats") || key_is(l, "left_chats")) && is_object)));
	if (tree) {
		node = pb__cj_new(is_object ? PB__CJ_OBJ : PB__CJ_ARR);
		if (node == NULL)
			return fail(p, PB_ENOMEM, "out of memory");
	}
	ok = place(p, node, true, is_object, &r);
	if (!ok)
		return 0;
	nl = &p->stack[p->depth++];
	memset(nl, 0, sizeof(*nl));
	nl->role = r;
	nl->node = (r == ROLE_MSG || r == ROLE_TREE) ? node : NULL;
	nl->is_root = l == NULL; /* place() owned or freed node */
	if (r == ROLE_MSG && p->sink.message_canon != NULL) {
		nl->role = ROLE_DMSG;
		nl->is_object = true;
		if (d_message_begin(p) != 0)
			return fail(p, PB_ENOMEM, "out of memory");
	}
	return 1;
}

static int finish_level(struct pb__chat_tg_s *p)
{
	struct level *l = top(p);
	pb__cj_t *msg;
	int err;

	if (l == NULL)
		return fail(p, PB_EDATA_FORMAT, "unbalanced JSON");
	key_free(l->key);
	l->key = NULL;
	p->depth--;
	switch (l->role) {
	case ROLE_DVAL:
		if (out_add(&p->canon, l->is_object ? "}" : "]", 1) != 0)
			return fail(p, PB_ENOMEM, "out of memory");
		break;
	case ROLE_DMSG:
		return d_message_end(p);
	case ROLE_MSG:
		msg = l->node;
		l->node = NULL;
		p->chat.messages++;
		if (p->sink.message != NULL) {
			err = p->sink.message(p->sink.arg, &p->chat, msg);
			if (err != 0)
				return fail(p, err, p->chat.why[0] ? p->chat.why : "the message could not be stored");
		} else {
			pb__cj_free(msg);
		}
		break;
	case ROLE_CHAT:
		if (l->is_root) {
			p->done = true;
			if (p->root_is_full) {
				chat_reset(p);
				break;
			}
			if (!p->root_is_chat)
				return fail(p, PB_EDATA_FORMAT,
					    "neither a full export (\"chats\") nor a chat (\"messages\")");
		}
		if ((err = chat_end(p)) != 0)
			return fail(p, err, p->chat.why[0] ? p->chat.why : "the chat could not be stored");
		break;
	default:
		break;
	}
	return 1;
}

static int cb_start_map(void *ctx)
{
	return start(ctx, true);
}

static int cb_map_key(void *ctx, const unsigned char *key, size_t len)
{
	struct pb__chat_tg_s *p = ctx;
	struct level *l = top(p);

	if (l == NULL)
		return fail(p, PB_EDATA_FORMAT, "unbalanced JSON");
	if (direct(l))
		return d_key(p, l, key, len);
	if (memchr(key, 0, len) != NULL)
		return fail(p, PB_EDATA_FORMAT, "a member name contains a NUL character");
	key_free(l->key);
	l->key = (char *)pool_key(key, len);
	if (l->key == NULL)
		l->key = strndup((const char *)key, len);
	if (l->key == NULL)
		return fail(p, PB_ENOMEM, "out of memory");
	return 1;
}

static int cb_end(void *ctx)
{
	return finish_level(ctx);
}

static int cb_start_array(void *ctx)
{
	return start(ctx, false);
}

static const yajl_callbacks callbacks = {
	.yajl_null = cb_null,
	.yajl_boolean = cb_bool,
	.yajl_number = cb_number,
	.yajl_string = cb_string,
	.yajl_start_map = cb_start_map,
	.yajl_map_key = cb_map_key,
	.yajl_end_map = cb_end,
	.yajl_start_array = cb_start_array,
	.yajl_end_array = cb_end,
};

static const pb__jlex_events_t events = {
	.null_value = cb_null,
	.boolean = cb_bool,
	.number = cb_number,
	.string = cb_string_plain,
	.start_map = cb_start_map,
	.map_key = cb_map_key,
	.end_map = cb_end,
	.start_array = cb_start_array,
	.end_array = cb_end,
};

static int tg_new(pb__chat_tg_t **out, const pb__chat_tg_sink_t *sink, bool with_yajl)
{
	struct pb__chat_tg_s *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return PB_ENOMEM;
	p->sink = *sink;
	pool_tab_init(p);
	/* A token is capped as the \xNN filter capped it (pb__jlex_new). */
	if (with_yajl)
		p->y = yajl_alloc(&callbacks, NULL, p);
	else
		p->x = pb__jlex_new(&events, p, PB__CHAT_MSG_MAX);
	if (p->y == NULL && p->x == NULL) {
		free(p);
		return PB_ENOMEM;
	}
	*out = p;
	return 0;
}

int pb__chat_tg_new(pb__chat_tg_t **out, const pb__chat_tg_sink_t *sink)
{
	return tg_new(out, sink, false);
}

int pb__chat_tg_new_yajl(pb__chat_tg_t **out, const pb__chat_tg_sink_t *sink)
{
	return tg_new(out, sink, true);
}

void pb__chat_tg_free(pb__chat_tg_t *p)
{
	int i;

	if (p == NULL)
		return;
	for (i = 0; i < p->depth; i++) {
		key_free(p->stack[i].key);
		/* Trees are owned by their parent, except a message in progress. */
		if (p->stack[i].role == ROLE_MSG)
			pb__cj_free(p->stack[i].node);
	}
	chat_reset(p);
	if (p->y != NULL)
		yajl_free(p->y);
	pb__jlex_free(p->x);
	free(p->fbuf);
	pb__chat_buf_clear(&p->canon);
	pb__chat_buf_clear(&p->resort);
	pb__chat_buf_clear(&p->id);
	free(p->segs);
	free(p);
}

static int report(pb__chat_tg_t *p, const uint8_t *in, size_t len, char *errbuf, size_t errcap)
{
	size_t used = yajl_get_bytes_consumed(p->y);
	unsigned char *yerr;
	int err;

	(void)in;
	(void)len;
	if (p->err != 0) {
		err = p->err;
		pb__chat_fail(errbuf, errcap, err, "%s near byte %llu", p->msg,
			      (unsigned long long)(p->offset + used));
		return err;
	}
	yerr = yajl_get_error(p->y, 0, NULL, 0);
	pb__chat_fail(errbuf, errcap, PB_EMALFORMED, "malformed JSON near byte %llu: %s",
		      (unsigned long long)(p->offset + used), yerr ? (const char *)yerr : "parse error");
	if (yerr != NULL)
		yajl_free_error(p->y, yerr);
	return PB_EMALFORMED;
}

/* An error of the reader (not yajl's). */
static int jlex_report(pb__chat_tg_t *p, int r, bool at_end, char *errbuf, size_t errcap)
{
	unsigned long long at = (unsigned long long)pb__jlex_offset(p->x);

	if (r == PB__JLEX_STOPPED || p->err != 0) {
		if (p->err == 0)
			return pb__chat_fail(errbuf, errcap, PB_ESTATE, "the parse stopped near byte %llu", at);
		return pb__chat_fail(errbuf, errcap, p->err, "%s near byte %llu", p->msg, at);
	}
	if (r == PB__JLEX_NOMEM)
		return pb__chat_fail(errbuf, errcap, PB_ENOMEM, "out of memory near byte %llu", at);
	if (r == PB__JLEX_TOOBIG)
		return pb__chat_fail(errbuf, errcap, PB_ETOOBIG, "a string or number longer than 16 MiB near byte %llu",
				     at);
	/* yajl's end of text reads as a truncated file, whatever it finds. */
	if (at_end)
		return pb__chat_fail(errbuf, errcap, PB_ETRUNCATED,
				     "JSON ends too early (truncated file?) at byte %llu", at);
	return pb__chat_fail(errbuf, errcap, PB_EMALFORMED, "malformed JSON near byte %llu: %s", at,
			     pb__jlex_error(p->x));
}

int pb__chat_tg_feed(pb__chat_tg_t *p, const uint8_t *buf, size_t len, char *errbuf, size_t errcap)
{
	size_t i, o = 0;
	uint8_t *nb;
	uint8_t c;
	int r;

	if (len == 0)
		return 0;
	if (p->x != NULL) {
		if ((r = pb__jlex_feed(p->x, buf, len)) != 0)
			return jlex_report(p, r, false, errbuf, errcap);
		return 0;
	}
	if (len > SIZE_MAX / 2 - 2)
		return PB_ETOOBIG;
	/* Each \x becomes \u00: two bytes out per byte in, and one more when
	 * the call starts right after a backslash fed by the previous one. */
	if (p->fcap < 2 * len + 2) {
		nb = realloc(p->fbuf, 2 * len + 2);
		if (nb == NULL)
			return PB_ENOMEM;
		p->fbuf = nb;
		p->fcap = 2 * len + 2;
	}
	/* Rewrite \xNN inside strings as \u00NN; the state carries across
	 * calls, so an escape split between two reads is still seen. */
	for (i = 0; i < len; i++) {
		if (p->in_string && !p->escaped) {
			/* Most bytes are inside strings: the run up to the next
			 * quote or backslash goes over as it is. */
			size_t end = plain_run(buf, i, len, false), n;

			while (end < len && buf[end] != '"' && buf[end] != '\\')
				end++;
			n = end - i;
			if (p->token + n > PB__CHAT_MSG_MAX)
				return pb__chat_fail(errbuf, errcap, PB_ETOOBIG,
						     "a string or number longer than 16 MiB near byte %llu",
						     (unsigned long long)(p->offset + i + (PB__CHAT_MSG_MAX - p->token)));
			p->token += n;
			memcpy(p->fbuf + o, buf + i, n);
			o += n;
			i = end;
			if (i == len)
				break;
		}
		c = buf[i];
		/* yajl holds a whole token in memory: cap strings and numbers. */
		if (p->in_string || !(c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '{' || c == '}' ||
				      c == '[' || c == ']' || c == ',' || c == ':' || c == '"'))
			p->token++;
		else
			p->token = 0;
		if (p->token > PB__CHAT_MSG_MAX)
			return pb__chat_fail(errbuf, errcap, PB_ETOOBIG,
					     "a string or number longer than 16 MiB near byte %llu",
					     (unsigned long long)(p->offset + i));
		if (p->escaped) {
			p->escaped = false;
			if (c == 'x') {
				p->fbuf[o++] = 'u';
				p->fbuf[o++] = '0';
				p->fbuf[o++] = '0';
				continue;
			}
		} else if (p->in_string && c == '\\') {
			p->escaped = true;
		} else if (c == '"') {
			p->in_string = !p->in_string;
		}
		p->fbuf[o++] = c;
	}
	if (yajl_parse(p->y, p->fbuf, o) != yajl_status_ok)
		return report(p, p->fbuf, o, errbuf, errcap);
	p->offset += o;
	return 0;
}

int pb__chat_tg_finish(pb__chat_tg_t *p, char *errbuf, size_t errcap)
{
	int r;

	if (p->x != NULL) {
		if ((r = pb__jlex_finish(p->x)) != 0)
			return jlex_report(p, r, true, errbuf, errcap);
	} else if (yajl_complete_parse(p->y) != yajl_status_ok) {
		if (p->err == 0)
			return pb__chat_fail(errbuf, errcap, PB_ETRUNCATED,
					     "JSON ends too early (truncated file?) at byte %llu",
					     (unsigned long long)p->offset);
		return report(p, NULL, 0, errbuf, errcap);
	}
	if (!p->done)
		return pb__chat_fail(errbuf, errcap, PB_ETRUNCATED, "JSON ends too early at byte %llu",
				     (unsigned long long)(p->x != NULL ? pb__jlex_offset(p->x) : p->offset));
	return 0;
}

int pb__chat_tg_parse_file(const char *path, const pb__chat_tg_sink_t *sink, char *errbuf, size_t errcap)
{
	static const size_t block = 64u << 10;
	pb__chat_tg_t *p = NULL;
	uint8_t *buf;
	FILE *f;
	size_t n;
	int err;

	f = fopen(path, "rb");
	if (f == NULL)
		return pb__chat_fail(errbuf, errcap, -errno, "cannot open %s: %s", path, strerror(errno));
	buf = malloc(block);
	if (buf == NULL) {
		err = PB_ENOMEM;
		goto out_close;
	}
	if ((err = pb__chat_tg_new(&p, sink)) != 0)
		goto out_free;
	while ((n = fread(buf, 1, block, f)) > 0) {
		if ((err = pb__chat_tg_feed(p, buf, n, errbuf, errcap)) != 0)
			goto out_parser;
	}
	if (ferror(f)) {
		err = pb__chat_fail(errbuf, errcap, PB_EIO, "read error");
		goto out_parser;
	}
	err = pb__chat_tg_finish(p, errbuf, errcap);
out_parser:
	pb__chat_tg_free(p);
out_free:
	free(buf);
out_close:
	fclose(f);
	return err;
}
