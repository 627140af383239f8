/* MIFARE Classic: geometry, block 0, access bits, value blocks and the
 * checks a card must pass (FORMATS.md, MIFARE Classic). */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "peerback/nfc.h"
#include "agent/kinds/util.h"

unsigned pb_mifare_sectors_for_size(size_t bytes)
{
	switch (bytes) {
	case 320:
		return 5;
	case 1024:
		return 16;
	case 2048:
		return 32;
	case 4096:
		return 40;
	default:
		return 0;
	}
}

size_t pb_mifare_size(unsigned sectors)
{
	return sectors <= 32 ? (size_t)sectors * 64 : 2048 + (size_t)(sectors - 32) * 256;
}

unsigned pb_mifare_sector_blocks(unsigned sector)
{
	return sector < 32 ? 4 : 16;
}

unsigned pb_mifare_sector_first_block(unsigned sector)
{
	return sector < 32 ? 4 * sector : 128 + 16 * (sector - 32);
}

unsigned pb_mifare_sector_trailer(unsigned sector)
{
	return pb_mifare_sector_first_block(sector) + pb_mifare_sector_blocks(sector) - 1;
}

unsigned pb_mifare_block_sector(unsigned block)
{
	return block < 128 ? block / 4 : 32 + (block - 128) / 16;
}

bool pb_mifare_is_trailer(unsigned block)
{
	return pb_mifare_sector_trailer(pb_mifare_block_sector(block)) == block;
}

unsigned pb_mifare_block_group(unsigned block)
{
	unsigned s = pb_mifare_block_sector(block), i = block - pb_mifare_sector_first_block(s);

	if (s < 32)
		return i;
	return i == 15 ? 3 : i / 5;
}

void pb_mifare_init(pb_mifare_card_t *card, unsigned sectors)
{
	memset(card, 0, sizeof(*card));
	card->sectors = sectors;
	memset(card->known, 1, pb_mifare_size(sectors));
}

bool pb_mifare_complete(const pb_mifare_card_t *card)
{
	size_t n = pb_mifare_size(card->sectors);

	for (unsigned s = 0; s < card->sectors; s++)
		if (card->state[s] != PB_MIFARE_SECTOR_READ)
			return false;
	for (size_t i = 0; i < n; i++)
		if (!card->known[i])
			return false;
	return true;
}

int pb_mifare_check_block0(const uint8_t b[16], uint8_t uid[7], size_t *uid_len)
{
	uint8_t bcc = (uint8_t)(b[0] ^ b[1] ^ b[2] ^ b[3]);
	size_t n;

	if (b[4] == bcc) {
		n = 4;
	} else if ((b[8] == 0x44 || b[8] == 0x42) && b[9] == 0x00) {
		n = 7; /* a 7-byte UID has no BCC in block 0 */
	} else {
		return PB_EDATA_BCC;
	}
	if (uid != NULL)
		memcpy(uid, b, n);
	if (uid_len != NULL)
		*uid_len = n;
	if (n == 4 && (b[0] == 0x88 || b[0] == 0xf8))
		return PB_EDATA_FIELD; /* cascade tag: not a complete UID */
	return 0;
}

int pb_mifare_check_atqa(const uint8_t b[16], unsigned sectors)
{
	size_t uid_len;
	const uint8_t *atqa;
	uint8_t want;

	if (pb_mifare_check_block0(b, NULL, &uid_len) == PB_EDATA_BCC)
		return PB_EDATA_BCC;
	atqa = uid_len == 4 ? b + 6 : b + 8;
	want = sectors == 40 ? 0x02 : 0x04;
	if (uid_len == 7)
		want |= 0x40;
	return atqa[0] == want && atqa[1] == 0x00 ? 0 : PB_EDATA_FIELD;
}

int pb_mifare_access_decode(const uint8_t bits[3], uint8_t cond[4])
{
	unsigned c1 = bits[1] >> 4, n1 = bits[0] & 15;
	unsigned c2 = bits[2] & 15, n2 = bits[0] >> 4;
	unsigned c3 = bits[2] >> 4, n3 = bits[1] & 15;

	if ((c1 ^ n1) != 15 || (c2 ^ n2) != 15 || (c3 ^ n3) != 15)
		return PB_EDATA_ACCESS_BITS;
	for (unsigned i = 0; i < 4; i++)
		cond[i] = (uint8_t)(((c1 >> i) & 1) << 2 | ((c2 >> i) & 1) << 1 | ((c3 >> i) & 1));
	return 0;
}

void pb_mifare_access_encode(const uint8_t cond[4], uint8_t bits[3])
{
	unsigned c1 = 0, c2 = 0, c3 = 0;

	for (unsigned i = 0; i < 4; i++) {
		c1 |= (unsigned)((cond[i] >> 2) & 1) << i;
		c2 |= (unsigned)((cond[i] >> 1) & 1) << i;
		c3 |= (unsigned)(cond[i] & 1) << i;
	}
	bits[0] = (uint8_t)((~c2 & 15) << 4 | (~c1 & 15));
	bits[1] = (uint8_t)(c1 << 4 | (~c3 & 15));
	bits[2] = (uint8_t)(c3 << 4 | c2);
}

