/*
 * nf_cmd.c: `switchyard rules ...` and `switchyard flows ...`.
 *
 * These work with the supervisor down: they read the configuration file and
 * talk to the kernel directly, so an operator can see and fix the redirect
 * in an emergency. Exit codes: 0 success, 1 error (the message names the
 * cause), 2 usage, 3 `rules show` found drift.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common/cfg.h"
#include "common/json.h"
#include "netfilter/nf.h"

/* A colour, or "none" for the -1 that nf_state uses when no single colour
 * is live. */
static const char *cname(int c)
{
	return c == CFG_BLUE || c == CFG_GREEN ? cfg_colour_name((enum cfg_colour)c) : "none";
}

const char *nf_rule_state_name(enum nf_rule_state s)
{
	switch (s) {
	case NF_RULE_OK:
		return "ok";
	case NF_RULE_MISSING:
		return "missing";
	case NF_RULE_FOREIGN:
		return "foreign";
	case NF_RULE_DUPLICATE:
		return "duplicate";
	}
	return "unknown";
}

static void addr_text(const struct cfg_addr *a, char *out, size_t len)
{
	if (a->text[0] != '\0')
		snprintf(out, len, "%s", a->text);
	else if (inet_ntop(a->family, a->a.v6, out, (socklen_t)len) == NULL)
		snprintf(out, len, "?");
}

static void rules_usage(void)
{
	fprintf(stderr, "usage: switchyard [-c FILE] rules show [--json]\n"
	                "       switchyard [-c FILE] rules install [blue|green]\n"
	                "       switchyard [-c FILE] rules remove\n"
	                "       switchyard [-c FILE] rules flip blue|green\n");
}

static int rules_show(const struct cfg *cfg, int json)
{
	struct nf_state st;
	char err[1024], warn[1024], why[512];
	static const char *const fam[2] = {"ipv4", "ipv6"};
	enum cfg_nf_backend be = CFG_NF_AUTO;

	if (nf_read(cfg, &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "switchyard rules: %s\n", err);
		return 1;
	}
	nf_check_nft(warn, sizeof(warn));
	nf_backend_resolve(cfg, &be, why, sizeof(why));
	if (json) {
		struct json_buf jb;

		jb_init(&jb);
		jb_obj_begin(&jb, NULL);
		jb_str(&jb, "backend", cfg_nf_backend_name(be));
		jb_str(&jb, "backend_why", why);
		jb_str(&jb, "chain", be == CFG_NF_NFTABLES ? "inet switchyard" : NF_CHAIN);
		jb_str(&jb, "live", st.live >= 0 ? cname(st.live) : NULL);
		jb_obj_begin(&jb, "families");
		for (int f = 0; f < 2; f++) {
			jb_obj_begin(&jb, fam[f]);
			jb_bool(&jb, "chain_present", st.chain_present[f]);
			jb_bool(&jb, "jumps_present", st.jumps_present[f]);
			jb_obj_end(&jb);
		}
		jb_obj_end(&jb);
		jb_arr_begin(&jb, "listeners");
		for (int i = 0; i < st.nlisteners; i++) {
			const struct nf_listener_state *ls = &st.listeners[i];
			char a[64];

			addr_text(&cfg->listeners[i].addr, a, sizeof(a));
			jb_obj_begin(&jb, NULL);
			jb_str(&jb, "name", cfg->listeners[i].name);
			jb_str(&jb, "address", a);
			jb_uint(&jb, "port", cfg->listeners[i].port);
			jb_str(&jb, "state", nf_rule_state_name(ls->state));
			jb_str(&jb, "colour", ls->colour >= 0 ? cname(ls->colour) : NULL);
			jb_uint(&jb, "to_port", ls->to_port);
			jb_uint(&jb, "blue_port", cfg->instances[CFG_BLUE].ports[i]);
			jb_uint(&jb, "green_port", cfg->instances[CFG_GREEN].ports[i]);
			jb_obj_end(&jb);
		}
		jb_arr_end(&jb);
		jb_bool(&jb, "drift", st.drift);
		jb_str(&jb, "drift_text", st.drift_text);
		jb_str(&jb, "nft_warning", warn[0] ? warn : NULL);
		jb_obj_end(&jb);
		printf("%s\n", jb_cstr(&jb));
		jb_free(&jb);
	} else {
		printf("backend: %s (%s)\n", cfg_nf_backend_name(be), why);
		printf("%s %s: IPv4 %s, IPv6 %s\n", be == CFG_NF_NFTABLES ? "table" : "chain",
		       be == CFG_NF_NFTABLES ? "inet switchyard" : NF_CHAIN,
		       st.chain_present[0] ? "present" : "absent",
		       st.chain_present[1] ? "present" : "absent");
		printf("live: %s\n", cname(st.live));
		for (int i = 0; i < st.nlisteners; i++) {
			const struct nf_listener_state *ls = &st.listeners[i];
			const struct cfg_listener *l = &cfg->listeners[i];
			char a[64];

			addr_text(&l->addr, a, sizeof(a));
			if (ls->state == NF_RULE_MISSING)
				printf("listener %s %s%s%s:%u -> (no rule)\n", l->name,
				       l->addr.family == AF_INET6 ? "[" : "", a,
				       l->addr.family == AF_INET6 ? "]" : "", l->port);
			else
				printf("listener %s %s%s%s:%u -> %u (%s) %s\n", l->name,
				       l->addr.family == AF_INET6 ? "[" : "", a,
				       l->addr.family == AF_INET6 ? "]" : "", l->port, ls->to_port,
				       cname(ls->colour), nf_rule_state_name(ls->state));
		}
		printf("drift: %s\n", st.drift ? st.drift_text : "none");
		if (warn[0])
			printf("warning: %s\n", warn);
	}
	return st.drift ? 3 : 0;
}

