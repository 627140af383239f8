/* peerback NFC data: secure-element credentials, MIFARE Classic cards and
 * SIM profiles. Formats and rules are in docs/DATA.md and FORMATS.md.
 *
 * Parsers take (buf, len) of untrusted bytes and never abort on them; when
 * they fail, errbuf (may be NULL) receives a sentence naming the line or
 * offset of the problem. */
#ifndef PEERBACK_NFC_H
#define PEERBACK_NFC_H

#include "peerback/common.h"
#include "peerback/kinds.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- Credentials ---------------------------------------------------------- */

#define PB_CREDENTIAL_ID_MAX 64        /* id: 1-64 of [A-Za-z0-9._-], not starting with '.' */
#define PB_CREDENTIAL_DATA_MAX 65536   /* bytes of data */

typedef struct pb_credential_s {
	char id[PB_CREDENTIAL_ID_MAX + 1];
	char type[17];    /* payment, transit, access, identity, sim-keys, other */
	char aid[33];     /* application id, hex (10-32 digits), or "" */
	char issuer[129]; /* free text, or "" */
	uint64_t created; /* unix seconds */
	uint64_t expires; /* unix seconds; 0 = never */
	uint8_t *data;    /* owned; wiped and freed by pb_credential_free */
	size_t data_len;
	uint8_t checksum[4]; /* as stored in the file */
} pb_credential_t;

/* The checksum rule: the first 4 bytes of SHA-256(data). */
PB_EXTERN void pb_credential_checksum(const uint8_t *data, size_t len, uint8_t out[4]);

/* Parses one credential in peerback JSON. Checks structure and fields, not
 * the checksum or expiry (see pb_credential_verify). *out is owned by the
 * caller (pb_credential_free). */
PB_EXTERN PB_WUR int pb_credential_parse(const uint8_t *buf, size_t len, pb_credential_t **out, char *errbuf,
					 size_t errcap);
/* Writes the canonical JSON (sorted keys, two-space indent, final newline). */
PB_EXTERN PB_WUR int pb_credential_format(const pb_credential_t *c, pb_buf_t *out);
/* 0, PB_EDATA_CHECKSUM when data fails its checksum, else PB_EDATA_EXPIRED
 * when expires != 0 and now >= expires. */
PB_EXTERN PB_WUR int pb_credential_verify(const pb_credential_t *c, uint64_t now);
/* Loads credentials/<id>.json of a device directory: 0, PB_ENOTFOUND, or a
 * parse error. */
PB_EXTERN PB_WUR int pb_credential_load(const char *device_dir, const char *id, pb_credential_t **out);
/* What the NFC fallback needs to tell apart: 0 (usable), PB_ENOTFOUND
 * (missing), PB_EDATA_EXPIRED, PB_EDATA_CHECKSUM; a file that does not parse
 * gives PB_EDATA_FORMAT. */
PB_EXTERN PB_WUR int pb_credential_check(const char *device_dir, const char *id, uint64_t now);
PB_EXTERN void pb_credential_free(pb_credential_t *c);

/* --- MIFARE Classic ------------------------------------------------------- */

#define PB_MIFARE_MAX_SECTORS 40
#define PB_MIFARE_MAX_BYTES 4096
#define PB_MIFARE_DEAD_MAX 80 /* bytes of an .mct dead-sector line */

typedef enum pb_mifare_sector_state {
	PB_MIFARE_SECTOR_READ = 0,    /* present (single bytes may still be unknown) */
	PB_MIFARE_SECTOR_MISSING = 1, /* absent from the dump */
	PB_MIFARE_SECTOR_DEAD = 2,    /* "*No keys found or dead sector" */
} pb_mifare_sector_state_t;

/* A card dump that remembers what was not read. */
typedef struct pb_mifare_card_s {
	unsigned sectors;                      /* 5, 16, 32 or 40 */
	uint8_t data[PB_MIFARE_MAX_BYTES];     /* unknown bytes are 0 */
	uint8_t known[PB_MIFARE_MAX_BYTES];    /* 1 where the byte was read */
	uint8_t state[PB_MIFARE_MAX_SECTORS];  /* pb_mifare_sector_state_t */
	char dead[PB_MIFARE_MAX_SECTORS][PB_MIFARE_DEAD_MAX + 1]; /* text of a dead sector's line */
	bool mct_crlf;                         /* .mct lines end in CRLF */
	bool mct_final_newline;                /* .mct ends with a line end */
	bool flipper;                          /* read from a Flipper .nfc file */
	bool flipper_has_atqa, flipper_has_sak; /* ... with these lines, */
	uint8_t flipper_atqa[2], flipper_sak;  /* ... as the file wrote them */
} pb_mifare_card_t;

