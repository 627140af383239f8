/* The phone's automatic backup agent: backs up changed data by itself, only
 * on allowed network types, and when the SIM changes fetches the contact
 * groups kept for the new SIM identity. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "peerback.h"
#include "agent/backup/engine.h"
#include "agent/phone/agent.h"
#include "agent/phone/handle.h"
#include "agent/phone/phone.h"
#include "agent/util/fsutil.h"
#include "agent/util/json.h"

/* --- Network type (Linux) ----------------------------------------------------- */

static bool file_exists(const char *iface, const char *rel)
{
	char path[512];
	int n = snprintf(path, sizeof(path), "/sys/class/net/%s/%s", iface, rel);

	return n > 0 && (size_t)n < sizeof(path) && access(path, F_OK) == 0;
}

static bool devtype_is(const char *iface, const char *type)
{
	char path[512], line[256];
	FILE *f;
	bool yes = false;
	int n = snprintf(path, sizeof(path), "/sys/class/net/%s/uevent", iface);

	if (n < 0 || (size_t)n >= sizeof(path) || (f = fopen(path, "r")) == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "DEVTYPE=", 8) == 0 && strncmp(line + 8, type, strlen(type)) == 0)
			yes = true;
	fclose(f);
	return yes;
}

pb_net_type_t pb__net_classify(const char *iface)
{
	static const char *const cellular[] = { "wwan", "rmnet", "ccmni", "ppp", "pdp", "qmimux", "usb" };

	if (devtype_is(iface, "wwan"))
		return PB_NET_CELLULAR;
	if (file_exists(iface, "wireless") || file_exists(iface, "phy80211") || devtype_is(iface, "wlan"))
		return PB_NET_WIFI;
	for (size_t i = 0; i < sizeof(cellular) / sizeof(cellular[0]); i++)
		if (strncmp(iface, cellular[i], strlen(cellular[i])) == 0)
			return PB_NET_CELLULAR;
	if (strncmp(iface, "wl", 2) == 0)
		return PB_NET_WIFI;
	if (strcmp(iface, "lo") == 0)
		return PB_NET_NONE;
	return PB_NET_ETHERNET;
}

pb_net_type_t pb_net_current(char *iface, size_t cap)
{
	FILE *f = fopen("/proc/net/route", "r");
	char line[512], name[64], best[64] = "";
	unsigned long dest, flags, metric, best_metric = (unsigned long)-1;

	if (iface != NULL && cap > 0)
		iface[0] = 0;
	if (f == NULL)
		return PB_NET_NONE;
	/* The interface of the default route with the lowest metric. */
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long gw, refcnt, use;

		if (sscanf(line, "%63s %lx %lx %lx %lu %lu %lu", name, &dest, &gw, &flags, &refcnt, &use, &metric) != 7)
			continue;
		if (dest == 0 && (flags & 1) && metric < best_metric) {
			best_metric = metric;
			snprintf(best, sizeof(best), "%s", name);
		}
	}
	fclose(f);
	if (best[0] == 0)
		return PB_NET_NONE;
	if (iface != NULL)
		snprintf(iface, cap, "%s", best);
	return pb__net_classify(best);
}

const char *pb_net_name(pb_net_type_t t)
{
	switch (t) {
	case PB_NET_WIFI:
		return "wifi";
	case PB_NET_ETHERNET:
		return "ethernet";
	case PB_NET_CELLULAR:
		return "cellular";
	default:
		return "none";
	}
}

int pb_net_parse(const char *word, pb_net_type_t *out)
{
	if (strcmp(word, "wifi") == 0 || strcmp(word, "wi-fi") == 0)
		*out = PB_NET_WIFI;
	else if (strcmp(word, "ethernet") == 0)
		*out = PB_NET_ETHERNET;
	else if (strcmp(word, "cellular") == 0 || strcmp(word, "mobile") == 0)
		*out = PB_NET_CELLULAR;
	else if (strcmp(word, "none") == 0)
		*out = PB_NET_NONE;
	else
		return PB_EINVAL;
	return 0;
}

/* --- Change detection ----------------------------------------------------------- */

static uint8_t g_fp[32];
static size_t g_count;
static size_t g_root_len;

static int fingerprint_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	crypto_generichash_state h;
	uint8_t d[32];
	int64_t m = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	uint64_t size = (uint64_t)st->st_size;

	(void)ftw;
	if (flag != FTW_F)
		return 0;
	/* Order-independent: the sum of one hash per file. */
	crypto_generichash_init(&h, NULL, 0, sizeof(d));
	crypto_generichash_update(&h, (const uint8_t *)path + g_root_len, strlen(path) - g_root_len + 1);
	crypto_generichash_update(&h, (const uint8_t *)&size, sizeof(size));
	crypto_generichash_update(&h, (const uint8_t *)&m, sizeof(m));
	crypto_generichash_final(&h, d, sizeof(d));
	for (size_t i = 0; i < sizeof(d); i++)
		g_fp[i] ^= d[i];
	g_count++;
	return 0;
}

