/* peerback agent: automatic backups on allowed networks, and contact groups
 * that follow the SIM. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "commands.h"

static const char usage_text[] =
	"usage: peerback agent [--device DIR] [--interval SECONDS] [--allow TYPES] [--network-type TYPE]\n"
	"                      [--once] [--json]\n"
	"       peerback agent status [--json]\n"
	"\n"
	"Watches the phone's data and backs up what changed, by itself, but only when\n"
	"the current network type is allowed (TYPES: a comma list of wifi, ethernet,\n"
	"cellular; default wifi,ethernet). Unchanged data is never sent again. When the\n"
	"SIM changes (ICCID or MSISDN of the first SIM profile), it fetches the contact\n"
	"groups kept for the new SIM identity from the host.\n"
	"\n"
	"  --interval S       seconds between checks (default 300)\n"
	"  --network-type T   the network type as the phone's system reports it (an app\n"
	"                     supplies it here); default: the default route's interface\n"
	"  --once             one check, then exit with its result\n"
	"status               prints the detected network type and the SIM identity\n";

/* An event as a line of text: "peerback agent: backup: result OK, items
 * changed 3". Text mode never prints raw JSON. */
static void print_text(const char *line)
{
	json_t *o = json_loads(line, 0, NULL), *v;
	const char *key, *event;
	bool first = true;

	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		fprintf(stderr, "peerback agent: (an event that could not be shown)\n");
		return;
	}
	event = json_string_value(json_object_get(o, "event"));
	fprintf(stderr, "peerback agent: %s", event != NULL ? event : "event");
	json_object_foreach(o, key, v) {
		if (strcmp(key, "event") == 0)
			continue;
		fprintf(stderr, "%s", first ? ": " : ", ");
		first = false;
		for (const char *k = key; *k; k++)
			fputc(*k == '_' ? ' ' : *k, stderr);
		if (json_is_string(v))
			fprintf(stderr, " %s", json_string_value(v));
		else if (json_is_integer(v))
			fprintf(stderr, " %lld", (long long)json_integer_value(v));
		else if (json_is_real(v))
			fprintf(stderr, " %.3g", json_real_value(v));
		else if (json_is_boolean(v))
			fprintf(stderr, " %s", json_is_true(v) ? "yes" : "no");
	}
	fputc('\n', stderr);
	json_decref(o);
}

static void print_event(void *arg, const char *json)
{
	pb_cli_t *cli = arg;

	if (cli->json) {
		printf("%s\n", json);
		fflush(stdout);
	} else {
		print_text(json);
	}
}

/* SIGINT and SIGTERM end the agent after the pass in progress: the CLI
 * decides what stops it, the library installs no handler. */
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int stop_asked(void *arg)
{
	(void)arg;
	return stop_flag;
}

static pb_net_type_t fixed_network(void *arg)
{
	return *(pb_net_type_t *)arg;
}

int pb_cmd_agent(pb_cli_t *cli, int argc, char **argv)
{
	pb_agent_opts_t o;
	pb_phone_t *phone;
	struct sigaction sa;
	pb_net_type_t fixed;
	char dev[4096], pass[1024] = "";
	const char *given = NULL;
	int rc;

	if (pb_cli_wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	memset(&o, 0, sizeof(o));
	o.allowed = (1u << PB_NET_WIFI) | (1u << PB_NET_ETHERNET);
	o.interval = 300;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "status") == 0 && i == 1) {
			char iface[64], iccid[32], msisdn[32];
			pb_net_type_t t = pb_net_current(iface, sizeof(iface));
			pb_phone_t *ph = NULL;

			if (pb_cli_phone(cli, NULL, &ph) != 0 || pb_phone_sim_identity(ph, iccid, 32, msisdn, 32) != 0)
				iccid[0] = msisdn[0] = 0;
			pb_phone_close(ph);
			for (int j = 2; j < argc; j++)
				if (strcmp(argv[j], "--json") == 0)
					cli->json = true;
			if (cli->json)
				(void)pb_cli_json("{s:s, s:o, s:o, s:o}", "network", pb_net_name(t), "interface",
						  pb_cli_text(iface), "iccid", pb_cli_text(iccid), "msisdn",
						  pb_cli_text(msisdn));
			else
				printf("network %s (%s)\nSIM     %s %s\n", pb_net_name(t), iface[0] ? iface : "no default route",
				       iccid[0] ? iccid : "none", msisdn);
			return 0;
		} else if (i + 1 < argc && strcmp(argv[i], "--device") == 0) {
			given = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--host") == 0) {
			o.host = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--interval") == 0) {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(argv[++i], &end, 10);
			if (errno != 0 || *end != 0 || v == 0 || v > 86400)
				return pb_cli_fail(cli, "--interval takes 1 to 86400 seconds");
			o.interval = (unsigned)v;
		} else if (i + 1 < argc && strcmp(argv[i], "--allow") == 0) {
			char list[256], *save = NULL;

			snprintf(list, sizeof(list), "%s", argv[++i]);
			o.allowed = 0;
			for (char *w = strtok_r(list, ",", &save); w != NULL; w = strtok_r(NULL, ",", &save)) {
				pb_net_type_t t;
				if (pb_net_parse(w, &t) != 0)
					return pb_cli_fail(cli, "unknown network type '%s' (wifi ethernet cellular)", w);
				o.allowed |= 1u << t;
			}
			/* 0 would be the library's default, not "none". */
			if (o.allowed == 0)
				return pb_cli_fail(cli, "--allow needs at least one network type (wifi ethernet cellular)");
		} else if (i + 1 < argc && strcmp(argv[i], "--network-type") == 0) {
			if (pb_net_parse(argv[++i], &fixed) != 0)
				return pb_cli_fail(cli, "unknown network type '%s' (wifi ethernet cellular none)", argv[i]);
			o.network = fixed_network;
			o.network_arg = &fixed;
		} else if (strcmp(argv[i], "--once") == 0) {
			o.once = true;
		} else if (strcmp(argv[i], "--json") == 0) {
			cli->json = true;
		} else {
			fprintf(stderr, "peerback agent: unknown argument '%s'\n%s", argv[i], usage_text);
			return 2;
		}
	}
	rc = given != NULL ? snprintf(dev, sizeof(dev), "%s", given) : snprintf(dev, sizeof(dev), "%s/device", cli->home);
	if (rc < 0 || (size_t)rc >= sizeof(dev))
		return pb_cli_fail(cli, "device path is too long");
	if ((rc = pb_cli_recovery_passphrase(cli, true, pass, sizeof(pass))) != 0)
		return rc;
	if ((rc = pb_cli_phone(cli, dev, &phone)) != 0) {
		sodium_memzero(pass, sizeof(pass));
		return pb_cli_fail_err(cli, rc, "cannot open the phone's state in %s", cli->home);
	}
	o.passphrase = pass[0] ? pass : NULL;
	o.weak_kdf = pb_cli_wrap_params() != NULL;
	o.event = print_event;
	o.event_arg = cli;
	o.stop = stop_asked;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = pb_agent_run(phone, &o);
	pb_phone_close(phone);
	sodium_memzero(pass, sizeof(pass));
	if (rc != 0)
		return pb_cli_fail_err(cli, rc, "agent");
	return 0;
}