bool pb_mifare_cond_is_value(uint8_t cond)
{
	return cond == 1 || cond == 6;
}

/* Key B is readable under trailer conditions 000, 010 and 001, and then it
 * cannot be used to authenticate. */
static bool key_b_usable(uint8_t trailer_cond)
{
	return trailer_cond != 0 && trailer_cond != 2 && trailer_cond != 1;
}

unsigned pb_mifare_data_rights(uint8_t cond, uint8_t trailer_cond, pb_mifare_key_t key)
{
	/* Per condition C1C2C3: rights with key A, rights with key B. */
	static const unsigned rights[8][2] = {
		/* 000 */ { 15, 15 },
		/* 001 */ { PB_MIFARE_READ | PB_MIFARE_DECREMENT, PB_MIFARE_READ | PB_MIFARE_DECREMENT },
		/* 010 */ { PB_MIFARE_READ, PB_MIFARE_READ },
		/* 011 */ { 0, PB_MIFARE_READ | PB_MIFARE_WRITE },
		/* 100 */ { PB_MIFARE_READ, PB_MIFARE_READ | PB_MIFARE_WRITE },
		/* 101 */ { 0, PB_MIFARE_READ },
		/* 110 */ { PB_MIFARE_READ | PB_MIFARE_DECREMENT, 15 },
		/* 111 */ { 0, 0 },
	};

	if (key == PB_MIFARE_KEY_B && !key_b_usable(trailer_cond & 7))
		return 0;
	return rights[cond & 7][key == PB_MIFARE_KEY_B];
}

unsigned pb_mifare_trailer_rights(uint8_t cond, pb_mifare_key_t key)
{
	enum { KW = PB_MIFARE_KEYA_WRITE, AR = PB_MIFARE_ACCESS_READ, AW = PB_MIFARE_ACCESS_WRITE,
	       BR = PB_MIFARE_KEYB_READ, BW = PB_MIFARE_KEYB_WRITE };
	static const unsigned rights[8][2] = {
		/* 000 */ { KW | AR | BR | BW, 0 },
		/* 001 */ { KW | AR | AW | BR | BW, 0 },
		/* 010 */ { AR | BR, 0 },
		/* 011 */ { AR, KW | AR | AW | BW },
		/* 100 */ { AR, KW | AR | BW },
		/* 101 */ { AR, AR | AW },
		/* 110 */ { AR, AR },
		/* 111 */ { AR, AR },
	};

	return rights[cond & 7][key == PB_MIFARE_KEY_B];
}

int pb_mifare_check_write(const pb_mifare_card_t *card, unsigned block, pb_mifare_key_t key)
{
	unsigned s, t;
	uint8_t cond[4];
	int rc;

	if (card == NULL || card->sectors == 0 || card->sectors > PB_MIFARE_MAX_SECTORS ||
	    block >= pb_mifare_size(card->sectors) / 16)
		return PB_EINVAL;
	if (block == 0)
		return PB_EM1_ACCESS; /* the manufacturer block is read-only */
	s = pb_mifare_block_sector(block);
	t = pb_mifare_sector_trailer(s);
	if (card->state[s] != PB_MIFARE_SECTOR_READ || !card->known[16 * t + 6] || !card->known[16 * t + 7] ||
	    !card->known[16 * t + 8])
		return PB_ENOKEY;
	if ((rc = pb_mifare_access_decode(card->data + 16 * t + 6, cond)) != 0)
		return rc;
	if (block == t)
		return pb_mifare_trailer_rights(cond[3], key) &
				       (PB_MIFARE_KEYA_WRITE | PB_MIFARE_ACCESS_WRITE | PB_MIFARE_KEYB_WRITE)
			       ? 0
			       : PB_EM1_ACCESS;
	return pb_mifare_data_rights(cond[pb_mifare_block_group(block)], cond[3], key) & PB_MIFARE_WRITE
		       ? 0
		       : PB_EM1_ACCESS;
}

int pb_mifare_read_sector(const pb_mifare_card_t *card, unsigned sector, uint8_t *out, size_t cap, size_t *len)
{
	size_t n;

	if (card == NULL || sector >= card->sectors)
		return PB_EINVAL;
	if (card->state[sector] != PB_MIFARE_SECTOR_READ)
		return PB_ENOTFOUND;
	n = 16 * (size_t)pb_mifare_sector_blocks(sector);
	if (cap < n)
		return PB_ETOOBIG;
	memcpy(out, card->data + 16 * (size_t)pb_mifare_sector_first_block(sector), n);
	*len = n;
	return 0;
}

int pb_mifare_value_parse(const uint8_t b[16], int32_t *value, uint8_t *addr)
{
	for (int i = 0; i < 4; i++)
		if (b[i] != b[8 + i] || b[4 + i] != 0xff - b[i])
			return PB_EDATA_VALUE_BLOCK;
	if (b[12] != b[14] || b[13] != 0xff - b[12] || b[13] != b[15])
		return PB_EDATA_VALUE_BLOCK;
	if (value != NULL)
		*value = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
	if (addr != NULL)
		*addr = b[12];
	return 0;
}

