/* The streaming JSON reader of Telegram exports: see chat-json-lex.h.
 *
 * A chat export is hundreds of megabytes of small strings. Each token is
 * read where it lies in the caller's buffer; a string without escapes (most
 * of them) is scanned sixteen bytes at a time and handed over as it lies.
 * Only a token split between two feeds is copied (into pend), and only a
 * string with escapes is decoded (into dec). What is accepted, the events
 * and the decoding are yajl 2.1's (yajl_lex.c, yajl_parser.c,
 * yajl_encode.c), so that a chat's canonical form, and hence its messages'
 * hashes, do not depend on which of the two read it; tests/fuzz/
 * fuzz-telegram.c runs both on the same input. */
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "agent/kinds/chat-json-lex.h"

enum tok { T_EOF, T_ERR, T_LBRACE, T_RBRACE, T_LBRACK, T_RBRACK, T_COMMA, T_COLON, T_STR, T_NUM, T_TRUE, T_FALSE, T_NULL };

/* The grammar's states, yajl's: the top of the stack is the current one. */
enum state {
	S_START,
	S_DONE,
	S_MAP_START,
	S_MAP_SEP,
	S_MAP_NEED_VAL,
	S_MAP_GOT_VAL,
	S_MAP_NEED_KEY,
	S_ARR_START,
	S_ARR_GOT_VAL,
	S_ARR_NEED_VAL,
};

/* Nesting the grammar holds; the chat parser stops far below it. */
#define STACK_MAX 1024
/* Bytes after a string's escaped text that the decoder may look at: the
 * closing quote and one more. */
#define DECODE_PAD 2

struct token {
	size_t start, end; /* in the buffer lexed; for T_EOF, where it starts */
	const uint8_t *s;  /* strings: the text between the quotes; numbers: the text */
	size_t len;
	bool esc;
	const char *err;
};

struct pb__jlex_s {
	pb__jlex_events_t ev;
	void *ctx;
	size_t token_max;
	uint8_t stack[STACK_MAX];
	size_t depth;
	int status;
	const char *err;
	uint64_t base; /* offset of the current feed's first byte */
	uint64_t at;   /* offset of the last token taken */
	/* A token that a feed ended inside, from its first byte. */
	uint8_t *pend;
	size_t plen, pcap;
	uint64_t pend_at;
	/* A string with escapes: as yajl sees it (esc), then decoded (dec). */
	uint8_t *esc, *dec;
	size_t elen, ecap, dlen, dcap;
};

static int grow(uint8_t **b, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 256;
	uint8_t *nb;

	if (need <= *cap)
		return 0;
	while (c < need) {
		if (c > SIZE_MAX / 2)
			return -1;
		c *= 2;
	}
	if ((nb = realloc(*b, c)) == NULL)
		return -1;
	*b = nb;
	*cap = c;
	return 0;
}

pb__jlex_t *pb__jlex_new(const pb__jlex_events_t *ev, void *ctx, size_t token_max)
{
	pb__jlex_t *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	x->ev = *ev;
	x->ctx = ctx;
	x->token_max = token_max;
	x->stack[0] = S_START;
	x->depth = 1;
	return x;
}

void pb__jlex_free(pb__jlex_t *x)
{
	if (x == NULL)
		return;
	free(x->pend);
	free(x->esc);
	free(x->dec);
	free(x);
}

uint64_t pb__jlex_offset(const pb__jlex_t *x)
{
	return x->at;
}

const char *pb__jlex_error(const pb__jlex_t *x)
{
	return x->err != NULL ? x->err : "parse error";
}

