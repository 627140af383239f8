/* The contacts generator: a deterministic address book from a seed, with
 * names in several scripts, phone numbers, emails, 7-part addresses, notes
 * that need escaping, and groups given both as KIND:group cards and as
 * CATEGORIES. small: 40 contacts, standard: 600, large: 5000. */
#include <stdlib.h>
#include <string.h>

#include "peerback/error.h"
#include "agent/kinds/chat-util.h"

static const char *const given[] = {
	"Anna", "J\u00fcrgen", "Mar\u00eda", "\u041e\u043b\u0435\u0433", "\u4f1f", "\u3055\u304f\u3089", "Fatima",
	"\u0623\u062d\u0645\u062f", "Chlo\u00e9", "S\u00f8ren", "Priya", "Ngozi", "Tom", "Lena", "Mateo",
	"\u0141ukasz", "Aylin", "Kwame", "Ines", "Noah",
};
static const char *const family[] = {
	"Schmidt", "Garc\u00eda", "\u0418\u0432\u0430\u043d\u043e\u0432", "\u738b", "Tanaka", "Haddad", "Dubois",
	"Nielsen", "Papadopoulos", "Sharma", "Okafor", "Smith", "Rossi", "Kowalski", "Y\u0131lmaz", "O'Neill",
};
static const struct {
	const char *street_a, *street_b, *city, *region, *code, *country, *prefix;
} places[] = {
	{"Hauptstra\u00dfe ", "", "Berlin", "", "10115", "Germany", "+49 30"},
	{"Calle Mayor ", "", "Madrid", "", "28013", "Spain", "+34 91"},
	{"", " Main Street", "Springfield", "IL", "62701", "USA", "+1 217"},
	{"\u0443\u043b. \u0422\u0432\u0435\u0440\u0441\u043a\u0430\u044f\\, ", "", "\u041c\u043e\u0441\u043a\u0432\u0430", "", "125009", "Russia", "+7 495"},
	{"Rue de Rivoli ", "", "Paris", "", "75001", "France", "+33 1"},
	{"", "-chome Shibuya", "Tokyo", "", "150-0002", "Japan", "+81 3"},
	{"", " Marina Road", "Lagos", "", "101001", "Nigeria", "+234 1"},
};
static const char *const groups[] = {"Family", "Work", "Friends", "Football club", "Book club", "Neighbours",
				     "School\\, parents"};
static const char *const domains[] = {"example.com", "example.org", "mail.example.de", "example.net"};
static const char *const notes[] = {
	"Met at the conference\\, 2019",
	"Allergic to nuts\\; bring cake without",
	"Call after 6pm\\nnot on weekends",
	"Backslash in a path: C:\\\\Users",
	"\U0001f382 birthday in May",
};

static int uuid(pb__chat_rng_t *rng, char *out, size_t cap)
{
	uint8_t h[16];
	int n;

	pb__chat_rng_bytes(rng, h, sizeof(h));
	h[6] = (uint8_t)((h[6] & 0x0f) | 0x40);
	h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
	n = snprintf(out, cap, "urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0],
		     h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]);
	return n < 0 || (size_t)n >= cap ? PB_EINVAL : 0;
}