void pb_mifare_value_format(int32_t value, uint8_t addr, uint8_t b[16])
{
	uint32_t v = (uint32_t)value;

	for (int i = 0; i < 4; i++) {
		b[i] = b[8 + i] = (uint8_t)(v >> (8 * i));
		b[4 + i] = (uint8_t)~b[i];
	}
	b[12] = b[14] = addr;
	b[13] = b[15] = (uint8_t)~addr;
}

static bool block_known(const pb_mifare_card_t *card, unsigned block)
{
	for (unsigned i = 0; i < 16; i++)
		if (!card->known[16 * block + i])
			return false;
	return true;
}

/* Real cards keep plain data in blocks whose access bits allow value
 * operations; a block is taken for a value block only when its address
 * bytes have the value-block shape addr ~addr addr ~addr. */
static bool value_shaped(const uint8_t *b)
{
	return b[12] == b[14] && b[13] == b[15] && b[13] == 0xff - b[12];
}

int pb_mifare_validate(const pb_mifare_card_t *card, char *err, size_t cap)
{
	char hex[33];
	int rc;

	if (card->sectors != 5 && card->sectors != 16 && card->sectors != 32 && card->sectors != 40)
		return pb__kinds_errf(err, cap, PB_EDATA_SIZE, "a card of %u sectors does not exist", card->sectors);
	if (card->state[0] == PB_MIFARE_SECTOR_READ && block_known(card, 0)) {
		const uint8_t *b = card->data;

		rc = pb_mifare_check_block0(b, NULL, NULL);
		pb__kinds_hex_encode(b, 4, hex);
		if (rc == PB_EDATA_BCC)
			return pb__kinds_errf(err, cap, rc,
					      "block 0 (offset 4): BCC is %02X but UID %s gives %02X", b[4], hex,
					      b[0] ^ b[1] ^ b[2] ^ b[3]);
		if (rc != 0)
			return pb__kinds_errf(err, cap, rc,
					      "block 0 (offset 0): UID %s starts with a cascade tag (88 or F8)", hex);
	}
	for (unsigned s = 0; s < card->sectors; s++) {
		unsigned t = pb_mifare_sector_trailer(s), first = pb_mifare_sector_first_block(s);
		const uint8_t *ab = card->data + 16 * t + 6;
		uint8_t cond[4];

		if (card->state[s] != PB_MIFARE_SECTOR_READ)
			continue;
		if (!card->known[16 * t + 6] || !card->known[16 * t + 7] || !card->known[16 * t + 8])
			continue;
		if (pb_mifare_access_decode(ab, cond) != 0)
			return pb__kinds_errf(err, cap, PB_EDATA_ACCESS_BITS,
					      "sector %u, block %u (offset %u): access bits %02X%02X%02X are "
					      "inconsistent (each inverted half must be the complement of its partner)",
					      s, t, 16 * t + 6, ab[0], ab[1], ab[2]);
		for (unsigned b = first; b < t; b++) {
			if (b == 0 || !pb_mifare_cond_is_value(cond[pb_mifare_block_group(b)]) || !block_known(card, b))
				continue;
			if (!value_shaped(card->data + 16 * b))
				continue;
			if (pb_mifare_value_parse(card->data + 16 * b, NULL, NULL) != 0) {
				pb__kinds_hex_encode(card->data + 16 * b, 16, hex);
				return pb__kinds_errf(err, cap, PB_EDATA_VALUE_BLOCK,
						      "sector %u, block %u (offset %u): value block %s is not "
						      "v ~v v addr ~addr addr ~addr",
						      s, b, 16 * b, hex);
			}
		}
	}
	return 0;
}

int pb_mifare_card_id(const pb_mifare_card_t *card, char *out, size_t cap)
{
	uint8_t h[4], uid[7];
	char uhex[15], hhex[9];
	size_t uid_len = 4;
	int n;

	if (card->state[0] == PB_MIFARE_SECTOR_READ && block_known(card, 0)) {
		if (pb_mifare_check_block0(card->data, uid, &uid_len) == PB_EDATA_BCC) {
			memcpy(uid, card->data, 4);
			uid_len = 4;
		}
		crypto_generichash(h, sizeof(h), card->data, 16, NULL, 0);
		pb__kinds_hex_encode(uid, uid_len, uhex);
		pb__kinds_hex_encode(h, sizeof(h), hhex);
		n = snprintf(out, cap, "%s-%s", uhex, hhex);
	} else {
		crypto_generichash_state st;

		crypto_generichash_init(&st, NULL, 0, sizeof(h));
		crypto_generichash_update(&st, card->data, sizeof(card->data));
		crypto_generichash_update(&st, card->known, sizeof(card->known));
		crypto_generichash_final(&st, h, sizeof(h));
		pb__kinds_hex_encode(h, sizeof(h), hhex);
		n = snprintf(out, cap, "nouid-%s", hhex);
	}
	if (n < 0 || (size_t)n >= cap)
		return PB_ETOOBIG;
	return 0;
}