static int fingerprint(const char *dir, char out[65])
{
	memset(g_fp, 0, sizeof(g_fp));
	g_count = 0;
	g_root_len = strlen(dir);
	if (nftw(dir, fingerprint_one, 16, FTW_PHYS) != 0)
		return -errno;
	g_fp[0] ^= (uint8_t)g_count;
	sodium_bin2hex(out, 65, g_fp, sizeof(g_fp));
	return 0;
}

/* --- State ------------------------------------------------------------------------ */

struct agent_state {
	char fingerprint[65];
	char iccid[32], msisdn[32];
};

static int state_path(const char *home, char *out, size_t cap)
{
	return pb__path_join(out, cap, home, "agent.json");
}

static void load_state(const char *home, struct agent_state *s)
{
	char path[4096];
	json_t *root;

	memset(s, 0, sizeof(*s));
	if (state_path(home, path, sizeof(path)) != 0 || (root = json_load_file(path, 0, NULL)) == NULL)
		return;
	snprintf(s->fingerprint, sizeof(s->fingerprint), "%s",
		 json_string_value(json_object_get(root, "fingerprint")) ?: "");
	snprintf(s->iccid, sizeof(s->iccid), "%s", json_string_value(json_object_get(root, "iccid")) ?: "");
	snprintf(s->msisdn, sizeof(s->msisdn), "%s", json_string_value(json_object_get(root, "msisdn")) ?: "");
	json_decref(root);
}

static int save_state(const char *home, const struct agent_state *s)
{
	char path[4096], *text;
	json_t *root = json_pack("{s:s, s:s, s:s}", "fingerprint", s->fingerprint, "iccid", s->iccid, "msisdn",
				 s->msisdn);
	int rc;

	if (root == NULL)
		return PB_ENOMEM;
	text = json_dumps(root, JSON_SORT_KEYS);
	json_decref(root);
	if (text == NULL)
		return PB_ENOMEM;
	rc = state_path(home, path, sizeof(path));
	if (rc == 0)
		rc = pb__write_file_atomic(path, text, strlen(text), 0600);
	free(text);
	return rc;
}

/* --- The loop ---------------------------------------------------------------------- */

/* The caller's options, with defaults filled in, and the handle's home and
 * device directory. */
struct run {
	pb_agent_opts_t pub;
	const char *home;
	const char *device_dir;
	const pb_pwhash_params_t *wrap_params;
};

static bool stop_asked(const struct run *o)
{
	return o->pub.stop != NULL && o->pub.stop(o->pub.stop_arg) != 0;
}



/* One event as a JSON object built by json_pack(fmt, ...). */
static void emit(const struct run *o, const char *fmt, ...)
{
	va_list ap;
	char *line;

	va_start(ap, fmt);
	line = pb__json_vformat(fmt, ap);
	va_end(ap);
	if (line != NULL && o->pub.event != NULL)
		o->pub.event(o->pub.event_arg, line);
	free(line);
}

static void hex64(uint64_t v, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)v);
}

/* One pass: returns 0, or an error of the backup or restore it ran. */
/* One backup to host (a key, or the one host asked for); reports it. */
static int backup_one(const struct run *o, const char *host, const char *name)
{
	pb_engine_opts_t e;
	pb_engine_result_t res;
	char snap_hex[17];
	int rc;

	memset(&e, 0, sizeof(e));
	e.home = o->home;
	e.device_dir = o->device_dir;
	e.host = host;
	e.passphrase = o->pub.passphrase;
	e.wrap_params = o->wrap_params;
	rc = pb_engine_backup(&e, &res);
	hex64(res.snapshot, snap_hex);
	emit(o, "{s:s, s:s, s:I, s:I, s:s, s:b, s:I, s:o}", "event", "backup", "result", pb_err_name(rc), "items_changed",
	     (json_int_t)res.items_changed, "bytes_sent", (json_int_t)res.bytes_sent, "snapshot", snap_hex, "partial",
	     rc == 0 && res.skipped > 0, "skipped", (json_int_t)res.skipped, "host", pb__json_text(name));
	return rc;
}

/* Backs up to the one host asked for, or to every paired host: a phone paired with a
 * second host must not stop backing up to the first. Every host is tried;
 * the first failure is returned, so that the change is tried again at the
 * next pass (the hosts that have it then receive nothing new). */
static int backup_hosts(const struct run *o)
{
	pb_remembered_host_t *hosts;
	int n, rc = 0;

	if (o->pub.host != NULL)
		return backup_one(o, o->pub.host, o->pub.host);
	if ((hosts = calloc(32, sizeof(*hosts))) == NULL)
		return PB_ENOMEM;
	n = pb__phone_hosts(o->home, hosts, 32);
	if (n <= 0)
		rc = n < 0 ? n : PB_EACCT_NOT_PAIRED;
	for (int i = 0; i < n; i++) {
		char key[64];
		int r;

		(void)pb__b64url_encode(hosts[i].static_pk, 32, key, sizeof(key));
		r = backup_one(o, key, hosts[i].name[0] ? hosts[i].name : key);
		if (r != 0 && rc == 0)
			rc = r;
	}
	free(hosts);
	return rc;
}

