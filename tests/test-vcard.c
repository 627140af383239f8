/* Contacts: vCard 3.0 CATEGORIES, 4.0 KIND:group, Apple groups, folding,
 * escaping, ADR; the canonical book, its codec and exports; bad input; the
 * generator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "kinds.h"
#include "peerback.h"
#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

/* vCard 4.0 with a group card: the canonical form, exactly. */
static const char v4_in[] =
	"BEGIN:VCARD\r\n"
	"VERSION:4.0\r\n"
	"FN:Anna Schmidt\r\n"
	"N:Schmidt;Anna;;;\r\n"
	"UID:urn:uuid:0a1b-anna\r\n"
	"TEL;TYPE=cell:+49 170 1234567\r\n"
	"TEL;TYPE=\"home,voice\":+49 30 123456\r\n"
	"EMAIL;TYPE=work:anna@example.de\r\n"
	"ADR;TYPE=home:;;Hauptstra\xc3\x9f" "e 5\\, Hinterhaus;Berlin;;10115;Germany\r\n"
	"NOTE:Line one\\nline two\\; with semicolon\\, comma and backslash \\\\\r\n"
	"END:VCARD\r\n"
	"BEGIN:VCARD\r\n"
	"VERSION:4.0\r\n"
	"UID:urn:uuid:0a1b-bob\r\n"
	"FN:Bob\r\n"
	"EMAIL:bob@example.org\r\n"
	"END:VCARD\r\n"
	"BEGIN:VCARD\r\n"
	"VERSION:4.0\r\n"
	"KIND:group\r\n"
	"FN:Family\r\n"
	"UID:urn:uuid:0a1b-family\r\n"
	"MEMBER:urn:uuid:0a1b-anna\r\n"
	"MEMBER:mailto:bob@example.org\r\n"
	"MEMBER:urn:uuid:not-in-this-book\r\n"
	"END:VCARD\r\n";

static const char v4_canonical[] =
	"BEGIN:VCARD\r\n"
	"VERSION:4.0\r\n"
	"UID:urn:uuid:0a1b-anna\r\n"
	"FN:Anna Schmidt\r\n"
	"N:Schmidt;Anna;;;\r\n"
	"TEL;TYPE=cell:+49 170 1234567\r\n"
	"TEL;TYPE=\"home,voice\":+49 30 123456\r\n"
	"EMAIL;TYPE=work:anna@example.de\r\n"
	"ADR;TYPE=home:;;Hauptstra\xc3\x9f" "e 5\\, Hinterhaus;Berlin;;10115;Germany\r\n"
	"NOTE:Line one\\nline two\\; with semicolon\\, comma and backslash \\\\\r\n"
	"CATEGORIES:Family\r\n"
	"END:VCARD\r\n"
	"BEGIN:VCARD\r\n"
	"VERSION:4.0\r\n"
	"UID:urn:uuid:0a1b-bob\r\n"
	"FN:Bob\r\n"
	"EMAIL:bob@example.org\r\n"
	"CATEGORIES:Family\r\n"
	"END:VCARD\r\n"
	"BEGIN:VCARD\r\n"
	"VERSION:4.0\r\n"
	"UID:urn:uuid:0a1b-family\r\n"
	"KIND:group\r\n"
	"FN:Family\r\n"
	"MEMBER:urn:uuid:0a1b-anna\r\n"
	"MEMBER:urn:uuid:0a1b-bob\r\n"
	"MEMBER:urn:uuid:not-in-this-book\r\n"
	"END:VCARD\r\n";

static void test_v4_groups_canonical(void **state)
{
	char *src = pb_test_tmpdir("vc-src"), *dev = pb_test_tmpdir("vc-dev"), *out = pb_test_tmpdir("vc-out");
	char *f = pb_test_write_at(src, "book.vcf", v4_in), *got, *dev_file, err[256];

	(void)state;
	pb_test_import_contacts_ok(dev, f);
	got = pb_test_read_at(dev, "contacts/contacts.vcf");
	assert_non_null(got);
	assert_string_equal(got, v4_canonical);
	free(got);
	/* Importing the canonical book again changes nothing. */
	dev_file = pb_test_join(dev, "contacts/contacts.vcf");
	pb_test_import_contacts_ok(dev, dev_file);
	got = pb_test_read_at(dev, "contacts/contacts.vcf");
	assert_string_equal(got, v4_canonical);
	free(got);
	/* vcard4 export is the canonical book, byte for byte. */
	assert_int_equal(pb__export_contacts(dev, "vcard4", out, err, sizeof(err)), 0);
	got = pb_test_read_at(out, "contacts.vcf");
	assert_string_equal(got, v4_canonical);
	free(got);
	assert_int_equal(pb__export_contacts(dev, "x", out, err, sizeof(err)), PB_EUNSUPPORTED);
	free(dev_file);
	free(f);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	pb_test_rmtree(out);
	free(src);
	free(dev);
	free(out);
}

