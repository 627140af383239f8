/* MIFARE Classic: geometry, access bits, value blocks and rights from
 * FORMATS.md, every file format's round trip, the real fixture, and every
 * kind of bad input leaving the device directory as it was. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinds-util.h"
#include "peerback.h"
#include "peerback/nfc.h"
#include "agent/kinds/internal.h"

static void hex(const char *h, uint8_t *out, size_t n)
{
	assert_int_equal(sodium_hex2bin(out, n, h, strlen(h), NULL, NULL, NULL), 0);
}

static void test_geometry(void **state)
{
	(void)state;
	assert_int_equal(pb_mifare_sectors_for_size(320), 5);
	assert_int_equal(pb_mifare_sectors_for_size(1024), 16);
	assert_int_equal(pb_mifare_sectors_for_size(2048), 32);
	assert_int_equal(pb_mifare_sectors_for_size(4096), 40);
	assert_int_equal(pb_mifare_sectors_for_size(4095), 0);
	assert_int_equal(pb_mifare_size(40), 4096);
	assert_int_equal(pb_mifare_size(5), 320);
	assert_int_equal(pb_mifare_sector_first_block(1), 4);
	assert_int_equal(pb_mifare_sector_trailer(0), 3);
	assert_int_equal(pb_mifare_sector_first_block(32), 128);
	assert_int_equal(pb_mifare_sector_trailer(32), 143);
	assert_int_equal(pb_mifare_sector_trailer(39), 255);
	assert_int_equal(pb_mifare_sector_blocks(31), 4);
	assert_int_equal(pb_mifare_sector_blocks(32), 16);
	assert_int_equal(pb_mifare_block_sector(127), 31);
	assert_int_equal(pb_mifare_block_sector(128), 32);
	assert_int_equal(pb_mifare_block_sector(255), 39);
	assert_true(pb_mifare_is_trailer(63));
	assert_true(pb_mifare_is_trailer(143));
	assert_false(pb_mifare_is_trailer(131));
	assert_int_equal(pb_mifare_block_group(6), 2);
	assert_int_equal(pb_mifare_block_group(128 + 4), 0);
	assert_int_equal(pb_mifare_block_group(128 + 5), 1);
	assert_int_equal(pb_mifare_block_group(128 + 14), 2);
	assert_int_equal(pb_mifare_block_group(128 + 15), 3);
}

static void test_access_bits(void **state)
{
	uint8_t bits[3], cond[4], back[3];

	(void)state;
	hex("FF0780", bits, 3);
	assert_int_equal(pb_mifare_access_decode(bits, cond), 0);
	assert_memory_equal(cond, ((uint8_t[]){ 0, 0, 0, 1 }), 4);
	hex("787788", bits, 3);
	assert_int_equal(pb_mifare_access_decode(bits, cond), 0);
	assert_memory_equal(cond, ((uint8_t[]){ 4, 4, 4, 3 }), 4);
	pb_mifare_access_encode(cond, back);
	assert_memory_equal(back, bits, 3);
	hex("FF0781", bits, 3);
	assert_int_equal(pb_mifare_access_decode(bits, cond), PB_EDATA_ACCESS_BITS);
	hex("000000", bits, 3);
	assert_int_equal(pb_mifare_access_decode(bits, cond), PB_EDATA_ACCESS_BITS);
	/* Every combination encodes to bits that decode back to it. */
	for (unsigned v = 0; v < 4096; v++) {
		uint8_t c[4] = { v & 7, (v >> 3) & 7, (v >> 6) & 7, (v >> 9) & 7 }, d[4];
		pb_mifare_access_encode(c, bits);
		assert_int_equal(pb_mifare_access_decode(bits, d), 0);
		assert_memory_equal(c, d, 4);
	}
	/* Exactly 4096 of the 2^24 byte triples are consistent. */
	{
		unsigned ok = 0;
		for (unsigned v = 0; v < (1u << 24); v += 257) {
			uint8_t b[3] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16) };
			ok += pb_mifare_access_decode(b, cond) == 0;
		}
		assert_true(ok < 20);
	}
}

static void test_value_blocks(void **state)
{
	uint8_t b[16], want[16];
	int32_t v;
	uint8_t addr;

	(void)state;
	hex("640000009BFFFFFF6400000004FB04FB", want, 16);
	assert_int_equal(pb_mifare_value_parse(want, &v, &addr), 0);
	assert_int_equal(v, 100);
	assert_int_equal(addr, 4);
	pb_mifare_value_format(100, 4, b);
	assert_memory_equal(b, want, 16);
	pb_mifare_value_format(-5, 0x21, b);
	assert_int_equal(pb_mifare_value_parse(b, &v, &addr), 0);
	assert_int_equal(v, -5);
	assert_int_equal(addr, 0x21);
	want[5] ^= 1;
	assert_int_equal(pb_mifare_value_parse(want, &v, &addr), PB_EDATA_VALUE_BLOCK);
	want[5] ^= 1;
	want[15] ^= 1;
	assert_int_equal(pb_mifare_value_parse(want, &v, &addr), PB_EDATA_VALUE_BLOCK);
}