static int agent_pass(const struct run *o)
{
	struct agent_state st;
	pb_net_type_t net;
	char iface[64] = "", fp[65], iccid[32] = "", msisdn[32] = "";
	bool allowed;
	int rc;

	load_state(o->home, &st);
	net = o->pub.network != NULL ? o->pub.network(o->pub.network_arg) : pb_net_current(iface, sizeof(iface));
	allowed = (o->pub.allowed & (1u << net)) != 0;
	emit(o, "{s:s, s:s, s:o, s:b}", "event", "check", "network", pb_net_name(net), "interface",
	     pb__json_text(iface), "allowed", (int)allowed);
	/* A new SIM identity brings the contact groups kept for it. */
	if (pb__sim_identity(o->device_dir, iccid, sizeof(iccid), msisdn, sizeof(msisdn)) == 0 && st.iccid[0] != 0 &&
	    (strcmp(iccid, st.iccid) != 0 || strcmp(msisdn, st.msisdn) != 0)) {
		uint64_t snap = 0;

		if (!allowed) {
			char reason[96];

			snprintf(reason, sizeof(reason), "the SIM changed, but network %s is not allowed",
				 pb_net_name(net));
			emit(o, "{s:s, s:s}", "event", "skipped", "reason", reason);
			return 0;
		}
		{
			pb_engine_opts_t e;
			pb_engine_result_t res;

			memset(&e, 0, sizeof(e));
			e.home = o->home;
			e.device_dir = o->device_dir;
			e.host = o->pub.host;
			rc = pb_engine_sim_snapshot(&e, iccid, msisdn, &snap);
			if (rc == 0) {
				e.kind_mask = 1u << PB_KIND_CONTACTS;
				e.snapshot = snap;
				rc = pb_engine_restore(&e, &res);
				/* A snapshot without contacts has none to bring. */
				if (rc == PB_ENOTFOUND)
					rc = 0;
				char snap_hex[17];

				hex64(snap, snap_hex);
				emit(o, "{s:s, s:o, s:o, s:I, s:s, s:s}", "event", "sim-changed", "from",
				     pb__json_text(st.iccid), "to", pb__json_text(iccid), "contacts",
				     (json_int_t)res.items, "snapshot", snap_hex, "result", pb_err_name(rc));
				if (rc != 0)
					return rc;
			} else if (rc == PB_ENOTFOUND) {
				emit(o, "{s:s, s:o, s:o, s:I, s:s}", "event", "sim-changed", "from",
				     pb__json_text(st.iccid), "to", pb__json_text(iccid), "contacts", (json_int_t)0,
				     "result", "no contact groups kept for this SIM");
			} else {
				return rc;
			}
		}
	}
	if (iccid[0] != 0) {
		snprintf(st.iccid, sizeof(st.iccid), "%s", iccid);
		snprintf(st.msisdn, sizeof(st.msisdn), "%s", msisdn);
	}
	if ((rc = fingerprint(o->device_dir, fp)) != 0)
		return rc;
	if (strcmp(fp, st.fingerprint) == 0) {
		emit(o, "{s:s}", "event", "unchanged");
		return save_state(o->home, &st);
	}
	if (!allowed) {
		char reason[64];

		snprintf(reason, sizeof(reason), "network %s is not allowed", pb_net_name(net));
		emit(o, "{s:s, s:s}", "event", "skipped", "reason", reason);
		return save_state(o->home, &st);
	}
	if ((rc = backup_hosts(o)) != 0)
		return rc;
	snprintf(st.fingerprint, sizeof(st.fingerprint), "%s", fp);
	return save_state(o->home, &st);
}

int pb_agent_run(pb_phone_t *phone, const pb_agent_opts_t *opts)
{
	pb_pwhash_params_t weak;
	struct run r;
	const struct run *o = &r;
	int rc = 0;

	if (phone == NULL || opts == NULL)
		return PB_EINVAL;
	memset(&r, 0, sizeof(r));
	r.pub = *opts;
	r.home = phone->home;
	r.device_dir = phone->device_dir;
	if (opts->weak_kdf) {
		weak = pb_pwhash_params_interactive();
		r.wrap_params = &weak;
	}
	if (r.pub.allowed == 0)
		r.pub.allowed = (1u << PB_NET_WIFI) | (1u << PB_NET_ETHERNET);
	if (r.pub.interval == 0)
		r.pub.interval = 300;
	for (;;) {
		rc = agent_pass(o);
		if (rc != 0)
			emit(o, "{s:s, s:s, s:s}", "event", "error", "error", pb_err_name(rc), "message",
			     pb_strerror(rc));
		if (o->pub.once || stop_asked(o))
			break;
		for (unsigned s = 0; s < o->pub.interval && !stop_asked(o); s++)
			sleep(1);
		if (stop_asked(o))
			break;
	}
	return o->pub.once ? rc : 0;
}