/* What Android and Google export: vCard 3.0, groups as CATEGORIES, no UID,
 * folded lines (with a tab too), LF line ends. */
static const char v3_in[] =
	"BEGIN:VCARD\n"
	"VERSION:3.0\n"
	"N:M\xc3\xbcller;J\xc3\xbcrgen;;;\n"
	"FN:J\xc3\xbcrgen M\xc3\xbcller\n"
	"TEL;TYPE=CELL:+49 151 000111\n"
	"TEL;TYPE=WORK:+49 89 22\n"
	"EMAIL;TYPE=INTERNET:juergen@example.de\n"
	"EMAIL;TYPE=INTERNET:j.mueller@example.com\n"
	"CATEGORIES:Family,Work\\,Projects,myContacts\n"
	"NOTE:This note is long enough to be folded by the exporting phone at sev\n"
	" enty-five octets\n"
	"\tand continued with a tab.\n"
	"END:VCARD\n"
	"\n"
	"BEGIN:VCARD\n"
	"VERSION:3.0\n"
	"FN:\xe5\xbc\xa0\xe4\xbc\x9f \xf0\x9f\x90\xbc\n"
	"item1.TEL:+86 10 5555\n"
	"item1.X-ABLabel:Office\n"
	"CATEGORIES:Work\\,Projects\n"
	"ADR;TYPE=WORK:;;1 Chang'an Ave;Beijing;;100000;China\n"
	"END:VCARD\n";