static void test_rights(void **state)
{
	pb_mifare_card_t *card = malloc(sizeof(*card));
	uint8_t *t;

	(void)state;
	/* Transport trailer 001: key A does everything, key B is readable and
	 * so cannot authenticate. */
	assert_int_equal(pb_mifare_data_rights(0, 1, PB_MIFARE_KEY_A), 15);
	assert_int_equal(pb_mifare_data_rights(0, 1, PB_MIFARE_KEY_B), 0);
	assert_true(pb_mifare_trailer_rights(1, PB_MIFARE_KEY_A) & PB_MIFARE_ACCESS_WRITE);
	/* 787788: data 100 (read A|B, write B), trailer 011. */
	assert_int_equal(pb_mifare_data_rights(4, 3, PB_MIFARE_KEY_A), PB_MIFARE_READ);
	assert_int_equal(pb_mifare_data_rights(4, 3, PB_MIFARE_KEY_B), PB_MIFARE_READ | PB_MIFARE_WRITE);
	assert_int_equal(pb_mifare_trailer_rights(3, PB_MIFARE_KEY_A), PB_MIFARE_ACCESS_READ);
	assert_int_equal(pb_mifare_trailer_rights(3, PB_MIFARE_KEY_B),
			 PB_MIFARE_KEYA_WRITE | PB_MIFARE_ACCESS_READ | PB_MIFARE_ACCESS_WRITE | PB_MIFARE_KEYB_WRITE);
	/* 110: value block; 111 never. */
	assert_int_equal(pb_mifare_data_rights(6, 3, PB_MIFARE_KEY_A), PB_MIFARE_READ | PB_MIFARE_DECREMENT);
	assert_int_equal(pb_mifare_data_rights(6, 3, PB_MIFARE_KEY_B), 15);
	assert_int_equal(pb_mifare_data_rights(7, 3, PB_MIFARE_KEY_B), 0);
	assert_true(pb_mifare_cond_is_value(1));
	assert_true(pb_mifare_cond_is_value(6));
	assert_false(pb_mifare_cond_is_value(4));

	pb_mifare_init(card, 16);
	for (unsigned s = 0; s < 16; s++) {
		t = card->data + 16 * pb_mifare_sector_trailer(s);
		hex(s == 1 ? "787788" : "FF0780", t + 6, 3);
	}
	assert_int_equal(pb_mifare_check_write(card, 0, PB_MIFARE_KEY_A), PB_EM1_ACCESS);
	assert_int_equal(pb_mifare_check_write(card, 1, PB_MIFARE_KEY_A), 0);
	assert_int_equal(pb_mifare_check_write(card, 1, PB_MIFARE_KEY_B), PB_EM1_ACCESS);
	assert_int_equal(pb_mifare_check_write(card, 4, PB_MIFARE_KEY_A), PB_EM1_ACCESS);
	assert_int_equal(pb_mifare_check_write(card, 4, PB_MIFARE_KEY_B), 0);
	assert_int_equal(pb_mifare_check_write(card, 7, PB_MIFARE_KEY_A), PB_EM1_ACCESS);
	assert_int_equal(pb_mifare_check_write(card, 7, PB_MIFARE_KEY_B), 0);
	assert_int_equal(pb_mifare_check_write(card, 3, PB_MIFARE_KEY_A), 0);
	assert_int_equal(pb_mifare_check_write(card, 64, PB_MIFARE_KEY_A), PB_EINVAL);
	card->data[16 * 11 + 8] ^= 1;
	assert_int_equal(pb_mifare_check_write(card, 9, PB_MIFARE_KEY_A), PB_EDATA_ACCESS_BITS);
	card->known[16 * 15 + 7] = 0;
	assert_int_equal(pb_mifare_check_write(card, 13, PB_MIFARE_KEY_A), PB_ENOKEY);
	{
		uint8_t sector[256];
		size_t len;
		assert_int_equal(pb_mifare_read_sector(card, 1, sector, sizeof(sector), &len), 0);
		assert_int_equal(len, 64);
		assert_memory_equal(sector, card->data + 64, 64);
		card->state[2] = PB_MIFARE_SECTOR_DEAD;
		assert_int_equal(pb_mifare_read_sector(card, 2, sector, sizeof(sector), &len), PB_ENOTFOUND);
		assert_int_equal(pb_mifare_read_sector(card, 16, sector, sizeof(sector), &len), PB_EINVAL);
		assert_int_equal(pb_mifare_read_sector(card, 1, sector, 10, &len), PB_ETOOBIG);
	}
	free(card);
}