/* --- Tokens ---------------------------------------------------------------- */

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f';
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(uint8_t c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Where the run of bytes from b[i] ends that are neither '"', '\\', below
 * 0x20 nor above 0x7f (those need a look each). */
static size_t str_run(const uint8_t *b, size_t i, size_t n)
{
#if defined(__SSE2__)
	const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'), sp = _mm_set1_epi8(0x20);

	while (n - i >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
		/* Signed: a byte above 0x7f is below 0x20 too. */
		__m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs)),
					 _mm_cmplt_epi8(v, sp));
		unsigned k = (unsigned)_mm_movemask_epi8(m);

		if (k != 0)
			return i + (size_t)__builtin_ctz(k);
		i += 16;
	}
#endif
	while (i < n && b[i] >= 0x20 && b[i] < 0x80 && b[i] != '"' && b[i] != '\\')
		i++;
	return i;
}

static enum tok lex_err(struct token *t, size_t at, const char *why)
{
	t->start = at;
	t->err = why;
	return T_ERR;
}

/* A string from b[i], its opening quote. yajl's checks, in its order: what
 * the text holds up to the first fault decides between an error and the
 * need for more bytes. */
static enum tok lex_string(const uint8_t *b, size_t n, size_t i, struct token *t)
{
	size_t j = i + 1, k, follow;
	uint8_t c;

	t->esc = false;
	for (;;) {
		j = str_run(b, j, n);
		if (j >= n)
			return T_EOF;
		c = b[j];
		if (c == '"') {
			t->s = b + i + 1;
			t->len = j - i - 1;
			t->end = j + 1;
			return T_STR;
		}
		if (c == '\\') {
			t->esc = true;
			if (j + 1 >= n)
				return T_EOF;
			c = b[j + 1];
			if (c == 'u' || c == 'x') {
				/* Telegram's "\xNN" is read as "\u00NN". */
				size_t h = c == 'u' ? 4 : 2;

				for (k = 0; k < h; k++) {
					if (j + 2 + k >= n)
						return T_EOF;
					if (!is_hex(b[j + 2 + k]))
						return lex_err(t, j + 2 + k,
							       "invalid (non-hex) character occurs after '\\u' inside string.");
				}
				j += 2 + h;
			} else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
				   c == 't') {
				j += 2;
			} else {
				return lex_err(t, j + 1,
					       "inside a string, '\\' occurs before a character which it may not.");
			}
			continue;
		}
		if (c < 0x20)
			return lex_err(t, j, "invalid character inside string.");
		/* yajl's UTF-8 check: a lead byte and its continuation bytes
		 * (no test of overlong forms or of the code point's range). */
		if ((c >> 5) == 0x6)
			follow = 1;
		else if ((c >> 4) == 0xe)
			follow = 2;
		else if ((c >> 3) == 0x1e)
			follow = 3;
		else
			return lex_err(t, j, "invalid bytes in UTF8 string.");
		for (k = 1; k <= follow; k++) {
			if (j + k >= n)
				return T_EOF;
			if ((b[j + k] >> 6) != 0x2)
				return lex_err(t, j + k, "invalid bytes in UTF8 string.");
		}
		j += 1 + follow;
	}
}

/* A number from b[i]: yajl reads one byte past it, so its end needs one. */
static enum tok lex_number(const uint8_t *b, size_t n, size_t i, struct token *t)
{
	size_t j = i;
	uint8_t c;
	int read;

#define NEXT()                          \
	do {                            \
		if (j >= n)             \
			return T_EOF;   \
		c = b[j++];             \
	} while (0)
	NEXT();
	if (c == '-')
		NEXT();
	if (c == '0') {
		NEXT();
	} else if (c >= '1' && c <= '9') {
		do
			NEXT();
		while (is_digit(c));
	} else {
		return lex_err(t, j - 1, "malformed number, a digit is required after the minus sign.");
	}
	if (c == '.') {
		read = 0;
		NEXT();
		while (is_digit(c)) {
			read++;
			NEXT();
		}
		if (read == 0)
			return lex_err(t, j - 1, "malformed number, a digit is required after the decimal point.");
	}
	if (c == 'e' || c == 'E') {
		NEXT();
		if (c == '+' || c == '-')
			NEXT();
		if (!is_digit(c))
			return lex_err(t, j - 1, "malformed number, a digit is required after the exponent.");
		do
			NEXT();
		while (is_digit(c));
	}
#undef NEXT
	t->s = b + i;
	t->len = j - 1 - i;
	t->end = j - 1;
	return T_NUM;
}