static void test_v3_categories(void **state)
{
	char *src = pb_test_tmpdir("vc3-src"), *dev = pb_test_tmpdir("vc3-dev"), *out = pb_test_tmpdir("vc3-out");
	char *dev2 = pb_test_tmpdir("vc3-dev2"), *f = pb_test_write_at(src, "android.vcf", v3_in), *got, *again, *e;
	char err[256];
	const char *p;
	int groups = 0;

	(void)state;
	pb_test_import_contacts_ok(dev, f);
	got = pb_test_read_at(dev, "contacts/contacts.vcf");
	assert_non_null(got);
	/* Unfolded, then folded again at 75 octets. */
	assert_non_null(strstr(got, "NOTE:This note is long enough to be folded by the exporting phone at sevent\r\n"
				    " y-five octetsand continued with a tab.\r\n"));
	assert_non_null(strstr(got, "item1.TEL:+86 10 5555\r\nitem1.X-ABLABEL:Office\r\n"));
	assert_non_null(strstr(got, "CATEGORIES:Family,Work\\,Projects,myContacts\r\n"));
	assert_non_null(strstr(got, "ADR;TYPE=WORK:;;1 Chang'an Ave;Beijing;;100000;China\r\n"));
	/* Every card has a UID; three group cards were made. */
	for (p = got; (p = strstr(p, "KIND:group\r\nFN:")) != NULL; p++)
		groups++;
	assert_int_equal(groups, 3);
	assert_non_null(strstr(got, "KIND:group\r\nFN:Work\\,Projects\r\nMEMBER:urn:uuid:"));
	for (p = got; (p = strstr(p, "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:")) != NULL; p++)
		groups--;
	assert_int_equal(groups, -2);
	/* Lines never pass 75 octets. */
	for (p = got; (e = strstr(p, "\r\n")) != NULL; p = e + 2)
		assert_true(e - p <= 75);
	/* vcard3 export and back gives the same book. */
	assert_int_equal(pb__export_contacts(dev, "vcard3", out, err, sizeof(err)), 0);
	again = pb_test_read_at(out, "contacts.vcf");
	assert_non_null(strstr(again, "VERSION:3.0\r\n"));
	assert_null(strstr(again, "KIND:group"));
	assert_null(strstr(again, "MEMBER"));
	free(again);
	free(f);
	f = pb_test_join(out, "contacts.vcf");
	pb_test_import_contacts_ok(dev2, f);
	again = pb_test_read_at(dev2, "contacts/contacts.vcf");
	assert_string_equal(got, again);
	free(again);
	free(got);
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

static const char apple_in[] =
	"BEGIN:VCARD\r\n"
	"VERSION:3.0\r\n"
	"PRODID:-//Apple Inc.//iPhone OS 17.2//EN\r\n"
	"N:Doe;Jane;;;\r\n"
	"FN:Jane Doe\r\n"
	"TEL;type=CELL;type=VOICE;type=pref:+1 555 0100\r\n"
	"UID:AAAA-1111\r\n"
	"END:VCARD\r\n"
	"BEGIN:VCARD\r\n"
	"VERSION:3.0\r\n"
	"N:Roe;Richard;;;\r\n"
	"FN:Richard Roe\r\n"
	"UID:BBBB-2222\r\n"
	"END:VCARD\r\n"
	"BEGIN:VCARD\r\n"
	"VERSION:3.0\r\n"
	"N:Book Club\r\n"
	"FN:Book Club\r\n"
	"X-ADDRESSBOOKSERVER-KIND:group\r\n"
	"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:AAAA-1111\r\n"
	"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:BBBB-2222\r\n"
	"UID:CCCC-3333\r\n"
	"END:VCARD\r\n";

static void test_apple_groups(void **state)
{
	char *src = pb_test_tmpdir("vca-src"), *dev = pb_test_tmpdir("vca-dev"), *out = pb_test_tmpdir("vca-out");
	char *dev2 = pb_test_tmpdir("vca-dev2"), *f = pb_test_write_at(src, "icloud.vcf", apple_in), *got, *again;
	char err[256];

	(void)state;
	pb_test_import_contacts_ok(dev, f);
	got = pb_test_read_at(dev, "contacts/contacts.vcf");
	assert_non_null(strstr(got, "UID:AAAA-1111\r\nFN:Jane Doe\r\nPRODID:-//Apple Inc.//iPhone OS 17.2//EN\r\n"));
	assert_non_null(strstr(got, "CATEGORIES:Book Club\r\nEND:VCARD\r\n"));
	assert_non_null(strstr(got, "UID:CCCC-3333\r\nKIND:group\r\nFN:Book Club\r\nN:Book Club\r\n"
				    "X-PEERBACK-DIALECT:apple\r\nMEMBER:urn:uuid:AAAA-1111\r\nMEMBER:urn:uuid:BBBB-2222\r\nEND:VCARD\r\n"));
	assert_null(strstr(got, "X-ADDRESSBOOKSERVER"));
	/* The apple export (the default for a book that came as Apple's)
	 * brings the Apple group form back, and round trips. */
	assert_int_equal(pb__export_contacts(dev, "auto", out, err, sizeof(err)), 0);
	again = pb_test_read_at(out, "contacts.vcf");
	assert_non_null(strstr(again, "X-ADDRESSBOOKSERVER-KIND:group\r\n"));
	assert_non_null(strstr(again, "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:BBBB-2222\r\n"));
	assert_null(strstr(again, "CATEGORIES"));
	free(again);
	free(f);
	f = pb_test_join(out, "contacts.vcf");
	pb_test_import_contacts_ok(dev2, f);
	again = pb_test_read_at(dev2, "contacts/contacts.vcf");
	assert_string_equal(got, again);
	free(again);
	free(got);
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

static void test_merge_by_uid(void **state)
{
	char *src = pb_test_tmpdir("vcm-src"), *dev = pb_test_tmpdir("vcm-dev"), *got;
	char *a = pb_test_write_at(src, "a.vcf", v4_in);
	char *b = pb_test_write_at(src, "b.vcf",
			    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:0a1b-bob\r\nFN:Bob Builder\r\n"
			    "EMAIL:bob@example.org\r\nEND:VCARD\r\n"
			    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:new-one\r\nFN:Carla\r\nEND:VCARD\r\n");

	(void)state;
	pb_test_import_contacts_ok(dev, a);
	pb_test_import_contacts_ok(dev, b);
	got = pb_test_read_at(dev, "contacts/contacts.vcf");
	/* Bob is replaced in place and keeps his group; Carla is added. */
	assert_null(strstr(got, "FN:Bob\r\n"));
	assert_non_null(strstr(got, "UID:urn:uuid:0a1b-bob\r\nFN:Bob Builder\r\nEMAIL:bob@example.org\r\n"
				    "CATEGORIES:Family\r\n"));
	assert_true(strstr(got, "FN:Bob Builder") < strstr(got, "FN:Carla"));
	assert_true(strstr(got, "FN:Carla") < strstr(got, "KIND:group"));
	free(got);
	free(a);
	free(b);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

struct items {
	size_t n;
	char ids[8][PB_ITEM_ID_MAX];
	pb_item_t it[8];
};

static int keep(void *arg, const pb_item_t *item)
{
	struct items *v = arg;

	assert_true(v->n < 8);
	v->it[v->n] = *item;
	snprintf(v->ids[v->n], PB_ITEM_ID_MAX, "%s", item->id);
	v->it[v->n].id = v->ids[v->n];
	v->n++;
	return 0;
}

static void test_codec(void **state)
{
	const pb_codec_t *c = &pb__codec_vcard;
	struct items v;
	pb_buf_t out = {0};

	(void)state;
	assert_true(c->matches("contacts/contacts.vcf"));
	assert_false(c->matches("contacts/other.vcf"));
	memset(&v, 0, sizeof(v));
	assert_int_equal(c->split("contacts/contacts.vcf", (const uint8_t *)v4_canonical, strlen(v4_canonical), keep,
				  &v),
			 0);
	assert_int_equal(v.n, 3);
	assert_string_equal(v.it[0].id, "contact/0a1b-anna");
	assert_string_equal(v.it[2].id, "group/0a1b-family");
	assert_int_equal(v.it[1].seq, 1);
	assert_int_equal(v.it[1].kind, PB_KIND_CONTACTS);
	assert_true(v.it[1].len > 20 && memcmp(v.it[1].data, "BEGIN:VCARD\r\n", 13) == 0);
	assert_int_equal(c->join("contacts/contacts.vcf", v.it, v.n, &out), 0);
	assert_int_equal(out.len, strlen(v4_canonical));
	assert_memory_equal(out.data, v4_canonical, out.len);
	pb__chat_buf_clear(&out);
	/* A foreign book with blank lines still joins back to its bytes. */
	memset(&v, 0, sizeof(v));
	assert_int_equal(c->split("contacts/contacts.vcf", (const uint8_t *)v3_in, strlen(v3_in), keep, &v), 0);
	assert_int_equal(v.n, 2);
	assert_int_equal(c->join("contacts/contacts.vcf", v.it, v.n, &out), 0);
	assert_int_equal(out.len, strlen(v3_in));
	assert_memory_equal(out.data, v3_in, out.len);
	pb__chat_buf_clear(&out);
	memset(&v, 0, sizeof(v));
	assert_true(c->split("contacts/contacts.vcf", (const uint8_t *)"BEGIN:VCARD\r\nFN:x\r\n", 19, keep, &v) < 0);
}

static void test_bad_input(void **state)
{
	static const struct {
		const char *text;
		int err;
		const char *words;
	} cases[] = {
		{"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Cut\r\n", PB_ETRUNCATED, "line 1: vCard has no END:VCARD"},
		{"BEGIN:VCARD\r\nFN:a\r\nEND:VCARD\r\nhello\r\n", PB_EDATA_FORMAT, "line 4: text outside"},
		{"BEGIN:VCARD\r\nFN:a\r\nBEGIN:VCARD\r\nEND:VCARD\r\n", PB_EDATA_FORMAT, "line 3: BEGIN:VCARD inside"},
		{"BEGIN:VCARD\r\nno colon here\r\nEND:VCARD\r\n", PB_EDATA_FORMAT, "line 2: not a vCard property"},
		{"BEGIN:VCARD\r\nBAD NAME:x\r\nEND:VCARD\r\n", PB_EDATA_FORMAT, "line 2"},
		{"", PB_EDATA_FORMAT, "no vCard"},
	};
	char *src = pb_test_tmpdir("vcb-src"), *dev = pb_test_tmpdir("vcb-dev"), *good, *bad, *before, *after;
	const char *files[2];
	char err[512];
	size_t i;
	int rc;

	(void)state;
	good = pb_test_write_at(src, "good.vcf", v4_in);
	pb_test_import_contacts_ok(dev, good);
	before = pb_test_read_at(dev, "contacts/contacts.vcf");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]) + 1; i++) {
		if (i < sizeof(cases) / sizeof(cases[0])) {
			bad = pb_test_write_at(src, "bad.vcf", cases[i].text);
		} else {
			/* A 2 MiB line without a newline is refused, not loaded. */
			size_t n = 2u << 20;
			char *big = malloc(n + 1);

			memset(big, 'A', n);
			memcpy(big, "BEGIN:VCARD\nNOTE:", 17);
			big[n] = 0;
			bad = pb_test_write_at(src, "bad.vcf", big);
			free(big);
		}
		files[0] = good;
		files[1] = bad;
		err[0] = 0;
		rc = pb__import_contacts(dev, files, 2, err, sizeof(err));
		if (i < sizeof(cases) / sizeof(cases[0])) {
			if (rc != cases[i].err || strstr(err, cases[i].words) == NULL || strstr(err, "bad.vcf") == NULL)
				fail_msg("case %zu: got %d \"%s\"", i, rc, err);
		} else if (rc != PB_ETOOBIG || strstr(err, "line 2: line longer than 1 MiB") == NULL) {
			fail_msg("long line: got %d \"%s\"", rc, err);
		}
		after = pb_test_read_at(dev, "contacts/contacts.vcf");
		assert_string_equal(before, after);
		free(after);
		free(bad);
	}
	free(before);
	free(good);
	pb_test_rmtree(src);
	pb_test_rmtree(dev);
	free(src);
	free(dev);
}

static int count_kinds(void *arg, const pb_item_t *item)
{
	size_t *n = arg;

	if (strncmp(item->id, "group/", 6) == 0)
		n[1]++;
	else if (strncmp(item->id, "contact/", 8) == 0)
		n[0]++;
	return 0;
}

static void test_generator(void **state)
{
	char *a = pb_test_tmpdir("vcg-a"), *b = pb_test_tmpdir("vcg-b"), *c = pb_test_tmpdir("vcg-c");
	char *dev = pb_test_tmpdir("vcg-dev"), *x, *y, *f;
	size_t n[2] = {0, 0};

	(void)state;
	assert_int_equal(pb__gen_contacts(a, 11, PB_GEN_STANDARD), 0);
	assert_int_equal(pb__gen_contacts(b, 11, PB_GEN_STANDARD), 0);
	assert_int_equal(pb__gen_contacts(c, 12, PB_GEN_STANDARD), 0);
	x = pb_test_read_at(a, "contacts/contacts.vcf");
	y = pb_test_read_at(b, "contacts/contacts.vcf");
	assert_string_equal(x, y);
	free(y);
	y = pb_test_read_at(c, "contacts/contacts.vcf");
	assert_string_not_equal(x, y);
	free(y);
	/* Hundreds of contacts, seven groups, both group forms. */
	assert_int_equal(pb__codec_vcard.split("contacts/contacts.vcf", (uint8_t *)x, strlen(x), count_kinds, n), 0);
	assert_int_equal(n[0], 600);
	assert_int_equal(n[1], 7);
	assert_non_null(strstr(x, "CATEGORIES:"));
	assert_non_null(strstr(x, "MEMBER:urn:uuid:"));
	assert_non_null(strstr(x, "ADR;TYPE=home:"));
	/* The generated book is canonical. */
	f = pb_test_join(a, "contacts/contacts.vcf");
	pb_test_import_contacts_ok(dev, f);
	y = pb_test_read_at(dev, "contacts/contacts.vcf");
	assert_string_equal(x, y);
	free(y);
	free(x);
	free(f);
	pb_test_rmtree(a);
	pb_test_rmtree(b);
	pb_test_rmtree(c);
	pb_test_rmtree(dev);
	free(a);
	free(b);
	free(c);
	free(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4_groups_canonical),
		cmocka_unit_test(test_v3_categories),
		cmocka_unit_test(test_apple_groups),
		cmocka_unit_test(test_merge_by_uid),
		cmocka_unit_test(test_codec),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_generator),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