static void test_block0(void **state)
{
	uint8_t b[16], uid[7];
	size_t n;

	(void)state;
	hex("F43D7C0ABF880400C803002000000020", b, 16);
	assert_int_equal(pb_mifare_check_block0(b, uid, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(uid, b, 4);
	assert_int_equal(pb_mifare_check_atqa(b, 16), 0);
	assert_int_equal(pb_mifare_check_atqa(b, 40), PB_EDATA_FIELD);
	b[4] ^= 1;
	assert_int_equal(pb_mifare_check_block0(b, uid, &n), PB_EDATA_BCC);
	hex("88112233" "22" "08" "0400" "0000000000000000", b, 16);
	b[4] = 0x88 ^ 0x11 ^ 0x22 ^ 0x33;
	assert_int_equal(pb_mifare_check_block0(b, uid, &n), PB_EDATA_FIELD);
	/* 7-byte UID: SAK at 7, ATQA 4400 at 8. */
	hex("04112233445566" "08" "4400" "000000000000", b, 16);
	assert_int_equal(pb_mifare_check_block0(b, uid, &n), 0);
	assert_int_equal(n, 7);
	assert_int_equal(pb_mifare_check_atqa(b, 16), 0);
}

/* --- Files ---------------------------------------------------------------- */

static uint8_t *fixture(size_t *len)
{
	char *path = pb_test_data("fixtures/mifare/zhovner-mfdread-4k.mfd");
	uint8_t *data = pb_test_read_file(path, len);

	free(path);
	assert_non_null(data);
	assert_int_equal(*len, 4096);
	return data;
}

typedef int (*format_fn)(const pb_mifare_card_t *, pb_buf_t *);
typedef int (*parse_fn)(const uint8_t *, size_t, pb_mifare_card_t **, char *, size_t);

static void assert_same_card(const pb_mifare_card_t *a, const pb_mifare_card_t *b)
{
	size_t n = pb_mifare_size(a->sectors);

	assert_int_equal(a->sectors, b->sectors);
	assert_memory_equal(a->known, b->known, n);
	assert_memory_equal(a->state, b->state, a->sectors);
	for (size_t i = 0; i < n; i++)
		if (a->known[i])
			assert_int_equal(a->data[i], b->data[i]);
}

static void test_fixture_every_format(void **state)
{
	static const struct {
		format_fn format;
		parse_fn parse;
		bool exact;
	} fmts[] = {
		{ pb_mifare_format_bin, pb_mifare_parse_bin, true },
		{ pb_mifare_format_eml, pb_mifare_parse_eml, true },
		{ pb_mifare_format_mct, pb_mifare_parse_mct, true },
		{ pb_mifare_format_pm3json, pb_mifare_parse_pm3json, false },
		{ pb_mifare_format_flipper, pb_mifare_parse_flipper, false },
	};
	size_t len;
	uint8_t *data = fixture(&len);
	pb_mifare_card_t *card, *again;
	char err[256], id[80];

	(void)state;
	assert_int_equal(pb_mifare_parse_bin(data, len, &card, err, sizeof(err)), 0);
	assert_int_equal(card->sectors, 40);
	assert_int_equal(pb_mifare_card_id(card, id, sizeof(id)), 0);
	assert_true(strncmp(id, "33BD9D3F-", 9) == 0);
	assert_int_equal(strlen(id), 17);
	for (size_t f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
		pb_buf_t a = { 0 }, b = { 0 };

		assert_int_equal(fmts[f].format(card, &a), 0);
		assert_int_equal(fmts[f].parse(a.data, a.len, &again, err, sizeof(err)), 0);
		assert_same_card(card, again);
		assert_int_equal(fmts[f].format(again, &b), 0);
		/* Every format gives its own bytes back. */
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.data, b.data, a.len);
		if (fmts[f].exact) {
			pb_buf_t bin = { 0 };
			assert_int_equal(pb_mifare_format_bin(again, &bin), 0);
			assert_int_equal(bin.len, len);
			assert_memory_equal(bin.data, data, len);
			pb_buf_free(&bin);
		}
		free(again);
		pb_buf_free(&a);
		pb_buf_free(&b);
	}
	/* The .eml form: uppercase, no newline after the last line. */
	{
		pb_buf_t e = { 0 };
		assert_int_equal(pb_mifare_format_eml(card, &e), 0);
		assert_int_equal(e.len, 256 * 33 - 1);
		assert_memory_equal(e.data, "33BD9D3F2C980200648F841441502212\n", 33);
		pb_buf_free(&e);
	}
	free(card);
	free(data);
}

/* A MIFARE Classic Tool dump with an unknown key B, an unknown block, a
 * dead sector and missing sectors. */
static const char partial_mct[] = "+Sector: 0\n"
				  "F43D7C0ABF880400C803002000000020\n"
				  "00000000000000000000000000000000\n"
				  "--------------------------------\n"
				  "A0A1A2A3A4A5787788C1------------\n"
				  "+Sector: 1\n"
				  "*No keys found or dead sector\n"
				  "+Sector: 3\n"
				  "640000009BFFFFFF6400000004FB04FB\n"
				  "00000000000000000000000000000000\n"
				  "00000000000000000000000000000000\n"
				  "FFFFFFFFFFFFFF078069FFFFFFFFFFFF";

static void test_mct_unknowns(void **state)
{
	pb_mifare_card_t *card;
	pb_buf_t out = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(pb_mifare_parse_mct((const uint8_t *)partial_mct, strlen(partial_mct), &card, err, sizeof(err)), 0);
	assert_int_equal(card->sectors, 16);
	assert_int_equal(card->state[1], PB_MIFARE_SECTOR_DEAD);
	assert_int_equal(card->state[2], PB_MIFARE_SECTOR_MISSING);
	assert_int_equal(card->known[2 * 16], 0);
	assert_int_equal(card->known[3 * 16 + 9], 1);
	assert_int_equal(card->known[3 * 16 + 10], 0);
	assert_false(pb_mifare_complete(card));
	assert_int_equal(pb_mifare_format_mct(card, &out), 0);
	assert_int_equal(out.len, strlen(partial_mct));
	assert_memory_equal(out.data, partial_mct, out.len);
	pb_buf_free(&out);
	/* Flipper keeps unknown bytes as ??. */
	assert_int_equal(pb_mifare_format_flipper(card, &out), 0);
	assert_non_null(memmem(out.data, out.len, "Block 3: A0 A1 A2 A3 A4 A5 78 77 88 C1 ?? ?? ?? ?? ?? ??\n", 57));
	{
		pb_mifare_card_t *again;
		assert_int_equal(pb_mifare_parse_flipper(out.data, out.len, &again, err, sizeof(err)), 0);
		for (size_t i = 0; i < 64; i++)
			assert_int_equal(again->known[i], card->known[i]);
		free(again);
	}
	pb_buf_free(&out);
	free(card);
}

static void test_mct_line_ends(void **state)
{
	const char crlf[] = "+Sector: 0\r\nF43D7C0ABF880400C803002000000020\r\n00000000000000000000000000000000\r\n"
			    "00000000000000000000000000000000\r\nFFFFFFFFFFFFFF078069FFFFFFFFFFFF\r\n";
	pb_mifare_card_t *card;
	pb_buf_t out = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(pb_mifare_parse_mct((const uint8_t *)crlf, strlen(crlf), &card, err, sizeof(err)), 0);
	assert_true(card->mct_crlf);
	assert_true(card->mct_final_newline);
	assert_int_equal(pb_mifare_format_mct(card, &out), 0);
	assert_int_equal(out.len, strlen(crlf));
	assert_memory_equal(out.data, crlf, out.len);
	pb_buf_free(&out);
	free(card);
}

static void test_device_round_trips(void **state)
{
	char *dir = pb_test_tmpdir("mifare-rt"), err[512] = "";
	const char *files[2];
	size_t len;
	uint8_t *data = fixture(&len), *back;
	uint8_t a[32], b[32];

	(void)state;
	kt_write(kt_path(dir, "partial.mct"), partial_mct);
	assert_int_equal(pb_test_write_file(kt_path(dir, "dump.mfd"), data, len), 0);
	files[0] = kt_path(dir, "partial.mct");
	files[1] = kt_path(dir, "dump.mfd");
	assert_int_equal(pb__import_mifare(kt_path(dir, "dev"), files, 2, err, sizeof(err)), 0);
	/* .mct, .bin/.mfd and .eml come back byte for byte. */
	assert_int_equal(pb__export_mifare(kt_path(dir, "dev"), "mct", kt_path(dir, "mct"), err, sizeof(err)), 0);
	assert_int_equal(pb__export_mifare(kt_path(dir, "dev"), "mfd", kt_path(dir, "mfd"), err, sizeof(err)), 0);
	assert_int_equal(pb__export_mifare(kt_path(dir, "dev"), "eml", kt_path(dir, "eml"), err, sizeof(err)), 0);
	{
		char p[512];
		pb_mifare_card_t *card;
		char id[80];

		assert_int_equal(pb_mifare_parse_mct((const uint8_t *)partial_mct, strlen(partial_mct), &card, NULL, 0), 0);
		assert_int_equal(pb_mifare_card_id(card, id, sizeof(id)), 0);
		free(card);
		snprintf(p, sizeof(p), "%s/mct/%s.mct", dir, id);
		kt_assert_file(p, partial_mct, strlen(partial_mct));
		/* The sidecar keeps what was not read. */
		snprintf(p, sizeof(p), "%s/dev/mifare/%s.mct", dir, id);
		kt_assert_file(p, partial_mct, strlen(partial_mct));
		assert_int_equal(pb_mifare_load(kt_path(dir, "dev"), id, &card), 0);
		assert_int_equal(card->state[1], PB_MIFARE_SECTOR_DEAD);
		free(card);
	}
	/* The exported .mfd, .eml and .mct all import back to the same device. */
	{
		struct dirent **list;
		int n = scandir(kt_path(dir, "mfd"), &list, NULL, alphasort);
		assert_int_equal(n, 4);
		for (int i = 0; i < n; i++) {
			if (strncmp(list[i]->d_name, "33BD9D3F-", 9) == 0) {
				char p[512];
				snprintf(p, sizeof(p), "%s/mfd/%s", dir, list[i]->d_name);
				back = pb_test_read_file(p, &len);
				assert_non_null(back);
				assert_int_equal(len, 4096);
				assert_memory_equal(back, data, 4096);
				free(back);
			}
			free(list[i]);
		}
		free(list);
	}
	for (int f = 0; f < 3; f++) {
		static const char *const fmt[] = { "mct", "mfd", "eml" };
		struct dirent **list;
		const char *in[2];
		char paths[2][512];
		int n = scandir(kt_path(dir, fmt[f]), &list, NULL, alphasort), k = 0;

		for (int i = 0; i < n; i++) {
			if (list[i]->d_name[0] != '.' && k < 2) {
				snprintf(paths[k], sizeof(paths[k]), "%s/%s/%s", dir, fmt[f], list[i]->d_name);
				in[k] = paths[k];
				k++;
			}
			free(list[i]);
		}
		free(list);
		assert_int_equal(k, 2);
		pb_test_rmtree(kt_path(dir, "dev2"));
		assert_int_equal(pb__import_mifare(kt_path(dir, "dev2"), in, 2, err, sizeof(err)), 0);
		if (f == 0) {
			kt_dir_digest(kt_path(dir, "dev"), a);
			kt_dir_digest(kt_path(dir, "dev2"), b);
			assert_memory_equal(a, b, 32);
		}
	}
	/* Proxmark3 JSON and Flipper give the same content back. */
	for (int f = 0; f < 2; f++) {
		static const char *const fmt[] = { "json", "nfc" };
		struct dirent **list;
		const char *in[2];
		char paths[2][512];
		int n, k = 0;

		pb_test_rmtree(kt_path(dir, "out"));
		assert_int_equal(pb__export_mifare(kt_path(dir, "dev"), fmt[f], kt_path(dir, "out"), err, sizeof(err)), 0);
		n = scandir(kt_path(dir, "out"), &list, NULL, alphasort);
		for (int i = 0; i < n; i++) {
			if (list[i]->d_name[0] != '.' && k < 2) {
				snprintf(paths[k], sizeof(paths[k]), "%s/out/%s", dir, list[i]->d_name);
				in[k] = paths[k];
				k++;
			}
			free(list[i]);
		}
		free(list);
		assert_int_equal(k, 2);
		pb_test_rmtree(kt_path(dir, "dev3"));
		assert_int_equal(pb__import_mifare(kt_path(dir, "dev3"), in, 2, err, sizeof(err)), 0);
		/* The fixture (fully read) comes back as the same file. */
		kt_dir_digest(kt_path(dir, "dev3/mifare"), a);
		{
			char p[512];
			struct dirent **l2;
			int m = scandir(kt_path(dir, "dev3/mifare"), &l2, NULL, alphasort);
			for (int i = 0; i < m; i++) {
				size_t nl = strlen(l2[i]->d_name);

				if (strncmp(l2[i]->d_name, "33BD9D3F-", 9) == 0 && strcmp(l2[i]->d_name + nl - 4, ".mfd") == 0) {
					snprintf(p, sizeof(p), "%s/dev3/mifare/%s", dir, l2[i]->d_name);
					kt_assert_file(p, data, 4096);
				}
				/* A card read from a Flipper file keeps its header beside. */
				if (strncmp(l2[i]->d_name, "33BD9D3F-", 9) == 0 && strcmp(l2[i]->d_name + nl - 4, ".nfc") == 0)
					assert_int_equal(f, 1);
				free(l2[i]);
			}
			free(l2);
		}
	}
	assert_int_equal(pb__export_mifare(kt_path(dir, "dev"), "keys", kt_path(dir, "keys"), err, sizeof(err)), 0);
	assert_int_equal(pb__export_mifare(kt_path(dir, "dev"), "png", kt_path(dir, "x"), err, sizeof(err)),
			 PB_EUNSUPPORTED);
	free(data);
	pb_test_rmtree(dir);
	free(dir);
}

/* The same card read in part and then completely, in one import: the
 * sidecar follows the last dump. */
static void test_same_card_twice(void **state)
{
	char *dir = pb_test_tmpdir("mifare-twice"), err[256], id[80], p[512];
	pb_mifare_card_t *card;
	pb_buf_t full = { 0 };
	const char *files[2];

	(void)state;
	assert_int_equal(pb_mifare_parse_mct((const uint8_t *)partial_mct, strlen(partial_mct), &card, NULL, 0), 0);
	assert_int_equal(pb_mifare_card_id(card, id, sizeof(id)), 0);
	assert_int_equal(pb_mifare_format_bin(card, &full), 0);
	kt_write(kt_path(dir, "partial.mct"), partial_mct);
	assert_int_equal(pb_test_write_file(kt_path(dir, "full.bin"), full.data, full.len), 0);
	files[0] = kt_path(dir, "partial.mct");
	files[1] = kt_path(dir, "full.bin");
	assert_int_equal(pb__import_mifare(kt_path(dir, "dev"), files, 2, err, sizeof(err)), 0);
	free(card);
	assert_int_equal(pb_mifare_load(kt_path(dir, "dev"), id, &card), 0);
	assert_true(pb_mifare_complete(card));
	snprintf(p, sizeof(p), "%s/dev/mifare/%s.mfd", dir, id);
	kt_assert_file(p, full.data, full.len);
	free(card);
	pb_buf_free(&full);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_pm3_json_forms(void **state)
{
	const char old[] = "{\"Created\":\"proxmark3\",\"FileType\":\"mfcard\",\"Card\":{\"UID\":\"F43D7C0A\",\"ATQA\":\"0400\","
			   "\"SAK\":\"08\"},\"blocks\":{\"0\":\"F43D7C0ABF880400C803002000000020\","
			   "\"1\":\"00000000000000000000000000000000\",\"2\":\"00000000000000000000000000000000\","
			   "\"3\":\"A0A1A2A3A4A5787788C10D258FE90296\",\"63\":\"FFFFFFFFFFFFFF078069FFFFFFFFFFFF\"},"
			   "\"SectorKeys\":{\"0\":{\"KeyA\":\"A0A1A2A3A4A5\",\"KeyB\":\"0D258FE90296\","
			   "\"AccessConditions\":\"787788C1\"}}}";
	pb_mifare_card_t *card = NULL;
	char err[256] = "", *bad;

	(void)state;
	assert_int_equal(pb_mifare_parse_pm3json((const uint8_t *)old, strlen(old), &card, err, sizeof(err)), 0);
	assert_int_equal(card->sectors, 16);
	assert_int_equal(card->state[0], PB_MIFARE_SECTOR_READ);
	assert_int_equal(card->state[1], PB_MIFARE_SECTOR_MISSING);
	assert_int_equal(card->state[15], PB_MIFARE_SECTOR_READ);
	assert_int_equal(card->known[16 * 62], 0);
	free(card);
	/* SectorKeys that disagree with the trailer. */
	bad = strdup(old);
	memcpy(strstr(bad, "\"KeyB\":\"0D258FE90296\"") + 8, "0D258FE90297", 12);
	assert_int_equal(pb_mifare_parse_pm3json((const uint8_t *)bad, strlen(bad), &card, err, sizeof(err)),
			 PB_EDATA_FIELD);
	assert_non_null(strstr(err, "sector 0 disagrees"));
	free(bad);
	bad = strdup(old);
	memcpy(strstr(bad, "\"UID\":\"F43D7C0A\"") + 7, "F43D7C0B", 8);
	assert_int_equal(pb_mifare_parse_pm3json((const uint8_t *)bad, strlen(bad), &card, err, sizeof(err)),
			 PB_EDATA_FIELD);
	free(bad);
}

/* Bad input: the error names the file and the place, the device stays. */
static void expect_bad(const char *dir, const char *name, const void *content, size_t len, int want, const char *needle)
{
	uint8_t before[32], after[32];
	const char *files[2];
	char err[512] = "";
	size_t flen;
	uint8_t *good = fixture(&flen);

	assert_int_equal(pb_test_write_file(kt_path(dir, "good.mfd"), good, flen), 0);
	free(good);
	assert_int_equal(pb_test_write_file(kt_path(dir, name), content, len), 0);
	files[0] = kt_path(dir, "good.mfd");
	files[1] = kt_path(dir, name);
	kt_dir_digest(kt_path(dir, "dev"), before);
	assert_int_equal(pb__import_mifare(kt_path(dir, "dev"), files, 2, err, sizeof(err)), want);
	if (strstr(err, needle) == NULL || strstr(err, name) == NULL)
		fail_msg("error '%s' lacks '%s' or the file name", err, needle);
	kt_dir_digest(kt_path(dir, "dev"), after);
	assert_memory_equal(before, after, 32);
}

static void test_bad_input(void **state)
{
	char *dir = pb_test_tmpdir("mifare-bad"), *text, err[256];
	size_t len;
	uint8_t *data = fixture(&len);
	const char *files[1];
	int fd;

	(void)state;
	/* A device that already holds a card. */
	kt_write(kt_path(dir, "first.mct"), partial_mct);
	files[0] = kt_path(dir, "first.mct");
	assert_int_equal(pb__import_mifare(kt_path(dir, "dev"), files, 1, err, sizeof(err)), 0);

	data[4] ^= 0xff; /* wrong BCC */
	expect_bad(dir, "bcc.mfd", data, len, PB_EDATA_BCC, "block 0 (offset 4): BCC is D3 but UID 33BD9D3F gives 2C");
	data[4] ^= 0xff;
	expect_bad(dir, "short.bin", data, 1000, PB_EDATA_SIZE, "dump is 1000 bytes");
	data[16 * 7 + 7] ^= 0x10; /* sector 1's access bits */
	expect_bad(dir, "access.mfd", data, len, PB_EDATA_ACCESS_BITS, "sector 1, block 7 (offset 118): access bits");
	data[16 * 7 + 7] ^= 0x10;
	/* A value block (sector 1 set to 110) whose copies disagree. */
	{
		uint8_t v[4096];
		memcpy(v, data, sizeof(v));
		pb_mifare_access_encode((uint8_t[4]){ 6, 6, 6, 3 }, v + 16 * 7 + 6);
		pb_mifare_value_format(100, 4, v + 16 * 4);
		v[16 * 4 + 5] ^= 1;
		expect_bad(dir, "value.mfd", v, sizeof(v), PB_EDATA_VALUE_BLOCK, "block 4 (offset 64): value block");
	}
	text = strdup(partial_mct);
	text[strlen("+Sector: 0\nF43D7C0ABF88")] = 'X';
	expect_bad(dir, "hex.mct", text, strlen(text), PB_EDATA_FORMAT, "line 2, column 13");
	free(text);
	expect_bad(dir, "trunc.mct", partial_mct, strlen(partial_mct) - 33, PB_ETRUNCATED,
		   "the file ends with sector 3 at 3 of 4 blocks");
	expect_bad(dir, "dup.mct", "+Sector: 0\n*x\n+Sector: 0\n*y", strlen("+Sector: 0\n*x\n+Sector: 0\n*y"), PB_EDATA_FORMAT, "line 3: sector 0 appears twice");
	expect_bad(dir, "range.mct", "+Sector: 40\n", strlen("+Sector: 40\n"), PB_EDATA_FORMAT, "line 1: sector 40 does not exist");
	{
		const char s[] = "+Sector: 0\nF43D7C0ABF880400C803002000000020\n+Sector: 1\n";
		expect_bad(dir, "few.mct", s, strlen(s), PB_ETRUNCATED, "line 3: sector 0 has only 1 of 4 blocks");
	}
	{
		const char s[] = "+Sector: 0\nF43D7C0ABF880400C803002000000020\n00000000000000000000000000000000\n"
				 "00000000000000000000000000000000\nFFFFFFFFFFFFFF078169FFFFFFFFFFFF\n";
		expect_bad(dir, "ab.mct", s, strlen(s), PB_EDATA_ACCESS_BITS, "sector 0, block 3 (offset 54)");
	}
	expect_bad(dir, "eml.eml", "00112233\n", strlen("00112233\n"), PB_EDATA_FORMAT, "line 1: a block is 32 hex digits");
	expect_bad(dir, "flip.nfc", "Filetype: Flipper NFC device\nVersion: 4\nDevice type: Mifare Classic\n"
				    "Mifare Classic type: 1K\nBlock 0: 00 11\n",
		   strlen("Filetype: Flipper NFC device\nVersion: 4\nDevice type: Mifare Classic\n"
			  "Mifare Classic type: 1K\nBlock 0: 00 11\n"),
		   PB_EDATA_FORMAT, "line 5: a block is 16 hex bytes");
	expect_bad(dir, "old.nfc", "Filetype: Flipper NFC device\nVersion: 2\n", strlen("Filetype: Flipper NFC device\nVersion: 2\n"), PB_EDATA_FORMAT, "Version 4");
	expect_bad(dir, "pm3.json", "{\"FileType\":\"mfc v2\",\"blocks\":{\"0\":\"00\"}}", strlen("{\"FileType\":\"mfc v2\",\"blocks\":{\"0\":\"00\"}}"), PB_EDATA_FORMAT,
		   "blocks: block 0 is not 32 hex digits");
	expect_bad(dir, "trunc.json", "{\"FileType\":\"mfc v2\",\"blo", strlen("{\"FileType\":\"mfc v2\",\"blo"), PB_EDATA_FORMAT, "line 1");
	expect_bad(dir, "bad.keys", "FFFFFFFFFFFF\n# comment\nA0A1A2A3A4\n", strlen("FFFFFFFFFFFF\n# comment\nA0A1A2A3A4\n"), PB_EDATA_FORMAT,
		   "line 3: a key is 12 hex digits");
	/* A 100 MB file of one line is refused before it is read. */
	fd = open(kt_path(dir, "huge.mct"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 100 << 20), 0);
	close(fd);
	files[0] = kt_path(dir, "huge.mct");
	{
		uint8_t before[32], after[32];
		kt_dir_digest(kt_path(dir, "dev"), before);
		assert_int_equal(pb__import_mifare(kt_path(dir, "dev"), files, 1, err, sizeof(err)), PB_ETOOBIG);
		assert_non_null(strstr(err, "huge.mct"));
		kt_dir_digest(kt_path(dir, "dev"), after);
		assert_memory_equal(before, after, 32);
	}
	free(data);
	pb_test_rmtree(dir);
	free(dir);
}

static void test_keys(void **state)
{
	const char text[] = "# default keys\nFFFFFFFFFFFF\n\n  a0a1a2a3a4a5  # MAD\nD3F7D3F7D3F7\n";
	uint8_t keys[4][6];
	size_t n;
	char err[256], *dir = pb_test_tmpdir("mifare-keys");
	const char *files[1];

	(void)state;
	assert_int_equal(pb_mifare_parse_keys((const uint8_t *)text, strlen(text), keys, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(keys[1], "\xa0\xa1\xa2\xa3\xa4\xa5", 6);
	assert_int_equal(pb_mifare_parse_keys((const uint8_t *)text, strlen(text), keys, 2, &n, err, sizeof(err)),
			 PB_ETOOBIG);
	kt_write(kt_path(dir, "std.keys"), text);
	files[0] = kt_path(dir, "std.keys");
	assert_int_equal(pb__import_mifare(kt_path(dir, "dev"), files, 1, err, sizeof(err)), 0);
	kt_assert_file(kt_path(dir, "dev/mifare/keys/std.keys"), text, strlen(text));
	pb_test_rmtree(dir);
	free(dir);
}

static void test_generator(void **state)
{
	char *dir = pb_test_tmpdir("mifare-gen");
	struct dirent **list;
	int n, cards = 0, sidecars = 0;
	unsigned sizes[41] = { 0 };

	(void)state;
	assert_int_equal(pb__gen_mifare(dir, 21, PB_GEN_STANDARD), 0);
	n = scandir(kt_path(dir, "mifare"), &list, NULL, alphasort);
	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		size_t len = strlen(list[i]->d_name);
		if (len > 4 && strcmp(list[i]->d_name + len - 4, ".mfd") == 0) {
			pb_mifare_card_t *card;
			char id[80];
			memcpy(id, list[i]->d_name, len - 4);
			id[len - 4] = 0;
			assert_int_equal(pb_mifare_load(dir, id, &card), 0);
			assert_int_equal(pb_mifare_validate(card, NULL, 0), 0);
			sizes[card->sectors]++;
			free(card);
			cards++;
		} else if (len > 4 && strcmp(list[i]->d_name + len - 4, ".mct") == 0) {
			sidecars++;
		}
		free(list[i]);
	}
	free(list);
	assert_int_equal(cards, 36);
	assert_true(sidecars > 0);
	assert_true(sizes[5] > 0 && sizes[16] > 0 && sizes[32] > 0 && sizes[40] > 0);
	/* Every card of every size, exported as .mct and imported again, gives
	 * the same device files (size from SAK, unknowns, dead sectors). */
	{
		char err[256], paths[64][512];
		const char *files[64];
		uint8_t a[32], b[32];
		int k = 0;

		assert_int_equal(pb__export_mifare(dir, "mct", kt_path(dir, "out"), err, sizeof(err)), 0);
		n = scandir(kt_path(dir, "out"), &list, NULL, alphasort);
		for (int i = 0; i < n; i++) {
			if (list[i]->d_name[0] != '.' && k < 64) {
				snprintf(paths[k], sizeof(paths[k]), "%s/out/%s", dir, list[i]->d_name);
				files[k] = paths[k];
				k++;
			}
			free(list[i]);
		}
		free(list);
		assert_int_equal(k, 36);
		assert_int_equal(pb__import_mifare(kt_path(dir, "dev2"), files, (size_t)k, err, sizeof(err)), 0);
		kt_dir_digest(kt_path(dir, "mifare"), a);
		kt_dir_digest(kt_path(dir, "dev2/mifare"), b);
		assert_memory_equal(a, b, 32);
	}
	pb_test_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_geometry),        cmocka_unit_test(test_access_bits),
		cmocka_unit_test(test_value_blocks),    cmocka_unit_test(test_rights),
		cmocka_unit_test(test_block0),          cmocka_unit_test(test_fixture_every_format),
		cmocka_unit_test(test_mct_unknowns),    cmocka_unit_test(test_mct_line_ends),
		cmocka_unit_test(test_device_round_trips), cmocka_unit_test(test_pm3_json_forms),
		cmocka_unit_test(test_same_card_twice),
		cmocka_unit_test(test_bad_input),       cmocka_unit_test(test_keys),
		cmocka_unit_test(test_generator),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