/* Geometry. */
PB_EXTERN unsigned pb_mifare_sectors_for_size(size_t bytes); /* 0 when no card has that size */
PB_EXTERN size_t pb_mifare_size(unsigned sectors);
PB_EXTERN unsigned pb_mifare_sector_blocks(unsigned sector);      /* 4 or 16 */
PB_EXTERN unsigned pb_mifare_sector_first_block(unsigned sector);
PB_EXTERN unsigned pb_mifare_sector_trailer(unsigned sector);
PB_EXTERN unsigned pb_mifare_block_sector(unsigned block);
PB_EXTERN bool pb_mifare_is_trailer(unsigned block);

/* A new card of the given sector count with every sector read and zeroed. */
PB_EXTERN void pb_mifare_init(pb_mifare_card_t *card, unsigned sectors);
/* True when every byte of every sector is known. */
PB_EXTERN bool pb_mifare_complete(const pb_mifare_card_t *card);

/* Block 0: the UID (4 or 7 bytes) and its checks: BCC for 4-byte UIDs,
 * no cascade tag 0x88 or 0xF8 first byte. Returns 0, PB_EDATA_BCC or
 * PB_EDATA_FIELD; uid/uid_len (may be NULL) receive the UID. */
PB_EXTERN PB_WUR int pb_mifare_check_block0(const uint8_t block[16], uint8_t uid[7], size_t *uid_len);
/* ATQA and SAK of block 0 (after the UID) compared with what MIFARE Classic
 * Tool expects for the card size: 0, or PB_EDATA_FIELD. */
PB_EXTERN PB_WUR int pb_mifare_check_atqa(const uint8_t block[16], unsigned sectors);

/* Access bits (trailer bytes 6-8) to conditions C1C2C3 (0-7) of the four
 * block groups (3 = trailer). Returns 0 or PB_EDATA_ACCESS_BITS. */
PB_EXTERN PB_WUR int pb_mifare_access_decode(const uint8_t bits[3], uint8_t cond[4]);
PB_EXTERN void pb_mifare_access_encode(const uint8_t cond[4], uint8_t bits[3]);
/* The condition group (0-3) of a block inside its sector. */
PB_EXTERN unsigned pb_mifare_block_group(unsigned block);
/* True when the condition of a data block makes it a value block. */
PB_EXTERN bool pb_mifare_cond_is_value(uint8_t cond);

typedef enum pb_mifare_key { PB_MIFARE_KEY_A = 0, PB_MIFARE_KEY_B = 1 } pb_mifare_key_t;
/* Operations on a data block allowed with a key under condition cond, given
 * the trailer's condition (key B readable means key B cannot authenticate). */
#define PB_MIFARE_READ 1u
#define PB_MIFARE_WRITE 2u
#define PB_MIFARE_INCREMENT 4u
#define PB_MIFARE_DECREMENT 8u /* also transfer and restore */
PB_EXTERN unsigned pb_mifare_data_rights(uint8_t cond, uint8_t trailer_cond, pb_mifare_key_t key);
/* Rights on the parts of a trailer under condition cond. */
#define PB_MIFARE_KEYA_WRITE 1u
#define PB_MIFARE_ACCESS_READ 2u
#define PB_MIFARE_ACCESS_WRITE 4u
#define PB_MIFARE_KEYB_READ 8u
#define PB_MIFARE_KEYB_WRITE 16u
PB_EXTERN unsigned pb_mifare_trailer_rights(uint8_t cond, pb_mifare_key_t key);
/* May block be written with key? 0, PB_EM1_ACCESS when the access bits
 * forbid it, PB_EDATA_ACCESS_BITS when the trailer's bits are broken,
 * PB_ENOKEY when the trailer was not read, PB_EINVAL for a block outside the
 * card. A trailer counts as writable when the key may write any part of it. */
PB_EXTERN PB_WUR int pb_mifare_check_write(const pb_mifare_card_t *card, unsigned block, pb_mifare_key_t key);
/* Copies a sector's blocks (16 * pb_mifare_sector_blocks bytes) into out.
 * PB_ENOTFOUND when the sector is missing or dead, PB_EINVAL outside the
 * card, PB_ETOOBIG when cap is too small. */
PB_EXTERN PB_WUR int pb_mifare_read_sector(const pb_mifare_card_t *card, unsigned sector, uint8_t *out, size_t cap,
					   size_t *len);

/* Value blocks: v ~v v addr ~addr addr ~addr. */
PB_EXTERN PB_WUR int pb_mifare_value_parse(const uint8_t block[16], int32_t *value, uint8_t *addr);
PB_EXTERN void pb_mifare_value_format(int32_t value, uint8_t addr, uint8_t block[16]);

/* Checks a card: block 0 and, for every read trailer, the access bits, and
 * every read block that is a value block (its access condition allows value
 * operations and its address bytes read addr ~addr addr ~addr). */
PB_EXTERN PB_WUR int pb_mifare_validate(const pb_mifare_card_t *card, char *errbuf, size_t errcap);