static enum tok lex_word(const uint8_t *b, size_t n, size_t i, const char *w, enum tok type, struct token *t)
{
	size_t k;

	for (k = 1; w[k] != 0; k++) {
		if (i + k >= n)
			return T_EOF;
		if (b[i + k] != (uint8_t)w[k])
			return lex_err(t, i + k, "invalid string in json text.");
	}
	t->end = i + k;
	return type;
}

/* The next token of b from i. */
static enum tok lex(const uint8_t *b, size_t n, size_t i, struct token *t)
{
	static const enum tok punct[128] = {['{'] = T_LBRACE, ['}'] = T_RBRACE, ['['] = T_LBRACK,
					    [']'] = T_RBRACK, [','] = T_COMMA,  [':'] = T_COLON};
	uint8_t c;

	while (i < n && is_ws(b[i]))
		i++;
	t->start = i;
	t->err = NULL;
	if (i == n)
		return T_EOF;
	c = b[i];
	if (c < 128 && punct[c] != T_EOF) {
		t->end = i + 1;
		return punct[c];
	}
	switch (c) {
	case '"': return lex_string(b, n, i, t);
	case 't': return lex_word(b, n, i, "true", T_TRUE, t);
	case 'f': return lex_word(b, n, i, "false", T_FALSE, t);
	case 'n': return lex_word(b, n, i, "null", T_NULL, t);
	case '/': return lex_err(t, i, "probable comment found in input text, comments are not enabled.");
	default:
		if (c == '-' || is_digit(c))
			return lex_number(b, n, i, t);
		return lex_err(t, i, "invalid char in json text.");
	}
}

/* --- Strings with escapes -------------------------------------------------- */

/* Four hex digits (checked by lex_string). */
static uint32_t hex4(const uint8_t *h)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		uint8_t c = h[i];

		if (c >= 'A')
			c = (uint8_t)((c & ~0x20) - 7);
		c = (uint8_t)(c - '0');
		v = (v << 4) | c;
	}
	return v;
}