int nf_cmd_rules(const char *cfgpath, int argc, char **argv)
{
	struct cfg *cfg;
	char err[1024];
	const char *sub = argc >= 2 ? argv[1] : "show";
	int rc = 1, json = 0;
	enum cfg_colour c = CFG_BLUE;

	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
	if (strcmp(sub, "show") == 0) {
		if (argc > 3 || (argc == 3 && !json)) {
			rules_usage();
			return 2;
		}
	} else if (strcmp(sub, "install") == 0) {
		if (argc > 3 || (argc == 3 && cfg_colour_parse(argv[2], &c) < 0)) {
			rules_usage();
			return 2;
		}
	} else if (strcmp(sub, "flip") == 0) {
		if (argc != 3 || cfg_colour_parse(argv[2], &c) < 0) {
			rules_usage();
			return 2;
		}
	} else if (strcmp(sub, "remove") != 0 || argc != 2) {
		rules_usage();
		return 2;
	}
	cfg = cfg_load_report(cfgpath);
	if (cfg == NULL)
		return 1;
	if (strcmp(sub, "show") == 0) {
		rc = rules_show(cfg, json);
	} else if (strcmp(sub, "install") == 0) {
		if (argc == 2) {
			struct nf_state st;

			/* Without a colour, keep whatever the kernel says is
			 * live; only a table without a consistent live colour
			 * falls back to supervisor.initial_live. */
			c = cfg->supervisor.initial_live;
			if (nf_read(cfg, &st, err, sizeof(err)) == 0 && st.live >= 0)
				c = (enum cfg_colour)st.live;
		}
		if (nf_install(cfg, c, err, sizeof(err)) < 0) {
			fprintf(stderr, "switchyard rules install: %s\n", err);
		} else {
			printf("rules installed, every listener redirected to %s\n", cname(c));
			rc = 0;
		}
	} else if (strcmp(sub, "flip") == 0) {
		if (nf_flip(cfg, c, err, sizeof(err)) < 0) {
			fprintf(stderr, "switchyard rules flip: %s\n", err);
		} else {
			printf(
			    "flipped: new connections go to %s; established ones stay where they "
			    "are\n",
			    cname(c));
			rc = 0;
		}
	} else {
		if (nf_remove(cfg, err, sizeof(err)) < 0) {
			fprintf(stderr, "switchyard rules remove: %s\n", err);
		} else {
			printf("rules removed: table inet switchyard, chain %s and its jumps are "
			       "gone\n",
			       NF_CHAIN);
			rc = 0;
		}
	}
	cfg_free(cfg);
	return rc;
}

int nf_cmd_flows(const char *cfgpath, int argc, char **argv)
{
	struct nf_flows fl[CFG_NCOLOURS];
	struct cfg *cfg;
	char err[1024];
	int json = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else {
			fprintf(stderr, "usage: switchyard [-c FILE] flows [--json]\n");
			return 2;
		}
	}
	cfg = cfg_load_report(cfgpath);
	if (cfg == NULL)
		return 1;
	if (nf_count_flows(cfg, fl, err, sizeof(err)) < 0) {
		fprintf(stderr, "switchyard flows: %s\n", err);
		cfg_free(cfg);
		return 1;
	}
	if (json) {
		struct json_buf jb;

		jb_init(&jb);
		jb_obj_begin(&jb, NULL);
		for (int c = 0; c < CFG_NCOLOURS; c++) {
			jb_obj_begin(&jb, cfg_colour_name((enum cfg_colour)c));
			jb_uint(&jb, "syn", fl[c].syn);
			jb_uint(&jb, "established", fl[c].established);
			jb_uint(&jb, "closing", fl[c].closing);
			jb_uint(&jb, "total", fl[c].total);
			jb_obj_end(&jb);
		}
		jb_obj_end(&jb);
		printf("%s\n", jb_cstr(&jb));
		jb_free(&jb);
	} else {
		printf("%-8s %10s %12s %10s %10s\n", "instance", "syn", "established", "closing",
		       "total");
		for (int c = 0; c < CFG_NCOLOURS; c++)
			printf("%-8s %10llu %12llu %10llu %10llu\n",
			       cfg_colour_name((enum cfg_colour)c), (unsigned long long)fl[c].syn,
			       (unsigned long long)fl[c].established,
			       (unsigned long long)fl[c].closing, (unsigned long long)fl[c].total);
	}
	cfg_free(cfg);
	return 0;
}