/* The card's id: UID hex, '-', 8 hex digits of BLAKE2b over block 0
 * ("nouid-<hash of the known bytes>" when block 0 was not read). */
PB_EXTERN PB_WUR int pb_mifare_card_id(const pb_mifare_card_t *card, char *out, size_t cap);

/* Parsers: each allocates *out (free()), validates with pb_mifare_validate. */
PB_EXTERN PB_WUR int pb_mifare_parse_mct(const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *errbuf,
					 size_t errcap);
PB_EXTERN PB_WUR int pb_mifare_parse_bin(const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *errbuf,
					 size_t errcap);
PB_EXTERN PB_WUR int pb_mifare_parse_eml(const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *errbuf,
					 size_t errcap);
PB_EXTERN PB_WUR int pb_mifare_parse_pm3json(const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *errbuf,
					     size_t errcap);
PB_EXTERN PB_WUR int pb_mifare_parse_flipper(const uint8_t *buf, size_t len, pb_mifare_card_t **out, char *errbuf,
					     size_t errcap);
/* Tries the format the bytes look like (name gives the extension). */
PB_EXTERN PB_WUR int pb_mifare_parse_any(const char *name, const uint8_t *buf, size_t len, pb_mifare_card_t **out,
					 char *errbuf, size_t errcap);
/* A key file: one 12-hex key a line, '#' comments and blank lines ignored.
 * keys receives up to max keys (6 bytes each); *n the count. */
PB_EXTERN PB_WUR int pb_mifare_parse_keys(const uint8_t *buf, size_t len, uint8_t (*keys)[6], size_t max, size_t *n,
					  char *errbuf, size_t errcap);

/* Writers. .mct keeps unknown bytes as '-' and Flipper as '??'; .bin and
 * .eml write unknown data bytes as 00 and unknown trailer parts as the
 * transport trailer (keys FFFFFFFFFFFF, access bits FF0780 69) so that the
 * dump stays valid; Proxmark3 JSON leaves out blocks with nothing known and
 * writes other unknown bytes as 00. */
PB_EXTERN PB_WUR int pb_mifare_format_mct(const pb_mifare_card_t *card, pb_buf_t *out);
PB_EXTERN PB_WUR int pb_mifare_format_bin(const pb_mifare_card_t *card, pb_buf_t *out);
PB_EXTERN PB_WUR int pb_mifare_format_eml(const pb_mifare_card_t *card, pb_buf_t *out);
PB_EXTERN PB_WUR int pb_mifare_format_pm3json(const pb_mifare_card_t *card, pb_buf_t *out);
PB_EXTERN PB_WUR int pb_mifare_format_flipper(const pb_mifare_card_t *card, pb_buf_t *out);
/* The distinct known keys of the card's trailers, one a line. */
PB_EXTERN PB_WUR int pb_mifare_format_keys(const pb_mifare_card_t *card, pb_buf_t *out);

/* Loads mifare/<id>.mfd of a device directory, with its .mct sidecar when
 * present. *out is owned by the caller (free()). */
PB_EXTERN PB_WUR int pb_mifare_load(const char *device_dir, const char *id, pb_mifare_card_t **out);

/* --- SIM profiles --------------------------------------------------------- */

/* Luhn check digit of the digits s[0..n) (the number without its check). */
PB_EXTERN int pb_sim_luhn_digit(const char *s, size_t n);
PB_EXTERN bool pb_sim_luhn_ok(const char *digits);
/* ICCID: 19 or 20 digits ending in a Luhn check digit. */
PB_EXTERN bool pb_sim_iccid_ok(const char *iccid);
/* IMSI: 6-15 digits; with mcc/mnc (may be NULL or "") it must start with them. */
PB_EXTERN bool pb_sim_imsi_ok(const char *imsi, const char *mcc, const char *mnc);

/* EF.ICCID: 10 bytes of nibble-swapped BCD padded with F. */
PB_EXTERN PB_WUR int pb_sim_ef_iccid_encode(const char *iccid, uint8_t out[10]);
PB_EXTERN PB_WUR int pb_sim_ef_iccid_decode(const uint8_t *ef, size_t len, char *out, size_t cap);
/* EF.IMSI: a length byte, then the digits nibble-swapped after a parity
 * nibble (9 for an odd digit count, 1 for even). 9 bytes. */
PB_EXTERN PB_WUR int pb_sim_ef_imsi_encode(const char *imsi, uint8_t out[9]);
PB_EXTERN PB_WUR int pb_sim_ef_imsi_decode(const uint8_t *ef, size_t len, char *out, size_t cap);

/* Validates a pySim-prog CSV and rewrites it canonically into out: "\n"
 * line ends, lowercase column names (adm1 becomes pin_adm), columns in the
 * documented order, no blank lines. */
PB_EXTERN PB_WUR int pb_sim_csv_canonical(const uint8_t *buf, size_t len, pb_buf_t *out, char *errbuf, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