static size_t utf8_put(uint32_t cp, uint8_t *o)
{
	if (cp < 0x80) {
		o[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (uint8_t)((cp >> 6) | 0xC0);
		o[1] = (uint8_t)((cp & 0x3F) | 0x80);
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (uint8_t)((cp >> 12) | 0xE0);
		o[1] = (uint8_t)(((cp >> 6) & 0x3F) | 0x80);
		o[2] = (uint8_t)((cp & 0x3F) | 0x80);
		return 3;
	}
	if (cp < 0x200000) {
		o[0] = (uint8_t)((cp >> 18) | 0xF0);
		o[1] = (uint8_t)(((cp >> 12) & 0x3F) | 0x80);
		o[2] = (uint8_t)(((cp >> 6) & 0x3F) | 0x80);
		o[3] = (uint8_t)((cp & 0x3F) | 0x80);
		return 4;
	}
	o[0] = '?';
	return 1;
}

/* The string's escaped text s[0..len) decoded into x->dec as yajl 2.1
 * (as built here) decodes it: a high surrogate takes the "\u" escape after
 * it as its low half whatever that is, one without a "\u" after it becomes
 * '?', a lone low surrogate is written as its three bytes, "\u0000" as a
 * NUL byte. The text is first written as yajl saw it (each "\x" as "\u00"),
 * then the closing quote, which a surrogate at the end looks at. */
static int decode(pb__jlex_t *x, const uint8_t *s, size_t len)
{
	size_t i, m = 0, beg = 0, end = 0, n;
	uint8_t *e, u[5];
	const uint8_t *un;

	if (len > (SIZE_MAX - DECODE_PAD) / 2 || grow(&x->esc, &x->ecap, 2 * len + DECODE_PAD) != 0 ||
	    grow(&x->dec, &x->dcap, 2 * len + 8) != 0)
		return -1;
	e = x->esc;
	for (i = 0; i < len; i++) {
		if (s[i] == '\\' && s[i + 1] == 'x') {
			memcpy(e + m, "\\u00", 4);
			m += 4;
			i++;
		} else if (s[i] == '\\') {
			e[m++] = s[i++];
			e[m++] = s[i];
		} else {
			e[m++] = s[i];
		}
	}
	e[m] = '"';
	e[m + 1] = 0;
	x->dlen = 0;
	/* Each escape writes at most 4 bytes for its 2 or more. */
#define PUT(p, k)                                            \
	do {                                                 \
		memcpy(x->dec + x->dlen, (p), (k));          \
		x->dlen += (k);                              \
	} while (0)
	while (end < m) {
		uint32_t cp, sur;

		if (e[end] != '\\') {
			end++;
			continue;
		}
		PUT(e + beg, end - beg);
		un = (const uint8_t *)"?";
		n = 1;
		switch (e[++end]) {
		case 'r': un = (const uint8_t *)"\r"; break;
		case 'n': un = (const uint8_t *)"\n"; break;
		case '\\': un = (const uint8_t *)"\\"; break;
		case '/': un = (const uint8_t *)"/"; break;
		case '"': un = (const uint8_t *)"\""; break;
		case 'f': un = (const uint8_t *)"\f"; break;
		case 'b': un = (const uint8_t *)"\b"; break;
		case 't': un = (const uint8_t *)"\t"; break;
		case 'u':
			cp = hex4(e + end + 1);
			end += 4;
			if ((cp & 0xFC00) == 0xD800) {
				end++;
				if (e[end] == '\\' && e[end + 1] == 'u') {
					sur = hex4(e + end + 2);
					cp = ((cp & 0x3F) << 10) | ((((cp >> 6) & 0xF) + 1) << 16) | (sur & 0x3FF);
					end += 5;
				} else {
					end--; /* what follows is read as it is */
					break;
				}
			}
			n = utf8_put(cp, u);
			un = u;
			break;
		default: /* not reached: lex_string let no other escape through */
			break;
		}
		PUT(un, n);
		beg = ++end;
	}
	PUT(e + beg, end - beg);
#undef PUT
	return 0;
}

/* --- Grammar --------------------------------------------------------------- */

static int stop(pb__jlex_t *x, int status, const char *why)
{
	x->status = status;
	x->err = why;
	return status;
}

/* The state after a value in the current one. */
static void got_value(pb__jlex_t *x)
{
	uint8_t *s = &x->stack[x->depth - 1];

	if (*s == S_START)
		*s = S_DONE;
	else if (*s == S_MAP_NEED_VAL)
		*s = S_MAP_GOT_VAL;
	else
		*s = S_ARR_GOT_VAL;
}

static int string_event(pb__jlex_t *x, const struct token *t, bool key)
{
	const uint8_t *s = t->s;
	size_t len = t->len;

	if (t->esc) {
		if (decode(x, t->s, t->len) != 0)
			return stop(x, PB__JLEX_NOMEM, "out of memory");
		s = x->dec;
		len = x->dlen;
	}
	if (key)
		return x->ev.map_key(x->ctx, s, len) ? 0 : stop(x, PB__JLEX_STOPPED, NULL);
	return x->ev.string(x->ctx, s, len, !t->esc) ? 0 : stop(x, PB__JLEX_STOPPED, NULL);
}

/* A value where one may stand (yajl's start, map_need_val, array_start,
 * array_need_val). */
static int value(pb__jlex_t *x, enum tok k, const struct token *t)
{
	uint8_t push;
	int ok;

	switch (k) {
	case T_STR:
		if (string_event(x, t, false) != 0)
			return x->status;
		got_value(x);
		return 0;
	case T_NUM: ok = x->ev.number(x->ctx, (const char *)t->s, t->len); break;
	case T_TRUE: ok = x->ev.boolean(x->ctx, 1); break;
	case T_FALSE: ok = x->ev.boolean(x->ctx, 0); break;
	case T_NULL: ok = x->ev.null_value(x->ctx); break;
	case T_LBRACE:
	case T_LBRACK:
		ok = k == T_LBRACE ? x->ev.start_map(x->ctx) : x->ev.start_array(x->ctx);
		if (!ok)
			return stop(x, PB__JLEX_STOPPED, NULL);
		if (x->depth == STACK_MAX)
			return stop(x, PB__JLEX_TOOBIG, "JSON nested too deeply");
		push = k == T_LBRACE ? S_MAP_START : S_ARR_START;
		got_value(x);
		x->stack[x->depth++] = push;
		return 0;
	case T_RBRACK:
		if (x->stack[x->depth - 1] == S_ARR_START) {
			if (!x->ev.end_array(x->ctx))
				return stop(x, PB__JLEX_STOPPED, NULL);
			x->depth--;
			return 0;
		}
		/* fall through */
	default:
		return stop(x, PB__JLEX_MALFORMED, "unallowed token at this point in JSON text");
	}
	if (!ok)
		return stop(x, PB__JLEX_STOPPED, NULL);
	got_value(x);
	return 0;
}

/* One token (or a lexical error) at offset base + t->start. */
static int take(pb__jlex_t *x, enum tok k, const struct token *t, uint64_t base)
{
	uint8_t *s = &x->stack[x->depth - 1];

	x->at = base + t->start;
	if (k == T_ERR)
		return stop(x, PB__JLEX_MALFORMED, *s == S_DONE ? "trailing garbage" : t->err);
	if ((k == T_STR && t->end - t->start > x->token_max + 1) || (k == T_NUM && t->len > x->token_max))
		return stop(x, PB__JLEX_TOOBIG, "a string or number is too long");
	switch (*s) {
	case S_DONE:
		return stop(x, PB__JLEX_MALFORMED, "trailing garbage");
	case S_MAP_START:
	case S_MAP_NEED_KEY:
		if (k == T_STR) {
			if (string_event(x, t, true) != 0)
				return x->status;
			*s = S_MAP_SEP;
			return 0;
		}
		if (k == T_RBRACE && *s == S_MAP_START)
			goto end_map;
		return stop(x, PB__JLEX_MALFORMED, "invalid object key (must be a string)");
	case S_MAP_SEP:
		if (k != T_COLON)
			return stop(x, PB__JLEX_MALFORMED, "object key and value must be separated by a colon (':')");
		*s = S_MAP_NEED_VAL;
		return 0;
	case S_MAP_GOT_VAL:
		if (k == T_RBRACE)
			goto end_map;
		if (k != T_COMMA)
			return stop(x, PB__JLEX_MALFORMED, "after key and value, inside map, I expect ',' or '}'");
		*s = S_MAP_NEED_KEY;
		return 0;
	case S_ARR_GOT_VAL:
		if (k == T_RBRACK) {
			if (!x->ev.end_array(x->ctx))
				return stop(x, PB__JLEX_STOPPED, NULL);
			x->depth--;
			return 0;
		}
		if (k != T_COMMA)
			return stop(x, PB__JLEX_MALFORMED, "after array element, I expect ',' or ']'");
		*s = S_ARR_NEED_VAL;
		return 0;
	default:
		return value(x, k, t);
	}
end_map:
	if (!x->ev.end_map(x->ctx))
		return stop(x, PB__JLEX_STOPPED, NULL);
	x->depth--;
	return 0;
}

/* --- Feeding --------------------------------------------------------------- */

static int pend_add(pb__jlex_t *x, const uint8_t *b, size_t n)
{
	if (n > SIZE_MAX - x->plen - 1 || grow(&x->pend, &x->pcap, x->plen + n + 1) != 0)
		return stop(x, PB__JLEX_NOMEM, "out of memory");
	memcpy(x->pend + x->plen, b, n);
	x->plen += n;
	return 0;
}

/* A token that the last feed ended inside, completed from buf: its bytes
 * so far are pend's, more of buf is added (as much again each time) until
 * the token ends there. Sets *used to the bytes of buf it took. */
static int resume(pb__jlex_t *x, const uint8_t *buf, size_t len, size_t *used)
{
	size_t took = 0, step, old;
	struct token t;
	enum tok k;
	int err;

	for (;;) {
		step = x->plen < 256 ? 256 : x->plen;
		if (step > len - took)
			step = len - took;
		if ((err = pend_add(x, buf + took, step)) != 0)
			return err;
		took += step;
		k = lex(x->pend, x->plen, 0, &t);
		if (k != T_EOF)
			break;
		if (x->plen > x->token_max) {
			x->at = x->pend_at;
			return stop(x, PB__JLEX_TOOBIG, "a string or number is too long");
		}
		if (took == len) {
			*used = len;
			return 0;
		}
	}
	/* The token ends at t.end (or the error is) in pend; what of buf
	 * lies after it is read from buf. */
	old = x->plen - took;
	err = take(x, k, &t, x->pend_at);
	x->plen = 0;
	if (err != 0)
		return err;
	*used = t.end - old;
	return 0;
}

int pb__jlex_feed(pb__jlex_t *x, const uint8_t *buf, size_t len)
{
	size_t i = 0;
	struct token t;
	enum tok k;
	int err;

	if (x->status != 0)
		return x->status;
	if (x->plen > 0 && len > 0 && (err = resume(x, buf, len, &i)) != 0)
		return err;
	while (i < len) {
		uint8_t *st = &x->stack[x->depth - 1];

		/* The separators of an object or array written without
		 * spaces (a message has two dozen): take's moves, without a
		 * token. */
		if (buf[i] == ':' && *st == S_MAP_SEP) {
			*st = S_MAP_NEED_VAL;
			i++;
			continue;
		}
		if (buf[i] == ',' && (*st == S_MAP_GOT_VAL || *st == S_ARR_GOT_VAL)) {
			*st = *st == S_MAP_GOT_VAL ? S_MAP_NEED_KEY : S_ARR_NEED_VAL;
			i++;
			continue;
		}
		k = lex(buf, len, i, &t);
		if (k == T_EOF) {
			if (t.start < len) {
				if (len - t.start > x->token_max) {
					x->at = x->base + t.start;
					return stop(x, PB__JLEX_TOOBIG, "a string or number is too long");
				}
				x->pend_at = x->base + t.start;
				if ((err = pend_add(x, buf + t.start, len - t.start)) != 0)
					return err;
			}
			break;
		}
		if ((err = take(x, k, &t, x->base)) != 0)
			return err;
		i = t.end;
	}
	x->base += len;
	return 0;
}

int pb__jlex_finish(pb__jlex_t *x)
{
	struct token t;
	enum tok k;
	int err;

	if (x->status != 0)
		return x->status;
	if (x->plen > 0) {
		/* yajl ends its text with a space. */
		if ((err = pend_add(x, (const uint8_t *)" ", 1)) != 0)
			return err;
		k = lex(x->pend, x->plen, 0, &t);
		if (k != T_EOF && (err = take(x, k, &t, x->pend_at)) != 0)
			return err;
		x->plen = 0;
	}
	x->at = x->base;
	if (x->stack[x->depth - 1] != S_DONE)
		return stop(x, PB__JLEX_EARLY_END, "premature EOF");
	return 0;
}
