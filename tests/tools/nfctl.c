/*
 * nfctl: drives the netfilter module's C API from tests, with the listeners
 * given on the command line instead of a YAML file.
 *
 *   nfctl [-w LOCK_MS] [-g] -l ADDR,PORT,BLUE,GREEN [-l ...] COMMAND
 *
 * -g turns on supervisor.filter_guard. -b auto|nftables|iptables sets
 * netfilter.backend; without it, $SY_NF_BACKEND does, else auto. `backend`
 * prints the backend in use and why.
 *
 * COMMAND is one of: install blue|green, remove, flip blue|green,
 * read (prints "live COLOUR", one "listener I STATE COLOUR PORT" line each,
 * then "drift TEXT" or "drift none"), flows (one "COLOUR syn est closing
 * total" line per colour), flips N [PAUSE_US [STOP_FILE]] (N alternating
 * flips, ending on blue, with an optional pause between them, and with
 * STOP_FILE on until that file exists; prints "reached N" once N are done,
 * then the count done and the count that failed, and exits 1 if any did).
 * Run it only inside a network namespace the test created.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netfilter/nf.h"

static const char *colour_name(int c)
{
	return c == CFG_BLUE ? "blue" : c == CFG_GREEN ? "green" : "none";
}

static int add_listener(struct cfg *cfg, const char *spec)
{
	char addr[64];
	unsigned port, blue, green;
	struct cfg_listener *l;
	int i = cfg->nlisteners;

	if (i >= CFG_MAX_LISTENERS ||
	    sscanf(spec, "%63[^,],%u,%u,%u", addr, &port, &blue, &green) != 4)
		return -1;
	l = &cfg->listeners[i];
	snprintf(l->name, sizeof(l->name), "listener%d", i);
	if (inet_pton(AF_INET, addr, l->addr.a.v4) == 1)
		l->addr.family = AF_INET;
	else if (inet_pton(AF_INET6, addr, l->addr.a.v6) == 1)
		l->addr.family = AF_INET6;
	else
		return -1;
	snprintf(l->addr.text, sizeof(l->addr.text), "%s", addr);
	l->port = (uint16_t)port;
	cfg->instances[CFG_BLUE].ports[i] = (uint16_t)blue;
	cfg->instances[CFG_GREEN].ports[i] = (uint16_t)green;
	cfg->nlisteners++;
	return 0;
}

int main(int argc, char **argv)
{
	static struct cfg cfg;
	enum cfg_colour c;
	char err[1024] = "";
	int i = 1;
	const char *be = getenv("SY_NF_BACKEND");

	for (; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "-g") == 0) {
			cfg.supervisor.filter_guard = 1;
			i--;
		} else if (strcmp(argv[i], "-l") == 0) {
			if (add_listener(&cfg, argv[i + 1]) < 0) {
				fprintf(stderr, "nfctl: bad listener '%s'\n", argv[i + 1]);
				return 2;
			}
		} else if (strcmp(argv[i], "-b") == 0) {
			be = argv[i + 1];
		} else if (strcmp(argv[i], "-w") == 0) {
			nf_set_lock_wait((unsigned)atoi(argv[i + 1]));
		} else {
			break;
		}
	}
	if (i >= argc) {
		fprintf(
		    stderr,
		    "usage: nfctl [-w MS] [-g] [-b BACKEND] -l ADDR,PORT,BLUE,GREEN ... COMMAND\n");
		return 2;
	}
	if (be != NULL && be[0] != '\0') {
		if (strcmp(be, "nftables") == 0) {
			cfg.netfilter.backend = CFG_NF_NFTABLES;
		} else if (strcmp(be, "iptables") == 0) {
			cfg.netfilter.backend = CFG_NF_IPTABLES;
		} else if (strcmp(be, "auto") != 0) {
			fprintf(stderr, "nfctl: bad backend '%s'\n", be);
			return 2;
		}
	}
	if (strcmp(argv[i], "backend") == 0) {
		char d[1024];

		nf_backend_describe(&cfg, d, sizeof(d));
		printf("%s\n", d);
		return 0;
	}
	if (strcmp(argv[i], "install") == 0 && i + 1 < argc &&
	    cfg_colour_parse(argv[i + 1], &c) == 0) {
		if (nf_install(&cfg, c, err, sizeof(err)) < 0)
			goto fail;
	} else if (strcmp(argv[i], "flip") == 0 && i + 1 < argc &&
	           cfg_colour_parse(argv[i + 1], &c) == 0) {
		if (nf_flip(&cfg, c, err, sizeof(err)) < 0)
			goto fail;
	} else if (strcmp(argv[i], "remove") == 0) {
		if (nf_remove(&cfg, err, sizeof(err)) < 0)
			goto fail;
	} else if (strcmp(argv[i], "read") == 0) {
		struct nf_state st;

		if (nf_read(&cfg, &st, err, sizeof(err)) < 0)
			goto fail;
		printf("live %s\n", colour_name(st.live));
		for (int k = 0; k < st.nlisteners; k++)
			printf("listener %d %s %s %u\n", k,
			       nf_rule_state_name(st.listeners[k].state),
			       colour_name(st.listeners[k].colour), st.listeners[k].to_port);
		printf("drift %s\n", st.drift ? st.drift_text : "none");
	} else if (strcmp(argv[i], "flows") == 0) {
		struct nf_flows fl[CFG_NCOLOURS];

		if (nf_count_flows(&cfg, fl, err, sizeof(err)) < 0)
			goto fail;
		for (int k = 0; k < CFG_NCOLOURS; k++)
			printf("%s %llu %llu %llu %llu\n", colour_name(k),
			       (unsigned long long)fl[k].syn, (unsigned long long)fl[k].established,
			       (unsigned long long)fl[k].closing, (unsigned long long)fl[k].total);
	} else if (strcmp(argv[i], "flips") == 0 && i + 1 < argc) {
		long n = atol(argv[i + 1]), failed = 0, k;
		long pause = i + 2 < argc ? atol(argv[i + 2]) : 0;
		const char *stop = i + 3 < argc ? argv[i + 3] : NULL;

		/* Pairs of flips (green, then blue) so that it always ends on
		 * blue; with STOP_FILE it goes on past n until that file
		 * exists, so a test can keep it running alongside another
		 * writer for as long as it needs instead of hoping they
		 * overlap. */
		n += n & 1;
		for (k = 0;; k++) {
			if (k % 2 == 0 && k >= n && (stop == NULL || access(stop, F_OK) == 0))
				break;
			if (k == n) {
				printf("reached %ld\n", n);
				fflush(stdout);
			}
			if (nf_flip(&cfg, (k & 1) ? CFG_BLUE : CFG_GREEN, err, sizeof(err)) < 0) {
				failed++;
				fprintf(stderr, "nfctl: flip %ld: %s\n", k, err);
			}
			if (pause > 0)
				usleep((useconds_t)pause);
		}
		printf("flips %ld failed %ld\n", k, failed);
		return failed ? 1 : 0;
	} else {
		fprintf(stderr, "nfctl: unknown command '%s'\n", argv[i]);
		return 2;
	}
	return 0;
fail:
	fprintf(stderr, "nfctl: %s\n", err);
	return 1;
}
