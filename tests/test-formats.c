/* Contacts, chats and card dumps as phones and tools really write them:
 * vCard 2.1 from Android, WhatsApp exports in many locales, Flipper files
 * with unread sectors. Every file of the corpus in tests/data/formats
 * imports, its names and dates read right, and exporting it again in the
 * format it came in gives back the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "testutil.h"
#include "kinds.h"
#include "peerback.h"
#include "peerback/error.h"
#include "peerback/nfc.h"
#include "agent/kinds/chat-util.h"

/* --- Reproductions of what phones' files did to the importers -------------- */

/* A 2.1 name in quoted-printable is decoded into the 4.0 store. */
static void test_repro_vcard21_qp_decoded(void **state)
{
	char *src = pb_test_tmpdir("r21-src"), *dev = pb_test_tmpdir("r21-dev"), *f, *book;

	(void)state;
	f = pb_test_write_at(src, "zhang.vcf",
		     "BEGIN:VCARD\r\nVERSION:2.1\r\n"
		     "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E5=BC=A0;=E4=BC=9F;;;\r\n"
		     "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E5=BC=A0=E4=BC=9F\r\n"
		     "TEL;CELL:+86 138 0013 8000\r\nEND:VCARD\r\n");
	pb_test_import_contacts_ok(dev, f);
	book = pb_test_read_at(dev, "contacts/contacts.vcf");
	assert_non_null(book);
	if (strstr(book, "FN:\xe5\xbc\xa0\xe4\xbc\x9f\r\n") == NULL)
		fail_msg("the 4.0 store does not have FN:\xe5\xbc\xa0\xe4\xbc\x9f:\n%s", book);
	assert_null(strstr(book, "QUOTED-PRINTABLE"));
	assert_null(strstr(book, "TEL;CELL"));
	free(book);
	free(f);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

/* A quoted-printable value with a soft line break imports. */
static void test_repro_vcard21_soft_break(void **state)
{
	char *src = pb_test_tmpdir("r21s-src"), *dev = pb_test_tmpdir("r21s-dev"), *f, *book;

	(void)state;
	f = pb_test_write_at(src, "long.vcf",
		     "BEGIN:VCARD\r\nVERSION:2.1\r\n"
		     "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E6=AC=A7=E9=98=B3;=E5=B0=8F=E6=98=8E=E5=B0=8F=E6=98=8E=E5=\r\n"
		     "=B0=8F=E6=98=8E;;;\r\n"
		     "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E6=AC=A7=E9=98=B3=E5=B0=8F=E6=98=8E=E5=B0=8F=E6=98=8E=E5=\r\n"
		     "=B0=8F=E6=98=8E\r\n"
		     "END:VCARD\r\n");
	pb_test_import_contacts_ok(dev, f);
	book = pb_test_read_at(dev, "contacts/contacts.vcf");
	assert_non_null(book);
	assert_non_null(strstr(book, "FN:\xe6\xac\xa7\xe9\x98\xb3\xe5\xb0\x8f\xe6\x98\x8e\xe5\xb0\x8f\xe6\x98\x8e"
				     "\xe5\xb0\x8f\xe6\x98\x8e\r\n"));
	free(book);
	free(f);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

/* A US phone's export: the file settles month first. */
static void test_repro_whatsapp_us_dates(void **state)
{
	char *src = pb_test_tmpdir("rwa-src"), *dev = pb_test_tmpdir("rwa-dev"), *f, *chats, **names = NULL, rel[300];
	char *json;
	size_t n = 0;

	(void)state;
	f = pb_test_write_at(src, "WhatsApp Chat with Bob.txt",
		     "1/12/24, 2:03\xe2\x80\xafPM - Bob: Hi there\n"
		     "1/12/24, 2:05\xe2\x80\xafPM - Ann: Hello\n"
		     "2/3/24, 9:41\xe2\x80\xaf" "AM - Bob: See you\n");
	pb_test_import_chat_ok(dev, f);
	chats = pb_test_join(dev, "chats");
	assert_int_equal(pb__chat_list(chats, true, &names, &n), 0);
	assert_int_equal(n, 1);
	snprintf(rel, sizeof(rel), "chats/%s/result.json", names[0]);
	json = pb_test_read_at(dev, rel);
	assert_non_null(json);
	if (strstr(json, "\"date\":\"2024-01-12T14:03:00\"") == NULL)
		fail_msg("1/12/24, 2:03 PM is not 12 January 14:03:\n%s", json);
	free(json);
	pb__chat_names_free(names, n);
	free(chats);
	free(f);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

/* A WhatsApp chat exported again keeps the style it came in. */
static void test_repro_whatsapp_reexport(void **state)
{
	static const char text[] = "31/01/24, 14:05 - Alice: Hi\n31/01/24, 14:06 - Bob: Hello\n";
	char *src = pb_test_tmpdir("rwx-src"), *dev = pb_test_tmpdir("rwx-dev"), *out = pb_test_tmpdir("rwx-out");
	char *f, *back, err[256];

	(void)state;
	f = pb_test_write_at(src, "WhatsApp Chat with Alice.txt", text);
	pb_test_import_chat_ok(dev, f);
	assert_int_equal(pb__export_chat(dev, "whatsapp", out, err, sizeof(err)), 0);
	back = pb_test_read_at(out, "WhatsApp Chat with Alice.txt");
	assert_non_null(back);
	if (strcmp(back, text) != 0)
		fail_msg("re-exported as\n%swhere the file was\n%s", back, text);
	free(back);
	free(f);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	pb_test_rmtree(out);
	free(src);
	free(dev);
	free(out);
}

/* A Flipper file's SAK and ATQA come back as the file had them. */
static void test_repro_flipper_sak(void **state)
{
	static const char nfc[] =
		"Filetype: Flipper NFC device\nVersion: 4\n"
		"# Device type can be ISO14443-3A, ISO14443-3B, ISO14443-4A, NTAG/Ultralight, Mifare Classic, "
		"Mifare DESFire, SLIX, ST25TB\n"
		"Device type: Mifare Classic\n# UID is common for all formats\nUID: F4 3D 7C 0A\n"
		"# ISO14443-3A data\nATQA: 00 04\nSAK: 08\n# Mifare Classic specific data\n"
		"Mifare Classic type: MINI\nData format version: 2\n"
		"# Mifare Classic blocks, '\?\?' means unknown data\n"
		"Block 0: F4 3D 7C 0A BF 88 04 00 C8 03 00 20 00 00 00 20\n";
	pb_mifare_card_t *card;
	pb_buf_t out = {0};
	char err[256];

	(void)state;
	assert_int_equal(pb_mifare_parse_flipper((const uint8_t *)nfc, strlen(nfc), &card, err, sizeof(err)), 0);
	assert_int_equal(pb_mifare_format_flipper(card, &out), 0);
	assert_int_equal(pb_buf_append(&out, "", 1), 0);
	if (strstr((const char *)out.data, "\nSAK: 08\n") == NULL)
		fail_msg("the exported Flipper file says\n%s", (const char *)out.data);
	pb_buf_free(&out);
	free(card);
}


/* --- An RFC 6350 checker ------------------------------------------------------ */

static const char *const props40[] = {
	"BEGIN", "END", "SOURCE", "KIND", "XML", "FN", "N", "NICKNAME", "PHOTO", "BDAY", "ANNIVERSARY", "GENDER",
	"ADR", "TEL", "EMAIL", "IMPP", "LANG", "TZ", "GEO", "TITLE", "ROLE", "LOGO", "ORG", "MEMBER", "RELATED",
	"CATEGORIES", "NOTE", "PRODID", "REV", "SOUND", "UID", "CLIENTPIDMAP", "URL", "VERSION", "KEY", "FBURL",
	"CALADRURI", "CALURI", NULL};
static const char *const once40[] = {"VERSION", "KIND", "N", "BDAY", "ANNIVERSARY", "GENDER", "PRODID", "REV",
				      "UID", NULL};
static const char *const params40[] = {"LANGUAGE", "VALUE", "PREF", "ALTID", "PID", "TYPE", "MEDIATYPE",
					"CALSCALE", "SORT-AS", "GEO", "TZ", "LABEL", NULL};
static const char *const values40[] = {"text", "uri", "date", "time", "date-time", "date-and-or-time",
				       "timestamp", "boolean", "integer", "float", "utc-offset", "language-tag",
				       NULL};

static bool in_list(const char *const *l, const char *s, size_t n, bool icase)
{
	for (; *l; l++)
		if (strlen(*l) == n && (icase ? strncasecmp(*l, s, n) : strncmp(*l, s, n)) == 0)
			return true;
	return false;
}

static bool x_name(const char *s, size_t n)
{
	return n > 2 && (s[0] == 'X' || s[0] == 'x') && s[1] == '-';
}

static bool token(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '-'))
			return false;
	return n > 0;
}

/* Unescaped occurrences of c in a value. */
static size_t unescaped(const char *v, char c)
{
	size_t n = 0;

	for (; *v; v++) {
		if (*v == '\\' && v[1] != 0)
			v++;
		else if (*v == c)
			n++;
	}
	return n;
}

/* Checks a vCard 4.0 text against RFC 6350's rules for content lines,
 * properties, their cardinality and parameters. NULL when valid, else why
 * (a static sentence with the line). */
static const char *check_vcard40(const char *text)
{
	static char why[400];
	char *un = malloc(strlen(text) + 1), *line, *save = NULL;
	const char *p, *e;
	size_t k = 0, count[10] = {0}, i;
	bool in = false, group = false, has_fn = false, member = false;
	int ln = 0;

	assert_non_null(un);
	/* Physical lines: CRLF, at most 75 octets, folds start with a blank. */
	for (p = text; *p; p = e + 2) {
		e = strstr(p, "\r\n");
		if (e == NULL) {
			free(un);
			return "a line without CRLF";
		}
		if (e - p > 75) {
			snprintf(why, sizeof(why), "a line over 75 octets: %.60s", p);
			free(un);
			return why;
		}
		if (*p == ' ' || *p == '\t') {
			memcpy(un + k, p + 1, (size_t)(e - p - 1));
			k += (size_t)(e - p - 1);
		} else {
			if (k > 0)
				un[k++] = '\n';
			memcpy(un + k, p, (size_t)(e - p));
			k += (size_t)(e - p);
		}
	}
	un[k] = 0;
	for (line = strtok_r(un, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		const char *colon, *name = line, *dot, *ps, *value;
		size_t nl;

		ln++;
		for (colon = line; *colon && *colon != ':'; colon++)
			if (*colon == '"')
				for (colon++; *colon && *colon != '"'; colon++)
					;
		if (*colon != ':') {
			snprintf(why, sizeof(why), "logical line %d has no ':': %.60s", ln, line);
			goto bad;
		}
		value = colon + 1;
		for (i = 0; value[i]; i++)
			if ((unsigned char)value[i] < 0x20 && value[i] != '\t') {
				snprintf(why, sizeof(why), "logical line %d has a control character", ln);
				goto bad;
			}
		ps = strchr(line, ';');
		if (ps == NULL || ps > colon)
			ps = colon;
		dot = memchr(line, '.', (size_t)(ps - line));
		if (dot != NULL)
			name = dot + 1;
		nl = (size_t)(ps - name);
		if (!token(name, nl) || (!in_list(props40, name, nl, true) && !x_name(name, nl))) {
			snprintf(why, sizeof(why), "logical line %d: %.*s is no RFC 6350 property", ln, (int)nl, name);
			goto bad;
		}
		if (nl == 5 && !strncasecmp(name, "BEGIN", 5)) {
			if (in || strcasecmp(value, "VCARD") != 0) {
				snprintf(why, sizeof(why), "logical line %d: BEGIN inside a card", ln);
				goto bad;
			}
			in = true;
			group = has_fn = member = false;
			memset(count, 0, sizeof(count));
			/* VERSION:4.0 must come right after BEGIN. */
			line = strtok_r(NULL, "\n", &save);
			ln++;
			if (line == NULL || strcmp(line, "VERSION:4.0") != 0) {
				snprintf(why, sizeof(why), "logical line %d: no VERSION:4.0 after BEGIN", ln);
				goto bad;
			}
			count[0]++;
			continue;
		}
		if (!in) {
			snprintf(why, sizeof(why), "logical line %d outside a card", ln);
			goto bad;
		}
		if (nl == 3 && !strncasecmp(name, "END", 3)) {
			if (!has_fn || (member && !group)) {
				snprintf(why, sizeof(why), "card ending on line %d: %s", ln,
					 !has_fn ? "no FN" : "MEMBER on a card that is not KIND:group");
				goto bad;
			}
			in = false;
			continue;
		}
		for (i = 0; once40[i]; i++)
			if (strlen(once40[i]) == nl && !strncasecmp(once40[i], name, nl) && ++count[i] > 1) {
				snprintf(why, sizeof(why), "logical line %d: a second %s", ln, once40[i]);
				goto bad;
			}
		has_fn = has_fn || (nl == 2 && !strncasecmp(name, "FN", 2));
		member = member || (nl == 6 && !strncasecmp(name, "MEMBER", 6));
		group = group || (nl == 4 && !strncasecmp(name, "KIND", 4) && !strcasecmp(value, "group"));
		/* Parameters. */
		for (p = ps; p < colon;) {
			const char *pe = p + 1, *eq;
			bool q = false;

			while (pe < colon && (q || *pe != ';')) {
				q ^= *pe == '"';
				pe++;
			}
			eq = memchr(p + 1, '=', (size_t)(pe - p - 1));
			if (eq == NULL || (!in_list(params40, p + 1, (size_t)(eq - p - 1), true) &&
					   !x_name(p + 1, (size_t)(eq - p - 1)))) {
				snprintf(why, sizeof(why), "logical line %d: parameter %.*s is not RFC 6350's", ln,
					 (int)(pe - p - 1), p + 1);
				goto bad;
			}
			if (eq - p - 1 == 4 && !strncasecmp(p + 1, "PREF", 4)) {
				int v = atoi(eq + 1);

				if (v < 1 || v > 100 || !token(eq + 1, (size_t)(pe - eq - 1))) {
					snprintf(why, sizeof(why), "logical line %d: PREF is not 1-100", ln);
					goto bad;
				}
			}
			if (eq - p - 1 == 4 && !strncasecmp(p + 1, "TYPE", 4)) {
				const char *t = eq + 1, *te;

				if (*t == '"')
					t++;
				for (; t < pe && *t != '"'; t = te + 1) {
					for (te = t; te < pe && *te != ',' && *te != '"'; te++)
						;
					if (!token(t, (size_t)(te - t))) {
						snprintf(why, sizeof(why), "logical line %d: a TYPE value is no token", ln);
						goto bad;
					}
					if (*te == '"')
						break;
				}
			}
			if (eq - p - 1 == 5 && !strncasecmp(p + 1, "VALUE", 5) &&
			    !in_list(values40, eq + 1, (size_t)(pe - eq - 1), true) && !x_name(eq + 1, (size_t)(pe - eq - 1))) {
				snprintf(why, sizeof(why), "logical line %d: VALUE=%.*s", ln, (int)(pe - eq - 1), eq + 1);
				goto bad;
			}
			p = pe;
		}
		/* Values of the structured and URI properties. */
		if ((nl == 1 && !strncasecmp(name, "N", 1) && unescaped(value, ';') != 4) ||
		    (nl == 3 && !strncasecmp(name, "ADR", 3) && unescaped(value, ';') != 6)) {
			snprintf(why, sizeof(why), "logical line %d: %.*s has the wrong number of components", ln, (int)nl,
				 name);
			goto bad;
		}
		if ((nl == 2 && !strncasecmp(name, "FN", 2)) || (nl == 4 && !strncasecmp(name, "NOTE", 4)) ||
		    (nl == 5 && !strncasecmp(name, "TITLE", 5))) {
			if (unescaped(value, ';') || unescaped(value, ',')) {
				snprintf(why, sizeof(why), "logical line %d: an unescaped ; or , in a text value", ln);
				goto bad;
			}
		}
		if ((nl == 5 && !strncasecmp(name, "PHOTO", 5)) || (nl == 3 && !strncasecmp(name, "URL", 3))) {
			for (i = 0; value[i] && value[i] != ':'; i++)
				if (!((value[i] >= 'a' && value[i] <= 'z') || (value[i] >= 'A' && value[i] <= 'Z') ||
				      (i > 0 && strchr("0123456789+.-", value[i]) != NULL)))
					break;
			if (i == 0 || value[i] != ':') {
				snprintf(why, sizeof(why), "logical line %d: %.*s is not a URI", ln, (int)nl, name);
				goto bad;
			}
		}
		if (strstr(line, "CHARSET") != NULL || strstr(line, "ENCODING=") != NULL) {
			snprintf(why, sizeof(why), "logical line %d: CHARSET or ENCODING has no place in 4.0", ln);
			goto bad;
		}
	}
	free(un);
	return in ? "a card without END" : NULL;
bad:
	free(un);
	return why;
}

/* The text with folded lines joined. */
static char *unfolded(const char *s)
{
	char *o = malloc(strlen(s) + 1), *q = o;

	assert_non_null(o);
	while (*s) {
		if (s[0] == '\r' && s[1] == '\n' && (s[2] == ' ' || s[2] == '\t')) {
			s += 3;
			continue;
		}
		*q++ = *s++;
	}
	*q = 0;
	return o;
}

static char *data_file(const char *rel)
{
	char r[400];

	snprintf(r, sizeof(r), "formats/%s", rel);
	return pb_test_data(r);
}

static char *slurp(const char *path, size_t *len)
{
	char *s = (char *)pb_test_read_file(path, len);

	if (s == NULL)
		fail_msg("cannot read %s", path);
	return s;
}

static void assert_has(const char *hay, const char *needle, const char *what)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("%s: no \"%s\" in\n%s", what, needle, hay);
}

/* --- vCard 2.1 from Android ------------------------------------------------- */

static void test_checker_catches_21(void **state)
{
	/* The checker refuses what the unchanged importer stored. */
	(void)state;
	assert_non_null(check_vcard40("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:=E5=BC=A0\r\n"
				      "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E5=BC=A0;;;;\r\nEND:VCARD\r\n"));
	assert_non_null(check_vcard40("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nTEL;CELL:1\r\nEND:VCARD\r\n"));
	assert_non_null(check_vcard40("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nN:A;B\r\nEND:VCARD\r\n"));
	assert_non_null(check_vcard40("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A, B\r\nEND:VCARD\r\n"));
	assert_non_null(check_vcard40("BEGIN:VCARD\r\nVERSION:4.0\r\nN:A;B;;;\r\nEND:VCARD\r\n"));
	assert_null(check_vcard40("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\\, B\r\nTEL;TYPE=cell;PREF=1:1\r\n"
				  "X-FOO;X-BAR=1:z\r\nEND:VCARD\r\n"));
}

static void test_corpus_vcard21(void **state)
{
	char *dev = pb_test_tmpdir("c21-dev"), *out = pb_test_tmpdir("c21-out"), *out4 = pb_test_tmpdir("c21-out4");
	char *f = data_file("vcard/android-21.vcf"), *in, *store, *un, *back, *p, err[256];
	const char *bad;
	size_t inlen, blen;

	(void)state;
	in = slurp(f, &inlen);
	pb_test_import_contacts_ok(dev, f);
	store = pb_test_read_at(dev, "contacts/contacts.vcf");
	assert_non_null(store);
	if ((bad = check_vcard40(store)) != NULL)
		fail_msg("the store is not valid vCard 4.0: %s", bad);
	un = unfolded(store);
	/* Chinese, with a nickname, an address and a photo. */
	assert_has(un, "\r\nFN:\xe5\xbc\xa0\xe4\xbc\x9f\r\nN:\xe5\xbc\xa0;\xe4\xbc\x9f;;;\r\n", "Chinese name");
	assert_has(un, "\r\nX-ANDROID-CUSTOM:vnd.android.cursor.item/nickname;\xe5\xb0\x8f\xe5\xbc\xa0;1;;;;;;;;;;;;;\r\n",
		   "nickname");
	assert_has(un, "\r\nTEL;TYPE=cell:+86 138 0013 8000\r\nTEL;TYPE=home:010-6552 1234\r\n", "phones");
	assert_has(un, "\r\nEMAIL;TYPE=home:zhang.wei@example.cn\r\n", "email");
	assert_has(un, "\r\nADR;TYPE=home:;;\xe6\x9c\x9d\xe9\x98\xb3\xe5\x8c\xba\xe5\xbb\xba\xe5\x9b\xbd\xe8\xb7\xaf"
		       "88\xe5\x8f\xb7;\xe5\x8c\x97\xe4\xba\xac;;100022;\xe4\xb8\xad\xe5\x9b\xbd\r\n", "address");
	assert_has(un, "\r\nPHOTO:data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAAUu/tGy3EKtc9HcmnYVvx51NWz", "photo");
	assert_has(un, "\r\nX-PEERBACK-DIALECT:vcard21,no-uid,x-group-membership\r\nCATEGORIES:\xe5\xae\xb6\xe4\xba\xba,Work\r\n",
		   "dialect and groups");
	/* Arabic, with a preferred number, an organisation and a two-line note. */
	assert_has(un, "\r\nFN:\xd9\x85\xd8\xad\xd9\x85\xd8\xaf \xd8\xa7\xd9\x84\xd8\xb9\xd9\x84\xd9\x8a\r\n"
		       "N:\xd8\xa7\xd9\x84\xd8\xb9\xd9\x84\xd9\x8a;\xd9\x85\xd8\xad\xd9\x85\xd8\xaf;;;\r\n", "Arabic name");
	assert_has(un, "\r\nTEL;TYPE=cell;PREF=1:+966 50 123 4567\r\n", "preferred phone");
	assert_has(un, "\\n\xd8\xb3\xd8\xb7\xd8\xb1 \xd8\xab\xd8\xa7\xd9\x86\xd9\x8d\r\n", "note's second line");
	/* A long Arabic name that quoted-printable broke over lines. */
	assert_has(un, "\r\nFN:\xd8\xb9\xd8\xa8\xd8\xaf \xd8\xa7\xd9\x84\xd8\xb1\xd8\xad\xd9\x85\xd9\x86 \xd8\xa8\xd9\x86 "
		       "\xd9\x85\xd8\xad\xd9\x85\xd8\xaf \xd8\xa8\xd9\x86 \xd8\xb9\xd8\xa8\xd8\xaf \xd8\xa7\xd9\x84\xd9\x84\xd9\x87 "
		       "\xd8\xa7\xd9\x84\xd9\x81\xd9\x84\xd8\xa7\xd9\x86\xd9\x8a\r\n", "long Arabic name");
	/* Emoji. */
	assert_has(un, "\r\nFN:Lily \xf0\x9f\x8c\xb8 Chen\r\nN:Chen;Lily \xf0\x9f\x8c\xb8;;;\r\n", "emoji name");
	assert_has(un, "\r\nURL:https://lily.example.com/about\r\n", "URL");
	assert_has(un, "\r\nNOTE:Met at the caf\xc3\xa9 \xe2\x98\x95 in Lisbon\r\n", "emoji note");
	/* ASCII: escapes, fax, all five name parts. */
	assert_has(un, "\r\nFN:Dr. John Q. Smith Jr.\r\nN:Smith;John;Q.;Dr.;Jr.\r\n", "ASCII name");
	assert_has(un, "\r\nTEL;TYPE=work,fax:+44 20 7946 0018\r\n", "fax");
	assert_has(un, "\r\nORG:Example Ltd;R&D\r\n", "organisation");
	assert_has(un, "\r\nNOTE:Prefers email\\; call only if urgent\r\n", "escaped note");
	/* No name at all: FN from the number, and none written back. */
	assert_has(un, "\r\nFN:+49 151 23456789\r\nTEL;TYPE=cell:+49 151 23456789\r\nX-PEERBACK-DIALECT:vcard21,no-uid,no-fn\r\n",
		   "card without a name");
	/* Android's groups are groups. */
	assert_has(un, "KIND:group\r\nFN:\xe5\xae\xb6\xe4\xba\xba\r\nMEMBER:urn:uuid:", "group card");
	assert_has(un, "KIND:group\r\nFN:Work\r\nMEMBER:urn:uuid:", "second group card");
	/* Exported in the dialect it came in: the same bytes. */
	assert_int_equal(pb__export_contacts(dev, "auto", out, err, sizeof(err)), 0);
	p = pb_test_join(out, "contacts.vcf");
	back = slurp(p, &blen);
	free(p);
	if (blen != inlen || memcmp(back, in, inlen) != 0)
		fail_msg("re-exported 2.1 differs:\n%s", back);
	free(back);
	/* vcard21 says the same; vcard4 converts, validly, without the dialect. */
	assert_int_equal(pb__export_contacts(dev, "vcard4", out4, err, sizeof(err)), 0);
	p = pb_test_join(out4, "contacts.vcf");
	back = slurp(p, &blen);
	free(p);
	if ((bad = check_vcard40(back)) != NULL)
		fail_msg("the vcard4 export is not valid vCard 4.0: %s", bad);
	assert_null(strstr(back, "X-PEERBACK"));
	free(back);
	free(un);
	free(store);
	free(in);
	free(f);
	pb_test_rmtree(dev);
	pb_test_rmtree(out);
	pb_test_rmtree(out4);
	free(dev);
	free(out);
	free(out4);
}

/* A 4.0 book exported as 2.1 reads back as the same book. */
static void test_vcard4_to_21_and_back(void **state)
{
	static const char v4[] = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:a1\r\nFN:J\xc3\xbcrgen M\xc3\xbcller\r\n"
				 "N:M\xc3\xbcller;J\xc3\xbcrgen;;;\r\nTEL;TYPE=cell;PREF=1:+49 170 1\r\n"
				 "NOTE:a\\, b\\; c\\nd\r\nCATEGORIES:Team\r\nEND:VCARD\r\n";
	char *src = pb_test_tmpdir("v421-src"), *dev = pb_test_tmpdir("v421-dev"), *dev2 = pb_test_tmpdir("v421-dev2");
	char *out = pb_test_tmpdir("v421-out"), *f = pb_test_write_at(src, "b.vcf", v4), *a, *b, *exp, err[256];

	(void)state;
	pb_test_import_contacts_ok(dev, f);
	assert_int_equal(pb__export_contacts(dev, "vcard21", out, err, sizeof(err)), 0);
	exp = pb_test_read_at(out, "contacts.vcf");
	assert_has(exp, "VERSION:2.1\r\nUID:urn:uuid:a1\r\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=4D=C3=BC", "2.1 name");
	assert_has(exp, "\r\nTEL;CELL;PREF:+49 170 1\r\n", "2.1 phone");
	assert_has(exp, "\r\nCATEGORIES:Team\r\n", "2.1 groups");
	free(f);
	f = pb_test_join(out, "contacts.vcf");
	pb_test_import_contacts_ok(dev2, f);
	a = pb_test_read_at(dev2, "contacts/contacts.vcf");
	b = unfolded(a);
	assert_null(check_vcard40(a));
	free(a);
	a = pb_test_read_at(dev, "contacts/contacts.vcf");
	assert_has(b, "\r\nFN:J\xc3\xbcrgen M\xc3\xbcller\r\nN:M\xc3\xbcller;J\xc3\xbcrgen;;;\r\nTEL;TYPE=cell;PREF=1:+49 170 1\r\n"
		      "NOTE:a\\, b\\; c\\nd\r\n", "the book read back");
	assert_null(check_vcard40(a));
	free(a);
	free(b);
	free(exp);
	free(f);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	pb_test_rmtree(dev2);
	pb_test_rmtree(out);
	free(src);
	free(dev);
	free(dev2);
	free(out);
}

/* Bad 2.1 input: nothing imported. */
static void test_vcard21_bad(void **state)
{
	static const struct {
		const char *text, *words;
	} cases[] = {
		{"BEGIN:VCARD\r\nVERSION:2.1\r\nFN;ENCODING=QUOTED-PRINTABLE:=41=\r\n", "soft line break at the end"},
		{"BEGIN:VCARD\r\nVERSION:2.1\r\nFN;CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE:=82=A0\r\nEND:VCARD\r\n",
		 "CHARSET"},
	};
	char *src = pb_test_tmpdir("b21-src"), *dev = pb_test_tmpdir("b21-dev"), *f, *book, err[512];
	const char *files[1];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		f = pb_test_write_at(src, "bad.vcf", cases[i].text);
		files[0] = f;
		err[0] = 0;
		assert_int_not_equal(pb__import_contacts(dev, files, 1, err, sizeof(err)), 0);
		assert_has(err, cases[i].words, "error");
		book = pb_test_read_at(dev, "contacts/contacts.vcf");
		assert_null(book);
		free(f);
	}
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

/* --- WhatsApp in many locales ------------------------------------------------- */

struct wa_expect {
	int idx; /* 1-based message number */
	const char *date, *from, *text, *attachment;
};

struct wa_case {
	const char *file, *name;
	int nmsgs;
	struct wa_expect e[4];
};

static const struct wa_case wa_cases[] = {
	{"WhatsApp Chat with Bob Miller.txt", "Bob Miller", 8,
	 {{1, "2024-01-12T09:58:00", NULL, "Messages and calls are end-to-end encrypted.", NULL},
	  {2, "2024-01-12T14:03:00", "Bob Miller", "Hi there", NULL},
	  {5, "2024-01-13T10:41:00", "Ann", "", "IMG-20240113-WA0004.jpg"},
	  {8, "2024-02-03T23:15:00", "Ann", "See you \xf0\x9f\x91\x8b", NULL}}},
	{"WhatsApp Chat - Road Trip/_chat.txt", "Road Trip", 6,
	 {{1, "2024-01-12T09:58:01", "Road Trip", "\xe2\x80\x8eMessages and calls", NULL},
	  {3, "2024-01-12T14:03:05", "Bob Miller", "Who's driving?", NULL},
	  {4, "2024-01-12T14:04:40", "Ann", "", "00000007-PHOTO-2024-01-12-14-04-40.jpg"},
	  {6, "2024-01-15T00:00:00", "Ann", "", PB__CHAT_FILE_NOT_INCLUDED}}},
	{"WhatsApp-Chat mit J\xc3\xbcrgen.txt", "J\xc3\xbcrgen", 7,
	 {{2, "2024-01-12T14:03:00", "J\xc3\xbcrgen", "Hallo! Wie geht's?", NULL},
	  {4, "2024-01-13T09:17:00", "J\xc3\xbcrgen", "", "IMG-20240113-WA0002.jpg"},
	  {5, "2024-01-13T09:18:00", "Anna", "", PB__CHAT_FILE_NOT_INCLUDED},
	  {7, "2024-01-13T21:41:00", NULL, "J\xc3\xbcrgen hat den Betreff von \xe2\x80\x9eUrlaub: 2024", NULL}}},
	{"WhatsApp Chat - Familia Garc\xc3\xad" "a/_chat.txt", "Familia Garc\xc3\xad" "a", 5,
	 {{2, "2024-01-12T14:03:09", "Mar\xc3\xad" "a Jos\xc3\xa9", "\xc2\xa1Hola a todos!", NULL},
	  {3, "2024-01-12T14:04:00", "Carlos", "", "00000003-PHOTO-2024-01-12-14-04-00.jpg"},
	  {4, "2024-01-13T08:00:00", "Mar\xc3\xad" "a Jos\xc3\xa9", "Buenos d\xc3\xad" "as", NULL},
	  {5, "2024-01-13T08:01:12", "Carlos", "", PB__CHAT_FILE_NOT_INCLUDED}}},
	{"Discussion WhatsApp avec \xc3\x89lodie.txt", "\xc3\x89lodie", 5,
	 {{1, "2024-01-12T14:03:00", NULL, "Les messages", NULL},
	  {2, "2024-01-12T14:03:00", "\xc3\x89lodie", "Salut ! \xc3\x87" "a va ?", NULL},
	  {4, "2024-01-13T09:00:00", "\xc3\x89lodie", "", PB__CHAT_FILE_NOT_INCLUDED},
	  {5, "2024-01-13T09:01:00", "Luc", "", "VID-20240113-WA0001.mp4"}}},
	{"Conversa do WhatsApp com Jo\xc3\xa3o.txt", "Jo\xc3\xa3o", 5,
	 {{2, "2024-01-12T14:03:00", "Jo\xc3\xa3o", "Oi! Tudo bem?", NULL},
	  {3, "2024-01-12T14:04:00", "Beatriz", "Tudo \xc3\xb3timo", NULL},
	  {4, "2024-01-14T18:30:00", "Jo\xc3\xa3o", "", "PTT-20240114-WA0003.opus"},
	  {5, "2024-01-14T18:31:00", "Beatriz", "", PB__CHAT_FILE_NOT_INCLUDED}}},
	{"WhatsApp Chat with \xd0\x94\xd0\xbc\xd0\xb8\xd1\x82\xd1\x80\xd0\xb8\xd0\xb9.txt",
	 "\xd0\x94\xd0\xbc\xd0\xb8\xd1\x82\xd1\x80\xd0\xb8\xd0\xb9", 4,
	 {{2, "2024-01-12T14:03:00", "\xd0\x94\xd0\xbc\xd0\xb8\xd1\x82\xd1\x80\xd0\xb8\xd0\xb9", "\xd0\x9f\xd1\x80\xd0\xb8", NULL},
	  {4, "2024-01-13T00:15:00", "\xd0\x94\xd0\xbc\xd0\xb8\xd1\x82\xd1\x80\xd0\xb8\xd0\xb9", "", PB__CHAT_FILE_NOT_INCLUDED},
	  {0, NULL, NULL, NULL, NULL}, {0, NULL, NULL, NULL, NULL}}},
	{"WhatsApp Chat with \xe5\xbc\xa0\xe4\xbc\x9f.txt", "\xe5\xbc\xa0\xe4\xbc\x9f", 5,
	 {{2, "2024-01-12T14:03:00", "\xe5\xbc\xa0\xe4\xbc\x9f", "\xe4\xbd\xa0\xe5\xa5\xbd", NULL},
	  {4, "2024-01-13T09:10:00", "\xe5\xbc\xa0\xe4\xbc\x9f", "", "IMG-20240113-WA0008.jpg"},
	  {5, "2024-01-13T11:59:00", "\xe6\x9d\x8e\xe5\xa8\x9c", "", PB__CHAT_FILE_NOT_INCLUDED},
	  {0, NULL, NULL, NULL, NULL}}},
	{"WhatsApp Chat with \xd8\xa3\xd8\xad\xd9\x85\xd8\xaf.txt", "\xd8\xa3\xd8\xad\xd9\x85\xd8\xaf", 4,
	 {{1, "2024-01-12T14:03:00", "\xd8\xa3\xd8\xad\xd9\x85\xd8\xaf", "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", NULL},
	  {3, "2024-01-13T09:00:00", "\xd8\xa3\xd8\xad\xd9\x85\xd8\xaf", "", PB__CHAT_FILE_NOT_INCLUDED},
	  {4, "2024-01-13T09:02:00", "\xd8\xb3\xd8\xa7\xd8\xb1\xd8\xa9", "", "IMG-20240113-WA0011.jpg"},
	  {0, NULL, NULL, NULL, NULL}}},
	{"WhatsApp Chat with \xd8\xb3\xd8\xa7\xd8\xb1\xd8\xa9.txt", "\xd8\xb3\xd8\xa7\xd8\xb1\xd8\xa9", 3,
	 {{1, "2024-01-12T14:03:00", "\xd8\xb3\xd8\xa7\xd8\xb1\xd8\xa9", "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", NULL},
	  {2, "2024-01-12T14:04:00", "\xd8\xae\xd8\xa7\xd9\x84\xd8\xaf", "\xd8\xa3\xd9\x87\xd9\x84\xd8\xa7", NULL},
	  {3, "2024-01-13T09:15:00", "\xd8\xb3\xd8\xa7\xd8\xb1\xd8\xa9", "", PB__CHAT_FILE_NOT_INCLUDED},
	  {0, NULL, NULL, NULL, NULL}}},
	{"WhatsApp Chat with \xe0\xa4\xb0\xe0\xa4\xbe\xe0\xa4\xb9\xe0\xa5\x81\xe0\xa4\xb2.txt",
	 "\xe0\xa4\xb0\xe0\xa4\xbe\xe0\xa4\xb9\xe0\xa5\x81\xe0\xa4\xb2", 4,
	 {{1, "2024-01-12T14:03:00", "\xe0\xa4\xb0\xe0\xa4\xbe\xe0\xa4\xb9\xe0\xa5\x81\xe0\xa4\xb2", "\xe0\xa4\xa8\xe0\xa4\xae", NULL},
	  {3, "2024-01-13T10:00:00", "\xe0\xa4\xb0\xe0\xa4\xbe\xe0\xa4\xb9\xe0\xa5\x81\xe0\xa4\xb2", "", PB__CHAT_FILE_NOT_INCLUDED},
	  {4, "2024-01-13T10:01:00", NULL, "", "DOC-20240113-WA0001.pdf"},
	  {0, NULL, NULL, NULL, NULL}}},
};

static pb__cj_t *chat_tree(const char *dev)
{
	char *chats = pb_test_join(dev, "chats"), **names = NULL, rel[300], *json;
	pb__cj_t *tree = NULL;
	size_t n = 0, len;

	assert_int_equal(pb__chat_list(chats, true, &names, &n), 0);
	assert_int_equal(n, 1);
	snprintf(rel, sizeof(rel), "chats/%s/result.json", names[0]);
	json = pb_test_read_at(dev, rel);
	assert_non_null(json);
	len = strlen(json);
	/* The canonical chat keeps no line as it was: the dialect said it all. */
	if (strstr(json, "\"whatsapp_lines\"") != NULL || strstr(json, "\"whatsapp_head\"") != NULL)
		fail_msg("a line was kept verbatim:\n%s", json);
	assert_int_equal(pb__chat_json_parse((const uint8_t *)json, len, &tree), 0);
	free(json);
	pb__chat_names_free(names, n);
	free(chats);
	return tree;
}

static void check_message(const pb__cj_t *m, const struct wa_expect *e, const char *file)
{
	const char *date = pb__cj_get_str(m, "date"), *from = pb__cj_get_str(m, "from"), *text = pb__cj_get_str(m, "text");
	const char *att = pb__cj_get_str(m, "photo") ? pb__cj_get_str(m, "photo") : pb__cj_get_str(m, "file");

	if (date == NULL || strcmp(date, e->date) != 0)
		fail_msg("%s message %d: date %s, not %s", file, e->idx, date ? date : "(none)", e->date);
	if (e->from != NULL && (from == NULL || strcmp(from, e->from) != 0))
		fail_msg("%s message %d: from %s, not %s", file, e->idx, from ? from : "(none)", e->from);
	if (e->from == NULL && e->attachment == NULL && strcmp(pb__cj_get_str(m, "type"), "service") != 0)
		fail_msg("%s message %d is not a system line", file, e->idx);
	if (text == NULL || strncmp(text, e->text, strlen(e->text)) != 0 || (e->text[0] == 0 && text[0] != 0))
		fail_msg("%s message %d: text \"%s\", not \"%s\"", file, e->idx, text ? text : "", e->text);
	if (e->attachment != NULL && (att == NULL || strcmp(att, e->attachment) != 0))
		fail_msg("%s message %d: attachment %s, not %s", file, e->idx, att ? att : "(none)", e->attachment);
}

static void test_corpus_whatsapp(void **state)
{
	size_t c;

	(void)state;
	for (c = 0; c < sizeof(wa_cases) / sizeof(wa_cases[0]); c++) {
		const struct wa_case *wc = &wa_cases[c];
		char rel[300], *f, *in, *back, *dev = pb_test_tmpdir("cwa-dev"), *out = pb_test_tmpdir("cwa-out");
		char **names = NULL, err[512], *p;
		pb__cj_t *tree, *msgs, *m;
		size_t inlen, blen, n = 0;
		int i, k;

		snprintf(rel, sizeof(rel), "whatsapp/%s", wc->file);
		f = data_file(rel);
		in = slurp(f, &inlen);
		pb_test_import_chat_ok(dev, f);
		tree = chat_tree(dev);
		assert_string_equal(pb__cj_get_str(tree, "name"), wc->name);
		msgs = pb__cj_get(tree, "messages");
		assert_non_null(msgs);
		if ((int)msgs->n != wc->nmsgs)
			fail_msg("%s: %zu messages, not %d", wc->file, msgs->n, wc->nmsgs);
		for (k = 0; k < 4 && wc->e[k].idx; k++) {
			for (i = 1, m = msgs->child; m != NULL && i < wc->e[k].idx; m = m->next)
				i++;
			assert_non_null(m);
			check_message(m, &wc->e[k], wc->file);
		}
		pb__cj_free(tree);
		/* Exported in the dialect it came in: the same bytes. */
		if (pb__export_chat(dev, "auto", out, err, sizeof(err)) != 0)
			fail_msg("%s: export: %s", wc->file, err);
		assert_int_equal(pb__chat_list(out, false, &names, &n), 0);
		assert_int_equal(n, 1);
		p = pb_test_join(out, names[0]);
		back = slurp(p, &blen);
		if (blen != inlen || memcmp(back, in, inlen) != 0)
			fail_msg("%s re-exported differs:\n%s\nfrom\n%s", wc->file, back, in);
		free(back);
		free(p);
		pb__chat_names_free(names, n);
		/* --format still converts. */
		pb_test_rmtree(out);
		assert_int_equal(pb__export_chat(dev, "telegram", out, err, sizeof(err)), 0);
		free(in);
		free(f);
		pb_test_rmtree(dev);
		pb_test_rmtree(out);
		free(dev);
		free(out);
	}
}

/* A file no date of which settles day/month order: a clear error naming the
 * line, nothing imported; --date-format settles it. */
static void test_whatsapp_ambiguous(void **state)
{
	char *f = data_file("whatsapp/ambiguous/WhatsApp Chat with Sam.txt"), *dev = pb_test_tmpdir("amb-dev");
	char *chats = pb_test_join(dev, "chats"), err[512] = "";
	const char *files[1] = {f};
	pb__cj_t *tree, *m;
	struct stat sb;

	(void)state;
	assert_int_equal(pb__import_chat(dev, files, 1, err, sizeof(err)), PB_EDATA_FORMAT);
	assert_has(err, "line 1 (\"3/4/24, 10:00 - Sam: Hi\")", "ambiguous error");
	assert_has(err, "--date-format", "ambiguous error");
	assert_true(stat(chats, &sb) != 0);
	assert_int_equal(pb__import_chat_dated(dev, files, 1, "DD/MM/YY", err, sizeof(err)), 0);
	tree = chat_tree(dev);
	m = pb__cj_get(tree, "messages")->child;
	assert_string_equal(pb__cj_get_str(m, "date"), "2024-04-03T10:00:00");
	pb__cj_free(tree);
	pb_test_rmtree(dev);
	assert_int_equal(pb__import_chat_dated(dev, files, 1, "MM/DD/YYYY", err, sizeof(err)), 0);
	tree = chat_tree(dev);
	m = pb__cj_get(tree, "messages")->child;
	assert_string_equal(pb__cj_get_str(m, "date"), "2024-03-04T10:00:00");
	pb__cj_free(tree);
	assert_int_equal(pb__import_chat_dated(dev, files, 1, "hh:mm", err, sizeof(err)), PB_EINVAL);
	assert_has(err, "--date-format", "bad --date-format");
	pb_test_rmtree(dev);
	/* Zero-padded fields are a day-first locale's (US English writes M/D/YY). */
	{
		char *src = pb_test_tmpdir("amb-src"), *g = pb_test_write_at(src, "WhatsApp Chat with Ana.txt",
			"12/03/24, 09:15 - Ana: Hi\n12/03/24, 09:16 - Ben: ok\n");

		files[0] = g;
		assert_int_equal(pb__import_chat(dev, files, 1, err, sizeof(err)), 0);
		tree = chat_tree(dev);
		m = pb__cj_get(tree, "messages")->child;
		assert_string_equal(pb__cj_get_str(m, "date"), "2024-03-12T09:15:00");
		pb__cj_free(tree);
		pb_test_rmtree(dev);
		pb_test_rmtree(src);
		free(src);
		free(g);
	}
	free(chats);
	free(dev);
	free(f);
}

/* The real program: --date-format settles a file, export writes it back. */
static void test_cli_whatsapp(void **state)
{
	char *tool = pb_test_tool("peerback"), *f = data_file("whatsapp/ambiguous/WhatsApp Chat with Sam.txt");
	char *dev = pb_test_tmpdir("cli-dev"), *out = pb_test_tmpdir("cli-out"), *err = NULL, *o = NULL, *in, *back, *p;
	size_t inlen, blen;
	int rc;

	(void)state;
	in = slurp(f, &inlen);
	{
		char *argv[] = {tool, "import", "chat", f, "--device", dev, NULL};

		rc = pb_test_run(argv, NULL, 60, &o, &err);
		assert_int_not_equal(rc, 0);
		assert_has(err, "line 1 (\"3/4/24, 10:00 - Sam: Hi\")", "stderr");
		assert_has(err, "nothing was imported", "stderr");
		free(o);
		free(err);
	}
	{
		char *argv[] = {tool, "import", "chat", f, "--device", dev, "--date-format", "MM/DD/YY", NULL};

		rc = pb_test_run(argv, NULL, 60, &o, &err);
		if (rc != 0)
			fail_msg("import --date-format: %d %s", rc, err);
		free(o);
		free(err);
	}
	{
		char *argv[] = {tool, "export", "chat", "--out", out, "--device", dev, NULL};

		rc = pb_test_run(argv, NULL, 60, &o, &err);
		if (rc != 0)
			fail_msg("export: %d %s", rc, err);
		free(o);
		free(err);
	}
	p = pb_test_join(out, "WhatsApp Chat with Sam.txt");
	back = slurp(p, &blen);
	assert_int_equal(blen, inlen);
	assert_memory_equal(back, in, inlen);
	free(back);
	free(p);
	free(in);
	pb_test_rmtree(dev);
	pb_test_rmtree(out);
	free(dev);
	free(out);
	free(f);
	free(tool);
}

/* --- Flipper files with unread sectors --------------------------------------- */

static void test_corpus_flipper(void **state)
{
	static const struct {
		const char *file;
		unsigned sectors, read;
		uint8_t sak, atqa0, atqa1, block0_sak;
	} cases[] = {
		{"flipper/transit-1k-partial.nfc", 16, 5, 0x08, 0x00, 0x04, 0x88},
		{"flipper/hotel-4k-7byte.nfc", 40, 4, 0x18, 0x00, 0x42, 0x18},
	};
	size_t c;

	(void)state;
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char *f = data_file(cases[c].file), *dev = pb_test_tmpdir("cfl-dev"), *out = pb_test_tmpdir("cfl-out");
		char *mct = pb_test_tmpdir("cfl-mct"), *in, *back, **names = NULL, err[512], *p;
		const char *files[1] = {f};
		pb_mifare_card_t *card;
		size_t inlen, blen, n = 0, uidlen;
		unsigned s, read = 0;

		in = slurp(f, &inlen);
		if (pb_mifare_parse_flipper((const uint8_t *)in, inlen, &card, err, sizeof(err)) != 0)
			fail_msg("%s: %s", cases[c].file, err);
		assert_int_equal(card->sectors, cases[c].sectors);
		for (s = 0; s < card->sectors; s++)
			read += card->known[16 * pb_mifare_sector_first_block(s)];
		assert_int_equal(read, cases[c].read);
		assert_int_equal(card->flipper_sak, cases[c].sak);
		assert_int_equal(card->flipper_atqa[0], cases[c].atqa0);
		assert_int_equal(card->flipper_atqa[1], cases[c].atqa1);
		uidlen = card->data[0] == 0x04 ? 7 : 4;
		assert_int_equal(card->data[uidlen == 7 ? 7 : 5], cases[c].block0_sak);
		free(card);
		if (pb__import_mifare(dev, files, 1, err, sizeof(err)) != 0)
			fail_msg("import %s: %s", f, err);
		assert_int_equal(pb__export_mifare(dev, "auto", out, err, sizeof(err)), 0);
		assert_int_equal(pb__chat_list(out, false, &names, &n), 0);
		assert_int_equal(n, 1);
		p = pb_test_join(out, names[0]);
		back = slurp(p, &blen);
		if (blen != inlen || memcmp(back, in, inlen) != 0)
			fail_msg("%s re-exported differs:\n%s", cases[c].file, back);
		free(back);
		free(p);
		/* --format still converts; the same card read again from that
		 * .mct keeps the header its Flipper file gave. */
		assert_int_equal(pb__export_mifare(dev, "mct", mct, err, sizeof(err)), 0);
		pb__chat_names_free(names, n);
		names = NULL;
		assert_int_equal(pb__chat_list(mct, false, &names, &n), 0);
		assert_int_equal(n, 1);
		p = pb_test_join(mct, names[0]);
		files[0] = p;
		if (pb__import_mifare(dev, files, 1, err, sizeof(err)) != 0)
			fail_msg("import %s: %s", p, err);
		free(p);
		pb__chat_names_free(names, n);
		pb_test_rmtree(out);
		assert_int_equal(pb__export_mifare(dev, "nfc", out, err, sizeof(err)), 0);
		assert_int_equal(pb__chat_list(out, false, &names, &n), 0);
		p = pb_test_join(out, names[0]);
		back = slurp(p, &blen);
		assert_int_equal(blen, inlen);
		assert_memory_equal(back, in, inlen);
		free(back);
		free(p);
		pb__chat_names_free(names, n);
		free(in);
		free(f);
		pb_test_rmtree(dev);
		pb_test_rmtree(out);
		pb_test_rmtree(mct);
		free(dev);
		free(out);
		free(mct);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repro_vcard21_qp_decoded),
		cmocka_unit_test(test_repro_vcard21_soft_break),
		cmocka_unit_test(test_repro_whatsapp_us_dates),
		cmocka_unit_test(test_repro_whatsapp_reexport),
		cmocka_unit_test(test_repro_flipper_sak),
		cmocka_unit_test(test_checker_catches_21),
		cmocka_unit_test(test_corpus_vcard21),
		cmocka_unit_test(test_vcard4_to_21_and_back),
		cmocka_unit_test(test_vcard21_bad),
		cmocka_unit_test(test_corpus_whatsapp),
		cmocka_unit_test(test_whatsapp_ambiguous),
		cmocka_unit_test(test_cli_whatsapp),
		cmocka_unit_test(test_corpus_flipper),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