#define R(n) pb__chat_rng_below(&rng, (uint32_t)(n))
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int pb__gen_contacts(const char *device_dir, uint64_t seed, pb_gen_size_t size)
{
	pb__chat_rng_t rng;
	pb__chat_stage_t st;
	pb_buf_t v = {0}, out = {0};
	char (*uids)[64] = NULL;
	uint8_t *member_of = NULL; /* bit g set: contact in group g */
	char path[4400], street[128];
	uint32_t n, i, gi, k;
	int err = 0;

	n = size == PB_GEN_SMALL ? 40 : size == PB_GEN_STANDARD ? 600 : 5000;
	pb__chat_rng_init(&rng, seed, "contacts");
	uids = calloc(n, sizeof(*uids));
	member_of = calloc(n, 1);
	if (uids == NULL || member_of == NULL) {
		err = PB_ENOMEM;
		goto out_free;
	}
	for (i = 0; i < n && err == 0; i++) {
		const char *gv = given[R(COUNT(given))], *fm = family[R(COUNT(family))];
		uint32_t pl = R(COUNT(places)), ntel = 1 + R(3), nmail = R(3);
		bool cats = false;

		if ((err = uuid(&rng, uids[i], sizeof(uids[i]))) != 0)
			break;
		/* Groups: the first four as group cards, the others as CATEGORIES. */
		for (gi = 0; gi < COUNT(groups); gi++)
			if (R(6) == 0)
				member_of[i] |= (uint8_t)(1u << gi);
		err = pb__chat_buf_printf(&v, "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:%s\r\nFN:%s %s\r\nN:%s;%s;;;\r\n", uids[i],
					  gv, fm, fm, gv);
		for (k = 0; k < ntel && err == 0; k++) {
			static const char *const types[] = {"cell", "home", "work"};

			err = pb__chat_buf_printf(&v, "TEL;TYPE=%s;VALUE=uri:tel:%s-%03u-%04u\r\n", types[k],
						  places[pl].prefix, R(1000), R(10000));
		}
		for (k = 0; k < nmail && err == 0; k++)
			err = pb__chat_buf_printf(&v, "EMAIL;TYPE=%s:user%u.%u@%s\r\n", k ? "work" : "home", i, k,
						  domains[R(COUNT(domains))]);
		if (err == 0 && R(3) != 0) {
			k = (uint32_t)snprintf(street, sizeof(street), "%s%u%s", places[pl].street_a, 1 + R(200),
					       places[pl].street_b);
			if (k >= sizeof(street)) {
				err = PB_EINVAL;
				break;
			}
			err = pb__chat_buf_printf(&v, "ADR;TYPE=home:;%s;%s;%s;%s;%s;%s\r\n", R(4) ? "" : "Apt 3",
						  street, places[pl].city, places[pl].region, places[pl].code,
						  places[pl].country);
		}
		if (err == 0 && R(4) == 0)
			err = pb__chat_buf_printf(&v, "ORG:%s;%s\r\n", R(2) ? "Example GmbH" : "ACME Corp\\, Inc.",
						  R(2) ? "Sales" : "Engineering");
		if (err == 0 && R(3) == 0)
			err = pb__chat_buf_printf(&v, "BDAY:%04u%02u%02u\r\n", 1950 + R(60), 1 + R(12), 1 + R(28));
		if (err == 0 && R(5) == 0)
			err = pb__chat_buf_printf(&v, "NOTE:%s\r\n", notes[R(COUNT(notes))]);
		for (gi = 4; gi < COUNT(groups) && err == 0; gi++) {
			if (!(member_of[i] & (1u << gi)))
				continue;
			err = pb__chat_buf_printf(&v, "%s%s", cats ? "," : "CATEGORIES:", groups[gi]);
			cats = true;
		}
		if (err == 0 && cats)
			err = pb__chat_buf_str(&v, "\r\n");
		if (err == 0)
			err = pb__chat_buf_str(&v, "END:VCARD\r\n");
	}
	for (gi = 0; gi < 4 && err == 0; gi++) {
		char gu[64];

		if ((err = uuid(&rng, gu, sizeof(gu))) != 0)
			break;
		err = pb__chat_buf_printf(&v, "BEGIN:VCARD\r\nVERSION:4.0\r\nKIND:group\r\nUID:%s\r\nFN:%s\r\n", gu, groups[gi]);
		for (i = 0; i < n && err == 0; i++)
			if (member_of[i] & (1u << gi))
				err = pb__chat_buf_printf(&v, "MEMBER:%s\r\n", uids[i]);
		if (err == 0)
			err = pb__chat_buf_str(&v, "END:VCARD\r\n");
	}
	if (err == 0)
		err = pb__contacts_canonical(v.data, v.len, &out);
	if (err == 0 && (err = pb__chat_stage_open(&st, device_dir)) == 0) {
		err = pb__chat_stage_path(&st, "contacts/contacts.vcf", path, sizeof(path));
		if (err == 0)
			err = pb__chat_write_file(path, out.data, out.len);
		if (err == 0)
			err = pb__chat_stage_commit(&st);
		else
			pb__chat_stage_abort(&st);
	}
out_free:
	pb__chat_buf_clear(&v);
	pb__chat_buf_clear(&out);
	free(uids);
	free(member_of);
	pb__chat_rng_wipe(&rng);
	return err;
}
