/* Contacts, chats and card dumps as phones and tools really write them:
 * vCard 2.1 from Android, WhatsApp exports in many locales, Flipper files
 * with unread sectors. Every file of the corpus in tests/data/formats
 * imports, its names and dates read right, and exporting it again in the
 * format it came in gives back the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "peerback.h"
#include "peerback/error.h"
#include "peerback/nfc.h"
#include "agent/kinds/chat-util.h"

static char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);

	assert_non_null(p);
	snprintf(p, n, "%s/%s", a, b);
	return p;
}

static char *write_at(const char *dir, const char *rel, const char *text)
{
	char *p = path_join(dir, rel);

	assert_int_equal(pb__chat_mkparents(p), 0);
	assert_int_equal(pb_test_write_file(p, text, strlen(text)), 0);
	return p;
}

static char *read_at(const char *dir, const char *rel)
{
	char *p = path_join(dir, rel);
	size_t len;
	char *s = (char *)pb_test_read_file(p, &len);

	free(p);
	return s;
}

static void contacts_ok(const char *dev, const char *file)
{
	const char *files[1] = {file};
	char err[512] = "";
	int rc = pb__import_contacts(dev, files, 1, err, sizeof(err));

	if (rc != 0)
		fail_msg("import %s: %d %s", file, rc, err);
}

static void chat_ok(const char *dev, const char *file)
{
	const char *files[1] = {file};
	char err[512] = "";
	int rc = pb__import_chat(dev, files, 1, err, sizeof(err));

	if (rc != 0)
		fail_msg("import %s: %d %s", file, rc, err);
}

/* --- Reproductions of what phones' files did to the importers -------------- */

/* A 2.1 name in quoted-printable is decoded into the 4.0 store. */
static void test_repro_vcard21_qp_decoded(void **state)
{
	char *src = pb_test_tmpdir("r21-src"), *dev = pb_test_tmpdir("r21-dev"), *f, *book;

	(void)state;
	f = write_at(src, "zhang.vcf",
		     "BEGIN:VCARD\r\nVERSION:2.1\r\n"
		     "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E5=BC=A0;=E4=BC=9F;;;\r\n"
		     "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E5=BC=A0=E4=BC=9F\r\n"
		     "TEL;CELL:+86 138 0013 8000\r\nEND:VCARD\r\n");
	contacts_ok(dev, f);
	book = read_at(dev, "contacts/contacts.vcf");
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
	f = write_at(src, "long.vcf",
		     "BEGIN:VCARD\r\nVERSION:2.1\r\n"
		     "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E6=AC=A7=E9=98=B3;=E5=B0=8F=E6=98=8E=E5=B0=8F=E6=98=8E=E5=\r\n"
		     "=B0=8F=E6=98=8E;;;\r\n"
		     "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=E6=AC=A7=E9=98=B3=E5=B0=8F=E6=98=8E=E5=B0=8F=E6=98=8E=E5=\r\n"
		     "=B0=8F=E6=98=8E\r\n"
		     "END:VCARD\r\n");
	contacts_ok(dev, f);
	book = read_at(dev, "contacts/contacts.vcf");
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
	f = write_at(src, "WhatsApp Chat with Bob.txt",
		     "1/12/24, 2:03\xe2\x80\xafPM - Bob: Hi there\n"
		     "1/12/24, 2:05\xe2\x80\xafPM - Ann: Hello\n"
		     "2/3/24, 9:41\xe2\x80\xaf" "AM - Bob: See you\n");
	chat_ok(dev, f);
	chats = path_join(dev, "chats");
	assert_int_equal(pb__chat_list(chats, true, &names, &n), 0);
	assert_int_equal(n, 1);
	snprintf(rel, sizeof(rel), "chats/%s/result.json", names[0]);
	json = read_at(dev, rel);
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
	f = write_at(src, "WhatsApp Chat with Alice.txt", text);
	chat_ok(dev, f);
	assert_int_equal(pb__export_chat(dev, "whatsapp", out, err, sizeof(err)), 0);
	back = read_at(out, "WhatsApp Chat with Alice.txt");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repro_vcard21_qp_decoded),
		cmocka_unit_test(test_repro_vcard21_soft_break),
		cmocka_unit_test(test_repro_whatsapp_us_dates),
		cmocka_unit_test(test_repro_whatsapp_reexport),
		cmocka_unit_test(test_repro_flipper_sak),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
